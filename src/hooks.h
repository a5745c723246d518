/* hooks.h - what a module beside the ports may hang on a switch: frame taps, which see every
 * frame a port takes in or sends out, and state of its own kept per switch. Captures use both;
 * mirroring or offload accounting can use them later. The switch knows no module by name. */
#ifndef SN_HOOKS_H
#define SN_HOOKS_H

#include <ev.h>
#include <stdint.h>

struct sn_switch;
struct sn_port;

enum sn_tap_dir {
	SN_TAP_IN = 1,  /* the port received it from its peer, and the switch took it */
	SN_TAP_OUT = 2, /* the port sent it to its peer */
};

/* A frame tap; the module embeds it and finds itself with sn_container_of(). */
struct sn_frame_tap {
	/* Sees @len bytes of a frame @port took in or sent. Must not keep @data, and must not add
	 * or remove taps other than itself. */
	void (*frame)(struct sn_frame_tap *tap, struct sn_port *port, const uint8_t *data, uint32_t len,
		      enum sn_tap_dir dir);
	/* @port is going away (optional): forget it. */
	void (*port_gone)(struct sn_frame_tap *tap, struct sn_port *port);
	struct sn_frame_tap *next;
};

/* Starts and stops a tap. While no tap is on, the data path pays one test per frame. */
void sn_switch_tap_add(struct sn_switch *sw, struct sn_frame_tap *tap);
void sn_switch_tap_del(struct sn_switch *sw, struct sn_frame_tap *tap);

/* A module's state for one switch; the module embeds it and finds it again by @key, the
 * address of anything that is the module's own. */
struct sn_switch_ext {
	const void *key;
	/* At sn_switch_destroy(), before the ports close: let go of everything, free the state. */
	void (*destroy)(struct sn_switch_ext *ext);
	struct sn_switch_ext *next;
};

void sn_switch_ext_add(struct sn_switch *sw, struct sn_switch_ext *ext);
struct sn_switch_ext *sn_switch_ext_find(struct sn_switch *sw, const void *key);

/* The loop the switch runs on. */
struct ev_loop *sn_switch_loop(struct sn_switch *sw);

#endif
