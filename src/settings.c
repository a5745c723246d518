/* settings.c - the switch's tunables while it runs: what sn_switch_create() was given, read
 * back, and the ones that can change without creating the switch again (the forwarding
 * database's caps, aging and eviction, the stall timeout). The pool and the egress queues are
 * sized once: their settings take effect when the switch is created. */
#include <errno.h>
#include <string.h>

#include "core.h"
#include "spec.h"
#include "util.h"

SN_EXPORT void sn_switch_get_config(struct sn_switch *sw, struct sn_switch_config *ret_cfg)
{
	*ret_cfg = sw->cfg;
}

/* The ager runs while learned entries can expire; it was re-armed for the old aging time. */
static void ager_rearm(struct sn_switch *sw)
{
	double now = ev_now(sw->loop);
	double next = sn_fdb_age(&sw->fdb, now);

	if (next > 0) {
		bool was_on = ev_is_active(&sw->ager);

		sw->ager.repeat = next - now + 0.001;
		ev_timer_again(sw->loop, &sw->ager);
		if (!was_on)
			ev_unref(sw->loop); /* as when learning starts it: the ager alone keeps no loop running */
	} else if (ev_is_active(&sw->ager)) {
		ev_ref(sw->loop);
		ev_timer_stop(sw->loop, &sw->ager);
	}
}

SN_EXPORT int sn_switch_reconfigure(struct sn_switch *sw, const struct sn_switch_config *cfg, struct sn_error *err)
{
	struct sn_switch_config want;
	uint32_t q = 1;
	int r;

	if (err)
		err->msg[0] = '\0';
	if (!sw || !cfg || cfg->size < sizeof(cfg->size) || cfg->size > sizeof(want))
		return sn_error_set(err, -EINVAL, "no switch, or a configuration of unknown size");
	/* fields the caller does not know keep their values */
	want = sw->cfg;
	memcpy(&want, cfg, cfg->size);
	want.size = sizeof(want);
	if (want.fdb_max == 0 || want.fdb_max > (1u << 24) || !(want.fdb_aging > 0) || !(want.stall_timeout > 0) ||
	    want.txq_len < 8 || want.txq_len > (1u << 20))
		return sn_error_set(err, -EINVAL, "a setting out of range");
	while (q < want.txq_len)
		q <<= 1;
	if (want.pool_frames != sw->cfg.pool_frames)
		return sn_error_set(err, -EBUSY, "pool-frames takes effect when the switch is created");
	if (want.jumbo_frames != sw->cfg.jumbo_frames)
		return sn_error_set(err, -EBUSY, "jumbo-frames takes effect when the switch is created");
	if (q != sw->cfg.txq_len)
		return sn_error_set(err, -EBUSY, "txq-len takes effect when the switch is created");
	if (want.fdb_max != sw->fdb.max) {
		r = sn_fdb_set_max(&sw->fdb, want.fdb_max);
		if (r < 0)
			return sn_error_set(err, r, "fdb-max: %s", strerror(-r));
	}
	sw->fdb.port_max = want.fdb_port_max && want.fdb_port_max < want.fdb_max ? want.fdb_port_max : want.fdb_max;
	sw->fdb.evict = want.fdb_evict;
	if (want.fdb_aging != sw->fdb.aging) {
		sw->fdb.aging = want.fdb_aging;
		ager_rearm(sw);
	}
	if (want.stall_timeout != sw->cfg.stall_timeout) {
		sw->watchdog.repeat = want.stall_timeout / 4;
		if (ev_is_active(&sw->watchdog))
			ev_timer_again(sw->loop, &sw->watchdog);
	}
	want.txq_len = q;
	sw->cfg = want;
	return 0;
}
