/* port.h - the whole contract between the switch and a port kind.
 *
 * A port kind is one file, src/ports/KIND.c, and one line in src/ports/meson.build. The file
 * defines `const struct sn_port_kind sn_port_kind_KIND` (its SPEC name, usage text, keys and
 * create function); meson lists the kinds of the build from that table. Its port struct embeds
 * struct sn_port first and points at a static const struct sn_port_ops. create() gets the keys
 * every kind has (name=, mtu=, and the VLAN and policy keys of vlan.h) already parsed into a
 * struct sn_port_conf, reads its own from the
 * SPEC, initialises the port with sn_port_init(), registers it with sn_port_register() (from
 * then on the switch owns it) and brings it UP with sn_port_set_state() when its peer is there.
 *
 * Frames come in through sn_port_input(), in pool buffers (sn_port_frame_get(),
 * sn_port_rx_copy()); frames to send wait in the port's egress queue until the switch calls
 * ops->flush, which sends what it can and pops it with sn_txq_sent() (sn_txq_drop() for frames
 * that cannot go). A port kind never looks inside struct sn_switch: this header and the
 * accessors below are all it uses. */
#ifndef SN_PORT_H
#define SN_PORT_H

#include <ev.h>
#include <stdbool.h>
#include <sys/uio.h>

#include <squibnet/switch.h>

#include "pool.h"
#include "util.h"
#include "vlan.h"

struct sn_switch;
struct sn_port;
struct sn_spec;

/* What every port's SPEC may say, parsed by the switch before the kind sees the rest. A
 * listener's clients get their listener's. */
struct sn_port_conf {
	char name[SN_PORT_NAME_MAX]; /* empty: the switch names the port after its kind */
	unsigned mtu;                /* 0: SN_MTU_DEFAULT */
	struct sn_port_policy policy; /* VLAN mode, isolation, flooding, MAC cap */
};

/* A port kind, as src/ports/meson.build lists it. */
struct sn_port_kind {
	const char *name;            /* the SPEC's first word */
	const char *usage;           /* for --help: one or more lines "KIND,key=...   what it is" */
	const char *const *keys;     /* the SPEC keys it takes besides name= and mtu=, NULL-ended */
	/* Parses the kind's keys from @spec, opens what it needs and registers the port (or
	 * listener), returned in *@ret_port. Returns 0, or -errno with @err naming the cause. */
	int (*create)(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
		      struct sn_port **ret_port, struct sn_error *err);
};

/* The port kinds of this build, NULL-ended (generated from src/ports/meson.build). */
extern const struct sn_port_kind *const sn_port_kinds[];

struct sn_port_ops {
	const char *kind;
	/* A listener carries no frames: each client it accepts is a port of its own. */
	bool listener;
	/* Writes out what the egress queue holds (sn_txq_*); called once per loop iteration for
	 * ports with queued frames, and when a queue filled fast during input. Must not block.
	 * Required for data ports, unused for listeners. */
	void (*flush)(struct sn_port *port);
	/* Stops watchers and closes descriptors; the port is already unlinked from the switch.
	 * Called once, possibly from inside the port's own callback. */
	void (*close)(struct sn_port *port);
	/* Frees the memory, later, from the loop (default: free()). */
	void (*free)(struct sn_port *port);
	/* Writes where the port is attached into @buf (optional). */
	void (*describe)(struct sn_port *port, char *buf, size_t len);
	/* Reading may go on: the port stopped taking input from its peer because a destination's
	 * queue was filling (sn_port_rx_paused() turned true after sn_port_input()), and that
	 * queue has drained, stalled or gone. Called from the switch's ev_prepare, never from inside
	 * sn_port_input(); must process what the port buffered before it paused. NULL: the port
	 * never pauses, and frames it sends to a full queue are dropped and counted there. */
	void (*resume)(struct sn_port *port);
	/* Tunnel ports (vxlan, geneve) keep a table of their own: which remote endpoint the
	 * frames for a MAC go to. Pins frames for @mac on @vlan to the endpoint @dst ("IP",
	 * "IP:PORT", "[IPv6]:PORT"), or with @dst NULL lets go of the pin: what `fdb add MAC PORT
	 * dst=IP` and `fdb del MAC` ask for. Returns 0 or -errno with @err saying why. NULL: the
	 * port has no remote endpoints, and dst= is refused for it. */
	int (*fdb_dst_set)(struct sn_port *port, const uint8_t mac[6], uint16_t vlan, const char *dst,
			   struct sn_error *err);
	/* Writes where frames for @mac on @vlan go ("10.0.0.2") into @buf, "" when the port does
	 * not know (optional: `fdb show` shows it beside the port). */
	void (*fdb_dst_describe)(struct sn_port *port, const uint8_t mac[6], uint16_t vlan, char *buf, size_t len);
};

/* Frames a stalled port's queue keeps (at most a quarter of its ring). */
#define SN_TXQ_STALLED 32

