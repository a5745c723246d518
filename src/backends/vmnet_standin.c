/* vmnet_standin.c - a Linux stand-in for vmnet.framework, built only into the tests.
 *
 * It keeps the framework's contract as the port sees it, so that the port code the tests run
 * is the code macOS runs: every interface has a thread of its own playing the serial dispatch
 * queue, which delivers the start and stop completions (after a configurable delay, or never)
 * and the packets-available callbacks; read and write refuse batches over the interface's
 * limits with the framework's codes; packets come from and go to a real peer socket the test
 * holds the other end of. A bounded inbox plays the kernel's buffer: the thread moves packets
 * from the peer into it and fires one callback per arrival, never again for packets already
 * announced, so a port that stops draining early stalls here as it would on a Mac. Locks are
 * fine in this file: it is the "kernel" side. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vmnet.h"

#ifndef SN_VMNET_STANDIN
#error "vmnet_standin.c is the tests' stand-in: build it with -DSN_VMNET_STANDIN"
#endif

#define FOREVER UINT32_MAX

enum start_state { START_PENDING, START_DONE, START_ABANDONED };

struct sn_vmnet {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;      /* the loop thread waits here for completions and barriers */
	int bell[2];              /* wakes the queue thread out of poll() */
	int peer;
	struct sn_vmnet_standin_conf conf;
	unsigned refs;            /* loop side and queue thread */
	enum start_state start_state;
	uint32_t start_status;
	struct sn_vmnet_info info;
	bool stop_requested, stop_done;
	uint32_t stop_status;
	unsigned barrier_req, barrier_ack;
	bool quiet;               /* no more wake callbacks */
	sn_vmnet_wake_fn wake;
	void *wake_ctx;
	/* the inbox: a ring of packets already taken from the peer */
	uint8_t *slots;
	uint32_t *lens;
	uint32_t head, tail;
};

/* Global hooks and counters, shared by the test thread and every queue thread. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sn_vmnet_standin_conf g_conf = {.peer_fd = -1, .start_status = SN_VMNET_SUCCESS};
static bool g_conf_set;
static struct sn_vmnet_standin_stats g_stats;
static uint32_t g_fail_read, g_fail_write;
static struct sn_vmnet_params g_last;
static char g_last_store[5][64];

void sn_vmnet_standin_conf_init(struct sn_vmnet_standin_conf *conf)
{
	*conf = (struct sn_vmnet_standin_conf){
		.peer_fd = -1,
		.start_status = SN_VMNET_SUCCESS,
		.mac = {0x5a, 0x94, 0xef, 0x00, 0x00, 0x01},
		.mtu = 1500,
		.max_packet_size = 1514,
		.read_max = 256,
		.write_max = 256,
		.inbox = 1024,
	};
}

void sn_vmnet_standin_configure(const struct sn_vmnet_standin_conf *conf)
{
	pthread_mutex_lock(&g_mu);
	g_conf = *conf;
	g_conf_set = true;
	pthread_mutex_unlock(&g_mu);
}

void sn_vmnet_standin_fail_next(bool write, uint32_t status)
{
	pthread_mutex_lock(&g_mu);
	if (write)
		g_fail_write = status;
	else
		g_fail_read = status;
	pthread_mutex_unlock(&g_mu);
}

void sn_vmnet_standin_last_params(struct sn_vmnet_params *ret, char store[5][64])
{
	pthread_mutex_lock(&g_mu);
	*ret = g_last;
	memcpy(store, g_last_store, sizeof(g_last_store));
	ret->iface = g_last.iface ? store[0] : NULL;
	ret->start_addr = g_last.start_addr ? store[1] : NULL;
	ret->end_addr = g_last.end_addr ? store[2] : NULL;
	ret->subnet_mask = g_last.subnet_mask ? store[3] : NULL;
	ret->nat66_prefix = g_last.nat66_prefix ? store[4] : NULL;
	pthread_mutex_unlock(&g_mu);
}

void sn_vmnet_standin_get_stats(struct sn_vmnet_standin_stats *ret)
{
	pthread_mutex_lock(&g_mu);
	*ret = g_stats;
	pthread_mutex_unlock(&g_mu);
}

void sn_vmnet_standin_reset_stats(void)
{
	pthread_mutex_lock(&g_mu);
	g_stats = (struct sn_vmnet_standin_stats){.live = g_stats.live};
	pthread_mutex_unlock(&g_mu);
}

static void remember_params(const struct sn_vmnet_params *p)
{
	const char *s[5] = {p->iface, p->start_addr, p->end_addr, p->subnet_mask, p->nat66_prefix};

	g_last = *p;
	for (int i = 0; i < 5; i++) {
		g_last_store[i][0] = '\0';
		if (s[i])
			snprintf(g_last_store[i], sizeof(g_last_store[i]), "%s", s[i]);
	}
	g_last.iface = p->iface ? g_last_store[0] : NULL;
	g_last.start_addr = p->start_addr ? g_last_store[1] : NULL;
	g_last.end_addr = p->end_addr ? g_last_store[2] : NULL;
	g_last.subnet_mask = p->subnet_mask ? g_last_store[3] : NULL;
	g_last.nat66_prefix = p->nat66_prefix ? g_last_store[4] : NULL;
}

/* ---- lifetime ---- */

