/* fuzz-offload.c - the offload checks and the software fallback (offload.c) against a frame and
 * a virtio-net header the fuzzer writes, alone and through a real switch.
 *
 * Input: a 16-byte head, then the frame (at most 64 KiB).
 *
 *   byte 0      the offloads the sender negotiated (SN_OFFLOAD_* bits 0-5); bit 6: through the
 *               switch; bit 7: the sender's port is a trunk of VLAN 10 (else transparent)
 *   bytes 1-2   the sender's MTU (u16 LE, taken into 68..9000)
 *   bytes 3-12  the virtio-net header's first 10 bytes (flags, gso_type, hdr_len, gso_size,
 *               csum_start, csum_offset, little-endian)
 *   byte 13     switch path: which receivers take offloads (bit i: receiver i takes all)
 *   bytes 14-15 reserved
 *
 * Alone: sn_offload_check(), then for a GSO frame sn_offload_segment(), for a partial checksum
 * sn_offload_csum_finish(). Through the switch: the frame enters a port with those offloads
 * and goes to four receivers (transparent, an access port of VLAN 10, a trunk of VLAN 10, a
 * trunk in 802.1ad), each taking all offloads or none.
 *
 * Oracles besides the sanitizers, from a parser and a checksum of this file's own: the check
 * returns 0, -EINVAL or -EMSGSIZE, and 0 only for offsets inside the frame, needs within what was
 * negotiated, segments within the MTU; every segment is a plain frame whose IP length is within
 * the MTU, whose IPv4 header, TCP or UDP checksum and lengths verify, whose sequence number
 * counts on, whose payloads put together are the frame's; a filled-in checksum verifies and
 * changes nothing else; a receiver that takes no offloads only ever gets plain frames, within
 * its MTU; one that takes them gets headers it can write; nothing is left allocated. */
#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "offload.h"
#include "port.h"
#include "util.h"

#include "fuzz.h"

#define NRECV 4

struct fport {
	struct sn_port base;
	bool takes;
};

static struct ev_loop *loop;
static uint8_t orig[SN_POOL_JUMBO_CAP];
static bool gso_in; /* switch path: the frame came as GSO, so plain receivers get segments */

/* ---- an independent reading of the frame ---- */

struct parsed {
	uint32_t l3, l4, pay;
	int ipv, proto;
};

