/* vmnet.c - a port on one vmnet.framework interface (macOS shared, host or bridged network).
 *
 * SPEC: vmnet[,mode=shared|host|bridged][,iface=IF][,start=IP,end=IP,mask=MASK][,isolate=on]
 * [,interface-id=UUID][,nat66-prefix=P][,offload=on][,timeout=SECONDS][,name=NAME]. The framework calls
 * live behind src/backends/vmnet.h; this file holds what is the same on every backend: the
 * SPEC, batching, waking, counting. vmnet's packets-available callback runs on a dispatch
 * queue, so all it does here is write a byte into a pipe the loop watches (at most one byte
 * in flight: an atomic flag coalesces the rest); the loop then drains vmnet_read in batches
 * straight into pool frames (one iovec each) and the switch's flush step writes egress
 * batches with vmnet_write. Nothing on the data path takes a lock. Start and stop block the
 * loop until the framework's completion, at most `timeout` seconds.
 *
 * offload=on asks vmnet for TSO and checksum offload (as vmnet-helper's --enable-tso and
 * --enable-checksum-offload do): vmnet then hands over TCP frames of up to 64 KiB and may leave
 * checksums unfinished, and takes the same, with no header per frame to say so. Frames read
 * are described from their bytes (sn_offload_infer()): every TCP or UDP frame as a partial
 * checksum, a TCP frame over the MTU as TSO with the MSS the MTU gives. Frames written may be
 * large TCP frames and partial checksums, for vmnet to finish. None of this has run on a Mac. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backends/vmnet.h"
#include "../logging.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"

#define TIMEOUT_DEFAULT 10
#define RETRY_NO_BUFFER 0.005 /* seconds before trying again when the pool is empty */
#define RETRY_READ_ERROR 0.05 /* and after a failed vmnet_read */

struct vmnet_port {
	struct sn_port base;
	struct ev_loop *loop;
	struct sn_vmnet *vm;
	struct sn_vmnet_info info;
	enum sn_vmnet_mode mode;
	double timeout;
	/* The wake-up crosses threads through a pipe rather than ev_async: ev_async_send() is
	 * documented thread-safe, but libev makes it so with volatile flags and hand-made fences
	 * that ThreadSanitizer cannot see, so a TSan build with libev instrumented (the wrap
	 * fallback) reports races inside libev. A write(2) and a C11 atomic are understood. */
	int wake_fd[2];           /* [1] is written on the foreign thread, [0] watched by the loop */
	atomic_bool wake_pending; /* a byte is in the pipe or about to be */
	ev_io wake;
	ev_timer again;           /* drain more on the next iteration, or retry for buffers */
	unsigned rx_batch, tx_batch;
	uint32_t buf_len;         /* bytes offered per packet on read: max_packet_size */
	bool offload;             /* offload=on: TSO and checksum offload both ways */
	uint64_t wakeups, read_calls, write_calls, read_errors, write_errors;
	uint32_t last_error;
	struct sn_frame *rx[SN_VMNET_BATCH_MAX];
	struct sn_vmnet_pkt rxp[SN_VMNET_BATCH_MAX];
	struct sn_vmnet_pkt txp[SN_VMNET_BATCH_MAX];
};

static const char *mode_name(enum sn_vmnet_mode mode)
{
	return mode == SN_VMNET_HOST_MODE ? "host" : mode == SN_VMNET_BRIDGED_MODE ? "bridged" : "shared";
}

/* ---- data path ---- */

/* The framework's queue thread: only a wake-up crosses over. */
static void wake_fn(void *ctx, unsigned estimate)
{
	struct vmnet_port *vp = ctx;
	char one = 1;

	/* the loop clears the flag before it reads, so a callback that finds it set knows a
	 * drain is still to come after it */
	if (!atomic_exchange_explicit(&vp->wake_pending, true, memory_order_acq_rel))
		(void)!write(vp->wake_fd[1], &one, 1);
}

