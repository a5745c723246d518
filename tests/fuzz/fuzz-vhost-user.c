/* fuzz-vhost-user.c - a hostile vhost-user front-end against the vhost-user port
 * (backends/vhost_user.c's message handler, ports/vhost_user.c's rings), messages, file
 * descriptors, memory tables and ring contents all from the input.
 *
 * Each input gets a real switch with a `vhost-user,fd=N` port on one end of a socketpair and a
 * second port that feeds it frames; the harness plays the front-end on the other end. The
 * input is a list of operations:
 *
 *   op 0  a message: a count of descriptors and a kind byte for each (below), the 12-byte
 *         header as sent, then as many payload bytes as its size field says (at most 512),
 *         all in one sendmsg() with the descriptors attached, as QEMU sends them
 *   op 1  raw bytes on the socket (a cut or desynchronised message)
 *   op 2  write bytes into guest memory (a memfd the harness made), op 3 write a u16 there
 *   op 4  kick: write the eventfd in a slot     op 5  run the loop a few passes
 *   op 6  a frame from the other port           op 7  make a memfd of some pages in a slot
 *   op 8  shrink a memfd (ftruncate)            op 9  hang up
 *
 * Descriptor kinds (low 3 bits; bits 4-5 pick a slot): 0 a memfd, 1 an eventfd, 2 /dev/null,
 * 3 a pipe's read end, 4 an empty memfd, 5 the front-end's own socket, 6 /dev/zero, 7 a socket
 * of another pair. Op 7's slot byte with bit 7 set makes a memfd the switch may seal against
 * shrinking (then op 8's shrink is refused); without it a shrink reaches the SIGBUS guard.
 *
 * Oracles besides the sanitizers: every reply is version 1 with the reply flag and a payload
 * of 0 or 8 bytes; every descriptor the harness passed is closed once the switch is gone (the
 * process has as many open descriptors after an input as before it); the loop always returns. */
#include <errno.h>
#include <ev.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <squibnet/switch.h>

#include "backends/vhost_user_proto.h"
#include "port.h"
#include "core.h"
#include "util.h"

#include "fuzz.h"

#define SLOTS 4
#define PAGE 4096u
#define MAX_OPS 256
#define PASSES 4

struct mfd {
	int fd;
	uint8_t *map;
	size_t size;
};

struct front {
	int sock;             /* our end; -1 after hanging up */
	bool replies_shared;  /* our socket went to the back-end: it may read our replies */
	struct mfd mem[SLOTS];
	int efd[SLOTS];
	uint8_t rbuf[64];
	size_t rlen;
};

static struct ev_loop *loop;
static int fds_at_start; /* open when the input started */

static void fport_flush(struct sn_port *port)
{
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

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		abort();
	return 0;
}

static void mfd_drop(struct mfd *m)
{
	if (m->map)
		munmap(m->map, m->size);
	if (m->fd >= 0)
		close(m->fd);
	*m = (struct mfd){.fd = -1};
}

/* Guest memory; @sealable: the switch can seal it against shrinking, else a shrink reaches its
 * SIGBUS guard. */
static void mfd_make(struct mfd *m, size_t size, bool sealable)
{
	mfd_drop(m);
	m->fd = memfd_create("fuzz-guest", MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0));
	if (m->fd < 0 || ftruncate(m->fd, (off_t)size) < 0)
		abort();
	m->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	if (m->map == MAP_FAILED)
		abort();
	m->size = size;
}

/* Checks the replies that arrived and drops them. */
static void replies(struct front *f)
{
	uint8_t buf[4096];

	if (f->sock < 0)
		return;
	for (;;) {
		ssize_t n = recv(f->sock, buf, sizeof(buf), MSG_DONTWAIT);

		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			uint32_t req, flags, size;

			f->rbuf[f->rlen++] = buf[i];
			if (f->rlen < SN_VU_HDR_SIZE)
				continue;
			memcpy(&req, f->rbuf, 4);
			memcpy(&flags, f->rbuf + 4, 4);
			memcpy(&size, f->rbuf + 8, 4);
			if (!f->replies_shared && (flags != (SN_VU_VERSION | SN_VU_FLAG_REPLY) || (size != 0 && size != 8)))
				fuzz_fail("reply to request %u: flags 0x%x, size %u", req, flags, size);
			if (f->rlen == SN_VU_HDR_SIZE + (size == 8 ? 8 : 0) || f->replies_shared)
				f->rlen = 0;
		}
	}
}

