/* sockconn.c - listening, dialing and losing peers, once for every socket port kind (stream,
 * seqpacket, dgram). A listener accepts a bounded number of clients per wake-up so a connection
 * storm cannot starve the data path, and names each client's port LISTENER.N; a dialer keeps
 * trying an absent peer with exponential backoff and never blocks the loop in connect(); a lost
 * peer closes an accepted port but only takes a dialed one down until the dialer reconnects. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logging.h"
#include "sockconn.h"
#include "port.h"
#include "spec.h"
#include "util.h"

#define ACCEPT_BATCH 64
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0
#define QUICK_LOSS 1.0 /* s: a connection lost sooner than this makes the next dial wait longer */
#define ACCEPT_PAUSE_MIN 0.1
#define ACCEPT_PAUSE_MAX 1.0
#define ACCEPT_LOG_INTERVAL 10.0

/* ---- pausing accept() ---- */

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_accept_pause *p = w->data;

	if (p->weak)
		ev_ref(loop); /* the one-shot timer has stopped: give back what starting it took */
	p->resume(p);
}

void sn_accept_pause_init(struct sn_accept_pause *p, struct ev_loop *loop, const char *prefix, const char *name,
			  void (*resume)(struct sn_accept_pause *p), void *data)
{
	p->loop = loop;
	p->delay = ACCEPT_PAUSE_MIN;
	p->weak = false;
	p->prefix = prefix;
	p->name = name;
	p->log = SN_RATELIMIT_INIT(ACCEPT_LOG_INTERVAL);
	p->resume = resume;
	p->data = data;
	ev_init(&p->timer, accept_pause_cb);
	p->timer.data = p;
}

bool sn_accept_failed(struct sn_accept_pause *p, int e)
{
	unsigned long held;

	switch (e) {
	case EAGAIN:
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
#endif
	case EINTR:
	case ECONNABORTED:
	/* Linux hands a new connection's pending network error to accept(), and that connection
	 * is gone from the backlog: try the next one as usual (accept(2), "Error handling") */
	case EPROTO:
	case ENOPROTOOPT:
	case EHOSTDOWN:
	case EHOSTUNREACH:
	case ENETDOWN:
	case ENETUNREACH:
	case EOPNOTSUPP:
#ifdef ENONET
	case ENONET:
#endif
		return false;
	}
	if (sn_ratelimit_ok(&p->log, ev_now(p->loop), &held)) {
		if (held)
			sn_warn("%s%s: accept: %s; pausing for %.1f s (%lu more failures since the last message)",
				p->prefix, p->name, strerror(e), p->delay, held);
		else
			sn_warn("%s%s: accept: %s; pausing for %.1f s", p->prefix, p->name, strerror(e), p->delay);
	}
	if (!ev_is_active(&p->timer)) {
		ev_timer_set(&p->timer, p->delay, 0);
		ev_timer_start(p->loop, &p->timer);
		if (p->weak)
			ev_unref(p->loop);
	}
	p->delay = SN_MIN(p->delay * 2, ACCEPT_PAUSE_MAX);
	return true;
}

void sn_accept_pause_stop(struct sn_accept_pause *p)
{
	if (!ev_is_active(&p->timer))
		return;
	if (p->weak)
		ev_ref(p->loop);
	ev_timer_stop(p->loop, &p->timer);
}

/* ---- listener ---- */

void sn_listener_child_init(struct sn_listener *l, struct sn_port *child, const struct sn_port_ops *ops)
{
	struct sn_port_conf conf = l->base.conf;

	snprintf(conf.name, sizeof(conf.name), "%.*s.%u", SN_PORT_NAME_MAX - 12, l->base.name, ++l->base.children);
	sn_port_init(child, l->base.sw, ops, &conf);
	child->parent = &l->base;
}

