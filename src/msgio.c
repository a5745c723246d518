/* msgio.c - batched receive and transmit for ports that carry one frame per message.
 *
 * Datagram and seqpacket sockets keep message boundaries, so no framing is needed: the kernel
 * copies each message straight into a pool buffer (recvmmsg) and each queued frame straight out
 * of one (sendmmsg), SN_MSGIO_BATCH at a time, which is what keeps the per-frame system call
 * cost away on a busy port. Where the batch calls are missing, a loop of recvmsg()/sendmsg()
 * fills the same structures, so callers never see the difference. */
#include <errno.h>
#include <string.h>

#include "msgio.h"
#include "sock.h"
#include "port.h"
#include "spec.h"
#include "util.h"

#if SN_MSGIO_MMSG
static int recv_batch(int fd, struct sn_msgio_hdr *hdr, unsigned n)
{
	int r;

	do
		r = recvmmsg(fd, hdr, n, MSG_DONTWAIT, NULL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static int send_batch(int fd, struct sn_msgio_hdr *hdr, unsigned n)
{
	int r;

	do
		r = sendmmsg(fd, hdr, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}
#else
/* Same contract as recvmmsg() and sendmmsg(): an error after the first message ends the batch
 * quietly; the next call meets it again. A zero-length message received ends it too, since on a
 * seqpacket socket it is the end of the stream and nothing follows. */
static int loop_batch(int fd, struct sn_msgio_hdr *hdr, unsigned n, bool send)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		ssize_t r;

		do
			r = send ? sendmsg(fd, &hdr[i].msg_hdr, MSG_DONTWAIT | MSG_NOSIGNAL)
				 : recvmsg(fd, &hdr[i].msg_hdr, MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			if (i == 0)
				return -errno;
			break;
		}
		hdr[i].msg_len = (unsigned)r;
		if (r == 0 && !send) {
			i++;
			break;
		}
	}
	return (int)i;
}

static int recv_batch(int fd, struct sn_msgio_hdr *hdr, unsigned n)
{
	return loop_batch(fd, hdr, n, false);
}

static int send_batch(int fd, struct sn_msgio_hdr *hdr, unsigned n)
{
	return loop_batch(fd, hdr, n, true);
}
#endif

/* The pool is empty: take the waiting message off the socket anyway, or the reader would wake
 * again at once for a message it cannot store. MSG_TRUNC makes recv() report its real length,
 * so an end of stream (0) still shows. */
static int discard_one(struct sn_msgio_rx *rx, int fd)
{
	uint8_t scratch[1];
	ssize_t r;

	do
		r = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT | MSG_TRUNC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	rx->frames[0] = NULL;
	rx->len[0] = (uint32_t)r;
	rx->fromlen[0] = 0;
	return 1;
}

int sn_msgio_recv(struct sn_msgio_rx *rx, int fd, struct sn_port *port, bool want_from)
{
	uint32_t max = sn_port_max_frame(port);
	unsigned nbuf, i;
	int n;

	/* Only the first buffer counts a drop when missing: without it a message is lost, without
	 * the others the batch is merely shorter. */
	rx->frames[0] = sn_port_frame_get(port, max);
	if (!rx->frames[0])
		return discard_one(rx, fd);
	for (nbuf = 1; nbuf < SN_MSGIO_BATCH; nbuf++) {
		rx->frames[nbuf] = sn_port_frame_try(port, max);
		if (!rx->frames[nbuf])
			break;
	}
	for (i = 0; i < nbuf; i++) {
		rx->iov[i] = (struct iovec){rx->frames[i]->data, max};
		rx->hdr[i].msg_hdr = (struct msghdr){
			.msg_name = want_from ? &rx->from[i] : NULL,
			.msg_namelen = want_from ? sizeof(rx->from[i]) : 0,
			.msg_iov = &rx->iov[i],
			.msg_iovlen = 1,
		};
	}
	n = recv_batch(fd, rx->hdr, nbuf);
	if (n == -EWOULDBLOCK)
		n = -EAGAIN;
	for (i = 0; n > 0 && i < (unsigned)n; i++) {
		const struct msghdr *h = &rx->hdr[i].msg_hdr;

		rx->len[i] = rx->hdr[i].msg_len;
		rx->fromlen[i] = want_from ? h->msg_namelen : 0;
		if (sn_unlikely(h->msg_flags & MSG_TRUNC)) {
			port->stats.drop_oversize++;
			sn_frame_unref(rx->frames[i]);
			rx->frames[i] = NULL;
			continue;
		}
		rx->frames[i]->len = rx->len[i];
	}
	/* hand back what the batch did not fill, last first so the pool's hot buffers stay on top */
	while (nbuf > i)
		sn_frame_unref(rx->frames[--nbuf]);
	return n;
}

/* The head frame cannot go out on this socket at all: drop it so the rest can. */
static void drop_head(struct sn_port *port)
{
	port->stats.drop_oversize++;
	sn_txq_drop(port, 1);
}

int sn_msgio_send(struct sn_msgio_tx *tx, int fd, struct sn_port *port, const struct sn_sockaddr *to)
{
	struct sn_txq *q = &port->txq;

	while (!sn_txq_empty(q)) {
		uint32_t n = SN_MIN(sn_txq_len(q), SN_MSGIO_BATCH);
		int r;

		for (uint32_t i = 0; i < n; i++) {
			struct sn_frame *f = sn_txq_peek(q, i);

			tx->iov[i] = (struct iovec){f->data, f->len};
			tx->hdr[i].msg_hdr = (struct msghdr){
				.msg_name = to ? (void *)&to->u : NULL,
				.msg_namelen = to ? to->len : 0,
				.msg_iov = &tx->iov[i],
				.msg_iovlen = 1,
			};
		}
		/* a short count means the next message failed: the next round meets its error */
		r = send_batch(fd, tx->hdr, n);
		if (r == -EMSGSIZE) {
			drop_head(port);
			continue;
		}
		if (r < 0)
			return r == -EWOULDBLOCK ? -EAGAIN : r;
		sn_txq_sent(port, (uint32_t)r);
	}
	return 0;
}
