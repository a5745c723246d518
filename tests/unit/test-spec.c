/* test-spec.c - unit tests of the port SPEC parser ("KIND,key=value,...") and its getters.
 *
 * Users type SPECs on command lines, so every refusal must say which key is wrong; the tests
 * check the message names it, not just the error code. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

#include "sn-check.h"

static struct sn_spec spec;
static struct sn_error err;

#define ck_assert_msg_has(needle) \
	ck_assert_msg(strstr(err.msg, (needle)) != NULL, "message '%s' lacks '%s'", err.msg, (needle))

START_TEST(kind_and_keys)
{
	ck_assert_int_eq(sn_spec_parse(&spec, "stream,listen=unix:/tmp/a.sock,name=vm1,mtu=9000", &err), 0);
	ck_assert_str_eq(spec.kind, "stream");
	ck_assert_uint_eq(spec.n, 3);
	ck_assert_str_eq(sn_spec_get(&spec, "listen"), "unix:/tmp/a.sock");
	ck_assert_str_eq(sn_spec_get(&spec, "name"), "vm1");
	ck_assert_str_eq(sn_spec_get(&spec, "mtu"), "9000");
	ck_assert_ptr_null(sn_spec_get(&spec, "connect"));
	ck_assert_ptr_null(sn_spec_get(&spec, "Name")); /* keys are case-sensitive */

	ck_assert_int_eq(sn_spec_parse(&spec, "dgram", &err), 0);
	ck_assert_str_eq(spec.kind, "dgram");
	ck_assert_uint_eq(spec.n, 0);

	/* an empty value is a value; '=' inside a value is kept */
	ck_assert_int_eq(sn_spec_parse(&spec, "x,a=,b=c=d", &err), 0);
	ck_assert_str_eq(sn_spec_get(&spec, "a"), "");
	ck_assert_str_eq(sn_spec_get(&spec, "b"), "c=d");
}
END_TEST

START_TEST(quoted)
{
	ck_assert_int_eq(sn_spec_parse(&spec, "pcap,filter=\"tcp,udp\",name=p", &err), 0);
	ck_assert_uint_eq(spec.n, 2);
	ck_assert_str_eq(sn_spec_get(&spec, "filter"), "tcp,udp");
	ck_assert_str_eq(sn_spec_get(&spec, "name"), "p");
	ck_assert_int_eq(sn_spec_parse(&spec, "k,v=\"a,b,=c\"", &err), 0);
	ck_assert_str_eq(sn_spec_get(&spec, "v"), "a,b,=c");
	ck_assert_int_eq(sn_spec_parse(&spec, "k,v=\"\"", &err), 0);
	ck_assert_str_eq(sn_spec_get(&spec, "v"), "");

	err.msg[0] = '\0';
	ck_assert_int_eq(sn_spec_parse(&spec, "k,v=\"a,b", &err), -EINVAL);
	ck_assert_msg_has("'v'");
	err.msg[0] = '\0';
	ck_assert_int_eq(sn_spec_parse(&spec, "k,v=\"a\"b,c=1", &err), -EINVAL);
	ck_assert_msg_has("'v'");
}
END_TEST

START_TEST(duplicate_key)
{
	ck_assert_int_eq(sn_spec_parse(&spec, "stream,name=a,listen=unix:/x,name=b", &err), -EINVAL);
	ck_assert_msg_has("'name'");
}
END_TEST

START_TEST(missing_equals)
{
	ck_assert_int_eq(sn_spec_parse(&spec, "stream,listen", &err), -EINVAL);
	ck_assert_msg_has("listen");
	ck_assert_int_eq(sn_spec_parse(&spec, "stream,name=a,verbose,mtu=1", &err), -EINVAL);
	ck_assert_msg_has("verbose");
	/* an empty field is not key=value either */
	ck_assert_int_eq(sn_spec_parse(&spec, "stream,,name=a", &err), -EINVAL);
	ck_assert_int_eq(sn_spec_parse(&spec, "stream,name=a,", &err), -EINVAL);
	ck_assert_int_eq(sn_spec_parse(&spec, "stream,=a", &err), -EINVAL);
}
END_TEST

