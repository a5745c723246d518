/* virtq.c - device side of VIRTIO 1.x split virtqueues, and virtio-net frames on top of them.
 *
 * The driver owns the descriptor table and the available ring and may rewrite them at any
 * moment (it may be hostile, or simply buggy), so every field is read once into a local with a
 * volatile access and checked before it is used: indices against the queue size, buffers
 * against the memory regions, chains against loops and length. A violation marks the queue
 * broken and nothing more is done with it. Ordering follows the specification's rules: an
 * acquire fence after reading avail->idx, a release fence before publishing used->idx, and a
 * full fence between publishing an index and reading the other side's event index. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "logging.h"
#include "port.h"
#include "virtq.h"
#include "util.h"

#define TX_BATCH 64
#define RX_MAX_CHAINS 256 /* chains one merged RX frame may take */

/* ---- guest memory ---- */

int sn_vq_mem_set(struct sn_vq_mem *mem, const struct sn_vq_mem_region *regions, unsigned n)
{
	if (n > SN_VQ_MEM_REGIONS_MAX)
		return -E2BIG;
	for (unsigned i = 0; i < n; i++) {
		const struct sn_vq_mem_region *a = &regions[i];

		if (a->size == 0 || !a->hva || a->addr + a->size - 1 < a->addr ||
		    (uintptr_t)a->hva + a->size - 1 < (uintptr_t)a->hva)
			return -EINVAL;
		for (unsigned j = 0; j < i; j++) {
			const struct sn_vq_mem_region *b = &regions[j];

			if (a->addr <= b->addr + b->size - 1 && b->addr <= a->addr + a->size - 1)
				return -EINVAL;
		}
	}
	mem->n = n;
	if (n)
		memcpy(mem->r, regions, n * sizeof(*regions));
	return 0;
}

static inline const struct sn_vq_mem_region *mem_find(const struct sn_vq_mem *mem, uint64_t addr)
{
	for (unsigned i = 0; i < mem->n; i++) {
		const struct sn_vq_mem_region *r = &mem->r[i];

		if (addr - r->addr < r->size)
			return r;
	}
	return NULL;
}

void *sn_vq_mem_translate(const struct sn_vq_mem *mem, uint64_t addr, uint64_t len)
{
	const struct sn_vq_mem_region *r = mem_find(mem, addr);
	uint64_t off;

	if (!r)
		return NULL;
	off = addr - r->addr;
	if (len == 0)
		len = 1;
	if (len > r->size - off)
		return NULL;
	return r->hva + off;
}

/* ---- volatile access to shared ring memory ---- */

static inline uint16_t rd16(const uint16_t *p)
{
	return *(const volatile uint16_t *)p;
}

static inline void wr16(uint16_t *p, uint16_t v)
{
	*(volatile uint16_t *)p = v;
}

static inline void desc_read(const struct sn_vring_desc *table, uint16_t i, struct sn_vring_desc *d)
{
	const volatile struct sn_vring_desc *s = &table[i];

	d->addr = s->addr;
	d->len = s->len;
	d->flags = s->flags;
	d->next = s->next;
}

/* The memory under the rings went away (vhost-user's SIGBUS guard): what was read since is zeros. */
static inline bool faulted(const struct sn_vq *vq)
{
	return vq->fault && atomic_load_explicit(vq->fault, memory_order_relaxed);
}

static inline uint16_t *used_event_p(struct sn_vq *vq)
{
	return &vq->avail->ring[vq->size];
}

