/* test-switch.c - forwarding decisions of the real switch core, seen through fake ports.
 *
 * The test ports are a port kind of their own ("test") whose flush op takes the queued frames
 * off the egress queue and counts them, or, for a "stuck" port, leaves them there as a peer
 * that stopped reading would. Frames go in through sn_port_input() exactly as a real port's
 * would, and one ev_run(EVRUN_NOWAIT) runs the switch's flush step. */
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"
#include "util.h"

#include "sn-check.h"

#define POOL 256
#define TXQ 64

struct tport {
	struct sn_port base;
	bool stuck;          /* flush leaves the queue alone */
	unsigned resumed;    /* resume op calls (ports made with tport_new_bp) */
	uint32_t got;        /* frames taken off the queue */
	uint8_t last[SN_POOL_STD_CAP]; /* the head of the last frame taken */
	uint32_t last_len;
};

static struct ev_loop *loop;
static struct sn_switch *sw;
static unsigned closes, frees, resumes;

static void tport_flush(struct sn_port *port)
{
	struct tport *t = (struct tport *)port;
	uint32_t n = sn_txq_len(&port->txq);

	if (t->stuck || n == 0)
		return;
	t->last_len = sn_txq_peek(&port->txq, n - 1)->len;
	memcpy(t->last, sn_txq_peek(&port->txq, n - 1)->data, SN_MIN(t->last_len, sizeof(t->last)));
	t->got += n;
	sn_txq_sent(port, n);
}

static void tport_close(struct sn_port *port)
{
	closes++;
}

static void tport_free(struct sn_port *port)
{
	frees++;
	free(port);
}

static const struct sn_port_ops tport_ops = {
	.kind = "test",
	.flush = tport_flush,
	.close = tport_close,
	.free = tport_free,
};

static void tport_resume(struct sn_port *port)
{
	((struct tport *)port)->resumed++;
	resumes++;
}

/* A port that takes back-pressure: it has a resume op, as stream and virtio ports do. */
static const struct sn_port_ops tport_bp_ops = {
	.kind = "test",
	.flush = tport_flush,
	.close = tport_close,
	.free = tport_free,
	.resume = tport_resume,
};

static struct sn_port_conf conf_of(const char *name, unsigned mtu)
{
	struct sn_port_conf c = {.mtu = mtu};

	snprintf(c.name, sizeof(c.name), "%s", name);
	return c;
}

static struct tport *tport_new_ops(const char *name, unsigned mtu, const struct sn_port_ops *ops)
{
	struct tport *t = calloc(1, sizeof(*t));
	struct sn_port_conf c = conf_of(name, mtu);

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(sn_port_init(&t->base, sw, ops, &c), 0);
	ck_assert_int_eq(sn_port_register(&t->base), 0);
	sn_port_set_state(&t->base, SN_PORT_UP);
	ck_assert_int_eq(t->base.state, SN_PORT_UP);
	return t;
}

static struct tport *tport_new(const char *name, unsigned mtu)
{
	return tport_new_ops(name, mtu, &tport_ops);
}

static struct tport *tport_new_bp(const char *name)
{
	return tport_new_ops(name, 0, &tport_bp_ops);
}

static void setup_cfg(struct sn_switch_config *cfg)
{
	closes = frees = resumes = 0;
	loop = ev_loop_new(0);
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(sn_switch_create(loop, cfg, &sw), 0);
}

static void setup(void)
{
	struct sn_switch_config cfg;

	sn_switch_config_init(&cfg);
	cfg.pool_frames = POOL;
	cfg.jumbo_frames = 4;
	cfg.txq_len = TXQ;
	setup_cfg(&cfg);
}

static void teardown(void)
{
	sn_switch_destroy(sw);
	ev_loop_destroy(loop);
	sw = NULL;
	loop = NULL;
}

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t mac_a[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0a};
static const uint8_t mac_b[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0b};
static const uint8_t mac_c[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0c};
static const uint8_t mac_x[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x99};

/* Builds a frame of @len bytes (at least 14, or a runt when smaller) and feeds it in at @in. A
 * @vlan of -1 means untagged. */
static void inject_vlan(struct tport *in, const uint8_t dst[6], const uint8_t src[6], int vlan, uint32_t len)
{
	struct sn_frame *f = sn_port_frame_get(&in->base, len);
	uint8_t hdr[18];

	ck_assert_ptr_nonnull(f);
	memcpy(hdr, dst, 6);
	memcpy(hdr + 6, src, 6);
	if (vlan >= 0) {
		sn_put_be16(hdr + 12, SN_ETH_P_8021Q);
		sn_put_be16(hdr + 14, (uint16_t)vlan);
		sn_put_be16(hdr + 16, 0x0800);
	} else {
		sn_put_be16(hdr + 12, 0x0800);
	}
	for (uint32_t i = 0; i < len; i++)
		f->data[i] = i < sizeof(hdr) ? hdr[i] : (uint8_t)(i * 13);
	f->len = len;
	sn_port_input(&in->base, &f, 1);
}

static void inject(struct tport *in, const uint8_t dst[6], const uint8_t src[6], uint32_t len)
{
	inject_vlan(in, dst, src, -1, len);
}

static void run(void)
{
	ev_run(loop, EVRUN_NOWAIT);
}

static struct sn_switch_stats stats(void)
{
	struct sn_switch_stats s;

	sn_switch_get_stats(sw, &s);
	return s;
}

START_TEST(broadcast_floods)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0),
		     *d = tport_new("d", 0);

	inject(a, bcast, mac_a, 60);
	run();
	ck_assert_uint_eq(a->got, 0);
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(c->got, 1);
	ck_assert_uint_eq(d->got, 1);
	ck_assert_uint_eq(b->last_len, 60);
	ck_assert_mem_eq(b->last, bcast, 6);
	ck_assert_mem_eq(b->last + 6, mac_a, 6);
	ck_assert_uint_eq(b->last[59], (uint8_t)(59 * 13));
	ck_assert_uint_eq(stats().flooded, 1);
	ck_assert_uint_eq(stats().unicast, 0);
	ck_assert_uint_eq(a->base.stats.rx_frames, 1);
	ck_assert_uint_eq(a->base.stats.rx_bytes, 60);
	ck_assert_uint_eq(b->base.stats.tx_frames, 1);
	ck_assert_uint_eq(b->base.stats.tx_bytes, 60);
	ck_assert_uint_eq(a->base.stats.tx_frames, 0);
	/* multicast floods the same way */
	inject(b, (const uint8_t[6]){0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}, mac_b, 80);
	run();
	ck_assert_uint_eq(a->got, 1);
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(c->got, 2);
	ck_assert_uint_eq(d->got, 2);
}
END_TEST

START_TEST(unknown_unicast_floods)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0);

	inject(a, mac_x, mac_a, 100);
	run();
	ck_assert_uint_eq(a->got, 0);
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(c->got, 1);
	ck_assert_uint_eq(stats().flooded, 1);
}
END_TEST

