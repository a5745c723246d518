/* vmm-sim.c - a simulated VMM with a virtio-net driver: memory, split rings, eventfds.
 *
 * Guest memory is one memfd mapped at a guest physical base that is not zero, so a device that
 * confused guest addresses with offsets would fail here. Each queue's descriptor table, avail
 * and used rings sit on their own pages; buffers follow. The driver keeps its own shadow of
 * every index (avail_idx, last_used) as a real driver would and honours the device's kick
 * suppression (avail_event with EVENT_IDX, else VRING_USED_F_NO_NOTIFY). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm-sim.h"

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4
#define BIT(b) (1ull << (b))
#define PAGE 4096u
#define GPA_BASE 0x40000000ull

static size_t page_up(size_t n)
{
	return (n + PAGE - 1) & ~(size_t)(PAGE - 1);
}

static uint16_t ld16(const void *p)
{
	return *(const volatile uint16_t *)p;
}

static void st16(void *p, uint16_t v)
{
	*(volatile uint16_t *)p = v;
}

static uint32_t ld32(const void *p)
{
	return *(const volatile uint32_t *)p;
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

void *vmm_sim_gpa(struct vmm_sim *s, uint64_t gpa)
{
	if (gpa < s->gpa_base || gpa - s->gpa_base >= s->mem_size)
		return NULL;
	return s->mem + (gpa - s->gpa_base);
}

static uint16_t tx_slots(const struct vmm_sim *s)
{
	return s->o.tx_split && !s->o.tx_indirect ? s->o.qsize / 2 : s->o.qsize;
}

int vmm_sim_init(struct vmm_sim *s, const struct vmm_sim_opts *opts)
{
	size_t off = 0, ring_off[2][3], ind_off, buf_off[2];
	uint16_t qs;

	memset(s, 0, sizeof(*s));
	if (opts)
		s->o = *opts;
	if (!s->o.qsize)
		s->o.qsize = 256;
	if (!s->o.features && !opts)
		s->o.features = BIT(SN_VIRTIO_F_VERSION_1) | BIT(SN_VIRTIO_F_EVENT_IDX);
	if (!s->o.rx_buf_size)
		s->o.rx_buf_size = 1526;
	if (!s->o.tx_buf_size)
		s->o.tx_buf_size = 2048;
	qs = s->o.qsize;
	if (qs & (qs - 1) || qs < 2)
		return -EINVAL;
	s->hdr_len = s->o.features & (BIT(SN_VIRTIO_F_VERSION_1) | BIT(SN_VIRTIO_NET_F_MRG_RXBUF)) ? 12 : 10;
	s->mrg = s->o.features & BIT(SN_VIRTIO_NET_F_MRG_RXBUF);
	s->event_idx = s->o.features & BIT(SN_VIRTIO_F_EVENT_IDX);
	s->memfd = -1;
	s->q[0].kick_fd = s->q[0].call_fd = s->q[1].kick_fd = s->q[1].call_fd = -1;

	for (int q = 0; q < 2; q++) {
		ring_off[q][0] = off;
		off += page_up(16u * qs);
		ring_off[q][1] = off;
		off += page_up(6u + 2u * qs);
		ring_off[q][2] = off;
		off += page_up(6u + 8u * qs);
	}
	ind_off = off;
	off += page_up(32u * qs);
	buf_off[0] = off;
	off += page_up((size_t)qs * s->o.rx_buf_size);
	buf_off[1] = off;
	off += page_up((size_t)qs * s->o.tx_buf_size);
	s->mem_size = off;
	s->gpa_base = GPA_BASE;

	s->memfd = memfd_create("vmm-sim-guest", MFD_CLOEXEC);
	if (s->memfd < 0 || ftruncate(s->memfd, (off_t)s->mem_size) < 0)
		goto fail;
	s->mem = mmap(NULL, s->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
	if (s->mem == MAP_FAILED) {
		s->mem = NULL;
		goto fail;
	}
	s->tx_ind_gpa = GPA_BASE + ind_off;
	for (int q = 0; q < 2; q++) {
		struct vmm_queue *vq = &s->q[q];
		uint16_t slots = q == SN_VIRTIO_TX ? tx_slots(s) : qs;

		vq->size = qs;
		vq->desc_gpa = GPA_BASE + ring_off[q][0];
		vq->avail_gpa = GPA_BASE + ring_off[q][1];
		vq->used_gpa = GPA_BASE + ring_off[q][2];
		vq->desc = (struct vmm_ring_desc *)(s->mem + ring_off[q][0]);
		vq->avail = (uint16_t *)(s->mem + ring_off[q][1]);
		vq->used = s->mem + ring_off[q][2];
		vq->buf_gpa = GPA_BASE + buf_off[q];
		vq->buf_size = q == SN_VIRTIO_RX ? s->o.rx_buf_size : s->o.tx_buf_size;
		vq->free_ids = calloc(qs, sizeof(uint16_t));
		if (!vq->free_ids)
			goto fail;
		for (uint16_t i = 0; i < slots; i++)
			vq->free_ids[vq->nfree++] = (uint16_t)(slots - 1 - i);
		if (s->o.no_interrupt)
			st16(&vq->avail[0], 1);
		if (!s->o.callbacks) {
			vq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			vq->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			if (vq->kick_fd < 0 || vq->call_fd < 0)
				goto fail;
		}
	}
	return 0;
fail:
	{
		int e = errno ? errno : ENOMEM;

		vmm_sim_finish(s);
		return -e;
	}
}

void vmm_sim_finish(struct vmm_sim *s)
{
	for (int q = 0; q < 2; q++) {
		free(s->q[q].free_ids);
		s->q[q].free_ids = NULL;
		if (s->q[q].kick_fd >= 0)
			close(s->q[q].kick_fd);
		if (s->q[q].call_fd >= 0)
			close(s->q[q].call_fd);
		s->q[q].kick_fd = s->q[q].call_fd = -1;
	}
	if (s->mem)
		munmap(s->mem, s->mem_size);
	s->mem = NULL;
	if (s->memfd >= 0)
		close(s->memfd);
	s->memfd = -1;
}

void vmm_sim_port_config(struct vmm_sim *s, struct sn_virtio_net_config *cfg, struct sn_virtio_mem_region *region)
{
	*region = (struct sn_virtio_mem_region){.gpa = s->gpa_base, .size = s->mem_size, .hva = s->mem};
	cfg->features = s->o.features;
	cfg->regions = region;
	cfg->nregions = 1;
	for (int q = 0; q < 2; q++) {
		struct sn_virtio_queue_config *qc = q == SN_VIRTIO_RX ? &cfg->rx : &cfg->tx;
		struct vmm_queue *vq = &s->q[q];

		*qc = (struct sn_virtio_queue_config){
			.size = vq->size,
			.desc = vq->desc_gpa,
			.avail = vq->avail_gpa,
			.used = vq->used_gpa,
			.last_avail = vq->kicked_idx, /* 0 on a fresh device */
			.kick_fd = vq->kick_fd,
			.call_fd = vq->call_fd,
		};
	}
}

