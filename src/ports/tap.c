/* tap.c - a Linux TAP device as a switch port: the host sees the switch's VMs on an interface it
 * can address, route or bridge.
 *
 * tap,ifname=NAME attaches to an existing (persistent) TAP device; with create=on a missing one is
 * created, brought up, and disappears again when the port is removed, because it is not made
 * persistent and the kernel deletes it when its last descriptor closes. The device is opened
 * without a packet-information header or virtio-net header, so one read() is one Ethernet frame;
 * reads go straight into pool buffers, up to RX_BATCH per wake-up, and reach the switch as one
 * batch. A TAP takes one frame per write(), so egress is a write() per queued frame. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../logging.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"

#define RX_BATCH 64
#define TUN_PATH "/dev/net/tun"

struct tap_port {
	struct sn_port base;
	char ifname[IFNAMSIZ];
	bool create;
	bool created;           /* the device did not exist: it goes when we close it */
	bool gone;              /* the device went away under us */
	int fd;
	ev_io rio, wio;
	uint64_t tx_errors;     /* frames the device refused (link down, ...) */
	uint8_t *scratch;       /* where a frame goes when the pool is empty: read to be dropped */
	struct sn_frame *batch[RX_BATCH];
};

/* ---- data path ---- */

static void tap_lost(struct tap_port *tp, int e)
{
	struct ev_loop *loop = sn_port_loop(&tp->base);

	sn_warn("tap port %s: device '%s' is gone (%s); remove the port or add it again", tp->base.name,
		tp->ifname, strerror(e));
	ev_io_stop(loop, &tp->rio);
	ev_io_stop(loop, &tp->wio);
	tp->gone = true;
	sn_port_set_state(&tp->base, SN_PORT_DOWN);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tap_port *tp = w->data;
	uint32_t max = sn_port_max_frame(&tp->base);
	unsigned n = 0;
	int e = 0;

	while (n < RX_BATCH) {
		struct sn_frame *f = sn_port_frame_get(&tp->base, max);
		uint8_t *buf = f ? f->data : tp->scratch;
		size_t cap = f ? f->cap : SN_FRAME_MAX;
		ssize_t r;

		do
			r = read(tp->fd, buf, cap);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			e = r < 0 ? errno : EIO;
			if (f)
				sn_frame_unref(f);
			break;
		}
		if (!f)
			continue; /* counted as drop_no_buffer */
		if ((uint32_t)r > max) {
			/* the device's MTU is larger than the port's; the kernel reports the whole length */
			tp->base.stats.drop_oversize++;
			sn_frame_unref(f);
			continue;
		}
		f->len = (uint32_t)r;
		tp->batch[n++] = f;
	}
	if (n)
		sn_port_input(&tp->base, tp->batch, n);
	if (e && e != EAGAIN && e != EWOULDBLOCK)
		tap_lost(tp, e);
}

static void tap_flush(struct sn_port *port)
{
	struct tap_port *tp = (struct tap_port *)port;
	struct ev_loop *loop = sn_port_loop(port);
	struct sn_txq *q = &port->txq;
	uint32_t done = 0;

	while (done < sn_txq_len(q)) {
		struct sn_frame *f = sn_txq_peek(q, done);
		ssize_t w;
		int e;

		do
			w = write(tp->fd, f->data, f->len);
		while (w < 0 && errno == EINTR);
		if (w >= 0) {
			done++;
			continue;
		}
		e = errno;
		sn_txq_sent(port, done);
		done = 0;
		if (e == EAGAIN || e == EWOULDBLOCK) {
			ev_io_start(loop, &tp->wio);
			return;
		}
		/* a TAP whose link is down says EIO: that frame is lost, the port stays */
		if (e == EMSGSIZE || e == EINVAL)
			port->stats.drop_oversize++;
		else
			tp->tx_errors++;
		sn_txq_drop(port, 1);
		if (e == EBADFD || e == ENODEV) {
			tap_lost(tp, e);
			return;
		}
	}
	sn_txq_sent(port, done);
	ev_io_stop(loop, &tp->wio);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tap_port *tp = w->data;

	tap_flush(&tp->base);
}

/* ---- opening the device ---- */

/* Sets IFF_UP on @ifname; the address and routes are the host's business. */
static int link_up(const char *ifname)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = 0;

	if (s < 0)
		return -errno;
	sn_strlcpy(ifr.ifr_name, ifname, sizeof(ifr.ifr_name));
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		r = -errno;
	} else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			r = -errno;
	}
	close(s);
	return r;
}