static void drain(struct vmnet_port *vp)
{
	/* at most half an egress queue per iteration, so the flush step runs before the next
	 * batch and one busy interface does not starve the other ports */
	uint32_t budget = SN_MAX(sn_port_txq_cap(&vp->base) / 2, vp->rx_batch), got = 0;

	while (got < budget) {
		int want = 0, n;
		uint32_t st;

		for (; want < (int)vp->rx_batch; want++) {
			/* straight from the pool, not sn_port_frame_get(): a short batch is no drop */
			struct sn_frame *f = sn_port_frame_try(&vp->base, vp->buf_len);

			if (!f)
				break;
			vp->rx[want] = f;
			vp->rxp[want].iov.iov_base = f->data;
			vp->rxp[want].iov.iov_len = vp->buf_len;
			vp->rxp[want].size = 0;
		}
		if (want == 0) {
			/* every buffer is queued somewhere; vmnet will not call again for packets it
			 * has announced, so come back when some have been sent */
			vp->base.stats.drop_no_buffer++;
			ev_timer_set(&vp->again, RETRY_NO_BUFFER, 0);
			ev_timer_start(vp->loop, &vp->again);
			return;
		}
		n = want;
		st = sn_vmnet_read(vp->vm, vp->rxp, &n);
		vp->read_calls++;
		if (sn_unlikely(st != SN_VMNET_SUCCESS)) {
			vp->read_errors++;
			vp->last_error = st;
			for (int i = 0; i < want; i++)
				sn_frame_unref(vp->rx[i]);
			/* what was announced is still there and will not be announced again */
			ev_timer_set(&vp->again, RETRY_READ_ERROR, 0);
			ev_timer_start(vp->loop, &vp->again);
			return;
		}
		n = SN_MIN(SN_MAX(n, 0), want);
		for (int i = 0; i < n; i++) {
			vp->rx[i]->len = (uint32_t)SN_MIN(vp->rxp[i].size, (size_t)vp->buf_len);
			if (vp->offload)
				sn_offload_infer(vp->rx[i], vp->base.mtu);
		}
		for (int i = n; i < want; i++)
			sn_frame_unref(vp->rx[i]);
		if (n > 0)
			sn_port_input(&vp->base, vp->rx, (unsigned)n);
		got += (uint32_t)n;
		/* empty: the next packets-available callback brings us back */
		if (n < want)
			return;
	}
	/* budget spent, maybe more waiting: a zero timer runs after the flush step */
	ev_timer_set(&vp->again, 0, 0);
	ev_timer_start(vp->loop, &vp->again);
}

static void wake_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vmnet_port *vp = w->data;
	char buf[16];

	atomic_store_explicit(&vp->wake_pending, false, memory_order_seq_cst);
	while (read(vp->wake_fd[0], buf, sizeof(buf)) > 0)
		;
	vp->wakeups++;
	if (!ev_is_active(&vp->again))
		drain(vp);
}

static void again_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	drain(w->data);
}


static void vmnet_flush(struct sn_port *port)
{
	struct vmnet_port *vp = (struct vmnet_port *)port;
	uint32_t max_pkt = vp->info.max_packet_size;

	while (!sn_txq_empty(&port->txq)) {
		uint32_t len = sn_txq_len(&port->txq), n = 0;
		size_t bytes = 0;
		int done;
		uint32_t st;

		for (; n < len && n < vp->tx_batch; n++) {
			struct sn_frame *f = sn_txq_peek(&port->txq, n);

			if (f->len > max_pkt || bytes + f->len > SN_VMNET_BYTES_MAX)
				break;
			vp->txp[n].iov.iov_base = f->data;
			vp->txp[n].iov.iov_len = f->len;
			vp->txp[n].size = f->len;
			bytes += f->len;
		}
		if (n == 0) {
			/* a tagged full-MTU frame can pass the switch's check yet exceed vmnet's size */
			port->stats.drop_oversize++;
			sn_txq_drop(port, 1);
			continue;
		}
		done = (int)n;
		st = sn_vmnet_write(vp->vm, vp->txp, &done);
		vp->write_calls++;
		if (sn_unlikely(st != SN_VMNET_SUCCESS)) {
			vp->write_errors++;
			vp->last_error = st;
			done = 0;
		}
		done = SN_MIN(SN_MAX(done, 0), (int)n);
		sn_txq_sent(port, (uint32_t)done);
		/* vmnet has no "writable" event to wait for: what it refused is dropped, as a full
		 * queue would drop it */
		if ((uint32_t)done < n) {
			port->stats.drop_txq_full += n - (uint32_t)done;
			sn_txq_drop(port, n - (uint32_t)done);
		}
	}
}

/* ---- lifecycle ---- */

