/* pcap.c - a host network interface as a switch port, through libpcap live capture and injection.
 *
 * pcap,dev=IFNAME opens the interface in immediate, non-blocking mode and watches its selectable
 * descriptor; each wake-up dispatches up to RX_BATCH frames per round into pool buffers and hands
 * them to the switch as one batch. Egress goes out with pcap_inject(), one frame per call. Frames
 * the switch injected must not come back as ingress, or every flood would loop: the capture asks
 * for inbound frames only (pcap_setdirection), and where the platform cannot do that, a frame equal
 * to one injected a moment ago is dropped. When capturing fails later (the interface went away),
 * the port goes down and reopens the interface with backoff until it is back. */
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../logging.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"

#define RX_BATCH 64
#define RX_ROUNDS 4        /* dispatch rounds per wake-up, so a busy interface cannot starve others */
#define TX_RETRY 0.001     /* look again this soon after the kernel refused a frame for lack of room */
#define REOPEN_MIN 0.5
#define REOPEN_MAX 5.0
#define RECENT 64          /* injected frames remembered where the capture cannot skip outbound ones */
#define DEV_MAX 64
#define RING_BYTES (8 << 20)

struct pcap_port {
	struct sn_port base;
	char dev[DEV_MAX];
	char filter[SN_SPEC_MAX_LEN];
	bool promisc;
	bool inbound_only;         /* pcap_setdirection(PCAP_D_IN) took effect */
	pcap_t *p;
	ev_io io;
	ev_timer read_again;       /* libpcap asked to be called again without a readable fd */
	ev_timer tx_retry;
	ev_timer reopen;
	double backoff;
	unsigned nbatch;
	struct sn_frame *batch[RX_BATCH];
	uint64_t tx_errors;        /* frames the interface refused for good (down, gone, ...) */
	uint64_t tx_busy;          /* times the kernel had no room and the queue waited */
	uint64_t looped;           /* ingress frames dropped as our own injections */
	uint64_t reopens;
	uint32_t recent[RECENT];   /* hashes of the last frames injected (without PCAP_D_IN only) */
	unsigned recent_pos;
};

/* FNV-1a over the frame and its length: enough to recognise our own frame coming straight back. */
static uint32_t frame_hash(const uint8_t *d, uint32_t len)
{
	uint32_t h = 2166136261u ^ len;

	for (uint32_t i = 0; i < len; i++)
		h = (h ^ d[i]) * 16777619u;
	return h ? h : 1; /* 0 marks an empty slot */
}

static bool injected_recently(struct pcap_port *pp, const uint8_t *d, uint32_t len)
{
	uint32_t h = frame_hash(d, len);

	for (unsigned i = 0; i < RECENT; i++) {
		if (pp->recent[i] == h) {
			pp->recent[i] = 0; /* one echo per injection */
			return true;
		}
	}
	return false;
}

/* ---- opening the interface ---- */

/* Maps what pcap_activate() said to an errno and a message naming the interface. */
static int activate_error(struct pcap_port *pp, pcap_t *p, int status, struct sn_error *err)
{
	const char *why = pcap_geterr(p);

	if (!why || !*why)
		why = pcap_statustostr(status);
	switch (status) {
	case PCAP_ERROR_NO_SUCH_DEVICE:
		return sn_error_set(err, -ENODEV, "pcap port: no interface '%s': %s", pp->dev, why);
	case PCAP_ERROR_PERM_DENIED:
	case PCAP_ERROR_PROMISC_PERM_DENIED:
		return sn_error_set(err, -EPERM,
				    "pcap port: not allowed to capture on '%s' (%s): run as root or give the "
				    "program CAP_NET_RAW (and CAP_NET_ADMIN for promisc=on)", pp->dev, why);
	case PCAP_ERROR_IFACE_NOT_UP:
		return sn_error_set(err, -ENETDOWN, "pcap port: interface '%s' is down: %s", pp->dev, why);
	default:
		return sn_error_set(err, -EIO, "pcap port: cannot capture on '%s': %s", pp->dev, why);
	}
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents);