static int open_tap(struct tap_port *tp, struct sn_error *err)
{
	struct ifreq ifr = {0};
	bool exists = if_nametoindex(tp->ifname) != 0;
	int fd, e;

	if (!exists && !tp->create)
		return sn_error_set(err, -ENODEV,
				    "tap port: no device '%s': create it first (ip tuntap add dev %s mode tap) or "
				    "pass create=on", tp->ifname, tp->ifname);
	fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		return sn_error_set(err, -e, "tap port: cannot open %s: %s%s", TUN_PATH, strerror(e),
				    e == ENOENT || e == ENODEV ? " (is the tun module loaded?)" :
				    e == EACCES || e == EPERM ? " (run as root, or make it readable and writable "
								"for this user)" : "");
	}
	sn_strlcpy(ifr.ifr_name, tp->ifname, sizeof(ifr.ifr_name));
	/* no IFF_VNET_HDR: without it the kernel hands us whole, checksummed frames */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		e = errno;
		close(fd);
		if (e == EPERM)
			return sn_error_set(err, -EPERM,
					    "tap port: not allowed to %s '%s': run as root, give the program "
					    "CAP_NET_ADMIN, or make the device for this user (ip tuntap add dev %s "
					    "mode tap user USER)", exists ? "attach to" : "create", tp->ifname, tp->ifname);
		if (e == EBUSY)
			return sn_error_set(err, -EBUSY, "tap port: device '%s' is in use by another program",
					    tp->ifname);
		if (e == EINVAL && exists)
			return sn_error_set(err, -EINVAL,
					    "tap port: '%s' is not a single-queue TAP device (a TUN, multi-queue "
					    "or other interface has that name)", tp->ifname);
		return sn_error_set(err, -e, "tap port: TUNSETIFF on '%s': %s", tp->ifname, strerror(e));
	}
	sn_strlcpy(tp->ifname, ifr.ifr_name, sizeof(tp->ifname));
	tp->created = !exists;
	tp->fd = fd;
	if (tp->created) {
		int r = link_up(tp->ifname);

		if (r < 0)
			sn_warn("tap port %s: cannot bring '%s' up: %s", tp->base.name, tp->ifname, strerror(-r));
	}
	return 0;
}

/* ---- the port ---- */

static void tap_port_close(struct sn_port *port)
{
	struct tap_port *tp = (struct tap_port *)port;
	struct ev_loop *loop = sn_port_loop(port);

	ev_io_stop(loop, &tp->rio);
	ev_io_stop(loop, &tp->wio);
	/* a device we created is not persistent: this close removes it */
	if (tp->fd >= 0)
		close(tp->fd);
	tp->fd = -1;
}

static void tap_port_free(struct sn_port *port)
{
	struct tap_port *tp = (struct tap_port *)port;

	free(tp->scratch);
	free(tp);
}

static void tap_port_describe(struct sn_port *port, char *buf, size_t len)
{
	struct tap_port *tp = (struct tap_port *)port;
	int n = snprintf(buf, len, "ifname=%s%s%s", tp->ifname, tp->created ? " created" : "",
			 tp->gone ? " gone" : "");

	if (n >= 0 && (size_t)n < len && tp->tx_errors)
		snprintf(buf + n, len - (size_t)n, " tx_errors=%llu", (unsigned long long)tp->tx_errors);
}

static const struct sn_port_ops tap_port_ops = {
	.kind = "tap",
	.flush = tap_flush,
	.close = tap_port_close,
	.free = tap_port_free,
	.describe = tap_port_describe,
};

static int tap_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
		      struct sn_port **ret_port, struct sn_error *err)
{
	const char *ifname = sn_spec_get(spec, "ifname");
	struct tap_port *tp;
	int r;

	tp = calloc(1, sizeof(*tp));
	if (!tp)
		return -ENOMEM;
	tp->fd = -1;
	r = sn_port_init(&tp->base, sw, &tap_port_ops, conf);
	if (r < 0)
		goto fail;
	r = sn_spec_get_bool(spec, "create", &tp->create, err);
	if (r < 0)
		goto fail;
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		goto fail;
	if (!ifname || !*ifname) {
		r = sn_error_set(err, -EINVAL, "tap port needs ifname=NAME");
		goto fail;
	}
	if (strchr(ifname, '/') || strchr(ifname, '%') || sn_strlcpy(tp->ifname, ifname, sizeof(tp->ifname)) < 0) {
		r = sn_error_set(err, -EINVAL, "bad value '%s' for key 'ifname': 1 to %d characters, no '/' or '%%'",
				 ifname, IFNAMSIZ - 1);
		goto fail;
	}
	tp->scratch = malloc(SN_FRAME_MAX);
	if (!tp->scratch) {
		r = -ENOMEM;
		goto fail;
	}
	r = open_tap(tp, err);
	if (r < 0)
		goto fail;
	r = sn_port_register(&tp->base);
	if (r < 0) {
		close(tp->fd);
		goto fail;
	}
	ev_io_init(&tp->rio, read_cb, tp->fd, EV_READ);
	tp->rio.data = tp;
	ev_io_init(&tp->wio, write_cb, tp->fd, EV_WRITE);
	tp->wio.data = tp;
	ev_io_start(sn_port_loop(&tp->base), &tp->rio);
	sn_port_set_state(&tp->base, SN_PORT_UP);
	*ret_port = &tp->base;
	return 0;
fail:
	free(tp->scratch);
	free(tp);
	return r;
}

static const char *const tap_keys[] = {"ifname", "create", NULL};

const struct sn_port_kind sn_port_kind_tap = {
	.name = "tap",
	.usage = "tap,ifname=NAME[,create=on]                              a TAP device (Linux)",
	.keys = tap_keys,
	.create = tap_create,
};