static void run(struct front *f, unsigned passes)
{
	for (unsigned i = 0; i < passes; i++) {
		ev_run(loop, EVRUN_NOWAIT);
		replies(f);
	}
}

/* A descriptor of @kind to pass; *@close_after says whether the harness closes it after sending. */
static int make_fd(struct front *f, uint8_t kind, bool *close_after)
{
	unsigned slot = (kind >> 4) & (SLOTS - 1);
	int p[2];

	*close_after = true;
	switch (kind & 7) {
	case 0:
		if (f->mem[slot].fd < 0)
			mfd_make(&f->mem[slot], 16 * PAGE, true);
		*close_after = false;
		return f->mem[slot].fd;
	case 6:
		return open("/dev/zero", O_RDONLY | O_CLOEXEC);
	case 1:
		*close_after = false;
		return f->efd[slot];
	case 2:
		return open("/dev/null", O_RDWR | O_CLOEXEC);
	case 3:
		if (pipe2(p, O_CLOEXEC) < 0)
			abort();
		close(p[1]);
		return p[0];
	case 4:
		return memfd_create("fuzz-empty", MFD_CLOEXEC);
	case 5:
		if (f->sock < 0)
			return open("/dev/null", O_RDWR | O_CLOEXEC);
		f->replies_shared = true;
		*close_after = false;
		return f->sock;
	default:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
			abort();
		close(p[1]);
		return p[0];
	}
}

static void send_msg(struct front *f, struct fuzz_in *in)
{
	unsigned nfds = fuzz_u8(in) % 10; /* SN_VU_MAX_FDS and one more */
	int fds[10];
	bool closes[10];
	uint8_t msg[SN_VU_HDR_SIZE + SN_VU_MAX_PAYLOAD];
	const uint8_t *p;
	size_t hl, pl;
	uint32_t size;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 10)];
	} cbuf;
	struct iovec iov;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	for (unsigned i = 0; i < nfds; i++) {
		fds[i] = make_fd(f, fuzz_u8(in), &closes[i]);
		if (fds[i] < 0)
			abort();
	}
	hl = fuzz_bytes(in, SN_VU_HDR_SIZE, &p);
	memcpy(msg, p, hl);
	memset(msg + hl, 0, SN_VU_HDR_SIZE - hl);
	memcpy(&size, msg + 8, 4);
	pl = fuzz_bytes(in, SN_MIN(size, (uint32_t)SN_VU_MAX_PAYLOAD), &p);
	memcpy(msg + SN_VU_HDR_SIZE, p, pl);
	iov = (struct iovec){msg, SN_VU_HDR_SIZE + pl};
	if (nfds) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf)); /* the padding goes to the kernel too */
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (f->sock >= 0)
		sendmsg(f->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	for (unsigned i = 0; i < nfds; i++)
		if (closes[i])
			close(fds[i]);
}

static void guest_write(struct front *f, unsigned slot, uint32_t off, const uint8_t *b, size_t n)
{
	struct mfd *m = &f->mem[slot & (SLOTS - 1)];
	size_t now = m->size;
	off_t end;

	if (m->fd < 0)
		return;
	/* after a shrink only what is still in the file may be touched */
	end = lseek(m->fd, 0, SEEK_END);
	if (end >= 0 && (size_t)end < now)
		now = (size_t)end;
	for (size_t i = 0; i < n && now; i++)
		m->map[(off + i) % now] = b[i];
}

