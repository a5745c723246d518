/* vhost_user_proto.h - the vhost-user control plane as a back-end: one front-end connection at a time
 * on a listening or already-connected unix socket, or on connections the owner dials (the
 * front-end listens, as QEMU's -chardev socket,server=on), its messages read and checked, its guest
 * memory mapped, its two rings (0 = RX, 1 = TX) configured. The data path is not here: the
 * owner gets a callback when a ring starts or stops and drives the ring itself. */
#ifndef SN_BACKENDS_VHOST_USER_H
#define SN_BACKENDS_VHOST_USER_H

#include <ev.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squibnet/switch.h>

#include "../sockconn.h"

/* Request codes of docs/interop/vhost-user.rst (front-end to back-end). */
enum sn_vu_request {
	SN_VU_GET_FEATURES = 1,
	SN_VU_SET_FEATURES = 2,
	SN_VU_SET_OWNER = 3,
	SN_VU_RESET_OWNER = 4,
	SN_VU_SET_MEM_TABLE = 5,
	SN_VU_SET_LOG_BASE = 6,
	SN_VU_SET_LOG_FD = 7,
	SN_VU_SET_VRING_NUM = 8,
	SN_VU_SET_VRING_ADDR = 9,
	SN_VU_SET_VRING_BASE = 10,
	SN_VU_GET_VRING_BASE = 11,
	SN_VU_SET_VRING_KICK = 12,
	SN_VU_SET_VRING_CALL = 13,
	SN_VU_SET_VRING_ERR = 14,
	SN_VU_GET_PROTOCOL_FEATURES = 15,
	SN_VU_SET_PROTOCOL_FEATURES = 16,
	SN_VU_GET_QUEUE_NUM = 17,
	SN_VU_SET_VRING_ENABLE = 18,
};

#define SN_VU_VERSION 0x1u
#define SN_VU_FLAG_VERSION_MASK 0x3u
#define SN_VU_FLAG_REPLY (1u << 2)
#define SN_VU_FLAG_NEED_REPLY (1u << 3)

/* Virtio feature bit 30, reused by vhost-user to announce protocol features. */
#define SN_VU_F_PROTOCOL_FEATURES 30
#define SN_VU_PROTOCOL_F_MQ 0
#define SN_VU_PROTOCOL_F_REPLY_ACK 3

/* SET_VRING_KICK/CALL/ERR payload: ring index in bits 0-7, "no descriptor attached" in bit 8. */
#define SN_VU_VRING_IDX_MASK 0xffu
#define SN_VU_VRING_NOFD (1u << 8)

#define SN_VU_HDR_SIZE 12
#define SN_VU_MAX_PAYLOAD 512  /* the largest message we accept is the 8-region memory table */
#define SN_VU_MAX_REGIONS 8
#define SN_VU_MAX_FDS 8
#define SN_VU_NRINGS 2         /* one queue pair: 0 = RX, 1 = TX */
#define SN_VU_RING_MAX 32768   /* the largest queue size virtio allows */

/** One region of the front-end's guest memory, mapped into this process. */
struct sn_vu_region {
	uint64_t gpa;      /**< guest physical address of the first byte */
	uint64_t size;     /**< bytes */
	uint64_t uaddr;    /**< where the front-end has it mapped (ring addresses use these) */
	uint64_t offset;   /**< of the region in the file */
	uint8_t *host;     /**< gpa maps to this pointer */
	void *map;         /**< what mmap() returned, for munmap() */
	size_t map_len;
	int guard;         /**< its slot in the SIGBUS guard (backends/memguard.h) */
};

/** What the front-end configured for one ring. Addresses are guest-physical (translated from
 * the front-end's user addresses when SET_VRING_ADDR arrived). */
struct sn_vu_ring {
	uint32_t num;        /**< queue size, 0 until SET_VRING_NUM */
	uint16_t base;       /**< avail index to resume from (SET_VRING_BASE, or where the ring stopped) */
	bool addr_set;
	uint64_t desc_ua, avail_ua, used_ua; /**< as the front-end sent them */
	uint64_t desc, avail, used;          /**< guest-physical */
	int kick_fd, call_fd, err_fd;        /**< -1 when none */
	bool started;        /**< kicked and being processed */
	bool enable_msg;     /**< the last SET_VRING_ENABLE said 1 */
	ev_io kick_io;       /**< waits for the first kick */
	struct sn_vu *vu;
	unsigned idx;
};

struct sn_vu;

