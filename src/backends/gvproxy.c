/* gvproxy.c - the gvproxy port: a supervised gvproxy child (gvisor-tap-vsock) giving the VMs on
 * the switch a gateway, DHCP, DNS and NAT without root.
 *
 * The child gets one end of a socketpair on its stdin and stdout and runs with -listen-stdio,
 * where gvproxy speaks 2-byte little-endian length prefixes (the hyperkit framing without its
 * handshake); our end is a stream data port (src/ports/stream.h), so frames take the same path
 * as on any other stream port. The child's stderr is read line by line into the switch's log.
 * Its HTTP API (-listen) sits in a private 0700 directory this port creates and removes.
 *
 * Supervision: an ev_child watcher (default loop; other loops poll waitpid, since libev only
 * delivers child events to the default loop) sees the child exit; the port goes down, the
 * status is logged and shown as the port's peer, and the child is started again after an
 * exponential backoff unless restart=off. On Linux the child gets PR_SET_PDEATHSIG(SIGTERM),
 * and gvproxy ends its stdio session when stdin reaches end of file, so it does not outlive a
 * squibnet killed with SIGKILL. Closing the port sends SIGTERM, then SIGKILL after a grace
 * period, and always reaps: inside the loop through the watchers, outside it (the embedder's
 * sn_switch_destroy() after ev_run() returned) by waiting, bounded by the grace period.
 *
 * The control commands (gvproxy expose, unexpose, list) call that API without blocking the
 * switch: each is a deferred control reply (SN_CTL_DEFER, control.h) driven by watchers on a
 * non-blocking unix socket under a deadline. The reply, the deadline, the control client
 * hanging up, the child exiting and the port's removal each end the call, whichever is first. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include <squibnet/config.h>

#include "../control.h"
#include "../json.h"
#include "../logging.h"
#include "../ports/stream.h"
#include "../sock.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"
#include "gvproxy.h"

#define STABLE_RUN 10.0      /* a child that ran this long restarts after the shortest delay */
#define POLL_INTERVAL 0.1    /* waitpid polling on loops other than the default one */
#define ERRLINE_MAX 512      /* a longer stderr line is logged in pieces */
#define API_REPLY_MAX (1024 * 1024)
#define ARGV_FIXED 12        /* words squibnet puts on gvproxy's command line itself */

/* Where podman and distributions put gvproxy when it is not on PATH. */
static const char *const fallback_dirs[] = {
	"/usr/libexec/podman",
	"/usr/lib/podman",
	"/usr/local/libexec/podman",
	"/usr/local/lib/podman",
	"/opt/homebrew/bin",
};

struct gvproxy {
	struct sn_port *port;     /* NULL once the port is freed while the child is still reaped */
	struct ev_loop *loop;
	char name[SN_PORT_NAME_MAX];
	char path[PATH_MAX];
	char args[SN_SPEC_MAX_LEN];        /* args=, split in place */
	char *extra[SN_GVPROXY_ARGS_MAX];
	unsigned nextra;
	char ssh_port[8];          /* "" leaves gvproxy's default */
	bool restart;
	bool closing;
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
	char status[160];          /* why there is no child, for describe */
	char version[24];          /* from its "gvproxy version vX" line, for messages */
	bool ssh_off_refused;      /* it said it does not take -ssh-port -1 (an old release) */
	struct api_call *calls;    /* API requests of control commands waiting for their answer */
};

static const struct sn_port_ops gvproxy_ops;

static void respawn_later(struct gvproxy *gv);
static void calls_cancel(struct gvproxy *gv, int code, const char *why);

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

static void err_line(struct gvproxy *gv, const char *line, size_t len)
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
		size_t n = len - (size_t)(v + 16 - line);

		n = SN_MIN(strcspn(v + 16, " \""), n);
		snprintf(gv->version, sizeof(gv->version), "%.*s", (int)n, v + 16);
	}
	if (bad)
		sn_warn("port %s: gvproxy: %.*s", gv->name, (int)len, line);
	else
		sn_info("port %s: gvproxy: %.*s", gv->name, (int)len, line);
}

/* Reads what the pipe holds; at end of file logs the unterminated rest and closes it. */
static void err_drain(struct gvproxy *gv)
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

static void err_close(struct gvproxy *gv)
{
	if (gv->err_fd < 0)
		return;
	ev_io_stop(gv->loop, &gv->err_io);
	close(gv->err_fd);
	gv->err_fd = -1;
	gv->errlen = 0;
}

/* ---- the child ---- */

static void remove_files(struct gvproxy *gv)
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

