/* spec.c - parsing of port SPECs ("stream,listen=unix:/run/s.sock,name=vm1"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "util.h"

int sn_error_set(struct sn_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

int sn_spec_parse(struct sn_spec *spec, const char *text, struct sn_error *err)
{
	char *p, *out;

	memset(spec, 0, sizeof(*spec));
	if (!text || !*text)
		return sn_error_set(err, -EINVAL, "empty port SPEC");
	if (strlen(text) >= sizeof(spec->buf))
		return sn_error_set(err, -EINVAL, "port SPEC longer than %zu bytes", sizeof(spec->buf) - 1);
	/* Copy while splitting: ',' ends a field outside quotes, '=' ends a key. */
	p = (char *)text;
	out = spec->buf;
	spec->kind = out;
	while (*p && *p != ',')
		*out++ = *p++;
	*out++ = '\0';
	if (!*spec->kind)
		return sn_error_set(err, -EINVAL, "port SPEC '%s' has no kind", text);
	while (*p == ',') {
		char *key, *value = NULL;

		p++;
		key = out;
		while (*p && *p != ',' && *p != '=')
			*out++ = *p++;
		*out++ = '\0';
		if (*p != '=' || !*key)
			return sn_error_set(err, -EINVAL, "'%s' in port SPEC is not key=value", *key ? key : "(empty)");
		p++;
		value = out;
		if (*p == '"') {
			p++;
			while (*p && *p != '"')
				*out++ = *p++;
			if (*p != '"')
				return sn_error_set(err, -EINVAL, "unterminated quote in value of '%s'", key);
			p++;
			if (*p && *p != ',')
				return sn_error_set(err, -EINVAL, "text after closing quote in value of '%s'", key);
		} else {
			while (*p && *p != ',')
				*out++ = *p++;
		}
		*out++ = '\0';
		for (unsigned i = 0; i < spec->n; i++)
			if (!strcmp(spec->kv[i].key, key))
				return sn_error_set(err, -EINVAL, "key '%s' given twice", key);
		if (spec->n == SN_SPEC_MAX_KEYS)
			return sn_error_set(err, -EINVAL, "too many keys in port SPEC (at most %d)", SN_SPEC_MAX_KEYS);
		spec->kv[spec->n].key = key;
		spec->kv[spec->n].value = value;
		spec->n++;
	}
	return 0;
}

const char *sn_spec_get(struct sn_spec *spec, const char *key)
{
	for (unsigned i = 0; i < spec->n; i++) {
		if (!strcmp(spec->kv[i].key, key)) {
			spec->kv[i].used = true;
			return spec->kv[i].value;
		}
	}
	return NULL;
}

int sn_parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long n;

	if (*s < '0' || *s > '9') /* strtoul would take blanks, '+' and '-' */
		return -EINVAL;
	errno = 0;
	n = strtoul(s, &end, 10);
	if (*end || errno || n < min || n > max)
		return -EINVAL;
	*ret = (unsigned)n;
	return 0;
}

int sn_spec_get_uint(struct sn_spec *spec, const char *key, unsigned min, unsigned max, unsigned *ret,
		     struct sn_error *err)
{
	const char *v = sn_spec_get(spec, key);

	if (v && sn_parse_uint(v, min, max, ret) < 0)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want a number from %u to %u", v,
				    key, min, max);
	return 0;
}

int sn_spec_get_bool(struct sn_spec *spec, const char *key, bool *ret, struct sn_error *err)
{
	static const char *const yes[] = {"on", "yes", "true", "1"};
	static const char *const no[] = {"off", "no", "false", "0"};
	const char *v = sn_spec_get(spec, key);

	if (!v)
		return 0;
	for (size_t i = 0; i < SN_ARRAY_SIZE(yes); i++) {
		if (!strcmp(v, yes[i])) {
			*ret = true;
			return 0;
		}
		if (!strcmp(v, no[i])) {
			*ret = false;
			return 0;
		}
	}
	return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want on or off", v, key);
}

int sn_spec_check_unused(struct sn_spec *spec, struct sn_error *err)
{
	for (unsigned i = 0; i < spec->n; i++)
		if (!spec->kv[i].used)
			return sn_error_set(err, -EINVAL, "unknown key '%s' for port kind '%s'", spec->kv[i].key,
					    spec->kind);
	return 0;
}

int sn_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sn_mac_parse(const char *text, uint8_t mac[6])
{
	const char *s = text;

	for (int i = 0; i < 6; i++, s += 3) {
		int hi = sn_hex_digit(s[0]), lo = hi < 0 ? -1 : sn_hex_digit(s[1]);

		if (lo < 0 || (i < 5 ? s[2] != ':' && s[2] != '-' : s[2] != '\0'))
			return -EINVAL;
		if (i > 0 && s[-1] != text[2])
			return -EINVAL; /* one separator throughout */
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
