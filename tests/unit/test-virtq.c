/* test-virtq.c - unit tests of the split-virtqueue engine against rings built by hand: index
 * wrap-around, chained and indirect descriptors, mergeable RX buffers, interrupt suppression
 * (event index and the no-interrupt flag), and hostile rings that must break the queue without
 * a single access outside guest memory (AddressSanitizer watches that in the sanitizer build:
 * guest memory is its own heap block, so a stray access is reported). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtq.h"

#include "sn-check.h"

#define QS 8
#define MEM_SIZE 65536
#define GPA 0x100000ull   /* guest physical address of the region's first byte */
#define DESC_GPA (GPA + 0x0)
#define AVAIL_GPA (GPA + 0x100)
#define USED_GPA (GPA + 0x200)
#define BUF_GPA (GPA + 0x1000) /* buffers from here on */

static uint8_t *mem;
static struct sn_vq_mem vmem;
static struct sn_vq vq;
static struct sn_vring_desc *desc;
static struct sn_vring_avail *avail;
static struct sn_vring_used *used;

static void *hva(uint64_t gpa)
{
	return mem + (gpa - GPA);
}

static void setup_features(uint64_t features, uint16_t start)
{
	struct sn_vq_mem_region r = {GPA, MEM_SIZE, NULL};

	mem = aligned_alloc(4096, MEM_SIZE);
	ck_assert_ptr_nonnull(mem);
	memset(mem, 0, MEM_SIZE);
	r.hva = mem;
	ck_assert_int_eq(sn_vq_mem_set(&vmem, &r, 1), 0);
	desc = hva(DESC_GPA);
	avail = hva(AVAIL_GPA);
	used = hva(USED_GPA);
	avail->idx = start;
	used->idx = start;
	memset(&vq, 0, sizeof(vq));
	vq.name = "test";
	ck_assert_int_eq(sn_vq_setup_addr(&vq, &vmem, QS, DESC_GPA, AVAIL_GPA, USED_GPA, features, start), 0);
}

static void setup(void)
{
	setup_features(SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1), 0);
}

static void teardown(void)
{
	free(mem);
	mem = NULL;
}

static void make_avail(uint16_t head)
{
	avail->ring[avail->idx % QS] = head;
	avail->idx++;
}

static void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	desc[i] = (struct sn_vring_desc){addr, len, flags, next};
}

static uint16_t *used_event(void)
{
	return &avail->ring[QS];
}

static uint16_t *avail_event(void)
{
	return (uint16_t *)&used->ring[QS];
}

START_TEST(single_buffer)
{
	struct sn_vq_elem e;

	ck_assert_int_eq(sn_vq_pop(&vq, &e), 0);
	set_desc(3, BUF_GPA, 100, 0, 0);
	make_avail(3);
	ck_assert_uint_eq(sn_vq_avail_count(&vq), 1);
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	ck_assert_uint_eq(e.head, 3);
	ck_assert_uint_eq(e.nout, 1);
	ck_assert_uint_eq(e.nin, 0);
	ck_assert_uint_eq(e.out_len, 100);
	ck_assert_ptr_eq(e.iov[0].iov_base, hva(BUF_GPA));
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 0);
	sn_vq_push(&vq, e.head, 0);
	ck_assert_uint_eq(used->idx, 0); /* not visible before the flush */
	ck_assert(sn_vq_flush(&vq));
	ck_assert_uint_eq(used->idx, 1);
	ck_assert_uint_eq(used->ring[0].id, 3);
	ck_assert_uint_eq(used->ring[0].len, 0);
	ck_assert(!sn_vq_flush(&vq)); /* nothing new */
}
END_TEST

