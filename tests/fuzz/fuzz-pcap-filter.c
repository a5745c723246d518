/* fuzz-pcap-filter.c - capture filters (tcpdump syntax): capture.c's path from a filter string
 * through libpcap's pcap_compile() on a dead handle, and the compiled program run on frames.
 *
 * Input: the filter expression up to the first NUL byte, then frames for it to judge, each
 * a 16-bit little-endian length and that many bytes. A filter that a capture SPEC can hold
 * (no '"' together with a ',') starts a real capture (to /dev/null) through
 * sn_capture_start(), and the frames go through the switch's frame taps as the switch hands them
 * over; any other string is compiled the way capture.c compiles it. Oracles: a filter is
 * accepted or refused with a message; every frame is either written or counted as filtered. */
#include <errno.h>
#include <ev.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squibnet/capture.h>

#include "capture_impl.h"
#include "port.h"
#include "core.h"

#include "fuzz.h"

#define MAX_FRAMES 64

static struct ev_loop *loop;

static void fport_flush(struct sn_port *port)
{
	sn_txq_sent(port, sn_txq_len(&port->txq));
}

static void fport_close(struct sn_port *port)
{
}

static const struct sn_port_ops fport_ops = {
	.kind = "fuzz",
	.flush = fport_flush,
	.close = fport_close,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		abort();
	return 0;
}

static int get_info(const struct sn_capture_info *i, void *ctx)
{
	*(struct sn_capture_info *)ctx = *i;
	return 1;
}

/* As capture_configure() compiles, for strings a SPEC cannot carry. */
static void compile_only(const char *filter)
{
	pcap_t *dead = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144, PCAP_TSTAMP_PRECISION_MICRO);
	struct bpf_program prog;

	if (!dead)
		abort();
	if (pcap_compile(dead, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == 0)
		pcap_freecode(&prog);
	else if (!pcap_geterr(dead)[0])
		fuzz_fail("pcap_compile refused '%s' without a message", filter);
	pcap_close(dead);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t flen = nul ? (size_t)(nul - data) : size;
	struct fuzz_in in = {nul ? nul + 1 : data + size, nul ? size - flen - 1 : 0, false};
	char filter[900], spec[1000];
	struct sn_switch_config cfg;
	struct sn_switch *sw;
	struct sn_port *port;
	struct sn_error err = {{0}};
	struct sn_capture_info info;
	unsigned id = 0, fed = 0;
	bool quote;

	if (flen >= sizeof(filter))
		return 0;
	memcpy(filter, data, flen);
	filter[flen] = '\0';
	quote = strchr(filter, ',') != NULL || filter[0] == '"';
	if (quote && strchr(filter, '"')) {
		compile_only(filter);
		return 0;
	}
	snprintf(spec, sizeof(spec), quote ? "/dev/null,filter=\"%s\",dir=both" : "/dev/null,filter=%s,dir=both",
		 filter);

	sn_switch_config_init(&cfg);
	cfg.pool_frames = 64;
	cfg.jumbo_frames = 2;
	cfg.txq_len = 16;
	if (sn_switch_create(loop, &cfg, &sw) < 0)
		abort();
	port = calloc(1, sizeof(*port));
	if (!port || fuzz_port_init(port, sw, &fport_ops, "vm1", 1500) < 0 || sn_port_register(port) < 0)
		abort();
	sn_port_set_state(port, SN_PORT_UP);
	if (sn_capture_start(sw, spec, &id, &err) < 0) {
		if (!err.msg[0])
			fuzz_fail("sn_capture_start('%s') failed without a message", spec);
		sn_switch_destroy(sw);
		return 0;
	}
	while (in.n > 0 && fed < MAX_FRAMES) {
		const uint8_t *frame;
		size_t n = fuzz_bytes(&in, fuzz_u16(&in), &frame);

		if (sw->ntaps)
			sn_switch_taps_frame(sw, port, frame, (uint32_t)n, fed & 1 ? SN_TAP_OUT : SN_TAP_IN);
		fed++;
	}
	sn_capture_foreach(sw, get_info, &info);
	if (info.frames + info.filtered + info.dropped != fed)
		fuzz_fail("%u frames in, %llu written, %llu filtered, %llu dropped", fed,
			  (unsigned long long)info.frames, (unsigned long long)info.filtered,
			  (unsigned long long)info.dropped);
	if (sn_capture_stop(sw, id) < 0)
		fuzz_fail("sn_capture_stop(%u) failed", id);
	sn_switch_destroy(sw);
	ev_run(loop, EVRUN_NOWAIT);
	return 0;
}
