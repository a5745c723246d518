/* settings.c - the switch's tunables while it runs: what sn_switch_create() was given, read
 * back, and the ones that can change without creating the switch again (the forwarding
 * database's caps, aging and eviction, the stall timeout). The pool and the egress queues are
 * sized once: their settings take effect when the switch is created. */
#include <errno.h>
#include <string.h>

#include "core.h"
#include "sock.h"
#include "spec.h"
#include "util.h"

/* Re-arms the ager for the entries the table holds now (after the aging time changed). */
static void ager_rearm(struct sn_switch *sw)
{
	double now = ev_now(sw->loop), next = sn_fdb_age(&sw->fdb, now);

	if (next > 0) {
		sw->ager.repeat = next - now + 0.001;
		if (!ev_is_active(&sw->ager)) {
			ev_timer_again(sw->loop, &sw->ager);
			ev_unref(sw->loop);
		} else {
			ev_timer_again(sw->loop, &sw->ager);
		}
	} else if (ev_is_active(&sw->ager)) {
		ev_ref(sw->loop);
		ev_timer_stop(sw->loop, &sw->ager);
	}
}

SN_EXPORT int sn_switch_set_fdb_aging(struct sn_switch *sw, double seconds)
{
	if (!(seconds > 0) || seconds > 1e6)
		return -EINVAL;
	sw->fdb.aging = seconds;
	sw->cfg.fdb_aging = seconds;
	ager_rearm(sw);
	return 0;
}

SN_EXPORT int sn_switch_set_fdb_max(struct sn_switch *sw, unsigned max, unsigned port_max)
{
	int r = sn_fdb_set_max(&sw->fdb, max, port_max, ev_now(sw->loop));

	if (r < 0)
		return r;
	sw->cfg.fdb_max = max;
	sw->cfg.fdb_port_max = port_max;
	return 0;
}

SN_EXPORT void sn_switch_set_fdb_evict(struct sn_switch *sw, bool evict)
{
	sw->fdb.evict = evict;
	sw->cfg.fdb_evict = evict;
}

SN_EXPORT int sn_switch_set_stall_timeout(struct sn_switch *sw, double seconds)
{
	if (!(seconds > 0) || seconds > 3600)
		return -EINVAL;
	sw->cfg.stall_timeout = seconds;
	sw->watchdog.repeat = seconds / 4;
	if (ev_is_active(&sw->watchdog))
		ev_timer_again(sw->loop, &sw->watchdog);
	return 0;
}

SN_EXPORT void sn_switch_get_config(struct sn_switch *sw, struct sn_switch_config *ret)
{
	*ret = sw->cfg;
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
	if (want.fdb_aging > 1e6 || want.stall_timeout > 3600)
		return sn_error_set(err, -EINVAL, "fdb-aging over 10^6 s or stall-timeout over 3600 s");
	if (!sn_sock_buf_ok(want.sock_buf))
		return sn_error_set(err, -EINVAL, "sock-buf=%llu: want 0 or %u to %u bytes", (unsigned long long)want.sock_buf,
				    SN_SOCK_BUF_MIN, SN_SOCK_BUF_MAX);
	/* the one change that can fail goes first, so that a refusal changes nothing */
	if (want.fdb_max != sw->cfg.fdb_max || want.fdb_port_max != sw->cfg.fdb_port_max) {
		r = sn_switch_set_fdb_max(sw, want.fdb_max, want.fdb_port_max);
		if (r == -ENOSPC)
			return sn_error_set(err, r, "fdb-max=%u: the table holds more static entries than that",
					    want.fdb_max);
		if (r < 0)
			return sn_error_set(err, r, "fdb-max: %s", strerror(-r));
	}
	sn_switch_set_fdb_evict(sw, want.fdb_evict);
	if (want.fdb_aging != sw->cfg.fdb_aging)
		sn_switch_set_fdb_aging(sw, want.fdb_aging);
	if (want.stall_timeout != sw->cfg.stall_timeout)
		sn_switch_set_stall_timeout(sw, want.stall_timeout);
	sw->cfg.sock_buf = want.sock_buf; /* for the connections made from now on */
	return 0;
}