START_TEST(index_wraparound)
{
	struct sn_vq_elem e;

	teardown();
	setup_features(SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1), 65533);
	for (uint16_t i = 0; i < 6; i++) {
		set_desc(i, BUF_GPA + 64u * i, 64, 0, 0);
		make_avail(i);
	}
	ck_assert_uint_eq(avail->idx, 3); /* 65533 + 6 wrapped */
	ck_assert_uint_eq(sn_vq_avail_count(&vq), 6);
	for (uint16_t i = 0; i < 6; i++) {
		ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
		ck_assert_uint_eq(e.head, i);
		sn_vq_push(&vq, e.head, 0);
	}
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 0);
	sn_vq_flush(&vq);
	ck_assert_uint_eq(used->idx, 3);
	/* 65533 % 8 == 5: the entries went to slots 5, 6, 7, 0, 1, 2 */
	ck_assert_uint_eq(used->ring[5].id, 0);
	ck_assert_uint_eq(used->ring[0].id, 3);
	ck_assert_uint_eq(used->ring[2].id, 5);
}
END_TEST

START_TEST(chained)
{
	struct sn_vq_elem e;

	set_desc(0, BUF_GPA, 12, SN_VRING_DESC_F_NEXT, 5);
	set_desc(5, BUF_GPA + 0x100, 50, SN_VRING_DESC_F_NEXT, 2);
	set_desc(2, BUF_GPA + 0x200, 300, SN_VRING_DESC_F_WRITE, 0);
	make_avail(0);
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	ck_assert_uint_eq(e.nout, 2);
	ck_assert_uint_eq(e.nin, 1);
	ck_assert_uint_eq(e.out_len, 62);
	ck_assert_uint_eq(e.in_len, 300);
	ck_assert_ptr_eq(e.iov[1].iov_base, hva(BUF_GPA + 0x100));
	ck_assert_ptr_eq(e.iov[2].iov_base, hva(BUF_GPA + 0x200));
	{
		uint8_t out[64];

		memset(hva(BUF_GPA), 0xaa, 12);
		memset(hva(BUF_GPA + 0x100), 0x55, 50);
		ck_assert_uint_eq(sn_vq_elem_read(&e, 12, out, sizeof(out)), 50);
		ck_assert_uint_eq(out[0], 0x55);
		ck_assert_uint_eq(out[49], 0x55);
		ck_assert_uint_eq(sn_vq_elem_read(&e, 10, out, sizeof(out)), 52);
		ck_assert_uint_eq(out[1], 0xaa);
		ck_assert_uint_eq(out[2], 0x55);
	}
}
END_TEST

START_TEST(indirect)
{
	struct sn_vring_desc *t;
	struct sn_vq_elem e;

	teardown();
	setup_features(SN_VIRTIO_BIT(SN_VIRTIO_F_INDIRECT_DESC), 0);
	t = hva(BUF_GPA + 0x800);
	t[0] = (struct sn_vring_desc){BUF_GPA, 10, SN_VRING_DESC_F_NEXT, 2};
	t[2] = (struct sn_vring_desc){BUF_GPA + 0x100, 60, SN_VRING_DESC_F_NEXT, 1};
	t[1] = (struct sn_vring_desc){BUF_GPA + 0x200, 40, 0, 0};
	set_desc(4, BUF_GPA + 0x800, 3 * 16, SN_VRING_DESC_F_INDIRECT, 0);
	make_avail(4);
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	ck_assert_uint_eq(e.head, 4);
	ck_assert_uint_eq(e.nout, 3);
	ck_assert_uint_eq(e.out_len, 110);
	ck_assert_ptr_eq(e.iov[2].iov_base, hva(BUF_GPA + 0x200));
	ck_assert(!sn_vq_broken(&vq));
}
END_TEST

