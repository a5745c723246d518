"""gsopkt.py - TCP and UDP frames as a guest's stack hands them to a device that does its
checksums and segmentation (a partial checksum: the pseudo-header's sum in the checksum field),
and checks of what a switch made of them: segments with every length and checksum right, IP
ids and sequence numbers counting on, FIN/PSH only on the last and CWR only on the first, the
payloads together the original's. Used by the vhost-user and TAP offload tests."""

import struct

TCP, UDP = 6, 17
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128


def csum_sum(b, s=0):
    if len(b) % 2:
        b += b"\0"
    s += sum(struct.unpack("!%dH" % (len(b) // 2), b))
    return s


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo(ip, ipv, proto, l4len):
    addrs = ip[12:20] if ipv == 4 else ip[8:40]
    return csum_sum(addrs) + proto + (l4len >> 16) + (l4len & 0xFFFF)


class Frame:
    """An Ethernet frame with IPv4 or IPv6, TCP or UDP, and where its parts are."""

    def __init__(self, data, l3, l4, pay, ipv, proto):
        self.data, self.l3, self.l4, self.pay, self.ipv, self.proto = data, l3, l4, pay, ipv, proto

    @property
    def payload(self):
        return self.data[self.pay:]

    def vnet(self, gso_size=0, hdr_len=None, gso_type=None):
        """The virtio-net header fields (flags, gso_type, hdr_len, gso_size, csum_start,
        csum_offset) a guest sends with it: NEEDS_CSUM, and GSO when @gso_size."""
        off = 16 if self.proto == TCP else 6
        if not gso_size:
            return (1, 0, 0, 0, self.l4, off)
        if gso_type is None:
            gso_type = 5 if self.proto == UDP else 1 if self.ipv == 4 else 4
        return (1, gso_type, self.pay if hdr_len is None else hdr_len, gso_size, self.l4, off)


def build(dst, src, ipv=4, proto=TCP, payload=b"", flags=ACK | PSH, seq=0x10000000, ip_id=0x1234, tags=()):
    """A frame with a partial checksum; @tags: (tpid, tci) pairs, outermost first."""
    l2 = dst + src + b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in tags)
    l4h_len = 20 if proto == TCP else 8
    if ipv == 4:
        iph_len = 20
        et = 0x0800
    else:
        iph_len = 40
        et = 0x86DD
    l3 = len(l2) + 2
    l4 = l3 + iph_len
    total = l4 + l4h_len + len(payload)
    if ipv == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total - l3, ip_id, 0x4000, 64, proto, 0, bytes([10, 0, 0, 1]),
                         bytes([10, 0, 0, 2]))
        ip = ip[:10] + struct.pack("!H", ~fold(csum_sum(ip)) & 0xFFFF) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, total - l4, proto, 64, bytes.fromhex("fd00" + "00" * 13 + "01"),
                         bytes.fromhex("fd00" + "00" * 13 + "02"))
    if proto == TCP:
        l4h = struct.pack("!HHIIBBHHH", 40000, 5201, seq, 77, 5 << 4, flags, 65535, 0, 0)
        coff = 16
    else:
        l4h = struct.pack("!HHHH", 40000, 5201, total - l4, 0)
        coff = 6
    part = fold(pseudo(ip, ipv, proto, total - l4))
    l4h = l4h[:coff] + struct.pack("!H", part) + l4h[coff + 2:]
    data = l2 + struct.pack("!H", et) + ip + l4h + payload
    return Frame(data, l3, l4, l4 + l4h_len, ipv, proto)


def pattern(n, seed=1):
    return bytes((i * 7 + (i >> 8) * 3 + seed) & 0xFF for i in range(n))


def l4_csum_ok(seg, f):
    """Whether the TCP or UDP checksum of @seg (laid out as @f) verifies."""
    s = pseudo(seg[f.l3:], f.ipv, f.proto, len(seg) - f.l4)
    return fold(csum_sum(seg[f.l4:], s)) == 0xFFFF


def check_full_csum(frame, f):
    """Asserts that @frame, laid out as @f, carries a complete, correct checksum."""
    assert l4_csum_ok(frame, f), "checksum does not verify"


def check_segments(f, segs, mss):
    """Asserts that @segs are the segments of @f (built by build()) cut at @mss; returns the
    payload they carry together."""
    assert segs, "no segments"
    got = b""
    oflags = f.data[f.l4 + 13] if f.proto == TCP else 0
    seq0 = struct.unpack_from("!I", f.data, f.l4 + 4)[0] if f.proto == TCP else 0
    id0 = struct.unpack_from("!H", f.data, f.l3 + 4)[0] if f.ipv == 4 else 0
    for i, s in enumerate(segs):
        last = i == len(segs) - 1
        part = s[f.pay:]
        assert s[:f.l3] == f.data[:f.l3], f"segment {i}: L2 header differs"
        assert len(part) <= mss and (last or len(part) == mss), f"segment {i}: {len(part)} bytes of payload, mss {mss}"
        if f.ipv == 4:
            tot, ip_id = struct.unpack_from("!HH", s, f.l3 + 2)
            assert tot == len(s) - f.l3, f"segment {i}: IPv4 total length {tot}, want {len(s) - f.l3}"
            assert ip_id == (id0 + i) & 0xFFFF, f"segment {i}: IP id {ip_id:#x}, want {(id0 + i) & 0xFFFF:#x}"
            assert fold(csum_sum(s[f.l3:f.l4])) == 0xFFFF, f"segment {i}: IPv4 header checksum"
        else:
            plen = struct.unpack_from("!H", s, f.l3 + 4)[0]
            assert plen == len(s) - f.l3 - 40, f"segment {i}: IPv6 payload length {plen}"
        if f.proto == TCP:
            seq = struct.unpack_from("!I", s, f.l4 + 4)[0]
            assert seq == (seq0 + len(got)) & 0xFFFFFFFF, f"segment {i}: seq {seq:#x}"
            want = oflags
            if not last:
                want &= ~(FIN | PSH)
            if i:
                want &= ~CWR
            assert s[f.l4 + 13] == want, f"segment {i}: TCP flags {s[f.l4 + 13]:#x}, want {want:#x}"
        else:
            ulen = struct.unpack_from("!H", s, f.l4 + 4)[0]
            assert ulen == len(s) - f.l4, f"segment {i}: UDP length {ulen}"
        assert l4_csum_ok(s, f), f"segment {i}: TCP/UDP checksum does not verify"
        got += part
    assert got == f.payload, "the segments' payloads are not the frame's"
    return got