static inline uint16_t *avail_event_p(struct sn_vq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

/* ---- set-up ---- */

void sn_vq_reset(struct sn_vq *vq)
{
	const char *name = vq->name;
	const atomic_uint *fault = vq->fault;

	memset(vq, 0, sizeof(*vq));
	vq->name = name;
	vq->fault = fault;
}

int sn_vq_setup(struct sn_vq *vq, const struct sn_vq_mem *mem, uint16_t size, void *desc, void *avail,
		void *used, uint64_t features, uint16_t last_avail)
{
	sn_vq_reset(vq);
	if (size == 0 || (size & (size - 1)) || size > SN_VQ_SIZE_MAX || !mem || !desc || !avail || !used)
		return -EINVAL;
	/* the specification's alignments: 16 for the table, 2 for avail, 4 for used */
	if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3))
		return -EINVAL;
	vq->mem = mem;
	vq->size = size;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->last_avail = last_avail;
	vq->avail_seen = last_avail;
	vq->used_idx = vq->used_flushed = rd16(&vq->used->idx);
	vq->event_idx = features & SN_VIRTIO_BIT(SN_VIRTIO_F_EVENT_IDX);
	vq->indirect = features & SN_VIRTIO_BIT(SN_VIRTIO_F_INDIRECT_DESC);
	vq->ready = true;
	return 0;
}

int sn_vq_setup_addr(struct sn_vq *vq, const struct sn_vq_mem *mem, uint16_t size, uint64_t desc,
		     uint64_t avail, uint64_t used, uint64_t features, uint16_t last_avail)
{
	void *d, *a, *u;

	sn_vq_reset(vq);
	if (size == 0 || (size & (size - 1)) || size > SN_VQ_SIZE_MAX || !mem)
		return -EINVAL;
	d = sn_vq_mem_translate(mem, desc, sn_vring_desc_bytes(size));
	a = sn_vq_mem_translate(mem, avail, sn_vring_avail_bytes(size));
	u = sn_vq_mem_translate(mem, used, sn_vring_used_bytes(size));
	if (!d || !a || !u)
		return -EFAULT;
	return sn_vq_setup(vq, mem, size, d, a, u, features, last_avail);
}

void sn_vq_break(struct sn_vq *vq, const char *fmt, ...)
{
	va_list ap;

	if (vq->broken)
		return;
	vq->broken = true;
	if (faulted(vq)) {
		/* an index or descriptor that makes no sense is the zeros the guard mapped */
		snprintf(vq->broken_reason, sizeof(vq->broken_reason), "%s", SN_VQ_SHRANK);
	} else {
		va_start(ap, fmt);
		vsnprintf(vq->broken_reason, sizeof(vq->broken_reason), fmt, ap);
		va_end(ap);
	}
	sn_warn("%s: virtqueue broken: %s", vq->name ? vq->name : "virtqueue", vq->broken_reason);
}

/* ---- available ring ---- */

uint16_t sn_vq_avail_count(struct sn_vq *vq)
{
	uint16_t idx, n;

	if (!sn_vq_usable(vq))
		return 0;
	idx = rd16(&vq->avail->idx);
	atomic_thread_fence(memory_order_acquire);
	n = (uint16_t)(idx - vq->last_avail);
	if (sn_unlikely(n > vq->size)) {
		sn_vq_break(vq, "avail idx %u is %u ahead of %u (queue size %u)", idx, n, vq->last_avail, vq->size);
		return 0;
	}
	vq->avail_seen = idx;
	return n;
}

/* Chains known to be available without reading avail->idx: the driver writes that word all the
 * time from its own CPU, so reading it for every chain costs a cache miss each. It is read
 * again (with the checks above) only once the chains seen last time are all consumed. */
static inline uint16_t avail_known(struct sn_vq *vq)
{
	uint16_t n = (uint16_t)(vq->avail_seen - vq->last_avail);

	/* within a queue of what was checked, or stale (unpop, reset): read afresh */
	if (n == 0 || n > vq->size)
		return sn_vq_avail_count(vq);
	return n;
}

/* ---- prefetching ----
 *
 * The driver runs on another CPU, so the descriptor and the buffer of every chain are a cache
 * miss away, and one after the other they cost more than the copy. While one chain is
 * processed, the descriptor of the chain PREFETCH_DESC slots on and the buffer of the chain
 * PREFETCH_BUF slots on are fetched, and the misses overlap. Nothing read here is trusted or
 * kept: sn_vq_pop() reads and checks it all again, and a prefetch is only a hint (it never
 * faults), made only for an address inside a memory region. */
