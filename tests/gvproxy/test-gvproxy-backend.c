/* test-gvproxy-backend - the gvproxy backend without a switch: the child's supervisor
 * (backends/gvproxy.c) against the stand-in, and the HTTP API client's parsers
 * (backends/gvproxy_api.c). The stand-in's path comes in $FAKE_GVPROXY. */
#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/gvproxy_child.h"
#include "json.h"
#include "spec.h"

#include "../unit/sn-check.h"

/* ---- the API client's parsers ---- */

/* @text fed to the reply parser in one piece, then (when it wants more) at end of stream. */
static int parse(const char *text, bool eof, char *body, size_t len)
{
	struct sn_buf b;
	const char *got = NULL;
	size_t n = 0;
	int r;

	sn_buf_init(&b);
	sn_buf_puts(&b, text);
	sn_buf_add(&b, "", 1); /* the byte of room the parser may use */
	b.len--;
	r = sn_gvproxy_reply_parse(&b, eof, &got, &n);
	if (r > 0 && body) {
		ck_assert_ptr_nonnull(got);
		ck_assert_uint_lt(n, len);
		memcpy(body, got, n);
		body[n] = '\0';
		ck_assert_int_eq(got[n], '\0');
	}
	sn_buf_finish(&b);
	return r;
}

START_TEST(reply_parse)
{
	char body[256];

	ck_assert_int_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]", false, body, sizeof(body)), 200);
	ck_assert_str_eq(body, "[]");
	/* chunked, as Go's server sends a body of unknown length */
	ck_assert_int_eq(parse("HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
			       "7\r\nproxy a\r\n8\r\nlready r\r\n0\r\n\r\n",
			       false, body, sizeof(body)),
			 500);
	ck_assert_str_eq(body, "proxy already r");
	/* no length: the body ends with the stream */
	ck_assert_int_eq(parse("HTTP/1.1 404 Not Found\r\n\r\nnot here", false, NULL, 0), 0);
	ck_assert_int_eq(parse("HTTP/1.1 404 Not Found\r\n\r\nnot here", true, body, sizeof(body)), 404);
	ck_assert_str_eq(body, "not here");
	/* not whole yet, then cut short */
	ck_assert_int_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[]", false, NULL, 0), 0);
	ck_assert_int_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[]", true, NULL, 0), -EPROTO);
	ck_assert_int_eq(parse("HTTP/1.1 200 OK\r\nContent-", false, NULL, 0), 0);
	/* not HTTP at all */
	ck_assert_int_eq(parse("SSH-2.0-OpenSSH_9.2\r\n\r\n", false, NULL, 0), -EPROTO);
	ck_assert_int_eq(parse("HTTP/1.1 2x0 OK\r\n\r\n", true, NULL, 0), -EPROTO);
}
END_TEST

struct rows {
	int n;
	char seen[4][3][64];
};

static int on_row(const char *local, const char *remote, const char *proto, void *ctx)
{
	struct rows *r = ctx;

	if (r->n < 4) {
		snprintf(r->seen[r->n][0], 64, "%s", local);
		snprintf(r->seen[r->n][1], 64, "%s", remote);
		snprintf(r->seen[r->n][2], 64, "%s", proto);
	}
	r->n++;
	return 0;
}

