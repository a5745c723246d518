/* test-gvproxy-loop - the gvproxy port on an embedder's own loop (ev_loop_new), where libev
 * delivers no child events: the port must notice a dead child by polling, restart it, and
 * sn_switch_destroy() outside the loop must reap it. Takes the stand-in's path as argv[1].
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

	/* outside the loop: destroy must wait for the child itself */
	sn_switch_destroy(sw);
	CHECK(kill(pid2, 0) < 0 && errno == ESRCH, "child %d outlived sn_switch_destroy()", pid2);
	ev_loop_destroy(loop);
	printf("%s\n", failed ? "FAIL" : "ok");
	return failed;
}
