/* vhost_user_proto.c - the vhost-user back-end control plane (QEMU docs/interop/vhost-user.rst).
 *
 * Reads the front-end's messages one at a time (header, then exactly its payload, so the
 * descriptors passed with SCM_RIGHTS always belong to the message being read), checks each
 * one strictly against what the request allows, and keeps the state the owner needs to run
 * the rings: negotiated features, the guest memory (mmap()ed, bounds-checked, unmapped when
 * replaced and on disconnect) and each ring's size, addresses, base and eventfds. Anything
 * malformed closes that connection with the reason logged; the switch, and a listener's
 * readiness for the next front-end, are never affected. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../evfd.h"
#include "../logging.h"
#include "../sock.h"
#include "../spec.h"
#include "../util.h"
#include "memguard.h"
#include "vhost_user_proto.h"

/* Protocol features we implement: one queue pair (MQ, for GET_QUEUE_NUM) and REPLY_ACK. */
#define PROTOCOL_FEATURES ((1ull << SN_VU_PROTOCOL_F_MQ) | (1ull << SN_VU_PROTOCOL_F_REPLY_ACK))

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

struct vu_state {
	uint32_t index;
	uint32_t num;
};

struct vu_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct vu_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t offset;
};

struct vu_mem {
	uint32_t nregions;
	uint32_t padding;
	struct vu_mem_region regions[];
};

_Static_assert(sizeof(struct vu_hdr) == SN_VU_HDR_SIZE, "vhost-user header is 12 bytes");
_Static_assert(sizeof(struct vu_state) == 8, "vring state payload is 8 bytes");
_Static_assert(sizeof(struct vu_addr) == 40, "vring address payload is 40 bytes");
_Static_assert(sizeof(struct vu_mem_region) == 32, "memory region is 32 bytes");
_Static_assert(8 + SN_VU_MAX_REGIONS * 32 <= SN_VU_MAX_PAYLOAD, "payload buffer holds a full table");

