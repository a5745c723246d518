/* squibnet-ping - a tiny IPv4 station that plugs into a switch port as a client: it answers ARP
 * and ICMP echo for its address and can ping another station, printing ping(8)-like lines or
 * one JSON object. It exists so the first command of the README and the integration tests can
 * prove frames cross the switch without booting a guest. With --dhcp it first takes its address
 * from a DHCP server on the switch (gvproxy's gateway) and can then ping the router it was
 * given. One poll() loop drives everything; timers are deadlines on the monotonic clock checked
 * after each wake-up. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <squibnet/switch.h>

#include "framing.h"
#include "sock.h"
#include "spec.h"
#include "util.h"

#define PROG "squibnet-ping"
#define ETH_P_IPV4 0x0800
#define ETH_P_ARP 0x0806
#define ETH_ZLEN 60 /* shortest Ethernet frame without FCS: what real NICs pad to */
#define IP_HLEN 20
#define ICMP_HLEN 8
#define ARP_LEN 28
#define ARP_RETRY 0.2
#define TTL 64
#define MAX_SIZE (SN_FRAME_MAX - SN_ETH_HLEN - IP_HLEN - ICMP_HLEN)
#define MAX_COUNT 1000000
#define UDP_HLEN 8
#define BOOTP_LEN 300        /* fixed part, cookie and options, padded like most clients */
#define DHCP_COOKIE 0x63825363u
#define DHCP_RETRY 1.0
#define DHCP_MAX_DNS 4

enum kind { KIND_STREAM, KIND_DGRAM, KIND_SEQPACKET };

enum phase {
	PH_DHCP,    /* --dhcp: asking for an address */
	PH_RESOLVE, /* asking for the peer's MAC */
	PH_PING,    /* sending echo requests and waiting for the replies */
	PH_SERVE,   /* only answering */
	PH_DONE,
};

struct station {
	/* configuration */
	enum kind kind;
	enum sn_framing framing;
	const char *connect;
	const char *local;
	uint8_t mac[6];
	uint32_t ip, mask;      /* host order */
	uint32_t peer_ip;       /* 0 without --ping */
	unsigned count, size;
	double interval, timeout, serve;
	bool serve_set, json, quiet;
	bool dhcp, ping_gateway;

	/* run time */
	int fd;
	bool local_bound;
	struct sn_streambuf rx;
	uint8_t *tx;            /* one frame being built, with room for the longest prefix */
	uint16_t ip_id, icmp_id;
	enum phase phase;
	uint8_t peer_mac[6];
	bool peer_known;
	double next_arp, resolve_deadline;
	unsigned sent, received;
	double next_send, wait_deadline, serve_deadline;
	double *sent_at;        /* per sequence number, 0 = never sent */
	bool *got;
	double rtt_min, rtt_max, rtt_sum;
	int fatal;              /* set when the port is gone: exit status 2 */

	/* --dhcp */
	uint32_t xid;
	bool requesting;        /* an offer was taken: REQUEST sent, waiting for ACK */
	bool leased, dhcp_failed;
	uint32_t offered, server, router, lease_time;
	uint32_t dns[DHCP_MAX_DNS];
	unsigned ndns;
	double dhcp_next, dhcp_deadline;
};

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	if (write(sig_pipe[1], &c, 1) < 0) {
		/* the pipe is full: a wake-up is already pending */
	}
	errno = saved;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " --connect ADDR [--kind stream|dgram|seqpacket] [--framing qemu|hyperkit|vde]\n"
		"                     [--local PATH] [--mac MAC] --ip A.B.C.D/PREFIX | --dhcp [--ping-gateway]\n"
		"                     [--ping A.B.C.D] [--count N] [--interval SECONDS] [--timeout SECONDS]\n"
		"                     [--size BYTES] [--serve SECONDS] [--json] [-q] [--help] [--version]\n"
		"\n"
		"A small IPv4 station attached to a switch port as a client. It answers ARP and ICMP echo\n"
		"for its address; with --ping it resolves a peer with ARP and pings it.\n"
		"  --connect ADDR      stream: unix:PATH or tcp:HOST:PORT; dgram, seqpacket: PATH\n"
		"  --kind KIND         socket kind of the switch port (default stream)\n"
		"  --framing NAME      length prefix on streams (default qemu: 4-byte big-endian)\n"
		"  --local PATH        dgram: the path to bind (required, removed at exit)\n"
		"  --mac MAC           station MAC (default 52:54:00 and the last three bytes of the IP)\n"
		"  --ip A.B.C.D/P      station address and prefix length\n"
		"  --dhcp              take the address from a DHCP server instead (--timeout bounds the\n"
		"                      exchange); prints the lease. --ping-gateway pings the router it gave\n"
		"  --ping A.B.C.D      peer to ping; --count N (default 3), --interval S (default 0.2),\n"
		"                      --timeout S for ARP and for the last reply (default 5),\n"
		"                      --size BYTES of echo payload (default 56)\n"
		"  --serve SECONDS     keep answering this long (0: until SIGINT/SIGTERM); after the pings\n"
		"                      when --ping is given. With neither --ping nor --serve: until a signal\n"
		"  --json              print one JSON object with the ping results on stdout\n"
		"  -q, --quiet         print only the summary\n"
		"Exit status: 0 all replies came (or serving ended), 1 replies lost or no DHCP lease,\n"
		"             2 usage or attach error.\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *ret)
{
	if (sn_parse_uint(s, min, max, ret) < 0)
		return bad("%s: '%s' is not a number from %u to %u", opt, s, min, max);
	return 0;
}

