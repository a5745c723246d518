/* test-vxlan.c - the vxlan and geneve port kinds against remote VTEPs played by plain UDP
 * sockets on loopback addresses.
 *
 * The switch has a tunnel port on 127.0.0.1:P and a station, a fake port that records what the
 * switch sends it. The remotes are UDP sockets bound to 127.0.0.2:P and 127.0.0.3:P (the port
 * sends learned MACs' frames to the tunnel's own UDP port on their VTEP's address, as Linux
 * does), and 127.0.0.4:P plays a VTEP nobody configured. Datagrams go over the real sockets,
 * through the port's recvmmsg() and sendmmsg(); ev_run(EVRUN_NOWAIT) with a short wait lets
 * the loop read and flush. Checked byte by byte: the header on the wire, the inner frame
 * delivered, the counters of what was refused, and where unicast goes once a MAC is learned or
 * pinned. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "ports/vxlan.h"
#include "util.h"

#include "sn-check.h"

#define POOL 512

struct station {
	struct sn_port base;
	uint32_t got;
	uint8_t last[SN_POOL_STD_CAP];
	uint32_t last_len;
};

static struct ev_loop *loop;
static struct sn_switch *sw;
static struct station *st;
static struct sn_port *vx;
static uint16_t port_p;              /* the tunnel's UDP port on every address */
static int r2 = -1, r3 = -1, r4 = -1; /* remotes 127.0.0.2, .3 and an unknown one, .4 */

static void station_flush(struct sn_port *port)
{
	struct station *s = (struct station *)port;
	uint32_t n = sn_txq_len(&port->txq);

	if (n == 0)
		return;
	s->last_len = sn_txq_peek(&port->txq, n - 1)->len;
	memcpy(s->last, sn_txq_peek(&port->txq, n - 1)->data, s->last_len);
	s->got += n;
	sn_txq_sent(port, n);
}

static const struct sn_port_ops station_ops = {
	.kind = "station",
	.flush = station_flush,
};

static struct sockaddr_in sa4(const char *ip, uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};

	ck_assert_int_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	return a;
}

static int udp_bound(const char *ip, uint16_t port)
{
	struct sockaddr_in a = sa4(ip, port);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	ck_assert_int_ge(fd, 0);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A UDP port free on 127.0.0.1 to 127.0.0.5. */
static uint16_t free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		int fd = udp_bound("127.0.0.1", 0), ok = 1;
		struct sockaddr_in a;
		socklen_t len = sizeof(a);
		uint16_t p;

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
		p = ntohs(a.sin_port);
		close(fd);
		for (int i = 1; i <= 5 && ok; i++) {
			char ip[16];

			snprintf(ip, sizeof(ip), "127.0.0.%d", i);
			fd = udp_bound(ip, p);
			ok = fd >= 0;
			if (fd >= 0)
				close(fd);
		}
		if (ok)
			return p;
	}
	ck_abort_msg("no free UDP port");
	return 0;
}

static void settle(void)
{
	/* a datagram on loopback is in the receiver's queue when sendto() returns */
	for (int i = 0; i < 3; i++)
		ev_run(loop, EVRUN_NOWAIT);
}

static void setup_with(double aging, unsigned port_max)
{
	struct sn_switch_config cfg;
	struct sn_port_conf c = {.name = "st"};

	sn_switch_config_init(&cfg);
	cfg.pool_frames = POOL;
	cfg.jumbo_frames = 4;
	cfg.txq_len = 256;
	cfg.fdb_aging = aging;
	cfg.fdb_port_max = port_max;
	loop = ev_loop_new(0);
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &sw), 0);
	st = calloc(1, sizeof(*st));
	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(sn_port_init(&st->base, sw, &station_ops, &c), 0);
	ck_assert_int_eq(sn_port_register(&st->base), 0);
	sn_port_set_state(&st->base, SN_PORT_UP);
	port_p = free_port();
	r2 = udp_bound("127.0.0.2", port_p);
	r3 = udp_bound("127.0.0.3", port_p);
	r4 = udp_bound("127.0.0.4", port_p);
	ck_assert(r2 >= 0 && r3 >= 0 && r4 >= 0);
	vx = NULL;
}

static void setup(void)
{
	setup_with(300, 0);
}

static void teardown(void)
{
	sn_switch_destroy(sw);
	ev_loop_destroy(loop);
	close(r2);
	close(r3);
	close(r4);
	sw = NULL;
	loop = NULL;
}

