/* port.h - what every port kind shares: the base struct, its ops table and its egress queue.
 *
 * A port kind (src/ports/KIND.c) embeds struct sn_port first in its own struct and fills a
 * static const struct sn_port_ops. The switch owns the port once sn_port_register() succeeded. */
#ifndef SN_PORT_H
#define SN_PORT_H

#include <stdbool.h>
#include <sys/uio.h>

#include <squibnet/switch.h>

#include "pool.h"

struct sn_switch;
struct sn_port;
struct sn_spec;

struct sn_port_ops {
	const char *kind;
	/* Writes out what the egress queue holds (sn_txq_*); called once per loop iteration for
	 * ports with queued frames. Must not block. NULL for listeners. */
	void (*flush)(struct sn_port *port);
	/* Stops watchers and closes descriptors; the port is already unlinked from the switch.
	 * Called once, possibly from inside the port's own callback. */
	void (*close)(struct sn_port *port);
	/* Frees the memory, later, from the loop (default: free()). */
	void (*free)(struct sn_port *port);
	/* Writes where the port is attached into @buf (optional). */
	void (*describe)(struct sn_port *port, char *buf, size_t len);
};

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
	char name[SN_PORT_NAME_MAX];
	unsigned mtu;
	unsigned children;           /* for listeners: clients accepted so far (naming) */
	int data_idx;                /* index in the switch's forwarding array, -1 when not in it */
	enum sn_port_state state;
	bool flush_queued;
	bool closed;
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

/* Pops @n sent frames, counting them as transmitted on @port. */
void sn_txq_sent(struct sn_port *port, uint32_t n);

/* Drops everything queued. */
void sn_txq_clear(struct sn_txq *q);

/**
 * Sets up the common part of a port: ops, name (from @name, or generated from @base when NULL:
 * "base", then "base.1"...), MTU. Does not link it into the switch yet.
 */
int sn_port_init(struct sn_port *port, struct sn_switch *sw, const struct sn_port_ops *ops,
		 const char *name, unsigned mtu);

/* Links an initialised port into the switch; data ports (state UP or DOWN with a flush op)
 * take part in forwarding when UP. Returns 0 or -ENOMEM/-EEXIST. */
int sn_port_register(struct sn_port *port);

/* Changes a data port's state; going down flushes its FDB entries and egress queue. */
void sn_port_set_state(struct sn_port *port, enum sn_port_state state);

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

struct ev_loop *sn_port_loop(struct sn_port *port);

/* Copies a received frame of @len bytes into a pool buffer for @port. NULL when it cannot be
 * taken (over the port's MTU: drop_oversize; pool empty: drop_no_buffer), both counted. */
struct sn_frame *sn_port_rx_copy(struct sn_port *port, const uint8_t *data, uint32_t len);

/* Largest frame @port accepts: MTU plus Ethernet and VLAN headers. */
static inline uint32_t sn_port_max_frame(const struct sn_port *port)
{
	return port->mtu + 14 + 4;
}

#endif
