/* test-offload.c - checksum and segmentation offloads (offload.c), and what the switch does
 * with them on the way through (switch.c).
 *
 * Frames are built here as a guest's stack leaves them to a device: the TCP or UDP checksum
 * field holding the pseudo-header's sum, a virtio-net header saying NEEDS_CSUM and, for GSO,
 * the gso_type, gso_size and hdr_len. What comes out is checked with a checksum written here
 * byte by byte, independent of the one under test: every IPv4 header and TCP or UDP checksum
 * verifies, every length is the segment's, IP ids and sequence numbers count on, FIN and PSH
 * sit on the last segment only and CWR on the first only, and the payloads put together are
 * the original payload. */
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "offload.h"
#include "util.h"

#include "sn-check.h"

#define POOL 512
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_ECE 0x40
#define TCP_CWR 0x80

/* ---- a reference checksum, one big-endian word at a time ---- */

static uint32_t ref_sum(const uint8_t *p, uint32_t len, uint32_t sum)
{
	for (uint32_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t ref_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* ---- frames as a guest hands them over ---- */

struct layout {
	uint32_t len, l3, l4, pay;
	int ipv, proto;
};

static const uint8_t mac_a[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0a};
static const uint8_t mac_b[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0b};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint32_t pseudo_ref(const uint8_t *ip, int ipv, int proto, uint32_t l4len)
{
	uint32_t s = ipv == 4 ? ref_sum(ip + 12, 8, 0) : ref_sum(ip + 8, 32, 0);

	return s + (uint32_t)proto + (l4len >> 16) + (l4len & 0xffff);
}

static uint8_t pattern(uint32_t i)
{
	return (uint8_t)(i * 7 + (i >> 8) * 3 + 1);
}

/*
 * Writes into @b an Ethernet frame to @dst with @ntags 802.1Q tags, IPv@ipv (IPv6 with one
 * destination-options header when @ext6), TCP (with 12 bytes of options) or UDP, and @payload
 * bytes; the L4 checksum field holds the pseudo-header's sum, as NEEDS_CSUM wants it.
 */
static struct layout build(uint8_t *b, const uint8_t *dst, int ntags, int ipv, int proto, bool ext6,
			   uint8_t tcp_flags, uint32_t payload)
{
	struct layout l = {.ipv = ipv, .proto = proto};
	uint32_t off = 12, thl = proto == 6 ? 32 : 8;
	uint8_t *ip, *t;

	memcpy(b, dst, 6);
	memcpy(b + 6, mac_a, 6);
	for (int i = 0; i < ntags; i++) {
		sn_put_be16(b + off, i == 0 && ntags == 2 ? 0x88a8 : 0x8100);
		sn_put_be16(b + off + 2, (uint16_t)(10 + i));
		off += 4;
	}
	sn_put_be16(b + off, ipv == 4 ? 0x0800 : 0x86dd);
	l.l3 = off + 2;
	ip = b + l.l3;
	if (ipv == 4) {
		l.l4 = l.l3 + 20;
		memset(ip, 0, 20);
		ip[0] = 0x45;
		sn_put_be16(ip + 4, 0xfffe); /* the id wraps during the segments */
		sn_put_be16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = (uint8_t)proto;
		memcpy(ip + 12, (uint8_t[]){10, 0, 0, 1, 10, 0, 0, 2}, 8);
	} else {
		l.l4 = l.l3 + 40 + (ext6 ? 8 : 0);
		memset(ip, 0, 40);
		ip[0] = 0x60;
		ip[6] = ext6 ? 60 : (uint8_t)proto;
		ip[7] = 64;
		ip[8] = 0xfd;
		ip[23] = 1;
		ip[24] = 0xfd;
		ip[39] = 2;
		if (ext6) {
			memset(ip + 40, 0, 8);
			ip[40] = (uint8_t)proto;
			ip[42] = 1; /* PadN of 4 bytes */
			ip[43] = 4;
		}
	}
	l.pay = l.l4 + thl;
	l.len = l.pay + payload;
	t = b + l.l4;
	memset(t, 0, thl);
	sn_put_be16(t, 40000);
	sn_put_be16(t + 2, 5201);
	if (proto == 6) {
		sn_put_be32(t + 4, 0xfffff000u); /* the sequence numbers wrap too */
		sn_put_be32(t + 8, 77);
		t[12] = (uint8_t)((thl / 4) << 4);
		t[13] = tcp_flags;
		sn_put_be16(t + 14, 65535);
		for (uint32_t k = 20; k < thl; k++)
			t[k] = 1; /* NOP options */
	} else {
		sn_put_be16(t + 4, (uint16_t)(l.len - l.l4));
	}
	for (uint32_t i = 0; i < payload; i++)
		b[l.pay + i] = pattern(i);
	/* lengths as the sender's stack wrote them for the whole frame */
	if (ipv == 4)
		sn_put_be16(ip + 2, (uint16_t)(l.len - l.l3));
	else
		sn_put_be16(ip + 4, (uint16_t)(l.len - l.l3 - 40));
	if (ipv == 4) {
		sn_put_be16(ip + 10, 0);
		sn_put_be16(ip + 10, (uint16_t)~ref_fold(ref_sum(ip, 20, 0)));
	}
	sn_put_be16(t + (proto == 6 ? 16 : 6), ref_fold(pseudo_ref(ip, ipv, proto, l.len - l.l4)));
	return l;
}

static struct sn_offload gso_hdr(const struct layout *l, uint16_t mss)
{
	uint8_t type = l->proto == 17 ? SN_VNET_GSO_UDP_L4 : l->ipv == 4 ? SN_VNET_GSO_TCPV4 : SN_VNET_GSO_TCPV6;

	return (struct sn_offload){
		.flags = SN_VNET_F_NEEDS_CSUM,
		.gso = type,
		.hdr_len = (uint16_t)l->pay,
		.gso_size = mss,
		.csum_start = (uint16_t)l->l4,
		.csum_offset = l->proto == 6 ? 16 : 6,
	};
}

/* ---- checking what came out ---- */

static void check_l4_csum(const uint8_t *d, uint32_t len, const struct layout *l)
{
	uint32_t s = pseudo_ref(d + l->l3, l->ipv, l->proto, len - l->l4);

	ck_assert_uint_eq(ref_fold(ref_sum(d + l->l4, len - l->l4, s)), 0xffff);
	if (l->proto == 17)
		ck_assert_uint_ne(sn_get_be16(d + l->l4 + 6), 0);
}

/*
 * Checks the @want_n segments @segs of the frame @orig (layout @l, GSO with @mss): every one a
 * plain frame of the right length, all checksums and lengths right, ids and sequence numbers
 * counting on, flags where they belong, the payloads together the original's. Returns the
 * bytes of payload seen.
 */
static uint32_t check_segments(const uint8_t *orig, const struct layout *l, uint16_t mss, struct sn_frame *const *segs,
			       uint32_t want_n)
{
	uint32_t payload = l->len - l->pay, seen = 0, n = 0;
	uint8_t oflags = l->proto == 6 ? orig[l->l4 + 13] : 0;

	for (; n < want_n; n++) {
		const struct sn_frame *s = segs[n];
		bool last = n + 1 == want_n;
		const uint8_t *d = s->data;
		uint32_t part = s->len - l->pay;

		ck_assert_uint_le(part, mss);
		ck_assert_uint_eq(s->off.gso, 0);
		ck_assert(!(s->off.flags & SN_VNET_F_NEEDS_CSUM));
		ck_assert_uint_eq(s->off.need, 0);
		/* the headers are the original's but for what changes per segment */
		ck_assert_mem_eq(d, orig, l->l3);
		if (l->ipv == 4) {
			ck_assert_uint_eq(sn_get_be16(d + l->l3 + 2), s->len - l->l3);
			ck_assert_uint_eq(sn_get_be16(d + l->l3 + 4), (uint16_t)(0xfffe + n));
			ck_assert_uint_eq(sn_get_be16(d + l->l3 + 6), 0x4000);
			ck_assert_uint_eq(ref_fold(ref_sum(d + l->l3, 20, 0)), 0xffff);
		} else {
			ck_assert_uint_eq(sn_get_be16(d + l->l3 + 4), s->len - l->l3 - 40);
			ck_assert_mem_eq(d + l->l3 + 6, orig + l->l3 + 6, l->l4 - l->l3 - 6);
		}
		if (l->proto == 6) {
			uint8_t f = d[l->l4 + 13], want = oflags;

			ck_assert_uint_eq(sn_get_be32(d + l->l4 + 4), (uint32_t)(0xfffff000u + seen));
			if (!last)
				want &= (uint8_t)~(TCP_FIN | TCP_PSH);
			if (n > 0)
				want &= (uint8_t)~TCP_CWR;
			ck_assert_uint_eq(f, want);
			ck_assert_mem_eq(d + l->l4 + 8, orig + l->l4 + 8, 5); /* ack, data offset */
		} else {
			ck_assert_uint_eq(sn_get_be16(d + l->l4 + 4), s->len - l->l4);
		}
		check_l4_csum(d, s->len, l);
		ck_assert_mem_eq(d + l->pay, orig + l->pay + seen, part);
		if (!last)
			ck_assert_uint_eq(part, mss);
		seen += part;
	}
	ck_assert_uint_eq(seen, payload);
	return seen;
}

/* ---- fixture: a switch for its pool, and fake ports ---- */

struct tport {
	struct sn_port base;
	uint32_t got;
	struct sn_frame *frames[256]; /* what it took, a reference each */
};

static struct ev_loop *loop;
static struct sn_switch *sw;

static void tport_flush(struct sn_port *port)
{
	struct tport *t = (struct tport *)port;
	uint32_t n = sn_txq_len(&port->txq);

	for (uint32_t i = 0; i < n; i++) {
		struct sn_frame *f = sn_txq_peek(&port->txq, i);

		if (t->got < SN_ARRAY_SIZE(t->frames)) {
			sn_frame_ref(f);
			t->frames[t->got] = f;
		}
		t->got++;
	}
	sn_txq_sent(port, n);
}

static void tport_free(struct sn_port *port)
{
	struct tport *t = (struct tport *)port;

	for (uint32_t i = 0; i < t->got && i < SN_ARRAY_SIZE(t->frames); i++)
		sn_frame_unref(t->frames[i]);
	free(t);
}

static const struct sn_port_ops tport_ops = {
	.kind = "test",
	.flush = tport_flush,
	.free = tport_free,
};

static struct tport *tport_new(const char *name, uint32_t tx, uint32_t rx)
{
	struct tport *t = calloc(1, sizeof(*t));
	struct sn_port_conf c = {.mtu = 1500};

	ck_assert_ptr_nonnull(t);
	snprintf(c.name, sizeof(c.name), "%s", name);
	ck_assert_int_eq(sn_port_init(&t->base, sw, &tport_ops, &c), 0);
	ck_assert_int_eq(sn_port_register(&t->base), 0);
	ck_assert_int_eq(sn_port_set_offloads(&t->base, tx, rx), 0);
	sn_port_set_state(&t->base, SN_PORT_UP);
	return t;
}

static void setup_pool(unsigned std)
{
	struct sn_switch_config cfg;

	sn_switch_config_init(&cfg);
	cfg.pool_frames = std;
	cfg.jumbo_frames = 8;
	cfg.txq_len = 256;
	loop = ev_loop_new(0);
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &sw), 0);
	ck_assert_int_eq(sn_pool_want_jumbo(&sw->pool), 0);
}