/* The marks of an egress queue of @ring frames (a power of two, at least 8): at the congested
 * mark the stall clock matters and the pool's share applies; a queue that reaches the flush
 * mark during an input call goes out at its end; senders pause at the pause mark and go on
 * below the resume mark. */
static inline uint32_t sn_txq_congested_mark(uint32_t ring) { return ring / 16 ? ring / 16 : 1; }
static inline uint32_t sn_txq_flush_mark(uint32_t ring) { return ring / 8 * 3; }
static inline uint32_t sn_txq_resume_mark(uint32_t ring) { return ring / 4; }
static inline uint32_t sn_txq_pause_mark(uint32_t ring) { return ring / 2; }
static inline uint32_t sn_txq_stalled_keep(uint32_t ring) { return ring / 4 < SN_TXQ_STALLED ? ring / 4 : SN_TXQ_STALLED; }

/* Egress queue: a ring of frame references, capacity a power of two. */
struct sn_txq {
	struct sn_frame **ring;
	uint32_t mask;
	uint32_t head; /* next to send */
	uint32_t tail; /* next free slot */
};

struct sn_port {
	const struct sn_port_ops *ops;
	struct sn_switch *sw;
	struct sn_port *parent;      /* listener that accepted this client, or NULL */
	struct sn_port *next;        /* every port and listener, in creation order */
	struct sn_port *flush_next;  /* ports with frames to flush */
	struct sn_port *dead_next;   /* closed, waiting to be freed */
	struct sn_port *hot_next;    /* queue crossed the flush mark during this input */
	/* back-pressure: this port's reader waits for @waiting_on's queue to drain; the ports
	 * waiting for this one's queue are the list at @waiters */
	struct sn_port *waiting_on;
	struct sn_port *waiters;
	struct sn_port *wait_next, **wait_pprev;
	struct sn_port *resume_next; /* to be resumed from the ev_prepare */
	struct sn_port_conf conf;    /* as created: a listener hands it to its clients */
	char *spec;                  /* the SPEC it was made from, name= included; NULL for others */
	char name[SN_PORT_NAME_MAX];
	unsigned mtu;
	unsigned children;           /* for listeners: clients accepted so far (naming) */
	int data_idx;                /* index in the switch's forwarding array, -1 when not in it */
	enum sn_port_state state;
	bool flush_queued;
	bool hot_queued;
	bool resume_queued;
	bool closed;
	bool stalled;                /* the peer stopped taking frames: few are queued for it */
	double last_progress;        /* when the queue last moved: a frame sent, or frames arriving in it empty */
	double wait_since;           /* when the first of the waiters began to wait */
	double stall_logged;         /* when the last stall was logged (at most one line per 10 s) */
	char error[128];             /* the last failure to reach the peer, for `ports`; "" once UP */
	/* offloads (SN_OFFLOAD_*, offload.h): what frames to the peer may leave to it, and what
	 * frames from the peer may leave to the switch; 0 for plain frames both ways */
	uint32_t offload_tx, offload_rx;
	struct sn_txq txq;
	struct sn_port_stats stats;
};

static inline uint32_t sn_txq_len(const struct sn_txq *q)
{
	return q->tail - q->head;
}

static inline bool sn_txq_empty(const struct sn_txq *q)
{
	return q->tail == q->head;
}

/* The @i-th queued frame (0 is the next to send); i < sn_txq_len(). */
static inline struct sn_frame *sn_txq_peek(const struct sn_txq *q, uint32_t i)
{
	return q->ring[(q->head + i) & q->mask];
}

/* Pops @n sent frames, counting them as transmitted on @port. Progress: releases the ports
 * waiting for this queue once it is below a quarter of its ring, and ends a stall. */
void sn_txq_sent(struct sn_port *port, uint32_t n);

/* Pops @n frames that cannot be sent (counted by the caller), from the head. */
void sn_txq_drop(struct sn_port *port, uint32_t n);

/* Drops everything queued, and releases the ports waiting for this queue. */
void sn_txq_clear(struct sn_port *port);

/* True while the port must not feed more input: a destination's queue is filling up. A port
 * kind with a resume op checks this after each sn_port_input() and stops reading its peer
 * (leaving data in the socket or ring, which pushes back on the sender) until ops->resume. */
static inline bool sn_port_rx_paused(const struct sn_port *port)
{
	return port->waiting_on != NULL;
}

/**
 * Sets up the common part of a port, zeroed memory the kind allocated: ops, the name from
 * @conf (or made up from the kind: "stream0", "stream1"...) and the MTU. A listener starts
 * LISTENING, a data port DOWN. Does not link it into the switch yet. Returns 0, or
 * -ENAMETOOLONG for a name too long.
 */
int sn_port_init(struct sn_port *port, struct sn_switch *sw, const struct sn_port_ops *ops,
		 const struct sn_port_conf *conf);

/* Whether @name may name a new port of @sw: 1 to SN_PORT_NAME_MAX - 1 characters, no blanks or
 * '/', not taken. -EINVAL or -EEXIST with @err saying why (@key: the SPEC key it came from). */