#define PREFETCH_DESC 8
#define PREFETCH_BUF 4
/* Lines of a buffer: reads stream, so the first 256 bytes get the hardware prefetcher going;
 * stores do not (each line waits for ownership, and a 1514-byte frame's 24 of them filled the
 * store queue: 0.24 -> 0.18 us per frame at 1514 B when all of the frame's lines are asked for). */
#define PREFETCH_LINES_READ 4
#define PREFETCH_LINES_WRITE 32

/* A line the device is about to write was last written by the driver's CPU: a plain prefetch
 * brings it in shared, and the store still waits for ownership. x86 has PREFETCHW for that,
 * but only where CPUID says so (gcc emits it only with -mprfchw); elsewhere
 * __builtin_prefetch(p, 1) is the write prefetch already. */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static atomic_int have_prefetchw = -1; /* not known yet; switches in other threads ask too */

static bool prefetchw_supported(void)
{
	int have = atomic_load_explicit(&have_prefetchw, memory_order_relaxed);
	unsigned a, b, c, d;

	if (sn_unlikely(have < 0)) {
		have = __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & (1u << 8)); /* PRFCHW */
		atomic_store_explicit(&have_prefetchw, have, memory_order_relaxed);
	}
	return have;
}

static inline void prefetch_write(const void *p)
{
	if (prefetchw_supported())
		__asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
	else
		__builtin_prefetch(p, 1, 3);
}
#else
static inline void prefetch_write(const void *p)
{
	__builtin_prefetch(p, 1, 3);
}
#endif

static inline void prefetch_desc(const struct sn_vq *vq, uint16_t slot)
{
	uint16_t head = rd16(&vq->avail->ring[slot & (vq->size - 1)]);

	if (head < vq->size)
		__builtin_prefetch(&vq->desc[head], 0, 3);
}

static inline void prefetch_buf(const struct sn_vq *vq, uint16_t slot, bool write, uint32_t want)
{
	uint16_t head = rd16(&vq->avail->ring[slot & (vq->size - 1)]);
	struct sn_vring_desc d;
	const struct sn_vq_mem_region *r;
	uint64_t off, len;

	if (head >= vq->size)
		return;
	desc_read(vq->desc, head, &d);
	if (d.flags & SN_VRING_DESC_F_INDIRECT)
		return;
	r = mem_find(vq->mem, d.addr);
	if (!r)
		return;
	off = d.addr - r->addr;
	len = SN_MIN(SN_MIN((uint64_t)d.len, r->size - off),
		     SN_MIN((uint64_t)want, (uint64_t)(write ? PREFETCH_LINES_WRITE : PREFETCH_LINES_READ) * 64));
	for (uint64_t k = 0; k < len; k += 64) {
		if (write)
			prefetch_write(r->hva + off + k);
		else
			__builtin_prefetch(r->hva + off + k, 0, 3);
	}
}

/* Before the chain at last_avail is popped: fetch what the chains after it will need; an RX
 * buffer (@write) only as far as the frame for it will fill, @want bytes. */
static inline void prefetch_ahead(const struct sn_vq *vq, bool write, uint32_t want)
{
	uint16_t known = (uint16_t)(vq->avail_seen - vq->last_avail);

	if (known > PREFETCH_DESC)
		prefetch_desc(vq, (uint16_t)(vq->last_avail + PREFETCH_DESC));
	if (known > PREFETCH_BUF)
		prefetch_buf(vq, (uint16_t)(vq->last_avail + PREFETCH_BUF), write, want);
}

