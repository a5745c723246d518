/* spec.h - "KIND,key=value,..." port descriptions, parsed once and checked against the keys
 * each kind accepts. */
#ifndef SN_SPEC_H
#define SN_SPEC_H

#include <stdbool.h>

#include <squibnet/switch.h>

#define SN_SPEC_MAX_KEYS 16
#define SN_SPEC_MAX_LEN 1024

struct sn_spec {
	char buf[SN_SPEC_MAX_LEN];
	const char *kind;
	unsigned n;
	struct {
		const char *key;
		const char *value;
		bool used;
	} kv[SN_SPEC_MAX_KEYS];
};

/* Splits @text into kind and pairs. A value may be quoted with "..." to hold commas.
 * -EINVAL with @err set on an empty kind, a key without '=', a duplicate key or too many keys. */
int sn_spec_parse(struct sn_spec *spec, const char *text, struct sn_error *err);

/* The value of @key, or NULL; marks the key used. */
const char *sn_spec_get(struct sn_spec *spec, const char *key);

/* Parses decimal digits only (no blanks or sign) into [min, max]; -EINVAL otherwise, *ret untouched. */
int sn_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret);

/* Parses @key as an unsigned integer in [min, max]; absent keys leave *ret untouched.
 * -EINVAL with @err naming the key otherwise. */
int sn_spec_get_uint(struct sn_spec *spec, const char *key, unsigned min, unsigned max, unsigned *ret,
		     struct sn_error *err);

/* Parses on|off|yes|no|true|false|1|0. */
int sn_spec_get_bool(struct sn_spec *spec, const char *key, bool *ret, struct sn_error *err);

/* -EINVAL naming the first key no getter asked for: call after reading every key. */
int sn_spec_check_unused(struct sn_spec *spec, struct sn_error *err);

/* "52:54:00:12:34:56" (or with '-' between), two hex digits each, into @mac; -EINVAL. */
int sn_mac_parse(const char *text, uint8_t mac[6]);

/* The value of one hex digit, either case, or -1. */
int sn_hex_digit(char c);

/* Formats @err; returns @code so callers can "return sn_error_set(err, -EINVAL, ...)". */
int sn_error_set(struct sn_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
