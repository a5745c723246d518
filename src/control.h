/* control.h - what a module needs to add commands to the control socket: the handler's
 * context, the command table entry, the text table and the streaming send. The protocol is
 * described at the top of control.c. */
#ifndef SN_CONTROL_H
#define SN_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include <squibnet/switch.h>

#include "json.h"

struct sn_ctl_client;

/* A handler's return value that keeps the connection open for a streaming body. */
#define SN_CTL_STREAM 1

/* A handler's return value that holds the reply back: nothing is sent (what the handler put in
 * its ctx is dropped) until the module calls sn_ctl_reply() or sn_ctl_reply_err(), typically
 * from a watcher of its own once another program answered. A deferring handler sets the end
 * hook (sn_ctl_set_stream_end()) to hear of a client that leaves first, and copies what the
 * reply will need: ctx->argv does not outlive the handler. */
#define SN_CTL_DEFER 2

/* What a command handler gets. In JSON mode the reply object is open and holds "version":
 * the handler adds its members through @j. In text mode it writes lines into @body. */
struct sn_ctl_ctx {
	struct sn_switch *sw;
	struct sn_ctl_client *client;
	int argc;          /* arguments after the command's name */
	char **argv;
	bool json;
	struct sn_buf *body;
	struct sn_json *j;
	struct sn_error err;
};

struct sn_ctl_cmd {
	const char *name;  /* one or more words */
	const char *args;  /* usage of the arguments after the name */
	const char *help;  /* NULL: an alias, left out of "help" */
	int min_args, max_args;
	/* 0 for OK, or -errno with ctx->err set (else strerror is used). A streaming command
	 * returns SN_CTL_STREAM: what it put in ctx->body goes out after "OK" as is (JSON mode: it
	 * closes or drops the envelope itself), and the rest follows through sn_ctl_send() until
	 * the client hangs up and c->stream_end is called. A command that must wait for something
	 * returns SN_CTL_DEFER and answers later with sn_ctl_reply(). */
	int (*run)(struct sn_ctl_ctx *ctx);
};

/* A module's commands; control.c lists every table. */
struct sn_ctl_cmds {
	const struct sn_ctl_cmd *cmds;
	size_t n;
};

extern const struct sn_ctl_cmds sn_capture_ctl_cmds;
extern const struct sn_ctl_cmds sn_gvproxy_ctl_cmds;

/* Queues bytes for a streaming client; they go out from its write watcher. -ENOBUFS when it
 * already has 4 MiB unsent (the caller drops and counts), -ENOMEM. */
int sn_ctl_send(struct sn_ctl_client *c, const void *data, size_t len);

/* Sets what runs once when a streaming or deferred client's connection ends for any reason
 * (the client hung up, timed out, or the control server is going away) before the module let
 * go of it through sn_ctl_stream_close() or sn_ctl_reply(). @c is freed right after @end
 * returns: the module forgets it and must not reply from inside @end. Only kept for a handler
 * that returns SN_CTL_STREAM or SN_CTL_DEFER. */
void sn_ctl_set_stream_end(struct sn_ctl_client *c, void (*end)(struct sn_ctl_client *c, void *data), void *data);

/* Builds a deferred reply's body, as a handler would: through ctx->j (JSON mode, the envelope
 * is open) or ctx->body (text). Returns 0 for OK, or -errno with ctx->err set. */
typedef int (*sn_ctl_build_fn)(struct sn_ctl_ctx *ctx, void *data);

/* Answers a request whose handler returned SN_CTL_DEFER: runs @build (NULL: an empty OK) and
 * sends exactly what an immediate reply would have been, then the connection goes on as any
 * reply does. The end hook is dropped first, not called; @c must not be used afterwards. */
void sn_ctl_reply(struct sn_ctl_client *c, sn_ctl_build_fn build, void *data);

/* Answers a deferred request with ERR: @code is -errno, the message printf-formatted (empty:
 * strerror). Same rules as sn_ctl_reply(). */
void sn_ctl_reply_err(struct sn_ctl_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Ends a streaming reply from the module's side (the capture stopped): what is queued still goes
 * out, then the connection closes like any reply. The stream_end callback is dropped, not
 * called; @c must not be used afterwards. */
void sn_ctl_stream_close(struct sn_ctl_client *c);

/* Cells are collected first so each column can be as wide as its widest cell. A heading that
 * starts with '>' right-aligns its column (numbers); the last column is never padded. */
struct sn_table {
	const char *const *head;
	unsigned ncol;
	bool no_head;
	char **cells;
	size_t n, cap;
	bool failed;
};

void sn_table_cell(struct sn_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sn_table_render(struct sn_table *t, struct sn_buf *b);
void sn_table_free(struct sn_table *t);

#endif
