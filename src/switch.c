/* switch.c - the switch core: ports, the forwarding decision, egress queues, aging.
 *
 * Ports hand received frames to sn_port_input(). Each frame is checked (runt, oversize),
 * its source learned, and a reference to it queued on the port(s) it goes to: one port for a
 * known unicast destination, every other UP port for broadcast, multicast and unknown unicast.
 * Queued ports are flushed from an ev_prepare watcher, i.e. once per loop iteration after all
 * the ready descriptors have been read, so writes go out in batches; a queue that reaches an
 * eighth of its ring (128 frames by default) in an input call is flushed at the end of that
 * call, so a reader that takes thousands of frames per wake-up does not overrun a receiver that
 * keeps up.
 *
 * Overload is handled per port. Marks on each egress queue (port.h) decide:
 * - back-pressure: a port that sends known unicast into a queue at its pause mark (half the
 *   ring, or half the free buffers) stops reading its own peer (sn_port_rx_paused(); the data
 *   stays in its socket or ring, which pushes back on the sender) until the queue is below its
 *   resume mark. Floods never pause their sender: they are dropped at a full queue, so one
 *   slow port cannot throttle broadcast for everybody.
 * - stalls: a peer that kept a sender waiting for stall_timeout, or took no frame for that long
 *   while its queue held more than a few, is stalled: its senders go on, its queue is cut to
 *   SN_TXQ_STALLED frames and takes no more until it has sent those. So a stuck peer delays
 *   the ports that talk to it by stall_timeout at most, and then pins few buffers.
 * - the pool's share: a queue past its congested mark never holds more frames than there are
 *   free buffers of their size class (a dynamic threshold with alpha 1), so however many peers
 *   stop reading, part of the pool stays free for the ports that still work. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <squibnet/config.h>

#include "capture.h"
#include "log.h"
#include "switch.h"
#include "util.h"

static const struct sn_port_kind *const kinds[] = {
	&sn_port_kind_stream,
	&sn_port_kind_dgram,
	&sn_port_kind_seqpacket,
	&sn_port_kind_gvproxy,
#if SN_HAS_PCAP
	&sn_port_kind_pcap,
#endif
#if SN_HAS_TAP
	&sn_port_kind_tap,
#endif
#if SN_HAS_VHOST_USER
	&sn_port_kind_vhost_user,
#endif
#if SN_HAS_VMNET
	&sn_port_kind_vmnet,
#endif
};

SN_EXPORT const char *sn_version(void)
{
	return SN_VERSION;
}

SN_EXPORT void sn_switch_config_init(struct sn_switch_config *cfg)
{
	*cfg = (struct sn_switch_config){
		.pool_frames = SN_POOL_FRAMES_DEFAULT,
		.jumbo_frames = 256,
		.txq_len = 1024,
		.fdb_max = 8192,
		.fdb_port_max = 0,
		.fdb_aging = 300,
		.stall_timeout = 0.5,
	};
}

static void reap(struct sn_switch *sw)
{
	struct sn_port *p;

	while ((p = sw->dead)) {
		sw->dead = p->dead_next;
		free(p->txq.ring);
		if (p->ops->free)
			p->ops->free(p);
		else
			free(p);
	}
}

static void resume_some(struct sn_switch *sw)
{
	struct sn_port *p;

	while ((p = sw->resume_head)) {
		sw->resume_head = p->resume_next;
		p->resume_queued = false;
		if (!p->closed && p->state == SN_PORT_UP && !sn_port_rx_paused(p))
			p->ops->resume(p);
	}
}

/* Before the loop blocks: write out every queue, let paused readers go on, and again for what
 * they read; what is still left after a few rounds keeps the loop from blocking (kick). */
static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct sn_switch *sw = w->data;
	struct sn_port *p;

	for (int round = 0; round < 4 && (sw->flush_head || sw->resume_head); round++) {
		while ((p = sw->flush_head)) {
			sw->flush_head = p->flush_next;
			p->flush_queued = false;
			if (!p->closed)
				p->ops->flush(p);
		}
		resume_some(sw);
	}
	if (!sw->flush_head && !sw->resume_head && ev_is_active(&sw->kick)) {
		ev_ref(loop);
		ev_idle_stop(loop, &sw->kick);
	}
	reap(sw);
}

static void kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	/* nothing: being active is the point (the loop polls instead of blocking) */
}

