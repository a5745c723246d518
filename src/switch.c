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
#include "sock.h"
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
		.sock_buf = SN_SOCK_BUF_DEFAULT,
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

/* Finds the stalls: a peer that kept a sender waiting, or took nothing with frames waiting, for
 * stall_timeout. Before it is judged it gets one more chance to take a frame: when the switch
 * itself was busy for a while (a long loop iteration), the peer may well have kept up. Runs
 * while some queue is at its congested mark or has senders waiting. */
static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_switch *sw = w->data;
	double now = ev_now(loop);
	bool any = false;

	/* backwards: a port closed by its flush takes the last one's place, seen already */
	for (unsigned i = sw->nup; i-- > 0;) {
		struct sn_port *p = sw->up[i];

		if (sn_port_stalling(p, now)) {
			uint64_t sent = p->stats.tx_frames;

			p->ops->flush(p);
			if (p->closed || p->state != SN_PORT_UP)
				continue;
			if (p->stats.tx_frames == sent)
				sn_port_stall(p, now);
		}
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
	if (cfg->pool_frames < 64 || cfg->txq_len < 8 || cfg->txq_len > (1u << 20) || !(cfg->stall_timeout > 0) ||
	    !sn_sock_buf_ok(cfg->sock_buf))
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

static inline bool has_tag(const struct sn_frame *f)
{
	uint16_t et = f->len >= SN_ETH_HLEN + SN_VLAN_HLEN ? sn_get_be16(f->data + 12) : 0;

	return et == SN_TPID_8021Q || et == SN_TPID_8021AD;
}

/* @f as @tpid (0: untagged) says it leaves, made once from the pool and kept on @f for the
 * ports that want the same; NULL when the pool has no buffer. */
static struct sn_frame *retag(struct sn_switch *sw, struct sn_frame *f, uint16_t tpid)
{
	uint32_t have = f->tpid ? SN_VLAN_HLEN : 0, want = tpid ? SN_VLAN_HLEN : 0;
	struct sn_frame *g;

	if (f->alt && f->alt->tpid == tpid)
		return f->alt;
	g = sn_pool_get(&sw->pool, f->len - have + want);
	if (!g)
		return NULL;
	memcpy(g->data, f->data, 12);
	if (want) {
		sn_put_be16(g->data + 12, tpid);
		sn_put_be16(g->data + 14, (uint16_t)((f->tci & 0xf000) | f->vlan));
	}
	memcpy(g->data + 12 + want, f->data + 12 + have, f->len - 12 - have);
	g->len = f->len - have + want;
	g->vlan = f->vlan;
	g->tpid = tpid;
	g->tci = (uint16_t)((f->tci & 0xf000) | f->vlan);
	g->off = f->off;
	sn_offload_shift(&g->off, (int)want - (int)have);
	if (f->alt)
		sn_frame_unref(f->alt); /* queues that hold it keep it */
	f->alt = g;
	return g;
}

/* Queues @f on @out as it is. @in sent it; @unicast: to @out alone, so @in may be paused when
 * @out's queue fills. */
static inline void queue_one(struct sn_port *in, struct sn_port *out, struct sn_frame *f, bool unicast, double now)
{
	struct sn_txq *q = &out->txq;
	uint32_t len = q->tail - q->head, ring = q->mask + 1;

	/* one tag is allowed on top of the MTU, a customer's as well as ours; a second one (an outer
	 * tag pushed on it) counts. A GSO frame is as large as its largest segment. */
	if (sn_unlikely(f->off.gso ? f->off.seg_ip > out->mtu
				   : f->len - SN_ETH_HLEN - (has_tag(f) ? SN_VLAN_HLEN : 0) > out->mtu)) {
		out->stats.drop_oversize++;
		return;
	}
	if (len == 0) {
		out->last_progress = now; /* the stall clock runs from the first frame waiting */
	} else if (sn_unlikely(len >= sn_txq_congested_mark(ring))) {
		/* the pool's share: no more queued than buffers of the frame's class are free (the
		 * one at hand is taken already, hence >) */
		uint32_t nfree = sn_pool_class_free(f);

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

/* @out cannot take what @f leaves to its receiver: a checksum is filled in, in place (the
 * ports that take it as it is get a finished one, DATA_VALID, which is as good), a GSO frame is
 * cut into segments once and they are shared by every port that needs them. Segments count
 * against the queue like any frame; when the pool runs out, @out goes without, counted. */
static void queue_soft(struct sn_port *in, struct sn_port *out, struct sn_frame *f, bool unicast, double now)
{
	if (!f->off.gso) {
		sn_offload_csum_finish(f);
		queue_one(in, out, f, unicast, now);
		return;
	}
	if (!f->segs) {
		int r = f->segs_failed ? -ENOBUFS : sn_offload_segment(&out->sw->pool, f);

		if (r < 0) {
			f->segs_failed = true;
			if (r == -ENOBUFS)
				out->stats.drop_no_buffer++;
			else
				in->stats.drop_bad_offload++;
			return;
		}
	}
	for (struct sn_frame *s = f->segs; s; s = s->seg_next)
		queue_one(in, out, s, unicast, now);
}

/* Queues @f on @out, tagged as @out wants its VLAN (or not at all when @out is not in it), and
 * as @out takes offloads. */
static inline void enqueue(struct sn_port *in, struct sn_port *out, struct sn_frame *f, bool unicast, double now)
{
	int tag = sn_vlan_egress(&out->conf.policy, f->vlan);

	if (tag == -1)
		return; /* not a member of the frame's VLAN */
	if (sn_unlikely(tag >= 0 && tag != f->tpid)) {
		f = retag(out->sw, f, (uint16_t)tag);
		if (!f) {
			out->stats.drop_no_buffer++;
			return;
		}
	}
	if (sn_unlikely(f->off.need & ~out->offload_tx))
		queue_soft(in, out, f, unicast, now);
	else
		queue_one(in, out, f, unicast, now);
}

/*
 * Which VLAN @f, arriving at @in, is in (f->vlan, and f->tpid/tci when it keeps its tag).
 * Returns 1 when the port's own tag is to be popped, 0 when the frame stays as it is, -1 when
 * the port does not take it: a tagged frame on an access port, a VLAN a trunk does not carry,
 * an untagged frame on a trunk without a native VLAN. A priority tag (VID 0) counts as none.
 */
static inline int classify(const struct sn_port_policy *p, struct sn_frame *f)
{
	const uint8_t *d = f->data;
	uint16_t et = f->len >= SN_ETH_HLEN + SN_VLAN_HLEN ? sn_get_be16(d + 12) : 0, tci, vid;

	if (sn_likely(p->mode == SN_VLAN_TRANSPARENT)) {
		if (et == SN_TPID_8021Q) {
			f->tci = sn_get_be16(d + 14);
			f->vlan = f->tci & 0xfff;
			f->tpid = et;
		}
		return 0;
	}
	if (et != p->tpid) {
		f->vlan = p->mode == SN_VLAN_ACCESS ? p->vid : p->native;
		return f->vlan ? 0 : -1;
	}
	tci = sn_get_be16(d + 14);
	vid = tci & 0xfff;
	f->tci = tci;
	if (p->mode == SN_VLAN_ACCESS) {
		f->vlan = p->vid;
		return vid ? -1 : 1;
	}
	if (!vid)
		vid = p->native;
	else if (!sn_vlan_in_trunk(p, vid) && vid != p->native)
		return -1;
	f->vlan = vid;
	return vid ? 1 : -1;
}

/* Takes the frame's first tag out in place: the frame is still only the caller's. */
static inline void pop_tag(struct sn_frame *f)
{
	memmove(f->data + SN_VLAN_HLEN, f->data, 12);
	f->data += SN_VLAN_HLEN;
	f->len -= SN_VLAN_HLEN;
	f->tpid = 0;
	sn_offload_shift(&f->off, -SN_VLAN_HLEN);
}

void sn_port_input(struct sn_port *in, struct sn_frame **frames, unsigned n)
{
	struct sn_switch *sw = in->sw;
	const struct sn_port_policy *pol = &in->conf.policy;
	double now = ev_now(sw->loop);
	struct sn_port *p;

	for (unsigned i = 0; i < n; i++) {
		struct sn_frame *f = frames[i];
		uint32_t len = f->len, payload;
		struct sn_port *out;
		const uint8_t *d;
		uint16_t et;
		int pop;

		if (sn_unlikely(len < SN_ETH_HLEN)) {
			in->stats.drop_runt++;
			goto done;
		}
		pop = classify(pol, f);
		if (sn_unlikely(pop < 0)) {
			in->stats.drop_vlan++;
			goto done;
		}
		/* what the frame leaves to its receiver must be what its bytes say, and what the peer
		 * negotiated; a GSO frame may be large, its segments may not */
		if (sn_unlikely(f->off.flags | f->off.gso)) {
			int r = sn_offload_check(f, in->offload_rx, in->mtu);

			if (r < 0) {
				if (r == -EMSGSIZE)
					in->stats.drop_oversize++;
				else
					in->stats.drop_bad_offload++;
				goto done;
			}
		}
		/* one tag, the port's or a customer's inside it, is allowed on top of the MTU */
		et = len >= SN_ETH_HLEN + SN_VLAN_HLEN ? sn_get_be16(f->data + 12 + (pop ? SN_VLAN_HLEN : 0)) : 0;
		payload = len - SN_ETH_HLEN - (pop ? SN_VLAN_HLEN : 0);
		if (f->tpid || et == SN_TPID_8021Q || et == SN_TPID_8021AD)
			payload -= SN_VLAN_HLEN;
		if (sn_unlikely(payload > in->mtu) && !f->off.gso) {
			in->stats.drop_oversize++;
			goto done;
		}
		in->stats.rx_frames++;
		in->stats.rx_bytes += len;
		if (sn_unlikely(sw->ntaps))
			sn_switch_taps_frame(sw, in, f->data, len, SN_TAP_IN);
		if (pop)
			pop_tag(f);
		d = f->data;
		if (sn_fdb_learn(&sw->fdb, d + 6, f->vlan, in, now) == SN_FDB_LEARNED && !ev_is_active(&sw->ager)) {
			sw->ager.repeat = sw->fdb.aging;
			ev_timer_again(sw->loop, &sw->ager);
			ev_unref(sw->loop);
		}
		if (!(d[0] & 1) && (out = sn_fdb_lookup(&sw->fdb, d, f->vlan, now))) {
			if (out == in) {
				sw->filtered++;
			} else if (sn_unlikely(pol->isolated && out->conf.policy.isolated)) {
				sw->isolated++;
			} else if (sn_likely(out->state == SN_PORT_UP)) {
				sw->unicast++;
				enqueue(in, out, f, true, now);
			}
			/* else a static entry names a port that is down: no peer to carry it */
		} else {
			/* unknown unicast, multicast or broadcast: every other member, as their flags allow */
			bool bcast = (d[0] & d[1] & d[2] & d[3] & d[4] & d[5]) == 0xff;
			bool mcast = (d[0] & 1) && !bcast, unknown = !(d[0] & 1);

			sw->flooded++;
			for (unsigned j = 0; j < sw->nup; j++) {
				struct sn_port *o = sw->up[j];
				const struct sn_port_policy *op = &o->conf.policy;

				if (o == in || (pol->isolated && op->isolated) || (unknown && op->no_flood) ||
				    (mcast && op->no_mcast_flood))
					continue;
				enqueue(in, o, f, false, now);
			}
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

/* The keys every port kind takes, parsed here for all of them (and the policy's, vlan.h). */
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
		if (!key_in(spec->kv[i].key, common_keys) && !key_in(spec->kv[i].key, sn_policy_keys) &&
		    !key_in(spec->kv[i].key, kind->keys))
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
	r = sn_policy_from_spec(&ret->policy, spec, err);
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
	char peer[256], vlan[1100], otx[64], orx[64];

	for (struct sn_port *p = sw->ports; p; p = p->next) {
		struct sn_port_info info = {
			.name = p->name,
			.kind = p->ops->kind,
			.parent = p->parent ? p->parent->name : NULL,
			.peer = peer,
			.state = p->state,
			.mtu = p->mtu,
			.txq_len = p->txq.ring ? p->txq.mask + 1 : 0,
			.vlan = vlan,
			.rx_paused = sn_port_rx_paused(p),
			.stalled = p->stalled,
			.stats = p->stats,
			.error = p->error,
			.spec = p->spec,
			.offload_tx = otx,
			.offload_rx = orx,
		};
		int r;

		peer[0] = '\0';
		sn_offload_names(p->offload_tx, otx, sizeof(otx));
		sn_offload_names(p->offload_rx, orx, sizeof(orx));
		sn_policy_describe(&p->conf.policy, vlan, sizeof(vlan));
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
	char dst[128];

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
		info.dst = NULL;
		if (e->port->ops->fdb_dst_describe) {
			dst[0] = '\0';
			e->port->ops->fdb_dst_describe(e->port, info.mac, info.vlan, dst, sizeof(dst));
			info.dst = dst[0] ? dst : NULL;
		}
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

/* A tunnel port's pin of @mac on @vlan to a remote endpoint goes with the switch's entry. */
static void fdb_dst_unpin(struct sn_port *p, const uint8_t mac[6], uint16_t vlan)
{
	if (p && p->ops->fdb_dst_set)
		p->ops->fdb_dst_set(p, mac, vlan, NULL, NULL);
}

SN_EXPORT int sn_switch_fdb_add_dst(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan, const char *name,
				    const char *dst, struct sn_error *err)
{
	struct sn_port *p = sn_switch_find_port(sw, name), *old;
	int r;

	if (!p || p->ops->listener)
		return sn_error_set(err, -ENOENT, "no port called '%s'", name);
	if (!p->ops->fdb_dst_set)
		return sn_error_set(err, -EOPNOTSUPP, "port %s is a %s port: dst= is for tunnel ports (vxlan, geneve)",
				    name, p->ops->kind);
	if (vlan > 4095)
		return sn_error_set(err, -EINVAL, "VLAN %u is not 0 to 4095", vlan);
	old = sn_fdb_lookup(&sw->fdb, mac, vlan, ev_now(sw->loop));
	r = p->ops->fdb_dst_set(p, mac, vlan, dst, err);
	if (r < 0)
		return r;
	r = sn_fdb_add_static(&sw->fdb, mac, vlan, p);
	if (r < 0) {
		fdb_dst_unpin(p, mac, vlan);
		return sn_error_set(err, r, r == -ENOSPC ? "the forwarding database is full" : "%s", strerror(-r));
	}
	if (old != p)
		fdb_dst_unpin(old, mac, vlan);
	return 0;
}

/* ---- settings and policy at run time ---- */

/* Parses "key=value,..." (or nothing) into @spec, as a SPEC of kind @kind. */
static int keys_parse(struct sn_spec *spec, const char *kind, const char *keys, struct sn_error *err)
{
	char text[SN_SPEC_MAX_LEN];

	if (snprintf(text, sizeof(text), "%s%s%s", kind, keys && *keys ? "," : "", keys ? keys : "") >= (int)sizeof(text))
		return sn_error_set(err, -EINVAL, "settings longer than %zu bytes", sizeof(text) - 1);
	return sn_spec_parse(spec, text, err);
}

SN_EXPORT int sn_switch_set(struct sn_switch *sw, const char *keys, struct sn_error *err)
{
	static const char *const known[] = {"fdb-aging", "fdb-max", "fdb-port-max", "fdb-evict", "stall-timeout",
					    "sock-buf", NULL};
	struct sn_switch_config cfg = sw->cfg;
	unsigned aging = 0, stall_ms = 0, max = cfg.fdb_max, port_max = cfg.fdb_port_max;
	unsigned buf = (unsigned)cfg.sock_buf;
	struct sn_spec spec;
	int r;

	if (err)
		err->msg[0] = '\0';
	r = keys_parse(&spec, "set", keys, err);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < spec.n; i++)
		if (!key_in(spec.kv[i].key, known))
			return sn_error_set(err, -EINVAL,
					    "unknown setting '%s' (settings: fdb-aging, fdb-max, fdb-port-max, fdb-evict, "
					    "stall-timeout, sock-buf)",
					    spec.kv[i].key);
	/* every value is checked before any is applied, and then they are applied together */
	if ((r = sn_spec_get_uint(&spec, "fdb-aging", 1, 1000000, &aging, err)) < 0 ||
	    (r = sn_spec_get_uint(&spec, "fdb-max", 1, 1u << 24, &max, err)) < 0 ||
	    (r = sn_spec_get_uint(&spec, "fdb-port-max", 0, 1u << 24, &port_max, err)) < 0 ||
	    (r = sn_spec_get_bool(&spec, "fdb-evict", &cfg.fdb_evict, err)) < 0 ||
	    (r = sn_spec_get_uint(&spec, "stall-timeout", 1, 3600000, &stall_ms, err)) < 0 ||
	    (r = sn_spec_get_uint(&spec, "sock-buf", 0, SN_SOCK_BUF_MAX, &buf, err)) < 0)
		return r;
	if (aging)
		cfg.fdb_aging = aging;
	if (stall_ms)
		cfg.stall_timeout = stall_ms / 1000.0;
	cfg.fdb_max = max;
	cfg.fdb_port_max = port_max;
	cfg.sock_buf = buf;
	return sn_switch_reconfigure(sw, &cfg, err);
}

/* Whether the two policies put the port's frames in different VLANs or tag them otherwise. */
static bool vlan_differs(const struct sn_port_policy *a, const struct sn_port_policy *b)
{
	return a->mode != b->mode || a->vid != b->vid || a->native != b->native ||
	       a->native_tagged != b->native_tagged || a->tpid != b->tpid || memcmp(a->trunk, b->trunk, sizeof(a->trunk));
}

static void policy_apply(struct sn_port *p, const struct sn_port_policy *np)
{
	bool vlans = vlan_differs(&p->conf.policy, np);

	p->conf.policy = *np;
	if (vlans) {
		/* what was learned or queued was in the VLANs, and tagged as, the old policy said */
		sn_fdb_flush(&p->sw->fdb, p, false);
		sn_txq_clear(p);
	}
}

/* The port's SPEC with its policy keys as @np has them, so that a saved configuration makes the
 * port as it is now; left as it was when it cannot be rebuilt. */
static void spec_rewrite(struct sn_port *p, const struct sn_port_policy *np)
{
	char text[SN_SPEC_MAX_LEN + 64], keys[1280];
	struct sn_spec old;
	size_t off;
	char *copy;

	if (!p->spec || sn_spec_parse(&old, p->spec, NULL) < 0)
		return;
	off = (size_t)snprintf(text, sizeof(text), "%s", old.kind);
	for (unsigned i = 0; i < old.n && off < sizeof(text); i++) {
		const char *v = old.kv[i].value;

		if (key_in(old.kv[i].key, sn_policy_keys))
			continue;
		off += (size_t)snprintf(text + off, sizeof(text) - off, strchr(v, ',') ? ",%s=\"%s\"" : ",%s=%s",
					old.kv[i].key, v);
	}
	sn_policy_keys_text(np, keys, sizeof(keys));
	if (off < sizeof(text))
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s", keys);
	if (off >= SN_SPEC_MAX_LEN || !(copy = strdup(text)))
		return;
	free(p->spec);
	p->spec = copy;
}

SN_EXPORT int sn_switch_port_set(struct sn_switch *sw, const char *name, const char *keys, struct sn_error *err)
{
	struct sn_port_policy np;
	struct sn_spec spec;
	struct sn_port *p;
	int r;

	if (err)
		err->msg[0] = '\0';
	p = name ? sn_switch_find_port(sw, name) : NULL;
	if (!p)
		return sn_error_set(err, -ENOENT, "no port called '%s'", name ? name : "");
	r = keys_parse(&spec, "port", keys, err);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < spec.n; i++)
		if (!key_in(spec.kv[i].key, sn_policy_keys))
			return sn_error_set(err, -EINVAL,
					    "key '%s' cannot change at run time (port set takes vlan, trunk, native, native-tagged, "
					    "tpid, isolated, flood, mcast-flood, max-macs)", spec.kv[i].key);
	np = p->conf.policy;
	r = sn_policy_from_spec(&np, &spec, err);
	if (r < 0)
		return r;
	policy_apply(p, &np);
	spec_rewrite(p, &np);
	/* a listener's clients follow it, and so will the clients it accepts later */
	if (p->ops->listener)
		for (struct sn_port *c = sw->ports; c; c = c->next)
			if (c->parent == p)
				policy_apply(c, &np);
	return 0;
}

SN_EXPORT int sn_switch_fdb_lookup(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan, struct sn_fdb_info *ret)
{
	double now = ev_now(sw->loop);
	const struct sn_fdb_entry *e;

	if (vlan > 4095)
		return -EINVAL;
	e = sn_fdb_find(&sw->fdb, mac, vlan);
	if (!e || sn_fdb_expired(&sw->fdb, e, now))
		return -ENOENT;
	sn_fdb_key_mac(e->key, ret->mac, &ret->vlan);
	ret->port = e->port->name;
	ret->is_static = e->is_static;
	ret->age = e->is_static ? 0 : now - e->seen;
	ret->dst = NULL; /* no buffer here to hold it: sn_switch_foreach_fdb() shows it */
	return 0;
}

SN_EXPORT int sn_switch_fdb_del(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan)
{
	struct sn_port *p;
	int r;

	if (vlan > 4095)
		return -EINVAL;
	p = sn_fdb_lookup(&sw->fdb, mac, vlan, ev_now(sw->loop));
	r = sn_fdb_del(&sw->fdb, mac, vlan);
	if (r == 0)
		fdb_dst_unpin(p, mac, vlan);
	return r;
}

SN_EXPORT void sn_switch_get_stats(struct sn_switch *sw, struct sn_switch_stats *ret)
{
	*ret = (struct sn_switch_stats){
		.unicast = sw->unicast,
		.flooded = sw->flooded,
		.filtered = sw->filtered,
		.isolated = sw->isolated,
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