static void stop_backend(struct sn_vmnet *vm, double timeout, const char *name)
{
	uint32_t st;
	char buf[96];
	int r = sn_vmnet_stop(vm, timeout, &st);

	if (r == -ETIMEDOUT)
		sn_warn("port %s: vmnet_stop_interface did not complete within %.0f s", name, timeout);
	else if (r < 0)
		sn_warn("port %s: vmnet_stop_interface: %s", name, sn_vmnet_strstatus(st, buf, sizeof(buf)));
}

static void vmnet_port_close(struct sn_port *port)
{
	struct vmnet_port *vp = (struct vmnet_port *)port;

	/* after this no wake callback is running or will run: the pipe may go */
	stop_backend(vp->vm, vp->timeout, port->name);
	vp->vm = NULL;
	ev_io_stop(vp->loop, &vp->wake);
	ev_timer_stop(vp->loop, &vp->again);
	for (int i = 0; i < 2; i++)
		if (vp->wake_fd[i] >= 0)
			close(vp->wake_fd[i]);
	vp->wake_fd[0] = vp->wake_fd[1] = -1;
}

static void vmnet_port_describe(struct sn_port *port, char *buf, size_t len)
{
	struct vmnet_port *vp = (struct vmnet_port *)port;
	const uint8_t *m = vp->info.mac;
	char err[64] = "none";

	if (vp->last_error)
		sn_vmnet_strstatus(vp->last_error, err, sizeof(err));
	snprintf(buf, len,
		 "vmnet %s mac=%02x:%02x:%02x:%02x:%02x:%02x max_packet=%u batch=%u/%u wakeups=%llu reads=%llu "
		 "writes=%llu read_errors=%llu write_errors=%llu last_error=%s",
		 mode_name(vp->mode), m[0], m[1], m[2], m[3], m[4], m[5], vp->info.max_packet_size, vp->rx_batch,
		 vp->tx_batch, (unsigned long long)vp->wakeups, (unsigned long long)vp->read_calls,
		 (unsigned long long)vp->write_calls, (unsigned long long)vp->read_errors,
		 (unsigned long long)vp->write_errors, err);
}

static const struct sn_port_ops vmnet_port_ops = {
	.kind = "vmnet",
	.flush = vmnet_flush,
	.close = vmnet_port_close,
	.describe = vmnet_port_describe,
};

/* ---- SPEC ---- */

/* 8-4-4-4-12 hex digits. */
static int parse_uuid(const char *s, uint8_t out[16])
{
	unsigned n = 0;

	if (strlen(s) != 36)
		return -EINVAL;
	for (unsigned i = 0; i < 36;) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i++] != '-')
				return -EINVAL;
			continue;
		}
		hi = sn_hex_digit(s[i]);
		lo = sn_hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return 0;
}

static int get_ipv4(struct sn_spec *spec, const char *key, const char **ret, uint32_t *ret_addr,
		    struct sn_error *err)
{
	const char *v = sn_spec_get(spec, key);
	struct in_addr a;

	*ret = v;
	if (!v)
		return 0;
	if (inet_pton(AF_INET, v, &a) != 1)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want an IPv4 address", v, key);
	*ret_addr = ntohl(a.s_addr);
	return 0;
}

/* The DHCP range of shared and host mode: all three keys or none, a contiguous mask, both
 * ends in one subnet, in order. */
static int parse_range(struct sn_spec *spec, struct sn_vmnet_params *p, struct sn_error *err)
{
	uint32_t start = 0, end = 0, mask = 0;
	int r;

	if ((r = get_ipv4(spec, "start", &p->start_addr, &start, err)) < 0 ||
	    (r = get_ipv4(spec, "end", &p->end_addr, &end, err)) < 0 ||
	    (r = get_ipv4(spec, "mask", &p->subnet_mask, &mask, err)) < 0)
		return r;
	if (!p->start_addr && !p->end_addr && !p->subnet_mask)
		return 0;
	if (!p->start_addr || !p->end_addr || !p->subnet_mask)
		return sn_error_set(err, -EINVAL, "keys 'start', 'end' and 'mask' go together: give all three or none");
	if (p->mode == SN_VMNET_BRIDGED_MODE)
		return sn_error_set(err, -EINVAL, "keys 'start', 'end' and 'mask' are for shared and host mode");
	if (mask == 0 || (~mask & (~mask + 1)) != 0)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'mask': not a contiguous netmask",
				    p->subnet_mask);
	if ((start & mask) != (end & mask) || start > end)
		return sn_error_set(err, -EINVAL, "'start' %s and 'end' %s are not an ordered range in one %s subnet",
				    p->start_addr, p->end_addr, p->subnet_mask);
	return 0;
}

