/* squibnet-blast - the frame source and sink of tools/bench-vxlan.py: sends Ethernet frames as
 * fast as a socket takes them, 64 per sendmmsg(), or counts what arrives, for a fixed time.
 *
 *   squibnet-blast packet IFNAME SIZE SECONDS     frames out of a network interface (AF_PACKET)
 *   squibnet-blast dgram LOCAL PEER SIZE SECONDS  frames to a squibnet dgram,connect= port:
 *                                                 bound to LOCAL, sent to PEER (unix paths)
 *   squibnet-blast sink LOCAL SECONDS             counts the datagrams that arrive at LOCAL
 *
 * Frames go to 02:00:00:00:00:01 from 02:00:00:00:00:02 with EtherType 0x88b5 (local
 * experimental), SIZE bytes each (60 to 9000). Prints one line of JSON: frames moved, seconds,
 * and this process's own CPU time (user and system, from getrusage). A benchmark helper: it
 * never judges, and exits 2 only on a usage or set-up error. Linux only (AF_PACKET). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static void usage(void)
{
	fprintf(stderr, "usage: squibnet-blast packet IFNAME SIZE SECONDS | dgram LOCAL PEER SIZE SECONDS |\n"
			"                      sink LOCAL SECONDS\n");
	exit(2);
}

static int unix_bound(const char *path, struct sockaddr_un *ret)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0), buf = 4 << 20;

	if (fd < 0 || strlen(path) >= sizeof(a.sun_path)) {
		perror("socket");
		exit(2);
	}
	strcpy(a.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror(path);
		exit(2);
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (ret)
		*ret = a;
	return fd;
}

static void report(const char *mode, unsigned long long frames, double secs, double cpu_s)
{
	printf("{\"mode\":\"%s\",\"frames\":%llu,\"seconds\":%.3f,\"cpu_seconds\":%.3f}\n", mode, frames, secs, cpu_s);
}

int main(int argc, char **argv)
{
	static uint8_t frame[9000];
	struct mmsghdr msg[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_un peer;
	struct sockaddr_ll ll = {0};
	unsigned long long frames = 0;
	unsigned size = 0;
	double secs, t0, c0, deadline;
	int fd;

	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "sink")) {
		static uint8_t buf[BATCH][2048];

		if (argc != 4)
			usage();
		secs = atof(argv[3]);
		fd = unix_bound(argv[2], NULL);
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){buf[i], sizeof(buf[i])};
			msg[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
		}
		t0 = now();
		c0 = cpu();
		deadline = t0 + secs;
		while (now() < deadline) {
			struct timeval tv = {0, 100000};
			int n;

			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			n = recvmmsg(fd, msg, BATCH, 0, NULL);
			if (n > 0)
				frames += (unsigned long long)n;
		}
		report("sink", frames, now() - t0, cpu() - c0);
		unlink(argv[2]);
		return 0;
	}
	if (!strcmp(argv[1], "packet") && argc == 5) {
		unsigned idx = if_nametoindex(argv[2]);

		size = (unsigned)atoi(argv[3]);
		secs = atof(argv[4]);
		fd = socket(AF_PACKET, SOCK_RAW, 0);
		if (fd < 0 || !idx) {
			perror(argv[2]);
			return 2;
		}
		ll.sll_family = AF_PACKET;
		ll.sll_ifindex = (int)idx;
		ll.sll_protocol = 0;
		if (bind(fd, (struct sockaddr *)&ll, sizeof(ll)) < 0) {
			perror("bind");
			return 2;
		}
#ifdef PACKET_QDISC_BYPASS
		{
			int one = 1;

			setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
		}
#endif
	} else if (!strcmp(argv[1], "dgram") && argc == 6) {
		size = (unsigned)atoi(argv[4]);
		secs = atof(argv[5]);
		fd = unix_bound(argv[2], NULL);
		memset(&peer, 0, sizeof(peer));
		peer.sun_family = AF_UNIX;
		if (strlen(argv[3]) >= sizeof(peer.sun_path))
			usage();
		strcpy(peer.sun_path, argv[3]);
	} else {
		usage();
	}
	if (size < 60 || size > sizeof(frame))
		usage();
	memcpy(frame, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x88\xb5", 14);
	for (unsigned i = 14; i < size; i++)
		frame[i] = (uint8_t)i;
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){frame, size};
		msg[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
		if (!strcmp(argv[1], "dgram")) {
			msg[i].msg_hdr.msg_name = &peer;
			msg[i].msg_hdr.msg_namelen = sizeof(peer);
		}
	}
	t0 = now();
	c0 = cpu();
	deadline = t0 + secs;
	while (now() < deadline) {
		int n = sendmmsg(fd, msg, BATCH, 0);

		if (n > 0)
			frames += (unsigned long long)n;
		else if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED) {
			perror("sendmmsg");
			return 2;
		}
	}
	report(argv[1], frames, now() - t0, cpu() - c0);
	if (!strcmp(argv[1], "dgram"))
		unlink(argv[2]);
	return 0;
}
