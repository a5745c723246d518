/* virtq.h - the split-virtqueue engine (VIRTIO 1.x, 2.7) shared by every virtio-net port.
 *
 * Two layers. The ring layer (sn_vq_*) knows guest memory and one split virtqueue: it pops
 * descriptor chains as iovecs, checking every address, length and index the driver wrote,
 * pushes used entries and decides whether the driver wants an interrupt. The net layer
 * (sn_vnet_*) moves Ethernet frames between a queue and a switch port: TX chains become pool
 * frames without their virtio-net header, queued frames go into RX buffers with one.
 *
 * A queue that breaks a rule is marked broken (sn_vq_broken(), with a reason, logged once) and
 * is never touched again until sn_vq_setup() runs anew; nothing outside the memory regions is
 * ever read or written. All functions are for the loop thread; the driver may run elsewhere
 * (the barriers are C11 fences).
 *
 * CHANGES (after the first version of this file):
 * - struct sn_vq gained used_flushed (internal bookkeeping; no signature changed).
 * - sn_vq_rx_put(): -EMSGSIZE now consumes nothing (the buffer stays for a frame that fits).
 * - sn_vq_notify_more() added: RX with too few buffers asks for a kick at the next one.
 * - struct sn_vq gained fault (NULL unless the owner guards the memory against SIGBUS; kept by
 *   sn_vq_reset() like name).
 * - struct sn_vq gained avail_seen: sn_vq_pop() reads avail->idx again only once the chains it
 *   saw there last are consumed (internal; no signature changed).
 * - Offloads: sn_vq_rx_put() takes the virtio-net header's first 10 bytes (@vhdr, NULL for
 *   zeros); sn_vnet_tx() reads the header of each chain into the frame's offload state (the
 *   switch checks it against what the driver negotiated, port->offload_rx), and takes GSO frames up to
 *   SN_OFFLOAD_FRAME_MAX; sn_vnet_rx() writes each frame's offload state as the port's peer
 *   takes it (port->offload_tx). The feature bits of the offloads were added.
 */
#ifndef SN_VIRTQ_H
#define SN_VIRTQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <squibnet/virtio.h>

struct sn_port;

/* ---- constants from the VIRTIO 1.x specification ---- */

#define SN_VRING_DESC_F_NEXT 1
#define SN_VRING_DESC_F_WRITE 2
#define SN_VRING_DESC_F_INDIRECT 4
#define SN_VRING_AVAIL_F_NO_INTERRUPT 1
#define SN_VRING_USED_F_NO_NOTIFY 1

/* feature bit numbers: the public ones (virtio.h, for a VMM embedding the in-process port),
 * and one the rings need besides */
#define SN_VIRTIO_F_NOTIFY_ON_EMPTY 24

#define SN_VIRTIO_BIT(b) (1ull << (b))

/* The largest split queue the specification allows. */
#define SN_VQ_SIZE_MAX 32768
/* Buffers one chain may have (after splitting at region boundaries). Chains with more are
 * refused: the queue breaks. */
#define SN_VQ_IOV_MAX 64
/* Memory regions one sn_vq_mem holds (vhost-user allows 8 by default, more with a protocol
 * feature; 64 leaves room). */
#define SN_VQ_MEM_REGIONS_MAX 64

/* virtio-net header: 12 bytes with VERSION_1 or MRG_RXBUF, 10 for the legacy layout. */
#define SN_VNET_HDR_LEN 12
#define SN_VNET_HDR_LEN_LEGACY 10

/* Guest memory as the device sees it: address ranges mapped at host pointers. "Address" is a
 * guest physical address for the in-process port; a vhost-user backend may fill a second
 * sn_vq_mem keyed by the frontend's user addresses to translate ring addresses. */
struct sn_vq_mem_region {
	uint64_t addr;  /* first address of the region */
	uint64_t size;  /* bytes */
	uint8_t *hva;   /* where addr is mapped in this process */
};

struct sn_vq_mem {
	unsigned n;
	struct sn_vq_mem_region r[SN_VQ_MEM_REGIONS_MAX];
};

/**
 * Replaces @mem's regions with @regions (copied). Refuses (-EINVAL) empty or wrapping regions,
 * NULL host pointers, overlaps, and more than SN_VQ_MEM_REGIONS_MAX (-E2BIG).
 */
int sn_vq_mem_set(struct sn_vq_mem *mem, const struct sn_vq_mem_region *regions, unsigned n);

/**
 * Host pointer for [@addr, @addr + @len) when the whole range lies inside one region, else
 * NULL. @len 0 is treated as 1.
 */
void *sn_vq_mem_translate(const struct sn_vq_mem *mem, uint64_t addr, uint64_t len);