/* Adds a port from @fmt, where %u is the tunnel's UDP port; returns 0 or the error. */
static int add(const char *fmt, char *errbuf, size_t len)
{
	char spec[512], name[SN_PORT_NAME_MAX];
	struct sn_error err = {{0}};
	int r;

	/* each %u is the tunnel's UDP port */
	size_t o = 0;

	for (const char *p = fmt; *p && o + 8 < sizeof(spec); p++) {
		if (p[0] == '%' && p[1] == 'u') {
			o += (size_t)snprintf(spec + o, sizeof(spec) - o, "%u", port_p);
			p++;
		} else {
			spec[o++] = *p;
		}
	}
	spec[o] = '\0';
	r = sn_switch_add_port(sw, spec, name, sizeof(name), &err);
	if (errbuf)
		snprintf(errbuf, len, "%s", err.msg);
	if (r == 0 && !vx)
		vx = sn_switch_find_port(sw, name);
	return r;
}

static void add_ok(const char *fmt)
{
	char err[256];
	int r = add(fmt, err, sizeof(err));

	ck_assert_msg(r == 0, "%s: %s", fmt, err);
}

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t mac_st[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x01};
static const uint8_t mac_m[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x22};
static const uint8_t mac_n[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x33};

static uint32_t frame(uint8_t *buf, const uint8_t dst[6], const uint8_t src[6], uint32_t len, uint8_t seed)
{
	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	sn_put_be16(buf + 12, 0x88b5);
	for (uint32_t i = 14; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + seed);
	return len;
}

/* The station sends a frame into the switch. */
static void station_send(const uint8_t dst[6], const uint8_t src[6], uint32_t len, uint8_t seed)
{
	struct sn_frame *f = sn_port_frame_get(&st->base, len);

	ck_assert_ptr_nonnull(f);
	f->len = frame(f->data, dst, src, len, seed);
	sn_port_input(&st->base, &f, 1);
	settle();
}

static size_t vxlan_pkt(uint8_t *buf, uint32_t flags, uint32_t vni, uint8_t rsvd, const uint8_t dst[6],
			const uint8_t src[6], uint32_t len, uint8_t seed)
{
	sn_put_be32(buf, flags);
	sn_put_be32(buf + 4, vni << 8 | rsvd);
	return 8 + frame(buf + 8, dst, src, len, seed);
}

/* A remote sends @len bytes to the tunnel's socket. */
static void remote_send(int fd, const uint8_t *pkt, size_t len)
{
	struct sockaddr_in to = sa4("127.0.0.1", port_p);

	ck_assert_int_eq(sendto(fd, pkt, len, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)len);
	settle();
}

/* The next datagram @fd received, or -1 when none is there. */
static ssize_t remote_recv(int fd, uint8_t *buf, size_t cap, struct sockaddr_in *from)
{
	socklen_t flen = sizeof(*from);
	ssize_t n;

	n = recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)from, &flen);
	return n;
}

static unsigned drain(int fd)
{
	uint8_t buf[2048];
	struct sockaddr_in from;
	unsigned n = 0;

	while (remote_recv(fd, buf, sizeof(buf), &from) >= 0)
		n++;
	return n;
}

static struct sn_tunnel_counters counters(void)
{
	struct sn_tunnel_counters c;

	ck_assert_int_eq(sn_tunnel_get_counters(vx, &c), 0);
	return c;
}

static struct sn_switch_stats stats(void)
{
	struct sn_switch_stats s;

	sn_switch_get_stats(sw, &s);
	return s;
}

/* ---- tests ---- */

START_TEST(broadcast_replicated_to_each_remote)
{
	uint8_t buf[2048], want[2048];
	struct sockaddr_in from;
	int fds[2] = {r2, r3};

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2+127.0.0.3");
	station_send(bcast, mac_st, 100, 1);
	frame(want, bcast, mac_st, 100, 1);
	for (int i = 0; i < 2; i++) {
		ssize_t n = remote_recv(fds[i], buf, sizeof(buf), &from);

		ck_assert_int_eq(n, 108);
		/* RFC 7348: flags 0x08 (I), reserved zero, VNI, reserved zero */
		ck_assert_int_eq(memcmp(buf, "\x08\x00\x00\x00\x00\x00\x2a\x00", 8), 0);
		ck_assert_int_eq(memcmp(buf + 8, want, 100), 0);
		ck_assert_int_eq(from.sin_addr.s_addr, htonl(0x7f000001));
		/* from one of the sending sockets, in Linux's source port range */
		ck_assert_int_ge(ntohs(from.sin_port), 32768);
		ck_assert_int_le(ntohs(from.sin_port), 60999);
		ck_assert_uint_eq(drain(fds[i]), 0);
	}
	ck_assert_uint_eq(drain(r4), 0);
	ck_assert_uint_eq(vx->stats.tx_frames, 1);
}
END_TEST