static void setup(void)
{
	setup_pool(POOL);
}

static void teardown(void)
{
	sn_switch_destroy(sw);
	ev_loop_destroy(loop);
	sw = NULL;
	loop = NULL;
}

/* A frame of the switch's pool holding @len bytes of @b with offload state @o. */
static struct sn_frame *frame_of(const uint8_t *b, uint32_t len, const struct sn_offload *o)
{
	struct sn_frame *f = sn_pool_get(&sw->pool, len);

	ck_assert_ptr_nonnull(f);
	memcpy(f->data, b, len);
	f->len = len;
	if (o)
		f->off = *o;
	return f;
}

static uint8_t buf[SN_POOL_JUMBO_CAP];

/* ---- checksums ---- */

START_TEST(csum_matches_reference)
{
	uint8_t d[300];

	for (unsigned i = 0; i < sizeof(d); i++)
		d[i] = (uint8_t)(i * 37 + 11);
	for (uint32_t len = 0; len < 200; len++) {
		uint16_t want = (uint16_t)~ref_fold(ref_sum(d + 3, len, 0)), got = sn_csum_fold(sn_csum_add(0, d + 3, len));
		uint8_t be[2];

		memcpy(be, &got, 2); /* stored as memory holds it: big-endian */
		ck_assert_uint_eq(sn_get_be16(be), want);
	}
	/* carries wrap around however the sum was split */
	memset(d, 0xff, sizeof(d));
	ck_assert_uint_eq(sn_csum_fold(sn_csum_add(sn_csum_add(0, d, 64), d, 200)), 0);
}
END_TEST

