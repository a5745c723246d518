/* test-memguard.c - unit tests of the SIGBUS guard over shared file mappings (vhost-user guest
 * memory): a file shrunk under a guarded mapping reads as zeros past its new end and raises
 * the flag, while pages before it keep their contents; a SIGBUS anywhere else still ends the
 * process, or reaches the handler that was there before; the registry is bounded. Each case
 * runs in its own process (Check's fork mode), so each installs the handler afresh. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/memguard.h"

#include "sn-check.h"

#define PAGES 4

static size_t page;

/* A shared mapping of a fresh PAGES-page memfd, each page filled with its number + 1. */
static uint8_t *map_file(int *ret_fd)
{
	int fd = memfd_create("memguard-test", MFD_CLOEXEC);
	uint8_t *p;

	page = (size_t)sysconf(_SC_PAGESIZE);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)(PAGES * page)), 0);
	p = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	for (int i = 0; i < PAGES; i++)
		memset(p + i * page, i + 1, page);
	*ret_fd = fd;
	return p;
}

static uint8_t peek(const uint8_t *p)
{
	return *(const volatile uint8_t *)p;
}

START_TEST(shrink_absorbed)
{
	atomic_uint flag = 0;
	unsigned long before = sn_memguard_faults();
	int fd, slot;
	uint8_t *p = map_file(&fd);

	slot = sn_memguard_add(p, PAGES * page, page, &flag);
	ck_assert_int_ge(slot, 0);
	ck_assert_uint_eq(peek(p + 2 * page), 3);
	ck_assert_uint_eq(flag, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)page), 0); /* pages 1.. are gone from the file */
	ck_assert_uint_eq(peek(p + 2 * page + 17), 0);   /* would have been SIGBUS */
	ck_assert_uint_eq(flag, 1);
	ck_assert_uint_eq(sn_memguard_faults(), before + 1);
	ck_assert_uint_eq(peek(p), 1);                   /* before the fault: the file's contents */
	ck_assert_uint_eq(peek(p + 3 * page), 0);        /* after it: zeros, no second fault */
	p[3 * page] = 9;                                 /* and writable */
	ck_assert_uint_eq(sn_memguard_faults(), before + 1);
	sn_memguard_remove(slot);
	munmap(p, PAGES * page);
	close(fd);
}
END_TEST

/* Page 1 faults first: everything from it to the end is replaced, page 0 stays the file's. */
START_TEST(shrink_from_faulting_page)
{
	atomic_uint flag = 0;
	int fd, slot;
	uint8_t *p = map_file(&fd);

	slot = sn_memguard_add(p, PAGES * page, page, &flag);
	ck_assert_int_eq(ftruncate(fd, (off_t)page), 0);
	ck_assert_uint_eq(peek(p + page), 0);
	ck_assert_uint_eq(flag, 1);
	p[0] = 42; /* still the shared file */
	{
		uint8_t b = 0;

		ck_assert_int_eq(pread(fd, &b, 1, 0), 1);
		ck_assert_uint_eq(b, 42);
	}
	sn_memguard_remove(slot);
	munmap(p, PAGES * page);
	close(fd);
}
END_TEST

/* A mapping nobody registered: the default action, as without the guard. (The default is
 * set first: under AddressSanitizer the previous handler would be its report, which aborts.) */
START_TEST(unguarded_fault_kills)
{
	atomic_uint flag = 0;
	unsigned other;
	int fd, fd2;
	uint8_t *guarded = map_file(&fd), *p = map_file(&fd2);

	signal(SIGBUS, SIG_DFL);
	ck_assert_int_ge(sn_memguard_add(guarded, PAGES * page, page, &flag), 0);
	ck_assert_int_eq(ftruncate(fd2, 0), 0);
	other = peek(p + page); /* SIGBUS */
	ck_abort_msg("survived a fault outside every guarded mapping (read %u)", other);
}
END_TEST

START_TEST(removed_fault_kills)
{
	atomic_uint flag = 0;
	int fd, slot;
	uint8_t *p = map_file(&fd);

	signal(SIGBUS, SIG_DFL);
	slot = sn_memguard_add(p, PAGES * page, page, &flag);
	sn_memguard_remove(slot);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	flag = peek(p); /* SIGBUS */
	ck_abort_msg("survived a fault in a mapping no longer guarded");
}
END_TEST

