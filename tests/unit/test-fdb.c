/* test-fdb.c - unit tests of the forwarding database, driven by a fake clock (the @now argument).
 *
 * Besides the single behaviours (learning, aging, caps, moves, static entries, flushing) a churn
 * test runs thousands of random learns, deletions and aging passes against a plain array model
 * and checks the hash table's probe invariant after every step: a bug in the backward-shift
 * deletion shows up as a lost or duplicated entry long before it shows up in a switch. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdb.h"
#include "port.h"

#include "sn-check.h"

static struct sn_fdb fdb;
static struct sn_port p1, p2, p3;

static const uint8_t mac_a[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0a};
static const uint8_t mac_b[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0b};
static const uint8_t mac_c[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0c};

static void mac_n(uint8_t mac[6], uint32_t n)
{
	mac[0] = 0x02;
	mac[1] = 0x00;
	mac[2] = (uint8_t)(n >> 24);
	mac[3] = (uint8_t)(n >> 16);
	mac[4] = (uint8_t)(n >> 8);
	mac[5] = (uint8_t)n;
}

static void ports_zero(void)
{
	memset(&p1, 0, sizeof(p1));
	memset(&p2, 0, sizeof(p2));
	memset(&p3, 0, sizeof(p3));
}

static void setup(void)
{
	ports_zero();
	ck_assert_int_eq(sn_fdb_init(&fdb, 64, 0, 300), 0);
}

static void teardown(void)
{
	sn_fdb_finish(&fdb);
}

/* For fixtures that need other caps: replace the table the default fixture made. */
static void reinit(uint32_t max, uint32_t port_max, double aging)
{
	sn_fdb_finish(&fdb);
	ports_zero();
	ck_assert_int_eq(sn_fdb_init(&fdb, max, port_max, aging), 0);
}

START_TEST(init_rejects)
{
	struct sn_fdb f;

	ck_assert_int_eq(sn_fdb_init(&f, 0, 0, 300), -EINVAL);
	ck_assert_int_eq(sn_fdb_init(&f, 16, 0, 0), -EINVAL);
	ck_assert_int_eq(sn_fdb_init(&f, 16, 0, -1), -EINVAL);
}
END_TEST

START_TEST(learn)
{
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 10), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_b, 0, &p2, 10), SN_FDB_LEARNED);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 11), &p1);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_b, 0, 11), &p2);
	ck_assert_uint_eq(fdb.count, 2);
	ck_assert_uint_eq(p1.stats.fdb_entries, 1);
	ck_assert_uint_eq(p2.stats.fdb_entries, 1);
	ck_assert_uint_eq(p1.stats.fdb_refused, 0);
}
END_TEST

START_TEST(lookup_unknown)
{
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 0, 0));
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 0), SN_FDB_LEARNED);
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_b, 0, 0));
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 1, 0));
}
END_TEST

START_TEST(refresh)
{
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 200), SN_FDB_REFRESHED);
	ck_assert_uint_eq(fdb.count, 1);
	ck_assert_uint_eq(p1.stats.fdb_entries, 1);
	/* 400 s after the first sighting but 200 s after the refresh: still there */
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 400), &p1);
	ck_assert_double_eq(sn_fdb_age(&fdb, 400), 500);
	ck_assert_uint_eq(fdb.count, 1);
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 0, 500));
}
END_TEST

START_TEST(expired_is_miss)
{
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 1000), SN_FDB_LEARNED);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 1299.5), &p1);
	/* no sn_fdb_age() in between: the lookup itself must judge the age */
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 0, 1300));
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 0, 5000));
	ck_assert_uint_eq(fdb.count, 1);
}
END_TEST

START_TEST(age)
{
	ck_assert_double_eq(sn_fdb_age(&fdb, 0), 0); /* empty: nothing will expire */
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_b, 0, &p2, 100), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_c, 0, &p2, 50), SN_FDB_LEARNED);
	ck_assert_double_eq(sn_fdb_age(&fdb, 10), 300);
	ck_assert_uint_eq(fdb.count, 3);
	ck_assert_double_eq(sn_fdb_age(&fdb, 320), 350);
	ck_assert_uint_eq(fdb.count, 2);
	ck_assert_uint_eq(p1.stats.fdb_entries, 0);
	ck_assert_uint_eq(p2.stats.fdb_entries, 2);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_b, 0, 320), &p2);
	ck_assert_double_eq(sn_fdb_age(&fdb, 400), 0);
	ck_assert_uint_eq(fdb.count, 0);
	ck_assert_uint_eq(p2.stats.fdb_entries, 0);
}
END_TEST

