/* capture_ctl.c - the "capture" control commands: start (a file, or a live pcap stream on the
 * control connection), list, stop. Captures themselves are capture.c's; this file is the glue
 * between them and the control protocol, and the sink a live capture writes into. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <squibnet/capture.h>

#include "capture_impl.h"
#include "control.h"
#include "spec.h"
#include "util.h"

/* A live capture's sink: the control connection that asked for it. */
struct live {
	struct sn_capture_sink sink;
	struct sn_switch *sw;
	struct sn_ctl_client *client;
	struct sn_buf *early;  /* while the command runs: the reply body, what follows OK */
	unsigned id;
};

static int live_write(struct sn_capture_sink *sink, const void *data, size_t len)
{
	struct live *l = sn_container_of(sink, struct live, sink);

	if (l->early) {
		sn_buf_add(l->early, data, len);
		return l->early->failed ? -ENOMEM : 0;
	}
	return sn_ctl_send(l->client, data, len);
}

/* The capture ended: what is queued still goes out, then the connection closes. */
static void live_end(struct sn_capture_sink *sink)
{
	struct live *l = sn_container_of(sink, struct live, sink);

	sn_ctl_stream_close(l->client);
	free(l);
}

/* The reader hung up first. */
static void live_gone(struct sn_ctl_client *client, void *data)
{
	struct live *l = data;

	sn_capture_sink_gone(l->sw, l->id);
	free(l);
}

/* "FILE key=value..." from the command line, as a SPEC whose kind is FILE. */
static int spec_from_args(struct sn_spec *spec, int argc, char **argv, struct sn_error *err)
{
	char *out = spec->buf, *end = spec->buf + sizeof(spec->buf);

	memset(spec, 0, sizeof(*spec));
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(argv[i]) + 1;
		char *eq;

		if (len > (size_t)(end - out))
			return sn_error_set(err, -E2BIG, "capture arguments longer than %zu bytes", sizeof(spec->buf));
		memcpy(out, argv[i], len);
		if (i == 0) {
			spec->kind = out;
		} else {
			eq = strchr(out, '=');
			if (!eq || eq == out)
				return sn_error_set(err, -EINVAL, "'%s' is not key=value", argv[i]);
			*eq = '\0';
			for (unsigned k = 0; k < spec->n; k++)
				if (!strcmp(spec->kv[k].key, out))
					return sn_error_set(err, -EINVAL, "key '%s' given twice", out);
			if (spec->n == SN_SPEC_MAX_KEYS)
				return sn_error_set(err, -EINVAL, "too many keys");
			spec->kv[spec->n].key = out;
			spec->kv[spec->n].value = eq + 1;
			spec->n++;
		}
		out += len;
	}
	return 0;
}