START_TEST(learned_unicast)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0);

	inject(a, bcast, mac_a, 60); /* a learned behind port a */
	run();
	ck_assert_uint_eq(stats().fdb_entries, 1);
	inject(b, mac_a, mac_b, 60);
	run();
	ck_assert_uint_eq(a->got, 1);
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(c->got, 1); /* only the first broadcast */
	ck_assert_mem_eq(a->last + 6, mac_b, 6);
	ck_assert_uint_eq(stats().unicast, 1);
	/* and the reply goes straight back */
	inject(a, mac_b, mac_a, 60);
	run();
	ck_assert_uint_eq(b->got, 2);
	ck_assert_uint_eq(c->got, 1);
	ck_assert_uint_eq(a->got, 1);
	ck_assert_uint_eq(stats().unicast, 2);
	ck_assert_uint_eq(stats().flooded, 1);
	ck_assert_uint_eq(a->base.stats.fdb_entries, 1);
	ck_assert_uint_eq(b->base.stats.fdb_entries, 1);
}
END_TEST

START_TEST(never_back_to_ingress)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0);

	inject(a, bcast, mac_a, 60);
	inject(a, bcast, mac_c, 60);
	run();
	/* a frame for a MAC behind the port it arrived on goes nowhere */
	inject(a, mac_c, mac_a, 60);
	run();
	ck_assert_uint_eq(a->got, 0);
	ck_assert_uint_eq(b->got, 2);
	ck_assert_uint_eq(stats().filtered, 1);
	ck_assert_uint_eq(stats().unicast, 0);
	ck_assert_uint_eq(a->base.stats.rx_frames, 3);
}
END_TEST

START_TEST(runt)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0);

	inject(a, bcast, mac_a, 13);
	inject(a, bcast, mac_a, 0);
	run();
	ck_assert_uint_eq(a->base.stats.drop_runt, 2);
	ck_assert_uint_eq(a->base.stats.rx_frames, 0);
	ck_assert_uint_eq(b->got, 0);
	ck_assert_uint_eq(stats().fdb_entries, 0); /* nothing learned from garbage */
	inject(a, bcast, mac_a, 14); /* a bare header is a frame */
	run();
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(a->base.stats.drop_runt, 2);
	ck_assert_uint_eq(stats().pool_free, POOL);
}
END_TEST

START_TEST(oversize)
{
	struct tport *a = tport_new("a", 1500), *b = tport_new("b", 1500);

	inject(a, bcast, mac_a, 1514);
	inject(a, bcast, mac_a, 1515);
	run();
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(a->base.stats.drop_oversize, 1);
	ck_assert_uint_eq(b->base.stats.drop_oversize, 0);
	ck_assert_uint_eq(a->base.stats.rx_frames, 1);
	/* an 802.1Q tag adds 4 bytes */
	inject_vlan(a, bcast, mac_a, 0, 1518);
	inject_vlan(a, bcast, mac_a, 0, 1519);
	run();
	ck_assert_uint_eq(b->got, 2);
	ck_assert_uint_eq(b->last_len, 1518);
	ck_assert_uint_eq(a->base.stats.drop_oversize, 2);
	ck_assert_uint_eq(stats().pool_free, POOL);
}
END_TEST

START_TEST(txq_full)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *s = tport_new("stuck", 0);
	uint32_t start = stats().pool_free;

	s->stuck = true;
	for (int batch = 0; batch < 3; batch++) {
		for (int i = 0; i < TXQ / 2; i++)
			inject(a, bcast, mac_a, 60);
		run();
	}
	ck_assert_uint_eq(b->got, 3 * TXQ / 2);
	ck_assert_uint_eq(b->base.stats.drop_txq_full, 0);
	ck_assert_uint_eq(s->got, 0);
	ck_assert_uint_eq(sn_txq_len(&s->base.txq), TXQ);
	ck_assert_uint_eq(s->base.stats.drop_txq_full, TXQ / 2);
	ck_assert_uint_eq(a->base.stats.drop_txq_full, 0);
	/* the stuck queue pins exactly its own frames, nothing else */
	ck_assert_uint_eq(stats().pool_free, start - TXQ);
	/* the peer reads again: the queue drains and every buffer comes home */
	s->stuck = false;
	sn_port_want_flush(&s->base);
	run();
	ck_assert_uint_eq(s->got, TXQ);
	ck_assert_uint_eq(sn_txq_len(&s->base.txq), 0);
	ck_assert_uint_eq(stats().pool_free, start);
}
END_TEST

START_TEST(egress_mtu)
{
	struct tport *a = tport_new("a", 9000), *b = tport_new("b", 1500), *small = tport_new("small", 1000);

	inject(a, bcast, mac_a, 14 + 1200);
	run();
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(small->got, 0);
	ck_assert_uint_eq(small->base.stats.drop_oversize, 1);
	ck_assert_uint_eq(a->base.stats.drop_oversize, 0);
	inject(a, bcast, mac_a, 14 + 1000);
	run();
	ck_assert_uint_eq(small->got, 1);
	/* a jumbo frame: from the jumbo class, too big for both smaller ports */
	inject(a, bcast, mac_a, 14 + 9000);
	run();
	ck_assert_uint_eq(b->got, 2);
	ck_assert_uint_eq(b->base.stats.drop_oversize, 1);
	ck_assert_uint_eq(small->base.stats.drop_oversize, 2);
	ck_assert_uint_eq(stats().pool_free, stats().pool_total);
}
END_TEST

START_TEST(del_port_forgets)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0);

	inject(b, bcast, mac_b, 60);
	inject(b, bcast, mac_c, 60);
	inject(a, bcast, mac_a, 60);
	run();
	ck_assert_uint_eq(stats().fdb_entries, 3);
	ck_assert_uint_eq(stats().ports, 3);
	/* leave a frame queued on b: deleting must release it */
	inject(a, mac_b, mac_a, 60);
	ck_assert_uint_eq(sn_txq_len(&b->base.txq), 1);
	ck_assert_int_eq(sn_switch_del_port(sw, "b"), 0);
	ck_assert_uint_eq(closes, 1);
	ck_assert_uint_eq(stats().fdb_entries, 1);
	ck_assert_uint_eq(stats().ports, 2);
	ck_assert_int_eq(sn_switch_del_port(sw, "b"), -ENOENT);
	run();
	ck_assert_uint_eq(frees, 1);
	ck_assert_uint_eq(stats().pool_free, POOL);
	/* b's MACs are unknown now: flooded to what is left */
	inject(a, mac_b, mac_a, 60);
	run();
	ck_assert_uint_eq(c->got, 4);
	ck_assert_uint_eq(stats().unicast, 1);
}
END_TEST

