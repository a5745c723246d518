/* json.h - a growable byte buffer and a small JSON writer on top of it, for the control server's
 * replies (tables and JSON documents alike are built in a struct sn_buf). */
#ifndef SN_JSON_H
#define SN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes appended at the end, consumed from the front. An allocation failure sets @failed and
 * makes further appends no-ops, so builders check once at the end instead of after each call. */
struct sn_buf {
	char *data;
	size_t len, cap;
	bool failed;
};

/** An empty buffer; allocates nothing yet. */
void sn_buf_init(struct sn_buf *b);
/** Frees the memory; the buffer may be initialised again. */
void sn_buf_finish(struct sn_buf *b);
/** Appends @len bytes of @data. */
void sn_buf_add(struct sn_buf *b, const void *data, size_t len);
/** Appends a NUL-terminated string. */
void sn_buf_puts(struct sn_buf *b, const char *s);
/** Appends printf-formatted text. */
void sn_buf_printf(struct sn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends @v with @places (at most 6) decimals, always with '.', whatever the locale says. */
void sn_buf_decimal(struct sn_buf *b, double v, unsigned places);
/** Drops the first @n bytes (all of them when @n >= len). */
void sn_buf_consume(struct sn_buf *b, size_t n);

#define SN_JSON_DEPTH 16

/* Writes one JSON document into a buffer, compactly. Every value call takes the member @key
 * inside an object and NULL inside an array or at the top; nesting deeper than SN_JSON_DEPTH
 * marks the buffer failed. */
struct sn_json {
	struct sn_buf *b;
	unsigned depth;
	bool comma[SN_JSON_DEPTH]; /* a value was written at this depth: the next needs a ',' */
};

/** Starts a document in @b. */
void sn_json_init(struct sn_json *j, struct sn_buf *b);
void sn_json_begin_object(struct sn_json *j, const char *key);
void sn_json_end_object(struct sn_json *j);
void sn_json_begin_array(struct sn_json *j, const char *key);
void sn_json_end_array(struct sn_json *j);
/** A string value; @value NULL writes null. Bytes that are not valid UTF-8 become U+FFFD. */
void sn_json_string(struct sn_json *j, const char *key, const char *value);
void sn_json_uint(struct sn_json *j, const char *key, uint64_t v);
void sn_json_bool(struct sn_json *j, const char *key, bool v);
/** A number with @places decimals (see sn_buf_decimal()). */
void sn_json_decimal(struct sn_json *j, const char *key, double v, unsigned places);

/** Appends @s as a quoted, escaped JSON string. */
void sn_json_quote(struct sn_buf *b, const char *s);

#endif