static int cmd_capture_start_args(struct sn_ctl_ctx *ctx, int argc, char **argv)
{
	struct sn_spec spec;
	struct live *l;
	unsigned id;
	int r;

	if (argc > 0 && !strcmp(argv[0], "-w")) {
		argc--;
		argv++;
	}
	if (argc < 1)
		return sn_error_set(&ctx->err, -EINVAL, "usage: capture start FILE|- [KEY=VALUE]...");
	r = spec_from_args(&spec, argc, argv, &ctx->err);
	if (r < 0)
		return r;
	if (strcmp(spec.kind, "-")) {
		r = sn_capture_start_spec(ctx->sw, &spec, NULL, &id, &ctx->err);
		if (r < 0)
			return r;
		if (ctx->json)
			sn_json_uint(ctx->j, "id", id);
		else
			sn_buf_printf(ctx->body, "%u\n", id);
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	*l = (struct live){.sink = {live_write, live_end}, .sw = ctx->sw, .client = ctx->client, .early = ctx->body};
	/* the body is the pcap stream from its first byte: no JSON envelope, no text */
	ctx->body->len = 0;
	r = sn_capture_start_spec(ctx->sw, &spec, &l->sink, &l->id, &ctx->err);
	if (r < 0) {
		free(l);
		return r;
	}
	l->early = NULL;
	sn_ctl_set_stream_end(ctx->client, live_gone, l);
	return SN_CTL_STREAM;
}

static int cmd_capture_start(struct sn_ctl_ctx *ctx)
{
	return cmd_capture_start_args(ctx, ctx->argc, ctx->argv);
}

static int cmd_capture_w(struct sn_ctl_ctx *ctx)
{
	if (strcmp(ctx->argv[0], "-w"))
		return sn_error_set(&ctx->err, -EINVAL,
				    "unknown capture command '%s' (capture start, list, stop, or capture -w FILE|-)",
				    ctx->argv[0]);
	return cmd_capture_start_args(ctx, ctx->argc, ctx->argv);
}

struct list_walk {
	struct sn_ctl_ctx *ctx;
	struct sn_table *t;
};

static int list_visit(const struct sn_capture_info *i, void *arg)
{
	struct list_walk *w = arg;
	struct sn_json *j = w->ctx->j;

	if (w->ctx->json) {
		sn_json_begin_object(j, NULL);
		sn_json_uint(j, "id", i->id);
		sn_json_string(j, "file", i->file);
		sn_json_string(j, "filter", i->filter);
		sn_json_string(j, "ports", i->ports);
		sn_json_string(j, "dir", sn_capture_dir_name(i->dir));
		sn_json_uint(j, "snaplen", i->snaplen);
		sn_json_string(j, "tstamp", i->nanosecond ? "ns" : "us");
		sn_json_uint(j, "rotate_mb", i->rotate_mb);
		sn_json_uint(j, "count", i->count);
		sn_json_string(j, "state", sn_capture_state_name(i->state));
		sn_json_string(j, "error", i->error);
		sn_json_uint(j, "frames", i->frames);
		sn_json_uint(j, "bytes", i->bytes);
		sn_json_uint(j, "filtered", i->filtered);
		sn_json_uint(j, "dropped", i->dropped);
		sn_json_uint(j, "errors", i->errors);
		sn_json_uint(j, "files_open", i->files_open);
		sn_json_uint(j, "rotations", i->rotations);
		sn_json_end_object(j);
		return 0;
	}
	sn_table_cell(w->t, "%u", i->id);
	sn_table_cell(w->t, "%s", sn_capture_state_name(i->state));
	sn_table_cell(w->t, "%s", sn_capture_dir_name(i->dir));
	sn_table_cell(w->t, "%llu", (unsigned long long)i->frames);
	sn_table_cell(w->t, "%llu", (unsigned long long)i->bytes);
	sn_table_cell(w->t, "%llu", (unsigned long long)i->dropped);
	sn_table_cell(w->t, "%u", i->files_open);
	sn_table_cell(w->t, "%s", i->ports ? i->ports : "*");
	sn_table_cell(w->t, "%s", i->filter ? i->filter : "-");
	sn_table_cell(w->t, "%s%s%s", i->file, i->error ? "  # " : "", i->error ? i->error : "");
	return 0;
}

static int cmd_capture_list(struct sn_ctl_ctx *ctx)
{
	static const char *const head[] = {">ID", "STATE", "DIR", ">FRAMES", ">BYTES", ">DROPPED", ">FILES",
					   "PORTS", "FILTER", "FILE"};
	struct sn_table t = {.head = head, .ncol = SN_ARRAY_SIZE(head)};
	struct list_walk w = {ctx, &t};

	if (ctx->json) {
		sn_json_begin_array(ctx->j, "captures");
		sn_capture_foreach(ctx->sw, list_visit, &w);
		sn_json_end_array(ctx->j);
		return 0;
	}
	sn_capture_foreach(ctx->sw, list_visit, &w);
	sn_table_render(&t, ctx->body);
	sn_table_free(&t);
	return 0;
}

static int cmd_capture_stop(struct sn_ctl_ctx *ctx)
{
	const char *arg = ctx->argv[0];
	char *end;
	unsigned long id;
	int r;

	errno = 0;
	id = strtoul(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || *end || errno || id > UINT_MAX)
		return sn_error_set(&ctx->err, -EINVAL, "'%s' is not a capture ID ('capture list' shows them)", arg);
	r = sn_capture_stop(ctx->sw, (unsigned)id);
	if (r == -ENOENT)
		return sn_error_set(&ctx->err, r, "no capture %lu", id);
	if (r < 0)
		return r;
	if (ctx->json)
		sn_json_uint(ctx->j, "stopped", id);
	return 0;
}

static const struct sn_ctl_cmd capture_cmds[] = {
	{"capture start", "FILE|- [filter=EXPR] [ports=A+B] [dir=in|out|both] [KEY=VALUE]...",
	 "write a pcap file (%p: one per port), or stream one ('-'); prints its ID", 1, 1 + SN_SPEC_MAX_KEYS,
	 cmd_capture_start},
	{"capture list", "", "list captures with their state and counters", 0, 0, cmd_capture_list},
	{"capture stop", "ID", "stop a capture, closing its files", 1, 1, cmd_capture_stop},
	/* last: the two words above must win over this one */
	{"capture", "-w FILE|- [KEY=VALUE]...", "tcpdump spelling of 'capture start' ('-w -': live pcap on stdout)",
	 2, 2 + SN_SPEC_MAX_KEYS, cmd_capture_w},
};

const struct sn_ctl_cmds sn_capture_ctl_cmds = {capture_cmds, SN_ARRAY_SIZE(capture_cmds)};
