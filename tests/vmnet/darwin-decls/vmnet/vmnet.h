/* vmnet/vmnet.h - compile-check declarations of vmnet.framework (macOS 10.10+), after Apple's
 * documentation. Not the SDK header: only what src/backends/vmnet_darwin.c needs. */
#ifndef SN_DECLS_VMNET_H
#define SN_DECLS_VMNET_H

#include <stdint.h>
#include <sys/uio.h>

#include <dispatch/dispatch.h>
#include <xpc/xpc.h>

/* weak before the release that added them, as the SDK's availability macros make them */
#define SN_DECLS_WEAK __attribute__((weak))

typedef struct vmnet_interface *interface_ref;

typedef enum : uint32_t {
	VMNET_SUCCESS = 1000,
	VMNET_FAILURE = 1001,
	VMNET_MEM_FAILURE = 1002,
	VMNET_INVALID_ARGUMENT = 1003,
	VMNET_SETUP_INCOMPLETE = 1004,
	VMNET_INVALID_ACCESS = 1005,
	VMNET_PACKET_TOO_BIG = 1006,
	VMNET_BUFFER_EXHAUSTED = 1007,
	VMNET_TOO_MANY_PACKETS = 1008,
	VMNET_SHARING_SERVICE_BUSY = 1009,
	VMNET_NOT_AUTHORIZED = 1010,
} vmnet_return_t;

typedef enum : uint32_t {
	VMNET_HOST_MODE = 1000,
	VMNET_SHARED_MODE = 1001,
	VMNET_BRIDGED_MODE = 1002, /* macOS 10.15 */
} operating_modes_t;

typedef enum : uint32_t {
	VMNET_INTERFACE_PACKETS_AVAILABLE = 1 << 0,
} interface_event_t;

struct vmpktdesc {
	size_t vm_pkt_size;         /* in: buffer size (read) or packet size (write); out: packet size */
	struct iovec *vm_pkt_iov;
	uint32_t vm_pkt_iovcnt;
	uint32_t vm_flags;          /* 0 on read */
};

/* interface_desc keys */
extern const char *const vmnet_operation_mode_key;        /* uint64 operating_modes_t */
extern const char *const vmnet_interface_id_key;          /* uuid */
extern const char *const vmnet_shared_interface_name_key; /* string, bridged mode, 10.15 */
extern const char *const vmnet_start_address_key;         /* string, 10.15 */
extern const char *const vmnet_end_address_key;           /* string, 10.15 */
extern const char *const vmnet_subnet_mask_key;           /* string, 10.15 */
extern const char *const vmnet_nat66_prefix_key;          /* string, 10.15 */
extern const char *const vmnet_enable_isolation_key;      /* bool, 11.0 */
extern const char *const vmnet_enable_tso_key;            /* bool, 11.0 */
extern const char *const vmnet_enable_checksum_offload_key; /* bool, 12.0 */
/* interface_param keys */
extern const char *const vmnet_mac_address_key;           /* string */
extern const char *const vmnet_mtu_key;                   /* uint64 */
extern const char *const vmnet_max_packet_size_key;       /* uint64 */
extern const char *const vmnet_read_max_packets_key SN_DECLS_WEAK;  /* uint64, 15.0 */
extern const char *const vmnet_write_max_packets_key SN_DECLS_WEAK; /* uint64, 15.0 */
/* event keys */
extern const char *const vmnet_estimated_packets_available_key; /* uint64 */

typedef void (^vmnet_start_interface_completion_handler_t)(vmnet_return_t status, xpc_object_t interface_param);
typedef void (^vmnet_interface_completion_handler_t)(vmnet_return_t status);
typedef void (^vmnet_interface_event_callback_t)(interface_event_t event_mask, xpc_object_t event);

interface_ref vmnet_start_interface(xpc_object_t interface_desc, dispatch_queue_t queue,
				    vmnet_start_interface_completion_handler_t handler);
vmnet_return_t vmnet_interface_set_event_callback(interface_ref interface, interface_event_t event_mask,
						  dispatch_queue_t queue, vmnet_interface_event_callback_t callback);
vmnet_return_t vmnet_read(interface_ref interface, struct vmpktdesc *packets, int *pktcnt);
vmnet_return_t vmnet_write(interface_ref interface, struct vmpktdesc *packets, int *pktcnt);
vmnet_return_t vmnet_stop_interface(interface_ref interface, dispatch_queue_t queue,
				    vmnet_interface_completion_handler_t handler);

#endif