/* Appends the buffer [addr, addr + len) to @e, split where it crosses regions. */
static int add_buffer(struct sn_vq *vq, struct sn_vq_elem *e, uint64_t addr, uint32_t len, bool in)
{
	uint32_t *total = in ? &e->in_len : &e->out_len;

	if (sn_unlikely((uint64_t)*total + len > UINT32_MAX)) {
		sn_vq_break(vq, "chain longer than 4 GiB");
		return -EIO;
	}
	*total += len;
	if (sn_unlikely(addr + len < addr)) {
		sn_vq_break(vq, "buffer at 0x%llx wraps around", (unsigned long long)addr);
		return -EIO;
	}
	while (len > 0) {
		const struct sn_vq_mem_region *r = mem_find(vq->mem, addr);
		uint64_t take;

		if (sn_unlikely(!r)) {
			sn_vq_break(vq, "buffer at 0x%llx outside guest memory", (unsigned long long)addr);
			return -EIO;
		}
		if (sn_unlikely(e->nout + e->nin == SN_VQ_IOV_MAX)) {
			sn_vq_break(vq, "chain of more than %d buffers", SN_VQ_IOV_MAX);
			return -EIO;
		}
		take = SN_MIN((uint64_t)len, r->size - (addr - r->addr));
		e->iov[e->nout + e->nin] = (struct iovec){r->hva + (addr - r->addr), (size_t)take};
		if (in)
			e->nin++;
		else
			e->nout++;
		addr += take;
		len -= (uint32_t)take;
	}
	return 0;
}

int sn_vq_pop(struct sn_vq *vq, struct sn_vq_elem *e)
{
	const struct sn_vring_desc *table = vq->desc;
	uint32_t tsize = vq->size, seen = 0;
	bool indirect = false;
	struct sn_vring_desc d;
	uint16_t head, i;

	if (!sn_vq_usable(vq))
		return vq->broken ? -EIO : 0;
	if (sn_unlikely(faulted(vq))) {
		sn_vq_break(vq, SN_VQ_SHRANK);
		return -EIO;
	}
	if (avail_known(vq) == 0)
		return vq->broken ? -EIO : 0;
	head = rd16(&vq->avail->ring[vq->last_avail & (vq->size - 1)]);
	if (sn_unlikely(head >= vq->size)) {
		sn_vq_break(vq, "head index %u out of range (queue size %u)", head, vq->size);
		return -EIO;
	}
	e->head = head;
	e->nout = e->nin = 0;
	e->out_len = e->in_len = 0;
	for (i = head;;) {
		desc_read(table, i, &d);
		if (sn_unlikely(++seen > tsize)) {
			sn_vq_break(vq, "descriptor chain from %u loops or is longer than %u", head, tsize);
			return -EIO;
		}
		if (d.flags & SN_VRING_DESC_F_INDIRECT) {
			if (sn_unlikely(!vq->indirect)) {
				sn_vq_break(vq, "indirect descriptor without INDIRECT_DESC");
				return -EIO;
			}
			if (sn_unlikely(indirect)) {
				sn_vq_break(vq, "indirect descriptor inside an indirect table");
				return -EIO;
			}
			if (sn_unlikely(d.flags & SN_VRING_DESC_F_NEXT)) {
				sn_vq_break(vq, "indirect descriptor with NEXT");
				return -EIO;
			}
			if (sn_unlikely(d.len == 0 || d.len % sizeof(struct sn_vring_desc) ||
					d.len / sizeof(struct sn_vring_desc) > SN_VQ_SIZE_MAX)) {
				sn_vq_break(vq, "indirect table of %u bytes", d.len);
				return -EIO;
			}
			if (sn_unlikely((d.addr & 15) || !(table = sn_vq_mem_translate(vq->mem, d.addr, d.len)))) {
				sn_vq_break(vq, "indirect table at 0x%llx misaligned or outside guest memory",
					    (unsigned long long)d.addr);
				return -EIO;
			}
			if (sn_unlikely(e->nout + e->nin)) {
				/* the specification allows one indirect descriptor per chain, alone */
				sn_vq_break(vq, "indirect descriptor after direct ones");
				return -EIO;
			}
			indirect = true;
			tsize = d.len / sizeof(struct sn_vring_desc);
			seen = 0;
			i = 0;
			continue;
		}
		if (d.flags & SN_VRING_DESC_F_WRITE) {
			if (add_buffer(vq, e, d.addr, d.len, true) < 0)
				return -EIO;
		} else {
			if (sn_unlikely(e->nin)) {
				sn_vq_break(vq, "readable descriptor after a writable one");
				return -EIO;
			}
			if (add_buffer(vq, e, d.addr, d.len, false) < 0)
				return -EIO;
		}
		if (!(d.flags & SN_VRING_DESC_F_NEXT))
			break;
		i = d.next;
		if (sn_unlikely(i >= tsize)) {
			sn_vq_break(vq, "next index %u out of range (table of %u)", i, tsize);
			return -EIO;
		}
	}
	if (sn_unlikely(faulted(vq))) { /* the chain may be zeros that looked valid */
		sn_vq_break(vq, SN_VQ_SHRANK);
		return -EIO;
	}
	vq->last_avail++;
	return 1;
}

