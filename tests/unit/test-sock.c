/* test-sock.c - unit tests of socket addresses as SPECs write them (sock.c).
 *
 * Every refusal must name the key and say what is wrong, so the tests read the message too. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sock.h"
#include "spec.h"

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

static struct sn_spec spec;

/* Parses "KIND,KEYS" and reads mode= and group= for a port that creates @bound. */
static int perm_of(const char *text, const char *bound, struct sn_sock_perm *ret)
{
	struct sn_sockaddr a;

	ck_assert_int_eq(sn_spec_parse(&spec, text, &err), 0);
	if (bound)
		ck_assert_int_eq(sn_sockaddr_parse(bound, "listen", true, &a, &err), 0);
	err.msg[0] = '\0';
	return sn_sock_perm_from_spec(&spec, bound ? &a : NULL, "listen", ret, &err);
}

START_TEST(perm_keys)
{
	struct sn_sock_perm p;
	char text[64];

	ck_assert_int_eq(perm_of("stream", "/tmp/x", &p), 0);
	ck_assert_uint_eq(p.mode, 0600); /* the default: the owner only */
	ck_assert(!p.set_gid);
	ck_assert_int_eq(perm_of("stream,mode=0660,group=0", "/tmp/x", &p), 0);
	ck_assert_uint_eq(p.mode, 0660);
	ck_assert(p.set_gid);
	ck_assert_uint_eq(p.gid, 0);
	ck_assert_int_eq(sn_spec_check_unused(&spec, &err), 0); /* both keys count as used */
	ck_assert_int_eq(perm_of("stream,mode=640", "/tmp/x", &p), 0);
	ck_assert_uint_eq(p.mode, 0640);
	ck_assert_int_eq(perm_of("stream,mode=0777", "/tmp/x", &p), 0);
	ck_assert_uint_eq(p.mode, 0777);
	/* a group by name: whatever group 0 is called here */
	{
		struct group *g = getgrgid(0);

		if (g) {
			snprintf(text, sizeof(text), "stream,group=%s", g->gr_name);
			ck_assert_int_eq(perm_of(text, "/tmp/x", &p), 0);
			ck_assert(p.set_gid);
			ck_assert_uint_eq(p.gid, 0);
		}
	}
}
END_TEST

START_TEST(perm_refused)
{
	static const char *const bad_mode[] = {"0999", "8", "rw", "01777", "7777", "", "-600", "+600",
					       " 600", "0x1b6", "06600", "u=rw",
					       /* the owner must keep read and write: the switch checks
						* a stale file by connecting to it */
					       "0", "0400", "0200", "0466"};
	static const char *const bad_group[] = {"no-such-group-squibnet", "", "99999999999999999999", "-1",
						" 0", "4294967295"};
	struct sn_sock_perm p = {.mode = 0123};
	char text[80], quoted[40];

	for (size_t i = 0; i < SN_CHECK_N(bad_mode); i++) {
		snprintf(text, sizeof(text), "stream,mode=%s", bad_mode[i]);
		snprintf(quoted, sizeof(quoted), "'%s'", bad_mode[i]);
		ck_assert_msg(perm_of(text, "/tmp/x", &p) == -EINVAL, "%s accepted", text);
		ck_assert_msg_has("key 'mode'");
		ck_assert_msg_has(quoted);
	}
	for (size_t i = 0; i < SN_CHECK_N(bad_group); i++) {
		snprintf(text, sizeof(text), "stream,group=%s", bad_group[i]);
		snprintf(quoted, sizeof(quoted), "'%s'", bad_group[i]);
		ck_assert_msg(perm_of(text, "/tmp/x", &p) == -EINVAL, "%s accepted", text);
		ck_assert_msg_has("key 'group'");
		ck_assert_msg_has(quoted);
	}
	ck_assert_uint_eq(p.mode, 0123); /* untouched on failure */
	/* only a unix socket file the port creates has a mode */
	ck_assert_int_eq(perm_of("stream,mode=0600", NULL, &p), -EINVAL);
	ck_assert_msg_has("'mode'");
	ck_assert_int_eq(perm_of("stream,group=0", "tcp:127.0.0.1:5555", &p), -EINVAL);
	ck_assert_msg_has("'group'");
	ck_assert_msg_has("'listen'");
	/* without the keys nothing is wrong, whatever the port creates */
	ck_assert_int_eq(perm_of("stream", NULL, &p), 0);
	ck_assert_int_eq(perm_of("stream", "tcp:127.0.0.1:5555", &p), 0);
}
END_TEST

static char dir[64];

static void dir_setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sn-test-sock-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void dir_teardown(void)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Listens on DIR/@name with @perm under umask 000; returns the file's mode, checks its group. */
static unsigned listen_mode(const char *name, int type, const struct sn_sock_perm *perm)
{
	struct sn_sockaddr a;
	struct stat st;
	char path[128];
	mode_t old;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_int_eq(sn_sockaddr_unix(path, &a), 0);
	old = umask(0);
	fd = sn_sock_listen(&a, type, perm, &err);
	ck_assert_uint_eq(umask(old), 0); /* given back as it was */
	ck_assert_msg(fd >= 0, "listen %s: %s", path, err.msg);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_gid, perm && perm->set_gid ? perm->gid : getegid());
	close(fd);
	return st.st_mode & 07777;
}

START_TEST(listen_modes)
{
	struct sn_sock_perm p = {.mode = 0660, .gid = getegid(), .set_gid = true};

	/* under umask 000 a plain bind() makes a 0777 socket */
	ck_assert_uint_eq(listen_mode("s.sock", SOCK_STREAM, NULL), 0600);
	ck_assert_uint_eq(listen_mode("d.sock", SOCK_DGRAM, NULL), 0600);
	ck_assert_uint_eq(listen_mode("q.sock", SOCK_SEQPACKET, NULL), 0600);
	ck_assert_uint_eq(listen_mode("s2.sock", SOCK_STREAM, &p), 0660);
	p.mode = 0604;
	p.set_gid = false;
	ck_assert_uint_eq(listen_mode("d2.sock", SOCK_DGRAM, &p), 0604);
	/* a stale file of ours is replaced and gets the mode asked for now */
	ck_assert_uint_eq(listen_mode("d2.sock", SOCK_DGRAM, NULL), 0600);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"tcp_port_range", tcp_port_range},
		{"tcp_port_refused", tcp_port_refused},
		{"malformed_addresses", malformed_addresses},
		{"perm_keys", perm_keys},
		{"perm_refused", perm_refused},
		{"listen_modes", listen_modes},
	};

	return sn_check_main("sock", cases, SN_CHECK_N(cases), dir_setup, dir_teardown, 0);
}
