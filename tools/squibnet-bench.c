/* squibnet-bench - forwarding benchmark: starts the real daemon, attaches client endpoints over
 * its stream and dgram listeners, pushes frames of a few sizes A->B and all-to-all, and reports
 * delivered frames, loss, rate and the switch's CPU time per frame, plus whether the daemon's
 * memory grows with traffic. Beside it, in the same run: a plain one-thread relay between the
 * same two stream clients (the most any stream switch could deliver), and vde_switch when it is
 * in PATH. With --scenario it measures the A->B pair again next to peers that never read and
 * next to a flood of random source MACs.
 *
 * It is a benchmark, not a test: it reports numbers and never judges them by its exit code.
 * By default senders write as fast as their sockets take frames, as QEMU does; with --window N
 * they keep at most N frames in flight. Loss is reported beside every rate: frames sent and not
 * received. The switch is pinned to one CPU and the bench's threads to another, so the
 * switch's CPU time is its own. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <squibnet/switch.h>

#include "framing.h"
#include "sock.h"

#define MAX_CLIENTS 4
#define BATCH 64          /* frames per write in batch mode, per sendmmsg/recvmmsg */
#define RX_BUF (1u << 20) /* stream receive buffer per client */
#define DGRAM_CAP 2048    /* receive slot per datagram: frames here are at most 1514 bytes */
#define ETHERTYPE 0x88b5  /* IEEE 802 local experimental */
#define STALL_NS 250000000ull
#define SOCKBUF (4 << 20)

enum mode { MODE_BATCH, MODE_SINGLE, MODE_DGRAM, MODE_VDE, MODE_RELAY_BATCH, MODE_RELAY_SINGLE, MODE_COUNT };
enum topo { TOPO_AB, TOPO_ALL, TOPO_COUNT };
/* what else is attached to the switch while the A->B pair is measured */
enum scen { SCEN_SOLO, SCEN_STUCK, SCEN_MACFLOOD, SCEN_COUNT };

static const char *const mode_names[] = {"batch", "single", "dgram", "vde", "relay-batch", "relay-single"};
static const char *const mode_desc[] = {
	"stream, 64 frames/write", "stream, 1 frame/write", "dgram, 1 frame/datagram",
	"vde_switch, 1 frame/datagram", "plain relay, 64 frames/write", "plain relay, 1 frame/write",
};
static const char *const topo_names[] = {"a-b", "all-to-all"};
static const char *const scen_names[] = {"solo", "stuck64", "macflood"};
static const char *const scen_suffix[] = {"", "+stuck64", "+macflood"};

#define STUCK_PEERS 64
#define STUCK_FILL 6000      /* frames the hostile peer sends each stuck peer before the run */
#define FLOOD_FRAMES 1000000 /* random source MACs during the run */

static bool single_mode(enum mode m)
{
	return m == MODE_SINGLE || m == MODE_RELAY_SINGLE;
}

static bool relay_mode(enum mode m)
{
	return m == MODE_RELAY_BATCH || m == MODE_RELAY_SINGLE;
}

struct opts {
	const char *squibnet;
	double seconds;
	unsigned window;
	bool json, quick, pin, vde, relay, heap, verbose;
	unsigned modes;   /* bit per enum mode */
	unsigned topos;   /* bit per enum topo */
	unsigned scens;   /* bit per enum scen */
	unsigned sizes[8];
	unsigned nsizes;
	const char *daemon_args[8]; /* passed to the daemon as they are (--daemon-arg) */
	unsigned ndaemon_args;
};

/* One endpoint attached to the switch. */
struct client {
	int fd;
	int ctl;                  /* vde: the control connection that keeps the port alive */
	char path[108];           /* our bound datagram socket, unlinked at the end */
	uint8_t mac[6];
	bool stream;
	struct sn_streambuf rx;
	/* what the sender writes: BATCH records, with length prefixes for streams */
	uint8_t *tx;
	size_t rec_len;           /* bytes of one record (prefix + frame) */
	size_t hl;                /* bytes of length prefix */
	unsigned next;            /* single mode: the next record to write */
	uint8_t dst_idx[BATCH];   /* which client each record goes to */
	uint32_t tx_seq[MAX_CLIENTS]; /* next sequence number towards each client */
	/* receiver's counts; sequence gaps reveal losses early, so the window need not wait them out */
	uint32_t rx_expect[MAX_CLIENTS];
	uint64_t rx_frames, rx_bytes, stray, gaps;
};

struct child {
	pid_t pid;
	int stdin_fd;             /* vde_switch's console input, held open so it never sees EOF */
	char log[PATH_MAX];
};

struct run {
	enum mode mode;
	enum topo topo;
	enum scen scen;
	unsigned size;
	struct client cl[MAX_CLIENTS];
	unsigned ncl;
	unsigned window;
	uint64_t max_frames;      /* 0: run for the duration */
	double seconds;
	_Atomic uint64_t received;
	_Atomic uint64_t gaps;    /* frames known lost from sequence gaps */
	_Atomic uint64_t last_rx_ns;
	_Atomic bool stop;
	bool counting;            /* receiver: count for the run, or just drain */
	int epfd;
	/* the scenario's own connections: stuck peers, the peer that fills them, the MAC flooder */
	int extra[STUCK_PEERS + 1];
	unsigned nextra;
	pthread_t flood_th;
	bool flooding;
};

struct result {
	enum mode mode;
	enum topo topo;
	enum scen scen;
	unsigned size;
	bool ok;
	char why[160];
	uint64_t sent, received, stray;
	double secs, cpu_ns;
	uint64_t rx_bytes;
};

static char tmpdir[64];
static long clk_tck;

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "squibnet-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* CPU time the process has used, in ns: schedstat is exact, /proc/PID/stat counts ticks. The
 * switch daemons measured here are single-threaded, so the leader's numbers are the process's. */
static double proc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long run = 0, ut = 0, st = 0;
	FILE *f;
	char *p;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "r");
	if (f) {
		int ok = fscanf(f, "%llu", &run) == 1;

		fclose(f);
		if (ok && run > 0)
			return (double)run;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold blanks and parentheses: fields count from the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) * 1e9 / (double)clk_tck;
}

struct memstat {
	long rss_kb, data_kb, hwm_kb;
};

static void proc_mem(pid_t pid, struct memstat *m)
{
	char path[64], line[256];
	FILE *f;

	*m = (struct memstat){-1, -1, -1};
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %ld", &m->rss_kb);
		sscanf(line, "VmData: %ld", &m->data_kb);
		sscanf(line, "VmHWM: %ld", &m->hwm_kb);
	}
	fclose(f);
}

static void pin_to(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(pid, sizeof(set), &set);
}

static void raise_bufs(int fd)
{
	int sz = SOCKBUF;

	/* root may go past the sysctl caps; others get what the caps allow */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

/* ---- switch processes ---- */

static bool is_socket(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void print_log_tail(const char *log)
{
	char buf[2048];
	FILE *f = fopen(log, "r");
	size_t n;

	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	fprintf(stderr, "%s", buf);
}

/* Starts @argv with stdout and stderr in @c->log, pinned to @cpu (-1: anywhere). */
static int spawn(struct child *c, char *const argv[], int cpu, bool stdin_pipe)
{
	int pfd[2] = {-1, -1};

	if (stdin_pipe && pipe(pfd) < 0)
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		int out = open(c->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int in = stdin_pipe ? pfd[0] : open("/dev/null", O_RDONLY);

		if (out < 0 || in < 0)
			_exit(127);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		if (cpu >= 0)
			pin_to(0, cpu);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	c->stdin_fd = -1;
	if (stdin_pipe) {
		close(pfd[0]);
		c->stdin_fd = pfd[1];
	}
	return 0;
}

/* Waits until @sock is a socket file: the process has set itself up. */
static int wait_ready(struct child *c, const char *sock)
{
	uint64_t end = now_ns() + 5000000000ull;
	int status;

	while (now_ns() < end) {
		if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
			c->pid = 0;
			return -ECHILD;
		}
		if (is_socket(sock))
			return 0;
		sleep_ns(2000000);
	}
	return -ETIMEDOUT;
}

static void stop_child(struct child *c)
{
	int status;
	uint64_t end = now_ns() + 2000000000ull;

	if (c->pid <= 0)
		return;
	kill(c->pid, SIGTERM);
	while (waitpid(c->pid, &status, WNOHANG) == 0) {
		if (now_ns() > end) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &status, 0);
			break;
		}
		sleep_ns(1000000);
	}
	if (c->stdin_fd >= 0)
		close(c->stdin_fd);
	c->pid = 0;
}