static int parse_seconds(const char *opt, const char *s, double min, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < min || v > 1e7)
		return bad("%s: '%s' is not a number of seconds (at least %g)", opt, s, min);
	*ret = v;
	return 0;
}

static int parse_ip(const char *s, uint32_t *ret)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -1;
	*ret = ntohl(a.s_addr);
	return 0;
}

static int parse_ip_prefix(const char *s, uint32_t *ret_ip, uint32_t *ret_mask)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	unsigned prefix;

	if (!slash || (size_t)(slash - s) >= sizeof(buf))
		return bad("--ip: '%s' is not A.B.C.D/PREFIX", s);
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (parse_ip(buf, ret_ip) < 0)
		return bad("--ip: '%s' is not an IPv4 address", buf);
	if (parse_uint("--ip prefix", slash + 1, 1, 32, &prefix) < 0)
		return -1;
	*ret_mask = prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix);
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned b[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6 ||
	    strlen(s) != 17)
		return bad("--mac: '%s' is not a MAC like 52:54:00:12:34:56", s);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	if (mac[0] & 1)
		return bad("--mac: %s is a multicast address", s);
	return 0;
}

static void fmt_ip(uint32_t ip, char buf[16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

static void fmt_mac(const uint8_t *m, char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* The Internet checksum (RFC 1071) over @len bytes. */
static uint16_t inet_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	while (len > 1) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* ---- attaching ---- */

static int set_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Waits for a non-blocking connect to finish, at most @timeout seconds. */
static int finish_connect(int fd, double timeout)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int r;

	do
		r = poll(&p, 1, (int)(timeout * 1000));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	return sn_sock_connect_result(fd);
}

static int attach(struct station *st)
{
	static const int types[] = {[KIND_STREAM] = SOCK_STREAM, [KIND_DGRAM] = SOCK_DGRAM,
				    [KIND_SEQPACKET] = SOCK_SEQPACKET};
	struct sn_sockaddr addr, local;
	struct sn_error err;
	struct timeval tv = {.tv_sec = 2};
	int r;

	if (sn_sockaddr_parse(st->connect, "--connect", true, &addr, &err) < 0)
		return bad("%s", err.msg);
	if (st->kind != KIND_STREAM && !sn_sockaddr_is_unix(&addr))
		return bad("--connect: %s sockets take a unix path, not '%s'",
			   st->kind == KIND_DGRAM ? "dgram" : "seqpacket", st->connect);
	if (st->kind == KIND_DGRAM) {
		if (!st->local)
			return bad("--kind dgram needs --local PATH to receive replies on");
		if (sn_sockaddr_parse(st->local, "--local", true, &local, &err) < 0)
			return bad("%s", err.msg);
		if (!sn_sockaddr_is_unix(&local))
			return bad("--local: '%s' is not a unix path", st->local);
		r = sn_sock_listen(&local, SOCK_DGRAM, NULL, &err);
		if (r < 0)
			return bad("--local: %s", err.msg);
		st->fd = r;
		st->local_bound = true;
		if (connect(st->fd, &addr.u.sa, addr.len) < 0)
			return bad("cannot connect to %s: %s", st->connect, strerror(errno));
	} else {
		r = sn_sock_connect(&addr, types[st->kind]);
		if (r < 0)
			return bad("cannot connect to %s: %s", st->connect, strerror(-r));
		st->fd = r;
		r = finish_connect(st->fd, st->timeout);
		if (r < 0)
			return bad("cannot connect to %s: %s", st->connect, strerror(-r));
	}
	/* Blocking writes keep stream records whole; reads happen only after poll() says so. The
	 * send timeout turns a switch that stopped reading into an error instead of a hang. */
	r = set_blocking(st->fd);
	if (r < 0)
		return bad("fcntl: %s", strerror(-r));
	setsockopt(st->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (st->kind == KIND_STREAM && sn_streambuf_init(&st->rx, 0) < 0)
		return bad("out of memory");
	return 0;
}

/* ---- sending ---- */

static void send_frame(struct station *st, uint8_t *frame, size_t len)
{
	uint8_t hdr[4];
	ssize_t n;

	if (len < ETH_ZLEN) {
		memset(frame + len, 0, ETH_ZLEN - len);
		len = ETH_ZLEN;
	}
	if (st->kind == KIND_STREAM) {
		size_t hl = sn_framing_hdr_len(st->framing);
		struct iovec iov[2] = {{hdr, hl}, {frame, len}};
		size_t total = hl + len, done = 0;

		sn_framing_put(st->framing, hdr, (uint32_t)len);
		while (done < total) {
			struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};

			n = sendmsg(st->fd, &mh, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				bad("%s: write failed: %s", st->connect,
				    n < 0 ? strerror(errno) : "no progress");
				st->fatal = 1;
				return;
			}
			done += (size_t)n;
			/* a short write: step the iovecs past what went out */
			for (int i = 0; i < 2; i++) {
				size_t k = SN_MIN((size_t)n, iov[i].iov_len);

				iov[i].iov_base = (uint8_t *)iov[i].iov_base + k;
				iov[i].iov_len -= k;
				n -= (ssize_t)k;
			}
		}
		return;
	}
	do
		n = send(st->fd, frame, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && st->kind == KIND_SEQPACKET && (errno == EPIPE || errno == ECONNRESET)) {
		bad("%s closed the connection", st->connect);
		st->fatal = 1;
	}
	/* dgram: a switch that is not there right now loses the frame, as a cable would */
}

static uint8_t *eth_hdr(struct station *st, const uint8_t *dst, uint16_t type)
{
	uint8_t *f = st->tx;

	memcpy(f, dst, 6);
	memcpy(f + 6, st->mac, 6);
	sn_put_be16(f + 12, type);
	return f + SN_ETH_HLEN;
}

static void send_arp(struct station *st, uint16_t op, const uint8_t *dst_mac, const uint8_t *tha, uint32_t tpa)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t *a = eth_hdr(st, dst_mac ? dst_mac : bcast, ETH_P_ARP);

	sn_put_be16(a, 1);          /* Ethernet */
	sn_put_be16(a + 2, ETH_P_IPV4);
	a[4] = 6;
	a[5] = 4;
	sn_put_be16(a + 6, op);
	memcpy(a + 8, st->mac, 6);
	sn_put_be32(a + 14, st->ip);
	if (tha)
		memcpy(a + 18, tha, 6);
	else
		memset(a + 18, 0, 6);
	sn_put_be32(a + 24, tpa);
	send_frame(st, st->tx, SN_ETH_HLEN + ARP_LEN);
}

/* Writes an IPv4 header for a @proto payload of @len bytes; returns where the payload starts. */
static uint8_t *ip_hdr_proto(struct station *st, const uint8_t *dst_mac, uint32_t dst_ip, uint8_t proto,
			     size_t len)
{
	uint8_t *ip = eth_hdr(st, dst_mac, ETH_P_IPV4);

	ip[0] = 0x45;
	ip[1] = 0;
	sn_put_be16(ip + 2, (uint16_t)(IP_HLEN + len));
	sn_put_be16(ip + 4, st->ip_id++);
	sn_put_be16(ip + 6, 0x4000); /* DF: the station never fragments */
	ip[8] = TTL;
	ip[9] = proto;
	sn_put_be16(ip + 10, 0);
	sn_put_be32(ip + 12, st->ip);
	sn_put_be32(ip + 16, dst_ip);
	sn_put_be16(ip + 10, inet_csum(ip, IP_HLEN));
	return ip + IP_HLEN;
}

/* The same for ICMP. */
static uint8_t *ip_hdr(struct station *st, const uint8_t *dst_mac, uint32_t dst_ip, size_t icmp_len)
{
	return ip_hdr_proto(st, dst_mac, dst_ip, 1, icmp_len);
}

static void send_echo(struct station *st)
{
	size_t icmp_len = ICMP_HLEN + st->size;
	uint8_t *icmp = ip_hdr(st, st->peer_mac, st->peer_ip, icmp_len);
	uint16_t seq = (uint16_t)(st->sent + 1);

	icmp[0] = 8;
	icmp[1] = 0;
	sn_put_be16(icmp + 2, 0);
	sn_put_be16(icmp + 4, st->icmp_id);
	sn_put_be16(icmp + 6, seq);
	/* the payload pattern lets a reply with a mangled payload be told apart */
	for (size_t i = 0; i < st->size; i++)
		icmp[ICMP_HLEN + i] = (uint8_t)(i + seq);
	sn_put_be16(icmp + 2, inet_csum(icmp, icmp_len));
	st->sent_at[st->sent] = now();
	st->sent++;
	send_frame(st, st->tx, SN_ETH_HLEN + IP_HLEN + icmp_len);
}

/* ---- DHCP client (RFC 2131, RFC 2132 options) ---- */

/* The ones' complement sum of @len bytes added to @sum, unfolded. */
static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len)
{
	while (len > 1) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

/* DISCOVER (1) or REQUEST (3) from 0.0.0.0 to everyone, asking for a broadcast answer: a
 * station without an address could not take a unicast one. */
static void send_dhcp(struct station *st, uint8_t type)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t *udp = ip_hdr_proto(st, bcast, 0xffffffffu, 17, UDP_HLEN + BOOTP_LEN);
	uint8_t *b = udp + UDP_HLEN, *o, *ip = udp - IP_HLEN;
	uint32_t sum;
	uint16_t c;

	memset(b, 0, BOOTP_LEN);
	b[0] = 1;                       /* BOOTREQUEST */
	b[1] = 1;                       /* Ethernet */
	b[2] = 6;
	sn_put_be32(b + 4, st->xid);
	sn_put_be16(b + 10, 0x8000);    /* the broadcast flag */
	memcpy(b + 28, st->mac, 6);
	sn_put_be32(b + 236, DHCP_COOKIE);
	o = b + 240;
	*o++ = 53, *o++ = 1, *o++ = type;
	*o++ = 61, *o++ = 7, *o++ = 1;  /* client identifier: hardware type 1 and the MAC */
	memcpy(o, st->mac, 6);
	o += 6;
	if (type == 3) {
		*o++ = 50, *o++ = 4;
		sn_put_be32(o, st->offered);
		o += 4;
		*o++ = 54, *o++ = 4;
		sn_put_be32(o, st->server);
		o += 4;
	}
	*o++ = 55, *o++ = 4, *o++ = 1, *o++ = 3, *o++ = 6, *o++ = 51; /* mask, router, DNS, lease time */
	*o = 255;
	sn_put_be16(udp, 68);
	sn_put_be16(udp + 2, 67);
	sn_put_be16(udp + 4, UDP_HLEN + BOOTP_LEN);
	sn_put_be16(udp + 6, 0);
	sum = sum16(0, ip + 12, 8) + 17 + UDP_HLEN + BOOTP_LEN;
	sum = sum16(sum, udp, UDP_HLEN + BOOTP_LEN);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	c = (uint16_t)~sum;
	sn_put_be16(udp + 6, c ? c : 0xffff);
	send_frame(st, st->tx, SN_ETH_HLEN + IP_HLEN + UDP_HLEN + BOOTP_LEN);
}