static int parse_params(struct sn_spec *spec, struct sn_vmnet_params *p, struct sn_error *err)
{
	const char *mode = sn_spec_get(spec, "mode");
	const char *id = sn_spec_get(spec, "interface-id");
	unsigned timeout = TIMEOUT_DEFAULT;
	struct in6_addr a6;
	int r;

	*p = (struct sn_vmnet_params){.mode = SN_VMNET_SHARED_MODE};
	if (!mode || !strcmp(mode, "shared"))
		p->mode = SN_VMNET_SHARED_MODE;
	else if (!strcmp(mode, "host"))
		p->mode = SN_VMNET_HOST_MODE;
	else if (!strcmp(mode, "bridged"))
		p->mode = SN_VMNET_BRIDGED_MODE;
	else
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'mode': want shared, host or bridged", mode);

	p->iface = sn_spec_get(spec, "iface");
	if (p->mode == SN_VMNET_BRIDGED_MODE && !p->iface)
		return sn_error_set(err, -EINVAL, "bridged mode needs 'iface' (the host interface, e.g. en0)");
	if (p->mode != SN_VMNET_BRIDGED_MODE && p->iface)
		return sn_error_set(err, -EINVAL, "key 'iface' is for bridged mode only");
	if (p->iface && (!*p->iface || strlen(p->iface) >= IFNAMSIZ))
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'iface': 1 to %d characters", p->iface,
				    IFNAMSIZ - 1);

	r = parse_range(spec, p, err);
	if (r < 0)
		return r;
	r = sn_spec_get_bool(spec, "offload", &p->offload, err);
	if (r < 0)
		return r;
	r = sn_spec_get_bool(spec, "isolate", &p->isolate, err);
	if (r < 0)
		return r;
	if (id) {
		if (parse_uuid(id, p->uuid) < 0)
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'interface-id': want a UUID", id);
		p->has_uuid = true;
	}
	p->nat66_prefix = sn_spec_get(spec, "nat66-prefix");
	if (p->nat66_prefix) {
		if (p->mode != SN_VMNET_SHARED_MODE)
			return sn_error_set(err, -EINVAL, "key 'nat66-prefix' is for shared mode only");
		if (inet_pton(AF_INET6, p->nat66_prefix, &a6) != 1)
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'nat66-prefix': want an IPv6 prefix",
					    p->nat66_prefix);
	}
	r = sn_spec_get_uint(spec, "timeout", 1, 120, &timeout, err);
	if (r < 0)
		return r;
	p->timeout = timeout;
	return 0;
}

static int start_error(const struct sn_vmnet_params *p, int r, uint32_t st, struct sn_error *err)
{
	char buf[96];

	if (r == -ETIMEDOUT)
		return sn_error_set(err, r, "vmnet port: vmnet_start_interface (%s mode) did not complete within %.0f s",
				    mode_name(p->mode), p->timeout);
	if (st == SN_VMNET_SUCCESS)
		return sn_error_set(err, r, "vmnet port: vmnet_start_interface (%s mode) gave no interface",
				    mode_name(p->mode));
	return sn_error_set(err, r, "vmnet port: starting a %s mode interface failed: %s%s", mode_name(p->mode),
			    sn_vmnet_strstatus(st, buf, sizeof(buf)),
			    st == SN_VMNET_FAILURE || st == SN_VMNET_INVALID_ACCESS || st == SN_VMNET_NOT_AUTHORIZED
				    ? "; before macOS 26 vmnet needs root or the com.apple.vm.networking entitlement"
				    : "");
}

