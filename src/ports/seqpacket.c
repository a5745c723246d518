/* seqpacket.c - SOCK_SEQPACKET unix socket ports, one Ethernet frame per message (gvproxy
 * -listen-bess and other peers that want a connection but keep message boundaries).
 *
 * listen=PATH makes a listener; every connection it accepts is a port of its own, LISTENER.N.
 * connect=PATH makes one port that dials out and, when the peer goes away, dials again with
 * exponential backoff, staying down in between. Frames move in batches through msgio. A peer
 * that ends the connection or fails is closed (or redialled) alone; since an empty message
 * cannot be told from the end of the connection, a peer that sends one is treated as gone. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../log.h"
#include "../msgio.h"
#include "../sock.h"
#include "../switch.h"
#include "../util.h"

#define RX_ROUNDS 4
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0

struct seqpacket_listener {
	struct sn_port base;
	struct sn_sockaddr addr;
	int fd;
	ev_io io;
};

struct seqpacket_port {
	struct sn_port base;
	struct sn_sockaddr addr;  /* connect mode: where to dial */
	bool dial;                /* connect mode */
	bool connecting;
	int fd;
	ev_io rio, wio;
	ev_timer retry;           /* connect mode: next dial */
	double backoff;
	char peer[128];
	struct sn_msgio_rx rx;
	struct sn_msgio_tx tx;
};

static void seqpacket_flush(struct sn_port *port);
static void dial(struct seqpacket_port *sp);

/* ---- data path ---- */

/* An accepted peer closes; a dialing port goes down and dials again later. */
static void peer_lost(struct seqpacket_port *sp, const char *why)
{
	struct ev_loop *loop = sn_port_loop(&sp->base);

	sn_info("port %s: %s: %s", sp->base.name, sp->peer, why);
	if (!sp->dial) {
		sn_port_close(&sp->base);
		return;
	}
	ev_io_stop(loop, &sp->rio);
	ev_io_stop(loop, &sp->wio);
	close(sp->fd);
	sp->fd = -1;
	sn_port_set_state(&sp->base, SN_PORT_DOWN);
	ev_timer_set(&sp->retry, sp->backoff, 0);
	ev_timer_start(loop, &sp->retry);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct seqpacket_port *sp = w->data;
	struct sn_msgio_rx *rx = &sp->rx;

	for (int round = 0; round < RX_ROUNDS; round++) {
		int n = sn_msgio_recv(rx, sp->fd, &sp->base, false);
		unsigned nb = 0;
		bool eof = false;

		if (n == -EAGAIN)
			return;
		if (n < 0) {
			peer_lost(sp, strerror(-n));
			return;
		}
		for (int i = 0; i < n; i++) {
			struct sn_frame *f = rx->frames[i];

			if (rx->len[i] == 0)
				eof = true;
			if (!f)
				continue;
			if (eof)
				sn_frame_unref(f);
			else
				rx->frames[nb++] = f;
		}
		/* what came before the end still goes through */
		sn_port_input(&sp->base, rx->frames, nb);
		if (eof) {
			peer_lost(sp, "end of connection");
			return;
		}
		if (n < SN_MSGIO_BATCH)
			return;
	}
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	seqpacket_flush(w->data);
}

static void seqpacket_flush(struct sn_port *port)
{
	struct seqpacket_port *sp = (struct seqpacket_port *)port;
	struct ev_loop *loop = sn_port_loop(port);
	int r;

	/* a flush requested before the peer went away may still come; wio then belongs to dial() */
	if (sp->fd < 0 || sp->connecting)
		return;
	r = sn_msgio_send(&sp->tx, sp->fd, port, NULL);
	if (r == 0)
		ev_io_stop(loop, &sp->wio);
	else if (r == -EAGAIN)
		ev_io_start(loop, &sp->wio);
	else
		peer_lost(sp, strerror(-r));
}

/* ---- connections ---- */