static int open_handle(struct pcap_port *pp, struct sn_error *err)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	struct bpf_program prog;
	pcap_t *p;
	int r, fd, fl;

	p = pcap_create(pp->dev, ebuf);
	if (!p)
		return sn_error_set(err, -ENODEV, "pcap port: interface '%s': %s", pp->dev, ebuf);
	/* the switch never takes a frame longer than this; a longer one shows up cut and is dropped */
	pcap_set_snaplen(p, (int)sn_port_max_frame(&pp->base));
	pcap_set_promisc(p, pp->promisc);
	pcap_set_immediate_mode(p, 1);
	/* libpcap's 2 MiB ring overflows under a single TCP stream at a few Gbit/s */
	pcap_set_buffer_size(p, RING_BYTES);
	r = pcap_activate(p);
	if (r < 0) {
		r = activate_error(pp, p, r, err);
		goto fail;
	}
	if (r > 0)
		sn_warn("pcap port %s: interface '%s': %s", pp->base.name, pp->dev, pcap_geterr(p));
	if (pcap_datalink(p) != DLT_EN10MB) {
		r = sn_error_set(err, -EPROTONOSUPPORT, "pcap port: '%s' is not an Ethernet interface (link type %s)",
				 pp->dev, pcap_datalink_val_to_name(pcap_datalink(p)));
		goto fail;
	}
	pp->inbound_only = pcap_setdirection(p, PCAP_D_IN) == 0;
	if (!pp->inbound_only)
		sn_info("pcap port %s: '%s' cannot capture inbound frames only (%s); dropping echoes of "
			"injected frames instead", pp->base.name, pp->dev, pcap_geterr(p));
	if (pp->filter[0]) {
		if (pcap_compile(p, &prog, pp->filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
			r = sn_error_set(err, -EINVAL, "pcap port: bad filter '%s': %s", pp->filter, pcap_geterr(p));
			goto fail;
		}
		r = pcap_setfilter(p, &prog);
		pcap_freecode(&prog);
		if (r < 0) {
			r = sn_error_set(err, -EIO, "pcap port: cannot set the filter on '%s': %s", pp->dev,
					 pcap_geterr(p));
			goto fail;
		}
	}
	if (pcap_setnonblock(p, 1, ebuf) < 0) {
		r = sn_error_set(err, -EIO, "pcap port: '%s': %s", pp->dev, ebuf);
		goto fail;
	}
	fd = pcap_get_selectable_fd(p);
	if (fd < 0) {
		r = sn_error_set(err, -ENOTSUP, "pcap port: '%s' has no descriptor an event loop can watch", pp->dev);
		goto fail;
	}
	/* Linux's pcap_setnonblock() only changes how libpcap polls its ring; a send() into a full
	 * socket buffer would still sleep, so the descriptor itself must not block either. */
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	pp->p = p;
	ev_io_set(&pp->io, fd, EV_READ);
	ev_io_start(sn_port_loop(&pp->base), &pp->io);
	return 0;
fail:
	pcap_close(p);
	return r;
}

static void close_handle(struct pcap_port *pp)
{
	struct ev_loop *loop = sn_port_loop(&pp->base);

	ev_io_stop(loop, &pp->io);
	ev_timer_stop(loop, &pp->read_again);
	ev_timer_stop(loop, &pp->tx_retry);
	if (pp->p)
		pcap_close(pp->p);
	pp->p = NULL;
}

/* Capturing failed: go down and try the interface again later. */
static void capture_lost(struct pcap_port *pp, const char *why)
{
	struct ev_loop *loop = sn_port_loop(&pp->base);

	sn_warn("pcap port %s: capture on '%s' failed: %s; reopening it", pp->base.name, pp->dev, why);
	close_handle(pp);
	sn_port_set_state(&pp->base, SN_PORT_DOWN);
	pp->backoff = REOPEN_MIN;
	ev_timer_set(&pp->reopen, pp->backoff, 0);
	ev_timer_start(loop, &pp->reopen);
}