int sn_port_name_check(struct sn_switch *sw, const char *name, const char *key, struct sn_error *err);

/* The port or listener of @sw called @name, or NULL. */
struct sn_port *sn_switch_find_port(struct sn_switch *sw, const char *name);

/* The ports of @sw with ops @ops that are not closed, one per call: @prev NULL gives the first,
 * the last is followed by NULL. */
struct sn_port *sn_switch_next_port(struct sn_switch *sw, struct sn_port *prev, const struct sn_port_ops *ops);

/* The socket @sw inherited under @name (sn_switch_add_inherited_fd()), or -1. It stays the
 * switch's: a port works on a duplicate. */
int sn_switch_inherited_fd(struct sn_switch *sw, const char *name);

/* The names of the inherited sockets, ", " between them, for messages ("" for none). */
void sn_switch_inherited_names(struct sn_switch *sw, char *buf, size_t len);

/* Links an initialised port into the switch; data ports take part in forwarding when UP.
 * Returns 0 or -ENOMEM/-EEXIST. */
int sn_port_register(struct sn_port *port);

/* Frees a port that sn_port_register() refused or never saw, as its ops->free would. */
void sn_port_free_unregistered(struct sn_port *port);

/* Changes a data port's state; going down (or CONNECTING) flushes its FDB entries and egress
 * queue, going UP clears the port's error. */
void sn_port_set_state(struct sn_port *port, enum sn_port_state state);

/* Records why the port cannot reach its peer, for `ports` (sn_port_info.error), until it is UP
 * or the next failure. */
void sn_port_set_error(struct sn_port *port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Unlinks, forgets FDB entries, drops the queue, calls ops->close, and frees later.
 * Safe from inside the port's own callbacks; a second call is a no-op. */
void sn_port_close(struct sn_port *port);

/* Feeds received frames into the switch. Takes over the caller's reference of each frame. */
void sn_port_input(struct sn_port *port, struct sn_frame **frames, unsigned n);

/* Asks the switch to call ops->flush before the loop next blocks. */
void sn_port_want_flush(struct sn_port *port);

/* A buffer from the switch's pool for a frame of @len bytes; counts drop_no_buffer on @port
 * when none is free. */
struct sn_frame *sn_port_frame_get(struct sn_port *port, uint32_t len);

/* The loop the switch runs on: every watcher of the port goes on it. */
struct ev_loop *sn_port_loop(struct sn_port *port);

/* The send buffer a data connection of the port asks for (sn_switch_config.sock_buf). */
uint64_t sn_port_sock_buf(const struct sn_port *port);

/* A buffer for @len bytes, or NULL when the pool has none free; counts nothing (for ports that
 * wait for buffers rather than drop). */
struct sn_frame *sn_port_frame_try(struct sn_port *port, uint32_t len);

/* Makes sure the pool holds buffers for frames of @len bytes (sn_port_register() does it for
 * sn_port_max_frame(); a listener whose clients will send them, or a port that reads into
 * larger buffers, asks here). Returns 0 or -ENOMEM. */
int sn_port_want_buffers(struct sn_port *port, uint32_t len);

/* What a port that keeps a table of its own (tunnel ports: MAC -> remote endpoint) takes
 * from the switch's forwarding database: the aging time in seconds, and how many entries one
 * port may own there. Read them when needed: they may change while the switch runs. */
double sn_port_fdb_aging(const struct sn_port *port);
uint32_t sn_port_fdb_max(const struct sn_port *port);

/* The capacity of the port's egress queue, in frames. */
static inline uint32_t sn_port_txq_cap(const struct sn_port *port)
{
	return port->txq.mask + 1;
}

/* @port as the kind's own struct @type, of which struct sn_port is the member @member, when
 * its ops are @kind_ops; NULL when it is another kind of port. */
#define sn_port_downcast(port, type, member, kind_ops)                                             \
	((port) != NULL && (port)->ops == (kind_ops) ? sn_container_of((port), type, member) : (type *)NULL)

/* Copies a received frame of @len bytes into a pool buffer for @port. NULL when it cannot be
 * taken (over the port's MTU: drop_oversize; pool empty: drop_no_buffer), both counted. */
struct sn_frame *sn_port_rx_copy(struct sn_port *port, const uint8_t *data, uint32_t len);

/* Sets what the port's peer takes (@tx) and may send (@rx) of the SN_OFFLOAD_* offloads, as
 * negotiated; a port kind calls it whenever a session changes them. Frames queued for what the
 * peer no longer takes are dropped; a peer that may send large frames gets the pool's jumbo
 * buffers. Returns 0, or -ENOMEM when those cannot be had (the offloads are set anyway). */
int sn_port_set_offloads(struct sn_port *port, uint32_t tx, uint32_t rx);

/* Largest frame @port accepts: MTU plus Ethernet and VLAN headers. */
static inline uint32_t sn_port_max_frame(const struct sn_port *port)
{
	return port->mtu + 14 + 4;
}

#endif