static int spawn(struct gvproxy *gv, struct sn_error *err)
{
	char mtu[24], listen[sizeof(gv->api) + 16], pidfile[PATH_MAX + 16], peer[64];
	char *argv[ARGV_FIXED + SN_GVPROXY_ARGS_MAX + 1];
	int sv[2] = {-1, -1}, ep[2] = {-1, -1}, xp[2] = {-1, -1}, n = 0, code, r;
	long maxfd = sysconf(_SC_OPEN_MAX);
	pid_t pid, self = getpid();
	ssize_t got;

	/* a killed child leaves its socket and pid file, and gvproxy refuses to listen over them */
	remove_files(gv);
	snprintf(mtu, sizeof(mtu), "-mtu=%u", gv->port->mtu);
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
	sn_stream_port_attach(gv->port, sv[0], peer);
	sn_info("port %s: started %s (pid %d)", gv->name, gv->path, (int)pid);
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
static void child_gone(struct gvproxy *gv, int status, bool known)
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
	if (gv->calls) {
		char why[160];

		snprintf(why, sizeof(why), "gvproxy %s before answering", what);
		calls_cancel(gv, -ECONNRESET, why);
	}
	if (gv->closing) {
		sn_info("port %s: gvproxy pid %d %s", gv->name, (int)gv->pid, what);
		gv->pid = 0;
		remove_files(gv);
		rmdir(gv->dir);
		if (!gv->port)
			free(gv);
		return;
	}
	if (gv->port)
		sn_stream_port_detach(gv->port);
	if (gv->ssh_off_refused) {
		snprintf(gv->status, sizeof(gv->status),
			 "gvproxy %s refuses ssh-port=-1 (releases before Oct 2024): use ssh-port=N (1024-65535) "
			 "or a newer gvproxy", gv->version[0] ? gv->version : "(unknown version)");
		sn_err("port %s: %s; not restarting", gv->name, gv->status);
		if (gv->port)
			sn_port_set_error(gv->port, "%s", gv->status);
		gv->pid = 0;
		return;
	}
	if (!gv->restart) {
		sn_warn("port %s: gvproxy pid %d %s; not restarting (restart=off)", gv->name, (int)gv->pid, what);
		snprintf(gv->status, sizeof(gv->status), "gvproxy %s (restart=off)", what);
		gv->pid = 0;
		return;
	}
	if (mono_now() - gv->started >= STABLE_RUN)
		gv->backoff = SN_GVPROXY_BACKOFF_MIN;
	sn_warn("port %s: gvproxy pid %d %s; restarting in %.1f s", gv->name, (int)gv->pid, what, gv->backoff);
	snprintf(gv->status, sizeof(gv->status), "gvproxy %s; restart %u after %.1f s", what, gv->restarts + 1,
		 gv->backoff);
	gv->pid = 0;
	respawn_later(gv);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct gvproxy *gv = w->data;

	if (w->rpid == gv->pid && (WIFEXITED(w->rstatus) || WIFSIGNALED(w->rstatus)))
		child_gone(gv, w->rstatus, true);
}

static void poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gvproxy *gv = w->data;
	int status;
	pid_t r = waitpid(gv->pid, &status, WNOHANG);

	if (r == gv->pid)
		child_gone(gv, status, true);
	else if (r < 0 && errno == ECHILD)
		child_gone(gv, 0, false);
}

static void kill_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gvproxy *gv = w->data;

	if (gv->pid > 0) {
		sn_warn("port %s: gvproxy pid %d still running %.0f s after SIGTERM; sending SIGKILL", gv->name,
			(int)gv->pid, SN_GVPROXY_GRACE);
		kill(gv->pid, SIGKILL);
	}
}

static void respawn_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gvproxy *gv = w->data;
	struct sn_error err = {{0}};

	gv->restarts++;
	if (spawn(gv, &err) < 0) {
		sn_warn("port %s: %s; trying again in %.1f s", gv->name, err.msg, gv->backoff);
		snprintf(gv->status, sizeof(gv->status), "%s", err.msg);
		respawn_later(gv);
	}
}

static void respawn_later(struct gvproxy *gv)
{
	ev_timer_set(&gv->respawn, gv->backoff, 0);
	ev_timer_start(gv->loop, &gv->respawn);
	gv->backoff = SN_MIN(gv->backoff * 2, SN_GVPROXY_BACKOFF_MAX);
}

/* Asks the child to go; SIGKILL follows after the grace period. */
static void terminate(struct gvproxy *gv)
{
	if (gv->pid <= 0 || ev_is_active(&gv->kill))
		return;
	kill(gv->pid, SIGTERM);
	ev_timer_set(&gv->kill, SN_GVPROXY_GRACE, 0);
	ev_timer_start(gv->loop, &gv->kill);
}

/* The frames stopped while the child may live on (it closed stdout, or broke the framing):
 * it is of no use like that, so it is replaced. */
