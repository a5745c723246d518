/* dgram.c - SOCK_DGRAM unix socket ports, one Ethernet frame per datagram (QEMU -netdev dgram,
 * vfkit, gvproxy -listen-vfkit).
 *
 * listen=PATH binds PATH and makes a listener owning that socket. Each address that sends to it
 * becomes a port of its own, LISTENER.N, created by its first datagram; frames for it leave
 * through the listener's socket, addressed to it, and a peer whose address stops existing is
 * closed. Anyone who can send to the socket can make peers, so they are bounded: at most
 * max-peers (256) at once, datagrams from further addresses refused and counted; a peer silent
 * for peer-timeout seconds (300) is closed by one timer per listener, making room. Peers are
 * found by a hash of their address (with a per-listener random key; chains are bounded by
 * max-peers whatever the names), and the previous datagram's peer is tried first.
 *
 * connect=PATH,local=PATH binds local, sends to PATH and takes what arrives at local: one
 * port, up from the start, because a datagram peer such as QEMU may appear later; until it
 * does, what the port sends is dropped. The socket is deliberately never connect()ed: a
 * connected unix datagram socket refuses datagrams from any other socket, so a restarted peer
 * could not reach the switch until a send of ours happened to fail. vfkit greets with a 4-byte
 * "VFKT" datagram; as the first datagram of a peer it is consumed, and hello=vfkit makes a
 * connect port send it. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/random.h>
#include <unistd.h>

#include "../logging.h"
#include "../msgio.h"
#include "../sock.h"
#include "../sockconn.h"
#include "../port.h"
#include "../spec.h"
#include "../util.h"

#define HELLO "VFKT"
#define HELLO_LEN 4
/* Receiving rounds per wake-up, so one busy socket cannot starve the others. */
#define RX_ROUNDS 4
/* Wait before sending again after EAGAIN (see dgram_flush): doubled while nothing goes out,
 * so a peer that stopped reading costs a few wake-ups a second, not a thousand. */
#define RETRY_MIN 0.001
#define RETRY_MAX 0.128
#define MAX_PEERS_DEFAULT 256
#define MAX_PEERS_LIMIT 16384
#define PEER_TIMEOUT_DEFAULT 300
#define REFUSE_LOG_INTERVAL 10.0

struct dgram_listener;

/* A data port: a peer of a listener, or a connect-mode port with its own socket. */
struct dgram_port {
	struct sn_port base;
	struct dgram_listener *l;    /* the listener whose socket a peer shares; NULL in connect mode */
	struct dgram_port *hnext;    /* the next peer in its hash bucket */
	uint64_t hash;               /* of @to */
	double last_rx;              /* loop time of its latest datagram, for peer-timeout */
	struct sn_sockaddr to;       /* where egress goes */
	struct sn_sockaddr local;    /* connect mode: the bound address, unlinked on close */
	int fd;                      /* connect mode: owned; a peer: the listener's */
	ev_io io;                    /* connect mode: the reader */
	ev_timer retry;
	double retry_delay;
	bool hello;                  /* connect mode: hello=vfkit */
	bool reachable;              /* the last send went out */
	bool told_unreachable;       /* logged the current outage already */
	bool greeted;                /* its first datagram has arrived */
	struct sn_msgio_rx *rx;      /* connect mode only */
	struct sn_msgio_tx tx;
};

struct dgram_listener {
	struct sn_listener lis;      /* the socket, which the peers share */
	struct dgram_port **buckets; /* the peers by hash of their address */
	uint32_t mask;               /* buckets - 1, a power of two minus one */
	uint64_t key;                /* random: names chosen to collide do not know it */
	unsigned npeers, max_peers;
	double peer_timeout;         /* seconds; 0: never */
	ev_timer ager;               /* closes silent peers; one for all of them */
	uint64_t refused;            /* datagrams from new addresses while full */
	struct sn_ratelimit refuse_log;
	struct dgram_port *last;     /* where the previous datagram came from: usually the next one too */
	bool told_unnamed;
	struct sn_msgio_rx rx;
};

static const struct sn_port_ops dgram_peer_ops;

/* ---- addresses ---- */

static bool addr_named(socklen_t len)
{
	return len > offsetof(struct sockaddr_un, sun_path);
}

static bool addr_equal(const struct sn_sockaddr *a, const struct sockaddr_un *b, socklen_t blen)
{
	return a->len == blen && !memcmp(&a->u.un, b, blen);
}

