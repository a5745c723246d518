/* test-vmnet.c - the vmnet port's own code, run against the Linux stand-in backend.
 *
 * The stand-in (src/backends/vmnet_standin.c) keeps vmnet.framework's contract: a foreign
 * thread delivers the completions and the packets-available callbacks, read and write refuse
 * batches over the limits, and packets come from and go to the far end of a socketpair this
 * test holds. A stream port with a real unix-socket client is the other side of the switch.
 * The port is created through its kind's create() with a parsed SPEC, as sn_switch_add_port()
 * would on a Mac. */
#include <check.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backends/vmnet.h"
#include "core.h"
#include "util.h"

#define FRAME_LEN 64

static struct ev_loop *loop;
static struct sn_switch *sw;
static ev_timer tick;
static int peer[2];      /* [0] goes to the stand-in, [1] is the "network" side the test drives */
static int client = -1;  /* the stream port's client */
static char sock_path[108];

static const uint8_t mac_a[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0a};
static const uint8_t mac_b[6] = {0x52, 0x54, 0x00, 0x00, 0x00, 0x0b};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
}

/* Runs the loop until @done says so or @seconds pass; returns what @done said last. */
static bool run_until(bool (*done)(void *), void *ctx, double seconds)
{
	double end = now_s() + seconds;

	while (!done(ctx)) {
		if (now_s() > end)
			return false;
		ev_run(loop, EVRUN_ONCE);
	}
	return true;
}

static void big_buffers(int fd)
{
	int sz = 4 << 20;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static void setup_cfg(unsigned txq)
{
	struct sn_switch_config cfg;
	struct sn_vmnet_standin_conf conf;

	sn_switch_config_init(&cfg);
	cfg.pool_frames = 8192;
	cfg.jumbo_frames = 64;
	cfg.txq_len = txq;
	loop = ev_loop_new(0);
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(sn_switch_create(loop, &cfg, &sw), 0);
	ev_timer_init(&tick, tick_cb, 0.005, 0.005);
	ev_timer_start(loop, &tick);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, peer), 0);
	big_buffers(peer[0]);
	big_buffers(peer[1]);
	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	sn_vmnet_standin_configure(&conf);
	sn_vmnet_standin_reset_stats();
	snprintf(sock_path, sizeof(sock_path), "/tmp/sn-vmnet-test-%d.sock", (int)getpid());
	client = -1;
}

static void setup(void)
{
	setup_cfg(1024);
}

/* for a stream peer that hands the switch thousands of frames in one read */
static void setup_big(void)
{
	setup_cfg(8192);
}

static bool no_instances(void *ctx)
{
	struct sn_vmnet_standin_stats st;

	sn_vmnet_standin_get_stats(&st);
	return st.live == 0;
}

static void teardown(void)
{
	sn_switch_destroy(sw);
	/* every stand-in instance, late completions included, must have gone */
	{
		double end = now_s() + 10;

		while (!no_instances(NULL) && now_s() < end)
			usleep(10000);
		ck_assert_msg(no_instances(NULL), "a vmnet stand-in instance outlived its port");
	}
	ev_timer_stop(loop, &tick);
	ev_loop_destroy(loop);
	close(peer[0]);
	close(peer[1]);
	if (client >= 0)
		close(client);
	unlink(sock_path);
}

/* ---- helpers ---- */

/* Built here with the stand-in backend: not in the library's list of kinds. */
extern const struct sn_port_kind sn_port_kind_vmnet;

static int add_vmnet(const char *text, struct sn_port **ret, struct sn_error *err)
{
	struct sn_port_conf conf;
	struct sn_spec spec;
	int r;

	memset(err, 0, sizeof(*err));
	r = sn_spec_parse(&spec, text, err);
	if (r < 0)
		return r;
	r = sn_port_conf_from_spec(sw, &spec, &conf, err);
	if (r < 0)
		return r;
	return sn_port_kind_vmnet.create(sw, &conf, &spec, ret, err);
}

static struct sn_port *vmnet_ok(const char *text)
{
	struct sn_port *p = NULL;
	struct sn_error err;
	int r = add_vmnet(text, &p, &err);

	ck_assert_msg(r == 0, "%s: %d %s", text, r, err.msg);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->state, SN_PORT_UP);
	return p;
}

static bool client_attached(void *ctx)
{
	return sn_switch_find_port(sw, "s.1") != NULL;
}

