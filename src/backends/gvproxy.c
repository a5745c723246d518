/* gvproxy.c - a supervised gvproxy child (gvisor-tap-vsock): started, watched, restarted and
 * stopped for its owner, the gvproxy port (ports/gvproxy.c), which gets the child's end of the
 * frames through its events. Nothing here knows ports or the switch.
 *
 * The child gets one end of a socketpair on its stdin and stdout and runs with -listen-stdio,
 * where gvproxy speaks 2-byte little-endian length prefixes (the hyperkit framing without its
 * handshake); the other end goes to the owner (events->up). The child's stderr is read line by
 * line into the switch's log. Its HTTP API (-listen) sits in a private 0700 directory made here
 * and removed with the child (gvproxy_api.c talks to it).
 *
 * Supervision: an ev_child watcher (default loop; other loops poll waitpid, since libev only
 * delivers child events to the default loop) sees the child exit; the owner hears of it
 * (events->down), the status is kept for it to show, and the child is started again after an
 * exponential backoff unless restart=off. On Linux the child gets PR_SET_PDEATHSIG(SIGTERM),
 * and gvproxy ends its stdio session when stdin reaches end of file, so it does not outlive a
 * squibnet killed with SIGKILL. sn_gvproxy_stop() sends SIGTERM, then SIGKILL after a grace
 * period, and always reaps: inside the loop through the watchers, outside it (the embedder's
 * sn_switch_destroy() after ev_run() returned) by waiting, bounded by the grace period. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "../logging.h"
#include "../spec.h"
#include "../util.h"
#include "gvproxy_child.h"

#define STABLE_RUN 10.0      /* a child that ran this long restarts after the shortest delay */
#define POLL_INTERVAL 0.1    /* waitpid polling on loops other than the default one */
#define ERRLINE_MAX 512      /* a longer stderr line is logged in pieces */
#define ARGV_FIXED 12        /* words squibnet puts on gvproxy's command line itself */

/* Where podman and distributions put gvproxy when it is not on PATH. */
static const char *const fallback_dirs[] = {
	"/usr/libexec/podman",
	"/usr/lib/podman",
	"/usr/local/libexec/podman",
	"/usr/local/lib/podman",
	"/opt/homebrew/bin",
};

struct sn_gvproxy {
	const struct sn_gvproxy_events *ev;
	void *owner;
	struct ev_loop *loop;
	char name[64];             /* the owner's, for log lines */
	unsigned mtu;
	char path[PATH_MAX];
	char args[1024];           /* args=, split in place */
	char *extra[SN_GVPROXY_ARGS_MAX];
	unsigned nextra;
	char ssh_port[8];          /* "" leaves gvproxy's default */
	bool restart;
	bool closing;              /* sn_gvproxy_stop(): the owner let go */
	char dir[PATH_MAX];        /* private directory of the API socket and the pid file */
	char api[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char pidfile[PATH_MAX];

	pid_t pid;                 /* 0: no child */
	double started;
	unsigned restarts;
	double backoff;
	ev_child child;            /* default loop */
	ev_timer poll;             /* other loops */
	ev_timer kill;             /* SIGKILL when SIGTERM was not enough */
	ev_timer respawn;
	int err_fd;
	ev_io err_io;
	char errline[ERRLINE_MAX];
	size_t errlen;
	char status[160];          /* why there is no child */
	char version[24];          /* from its "gvproxy version vX" line, for messages */
	bool ssh_off_refused;      /* it said it does not take -ssh-port -1 (an old release) */
};

static void respawn_later(struct sn_gvproxy *gv);

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

static void format_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended (wait status 0x%x)", (unsigned)status);
}

/* ---- the child's stderr ---- */

static void err_line(struct sn_gvproxy *gv, const char *line, size_t len)
{
	/* logrus writes level=...; anything it calls a warning or worse is one for us too */
	bool bad = memmem(line, len, "level=error", 11) || memmem(line, len, "level=fatal", 11) ||
		   memmem(line, len, "level=warn", 10) || memmem(line, len, "level=panic", 11);

	const char *v;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	/* gvproxy releases before October 2024 exit at once on -ssh-port -1: restarting them
	 * cannot help, the user must change the SPEC or the gvproxy */
	if (!strcmp(gv->ssh_port, "-1") && memmem(line, len, "ssh-port value must be between", 30))
		gv->ssh_off_refused = true;
	if ((v = memmem(line, len, "gvproxy version ", 16))) {
		size_t n = 0, rest = len - (size_t)(v + 16 - line);

		v += 16;
		while (n < rest && v[n] != ' ' && v[n] != '"')
			n++;
		snprintf(gv->version, sizeof(gv->version), "%.*s", (int)n, v);
	}
	if (bad)
		sn_warn("port %s: gvproxy: %.*s", gv->name, (int)len, line);
	else
		sn_info("port %s: gvproxy: %.*s", gv->name, (int)len, line);
}