static void print_lease_json(struct station *st)
{
	char a[16];

	fmt_ip(st->ip, a);
	printf("\"lease\":{\"ip\":\"%s\",\"prefix\":%d,", a, __builtin_popcount(st->mask));
	fmt_ip(st->router, a);
	printf(st->router ? "\"router\":\"%s\"," : "\"router\":null,", a);
	printf("\"dns\":[");
	for (unsigned i = 0; i < st->ndns; i++) {
		fmt_ip(st->dns[i], a);
		printf("%s\"%s\"", i ? "," : "", a);
	}
	fmt_ip(st->server, a);
	printf("],\"server\":\"%s\",\"lease_time\":%u}", a, st->lease_time);
}

/* The ACK came: take the address and go on with what the command line asked for. */
static void lease_taken(struct station *st)
{
	char ip[16], router[16], dns[DHCP_MAX_DNS * 16 + 8] = "", server[16];
	double t = now();

	st->leased = true;
	fmt_ip(st->ip, ip);
	fmt_ip(st->router, router);
	fmt_ip(st->server, server);
	for (unsigned i = 0; i < st->ndns; i++) {
		size_t n = strlen(dns);

		if (i)
			dns[n++] = ',';
		fmt_ip(st->dns[i], dns + n);
	}
	if (st->json && !st->ping_gateway && !st->peer_ip) {
		printf("{");
		print_lease_json(st);
		printf("}\n");
	} else if (!st->quiet && !st->json) {
		printf("lease %s/%d router %s dns %s server %s time %u s\n", ip, __builtin_popcount(st->mask),
		       st->router ? router : "-", st->ndns ? dns : "-", server, st->lease_time);
	}
	fflush(stdout);
	if (st->ping_gateway) {
		if (!st->router) {
			bad("--ping-gateway: the DHCP server gave no router");
			st->fatal = 1;
			return;
		}
		st->peer_ip = st->router;
	}
	if (st->peer_ip) {
		char peer[16];

		fmt_ip(st->peer_ip, peer);
		if (st->peer_ip == st->ip || (st->peer_ip & st->mask) != (st->ip & st->mask)) {
			bad("--ping: %s is %s", peer,
			    st->peer_ip == st->ip ? "the leased address" : "not on the leased subnet");
			st->fatal = 1;
			return;
		}
		if (!st->quiet && !st->json)
			printf("PING %s %u(%u) bytes of data.\n", peer, st->size, st->size + IP_HLEN + ICMP_HLEN);
		fflush(stdout);
		st->phase = PH_RESOLVE;
		st->next_arp = t;
		st->resolve_deadline = t + st->timeout;
	} else {
		st->phase = PH_SERVE;
		st->serve_deadline = st->serve > 0 ? t + st->serve : -1;
	}
	send_arp(st, 1, NULL, NULL, st->ip); /* tells the switch where this MAC lives now */
}

