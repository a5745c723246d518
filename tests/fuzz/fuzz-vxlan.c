/* fuzz-vxlan.c - the tunnel ports' decapsulation (ports/vxlan.c): datagrams from any sender
 * on the underlay, with the frames a station sends out through the tunnel in between.
 *
 * Input: byte 0 picks the set-up: bit 0 geneve (else vxlan), bit 1 learning=off, bit 2 a
 * second port on the same socket (VNI 43, no remotes), bit 3 a table of 4 MACs at most
 * (--fdb-port-max), bit 4 the port in VLAN 10 (vlan=10: untagged on the tunnel). Then records:
 *   'd' SRC LEN16 BYTES   a datagram from 127.0.0.(2 + SRC % 8), LEN16 little-endian
 *   'f' LEN16 BYTES       a frame the station sends into the switch (out through the tunnel)
 *   'p' MAC6 SRC          fdb add MAC vx dst=127.0.0.(2 + SRC % 8)
 *   'u' MAC6              fdb del MAC
 * anything else ends the input. Each input gets a fresh switch with the tunnel port "vx" on
 * 127.0.0.1 (VNI 42, remotes 127.0.0.2 and .3, MTU 1500) and a station port; datagrams go in
 * through sn_tunnel_receive(), the reader's own path after recvmmsg(), and the loop runs after
 * every record, so frames are switched and flushed (sent with sendmmsg() over loopback to the
 * remotes, which are sockets of this target).
 *
 * Oracles: each datagram is accounted for exactly once: a frame in on one tunnel port, or one
 * of the refusal counters (tunnel header, VNI, VTEP, Geneve options) or the port's drops (runt,
 * oversize, VLAN). A reference decoder written here from RFC 7348 and RFC 8926 says which; when
 * it accepts a broadcast frame for VNI 42 the station gets exactly its bytes (retagged into VLAN
 * 10 when the port is in it). A broadcast the station sends reaches both remotes, once each, as
 * a datagram with the right header and the frame's bytes. Nothing leaks when the switch goes. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <squibnet/switch.h>

#include "core.h"
#include "ports/vxlan.h"
#include "util.h"

#include "fuzz.h"

#define VNI 42
#define VNI2 43
#define MTU 1500

static struct ev_loop *loop;
static uint16_t udp_port;   /* the tunnel's UDP port, on 127.0.0.1 and at the remotes */
static int remote_fd[2] = {-1, -1}; /* 127.0.0.2 and .3 */

struct station {
	struct sn_port base;
	uint32_t got;
	uint8_t last[SN_POOL_JUMBO_CAP];
	uint32_t last_len;
};

static void station_flush(struct sn_port *port)
{
	struct station *s = (struct station *)port;
	uint32_t n = sn_txq_len(&port->txq);

	for (uint32_t i = 0; i < n; i++) {
		const struct sn_frame *f = sn_txq_peek(&port->txq, i);

		s->last_len = f->len;
		memcpy(s->last, f->data, f->len);
	}
	s->got += n;
	sn_txq_sent(port, n);
}

static const struct sn_port_ops station_ops = {
	.kind = "station",
	.flush = station_flush,
};

static struct sockaddr_in loopback(unsigned host, uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};

	a.sin_addr.s_addr = htonl(0x7f000000u | host);
	return a;
}

static int bound(unsigned host, uint16_t port)
{
	struct sockaddr_in a = loopback(host, port);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		abort();
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	fuzz_sandbox(argc, argv);
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		abort();
	/* a UDP port free on 127.0.0.1 and at both remotes, kept for every input */
	for (int tries = 0; tries < 100 && remote_fd[1] < 0; tries++) {
		int probe = bound(1, 0);
		struct sockaddr_in a;
		socklen_t len = sizeof(a);

		if (probe < 0 || getsockname(probe, (struct sockaddr *)&a, &len) < 0)
			abort();
		close(probe);
		udp_port = ntohs(a.sin_port);
		remote_fd[0] = bound(2, udp_port);
		remote_fd[1] = remote_fd[0] >= 0 ? bound(3, udp_port) : -1;
		if (remote_fd[1] < 0 && remote_fd[0] >= 0) {
			close(remote_fd[0]);
			remote_fd[0] = -1;
		}
	}
	if (remote_fd[1] < 0)
		fuzz_fail("no UDP port free on 127.0.0.1 to 127.0.0.3");
	return 0;
}

/* ---- the reference decoder ---- */

enum verdict {
	V_SHORT, V_BAD_HEADER, V_UNKNOWN_VNI, V_OAM, V_CRITICAL, V_BAD_OPTIONS, V_FRAME,
};

/* What RFC 7348 / RFC 8926 make of @len bytes, as a receiver that knows no options: the VNI and
 * the inner frame's offset when it is one. */
static enum verdict reference(bool geneve, const uint8_t *d, size_t len, uint32_t *vni, size_t *off)
{
	size_t opt;

