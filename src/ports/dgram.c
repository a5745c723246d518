/* dgram.c - placeholder until the dgram port lands. */
#include <errno.h>

#include "../switch.h"

static int dgram_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "dgram ports are not implemented yet");
}

const struct sn_port_kind sn_port_kind_dgram = {
	.name = "dgram",
	.create = dgram_create,
};
