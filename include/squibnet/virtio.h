/* In-process virtio-net ports: a VMM that embeds squibnet hands the switch the split
 * virtqueues of its virtio-net device, and frames go from one guest's TX ring to another
 * guest's RX ring with one copy and no system call per frame.
 *
 * The VMM keeps doing everything a virtio transport does (PCI or MMIO registers, feature
 * negotiation, config space with MAC/MTU/STATUS); once the driver has set DRIVER_OK it creates
 * the port with the negotiated features, its guest memory map and the two queues. Notifications
 * travel through eventfds (kick: the port reads it in the switch's loop; call: the port writes
 * it when the driver asked for an interrupt) or, with fd -1, through sn_virtio_port_kick() and
 * the notify callback. On device reset the VMM destroys the port and creates it again. The
 * guest memory and the eventfds must stay valid until the port is destroyed (or its switch).
 * The memory is the VMM's own: squibnet does not guard it against SIGBUS (unlike vhost-user
 * guest memory, which another process can shrink), so a file behind it must not shrink.
 *
 * Every address, length and index the guest wrote is checked. A queue that breaks the rules is
 * stopped with a logged warning (see sn_virtio_port_broken()); the switch and the other ports
 * carry on. Call everything from the thread that runs the switch's loop. */
#ifndef SQUIBNET_VIRTIO_H
#define SQUIBNET_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include <squibnet/switch.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sn_virtio_port;

/** Queue numbers of a virtio-net device (one queue pair). */
enum sn_virtio_queue_index {
	SN_VIRTIO_RX = 0,
	SN_VIRTIO_TX = 1,
};

/** Feature bits (numbers, as in the VIRTIO specification) this port understands. */
#define SN_VIRTIO_NET_F_CSUM 0
#define SN_VIRTIO_NET_F_GUEST_CSUM 1
#define SN_VIRTIO_NET_F_MTU 3
#define SN_VIRTIO_NET_F_MAC 5
#define SN_VIRTIO_NET_F_GUEST_TSO4 7
#define SN_VIRTIO_NET_F_GUEST_TSO6 8
#define SN_VIRTIO_NET_F_GUEST_ECN 9
#define SN_VIRTIO_NET_F_HOST_TSO4 11
#define SN_VIRTIO_NET_F_HOST_TSO6 12
#define SN_VIRTIO_NET_F_HOST_ECN 13
#define SN_VIRTIO_NET_F_MRG_RXBUF 15
#define SN_VIRTIO_NET_F_STATUS 16
#define SN_VIRTIO_F_INDIRECT_DESC 28
#define SN_VIRTIO_F_EVENT_IDX 29
#define SN_VIRTIO_F_VERSION_1 32
#define SN_VIRTIO_NET_F_GUEST_USO4 54
#define SN_VIRTIO_NET_F_GUEST_USO6 55
#define SN_VIRTIO_NET_F_HOST_USO 56

/** The features a VMM may offer its driver for a device backed by this port: VERSION_1,
 * MRG_RXBUF, EVENT_IDX, INDIRECT_DESC, the config-space bits MAC, MTU, STATUS, and the
 * offloads: CSUM, GUEST_CSUM, HOST_TSO4/6, GUEST_TSO4/6, HOST_ECN, GUEST_ECN, HOST_USO,
 * GUEST_USO4/6. The switch honours what the driver negotiated of them (the features given to
 * sn_virtio_port_create()): large frames and partial checksums from the driver reach the ports
 * that take them as they are and are segmented and checksummed for the others; frames to the
 * driver carry the offloads it accepted. A VMM that wants plain frames leaves them out. */
uint64_t sn_virtio_net_features(void);

/** A piece of guest memory: guest physical addresses [gpa, gpa + size) are at @hva here. */
struct sn_virtio_mem_region {
	uint64_t gpa;
	uint64_t size;
	void *hva;
};

/** One split virtqueue as the driver set it up. */
struct sn_virtio_queue_config {
	uint16_t size;       /**< power of two, at most 32768 */
	uint64_t desc;       /**< guest physical address of the descriptor table */
	uint64_t avail;      /**< ... of the available ring */
	uint64_t used;       /**< ... of the used ring */
	uint16_t last_avail; /**< first available entry to consume (0 for a fresh queue) */
	int kick_fd;         /**< eventfd the VMM signals when the driver notifies; -1: use
			      *   sn_virtio_port_kick(). The caller keeps ownership. Anything but
			      *   an eventfd (a pipe, file or socket) is refused with -EINVAL;
			      *   where there are no eventfds (not Linux), a pipe. */
	int call_fd;         /**< eventfd written when the driver wants an interrupt; -1: use the
			      *   notify callback. The caller keeps ownership. Checked like
			      *   kick_fd. */
};

/** Everything the port needs; the arrays are copied, the memory they describe must stay mapped
 * until the port is destroyed. */
struct sn_virtio_net_config {
	const char *name;    /**< port name, or NULL for "virtioN" */
	unsigned mtu;        /**< 0: 1500. Frames up to mtu + 18 bytes cross the port */
	uint64_t features;   /**< negotiated feature bits (a subset of sn_virtio_net_features()) */
	const struct sn_virtio_mem_region *regions;
	unsigned nregions;   /**< 1 to 64 regions, not overlapping */
	struct sn_virtio_queue_config rx, tx;
	/** Called instead of writing call_fd (when it is -1) with the queue to interrupt. */
	void (*notify)(struct sn_virtio_port *port, enum sn_virtio_queue_index queue, void *opaque);
	void *opaque;        /**< passed to @notify */
};

/**
 * Adds a virtio-net port to @sw and starts serving its queues (it is UP at once and drains
 * anything the driver already queued on TX). Returns 0 and sets *@ret_port, or
 * -EINVAL (bad queue size, region, name, a kick or call fd that is not an eventfd; @err says
 * which), -EFAULT (a ring outside the regions), -ENOTSUP (a feature bit this port does not
 * implement), -EEXIST (name taken), -ENOMEM. A kick fd that later fails to read (an error, or
 * readable again and again with nothing to read) stops being watched, with a warning;
 * sn_virtio_port_kick() still works.
 */
int sn_virtio_port_create(struct sn_switch *sw, const struct sn_virtio_net_config *cfg,
			  struct sn_virtio_port **ret_port, struct sn_error *err);

/** Removes the port from its switch (like sn_switch_del_port() with its name; after either,
 * the handle is gone). Stops reading the kick fds. NULL is a no-op. */
void sn_virtio_port_destroy(struct sn_virtio_port *port);

/**
 * The driver notified @queue (callback mode, or when the VMM traps notifications itself):
 * TX chains are forwarded, and for RX the frames waiting for buffers are retried.
 */
void sn_virtio_port_kick(struct sn_virtio_port *port, enum sn_virtio_queue_index queue);

/** Same as sn_virtio_port_kick(port, SN_VIRTIO_RX): the driver posted receive buffers. */
void sn_virtio_port_rx_buffers_available(struct sn_virtio_port *port);

/** The port's name in the switch (valid while the port lives). */
const char *sn_virtio_port_name(const struct sn_virtio_port *port);

/**
 * Whether @queue was stopped for breaking the rules; when it was and @ret_reason is not NULL,
 * *@ret_reason points at a message valid while the port lives.
 */
bool sn_virtio_port_broken(const struct sn_virtio_port *port, enum sn_virtio_queue_index queue,
			   const char **ret_reason);

#ifdef __cplusplus
}
#endif

#endif
