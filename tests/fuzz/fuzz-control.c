/* fuzz-control.c - the control protocol (control.c and the commands of capture.c and
 * gvproxy.c), a whole client session at a time.
 *
 * Input: what clients send to the control socket. A form feed (\f) ends one connection and
 * starts the next, so one input can add a port, list it and delete it; a vertical tab (\v)
 * makes the client stop sending and let the server run before it sends the rest (a request
 * cut at any byte). Each input gets a real switch with a real sn_control on the loop, and
 * every connection is a real unix socket to it.
 *
 * After a connection's bytes are out, the loop runs until the server closes the connection
 * (or a bounded number of passes: a request without its end, a live capture), then the client
 * hangs up. Oracles: whatever the server answers starts with "OK\n" or "ERR E"; a JSON body
 * (one that starts with '{') is one valid JSON document (strict RFC 8259, UTF-8 included) and
 * a newline, whatever bytes the request held; the loop always returns; everything is freed when the switch goes (LeakSanitizer). Inputs that could
 * reach outside the private directory are left out (fuzz_spec_safe() on every line). */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <squibnet/switch.h>

#include "sock.h"
#include "util.h"

#include "fuzz.h"

#define CTL_PATH "ctl.sock"
#define PASSES 64       /* loop passes a connection gets to be answered */
#define REPLY_KEEP (256 * 1024) /* bytes of each reply kept for the oracles */

static struct ev_loop *loop;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	fuzz_sandbox(argc, argv);
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		abort();
	return 0;
}

/* Every line, as the server splits requests into arguments, must be harmless as a SPEC. */
static bool input_safe(const uint8_t *data, size_t size)
{
	char line[2048];
	size_t n = 0;

	for (size_t i = 0; i <= size; i++) {
		uint8_t c = i < size ? data[i] : '\n';

		if (c == '\n' || c == '\0' || c == '\f' || c == '\v') {
			line[n] = '\0';
			if (!fuzz_spec_safe(line))
				return false;
			n = 0;
			continue;
		}
		if (n + 1 < sizeof(line))
			line[n++] = (char)c;
		else
			return false; /* longer than any SPEC: not worth the trouble */
	}
	return true;
}

struct reply {
	char head[REPLY_KEEP];
	size_t len;
	bool eof;
};

/* ---- a strict JSON checker (RFC 8259) for the replies json.c writes ---- */

static const char *json_value(const char *p, const char *end, int depth);

static const char *json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Length of the UTF-8 sequence at @p (1 to 4), or 0 when it is not valid UTF-8. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned n = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 :
		     p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	uint32_t cp;

	if (n == 0 || (size_t)(end - p) < n)
		return 0;
	for (unsigned i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (n == 3) {
		cp = (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
		if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	} else if (n == 4) {
		cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 | (uint32_t)(p[2] & 0x3f) << 6 |
		     (p[3] & 0x3f);
		if (cp < 0x10000 || cp > 0x10ffff)
			return 0;
	}
	return n;
}

static const char *json_string(const char *p, const char *end)
{
	if (p >= end || *p++ != '"')
		return NULL;
	while (p < end && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			if (++p >= end)
				return NULL;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (p + i >= end || !strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 5;
			} else if (*p && strchr("\"\\/bfnrt", *p)) {
				p++;
			} else {
				return NULL;
			}
			continue;
		}
		{
			size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)end);

			if (!n)
				return NULL;
			p += n;
		}
	}
	return p < end ? p + 1 : NULL;
}

static const char *json_number(const char *p, const char *end)
{
	const char *start;

	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (p < end && *p == '.') {
		start = ++p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == start)
			return NULL;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		start = p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == start)
			return NULL;
	}
	return p;
}

static const char *json_value(const char *p, const char *end, int depth)
{
	char open;

	p = json_ws(p, end);
	if (p >= end || depth > 32)
		return NULL;
	if (*p == '"')
		return json_string(p, end);
	if (*p == '-' || (*p >= '0' && *p <= '9'))
		return json_number(p, end);
	for (const char *const *w = (const char *const[]){"true", "false", "null", NULL}; *w; w++)
		if ((size_t)(end - p) >= strlen(*w) && !memcmp(p, *w, strlen(*w)))
			return p + strlen(*w);
	if (*p != '{' && *p != '[')
		return NULL;
	open = *p++;
	p = json_ws(p, end);
	if (p < end && *p == (open == '{' ? '}' : ']'))
		return p + 1;
	for (;;) {
		if (open == '{') {
			p = json_string(json_ws(p, end), end);
			if (!p)
				return NULL;
			p = json_ws(p, end);
			if (p >= end || *p++ != ':')
				return NULL;
		}
		p = json_value(p, end, depth + 1);
		if (!p)
			return NULL;
		p = json_ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == (open == '{' ? '}' : ']'))
			return p + 1;
		return NULL;
	}
}