static void go_up(struct seqpacket_port *sp)
{
	struct ev_loop *loop = sn_port_loop(&sp->base);

	ev_io_set(&sp->rio, sp->fd, EV_READ);
	ev_io_set(&sp->wio, sp->fd, EV_WRITE);
	ev_io_start(loop, &sp->rio);
	sp->backoff = BACKOFF_MIN;
	sn_port_set_state(&sp->base, SN_PORT_UP);
}

static void dial_later(struct seqpacket_port *sp, int r)
{
	struct ev_loop *loop = sn_port_loop(&sp->base);

	sn_debug("port %s: connect to %s: %s", sp->base.name, sp->peer, strerror(-r));
	ev_timer_set(&sp->retry, sp->backoff, 0);
	ev_timer_start(loop, &sp->retry);
	sp->backoff = SN_MIN(sp->backoff * 2, BACKOFF_MAX);
}

static void connect_done_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct seqpacket_port *sp = w->data;
	int r = sn_sock_connect_result(sp->fd);

	ev_io_stop(loop, w);
	w->cb = write_cb;
	sp->connecting = false;
	if (r < 0) {
		close(sp->fd);
		sp->fd = -1;
		dial_later(sp, r);
		return;
	}
	sn_info("port %s: connected to %s", sp->base.name, sp->peer);
	go_up(sp);
}

static void dial(struct seqpacket_port *sp)
{
	struct ev_loop *loop = sn_port_loop(&sp->base);
	int fd = sn_sock_connect(&sp->addr, SOCK_SEQPACKET);

	if (fd < 0) {
		dial_later(sp, fd);
		return;
	}
	sp->fd = fd;
	sp->connecting = true;
	ev_io_set(&sp->wio, fd, EV_WRITE);
	sp->wio.cb = connect_done_cb;
	ev_io_start(loop, &sp->wio);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	dial(w->data);
}

static void seqpacket_port_close(struct sn_port *port)
{
	struct seqpacket_port *sp = (struct seqpacket_port *)port;
	struct ev_loop *loop = sn_port_loop(port);

	ev_io_stop(loop, &sp->rio);
	ev_io_stop(loop, &sp->wio);
	ev_timer_stop(loop, &sp->retry);
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
}

static void seqpacket_port_describe(struct sn_port *port, char *buf, size_t len)
{
	struct seqpacket_port *sp = (struct seqpacket_port *)port;

	snprintf(buf, len, "%s%s", sp->dial ? "connect " : "", sp->peer);
}

static const struct sn_port_ops seqpacket_port_ops = {
	.kind = "seqpacket",
	.flush = seqpacket_flush,
	.close = seqpacket_port_close,
	.describe = seqpacket_port_describe,
};

static struct seqpacket_port *seqpacket_port_new(void)
{
	struct seqpacket_port *sp = calloc(1, sizeof(*sp));

	if (!sp)
		return NULL;
	sp->fd = -1;
	sp->backoff = BACKOFF_MIN;
	ev_io_init(&sp->rio, read_cb, -1, EV_READ);
	sp->rio.data = sp;
	ev_io_init(&sp->wio, write_cb, -1, EV_WRITE);
	sp->wio.data = sp;
	ev_timer_init(&sp->retry, retry_cb, 0, 0);
	sp->retry.data = sp;
	return sp;
}

