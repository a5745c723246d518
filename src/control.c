/* control.c - the control socket: what squibnetctl talks to, served on the switch's own loop.
 *
 * Protocol, version 1. A client connects to the unix stream socket and sends one request:
 *
 *     SQUIBNET-CONTROL 1[ OPTION]...\n    the version line; OPTION "json" asks for JSON bodies
 *     ARGUMENT\n                          the command and its arguments, one per line
 *     ...
 *     \n                                  an empty line ends the request
 *
 * Arguments are not empty and hold no newline or NUL byte; a request is at most 64 KiB and 64
 * arguments. The server answers with one status line and a body, then closes the connection:
 *
 *     OK\n                                then the body
 *     ERR <ERRNO_NAME> <message>\n        e.g. "ERR ENOENT no port called 'vm9'", then the body
 *
 * The body runs to the end of the stream and may be binary, so a command can stream (a live
 * capture writes pcap until the client hangs up). Without "json" a body is text for people,
 * empty after ERR. With "json" it is one JSON document and a newline: {"version":1,...} after
 * OK, {"version":1,"error":{"code":"ENOENT","message":"..."}} after ERR. Another protocol
 * version gets "ERR EPROTONOSUPPORT", bytes that are not a request get "ERR EPROTO". A client
 * keeps its sending side open until it has read the reply: the server takes end of stream
 * from the client as a hang-up. "help" lists the commands.
 *
 * Most commands answer at once. A few wait on another program (the gvproxy commands ask
 * gvproxy's HTTP API): their status line comes when that answer is in, or the module's own
 * deadline passed, and the switch goes on forwarding meanwhile. A client that hangs up while
 * such a command waits cancels it.
 *
 * Every client is a small state machine on non-blocking descriptors (request, deferred, reply,
 * linger, or stream), bounded in size and time, so a slow or hostile client costs only its own
 * connection. A request must be whole within 10 s of connecting. At most 64 clients are served
 * at once; when all slots are taken, a new client closes the one idle longest (waiting for its
 * request, or lingering after its reply) rather than wait, so idle connections cannot lock the
 * next squibnetctl out; streams, deferred commands and replies on their way are never idle. A
 * deferred reply goes through the same code as an immediate one, so the bytes are the same.
 * The commands are the table at the bottom: one entry and one handler each. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "json.h"
#include "logging.h"
#include "metrics.h"
#include "sock.h"
#include "sockconn.h"
#include "hooks.h"
#include "spec.h"
#include "util.h"

#define CTL_MAGIC "SQUIBNET-CONTROL "
#define CTL_VERSION 1
#define REQ_MAX (64 * 1024)
#define ARGS_MAX 64
#define CLIENTS_MAX 64
#define STREAM_BUF_MAX (4 * 1024 * 1024) /* unsent bytes a streaming reply may queue */
#define REQUEST_TIMEOUT 10.0              /* seconds from connecting to a whole request */
#define IDLE_TIMEOUT 30.0                 /* seconds without progress on a reply or a deferred one */
#define LINGER_TIMEOUT 2.0


enum phase {
	PHASE_REQUEST, /* reading the request */
	PHASE_DEFER,   /* the request is in; its module answers later through sn_ctl_reply() */
	PHASE_REPLY,   /* sending the reply, then linger */
	PHASE_STREAM,  /* a streaming command owns the connection until the client hangs up */
	PHASE_LINGER,  /* write side shut: waiting for the client's end of stream */
};

struct sn_ctl_client;

struct sn_control {
	struct sn_switch *sw;
	struct ev_loop *loop;
	int fd;
	ev_io accept_io;
	struct sn_accept_pause pause;  /* accept() failed: the backlog would wake us forever */
	bool accepting;
	bool closing;
	dev_t dev;
	ino_t ino;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sn_ctl_client *clients;
	unsigned nclients;
	const struct sn_ctl_cmds *tables[SN_CTL_TABLES_MAX]; /* the core's first, then each module's */
	unsigned ntables;
};

struct sn_ctl_client {
	struct sn_control *ctl;
	struct sn_ctl_client *next, *prev;
	int fd;
	enum phase phase;
	bool json;
	ev_io rio, wio;
	ev_timer timer;
	struct sn_buf in;
	size_t scanned;    /* bytes of @in already searched for the end of the request */
	struct sn_buf out;
	size_t out_off;    /* bytes of @out already sent */
	/* Set by a streaming or deferring command; called once if the connection ends before the
	 * module let go of it. */
	void (*stream_end)(struct sn_ctl_client *c, void *data);
	void *stream_data;
};



static void client_free(struct sn_ctl_client *c);

/* ---- errno names ---- */

