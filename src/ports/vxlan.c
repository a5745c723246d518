/* vxlan.c - VXLAN (RFC 7348) and Geneve (RFC 8926) tunnel ports: one switch port per VNI,
 * carrying the segment to other hosts over UDP, interoperable with Linux vxlan/geneve devices
 * and Open vSwitch.
 *
 * The switch sees one port per VNI. What lies behind it, which remote VTEP a MAC sits behind,
 * is the port's own business: it keeps a table inner (MAC, VLAN) -> remote endpoint, learned
 * from the source of what it receives (aged with the switch's FDB aging time, capped at the
 * switch's per-port cap, refusals counted) or pinned by `fdb add MAC PORT dst=IP` (the
 * fdb_dst_set op). A unicast frame for a MAC in the table goes to that remote; broadcast,
 * multicast and unknown unicast go to the multicast group= when there is one, else to every
 * remote of the flood list (remote= and `tunnel flood add`: head-end replication, Linux's
 * all-zero FDB entries).
 *
 * Every VNI on one local address and UDP port shares one receiving socket: a registry kept per
 * switch (a switch extension) finds it, and a datagram finds its port by VNI. Headers are
 * checked strictly, as Linux and OVS do: VXLAN flags exactly 0x08000000 and reserved bits zero;
 * Geneve version 0, protocol 0x6558, no control (O) packets and no critical options, other
 * options skipped. What fails is dropped and counted (sn_tunnel_counters), nothing else.
 *
 * Sending uses a few UDP sockets per local address bound to random ports in 32768-60999
 * (Linux's source port range), and a hash of the inner flow picks one: a flow keeps its source
 * port, flows spread over several (the ECMP entropy RFC 7348 asks for, without raw sockets).
 * Outer packets never fragment (DF set, IP_PMTUDISC_DO): one too long for the path is dropped
 * and counted as drop_oversize. The port's MTU defaults to the underlay's minus the overhead
 * (50 bytes over IPv4, 70 over IPv6). Both directions move SN_MSGIO_BATCH datagrams per system
 * call (recvmmsg, sendmmsg) straight between pool buffers and the socket: a header scratch
 * in front of the frame's iovec, no copy and no allocation per frame.
 *
 * The shared socket cannot stop reading for one VNI, so these ports do not pause: like a
 * dgram listener, their frames into a full queue are dropped and counted there. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "../control.h"
#include "../fdb.h"
#include "../hooks.h"
#include "../logging.h"
#include "../msgio.h"
#include "../port.h"
#include "../sock.h"
#include "../spec.h"
#include "../util.h"
#include "vxlan.h"

#define VXLAN_UDP_PORT 4789
#define GENEVE_UDP_PORT 6081
#define HDR_LEN 8                 /* VXLAN's header, and Geneve's fixed part */
#define GENEVE_OPT_MAX (63 * 4)   /* 6 bits of option length, in 4-byte words */
#define GENEVE_PROTO_TEB 0x6558   /* transparent Ethernet bridging */
#define VXLAN_FLAGS 0x08000000u   /* the I flag: the VNI is valid */
#define BATCH SN_MSGIO_BATCH
#define RX_ROUNDS 4               /* batches per wake-up, so one busy socket cannot starve others */
#define SRC_PORTS 8               /* sending sockets per local address */
#define SRC_PORT_MIN 32768        /* Linux's default ip_local_port_range */
#define SRC_PORT_MAX 60999
#define FLOOD_MAX 256             /* remotes a BUM frame is replicated to */
#define KNOWN_MAX 4096            /* distinct remotes of the flood list and the pinned entries */
#define RT_MAX 65536              /* the port's table holds at most this many MACs */
#define VNI_BUCKETS 256
#define VNI_MAX 0xffffffu
#define OVERHEAD4 50              /* outer IPv4 20 + UDP 8 + tunnel 8 + inner Ethernet 14 */
#define OVERHEAD6 70
#define LOG_INTERVAL 10.0

enum proto { PROTO_VXLAN, PROTO_GENEVE };

/* A remote (or local) endpoint as the tables keep it: 16 address bytes (an IPv4 address in the
 * first 4, the rest zero) and the UDP port in host order; the family is the port's. No padding,
 * so memcmp() compares. */
struct vtep {
	uint8_t a[16];
	uint16_t port;
};

union inaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

struct tport;

/* Scratch for one receiving socket: a batch of datagrams, header apart from frame. */
struct rx_batch {
	struct sn_frame *frames[BATCH];  /* NULL: dropped already (counted) */
	uint32_t len[BATCH];             /* the datagram's length */
	bool trunc[BATCH];               /* longer than header + buffer: cut */
	uint8_t hdr[BATCH][HDR_LEN];
	union inaddr from[BATCH];
	socklen_t fromlen[BATCH];
	struct iovec iov[BATCH][2];
	struct sn_msgio_hdr msg[BATCH];
};

struct tsock_counters {
	uint64_t short_packets, bad_header, unknown_vni, no_buffer;
};

struct registry;

/* A receiving UDP socket: a local address and port (with its sending sockets), or a multicast
 * group on an interface. Shared by every port of its protocol there, one per VNI. */
struct tsock {
	struct tsock *next;
	struct registry *reg;          /* NULL once the switch let go of the registry */
	enum proto proto;
	int family;
	struct vtep addr;              /* what it is bound to */
	unsigned ifindex;              /* a group socket's interface */
	bool is_group;
	int fd;
	ev_io io;
	struct ev_loop *loop;
	unsigned refs;                 /* ports using it */
	struct sn_port *any;           /* one of them: buffers come from its switch's pool */
	struct tport *vni[VNI_BUCKETS];
	struct tport *last;            /* the previous datagram's port: usually the next's too */
	uint32_t rx_len;               /* bytes of frame buffer per datagram */
	int tx[2][SRC_PORTS];          /* unicast sockets: senders, [0] no UDP checksum, [1] with */
	unsigned ntx[2];
	struct tsock_counters c;
	struct rx_batch rx;
};

struct registry {
	struct sn_switch_ext ext;
	struct tsock *socks;
};

/* What the port's table says of a MAC. */
struct rt_entry {
	uint64_t key;                  /* sn_fdb_key(); 0: an empty slot */
	double seen;                   /* learned: last time the MAC was a source here */
	struct vtep dst;
	bool is_static;
};

struct rtable {
	struct rt_entry *slots;
	uint32_t mask, count, max;
	/* no learned entry expires before this (0: none can): a full table knows without a scan
	 * whether one may have, so refusing a source stays O(1) under a flood of MACs */
	double next_expiry;
};

struct known {
	struct vtep v;                 /* the port is 0: addresses only */
	uint32_t refs;                 /* flood list entries and pins naming it */
};

struct tport_counters {
	uint64_t unknown_vtep, bad_options, critical, oam, learn_refused, no_remote, tx_errors;
};

/* Scratch for sending one batch. */
struct tx_batch {
	struct sn_msgio_hdr msg[BATCH];
	struct iovec iov[BATCH][2];
	union inaddr name[BATCH];
	uint8_t hdr[BATCH][HDR_LEN];   /* per frame */
	uint16_t msg_frame[BATCH];     /* the frame (from the queue's head) a message carries */
	uint16_t frame_ndst[BATCH];    /* copies each frame of the batch goes out as */
};

struct tport {
	struct sn_port base;
	enum proto proto;
	int family;
	uint32_t vni;
	struct tsock *us;              /* the local address's socket */
	struct tsock *gs;              /* the group's, or NULL */
	struct tport *vni_next[2];     /* in us's and gs's VNI chains */
	struct vtep local;
	struct vtep group;
	char dev[IF_NAMESIZE];
	uint16_t dport;                /* UDP port of remotes given without one */
	struct vtep flood[FLOOD_MAX];
	unsigned nflood;
	unsigned nflood_spec;          /* the first ones came from remote= */
	struct known *known;
	unsigned nknown;
	struct rtable rt;
	ev_timer ager;
	bool learning, csum;
	int ttl, tos;                  /* -1: the socket's default */
	struct {
		/* two CMSG_SPACE(sizeof(int)), 48 bytes on LP64, aligned as CMSG_FIRSTHDR() wants */
		_Alignas(struct cmsghdr) uint8_t buf[64];
	} cmsg;                        /* TTL and TOS for every datagram, when ttl= or tos= */
	size_t cmsg_len;
	unsigned head_copies;          /* copies of the head frame sent so far (head-end replication) */
	bool head_ok;                  /* and at least one of them went out */
	int wfd;                       /* the socket a send waits on, when full */
	ev_io wio;
	struct sn_ratelimit err_log;
	struct tport_counters c;
	struct tx_batch tx;
};

static const struct sn_port_ops vxlan_ops, geneve_ops;

static struct tport *tport_of(struct sn_port *port)
{
	struct tport *t = sn_port_downcast(port, struct tport, base, &vxlan_ops);

	return t ? t : sn_port_downcast(port, struct tport, base, &geneve_ops);
}

static const char *proto_name(enum proto p)
{
	return p == PROTO_VXLAN ? "vxlan" : "geneve";
}

/* ---- addresses ---- */

static socklen_t vtep_to_sa(int family, const struct vtep *v, union inaddr *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (family == AF_INET) {
		sa->in.sin_family = AF_INET;
		memcpy(&sa->in.sin_addr, v->a, 4);
		sa->in.sin_port = htons(v->port);
		return sizeof(sa->in);
	}
	sa->in6.sin6_family = AF_INET6;
	memcpy(&sa->in6.sin6_addr, v->a, 16);
	sa->in6.sin6_port = htons(v->port);
	return sizeof(sa->in6);
}

