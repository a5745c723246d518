/* vmnet_darwin.c - the one file that calls vmnet.framework, libdispatch and XPC.
 *
 * Each interface gets a serial dispatch queue: the start and stop completions and the
 * packets-available callbacks all run on it, never on the loop. Start and stop wait on a
 * dispatch semaphore with a dispatch_time() timeout. An interface whose completion comes after
 * its waiter gave up must still be cleaned up, and a callback must never run into a port that
 * is gone, so the state shared with the blocks is reference counted and a "quiet" flag plus a
 * dispatch_sync() barrier on the queue fence the callbacks off before a stop. Compiled on
 * macOS only; CI checks it with clang -fsyntax-only against tests/vmnet/darwin-decls/. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dispatch/dispatch.h>
#include <vmnet/vmnet.h>
#include <xpc/xpc.h>

#include "vmnet.h"

enum start_state { START_PENDING, START_DONE, START_ABANDONED };

struct sn_vmnet {
	interface_ref iface;
	dispatch_queue_t queue;
	dispatch_semaphore_t start_sem, stop_sem;
	atomic_uint refs;          /* the loop side and each block still to run */
	atomic_int start_state;
	atomic_bool quiet;         /* wake callbacks off: the port is going */
	/* written on the queue before the semaphore is signalled, read after the wait */
	uint32_t start_status, stop_status;
	struct sn_vmnet_info info;
	sn_vmnet_wake_fn wake;     /* set before the callback is installed, then constant */
	void *wake_ctx;
	struct vmpktdesc rd[SN_VMNET_BATCH_MAX], wr[SN_VMNET_BATCH_MAX];
};