static const struct {
	int code;
	const char *name;
} errno_names[] = {
	{EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {EIO, "EIO"}, {E2BIG, "E2BIG"}, {EBADF, "EBADF"},
	{EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"}, {EBUSY, "EBUSY"}, {EEXIST, "EEXIST"},
	{ENODEV, "ENODEV"}, {ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"}, {EINVAL, "EINVAL"},
	{ENFILE, "ENFILE"}, {EMFILE, "EMFILE"}, {ENOSPC, "ENOSPC"}, {EPIPE, "EPIPE"}, {ERANGE, "ERANGE"},
	{ENAMETOOLONG, "ENAMETOOLONG"}, {ENOSYS, "ENOSYS"}, {EPROTO, "EPROTO"}, {EBADMSG, "EBADMSG"},
	{ENOTSOCK, "ENOTSOCK"}, {EPROTOTYPE, "EPROTOTYPE"}, {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
	{ENOTSUP, "ENOTSUP"}, {EAFNOSUPPORT, "EAFNOSUPPORT"}, {EADDRINUSE, "EADDRINUSE"},
	{EADDRNOTAVAIL, "EADDRNOTAVAIL"}, {ENETUNREACH, "ENETUNREACH"}, {ECONNRESET, "ECONNRESET"},
	{ENOBUFS, "ENOBUFS"}, {ENOTCONN, "ENOTCONN"}, {ETIMEDOUT, "ETIMEDOUT"},
	{ECONNREFUSED, "ECONNREFUSED"}, {EHOSTUNREACH, "EHOSTUNREACH"}, {EALREADY, "EALREADY"},
	{EINPROGRESS, "EINPROGRESS"}, {ECANCELED, "ECANCELED"}, {ECONNABORTED, "ECONNABORTED"},
};

static const char *errno_name(int code)
{
	for (size_t i = 0; i < SN_ARRAY_SIZE(errno_names); i++)
		if (errno_names[i].code == code)
			return errno_names[i].name;
	return "EIO"; /* the status line wants a name; the message still says what happened */
}

/* ---- aligned text tables ---- */


void sn_table_cell(struct sn_table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (t->failed)
		return;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **n = realloc(t->cells, cap * sizeof(*n));

		if (!n) {
			t->failed = true;
			return;
		}
		t->cells = n;
		t->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s) {
		t->failed = true;
		return;
	}
	t->cells[t->n++] = s;
}

static void table_pad(struct sn_buf *b, size_t n)
{
	static const char spaces[] = "                                ";

	while (n > 0) {
		size_t k = SN_MIN(n, sizeof(spaces) - 1);

		sn_buf_add(b, spaces, k);
		n -= k;
	}
}

static void table_row(const struct sn_table *t, struct sn_buf *b, const size_t *width, const char *const *row,
		      bool heading)
{
	for (unsigned c = 0; c < t->ncol; c++) {
		const char *s = row[c];
		bool right = t->head[c][0] == '>';
		size_t len;

		if (heading && right)
			s++;
		len = strlen(s);
		if (c > 0)
			sn_buf_add(b, "  ", 2);
		if (right)
			table_pad(b, width[c] - len);
		sn_buf_add(b, s, len);
		if (!right && c + 1 < t->ncol)
			table_pad(b, width[c] - len);
	}
	sn_buf_add(b, "\n", 1);
}

void sn_table_render(struct sn_table *t, struct sn_buf *b)
{
	size_t width[16] = {0};

	if (t->failed || t->ncol > SN_ARRAY_SIZE(width)) {
		b->failed = true;
		return;
	}
	for (unsigned c = 0; c < t->ncol && !t->no_head; c++)
		width[c] = strlen(t->head[c]) - (t->head[c][0] == '>');
	for (size_t i = 0; i < t->n; i++)
		width[i % t->ncol] = SN_MAX(width[i % t->ncol], strlen(t->cells[i]));
	if (!t->no_head)
		table_row(t, b, width, t->head, true);
	for (size_t i = 0; i + t->ncol <= t->n; i += t->ncol)
		table_row(t, b, width, (const char *const *)t->cells + i, false);
}

void sn_table_free(struct sn_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* ---- commands ---- */

static uint64_t drops_total(const struct sn_port_stats *s)
{
	return s->drop_txq_full + s->drop_runt + s->drop_oversize + s->drop_bad_framing + s->drop_no_buffer +
	       s->drop_vlan + s->drop_bad_offload;
}

static void json_port_stats(struct sn_json *j, const struct sn_port_stats *s)
{
	sn_json_begin_object(j, "stats");
	sn_json_uint(j, "rx_frames", s->rx_frames);
	sn_json_uint(j, "rx_bytes", s->rx_bytes);
	sn_json_uint(j, "tx_frames", s->tx_frames);
	sn_json_uint(j, "tx_bytes", s->tx_bytes);
	sn_json_uint(j, "drop_txq_full", s->drop_txq_full);
	sn_json_uint(j, "drop_runt", s->drop_runt);
	sn_json_uint(j, "drop_oversize", s->drop_oversize);
	sn_json_uint(j, "drop_bad_framing", s->drop_bad_framing);
	sn_json_uint(j, "drop_no_buffer", s->drop_no_buffer);
	sn_json_uint(j, "drop_vlan", s->drop_vlan);
	sn_json_uint(j, "drop_bad_offload", s->drop_bad_offload);
	sn_json_uint(j, "fdb_refused", s->fdb_refused);
	sn_json_uint(j, "rx_pauses", s->rx_pauses);
	sn_json_uint(j, "stalls", s->stalls);
	sn_json_uint(j, "fdb_entries", s->fdb_entries);
	sn_json_uint(j, "txq_depth", s->txq_depth);
	sn_json_end_object(j);
}

struct walk {
	struct sn_ctl_ctx *ctx;
	struct sn_table *t;
};

/* The VLAN text as one word for the table: "trunk 10,20 native 1 isolated" is
 * "trunk:10,20;native:1;isolated", "transparent" a dash. */
static void vlan_cell(struct sn_table *t, const char *text)
{
	char buf[1100];
	size_t n = 0;
	bool first = true;

	if (!strcmp(text, "transparent")) {
		sn_table_cell(t, "-");
		return;
	}
	for (const char *p = text; *p && n + 1 < sizeof(buf); p++) {
		if (*p != ' ') {
			buf[n++] = *p;
			continue;
		}
		/* a keyword's value follows it after ':'; words that stand alone after ';' */
		buf[n++] = first || (p[1] >= '0' && p[1] <= '9') ? ':' : ';';
		first = false;
	}
	buf[n] = '\0';
	sn_table_cell(t, "%s", buf);
}

static int ports_visit(const struct sn_port_info *p, void *arg)
{
	struct walk *w = arg;
	struct sn_json *j = w->ctx->j;
	const struct sn_port_stats *s = &p->stats;

	if (w->ctx->json) {
		sn_json_begin_object(j, NULL);
		sn_json_string(j, "name", p->name);
		sn_json_string(j, "kind", p->kind);
		sn_json_string(j, "parent", p->parent);
		sn_json_string(j, "peer", p->peer);
		sn_json_string(j, "state", sn_port_state_name(p->state));
		sn_json_uint(j, "mtu", p->mtu);
		sn_json_uint(j, "txq_len", p->txq_len);
		sn_json_string(j, "vlan", p->vlan);
		sn_json_bool(j, "rx_paused", p->rx_paused);
		sn_json_bool(j, "stalled", p->stalled);
		sn_json_string(j, "error", p->error ? p->error : "");
		sn_json_string(j, "offload_tx", p->offload_tx ? p->offload_tx : "");
		sn_json_string(j, "offload_rx", p->offload_rx ? p->offload_rx : "");
		json_port_stats(j, s);
		sn_json_end_object(j);
		return 0;
	}
	sn_table_cell(w->t, "%s", p->name);
	sn_table_cell(w->t, "%s", p->kind);
	sn_table_cell(w->t, "%s%s%s", sn_port_state_name(p->state), p->stalled ? ",stalled" : "", p->rx_paused ? ",paused" : "");
	sn_table_cell(w->t, "%u", p->mtu);
	vlan_cell(w->t, p->vlan);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->rx_frames);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->rx_bytes);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->tx_frames);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->tx_bytes);
	sn_table_cell(w->t, "%llu", (unsigned long long)drops_total(s));
	sn_table_cell(w->t, "%u", s->fdb_entries);
	if (p->error && *p->error && !strstr(p->peer, p->error)) /* a kind may show it itself */
		sn_table_cell(w->t, "%s (last error: %s)", *p->peer ? p->peer : "-", p->error);
	else
		sn_table_cell(w->t, "%s", *p->peer ? p->peer : "-");
	return 0;
}

static int cmd_ports(struct sn_ctl_ctx *ctx)
{
	static const char *const head[] = {"NAME", "KIND", "STATE", ">MTU", "VLAN", ">RX-FRAMES", ">RX-BYTES",
					   ">TX-FRAMES", ">TX-BYTES", ">DROPS", ">MACS", "PEER"};
	struct sn_table t = {.head = head, .ncol = SN_ARRAY_SIZE(head)};
	struct walk w = {ctx, &t};

	if (ctx->json) {
		sn_json_begin_array(ctx->j, "ports");
		sn_switch_foreach_port(ctx->sw, ports_visit, &w);
		sn_json_end_array(ctx->j);
		return 0;
	}
	sn_switch_foreach_port(ctx->sw, ports_visit, &w);
	sn_table_render(&t, ctx->body);
	sn_table_free(&t);
	return 0;
}

struct fdb_row {
	uint8_t mac[6];
	uint16_t vlan;
	bool is_static;
	double age;
	char port[SN_PORT_NAME_MAX];
	char dst[64];  /* behind a tunnel port: its remote endpoint for the MAC, or "" */
};

