/* framing.c - length prefixes and the receive buffer every stream peer uses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <squibnet/switch.h>

#include "framing.h"

static const char *const names[] = {
	[SN_FRAMING_QEMU] = "qemu",
	[SN_FRAMING_HYPERKIT] = "hyperkit",
	[SN_FRAMING_VDE] = "vde",
};

int sn_framing_from_name(const char *name, enum sn_framing *ret)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(name, names[i])) {
			*ret = (enum sn_framing)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *sn_framing_name(enum sn_framing f)
{
	return names[f];
}

void sn_framing_put(enum sn_framing f, uint8_t *hdr, uint32_t len)
{
	switch (f) {
	case SN_FRAMING_QEMU:
		hdr[0] = len >> 24;
		hdr[1] = (len >> 16) & 0xff;
		hdr[2] = (len >> 8) & 0xff;
		hdr[3] = len & 0xff;
		break;
	case SN_FRAMING_HYPERKIT:
		hdr[0] = len & 0xff;
		hdr[1] = (len >> 8) & 0xff;
		break;
	case SN_FRAMING_VDE:
		hdr[0] = (len >> 8) & 0xff;
		hdr[1] = len & 0xff;
		break;
	}
}

ssize_t sn_framing_next(enum sn_framing f, const uint8_t *buf, size_t avail, uint32_t *ret_len)
{
	size_t hl = sn_framing_hdr_len(f);
	uint32_t len;

	if (avail < hl)
		return 0;
	switch (f) {
	case SN_FRAMING_QEMU:
		len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
		break;
	case SN_FRAMING_HYPERKIT:
		len = (uint32_t)buf[1] << 8 | buf[0];
		break;
	default:
		len = (uint32_t)buf[0] << 8 | buf[1];
		break;
	}
	if (len == 0 || len > SN_FRAME_MAX)
		return -EBADMSG;
	if (avail < hl + len)
		return 0;
	*ret_len = len;
	return (ssize_t)(hl + len);
}

int sn_streambuf_init(struct sn_streambuf *b, size_t cap)
{
	if (cap < SN_FRAME_MAX + 4 + 4096)
		cap = SN_FRAME_MAX + 4 + 4096;
	b->data = malloc(cap);
	b->cap = cap;
	b->len = 0;
	return b->data ? 0 : -ENOMEM;
}

void sn_streambuf_finish(struct sn_streambuf *b)
{
	free(b->data);
	b->data = NULL;
	b->cap = b->len = 0;
}

ssize_t sn_streambuf_fill(struct sn_streambuf *b, int fd)
{
	ssize_t n;

	do
		n = read(fd, b->data + b->len, b->cap - b->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	b->len += (size_t)n;
	return n;
}

int sn_streambuf_drain(struct sn_streambuf *b, enum sn_framing f,
		       int (*frame)(void *ctx, const uint8_t *data, uint32_t len), void *ctx)
{
	size_t off = 0;
	int count = 0, r = 0;

	for (;;) {
		uint32_t len;
		ssize_t rec = sn_framing_next(f, b->data + off, b->len - off, &len);

		if (rec < 0) {
			b->len = 0;
			return (int)rec;
		}
		if (rec == 0)
			break;
		r = frame(ctx, b->data + off + sn_framing_hdr_len(f), len);
		if (r)
			break;
		off += (size_t)rec;
		count++;
	}
	if (off > 0) {
		memmove(b->data, b->data + off, b->len - off);
		b->len -= off;
	}
	return r ? r : count;
}
