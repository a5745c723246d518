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
#include <stdlib.h>
#include <string.h>

#include "../msgio.h"
#include "../sock.h"
#include "../sockconn.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"

#define RX_ROUNDS 4

struct seqpacket_port {
	struct sn_port base;
	struct sn_conn conn;      /* descriptor, watchers, peer; the dialer in connect mode */
	struct sn_msgio_rx rx;
	struct sn_msgio_tx tx;
};

static void seqpacket_flush(struct sn_port *port);

/* ---- data path ---- */

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct seqpacket_port *sp = w->data;
	struct sn_msgio_rx *rx = &sp->rx;

	for (int round = 0; round < RX_ROUNDS; round++) {
		int n = sn_msgio_recv(rx, sp->conn.fd, &sp->base, false);
		unsigned nb = 0;
		bool eof = false;

		if (n == -EAGAIN)
			return;
		if (n < 0) {
			sn_conn_lost(&sp->conn, strerror(-n));
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
			sn_conn_lost(&sp->conn, "end of connection");
			return;
		}
		if (sn_conn_rx_pause(&sp->conn) || n < SN_MSGIO_BATCH)
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

	/* a flush requested before the peer went away may still come */
	if (sp->conn.fd < 0)
		return;
	r = sn_msgio_send(&sp->tx, sp->conn.fd, port, NULL);
	if (r == 0)
		ev_io_stop(loop, &sp->conn.wio);
	else if (r == -EAGAIN)
		ev_io_start(loop, &sp->conn.wio);
	else
		sn_conn_lost(&sp->conn, strerror(-r));
}

/* ---- connections ---- */

static void seqpacket_up(struct sn_port *port, int fd)
{
	sn_conn_up(&((struct seqpacket_port *)port)->conn, fd);
}

static void seqpacket_port_close(struct sn_port *port)
{
	sn_conn_close(&((struct seqpacket_port *)port)->conn);
}

static void seqpacket_port_describe(struct sn_port *port, char *buf, size_t len)
{
	sn_conn_describe(&((struct seqpacket_port *)port)->conn, buf, len);
}

static void seqpacket_resume(struct sn_port *port)
{
	sn_conn_resume(&((struct seqpacket_port *)port)->conn);
}

static const struct sn_port_ops seqpacket_port_ops = {
	.kind = "seqpacket",
	.flush = seqpacket_flush,
	.close = seqpacket_port_close,
	.describe = seqpacket_port_describe,
	.resume = seqpacket_resume,
};

static struct seqpacket_port *seqpacket_port_new(void)
{
	struct seqpacket_port *sp = calloc(1, sizeof(*sp));

	if (!sp)
		return NULL;
	sn_conn_init(&sp->conn, &sp->base, read_cb, write_cb);
	return sp;
}

/* ---- listener ---- */

static struct sn_port *child_new(struct sn_listener *l, const struct sn_sockaddr *peer)
{
	struct seqpacket_port *sp = seqpacket_port_new();

	if (!sp)
		return NULL;
	/* clients rarely bind, and then the listener's path says more than "(unnamed)" */
	if (peer->len <= offsetof(struct sockaddr_un, sun_path) || !peer->u.un.sun_path[0])
		peer = &l->addr;
	sn_sockaddr_format(peer, sp->conn.peer, sizeof(sp->conn.peer));
	return &sp->base;
}

static const struct sn_port_ops seqpacket_listener_ops = {
	.kind = "seqpacket",
	.listener = true,
	.close = sn_listener_close,
	.describe = sn_listener_describe,
};

static const struct sn_listener_ops seqpacket_listener_lops = {
	.type = SOCK_SEQPACKET,
	.ops = &seqpacket_listener_ops,
	.child_ops = &seqpacket_port_ops,
	.child_new = child_new,
	.child_up = seqpacket_up,
};

/* ---- creation from a SPEC ---- */

static int seqpacket_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			    struct sn_port **ret_port, struct sn_error *err)
{
	struct sn_endpoint ep;
	int r;

	r = sn_endpoint_from_spec(spec, "seqpacket", true, &ep, err);
	if (r < 0)
		return r;
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		return r;
	if (ep.listen) {
		struct sn_listener *l = calloc(1, sizeof(*l));

		if (!l)
			return -ENOMEM;
		r = sn_listener_open(l, sw, conf, &seqpacket_listener_lops, ep.has_addr ? &ep.addr : NULL, &ep.perm,
				     &ep.lfd, err);
		if (r < 0) {
			free(l);
			return r;
		}
		*ret_port = &l->base;
		return 0;
	} else {
		struct seqpacket_port *sp = seqpacket_port_new();

		if (!sp)
			return -ENOMEM;
		return sn_conn_open_dialing(&sp->base, &sp->conn, sw, conf, &seqpacket_port_ops, &ep.addr, SOCK_SEQPACKET,
					    seqpacket_up, ret_port);
	}
}

static const char *const seqpacket_keys[] = {"listen", "connect", "fd", "fdname", "mode", "group", NULL};

const struct sn_port_kind sn_port_kind_seqpacket = {
	.name = "seqpacket",
	.usage = "seqpacket,listen=PATH | seqpacket,connect=PATH           gvproxy -listen-bess\n"
		 "    or fdname=NAME[,listen=PATH] | fd=N: an inherited listening socket",
	.keys = seqpacket_keys,
	.create = seqpacket_create,
};