/* The sender of a datagram, when it is of @family. */
static bool sa_to_vtep(int family, const union inaddr *sa, socklen_t len, struct vtep *v)
{
	memset(v, 0, sizeof(*v));
	if (family == AF_INET && len >= sizeof(sa->in) && sa->sa.sa_family == AF_INET) {
		memcpy(v->a, &sa->in.sin_addr, 4);
		v->port = ntohs(sa->in.sin_port);
		return true;
	}
	if (family == AF_INET6 && len >= sizeof(sa->in6) && sa->sa.sa_family == AF_INET6) {
		memcpy(v->a, &sa->in6.sin6_addr, 16);
		v->port = ntohs(sa->in6.sin6_port);
		return true;
	}
	return false;
}

static bool vtep_is_multicast(int family, const struct vtep *v)
{
	return family == AF_INET ? (v->a[0] & 0xf0) == 0xe0 : v->a[0] == 0xff;
}

static bool vtep_is_any(int family, const struct vtep *v)
{
	static const uint8_t zero[16];

	return !memcmp(v->a, zero, family == AF_INET ? 4 : 16);
}

/* "10.0.0.2", or "10.0.0.2:4790" when the port is not @defport; "fd00::2", "[fd00::2]:4790". */
static void vtep_format(int family, const struct vtep *v, uint16_t defport, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(family, v->a, a, sizeof(a));
	if (v->port == defport)
		snprintf(buf, len, "%s", a);
	else if (family == AF_INET)
		snprintf(buf, len, "%s:%u", a, v->port);
	else
		snprintf(buf, len, "[%s]:%u", a, v->port);
}

/* "IP", "IP:PORT", "[IPv6]", "[IPv6]:PORT" or a bare IPv6 address. *@family 0 takes the
 * address's and sets it; else the address must be of that family. The port defaults to
 * @defport. -EINVAL with @err naming @key. */
static int vtep_parse(const char *text, const char *key, int *family, uint16_t defport, struct vtep *ret,
		      struct sn_error *err)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port = NULL, *colon = strchr(text, ':');
	struct vtep v = {.port = defport};
	int fam;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || (size_t)(close - text - 1) >= sizeof(host))
			goto bad;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			goto bad;
	} else if (colon && !strchr(colon + 1, ':')) {
		/* one colon: IPv4:PORT */
		if ((size_t)(colon - text) >= sizeof(host))
			goto bad;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
		port = colon + 1;
	} else {
		if (strlen(text) >= sizeof(host))
			goto bad;
		strcpy(host, text);
	}
	if (inet_pton(AF_INET, host, v.a) == 1)
		fam = AF_INET;
	else if (inet_pton(AF_INET6, host, v.a) == 1)
		fam = AF_INET6;
	else
		goto bad;
	if (port) {
		unsigned p;

		if (sn_parse_uint(port, 1, 65535, &p) < 0)
			return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': port must be 1 to 65535", text,
					    key);
		v.port = (uint16_t)p;
	}
	if (*family && fam != *family)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want an %s address, as local= is",
				    text, key, *family == AF_INET ? "IPv4" : "IPv6");
	*family = fam;
	*ret = v;
	return 0;
bad:
	return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want IP, IP:PORT or [IPv6]:PORT", text, key);
}

/* ---- the port's table: (MAC, VLAN) -> remote ---- */

/* The table files a MAC under the VLAN it has on the tunnel, as this port's frames cross it: the
 * tag with the port's TPID on a trunk (802.1Q when the port is transparent), none on an access
 * port, whose one VLAN is all the tunnel carries. Frames in and out are read the same way, so
 * learning and lookups agree whatever VLANs the switch keeps inside. */
static uint16_t wire_vlan(const struct tport *t, const uint8_t *d, uint32_t len)
{
	const struct sn_port_policy *p = &t->base.conf.policy;
	uint16_t tpid = p->mode == SN_VLAN_TRUNK ? p->tpid : SN_TPID_8021Q;

	if (p->mode == SN_VLAN_ACCESS || len < SN_ETH_HLEN + SN_VLAN_HLEN || sn_get_be16(d + 12) != tpid)
		return 0;
	return sn_get_be16(d + 14) & 0xfff;
}

/* The tunnel's VLAN of the switch's VLAN @vid (what `fdb add ... vlan=N` names), or -1 when the
 * port does not carry @vid. */
static int vlan_to_wire(const struct tport *t, uint16_t vid)
{
	int tag = sn_vlan_egress(&t->base.conf.policy, vid);

	if (tag == -1)
		return -1;
	return tag > 0 ? vid : 0;
}

/* And back, for `tunnel show`: the switch's VLAN of tunnel VLAN @wire. */
static uint16_t vlan_from_wire(const struct tport *t, uint16_t wire)
{
	const struct sn_port_policy *p = &t->base.conf.policy;

	if (p->mode == SN_VLAN_ACCESS)
		return p->vid;
	if (p->mode == SN_VLAN_TRUNK && wire == 0)
		return p->native;
	return wire;
}

static uint32_t rt_hash(uint64_t key)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32);
}

static int rt_init(struct rtable *t, uint32_t max)
{
	uint32_t n = 16;

	while (n < 2 * max)
		n <<= 1;
	t->slots = calloc(n, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = n - 1;
	t->max = max;
	return 0;
}

static struct rt_entry *rt_find(const struct rtable *t, uint64_t key)
{
	/* never more than half full, so an empty slot ends every probe */
	for (uint32_t i = rt_hash(key) & t->mask;; i = (i + 1) & t->mask) {
		if (t->slots[i].key == key)
			return &t->slots[i];
		if (t->slots[i].key == 0)
			return NULL;
	}
}

static struct rt_entry *rt_insert(struct rtable *t, uint64_t key)
{
	uint32_t i = rt_hash(key) & t->mask;

	while (t->slots[i].key)
		i = (i + 1) & t->mask;
	t->slots[i] = (struct rt_entry){.key = key};
	t->count++;
	return &t->slots[i];
}

/* Backward-shift deletion: the entries after @i that probed past it move up. */
static void rt_remove_slot(struct rtable *t, uint32_t i)
{
	uint32_t j = i;

	for (;;) {
		uint32_t home;

		j = (j + 1) & t->mask;
		if (!t->slots[j].key)
			break;
		home = rt_hash(t->slots[j].key) & t->mask;
		/* the entry at j stays when its home lies cyclically in (i, j] */
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		t->slots[i] = t->slots[j];
		i = j;
	}
	t->slots[i].key = 0;
	t->count--;
}

static bool rt_expired(const struct rt_entry *e, double aging, double now)
{
	return !e->is_static && now - e->seen >= aging;
}

/* The remote for @key, or NULL (none, or expired). */
static const struct rt_entry *rt_lookup(const struct tport *t, uint64_t key, double aging, double now)
{
	const struct rt_entry *e = rt_find(&t->rt, key);

	return e && !rt_expired(e, aging, now) ? e : NULL;
}

/* Removes expired entries; returns when the next one expires (0: none can). */
static double rt_sweep(struct rtable *t, double aging, double now)
{
	double next = 0;

	for (uint32_t i = 0; i <= t->mask;) {
		struct rt_entry *e = &t->slots[i];

		if (e->key == 0 || e->is_static) {
			i++;
		} else if (rt_expired(e, aging, now)) {
			rt_remove_slot(t, i); /* a shifted entry may sit in slot i now: look again */
		} else {
			if (next == 0 || e->seen + aging < next)
				next = e->seen + aging;
			i++;
		}
	}
	t->next_expiry = next;
	return next;
}

static void ager_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tport *t = w->data;
	double now = ev_now(loop), next = rt_sweep(&t->rt, sn_port_fdb_aging(&t->base), now);

	if (next > 0) {
		ev_timer_set(w, SN_MAX(next - now, 0) + 0.01, 0);
		ev_timer_start(loop, w);
	}
}

static void ager_want(struct tport *t, double expiry, double now)
{
	if (t->rt.next_expiry == 0 || expiry < t->rt.next_expiry)
		t->rt.next_expiry = expiry;
	if (!ev_is_active(&t->ager)) {
		ev_timer_set(&t->ager, SN_MAX(expiry - now, 0) + 0.01, 0);
		ev_timer_start(sn_port_loop(&t->base), &t->ager);
	}
}

