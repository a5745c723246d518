/* capture_impl.h - captures as the library's own files see them: live captures into a sink
 * (capture_ctl.c streams them to the control connection), and the pure naming helpers. The
 * public side is <squibnet/capture.h>. */
#ifndef SN_CAPTURE_IMPL_H
#define SN_CAPTURE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <squibnet/capture.h>

struct sn_switch;
struct sn_spec;

/* Where a live capture's pcap stream goes. The capture writes the file header first, then
 * each record whole. */
struct sn_capture_sink {
	/* Takes @len bytes: 0; -ENOBUFS when the reader is too far behind (that record is dropped
	 * and counted, the stream stays valid); any other -errno ends the capture as failed. */
	int (*write)(struct sn_capture_sink *sink, const void *data, size_t len);
	/* The capture ended (stopped, count= reached, failed, the switch went away): the sink is
	 * not used again. */
	void (*end)(struct sn_capture_sink *sink);
};

/* sn_capture_start() of a parsed SPEC; a live capture ("-") needs @sink, a file one must not
 * have one. */
int sn_capture_start_spec(struct sn_switch *sw, struct sn_spec *spec, struct sn_capture_sink *sink,
			  unsigned *ret_id, struct sn_error *err);

/* The reader of live capture @id went away: the capture ends, without sink->end. */
void sn_capture_sink_gone(struct sn_switch *sw, unsigned id);

/* "in", "out", "both"; "running", "done", "failed". */
const char *sn_capture_dir_name(unsigned dir);
const char *sn_capture_state_name(enum sn_capture_state s);

/* Expands "%p" in @pattern to @port ("%%" to '%', any other '%' stays) into @out of @size bytes.
 * -ENAMETOOLONG when it does not fit. */
int sn_capture_expand(char *out, size_t size, const char *pattern, const char *port);

/* The name of file number @seq of a rotating capture: @base itself for 0, else "base.seq".
 * -ENAMETOOLONG when it does not fit. */
int sn_capture_rotated_name(char *out, size_t size, const char *base, unsigned seq);

#endif