static void vm_put(struct sn_vmnet *vm)
{
	if (atomic_fetch_sub_explicit(&vm->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (vm->start_sem)
		dispatch_release(vm->start_sem);
	if (vm->stop_sem)
		dispatch_release(vm->stop_sem);
	if (vm->queue)
		dispatch_release(vm->queue);
	free(vm);
}

static dispatch_time_t deadline(double seconds)
{
	return dispatch_time(DISPATCH_TIME_NOW, (int64_t)(seconds * (double)NSEC_PER_SEC));
}

/* The interface_desc dictionary: only the keys the SPEC gave are sent. */
static xpc_object_t build_desc(const struct sn_vmnet_params *p)
{
	xpc_object_t d = xpc_dictionary_create(NULL, NULL, 0);

	if (!d)
		return NULL;
	xpc_dictionary_set_uint64(d, vmnet_operation_mode_key, (uint64_t)p->mode);
	if (p->iface)
		xpc_dictionary_set_string(d, vmnet_shared_interface_name_key, p->iface);
	if (p->start_addr) {
		xpc_dictionary_set_string(d, vmnet_start_address_key, p->start_addr);
		xpc_dictionary_set_string(d, vmnet_end_address_key, p->end_addr);
		xpc_dictionary_set_string(d, vmnet_subnet_mask_key, p->subnet_mask);
	}
	if (p->nat66_prefix)
		xpc_dictionary_set_string(d, vmnet_nat66_prefix_key, p->nat66_prefix);
	if (p->isolate)
		xpc_dictionary_set_bool(d, vmnet_enable_isolation_key, true);
	if (p->offload) {
		/* an older system has not the keys: the interface is then a plain one */
		if (__builtin_available(macOS 11.0, *))
			xpc_dictionary_set_bool(d, vmnet_enable_tso_key, true);
		if (__builtin_available(macOS 12.0, *))
			xpc_dictionary_set_bool(d, vmnet_enable_checksum_offload_key, true);
	}
	if (p->has_uuid)
		xpc_dictionary_set_uuid(d, vmnet_interface_id_key, p->uuid);
	return d;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];

	if (!s || sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 0xff)
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

static unsigned get_uint(xpc_object_t d, const char *key)
{
	uint64_t v = xpc_dictionary_get_uint64(d, key);

	return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

/* Runs on the queue: interface_param is only valid during the completion. */
static void read_params(struct sn_vmnet *vm, xpc_object_t param)
{
	struct sn_vmnet_info *in = &vm->info;

	if (!param)
		return;
	in->has_mac = parse_mac(xpc_dictionary_get_string(param, vmnet_mac_address_key), in->mac) == 0;
	in->mtu = get_uint(param, vmnet_mtu_key);
	in->max_packet_size = get_uint(param, vmnet_max_packet_size_key);
	/* the limits are reported from macOS 15 on; the keys are weak symbols before that */
	if (&vmnet_read_max_packets_key != NULL && vmnet_read_max_packets_key)
		in->read_max = get_uint(param, vmnet_read_max_packets_key);
	if (&vmnet_write_max_packets_key != NULL && vmnet_write_max_packets_key)
		in->write_max = get_uint(param, vmnet_write_max_packets_key);
}

int sn_vmnet_start(const struct sn_vmnet_params *p, struct sn_vmnet **ret_vm, struct sn_vmnet_info *ret_info,
		   uint32_t *ret_status)
{
	struct sn_vmnet *vm = calloc(1, sizeof(*vm));
	xpc_object_t desc;
	int expected = START_PENDING;
	bool timed_out;

	*ret_status = VMNET_SUCCESS;
	if (!vm)
		return -ENOMEM;
	atomic_init(&vm->refs, 1);
	atomic_init(&vm->start_state, START_PENDING);
	atomic_init(&vm->quiet, false);
	vm->queue = dispatch_queue_create("org.squibnet.vmnet", DISPATCH_QUEUE_SERIAL);
	vm->start_sem = dispatch_semaphore_create(0);
	vm->stop_sem = dispatch_semaphore_create(0);
	desc = build_desc(p);
	if (!vm->queue || !vm->start_sem || !vm->stop_sem || !desc) {
		if (desc)
			xpc_release(desc);
		vm_put(vm);
		return -ENOMEM;
	}

	atomic_fetch_add(&vm->refs, 1); /* the completion's */
	vm->iface = vmnet_start_interface(desc, vm->queue, ^(vmnet_return_t status, xpc_object_t param) {
		int pending = START_PENDING;

		if (status == VMNET_SUCCESS)
			read_params(vm, param);
		vm->start_status = status;
		/* a waiter that gave up has already asked for the stop */
		if (atomic_compare_exchange_strong(&vm->start_state, &pending, START_DONE))
			dispatch_semaphore_signal(vm->start_sem);
		vm_put(vm);
	});
	xpc_release(desc);

	timed_out = dispatch_semaphore_wait(vm->start_sem, deadline(p->timeout)) != 0;
	if (timed_out && atomic_compare_exchange_strong(&vm->start_state, &expected, START_ABANDONED)) {
		atomic_store(&vm->quiet, true);
		if (vm->iface) {
			/* the stop goes in behind the start on the framework's side; its completion
			 * owns the last reference */
			atomic_fetch_add(&vm->refs, 1);
			vmnet_stop_interface(vm->iface, vm->queue, ^(vmnet_return_t status) {
				vm_put(vm);
			});
		}
		vm_put(vm);
		return -ETIMEDOUT;
	}
	/* the completion ran: either the wait saw it, or it won the race against the timeout */
	if (vm->start_status != VMNET_SUCCESS || !vm->iface) {
		int r = vm->start_status != VMNET_SUCCESS ? sn_vmnet_errno(vm->start_status) : -EIO;

		*ret_status = vm->start_status;
		vm_put(vm);
		return r;
	}
	*ret_info = vm->info;
	*ret_vm = vm;
	return 0;
}

uint32_t sn_vmnet_set_event_callback(struct sn_vmnet *vm, sn_vmnet_wake_fn fn, void *ctx)
{
	if (!fn)
		return vmnet_interface_set_event_callback(vm->iface, VMNET_INTERFACE_PACKETS_AVAILABLE, NULL, NULL);
	vm->wake = fn;
	vm->wake_ctx = ctx;
	return vmnet_interface_set_event_callback(vm->iface, VMNET_INTERFACE_PACKETS_AVAILABLE, vm->queue,
						  ^(interface_event_t event_id, xpc_object_t event) {
		uint64_t estimate = 0;

		if (atomic_load_explicit(&vm->quiet, memory_order_acquire))
			return;
		if (event)
			estimate = xpc_dictionary_get_uint64(event, vmnet_estimated_packets_available_key);
		vm->wake(vm->wake_ctx, estimate > UINT32_MAX ? UINT32_MAX : (unsigned)estimate);
	});
}

static void barrier_fn(void *ctx)
{
}

int sn_vmnet_stop(struct sn_vmnet *vm, double timeout, uint32_t *ret_status)
{
	if (ret_status)
		*ret_status = VMNET_SUCCESS;
	if (!vm)
		return 0;
	/* Fence the callbacks off: a block already past the quiet check finishes before the
	 * barrier runs on the serial queue, and every later one sees the flag. */
	atomic_store_explicit(&vm->quiet, true, memory_order_release);
	vmnet_interface_set_event_callback(vm->iface, VMNET_INTERFACE_PACKETS_AVAILABLE, NULL, NULL);
	dispatch_sync_f(vm->queue, NULL, barrier_fn);

	atomic_fetch_add(&vm->refs, 1); /* the completion's */
	vmnet_stop_interface(vm->iface, vm->queue, ^(vmnet_return_t status) {
		vm->stop_status = status;
		dispatch_semaphore_signal(vm->stop_sem);
		vm_put(vm);
	});
	if (dispatch_semaphore_wait(vm->stop_sem, deadline(timeout)) != 0) {
		vm_put(vm);
		return -ETIMEDOUT;
	}
	if (vm->stop_status != VMNET_SUCCESS) {
		int r = sn_vmnet_errno(vm->stop_status);

		if (ret_status)
			*ret_status = vm->stop_status;
		vm_put(vm);
		return r;
	}
	vm_put(vm);
	return 0;
}

/* One iovec per packet, pointing at the caller's buffer; vm_pkt_size is rewritten by every
 * call, so it is set afresh each time. */
static void fill_desc(struct vmpktdesc *d, struct sn_vmnet_pkt *pkts, int count, bool write)
{
	for (int i = 0; i < count; i++) {
		d[i].vm_pkt_size = write ? pkts[i].size : pkts[i].iov.iov_len;
		d[i].vm_pkt_iov = &pkts[i].iov;
		d[i].vm_pkt_iovcnt = 1;
		d[i].vm_flags = 0;
	}
}

uint32_t sn_vmnet_read(struct sn_vmnet *vm, struct sn_vmnet_pkt *pkts, int *count)
{
	vmnet_return_t st;

	if (*count < 0 || *count > (int)SN_VMNET_BATCH_MAX) {
		*count = 0;
		return VMNET_TOO_MANY_PACKETS;
	}
	fill_desc(vm->rd, pkts, *count, false);
	st = vmnet_read(vm->iface, vm->rd, count);
	if (st == VMNET_SUCCESS)
		for (int i = 0; i < *count; i++)
			pkts[i].size = vm->rd[i].vm_pkt_size;
	return st;
}

uint32_t sn_vmnet_write(struct sn_vmnet *vm, struct sn_vmnet_pkt *pkts, int *count)
{
	if (*count < 0 || *count > (int)SN_VMNET_BATCH_MAX) {
		*count = 0;
		return VMNET_TOO_MANY_PACKETS;
	}
	fill_desc(vm->wr, pkts, *count, true);
	return vmnet_write(vm->iface, vm->wr, count);
}
