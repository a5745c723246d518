/* offload.c - what a frame's offload state claims, checked against its bytes, and the work a
 * receiver that cannot take the offload would have done: checksums filled in, large TCP and UDP
 * frames cut into segments (offload.h says what is checked and made).
 *
 * Everything here reads guest- or peer-controlled bytes, so every offset is checked against
 * the frame's length before it is read, and the segment count is capped before anything is
 * cut. The checksums are the Internet checksum (RFC 1071): 16-bit ones' complement sums, which
 * do not depend on byte order, so words are summed as memory holds them and the result is
 * stored back the same way. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "offload.h"
#include "pool.h"
#include "util.h"
#include "vlan.h"

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86dd
#define PROTO_TCP 6
#define PROTO_UDP 17
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80
#define IPV6_EXT_MAX 4

/* ---- checksums ---- */

uint64_t sn_csum_add(uint64_t sum, const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t w;

	/* 64-bit words with the carry wrapped around: the same ones' complement sum as 16-bit
	 * words, four at a time */
	while (len >= 8) {
		memcpy(&w, b, 8);
		sum += w;
		sum += sum < w;
		b += 8;
		len -= 8;
	}
	w = 0;
	memcpy(&w, b, len); /* the rest, zero-padded: an odd last byte is a word's first byte */
	sum += w;
	sum += sum < w;
	return sum;
}

uint16_t sn_csum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffu) + (sum >> 16);
	sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)~sum;
}

/* A 16-bit value as the sum sees the big-endian word in memory. */
static inline uint64_t word(uint16_t v)
{
	return htons(v);
}

static inline void put_csum(uint8_t *at, uint16_t c)
{
	memcpy(at, &c, 2);
}

/* ---- the virtio-net header ---- */

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void sn_vnet_hdr_get(const uint8_t *hdr, struct sn_offload *ret)
{
	*ret = (struct sn_offload){
		.flags = hdr[0],
		.gso = hdr[1],
		.hdr_len = get_le16(hdr + 2),
		.gso_size = get_le16(hdr + 4),
		.csum_start = get_le16(hdr + 6),
		.csum_offset = get_le16(hdr + 8),
	};
}

int sn_vnet_hdr_put(uint8_t *hdr, const struct sn_offload *o, uint32_t caps)
{
	memset(hdr, 0, 10);
	if (sn_unlikely(o->need & ~caps))
		return -ENOTSUP;
	if (!(caps & SN_OFFLOAD_CSUM))
		return 0; /* flags must be zero for a driver without GUEST_CSUM */
	hdr[0] = o->flags & (SN_VNET_F_NEEDS_CSUM | SN_VNET_F_DATA_VALID);
	if (o->flags & SN_VNET_F_NEEDS_CSUM) {
		put_le16(hdr + 6, o->csum_start);
		put_le16(hdr + 8, o->csum_offset);
	}
	if (o->gso) {
		hdr[1] = o->gso;
		put_le16(hdr + 2, o->hdr_len);
		put_le16(hdr + 4, o->gso_size);
	}
	return 0;
}

/* ---- finding the headers ---- */

struct l34 {
	uint32_t l3, l4, pay; /* offsets of the IP header, the TCP or UDP header, the payload */
	uint8_t ipv, proto;
};

/* Offset of the frame's network header: after the Ethernet header and up to two tags.
 * -EINVAL when the frame ends before it (or has more tags). */
static int l2_len(const uint8_t *d, uint32_t len, uint16_t *ret_et)
{
	uint32_t off = 12;

	for (int tags = 0;; tags++) {
		uint16_t et;

		if (len < off + 2)
			return -EINVAL;
		et = sn_get_be16(d + off);
		off += 2;
		if (et != SN_TPID_8021Q && et != SN_TPID_8021AD) {
			*ret_et = et;
			return (int)off;
		}
		if (tags == 2)
			return -EINVAL;
		off += 2;
	}
}

/* The IP and transport headers of a frame: IPv4 that is not a fragment, or IPv6 with at most
 * IPV6_EXT_MAX extension headers of the kinds that may come before TCP or UDP, then TCP or
 * UDP, all inside the frame. */