static void accept_some(struct sn_listener *l)
{
	const struct sn_listener_ops *lops = l->lops;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sn_sockaddr peer = {.len = sizeof(peer.u)};
		struct sn_port *child;
		int fd = accept(l->fd, &peer.u.sa, &peer.len);

		if (fd < 0) {
			if (sn_accept_failed(&l->pause, errno))
				ev_io_stop(sn_port_loop(&l->base), &l->io);
			return;
		}
		sn_accept_ok(&l->pause);
		child = sn_fd_nonblock(fd) < 0 ? NULL : lops->child_new(l, &peer);
		if (!child) {
			sn_warn("port %s: refusing a client: out of memory", l->base.name);
			close(fd);
			continue;
		}
		sn_listener_child_init(l, child, lops->child_ops);
		if (sn_port_register(child) < 0) {
			sn_warn("port %s: refusing a client: cannot register %s", l->base.name, child->name);
			sn_port_free_unregistered(child);
			close(fd);
			continue;
		}
		sn_info("port %s: client %s attached", l->base.name, child->name);
		lops->child_up(child, fd);
	}
}

static void listener_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_listener *l = w->data;

	if (l->lops->readable)
		l->lops->readable(l);
	else
		accept_some(l);
}

static void listener_resume(struct sn_accept_pause *p)
{
	struct sn_listener *l = p->data;

	ev_io_start(sn_port_loop(&l->base), &l->io);
}

/* ---- sockets named by fd= and fdname= ---- */

int sn_listen_fd_from_spec(struct sn_spec *spec, struct sn_listen_fd *ret, struct sn_error *err)
{
	const char *num = sn_spec_get(spec, "fd");
	const char *name = sn_spec_get(spec, "fdname");
	struct sn_listen_fd f = {.num = -1};
	unsigned n;

	if (num && name)
		return sn_error_set(err, -EINVAL, "keys 'fd' and 'fdname' both name a socket: give one of them");
	if (num) {
		if (sn_parse_uint(num, 0, 1u << 20, &n) < 0)
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'fd': want a descriptor number", num);
		f.num = (int)n;
	}
	if (name && sn_strlcpy(f.name, name, sizeof(f.name)) < 0)
		return sn_error_set(err, -EINVAL, "bad value for key 'fdname': at most %zu bytes", sizeof(f.name) - 1);
	if (name && !*name)
		return sn_error_set(err, -EINVAL, "empty value for key 'fdname'");
	*ret = f;
	return 0;
}

static const char *type_word(int type)
{
	switch (type) {
	case SOCK_STREAM:
		return "stream";
	case SOCK_DGRAM:
		return "datagram";
	case SOCK_SEQPACKET:
		return "seqpacket";
	}
	return "other";
}

int sn_listen_fd_open(struct sn_switch *sw, const struct sn_listen_fd *f, int type, bool connected_too,
		      struct sn_sockaddr *ret_addr, struct sn_error *err)
{
	struct sn_sockaddr a = {.len = sizeof(a.u)};
	char what[300], names[256];
	int src = f->num, got = 0, on = 0, fd, r;
	socklen_t len = sizeof(got);