/* A JSON reply (its body starts with '{') is one valid document and a newline. */
static void check_json(const struct reply *r)
{
	const char *nl = memchr(r->head, '\n', r->len), *end = r->head + r->len, *after;

	if (!r->eof || r->len > REPLY_KEEP || !nl || nl + 1 >= end || nl[1] != '{')
		return;
	after = json_value(nl + 1, end, 0);
	if (!after || after + 1 != end || *after != '\n')
		fuzz_fail("a JSON reply that is not one JSON document and a newline: '%.*s'", (int)SN_MIN(r->len, 300u),
			  r->head);
}

/* Reads what the server sent so far. */
static void drain(int fd, struct reply *r)
{
	char buf[65536];

	while (!r->eof) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return; /* EAGAIN, or a reset: the server dropped us */
		if (n == 0) {
			r->eof = true;
			return;
		}
		if (r->len < REPLY_KEEP)
			memcpy(r->head + r->len, buf, SN_MIN((size_t)n, REPLY_KEEP - r->len));
		r->len += (size_t)n;
	}
}

static void check_reply(const struct reply *r)
{
	size_t n = SN_MIN(r->len, (size_t)REPLY_KEEP);

	if (r->len == 0)
		return;
	if (n >= 3 && !memcmp(r->head, "OK\n", 3))
		return;
	if (n >= 5 && !memcmp(r->head, "ERR E", 5))
		return;
	if (n < 5 && (!memcmp(r->head, "OK\n", n) || !memcmp(r->head, "ERR E", n)))
		return; /* cut short: the server was still writing when it gave up on us */
	fuzz_fail("a reply that is neither OK nor ERR: '%.*s'", (int)n, r->head);
}

/* One connection: sends @data (split at \v), runs the loop for the answer, hangs up. */
static void session(const uint8_t *data, size_t size)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct reply r = {{0}};
	size_t off = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0)
		abort();
	memcpy(a.sun_path, CTL_PATH, sizeof(CTL_PATH));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		fuzz_fail("cannot connect to the control socket: %s", strerror(errno));
	while (off < size) {
		const uint8_t *vt = memchr(data + off, '\v', size - off);
		size_t end = vt ? (size_t)(vt - data) : size;

		while (off < end) {
			ssize_t n = send(fd, data + off, end - off, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				break; /* the server closed: the rest cannot go out */
			ev_run(loop, EVRUN_NOWAIT);
			drain(fd, &r);
			if (r.eof)
				break;
		}
		if (off < end)
			break;
		ev_run(loop, EVRUN_NOWAIT);
		drain(fd, &r);
		off = end + (vt != NULL);
	}
	for (int pass = 0; pass < PASSES && !r.eof; pass++) {
		ev_run(loop, EVRUN_NOWAIT);
		drain(fd, &r);
	}
	check_reply(&r);
	check_json(&r);
	close(fd);
	/* let the server see the hang-up and free the client */
	ev_run(loop, EVRUN_NOWAIT);
	ev_run(loop, EVRUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sn_switch_config cfg;
	struct sn_switch *sw;
	struct sn_control *ctl;
	struct sn_error err = {{0}};
	size_t off = 0;
	unsigned conns = 0;

	if (!input_safe(data, size))
		return 0;
	fuzz_enter();
	sn_switch_config_init(&cfg);
	cfg.pool_frames = 64;
	cfg.jumbo_frames = 2;
	cfg.txq_len = 16;
	if (sn_switch_create(loop, &cfg, &sw) < 0)
		abort();
	if (sn_control_create(sw, CTL_PATH, &ctl, &err) < 0)
		fuzz_fail("sn_control_create: %s", err.msg);
	/* at most 16 connections: the clients' own limit (64) is a test of its own */
	while (off <= size && conns++ < 16) {
		const uint8_t *ff = memchr(data + off, '\f', size - off);
		size_t end = ff ? (size_t)(ff - data) : size;

		session(data + off, end - off);
		if (!ff)
			break;
		off = end + 1;
	}
	sn_control_destroy(ctl);
	sn_switch_destroy(sw);
	ev_run(loop, EVRUN_NOWAIT);
	fuzz_leave();
	return 0;
}