START_TEST(indirect_not_negotiated)
{
	struct sn_vq_elem e;

	set_desc(0, BUF_GPA + 0x800, 32, SN_VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	ck_assert_int_eq(sn_vq_pop(&vq, &e), -EIO);
	ck_assert(sn_vq_broken(&vq));
}
END_TEST

START_TEST(region_split)
{
	/* two adjacent regions backed by unrelated host memory: one buffer spans both */
	uint8_t *other = malloc(4096);
	struct sn_vq_mem_region r[2] = {{GPA, MEM_SIZE, mem}, {GPA + MEM_SIZE, 4096, other}};
	struct sn_vq_elem e;

	ck_assert_int_eq(sn_vq_mem_set(&vmem, r, 2), 0);
	set_desc(0, GPA + MEM_SIZE - 100, 300, 0, 0);
	make_avail(0);
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	ck_assert_uint_eq(e.nout, 2);
	ck_assert_uint_eq(e.iov[0].iov_len, 100);
	ck_assert_ptr_eq(e.iov[1].iov_base, other);
	ck_assert_uint_eq(e.iov[1].iov_len, 200);
	/* past the second region's end: broken */
	set_desc(1, GPA + MEM_SIZE + 4000, 200, 0, 0);
	make_avail(1);
	ck_assert_int_eq(sn_vq_pop(&vq, &e), -EIO);
	free(other);
}
END_TEST

START_TEST(mem_set_checks)
{
	struct sn_vq_mem m;
	struct sn_vq_mem_region over[2] = {{0x1000, 0x2000, mem}, {0x2000, 0x1000, mem}};
	struct sn_vq_mem_region wrap = {UINT64_MAX - 10, 100, mem};
	struct sn_vq_mem_region empty = {0x1000, 0, mem};
	struct sn_vq_mem_region nohva = {0x1000, 10, NULL};

	ck_assert_int_eq(sn_vq_mem_set(&m, over, 2), -EINVAL);
	ck_assert_int_eq(sn_vq_mem_set(&m, &wrap, 1), -EINVAL);
	ck_assert_int_eq(sn_vq_mem_set(&m, &empty, 1), -EINVAL);
	ck_assert_int_eq(sn_vq_mem_set(&m, &nohva, 1), -EINVAL);
	ck_assert_int_eq(sn_vq_mem_set(&m, over, 1), 0);
	ck_assert_ptr_eq(sn_vq_mem_translate(&m, 0x1000, 0x2000), mem);
	ck_assert_ptr_null(sn_vq_mem_translate(&m, 0x1000, 0x2001));
	ck_assert_ptr_null(sn_vq_mem_translate(&m, 0xfff, 1));
	ck_assert_ptr_null(sn_vq_mem_translate(&m, 0x2fff, UINT64_MAX));
	/* rings that do not fit the memory are refused at set-up */
	ck_assert_int_eq(sn_vq_setup_addr(&vq, &vmem, QS, GPA + MEM_SIZE - 16, AVAIL_GPA, USED_GPA, 0, 0), -EFAULT);
	ck_assert_int_eq(sn_vq_setup_addr(&vq, &vmem, 6, DESC_GPA, AVAIL_GPA, USED_GPA, 0, 0), -EINVAL);
	ck_assert(!sn_vq_usable(&vq));
}
END_TEST

/* Posts @n writable buffers of @len bytes each. */
static void post_rx(uint16_t n, uint32_t len)
{
	for (uint16_t i = 0; i < n; i++) {
		set_desc(i, BUF_GPA + 0x1000u * i, len, SN_VRING_DESC_F_WRITE, 0);
		make_avail(i);
	}
}

START_TEST(rx_single)
{
	uint8_t frame[100];
	const uint8_t *b = hva(BUF_GPA);

	for (int i = 0; i < 100; i++)
		frame[i] = (uint8_t)i;
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, false, NULL, frame, 100), 0); /* no buffers yet */
	post_rx(2, 1526);
	memset(hva(BUF_GPA), 0xee, 12);
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, false, NULL, frame, 100), 1);
	sn_vq_flush(&vq);
	ck_assert_uint_eq(used->idx, 1);
	ck_assert_uint_eq(used->ring[0].len, 112);
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(b[i], 0); /* header zeroed */
	ck_assert_uint_eq(b[10], 1);    /* num_buffers 1 with VERSION_1 */
	ck_assert_uint_eq(b[11], 0);
	ck_assert_int_eq(memcmp(b + 12, frame, 100), 0);
}
END_TEST

