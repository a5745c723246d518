/* vhost_user.c - the `vhost-user` port kind: a vhost-user-net back-end for QEMU and other VMMs.
 *
 * vhost-user,listen=PATH serves front-ends on a unix socket, one at a time; one that leaves
 * and comes back (QEMU reconnect-ms=) gets the same port again. vhost-user,connect=PATH dials
 * a front-end that listens (QEMU -chardev socket,server=on) and dials again, with the socket
 * ports' backoff, whenever the session ends: the VMM may restart, and so may the switch.
 * vhost-user,fd=N (or fdname=NAME) takes an inherited socket instead: a listening one behaves
 * as listen=, a connected one carries one session. The control plane lives in
 * backends/vhost_user_proto.c; this file joins the two rings
 * to the switch through the shared virtqueue engine (virtq.h): TX (ring 1) on its kick, RX
 * (ring 0) when the switch flushes the port or the driver posts buffers. The port is UP
 * while at least one ring runs. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backends/vhost_user_proto.h"
#include "../evfd.h"
#include "../logging.h"
#include "../sock.h"
#include "../sockconn.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"
#include "../virtq.h"

#define RX_RING 0
#define TX_RING 1
#define TX_BUDGET 256 /* chains per TX pass before other watchers get a turn */
#define PASSES 4      /* rounds per TX or RX run before other watchers get a turn */

/* What GET_FEATURES offers: everything the engine implements for virtio-net, and with
 * offload=on (the default) the checksum and segmentation offloads both ways
 * (sn_vnet_offload_features()). */
#define VU_FEATURES                                                                                \
	(SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1) | SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF) |         \
	 SN_VIRTIO_BIT(SN_VIRTIO_F_EVENT_IDX) | SN_VIRTIO_BIT(SN_VIRTIO_F_INDIRECT_DESC))

struct vu_port {
	struct sn_port base;
	struct sn_vu vu;
	char where[420];        /* "listen unix:PATH", "connect unix:PATH", "fd N" or "listen ADDR (inherited fdname=NAME)" */
	bool dials;             /* connect=: the dialer below is in use */
	struct sn_dialer dialer;
	char unlink_path[108];  /* our socket file, removed at close; empty for fd= */
	struct sn_vq_mem mem;   /* guest memory as the engine sees it, rebuilt at each ring start */
	struct sn_vq vq[SN_VU_NRINGS];
	char vq_name[SN_VU_NRINGS][SN_PORT_NAME_MAX + 16];
	ev_io kick[SN_VU_NRINGS];
	unsigned idle_wakeups[SN_VU_NRINGS]; /* kick watcher woken with nothing to read, in a row */
	ev_idle tx_more;        /* TX budget ran out: continue on the next loop iteration */
	ev_idle rx_more;        /* RX passes ran out while buffers kept coming: likewise */
	size_t hdr_len;
	bool mrg;
};

static void vu_port_flush(struct sn_port *port);

static void signal_call(struct vu_port *p, unsigned idx)
{
	uint64_t one = 1;
	int fd = p->vu.rings[idx].call_fd;

	/* an eventfd counter cannot overflow in practice; EAGAIN would mean it is pending anyway */
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		sn_debug("port %s: ring %u call: %s", p->base.name, idx, strerror(errno));
}

static bool ring_running(const struct vu_port *p, unsigned idx)
{
	return p->vu.rings[idx].started && sn_vq_usable(&p->vq[idx]);
}

/* UP while the front-end has a ring running: frames can flow in at least one direction. */
static void update_state(struct vu_port *p)
{
	bool up = sn_vu_connected(&p->vu) && (ring_running(p, RX_RING) || ring_running(p, TX_RING));

	if (p->base.closed)
		return;
	sn_port_set_state(&p->base, up ? SN_PORT_UP : SN_PORT_DOWN);
}

/* A broken queue stays untouched until the front-end sets it up again; tell it through the
 * error eventfd when it gave us one. Guest memory that shrank under the mapping is the memory
 * of both rings: the other one stops too (a new memory table or session brings them back). */
static void ring_broken(struct vu_port *p, unsigned idx)
{
	uint64_t one = 1;
	int fd = p->vu.rings[idx].err_fd;
	unsigned other = idx ^ 1;

	ev_io_stop(sn_port_loop(&p->base), &p->kick[idx]);
	ev_idle_stop(sn_port_loop(&p->base), idx == TX_RING ? &p->tx_more : &p->rx_more);
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		sn_debug("port %s: ring %u err: %s", p->base.name, idx, strerror(errno));
	if (sn_vu_mem_faulted(&p->vu) && ring_running(p, other)) {
		sn_vq_break(&p->vq[other], SN_VQ_SHRANK);
		ring_broken(p, other);
	}
	update_state(p);
}

