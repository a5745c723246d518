/* gvproxy_api.c - calls to gvproxy's HTTP API (its -listen unix socket) on the loop: expose,
 * unexpose and list port forwards. A call connects without blocking, sends its request, reads
 * until the reply is whole and hands the owner the status and body, under a deadline; whoever
 * ends it first (the reply, the deadline, a cancel) frees it. The reply parser and the reader of
 * gvproxy's JSON list are here too, tested and fuzzed alone (tests/fuzz/fuzz-gvproxy.c). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <squibnet/config.h>

#include "../json.h"
#include "../logging.h"
#include "../sock.h"
#include "../spec.h"
#include "../util.h"
#include "gvproxy_child.h"

#define API_REPLY_MAX (1024 * 1024)
#define API_RETRY 0.05 /* s between tries to reach an API socket that is not there yet */

/* ---- replies ---- */

/* Decodes a chunked body in place (only when @apply; else it only looks); returns its length,
 * or -1 when it is not whole yet. */
static ssize_t unchunk(char *body, size_t len, bool apply)
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
		if (len - in < 2 || n > len - in - 2) /* n + 2 would wrap for a huge size */
			return -1;
		if (apply)
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
	/* the status code is exactly three digits, 100 to 999 (RFC 9110 15); atoi() would wrap a
	 * longer one */
	if (strncmp(b->data, "HTTP/1.", 7) || b->data[8] != ' ' || b->data[9] < '1' || b->data[9] > '9' ||
	    !isdigit((unsigned char)b->data[10]) || !isdigit((unsigned char)b->data[11]) ||
	    isdigit((unsigned char)b->data[12]))
		return -EPROTO;
	status = (b->data[9] - '0') * 100 + (b->data[10] - '0') * 10 + (b->data[11] - '0');
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
		/* decoding moves bytes: only once the whole body is there, or the next read would
		 * find the first chunks decoded already */
		n = unchunk(b->data + hl, have, false);
		if (n < 0)
			return eof ? -EPROTO : 0;
		unchunk(b->data + hl, have, true);
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

int sn_gvproxy_reply_parse(struct sn_buf *b, bool eof, const char **ret_body, size_t *ret_len)
{
	return reply_parse(b, eof, ret_body, ret_len);
}

struct forwards_walk {
	int (*row)(const char *local, const char *remote, const char *proto, void *ctx);
	void *ctx;
};

static int forwards_row(const struct forward *f, void *arg)
{
	const struct forwards_walk *w = arg;

	return w->row(f->local, f->remote, f->proto, w->ctx);
}

int sn_gvproxy_read_forwards(const char *json,
			     int (*row)(const char *local, const char *remote, const char *proto, void *ctx),
			     void *ctx)
{
	struct forwards_walk w = {row, ctx};

	return json_forwards(json, forwards_row, &w);
}


/* ---- calls ---- */

struct sn_gvproxy_call {
	struct ev_loop *loop;
	sn_gvproxy_done_fn done;
	void *ctx;
	char api[108];
	int fd;
	bool connected;
	struct sn_sockaddr addr;
	int connect_err;           /* the last refusal while gvproxy's socket is not there yet */
	ev_io io;
	ev_timer timeout;
	ev_timer retry;
	struct sn_buf req;
	size_t req_off;
	struct sn_buf resp;
};

void sn_gvproxy_call_cancel(struct sn_gvproxy_call *a)
{
	ev_io_stop(a->loop, &a->io);
	ev_timer_stop(a->loop, &a->timeout);
	ev_timer_stop(a->loop, &a->retry);
	if (a->fd >= 0)
		close(a->fd);
	sn_buf_finish(&a->req);
	sn_buf_finish(&a->resp);
	free(a);
}