/* The daemon with a stream listener, a dgram listener when it has them, and a control socket. */
static int start_squibnet(const struct opts *o, struct child *c, bool with_dgram, int cpu)
{
	char sarg[PATH_MAX + 64], darg[PATH_MAX + 64], carg[PATH_MAX], csock[PATH_MAX];
	char *argv[12 + 8];
	int n = 0, r;

	snprintf(sarg, sizeof(sarg), "stream,listen=unix:%s/s.sock", tmpdir);
	snprintf(darg, sizeof(darg), "dgram,listen=%s/d.sock", tmpdir);
	snprintf(carg, sizeof(carg), "%s/c.sock", tmpdir);
	snprintf(csock, sizeof(csock), "%s", carg);
	snprintf(c->log, sizeof(c->log), "%s/squibnet.log", tmpdir);
	unlink(csock);
	argv[n++] = (char *)o->squibnet;
	argv[n++] = "--port";
	argv[n++] = sarg;
	if (with_dgram) {
		argv[n++] = "--port";
		argv[n++] = darg;
	}
	argv[n++] = "--control";
	argv[n++] = carg;
	argv[n++] = "-q";
	for (unsigned i = 0; i < o->ndaemon_args; i++)
		argv[n++] = (char *)o->daemon_args[i];
	argv[n] = NULL;
	r = spawn(c, argv, cpu, false);
	if (r < 0)
		return r;
	/* the daemon makes the control socket after every port: its presence means ready */
	r = wait_ready(c, csock);
	if (r < 0)
		stop_child(c);
	return r;
}

static int start_vde(struct child *c, int cpu)
{
	char dir[PATH_MAX], ctl[PATH_MAX + 8];
	char *argv[] = {"vde_switch", "-s", dir, NULL};
	int r;

	snprintf(dir, sizeof(dir), "%s/vde", tmpdir);
	snprintf(ctl, sizeof(ctl), "%s/ctl", dir);
	snprintf(c->log, sizeof(c->log), "%s/vde_switch.log", tmpdir);
	/* no -d: it stays our child, so we can read its /proc files and stop it; its console
	 * reads standard input, which we keep open */
	r = spawn(c, argv, cpu, true);
	if (r < 0)
		return r;
	r = wait_ready(c, ctl);
	if (r < 0)
		stop_child(c);
	return r;
}

/*
 * The anchor: a plain relay between the first two stream clients that connect to @path, in
 * one thread, moving bytes from each to the other as they come (read 256 KiB, write it out,
 * read again only once it is all written). No framing, no learning, no copies but the kernel's:
 * what a stream switch would deliver if switching cost nothing. Runs in a child process.
 */
