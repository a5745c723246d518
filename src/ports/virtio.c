/* virtio.c - in-process virtio-net ports: the embedding VMM's virtqueues, served in the loop.
 *
 * Not a SPEC kind: an embedder creates these with sn_virtio_port_create() once its driver is
 * ready. TX runs when the driver kicks (an ev_io on the kick eventfd, or sn_virtio_port_kick()):
 * chains are drained with kicks suppressed, in rounds of TX_BUDGET so one busy guest cannot
 * hold the loop, and a ring still holding work resumes from an ev_check on the next loop
 * iteration. RX is the port's flush op: queued frames go into the buffers the driver posted;
 * when it posted none, or too few for the next frame, they wait in the egress queue (bounded,
 * dropped and counted when full), the port asks for a kick at the next buffer, and that kick
 * retries them. Neither direction loops for longer than a fixed budget, whatever the driver
 * writes. The ring work itself is src/virtq.c; the offloads the driver negotiated (checksums,
 * TSO, USO) follow from the features the VMM passes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <squibnet/virtio.h>

#include "../evfd.h"
#include "../logging.h"
#include "../spec.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"
#include "../virtq.h"

#define TX_BUDGET 256
#define RX_PASSES 4 /* RX attempts per flush while the driver keeps adding too few buffers */

struct sn_virtio_port {
	struct sn_port base;
	struct sn_vq_mem mem;
	struct sn_vq vq[2];          /* SN_VIRTIO_RX, SN_VIRTIO_TX */
	uint64_t features;
	size_t hdr_len;
	bool mrg;
	int kick_fd[2], call_fd[2];
	ev_io kick_io[2];
	unsigned idle_wakeups[2];    /* kick watcher woken with nothing to read, in a row */
	ev_check more_check;         /* work left over: TX from a full budget, RX from RX_PASSES */
	ev_idle more_idle;           /* keeps the loop from blocking while it is */
	bool more[2];                /* which queue more_check continues */
	void (*notify)(struct sn_virtio_port *, enum sn_virtio_queue_index, void *);
	void *opaque;
	char qname[2][SN_PORT_NAME_MAX + 16];
};

static void signal_queue(struct sn_virtio_port *vp, enum sn_virtio_queue_index q)
{
	if (vp->call_fd[q] >= 0) {
		uint64_t one = 1;
		ssize_t w = write(vp->call_fd[q], &one, sizeof(one));

		(void)w; /* EAGAIN: the counter is saturated, the guest will see an interrupt anyway */
	} else if (vp->notify) {
		vp->notify(vp, q, vp->opaque);
	}
}

static void stop_more(struct sn_virtio_port *vp)
{
	struct ev_loop *loop = sn_port_loop(&vp->base);

	vp->more[SN_VIRTIO_RX] = vp->more[SN_VIRTIO_TX] = false;
	ev_check_stop(loop, &vp->more_check);
	ev_idle_stop(loop, &vp->more_idle);
}

/* Queue @q has work left: continue on the next loop iteration, after the other ports. */
static void want_more(struct sn_virtio_port *vp, enum sn_virtio_queue_index q)
{
	struct ev_loop *loop = sn_port_loop(&vp->base);

	vp->more[q] = true;
	ev_check_start(loop, &vp->more_check);
	ev_idle_start(loop, &vp->more_idle);
}

/* A queue broke: the port stops carrying frames until the VMM resets the device. */
static void went_broken(struct sn_virtio_port *vp)
{
	struct ev_loop *loop = sn_port_loop(&vp->base);

	ev_io_stop(loop, &vp->kick_io[SN_VIRTIO_RX]);
	ev_io_stop(loop, &vp->kick_io[SN_VIRTIO_TX]);
	stop_more(vp);
	sn_port_set_state(&vp->base, SN_PORT_DOWN);
}

