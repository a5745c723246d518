/* sockconn.h - the connection lifecycle socket port kinds share: a listening socket that makes
 * a port per client (LISTENER.N), a dialer that connects without blocking and retries with
 * backoff, and the connection of a connected data port (descriptor, watchers, peer text) that
 * closes, or goes down and redials, when its peer is lost. A port kind keeps its framing and
 * data path; this holds what happens around them. */
#ifndef SN_SOCKCONN_H
#define SN_SOCKCONN_H

#include <ev.h>
#include <stdbool.h>

#include "logging.h"
#include "port.h"
#include "sock.h"

struct sn_listener;

/* What a listening socket does when accept() fails for a reason that leaves the connection in
 * the backlog (no descriptor: EMFILE, ENFILE; no memory: ENOBUFS, ENOMEM; or anything else
 * unexpected): the socket stays readable, so accepting again at once would spin and log
 * without end. Its owner stops the accept watcher instead, and @resume restarts it after a
 * pause of 0.1 s, doubling to 1 s while accept() keeps failing and back to 0.1 s once one
 * succeeds. The log line comes at most once every 10 s, with a count of those held back.
 * Every accept() in the library goes through this: listeners, the control socket, vhost-user. */
struct sn_accept_pause {
	struct ev_loop *loop;
	ev_timer timer;
	double delay;                /* the next pause */
	bool weak;                   /* the pause does not keep the loop running (the control socket) */
	const char *prefix, *name;   /* log lines start "PREFIXNAME: accept: ", kept by reference */
	struct sn_ratelimit log;
	void (*resume)(struct sn_accept_pause *p);
	void *data;                  /* the owner's, for @resume */
};

/** Sets up @p, not paused. */
void sn_accept_pause_init(struct sn_accept_pause *p, struct ev_loop *loop, const char *prefix, const char *name,
			  void (*resume)(struct sn_accept_pause *p), void *data);

/**
 * accept() failed with @e (an errno value). Returns false for what needs nothing done (no
 * connection pending, interrupted, a connection that failed or was aborted before it was
 * taken, which leaves the backlog): try again when the socket is next readable. Otherwise logs (rate-limited), starts the pause and returns true:
 * the caller stops its accept watcher and leaves restarting it to @resume.
 */
bool sn_accept_failed(struct sn_accept_pause *p, int e);

/** accept() succeeded: the next pause is the shortest again. */
static inline void sn_accept_ok(struct sn_accept_pause *p)
{
	p->delay = 0.1;
}

/** True while paused (@resume is due). */
static inline bool sn_accept_paused(const struct sn_accept_pause *p)
{
	return ev_is_active(&p->timer);
}

/** Cancels a pause without calling @resume: for the owner's close. */
void sn_accept_pause_stop(struct sn_accept_pause *p);

/* Hands the connected, non-blocking @fd to @port, which from then on owns it, and brings the port
 * UP. The callback a kind gives both its listener (accepted clients) and its dialer. */
typedef void (*sn_conn_up_fn)(struct sn_port *port, int fd);

/* What a kind's listener does; a static const table per kind. */
struct sn_listener_ops {
	int type;                                /* SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM */
	const struct sn_port_ops *ops;           /* the listener port's own: kind, close, describe */
	/* Connection-oriented sockets: each accepted connection becomes a port of child_ops. */
	const struct sn_port_ops *child_ops;
	/* A new, not yet initialised port for a connection from @peer: allocated, with the kind's
	 * own fields set (sn_conn_init() and the peer text). NULL when out of memory. */
	struct sn_port *(*child_new)(struct sn_listener *l, const struct sn_sockaddr *peer);
	sn_conn_up_fn child_up;                  /* once registered */
	/* Datagram sockets: called when the socket is readable, in place of accepting. */
	void (*readable)(struct sn_listener *l);
};

/* A socket a SPEC names in place of an address to bind: fd=N, a descriptor handed to the port,
 * which takes it over, or fdname=NAME, one the switch inherited (sn_switch_add_inherited_fd()),
 * of which the port takes a duplicate. */
struct sn_listen_fd {
	int num;        /* fd=N, or -1 */
	char name[256]; /* fdname=NAME, or "" */
};

static inline bool sn_listen_fd_given(const struct sn_listen_fd *f)
{
	return f->num >= 0 || f->name[0];
}