START_TEST(table_cap)
{
	uint8_t m[6];

	reinit(4, 0, 300);
	for (uint32_t i = 0; i < 4; i++) {
		mac_n(m, i);
		ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 0), SN_FDB_LEARNED);
	}
	mac_n(m, 4);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 1), SN_FDB_REFUSED_TABLE);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 2), SN_FDB_REFUSED_TABLE);
	ck_assert_uint_eq(fdb.refused_table, 2);
	ck_assert_uint_eq(fdb.refused_port, 0);
	ck_assert_uint_eq(p2.stats.fdb_refused, 2);
	ck_assert_uint_eq(p2.stats.fdb_entries, 0);
	ck_assert_uint_eq(fdb.count, 4);
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, m, 0, 2));
	/* a known station still refreshes in a full table */
	mac_n(m, 0);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 3), SN_FDB_REFRESHED);
	/* static entries count against the cap too */
	ck_assert_int_eq(sn_fdb_add_static(&fdb, mac_a, 0, &p3), -ENOSPC);
}
END_TEST

START_TEST(port_cap)
{
	uint8_t m[6];

	reinit(16, 2, 300);
	mac_n(m, 1);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 0), SN_FDB_LEARNED);
	mac_n(m, 2);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 0), SN_FDB_LEARNED);
	mac_n(m, 3);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 0), SN_FDB_REFUSED_PORT);
	ck_assert_uint_eq(fdb.refused_port, 1);
	ck_assert_uint_eq(fdb.refused_table, 0);
	ck_assert_uint_eq(p1.stats.fdb_refused, 1);
	ck_assert_uint_eq(p1.stats.fdb_entries, 2);
	/* another port is not held back by p1's cap */
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 0), SN_FDB_LEARNED);
	mac_n(m, 4);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 0), SN_FDB_LEARNED);
	/* a move onto a port at its cap is refused as well, and the entry stays where it was */
	mac_n(m, 1);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 1), SN_FDB_REFUSED_PORT);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, m, 0, 1), &p1);
	ck_assert_uint_eq(fdb.refused_port, 2);
	ck_assert_uint_eq(p2.stats.fdb_refused, 1);
	ck_assert_uint_eq(fdb.moves, 0);
}
END_TEST

START_TEST(full_of_expired)
{
	uint8_t m[6];

	reinit(8, 0, 300);
	for (uint32_t i = 0; i < 8; i++) {
		mac_n(m, i);
		ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 0), SN_FDB_LEARNED);
	}
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p2, 299), SN_FDB_REFUSED_TABLE);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p2, 300), SN_FDB_LEARNED);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 300), &p2);
	ck_assert_uint_eq(fdb.count, 1);
	ck_assert_uint_eq(p1.stats.fdb_entries, 0);
	ck_assert_uint_eq(p2.stats.fdb_entries, 1);
	ck_assert_uint_eq(fdb.refused_table, 1);
}
END_TEST

START_TEST(move)
{
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_b, 0, &p1, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p2, 5), SN_FDB_MOVED);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 5), &p2);
	ck_assert_uint_eq(fdb.moves, 1);
	ck_assert_uint_eq(fdb.count, 2);
	ck_assert_uint_eq(p1.stats.fdb_entries, 1);
	ck_assert_uint_eq(p2.stats.fdb_entries, 1);
	/* the move refreshed it */
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 302), &p2);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 6), SN_FDB_MOVED);
	ck_assert_uint_eq(fdb.moves, 2);
	ck_assert_uint_eq(p1.stats.fdb_entries, 2);
	ck_assert_uint_eq(p2.stats.fdb_entries, 0);
}
END_TEST