static void tx_run(struct sn_virtio_port *vp)
{
	struct sn_vq *vq = &vp->vq[SN_VIRTIO_TX];
	bool notify = false;
	int total = 0;

	if (vp->base.closed || !sn_vq_usable(vq) || sn_port_rx_paused(&vp->base))
		return;
	/* Ends: every round either consumes a chain, or finds none and stops, or finds that some
	 * arrived after the pop (the next round pops at least one of them); TX_BUDGET caps it. */
	for (;;) {
		bool n;
		int r;

		sn_vq_notify_enable(vq, false);
		r = sn_vnet_tx(vq, &vp->base, vp->hdr_len, TX_BUDGET - (unsigned)total, &n);
		notify |= n;
		if (r < 0) {
			went_broken(vp);
			break;
		}
		total += r;
		/* back-pressure: kicks stay off, virtio_resume() runs the ring again */
		if (sn_port_rx_paused(&vp->base))
			break;
		if (total >= TX_BUDGET) {
			want_more(vp, SN_VIRTIO_TX);
			break;
		}
		if (!sn_vq_notify_enable(vq, true))
			break;
	}
	if (notify)
		signal_queue(vp, SN_VIRTIO_TX);
}

static void virtio_flush(struct sn_port *port)
{
	struct sn_virtio_port *vp = (struct sn_virtio_port *)port;
	struct sn_vq *vq = &vp->vq[SN_VIRTIO_RX];
	bool notify = false;

	for (int pass = 0;; pass++) {
		bool n;
		int r = sn_vnet_rx(vq, port, vp->hdr_len, vp->mrg, &n);

		notify |= n;
		if (r < 0) {
			went_broken(vp);
			break;
		}
		if (sn_txq_empty(&port->txq))
			break;
		/* Frames left: the driver posted too few buffers for the next one (with MRG_RXBUF,
		 * maybe some, but not enough). Ask for a kick when it posts more; when it posted
		 * some meanwhile, try again, but only RX_PASSES times in one go: a driver that
		 * keeps adding a few at a time must not hold the loop. */
		if (!sn_vq_notify_more(vq))
			break;
		if (pass == RX_PASSES - 1) {
			want_more(vp, SN_VIRTIO_RX);
			break;
		}
	}
	if (notify)
		signal_queue(vp, SN_VIRTIO_RX);
}

static void kick(struct sn_virtio_port *vp, enum sn_virtio_queue_index q)
{
	if (vp->base.closed)
		return;
	if (q == SN_VIRTIO_TX)
		tx_run(vp);
	else if (!sn_txq_empty(&vp->base.txq))
		virtio_flush(&vp->base);
}

static void kick_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_virtio_port *vp = w->data;
	enum sn_virtio_queue_index q = w == &vp->kick_io[SN_VIRTIO_TX] ? SN_VIRTIO_TX : SN_VIRTIO_RX;
	int r = sn_evfd_drain(vp->kick_fd[q]);

	if (r > 0) {
		vp->idle_wakeups[q] = 0;
	} else if (r < 0 || ++vp->idle_wakeups[q] >= SN_EVFD_IDLE_WAKEUPS_MAX) {
		/* a watcher that cannot read would only spin: stop it (sn_virtio_port_kick() still works) */
		sn_warn("port %s: kick fd of the %s queue %s; no longer watched", vp->base.name,
			q == SN_VIRTIO_TX ? "tx" : "rx",
			r == 0 ? "keeps waking the loop with nothing to read" : r == -EPIPE ? "reached end of file"
										: strerror(-r));
		ev_io_stop(loop, w);
		return;
	}
	kick(vp, q);
}

static void more_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct sn_virtio_port *vp = w->data;
	bool rx = vp->more[SN_VIRTIO_RX], tx = vp->more[SN_VIRTIO_TX];

	stop_more(vp); /* started again by whichever queue still has work */
	if (tx)
		tx_run(vp);
	if (rx && !vp->base.closed && !sn_txq_empty(&vp->base.txq))
		virtio_flush(&vp->base);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
}

static void virtio_resume(struct sn_port *port)
{
	tx_run((struct sn_virtio_port *)port);
}

static void virtio_close(struct sn_port *port)
{
	struct sn_virtio_port *vp = (struct sn_virtio_port *)port;
	struct ev_loop *loop = sn_port_loop(port);

	ev_io_stop(loop, &vp->kick_io[SN_VIRTIO_RX]);
	ev_io_stop(loop, &vp->kick_io[SN_VIRTIO_TX]);
	stop_more(vp);
}

static void virtio_describe(struct sn_port *port, char *buf, size_t len)
{
	struct sn_virtio_port *vp = (struct sn_virtio_port *)port;
	const struct sn_vq *rx = &vp->vq[SN_VIRTIO_RX], *tx = &vp->vq[SN_VIRTIO_TX];

	snprintf(buf, len, "in-process features=0x%llx rx=%u%s%s tx=%u%s%s", (unsigned long long)vp->features,
		 rx->size, rx->broken ? " broken: " : "", rx->broken ? rx->broken_reason : "", tx->size,
		 tx->broken ? " broken: " : "", tx->broken ? tx->broken_reason : "");
}

