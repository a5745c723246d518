/* fuzz-spec.c - port SPECs (spec.c), socket addresses (sock.c's sn_sockaddr_parse) and adding
 * a port or a capture from a SPEC on a real switch.
 *
 * Input: a SPEC as text (cut at the first NUL byte). Oracles:
 * - sn_spec_parse() gives a non-empty kind and at most SN_SPEC_MAX_KEYS distinct, non-empty
 *   keys, and writing the result out again parses to the same kind, keys and values;
 * - sn_parse_uint() and sn_spec_get_bool() accept exactly what a plain reference accepts;
 * - an address sn_sockaddr_parse() accepts formats (sn_sockaddr_format) into text that parses
 *   back to the same address, and a tcp: port is the number written in the text (defect 11 of
 *   issue 9: no wrap-around, no port 0);
 * - sn_switch_add_port() and sn_capture_start() of the SPEC succeed or fail with a message, and
 *   whatever they created goes away with the switch (LeakSanitizer checks the memory).
 * Ports and captures are only created from SPECs that stay in the private directory
 * (fuzz_spec_safe()). */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squibnet/capture.h>
#include <squibnet/switch.h>

#include "sock.h"
#include "spec.h"

#include "fuzz.h"

static struct ev_loop *loop;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	fuzz_sandbox(argc, argv);
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		abort();
	return 0;
}

static bool all_digits(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

/* The number @s spells, saturated at ULLONG_MAX. */
static unsigned long long digits_value(const char *s)
{
	unsigned long long v = 0;

	for (; *s; s++) {
		if (v > (ULLONG_MAX - 9) / 10)
			return ULLONG_MAX;
		v = v * 10 + (unsigned)(*s - '0');
	}
	return v;
}

static void check_uint(const char *v, unsigned min, unsigned max)
{
	unsigned got = 12345;
	int r = sn_parse_uint(v, min, max, &got);
	bool want = all_digits(v) && digits_value(v) >= min && digits_value(v) <= max;

	if ((r == 0) != want)
		fuzz_fail("sn_parse_uint('%s', %u, %u) = %d", v, min, max, r);
	if (r == 0 && got != digits_value(v))
		fuzz_fail("sn_parse_uint('%s') gave %u", v, got);
	if (r < 0 && got != 12345)
		fuzz_fail("sn_parse_uint('%s') failed but changed its result", v);
}

static void check_bool(const char *v)
{
	static const char *const words[] = {"on", "yes", "true", "1", "off", "no", "false", "0"};
	struct sn_spec spec;
	struct sn_error err;
	char text[SN_SPEC_MAX_LEN];
	bool b = false, known = false;
	int r;

	for (size_t i = 0; i < 8; i++)
		known |= !strcmp(v, words[i]);
	if (strchr(v, ',') || strchr(v, '"'))
		return;
	snprintf(text, sizeof(text), "k,b=%s", v);
	if (sn_spec_parse(&spec, text, &err) < 0)
		return;
	r = sn_spec_get_bool(&spec, "b", &b, &err);
	if ((r == 0) != known)
		fuzz_fail("sn_spec_get_bool('%s') = %d", v, r);
}

/* The port written at the end of a "tcp:HOST:PORT" text, or NULL. */
static const char *tcp_port_text(const char *text)
{
	const char *colon;

	if (strncmp(text, "tcp:", 4))
		return NULL;
	colon = strrchr(text + 4, ':');
	return colon ? colon + 1 : NULL;
}

static bool same_addr(const struct sn_sockaddr *a, const struct sn_sockaddr *b)
{
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return false;
	switch (a->u.sa.sa_family) {
	case AF_UNIX:
		return !strcmp(a->u.un.sun_path, b->u.un.sun_path) && a->len == b->len;
	case AF_INET: {
		const struct sockaddr_in *x = (const void *)&a->u.ss, *y = (const void *)&b->u.ss;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *x = (const void *)&a->u.ss, *y = (const void *)&b->u.ss;

		return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	}
	return false;
}

static void check_addr(const char *text, bool bare)
{
	struct sn_sockaddr a, back;
	struct sn_error err = {{0}};
	char buf[256];
	const char *port;

	if (sn_sockaddr_parse(text, "listen", bare, &a, &err) < 0) {
		/* a long value cuts the message before the key's name: only short ones must show it */
		if (!memchr(err.msg, '\0', sizeof(err.msg)) || (strlen(text) < 100 && !strstr(err.msg, "'listen'")))
			fuzz_fail("sn_sockaddr_parse('%s') failed without naming the key: '%s'", text, err.msg);
		return;
	}
	sn_sockaddr_format(&a, buf, sizeof(buf));
	if (strlen(buf) + 1 >= sizeof(buf))
		return; /* cut: a long unix path */
	if (sn_sockaddr_parse(buf, "listen", false, &back, &err) < 0)
		fuzz_fail("'%s' parsed, formatted as '%s', which does not parse: %s", text, buf, err.msg);
	if (!same_addr(&a, &back))
		fuzz_fail("'%s' parsed, formatted as '%s', which parses to another address", text, buf);
	port = tcp_port_text(text);
	if (port) {
		unsigned got = a.u.sa.sa_family == AF_INET ? ntohs(((struct sockaddr_in *)&a.u.ss)->sin_port)
							   : ntohs(((struct sockaddr_in6 *)&a.u.ss)->sin6_port);

		if (digits_value(port) != got)
			fuzz_fail("'%s' accepted as port %u", text, got);
		if (got == 0)
			fuzz_fail("'%s' accepted: port 0", text);
	}
}

/* Writes @spec out as text again; false when a value cannot be written (',' and '"' in one). */
static bool spec_write(const struct sn_spec *spec, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "%s", spec->kind);

	for (unsigned i = 0; i < spec->n && n < len; i++) {
		const char *v = spec->kv[i].value;
		bool quote = strchr(v, ',') != NULL;

		if (quote && strchr(v, '"'))
			return false;
		n += (size_t)snprintf(out + n, len - n, quote ? ",%s=\"%s\"" : ",%s=%s", spec->kv[i].key, v);
	}
	return n < len;
}

static void check_spec(const char *text)
{
	struct sn_spec spec, again;
	struct sn_error err = {{0}};
	char out[2 * SN_SPEC_MAX_LEN];

	if (sn_spec_parse(&spec, text, &err) < 0) {
		if (!err.msg[0])
			fuzz_fail("sn_spec_parse('%s') failed without a message", text);
		return;
	}
	if (!spec.kind || !*spec.kind || strchr(spec.kind, ','))
		fuzz_fail("sn_spec_parse('%s'): kind '%s'", text, spec.kind ? spec.kind : "(null)");
	if (spec.n > SN_SPEC_MAX_KEYS)
		fuzz_fail("sn_spec_parse('%s'): %u keys", text, spec.n);
	for (unsigned i = 0; i < spec.n; i++) {
		const char *k = spec.kv[i].key, *v = spec.kv[i].value;

		if (!*k || strpbrk(k, ",="))
			fuzz_fail("sn_spec_parse('%s'): key '%s'", text, k);
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(k, spec.kv[j].key))
				fuzz_fail("sn_spec_parse('%s'): key '%s' twice", text, k);
		if (sn_spec_get(&spec, k) != v)
			fuzz_fail("sn_spec_get('%s') is not the parsed value", k);
		check_uint(v, 0, UINT_MAX);
		check_uint(v, 1, 65535);
		check_bool(v);
		check_addr(v, false);
		check_addr(v, true);
	}
	if (sn_spec_check_unused(&spec, &err) < 0)
		fuzz_fail("sn_spec_check_unused: every key was read, yet: %s", err.msg);
	if (!spec_write(&spec, out, sizeof(out)))
		return;
	if (sn_spec_parse(&again, out, &err) < 0)
		fuzz_fail("'%s' parsed, written as '%s', which does not parse: %s", text, out, err.msg);
	if (strcmp(again.kind, spec.kind) || again.n != spec.n)
		fuzz_fail("'%s' parsed, written as '%s', which parses to another kind or key count", text, out);
	for (unsigned i = 0; i < spec.n; i++)
		if (strcmp(again.kv[i].key, spec.kv[i].key) || strcmp(again.kv[i].value, spec.kv[i].value))
			fuzz_fail("'%s' parsed, written as '%s': key %u differs", text, out, i);
}