START_TEST(down_forgets)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0);

	inject(b, bcast, mac_b, 60);
	run();
	ck_assert_uint_eq(b->base.stats.fdb_entries, 1);
	inject(a, mac_b, mac_a, 60); /* queued on b */
	sn_port_set_state(&b->base, SN_PORT_DOWN);
	ck_assert_uint_eq(b->base.stats.fdb_entries, 0);
	ck_assert_uint_eq(stats().fdb_entries, 1);
	ck_assert_uint_eq(sn_txq_len(&b->base.txq), 0);
	run();
	ck_assert_uint_eq(b->got, 0);
	ck_assert_uint_eq(stats().pool_free, POOL);
	/* a down port is not in the flooding set */
	inject(a, mac_b, mac_a, 60);
	inject(c, bcast, mac_c, 60);
	run();
	ck_assert_uint_eq(b->got, 0);
	ck_assert_uint_eq(c->got, 2);
	ck_assert_uint_eq(a->got, 2);
	sn_port_set_state(&b->base, SN_PORT_UP);
	inject(c, bcast, mac_c, 60);
	run();
	ck_assert_uint_eq(b->got, 1);
}
END_TEST

START_TEST(no_leak_no_copy)
{
	enum { N = 8, FRAMES = 20 };
	struct tport *p[N];
	uint32_t start;

	for (int i = 0; i < N; i++) {
		char name[8];

		snprintf(name, sizeof(name), "p%d", i);
		p[i] = tport_new(name, 0);
	}
	start = stats().pool_free;
	ck_assert_uint_eq(start, POOL);
	/* held in the queues until run(), even where a queue fills fast enough to go out early */
	for (int i = 1; i < N; i++)
		p[i]->stuck = true;
	for (int i = 0; i < FRAMES; i++)
		inject(p[0], bcast, mac_a, 1514);
	/* queued on N-1 ports but each held once: references, not copies */
	ck_assert_uint_eq(stats().pool_free, start - FRAMES);
	ck_assert_ptr_eq(sn_txq_peek(&p[1]->base.txq, 0), sn_txq_peek(&p[N - 1]->base.txq, 0));
	ck_assert_uint_eq(sn_txq_peek(&p[1]->base.txq, 0)->refs, N - 1);
	for (int i = 1; i < N; i++)
		p[i]->stuck = false;
	run();
	for (int i = 1; i < N; i++)
		ck_assert_uint_eq(p[i]->got, FRAMES);
	ck_assert_uint_eq(stats().pool_free, start);
	/* a mix of unicast, filtered and dropped frames leaks nothing either */
	inject(p[1], mac_a, mac_b, 60);
	inject(p[0], mac_a, mac_c, 60);
	inject(p[2], bcast, mac_c, 10);
	inject(p[3], bcast, mac_x, 1600); /* over the MTU */
	run();
	ck_assert_uint_eq(stats().pool_free, start);
}
END_TEST

struct fdb_seen {
	unsigned n, nstatic;
	char port[4][SN_PORT_NAME_MAX];
	uint8_t mac[4][6];
	uint16_t vlan[4];
	int stop_at;
};

static int fdb_visit(const struct sn_fdb_info *e, void *ctx)
{
	struct fdb_seen *s = ctx;

	ck_assert_uint_lt(s->n, 4);
	snprintf(s->port[s->n], sizeof(s->port[0]), "%s", e->port);
	memcpy(s->mac[s->n], e->mac, 6);
	s->vlan[s->n] = e->vlan;
	ck_assert(e->age >= 0);
	if (e->is_static) {
		ck_assert(e->age == 0);
		s->nstatic++;
	}
	s->n++;
	return s->stop_at && (int)s->n == s->stop_at ? 42 : 0;
}

/* The port name the entry for @mac shows, or NULL. */
static const char *seen_port(const struct fdb_seen *s, const uint8_t mac[6], uint16_t vlan)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!memcmp(s->mac[i], mac, 6) && s->vlan[i] == vlan)
			return s->port[i];
	return NULL;
}

START_TEST(foreach_and_flush)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0);
	struct fdb_seen s = {0};

	inject(a, bcast, mac_a, 60);
	inject_vlan(a, bcast, mac_c, 7, 60);
	inject(b, bcast, mac_b, 60);
	run();
	ck_assert_int_eq(sn_switch_foreach_fdb(sw, fdb_visit, &s), 0);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_str_eq(seen_port(&s, mac_a, 0), "a");
	ck_assert_str_eq(seen_port(&s, mac_c, 7), "a");
	ck_assert_str_eq(seen_port(&s, mac_b, 0), "b");
	ck_assert_ptr_null(seen_port(&s, mac_c, 0));
	ck_assert_uint_eq(s.nstatic, 0);

	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	ck_assert_int_eq(sn_switch_foreach_fdb(sw, fdb_visit, &s), 42);
	ck_assert_uint_eq(s.n, 2);

	ck_assert_int_eq(sn_switch_fdb_flush(sw, "nosuch"), -ENOENT);
	ck_assert_int_eq(sn_switch_fdb_flush(sw, "a"), 2);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(sn_switch_foreach_fdb(sw, fdb_visit, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_str_eq(seen_port(&s, mac_b, 0), "b");
	ck_assert_int_eq(sn_switch_fdb_flush(sw, NULL), 1);
	ck_assert_uint_eq(stats().fdb_entries, 0);
	/* forgotten: a frame for a floods again */
	inject(b, mac_a, mac_b, 60);
	run();
	ck_assert_uint_eq(stats().unicast, 0);
	ck_assert_uint_eq(a->got, 2);
}
END_TEST

START_TEST(static_entry)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0);
	struct fdb_seen s = {0};

	ck_assert_int_eq(sn_switch_fdb_add_static(sw, mac_x, 0, "b"), 0);
	ck_assert_int_eq(sn_switch_fdb_add_static(sw, mac_x, 0, "nosuch"), -ENOENT);
	ck_assert_int_eq(sn_switch_fdb_add_static(sw, mac_x, 4096, "b"), -EINVAL);
	inject(a, mac_x, mac_a, 60);
	run();
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(c->got, 0);
	ck_assert_uint_eq(stats().unicast, 1);
	/* the pinned MAC shows up as a source elsewhere: it does not move */
	inject(c, bcast, mac_x, 60);
	inject(a, mac_x, mac_a, 60);
	run();
	ck_assert_uint_eq(stats().fdb_moves, 0);
	ck_assert_uint_eq(b->got, 3);
	ck_assert_uint_eq(c->got, 0);
	/* a flush leaves it alone */
	ck_assert_int_eq(sn_switch_fdb_flush(sw, NULL), 1); /* only mac_a */
	ck_assert_int_eq(sn_switch_foreach_fdb(sw, fdb_visit, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_uint_eq(s.nstatic, 1);
	ck_assert_str_eq(seen_port(&s, mac_x, 0), "b");
	/* deleting the port takes its static entries with it */
	ck_assert_int_eq(sn_switch_del_port(sw, "b"), 0);
	ck_assert_uint_eq(stats().fdb_entries, 0);
}
END_TEST

START_TEST(static_to_down_port)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0);

	/* a pinned MAC outlives its port going down (a reconnecting peer), but nothing may be
	 * queued on a port that is down: it has no peer to flush to */
	ck_assert_int_eq(sn_switch_fdb_add_static(sw, mac_x, 0, "b"), 0);
	sn_port_set_state(&b->base, SN_PORT_DOWN);
	ck_assert_uint_eq(b->base.stats.fdb_entries, 1);
	inject(a, mac_x, mac_a, 60);
	ck_assert_uint_eq(sn_txq_len(&b->base.txq), 0);
	ck_assert(!b->base.flush_queued);
	run();
	ck_assert_uint_eq(b->got, 0);
	ck_assert_uint_eq(c->got, 0);
	ck_assert_uint_eq(stats().pool_free, POOL);
	/* back up: the entry works again */
	sn_port_set_state(&b->base, SN_PORT_UP);
	inject(a, mac_x, mac_a, 60);
	run();
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(c->got, 0);
}
END_TEST