START_TEST(read_forwards)
{
	struct rows r = {0};

	ck_assert_int_eq(sn_gvproxy_read_forwards("[{\"local\":\"127.0.0.1:8080\",\"remote\":\"192.168.127.2:80\","
						  "\"protocol\":\"tcp\"}, {\"protocol\":\"udp\",\"local\":\":53\","
						  "\"remote\":\"192.168.127.2:53\"}]",
						  on_row, &r),
			 2);
	ck_assert_int_eq(r.n, 2);
	ck_assert_str_eq(r.seen[0][0], "127.0.0.1:8080");
	ck_assert_str_eq(r.seen[0][1], "192.168.127.2:80");
	ck_assert_str_eq(r.seen[0][2], "tcp");
	ck_assert_str_eq(r.seen[1][0], ":53");
	ck_assert_str_eq(r.seen[1][2], "udp");
	r.n = 0;
	ck_assert_int_eq(sn_gvproxy_read_forwards(" [ ] ", on_row, &r), 0);
	ck_assert_int_eq(sn_gvproxy_read_forwards("null", on_row, &r), 0);
	ck_assert_int_eq(r.n, 0);
	ck_assert_int_eq(sn_gvproxy_read_forwards("[{\"local\":", on_row, &r), -EPROTO);
	ck_assert_int_eq(sn_gvproxy_read_forwards("{\"local\":\"x\"}", on_row, &r), -EPROTO);
	ck_assert_int_eq(sn_gvproxy_read_forwards("[1, 2]", on_row, &r), -EPROTO);
}
END_TEST

START_TEST(status_errno)
{
	ck_assert_int_eq(sn_gvproxy_status_errno(500, "proxy already running"), -EEXIST);
	ck_assert_int_eq(sn_gvproxy_status_errno(500, "proxy not found"), -ENOENT);
	ck_assert_int_eq(sn_gvproxy_status_errno(400, "bad json"), -EINVAL);
	ck_assert_int_eq(sn_gvproxy_status_errno(404, ""), -ENOENT);
	ck_assert_int_eq(sn_gvproxy_status_errno(502, "gateway"), -EIO);
}
END_TEST

/* ---- the supervisor, with the stand-in for a child ---- */

struct owner {
	int ups, downs, fd;
	char why[160];
};

static void on_up(void *ctx, int fd, const char *peer)
{
	struct owner *o = ctx;

	if (o->fd >= 0)
		close(o->fd);
	o->fd = fd;
	o->ups++;
}

static void on_down(void *ctx, const char *why)
{
	struct owner *o = ctx;

	snprintf(o->why, sizeof(o->why), "%s", why);
	o->downs++;
}

static const struct sn_gvproxy_events events = {.up = on_up, .down = on_down};

/* Runs the loop until @cond holds, at most @secs. */
#define RUN_UNTIL(loop, cond, secs)                                                                \
	do {                                                                                       \
		for (int i_ = 0; i_ < (secs) * 100 && !(cond); i_++) {                             \
			ev_run((loop), EVRUN_NOWAIT);                                              \
			usleep(10000);                                                             \
		}                                                                                  \
	} while (0)

static const char *stand_in(void)
{
	const char *path = getenv("FAKE_GVPROXY");

	ck_assert_msg(path && access(path, X_OK) == 0, "no stand-in gvproxy in $FAKE_GVPROXY");
	return path;
}

struct answer {
	int calls, status;
	char body[256];
};

static void on_answer(void *ctx, int status, const char *body, const char *msg)
{
	struct answer *a = ctx;

	a->calls++;
	a->status = status;
	snprintf(a->body, sizeof(a->body), "%s", body ? body : msg);
}