static void relay_main(const char *path)
{
	enum { BUF = 256 * 1024 };
	static uint8_t buf[2][BUF];
	size_t len[2] = {0, 0}, off[2] = {0, 0};
	struct sn_sockaddr a;
	int lfd, fd[2];

	if (sn_sockaddr_unix(path, &a) < 0 || (lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		_exit(1);
	if (bind(lfd, &a.u.sa, a.len) < 0 || listen(lfd, 4) < 0)
		_exit(1);
	for (int i = 0; i < 2; i++) {
		if ((fd[i] = accept(lfd, NULL, NULL)) < 0)
			_exit(1);
		raise_bufs(fd[i]);
		fcntl(fd[i], F_SETFL, O_NONBLOCK);
	}
	for (;;) {
		struct pollfd p[2] = {{fd[0], 0, 0}, {fd[1], 0, 0}};

		/* direction d moves bytes from fd[d] to fd[!d] */
		for (int d = 0; d < 2; d++) {
			if (len[d] == 0)
				p[d].events |= POLLIN;
			else
				p[!d].events |= POLLOUT;
		}
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			_exit(1);
		for (int d = 0; d < 2; d++) {
			if (len[d] == 0) {
				ssize_t n = read(fd[d], buf[d], BUF);

				if (n == 0)
					_exit(0);
				if (n > 0) {
					len[d] = (size_t)n;
					off[d] = 0;
				}
			}
			while (len[d] > 0) {
				ssize_t w = write(fd[!d], buf[d] + off[d], len[d]);

				if (w <= 0)
					break;
				off[d] += (size_t)w;
				len[d] -= (size_t)w;
			}
		}
	}
}

static int start_relay(struct child *c, int cpu)
{
	char sock[PATH_MAX];
	int r;

	snprintf(sock, sizeof(sock), "%s/s.sock", tmpdir);
	unlink(sock);
	c->stdin_fd = -1;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		if (cpu >= 0)
			pin_to(0, cpu);
		relay_main(sock);
		_exit(0);
	}
	r = wait_ready(c, sock);
	if (r < 0)
		stop_child(c);
	return r;
}

static bool in_path(const char *prog)
{
	const char *p = getenv("PATH");
	char buf[PATH_MAX];

	if (!p)
		p = "/usr/bin:/bin";
	while (*p) {
		size_t n = strcspn(p, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
		if (access(buf, X_OK) == 0)
			return true;
		p += n;
		if (*p == ':')
			p++;
	}
	return false;
}

/* ---- clients ---- */

static int connect_stream(struct client *cl)
{
	struct sn_sockaddr a;
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/s.sock", tmpdir);
	if (sn_sockaddr_unix(path, &a) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	raise_bufs(fd);
	if (connect(fd, &a.u.sa, a.len) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	cl->fd = fd;
	cl->stream = true;
	return sn_streambuf_init(&cl->rx, RX_BUF);
}

static int bind_dgram(struct client *cl, unsigned idx)
{
	struct sn_sockaddr a;
	int fd;

	snprintf(cl->path, sizeof(cl->path), "%s/c%u.sock", tmpdir, idx);
	unlink(cl->path);
	if (sn_sockaddr_unix(cl->path, &a) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	raise_bufs(fd);
	if (bind(fd, &a.u.sa, a.len) < 0) {
		int r = -errno;

		close(fd);
		cl->path[0] = '\0';
		return r;
	}
	cl->fd = fd;
	return 0;
}

static int connect_dgram(struct client *cl, unsigned idx)
{
	struct sn_sockaddr a;
	char path[PATH_MAX];
	int r = bind_dgram(cl, idx);

	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/d.sock", tmpdir);
	if (sn_sockaddr_unix(path, &a) < 0)
		return -ENAMETOOLONG;
	return connect(cl->fd, &a.u.sa, a.len) < 0 ? -errno : 0;
}

/*
 * vde_switch's attach protocol (libvdeplug, version 3): connect a stream socket to DIR/ctl and
 * send one packed request: u32 magic 0xfeedface, u32 version 3, u32 type (0 = any port), the
 * sockaddr_un our datagram socket is bound to, then a free-text description. The switch answers
 * with the sockaddr_un of the data socket it made for the new port; frames are then plain
 * datagrams between the two. The port lives as long as the control connection.
 */
static int connect_vde(struct client *cl, unsigned idx)
{
	static const char descr[] = "squibnet-bench";
	uint8_t req[12 + sizeof(struct sockaddr_un) + sizeof(descr)];
	uint32_t magic = 0xfeedface, version = 3, type = 0;
	struct sockaddr_un me = {.sun_family = AF_UNIX}, data;
	struct sn_sockaddr a;
	char ctl[PATH_MAX];
	struct pollfd pfd;
	ssize_t n;
	int r = bind_dgram(cl, idx);

	if (r < 0)
		return r;
	snprintf(ctl, sizeof(ctl), "%s/vde/ctl", tmpdir);
	if (sn_sockaddr_unix(ctl, &a) < 0)
		return -ENAMETOOLONG;
	cl->ctl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cl->ctl < 0)
		return -errno;
	if (connect(cl->ctl, &a.u.sa, a.len) < 0)
		return -errno;
	snprintf(me.sun_path, sizeof(me.sun_path), "%s", cl->path);
	memcpy(req, &magic, 4);
	memcpy(req + 4, &version, 4);
	memcpy(req + 8, &type, 4);
	memcpy(req + 12, &me, sizeof(me));
	memcpy(req + 12 + sizeof(me), descr, sizeof(descr) - 1);
	if (send(cl->ctl, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
		return -EIO;
	pfd = (struct pollfd){cl->ctl, POLLIN, 0};
	if (poll(&pfd, 1, 2000) != 1)
		return -ETIMEDOUT;
	memset(&data, 0, sizeof(data));
	n = recv(cl->ctl, &data, sizeof(data), 0);
	if (n < (ssize_t)offsetof(struct sockaddr_un, sun_path) + 2 || data.sun_family != AF_UNIX)
		return -EPROTO;
	return connect(cl->fd, (struct sockaddr *)&data, sizeof(data)) < 0 ? -errno : 0;
}

static void client_close(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	if (cl->ctl >= 0)
		close(cl->ctl);
	if (cl->path[0])
		unlink(cl->path);
	sn_streambuf_finish(&cl->rx);
	free(cl->tx);
	*cl = (struct client){.fd = -1, .ctl = -1};
}

/* Writes one Ethernet frame of @size bytes from @src to @dst at @p. */
static void put_frame(uint8_t *p, const uint8_t dst[6], const uint8_t src[6], unsigned size, unsigned seq)
{
	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	p[12] = ETHERTYPE >> 8;
	p[13] = ETHERTYPE & 0xff;
	memset(p + 14, 0, size - 14);
	memcpy(p + 14, &seq, sizeof(seq));
}

/* Fills @cl->tx with BATCH records whose destinations cycle over @dsts. */
static int build_tx(struct client *cl, const struct client *dsts[], unsigned ndst, unsigned size)
{
	size_t hl = cl->stream ? sn_framing_hdr_len(SN_FRAMING_QEMU) : 0;

	cl->hl = hl;
	cl->rec_len = hl + size;
	cl->tx = malloc(cl->rec_len * BATCH);
	if (!cl->tx)
		return -ENOMEM;
	for (unsigned k = 0; k < BATCH; k++) {
		uint8_t *rec = cl->tx + k * cl->rec_len;

		if (hl)
			sn_framing_put(SN_FRAMING_QEMU, rec, size);
		put_frame(rec + hl, dsts[k % ndst]->mac, cl->mac, size, k);
		cl->dst_idx[k] = (uint8_t)(dsts[k % ndst]->mac[5] - 1);
	}
	return 0;
}

/* Numbers @n records from @first on, per destination, so receivers can see gaps. */
static void stamp(struct client *cl, unsigned first, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned k = (first + i) % BATCH;
		uint32_t seq = cl->tx_seq[cl->dst_idx[k]]++;

		memcpy(cl->tx + k * cl->rec_len + cl->hl + 14, &seq, sizeof(seq));
	}
}

/* Writes all of @buf, waiting for room; false when @deadline passed first or the peer failed. */
static bool send_all(int fd, const uint8_t *buf, size_t len, uint64_t deadline)
{
	while (len > 0) {
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);

		if (w > 0) {
			buf += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return false;
		if (now_ns() > deadline)
			return false;
		poll(&(struct pollfd){fd, POLLOUT, 0}, 1, 10);
	}
	return true;
}

/* Sends @n datagrams of @cl's batch starting at record @first; returns how many went. */
static unsigned send_dgrams(struct client *cl, unsigned first, unsigned n, uint64_t deadline)
{
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	unsigned done = 0;

	for (unsigned i = 0; i < n; i++) {
		iov[i] = (struct iovec){cl->tx + ((first + i) % BATCH) * cl->rec_len, cl->rec_len};
		msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
	}
	while (done < n) {
		int r = sendmmsg(cl->fd, msgs + done, n - done, MSG_NOSIGNAL);

		if (r > 0) {
			done += (unsigned)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if ((r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) || now_ns() > deadline)
			break;
		poll(&(struct pollfd){cl->fd, POLLOUT, 0}, 1, 10);
	}
	return done;
}

/* ---- receiver ---- */

static int count_frame(void *ctx, const uint8_t *data, uint32_t len)
{
	struct client *cl = ctx;

	if (len >= 18 && !memcmp(data, cl->mac, 6) && data[12] == (ETHERTYPE >> 8) &&
	    data[13] == (ETHERTYPE & 0xff)) {
		unsigned src = data[11] - 1u;

		cl->rx_frames++;
		cl->rx_bytes += len;
		if (src < MAX_CLIENTS) {
			uint32_t seq;
			int32_t d;

			memcpy(&seq, data + 14, sizeof(seq));
			d = (int32_t)(seq - cl->rx_expect[src]);
			if (d >= 0) {
				cl->gaps += (uint32_t)d;
				cl->rx_expect[src] = seq + 1;
			}
		}
	} else {
		cl->stray++;
	}
	return 0;
}

/* Reads everything @cl has now. Returns the frames it counted. */
static uint64_t drain_client(struct client *cl)
{
	uint64_t before = cl->rx_frames;

	if (cl->stream) {
		for (;;) {
			ssize_t n = sn_streambuf_fill(&cl->rx, cl->fd);

			if (n <= 0)
				break;
			if (sn_streambuf_drain(&cl->rx, SN_FRAMING_QEMU, count_frame, cl) < 0)
				break;
		}
	} else {
		static _Thread_local uint8_t bufs[BATCH][DGRAM_CAP];
		struct mmsghdr msgs[BATCH];
		struct iovec iov[BATCH];

		for (;;) {
			int r;

			for (unsigned i = 0; i < BATCH; i++) {
				iov[i] = (struct iovec){bufs[i], DGRAM_CAP};
				msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
			}
			r = recvmmsg(cl->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
			if (r <= 0)
				break;
			for (int i = 0; i < r; i++)
				count_frame(cl, bufs[i], msgs[i].msg_len);
		}
	}
	return cl->rx_frames - before;
}

static void *receiver(void *arg)
{
	struct run *r = arg;
	struct epoll_event ev[MAX_CLIENTS];

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		int n = epoll_wait(r->epfd, ev, MAX_CLIENTS, 5);

		for (int i = 0; i < n; i++) {
			struct client *cl = &r->cl[ev[i].data.u32];
			uint64_t gaps = cl->gaps, got = drain_client(cl);

			if (cl->gaps != gaps)
				atomic_fetch_add_explicit(&r->gaps, cl->gaps - gaps, memory_order_relaxed);
			if (got) {
				atomic_fetch_add_explicit(&r->received, got, memory_order_release);
				atomic_store_explicit(&r->last_rx_ns, now_ns(), memory_order_relaxed);
			}
		}
	}
	return NULL;
}

/* ---- one measured case ---- */

/* Waits until fewer than @window - @need frames are in flight. A window that stops moving for
 * STALL_NS means frames were lost: they are written off so the run goes on. Window 0: no wait,
 * the socket alone holds the sender back. */
static bool wait_window(struct run *r, uint64_t sent, int64_t *written_off, unsigned need, uint64_t deadline)
{
	uint64_t last = atomic_load_explicit(&r->received, memory_order_acquire), since = 0;
	unsigned spins = 0;

	if (r->window == 0)
		return true;
	for (;;) {
		uint64_t rcv = atomic_load_explicit(&r->received, memory_order_acquire);
		int64_t lost = (int64_t)atomic_load_explicit(&r->gaps, memory_order_relaxed);
		int64_t inflight = (int64_t)sent - (int64_t)rcv - lost - *written_off;
		uint64_t t;

		if (inflight + (int64_t)need <= (int64_t)r->window)
			return true;
		t = now_ns();
		if (rcv != last || since == 0) {
			last = rcv;
			since = t;
		} else if (t - since > STALL_NS) {
			*written_off = (int64_t)sent - (int64_t)rcv - lost;
			return true;
		}
		if (t > deadline)
			return false;
		/* the receiver shares this CPU: let it run */
		if (++spins < 32)
			sched_yield();
		else
			sleep_ns(20000);
	}
}

/* Sends until the duration or frame budget is used; returns the frames sent. */
static uint64_t send_loop(struct run *r, uint64_t t0)
{
	uint64_t deadline = t0 + (uint64_t)(r->seconds * 1e9), hard = deadline + 2000000000ull;
	unsigned nsend = r->topo == TOPO_AB ? 1 : r->ncl;
	unsigned unit = single_mode(r->mode) ? 1 : BATCH;
	uint64_t sent = 0;
	int64_t off = 0;

	for (;;) {
		for (unsigned s = 0; s < nsend; s++) {
			struct client *cl = &r->cl[s];

			if (r->max_frames ? sent >= r->max_frames : now_ns() >= deadline)
				return sent;
			if (!wait_window(r, sent, &off, unit, hard))
				return sent;
			switch (r->mode) {
			case MODE_BATCH:
			case MODE_RELAY_BATCH:
				stamp(cl, 0, BATCH);
				if (!send_all(cl->fd, cl->tx, cl->rec_len * BATCH, hard))
					return sent;
				sent += BATCH;
				break;
			case MODE_SINGLE:
			case MODE_RELAY_SINGLE:
				stamp(cl, cl->next, 1);
				if (!send_all(cl->fd, cl->tx + cl->next * cl->rec_len, cl->rec_len, hard))
					return sent;
				cl->next = (cl->next + 1) % BATCH;
				sent++;
				break;
			default: {
				unsigned done;

				stamp(cl, 0, BATCH);
				done = send_dgrams(cl, 0, BATCH, hard);

				sent += done;
				if (done < BATCH)
					return sent;
				break;
			}
			}
		}
	}
}

static int attach(struct run *r)
{
	const struct client *dsts[MAX_CLIENTS];
	uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	for (unsigned i = 0; i < r->ncl; i++)
		r->cl[i] = (struct client){.fd = -1, .ctl = -1, .mac = {0x02, 0x5b, 0x00, 0x00, 0x00, (uint8_t)(i + 1)}};
	for (unsigned i = 0; i < r->ncl; i++) {
		struct client *cl = &r->cl[i];
		int e;

		if (r->mode == MODE_DGRAM)
			e = connect_dgram(cl, i);
		else if (r->mode == MODE_VDE)
			e = connect_vde(cl, i);
		else
			e = connect_stream(cl);
		if (e < 0)
			return e;
	}
	for (unsigned i = 0; i < r->ncl; i++) {
		unsigned nd = 0;

		if (r->topo == TOPO_AB) {
			dsts[nd++] = &r->cl[1];
		} else {
			for (unsigned j = 0; j < r->ncl; j++)
				if (j != i)
					dsts[nd++] = &r->cl[j];
		}
		if (build_tx(&r->cl[i], dsts, nd, r->size) < 0)
			return -ENOMEM;
	}
	/* each client announces its MAC once so the switch knows where it is */
	for (unsigned i = 0; i < r->ncl; i++) {
		struct client *cl = &r->cl[i];
		uint8_t rec[4 + 60];
		size_t hl = cl->stream ? 4 : 0;

		if (hl)
			sn_framing_put(SN_FRAMING_QEMU, rec, 60);
		put_frame(rec + hl, bcast, cl->mac, 60, 0);
		if (!send_all(cl->fd, rec, hl + 60, now_ns() + 1000000000ull))
			return -EIO;
		sleep_ns(2000000);
	}
	sleep_ns(50000000);
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0)
		return -errno;
	for (unsigned i = 0; i < r->ncl; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};

		drain_client(&r->cl[i]);
		if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->cl[i].fd, &ev) < 0)
			return -errno;
	}
	return 0;
}

/* ---- scenarios: what else is attached while the pair is measured ---- */

/* A stream client of the switch that announces @mac and then only sends, if anything. */
static int connect_announced(const uint8_t mac[6])
{
	struct client c = {.fd = -1, .ctl = -1};
	uint8_t rec[4 + 60], bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	int fd;

	if (connect_stream(&c) < 0)
		return -1;
	fd = c.fd;
	sn_streambuf_finish(&c.rx);
	sn_framing_put(SN_FRAMING_QEMU, rec, 60);
	put_frame(rec + 4, bcast, mac, 60, 0);
	if (!send_all(fd, rec, sizeof(rec), now_ns() + 1000000000ull)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* stuck64: STUCK_PEERS peers that never read, and one more that fills the switch's queues for
 * each of them with frames of its own until they stall (a few frames each after that).
 * macflood: one peer that will send FLOOD_FRAMES random source MACs during the run. */
static int scenario_setup(struct run *r)
{
	uint8_t m[6] = {0x02, 0x5c, 0x00, 0x00, 0x00, 0x00};

	if (r->scen == SCEN_SOLO)
		return 0;
	if (r->scen == SCEN_MACFLOOD) {
		m[1] = 0x5d;
		if ((r->extra[0] = connect_announced(m)) < 0)
			return -EIO;
		r->nextra = 1;
	} else {
		uint8_t *blk;
		int fill;

		for (unsigned i = 0; i < STUCK_PEERS; i++) {
			m[5] = (uint8_t)i;
			if ((r->extra[r->nextra] = connect_announced(m)) < 0)
				return -EIO;
			r->nextra++;
		}
		m[4] = 1;
		m[5] = 0;
		if ((fill = connect_announced(m)) < 0)
			return -EIO;
		r->extra[r->nextra++] = fill;
		blk = malloc(500 * 64);
		if (!blk)
			return -ENOMEM;
		for (unsigned round = 0; round < STUCK_FILL / 500; round++) {
			for (unsigned i = 0; i < STUCK_PEERS; i++) {
				uint8_t dst[6] = {0x02, 0x5c, 0x00, 0x00, 0x00, (uint8_t)i};

				for (unsigned k = 0; k < 500; k++) {
					sn_framing_put(SN_FRAMING_QEMU, blk + k * 64, 60);
					put_frame(blk + k * 64 + 4, dst, m, 60, k);
				}
				/* the switch holds this sender back until each stuck queue is seen stalled */
				if (!send_all(fill, blk, 500 * 64, now_ns() + 30000000000ull)) {
					free(blk);
					return -ETIMEDOUT;
				}
			}
		}
		free(blk);
		sleep_ns(700000000); /* past the default stall timeout: every stuck queue is cut */
	}
	for (unsigned i = 0; i < r->ncl; i++)
		drain_client(&r->cl[i]);
	return 0;
}

/* The MAC flood: FLOOD_FRAMES frames from random locally administered source addresses, paced
 * over the run, each to the flooder's own announced address, so the switch learns or refuses
 * every source and forwards none of them. */
static void *flood_thread(void *arg)
{
	enum { CHUNK = 1024 };
	struct run *r = arg;
	uint8_t *buf = malloc(CHUNK * 64), self[6] = {0x02, 0x5d, 0x00, 0x00, 0x00, 0x00};
	uint64_t x = 0x9e3779b97f4a7c15ull ^ now_ns(), t0 = now_ns(), dur = (uint64_t)(r->seconds * 1e9);

	if (!buf)
		return NULL;
	for (unsigned k = 0; k < CHUNK; k++) {
		sn_framing_put(SN_FRAMING_QEMU, buf + k * 64, 60);
		put_frame(buf + k * 64 + 4, self, self, 60, k);
	}
	for (uint64_t sent = 0; sent < FLOOD_FRAMES && !atomic_load_explicit(&r->stop, memory_order_relaxed);
	     sent += CHUNK) {
		uint64_t due;

		for (unsigned k = 0; k < CHUNK; k++) {
			uint8_t *src = buf + k * 64 + 4 + 6;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			src[0] = 0x02;
			memcpy(src + 1, &x, 5);
		}
		if (!send_all(r->extra[0], buf, CHUNK * 64, now_ns() + 2000000000ull))
			break;
		due = t0 + dur * (sent + CHUNK) / FLOOD_FRAMES;
		if (now_ns() < due)
			sleep_ns(due - now_ns());
	}
	free(buf);
	return NULL;
}

/* One timed run over attached clients against the switch process @sw. */
static void timed_run(struct run *r, pid_t sw, struct result *res)
{
	pthread_t th;
	uint64_t t0, sent, last = 0, since;
	double cpu0, cpu1;

	for (unsigned i = 0; i < r->ncl; i++)
		r->cl[i].rx_frames = r->cl[i].rx_bytes = r->cl[i].stray = 0;
	atomic_store(&r->received, 0);
	atomic_store(&r->gaps, 0);
	atomic_store(&r->stop, false);
	cpu0 = proc_cpu_ns(sw);
	t0 = now_ns();
	atomic_store(&r->last_rx_ns, t0);
	pthread_create(&th, NULL, receiver, r);
	if (r->scen == SCEN_MACFLOOD)
		r->flooding = pthread_create(&r->flood_th, NULL, flood_thread, r) == 0;
	sent = send_loop(r, t0);
	/* let what is in flight arrive, as long as it keeps arriving */
	since = now_ns();
	for (;;) {
		uint64_t rcv = atomic_load(&r->received), t = now_ns();

		if (rcv >= sent)
			break;
		if (rcv != last) {
			last = rcv;
			since = t;
		} else if (t - since > 200000000ull) {
			break;
		}
		sleep_ns(1000000);
	}
	atomic_store(&r->stop, true);
	pthread_join(th, NULL);
	if (r->flooding)
		pthread_join(r->flood_th, NULL);
	r->flooding = false;
	cpu1 = proc_cpu_ns(sw);

	res->ok = true;
	res->sent = sent;
	res->received = atomic_load(&r->received);
	res->secs = (double)(atomic_load(&r->last_rx_ns) - t0) / 1e9;
	res->cpu_ns = cpu1 - cpu0;
	res->rx_bytes = res->stray = 0;
	for (unsigned i = 0; i < r->ncl; i++) {
		res->rx_bytes += r->cl[i].rx_bytes;
		res->stray += r->cl[i].stray;
	}
}

/* Attaches @r's clients to the switch process @sw and measures one case. */
static void measure(struct run *r, pid_t sw, struct result *res)
{
	int e;

	res->mode = r->mode;
	res->topo = r->topo;
	res->scen = r->scen;
	res->size = r->size;
	e = attach(r);
	if (e < 0) {
		snprintf(res->why, sizeof(res->why), "attaching clients: %s", strerror(-e));
		return;
	}
	e = scenario_setup(r);
	if (e < 0) {
		snprintf(res->why, sizeof(res->why), "setting up %s: %s", scen_names[r->scen], strerror(-e));
		return;
	}
	timed_run(r, sw, res);
}

static void detach(struct run *r)
{
	if (r->epfd > 0)
		close(r->epfd);
	r->epfd = -1;
	for (unsigned i = 0; i < r->ncl; i++)
		client_close(&r->cl[i]);
	for (unsigned i = 0; i < r->nextra; i++)
		close(r->extra[i]);
	r->nextra = 0;
}

/* ---- output ---- */

static double mpps(const struct result *x)
{
	return x->secs > 0 ? (double)x->received / x->secs / 1e6 : 0;
}

static double gbps(const struct result *x)
{
	return x->secs > 0 ? (double)x->rx_bytes * 8 / x->secs / 1e9 : 0;
}

static double us_per_frame(const struct result *x)
{
	return x->received ? x->cpu_ns / 1e3 / (double)x->received : 0;
}

/* Share of one CPU the switch used: near 100% means the switch, not the bench, set the pace. */
static double load_pct(const struct result *x)
{
	return x->secs > 0 ? x->cpu_ns / x->secs / 1e7 : 0;
}

static double loss_pct(const struct result *x)
{
	return x->sent ? 100.0 * (double)(x->sent > x->received ? x->sent - x->received : 0) / (double)x->sent : 0;
}

/* The team's targets on a 2-core machine; NULL when none applies. */
static const char *target(const struct result *x, char *buf, size_t len)
{
	double us = us_per_frame(x), rate = mpps(x), want_us, want_mpps = 0;

	if (x->scen != SCEN_SOLO)
		return NULL; /* judged against the solo run: see the isolation table */
	switch (x->mode) {
	case MODE_BATCH:
		want_us = 0.25;
		if (x->topo == TOPO_AB && x->size == 60)
			want_mpps = 4;
		else if (x->topo == TOPO_AB && x->size == 1514)
			want_mpps = 1.5;
		break;
	case MODE_SINGLE:
		want_us = 1.5;
		break;
	case MODE_DGRAM:
		want_us = 2;
		break;
	default:
		return NULL;
	}
	if (want_mpps > 0)
		snprintf(buf, len, "%s (>=%.1f Mpps, <=%.2f us)", rate >= want_mpps && us <= want_us ? "met" : "MISSED",
			 want_mpps, want_us);
	else
		snprintf(buf, len, "%s (<=%.2f us)", us <= want_us ? "met" : "MISSED", want_us);
	return buf;
}

static const char *case_name(const struct result *x, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", mode_names[x->mode], scen_suffix[x->scen]);
	return buf;
}

static void print_table(const struct result *res, unsigned n)
{
	char t[64], nm[32];

	printf("%-15s %-10s %5s %11s %11s %7s %7s %7s %9s %5s  %s\n", "mode", "topology", "bytes", "sent",
	       "received", "loss%", "Mpps", "Gbit/s", "us/frame", "load", "target");
	for (unsigned i = 0; i < n; i++) {
		const struct result *x = &res[i];

		if (!x->ok) {
			printf("%-15s %-10s %5u  skipped: %s\n", case_name(x, nm, sizeof(nm)), topo_names[x->topo],
			       x->size, x->why);
			continue;
		}
		printf("%-15s %-10s %5u %11llu %11llu %7.3f %7.3f %7.2f %9.3f %4.0f%%  %s\n",
		       case_name(x, nm, sizeof(nm)), topo_names[x->topo], x->size, (unsigned long long)x->sent,
		       (unsigned long long)x->received, loss_pct(x), mpps(x), gbps(x), us_per_frame(x), load_pct(x),
		       target(x, t, sizeof(t)) ? t : "-");
	}
}

static void json_result(const struct result *x, bool comma)
{
	char t[64];
	const char *tg;

	if (!x->ok) {
		printf("    {\"mode\": \"%s\", \"scenario\": \"%s\", \"topology\": \"%s\", \"size\": %u, "
		       "\"skipped\": \"%s\"}%s\n",
		       mode_names[x->mode], scen_names[x->scen], topo_names[x->topo], x->size, x->why, comma ? "," : "");
		return;
	}
	tg = target(x, t, sizeof(t));
	printf("    {\"mode\": \"%s\", \"scenario\": \"%s\", \"topology\": \"%s\", \"size\": %u, \"sent\": %llu, \"received\": %llu, "
	       "\"stray\": %llu, \"loss_pct\": %.4f, \"seconds\": %.4f, \"mpps\": %.4f, \"gbps\": %.4f, "
	       "\"switch_cpu_us_per_frame\": %.4f, \"switch_cpu_load_pct\": %.1f, \"target_met\": %s}%s\n",
	       mode_names[x->mode], scen_names[x->scen], topo_names[x->topo], x->size, (unsigned long long)x->sent,
	       (unsigned long long)x->received, (unsigned long long)x->stray, loss_pct(x), x->secs, mpps(x), gbps(x),
	       us_per_frame(x), load_pct(x), tg ? (strncmp(tg, "met", 3) ? "false" : "true") : "null",
	       comma ? "," : "");
}

/* Starts the switch for one case, measures it, stops the switch. */
static void run_case(const struct opts *o, enum mode m, enum topo t, enum scen sc, unsigned size,
		     bool have_dgram, int sw_cpu, struct result *x)
{
	struct run *r = calloc(1, sizeof(*r));
	struct child ch = {0};
	int e;

	*x = (struct result){.mode = m, .topo = t, .scen = sc, .size = size};
	if (!r) {
		snprintf(x->why, sizeof(x->why), "out of memory");
		return;
	}
	if (m == MODE_DGRAM && !have_dgram) {
		snprintf(x->why, sizeof(x->why), "the daemon refuses dgram listeners");
		free(r);
		return;
	}
	e = m == MODE_VDE ? start_vde(&ch, sw_cpu)
	    : relay_mode(m) ? start_relay(&ch, sw_cpu)
			    : start_squibnet(o, &ch, have_dgram, sw_cpu);
	if (e < 0) {
		snprintf(x->why, sizeof(x->why), "switch did not start: %s", e == -ECHILD ? "it exited" : strerror(-e));
		free(r);
		return;
	}
	r->mode = m;
	r->topo = t;
	r->scen = sc;
	r->size = size;
	r->ncl = t == TOPO_AB ? 2 : 4;
	r->window = o->window;
	r->seconds = o->seconds;
	if (o->verbose)
		fprintf(stderr, "squibnet-bench: %s%s %s %u B (switch pid %d)\n", mode_names[m], scen_suffix[sc],
			topo_names[t], size, (int)ch.pid);
	measure(r, ch.pid, x);
	detach(r);
	stop_child(&ch);
	free(r);
}

/* Whether the daemon's memory follows the traffic: N frames, then 10N more, over the same ports. */
struct heap {
	bool ok;
	char why[160];
	uint64_t n;
	struct memstat before, after_n, after_10n;
	struct result run_n, run_10n;
};

static void heap_check(const struct opts *o, int sw_cpu, struct heap *h)
{
	struct run *r = calloc(1, sizeof(*r));
	struct child ch = {0};
	int e;

	h->n = o->quick ? 50000 : 500000;
	if (!r) {
		snprintf(h->why, sizeof(h->why), "out of memory");
		return;
	}
	e = start_squibnet(o, &ch, false, sw_cpu);
	if (e < 0) {
		snprintf(h->why, sizeof(h->why), "daemon did not start: %s", strerror(-e));
		free(r);
		return;
	}
	r->mode = MODE_BATCH;
	r->topo = TOPO_AB;
	r->size = 60;
	r->ncl = 2;
	r->window = o->window;
	r->seconds = 60;
	e = attach(r);
	if (e < 0) {
		snprintf(h->why, sizeof(h->why), "attaching clients: %s", strerror(-e));
	} else {
		proc_mem(ch.pid, &h->before);
		r->max_frames = h->n;
		timed_run(r, ch.pid, &h->run_n);
		proc_mem(ch.pid, &h->after_n);
		r->max_frames = 10 * h->n;
		timed_run(r, ch.pid, &h->run_10n);
		proc_mem(ch.pid, &h->after_10n);
		h->ok = true;
	}
	detach(r);
	stop_child(&ch);
	free(r);
}

static const struct result *find_scen(const struct result *res, unsigned n, enum mode m, enum topo t,
				      enum scen sc, unsigned size)
{
	for (unsigned i = 0; i < n; i++)
		if (res[i].ok && res[i].mode == m && res[i].topo == t && res[i].scen == sc && res[i].size == size)
			return &res[i];
	return NULL;
}

static const struct result *find(const struct result *res, unsigned n, enum mode m, enum topo t,
				 unsigned size)
{
	return find_scen(res, n, m, t, SCEN_SOLO, size);
}

/* squibnet beside the plain relay: delivered rate and loss of each, for the same clients. */
static void print_relay(const struct opts *o, const struct result *res, unsigned nres)
{
	static const enum mode pairs[][2] = {{MODE_BATCH, MODE_RELAY_BATCH}, {MODE_SINGLE, MODE_RELAY_SINGLE}};

	printf("\nsquibnet against a plain one-thread relay (A->B, the same clients; delivered frames only):\n");
	if (!o->relay) {
		printf("  skipped (--no-relay)\n");
		return;
	}
	for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
		for (unsigned s = 0; s < o->nsizes; s++) {
			const struct result *sq = find(res, nres, pairs[p][0], TOPO_AB, o->sizes[s]);
			const struct result *rl = find(res, nres, pairs[p][1], TOPO_AB, o->sizes[s]);
			double want = o->sizes[s] == 60 ? 50 : o->sizes[s] == 1514 ? 80 : 0, pct;
			char tg[40] = "";

			if (!sq || !rl || mpps(rl) <= 0)
				continue;
			pct = 100 * mpps(sq) / mpps(rl);
			if (want > 0)
				snprintf(tg, sizeof(tg), "  %s (>= %.0f%%, loss <= 1%%)",
					 pct >= want && loss_pct(sq) <= 1 ? "met" : "MISSED", want);
			printf("  %-6s %4u B: squibnet %7.3f Mpps (loss %.3f%%), relay %7.3f Mpps (loss %.3f%%): %5.1f%%%s\n",
			       mode_names[pairs[p][0]], o->sizes[s], mpps(sq), loss_pct(sq), mpps(rl), loss_pct(rl), pct, tg);
		}
	}
}

/* The A->B pair next to hostile peers, against the same pair alone. */
static void print_isolation(const struct opts *o, const struct result *res, unsigned nres)
{
	static const double want[SCEN_COUNT] = {0, 90, 50};

	if (!(o->scens & ~(1u << SCEN_SOLO)))
		return;
	printf("\nisolation: the A->B pair with %d peers that never read (their queues filled and stalled)\n"
	       "or with %d random source MACs flooding in during the run, against the pair alone:\n",
	       STUCK_PEERS, FLOOD_FRAMES);
	for (enum mode m = MODE_BATCH; m <= MODE_SINGLE; m++) {
		for (unsigned s = 0; s < o->nsizes; s++) {
			const struct result *solo = find(res, nres, m, TOPO_AB, o->sizes[s]);

			if (!solo || mpps(solo) <= 0)
				continue;
			for (enum scen sc = SCEN_STUCK; sc < SCEN_COUNT; sc++) {
				const struct result *x = find_scen(res, nres, m, TOPO_AB, sc, o->sizes[s]);
				double pct;

				if (!x)
					continue;
				pct = 100 * mpps(x) / mpps(solo);
				printf("  %-6s %4u B %-9s %7.3f Mpps (loss %.3f%%) vs %7.3f alone: %5.1f%%  %s (>= %.0f%%)\n",
				       mode_names[m], o->sizes[s], scen_suffix[sc], mpps(x), loss_pct(x), mpps(solo), pct,
				       pct >= want[sc] ? "met" : "MISSED", want[sc]);
			}
		}
	}
}

/* The 1-minute load average: other work on the machine makes the rates (not the CPU per frame)
 * unreliable, so it is printed with them. */
static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static void print_text(const struct opts *o, const struct result *res, unsigned nres, const struct heap *h,
		       const struct result *vres, unsigned nvres, bool vde_found, bool have_dgram)
{
	char win[40];

	snprintf(win, sizeof(win), o->window ? "window %u frames" : "no window (as fast as the sockets take)",
		 o->window);
	printf("squibnet-bench: %s, %.2f s per case, %s, %ld CPUs%s\n", o->squibnet, o->seconds, win,
	       sysconf(_SC_NPROCESSORS_ONLN),
	       o->pin && sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? " (switch on CPU 0, bench on CPU 1)" : "");
	if (loadavg() >= 0)
		printf("load average %.2f at the end%s\n", loadavg(),
		       loadavg() > 3 ? ": other work was running, rates may be low (CPU per frame holds better)" : "");
	printf("modes: batch = %s; single = %s; dgram = %s\n", mode_desc[MODE_BATCH], mode_desc[MODE_SINGLE],
	       mode_desc[MODE_DGRAM]);
	printf("Mpps and Gbit/s at the receivers; us/frame = switch CPU time (user+system) per delivered frame;\n"
	       "load = the switch's share of its CPU during the run (near 100%%: the switch set the pace)\n\n");
	print_table(res, nres);
	if (!have_dgram)
		printf("note: the daemon refused '--port dgram,listen=...': no dgram cases\n");
	print_relay(o, res, nres);
	print_isolation(o, res, nres);
	if (h) {
		printf("\nmemory of the daemon over the same two ports (stream batch, 60 B, A->B):\n");
		if (!h->ok) {
			printf("  skipped: %s\n", h->why);
		} else {
			printf("  %-26s VmRSS %7ld kB  VmData %7ld kB  VmHWM %7ld kB\n", "attached, before traffic:",
			       h->before.rss_kb, h->before.data_kb, h->before.hwm_kb);
			printf("  after %9llu frames:    VmRSS %7ld kB  VmData %7ld kB  (%+ld kB, %+ld kB)\n",
			       (unsigned long long)h->run_n.received, h->after_n.rss_kb, h->after_n.data_kb,
			       h->after_n.rss_kb - h->before.rss_kb, h->after_n.data_kb - h->before.data_kb);
			printf("  after %9llu more:      VmRSS %7ld kB  VmData %7ld kB  (%+ld kB, %+ld kB)\n",
			       (unsigned long long)h->run_10n.received, h->after_10n.rss_kb, h->after_10n.data_kb,
			       h->after_10n.rss_kb - h->after_n.rss_kb, h->after_10n.data_kb - h->after_n.data_kb);
			printf("  %s\n", h->after_10n.data_kb == h->after_n.data_kb &&
						 h->after_10n.rss_kb - h->after_n.rss_kb <= 64
					 ? "no growth with 10x the frames: no per-frame allocation visible"
					 : "GROWTH with 10x the frames: the data path may allocate per frame");
		}
	}
	printf("\nvde_switch comparison (A->B, 1 frame per datagram over vde_switch's own protocol):\n");
	if (!o->vde) {
		printf("  skipped (--no-vde)\n");
		return;
	}
	if (!vde_found) {
		printf("  skipped: vde_switch is not in PATH (Debian package vde2)\n");
		return;
	}
	print_table(vres, nvres);
	for (unsigned i = 0; i < nvres; i++) {
		const struct result *v = &vres[i], *d, *b;
		char ds[16] = "-", bs[16] = "-";

		if (!v->ok || us_per_frame(v) <= 0)
			continue;
		d = find(res, nres, MODE_DGRAM, TOPO_AB, v->size);
		b = find(res, nres, MODE_BATCH, TOPO_AB, v->size);
		if (d && us_per_frame(d) > 0)
			snprintf(ds, sizeof(ds), "%.2f", us_per_frame(d) / us_per_frame(v));
		if (b && us_per_frame(b) > 0)
			snprintf(bs, sizeof(bs), "%.2f", us_per_frame(b) / us_per_frame(v));
		printf("  %4u B: squibnet/vde_switch CPU per frame ratio: %s (squibnet dgram), %s (squibnet stream "
		       "batch)\n", v->size, ds, bs);
	}
}

/* Prints @str as a JSON string. */
static void json_str(const char *str)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void json_mem(const char *key, const struct memstat *m)
{
	printf("\"%s\": {\"vmrss_kb\": %ld, \"vmdata_kb\": %ld, \"vmhwm_kb\": %ld}", key, m->rss_kb, m->data_kb,
	       m->hwm_kb);
}

static void print_json(const struct opts *o, const struct result *res, unsigned nres, const struct heap *h,
		       const struct result *vres, unsigned nvres, bool vde_found, bool have_dgram)
{
	printf("{\n  \"squibnet\": ");
	json_str(o->squibnet);
	printf(",\n  \"seconds\": %.3f,\n  \"window\": %u,\n  \"cpus\": %ld,\n"
	       "  \"dgram_supported\": %s,\n  \"loadavg\": %.2f,\n  \"cases\": [\n",
	       o->seconds, o->window, sysconf(_SC_NPROCESSORS_ONLN), have_dgram ? "true" : "false", loadavg());
	for (unsigned i = 0; i < nres; i++)
		json_result(&res[i], i + 1 < nres);
	printf("  ],\n  \"heap\": ");
	if (!h) {
		printf("null");
	} else if (!h->ok) {
		printf("{\"skipped\": \"%s\"}", h->why);
	} else {
		printf("{\"frames_n\": %llu, \"frames_10n\": %llu, ", (unsigned long long)h->run_n.received,
		       (unsigned long long)h->run_10n.received);
		json_mem("before", &h->before);
		printf(", ");
		json_mem("after_n", &h->after_n);
		printf(", ");
		json_mem("after_10n", &h->after_10n);
		printf(", \"vmdata_growth_10n_kb\": %ld, \"vmrss_growth_10n_kb\": %ld}",
		       h->after_10n.data_kb - h->after_n.data_kb, h->after_10n.rss_kb - h->after_n.rss_kb);
	}
	printf(",\n  \"vde_switch\": ");
	if (!o->vde || !vde_found) {
		printf("{\"skipped\": \"%s\"}\n}\n", o->vde ? "vde_switch not in PATH" : "--no-vde");
		return;
	}
	printf("{\n    \"cases\": [\n");
	for (unsigned i = 0; i < nvres; i++) {
		printf("  ");
		json_result(&vres[i], i + 1 < nvres);
	}
	printf("    ],\n    \"cpu_ratio\": [\n");
	for (unsigned i = 0; i < nvres; i++) {
		const struct result *v = &vres[i], *d = find(res, nres, MODE_DGRAM, TOPO_AB, v->size);
		const struct result *b = find(res, nres, MODE_BATCH, TOPO_AB, v->size);

		printf("      {\"size\": %u, \"squibnet_dgram\": ", v->size);
		if (d && v->ok && us_per_frame(v) > 0)
			printf("%.4f", us_per_frame(d) / us_per_frame(v));
		else
			printf("null");
		printf(", \"squibnet_stream_batch\": ");
		if (b && v->ok && us_per_frame(v) > 0)
			printf("%.4f", us_per_frame(b) / us_per_frame(v));
		else
			printf("null");
		printf("}%s\n", i + 1 < nvres ? "," : "");
	}
	printf("    ]\n  }\n}\n");
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: squibnet-bench [--squibnet PATH] [--seconds S] [--quick] [--json] [--mode LIST]\n"
		"                      [--size LIST] [--topology LIST] [--scenario LIST] [--window N]\n"
		"                      [--no-relay] [--no-vde] [--no-heap] [--no-pin] [--daemon-arg ARG]...\n"
		"                      [-v] [--help] [--version]\n"
		"\n"
		"Forwarding benchmark for the squibnet daemon. Starts it ($SQUIBNET or --squibnet, else\n"
		"'squibnet' in PATH) on listeners in a temporary directory, attaches clients and sends frames\n"
		"A->B (one sender, one receiver) and all-to-all (4 clients, each to the other 3). Reports\n"
		"frames sent and received, loss, Mpps and Gbit/s at the receivers, and the switch's CPU time\n"
		"per delivered frame (from /proc/PID/schedstat). Senders write as fast as their sockets take\n"
		"frames (or keep at most --window in flight). The same stream clients are measured through a\n"
		"plain one-thread relay, and with vde_switch in PATH, through vde_switch.\n"
		"\n"
		"  --seconds S      length of each case (default 2)\n"
		"  --quick          short smoke run: 0.3 s per case, smaller heap check\n"
		"  --json           machine-readable results on stdout\n"
		"  --mode LIST      of batch (stream, 64 frames per write), single (stream, 1 frame per\n"
		"                   write, as QEMU does), dgram (1 frame per datagram); default all\n"
		"  --size LIST      frame sizes in bytes, 60..1514 (default 60,512,1514)\n"
		"  --topology LIST  of a-b, all-to-all (default both)\n"
		"  --scenario LIST  of solo, stuck64 (64 more peers that never read, their queues filled),\n"
		"                   macflood (1,000,000 random source MACs during the run); the last two for\n"
		"                   batch and single A->B only (default all three)\n"
		"  --window N       frames in flight per sender, 64 or more; 0 (default): no window\n"
		"  --no-relay       skip the plain relay comparison\n"
		"  --no-vde         skip the vde_switch comparison\n"
		"  --no-heap        skip the memory growth check\n"
		"  --no-pin         do not pin the switch and the bench to separate CPUs\n"
		"  --daemon-arg ARG one more argument for the daemon, e.g. --daemon-arg=--capture=/tmp/x.pcap\n"
		"                   (repeatable, at most 8)\n"
		"  -v, --verbose    say what is happening on stderr\n");
}

static unsigned parse_list(const char *arg, const char *const names[], unsigned n, const char *opt)
{
	unsigned bits = 0;
	char buf[256], *save, *tok;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned i;

		for (i = 0; i < n && strcmp(tok, names[i]); i++)
			;
		if (i == n) {
			fprintf(stderr, "squibnet-bench: %s: unknown '%s'\n", opt, tok);
			exit(2);
		}
		bits |= 1u << i;
	}
	return bits;
}

static void parse_sizes(struct opts *o, const char *arg)
{
	char buf[256], *save, *tok, *end;

	o->nsizes = 0;
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned long v = strtoul(tok, &end, 10);

		if (*end || v < 60 || v > 1514 || o->nsizes == sizeof(o->sizes) / sizeof(o->sizes[0])) {
			fprintf(stderr, "squibnet-bench: --size: '%s' is not a size from 60 to 1514 (at most 8)\n", tok);
			exit(2);
		}
		o->sizes[o->nsizes++] = (unsigned)v;
	}
}

