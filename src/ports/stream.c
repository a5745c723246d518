/* stream.c - SOCK_STREAM ports over unix or TCP sockets, with length-prefixed frames.
 *
 * listen=ADDR makes a listener; every client it accepts is a port of its own, named
 * LISTENER.N. connect=ADDR makes one port that dials out and, when the peer goes away,
 * dials again with exponential backoff. Reads take as much as the socket has (the receive
 * buffer holds 256 KiB) and every whole frame in it goes to the switch as one batch; writes
 * send up to IOV_BATCH frames per writev(). A bad length or EOF closes that peer only. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../framing.h"
#include "../log.h"
#include "../sock.h"
#include "../switch.h"
#include "../util.h"
#include "stream.h"

#define RX_BATCH 64
#define TX_BATCH 256     /* frames per sendmsg: at most two iovecs each */
#define STAGE_CAP 65536   /* prefixes, and small frames whole, are copied here */
#define SMALL_FRAME 256   /* a frame this short is cheaper to copy than to give its own iovec */
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0

struct stream_conf {
	struct sn_sockaddr addr;
	enum sn_framing framing;
	bool listen;
};

struct stream_listener {
	struct sn_port base;
	struct stream_conf conf;
	int fd;
	ev_io io;
};

struct stream_port {
	struct sn_port base;
	struct stream_conf conf;
	int fd;
	ev_io rio, wio;
	ev_timer retry;     /* connect mode: next dial */
	double backoff;
	bool connecting;
	struct sn_streambuf rx;
	struct sn_frame *batch[RX_BATCH];
	unsigned nbatch;
	uint32_t tx_off;    /* bytes of the head record already written */
	char peer[128];
	uint8_t *stage;
	struct iovec iov[2 * TX_BATCH];
	sn_stream_lost_fn lost; /* a descriptor from elsewhere (stream.h): its owner hears of its end */
	void *owner;
};

static void stream_flush(struct sn_port *port);
static void dial(struct stream_port *sp);

/* ---- data path ---- */

static void batch_push(struct stream_port *sp)
{
	if (sp->nbatch) {
		sn_port_input(&sp->base, sp->batch, sp->nbatch);
		sp->nbatch = 0;
	}
}

static int frame_cb(void *ctx, const uint8_t *data, uint32_t len)
{
	struct stream_port *sp = ctx;
	struct sn_frame *f = sn_port_rx_copy(&sp->base, data, len);

	if (f) {
		sp->batch[sp->nbatch++] = f;
		if (sp->nbatch == RX_BATCH)
			batch_push(sp);
	}
	return 0;
}

/* The peer went away or broke the framing: a client port closes, a dialing port redials. */
static void peer_lost(struct stream_port *sp, const char *why)
{
	struct ev_loop *loop = sn_port_loop(&sp->base);

	sn_info("port %s: %s: %s", sp->base.name, sp->peer, why);
	if (sp->conf.listen) {
		sn_port_close(&sp->base);
		return;
	}
	sn_stream_port_detach(&sp->base);
	if (sp->lost) {
		sp->lost(&sp->base, sp->owner, why);
		return;
	}
	ev_timer_set(&sp->retry, sp->backoff, 0);
	ev_timer_start(loop, &sp->retry);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream_port *sp = w->data;

	/* a few reads per wake-up, so one busy peer cannot starve the others */
	for (int round = 0; round < 4; round++) {
		size_t room = sp->rx.cap - sp->rx.len;
		ssize_t n = sn_streambuf_fill(&sp->rx, sp->fd);
		int r;

		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return;
		if (n <= 0) {
			if (sp->rx.len > 0)
				sp->base.stats.drop_bad_framing++; /* died mid-frame */
			peer_lost(sp, n == 0 ? "end of stream" : strerror((int)-n));
			return;
		}
		r = sn_streambuf_drain(&sp->rx, sp->conf.framing, frame_cb, sp);
		batch_push(sp);
		if (r < 0) {
			sp->base.stats.drop_bad_framing++;
			peer_lost(sp, "bad frame length");
			return;
		}
		if ((size_t)n < room)
			return; /* the socket is empty */
	}
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream_port *sp = w->data;

	stream_flush(&sp->base);
}