START_TEST(supervise_restart_and_stop)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct sn_gvproxy_conf conf = {.name = "gv", .path = stand_in(), .ssh_port = -1, .restart = true, .mtu = 1500};
	struct owner o = {.fd = -1};
	struct sn_gvproxy *gv;
	struct sn_gvproxy_call *call;
	struct answer a = {0};
	struct sn_error err;
	pid_t pid, pid2;

	ck_assert_int_eq(sn_gvproxy_start(loop, &conf, &events, &o, &gv, &err), 0);
	RUN_UNTIL(loop, o.ups == 1, 5);
	ck_assert_int_eq(o.ups, 1);
	ck_assert_int_ge(o.fd, 0);
	pid = sn_gvproxy_pid(gv);
	ck_assert_int_gt(pid, 0);
	ck_assert_uint_eq(sn_gvproxy_restarts(gv), 0);

	/* its API answers on the socket the backend made for it */
	ck_assert_int_eq(sn_gvproxy_call(loop, sn_gvproxy_api(gv), SN_GVPROXY_LIST, NULL, NULL, NULL, on_answer, &a,
					 &call, &err),
			 0);
	RUN_UNTIL(loop, a.calls == 1, 6);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.status, 200);

	/* killed: the owner hears how, and a new child follows after the backoff */
	kill(pid, SIGKILL);
	RUN_UNTIL(loop, o.ups == 2, 5);
	ck_assert_int_eq(o.downs, 1);
	ck_assert_msg(strstr(o.why, "killed by signal 9"), "down said '%s'", o.why);
	ck_assert_int_eq(o.ups, 2);
	pid2 = sn_gvproxy_pid(gv);
	ck_assert_int_gt(pid2, 0);
	ck_assert_int_ne(pid2, pid);
	ck_assert_uint_eq(sn_gvproxy_restarts(gv), 1);
	ck_assert_int_eq(kill(pid, 0) < 0 && errno == ESRCH, 1); /* the dead one was reaped */

	/* stopped: SIGTERM, reaped, and no event after */
	sn_gvproxy_stop(gv);
	RUN_UNTIL(loop, kill(pid2, 0) < 0 && errno == ESRCH, 5);
	ck_assert_int_eq(kill(pid2, 0) < 0 && errno == ESRCH, 1);
	ck_assert_int_eq(o.downs, 1);
	ck_assert_int_eq(o.ups, 2);
	close(o.fd);
}
END_TEST

START_TEST(restart_off_and_bad_path)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct sn_gvproxy_conf conf = {.name = "gv", .path = stand_in(), .ssh_port = -1, .restart = false, .mtu = 1500};
	struct owner o = {.fd = -1};
	struct sn_gvproxy *gv;
	struct sn_error err;
	pid_t pid;

	ck_assert_int_eq(sn_gvproxy_start(loop, &conf, &events, &o, &gv, &err), 0);
	RUN_UNTIL(loop, o.ups == 1, 5);
	pid = sn_gvproxy_pid(gv);
	ck_assert_int_gt(pid, 0);
	kill(pid, SIGTERM);
	RUN_UNTIL(loop, o.downs == 1, 5);
	ck_assert_int_eq(o.downs, 1);
	/* longer than the first backoff: nothing comes back */
	RUN_UNTIL(loop, o.ups > 1, 1);
	ck_assert_int_eq(o.ups, 1);
	ck_assert_int_eq(sn_gvproxy_pid(gv), 0);
	ck_assert_msg(strstr(sn_gvproxy_status(gv), "restart=off"), "status '%s'", sn_gvproxy_status(gv));
	sn_gvproxy_stop(gv);
	ev_run(loop, EVRUN_NOWAIT);
	close(o.fd);

	conf.path = "/nonexistent/gvproxy";
	ck_assert_int_lt(sn_gvproxy_start(loop, &conf, &events, &o, &gv, &err), 0);
	ck_assert_msg(strstr(err.msg, "path"), "error '%s' does not name the key", err.msg);
	/* more words in args= than the cap: refused before anything starts */
	char many[SN_GVPROXY_ARGS_MAX * 3 + 8] = "";

	for (int i = 0; i <= SN_GVPROXY_ARGS_MAX; i++)
		strcat(many, "-x ");
	conf.path = stand_in();
	conf.args = many;
	ck_assert_int_lt(sn_gvproxy_start(loop, &conf, &events, &o, &gv, &err), 0);
	ck_assert_msg(strstr(err.msg, "args"), "error '%s' does not name the key", err.msg);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"reply_parse", reply_parse},
		{"read_forwards", read_forwards},
		{"status_errno", status_errno},
		{"supervise_restart_and_stop", supervise_restart_and_stop},
		{"restart_off_and_bad_path", restart_off_and_bad_path},
	};

	signal(SIGPIPE, SIG_IGN);
	return sn_check_main("gvproxy-backend", cases, SN_CHECK_N(cases), NULL, NULL, 30);
}
