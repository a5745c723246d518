/* offload.h - checksum and segmentation offloads as frames carry them across the switch.
 *
 * A frame may leave work to whoever receives it, as a virtio-net header says (VIRTIO 1.x,
 * 5.1.6): a checksum to fill in (NEEDS_CSUM, at csum_offset from csum_start, the field holding
 * the pseudo-header sum), or a large TCP or UDP frame to cut into segments of gso_size payload
 * bytes (GSO). struct sn_offload holds that beside the frame (struct sn_frame.off), so it costs
 * no allocation. Ports say what they take (port.h, offload_tx) and what their peer may send
 * (offload_rx) with the SN_OFFLOAD_* bits. On the way in the switch checks what the frame
 * claims against its bytes (sn_offload_check()); on the way out, a port that takes the
 * offload gets the frame as it came, any other gets the work done: the checksum filled in, or
 * the segments (sn_offload_segment()), with IP ids, sequence numbers, flags, lengths and
 * checksums as the receiver would have made them. */
#ifndef SN_OFFLOAD_H
#define SN_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sn_frame;
struct sn_pool;

/* What a port takes, or what its peer may send: a set of these bits. */
#define SN_OFFLOAD_CSUM (1u << 0)    /* partial checksums (NEEDS_CSUM); also DATA_VALID */
#define SN_OFFLOAD_TSO4 (1u << 1)    /* GSO TCP over IPv4 */
#define SN_OFFLOAD_TSO6 (1u << 2)    /* GSO TCP over IPv6 */
#define SN_OFFLOAD_TSO_ECN (1u << 3) /* TSO of a stream that set CWR (the ECN bit of gso_type) */
#define SN_OFFLOAD_USO4 (1u << 4)    /* GSO UDP (UDP_L4) over IPv4 */
#define SN_OFFLOAD_USO6 (1u << 5)    /* GSO UDP over IPv6 */
#define SN_OFFLOAD_ALL 0x3fu

/* virtio-net header values (VIRTIO 1.x, 5.1.6) */
#define SN_VNET_F_NEEDS_CSUM 1
#define SN_VNET_F_DATA_VALID 2
#define SN_VNET_GSO_NONE 0
#define SN_VNET_GSO_TCPV4 1
#define SN_VNET_GSO_TCPV6 4
#define SN_VNET_GSO_UDP_L4 5
#define SN_VNET_GSO_ECN 0x80

/* Segments one GSO frame may become: more is a malformed header (a gso_size of 1 would make a
 * 64 KiB frame into 65000 segments, more than the pool holds). A 64 KiB frame at an MSS of
 * 536, the smallest IPv4 guarantees, is 123. */
#define SN_OFFLOAD_MAX_SEGS 128
/* Largest frame that may carry offloads: a tag pushed on the way out still leaves every
 * offset in 16 bits. */
#define SN_OFFLOAD_FRAME_MAX (65535u - 4u)

struct sn_offload {
	uint8_t flags;        /* SN_VNET_F_* */
	uint8_t gso;          /* SN_VNET_GSO_*, with SN_VNET_GSO_ECN */
	uint8_t need;         /* SN_OFFLOAD_* a port must take to get the frame as it is */
	uint16_t hdr_len;     /* GSO: bytes of headers, as the sender said (at least the real ones) */
	uint16_t gso_size;    /* GSO: payload bytes per segment */
	uint16_t csum_start;  /* NEEDS_CSUM: from the frame's first byte */
	uint16_t csum_offset;
	uint16_t seg_ip;      /* GSO: IP length of the largest segment (what the MTU limits) */
};

/** Reads the first 10 bytes of a virtio-net header (little-endian) into @ret: flags, gso_type,
 * hdr_len, gso_size, csum_start, csum_offset, unchecked. */
void sn_vnet_hdr_get(const uint8_t *hdr, struct sn_offload *ret);

/**
 * Writes the first 10 bytes of a virtio-net header for a frame with @o into @hdr, for a
 * receiver that takes @caps: DATA_VALID only when it takes checksums, nothing it does not
 * take. Returns 0, or -ENOTSUP when the frame needs an offload not in @caps (the header is
 * zeros then: the frame cannot go as it is).
 */
int sn_vnet_hdr_put(uint8_t *hdr, const struct sn_offload *o, uint32_t caps);

/**
 * Checks the offload state of @f (f->off, as its port read it) against the frame's bytes, for
 * a sender allowed @caps, on a port of MTU @mtu, and normalises it: unknown flag bits and the
 * fields its flags do not use are cleared, f->off.need and f->off.seg_ip are set. NEEDS_CSUM
 * must point inside the frame, behind its Ethernet header and tags. A GSO frame must be
 * NEEDS_CSUM at its TCP or UDP header, of the protocol and IP version its gso_type says
 * (IPv4 not a fragment; IPv6 with at most 4 extension headers of hop-by-hop, routing and
 * destination options), with gso_size at least 1, hdr_len from the real headers' length up to
 * the frame's, and at most SN_OFFLOAD_MAX_SEGS segments. Returns 0; -EINVAL for a header that
 * is malformed or not allowed by @caps; -EMSGSIZE for a GSO frame over SN_OFFLOAD_FRAME_MAX or
 * whose segments would be over @mtu.
 */
int sn_offload_check(struct sn_frame *f, uint32_t caps, unsigned mtu);

/** Moves the offsets of f->off by @delta bytes, for a tag pushed (4) or popped (-4) in front of
 * them. */
void sn_offload_shift(struct sn_offload *o, int delta);

/**
 * Fills in the checksum a NEEDS_CSUM frame without GSO leaves to its receiver, in place: from
 * then on the frame says DATA_VALID and needs nothing. For a frame that sn_offload_check()
 * passed.
 */
void sn_offload_csum_finish(struct sn_frame *f);

/**
 * Cuts GSO frame @f (sn_offload_check() passed it; tags may have changed since) into plain
 * frames from @pool with at most gso_size payload bytes each, fully checksummed and marked
 * DATA_VALID, linked from f->segs through seg_next (f holds a reference to each, released with
 * it). Returns the number of segments; -ENOBUFS when the pool ran out (nothing is kept);
 * -EINVAL when the frame is not what its header says.
 */
int sn_offload_segment(struct sn_pool *pool, struct sn_frame *f);

/** Ones' complement sum of @len bytes at @p added to @sum (not folded), as 16-bit words in the
 * byte order of memory: store the folded result with memcpy(). @p's first byte starts a word. */
uint64_t sn_csum_add(uint64_t sum, const void *p, size_t len);

/** Folds @sum to 16 bits and complements it: the checksum to store. */
uint16_t sn_csum_fold(uint64_t sum);

/**
 * For a peer that offloads checksums and TCP segmentation without a header per frame (vmnet
 * with its TSO and checksum-offload parameters): describes a TCP or UDP frame over IPv4 or
 * IPv6 as NEEDS_CSUM, writing the pseudo-header's sum into its checksum field and making its
 * IPv4 header checksum right (whatever the peer left there), and a TCP frame whose IP packet
 * is over @mtu as GSO with the MSS that @mtu gives. Ethernet padding behind the IP packet is
 * cut off. Frames of other protocols, or whose IP length does not fit the frame, are left as
 * they are. sn_offload_check() then checks the result like any other.
 */
void sn_offload_infer(struct sn_frame *f, unsigned mtu);

/** "csum,tso4,tso6,ecn,uso4,uso6" for the bits of @caps that are set ("" for none). */
void sn_offload_names(uint32_t caps, char *buf, size_t len);

#endif