void sn_vq_unpop(struct sn_vq *vq, uint16_t n)
{
	vq->last_avail -= n;
}

/* ---- used ring ---- */

void sn_vq_push(struct sn_vq *vq, uint16_t head, uint32_t len)
{
	volatile struct sn_vring_used_elem *u = &vq->used->ring[vq->used_idx & (vq->size - 1)];

	u->id = head;
	u->len = len;
	vq->used_idx++;
}

static inline bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	/* true when event lies in [old, new): the driver asked to hear about that entry */
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

bool sn_vq_flush(struct sn_vq *vq)
{
	uint16_t old, ev;
	bool valid;

	if (!vq->ready || vq->used_idx == vq->used_flushed)
		return false;
	atomic_thread_fence(memory_order_release);
	wr16(&vq->used->idx, vq->used_idx);
	vq->used_flushed = vq->used_idx;
	/* the used index must be visible before we read what the driver wants */
	atomic_thread_fence(memory_order_seq_cst);
	if (!vq->event_idx)
		return !(rd16(&vq->avail->flags) & SN_VRING_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	valid = vq->signalled_valid;
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	if (!valid)
		return true;
	ev = rd16(used_event_p(vq));
	return need_event(ev, vq->used_idx, old);
}

bool sn_vq_notify_enable(struct sn_vq *vq, bool enable)
{
	if (!sn_vq_usable(vq))
		return false;
	if (vq->event_idx) {
		/* disabled: leaving avail_event behind last_avail is enough, the driver only kicks
		 * when its new entries cross it */
		if (enable)
			wr16(avail_event_p(vq), vq->last_avail);
	} else {
		uint16_t want = enable ? 0 : SN_VRING_USED_F_NO_NOTIFY;

		/* only the device writes this word: a store that changes nothing would still take
		 * the line from the driver's CPU, which reads used->idx beside it */
		if (rd16(&vq->used->flags) != want)
			wr16(&vq->used->flags, want);
	}
	if (!enable)
		return false;
	atomic_thread_fence(memory_order_seq_cst);
	return sn_vq_avail_count(vq) > 0;
}

bool sn_vq_notify_more(struct sn_vq *vq)
{
	uint16_t seen;

	if (!sn_vq_usable(vq))
		return false;
	/* not last_avail as in sn_vq_notify_enable(): the driver's next addition lands past
	 * entries we already saw and left, and only an event at its old index makes it kick */
	seen = rd16(&vq->avail->idx);
	if (vq->event_idx)
		wr16(avail_event_p(vq), seen);
	else
		wr16(&vq->used->flags, 0);
	atomic_thread_fence(memory_order_seq_cst);
	return rd16(&vq->avail->idx) != seen;
}

/* ---- virtio-net ---- */

size_t sn_vnet_hdr_len(uint64_t features)
{
	if (features & (SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1) | SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF)))
		return SN_VNET_HDR_LEN;
	return SN_VNET_HDR_LEN_LEGACY;
}