START_TEST(empty_kind)
{
	ck_assert_int_eq(sn_spec_parse(&spec, ",listen=x", &err), -EINVAL);
	ck_assert_msg_has("kind");
	ck_assert_int_eq(sn_spec_parse(&spec, "", &err), -EINVAL);
	ck_assert_int_eq(sn_spec_parse(&spec, NULL, &err), -EINVAL);
	/* no error struct: still refused, nothing written */
	ck_assert_int_eq(sn_spec_parse(&spec, "", NULL), -EINVAL);
}
END_TEST

START_TEST(too_many_keys)
{
	char text[SN_SPEC_MAX_LEN];
	int off = snprintf(text, sizeof(text), "k");

	for (int i = 0; i < SN_SPEC_MAX_KEYS; i++)
		off += snprintf(text + off, sizeof(text) - (size_t)off, ",key%d=%d", i, i);
	ck_assert_int_eq(sn_spec_parse(&spec, text, &err), 0);
	ck_assert_uint_eq(spec.n, SN_SPEC_MAX_KEYS);
	ck_assert_str_eq(sn_spec_get(&spec, "key15"), "15");
	snprintf(text + off, sizeof(text) - (size_t)off, ",extra=1");
	ck_assert_int_eq(sn_spec_parse(&spec, text, &err), -EINVAL);
	ck_assert_msg_has("too many");
}
END_TEST

START_TEST(too_long)
{
	char text[SN_SPEC_MAX_LEN + 8];

	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	memcpy(text, "k,v=", 4);
	ck_assert_int_eq(sn_spec_parse(&spec, text, &err), -EINVAL);
	/* the longest that fits */
	text[SN_SPEC_MAX_LEN - 1] = '\0';
	ck_assert_int_eq(sn_spec_parse(&spec, text, &err), 0);
	ck_assert_uint_eq(strlen(sn_spec_get(&spec, "v")), SN_SPEC_MAX_LEN - 5);
}
END_TEST

START_TEST(get_uint)
{
	unsigned v = 12345;

	ck_assert_int_eq(sn_spec_parse(&spec, "k,mtu=9000,lo=67,hi=65518,neg=-1,junk=12x,empty=,"
					 "big=99999999999999999999", &err), 0);
	ck_assert_int_eq(sn_spec_get_uint(&spec, "absent", 1, 10, &v, &err), 0);
	ck_assert_uint_eq(v, 12345); /* untouched */
	ck_assert_int_eq(sn_spec_get_uint(&spec, "mtu", 68, 65517, &v, &err), 0);
	ck_assert_uint_eq(v, 9000);
	ck_assert_int_eq(sn_spec_get_uint(&spec, "mtu", 68, 9000, &v, &err), 0); /* bounds inclusive */
	ck_assert_int_eq(sn_spec_get_uint(&spec, "mtu", 9000, 9000, &v, &err), 0);

	v = 7;
	ck_assert_int_eq(sn_spec_get_uint(&spec, "lo", 68, 65517, &v, &err), -EINVAL);
	ck_assert_msg_has("'lo'");
	ck_assert_uint_eq(v, 7);
	ck_assert_int_eq(sn_spec_get_uint(&spec, "hi", 68, 65517, &v, &err), -EINVAL);
	ck_assert_msg_has("'hi'");
	ck_assert_int_eq(sn_spec_get_uint(&spec, "neg", 0, 100, &v, &err), -EINVAL);
	ck_assert_msg_has("'neg'");
	ck_assert_int_eq(sn_spec_get_uint(&spec, "junk", 0, 100, &v, &err), -EINVAL);
	ck_assert_msg_has("'junk'");
	ck_assert_int_eq(sn_spec_get_uint(&spec, "empty", 0, 100, &v, &err), -EINVAL);
	ck_assert_msg_has("'empty'");
	ck_assert_int_eq(sn_spec_get_uint(&spec, "big", 0, 4000000000u, &v, &err), -EINVAL);
	ck_assert_msg_has("'big'");
	ck_assert_uint_eq(v, 7);

	/* the parser the tools share: digits only */
	ck_assert_int_eq(sn_parse_uint("42", 0, 100, &v), 0);
	ck_assert_uint_eq(v, 42);
	ck_assert_int_eq(sn_parse_uint(" 5", 0, 100, &v), -EINVAL);
	ck_assert_int_eq(sn_parse_uint("+5", 0, 100, &v), -EINVAL);
	ck_assert_int_eq(sn_parse_uint("-1", 0, 100, &v), -EINVAL);
	ck_assert_int_eq(sn_parse_uint("", 0, 100, &v), -EINVAL);
	ck_assert_int_eq(sn_parse_uint("101", 0, 100, &v), -EINVAL);
	ck_assert_uint_eq(v, 42);
}
END_TEST