static void vm_free(struct sn_vmnet *vm)
{
	if (vm->peer >= 0)
		close(vm->peer);
	close(vm->bell[0]);
	close(vm->bell[1]);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->mu);
	free(vm->slots);
	free(vm->lens);
	free(vm);
	pthread_mutex_lock(&g_mu);
	g_stats.live--;
	pthread_mutex_unlock(&g_mu);
}

/* Drops one reference; called with vm->mu held, which it releases. */
static void vm_put_locked(struct sn_vmnet *vm)
{
	bool last = --vm->refs == 0;

	pthread_mutex_unlock(&vm->mu);
	if (last)
		vm_free(vm);
}

static void ring_bell(struct sn_vmnet *vm)
{
	char c = 1;

	/* a full pipe already holds a wake-up */
	if (write(vm->bell[1], &c, 1) < 0 && errno != EAGAIN)
		abort();
}

static struct timespec deadline_in(double seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)seconds;
	ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Sleeps @ms on the queue thread, vm->mu held; FOREVER sleeps until a stop is requested. */
static void queue_delay(struct sn_vmnet *vm, unsigned ms)
{
	struct timespec until = deadline_in(ms / 1000.0);

	if (ms == FOREVER) {
		while (!vm->stop_requested)
			pthread_cond_wait(&vm->cond, &vm->mu);
		return;
	}
	while (pthread_cond_timedwait(&vm->cond, &vm->mu, &until) != ETIMEDOUT)
		;
}

/* ---- the queue thread ---- */

static unsigned inbox_depth(const struct sn_vmnet *vm)
{
	return vm->tail - vm->head;
}

/* Moves what the peer has into the inbox; returns the number of packets moved. */
static unsigned take_from_peer(struct sn_vmnet *vm, uint8_t *tmp, bool *eof)
{
	unsigned moved = 0;

	for (;;) {
		ssize_t n;

		pthread_mutex_lock(&vm->mu);
		if (inbox_depth(vm) >= vm->conf.inbox) {
			pthread_mutex_unlock(&vm->mu);
			break;
		}
		pthread_mutex_unlock(&vm->mu);
		n = recv(vm->peer, tmp, vm->conf.max_packet_size + 1, MSG_DONTWAIT);
		if (n == 0) {
			*eof = true;
			break;
		}
		if (n < 0)
			break;
		if ((size_t)n > vm->conf.max_packet_size)
			continue; /* the framework never hands out more than max_packet_size */
		pthread_mutex_lock(&vm->mu);
		memcpy(vm->slots + (size_t)(vm->tail % vm->conf.inbox) * vm->conf.max_packet_size, tmp, (size_t)n);
		vm->lens[vm->tail % vm->conf.inbox] = (uint32_t)n;
		vm->tail++;
		pthread_mutex_unlock(&vm->mu);
		moved++;
	}
	return moved;
}

