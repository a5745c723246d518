/* fuzz-gvproxy.c - what gvproxy's HTTP API may answer: the reply parser and the JSON reader of
 * backends/gvproxy_api.c (sn_gvproxy_reply_parse, sn_gvproxy_read_forwards).
 *
 * Input: byte 0, then the bytes gvproxy sends. Bit 0 of byte 0 set: the bytes are a JSON body
 * for the list reader alone. Clear: they are an HTTP reply, fed to the parser as call_read()
 * feeds it, in reads whose sizes come from a generator seeded with the other bits of byte 0
 * (0: one read), then the end of the stream; a body it accepts goes to the JSON reader.
 *
 * Oracles: the parser gives the same status and body for the reply in pieces as for the
 * whole reply at once; the status is the three digits the
 * reply has (100 to 999); a body lies inside the buffer and is NUL-terminated; the JSON reader
 * returns the number of objects it reported, or -EPROTO, and each string it hands out is
 * NUL-terminated within its field. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backends/gvproxy_child.h"
#include "json.h"
#include "util.h"

#include "fuzz.h"

#define REPLY_MAX (1024 * 1024) /* what call_read() takes before it gives up */

static int on_row(const char *local, const char *remote, const char *proto, void *ctx)
{
	if (strlen(local) >= 256 || strlen(remote) >= 256 || strlen(proto) >= 16)
		fuzz_fail("a forward's field is longer than its buffer");
	(*(int *)ctx)++;
	return 0;
}

static void read_json(const char *text)
{
	int rows = 0, r = sn_gvproxy_read_forwards(text, on_row, &rows);

	if (r != -EPROTO && r != rows)
		fuzz_fail("sn_gvproxy_read_forwards: %d, but %d rows", r, rows);
}

struct result {
	int status;
	char *body;
	size_t len;
};

static void check_body(const struct sn_buf *b, const char *body, size_t len)
{
	if (body < b->data || body + len > b->data + b->len || body[len] != '\0')
		fuzz_fail("reply body of %zu bytes outside the buffer or not terminated", len);
}

/* Adds @n bytes with the byte of room sn_gvproxy_reply_parse() writes its NUL into. */
static void add(struct sn_buf *b, const uint8_t *p, size_t n)
{
	sn_buf_add(b, p, n);
	sn_buf_add(b, "", 1);
	b->len--;
}

/* As call_read(): in pieces, then the end of the stream. */
static struct result parse_pieces(const uint8_t *p, size_t n, uint32_t seed)
{
	struct sn_buf b;
	struct result res = {0};
	size_t off = 0;
	const char *body = NULL;
	size_t len = 0;
	int r = 0;

	sn_buf_init(&b);
	while (off < n) {
		size_t chunk = n - off;

		if (seed) {
			seed = seed * 1103515245u + 12345u;
			chunk = SN_MIN(chunk, 1 + (seed >> 16) % 512);
		}
		add(&b, p + off, chunk);
		off += chunk;
		if (b.failed || b.len > REPLY_MAX)
			break;
		r = sn_gvproxy_reply_parse(&b, false, &body, &len);
		if (r != 0)
			break;
	}
	if (r == 0 && !b.failed && b.len > 0)
		r = sn_gvproxy_reply_parse(&b, true, &body, &len);
	res.status = r;
	if (r > 0) {
		check_body(&b, body, len);
		res.body = malloc(len + 1);
		if (!res.body)
			abort();
		memcpy(res.body, body, len + 1);
		res.len = len;
	}
	sn_buf_finish(&b);
	return res;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size, false};
	uint8_t mode = fuzz_u8(&in);
	struct result pieces, whole;

	if (in.n > REPLY_MAX)
		return 0;
	if (mode & 1) {
		char *text = malloc(in.n + 1);

		if (!text)
			abort();
		memcpy(text, in.p, in.n);
		text[in.n] = '\0';
		read_json(text);
		free(text);
		return 0;
	}
	pieces = parse_pieces(in.p, in.n, mode >> 1);
	whole = parse_pieces(in.p, in.n, 0);
	if (pieces.status != whole.status)
		fuzz_fail("status %d read in pieces, %d at once", pieces.status, whole.status);
	if (pieces.status > 0) {
		const uint8_t *code = in.p + 9; /* after "HTTP/1.x " */

		if (in.n < 13)
			fuzz_fail("HTTP status %d from a reply of %zu bytes", pieces.status, in.n);
		if (pieces.status < 100 || pieces.status > 999 || (code[3] >= '0' && code[3] <= '9') ||
		    (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0') != pieces.status)
			fuzz_fail("HTTP status %d from '%.4s': a status code is the three digits written", pieces.status,
				  (const char *)code);
		if (pieces.len != whole.len || memcmp(pieces.body, whole.body, whole.len))
			fuzz_fail("the body read in pieces (%zu bytes) differs from the one read at once (%zu)",
				  pieces.len, whole.len);
		read_json(whole.body);
	} else if (pieces.status != 0 && pieces.status != -EPROTO) {
		fuzz_fail("sn_gvproxy_reply_parse: %d", pieces.status);
	}
	free(pieces.body);
	free(whole.body);
	return 0;
}
