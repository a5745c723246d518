/* fuzz-virtq.c - the split-virtqueue engine (virtq.c) against guest memory the fuzzer writes.
 *
 * Guest memory is two regions (two heap blocks, so AddressSanitizer sees any access past
 * either); a TX and an RX ring sit at fixed places in the first, buffers follow. The input is
 * a 6-byte header, then operations that a hostile driver and the switch interleave:
 *
 *   header: features (bit 0 EVENT_IDX, 1 INDIRECT_DESC, 2 MRG_RXBUF, 3 VERSION_1, 4 MTU 9000,
 *           5 the in-process virtio port), log2 of the queue size (mod 9: 1 to 256), the TX and
 *           RX start index (u16 LE each)
 *   op 0  write bytes anywhere in guest memory        op 7  sn_vq_rx_put() of a frame
 *   op 1  write a descriptor                          op 8  notification on/off
 *   op 2  make a chain available                      op 9  sn_vq_flush()
 *   op 3  set avail->idx (index jumps)                op 10 set a ring up again at an index
 *   op 4  sn_vnet_tx(): frames into the switch        op 11 set a ring up at fuzzed addresses
 *   op 5  sn_vnet_rx(): queued frames into RX buffers op 12 pop, unpop, pop again
 *   op 6  a frame from another port (flooded to the virtio side's queue)
 *
 * TX frames go through a real switch to the port whose queue sn_vnet_rx() empties, so guest
 * TX comes back on guest RX. With header bit 5 the rings belong to a real in-process virtio
 * port (<squibnet/virtio.h>, ports/virtio.c) instead: ops 4 and 5 kick its TX and RX queues,
 * frames from op 6 reach its RX ring through the switch, and the ops that work the engine's
 * queues directly (7 to 12) do nothing. Oracles besides the sanitizers: every call returns what its
 * contract allows; sn_vq_rx_put() consumes nothing unless it wrote the frame; unpopped chains
 * pop again the same; a broken queue says why; every loop ends (libFuzzer's -timeout). */
#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include <squibnet/virtio.h>

#include "port.h"
#include "core.h"
#include "util.h"
#include "virtq.h"

#include "fuzz.h"

#define GPA 0x100000ull
#define R0_SIZE 0x8000u
#define R1_SIZE 0x8000u
#define MEM_SIZE (R0_SIZE + R1_SIZE)
#define TX_DESC 0x0000u
#define TX_AVAIL 0x1000u
#define TX_USED 0x1400u
#define RX_DESC 0x2000u
#define RX_AVAIL 0x3000u
#define RX_USED 0x3400u
#define MAX_OPS 512

struct fport {
	struct sn_port base;
	bool keep; /* flush leaves the queue for sn_vnet_rx() */
};

static struct ev_loop *loop;
static uint8_t *r0, *r1;

static void fport_flush(struct sn_port *port)
{
	struct fport *p = (struct fport *)port;

	if (!p->keep)
		sn_txq_sent(port, sn_txq_len(&port->txq));
}

static void fport_close(struct sn_port *port)
{
}

static const struct sn_port_ops fport_ops = {
	.kind = "fuzz",
	.flush = fport_flush,
	.close = fport_close,
};

static struct fport *fport_new(struct sn_switch *sw, const char *name, unsigned mtu, bool keep)
{
	struct fport *p = calloc(1, sizeof(*p));

	if (!p || fuzz_port_init(&p->base, sw, &fport_ops, name, mtu) < 0 || sn_port_register(&p->base) < 0)
		abort();
	p->keep = keep;
	sn_port_set_state(&p->base, SN_PORT_UP);
	return p;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	loop = ev_loop_new(EVFLAG_AUTO);
	r0 = aligned_alloc(4096, R0_SIZE);
	r1 = aligned_alloc(4096, R1_SIZE);
	if (!loop || !r0 || !r1)
		abort();
	return 0;
}

/* Host pointer of guest offset @off for @len bytes inside one region, or NULL. */
static uint8_t *at(uint32_t off, uint32_t len)
{
	if (off < R0_SIZE)
		return len <= R0_SIZE - off ? r0 + off : NULL;
	off -= R0_SIZE;
	return off < R1_SIZE && len <= R1_SIZE - off ? r1 + off : NULL;
}

