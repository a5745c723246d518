/* squibnet: an embeddable, event-loop-driven L2 switch for virtual machines.
 * Umbrella header: include this one. */
#ifndef SQUIBNET_SQUIBNET_H
#define SQUIBNET_SQUIBNET_H

#include <squibnet/capture.h>
#include <squibnet/conffile.h>
#include <squibnet/config.h>
#include <squibnet/gvproxy.h>
#include <squibnet/log.h>
#include <squibnet/switch.h>
#include <squibnet/virtio.h>

#endif