/* Reads what the pipe holds; at end of file logs the unterminated rest and closes it. */
static void err_drain(struct sn_gvproxy *gv)
{
	for (int round = 0; round < 16 && gv->err_fd >= 0; round++) {
		ssize_t n = read(gv->err_fd, gv->errline + gv->errlen, sizeof(gv->errline) - gv->errlen);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			err_line(gv, gv->errline, gv->errlen);
			gv->errlen = 0;
			ev_io_stop(gv->loop, &gv->err_io);
			close(gv->err_fd);
			gv->err_fd = -1;
			return;
		}
		gv->errlen += (size_t)n;
		while ((nl = memchr(gv->errline, '\n', gv->errlen))) {
			size_t k = (size_t)(nl - gv->errline);

			err_line(gv, gv->errline, k);
			memmove(gv->errline, nl + 1, gv->errlen - k - 1);
			gv->errlen -= k + 1;
		}
		if (gv->errlen == sizeof(gv->errline)) {
			err_line(gv, gv->errline, gv->errlen);
			gv->errlen = 0;
		}
	}
}

static void err_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	err_drain(w->data);
}

static void err_close(struct sn_gvproxy *gv)
{
	if (gv->err_fd < 0)
		return;
	ev_io_stop(gv->loop, &gv->err_io);
	close(gv->err_fd);
	gv->err_fd = -1;
	gv->errlen = 0;
}

/* ---- the child ---- */

static void remove_files(struct sn_gvproxy *gv)
{
	unlink(gv->api);
	unlink(gv->pidfile);
}

/* In the child between fork and exec: async-signal-safe calls only. */
static void __attribute__((noreturn)) child_exec(char *const argv[], int sock, int errw, int xw, pid_t parent,
						 int maxfd)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int s, e, x, err;

#ifdef __linux__
	/* dies with the thread that forked it; a parent already gone would never signal */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(127);
#endif
	/* its own process group: a ^C on squibnet's terminal is squibnet's to handle */
	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* ignored signals (SIGPIPE) would survive exec */
	/* above 2 first, so the dup2s below cannot clobber one another */
	s = fcntl(sock, F_DUPFD, 3);
	e = fcntl(errw, F_DUPFD, 3);
	x = fcntl(xw, F_DUPFD_CLOEXEC, 3);
	if (s < 0 || e < 0 || x < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(e, 2) < 0)
		goto fail;
#if defined(__linux__) && defined(SYS_close_range)
	if ((x == 3 || syscall(SYS_close_range, 3u, (unsigned)x - 1, 0u) == 0) &&
	    syscall(SYS_close_range, (unsigned)x + 1, ~0u, 0u) == 0)
		maxfd = 0;
#endif
	for (int fd = 3; fd < maxfd; fd++)
		if (fd != x)
			close(fd);
	execv(argv[0], argv);
fail:
	err = errno;
	if (write(x >= 0 ? x : xw, &err, sizeof(err)) < 0) {
		/* nobody to tell */
	}
	_exit(127);
}