START_TEST(vnet_hdr_roundtrip)
{
	const uint8_t in[10] = {1, 0x81, 0x36, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00};
	uint8_t out[10];
	struct sn_offload o;

	sn_vnet_hdr_get(in, &o);
	ck_assert_uint_eq(o.flags, 1);
	ck_assert_uint_eq(o.gso, 0x81);
	ck_assert_uint_eq(o.hdr_len, 0x36);
	ck_assert_uint_eq(o.gso_size, 1448);
	ck_assert_uint_eq(o.csum_start, 0x22);
	ck_assert_uint_eq(o.csum_offset, 16);
	o.need = SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO_ECN;
	ck_assert_int_eq(sn_vnet_hdr_put(out, &o, SN_OFFLOAD_ALL), 0);
	ck_assert_mem_eq(out, in, 10);
	/* not for a receiver without TSO, whatever it takes besides */
	ck_assert_int_eq(sn_vnet_hdr_put(out, &o, SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO6), -ENOTSUP);
	ck_assert_mem_eq(out, (uint8_t[10]){0}, 10);
	/* DATA_VALID only to a receiver that takes checksums */
	o = (struct sn_offload){.flags = SN_VNET_F_DATA_VALID};
	ck_assert_int_eq(sn_vnet_hdr_put(out, &o, 0), 0);
	ck_assert_uint_eq(out[0], 0);
	ck_assert_int_eq(sn_vnet_hdr_put(out, &o, SN_OFFLOAD_CSUM), 0);
	ck_assert_uint_eq(out[0], SN_VNET_F_DATA_VALID);
}
END_TEST

/* ---- the checks on the way in ---- */

static int check_one(const uint8_t *b, uint32_t len, struct sn_offload o, uint32_t caps, struct sn_offload *ret)
{
	struct sn_frame *f = frame_of(b, len, &o);
	int r = sn_offload_check(f, caps, 1500);

	if (ret)
		*ret = f->off;
	sn_frame_unref(f);
	return r;
}

START_TEST(check_accepts)
{
	static const struct {
		int tags, ipv, proto;
		bool ext6;
		uint32_t need;
	} cases[] = {
		{0, 4, 6, false, SN_OFFLOAD_TSO4},
		{1, 4, 6, false, SN_OFFLOAD_TSO4},
		{2, 6, 6, true, SN_OFFLOAD_TSO6},
		{0, 6, 6, false, SN_OFFLOAD_TSO6},
		{0, 4, 17, false, SN_OFFLOAD_USO4},
		{1, 6, 17, true, SN_OFFLOAD_USO6},
	};
	struct sn_offload o;

	for (unsigned i = 0; i < SN_ARRAY_SIZE(cases); i++) {
		struct layout l = build(buf, mac_b, cases[i].tags, cases[i].ipv, cases[i].proto, cases[i].ext6, TCP_ACK, 30000);
		struct sn_offload h = gso_hdr(&l, 1400);

		h.flags |= 0x40; /* a flag bit the switch does not know is ignored */
		h.hdr_len = (uint16_t)(l.pay + 100); /* a hint beyond the headers, as Linux gives */
		ck_assert_int_eq(check_one(buf, l.len, h, SN_OFFLOAD_ALL, &o), 0);
		ck_assert_uint_eq(o.need, cases[i].need | SN_OFFLOAD_CSUM);
		ck_assert_uint_eq(o.flags, SN_VNET_F_NEEDS_CSUM);
		ck_assert_uint_eq(o.seg_ip, l.pay - l.l3 + 1400);
		ck_assert_uint_eq(o.hdr_len, l.pay + 100);
	}
	/* a partial checksum without GSO: anywhere behind the Ethernet header and tags */
	{
		struct layout l = build(buf, mac_b, 1, 4, 17, false, 0, 100);
		struct sn_offload h = {.flags = SN_VNET_F_NEEDS_CSUM, .hdr_len = 99, .gso_size = 7,
				       .csum_start = (uint16_t)l.l4, .csum_offset = 6};

		ck_assert_int_eq(check_one(buf, l.len, h, SN_OFFLOAD_CSUM, &o), 0);
		ck_assert_uint_eq(o.need, SN_OFFLOAD_CSUM);
		ck_assert_uint_eq(o.hdr_len, 0); /* meaningless without GSO */
		ck_assert_uint_eq(o.gso_size, 0);
		h.csum_start = 18;
		h.csum_offset = (uint16_t)(l.len - 20);
		ck_assert_int_eq(check_one(buf, l.len, h, SN_OFFLOAD_CSUM, NULL), 0);
	}
	/* DATA_VALID alone needs nothing */
	ck_assert_int_eq(check_one(buf, 100, (struct sn_offload){.flags = SN_VNET_F_DATA_VALID}, 0, &o), 0);
	ck_assert_uint_eq(o.need, 0);
}
END_TEST

