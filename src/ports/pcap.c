/* pcap.c - placeholder until the pcap port lands. */
#include <errno.h>

#include "../switch.h"

static int pcap_create(struct sn_switch *sw, struct sn_spec *spec, struct sn_port **ret_port, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "pcap ports are not implemented yet");
}

const struct sn_port_kind sn_port_kind_pcap = {
	.name = "pcap",
	.create = pcap_create,
};