/* Takes ring @idx's kick. The back-end let only an eventfd in, but one that fails anyway (an
 * error, or woken again and again with nothing to read) breaks the ring: its watcher stops
 * rather than spin, and a new SET_VRING_KICK starts it afresh. */
static bool kick_take(struct vu_port *p, unsigned idx, int fd)
{
	int r = sn_evfd_drain(fd);

	if (r > 0) {
		p->idle_wakeups[idx] = 0;
		return true;
	}
	if (r == 0 && ++p->idle_wakeups[idx] < SN_EVFD_IDLE_WAKEUPS_MAX)
		return true;
	sn_vq_break(&p->vq[idx], "kick fd %s", r == 0 ? "keeps waking the loop with nothing to read"
					       : r == -EPIPE ? "reached end of file" : strerror(-r));
	ring_broken(p, idx);
	return false;
}

/* ---- TX: the guest's frames into the switch ---- */

static void tx_process(struct vu_port *p)
{
	struct sn_vq *vq = &p->vq[TX_RING];
	/* a disabled ring is drained without side effects: chains go back unread */
	struct sn_port *to = sn_vu_ring_enabled(&p->vu, TX_RING) ? &p->base : NULL;

	sn_vq_notify_enable(vq, false);
	for (int pass = 0; pass < PASSES; pass++) {
		bool notify = false;
		int n = sn_vnet_tx(vq, to, p->hdr_len, TX_BUDGET, &notify);

		if (notify)
			signal_call(p, TX_RING);
		if (n < 0) {
			ring_broken(p, TX_RING);
			return;
		}
		/* back-pressure: kicks stay off and the chains in the ring until vu_port_resume() */
		if (to && sn_port_rx_paused(to))
			return;
		if (n < TX_BUDGET) {
			if (!sn_vq_notify_enable(vq, true))
				return;
			sn_vq_notify_enable(vq, false); /* more arrived while kicks were off */
		}
	}
	ev_idle_start(sn_port_loop(&p->base), &p->tx_more);
}

static void tx_kick_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vu_port *p = w->data;

	if (kick_take(p, TX_RING, w->fd) && ring_running(p, TX_RING) && !sn_port_rx_paused(&p->base))
		tx_process(p);
}

static void tx_more_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct vu_port *p = w->data;

	ev_idle_stop(loop, w);
	if (ring_running(p, TX_RING) && !sn_port_rx_paused(&p->base))
		tx_process(p);
}

static void vu_port_resume(struct sn_port *port)
{
	struct vu_port *p = (struct vu_port *)port;

	if (ring_running(p, TX_RING) && !sn_port_rx_paused(&p->base))
		tx_process(p);
}

/* ---- RX: the switch's frames into the guest ---- */

static void vu_port_flush(struct sn_port *port)
{
	struct vu_port *p = (struct vu_port *)port;
	struct sn_vq *vq = &p->vq[RX_RING];

	/* not running or disabled: frames wait in the bounded queue like for a slow socket peer */
	if (!ring_running(p, RX_RING) || !sn_vu_ring_enabled(&p->vu, RX_RING))
		return;
	/* The driver's RX kicks ("more buffers") matter only while a frame waits for buffers, and
	 * sn_vq_notify_more() below asks for them then: otherwise each one would cost a wake-up
	 * and a read, for every batch of buffers it posts. */
	sn_vq_notify_enable(vq, false);
	for (int pass = 0; pass < PASSES; pass++) {
		bool notify = false;
		int n = sn_vnet_rx(vq, port, p->hdr_len, p->mrg, &notify);

		if (notify)
			signal_call(p, RX_RING);
		if (n < 0) {
			ring_broken(p, RX_RING);
			return;
		}
		if (sn_txq_empty(&port->txq))
			return;
		/* Too few buffers for the next frame (with MRG_RXBUF maybe some, not enough): ask
		 * for a kick when the driver posts more, and try again only if it just did. */
		if (!sn_vq_notify_more(vq))
			return;
	}
	/* the driver keeps posting a few at a time: go on after the other watchers had a turn */
	ev_idle_start(sn_port_loop(port), &p->rx_more);
}