struct fdb_rows {
	struct fdb_row *v;
	size_t n, cap;
	/* fdb find: only this MAC, and only this VLAN when vlan >= 0 */
	bool filter;
	uint8_t mac[6];
	int vlan;
};

static int fdb_collect(const struct sn_fdb_info *e, void *arg)
{
	struct fdb_rows *rows = arg;
	struct fdb_row *r;

	if (rows->filter && (memcmp(e->mac, rows->mac, 6) || (rows->vlan >= 0 && e->vlan != rows->vlan)))
		return 0;
	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? rows->cap * 2 : 64;
		struct fdb_row *v = realloc(rows->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		rows->v = v;
		rows->cap = cap;
	}
	r = &rows->v[rows->n++];
	memcpy(r->mac, e->mac, 6);
	r->vlan = e->vlan;
	r->is_static = e->is_static;
	r->age = e->age;
	sn_strlcpy(r->port, e->port, sizeof(r->port));
	sn_strlcpy(r->dst, e->dst ? e->dst : "", sizeof(r->dst));
	return 0;
}

static int fdb_row_cmp(const void *a, const void *b)
{
	const struct fdb_row *x = a, *y = b;
	int r = memcmp(x->mac, y->mac, 6);

	return r ? r : (int)x->vlan - (int)y->vlan;
}

/* The FDB as a table or JSON: all of it, or what @rows filters. */
static int fdb_list(struct sn_ctl_ctx *ctx, struct fdb_rows rows)
{
	/* DST, where a tunnel port sends the MAC's frames, only when some entry has one */
	static const char *const head[] = {"MAC", ">VLAN", "PORT", "TYPE", ">AGE", "DST"};
	struct sn_table t = {.head = head, .ncol = SN_ARRAY_SIZE(head) - 1};
	struct sn_buf age;
	int r;

	/* the table is a hash: sort, so that the same state always reads the same */
	r = sn_switch_foreach_fdb(ctx->sw, fdb_collect, &rows);
	if (r < 0) {
		free(rows.v);
		return r;
	}
	if (rows.n) /* qsort's pointer must not be NULL, even for no rows */
		qsort(rows.v, rows.n, sizeof(*rows.v), fdb_row_cmp);
	for (size_t i = 0; i < rows.n; i++)
		if (rows.v[i].dst[0])
			t.ncol = SN_ARRAY_SIZE(head);
	if (ctx->json)
		sn_json_begin_array(ctx->j, "fdb");
	sn_buf_init(&age);
	for (size_t i = 0; i < rows.n; i++) {
		const struct fdb_row *e = &rows.v[i];
		char mac[18];

		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", e->mac[0], e->mac[1], e->mac[2],
			 e->mac[3], e->mac[4], e->mac[5]);
		if (ctx->json) {
			sn_json_begin_object(ctx->j, NULL);
			sn_json_string(ctx->j, "mac", mac);
			sn_json_uint(ctx->j, "vlan", e->vlan);
			sn_json_string(ctx->j, "port", e->port);
			sn_json_bool(ctx->j, "static", e->is_static);
			sn_json_decimal(ctx->j, "age", e->age, 3);
			if (e->dst[0])
				sn_json_string(ctx->j, "dst", e->dst);
			sn_json_end_object(ctx->j);
			continue;
		}
		age.len = 0;
		if (e->is_static)
			sn_buf_puts(&age, "-");
		else
			sn_buf_decimal(&age, e->age, 1);
		sn_table_cell(&t, "%s", mac);
		sn_table_cell(&t, "%u", e->vlan);
		sn_table_cell(&t, "%s", e->port);
		sn_table_cell(&t, "%s", e->is_static ? "static" : "dynamic");
		sn_table_cell(&t, "%s", age.failed ? "?" : age.data);
		if (t.ncol == SN_ARRAY_SIZE(head))
			sn_table_cell(&t, "%s", e->dst[0] ? e->dst : "-");
	}
	if (ctx->json)
		sn_json_end_array(ctx->j);
	else
		sn_table_render(&t, ctx->body);
	sn_buf_finish(&age);
	sn_table_free(&t);
	free(rows.v);
	return 0;
}

static int cmd_fdb_show(struct sn_ctl_ctx *ctx)
{
	return fdb_list(ctx, (struct fdb_rows){.vlan = -1});
}

/* "52:54:00:12:34:56" (or with '-'), a unicast address the FDB can hold. */
static int parse_mac(struct sn_ctl_ctx *ctx, const char *s, uint8_t mac[6])
{
	if (sn_mac_parse(s, mac) < 0)
		return sn_error_set(&ctx->err, -EINVAL, "'%s' is not a MAC address (52:54:00:12:34:56)", s);
	return 0;
}

/* The optional "vlan=N" after the positional arguments: @ret stays -1 without it. Where @dst
 * is not NULL, "dst=IP" (a tunnel port's remote VTEP) is taken too, and *@dst stays NULL
 * without it. */
static int parse_vlan_arg(struct sn_ctl_ctx *ctx, int first, int *ret, const char **dst)
{
	unsigned v;

	*ret = -1;
	for (int i = first; i < ctx->argc; i++) {
		if (dst && !strncmp(ctx->argv[i], "dst=", 4)) {
			*dst = ctx->argv[i] + 4;
			continue;
		}
		if (strncmp(ctx->argv[i], "vlan=", 5) || sn_parse_uint(ctx->argv[i] + 5, 0, 4095, &v) < 0)
			return sn_error_set(&ctx->err, -EINVAL, "'%s': want vlan=N (0 to 4095)%s", ctx->argv[i],
					    dst ? " or dst=IP" : "");
		*ret = (int)v;
	}
	return 0;
}

static int cmd_fdb_find(struct sn_ctl_ctx *ctx)
{
	struct fdb_rows rows = {.filter = true};
	int r = parse_mac(ctx, ctx->argv[0], rows.mac);

	if (r >= 0)
		r = parse_vlan_arg(ctx, 1, &rows.vlan, NULL);
	return r < 0 ? r : fdb_list(ctx, rows);
}

static int cmd_fdb_add(struct sn_ctl_ctx *ctx)
{
	const char *dst = NULL;
	uint8_t mac[6];
	int vlan, r = parse_mac(ctx, ctx->argv[0], mac);

	if (r >= 0)
		r = parse_vlan_arg(ctx, 2, &vlan, &dst);
	if (r < 0)
		return r;
	/* behind a tunnel port, the entry names the remote VTEP too */
	if (dst)
		return sn_switch_fdb_add_dst(ctx->sw, mac, vlan < 0 ? 0 : (uint16_t)vlan, ctx->argv[1], dst, &ctx->err);
	r = sn_switch_fdb_add_static(ctx->sw, mac, vlan < 0 ? 0 : (uint16_t)vlan, ctx->argv[1]);
	if (r == -ENOENT)
		return sn_error_set(&ctx->err, r, "no data port called '%s'", ctx->argv[1]);
	if (r == -ENOSPC)
		return sn_error_set(&ctx->err, r, "the forwarding database is full");
	if (r == -EINVAL)
		return sn_error_set(&ctx->err, r, "'%s' is a multicast address", ctx->argv[0]);
	return r;
}