static void mem_write(uint32_t off, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = at((off + (uint32_t)i) % MEM_SIZE, 1);

		*p = src[i];
	}
}

static void put16(uint32_t off, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

	mem_write(off, b, 2);
}

static uint16_t get16(uint32_t off)
{
	return (uint16_t)(*at(off, 1) | *at(off + 1, 1) << 8);
}

struct ring {
	struct sn_vq vq;
	uint32_t desc, avail, used;
};

static int ring_setup(struct ring *r, const struct sn_vq_mem *mem, uint16_t size, uint64_t features, uint16_t start)
{
	return sn_vq_setup_addr(&r->vq, mem, size, GPA + r->desc, GPA + r->avail, GPA + r->used, features, start);
}

static void notify_cb(struct sn_virtio_port *port, enum sn_virtio_queue_index queue, void *opaque)
{
	(*(unsigned *)opaque)++;
}

static struct sn_virtio_port *virtio_port(struct sn_switch *sw, const struct ring *rings, uint16_t qsize,
					  uint64_t features, unsigned mtu, const uint16_t *start, unsigned *notified)
{
	struct sn_virtio_mem_region regs[2] = {{GPA, R0_SIZE, r0}, {GPA + R0_SIZE, R1_SIZE, r1}};
	struct sn_virtio_net_config c = {
		.name = "vm", .mtu = mtu, .features = features, .regions = regs, .nregions = 2,
		.rx = {qsize, GPA + rings[1].desc, GPA + rings[1].avail, GPA + rings[1].used, start[1], -1, -1},
		.tx = {qsize, GPA + rings[0].desc, GPA + rings[0].avail, GPA + rings[0].used, start[0], -1, -1},
		.notify = notify_cb, .opaque = notified,
	};
	struct sn_virtio_port *port;
	struct sn_error err = {{0}};

	if (sn_virtio_port_create(sw, &c, &port, &err) < 0)
		fuzz_fail("sn_virtio_port_create: %s", err.msg);
	return port;
}

