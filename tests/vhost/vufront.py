"""vufront.py - a vhost-user front-end for tests: plays the VMM (QEMU's part) against squibnet's
vhost-user back-end. Guest memory is a memfd; the two split rings (0 = RX, 1 = TX) and their
buffers live in it; kicks and calls are eventfds. The driver side is deliberately simple:
fixed 2 KiB buffers, one descriptor per buffer, used rings polled."""

import mmap
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from sntest import scaled  # noqa: E402

# request codes and flags of docs/interop/vhost-user.rst
GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
VERSION, REPLY, NEED_REPLY = 0x1, 0x4, 0x8
F_PROTOCOL_FEATURES = 1 << 30
PROTOCOL_F_MQ, PROTOCOL_F_REPLY_ACK = 1 << 0, 1 << 3
VRING_NOFD = 1 << 8

# virtio feature bits
F_CSUM, F_GUEST_CSUM = 1 << 0, 1 << 1
F_GUEST_TSO4, F_GUEST_TSO6, F_GUEST_ECN = 1 << 7, 1 << 8, 1 << 9
F_HOST_TSO4, F_HOST_TSO6, F_HOST_ECN = 1 << 11, 1 << 12, 1 << 13
F_GUEST_USO4, F_GUEST_USO6, F_HOST_USO = 1 << 54, 1 << 55, 1 << 56
F_OFFLOADS = (F_CSUM | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_GUEST_ECN | F_HOST_TSO4 | F_HOST_TSO6
              | F_HOST_ECN | F_GUEST_USO4 | F_GUEST_USO6 | F_HOST_USO)
F_MRG_RXBUF = 1 << 15
F_INDIRECT_DESC = 1 << 28
F_EVENT_IDX = 1 << 29
F_VERSION_1 = 1 << 32

DESC_F_NEXT, DESC_F_WRITE = 1, 2
HDR_LEN = 12
BUF = 2048
RX, TX = 0, 1
# large TX frames (GSO) go from slots of their own, past the ring buffers
BIG_BASE, BIG_SLOT, BIG_SLOTS = 0x200000, 0x11000, 28

# virtio-net header values
NEEDS_CSUM, DATA_VALID = 1, 2
GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4, GSO_ECN = 0, 1, 3, 4, 5, 0x80


def vnet_hdr(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0):
    """The first 10 bytes of a virtio-net header."""
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def parse_vnet_hdr(b):
    """(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) of a header's first 10 bytes."""
    return struct.unpack("<BBHHHH", b[:10])