/** Reads fd= and fdname= of @spec into @ret: at most one of them (neither: num -1, name "").
 * -EINVAL with @err naming the key. */
int sn_listen_fd_from_spec(struct sn_spec *spec, struct sn_listen_fd *ret, struct sn_error *err);

/**
 * The descriptor @f names, for a port of @sw: a duplicate (fd= or fdname=), non-blocking and
 * close-on-exec, checked to be a @type socket that listens (a datagram socket: that is bound;
 * with @connected_too, a connected stream socket passes as well). Its address goes to
 * *@ret_addr (may be NULL). -ENOENT with @err set when fdname= names no socket the switch
 * inherited (a caller with a listen= address may bind that instead); -EBADF or -EINVAL with @err
 * saying what is wrong with the descriptor.
 */
int sn_listen_fd_open(struct sn_switch *sw, const struct sn_listen_fd *f, int type, bool connected_too,
		      struct sn_sockaddr *ret_addr, struct sn_error *err);

/* A listening port; a kind's listener struct embeds it first. */
struct sn_listener {
	struct sn_port base;
	const struct sn_listener_ops *lops;
	struct sn_sockaddr addr;
	int fd;
	ev_io io;
	struct sn_accept_pause pause;
	bool own_file;     /* the switch bound the unix socket file: it removes it at close */
	char from[280];    /* " (fd 3)", " (inherited fdname=NAME)" or "" */
};

/**
 * Binds @addr (and listens, for connection-oriented types) and registers @l, zeroed memory the
 * caller allocated, as a LISTENING port of @lops->ops made from @conf; its clients inherit
 * @conf. A unix socket file gets @perm (NULL: 0600; see sn_sock_listen()). With @lfd (may be
 * NULL) given, the socket it names is used instead and nothing is bound (@addr may be NULL),
 * except when fdname= names no inherited socket and there is an @addr to bind: a SPEC that
 * works with socket activation and without. A socket file the listener did not create is left
 * in place at close. Returns 0, or -errno with @err set (bind/listen, the descriptor) or not
 * (registration); on failure the caller frees @l and nothing else is left behind (an fd=N
 * descriptor stays the caller's).
 */
int sn_listener_open(struct sn_listener *l, struct sn_switch *sw, const struct sn_port_conf *conf,
		     const struct sn_listener_ops *lops, const struct sn_sockaddr *addr, const struct sn_sock_perm *perm,
		     const struct sn_listen_fd *lfd, struct sn_error *err);

/** Names @child LISTENER.N after @l, initialises its common part with @ops and @l's MTU, and makes
 * @l its parent (so closing @l closes it). Does not register it. */
void sn_listener_child_init(struct sn_listener *l, struct sn_port *child, const struct sn_port_ops *ops);

/** The listener's close op: stops accepting, closes the socket and removes a unix socket's file. */
void sn_listener_close(struct sn_port *port);

/** The listener's describe op: "listen ADDR". */
void sn_listener_describe(struct sn_port *port, char *buf, size_t len);

/* Dials an address, and dials again after failures with exponential backoff (0.1 s to 5 s). The
 * descriptor is its own until the connect completes, then goes to its port through @up. While it
 * dials, the port is CONNECTING and its error (sn_port_set_error) says why the last try failed. */
struct sn_dialer {
	struct sn_port *port;        /* whose loop it runs on and whose name the log lines carry */
	struct sn_sockaddr addr;
	int type;
	int fd;                      /* the connect in progress, or -1 */
	ev_io io;                    /* writable: the connect finished */
	ev_timer retry;
	double backoff;              /* the wait before the next attempt */
	double held;                 /* what backoff was when the last connect succeeded */
	double connected_at;         /* when it did (loop time; 0: never) */
	sn_conn_up_fn up;
};

/** Sets up @d for @port (the dialer does not start): it will connect a @type socket to @addr. */
void sn_dialer_init(struct sn_dialer *d, struct sn_port *port, const struct sn_sockaddr *addr, int type,
		    sn_conn_up_fn up);

/** Dials now; on failure, again later. */
void sn_dialer_start(struct sn_dialer *d);