static int spawn(struct sn_gvproxy *gv, struct sn_error *err)
{
	char mtu[24], listen[sizeof(gv->api) + 16], pidfile[PATH_MAX + 16], peer[64];
	char *argv[ARGV_FIXED + SN_GVPROXY_ARGS_MAX + 1];
	int sv[2] = {-1, -1}, ep[2] = {-1, -1}, xp[2] = {-1, -1}, n = 0, code, r;
	long maxfd = sysconf(_SC_OPEN_MAX);
	pid_t pid, self = getpid();
	ssize_t got;

	/* a killed child leaves its socket and pid file, and gvproxy refuses to listen over them */
	remove_files(gv);
	snprintf(mtu, sizeof(mtu), "-mtu=%u", gv->mtu);
	snprintf(listen, sizeof(listen), "-listen=unix://%s", gv->api);
	snprintf(pidfile, sizeof(pidfile), "-pid-file=%s", gv->pidfile);
	argv[n++] = gv->path;
	argv[n++] = "-listen-stdio=accept"; /* a string flag: any non-empty value turns it on */
	argv[n++] = mtu;
	argv[n++] = listen;
	argv[n++] = pidfile;
	if (gv->ssh_port[0]) {
		argv[n++] = "-ssh-port";
		argv[n++] = gv->ssh_port;
	}
	for (unsigned i = 0; i < gv->nextra; i++)
		argv[n++] = gv->extra[i];
	argv[n] = NULL;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(ep) < 0 || pipe(xp) < 0) {
		r = -errno;
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		if (set_cloexec(sv[i]) < 0 || set_cloexec(ep[i]) < 0 || set_cloexec(xp[i]) < 0) {
			r = -errno;
			goto fail;
		}
	}
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto fail;
	}
	if (pid == 0)
		child_exec(argv, sv[1], ep[1], xp[1], self, (int)maxfd);
	close(sv[1]);
	close(ep[1]);
	close(xp[1]);
	sv[1] = ep[1] = xp[1] = -1;
	/* end of file: exec happened (the pipe is close-on-exec); an int: why it did not */
	do
		got = read(xp[0], &code, sizeof(code));
	while (got < 0 && errno == EINTR);
	close(xp[0]);
	xp[0] = -1;
	if (got == sizeof(code)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		r = sn_error_set(err, -code, "cannot run %s: %s", gv->path, strerror(code));
		goto fail_msg;
	}
	if (sn_fd_nonblock(sv[0]) < 0 || sn_fd_nonblock(ep[0]) < 0) {
		/* cannot happen on a fresh descriptor; do not leave a child we cannot watch */
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		r = -EIO;
		goto fail;
	}
	gv->pid = pid;
	gv->started = mono_now();
	gv->status[0] = '\0';
	if (ev_is_default_loop(gv->loop)) {
		ev_child_set(&gv->child, pid, 0);
		ev_child_start(gv->loop, &gv->child);
	} else {
		ev_timer_again(gv->loop, &gv->poll);
	}
	gv->err_fd = ep[0];
	gv->errlen = 0;
	ev_io_set(&gv->err_io, ep[0], EV_READ);
	ev_io_start(gv->loop, &gv->err_io);
	snprintf(peer, sizeof(peer), "gvproxy pid %d", (int)pid);
	sn_info("port %s: started %s (pid %d)", gv->name, gv->path, (int)pid);
	gv->ev->up(gv->owner, sv[0], peer);
	return 0;

fail:
	sn_error_set(err, r, "cannot start gvproxy: %s", strerror(-r));
fail_msg:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (ep[i] >= 0)
			close(ep[i]);
		if (xp[i] >= 0)
			close(xp[i]);
	}
	return r;
}

/* The child is gone (reaped, with @status when @known). */
static void child_gone(struct sn_gvproxy *gv, int status, bool known)
{
	char what[96];

	if (ev_is_active(&gv->child))
		ev_child_stop(gv->loop, &gv->child);
	ev_timer_stop(gv->loop, &gv->poll);
	ev_timer_stop(gv->loop, &gv->kill);
	if (known)
		format_status(status, what, sizeof(what));
	else
		snprintf(what, sizeof(what), "ended (its status was collected elsewhere)");
	err_drain(gv); /* its last words belong before the line saying it died */
	err_close(gv);
	if (gv->closing) {
		/* the owner let go (sn_gvproxy_stop()): nobody to tell, and this is the end */
		sn_info("port %s: gvproxy pid %d %s", gv->name, (int)gv->pid, what);
		gv->pid = 0;
		remove_files(gv);
		rmdir(gv->dir);
		free(gv);
		return;
	}
	pid_t pid = gv->pid;

	gv->pid = 0;
	if (gv->ssh_off_refused) {
		snprintf(gv->status, sizeof(gv->status),
			 "gvproxy %s refuses ssh-port=-1 (releases before Oct 2024): use ssh-port=N (1024-65535) "
			 "or a newer gvproxy", gv->version[0] ? gv->version : "(unknown version)");
		sn_err("port %s: %s; not restarting", gv->name, gv->status);
		gv->ev->down(gv->owner, gv->status);
		return;
	}
	gv->ev->down(gv->owner, what);
	if (!gv->restart) {
		sn_warn("port %s: gvproxy pid %d %s; not restarting (restart=off)", gv->name, (int)pid, what);
		snprintf(gv->status, sizeof(gv->status), "gvproxy %s (restart=off)", what);
		return;
	}
	if (mono_now() - gv->started >= STABLE_RUN)
		gv->backoff = SN_GVPROXY_BACKOFF_MIN;
	sn_warn("port %s: gvproxy pid %d %s; restarting in %.1f s", gv->name, (int)pid, what, gv->backoff);
	snprintf(gv->status, sizeof(gv->status), "gvproxy %s; restart %u after %.1f s", what, gv->restarts + 1,
		 gv->backoff);
	respawn_later(gv);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct sn_gvproxy *gv = w->data;

	if (w->rpid == gv->pid && (WIFEXITED(w->rstatus) || WIFSIGNALED(w->rstatus)))
		child_gone(gv, w->rstatus, true);
}

