/* vxlan.h - what the unit tests and the fuzz target reach of the tunnel ports (vxlan.c) besides
 * their SPECs: a datagram handed to a port's socket as if it had just arrived, and the
 * counters the port shows in its PEER column and in `tunnel show`. */
#ifndef SN_PORTS_VXLAN_H
#define SN_PORTS_VXLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sn_port;

/* What a tunnel port counts besides the switch's per-port counters. The first group belongs to
 * the UDP socket the port shares with the other VNIs on its address (a datagram that is not for
 * any VNI can be charged to none of them); the rest are the port's own. */
struct sn_tunnel_counters {
	uint64_t short_packets;   /* shorter than the tunnel header */
	uint64_t bad_header;      /* VXLAN flags other than 0x08000000 or reserved bits set; Geneve
				   * version not 0 or protocol not 0x6558 */
	uint64_t unknown_vni;     /* a well-formed header for a VNI no port has here */
	uint64_t no_buffer;       /* the pool was empty: read and dropped */
	uint64_t unknown_vtep;    /* learning=off and the sender is no remote the port knows */
	uint64_t bad_options;     /* Geneve: an option list that does not add up */
	uint64_t critical;        /* Geneve: critical options (the C bit, or a critical type) */
	uint64_t oam;             /* Geneve: control packets (the O bit) */
	uint64_t learn_refused;   /* inner source MACs not learned: the port's table was full */
	uint64_t no_remote;       /* frames with no remote to go to (no remote=, no group=) */
	uint64_t tx_errors;       /* sends refused by the host (no route, ...) */
	uint32_t remotes;         /* entries in the port's table: MAC -> remote VTEP */
};

/* The counters of a vxlan or geneve port. -EINVAL for another kind of port. */
int sn_tunnel_get_counters(struct sn_port *port, struct sn_tunnel_counters *ret);

/* Processes @len bytes as a datagram that arrived from @from on @port's unicast socket
 * (@group: on its multicast group's socket), through exactly what the socket's reader does with
 * each datagram after recvmmsg(): the same buffers, checks, learning and sn_port_input(). A
 * datagram longer than the socket's receive buffer is cut as the kernel would cut it.
 * -EINVAL when @port is no tunnel port or has no group socket. */
int sn_tunnel_receive(struct sn_port *port, bool group, const uint8_t *data, size_t len, const struct sockaddr *from,
		      socklen_t fromlen);

#endif