/** What the owner does when the front-end moves a ring. Every callback runs from the loop. */
struct sn_vu_ops {
	/* Ring @idx was kicked: start processing it from vu->rings[idx].base with the memory in
	 * vu->regions. Return 0, or -errno with @err set (bad addresses): the connection closes. */
	int (*ring_start)(void *ctx, struct sn_vu *vu, unsigned idx, struct sn_error *err);
	/* Ring @idx stops (GET_VRING_BASE, RESET_OWNER, a new memory table, disconnect): stop
	 * touching its memory and descriptors, return the next avail index it would have read. */
	uint16_t (*ring_stop)(void *ctx, struct sn_vu *vu, unsigned idx);
	/* The effective enabled state of started ring @idx changed. */
	void (*ring_enable)(void *ctx, struct sn_vu *vu, unsigned idx, bool enabled);
	/* A front-end connected (@up true) or went away (@up false, @why says how); every ring has
	 * been stopped before a disconnect is reported. */
	void (*link)(void *ctx, struct sn_vu *vu, bool up, const char *why);
	/* SET_FEATURES set vu->features (optional): what the rings carry may have changed, the
	 * virtio-net offloads among it. */
	void (*features)(void *ctx, struct sn_vu *vu);
};

/** A vhost-user back-end endpoint: embed it in its owner, sn_vu_init() then sn_vu_finish(). */
struct sn_vu {
	struct ev_loop *loop;
	const struct sn_vu_ops *ops;
	void *ctx;
	const char *name;             /* for log messages: the owner's name */
	uint64_t device_features;     /* offered virtio features, without bit 30 */
	int listen_fd;                /* -1 when serving one inherited connection or dialing */
	int fd;                       /* the front-end, -1 when none */
	ev_io listen_io, io;
	struct sn_accept_pause accept_pause; /* after accept() ran out of descriptors */
	bool once;                    /* inherited connection: no reconnect after it ends */
	uint64_t features;            /* SET_FEATURES */
	uint64_t protocol_features;   /* SET_PROTOCOL_FEATURES */
	bool owned;
	unsigned nregions;
	struct sn_vu_region regions[SN_VU_MAX_REGIONS];
	/* Set (from the SIGBUS handler) when a region's file shrank under its mapping: that part
	 * now reads as zeros. Cleared when a new memory table replaces the mappings. */
	atomic_uint mem_fault;
	struct sn_vu_ring rings[SN_VU_NRINGS];
	unsigned sessions;            /* connections accepted so far */
	uint64_t protocol_errors;     /* connections closed for a malformed message */
	/* the message being read */
	union {
		uint8_t bytes[SN_VU_HDR_SIZE + SN_VU_MAX_PAYLOAD];
		uint64_t align;
	} msg;
	size_t have;
	int fds[SN_VU_MAX_FDS];
	unsigned nfds;
};

/**
 * Sets up @vu on @fd, which it owns from now on (closed by sn_vu_finish() even on failure): a
 * listening unix stream socket (front-ends connect one at a time; a new one may connect
 * after the last one left), or one already-connected socket; or -1 for none yet: the owner
 * connects to a listening front-end itself and hands each connection over with
 * sn_vu_attach(). @device_features are the virtio features GET_FEATURES offers
 * (VHOST_USER_F_PROTOCOL_FEATURES is added). @name is kept by reference for log messages.
 * Returns 0 or -EINVAL (@fd is not a unix stream socket).
 */
int sn_vu_init(struct sn_vu *vu, struct ev_loop *loop, int fd, uint64_t device_features,
	       const struct sn_vu_ops *ops, void *ctx, const char *name, struct sn_error *err);

/**
 * Starts a session on @fd, a connected unix stream socket the owner dialed (client mode: the
 * front-end listens), which @vu owns from now on. When the session ends, ops->link reports it
 * (@up false) and the owner may dial again and attach the next connection. Returns 0, or
 * -EBUSY (a session runs, or @vu has a listening socket) or -errno, with @fd closed.
 */
int sn_vu_attach(struct sn_vu *vu, int fd);

/** Drops the front-end (stopping its rings and unmapping its memory) and closes every descriptor. */
void sn_vu_finish(struct sn_vu *vu);

/** Closes the current front-end connection with @why logged; a listener accepts the next one.
 * The owner may call it from its own callbacks, e.g. when a ring turns out to be broken. */
void sn_vu_disconnect(struct sn_vu *vu, const char *why);

/** True when guest memory shrank under its mapping since the current memory table was set:
 * whatever was read from it since may be zeros, and the rings must stop. */
static inline bool sn_vu_mem_faulted(const struct sn_vu *vu)
{
	return atomic_load_explicit(&vu->mem_fault, memory_order_relaxed) != 0;
}

/** True when a front-end is connected. */
static inline bool sn_vu_connected(const struct sn_vu *vu)
{
	return vu->fd >= 0;
}

/** True when started ring @idx should have side effects: enabled by SET_VRING_ENABLE, or
 * VHOST_USER_F_PROTOCOL_FEATURES was not negotiated and so rings are always enabled. */
bool sn_vu_ring_enabled(const struct sn_vu *vu, unsigned idx);

/** The request's name for log messages ("SET_MEM_TABLE"), or NULL when unknown. */
const char *sn_vu_request_name(uint32_t request);

#endif
