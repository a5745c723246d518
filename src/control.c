/* control.c - placeholder until the control server lands. */
#include <errno.h>

#include "switch.h"
#include "util.h"

SN_EXPORT int sn_control_create(struct sn_switch *sw, const char *path, struct sn_control **ret_ctl, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "control socket not implemented yet");
}

SN_EXPORT void sn_control_destroy(struct sn_control *ctl)
{
}