START_TEST(mac_move)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0);

	inject(a, bcast, mac_x, 60);
	inject(b, bcast, mac_x, 60); /* the VM migrated */
	run();
	ck_assert_uint_eq(stats().fdb_moves, 1);
	ck_assert_uint_eq(a->base.stats.fdb_entries, 0);
	ck_assert_uint_eq(b->base.stats.fdb_entries, 1);
	inject(c, mac_x, mac_c, 60);
	run();
	ck_assert_uint_eq(b->got, 2);
	ck_assert_uint_eq(a->got, 1);
}
END_TEST

START_TEST(vlans_apart)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0), *c = tport_new("c", 0);

	inject_vlan(a, bcast, mac_a, 5, 64);
	run();
	/* mac_a is known on VLAN 5 only */
	inject(b, mac_a, mac_b, 60);
	run();
	ck_assert_uint_eq(c->got, 2);
	inject_vlan(b, mac_a, mac_b, 5, 64);
	run();
	ck_assert_uint_eq(c->got, 2);
	ck_assert_uint_eq(a->got, 2);
	ck_assert_uint_eq(stats().unicast, 1);
}
END_TEST

START_TEST(pool_empty)
{
	struct tport *a = tport_new("a", 0);
	struct sn_frame *held[POOL];

	for (int i = 0; i < POOL; i++) {
		held[i] = sn_port_frame_get(&a->base, 60);
		ck_assert_ptr_nonnull(held[i]);
	}
	ck_assert_ptr_null(sn_port_frame_get(&a->base, 60));
	ck_assert_uint_eq(a->base.stats.drop_no_buffer, 1);
	for (int i = 0; i < POOL; i++)
		sn_frame_unref(held[i]);
	ck_assert_uint_eq(stats().pool_free, POOL);
}
END_TEST

struct port_seen {
	unsigned n;
	uint32_t depth_stuck;
	unsigned mtu_big;
	char kind[16];
};

static int port_visit(const struct sn_port_info *p, void *ctx)
{
	struct port_seen *s = ctx;

	s->n++;
	snprintf(s->kind, sizeof(s->kind), "%s", p->kind);
	ck_assert_int_eq(p->state, SN_PORT_UP);
	ck_assert_uint_eq(p->txq_len, TXQ);
	if (!strcmp(p->name, "stuck"))
		s->depth_stuck = p->stats.txq_depth;
	if (!strcmp(p->name, "big"))
		s->mtu_big = p->mtu;
	return 0;
}

START_TEST(foreach_port)
{
	struct tport *a = tport_new("a", 0), *s = tport_new("stuck", 0);
	struct port_seen seen = {0};

	tport_new("big", 9000);
	s->stuck = true;
	inject(a, bcast, mac_a, 60);
	inject(a, bcast, mac_a, 60);
	run();
	ck_assert_int_eq(sn_switch_foreach_port(sw, port_visit, &seen), 0);
	ck_assert_uint_eq(seen.n, 3);
	ck_assert_str_eq(seen.kind, "test");
	ck_assert_uint_eq(seen.depth_stuck, 2);
	ck_assert_uint_eq(seen.mtu_big, 9000);
	/* the same name twice is refused */
	{
		struct tport *dup = calloc(1, sizeof(*dup));
		struct sn_port_conf c = conf_of("a", 0);

		ck_assert_int_eq(sn_port_init(&dup->base, sw, &tport_ops, &c), 0);
		ck_assert_int_eq(sn_port_register(&dup->base), -EEXIST);
		free(dup);
	}
}
END_TEST

/* A port added by SPEC keeps it, with the name the switch made up when it had none; a listener's
 * clients and ports made otherwise have none. sn_port_spec_check() names what add_port would. */
static int spec_visit(const struct sn_port_info *p, void *ctx)
{
	char *out = ctx;

	snprintf(out + strlen(out), 512 - strlen(out), "%s=%s;", p->name, p->spec ? p->spec : "(null)");
	return 0;
}

START_TEST(port_spec_kept)
{
	char dir[] = "/tmp/sn-unit-XXXXXX", spec[256], want[1024], got[512] = "";
	struct sn_error err;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	tport_new("t", 0);
	snprintf(spec, sizeof(spec), "stream,listen=unix:%s/a.sock", dir);
	ck_assert_int_eq(sn_switch_add_port(sw, spec, NULL, 0, &err), 0);
	snprintf(spec, sizeof(spec), "stream,name=named,listen=unix:%s/b.sock,framing=vde", dir);
	ck_assert_int_eq(sn_switch_add_port(sw, spec, NULL, 0, &err), 0);
	ck_assert_int_eq(sn_switch_foreach_port(sw, spec_visit, got), 0);
	snprintf(want, sizeof(want), "t=(null);stream0=stream,listen=unix:%s/a.sock,name=stream0;named=%s;", dir, spec);
	ck_assert_str_eq(got, want);
	ck_assert_int_eq(sn_port_spec_check("stream,listen=unix:/nonexistent/x.sock", &err), 0);
	ck_assert_int_eq(sn_port_spec_check("stream,listn=unix:/x", &err), -EINVAL);
	ck_assert_str_eq(err.msg, "unknown key 'listn' for port kind 'stream'");
	ck_assert_int_eq(sn_port_spec_check("strem,listen=unix:/x", &err), -EINVAL);
	ck_assert(strstr(err.msg, "unknown port kind 'strem'"));
	ck_assert_int_eq(sn_switch_del_port(sw, "stream0"), 0);
	ck_assert_int_eq(sn_switch_del_port(sw, "named"), 0);
	rmdir(dir);
}
END_TEST

/* An inherited socket by name: each port that names it gets a duplicate, so it can be taken
 * again after its port went, and the socket file stays the owner's. */