static void rx_more_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct vu_port *p = w->data;

	ev_idle_stop(loop, w);
	if (!sn_txq_empty(&p->base.txq))
		vu_port_flush(&p->base);
}

static void rx_kick_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vu_port *p = w->data;

	if (kick_take(p, RX_RING, w->fd) && !sn_txq_empty(&p->base.txq))
		vu_port_flush(&p->base);
}

/* ---- the back-end's ring events ---- */

static int ring_start(void *ctx, struct sn_vu *vu, unsigned idx, struct sn_error *err)
{
	struct vu_port *p = ctx;
	struct sn_vu_ring *r = &vu->rings[idx];
	struct sn_vq_mem_region regs[SN_VU_MAX_REGIONS];
	int ret;

	for (unsigned i = 0; i < vu->nregions; i++)
		regs[i] = (struct sn_vq_mem_region){vu->regions[i].gpa, vu->regions[i].size, vu->regions[i].host};
	ret = sn_vq_mem_set(&p->mem, regs, vu->nregions);
	if (ret < 0)
		return sn_error_set(err, ret, "the memory table does not suit the ring engine: %s", strerror(-ret));
	ret = sn_vq_setup_addr(&p->vq[idx], &p->mem, (uint16_t)r->num, r->desc, r->avail, r->used, vu->features,
			       r->base);
	if (ret < 0)
		return sn_error_set(err, ret, "ring %u: %s", idx,
				    ret == -EFAULT ? "rings outside guest memory" : "misaligned rings or bad size");
	p->vq[idx].name = p->vq_name[idx];
	p->hdr_len = sn_vnet_hdr_len(vu->features);
	p->mrg = vu->features & SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF);
	p->idle_wakeups[idx] = 0;
	ev_io_set(&p->kick[idx], r->kick_fd, EV_READ);
	ev_io_start(sn_port_loop(&p->base), &p->kick[idx]);
	sn_debug("port %s: ring %u started at avail %u (size %u)", p->base.name, idx, r->base, r->num);
	/* ring_running() needs r->started, which the back-end sets when we return */
	r->started = true;
	update_state(p);
	/* RX kicks stay off until a frame waits for buffers (vu_port_flush()) */
	/* setting up read and wrote the rings: their memory may be gone already */
	if (sn_vu_mem_faulted(vu)) {
		sn_vq_break(&p->vq[idx], SN_VQ_SHRANK);
		ring_broken(p, idx);
	}
	return 0;
}

static uint16_t ring_stop(void *ctx, struct sn_vu *vu, unsigned idx)
{
	struct vu_port *p = ctx;
	uint16_t last = p->vq[idx].last_avail;

	ev_io_stop(sn_port_loop(&p->base), &p->kick[idx]);
	ev_idle_stop(sn_port_loop(&p->base), idx == TX_RING ? &p->tx_more : &p->rx_more);
	sn_vq_reset(&p->vq[idx]);
	vu->rings[idx].started = false;
	update_state(p);
	sn_debug("port %s: ring %u stopped at avail %u", p->base.name, idx, last);
	return last;
}

static void ring_enable(void *ctx, struct sn_vu *vu, unsigned idx, bool enabled)
{
	struct vu_port *p = ctx;

	sn_debug("port %s: ring %u %s", p->base.name, idx, enabled ? "enabled" : "disabled");
	if (enabled && idx == RX_RING && !sn_txq_empty(&p->base.txq))
		sn_port_want_flush(&p->base);
}

/* The front-end negotiated anew: frames carry what its driver asked for from now on. */
static void features_set(void *ctx, struct sn_vu *vu)
{
	struct vu_port *p = ctx;
	uint32_t tx, rx;

	sn_vnet_offloads(vu->features, &tx, &rx);
	if (sn_port_set_offloads(&p->base, tx, rx) < 0)
		sn_warn("port %s: no memory for the jumbo buffers of the offloads: large frames are dropped",
			p->base.name);
}

static void link_change(void *ctx, struct sn_vu *vu, bool up, const char *why)
{
	struct vu_port *p = ctx;

	if (!up)
		sn_port_set_offloads(&p->base, 0, 0);
	update_state(p);
	/* connect=: the front-end left (or was thrown out): dial it again, with backoff, growing
	 * while it drops each session at once */
	if (!up && p->dials && !p->base.closed)
		sn_dialer_later(&p->dialer);
}