START_TEST(static_entries)
{
	ck_assert_int_eq(sn_fdb_add_static(&fdb, mac_a, 0, &p1), 0);
	ck_assert_uint_eq(p1.stats.fdb_entries, 1);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 0), &p1);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 1e9), &p1);
	/* never moves */
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p2, 10), SN_FDB_IGNORED);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 10), &p1);
	ck_assert_uint_eq(fdb.moves, 0);
	ck_assert_uint_eq(p2.stats.fdb_entries, 0);
	/* seen again on its own port: fine, still static */
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 10), SN_FDB_REFRESHED);
	/* never ages: nothing to expire */
	ck_assert_double_eq(sn_fdb_age(&fdb, 1e9), 0);
	ck_assert_uint_eq(fdb.count, 1);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 2e9), &p1);
	/* a learned entry turned static moves ownership */
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_b, 0, &p2, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_add_static(&fdb, mac_b, 0, &p3), 0);
	ck_assert_uint_eq(p2.stats.fdb_entries, 0);
	ck_assert_uint_eq(p3.stats.fdb_entries, 1);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_b, 0, 1e9), &p3);
	ck_assert_uint_eq(fdb.count, 2);
	/* group addresses cannot be pinned */
	ck_assert_int_eq(sn_fdb_add_static(&fdb, (const uint8_t[6]){0x01, 0, 0x5e, 0, 0, 1}, 0, &p1),
			 -EINVAL);
	ck_assert_int_eq(sn_fdb_del(&fdb, mac_a, 0), 0);
	ck_assert_int_eq(sn_fdb_del(&fdb, mac_a, 0), -ENOENT);
	ck_assert_uint_eq(p1.stats.fdb_entries, 0);
}
END_TEST

START_TEST(flush)
{
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_b, 0, &p1, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_add_static(&fdb, mac_c, 0, &p1), 0);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 1, &p2, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_b, 1, &p3, 0), SN_FDB_LEARNED);

	ck_assert_uint_eq(sn_fdb_flush(&fdb, &p1, false), 2);
	ck_assert_uint_eq(p1.stats.fdb_entries, 1);
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 0, 0));
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_c, 0, 0), &p1);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 1, 0), &p2);
	ck_assert_uint_eq(fdb.count, 3);

	ck_assert_uint_eq(sn_fdb_flush(&fdb, NULL, false), 2);
	ck_assert_uint_eq(fdb.count, 1);
	ck_assert_uint_eq(p2.stats.fdb_entries, 0);
	ck_assert_uint_eq(p3.stats.fdb_entries, 0);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_c, 0, 0), &p1);

	ck_assert_uint_eq(sn_fdb_flush(&fdb, &p2, true), 0);
	ck_assert_uint_eq(sn_fdb_flush(&fdb, &p1, true), 1);
	ck_assert_uint_eq(fdb.count, 0);
	ck_assert_uint_eq(p1.stats.fdb_entries, 0);
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_c, 0, 0));
}
END_TEST

START_TEST(not_learnable)
{
	static const uint8_t bad[][6] = {
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01},
		{0x33, 0x33, 0x00, 0x00, 0x00, 0x01},
		{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00},
		{0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(sn_fdb_learn(&fdb, bad[i], 0, &p1, 0), SN_FDB_IGNORED);
		ck_assert_int_eq(sn_fdb_learn(&fdb, bad[i], 7, &p1, 0), SN_FDB_IGNORED);
		ck_assert_ptr_null(sn_fdb_lookup(&fdb, bad[i], 0, 0));
	}
	ck_assert_uint_eq(fdb.count, 0);
	ck_assert_uint_eq(p1.stats.fdb_entries, 0);
	ck_assert_uint_eq(p1.stats.fdb_refused, 0);
	/* a locally administered unicast address (bit 1 set) is fine */
	ck_assert_int_eq(sn_fdb_learn(&fdb, (const uint8_t[6]){0x02, 0, 0, 0, 0, 1}, 0, &p1, 0),
			 SN_FDB_LEARNED);
}
END_TEST

START_TEST(vlans)
{
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p1, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 5, &p2, 0), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 4095, &p3, 0), SN_FDB_LEARNED);
	ck_assert_uint_eq(fdb.count, 3);
	ck_assert_uint_eq(fdb.moves, 0);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 0), &p1);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 5, 0), &p2);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 4095, 0), &p3);
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 6, 0));
	ck_assert_int_eq(sn_fdb_del(&fdb, mac_a, 5), 0);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 0), &p1);
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 5, 0));
}
END_TEST