START_TEST(inherited_fd)
{
	char dir[] = "/tmp/sn-unit-XXXXXX", path[128], spec[256];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct sn_error err;
	int fd, dg;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/in.sock", dir);
	sn_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(sn_switch_add_inherited_fd(sw, "in", fd), 0);
	ck_assert_int_eq(sn_switch_add_inherited_fd(sw, "in", fd), -EEXIST);
	ck_assert_int_eq(sn_switch_add_inherited_fd(sw, "a:b", fd), -EINVAL);
	ck_assert_int_eq(sn_switch_add_inherited_fd(sw, "", fd), -EINVAL);
	ck_assert_int_eq(sn_switch_add_inherited_fd(sw, "gone", 1000), -EBADF);
	for (int round = 0; round < 2; round++) {
		ck_assert_int_eq(sn_switch_add_port(sw, "stream,name=s,fdname=in", NULL, 0, &err), 0);
		ck_assert_int_eq(sn_switch_del_port(sw, "s"), 0);
		run(); /* frees the closed port */
		ck_assert_int_eq(access(path, F_OK), 0);
	}
	/* a datagram socket is not a stream listener; a name nobody passed is named */
	dg = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_eq(sn_switch_add_inherited_fd(sw, "dg", dg), 0);
	ck_assert_int_eq(sn_switch_add_port(sw, "stream,fdname=dg", NULL, 0, &err), -EINVAL);
	ck_assert(strstr(err.msg, "a datagram socket"));
	ck_assert_int_eq(sn_switch_add_port(sw, "seqpacket,fdname=nosuch", NULL, 0, &err), -ENOENT);
	ck_assert_msg(strstr(err.msg, "no socket of that name was inherited (there are: in, dg)"), "%s", err.msg);
	/* with listen= beside it, a missing name binds the address instead */
	snprintf(spec, sizeof(spec), "stream,name=b,fdname=nosuch,listen=unix:%s/b.sock", dir);
	ck_assert_int_eq(sn_switch_add_port(sw, spec, NULL, 0, &err), 0);
	ck_assert_int_eq(sn_switch_del_port(sw, "b"), 0);
	run();
	unlink(path);
	rmdir(dir);
	/* the switch closes what it was given: fd and dg, at teardown */
}
END_TEST

/* Settings at run time: the FDB's and the stall timeout change at once, the pool's and the
 * queues' are refused whole. */
START_TEST(reconfigure)
{
	struct sn_switch_config cfg;
	struct sn_error err;
	struct tport *a = tport_new("a", 0);
	uint8_t m[6] = {0x52, 0x54, 0, 0, 0, 0};

	sn_switch_get_config(sw, &cfg);
	ck_assert_uint_eq(cfg.txq_len, TXQ);
	ck_assert_uint_eq(cfg.pool_frames, POOL);
	cfg.fdb_max = 4;
	cfg.fdb_aging = 100;
	cfg.stall_timeout = 2;
	cfg.fdb_evict = true;
	ck_assert_int_eq(sn_switch_reconfigure(sw, &cfg, &err), 0);
	ck_assert_uint_eq(stats().fdb_max, 4);
	for (int i = 0; i < 6; i++) {
		m[5] = (uint8_t)(i + 1);
		inject(a, bcast, m, 60);
	}
	/* the table stays at its new cap */
	ck_assert_uint_eq(stats().fdb_entries, 4);
	ck_assert(sw->fdb.evict);
	ck_assert(sw->fdb.aging == 100);
	ck_assert(sw->watchdog.repeat == 0.5);
	sn_switch_get_config(sw, &cfg);
	ck_assert(cfg.fdb_evict && cfg.fdb_max == 4 && cfg.stall_timeout == 2);
	/* a shorter aging time takes effect on the entries there: they are expired now */
	cfg.fdb_aging = 0.001;
	usleep(2000);
	ev_now_update(loop);
	ck_assert_int_eq(sn_switch_reconfigure(sw, &cfg, &err), 0);
	ck_assert_uint_eq(stats().fdb_entries, 0);
	cfg.txq_len = TXQ * 2;
	ck_assert_int_eq(sn_switch_reconfigure(sw, &cfg, &err), -EBUSY);
	ck_assert(strstr(err.msg, "txq-len"));
	cfg.txq_len = TXQ - 1; /* rounds up to what it is */
	cfg.fdb_max = 0;
	ck_assert_int_eq(sn_switch_reconfigure(sw, &cfg, &err), -EINVAL);
	cfg.fdb_max = 8;
	cfg.pool_frames = POOL + 1;
	ck_assert_int_eq(sn_switch_reconfigure(sw, &cfg, &err), -EBUSY);
	ck_assert_uint_eq(stats().fdb_max, 4); /* nothing changed */
	cfg.pool_frames = POOL;
	cfg.sock_buf = 1; /* less than a page */
	ck_assert_int_eq(sn_switch_reconfigure(sw, &cfg, &err), -EINVAL);
	ck_assert(strstr(err.msg, "sock-buf=1"));
	ck_assert_uint_eq(stats().fdb_max, 4);
	cfg.sock_buf = 0;
	ck_assert_int_eq(sn_switch_reconfigure(sw, &cfg, &err), 0);
	sn_switch_get_config(sw, &cfg);
	ck_assert_uint_eq(cfg.sock_buf, 0);
}
END_TEST

