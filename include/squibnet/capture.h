/* Captures: pcap files of the frames the switch carries, written through libpcap.
 *
 * A capture takes the frames its ports received (IN) and/or transmitted (OUT), keeps those its
 * tcpdump-syntax filter accepts, and writes them to one pcap file, or one file per port when
 * the FILE pattern holds "%p". Every function here must be called from the loop's thread.
 * Builds without libpcap (SN_HAS_PCAP 0) return -ENOTSUP from sn_capture_start(). */
#ifndef SQUIBNET_CAPTURE_H
#define SQUIBNET_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <squibnet/switch.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Which frames of a port a capture takes. */
enum sn_capture_dir {
	SN_CAPTURE_IN = 1,   /**< the port received it from its peer (it entered the switch there) */
	SN_CAPTURE_OUT = 2,  /**< the port sent it to its peer */
	SN_CAPTURE_BOTH = 3,
};

/** Where a capture stands. */
enum sn_capture_state {
	SN_CAPTURE_RUNNING,
	SN_CAPTURE_DONE,    /**< count=N frames written; files closed */
	SN_CAPTURE_FAILED,  /**< a write or open failed; files closed, see error */
};

/** What sn_capture_foreach() shows of a capture. Pointers are valid during the call only. */
struct sn_capture_info {
	unsigned id;
	const char *file;      /**< the FILE as given ("%p" unexpanded); "-" for a live stream */
	const char *filter;    /**< the filter expression, or NULL */
	const char *ports;     /**< "NAME+NAME...", or NULL for every port */
	unsigned dir;          /**< enum sn_capture_dir bits */
	unsigned snaplen;
	bool nanosecond;       /**< nanosecond timestamps (tstamp=ns) */
	unsigned rotate_mb;    /**< 0: no rotation */
	uint64_t count;        /**< 0: no limit */
	enum sn_capture_state state;
	const char *error;     /**< why it failed, or NULL */
	uint64_t frames;       /**< frames written */
	uint64_t bytes;        /**< bytes of frame data written (before snaplen) */
	uint64_t filtered;     /**< frames the filter refused */
	uint64_t dropped;      /**< frames lost: write failure or a live reader too slow */
	uint64_t errors;       /**< write or open failures */
	unsigned files_open;   /**< files open now */
	unsigned rotations;    /**< files rolled over so far */
};

/**
 * Starts a capture described by @spec, "FILE[,key=value]...":
 *   filter=EXPR      tcpdump syntax; quote it ("...") when it holds commas
 *   ports=NAME+NAME  only these ports; a listener's name covers its clients (default: all)
 *   dir=in|out|both  default: in for one file of every port (each frame once, as it entered
 *                    the switch), both otherwise
 *   snaplen=N        bytes kept of each frame (default 262144)
 *   tstamp=us|ns     timestamp precision (default us)
 *   rotate=MB        roll to FILE.1, FILE.2, ... when a file reaches MB million bytes
 *   count=N          stop after N frames
 * FILE holding "%p" gives one file per port, named by expanding %p to the port's name ("%%" is
 * a literal '%'); such a file is created on its port's first frame. A plain FILE is created
 * (truncated) now. On success sets *@ret_id (may be NULL).
 * -EINVAL: bad SPEC or filter (@err holds libpcap's message); other -errno from opening FILE;
 * -ENOTSUP without libpcap.
 */
int sn_capture_start(struct sn_switch *sw, const char *spec, unsigned *ret_id, struct sn_error *err);

/** Stops capture @id (flushing and closing its files) and forgets it. -ENOENT when unknown. */
int sn_capture_stop(struct sn_switch *sw, unsigned id);

/** Calls @visit for every capture, running or not, oldest first; stops early and returns what
 * @visit returned if it is non-zero. */
int sn_capture_foreach(struct sn_switch *sw, int (*visit)(const struct sn_capture_info *, void *), void *ctx);

/**
 * Reopens every capture file whose name no longer leads to the file being written (it was
 * renamed or removed, as log rotation does): a new file starts at that name. Files still in place
 * are only flushed. Call it on SIGHUP. Returns the number reopened; a capture whose reopen fails
 * is stopped as failed.
 */
int sn_capture_reopen_all(struct sn_switch *sw);

/** Writes out what every capture has buffered (they flush by themselves once a second too);
 * call it before exiting on a signal. */
void sn_capture_flush_all(struct sn_switch *sw);

#ifdef __cplusplus
}
#endif

#endif