static int describe(const struct sn_port_info *p, void *ctx)
{
	if (!memchr(p->peer, '\0', 256))
		fuzz_fail("port %s: no end to its description", p->name);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size, false};
	struct front f = {.sock = -1};
	struct sn_switch_config cfg;
	struct sn_switch *sw;
	struct sn_port *other;
	struct sn_error err = {{0}};
	char spec[64];
	int sv[2], n;

	fds_at_start = count_fds();
	for (int i = 0; i < SLOTS; i++) {
		f.mem[i] = (struct mfd){.fd = -1};
		f.efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (f.efd[i] < 0)
			abort();
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	f.sock = sv[0];
	sn_switch_config_init(&cfg);
	cfg.pool_frames = 256;
	cfg.jumbo_frames = 2;
	cfg.txq_len = 64;
	if (sn_switch_create(loop, &cfg, &sw) < 0)
		abort();
	other = calloc(1, sizeof(*other));
	if (!other || fuzz_port_init(other, sw, &fport_ops, "other", 1500) < 0 || sn_port_register(other) < 0)
		abort();
	sn_port_set_state(other, SN_PORT_UP);
	snprintf(spec, sizeof(spec), "vhost-user,fd=%d,name=vu", sv[1]);
	if (sn_switch_add_port(sw, spec, NULL, 0, &err) < 0)
		fuzz_fail("%s: %s", spec, err.msg);

	for (int op = 0; op < MAX_OPS && in.n > 0; op++) {
		switch (fuzz_u8(&in) % 10) {
		case 0:
			send_msg(&f, &in);
			run(&f, PASSES);
			break;
		case 1: {
			const uint8_t *b;
			size_t len = fuzz_bytes(&in, fuzz_u8(&in), &b);

			if (f.sock >= 0 && len)
				send(f.sock, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);
			run(&f, 1);
			break;
		}
		case 2: {
			unsigned slot = fuzz_u8(&in);
			uint32_t off = fuzz_u32(&in);
			const uint8_t *b;
			size_t len = fuzz_bytes(&in, fuzz_u8(&in), &b);

			guest_write(&f, slot, off, b, len);
			break;
		}
		case 3: {
			unsigned slot = fuzz_u8(&in);
			uint32_t off = fuzz_u32(&in);
			uint16_t v = fuzz_u16(&in);
			uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};

			guest_write(&f, slot, off, b, 2);
			break;
		}
		case 4: {
			uint64_t one = 1;

			if (write(f.efd[fuzz_u8(&in) & (SLOTS - 1)], &one, sizeof(one)) < 0)
				break;
			run(&f, PASSES);
			break;
		}
		case 5:
			run(&f, 1 + fuzz_u8(&in) % 16);
			break;
		case 6: {
			uint16_t len = fuzz_u16(&in) % 1600;
			uint8_t fill = fuzz_u8(&in);
			struct sn_frame *fr = sn_port_frame_get(other, len);

			if (fr) {
				memset(fr->data, fill, len);
				if (len >= 6)
					memset(fr->data, 0xff, 6);
				fr->len = len;
				sn_port_input(other, &fr, 1);
			}
			run(&f, 1);
			break;
		}
		case 7: {
			unsigned slot = fuzz_u8(&in);

			mfd_make(&f.mem[slot & (SLOTS - 1)], (1 + fuzz_u16(&in) % 64) * (size_t)PAGE, slot & 0x80);
			break;
		}
		case 8: {
			unsigned slot = fuzz_u8(&in) & (SLOTS - 1);
			uint32_t to = fuzz_u32(&in);

			/* the switch seals a memfd that takes seals: then a shrink is refused */
			if (f.mem[slot].fd >= 0 && ftruncate(f.mem[slot].fd, to % (f.mem[slot].size + 1)) < 0 &&
			    errno != EPERM)
				abort();
			break;
		}
		case 9:
			if (f.sock >= 0) {
				close(f.sock);
				f.sock = -1;
			}
			run(&f, 1);
			break;
		}
	}
	run(&f, PASSES);
	sn_switch_foreach_port(sw, describe, NULL); /* the port's describe op, in every state */
	sn_switch_destroy(sw);
	ev_run(loop, EVRUN_NOWAIT);
	if (f.sock >= 0)
		close(f.sock);
	for (int i = 0; i < SLOTS; i++) {
		mfd_drop(&f.mem[i]);
		close(f.efd[i]);
	}
	n = count_fds();
	if (n != fds_at_start)
		fuzz_fail("%d descriptors open after the input, %d before", n, fds_at_start);
	return 0;
}
