/* tap.c - a Linux TAP device as a switch port: the host sees the switch's VMs on an interface it
 * can address, route or bridge.
 *
 * tap,ifname=NAME attaches to an existing (persistent) TAP device; with create=on a missing one is
 * created, brought up, and disappears again when the port is removed, because it is not made
 * persistent and the kernel deletes it when its last descriptor closes. The device is opened
 * without a packet-information header, so one read() is one Ethernet frame; reads go straight
 * into pool buffers, up to RX_BATCH per wake-up, and reach the switch as one batch. A TAP takes
 * one frame per write(), so egress is a write() per queued frame.
 *
 * With offload=on (the default) every frame goes with a 12-byte virtio-net header
 * (IFF_VNET_HDR, TUNSETVNETHDRSZ), and TUNSETOFFLOAD tells the kernel it may hand us partial
 * checksums and TSO (and USO where the kernel has it) frames of up to 64 KiB: the host's stack
 * then sends one large frame where it would have sent dozens. The kernel takes the same from
 * us whatever TUNSETOFFLOAD said, and segments what it cannot send on. A large frame is read
 * into a standard buffer and, past its end, a scratch buffer, and moved into a jumbo buffer
 * only when it did not fit. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../logging.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"

#define RX_BATCH 64
#define TUN_PATH "/dev/net/tun"
#define VNET_HDR_LEN 12 /* the virtio 1.0 layout: num_buffers included, unused here */

/* The kernel's own headers name these from Linux 6.2 on: USO both ways, in TUNSETOFFLOAD. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

struct tap_port {
	struct sn_port base;
	char ifname[IFNAMSIZ];
	bool create;
	bool created;           /* the device did not exist: it goes when we close it */
	bool gone;              /* the device went away under us */
	bool offload;           /* offload=on: frames go with a virtio-net header both ways */
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

/* The frame of @r bytes read into @f (its first f->cap) and the scratch buffer (the rest), in
 * a jumbo buffer; NULL when none is free (counted). */
static struct sn_frame *grow(struct tap_port *tp, struct sn_frame *f, size_t r)
{
	struct sn_frame *g = sn_port_frame_get(&tp->base, (uint32_t)r);

	if (g) {
		memcpy(g->data, f->data, f->cap);
		memcpy(g->data + f->cap, tp->scratch, r - f->cap);
		g->off = f->off;
	}
	sn_frame_unref(f);
	return g;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tap_port *tp = w->data;
	uint32_t max = sn_port_max_frame(&tp->base);
	unsigned n = 0;
	int e = 0;

	while (n < RX_BATCH) {
		struct sn_frame *f = sn_port_frame_get(&tp->base, max);
		uint8_t vh[VNET_HDR_LEN];
		struct iovec iov[3];
		int niov = 0;
		ssize_t r;

		if (tp->offload)
			iov[niov++] = (struct iovec){vh, sizeof(vh)};
		if (f)
			iov[niov++] = (struct iovec){f->data, f->cap};
		/* without a buffer the frame is read to be dropped; with offloads a large one goes on */
		if (!f || tp->offload)
			iov[niov++] = (struct iovec){tp->scratch, SN_FRAME_MAX};
		do
			r = readv(tp->fd, iov, niov);
		while (r < 0 && errno == EINTR);
		if (r <= 0 || (tp->offload && r < VNET_HDR_LEN)) {
			e = r < 0 ? errno : EIO;
			if (f)
				sn_frame_unref(f);
			break;
		}
		if (!f)
			continue; /* counted as drop_no_buffer */
		if (tp->offload) {
			r -= VNET_HDR_LEN;
			sn_vnet_hdr_get(vh, &f->off);
		}
		/* the device's MTU may be larger than the port's; the kernel reports the whole length */
		if ((uint32_t)r > (f->off.gso ? SN_OFFLOAD_FRAME_MAX : max)) {
			tp->base.stats.drop_oversize++;
			sn_frame_unref(f);
			continue;
		}
		if ((size_t)r > f->cap && !(f = grow(tp, f, (size_t)r)))
			continue;
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

		uint8_t vh[VNET_HDR_LEN] = {0};
		struct iovec iov[2] = {{vh, sizeof(vh)}, {f->data, f->len}};

		/* what the switch queued here fits what the kernel takes (offload_tx) */
		if (tp->offload)
			sn_vnet_hdr_put(vh, &f->off, port->offload_tx);
		do
			w = tp->offload ? writev(tp->fd, iov, 2) : write(tp->fd, f->data, f->len);
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

/* The header's size, and what the kernel may send us: everything, USO only where it knows it
 * (Linux 6.2), which also says it understands UDP_L4 headers in what we write. */
static int offloads_set(struct tap_port *tp, int fd)
{
	unsigned base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
	uint32_t caps = SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO6 | SN_OFFLOAD_TSO_ECN;
	int hl = VNET_HDR_LEN;

	if (ioctl(fd, TUNSETVNETHDRSZ, &hl) < 0)
		return -errno;
	if (ioctl(fd, TUNSETOFFLOAD, base | TUN_F_USO4 | TUN_F_USO6) == 0)
		caps |= SN_OFFLOAD_USO4 | SN_OFFLOAD_USO6;
	else if (errno != EINVAL || ioctl(fd, TUNSETOFFLOAD, base) < 0)
		return -errno;
	return sn_port_set_offloads(&tp->base, caps, caps);
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
	/* without IFF_VNET_HDR the kernel hands us whole, checksummed frames */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (tp->offload ? IFF_VNET_HDR : 0);
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
	if (tp->offload && (e = offloads_set(tp, fd)) < 0) {
		close(fd);
		return sn_error_set(err, e, "tap port: cannot set up the virtio-net header on '%s': %s (offload=off "
					    "does without)", tp->ifname, strerror(-e));
	}
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
	int n = snprintf(buf, len, "ifname=%s%s%s%s", tp->ifname, tp->created ? " created" : "",
			 tp->gone ? " gone" : "", tp->offload ? " vnet-hdr" : "");

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
	tp->offload = true;
	r = sn_spec_get_bool(spec, "offload", &tp->offload, err);
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

static const char *const tap_keys[] = {"ifname", "create", "offload", NULL};

const struct sn_port_kind sn_port_kind_tap = {
	.name = "tap",
	.usage = "tap,ifname=NAME[,create=on][,offload=on|off]             a TAP device (Linux)",
	.keys = tap_keys,
	.create = tap_create,
};