/* Work was queued for the ev_prepare: make sure the loop comes round to it without waiting for
 * a descriptor, even when the work was queued after the ev_prepare ran in this iteration. */
static void want_prepare(struct sn_switch *sw)
{
	if (!ev_is_active(&sw->kick)) {
		ev_idle_start(sw->loop, &sw->kick);
		ev_unref(sw->loop);
	}
}

static void stall(struct sn_port *p, double now);
static bool stalling(const struct sn_port *p, double now);

/* Finds the stalls no enqueue would notice: a queue nobody adds to any more (its senders are
 * paused, or it got a burst and then nothing). Runs while some queue is at its congested mark
 * or has senders waiting. */
static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_switch *sw = w->data;
	double now = ev_now(loop);
	bool any = false;

	for (unsigned i = 0; i < sw->nup; i++) {
		struct sn_port *p = sw->up[i];

		if (stalling(p, now))
			stall(p, now);
		if (p->waiters || (!p->stalled && sn_txq_len(&p->txq) >= sn_txq_congested_mark(p->txq.mask + 1)))
			any = true;
	}
	if (!any) {
		ev_ref(loop);
		ev_timer_stop(loop, w);
	}
}

static void watchdog_want(struct sn_switch *sw)
{
	if (!ev_is_active(&sw->watchdog)) {
		ev_timer_again(sw->loop, &sw->watchdog);
		ev_unref(sw->loop);
	}
}

static void ager_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_switch *sw = w->data;
	double now = ev_now(loop);
	double next = sn_fdb_age(&sw->fdb, now);

	/* a repeating timer never stops by itself, which keeps the ev_unref() bookkeeping right */
	if (next > 0) {
		w->repeat = next - now + 0.001;
		ev_timer_again(loop, w);
	} else {
		ev_ref(loop);
		ev_timer_stop(loop, w);
	}
}

SN_EXPORT int sn_switch_create(struct ev_loop *loop, const struct sn_switch_config *cfg, struct sn_switch **ret_sw)
{
	struct sn_switch *sw;
	struct sn_switch_config def;
	uint32_t q = 1;
	int r;

	if (!loop || !ret_sw)
		return -EINVAL;
	if (!cfg) {
		sn_switch_config_init(&def);
		cfg = &def;
	}
	if (cfg->pool_frames < 64 || cfg->txq_len < 8 || cfg->txq_len > (1u << 20) || !(cfg->stall_timeout > 0))
		return -EINVAL;
	sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	sw->loop = loop;
	sw->cfg = *cfg;
	while (q < cfg->txq_len)
		q <<= 1;
	sw->cfg.txq_len = q;
	r = sn_pool_init(&sw->pool, cfg->pool_frames, cfg->jumbo_frames);
	if (r < 0)
		goto fail;
	r = sn_fdb_init(&sw->fdb, cfg->fdb_max, cfg->fdb_port_max, cfg->fdb_aging);
	if (r < 0)
		goto fail;
	sw->fdb.evict = cfg->fdb_evict;
	ev_prepare_init(&sw->prepare, prepare_cb);
	sw->prepare.data = sw;
	ev_prepare_start(loop, &sw->prepare);
	ev_unref(loop); /* the switch alone does not keep the loop running */
	ev_timer_init(&sw->ager, ager_cb, 0, 0);
	sw->ager.data = sw;
	ev_idle_init(&sw->kick, kick_cb);
	sw->kick.data = sw;
	ev_timer_init(&sw->watchdog, watchdog_cb, 0, sw->cfg.stall_timeout / 4);
	sw->watchdog.data = sw;
	*ret_sw = sw;
	return 0;
fail:
	sn_pool_finish(&sw->pool);
	sn_fdb_finish(&sw->fdb);
	free(sw);
	return r;
}

SN_EXPORT void sn_switch_destroy(struct sn_switch *sw)
{
	if (!sw)
		return;
	sn_capture_destroy_all(sw);
	while (sw->ports)
		sn_port_close(sw->ports);
	reap(sw);
	ev_ref(sw->loop);
	ev_prepare_stop(sw->loop, &sw->prepare);
	if (ev_is_active(&sw->ager)) {
		ev_ref(sw->loop);
		ev_timer_stop(sw->loop, &sw->ager);
	}
	if (ev_is_active(&sw->kick)) {
		ev_ref(sw->loop);
		ev_idle_stop(sw->loop, &sw->kick);
	}
	if (ev_is_active(&sw->watchdog)) {
		ev_ref(sw->loop);
		ev_timer_stop(sw->loop, &sw->watchdog);
	}
	sn_fdb_finish(&sw->fdb);
	sn_pool_finish(&sw->pool);
	free(sw->up);
	free(sw);
}