static void on_dhcp(struct station *st, const uint8_t *b, size_t len)
{
	uint32_t server = 0, mask = 0, router = 0, lease = 0, dns[DHCP_MAX_DNS], yiaddr;
	unsigned ndns = 0;
	int type = 0;

	if (len < 240 || b[0] != 2 || sn_get_be32(b + 4) != st->xid || memcmp(b + 28, st->mac, 6) ||
	    sn_get_be32(b + 236) != DHCP_COOKIE)
		return;
	for (size_t i = 240; i < len && b[i] != 255;) {
		size_t olen;
		const uint8_t *v;

		if (b[i] == 0) {
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + (olen = b[i + 1]) > len)
			return;
		v = b + i + 2;
		switch (b[i]) {
		case 53:
			type = olen >= 1 ? v[0] : 0;
			break;
		case 54:
			server = olen == 4 ? sn_get_be32(v) : 0;
			break;
		case 1:
			mask = olen == 4 ? sn_get_be32(v) : 0;
			break;
		case 3:
			router = olen >= 4 ? sn_get_be32(v) : 0; /* the first of the list */
			break;
		case 6:
			for (size_t k = 0; k + 4 <= olen && ndns < DHCP_MAX_DNS; k += 4)
				dns[ndns++] = sn_get_be32(v + k);
			break;
		case 51:
			lease = olen == 4 ? sn_get_be32(v) : 0;
			break;
		}
		i += 2 + olen;
	}
	yiaddr = sn_get_be32(b + 16);
	if (!server)
		server = sn_get_be32(b + 20);
	if (type == 2 && !st->requesting) {
		if (!yiaddr || yiaddr == 0xffffffffu || !server)
			return;
		st->offered = yiaddr;
		st->server = server;
		st->requesting = true;
		send_dhcp(st, 3);
		st->dhcp_next = now() + DHCP_RETRY;
	} else if (type == 6 && st->requesting && server == st->server) {
		/* refused: start over with a new transaction */
		st->requesting = false;
		st->xid++;
		st->dhcp_next = now();
	} else if (type == 5 && st->requesting && yiaddr == st->offered && server == st->server) {
		/* /32 or shorter: a mask that is not contiguous ones is a server bug, so use /24 */
		if (!mask || (~mask & (~mask + 1)))
			mask = 0xffffff00u;
		st->ip = yiaddr;
		st->mask = mask;
		st->router = router;
		memcpy(st->dns, dns, ndns * sizeof(*dns));
		st->ndns = ndns;
		st->lease_time = lease;
		lease_taken(st);
	}
}