static void stream_flush(struct sn_port *port)
{
	struct stream_port *sp = (struct stream_port *)port;
	struct ev_loop *loop = sn_port_loop(port);
	size_t hl = sn_framing_hdr_len(sp->conf.framing);

	while (!sn_txq_empty(&port->txq)) {
		uint32_t n = SN_MIN(sn_txq_len(&port->txq), TX_BATCH), done = 0;
		int niov = 0;
		size_t total = 0, used = 0;
		ssize_t w;

		/* Prefixes and small frames go into the staging buffer, merged into one iovec while
		 * they stay contiguous; a large frame is sent from its pool buffer. */
		for (uint32_t i = 0; i < n; i++) {
			struct sn_frame *f = sn_txq_peek(&port->txq, i);
			size_t copy = hl + (f->len <= SMALL_FRAME ? f->len : 0);
			uint8_t *p = sp->stage + used;

			if (used + copy > STAGE_CAP) {
				n = i;
				break;
			}
			sn_framing_put(sp->conf.framing, p, f->len);
			if (copy > hl)
				memcpy(p + hl, f->data, f->len);
			if (niov > 0 && (uint8_t *)sp->iov[niov - 1].iov_base + sp->iov[niov - 1].iov_len == p)
				sp->iov[niov - 1].iov_len += copy;
			else
				sp->iov[niov++] = (struct iovec){p, copy};
			if (copy == hl)
				sp->iov[niov++] = (struct iovec){f->data, f->len};
			used += copy;
			total += hl + f->len;
		}
		/* skip what an earlier partial write already sent of the head record */
		if (sp->tx_off) {
			size_t off = sp->tx_off;

			for (int k = 0; off > 0; k++) {
				size_t take = SN_MIN(off, sp->iov[k].iov_len);

				sp->iov[k].iov_base = (uint8_t *)sp->iov[k].iov_base + take;
				sp->iov[k].iov_len -= take;
				off -= take;
			}
			total -= sp->tx_off;
		}
		do
			w = sendmsg(sp->fd, &(struct msghdr){.msg_iov = sp->iov, .msg_iovlen = niov}, MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(loop, &sp->wio);
				return;
			}
			peer_lost(sp, strerror(errno));
			return;
		}
		/* count the records written whole; remember how far into the next one we got */
		{
			size_t left = (size_t)w + sp->tx_off;

			for (uint32_t i = 0; i < n; i++) {
				size_t rec = hl + sn_txq_peek(&port->txq, i)->len;

				if (left < rec)
					break;
				left -= rec;
				done++;
			}
			sp->tx_off = (uint32_t)left;
		}
		sn_txq_sent(port, done);
		if ((size_t)w < total) {
			ev_io_start(loop, &sp->wio);
			return;
		}
	}
	ev_io_stop(loop, &sp->wio);
}

/* ---- connections ---- */

static void go_up(struct stream_port *sp)
{
	struct ev_loop *loop = sn_port_loop(&sp->base);
	int one = 1;

	if (!sn_sockaddr_is_unix(&sp->conf.addr))
		setsockopt(sp->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_set(&sp->rio, sp->fd, EV_READ);
	ev_io_set(&sp->wio, sp->fd, EV_WRITE);
	ev_io_start(loop, &sp->rio);
	sp->backoff = BACKOFF_MIN;
	sn_port_set_state(&sp->base, SN_PORT_UP);
}

static void connect_done_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream_port *sp = w->data;
	int r = sn_sock_connect_result(sp->fd);

	ev_io_stop(loop, w);
	w->cb = write_cb;
	sp->connecting = false;
	if (r < 0) {
		close(sp->fd);
		sp->fd = -1;
		sn_debug("port %s: connect to %s: %s", sp->base.name, sp->peer, strerror(-r));
		ev_timer_set(&sp->retry, sp->backoff, 0);
		ev_timer_start(loop, &sp->retry);
		sp->backoff = SN_MIN(sp->backoff * 2, BACKOFF_MAX);
		return;
	}
	sn_info("port %s: connected to %s", sp->base.name, sp->peer);
	go_up(sp);
}