struct sn_port *sn_switch_find_port(struct sn_switch *sw, const char *name)
{
	for (struct sn_port *p = sw->ports; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

/* ---- ports ---- */

int sn_port_init(struct sn_port *port, struct sn_switch *sw, const struct sn_port_ops *ops,
		 const char *name, unsigned mtu)
{
	port->ops = ops;
	port->sw = sw;
	port->mtu = mtu ? mtu : SN_MTU_DEFAULT;
	port->data_idx = -1;
	port->state = ops->flush ? SN_PORT_DOWN : SN_PORT_LISTENING;
	if (name)
		return sn_strlcpy(port->name, name, sizeof(port->name));
	/* kind plus a number no other port of this switch has used */
	do {
		snprintf(port->name, sizeof(port->name), "%s%u", ops->kind, sw->next_auto_name++);
	} while (sn_switch_find_port(sw, port->name));
	return 0;
}

int sn_port_init_spec(struct sn_port *port, struct sn_switch *sw, const struct sn_port_ops *ops,
		      struct sn_spec *spec, struct sn_error *err)
{
	const char *name = sn_spec_get(spec, "name");
	unsigned mtu = SN_MTU_DEFAULT;
	int r;

	r = sn_spec_get_uint(spec, "mtu", 68, SN_FRAME_MAX - SN_ETH_HLEN - SN_VLAN_HLEN, &mtu, err);
	if (r < 0)
		return r;
	if (name) {
		if (!*name || strlen(name) >= SN_PORT_NAME_MAX || strpbrk(name, " \t\n/"))
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'name': 1 to %d characters, no blanks or '/'",
					    name, SN_PORT_NAME_MAX - 1);
		if (sn_switch_find_port(sw, name))
			return sn_error_set(err, -EEXIST, "a port called '%s' exists already", name);
	}
	return sn_port_init(port, sw, ops, name, mtu);
}

int sn_port_register(struct sn_port *port)
{
	struct sn_switch *sw = port->sw;
	struct sn_port **tail;

	if (sn_switch_find_port(sw, port->name))
		return -EEXIST;
	if (port->ops->flush) {
		port->txq.ring = calloc(sw->cfg.txq_len, sizeof(*port->txq.ring));
		if (!port->txq.ring)
			return -ENOMEM;
		port->txq.mask = sw->cfg.txq_len - 1;
		if (port->mtu + SN_ETH_HLEN + SN_VLAN_HLEN > SN_POOL_STD_CAP && sn_pool_want_jumbo(&sw->pool) < 0) {
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
static void wait_for(struct sn_port *in, struct sn_port *out, double now)
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
	watchdog_want(out->sw);
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
		want_prepare(sw);
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
static bool stalling(const struct sn_port *p, double now)
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
static void stall(struct sn_port *p, double now)
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
	} else {
		up_del(sw, port);
		sn_fdb_flush(&sw->fdb, port, false);
		sn_txq_clear(port);
		unwait(port);
	}
	port->state = state;
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
	sn_capture_port_gone(sw, port);
	if (port->ops->close)
		port->ops->close(port);
	port->dead_next = sw->dead;
	sw->dead = port;
}

struct ev_loop *sn_port_loop(struct sn_port *port)
{
	return port->sw->loop;
}

struct sn_frame *sn_port_frame_get(struct sn_port *port, uint32_t len)
{
	struct sn_frame *f = sn_pool_get(&port->sw->pool, len);

	if (sn_unlikely(!f))
		port->stats.drop_no_buffer++;
	return f;
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
		want_prepare(sw);
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
		if (sn_unlikely(port->sw->ncaptures))
			sn_capture_frame(port->sw, port, f->data, f->len, SN_CAPTURE_OUT);
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

/* ---- forwarding ---- */

/* Queues @f on @out; @payload is the frame's length less its Ethernet (and VLAN) header.
 * @in sent it; @unicast: to @out alone, so @in may be paused when @out's queue fills. */
static inline void enqueue(struct sn_port *in, struct sn_port *out, struct sn_frame *f, uint32_t payload,
			   bool unicast, double now)
{
	struct sn_txq *q = &out->txq;
	uint32_t len = q->tail - q->head, ring = q->mask + 1;

	if (sn_unlikely(payload > out->mtu)) {
		out->stats.drop_oversize++;
		return;
	}
	if (len == 0) {
		out->last_progress = now; /* the stall clock runs from the first frame waiting */
	} else if (sn_unlikely(len >= sn_txq_congested_mark(ring))) {
		/* the pool's share: no more queued than buffers of the frame's class are free (the
		 * one at hand is taken already, hence >) */
		uint32_t nfree = sn_pool_class_free(f);

		if (stalling(out, now))
			stall(out, now);
		watchdog_want(out->sw);
		if (len >= ring || len > nfree || (out->stalled && len >= sn_txq_stalled_keep(ring))) {
			out->stats.drop_txq_full++;
			return;
		}
		/* back-pressure on the sender of known unicast, at the pause mark or half the free pool */
		if (unicast && in->ops->resume && !in->waiting_on && !out->stalled &&
		    (len + 1 >= sn_txq_pause_mark(ring) || 2 * (len + 1) >= nfree))
			wait_for(in, out, now);
	} else if (sn_unlikely(out->stalled) && len >= sn_txq_stalled_keep(ring)) {
		out->stats.drop_txq_full++;
		return;
	}
	q->ring[q->tail++ & q->mask] = f;
	sn_frame_ref(f);
	if (sn_unlikely(len + 1 == sn_txq_flush_mark(ring)) && !out->hot_queued) {
		out->hot_queued = true;
		out->hot_next = out->sw->hot_head;
		out->sw->hot_head = out;
	}
	sn_port_want_flush(out);
}

void sn_port_input(struct sn_port *in, struct sn_frame **frames, unsigned n)
{
	struct sn_switch *sw = in->sw;
	double now = ev_now(sw->loop);
	struct sn_port *p;

	for (unsigned i = 0; i < n; i++) {
		struct sn_frame *f = frames[i];
		const uint8_t *d = f->data;
		uint32_t len = f->len, payload;
		uint16_t vlan = 0;
		struct sn_port *out;

		if (sn_unlikely(len < SN_ETH_HLEN)) {
			in->stats.drop_runt++;
			goto done;
		}
		payload = len - SN_ETH_HLEN;
		if (sn_unlikely(sn_get_be16(d + 12) == SN_ETH_P_8021Q) && len >= SN_ETH_HLEN + SN_VLAN_HLEN) {
			vlan = sn_get_be16(d + 14) & 0xfff;
			payload -= SN_VLAN_HLEN;
		}
		if (sn_unlikely(payload > in->mtu)) {
			in->stats.drop_oversize++;
			goto done;
		}
		in->stats.rx_frames++;
		in->stats.rx_bytes += len;
		if (sn_unlikely(sw->ncaptures))
			sn_capture_frame(sw, in, d, len, SN_CAPTURE_IN);
		if (sn_fdb_learn(&sw->fdb, d + 6, vlan, in, now) == SN_FDB_LEARNED && !ev_is_active(&sw->ager)) {
			sw->ager.repeat = sw->fdb.aging;
			ev_timer_again(sw->loop, &sw->ager);
			ev_unref(sw->loop);
		}
		if (!(d[0] & 1) && (out = sn_fdb_lookup(&sw->fdb, d, vlan, now))) {
			if (out == in) {
				sw->filtered++;
			} else if (sn_likely(out->state == SN_PORT_UP)) {
				sw->unicast++;
				enqueue(in, out, f, payload, true, now);
			}
			/* else a static entry names a port that is down: no peer to carry it */
		} else {
			sw->flooded++;
			for (unsigned j = 0; j < sw->nup; j++)
				if (sw->up[j] != in)
					enqueue(in, sw->up[j], f, payload, false, now);
		}
done:
		sn_frame_unref(f);
	}
	/* queues that filled fast go out now, while their receivers may still keep up */
	while ((p = sw->hot_head)) {
		sw->hot_head = p->hot_next;
		p->hot_queued = false;
		if (!p->closed && !sn_txq_empty(&p->txq))
			p->ops->flush(p);
	}
}

/* ---- the public face ---- */

SN_EXPORT int sn_switch_add_port(struct sn_switch *sw, const char *text, char *ret_name, size_t name_len,
				 struct sn_error *err)
{
	struct sn_spec spec;
	struct sn_port *port = NULL;
	int r;

	if (err)
		err->msg[0] = '\0';
	r = sn_spec_parse(&spec, text, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < SN_ARRAY_SIZE(kinds); i++) {
		if (strcmp(kinds[i]->name, spec.kind))
			continue;
		r = kinds[i]->create(sw, &spec, &port, err);
		if (r < 0) {
			if (err && !err->msg[0])
				sn_error_set(err, r, "%s port: %s", spec.kind, strerror(-r));
			return r;
		}
		if (ret_name && name_len)
			sn_strlcpy(ret_name, port->name, name_len);
		return 0;
	}
	{
		char known[256] = "";

		for (size_t i = 0; i < SN_ARRAY_SIZE(kinds); i++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s", i ? ", " : "",
				 kinds[i]->name);
		return sn_error_set(err, -EINVAL, "unknown port kind '%s' (this build has: %s)", spec.kind, known);
	}
}

SN_EXPORT int sn_switch_del_port(struct sn_switch *sw, const char *name)
{
	struct sn_port *p = sn_switch_find_port(sw, name);

	if (!p)
		return -ENOENT;
	sn_port_close(p);
	return 0;
}

SN_EXPORT int sn_switch_foreach_port(struct sn_switch *sw, int (*visit)(const struct sn_port_info *, void *),
				     void *ctx)
{
	char peer[256];

	for (struct sn_port *p = sw->ports; p; p = p->next) {
		struct sn_port_info info = {
			.name = p->name,
			.kind = p->ops->kind,
			.parent = p->parent ? p->parent->name : NULL,
			.peer = peer,
			.state = p->state,
			.mtu = p->mtu,
			.txq_len = p->txq.ring ? p->txq.mask + 1 : 0,
			.rx_paused = sn_port_rx_paused(p),
			.stalled = p->stalled,
			.stats = p->stats,
		};
		int r;

		peer[0] = '\0';
		if (p->ops->describe)
			p->ops->describe(p, peer, sizeof(peer));
		info.stats.txq_depth = sn_txq_len(&p->txq);
		r = visit(&info, ctx);
		if (r)
			return r;
	}
	return 0;
}

SN_EXPORT int sn_switch_foreach_fdb(struct sn_switch *sw, int (*visit)(const struct sn_fdb_info *, void *),
				    void *ctx)
{
	double now = ev_now(sw->loop);

	for (uint32_t i = 0; i <= sw->fdb.mask; i++) {
		const struct sn_fdb_entry *e = &sw->fdb.slots[i];
		struct sn_fdb_info info;
		int r;

		if (e->key == 0 || (!e->is_static && now - e->seen >= sw->fdb.aging))
			continue;
		sn_fdb_key_mac(e->key, info.mac, &info.vlan);
		info.port = e->port->name;
		info.is_static = e->is_static;
		info.age = e->is_static ? 0 : now - e->seen;
		r = visit(&info, ctx);
		if (r)
			return r;
	}
	return 0;
}

SN_EXPORT int sn_switch_fdb_flush(struct sn_switch *sw, const char *name)
{
	struct sn_port *p = NULL;

	if (name && !(p = sn_switch_find_port(sw, name)))
		return -ENOENT;
	return (int)sn_fdb_flush(&sw->fdb, p, false);
}

SN_EXPORT int sn_switch_fdb_add_static(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan, const char *name)
{
	struct sn_port *p = sn_switch_find_port(sw, name);

	if (!p || !p->ops->flush)
		return -ENOENT;
	if (vlan > 4095)
		return -EINVAL;
	return sn_fdb_add_static(&sw->fdb, mac, vlan, p);
}

SN_EXPORT void sn_switch_get_stats(struct sn_switch *sw, struct sn_switch_stats *ret)
{
	*ret = (struct sn_switch_stats){
		.unicast = sw->unicast,
		.flooded = sw->flooded,
		.filtered = sw->filtered,
		.fdb_refused_table = sw->fdb.refused_table,
		.fdb_refused_port = sw->fdb.refused_port,
		.fdb_moves = sw->fdb.moves,
		.fdb_evicted = sw->fdb.evicted,
		.fdb_entries = sw->fdb.count,
		.fdb_max = sw->fdb.max,
		.pool_free = sn_pool_free_count(&sw->pool),
		.pool_total = sn_pool_total(&sw->pool),
		.ports = sw->nports,
	};
}