/* ---- receiving ---- */

static void learn_peer(struct station *st, const uint8_t *mac)
{
	if (st->peer_known)
		return;
	memcpy(st->peer_mac, mac, 6);
	st->peer_known = true;
	if (st->phase == PH_RESOLVE) {
		st->phase = PH_PING;
		st->next_send = now();
	}
}

static void on_arp(struct station *st, const uint8_t *eth, const uint8_t *a, size_t len)
{
	uint16_t op;
	uint32_t spa, tpa;

	if (len < ARP_LEN || sn_get_be16(a) != 1 || sn_get_be16(a + 2) != ETH_P_IPV4 || a[4] != 6 || a[5] != 4)
		return;
	op = sn_get_be16(a + 6);
	spa = sn_get_be32(a + 14);
	tpa = sn_get_be32(a + 24);
	if (st->peer_ip && spa == st->peer_ip && !(a[8] & 1) && (op == 1 || op == 2))
		learn_peer(st, a + 8);
	if (op == 1 && st->ip && tpa == st->ip && spa != st->ip) {
		uint8_t sha[6];

		memcpy(sha, a + 8, 6); /* the reply is built in st->tx, never over the request */
		send_arp(st, 2, eth + 6, sha, spa);
	}
}

static void on_echo_reply(struct station *st, const uint8_t *ip, const uint8_t *icmp, size_t icmp_len)
{
	uint16_t seq = sn_get_be16(icmp + 6);
	char from[16];
	double rtt;

	if (sn_get_be16(icmp + 4) != st->icmp_id || seq == 0 || seq > st->sent || st->got[seq - 1] ||
	    icmp_len != ICMP_HLEN + st->size || sn_get_be32(ip + 12) != st->peer_ip)
		return;
	for (size_t i = 0; i < st->size; i++)
		if (icmp[ICMP_HLEN + i] != (uint8_t)(i + seq))
			return;
	rtt = (now() - st->sent_at[seq - 1]) * 1000.0;
	st->got[seq - 1] = true;
	st->received++;
	if (st->received == 1 || rtt < st->rtt_min)
		st->rtt_min = rtt;
	if (st->received == 1 || rtt > st->rtt_max)
		st->rtt_max = rtt;
	st->rtt_sum += rtt;
	if (!st->quiet && !st->json) {
		fmt_ip(st->peer_ip, from);
		printf("%zu bytes from %s: icmp_seq=%u ttl=%u time=%.3f ms\n", icmp_len, from, seq, ip[8], rtt);
		fflush(stdout);
	}
}

static void on_ipv4(struct station *st, const uint8_t *eth, const uint8_t *ip, size_t len)
{
	size_t ihl, tot;
	const uint8_t *icmp;
	size_t icmp_len;

	if (len < IP_HLEN || ip[0] >> 4 != 4)
		return;
	ihl = (size_t)(ip[0] & 0xf) * 4;
	tot = sn_get_be16(ip + 2);
	if (ihl < IP_HLEN || tot < ihl || tot > len || inet_csum(ip, ihl) != 0)
		return;
	if (st->phase == PH_DHCP) {
		if (ip[9] == 17 && tot >= ihl + UDP_HLEN && !(sn_get_be16(ip + 6) & 0x3fff) &&
		    sn_get_be16(ip + ihl + 2) == 68)
			on_dhcp(st, ip + ihl + UDP_HLEN, tot - ihl - UDP_HLEN);
		return;
	}
	if (sn_get_be32(ip + 16) != st->ip || ip[9] != 1 || (sn_get_be16(ip + 6) & 0x3fff))
		return; /* not ours, not ICMP, or a fragment: a station this small does not reassemble */
	icmp = ip + ihl;
	icmp_len = tot - ihl;
	if (icmp_len < ICMP_HLEN || inet_csum(icmp, icmp_len) != 0)
		return;
	if (icmp[0] == 8 && icmp[1] == 0) {
		uint8_t *out;
		uint8_t dst_mac[6];
		uint32_t src = sn_get_be32(ip + 12);

		memcpy(dst_mac, eth + 6, 6);
		/* the request lives in a receive buffer, never in st->tx, so it survives the build */
		out = ip_hdr(st, dst_mac, src, icmp_len);
		memcpy(out, icmp, icmp_len);
		out[0] = 0;
		sn_put_be16(out + 2, 0);
		sn_put_be16(out + 2, inet_csum(out, icmp_len));
		send_frame(st, st->tx, SN_ETH_HLEN + IP_HLEN + icmp_len);
	} else if (icmp[0] == 0 && icmp[1] == 0 && st->peer_ip && st->phase == PH_PING) {
		on_echo_reply(st, ip, icmp, icmp_len);
	}
}

