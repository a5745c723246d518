/* test-vlan.c - the per-port policy keys: what each SPEC makes of a port, the refusals, the
 * egress decision for every mode, and that what `save` would write reads back the same. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "spec.h"
#include "vlan.h"

#include "sn-check.h"

static int parse(const char *text, struct sn_port_policy *p, struct sn_error *err)
{
	struct sn_spec spec;
	int r = sn_spec_parse(&spec, text, err);

	return r < 0 ? r : sn_policy_from_spec(p, &spec, err);
}

static struct sn_port_policy ok(const char *text)
{
	struct sn_port_policy p = {0};
	struct sn_error err = {{0}};

	ck_assert_msg(parse(text, &p, &err) == 0, "%s: %s", text, err.msg);
	return p;
}

START_TEST(modes)
{
	struct sn_port_policy p = ok("x");

	ck_assert_int_eq(p.mode, SN_VLAN_TRANSPARENT);
	ck_assert_int_eq(sn_vlan_egress(&p, 0), -2);
	ck_assert_int_eq(sn_vlan_egress(&p, 7), SN_TPID_8021Q);
	p = ok("x,vlan=10");
	ck_assert_int_eq(p.mode, SN_VLAN_ACCESS);
	ck_assert_int_eq(sn_vlan_egress(&p, 10), 0);
	ck_assert_int_eq(sn_vlan_egress(&p, 11), -1);
	ck_assert_int_eq(sn_vlan_egress(&p, 0), -1);
	p = ok("x,trunk=\"10,20-22\",native=5");
	ck_assert_int_eq(p.mode, SN_VLAN_TRUNK);
	ck_assert(sn_vlan_in_trunk(&p, 21) && !sn_vlan_in_trunk(&p, 23) && !sn_vlan_in_trunk(&p, 5));
	ck_assert_int_eq(sn_vlan_egress(&p, 5), 0);
	ck_assert_int_eq(sn_vlan_egress(&p, 22), SN_TPID_8021Q);
	ck_assert_int_eq(sn_vlan_egress(&p, 0), -1);
	p = ok("x,trunk=10+4094,native=10,native-tagged=on,tpid=0x88a8");
	ck_assert_int_eq(sn_vlan_egress(&p, 10), SN_TPID_8021AD);
	ck_assert_int_eq(sn_vlan_egress(&p, 4094), SN_TPID_8021AD);
}
END_TEST

START_TEST(refusals)
{
	static const struct {
		const char *spec, *word;
	} bad[] = {
		{"x,vlan=0", "vlan"},          {"x,vlan=4095", "vlan"},     {"x,vlan=1x", "vlan"},
		{"x,trunk=5-2", "trunk"},      {"x,trunk=", "trunk"},       {"x,trunk=1+", "trunk"},
		{"x,trunk=4095", "trunk"},     {"x,vlan=3,trunk=4", "trunk"}, {"x,native=3", "native"},
		{"x,vlan=3,native=3", "native"}, {"x,trunk=3,native-tagged=on", "native-tagged"},
		{"x,trunk=3,tpid=0x9100", "tpid"}, {"x,tpid=0x88a8", "tpid"}, {"x,max-macs=16777217", "max-macs"},
		{"x,flood=sometimes", "flood"},
	};

	for (size_t i = 0; i < SN_CHECK_N(bad); i++) {
		struct sn_port_policy p = {0};
		struct sn_error err = {{0}};

		ck_assert_msg(parse(bad[i].spec, &p, &err) == -EINVAL, "%s was taken", bad[i].spec);
		ck_assert_msg(strstr(err.msg, bad[i].word), "%s: '%s' does not name %s", bad[i].spec, err.msg,
			      bad[i].word);
	}
}
END_TEST

/* `port set` changes what it names: the rest stays. */
START_TEST(changes)
{
	struct sn_port_policy p = ok("x,trunk=10,native=10,isolated=on");
	struct sn_error err = {{0}};
	struct sn_spec spec;

	ck_assert_int_eq(sn_spec_parse(&spec, "x,trunk=30", &err), 0);
	ck_assert_int_eq(sn_policy_from_spec(&p, &spec, &err), 0);
	ck_assert(sn_vlan_in_trunk(&p, 30) && !sn_vlan_in_trunk(&p, 10));
	ck_assert_uint_eq(p.native, 10);
	ck_assert(p.isolated);
	ck_assert_int_eq(sn_spec_parse(&spec, "x,vlan=none", &err), 0);
	ck_assert_int_eq(sn_policy_from_spec(&p, &spec, &err), 0);
	ck_assert_int_eq(p.mode, SN_VLAN_TRANSPARENT);
	ck_assert_uint_eq(p.native, 0);
}
END_TEST

/* What describe and the keys text say, and that the keys make the same policy again. */
START_TEST(round_trip)
{
	static const char *const specs[] = {
		"x", "x,vlan=7", "x,vlan=7,tpid=0x88a8", "x,trunk=\"1,3-5,4094\",native=3,native-tagged=on",
		"x,trunk=100,isolated=on,flood=off,mcast-flood=off,max-macs=9",
	};
	char keys[1200], text[1300], desc[1200];

	for (size_t i = 0; i < SN_CHECK_N(specs); i++) {
		struct sn_port_policy a = ok(specs[i]), b;

		sn_policy_keys_text(&a, keys, sizeof(keys));
		snprintf(text, sizeof(text), "x%s", keys);
		b = ok(text);
		ck_assert_msg(!memcmp(&a, &b, sizeof(a)), "%s came back from '%s' otherwise", specs[i], text);
	}
	sn_policy_describe(&(struct sn_port_policy){.mode = SN_VLAN_TRANSPARENT}, desc, sizeof(desc));
	ck_assert_str_eq(desc, "transparent");
	{
		struct sn_port_policy t = ok("x,trunk=\"10,20-30\",native=1,isolated=on");

		sn_policy_describe(&t, desc, sizeof(desc));
		ck_assert_str_eq(desc, "trunk 10,20-30 native 1 isolated");
	}
}
END_TEST

int main(void)
{
	const struct sn_check_case cases[] = {
		{"modes", modes},
		{"refusals", refusals},
		{"changes", changes},
		{"round_trip", round_trip},
	};

	return sn_check_main("vlan", cases, SN_CHECK_N(cases), NULL, NULL, 0);
}