/* The dialer reached the front-end's socket: the connection is the back-end's from here. */
static void dial_up(struct sn_port *port, int fd)
{
	struct vu_port *p = (struct vu_port *)port;
	int r = sn_vu_attach(&p->vu, fd);

	if (r < 0) {
		sn_warn("port %s: cannot start a vhost-user session: %s", port->name, strerror(-r));
		sn_dialer_later(&p->dialer);
	}
}

static const struct sn_vu_ops vu_ops = {
	.ring_start = ring_start,
	.ring_stop = ring_stop,
	.ring_enable = ring_enable,
	.link = link_change,
	.features = features_set,
};

/* ---- port ops ---- */

static void vu_port_close(struct sn_port *port)
{
	struct vu_port *p = (struct vu_port *)port;

	if (p->dials)
		sn_dialer_stop(&p->dialer);
	sn_vu_finish(&p->vu);
	ev_idle_stop(sn_port_loop(port), &p->tx_more);
	ev_idle_stop(sn_port_loop(port), &p->rx_more);
	if (p->unlink_path[0])
		unlink(p->unlink_path);
}

static const char *ring_word(const struct vu_port *p, unsigned idx)
{
	if (!p->vu.rings[idx].started)
		return "stopped";
	if (sn_vq_broken(&p->vq[idx]))
		return "broken";
	return sn_vu_ring_enabled(&p->vu, idx) ? "running" : "disabled";
}

static void vu_port_describe(struct sn_port *port, char *buf, size_t len)
{
	struct vu_port *p = (struct vu_port *)port;
	const struct sn_vq *rx = &p->vq[RX_RING], *tx = &p->vq[TX_RING];
	bool rxb = p->vu.rings[RX_RING].started && sn_vq_broken(rx);
	bool txb = p->vu.rings[TX_RING].started && sn_vq_broken(tx);
	int n;

	if (!sn_vu_connected(&p->vu)) {
		snprintf(buf, len, "%s (no front-end; %u sessions, %" PRIu64 " protocol errors)", p->where,
			 p->vu.sessions, p->vu.protocol_errors);
		return;
	}
	n = snprintf(buf, len, "%s front-end: rx %s, tx %s", p->where, ring_word(p, RX_RING), ring_word(p, TX_RING));
	if (n < 0 || (size_t)n >= len || !(rxb || txb))
		return;
	/* why, once when both rings broke for the same reason */
	if (rxb && txb && !strcmp(rx->broken_reason, tx->broken_reason))
		snprintf(buf + n, len - (size_t)n, " (%s)", rx->broken_reason);
	else if (rxb && txb)
		snprintf(buf + n, len - (size_t)n, " (rx: %s; tx: %s)", rx->broken_reason, tx->broken_reason);
	else
		snprintf(buf + n, len - (size_t)n, " (%s: %s)", rxb ? "rx" : "tx", rxb ? rx->broken_reason : tx->broken_reason);
}

static const struct sn_port_ops vu_port_ops = {
	.kind = "vhost-user",
	.flush = vu_port_flush,
	.close = vu_port_close,
	.describe = vu_port_describe,
	.resume = vu_port_resume,
};

