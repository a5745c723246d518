/* The switch: create one on a libev loop, add ports by SPEC, inspect and control it.
 *
 * The library runs on a libev loop the caller owns: it adds watchers to that loop and never
 * runs it, blocks in it or creates threads of its own (vmnet's dispatch queue aside); the
 * caller runs the loop with its own watchers beside the switch's. Every function here must be
 * called from the thread that runs the loop. Functions that can
 * fail return 0 (or a count) on success and a negative errno value on failure; where a
 * struct sn_error is passed, it receives a one-line human-readable reason. */
#ifndef SQUIBNET_SWITCH_H
#define SQUIBNET_SWITCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;
struct sn_switch;
struct sn_control;

/** Longest port name, including the terminating NUL. */
#define SN_PORT_NAME_MAX 64
/** Largest frame any port carries (the 16-bit length of hyperkit and vde framing). */
#define SN_FRAME_MAX 65535
/** The MTU a port gets unless its SPEC says mtu=N. */
#define SN_MTU_DEFAULT 1500

/** Filled with a reason when a call fails. */
struct sn_error {
	char msg[256];
};

/** Tunables of a switch; sn_switch_config_init() sets the defaults. Fields are only ever added
 * at the end, and @size tells the library which of them the caller knows. */
struct sn_switch_config {
	size_t size;           /**< sizeof(struct sn_switch_config) as the caller was built; set by sn_switch_config_init() */
	unsigned pool_frames;  /**< standard (2 KiB) frame buffers, allocated at create */
	unsigned jumbo_frames; /**< 64 KiB buffers, allocated when a port with mtu > 2000 appears */
	unsigned txq_len;      /**< egress queue length of each port (rounded up to a power of 2) */
	unsigned fdb_max;      /**< forwarding database entries in all (default 8192) */
	unsigned fdb_port_max; /**< entries one port may own (default: fdb_max) */
	double fdb_aging;      /**< seconds a learned entry lives unrefreshed (default 300) */
	/** Seconds a port's egress queue may stay congested (over a quarter full) before its peer
	 * counts as stalled: the ports held back by its queue go on, and it gets only a few frames
	 * queued until it takes one (default 0.5). */
	double stall_timeout;
	/** A full forwarding database makes room for a new source by evicting an entry of the
	 * port that owns the most (Open vSwitch's fair eviction), instead of refusing it. */
	bool fdb_evict;
	/** Bytes of kernel send buffer asked for on each stream and seqpacket connection
	 * (SO_SNDBUF; SO_SNDBUFFORCE where the process may), so that a fast peer is not held to
	 * the kernel's default of about 200 KiB in flight (default 1 MiB; 0 leaves the kernel's
	 * default; else 4 KiB to 256 MiB). Connections made after a change get it.
	 * 64 bits so that it starts past the padding that ended the struct before it came: a
	 * caller's @size from then covers none of it. */
	uint64_t sock_buf;
};

/** Sets @cfg to the defaults, @size included. */
void sn_switch_config_init(struct sn_switch_config *cfg);

/**
 * Creates a switch driven by @loop (caller keeps ownership of the loop and must outlive the
 * switch). @cfg may be NULL for defaults; fields past @cfg->size keep their defaults. Allocates
 * the frame pool now. Returns 0 and sets *@ret_sw, or -ENOMEM / -EINVAL (a bad value, or a
 * @size this library does not know).
 */
int sn_switch_create(struct ev_loop *loop, const struct sn_switch_config *cfg, struct sn_switch **ret_sw);

/** The switch's settings now: what sn_switch_create() was given (txq_len rounded up as it was),
 * with the changes of sn_switch_reconfigure(). */
void sn_switch_get_config(struct sn_switch *sw, struct sn_switch_config *ret_cfg);

/**
 * Changes the settings of a running switch to @cfg (fields past @cfg->size keep their values).
 * fdb_max (rehashing the table; entries over a lower cap stay until they age), fdb_port_max,
 * fdb_aging, fdb_evict and stall_timeout take effect at once, sock_buf for new connections. pool_frames, jumbo_frames and
 * txq_len are sized at creation: a @cfg that changes one of them is -EBUSY and changes nothing.
 * -EINVAL for a value out of range, -ENOMEM (nothing changed); @err says which.
 */
int sn_switch_reconfigure(struct sn_switch *sw, const struct sn_switch_config *cfg, struct sn_error *err);