static const struct sn_port_ops virtio_ops = {
	.kind = "virtio",
	.flush = virtio_flush,
	.close = virtio_close,
	.describe = virtio_describe,
	.resume = virtio_resume,
};

SN_EXPORT uint64_t sn_virtio_net_features(void)
{
	return SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1) | SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF) |
	       SN_VIRTIO_BIT(SN_VIRTIO_F_EVENT_IDX) | SN_VIRTIO_BIT(SN_VIRTIO_F_INDIRECT_DESC) |
	       SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MAC) | SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MTU) |
	       SN_VIRTIO_BIT(SN_VIRTIO_NET_F_STATUS) | sn_vnet_offload_features(SN_OFFLOAD_ALL);
}

static int setup_queue(struct sn_virtio_port *vp, enum sn_virtio_queue_index q,
		       const struct sn_virtio_queue_config *qc, struct sn_error *err)
{
	const char *what = q == SN_VIRTIO_RX ? "rx" : "tx";
	char kind[64];
	int r;

	vp->vq[q].name = vp->qname[q];
	r = sn_vq_setup_addr(&vp->vq[q], &vp->mem, qc->size, qc->desc, qc->avail, qc->used, vp->features,
			     qc->last_avail);
	if (r == -EINVAL)
		return sn_error_set(err, r, "%s queue: size %u is not a power of two up to %d, or a ring is misaligned",
				    what, qc->size, SN_VQ_SIZE_MAX);
	if (r < 0)
		return sn_error_set(err, r, "%s queue: a ring lies outside guest memory", what);
	/* watched or written for the port's whole life: they must behave as eventfds do */
	if (qc->kick_fd >= 0 && sn_evfd_check(qc->kick_fd, kind, sizeof(kind)) < 0)
		return sn_error_set(err, -EINVAL, "%s queue: kick fd %d is %s, not an eventfd", what, qc->kick_fd, kind);
	if (qc->call_fd >= 0 && sn_evfd_check(qc->call_fd, kind, sizeof(kind)) < 0)
		return sn_error_set(err, -EINVAL, "%s queue: call fd %d is %s, not an eventfd", what, qc->call_fd, kind);
	vp->kick_fd[q] = qc->kick_fd;
	vp->call_fd[q] = qc->call_fd;
	ev_io_init(&vp->kick_io[q], kick_cb, qc->kick_fd, EV_READ);
	vp->kick_io[q].data = vp;
	return 0;
}

SN_EXPORT int sn_virtio_port_create(struct sn_switch *sw, const struct sn_virtio_net_config *cfg,
				    struct sn_virtio_port **ret_port, struct sn_error *err)
{
	struct sn_vq_mem_region regs[SN_VQ_MEM_REGIONS_MAX];
	struct sn_virtio_port *vp;
	uint64_t extra;
	unsigned mtu;
	struct sn_port_conf pconf = {.mtu = 0};
	int r;

