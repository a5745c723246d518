/* guest-tcp.c - the vm suite's TCP transfer inside a guest, without busybox nc's copies.
 *
 * Runs as a static program in the test guests' initramfs (tests/vm/test_vm.py puts it there).
 * "send" connects and hands a file to the socket with sendfile(), so with SG and checksum
 * offload the kernel queues the file's pages without copying them, and without them it pays
 * the copy and the checksum a real guest pays. "recv" accepts one connection and moves it into
 * a file: -m splice through a pipe (one kernel copy into the page cache), -m read with read()
 * and write() of large buffers (two copies), -m hold into pipes that keep the socket's pages
 * until the end of the stream, written to the file only after -D's line said it ended (no
 * copy before that line). Under TCG every byte a guest copies is slow; busybox nc's small
 * read()/write() pairs made those copies, not the network path, the cost of a transfer.
 *
 * usage: guest-tcp send [-b SNDBUF] [-c CHUNK] [-t SECONDS] ADDRESS PORT FILE
 *        guest-tcp recv [-b RCVBUF] [-c CHUNK] [-t SECONDS] [-m splice|read|hold] [-D TEXT]
 *                       PORT FILE
 * Exits 0 when the whole file went (send: and the peer closed its side, so it has it all) or
 * the peer's end of stream came (recv); 1 with a message on stderr otherwise. -t kills the
 * program after SECONDS (default 150) so a lost peer cannot hold the guest.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct opts {
	int bufsize;            /* SO_SNDBUF / SO_RCVBUF; 0 leaves the kernel's autotuning */
	size_t chunk;           /* bytes per sendfile/splice/read call */
	unsigned timeout;
	enum { RX_SPLICE, RX_READ, RX_HOLD } rx;
	const char *done_mark;  /* -D: printed on stdout (the console) once the stream ended */
};

static void die(const char *what)
{
	fprintf(stderr, "guest-tcp: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *verb, unsigned long long bytes, double t0)
{
	double took = now() - t0;

	fprintf(stderr, "guest-tcp: %s %llu bytes in %.2f s (%.0f Mbit/s inside the guest)\n", verb,
		bytes, took, took > 0 ? (double)bytes * 8 / took / 1e6 : 0.0);
}

static void set_buf(int s, int opt, int size)
{
	if (size > 0 && setsockopt(s, SOL_SOCKET, opt, &size, sizeof(size)) < 0)
		die("setsockopt(SO_SNDBUF/SO_RCVBUF)");
}

static int do_send(const struct opts *o, const char *addr, int port, const char *path)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct stat st;
	off_t off = 0;
	char drain[256];
	double t0;
	int fd, s = -1;

	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "guest-tcp: %s is not an IPv4 address\n", addr);
		return 1;
	}
	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0)
		die(path);
	/* The listener may not be up yet: retry for about 20 s, as the shell loop around nc did. */
	for (int tries = 0;; tries++) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			die("socket");
		set_buf(s, SO_SNDBUF, o->bufsize);
		if (connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			break;
		if (tries >= 100 || (errno != ECONNREFUSED && errno != ETIMEDOUT && errno != EHOSTUNREACH))
			die("connect");
		close(s);
		usleep(200 * 1000);
	}
	t0 = now();
	while (off < st.st_size) {
		size_t want = (size_t)(st.st_size - off) < o->chunk ? (size_t)(st.st_size - off) : o->chunk;
		ssize_t n = sendfile(s, fd, &off, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("sendfile");
		if (n == 0) {
			fprintf(stderr, "guest-tcp: %s ended at %lld of %lld bytes\n", path,
				(long long)off, (long long)st.st_size);
			return 1;
		}
	}
	if (shutdown(s, SHUT_WR) < 0)
		die("shutdown");
	/* The receiver closes once it has the end of the stream: then all of it arrived. */
	for (;;) {
		ssize_t n = read(s, drain, sizeof(drain));

		if (n == 0)
			break;
		if (n < 0 && errno != EINTR)
			die("read (waiting for the peer to close)");
	}
	report("sent", (unsigned long long)off, t0);
	close(s);
	close(fd);
	return 0;
}

