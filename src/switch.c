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

#include "logging.h"
#include "core.h"
#include "util.h"


SN_EXPORT const char *sn_version(void)
{
	return SN_VERSION;
}

SN_EXPORT void sn_switch_config_init(struct sn_switch_config *cfg)
{
	*cfg = (struct sn_switch_config){
		.size = sizeof(*cfg),
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
		sn_port_free_unregistered(p);
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
void sn_switch_want_prepare(struct sn_switch *sw)
{
	if (!ev_is_active(&sw->kick)) {
		ev_idle_start(sw->loop, &sw->kick);
		ev_unref(sw->loop);
	}
}

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

		if (sn_port_stalling(p, now))
			sn_port_stall(p, now);
		if (p->waiters || (!p->stalled && sn_txq_len(&p->txq) >= sn_txq_congested_mark(p->txq.mask + 1)))
			any = true;
	}
	if (!any) {
		ev_ref(loop);
		ev_timer_stop(loop, w);
	}
}

void sn_switch_watchdog_want(struct sn_switch *sw)
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
	/* what the caller set over the defaults: a caller built against an older header knows fewer
	 * fields, one built against a newer one knows fields this library would ignore */
	sn_switch_config_init(&def);
	if (cfg) {
		if (cfg->size < sizeof(cfg->size) || cfg->size > sizeof(def))
			return -EINVAL;
		memcpy(&def, cfg, cfg->size);
		def.size = sizeof(def);
	}
	cfg = &def;
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
	while (sw->exts) {
		struct sn_switch_ext *e = sw->exts;

		sw->exts = e->next;
		e->destroy(e);
	}
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

/* ---- hooks ---- */

void sn_switch_tap_add(struct sn_switch *sw, struct sn_frame_tap *tap)
{
	tap->next = sw->taps;
	sw->taps = tap;
	sw->ntaps++;
}

void sn_switch_tap_del(struct sn_switch *sw, struct sn_frame_tap *tap)
{
	for (struct sn_frame_tap **pp = &sw->taps; *pp; pp = &(*pp)->next) {
		if (*pp == tap) {
			*pp = tap->next;
			sw->ntaps--;
			return;
		}
	}
}

void sn_switch_taps_frame(struct sn_switch *sw, struct sn_port *port, const uint8_t *data, uint32_t len,
			  enum sn_tap_dir dir)
{
	for (struct sn_frame_tap *t = sw->taps, *next; t; t = next) {
		next = t->next; /* a tap may remove itself */
		t->frame(t, port, data, len, dir);
	}
}

void sn_switch_taps_port_gone(struct sn_switch *sw, struct sn_port *port)
{
	for (struct sn_frame_tap *t = sw->taps, *next; t; t = next) {
		next = t->next;
		if (t->port_gone)
			t->port_gone(t, port);
	}
}

void sn_switch_ext_add(struct sn_switch *sw, struct sn_switch_ext *ext)
{
	ext->next = sw->exts;
	sw->exts = ext;
}

struct sn_switch_ext *sn_switch_ext_find(struct sn_switch *sw, const void *key)
{
	for (struct sn_switch_ext *e = sw->exts; e; e = e->next)
		if (e->key == key)
			return e;
	return NULL;
}

struct ev_loop *sn_switch_loop(struct sn_switch *sw)
{
	return sw->loop;
}

struct sn_port *sn_switch_next_port(struct sn_switch *sw, struct sn_port *prev, const struct sn_port_ops *ops)
{
	for (struct sn_port *p = prev ? prev->next : sw->ports; p; p = p->next)
		if (p->ops == ops && !p->closed)
			return p;
	return NULL;
}