START_TEST(check_refuses_malformed)
{
	struct layout t4 = build(buf, mac_b, 0, 4, 6, false, TCP_ACK, 10000);
	struct sn_offload good = gso_hdr(&t4, 1448), h;
	uint8_t saved;

#define REFUSED(expr_setup, want)                                                                  \
	do {                                                                                       \
		h = good;                                                                          \
		expr_setup;                                                                        \
		ck_assert_int_eq(check_one(buf, t4.len, h, SN_OFFLOAD_ALL, NULL), want);           \
	} while (0)
	ck_assert_int_eq(check_one(buf, t4.len, good, SN_OFFLOAD_ALL, NULL), 0);
	REFUSED(h.gso_size = 0, -EINVAL);
	REFUSED(h.hdr_len = (uint16_t)(t4.len + 1), -EINVAL);
	REFUSED(h.hdr_len = (uint16_t)(t4.pay - 1), -EINVAL);   /* shorter than the real headers */
	REFUSED(h.hdr_len = 0, -EINVAL);
	REFUSED(h.csum_start = (uint16_t)(t4.len + 10), -EINVAL);
	REFUSED(h.csum_start = (uint16_t)(t4.l4 + 2), -EINVAL); /* not at the TCP header */
	REFUSED(h.csum_offset = 6, -EINVAL);                    /* UDP's offset on TCP */
	REFUSED(h.flags = 0, -EINVAL);                          /* GSO without NEEDS_CSUM */
	REFUSED(h.gso = SN_VNET_GSO_TCPV6, -EINVAL);            /* IPv6 type on IPv4 */
	REFUSED(h.gso = SN_VNET_GSO_UDP_L4; h.csum_offset = 6, -EINVAL); /* UDP type on TCP */
	REFUSED(h.gso = 3, -EINVAL);                            /* UFO: not taken */
	REFUSED(h.gso = 2, -EINVAL);
	REFUSED(h.gso_size = 78, -EINVAL);                      /* 129 segments */
	REFUSED(h.gso_size = 79, 0);                            /* 127: under the cap */
	REFUSED(h.gso_size = 1500, -EMSGSIZE);                  /* segments over the MTU */
	/* a partial checksum without GSO that points outside the frame or into its L2 header */
	REFUSED(h.gso = 0; h.csum_start = (uint16_t)(t4.len - 1), -EINVAL);
	REFUSED(h.gso = 0; h.csum_start = (uint16_t)t4.l4; h.csum_offset = (uint16_t)(t4.len - t4.l4 - 1), -EINVAL);
	REFUSED(h.gso = 0; h.csum_start = 13, -EINVAL);
	REFUSED(h.gso = 0; h.csum_start = 0xffff; h.csum_offset = 0xffff, -EINVAL);
	REFUSED(h.gso = SN_VNET_GSO_ECN, -EINVAL);             /* ECN without segmentation */
	/* a TCP type on a UDP payload */
	{
		struct layout u = build(buf, mac_b, 0, 4, 17, false, 0, 5000);
		struct sn_offload uh = gso_hdr(&u, 1000);

		ck_assert_int_eq(check_one(buf, u.len, uh, SN_OFFLOAD_ALL, NULL), 0);
		uh.gso = SN_VNET_GSO_TCPV4;
		ck_assert_int_eq(check_one(buf, u.len, uh, SN_OFFLOAD_ALL, NULL), -EINVAL);
		uh.gso = SN_VNET_GSO_UDP_L4 | SN_VNET_GSO_ECN;
		ck_assert_int_eq(check_one(buf, u.len, uh, SN_OFFLOAD_ALL, NULL), -EINVAL);
		t4 = build(buf, mac_b, 0, 4, 6, false, TCP_ACK, 10000);
	}
	/* what the sender did not negotiate */
	ck_assert_int_eq(check_one(buf, t4.len, good, SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO6, NULL), -EINVAL);
	ck_assert_int_eq(check_one(buf, t4.len, good, SN_OFFLOAD_TSO4, NULL), -EINVAL);
	h = good;
	h.gso |= SN_VNET_GSO_ECN;
	ck_assert_int_eq(check_one(buf, t4.len, h, SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4, NULL), -EINVAL);
	ck_assert_int_eq(check_one(buf, t4.len, h, SN_OFFLOAD_ALL, NULL), 0);
	h = (struct sn_offload){.flags = SN_VNET_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 16};
	ck_assert_int_eq(check_one(buf, t4.len, h, 0, NULL), -EINVAL);
	/* frames that are not what a GSO type needs */
	saved = buf[t4.l3 + 6];
	buf[t4.l3 + 6] |= 0x20; /* more fragments */
	ck_assert_int_eq(check_one(buf, t4.len, good, SN_OFFLOAD_ALL, NULL), -EINVAL);
	buf[t4.l3 + 6] = saved;
	buf[t4.l3] = 0x65; /* version 6 under an IPv4 ethertype */
	ck_assert_int_eq(check_one(buf, t4.len, good, SN_OFFLOAD_ALL, NULL), -EINVAL);
	buf[t4.l3] = 0x4f; /* a header of 60 bytes: the TCP header is elsewhere now */
	ck_assert_int_eq(check_one(buf, t4.len, good, SN_OFFLOAD_ALL, NULL), -EINVAL);
	buf[t4.l3] = 0x45;
	ck_assert_int_eq(check_one(buf, t4.l4 + 10, good, SN_OFFLOAD_ALL, NULL), -EINVAL); /* cut in TCP */
	ck_assert_int_eq(check_one(buf, t4.l3 + 10, good, SN_OFFLOAD_ALL, NULL), -EINVAL); /* cut in IP */
	/* three tags, and IPv6 extension headers that never end */
	{
		uint8_t *b3 = buf + 40000;
		struct layout l = build(b3 + 4, mac_b, 2, 6, 6, false, TCP_ACK, 3000);
		struct sn_offload h3 = gso_hdr(&l, 1000);

		memmove(b3, b3 + 4, 12);
		sn_put_be16(b3 + 12, 0x8100);
		sn_put_be16(b3 + 14, 5);
		h3.csum_start += 4;
		h3.hdr_len += 4;
		ck_assert_int_eq(check_one(b3, l.len + 4, h3, SN_OFFLOAD_ALL, NULL), -EINVAL);
		l = build(b3, mac_b, 0, 6, 6, false, TCP_ACK, 3000);
		h3 = gso_hdr(&l, 1000);
		b3[l.l3 + 6] = 0; /* hop-by-hop options, then the TCP header read as options again */
		for (uint32_t k = l.l3 + 40; k < l.len; k += 8) {
			b3[k] = 60;
			b3[k + 1] = 0;
		}
		ck_assert_int_eq(check_one(b3, l.len, h3, SN_OFFLOAD_ALL, NULL), -EINVAL);
		b3[l.l3 + 6] = 44; /* a fragment header */
		ck_assert_int_eq(check_one(b3, l.len, h3, SN_OFFLOAD_ALL, NULL), -EINVAL);
	}
#undef REFUSED
}
END_TEST