/** Closes every port and frees the switch. NULL is a no-op. */
void sn_switch_destroy(struct sn_switch *sw);

/** A port kind this build has, as sn_port_kinds_foreach() shows it. */
struct sn_port_kind_info {
	const char *name;  /**< the SPEC's first word: "stream", "dgram", ... */
	const char *usage; /**< one or more lines "KIND,key=...   what it is", for --help */
};

/** Calls @visit for every port kind of this build; stops early and returns what @visit returned
 * if it is non-zero. */
int sn_port_kinds_foreach(int (*visit)(const struct sn_port_kind_info *, void *), void *ctx);

/**
 * Adds a port described by @spec ("KIND,key=value,..."; see the README for the grammar).
 * On success returns 0 and copies the port's name into @ret_name (may be NULL).
 * -EINVAL: bad SPEC (@err names the key); -EEXIST: name taken; -EADDRINUSE: a live
 * listener owns the path; other -errno values come from the socket calls.
 */
int sn_switch_add_port(struct sn_switch *sw, const char *spec, char *ret_name, size_t name_len,
		       struct sn_error *err);

/**
 * Checks @spec as sn_switch_add_port() does before it opens anything: the grammar, the kind,
 * and that the kind takes every key. Values are checked when the port is added. Returns 0, or
 * -EINVAL with @err naming the problem.
 */
int sn_port_spec_check(const char *spec, struct sn_error *err);

/**
 * Removes the port (or listener, with all of its clients) called @name, and the forwarding
 * entries that point at it. -ENOENT when there is no such port.
 */
int sn_switch_del_port(struct sn_switch *sw, const char *name);

enum sn_port_state {
	SN_PORT_UP,         /**< carrying frames */
	SN_PORT_DOWN,       /**< no peer, and none being dialed (a vhost-user port without a
	                         frontend, a host interface that went away, a gvproxy restarting) */
	SN_PORT_LISTENING,  /**< a listener: its clients are ports of their own */
	SN_PORT_CONNECTING, /**< connect mode: dialing a peer that is not there (yet), with backoff;
	                         sn_port_info.error says why the last attempt failed */
};

/** The state as squibnetctl shows it: "up", "down", "listening", "connecting". */
const char *sn_port_state_name(enum sn_port_state state);

/** Per-port counters. rx is what the port received from its peer, tx what it sent to it. */
struct sn_port_stats {
	uint64_t rx_frames, rx_bytes;
	uint64_t tx_frames, tx_bytes;
	uint64_t drop_txq_full;    /**< egress queue was full */
	uint64_t drop_runt;        /**< frame under 14 bytes */
	uint64_t drop_oversize;    /**< frame over MTU + 14 (+4 tagged), on ingress or egress */
	uint64_t drop_bad_framing; /**< malformed length prefix or message: the peer was closed */
	uint64_t drop_no_buffer;   /**< frame pool empty */
	uint64_t drop_vlan;        /**< refused by the port's VLAN mode: tagged on an access port, a VLAN a trunk does not carry, untagged on a trunk without a native VLAN */
	uint64_t drop_bad_offload; /**< offload header (checksum or segmentation) malformed, or asking for an offload the peer did not negotiate */
	uint64_t fdb_refused;      /**< source MACs not learned because a cap was reached */
	uint64_t rx_pauses;        /**< times reading this port paused for a destination's full queue */
	uint64_t stalls;           /**< times this port's peer stopped taking frames (see stall_timeout) */
	uint32_t fdb_entries;      /**< forwarding entries that point at this port now */
	uint32_t txq_depth;        /**< frames waiting in the egress queue now */
};

/** What sn_switch_foreach_port() shows of a port. Pointers are valid during the call only. */
struct sn_port_info {
	const char *name;
	const char *kind;   /**< "stream", "dgram", "seqpacket", ... */
	const char *parent; /**< the listener this client came from, or NULL */
	const char *peer;   /**< where the port is attached, as text */
	enum sn_port_state state;
	unsigned mtu;
	unsigned txq_len;
	const char *vlan;   /**< its VLAN mode and policy: "transparent", "access 10", "trunk 10,20-30 native 1 isolated" */
	bool rx_paused;     /**< not reading now: a destination's queue is filling (back-pressure) */
	bool stalled;       /**< its peer is not taking frames: few are queued for it */
	struct sn_port_stats stats;
	const char *error;  /**< why the port is not up: its last failure to reach or keep its
	                         peer ("Connection refused"), "" when none or once it is up */
	/** The SPEC the port was added with (sn_switch_add_port()), with name= the port's name, so
	 * that adding it again makes the same port; NULL for a listener's clients and for ports
	 * made through the typed constructors. */
	const char *spec;
	/** Offloads the port's peer negotiated, comma-separated ("csum,tso4,tso6,ecn,uso4,uso6"; ""
	 * for none): what frames to it may leave to it (@offload_tx: checksums to fill in, large
	 * frames to segment) and what frames from it may (@offload_rx). */
	const char *offload_tx, *offload_rx;
};