static void *queue_main(void *arg)
{
	struct sn_vmnet *vm = arg;
	uint8_t *tmp = malloc(vm->conf.max_packet_size + 1);
	bool eof = vm->peer < 0;

	pthread_mutex_lock(&vm->mu);
	/* the start completion */
	if (vm->conf.start_delay_ms)
		queue_delay(vm, vm->conf.start_delay_ms);
	if (vm->conf.start_delay_ms != FOREVER) {
		if (vm->start_state == START_PENDING) {
			vm->start_state = START_DONE;
			vm->start_status = vm->conf.start_status;
			vm->info = (struct sn_vmnet_info){
				.has_mac = true,
				.mtu = vm->conf.mtu,
				.max_packet_size = vm->conf.max_packet_size,
				.read_max = vm->conf.read_max,
				.write_max = vm->conf.write_max,
			};
			memcpy(vm->info.mac, vm->conf.mac, 6);
			pthread_cond_broadcast(&vm->cond);
		}
	}
	/* a failed start leaves nothing to stop */
	if (vm->conf.start_delay_ms == FOREVER || vm->conf.start_status != SN_VMNET_SUCCESS || vm->conf.start_null)
		goto out;

	for (;;) {
		struct pollfd pfd[2] = {{vm->bell[0], POLLIN, 0}, {eof ? -1 : vm->peer, POLLIN, 0}};
		bool want_peer, storm = vm->conf.storm;
		unsigned moved = 0, depth;
		sn_vmnet_wake_fn fn;
		void *ctx;
		char drain[64];

		if (vm->stop_requested) {
			if (vm->conf.stop_delay_ms)
				queue_delay(vm, vm->conf.stop_delay_ms);
			if (vm->conf.stop_delay_ms != FOREVER) {
				vm->stop_done = true;
				vm->stop_status = SN_VMNET_SUCCESS;
				pthread_cond_broadcast(&vm->cond);
			}
			break;
		}
		if (vm->barrier_ack != vm->barrier_req) {
			vm->barrier_ack = vm->barrier_req;
			pthread_cond_broadcast(&vm->cond);
			continue;
		}
		want_peer = !eof && inbox_depth(vm) < vm->conf.inbox;
		if (!want_peer)
			pfd[1].fd = -1;
		pthread_mutex_unlock(&vm->mu);

		if (poll(pfd, 2, storm ? 0 : -1) > 0) {
			if (pfd[0].revents)
				while (read(vm->bell[0], drain, sizeof(drain)) > 0)
					;
			if (pfd[1].revents)
				moved = take_from_peer(vm, tmp, &eof);
		}

		pthread_mutex_lock(&vm->mu);
		fn = vm->quiet ? NULL : vm->wake;
		ctx = vm->wake_ctx;
		depth = inbox_depth(vm);
		if (fn && (moved || storm) && vm->barrier_ack == vm->barrier_req && !vm->stop_requested) {
			/* called unlocked, as the framework calls it on its queue: a barrier or stop
			 * request waits for this thread to come back round */
			pthread_mutex_unlock(&vm->mu);
			fn(ctx, depth);
			pthread_mutex_lock(&g_mu);
			g_stats.events++;
			pthread_mutex_unlock(&g_mu);
			if (storm)
				sched_yield();
			pthread_mutex_lock(&vm->mu);
		}
	}
out:
	free(tmp);
	vm_put_locked(vm);
	return NULL;
}

/* ---- the API ---- */