class GuestMemory:
    """One memfd region: guest-physical base `gpa`, mapped by the "VMM" at user address `uaddr`."""

    def __init__(self, size=4 << 20, gpa=0x40000000, uaddr=0x7F1200000000, sealing=False):
        """`sealing`: created with MFD_ALLOW_SEALING (as QEMU's memfd backend does), so seals can
        still be added; without it the memfd's seals are locked from the start."""
        self.size, self.gpa, self.uaddr = size, gpa, uaddr
        self.fd = os.memfd_create("vufront-guest", os.MFD_CLOEXEC | (os.MFD_ALLOW_SEALING if sealing else 0))
        os.ftruncate(self.fd, size)
        self.mm = mmap.mmap(self.fd, size)
        # ring indices are written and read whole, as a driver's 16-bit stores are: struct's
        # pack_into zeroes its bytes first and then writes one at a time, so a back-end reading
        # at that moment would see an avail index of 0 (a ring 65000 entries ahead, broken)
        self.words = memoryview(self.mm).cast("H")

    def off(self, gpa):
        assert self.gpa <= gpa < self.gpa + self.size
        return gpa - self.gpa

    def write(self, gpa, data):
        o = self.off(gpa)
        self.mm[o:o + len(data)] = data

    def read(self, gpa, n):
        o = self.off(gpa)
        return bytes(self.mm[o:o + n])

    def u16(self, gpa):
        o = self.off(gpa)
        assert o % 2 == 0 and sys.byteorder == "little"
        return self.words[o // 2]

    def put16(self, gpa, v):
        o = self.off(gpa)
        assert o % 2 == 0 and sys.byteorder == "little"
        self.words[o // 2] = v & 0xFFFF

    def to_user(self, gpa):
        return gpa - self.gpa + self.uaddr

    def close(self):
        self.words.release()
        self.mm.close()
        os.close(self.fd)


class Ring:
    """The driver's side of one split ring whose every descriptor i owns buffer i."""

    def __init__(self, mem, base, bufs, num=256):
        self.mem, self.num = mem, num
        self.desc = base
        self.avail = base + 16 * num
        self.used = (self.avail + 6 + 2 * num + 3) & ~3
        self.bufs = bufs
        self.avail_idx = 0      # driver's next avail slot
        self.used_seen = 0      # used entries consumed
        self.kick = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.call = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        for i in range(num):
            self.set_desc(i, self.buf(i), BUF, 0)
        mem.write(self.avail, bytes(6 + 2 * num))
        mem.write(self.used, bytes(6 + 8 * num))

    def buf(self, i):
        return self.bufs + i * BUF

    def set_desc(self, i, addr, length, flags, nxt=0):
        self.mem.write(self.desc + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def offer(self, head):
        self.mem.put16(self.avail + 4 + 2 * (self.avail_idx % self.num), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.mem.put16(self.avail + 2, self.avail_idx)

    def used_idx(self):
        return self.mem.u16(self.used + 2)

    def take_used(self):
        """New used entries as (id, len)."""
        out = []
        idx = self.used_idx()
        while self.used_seen != idx:
            slot = self.used + 4 + 8 * (self.used_seen % self.num)
            out.append(struct.unpack("<II", self.mem.read(slot, 8)))
            self.used_seen = (self.used_seen + 1) & 0xFFFF
        return out

    def do_kick(self):
        os.eventfd_write(self.kick, 1)

    def avail_event(self):
        """What the device asked for with EVENT_IDX: kick when the avail index passes this."""
        return self.mem.u16(self.used + 4 + 8 * self.num)

    def kick_if_asked(self, old):
        """Kicks the way a Linux driver does with EVENT_IDX: only when the entries added since
        avail index `old` cross avail_event. Returns True when it kicked."""
        new, ev = self.avail_idx, self.avail_event()
        if ((new - ev - 1) & 0xFFFF) < ((new - old) & 0xFFFF):
            self.do_kick()
            return True
        return False

    def calls(self):
        """How many interrupts arrived (0 when none)."""
        try:
            return os.eventfd_read(self.call)
        except BlockingIOError:
            return 0

    def close(self):
        os.close(self.kick)
        os.close(self.call)


class Frontend:
    """One vhost-user connection with a guest: rings 0 (RX) and 1 (TX) in a memfd."""

    def __init__(self, path, num=256, connect_timeout=5.0, sock=None):
        """Connects to `path`, or speaks over the already-connected `sock` when given."""
        self.sock = sock or socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(scaled(5))
        deadline = time.monotonic() + scaled(connect_timeout)
        while sock is None:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.mem = None
        self.rings = None
        self.num = num
        self.tx_next = 0

    # ---- messages ----

    def send(self, req, payload=b"", fds=(), flags=VERSION, size=None):
        hdr = struct.pack("<III", req, flags, len(payload) if size is None else size)
        if fds:
            socket.send_fds(self.sock, [hdr + payload], list(fds))
        else:
            self.sock.sendall(hdr + payload)

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("back-end closed the connection")
            data += chunk
        return data

    def reply(self, req):
        r, flags, size = struct.unpack("<III", self._read(12))
        assert r == req and flags == VERSION | REPLY, f"reply header {r} {flags:#x} for request {req}"
        return self._read(size)

    def call(self, req, payload=b"", fds=(), flags=VERSION):
        self.send(req, payload, fds, flags)
        return self.reply(req)

    def get_u64(self, req):
        data = self.call(req)
        assert len(data) == 8, data
        return struct.unpack("<Q", data)[0]

    def set_u64(self, req, v, fds=(), ack=False):
        self.send(req, struct.pack("<Q", v), fds, VERSION | (NEED_REPLY if ack else 0))
        if ack:
            assert struct.unpack("<Q", self.reply(req))[0] == 0

    def state(self, req, index, num):
        self.send(req, struct.pack("<II", index, num))

    def closed_by_peer(self, timeout=3.0):
        """True when the back-end closes the connection within timeout (scaled)."""
        end = time.monotonic() + scaled(timeout)
        while time.monotonic() < end:
            r, _, _ = select.select([self.sock], [], [], end - time.monotonic())
            if not r:
                break
            try:
                if not self.sock.recv(4096):
                    return True
            except ConnectionResetError:
                return True
        return False

    def close(self):
        self.sock.close()
        if self.rings:
            for r in self.rings:
                r.close()
        if self.mem:
            self.mem.close()

    # ---- a whole session ----

    def mem_table_payload(self, regions):
        """regions: (gpa, size, uaddr, offset) tuples."""
        return struct.pack("<II", len(regions), 0) + b"".join(struct.pack("<QQQQ", *r) for r in regions)

    def setup(self, features=F_VERSION_1 | F_MRG_RXBUF, enable=True, rx_buffers=64, mem=None, fds=None):
        """The handshake QEMU does at start, then RX buffers posted and both rings kicked.
        `mem` replaces the default GuestMemory; `fds` maps (SET_VRING_KICK or _CALL, ring) to a
        descriptor sent instead of that ring's eventfd."""
        offered = self.get_u64(GET_FEATURES)
        assert offered & F_PROTOCOL_FEATURES, f"{offered:#x}"
        assert features & ~offered == 0, f"back-end offers {offered:#x}, want {features:#x}"
        self.features = features | F_PROTOCOL_FEATURES
        self.set_u64(SET_FEATURES, self.features)
        pf = self.get_u64(GET_PROTOCOL_FEATURES)
        assert pf & PROTOCOL_F_REPLY_ACK and pf & PROTOCOL_F_MQ, f"{pf:#x}"
        self.set_u64(SET_PROTOCOL_FEATURES, PROTOCOL_F_REPLY_ACK | PROTOCOL_F_MQ)
        assert self.get_u64(GET_QUEUE_NUM) == 1
        self.send(SET_OWNER)
        m = self.mem = mem or GuestMemory()
        self.send(SET_MEM_TABLE, self.mem_table_payload([(m.gpa, m.size, m.uaddr, 0)]), [m.fd],
                  VERSION | NEED_REPLY)
        assert struct.unpack("<Q", self.reply(SET_MEM_TABLE))[0] == 0
        self.rings = [Ring(m, m.gpa + 0x0000, m.gpa + 0x10000, self.num),
                      Ring(m, m.gpa + 0x8000, m.gpa + 0x100000, self.num)]
        for i, r in enumerate(self.rings):
            self.state(SET_VRING_NUM, i, self.num)
            self.state(SET_VRING_BASE, i, 0)
            self.send(SET_VRING_ADDR, struct.pack("<IIQQQQ", i, 0, m.to_user(r.desc), m.to_user(r.used),
                                                  m.to_user(r.avail), 0))
            fds = fds or {}
            self.set_u64(SET_VRING_KICK, i, [fds.get((SET_VRING_KICK, i), r.kick)])
            self.set_u64(SET_VRING_CALL, i, [fds.get((SET_VRING_CALL, i), r.call)])
        if enable:
            for i in (RX, TX):
                self.state(SET_VRING_ENABLE, i, 1)
        self.post_rx(rx_buffers)
        self.rings[TX].do_kick()
        # a message with a reply: everything before it has been processed
        self.set_u64(SET_FEATURES, self.features, ack=True)

    def post_rx(self, n):
        rx = self.rings[RX]
        for _ in range(n):
            head = rx.avail_idx % rx.num
            rx.set_desc(head, rx.buf(head), BUF, DESC_F_WRITE)
            rx.offer(head)
        rx.do_kick()

    def send_frame(self, frame, kick=True, vhdr=b""):
        """Puts one frame on the TX ring and kicks. Its virtio-net header is @vhdr (10 bytes,
        vnet_hdr()) or zeros; a frame larger than a ring buffer goes from a big slot."""
        tx = self.rings[TX]
        head = tx.avail_idx % tx.num
        data = vhdr.ljust(HDR_LEN, b"\0")[:HDR_LEN] + frame
        if len(data) <= BUF:
            addr = tx.buf(head)
        else:
            assert len(data) <= BIG_SLOT and self.mem.size >= BIG_BASE + BIG_SLOTS * BIG_SLOT
            addr = self.mem.gpa + BIG_BASE + (self.tx_next % BIG_SLOTS) * BIG_SLOT
            self.tx_next += 1
        tx.mem.write(addr, data)
        tx.set_desc(head, addr, len(data), 0)
        tx.offer(head)
        if kick:
            tx.do_kick()

    def recv_packets(self, want=1, timeout=2.0):
        """Packets the back-end wrote into RX buffers as (header's first 10 bytes, frame), a
        packet of num_buffers > 1 (MRG_RXBUF) put together, until @want arrived or the timeout
        (scaled); used buffers are posted again."""
        rx = self.rings[RX]
        out, parts, need, hdr = [], [], 0, b""
        end = time.monotonic() + scaled(timeout)
        while True:
            used = rx.take_used()
            for head, length in used:
                data = rx.mem.read(rx.buf(head), length)
                if need == 0:
                    assert length >= HDR_LEN, f"used length {length}"
                    hdr, need = data[:10], struct.unpack_from("<H", data, 10)[0]
                    assert need >= 1, "num_buffers 0"
                    parts = [data[HDR_LEN:]]
                else:
                    parts.append(data)
                need -= 1
                if need == 0:
                    out.append((hdr, b"".join(parts)))
                rx.set_desc(head, rx.buf(head), BUF, DESC_F_WRITE)
                rx.offer(head)
            if used:
                rx.do_kick()
            if (len(out) >= want and need == 0) or time.monotonic() > end:
                return out
            time.sleep(0.005)

    def recv_frames(self, want=1, timeout=2.0, repost=True):
        """Frames the back-end wrote into RX buffers (header stripped), until `want` arrived or
        the timeout (scaled); used buffers are posted again."""
        rx = self.rings[RX]
        out = []
        end = time.monotonic() + scaled(timeout)
        while True:
            for head, length in rx.take_used():
                data = rx.mem.read(rx.buf(head), length)
                assert length >= HDR_LEN, f"used length {length}"
                nbuf = struct.unpack_from("<H", data, 10)[0]
                assert nbuf == 1, f"num_buffers {nbuf}"
                out.append(data[HDR_LEN:])
                if repost:
                    rx.set_desc(head, rx.buf(head), BUF, DESC_F_WRITE)
                    rx.offer(head)
            if repost and out:
                rx.do_kick()
            if len(out) >= want or time.monotonic() > end:
                return out
            time.sleep(0.005)

    def wait_tx_used(self, n, timeout=2.0):
        """Waits until the back-end returned n TX chains in all (timeout scaled)."""
        tx = self.rings[TX]
        end = time.monotonic() + scaled(timeout)
        while tx.used_idx() < n:
            if time.monotonic() > end:
                raise AssertionError(f"TX used idx {tx.used_idx()}, want {n}")
            time.sleep(0.005)
