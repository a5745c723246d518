/* test-pool.c - unit tests of the frame pool: exhaustion, reference counting, the free count and
 * the lazily allocated jumbo class. The switch relies on these to flood without copying and to
 * count (not crash on) an empty pool. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "pool.h"

#include "sn-check.h"

#define NSTD 64
#define NJUMBO 4

static struct sn_pool pool;

static void setup(void)
{
	ck_assert_int_eq(sn_pool_init(&pool, NSTD, NJUMBO), 0);
}

static void teardown(void)
{
	sn_pool_finish(&pool);
}

START_TEST(exhaustion)
{
	struct sn_frame *got[NSTD];

	ck_assert_uint_eq(sn_pool_total(&pool), NSTD);
	for (int i = 0; i < NSTD; i++) {
		got[i] = sn_pool_get(&pool, 1514);
		ck_assert_ptr_nonnull(got[i]);
		ck_assert_uint_eq(got[i]->refs, 1);
		ck_assert_uint_ge(got[i]->cap, 1514);
		/* every buffer is distinct: writing one must not show in another */
		for (int j = 0; j < i; j++)
			ck_assert_ptr_ne(got[i]->data, got[j]->data);
		got[i]->data[0] = (uint8_t)i;
		got[i]->data[got[i]->cap - 1] = (uint8_t)i;
	}
	ck_assert_ptr_null(sn_pool_get(&pool, 60));
	ck_assert_uint_eq(sn_pool_free_count(&pool), 0);
	for (int i = 0; i < NSTD; i++)
		ck_assert_uint_eq(got[i]->data[0], (uint8_t)i);
	/* one back, one out again */
	sn_frame_unref(got[7]);
	got[7] = sn_pool_get(&pool, 100);
	ck_assert_ptr_nonnull(got[7]);
	ck_assert_ptr_null(sn_pool_get(&pool, 100));
	for (int i = 0; i < NSTD; i++)
		sn_frame_unref(got[i]);
	ck_assert_uint_eq(sn_pool_free_count(&pool), NSTD);
}
END_TEST

START_TEST(refcount)
{
	struct sn_frame *f = sn_pool_get(&pool, 64);
	uint32_t start;

	ck_assert_ptr_nonnull(f);
	start = sn_pool_free_count(&pool);
	ck_assert_uint_eq(start, NSTD - 1);
	sn_frame_ref(f);
	sn_frame_ref(f);
	ck_assert_uint_eq(f->refs, 3);
	sn_frame_unref(f);
	ck_assert_uint_eq(sn_pool_free_count(&pool), start);
	sn_frame_unref(f);
	ck_assert_uint_eq(sn_pool_free_count(&pool), start);
	sn_frame_unref(f);
	ck_assert_uint_eq(sn_pool_free_count(&pool), start + 1);
}
END_TEST

START_TEST(free_count)
{
	struct sn_frame *f[10];

	ck_assert_uint_eq(sn_pool_free_count(&pool), NSTD);
	for (int i = 0; i < 10; i++) {
		f[i] = sn_pool_get(&pool, 1);
		ck_assert_uint_eq(sn_pool_free_count(&pool), NSTD - 1 - i);
	}
	for (int i = 0; i < 10; i++) {
		sn_frame_unref(f[i]);
		ck_assert_uint_eq(sn_pool_free_count(&pool), NSTD - 9 + i);
	}
	/* a recycled buffer starts clean: one reference, no stale length */
	f[0] = sn_pool_get(&pool, 1);
	ck_assert_uint_eq(f[0]->refs, 1);
	ck_assert_uint_eq(f[0]->len, 0);
	sn_frame_unref(f[0]);
}
END_TEST

START_TEST(jumbo_on_demand)
{
	struct sn_frame *j[NJUMBO];

	/* before anyone wants jumbo buffers there are none, and no memory is spent */
	ck_assert_ptr_null(sn_pool_get(&pool, SN_POOL_STD_CAP + 1));
	ck_assert_uint_eq(sn_pool_total(&pool), NSTD);
	ck_assert_ptr_nonnull(sn_pool_get(&pool, SN_POOL_STD_CAP)); /* the largest standard one */
	ck_assert_int_eq(sn_pool_want_jumbo(&pool), 0);
	ck_assert_uint_eq(sn_pool_total(&pool), NSTD + NJUMBO);
	ck_assert_int_eq(sn_pool_want_jumbo(&pool), 0); /* idempotent */
	ck_assert_uint_eq(sn_pool_total(&pool), NSTD + NJUMBO);
	for (int i = 0; i < NJUMBO; i++) {
		j[i] = sn_pool_get(&pool, SN_POOL_JUMBO_CAP);
		ck_assert_ptr_nonnull(j[i]);
		ck_assert_uint_ge(j[i]->cap, SN_POOL_JUMBO_CAP);
		j[i]->data[SN_POOL_JUMBO_CAP - 1] = 0xaa;
	}
	ck_assert_ptr_null(sn_pool_get(&pool, 9000));
	/* taking every jumbo buffer left the standard ones alone */
	ck_assert_uint_eq(sn_pool_free_count(&pool), NSTD - 1);
	sn_frame_unref(j[0]);
	ck_assert_uint_eq(pool.jumbo.nfree, 1);
	ck_assert_uint_eq(pool.std.nfree, NSTD - 1);
	j[0] = sn_pool_get(&pool, 9000);
	ck_assert_ptr_nonnull(j[0]);
	for (int i = 0; i < NJUMBO; i++)
		sn_frame_unref(j[i]);
	ck_assert_uint_eq(pool.jumbo.nfree, NJUMBO);
}
END_TEST

START_TEST(jumbo_none_configured)
{
	struct sn_pool p;

	ck_assert_int_eq(sn_pool_init(&p, 8, 0), 0);
	ck_assert_int_eq(sn_pool_want_jumbo(&p), 0);
	ck_assert_ptr_null(sn_pool_get(&p, 9000));
	ck_assert_uint_eq(sn_pool_total(&p), 8);
	sn_pool_finish(&p);
}
END_TEST

START_TEST(above_jumbo_cap)
{
	ck_assert_int_eq(sn_pool_want_jumbo(&pool), 0);
	ck_assert_ptr_null(sn_pool_get(&pool, SN_POOL_JUMBO_CAP + 1));
	ck_assert_ptr_null(sn_pool_get(&pool, UINT32_MAX));
	ck_assert_uint_eq(sn_pool_free_count(&pool), NSTD + NJUMBO);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"exhaustion", exhaustion},
		{"refcount", refcount},
		{"free_count", free_count},
		{"jumbo_on_demand", jumbo_on_demand},
		{"jumbo_none_configured", jumbo_none_configured},
		{"above_jumbo_cap", above_jumbo_cap},
	};

	return sn_check_main("pool", cases, SN_CHECK_N(cases), setup, teardown, 0);
}
