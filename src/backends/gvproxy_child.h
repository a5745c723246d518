/* gvproxy_child.h - a supervised gvproxy child (gvproxy.c) and the calls to its HTTP API
 * (gvproxy_api.c): the host-side machinery of the gvproxy port (ports/gvproxy.c). */
#ifndef SN_BACKENDS_GVPROXY_CHILD_H
#define SN_BACKENDS_GVPROXY_CHILD_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sn_error;
struct sn_buf;

/** Seconds a child gets between SIGTERM and SIGKILL when it is stopped. */
#define SN_GVPROXY_GRACE 2.0

/** First and longest delay before a child that exited is started again. */
#define SN_GVPROXY_BACKOFF_MIN 0.2
#define SN_GVPROXY_BACKOFF_MAX 30.0

/** Most words args="..." may add to gvproxy's command line, and the longest word. */
#define SN_GVPROXY_ARGS_MAX 32
#define SN_GVPROXY_ARG_LEN_MAX 1024

/** Seconds one call to gvproxy's HTTP API may take, connect to last byte. */
#define SN_GVPROXY_API_TIMEOUT 5.0

/** The environment variable naming the gvproxy binary when no path is given. */
#define SN_GVPROXY_ENV "SQUIBNET_GVPROXY"

/* ---- the child ---- */

struct sn_gvproxy;

struct sn_gvproxy_conf {
	const char *name;      /* the owner's name, for log lines */
	const char *path;      /* the program; NULL: $SQUIBNET_GVPROXY, PATH, podman's directories */
	const char *args;      /* more words for its command line, blank-separated (may be NULL) */
	int ssh_port;          /* -ssh-port: 0 leaves gvproxy's default, -1 none */
	bool restart;          /* start it again when it exits */
	unsigned mtu;
};

/* What the owner hears; both run from the loop. */
struct sn_gvproxy_events {
	/* A child runs: @fd (non-blocking, the owner's from now on) is the owner's end of its
	 * stdio, 2-byte little-endian framed; @peer names it for log lines. */
	void (*up)(void *owner, int fd, const char *peer);
	/* The child is gone (@why: how it ended); another follows unless restart was off. */
	void (*down)(void *owner, const char *why);
};

/**
 * Finds the program (path, else the environment, else the usual places), checks @conf->args,
 * makes the private directory of the API socket and starts the first child. Returns 0 and
 * sets *@ret; -errno with @err naming the cause (key 'path' or 'args').
 */
int sn_gvproxy_start(struct ev_loop *loop, const struct sn_gvproxy_conf *conf, const struct sn_gvproxy_events *ev,
		     void *owner, struct sn_gvproxy **ret, struct sn_error *err);

/** The frames stopped while the child may live on: it is ended, and replaced as the rules say. */
void sn_gvproxy_replace(struct sn_gvproxy *gv);

/** The owner lets go: the child gets SIGTERM (SIGKILL after SN_GVPROXY_GRACE) and is reaped, its
 * files removed, and @gv freed once that is done; no event comes after this. NULL is a no-op. */
void sn_gvproxy_stop(struct sn_gvproxy *gv);

/** The API socket's path; the child's pid (0: none); restarts so far; why there is no child. */
const char *sn_gvproxy_api(const struct sn_gvproxy *gv);
pid_t sn_gvproxy_pid(const struct sn_gvproxy *gv);
unsigned sn_gvproxy_restarts(const struct sn_gvproxy *gv);
const char *sn_gvproxy_status(const struct sn_gvproxy *gv);

/* ---- its HTTP API (gvproxy_api.c) ---- */

enum sn_gvproxy_op {
	SN_GVPROXY_EXPOSE,   /* POST /services/forwarder/expose {local, remote, protocol} */
	SN_GVPROXY_UNEXPOSE, /* POST /services/forwarder/unexpose {local, protocol} */
	SN_GVPROXY_LIST,     /* GET /services/forwarder/all */
};

struct sn_gvproxy_call;

/* The answer: @status is the HTTP status with @body (NUL-terminated), or -errno with @msg. The
 * call is freed after this returns. */
typedef void (*sn_gvproxy_done_fn)(void *ctx, int status, const char *body, const char *msg);

/**
 * Sends @op to the API socket at @api without blocking: watchers on @loop do the rest, under a
 * deadline of SN_GVPROXY_API_TIMEOUT. @local, @remote and @proto are the forward's (NULL for
 * what @op does not take). Returns 0 and sets *@ret (the answer comes through @done), or -errno
 * with @err set when the request cannot even start.
 */
int sn_gvproxy_call(struct ev_loop *loop, const char *api, enum sn_gvproxy_op op, const char *local,
		    const char *remote, const char *proto, sn_gvproxy_done_fn done, void *ctx,
		    struct sn_gvproxy_call **ret, struct sn_error *err);

/** Drops a call before its answer: @done is not called. */
void sn_gvproxy_call_cancel(struct sn_gvproxy_call *call);

/** The -errno a status other than 200 stands for, from the status and the text gvproxy sent. */
int sn_gvproxy_status_errno(int status, const char *body);

/* Looks for a whole HTTP reply in @b (which has one byte of room past b->len): its status once
 * it is complete (the body NUL-terminated in @b), 0 when more is needed, -EPROTO when it is not
 * HTTP (or, at @eof, cut short). */
int sn_gvproxy_reply_parse(struct sn_buf *b, bool eof, const char **ret_body, size_t *ret_len);

/* Reads gvproxy's list of forwards (/services/forwarder/all): calls @row for each one, returns
 * how many there were, -EPROTO, or -ENOMEM when @row returned a negative value. */
int sn_gvproxy_read_forwards(const char *json,
			     int (*row)(const char *local, const char *remote, const char *proto, void *ctx),
			     void *ctx);

#endif