START_TEST(decap_learn_and_unicast)
{
	uint8_t pkt[2048], buf[2048], want[2048];
	struct sockaddr_in from;
	size_t n;

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2+127.0.0.3");
	/* M behind 127.0.0.3 says hello: the station gets the inner frame */
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 80, 5);
	remote_send(r3, pkt, n);
	ck_assert_uint_eq(st->got, 1);
	ck_assert_uint_eq(st->last_len, 80);
	frame(want, bcast, mac_m, 80, 5);
	ck_assert_int_eq(memcmp(st->last, want, 80), 0);
	ck_assert_uint_eq(counters().remotes, 1);
	/* the answer goes to 127.0.0.3 only */
	station_send(mac_m, mac_st, 64, 9);
	ck_assert_uint_eq(drain(r2), 0);
	ck_assert_int_eq(remote_recv(r3, buf, sizeof(buf), &from), 72);
	frame(want, mac_m, mac_st, 64, 9);
	ck_assert_int_eq(memcmp(buf + 8, want, 64), 0);
	/* an unknown MAC floods to both */
	station_send(mac_n, mac_st, 64, 9);
	ck_assert_uint_eq(drain(r2), 1);
	ck_assert_uint_eq(drain(r3), 1);
	/* M moves behind 127.0.0.2 */
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 80, 5);
	remote_send(r2, pkt, n);
	drain(r3);
	station_send(mac_m, mac_st, 64, 9);
	ck_assert_uint_eq(drain(r2), 1);
	ck_assert_uint_eq(drain(r3), 0);
	ck_assert_uint_eq(vx->stats.rx_frames, 2);
}
END_TEST

/* Each malformed header is counted where it belongs and nothing reaches the station; a good
 * datagram afterwards still goes through. */
START_TEST(strict_headers)
{
	uint8_t pkt[2048];
	size_t n;
	struct sn_tunnel_counters c;

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2");
	n = vxlan_pkt(pkt, 0x0c000000, 42, 0, bcast, mac_m, 60, 0); /* another flag (GPE's P) */
	remote_send(r2, pkt, n);
	n = vxlan_pkt(pkt, 0x08000001, 42, 0, bcast, mac_m, 60, 0); /* a reserved bit */
	remote_send(r2, pkt, n);
	n = vxlan_pkt(pkt, 0x00000000, 42, 0, bcast, mac_m, 60, 0); /* no I flag */
	remote_send(r2, pkt, n);
	n = vxlan_pkt(pkt, 0x08000000, 42, 1, bcast, mac_m, 60, 0); /* the last reserved byte */
	remote_send(r2, pkt, n);
	remote_send(r2, pkt, 7);                                     /* shorter than the header */
	remote_send(r2, pkt, 0);
	n = vxlan_pkt(pkt, 0x08000000, 43, 0, bcast, mac_m, 60, 0); /* nobody's VNI */
	remote_send(r2, pkt, n);
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 10, 0); /* an inner runt */
	remote_send(r2, pkt, n);
	c = counters();
	ck_assert_uint_eq(c.bad_header, 4);
	ck_assert_uint_eq(c.short_packets, 2);
	ck_assert_uint_eq(c.unknown_vni, 1);
	ck_assert_uint_eq(vx->stats.drop_runt, 1);
	ck_assert_uint_eq(st->got, 0);
	ck_assert_uint_eq(c.remotes, 0);
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 60, 0);
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(st->got, 1);
}
END_TEST

START_TEST(learning_off_refuses_unknown_vteps)
{
	uint8_t pkt[2048];
	size_t n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 60, 0);

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2,learning=off");
	remote_send(r4, pkt, n);
	ck_assert_uint_eq(counters().unknown_vtep, 1);
	ck_assert_uint_eq(st->got, 0);
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(st->got, 1);
	/* a VTEP sends from whatever source port its flow hash picks: its address is what counts */
	{
		int eph = udp_bound("127.0.0.2", 0);

		ck_assert_int_ge(eph, 0);
		remote_send(eph, pkt, n);
		close(eph);
		ck_assert_uint_eq(counters().unknown_vtep, 1);
		ck_assert_uint_eq(st->got, 2);
		st->got = 1;
	}
	/* accepted, not learned: a frame for M still goes to the flood list */
	ck_assert_uint_eq(counters().remotes, 0);
	/* a pinned MAC's VTEP is known too */
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_n, 0, "vx", "127.0.0.4", NULL), 0);
	remote_send(r4, pkt, n);
	ck_assert_uint_eq(st->got, 2);
	ck_assert_uint_eq(counters().unknown_vtep, 1);
	ck_assert_int_eq(sn_switch_fdb_del(sw, mac_n, 0), 0);
	remote_send(r4, pkt, n);
	ck_assert_uint_eq(counters().unknown_vtep, 2);
}
END_TEST

static int fdb_dst_visit(const struct sn_fdb_info *e, void *ctx)
{
	char *out = ctx;

	if (!memcmp(e->mac, mac_m, 6))
		snprintf(out, 64, "%s %s %s", e->port, e->is_static ? "static" : "dynamic", e->dst ? e->dst : "-");
	return 0;
}