/* ---- listener ---- */

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct seqpacket_listener *l = w->data;

	for (int i = 0; i < 64; i++) {
		struct sn_sockaddr peer = {.len = sizeof(peer.u)};
		struct seqpacket_port *sp;
		char name[SN_PORT_NAME_MAX];
		int fd = accept(l->fd, &peer.u.sa, &peer.len);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				sn_warn("port %s: accept: %s", l->base.name, strerror(errno));
			return;
		}
		sp = seqpacket_port_new();
		if (!sp || sn_fd_nonblock(fd) < 0) {
			sn_warn("port %s: refusing a client: out of memory", l->base.name);
			free(sp);
			close(fd);
			continue;
		}
		snprintf(name, sizeof(name), "%.*s.%u", SN_PORT_NAME_MAX - 12, l->base.name, ++l->base.children);
		sn_port_init(&sp->base, l->base.sw, &seqpacket_port_ops, name, l->base.mtu);
		sp->base.parent = &l->base;
		sp->fd = fd;
		/* clients rarely bind, and then the listener's path says more than "(unnamed)" */
		if (peer.len <= offsetof(struct sockaddr_un, sun_path) || !peer.u.un.sun_path[0])
			peer = l->addr;
		sn_sockaddr_format(&peer, sp->peer, sizeof(sp->peer));
		if (sn_port_register(&sp->base) < 0) {
			sn_warn("port %s: refusing a client: cannot register %s", l->base.name, name);
			free(sp);
			close(fd);
			continue;
		}
		sn_info("port %s: client %s attached", l->base.name, name);
		go_up(sp);
	}
}

static void listener_close(struct sn_port *port)
{
	struct seqpacket_listener *l = (struct seqpacket_listener *)port;

	ev_io_stop(sn_port_loop(port), &l->io);
	close(l->fd);
	unlink(l->addr.u.un.sun_path);
}

static void listener_describe(struct sn_port *port, char *buf, size_t len)
{
	char a[128];

	sn_sockaddr_format(&((struct seqpacket_listener *)port)->addr, a, sizeof(a));
	snprintf(buf, len, "listen %s", a);
}

static const struct sn_port_ops seqpacket_listener_ops = {
	.kind = "seqpacket",
	.close = listener_close,
	.describe = listener_describe,
};

/* ---- creation from a SPEC ---- */

static int seqpacket_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port,
			    struct sn_error *err)
{
	const char *listen = sn_spec_get(spec, "listen");
	const char *connect = sn_spec_get(spec, "connect");
	const char *text = listen ? listen : connect;
	const char *key = listen ? "listen" : "connect";
	struct sn_sockaddr addr;
	struct sn_port tmp = {0};
	int r;

	r = sn_port_init_spec(&tmp, sw, &seqpacket_port_ops, spec, err);
	if (r < 0)
		return r;
	if (!listen == !connect)
		return sn_error_set(err, -EINVAL, "seqpacket port needs exactly one of 'listen' and 'connect'");
	r = sn_sockaddr_parse(text, key, true, &addr, err);
	if (r < 0)
		return r;
	if (!sn_sockaddr_is_unix(&addr))
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want a unix socket path", text, key);
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		return r;

	if (listen) {
		struct seqpacket_listener *l = calloc(1, sizeof(*l));
		int fd;

		if (!l)
			return -ENOMEM;
		fd = sn_sock_listen(&addr, SOCK_SEQPACKET, err);
		if (fd < 0) {
			free(l);
			return fd;
		}
		l->base = tmp;
		l->base.ops = &seqpacket_listener_ops;
		l->base.state = SN_PORT_LISTENING;
		l->addr = addr;
		l->fd = fd;
		r = sn_port_register(&l->base);
		if (r < 0) {
			listener_close(&l->base);
			free(l);
			return r;
		}
		ev_io_init(&l->io, accept_cb, fd, EV_READ);
		l->io.data = l;
		ev_io_start(sw->loop, &l->io);
		*ret_port = &l->base;
	} else {
		struct seqpacket_port *sp = seqpacket_port_new();

		if (!sp)
			return -ENOMEM;
		sp->base = tmp;
		sp->addr = addr;
		sp->dial = true;
		sn_sockaddr_format(&addr, sp->peer, sizeof(sp->peer));
		r = sn_port_register(&sp->base);
		if (r < 0) {
			free(sp);
			return r;
		}
		dial(sp);
		*ret_port = &sp->base;
	}
	return 0;
}

const struct sn_port_kind sn_port_kind_seqpacket = {
	.name = "seqpacket",
	.create = seqpacket_create,
};
