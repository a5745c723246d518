/* fake-gvproxy - a stand-in for gvproxy (gvisor-tap-vsock) in squibnet's tests, since Debian does
 * not package the real one.
 *
 * It takes the part of gvproxy's command line squibnet uses (-listen-stdio, -mtu, -ssh-port,
 * -listen unix://PATH, -pid-file, -debug, in Go's flag syntax) and its stdio framing (2-byte
 * little-endian lengths on stdin and stdout), and plays gvproxy's gateway 192.168.127.1
 * (5a:94:ef:e4:0c:dd): ARP, ICMP echo and a DHCP server leasing 192.168.127.2 upwards, with
 * the gateway as router and DNS. Its -listen socket serves a minimal HTTP/1.1 version of the
 * forwarder API: GET /services/forwarder/all, POST .../expose and .../unexpose with gvproxy's
 * JSON bodies (forwards are only recorded, nothing listens), plus /leases and /stats. It logs
 * to stderr in logrus' format and exits on stdin end of file and on SIGTERM, like gvproxy.
 *
 * For the tests' failure cases:
 *   FAKE_GVPROXY_CRASH_AFTER=N  die by SIGABRT after N frames from stdin (0: at start-up)
 *   FAKE_GVPROXY_HANG=1         ignore SIGTERM and stdin end of file: only SIGKILL ends it
 *   FAKE_GVPROXY_IGNORE_EOF=1   stay after stdin end of file (a signal still ends it)
 *   FAKE_GVPROXY_API_DELAY_MS=N answer each API request N ms after it came in, serving frames
 *                               and other requests meanwhile (a slow or wedged gvproxy); an
 *                               answer its client no longer waits for is logged as such
 *   FAKE_GVPROXY_OLD=1          be a gvproxy from before October 2024 (v0.7.5): -ssh-port -1 is
 *                               refused as those releases refuse it, and -version says so
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define GW_IP 0xc0a87f01u       /* 192.168.127.1 */
#define HOST_IP 0xc0a87ffeu     /* 192.168.127.254, which gvproxy also answers ARP for */
#define NET_MASK 0xffffff00u
#define FIRST_LEASE 0xc0a87f02u
#define LEASE_TIME 3600
#define MAX_FWD 64
#define MAX_LEASES 200
#define MAX_PENDING 16

static const uint8_t gw_mac[6] = {0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static unsigned mtu = 1500;
static long ssh_port = 2222;
static const char *api_path, *pid_path, *stdio_mode;
static bool debug, hang, ignore_eof;
static long crash_after = -1;
static unsigned long frames_in, bytes_in, bytes_out;
static int sig_pipe[2];

static struct {
	char local[256], remote[256], proto[16];
} fwd[MAX_FWD];
static unsigned nfwd;

static struct {
	uint8_t mac[6];
	uint32_t ip;
} leases[MAX_LEASES];
static unsigned nleases;

/* API requests read but held back by FAKE_GVPROXY_API_DELAY_MS */
static long api_delay_ms;
static struct {
	int fd;
	double due;
	char method[16], path[256], body[8193];
} pending[MAX_PENDING];
static unsigned npending;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void logmsg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logmsg(const char *level, const char *fmt, ...)
{
	char msg[1024], ts[32];
	time_t t = time(NULL);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	fprintf(stderr, "time=\"%s\" level=%s msg=\"%s\"\n", ts, level, msg);
}

static void cleanup(void)
{
	if (api_path)
		unlink(api_path);
	if (pid_path)
		unlink(pid_path);
}

static void on_signal(int sig)
{
	char c = (char)sig;

	if (write(sig_pipe[1], &c, 1) < 0) {
		/* already pending */
	}
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
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

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* ---- stdio frames ---- */

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			logmsg("error", "cannot send packets: %s", n < 0 ? strerror(errno) : "short write");
			cleanup();
			exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
}

static void send_frame(uint8_t *f, size_t len)
{
	uint8_t buf[2 + 65535];

	if (len < 60) {
		memset(f + len, 0, 60 - len);
		len = 60;
	}
	buf[0] = (uint8_t)len;
	buf[1] = (uint8_t)(len >> 8);
	memcpy(buf + 2, f, len);
	bytes_out += len;
	write_all(1, buf, len + 2);
}

/* ---- the gateway ---- */

static void on_arp(const uint8_t *f, size_t len)
{
	const uint8_t *a = f + 14;
	uint8_t out[64];
	uint32_t tpa;

	if (len < 14 + 28 || get16(a) != 1 || get16(a + 2) != 0x0800 || get16(a + 6) != 1)
		return;
	tpa = get32(a + 24);
	if (tpa != GW_IP && tpa != HOST_IP)
		return;
	memcpy(out, a + 8, 6);
	memcpy(out + 6, gw_mac, 6);
	put16(out + 12, 0x0806);
	put16(out + 14, 1);
	put16(out + 16, 0x0800);
	out[18] = 6;
	out[19] = 4;
	put16(out + 20, 2);
	memcpy(out + 22, gw_mac, 6);
	put32(out + 28, tpa);
	memcpy(out + 32, a + 8, 10); /* their MAC and IP */
	send_frame(out, 42);
}

static void ip_header(uint8_t *ip, uint32_t src, uint32_t dst, uint8_t proto, size_t payload)
{
	static uint16_t id;

	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(20 + payload));
	put16(ip + 4, id++);
	put16(ip + 6, 0);
	ip[8] = 64;
	ip[9] = proto;
	put16(ip + 10, 0);
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
}