struct sn_port *sn_switch_find_port(struct sn_switch *sw, const char *name)
{
	for (struct sn_port *p = sw->ports; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
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

		if (sn_port_stalling(out, now))
			sn_port_stall(out, now);
		sn_switch_watchdog_want(out->sw);
		if (len >= ring || len > nfree || (out->stalled && len >= sn_txq_stalled_keep(ring))) {
			out->stats.drop_txq_full++;
			return;
		}
		/* back-pressure on the sender of known unicast, at the pause mark or half the free pool */
		if (unicast && in->ops->resume && !in->waiting_on && !out->stalled &&
		    (len + 1 >= sn_txq_pause_mark(ring) || 2 * (len + 1) >= nfree))
			sn_port_wait_for(in, out, now);
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
		if (sn_unlikely(sw->ntaps))
			sn_switch_taps_frame(sw, in, d, len, SN_TAP_IN);
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

/* The keys every port kind takes, parsed here for all of them. */
static const char *const common_keys[] = {"name", "mtu", NULL};

static bool key_in(const char *key, const char *const *keys)
{
	for (; keys && *keys; keys++)
		if (!strcmp(key, *keys))
			return true;
	return false;
}

/* Names the first key that neither the kind nor the switch knows, before the kind reads any:
 * a misspelt key is the problem to report, not what its absence made of the rest. */
static int check_keys(const struct sn_port_kind *kind, const struct sn_spec *spec, struct sn_error *err)
{
	for (unsigned i = 0; i < spec->n; i++)
		if (!key_in(spec->kv[i].key, common_keys) && !key_in(spec->kv[i].key, kind->keys))
			return sn_error_set(err, -EINVAL, "unknown key '%s' for port kind '%s'", spec->kv[i].key,
					    kind->name);
	return 0;
}

int sn_port_conf_from_spec(struct sn_switch *sw, struct sn_spec *spec, struct sn_port_conf *ret,
			   struct sn_error *err)
{
	const char *name = sn_spec_get(spec, "name");
	int r;

	*ret = (struct sn_port_conf){0};
	/* left 0 when absent: a kind may tell "not given" from the default */
	r = sn_spec_get_uint(spec, "mtu", 68, SN_FRAME_MAX - SN_ETH_HLEN - SN_VLAN_HLEN, &ret->mtu, err);
	if (r < 0)
		return r;
	if (name) {
		r = sn_port_name_check(sw, name, "name", err);
		if (r < 0)
			return r;
		sn_strlcpy(ret->name, name, sizeof(ret->name));
	}
	return 0;
}

static const struct sn_port_kind *kind_find(const char *name)
{
	for (const struct sn_port_kind *const *k = sn_port_kinds; *k; k++)
		if (!strcmp((*k)->name, name))
			return *k;
	return NULL;
}

SN_EXPORT int sn_port_kinds_foreach(int (*visit)(const struct sn_port_kind_info *, void *), void *ctx)
{
	for (const struct sn_port_kind *const *k = sn_port_kinds; *k; k++) {
		struct sn_port_kind_info info = {.name = (*k)->name, .usage = (*k)->usage};
		int r = visit(&info, ctx);

		if (r)
			return r;
	}
	return 0;
}

/* Parses @text and finds its kind, naming an unknown kind or key before anything is opened. */
static int spec_prepare(const char *text, struct sn_spec *spec, const struct sn_port_kind **ret_kind,
			struct sn_error *err)
{
	const struct sn_port_kind *kind;
	int r;

	r = sn_spec_parse(spec, text, err);
	if (r < 0)
		return r;
	kind = kind_find(spec->kind);
	if (!kind) {
		char known[256] = "";

		for (const struct sn_port_kind *const *k = sn_port_kinds; *k; k++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s", k == sn_port_kinds ? "" : ", ",
				 (*k)->name);
		return sn_error_set(err, -EINVAL, "unknown port kind '%s' (this build has: %s)", spec->kind, known);
	}
	*ret_kind = kind;
	return check_keys(kind, spec, err);
}

SN_EXPORT int sn_port_spec_check(const char *text, struct sn_error *err)
{
	const struct sn_port_kind *kind;
	struct sn_spec spec;

	if (err)
		err->msg[0] = '\0';
	return spec_prepare(text, &spec, &kind, err);
}

SN_EXPORT int sn_switch_add_port(struct sn_switch *sw, const char *text, char *ret_name, size_t name_len,
				 struct sn_error *err)
{
	const struct sn_port_kind *kind = NULL;
	struct sn_port_conf conf;
	struct sn_spec spec;
	struct sn_port *port = NULL;
	int r;

	if (err)
		err->msg[0] = '\0';
	r = spec_prepare(text, &spec, &kind, err);
	if (r >= 0)
		r = sn_port_conf_from_spec(sw, &spec, &conf, err);
	if (r >= 0)
		r = kind->create(sw, &conf, &spec, &port, err);
	if (r < 0) {
		if (err && !err->msg[0])
			sn_error_set(err, r, "%s port: %s", spec.kind, strerror(-r));
		return r;
	}
	/* kept for sn_port_info.spec: what adds the same port again, under the same name */
	if (conf.name[0])
		port->spec = strdup(text);
	else if (asprintf(&port->spec, "%s,name=%s", text, port->name) < 0)
		port->spec = NULL;
	if (!port->spec) {
		sn_port_close(port);
		return sn_error_set(err, -ENOMEM, "out of memory");
	}
	if (ret_name && name_len)
		sn_strlcpy(ret_name, port->name, name_len);
	return 0;
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
			.spec = p->spec,
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

		if (e->key == 0 || sn_fdb_expired(&sw->fdb, e, now))
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

	if (!p || p->ops->listener)
		return -ENOENT;
	if (vlan > 4095)
		return -EINVAL;
	return sn_fdb_add_static(&sw->fdb, mac, vlan, p);
}

SN_EXPORT int sn_switch_fdb_del(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan)
{
	if (vlan > 4095)
		return -EINVAL;
	return sn_fdb_del(&sw->fdb, mac, vlan);
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