static void dial(struct stream_port *sp)
{
	struct ev_loop *loop = sn_port_loop(&sp->base);
	int fd = sn_sock_connect(&sp->conf.addr, SOCK_STREAM);

	if (fd < 0) {
		sn_debug("port %s: connect to %s: %s", sp->base.name, sp->peer, strerror(-fd));
		ev_timer_set(&sp->retry, sp->backoff, 0);
		ev_timer_start(loop, &sp->retry);
		sp->backoff = SN_MIN(sp->backoff * 2, BACKOFF_MAX);
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

static void stream_port_close(struct sn_port *port)
{
	struct stream_port *sp = (struct stream_port *)port;
	struct ev_loop *loop = sn_port_loop(port);

	ev_io_stop(loop, &sp->rio);
	ev_io_stop(loop, &sp->wio);
	ev_timer_stop(loop, &sp->retry);
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	for (unsigned i = 0; i < sp->nbatch; i++)
		sn_frame_unref(sp->batch[i]);
	sp->nbatch = 0;
}

static void stream_port_free(struct sn_port *port)
{
	struct stream_port *sp = (struct stream_port *)port;

	sn_streambuf_finish(&sp->rx);
	free(sp->stage);
	free(sp);
}

static void stream_port_describe(struct sn_port *port, char *buf, size_t len)
{
	struct stream_port *sp = (struct stream_port *)port;

	snprintf(buf, len, "%s%s framing=%s", sp->conf.listen ? "" : "connect ", sp->peer,
		 sn_framing_name(sp->conf.framing));
}

static const struct sn_port_ops stream_port_ops = {
	.kind = "stream",
	.flush = stream_flush,
	.close = stream_port_close,
	.free = stream_port_free,
	.describe = stream_port_describe,
};

static struct stream_port *stream_port_new(const struct stream_conf *conf)
{
	struct stream_port *sp = calloc(1, sizeof(*sp));

	if (!sp)
		return NULL;
	sp->stage = malloc(STAGE_CAP);
	if (!sp->stage || sn_streambuf_init(&sp->rx, SN_STREAMBUF_DEFAULT) < 0) {
		free(sp->stage);
		free(sp);
		return NULL;
	}
	sp->conf = *conf;
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
	struct stream_listener *l = w->data;

	for (int i = 0; i < 64; i++) {
		struct sn_sockaddr peer = {.len = sizeof(peer.u)};
		struct stream_port *sp;
		char name[SN_PORT_NAME_MAX];
		int fd = accept(l->fd, &peer.u.sa, &peer.len);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				sn_warn("port %s: accept: %s", l->base.name, strerror(errno));
			return;
		}
		sp = stream_port_new(&l->conf);
		if (!sp || sn_fd_nonblock(fd) < 0) {
			sn_warn("port %s: refusing a client: out of memory", l->base.name);
			free(sp);
			close(fd);
			continue;
		}
		snprintf(name, sizeof(name), "%.*s.%u", SN_PORT_NAME_MAX - 12, l->base.name, ++l->base.children);
		sn_port_init(&sp->base, l->base.sw, &stream_port_ops, name, l->base.mtu);
		sp->base.parent = &l->base;
		sp->fd = fd;
		if (sn_sockaddr_is_unix(&l->conf.addr))
			sn_sockaddr_format(&l->conf.addr, sp->peer, sizeof(sp->peer));
		else
			sn_sockaddr_format(&peer, sp->peer, sizeof(sp->peer));
		if (sn_port_register(&sp->base) < 0) {
			sn_warn("port %s: refusing a client: cannot register %s", l->base.name, name);
			stream_port_free(&sp->base);
			close(fd);
			continue;
		}
		sn_info("port %s: client %s attached", l->base.name, name);
		go_up(sp);
	}
}

static void listener_close(struct sn_port *port)
{
	struct stream_listener *l = (struct stream_listener *)port;

	ev_io_stop(sn_port_loop(port), &l->io);
	close(l->fd);
	if (sn_sockaddr_is_unix(&l->conf.addr))
		unlink(l->conf.addr.u.un.sun_path);
}

static void listener_describe(struct sn_port *port, char *buf, size_t len)
{
	struct stream_listener *l = (struct stream_listener *)port;
	char a[128];

	sn_sockaddr_format(&l->conf.addr, a, sizeof(a));
	snprintf(buf, len, "listen %s framing=%s", a, sn_framing_name(l->conf.framing));
}

static const struct sn_port_ops stream_listener_ops = {
	.kind = "stream",
	.close = listener_close,
	.describe = listener_describe,
};

/* ---- creation from a SPEC ---- */

static int stream_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port,
			 struct sn_error *err)
{
	const char *listen = sn_spec_get(spec, "listen");
	const char *connect = sn_spec_get(spec, "connect");
	const char *framing = sn_spec_get(spec, "framing");
	struct stream_conf conf = {.framing = SN_FRAMING_QEMU};
	struct sn_port tmp = {0};
	int r;

