/* gvproxy.c - the gvproxy port: NAT, DHCP and DNS for the VMs on the switch from a supervised
 * gvproxy child (gvisor-tap-vsock), without root.
 *
 * The port is a stream data port (stream.h) on our end of the child's stdio, 2-byte
 * little-endian framed, so frames take the same path as on any other stream port. The child
 * itself (starting, restarting, stopping, reaping) is backends/gvproxy.c's; its HTTP API
 * backends/gvproxy_api.c's. This file joins them: the SPEC, the port's life, the control
 * commands (gvproxy expose, unexpose, list) and the public sn_gvproxy_expose() /
 * sn_gvproxy_unexpose(). A call to the API never blocks the switch; the reply, its deadline,
 * the asker leaving (a control client hanging up), the child exiting and the port's removal
 * each end it, whichever comes first. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squibnet/gvproxy.h>

#include "../backends/gvproxy_child.h"
#include "../control.h"
#include "../json.h"
#include "../logging.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"
#include "stream.h"

/* The stream port's owner. */
struct gvp {
	struct sn_port *port;
	struct sn_gvproxy *proc;  /* NULL once the port closed */
	struct pcall *calls;      /* API calls waiting for their answer */
};

/* One call to the API on behalf of a control client or an embedder. */
struct pcall {
	struct gvp *g;
	struct pcall *prev, *next;
	struct sn_gvproxy_call *call;
	enum sn_gvproxy_op op;
	char local[256], remote[256], proto[8];
	/* who asked: a control client (its reply deferred), or an embedder's callback */
	struct sn_ctl_client *client;
	sn_gvproxy_result_fn cb;
	void *cb_ctx;
	/* the answer, for ctl_build() */
	int status;
	const char *body;
};

static const struct sn_port_ops gvproxy_ops;

/* ---- calls ---- */

static void pcall_unlink(struct pcall *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->g->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

static int ctl_build(struct sn_ctl_ctx *ctx, void *data);

/* Tells the asker @code (0 or -errno) with @msg, and forgets the call. */
static void pcall_answer(struct pcall *c, int code, const char *msg)
{
	pcall_unlink(c);
	if (c->client) {
		if (code < 0)
			sn_ctl_reply_err(c->client, code, "%s", msg);
		else
			sn_ctl_reply(c->client, ctl_build, c);
	} else if (c->cb) {
		c->cb(c->cb_ctx, code, msg);
	}
	free(c);
}

static void pcall_done(void *ctx, int status, const char *body, const char *msg)
{
	struct pcall *c = ctx;
	char text[256];

	c->call = NULL; /* gvproxy_api.c frees it */
	if (status < 0) {
		pcall_answer(c, status, msg);
		return;
	}
	c->status = status;
	c->body = body;
	if (status != 200 && !c->client) {
		snprintf(text, sizeof(text), "gvproxy: HTTP %d: %.*s", status, (int)SN_MIN(strcspn(body, "\r\n"), 200),
			 body);
		pcall_answer(c, sn_gvproxy_status_errno(status, body), text);
		return;
	}
	pcall_answer(c, 0, "");
}

/* Ends every call of @g with @code: the child went, or the port did. */
static void calls_cancel(struct gvp *g, int code, const char *why)
{
	char msg[256];

	while (g->calls) {
		struct pcall *c = g->calls;

		if (c->call)
			sn_gvproxy_call_cancel(c->call);
		snprintf(msg, sizeof(msg), "port '%s': %s", g->port->name, why);
		pcall_answer(c, code, msg);
	}
}

/* The gvproxy port called @name, or the only one there is when @name is NULL, running. */
static int find_port(struct sn_switch *sw, const char *name, struct gvp **ret, struct sn_error *err)
{
	struct sn_port *found = NULL;
	struct gvp *g;
	unsigned n = 0;

	if (name) {
		found = sn_switch_find_port(sw, name);
		if (!found)
			return sn_error_set(err, -ENOENT, "no port called '%s'", name);
		if (found->ops != &gvproxy_ops)
			return sn_error_set(err, -EINVAL, "port '%s' is a %s port, not a gvproxy port", name,
					    found->ops->kind);
	} else {
		for (struct sn_port *p = NULL; (p = sn_switch_next_port(sw, p, &gvproxy_ops)); n++)
			found = p;
		if (n == 0)
			return sn_error_set(err, -ENOENT, "the switch has no gvproxy port");
		if (n > 1)
			return sn_error_set(err, -EINVAL, "%u gvproxy ports: say which with --port NAME", n);
	}
	g = sn_stream_port_owner(found);
	if (!g->proc || sn_gvproxy_pid(g->proc) <= 0)
		return sn_error_set(err, -ENOTCONN, "port '%s': %s", found->name,
				    g->proc ? sn_gvproxy_status(g->proc) : "gvproxy is not running");
	*ret = g;
	return 0;
}

/* Starts a call on port @name; the answer goes to @client (control) or @cb (embedder). */
static int pcall_start(struct sn_switch *sw, const char *name, enum sn_gvproxy_op op, const char *local,
		       const char *remote, const char *proto, struct sn_ctl_client *client, sn_gvproxy_result_fn cb,
		       void *cb_ctx, struct pcall **ret, struct sn_error *err)
{
	struct gvp *g = NULL;
	struct pcall *c;
	int r = find_port(sw, name, &g, err);

	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct pcall){.g = g, .op = op, .client = client, .cb = cb, .cb_ctx = cb_ctx};
	if (local)
		sn_strlcpy(c->local, local, sizeof(c->local));
	if (remote)
		sn_strlcpy(c->remote, remote, sizeof(c->remote));
	sn_strlcpy(c->proto, proto ? proto : "tcp", sizeof(c->proto));
	r = sn_gvproxy_call(sn_port_loop(g->port), sn_gvproxy_api(g->proc), op, c->local, c->remote, c->proto,
			    pcall_done, c, &c->call, err);
	if (r < 0) {
		free(c);
		return r;
	}
	c->next = g->calls;
	if (c->next)
		c->next->prev = c;
	g->calls = c;
	if (ret)
		*ret = c;
	return 0;
}