int sn_vmnet_start(const struct sn_vmnet_params *p, struct sn_vmnet **ret_vm, struct sn_vmnet_info *ret_info,
		   uint32_t *ret_status)
{
	struct sn_vmnet *vm = calloc(1, sizeof(*vm));
	struct sn_vmnet_standin_conf conf;
	pthread_condattr_t ca;
	struct timespec until;
	int r = 0;

	*ret_status = SN_VMNET_SUCCESS;
	if (!vm)
		return -ENOMEM;
	pthread_mutex_lock(&g_mu);
	if (!g_conf_set)
		sn_vmnet_standin_conf_init(&g_conf);
	g_conf_set = true;
	conf = g_conf;
	remember_params(p);
	pthread_mutex_unlock(&g_mu);
	if (conf.inbox == 0)
		conf.inbox = 1;

	vm->conf = conf;
	vm->peer = conf.peer_fd >= 0 ? fcntl(conf.peer_fd, F_DUPFD_CLOEXEC, 0) : -1;
	vm->slots = malloc((size_t)conf.inbox * conf.max_packet_size);
	vm->lens = calloc(conf.inbox, sizeof(*vm->lens));
	if (!vm->slots || !vm->lens || pipe(vm->bell) < 0) {
		free(vm->slots);
		free(vm->lens);
		if (vm->peer >= 0)
			close(vm->peer);
		free(vm);
		return -ENOMEM;
	}
	for (int i = 0; i < 2; i++)
		fcntl(vm->bell[i], F_SETFL, O_NONBLOCK);
	pthread_mutex_init(&vm->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	vm->refs = 2;
	pthread_mutex_lock(&g_mu);
	g_stats.live++;
	pthread_mutex_unlock(&g_mu);
	if (pthread_create(&vm->thread, NULL, queue_main, vm) != 0) {
		vm->refs = 1;
		pthread_mutex_lock(&vm->mu);
		vm_put_locked(vm);
		return -ENOMEM;
	}
	pthread_detach(vm->thread);

	/* the completion arrives on the queue thread; wait for it, as on a dispatch semaphore */
	until = deadline_in(p->timeout);
	pthread_mutex_lock(&vm->mu);
	while (vm->start_state == START_PENDING)
		if (pthread_cond_timedwait(&vm->cond, &vm->mu, &until) == ETIMEDOUT)
			break;
	if (vm->start_state == START_PENDING) {
		/* give up; if it ever completes, the queue thread stops it and frees everything */
		vm->start_state = START_ABANDONED;
		vm->stop_requested = true;
		vm->quiet = true;
		pthread_cond_broadcast(&vm->cond);
		ring_bell(vm);
		vm_put_locked(vm);
		return -ETIMEDOUT;
	}
	if (vm->start_status != SN_VMNET_SUCCESS || conf.start_null) {
		*ret_status = vm->start_status;
		r = vm->start_status != SN_VMNET_SUCCESS ? sn_vmnet_errno(vm->start_status) : -EIO;
		vm_put_locked(vm);
		return r;
	}
	*ret_info = vm->info;
	pthread_mutex_unlock(&vm->mu);
	*ret_vm = vm;
	return 0;
}

uint32_t sn_vmnet_set_event_callback(struct sn_vmnet *vm, sn_vmnet_wake_fn fn, void *ctx)
{
	pthread_mutex_lock(&vm->mu);
	vm->wake = fn;
	vm->wake_ctx = ctx;
	pthread_mutex_unlock(&vm->mu);
	return SN_VMNET_SUCCESS;
}

int sn_vmnet_stop(struct sn_vmnet *vm, double timeout, uint32_t *ret_status)
{
	struct timespec until;
	unsigned ticket;
	int r = 0;

	if (ret_status)
		*ret_status = SN_VMNET_SUCCESS;
	if (!vm)
		return 0;
	/* quiesce: once the queue thread has come round to the barrier, no callback is running
	 * and none will start */
	pthread_mutex_lock(&vm->mu);
	vm->quiet = true;
	ticket = ++vm->barrier_req;
	ring_bell(vm);
	while ((int)(vm->barrier_ack - ticket) < 0)
		pthread_cond_wait(&vm->cond, &vm->mu);

	vm->stop_requested = true;
	pthread_cond_broadcast(&vm->cond);
	ring_bell(vm);
	until = deadline_in(timeout);
	while (!vm->stop_done)
		if (pthread_cond_timedwait(&vm->cond, &vm->mu, &until) == ETIMEDOUT)
			break;
	if (!vm->stop_done)
		r = -ETIMEDOUT;
	else if (vm->stop_status != SN_VMNET_SUCCESS) {
		r = sn_vmnet_errno(vm->stop_status);
		if (ret_status)
			*ret_status = vm->stop_status;
	}
	vm_put_locked(vm);
	return r;
}

uint32_t sn_vmnet_read(struct sn_vmnet *vm, struct sn_vmnet_pkt *pkts, int *count)
{
	uint32_t fail;
	size_t bytes = 0;
	int n = 0, want = *count;
	bool refill;

	pthread_mutex_lock(&g_mu);
	fail = g_fail_read;
	g_fail_read = 0;
	g_stats.reads++;
	for (int i = 0; i < want; i++)
		bytes += pkts[i].iov.iov_len;
	if ((unsigned)want > g_stats.max_read_count)
		g_stats.max_read_count = (unsigned)want;
	if (bytes > g_stats.max_read_bytes)
		g_stats.max_read_bytes = bytes;
	if (!fail) {
		if (want < 0 || (vm->conf.read_max && (unsigned)want > vm->conf.read_max) ||
		    (unsigned)want > SN_VMNET_BATCH_MAX)
			fail = SN_VMNET_TOO_MANY_PACKETS;
		else if (bytes > SN_VMNET_BYTES_MAX)
			fail = SN_VMNET_INVALID_ARGUMENT;
		for (int i = 0; !fail && i < want; i++)
			if (pkts[i].iov.iov_len < vm->conf.max_packet_size)
				fail = SN_VMNET_INVALID_ARGUMENT; /* each buffer must hold max_packet_size */
		if (fail)
			g_stats.limit_violations++;
	}
	pthread_mutex_unlock(&g_mu);
	if (fail) {
		*count = 0;
		return fail;
	}

	pthread_mutex_lock(&vm->mu);
	refill = inbox_depth(vm) >= vm->conf.inbox;
	while (n < want && inbox_depth(vm) > 0) {
		uint32_t slot = vm->head % vm->conf.inbox;

		memcpy(pkts[n].iov.iov_base, vm->slots + (size_t)slot * vm->conf.max_packet_size, vm->lens[slot]);
		pkts[n].size = vm->lens[slot];
		vm->head++;
		n++;
	}
	if (refill && n > 0)
		ring_bell(vm); /* room again: the queue thread goes back to the peer */
	pthread_mutex_unlock(&vm->mu);
	*count = n;
	return SN_VMNET_SUCCESS;
}

uint32_t sn_vmnet_write(struct sn_vmnet *vm, struct sn_vmnet_pkt *pkts, int *count)
{
	uint32_t fail;
	size_t bytes = 0;
	int n = 0, want = *count;

	pthread_mutex_lock(&g_mu);
	fail = g_fail_write;
	g_fail_write = 0;
	g_stats.writes++;
	for (int i = 0; i < want; i++)
		bytes += pkts[i].size;
	if ((unsigned)want > g_stats.max_write_count)
		g_stats.max_write_count = (unsigned)want;
	if (bytes > g_stats.max_write_bytes)
		g_stats.max_write_bytes = bytes;
	if (!fail) {
		if (want < 0 || (vm->conf.write_max && (unsigned)want > vm->conf.write_max) ||
		    (unsigned)want > SN_VMNET_BATCH_MAX)
			fail = SN_VMNET_TOO_MANY_PACKETS;
		else if (bytes > SN_VMNET_BYTES_MAX)
			fail = SN_VMNET_INVALID_ARGUMENT;
		for (int i = 0; !fail && i < want; i++)
			if (pkts[i].size > vm->conf.max_packet_size)
				fail = SN_VMNET_PACKET_TOO_BIG;
		if (fail)
			g_stats.limit_violations++;
	}
	pthread_mutex_unlock(&g_mu);
	if (fail) {
		*count = 0;
		return fail;
	}
	while (n < want && vm->peer >= 0) {
		ssize_t w = send(vm->peer, pkts[n].iov.iov_base, pkts[n].size, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0)
			break;
		n++;
	}
	*count = n;
	return n == 0 && want > 0 ? SN_VMNET_BUFFER_EXHAUSTED : SN_VMNET_SUCCESS;
}