/* ---- segmenting ---- */

static void segment_case(int tags, int ipv, int proto, bool ext6, uint8_t flags, uint32_t payload, uint16_t mss,
			 uint32_t want_n)
{
	struct layout l = build(buf, mac_b, tags, ipv, proto, ext6, flags, payload);
	struct sn_offload h = gso_hdr(&l, mss);
	struct sn_frame *f = frame_of(buf, l.len, &h);
	uint32_t free_before;

	ck_assert_int_eq(sn_offload_check(f, SN_OFFLOAD_ALL, 9000), 0);
	free_before = sn_pool_free_count(&sw->pool);
	ck_assert_int_eq(sn_offload_segment(&sw->pool, f), (int)want_n);
	ck_assert_uint_eq(sn_pool_free_count(&sw->pool), free_before - want_n);
	{
		struct sn_frame *segs[SN_OFFLOAD_MAX_SEGS + 1];
		uint32_t n = 0;

		for (struct sn_frame *s = f->segs; s && n <= SN_OFFLOAD_MAX_SEGS; s = s->seg_next)
			segs[n++] = s;
		ck_assert_uint_eq(n, want_n);
		check_segments(buf, &l, mss, segs, want_n);
	}
	sn_frame_unref(f); /* the segments go with it */
	ck_assert_uint_eq(sn_pool_free_count(&sw->pool), free_before + 1);
}

START_TEST(segment_tcp4)
{
	segment_case(0, 4, 6, false, TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR | TCP_ECE, 10000, 1448, 7);
}
END_TEST

START_TEST(segment_tcp6)
{
	segment_case(0, 6, 6, false, TCP_ACK | TCP_PSH | TCP_CWR, 20000, 1428, 15);
	segment_case(0, 6, 6, true, TCP_ACK | TCP_FIN, 5000, 1000, 5);
}
END_TEST

START_TEST(segment_udp)
{
	segment_case(0, 4, 17, false, 0, 8000, 1472, 6);
	segment_case(0, 6, 17, false, 0, 8000, 1452, 6);
	segment_case(1, 6, 17, true, 0, 3001, 1000, 4);
}
END_TEST

START_TEST(segment_vlan)
{
	segment_case(1, 4, 6, false, TCP_ACK | TCP_PSH, 6000, 1444, 5);
	segment_case(2, 6, 6, false, TCP_ACK | TCP_PSH, 6000, 1400, 5);
	segment_case(1, 4, 17, false, 0, 6000, 1468, 5);
}
END_TEST

START_TEST(segment_edges)
{
	segment_case(0, 4, 6, false, TCP_ACK | TCP_PSH, 4 * 1448, 1448, 4);      /* a multiple of gso_size */
	segment_case(0, 4, 6, false, TCP_ACK | TCP_PSH | TCP_FIN, 1000, 1448, 1); /* one segment */
	segment_case(0, 4, 6, false, TCP_ACK | TCP_FIN, 0, 1448, 1);              /* no payload */
	segment_case(0, 4, 6, false, TCP_ACK, 1449, 1448, 2);                     /* one byte over */
	segment_case(0, 4, 17, false, 0, 128 * 100, 100, SN_OFFLOAD_MAX_SEGS);   /* the cap */
	segment_case(0, 6, 6, false, TCP_ACK, 65000, 1440, 46);                   /* nearly 64 KiB */
}
END_TEST

START_TEST(segment_pool_empty)
{
	struct layout l = build(buf, mac_b, 0, 4, 6, false, TCP_ACK, 20000);
	struct sn_offload h = gso_hdr(&l, 1000);
	struct sn_frame *f = frame_of(buf, l.len, &h), *hold[POOL];
	uint32_t n = 0, free_now;

	ck_assert_int_eq(sn_offload_check(f, SN_OFFLOAD_ALL, 1500), 0);
	/* leave 5 standard buffers: 20 segments cannot be made */
	while (sw->pool.std.nfree > 5)
		hold[n++] = sn_pool_get(&sw->pool, 100);
	free_now = sn_pool_free_count(&sw->pool);
	ck_assert_int_eq(sn_offload_segment(&sw->pool, f), -ENOBUFS);
	ck_assert_ptr_null(f->segs);
	ck_assert_uint_eq(sn_pool_free_count(&sw->pool), free_now);
	while (n)
		sn_frame_unref(hold[--n]);
	sn_frame_unref(f);
}
END_TEST