START_TEST(static_pins)
{
	uint8_t pkt[2048];
	char seen[64] = "";
	struct sn_error err;
	size_t n;

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2+127.0.0.3");
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_m, 0, "vx", "127.0.0.3", &err), 0);
	sn_switch_foreach_fdb(sw, fdb_dst_visit, seen);
	ck_assert_str_eq(seen, "vx static 127.0.0.3");
	station_send(mac_m, mac_st, 64, 1);
	ck_assert_uint_eq(drain(r2), 0);
	ck_assert_uint_eq(drain(r3), 1);
	/* M showing up behind 127.0.0.2 moves neither the pin nor the switch's static entry */
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 60, 0);
	remote_send(r2, pkt, n);
	station_send(mac_m, mac_st, 64, 1);
	ck_assert_uint_eq(drain(r2), 0);
	ck_assert_uint_eq(drain(r3), 1);
	/* deleting the entry lets go of the pin: M is unknown again and floods */
	ck_assert_int_eq(sn_switch_fdb_del(sw, mac_m, 0), 0);
	ck_assert_uint_eq(counters().remotes, 0);
	station_send(mac_m, mac_st, 64, 1);
	ck_assert_uint_eq(drain(r2), 1);
	ck_assert_uint_eq(drain(r3), 1);
	/* what is refused, and why */
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_m, 0, "st", "127.0.0.3", &err), -EOPNOTSUPP);
	ck_assert_ptr_nonnull(strstr(err.msg, "tunnel"));
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_m, 0, "nosuch", "127.0.0.3", &err), -ENOENT);
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_m, 0, "vx", "fd00::1", &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "IPv4"));
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_m, 0, "vx", "239.1.1.1", &err), -EINVAL);
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_m, 0, "vx", "nonsense", &err), -EINVAL);
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, bcast, 0, "vx", "127.0.0.3", &err), -EINVAL);
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_m, 4096, "vx", "127.0.0.3", &err), -EINVAL);
	ck_assert_uint_eq(counters().remotes, 0);
	/* a pin with a port of its own */
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_m, 0, "vx", "127.0.0.3:9", &err), 0);
	sn_switch_foreach_fdb(sw, fdb_dst_visit, seen);
	ck_assert_str_eq(seen, "vx static 127.0.0.3:9");
}
END_TEST

/* A VNI as one VLAN of the switch (vlan=10: access): frames cross the tunnel untagged, the
 * station sees them in VLAN 10, and pins name the switch's VLAN. */
START_TEST(vni_as_a_vlan)
{
	uint8_t pkt[2048], buf[2048];
	struct sockaddr_in from;
	struct sn_error err;
	char seen[64] = "";
	size_t n;

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2+127.0.0.3,vlan=10,mtu=1500");
	/* untagged on the tunnel: tagged 10 at the (transparent) station */
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 60, 0);
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(st->got, 1);
	ck_assert_uint_eq(sn_get_be16(st->last + 12), 0x8100);
	ck_assert_uint_eq(sn_get_be16(st->last + 14) & 0xfff, 10);
	/* learned under the tunnel's VLAN, found under the switch's */
	sn_switch_foreach_fdb(sw, fdb_dst_visit, seen);
	ck_assert_str_eq(seen, "vx dynamic 127.0.0.2");
	/* the station's frame in VLAN 10 leaves untagged, to M's VTEP only */
	{
		struct sn_frame *f = sn_port_frame_get(&st->base, 64);

		memcpy(f->data, mac_m, 6);
		memcpy(f->data + 6, mac_st, 6);
		sn_put_be16(f->data + 12, 0x8100);
		sn_put_be16(f->data + 14, 10);
		sn_put_be16(f->data + 16, 0x88b5);
		memset(f->data + 18, 0x5a, 46);
		f->len = 64;
		sn_port_input(&st->base, &f, 1);
		settle();
	}
	ck_assert_int_eq(remote_recv(r2, buf, sizeof(buf), &from), 8 + 60);
	ck_assert_uint_eq(sn_get_be16(buf + 8 + 12), 0x88b5);
	ck_assert_uint_eq(drain(r3), 0);
	/* pins name the switch's VLAN: 10 is carried, 7 is not */
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_n, 10, "vx", "127.0.0.3", &err), 0);
	ck_assert_int_eq(sn_switch_fdb_add_dst(sw, mac_n, 7, "vx", "127.0.0.3", &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "VLAN 7"));
	ck_assert_uint_eq(counters().remotes, 2);
	ck_assert_int_eq(sn_switch_fdb_del(sw, mac_n, 10), 0);
	ck_assert_uint_eq(counters().remotes, 1);
}
END_TEST