START_TEST(rx_too_small)
{
	uint8_t frame[1514] = {0};

	post_rx(2, 1000);
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, false, NULL, frame, sizeof(frame)), -EMSGSIZE);
	ck_assert_uint_eq(vq.last_avail, 0); /* the buffer stays for a frame that fits */
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, false, NULL, frame, 900), 1);
	ck_assert_uint_eq(vq.last_avail, 1);
}
END_TEST

START_TEST(rx_mergeable)
{
	uint8_t frame[3000];
	const uint8_t *b0;

	teardown();
	setup_features(SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1) | SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF), 0);
	b0 = hva(BUF_GPA);
	for (int i = 0; i < 3000; i++)
		frame[i] = (uint8_t)(i * 7);
	post_rx(3, 1000); /* 3000 bytes of room, 3012 needed */
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, true, NULL, frame, 3000), 0);
	ck_assert_uint_eq(vq.last_avail, 0); /* nothing consumed */
	ck_assert_uint_eq(vq.used_idx, 0);
	set_desc(3, BUF_GPA + 0x3000, 1000, SN_VRING_DESC_F_WRITE, 0);
	make_avail(3);
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, true, NULL, frame, 3000), 1);
	sn_vq_flush(&vq);
	ck_assert_uint_eq(used->idx, 4);
	ck_assert_uint_eq(b0[10] | b0[11] << 8, 4);
	ck_assert_uint_eq(used->ring[0].len, 1000);
	ck_assert_uint_eq(used->ring[1].len, 1000);
	ck_assert_uint_eq(used->ring[2].len, 1000);
	ck_assert_uint_eq(used->ring[3].len, 12);
	ck_assert_int_eq(memcmp(b0 + 12, frame, 988), 0);
	ck_assert_int_eq(memcmp(hva(BUF_GPA + 0x1000), frame + 988, 1000), 0);
	ck_assert_int_eq(memcmp(hva(BUF_GPA + 0x3000), frame + 2988, 12), 0);
}
END_TEST

START_TEST(event_idx_suppression)
{
	struct sn_vq_elem e;

	teardown();
	setup_features(SN_VIRTIO_BIT(SN_VIRTIO_F_EVENT_IDX), 0);
	for (uint16_t i = 0; i < QS; i++) {
		set_desc(i, BUF_GPA, 64, 0, 0);
		make_avail(i);
	}
	*used_event() = 0;
	/* the first flush interrupts: nothing was signalled before */
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	sn_vq_push(&vq, e.head, 0);
	ck_assert(sn_vq_flush(&vq));
	/* the driver wants to hear when entry 3 is used (used idx passes 3) */
	*used_event() = 3;
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	sn_vq_push(&vq, e.head, 0);
	ck_assert(!sn_vq_flush(&vq)); /* idx 2 */
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	sn_vq_push(&vq, e.head, 0);
	ck_assert(!sn_vq_flush(&vq)); /* idx 3 */
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	sn_vq_push(&vq, e.head, 0);
	ck_assert(sn_vq_flush(&vq));  /* idx 4: entry 3 was used */
	/* a batch that jumps over the event index interrupts once */
	*used_event() = 5;
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
		sn_vq_push(&vq, e.head, 0);
	}
	ck_assert(sn_vq_flush(&vq));
	/* the no-interrupt flag means nothing with EVENT_IDX */
	avail->flags = SN_VRING_AVAIL_F_NO_INTERRUPT;
	*used_event() = 7;
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	sn_vq_push(&vq, e.head, 0);
	ck_assert(sn_vq_flush(&vq));
	/* kick suppression: enabling publishes avail_event = last_avail */
	ck_assert(!sn_vq_notify_enable(&vq, true));
	ck_assert_uint_eq(*avail_event(), 8);
	make_avail(0);
	ck_assert(sn_vq_notify_enable(&vq, true)); /* work came in: do not wait for a kick */
}
END_TEST