START_TEST(csum_finish)
{
	static const struct {
		int ipv, proto, tags;
	} cases[] = {{4, 17, 0}, {6, 6, 1}, {4, 6, 2}, {6, 17, 0}};

	for (unsigned i = 0; i < SN_ARRAY_SIZE(cases); i++) {
		for (uint32_t payload = 0; payload < 40; payload += 13) {
			struct layout l = build(buf, mac_b, cases[i].tags, cases[i].ipv, cases[i].proto, false, TCP_ACK, payload);
			struct sn_offload h = {.flags = SN_VNET_F_NEEDS_CSUM, .csum_start = (uint16_t)l.l4,
					       .csum_offset = cases[i].proto == 6 ? 16 : 6};
			struct sn_frame *f = frame_of(buf, l.len, &h);

			ck_assert_int_eq(sn_offload_check(f, SN_OFFLOAD_CSUM, 1500), 0);
			sn_offload_csum_finish(f);
			check_l4_csum(f->data, f->len, &l);
			ck_assert_uint_eq(f->off.flags, SN_VNET_F_DATA_VALID);
			ck_assert_uint_eq(f->off.need, 0);
			sn_frame_unref(f);
		}
	}
}
END_TEST

START_TEST(infer_from_bytes)
{
	/* a large TCP frame as vmnet with TSO and checksum offload hands it over: no header,
	 * checksums left to whoever gets it */
	struct layout l = build(buf, mac_b, 0, 4, 6, false, TCP_ACK | TCP_PSH, 9000);
	struct sn_frame *f;
	struct sn_frame *segs[SN_OFFLOAD_MAX_SEGS];
	uint32_t n = 0;
	uint8_t want[SN_POOL_JUMBO_CAP];

	memcpy(want, buf, l.len);
	sn_put_be16(buf + l.l3 + 10, 0x1234); /* whatever the peer left */
	sn_put_be16(buf + l.l4 + 16, 0xbeef);
	f = frame_of(buf, l.len, NULL);
	sn_offload_infer(f, 1500);
	ck_assert_mem_eq(f->data, want, l.len); /* both fields as a guest would have left them */
	ck_assert_uint_eq(f->off.gso, SN_VNET_GSO_TCPV4);
	ck_assert_uint_eq(f->off.gso_size, 1500 - 20 - 32);
	ck_assert_int_eq(sn_offload_check(f, SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO6, 1500), 0);
	ck_assert_int_eq(sn_offload_segment(&sw->pool, f), 7);
	for (struct sn_frame *s = f->segs; s; s = s->seg_next)
		segs[n++] = s;
	check_segments(want, &l, 1448, segs, n);
	sn_frame_unref(f);
	/* a short UDP frame with Ethernet padding: the padding goes, the checksum comes right */
	l = build(buf, mac_b, 1, 6, 17, false, 0, 10);
	memset(buf + l.len, 0xee, 20);
	f = frame_of(buf, l.len + 20, NULL);
	sn_offload_infer(f, 1500);
	ck_assert_uint_eq(f->len, l.len);
	ck_assert_uint_eq(f->off.flags, SN_VNET_F_NEEDS_CSUM);
	ck_assert_uint_eq(f->off.gso, 0);
	ck_assert_int_eq(sn_offload_check(f, SN_OFFLOAD_CSUM, 1500), 0);
	sn_offload_csum_finish(f);
	check_l4_csum(f->data, f->len, &l);
	sn_frame_unref(f);
	/* not TCP or UDP, or an IP length past the frame: left alone */
	f = frame_of(buf, 30, NULL);
	sn_offload_infer(f, 1500);
	ck_assert_uint_eq(f->len, 30);
	ck_assert_uint_eq(f->off.flags | f->off.gso, 0);
	sn_frame_unref(f);
	l = build(buf, mac_b, 0, 4, 17, false, 0, 100);
	sn_put_be16(buf + l.l3 + 2, (uint16_t)(l.len - l.l3 + 1));
	f = frame_of(buf, l.len, NULL);
	sn_offload_infer(f, 1500);
	ck_assert_uint_eq(f->off.flags | f->off.gso, 0);
	ck_assert_mem_eq(f->data, buf, l.len);
	sn_frame_unref(f);
}
END_TEST

/* ---- through the switch ---- */

static void input(struct tport *in, const uint8_t *b, uint32_t len, const struct sn_offload *o)
{
	struct sn_frame *f = frame_of(b, len, o);

	sn_port_input(&in->base, &f, 1);
	ev_run(loop, EVRUN_NOWAIT);
}

START_TEST(switch_whole_or_segments)
{
	struct tport *a = tport_new("a", SN_OFFLOAD_ALL, SN_OFFLOAD_ALL), *b = tport_new("b", SN_OFFLOAD_ALL, 0),
		     *c = tport_new("c", 0, 0), *d = tport_new("d", SN_OFFLOAD_CSUM, 0),
		     *e = tport_new("e", SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO6, 0);
	struct layout l = build(buf, bcast, 0, 4, 6, false, TCP_ACK | TCP_PSH, 10000);
	struct sn_offload h = gso_hdr(&l, 1448);
	uint32_t free_before = sn_pool_free_count(&sw->pool);

	/* flooded: b takes TSO4 and gets the frame as it came; c, d and e share one set of segments */
	input(a, buf, l.len, &h);
	ck_assert_uint_eq(a->got, 0);
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(b->frames[0]->len, l.len);
	ck_assert_mem_eq(b->frames[0]->data, buf, l.len);
	ck_assert_uint_eq(b->frames[0]->off.gso, SN_VNET_GSO_TCPV4);
	ck_assert_uint_eq(b->frames[0]->off.gso_size, 1448);
	ck_assert_uint_eq(b->frames[0]->off.csum_start, l.l4);
	ck_assert_uint_eq(b->frames[0]->off.hdr_len, l.pay);
	ck_assert_uint_eq(c->got, 7);
	ck_assert_uint_eq(d->got, 7);
	ck_assert_uint_eq(e->got, 7);
	for (uint32_t i = 0; i < 7; i++) {
		ck_assert_ptr_eq(c->frames[i], d->frames[i]); /* shared, not copied again */
		ck_assert_ptr_eq(c->frames[i], e->frames[i]);
		ck_assert_ptr_eq(c->frames[i]->seg_next, i + 1 < 7 ? c->frames[i + 1] : NULL);
	}
	check_segments(buf, &l, 1448, c->frames, 7);
	ck_assert_uint_eq(c->base.stats.tx_frames, 7);
	ck_assert_uint_eq(b->base.stats.tx_bytes, l.len);
	ck_assert_uint_eq(a->base.stats.rx_frames, 1);
	ck_assert_uint_eq(a->base.stats.drop_bad_offload, 0);
	/* the test ports hold what they got: 1 frame and 7 segments */
	ck_assert_uint_eq(sn_pool_free_count(&sw->pool), free_before - 8);
}
END_TEST

