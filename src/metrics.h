/* metrics.h - the switch's counters as Prometheus text, for the control server. */
#ifndef SN_METRICS_H
#define SN_METRICS_H

#include <squibnet/switch.h>

#include "json.h"

/* Appends every counter and gauge of @sw and its ports to @b in the Prometheus text exposition
 * format (each family's HELP and TYPE lines, then its samples). Out of memory marks @b failed. */
void sn_metrics_prometheus(struct sn_switch *sw, struct sn_buf *b);

#endif