static const char *const request_names[] = {
	[SN_VU_GET_FEATURES] = "GET_FEATURES",
	[SN_VU_SET_FEATURES] = "SET_FEATURES",
	[SN_VU_SET_OWNER] = "SET_OWNER",
	[SN_VU_RESET_OWNER] = "RESET_OWNER",
	[SN_VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[SN_VU_SET_LOG_BASE] = "SET_LOG_BASE",
	[SN_VU_SET_LOG_FD] = "SET_LOG_FD",
	[SN_VU_SET_VRING_NUM] = "SET_VRING_NUM",
	[SN_VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[SN_VU_SET_VRING_BASE] = "SET_VRING_BASE",
	[SN_VU_GET_VRING_BASE] = "GET_VRING_BASE",
	[SN_VU_SET_VRING_KICK] = "SET_VRING_KICK",
	[SN_VU_SET_VRING_CALL] = "SET_VRING_CALL",
	[SN_VU_SET_VRING_ERR] = "SET_VRING_ERR",
	[SN_VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[SN_VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[SN_VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[SN_VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
};

const char *sn_vu_request_name(uint32_t request)
{
	return request < SN_ARRAY_SIZE(request_names) ? request_names[request] : NULL;
}

/* ---- memory ---- */

#define HUGETLBFS_MAGIC 0x958458f6 /* linux/magic.h */

/* Unguards and unmaps @n regions (guard first: the range must not match a later mapping). */
static void unmap_regions(struct sn_vu_region *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		sn_memguard_remove(r[i].guard);
		munmap(r[i].map, r[i].map_len);
	}
}

static void unmap_all(struct sn_vu *vu)
{
	unmap_regions(vu->regions, vu->nregions);
	vu->nregions = 0;
	atomic_store(&vu->mem_fault, 0);
}

/* A front-end that shrinks the file under our mapping would make the next access raise
 * SIGBUS (the guard absorbs that, but the port is lost): where the file still takes seals,
 * forbid shrinking. QEMU's memfd backend seals by itself; hugetlbfs and ordinary files
 * cannot be sealed, nor a memfd made without MFD_ALLOW_SEALING. */
static void seal_shrink(struct sn_vu *vu, unsigned i, int fd)
{
#ifdef F_ADD_SEALS
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		sn_debug("port %s: guest memory region %u cannot be sealed (%s): a shrink would be survived, "
			 "not prevented", vu->name, i, strerror(errno));
	else if (seals & F_SEAL_SHRINK)
		sn_debug("port %s: guest memory region %u is sealed against shrinking already", vu->name, i);
	else if (seals & F_SEAL_SEAL)
		sn_debug("port %s: guest memory region %u is not sealed against shrinking and takes no more "
			 "seals: a shrink would be survived, not prevented", vu->name, i);
	else if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		sn_debug("port %s: guest memory region %u: adding F_SEAL_SHRINK: %s", vu->name, i, strerror(errno));
	else
		sn_debug("port %s: guest memory region %u: added F_SEAL_SHRINK, the front-end can no longer "
			 "shrink it", vu->name, i);
#endif
}

/* The page size of a mapping of @fd: a huge page on hugetlbfs. */
static size_t map_page_size(int fd)
{
	struct statfs sfs;
	long page = sysconf(_SC_PAGESIZE);

	if (fstatfs(fd, &sfs) == 0 && (unsigned long)sfs.f_type == HUGETLBFS_MAGIC && sfs.f_bsize > page)
		return (size_t)sfs.f_bsize;
	return page > 0 ? (size_t)page : 4096;
}

/* The guest-physical address of front-end user address @ua, when [@ua, @ua + @len) is
 * inside one region. */
static int uaddr_to_gpa(const struct sn_vu *vu, uint64_t ua, uint64_t len, uint64_t *ret)
{
	for (unsigned i = 0; i < vu->nregions; i++) {
		const struct sn_vu_region *r = &vu->regions[i];

		if (ua >= r->uaddr && ua - r->uaddr <= r->size && len <= r->size - (ua - r->uaddr)) {
			*ret = r->gpa + (ua - r->uaddr);
			return 0;
		}
	}
	return -EFAULT;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int protocol_error(struct sn_vu *vu, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- rings ---- */

bool sn_vu_ring_enabled(const struct sn_vu *vu, unsigned idx)
{
	return !(vu->features & (1ull << SN_VU_F_PROTOCOL_FEATURES)) || vu->rings[idx].enable_msg;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Stops ring @idx if it runs; its base becomes the next avail index to process. */
static void ring_stop(struct sn_vu *vu, unsigned idx)
{
	struct sn_vu_ring *r = &vu->rings[idx];

	ev_io_stop(vu->loop, &r->kick_io);
	if (r->started) {
		r->base = vu->ops->ring_stop(vu->ctx, vu, idx);
		r->started = false;
	}
}

static void ring_reset(struct sn_vu *vu, unsigned idx)
{
	struct sn_vu_ring *r = &vu->rings[idx];

	ring_stop(vu, idx);
	close_fd(&r->kick_fd);
	close_fd(&r->call_fd);
	close_fd(&r->err_fd);
	r->num = 0;
	r->base = 0;
	r->addr_set = false;
	r->enable_msg = false;
}

/* The ring addresses in guest-physical terms, against the current memory table. */
static int ring_translate(struct sn_vu *vu, struct sn_vu_ring *r, struct sn_error *err)
{
	uint64_t n = r->num;

	/* sizes of a split ring: 16-byte descriptors; avail and used rings with their event words */
	if (uaddr_to_gpa(vu, r->desc_ua, 16 * n, &r->desc) < 0)
		return sn_error_set(err, -EFAULT, "ring %u: descriptor table 0x%" PRIx64 " is outside guest memory",
				    r->idx, r->desc_ua);
	if (uaddr_to_gpa(vu, r->avail_ua, 6 + 2 * n, &r->avail) < 0)
		return sn_error_set(err, -EFAULT, "ring %u: avail ring 0x%" PRIx64 " is outside guest memory",
				    r->idx, r->avail_ua);
	if (uaddr_to_gpa(vu, r->used_ua, 6 + 8 * n, &r->used) < 0)
		return sn_error_set(err, -EFAULT, "ring %u: used ring 0x%" PRIx64 " is outside guest memory",
				    r->idx, r->used_ua);
	return 0;
}

static int ring_start(struct sn_vu *vu, unsigned idx, struct sn_error *err)
{
	struct sn_vu_ring *r = &vu->rings[idx];
	int ret;

	if (r->started)
		return 0;
	if (!r->num || !r->addr_set || !vu->nregions)
		return sn_error_set(err, -EPROTO, "ring %u kicked before its size, addresses and memory were set", idx);
	ret = ring_translate(vu, r, err);
	if (ret < 0)
		return ret;
	ret = vu->ops->ring_start(vu->ctx, vu, idx, err);
	if (ret < 0)
		return ret;
	r->started = true;
	return 0;
}

static void kick_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_vu_ring *r = w->data;
	struct sn_vu *vu = r->vu;
	struct sn_error err = {{0}};

	/* the kick stays unread: the ring's own watcher sees it and processes what is there */
	ev_io_stop(loop, w);
	if (ring_start(vu, r->idx, &err) < 0)
		protocol_error(vu, "%s", err.msg);
}

/* Watches for the kick that starts ring @idx (SET_VRING_KICK, or a restart after a change). */
static void ring_arm(struct sn_vu *vu, unsigned idx)
{
	struct sn_vu_ring *r = &vu->rings[idx];

	if (r->started || r->kick_fd < 0)
		return;
	ev_io_stop(vu->loop, &r->kick_io);
	ev_io_set(&r->kick_io, r->kick_fd, EV_READ);
	ev_io_start(vu->loop, &r->kick_io);
}

/* ---- connection ---- */

static void drop_fds(struct sn_vu *vu)
{
	for (unsigned i = 0; i < vu->nfds; i++)
		close(vu->fds[i]);
	vu->nfds = 0;
}

static void session_reset(struct sn_vu *vu)
{
	for (unsigned i = 0; i < SN_VU_NRINGS; i++)
		ring_reset(vu, i);
	unmap_all(vu);
	vu->features = 0;
	vu->protocol_features = 0;
	vu->owned = false;
	vu->have = 0;
	drop_fds(vu);
}

/* Stops the rings, forgets the session and closes the front-end's connection. */
static void session_close(struct sn_vu *vu)
{
	ev_io_stop(vu->loop, &vu->io);
	for (unsigned i = 0; i < SN_VU_NRINGS; i++)
		ring_stop(vu, i);
	session_reset(vu);
	close(vu->fd);
	vu->fd = -1;
}

void sn_vu_disconnect(struct sn_vu *vu, const char *why)
{
	if (vu->fd < 0)
		return;
	sn_info("port %s: vhost-user front-end disconnected: %s", vu->name, why);
	session_close(vu);
	vu->ops->link(vu->ctx, vu, false, why);
}

/* A malformed message: the connection ends, the reason goes to the log at warning level. */
static int protocol_error(struct sn_vu *vu, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	sn_warn("port %s: vhost-user protocol error, closing the connection: %s", vu->name, why);
	vu->protocol_errors++;
	sn_vu_disconnect(vu, why);
	return -EPROTO;
}

static int send_reply(struct sn_vu *vu, const struct vu_hdr *req, const void *payload, uint32_t size)
{
	union {
		uint8_t b[SN_VU_HDR_SIZE + 16];
		struct vu_hdr h;
	} out;
	ssize_t n;

	out.h = (struct vu_hdr){.request = req->request, .flags = SN_VU_VERSION | SN_VU_FLAG_REPLY, .size = size};
	memcpy(out.b + SN_VU_HDR_SIZE, payload, size);
	do
		n = send(vu->fd, out.b, SN_VU_HDR_SIZE + size, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(SN_VU_HDR_SIZE + size)) {
		/* replies are a few bytes on an otherwise idle socket: a full buffer means a stuck peer */
		char why[128];

		snprintf(why, sizeof(why), "cannot send the %s reply: %s", sn_vu_request_name(req->request),
			 n < 0 ? strerror(errno) : "short write");
		sn_vu_disconnect(vu, why);
		return -EIO;
	}
	return 0;
}

static int reply_u64(struct sn_vu *vu, const struct vu_hdr *req, uint64_t v)
{
	return send_reply(vu, req, &v, sizeof(v));
}

static int handle_mem_table(struct sn_vu *vu, const struct vu_hdr *h, const uint8_t *payload)
{
	struct vu_mem mem;
	struct vu_mem_region want[SN_VU_MAX_REGIONS];
	struct sn_vu_region got[SN_VU_MAX_REGIONS];
	bool running[SN_VU_NRINGS];
	unsigned n;

	memcpy(&mem, payload, sizeof(mem));
	n = mem.nregions;
	if (n == 0 || n > SN_VU_MAX_REGIONS)
		return protocol_error(vu, "SET_MEM_TABLE with %u regions (1 to %d allowed)", n, SN_VU_MAX_REGIONS);
	if (h->size < 8 + 32 * n)
		return protocol_error(vu, "SET_MEM_TABLE of %u bytes cannot hold %u regions", h->size, n);
	if (vu->nfds != n)
		return protocol_error(vu, "SET_MEM_TABLE with %u regions came with %u file descriptors", n, vu->nfds);
	memcpy(want, payload + 8, 32 * n);
	for (unsigned i = 0; i < n; i++) {
		const struct vu_mem_region *r = &want[i];

		if (r->size == 0 || r->gpa + r->size < r->gpa || r->uaddr + r->size < r->uaddr ||
		    r->offset + r->size < r->offset)
			return protocol_error(vu, "SET_MEM_TABLE region %u (gpa 0x%" PRIx64 " size 0x%" PRIx64
					      " offset 0x%" PRIx64 ") is empty or wraps around", i, r->gpa, r->size,
					      r->offset);
		for (unsigned j = 0; j < i; j++)
			if (overlap(r->gpa, r->size, want[j].gpa, want[j].size) ||
			    overlap(r->uaddr, r->size, want[j].uaddr, want[j].size))
				return protocol_error(vu, "SET_MEM_TABLE regions %u and %u overlap", j, i);
	}
	for (unsigned i = 0; i < n; i++) {
		struct stat st;
		size_t len = (size_t)(want[i].offset + want[i].size), page;
		void *p;
		int guard;

		/* Seal first, then check the size: a shrink between the two is no longer possible. */
		seal_shrink(vu, i, vu->fds[i]);
		/* Touching a page past the end of the file raises SIGBUS: refuse what is short now. */
		if (fstat(vu->fds[i], &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < want[i].offset + want[i].size) {
			unmap_regions(got, i);
			return protocol_error(vu, "SET_MEM_TABLE region %u: the file is not a regular file of at least "
					      "0x%" PRIx64 " bytes", i, want[i].offset + want[i].size);
		}
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, vu->fds[i], 0);
		if (p == MAP_FAILED) {
			int e = errno;

			unmap_regions(got, i);
			return protocol_error(vu, "SET_MEM_TABLE region %u: mmap of 0x%zx bytes: %s", i, len, strerror(e));
		}
		/* ...and one that shrinks later is survived: the guard turns the SIGBUS into zeros
		 * and a flag the port checks (its rings stop, the switch carries on) */
		page = map_page_size(vu->fds[i]);
		guard = sn_memguard_add(p, (len + page - 1) & ~(page - 1), page, &vu->mem_fault);
		if (guard < 0) {
			munmap(p, len);
			unmap_regions(got, i);
			return protocol_error(vu, "SET_MEM_TABLE region %u: %s", i,
					      guard == -ENOSPC ? "too many guest memory regions mapped in this process"
							       : strerror(-guard));
		}
		got[i] = (struct sn_vu_region){
			.gpa = want[i].gpa, .size = want[i].size, .uaddr = want[i].uaddr, .offset = want[i].offset,
			.host = (uint8_t *)p + want[i].offset, .map = p, .map_len = len, .guard = guard,
		};
	}
	/* Running rings hold pointers into the old mapping: stop them, swap, restart at the same
	 * place (the front-end changes the table under running rings on memory hot-plug). */
	for (unsigned i = 0; i < SN_VU_NRINGS; i++) {
		running[i] = vu->rings[i].started;
		ring_stop(vu, i);
	}
	unmap_all(vu);
	memcpy(vu->regions, got, sizeof(got[0]) * n);
	vu->nregions = n;
	drop_fds(vu); /* the mappings keep the memory; the descriptors are not needed any more */
	sn_debug("port %s: vhost-user memory table of %u regions", vu->name, n);
	for (unsigned i = 0; i < SN_VU_NRINGS; i++) {
		struct sn_error err = {{0}};

		if (running[i] && ring_start(vu, i, &err) < 0)
			return protocol_error(vu, "after SET_MEM_TABLE: %s", err.msg);
		ring_arm(vu, i);
	}
	return 0;
}

/* A SET_VRING_KICK/CALL/ERR payload: the ring and its descriptor (or -1), taken from the message. */
static int vring_fd(struct sn_vu *vu, const struct vu_hdr *h, uint64_t v, unsigned *ret_idx, int *ret_fd)
{
	const char *name = sn_vu_request_name(h->request);

	if (v & ~(uint64_t)(SN_VU_VRING_IDX_MASK | SN_VU_VRING_NOFD))
		return protocol_error(vu, "%s with unknown bits in 0x%" PRIx64, name, v);
	if ((v & SN_VU_VRING_IDX_MASK) >= SN_VU_NRINGS)
		return protocol_error(vu, "%s for ring %u (this device has %d)", name,
				      (unsigned)(v & SN_VU_VRING_IDX_MASK), SN_VU_NRINGS);
	if (v & SN_VU_VRING_NOFD) {
		if (vu->nfds)
			return protocol_error(vu, "%s says no descriptor but came with %u", name, vu->nfds);
		if (h->request == SN_VU_SET_VRING_KICK)
			return protocol_error(vu, "SET_VRING_KICK without a descriptor (polling is not supported)");
		*ret_fd = -1;
	} else {
		char what[64];

		if (vu->nfds != 1)
			return protocol_error(vu, "%s came with %u file descriptors, want 1", name, vu->nfds);
		/* A file is always readable (the loop would spin on it), and a socket may be the
		 * front-end's own end of this connection (its end would never be seen): only an
		 * eventfd behaves as a kick, call or error notifier must. */
		if (sn_evfd_check(vu->fds[0], what, sizeof(what)) < 0)
			return protocol_error(vu, "%s for ring %u: the descriptor is %s, not an eventfd", name,
					      (unsigned)(v & SN_VU_VRING_IDX_MASK), what);
		*ret_fd = vu->fds[0];
		vu->nfds = 0;
		sn_fd_nonblock(*ret_fd);
	}
	*ret_idx = (unsigned)(v & SN_VU_VRING_IDX_MASK);
	return 0;
}

/* The payload size a request must have; -1 for "checked by its handler", -2 for unsupported. */
static int expected_size(uint32_t request)
{
	switch (request) {
	case SN_VU_GET_FEATURES:
	case SN_VU_SET_OWNER:
	case SN_VU_RESET_OWNER:
	case SN_VU_GET_PROTOCOL_FEATURES:
	case SN_VU_GET_QUEUE_NUM:
		return 0;
	case SN_VU_SET_FEATURES:
	case SN_VU_SET_PROTOCOL_FEATURES:
	case SN_VU_SET_VRING_KICK:
	case SN_VU_SET_VRING_CALL:
	case SN_VU_SET_VRING_ERR:
		return 8;
	case SN_VU_SET_VRING_NUM:
	case SN_VU_SET_VRING_BASE:
	case SN_VU_GET_VRING_BASE:
	case SN_VU_SET_VRING_ENABLE:
		return 8;
	case SN_VU_SET_VRING_ADDR:
		return (int)sizeof(struct vu_addr);
	case SN_VU_SET_MEM_TABLE:
		return -1;
	default:
		return -2;
	}
}

static bool takes_state(uint32_t request)
{
	return request == SN_VU_SET_VRING_NUM || request == SN_VU_SET_VRING_BASE ||
	       request == SN_VU_GET_VRING_BASE || request == SN_VU_SET_VRING_ENABLE;
}

static bool takes_fds(uint32_t request)
{
	return request == SN_VU_SET_MEM_TABLE || request == SN_VU_SET_VRING_KICK ||
	       request == SN_VU_SET_VRING_CALL || request == SN_VU_SET_VRING_ERR;
}

/* Acts on the complete message in vu->msg. Returns 0, or < 0 when the connection was closed. */
static int dispatch(struct sn_vu *vu)
{
	struct vu_hdr h;
	const uint8_t *p = vu->msg.bytes + SN_VU_HDR_SIZE;
	const char *name;
	struct vu_state st = {0};
	uint64_t u64 = 0;
	int want, r;
	bool replied = false;

	memcpy(&h, vu->msg.bytes, sizeof(h));
	name = sn_vu_request_name(h.request);
	sn_debug("port %s: vhost-user %s (%u) flags 0x%x size %u fds %u", vu->name, name ? name : "?", h.request,
		 h.flags, h.size, vu->nfds);
	want = expected_size(h.request);
	if (want == -2)
		return protocol_error(vu, "unsupported request %u%s%s", h.request, name ? " " : "", name ? name : "");
	if (want >= 0 && h.size != (uint32_t)want)
		return protocol_error(vu, "%s with a %u-byte payload (want %d)", name, h.size, want);
	if (want == -1 && h.size < 8)
		return protocol_error(vu, "%s with a %u-byte payload", name, h.size);
	if (vu->nfds && !takes_fds(h.request))
		return protocol_error(vu, "%s came with %u file descriptors it cannot take", name, vu->nfds);
	/* u64 and vring-state payloads are both 8 bytes: read both views, use the right one */
	if (want == 8) {
		memcpy(&u64, p, 8);
		memcpy(&st, p, sizeof(st));
	}
	if (takes_state(h.request) && st.index >= SN_VU_NRINGS)
		return protocol_error(vu, "%s for ring %u (this device has %d)", name, st.index, SN_VU_NRINGS);

	switch (h.request) {
	case SN_VU_GET_FEATURES:
		r = reply_u64(vu, &h, vu->device_features | (1ull << SN_VU_F_PROTOCOL_FEATURES));
		replied = true;
		break;
	case SN_VU_SET_FEATURES:
		if (u64 & ~(vu->device_features | (1ull << SN_VU_F_PROTOCOL_FEATURES)))
			return protocol_error(vu, "SET_FEATURES 0x%" PRIx64 " asks for features not offered (0x%" PRIx64 ")",
					      u64, u64 & ~(vu->device_features | (UINT64_C(1) << SN_VU_F_PROTOCOL_FEATURES)));
		{
			bool was[SN_VU_NRINGS];

			for (unsigned i = 0; i < SN_VU_NRINGS; i++)
				was[i] = sn_vu_ring_enabled(vu, i);
			vu->features = u64;
			if (vu->ops->features)
				vu->ops->features(vu->ctx, vu);
			for (unsigned i = 0; i < SN_VU_NRINGS; i++)
				if (vu->rings[i].started && was[i] != sn_vu_ring_enabled(vu, i))
					vu->ops->ring_enable(vu->ctx, vu, i, !was[i]);
		}
		r = 0;
		break;
	case SN_VU_GET_PROTOCOL_FEATURES:
		r = reply_u64(vu, &h, PROTOCOL_FEATURES);
		replied = true;
		break;
	case SN_VU_SET_PROTOCOL_FEATURES:
		if (u64 & ~PROTOCOL_FEATURES)
			return protocol_error(vu, "SET_PROTOCOL_FEATURES 0x%" PRIx64 " asks for features not offered", u64);
		vu->protocol_features = u64;
		r = 0;
		break;
	case SN_VU_GET_QUEUE_NUM:
		r = reply_u64(vu, &h, SN_VU_NRINGS / 2);
		replied = true;
		break;
	case SN_VU_SET_OWNER:
		vu->owned = true;
		r = 0;
		break;
	case SN_VU_RESET_OWNER:
		/* deprecated; the spec suggests "disable all rings": stop them, keep the session */
		for (unsigned i = 0; i < SN_VU_NRINGS; i++)
			ring_reset(vu, i);
		r = 0;
		break;
	case SN_VU_SET_MEM_TABLE:
		r = handle_mem_table(vu, &h, p);
		break;
	case SN_VU_SET_VRING_NUM:
		if (st.num == 0 || st.num > SN_VU_RING_MAX || (st.num & (st.num - 1)))
			return protocol_error(vu, "SET_VRING_NUM %u for ring %u: want a power of 2 up to %d", st.num,
					      st.index, SN_VU_RING_MAX);
		if (vu->rings[st.index].started)
			return protocol_error(vu, "SET_VRING_NUM on running ring %u", st.index);
		vu->rings[st.index].num = st.num;
		r = 0;
		break;
	case SN_VU_SET_VRING_BASE:
		if (st.num > 0xffff)
			return protocol_error(vu, "SET_VRING_BASE %u for ring %u does not fit 16 bits", st.num, st.index);
		if (vu->rings[st.index].started)
			return protocol_error(vu, "SET_VRING_BASE on running ring %u", st.index);
		vu->rings[st.index].base = (uint16_t)st.num;
		r = 0;
		break;
	case SN_VU_GET_VRING_BASE: {
		struct sn_vu_ring *ring = &vu->rings[st.index];

		ring_stop(vu, st.index);
		/* the front-end hands out new eventfds when it starts the ring again */
		close_fd(&ring->kick_fd);
		close_fd(&ring->call_fd);
		st.num = ring->base;
		r = send_reply(vu, &h, &st, sizeof(st));
		replied = true;
		break;
	}
	case SN_VU_SET_VRING_ADDR: {
		struct vu_addr a;
		struct sn_vu_ring *ring;

		memcpy(&a, p, sizeof(a));
		if (a.index >= SN_VU_NRINGS)
			return protocol_error(vu, "SET_VRING_ADDR for ring %u (this device has %d)", a.index, SN_VU_NRINGS);
		if (a.flags)
			return protocol_error(vu, "SET_VRING_ADDR flags 0x%x (dirty logging is not supported)", a.flags);
		ring = &vu->rings[a.index];
		{
			bool running = ring->started;

			ring_stop(vu, a.index);
			ring->desc_ua = a.desc;
			ring->avail_ua = a.avail;
			ring->used_ua = a.used;
			ring->addr_set = true;
			if (running) {
				struct sn_error err = {{0}};

				if (ring_start(vu, a.index, &err) < 0)
					return protocol_error(vu, "SET_VRING_ADDR: %s", err.msg);
			}
		}
		r = 0;
		break;
	}
	case SN_VU_SET_VRING_KICK:
	case SN_VU_SET_VRING_CALL:
	case SN_VU_SET_VRING_ERR: {
		unsigned idx = 0;
		int fd = -1;
		struct sn_vu_ring *ring;

		r = vring_fd(vu, &h, u64, &idx, &fd);
		if (r < 0)
			return r;
		ring = &vu->rings[idx];
		if (h.request == SN_VU_SET_VRING_ERR) {
			close_fd(&ring->err_fd);
			ring->err_fd = fd;
		} else {
			/* the running ring holds the old descriptor: restart it around the swap */
			bool running = ring->started;

			ring_stop(vu, idx);
			if (h.request == SN_VU_SET_VRING_KICK) {
				close_fd(&ring->kick_fd);
				ring->kick_fd = fd;
			} else {
				close_fd(&ring->call_fd);
				ring->call_fd = fd;
			}
			if (running) {
				struct sn_error err = {{0}};

				if (ring_start(vu, idx, &err) < 0)
					return protocol_error(vu, "%s: %s", name, err.msg);
			} else {
				ring_arm(vu, idx);
			}
		}
		break;
	}
	case SN_VU_SET_VRING_ENABLE: {
		bool before = sn_vu_ring_enabled(vu, st.index);

		if (st.num > 1)
			return protocol_error(vu, "SET_VRING_ENABLE %u for ring %u: want 0 or 1", st.num, st.index);
		vu->rings[st.index].enable_msg = st.num;
		if (vu->rings[st.index].started && before != sn_vu_ring_enabled(vu, st.index))
			vu->ops->ring_enable(vu->ctx, vu, st.index, !before);
		r = 0;
		break;
	}
	default:
		return protocol_error(vu, "unsupported request %u", h.request);
	}
	if (r < 0 || vu->fd < 0)
		return r < 0 ? r : -EPIPE;
	if (!replied && (h.flags & SN_VU_FLAG_NEED_REPLY) &&
	    (vu->protocol_features & (1ull << SN_VU_PROTOCOL_F_REPLY_ACK)))
		return reply_u64(vu, &h, 0);
	return 0;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_vu *vu = w->data;

	/* a bounded number of messages per wake-up keeps a chatty front-end from starving others */
	for (int round = 0; round < 64 && vu->fd >= 0; round++) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * SN_VU_MAX_FDS)];
		} cbuf;
		struct vu_hdr h;
		size_t want;
		struct iovec iov;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
				    .msg_controllen = sizeof(cbuf.buf)};
		unsigned extra = 0;
		ssize_t n;

		/* exactly the rest of the header, or of the payload: never into the next message */
		if (vu->have < SN_VU_HDR_SIZE) {
			want = SN_VU_HDR_SIZE - vu->have;
		} else {
			memcpy(&h, vu->msg.bytes, sizeof(h));
			want = SN_VU_HDR_SIZE + h.size - vu->have;
		}
		iov = (struct iovec){vu->msg.bytes + vu->have, want};
		do
			n = recvmsg(vu->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* take the descriptors first so every path below closes the ones not consumed */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
				if (vu->nfds < SN_VU_MAX_FDS)
					vu->fds[vu->nfds++] = fd;
				else {
					close(fd);
					extra++;
				}
			}
		}
		if (n < 0) {
			char why[128];

			snprintf(why, sizeof(why), "read: %s", strerror(errno));
			sn_vu_disconnect(vu, why);
			return;
		}
		if (n == 0) {
			if (vu->have)
				protocol_error(vu, "connection closed in the middle of a message (%zu bytes read)", vu->have);
			else
				sn_vu_disconnect(vu, "end of stream");
			return;
		}
		if ((mh.msg_flags & MSG_CTRUNC) || extra) {
			protocol_error(vu, "more than %d file descriptors with one message", SN_VU_MAX_FDS);
			return;
		}
		vu->have += (size_t)n;
		if (vu->have == SN_VU_HDR_SIZE) {
			memcpy(&h, vu->msg.bytes, sizeof(h));
			if ((h.flags & SN_VU_FLAG_VERSION_MASK) != SN_VU_VERSION || (h.flags & SN_VU_FLAG_REPLY) ||
			    (h.flags & ~(SN_VU_FLAG_VERSION_MASK | SN_VU_FLAG_REPLY | SN_VU_FLAG_NEED_REPLY))) {
				protocol_error(vu, "request %u with bad flags 0x%x (version 1, no reply bit expected)",
					       h.request, h.flags);
				return;
			}
			if (h.size > SN_VU_MAX_PAYLOAD) {
				protocol_error(vu, "request %u announces a %u-byte payload (at most %d)", h.request,
					       h.size, SN_VU_MAX_PAYLOAD);
				return;
			}
		}
		memcpy(&h, vu->msg.bytes, sizeof(h));
		if (vu->have >= SN_VU_HDR_SIZE && vu->have == SN_VU_HDR_SIZE + h.size) {
			int r = dispatch(vu);

			if (r < 0 || vu->fd < 0)
				return;
			drop_fds(vu);
			vu->have = 0;
		}
	}
}

static void start_session(struct sn_vu *vu, int fd)
{
	vu->fd = fd;
	vu->sessions++;
	vu->have = 0;
	ev_io_set(&vu->io, fd, EV_READ);
	ev_io_start(vu->loop, &vu->io);
	vu->ops->link(vu->ctx, vu, true, NULL);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sn_vu *vu = w->data;

	for (int i = 0; i < 16; i++) {
		int fd = accept4(vu->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (sn_accept_failed(&vu->accept_pause, errno))
				ev_io_stop(loop, w);
			return;
		}
		sn_accept_ok(&vu->accept_pause);
		/* A front-end that reconnects may be faster than our noticing its old connection's
		 * end: read what the old one has left (up to its EOF) before judging. */
		if (vu->fd >= 0)
			read_cb(loop, &vu->io, EV_READ);
		if (vu->fd >= 0) {
			/* one device, one driver: a second front-end would fight over the same rings */
			sn_warn("port %s: refusing a second vhost-user front-end while one is connected", vu->name);
			close(fd);
			continue;
		}
		sn_info("port %s: vhost-user front-end connected", vu->name);
		start_session(vu, fd);
	}
}

static void accept_resume(struct sn_accept_pause *p)
{
	struct sn_vu *vu = p->data;

	ev_io_start(vu->loop, &vu->listen_io);
}

int sn_vu_init(struct sn_vu *vu, struct ev_loop *loop, int fd, uint64_t device_features,
	       const struct sn_vu_ops *ops, void *ctx, const char *name, struct sn_error *err)
{
	int type = 0, listening = 0;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(type), slen = sizeof(ss);

	memset(vu, 0, sizeof(*vu));
	vu->loop = loop;
	vu->ops = ops;
	vu->ctx = ctx;
	vu->name = name;
	vu->device_features = device_features & ~(1ull << SN_VU_F_PROTOCOL_FEATURES);
	vu->listen_fd = -1;
	vu->fd = -1;
	ev_io_init(&vu->io, read_cb, -1, EV_READ);
	vu->io.data = vu;
	ev_io_init(&vu->listen_io, accept_cb, -1, EV_READ);
	vu->listen_io.data = vu;
	sn_accept_pause_init(&vu->accept_pause, loop, "port ", name, accept_resume, vu);
	for (unsigned i = 0; i < SN_VU_NRINGS; i++) {
		struct sn_vu_ring *r = &vu->rings[i];

		r->vu = vu;
		r->idx = i;
		r->kick_fd = r->call_fd = r->err_fd = -1;
		ev_io_init(&r->kick_io, kick_cb, -1, EV_READ);
		r->kick_io.data = r;
	}
	if (fd < 0)
		return 0; /* the owner dials and hands over each connection with sn_vu_attach() */
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
	    getsockname(fd, (struct sockaddr *)&ss, &slen) < 0 || ss.ss_family != AF_UNIX) {
		close(fd);
		return sn_error_set(err, -EINVAL, "descriptor %d is not a unix stream socket", fd);
	}
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		listening = 0;
	if (sn_fd_nonblock(fd) < 0) {
		int e = -errno;

		close(fd);
		return sn_error_set(err, e, "descriptor %d: %s", fd, strerror(-e));
	}
	if (listening) {
		vu->listen_fd = fd;
		ev_io_set(&vu->listen_io, fd, EV_READ);
		ev_io_start(loop, &vu->listen_io);
	} else {
		vu->once = true;
		start_session(vu, fd);
	}
	return 0;
}

int sn_vu_attach(struct sn_vu *vu, int fd)
{
	if (vu->fd >= 0 || vu->listen_fd >= 0) {
		close(fd);
		return -EBUSY;
	}
	if (sn_fd_nonblock(fd) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	sn_info("port %s: vhost-user front-end connected", vu->name);
	start_session(vu, fd);
	return 0;
}

void sn_vu_finish(struct sn_vu *vu)
{
	if (vu->fd >= 0)
		session_close(vu); /* no link callback: the port is going away */
	session_reset(vu);
	sn_accept_pause_stop(&vu->accept_pause);
	if (vu->listen_fd >= 0) {
		ev_io_stop(vu->loop, &vu->listen_io);
		close(vu->listen_fd);
		vu->listen_fd = -1;
	}
}