START_TEST(bad_specs)
{
	static const struct {
		const char *spec;
		const char *needle;
	} bad[] = {
		{"stream,listen=unix:/tmp/x,bogus=1", "bogus"},
		/* named before the missing listen= or connect= it leaves behind */
		{"stream,listn=unix:/tmp/x", "unknown key 'listn' for port kind 'stream'"},
		{"seqpacket,conect=/tmp/x", "unknown key 'conect'"},
		{"nosuchkind", "nosuchkind"},
		{"nosuchkind,a=1", "nosuchkind"},
		{"stream", "listen"},
		{"stream,listen=unix:/tmp/x,connect=unix:/tmp/y", "connect"},
		{"stream,listen=unix:/tmp/x,mtu=10", "mtu"},
		{"stream,listen=unix:/tmp/x,mtu=abc", "mtu"},
		{"stream,listen=unix:/tmp/x,framing=sideways", "framing"},
		{"stream,listen=unix:/tmp/x,name=", "name"},
		{"stream,listen=unix:/tmp/x,name=a/b", "name"},
		{"stream,listen", "listen"},
		{"stream,name=a,name=b", "name"},
		{"", "empty"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sn_error err = {{0}};
		char name[SN_PORT_NAME_MAX] = "untouched";
		int r = sn_switch_add_port(sw, bad[i].spec, name, sizeof(name), &err);

		ck_assert_msg(r == -EINVAL, "'%s' gave %d, want -EINVAL", bad[i].spec, r);
		ck_assert_msg(strstr(err.msg, bad[i].needle), "'%s': message '%s' does not name '%s'",
			      bad[i].spec, err.msg, bad[i].needle);
		ck_assert_str_eq(name, "untouched");
	}
	ck_assert_uint_eq(stats().ports, 0);
	/* an unknown key is found before anything is opened: no socket file appears */
	{
		char path[64], spec[128];
		struct sn_error err;

		snprintf(path, sizeof(path), "/tmp/sn-unit-%ld.sock", (long)getpid());
		snprintf(spec, sizeof(spec), "stream,listen=unix:%s,bogus=1", path);
		ck_assert_int_eq(sn_switch_add_port(sw, spec, NULL, 0, &err), -EINVAL);
		ck_assert_int_ne(access(path, F_OK), 0);
	}
	/* a NULL error struct is allowed */
	ck_assert_int_eq(sn_switch_add_port(sw, "nosuchkind", NULL, 0, NULL), -EINVAL);
}
END_TEST

static int state_visit(const struct sn_port_info *p, void *ctx)
{
	*(enum sn_port_state *)ctx = p->state;
	return 0;
}

START_TEST(listener_port)
{
	char dir[] = "/tmp/sn-unit-XXXXXX", path[64], spec[128], name[SN_PORT_NAME_MAX] = "";
	enum sn_port_state state = SN_PORT_UP;
	struct sn_error err;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/l.sock", dir);
	snprintf(spec, sizeof(spec), "stream,listen=unix:%s,name=lst", path);
	ck_assert_int_eq(sn_switch_add_port(sw, spec, name, sizeof(name), &err), 0);
	ck_assert_str_eq(name, "lst");
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_uint_eq(stats().ports, 1);
	ck_assert_int_eq(sn_switch_foreach_port(sw, state_visit, &state), 0);
	ck_assert_int_eq(state, SN_PORT_LISTENING);
	/* a listener carries no frames: it cannot own a MAC */
	ck_assert_int_eq(sn_switch_fdb_add_static(sw, mac_x, 0, "lst"), -ENOENT);
	/* its name and its live socket are taken */
	snprintf(spec, sizeof(spec), "stream,listen=unix:%s/other.sock,name=lst", dir);
	ck_assert_int_eq(sn_switch_add_port(sw, spec, NULL, 0, &err), -EEXIST);
	snprintf(spec, sizeof(spec), "stream,listen=unix:%s", path);
	ck_assert_int_eq(sn_switch_add_port(sw, spec, NULL, 0, &err), -EADDRINUSE);
	ck_assert_uint_eq(stats().ports, 1);
	ck_assert_int_eq(sn_switch_del_port(sw, "lst"), 0);
	ck_assert_int_ne(access(path, F_OK), 0);
	ck_assert_uint_eq(stats().ports, 0);
	run();
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(ager)
{
	struct sn_switch_config cfg;
	struct tport *a, *b;
	double t_b;

	/* a switch of our own with a short aging time; the loop clock is real */
	sn_switch_destroy(sw);
	sn_switch_config_init(&cfg);
	cfg.pool_frames = 64;
	cfg.fdb_aging = 0.2;
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &sw), 0);
	a = tport_new("a", 0);
	b = tport_new("b", 0);

	ev_now_update(loop);
	inject(a, bcast, mac_a, 60);
	ck_assert(ev_is_active(&sw->ager));
	/* the switch alone must not keep the loop running: this returns at once */
	ev_run(loop, 0);
	usleep(100 * 1000);
	ev_now_update(loop);
	inject(b, bcast, mac_b, 60);
	t_b = ev_now(loop);
	ck_assert_uint_eq(stats().fdb_entries, 2);
	usleep(150 * 1000);
	run();
	/* the timer removed mac_a itself: not just a miss on lookup */
	ck_assert_uint_eq(a->base.stats.fdb_entries, 0);
	if (ev_now(loop) - t_b < cfg.fdb_aging) {
		ck_assert_uint_eq(stats().fdb_entries, 1);
		ck_assert(ev_is_active(&sw->ager));
	}
	usleep(250 * 1000);
	run();
	ck_assert_uint_eq(stats().fdb_entries, 0);
	ck_assert(!ev_is_active(&sw->ager));
	/* nothing left to age: a new station starts the timer again */
	ev_now_update(loop);
	inject(a, bcast, mac_a, 60);
	ck_assert(ev_is_active(&sw->ager));
	ev_run(loop, 0);
	ck_assert_uint_eq(stats().fdb_entries, 1);
}
END_TEST

START_TEST(create_rejects)
{
	struct sn_switch_config cfg;
	struct sn_switch *s2 = NULL;

	sn_switch_config_init(&cfg);
	ck_assert_int_eq(sn_switch_create(NULL, &cfg, &s2), -EINVAL);
	ck_assert_int_eq(sn_switch_create(loop, &cfg, NULL), -EINVAL);
	cfg.pool_frames = 10;
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &s2), -EINVAL);
	sn_switch_config_init(&cfg);
	cfg.txq_len = 0;
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &s2), -EINVAL);
	sn_switch_config_init(&cfg);
	cfg.fdb_max = 0;
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &s2), -EINVAL);
	ck_assert_ptr_null(s2);
	sn_switch_destroy(NULL);
	/* defaults work, and the txq length is rounded up to a power of two */
	sn_switch_config_init(&cfg);
	cfg.pool_frames = 64;
	cfg.txq_len = 100;
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &s2), 0);
	ck_assert_uint_eq(s2->cfg.txq_len, 128);
	sn_switch_destroy(s2);
}
END_TEST

/* A caller built against an older header sets fewer fields: the rest keep their defaults. A size
 * the library cannot know is refused. */
START_TEST(config_size)
{
	struct sn_switch_config cfg;
	struct sn_switch *s2 = NULL;

	sn_switch_config_init(&cfg);
	ck_assert_uint_eq(cfg.size, sizeof(cfg));
	cfg.size = 2;
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &s2), -EINVAL);
	cfg.size = sizeof(cfg) + 8;
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &s2), -EINVAL);
	ck_assert_ptr_null(s2);
	sn_switch_config_init(&cfg);
	cfg.pool_frames = 64;
	cfg.fdb_evict = true; /* past the size below: not seen */
	cfg.size = offsetof(struct sn_switch_config, fdb_evict);
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &s2), 0);
	ck_assert_uint_eq(s2->cfg.pool_frames, 64);
	ck_assert(!s2->fdb.evict);
	sn_switch_destroy(s2);
}
END_TEST

START_TEST(fdb_del)
{
	struct tport *a = tport_new("a", 0);

	ck_assert_int_eq(sn_switch_fdb_add_static(sw, mac_a, 7, "a"), 0);
	ck_assert_int_eq(sn_switch_fdb_del(sw, mac_a, 7), 0);
	ck_assert_int_eq(sn_switch_fdb_del(sw, mac_a, 7), -ENOENT);
	ck_assert_int_eq(sn_switch_fdb_del(sw, mac_a, 4096), -EINVAL);
	inject(a, bcast, mac_b, 60);
	ck_assert_int_eq(sn_switch_fdb_del(sw, mac_b, 0), 0); /* a learned one too */
	ck_assert_uint_eq(stats().fdb_entries, 0);
}
END_TEST

static bool readable(int fd, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};

	return poll(&p, 1, ms) == 1;
}

/* A VMM hands over one end of a socketpair: frames go both ways, and the port goes with its
 * peer. */
