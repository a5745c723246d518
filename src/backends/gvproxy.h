/* gvproxy.h - the gvproxy port kind's pieces other files may want: its limits and defaults.
 *
 * The port kind itself is sn_port_kind_gvproxy (switch.h) and its control commands are
 * sn_gvproxy_ctl_cmds (control.h). */
#ifndef SN_BACKENDS_GVPROXY_H
#define SN_BACKENDS_GVPROXY_H

#include <stdbool.h>
#include <stddef.h>

/** Seconds a child gets between SIGTERM and SIGKILL when the port closes. */
#define SN_GVPROXY_GRACE 2.0

/** First and longest delay before a child that exited is started again. */
#define SN_GVPROXY_BACKOFF_MIN 0.2
#define SN_GVPROXY_BACKOFF_MAX 30.0

/** Most words args="..." may add to gvproxy's command line, and the longest word. */
#define SN_GVPROXY_ARGS_MAX 32
#define SN_GVPROXY_ARG_LEN_MAX 1024

/** Seconds one call to gvproxy's HTTP API may take, connect to last byte. The control command
 * waits that long at most; the switch's loop does not wait at all. */
#define SN_GVPROXY_API_TIMEOUT 5.0

/** The environment variable naming the gvproxy binary when the SPEC has no path=. */
#define SN_GVPROXY_ENV "SQUIBNET_GVPROXY"

/* Internal, for tests/fuzz: the API reply parsers the control commands use. */
struct sn_buf;

/* Looks for a whole HTTP reply in @b (which has one byte of room past b->len): its status once
 * it is complete (the body NUL-terminated in @b), 0 when more is needed, -EPROTO when it is not
 * HTTP (or, at @eof, cut short). */
int sn_gvproxy_reply_parse(struct sn_buf *b, bool eof, const char **ret_body, size_t *ret_len);

/* Reads gvproxy's list of forwards (/services/forwarder/all): calls @row for each one, returns
 * how many there were or -EPROTO. */
int sn_gvproxy_read_forwards(const char *json,
			     int (*row)(const char *local, const char *remote, const char *proto, void *ctx),
			     void *ctx);

#endif
