/* core.h - the switch object as the library's own files see it. */
#ifndef SN_CORE_H
#define SN_CORE_H

#include <ev.h>

#include <squibnet/switch.h>

#include "fdb.h"
#include "hooks.h"
#include "pool.h"
#include "port.h"
#include "spec.h"

struct sn_switch {
	struct ev_loop *loop;
	struct sn_switch_config cfg;
	struct sn_pool pool;
	struct sn_fdb fdb;
	struct sn_port *ports;      /* every port and listener */
	struct sn_port **up;        /* data ports that are UP: the flooding set */
	unsigned nup, up_cap;
	unsigned nports;
	unsigned next_auto_name;
	struct sn_port *flush_head;
	struct sn_port *dead;
	struct sn_port *hot_head;    /* queues to flush at the end of this input */
	struct sn_port *resume_head; /* paused readers that may go on */
	ev_prepare prepare;
	ev_idle kick;               /* active while the ev_prepare has work: the loop must not block */
	ev_timer ager;
	ev_timer watchdog;          /* active while a queue is congested: finds stalls */
	uint64_t unicast, flooded, filtered, isolated;
	struct sn_frame_tap *taps;   /* the data path tests only ntaps */
	unsigned ntaps;
	struct sn_switch_ext *exts;  /* modules' own state */
};

/* Offers a frame to every tap; called while sw->ntaps > 0. */
void sn_switch_taps_frame(struct sn_switch *sw, struct sn_port *port, const uint8_t *data, uint32_t len,
			  enum sn_tap_dir dir);

/* Tells every tap that @port is going away. */
void sn_switch_taps_port_gone(struct sn_switch *sw, struct sn_port *port);

/* The forwarding side of back-pressure and stalls (port.c): a sender waits for a queue, a queue
 * whose peer does not keep up is stalled. */
void sn_port_wait_for(struct sn_port *in, struct sn_port *out, double now);
bool sn_port_stalling(const struct sn_port *p, double now);
void sn_port_stall(struct sn_port *p, double now);

/* The ev_prepare has work: the loop must come round to it without blocking. */
void sn_switch_want_prepare(struct sn_switch *sw);

/* A queue is congested: the watchdog that finds stalls must run. */
void sn_switch_watchdog_want(struct sn_switch *sw);

/* Reads the keys every port kind has (name=, mtu=) from @spec into @ret. -EINVAL or -EEXIST
 * with @err naming the key. */
int sn_port_conf_from_spec(struct sn_switch *sw, struct sn_spec *spec, struct sn_port_conf *ret,
			   struct sn_error *err);


#endif