START_TEST(key_roundtrip)
{
	uint8_t m[6];
	uint16_t vlan;

	sn_fdb_key_mac(sn_fdb_key(mac_b, 4094), m, &vlan);
	ck_assert_mem_eq(m, mac_b, 6);
	ck_assert_uint_eq(vlan, 4094);
	sn_fdb_key_mac(sn_fdb_key((const uint8_t[6]){0}, 0), m, &vlan);
	ck_assert_uint_eq(vlan, 0);
	ck_assert_uint_ne(sn_fdb_key((const uint8_t[6]){0}, 0), 0);
}
END_TEST

/* ---- churn against a reference model ---- */

struct model_entry {
	uint8_t mac[6];
	uint16_t vlan;
	bool present;
	bool is_static;
	int port;
	double seen;
};

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	/* xorshift64*: reproducible from the seed printed on failure */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32) % n;
}

/* The slot a key hashes to: must match slot_of() in fdb.c (white-box on purpose, so the probe
 * invariant below can be checked from the outside). */
static uint32_t home_of(const struct sn_fdb *f, uint64_t key)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & f->mask;
}

/* Every key must be reachable from its home slot without crossing an empty slot, and appear once. */
static void check_probe_invariant(const struct sn_fdb *f)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i <= f->mask; i++) {
		uint64_t key = f->slots[i].key;
		uint32_t j;

		if (!key)
			continue;
		n++;
		for (j = home_of(f, key); j != i; j = (j + 1) & f->mask) {
			if (f->slots[j].key == 0)
				ck_abort_msg("slot %u unreachable from its home: hole at %u", i, j);
			if (f->slots[j].key == key)
				ck_abort_msg("key in slots %u and %u", j, i);
		}
	}
	if (n != f->count)
		ck_abort_msg("%u keys in the table, count says %u", n, f->count);
}

