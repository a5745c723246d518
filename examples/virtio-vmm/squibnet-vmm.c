/* squibnet-vmm - an example VMM that embeds squibnet and attaches simulated virtio-net guests
 * to it in-process.
 *
 * Each --guest gets guest memory in a memfd, a virtio-net queue pair laid out in it and
 * eventfds for kicks and calls (vmm-sim.c), and its "guest" is a tiny IPv4 stack that answers
 * ARP and ICMP echo, woken by the RX call eventfd in the same libev loop. --port adds any SPEC
 * port to the embedded switch, so stations (squibnet-ping, QEMU) can reach the guests:
 *
 *   squibnet-vmm --port stream,listen=unix:/tmp/sw.sock --guest 10.0.0.2/24 --guest 10.0.0.3/24
 *   squibnet-ping --connect unix:/tmp/sw.sock --ip 10.0.0.1/24 --ping 10.0.0.2
 *
 * Prints "ready" on stdout once every port is up; runs until SIGINT/SIGTERM or --seconds. */
#include <arpa/inet.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <squibnet/squibnet.h>

#include "vmm-sim.h"

#define PROG "squibnet-vmm"
#define MAX_GUESTS 16
#define MAX_PORTS 16
#define BIT(b) (1ull << (b))

struct guest {
	struct vmm_sim sim;
	struct sn_virtio_port *port;
	uint8_t mac[6];
	uint32_t ip; /* network order */
	ev_io call;
	uint64_t answered;
};

static uint16_t csum(const uint8_t *p, size_t len)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)(p[len - 1] << 8);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Builds the answer to @f in @out; returns its length, 0 when @f needs none. */
static size_t answer(struct guest *g, const uint8_t *f, size_t len, uint8_t *out)
{
	uint16_t type;

	if (len < 14)
		return 0;
	type = (uint16_t)(f[12] << 8 | f[13]);
	if (type == 0x0806 && len >= 42) {
		const uint8_t *a = f + 14;

		if (a[7] != 1 || memcmp(a + 24, &g->ip, 4))
			return 0; /* not a request for us */
		memset(out, 0, 60);
		memcpy(out, a + 8, 6);
		memcpy(out + 6, g->mac, 6);
		put16(out + 12, 0x0806);
		memcpy(out + 14, a, 6); /* htype, ptype, hlen, plen */
		put16(out + 20, 2);
		memcpy(out + 22, g->mac, 6);
		memcpy(out + 28, &g->ip, 4);
		memcpy(out + 32, a + 8, 10);
		return 60;
	}
	if (type == 0x0800 && len >= 34) {
		const uint8_t *ip = f + 14;
		size_t ihl = (size_t)(ip[0] & 15) * 4, tot = (size_t)(ip[2] << 8 | ip[3]);
		uint8_t *oip = out + 14, *icmp;

		if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl + 8 || 14 + tot > len || ip[9] != 1 ||
		    memcmp(ip + 16, &g->ip, 4) || ip[ihl] != 8)
			return 0;
		memcpy(out, f + 6, 6);
		memcpy(out + 6, g->mac, 6);
		put16(out + 12, 0x0800);
		memcpy(oip, ip, tot);
		memcpy(oip + 12, ip + 16, 4);
		memcpy(oip + 16, ip + 12, 4);
		oip[8] = 64;
		put16(oip + 10, 0);
		put16(oip + 10, csum(oip, ihl));
		icmp = oip + ihl;
		icmp[0] = 0;
		put16(icmp + 2, 0);
		put16(icmp + 2, csum(icmp, tot - ihl));
		return 14 + tot < 60 ? 60 : 14 + tot;
	}
	return 0;
}

