/* fdb.c - the forwarding database: learning, lookup, aging, caps, flushing.
 *
 * The table is sized at twice its cap (rounded up to a power of two) so probes stay short.
 * Entries hold the time a MAC was last a source; an entry older than the aging time is a miss
 * on lookup even before sn_fdb_age() removes it. */
#include <errno.h>
#include <stdlib.h>

#include "fdb.h"
#include "port.h"

static inline uint32_t slot_of(const struct sn_fdb *fdb, uint64_t key)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & fdb->mask;
}

int sn_fdb_init(struct sn_fdb *fdb, uint32_t max, uint32_t port_max, double aging)
{
	uint32_t n = 16;

	if (max == 0 || max > (1u << 24) || aging <= 0)
		return -EINVAL;
	while (n < 2 * max)
		n <<= 1;
	/* next_expiry 0: an empty table has nothing to age */
	*fdb = (struct sn_fdb){
		.mask = n - 1,
		.max = max,
		.port_max = port_max && port_max < max ? port_max : max,
		.aging = aging,
	};
	fdb->slots = calloc(n, sizeof(*fdb->slots));
	return fdb->slots ? 0 : -ENOMEM;
}

void sn_fdb_finish(struct sn_fdb *fdb)
{
	free(fdb->slots);
	fdb->slots = NULL;
}

static struct sn_fdb_entry *find(struct sn_fdb *fdb, uint64_t key)
{
	for (uint32_t i = slot_of(fdb, key);; i = (i + 1) & fdb->mask) {
		struct sn_fdb_entry *e = &fdb->slots[i];

		if (e->key == key)
			return e;
		if (e->key == 0)
			return NULL;
	}
}

/* Removes the entry in slot @i and shifts later members of its probe run back, so that no
 * tombstones are needed. */
static void remove_slot(struct sn_fdb *fdb, uint32_t i)
{
	struct sn_fdb_entry *e = &fdb->slots[i];

	e->port->stats.fdb_entries--;
	fdb->count--;
	for (uint32_t j = (i + 1) & fdb->mask;; j = (j + 1) & fdb->mask) {
		struct sn_fdb_entry *n = &fdb->slots[j];
		uint32_t home;

		if (n->key == 0)
			break;
		home = slot_of(fdb, n->key);
		/* n may fill the hole at i only if its home is not in (i, j] cyclically */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			fdb->slots[i] = *n;
			i = j;
		}
	}
	fdb->slots[i] = (struct sn_fdb_entry){0};
}

static struct sn_fdb_entry *insert(struct sn_fdb *fdb, uint64_t key)
{
	uint32_t i = slot_of(fdb, key);

	while (fdb->slots[i].key != 0)
		i = (i + 1) & fdb->mask;
	fdb->slots[i].key = key;
	fdb->count++;
	return &fdb->slots[i];
}

static bool learnable(const uint8_t mac[6])
{
	if (mac[0] & 1)
		return false;
	return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) != 0;
}

static void owns_one_more(struct sn_fdb *fdb, struct sn_port *port)
{
	port->stats.fdb_entries++;
	if (!fdb->heavy || port->stats.fdb_entries > fdb->heavy->stats.fdb_entries)
		fdb->heavy = port;
}

/* Entries looked at, at most, to find one to evict; samples compared by age. */
#define EVICT_PROBES 1024
#define EVICT_SAMPLES 4

/* Removes one dynamic entry of the heaviest port: the oldest of the first few met from the
 * cursor on. The heaviest port owns at least its share of the table, so a victim is usually a
 * few slots away; false when none was found within EVICT_PROBES slots. */
static bool evict_one(struct sn_fdb *fdb)
{
	uint32_t victim = 0, found = 0, i = fdb->cursor;

	if (!fdb->heavy)
		return false;
	for (uint32_t n = 0; n < EVICT_PROBES && found < EVICT_SAMPLES; n++, i = (i + 1) & fdb->mask) {
		const struct sn_fdb_entry *e = &fdb->slots[i];

		if (e->key == 0 || e->is_static || e->port != fdb->heavy)
			continue;
		if (found++ == 0 || e->seen < fdb->slots[victim].seen)
			victim = i;
	}
	fdb->cursor = i;
	if (!found)
		return false;
	remove_slot(fdb, victim);
	fdb->evicted++;
	return true;
}

static enum sn_fdb_learn_result refuse(struct sn_fdb *fdb, struct sn_port *port, bool table)
{
	port->stats.fdb_refused++;
	if (table) {
		fdb->refused_table++;
		return SN_FDB_REFUSED_TABLE;
	}
	fdb->refused_port++;
	return SN_FDB_REFUSED_PORT;
}

enum sn_fdb_learn_result sn_fdb_learn(struct sn_fdb *fdb, const uint8_t mac[6], uint16_t vlan,
				      struct sn_port *port, double now)
{
	uint64_t key;
	struct sn_fdb_entry *e;

