/* port.c - what every port kind shares, the other side of port.h: a port's life in the switch
 * (naming, registration, UP and DOWN, closing), its buffers, its egress queue, and the
 * back-pressure and stall bookkeeping that the forwarding in switch.c drives. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "logging.h"
#include "util.h"


int sn_port_init(struct sn_port *port, struct sn_switch *sw, const struct sn_port_ops *ops,
		 const struct sn_port_conf *conf)
{
	port->ops = ops;
	port->sw = sw;
	port->conf = *conf;
	port->mtu = conf->mtu ? conf->mtu : SN_MTU_DEFAULT;
	port->data_idx = -1;
	port->state = ops->listener ? SN_PORT_LISTENING : SN_PORT_DOWN;
	if (conf->name[0])
		return sn_strlcpy(port->name, conf->name, sizeof(port->name));
	/* kind plus a number no other port of this switch has used */
	do {
		snprintf(port->name, sizeof(port->name), "%s%u", ops->kind, sw->next_auto_name++);
	} while (sn_switch_find_port(sw, port->name));
	return 0;
}

int sn_port_name_check(struct sn_switch *sw, const char *name, const char *key, struct sn_error *err)
{
	if (!*name || strlen(name) >= SN_PORT_NAME_MAX || strpbrk(name, " \t\n/"))
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': 1 to %d characters, no blanks or '/'",
				    name, key, SN_PORT_NAME_MAX - 1);
	if (sn_switch_find_port(sw, name))
		return sn_error_set(err, -EEXIST, "a port called '%s' exists already", name);
	return 0;
}

int sn_port_register(struct sn_port *port)
{
	struct sn_switch *sw = port->sw;
	struct sn_port **tail;

	if (sn_switch_find_port(sw, port->name))
		return -EEXIST;
	if (!port->ops->listener) {
		port->txq.ring = calloc(sw->cfg.txq_len, sizeof(*port->txq.ring));
		if (!port->txq.ring)
			return -ENOMEM;
		port->txq.mask = sw->cfg.txq_len - 1;
		if (sn_port_want_buffers(port, sn_port_max_frame(port)) < 0) {
			free(port->txq.ring);
			port->txq.ring = NULL;
			return -ENOMEM;
		}
	}
	for (tail = &sw->ports; *tail; tail = &(*tail)->next)
		;
	*tail = port;
	port->next = NULL;
	sw->nports++;
	return 0;
}

void sn_port_free_unregistered(struct sn_port *port)
{
	free(port->txq.ring);
	port->txq.ring = NULL;
	free(port->spec);
	port->spec = NULL;
	if (port->ops->free)
		port->ops->free(port);
	else
		free(port);
}