	r = sn_port_init_spec(&tmp, sw, &stream_port_ops, spec, err);
	if (r < 0)
		return r;
	if (!listen == !connect)
		return sn_error_set(err, -EINVAL, "stream port needs exactly one of 'listen' and 'connect'");
	r = sn_sockaddr_parse(listen ? listen : connect, listen ? "listen" : "connect", false, &conf.addr, err);
	if (r < 0)
		return r;
	if (framing && sn_framing_from_name(framing, &conf.framing) < 0)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'framing': want qemu, hyperkit or vde",
				    framing);
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		return r;
	conf.listen = listen != NULL;

	if (conf.listen) {
		struct stream_listener *l = calloc(1, sizeof(*l));
		int fd;

		if (!l)
			return -ENOMEM;
		fd = sn_sock_listen(&conf.addr, SOCK_STREAM, err);
		if (fd < 0) {
			free(l);
			return fd;
		}
		l->base = tmp;
		l->base.ops = &stream_listener_ops;
		l->base.state = SN_PORT_LISTENING;
		l->conf = conf;
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
		return 0;
	} else {
		struct stream_port *sp = stream_port_new(&conf);

		if (!sp)
			return -ENOMEM;
		sp->base = tmp;
		sn_sockaddr_format(&conf.addr, sp->peer, sizeof(sp->peer));
		r = sn_port_register(&sp->base);
		if (r < 0) {
			stream_port_free(&sp->base);
			return r;
		}
		dial(sp);
		*ret_port = &sp->base;
		return 0;
	}
}

const struct sn_port_kind sn_port_kind_stream = {
	.name = "stream",
	.create = stream_create,
};

/* ---- a descriptor opened elsewhere (stream.h) ---- */

int sn_stream_port_create(const struct sn_port *tmpl, enum sn_framing framing, sn_stream_lost_fn lost,
			  void *owner, struct sn_port **ret_port)
{
	struct stream_conf conf = {.framing = framing};
	struct stream_port *sp;

	conf.addr.u.sa.sa_family = AF_UNIX; /* no TCP_NODELAY in go_up() */
	sp = stream_port_new(&conf);
	if (!sp)
		return -ENOMEM;
	sp->base = *tmpl;
	sp->lost = lost;
	sp->owner = owner;
	*ret_port = &sp->base;
	return 0;
}

void sn_stream_port_attach(struct sn_port *port, int fd, const char *peer)
{
	struct stream_port *sp = (struct stream_port *)port;

	sn_stream_port_detach(port);
	if (peer)
		sn_strlcpy(sp->peer, peer, sizeof(sp->peer));
	sp->fd = fd;
	go_up(sp);
}

void sn_stream_port_detach(struct sn_port *port)
{
	struct stream_port *sp = (struct stream_port *)port;
	struct ev_loop *loop = sn_port_loop(port);

	ev_io_stop(loop, &sp->rio);
	ev_io_stop(loop, &sp->wio);
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
	sp->rx.len = 0;
	sp->tx_off = 0;
	sn_port_set_state(port, SN_PORT_DOWN);
}

void *sn_stream_port_owner(struct sn_port *port)
{
	return ((struct stream_port *)port)->owner;
}

void sn_stream_port_flush(struct sn_port *port)
{
	stream_flush(port);
}

void sn_stream_port_close(struct sn_port *port)
{
	stream_port_close(port);
}

void sn_stream_port_free(struct sn_port *port)
{
	stream_port_free(port);
}