START_TEST(no_interrupt_flag)
{
	struct sn_vq_elem e;

	for (uint16_t i = 0; i < 4; i++) {
		set_desc(i, BUF_GPA, 64, 0, 0);
		make_avail(i);
	}
	avail->flags = SN_VRING_AVAIL_F_NO_INTERRUPT;
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	sn_vq_push(&vq, e.head, 0);
	ck_assert(!sn_vq_flush(&vq));
	avail->flags = 0;
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	sn_vq_push(&vq, e.head, 0);
	ck_assert(sn_vq_flush(&vq));
	/* kick suppression without EVENT_IDX is the NO_NOTIFY flag */
	sn_vq_notify_enable(&vq, false);
	ck_assert_uint_eq(used->flags, SN_VRING_USED_F_NO_NOTIFY);
	ck_assert(sn_vq_notify_enable(&vq, true)); /* two entries still waiting */
	ck_assert_uint_eq(used->flags, 0);
}
END_TEST

/* Too few buffers for a merged frame: the device asks for a kick at the driver's avail index,
 * not at last_avail (the driver only kicks when its additions cross the event index, and the
 * entries it already added are behind it). */
START_TEST(notify_more)
{
	uint8_t frame[1500] = {0};

	teardown();
	setup_features(SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1) | SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF) |
			       SN_VIRTIO_BIT(SN_VIRTIO_F_EVENT_IDX), 0);
	post_rx(1, 512);
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, true, NULL, frame, sizeof(frame)), 0);
	ck_assert(sn_vq_notify_enable(&vq, true)); /* "work is there", though it cannot be used */
	ck_assert_uint_eq(*avail_event(), 0);
	ck_assert(!sn_vq_notify_more(&vq));        /* nothing new: wait for the kick */
	ck_assert_uint_eq(*avail_event(), 1);
	/* without EVENT_IDX it is the NO_NOTIFY flag, cleared */
	teardown();
	setup_features(SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1) | SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF), 0);
	post_rx(1, 512);
	sn_vq_notify_enable(&vq, false);
	ck_assert(!sn_vq_notify_more(&vq));
	ck_assert_uint_eq(used->flags, 0);
	/* a broken queue is left alone */
	sn_vq_break(&vq, "test");
	ck_assert(!sn_vq_notify_more(&vq));
}
END_TEST

/* The SIGBUS guard raised the memory's fault flag: the queue breaks with that reason at its next
 * look, including a chain it is popping (the descriptors may be zeros that look valid), and a
 * reset keeps the flag pointer. */
START_TEST(memory_fault)
{
	atomic_uint fault = 0;
	struct sn_vq_elem e;

	vq.fault = &fault;
	set_desc(0, BUF_GPA, 64, 0, 0);
	make_avail(0);
	make_avail(0);
	ck_assert_int_eq(sn_vq_pop(&vq, &e), 1);
	fault = 1;
	ck_assert_int_eq(sn_vq_pop(&vq, &e), -EIO);
	ck_assert(sn_vq_broken(&vq));
	ck_assert_str_eq(vq.broken_reason, SN_VQ_SHRANK);
	/* whatever a zeroed ring trips on, the reason is the shrink */
	fault = 0;
	ck_assert_int_eq(sn_vq_setup_addr(&vq, &vmem, QS, DESC_GPA, AVAIL_GPA, USED_GPA, 0, 0), 0);
	ck_assert_ptr_eq(vq.fault, &fault);
	fault = 1;
	sn_vq_break(&vq, "avail idx %u is far ahead", 9999);
	ck_assert_str_eq(vq.broken_reason, SN_VQ_SHRANK);
}
END_TEST

/* ---- hostile rings ---- */