/** Calls @visit for every port and listener; stops early and returns what @visit returned if
 * it is non-zero. */
int sn_switch_foreach_port(struct sn_switch *sw, int (*visit)(const struct sn_port_info *, void *),
			   void *ctx);

/** One forwarding database entry. */
struct sn_fdb_info {
	uint8_t mac[6];
	uint16_t vlan;        /**< 802.1Q VLAN id, 0 for untagged */
	const char *port;     /**< name of the port the MAC sits behind */
	bool is_static;
	double age;           /**< seconds since last seen (0 for static entries) */
	/** Behind a tunnel port: the remote endpoint the port sends frames for the MAC to
	 * ("10.0.0.2"); NULL for other ports, and while the port does not know it (it floods).
	 * sn_switch_foreach_fdb() fills it in; sn_switch_fdb_lookup() leaves it NULL. */
	const char *dst;
};

/** Calls @visit for every live entry. */
int sn_switch_foreach_fdb(struct sn_switch *sw, int (*visit)(const struct sn_fdb_info *, void *),
			  void *ctx);

/** Forgets learned entries: all of them (@port NULL) or those of one port. Returns the number
 * removed, or -ENOENT for an unknown port. Static entries stay. */
int sn_switch_fdb_flush(struct sn_switch *sw, const char *port);

/** Pins @mac on @vlan to @port: never aged, never moved. -ENOENT, -ENOSPC (table full). */
int sn_switch_fdb_add_static(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan, const char *port);

/**
 * Pins @mac on @vlan to the tunnel port @port (a vxlan or geneve port) and, behind it, to the
 * remote endpoint @dst ("IP", "IP:PORT" or "[IPv6]:PORT"): the entry is static in the switch's
 * table, as sn_switch_fdb_add_static() makes it, and the port sends the MAC's frames to @dst
 * only. What `fdb add MAC PORT dst=IP` does, and what an EVPN control plane installs.
 * -ENOENT (no such port), -EOPNOTSUPP (@port has no remote endpoints), -EINVAL (a bad @dst or
 * MAC), -ENOSPC (a table is full); @err (may be NULL) says why.
 */
int sn_switch_fdb_add_dst(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan, const char *port,
			  const char *dst, struct sn_error *err);

/** The live entry for @mac on @vlan into *@ret (its port name valid until the FDB changes).
 * -ENOENT when there is none, -EINVAL for a VLAN over 4095. */
int sn_switch_fdb_lookup(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan, struct sn_fdb_info *ret);

/** Removes the entry for @mac on @vlan, static or learned (and a tunnel port's pin of it to a
 * remote endpoint). -ENOENT when there is none. */
int sn_switch_fdb_del(struct sn_switch *sw, const uint8_t mac[6], uint16_t vlan);

/**
 * Gives the switch a socket the process inherited, under @name, for the SPECs that say
 * fdname=NAME: systemd socket activation hands them over in LISTEN_FDS and LISTEN_FDNAMES
 * (sd_listen_fds_with_names()). The switch takes @fd on success (close-on-exec from then on,
 * closed by sn_switch_destroy()) and keeps it: each port that names it works on a duplicate,
 * so a port removed and added again takes the same socket, and the socket outlives its ports
 * (new clients wait in its backlog meanwhile). -EINVAL (an empty name, one over 255 bytes or
 * with blanks, ':', ',' or '"'), -EBADF, -EEXIST (the name is taken), -ENOMEM.
 */
int sn_switch_add_inherited_fd(struct sn_switch *sw, const char *name, int fd);

/** How frames are delimited on a byte stream. */
enum sn_stream_framing {
	SN_STREAM_QEMU,     /**< 4-byte big-endian length: QEMU -netdev stream, socket_vmnet */
	SN_STREAM_HYPERKIT, /**< 2-byte little-endian length: gvproxy -listen-stdio */
	SN_STREAM_VDE,      /**< 2-byte big-endian length: vde_plug */
};

