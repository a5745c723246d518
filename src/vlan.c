/* vlan.c - the per-port policy keys: parsing them (once, for every port kind, and again for
 * `port set`) and showing them. The per-frame decisions are inline in vlan.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "util.h"
#include "vlan.h"

const char *const sn_policy_keys[] = {"vlan", "trunk", "native", "native-tagged", "tpid", "isolated",
				      "flood", "mcast-flood", "max-macs", NULL};

static int parse_vid(const char *s, const char *key, uint16_t *ret, struct sn_error *err)
{
	unsigned v;

	if (sn_parse_uint(s, 1, 4094, &v) < 0)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': a VLAN is 1 to 4094", s, key);
	*ret = (uint16_t)v;
	return 0;
}

/* "10,20-30" or "10+20-30" (a SPEC value holds commas only quoted) into a bitmap. */
static int parse_list(const char *text, uint64_t bits[64], struct sn_error *err)
{
	char buf[256];
	const char *p = buf;

	memset(bits, 0, 64 * sizeof(bits[0]));
	if (!*text || sn_strlcpy(buf, text, sizeof(buf)) < 0)
		goto bad;
	while (*p) {
		size_t n = strcspn(p, ",+");
		char item[16], *dash;
		uint16_t lo = 0, hi = 0;

		if (n == 0 || n >= sizeof(item))
			goto bad;
		memcpy(item, p, n);
		item[n] = '\0';
		dash = strchr(item, '-');
		if (dash)
			*dash = '\0';
		if (parse_vid(item, "trunk", &lo, err) < 0 || (dash && parse_vid(dash + 1, "trunk", &hi, err) < 0))
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'trunk': VLANs 1 to 4094, as 10,20-30",
					    text);
		if (!dash)
			hi = lo;
		if (hi < lo)
			goto bad;
		for (unsigned v = lo; v <= hi; v++)
			bits[v >> 6] |= 1ull << (v & 63);
		p += n;
		if (*p) {
			p++;
			if (!*p)
				goto bad;
		}
	}
	return 0;
bad:
	return sn_error_set(err, -EINVAL, "bad value '%s' for key 'trunk': want a list such as 10,20-30", text);
}

int sn_policy_from_spec(struct sn_port_policy *p, struct sn_spec *spec, struct sn_error *err)
{
	const char *vlan = sn_spec_get(spec, "vlan"), *trunk = sn_spec_get(spec, "trunk");
	const char *native = sn_spec_get(spec, "native"), *tpid = sn_spec_get(spec, "tpid");
	const char *ntag = sn_spec_get(spec, "native-tagged");
	struct sn_port_policy n = *p;
	bool flood = !n.no_flood, mflood = !n.no_mcast_flood;
	int r;

	if (vlan && trunk)
		return sn_error_set(err, -EINVAL, "keys 'vlan' (an access port) and 'trunk' exclude each other");
	if (vlan && (native || ntag))
		return sn_error_set(err, -EINVAL, "key '%s' goes with 'trunk', not 'vlan'", native ? "native" : "native-tagged");
	if (vlan && !strcmp(vlan, "none")) {
		n.mode = SN_VLAN_TRANSPARENT;
		n.vid = n.native = 0;
		n.native_tagged = false;
		n.tpid = SN_TPID_8021Q;
	} else if (vlan) {
		r = parse_vid(vlan, "vlan", &n.vid, err);
		if (r < 0)
			return r;
		n.mode = SN_VLAN_ACCESS;
		n.native = 0;
		n.native_tagged = false;
	} else if (trunk) {
		r = parse_list(trunk, n.trunk, err);
		if (r < 0)
			return r;
		n.mode = SN_VLAN_TRUNK;
		n.vid = 0;
	}
	if (native) {
		if (n.mode != SN_VLAN_TRUNK)
			return sn_error_set(err, -EINVAL, "key 'native' needs a trunk port (trunk=LIST)");
		if (!strcmp(native, "none"))
			n.native = 0;
		else if ((r = parse_vid(native, "native", &n.native, err)) < 0)
			return r;
	}
	if (ntag) {
		if (n.mode != SN_VLAN_TRUNK)
			return sn_error_set(err, -EINVAL, "key 'native-tagged' needs a trunk port (trunk=LIST)");
		r = sn_spec_get_bool(spec, "native-tagged", &n.native_tagged, err);
		if (r < 0)
			return r;
	}
	if (n.native_tagged && !n.native)
		return sn_error_set(err, -EINVAL, "key 'native-tagged' needs a native VLAN (native=N)");
	if (tpid) {
		if (!strcmp(tpid, "0x8100") || !strcmp(tpid, "8100"))
			n.tpid = SN_TPID_8021Q;
		else if (!strcmp(tpid, "0x88a8") || !strcmp(tpid, "88a8"))
			n.tpid = SN_TPID_8021AD;
		else
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'tpid': want 0x8100 or 0x88a8", tpid);
	}
	if (!n.tpid)
		n.tpid = SN_TPID_8021Q;
	if (n.mode == SN_VLAN_TRANSPARENT && n.tpid != SN_TPID_8021Q)
		return sn_error_set(err, -EINVAL, "key 'tpid' needs an access or trunk port (vlan= or trunk=)");
	if ((r = sn_spec_get_bool(spec, "isolated", &n.isolated, err)) < 0 ||
	    (r = sn_spec_get_bool(spec, "flood", &flood, err)) < 0 ||
	    (r = sn_spec_get_bool(spec, "mcast-flood", &mflood, err)) < 0 ||
	    (r = sn_spec_get_uint(spec, "max-macs", 0, 1u << 24, &n.max_macs, err)) < 0)
		return r;
	n.no_flood = !flood;
	n.no_mcast_flood = !mflood;
	*p = n;
	return 0;
}