START_TEST(table_cap_counts_refusals)
{
	uint8_t pkt[2048], mac[6] = {0x52, 0x54, 0x00, 0x00, 0x01, 0x00};

	teardown();
	setup_with(300, 4);
	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2");
	for (int i = 0; i < 6; i++) {
		size_t n;

		mac[5] = (uint8_t)i;
		n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac, 60, 0);
		remote_send(r2, pkt, n);
	}
	ck_assert_uint_eq(counters().remotes, 4);
	ck_assert_uint_eq(counters().learn_refused, 2);
	ck_assert_uint_eq(st->got, 6); /* refused learning, not refused frames */
}
END_TEST

START_TEST(learned_entries_age)
{
	uint8_t pkt[2048];
	size_t n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 60, 0);

	teardown();
	setup_with(0.2, 0);
	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2+127.0.0.3");
	remote_send(r3, pkt, n);
	station_send(mac_m, mac_st, 64, 1);
	ck_assert_uint_eq(drain(r2), 0);
	ck_assert_uint_eq(drain(r3), 1);
	usleep(300 * 1000);
	ev_now_update(loop);
	/* expired is a miss at once, before the ager runs */
	station_send(mac_m, mac_st, 64, 1);
	ck_assert_uint_eq(drain(r2), 1);
	ck_assert_uint_eq(drain(r3), 1);
	ev_run(loop, EVRUN_ONCE);
	settle();
	ck_assert_uint_eq(counters().remotes, 0);
}
END_TEST

START_TEST(no_remote_is_counted)
{
	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42");
	station_send(bcast, mac_st, 64, 1);
	ck_assert_uint_eq(counters().no_remote, 1);
	ck_assert_uint_eq(vx->stats.tx_frames, 0);
	ck_assert_uint_eq(sn_txq_len(&vx->txq), 0);
}
END_TEST

START_TEST(vnis_share_a_socket)
{
	uint8_t pkt[2048];
	struct sn_port *vx43;
	char err[256];
	size_t n;

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2");
	add_ok("vxlan,name=vx43,local=127.0.0.1:%u,vni=43,remote=127.0.0.3");
	vx43 = sn_switch_find_port(sw, "vx43");
	ck_assert_ptr_nonnull(vx43);
	n = vxlan_pkt(pkt, 0x08000000, 43, 0, bcast, mac_m, 60, 0);
	remote_send(r3, pkt, n);
	ck_assert_uint_eq(vx43->stats.rx_frames, 1);
	ck_assert_uint_eq(vx->stats.rx_frames, 0);
	/* the station's broadcast goes out through both; each to its own remote with its VNI */
	drain(r2);
	drain(r3);
	station_send(bcast, mac_st, 64, 1);
	{
		uint8_t buf[256];
		struct sockaddr_in from;

		ck_assert_int_eq(remote_recv(r2, buf, sizeof(buf), &from), 72);
		ck_assert_uint_eq(buf[6], 42);
		ck_assert_int_eq(remote_recv(r3, buf, sizeof(buf), &from), 72);
		ck_assert_uint_eq(buf[6], 43);
	}
	/* a VNI once per socket */
	ck_assert_int_eq(add("vxlan,name=dup,local=127.0.0.1:%u,vni=43", err, sizeof(err)), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "vx43"));
	/* deleting one leaves the other working on the shared socket */
	ck_assert_int_eq(sn_switch_del_port(sw, "vx"), 0);
	settle();
	remote_send(r3, pkt, n);
	ck_assert_uint_eq(vx43->stats.rx_frames, 2);
}
END_TEST

START_TEST(flows_keep_their_source_port)
{
	uint8_t f[128], buf[256];
	struct sockaddr_in from;
	unsigned ports[64];
	unsigned distinct = 0;

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2");
	for (int i = 0; i < 64; i++) {
		struct sn_frame *fr = sn_port_frame_get(&st->base, 64);
		uint8_t dst[6] = {0x52, 0x54, 0x00, 0x00, 0x02, (uint8_t)i};

		/* IPv4/UDP flows 10.0.0.1:1000+i -> 10.0.0.2:53 */
		memset(f, 0, sizeof(f));
		memcpy(f, dst, 6);
		memcpy(f + 6, mac_st, 6);
		sn_put_be16(f + 12, 0x0800);
		f[14] = 0x45;
		f[23] = 17;
		sn_put_be32(f + 26, 0x0a000001);
		sn_put_be32(f + 30, 0x0a000002);
		sn_put_be16(f + 34, (uint16_t)(1000 + i));
		sn_put_be16(f + 36, 53);
		memcpy(fr->data, f, 64);
		fr->len = 64;
		sn_port_input(&st->base, &fr, 1);
		settle();
		ck_assert_int_eq(remote_recv(r2, buf, sizeof(buf), &from), 72);
		ports[i] = ntohs(from.sin_port);
		for (int j = 0; j < i; j++)
			if (ports[j] == ports[i])
				goto seen;
		distinct++;
seen:;
	}
	ck_assert_uint_ge(distinct, 4); /* 64 flows over 8 sockets */
	/* the same flow again: the same source port */
	{
		struct sn_frame *fr = sn_port_frame_get(&st->base, 64);

		sn_put_be16(f + 34, 1000);
		f[5] = 0;
		memcpy(fr->data, f, 64);
		fr->len = 64;
		sn_port_input(&st->base, &fr, 1);
		settle();
		ck_assert_int_eq(remote_recv(r2, buf, sizeof(buf), &from), 72);
		ck_assert_uint_eq(ntohs(from.sin_port), ports[0]);
	}
}
END_TEST