static int up_add(struct sn_switch *sw, struct sn_port *port)
{
	if (sw->nup == sw->up_cap) {
		unsigned cap = sw->up_cap ? sw->up_cap * 2 : 16;
		struct sn_port **n = realloc(sw->up, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		sw->up = n;
		sw->up_cap = cap;
	}
	port->data_idx = (int)sw->nup;
	sw->up[sw->nup++] = port;
	return 0;
}

static void up_del(struct sn_switch *sw, struct sn_port *port)
{
	unsigned i = (unsigned)port->data_idx;

	if (port->data_idx < 0)
		return;
	sw->up[i] = sw->up[--sw->nup];
	sw->up[i]->data_idx = (int)i;
	port->data_idx = -1;
}

/* ---- back-pressure ---- */

/* @in waits for @out's queue: it stops reading until release_waiters(@out). */
void sn_port_wait_for(struct sn_port *in, struct sn_port *out, double now)
{
	in->stats.rx_pauses++;
	in->waiting_on = out;
	if (!out->waiters)
		out->wait_since = now;
	in->wait_next = out->waiters;
	if (out->waiters)
		out->waiters->wait_pprev = &in->wait_next;
	in->wait_pprev = &out->waiters;
	out->waiters = in;
	sn_switch_watchdog_want(out->sw);
}

/* @port no longer waits for anybody (it went down or away). */
static void unwait(struct sn_port *port)
{
	if (!port->waiting_on)
		return;
	if (port->wait_next)
		port->wait_next->wait_pprev = port->wait_pprev;
	*port->wait_pprev = port->wait_next;
	port->waiting_on = NULL;
}

/* The ports waiting for @out's queue may read again, from the next ev_prepare on. */
static void release_waiters(struct sn_port *out)
{
	struct sn_switch *sw = out->sw;
	struct sn_port *w;

	while ((w = out->waiters)) {
		out->waiters = w->wait_next;
		w->waiting_on = NULL;
		if (!w->resume_queued) {
			w->resume_queued = true;
			w->resume_next = sw->resume_head;
			sw->resume_head = w;
		}
	}
	if (sw->resume_head)
		sn_switch_want_prepare(sw);
}

/* The queue of @p got shorter: below the resume mark its senders go on. */
static inline void txq_shrunk(struct sn_port *p)
{
	if (sn_unlikely(p->waiters != NULL) && sn_txq_len(&p->txq) < sn_txq_resume_mark(p->txq.mask + 1))
		release_waiters(p);
}

/* Whether @p's peer has stopped keeping up: it kept a sender waiting for stall_timeout, or took
 * nothing for that long with frames at the congested mark. A peer that is merely slower than
 * its senders takes frames all the while, and holds nobody back for long. */
bool sn_port_stalling(const struct sn_port *p, double now)
{
	double t = p->sw->cfg.stall_timeout;

	if (p->stalled)
		return false;
	if (p->waiters && now - p->wait_since >= t)
		return true;
	return sn_txq_len(&p->txq) >= sn_txq_congested_mark(p->txq.mask + 1) && now - p->last_progress >= t;
}

/* @p's peer does not keep up: let its senders go, keep only a few frames for it (the head may
 * be half written), and take no more than that until it has sent them. */
void sn_port_stall(struct sn_port *p, double now)
{
	struct sn_txq *q = &p->txq;
	uint32_t keep = sn_txq_stalled_keep(q->mask + 1);

	p->stalled = true;
	p->stats.stalls++;
	if (now - p->stall_logged >= 10) {
		sn_info("port %s: peer not keeping up for %.1f s: dropping what it cannot take", p->name,
			p->sw->cfg.stall_timeout);
		p->stall_logged = now;
	}
	while (sn_txq_len(q) > keep) {
		sn_frame_unref(q->ring[--q->tail & q->mask]);
		p->stats.drop_txq_full++;
	}
	release_waiters(p);
}

void sn_port_set_state(struct sn_port *port, enum sn_port_state state)
{
	struct sn_switch *sw = port->sw;

	if (port->state == state || port->state == SN_PORT_LISTENING)
		return;
	if (state == SN_PORT_UP) {
		if (up_add(sw, port) < 0) {
			sn_err("port %s: out of memory, left down", port->name);
			return;
		}
		port->error[0] = '\0';
	} else {
		up_del(sw, port);
		sn_fdb_flush(&sw->fdb, port, false);
		sn_txq_clear(port);
		unwait(port);
	}
	port->state = state;
}

void sn_port_set_error(struct sn_port *port, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(port->error, sizeof(port->error), fmt, ap);
	va_end(ap);
}

void sn_port_close(struct sn_port *port)
{
	struct sn_switch *sw = port->sw;
	struct sn_port **pp;

	if (port->closed)
		return;
	port->closed = true;
	if (port->state == SN_PORT_LISTENING) {
		for (struct sn_port *c = sw->ports, *next; c; c = next) {
			next = c->next;
			if (c->parent == port)
				sn_port_close(c);
		}
	}
	for (pp = &sw->ports; *pp; pp = &(*pp)->next) {
		if (*pp == port) {
			*pp = port->next;
			sw->nports--;
			break;
		}
	}
	up_del(sw, port);
	sn_fdb_flush(&sw->fdb, port, true);
	sn_txq_clear(port);
	unwait(port);
	for (struct sn_port **rp = &sw->resume_head; *rp; rp = &(*rp)->resume_next) {
		if (*rp == port) {
			*rp = port->resume_next;
			break;
		}
	}
	sn_switch_taps_port_gone(sw, port);
	if (port->ops->close)
		port->ops->close(port);
	port->dead_next = sw->dead;
	sw->dead = port;
}

struct ev_loop *sn_port_loop(struct sn_port *port)
{
	return port->sw->loop;
}

uint64_t sn_port_sock_buf(const struct sn_port *port)
{
	return port->sw->cfg.sock_buf;
}

double sn_port_fdb_aging(const struct sn_port *port)
{
	return port->sw->fdb.aging;
}

uint32_t sn_port_fdb_max(const struct sn_port *port)
{
	return port->sw->fdb.port_max;
}

struct sn_frame *sn_port_frame_get(struct sn_port *port, uint32_t len)
{
	struct sn_frame *f = sn_pool_get(&port->sw->pool, len);

	if (sn_unlikely(!f))
		port->stats.drop_no_buffer++;
	return f;
}

struct sn_frame *sn_port_frame_try(struct sn_port *port, uint32_t len)
{
	return sn_pool_get(&port->sw->pool, len);
}

int sn_port_want_buffers(struct sn_port *port, uint32_t len)
{
	return len <= SN_POOL_STD_CAP ? 0 : sn_pool_want_jumbo(&port->sw->pool);
}

int sn_port_set_offloads(struct sn_port *port, uint32_t tx, uint32_t rx)
{
	uint32_t gso = SN_OFFLOAD_ALL & ~SN_OFFLOAD_CSUM;

	if (port->offload_tx & ~tx)
		sn_txq_clear(port); /* they were left to a peer that no longer does the work */
	port->offload_tx = tx & SN_OFFLOAD_ALL;
	port->offload_rx = rx & SN_OFFLOAD_ALL;
	return rx & gso ? sn_port_want_buffers(port, SN_POOL_JUMBO_CAP) : 0;
}

struct sn_frame *sn_port_rx_copy(struct sn_port *port, const uint8_t *data, uint32_t len)
{
	struct sn_frame *f;

	if (sn_unlikely(len > sn_port_max_frame(port))) {
		port->stats.drop_oversize++;
		return NULL;
	}
	f = sn_port_frame_get(port, len);
	if (sn_likely(f != NULL)) {
		memcpy(f->data, data, len);
		f->len = len;
	}
	return f;
}

void sn_port_want_flush(struct sn_port *port)
{
	struct sn_switch *sw = port->sw;

	if (!port->flush_queued) {
		port->flush_queued = true;
		port->flush_next = sw->flush_head;
		sw->flush_head = port;
		sn_switch_want_prepare(sw);
	}
}

void sn_txq_sent(struct sn_port *port, uint32_t n)
{
	struct sn_txq *q = &port->txq;

	if (n == 0)
		return;
	for (uint32_t i = 0; i < n; i++) {
		struct sn_frame *f = q->ring[q->head++ & q->mask];

		port->stats.tx_frames++;
		port->stats.tx_bytes += f->len;
		if (sn_unlikely(port->sw->ntaps))
			sn_switch_taps_frame(port->sw, port, f->data, f->len, SN_TAP_OUT);
		sn_frame_unref(f);
	}
	port->last_progress = ev_now(port->sw->loop);
	/* a stall ends once the peer took all it was left with: a peer that takes a frame now and
	 * then must not get a full queue, and hold its senders back, each time */
	if (sn_unlikely(port->stalled) && q->head == q->tail) {
		port->stalled = false;
		sn_debug("port %s: peer takes frames again", port->name);
	}
	txq_shrunk(port);
}

void sn_txq_drop(struct sn_port *port, uint32_t n)
{
	struct sn_txq *q = &port->txq;

	for (uint32_t i = 0; i < n && q->head != q->tail; i++)
		sn_frame_unref(q->ring[q->head++ & q->mask]);
	txq_shrunk(port);
}

void sn_txq_clear(struct sn_port *port)
{
	struct sn_txq *q = &port->txq;

	while (q->head != q->tail)
		sn_frame_unref(q->ring[q->head++ & q->mask]);
	port->stalled = false;
	if (port->waiters)
		release_waiters(port);
}

SN_EXPORT const char *sn_port_state_name(enum sn_port_state state)
{
	switch (state) {
	case SN_PORT_UP:
		return "up";
	case SN_PORT_DOWN:
		return "down";
	case SN_PORT_LISTENING:
		return "listening";
	case SN_PORT_CONNECTING:
		return "connecting";
	}
	return "unknown";
}
