/* vhost_user.c - placeholder until the vhost-user port lands. */
#include <errno.h>

#include "../switch.h"

static int vhost_user_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "vhost-user ports are not implemented yet");
}

const struct sn_port_kind sn_port_kind_vhost_user = {
	.name = "vhost-user",
	.create = vhost_user_create,
};