static void cleanup_dir(void)
{
	/* only files this program made live there; vde_switch removes its own on SIGTERM */
	static const char *const names[] = {"s.sock", "d.sock", "c.sock", "squibnet.log", "vde_switch.log",
					     "c0.sock", "c1.sock", "c2.sock", "c3.sock", "vde"};
	char p[sizeof(tmpdir) + 32];

	if (!tmpdir[0])
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
		if (unlink(p) < 0 && errno == EISDIR)
			rmdir(p);
	}
	rmdir(tmpdir);
	tmpdir[0] = '\0';
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"squibnet", required_argument, NULL, 'S'},
		{"seconds", required_argument, NULL, 's'},
		{"quick", no_argument, NULL, 'Q'},
		{"json", no_argument, NULL, 'j'},
		{"mode", required_argument, NULL, 'm'},
		{"size", required_argument, NULL, 'z'},
		{"topology", required_argument, NULL, 't'},
		{"window", required_argument, NULL, 'w'},
		{"scenario", required_argument, NULL, 'c'},
		{"no-relay", no_argument, NULL, 'R'},
		{"no-vde", no_argument, NULL, 'D'},
		{"no-heap", no_argument, NULL, 'H'},
		{"no-pin", no_argument, NULL, 'P'},
		{"daemon-arg", required_argument, NULL, 'a'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct opts o = {
		.seconds = 2, .window = 0, .pin = true, .vde = true, .relay = true, .heap = true,
		.modes = 1u << MODE_BATCH | 1u << MODE_SINGLE | 1u << MODE_DGRAM,
		.topos = 1u << TOPO_AB | 1u << TOPO_ALL,
		.scens = (1u << SCEN_COUNT) - 1,
		.sizes = {60, 512, 1514}, .nsizes = 3,
	};
	bool seconds_given = false, have_dgram = true;
	struct result res[MODE_COUNT * TOPO_COUNT * SCEN_COUNT * 8], vres[8];
	struct heap heap = {0};
	unsigned nres = 0, nvres = 0;
	bool vde_found = false;
	int c, sw_cpu = -1;

	while ((c = getopt_long(argc, argv, "vhV", lopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'S':
			o.squibnet = optarg;
			break;
		case 's':
			o.seconds = strtod(optarg, &end);
			if (*end || !(o.seconds >= 0.05 && o.seconds <= 600)) {
				fprintf(stderr, "squibnet-bench: --seconds: want 0.05 to 600\n");
				return 2;
			}
			seconds_given = true;
			break;
		case 'Q':
			o.quick = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'm':
			o.modes = parse_list(optarg, mode_names, MODE_VDE, "--mode");
			break;
		case 'z':
			parse_sizes(&o, optarg);
			break;
		case 't':
			o.topos = parse_list(optarg, topo_names, TOPO_COUNT, "--topology");
			break;
		case 'w':
			o.window = (unsigned)strtoul(optarg, &end, 10);
			if (*end || (o.window != 0 && o.window < BATCH) || o.window > 1u << 20) {
				fprintf(stderr, "squibnet-bench: --window: want 0, or %d to %u\n", BATCH, 1u << 20);
				return 2;
			}
			break;
		case 'c':
			o.scens = parse_list(optarg, scen_names, SCEN_COUNT, "--scenario");
			break;
		case 'R':
			o.relay = false;
			break;
		case 'D':
			o.vde = false;
			break;
		case 'H':
			o.heap = false;
			break;
		case 'P':
			o.pin = false;
			break;
		case 'a':
			if (o.ndaemon_args == sizeof(o.daemon_args) / sizeof(o.daemon_args[0])) {
				fprintf(stderr, "squibnet-bench: at most 8 --daemon-arg\n");
				return 2;
			}
			o.daemon_args[o.ndaemon_args++] = optarg;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("squibnet-bench %s\n", sn_version());
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "squibnet-bench: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (o.quick && !seconds_given)
		o.seconds = 0.3;
	if (!o.squibnet)
		o.squibnet = getenv("SQUIBNET");
	if (!o.squibnet || !*o.squibnet)
		o.squibnet = "squibnet";
	clk_tck = sysconf(_SC_CLK_TCK);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/squibnet-bench.XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	atexit(cleanup_dir);
	if (o.pin && sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
		/* the switch gets CPU 0, senders and receivers share CPU 1 */
		sw_cpu = 0;
		pin_to(0, 1);
	}

	/* does the daemon start, and does it take a dgram listener? */
	{
		struct child ch = {0};
		int e = start_squibnet(&o, &ch, true, sw_cpu);

		if (e < 0) {
			have_dgram = false;
			e = start_squibnet(&o, &ch, false, sw_cpu);
			if (e < 0) {
				fprintf(stderr, "squibnet-bench: cannot start %s (%s); its output:\n", o.squibnet,
					e == -ECHILD ? "it exited" : strerror(-e));
				print_log_tail(ch.log);
				return 1;
			}
		}
		stop_child(&ch);
		if (!have_dgram && o.verbose)
			fprintf(stderr, "squibnet-bench: the daemon refused a dgram listener; dgram cases skipped\n");
	}

	for (unsigned m = 0; m < MODE_VDE; m++) {
		if (!(o.modes & 1u << m))
			continue;
		for (unsigned t = 0; t < TOPO_COUNT; t++) {
			if (!(o.topos & 1u << t))
				continue;
			for (unsigned s = 0; s < o.nsizes; s++)
				run_case(&o, m, t, SCEN_SOLO, o.sizes[s], have_dgram, sw_cpu, &res[nres++]);
		}
	}
	for (unsigned m = MODE_BATCH; m <= MODE_SINGLE; m++) {
		if (!(o.modes & 1u << m) || !(o.topos & 1u << TOPO_AB))
			continue;
		for (unsigned s = 0; s < o.nsizes; s++) {
			if (o.relay)
				run_case(&o, m == MODE_BATCH ? MODE_RELAY_BATCH : MODE_RELAY_SINGLE, TOPO_AB, SCEN_SOLO,
					 o.sizes[s], false, sw_cpu, &res[nres++]);
			for (unsigned sc = SCEN_STUCK; sc < SCEN_COUNT; sc++)
				if (o.scens & 1u << sc)
					run_case(&o, m, TOPO_AB, sc, o.sizes[s], have_dgram, sw_cpu, &res[nres++]);
		}
	}
	if (o.heap)
		heap_check(&o, sw_cpu, &heap);
	if (o.vde) {
		vde_found = in_path("vde_switch");
		for (unsigned s = 0; vde_found && s < o.nsizes; s++)
			run_case(&o, MODE_VDE, TOPO_AB, SCEN_SOLO, o.sizes[s], false, sw_cpu, &vres[nvres++]);
	}

	if (o.json)
		print_json(&o, res, nres, o.heap ? &heap : NULL, vres, nvres, vde_found, have_dgram);
	else
		print_text(&o, res, nres, o.heap ? &heap : NULL, vres, nvres, vde_found, have_dgram);
	cleanup_dir();
	return 0;
}