static void on_icmp(const uint8_t *f, const uint8_t *ip, size_t ihl, size_t tot)
{
	uint8_t out[14 + 65535];
	size_t ilen = tot - ihl;
	uint8_t *o = out + 14 + 20;

	if (ilen < 8 || ip[ihl] != 8 || csum_fold(csum_add(0, ip + ihl, ilen)) != 0)
		return;
	memcpy(out, f + 6, 6);
	memcpy(out + 6, gw_mac, 6);
	put16(out + 12, 0x0800);
	memcpy(o, ip + ihl, ilen);
	o[0] = 0;
	put16(o + 2, 0);
	put16(o + 2, csum_fold(csum_add(0, o, ilen)));
	ip_header(out + 14, get32(ip + 16), get32(ip + 12), 1, ilen);
	send_frame(out, 14 + 20 + ilen);
}

static uint32_t lease_for(const uint8_t *mac)
{
	for (unsigned i = 0; i < nleases; i++)
		if (!memcmp(leases[i].mac, mac, 6))
			return leases[i].ip;
	if (nleases == MAX_LEASES)
		return 0;
	memcpy(leases[nleases].mac, mac, 6);
	leases[nleases].ip = FIRST_LEASE + nleases;
	return leases[nleases++].ip;
}

static void on_dhcp(const uint8_t *f, const uint8_t *d, size_t len)
{
	uint8_t out[14 + 20 + 8 + 300];
	uint8_t *ip = out + 14, *udp = ip + 20, *b = udp + 8, *o;
	int type = 0;
	uint32_t req_ip = 0, server = 0, yiaddr, ciaddr;
	bool broadcast;
	size_t blen;
	uint32_t sum;
	const char *what;

	if (len < 240 || d[0] != 1 || d[1] != 1 || d[2] != 6 || get32(d + 236) != 0x63825363)
		return;
	for (size_t i = 240; i < len && d[i] != 255;) {
		uint8_t code = d[i], olen;

		if (code == 0) {
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + (olen = d[i + 1]) > len)
			return;
		if (code == 53 && olen >= 1)
			type = d[i + 2];
		else if (code == 50 && olen == 4)
			req_ip = get32(d + i + 2);
		else if (code == 54 && olen == 4)
			server = get32(d + i + 2);
		i += 2u + olen;
	}
	ciaddr = get32(d + 12);
	yiaddr = lease_for(d + 28);
	if (!yiaddr)
		return;
	if (type == 1) {
		type = 2;
		what = "offer";
	} else if (type == 3) {
		uint32_t want = req_ip ? req_ip : ciaddr;

		if (server && server != GW_IP)
			return; /* the client chose another server */
		type = want == yiaddr ? 5 : 6;
		what = type == 5 ? "ack" : "nak";
	} else {
		return;
	}
	memset(b, 0, 300);
	b[0] = 2;
	b[1] = 1;
	b[2] = 6;
	memcpy(b + 4, d + 4, 4);   /* xid */
	memcpy(b + 10, d + 10, 2); /* flags */
	if (type != 6) {
		put32(b + 16, yiaddr);
		put32(b + 20, GW_IP);
	}
	memcpy(b + 28, d + 28, 16);
	put32(b + 236, 0x63825363);
	o = b + 240;
	*o++ = 53, *o++ = 1, *o++ = (uint8_t)type;
	*o++ = 54, *o++ = 4, put32(o, GW_IP), o += 4;
	if (type != 6) {
		*o++ = 51, *o++ = 4, put32(o, LEASE_TIME), o += 4;
		*o++ = 1, *o++ = 4, put32(o, NET_MASK), o += 4;
		*o++ = 3, *o++ = 4, put32(o, GW_IP), o += 4;
		*o++ = 6, *o++ = 4, put32(o, GW_IP), o += 4;
	}
	*o++ = 255;
	blen = 300;
	broadcast = (get16(d + 10) & 0x8000) || type == 6;
	memcpy(out, broadcast ? bcast : d + 28, 6);
	memcpy(out + 6, gw_mac, 6);
	put16(out + 12, 0x0800);
	put16(udp, 67);
	put16(udp + 2, 68);
	put16(udp + 4, (uint16_t)(8 + blen));
	put16(udp + 6, 0);
	ip_header(ip, GW_IP, broadcast ? 0xffffffffu : yiaddr, 17, 8 + blen);
	/* the UDP checksum over the pseudo-header */
	sum = csum_add(0, ip + 12, 8);
	sum += 17 + 8 + (uint32_t)blen;
	sum = csum_add(sum, udp, 8 + blen);
	put16(udp + 6, csum_fold(sum) ? csum_fold(sum) : 0xffff);
	if (debug)
		logmsg("debug", "dhcp %s %u.%u.%u.%u", what, yiaddr >> 24, (yiaddr >> 16) & 0xff,
		       (yiaddr >> 8) & 0xff, yiaddr & 0xff);
	send_frame(out, 14 + 20 + 8 + blen);
}

