/* test-evfd.c - unit tests of the notification-descriptor checks (Linux): only an eventfd
 * passes sn_evfd_check(), everything a hostile VMM could send instead is named in the refusal,
 * and sn_evfd_drain() tells a read, nothing to read, and end of file apart. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "evfd.h"

#include "sn-check.h"

static void expect_refused(int fd, const char *what)
{
	char got[64] = "";

	ck_assert_int_eq(sn_evfd_check(fd, got, sizeof(got)), -EINVAL);
	ck_assert_str_eq(got, what);
}

START_TEST(only_eventfds_pass)
{
	char what[64];
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), mfd = memfd_create("evfd-test", MFD_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), p[2], sv[2];

	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(mfd, 0);
	ck_assert_int_ge(tfd, 0);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(sn_evfd_check(efd, what, sizeof(what)), 0);
	expect_refused(mfd, "a regular file");
	expect_refused(p[0], "a pipe");
	expect_refused(p[1], "a pipe");
	expect_refused(sv[0], "a socket");
	expect_refused(tfd, "anon_inode:[timerfd]");
	close(mfd);
	ck_assert_int_eq(sn_evfd_check(mfd, what, sizeof(what)), -EBADF);
	ck_assert_int_eq(sn_evfd_check(-1, what, sizeof(what)), -EBADF);
	close(efd);
	close(tfd);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(drain)
{
	uint64_t three = 3;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), p[2];

	ck_assert_int_eq(sn_evfd_drain(efd), 0); /* nothing yet */
	ck_assert_int_eq(write(efd, &three, sizeof(three)), 8);
	ck_assert_int_eq(write(efd, &three, sizeof(three)), 8);
	ck_assert_int_eq(sn_evfd_drain(efd), 1); /* one read takes the whole counter */
	ck_assert_int_eq(sn_evfd_drain(efd), 0);
	close(efd);
	ck_assert_int_eq(pipe(p), 0);
	close(p[1]);
	ck_assert_int_eq(sn_evfd_drain(p[0]), -EPIPE);
	close(p[0]);
	ck_assert_int_eq(sn_evfd_drain(p[0]), -EBADF);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"only_eventfds_pass", only_eventfds_pass},
		{"drain", drain},
	};

	return sn_check_main("evfd", cases, SN_CHECK_N(cases), NULL, NULL, 0);
}