static void lost_cb(struct sn_port *port, void *owner, const char *why)
{
	struct gvproxy *gv = owner;

	if (gv->pid > 0)
		terminate(gv);
}

/* Outside the loop nothing would see the child exit: wait for it here, bounded. */
static void reap_now(struct gvproxy *gv)
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

/* ---- the port ---- */

static void gvproxy_close(struct sn_port *port)
{
	struct gvproxy *gv = sn_stream_port_owner(port);

	gv->closing = true;
	ev_timer_stop(gv->loop, &gv->respawn);
	calls_cancel(gv, -ECANCELED, "the port was removed before gvproxy answered");
	sn_stream_port_close(port); /* our end of the socketpair: gvproxy sees end of file */
	if (gv->pid <= 0) {
		err_close(gv);
		remove_files(gv);
		rmdir(gv->dir);
		return;
	}
	if (ev_depth(gv->loop) == 0)
		reap_now(gv);
	else
		terminate(gv); /* child_gone() finishes, from the loop */
}

static void gvproxy_free(struct sn_port *port)
{
	struct gvproxy *gv = sn_stream_port_owner(port);

	sn_stream_port_free(port);
	if (gv->pid > 0)
		gv->port = NULL; /* still being reaped: child_gone() frees it */
	else
		free(gv);
}

static void gvproxy_describe(struct sn_port *port, char *buf, size_t len)
{
	struct gvproxy *gv = sn_stream_port_owner(port);

	if (gv->pid > 0 && gv->restarts)
		snprintf(buf, len, "gvproxy pid %d (restarts %u) api unix:%s", (int)gv->pid, gv->restarts,
			 gv->api);
	else if (gv->pid > 0)
		snprintf(buf, len, "gvproxy pid %d api unix:%s", (int)gv->pid, gv->api);
	else
		snprintf(buf, len, "%s", gv->status[0] ? gv->status : "gvproxy not running");
}

static const struct sn_port_ops gvproxy_ops = {
	.kind = "gvproxy",
	.flush = sn_stream_port_flush,
	.close = gvproxy_close,
	.free = gvproxy_free,
	.describe = gvproxy_describe,
	.resume = sn_stream_port_resume,
};

/* ---- creation ---- */

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
static int find_binary(struct gvproxy *gv, const char *path, struct sn_error *err)
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
static int parse_args(struct gvproxy *gv, const char *text, struct sn_error *err)
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
static int make_dir(struct gvproxy *gv, struct sn_error *err)
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

static int gvproxy_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			  struct sn_port **ret_port, struct sn_error *err)
{
	const char *path = sn_spec_get(spec, "path");
	const char *args = sn_spec_get(spec, "args");
	const char *ssh = sn_spec_get(spec, "ssh-port");
	struct gvproxy *gv;
	int r;

	gv = calloc(1, sizeof(*gv));
	if (!gv)
		return -ENOMEM;
	gv->restart = true;
	gv->err_fd = -1;
	gv->loop = NULL; /* the port's, once it exists */
	gv->backoff = SN_GVPROXY_BACKOFF_MIN;
	r = sn_spec_get_bool(spec, "restart", &gv->restart, err);
	if (r < 0)
		goto fail;
	if (ssh) {
		char *end;
		long v = strtol(ssh, &end, 10);

		if (!*ssh || *end || (v != -1 && (v < 1024 || v > 65535))) {
			r = sn_error_set(err, -EINVAL,
					 "bad value '%s' for key 'ssh-port': 1024 to 65535, or -1 for none", ssh);
			goto fail;
		}
		snprintf(gv->ssh_port, sizeof(gv->ssh_port), "%ld", v);
	}
	if (args && (r = parse_args(gv, args, err)) < 0)
		goto fail;
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		goto fail;
	r = find_binary(gv, path, err);
	if (r < 0)
		goto fail;
	r = sn_stream_port_create(sw, conf, &gvproxy_ops, SN_FRAMING_HYPERKIT, lost_cb, gv, &gv->port);
	if (r < 0)
		goto fail;
	gv->loop = sn_port_loop(gv->port);
	sn_strlcpy(gv->name, gv->port->name, sizeof(gv->name));
	r = make_dir(gv, err);
	if (r < 0) {
		sn_stream_port_free(gv->port);
		goto fail;
	}
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

	/* registered (DOWN) before the child exists: going UP puts it in the forwarding set */
	r = sn_port_register(gv->port);
	if (r < 0) {
		sn_stream_port_free(gv->port);
		goto fail;
	}
	r = spawn(gv, err);
	if (r < 0) {
		sn_port_close(gv->port); /* no child: removes the directory, frees later */
		return r;
	}
	*ret_port = gv->port;
	return 0;
fail:
	if (gv->dir[0])
		rmdir(gv->dir);
	free(gv);
	return r;
}