START_TEST(stream_fd)
{
	struct sn_error err;
	char name[SN_PORT_NAME_MAX];
	int a[2], b[2], d[2];
	uint8_t rec[4 + 60] = {0, 0, 0, 60}, got[256];
	ssize_t n = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	ck_assert_int_eq(sn_switch_add_stream_fd(sw, a[0], SN_STREAM_QEMU, "vm-a", name, sizeof(name), &err), 0);
	ck_assert_str_eq(name, "vm-a");
	ck_assert_int_eq(sn_switch_add_stream_fd(sw, b[0], SN_STREAM_QEMU, NULL, name, sizeof(name), &err), 0);
	ck_assert_str_eq(name, "stream0");
	/* refusals leave the descriptor with the caller */
	ck_assert_int_eq(sn_switch_add_stream_fd(sw, b[1], SN_STREAM_QEMU, "vm-a", NULL, 0, &err), -EEXIST);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM, 0, d), 0);
	ck_assert_int_eq(sn_switch_add_stream_fd(sw, d[0], SN_STREAM_QEMU, NULL, NULL, 0, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, "not a stream socket"), "%s", err.msg);
	ck_assert_int_eq(sn_switch_add_stream_fd(sw, d[0], (enum sn_stream_framing)7, NULL, NULL, 0, &err), -EINVAL);
	close(d[0]);
	close(d[1]);
	memcpy(rec + 4, bcast, 6);
	memcpy(rec + 10, mac_a, 6);
	ck_assert_int_eq(write(a[1], rec, sizeof(rec)), (ssize_t)sizeof(rec));
	for (int i = 0; i < 100 && !readable(b[1], 0); i++) {
		run();
		usleep(1000);
	}
	n = read(b[1], got, sizeof(got));
	ck_assert_int_eq(n, (ssize_t)sizeof(rec));
	ck_assert_mem_eq(got, rec, sizeof(rec));
	/* the VMM closes its end: the port is gone */
	close(a[1]);
	for (int i = 0; i < 100 && sn_switch_find_port(sw, "vm-a"); i++) {
		run();
		usleep(1000);
	}
	ck_assert_ptr_null(sn_switch_find_port(sw, "vm-a"));
	ck_assert_ptr_nonnull(sn_switch_find_port(sw, "stream0"));
	close(b[1]);
}
END_TEST

/* ---- overload: flush marks, back-pressure, stalls, the pool's share ---- */

/* A reader that hands over many batches per wake-up, as a stream port does after a 256 KiB
 * read, does not overrun a queue whose peer keeps up: the queue goes out after each batch. */
START_TEST(flush_at_mark)
{
	struct tport *a = tport_new("a", 0), *b = tport_new("b", 0);

	inject(b, bcast, mac_b, 60);
	run();
	for (int batch = 0; batch < 40; batch++) {
		struct sn_frame *f[16];

		for (int i = 0; i < 16; i++) {
			f[i] = sn_port_frame_get(&a->base, 60);
			ck_assert_ptr_nonnull(f[i]);
			memset(f[i]->data, 0, 60);
			memcpy(f[i]->data, mac_b, 6);
			memcpy(f[i]->data + 6, mac_a, 6);
			f[i]->len = 60;
		}
		sn_port_input(&a->base, f, 16);
	}
	/* 640 frames into a queue of 64 without the loop running once */
	ck_assert_uint_eq(b->base.stats.drop_txq_full, 0);
	run();
	ck_assert_uint_eq(b->got, 640);
	ck_assert_uint_eq(stats().pool_free, POOL);
}
END_TEST

static void unicast_burst(struct tport *from, const uint8_t dst[6], const uint8_t src[6], int n)
{
	for (int i = 0; i < n; i++)
		inject(from, dst, src, 60);
}

/* Known unicast into a filling queue pauses a sender that can pause, and loses nothing; the
 * sender resumes once the queue drained. */
START_TEST(backpressure_unicast)
{
	struct tport *a = tport_new_bp("a"), *b = tport_new("b", 0), *c = tport_new("c", 0);

	inject(b, bcast, mac_b, 60);
	inject(c, bcast, mac_c, 60);
	run();
	b->stuck = true;
	unicast_burst(a, mac_b, mac_a, TXQ / 2 - 1);
	ck_assert(!sn_port_rx_paused(&a->base));
	inject(a, mac_b, mac_a, 60);
	/* half the ring: a must stop reading its peer */
	ck_assert(sn_port_rx_paused(&a->base));
	ck_assert_uint_eq(a->base.stats.rx_pauses, 1);
	/* what a already read still goes in: the other half of the ring takes it */
	unicast_burst(a, mac_b, mac_a, TXQ / 4);
	ck_assert_uint_eq(b->base.stats.drop_txq_full, 0);
	run();
	ck_assert_uint_eq(a->resumed, 0);
	/* b reads again: below a quarter of the ring a goes on, from the switch's ev_prepare */
	b->stuck = false;
	sn_port_want_flush(&b->base);
	run();
	ck_assert_uint_eq(b->got, 1 + TXQ / 2 + TXQ / 4); /* and c's broadcast */
	ck_assert(!sn_port_rx_paused(&a->base));
	ck_assert_uint_eq(a->resumed, 1);
	ck_assert_uint_eq(stats().pool_free, POOL);
}
END_TEST

/* Floods never pause their sender: a stuck port drops its copy, the others get theirs. */
START_TEST(flood_never_pauses)
{
	struct tport *a = tport_new_bp("a"), *b = tport_new("b", 0), *s = tport_new("stuck", 0);

	s->stuck = true;
	for (int i = 0; i < 2 * TXQ; i++) {
		inject(a, bcast, mac_a, 60);
		if (i % 8 == 7)
			run();
	}
	run();
	ck_assert(!sn_port_rx_paused(&a->base));
	ck_assert_uint_eq(a->base.stats.rx_pauses, 0);
	ck_assert_uint_eq(b->got, 2 * TXQ);
	ck_assert_uint_eq(s->base.stats.drop_txq_full, TXQ);
}
END_TEST

/* A peer that stops taking frames holds its senders back for stall_timeout at most; then its
 * queue is cut to a few frames, its senders go on and what it cannot take is dropped. */