	if (f->num >= 0) {
		snprintf(what, sizeof(what), "bad value '%d' for key 'fd'", f->num);
	} else {
		snprintf(what, sizeof(what), "bad value '%s' for key 'fdname'", f->name);
		src = sn_switch_inherited_fd(sw, f->name);
		if (src < 0) {
			sn_switch_inherited_names(sw, names, sizeof(names));
			return sn_error_set(err, -ENOENT, "%s: no socket of that name was inherited (%s%s)", what,
					    names[0] ? "there are: " : "there are none", names);
		}
	}
	if (getsockopt(src, SOL_SOCKET, SO_TYPE, &got, &len) < 0) {
		r = errno == ENOTSOCK ? -EINVAL : -errno;
		return sn_error_set(err, r, "%s: %s", what, errno == ENOTSOCK ? "not a socket" : strerror(errno));
	}
	if (got != type)
		return sn_error_set(err, -EINVAL, "%s: a %s socket, and this port takes a %s socket", what, type_word(got),
				    type_word(type));
	len = sizeof(on);
	if (type != SOCK_DGRAM && (getsockopt(src, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0 || !on)) {
		struct sn_sockaddr peer = {.len = sizeof(peer.u)};

		if (!connected_too || getpeername(src, &peer.u.sa, &peer.len) < 0)
			return sn_error_set(err, -EINVAL, "%s: the socket does not listen", what);
	}
	if (getsockname(src, &a.u.sa, &a.len) < 0)
		return sn_error_set(err, -errno, "%s: %s", what, strerror(errno));
	if (type == SOCK_DGRAM && a.u.sa.sa_family == AF_UNIX && a.len <= offsetof(struct sockaddr_un, sun_path) + 1)
		return sn_error_set(err, -EINVAL, "%s: the datagram socket is not bound to a path", what);
	fd = fcntl(src, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return sn_error_set(err, -errno, "%s: %s", what, strerror(errno));
	r = sn_fd_nonblock(fd);
	if (r < 0) {
		close(fd);
		return sn_error_set(err, r, "%s: %s", what, strerror(-r));
	}
	if (ret_addr)
		*ret_addr = a;
	return fd;
}

int sn_listener_open(struct sn_listener *l, struct sn_switch *sw, const struct sn_port_conf *conf,
		     const struct sn_listener_ops *lops, const struct sn_sockaddr *addr, const struct sn_sock_perm *perm,
		     const struct sn_listen_fd *lfd, struct sn_error *err)
{
	int fd = -ENOENT, r;

	r = sn_port_init(&l->base, sw, lops->ops, conf);
	/* a datagram listener reads for its peers before any of them is a port */
	if (r >= 0)
		r = sn_port_want_buffers(&l->base, sn_port_max_frame(&l->base));
	if (r < 0)
		return r;
	if (lfd && sn_listen_fd_given(lfd)) {
		fd = sn_listen_fd_open(sw, lfd, lops->type, false, &l->addr, err);
		if (fd < 0 && (fd != -ENOENT || !addr))
			return fd;
		if (fd >= 0 && lfd->num >= 0)
			snprintf(l->from, sizeof(l->from), " (fd %d)", lfd->num);
		else if (fd >= 0)
			snprintf(l->from, sizeof(l->from), " (inherited fdname=%s)", lfd->name);
		else
			sn_info("port %s: no inherited socket '%s': binding the listen= address", l->base.name, lfd->name);
	}
	if (fd < 0) {
		fd = sn_sock_listen(addr, lops->type, perm, err);
		if (fd < 0)
			return fd;
		l->addr = *addr;
		l->own_file = sn_sockaddr_is_unix(addr);
	}
	l->lops = lops;
	l->fd = fd;
	ev_io_init(&l->io, listener_cb, fd, EV_READ);
	l->io.data = l;
	/* the name is the port's own array, which lives as long as the listener */
	sn_accept_pause_init(&l->pause, sn_port_loop(&l->base), "port ", l->base.name, listener_resume, l);
	r = sn_port_register(&l->base);
	if (r < 0) {
		sn_listener_close(&l->base);
		return r;
	}
	if (lfd && lfd->num >= 0 && l->from[0])
		close(lfd->num); /* taken over: the listener owns its duplicate */
	ev_io_start(sn_port_loop(&l->base), &l->io);
	return 0;
}

void sn_listener_close(struct sn_port *port)
{
	struct sn_listener *l = (struct sn_listener *)port;

	ev_io_stop(sn_port_loop(port), &l->io);
	sn_accept_pause_stop(&l->pause);
	close(l->fd);
	/* a socket file someone else made (socket activation) stays theirs */
	if (l->own_file)
		unlink(l->addr.u.un.sun_path);
}

void sn_listener_describe(struct sn_port *port, char *buf, size_t len)
{
	struct sn_listener *l = (struct sn_listener *)port;
	char a[128];

	sn_sockaddr_format(&l->addr, a, sizeof(a));
	snprintf(buf, len, "listen %s%s", a, l->from);
}

/* ---- dialer ---- */

static void retry_after(struct sn_dialer *d, double wait)
{
	sn_port_set_state(d->port, SN_PORT_CONNECTING);
	ev_timer_set(&d->retry, wait, 0);
	ev_timer_start(sn_port_loop(d->port), &d->retry);
}

/* The port shows each failure (`ports`: connecting, and the error); the log gets a line when
 * the reason changes, not one per retry. */
static void dial_failed(struct sn_dialer *d, int r)
{
	char a[128];

	sn_sockaddr_format(&d->addr, a, sizeof(a));
	if (strcmp(d->port->error, strerror(-r)))
		sn_info("port %s: connect to %s: %s; retrying (0.1 s doubling to %.0f s)", d->port->name, a,
			strerror(-r), BACKOFF_MAX);
	else
		sn_debug("port %s: connect to %s: %s", d->port->name, a, strerror(-r));
	sn_port_set_error(d->port, "%s", strerror(-r));
	retry_after(d, d->backoff);
	d->backoff = SN_MIN(d->backoff * 2, BACKOFF_MAX);
}

static void connect_done_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_dialer *d = w->data;
	int fd = d->fd, r = sn_sock_connect_result(fd);
	char a[128];

	ev_io_stop(loop, w);
	d->fd = -1;
	if (r < 0) {
		close(fd);
		dial_failed(d, r);
		return;
	}
	sn_sockaddr_format(&d->addr, a, sizeof(a));
	sn_info("port %s: connected to %s", d->port->name, a);
	d->held = d->backoff;
	d->backoff = BACKOFF_MIN;
	d->connected_at = ev_now(loop);
	d->up(d->port, fd);
}

void sn_dialer_start(struct sn_dialer *d)
{
	int fd;

	sn_port_set_state(d->port, SN_PORT_CONNECTING);
	fd = sn_sock_connect(&d->addr, d->type);

	if (fd < 0) {
		dial_failed(d, fd);
		return;
	}
	d->fd = fd;
	ev_io_set(&d->io, fd, EV_WRITE);
	ev_io_start(sn_port_loop(d->port), &d->io);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	sn_dialer_start(w->data);
}

void sn_dialer_init(struct sn_dialer *d, struct sn_port *port, const struct sn_sockaddr *addr, int type,
		    sn_conn_up_fn up)
{
	d->port = port;
	d->addr = *addr;
	d->type = type;
	d->fd = -1;
	d->backoff = d->held = BACKOFF_MIN;
	d->up = up;
	ev_io_init(&d->io, connect_done_cb, -1, EV_WRITE);
	d->io.data = d;
	ev_timer_init(&d->retry, retry_cb, 0, 0);
	d->retry.data = d;
}

void sn_dialer_later(struct sn_dialer *d)
{
	/* a peer that accepts and drops at once: the connect reset the backoff, so go on from
	 * where it was before, as if the connect had failed */
	if (ev_now(sn_port_loop(d->port)) - d->connected_at < QUICK_LOSS)
		d->backoff = SN_MIN(d->held * 2, BACKOFF_MAX);
	retry_after(d, d->backoff);
}

void sn_dialer_stop(struct sn_dialer *d)
{
	struct ev_loop *loop = sn_port_loop(d->port);

	ev_io_stop(loop, &d->io);
	ev_timer_stop(loop, &d->retry);
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* ---- a connected data port ---- */

void sn_conn_init(struct sn_conn *c, struct sn_port *port, void (*read_cb)(struct ev_loop *, ev_io *, int),
		  void (*write_cb)(struct ev_loop *, ev_io *, int))
{
	c->port = port;
	c->fd = -1;
	ev_io_init(&c->rio, read_cb, -1, EV_READ);
	c->rio.data = port;
	ev_io_init(&c->wio, write_cb, -1, EV_WRITE);
	c->wio.data = port;
	c->dials = false;
}

void sn_conn_dial(struct sn_conn *c, const struct sn_sockaddr *addr, int type, sn_conn_up_fn up)
{
	c->dials = true;
	sn_dialer_init(&c->dialer, c->port, addr, type, up);
	sn_sockaddr_format(addr, c->peer, sizeof(c->peer));
}

int sn_conn_open_dialing(struct sn_port *port, struct sn_conn *c, struct sn_switch *sw,
			 const struct sn_port_conf *conf, const struct sn_port_ops *ops, const struct sn_sockaddr *addr,
			 int type, sn_conn_up_fn up, struct sn_port **ret_port)
{
	int r = sn_port_init(port, sw, ops, conf);

	if (r >= 0) {
		sn_conn_dial(c, addr, type, up);
		r = sn_port_register(port);
	}
	if (r < 0) {
		sn_port_free_unregistered(port);
		return r;
	}
	sn_dialer_start(&c->dialer);
	*ret_port = port;
	return 0;
}

int sn_endpoint_from_spec(struct sn_spec *spec, const char *kind, bool unix_only, struct sn_endpoint *ret,
			  struct sn_error *err)
{
	const char *listen = sn_spec_get(spec, "listen");
	const char *connect = sn_spec_get(spec, "connect");
	const char *text = listen ? listen : connect, *key = listen ? "listen" : "connect";
	struct sn_endpoint ep = {.has_addr = text != NULL};
	int r;

	r = sn_listen_fd_from_spec(spec, &ep.lfd, err);
	if (r < 0)
		return r;
	ep.listen = listen || sn_listen_fd_given(&ep.lfd);
	if (connect && sn_listen_fd_given(&ep.lfd))
		return sn_error_set(err, -EINVAL, "key '%s' names a listening socket, and this port has 'connect'",
				    ep.lfd.num >= 0 ? "fd" : "fdname");
	if (listen && ep.lfd.num >= 0)
		return sn_error_set(err, -EINVAL, "keys 'fd' and 'listen' both say where to listen: give exactly one of them");
	if (!ep.listen == !connect)
		return sn_error_set(err, -EINVAL, "%s port needs exactly one of 'listen' and 'connect' (or a listening "
				    "socket by 'fd' or 'fdname')", kind);
	if (text) {
		r = sn_sockaddr_parse(text, key, unix_only, &ep.addr, err);
		if (r < 0)
			return r;
		if (unix_only && !sn_sockaddr_is_unix(&ep.addr))
			return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want a unix socket path", text, key);
	}
	r = sn_sock_perm_from_spec(spec, listen ? &ep.addr : NULL, key, &ep.perm, err);
	if (r < 0)
		return r;
	*ret = ep;
	return 0;
}

void sn_conn_up(struct sn_conn *c, int fd)
{
	sn_sock_set_sndbuf(fd, sn_port_sock_buf(c->port));
	c->fd = fd;
	ev_io_set(&c->rio, fd, EV_READ);
	ev_io_set(&c->wio, fd, EV_WRITE);
	ev_io_start(sn_port_loop(c->port), &c->rio);
	sn_port_set_state(c->port, SN_PORT_UP);
}

static void drop_fd(struct sn_conn *c)
{
	struct ev_loop *loop = sn_port_loop(c->port);

	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void sn_conn_down(struct sn_conn *c)
{
	drop_fd(c);
	sn_port_set_state(c->port, SN_PORT_DOWN);
}

bool sn_conn_lost(struct sn_conn *c, const char *why)
{
	sn_info("port %s: %s: %s", c->port->name, c->peer, why);
	if (c->port->parent) {
		sn_port_close(c->port);
		return false;
	}
	sn_conn_down(c);
	if (c->dials) {
		sn_port_set_error(c->port, "connection lost: %s", why);
		sn_dialer_later(&c->dialer);
		return false;
	}
	return true;
}

bool sn_conn_rx_pause(struct sn_conn *c)
{
	if (!sn_port_rx_paused(c->port))
		return false;
	ev_io_stop(sn_port_loop(c->port), &c->rio);
	return true;
}

void sn_conn_resume(struct sn_conn *c)
{
	if (c->fd >= 0)
		ev_io_start(sn_port_loop(c->port), &c->rio);
}

void sn_conn_close(struct sn_conn *c)
{
	drop_fd(c);
	if (c->dials)
		sn_dialer_stop(&c->dialer);
}

int sn_conn_describe(const struct sn_conn *c, char *buf, size_t len)
{
	return snprintf(buf, len, "%s%s", c->dials ? "connect " : "", c->peer);
}