static void reopen_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pcap_port *pp = w->data;
	struct sn_error err;

	if (open_handle(pp, &err) < 0) {
		sn_debug("pcap port %s: %s", pp->base.name, err.msg);
		pp->backoff = SN_MIN(pp->backoff * 2, REOPEN_MAX);
		ev_timer_set(w, pp->backoff, 0);
		ev_timer_start(loop, w);
		return;
	}
	pp->reopens++;
	sn_info("pcap port %s: capturing on '%s' again", pp->base.name, pp->dev);
	sn_port_set_state(&pp->base, SN_PORT_UP);
}

/* ---- data path ---- */

static void batch_push(struct pcap_port *pp)
{
	if (pp->nbatch) {
		sn_port_input(&pp->base, pp->batch, pp->nbatch);
		pp->nbatch = 0;
	}
}

static void rx_one(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct pcap_port *pp = (struct pcap_port *)user;
	struct sn_frame *f;

	if (sn_unlikely(h->caplen < h->len)) {
		/* longer than the snap length: an offloaded (GRO/TSO) super-frame or a bigger MTU */
		pp->base.stats.drop_oversize++;
		return;
	}
	if (!pp->inbound_only && injected_recently(pp, bytes, h->caplen)) {
		pp->looped++;
		return;
	}
	f = sn_port_rx_copy(&pp->base, bytes, h->caplen);
	if (!f)
		return;
	pp->batch[pp->nbatch++] = f;
	if (pp->nbatch == RX_BATCH)
		batch_push(pp);
}

static void read_packets(struct pcap_port *pp)
{
	const struct timeval *again;

	for (int round = 0; round < RX_ROUNDS; round++) {
		int n = pcap_dispatch(pp->p, RX_BATCH, rx_one, (u_char *)pp);

		batch_push(pp);
		if (n < 0) {
			capture_lost(pp, n == PCAP_ERROR ? pcap_geterr(pp->p) : pcap_statustostr(n));
			return;
		}
		if (n < RX_BATCH)
			break;
	}
	/* Linux's libpcap takes the socket error of an interface that went down or away, and
	 * finds out which only on a later call: it asks for one within this time, for the
	 * descriptor may never be readable again (pcap_get_required_select_timeout(3PCAP)). */
	again = pcap_get_required_select_timeout(pp->p);
	if (again && !ev_is_active(&pp->read_again)) {
		ev_timer_set(&pp->read_again, SN_MAX(again->tv_sec + again->tv_usec / 1e6, 0.001), 0);
		ev_timer_start(sn_port_loop(&pp->base), &pp->read_again);
	}
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	read_packets(w->data);
}

static void read_again_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	read_packets(w->data);
}


static void pcap_port_flush(struct sn_port *port)
{
	struct pcap_port *pp = (struct pcap_port *)port;
	struct sn_txq *q = &port->txq;

	if (!pp->p) {
		sn_txq_clear(port);
		return;
	}
	while (!sn_txq_empty(q)) {
		struct sn_frame *f = sn_txq_peek(q, 0);
		int e;

		if (sn_likely(pcap_inject(pp->p, f->data, f->len) >= 0)) {
			if (!pp->inbound_only) {
				pp->recent[pp->recent_pos] = frame_hash(f->data, f->len);
				pp->recent_pos = (pp->recent_pos + 1) % RECENT;
			}
			sn_txq_sent(port, 1);
			continue;
		}
		/* libpcap leaves the errno of the failed send(); formatting its message keeps it */
		e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS || e == EINTR) {
			/* the socket or the device queue is full: keep the frame, try again shortly (a
			 * full device queue never makes the descriptor writable, so a timer it is) */
			pp->tx_busy++;
			if (!ev_is_active(&pp->tx_retry))
				ev_timer_start(sn_port_loop(port), &pp->tx_retry);
			return;
		}
		if (e == EMSGSIZE)
			port->stats.drop_oversize++;
		else
			pp->tx_errors++;
		sn_txq_drop(port, 1);
	}
	ev_timer_stop(sn_port_loop(port), &pp->tx_retry);
}

static void tx_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pcap_port *pp = w->data;

	pcap_port_flush(&pp->base);
}

