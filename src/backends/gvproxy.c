/* gvproxy.c - placeholder until the gvproxy backend lands. */
#include <errno.h>

#include "../control.h"
#include "../switch.h"

static int gvproxy_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port,
			  struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "gvproxy ports are not implemented yet");
}

const struct sn_port_kind sn_port_kind_gvproxy = {
	.name = "gvproxy",
	.create = gvproxy_create,
};

const struct sn_ctl_cmds sn_gvproxy_ctl_cmds = {NULL, 0};
