/* framing.h - length-prefixed frames on byte streams.
 *
 *   qemu:     4-byte big-endian length (QEMU -netdev stream/socket, gvproxy -listen-qemu,
 *             socket_vmnet)
 *   hyperkit: 2-byte little-endian length (gvproxy -listen-stdio)
 *   vde:      2-byte big-endian length (vde_plug streams)
 */
#ifndef SN_FRAMING_H
#define SN_FRAMING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sn_framing {
	SN_FRAMING_QEMU,
	SN_FRAMING_HYPERKIT,
	SN_FRAMING_VDE,
};

/* Returns 0 and sets *ret, or -EINVAL for an unknown name. */
int sn_framing_from_name(const char *name, enum sn_framing *ret);
const char *sn_framing_name(enum sn_framing f);

static inline size_t sn_framing_hdr_len(enum sn_framing f)
{
	return f == SN_FRAMING_QEMU ? 4 : 2;
}

/* Writes the prefix for a frame of @len bytes into @hdr (sn_framing_hdr_len() bytes). */
void sn_framing_put(enum sn_framing f, uint8_t *hdr, uint32_t len);

/*
 * Looks at the bytes @buf[0..@avail). Returns the size of the first whole record (prefix plus
 * frame) and sets *ret_len to the frame's length; 0 when more bytes are needed; -EBADMSG for a
 * zero length or one above SN_FRAME_MAX.
 */
ssize_t sn_framing_next(enum sn_framing f, const uint8_t *buf, size_t avail, uint32_t *ret_len);

/*
 * Receive buffer for one stream peer: read as much as fits, walk the whole frames, keep the
 * tail for the next read. Sized so a maximal frame always fits behind a partial one.
 */
struct sn_streambuf {
	uint8_t *data;
	size_t cap;
	size_t len;
};

#define SN_STREAMBUF_DEFAULT (256 * 1024)

int sn_streambuf_init(struct sn_streambuf *b, size_t cap);
void sn_streambuf_finish(struct sn_streambuf *b);

/* One read(2) into the free space. Returns bytes read, 0 at EOF, -errno (-EAGAIN included). */
ssize_t sn_streambuf_fill(struct sn_streambuf *b, int fd);

/*
 * Calls @frame for each whole frame in the buffer, then moves the incomplete tail to the front.
 * Returns the number of frames, or -EBADMSG on a bad prefix (the buffer is then emptied: the
 * stream cannot be resynchronised). @frame returning non-zero stops the walk early (frames after
 * it stay buffered) and that value is returned.
 */
int sn_streambuf_drain(struct sn_streambuf *b, enum sn_framing f,
		       int (*frame)(void *ctx, const uint8_t *data, uint32_t len), void *ctx);

#endif
