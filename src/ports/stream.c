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

#include "../framing.h"
#include "../sock.h"
#include "../sockconn.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"
#include "stream.h"

#define RX_BATCH 64
#define TX_BATCH 1024    /* frames per sendmsg, within TX_IOV iovecs */
#define TX_IOV 1024      /* IOV_MAX on Linux and macOS */
#define STAGE_CAP 65536   /* prefixes, and small frames whole, are copied here */
#define SMALL_FRAME 256   /* a frame this short is cheaper to copy than to give its own iovec */

struct stream_conf {
	struct sn_sockaddr addr;
	enum sn_framing framing;
	bool listen;
};

struct stream_listener {
	struct sn_listener l;
	struct stream_conf conf;
};

struct stream_port {
	struct sn_port base;
	struct stream_conf conf;
	struct sn_conn conn;  /* descriptor, watchers, peer; the dialer in connect mode */
	struct sn_streambuf rx;
	struct sn_frame *batch[RX_BATCH];
	unsigned nbatch;
	uint32_t tx_off;    /* bytes of the head record already written */
	uint8_t *stage;
	struct iovec iov[TX_IOV];
	sn_stream_lost_fn lost; /* a descriptor from elsewhere (stream.h): its owner hears of its end */
	void *owner;
};

static void stream_flush(struct sn_port *port);

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
	struct sn_frame *f;

	/* back-pressure: this frame and those after it wait in the buffer for stream_resume() */
	if (sn_port_rx_paused(&sp->base))
		return 1;
	f = sn_port_rx_copy(&sp->base, data, len);
	if (f) {
		sp->batch[sp->nbatch++] = f;
		if (sp->nbatch == RX_BATCH)
			batch_push(sp);
	}
	return 0;
}

/* The peer went away or broke the framing: a client port closes, a dialing port redials, and a
 * descriptor from elsewhere is reported to its owner. */
static void peer_lost(struct stream_port *sp, const char *why)
{
	if (sn_conn_lost(&sp->conn, why) && sp->lost)
		sp->lost(&sp->base, sp->owner, why);
}

/* Hands the whole frames in the receive buffer to the switch, up to a pause. False when the
 * framing broke and the peer is gone. */
static bool take_frames(struct stream_port *sp)
{
	int r = sn_streambuf_drain(&sp->rx, sp->conf.framing, frame_cb, sp);

	batch_push(sp);
	if (r < 0) {
		sp->base.stats.drop_bad_framing++;
		peer_lost(sp, "bad frame length");
		return false;
	}
	return true;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stream_port *sp = w->data;

	/* a few reads per wake-up, so one busy peer cannot starve the others */
	for (int round = 0; round < 4; round++) {
		size_t room = sp->rx.cap - sp->rx.len;
		ssize_t n = sn_streambuf_fill(&sp->rx, sp->conn.fd);

		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return;
		if (n <= 0) {
			if (sp->rx.len > 0)
				sp->base.stats.drop_bad_framing++; /* died mid-frame */
			peer_lost(sp, n == 0 ? "end of stream" : strerror((int)-n));
			return;
		}
		if (!take_frames(sp))
			return;
		if (sn_port_rx_paused(&sp->base)) {
			/* the rest stays in the socket, and the sender's writes block */
			ev_io_stop(loop, &sp->conn.rio);
			return;
		}
		if ((size_t)n < room)
			return; /* the socket is empty */
	}
}

static void stream_resume(struct sn_port *port)
{
	struct stream_port *sp = (struct stream_port *)port;

	if (sp->conn.fd < 0 || !take_frames(sp) || sn_port_rx_paused(port))
		return;
	ev_io_start(sn_port_loop(port), &sp->conn.rio);
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

			if (used + copy > STAGE_CAP || niov + 2 > TX_IOV) {
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
			w = sendmsg(sp->conn.fd, &(struct msghdr){.msg_iov = sp->iov, .msg_iovlen = niov}, MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(loop, &sp->conn.wio);
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
			ev_io_start(loop, &sp->conn.wio);
			return;
		}
	}
	ev_io_stop(loop, &sp->conn.wio);
}

/* ---- connections ---- */