static int cmd_fdb_del(struct sn_ctl_ctx *ctx)
{
	uint8_t mac[6];
	int vlan, r = parse_mac(ctx, ctx->argv[0], mac);

	if (r >= 0)
		r = parse_vlan_arg(ctx, 1, &vlan, NULL);
	if (r < 0)
		return r;
	r = sn_switch_fdb_del(ctx->sw, mac, vlan < 0 ? 0 : (uint16_t)vlan);
	if (r == -ENOENT)
		return sn_error_set(&ctx->err, r, "no entry for %s on VLAN %d", ctx->argv[0], vlan < 0 ? 0 : vlan);
	return r;
}

/* Arguments from @first on as one "key=value,..." text, quoting values that hold commas. */
static int join_keys(struct sn_ctl_ctx *ctx, int first, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = first; i < ctx->argc; i++) {
		const char *a = ctx->argv[i], *eq = strchr(a, '=');
		int n;

		if (!eq || eq == a)
			return sn_error_set(&ctx->err, -EINVAL, "'%s' is not key=value", a);
		if (strchr(eq, ',') && eq[1] != '"')
			n = snprintf(buf + off, len - off, "%s%.*s=\"%s\"", off ? "," : "", (int)(eq - a), a, eq + 1);
		else
			n = snprintf(buf + off, len - off, "%s%s", off ? "," : "", a);
		if (n < 0 || (size_t)n >= len - off)
			return sn_error_set(&ctx->err, -E2BIG, "arguments too long");
		off += (size_t)n;
	}
	return 0;
}

static int cmd_port_set(struct sn_ctl_ctx *ctx)
{
	char keys[SN_SPEC_MAX_LEN];
	int r = join_keys(ctx, 1, keys, sizeof(keys));

	return r < 0 ? r : sn_switch_port_set(ctx->sw, ctx->argv[0], keys, &ctx->err);
}

static int cmd_set(struct sn_ctl_ctx *ctx)
{
	struct sn_switch_config c;
	char keys[SN_SPEC_MAX_LEN];
	int r = join_keys(ctx, 0, keys, sizeof(keys));

	if (r >= 0 && ctx->argc)
		r = sn_switch_set(ctx->sw, keys, &ctx->err);
	if (r < 0)
		return r;
	sn_switch_get_config(ctx->sw, &c);
	if (ctx->json) {
		sn_json_begin_object(ctx->j, "settings");
		sn_json_uint(ctx->j, "fdb_aging", (uint64_t)c.fdb_aging);
		sn_json_uint(ctx->j, "fdb_max", c.fdb_max);
		sn_json_uint(ctx->j, "fdb_port_max", c.fdb_port_max);
		sn_json_bool(ctx->j, "fdb_evict", c.fdb_evict);
		sn_json_uint(ctx->j, "stall_timeout_ms", (uint64_t)(c.stall_timeout * 1000 + 0.5));
		sn_json_uint(ctx->j, "sock_buf", c.sock_buf);
		sn_json_end_object(ctx->j);
	} else {
		sn_buf_printf(ctx->body,
			      "fdb-aging=%.0f fdb-max=%u fdb-port-max=%u fdb-evict=%s stall-timeout=%.0f sock-buf=%llu\n",
			      c.fdb_aging, c.fdb_max, c.fdb_port_max, c.fdb_evict ? "on" : "off", c.stall_timeout * 1000,
			      (unsigned long long)c.sock_buf);
	}
	return 0;
}

static int cmd_fdb_flush(struct sn_ctl_ctx *ctx)
{
	const char *port = ctx->argc ? ctx->argv[0] : NULL;
	int n = sn_switch_fdb_flush(ctx->sw, port);

	if (n == -ENOENT)
		return sn_error_set(&ctx->err, n, "no port called '%s'", port);
	if (n < 0)
		return n;
	if (ctx->json)
		sn_json_uint(ctx->j, "flushed", (unsigned)n);
	else
		sn_buf_printf(ctx->body, "flushed %d %s\n", n, n == 1 ? "entry" : "entries");
	return 0;
}

static int stats_visit(const struct sn_port_info *p, void *arg)
{
	struct walk *w = arg;
	const struct sn_port_stats *s = &p->stats;

	if (w->ctx->json) {
		sn_json_begin_object(w->ctx->j, NULL);
		sn_json_string(w->ctx->j, "name", p->name);
		json_port_stats(w->ctx->j, s);
		sn_json_end_object(w->ctx->j);
		return 0;
	}
	sn_table_cell(w->t, "%s", p->name);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->drop_txq_full);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->drop_runt);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->drop_oversize);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->drop_bad_framing);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->drop_no_buffer);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->drop_bad_offload);
	sn_table_cell(w->t, "%llu", (unsigned long long)s->fdb_refused);
	sn_table_cell(w->t, "%u", s->txq_depth);
	return 0;
}

static int cmd_stats(struct sn_ctl_ctx *ctx)
{
	static const char *const sw_head[] = {"", ">"};
	static const char *const port_head[] = {"PORT", ">TXQ-FULL", ">RUNT", ">OVERSIZE", ">BAD-FRAMING",
						">NO-BUFFER", ">BAD-OFFLOAD", ">FDB-REFUSED", ">TXQ-DEPTH"};
	struct sn_table swt = {.head = sw_head, .ncol = 2, .no_head = true};
	struct sn_table pt = {.head = port_head, .ncol = SN_ARRAY_SIZE(port_head)};
	struct walk w = {ctx, &pt};
	struct sn_switch_stats st;
	struct sn_json *j = ctx->j;

	sn_switch_get_stats(ctx->sw, &st);
	if (ctx->json) {
		sn_json_begin_object(j, "switch");
		sn_json_uint(j, "unicast", st.unicast);
		sn_json_uint(j, "flooded", st.flooded);
		sn_json_uint(j, "filtered", st.filtered);
		sn_json_uint(j, "isolated", st.isolated);
		sn_json_uint(j, "fdb_refused_table", st.fdb_refused_table);
		sn_json_uint(j, "fdb_refused_port", st.fdb_refused_port);
		sn_json_uint(j, "fdb_moves", st.fdb_moves);
		sn_json_uint(j, "fdb_evicted", st.fdb_evicted);
		sn_json_uint(j, "fdb_entries", st.fdb_entries);
		sn_json_uint(j, "fdb_max", st.fdb_max);
		sn_json_uint(j, "pool_free", st.pool_free);
		sn_json_uint(j, "pool_total", st.pool_total);
		sn_json_uint(j, "ports", st.ports);
		sn_json_end_object(j);
		sn_json_begin_array(j, "ports");
		sn_switch_foreach_port(ctx->sw, stats_visit, &w);
		sn_json_end_array(j);
		return 0;
	}
	sn_table_cell(&swt, "unicast frames");
	sn_table_cell(&swt, "%llu", (unsigned long long)st.unicast);
	sn_table_cell(&swt, "flooded frames");
	sn_table_cell(&swt, "%llu", (unsigned long long)st.flooded);
	sn_table_cell(&swt, "filtered frames");
	sn_table_cell(&swt, "%llu", (unsigned long long)st.filtered);
	sn_table_cell(&swt, "fdb entries");
	sn_table_cell(&swt, "%u of %u", st.fdb_entries, st.fdb_max);
	sn_table_cell(&swt, "fdb moves");
	sn_table_cell(&swt, "%llu", (unsigned long long)st.fdb_moves);
	sn_table_cell(&swt, "fdb refused, table full");
	sn_table_cell(&swt, "%llu", (unsigned long long)st.fdb_refused_table);
	sn_table_cell(&swt, "fdb refused, port cap");
	sn_table_cell(&swt, "%llu", (unsigned long long)st.fdb_refused_port);
	if (st.fdb_evicted) {
		sn_table_cell(&swt, "fdb evicted, table full");
		sn_table_cell(&swt, "%llu", (unsigned long long)st.fdb_evicted);
	}
	sn_table_cell(&swt, "pool buffers free");
	sn_table_cell(&swt, "%u of %u", st.pool_free, st.pool_total);
	sn_table_cell(&swt, "ports");
	sn_table_cell(&swt, "%u", st.ports);
	sn_table_render(&swt, ctx->body);
	sn_table_free(&swt);
	sn_buf_puts(ctx->body, "\n");
	sn_switch_foreach_port(ctx->sw, stats_visit, &w);
	sn_table_render(&pt, ctx->body);
	sn_table_free(&pt);
	return 0;
}