static void check_vq(const struct sn_vq *vq)
{
	if (vq->broken && !vq->broken_reason[0])
		fuzz_fail("a queue broke without a reason");
	if (vq->ready && (vq->size == 0 || (vq->size & (vq->size - 1))))
		fuzz_fail("a ready queue of size %u", vq->size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size, false};
	uint8_t feat = fuzz_u8(&in);
	uint16_t qsize = (uint16_t)(1u << (fuzz_u8(&in) % 9));
	uint16_t start[2] = {fuzz_u16(&in), fuzz_u16(&in)};
	uint64_t features = 0;
	struct sn_vq_mem_region regs[2] = {{GPA, R0_SIZE, r0}, {GPA + R0_SIZE, R1_SIZE, r1}};
	struct sn_vq_mem mem;
	struct ring rings[2] = {{.desc = TX_DESC, .avail = TX_AVAIL, .used = TX_USED},
				{.desc = RX_DESC, .avail = RX_AVAIL, .used = RX_USED}};
	struct sn_switch_config cfg;
	struct sn_switch *sw;
	struct fport *guest, *rxq, *other;
	struct sn_virtio_port *vport = NULL;
	size_t hdr_len;
	bool mrg;
	unsigned mtu, notified = 0;

	if (feat & 1)
		features |= SN_VIRTIO_BIT(SN_VIRTIO_F_EVENT_IDX);
	if (feat & 2)
		features |= SN_VIRTIO_BIT(SN_VIRTIO_F_INDIRECT_DESC);
	if (feat & 4)
		features |= SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF);
	if (feat & 8)
		features |= SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1);
	mtu = feat & 16 ? 9000 : 1500;
	hdr_len = sn_vnet_hdr_len(features);
	mrg = features & SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF);

	memset(r0, 0, R0_SIZE);
	memset(r1, 0, R1_SIZE);
	if (sn_vq_mem_set(&mem, regs, 2) < 0)
		abort();
	for (int i = 0; i < 2; i++) {
		put16(rings[i].avail + 2, start[i]);
		put16(rings[i].used + 2, start[i]);
		rings[i].vq.name = i ? "fuzz: rx" : "fuzz: tx";
		if (ring_setup(&rings[i], &mem, qsize, features, start[i]) < 0)
			abort();
	}

	sn_switch_config_init(&cfg);
	cfg.pool_frames = 256;
	cfg.jumbo_frames = 4;
	cfg.txq_len = 256;
	if (sn_switch_create(loop, &cfg, &sw) < 0)
		abort();
	guest = fport_new(sw, "guest", mtu, false);  /* TX from the guest enters here */
	rxq = fport_new(sw, "rx", mtu, true);        /* its queue fills the guest's RX ring */
	other = fport_new(sw, "other", mtu, false);  /* the rest of the switch */
	if (feat & 32)
		vport = virtio_port(sw, rings, qsize, features, mtu, start, &notified);

	for (int op = 0; op < MAX_OPS && in.n > 0; op++) {
		uint8_t code = fuzz_u8(&in) % 13;

		if (vport && (code == 4 || code == 5)) {
			fuzz_u8(&in);
			sn_virtio_port_kick(vport, code == 4 ? SN_VIRTIO_TX : SN_VIRTIO_RX);
			ev_run(loop, EVRUN_NOWAIT);
			continue;
		}
		if (vport && code >= 7)
			continue;
		switch (code) {
		case 0: { /* write bytes */
			uint16_t off = fuzz_u16(&in);
			const uint8_t *b;
			size_t n = fuzz_bytes(&in, fuzz_u8(&in), &b);

			mem_write(off, b, n);
			break;
		}
		case 1: { /* a descriptor */
			uint8_t how = fuzz_u8(&in);
			struct ring *r = &rings[how & 1];
			uint16_t idx = fuzz_u16(&in) & (qsize - 1);
			uint64_t addr = how & 2 ? fuzz_u64(&in) : GPA + fuzz_u16(&in);
			uint32_t len = how & 4 ? fuzz_u32(&in) : fuzz_u16(&in);
			struct sn_vring_desc d = {addr, len, fuzz_u16(&in), fuzz_u16(&in)};

			mem_write(r->desc + 16u * idx, (const uint8_t *)&d, sizeof(d));
			break;
		}
		case 2: { /* make a chain available */
			struct ring *r = &rings[fuzz_u8(&in) & 1];
			uint16_t head = fuzz_u16(&in), idx = get16(r->avail + 2);

			put16(r->avail + 4 + 2u * (idx & (qsize - 1)), head);
			put16(r->avail + 2, (uint16_t)(idx + 1));
			break;
		}
		case 3: { /* avail->idx anywhere */
			struct ring *r = &rings[fuzz_u8(&in) & 1];

			put16(r->avail + 2, fuzz_u16(&in));
			break;
		}
		case 4: { /* guest TX */
			uint8_t b = fuzz_u8(&in);
			bool notify = false;
			int n = sn_vnet_tx(&rings[0].vq, b & 0x80 ? NULL : &guest->base, hdr_len, (b & 0x7f) + 1u, &notify);

			if (n < -EIO || n > (b & 0x7f) + 1)
				fuzz_fail("sn_vnet_tx: %d with a budget of %u", n, (b & 0x7f) + 1u);
			if (n == -EIO && !rings[0].vq.broken)
				fuzz_fail("sn_vnet_tx: -EIO but the queue is not broken");
			ev_run(loop, EVRUN_NOWAIT); /* the switch's flush step */
			break;
		}
		case 5: { /* guest RX from the port's queue */
			bool notify = false;
			uint32_t queued = sn_txq_len(&rxq->base.txq);
			int n = sn_vnet_rx(&rings[1].vq, &rxq->base, hdr_len, mrg, &notify);

			if (n < -EIO || (n >= 0 && (uint32_t)n > queued))
				fuzz_fail("sn_vnet_rx: %d with %u frames queued", n, queued);
			if (n >= 0 && sn_txq_len(&rxq->base.txq) > queued - (uint32_t)n)
				fuzz_fail("sn_vnet_rx: delivered %d of %u, %u still queued", n, queued,
					  sn_txq_len(&rxq->base.txq));
			break;
		}
		case 6: { /* a frame from elsewhere: flooded to both fake ports */
			uint16_t len = fuzz_u16(&in) % (mtu + 19);
			uint8_t fill = fuzz_u8(&in);
			struct sn_frame *f = sn_port_frame_get(&other->base, len);

			if (f) {
				memset(f->data, fill, len);
				if (len >= 6)
					memset(f->data, 0xff, 6); /* broadcast: every port gets it */
				f->len = len;
				sn_port_input(&other->base, &f, 1);
			}
			if (vport)
				ev_run(loop, EVRUN_NOWAIT);
			break;
		}
		case 7: { /* one frame into RX buffers, directly */
			struct sn_vq *vq = &rings[1].vq;
			uint16_t before = vq->last_avail, used_before = vq->used_idx;
			const uint8_t *b;
			uint32_t len = (uint32_t)fuzz_bytes(&in, fuzz_u16(&in) % 4096, &b);
			int r = sn_vq_rx_put(vq, hdr_len, mrg, NULL, b, len);

			if (r != 1 && r != 0 && r != -EMSGSIZE && r != -EIO)
				fuzz_fail("sn_vq_rx_put: %d", r);
			if ((r == 0 || r == -EMSGSIZE) && (vq->last_avail != before || vq->used_idx != used_before))
				fuzz_fail("sn_vq_rx_put: %d but it consumed chains", r);
			if (r == 1 && (vq->used_idx == used_before || vq->last_avail == before))
				fuzz_fail("sn_vq_rx_put: wrote a frame but pushed nothing");
			if (r == 1 && !mrg && (uint16_t)(vq->used_idx - used_before) != 1)
				fuzz_fail("sn_vq_rx_put: %u buffers without MRG_RXBUF",
					  (uint16_t)(vq->used_idx - used_before));
			break;
		}
		case 8: { /* notifications */
			uint8_t b = fuzz_u8(&in);

			sn_vq_notify_enable(&rings[b & 1].vq, b & 2);
			break;
		}
		case 9:
			sn_vq_flush(&rings[fuzz_u8(&in) & 1].vq);
			break;
		case 10: { /* set up again (a device reset, SET_VRING_BASE) */
			struct ring *r = &rings[fuzz_u8(&in) & 1];

			if (ring_setup(r, &mem, qsize, features, fuzz_u16(&in)) < 0)
				fuzz_fail("setting up a ring at its usual place failed");
			break;
		}
		case 11: { /* set up at fuzzed addresses and size */
			struct ring *r = &rings[fuzz_u8(&in) & 1];
			uint16_t sz = fuzz_u16(&in);
			uint64_t d = fuzz_u64(&in), a = fuzz_u64(&in), u = fuzz_u64(&in);
			int ret = sn_vq_setup_addr(&r->vq, &mem, sz, d, a, u, features, fuzz_u16(&in));

			if (ret == 0 && (!sn_vq_mem_translate(&mem, d, sn_vring_desc_bytes(sz)) ||
					 !sn_vq_mem_translate(&mem, a, sn_vring_avail_bytes(sz)) ||
					 !sn_vq_mem_translate(&mem, u, sn_vring_used_bytes(sz))))
				fuzz_fail("sn_vq_setup_addr accepted rings outside guest memory");
			break;
		}
		case 12: { /* pop some, give them back, pop them again */
			struct sn_vq *vq = &rings[fuzz_u8(&in) & 1].vq;
			static struct sn_vq_elem first[4], again;
			uint16_t n = 0;

			while (n < 4 && sn_vq_pop(vq, &first[n]) == 1)
				n++;
			if (vq->broken)
				break;
			sn_vq_unpop(vq, n);
			for (uint16_t i = 0; i < n; i++) {
				if (sn_vq_pop(vq, &again) != 1 || again.head != first[i].head ||
				    again.nout != first[i].nout || again.nin != first[i].nin ||
				    again.out_len != first[i].out_len || again.in_len != first[i].in_len)
					fuzz_fail("chain %u popped again differs", i);
			}
			sn_vq_unpop(vq, n);
			break;
		}
		}
		check_vq(&rings[0].vq);
		check_vq(&rings[1].vq);
	}
	sn_virtio_port_destroy(vport);
	sn_switch_destroy(sw);
	ev_run(loop, EVRUN_NOWAIT);
	return 0;
}