static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_gvproxy *gv = w->data;
	int status;
	pid_t r = waitpid(gv->pid, &status, WNOHANG);

	if (r == gv->pid)
		child_gone(gv, status, true);
	else if (r < 0 && errno == ECHILD)
		child_gone(gv, 0, false);
}

static void kill_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_gvproxy *gv = w->data;

	if (gv->pid > 0) {
		sn_warn("port %s: gvproxy pid %d still running %.0f s after SIGTERM; sending SIGKILL", gv->name,
			(int)gv->pid, SN_GVPROXY_GRACE);
		kill(gv->pid, SIGKILL);
	}
}

static void respawn_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_gvproxy *gv = w->data;
	struct sn_error err = {{0}};

	gv->restarts++;
	if (spawn(gv, &err) < 0) {
		sn_warn("port %s: %s; trying again in %.1f s", gv->name, err.msg, gv->backoff);
		snprintf(gv->status, sizeof(gv->status), "%s", err.msg);
		respawn_later(gv);
	}
}

static void respawn_later(struct sn_gvproxy *gv)
{
	ev_timer_set(&gv->respawn, gv->backoff, 0);
	ev_timer_start(gv->loop, &gv->respawn);
	gv->backoff = SN_MIN(gv->backoff * 2, SN_GVPROXY_BACKOFF_MAX);
}

/* Asks the child to go; SIGKILL follows after the grace period. */
static void terminate(struct sn_gvproxy *gv)
{
	if (gv->pid <= 0 || ev_is_active(&gv->kill))
		return;
	kill(gv->pid, SIGTERM);
	ev_timer_set(&gv->kill, SN_GVPROXY_GRACE, 0);
	ev_timer_start(gv->loop, &gv->kill);
}

/* Outside the loop nothing would see the child exit: wait for it here, bounded. */
static void reap_now(struct sn_gvproxy *gv)
{
	double t0 = mono_now();
	bool killed = false;
	int status = 0;

	if (ev_is_active(&gv->child))
		ev_child_stop(gv->loop, &gv->child);
	ev_timer_stop(gv->loop, &gv->poll);
	ev_timer_stop(gv->loop, &gv->kill);
	kill(gv->pid, SIGTERM);
	for (;;) {
		pid_t r = waitpid(gv->pid, &status, WNOHANG);
		double waited = mono_now() - t0;

		if (r == gv->pid) {
			child_gone(gv, status, true);
			return;
		}
		if (r < 0 && errno == ECHILD) {
			/* the loop's SIGCHLD handler took it before it was stopped */
			child_gone(gv, gv->child.rstatus, gv->child.rpid == gv->pid);
			return;
		}
		if (!killed && waited >= SN_GVPROXY_GRACE) {
			sn_warn("port %s: gvproxy pid %d still running %.0f s after SIGTERM; sending SIGKILL",
				gv->name, (int)gv->pid, SN_GVPROXY_GRACE);
			kill(gv->pid, SIGKILL);
			killed = true;
		}
		if (killed && waited >= SN_GVPROXY_GRACE + 5.0) {
			/* uninterruptible sleep: the kernel will finish it, nothing more to do here */
			sn_err("port %s: gvproxy pid %d does not die; leaving it", gv->name, (int)gv->pid);
			gv->pid = 0;
			child_gone(gv, 0, false);
			return;
		}
		nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
	}
}

/* ---- configuration ---- */

