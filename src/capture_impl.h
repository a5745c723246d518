/* capture_impl.h - the switch's capture points: every frame a port received (after the switch
 * accepted it) and every frame a port transmitted passes here while any capture is active.
 * The public side is <squibnet/capture.h>. */
#ifndef SN_CAPTURE_H
#define SN_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include <squibnet/capture.h>

struct sn_switch;
struct sn_port;

/* Offers one frame to every active capture. Called only when sw->ncaptures > 0. */
void sn_capture_frame(struct sn_switch *sw, struct sn_port *port, const uint8_t *data, uint32_t len,
		      enum sn_capture_dir dir);

/* A port is going away: captures that follow it drop it (and close its per-port file). */
void sn_capture_port_gone(struct sn_switch *sw, struct sn_port *port);

/* Closes every capture of @sw (switch destruction). */
void sn_capture_destroy_all(struct sn_switch *sw);

/* Expands "%p" in @pattern to @port ("%%" to '%', any other '%' stays) into @out of @size bytes.
 * -ENAMETOOLONG when it does not fit. */
int sn_capture_expand(char *out, size_t size, const char *pattern, const char *port);

/* The name of file number @seq of a rotating capture: @base itself for 0, else "base.seq".
 * -ENAMETOOLONG when it does not fit. */
int sn_capture_rotated_name(char *out, size_t size, const char *base, unsigned seq);

#endif