static size_t geneve_pkt(uint8_t *buf, uint8_t b0, uint8_t b1, uint16_t proto, uint32_t vni, const uint8_t *opts,
			 size_t optlen, uint32_t len)
{
	buf[0] = b0;
	buf[1] = b1;
	sn_put_be16(buf + 2, proto);
	sn_put_be32(buf + 4, vni << 8);
	if (optlen)
		memcpy(buf + 8, opts, optlen);
	return 8 + optlen + frame(buf + 8 + optlen, bcast, mac_m, len, 3);
}

START_TEST(geneve_options)
{
	/* class 0x0101, type 0x01, 1 word of data; then class 0xffff type 0x02 with none */
	static const uint8_t opts[] = {0x01, 0x01, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0x02, 0x00};
	static const uint8_t crit[] = {0x01, 0x01, 0x81, 0x00};
	static const uint8_t longopt[] = {0x01, 0x01, 0x01, 0x02, 0, 0, 0, 0};
	uint8_t pkt[2048], want[2048], buf[256];
	struct sockaddr_in from;
	struct sn_tunnel_counters c;
	size_t n;

	add_ok("geneve,name=gn,local=127.0.0.1:%u,vni=7,remote=127.0.0.2,mtu=1500");
	n = geneve_pkt(pkt, 3, 0, 0x6558, 7, opts, sizeof(opts), 70); /* 3 words of options */
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(st->got, 1);
	ck_assert_uint_eq(st->last_len, 70);
	frame(want, bcast, mac_m, 70, 3);
	ck_assert_int_eq(memcmp(st->last, want, 70), 0);
	n = geneve_pkt(pkt, 0, 0, 0x6558, 7, NULL, 0, 70); /* none */
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(st->got, 2);
	n = geneve_pkt(pkt, 0, 0x3f, 0x6558, 7, NULL, 0, 70); /* reserved bits are ignored */
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(st->got, 3);

	n = geneve_pkt(pkt, 1, 0, 0x6558, 7, crit, sizeof(crit), 70);   /* a critical option */
	remote_send(r2, pkt, n);
	n = geneve_pkt(pkt, 0, 0x40, 0x6558, 7, NULL, 0, 70);          /* the C bit */
	remote_send(r2, pkt, n);
	n = geneve_pkt(pkt, 0, 0x80, 0x6558, 7, NULL, 0, 70);          /* a control packet */
	remote_send(r2, pkt, n);
	n = geneve_pkt(pkt, 0x40, 0, 0x6558, 7, NULL, 0, 70);          /* version 1 */
	remote_send(r2, pkt, n);
	n = geneve_pkt(pkt, 0, 0, 0x0800, 7, NULL, 0, 70);             /* an IPv4 payload */
	remote_send(r2, pkt, n);
	n = geneve_pkt(pkt, 2, 0, 0x6558, 7, longopt, sizeof(longopt), 70); /* an option past the list */
	remote_send(r2, pkt, n);
	n = geneve_pkt(pkt, 63, 0, 0x6558, 7, NULL, 0, 70);            /* options longer than the packet */
	remote_send(r2, pkt, 8 + 40);
	c = counters();
	ck_assert_uint_eq(c.critical, 2);
	ck_assert_uint_eq(c.oam, 1);
	ck_assert_uint_eq(c.bad_header, 2);
	ck_assert_uint_eq(c.bad_options, 2);
	ck_assert_uint_eq(st->got, 3);
	/* and what goes out: version 0, no options, 0x6558, the VNI */
	station_send(bcast, mac_st, 64, 1);
	ck_assert_int_eq(remote_recv(r2, buf, sizeof(buf), &from), 72);
	ck_assert_int_eq(memcmp(buf, "\x00\x00\x65\x58\x00\x00\x07\x00", 8), 0);
	(void)n;
}
END_TEST

/* On lo the inner MTU is 65485, and Geneve's room for options on top of that once asked for
 * buffers larger than the pool has: every datagram was dropped as no_buffer. */