	if (len < 8)
		return V_SHORT;
	*vni = (uint32_t)d[4] << 16 | (uint32_t)d[5] << 8 | d[6];
	if (!geneve) {
		/* flags: the I bit only; every reserved bit zero, as Linux and OVS insist */
		if (d[0] != 0x08 || d[1] || d[2] || d[3] || d[7])
			return V_BAD_HEADER;
		if (*vni != VNI && *vni != VNI2)
			return V_UNKNOWN_VNI;
		*off = 8;
		return V_FRAME;
	}
	if ((d[0] >> 6) != 0 || d[2] != 0x65 || d[3] != 0x58)
		return V_BAD_HEADER;
	if (*vni != VNI && *vni != VNI2)
		return V_UNKNOWN_VNI;
	if (d[1] & 0x80)
		return V_OAM;
	if (d[1] & 0x40)
		return V_CRITICAL;
	opt = (size_t)(d[0] & 0x3f) * 4;
	if (8 + opt > len)
		return V_BAD_OPTIONS;
	for (size_t o = 0; o < opt;) {
		size_t olen = 4 + (size_t)(d[8 + o + 3] & 0x1f) * 4;

		if (olen > opt - o)
			return V_BAD_OPTIONS;
		if (d[8 + o + 2] & 0x80)
			return V_CRITICAL;
		o += olen;
	}
	*off = 8 + opt;
	return V_FRAME;
}

/* ---- the run ---- */

struct rig {
	struct sn_switch *sw;
	struct station *st;
	struct sn_port *vx, *vx2;
	bool geneve, learning_off, vlan10;
};

static uint64_t accounted(const struct rig *r)
{
	uint64_t n = 0;
	struct sn_port *ports[2] = {r->vx, r->vx2};
	struct sn_tunnel_counters c;

	/* the socket's counters are shared: read them once, from vx */
	sn_tunnel_get_counters(r->vx, &c);
	n += c.short_packets + c.bad_header + c.unknown_vni + c.no_buffer;
	for (int i = 0; i < 2; i++) {
		if (!ports[i])
			continue;
		sn_tunnel_get_counters(ports[i], &c);
		n += c.unknown_vtep + c.bad_options + c.critical + c.oam;
		n += ports[i]->stats.rx_frames + ports[i]->stats.drop_runt + ports[i]->stats.drop_oversize +
		     ports[i]->stats.drop_vlan + ports[i]->stats.drop_no_buffer;
	}
	return n;
}

static void settle(void)
{
	for (int i = 0; i < 3; i++)
		ev_run(loop, EVRUN_NOWAIT);
}

static void datagram(struct rig *r, unsigned src, const uint8_t *d, size_t len)
{
	struct sockaddr_in from = loopback(2 + src % 8, 40000 + src);
	uint64_t before = accounted(r);
	uint32_t got = r->st->got;
	uint32_t vni = 0;
	size_t off = 0;
	enum verdict v = reference(r->geneve, d, len, &vni, &off);
	bool known = src % 8 < 2; /* 127.0.0.2 and .3 are the flood list */

	if (sn_tunnel_receive(r->vx, false, d, len, (struct sockaddr *)&from, sizeof(from)) < 0)
		fuzz_fail("sn_tunnel_receive refused a tunnel port");
	settle();
	if (accounted(r) != before + 1)
		fuzz_fail("a datagram of %zu bytes (verdict %d) was accounted %llu times", len, v,
			  (unsigned long long)(accounted(r) - before));
	/* a broadcast frame for vx, from a remote it knows, of a length it takes: the station gets
	 * exactly it (the pins of this input may make a .4 to .9 sender known too: left out) */
	if (v == V_FRAME && vni == VNI && known && len - off >= SN_ETH_HLEN && len - off <= MTU + SN_ETH_HLEN &&
	    !memcmp(d + off, "\xff\xff\xff\xff\xff\xff", 6)) {
		const uint8_t *f = d + off;
		size_t flen = len - off;
		uint16_t et = flen >= 18 ? (uint16_t)(f[12] << 8 | f[13]) : 0;

		/* a tagged frame on the access port is no member of VLAN 10 */
		if (r->vlan10 && (et == 0x8100 || et == 0x88a8))
			return;
		if (r->st->got != got + 1)
			fuzz_fail("an accepted broadcast did not reach the station (%u frames)", r->st->got - got);
		if (!r->vlan10) {
			if (r->st->last_len != flen || memcmp(r->st->last, f, flen))
				fuzz_fail("the station got other bytes than the inner frame");
		} else if (r->st->last_len != flen + 4 || memcmp(r->st->last, f, 12) ||
			   r->st->last[12] != 0x81 || r->st->last[13] != 0 || (r->st->last[15] != 10) ||
			   memcmp(r->st->last + 16, f + 12, flen - 12)) {
			fuzz_fail("the station got other bytes than the inner frame in VLAN 10");
		}
	} else if (v != V_FRAME && r->st->got != got) {
		fuzz_fail("a datagram refused by the reference (verdict %d) reached the station", v);
	}
}

static void drain(int fd)
{
	uint8_t buf[64];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		;
}

