/* json.c - the control server's output buffer and JSON writer.
 *
 * Replies are built whole in memory before they are sent, so the writer only ever appends.
 * Port names and peers come from user SPECs and may hold any byte: strings are escaped and
 * invalid UTF-8 is replaced, so a reply is always a document a strict parser accepts. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void sn_buf_init(struct sn_buf *b)
{
	*b = (struct sn_buf){0};
}

void sn_buf_finish(struct sn_buf *b)
{
	free(b->data);
	sn_buf_init(b);
}

/* Makes room for @more bytes plus a NUL; false (and the buffer failed) when it cannot. */
static bool reserve(struct sn_buf *b, size_t more)
{
	size_t cap;
	char *n;

	if (b->failed)
		return false;
	if (b->len + more < b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap <= b->len + more) {
		if (cap > SIZE_MAX / 2)
			goto fail;
		cap *= 2;
	}
	n = realloc(b->data, cap);
	if (!n)
		goto fail;
	b->data = n;
	b->cap = cap;
	return true;
fail:
	b->failed = true;
	return false;
}

void sn_buf_add(struct sn_buf *b, const void *data, size_t len)
{
	if (!len || !reserve(b, len))
		return;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void sn_buf_puts(struct sn_buf *b, const char *s)
{
	sn_buf_add(b, s, strlen(s));
}

void sn_buf_printf(struct sn_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if (!reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void sn_buf_decimal(struct sn_buf *b, double v, unsigned places)
{
	uint64_t scale = 1, units;
	const char *sign = "";

	/* printf("%f") would follow LC_NUMERIC, and an embedder may have set a decimal comma */
	if (places > 6)
		places = 6;
	for (unsigned i = 0; i < places; i++)
		scale *= 10;
	if (v != v)
		v = 0; /* NaN has no JSON spelling */
	if (v < 0) {
		sign = "-";
		v = -v;
	}
	if (v > 1e15)
		v = 1e15;
	units = (uint64_t)(v * (double)scale + 0.5);
	if (places)
		sn_buf_printf(b, "%s%llu.%0*llu", sign, (unsigned long long)(units / scale), (int)places,
			      (unsigned long long)(units % scale));
	else
		sn_buf_printf(b, "%s%llu", sign, (unsigned long long)units);
}

void sn_buf_consume(struct sn_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

/* ---- JSON ---- */

/* Length of the valid UTF-8 sequence at @s (1 to 4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* the second byte's range rules out overlong forms, surrogates and code points past U+10FFFF */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

void sn_json_quote(struct sn_buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	sn_buf_add(b, "\"", 1);
	while (*s) {
		size_t run = 0, n;

		/* copy plain stretches in one go */
		while (s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
			run++;
		sn_buf_add(b, s, run);
		s += run;
		if (!*s)
			break;
		switch (*s) {
		case '"':
			sn_buf_add(b, "\\\"", 2);
			break;
		case '\\':
			sn_buf_add(b, "\\\\", 2);
			break;
		case '\n':
			sn_buf_add(b, "\\n", 2);
			break;
		case '\t':
			sn_buf_add(b, "\\t", 2);
			break;
		case '\r':
			sn_buf_add(b, "\\r", 2);
			break;
		default:
			if (*s < 0x20) {
				sn_buf_printf(b, "\\u%04x", *s);
				break;
			}
			n = utf8_seq(s);
			if (n == 0) {
				sn_buf_add(b, "\\ufffd", 6);
				break;
			}
			sn_buf_add(b, s, n);
			s += n;
			continue;
		}
		s++;
	}
	sn_buf_add(b, "\"", 1);
}

void sn_json_init(struct sn_json *j, struct sn_buf *b)
{
	memset(j, 0, sizeof(*j));
	j->b = b;
}

/* Writes the separator and the member name that go before a value. */
static void member(struct sn_json *j, const char *key)
{
	if (j->comma[j->depth])
		sn_buf_add(j->b, ",", 1);
	j->comma[j->depth] = true;
	if (key) {
		sn_json_quote(j->b, key);
		sn_buf_add(j->b, ":", 1);
	}
}

static void json_open(struct sn_json *j, const char *key, const char *bracket)
{
	member(j, key);
	sn_buf_add(j->b, bracket, 1);
	if (j->depth + 1 >= SN_JSON_DEPTH) {
		j->b->failed = true;
		return;
	}
	j->comma[++j->depth] = false;
}

static void json_close(struct sn_json *j, const char *bracket)
{
	sn_buf_add(j->b, bracket, 1);
	if (j->depth > 0)
		j->depth--;
}

void sn_json_begin_object(struct sn_json *j, const char *key)
{
	json_open(j, key, "{");
}

void sn_json_end_object(struct sn_json *j)
{
	json_close(j, "}");
}

void sn_json_begin_array(struct sn_json *j, const char *key)
{
	json_open(j, key, "[");
}

void sn_json_end_array(struct sn_json *j)
{
	json_close(j, "]");
}

void sn_json_string(struct sn_json *j, const char *key, const char *value)
{
	member(j, key);
	if (value)
		sn_json_quote(j->b, value);
	else
		sn_buf_add(j->b, "null", 4);
}

void sn_json_uint(struct sn_json *j, const char *key, uint64_t v)
{
	member(j, key);
	sn_buf_printf(j->b, "%llu", (unsigned long long)v);
}

void sn_json_bool(struct sn_json *j, const char *key, bool v)
{
	member(j, key);
	sn_buf_puts(j->b, v ? "true" : "false");
}

void sn_json_decimal(struct sn_json *j, const char *key, double v, unsigned places)
{
	member(j, key);
	sn_buf_decimal(j->b, v, places);
}
