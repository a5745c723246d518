/* fdb.h - forwarding database: (MAC, VLAN) -> port, with aging and caps.
 *
 * A plain data structure: the caller passes the time, so the tests drive a fake clock and the
 * switch passes ev_now(). Open addressing with linear probing and backward-shift deletion. */
#ifndef SN_FDB_H
#define SN_FDB_H

#include <stdbool.h>
#include <stdint.h>

struct sn_port;

struct sn_fdb_entry {
	uint64_t key;         /* MAC in the low 48 bits, VLAN id above; 0 = empty slot */
	struct sn_port *port;
	double seen;          /* last time the MAC was a source */
	bool is_static;
};

struct sn_fdb {
	struct sn_fdb_entry *slots;
	uint32_t mask;        /* slots - 1 */
	uint32_t count;
	uint32_t max;
	uint32_t port_max;
	double aging;
	/* no dynamic entry expires before this (0: none can), so a full table knows without a
	 * scan that there is nothing to age: refusing a source stays O(1) under a MAC flood */
	double next_expiry;
	bool evict;           /* a full table makes room: see sn_fdb_learn() */
	struct sn_port *heavy; /* the port that owned the most entries when it last learned one */
	uint32_t cursor;      /* where the search for an entry to evict goes on */
	uint64_t refused_table, refused_port, moves, evicted;
	uint64_t scans;       /* sn_fdb_age() passes over the whole table */
};

enum sn_fdb_learn_result {
	SN_FDB_REFRESHED,
	SN_FDB_LEARNED,
	SN_FDB_MOVED,
	SN_FDB_IGNORED,       /* multicast or zero source, or a static entry elsewhere */
	SN_FDB_REFUSED_TABLE,
	SN_FDB_REFUSED_PORT,
};

int sn_fdb_init(struct sn_fdb *fdb, uint32_t max, uint32_t port_max, double aging);
void sn_fdb_finish(struct sn_fdb *fdb);

static inline uint64_t sn_fdb_key(const uint8_t mac[6], uint16_t vlan)
{
	uint64_t k = 0;

	for (int i = 0; i < 6; i++)
		k = k << 8 | mac[i];
	/* the +1 keeps the all-zero MAC on VLAN 0 apart from an empty slot */
	return k | (uint64_t)((vlan & 0xfff) + 1) << 48;
}

/* Whether @e has outlived the aging time at @now: a miss, even before sn_fdb_age() removes it. */
static inline bool sn_fdb_expired(const struct sn_fdb *fdb, const struct sn_fdb_entry *e, double now)
{
	return !e->is_static && now - e->seen >= fdb->aging;
}

/* Learns that @mac on @vlan sits behind @port at time @now. Refusals are counted here and in
 * @port->stats.fdb_refused; port->stats.fdb_entries tracks ownership. A full table first drops
 * expired entries, when some may have expired; then, with @fdb->evict, it makes room by
 * removing the oldest of a few dynamic entries of the port that owns the most (Open vSwitch's
 * fair eviction: a port flooding new source MACs evicts its own), else it refuses. */
enum sn_fdb_learn_result sn_fdb_learn(struct sn_fdb *fdb, const uint8_t mac[6], uint16_t vlan,
				      struct sn_port *port, double now);

/* The port behind @mac on @vlan, or NULL (unknown or expired). */
struct sn_port *sn_fdb_lookup(struct sn_fdb *fdb, const uint8_t mac[6], uint16_t vlan, double now);

/* Removes expired entries. Returns the time the next one expires, or 0 when none can. */
double sn_fdb_age(struct sn_fdb *fdb, double now);

/* Removes the dynamic entries of @port (NULL: of every port); with @with_static, static ones
 * too. Returns how many went. */
uint32_t sn_fdb_flush(struct sn_fdb *fdb, struct sn_port *port, bool with_static);

/* Changes the cap to @max (1 to 2^24), rehashing into a table of the size sn_fdb_init() would
 * make. Entries over a lower cap stay until they age or are flushed. The port cap is the
 * caller's to set; it is only lowered to @max. -EINVAL, -ENOMEM (the table is as it was). */
int sn_fdb_set_max(struct sn_fdb *fdb, uint32_t max);

int sn_fdb_add_static(struct sn_fdb *fdb, const uint8_t mac[6], uint16_t vlan, struct sn_port *port);
int sn_fdb_del(struct sn_fdb *fdb, const uint8_t mac[6], uint16_t vlan);

static inline void sn_fdb_key_mac(uint64_t key, uint8_t mac[6], uint16_t *vlan)
{
	for (int i = 5; i >= 0; i--, key >>= 8)
		mac[i] = key & 0xff;
	*vlan = (uint16_t)((key & 0xffff) - 1);
}

#endif