static int vmnet_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			struct sn_port **ret_port, struct sn_error *err)
{
	const char *name = conf->name[0] ? conf->name : "vmnet";
	struct sn_vmnet_params p;
	struct sn_vmnet_info info = {0};
	struct vmnet_port *vp;
	struct sn_vmnet *vm;
	uint32_t st, bytes_per_pkt;
	int r;

	if (conf->mtu)
		return sn_error_set(err, -EINVAL, "key 'mtu' does not apply: a vmnet interface sets its own");
	r = parse_params(spec, &p, err);
	if (r < 0)
		return r;
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		return r;

	r = sn_vmnet_start(&p, &vm, &info, &st);
	if (r < 0)
		return start_error(&p, r, st, err);
	if (info.mtu == 0)
		info.mtu = SN_MTU_DEFAULT;
	if (info.max_packet_size == 0)
		info.max_packet_size = info.mtu + SN_ETH_HLEN;
	if (info.mtu > SN_FRAME_MAX - SN_ETH_HLEN - SN_VLAN_HLEN || info.max_packet_size > SN_POOL_JUMBO_CAP) {
		stop_backend(vm, p.timeout, name);
		return sn_error_set(err, -ERANGE, "vmnet port: the interface's MTU %u / packet size %u is beyond %u",
				    info.mtu, info.max_packet_size, SN_POOL_JUMBO_CAP);
	}

	vp = calloc(1, sizeof(*vp));
	if (!vp) {
		stop_backend(vm, p.timeout, name);
		return -ENOMEM;
	}
	r = sn_port_init(&vp->base, sw, &vmnet_port_ops, conf);
	if (r < 0) {
		stop_backend(vm, p.timeout, name);
		free(vp);
		return r;
	}
	vp->base.mtu = info.mtu;
	vp->loop = sn_port_loop(&vp->base);
	vp->vm = vm;
	vp->info = info;
	vp->mode = p.mode;
	vp->timeout = p.timeout;
	vp->buf_len = info.max_packet_size;
	vp->offload = p.offload;
	/* reads offer max_packet_size per packet, and the buffers count toward the 256 KB */
	bytes_per_pkt = SN_MAX(vp->buf_len, 1u);
	vp->rx_batch = SN_MIN(SN_VMNET_BATCH_MAX, SN_VMNET_BYTES_MAX / bytes_per_pkt);
	vp->tx_batch = SN_VMNET_BATCH_MAX;
	if (info.read_max)
		vp->rx_batch = SN_MIN(vp->rx_batch, info.read_max);
	if (info.write_max)
		vp->tx_batch = SN_MIN(vp->tx_batch, info.write_max);
	vp->rx_batch = SN_MAX(vp->rx_batch, 1u);
	ev_timer_init(&vp->again, again_cb, 0, 0);
	vp->again.data = vp;
	atomic_init(&vp->wake_pending, false);
	vp->wake_fd[0] = vp->wake_fd[1] = -1;
	if (pipe(vp->wake_fd) < 0 || sn_fd_nonblock(vp->wake_fd[0]) < 0 || sn_fd_nonblock(vp->wake_fd[1]) < 0) {
		r = -errno;
		vmnet_port_close(&vp->base);
		free(vp);
		return sn_error_set(err, r, "vmnet port: wake-up pipe: %s", strerror(-r));
	}
	ev_io_init(&vp->wake, wake_cb, vp->wake_fd[0], EV_READ);
	vp->wake.data = vp;

	r = sn_port_want_buffers(&vp->base, vp->buf_len);
	if (r >= 0 && p.offload)
		r = sn_port_set_offloads(&vp->base, SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO6,
					 SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO6);
	if (r >= 0)
		r = sn_port_register(&vp->base);
	if (r < 0) {
		/* not linked: undo by hand */
		vmnet_port_close(&vp->base);
		sn_port_free_unregistered(&vp->base);
		return r;
	}
	ev_io_start(vp->loop, &vp->wake);
	st = sn_vmnet_set_event_callback(vm, wake_fn, vp);
	if (st != SN_VMNET_SUCCESS) {
		char buf[96];

		sn_error_set(err, sn_vmnet_errno(st), "vmnet port: vmnet_interface_set_event_callback: %s",
			     sn_vmnet_strstatus(st, buf, sizeof(buf)));
		sn_port_close(&vp->base);
		return sn_vmnet_errno(st);
	}
	sn_port_set_state(&vp->base, SN_PORT_UP);
	/* packets that came before the callback was set announced themselves to nobody */
	ev_timer_start(vp->loop, &vp->again);
	sn_info("port %s: vmnet %s interface up, mac %02x:%02x:%02x:%02x:%02x:%02x mtu %u", vp->base.name,
		mode_name(p.mode), info.mac[0], info.mac[1], info.mac[2], info.mac[3], info.mac[4], info.mac[5],
		info.mtu);
	*ret_port = &vp->base;
	return 0;
}

static const char *const vmnet_keys[] = {"mode", "interface-id", "iface", "isolate", "offload", "timeout", NULL};

const struct sn_port_kind sn_port_kind_vmnet = {
	.name = "vmnet",
	.usage = "vmnet,mode=shared|host|bridged[,iface=IF]...             vmnet.framework (macOS)",
	.keys = vmnet_keys,
	.create = vmnet_create,
};