static void publish(struct vmm_queue *vq)
{
	atomic_thread_fence(memory_order_release);
	st16(&vq->avail[1], vq->avail_idx);
}

static bool kick_if_asked(struct vmm_sim *s, int q)
{
	struct vmm_queue *vq = &s->q[q];
	uint16_t old = vq->kicked_idx;
	bool want;

	if (old == vq->avail_idx)
		return false;
	atomic_thread_fence(memory_order_seq_cst);
	if (s->event_idx)
		want = need_event(ld16(vq->used + 4 + 8u * vq->size), vq->avail_idx, old);
	else
		want = !(ld16(vq->used) & 1);
	vq->kicked_idx = vq->avail_idx;
	if (!want)
		return false;
	vq->kicks++;
	if (vq->kick_fd >= 0) {
		uint64_t one = 1;

		if (write(vq->kick_fd, &one, sizeof(one)) < 0)
			return false;
	} else if (s->o.kick_cb) {
		s->o.kick_cb(s->o.opaque, q);
	}
	return true;
}

int vmm_sim_rx_post(struct vmm_sim *s)
{
	return vmm_sim_rx_post_n(s, -1);
}

int vmm_sim_rx_post_n(struct vmm_sim *s, int max)
{
	struct vmm_queue *vq = &s->q[SN_VIRTIO_RX];
	int n = 0;

	while (vq->nfree && n != max) {
		uint16_t id = vq->free_ids[--vq->nfree];

		vq->desc[id] = (struct vmm_ring_desc){
			.addr = vq->buf_gpa + (uint64_t)id * vq->buf_size,
			.len = vq->buf_size,
			.flags = F_WRITE,
		};
		st16(&vq->avail[2 + (vq->avail_idx & (vq->size - 1))], id);
		vq->avail_idx++;
		n++;
	}
	if (n) {
		publish(vq);
		kick_if_asked(s, SN_VIRTIO_RX);
	}
	return n;
}