/* One chain popped from the available ring: @nout device-readable buffers first, then @nin
 * device-writable ones, in iov[]. */
struct sn_vq_elem {
	uint16_t head;       /* descriptor index to hand back with sn_vq_push() */
	uint16_t nout, nin;
	uint32_t out_len, in_len; /* bytes in all readable / writable buffers */
	struct iovec iov[SN_VQ_IOV_MAX];
};

/* Ring layouts (little-endian on every host this builds for). */
struct sn_vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct sn_vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* then used_event */
};

struct sn_vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct sn_vring_used {
	uint16_t flags;
	uint16_t idx;
	struct sn_vring_used_elem ring[]; /* then avail_event */
};

/* Bytes each ring part takes for a queue of @size. */
static inline uint64_t sn_vring_desc_bytes(unsigned size) { return 16ull * size; }
static inline uint64_t sn_vring_avail_bytes(unsigned size) { return 4ull + 2ull * size + 2; }
static inline uint64_t sn_vring_used_bytes(unsigned size) { return 4ull + 8ull * size + 2; }

/* One split virtqueue, device side. Embed it; zero it or sn_vq_reset() before first use. */
struct sn_vq {
	const struct sn_vq_mem *mem; /* buffers are looked up here; the caller keeps it alive */
	struct sn_vring_desc *desc;
	struct sn_vring_avail *avail;
	struct sn_vring_used *used;
	uint16_t size;
	uint16_t last_avail;     /* next available-ring slot to consume */
	uint16_t avail_seen;     /* avail->idx as last read and checked */
	uint16_t used_idx;       /* next used-ring slot to fill (published by sn_vq_flush()) */
	uint16_t used_flushed;   /* used->idx as last published */
	uint16_t signalled_used; /* used idx at the last interrupt (event-idx) */
	bool signalled_valid;
	bool ready;              /* set up and usable */
	bool broken;
	bool event_idx, indirect;
	char broken_reason[96];
	const char *name;        /* for the log: "port x: rx", may be NULL */
	/* May be NULL. Nonzero when the guest memory shrank under its mapping (vhost-user's
	 * SIGBUS guard sets it; that memory now reads as zeros): the queue breaks at its next
	 * look, and nothing read from the memory after the fault reaches the switch. */
	const atomic_uint *fault;
};

/* The reason a queue breaks with once *fault is set. */
#define SN_VQ_SHRANK "guest memory shrank under the mapping"

/** Forgets the rings: the queue is not ready and not broken (name and fault stay). */
void sn_vq_reset(struct sn_vq *vq);

/**
 * Points @vq at rings given as host pointers (the caller translated and bounds-checked them,
 * e.g. with sn_vq_mem_translate() and the sn_vring_*_bytes() sizes). @size must be a power of
 * two up to SN_VQ_SIZE_MAX; @features are the negotiated bits (EVENT_IDX, INDIRECT_DESC are
 * used). @last_avail is where consumption starts (0, or GET/SET_VRING_BASE); used_idx starts
 * at the ring's current used->idx. Returns 0 or -EINVAL (bad size, misaligned rings).
 */
int sn_vq_setup(struct sn_vq *vq, const struct sn_vq_mem *mem, uint16_t size, void *desc, void *avail,
		void *used, uint64_t features, uint16_t last_avail);

/**
 * Same, with the rings given as addresses in @mem: translates them and checks they fit.
 * Returns 0 or -EINVAL (bad size) / -EFAULT (a ring outside the regions).
 */
int sn_vq_setup_addr(struct sn_vq *vq, const struct sn_vq_mem *mem, uint16_t size, uint64_t desc,
		     uint64_t avail, uint64_t used, uint64_t features, uint16_t last_avail);

/** Marks @vq broken with a reason (printf format), logged once as a warning. When the memory
 * faulted (see fault) the reason is SN_VQ_SHRANK, whatever zeros the queue tripped on. */
