/* test-capture.c - unit tests of captures: the file-name rules (%p expansion, rotation names),
 * SPEC refusals with libpcap's own filter message, and frames offered at the capture point coming
 * back out of the file through libpcap's reader, filtered and attributed to their ports.
 *
 * The frames are handed to the switch's frame taps directly from stand-in ports, so the routing
 * (ports=, dir=, per-port files) is tested without sockets; the daemon tests cover the rest. */
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <squibnet/config.h>

#include "capture_impl.h"
#include "sn-check.h"
#include "core.h"

#if SN_HAS_PCAP
#include <pcap/pcap.h>
#endif

START_TEST(expand)
{
	char out[64];

	ck_assert_int_eq(sn_capture_expand(out, sizeof(out), "/tmp/vm-%p.pcap", "sw.1"), 0);
	ck_assert_str_eq(out, "/tmp/vm-sw.1.pcap");
	ck_assert_int_eq(sn_capture_expand(out, sizeof(out), "%p/%p", "a"), 0);
	ck_assert_str_eq(out, "a/a");
	/* %% is a literal '%', so %%p is not a port; other % sequences stay as they are */
	ck_assert_int_eq(sn_capture_expand(out, sizeof(out), "100%%p-%d-%", "x"), 0);
	ck_assert_str_eq(out, "100%p-%d-%");
	ck_assert_int_eq(sn_capture_expand(out, sizeof(out), "plain.pcap", "x"), 0);
	ck_assert_str_eq(out, "plain.pcap");
	/* exactly full, and one over */
	ck_assert_int_eq(sn_capture_expand(out, 8, "ab%p", "cdefg"), 0);
	ck_assert_str_eq(out, "abcdefg");
	ck_assert_int_eq(sn_capture_expand(out, 8, "ab%p", "cdefgh"), -ENAMETOOLONG);
	ck_assert_int_eq(sn_capture_expand(out, 4, "abcd", "x"), -ENAMETOOLONG);
}
END_TEST

START_TEST(rotated_names)
{
	char out[32];

	ck_assert_int_eq(sn_capture_rotated_name(out, sizeof(out), "c.pcap", 0), 0);
	ck_assert_str_eq(out, "c.pcap");
	ck_assert_int_eq(sn_capture_rotated_name(out, sizeof(out), "c.pcap", 1), 0);
	ck_assert_str_eq(out, "c.pcap.1");
	ck_assert_int_eq(sn_capture_rotated_name(out, sizeof(out), "c.pcap", 12), 0);
	ck_assert_str_eq(out, "c.pcap.12");
	ck_assert_int_eq(sn_capture_rotated_name(out, 9, "c.pcap", 10), -ENAMETOOLONG);
}
END_TEST

#if SN_HAS_PCAP

static struct ev_loop *loop;
static struct sn_switch *sw;
static char dir[] = "/tmp/sn-test-capture.XXXXXX";