static int parse_l34(const uint8_t *d, uint32_t len, struct l34 *ret)
{
	uint16_t et;
	int l3 = l2_len(d, len, &et);
	uint32_t off;

	if (l3 < 0)
		return -EINVAL;
	off = (uint32_t)l3;
	if (et == ETH_P_IPV4) {
		uint32_t ihl;

		if (len < off + 20 || d[off] >> 4 != 4)
			return -EINVAL;
		ihl = (d[off] & 15u) * 4;
		if (ihl < 20 || len < off + ihl)
			return -EINVAL;
		if (sn_get_be16(d + off + 6) & 0x3fff) /* MF or a fragment offset */
			return -EINVAL;
		ret->ipv = 4;
		ret->proto = d[off + 9];
		ret->l4 = off + ihl;
	} else if (et == ETH_P_IPV6) {
		uint8_t nh;

		if (len < off + 40 || d[off] >> 4 != 6)
			return -EINVAL;
		nh = d[off + 6];
		ret->l4 = off + 40;
		for (int i = 0; nh == 0 || nh == 43 || nh == 60; i++) {
			uint32_t at = ret->l4;

			if (i == IPV6_EXT_MAX || len < at + 8)
				return -EINVAL;
			nh = d[at];
			ret->l4 = at + (d[at + 1] + 1u) * 8;
			if (len < ret->l4)
				return -EINVAL;
		}
		ret->ipv = 6;
		ret->proto = nh;
	} else {
		return -EINVAL;
	}
	ret->l3 = off;
	if (ret->proto == PROTO_TCP) {
		uint32_t thl;

		if (len < ret->l4 + 20)
			return -EINVAL;
		thl = (d[ret->l4 + 12] >> 4) * 4u;
		if (thl < 20 || len < ret->l4 + thl)
			return -EINVAL;
		ret->pay = ret->l4 + thl;
	} else if (ret->proto == PROTO_UDP) {
		if (len < ret->l4 + 8)
			return -EINVAL;
		ret->pay = ret->l4 + 8;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* ---- the checks on the way in ---- */

int sn_offload_check(struct sn_frame *f, uint32_t caps, unsigned mtu)
{
	struct sn_offload *o = &f->off;
	uint8_t type = o->gso & (uint8_t)~SN_VNET_GSO_ECN;
	uint32_t len = f->len, payload, nseg, seg;
	uint16_t et;
	struct l34 h;

	o->flags &= SN_VNET_F_NEEDS_CSUM | SN_VNET_F_DATA_VALID;
	o->need = 0;
	o->seg_ip = 0;
	if (type == SN_VNET_GSO_NONE) {
		int l2;

		if (o->gso)
			return -EINVAL; /* ECN without segmentation */
		o->hdr_len = o->gso_size = 0;
		if (!(o->flags & SN_VNET_F_NEEDS_CSUM)) {
			o->csum_start = o->csum_offset = 0;
			return 0;
		}
		if (!(caps & SN_OFFLOAD_CSUM))
			return -EINVAL;
		l2 = l2_len(f->data, len, &et);
		if (l2 < 0 || o->csum_start < (uint32_t)l2 || o->csum_start >= len || len - o->csum_start < 2 ||
		    o->csum_offset > len - o->csum_start - 2)
			return -EINVAL;
		o->need = SN_OFFLOAD_CSUM;
		return 0;
	}
	if (type != SN_VNET_GSO_TCPV4 && type != SN_VNET_GSO_TCPV6 && type != SN_VNET_GSO_UDP_L4)
		return -EINVAL;
	if (!(o->flags & SN_VNET_F_NEEDS_CSUM) || o->gso_size == 0)
		return -EINVAL;
	if (parse_l34(f->data, len, &h) < 0)
		return -EINVAL;
	switch (type) {
	case SN_VNET_GSO_TCPV4:
		if (h.ipv != 4 || h.proto != PROTO_TCP)
			return -EINVAL;
		o->need = SN_OFFLOAD_TSO4;
		break;
	case SN_VNET_GSO_TCPV6:
		if (h.ipv != 6 || h.proto != PROTO_TCP)
			return -EINVAL;
		o->need = SN_OFFLOAD_TSO6;
		break;
	default:
		if (h.proto != PROTO_UDP || (o->gso & SN_VNET_GSO_ECN))
			return -EINVAL;
		o->need = h.ipv == 4 ? SN_OFFLOAD_USO4 : SN_OFFLOAD_USO6;
		break;
	}
	if (o->gso & SN_VNET_GSO_ECN)
		o->need |= SN_OFFLOAD_TSO_ECN;
	o->need |= SN_OFFLOAD_CSUM;
	if (o->need & ~caps)
		return -EINVAL;
	if (o->csum_start != h.l4 || o->csum_offset != (h.proto == PROTO_TCP ? 16 : 6))
		return -EINVAL;
	if (o->hdr_len < h.pay || o->hdr_len > len)
		return -EINVAL;
	payload = len - h.pay;
	nseg = payload ? (payload - 1) / o->gso_size + 1 : 1;
	if (nseg > SN_OFFLOAD_MAX_SEGS)
		return -EINVAL;
	if (len > SN_OFFLOAD_FRAME_MAX)
		return -EMSGSIZE;
	seg = h.pay - h.l3 + SN_MIN(payload, (uint32_t)o->gso_size);
	if (seg > mtu)
		return -EMSGSIZE;
	o->seg_ip = (uint16_t)seg;
	return 0;
}

void sn_offload_shift(struct sn_offload *o, int delta)
{
	if (o->flags & SN_VNET_F_NEEDS_CSUM)
		o->csum_start = (uint16_t)(o->csum_start + delta);
	if (o->gso)
		o->hdr_len = (uint16_t)(o->hdr_len + delta);
}

/* ---- the work on the way out ---- */

void sn_offload_csum_finish(struct sn_frame *f)
{
	struct sn_offload *o = &f->off;
	uint8_t *d = f->data;
	uint16_t c;

	/* the field holds the pseudo-header's sum, so the sum from csum_start to the end, field
	 * included, is what the checksum complements; 0 goes as 0xffff (the same in ones'
	 * complement, and what UDP needs: 0 there means no checksum) */
	c = sn_csum_fold(sn_csum_add(0, d + o->csum_start, f->len - o->csum_start));
	put_csum(d + o->csum_start + o->csum_offset, c ? c : 0xffff);
	o->flags = SN_VNET_F_DATA_VALID;
	o->need = 0;
}

/* @a + @b in ones' complement. */
static inline uint64_t csum_plus(uint64_t a, uint64_t b)
{
	a += b;
	return a + (a < b);
}

/* The sum of the pseudo-header of a TCP or UDP segment of @l4len bytes behind IP header @ip. */
static uint64_t pseudo_sum(const uint8_t *ip, uint8_t ipv, uint8_t proto, uint32_t l4len)
{
	uint64_t s = ipv == 4 ? sn_csum_add(0, ip + 12, 8) : sn_csum_add(0, ip + 8, 32);

	return csum_plus(s, word(proto) + word((uint16_t)(l4len >> 16)) + word((uint16_t)l4len));
}

static void segs_release(struct sn_frame *s)
{
	while (s) {
		struct sn_frame *next = s->seg_next;

		s->seg_next = NULL;
		sn_frame_unref(s);
		s = next;
	}
}

int sn_offload_segment(struct sn_pool *pool, struct sn_frame *f)
{
	const struct sn_offload *o = &f->off;
	const uint8_t *d = f->data;
	uint32_t mss = o->gso_size, payload, nseg, seq = 0;
	struct sn_frame *first = NULL, **tail = &first;
	uint16_t id = 0;
	struct l34 h;
	bool tcp;

	if (!o->gso || mss == 0 || parse_l34(d, f->len, &h) < 0)
		return -EINVAL;
	tcp = h.proto == PROTO_TCP;
	payload = f->len - h.pay;
	nseg = payload ? (payload - 1) / mss + 1 : 1;
	if (nseg > SN_OFFLOAD_MAX_SEGS)
		return -EINVAL;
	if (tcp)
		seq = sn_get_be32(d + h.l4 + 4);
	if (h.ipv == 4)
		id = sn_get_be16(d + h.l3 + 4);
	for (uint32_t i = 0; i < nseg; i++) {
		uint32_t at = h.pay + i * mss, n = SN_MIN(mss, f->len - at), slen = h.pay + n;
		struct sn_frame *g = sn_pool_get(pool, slen);
		uint8_t *s, *ip, *l4;
		uint64_t sum;
		uint16_t c;

		if (!g) {
			segs_release(first);
			return -ENOBUFS;
		}
		s = g->data;
		ip = s + h.l3;
		l4 = s + h.l4;
		memcpy(s, d, h.pay);
		memcpy(s + h.pay, d + at, n);
		g->len = slen;
		g->vlan = f->vlan;
		g->tpid = f->tpid;
		g->tci = f->tci;
		g->off = (struct sn_offload){.flags = SN_VNET_F_DATA_VALID};
		if (h.ipv == 4) {
			/* ids count up from the large frame's, as the sender's stack would have sent them */
			sn_put_be16(ip + 2, (uint16_t)(slen - h.l3));
			sn_put_be16(ip + 4, (uint16_t)(id + i));
			put_csum(ip + 10, 0);
			put_csum(ip + 10, sn_csum_fold(sn_csum_add(0, ip, h.l4 - h.l3)));
		} else {
			sn_put_be16(ip + 4, (uint16_t)(slen - h.l3 - 40));
		}
		if (tcp) {
			uint8_t flags = l4[13];

			/* FIN and PSH end the data, so they go with its last byte; CWR answers ECE once */
			if (i + 1 < nseg)
				flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
			if (i > 0)
				flags &= (uint8_t)~TCP_CWR;
			l4[13] = flags;
			sn_put_be32(l4 + 4, seq + i * mss);
			put_csum(l4 + 16, 0);
		} else {
			sn_put_be16(l4 + 4, (uint16_t)(slen - h.l4));
			put_csum(l4 + 6, 0);
		}
		sum = pseudo_sum(ip, h.ipv, h.proto, slen - h.l4);
		sum = sn_csum_add(sum, l4, h.pay - h.l4);
		sum = sn_csum_add(sum, s + h.pay, n); /* the payload starts a word: TCP and UDP headers are even */
		c = sn_csum_fold(sum);
		put_csum(l4 + (tcp ? 16 : 6), c ? c : 0xffff);
		*tail = g;
		tail = &g->seg_next;
	}
	f->segs = first;
	return (int)nseg;
}

void sn_offload_infer(struct sn_frame *f, unsigned mtu)
{
	struct sn_offload *o = &f->off;
	uint8_t *d = f->data;
	uint32_t ip_end;
	struct l34 h;
	bool tcp;

	if (parse_l34(d, f->len, &h) < 0)
		return;
	/* the IP length says where the packet ends: past it is Ethernet padding, which no
	 * checksum covers */
	ip_end = h.l3 + (h.ipv == 4 ? sn_get_be16(d + h.l3 + 2) : 40u + sn_get_be16(d + h.l3 + 4));
	if (ip_end < h.pay || ip_end > f->len)
		return; /* not what it says: left as it came, for the receiver to judge */
	f->len = ip_end;
	tcp = h.proto == PROTO_TCP;
	if (h.ipv == 4) {
		put_csum(d + h.l3 + 10, 0);
		put_csum(d + h.l3 + 10, sn_csum_fold(sn_csum_add(0, d + h.l3, h.l4 - h.l3)));
	}
	/* whatever the field held: the pseudo-header's sum, so the receiver's sum is right */
	put_csum(d + h.l4 + (tcp ? 16 : 6), (uint16_t)~sn_csum_fold(pseudo_sum(d + h.l3, h.ipv, h.proto, f->len - h.l4)));
	*o = (struct sn_offload){
		.flags = SN_VNET_F_NEEDS_CSUM,
		.csum_start = (uint16_t)h.l4,
		.csum_offset = tcp ? 16 : 6,
	};
	if (tcp && f->len - h.l3 > mtu && mtu > h.pay - h.l3) {
		o->gso = h.ipv == 4 ? SN_VNET_GSO_TCPV4 : SN_VNET_GSO_TCPV6;
		o->gso_size = (uint16_t)(mtu - (h.pay - h.l3));
		o->hdr_len = (uint16_t)h.pay;
	}
}

void sn_offload_names(uint32_t caps, char *buf, size_t len)
{
	static const char *const names[] = {"csum", "tso4", "tso6", "ecn", "uso4", "uso6"};
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	for (unsigned i = 0; i < SN_ARRAY_SIZE(names); i++)
		if (caps & (1u << i))
			off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s", off ? "," : "", names[i]);
}