int vmm_sim_tx_queue(struct vmm_sim *s, const void *frame, uint32_t len)
{
	struct vmm_queue *vq = &s->q[SN_VIRTIO_TX];
	uint64_t buf;
	uint16_t slot, head;
	uint8_t *p;

	if (s->hdr_len + len > vq->buf_size)
		return -1;
	if (!vq->nfree)
		return 0;
	slot = vq->free_ids[--vq->nfree];
	buf = vq->buf_gpa + (uint64_t)slot * vq->buf_size;
	p = vmm_sim_gpa(s, buf);
	memset(p, 0, s->hdr_len);
	memcpy(p + s->hdr_len, frame, len);
	if (s->o.tx_indirect) {
		struct vmm_ring_desc *t = vmm_sim_gpa(s, s->tx_ind_gpa + 32ull * slot);

		t[0] = (struct vmm_ring_desc){buf, (uint32_t)s->hdr_len, F_NEXT, 1};
		t[1] = (struct vmm_ring_desc){buf + s->hdr_len, len, 0, 0};
		head = slot;
		vq->desc[head] = (struct vmm_ring_desc){s->tx_ind_gpa + 32ull * slot, 32, F_INDIRECT, 0};
	} else if (s->o.tx_split) {
		head = (uint16_t)(slot * 2);
		vq->desc[head] = (struct vmm_ring_desc){buf, (uint32_t)s->hdr_len, F_NEXT, (uint16_t)(head + 1)};
		vq->desc[head + 1] = (struct vmm_ring_desc){buf + s->hdr_len, len, 0, 0};
	} else {
		head = slot;
		vq->desc[head] = (struct vmm_ring_desc){buf, (uint32_t)(s->hdr_len + len), 0, 0};
	}
	st16(&vq->avail[2 + (vq->avail_idx & (vq->size - 1))], head);
	vq->avail_idx++;
	publish(vq);
	return 1;
}

bool vmm_sim_tx_kick(struct vmm_sim *s)
{
	return kick_if_asked(s, SN_VIRTIO_TX);
}

int vmm_sim_send(struct vmm_sim *s, const void *frame, uint32_t len)
{
	int r = vmm_sim_tx_queue(s, frame, len);

	if (r == 0 && vmm_sim_tx_reclaim(s) > 0)
		r = vmm_sim_tx_queue(s, frame, len);
	if (r == 1)
		vmm_sim_tx_kick(s);
	return r;
}

static void used_event_set(struct vmm_sim *s, struct vmm_queue *vq)
{
	if (s->event_idx)
		st16(&vq->avail[2 + vq->size], vq->last_used);
}

int vmm_sim_tx_reclaim(struct vmm_sim *s)
{
	struct vmm_queue *vq = &s->q[SN_VIRTIO_TX];
	uint16_t idx = ld16(vq->used + 2);
	int n = 0;

	atomic_thread_fence(memory_order_acquire);
	while (vq->last_used != idx) {
		uint32_t id = ld32(vq->used + 4 + 8u * (vq->last_used & (vq->size - 1)));

		if (s->o.tx_split && !s->o.tx_indirect)
			id /= 2;
		if (id < vq->size && vq->nfree < vq->size)
			vq->free_ids[vq->nfree++] = (uint16_t)id;
		vq->last_used++;
		n++;
	}
	used_event_set(s, vq);
	return n;
}

int vmm_sim_recv(struct vmm_sim *s, void *buf, size_t cap)
{
	struct vmm_queue *vq = &s->q[SN_VIRTIO_RX];
	uint16_t idx = ld16(vq->used + 2), nbufs = 1;
	uint8_t *out = buf;
	size_t got = 0;

	atomic_thread_fence(memory_order_acquire);
	if (vq->last_used == idx)
		return 0;
	for (uint16_t k = 0; k < nbufs; k++) {
		const uint8_t *e = vq->used + 4 + 8u * (vq->last_used & (vq->size - 1));
		uint32_t id = ld32(e), len = ld32(e + 4);
		const uint8_t *p;
		size_t skip = 0, n;

		if (vq->last_used == idx || id >= vq->size || len > vq->buf_size)
			return -1;
		p = vmm_sim_gpa(s, vq->buf_gpa + (uint64_t)id * vq->buf_size);
		if (k == 0) {
			if (len < s->hdr_len)
				return -1;
			if (s->mrg)
				nbufs = (uint16_t)(p[10] | p[11] << 8);
			if (nbufs == 0)
				return -1;
			skip = s->hdr_len;
		}
		n = len - skip;
		if (got + n > cap)
			return -1;
		memcpy(out + got, p + skip, n);
		got += n;
		vq->free_ids[vq->nfree++] = (uint16_t)id;
		vq->last_used++;
	}
	used_event_set(s, vq);
	return (int)got;
}

uint64_t vmm_sim_calls(struct vmm_sim *s, int queue)
{
	uint64_t v = 0;

	if (s->q[queue].call_fd < 0 || read(s->q[queue].call_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}
