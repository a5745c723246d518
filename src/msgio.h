/* msgio.h - the receive and transmit path shared by message-oriented ports (dgram, seqpacket):
 * one system call moves up to SN_MSGIO_BATCH frames, straight into and out of pool buffers. */
#ifndef SN_MSGIO_H
#define SN_MSGIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "pool.h"

struct sn_port;
struct sn_sockaddr;

#define SN_MSGIO_BATCH 64

/* recvmmsg()/sendmmsg() where the system has them; a recvmsg()/sendmsg() loop elsewhere (Darwin).
 * Building with -DSN_MSGIO_NO_MMSG forces the loop, so it can be tested on Linux too. */
#if defined(__linux__) && !defined(SN_MSGIO_NO_MMSG)
#define SN_MSGIO_MMSG 1
#else
#define SN_MSGIO_MMSG 0
#endif

#if !SN_MSGIO_MMSG
/* What the loop fills in place of struct mmsghdr. */
struct sn_msgio_hdr {
	struct msghdr msg_hdr;
	unsigned msg_len;
};
#else
#define sn_msgio_hdr mmsghdr
#endif

/* Scratch for one receiving socket, reused on every call; embed one per socket that reads. */
struct sn_msgio_rx {
	/* results of the last sn_msgio_recv(), entries [0, n) */
	struct sn_frame *frames[SN_MSGIO_BATCH]; /* NULL: dropped (oversize or no buffer), counted */
	uint32_t len[SN_MSGIO_BATCH];            /* bytes the message had; 0 is EOF on seqpacket */
	struct sockaddr_un from[SN_MSGIO_BATCH]; /* sender, with want_from */
	socklen_t fromlen[SN_MSGIO_BATCH];
	/* for the system call */
	struct iovec iov[SN_MSGIO_BATCH];
	struct sn_msgio_hdr hdr[SN_MSGIO_BATCH];
};

/* Scratch for one sending port. */
struct sn_msgio_tx {
	struct iovec iov[SN_MSGIO_BATCH];
	struct sn_msgio_hdr hdr[SN_MSGIO_BATCH];
};

/*
 * Receives up to SN_MSGIO_BATCH messages from the non-blocking @fd into pool buffers of
 * sn_port_max_frame(@port) bytes. A message longer than that is cut by the kernel and dropped
 * (drop_oversize); one that finds the pool empty is read and dropped (drop_no_buffer); both are
 * counted on @port and leave a NULL in rx->frames. With @want_from, rx->from and rx->fromlen
 * hold each sender's address. The caller owns one reference to every non-NULL frame.
 * Returns the number of messages (>= 1), or -errno: -EAGAIN when none is waiting.
 */
int sn_msgio_recv(struct sn_msgio_rx *rx, int fd, struct sn_port *port, bool want_from);

/*
 * Sends @port's egress queue on the non-blocking @fd, SN_MSGIO_BATCH frames per call, to @to
 * (NULL on a connected socket). Frames the socket refuses as too long are dropped and counted
 * as drop_oversize. Returns 0 once the queue is empty; -EAGAIN when the socket is full; any
 * other -errno from the send, with the frame that failed still at the head of the queue.
 */
int sn_msgio_send(struct sn_msgio_tx *tx, int fd, struct sn_port *port, const struct sn_sockaddr *to);

#endif