size_t sn_vq_elem_read(const struct sn_vq_elem *e, size_t skip, void *dst, size_t cap)
{
	uint8_t *out = dst;
	size_t done = 0;

	for (unsigned k = 0; k < e->nout && done < cap; k++) {
		const struct iovec *v = &e->iov[k];
		size_t n;

		if (skip >= v->iov_len) {
			skip -= v->iov_len;
			continue;
		}
		n = SN_MIN(v->iov_len - skip, cap - done);
		memcpy(out + done, (const uint8_t *)v->iov_base + skip, n);
		done += n;
		skip = 0;
	}
	return done;
}

/* Writes @len bytes of @src at offset @off of @e's writable buffers; returns bytes written. */
static size_t elem_write(const struct sn_vq_elem *e, size_t off, const void *src, size_t len)
{
	const uint8_t *in = src;
	size_t done = 0;

	for (unsigned k = e->nout; k < e->nout + e->nin && done < len; k++) {
		const struct iovec *v = &e->iov[k];
		size_t n;

		if (off >= v->iov_len) {
			off -= v->iov_len;
			continue;
		}
		n = SN_MIN(v->iov_len - off, len - done);
		memcpy((uint8_t *)v->iov_base + off, in + done, n);
		done += n;
		off = 0;
	}
	return done;
}

int sn_vq_rx_put(struct sn_vq *vq, size_t hdr_len, bool mrg, const uint8_t *vhdr, const uint8_t *frame, uint32_t len)
{
	struct sn_vq_elem first, cur;
	uint32_t lens[RX_MAX_CHAINS];
	uint16_t heads[RX_MAX_CHAINS];
	uint8_t hdr[SN_VNET_HDR_LEN] = {0};
	size_t need = hdr_len + len, done = 0;
	unsigned n = 0, max = mrg ? RX_MAX_CHAINS : 1;
	int r;

	first.nout = first.nin = 0;

	while (done < need) {
		struct sn_vq_elem *e = n == 0 ? &first : &cur;
		size_t w;

		if (n == max || n == vq->size) {
			sn_vq_unpop(vq, (uint16_t)n);
			return -EMSGSIZE;
		}
		r = sn_vq_pop(vq, e);
		if (r <= 0) {
			if (r == 0)
				sn_vq_unpop(vq, (uint16_t)n);
			return r;
		}
		if (sn_unlikely(e->nin == 0)) {
			sn_vq_break(vq, "receive chain %u has no writable buffer", e->head);
			return -EIO;
		}
		if (n == 0 && (e->in_len < hdr_len || (!mrg && e->in_len < need))) {
			sn_vq_unpop(vq, 1);
			return -EMSGSIZE;
		}
		/* the header is written last, once num_buffers is known */
		if (n == 0) {
			w = elem_write(e, hdr_len, frame, len);
			done = hdr_len + w;
		} else {
			w = elem_write(e, 0, frame + (done - hdr_len), need - done);
			done += w;
		}
		heads[n] = e->head;
		lens[n] = (uint32_t)(n == 0 ? hdr_len + w : w);
		n++;
	}
	if (vhdr)
		memcpy(hdr, vhdr, SN_VNET_HDR_LEN_LEGACY);
	if (hdr_len == SN_VNET_HDR_LEN) {
		hdr[10] = (uint8_t)(n & 0xff);
		hdr[11] = (uint8_t)(n >> 8);
	}
	elem_write(&first, 0, hdr, hdr_len);
	for (unsigned k = 0; k < n; k++)
		sn_vq_push(vq, heads[k], lens[k]);
	return 1;
}

