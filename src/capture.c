/* capture.c - placeholder until captures land. */
#include "capture.h"
#include "control.h"

void sn_capture_frame(struct sn_switch *sw, struct sn_port *port, const uint8_t *data, uint32_t len,
		      enum sn_capture_dir dir)
{
}

void sn_capture_port_gone(struct sn_switch *sw, struct sn_port *port)
{
}

void sn_capture_destroy_all(struct sn_switch *sw)
{
}

const struct sn_ctl_cmds sn_capture_ctl_cmds = {NULL, 0};