static const char *const gvproxy_keys[] = {"path", "args", "ssh-port", "restart", NULL};

const struct sn_port_kind sn_port_kind_gvproxy = {
	.name = "gvproxy",
	.usage = "gvproxy[,path=BIN][,ssh-port=N|-1][,args=\"...\"][,restart=off]  NAT, DHCP, DNS via a gvproxy child",
	.keys = gvproxy_keys,
	.create = gvproxy_create,
};

/* ---- the HTTP API: the reply parser ---- */

/* Decodes a chunked body in place; returns its length, or -1 when it is not whole yet. */
static ssize_t unchunk(char *body, size_t len)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *end;
		unsigned long n;
		char *crlf = memmem(body + in, len - in, "\r\n", 2);

		if (!crlf)
			return -1;
		n = strtoul(body + in, &end, 16);
		if (end == body + in)
			return -1;
		in = (size_t)(crlf - body) + 2;
		if (n == 0)
			return (ssize_t)out;
		if (len - in < n + 2)
			return -1;
		memmove(body + out, body + in, n);
		out += n;
		in += n + 2;
	}
}

/* Looks for a whole reply in @b: returns the status (and sets the body) once it is complete,
 * 0 when more is needed (or, at @eof, what there is), -EPROTO when it is not HTTP. */
static int reply_parse(struct sn_buf *b, bool eof, const char **ret_body, size_t *ret_len)
{
	char *hdr_end, *p;
	size_t hl, have;
	long cl = -1;
	bool chunked = false;
	int status;

	if (b->len < 12 || !(hdr_end = memmem(b->data, b->len, "\r\n\r\n", 4)))
		return eof ? -EPROTO : 0;
	if (strncmp(b->data, "HTTP/1.", 7) || b->data[8] != ' ' || !isdigit((unsigned char)b->data[9]))
		return -EPROTO;
	status = atoi(b->data + 9);
	hl = (size_t)(hdr_end - b->data) + 4;
	for (p = memchr(b->data, '\n', hl); p && p < hdr_end; p = memchr(p, '\n', (size_t)(hdr_end - p))) {
		size_t line;

		p++;
		line = (size_t)((char *)memchr(p, '\n', (size_t)(hdr_end + 2 - p)) - p);
		if (!strncasecmp(p, "Content-Length:", 15))
			cl = strtol(p + 15, NULL, 10);
		else if (!strncasecmp(p, "Transfer-Encoding:", 18) && memmem(p, line, "chunked", 7))
			chunked = true;
	}
	have = b->len - hl;
	if (chunked) {
		ssize_t n;

		/* decode a copy at the end only when whole: the terminating chunk must be there */
		if (!memmem(b->data + hl, have, "\r\n0\r\n", 5) && strncmp(b->data + hl, "0\r\n", 3))
			return eof ? -EPROTO : 0;
		n = unchunk(b->data + hl, have);
		if (n < 0)
			return eof ? -EPROTO : 0;
		have = (size_t)n;
	} else if (cl >= 0) {
		if (have < (size_t)cl)
			return eof ? -EPROTO : 0;
		have = (size_t)cl;
	} else if (!eof) {
		return 0;
	}
	b->data[hl + have] = '\0'; /* sn_buf keeps room: see the caller's extra byte */
	*ret_body = b->data + hl;
	*ret_len = have;
	return status;
}

/* ---- a small reader for /all's JSON: an array of flat objects with string members ---- */

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Reads a string at @p (at its opening quote) into @out; returns what follows, or NULL. */
static const char *json_str(const char *p, char *out, size_t len)
{
	size_t n = 0;

	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		char c = *p++;

		if (c == '\\') {
			c = *p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				unsigned v = 0;

				for (int i = 0; i < 4; i++, p++) {
					int d = isdigit((unsigned char)*p) ? *p - '0' : (*p | 0x20) - 'a' + 10;

					if (!isxdigit((unsigned char)*p))
						return NULL;
					v = v << 4 | (unsigned)d;
				}
				/* addresses and protocol names are ASCII; anything else is shown as '?' */
				c = v < 0x80 && v >= 0x20 ? (char)v : '?';
				break;
			}
			case '\0':
				return NULL;
			default:
				break; /* \" \\ \/ */
			}
		}
		if (n + 1 < len)
			out[n++] = c;
	}
	if (*p != '"')
		return NULL;
	out[n] = '\0';
	return p + 1;
}

struct forward {
	char local[256], remote[256], proto[16];
};