START_TEST(geneve_on_a_jumbo_underlay)
{
	uint8_t pkt[2048];
	size_t n = geneve_pkt(pkt, 0, 0, 0x6558, 7, NULL, 0, 70);

	add_ok("geneve,name=gn,local=127.0.0.1:%u,vni=7,remote=127.0.0.2");
	ck_assert_uint_eq(vx->mtu, 65535 - 50);
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(counters().no_buffer, 0);
	ck_assert_uint_eq(st->got, 1);
}
END_TEST

START_TEST(inner_mtu)
{
	uint8_t pkt[4096];
	size_t n;

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2,mtu=1400");
	ck_assert_uint_eq(vx->mtu, 1400);
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 1414, 0);
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(st->got, 1);
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 1415, 0);
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(st->got, 1);
	ck_assert_uint_eq(vx->stats.drop_oversize, 1);
	/* longer than the receive buffer: cut by the kernel, counted on the VNI's port */
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 3000, 0);
	remote_send(r2, pkt, n);
	ck_assert_uint_eq(vx->stats.drop_oversize, 2);
	/* and on the way out */
	station_send(bcast, mac_st, 1415, 0);
	ck_assert_uint_eq(drain(r2), 0);
	ck_assert_uint_eq(vx->stats.drop_oversize, 3);
}
END_TEST

START_TEST(default_mtu_follows_the_underlay)
{
	char err[256];

	/* 127.0.0.1 is on lo (MTU 65536, but no IP packet is longer than 65535): 65485 is left */
	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42");
	ck_assert_uint_eq(vx->mtu, 65535 - 50);
	/* 127.0.0.5 is no interface's own address, yet the route to the remote goes over lo: the
	 * path's MTU counts, or two ends of one tunnel disagree (1450 against 65485) */
	ck_assert_int_eq(add("vxlan,name=vx3,local=127.0.0.5:%u,vni=3,remote=127.0.0.3", err, sizeof(err)), 0);
	ck_assert_uint_eq(sn_switch_find_port(sw, "vx3")->mtu, 65535 - 50);
	/* over IPv6 the tunnel takes 70 */
	ck_assert_int_eq(add("vxlan,name=v6,local=[::1]:%u,vni=1", err, sizeof(err)), 0);
	ck_assert_uint_eq(sn_switch_find_port(sw, "v6")->mtu, 65535 - 70);
}
END_TEST

START_TEST(spec_errors)
{
	static const struct {
		const char *spec, *word;
		int code;
	} cases[] = {
		{"vxlan,vni=1", "'local'", -EINVAL},
		{"vxlan,local=127.0.0.1:%u", "'vni'", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=16777216", "vni", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=x", "vni", -EINVAL},
		{"vxlan,local=nowhere,vni=1", "local", -EINVAL},
		{"vxlan,local=127.0.0.1:0,vni=1", "local", -EINVAL},
		{"vxlan,local=127.0.0.1:70000,vni=1", "local", -EINVAL},
		{"vxlan,local=239.1.1.1,vni=1", "unicast", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,remote=127.0.0.2+", "remote", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,remote=127.0.0.2+127.0.0.2", "twice", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,remote=[::1]", "IPv4", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,remote=239.1.1.1", "group=", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,group=239.1.1.1", "'dev'", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,group=239.1.1.1,dev=lo,remote=127.0.0.2", "exclude", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,group=10.0.0.1,dev=lo", "multicast", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,group=239.1.1.1,dev=nosuch0", "no such interface", -ENODEV},
		{"vxlan,local=127.0.0.1:%u,vni=1,dev=lo", "'group'", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,ttl=0", "ttl", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,tos=256", "tos", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,learning=maybe", "learning", -EINVAL},
		{"vxlan,local=127.0.0.1:%u,vni=1,listen=x", "listen", -EINVAL},
		{"vxlan,local=192.0.2.1:%u,vni=1", "no interface", -EADDRNOTAVAIL},
	};
	char err[256];

	for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
		int r = add(cases[i].spec, err, sizeof(err));

		ck_assert_msg(r == cases[i].code, "%s: %d (%s), want %d", cases[i].spec, r, err, cases[i].code);
		ck_assert_msg(strstr(err, cases[i].word), "%s: '%s' does not name %s", cases[i].spec, err,
			      cases[i].word);
	}
	/* one socket per address and port: another program's is refused with a hint */
	ck_assert_int_eq(add("vxlan,local=127.0.0.2:%u,vni=1", err, sizeof(err)), -EADDRINUSE);
	ck_assert_ptr_nonnull(strstr(err, "in use"));
	/* nothing was left behind by the failures */
	ck_assert_uint_eq(stats().ports, 1);
}
END_TEST

