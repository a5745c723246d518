/* pool.h - preallocated, reference-counted frame buffers. */
#ifndef SN_POOL_H
#define SN_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "offload.h"

#define SN_POOL_STD_CAP 2048u
#define SN_POOL_JUMBO_CAP 65536u

struct sn_pool;

struct sn_frame {
	uint8_t *data;     /* the frame's first byte (moves forward when a tag is popped in place) */
	uint32_t len;      /* bytes of frame at data */
	uint32_t refs;
	struct sn_pool *pool;
	struct sn_frame *next_free;
	uint32_t cap;      /* bytes the buffer holds */
	/* 802.1Q, set by the switch on ingress: the VLAN the frame is in, and the tag at data + 12
	 * that says so on the wire (tpid 0: none there) */
	uint16_t vlan;
	uint16_t tpid;
	uint16_t tci;      /* the tag as it came (priority and DEI kept when re-tagged) */
	/* the same frame tagged otherwise, made for the first port that needed it and shared by the
	 * ports that need the same (released with this one) */
	struct sn_frame *alt;
	/* checksum and segmentation offload state, as the sending port read it (offload.h) */
	struct sn_offload off;
	/* a GSO frame cut into segments, made for the first port that cannot take it whole and
	 * shared by the others (released with this one); linked through seg_next */
	struct sn_frame *segs, *seg_next;
	bool segs_failed; /* the pool ran out cutting it: the ports after that go without */
};

struct sn_pool_class {
	struct sn_frame *frames;
	uint8_t *mem;
	struct sn_frame *free;
	uint32_t cap, total, nfree;
};

struct sn_pool {
	struct sn_pool_class std, jumbo;
	uint32_t jumbo_want;
};

/** Allocates @nstd standard buffers now; @njumbo jumbo buffers are allocated on the first
 * sn_pool_want_jumbo(). Returns 0 or -ENOMEM. */
int sn_pool_init(struct sn_pool *pool, uint32_t nstd, uint32_t njumbo);
void sn_pool_finish(struct sn_pool *pool);

/** Makes jumbo buffers available (allocated once). Returns 0 or -ENOMEM. */
int sn_pool_want_jumbo(struct sn_pool *pool);

/** A buffer holding at least @len bytes with one reference, or NULL when none is free. */
struct sn_frame *sn_pool_get(struct sn_pool *pool, uint32_t len);

void sn_frame_release(struct sn_frame *f);

/* Bytes from the buffer's start to @f->data: what a tag popped in place gave back. */
uint32_t sn_frame_headroom(const struct sn_frame *f);

static inline void sn_frame_ref(struct sn_frame *f)
{
	f->refs++;
}

static inline void sn_frame_unref(struct sn_frame *f)
{
	if (--f->refs == 0)
		sn_frame_release(f);
}

static inline uint32_t sn_pool_free_count(const struct sn_pool *pool)
{
	return pool->std.nfree + pool->jumbo.nfree;
}

/* Free buffers of the size class @f belongs to. */
static inline uint32_t sn_pool_class_free(const struct sn_frame *f)
{
	return f->cap == SN_POOL_STD_CAP ? f->pool->std.nfree : f->pool->jumbo.nfree;
}

static inline uint32_t sn_pool_total(const struct sn_pool *pool)
{
	return pool->std.total + pool->jumbo.total;
}

#endif