int sn_vnet_tx(struct sn_vq *vq, struct sn_port *port, size_t hdr_len, unsigned budget, bool *ret_notify)
{
	struct sn_frame *batch[TX_BATCH];
	struct sn_offload off = {0};
	struct sn_vq_elem e;
	unsigned nb = 0;
	int done = 0, r = 0;

	while ((unsigned)done < budget) {
		uint32_t len;
		struct sn_frame *f;

		if (sn_likely(sn_vq_usable(vq)))
			prefetch_ahead(vq, false, UINT32_MAX);
		r = sn_vq_pop(vq, &e);
		if (r <= 0)
			break;
		done++;
		if (!port) {
			sn_vq_push(vq, e.head, 0);
			continue;
		}
		if (sn_unlikely(e.out_len < hdr_len + SN_ETH_HLEN)) {
			port->stats.drop_runt++;
			sn_vq_push(vq, e.head, 0);
			continue;
		}
		len = e.out_len - (uint32_t)hdr_len;
		{
			/* what the frame leaves to the device; the switch checks it against the bytes
			 * and what the driver negotiated (a driver that negotiated nothing must send
			 * zeros: anything else is refused) */
			uint8_t h[SN_VNET_HDR_LEN_LEGACY];

			sn_vq_elem_read(&e, 0, h, sizeof(h));
			sn_vnet_hdr_get(h, &off);
			off.flags &= (uint8_t)~SN_VNET_F_DATA_VALID; /* a driver must not say it */
		}
		/* large only for a driver that negotiated segmentation (and so got the buffers) */
		if (sn_unlikely(len > (off.gso && (port->offload_rx & ~SN_OFFLOAD_CSUM) ? SN_OFFLOAD_FRAME_MAX
											  : sn_port_max_frame(port)))) {
			port->stats.drop_oversize++;
			sn_vq_push(vq, e.head, 0);
			continue;
		}
		f = sn_port_frame_get(port, len);
		if (f) {
			if (sn_unlikely(off.flags | off.gso))
				f->off = off;
			f->len = (uint32_t)sn_vq_elem_read(&e, hdr_len, f->data, len);
			if (sn_unlikely(faulted(vq))) {
				/* read from zeros the guard mapped: not a frame the guest sent */
				sn_frame_unref(f);
				sn_vq_break(vq, SN_VQ_SHRANK);
				r = -EIO;
				break;
			}
			batch[nb++] = f;
		}
		sn_vq_push(vq, e.head, 0);
		if (nb == TX_BATCH) {
			sn_port_input(port, batch, nb);
			nb = 0;
			/* back-pressure: the rest stays in the ring until the port resumes */
			if (sn_port_rx_paused(port))
				break;
		}
	}
	if (nb)
		sn_port_input(port, batch, nb);
	*ret_notify = sn_vq_flush(vq);
	return r < 0 ? -EIO : done;
}

int sn_vnet_rx(struct sn_vq *vq, struct sn_port *port, size_t hdr_len, bool mrg, bool *ret_notify)
{
	struct sn_txq *q = &port->txq;
	int done = 0, r = 0;
	uint32_t ok = 0;

	while (ok < sn_txq_len(q)) {
		struct sn_frame *f = sn_txq_peek(q, ok);
		uint8_t vhdr[SN_VNET_HDR_LEN_LEGACY];
		const uint8_t *vh = NULL;

		/* the frame that goes into the buffer fetched now, when it is queued already */
		if (sn_likely(sn_vq_usable(vq)) && ok + PREFETCH_BUF < sn_txq_len(q))
			prefetch_ahead(vq, true, (uint32_t)hdr_len + sn_txq_peek(q, ok + PREFETCH_BUF)->len);
		if (sn_unlikely(f->off.flags | f->off.gso)) {
			vh = vhdr;
			if (sn_unlikely(sn_vnet_hdr_put(vhdr, &f->off, port->offload_tx) < 0)) {
				/* queued before the driver took back an offload (sn_port_set_offloads()
				 * drops those): it cannot go as it is */
				sn_txq_sent(port, ok);
				ok = 0;
				port->stats.drop_oversize++;
				sn_txq_drop(port, 1);
				continue;
			}
		}
		r = sn_vq_rx_put(vq, hdr_len, mrg, vh, f->data, f->len);
		if (sn_unlikely(faulted(vq))) {
			/* written into zeros the guard mapped: the guest never sees it */
			sn_vq_break(vq, SN_VQ_SHRANK);
			r = -EIO;
			break;
		}
		if (r == 1) {
			done++;
			ok++;
			continue;
		}
		sn_txq_sent(port, ok);
		ok = 0;
		if (r != -EMSGSIZE)
			break;
		/* cannot fit what this driver posts: drop it like an oversize frame */
		port->stats.drop_oversize++;
		sn_txq_drop(port, 1);
	}
	sn_txq_sent(port, ok);
	*ret_notify = sn_vq_flush(vq);
	return r < 0 && r != -EMSGSIZE ? -EIO : done;
}