static void setup(void)
{
	loop = ev_loop_new(EVFLAG_AUTO);
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(sn_switch_create(loop, NULL, &sw), 0);
	strcpy(dir, "/tmp/sn-test-capture.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[PATH_MAX];

	sn_switch_destroy(sw);
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* A port as far as the capture point cares: a name and maybe a parent. */
static struct sn_port *stand_in(const char *name, struct sn_port *parent)
{
	struct sn_port *p = calloc(1, sizeof(*p));

	ck_assert_ptr_nonnull(p);
	strcpy(p->name, name);
	p->parent = parent;
	p->sw = sw;
	return p;
}

static size_t frame(uint8_t *buf, uint8_t src, uint16_t seq, size_t len)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	memset(buf, 0, len);
	memcpy(buf, bcast, 6);
	buf[6] = 0x52, buf[7] = 0x54, buf[11] = src;
	buf[12] = 0x88, buf[13] = 0xb5;
	buf[14] = seq >> 8, buf[15] = seq & 0xff;
	return len;
}

static void offer(struct sn_port *p, uint8_t src, uint16_t seq, size_t len, enum sn_capture_dir d)
{
	uint8_t buf[2048];

	frame(buf, src, seq, len);
	if (sw->ntaps)
		sn_switch_taps_frame(sw, p, buf, (uint32_t)len, (enum sn_tap_dir)d);
}

static int count_running(const struct sn_capture_info *i, void *ctx)
{
	*(unsigned *)ctx += i->state == SN_CAPTURE_RUNNING;
	return 0;
}

/* Captures running now. */
static unsigned running(void)
{
	unsigned n = 0;

	sn_capture_foreach(sw, count_running, &n);
	return n;
}

/* The frames of a pcap file as "src:seq" words, read by libpcap. */
static void read_back(const char *name, char *out, size_t len, unsigned *ret_n)
{
	char path[PATH_MAX], err[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *p;
	unsigned n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	p = pcap_open_offline(path, err);
	ck_assert_msg(p != NULL, "%s: %s", path, err);
	ck_assert_int_eq(pcap_datalink(p), DLT_EN10MB);
	out[0] = '\0';
	while (pcap_next_ex(p, &h, &d) == 1) {
		snprintf(out + strlen(out), len - strlen(out), "%s%u:%u", n ? " " : "", d[11], d[14] << 8 | d[15]);
		n++;
	}
	pcap_close(p);
	*ret_n = n;
}

/* Starts "DIR/@tail" and returns its ID. */
static unsigned start(const char *tail)
{
	char spec[PATH_MAX + 128];
	struct sn_error err;
	unsigned id = 0;
	int r;

	snprintf(spec, sizeof(spec), "%s/%s", dir, tail);
	r = sn_capture_start(sw, spec, &id, &err);
	ck_assert_msg(r == 0, "%s: %s", spec, err.msg);
	return id;
}

START_TEST(bad_spec_refused)
{
	struct sn_error err;
	char spec[PATH_MAX + 64];
	char lib_msg[PCAP_ERRBUF_SIZE + 32];
	struct bpf_program prog;
	pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);

	/* libpcap's own words for the same mistake */
	ck_assert_int_lt(pcap_compile(dead, &prog, "ether sorc 1", 1, PCAP_NETMASK_UNKNOWN), 0);
	snprintf(lib_msg, sizeof(lib_msg), "%s", pcap_geterr(dead));
	pcap_close(dead);
	snprintf(spec, sizeof(spec), "%s/x.pcap,filter=ether sorc 1", dir);
	ck_assert_int_eq(sn_capture_start(sw, spec, NULL, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, lib_msg) != NULL, "'%s' lacks libpcap's '%s'", err.msg, lib_msg);

	snprintf(spec, sizeof(spec), "%s/x.pcap,bogus=1", dir);
	ck_assert_int_eq(sn_capture_start(sw, spec, NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "bogus"));
	snprintf(spec, sizeof(spec), "%s/x.pcap,dir=up", dir);
	ck_assert_int_eq(sn_capture_start(sw, spec, NULL, &err), -EINVAL);
	ck_assert_int_eq(sn_capture_start(sw, "-", NULL, &err), -EINVAL);
	ck_assert_int_eq(sn_capture_start(sw, "/nonexistent/x.pcap", NULL, &err), -ENOENT);
	ck_assert_uint_eq(running(), 0);
	ck_assert_int_eq(access(spec, F_OK), -1); /* nothing created on refusal */
	ck_assert_int_eq(sn_capture_stop(sw, 1), -ENOENT);
}
END_TEST

static int count_visit(const struct sn_capture_info *i, void *arg)
{
	(*(unsigned *)arg)++;
	return 0;
}

START_TEST(frames_filtered_and_attributed)
{
	struct sn_port *lis = stand_in("sw", NULL), *a = stand_in("sw.1", lis), *b = stand_in("sw.2", lis);
	struct sn_port *c = stand_in("vm3", NULL);
	unsigned all, filt, per, only, n = 0;
	char got[4096];

	all = start("all.pcap");
	filt = start("f.pcap,filter=ether src 52:54:00:00:00:02");
	per = start("p-%p.pcap");
	only = start("o.pcap,ports=sw,dir=out");
	ck_assert_uint_eq(running(), 4);
	sn_capture_foreach(sw, count_visit, &n);
	ck_assert_uint_eq(n, 4);

	offer(a, 1, 1, 60, SN_CAPTURE_IN);
	offer(b, 1, 1, 60, SN_CAPTURE_OUT);
	offer(c, 1, 1, 60, SN_CAPTURE_OUT);
	offer(b, 2, 2, 1000, SN_CAPTURE_IN);
	offer(a, 2, 2, 1000, SN_CAPTURE_OUT);
	offer(c, 3, 3, 60, SN_CAPTURE_IN);
	offer(a, 3, 3, 60, SN_CAPTURE_OUT);
	sn_switch_taps_port_gone(sw, c); /* closes vm3's own file: complete now */
	read_back("p-vm3.pcap", got, sizeof(got), &n);
	ck_assert_str_eq(got, "1:1 3:3");

	for (unsigned id = 1; id <= 4; id++)
		ck_assert_int_eq(sn_capture_stop(sw, id), 0);
	ck_assert_uint_eq(running(), 0);
	/* one file of every port takes each frame once, as it entered */
	read_back("all.pcap", got, sizeof(got), &n);
	ck_assert_str_eq(got, "1:1 2:2 3:3");
	read_back("f.pcap", got, sizeof(got), &n);
	ck_assert_str_eq(got, "2:2");
	read_back("p-sw.1.pcap", got, sizeof(got), &n);
	ck_assert_str_eq(got, "1:1 2:2 3:3");
	read_back("p-sw.2.pcap", got, sizeof(got), &n);
	ck_assert_str_eq(got, "1:1 2:2");
	/* the listener's name covers its clients, not vm3 */
	read_back("o.pcap", got, sizeof(got), &n);
	ck_assert_str_eq(got, "1:1 2:2 3:3");
	ck_assert_uint_eq(all + filt + per + only, 10);
	free(a);
	free(b);
	free(c);
	free(lis);
}
END_TEST

START_TEST(rotation_and_count)
{
	struct sn_port *a = stand_in("a", NULL);
	char got[4096], name[64];
	unsigned n, total = 0;

	/* 1 MB (10^6 bytes) files of 1000-byte frames: 984 records of 1016 bytes fit after the header */
	start("r.pcap,rotate=1");
	start("n.pcap,count=3");
	for (unsigned i = 0; i < 2500; i++)
		offer(a, 1, (uint16_t)i, 1000, SN_CAPTURE_IN);
	ck_assert_uint_eq(running(), 1); /* count=3 is done */
	sn_capture_stop(sw, 1);
	for (unsigned seq = 0; seq < 3; seq++) {
		sn_capture_rotated_name(name, sizeof(name), "r.pcap", seq);
		read_back(name, got, sizeof(got), &n);
		ck_assert_uint_eq(n, seq < 2 ? 984 : 2500 - 2 * 984);
		total += n;
	}
	ck_assert_uint_eq(total, 2500);
	read_back("n.pcap", got, sizeof(got), &n);
	ck_assert_str_eq(got, "1:0 1:1 1:2");
	free(a);
}
END_TEST

#endif

static Suite *capture_suite(void)
{
	Suite *s = suite_create("capture");
	TCase *tc = tcase_create("names");

	tcase_add_test(tc, expand);
	tcase_add_test(tc, rotated_names);
	suite_add_tcase(s, tc);
#if SN_HAS_PCAP
	tc = tcase_create("refusals");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, bad_spec_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("frames");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, frames_filtered_and_attributed);
	tcase_add_test(tc, rotation_and_count);
	suite_add_tcase(s, tc);
#endif
	return s;
}

int main(void)
{
	return sn_check_run(capture_suite());
}