static void churn(uint32_t max, uint32_t universe, uint32_t steps, uint64_t seed)
{
	struct sn_port ports[3];
	struct model_entry *m = calloc(universe, sizeof(*m));
	double now = 1000, aging = 50;
	uint32_t count = 0;

	ck_assert_ptr_nonnull(m);
	sn_fdb_finish(&fdb);
	memset(ports, 0, sizeof(ports));
	ck_assert_int_eq(sn_fdb_init(&fdb, max, 0, aging), 0);
	rng_state = seed;
	for (uint32_t k = 0; k < universe; k++) {
		/* a few MACs share their address on several VLANs */
		mac_n(m[k].mac, k / 2 * 7919);
		m[k].vlan = (uint16_t)(k % 2 ? 0 : 1 + k % 4094);
	}
	for (uint32_t step = 0; step < steps; step++) {
		uint32_t op = rnd(100), k = rnd(universe);
		struct model_entry *e = &m[k];

		if (op < 55) {
			int p = (int)rnd(3);
			enum sn_fdb_learn_result want, got;

			if (e->present && e->port == p) {
				want = SN_FDB_REFRESHED;
				if (!e->is_static)
					e->seen = now;
			} else if (e->present && e->is_static) {
				want = SN_FDB_IGNORED;
			} else if (e->present) {
				want = SN_FDB_MOVED;
				e->port = p;
				e->seen = now;
			} else {
				if (count >= max) {
					for (uint32_t i = 0; i < universe; i++) {
						if (!m[i].present || m[i].is_static || now - m[i].seen < aging)
							continue;
						m[i].present = false;
						count--;
					}
				}
				if (count >= max) {
					want = SN_FDB_REFUSED_TABLE;
				} else {
					want = SN_FDB_LEARNED;
					e->present = true;
					e->is_static = false;
					e->port = p;
					e->seen = now;
					count++;
				}
			}
			got = sn_fdb_learn(&fdb, e->mac, e->vlan, &ports[p], now);
			if (got != want)
				ck_abort_msg("seed %llu step %u: learn gave %d, model says %d",
					     (unsigned long long)seed, step, got, want);
		} else if (op < 85) {
			int r = sn_fdb_del(&fdb, e->mac, e->vlan);

			if (r != (e->present ? 0 : -ENOENT))
				ck_abort_msg("seed %llu step %u: del gave %d", (unsigned long long)seed, step,
					     r);
			if (e->present)
				count--;
			e->present = false;
		} else if (op < 88) {
			double next = 0, got;

			for (uint32_t i = 0; i < universe; i++) {
				if (!m[i].present || m[i].is_static)
					continue;
				if (now - m[i].seen >= aging) {
					m[i].present = false;
					count--;
				} else if (next == 0 || m[i].seen + aging < next) {
					next = m[i].seen + aging;
				}
			}
			got = sn_fdb_age(&fdb, now);
			if (got != next)
				ck_abort_msg("seed %llu step %u: age gave %f, model says %f",
					     (unsigned long long)seed, step, got, next);
		} else if (op < 90) {
			int p = (int)rnd(3);

			if (!e->present && count >= max)
				continue;
			ck_assert_int_eq(sn_fdb_add_static(&fdb, e->mac, e->vlan, &ports[p]), 0);
			if (!e->present)
				count++;
			e->present = true;
			e->is_static = true;
			e->port = p;
		} else if (op < 91) {
			int p = (int)rnd(3);
			uint32_t want = 0;

			for (uint32_t i = 0; i < universe; i++) {
				if (m[i].present && !m[i].is_static && m[i].port == p) {
					m[i].present = false;
					count--;
					want++;
				}
			}
			ck_assert_uint_eq(sn_fdb_flush(&fdb, &ports[p], false), want);
		} else {
			now += rnd(4);
		}

		check_probe_invariant(&fdb);
		if (fdb.count != count)
			ck_abort_msg("seed %llu step %u: count %u, model %u",
				     (unsigned long long)seed, step, fdb.count, count);
		if (step % 8 == 0 || step + 1 == steps) {
			uint32_t owned[3] = {0};

			for (uint32_t i = 0; i < universe; i++) {
				struct sn_port *want = NULL;

				if (m[i].present) {
					owned[m[i].port]++;
					if (m[i].is_static || now - m[i].seen < aging)
						want = &ports[m[i].port];
				}
				if (sn_fdb_lookup(&fdb, m[i].mac, m[i].vlan, now) != want)
					ck_abort_msg("seed %llu step %u: lookup of key %u disagrees",
						     (unsigned long long)seed, step, i);
			}
			for (int p = 0; p < 3; p++)
				ck_assert_uint_eq(ports[p].stats.fdb_entries, owned[p]);
		}
	}
	free(m);
}

START_TEST(churn_big)
{
	churn(500, 1500, 40000, 0x5eed0001);
}
END_TEST

START_TEST(churn_tiny_table)
{
	/* 16 slots for 8 entries: long runs that wrap around the end of the table */
	churn(8, 40, 40000, 0x5eed0002);
}
END_TEST

START_TEST(churn_wrap_delete)
{
	/* Fill a small table completely from one home slot region, then delete from the middle of
	 * the run in every order: the case where backward shift must move entries across the
	 * end of the array. */
	reinit(8, 0, 300);
	for (uint32_t round = 0; round < 200; round++) {
		uint8_t mac[8][6];
		uint32_t n = 0;

		for (uint32_t c = 0; n < 8; c++) {
			mac_n(mac[n], round * 100000 + c);
			/* keys whose home is one of the last two slots */
			if (home_of(&fdb, sn_fdb_key(mac[n], 0)) >= fdb.mask - 1)
				n++;
		}
		for (uint32_t i = 0; i < 8; i++)
			ck_assert_int_eq(sn_fdb_learn(&fdb, mac[i], 0, &p1, 0), SN_FDB_LEARNED);
		check_probe_invariant(&fdb);
		for (uint32_t i = 0; i < 8; i++) {
			uint32_t victim = (i * 5 + round) % 8;

			ck_assert_int_eq(sn_fdb_del(&fdb, mac[victim], 0), 0);
			check_probe_invariant(&fdb);
			for (uint32_t j = 0; j < 8; j++) {
				bool gone = false;

				for (uint32_t d = 0; d <= i; d++)
					gone |= j == (d * 5 + round) % 8;
				ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac[j], 0, 0), gone ? NULL : &p1);
			}
		}
		ck_assert_uint_eq(fdb.count, 0);
	}
}
END_TEST

