/* vmm-sim.h - the VMM and guest-driver side of one virtio-net device, for examples, tests and
 * the benchmark.
 *
 * It does what a VMM plus a guest's virtio-net driver would: guest memory in a memfd, split
 * rings for one queue pair laid out in it, eventfds for kicks and calls, RX buffers posted and
 * TX chains queued, used entries reaped. It is written against the VIRTIO specification and not
 * against squibnet's ring code, so the two check each other. The driver calls may run on
 * another thread than the device (the benchmark does that); one thread per vmm_sim. */
#ifndef VMM_SIM_H
#define VMM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <squibnet/virtio.h>

struct vmm_ring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vmm_queue {
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vmm_ring_desc *desc;
	uint16_t *avail;        /* flags, idx, ring[size], used_event */
	uint8_t *used;          /* flags, idx, {id, len}[size], avail_event */
	uint16_t avail_idx;     /* next avail slot the driver fills */
	uint16_t kicked_idx;    /* avail idx when the device last heard from us */
	uint16_t last_used;     /* next used slot the driver reads */
	uint16_t *free_ids;     /* stack of free slots */
	uint16_t nfree;
	uint64_t buf_gpa;       /* slot i's buffer is at buf_gpa + i * buf_size */
	uint32_t buf_size;
	int kick_fd, call_fd;
	uint64_t kicks;
};

/* How the simulated driver behaves. */
struct vmm_sim_opts {
	uint16_t qsize;         /* ring size of both queues (default 256) */
	uint64_t features;      /* negotiated bits (default VERSION_1 | EVENT_IDX) */
	uint32_t rx_buf_size;   /* bytes per RX buffer (default 1526: header + 1514) */
	uint32_t tx_buf_size;   /* bytes per TX slot, header included (default 2048) */
	bool tx_split;          /* TX frame as two descriptors: header, then data */
	bool tx_indirect;       /* TX frame through an indirect table (needs INDIRECT_DESC) */
	bool no_interrupt;      /* set VRING_AVAIL_F_NO_INTERRUPT (without EVENT_IDX) */
	bool callbacks;         /* no eventfds: kicks go through kick_cb, calls through the port's notify */
	void (*kick_cb)(void *opaque, int queue);
	void *opaque;
};

struct vmm_sim {
	struct vmm_sim_opts o;
	int memfd;
	uint8_t *mem;
	size_t mem_size;
	uint64_t gpa_base;
	size_t hdr_len;
	bool mrg, event_idx;
	struct vmm_queue q[2];  /* SN_VIRTIO_RX, SN_VIRTIO_TX */
	uint64_t tx_ind_gpa;    /* indirect tables, two descriptors per TX slot */
};

/** Sets up memory, rings and eventfds. @opts may be NULL for defaults. Returns 0 or -errno. */
int vmm_sim_init(struct vmm_sim *s, const struct vmm_sim_opts *opts);
void vmm_sim_finish(struct vmm_sim *s);

/** Fills @cfg (and the one region it points at, @region) so sn_virtio_port_create() serves
 * this device. name/mtu/notify are left for the caller. */
void vmm_sim_port_config(struct vmm_sim *s, struct sn_virtio_net_config *cfg, struct sn_virtio_mem_region *region);

/** Posts every free RX buffer; kicks the RX queue when the device asks. Returns buffers posted. */
int vmm_sim_rx_post(struct vmm_sim *s);

/** Same, but posts at most @max buffers (all free ones when @max is negative). */
int vmm_sim_rx_post_n(struct vmm_sim *s, int max);

/** Queues one frame on TX (no kick). 1 queued, 0 ring full, -1 frame too big. */
int vmm_sim_tx_queue(struct vmm_sim *s, const void *frame, uint32_t len);

/** Kicks TX if the device asks for it (avail_event / NO_NOTIFY). Returns true if kicked. */
bool vmm_sim_tx_kick(struct vmm_sim *s);

/** vmm_sim_tx_queue() + vmm_sim_tx_kick(); reaps completed TX first when the ring is full. */
int vmm_sim_send(struct vmm_sim *s, const void *frame, uint32_t len);

/** Takes back TX slots the device used. Returns how many. */
int vmm_sim_tx_reclaim(struct vmm_sim *s);

/** Takes one received frame into @buf (header removed; with MRG_RXBUF joined from its
 * buffers). Returns its length, 0 when none, -1 on a malformed used entry. The buffers are
 * not re-posted: call vmm_sim_rx_post(). */
int vmm_sim_recv(struct vmm_sim *s, void *buf, size_t cap);

/** Reads (clears) the call eventfd of @queue: how many interrupts came, 0 if none. */
uint64_t vmm_sim_calls(struct vmm_sim *s, int queue);

/** Guest physical address -> pointer, for tests that corrupt rings on purpose. */
void *vmm_sim_gpa(struct vmm_sim *s, uint64_t gpa);

#endif