static int on_frame(void *ctx, const uint8_t *f, uint32_t len)
{
	struct station *st = ctx;

	if (len < SN_ETH_HLEN)
		return 0;
	/* ours or broadcast; other multicast and other stations' unicast (flooded) are ignored */
	if (memcmp(f, st->mac, 6) && memcmp(f, "\xff\xff\xff\xff\xff\xff", 6))
		return 0;
	if (!memcmp(f + 6, st->mac, 6))
		return 0;
	switch (sn_get_be16(f + 12)) {
	case ETH_P_ARP:
		on_arp(st, f, f + SN_ETH_HLEN, len - SN_ETH_HLEN);
		break;
	case ETH_P_IPV4:
		on_ipv4(st, f, f + SN_ETH_HLEN, len - SN_ETH_HLEN);
		break;
	}
	return st->fatal;
}

static void on_readable(struct station *st)
{
	if (st->kind == KIND_STREAM) {
		ssize_t n = sn_streambuf_fill(&st->rx, st->fd);

		if (n == -EAGAIN || n == -EINTR)
			return;
		if (n <= 0) {
			bad("%s closed the connection%s%s", st->connect, n < 0 ? ": " : "",
			    n < 0 ? strerror((int)-n) : "");
			st->fatal = 1;
			return;
		}
		if (sn_streambuf_drain(&st->rx, st->framing, on_frame, st) == -EBADMSG) {
			bad("%s: bad %s length prefix in the stream", st->connect,
			    sn_framing_name(st->framing));
			st->fatal = 1;
		}
		return;
	}
	/* datagrams: one frame per message, straight into a buffer behind the send buffer */
	{
		uint8_t *buf = st->tx + SN_FRAME_MAX + 8;
		ssize_t n = recv(st->fd, buf, SN_FRAME_MAX, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			/* dgram: ECONNREFUSED reports an earlier send to an absent switch; harmless */
			if (st->kind == KIND_DGRAM)
				return;
			bad("%s: %s", st->connect, strerror(errno));
			st->fatal = 1;
		} else if (n == 0 && st->kind == KIND_SEQPACKET) {
			bad("%s closed the connection", st->connect);
			st->fatal = 1;
		} else {
			on_frame(st, buf, (uint32_t)n);
		}
	}
}

/* ---- the loop ---- */

/* Runs due timers and moves between phases; returns the next deadline (or -1: none). */
static double tick(struct station *st, double t)
{
	double next = -1;

	if (st->phase == PH_DHCP) {
		if (t >= st->dhcp_deadline) {
			fprintf(stderr, PROG ": no DHCP lease within %g s\n", st->timeout);
			st->dhcp_failed = true;
			st->phase = PH_DONE;
			return -1;
		}
		if (t >= st->dhcp_next) {
			send_dhcp(st, st->requesting ? 3 : 1);
			st->dhcp_next = t + DHCP_RETRY;
		}
		return SN_MIN(st->dhcp_next, st->dhcp_deadline);
	}
	if (st->phase == PH_RESOLVE) {
		if (t >= st->resolve_deadline) {
			char ip[16];

			fmt_ip(st->peer_ip, ip);
			fprintf(stderr, PROG ": no ARP reply from %s within %g s\n", ip, st->timeout);
			st->phase = PH_SERVE;
		} else {
			if (t >= st->next_arp) {
				send_arp(st, 1, NULL, NULL, st->peer_ip);
				st->next_arp = t + ARP_RETRY;
			}
			next = SN_MIN(st->next_arp, st->resolve_deadline);
		}
		if (st->phase == PH_SERVE)
			st->serve_deadline = st->serve > 0 ? t + st->serve : -1;
	}
	if (st->phase == PH_PING) {
		if (st->sent < st->count && t >= st->next_send) {
			send_echo(st);
			st->next_send = st->sent_at[st->sent - 1] + st->interval;
			if (st->sent == st->count)
				st->wait_deadline = t + st->timeout;
		}
		if (st->received == st->count || (st->sent == st->count && t >= st->wait_deadline)) {
			st->phase = PH_SERVE;
			st->serve_deadline = st->serve > 0 ? t + st->serve : -1;
		} else {
			next = st->sent < st->count ? st->next_send : st->wait_deadline;
		}
	}
	if (st->phase == PH_SERVE) {
		/* --ping without --serve ends with the pings; --serve 0 runs until a signal */
		if (st->peer_ip && !st->serve_set)
			st->phase = PH_DONE;
		else if (st->serve_deadline >= 0 && t >= st->serve_deadline)
			st->phase = PH_DONE;
		else
			next = st->serve_deadline;
	}
	return next;
}

