/* tap.c - placeholder until the tap port lands. */
#include <errno.h>

#include "../switch.h"

static int tap_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "tap ports are not implemented yet");
}

const struct sn_port_kind sn_port_kind_tap = {
	.name = "tap",
	.create = tap_create,
};