void sn_vq_break(struct sn_vq *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline bool sn_vq_broken(const struct sn_vq *vq) { return vq->broken; }
static inline bool sn_vq_usable(const struct sn_vq *vq) { return vq->ready && !vq->broken; }

/**
 * Chains the driver made available and the device has not popped. Breaks the queue (and
 * returns 0) when avail->idx ran more than size ahead.
 */
uint16_t sn_vq_avail_count(struct sn_vq *vq);

/**
 * Pops the next chain into @elem. Returns 1, 0 when the ring is empty, -EIO when the queue is
 * (or just became) broken: descriptor index out of range, buffer outside memory, a loop or a
 * chain longer than the queue, a writable buffer before a readable one, a bad indirect table
 * (nested, empty, not a multiple of 16 bytes, or INDIRECT_DESC not negotiated), total length
 * over 4 GiB, more than SN_VQ_IOV_MAX buffers.
 */
int sn_vq_pop(struct sn_vq *vq, struct sn_vq_elem *elem);

/** Gives back the last @n popped chains unused (they will be popped again). */
void sn_vq_unpop(struct sn_vq *vq, uint16_t n);

/** Fills the next used-ring slot with (@head, @len written). Not visible until sn_vq_flush(). */
void sn_vq_push(struct sn_vq *vq, uint16_t head, uint32_t len);

/**
 * Publishes the pushed entries (release fence, then used->idx) and returns true when the
 * driver asked for an interrupt for them: used_event crossed with EVENT_IDX, else
 * VRING_AVAIL_F_NO_INTERRUPT clear. False when nothing was pushed since the last call.
 */
bool sn_vq_flush(struct sn_vq *vq);

/**
 * Tells the driver whether to kick when it adds buffers (avail_event with EVENT_IDX, else
 * VRING_USED_F_NO_NOTIFY). After enabling, returns true when buffers arrived meanwhile, so the
 * caller must process them instead of waiting for a kick that will not come.
 */
bool sn_vq_notify_enable(struct sn_vq *vq, bool enable);

/**
 * For a device that cannot use what is available (RX with too few buffers for the next frame):
 * asks for a kick as soon as the driver adds any buffer beyond the ones there now (avail_event
 * at the current avail index with EVENT_IDX, else VRING_USED_F_NO_NOTIFY cleared). Returns
 * true when the avail index moved meanwhile, so the caller tries again instead of waiting for
 * a kick that may not come; false when nothing moved or the queue is not usable.
 */
bool sn_vq_notify_more(struct sn_vq *vq);

/* ---- virtio-net on top ---- */

/** Header length for negotiated @features: 12 with VERSION_1 or MRG_RXBUF, else 10. */
size_t sn_vnet_hdr_len(uint64_t features);

/**
 * Copies up to @cap bytes of the readable buffers of @elem, skipping the first @skip bytes,
 * into @dst. Returns the bytes copied.
 */
size_t sn_vq_elem_read(const struct sn_vq_elem *elem, size_t skip, void *dst, size_t cap);

/** The offloads (SN_OFFLOAD_*, offload.h) negotiated @features let the driver send (@ret_rx:
 * CSUM, HOST_TSO4/6, HOST_ECN, HOST_USO) and receive (@ret_tx: GUEST_CSUM, GUEST_TSO4/6,
 * GUEST_ECN, GUEST_USO4/6), each only with the checksum feature it depends on. */
void sn_vnet_offloads(uint64_t features, uint32_t *ret_tx, uint32_t *ret_rx);

/** The offload feature bits a device offers for @caps (SN_OFFLOAD_* it can take and send both
 * ways): for GET_FEATURES and the in-process port's feature list. */
uint64_t sn_vnet_offload_features(uint32_t caps);

/**
 * Writes one frame into RX buffers of @vq: a @hdr_len-byte virtio-net header (its first 10
 * bytes from @vhdr, zeros when NULL; num_buffers when @mrg) then @frame. With @mrg the frame
 * may take several chains; without, it must fit in one. Used entries are pushed, not flushed.
 * Returns 1 written; 0 not enough buffers (nothing consumed, retry later); -EMSGSIZE the
 * frame does not fit what the driver gives (nothing consumed: drop the frame); -EIO the queue
 * is broken.
 */
int sn_vq_rx_put(struct sn_vq *vq, size_t hdr_len, bool mrg, const uint8_t *vhdr, const uint8_t *frame,
		 uint32_t len);

/**
 * TX: pops up to @budget chains of @vq, copies each frame (less @hdr_len header bytes) into a
 * pool frame of @port, hands them to the switch in batches and pushes the chains as used.
 * Counts runts/oversize/no-buffer on @port. Sets *@ret_notify when the driver wants an
 * interrupt. Returns the chains consumed, or -EIO when the queue is broken.
 * A usable-but-disabled ring may pass @port NULL: chains are consumed and discarded.
 */
int sn_vnet_tx(struct sn_vq *vq, struct sn_port *port, size_t hdr_len, unsigned budget, bool *ret_notify);

/**
 * RX: moves the frames queued on @port (its txq) into @vq until either runs out; frames that
 * can never fit are dropped (drop_oversize). Sets *@ret_notify when the driver wants an
 * interrupt. Returns the frames delivered, or -EIO when the queue is broken (the txq is left
 * for the caller to clear or keep).
 */
int sn_vnet_rx(struct sn_vq *vq, struct sn_port *port, size_t hdr_len, bool mrg, bool *ret_notify);

#endif