/* A full table refuses new sources in O(1): it looks for expired entries only once one may
 * have expired, not on every refusal (a random-MAC flood made each refusal a full scan). */
START_TEST(full_refusal_no_scan)
{
	uint8_t m[6];

	reinit(64, 0, 300);
	for (uint32_t i = 0; i < 64; i++) {
		mac_n(m, i);
		ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 10 + i), SN_FDB_LEARNED);
	}
	for (uint32_t i = 0; i < 100000; i++) {
		mac_n(m, 1000 + i);
		ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 20 + i * 0.001), SN_FDB_REFUSED_TABLE);
	}
	ck_assert_uint_eq(fdb.scans, 0);
	ck_assert_uint_eq(fdb.refused_table, 100000);
	/* the first entry expires at 310: the next learn after that ages, once, and succeeds */
	mac_n(m, 5000000);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 310), SN_FDB_LEARNED);
	ck_assert_uint_eq(fdb.scans, 1);
	mac_n(m, 5000001);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 310.5), SN_FDB_REFUSED_TABLE);
	ck_assert_uint_eq(fdb.scans, 1);
	/* the one after expires at 311 */
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p2, 311), SN_FDB_LEARNED);
	ck_assert_uint_eq(fdb.scans, 2);
}
END_TEST

/* With eviction on, a full table makes room from the port that owns the most entries, oldest
 * first among those it samples: a flooding port evicts its own, the others keep theirs. */
START_TEST(fair_eviction)
{
	uint8_t m[6];

	reinit(8, 0, 300);
	fdb.evict = true;
	for (uint32_t i = 0; i < 6; i++) {
		mac_n(m, i);
		ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, i), SN_FDB_LEARNED);
	}
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p2, 10), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_b, 0, &p2, 11), SN_FDB_LEARNED);
	/* full: a third port's station gets in at p1's expense */
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_c, 0, &p3, 20), SN_FDB_LEARNED);
	ck_assert_uint_eq(fdb.evicted, 1);
	ck_assert_uint_eq(p1.stats.fdb_entries, 5);
	ck_assert_uint_eq(p2.stats.fdb_entries, 2);
	ck_assert_uint_eq(p3.stats.fdb_entries, 1);
	/* p1 floods new sources: each evicts one of p1's own */
	for (uint32_t i = 100; i < 200; i++) {
		mac_n(m, i);
		ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 30 + i), SN_FDB_LEARNED);
	}
	ck_assert_uint_eq(fdb.evicted, 101);
	ck_assert_uint_eq(p1.stats.fdb_entries, 5);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 300), &p2);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_b, 0, 300), &p2);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_c, 0, 300), &p3);
	/* the newest of p1's stay */
	mac_n(m, 199);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, m, 0, 300), &p1);
	ck_assert_uint_eq(fdb.count, 8);
	ck_assert_uint_eq(fdb.refused_table, 0);
}
END_TEST

/* Static entries are never evicted, and a port at its own cap is refused, not made room for. */
START_TEST(eviction_limits)
{
	uint8_t m[6];

	reinit(4, 3, 300);
	fdb.evict = true;
	for (uint32_t i = 0; i < 3; i++) {
		mac_n(m, i);
		ck_assert_int_eq(sn_fdb_add_static(&fdb, m, 0, &p1), 0);
	}
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p2, 1), SN_FDB_LEARNED);
	/* full; p1's entries are all static and p2 is the heaviest learner: p2's goes */
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_b, 0, &p3, 2), SN_FDB_LEARNED);
	ck_assert_ptr_null(sn_fdb_lookup(&fdb, mac_a, 0, 2));
	ck_assert_uint_eq(p1.stats.fdb_entries, 3);
	/* p1 is at its cap of 3: refused for the port, nothing evicted */
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_c, 0, &p1, 3), SN_FDB_REFUSED_PORT);
	ck_assert_uint_eq(fdb.evicted, 1);
	/* the heaviest learner is p3 now: its entry makes room for p2's */
	ck_assert_int_eq(sn_fdb_learn(&fdb, mac_a, 0, &p2, 4), SN_FDB_LEARNED);
	ck_assert_uint_eq(fdb.evicted, 2);
	ck_assert_uint_eq(fdb.count, 4);
}
END_TEST
/* A new cap at run time: a higher one keeps every entry and learns again; a lower one keeps the
 * static entries and only as many learned ones as fit; fewer than the static entries is
 * refused with the table as it was. */