/* Calls @row for each object; returns the number of objects or -EPROTO. */
static int json_forwards(const char *p, int (*row)(const struct forward *, void *), void *ctx)
{
	int count = 0;

	p = json_ws(p);
	if (!strncmp(p, "null", 4))
		return 0;
	if (*p++ != '[')
		return -EPROTO;
	p = json_ws(p);
	if (*p == ']')
		return 0;
	for (;;) {
		struct forward f = {"", "", ""};

		p = json_ws(p);
		if (*p++ != '{')
			return -EPROTO;
		p = json_ws(p);
		while (*p != '}') {
			char key[32], val[256];

			if (!(p = json_str(p, key, sizeof(key))))
				return -EPROTO;
			p = json_ws(p);
			if (*p++ != ':')
				return -EPROTO;
			p = json_ws(p);
			if (*p == '"') {
				if (!(p = json_str(p, val, sizeof(val))))
					return -EPROTO;
				if (!strcmp(key, "local"))
					sn_strlcpy(f.local, val, sizeof(f.local));
				else if (!strcmp(key, "remote"))
					sn_strlcpy(f.remote, val, sizeof(f.remote));
				else if (!strcmp(key, "protocol"))
					sn_strlcpy(f.proto, val, sizeof(f.proto));
			} else {
				/* numbers, true, false, null: nothing nested is expected here */
				p += strcspn(p, ",}[{");
				if (*p == '[' || *p == '{')
					return -EPROTO;
			}
			p = json_ws(p);
			if (*p == ',')
				p = json_ws(p + 1);
			else if (*p != '}')
				return -EPROTO;
		}
		count++;
		if (row(&f, ctx) < 0)
			return -ENOMEM;
		p = json_ws(p + 1);
		if (*p == ']')
			return count;
		if (*p++ != ',')
			return -EPROTO;
	}
}

/* ---- control commands ---- */

/* The gvproxy port a command is about: --port NAME, or the only one there is. */
static int pick_port(struct sn_ctl_ctx *ctx, const char *name, struct gvproxy **ret)
{
	struct sn_port *found = NULL;
	unsigned n = 0;

	if (name) {
		found = sn_switch_find_port(ctx->sw, name);
		if (!found)
			return sn_error_set(&ctx->err, -ENOENT, "no port called '%s'", name);
		if (found->ops != &gvproxy_ops)
			return sn_error_set(&ctx->err, -EINVAL, "port '%s' is a %s port, not a gvproxy port", name,
					    found->ops->kind);
	} else {
		for (struct sn_port *p = NULL; (p = sn_switch_next_port(ctx->sw, p, &gvproxy_ops)); n++)
			found = p;
		if (n == 0)
			return sn_error_set(&ctx->err, -ENOENT, "the switch has no gvproxy port");
		if (n > 1)
			return sn_error_set(&ctx->err, -EINVAL, "%u gvproxy ports: say which with --port NAME", n);
	}
	*ret = sn_stream_port_owner(found);
	if ((*ret)->pid <= 0)
		return sn_error_set(&ctx->err, -ENOTCONN, "port '%s': %s", found->name,
				    (*ret)->status[0] ? (*ret)->status : "gvproxy is not running");
	return 0;
}

struct cmd_opts {
	const char *pos[2];
	int npos;
	const char *proto;
	const char *port;
};