START_TEST(get_bool)
{
	bool b = false;

	ck_assert_int_eq(sn_spec_parse(&spec, "k,a=on,b=no,c=maybe", &err), 0);
	ck_assert_int_eq(sn_spec_get_bool(&spec, "a", &b, &err), 0);
	ck_assert(b);
	ck_assert_int_eq(sn_spec_get_bool(&spec, "b", &b, &err), 0);
	ck_assert(!b);
	ck_assert_int_eq(sn_spec_get_bool(&spec, "c", &b, &err), -EINVAL);
	ck_assert_msg_has("'c'");
}
END_TEST

START_TEST(check_unused)
{
	ck_assert_int_eq(sn_spec_parse(&spec, "stream,listen=unix:/x,bogus=1,name=n", &err), 0);
	sn_spec_get(&spec, "listen");
	sn_spec_get(&spec, "name");
	sn_spec_get(&spec, "framing"); /* asking for an absent key marks nothing */
	ck_assert_int_eq(sn_spec_check_unused(&spec, &err), -EINVAL);
	ck_assert_msg_has("'bogus'");
	ck_assert_msg_has("stream");
	sn_spec_get(&spec, "bogus");
	ck_assert_int_eq(sn_spec_check_unused(&spec, &err), 0);
}
END_TEST

START_TEST(error_set)
{
	struct sn_error e;

	ck_assert_int_eq(sn_error_set(&e, -EEXIST, "port %s", "x"), -EEXIST);
	ck_assert_str_eq(e.msg, "port x");
	ck_assert_int_eq(sn_error_set(NULL, -EINVAL, "nothing"), -EINVAL);
}
END_TEST

/* MAC addresses as the control commands and the config file take them. */
START_TEST(mac_parse)
{
	static const uint8_t want[6] = {0x52, 0x54, 0x00, 0xab, 0xCD, 0x0f};
	static const char *const bad[] = {"", "52:54:00:ab:cd", "52:54:00:ab:cd:0f:", "52:54:00:ab:cd:0",
					  "52:54:00:ab:cd:0g", "52-54:00:ab:cd:0f", "5:254:00:ab:cd:0f", "52:54:00:ab:cd:0f1",
					  "52 54 00 ab cd 0f"};
	uint8_t m[6];

	ck_assert_int_eq(sn_mac_parse("52:54:00:ab:cd:0f", m), 0);
	ck_assert_mem_eq(m, want, 6);
	ck_assert_int_eq(sn_mac_parse("52-54-00-AB-CD-0F", m), 0);
	ck_assert_mem_eq(m, want, 6);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(sn_mac_parse(bad[i], m) == -EINVAL, "'%s' was taken", bad[i]);
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"kind_and_keys", kind_and_keys},
		{"mac_parse", mac_parse},
		{"quoted", quoted},
		{"duplicate_key", duplicate_key},
		{"missing_equals", missing_equals},
		{"empty_kind", empty_kind},
		{"too_many_keys", too_many_keys},
		{"too_long", too_long},
		{"get_uint", get_uint},
		{"get_bool", get_bool},
		{"check_unused", check_unused},
		{"error_set", error_set},
	};

	return sn_check_main("spec", cases, SN_CHECK_N(cases), NULL, NULL, 0);
}