/* For node_exporter's textfile collector and other scrapers: text, whatever the client asked. */
static int cmd_stats_prometheus(struct sn_ctl_ctx *ctx)
{
	if (ctx->json)
		return sn_error_set(&ctx->err, -EINVAL, "--prometheus is a text format: leave out --json");
	sn_metrics_prometheus(ctx->sw, ctx->body);
	return 0;
}

static int cmd_port_add(struct sn_ctl_ctx *ctx)
{
	char name[SN_PORT_NAME_MAX];
	int r = sn_switch_add_port(ctx->sw, ctx->argv[0], name, sizeof(name), &ctx->err);

	if (r < 0)
		return r;
	sn_debug("control: added port %s", name);
	if (ctx->json)
		sn_json_string(ctx->j, "added", name);
	else
		sn_buf_printf(ctx->body, "%s\n", name);
	return 0;
}

static int cmd_port_del(struct sn_ctl_ctx *ctx)
{
	const char *name = ctx->argv[0];
	int r = sn_switch_del_port(ctx->sw, name);

	if (r == -ENOENT)
		return sn_error_set(&ctx->err, r, "no port called '%s'", name);
	if (r < 0)
		return r;
	sn_debug("control: deleted port %s", name);
	if (ctx->json)
		sn_json_string(ctx->j, "deleted", name);
	return 0;
}

static int cmd_help(struct sn_ctl_ctx *ctx);

static const struct sn_ctl_cmd core_cmds[] = {
	{"ports", "", "list ports and listeners with their counters", 0, 0, cmd_ports},
	{"fdb show", "", "list the forwarding database", 0, 0, cmd_fdb_show},
	{"fdb flush", "[PORT]", "forget learned entries, all or one port's", 0, 1, cmd_fdb_flush},
	{"fdb add", "MAC PORT [vlan=N] [dst=IP]",
	 "pin MAC (on VLAN N) to PORT: a static entry; dst=: behind a tunnel port, the remote VTEP", 2, 4,
	 cmd_fdb_add},
	{"fdb del", "MAC [vlan=N]", "remove the entry of MAC (on VLAN N), static or learned", 1, 2, cmd_fdb_del},
	{"fdb find", "MAC [vlan=N]", "show where MAC is, on every VLAN or one", 1, 2, cmd_fdb_find},
	{"fdb", "", NULL, 0, 0, cmd_fdb_show},
	{"stats --prometheus", "", "every counter in the Prometheus text format", 0, 0, cmd_stats_prometheus},
	{"stats", "", "switch counters and per-port drops by reason", 0, 0, cmd_stats},
	{"port add", "SPEC", "add a port, KIND,key=value,... (prints its name)", 1, 1, cmd_port_add},
	{"port del", "NAME", "remove a port, or a listener with its clients", 1, 1, cmd_port_del},
	{"port set", "NAME KEY=VALUE...", "change a port's VLANs and policy (vlan=, trunk=, isolated=, ...)", 2,
	 1 + SN_SPEC_MAX_KEYS, cmd_port_set},
	{"set", "[KEY=VALUE]...", "show or change fdb-aging, fdb-max, fdb-port-max, fdb-evict, stall-timeout, sock-buf", 0,
	 SN_SPEC_MAX_KEYS, cmd_set},
	{"help", "", "list the commands", 0, 0, cmd_help},
};

static const struct sn_ctl_cmds core_table = {core_cmds, SN_ARRAY_SIZE(core_cmds)};

int sn_ctl_register(struct sn_control *ctl, const struct sn_ctl_cmds *cmds)
{
	if (ctl->ntables == SN_CTL_TABLES_MAX)
		return -ENOSPC;
	ctl->tables[ctl->ntables++] = cmds;
	return 0;
}

#define HELP_WIDTH 80 /* columns of the text "help" */
#define HELP_COL 28   /* where descriptions start; a longer usage takes a line of its own */

/* Appends @text from column @col, wrapped at blanks to HELP_WIDTH with continuation lines
 * starting at @indent; ends the line. A word longer than a line stays whole. */
static void help_wrap(struct sn_buf *b, const char *text, size_t col, size_t indent)
{
	bool first = true;

	while (*text) {
		size_t n = strcspn(text, " ");

		if (!first && col + 1 + n > HELP_WIDTH) {
			sn_buf_add(b, "\n", 1);
			table_pad(b, indent);
			col = indent;
			first = true;
		}
		if (!first) {
			sn_buf_add(b, " ", 1);
			col++;
		}
		sn_buf_add(b, text, n);
		col += n;
		first = false;
		text += n;
		text += strspn(text, " ");
	}
	sn_buf_add(b, "\n", 1);
}

/* One command of the text "help": its usage, then its description from HELP_COL. */
static void help_entry(struct sn_buf *b, const struct sn_ctl_cmd *c)
{
	struct sn_buf usage;

	sn_buf_init(&usage);
	sn_buf_printf(&usage, "%s%s%s", c->name, *c->args ? " " : "", c->args);
	if (usage.failed) {
		b->failed = true;
	} else if (usage.len + 2 <= HELP_COL) {
		sn_buf_add(b, usage.data, usage.len);
		table_pad(b, HELP_COL - usage.len);
		help_wrap(b, c->help, HELP_COL, HELP_COL);
	} else {
		help_wrap(b, usage.data, 0, 4);
		table_pad(b, HELP_COL);
		help_wrap(b, c->help, HELP_COL, HELP_COL);
	}
	sn_buf_finish(&usage);
}

static int cmd_help(struct sn_ctl_ctx *ctx)
{
	if (ctx->json)
		sn_json_begin_array(ctx->j, "commands");
	for (size_t k = 0; k < ctx->client->ctl->ntables; k++)
	for (size_t i = 0; i < ctx->client->ctl->tables[k]->n; i++) {
		const struct sn_ctl_cmd *c = &ctx->client->ctl->tables[k]->cmds[i];

		if (!c->help)
			continue;
		if (ctx->json) {
			struct sn_buf usage;

			sn_buf_init(&usage);
			sn_buf_printf(&usage, "%s%s%s", c->name, *c->args ? " " : "", c->args);
			sn_json_begin_object(ctx->j, NULL);
			sn_json_string(ctx->j, "name", c->name);
			sn_json_string(ctx->j, "usage", usage.failed ? c->name : usage.data);
			sn_json_string(ctx->j, "help", c->help);
			sn_json_end_object(ctx->j);
			sn_buf_finish(&usage);
			continue;
		}
		help_entry(ctx->body, c);
	}
	if (ctx->json)
		sn_json_end_array(ctx->j);
	return 0;
}