/* A forward's text: "tcp", "udp" or "unix", and addresses without control characters. */
static int check_forward(const char *local, const char *remote, const char *proto, struct sn_error *err)
{
	const char *words[] = {local, remote};

	if (proto && strcmp(proto, "tcp") && strcmp(proto, "udp") && strcmp(proto, "unix"))
		return sn_error_set(err, -EINVAL, "protocol '%s' is not tcp, udp or unix", proto);
	for (size_t i = 0; i < SN_ARRAY_SIZE(words); i++) {
		if (!words[i])
			continue;
		if (!*words[i] || strlen(words[i]) > 255)
			return sn_error_set(err, -EINVAL, "'%.32s' is empty or too long", words[i]);
		for (const char *c = words[i]; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return sn_error_set(err, -EINVAL, "control character in '%s'", words[i]);
	}
	return 0;
}

SN_EXPORT int sn_gvproxy_expose(struct sn_switch *sw, const char *port, const char *local, const char *remote,
				const char *proto, sn_gvproxy_result_fn done, void *ctx, struct sn_error *err)
{
	int r;

	if (err)
		err->msg[0] = '\0';
	if (!sw || !local || !remote)
		return sn_error_set(err, -EINVAL, "no switch, or no local or remote address");
	r = check_forward(local, remote, proto, err);
	return r < 0 ? r : pcall_start(sw, port, SN_GVPROXY_EXPOSE, local, remote, proto, NULL, done, ctx, NULL, err);
}

SN_EXPORT int sn_gvproxy_unexpose(struct sn_switch *sw, const char *port, const char *local, const char *proto,
				  sn_gvproxy_result_fn done, void *ctx, struct sn_error *err)
{
	int r;

	if (err)
		err->msg[0] = '\0';
	if (!sw || !local)
		return sn_error_set(err, -EINVAL, "no switch or no local address");
	r = check_forward(local, NULL, proto, err);
	return r < 0 ? r : pcall_start(sw, port, SN_GVPROXY_UNEXPOSE, local, NULL, proto, NULL, done, ctx, NULL, err);
}

/* ---- control commands ---- */

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
		o->pos[o->npos++] = a;
	}
	if (o->npos != want)
		return sn_error_set(&ctx->err, -EINVAL, "usage: %s", usage);
	return check_forward(o->pos[0], want == 2 ? o->pos[1] : NULL, o->proto, &ctx->err);
}

struct list_walk {
	struct sn_ctl_ctx *ctx;
	struct sn_table *t;
};

