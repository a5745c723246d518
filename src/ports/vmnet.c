/* vmnet.c - placeholder until the vmnet port lands. */
#include <errno.h>

#include "../switch.h"

static int vmnet_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "vmnet ports are not implemented yet");
}

const struct sn_port_kind sn_port_kind_vmnet = {
	.name = "vmnet",
	.create = vmnet_create,
};