static int parse_cmd(struct sn_ctl_ctx *ctx, int want, const char *usage, struct cmd_opts *o)
{
	*o = (struct cmd_opts){.proto = "tcp"};
	for (int i = 0; i < ctx->argc; i++) {
		const char *a = ctx->argv[i];

		if (!strcmp(a, "--proto") || !strcmp(a, "--port")) {
			if (i + 1 == ctx->argc)
				return sn_error_set(&ctx->err, -EINVAL, "%s needs a value (usage: %s)", a, usage);
			if (!strcmp(a, "--proto"))
				o->proto = ctx->argv[++i];
			else
				o->port = ctx->argv[++i];
			continue;
		}
		if (o->npos == want)
			return sn_error_set(&ctx->err, -EINVAL, "unexpected argument '%s' (usage: %s)", a, usage);
		if (strlen(a) > 255)
			return sn_error_set(&ctx->err, -EINVAL, "'%.32s...' is too long", a);
		for (const char *c = a; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return sn_error_set(&ctx->err, -EINVAL, "control character in '%s'", a);
		o->pos[o->npos++] = a;
	}
	if (o->npos != want)
		return sn_error_set(&ctx->err, -EINVAL, "usage: %s", usage);
	if (strcmp(o->proto, "tcp") && strcmp(o->proto, "udp") && strcmp(o->proto, "unix"))
		return sn_error_set(&ctx->err, -EINVAL, "--proto: '%s' is not tcp, udp or unix", o->proto);
	return 0;
}

/* ---- calls to the API, on the loop ---- */

enum call_what { CALL_EXPOSE, CALL_UNEXPOSE, CALL_LIST };

/*
 * One control command's request to gvproxy's API socket, driven by watchers: connect, send
 * the request, read until the reply is whole, then answer the deferred control request. The
 * switch forwards meanwhile. Whoever ends it first wins and frees it: the reply, the deadline,
 * the control client leaving (it is never touched again), the child exiting, the port going.
 */
struct api_call {
	struct gvproxy *gv;
	struct api_call *prev, *next;  /* gv->calls */
	struct sn_ctl_client *client;
	enum call_what what;
	char local[256], remote[256], proto[8]; /* the command's arguments, for the reply */
	int fd;
	bool connected;
	ev_io io;
	ev_timer timeout;
	struct sn_buf req;
	size_t req_off;
	struct sn_buf resp;
	/* the reply, once whole, for call_build() */
	int status;
	const char *text;
};

/* Forgets the call: its socket closes (gvproxy sees the request abandoned), the client stays. */
static void call_free(struct api_call *a)
{
	struct gvproxy *gv = a->gv;

	ev_io_stop(gv->loop, &a->io);
	ev_timer_stop(gv->loop, &a->timeout);
	close(a->fd);
	if (a->prev)
		a->prev->next = a->next;
	else
		gv->calls = a->next;
	if (a->next)
		a->next->prev = a->prev;
	sn_buf_finish(&a->req);
	sn_buf_finish(&a->resp);
	free(a);
}

static void call_fail(struct api_call *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Answers the control request with ERR and ends the call. */
static void call_fail(struct api_call *a, int code, const char *fmt, ...)
{
	char msg[sizeof(((struct sn_error *)0)->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sn_debug("port %s: gvproxy API call failed: %s", a->gv->name, msg);
	sn_ctl_reply_err(a->client, code, "%s", msg);
	call_free(a);
}

/* Ends every call of @gv with ERR @code: the child went, or the port did. */
static void calls_cancel(struct gvproxy *gv, int code, const char *why)
{
	while (gv->calls)
		call_fail(gv->calls, code, "port '%s': %s", gv->name, why);
}

/* A status other than 200 as an error: the text gvproxy's http.Error() sent is the message. */
static int api_error(struct sn_ctl_ctx *ctx, int status, const char *body)
{
	size_t n = strcspn(body, "\r\n");
	int code = status == 400 ? -EINVAL : status == 404 ? -ENOENT : -EIO;

	/* gvproxy answers both of these with 500; its words are the only tell */
	if (strstr(body, "already"))
		code = -EEXIST;
	else if (strstr(body, "not found"))
		code = -ENOENT;
	return sn_error_set(&ctx->err, code, "gvproxy: HTTP %d: %.*s", status, (int)SN_MIN(n, 200), body);
}

struct list_walk {
	struct sn_ctl_ctx *ctx;
	struct sn_table *t;
};

static int list_row(const struct forward *f, void *arg)
{
	struct list_walk *w = arg;

	if (w->ctx->json) {
		sn_json_begin_object(w->ctx->j, NULL);
		sn_json_string(w->ctx->j, "local", f->local);
		sn_json_string(w->ctx->j, "remote", f->remote);
		sn_json_string(w->ctx->j, "protocol", f->proto[0] ? f->proto : "tcp");
		sn_json_end_object(w->ctx->j);
		return 0;
	}
	sn_table_cell(w->t, "%s", f->proto[0] ? f->proto : "tcp");
	sn_table_cell(w->t, "%s", f->local);
	sn_table_cell(w->t, "%s", f->remote);
	return w->t->failed ? -ENOMEM : 0;
}

static int list_build(struct sn_ctl_ctx *ctx, struct api_call *a)
{
	static const char *const head[] = {"PROTO", "LOCAL", "REMOTE"};
	struct sn_table t = {.head = head, .ncol = SN_ARRAY_SIZE(head)};
	struct list_walk w = {ctx, &t};
	int r;

	if (ctx->json) {
		sn_json_string(ctx->j, "port", a->gv->name);
		sn_json_begin_array(ctx->j, "forwards");
	}
	r = json_forwards(a->text, list_row, &w);
	if (ctx->json)
		sn_json_end_array(ctx->j);
	if (r < 0)
		r = sn_error_set(&ctx->err, r, "gvproxy API: cannot read the list of forwards");
	else if (!ctx->json)
		sn_table_render(&t, ctx->body);
	sn_table_free(&t);
	return r < 0 ? r : 0;
}

/* The reply's body from gvproxy's answer: sn_ctl_reply() runs it like a command's handler. */
static int call_build(struct sn_ctl_ctx *ctx, void *data)
{
	struct api_call *a = data;
	bool expose = a->what == CALL_EXPOSE;

	if (a->status != 200)
		return api_error(ctx, a->status, a->text);
	if (a->what == CALL_LIST)
		return list_build(ctx, a);
	if (ctx->json) {
		sn_json_string(ctx->j, "port", a->gv->name);
		sn_json_begin_object(ctx->j, expose ? "exposed" : "unexposed");
		sn_json_string(ctx->j, "local", a->local);
		if (expose)
			sn_json_string(ctx->j, "remote", a->remote);
		sn_json_string(ctx->j, "protocol", a->proto);
		sn_json_end_object(ctx->j);
	} else if (expose) {
		sn_buf_printf(ctx->body, "%s %s -> %s\n", a->proto, a->local, a->remote);
	}
	return 0;
}

/* Reads what gvproxy sent; answers the client once the reply is whole. */
static void call_read(struct api_call *a)
{
	/* bounded, like every reader on the loop; the rest comes on the next wake-up */
	for (int round = 0; round < 16; round++) {
		char buf[4096];
		ssize_t n = recv(a->fd, buf, sizeof(buf), 0);
		size_t len;
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			call_fail(a, errno == ECONNRESET ? -ECONNRESET : -EIO, "gvproxy API: %s", strerror(errno));
			return;
		}
		if (n == 0 && a->resp.len == 0) {
			/* what a gvproxy that exits or restarts mid-request looks like from here */
			call_fail(a, -ECONNRESET, "gvproxy API closed the connection without answering");
			return;
		}
		if (n > 0) {
			sn_buf_add(&a->resp, buf, (size_t)n);
			sn_buf_add(&a->resp, "", 1); /* room for the terminator reply_parse() writes */
			a->resp.len--;
		}
		if (a->resp.failed || a->resp.len > API_REPLY_MAX) {
			call_fail(a, -E2BIG, "gvproxy API: reply too long");
			return;
		}
		r = reply_parse(&a->resp, n == 0, &a->text, &len);
		if (r < 0 || (r == 0 && n == 0)) { /* at the end, "HTTP/1.1 0" would wait forever */
			call_fail(a, -EPROTO, "gvproxy API: the reply is not HTTP%s", n == 0 ? ", or cut short" : "");
			return;
		}
		if (r > 0) {
			a->status = r;
			sn_ctl_reply(a->client, call_build, a);
			call_free(a);
			return;
		}
	}
}

static void call_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct api_call *a = w->data;

	if (!a->connected) {
		int r = sn_sock_connect_result(a->fd);

		if (r < 0) {
			call_fail(a, r, "gvproxy API at %s: %s", a->gv->api, strerror(-r));
			return;
		}
		a->connected = true;
	}
	if (w->events & EV_READ) {
		call_read(a);
		return;
	}
	while (a->req_off < a->req.len) {
		ssize_t n = send(a->fd, a->req.data + a->req_off, a->req.len - a->req_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			call_fail(a, errno == EPIPE || errno == ECONNRESET ? -ECONNRESET : -EIO,
				  "gvproxy API: sending: %s", strerror(errno));
			return;
		}
		a->req_off += (size_t)n;
	}
	/* all sent: now the answer */
	ev_io_stop(loop, w);
	ev_io_set(w, a->fd, EV_READ);
	ev_io_start(loop, w);
}

static void call_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct api_call *a = w->data;

	call_fail(a, -ETIMEDOUT, "gvproxy API did not answer within %.0f s", SN_GVPROXY_API_TIMEOUT);
}

/* The control client hung up: the call goes, unanswered. */
static void call_abandon_cb(struct sn_ctl_client *client, void *data)
{
	struct api_call *a = data;

	sn_debug("port %s: the control client left; gvproxy API call dropped", a->gv->name);
	call_free(a);
}

/* Starts the request and holds the control reply back until it is answered: SN_CTL_DEFER, or
 * -errno with ctx->err set when it cannot even start. */
static int call_start(struct sn_ctl_ctx *ctx, struct gvproxy *gv, enum call_what what,
		      const struct cmd_opts *o)
{
	static const char *const paths[] = {
		[CALL_EXPOSE] = "/services/forwarder/expose",
		[CALL_UNEXPOSE] = "/services/forwarder/unexpose",
		[CALL_LIST] = "/services/forwarder/all",
	};
	struct sn_sockaddr addr;
	struct api_call *a;
	struct sn_buf body;
	int fd;

	if (sn_sockaddr_unix(gv->api, &addr) < 0)
		return sn_error_set(&ctx->err, -ENAMETOOLONG, "gvproxy API socket path too long");
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->gv = gv;
	a->what = what;
	a->fd = -1;
	sn_buf_init(&a->req);
	sn_buf_init(&a->resp);
	if (what != CALL_LIST) {
		sn_strlcpy(a->local, o->pos[0], sizeof(a->local));
		sn_strlcpy(a->proto, o->proto, sizeof(a->proto));
		if (what == CALL_EXPOSE)
			sn_strlcpy(a->remote, o->pos[1], sizeof(a->remote));
	}
	sn_buf_printf(&a->req, "%s %s HTTP/1.1\r\nHost: gvproxy\r\nUser-Agent: squibnet/%s\r\nConnection: close\r\n",
		      what == CALL_LIST ? "GET" : "POST", paths[what], SN_VERSION);
	if (what == CALL_LIST) {
		sn_buf_puts(&a->req, "\r\n");
	} else {
		sn_buf_init(&body);
		sn_buf_puts(&body, "{\"local\":");
		sn_json_quote(&body, a->local);
		if (what == CALL_EXPOSE) {
			sn_buf_puts(&body, ",\"remote\":");
			sn_json_quote(&body, a->remote);
		}
		sn_buf_puts(&body, ",\"protocol\":");
		sn_json_quote(&body, a->proto);
		sn_buf_puts(&body, "}");
		sn_buf_printf(&a->req, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", body.len);
		sn_buf_add(&a->req, body.data, body.len);
		if (body.failed)
			a->req.failed = true;
		sn_buf_finish(&body);
	}
	if (a->req.failed) {
		sn_buf_finish(&a->req);
		free(a);
		return -ENOMEM;
	}
	/* a unix socket connects at once or not at all (EAGAIN: gvproxy's backlog is full) */
	fd = sn_sock_connect(&addr, SOCK_STREAM);
	if (fd < 0) {
		sn_buf_finish(&a->req);
		free(a);
		return sn_error_set(&ctx->err, fd, "gvproxy API at %s: %s", gv->api, strerror(-fd));
	}
	a->fd = fd;
	ev_io_init(&a->io, call_io_cb, fd, EV_WRITE);
	a->io.data = a;
	ev_timer_init(&a->timeout, call_timeout_cb, SN_GVPROXY_API_TIMEOUT, 0);
	a->timeout.data = a;
	ev_io_start(gv->loop, &a->io);
	ev_timer_start(gv->loop, &a->timeout);
	a->next = gv->calls;
	if (a->next)
		a->next->prev = a;
	gv->calls = a;
	a->client = ctx->client;
	sn_ctl_set_stream_end(ctx->client, call_abandon_cb, a);
	return SN_CTL_DEFER;
}

static int expose_common(struct sn_ctl_ctx *ctx, bool expose)
{
	const char *usage = expose ? "gvproxy expose LOCAL REMOTE [--proto tcp|udp] [--port NAME]" :
				     "gvproxy unexpose LOCAL [--proto tcp|udp] [--port NAME]";
	struct cmd_opts o;
	struct gvproxy *gv;
	int r;

	r = parse_cmd(ctx, expose ? 2 : 1, usage, &o);
	if (r < 0)
		return r;
	r = pick_port(ctx, o.port, &gv);
	if (r < 0)
		return r;
	return call_start(ctx, gv, expose ? CALL_EXPOSE : CALL_UNEXPOSE, &o);
}

static int cmd_expose(struct sn_ctl_ctx *ctx)
{
	return expose_common(ctx, true);
}

static int cmd_unexpose(struct sn_ctl_ctx *ctx)
{
	return expose_common(ctx, false);
}

static int cmd_list(struct sn_ctl_ctx *ctx)
{
	struct cmd_opts o;
	struct gvproxy *gv;
	int r;

	r = parse_cmd(ctx, 0, "gvproxy list [--port NAME]", &o);
	if (r < 0)
		return r;
	r = pick_port(ctx, o.port, &gv);
	if (r < 0)
		return r;
	return call_start(ctx, gv, CALL_LIST, &o);
}

static const struct sn_ctl_cmd gvproxy_cmds[] = {
	{"gvproxy expose", "LOCAL REMOTE [--proto tcp|udp] [--port NAME]",
	 "forward host LOCAL (127.0.0.1:8080) to guest REMOTE (192.168.127.2:80) through gvproxy", 2, 6,
	 cmd_expose},
	{"gvproxy unexpose", "LOCAL [--proto tcp|udp] [--port NAME]", "remove a gvproxy forward", 1, 5,
	 cmd_unexpose},
	{"gvproxy list", "[--port NAME]", "list gvproxy's forwards", 0, 2, cmd_list},
};

const struct sn_ctl_cmds sn_gvproxy_ctl_cmds = {gvproxy_cmds, SN_ARRAY_SIZE(gvproxy_cmds)};