/* The inner source @mac on @vlan sits behind @src. */
static void rt_learn(struct tport *t, const uint8_t mac[6], uint16_t vlan, const struct vtep *src, double aging,
		     double now)
{
	uint64_t key = sn_fdb_key(mac, vlan);
	struct rt_entry *e;

	if (mac[0] & 1 || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return;
	e = rt_find(&t->rt, key);
	if (e) {
		if (e->is_static)
			return;
		e->seen = now;
		e->dst = *src; /* a MAC seen behind another VTEP moved there */
		return;
	}
	if (t->rt.count >= t->rt.max) {
		if (t->rt.next_expiry > 0 && now >= t->rt.next_expiry)
			rt_sweep(&t->rt, aging, now);
		if (t->rt.count >= t->rt.max) {
			t->c.learn_refused++;
			return;
		}
	}
	e = rt_insert(&t->rt, key);
	e->seen = now;
	e->dst = *src;
	ager_want(t, now + aging, now);
}

/* ---- remotes the port knows: the flood list and the pins ---- */

/* The index of @v's address in the sorted array, or -(where it would go) - 1. The set holds
 * addresses only: a VTEP sends from the source port its flow hash picks, not from the port
 * it listens on. */
static int known_find(const struct tport *t, const struct vtep *addr)
{
	int lo = 0, hi = (int)t->nknown - 1;
	struct vtep key = *addr, *v = &key;

	key.port = 0;
	while (lo <= hi) {
		int mid = (lo + hi) / 2, c = memcmp(&t->known[mid].v, v, sizeof(*v));

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -lo - 1;
}

static int known_ref(struct tport *t, const struct vtep *v)
{
	int i = known_find(t, v);

	if (i >= 0) {
		t->known[i].refs++;
		return 0;
	}
	if (t->nknown == KNOWN_MAX)
		return -ENOSPC;
	i = -i - 1;
	memmove(&t->known[i + 1], &t->known[i], (t->nknown - (unsigned)i) * sizeof(*t->known));
	t->known[i] = (struct known){.v = *v, .refs = 1};
	t->known[i].v.port = 0;
	t->nknown++;
	return 0;
}

static void known_unref(struct tport *t, const struct vtep *v)
{
	int i = known_find(t, v);

	if (i < 0 || --t->known[i].refs > 0)
		return;
	memmove(&t->known[i], &t->known[i + 1], (t->nknown - (unsigned)i - 1) * sizeof(*t->known));
	t->nknown--;
}

static int flood_add(struct tport *t, const struct vtep *v, struct sn_error *err)
{
	char a[64];

	vtep_format(t->family, v, t->dport, a, sizeof(a));
	for (unsigned i = 0; i < t->nflood; i++)
		if (!memcmp(&t->flood[i], v, sizeof(*v)))
			return sn_error_set(err, -EEXIST, "%s is on the flood list of %s already", a, t->base.name);
	if (vtep_is_multicast(t->family, v) || vtep_is_any(t->family, v))
		return sn_error_set(err, -EINVAL, "%s cannot be a remote: for a multicast group use group=", a);
	if (t->nflood == FLOOD_MAX || known_ref(t, v) < 0)
		return sn_error_set(err, -ENOSPC, "%s: at most %d remotes on the flood list", t->base.name, FLOOD_MAX);
	t->flood[t->nflood++] = *v;
	return 0;
}

static int flood_del(struct tport *t, const struct vtep *v)
{
	for (unsigned i = 0; i < t->nflood; i++) {
		if (memcmp(&t->flood[i], v, sizeof(*v)))
			continue;
		known_unref(t, v);
		memmove(&t->flood[i], &t->flood[i + 1], (t->nflood - i - 1) * sizeof(*v));
		t->nflood--;
		if (i < t->nflood_spec)
			t->nflood_spec--;
		return 0;
	}
	return -ENOENT;
}

/* ---- receiving ---- */

static struct tport *vni_find(struct tsock *ts, uint32_t vni)
{
	if (ts->last && ts->last->vni == vni)
		return ts->last;
	for (struct tport *t = ts->vni[vni % VNI_BUCKETS]; t; t = t->vni_next[ts->is_group])
		if (t->vni == vni)
			return ts->last = t;
	return NULL;
}

/* Checks the tunnel header of datagram @i of @ts's batch; returns the port it is for, with the
 * frame cut to the inner Ethernet frame, or NULL having counted why not. */
static struct tport *decap(struct tsock *ts, unsigned i)
{
	struct rx_batch *rx = &ts->rx;
	const uint8_t *h = rx->hdr[i];
	struct sn_frame *f = rx->frames[i];
	uint32_t len = rx->len[i], opt = 0, vni;
	struct tport *t;

	if (len < HDR_LEN) {
		ts->c.short_packets++;
		return NULL;
	}
	if (ts->proto == PROTO_VXLAN) {
		if (sn_get_be32(h) != VXLAN_FLAGS || h[7] != 0) {
			ts->c.bad_header++;
			return NULL;
		}
	} else {
		if (h[0] >> 6 != 0 || sn_get_be16(h + 2) != GENEVE_PROTO_TEB) {
			ts->c.bad_header++;
			return NULL;
		}
		opt = (h[0] & 0x3fu) * 4; /* the reserved bits are ignored, as RFC 8926 says */
	}
	vni = sn_get_be32(h + 4) >> 8;
	t = vni_find(ts, vni);
	if (!t) {
		ts->c.unknown_vni++;
		return NULL;
	}
	if (sn_unlikely(rx->trunc[i])) {
		t->base.stats.drop_oversize++;
		return NULL;
	}
	len -= HDR_LEN;
	if (ts->proto == PROTO_GENEVE) {
		if (h[1] & 0x80) {
			t->c.oam++;
			return NULL;
		}
		if (h[1] & 0x40) {
			t->c.critical++;
			return NULL;
		}
		if (opt > len) {
			t->c.bad_options++;
			return NULL;
		}
		/* every option has a 4-byte header and its length in 4-byte words; none is understood
		 * here, so one marked critical (the type's high bit) drops the packet */
		for (uint32_t o = 0; o < opt;) {
			uint32_t olen = 4 + (f->data[o + 3] & 0x1fu) * 4;

			if (olen > opt - o) {
				t->c.bad_options++;
				return NULL;
			}
			if (f->data[o + 2] & 0x80) {
				t->c.critical++;
				return NULL;
			}
			o += olen;
		}
		len -= opt;
		if (opt)
			memmove(f->data, f->data + opt, len);
	}
	f->len = len;
	return t;
}

/* Handles the first @n datagrams of @ts's batch: decapsulation, learning, and the frames to the
 * switch, consecutive frames of one port as one batch. */
static void rx_process(struct tsock *ts, unsigned n)
{
	struct rx_batch *rx = &ts->rx;
	struct tport *run = NULL;
	unsigned nb = 0, start = 0;
	double now = ev_now(ts->loop), aging = 0;

	for (unsigned i = 0; i < n; i++) {
		struct sn_frame *f = rx->frames[i];
		struct tport *t;
		struct vtep src;

		if (!f)
			continue;
		t = decap(ts, i);
		if (!t) {
			sn_frame_unref(f);
			continue;
		}
		if (!sa_to_vtep(t->family, &rx->from[i], rx->fromlen[i], &src) ||
		    (!t->learning && known_find(t, &src) < 0)) {
			t->c.unknown_vtep++;
			sn_frame_unref(f);
			continue;
		}
		if (t != run) {
			if (run)
				sn_port_input(&run->base, rx->frames + start, nb - start);
			run = t;
			start = nb;
			aging = sn_port_fdb_aging(&t->base);
		}
		/* runts go on to the switch, which counts them */
		if (t->learning && f->len >= SN_ETH_HLEN) {
			uint16_t vlan = 0;

			/* the remote's source port is one of its sending sockets': answers go to the
			 * tunnel's port, as Linux learns them */
			src.port = t->dport;
			vlan = wire_vlan(t, f->data, f->len);
			rt_learn(t, f->data + 6, vlan, &src, aging, now);
		}
		rx->frames[nb++] = f;
	}
	if (run)
		sn_port_input(&run->base, rx->frames + start, nb - start);
}

#if SN_MSGIO_MMSG
static int recv_batch(int fd, struct sn_msgio_hdr *msg, unsigned n)
{
	int r;

	do
		r = recvmmsg(fd, msg, n, MSG_DONTWAIT, NULL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static int send_batch(int fd, struct sn_msgio_hdr *msg, unsigned n)
{
	int r;

	do
		r = sendmmsg(fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}
#else
/* recvmmsg() and sendmmsg()'s contract, a message at a time: an error after the first message
 * ends the batch quietly, and the next call meets it. */
static int loop_batch(int fd, struct sn_msgio_hdr *msg, unsigned n, bool send)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		ssize_t r;

		do
			r = send ? sendmsg(fd, &msg[i].msg_hdr, MSG_DONTWAIT | MSG_NOSIGNAL)
				 : recvmsg(fd, &msg[i].msg_hdr, MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			if (i == 0)
				return -errno;
			break;
		}
		msg[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

static int recv_batch(int fd, struct sn_msgio_hdr *msg, unsigned n)
{
	return loop_batch(fd, msg, n, false);
}

static int send_batch(int fd, struct sn_msgio_hdr *msg, unsigned n)
{
	return loop_batch(fd, msg, n, true);
}
#endif

/* Reads a batch into pool buffers; returns the number of datagrams (entries may be NULL:
 * dropped and counted), 0 when none is waiting or on an error. */
static unsigned tsock_recv(struct tsock *ts)
{
	struct rx_batch *rx = &ts->rx;
	unsigned nbuf, i;
	int n;

	for (nbuf = 0; nbuf < BATCH; nbuf++) {
		rx->frames[nbuf] = sn_port_frame_try(ts->any, ts->rx_len);
		if (!rx->frames[nbuf])
			break;
	}
	if (nbuf == 0) {
		/* the pool is empty: take the datagram off the socket anyway, or it wakes us at once */
		uint8_t scratch[1];

		if (recv(ts->fd, scratch, sizeof(scratch), MSG_DONTWAIT | MSG_TRUNC) < 0)
			return 0;
		ts->c.no_buffer++;
		rx->frames[0] = NULL;
		return 1;
	}
	for (i = 0; i < nbuf; i++) {
		rx->iov[i][0] = (struct iovec){rx->hdr[i], HDR_LEN};
		rx->iov[i][1] = (struct iovec){rx->frames[i]->data, ts->rx_len};
		rx->msg[i].msg_hdr = (struct msghdr){
			.msg_name = &rx->from[i],
			.msg_namelen = sizeof(rx->from[i]),
			.msg_iov = rx->iov[i],
			.msg_iovlen = 2,
		};
	}
	n = recv_batch(ts->fd, rx->msg, nbuf);
	if (n < 0) {
		if (n != -EAGAIN && n != -EWOULDBLOCK)
			sn_debug("%s socket: receive: %s", proto_name(ts->proto), strerror(-n));
		n = 0;
	}
	for (i = 0; i < (unsigned)n; i++) {
		rx->len[i] = rx->msg[i].msg_len;
		rx->trunc[i] = (rx->msg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
		rx->fromlen[i] = rx->msg[i].msg_hdr.msg_namelen;
	}
	/* hand back what the batch did not fill, last first so the pool's hot buffers stay on top */
	while (nbuf > i)
		sn_frame_unref(rx->frames[--nbuf]);
	return (unsigned)n;
}

static void tsock_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tsock *ts = w->data;

	for (int round = 0; round < RX_ROUNDS; round++) {
		unsigned n = tsock_recv(ts);

		if (n == 0)
			return;
		rx_process(ts, n);
		if (n < BATCH)
			return;
	}
}

/* ---- sending ---- */

/* A hash of the inner flow: IP addresses, protocol and ports where there are some, else the
 * MACs and EtherType. A flow always gets the same, so it keeps its UDP source port. */
static uint32_t flow_hash(const uint8_t *d, uint32_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint32_t off = 12;
	uint16_t type;

#define MIX(p, n)                                                                                  \
	do {                                                                                       \
		for (uint32_t k_ = 0; k_ < (n); k_++)                                              \
			h = (h ^ (p)[k_]) * 0x100000001b3ull;                                      \
	} while (0)
	type = sn_get_be16(d + off);
	if (type == SN_ETH_P_8021Q && len >= SN_ETH_HLEN + SN_VLAN_HLEN) {
		off += SN_VLAN_HLEN;
		type = sn_get_be16(d + off);
	}
	off += 2;
	if (type == 0x0800 && len >= off + 20) {
		const uint8_t *ip = d + off;
		uint32_t ihl = (ip[0] & 15u) * 4;

		MIX(ip + 9, 1);
		MIX(ip + 12, 8);
		if ((ip[9] == 6 || ip[9] == 17 || ip[9] == 132) && !(sn_get_be16(ip + 6) & 0x3fff) && ihl >= 20 &&
		    len >= off + ihl + 4)
			MIX(ip + ihl, 4);
	} else if (type == 0x86dd && len >= off + 40) {
		const uint8_t *ip = d + off;

		MIX(ip + 6, 1);
		MIX(ip + 8, 32);
		if ((ip[6] == 6 || ip[6] == 17 || ip[6] == 132) && len >= off + 44)
			MIX(ip + 40, 4);
	} else {
		MIX(d, 14);
	}
#undef MIX
	return (uint32_t)(h ^ (h >> 32));
}

static void put_header(const struct tport *t, uint8_t *h)
{
	if (t->proto == PROTO_VXLAN) {
		sn_put_be32(h, VXLAN_FLAGS);
	} else {
		h[0] = 0; /* version 0, no options */
		h[1] = 0; /* no O, no C */
		sn_put_be16(h + 2, GENEVE_PROTO_TEB);
	}
	sn_put_be32(h + 4, t->vni << 8);
}

/* Where frame @f goes: the remotes in *@ret (count returned; 0: nowhere) and the socket. */
static unsigned route(struct tport *t, const struct sn_frame *f, double aging, double now, const struct vtep **ret,
		      int *ret_fd)
{
	const uint8_t *d = f->data;
	const struct rt_entry *e = NULL;
	int csum = t->csum;

	if (!(d[0] & 1))
		e = rt_lookup(t, sn_fdb_key(d, wire_vlan(t, d, f->len)), aging, now);
	if (e) {
		*ret = &e->dst;
	} else if (t->gs) {
		*ret = &t->group;
		*ret_fd = t->gs->fd;
		return 1;
	} else {
		*ret = t->flood;
		if (t->nflood == 0)
			return 0;
	}
	*ret_fd = t->us->tx[csum][flow_hash(d, f->len) % t->us->ntx[csum]];
	return e ? 1 : t->nflood;
}

static void wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tport *t = w->data;

	ev_io_stop(loop, w);
	t->base.ops->flush(&t->base);
}

/* The head frame has had all its copies: popped as sent when one went out, else dropped.
 * @sent counts head frames done and sent but not popped yet, which go first. */
static void head_done(struct tport *t, uint32_t *sent)
{
	if (t->head_ok) {
		(*sent)++;
	} else {
		sn_txq_sent(&t->base, *sent);
		*sent = 0;
		sn_txq_drop(&t->base, 1);
	}
	t->head_copies = 0;
	t->head_ok = false;
}

static void send_failed(struct tport *t, int r)
{
	unsigned long held;
	char where[64];

	if (r == -EMSGSIZE) {
		t->base.stats.drop_oversize++;
		return;
	}
	t->c.tx_errors++;
	if (sn_ratelimit_ok(&t->err_log, ev_now(sn_port_loop(&t->base)), &held)) {
		vtep_format(t->family, &t->local, t->dport, where, sizeof(where));
		sn_info("port %s: sending from %s: %s (%lu more errors since the last message)", t->base.name, where,
			strerror(-r), held);
	}
}

/* Writes the egress queue out as tunnel datagrams, head-end replicating BUM frames: batches of
 * up to BATCH messages on one socket, each an iovec pair of the header (one per frame, shared
 * by its copies) and the pool buffer itself. */
static void tport_flush(struct sn_port *port)
{
	struct tport *t = (struct tport *)port;
	struct sn_txq *q = &port->txq;
	struct tx_batch *tx = &t->tx;
	double now = ev_now(sn_port_loop(port)), aging = sn_port_fdb_aging(port);

	if (ev_is_active(&t->wio))
		return; /* a socket is full: wio_cb comes back */
	while (!sn_txq_empty(q)) {
		uint32_t qlen = sn_txq_len(q), sent = 0;
		unsigned nmsg = 0, nfr = 0;
		int fd = -1, r;

		for (uint32_t i = 0; i < qlen && nmsg < BATCH && nfr < BATCH; i++) {
			struct sn_frame *f = sn_txq_peek(q, i);
			const struct vtep *dst;
			int ffd = -1;
			unsigned ndst = route(t, f, aging, now, &dst, &ffd), k = i == 0 ? t->head_copies : 0;

			if (i == 0 && k >= ndst) {
				/* nowhere to go (ndst 0), or fewer remotes now than copies already sent */
				if (ndst == 0 && k == 0)
					t->c.no_remote++;
				head_done(t, &sent);
				sn_txq_sent(port, sent);
				goto next;
			}
			if (ndst == 0 || (fd >= 0 && ffd != fd))
				break; /* this frame starts the next batch */
			fd = ffd;
			put_header(t, tx->hdr[nfr]);
			tx->frame_ndst[nfr] = (uint16_t)ndst;
			for (; k < ndst && nmsg < BATCH; k++, nmsg++) {
				tx->iov[nmsg][0] = (struct iovec){tx->hdr[nfr], HDR_LEN};
				tx->iov[nmsg][1] = (struct iovec){f->data, f->len};
				tx->msg[nmsg].msg_hdr = (struct msghdr){
					.msg_name = &tx->name[nmsg],
					.msg_namelen = vtep_to_sa(t->family, &dst[k], &tx->name[nmsg]),
					.msg_iov = tx->iov[nmsg],
					.msg_iovlen = 2,
					.msg_control = t->cmsg_len ? t->cmsg.buf : NULL,
					.msg_controllen = t->cmsg_len,
				};
				tx->msg_frame[nmsg] = (uint16_t)nfr;
			}
			nfr++;
			if (k < ndst)
				break; /* the batch is full in the middle of this frame's copies */
		}
		r = send_batch(fd, tx->msg, nmsg);
		if (r == -EAGAIN || r == -EWOULDBLOCK) {
			t->wfd = fd;
			ev_io_set(&t->wio, fd, EV_WRITE);
			ev_io_start(sn_port_loop(port), &t->wio);
			return;
		}
		/* r messages went out; an error is the next one's, which is dropped: one remote that
		 * cannot be reached does not hold up the others */
		if (r < 0) {
			send_failed(t, r);
			r = 0;
			nmsg = 1;
		} else {
			nmsg = (unsigned)r;
		}
		for (unsigned m = 0; m < nmsg; m++) {
			t->head_copies++;
			if (m < (unsigned)r)
				t->head_ok = true;
			if (t->head_copies == tx->frame_ndst[tx->msg_frame[m]])
				head_done(t, &sent);
		}
		sn_txq_sent(port, sent);
next:;
	}
}

/* ---- sockets ---- */

/* Big socket buffers: bursts of a few thousand datagrams are normal. Root may pass the
 * system's limit (the FORCE options, Linux). */
static void raise_buf(int fd, bool rcv)
{
	int v = 4 << 20;

#ifdef SO_RCVBUFFORCE
	if (setsockopt(fd, SOL_SOCKET, rcv ? SO_RCVBUFFORCE : SO_SNDBUFFORCE, &v, sizeof(v)) == 0)
		return;
#endif
	setsockopt(fd, SOL_SOCKET, rcv ? SO_RCVBUF : SO_SNDBUF, &v, sizeof(v));
}

/* Outer packets carry DF and never fragment here: too long is EMSGSIZE, counted. */
static void no_fragments(int fd, int family)
{
	int on = 1;

	(void)on;
	if (family == AF_INET) {
#ifdef IP_PMTUDISC_DO
		int v = IP_PMTUDISC_DO;

		setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof(v));
#endif
	} else {
#ifdef IPV6_PMTUDISC_DO
		int v = IPV6_PMTUDISC_DO;

		setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, sizeof(v));
#endif
#ifdef IPV6_DONTFRAG
		setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &on, sizeof(on));
#endif
	}
}

static int udp_socket(int family)
{
	int fd = socket(family, SOCK_DGRAM, IPPROTO_UDP), on = 1;

	if (fd < 0)
		return -errno;
	if (sn_fd_nonblock(fd) < 0) {
		close(fd);
		return -errno;
	}
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	return fd;
}

/* A sending socket bound to @local's address and a random port in Linux's source port range. */
static int tx_socket(int family, const struct vtep *local, bool csum)
{
	int fd = udp_socket(family), r = -EADDRINUSE;

	if (fd < 0)
		return fd;
	for (int tries = 0; tries < 64 && r == -EADDRINUSE; tries++) {
		struct vtep v = *local;
		union inaddr sa;
		uint16_t rnd;
		socklen_t len;

		if (getentropy(&rnd, sizeof(rnd)) < 0)
			rnd = (uint16_t)(ev_time() * 1e6) ^ (uint16_t)tries;
		/* the last try lets the kernel choose, whatever its range */
		v.port = tries == 63 ? 0 : (uint16_t)(SRC_PORT_MIN + rnd % (SRC_PORT_MAX - SRC_PORT_MIN + 1));
		len = vtep_to_sa(family, &v, &sa);
		r = bind(fd, &sa.sa, len) < 0 ? -errno : 0;
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	no_fragments(fd, family);
	raise_buf(fd, false);
	if (!csum) {
#ifdef SO_NO_CHECK
		int on = 1;

		if (family == AF_INET)
			setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &on, sizeof(on));
#endif
#ifdef UDP_NO_CHECK6_TX
		int on6 = 1;

		if (family == AF_INET6)
			setsockopt(fd, IPPROTO_UDP, UDP_NO_CHECK6_TX, &on6, sizeof(on6));
#endif
	}
	/* nothing is read from it: keep what a stray sender leaves there small */
	{
		int small = 1;

		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	return fd;
}

static void tsock_free(struct tsock *ts)
{
	if (ts->reg) {
		for (struct tsock **pp = &ts->reg->socks; *pp; pp = &(*pp)->next) {
			if (*pp == ts) {
				*pp = ts->next;
				break;
			}
		}
	}
	ev_io_stop(ts->loop, &ts->io);
	if (ts->fd >= 0)
		close(ts->fd);
	for (int c = 0; c < 2; c++)
		for (unsigned i = 0; i < ts->ntx[c]; i++)
			close(ts->tx[c][i]);
	free(ts);
}

static void registry_destroy(struct sn_switch_ext *ext)
{
	struct registry *reg = sn_container_of(ext, struct registry, ext);

	/* the ports close after this and free their sockets themselves */
	for (struct tsock *ts = reg->socks; ts; ts = ts->next)
		ts->reg = NULL;
	free(reg);
}

static const int registry_key;

static struct registry *registry_get(struct sn_switch *sw)
{
	struct sn_switch_ext *ext = sn_switch_ext_find(sw, &registry_key);
	struct registry *reg;

	if (ext)
		return sn_container_of(ext, struct registry, ext);
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	reg->ext.key = &registry_key;
	reg->ext.destroy = registry_destroy;
	sn_switch_ext_add(sw, &reg->ext);
	return reg;
}

/* Why a bind failed, for the user. */
static int bind_error(int r, const char *key, const char *text, struct sn_error *err)
{
	if (r == -EADDRINUSE)
		return sn_error_set(err, r,
				    "%s=%s: address in use (another VTEP on this host? a Linux vxlan or geneve "
				    "device, Open vSwitch or another squibnet)",
				    key, text);
	if (r == -EADDRNOTAVAIL)
		return sn_error_set(err, r, "%s=%s: no interface here has that address", key, text);
	return sn_error_set(err, r, "%s=%s: %s", key, text, strerror(-r));
}

static int group_join(int fd, int family, const struct vtep *g, unsigned ifindex, const struct vtep *local)
{
	if (family == AF_INET) {
		struct ip_mreqn m = {.imr_ifindex = (int)ifindex};
		unsigned char no = 0;

		memcpy(&m.imr_multiaddr, g->a, 4);
		if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) < 0)
			return -errno;
		/* sent from the group's socket: from local= on dev= */
		memcpy(&m.imr_address, local->a, 4);
		if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m)) < 0)
			return -errno;
		setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &no, sizeof(no));
	} else {
		struct ipv6_mreq m = {.ipv6mr_interface = ifindex};
		int no = 0;

		memcpy(&m.ipv6mr_multiaddr, g->a, 16);
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof(m)) < 0)
			return -errno;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0)
			return -errno;
		setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &no, sizeof(no));
	}
	return 0;
}