static volatile sig_atomic_t prev_calls, prev_code;

static void prev_handler(int sig, siginfo_t *si, void *uc)
{
	prev_calls++;
	prev_code = si->si_code;
}

/* A SIGBUS that is not a fault in guarded memory reaches the handler installed before. */
START_TEST(passes_on_to_previous_handler)
{
	struct sigaction sa = {.sa_flags = SA_SIGINFO};
	atomic_uint flag = 0;
	int fd;
	uint8_t *p = map_file(&fd);

	sa.sa_sigaction = prev_handler;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
	ck_assert_int_ge(sn_memguard_add(p, PAGES * page, page, &flag), 0);
	ck_assert_int_eq(raise(SIGBUS), 0);
	ck_assert_int_eq(prev_calls, 1);
	ck_assert_int_le(prev_code, 0); /* sent, not a fault */
	ck_assert_uint_eq(flag, 0);
	/* and a guarded fault does not reach it */
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_uint_eq(peek(p), 0);
	ck_assert_uint_eq(flag, 1);
	ck_assert_int_eq(prev_calls, 1);
}
END_TEST

START_TEST(registry_bounded)
{
	static int slot[SN_MEMGUARD_SLOTS];
	atomic_uint flag = 0;
	uint8_t *base = (uint8_t *)(uintptr_t)0x100000000ull; /* ranges only: never touched */
	int again;

	for (int i = 0; i < SN_MEMGUARD_SLOTS; i++) {
		slot[i] = sn_memguard_add(base + (size_t)i * 65536, 65536, 4096, &flag);
		ck_assert_int_eq(slot[i], i);
	}
	ck_assert_int_eq(sn_memguard_add(base, 4096, 4096, &flag), -ENOSPC);
	sn_memguard_remove(slot[100]);
	again = sn_memguard_add(base, 4096, 4096, &flag);
	ck_assert_int_eq(again, 100);
	ck_assert_int_eq(sn_memguard_add(NULL, 4096, 4096, &flag), -EINVAL);
	ck_assert_int_eq(sn_memguard_add(base, 0, 4096, &flag), -EINVAL);
	ck_assert_int_eq(sn_memguard_add(base, 4096, 3000, &flag), -EINVAL);
	ck_assert_int_eq(sn_memguard_add(base, 4096, 4096, NULL), -EINVAL);
	sn_memguard_remove(-1); /* ignored */
	for (int i = 0; i < SN_MEMGUARD_SLOTS; i++)
		sn_memguard_remove(slot[i]);
}
END_TEST

/* Under valgrind (its preload library is mapped) SIGBUS comes without the fault's address, and
 * its setup runs every case in one process (CK_FORK=no) where the cases that must die cannot. */
static const char *why_not_here(void)
{
	char line[512];
	const char *fork = getenv("CK_FORK");
	FILE *f = fopen("/proc/self/maps", "r");
	bool vg = false;

	while (f && fgets(line, sizeof(line), f))
		vg |= strstr(line, "vgpreload") != NULL;
	if (f)
		fclose(f);
	if (vg)
		return "valgrind delivers SIGBUS without its fault address (si_addr), which the guard needs";
	if (fork && !strcmp(fork, "no"))
		return "CK_FORK=no: the cases that must die of SIGBUS need a process each";
	return NULL;
}

int main(void)
{
	const char *why = why_not_here();

	if (why) {
		printf("skip: %s\n", why);
		return 77;
	}
	Suite *s = suite_create("memguard");
	const struct sn_check_case cases[] = {
		{"shrink_absorbed", shrink_absorbed},
		{"shrink_from_faulting_page", shrink_from_faulting_page},
		{"passes_on_to_previous_handler", passes_on_to_previous_handler},
		{"registry_bounded", registry_bounded},
	};
	const struct sn_check_case killed[] = {
		{"unguarded_fault_kills", unguarded_fault_kills},
		{"removed_fault_kills", removed_fault_kills},
	};

	for (size_t i = 0; i < SN_CHECK_N(cases); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_add_test(tc, cases[i].test);
		suite_add_tcase(s, tc);
	}
	for (size_t i = 0; i < SN_CHECK_N(killed); i++) {
		TCase *tc = tcase_create(killed[i].name);

		tcase_add_test_raise_signal(tc, killed[i].test, SIGBUS);
		suite_add_tcase(s, tc);
	}
	return sn_check_run(s);
}