static void run(struct station *st)
{
	struct pollfd p[2] = {{.fd = st->fd, .events = POLLIN}, {.fd = sig_pipe[0], .events = POLLIN}};
	double t = now();

	if (st->dhcp) {
		st->phase = PH_DHCP;
		st->dhcp_next = t;
		st->dhcp_deadline = t + st->timeout;
	} else if (st->peer_ip) {
		st->phase = PH_RESOLVE;
		st->next_arp = t;
		st->resolve_deadline = t + st->timeout;
	} else {
		st->phase = PH_SERVE;
		st->serve_deadline = st->serve > 0 ? t + st->serve : -1;
	}
	/* tells the switch where this MAC lives before anyone asks (--dhcp: once it has an address) */
	if (!st->dhcp)
		send_arp(st, 1, NULL, NULL, st->ip);

	while (!st->fatal) {
		double next = tick(st, now());
		int ms = -1, r;

		if (st->phase == PH_DONE || st->fatal)
			break;
		if (next >= 0) {
			double d = (next - now()) * 1000.0;

			ms = d <= 0 ? 0 : d > 1e9 ? 1000000000 : (int)d + ((double)(int)d < d);
		}
		r = poll(p, 2, ms);
		if (r < 0 && errno != EINTR) {
			bad("poll: %s", strerror(errno));
			st->fatal = 1;
			break;
		}
		if (r <= 0)
			continue;
		if (p[1].revents)
			break; /* SIGINT/SIGTERM: stop where we are and report */
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			on_readable(st);
	}
}

static void report(struct station *st)
{
	double loss = st->sent ? 100.0 * (st->sent - st->received) / st->sent : 100.0;
	char ip[16], mac[18];

	fmt_ip(st->peer_ip, ip);
	fmt_mac(st->peer_mac, mac);
	if (st->json) {
		printf("{\"transmitted\":%u,\"received\":%u,\"loss\":%g,", st->sent, st->received, loss);
		if (st->received)
			printf("\"rtt_min_ms\":%.3f,\"rtt_avg_ms\":%.3f,\"rtt_max_ms\":%.3f,", st->rtt_min,
			       st->rtt_sum / st->received, st->rtt_max);
		else
			printf("\"rtt_min_ms\":null,\"rtt_avg_ms\":null,\"rtt_max_ms\":null,");
		if (st->peer_known)
			printf("\"peer_mac\":\"%s\"", mac);
		else
			printf("\"peer_mac\":null");
		if (st->leased) {
			printf(",");
			print_lease_json(st);
		}
		printf("}\n");
	} else {
		printf("\n--- %s ping statistics ---\n", ip);
		printf("%u packets transmitted, %u received, %g%% packet loss\n", st->sent, st->received, loss);
		if (st->received)
			printf("rtt min/avg/max = %.3f/%.3f/%.3f ms\n", st->rtt_min, st->rtt_sum / st->received,
			       st->rtt_max);
	}
	fflush(stdout);
}

static void cleanup(struct station *st)
{
	if (st->fd >= 0)
		close(st->fd);
	if (st->local_bound)
		unlink(strncmp(st->local, "unix:", 5) ? st->local : st->local + 5);
	sn_streambuf_finish(&st->rx);
	free(st->tx);
	free(st->sent_at);
	free(st->got);
}