/* The receiving socket for @addr (a local address, or a group on @ifindex), shared or new, with
 * one more reference. */
static int tsock_get(struct sn_port *port, enum proto proto, int family, const struct vtep *addr, bool is_group,
		     unsigned ifindex, const struct vtep *local, const char *key, const char *text,
		     struct tsock **ret, struct sn_error *err)
{
	struct registry *reg = registry_get(port->sw);
	struct tsock *ts;
	union inaddr sa;
	socklen_t salen;
	int r, on = 1;

	if (!reg)
		return -ENOMEM;
	for (ts = reg->socks; ts; ts = ts->next) {
		if (ts->proto == proto && ts->family == family && ts->is_group == is_group &&
		    !memcmp(&ts->addr, addr, sizeof(*addr)) && (!is_group || ts->ifindex == ifindex)) {
			ts->refs++;
			*ret = ts;
			return 0;
		}
	}
	ts = calloc(1, sizeof(*ts));
	if (!ts)
		return -ENOMEM;
	ts->proto = proto;
	ts->family = family;
	ts->addr = *addr;
	ts->is_group = is_group;
	ts->ifindex = ifindex;
	ts->loop = sn_port_loop(port);
	ts->any = port;
	ts->fd = udp_socket(family);
	if (ts->fd < 0) {
		r = ts->fd;
		free(ts);
		return sn_error_set(err, r, "%s port: socket: %s", proto_name(proto), strerror(-r));
	}
	if (is_group)
		setsockopt(ts->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
#ifdef UDP_NO_CHECK6_RX
	if (family == AF_INET6)
		setsockopt(ts->fd, IPPROTO_UDP, UDP_NO_CHECK6_RX, &on, sizeof(on));
#endif
	raise_buf(ts->fd, true);
	salen = vtep_to_sa(family, addr, &sa);
	if (bind(ts->fd, &sa.sa, salen) < 0) {
		r = -errno;
		close(ts->fd);
		free(ts);
		return bind_error(r, key, text, err);
	}
	if (is_group) {
		r = group_join(ts->fd, family, addr, ifindex, local);
		if (r < 0) {
			close(ts->fd);
			free(ts);
			return sn_error_set(err, r, "group=%s: cannot join it: %s", text, strerror(-r));
		}
		no_fragments(ts->fd, family);
	}
	ev_io_init(&ts->io, tsock_read_cb, ts->fd, EV_READ);
	ts->io.data = ts;
	ev_io_start(ts->loop, &ts->io);
	ts->refs = 1;
	ts->reg = reg;
	ts->next = reg->socks;
	reg->socks = ts;
	*ret = ts;
	return 0;
}

static void tsock_put(struct tsock *ts)
{
	if (ts && --ts->refs == 0)
		tsock_free(ts);
}

/* The sending sockets of @ts with or without UDP checksums, made the first time a port asks. */
static int tsock_want_tx(struct tsock *ts, bool csum, const struct vtep *local)
{
	while (ts->ntx[csum] < SRC_PORTS) {
		int fd = tx_socket(ts->family, local, csum);

		if (fd < 0)
			return fd;
		ts->tx[csum][ts->ntx[csum]++] = fd;
	}
	return 0;
}

/* What a datagram's frame buffer must hold: the largest inner frame of the socket's ports, and
 * Geneve options in front of it. The whole standard buffer when that is enough, so that a frame
 * somewhat over a port's MTU arrives whole and the switch counts it as oversize. */
static uint32_t tsock_rx_len(const struct tsock *ts)
{
	uint32_t need = 0;

	for (unsigned b = 0; b < VNI_BUCKETS; b++)
		for (const struct tport *t = ts->vni[b]; t; t = t->vni_next[ts->is_group])
			need = SN_MAX(need, sn_port_max_frame(&t->base));
	if (ts->proto == PROTO_GENEVE)
		need += GENEVE_OPT_MAX;
	/* no buffer is larger than a jumbo one: a datagram past it is cut and counted */
	return need <= SN_POOL_STD_CAP ? SN_POOL_STD_CAP : SN_MIN(need, SN_POOL_JUMBO_CAP);
}

static void vni_link(struct tsock *ts, struct tport *t)
{
	struct tport **head = &ts->vni[t->vni % VNI_BUCKETS];

	t->vni_next[ts->is_group] = *head;
	*head = t;
	ts->rx_len = tsock_rx_len(ts);
}

static void vni_unlink(struct tsock *ts, struct tport *t)
{
	for (struct tport **pp = &ts->vni[t->vni % VNI_BUCKETS]; *pp; pp = &(*pp)->vni_next[ts->is_group]) {
		if (*pp == t) {
			*pp = t->vni_next[ts->is_group];
			break;
		}
	}
	if (ts->last == t)
		ts->last = NULL;
	if (ts->any == &t->base) {
		ts->any = NULL;
		for (unsigned b = 0; b < VNI_BUCKETS && !ts->any; b++)
			if (ts->vni[b])
				ts->any = &ts->vni[b]->base;
	}
	ts->rx_len = tsock_rx_len(ts);
}

/* ---- port ops ---- */

static void tport_close(struct sn_port *port)
{
	struct tport *t = (struct tport *)port;
	struct ev_loop *loop = sn_port_loop(port);

	ev_timer_stop(loop, &t->ager);
	ev_io_stop(loop, &t->wio);
	if (t->us) {
		vni_unlink(t->us, t);
		tsock_put(t->us);
		t->us = NULL;
	}
	if (t->gs) {
		vni_unlink(t->gs, t);
		tsock_put(t->gs);
		t->gs = NULL;
	}
}

static void tport_free(struct sn_port *port)
{
	struct tport *t = (struct tport *)port;

	free(t->rt.slots);
	free(t->known);
	free(t);
}

static void tport_describe(struct sn_port *port, char *buf, size_t len)
{
	struct tport *t = (struct tport *)port;
	struct sn_tunnel_counters c;
	char a[64];
	size_t n;

#define PUT(...)                                                                                   \
	do {                                                                                       \
		if (n < len)                                                                       \
			n += (size_t)snprintf(buf + n, len - n, __VA_ARGS__);                      \
	} while (0)
	n = 0;
	vtep_format(t->family, &t->local, 0, a, sizeof(a));
	PUT("vni %u local %s", t->vni, a);
	if (t->gs) {
		vtep_format(t->family, &t->group, t->dport, a, sizeof(a));
		PUT(" group %s dev %s", a, t->dev);
	}
	for (unsigned i = 0; i < t->nflood; i++) {
		vtep_format(t->family, &t->flood[i], t->dport, a, sizeof(a));
		PUT("%s%s", i ? "," : " remote ", a);
	}
	if (!t->learning)
		PUT(" learning=off");
	sn_tunnel_get_counters(port, &c);
	PUT(" remotes=%u", c.remotes);
#define EXTRA(field)                                                                               \
	do {                                                                                       \
		if (c.field)                                                                       \
			PUT(" " #field "=%llu", (unsigned long long)c.field);                     \
	} while (0)
	EXTRA(short_packets);
	EXTRA(bad_header);
	EXTRA(unknown_vni);
	EXTRA(no_buffer);
	EXTRA(unknown_vtep);
	EXTRA(bad_options);
	EXTRA(critical);
	EXTRA(oam);
	EXTRA(learn_refused);
	EXTRA(no_remote);
	EXTRA(tx_errors);
#undef EXTRA
#undef PUT
}

static int tport_fdb_dst_set(struct sn_port *port, const uint8_t mac[6], uint16_t vlan, const char *dst,
			     struct sn_error *err)
{
	struct tport *t = (struct tport *)port;
	int wire = vlan_to_wire(t, vlan);
	uint64_t key = sn_fdb_key(mac, wire < 0 ? 0 : (uint16_t)wire);
	struct rt_entry *e = wire < 0 ? NULL : rt_find(&t->rt, key);
	struct vtep v;
	int family = t->family, r;

	if (!dst) {
		if (e && e->is_static) {
			known_unref(t, &e->dst);
			rt_remove_slot(&t->rt, (uint32_t)(e - t->rt.slots));
		}
		return 0;
	}
	if (mac[0] & 1 || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return sn_error_set(err, -EINVAL,
				    "%02x:%02x:%02x:%02x:%02x:%02x is no station's MAC (the flood list is "
				    "'tunnel flood add PORT IP')",
				    mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	if (wire < 0) {
		char pol[128];

		sn_policy_describe(&t->base.conf.policy, pol, sizeof(pol));
		return sn_error_set(err, -EINVAL, "port %s does not carry VLAN %u (it is %s)", port->name, vlan, pol);
	}
	r = vtep_parse(dst, "dst", &family, t->dport, &v, err);
	if (r < 0)
		return r;
	if (vtep_is_multicast(family, &v) || vtep_is_any(family, &v))
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'dst': want a unicast address", dst);
	if (known_ref(t, &v) < 0)
		return sn_error_set(err, -ENOSPC, "port %s knows %d remotes already", port->name, KNOWN_MAX);
	if (e) {
		if (e->is_static)
			known_unref(t, &e->dst);
	} else {
		if (t->rt.count >= t->rt.max) {
			rt_sweep(&t->rt, sn_port_fdb_aging(port), ev_now(sn_port_loop(port)));
			if (t->rt.count >= t->rt.max) {
				known_unref(t, &v);
				return sn_error_set(err, -ENOSPC, "port %s: its table of %u MACs is full", port->name,
						    t->rt.max);
			}
		}
		e = rt_insert(&t->rt, key);
	}
	e->is_static = true;
	e->seen = 0;
	e->dst = v;
	return 0;
}

static void tport_fdb_dst_describe(struct sn_port *port, const uint8_t mac[6], uint16_t vlan, char *buf,
				   size_t len)
{
	struct tport *t = (struct tport *)port;
	int wire = vlan_to_wire(t, vlan);
	const struct rt_entry *e = wire < 0 ? NULL
					    : rt_lookup(t, sn_fdb_key(mac, (uint16_t)wire), sn_port_fdb_aging(port),
							ev_now(sn_port_loop(port)));

	if (e)
		vtep_format(t->family, &e->dst, t->dport, buf, len);
}

static const struct sn_port_ops vxlan_ops = {
	.kind = "vxlan",
	.flush = tport_flush,
	.close = tport_close,
	.free = tport_free,
	.describe = tport_describe,
	.fdb_dst_set = tport_fdb_dst_set,
	.fdb_dst_describe = tport_fdb_dst_describe,
};

static const struct sn_port_ops geneve_ops = {
	.kind = "geneve",
	.flush = tport_flush,
	.close = tport_close,
	.free = tport_free,
	.describe = tport_describe,
	.fdb_dst_set = tport_fdb_dst_set,
	.fdb_dst_describe = tport_fdb_dst_describe,
};

int sn_tunnel_get_counters(struct sn_port *port, struct sn_tunnel_counters *ret)
{
	struct tport *t = tport_of(port);
	struct tsock_counters s = {0};

	if (!t)
		return -EINVAL;
	for (int g = 0; g < 2; g++) {
		const struct tsock *ts = g ? t->gs : t->us;

		if (!ts)
			continue;
		s.short_packets += ts->c.short_packets;
		s.bad_header += ts->c.bad_header;
		s.unknown_vni += ts->c.unknown_vni;
		s.no_buffer += ts->c.no_buffer;
	}
	*ret = (struct sn_tunnel_counters){
		.short_packets = s.short_packets,
		.bad_header = s.bad_header,
		.unknown_vni = s.unknown_vni,
		.no_buffer = s.no_buffer,
		.unknown_vtep = t->c.unknown_vtep,
		.bad_options = t->c.bad_options,
		.critical = t->c.critical,
		.oam = t->c.oam,
		.learn_refused = t->c.learn_refused,
		.no_remote = t->c.no_remote,
		.tx_errors = t->c.tx_errors,
		.remotes = t->rt.count,
	};
	return 0;
}

int sn_tunnel_receive(struct sn_port *port, bool group, const uint8_t *data, size_t len, const struct sockaddr *from,
		      socklen_t fromlen)
{
	struct tport *t = tport_of(port);
	struct tsock *ts;
	struct rx_batch *rx;
	size_t body;

	if (!t || !(ts = group ? t->gs : t->us))
		return -EINVAL;
	rx = &ts->rx;
	rx->frames[0] = sn_port_frame_try(ts->any, ts->rx_len);
	if (!rx->frames[0]) {
		ts->c.no_buffer++;
		rx_process(ts, 1);
		return 0;
	}
	/* what recvmmsg() does with the two iovecs */
	memset(rx->hdr[0], 0, HDR_LEN);
	memcpy(rx->hdr[0], data, SN_MIN(len, (size_t)HDR_LEN));
	body = len > HDR_LEN ? len - HDR_LEN : 0;
	memcpy(rx->frames[0]->data, data + (len > HDR_LEN ? HDR_LEN : len), SN_MIN(body, (size_t)ts->rx_len));
	rx->len[0] = (uint32_t)SN_MIN(len, (size_t)HDR_LEN + ts->rx_len);
	rx->trunc[0] = body > ts->rx_len;
	memset(&rx->from[0], 0, sizeof(rx->from[0]));
	memcpy(&rx->from[0], from, SN_MIN((size_t)fromlen, sizeof(rx->from[0])));
	rx->fromlen[0] = fromlen;
	rx_process(ts, 1);
	return 0;
}

/* ---- creation ---- */

/* The MTU of the route from @local to @remote, as the kernel knows it (IP_MTU of a connected
 * socket: the interface's, or less when path MTU discovery learned less); 0 when unknown. */
static unsigned route_mtu(int family, const struct vtep *local, const struct vtep *remote)
{
#if defined(IP_MTU) && defined(IPV6_MTU)
	union inaddr sa;
	socklen_t len;
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), mtu = 0;

	if (fd < 0)
		return 0;
	if (!vtep_is_any(family, local)) {
		struct vtep l = *local;

		l.port = 0;
		len = vtep_to_sa(family, &l, &sa);
		if (bind(fd, &sa.sa, len) < 0)
			goto out;
	}
	len = vtep_to_sa(family, remote, &sa);
	if (connect(fd, &sa.sa, len) == 0) {
		socklen_t ol = sizeof(mtu);

		if (getsockopt(fd, family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6, family == AF_INET ? IP_MTU : IPV6_MTU,
			       &mtu, &ol) < 0)
			mtu = 0;
	}
out:
	close(fd);
	return mtu > 0 ? (unsigned)mtu : 0;
#else
	(void)family, (void)local, (void)remote;
	return 0;
#endif
}

/* The MTU of the interface @dev, or of the one holding @local; 0 when neither is found. */
static unsigned underlay_mtu(int family, const struct vtep *local, const char *dev)
{
	char name[IF_NAMESIZE] = "";
	struct ifreq ifr;
	int fd, mtu = 0;

	if (dev && *dev) {
		sn_strlcpy(name, dev, sizeof(name));
	} else {
		struct ifaddrs *ifa, *i;

		if (getifaddrs(&ifa) < 0)
			return 0;
		for (i = ifa; i && !name[0]; i = i->ifa_next) {
			if (!i->ifa_addr || i->ifa_addr->sa_family != family)
				continue;
			if (family == AF_INET ? !memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr, local->a, 4)
					      : !memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, local->a, 16))
				sn_strlcpy(name, i->ifa_name, sizeof(name));
		}
		freeifaddrs(ifa);
		if (!name[0])
			return 0;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	sn_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	if (ioctl(fd, SIOCGIFMTU, &ifr) == 0)
		mtu = ifr.ifr_mtu;
	close(fd);
	/* an IP packet has at most 65535 bytes, whatever lo's MTU (65536) says */
	return mtu > 0 ? SN_MIN((unsigned)mtu, 65535u) : 0;
}

static void build_cmsg(struct tport *t)
{
	struct msghdr m = {.msg_control = t->cmsg.buf, .msg_controllen = sizeof(t->cmsg.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	size_t len = 0;
	int vals[2] = {t->ttl, t->tos};
	int types[2][2] = {{IPPROTO_IP, IP_TTL}, {IPPROTO_IP, IP_TOS}};

	if (t->family == AF_INET6) {
		types[0][0] = types[1][0] = IPPROTO_IPV6;
		types[0][1] = IPV6_HOPLIMIT;
		types[1][1] = IPV6_TCLASS;
	}
	memset(t->cmsg.buf, 0, sizeof(t->cmsg.buf));
	for (int k = 0; k < 2; k++) {
		if (vals[k] < 0 || len + CMSG_SPACE(sizeof(int)) > sizeof(t->cmsg.buf))
			continue;
		c->cmsg_level = types[k][0];
		c->cmsg_type = types[k][1];
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &vals[k], sizeof(int));
		len += CMSG_SPACE(sizeof(int));
		m.msg_controllen = len;
		c = (struct cmsghdr *)((uint8_t *)c + CMSG_SPACE(sizeof(int)));
	}
	t->cmsg_len = len;
}

/* remote=IP[:PORT][+IP[:PORT]]...: a SPEC key holds one value, so the list is one value, as
 * captures take ports=A+B. */
static int parse_remotes(struct tport *t, const char *text, struct sn_error *err)
{
	char buf[SN_SPEC_MAX_LEN];
	char *tok = buf;

	if (sn_strlcpy(buf, text, sizeof(buf)) < 0)
		return sn_error_set(err, -EINVAL, "bad value for key 'remote': too long");
	while (tok) {
		char *plus = strchr(tok, '+');
		struct vtep v;
		int r;

		if (plus)
			*plus = '\0';
		if (!*tok)
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'remote': an empty address", text);
		r = vtep_parse(tok, "remote", &t->family, t->dport, &v, err);
		if (r < 0)
			return r;
		r = flood_add(t, &v, err);
		if (r == -EEXIST)
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'remote': %s is there twice", text, tok);
		if (r < 0)
			return r;
		tok = plus ? plus + 1 : NULL;
	}
	t->nflood_spec = t->nflood;
	return 0;
}

static int tport_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			enum proto proto, struct sn_port **ret_port, struct sn_error *err)
{
	const char *local = sn_spec_get(spec, "local"), *remote = sn_spec_get(spec, "remote");
	const char *group = sn_spec_get(spec, "group"), *dev = sn_spec_get(spec, "dev");
	const char *kind = proto_name(proto);
	unsigned vni = 0, ttl = 0, tos = 0, ifindex = 0, pmtu, overhead;
	bool has_ttl = sn_spec_get(spec, "ttl") != NULL, has_tos = sn_spec_get(spec, "tos") != NULL;
	struct sn_port_conf c = *conf;
	struct tport *t;
	int r;

	if (!local)
		return sn_error_set(err, -EINVAL, "%s port needs key 'local' (IP[:PORT] to send from and listen on)",
				    kind);
	if (!sn_spec_get(spec, "vni"))
		return sn_error_set(err, -EINVAL, "%s port needs key 'vni' (0 to %u)", kind, VNI_MAX);
	r = sn_spec_get_uint(spec, "vni", 0, VNI_MAX, &vni, err);
	if (r < 0)
		return r;
	r = sn_spec_get_uint(spec, "ttl", 1, 255, &ttl, err);
	if (r < 0)
		return r;
	r = sn_spec_get_uint(spec, "tos", 0, 255, &tos, err);
	if (r < 0)
		return r;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->known = calloc(KNOWN_MAX, sizeof(*t->known));
	if (!t->known) {
		free(t);
		return -ENOMEM;
	}
	t->proto = proto;
	t->vni = vni;
	t->learning = true;
	t->ttl = has_ttl ? (int)ttl : -1;
	t->tos = has_tos ? (int)tos : -1;
	t->err_log = SN_RATELIMIT_INIT(LOG_INTERVAL);
	ev_timer_init(&t->ager, ager_cb, 1, 0);
	t->ager.data = t;
	ev_io_init(&t->wio, wio_cb, -1, EV_WRITE);
	t->wio.data = t;
	t->dport = proto == PROTO_VXLAN ? VXLAN_UDP_PORT : GENEVE_UDP_PORT;
	r = vtep_parse(local, "local", &t->family, t->dport, &t->local, err);
	if (r < 0)
		goto fail;
	if (vtep_is_multicast(t->family, &t->local)) {
		r = sn_error_set(err, -EINVAL, "bad value '%s' for key 'local': want a unicast address (a group is group=)",
				 local);
		goto fail;
	}
	t->dport = t->local.port; /* remotes listen where we do, unless they say otherwise */
	t->csum = t->family == AF_INET6;
	r = sn_spec_get_bool(spec, "udp-csum", &t->csum, err);
	if (r >= 0)
		r = sn_spec_get_bool(spec, "learning", &t->learning, err);
	if (r < 0)
		goto fail;
	if (group && remote) {
		r = sn_error_set(err, -EINVAL, "keys 'group' and 'remote' exclude each other: BUM frames go to the group");
		goto fail;
	}
	if (group && !dev) {
		r = sn_error_set(err, -EINVAL, "key 'group' needs key 'dev' (the interface to join the group on)");
		goto fail;
	}
	if (dev && !group) {
		r = sn_error_set(err, -EINVAL, "key 'dev' goes with 'group'");
		goto fail;
	}
	if (remote && (r = parse_remotes(t, remote, err)) < 0)
		goto fail;
	if (group) {
		r = vtep_parse(group, "group", &t->family, t->dport, &t->group, err);
		if (r < 0)
			goto fail;
		if (!vtep_is_multicast(t->family, &t->group)) {
			r = sn_error_set(err, -EINVAL, "bad value '%s' for key 'group': not a multicast address", group);
			goto fail;
		}
		if (sn_strlcpy(t->dev, dev, sizeof(t->dev)) < 0 || !(ifindex = if_nametoindex(dev))) {
			r = sn_error_set(err, -ENODEV, "bad value '%s' for key 'dev': no such interface", dev);
			goto fail;
		}
	}
	r = sn_spec_check_unused(spec, err);
	if (r < 0)
		goto fail;

	/* the inner MTU: the underlay's less what the tunnel adds, unless mtu= says. The underlay's
	 * is the route's to the first remote, else the interface's of dev= or of local= */
	overhead = t->family == AF_INET ? OVERHEAD4 : OVERHEAD6;
	pmtu = group || !t->nflood ? 0 : route_mtu(t->family, &t->local, &t->flood[0]);
	if (!pmtu)
		pmtu = underlay_mtu(t->family, &t->local, group ? dev : NULL);
	if (!c.mtu)
		c.mtu = (pmtu ? pmtu : 1500) - overhead;
	else if (pmtu && c.mtu + overhead > pmtu)
		sn_warn("%s port: mtu=%u needs an underlay MTU of %u, and its interface has %u: longer frames will "
			"be dropped (never fragmented)", kind, c.mtu, c.mtu + overhead, pmtu);
	r = sn_port_init(&t->base, sw, proto == PROTO_VXLAN ? &vxlan_ops : &geneve_ops, &c);
	if (r < 0)
		goto fail;
	r = rt_init(&t->rt, SN_MIN(SN_MAX(sn_port_fdb_max(&t->base), 1u), (uint32_t)RT_MAX));
	if (r < 0)
		goto fail;
	r = tsock_get(&t->base, proto, t->family, &t->local, false, 0, &t->local, "local", local, &t->us, err);
	if (r < 0)
		goto fail;
	r = tsock_want_tx(t->us, t->csum, &t->local);
	if (r < 0) {
		sn_error_set(err, r, "%s port: sending sockets on %s: %s", kind, local, strerror(-r));
		goto fail_sock;
	}
	if (vni_find(t->us, vni)) {
		r = sn_error_set(err, -EEXIST, "vni %u on %s belongs to port %s already", vni, local,
				 vni_find(t->us, vni)->base.name);
		goto fail_sock;
	}
	if (group) {
		r = tsock_get(&t->base, proto, t->family, &t->group, true, ifindex, &t->local, "group", group, &t->gs,
			      err);
		if (r < 0)
			goto fail_sock;
		if (vni_find(t->gs, vni)) {
			r = sn_error_set(err, -EEXIST, "vni %u on group %s belongs to port %s already", vni, group,
					 vni_find(t->gs, vni)->base.name);
			goto fail_sock;
		}
		if (t->ttl < 0) {
			/* Linux's default for a multicast underlay: the group stays on the link */
			int one = 1;

			if (t->family == AF_INET)
				setsockopt(t->gs->fd, IPPROTO_IP, IP_MULTICAST_TTL, &one, sizeof(one));
			else
				setsockopt(t->gs->fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &one, sizeof(one));
		}
	}
	build_cmsg(t);
	r = sn_port_want_buffers(&t->base, SN_MIN(sn_port_max_frame(&t->base) + (proto == PROTO_GENEVE ? GENEVE_OPT_MAX : 0),
						  SN_POOL_JUMBO_CAP));
	if (r < 0)
		goto fail_sock;
	r = sn_port_register(&t->base);
	if (r < 0)
		goto fail_sock;
	vni_link(t->us, t);
	if (t->gs)
		vni_link(t->gs, t);
	sn_port_set_state(&t->base, SN_PORT_UP);
	sn_info("port %s: %s vni %u on %s, mtu %u", t->base.name, kind, vni, local, t->base.mtu);
	*ret_port = &t->base;
	return 0;
fail_sock:
	tsock_put(t->gs);
	tsock_put(t->us);
	t->gs = t->us = NULL;
fail:
	tport_free(&t->base);
	return r;
}

static int vxlan_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			struct sn_port **ret_port, struct sn_error *err)
{
	return tport_create(sw, conf, spec, PROTO_VXLAN, ret_port, err);
}

static int geneve_create(struct sn_switch *sw, const struct sn_port_conf *conf, struct sn_spec *spec,
			 struct sn_port **ret_port, struct sn_error *err)
{
	return tport_create(sw, conf, spec, PROTO_GENEVE, ret_port, err);
}

static const char *const tunnel_keys[] = {"local", "vni", "remote", "group", "dev", "ttl", "tos", "udp-csum",
					  "learning", NULL};

const struct sn_port_kind sn_port_kind_vxlan = {
	.name = "vxlan",
	.usage = "vxlan,local=IP[:PORT],vni=N[,remote=IP[:PORT][+IP...]]  VXLAN tunnel (RFC 7348), UDP 4789\n"
		 "    [,group=MCAST,dev=IFNAME][,ttl=N][,tos=N][,udp-csum=on|off][,learning=on|off]",
	.keys = tunnel_keys,
	.create = vxlan_create,
};

const struct sn_port_kind sn_port_kind_geneve = {
	.name = "geneve",
	.usage = "geneve,local=IP[:PORT],vni=N[,remote=...]     Geneve tunnel (RFC 8926), UDP 6081; keys as vxlan",
	.keys = tunnel_keys,
	.create = geneve_create,
};

/* ---- control commands: tunnel show, tunnel flood add|del ---- */

static struct tport *next_tport(struct sn_switch *sw, struct tport *prev)
{
	struct sn_port *p;

