/* test-sock.c - unit tests of socket addresses as SPECs write them (sock.c).
 *
 * Every refusal must name the key and say what is wrong, so the tests read the message too. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "sock.h"

#include "sn-check.h"

static struct sn_error err;

#define ck_assert_msg_has(needle) \
	ck_assert_msg(strstr(err.msg, (needle)) != NULL, "message '%s' lacks '%s'", err.msg, (needle))

static unsigned port_of(const struct sn_sockaddr *a)
{
	if (a->u.sa.sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->u.ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&a->u.ss)->sin6_port);
}

START_TEST(tcp_port_range)
{
	struct sn_sockaddr a;

	ck_assert_int_eq(sn_sockaddr_parse("tcp:127.0.0.1:1", "listen", false, &a, &err), 0);
	ck_assert_uint_eq(port_of(&a), 1);
	ck_assert_int_eq(sn_sockaddr_parse("tcp:127.0.0.1:65535", "listen", false, &a, &err), 0);
	ck_assert_uint_eq(port_of(&a), 65535);
	ck_assert_int_eq(sn_sockaddr_parse("tcp:[::1]:5555", "connect", false, &a, &err), 0);
	ck_assert_uint_eq(a.u.sa.sa_family, AF_INET6);
	ck_assert_uint_eq(port_of(&a), 5555);
	ck_assert_int_eq(sn_sockaddr_parse("tcp::80", "listen", false, &a, &err), 0); /* any address */
	ck_assert_uint_eq(port_of(&a), 80);
}
END_TEST

START_TEST(tcp_port_refused)
{
	/* 2^32 + 1 and 2^64 + 1 used to wrap; 0 is no port to listen on or dial */
	static const char *const bad[] = {
		"0", "00", "65536", "4294967297", "18446744073709551617", "99999999999999999999999",
		"-1", "+80", " 80", "80 ", "0x50", "80a", "", "８０",
	};
	struct sn_sockaddr a;
	char text[64], quoted[80];

	for (size_t i = 0; i < SN_CHECK_N(bad); i++) {
		snprintf(text, sizeof(text), "tcp:127.0.0.1:%s", bad[i]);
		snprintf(quoted, sizeof(quoted), "'%s'", text);
		err.msg[0] = '\0';
		ck_assert_msg(sn_sockaddr_parse(text, "listen", false, &a, &err) == -EINVAL, "%s accepted", text);
		ck_assert_msg_has(quoted);
		ck_assert_msg_has("for key 'listen'");
		ck_assert_msg_has("port must be 1 to 65535");
	}
	err.msg[0] = '\0';
	ck_assert_int_eq(sn_sockaddr_parse("tcp:[::1]:0", "connect", false, &a, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "bad value 'tcp:[::1]:0' for key 'connect': port must be 1 to 65535");
}
END_TEST

START_TEST(malformed_addresses)
{
	struct sn_sockaddr a;

	err.msg[0] = '\0';
	ck_assert_int_eq(sn_sockaddr_parse("tcp:127.0.0.1", "listen", false, &a, &err), -EINVAL);
	ck_assert_msg_has("'listen'");
	err.msg[0] = '\0';
	ck_assert_int_eq(sn_sockaddr_parse("tcp:[::1:80", "listen", false, &a, &err), -EINVAL);
	ck_assert_msg_has("'listen'");
	err.msg[0] = '\0';
	ck_assert_int_eq(sn_sockaddr_parse("udp:1.2.3.4:5", "connect", false, &a, &err), -EINVAL);
	ck_assert_msg_has("'connect'");
	ck_assert_int_eq(sn_sockaddr_parse("unix:/tmp/x.sock", "listen", false, &a, &err), 0);
	ck_assert(sn_sockaddr_is_unix(&a));
	ck_assert_str_eq(a.u.un.sun_path, "/tmp/x.sock");
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"tcp_port_range", tcp_port_range},
		{"tcp_port_refused", tcp_port_refused},
		{"malformed_addresses", malformed_addresses},
	};

	return sn_check_main("sock", cases, SN_CHECK_N(cases), NULL, NULL, 0);
}