static int parse_args(struct station *st, int argc, char **argv)
{
	static const struct option opts[] = {
		{"connect", required_argument, NULL, 'c'},
		{"kind", required_argument, NULL, 'k'},
		{"framing", required_argument, NULL, 'f'},
		{"local", required_argument, NULL, 'l'},
		{"mac", required_argument, NULL, 'm'},
		{"ip", required_argument, NULL, 'i'},
		{"ping", required_argument, NULL, 'p'},
		{"dhcp", no_argument, NULL, 'D'},
		{"ping-gateway", no_argument, NULL, 'G'},
		{"count", required_argument, NULL, 'n'},
		{"interval", required_argument, NULL, 'I'},
		{"timeout", required_argument, NULL, 't'},
		{"size", required_argument, NULL, 's'},
		{"serve", required_argument, NULL, 'S'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	const char *mac = NULL, *ipnet = NULL, *framing = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "qhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			st->connect = optarg;
			break;
		case 'k':
			if (!strcmp(optarg, "stream"))
				st->kind = KIND_STREAM;
			else if (!strcmp(optarg, "dgram"))
				st->kind = KIND_DGRAM;
			else if (!strcmp(optarg, "seqpacket"))
				st->kind = KIND_SEQPACKET;
			else
				return bad("--kind: '%s' is not stream, dgram or seqpacket", optarg);
			break;
		case 'f':
			framing = optarg;
			if (sn_framing_from_name(optarg, &st->framing) < 0)
				return bad("--framing: '%s' is not qemu, hyperkit or vde", optarg);
			break;
		case 'l':
			st->local = optarg;
			break;
		case 'm':
			mac = optarg;
			break;
		case 'i':
			ipnet = optarg;
			break;
		case 'p':
			if (parse_ip(optarg, &st->peer_ip) < 0 || st->peer_ip == 0)
				return bad("--ping: '%s' is not an IPv4 address", optarg);
			break;
		case 'D':
			st->dhcp = true;
			break;
		case 'G':
			st->ping_gateway = true;
			break;
		case 'n':
			if (parse_uint("--count", optarg, 1, MAX_COUNT, &st->count) < 0)
				return -1;
			break;
		case 'I':
			if (parse_seconds("--interval", optarg, 0, &st->interval) < 0)
				return -1;
			break;
		case 't':
			if (parse_seconds("--timeout", optarg, 0.001, &st->timeout) < 0)
				return -1;
			break;
		case 's':
			if (parse_uint("--size", optarg, 0, MAX_SIZE, &st->size) < 0)
				return -1;
			break;
		case 'S':
			if (parse_seconds("--serve", optarg, 0, &st->serve) < 0)
				return -1;
			st->serve_set = true;
			break;
		case 'j':
			st->json = true;
			break;
		case 'q':
			st->quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf(PROG " %s\n", sn_version());
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s' (see --help)", argv[optind]);
	if (!st->connect)
		return bad("--connect ADDR is required (see --help)");
	if (!ipnet && !st->dhcp)
		return bad("--ip A.B.C.D/PREFIX or --dhcp is required (see --help)");
	if (ipnet && st->dhcp)
		return bad("--ip and --dhcp exclude each other");
	if (st->ping_gateway && !st->dhcp)
		return bad("--ping-gateway needs --dhcp: the gateway comes with the lease");
	if (st->ping_gateway && st->peer_ip)
		return bad("--ping-gateway and --ping exclude each other");
	if (ipnet && parse_ip_prefix(ipnet, &st->ip, &st->mask) < 0)
		return -1;
	if (framing && st->kind != KIND_STREAM)
		return bad("--framing applies to --kind stream only");
	if (st->local && st->kind != KIND_DGRAM)
		return bad("--local applies to --kind dgram only");
	if (st->peer_ip && !st->dhcp) {
		char a[16], b[16];

		fmt_ip(st->peer_ip, a);
		fmt_ip(st->ip & st->mask, b);
		if (st->peer_ip == st->ip)
			return bad("--ping: %s is this station's own address", a);
		if ((st->peer_ip & st->mask) != (st->ip & st->mask))
			return bad("--ping: %s is not on %s/%d and this station has no router", a, b,
				   __builtin_popcount(st->mask));
	}
	if (mac) {
		if (parse_mac(mac, st->mac) < 0)
			return -1;
	} else if (st->dhcp) {
		/* no address to derive it from: the process id, which stations started together differ in */
		uint32_t r = (uint32_t)getpid() * 2654435761u;

		st->mac[0] = 0x52;
		st->mac[1] = 0x54;
		st->mac[2] = 0x00;
		st->mac[3] = (r >> 24) & 0xff;
		st->mac[4] = (r >> 16) & 0xff;
		st->mac[5] = (r >> 8) & 0xff;
	} else {
		st->mac[0] = 0x52;
		st->mac[1] = 0x54;
		st->mac[2] = 0x00;
		st->mac[3] = (st->ip >> 16) & 0xff;
		st->mac[4] = (st->ip >> 8) & 0xff;
		st->mac[5] = st->ip & 0xff;
	}
	if (!st->peer_ip && !st->serve_set)
		st->serve = 0; /* only answering: until a signal */
	return 0;
}

int main(int argc, char **argv)
{
	struct station st = {
		.kind = KIND_STREAM,
		.framing = SN_FRAMING_QEMU,
		.count = 3,
		.size = 56,
		.interval = 0.2,
		.timeout = 5,
		.fd = -1,
	};
	struct sigaction sa = {.sa_handler = on_signal};
	char ip[16], mac[18];
	int status = 0;

	if (parse_args(&st, argc, argv) < 0)
		return 2;
	if (pipe(sig_pipe) < 0 || sn_fd_nonblock(sig_pipe[0]) < 0 || sn_fd_nonblock(sig_pipe[1]) < 0) {
		bad("pipe: %s", strerror(errno));
		return 2;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* the send buffer, then the datagram receive buffer; both hold a prefix and a maximal frame */
	st.tx = malloc(2 * (SN_FRAME_MAX + 8));
	st.sent_at = calloc(st.count, sizeof(*st.sent_at));
	st.got = calloc(st.count, sizeof(*st.got));
	if (!st.tx || !st.sent_at || !st.got) {
		bad("out of memory");
		cleanup(&st);
		return 2;
	}
	st.icmp_id = (uint16_t)getpid();
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		st.xid = (uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec;
	}
	st.ip_id = (uint16_t)(getpid() * 7919u);
	if (attach(&st) < 0) {
		cleanup(&st);
		return 2;
	}
	fmt_ip(st.ip, ip);
	fmt_mac(st.mac, mac);
	if (!st.quiet && st.dhcp)
		fprintf(st.json ? stderr : stdout, PROG ": %s attached to %s, asking for a DHCP lease\n", mac,
			st.connect);
	else if (!st.quiet)
		fprintf(st.json ? stderr : stdout, PROG ": %s (%s) attached to %s\n", ip, mac, st.connect);
	if (st.peer_ip && !st.dhcp && !st.quiet && !st.json) {
		char peer[16];

		fmt_ip(st.peer_ip, peer);
		printf("PING %s %u(%u) bytes of data.\n", peer, st.size, st.size + IP_HLEN + ICMP_HLEN);
	}
	fflush(stdout);

	run(&st);

	if (st.fatal)
		status = 2;
	else if (st.dhcp_failed)
		status = 1;
	else if (st.peer_ip)
		status = st.received == st.count ? 0 : 1;
	if (st.peer_ip && !st.fatal && !st.dhcp_failed)
		report(&st);
	cleanup(&st);
	return status;
}