	/* vxlan ports first, then geneve ports */
	if (!prev || prev->base.ops == &vxlan_ops) {
		p = sn_switch_next_port(sw, prev ? &prev->base : NULL, &vxlan_ops);
		if (p)
			return (struct tport *)p;
		prev = NULL;
	}
	p = sn_switch_next_port(sw, prev ? &prev->base : NULL, &geneve_ops);
	return p ? (struct tport *)p : NULL;
}

static int find_tport(struct sn_ctl_ctx *ctx, const char *name, struct tport **ret)
{
	struct sn_port *p = sn_switch_find_port(ctx->sw, name);

	if (!p)
		return sn_error_set(&ctx->err, -ENOENT, "no port called '%s'", name);
	if (!(*ret = tport_of(p)))
		return sn_error_set(&ctx->err, -EINVAL, "port %s is a %s port, not a tunnel port", name, p->ops->kind);
	return 0;
}

static void show_one(struct sn_ctl_ctx *ctx, struct tport *t, struct sn_table *tab)
{
	double now = ev_now(sn_port_loop(&t->base)), aging = sn_port_fdb_aging(&t->base);
	struct sn_tunnel_counters c;
	char a[64];

	sn_tunnel_get_counters(&t->base, &c);
	if (ctx->json) {
		sn_json_begin_object(ctx->j, NULL);
		sn_json_string(ctx->j, "name", t->base.name);
		sn_json_string(ctx->j, "kind", t->base.ops->kind);
		sn_json_uint(ctx->j, "vni", t->vni);
		vtep_format(t->family, &t->local, 0, a, sizeof(a));
		sn_json_string(ctx->j, "local", a);
		if (t->gs) {
			vtep_format(t->family, &t->group, t->dport, a, sizeof(a));
			sn_json_string(ctx->j, "group", a);
			sn_json_string(ctx->j, "dev", t->dev);
		}
		sn_json_bool(ctx->j, "learning", t->learning);
		sn_json_begin_array(ctx->j, "flood");
		for (unsigned i = 0; i < t->nflood; i++) {
			vtep_format(t->family, &t->flood[i], t->dport, a, sizeof(a));
			sn_json_string(ctx->j, NULL, a);
		}
		sn_json_end_array(ctx->j);
		sn_json_begin_object(ctx->j, "counters");
#define C(field) sn_json_uint(ctx->j, #field, c.field)
		C(short_packets);
		C(bad_header);
		C(unknown_vni);
		C(no_buffer);
		C(unknown_vtep);
		C(bad_options);
		C(critical);
		C(oam);
		C(learn_refused);
		C(no_remote);
		C(tx_errors);
		C(remotes);
#undef C
		sn_json_end_object(ctx->j);
		sn_json_begin_array(ctx->j, "remotes");
	}
	for (uint32_t i = 0; i <= t->rt.mask; i++) {
		const struct rt_entry *e = &t->rt.slots[i];
		uint8_t mac[6];
		uint16_t vlan;
		char m[18];

		if (!e->key || rt_expired(e, aging, now))
			continue;
		sn_fdb_key_mac(e->key, mac, &vlan);
		vlan = vlan_from_wire(t, vlan);
		snprintf(m, sizeof(m), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		vtep_format(t->family, &e->dst, t->dport, a, sizeof(a));
		if (ctx->json) {
			sn_json_begin_object(ctx->j, NULL);
			sn_json_string(ctx->j, "mac", m);
			sn_json_uint(ctx->j, "vlan", vlan);
			sn_json_string(ctx->j, "dst", a);
			sn_json_bool(ctx->j, "static", e->is_static);
			sn_json_decimal(ctx->j, "age", e->is_static ? 0 : now - e->seen, 3);
			sn_json_end_object(ctx->j);
			continue;
		}
		sn_table_cell(tab, "%s", t->base.name);
		sn_table_cell(tab, "%s", m);
		sn_table_cell(tab, "%u", vlan);
		sn_table_cell(tab, "%s", a);
		sn_table_cell(tab, "%s", e->is_static ? "static" : "learned");
		if (e->is_static) {
			sn_table_cell(tab, "-");
		} else {
			/* tenths by hand: printf's %f would follow an embedder's LC_NUMERIC */
			unsigned long long tenths = (unsigned long long)((now - e->seen) * 10 + 0.5);

			sn_table_cell(tab, "%llu.%llu", tenths / 10, tenths % 10);
		}
	}
	if (ctx->json) {
		sn_json_end_array(ctx->j);
		sn_json_end_object(ctx->j);
		return;
	}
	for (unsigned i = 0; i < t->nflood; i++) {
		vtep_format(t->family, &t->flood[i], t->dport, a, sizeof(a));
		sn_table_cell(tab, "%s", t->base.name);
		sn_table_cell(tab, "00:00:00:00:00:00");
		sn_table_cell(tab, "-");
		sn_table_cell(tab, "%s", a);
		sn_table_cell(tab, "flood");
		sn_table_cell(tab, "-");
	}
}

static int cmd_show(struct sn_ctl_ctx *ctx)
{
	static const char *const head[] = {"PORT", "MAC", ">VLAN", "DST", "TYPE", ">AGE"};
	struct sn_table tab = {.head = head, .ncol = SN_ARRAY_SIZE(head)};
	struct tport *only = NULL;
	int r;

	if (ctx->argc && (r = find_tport(ctx, ctx->argv[0], &only)) < 0)
		return r;
	if (ctx->json)
		sn_json_begin_array(ctx->j, "tunnels");
	for (struct tport *t = only ? only : next_tport(ctx->sw, NULL); t; t = only ? NULL : next_tport(ctx->sw, t))
		show_one(ctx, t, &tab);
	if (ctx->json) {
		sn_json_end_array(ctx->j);
		return 0;
	}
	sn_table_render(&tab, ctx->body);
	sn_table_free(&tab);
	return 0;
}

static int flood_common(struct sn_ctl_ctx *ctx, bool add)
{
	struct tport *t;
	struct vtep v;
	int r = find_tport(ctx, ctx->argv[0], &t), family;

	if (r < 0)
		return r;
	family = t->family;
	r = vtep_parse(ctx->argv[1], "remote", &family, t->dport, &v, &ctx->err);
	if (r < 0)
		return r;
	if (add)
		return flood_add(t, &v, &ctx->err);
	if (flood_del(t, &v) < 0)
		return sn_error_set(&ctx->err, -ENOENT, "%s is not on the flood list of %s", ctx->argv[1], t->base.name);
	return 0;
}

static int cmd_flood_add(struct sn_ctl_ctx *ctx)
{
	return flood_common(ctx, true);
}

static int cmd_flood_del(struct sn_ctl_ctx *ctx)
{
	return flood_common(ctx, false);
}

static const struct sn_ctl_cmd tunnel_cmds[] = {
	{"tunnel show", "[PORT]", "tunnel ports: where each MAC's frames go, and the flood lists", 0, 1, cmd_show},
	{"tunnel flood add", "PORT IP[:PORT]", "replicate BUM frames to one more remote (head-end replication)", 2,
	 2, cmd_flood_add},
	{"tunnel flood del", "PORT IP[:PORT]", "take a remote off the flood list", 2, 2, cmd_flood_del},
};

const struct sn_ctl_cmds sn_vxlan_ctl_cmds = {tunnel_cmds, SN_ARRAY_SIZE(tunnel_cmds)};