/* Every connection starts here: accepted, dialed, or attached from elsewhere. */
static void stream_up(struct sn_port *port, int fd)
{
	struct stream_port *sp = (struct stream_port *)port;
	int one = 1;

	if (!sn_sockaddr_is_unix(&sp->conf.addr))
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sp->rx.len = 0; /* nothing of an earlier connection carries over */
	sp->tx_off = 0;
	sn_conn_up(&sp->conn, fd);
}

static void stream_port_close(struct sn_port *port)
{
	struct stream_port *sp = (struct stream_port *)port;

	sn_conn_close(&sp->conn);
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
	int n = sn_conn_describe(&sp->conn, buf, len);

	if (n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " framing=%s", sn_framing_name(sp->conf.framing));
}

static const struct sn_port_ops stream_port_ops = {
	.kind = "stream",
	.flush = stream_flush,
	.close = stream_port_close,
	.free = stream_port_free,
	.describe = stream_port_describe,
	.resume = stream_resume,
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
	sn_conn_init(&sp->conn, &sp->base, read_cb, write_cb);
	return sp;
}

/* ---- listener ---- */

static struct sn_port *child_new(struct sn_listener *l, const struct sn_sockaddr *peer)
{
	struct stream_listener *sl = (struct stream_listener *)l;
	struct stream_port *sp = stream_port_new(&sl->conf);

	if (!sp)
		return NULL;
	/* a unix client's own address is nearly always unnamed: the listener's path says more */
	if (sn_sockaddr_is_unix(&l->addr))
		peer = &l->addr;
	sn_sockaddr_format(peer, sp->conn.peer, sizeof(sp->conn.peer));
	return &sp->base;
}

static void listener_describe(struct sn_port *port, char *buf, size_t len)
{
	struct stream_listener *l = (struct stream_listener *)port;
	size_t n;

	sn_listener_describe(port, buf, len);
	n = strlen(buf);
	snprintf(buf + n, len - n, " framing=%s", sn_framing_name(l->conf.framing));
}

static const struct sn_port_ops stream_listener_ops = {
	.kind = "stream",
	.listener = true,
	.close = sn_listener_close,
	.describe = listener_describe,
};

static const struct sn_listener_ops stream_listener_lops = {
	.type = SOCK_STREAM,
	.ops = &stream_listener_ops,
	.child_ops = &stream_port_ops,
	.child_new = child_new,
	.child_up = stream_up,
};

/* ---- creation from a SPEC ---- */

static int stream_create(struct sn_switch *sw, const struct sn_port_conf *pconf, struct sn_spec *spec,
			 struct sn_port **ret_port, struct sn_error *err)
{
	const char *framing = sn_spec_get(spec, "framing");
	struct stream_conf conf = {.framing = SN_FRAMING_QEMU};
	struct sn_endpoint ep;
	int r;

	r = sn_endpoint_from_spec(spec, "stream", false, &ep, err);
	if (r < 0)
		return r;
	if (framing && sn_framing_from_name(framing, &conf.framing) < 0)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'framing': want qemu, hyperkit or vde",
				    framing);
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		return r;
	conf.addr = ep.addr;
	conf.listen = ep.listen;

	if (conf.listen) {
		struct stream_listener *l = calloc(1, sizeof(*l));

		if (!l)
			return -ENOMEM;
		l->conf = conf;
		r = sn_listener_open(&l->l, sw, pconf, &stream_listener_lops, ep.has_addr ? &conf.addr : NULL, &ep.perm,
				     &ep.lfd, err);
		if (r < 0) {
			free(l);
			return r;
		}
		l->conf.addr = l->l.addr; /* an inherited socket's own: TCP or unix, for its clients */
		*ret_port = &l->l.base;
		return 0;
	} else {
		struct stream_port *sp = stream_port_new(&conf);

		if (!sp)
			return -ENOMEM;
		return sn_conn_open_dialing(&sp->base, &sp->conn, sw, pconf, &stream_port_ops, &conf.addr, SOCK_STREAM,
					    stream_up, ret_port);
	}
}

static const char *const stream_keys[] = {"listen", "connect", "fd", "fdname", "framing", "mode", "group", NULL};