static int list_row(const char *local, const char *remote, const char *proto, void *arg)
{
	struct list_walk *w = arg;

	if (w->ctx->json) {
		sn_json_begin_object(w->ctx->j, NULL);
		sn_json_string(w->ctx->j, "local", local);
		sn_json_string(w->ctx->j, "remote", remote);
		sn_json_string(w->ctx->j, "protocol", proto[0] ? proto : "tcp");
		sn_json_end_object(w->ctx->j);
		return 0;
	}
	sn_table_cell(w->t, "%s", proto[0] ? proto : "tcp");
	sn_table_cell(w->t, "%s", local);
	sn_table_cell(w->t, "%s", remote);
	return w->t->failed ? -ENOMEM : 0;
}

static int list_build(struct sn_ctl_ctx *ctx, struct pcall *c)
{
	static const char *const head[] = {"PROTO", "LOCAL", "REMOTE"};
	struct sn_table t = {.head = head, .ncol = SN_ARRAY_SIZE(head)};
	struct list_walk w = {ctx, &t};
	int r;

	if (ctx->json) {
		sn_json_string(ctx->j, "port", c->g->port->name);
		sn_json_begin_array(ctx->j, "forwards");
	}
	r = sn_gvproxy_read_forwards(c->body, list_row, &w);
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
static int ctl_build(struct sn_ctl_ctx *ctx, void *data)
{
	struct pcall *c = data;
	bool expose = c->op == SN_GVPROXY_EXPOSE;

	if (c->status != 200) {
		size_t n = strcspn(c->body, "\r\n");

		return sn_error_set(&ctx->err, sn_gvproxy_status_errno(c->status, c->body), "gvproxy: HTTP %d: %.*s",
				    c->status, (int)SN_MIN(n, 200), c->body);
	}
	if (c->op == SN_GVPROXY_LIST)
		return list_build(ctx, c);
	if (ctx->json) {
		sn_json_string(ctx->j, "port", c->g->port->name);
		sn_json_begin_object(ctx->j, expose ? "exposed" : "unexposed");
		sn_json_string(ctx->j, "local", c->local);
		if (expose)
			sn_json_string(ctx->j, "remote", c->remote);
		sn_json_string(ctx->j, "protocol", c->proto);
		sn_json_end_object(ctx->j);
	} else if (expose) {
		sn_buf_printf(ctx->body, "%s %s -> %s\n", c->proto, c->local, c->remote);
	}
	return 0;
}

/* The control client hung up: its call goes, unanswered. */
static void ctl_abandon_cb(struct sn_ctl_client *client, void *data)
{
	struct pcall *c = data;

	sn_debug("port %s: the control client left; gvproxy API call dropped", c->g->port->name);
	if (c->call)
		sn_gvproxy_call_cancel(c->call);
	pcall_unlink(c);
	free(c);
}

static int ctl_start(struct sn_ctl_ctx *ctx, enum sn_gvproxy_op op, int want, const char *usage)
{
	struct cmd_opts o;
	struct pcall *c;
	int r = parse_cmd(ctx, want, usage, &o);

	if (r < 0)
		return r;
	r = pcall_start(ctx->sw, o.port, op, o.pos[0], o.pos[1], o.proto, ctx->client, NULL, NULL, &c, &ctx->err);
	if (r < 0)
		return r;
	sn_ctl_set_stream_end(ctx->client, ctl_abandon_cb, c);
	return SN_CTL_DEFER;
}

static int cmd_expose(struct sn_ctl_ctx *ctx)
{
	return ctl_start(ctx, SN_GVPROXY_EXPOSE, 2, "gvproxy expose LOCAL REMOTE [--proto tcp|udp] [--port NAME]");
}

static int cmd_unexpose(struct sn_ctl_ctx *ctx)
{
	return ctl_start(ctx, SN_GVPROXY_UNEXPOSE, 1, "gvproxy unexpose LOCAL [--proto tcp|udp] [--port NAME]");
}

static int cmd_list(struct sn_ctl_ctx *ctx)
{
	return ctl_start(ctx, SN_GVPROXY_LIST, 0, "gvproxy list [--port NAME]");
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

/* ---- the port ---- */

static void child_up(void *owner, int fd, const char *peer)
{
	struct gvp *g = owner;

	sn_stream_port_attach(g->port, fd, peer);
}

static void child_down(void *owner, const char *why)
{
	struct gvp *g = owner;
	char msg[160];

	sn_stream_port_detach(g->port);
	sn_port_set_error(g->port, "%s", why);
	snprintf(msg, sizeof(msg), "gvproxy %s before answering", why);
	calls_cancel(g, -ECONNRESET, msg);
}

static const struct sn_gvproxy_events child_events = {
	.up = child_up,
	.down = child_down,
};

/* The frames stopped while the child may live on (it closed stdout, or broke the framing): it
 * is of no use like that, so it is replaced. */
static void lost_cb(struct sn_port *port, void *owner, const char *why)
{
	struct gvp *g = owner;

	if (g->proc)
		sn_gvproxy_replace(g->proc);
}

static void gvproxy_close(struct sn_port *port)
{
	struct gvp *g = sn_stream_port_owner(port);

	calls_cancel(g, -ECANCELED, "the port was removed before gvproxy answered");
	sn_stream_port_close(port); /* our end of the socketpair: gvproxy sees end of file */
	sn_gvproxy_stop(g->proc);
	g->proc = NULL;
}

static void gvproxy_free(struct sn_port *port)
{
	struct gvp *g = sn_stream_port_owner(port);

	sn_stream_port_free(port);
	free(g);
}

static void gvproxy_describe(struct sn_port *port, char *buf, size_t len)
{
	struct gvp *g = sn_stream_port_owner(port);
	pid_t pid = g->proc ? sn_gvproxy_pid(g->proc) : 0;

	if (pid > 0 && sn_gvproxy_restarts(g->proc))
		snprintf(buf, len, "gvproxy pid %d (restarts %u) api unix:%s", (int)pid, sn_gvproxy_restarts(g->proc),
			 sn_gvproxy_api(g->proc));
	else if (pid > 0)
		snprintf(buf, len, "gvproxy pid %d api unix:%s", (int)pid, sn_gvproxy_api(g->proc));
	else
		snprintf(buf, len, "%s", g->proc ? sn_gvproxy_status(g->proc) : "gvproxy not running");
}

static const struct sn_port_ops gvproxy_ops = {
	.kind = "gvproxy",
	.flush = sn_stream_port_flush,
	.close = gvproxy_close,
	.free = gvproxy_free,
	.describe = gvproxy_describe,
	.resume = sn_stream_port_resume,
};

static int gvproxy_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			  struct sn_port **ret_port, struct sn_error *err)
{
	const char *ssh = sn_spec_get(spec, "ssh-port");
	struct sn_gvproxy_conf gc = {.path = sn_spec_get(spec, "path"), .args = sn_spec_get(spec, "args"),
				     .restart = true};
	struct gvp *g;
	int r;

	r = sn_spec_get_bool(spec, "restart", &gc.restart, err);
	if (r < 0)
		return r;
	if (ssh) {
		char *end;
		long v = strtol(ssh, &end, 10);

		if (!*ssh || *end || (v != -1 && (v < 1024 || v > 65535)))
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'ssh-port': 1024 to 65535, or -1 for none",
					    ssh);
		gc.ssh_port = (int)v;
	}
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		return r;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	r = sn_stream_port_create(sw, conf, &gvproxy_ops, SN_FRAMING_HYPERKIT, lost_cb, g, &g->port);
	if (r < 0) {
		free(g);
		return r;
	}
	/* registered (DOWN) before the child exists: going UP puts it in the forwarding set */
	r = sn_port_register(g->port);
	if (r < 0) {
		sn_stream_port_free(g->port);
		free(g);
		return r;
	}
	gc.name = g->port->name;
	gc.mtu = g->port->mtu;
	r = sn_gvproxy_start(sn_port_loop(g->port), &gc, &child_events, g, &g->proc, err);
	if (r < 0) {
		sn_port_close(g->port); /* frees g later, from the loop */
		return r;
	}
	*ret_port = g->port;
	return 0;
}

static const char *const gvproxy_keys[] = {"path", "args", "ssh-port", "restart", NULL};

const struct sn_port_kind sn_port_kind_gvproxy = {
	.name = "gvproxy",
	.usage = "gvproxy[,path=BIN][,ssh-port=N|-1][,args=\"...\"][,restart=off]  NAT, DHCP, DNS via a gvproxy child",
	.keys = gvproxy_keys,
	.create = gvproxy_create,
};