/** Dials again after the current backoff: for a connection that was up and got lost. One
 * lost within a second of its connect (a peer that accepts and closes at once) waits twice
 * what the dial before that connect waited, as after a failed one, so such a peer is not
 * redialed ten times a second. */
void sn_dialer_later(struct sn_dialer *d);

/** Stops any attempt in progress or planned, closing its descriptor. A second call is a no-op. */
void sn_dialer_stop(struct sn_dialer *d);

/* Where a connection-oriented port kind goes, as its SPEC says: exactly one of listen=ADDR and
 * connect=ADDR, or a listening socket by fd=N or fdname=NAME (fdname= may come with a
 * listen= address to bind when no socket of that name was inherited), and for a unix listener
 * its mode= and group=. */
struct sn_endpoint {
	bool listen;
	bool has_addr;            /* @addr holds listen= or connect= */
	struct sn_sockaddr addr;
	struct sn_sock_perm perm;
	struct sn_listen_fd lfd;  /* fd= or fdname= */
};

/** Reads @ret from @spec for a port of @kind (for messages); with @unix_only, TCP addresses
 * are refused. -EINVAL with @err naming the key. */
int sn_endpoint_from_spec(struct sn_spec *spec, const char *kind, bool unix_only, struct sn_endpoint *ret,
			  struct sn_error *err);

/* The connection of a connected data port: accepted (the port has a parent), dialed, or a
 * descriptor attached from elsewhere. The port's struct embeds it; its watchers' data is the port. */
struct sn_conn {
	struct sn_port *port;
	int fd;                      /* -1 while down */
	ev_io rio, wio;              /* the kind's reader and writer; wio is started by the kind */
	bool dials;                  /* connect mode: the dialer below is in use */
	struct sn_dialer dialer;
	char peer[128];              /* for log lines and describe */
};

/** Sets up @c for @port, down, with the kind's reader and writer callbacks. */
void sn_conn_init(struct sn_conn *c, struct sn_port *port, void (*read_cb)(struct ev_loop *, ev_io *, int),
		  void (*write_cb)(struct ev_loop *, ev_io *, int));

/** Puts @c in connect mode towards @addr (a @type socket) and names the peer after it; dialing
 * starts with sn_dialer_start(&c->dialer) once the port is registered. @up brings the port UP. */
void sn_conn_dial(struct sn_conn *c, const struct sn_sockaddr *addr, int type, sn_conn_up_fn up);

/**
 * A connect-mode port from start to dialing: initialises @port (the kind allocated it and set
 * up @c, its connection, with sn_conn_init()) from @conf with @ops, puts @c in connect mode
 * towards @addr, registers the port and dials. Returns 0 and sets *@ret_port; on failure the
 * port is freed as its ops say and -errno returned.
 */
int sn_conn_open_dialing(struct sn_port *port, struct sn_conn *c, struct sn_switch *sw,
			 const struct sn_port_conf *conf, const struct sn_port_ops *ops, const struct sn_sockaddr *addr,
			 int type, sn_conn_up_fn up, struct sn_port **ret_port);

/** Takes @fd, starts reading and brings the port UP; what a kind's sn_conn_up_fn ends with. */
void sn_conn_up(struct sn_conn *c, int fd);

/** Stops the watchers and closes the descriptor, if any; the port goes DOWN. */
void sn_conn_down(struct sn_conn *c);

/**
 * The peer is gone (@why: end of stream, an error, bad framing): logs it, then an accepted
 * connection closes its port; any other goes DOWN, and in connect mode dials again later.
 * Returns true when the port is down with nobody to bring it back: its owner may (stream.h).
 * After it returns, the caller must not touch the connection's watchers.
 */
bool sn_conn_lost(struct sn_conn *c, const char *why);

/** After sn_port_input(): when the port is paused (back-pressure), stops reading the socket and
 * returns true. */
bool sn_conn_rx_pause(struct sn_conn *c);

/** For the resume op of a kind whose unread input all waits in the socket: reads again. */
void sn_conn_resume(struct sn_conn *c);

/** For the port's close op: stops everything and closes the descriptors. */
void sn_conn_close(struct sn_conn *c);

/** Writes "PEER", or "connect PEER" in connect mode; returns what snprintf() returned. */
int sn_conn_describe(const struct sn_conn *c, char *buf, size_t len);

#endif