START_TEST(stall_releases)
{
	struct sn_switch_config cfg;
	struct tport *a, *b, *c;

	teardown();
	sn_switch_config_init(&cfg);
	cfg.pool_frames = POOL;
	cfg.txq_len = TXQ;
	cfg.stall_timeout = 0.05;
	setup_cfg(&cfg);
	a = tport_new_bp("a");
	b = tport_new("b", 0);
	c = tport_new("c", 0);
	inject(b, bcast, mac_b, 60);
	inject(c, bcast, mac_c, 60);
	run();
	b->stuck = true;
	unicast_burst(a, mac_b, mac_a, TXQ / 2);
	ck_assert(sn_port_rx_paused(&a->base));
	/* nothing feeds b now; its watchdog finds the stall */
	for (int i = 0; i < 50 && sn_port_rx_paused(&a->base); i++) {
		usleep(10000);
		run();
	}
	ck_assert(!sn_port_rx_paused(&a->base));
	run(); /* the ev_prepare resumes a */
	ck_assert_uint_eq(a->resumed, 1);
	ck_assert_uint_eq(b->base.stats.stalls, 1);
	ck_assert_uint_eq(sn_txq_len(&b->base.txq), TXQ / 4 < 32 ? TXQ / 4 : 32);
	ck_assert_uint_eq(b->base.stats.drop_txq_full, TXQ / 2 - sn_txq_len(&b->base.txq));
	/* while stalled, b takes no more than that, and a is not paused for it */
	unicast_burst(a, mac_b, mac_a, 10);
	ck_assert(!sn_port_rx_paused(&a->base));
	ck_assert_uint_eq(b->base.stats.drop_txq_full, TXQ / 2 + 10 - sn_txq_len(&b->base.txq));
	/* a and c talk meanwhile */
	inject(a, mac_c, mac_a, 60);
	run();
	ck_assert_uint_eq(c->got, 2);
	/* b takes what it has: the stall is over, and its queue is whole again */
	b->stuck = false;
	sn_port_want_flush(&b->base);
	run();
	ck_assert(!b->base.stalled);
	unicast_burst(a, mac_b, mac_a, TXQ / 4);
	run();
	ck_assert_uint_eq(b->got, 1 + (TXQ / 4 < 32 ? TXQ / 4 : 32) + TXQ / 4);
	ck_assert_uint_eq(stats().pool_free, POOL);
}
END_TEST

/* A peer that takes nothing while frames wait for it is stalled even when nobody waits on it:
 * the flooded frames it pinned go back to the pool. */
START_TEST(stuck_flood_receiver_stalls)
{
	struct sn_switch_config cfg;
	struct tport *a, *b, *s;

	teardown();
	sn_switch_config_init(&cfg);
	cfg.pool_frames = POOL;
	cfg.txq_len = TXQ;
	cfg.stall_timeout = 0.05;
	setup_cfg(&cfg);
	a = tport_new("a", 0);
	b = tport_new("b", 0);
	s = tport_new("stuck", 0);
	s->stuck = true;
	for (int i = 0; i < TXQ; i++)
		inject(a, bcast, mac_a, 60);
	run();
	ck_assert_uint_eq(sn_txq_len(&s->base.txq), TXQ);
	for (int i = 0; i < 50 && !s->base.stalled; i++) {
		usleep(10000);
		run();
	}
	ck_assert(s->base.stalled);
	ck_assert_uint_eq(s->base.stats.stalls, 1);
	ck_assert_uint_eq(sn_txq_len(&s->base.txq), TXQ / 4 < 32 ? TXQ / 4 : 32);
	ck_assert_uint_eq(stats().pool_free, POOL - sn_txq_len(&s->base.txq));
	ck_assert_uint_eq(b->got, TXQ);
}
END_TEST

/* However many peers stop reading, a congested queue holds no more frames than there are free
 * buffers, so the ports that still work always find some. */
START_TEST(pool_share)
{
	struct sn_switch_config cfg;
	struct tport *a, *c, *d, *s[4];
	uint8_t mac_s[4][6];

	teardown();
	sn_switch_config_init(&cfg);
	cfg.pool_frames = POOL;
	cfg.txq_len = 128; /* four full queues would take the pool twice over */
	setup_cfg(&cfg);
	a = tport_new("a", 0);
	c = tport_new("c", 0);
	d = tport_new("d", 0);
	for (int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "s%d", i);
		s[i] = tport_new(name, 0);
		memcpy(mac_s[i], mac_x, 6);
		mac_s[i][5] = (uint8_t)i;
		inject(s[i], bcast, mac_s[i], 60);
	}
	inject(c, bcast, mac_c, 60);
	inject(d, bcast, mac_b, 60);
	run();
	for (int i = 0; i < 4; i++)
		s[i]->stuck = true;
	/* a hostile sender fills every stuck queue with frames of its own */
	for (int round = 0; round < 256; round++)
		for (int i = 0; i < 4; i++)
			if (stats().pool_free > 0)
				inject(a, mac_s[i], mac_a, 60);
	ck_assert_uint_gt(stats().pool_free, 0);
	/* c and d still talk, both ways */
	for (int i = 0; i < 16; i++) {
		inject(c, mac_b, mac_c, 60);
		inject(d, mac_c, mac_b, 60);
		run();
	}
	ck_assert_uint_eq(c->got, 4 + 1 + 16);
	ck_assert_uint_eq(d->got, 4 + 1 + 16);
}
END_TEST

/* A port that goes down or away releases the senders waiting for it. */
START_TEST(backpressure_target_gone)
{
	struct tport *a = tport_new_bp("a"), *b = tport_new("b", 0), *c = tport_new_bp("c");

	inject(b, bcast, mac_b, 60);
	run();
	b->stuck = true;
	unicast_burst(a, mac_b, mac_a, TXQ / 2);
	unicast_burst(c, mac_b, mac_c, 1);
	ck_assert(sn_port_rx_paused(&a->base));
	ck_assert(sn_port_rx_paused(&c->base));
	sn_port_close(&c->base); /* a waiter that goes away leaves the list */
	sn_port_set_state(&b->base, SN_PORT_DOWN);
	ck_assert(!sn_port_rx_paused(&a->base));
	run();
	ck_assert_uint_eq(a->resumed, 1);
	ck_assert_uint_eq(resumes, 1); /* not c, which is gone */
	ck_assert_uint_eq(stats().pool_free, POOL);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"broadcast_floods", broadcast_floods},
		{"unknown_unicast_floods", unknown_unicast_floods},
		{"learned_unicast", learned_unicast},
		{"never_back_to_ingress", never_back_to_ingress},
		{"runt", runt},
		{"oversize", oversize},
		{"txq_full", txq_full},
		{"egress_mtu", egress_mtu},
		{"del_port_forgets", del_port_forgets},
		{"down_forgets", down_forgets},
		{"no_leak_no_copy", no_leak_no_copy},
		{"foreach_and_flush", foreach_and_flush},
		{"static_entry", static_entry},
		{"static_to_down_port", static_to_down_port},
		{"mac_move", mac_move},
		{"vlans_apart", vlans_apart},
		{"pool_empty", pool_empty},
		{"foreach_port", foreach_port},
		{"bad_specs", bad_specs},
		{"port_spec_kept", port_spec_kept},
		{"reconfigure", reconfigure},
		{"inherited_fd", inherited_fd},
		{"listener_port", listener_port},
		{"ager", ager},
		{"create_rejects", create_rejects},
		{"config_size", config_size},
		{"fdb_del", fdb_del},
		{"stream_fd", stream_fd},
		{"flush_at_mark", flush_at_mark},
		{"backpressure_unicast", backpressure_unicast},
		{"flood_never_pauses", flood_never_pauses},
		{"stall_releases", stall_releases},
		{"pool_share", pool_share},
		{"stuck_flood_receiver_stalls", stuck_flood_receiver_stalls},
		{"backpressure_target_gone", backpressure_target_gone},
	};

	return sn_check_main("switch", cases, SN_CHECK_N(cases), setup, teardown, 20);
}
