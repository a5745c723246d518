/* switch.h - the switch object as the library's own files see it. */
#ifndef SN_SWITCH_PRIV_H
#define SN_SWITCH_PRIV_H

#include <ev.h>

#include <squibnet/switch.h>

#include "fdb.h"
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
	uint64_t unicast, flooded, filtered;
	struct sn_capture *captures; /* owned by capture.c */
	unsigned ncaptures;          /* active captures: the data path tests only this */
};

/* A port kind: parses its keys from @spec, opens what it needs and registers the port. */
struct sn_port_kind {
	const char *name;
	int (*create)(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port,
		      struct sn_error *err);
};

extern const struct sn_port_kind sn_port_kind_stream;
extern const struct sn_port_kind sn_port_kind_dgram;
extern const struct sn_port_kind sn_port_kind_seqpacket;
extern const struct sn_port_kind sn_port_kind_gvproxy;
extern const struct sn_port_kind sn_port_kind_pcap;
extern const struct sn_port_kind sn_port_kind_tap;
extern const struct sn_port_kind sn_port_kind_vhost_user;
extern const struct sn_port_kind sn_port_kind_vmnet;

/* Reads the keys every kind has (name=, mtu=) and initialises @port with them. */
int sn_port_init_spec(struct sn_port *port, struct sn_switch *sw, const struct sn_port_ops *ops,
		      struct sn_spec *spec, struct sn_error *err);

struct sn_port *sn_switch_find_port(struct sn_switch *sw, const char *name);

#endif