START_TEST(switch_partial_checksum)
{
	struct tport *a = tport_new("a", 0, SN_OFFLOAD_CSUM), *b = tport_new("b", SN_OFFLOAD_CSUM, 0),
		     *c = tport_new("c", 0, 0);
	struct layout l = build(buf, bcast, 0, 6, 17, false, 0, 200);
	struct sn_offload h = {.flags = SN_VNET_F_NEEDS_CSUM, .csum_start = (uint16_t)l.l4, .csum_offset = 6};

	/* b first in the flood gets it partial; c's turn fills it in, and b's copy says so then */
	input(a, buf, l.len, &h);
	ck_assert_uint_eq(b->got, 1);
	ck_assert_uint_eq(c->got, 1);
	ck_assert_ptr_eq(b->frames[0], c->frames[0]);
	check_l4_csum(c->frames[0]->data, c->frames[0]->len, &l);
	ck_assert_uint_eq(c->frames[0]->off.flags, SN_VNET_F_DATA_VALID);
	/* known unicast to a port that takes it: left to it */
	memcpy(buf, mac_b, 6);
	input(b, (uint8_t[60]){0x52, 0x54, 0, 0, 0, 0x0a, 0x52, 0x54, 0, 0, 0, 0x0b, 0x08, 0x06}, 60, NULL);
	input(a, buf, l.len, &h);
	ck_assert_uint_eq(b->got, 2);
	ck_assert_uint_eq(c->got, 1);
	ck_assert_uint_eq(b->frames[1]->off.flags, SN_VNET_F_NEEDS_CSUM);
	ck_assert_uint_eq(ref_fold(pseudo_ref(buf + l.l3, 6, 17, l.len - l.l4)), sn_get_be16(b->frames[1]->data + l.l4 + 6));
}
END_TEST

START_TEST(switch_malformed_dropped)
{
	struct tport *a = tport_new("a", SN_OFFLOAD_ALL, SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4), *b = tport_new("b", 0, 0),
		     *c = tport_new("c", SN_OFFLOAD_ALL, 0);
	struct layout l = build(buf, bcast, 0, 4, 6, false, TCP_ACK, 5000);
	struct sn_offload h = gso_hdr(&l, 0);
	uint32_t free_before = sn_pool_free_count(&sw->pool);

	input(a, buf, l.len, &h); /* gso_size 0 */
	h = gso_hdr(&l, 1000);
	h.csum_start = 60000;
	input(a, buf, l.len, &h);
	h = gso_hdr(&l, 1000);
	h.gso = SN_VNET_GSO_TCPV6; /* not negotiated, and the wrong IP version */
	input(a, buf, l.len, &h);
	h = gso_hdr(&l, 1000);
	h.hdr_len = (uint16_t)(l.len + 1);
	input(a, buf, l.len, &h);
	ck_assert_uint_eq(a->base.stats.drop_bad_offload, 4);
	ck_assert_uint_eq(a->base.stats.rx_frames, 0);
	ck_assert_uint_eq(b->got + c->got, 0);
	/* segments over the MTU are oversize; the port goes on with the next frame */
	h = gso_hdr(&l, 1480);
	input(a, buf, l.len, &h);
	ck_assert_uint_eq(a->base.stats.drop_oversize, 1);
	h = gso_hdr(&l, 1000);
	input(a, buf, l.len, &h);
	ck_assert_uint_eq(b->got, 5);
	ck_assert_uint_eq(c->got, 1);
	ck_assert_uint_eq(a->base.stats.drop_bad_offload, 4);
	ck_assert_uint_eq(sn_pool_free_count(&sw->pool), free_before - 6);
	/* a port that negotiated nothing: any offload it claims is refused */
	h = gso_hdr(&l, 1000);
	input(b, buf, l.len, &h);
	ck_assert_uint_eq(b->base.stats.drop_bad_offload, 1);
	/* a large frame without GSO is oversize as always */
	input(a, buf, l.len, NULL);
	ck_assert_uint_eq(a->base.stats.drop_oversize, 2);
}
END_TEST