const struct sn_port_kind sn_port_kind_stream = {
	.name = "stream",
	.usage = "stream,listen=unix:PATH | stream,listen=tcp:HOST:PORT    accept QEMU -netdev stream clients\n"
		 "stream,connect=unix:PATH | stream,connect=tcp:HOST:PORT  dial out, reconnect with backoff\n"
		 "stream,fdname=NAME[,listen=...] | stream,fd=N            an inherited listening socket\n"
		 "    framing=qemu|hyperkit|vde (default qemu: 4-byte big-endian length)",
	.keys = stream_keys,
	.create = stream_create,
};

/* ---- a descriptor opened elsewhere (stream.h) ---- */

int sn_stream_port_create(struct sn_switch *sw, const struct sn_port_conf *pconf, const struct sn_port_ops *ops,
			  enum sn_framing framing, sn_stream_lost_fn lost, void *owner, struct sn_port **ret_port)
{
	struct stream_conf conf = {.framing = framing};
	struct stream_port *sp;
	int r;

	conf.addr.u.sa.sa_family = AF_UNIX; /* no TCP_NODELAY in stream_up() */
	sp = stream_port_new(&conf);
	if (!sp)
		return -ENOMEM;
	r = sn_port_init(&sp->base, sw, ops, pconf);
	if (r < 0) {
		stream_port_free(&sp->base);
		return r;
	}
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
		sn_strlcpy(sp->conn.peer, peer, sizeof(sp->conn.peer));
	stream_up(port, fd);
}

void sn_stream_port_detach(struct sn_port *port)
{
	struct stream_port *sp = (struct stream_port *)port;

	sn_conn_down(&sp->conn);
	sp->rx.len = 0;
	sp->tx_off = 0;
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

void sn_stream_port_resume(struct sn_port *port)
{
	stream_resume(port);
}

/* ---- a descriptor the embedder hands over (sn_switch_add_stream_fd) ---- */

/* Nobody redials such a peer: when it goes, so does its port. */
static void handed_lost(struct sn_port *port, void *owner, const char *why)
{
	sn_port_close(port);
}

SN_EXPORT int sn_switch_add_stream_fd(struct sn_switch *sw, int fd, enum sn_stream_framing framing, const char *name,
				      char *ret_name, size_t name_len, struct sn_error *err)
{
	static const enum sn_framing framings[] = {
		[SN_STREAM_QEMU] = SN_FRAMING_QEMU,
		[SN_STREAM_HYPERKIT] = SN_FRAMING_HYPERKIT,
		[SN_STREAM_VDE] = SN_FRAMING_VDE,
	};
	struct sn_port_conf conf = {.mtu = 0};
	struct sn_port *port;
	char peer[32];
	int type = 0, r;
	socklen_t len = sizeof(type);

	if (err)
		err->msg[0] = '\0';
	if (!sw || fd < 0)
		return sn_error_set(err, -EINVAL, "no switch or no descriptor");
	if ((unsigned)framing >= SN_ARRAY_SIZE(framings))
		return sn_error_set(err, -EINVAL, "unknown framing %d", (int)framing);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
		return sn_error_set(err, -EINVAL, "descriptor %d is not a stream socket", fd);
	if (name) {
		r = sn_port_name_check(sw, name, "name", err);
		if (r < 0)
			return r;
		sn_strlcpy(conf.name, name, sizeof(conf.name));
	}
	r = sn_stream_port_create(sw, &conf, &stream_port_ops, framings[framing], handed_lost, NULL, &port);
	if (r < 0)
		return sn_error_set(err, r, "stream port: %s", strerror(-r));
	r = sn_fd_nonblock(fd);
	if (r >= 0)
		r = sn_port_register(port);
	if (r < 0) {
		stream_port_free(port);
		return sn_error_set(err, r, "stream port: %s", strerror(-r));
	}
	snprintf(peer, sizeof(peer), "fd %d", fd);
	sn_stream_port_attach(port, fd, peer);
	if (ret_name && name_len)
		sn_strlcpy(ret_name, port->name, name_len);
	return 0;
}