static void expect_broken(const char *why)
{
	struct sn_vq_elem e;
	uint16_t used_before = used->idx;

	ck_assert_int_eq(sn_vq_pop(&vq, &e), -EIO);
	ck_assert(sn_vq_broken(&vq));
	ck_assert_msg(strstr(vq.broken_reason, why), "reason '%s' lacks '%s'", vq.broken_reason, why);
	/* a broken queue stays broken and writes nothing */
	ck_assert_int_eq(sn_vq_pop(&vq, &e), -EIO);
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, false, NULL, (const uint8_t *)"x", 1), -EIO);
	ck_assert(!sn_vq_notify_enable(&vq, true));
	ck_assert_uint_eq(used->idx, used_before);
}

START_TEST(hostile_out_of_bounds)
{
	set_desc(0, GPA + MEM_SIZE, 16, 0, 0);
	make_avail(0);
	expect_broken("outside guest memory");
}
END_TEST

START_TEST(hostile_below_region)
{
	set_desc(0, GPA - 8, 16, 0, 0);
	make_avail(0);
	expect_broken("outside guest memory");
}
END_TEST

START_TEST(hostile_huge_length)
{
	set_desc(0, BUF_GPA, 0xffffffffu, 0, 0);
	make_avail(0);
	expect_broken("outside guest memory");
}
END_TEST

START_TEST(hostile_wrapping_address)
{
	set_desc(0, UINT64_MAX - 4, 100, 0, 0);
	make_avail(0);
	expect_broken("wraps");
}
END_TEST

START_TEST(hostile_loop)
{
	set_desc(0, BUF_GPA, 16, SN_VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA, 16, SN_VRING_DESC_F_NEXT, 0);
	make_avail(0);
	expect_broken("loops");
}
END_TEST

START_TEST(hostile_self_loop)
{
	set_desc(2, BUF_GPA, 16, SN_VRING_DESC_F_NEXT, 2);
	make_avail(2);
	expect_broken("loops");
}
END_TEST

START_TEST(hostile_next_out_of_range)
{
	set_desc(0, BUF_GPA, 16, SN_VRING_DESC_F_NEXT, QS);
	make_avail(0);
	expect_broken("out of range");
}
END_TEST

START_TEST(hostile_head_out_of_range)
{
	make_avail(QS + 3);
	expect_broken("head index");
}
END_TEST

START_TEST(hostile_avail_jump)
{
	avail->idx = QS + 1;
	expect_broken("ahead");
}
END_TEST

START_TEST(hostile_write_before_read)
{
	set_desc(0, BUF_GPA, 16, SN_VRING_DESC_F_WRITE | SN_VRING_DESC_F_NEXT, 1);
	set_desc(1, BUF_GPA, 16, 0, 0);
	make_avail(0);
	expect_broken("readable descriptor after a writable");
}
END_TEST