START_TEST(switch_vlan_and_segments)
{
	struct sn_error err;
	struct tport *a = tport_new("a", 0, SN_OFFLOAD_ALL), *t = tport_new("t", 0, 0),
		     *to = tport_new("to", SN_OFFLOAD_ALL, 0), *u = tport_new("u", 0, 0);
	struct layout l = build(buf, bcast, 0, 4, 6, false, TCP_ACK | TCP_PSH, 4000);
	struct sn_offload h = gso_hdr(&l, 1448);
	struct layout lt;
	uint8_t tagged[8000];

	ck_assert_int_eq(sn_switch_port_set(sw, "a", "vlan=10", &err), 0);
	ck_assert_int_eq(sn_switch_port_set(sw, "t", "trunk=10", &err), 0);
	ck_assert_int_eq(sn_switch_port_set(sw, "to", "trunk=10", &err), 0);
	ck_assert_int_eq(sn_switch_port_set(sw, "u", "vlan=10", &err), 0);
	/* in untagged on an access port: segments tagged for the plain trunk, the whole frame
	 * tagged, with its offsets 4 further on, for the one that takes TSO, untagged segments
	 * for the access port */
	input(a, buf, l.len, &h);
	ck_assert_uint_eq(t->got, 3);
	ck_assert_uint_eq(to->got, 1);
	ck_assert_uint_eq(u->got, 3);
	lt = build(tagged, bcast, 1, 4, 6, false, TCP_ACK | TCP_PSH, 4000);
	check_segments(tagged, &lt, 1448, t->frames, 3);
	check_segments(buf, &l, 1448, u->frames, 3);
	ck_assert_uint_eq(to->frames[0]->len, l.len + 4);
	ck_assert_mem_eq(to->frames[0]->data, tagged, lt.len);
	ck_assert_uint_eq(to->frames[0]->off.csum_start, l.l4 + 4);
	ck_assert_uint_eq(to->frames[0]->off.hdr_len, l.pay + 4);
	/* and back: tagged in on the trunk, popped for the access ports */
	h = gso_hdr(&lt, 1448);
	ck_assert_int_eq(sn_port_set_offloads(&to->base, SN_OFFLOAD_ALL, SN_OFFLOAD_ALL), 0);
	ck_assert_int_eq(sn_port_set_offloads(&a->base, SN_OFFLOAD_ALL, SN_OFFLOAD_ALL), 0);
	input(to, tagged, lt.len, &h);
	ck_assert_uint_eq(a->got, 1);
	ck_assert_uint_eq(a->frames[0]->len, l.len);
	ck_assert_mem_eq(a->frames[0]->data, buf, l.len);
	ck_assert_uint_eq(a->frames[0]->off.csum_start, l.l4);
	ck_assert_uint_eq(a->frames[0]->off.hdr_len, l.pay);
	ck_assert_uint_eq(u->got, 6);
	ck_assert_uint_eq(t->got, 6);
}
END_TEST

START_TEST(switch_pool_runs_out)
{
	struct tport *a = tport_new("a", 0, SN_OFFLOAD_ALL), *b = tport_new("b", 0, 0), *c = tport_new("c", 0, 0);
	struct layout l = build(buf, bcast, 0, 4, 6, false, TCP_ACK, 30000);
	struct sn_offload h = gso_hdr(&l, 1000);
	struct sn_frame *hold[POOL];
	uint32_t n = 0;

	while (sw->pool.std.nfree > 10)
		hold[n++] = sn_pool_get(&sw->pool, 100);
	input(a, buf, l.len, &h);
	/* 30 segments cannot be made from 10 buffers: both go without, counted, and the buffers
	 * are back */
	ck_assert_uint_eq(b->got + c->got, 0);
	ck_assert_uint_eq(b->base.stats.drop_no_buffer, 1);
	ck_assert_uint_eq(c->base.stats.drop_no_buffer, 1);
	ck_assert_uint_eq(sw->pool.std.nfree, 10);
	while (n)
		sn_frame_unref(hold[--n]);
	/* with the buffers back, the next one is cut and shared */
	input(a, buf, l.len, &h);
	ck_assert_uint_eq(b->got, 30);
	ck_assert_uint_eq(c->got, 30);
	ck_assert_ptr_eq(b->frames[29], c->frames[29]);
}
END_TEST

START_TEST(set_offloads_drops_queued)
{
	struct tport *a = tport_new("a", 0, SN_OFFLOAD_ALL), *b = tport_new("b", SN_OFFLOAD_ALL, 0);
	struct layout l = build(buf, bcast, 0, 4, 6, false, TCP_ACK, 3000);
	struct sn_offload h = gso_hdr(&l, 1000);
	struct sn_frame *f = frame_of(buf, l.len, &h);
	char tx[64];

	sn_port_input(&a->base, &f, 1); /* queued on b, not flushed yet */
	ck_assert_uint_eq(sn_txq_len(&b->base.txq), 1);
	ck_assert_int_eq(sn_port_set_offloads(&b->base, SN_OFFLOAD_CSUM, 0), 0);
	ck_assert_uint_eq(sn_txq_len(&b->base.txq), 0);
	sn_offload_names(b->base.offload_tx, tx, sizeof(tx));
	ck_assert_str_eq(tx, "csum");
	sn_offload_names(SN_OFFLOAD_ALL, tx, sizeof(tx));
	ck_assert_str_eq(tx, "csum,tso4,tso6,ecn,uso4,uso6");
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"csum_matches_reference", csum_matches_reference},
		{"vnet_hdr_roundtrip", vnet_hdr_roundtrip},
		{"check_accepts", check_accepts},
		{"check_refuses_malformed", check_refuses_malformed},
		{"segment_tcp4", segment_tcp4},
		{"segment_tcp6", segment_tcp6},
		{"segment_udp", segment_udp},
		{"segment_vlan", segment_vlan},
		{"segment_edges", segment_edges},
		{"segment_pool_empty", segment_pool_empty},
		{"csum_finish", csum_finish},
		{"infer_from_bytes", infer_from_bytes},
		{"switch_whole_or_segments", switch_whole_or_segments},
		{"switch_partial_checksum", switch_partial_checksum},
		{"switch_malformed_dropped", switch_malformed_dropped},
		{"switch_vlan_and_segments", switch_vlan_and_segments},
		{"switch_pool_runs_out", switch_pool_runs_out},
		{"set_offloads_drops_queued", set_offloads_drops_queued},
	};

	return sn_check_main("offload", cases, SN_CHECK_N(cases), setup, teardown, 30);
}
