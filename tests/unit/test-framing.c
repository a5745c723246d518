/* test-framing.c - unit tests of the length-prefix framings and the stream receive buffer.
 *
 * A byte stream may be cut anywhere by the kernel, so every framing is fed a stream of several
 * frames split at every byte boundary (and one byte at a time, and through a real socket) and
 * must yield exactly the frames that went in. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <squibnet/switch.h>

#include "framing.h"

#include "sn-check.h"

static const enum sn_framing all[] = {SN_FRAMING_QEMU, SN_FRAMING_HYPERKIT, SN_FRAMING_VDE};

/* What the drain callback saw. */
struct got {
	uint8_t *data;       /* frames back to back */
	size_t len, cap;
	uint32_t lens[64];
	unsigned n;
	unsigned stop_after; /* return 1 after this many frames (0: never) */
};

static int collect(void *ctx, const uint8_t *data, uint32_t len)
{
	struct got *g = ctx;

	if (g->stop_after && g->n == g->stop_after)
		return 1;
	if (g->n == 64)
		ck_abort_msg("too many frames");
	if (g->len + len > g->cap) {
		g->cap = (g->len + len) * 2;
		g->data = realloc(g->data, g->cap);
		ck_assert_ptr_nonnull(g->data);
	}
	memcpy(g->data + g->len, data, len);
	g->len += len;
	g->lens[g->n++] = len;
	return 0;
}

static void got_reset(struct got *g)
{
	free(g->data);
	memset(g, 0, sizeof(*g));
}

/* Builds a stream of @n frames of the given lengths with recognisable contents; returns its
 * size and the concatenated payloads in *ret_payload. */
static size_t make_stream(enum sn_framing f, const uint32_t *lens, unsigned n, uint8_t **ret_stream,
			  uint8_t **ret_payload)
{
	size_t hl = sn_framing_hdr_len(f), total = 0, ptotal = 0, off = 0, poff = 0;
	uint8_t *s, *p;

	for (unsigned i = 0; i < n; i++) {
		total += hl + lens[i];
		ptotal += lens[i];
	}
	s = malloc(total);
	p = malloc(ptotal);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(p);
	for (unsigned i = 0; i < n; i++) {
		sn_framing_put(f, s + off, lens[i]);
		off += hl;
		for (uint32_t j = 0; j < lens[i]; j++)
			p[poff + j] = s[off + j] = (uint8_t)(i * 31 + j * 7 + (j >> 8));
		off += lens[i];
		poff += lens[i];
	}
	*ret_stream = s;
	*ret_payload = p;
	return total;
}

