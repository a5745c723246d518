/* vmnet.h - the narrow interface between the vmnet port (src/ports/vmnet.c) and the code that
 * talks to vmnet.framework (vmnet_darwin.c), or pretends to for the tests (vmnet_standin.c).
 *
 * Threading contract, the same for both backends: start and stop block the calling (loop)
 * thread until the framework's completion arrives on the backend's own thread, or until the
 * timeout; the wake callback runs on that foreign thread and must touch nothing but a
 * thread-safe wake-up primitive; read and write are called from the loop thread only. */
#ifndef SN_BACKEND_VMNET_H
#define SN_BACKEND_VMNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* vmnet_return_t values, as <vmnet/vmnet.h> defines them (the ABI is a uint32_t). */
enum {
	SN_VMNET_SUCCESS = 1000,
	SN_VMNET_FAILURE = 1001,
	SN_VMNET_MEM_FAILURE = 1002,
	SN_VMNET_INVALID_ARGUMENT = 1003,
	SN_VMNET_SETUP_INCOMPLETE = 1004,
	SN_VMNET_INVALID_ACCESS = 1005,
	SN_VMNET_PACKET_TOO_BIG = 1006,
	SN_VMNET_BUFFER_EXHAUSTED = 1007,
	SN_VMNET_TOO_MANY_PACKETS = 1008,
	SN_VMNET_SHARING_SERVICE_BUSY = 1009,
	SN_VMNET_NOT_AUTHORIZED = 1010,
};

/* operating_modes_t values. */
enum sn_vmnet_mode {
	SN_VMNET_HOST_MODE = 1000,
	SN_VMNET_SHARED_MODE = 1001,
	SN_VMNET_BRIDGED_MODE = 1002,
};

/* Per call, whatever the interface reports: the framework documents 200 packets and 256 KB. */
#define SN_VMNET_BATCH_MAX 200u
#define SN_VMNET_BYTES_MAX (256u * 1024u)

/* What to ask vmnet_start_interface for. Strings may be NULL (key not sent); the caller keeps
 * ownership and they need only live during sn_vmnet_start(). */
struct sn_vmnet_params {
	enum sn_vmnet_mode mode;
	const char *iface;        /* bridged: the host interface (vmnet_shared_interface_name_key) */
	const char *start_addr;   /* shared/host: DHCP range and mask, all three or none */
	const char *end_addr;
	const char *subnet_mask;
	const char *nat66_prefix; /* shared: the IPv6 prefix for NAT66 */
	bool isolate;             /* vmnet_enable_isolation_key */
	bool offload;             /* vmnet_enable_tso_key (macOS 11) and vmnet_enable_checksum_offload_key
				     (macOS 12), where the system has them: large TCP frames and
				     unfinished checksums both ways, with no header to say so */
	bool has_uuid;
	uint8_t uuid[16];         /* vmnet_interface_id_key: a stable id gives a stable MAC */
	double timeout;           /* seconds to wait for each completion */
};

/* What the start completion reported back. */
struct sn_vmnet_info {
	uint8_t mac[6];
	bool has_mac;
	unsigned mtu;             /* 0 when not reported */
	unsigned max_packet_size; /* 0 when not reported */
	unsigned read_max;        /* packets per vmnet_read; 0 when not reported (before macOS 15) */
	unsigned write_max;
};

/* One packet: one iovec. For read, iov is the buffer (at least max_packet_size) and size is
 * set to the bytes received; for write, iov holds the frame and size its length. */
struct sn_vmnet_pkt {
	struct iovec iov;
	size_t size;
};

struct sn_vmnet;

/* Called on the backend's thread when packets are waiting; @estimate is the framework's
 * estimate (0 when it gave none). Must only wake the loop. */
typedef void (*sn_vmnet_wake_fn)(void *ctx, unsigned estimate);

/**
 * Starts an interface and waits up to @p->timeout for its completion.
 * Returns 0 and sets *@ret_vm and *@ret_info; -ETIMEDOUT when no completion came (the late
 * one cleans up by itself); -ENOMEM; or, when the completion reported a failure, the
 * sn_vmnet_errno() of it with the raw code in *@ret_status (always set, SN_VMNET_SUCCESS on
 * success and timeouts).
 */
int sn_vmnet_start(const struct sn_vmnet_params *p, struct sn_vmnet **ret_vm, struct sn_vmnet_info *ret_info,
		   uint32_t *ret_status);