	if (!learnable(mac))
		return SN_FDB_IGNORED;
	key = sn_fdb_key(mac, vlan);
	e = find(fdb, key);
	if (e) {
		if (e->port == port) {
			if (!e->is_static)
				e->seen = now;
			return SN_FDB_REFRESHED;
		}
		if (e->is_static)
			return SN_FDB_IGNORED;
		if (port->stats.fdb_entries >= fdb->port_max)
			return refuse(fdb, port, false);
		e->port->stats.fdb_entries--;
		owns_one_more(fdb, port);
		e->port = port;
		e->seen = now;
		fdb->moves++;
		return SN_FDB_MOVED;
	}
	if (fdb->count >= fdb->max) {
		/* a full table of stale entries should not refuse a live station */
		if (fdb->next_expiry != 0 && now >= fdb->next_expiry)
			sn_fdb_age(fdb, now);
		if (fdb->count >= fdb->max) {
			if (!fdb->evict)
				return refuse(fdb, port, true);
			if (port->stats.fdb_entries >= fdb->port_max)
				return refuse(fdb, port, false);
			if (!evict_one(fdb))
				return refuse(fdb, port, true);
		}
	}
	if (port->stats.fdb_entries >= fdb->port_max)
		return refuse(fdb, port, false);
	e = insert(fdb, key);
	e->port = port;
	e->seen = now;
	e->is_static = false;
	if (fdb->next_expiry == 0 || now + fdb->aging < fdb->next_expiry)
		fdb->next_expiry = now + fdb->aging;
	owns_one_more(fdb, port);
	return SN_FDB_LEARNED;
}

struct sn_port *sn_fdb_lookup(struct sn_fdb *fdb, const uint8_t mac[6], uint16_t vlan, double now)
{
	struct sn_fdb_entry *e = find(fdb, sn_fdb_key(mac, vlan));

	if (!e || sn_fdb_expired(fdb, e, now))
		return NULL;
	return e->port;
}

double sn_fdb_age(struct sn_fdb *fdb, double now)
{
	double next = 0;

	for (uint32_t i = 0; i <= fdb->mask;) {
		struct sn_fdb_entry *e = &fdb->slots[i];

		if (e->key == 0 || e->is_static) {
			i++;
		} else if (sn_fdb_expired(fdb, e, now)) {
			remove_slot(fdb, i); /* slot i now holds a shifted entry: look again */
		} else {
			double t = e->seen + fdb->aging;

			if (next == 0 || t < next)
				next = t;
			i++;
		}
	}
	fdb->next_expiry = next;
	fdb->scans++;
	return next;
}

uint32_t sn_fdb_flush(struct sn_fdb *fdb, struct sn_port *port, bool with_static)
{
	uint32_t n = 0;

	if (!port || port == fdb->heavy)
		fdb->heavy = NULL;
	for (uint32_t i = 0; i <= fdb->mask;) {
		struct sn_fdb_entry *e = &fdb->slots[i];

		if (e->key != 0 && (!port || e->port == port) && (with_static || !e->is_static)) {
			remove_slot(fdb, i);
			n++;
		} else {
			i++;
		}
	}
	return n;
}

int sn_fdb_add_static(struct sn_fdb *fdb, const uint8_t mac[6], uint16_t vlan, struct sn_port *port)
{
	uint64_t key;
	struct sn_fdb_entry *e;

	if (mac[0] & 1)
		return -EINVAL;
	key = sn_fdb_key(mac, vlan);
	e = find(fdb, key);
	if (e) {
		e->port->stats.fdb_entries--;
	} else {
		if (fdb->count >= fdb->max)
			return -ENOSPC;
		e = insert(fdb, key);
	}
	e->port = port;
	e->is_static = true;
	e->seen = 0;
	port->stats.fdb_entries++;
	return 0;
}

int sn_fdb_del(struct sn_fdb *fdb, const uint8_t mac[6], uint16_t vlan)
{
	struct sn_fdb_entry *e = find(fdb, sn_fdb_key(mac, vlan));

	if (!e)
		return -ENOENT;
	remove_slot(fdb, (uint32_t)(e - fdb->slots));
	return 0;
}

/* ---- a new cap at run time ---- */

int sn_fdb_set_max(struct sn_fdb *fdb, uint32_t max)
{
	struct sn_fdb_entry *old = fdb->slots, *slots;
	uint32_t old_n = fdb->mask + 1, n = 16;

	if (max == 0 || max > (1u << 24))
		return -EINVAL;
	/* twice the cap, as at init; never fewer slots than entries held (a lower cap leaves the
	 * entries over it in place, to age out, and learns nothing new until below it) */
	while (n < 2 * max || n <= fdb->count)
		n <<= 1;
	if (n != old_n) {
		slots = calloc(n, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		fdb->slots = slots;
		fdb->mask = n - 1;
		fdb->cursor = 0;
		for (uint32_t i = 0; i < old_n; i++) {
			uint32_t j;

			if (old[i].key == 0)
				continue;
			for (j = slot_of(fdb, old[i].key); slots[j].key != 0; j = (j + 1) & fdb->mask)
				;
			slots[j] = old[i];
		}
		free(old);
	}
	fdb->max = max;
	if (fdb->port_max > max)
		fdb->port_max = max;
	return 0;
}
