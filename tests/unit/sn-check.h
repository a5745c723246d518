/* sn-check.h - how the unit test programs run: a table of named tests, each its own TCase with
 * the program's fixture, in one Suite; the exit status says whether any failed. */
#ifndef SN_CHECK_H
#define SN_CHECK_H

#include <check.h>
#include <stddef.h>
#include <stdlib.h>

struct sn_check_case {
	const char *name;
	const TTest *test;
};

#define SN_CHECK_N(cases) (sizeof(cases) / sizeof((cases)[0]))

/* Runs @s and frees it; the exit status for main(). */
static inline int sn_check_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Runs @cases as suite @suite, each with the fixture (both may be NULL); @timeout seconds per
 * case, 0 for Check's default. */
static inline int sn_check_main(const char *suite, const struct sn_check_case *cases, size_t n, SFun setup,
				SFun teardown, int timeout)
{
	Suite *s = suite_create(suite);

	for (size_t i = 0; i < n; i++) {
		TCase *tc = tcase_create(cases[i].name);

		if (setup || teardown)
			tcase_add_checked_fixture(tc, setup, teardown);
		tcase_add_test(tc, cases[i].test);
		if (timeout > 0)
			tcase_set_timeout(tc, timeout);
		suite_add_tcase(s, tc);
	}
	return sn_check_run(s);
}

#endif
