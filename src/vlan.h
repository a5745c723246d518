/* vlan.h - 802.1Q on a port: its mode (transparent, access, trunk), the per-port policy keys
 * every port kind takes (vlan=, trunk=, native=, native-tagged=, tpid=, isolated=, flood=,
 * mcast-flood=, max-macs=), and the two decisions the data path makes with them: which VLAN an
 * arriving frame is in, and how a frame of a VLAN leaves a port. */
#ifndef SN_VLAN_H
#define SN_VLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SN_TPID_8021Q 0x8100
#define SN_TPID_8021AD 0x88a8

enum sn_vlan_mode {
	SN_VLAN_TRANSPARENT, /* frames as they come: untagged is VLAN 0, a tagged frame is its VID */
	SN_VLAN_ACCESS,      /* untagged on the wire, VLAN vid inside; with tpid 0x88a8 a dot1q tunnel */
	SN_VLAN_TRUNK,       /* tagged on the wire for the VLANs listed; the native VLAN untagged */
};

/* A port's policy: what its SPEC (or `port set`) said besides name= and mtu=. */
struct sn_port_policy {
	enum sn_vlan_mode mode;
	uint16_t vid;             /* access: its VLAN */
	uint16_t native;          /* trunk: the VLAN of untagged frames; 0: untagged frames dropped */
	bool native_tagged;       /* trunk: the native VLAN leaves tagged too (and arrives either way) */
	uint16_t tpid;            /* the tag on the wire: 0x8100 (802.1Q) or 0x88a8 (802.1ad) */
	uint64_t trunk[64];       /* trunk: the VIDs it carries, one bit each */
	bool isolated;            /* never exchanges frames with another isolated port */
	bool no_flood;            /* gets no unknown unicast (Linux BR_FLOOD off) */
	bool no_mcast_flood;      /* gets no multicast but broadcast (Linux BR_MCAST_FLOOD off) */
	unsigned max_macs;        /* FDB entries it may own; 0: the switch's per-port cap */
};

struct sn_spec;
struct sn_error;

/* The keys of the policy, for the kinds' key lists and `port set`. */
extern const char *const sn_policy_keys[];

/* Reads the policy keys of @spec over @p (keys absent leave it as it is: `port set` changes
 * only what it names). -EINVAL with @err naming the key: VLAN 0 or 4095, a malformed list,
 * conflicting keys (trunk= with vlan=, native= without trunk=, ...). */
int sn_policy_from_spec(struct sn_port_policy *p, struct sn_spec *spec, struct sn_error *err);

/* "access 10", "trunk 10,20-30 native 1", "transparent", with " isolated" and the rest after
 * it: what `ports` shows, and the keys that make it again with @keys (for `save`). */
void sn_policy_describe(const struct sn_port_policy *p, char *buf, size_t len);
void sn_policy_keys_text(const struct sn_port_policy *p, char *buf, size_t len);

static inline bool sn_vlan_in_trunk(const struct sn_port_policy *p, uint16_t vid)
{
	return p->trunk[vid >> 6] >> (vid & 63) & 1;
}

/*
 * How a frame of VLAN @vid leaves a port with policy @p: -1 it does not (not a member), 0
 * untagged, else tagged with that TPID. A transparent port leaves VLAN 0 frames as they came
 * (a priority tag stays), so -2: as it is.
 */
static inline int sn_vlan_egress(const struct sn_port_policy *p, uint16_t vid)
{
	switch (p->mode) {
	case SN_VLAN_TRANSPARENT:
		return vid ? SN_TPID_8021Q : -2;
	case SN_VLAN_ACCESS:
		return vid == p->vid ? 0 : -1;
	default:
		if (vid == p->native && vid)
			return p->native_tagged ? p->tpid : 0;
		return vid && sn_vlan_in_trunk(p, vid) ? p->tpid : -1;
	}
}

#endif