static void station_frame(struct rig *r, const uint8_t *d, size_t len)
{
	struct sn_frame *f;
	bool bcast;

	if (len > MTU + 18)
		len = MTU + 18;
	f = sn_port_frame_get(&r->st->base, (uint32_t)len);
	if (!f)
		return;
	memcpy(f->data, d, len);
	f->len = (uint32_t)len;
	bcast = len >= SN_ETH_HLEN && !memcmp(d, "\xff\xff\xff\xff\xff\xff", 6) && !r->vlan10 &&
		!(len >= 18 && d[12] == 0x81 && d[13] == 0) && len - SN_ETH_HLEN <= MTU;
	drain(remote_fd[0]);
	drain(remote_fd[1]);
	sn_port_input(&r->st->base, &f, 1);
	settle();
	if (!bcast)
		return;
	/* both remotes get it once, with vx's header */
	for (int i = 0; i < 2; i++) {
		uint8_t buf[2048];
		ssize_t n = recv(remote_fd[i], buf, sizeof(buf), MSG_DONTWAIT);

		if (n != (ssize_t)len + 8)
			fuzz_fail("remote %d got %zd bytes for a %zu-byte broadcast", i, n, len);
		if (r->geneve ? memcmp(buf, "\x00\x00\x65\x58\x00\x00\x2a\x00", 8)
			      : memcmp(buf, "\x08\x00\x00\x00\x00\x00\x2a\x00", 8))
			fuzz_fail("remote %d got a wrong header", i);
		if (memcmp(buf + 8, d, len))
			fuzz_fail("remote %d got other bytes than the frame", i);
		if (recv(remote_fd[i], buf, sizeof(buf), MSG_DONTWAIT) >= 0)
			fuzz_fail("remote %d got the broadcast twice", i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size, false};
	struct sn_switch_config cfg;
	struct sn_port_conf sc = {.name = "st"};
	struct sn_error err = {{0}};
	struct rig r = {0};
	uint8_t setup = fuzz_u8(&in);
	char spec[256];

	r.geneve = setup & 1;
	r.learning_off = setup & 2;
	r.vlan10 = setup & 16;
	fuzz_enter();
	sn_switch_config_init(&cfg);
	cfg.pool_frames = 256;
	cfg.jumbo_frames = 2;
	cfg.txq_len = 64;
	if (setup & 8)
		cfg.fdb_port_max = 4;
	if (sn_switch_create(loop, &cfg, &r.sw) < 0)
		abort();
	r.st = calloc(1, sizeof(*r.st));
	if (!r.st || sn_port_init(&r.st->base, r.sw, &station_ops, &sc) < 0 || sn_port_register(&r.st->base) < 0)
		abort();
	sn_port_set_state(&r.st->base, SN_PORT_UP);
	snprintf(spec, sizeof(spec), "%s,name=vx,local=127.0.0.1:%u,vni=%u,remote=127.0.0.2+127.0.0.3,mtu=%u%s%s",
		 r.geneve ? "geneve" : "vxlan", udp_port, VNI, MTU, r.learning_off ? ",learning=off" : "",
		 r.vlan10 ? ",vlan=10" : "");
	if (sn_switch_add_port(r.sw, spec, NULL, 0, &err) < 0)
		fuzz_fail("%s: %s", spec, err.msg);
	r.vx = sn_switch_find_port(r.sw, "vx");
	if (setup & 4) {
		snprintf(spec, sizeof(spec), "%s,name=vx2,local=127.0.0.1:%u,vni=%u,mtu=%u", r.geneve ? "geneve" : "vxlan",
			 udp_port, VNI2, MTU);
		if (sn_switch_add_port(r.sw, spec, NULL, 0, &err) < 0)
			fuzz_fail("%s: %s", spec, err.msg);
		r.vx2 = sn_switch_find_port(r.sw, "vx2");
	}
	for (unsigned records = 0; !in.eof && records < 512; records++) {
		uint8_t type = fuzz_u8(&in), mac[6], src;
		const uint8_t *p;
		size_t n;
		char dst[32];

		if (in.eof)
			break;
		switch (type) {
		case 'd':
			src = fuzz_u8(&in);
			n = fuzz_bytes(&in, fuzz_u16(&in), &p);
			datagram(&r, src, p, n);
			break;
		case 'f':
			n = fuzz_bytes(&in, fuzz_u16(&in), &p);
			station_frame(&r, p, n);
			break;
		case 'p':
			for (int i = 0; i < 6; i++)
				mac[i] = fuzz_u8(&in);
			snprintf(dst, sizeof(dst), "127.0.0.%u", 2 + fuzz_u8(&in) % 8);
			sn_switch_fdb_add_dst(r.sw, mac, 0, "vx", dst, &err);
			break;
		case 'u':
			for (int i = 0; i < 6; i++)
				mac[i] = fuzz_u8(&in);
			sn_switch_fdb_del(r.sw, mac, 0);
			break;
		default:
			in.eof = true;
			break;
		}
	}
	sn_switch_destroy(r.sw);
	settle();
	drain(remote_fd[0]);
	drain(remote_fd[1]);
	fuzz_leave();
	return 0;
}
