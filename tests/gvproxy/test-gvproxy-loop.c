/* test-gvproxy-loop - the gvproxy port on an embedder's own loop (ev_loop_new), where libev
 * delivers no child events: the port must notice a dead child by polling, restart it, and
 * sn_switch_destroy() outside the loop must reap it. The embedder's forwards API
 * (<squibnet/gvproxy.h>) answers through its callback: made, refused, removed, and cancelled
 * when the switch goes before gvproxy answered. Takes the stand-in's path as argv[1].
 * Exit status: 0 passed, 1 failed, 77 the stand-in is missing. */
#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <squibnet/squibnet.h>

static int failed;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failed = 1;                                                                \
		}                                                                                  \
	} while (0)

struct seen {
	enum sn_port_state state;
	int pid;
	char peer[256];
};

static int visit(const struct sn_port_info *info, void *ctx)
{
	struct seen *s = ctx;

	if (strcmp(info->name, "gv"))
		return 0;
	s->state = info->state;
	snprintf(s->peer, sizeof(s->peer), "%s", info->peer);
	if (sscanf(info->peer, "gvproxy pid %d", &s->pid) != 1)
		s->pid = 0;
	return 1;
}

struct answer {
	int calls, result;
	char msg[256];
};

static void on_answer(void *ctx, int result, const char *message)
{
	struct answer *a = ctx;

	a->calls++;
	a->result = result;
	snprintf(a->msg, sizeof(a->msg), "%s", message ? message : "");
}

/* Runs @loop until @a has its answer, at most 6 s (the API's deadline is 5 s). */
static int wait_answer(struct ev_loop *loop, struct answer *a)
{
	for (double t = 0; t < 6 && !a->calls; t += 0.01) {
		ev_run(loop, EVRUN_NOWAIT);
		usleep(10000);
	}
	return a->calls ? a->result : -ETIME;
}

/* One request through the public API, run to its answer. */
static int forward(struct ev_loop *loop, struct sn_switch *sw, const char *port, int expose, const char *local,
		   const char *proto, struct answer *a)
{
	struct sn_error err = {0};
	int r;

	memset(a, 0, sizeof(*a));
	r = expose ? sn_gvproxy_expose(sw, port, local, "192.168.127.2:80", proto, on_answer, a, &err)
		   : sn_gvproxy_unexpose(sw, port, local, proto, on_answer, a, &err);
	if (r < 0) {
		snprintf(a->msg, sizeof(a->msg), "%s", err.msg);
		return r;
	}
	return wait_answer(loop, a);
}

/* Runs @loop until the gv port is up with a pid other than @not_pid, at most @secs. */
static int wait_up(struct ev_loop *loop, struct sn_switch *sw, int not_pid, double secs, struct seen *s)
{
	for (double t = 0; t < secs; t += 0.02) {
		ev_run(loop, EVRUN_NOWAIT);
		memset(s, 0, sizeof(*s));
		sn_switch_foreach_port(sw, visit, s);
		if (s->state == SN_PORT_UP && s->pid > 0 && s->pid != not_pid)
			return s->pid;
		usleep(20000);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sn_switch *sw;
	struct sn_error err;
	struct seen s;
	struct answer a, late = {0};
	char spec[4096];
	int pid, pid2, r;

	if (argc < 2 || access(argv[1], X_OK) < 0) {
		fprintf(stderr, "skip: no stand-in gvproxy given\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	CHECK(loop && !ev_is_default_loop(loop), "no second loop");
	r = sn_switch_create(loop, NULL, &sw);
	CHECK(r == 0, "sn_switch_create: %d", r);
	if (r < 0)
		return 1;
	snprintf(spec, sizeof(spec), "gvproxy,name=gv,ssh-port=-1,path=%s", argv[1]);
	r = sn_switch_add_port(sw, spec, NULL, 0, &err);
	CHECK(r == 0, "add_port: %s", err.msg);
	pid = wait_up(loop, sw, 0, 5, &s);
	CHECK(pid > 0, "never up: %s", s.peer);

	kill(pid, SIGKILL);
	pid2 = wait_up(loop, sw, pid, 5, &s);
	CHECK(pid2 > 0 && pid2 != pid, "not restarted after SIGKILL: %s", s.peer);
	CHECK(strstr(s.peer, "restarts 1") != NULL, "peer '%s' does not count the restart", s.peer);
	CHECK(kill(pid, 0) < 0 && errno == ESRCH, "the killed child %d was not reaped", pid);

	r = forward(loop, sw, NULL, 1, "127.0.0.1:18080", NULL, &a);
	CHECK(r == 0 && a.calls == 1, "expose: %d %s", r, a.msg);
	r = forward(loop, sw, "gv", 1, "127.0.0.1:18080", "tcp", &a);
	CHECK(r == -EEXIST, "a second expose of the same address: %d %s", r, a.msg);
	r = forward(loop, sw, "gv", 0, "127.0.0.1:18080", NULL, &a);
	CHECK(r == 0, "unexpose: %d %s", r, a.msg);
	r = forward(loop, sw, "gv", 0, "127.0.0.1:18080", NULL, &a);
	CHECK(r == -ENOENT, "unexpose of what is not there: %d %s", r, a.msg);
	r = forward(loop, sw, "nosuch", 1, "127.0.0.1:18081", NULL, &a);
	CHECK(r == -ENOENT && a.calls == 0 && strstr(a.msg, "nosuch"), "unknown port: %d '%s'", r, a.msg);
	r = forward(loop, sw, "gv", 1, "127.0.0.1:18081", "sctp", &a);
	CHECK(r == -EINVAL && a.calls == 0, "bad protocol: %d '%s'", r, a.msg);

	/* a request in flight when the switch goes: answered once, cancelled */
	r = sn_gvproxy_expose(sw, "gv", "127.0.0.1:18082", "192.168.127.2:80", "udp", on_answer, &late, &err);
	CHECK(r == 0, "expose before destroy: %d %s", r, err.msg);

	/* outside the loop: destroy must wait for the child itself */
	sn_switch_destroy(sw);
	CHECK(late.calls == 1 && late.result == -ECANCELED, "in flight at destroy: %d answers, %d '%s'",
	      late.calls, late.result, late.msg);
	CHECK(kill(pid2, 0) < 0 && errno == ESRCH, "child %d outlived sn_switch_destroy()", pid2);
	ev_loop_destroy(loop);
	printf("%s\n", failed ? "FAIL" : "ok");
	return failed;
}