/* ---- offloads ---- */

void sn_vnet_offloads(uint64_t features, uint32_t *ret_tx, uint32_t *ret_rx)
{
	uint32_t tx = 0, rx = 0;

#define HAS(bit) (features & SN_VIRTIO_BIT(SN_VIRTIO_NET_F_##bit))
	/* every segmentation offload depends on the checksum one of its direction */
	if (HAS(GUEST_CSUM)) {
		tx = SN_OFFLOAD_CSUM;
		if (HAS(GUEST_TSO4))
			tx |= SN_OFFLOAD_TSO4;
		if (HAS(GUEST_TSO6))
			tx |= SN_OFFLOAD_TSO6;
		if (HAS(GUEST_ECN) && (tx & (SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO6)))
			tx |= SN_OFFLOAD_TSO_ECN;
		if (HAS(GUEST_USO4))
			tx |= SN_OFFLOAD_USO4;
		if (HAS(GUEST_USO6))
			tx |= SN_OFFLOAD_USO6;
	}
	if (HAS(CSUM)) {
		rx = SN_OFFLOAD_CSUM;
		if (HAS(HOST_TSO4))
			rx |= SN_OFFLOAD_TSO4;
		if (HAS(HOST_TSO6))
			rx |= SN_OFFLOAD_TSO6;
		if (HAS(HOST_ECN) && (rx & (SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO6)))
			rx |= SN_OFFLOAD_TSO_ECN;
		if (HAS(HOST_USO))
			rx |= SN_OFFLOAD_USO4 | SN_OFFLOAD_USO6;
	}
#undef HAS
	*ret_tx = tx;
	*ret_rx = rx;
}

uint64_t sn_vnet_offload_features(uint32_t caps)
{
	uint64_t f = 0;

#define BIT(name) SN_VIRTIO_BIT(SN_VIRTIO_NET_F_##name)
	if (caps & SN_OFFLOAD_CSUM)
		f |= BIT(CSUM) | BIT(GUEST_CSUM);
	if (caps & SN_OFFLOAD_TSO4)
		f |= BIT(HOST_TSO4) | BIT(GUEST_TSO4);
	if (caps & SN_OFFLOAD_TSO6)
		f |= BIT(HOST_TSO6) | BIT(GUEST_TSO6);
	if (caps & SN_OFFLOAD_TSO_ECN)
		f |= BIT(HOST_ECN) | BIT(GUEST_ECN);
	if (caps & SN_OFFLOAD_USO4)
		f |= BIT(GUEST_USO4);
	if (caps & SN_OFFLOAD_USO6)
		f |= BIT(GUEST_USO6);
	if ((caps & (SN_OFFLOAD_USO4 | SN_OFFLOAD_USO6)) == (SN_OFFLOAD_USO4 | SN_OFFLOAD_USO6))
		f |= BIT(HOST_USO);
#undef BIT
	return f;
}