static void stream_client_mtu(unsigned mtu)
{
	struct sn_error err;
	char spec[200];
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	snprintf(spec, sizeof(spec), "stream,listen=unix:%s,name=s,mtu=%u", sock_path, mtu);
	ck_assert_msg(sn_switch_add_port(sw, spec, NULL, 0, &err) == 0, "%s", err.msg);
	client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(client, 0);
	big_buffers(client);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	ck_assert_int_eq(connect(client, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert(run_until(client_attached, NULL, 5));
}

static void stream_client(void)
{
	stream_client_mtu(1500);
}

static void make_frame(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint32_t seq)
{
	memset(f, 0, FRAME_LEN);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	sn_put_be16(f + 12, 0x88b5); /* local experimental ethertype */
	sn_put_be32(f + 14, seq);
}

static void client_send(const uint8_t *frame, uint32_t len)
{
	uint8_t buf[4 + SN_FRAME_MAX];

	sn_put_be32(buf, len);
	memcpy(buf + 4, frame, len);
	ck_assert_int_eq(send(client, buf, 4 + len, MSG_NOSIGNAL), (ssize_t)(4 + len));
}

struct port_look {
	const char *name;
	struct sn_port_info info;
	char peer[512];
	bool found;
};

static int look_cb(const struct sn_port_info *info, void *ctx)
{
	struct port_look *l = ctx;

	if (strcmp(info->name, l->name))
		return 0;
	l->info = *info;
	snprintf(l->peer, sizeof(l->peer), "%s", info->peer);
	l->found = true;
	return 1;
}

static struct port_look look(const char *name)
{
	struct port_look l = {.name = name};

	sn_switch_foreach_port(sw, look_cb, &l);
	ck_assert_msg(l.found, "no port %s", name);
	return l;
}

/* ---- frames both ways ---- */

static bool peer_readable(void *ctx)
{
	struct pollfd p = {peer[1], POLLIN, 0};

	return poll(&p, 1, 0) == 1;
}

struct stream_rx {
	uint8_t buf[1 << 20];
	size_t len;
	size_t want;
};

static bool stream_has(void *ctx)
{
	struct stream_rx *rx = ctx;
	ssize_t n;

	while ((n = recv(client, rx->buf + rx->len, sizeof(rx->buf) - rx->len, MSG_DONTWAIT)) > 0)
		rx->len += (size_t)n;
	return rx->len >= rx->want;
}

START_TEST(frames_both_ways)
{
	uint8_t f[FRAME_LEN], got[2048];
	struct stream_rx *rx = calloc(1, sizeof(*rx));
	struct port_look l;
	ssize_t n;

	vmnet_ok("vmnet,mode=shared,name=vm0");
	stream_client();

	/* stream -> vmnet: a broadcast from A floods to the vmnet interface */
	make_frame(f, bcast, mac_a, 1);
	client_send(f, FRAME_LEN);
	ck_assert(run_until(peer_readable, NULL, 5));
	n = recv(peer[1], got, sizeof(got), 0);
	ck_assert_int_eq(n, FRAME_LEN);
	ck_assert_mem_eq(got, f, FRAME_LEN);

	/* vmnet -> stream: A is known behind the stream port now, so this is unicast */
	make_frame(f, mac_a, mac_b, 2);
	ck_assert_int_eq(send(peer[1], f, FRAME_LEN, 0), FRAME_LEN);
	rx->want = 4 + FRAME_LEN;
	ck_assert(run_until(stream_has, rx, 5));
	ck_assert_uint_eq(sn_get_be32(rx->buf), FRAME_LEN);
	ck_assert_mem_eq(rx->buf + 4, f, FRAME_LEN);

	l = look("vm0");
	ck_assert_str_eq(l.info.kind, "vmnet");
	ck_assert_uint_eq(l.info.mtu, 1500);
	ck_assert_uint_eq(l.info.stats.rx_frames, 1);
	ck_assert_uint_eq(l.info.stats.tx_frames, 1);
	ck_assert_msg(strstr(l.peer, "vmnet shared mac=5a:94:ef:00:00:01"), "%s", l.peer);
	ck_assert_msg(strstr(l.peer, "read_errors=0 write_errors=0 last_error=none"), "%s", l.peer);
	{
		struct sn_switch_stats ss;

		sn_switch_get_stats(sw, &ss);
		ck_assert_uint_eq(ss.unicast, 1);
	}
	free(rx);
}
END_TEST

/* vmnet with offload=on hands over a 9000-byte TCP frame with its checksums unfinished and
 * no header to say so: the stream client (plain frames) gets MTU-sized segments whose
 * checksums verify, with the payload whole. */
static uint32_t csum_sum(const uint8_t *p, uint32_t len, uint32_t s)
{
	for (uint32_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

START_TEST(offload_large_tcp_from_vmnet)
{
	enum { PAYLOAD = 9000, HDRS = 14 + 20 + 20 };
	static uint8_t f[HDRS + PAYLOAD];
	struct stream_rx *rx = calloc(1, sizeof(*rx));
	struct sn_vmnet_standin_conf conf;
	uint32_t at = 0, got_payload = 0, nseg = 0;

	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	conf.max_packet_size = 65536;
	sn_vmnet_standin_configure(&conf);
	vmnet_ok("vmnet,offload=on,name=vm0");
	stream_client();
	make_frame(f, bcast, mac_a, 1);
	client_send(f, FRAME_LEN); /* A behind the stream port */
	ck_assert(run_until(peer_readable, NULL, 5));
	recv(peer[1], rx->buf, sizeof(rx->buf), 0);

	memset(f, 0, sizeof(f));
	memcpy(f, mac_a, 6);
	memcpy(f + 6, mac_b, 6);
	sn_put_be16(f + 12, 0x0800);
	f[14] = 0x45;
	sn_put_be16(f + 16, 20 + 20 + PAYLOAD);
	f[22] = 64;
	f[23] = 6;
	memcpy(f + 26, (uint8_t[]){192, 168, 105, 1, 192, 168, 105, 2}, 8);
	sn_put_be16(f + 34, 5201);
	sn_put_be16(f + 36, 40000);
	sn_put_be32(f + 38, 1000);
	f[46] = 5 << 4;
	f[47] = 0x18; /* ACK, PSH */
	for (uint32_t i = 0; i < PAYLOAD; i++)
		f[HDRS + i] = (uint8_t)(i * 7 + 3);
	/* both checksums left unfinished, as with vmnet's checksum offload */
	ck_assert_int_eq(send(peer[1], f, sizeof(f), 0), (ssize_t)sizeof(f));
	rx->want = 7 * 4 + sizeof(f) + 6 * HDRS;
	ck_assert(run_until(stream_has, rx, 5));
	while (at + 4 <= rx->len) {
		uint32_t len = sn_get_be32(rx->buf + at);
		const uint8_t *seg = rx->buf + at + 4;
		uint32_t l4len = len - 34, ps;

		ck_assert_uint_le(len, 1514);
		ck_assert_uint_eq(csum_sum(seg + 14, 20, 0), 0xffff);
		ps = csum_sum(seg + 26, 8, 0) + 6 + l4len;
		ck_assert_uint_eq(csum_sum(seg + 34, l4len, ps), 0xffff);
		ck_assert_uint_eq(sn_get_be32(seg + 38), 1000 + got_payload);
		ck_assert_mem_eq(seg + HDRS, f + HDRS + got_payload, len - HDRS);
		got_payload += len - HDRS;
		nseg++;
		at += 4 + len;
	}
	ck_assert_uint_eq(got_payload, PAYLOAD);
	ck_assert_uint_eq(nseg, 7);
	ck_assert_uint_eq(look("vm0").info.stats.drop_bad_offload, 0);
	free(rx);
}
END_TEST

/* ---- a burst while the loop is busy ---- */

#define BURST 5000

static void *burst_writer(void *arg)
{
	uint8_t f[FRAME_LEN];

	for (uint32_t i = 0; i < BURST; i++) {
		make_frame(f, bcast, mac_b, i);
		if (send(peer[1], f, FRAME_LEN, 0) != FRAME_LEN)
			abort();
	}
	return NULL;
}

static void busy_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	/* the loop is stuck in here while the stand-in thread keeps announcing packets */
	usleep(100 * 1000);
}

static bool stream_has_all(void *ctx)
{
	return stream_has(ctx);
}

static void burst_into_stream(unsigned read_max, unsigned inbox)
{
	struct stream_rx *rx = calloc(1, sizeof(*rx));
	struct sn_vmnet_standin_conf conf;
	struct sn_vmnet_standin_stats st;
	struct port_look l, s1;
	ev_timer busy;
	pthread_t th;
	bool ok;

	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	conf.read_max = read_max;
	conf.inbox = inbox;
	sn_vmnet_standin_configure(&conf);
	vmnet_ok("vmnet,mode=host,name=vm0");
	stream_client();

	ev_timer_init(&busy, busy_cb, 0, 0);
	ev_timer_start(loop, &busy);
	ck_assert_int_eq(pthread_create(&th, NULL, burst_writer, NULL), 0);
	ev_run(loop, EVRUN_ONCE); /* the busy timer: 100 ms of nothing but announcements */
	rx->want = (size_t)BURST * (4 + FRAME_LEN);
	ok = run_until(stream_has_all, rx, 30);
	pthread_join(th, NULL);
	l = look("vm0");
	s1 = look("s.1");
	ck_assert_msg(ok, "got %zu of %zu bytes; vm0 rx %llu no_buffer %llu, s.1 tx %llu txq_full %llu; %s",
		      rx->len, rx->want, (unsigned long long)l.info.stats.rx_frames,
		      (unsigned long long)l.info.stats.drop_no_buffer, (unsigned long long)s1.info.stats.tx_frames,
		      (unsigned long long)s1.info.stats.drop_txq_full, l.peer);
	ck_assert_uint_eq(rx->len, rx->want);
	/* every frame, in order */
	for (uint32_t i = 0; i < BURST; i++) {
		const uint8_t *r = rx->buf + (size_t)i * (4 + FRAME_LEN);

		ck_assert_uint_eq(sn_get_be32(r), FRAME_LEN);
		ck_assert_uint_eq(sn_get_be32(r + 4 + 14), i);
	}
	l = look("vm0");
	ck_assert_uint_eq(l.info.stats.rx_frames, BURST);
	ck_assert_uint_eq(l.info.stats.drop_no_buffer, 0);
	ck_assert_uint_eq(look("s.1").info.stats.drop_txq_full, 0);
	ck_assert_msg(strstr(l.peer, "read_errors=0"), "%s", l.peer);
	sn_vmnet_standin_get_stats(&st);
	ck_assert_uint_eq(st.limit_violations, 0);
	ck_assert_uint_gt(st.events, 0);
	ck_assert_uint_gt(st.max_read_count, 1); /* batched */
	ck_assert_uint_le(st.max_read_count, SN_MIN(read_max, SN_VMNET_BATCH_MAX));
	ck_assert_uint_le(st.max_read_bytes, SN_VMNET_BYTES_MAX);
	free(rx);
}

START_TEST(burst_while_busy)
{
	burst_into_stream(256, 1024);
}
END_TEST

START_TEST(burst_small_limits)
{
	/* a read limit under the 256 KB one, and a "kernel" that holds less than the burst */
	burst_into_stream(16, 300);
}
END_TEST

/* ---- egress batches ---- */

struct peer_count {
	unsigned want, got;
	bool bad;
};

static void *peer_reader(void *arg)
{
	struct peer_count *pc = arg;
	uint8_t buf[2048];

	while (pc->got < pc->want) {
		struct pollfd p = {peer[1], POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, 10000) != 1)
			break;
		n = recv(peer[1], buf, sizeof(buf), 0);
		if (n != FRAME_LEN || sn_get_be32(buf + 14) != pc->got)
			pc->bad = true;
		pc->got++;
	}
	return NULL;
}

static bool txq_empty_vm(void *ctx)
{
	struct port_look l = look("vm0");

	return l.info.stats.tx_frames + l.info.stats.drop_txq_full >= *(unsigned *)ctx;
}

START_TEST(egress_batches)
{
	struct sn_vmnet_standin_conf conf;
	struct sn_vmnet_standin_stats st;
	struct peer_count pc = {.want = 3000};
	unsigned total = 3000;
	uint8_t *buf = malloc((size_t)total * (4 + FRAME_LEN));
	struct port_look l;
	pthread_t th;

	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	conf.write_max = 64;
	sn_vmnet_standin_configure(&conf);
	vmnet_ok("vmnet,name=vm0");
	stream_client();
	ck_assert_int_eq(pthread_create(&th, NULL, peer_reader, &pc), 0);
	for (unsigned i = 0; i < total; i++) {
		sn_put_be32(buf + (size_t)i * (4 + FRAME_LEN), FRAME_LEN);
		make_frame(buf + (size_t)i * (4 + FRAME_LEN) + 4, bcast, mac_a, i);
	}
	/* all in one go: the stream port hands the switch big batches */
	{
		size_t off = 0, all = (size_t)total * (4 + FRAME_LEN);

		while (off < all) {
			ssize_t n = send(client, buf + off, all - off, MSG_NOSIGNAL);

			ck_assert_int_gt(n, 0);
			off += (size_t)n;
		}
	}
	ck_assert(run_until(txq_empty_vm, &total, 20));
	pthread_join(th, NULL);
	l = look("vm0");
	ck_assert_uint_eq(l.info.stats.drop_txq_full, 0);
	ck_assert_uint_eq(l.info.stats.tx_frames, total);
	ck_assert_uint_eq(pc.got, total);
	ck_assert(!pc.bad);
	sn_vmnet_standin_get_stats(&st);
	ck_assert_uint_eq(st.limit_violations, 0);
	ck_assert_uint_gt(st.max_write_count, 1);
	ck_assert_uint_le(st.max_write_count, 64);
	ck_assert_msg(strstr(l.peer, "batch=173/64"), "%s", l.peer);
	free(buf);
}
END_TEST

START_TEST(jumbo_limits)
{
	struct sn_vmnet_standin_conf conf;
	struct sn_vmnet_standin_stats st;
	struct stream_rx *rx = calloc(1, sizeof(*rx));
	uint8_t f[4014];
	struct port_look l;

	/* 4014-byte buffers: the 256 KB rule allows 65 per call, under the reported 256 */
	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	conf.mtu = 4000;
	conf.max_packet_size = 4014;
	sn_vmnet_standin_configure(&conf);
	vmnet_ok("vmnet,name=vm0");
	stream_client_mtu(4000);
	l = look("vm0");
	ck_assert_uint_eq(l.info.mtu, 4000);
	ck_assert_msg(strstr(l.peer, "max_packet=4014 batch=65/200"), "%s", l.peer);
	memset(f, 0x11, sizeof(f));
	memcpy(f, bcast, 6);
	memcpy(f + 6, mac_b, 6);
	for (int i = 0; i < 150; i++)
		ck_assert_int_eq(send(peer[1], f, sizeof(f), 0), (ssize_t)sizeof(f));
	rx->want = 150 * (4 + sizeof(f));
	ck_assert(run_until(stream_has, rx, 10));
	sn_vmnet_standin_get_stats(&st);
	ck_assert_uint_eq(st.limit_violations, 0);
	ck_assert_uint_le(st.max_read_count, 65);
	ck_assert_uint_le(st.max_read_bytes, SN_VMNET_BYTES_MAX);
	free(rx);
}
END_TEST

/* ---- callbacks racing with removal ---- */

START_TEST(remove_while_callbacks_fire)
{
	struct sn_vmnet_standin_conf conf;
	struct sn_vmnet_standin_stats st;
	uint8_t f[FRAME_LEN];

	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	conf.storm = true; /* the queue thread calls back without pause */
	sn_vmnet_standin_configure(&conf);
	make_frame(f, bcast, mac_b, 0);
	for (int i = 0; i < 150; i++) {
		struct sn_port *p = vmnet_ok("vmnet,name=vm0");

		ck_assert_ptr_nonnull(p);
		send(peer[1], f, FRAME_LEN, MSG_DONTWAIT);
		for (int k = 0; k < i % 4; k++)
			ev_run(loop, EVRUN_NOWAIT);
		if (i % 2)
			usleep(100);
		ck_assert_int_eq(sn_switch_del_port(sw, "vm0"), 0);
		ev_run(loop, EVRUN_NOWAIT); /* frees the port: a late callback would now hit freed memory */
	}
	sn_vmnet_standin_get_stats(&st);
	ck_assert_uint_gt(st.events, 150);
}
END_TEST

/* ---- start failures and every code ---- */

static void start_fails(uint32_t status, const char *needle)
{
	struct sn_vmnet_standin_conf conf;
	struct sn_port *p = NULL;
	struct sn_error err;
	int r;

	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	conf.start_status = status;
	sn_vmnet_standin_configure(&conf);
	r = add_vmnet("vmnet,mode=host,name=bad", &p, &err);
	ck_assert_int_eq(r, sn_vmnet_errno(status));
	ck_assert_int_lt(r, 0);
	ck_assert_msg(strstr(err.msg, needle), "'%s' lacks '%s'", err.msg, needle);
	ck_assert_msg(strstr(err.msg, "host mode"), "%s", err.msg);
	ck_assert_ptr_null(sn_switch_find_port(sw, "bad"));
}

START_TEST(start_failure_codes)
{
	static const struct {
		uint32_t code;
		const char *needle;
		int err;
	} cases[] = {
		{SN_VMNET_FAILURE, "VMNET_FAILURE (general failure); before macOS 26", -EIO},
		{SN_VMNET_MEM_FAILURE, "VMNET_MEM_FAILURE", -ENOMEM},
		{SN_VMNET_INVALID_ARGUMENT, "VMNET_INVALID_ARGUMENT (invalid argument)", -EINVAL},
		{SN_VMNET_SETUP_INCOMPLETE, "VMNET_SETUP_INCOMPLETE", -EAGAIN},
		{SN_VMNET_INVALID_ACCESS, "VMNET_INVALID_ACCESS (permission denied); before macOS 26 vmnet needs root",
		 -EACCES},
		{SN_VMNET_PACKET_TOO_BIG, "VMNET_PACKET_TOO_BIG", -EMSGSIZE},
		{SN_VMNET_BUFFER_EXHAUSTED, "VMNET_BUFFER_EXHAUSTED", -ENOBUFS},
		{SN_VMNET_TOO_MANY_PACKETS, "VMNET_TOO_MANY_PACKETS", -E2BIG},
		{SN_VMNET_SHARING_SERVICE_BUSY, "VMNET_SHARING_SERVICE_BUSY", -EBUSY},
		{SN_VMNET_NOT_AUTHORIZED, "VMNET_NOT_AUTHORIZED (not authorized); before macOS 26", -EPERM},
		{1234, "unknown vmnet_return_t 1234", -EPROTO},
		{0, "unknown vmnet_return_t 0", -EPROTO},
		{4294967295u, "unknown vmnet_return_t 4294967295", -EPROTO},
	};

	for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
		ck_assert_int_eq(sn_vmnet_errno(cases[i].code), cases[i].err);
		start_fails(cases[i].code, cases[i].needle);
	}
	ck_assert(run_until(no_instances, NULL, 5));
}
END_TEST

START_TEST(start_timeout)
{
	struct sn_vmnet_standin_conf conf;
	struct sn_port *p = NULL;
	struct sn_error err;
	double t0;
	int r;

	/* the completion comes, but only after the waiter gave up: the stand-in stops and frees
	 * the late interface by itself */
	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	conf.start_delay_ms = 1600;
	sn_vmnet_standin_configure(&conf);
	t0 = now_s();
	r = add_vmnet("vmnet,timeout=1,name=slow", &p, &err);
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert_double_ge(now_s() - t0, 0.9);
	ck_assert_msg(strstr(err.msg, "vmnet_start_interface (shared mode) did not complete within 1 s"), "%s",
		      err.msg);
	ck_assert_ptr_null(sn_switch_find_port(sw, "slow"));
	ck_assert(run_until(no_instances, NULL, 5));

	/* and a completion that never comes */
	conf.start_delay_ms = UINT32_MAX;
	sn_vmnet_standin_configure(&conf);
	r = add_vmnet("vmnet,timeout=1", &p, &err);
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert(run_until(no_instances, NULL, 5));

	/* vmnet_start_interface giving no interface at all */
	conf.start_delay_ms = 0;
	conf.start_null = true;
	sn_vmnet_standin_configure(&conf);
	r = add_vmnet("vmnet", &p, &err);
	ck_assert_int_eq(r, -EIO);
	ck_assert_msg(strstr(err.msg, "gave no interface"), "%s", err.msg);
}
END_TEST

START_TEST(stop_timeout)
{
	struct sn_vmnet_standin_conf conf;
	double t0;

	sn_vmnet_standin_conf_init(&conf);
	conf.peer_fd = peer[0];
	conf.stop_delay_ms = 1500;
	conf.storm = true;
	sn_vmnet_standin_configure(&conf);
	vmnet_ok("vmnet,timeout=1,name=vm0");
	ev_run(loop, EVRUN_NOWAIT);
	t0 = now_s();
	ck_assert_int_eq(sn_switch_del_port(sw, "vm0"), 0);
	ck_assert_double_ge(now_s() - t0, 0.9);
	ev_run(loop, EVRUN_NOWAIT); /* the port is freed; the interface is not yet */
	ck_assert(!no_instances(NULL));
	ck_assert(run_until(no_instances, NULL, 5));
}
END_TEST

/* ---- errors while running ---- */

static bool vm_rx(void *ctx)
{
	return look("vm0").info.stats.rx_frames >= *(unsigned *)ctx;
}

static bool vm_read_errors(void *ctx)
{
	return strstr(look("vm0").peer, "read_errors=1") != NULL;
}

static bool vm_tx_dropped(void *ctx)
{
	return look("vm0").info.stats.drop_txq_full >= 1;
}

START_TEST(runtime_errors)
{
	uint8_t f[FRAME_LEN];
	struct port_look l;
	unsigned one = 1, two = 2;

	vmnet_ok("vmnet,name=vm0");
	stream_client();
	ev_run(loop, EVRUN_NOWAIT);

	/* a failing read is counted and shown; the packet it left behind is fetched by a retry,
	 * with no second announcement */
	sn_vmnet_standin_fail_next(false, SN_VMNET_BUFFER_EXHAUSTED);
	make_frame(f, bcast, mac_b, 1);
	ck_assert_int_eq(send(peer[1], f, FRAME_LEN, 0), FRAME_LEN);
	ck_assert(run_until(vm_read_errors, NULL, 5));
	l = look("vm0");
	ck_assert_msg(strstr(l.peer, "last_error=VMNET_BUFFER_EXHAUSTED (kernel buffers exhausted)"), "%s", l.peer);
	ck_assert(run_until(vm_rx, &one, 5));
	make_frame(f, bcast, mac_b, 2);
	ck_assert_int_eq(send(peer[1], f, FRAME_LEN, 0), FRAME_LEN);
	ck_assert(run_until(vm_rx, &two, 5));

	/* a failing write drops its batch, counted, with an unknown code kept as a number */
	sn_vmnet_standin_fail_next(true, 4321);
	make_frame(f, bcast, mac_a, 3);
	client_send(f, FRAME_LEN);
	ck_assert(run_until(vm_tx_dropped, NULL, 5));
	l = look("vm0");
	ck_assert_msg(strstr(l.peer, "write_errors=1 last_error=unknown vmnet_return_t 4321"), "%s", l.peer);
	ck_assert_uint_eq(l.info.stats.drop_txq_full, 1);
	ck_assert_uint_eq(l.info.stats.tx_frames, 0);
	/* and the next frame goes out */
	make_frame(f, bcast, mac_a, 4);
	client_send(f, FRAME_LEN);
	ck_assert(run_until(peer_readable, NULL, 5));
	ck_assert_int_eq(recv(peer[1], f, sizeof(f), 0), FRAME_LEN);
	ck_assert_uint_eq(sn_get_be32(f + 14), 4);
}
END_TEST

/* ---- the decoder ---- */

START_TEST(decode_codes)
{
	static const char *const names[] = {
		"VMNET_SUCCESS", "VMNET_FAILURE", "VMNET_MEM_FAILURE", "VMNET_INVALID_ARGUMENT",
		"VMNET_SETUP_INCOMPLETE", "VMNET_INVALID_ACCESS", "VMNET_PACKET_TOO_BIG", "VMNET_BUFFER_EXHAUSTED",
		"VMNET_TOO_MANY_PACKETS", "VMNET_SHARING_SERVICE_BUSY", "VMNET_NOT_AUTHORIZED",
	};
	char buf[96];

	for (uint32_t i = 0; i < SN_ARRAY_SIZE(names); i++) {
		ck_assert_str_eq(sn_vmnet_status_name(1000 + i), names[i]);
		ck_assert_msg(!strncmp(sn_vmnet_strstatus(1000 + i, buf, sizeof(buf)), names[i], strlen(names[i])),
			      "%s", buf);
	}
	ck_assert_ptr_null(sn_vmnet_status_name(999));
	ck_assert_ptr_null(sn_vmnet_status_name(1011));
	ck_assert_str_eq(sn_vmnet_strstatus(1011, buf, sizeof(buf)), "unknown vmnet_return_t 1011");
	ck_assert_str_eq(sn_vmnet_strstatus(1234, buf, sizeof(buf)), "unknown vmnet_return_t 1234");
	ck_assert_int_eq(sn_vmnet_errno(SN_VMNET_SUCCESS), 0);
}
END_TEST

/* ---- the SPEC ---- */

START_TEST(spec_errors)
{
	static const struct {
		const char *spec, *needle;
	} cases[] = {
		{"vmnet,mode=nat", "bad value 'nat' for key 'mode'"},
		{"vmnet,mode=bridged", "bridged mode needs 'iface'"},
		{"vmnet,mode=shared,iface=en0", "'iface' is for bridged mode only"},
		{"vmnet,mode=bridged,iface=averyveryverylongname", "bad value 'averyveryverylongname' for key 'iface'"},
		{"vmnet,start=192.168.105.1", "go together"},
		{"vmnet,start=192.168.105.1,end=192.168.105.254,mask=255.0.255.0", "not a contiguous netmask"},
		{"vmnet,start=192.168.105.9,end=192.168.105.2,mask=255.255.255.0", "not an ordered range"},
		{"vmnet,start=192.168.105.1,end=192.168.106.2,mask=255.255.255.0", "not an ordered range"},
		{"vmnet,start=192.168.105,end=192.168.105.2,mask=255.255.255.0", "bad value '192.168.105' for key 'start'"},
		{"vmnet,mode=bridged,iface=en0,start=10.0.0.1,end=10.0.0.9,mask=255.255.255.0", "for shared and host mode"},
		{"vmnet,interface-id=not-a-uuid", "for key 'interface-id': want a UUID"},
		{"vmnet,interface-id=7A5AF873-9C62-4E91-8863-AB14D5AA193", "want a UUID"},
		{"vmnet,nat66-prefix=fd00::/64", "for key 'nat66-prefix'"},
		{"vmnet,mode=host,nat66-prefix=fd00::", "shared mode only"},
		{"vmnet,isolate=maybe", "isolate"},
		{"vmnet,offload=perhaps", "offload"},
		{"vmnet,timeout=0", "timeout"},
		{"vmnet,mtu=9000", "key 'mtu' does not apply"},
		{"vmnet,colour=blue", "colour"},
	};
	struct sn_vmnet_standin_stats st;

	sn_vmnet_standin_reset_stats();
	for (size_t i = 0; i < SN_ARRAY_SIZE(cases); i++) {
		struct sn_port *p = NULL;
		struct sn_error err;
		int r = add_vmnet(cases[i].spec, &p, &err);

		ck_assert_msg(r == -EINVAL, "%s: %d", cases[i].spec, r);
		ck_assert_msg(strstr(err.msg, cases[i].needle), "%s: '%s' lacks '%s'", cases[i].spec, err.msg,
			      cases[i].needle);
	}
	sn_vmnet_standin_get_stats(&st);
	ck_assert_uint_eq(st.live, 0); /* nothing was started for a bad SPEC */
}
END_TEST

START_TEST(spec_params)
{
	struct sn_vmnet_params p;
	char store[5][64];
	static const uint8_t uuid[16] = {0x7a, 0x5a, 0xf8, 0x73, 0x9c, 0x62, 0x4e, 0x91,
					 0x88, 0x63, 0xab, 0x14, 0xd5, 0xaa, 0x19, 0x3e};

	vmnet_ok("vmnet,mode=shared,start=192.168.105.1,end=192.168.105.254,mask=255.255.255.0,isolate=on,"
		 "interface-id=7A5AF873-9C62-4E91-8863-AB14D5AA193E,nat66-prefix=fd00:1::,timeout=3,name=a");
	sn_vmnet_standin_last_params(&p, store);
	ck_assert_int_eq(p.mode, 1001);
	ck_assert_ptr_null(p.iface);
	ck_assert_str_eq(p.start_addr, "192.168.105.1");
	ck_assert_str_eq(p.end_addr, "192.168.105.254");
	ck_assert_str_eq(p.subnet_mask, "255.255.255.0");
	ck_assert_str_eq(p.nat66_prefix, "fd00:1::");
	ck_assert(p.isolate);
	ck_assert(p.has_uuid);
	ck_assert_mem_eq(p.uuid, uuid, 16);
	ck_assert_double_eq(p.timeout, 3);

	vmnet_ok("vmnet,mode=bridged,iface=en0,name=b");
	sn_vmnet_standin_last_params(&p, store);
	ck_assert_int_eq(p.mode, 1002);
	ck_assert_str_eq(p.iface, "en0");
	ck_assert_ptr_null(p.start_addr);
	ck_assert(!p.isolate);
	ck_assert(!p.has_uuid);
	ck_assert_double_eq(p.timeout, 10);

	vmnet_ok("vmnet,mode=host,name=c");
	sn_vmnet_standin_last_params(&p, store);
	ck_assert_int_eq(p.mode, 1000);

	vmnet_ok("vmnet,name=d");
	sn_vmnet_standin_last_params(&p, store);
	ck_assert_int_eq(p.mode, 1001); /* shared is the default */
	ck_assert(!p.offload);
	ck_assert_uint_eq(sn_switch_find_port(sw, "d")->offload_tx, 0);

	vmnet_ok("vmnet,offload=on,name=e");
	sn_vmnet_standin_last_params(&p, store);
	ck_assert(p.offload);
	ck_assert_uint_eq(sn_switch_find_port(sw, "e")->offload_tx, SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO6);
	ck_assert_uint_eq(sn_switch_find_port(sw, "e")->offload_rx, SN_OFFLOAD_CSUM | SN_OFFLOAD_TSO4 | SN_OFFLOAD_TSO6);
	ck_assert_int_eq(sn_switch_del_port(sw, "a"), 0);
	ck_assert_int_eq(sn_switch_del_port(sw, "b"), 0);
	/* c and d go with the switch */
}
END_TEST

static Suite *vmnet_suite(void)
{
	Suite *s = suite_create("vmnet");
	TCase *tc;

#define ADD_F(name, fn, secs, fixture)                                                                     \
	tc = tcase_create(name);                                                                           \
	tcase_add_checked_fixture(tc, fixture, teardown);                                                  \
	tcase_set_timeout(tc, secs);                                                                       \
	tcase_add_test(tc, fn);                                                                            \
	suite_add_tcase(s, tc)
#define ADD(name, fn, secs) ADD_F(name, fn, secs, setup)

	ADD("decode", decode_codes, 10);
	ADD("spec-errors", spec_errors, 10);
	ADD("spec-params", spec_params, 10);
	ADD("both-ways", frames_both_ways, 20);
	ADD("offload", offload_large_tcp_from_vmnet, 20);
	ADD_F("burst", burst_while_busy, 60, setup_big);
	ADD_F("burst-small-limits", burst_small_limits, 60, setup_big);
	ADD_F("egress", egress_batches, 60, setup_big);
	ADD("jumbo", jumbo_limits, 30);
	ADD("remove-race", remove_while_callbacks_fire, 120);
	ADD("start-codes", start_failure_codes, 30);
	ADD("start-timeout", start_timeout, 30);
	ADD("stop-timeout", stop_timeout, 30);
	ADD("runtime-errors", runtime_errors, 30);
#undef ADD
#undef ADD_F
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vmnet_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