static void call_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct guest *g = w->data;
	static uint8_t in[65536], out[65536];
	int n;

	vmm_sim_calls(&g->sim, SN_VIRTIO_RX);
	vmm_sim_calls(&g->sim, SN_VIRTIO_TX);
	vmm_sim_tx_reclaim(&g->sim);
	while ((n = vmm_sim_recv(&g->sim, in, sizeof(in))) > 0) {
		size_t r = answer(g, in, (size_t)n, out);

		if (r && vmm_sim_send(&g->sim, out, (uint32_t)r) == 1)
			g->answered++;
	}
	vmm_sim_rx_post(&g->sim);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--port SPEC]... --guest A.B.C.D[/P] [--guest ...] [--mrg] [--legacy]\n"
		"                    [--seconds N] [-v] [--help] [--version]\n"
		"An example VMM: embeds a squibnet switch and attaches simulated virtio-net guests\n"
		"in-process; each guest answers ARP and ICMP echo for its address.\n"
		"  --port SPEC     a switch port, as the squibnet daemon takes it\n"
		"  --guest IP      a guest with this address (MAC 52:54:00 + the last three bytes)\n"
		"  --mrg           negotiate MRG_RXBUF (with 512-byte RX buffers, so frames merge)\n"
		"  --legacy        no VERSION_1: the 10-byte header\n"
		"  --seconds N     exit after N seconds (default: run until a signal)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'}, {"guest", required_argument, NULL, 'g'},
		{"mrg", no_argument, NULL, 'm'},        {"legacy", no_argument, NULL, 'l'},
		{"seconds", required_argument, NULL, 's'}, {"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},       {"version", no_argument, NULL, 'V'},
		{0},
	};
	static struct guest guests[MAX_GUESTS];
	const char *ports[MAX_PORTS];
	unsigned nports = 0, nguests = 0;
	bool mrg = false, legacy = false;
	double seconds = 0;
	struct ev_loop *loop = EV_DEFAULT;
	struct sn_switch *sw;
	struct sn_error err;
	ev_signal sigint, sigterm;
	ev_timer timer;
	int c;

	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (nports == MAX_PORTS)
				return fprintf(stderr, PROG ": too many --port\n"), 2;
			ports[nports++] = optarg;
			break;
		case 'g': {
			char buf[32], *slash;
			struct guest *g;
			uint32_t h;

			if (nguests == MAX_GUESTS)
				return fprintf(stderr, PROG ": too many --guest\n"), 2;
			g = &guests[nguests];
			snprintf(buf, sizeof(buf), "%s", optarg);
			if ((slash = strchr(buf, '/')))
				*slash = '\0';
			if (inet_pton(AF_INET, buf, &g->ip) != 1)
				return fprintf(stderr, PROG ": --guest: '%s' is not an IPv4 address\n", optarg), 2;
			h = ntohl(g->ip);
			g->mac[0] = 0x52, g->mac[1] = 0x54, g->mac[2] = 0;
			g->mac[3] = (uint8_t)(h >> 16), g->mac[4] = (uint8_t)(h >> 8), g->mac[5] = (uint8_t)h;
			nguests++;
			break;
		}
		case 'm':
			mrg = true;
			break;
		case 'l':
			legacy = true;
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'v':
			sn_log_set_handler(sn_log_stderr, NULL);
			sn_log_set_level(SN_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf(PROG " %s\n", sn_version());
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || nguests == 0) {
		usage(stderr);
		return 2;
	}
	if (sn_switch_create(loop, NULL, &sw) < 0)
		return fprintf(stderr, PROG ": cannot create the switch\n"), 1;
	for (unsigned i = 0; i < nports; i++) {
		if (sn_switch_add_port(sw, ports[i], NULL, 0, &err) < 0) {
			fprintf(stderr, PROG ": --port %s: %s\n", ports[i], err.msg);
			return 1;
		}
	}
	for (unsigned i = 0; i < nguests; i++) {
		struct guest *g = &guests[i];
		struct vmm_sim_opts o = {
			.features = (legacy ? 0 : BIT(SN_VIRTIO_F_VERSION_1)) | BIT(SN_VIRTIO_F_EVENT_IDX) |
				    (mrg ? BIT(SN_VIRTIO_NET_F_MRG_RXBUF) : 0) | BIT(SN_VIRTIO_F_INDIRECT_DESC),
			.rx_buf_size = mrg ? 512 : 0,
			.tx_buf_size = 65536 + 12,
			.qsize = 256,
			.tx_indirect = i % 2 == 1, /* odd guests send through indirect tables */
		};
		struct sn_virtio_net_config cfg = {0};
		struct sn_virtio_mem_region region;
		char name[32];
		int r;

		r = vmm_sim_init(&g->sim, &o);
		if (r < 0)
			return fprintf(stderr, PROG ": guest memory: %s\n", strerror(-r)), 1;
		snprintf(name, sizeof(name), "guest%u", i);
		vmm_sim_port_config(&g->sim, &cfg, &region);
		cfg.name = name;
		if (sn_virtio_port_create(sw, &cfg, &g->port, &err) < 0) {
			fprintf(stderr, PROG ": %s: %s\n", name, err.msg);
			return 1;
		}
		ev_io_init(&g->call, call_cb, g->sim.q[SN_VIRTIO_RX].call_fd, EV_READ);
		g->call.data = g;
		ev_io_start(loop, &g->call);
		vmm_sim_rx_post(&g->sim);
	}
	ev_signal_init(&sigint, signal_cb, SIGINT);
	ev_signal_start(loop, &sigint);
	ev_signal_init(&sigterm, signal_cb, SIGTERM);
	ev_signal_start(loop, &sigterm);
	if (seconds > 0) {
		ev_timer_init(&timer, timeout_cb, seconds, 0);
		ev_timer_start(loop, &timer);
	}
	printf("ready\n");
	fflush(stdout);
	ev_run(loop, 0);
	for (unsigned i = 0; i < nguests; i++) {
		const char *why = NULL;

		if (sn_virtio_port_broken(guests[i].port, SN_VIRTIO_TX, &why) ||
		    sn_virtio_port_broken(guests[i].port, SN_VIRTIO_RX, &why))
			fprintf(stderr, PROG ": guest%u: queue broken: %s\n", i, why);
		printf("guest%u answered %llu\n", i, (unsigned long long)guests[i].answered);
	}
	sn_switch_destroy(sw);
	for (unsigned i = 0; i < nguests; i++)
		vmm_sim_finish(&guests[i].sim);
	return 0;
}