static void on_frame(const uint8_t *f, size_t len)
{
	const uint8_t *ip;
	size_t ihl, tot;

	frames_in++;
	bytes_in += len;
	if (crash_after >= 0 && frames_in >= (unsigned long)crash_after) {
		logmsg("error", "crashing after %lu frames, as FAKE_GVPROXY_CRASH_AFTER asked", frames_in);
		abort();
	}
	if (len < 14 || len > mtu + 18)
		return;
	/* gvproxy's switch hands the gateway what is addressed to it or broadcast */
	if (memcmp(f, gw_mac, 6) && memcmp(f, bcast, 6))
		return;
	if (get16(f + 12) == 0x0806) {
		on_arp(f, len);
		return;
	}
	if (get16(f + 12) != 0x0800 || len < 34)
		return;
	ip = f + 14;
	ihl = (size_t)(ip[0] & 0xf) * 4;
	tot = get16(ip + 2);
	if (ip[0] >> 4 != 4 || ihl < 20 || tot < ihl || 14 + tot > len)
		return;
	if (ip[9] == 1 && get32(ip + 16) == GW_IP)
		on_icmp(f, ip, ihl, tot);
	else if (ip[9] == 17 && tot >= ihl + 8 && get16(ip + ihl + 2) == 67)
		on_dhcp(f, ip + ihl + 8, tot - ihl - 8);
}

/* ---- the HTTP API ---- */

static void respond(int fd, int status, const char *ctype, const char *body)
{
	char head[256];
	const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 404 ? "Not Found" :
			     "Internal Server Error";
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, reason, ctype, strlen(body));

	if (send(fd, head, (size_t)n, MSG_NOSIGNAL) < 0 || send(fd, body, strlen(body), MSG_NOSIGNAL) < 0) {
		/* the tests look for this: a client that gave up closed its socket */
		if (api_delay_ms > 0)
			logmsg("warning", "api: answer not delivered, the client left: %s", strerror(errno));
	}
}