static uint64_t addr_hash(const struct dgram_listener *l, const struct sockaddr_un *a, socklen_t len)
{
	const uint8_t *p = (const uint8_t *)a;
	uint64_t h = l->key ^ len;

	/* 8 bytes at a time, multiplied and folded: cheap, and keyed */
	for (socklen_t i = 0; i < len; i += 8) {
		uint64_t w = 0;

		memcpy(&w, p + i, SN_MIN((socklen_t)8, len - i));
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	return h ^ (h >> 32);
}

/* Like sn_sockaddr_format(), and also shows abstract addresses ("unix:@name"). Returns @buf. */
static const char *addr_format(const struct sn_sockaddr *a, char *buf, size_t len)
{
	size_t plen, off = 6;

	if (!addr_named(a->len) || a->u.un.sun_path[0]) {
		sn_sockaddr_format(a, buf, len);
		return buf;
	}
	plen = a->len - offsetof(struct sockaddr_un, sun_path);
	snprintf(buf, len, "unix:@");
	for (size_t i = 1; i < plen && off + 1 < len; i++, off++) {
		char c = a->u.un.sun_path[i];

		buf[off] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	buf[SN_MIN(off, len - 1)] = '\0';
	return buf;
}

/* ---- data path ---- */

/* vfkit's greeting, when it is the first thing a peer sends, is not a frame. */
static bool take_hello(struct dgram_port *dp, struct sn_frame *f)
{
	if (dp->greeted)
		return false;
	dp->greeted = true;
	if (f->len != HELLO_LEN || memcmp(f->data, HELLO, HELLO_LEN))
		return false;
	sn_debug("port %s: vfkit hello", dp->base.name);
	sn_frame_unref(f);
	return true;
}

static int send_hello(struct dgram_port *dp)
{
	if (sendto(dp->fd, HELLO, HELLO_LEN, MSG_DONTWAIT | MSG_NOSIGNAL, &dp->to.u.sa, dp->to.len) < 0)
		return -errno;
	return 0;
}

static bool peer_gone(int r)
{
	return r == -ECONNREFUSED || r == -ENOENT;
}

static void dgram_flush(struct sn_port *port)
{
	struct dgram_port *dp = (struct dgram_port *)port;
	struct ev_loop *loop = sn_port_loop(port);
	uint32_t head = port->txq.head;
	char to[128];
	int r = 0;

	/* a peer that could not be reached may be a new process: greet it before the frames */
	if (dp->hello && !dp->reachable)
		r = send_hello(dp);
	if (r == 0)
		r = sn_msgio_send(&dp->tx, dp->fd, port, &dp->to);
	if (r == 0) {
		if (!dp->reachable && dp->told_unreachable)
			sn_info("port %s: %s is reachable again", port->name, addr_format(&dp->to, to, sizeof(to)));
		dp->reachable = true;
		dp->told_unreachable = false;
		dp->retry_delay = RETRY_MIN;
		ev_timer_stop(loop, &dp->retry);
		return;
	}
	if (r == -EAGAIN) {
		/* An unconnected unix datagram socket polls writable even while the receiver's queue
		 * is full, so a write watcher would spin: look again a little later instead. */
		if (port->txq.head != head)
			dp->retry_delay = RETRY_MIN;
		if (!ev_is_active(&dp->retry)) {
			ev_timer_set(&dp->retry, dp->retry_delay, 0);
			ev_timer_start(loop, &dp->retry);
			dp->retry_delay = SN_MIN(dp->retry_delay * 2, RETRY_MAX);
		}
		return;
	}
	addr_format(&dp->to, to, sizeof(to));
	if (dp->l && peer_gone(r)) {
		sn_info("port %s: %s went away", port->name, to);
		sn_port_close(port);
		return;
	}
	/* connect mode: the peer may not have started yet; keep the port, lose the frames */
	if (!dp->told_unreachable)
		sn_info("port %s: cannot send to %s (%s): dropping frames until it is there", port->name, to,
			strerror(-r));
	dp->told_unreachable = true;
	dp->reachable = false;
	sn_txq_clear(port);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	dgram_flush(w->data);
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dgram_port *dp = w->data;
	struct sn_msgio_rx *rx = dp->rx;

	for (int round = 0; round < RX_ROUNDS; round++) {
		int n = sn_msgio_recv(rx, dp->fd, &dp->base, false);
		unsigned nb = 0;

		if (n < 0) {
			if (n != -EAGAIN)
				sn_debug("port %s: receive: %s", dp->base.name, strerror(-n));
			return;
		}
		for (int i = 0; i < n; i++) {
			struct sn_frame *f = rx->frames[i];

			if (f && !take_hello(dp, f))
				rx->frames[nb++] = f;
		}
		sn_port_input(&dp->base, rx->frames, nb);
		if (sn_port_rx_paused(&dp->base)) {
			ev_io_stop(loop, &dp->io);
			return;
		}
		if (n < SN_MSGIO_BATCH)
			return;
	}
}

/* Only a connect-mode port has a socket of its own to stop reading; a listener's peers share
 * one, so they never pause and a full queue drops what they send. */
static void dgram_client_resume(struct sn_port *port)
{
	struct dgram_port *dp = (struct dgram_port *)port;

	if (dp->fd >= 0)
		ev_io_start(sn_port_loop(port), &dp->io);
}

/* ---- ports ---- */

static void dgram_port_close(struct sn_port *port)
{
	struct dgram_port *dp = (struct dgram_port *)port;
	struct ev_loop *loop = sn_port_loop(port);

	ev_timer_stop(loop, &dp->retry);
	if (dp->l) {
		struct dgram_listener *l = dp->l;
		struct dgram_port **pp;

		for (pp = &l->buckets[dp->hash & l->mask]; *pp; pp = &(*pp)->hnext) {
			if (*pp == dp) {
				*pp = dp->hnext;
				l->npeers--;
				break;
			}
		}
		if (l->last == dp)
			l->last = NULL;
		return;
	}
	ev_io_stop(loop, &dp->io);
	if (dp->fd >= 0) {
		close(dp->fd);
		unlink(dp->local.u.un.sun_path);
	}
	dp->fd = -1;
}

static void dgram_port_free(struct sn_port *port)
{
	struct dgram_port *dp = (struct dgram_port *)port;

	free(dp->rx);
	free(dp);
}

static void dgram_peer_describe(struct sn_port *port, char *buf, size_t len)
{
	addr_format(&((struct dgram_port *)port)->to, buf, len);
}

static void dgram_client_describe(struct sn_port *port, char *buf, size_t len)
{
	struct dgram_port *dp = (struct dgram_port *)port;
	char a[128], l[128];

	addr_format(&dp->to, a, sizeof(a));
	addr_format(&dp->local, l, sizeof(l));
	snprintf(buf, len, "connect %s local=%s%s", a, l, dp->hello ? " hello=vfkit" : "");
}

static const struct sn_port_ops dgram_peer_ops = {
	.kind = "dgram",
	.flush = dgram_flush,
	.close = dgram_port_close,
	.free = dgram_port_free,
	.describe = dgram_peer_describe,
};

static const struct sn_port_ops dgram_client_ops = {
	.kind = "dgram",
	.flush = dgram_flush,
	.close = dgram_port_close,
	.free = dgram_port_free,
	.describe = dgram_client_describe,
	.resume = dgram_client_resume,
};

static struct dgram_port *dgram_port_new(void)
{
	struct dgram_port *dp = calloc(1, sizeof(*dp));

	if (!dp)
		return NULL;
	dp->fd = -1;
	ev_io_init(&dp->io, client_read_cb, -1, EV_READ);
	dp->io.data = dp;
	ev_timer_init(&dp->retry, retry_cb, RETRY_MIN, 0);
	dp->retry.data = dp;
	dp->retry_delay = RETRY_MIN;
	return dp;
}

/* ---- listener ---- */

/* Closes the peers that sent nothing for peer_timeout seconds, and comes back when the next
 * one could be due: a scan of at most max-peers entries, at most once a second. */
static void ager_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dgram_listener *l = w->data;
	double now = ev_now(loop), next = 0;

	for (uint32_t b = 0; b <= l->mask; b++) {
		for (struct dgram_port *dp = l->buckets[b], *hnext; dp; dp = hnext) {
			char where[128];

			hnext = dp->hnext;
			if (now - dp->last_rx < l->peer_timeout) {
				if (next == 0 || dp->last_rx + l->peer_timeout < next)
					next = dp->last_rx + l->peer_timeout;
				continue;
			}
			sn_info("port %s: %s sent nothing for %.0f s: closing it", dp->base.name,
				addr_format(&dp->to, where, sizeof(where)), l->peer_timeout);
			sn_port_close(&dp->base);
		}
	}
	if (next > 0) {
		ev_timer_set(w, SN_MAX(next - now, SN_MIN(1.0, l->peer_timeout / 4)), 0);
		ev_timer_start(loop, w);
	}
}

static struct dgram_port *peer_new(struct dgram_listener *l, const struct sockaddr_un *from, socklen_t len)
{
	struct dgram_port *dp = dgram_port_new();
	char where[128];

	if (!dp)
		goto fail;
	sn_listener_child_init(&l->lis, &dp->base, &dgram_peer_ops);
	dp->l = l;
	dp->fd = l->lis.fd;
	memcpy(&dp->to.u.un, from, len);
	dp->to.len = len;
	dp->reachable = true;
	dp->hash = addr_hash(l, from, len);
	dp->last_rx = ev_now(sn_port_loop(&l->lis.base));
	if (sn_port_register(&dp->base) < 0) {
		free(dp);
		goto fail;
	}
	dp->hnext = l->buckets[dp->hash & l->mask];
	l->buckets[dp->hash & l->mask] = dp;
	l->npeers++;
	if (l->peer_timeout > 0 && !ev_is_active(&l->ager)) {
		ev_timer_set(&l->ager, l->peer_timeout, 0);
		ev_timer_start(sn_port_loop(&l->lis.base), &l->ager);
	}
	sn_port_set_state(&dp->base, SN_PORT_UP);
	sn_info("port %s: peer %s attached as %s", l->lis.base.name, addr_format(&dp->to, where, sizeof(where)),
		dp->base.name);
	return dp;
fail:
	/* not every datagram should log: this is a resource shortage like an empty pool */
	l->lis.base.stats.drop_no_buffer++;
	return NULL;
}

static struct dgram_port *peer_find(struct dgram_listener *l, const struct sockaddr_un *from, socklen_t len)
{
	uint64_t h;
	unsigned long held;
	char where[128];

	if (l->last && addr_equal(&l->last->to, from, len))
		return l->last;
	h = addr_hash(l, from, len);
	for (struct dgram_port *dp = l->buckets[h & l->mask]; dp; dp = dp->hnext) {
		if (dp->hash == h && addr_equal(&dp->to, from, len))
			return l->last = dp;
	}
	if (!addr_named(len)) {
		/* an unbound socket has no address a reply could go to */
		l->lis.base.stats.drop_bad_framing++;
		if (!l->told_unnamed)
			sn_debug("port %s: dropping datagrams from an unnamed socket (bind it to be answered)",
				 l->lis.base.name);
		l->told_unnamed = true;
		return NULL;
	}
	if (l->npeers >= l->max_peers) {
		/* every datagram of a sender that did not get in lands here: count, log rarely */
		l->refused++;
		if (sn_ratelimit_ok(&l->refuse_log, ev_now(sn_port_loop(&l->lis.base)), &held)) {
			struct sn_sockaddr a = {.len = len};

			memcpy(&a.u.un, from, len);
			addr_format(&a, where, sizeof(where));
			if (held)
				sn_warn("port %s: refusing datagrams from %s: max-peers=%u peers already "
					"(%lu more refused since the last message)", l->lis.base.name, where,
					l->max_peers, held);
			else
				sn_warn("port %s: refusing datagrams from %s: max-peers=%u peers already", l->lis.base.name,
					where, l->max_peers);
		}
		return NULL;
	}
	return l->last = peer_new(l, from, len);
}

static void listener_readable(struct sn_listener *lis)
{
	struct dgram_listener *l = (struct dgram_listener *)lis;
	struct sn_msgio_rx *rx = &l->rx;
	double now = ev_now(sn_port_loop(&lis->base));

	for (int round = 0; round < RX_ROUNDS; round++) {
		int n = sn_msgio_recv(rx, lis->fd, &lis->base, true);
		struct dgram_port *run = NULL;
		unsigned nb = 0, start = 0;

		if (n < 0) {
			if (n != -EAGAIN)
				sn_debug("port %s: receive: %s", lis->base.name, strerror(-n));
			return;
		}
		/* consecutive frames from one peer go to the switch as one batch */
		for (int i = 0; i < n; i++) {
			struct sn_frame *f = rx->frames[i];
			struct dgram_port *dp;

			if (!f)
				continue;
			dp = peer_find(l, &rx->from[i], rx->fromlen[i]);
			if (!dp) {
				sn_frame_unref(f);
				continue;
			}
			dp->last_rx = now;
			if (take_hello(dp, f))
				continue;
			if (dp != run) {
				if (run)
					sn_port_input(&run->base, rx->frames + start, nb - start);
				run = dp;
				start = nb;
			}
			rx->frames[nb++] = f;
		}
		if (run)
			sn_port_input(&run->base, rx->frames + start, nb - start);
		if (n < SN_MSGIO_BATCH)
			return;
	}
}

static void dgram_listener_close(struct sn_port *port)
{
	struct dgram_listener *l = (struct dgram_listener *)port;

	/* its peers were closed first, so no bucket holds anything now */
	ev_timer_stop(sn_port_loop(port), &l->ager);
	sn_listener_close(port);
}

static void dgram_listener_free(struct sn_port *port)
{
	struct dgram_listener *l = (struct dgram_listener *)port;

	free(l->buckets);
	free(l);
}

/* A listen= path is never abstract, so the plain "listen ADDR" is what addr_format() would say.
 * Refusals show beside it, as other kinds' extra counters do. */
static void dgram_listener_describe(struct sn_port *port, char *buf, size_t len)
{
	struct dgram_listener *l = (struct dgram_listener *)port;
	size_t n;

	sn_listener_describe(port, buf, len);
	n = strlen(buf);
	if (l->refused)
		snprintf(buf + n, len - n, " refused=%llu", (unsigned long long)l->refused);
}

static const struct sn_port_ops dgram_listener_ops = {
	.kind = "dgram",
	.listener = true,
	.close = dgram_listener_close,
	.free = dgram_listener_free,
	.describe = dgram_listener_describe,
};

static const struct sn_listener_ops dgram_listener_lops = {
	.type = SOCK_DGRAM,
	.ops = &dgram_listener_ops,
	.readable = listener_readable,
};

/* ---- creation from a SPEC ---- */

static int unix_addr(const char *text, const char *key, struct sn_sockaddr *ret, struct sn_error *err)
{
	int r = sn_sockaddr_parse(text, key, true, ret, err);

	if (r < 0)
		return r;
	if (!sn_sockaddr_is_unix(ret))
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want a unix socket path", text, key);
	return 0;
}

static int listener_create(struct sn_switch *sw, const struct sn_port_conf *conf, const struct sn_sockaddr *addr,
			   const struct sn_sock_perm *perm, const struct sn_listen_fd *lfd, unsigned max_peers,
			   unsigned peer_timeout, struct sn_port **ret_port, struct sn_error *err)
{
	struct dgram_listener *l = calloc(1, sizeof(*l));
	uint32_t nb = 16;
	int r;

	if (!l)
		return -ENOMEM;
	while (nb < max_peers)
		nb <<= 1;
	l->buckets = calloc(nb, sizeof(*l->buckets));
	if (!l->buckets) {
		free(l);
		return -ENOMEM;
	}
	l->mask = nb - 1;
	if (getentropy(&l->key, sizeof(l->key)) < 0)
		l->key = (uint64_t)(uintptr_t)l ^ (uint64_t)(ev_time() * 1e6); /* still unknown outside */
	l->max_peers = max_peers;
	l->peer_timeout = peer_timeout;
	l->refuse_log = SN_RATELIMIT_INIT(REFUSE_LOG_INTERVAL);
	ev_init(&l->ager, ager_cb);
	l->ager.data = l;
	r = sn_listener_open(&l->lis, sw, conf, &dgram_listener_lops, addr, perm, lfd, err);
	if (r < 0) {
		dgram_listener_free(&l->lis.base);
		return r;
	}
	*ret_port = &l->lis.base;
	return 0;
}

static int client_create(struct sn_switch *sw, const struct sn_port_conf *conf, const struct sn_sockaddr *remote,
			 const struct sn_sockaddr *local, const struct sn_sock_perm *perm, bool hello,
			 struct sn_port **ret_port, struct sn_error *err)
{
	struct dgram_port *dp = dgram_port_new();
	char to[128];
	int r;

	if (!dp || !(dp->rx = malloc(sizeof(*dp->rx)))) {
		free(dp);
		return -ENOMEM;
	}
	r = sn_port_init(&dp->base, sw, &dgram_client_ops, conf);
	if (r < 0) {
		dgram_port_free(&dp->base);
		return r;
	}
	dp->to = *remote;
	dp->local = *local;
	dp->hello = hello;
	dp->fd = sn_sock_listen(local, SOCK_DGRAM, perm, err);
	if (dp->fd < 0) {
		r = dp->fd;
		dgram_port_free(&dp->base);
		return r;
	}
	r = sn_port_register(&dp->base);
	if (r < 0) {
		dgram_port_close(&dp->base);
		dgram_port_free(&dp->base);
		return r;
	}
	ev_io_set(&dp->io, dp->fd, EV_READ);
	ev_io_start(sn_port_loop(&dp->base), &dp->io);
	sn_port_set_state(&dp->base, SN_PORT_UP);
	addr_format(remote, to, sizeof(to));
	if (!hello)
		dp->reachable = true;
	else if ((r = send_hello(dp)) == 0)
		dp->reachable = true;
	else
		sn_info("port %s: %s not there yet (%s): will greet it with the next frame", dp->base.name, to,
			strerror(-r));
	*ret_port = &dp->base;
	return 0;
}

static int dgram_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			struct sn_port **ret_port, struct sn_error *err)
{
	const char *listen = sn_spec_get(spec, "listen");
	const char *connect = sn_spec_get(spec, "connect");
	const char *local = sn_spec_get(spec, "local");
	const char *hello = sn_spec_get(spec, "hello");
	bool has_peer_keys = sn_spec_get(spec, "max-peers") || sn_spec_get(spec, "peer-timeout");
	unsigned max_peers = MAX_PEERS_DEFAULT, peer_timeout = PEER_TIMEOUT_DEFAULT;
	struct sn_sockaddr addr, local_addr = {.len = 0};
	struct sn_sock_perm perm;
	struct sn_listen_fd lfd;
	bool lis;
	int r;

	r = sn_listen_fd_from_spec(spec, &lfd, err);
	if (r < 0)
		return r;
	lis = listen || sn_listen_fd_given(&lfd);
	if (connect && sn_listen_fd_given(&lfd))
		return sn_error_set(err, -EINVAL, "key '%s' names a listening socket, and this port has 'connect'",
				    lfd.num >= 0 ? "fd" : "fdname");
	if (listen && lfd.num >= 0)
		return sn_error_set(err, -EINVAL, "keys 'fd' and 'listen' both say where to listen: give exactly one of them");
	if (!lis == !connect)
		return sn_error_set(err, -EINVAL, "dgram port needs exactly one of 'listen' and 'connect' (or a bound "
				    "socket by 'fd' or 'fdname')");
	if ((listen || connect) && (r = unix_addr(listen ? listen : connect, listen ? "listen" : "connect", &addr, err)) < 0)
		return r;
	if (lis && (local || hello))
		return sn_error_set(err, -EINVAL, "key '%s' goes with 'connect', not 'listen'", local ? "local" : "hello");
	if (connect && has_peer_keys)
		return sn_error_set(err, -EINVAL, "key '%s' goes with 'listen', not 'connect'",
				    sn_spec_get(spec, "max-peers") ? "max-peers" : "peer-timeout");
	r = sn_spec_get_uint(spec, "max-peers", 1, MAX_PEERS_LIMIT, &max_peers, err);
	if (r < 0)
		return r;
	r = sn_spec_get_uint(spec, "peer-timeout", 0, 86400 * 365, &peer_timeout, err);
	if (r < 0)
		return r;
	if (connect && !local)
		return sn_error_set(err, -EINVAL, "dgram port with 'connect' needs key 'local' (the path to bind)");
	if (local && (r = unix_addr(local, "local", &local_addr, err)) < 0)
		return r;
	if (hello && strcmp(hello, "vfkit"))
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'hello': want vfkit", hello);
	/* the socket file this port creates: the listener's, or the bound local= one */
	r = sn_sock_perm_from_spec(spec, listen ? &addr : connect ? &local_addr : NULL, listen ? "listen" : "local",
				   &perm, err);
	if (r < 0)
		return r;
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		return r;
	if (lis)
		return listener_create(sw, conf, listen ? &addr : NULL, &perm, &lfd, max_peers, peer_timeout, ret_port, err);
	return client_create(sw, conf, &addr, &local_addr, &perm, hello != NULL, ret_port, err);
}

static const char *const dgram_keys[] = {"listen", "connect", "fd", "fdname", "local", "hello", "max-peers",
					 "peer-timeout", "mode", "group", NULL};

const struct sn_port_kind sn_port_kind_dgram = {
	.name = "dgram",
	.usage = "dgram,listen=PATH | dgram,connect=PATH,local=PATH        QEMU -netdev dgram, vfkit\n"
		 "    listen: max-peers=N (256), peer-timeout=SECONDS (300); connect: hello=vfkit\n"
		 "    or fdname=NAME[,listen=PATH] | fd=N: an inherited bound socket",
	.keys = dgram_keys,
	.create = dgram_create,
};
