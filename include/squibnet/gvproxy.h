/* gvproxy ports: the port forwards of a gvproxy port's child (gvisor-tap-vsock), as
 * `squibnetctl gvproxy expose` and `unexpose` make them. Loop thread only. */
#ifndef SQUIBNET_GVPROXY_H
#define SQUIBNET_GVPROXY_H

#include <squibnet/switch.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The answer to a request: @result 0, or -errno with @message (gvproxy's own words when it
 * refused: -EEXIST for a forward that is there already, -ENOENT for one that is not). */
typedef void (*sn_gvproxy_result_fn)(void *ctx, int result, const char *message);

/**
 * Asks gvproxy port @port (NULL: the only gvproxy port) to forward host address @local
 * ("127.0.0.1:8080") to guest address @remote ("192.168.127.2:80") over @proto ("tcp",
 * "udp" or "unix"; NULL: tcp). The switch does not wait: @done (may be NULL) gets the answer
 * from the loop, within 5 seconds (then -ETIMEDOUT). Returns 0 when the request went out;
 * -ENOENT (no such port), -EINVAL (not a gvproxy port, bad address), -ENOTCONN (gvproxy not
 * running), with @err saying which.
 */
int sn_gvproxy_expose(struct sn_switch *sw, const char *port, const char *local, const char *remote,
		      const char *proto, sn_gvproxy_result_fn done, void *ctx, struct sn_error *err);

/** Removes the forward of @local over @proto, as sn_gvproxy_expose() made it. */
int sn_gvproxy_unexpose(struct sn_switch *sw, const char *port, const char *local, const char *proto,
			sn_gvproxy_result_fn done, void *ctx, struct sn_error *err);

#ifdef __cplusplus
}
#endif

#endif