static int vhost_user_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			     struct sn_port **ret_port, struct sn_error *err)
{
	const char *listen = sn_spec_get(spec, "listen");
	const char *connect = sn_spec_get(spec, "connect");
	struct sn_listen_fd lfd;
	struct sn_sockaddr addr;
	struct sn_sock_perm perm;
	struct vu_port *p;
	bool offload = true;
	int fd = -ENOENT, r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = sn_port_init(&p->base, sw, &vu_port_ops, conf);
	if (r < 0)
		goto fail;
	r = sn_spec_get_bool(spec, "offload", &offload, err);
	if (r < 0)
		goto fail;
	r = sn_listen_fd_from_spec(spec, &lfd, err);
	if (r < 0)
		goto fail;
	if (listen && lfd.num >= 0) {
		r = sn_error_set(err, -EINVAL, "keys 'fd' and 'listen' both say where to listen: give exactly one of them");
		goto fail;
	}
	if (connect && (listen || sn_listen_fd_given(&lfd))) {
		r = sn_error_set(err, -EINVAL, "vhost-user port needs exactly one of 'listen', 'connect' and 'fd' (or "
					       "'fdname'): 'connect' dials, so it goes with none of the others");
		goto fail;
	}
	if (!listen && !connect && !sn_listen_fd_given(&lfd)) {
		r = sn_error_set(err, -EINVAL, "vhost-user port needs exactly one of 'listen', 'connect' and 'fd' (or 'fdname')");
		goto fail;
	}
	if (listen || connect) {
		const char *key = listen ? "listen" : "connect", *text = listen ? listen : connect;

		r = sn_sockaddr_parse(text, key, true, &addr, err);
		if (r < 0)
			goto fail;
		if (!sn_sockaddr_is_unix(&addr)) {
			r = sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': vhost-user needs a unix socket",
					 text, key);
			goto fail;
		}
	}
	r = sn_sock_perm_from_spec(spec, listen ? &addr : NULL, "listen", &perm, err);
	if (r < 0)
		goto fail;
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		goto fail;

	if (sn_listen_fd_given(&lfd)) {
		/* a duplicate: a refusal leaves the embedder's descriptor, or the inherited one, open */
		struct sn_sockaddr at;

		fd = sn_listen_fd_open(sw, &lfd, SOCK_STREAM, true, &at, err);
		if (fd < 0 && (fd != -ENOENT || !listen)) {
			r = fd;
			goto fail;
		}
		if (fd >= 0 && lfd.num >= 0) {
			snprintf(p->where, sizeof(p->where), "fd %d", lfd.num);
		} else if (fd >= 0) {
			char a[128];

			sn_sockaddr_format(&at, a, sizeof(a));
			snprintf(p->where, sizeof(p->where), "listen %s (inherited fdname=%s)", a, lfd.name);
		}
	}
	if (connect) {
		fd = -1; /* dialed once the port is registered */
		p->dials = true;
		snprintf(p->where, sizeof(p->where), "connect unix:%s", addr.u.un.sun_path);
	} else if (fd < 0) {
		fd = sn_sock_listen(&addr, SOCK_STREAM, &perm, err);
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		sn_strlcpy(p->unlink_path, addr.u.un.sun_path, sizeof(p->unlink_path));
		snprintf(p->where, sizeof(p->where), "listen unix:%s", addr.u.un.sun_path);
	}
	for (unsigned i = 0; i < SN_VU_NRINGS; i++) {
		snprintf(p->vq_name[i], sizeof(p->vq_name[i]), "port %s: %s", p->base.name, i == RX_RING ? "rx" : "tx");
		ev_io_init(&p->kick[i], i == RX_RING ? rx_kick_cb : tx_kick_cb, -1, EV_READ);
		p->kick[i].data = p;
		p->vq[i].fault = &p->vu.mem_fault; /* kept by sn_vq_reset() */
	}
	ev_idle_init(&p->tx_more, tx_more_cb);
	p->tx_more.data = p;
	ev_idle_init(&p->rx_more, rx_more_cb);
	p->rx_more.data = p;
	if (p->dials)
		sn_dialer_init(&p->dialer, &p->base, &addr, SOCK_STREAM, dial_up);
	r = sn_port_register(&p->base);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		if (p->unlink_path[0])
			unlink(p->unlink_path);
		goto fail;
	}
	r = sn_vu_init(&p->vu, sn_port_loop(&p->base), fd,
		       VU_FEATURES | (offload ? sn_vnet_offload_features(SN_OFFLOAD_ALL) : 0), &vu_ops, p,
		       p->base.name, err);
	if (r < 0) {
		p->unlink_path[0] = '\0';
		sn_port_close(&p->base); /* frees p later, from the loop */
		return r;
	}
	if (lfd.num >= 0)
		close(lfd.num); /* taken over: the port owns its duplicate */
	if (p->dials)
		sn_dialer_start(&p->dialer);
	*ret_port = &p->base;
	return 0;
fail:
	free(p);
	return r;
}

static const char *const vhost_user_keys[] = {"listen", "connect", "fd", "fdname", "mode", "group", "offload", NULL};

const struct sn_port_kind sn_port_kind_vhost_user = {
	.name = "vhost-user",
	.usage = "vhost-user,listen=PATH | vhost-user,fd=N                 QEMU -netdev vhost-user (Linux)\n"
		 "    or fdname=NAME[,listen=PATH]: an inherited socket\n"
		 "vhost-user,connect=PATH                                  dial -chardev socket,server=on; redial\n"
		 "    [,offload=on|off]: checksum and segmentation offloads (default on)",
	.keys = vhost_user_keys,
	.create = vhost_user_create,
};