static unsigned long long recv_splice(const struct opts *o, int c, int out)
{
	unsigned long long total = 0;
	int p[2];

	if (pipe(p) < 0)
		die("pipe");
	/* As large as pipe-max-size lets root make it (1 MiB by default); a smaller pipe works. */
	(void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	for (;;) {
		ssize_t n = splice(c, NULL, p[1], NULL, o->chunk, SPLICE_F_MOVE | SPLICE_F_MORE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("splice from the socket");
		if (n == 0)
			break;
		while (n > 0) {
			ssize_t m = splice(p[0], NULL, out, NULL, (size_t)n, SPLICE_F_MOVE | SPLICE_F_MORE);

			if (m < 0 && errno == EINTR)
				continue;
			if (m <= 0)
				die("splice into the file");
			n -= m;
			total += (unsigned long long)m;
		}
	}
	close(p[0]);
	close(p[1]);
	return total;
}

static unsigned long long recv_read(const struct opts *o, int c, int out)
{
	unsigned long long total = 0;
	char *buf = malloc(o->chunk);

	if (!buf)
		die("malloc");
	for (;;) {
		ssize_t n = read(c, buf, o->chunk);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read from the socket");
		if (n == 0)
			break;
		for (ssize_t done = 0; done < n;) {
			ssize_t m = write(out, buf + done, (size_t)(n - done));

			if (m < 0 && errno == EINTR)
				continue;
			if (m <= 0)
				die("write into the file");
			done += m;
		}
		total += (unsigned long long)n;
	}
	free(buf);
	return total;
}

static void say_done(const struct opts *o)
{
	struct timespec ts;

	if (!o->done_mark)
		return;
	/* the shell's marks carry /proc/uptime, which counts as CLOCK_BOOTTIME does */
	clock_gettime(CLOCK_BOOTTIME, &ts);
	printf("%s (t=%.2f)\n", o->done_mark, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	fflush(stdout);
}

/* -m hold: splice the stream into pipes and keep it there (a pipe holds the socket's pages, no
 * copy) until the end of the stream; then say so, and only then write the pipes into the file.
 * A full pipe refuses more with EAGAIN (SPLICE_F_NONBLOCK applies to the pipe; the socket stays
 * blocking), and the next one is opened. With MAX_PIPES full, they are written out and reused. */
#ifndef MAX_PIPES
#define MAX_PIPES 256   /* 512 descriptors, under the 1024 a guest's init may have */
#endif

static void drain_pipes(int (*p)[2], int n, int out, unsigned long long *total)
{
	for (int i = 0; i < n; i++) {
		for (;;) {
			ssize_t m = splice(p[i][0], NULL, out, NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0 && errno == EAGAIN)
				break;          /* this pipe is empty */
			if (m <= 0)
				die("splice into the file");
			*total += (unsigned long long)m;
		}
	}
}

static unsigned long long recv_hold(const struct opts *o, int c, int out)
{
	static int p[MAX_PIPES][2];
	unsigned long long total = 0;
	int used = 0, cur = -1, fresh = 0;

	for (;;) {
		ssize_t n;

		if (cur < 0 || cur >= used) {
			if (used == MAX_PIPES) {
				drain_pipes(p, used, out, &total);
				cur = 0;
			} else {
				if (pipe(p[used]) < 0)
					die("pipe");
				(void)fcntl(p[used][1], F_SETPIPE_SZ, 1 << 20);
				cur = used++;
			}
			fresh = 1;
		}
		n = splice(c, NULL, p[cur][1], NULL, o->chunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !fresh) {
			cur++;          /* full: the next pipe */
			continue;
		}
		if (n < 0)
			die("splice from the socket");
		if (n == 0)
			break;
		fresh = 0;
	}
	close(c);               /* the sender waits for this */
	say_done(o);
	drain_pipes(p, used, out, &total);
	for (int i = 0; i < used; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
	return total;
}

static int do_recv(const struct opts *o, int port, const char *path)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_ANY) };
	unsigned long long total;
	double t0;
	int one = 1, l, c, out;

	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0)
		die("socket");
	(void)setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* before listen(): the window scale of the accepted socket is chosen from it */
	set_buf(l, SO_RCVBUF, o->bufsize);
	if (bind(l, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		die("bind");
	if (listen(l, 1) < 0)
		die("listen");
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0)
		die(path);
	c = accept(l, NULL, NULL);
	if (c < 0)
		die("accept");
	close(l);
	t0 = now();
	if (o->rx == RX_HOLD) {
		total = recv_hold(o, c, out);   /* closes c and says done before it writes the file */
		if (close(out) < 0)
			die(path);
	} else {
		total = o->rx == RX_READ ? recv_read(o, c, out) : recv_splice(o, c, out);
		if (close(out) < 0)
			die(path);
		close(c);
		say_done(o);
	}
	report(o->rx == RX_HOLD ? "received (hold, then splice)" : o->rx == RX_READ ? "received (read)"
	       : "received (splice)", total, t0);
	return 0;
}

static void usage(void)
{
	fputs("usage: guest-tcp send [-b SNDBUF] [-c CHUNK] [-t SECONDS] ADDRESS PORT FILE\n"
	      "       guest-tcp recv [-b RCVBUF] [-c CHUNK] [-t SECONDS] [-m splice|read|hold] [-D TEXT]\n"
	      "                      PORT FILE\n",
	      stderr);
	exit(1);
}

int main(int argc, char **argv)
{
	struct opts o = { .bufsize = 0, .chunk = 1 << 20, .timeout = 150, .rx = RX_SPLICE, .done_mark = NULL };
	int opt, sending;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "send") == 0)
		sending = 1;
	else if (strcmp(argv[1], "recv") == 0)
		sending = 0;
	else
		usage();
	optind = 2;
	while ((opt = getopt(argc, argv, "b:c:t:m:D:")) != -1) {
		switch (opt) {
		case 'b':
			o.bufsize = atoi(optarg);
			break;
		case 'c':
			o.chunk = (size_t)strtoul(optarg, NULL, 0);
			if (o.chunk == 0)
				usage();
			break;
		case 't':
			o.timeout = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'm':
			if (strcmp(optarg, "read") == 0)
				o.rx = RX_READ;
			else if (strcmp(optarg, "splice") == 0)
				o.rx = RX_SPLICE;
			else if (strcmp(optarg, "hold") == 0)
				o.rx = RX_HOLD;
			else
				usage();
			break;
		case 'D':
			o.done_mark = optarg;
			break;
		default:
			usage();
		}
	}
	signal(SIGPIPE, SIG_IGN);
	alarm(o.timeout);
	if (sending && argc - optind == 3)
		return do_send(&o, argv[optind], atoi(argv[optind + 1]), argv[optind + 2]);
	if (!sending && argc - optind == 2)
		return do_recv(&o, atoi(argv[optind]), argv[optind + 1]);
	usage();
	return 1;
}
