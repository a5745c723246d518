/* stream.h - the stream port's data path for port kinds that bring their own descriptor.
 *
 * A backend that obtains a connected byte stream some other way (a socketpair to a child
 * process) gets the same framing, batching and back-pressure as stream ports, with its own
 * sn_port_ops (its kind name, its close and describe) wrapping the functions below. */
#ifndef SN_PORTS_STREAM_H
#define SN_PORTS_STREAM_H

#include "../framing.h"

struct sn_port; /* port.h: included by the users of this header already */
struct sn_port_conf;
struct sn_port_ops;
struct sn_switch;

/* Called when the attached descriptor dies (end of stream, error, bad framing). By then the
 * port is DOWN and the descriptor closed; the owner may attach a new one later. */
typedef void (*sn_stream_lost_fn)(struct sn_port *port, void *owner, const char *why);

/**
 * Creates a stream data port that owns no descriptor yet (DOWN), from @conf with @ops: the
 * owner's own table (its kind name, its close and describe), whose flush, close, free and
 * resume must call sn_stream_port_flush(), sn_stream_port_close(), sn_stream_port_free() and
 * sn_stream_port_resume(). The port is not registered. @lost and @owner may be NULL.
 * Returns 0 and sets *@ret_port, or -ENOMEM / -ENAMETOOLONG.
 */
int sn_stream_port_create(struct sn_switch *sw, const struct sn_port_conf *conf, const struct sn_port_ops *ops,
			  enum sn_framing framing, sn_stream_lost_fn lost, void *owner, struct sn_port **ret_port);

/** Hands @fd (connected, non-blocking) to the port, which closes it when done, and brings the
 * port UP. @peer (may be NULL) names it in log lines. A descriptor already attached is closed. */
void sn_stream_port_attach(struct sn_port *port, int fd, const char *peer);

/** Closes the attached descriptor, if any, without calling the lost hook; the port goes DOWN. */
void sn_stream_port_detach(struct sn_port *port);

/** The @owner given to sn_stream_port_create(). */
void *sn_stream_port_owner(struct sn_port *port);

/** The stream port's own ops, for the owner's table. */
void sn_stream_port_flush(struct sn_port *port);
void sn_stream_port_close(struct sn_port *port);
void sn_stream_port_free(struct sn_port *port);
void sn_stream_port_resume(struct sn_port *port);

#endif