START_TEST(hostile_total_over_4g)
{
	/* a chain of 1 GiB buffers: the first one already leaves the 64 KiB of memory */
	for (uint16_t i = 0; i < 5; i++)
		set_desc(i, BUF_GPA, 0x40000000u, SN_VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	desc[4].flags = 0;
	make_avail(0);
	expect_broken("outside guest memory");
}
END_TEST

static void hostile_indirect_setup(void)
{
	teardown();
	setup_features(SN_VIRTIO_BIT(SN_VIRTIO_F_INDIRECT_DESC), 0);
}

START_TEST(hostile_indirect_nested)
{
	struct sn_vring_desc *t;

	hostile_indirect_setup();
	t = hva(BUF_GPA + 0x800);
	t[0] = (struct sn_vring_desc){BUF_GPA + 0x900, 32, SN_VRING_DESC_F_INDIRECT, 0};
	set_desc(0, BUF_GPA + 0x800, 16, SN_VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_broken("inside an indirect table");
}
END_TEST

START_TEST(hostile_indirect_bad_len)
{
	hostile_indirect_setup();
	set_desc(0, BUF_GPA + 0x800, 24, SN_VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_broken("indirect table of 24 bytes");
}
END_TEST

START_TEST(hostile_indirect_outside)
{
	hostile_indirect_setup();
	set_desc(0, GPA + MEM_SIZE - 16, 32, SN_VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_broken("outside guest memory");
}
END_TEST

START_TEST(hostile_indirect_loop)
{
	struct sn_vring_desc *t;

	hostile_indirect_setup();
	t = hva(BUF_GPA + 0x800);
	t[0] = (struct sn_vring_desc){BUF_GPA, 16, SN_VRING_DESC_F_NEXT, 1};
	t[1] = (struct sn_vring_desc){BUF_GPA, 16, SN_VRING_DESC_F_NEXT, 0};
	set_desc(0, BUF_GPA + 0x800, 32, SN_VRING_DESC_F_INDIRECT, 0);
	make_avail(0);
	expect_broken("loops");
}
END_TEST

START_TEST(hostile_indirect_with_next)
{
	hostile_indirect_setup();
	set_desc(0, BUF_GPA + 0x800, 32, SN_VRING_DESC_F_INDIRECT | SN_VRING_DESC_F_NEXT, 1);
	make_avail(0);
	expect_broken("with NEXT");
}
END_TEST

START_TEST(hostile_rx_readonly)
{
	set_desc(0, BUF_GPA, 1600, 0, 0);
	make_avail(0);
	ck_assert_int_eq(sn_vq_rx_put(&vq, 12, false, NULL, (const uint8_t *)"abcdefghijklmnop", 16), -EIO);
	ck_assert(sn_vq_broken(&vq));
}
END_TEST

START_TEST(hdr_len)
{
	ck_assert_uint_eq(sn_vnet_hdr_len(0), 10);
	ck_assert_uint_eq(sn_vnet_hdr_len(SN_VIRTIO_BIT(SN_VIRTIO_F_VERSION_1)), 12);
	ck_assert_uint_eq(sn_vnet_hdr_len(SN_VIRTIO_BIT(SN_VIRTIO_NET_F_MRG_RXBUF)), 12);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"single_buffer", single_buffer},
		{"index_wraparound", index_wraparound},
		{"chained", chained},
		{"indirect", indirect},
		{"indirect_not_negotiated", indirect_not_negotiated},
		{"region_split", region_split},
		{"mem_set_checks", mem_set_checks},
		{"rx_single", rx_single},
		{"rx_too_small", rx_too_small},
		{"rx_mergeable", rx_mergeable},
		{"event_idx_suppression", event_idx_suppression},
		{"no_interrupt_flag", no_interrupt_flag},
		{"notify_more", notify_more},
		{"memory_fault", memory_fault},
		{"hostile_out_of_bounds", hostile_out_of_bounds},
		{"hostile_below_region", hostile_below_region},
		{"hostile_huge_length", hostile_huge_length},
		{"hostile_wrapping_address", hostile_wrapping_address},
		{"hostile_loop", hostile_loop},
		{"hostile_self_loop", hostile_self_loop},
		{"hostile_next_out_of_range", hostile_next_out_of_range},
		{"hostile_head_out_of_range", hostile_head_out_of_range},
		{"hostile_avail_jump", hostile_avail_jump},
		{"hostile_write_before_read", hostile_write_before_read},
		{"hostile_total_over_4g", hostile_total_over_4g},
		{"hostile_indirect_nested", hostile_indirect_nested},
		{"hostile_indirect_bad_len", hostile_indirect_bad_len},
		{"hostile_indirect_outside", hostile_indirect_outside},
		{"hostile_indirect_loop", hostile_indirect_loop},
		{"hostile_indirect_with_next", hostile_indirect_with_next},
		{"hostile_rx_readonly", hostile_rx_readonly},
		{"hdr_len", hdr_len},
	};

	return sn_check_main("virtq", cases, SN_CHECK_N(cases), setup, teardown, 0);
}
