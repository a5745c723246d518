/* bench-virtio.c - forwarding rate between two in-process virtio-net ports, A -> B.
 *
 * The switch runs on the main thread in its libev loop, exactly as an embedding VMM would run
 * it; a second thread plays both guests' drivers (vmm-sim): it keeps A's TX ring full, kicks
 * when the device asks, and reaps and re-posts B's RX buffers, polling without interrupts the
 * way a busy NAPI driver does. B sends one frame first so A's frames are known unicast. The
 * rate is what B's driver received per second of wall time.
 *
 * usage: bench-virtio [SECONDS per size] [--json]   (default 3) */
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <squibnet/squibnet.h>

#include "vmm-sim.h"

#define BIT(b) (1ull << (b))

struct bench {
	struct vmm_sim a, b;
	uint32_t size;
	atomic_bool stop;
	atomic_bool started;
	uint64_t received, sent;
	double t0, t1;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void frame(uint8_t *f, uint8_t dst, uint8_t src, uint32_t len)
{
	memset(f, 0, len);
	f[0] = 0x52, f[1] = 0x54, f[5] = dst;
	f[6] = 0x52, f[7] = 0x54, f[11] = src;
	f[12] = 0x88, f[13] = 0xb5;
}

static void *driver(void *arg)
{
	struct bench *bn = arg;
	uint8_t f[2048], g[4096];
	double warm_end;
	bool counting = false;

	frame(f, 1, 2, 60);
	vmm_sim_rx_post(&bn->a);
	vmm_sim_rx_post(&bn->b);
	vmm_sim_send(&bn->b, f, 60); /* teaches the switch where B is */
	frame(f, 2, 1, bn->size);
	warm_end = now() + 0.3;
	while (!atomic_load(&bn->stop)) {
		int n;

		vmm_sim_tx_reclaim(&bn->a);
		while (vmm_sim_tx_queue(&bn->a, f, bn->size) == 1)
			bn->sent++;
		vmm_sim_tx_kick(&bn->a);
		while ((n = vmm_sim_recv(&bn->b, g, sizeof(g))) > 0)
			if (counting)
				bn->received++;
		vmm_sim_rx_post(&bn->b);
		if (!counting && now() >= warm_end) {
			counting = true;
			bn->t0 = now();
		}
	}
	bn->t1 = now();
	return NULL;
}

static void stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static int run(uint32_t size, double seconds, double *ret_mpps)
{
	struct vmm_sim_opts o = {
		.features = BIT(SN_VIRTIO_F_VERSION_1) | BIT(SN_VIRTIO_F_EVENT_IDX) | BIT(SN_VIRTIO_NET_F_MRG_RXBUF),
		.qsize = 1024,
	};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sn_switch *sw;
	struct bench *bn = calloc(1, sizeof(*bn));
	struct sn_virtio_net_config ca = {.name = "a"}, cb = {.name = "b"};
	struct sn_virtio_mem_region ra, rb;
	struct sn_virtio_port *pa, *pb;
	struct sn_error err;
	pthread_t th;
	ev_timer t;

	if (!loop || !bn || sn_switch_create(loop, NULL, &sw) < 0)
		return -1;
	bn->size = size;
	if (vmm_sim_init(&bn->a, &o) < 0 || vmm_sim_init(&bn->b, &o) < 0)
		return -1;
	vmm_sim_port_config(&bn->a, &ca, &ra);
	vmm_sim_port_config(&bn->b, &cb, &rb);
	if (sn_virtio_port_create(sw, &ca, &pa, &err) < 0 || sn_virtio_port_create(sw, &cb, &pb, &err) < 0) {
		fprintf(stderr, "bench-virtio: %s\n", err.msg);
		return -1;
	}
	ev_timer_init(&t, stop_cb, seconds + 0.3, 0);
	ev_timer_start(loop, &t);
	pthread_create(&th, NULL, driver, bn);
	ev_run(loop, 0);
	atomic_store(&bn->stop, true);
	pthread_join(th, NULL);
	*ret_mpps = bn->received / (bn->t1 - bn->t0) / 1e6;
	sn_switch_destroy(sw);
	ev_loop_destroy(loop);
	vmm_sim_finish(&bn->a);
	vmm_sim_finish(&bn->b);
	free(bn);
	return 0;
}

int main(int argc, char **argv)
{
	static const uint32_t sizes[] = {60, 1514};
	double seconds = 3, mpps[2];
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--help")) {
			printf("usage: bench-virtio [SECONDS] [--json]\n");
			return 0;
		} else
			seconds = atof(argv[i]);
	}
	if (seconds <= 0)
		seconds = 3;
	for (int k = 0; k < 2; k++) {
		if (run(sizes[k], seconds, &mpps[k]) < 0) {
			fprintf(stderr, "bench-virtio: set-up failed\n");
			return 1;
		}
		if (!json)
			printf("virtio A->B %4u B: %6.2f Mpps %7.2f Gbit/s\n", sizes[k], mpps[k],
			       mpps[k] * sizes[k] * 8 / 1e3);
	}
	if (json)
		printf("{\"virtio_60_mpps\": %.3f, \"virtio_1514_mpps\": %.3f, \"virtio_1514_gbps\": %.3f}\n", mpps[0],
		       mpps[1], mpps[1] * 1514 * 8 / 1e3);
	return 0;
}