/* The string value of member @key in a flat JSON object, or "" (no escapes: tests send none). */
static void json_get(const char *body, const char *key, char *out, size_t len)
{
	char pat[64];
	const char *p, *e;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(body, pat);
	if (!p)
		return;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	if (*p++ != '"' || !(e = strchr(p, '"')) || (size_t)(e - p) >= len)
		return;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
}

static void api_request(int fd, const char *method, const char *path, const char *body)
{
	char out[MAX_FWD * 600 + 64], local[256], remote[256], proto[16];
	size_t n = 0;

	if (!strcmp(path, "/services/forwarder/all")) {
		n += (size_t)snprintf(out + n, sizeof(out) - n, "[");
		for (unsigned i = 0; i < nfwd; i++)
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s{\"local\":\"%s\",\"remote\":\"%s\",\"protocol\":\"%s\"}",
					      i ? "," : "", fwd[i].local, fwd[i].remote, fwd[i].proto);
		snprintf(out + n, sizeof(out) - n, "]\n");
		respond(fd, 200, "application/json", out);
		return;
	}
	if (!strcmp(path, "/leases")) {
		n += (size_t)snprintf(out + n, sizeof(out) - n, "{");
		for (unsigned i = 0; i < nleases && n < sizeof(out) - 64; i++) {
			const uint8_t *m = leases[i].mac;
			uint32_t a = leases[i].ip;

			n += (size_t)snprintf(out + n, sizeof(out) - n,
					      "%s\"%u.%u.%u.%u\":\"%02x:%02x:%02x:%02x:%02x:%02x\"", i ? "," : "", a >> 24,
					      (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff, m[0], m[1], m[2], m[3], m[4], m[5]);
		}
		snprintf(out + n, sizeof(out) - n, "}\n");
		respond(fd, 200, "application/json", out);
		return;
	}
	if (!strcmp(path, "/stats")) {
		snprintf(out, sizeof(out), "{\"BytesSent\":%lu,\"BytesReceived\":%lu}\n", bytes_out, bytes_in);
		respond(fd, 200, "application/json", out);
		return;
	}
	if (strcmp(path, "/services/forwarder/expose") && strcmp(path, "/services/forwarder/unexpose")) {
		respond(fd, 404, "text/plain; charset=utf-8", "404 page not found\n");
		return;
	}
	if (strcmp(method, "POST")) {
		respond(fd, 400, "text/plain; charset=utf-8", "post only\n");
		return;
	}
	json_get(body, "local", local, sizeof(local));
	json_get(body, "remote", remote, sizeof(remote));
	json_get(body, "protocol", proto, sizeof(proto));
	if (!proto[0])
		strcpy(proto, "tcp");
	if (!local[0]) {
		respond(fd, 400, "text/plain; charset=utf-8", "missing local address\n");
		return;
	}
	for (unsigned i = 0; i < nfwd; i++) {
		if (strcmp(fwd[i].local, local) || strcmp(fwd[i].proto, proto))
			continue;
		if (path[20] == 'e') { /* expose */
			snprintf(out, sizeof(out), "proxy already running for %s on %s\n", proto, local);
			respond(fd, 500, "text/plain; charset=utf-8", out);
			return;
		}
		logmsg("info", "unexpose %s %s", proto, local);
		fwd[i] = fwd[--nfwd];
		respond(fd, 200, "text/plain", "");
		return;
	}
	if (path[20] != 'e') {
		respond(fd, 500, "text/plain; charset=utf-8", "proxy not found\n");
		return;
	}
	if (!strchr(remote, ':') || nfwd == MAX_FWD) {
		snprintf(out, sizeof(out), "address %s: missing port in address\n", remote);
		respond(fd, nfwd == MAX_FWD ? 500 : 400, "text/plain; charset=utf-8", out);
		return;
	}
	snprintf(fwd[nfwd].local, sizeof(fwd[nfwd].local), "%s", local);
	snprintf(fwd[nfwd].remote, sizeof(fwd[nfwd].remote), "%s", remote);
	snprintf(fwd[nfwd].proto, sizeof(fwd[nfwd].proto), "%s", proto);
	nfwd++;
	logmsg("info", "expose %s %s -> %s", proto, local, remote);
	respond(fd, 200, "text/plain", "");
}

/* One request per connection, read with a deadline so a silent client cannot stall frames. */
static void api_serve(int lfd)
{
	struct timeval tv = {.tv_sec = 1};
	char req[16384], method[16], path[256], *end;
	size_t have = 0;
	long cl = 0;
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t n = recv(fd, req + have, sizeof(req) - 1 - have, 0);

		if (n <= 0)
			goto out;
		have += (size_t)n;
		req[have] = '\0';
		end = strstr(req, "\r\n\r\n");
		if (end) {
			char *h = strcasestr(req, "\r\nContent-Length:");

			cl = h && h < end ? strtol(h + 17, NULL, 10) : 0;
			if (cl < 0 || cl > 8192)
				goto out;
			if (have >= (size_t)(end + 4 - req) + (size_t)cl)
				break;
		}
		if (have == sizeof(req) - 1)
			goto out;
	}
	if (sscanf(req, "%15s %255s HTTP/1.", method, path) != 2) {
		respond(fd, 400, "text/plain", "bad request\n");
		goto out;
	}
	end[4 + cl] = '\0';
	if (api_delay_ms > 0 && npending < MAX_PENDING) {
		pending[npending].fd = fd;
		pending[npending].due = now() + (double)api_delay_ms / 1000;
		snprintf(pending[npending].method, sizeof(pending[npending].method), "%s", method);
		snprintf(pending[npending].path, sizeof(pending[npending].path), "%s", path);
		snprintf(pending[npending].body, sizeof(pending[npending].body), "%s", end + 4);
		npending++;
		logmsg("debug", "api: %s %s held back %ld ms", method, path, api_delay_ms);
		return;
	}
	api_request(fd, method, path, end + 4);
out:
	close(fd);
}