/**
 * Adds a port on @fd, a connected stream socket (a socketpair a VMM made, say) whose other end
 * speaks @framing. The switch takes @fd on success (and closes it when the peer goes away, which
 * removes the port); on failure the caller keeps it. @name may be NULL for one made up; the
 * port's name is copied into @ret_name (may be NULL). -EINVAL, -EEXIST (name taken), -ENOMEM.
 */
int sn_switch_add_stream_fd(struct sn_switch *sw, int fd, enum sn_stream_framing framing, const char *name,
			    char *ret_name, size_t name_len, struct sn_error *err);

/**
 * Changes the policy of port @name at run time: @keys is "key=value,..." of vlan= (N, or none
 * for transparent), trunk= (a list such as "10,20-30", quoted in a SPEC, or 10+20-30),
 * native=, native-tagged=, tpid= (0x8100 or 0x88a8), isolated=, flood=, mcast-flood=,
 * max-macs=, as a port's SPEC takes them. A change of VLANs forgets what the port learned and
 * drops its queue. A listener's clients follow it. -ENOENT, -EINVAL with @err naming the key.
 */
int sn_switch_port_set(struct sn_switch *sw, const char *name, const char *keys, struct sn_error *err);

/**
 * Changes switch settings at run time: @keys is "key=value,..." of fdb-aging=SECONDS,
 * fdb-max=N, fdb-port-max=N (0: fdb-max), fdb-evict=on|off, stall-timeout=MS, sock-buf=BYTES (for new connections). Every value is
 * checked before any is applied. -EINVAL with @err naming the key; -ENOSPC when fdb-max is
 * below the static entries.
 */
int sn_switch_set(struct sn_switch *sw, const char *keys, struct sn_error *err);

/** The same, typed. A smaller table drops learned entries, expired ones first. */
int sn_switch_set_fdb_aging(struct sn_switch *sw, double seconds);
int sn_switch_set_fdb_max(struct sn_switch *sw, unsigned max, unsigned port_max);
void sn_switch_set_fdb_evict(struct sn_switch *sw, bool evict);
int sn_switch_set_stall_timeout(struct sn_switch *sw, double seconds);

/** The settings in force now. */
void sn_switch_get_config(struct sn_switch *sw, struct sn_switch_config *ret);

/** Switch-wide counters. */
struct sn_switch_stats {
	uint64_t unicast;        /**< frames sent to one known port */
	uint64_t flooded;        /**< frames flooded (broadcast, multicast, unknown unicast) */
	uint64_t filtered;       /**< frames whose destination sits behind the ingress port */
	uint64_t isolated;       /**< known unicast not delivered: both ports are isolated */
	uint64_t fdb_refused_table; /**< source MACs not learned: table full */
	uint64_t fdb_refused_port;  /**< source MACs not learned: port cap reached */
	uint64_t fdb_moves;         /**< MACs that moved to another port */
	uint64_t fdb_evicted;       /**< entries evicted to make room (fdb_evict) */
	uint32_t fdb_entries, fdb_max;
	uint32_t pool_free, pool_total;
	uint32_t ports;
};

void sn_switch_get_stats(struct sn_switch *sw, struct sn_switch_stats *ret_stats);

/**
 * Serves the control protocol (what squibnetctl speaks) on a unix socket at @path, mode 0600.
 * A stale socket file is replaced; a live one is -EADDRINUSE. The socket file is unlinked by
 * sn_control_destroy().
 */
int sn_control_create(struct sn_switch *sw, const char *path, struct sn_control **ret_ctl, struct sn_error *err);
void sn_control_destroy(struct sn_control *ctl);

/** A command of the control protocol, as sn_control_foreach_command() shows it. */
struct sn_control_command_info {
	const char *name;  /**< one or more words, as sent: "fdb flush" */
	const char *args;  /**< usage of the arguments after the name, "" for none */
	const char *help;  /**< what it does, one line */
};

/** Calls @visit for each command a control socket of this build serves, in the order "help"
 * lists them (aliases left out), with no switch needed: for a client's --help. Stops early and
 * returns what @visit returned if it is non-zero. */
int sn_control_foreach_command(int (*visit)(const struct sn_control_command_info *, void *), void *ctx);

/** The library's version, "MAJOR.MINOR.PATCH". */
const char *sn_version(void);

#ifdef __cplusplus
}
#endif

#endif