START_TEST(set_max)
{
	uint8_t m[6];
	uint32_t found = 0;

	reinit(8, 0, 300);
	for (uint32_t i = 0; i < 8; i++) {
		mac_n(m, i);
		ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 1), SN_FDB_LEARNED);
	}
	ck_assert_int_eq(sn_fdb_add_static(&fdb, mac_a, 0, &p2), -ENOSPC);
	mac_n(m, 100);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 1), SN_FDB_REFUSED_TABLE);
	ck_assert_int_eq(sn_fdb_set_max(&fdb, 1000, 0, 2), 0);
	ck_assert_uint_eq(fdb.max, 1000);
	ck_assert_uint_eq(fdb.port_max, 1000); /* 0: the whole table */
	ck_assert_uint_ge(fdb.mask + 1, 2000);
	check_probe_invariant(&fdb);
	for (uint32_t i = 0; i < 8; i++) {
		mac_n(m, i);
		ck_assert_ptr_eq(sn_fdb_lookup(&fdb, m, 0, 2), &p1);
	}
	mac_n(m, 100);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 2), SN_FDB_LEARNED);
	ck_assert_int_eq(sn_fdb_add_static(&fdb, mac_a, 0, &p2), 0);
	ck_assert_int_eq(sn_fdb_add_static(&fdb, mac_b, 0, &p2), 0);
	ck_assert_uint_eq(fdb.count, 11);
	ck_assert_uint_eq(p1.stats.fdb_entries, 9);

	/* down to 4: both static entries and two learned ones */
	ck_assert_int_eq(sn_fdb_set_max(&fdb, 4, 3, 3), 0);
	check_probe_invariant(&fdb);
	ck_assert_uint_eq(fdb.count, 4);
	ck_assert_uint_eq(fdb.port_max, 3);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_a, 0, 3), &p2);
	ck_assert_ptr_eq(sn_fdb_lookup(&fdb, mac_b, 0, 3), &p2);
	for (uint32_t i = 0; i <= 100; i++) {
		mac_n(m, i);
		found += sn_fdb_lookup(&fdb, m, 0, 3) == &p1;
	}
	ck_assert_uint_eq(found, 2);
	ck_assert_uint_eq(p1.stats.fdb_entries, 2); /* the port's count follows what went */
	mac_n(m, 200);
	ck_assert_int_eq(sn_fdb_learn(&fdb, m, 0, &p1, 3), SN_FDB_REFUSED_TABLE);

	/* fewer than the two static entries: refused, nothing changed */
	ck_assert_int_eq(sn_fdb_set_max(&fdb, 1, 0, 4), -ENOSPC);
	ck_assert_uint_eq(fdb.max, 4);
	ck_assert_uint_eq(fdb.count, 4);
	ck_assert_int_eq(sn_fdb_set_max(&fdb, 0, 0, 4), -EINVAL);
	ck_assert_int_eq(sn_fdb_set_max(&fdb, (1u << 24) + 1, 0, 4), -EINVAL);
	ck_assert_uint_eq(fdb.max, 4);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"init_rejects", init_rejects},
		{"learn", learn},
		{"lookup_unknown", lookup_unknown},
		{"refresh", refresh},
		{"expired_is_miss", expired_is_miss},
		{"age", age},
		{"table_cap", table_cap},
		{"port_cap", port_cap},
		{"full_of_expired", full_of_expired},
		{"move", move},
		{"static_entries", static_entries},
		{"flush", flush},
		{"not_learnable", not_learnable},
		{"vlans", vlans},
		{"key_roundtrip", key_roundtrip},
		{"churn_big", churn_big},
		{"churn_tiny_table", churn_tiny_table},
		{"churn_wrap_delete", churn_wrap_delete},
		{"full_refusal_no_scan", full_refusal_no_scan},
		{"fair_eviction", fair_eviction},
		{"eviction_limits", eviction_limits},
		{"set_max", set_max},
	};

	return sn_check_main("fdb", cases, SN_CHECK_N(cases), setup, teardown, 60);
}