/* Answers the held-back requests that are due; returns the poll timeout until the next one. */
static int api_due(void)
{
	double t = now(), next = -1;

	for (unsigned i = 0; i < npending;) {
		if (pending[i].due <= t) {
			api_request(pending[i].fd, pending[i].method, pending[i].path, pending[i].body);
			close(pending[i].fd);
			pending[i] = pending[--npending];
			continue;
		}
		if (next < 0 || pending[i].due - t < next)
			next = pending[i].due - t;
		i++;
	}
	return next < 0 ? -1 : (int)(next * 1000) + 1;
}

static int api_listen(const char *url)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strncmp(url, "unix://", 7)) {
		logmsg("error", "cannot listen: unexpected scheme in %s (this stand-in knows unix:// only)", url);
		return -1;
	}
	api_path = url + 7;
	if (strlen(api_path) >= sizeof(sa.sun_path)) {
		logmsg("error", "cannot listen: path too long");
		return -1;
	}
	strcpy(sa.sun_path, api_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		logmsg("error", "cannot listen: listen unix %s: bind: %s", api_path, strerror(errno));
		api_path = NULL; /* not ours to remove */
		return -1;
	}
	return fd;
}

/* ---- command line, as Go's flag package reads it ---- */

static const char *flag_value(int argc, char **argv, int *i, const char *arg)
{
	const char *eq = strchr(arg, '=');

	if (eq)
		return eq + 1;
	if (*i + 1 >= argc) {
		fprintf(stderr, "flag needs an argument: %s\n", argv[*i]);
		exit(2);
	}
	return argv[++*i];
}

static bool flag_is(const char *arg, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(arg, name, n) && (arg[n] == '\0' || arg[n] == '=');
}