/* The trunk list as "10,20-30". */
static void list_text(const uint64_t bits[64], char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned v = 1; v < 4095; v++) {
		unsigned hi = v;

		if (!(bits[v >> 6] >> (v & 63) & 1))
			continue;
		while (hi + 1 < 4095 && bits[(hi + 1) >> 6] >> ((hi + 1) & 63) & 1)
			hi++;
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0, hi > v ? "%s%u-%u" : "%s%u",
					off ? "," : "", v, hi);
		v = hi;
	}
}

static void flags_text(const struct sn_port_policy *p, char *buf, size_t len, bool as_keys)
{
	size_t off = strlen(buf);

	if (p->isolated)
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0, as_keys ? ",isolated=on" : " isolated");
	if (p->no_flood)
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0, as_keys ? ",flood=off" : " flood=off");
	if (p->no_mcast_flood)
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0, as_keys ? ",mcast-flood=off" : " mcast-flood=off");
	if (p->max_macs)
		snprintf(buf + off, off < len ? len - off : 0, as_keys ? ",max-macs=%u" : " max-macs=%u", p->max_macs);
}

void sn_policy_describe(const struct sn_port_policy *p, char *buf, size_t len)
{
	char list[1024];

	switch (p->mode) {
	case SN_VLAN_TRANSPARENT:
		snprintf(buf, len, "transparent");
		break;
	case SN_VLAN_ACCESS:
		snprintf(buf, len, "%s %u", p->tpid == SN_TPID_8021AD ? "dot1q-tunnel" : "access", p->vid);
		break;
	default:
		list_text(p->trunk, list, sizeof(list));
		if (p->native)
			snprintf(buf, len, "trunk %s native %u%s%s", list, p->native, p->native_tagged ? " tagged" : "",
				 p->tpid == SN_TPID_8021AD ? " tpid 0x88a8" : "");
		else
			snprintf(buf, len, "trunk %s%s", list, p->tpid == SN_TPID_8021AD ? " tpid 0x88a8" : "");
		break;
	}
	flags_text(p, buf, len, false);
}

void sn_policy_keys_text(const struct sn_port_policy *p, char *buf, size_t len)
{
	char list[1024];

	buf[0] = '\0';
	if (p->mode == SN_VLAN_ACCESS) {
		snprintf(buf, len, ",vlan=%u", p->vid);
	} else if (p->mode == SN_VLAN_TRUNK) {
		list_text(p->trunk, list, sizeof(list));
		snprintf(buf, len, ",trunk=\"%s\"%s", list, p->native_tagged ? ",native-tagged=on" : "");
		if (p->native)
			snprintf(buf + strlen(buf), len - strlen(buf), ",native=%u", p->native);
	}
	if (p->mode != SN_VLAN_TRANSPARENT && p->tpid == SN_TPID_8021AD)
		snprintf(buf + strlen(buf), len - strlen(buf), ",tpid=0x88a8");
	flags_text(p, buf, len, true);
}