static void call_fail(struct sn_gvproxy_call *a, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Tells the owner why there is no answer, and ends the call. */
static void call_fail(struct sn_gvproxy_call *a, int code, const char *fmt, ...)
{
	char msg[sizeof(((struct sn_error *)0)->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sn_debug("gvproxy API call failed: %s", msg);
	a->done(a->ctx, code, NULL, msg);
	sn_gvproxy_call_cancel(a);
}

int sn_gvproxy_status_errno(int status, const char *body)
{
	/* gvproxy answers both of these with 500; its words are the only tell */
	if (strstr(body, "already"))
		return -EEXIST;
	if (strstr(body, "not found"))
		return -ENOENT;
	return status == 400 ? -EINVAL : status == 404 ? -ENOENT : -EIO;
}

/* Reads what gvproxy sent; hands over the reply once it is whole. */
static void call_read(struct sn_gvproxy_call *a)
{
	/* bounded, like every reader on the loop; the rest comes on the next wake-up */
	for (int round = 0; round < 16; round++) {
		char buf[4096];
		ssize_t n = recv(a->fd, buf, sizeof(buf), 0);
		const char *text;
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
		r = reply_parse(&a->resp, n == 0, &text, &len);
		if (r < 0 || (r == 0 && n == 0)) { /* at the end, "HTTP/1.1 0" would wait forever */
			call_fail(a, -EPROTO, "gvproxy API: the reply is not HTTP%s", n == 0 ? ", or cut short" : "");
			return;
		}
		if (r > 0) {
			a->done(a->ctx, r, text, NULL);
			sn_gvproxy_call_cancel(a);
			return;
		}
	}
}

static void call_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_gvproxy_call *a = w->data;

	if (!a->connected) {
		int r = sn_sock_connect_result(a->fd);

		if (r < 0) {
			call_fail(a, r, "gvproxy API at %s: %s", a->api, strerror(-r));
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
	struct sn_gvproxy_call *a = w->data;

	if (a->fd < 0)
		call_fail(a, a->connect_err, "gvproxy API at %s: %s for %.0f s", a->api, strerror(-a->connect_err),
			  SN_GVPROXY_API_TIMEOUT);
	else
		call_fail(a, -ETIMEDOUT, "gvproxy API did not answer within %.0f s", SN_GVPROXY_API_TIMEOUT);
}

/* A unix socket connects at once or not at all. Not there yet (a gvproxy just started makes its
 * API socket after it is up) or a full backlog: another try in a moment, within the deadline.
 * Returns 0 (connected, or a try is due), or what stops the call. */
static int call_connect(struct sn_gvproxy_call *a)
{
	int fd = sn_sock_connect(&a->addr, SOCK_STREAM);

	if (fd == -ENOENT || fd == -ECONNREFUSED || fd == -EAGAIN) {
		a->connect_err = fd;
		ev_timer_start(a->loop, &a->retry);
		return 0;
	}
	if (fd < 0)
		return fd;
	a->fd = fd;
	ev_io_init(&a->io, call_io_cb, fd, EV_WRITE);
	a->io.data = a;
	ev_io_start(a->loop, &a->io);
	return 0;
}

static void call_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_gvproxy_call *a = w->data;
	int r = call_connect(a);

	if (r < 0)
		call_fail(a, r, "gvproxy API at %s: %s", a->api, strerror(-r));
}

int sn_gvproxy_call(struct ev_loop *loop, const char *api, enum sn_gvproxy_op op, const char *local,
		    const char *remote, const char *proto, sn_gvproxy_done_fn done, void *ctx,
		    struct sn_gvproxy_call **ret, struct sn_error *err)
{
	static const char *const paths[] = {
		[SN_GVPROXY_EXPOSE] = "/services/forwarder/expose",
		[SN_GVPROXY_UNEXPOSE] = "/services/forwarder/unexpose",
		[SN_GVPROXY_LIST] = "/services/forwarder/all",
	};
	struct sn_gvproxy_call *a;
	struct sn_buf body;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (sn_sockaddr_unix(api, &a->addr) < 0) {
		free(a);
		return sn_error_set(err, -ENAMETOOLONG, "gvproxy API socket path too long");
	}
	a->loop = loop;
	a->done = done;
	a->ctx = ctx;
	a->fd = -1;
	sn_strlcpy(a->api, api, sizeof(a->api));
	sn_buf_init(&a->req);
	sn_buf_init(&a->resp);
	sn_buf_printf(&a->req, "%s %s HTTP/1.1\r\nHost: gvproxy\r\nUser-Agent: squibnet/%s\r\nConnection: close\r\n",
		      op == SN_GVPROXY_LIST ? "GET" : "POST", paths[op], SN_VERSION);
	if (op == SN_GVPROXY_LIST) {
		sn_buf_puts(&a->req, "\r\n");
	} else {
		sn_buf_init(&body);
		sn_buf_puts(&body, "{\"local\":");
		sn_json_quote(&body, local);
		if (op == SN_GVPROXY_EXPOSE) {
			sn_buf_puts(&body, ",\"remote\":");
			sn_json_quote(&body, remote);
		}
		sn_buf_puts(&body, ",\"protocol\":");
		sn_json_quote(&body, proto);
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
	ev_timer_init(&a->timeout, call_timeout_cb, SN_GVPROXY_API_TIMEOUT, 0);
	a->timeout.data = a;
	ev_timer_init(&a->retry, call_retry_cb, API_RETRY, 0);
	a->retry.data = a;
	r = call_connect(a);
	if (r < 0) {
		sn_buf_finish(&a->req);
		free(a);
		return sn_error_set(err, r, "gvproxy API at %s: %s", api, strerror(-r));
	}
	ev_timer_start(loop, &a->timeout);
	*ret = a;
	return 0;
}
