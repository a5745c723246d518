/* seqpacket.c - placeholder until the seqpacket port lands. */
#include <errno.h>

#include "../switch.h"

static int seqpacket_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "seqpacket ports are not implemented yet");
}

const struct sn_port_kind sn_port_kind_seqpacket = {
	.name = "seqpacket",
	.create = seqpacket_create,
};