static int check_binary(const char *path, const char *from, char *ret, size_t len, struct sn_error *err)
{
	struct stat st;
	char real[PATH_MAX];

	if (!*path || strlen(path) >= PATH_MAX)
		return sn_error_set(err, -EINVAL, "%s: the path must be 1 to %d bytes", from, PATH_MAX - 1);
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return sn_error_set(err, -EINVAL, "%s: the path holds a control character", from);
	if (!realpath(path, real))
		return sn_error_set(err, -errno, "%s: %s: %s", from, path, strerror(errno));
	if (stat(real, &st) < 0)
		return sn_error_set(err, -errno, "%s: %s: %s", from, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return sn_error_set(err, -EINVAL, "%s: %s is not a regular file", from, path);
	if (access(real, X_OK) < 0)
		return sn_error_set(err, -EACCES, "%s: %s is not executable", from, path);
	if (sn_strlcpy(ret, real, len) < 0)
		return sn_error_set(err, -ENAMETOOLONG, "%s: %s: path too long", from, path);
	return 0;
}

/* path=, else $SQUIBNET_GVPROXY, else PATH, else where podman installs it. */
static int find_binary(struct sn_gvproxy *gv, const char *path, struct sn_error *err)
{
	const char *env = getenv(SN_GVPROXY_ENV), *p;
	char cand[PATH_MAX];

	if (path)
		return check_binary(path, "path", gv->path, sizeof(gv->path), err);
	if (env && *env)
		return check_binary(env, "$" SN_GVPROXY_ENV, gv->path, sizeof(gv->path), err);
	p = getenv("PATH");
	while (p && *p) {
		size_t n = strcspn(p, ":");

		if (n > 0 && n + sizeof("/gvproxy") <= sizeof(cand)) {
			snprintf(cand, sizeof(cand), "%.*s/gvproxy", (int)n, p);
			if (access(cand, X_OK) == 0 &&
			    check_binary(cand, "PATH", gv->path, sizeof(gv->path), NULL) == 0)
				return 0;
		}
		p += n + (p[n] == ':');
	}
	for (size_t i = 0; i < SN_ARRAY_SIZE(fallback_dirs); i++) {
		snprintf(cand, sizeof(cand), "%s/gvproxy", fallback_dirs[i]);
		if (access(cand, X_OK) == 0 && check_binary(cand, "", gv->path, sizeof(gv->path), NULL) == 0)
			return 0;
	}
	return sn_error_set(err, -ENOENT, "no gvproxy found: give path=BIN, set $" SN_GVPROXY_ENV
			    " or put gvproxy on PATH (also looked in /usr/libexec/podman and the like)");
}

/* args="...": words split on blanks, bounded, none of them a flag squibnet sets itself. */
static int parse_args(struct sn_gvproxy *gv, const char *text, struct sn_error *err)
{
	static const char *const ours[] = {"listen-stdio", "mtu", "ssh-port", "pid-file"};
	char *p;

	if (sn_strlcpy(gv->args, text, sizeof(gv->args)) < 0)
		return sn_error_set(err, -EINVAL, "args: too long");
	for (p = gv->args; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return sn_error_set(err, -EINVAL, "args: control character in '%s'", text);
	p = gv->args;
	for (;;) {
		char *w, *flag;

		p += strspn(p, " \t");
		if (!*p)
			break;
		w = p;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = '\0';
		if (gv->nextra == SN_GVPROXY_ARGS_MAX)
			return sn_error_set(err, -E2BIG, "args: more than %d words", SN_GVPROXY_ARGS_MAX);
		if (strlen(w) > SN_GVPROXY_ARG_LEN_MAX)
			return sn_error_set(err, -EINVAL, "args: a word longer than %d bytes",
					    SN_GVPROXY_ARG_LEN_MAX);
		flag = w + (w[0] == '-') + (w[0] == '-' && w[1] == '-');
		for (size_t i = 0; i < SN_ARRAY_SIZE(ours) && w[0] == '-'; i++) {
			size_t n = strlen(ours[i]);

			if (!strncmp(flag, ours[i], n) && (flag[n] == '\0' || flag[n] == '='))
				return sn_error_set(err, -EINVAL,
						    "args: squibnet sets -%s itself%s", ours[i],
						    !strcmp(ours[i], "mtu") ? " (use mtu=N)" :
						    !strcmp(ours[i], "ssh-port") ? " (use ssh-port=N)" : "");
		}
		gv->extra[gv->nextra++] = w;
	}
	return 0;
}

/* A private directory for the API socket and pid file: $XDG_RUNTIME_DIR, else $TMPDIR, else /tmp. */
static int make_dir(struct sn_gvproxy *gv, struct sn_error *err)
{
	const char *bases[] = {getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/tmp"};
	int r = -ENOENT;

	for (size_t i = 0; i < SN_ARRAY_SIZE(bases); i++) {
		const char *b = bases[i];
		struct stat st;

		if (!b || b[0] != '/' || stat(b, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (snprintf(gv->dir, sizeof(gv->dir), "%s/squibnet-gvproxy.XXXXXX", b) >= (int)sizeof(gv->dir))
			continue;
		if (!mkdtemp(gv->dir)) { /* mode 0700 */
			r = -errno;
			continue;
		}
		if (snprintf(gv->api, sizeof(gv->api), "%s/api.sock", gv->dir) >= (int)sizeof(gv->api)) {
			rmdir(gv->dir);
			r = -ENAMETOOLONG;
			continue;
		}
		/* shorter than the socket path, which fitted */
		if (snprintf(gv->pidfile, sizeof(gv->pidfile), "%s/gvproxy.pid", gv->dir) >=
		    (int)sizeof(gv->pidfile))
			return -ENAMETOOLONG;
		return 0;
	}
	gv->dir[0] = '\0';
	return sn_error_set(err, r, "cannot make a private directory for gvproxy's API socket: %s", strerror(-r));
}


/* ---- the owner's side ---- */

int sn_gvproxy_start(struct ev_loop *loop, const struct sn_gvproxy_conf *conf, const struct sn_gvproxy_events *ev,
		     void *owner, struct sn_gvproxy **ret, struct sn_error *err)
{
	struct sn_gvproxy *gv = calloc(1, sizeof(*gv));
	int r;

	if (!gv)
		return -ENOMEM;
	gv->ev = ev;
	gv->owner = owner;
	gv->loop = loop;
	gv->mtu = conf->mtu;
	gv->restart = conf->restart;
	gv->err_fd = -1;
	gv->backoff = SN_GVPROXY_BACKOFF_MIN;
	sn_strlcpy(gv->name, conf->name, sizeof(gv->name));
	if (conf->ssh_port)
		snprintf(gv->ssh_port, sizeof(gv->ssh_port), "%d", conf->ssh_port);
	if (conf->args && (r = parse_args(gv, conf->args, err)) < 0)
		goto fail;
	r = find_binary(gv, conf->path, err);
	if (r < 0)
		goto fail;
	r = make_dir(gv, err);
	if (r < 0)
		goto fail;
	ev_child_init(&gv->child, child_cb, 0, 0);
	gv->child.data = gv;
	ev_init(&gv->poll, poll_cb);
	gv->poll.repeat = POLL_INTERVAL;
	gv->poll.data = gv;
	ev_timer_init(&gv->kill, kill_cb, 0, 0);
	gv->kill.data = gv;
	ev_timer_init(&gv->respawn, respawn_cb, 0, 0);
	gv->respawn.data = gv;
	ev_io_init(&gv->err_io, err_cb, -1, EV_READ);
	gv->err_io.data = gv;
	r = spawn(gv, err);
	if (r < 0)
		goto fail;
	*ret = gv;
	return 0;
fail:
	if (gv->dir[0])
		rmdir(gv->dir);
	free(gv);
	return r;
}

void sn_gvproxy_replace(struct sn_gvproxy *gv)
{
	if (gv->pid > 0)
		terminate(gv);
}

void sn_gvproxy_stop(struct sn_gvproxy *gv)
{
	if (!gv)
		return;
	gv->closing = true;
	ev_timer_stop(gv->loop, &gv->respawn);
	if (gv->pid <= 0) {
		err_close(gv);
		remove_files(gv);
		rmdir(gv->dir);
		free(gv);
		return;
	}
	if (ev_depth(gv->loop) == 0)
		reap_now(gv); /* child_gone() frees it */
	else
		terminate(gv); /* child_gone() finishes, from the loop */
}

const char *sn_gvproxy_api(const struct sn_gvproxy *gv)
{
	return gv->api;
}

pid_t sn_gvproxy_pid(const struct sn_gvproxy *gv)
{
	return gv->pid;
}

unsigned sn_gvproxy_restarts(const struct sn_gvproxy *gv)
{
	return gv->restarts;
}

const char *sn_gvproxy_status(const struct sn_gvproxy *gv)
{
	return gv->status[0] ? gv->status : "gvproxy not running";
}
