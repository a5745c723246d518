/* fuzz-framing.c - length-prefixed stream framing (framing.c) under arbitrary bytes and
 * arbitrary chunking.
 *
 * Input: byte 0 picks the framing (qemu, hyperkit, vde), byte 1 the chunking (0: the whole
 * stream in one read; else read sizes from 1 to 4096 drawn from a generator seeded with it),
 * byte 2 how many frames the callback takes before it stops a walk early (0: never); the rest
 * is the byte stream a peer sends.
 *
 * The stream goes through a pipe into sn_streambuf_fill() and sn_streambuf_drain(), as a stream
 * port reads it. Oracle: the frames delivered, their lengths and bytes, and whether and where
 * the stream was refused as malformed are exactly what sn_framing_next() finds walking the
 * whole stream at once; no chunking changes them. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <squibnet/switch.h>

#include "framing.h"
#include "util.h"

#include "fuzz.h"

struct walk {
	const uint8_t *want;  /* the stream, for comparing */
	size_t want_off;      /* where the next frame must start (its prefix) */
	size_t want_end;      /* bytes the reference walk accepted */
	enum sn_framing f;
	unsigned frames, stop_every, since_stop;
};

static int on_frame(void *ctx, const uint8_t *data, uint32_t len)
{
	struct walk *w = ctx;
	size_t hl = sn_framing_hdr_len(w->f);
	uint32_t ref_len = 0;
	uint8_t hdr[4];
	ssize_t rec;

	if (w->stop_every && ++w->since_stop > w->stop_every) {
		w->since_stop = 0;
		return 7; /* stop here; this frame is offered again by the next walk */
	}
	rec = sn_framing_next(w->f, w->want + w->want_off, w->want_end - w->want_off, &ref_len);
	if (rec <= 0)
		fuzz_fail("frame %u delivered where the reference walk has none (offset %zu)", w->frames, w->want_off);
	if (ref_len != len)
		fuzz_fail("frame %u: length %u, reference %u", w->frames, len, ref_len);
	if (memcmp(data, w->want + w->want_off + hl, len))
		fuzz_fail("frame %u: bytes differ from the stream's", w->frames);
	/* and the prefix sn_framing_put() writes for it is the one the peer sent */
	sn_framing_put(w->f, hdr, len);
	if (memcmp(hdr, w->want + w->want_off, hl))
		fuzz_fail("frame %u: sn_framing_put() writes another prefix for length %u", w->frames, len);
	w->want_off += (size_t)rec;
	w->frames++;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size, false};
	enum sn_framing f = (enum sn_framing)(fuzz_u8(&in) % 3);
	uint32_t seed = fuzz_u8(&in);
	unsigned stop_every = fuzz_u8(&in) % 8;
	const uint8_t *stream = in.p;
	size_t len = in.n, off = 0, ref_end = 0;
	struct sn_streambuf b;
	struct walk w = {.want = stream, .f = f, .stop_every = stop_every};
	bool ref_bad = false, got_bad = false;
	uint32_t flen;
	int pfd[2];

	/* the reference: one walk over everything */
	for (;;) {
		ssize_t rec = sn_framing_next(f, stream + ref_end, len - ref_end, &flen);

		if (rec < 0)
			ref_bad = true;
		if (rec <= 0)
			break;
		if ((size_t)rec <= sn_framing_hdr_len(f) || flen == 0 || flen > SN_FRAME_MAX)
			fuzz_fail("sn_framing_next: record of %zd bytes for a frame of %u", rec, flen);
		ref_end += (size_t)rec;
	}
	w.want_end = ref_end;

	if (sn_streambuf_init(&b, 0) < 0 || pipe(pfd) < 0)
		abort();
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	while (off < len && !got_bad) {
		size_t chunk = len - off, room = b.cap - b.len;
		ssize_t n;
		int r;

		if (seed) {
			seed = seed * 1103515245u + 12345u;
			chunk = SN_MIN(chunk, 1 + (seed >> 16) % 4096);
		}
		chunk = SN_MIN(chunk, SN_MIN(room, (size_t)4096)); /* a pipe takes 4096 bytes at once */
		if (chunk == 0)
			fuzz_fail("receive buffer full (%zu of %zu) with no whole frame in it", b.len, b.cap);
		if (write(pfd[1], stream + off, chunk) != (ssize_t)chunk)
			abort();
		n = sn_streambuf_fill(&b, pfd[0]);
		if (n != (ssize_t)chunk)
			fuzz_fail("sn_streambuf_fill: %zd, want %zu", n, chunk);
		off += chunk;
		do
			r = sn_streambuf_drain(&b, f, on_frame, &w);
		while (r == 7);
		if (r == -EBADMSG)
			got_bad = true;
		else if (r < 0)
			fuzz_fail("sn_streambuf_drain: %d", r);
		if (b.len > b.cap)
			fuzz_fail("receive buffer holds %zu of %zu", b.len, b.cap);
	}
	if (got_bad && b.len != 0)
		fuzz_fail("a malformed stream left %zu bytes buffered", b.len);
	if (got_bad != ref_bad)
		fuzz_fail("malformed: chunked %d, reference %d", got_bad, ref_bad);
	if (w.want_off != ref_end)
		fuzz_fail("delivered %zu bytes of frames, reference %zu", w.want_off, ref_end);
	if (!got_bad && b.len != len - ref_end)
		fuzz_fail("kept a tail of %zu bytes, reference %zu", b.len, len - ref_end);
	close(pfd[0]);
	close(pfd[1]);
	sn_streambuf_finish(&b);
	return 0;
}