/* The same tables sn_control_create() registers, in the same order. */
SN_EXPORT int sn_control_foreach_command(int (*visit)(const struct sn_control_command_info *, void *), void *ctx)
{
	const struct sn_ctl_cmds *first[] = {&core_table, NULL};
	const struct sn_ctl_cmds *const *lists[] = {first, sn_ctl_modules};

	for (size_t l = 0; l < SN_ARRAY_SIZE(lists); l++)
	for (const struct sn_ctl_cmds *const *t = lists[l]; *t; t++)
	for (size_t i = 0; i < (*t)->n; i++) {
		const struct sn_ctl_cmd *c = &(*t)->cmds[i];
		struct sn_control_command_info info = {c->name, c->args, c->help};
		int r;

		if (!c->help)
			continue;
		r = visit(&info, ctx);
		if (r)
			return r;
	}
	return 0;
}

/* How many leading arguments spell @name (its words one per argument), or 0 for no match. */
static int cmd_match(const char *name, int argc, char **argv)
{
	int k = 0;

	while (*name) {
		size_t n = strcspn(name, " ");

		if (k >= argc || strlen(argv[k]) != n || memcmp(argv[k], name, n))
			return 0;
		k++;
		name += n;
		name += *name == ' ';
	}
	return k;
}

/* ---- clients ---- */

/* Queues bytes for the client; they go out from its write watcher. -ENOBUFS when a streaming
 * client already has STREAM_BUF_MAX unsent (the caller drops and counts), -ENOMEM. */
int sn_ctl_send(struct sn_ctl_client *c, const void *data, size_t len)
{
	if (c->phase == PHASE_STREAM && c->out.len - c->out_off + len > STREAM_BUF_MAX)
		return -ENOBUFS;
	sn_buf_add(&c->out, data, len);
	if (c->out.failed)
		return -ENOMEM;
	ev_io_start(c->ctl->loop, &c->wio);
	return 0;
}

void sn_ctl_set_stream_end(struct sn_ctl_client *c, void (*end)(struct sn_ctl_client *c, void *data), void *data)
{
	c->stream_end = end;
	c->stream_data = data;
}

static void client_reply_start(struct sn_ctl_client *c, enum phase phase)
{
	struct ev_loop *loop = c->ctl->loop;

	c->phase = phase;
	if (phase == PHASE_REPLY) {
		/* stop reading: a client may shut down its side once the request is out */
		ev_io_stop(loop, &c->rio);
		c->timer.repeat = IDLE_TIMEOUT;
		ev_timer_again(loop, &c->timer);
	} else {
		/* streaming has no deadline; reading on only to notice the hang-up */
		ev_timer_stop(loop, &c->timer);
	}
	ev_io_start(loop, &c->wio);
}

void sn_ctl_stream_close(struct sn_ctl_client *c)
{
	c->stream_end = NULL;
	if (c->phase != PHASE_STREAM)
		return;
	client_reply_start(c, PHASE_REPLY);
	/* a reader that stopped reading must not hold the connection forever */
	c->timer.repeat = IDLE_TIMEOUT;
	ev_timer_again(c->ctl->loop, &c->timer);
}

static void client_error(struct sn_ctl_client *c, int code, const char *msg)
{
	struct sn_buf *o = &c->out;

	if (!*msg)
		msg = strerror(-code);
	sn_buf_printf(o, "ERR %s ", errno_name(-code));
	/* the message must stay on the status line */
	for (const char *p = msg; *p; p += strcspn(p, "\r\n")) {
		if (*p == '\r' || *p == '\n') {
			sn_buf_add(o, " ", 1);
			p++;
			continue;
		}
		sn_buf_add(o, p, strcspn(p, "\r\n"));
	}
	sn_buf_add(o, "\n", 1);
	if (c->json) {
		struct sn_json j;

		sn_json_init(&j, o);
		sn_json_begin_object(&j, NULL);
		sn_json_uint(&j, "version", CTL_VERSION);
		sn_json_begin_object(&j, "error");
		sn_json_string(&j, "code", errno_name(-code));
		sn_json_string(&j, "message", msg);
		sn_json_end_object(&j);
		sn_json_end_object(&j);
		sn_buf_add(o, "\n", 1);
	}
	client_reply_start(c, PHASE_REPLY);
}

