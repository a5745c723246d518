/* pool.c - frame buffers allocated once and recycled through free lists.
 *
 * Two size classes: standard buffers (2 KiB, enough for MTU 1500 with a VLAN tag and room to
 * spare) allocated at switch creation, and jumbo buffers (64 KiB) allocated the first time a
 * port with a large MTU is added. A frame is reference-counted: flooding it to N ports takes N
 * references and copies nothing. */
#include <errno.h>
#include <stdlib.h>

#include "pool.h"

static int class_init(struct sn_pool *pool, struct sn_pool_class *c, uint32_t n, uint32_t cap)
{
	c->cap = cap;
	c->total = c->nfree = 0;
	c->free = NULL;
	if (n == 0)
		return 0;
	c->frames = calloc(n, sizeof(*c->frames));
	c->mem = malloc((size_t)n * cap);
	if (!c->frames || !c->mem) {
		free(c->frames);
		free(c->mem);
		c->frames = NULL;
		c->mem = NULL;
		return -ENOMEM;
	}
	for (uint32_t i = n; i-- > 0;) {
		struct sn_frame *f = &c->frames[i];

		f->pool = pool;
		f->cap = cap;
		f->data = c->mem + (size_t)i * cap;
		f->next_free = c->free;
		c->free = f;
	}
	c->total = c->nfree = n;
	return 0;
}

static void class_finish(struct sn_pool_class *c)
{
	free(c->frames);
	free(c->mem);
	c->frames = NULL;
	c->mem = NULL;
	c->free = NULL;
	c->total = c->nfree = 0;
}

int sn_pool_init(struct sn_pool *pool, uint32_t nstd, uint32_t njumbo)
{
	*pool = (struct sn_pool){.jumbo_want = njumbo};
	pool->jumbo.cap = SN_POOL_JUMBO_CAP;
	return class_init(pool, &pool->std, nstd, SN_POOL_STD_CAP);
}

void sn_pool_finish(struct sn_pool *pool)
{
	class_finish(&pool->std);
	class_finish(&pool->jumbo);
}

int sn_pool_want_jumbo(struct sn_pool *pool)
{
	if (pool->jumbo.total > 0 || pool->jumbo_want == 0)
		return 0;
	return class_init(pool, &pool->jumbo, pool->jumbo_want, SN_POOL_JUMBO_CAP);
}

static inline uint8_t *buffer_of(const struct sn_pool_class *c, const struct sn_frame *f)
{
	return c->mem + (size_t)(f - c->frames) * c->cap;
}

static inline struct sn_pool_class *class_of(const struct sn_frame *f)
{
	return f->cap == SN_POOL_STD_CAP ? &f->pool->std : &f->pool->jumbo;
}

static struct sn_frame *class_get(struct sn_pool_class *c)
{
	struct sn_frame *f = c->free;

	if (!f)
		return NULL;
	c->free = f->next_free;
	c->nfree--;
	f->refs = 1;
	f->len = 0;
	f->data = buffer_of(c, f);
	f->vlan = f->tpid = f->tci = 0;
	f->off = (struct sn_offload){0};
	f->segs_failed = false;
	return f;
}

uint32_t sn_frame_headroom(const struct sn_frame *f)
{
	return (uint32_t)(f->data - buffer_of(class_of(f), f));
}

struct sn_frame *sn_pool_get(struct sn_pool *pool, uint32_t len)
{
	if (len <= SN_POOL_STD_CAP)
		return class_get(&pool->std);
	if (len <= SN_POOL_JUMBO_CAP)
		return class_get(&pool->jumbo);
	return NULL;
}

void sn_frame_release(struct sn_frame *f)
{
	struct sn_pool_class *c = class_of(f);

	if (f->alt) {
		sn_frame_unref(f->alt);
		f->alt = NULL;
	}
	while (f->segs) {
		struct sn_frame *s = f->segs;

		f->segs = s->seg_next;
		s->seg_next = NULL;
		sn_frame_unref(s);
	}
	f->next_free = c->free;
	c->free = f;
	c->nfree++;
}