static uint32_t ref_sum(const uint8_t *p, uint32_t len, uint32_t s)
{
	for (uint32_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	return s;
}

static uint16_t ref_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static bool parse(const uint8_t *d, uint32_t len, struct parsed *p)
{
	uint32_t off = 12;
	uint16_t et;
	int tags = 0;

	for (;;) {
		if (off + 2 > len)
			return false;
		et = sn_get_be16(d + off);
		off += 2;
		if (et != 0x8100 && et != 0x88a8)
			break;
		if (++tags > 2)
			return false;
		off += 2;
	}
	p->l3 = off;
	if (et == 0x0800) {
		uint32_t ihl;

		if (off + 20 > len || d[off] >> 4 != 4)
			return false;
		ihl = (d[off] & 15u) * 4;
		if (ihl < 20 || off + ihl > len)
			return false;
		p->ipv = 4;
		p->proto = d[off + 9];
		p->l4 = off + ihl;
	} else if (et == 0x86dd) {
		uint8_t nh;

		if (off + 40 > len || d[off] >> 4 != 6)
			return false;
		nh = d[off + 6];
		p->l4 = off + 40;
		for (int i = 0; nh == 0 || nh == 43 || nh == 60; i++) {
			if (i == 4 || p->l4 + 8 > len)
				return false;
			nh = d[p->l4];
			p->l4 += (d[p->l4 + 1] + 1u) * 8;
			if (p->l4 > len)
				return false;
		}
		p->ipv = 6;
		p->proto = nh;
	} else {
		return false;
	}
	if (p->proto == 6) {
		if (p->l4 + 20 > len || p->l4 + (d[p->l4 + 12] >> 4) * 4u > len)
			return false;
		p->pay = p->l4 + (d[p->l4 + 12] >> 4) * 4u;
	} else if (p->proto == 17) {
		if (p->l4 + 8 > len)
			return false;
		p->pay = p->l4 + 8;
	} else {
		return false;
	}
	return true;
}

static void check_l4(const uint8_t *d, uint32_t len, const struct parsed *p, const char *what)
{
	uint32_t l4len = len - p->l4, s;

	s = p->ipv == 4 ? ref_sum(d + p->l3 + 12, 8, 0) : ref_sum(d + p->l3 + 8, 32, 0);
	s += (uint32_t)p->proto + (l4len >> 16) + (l4len & 0xffff);
	if (ref_fold(ref_sum(d + p->l4, l4len, s)) != 0xffff)
		fuzz_fail("%s: TCP/UDP checksum does not verify", what);
}

/* A segment of @f's frame @d (parsed as @p), the @i-th of @n, carrying payload from @at. */
static void check_segment(const struct sn_frame *s, const uint8_t *d, const struct parsed *p, const struct sn_offload *o,
			  uint32_t i, uint32_t n, uint32_t at, unsigned mtu)
{
	const uint8_t *g = s->data;
	uint32_t part = s->len - p->pay;

	if (s->len < p->pay || s->off.need || s->off.gso || (s->off.flags & SN_VNET_F_NEEDS_CSUM))
		fuzz_fail("segment %u: not a plain frame", i);
	if (s->len - p->l3 > mtu)
		fuzz_fail("segment %u: IP length %u over the MTU %u", i, s->len - p->l3, mtu);
	if (part > o->gso_size || (i + 1 < n && part != o->gso_size))
		fuzz_fail("segment %u: %u bytes of payload, gso_size %u", i, part, o->gso_size);
	if (memcmp(g + p->pay, d + at, part) || memcmp(g, d, p->l3))
		fuzz_fail("segment %u: payload or L2 header differs", i);
	if (p->ipv == 4) {
		if (sn_get_be16(g + p->l3 + 2) != s->len - p->l3 || ref_fold(ref_sum(g + p->l3, p->l4 - p->l3, 0)) != 0xffff)
			fuzz_fail("segment %u: IPv4 length or header checksum", i);
		if (sn_get_be16(g + p->l3 + 4) != (uint16_t)(sn_get_be16(d + p->l3 + 4) + i))
			fuzz_fail("segment %u: IP id", i);
	} else if (sn_get_be16(g + p->l3 + 4) != s->len - p->l3 - 40) {
		fuzz_fail("segment %u: IPv6 payload length", i);
	}
	if (p->proto == 6) {
		uint8_t f = d[p->l4 + 13];

		if (sn_get_be32(g + p->l4 + 4) != sn_get_be32(d + p->l4 + 4) + (at - p->pay))
			fuzz_fail("segment %u: sequence number", i);
		if (i + 1 < n)
			f &= (uint8_t)~0x09;
		if (i > 0)
			f &= (uint8_t)~0x80;
		if (g[p->l4 + 13] != f)
			fuzz_fail("segment %u: TCP flags", i);
	} else if (sn_get_be16(g + p->l4 + 4) != s->len - p->l4) {
		fuzz_fail("segment %u: UDP length", i);
	}
	check_l4(g, s->len, p, "segment");
}

/* The segments of @f: the whole payload, in order, each as check_segment() wants. */
static void check_segments(const struct sn_frame *f, const uint8_t *d, uint32_t len, unsigned mtu)
{
	struct parsed p;
	uint32_t at, n = 0, want;

	if (!parse(d, len, &p))
		fuzz_fail("a frame the check passed for GSO does not parse");
	want = len == p.pay ? 1 : (len - p.pay - 1) / f->off.gso_size + 1;
	for (const struct sn_frame *s = f->segs; s; s = s->seg_next)
		n++;
	if (n != want || n > SN_OFFLOAD_MAX_SEGS)
		fuzz_fail("%u segments, want %u", n, want);
	at = p.pay;
	n = 0;
	for (const struct sn_frame *s = f->segs; s; s = s->seg_next, n++) {
		check_segment(s, d, &p, &f->off, n, want, at, mtu);
		at += s->len - p.pay;
	}
	if (at != len)
		fuzz_fail("the segments carry %u of %u bytes", at - p.pay, len - p.pay);
}

static void check_accepted(const struct sn_frame *f, uint32_t caps, unsigned mtu)
{
	const struct sn_offload *o = &f->off;
	uint8_t hdr[10];

	if (o->need & ~caps)
		fuzz_fail("accepted a frame that needs 0x%x of 0x%x", o->need, caps);
	if ((o->flags & SN_VNET_F_NEEDS_CSUM) && (uint32_t)o->csum_start + o->csum_offset + 2 > f->len)
		fuzz_fail("accepted a checksum at %u+%u in %u bytes", o->csum_start, o->csum_offset, f->len);
	if (o->gso && (o->hdr_len > f->len || o->seg_ip > mtu || o->gso_size == 0 || f->len > SN_OFFLOAD_FRAME_MAX))
		fuzz_fail("accepted GSO with hdr_len %u gso_size %u seg %u in %u bytes", o->hdr_len, o->gso_size, o->seg_ip,
			  f->len);
	if (sn_vnet_hdr_put(hdr, o, caps) < 0)
		fuzz_fail("a header it accepted cannot be written back");
}

/* ---- alone ---- */

static void alone(struct sn_pool *pool, const uint8_t *frame, uint32_t len, const struct sn_offload *o,
		  uint32_t caps, unsigned mtu)
{
	struct sn_frame *f = sn_pool_get(pool, len);
	int r;

	if (!f)
		abort();
	memcpy(f->data, frame, len);
	f->len = len;
	f->off = *o;
	r = sn_offload_check(f, caps, mtu);
	if (r != 0 && r != -EINVAL && r != -EMSGSIZE)
		fuzz_fail("sn_offload_check: %d", r);
	if (r == 0) {
		check_accepted(f, caps, mtu);
		if (f->off.gso) {
			r = sn_offload_segment(pool, f);
			if (r <= 0)
				fuzz_fail("sn_offload_segment of an accepted frame: %d", r);
			check_segments(f, frame, len, mtu);
		} else if (f->off.flags & SN_VNET_F_NEEDS_CSUM) {
			uint32_t cs = f->off.csum_start, at = cs + f->off.csum_offset;
			uint16_t want = (uint16_t)~ref_fold(ref_sum(frame + cs, len - cs, 0));

			sn_offload_csum_finish(f);
			if (!want)
				want = 0xffff;
			if (sn_get_be16(f->data + at) != want || memcmp(f->data, frame, at) ||
			    memcmp(f->data + at + 2, frame + at + 2, len - at - 2))
				fuzz_fail("checksum filled in wrong, or more changed");
			if (f->off.need || f->off.flags != SN_VNET_F_DATA_VALID)
				fuzz_fail("a finished frame still needs 0x%x", f->off.need);
		}
	}
	sn_frame_unref(f);
}

/* ---- through the switch ---- */

static void fport_flush(struct sn_port *port)
{
	struct fport *p = (struct fport *)port;
	struct sn_txq *q = &port->txq;

	for (uint32_t i = 0; i < sn_txq_len(q); i++) {
		const struct sn_frame *f = sn_txq_peek(q, i);
		uint8_t hdr[10];

		if (!p->takes) {
			struct parsed pp;

			if (f->off.need || f->off.gso || (f->off.flags & SN_VNET_F_NEEDS_CSUM))
				fuzz_fail("port %s takes no offloads and got a frame that needs 0x%x", port->name, f->off.need);
			if (f->len > sn_port_max_frame(port))
				fuzz_fail("port %s got %u bytes with MTU %u", port->name, f->len, port->mtu);
			if (gso_in) {
				if (!parse(f->data, f->len, &pp) || !(f->off.flags & SN_VNET_F_DATA_VALID))
					fuzz_fail("port %s got a segment that does not parse or says nothing", port->name);
				check_l4(f->data, f->len, &pp, "a segment");
			}
		} else if (sn_vnet_hdr_put(hdr, &f->off, port->offload_tx) < 0) {
			fuzz_fail("port %s got a frame it cannot take", port->name);
		} else if (f->off.gso && f->off.seg_ip > port->mtu) {
			fuzz_fail("port %s got segments over its MTU", port->name);
		} else if (((f->off.flags & SN_VNET_F_NEEDS_CSUM) &&
			    (uint32_t)f->off.csum_start + f->off.csum_offset + 2 > f->len) ||
			   (f->off.gso && f->off.hdr_len > f->len)) {
			fuzz_fail("port %s got offsets past the frame", port->name);
		}
	}
	sn_txq_sent(port, sn_txq_len(q));
}

static void fport_close(struct sn_port *port)
{
}

static const struct sn_port_ops fport_ops = {
	.kind = "fuzz",
	.flush = fport_flush,
	.close = fport_close,
};

static struct fport *fport_new(struct sn_switch *sw, const char *name, unsigned mtu, const char *policy,
			       uint32_t tx, uint32_t rx)
{
	struct fport *p = calloc(1, sizeof(*p));
	struct sn_error err;

	if (!p || fuzz_port_init(&p->base, sw, &fport_ops, name, mtu) < 0 || sn_port_register(&p->base) < 0)
		abort();
	if (sn_port_set_offloads(&p->base, tx, rx) < 0)
		abort();
	p->takes = tx != 0;
	sn_port_set_state(&p->base, SN_PORT_UP);
	if (policy && sn_switch_port_set(sw, name, policy, &err) < 0)
		fuzz_fail("port set %s: %s", policy, err.msg);
	return p;
}

static void through_switch(struct sn_switch *sw, const uint8_t *frame, uint32_t len, const struct sn_offload *o,
			   uint32_t caps, unsigned mtu, bool trunk, uint8_t takes)
{
	static const char *const policy[NRECV] = {NULL, "vlan=10", "trunk=10", "trunk=10,tpid=0x88a8"};
	static const unsigned mtus[NRECV] = {1500, 9000, 1500, 576};
	struct fport *in = fport_new(sw, "in", mtu, trunk ? "trunk=10" : NULL, 0, caps);
	struct sn_frame *f = sn_pool_get(&sw->pool, len);

	for (int i = 0; i < NRECV; i++) {
		char name[8] = {'r', (char)('0' + i), 0};

		fport_new(sw, name, mtus[i], policy[i], takes >> i & 1 ? SN_OFFLOAD_ALL : 0, 0);
	}
	if (!f)
		abort();
	memcpy(f->data, frame, len);
	f->len = len;
	f->off = *o;
	/* as the virtio ports do: a frame that says DATA_VALID was not checked by the switch */
	f->off.flags &= (uint8_t)~SN_VNET_F_DATA_VALID;
	gso_in = o->gso != 0;
	sn_port_input(&in->base, &f, 1);
	ev_run(loop, EVRUN_NOWAIT);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size, false};
	uint8_t mode = fuzz_u8(&in), takes;
	unsigned mtu = 68 + fuzz_u16(&in) % (9000 - 68 + 1);
	const uint8_t *hdr, *frame;
	struct sn_switch_config cfg;
	struct sn_offload o;
	struct sn_switch *sw;
	uint8_t h10[10] = {0};
	uint32_t len;
	size_t hn;

	hn = fuzz_bytes(&in, sizeof(h10), &hdr);
	memcpy(h10, hdr, hn);
	takes = fuzz_u8(&in);
	fuzz_u16(&in);
	len = (uint32_t)fuzz_bytes(&in, SN_POOL_JUMBO_CAP, &frame);
	if (len == 0)
		return 0;
	memcpy(orig, frame, len);
	sn_vnet_hdr_get(h10, &o);

	sn_switch_config_init(&cfg);
	cfg.pool_frames = 1024;
	cfg.jumbo_frames = 16;
	cfg.txq_len = 256;
	if (sn_switch_create(loop, &cfg, &sw) < 0 || sn_pool_want_jumbo(&sw->pool) < 0)
		abort();
	if (mode & 0x40)
		through_switch(sw, orig, len, &o, mode & SN_OFFLOAD_ALL, mtu, mode & 0x80, takes);
	else
		alone(&sw->pool, orig, len, &o, mode & SN_OFFLOAD_ALL, mtu);
	if (sn_pool_free_count(&sw->pool) != sn_pool_total(&sw->pool))
		fuzz_fail("%u of %u buffers left allocated", sn_pool_total(&sw->pool) - sn_pool_free_count(&sw->pool),
			  sn_pool_total(&sw->pool));
	sn_switch_destroy(sw);
	return 0;
}
