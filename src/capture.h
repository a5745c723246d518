/* capture.h - the switch's capture points: every frame a port received (after the switch
 * accepted it) and every frame a port transmitted passes here while any capture is active. */
#ifndef SN_CAPTURE_H
#define SN_CAPTURE_H

#include <stdint.h>

struct sn_switch;
struct sn_port;

enum sn_capture_dir {
	SN_CAPTURE_IN = 1,  /* the port received it from its peer */
	SN_CAPTURE_OUT = 2, /* the port sent it to its peer */
};

/* Offers one frame to every active capture. Called only when sw->ncaptures > 0. */
void sn_capture_frame(struct sn_switch *sw, struct sn_port *port, const uint8_t *data, uint32_t len,
		      enum sn_capture_dir dir);

/* A port is going away: captures that follow it drop it (and close its per-port file). */
void sn_capture_port_gone(struct sn_switch *sw, struct sn_port *port);

/* Closes every capture of @sw (switch destruction). */
void sn_capture_destroy_all(struct sn_switch *sw);

#endif