static int client_fail(struct sn_ctl_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Replies ERR; returns @code. */
static int client_fail(struct sn_ctl_client *c, int code, const char *fmt, ...)
{
	char msg[sizeof(((struct sn_error *)0)->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sn_debug("control: refusing a request: %s", msg);
	client_error(c, code, msg);
	return code;
}

/* Starts a reply's body, the one place the JSON envelope is opened: what a handler, or the
 * builder of a deferred reply, fills in. */
static void reply_open(struct sn_ctl_client *c, struct sn_ctl_ctx *ctx, struct sn_buf *body,
		       struct sn_json *j)
{
	*ctx = (struct sn_ctl_ctx){.sw = c->ctl->sw, .client = c, .json = c->json, .body = body, .j = j};
	sn_buf_init(body);
	sn_json_init(j, body);
	if (c->json) {
		sn_json_begin_object(j, NULL);
		sn_json_uint(j, "version", CTL_VERSION);
	}
}

/* Sends the reply that @r, what a handler or builder returned, calls for, and frees the body:
 * the one place a reply is closed, for immediate and deferred replies alike. */
static void reply_close(struct sn_ctl_client *c, struct sn_ctl_ctx *ctx, int r)
{
	struct sn_buf *body = ctx->body;

	if (r == SN_CTL_DEFER) {
		/* read on, only to notice a client that leaves; the idle timer bounds the wait */
		c->phase = PHASE_DEFER;
		c->timer.repeat = IDLE_TIMEOUT;
		ev_timer_again(c->ctl->loop, &c->timer);
		sn_buf_finish(body);
		return;
	}
	if (r != SN_CTL_STREAM)
		c->stream_end = NULL; /* a finished reply leaves the module nothing to hear about */
	if (r >= 0 && body->failed)
		r = sn_error_set(&ctx->err, -ENOMEM, "out of memory while building the reply");
	if (r < 0) {
		client_error(c, r, ctx->err.msg);
	} else {
		if (c->json && r != SN_CTL_STREAM) {
			sn_json_end_object(ctx->j);
			sn_buf_add(body, "\n", 1);
		}
		if (sn_ctl_send(c, "OK\n", 3) < 0 || sn_ctl_send(c, body->data, body->len) < 0)
			c->out.failed = true; /* cannot even say so: client_write_cb ends it */
		client_reply_start(c, r == SN_CTL_STREAM ? PHASE_STREAM : PHASE_REPLY);
	}
	sn_buf_finish(body);
}

void sn_ctl_reply(struct sn_ctl_client *c, sn_ctl_build_fn build, void *data)
{
	struct sn_ctl_ctx ctx;
	struct sn_buf body;
	struct sn_json j;
	int r = 0;

	if (c->phase != PHASE_DEFER) {
		sn_err("control: a reply to a request that was not deferred; ignored");
		return;
	}
	c->stream_end = NULL;
	reply_open(c, &ctx, &body, &j);
	if (build)
		r = build(&ctx, data);
	if (r > 0)
		r = 0; /* a builder cannot defer again or stream */
	/* the reply gets the idle time a fresh one would */
	c->timer.repeat = IDLE_TIMEOUT;
	ev_timer_again(c->ctl->loop, &c->timer);
	reply_close(c, &ctx, r);
}

struct reply_err {
	int code;
	const char *msg;
};

static int reply_err_build(struct sn_ctl_ctx *ctx, void *data)
{
	const struct reply_err *e = data;

	return sn_error_set(&ctx->err, e->code, "%s", e->msg);
}

void sn_ctl_reply_err(struct sn_ctl_client *c, int code, const char *fmt, ...)
{
	char msg[sizeof(((struct sn_error *)0)->msg)];
	struct reply_err e = {code, msg};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sn_ctl_reply(c, reply_err_build, &e);
}

static void dispatch(struct sn_ctl_client *c, int argc, char **argv)
{
	const struct sn_ctl_cmd *cmd = NULL;
	struct sn_ctl_ctx ctx;
	struct sn_buf body;
	struct sn_json j;
	int words = 0, r;

	reply_open(c, &ctx, &body, &j);
	for (size_t k = 0; k < c->ctl->ntables && !cmd; k++) {
		const struct sn_ctl_cmds *t = c->ctl->tables[k];

		for (size_t i = 0; i < t->n && !cmd; i++)
			if ((words = cmd_match(t->cmds[i].name, argc, argv)))
				cmd = &t->cmds[i];
	}
	if (!cmd) {
		r = sn_error_set(&ctx.err, -EINVAL, "unknown command '%s'; 'help' lists the commands",
				 argv[0]);
	} else if (argc - words > cmd->max_args) {
		r = sn_error_set(&ctx.err, -EINVAL, "%s: unexpected argument '%s' (usage: %s%s%s)", cmd->name,
				 argv[words + cmd->max_args], cmd->name, *cmd->args ? " " : "", cmd->args);
	} else if (argc - words < cmd->min_args) {
		r = sn_error_set(&ctx.err, -EINVAL, "usage: %s %s", cmd->name, cmd->args);
	} else {
		ctx.argc = argc - words;
		ctx.argv = argv + words;
		r = cmd->run(&ctx);
	}
	reply_close(c, &ctx, r);
}

/* Looks for a whole request in what arrived so far and runs it. Returns 0 when it needs more
 * bytes or ran the command, -errno when it refused the request. */
static int request_try(struct sn_ctl_client *c)
{
	struct sn_buf *in = &c->in;
	size_t magic = strlen(CTL_MAGIC), from;
	char *argv[ARGS_MAX], *end, *p, *line, *opt, *num;
	unsigned long version;
	int argc = 0;
	bool bad_opt = false;

	/* fail early on bytes that cannot become a request, before waiting for more of them */
	if (memcmp(in->data, CTL_MAGIC, SN_MIN(in->len, magic)))
		return client_fail(c, -EPROTO, "not a control request: it must start with '%s%d'", CTL_MAGIC,
				   CTL_VERSION);
	from = c->scanned ? c->scanned - 1 : 0; /* a "\n\n" may straddle two reads */
	end = memmem(in->data + from, in->len - from, "\n\n", 2);
	c->scanned = in->len;
	if (!end || (size_t)(end - in->data) + 2 > REQ_MAX) {
		if (in->len > REQ_MAX || end)
			return client_fail(c, -E2BIG, "request longer than %d bytes", REQ_MAX);
		return 0;
	}
	if (memchr(in->data, '\0', (size_t)(end - in->data)))
		return client_fail(c, -EINVAL, "request holds a NUL byte");
	*end = '\0';
	p = in->data;
	line = strsep(&p, "\n");
	num = line + magic;
	if (*num < '0' || *num > '9')
		return client_fail(c, -EPROTO, "bad version line '%.64s'", line);
	version = strtoul(num, &opt, 10);
	if (*opt && *opt != ' ')
		return client_fail(c, -EPROTO, "bad version line '%.64s'", line);
	if (version != CTL_VERSION)
		return client_fail(c, -EPROTONOSUPPORT,
				   "protocol version %.*s is not supported; this switch speaks version %d",
				   (int)SN_MIN(opt - num, 20), num, CTL_VERSION);
	while (opt && *opt) {
		char *word = strsep(&opt, " ");

		if (!strcmp(word, "json")) {
			c->json = true;
		} else if (*word && !bad_opt) {
			bad_opt = true;
			line = word;
		}
	}
	if (bad_opt)
		return client_fail(c, -EINVAL, "unknown request option '%.64s'", line);
	while (p) {
		if (argc == ARGS_MAX)
			return client_fail(c, -E2BIG, "more than %d arguments", ARGS_MAX);
		argv[argc++] = strsep(&p, "\n");
	}
	if (argc == 0)
		return client_fail(c, -EINVAL, "no command given; 'help' lists the commands");
	dispatch(c, argc, argv);
	return 0;
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_ctl_client *c = w->data;
	char buf[4096];

	/* bounded, so that a client pouring bytes in cannot hold the loop */
	for (int round = 0; round < 16; round++) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			/* mid-request the client gave up; lingering it has read the reply; streaming
			 * or waiting for a deferred reply it hung up: in every case the connection is
			 * over (a deferring module hears of it through stream_end) */
			if (n < 0 || c->phase == PHASE_REQUEST)
				sn_debug("control: client left: %s",
					 n < 0 ? strerror(errno) : "end of stream");
			client_free(c);
			return;
		}
		if (c->phase != PHASE_REQUEST)
			continue; /* lingering or streaming: whatever comes is ignored */
		sn_buf_add(&c->in, buf, (size_t)n);
		if (c->in.failed) {
			client_fail(c, -ENOMEM, "out of memory reading the request");
			return;
		}
		request_try(c); /* no new deadline: the request has REQUEST_TIMEOUT from connecting, whole */
		if (c->phase == PHASE_REPLY)
			return;
	}
}

/* The reply is out: shut our side, then wait (briefly) for the client to close. Closing with
 * unread bytes from the client could make its kernel drop our reply. */
static void client_linger(struct sn_ctl_client *c)
{
	struct ev_loop *loop = c->ctl->loop;

	c->phase = PHASE_LINGER;
	shutdown(c->fd, SHUT_WR);
	ev_io_start(loop, &c->rio);
	c->timer.repeat = LINGER_TIMEOUT;
	ev_timer_again(loop, &c->timer);
}

static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_ctl_client *c = w->data;

	if (c->out.failed) {
		sn_debug("control: out of memory replying to a client");
		client_free(c);
		return;
	}
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* compact, so a stream's buffer does not grow with what was already sent */
			sn_buf_consume(&c->out, c->out_off);
			c->out_off = 0;
			return;
		}
		if (n < 0) {
			sn_debug("control: client: %s", strerror(errno));
			client_free(c);
			return;
		}
		c->out_off += (size_t)n;
		if (c->phase == PHASE_REPLY)
			ev_timer_again(loop, &c->timer);
	}
	c->out.len = 0;
	c->out_off = 0;
	ev_io_stop(loop, w);
	if (c->phase == PHASE_REPLY)
		client_linger(c);
}