START_TEST(ipv6_and_ttl)
{
	int r = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = 0, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	struct sockaddr_in6 from;
	socklen_t alen = sizeof(a);
	uint8_t buf[256];
	char spec[256];
	int on = 1, hops = -1;
	struct msghdr m;
	struct iovec iov = {buf, sizeof(buf)};
	struct {
		_Alignas(struct cmsghdr) uint8_t buf[256];
	} ctl;
	ssize_t n;

	ck_assert_int_ge(r, 0);
	ck_assert_int_eq(bind(r, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(r, (struct sockaddr *)&a, &alen), 0);
	setsockopt(r, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof(on));
	/* local [::1]:P, the remote [::1]:R: a remote's own port */
	snprintf(spec, sizeof(spec), "vxlan,name=vx,local=[::1]:%u,vni=42,remote=[::1]:%u,ttl=7", port_p,
		 ntohs(a.sin6_port));
	ck_assert_int_eq(sn_switch_add_port(sw, spec, NULL, 0, NULL), 0);
	vx = sn_switch_find_port(sw, "vx");
	station_send(bcast, mac_st, 64, 1);
	m = (struct msghdr){.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
	n = recvmsg(r, &m, MSG_DONTWAIT);
	ck_assert_int_eq(n, 72);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)
			memcpy(&hops, CMSG_DATA(c), sizeof(hops));
	ck_assert_int_eq(hops, 7);
	ck_assert_int_eq(memcmp(buf, "\x08\x00\x00\x00\x00\x00\x2a\x00", 8), 0);
	/* and back: datagrams from an IPv6 remote */
	{
		uint8_t pkt[256];
		size_t len = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 60, 0);
		struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(port_p),
					  .sin6_addr = IN6ADDR_LOOPBACK_INIT};

		ck_assert_int_eq(sendto(r, pkt, len, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)len);
		settle();
		ck_assert_uint_eq(st->got, 1);
	}
	close(r);
}
END_TEST

/* The fuzz target's way in: the same processing without a socket. */
START_TEST(receive_entry_point)
{
	uint8_t pkt[4096];
	struct sockaddr_in from = sa4("127.0.0.9", 1234);
	size_t n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 60, 0);

	add_ok("vxlan,name=vx,local=127.0.0.1:%u,vni=42,remote=127.0.0.2,mtu=1500");
	ck_assert_int_eq(sn_tunnel_receive(vx, false, pkt, n, (struct sockaddr *)&from, sizeof(from)), 0);
	ck_assert_uint_eq(st->got, 0); /* queued: the flush comes from the loop */
	settle();
	ck_assert_uint_eq(st->got, 1);
	ck_assert_int_eq(sn_tunnel_receive(vx, true, pkt, n, (struct sockaddr *)&from, sizeof(from)), -EINVAL);
	ck_assert_int_eq(sn_tunnel_receive(&st->base, false, pkt, n, (struct sockaddr *)&from, sizeof(from)), -EINVAL);
	/* a sender of the wrong family is no VTEP */
	ck_assert_int_eq(sn_tunnel_receive(vx, false, pkt, n, (struct sockaddr *)&from, 2), 0);
	ck_assert_uint_eq(counters().unknown_vtep, 1);
	n = vxlan_pkt(pkt, 0x08000000, 42, 0, bcast, mac_m, 3000, 0);
	ck_assert_int_eq(sn_tunnel_receive(vx, false, pkt, n, (struct sockaddr *)&from, sizeof(from)), 0);
	ck_assert_uint_eq(vx->stats.drop_oversize, 1);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"broadcast_replicated_to_each_remote", broadcast_replicated_to_each_remote},
		{"decap_learn_and_unicast", decap_learn_and_unicast},
		{"strict_headers", strict_headers},
		{"learning_off_refuses_unknown_vteps", learning_off_refuses_unknown_vteps},
		{"static_pins", static_pins},
		{"vni_as_a_vlan", vni_as_a_vlan},
		{"table_cap_counts_refusals", table_cap_counts_refusals},
		{"learned_entries_age", learned_entries_age},
		{"no_remote_is_counted", no_remote_is_counted},
		{"vnis_share_a_socket", vnis_share_a_socket},
		{"flows_keep_their_source_port", flows_keep_their_source_port},
		{"geneve_options", geneve_options},
		{"geneve_on_a_jumbo_underlay", geneve_on_a_jumbo_underlay},
		{"inner_mtu", inner_mtu},
		{"default_mtu_follows_the_underlay", default_mtu_follows_the_underlay},
		{"spec_errors", spec_errors},
		{"ipv6_and_ttl", ipv6_and_ttl},
		{"receive_entry_point", receive_entry_point},
	};

	return sn_check_main("vxlan", cases, SN_CHECK_N(cases), setup, teardown, 30);
}