	if (err)
		err->msg[0] = '\0';
	if (!sw || !cfg || !ret_port)
		return -EINVAL;
	mtu = cfg->mtu ? cfg->mtu : SN_MTU_DEFAULT;
	if (mtu < 68 || mtu > SN_FRAME_MAX - SN_ETH_HLEN - SN_VLAN_HLEN)
		return sn_error_set(err, -EINVAL, "mtu %u out of range 68..%d", mtu,
				    SN_FRAME_MAX - SN_ETH_HLEN - SN_VLAN_HLEN);
	extra = cfg->features & ~sn_virtio_net_features();
	if (extra)
		return sn_error_set(err, -ENOTSUP, "feature bits 0x%llx are not implemented",
				    (unsigned long long)extra);
	if (cfg->nregions == 0 || cfg->nregions > SN_VQ_MEM_REGIONS_MAX || !cfg->regions)
		return sn_error_set(err, -EINVAL, "1 to %d memory regions needed, got %u", SN_VQ_MEM_REGIONS_MAX,
				    cfg->nregions);
	if (cfg->name && (r = sn_port_name_check(sw, cfg->name, "name", err)) < 0)
		return r;
	if (cfg->rx.call_fd < 0 && !cfg->notify)
		return sn_error_set(err, -EINVAL, "rx queue: no call fd and no notify callback");
	if (cfg->tx.call_fd < 0 && !cfg->notify)
		return sn_error_set(err, -EINVAL, "tx queue: no call fd and no notify callback");

	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->nregions; i++)
		regs[i] = (struct sn_vq_mem_region){cfg->regions[i].gpa, cfg->regions[i].size, cfg->regions[i].hva};
	r = sn_vq_mem_set(&vp->mem, regs, cfg->nregions);
	if (r < 0) {
		free(vp);
		return sn_error_set(err, -EINVAL, "memory regions: empty, wrapping, overlapping or without a host pointer");
	}
	vp->features = cfg->features;
	vp->hdr_len = sn_vnet_hdr_len(cfg->features);
	vp->mrg = cfg->features & SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF);
	vp->notify = cfg->notify;
	vp->opaque = cfg->opaque;
	pconf.mtu = mtu;
	r = 0;
	if (cfg->name)
		r = sn_strlcpy(pconf.name, cfg->name, sizeof(pconf.name));
	if (r >= 0)
		r = sn_port_init(&vp->base, sw, &virtio_ops, &pconf);
	if (r < 0) {
		free(vp);
		return sn_error_set(err, -EINVAL, "bad port name");
	}
	snprintf(vp->qname[SN_VIRTIO_RX], sizeof(vp->qname[0]), "port %s rx", vp->base.name);
	snprintf(vp->qname[SN_VIRTIO_TX], sizeof(vp->qname[0]), "port %s tx", vp->base.name);
	r = setup_queue(vp, SN_VIRTIO_RX, &cfg->rx, err);
	if (r >= 0)
		r = setup_queue(vp, SN_VIRTIO_TX, &cfg->tx, err);
	if (r >= 0)
		r = sn_port_register(&vp->base);
	if (r < 0) {
		free(vp);
		return r == -EEXIST ? sn_error_set(err, r, "a port called '%s' exists already", cfg->name) : r;
	}
	{
		uint32_t tx, rx;

		/* what the driver negotiated; a device reset makes a new port */
		sn_vnet_offloads(cfg->features, &tx, &rx);
		if (sn_port_set_offloads(&vp->base, tx, rx) < 0)
			sn_warn("port %s: no memory for the jumbo buffers of the offloads: large frames are dropped",
				vp->base.name);
	}
	ev_check_init(&vp->more_check, more_cb);
	vp->more_check.data = vp;
	ev_idle_init(&vp->more_idle, idle_cb);
	vp->more_idle.data = vp;
	for (int q = 0; q < 2; q++)
		if (vp->kick_fd[q] >= 0)
			ev_io_start(sn_port_loop(&vp->base), &vp->kick_io[q]);
	sn_port_set_state(&vp->base, SN_PORT_UP);
	sn_vq_notify_enable(&vp->vq[SN_VIRTIO_RX], true);
	tx_run(vp);
	sn_info("port %s: in-process virtio-net attached (features 0x%llx)", vp->base.name,
		(unsigned long long)vp->features);
	*ret_port = vp;
	return 0;
}

SN_EXPORT void sn_virtio_port_destroy(struct sn_virtio_port *vp)
{
	if (vp)
		sn_port_close(&vp->base);
}

SN_EXPORT void sn_virtio_port_kick(struct sn_virtio_port *vp, enum sn_virtio_queue_index queue)
{
	if (queue == SN_VIRTIO_RX || queue == SN_VIRTIO_TX)
		kick(vp, queue);
}

SN_EXPORT void sn_virtio_port_rx_buffers_available(struct sn_virtio_port *vp)
{
	kick(vp, SN_VIRTIO_RX);
}

SN_EXPORT const char *sn_virtio_port_name(const struct sn_virtio_port *vp)
{
	return vp->base.name;
}

SN_EXPORT bool sn_virtio_port_broken(const struct sn_virtio_port *vp, enum sn_virtio_queue_index queue,
				     const char **ret_reason)
{
	const struct sn_vq *vq;

	if (queue != SN_VIRTIO_RX && queue != SN_VIRTIO_TX)
		return false;
	vq = &vp->vq[queue];
	if (vq->broken && ret_reason)
		*ret_reason = vq->broken_reason;
	return vq->broken;
}