/* ---- the port ---- */

static void pcap_port_close(struct sn_port *port)
{
	struct pcap_port *pp = (struct pcap_port *)port;

	close_handle(pp);
	ev_timer_stop(sn_port_loop(port), &pp->reopen);
	for (unsigned i = 0; i < pp->nbatch; i++)
		sn_frame_unref(pp->batch[i]);
	pp->nbatch = 0;
}

static void pcap_port_describe(struct sn_port *port, char *buf, size_t len)
{
	struct pcap_port *pp = (struct pcap_port *)port;
	struct pcap_stat ps = {0};
	int n;

	n = snprintf(buf, len, "dev=%s%s%s%s", pp->dev, pp->promisc ? "" : " promisc=off",
		     pp->filter[0] ? " filter=" : "", pp->filter);
	if (n < 0 || (size_t)n >= len)
		return;
	if (pp->p && pcap_stats(pp->p, &ps) == 0 && ps.ps_drop)
		n += snprintf(buf + n, len - (size_t)n, " kernel_drops=%u", ps.ps_drop);
	if ((size_t)n < len && (pp->tx_errors || pp->tx_busy || pp->looped || pp->reopens))
		snprintf(buf + n, len - (size_t)n, " tx_errors=%llu tx_busy=%llu looped=%llu reopens=%llu",
			 (unsigned long long)pp->tx_errors, (unsigned long long)pp->tx_busy,
			 (unsigned long long)pp->looped, (unsigned long long)pp->reopens);
}

static const struct sn_port_ops pcap_port_ops = {
	.kind = "pcap",
	.flush = pcap_port_flush,
	.close = pcap_port_close,
	.describe = pcap_port_describe,
};

static int pcap_port_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			    struct sn_port **ret_port, struct sn_error *err)
{
	const char *dev = sn_spec_get(spec, "dev");
	const char *filter = sn_spec_get(spec, "filter");
	bool promisc = true;
	struct pcap_port *pp;
	int r;

	pp = calloc(1, sizeof(*pp));
	if (!pp)
		return -ENOMEM;
	r = sn_port_init(&pp->base, sw, &pcap_port_ops, conf);
	if (r < 0)
		goto fail;
	r = sn_spec_get_bool(spec, "promisc", &promisc, err);
	if (r < 0)
		goto fail;
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		goto fail;
	if (!dev || !*dev) {
		r = sn_error_set(err, -EINVAL, "pcap port needs dev=IFNAME");
		goto fail;
	}
	if (sn_strlcpy(pp->dev, dev, sizeof(pp->dev)) < 0) {
		r = sn_error_set(err, -EINVAL, "bad value '%s' for key 'dev': too long", dev);
		goto fail;
	}
	if (filter)
		sn_strlcpy(pp->filter, filter, sizeof(pp->filter)); /* a SPEC is shorter than this */
	pp->promisc = promisc;
	ev_io_init(&pp->io, read_cb, -1, EV_READ);
	pp->io.data = pp;
	ev_timer_init(&pp->read_again, read_again_cb, 0.001, 0);
	pp->read_again.data = pp;
	ev_timer_init(&pp->tx_retry, tx_retry_cb, TX_RETRY, 0);
	pp->tx_retry.data = pp;
	ev_timer_init(&pp->reopen, reopen_cb, REOPEN_MIN, 0);
	pp->reopen.data = pp;

	r = open_handle(pp, err);
	if (r < 0)
		goto fail;
	r = sn_port_register(&pp->base);
	if (r < 0) {
		close_handle(pp);
		goto fail;
	}
	sn_port_set_state(&pp->base, SN_PORT_UP);
	*ret_port = &pp->base;
	return 0;
fail:
	free(pp);
	return r;
}

static const char *const pcap_keys[] = {"dev", "filter", "promisc", NULL};

const struct sn_port_kind sn_port_kind_pcap = {
	.name = "pcap",
	.usage = "pcap,dev=IFNAME[,filter=EXPR][,promisc=on|off]           a host interface through libpcap",
	.keys = pcap_keys,
	.create = pcap_port_create,
};