/* A status line for a client about to be closed that never sent a whole request: one try, no
 * waiting, since a client that does not read must cost nothing more. */
static void client_last_word(struct sn_ctl_client *c, const char *line)
{
	if (send(c->fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		sn_debug("control: could not tell a client why it is closed: %s", strerror(errno));
}

static void client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_ctl_client *c = w->data;

	if (c->phase == PHASE_DEFER) {
		sn_debug("control: a deferred command did not answer within %.0f s", IDLE_TIMEOUT);
	} else if (c->phase == PHASE_REQUEST) {
		char line[80];

		sn_debug("control: no whole request within %.0f s; closing", REQUEST_TIMEOUT);
		snprintf(line, sizeof(line), "ERR ETIMEDOUT no whole request within %.0f s\n", REQUEST_TIMEOUT);
		client_last_word(c, line);
	} else if (c->phase != PHASE_LINGER) {
		sn_debug("control: client timed out");
	}
	client_free(c);
}

static void accept_on(struct sn_control *ctl);

static void client_free(struct sn_ctl_client *c)
{
	struct sn_control *ctl = c->ctl;

	if (c->stream_end) {
		void (*end)(struct sn_ctl_client *, void *) = c->stream_end;

		c->stream_end = NULL;
		end(c, c->stream_data);
	}
	ev_io_stop(ctl->loop, &c->rio);
	ev_io_stop(ctl->loop, &c->wio);
	ev_timer_stop(ctl->loop, &c->timer);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->nclients--;
	sn_buf_finish(&c->in);
	sn_buf_finish(&c->out);
	free(c);
	if (!ctl->closing && !ctl->accepting && !sn_accept_paused(&ctl->pause))
		accept_on(ctl);
}

/* ---- the listening socket ---- */

/* The control socket alone does not keep the loop running, like the switch itself. */
static void accept_on(struct sn_control *ctl)
{
	if (ctl->accepting)
		return;
	ev_io_start(ctl->loop, &ctl->accept_io);
	ev_unref(ctl->loop);
	ctl->accepting = true;
}

static void accept_off(struct sn_control *ctl)
{
	if (!ctl->accepting)
		return;
	ev_ref(ctl->loop);
	ev_io_stop(ctl->loop, &ctl->accept_io);
	ctl->accepting = false;
}

static void accept_resume(struct sn_accept_pause *p)
{
	accept_on(p->data); /* accept_cb() turns it off again if every client is busy */
}

/* The client that has been idle longest: waiting for its request or, its reply sent, for its
 * hang-up. A client with a reply on its way, a stream or a deferred command is not idle. The
 * list holds the newest first. NULL when every client is busy. */
static struct sn_ctl_client *oldest_idle(struct sn_control *ctl)
{
	struct sn_ctl_client *old = NULL;

	for (struct sn_ctl_client *c = ctl->clients; c; c = c->next)
		if (c->phase == PHASE_REQUEST || c->phase == PHASE_LINGER)
			old = c;
	return old;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_control *ctl = w->data;

	for (int i = 0; i < 16; i++) {
		struct sn_ctl_client *c, *idle = NULL;
		int fd;

		/* Full: an idle client makes room for the new one, which may be the one with
		 * something to say. With every client busy, the rest wait in the backlog. */
		if (ctl->nclients >= CLIENTS_MAX && !(idle = oldest_idle(ctl))) {
			accept_off(ctl);
			return;
		}
		fd = accept(ctl->fd, NULL, NULL);
		if (fd < 0) {
			if (sn_accept_failed(&ctl->pause, errno))
				accept_off(ctl);
			return;
		}
		sn_accept_ok(&ctl->pause);
		if (idle) {
			sn_debug("control: %d clients: closing the longest idle one for a new one", CLIENTS_MAX);
			if (idle->phase == PHASE_REQUEST)
				client_last_word(idle, "ERR EBUSY closed to make room: too many control clients, "
						       "and this one sent no request\n");
			client_free(idle);
		}
		c = calloc(1, sizeof(*c));
		if (!c || sn_fd_nonblock(fd) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->ctl = ctl;
		c->fd = fd;
		sn_buf_init(&c->in);
		sn_buf_init(&c->out);
		ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
		c->rio.data = c;
		ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
		c->wio.data = c;
		ev_init(&c->timer, client_timer_cb);
		c->timer.data = c;
		c->timer.repeat = REQUEST_TIMEOUT;
		ev_timer_again(loop, &c->timer);
		ev_io_start(loop, &c->rio);
		c->next = ctl->clients;
		if (c->next)
			c->next->prev = c;
		ctl->clients = c;
		ctl->nclients++;
	}
}

SN_EXPORT int sn_control_create(struct sn_switch *sw, const char *path, struct sn_control **ret_ctl,
				struct sn_error *err)
{
	struct sn_control *ctl;
	struct sn_sockaddr a;
	struct stat st;
	int fd, r;

	if (err)
		err->msg[0] = '\0';
	if (!sw || !path || !ret_ctl)
		return sn_error_set(err, -EINVAL, "no switch or no path");
	if (sn_sockaddr_unix(path, &a) < 0)
		return sn_error_set(err, -EINVAL, "control socket path must be 1 to %zu bytes",
				    sizeof(a.u.un.sun_path) - 1);
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return sn_error_set(err, -ENOMEM, "out of memory");
	sn_ctl_register(ctl, &core_table);
	for (const struct sn_ctl_cmds *const *t = sn_ctl_modules; *t; t++)
		sn_ctl_register(ctl, *t);
	/* 0600 from birth: sn_sock_listen() binds under a strict umask */
	fd = sn_sock_listen(&a, SOCK_STREAM, NULL, err);
	if (fd < 0) {
		free(ctl);
		return fd;
	}
	if (lstat(path, &st) < 0) {
		r = -errno;
		close(fd);
		unlink(path);
		free(ctl);
		return sn_error_set(err, r, "%s: %s", path, strerror(-r));
	}
	ctl->sw = sw;
	ctl->loop = sn_switch_loop(sw);
	ctl->fd = fd;
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	sn_strlcpy(ctl->path, path, sizeof(ctl->path));
	ev_io_init(&ctl->accept_io, accept_cb, fd, EV_READ);
	ctl->accept_io.data = ctl;
	sn_accept_pause_init(&ctl->pause, ctl->loop, "", "control", accept_resume, ctl);
	ctl->pause.weak = true; /* like the socket itself */
	accept_on(ctl);
	*ret_ctl = ctl;
	return 0;
}

SN_EXPORT void sn_control_destroy(struct sn_control *ctl)
{
	struct stat st;

	if (!ctl)
		return;
	ctl->closing = true;
	while (ctl->clients)
		client_free(ctl->clients);
	accept_off(ctl);
	sn_accept_pause_stop(&ctl->pause);
	close(ctl->fd);
	/* only our own socket: someone may have replaced the file since */
	if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino)
		unlink(ctl->path);
	free(ctl);
}