static void feed(struct sn_streambuf *b, const uint8_t *data, size_t len)
{
	if (b->len + len > b->cap)
		ck_abort_msg("%zu + %zu bytes overflow the buffer", b->len, len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

/* Plain comparisons rather than ck_assert_*: Check reports every passing assertion to its parent
 * process, which would dominate the run time of the split loops. */
static void assert_got(const struct got *g, const uint32_t *lens, unsigned n, const uint8_t *payload,
		       size_t plen)
{
	if (g->n != n)
		ck_abort_msg("%u frames, want %u", g->n, n);
	for (unsigned i = 0; i < n; i++)
		if (g->lens[i] != lens[i])
			ck_abort_msg("frame %u has %u bytes, want %u", i, g->lens[i], lens[i]);
	if (g->len != plen || memcmp(g->data, payload, plen))
		ck_abort_msg("frame contents differ");
}

/* Drains @b into @g; any error fails the test. */
static int drain_ok(struct sn_streambuf *b, enum sn_framing f, struct got *g)
{
	int r = sn_streambuf_drain(b, f, collect, g);

	if (r < 0)
		ck_abort_msg("drain failed: %d", r);
	return r;
}

START_TEST(split_everywhere)
{
	static const uint32_t lens[] = {60, 1, 1514, 2, 300, 64, 3};
	const unsigned n = sizeof(lens) / sizeof(lens[0]);
	enum sn_framing f = all[_i];
	uint8_t *stream, *payload;
	size_t total = make_stream(f, lens, n, &stream, &payload), plen = total - n * sn_framing_hdr_len(f);
	struct sn_streambuf b;
	struct got g = {0};

	ck_assert_int_eq(sn_streambuf_init(&b, 0), 0);
	/* two pieces, cut at each byte */
	for (size_t cut = 0; cut <= total; cut++) {
		int r1, r2;

		b.len = 0;
		got_reset(&g);
		feed(&b, stream, cut);
		r1 = drain_ok(&b, f, &g);
		if ((unsigned)r1 != g.n)
			ck_abort_msg("cut %zu: drain says %d frames, callback saw %u", cut, r1, g.n);
		feed(&b, stream + cut, total - cut);
		r2 = drain_ok(&b, f, &g);
		if ((unsigned)(r1 + r2) != n || b.len != 0)
			ck_abort_msg("cut %zu: %d + %d frames, %zu bytes left", cut, r1, r2, b.len);
		assert_got(&g, lens, n, payload, plen);
	}
	/* three pieces, both cuts everywhere in the first frames (cheap enough for a short prefix) */
	for (size_t c1 = 0; c1 <= 80; c1++) {
		for (size_t c2 = c1; c2 <= 160; c2 += 3) {
			b.len = 0;
			got_reset(&g);
			feed(&b, stream, c1);
			drain_ok(&b, f, &g);
			feed(&b, stream + c1, c2 - c1);
			drain_ok(&b, f, &g);
			feed(&b, stream + c2, total - c2);
			drain_ok(&b, f, &g);
			assert_got(&g, lens, n, payload, plen);
		}
	}
	/* one byte at a time: every boundary at once */
	b.len = 0;
	got_reset(&g);
	for (size_t i = 0; i < total; i++) {
		feed(&b, stream + i, 1);
		drain_ok(&b, f, &g);
	}
	assert_got(&g, lens, n, payload, plen);
	ck_assert_uint_eq(b.len, 0);
	got_reset(&g);
	sn_streambuf_finish(&b);
	free(stream);
	free(payload);
}
END_TEST

START_TEST(max_frame)
{
	/* the largest frame right behind a partial one still fits the buffer */
	static const uint32_t lens[] = {100, SN_FRAME_MAX, 1, SN_FRAME_MAX};
	enum sn_framing f = all[_i];
	uint8_t *stream, *payload;
	size_t total = make_stream(f, lens, 4, &stream, &payload), plen = total - 4 * sn_framing_hdr_len(f);
	struct sn_streambuf b;
	struct got g = {0};
	size_t off = 0, step = 1;

	ck_assert_int_eq(sn_streambuf_init(&b, 0), 0);
	ck_assert_uint_ge(b.cap, SN_FRAME_MAX + 4);
	while (off < total) {
		size_t n = total - off < step ? total - off : step;

		feed(&b, stream + off, n);
		off += n;
		ck_assert_int_ge(sn_streambuf_drain(&b, f, collect, &g), 0);
		step = step * 3 + 1; /* 1, 4, 13, 40, ... bytes: cuts land inside headers and bodies */
		if (step > 40000)
			step = 7;
	}
	assert_got(&g, lens, 4, payload, plen);
	got_reset(&g);
	sn_streambuf_finish(&b);
	free(stream);
	free(payload);
}
END_TEST

START_TEST(through_socket)
{
	static const uint32_t lens[] = {42, 1514, 60, 9000, 77};
	enum sn_framing f = all[_i];
	uint8_t *stream, *payload;
	size_t total = make_stream(f, lens, 5, &stream, &payload), plen = total - 5 * sn_framing_hdr_len(f);
	struct sn_streambuf b;
	struct got g = {0};
	int sv[2];
	size_t off = 0;
	ssize_t r;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(sn_streambuf_init(&b, 0), 0);
	ck_assert_int_eq(sn_streambuf_fill(&b, sv[1]), -EAGAIN);
	for (size_t chunk = 1; off < total; chunk += 997) {
		size_t n = total - off < chunk ? total - off : chunk;

		ck_assert_int_eq(write(sv[0], stream + off, n), (ssize_t)n);
		off += n;
		r = sn_streambuf_fill(&b, sv[1]);
		ck_assert_int_eq(r, (ssize_t)n);
		ck_assert_int_ge(sn_streambuf_drain(&b, f, collect, &g), 0);
	}
	assert_got(&g, lens, 5, payload, plen);
	close(sv[0]);
	ck_assert_int_eq(sn_streambuf_fill(&b, sv[1]), 0);
	close(sv[1]);
	got_reset(&g);
	sn_streambuf_finish(&b);
	free(stream);
	free(payload);
}
END_TEST

START_TEST(zero_length)
{
	enum sn_framing f = all[_i];
	static const uint32_t lens[] = {60, 60};
	uint8_t *stream, *payload, zero[4] = {0};
	size_t total = make_stream(f, lens, 2, &stream, &payload);
	struct sn_streambuf b;
	struct got g = {0};
	uint32_t len = 99;

	ck_assert_int_eq(sn_framing_next(f, zero, sizeof(zero), &len), -EBADMSG);
	ck_assert_uint_eq(len, 99);
	ck_assert_int_eq(sn_streambuf_init(&b, 0), 0);
	/* good frames, then a zero prefix: those before it are delivered, then the stream is bad */
	feed(&b, stream, total);
	feed(&b, zero, sn_framing_hdr_len(f));
	feed(&b, stream, total);
	ck_assert_int_eq(sn_streambuf_drain(&b, f, collect, &g), -EBADMSG);
	ck_assert_uint_eq(g.n, 2);
	ck_assert_uint_eq(b.len, 0);
	got_reset(&g);
	sn_streambuf_finish(&b);
	free(stream);
	free(payload);
}
END_TEST

START_TEST(oversize_qemu)
{
	uint8_t hdr[4] = {0x00, 0x01, 0x00, 0x00}; /* 65536 */
	uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
	uint8_t max[4] = {0x00, 0x00, 0xff, 0xff};
	struct sn_streambuf b;
	struct got g = {0};
	uint32_t len = 0;

	/* judged from the prefix alone, without waiting for 64 KiB of body */
	ck_assert_int_eq(sn_framing_next(SN_FRAMING_QEMU, hdr, 4, &len), -EBADMSG);
	ck_assert_int_eq(sn_framing_next(SN_FRAMING_QEMU, huge, 4, &len), -EBADMSG);
	ck_assert_int_eq(sn_framing_next(SN_FRAMING_QEMU, max, 4, &len), 0); /* legal, incomplete */
	ck_assert_int_eq(sn_streambuf_init(&b, 0), 0);
	feed(&b, hdr, 4);
	ck_assert_int_eq(sn_streambuf_drain(&b, SN_FRAMING_QEMU, collect, &g), -EBADMSG);
	ck_assert_uint_eq(g.n, 0);
	ck_assert_uint_eq(b.len, 0);
	sn_streambuf_finish(&b);
}
END_TEST

START_TEST(byte_order)
{
	uint8_t h[4];
	uint8_t body[0x0102 + 4] = {0};
	uint32_t len = 0;

	sn_framing_put(SN_FRAMING_HYPERKIT, h, 0x0102);
	ck_assert_uint_eq(h[0], 0x02);
	ck_assert_uint_eq(h[1], 0x01);
	sn_framing_put(SN_FRAMING_VDE, h, 0x0102);
	ck_assert_uint_eq(h[0], 0x01);
	ck_assert_uint_eq(h[1], 0x02);
	sn_framing_put(SN_FRAMING_QEMU, h, 0x0102);
	ck_assert_uint_eq(h[0], 0x00);
	ck_assert_uint_eq(h[1], 0x00);
	ck_assert_uint_eq(h[2], 0x01);
	ck_assert_uint_eq(h[3], 0x02);
	ck_assert_uint_eq(sn_framing_hdr_len(SN_FRAMING_QEMU), 4);
	ck_assert_uint_eq(sn_framing_hdr_len(SN_FRAMING_HYPERKIT), 2);
	ck_assert_uint_eq(sn_framing_hdr_len(SN_FRAMING_VDE), 2);

	/* and the parser reads the same bytes back */
	body[0] = 0x02, body[1] = 0x01;
	ck_assert_int_eq(sn_framing_next(SN_FRAMING_HYPERKIT, body, 2 + 0x0102, &len), 2 + 0x0102);
	ck_assert_uint_eq(len, 0x0102);
	ck_assert_int_eq(sn_framing_next(SN_FRAMING_HYPERKIT, body, 2 + 0x0101, &len), 0);
	body[0] = 0x01, body[1] = 0x02;
	ck_assert_int_eq(sn_framing_next(SN_FRAMING_VDE, body, 2 + 0x0102, &len), 2 + 0x0102);
	body[0] = 0, body[1] = 0, body[2] = 0x01, body[3] = 0x02;
	ck_assert_int_eq(sn_framing_next(SN_FRAMING_QEMU, body, 4 + 0x0102, &len), 4 + 0x0102);
	ck_assert_uint_eq(len, 0x0102);
	ck_assert_int_eq(sn_framing_next(SN_FRAMING_QEMU, body, 3, &len), 0);
}
END_TEST

START_TEST(names)
{
	enum sn_framing f;

	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(sn_framing_from_name(sn_framing_name(all[i]), &f), 0);
		ck_assert_int_eq(f, all[i]);
	}
	ck_assert_str_eq(sn_framing_name(SN_FRAMING_HYPERKIT), "hyperkit");
	ck_assert_int_eq(sn_framing_from_name("QEMU", &f), -EINVAL);
	ck_assert_int_eq(sn_framing_from_name("", &f), -EINVAL);
}
END_TEST

START_TEST(stop_early)
{
	static const uint32_t lens[] = {10, 20, 30};
	enum sn_framing f = all[_i];
	uint8_t *stream, *payload;
	size_t total = make_stream(f, lens, 3, &stream, &payload);
	struct sn_streambuf b;
	struct got g = {.stop_after = 1};

	ck_assert_int_eq(sn_streambuf_init(&b, 0), 0);
	feed(&b, stream, total);
	ck_assert_int_eq(sn_streambuf_drain(&b, f, collect, &g), 1);
	ck_assert_uint_eq(g.n, 1);
	/* the frames not taken stay buffered, at the front */
	ck_assert_uint_eq(b.len, total - sn_framing_hdr_len(f) - 10);
	g.stop_after = 0;
	ck_assert_int_eq(sn_streambuf_drain(&b, f, collect, &g), 2);
	assert_got(&g, lens, 3, payload, 60);
	free(g.data);
	sn_streambuf_finish(&b);
	free(stream);
	free(payload);
}
END_TEST

static Suite *framing_suite(void)
{
	Suite *s = suite_create("framing");
	struct {
		const char *name;
		const TTest *test;
		bool per_framing;
	} cases[] = {
		{"split_everywhere", split_everywhere, true},
		{"max_frame", max_frame, true},
		{"through_socket", through_socket, true},
		{"zero_length", zero_length, true},
		{"oversize_qemu", oversize_qemu, false},
		{"byte_order", byte_order, false},
		{"names", names, false},
		{"stop_early", stop_early, true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		if (cases[i].per_framing)
			tcase_add_loop_test(tc, cases[i].test, 0, 3);
		else
			tcase_add_test(tc, cases[i].test);
		tcase_set_timeout(tc, 60);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	return sn_check_run(framing_suite());
}