int main(int argc, char **argv)
{
	const char *listen_url = NULL, *env;
	struct pollfd p[3];
	uint8_t *rx;
	size_t have = 0;
	bool stdin_open = true;
	int lfd = -1;
	bool old = (env = getenv("FAKE_GVPROXY_OLD")) && !strcmp(env, "1");
	const char *version = old ? "v0.7.5" : "fake (squibnet test stand-in)";

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-') {
			fprintf(stderr, "unexpected argument %s\n", a);
			return 2;
		}
		a += 1 + (a[1] == '-');
		if (!strcmp(a, "version")) {
			printf("gvproxy version %s\n", version);
			return 0;
		} else if (flag_is(a, "listen-stdio")) {
			stdio_mode = flag_value(argc, argv, &i, a);
		} else if (flag_is(a, "mtu")) {
			mtu = (unsigned)strtoul(flag_value(argc, argv, &i, a), NULL, 10);
		} else if (flag_is(a, "ssh-port")) {
			ssh_port = strtol(flag_value(argc, argv, &i, a), NULL, 10);
		} else if (flag_is(a, "listen")) {
			listen_url = flag_value(argc, argv, &i, a);
		} else if (flag_is(a, "pid-file")) {
			pid_path = flag_value(argc, argv, &i, a);
		} else if (!strcmp(a, "debug") || !strcmp(a, "debug=true")) {
			debug = true;
		} else {
			fprintf(stderr, "flag provided but not defined: %s\nUsage of fake-gvproxy:\n"
				"  -listen-stdio string, -mtu int, -ssh-port int, -listen value, -pid-file string, -debug\n",
				argv[i]);
			return 2;
		}
	}
	logmsg("info", "gvproxy version %s", version);
	if (!stdio_mode || !*stdio_mode) {
		logmsg("error", "this stand-in only serves -listen-stdio");
		return 1;
	}
	if ((old || ssh_port != -1) && (ssh_port < 1024 || ssh_port > 65535)) {
		logmsg("error", "ssh-port value must be between 1024 and 65535");
		return 1;
	}
	if (mtu < 68 || mtu > 65535 - 18) {
		logmsg("error", "bad mtu %u", mtu);
		return 1;
	}
	env = getenv("FAKE_GVPROXY_CRASH_AFTER");
	if (env && *env) {
		struct rlimit none = {0, 0};

		crash_after = strtol(env, NULL, 10);
		setrlimit(RLIMIT_CORE, &none); /* a test crash leaves no core file behind */
	}
	env = getenv("FAKE_GVPROXY_HANG");
	hang = env && !strcmp(env, "1");
	env = getenv("FAKE_GVPROXY_IGNORE_EOF");
	ignore_eof = hang || (env && !strcmp(env, "1"));
	env = getenv("FAKE_GVPROXY_API_DELAY_MS");
	if (env && *env)
		api_delay_ms = strtol(env, NULL, 10);
	if (pipe(sig_pipe) < 0)
		return 1;
	signal(SIGTERM, hang ? SIG_IGN : on_signal);
	signal(SIGINT, hang ? SIG_IGN : on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (pid_path) {
		FILE *f = fopen(pid_path, "w");

		if (!f) {
			logmsg("error", "open %s: %s", pid_path, strerror(errno));
			return 1;
		}
		fprintf(f, "%d", (int)getpid());
		fclose(f);
	}
	if (listen_url && (lfd = api_listen(listen_url)) < 0) {
		cleanup();
		return 1;
	}
	logmsg("info", "waiting for clients... (mtu %u, ssh-port %ld%s%s)", mtu, ssh_port, listen_url ? ", api " : "",
	       listen_url ? listen_url : "");
	if (crash_after == 0) {
		logmsg("error", "crashing at start-up, as FAKE_GVPROXY_CRASH_AFTER=0 asked");
		abort();
	}
	rx = malloc(1 << 18);
	if (!rx)
		return 1;
	for (;;) {
		int np = 0, r;

		p[np++] = (struct pollfd){.fd = stdin_open ? 0 : -1, .events = POLLIN};
		p[np++] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
		p[np++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		r = poll(p, (nfds_t)np, api_due());
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if (p[1].revents) {
			logmsg("error", "signal caught");
			cleanup();
			return 1;
		}
		if (p[2].revents)
			api_serve(lfd);
		if (p[0].revents) {
			ssize_t n = read(0, rx + have, (1 << 18) - have);
			size_t off = 0;

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				logmsg("error", "cannot receive packets from remote, disconnecting: cannot read size from socket: %s",
				       n < 0 ? strerror(errno) : "EOF");
				if (ignore_eof) {
					stdin_open = false; /* stay: only a signal ends it now */
					continue;
				}
				cleanup();
				return 1;
			}
			have += (size_t)n;
			while (have - off >= 2) {
				size_t len = rx[off] | (size_t)rx[off + 1] << 8;

				if (have - off < 2 + len)
					break;
				on_frame(rx + off + 2, len);
				off += 2 + len;
			}
			memmove(rx, rx + off, have - off);
			have -= off;
		}
	}
	cleanup();
	return 1;
}