/**
 * Sets (or with @fn NULL, clears) the packets-available callback. Returns a vmnet_return_t.
 */
uint32_t sn_vmnet_set_event_callback(struct sn_vmnet *vm, sn_vmnet_wake_fn fn, void *ctx);

/**
 * Stops the interface and frees @vm (NULL is a no-op). When it returns, no wake callback is
 * running or will run again, even if the stop completion timed out (then -ETIMEDOUT and the
 * memory goes when the completion finally comes). Returns 0, -ETIMEDOUT or the errno of a
 * failed completion with the code in *@ret_status (may be NULL).
 */
int sn_vmnet_stop(struct sn_vmnet *vm, double timeout, uint32_t *ret_status);

/**
 * Reads up to *@count packets (at most the interface's read limit, SN_VMNET_BATCH_MAX and
 * SN_VMNET_BYTES_MAX of buffers); sets *@count to the number read, 0 when none is waiting.
 * Returns a vmnet_return_t.
 */
uint32_t sn_vmnet_read(struct sn_vmnet *vm, struct sn_vmnet_pkt *pkts, int *count);

/**
 * Writes *@count packets (same limits as read, each at most max_packet_size); sets *@count to
 * the number the framework took. Returns a vmnet_return_t.
 */
uint32_t sn_vmnet_write(struct sn_vmnet *vm, struct sn_vmnet_pkt *pkts, int *count);

/** The constant's name ("VMNET_FAILURE"), or NULL for a value the framework does not define. */
const char *sn_vmnet_status_name(uint32_t status);

/**
 * Formats @status for people into @buf: "VMNET_INVALID_ACCESS (permission denied)", or
 * "unknown vmnet_return_t 1234" so that values from newer systems are never lost. Returns @buf.
 */
const char *sn_vmnet_strstatus(uint32_t status, char *buf, size_t len);

/** A negative errno for a failing @status (0 for success), for the library's return values. */
int sn_vmnet_errno(uint32_t status);

#ifdef SN_VMNET_STANDIN
/* ---- test hooks of the Linux stand-in (vmnet_standin.c) ---- */

/* How the next sn_vmnet_start() behaves; read when it is called. */
struct sn_vmnet_standin_conf {
	int peer_fd;             /* SOCK_SEQPACKET/DGRAM end the packets come from and go to; -1 none */
	uint32_t start_status;   /* what the start completion reports */
	bool start_null;         /* the start call itself fails (vmnet_start_interface gives NULL) */
	unsigned start_delay_ms; /* before the start completion; UINT32_MAX: never */
	unsigned stop_delay_ms;  /* before the stop completion (finite: the thread must end) */
	uint8_t mac[6];
	unsigned mtu, max_packet_size;
	unsigned read_max, write_max; /* 0: not reported */
	unsigned inbox;          /* packets the "kernel" holds before it stops reading the peer */
	bool storm;              /* fire the wake callback continuously, packets or not */
};

/* Counters of every stand-in instance together; the tests compare them with the limits. */
struct sn_vmnet_standin_stats {
	unsigned live;           /* instances not freed yet (late completions included) */
	uint64_t events;         /* wake callbacks delivered */
	uint64_t reads, writes;  /* calls */
	unsigned max_read_count, max_write_count;
	size_t max_read_bytes, max_write_bytes;
	uint64_t limit_violations; /* calls refused for exceeding a limit */
};

/* The defaults: success, no delay, MTU 1500, 256-packet limits, inbox 1024, no peer. */
void sn_vmnet_standin_conf_init(struct sn_vmnet_standin_conf *conf);
/* Takes effect from the next sn_vmnet_start(); the caller keeps the peer fd (it is dup'ed). */
void sn_vmnet_standin_configure(const struct sn_vmnet_standin_conf *conf);
/* The next read (or write) call returns @status without moving packets. */
void sn_vmnet_standin_fail_next(bool write, uint32_t status);
/* The parameters of the last sn_vmnet_start(), strings copied into @buf-backed storage. */
void sn_vmnet_standin_last_params(struct sn_vmnet_params *ret, char store[5][64]);
void sn_vmnet_standin_get_stats(struct sn_vmnet_standin_stats *ret);
void sn_vmnet_standin_reset_stats(void);
#endif

#endif