static int count_port(const struct sn_port_info *p, void *ctx)
{
	(*(unsigned *)ctx)++;
	return 0;
}

static void add_to_switch(const char *text)
{
	struct sn_switch_config cfg;
	struct sn_switch *sw;
	struct sn_error err = {{0}};
	char name[SN_PORT_NAME_MAX];
	unsigned id = 0, n = 0;
	int r;

	fuzz_enter();
	sn_switch_config_init(&cfg);
	cfg.pool_frames = 64;
	cfg.jumbo_frames = 2;
	cfg.txq_len = 16;
	if (sn_switch_create(loop, &cfg, &sw) < 0)
		abort();
	r = sn_switch_add_port(sw, text, name, sizeof(name), &err);
	if (r < 0 && !err.msg[0])
		fuzz_fail("sn_switch_add_port('%s') = %d without a message", text, r);
	if (r == 0) {
		if (!memchr(name, '\0', sizeof(name)) || !*name)
			fuzz_fail("sn_switch_add_port('%s'): no name", text);
		sn_switch_foreach_port(sw, count_port, &n);
		if (n == 0)
			fuzz_fail("sn_switch_add_port('%s') succeeded, but the switch has no port", text);
		ev_run(loop, EVRUN_NOWAIT);
		if (sn_switch_del_port(sw, name) < 0)
			fuzz_fail("sn_switch_del_port('%s') of a port just added failed", name);
	}
	err.msg[0] = '\0';
	r = sn_capture_start(sw, text, &id, &err);
	if (r < 0 && !err.msg[0])
		fuzz_fail("sn_capture_start('%s') = %d without a message", text, r);
	if (r == 0 && sn_capture_stop(sw, id) < 0)
		fuzz_fail("sn_capture_stop(%u) of a capture just started failed", id);
	ev_run(loop, EVRUN_NOWAIT);
	sn_switch_destroy(sw);
	fuzz_leave();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[SN_SPEC_MAX_LEN + 64];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;

	memcpy(text, data, n);
	text[n] = '\0';
	check_spec(text);
	check_addr(text, false);
	check_addr(text, true);
	if (fuzz_spec_safe(text))
		add_to_switch(text);
	return 0;
}
