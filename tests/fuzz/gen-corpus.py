#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target: tests/fuzz/corpus/NAME/seed-*.

    python3 tests/fuzz/gen-corpus.py

Seeds are small, meaningful inputs in each target's input format (see the comment at the top of
tests/fuzz/fuzz-NAME.c): real frames in each framing, the SPECs of the README, squibnetctl
sessions, rings as a driver fills them, vhost-user sessions in the order tests/vhost/vufront.py
(and QEMU) sends them, gvproxy API replies as tests/gvproxy/fake-gvproxy.c and gvisor-tap-vsock
(Go's net/http) write them, and tcpdump filters with frames for them. Files named crash-* are
inputs that once broke a target; this script leaves them alone. Run it again after changing a
target's input format, and commit what it wrote."""

import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
written = {}


def crash(target, name, data):
    """An input that once broke a target, kept in its corpus under its own name for good."""
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)
    written.setdefault(target, set()).add("seed-" + name)


# ---- frames ----

MAC_A = bytes.fromhex("525400123401")
MAC_B = bytes.fromhex("525400123402")
BCAST = b"\xff" * 6


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0,
                    bytes(src), bytes(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def arp_request():
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_A, bytes([10, 0, 0, 1]), bytes(6),
                      bytes([10, 0, 0, 2]))
    return BCAST + MAC_A + b"\x08\x06" + arp


def icmp_echo(size=56):
    body = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + bytes(range(size % 256)) * (size // 256 + 1)
    body = body[:8 + size]
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    return MAC_B + MAC_A + b"\x08\x00" + ipv4([10, 0, 0, 1], [10, 0, 0, 2], 1, body)


def tcp_syn(dport=80):
    tcp = struct.pack("!HHIIBBHHH", 40000, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    return MAC_B + MAC_A + b"\x08\x00" + ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, tcp)


def dhcp_discover():
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, 0x1234, 0, 0x8000, bytes(4), bytes(4),
                        bytes(4), bytes(4), MAC_A + bytes(10), bytes(64), bytes(128))
    bootp += b"\x63\x82\x53\x63" + b"\x35\x01\x01\xff"
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    return BCAST + MAC_A + b"\x08\x00" + ipv4([0, 0, 0, 0], [255, 255, 255, 255], 17, udp)


def vlan(tag, frame):
    return frame[:12] + struct.pack("!HH", 0x8100, tag) + frame[12:]


def sized(n):
    f = icmp_echo(max(0, n - 42))
    return f[:n] if len(f) >= n else f + bytes(n - len(f))


# ---- framing: [framing][chunk seed][stop every] stream ----

def prefix(kind, n):
    return [struct.pack(">I", n), struct.pack("<H", n), struct.pack(">H", n)][kind]


def stream(kind, frames):
    return b"".join(prefix(kind, len(f)) + f for f in frames)


def gen_framing():
    for kind, name in enumerate(["qemu", "hyperkit", "vde"]):
        two = [arp_request(), icmp_echo()]
        put("framing", name + "-two-frames", bytes([kind, 0, 0]) + stream(kind, two))
        put("framing", name + "-chunked", bytes([kind, 37, 0]) + stream(kind, two + [sized(1514), sized(60)]))
        put("framing", name + "-byte-by-byte", bytes([kind, 255, 0]) + stream(kind, [arp_request()]))
        put("framing", name + "-stop-early", bytes([kind, 0, 2]) + stream(kind, two + [tcp_syn()]))
        s = stream(kind, [icmp_echo(), sized(1514)])
        put("framing", name + "-partial-tail", bytes([kind, 5, 0]) + s[:-700])
        put("framing", name + "-zero-length", bytes([kind, 0, 0]) + stream(kind, [arp_request()]) +
            prefix(kind, 0) + stream(kind, [arp_request()]))
        put("framing", name + "-jumbo", bytes([kind, 200, 1]) + stream(kind, [sized(9014), sized(64)]))
    put("framing", "qemu-over-max", bytes([0, 0, 0]) + struct.pack(">I", 65536) + sized(100))
    put("framing", "qemu-runt", bytes([0, 0, 0]) + stream(0, [b"\x01", sized(13)]))


# ---- spec: SPEC text ----

def gen_spec():
    specs = {
        "stream-listen-unix": "stream,listen=unix:sw.sock",
        "stream-listen-tcp": "stream,listen=tcp:127.0.0.1:5555",
        "stream-listen-tcp6": "stream,listen=tcp:[::1]:5556,name=v6",
        "stream-connect": "stream,connect=unix:gv.sock",
        "stream-vde-jumbo": "stream,listen=unix:sw.sock,framing=vde,name=vms,mtu=9000",
        "stream-hyperkit": "stream,connect=unix:gv.sock,framing=hyperkit",
        "stream-quoted": 'stream,listen="unix:a,b.sock",name=q',
        "dgram-listen": "dgram,listen=sw-dgram.sock",
        "dgram-vfkit": "dgram,connect=gv.sock,local=sw-gv.sock,hello=vfkit",
        "seqpacket-listen": "seqpacket,listen=gv.sock",
        "seqpacket-connect": "seqpacket,connect=gv.sock,mtu=1500",
        "vhost-user": "vhost-user,listen=vm1.sock,name=vm1",
        "gvproxy": "gvproxy,name=gv,ssh-port=-1",
        "gvproxy-args": 'gvproxy,args="-debug -mtu 1500",restart=off,mtu=1500',
        "pcap": "pcap,dev=sn-host,promisc=off,filter=arp",
        "tap": "tap,ifname=tap-vms,create=on",
        "capture-file": "all.pcap",
        "capture-filter": "arp.pcap,filter=arp or icmp",
        "capture-quoted": 'x.pcap,filter="ether host 52:54:00:12:34:01 and not tcp port 22",dir=both,snaplen=128',
        "capture-per-port": "vm-%p.pcap,ports=vms.1+vms.2,dir=out,rotate=100,count=10,tstamp=ns",
        "address-tcp": "tcp:127.0.0.1:8080",
        "address-unix": "unix:run.sock",
        "bad-no-value": "stream,listen",
        "bad-twice": "stream,name=a,name=b",
        "bad-no-kind": ",name=a",
        "bad-mtu": "stream,listen=unix:m.sock,mtu=99999",
        "bad-kind": "bogus,listen=unix:x.sock",
        "bad-quote": 'stream,name="open',
        "bad-after-quote": 'stream,name="a"b',
        "bad-framing": "stream,listen=unix:f.sock,framing=ppp",
        "bad-both": "stream,listen=unix:a.sock,connect=unix:b.sock",
        "bad-host": "stream,connect=tcp:example.invalid:80",
        "bad-bool": "tap,ifname=t0,create=maybe",
        "many-keys": "stream," + ",".join("k%d=%d" % (i, i) for i in range(17)),
    }
    for name, text in specs.items():
        put("spec", name, text)


# ---- control: connections separated by \f, \v = let the server run ----

def req(*args, json=False):
    return "SQUIBNET-CONTROL 1%s\n" % (" json" if json else "") + "".join(a + "\n" for a in args) + "\n"


def gen_control():
    s = {
        "ports": req("ports"),
        "ports-json": req("ports", json=True),
        "help": req("help"),
        "help-json": req("help", json=True),
        "stats": req("stats") + "\f" + req("stats", json=True),
        "fdb": req("fdb") + "\f" + req("fdb", "show", json=True) + "\f" + req("fdb", "flush") + "\f" +
               req("fdb", "flush", "nosuch"),
        "port-add-del": req("port", "add", "stream,listen=unix:a.sock,name=vms") + "\f" +
                        req("ports", json=True) + "\f" + req("port", "del", "vms") + "\f" + req("ports"),
        "port-kinds": req("port", "add", "dgram,listen=d.sock") + "\f" +
                      req("port", "add", "seqpacket,listen=s.sock") + "\f" +
                      req("port", "add", "vhost-user,listen=v.sock,name=vm1") + "\f" +
                      req("port", "add", "stream,connect=unix:ctl.sock,name=loop") + "\f" +
                      req("stats", json=True) + "\f" + req("port", "del", "dgram0"),
        "port-add-bad": req("port", "add", "stream,listen") + "\f" + req("port", "add", "gvproxy,name=gv") +
                        "\f" + req("port", "del", "nosuch", json=True),
        "capture": req("capture", "start", "c.pcap", "filter=arp", "dir=both") + "\f" +
                   req("capture", "list", json=True) + "\f" + req("capture", "stop", "1") + "\f" +
                   req("capture", "list"),
        "capture-bad": req("capture", "start", "c.pcap", "filter=((") + "\f" +
                       req("capture", "stop", "99") + "\f" + req("capture", "start", "x.pcap", "bogus=1"),
        "capture-live": req("capture", "-w", "-", "filter=arp"),
        "capture-per-port": req("port", "add", "stream,listen=unix:p.sock,name=p") + "\f" +
                            req("capture", "start", "v-%p.pcap", "rotate=1", "count=5"),
        "gvproxy": req("gvproxy", "list") + "\f" + req("gvproxy", "expose", "127.0.0.1:8080", "192.168.127.2:80") +
                   "\f" + req("gvproxy", "unexpose", "127.0.0.1:8080", "--proto", "udp", json=True),
        "chunked": "SQUIB\vNET-CONTROL 1\nst\vats\n\v\n",
        "straddle": "SQUIBNET-CONTROL 1\nports\n\v\n",
        "bad-version": "SQUIBNET-CONTROL 2\nports\n\n",
        "bad-magic": "GET / HTTP/1.0\r\n\r\n",
        "bad-option": "SQUIBNET-CONTROL 1 bogus\nports\n\n",
        "bad-empty": "SQUIBNET-CONTROL 1\n\n",
        "bad-nul": "SQUIBNET-CONTROL 1\npo\0rts\n\n",
        "bad-command": req("frobnicate", "now") + "\f" + req("ports", "extra") + "\f" + req("port", "add"),
        "unfinished": "SQUIBNET-CONTROL 1\nports\n",
        "too-many-args": req(*(["help"] + ["x"] * 65)),
    }
    for name, text in s.items():
        put("control", name, text)
    # bytes that are not UTF-8 and quotes in names and messages: JSON replies must stay valid
    put("control", "json-hostile-bytes",
        req("port", "add", 'stream,listen=unix:a.sock,name=\xff\xfe"ok\\', json=True).encode("latin-1") + b"\f" +
        req("ports", json=True).encode() + b"\f" + "SQUIBNET-CONTROL 1 json\nfrob\xc3\x01\n\n".encode("latin-1"))


# ---- virtq: header, then operations (see fuzz-virtq.c) ----

F_EVENT_IDX, F_INDIRECT, F_MRG, F_V1, F_MTU9000, F_PORT = 1, 2, 4, 8, 16, 32
TX, RX = 0, 1
BUF0 = 0x4000
DESC_BASE = [0x0000, 0x2000]
VRING_F_NEXT, VRING_F_WRITE, VRING_F_INDIRECT = 1, 2, 4


def vq_header(feat, log2size, tx_start=0, rx_start=0):
    return struct.pack("<BBHH", feat, log2size, tx_start, rx_start)


def op_write(off, data):
    out = b""
    for i in range(0, len(data), 255):
        part = data[i:i + 255]
        out += struct.pack("<BHB", 0, off + i, len(part)) + part
    return out


def op_desc(ring, idx, off, length, flags=0, nxt=0):
    return struct.pack("<BBHHHHH", 1, ring, idx, off, length, flags, nxt)


def op_desc_raw(ring, idx, addr, length, flags=0, nxt=0):
    return struct.pack("<BBHQIHH", 1, ring | 2 | 4, idx, addr, length, flags, nxt)


def op_avail(ring, head):
    return struct.pack("<BBH", 2, ring, head)


def op_avail_idx(ring, idx):
    return struct.pack("<BBH", 3, ring, idx)


def op_tx(budget=63, drop=False):
    return struct.pack("<BB", 4, budget | (0x80 if drop else 0))


def op_rx():
    return b"\x05"


def op_inject(length, fill=0x5A):
    return struct.pack("<BHB", 6, length, fill)


def op_rx_put(data):
    return struct.pack("<BH", 7, len(data)) + data


def op_notify(ring, enable):
    return struct.pack("<BB", 8, ring | (2 if enable else 0))


def op_flush(ring):
    return struct.pack("<BB", 9, ring)


def op_setup(ring, idx):
    return struct.pack("<BBH", 10, ring, idx)


def op_pop_unpop(ring):
    return struct.pack("<BB", 12, ring)


def hdr_len(feat):
    return 12 if feat & (F_V1 | F_MRG) else 10


def tx_frames(feat, frames, first_buf=0):
    out = b""
    for i, fr in enumerate(frames):
        off = BUF0 + 0x800 * (first_buf + i)
        out += op_write(off, bytes(hdr_len(feat)) + fr)
        out += op_desc(TX, first_buf + i, off, hdr_len(feat) + len(fr))
        out += op_avail(TX, first_buf + i)
    return out


def rx_buffers(n, size=0x800, first=0, base=0x8000):
    out = b""
    for i in range(n):
        out += op_desc(RX, first + i, base + size * i, size, VRING_F_WRITE)
        out += op_avail(RX, first + i)
    return out


def gen_virtq():
    v1 = F_V1
    put("virtq", "tx-rx-one-frame", vq_header(v1, 3) + tx_frames(v1, [arp_request()]) + op_tx() +
        rx_buffers(2) + op_rx())
    put("virtq", "tx-batch", vq_header(v1, 4) + tx_frames(v1, [arp_request(), icmp_echo(), sized(1514),
                                                               sized(60)]) + op_tx() + rx_buffers(4) + op_rx())
    chain = (op_write(BUF0, bytes(12)) + op_write(BUF0 + 0x100, icmp_echo()) +
             op_desc(TX, 0, BUF0, 12, VRING_F_NEXT, 1) + op_desc(TX, 1, BUF0 + 0x100, len(icmp_echo())) +
             op_avail(TX, 0))
    put("virtq", "tx-chain", vq_header(v1, 3) + chain + op_tx() + rx_buffers(1) + op_rx())
    table = 0x3800
    ind = (op_write(BUF0, bytes(12) + arp_request()) +
           op_write(table, struct.pack("<QIHH", 0x100000 + BUF0, 12, VRING_F_NEXT, 1) +
                    struct.pack("<QIHH", 0x100000 + BUF0 + 12, len(arp_request()), 0, 0)) +
           op_desc(TX, 0, table, 32, VRING_F_INDIRECT) + op_avail(TX, 0))
    put("virtq", "tx-indirect", vq_header(v1 | F_INDIRECT, 3) + ind + op_tx() + rx_buffers(1) + op_rx())
    put("virtq", "rx-mergeable", vq_header(v1 | F_MRG, 4) + rx_buffers(8, 256) + op_inject(1000) + op_rx() +
        op_inject(60) + op_rx() + op_flush(RX))
    put("virtq", "rx-mergeable-short", vq_header(v1 | F_MRG, 3) + rx_buffers(2, 256) + op_inject(1400) +
        op_rx() + rx_buffers(4, 256, 2) + op_rx())
    put("virtq", "event-idx", vq_header(v1 | F_EVENT_IDX, 3) + op_notify(TX, True) +
        tx_frames(v1, [arp_request(), icmp_echo()]) + op_tx(0) + op_tx() + op_flush(TX) +
        op_write(0x1000 + 4 + 2 * 8, struct.pack("<H", 1)) + rx_buffers(2) + op_rx())
    put("virtq", "wraparound", vq_header(v1, 2, 65533, 65534) + tx_frames(v1, [arp_request()] * 4) + op_tx() +
        rx_buffers(4) + op_rx() + tx_frames(v1, [icmp_echo()] * 3) + op_tx() + rx_buffers(3) + op_rx())
    put("virtq", "legacy-header", vq_header(0, 3) + tx_frames(0, [arp_request()]) + op_tx() + rx_buffers(1) +
        op_rx())
    cross = op_write(0x7F00, bytes(12) + sized(400)) + op_desc(TX, 0, 0x7F00, 412) + op_avail(TX, 0)
    put("virtq", "region-crossing", vq_header(v1, 3) + cross + op_tx() +
        op_desc(RX, 0, 0x7E00, 0x400, VRING_F_WRITE) + op_avail(RX, 0) + op_rx())
    put("virtq", "rx-put", vq_header(v1, 3) + rx_buffers(2, 128) + op_rx_put(sized(100)) + op_rx_put(sized(600)) +
        op_flush(RX))
    put("virtq", "rx-put-mergeable", vq_header(v1 | F_MRG, 3) + rx_buffers(6, 128) + op_rx_put(sized(600)) +
        op_flush(RX))
    put("virtq", "pop-unpop", vq_header(v1, 3) + tx_frames(v1, [arp_request()] * 3) + op_pop_unpop(TX) +
        op_tx() + op_pop_unpop(RX))
    put("virtq", "reset", vq_header(v1, 3) + tx_frames(v1, [arp_request()]) + op_setup(TX, 0) + op_tx() +
        op_setup(RX, 5) + rx_buffers(1) + op_rx())
    put("virtq", "jumbo", vq_header(v1 | F_MRG | F_MTU9000, 4) + rx_buffers(8, 0x800, 0, 0x4000) +
        op_inject(9018) + op_rx())
    put("virtq", "tx-disabled-ring", vq_header(v1, 3) + tx_frames(v1, [arp_request()]) + op_tx(drop=True))
    put("virtq", "tx-runt-oversize", vq_header(v1, 3) + tx_frames(v1, [b"\x01\x02", sized(1600)]) + op_tx())
    # hostile drivers: each must break the queue, nothing else
    put("virtq", "bad-loop", vq_header(v1, 3) + op_desc(TX, 0, BUF0, 64, VRING_F_NEXT, 0) + op_avail(TX, 0) + op_tx())
    put("virtq", "bad-head", vq_header(v1, 3) + op_avail(TX, 9) + op_tx())
    put("virtq", "bad-idx-jump", vq_header(v1, 3) + op_avail_idx(TX, 9) + op_tx() + op_avail_idx(RX, 200) + op_rx())
    put("virtq", "bad-outside", vq_header(v1, 3) + op_desc_raw(TX, 0, 0xFFFFFFFFFFFFF000, 0x2000) + op_avail(TX, 0) +
        op_tx() + op_desc_raw(RX, 0, 0x100000 + 0xFF00, 0x200, VRING_F_WRITE) + op_avail(RX, 0) +
        op_inject(100) + op_rx())
    nested = (op_write(0x3800, struct.pack("<QIHH", 0x100000 + 0x3900, 16, VRING_F_INDIRECT, 0)) +
              op_desc(TX, 0, 0x3800, 16, VRING_F_INDIRECT) + op_avail(TX, 0))
    put("virtq", "bad-nested-indirect", vq_header(v1 | F_INDIRECT, 3) + nested + op_tx())
    put("virtq", "bad-indirect-unnegotiated", vq_header(v1, 3) + op_desc(TX, 0, 0x3800, 16, VRING_F_INDIRECT) +
        op_avail(TX, 0) + op_tx())
    put("virtq", "bad-write-before-read", vq_header(v1, 3) + op_desc(TX, 0, BUF0, 64, VRING_F_WRITE | VRING_F_NEXT, 1) +
        op_desc(TX, 1, BUF0 + 64, 64) + op_avail(TX, 0) + op_tx())
    put("virtq", "bad-rx-readonly", vq_header(v1, 3) + op_desc(RX, 0, BUF0, 2048) + op_avail(RX, 0) +
        op_inject(60) + op_rx())
    # the same rings served by the in-process virtio port
    for name in ["tx-rx-one-frame", "tx-batch", "tx-indirect", "rx-mergeable", "event-idx", "wraparound",
                 "legacy-header", "jumbo", "bad-loop", "bad-outside", "bad-rx-readonly"]:
        with open(os.path.join(CORPUS, "virtq", "seed-" + name), "rb") as f:
            data = f.read()
        put("virtq", "port-" + name, bytes([data[0] | F_PORT]) + data[1:])
    # issue 9 defect 2: the virtio port's RX loop spins when a mergeable frame needs more
    # buffers than the driver posted
    crash("virtq", "timeout-virtio-port-mrg-rx-short", vq_header(v1 | F_MRG | F_PORT, 3) + rx_buffers(2, 256) +
            op_inject(1400) + op_rx())
    put("virtq", "bad-setup", vq_header(v1, 3) + struct.pack("<BBHQQQH", 11, TX, 6, 0x100000, 0x101000, 0x101400, 0) +
        struct.pack("<BBHQQQH", 11, RX, 8, 0x10FFF0, 0x103000, 0x103400, 0) + op_tx() + op_rx())


# ---- vhost-user: operations (see fuzz-vhost-user.c) ----

GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE = 1, 2, 3, 4, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR = 12, 13, 14
GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE = 15, 16, 17, 18
VERSION, NEED_REPLY = 1, 8
VF_V1, VF_MRG, VF_EVENT_IDX, VF_INDIRECT, VF_PROTOCOL = 1 << 32, 1 << 15, 1 << 29, 1 << 28, 1 << 30
PF_MQ, PF_REPLY_ACK = 1, 8
FD_MEMFD, FD_EVENTFD, FD_DEVNULL, FD_PIPE, FD_EMPTY_MEMFD, FD_OWN_SOCKET, FD_DEVZERO, FD_SOCKET = range(8)
GPA, UADDR, MEM_PAGES, NUM = 0x40000000, 0x7F1200000000, 16, 8
VU_BUF = 0x800


def fd(kind, slot=0):
    return kind | slot << 4


def msg(request, payload=b"", fds=(), flags=VERSION, size=None):
    size = len(payload) if size is None else size
    return (struct.pack("<BB", 0, len(fds)) + bytes(fds) + struct.pack("<III", request, flags, size) + payload)


def u64(request, v, fds=(), flags=VERSION):
    return msg(request, struct.pack("<Q", v), fds, flags)


def state(request, index, num):
    return msg(request, struct.pack("<II", index, num))


def mem_write(slot, off, data):
    out = b""
    for i in range(0, len(data), 255):
        part = data[i:i + 255]
        out += struct.pack("<BBIB", 2, slot, off + i, len(part)) + part
    return out


def kick(slot):
    return struct.pack("<BB", 4, slot)


def run(passes=4):
    return struct.pack("<BB", 5, passes)


def inject(length, fill=0x5A):
    return struct.pack("<BHB", 6, length, fill)


def make_memfd(slot, pages):
    return struct.pack("<BBH", 7, slot, pages - 1)


def hang_up():
    return b"\x09"


# ring i: descriptors, avail and used within its own 0x1000 bytes; buffers from 0x4000 (RX) and 0x8000 (TX)
def ring_layout(i):
    desc = 0x1000 * i
    avail = desc + 16 * NUM
    used = (avail + 6 + 2 * NUM + 3) & ~3
    return desc, avail, used


def mem_table(slot=0, pages=MEM_PAGES, gpa=GPA, uaddr=UADDR):
    return msg(SET_MEM_TABLE, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", gpa, pages * 4096, uaddr, 0),
               [fd(FD_MEMFD, slot)], VERSION | NEED_REPLY)


def handshake(features=VF_V1 | VF_MRG, enable=True, kick_kind=FD_EVENTFD):
    out = msg(GET_FEATURES) + u64(SET_FEATURES, features | VF_PROTOCOL) + msg(GET_PROTOCOL_FEATURES)
    out += u64(SET_PROTOCOL_FEATURES, PF_MQ | PF_REPLY_ACK) + msg(GET_QUEUE_NUM) + msg(SET_OWNER)
    out += make_memfd(0, MEM_PAGES) + mem_table()
    for i in range(2):
        desc, avail, used = ring_layout(i)
        out += state(SET_VRING_NUM, i, NUM) + state(SET_VRING_BASE, i, 0)
        out += msg(SET_VRING_ADDR, struct.pack("<IIQQQQ", i, 0, UADDR + desc, UADDR + used, UADDR + avail, 0))
        out += u64(SET_VRING_KICK, i, [fd(kick_kind, i)]) + u64(SET_VRING_CALL, i, [fd(FD_EVENTFD, 2 + i)])
    if enable:
        out += state(SET_VRING_ENABLE, 0, 1) + state(SET_VRING_ENABLE, 1, 1)
    return out


def post_rx(n, first=0):
    desc, avail, _ = ring_layout(0)
    out = b""
    for k in range(first, first + n):
        out += mem_write(0, desc + 16 * (k % NUM), struct.pack("<QIHH", GPA + 0x4000 + VU_BUF * (k % NUM),
                                                               VU_BUF, VRING_F_WRITE, 0))
        out += mem_write(0, avail + 4 + 2 * (k % NUM), struct.pack("<H", k % NUM))
    out += mem_write(0, avail + 2, struct.pack("<H", (first + n) & 0xFFFF))
    return out + kick(0)


def send_tx(frames, first=0, hlen=12):
    desc, avail, _ = ring_layout(1)
    out = b""
    for k, fr in enumerate(frames, first):
        buf = 0x8000 + VU_BUF * (k % NUM)
        data = bytes(hlen) + fr
        out += mem_write(0, buf, data)
        out += mem_write(0, desc + 16 * (k % NUM), struct.pack("<QIHH", GPA + buf, len(data), 0, 0))
        out += mem_write(0, avail + 4 + 2 * (k % NUM), struct.pack("<H", k % NUM))
    out += mem_write(0, avail + 2, struct.pack("<H", (first + len(frames)) & 0xFFFF))
    return out + kick(1)


def gen_vhost_user():
    ack = u64(SET_FEATURES, VF_V1 | VF_MRG | VF_PROTOCOL, flags=VERSION | NEED_REPLY)
    put("vhost-user", "handshake", handshake() + ack)
    put("vhost-user", "traffic", handshake() + post_rx(4) + send_tx([arp_request(), icmp_echo()]) + run() +
        inject(60) + inject(1514) + run() + ack)
    put("vhost-user", "traffic-event-idx-indirect",
        handshake(VF_V1 | VF_EVENT_IDX | VF_INDIRECT) + post_rx(2) + send_tx([arp_request()]) + run() +
        inject(100) + run())
    put("vhost-user", "legacy-no-protocol-features",
        msg(GET_FEATURES) + u64(SET_FEATURES, VF_MRG) + msg(SET_OWNER) + make_memfd(0, MEM_PAGES) +
        mem_table() + b"".join(state(SET_VRING_NUM, i, NUM) + state(SET_VRING_BASE, i, 0) +
                               msg(SET_VRING_ADDR, struct.pack("<IIQQQQ", i, 0, UADDR + ring_layout(i)[0],
                                                               UADDR + ring_layout(i)[2], UADDR + ring_layout(i)[1], 0)) +
                               u64(SET_VRING_KICK, i, [fd(FD_EVENTFD, i)]) for i in range(2)) +
        post_rx(2) + send_tx([arp_request()]) + run())
    put("vhost-user", "mem-table-change", handshake() + post_rx(2) + send_tx([arp_request()]) + run() +
        make_memfd(1, MEM_PAGES) + mem_table(1) + kick(1) + inject(60) + run())
    put("vhost-user", "stop-and-restart", handshake() + post_rx(2) + send_tx([arp_request()]) + run() +
        state(GET_VRING_BASE, 0, 0) + state(GET_VRING_BASE, 1, 0) + state(SET_VRING_BASE, 1, 1) +
        u64(SET_VRING_KICK, 1, [fd(FD_EVENTFD, 1)]) + send_tx([icmp_echo()], 1) + run())
    put("vhost-user", "disabled-rings", handshake(enable=False) + post_rx(2) + send_tx([arp_request()]) +
        inject(60) + run() + state(SET_VRING_ENABLE, 0, 1) + run())
    put("vhost-user", "reset-owner", handshake() + post_rx(1) + msg(RESET_OWNER) + inject(60) + run() +
        handshake() + post_rx(1) + inject(60) + run())
    put("vhost-user", "err-fd", handshake() + u64(SET_VRING_ERR, 1, [fd(FD_EVENTFD, 3)]) +
        u64(SET_VRING_CALL, 0, [], VERSION) + u64(SET_VRING_CALL, 0 | 0x100, []) + run())
    put("vhost-user", "hang-up", handshake() + post_rx(2) + hang_up() + inject(60) + run())
    put("vhost-user", "cut-message", msg(GET_FEATURES) + struct.pack("<BB", 1, 5) + b"\x02\x00\x00\x00\x01" +
        hang_up())
    # hostile front-ends: each closes the connection, nothing else
    put("vhost-user", "bad-flags", msg(GET_FEATURES, flags=0xF000))
    put("vhost-user", "bad-size", msg(SET_FEATURES, b"\x00" * 4) + msg(GET_FEATURES))
    put("vhost-user", "bad-huge-size", msg(SET_MEM_TABLE, b"", size=100000))
    put("vhost-user", "bad-unknown-request", msg(99))
    put("vhost-user", "bad-fd-count", make_memfd(0, 4) + msg(SET_MEM_TABLE, struct.pack("<II", 2, 0) +
                                                             struct.pack("<QQQQ", GPA, 4096, UADDR, 0) * 2,
                                                             [fd(FD_MEMFD, 0)]))
    put("vhost-user", "bad-overlap", make_memfd(0, 4) + make_memfd(1, 4) +
        msg(SET_MEM_TABLE, struct.pack("<II", 2, 0) + struct.pack("<QQQQ", GPA, 8192, UADDR, 0) +
            struct.pack("<QQQQ", GPA + 4096, 8192, UADDR + 65536, 0), [fd(FD_MEMFD, 0), fd(FD_MEMFD, 1)]))
    put("vhost-user", "bad-file-too-small", make_memfd(0, 1) + mem_table(0, 16))
    put("vhost-user", "bad-not-a-file", msg(SET_MEM_TABLE, struct.pack("<II", 1, 0) +
                                            struct.pack("<QQQQ", GPA, 4096, UADDR, 0), [fd(FD_PIPE)]))
    put("vhost-user", "bad-too-many-fds", msg(SET_VRING_CALL, struct.pack("<Q", 0), [fd(FD_EVENTFD)] * 9))
    put("vhost-user", "bad-fds-not-taken", msg(GET_FEATURES, b"", [fd(FD_EVENTFD)]))
    put("vhost-user", "bad-ring-index", state(SET_VRING_NUM, 5, 8) + state(SET_VRING_NUM, 0, 3))
    put("vhost-user", "bad-ring-outside", handshake() + msg(SET_VRING_ADDR, struct.pack("<IIQQQQ", 1, 0, 1, 2, 3, 0)) +
        kick(1) + run())
    put("vhost-user", "bad-kick-before-setup", u64(SET_VRING_KICK, 1, [fd(FD_EVENTFD, 1)]) + kick(1) + run())
    put("vhost-user", "bad-rings-in-guest", handshake() + mem_write(0, 0x1000, struct.pack("<QIHH", 0, 64, 1, 0)) +
        mem_write(0, ring_layout(1)[1] + 4, struct.pack("<H", 0)) + mem_write(0, ring_layout(1)[1] + 2, b"\x09\x00") +
        kick(1) + run())
    # issue 9 defect 8: /dev/zero as kick fd never runs dry, drain_kick() reads forever
    crash("vhost-user", "timeout-kick-fd-dev-zero", handshake(kick_kind=FD_DEVZERO) + kick(1) + run())
    # issue 9 defect 1: the front-end shrinks its memfd under running rings, then kicks: SIGBUS
    crash("vhost-user", "crash-memfd-shrink-sigbus", handshake() + post_rx(2) + run() +
            struct.pack("<BBI", 8, 0, 0) + send_tx([arp_request()]) + inject(60) + run())
    # issue 9 defect 8: a socket as call fd: signal_call() write()s to it, and once its peer is
    # gone that raises SIGPIPE in the embedder
    crash("vhost-user", "crash-call-fd-socket-sigpipe", handshake() + u64(SET_VRING_CALL, 1, [fd(FD_SOCKET)]) +
            post_rx(1) + send_tx([arp_request()]) + run())
    put("vhost-user", "odd-kick-fds", handshake(kick_kind=FD_PIPE) + post_rx(1) + run() +
        u64(SET_VRING_KICK, 0, [fd(FD_DEVNULL)]) + u64(SET_VRING_KICK, 1, [fd(FD_SOCKET)]) + run() +
        u64(SET_VRING_CALL, 1, [fd(FD_EMPTY_MEMFD)]) + send_tx([arp_request()]) + run())


# ---- gvproxy: [mode] then the reply (mode bit 0: a JSON body alone) ----

def http(status, reason, body, ctype="application/json", chunked=False, extra=""):
    if chunked:
        parts = [body[i:i + 7] for i in range(0, len(body), 7)]
        b = "".join("%x\r\n%s\r\n" % (len(p), p) for p in parts) + "0\r\n\r\n"
        return ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sTransfer-Encoding: chunked\r\n\r\n%s" %
                (status, reason, ctype, extra, b))
    return ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sContent-Length: %d\r\n\r\n%s" %
            (status, reason, ctype, extra, len(body), body))


def gen_gvproxy():
    one = '[{"local":"127.0.0.1:2222","remote":"192.168.127.2:22","protocol":"tcp"}]\n'
    two = ('[{"local":"127.0.0.1:8080","remote":"192.168.127.2:80","protocol":"tcp"},'
           '{"local":"127.0.0.1:5353","remote":"192.168.127.2:53","protocol":"udp"}]\n')
    go_date = "Date: Tue, 01 Dec 2026 12:00:00 GMT\r\n"
    seeds = {
        # as tests/gvproxy/fake-gvproxy.c answers
        "fake-list": http(200, "OK", one, extra="", ctype="application/json") ,
        "fake-list-empty": http(200, "OK", "[]\n"),
        "fake-expose-ok": http(200, "OK", "", ctype="text/plain"),
        "fake-already": http(500, "Internal Server Error", "proxy already running for tcp on 127.0.0.1:8080\n",
                             ctype="text/plain; charset=utf-8"),
        "fake-not-found": http(404, "Not Found", "404 page not found\n", ctype="text/plain; charset=utf-8"),
        "fake-bad-request": http(400, "Bad Request", "missing local address\n", ctype="text/plain; charset=utf-8"),
        # as Go's net/http writes gvisor-tap-vsock's answers
        "go-list": http(200, "OK", two, extra=go_date),
        "go-list-null": http(200, "OK", "null\n", extra=go_date),
        "go-list-chunked": http(200, "OK", two * 3, extra=go_date, chunked=True),
        "go-error": http(500, "Internal Server Error", "proxy not found\n", ctype="text/plain; charset=utf-8",
                         extra=go_date + "X-Content-Type-Options: nosniff\r\n"),
        "go-http10-close": "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + one,
        "bad-not-http": "SSH-2.0-OpenSSH_9.2\r\n\r\n",
        "bad-cut": http(200, "OK", two)[:-20],
        "bad-json": http(200, "OK", '[{"local":"127.0.0.1:1", "remote":{"nested":1}}]'),
    }
    for name, text in seeds.items():
        put("gvproxy", name, b"\x00" + text.encode())
    put("gvproxy", "pieces", bytes([37 << 1]) + http(200, "OK", two, chunked=True).encode())
    put("gvproxy", "pieces-byte-by-byte", bytes([1 << 1]) + http(200, "OK", one).encode())
    jsons = {
        "json-one": one, "json-two": two, "json-null": "null", "json-empty": " [ ] ",
        "json-escapes": '[{"local":"127.0.0.1:\\u0038080","remote":"a\\"b\\\\c\\/d\\n","protocol":"udp","x":1.5,"y":true}]',
        "json-other-members": '[{"local":"x","remote":"y","protocol":"tcp","id":7,"z":null}]',
        "json-long-value": '[{"local":"%s","remote":"y"}]' % ("1" * 400),
        "json-bad": '[{"local":"x",}', "json-bad-unicode": '[{"local":"\\u12"}]',
    }
    for name, text in jsons.items():
        put("gvproxy", name, b"\x01" + text.encode())


# ---- pcap-filter: filter, NUL, frames (u16 LE length + bytes) ----

def frames(*fs):
    return b"".join(struct.pack("<H", len(f)) + f for f in fs)


def gen_pcap_filter():
    all_frames = frames(arp_request(), icmp_echo(), tcp_syn(80), tcp_syn(22), dhcp_discover(),
                        vlan(10, icmp_echo()), b"\x00" * 10, sized(1514))
    filters = {
        "arp": "arp", "icmp": "icmp", "arp-or-icmp": "arp or icmp", "tcp-port": "tcp port 80",
        "ether-host": "ether host 52:54:00:12:34:01 and not tcp port 22",
        "dhcp": "udp and (port 67 or port 68)", "vlan": "vlan 10 and ip", "ip6": "ip6",
        "net": "net 10.0.0.0/8", "len": "len > 1000", "bytes": "ether[0] & 1 != 0",
        "ip-bytes": "ip[2:2] > 576", "tcp-flags": "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
        "unicast": "not broadcast and not multicast", "host": "host 10.0.0.2 and (tcp or udp)",
        "comma": "ether proto 0x0806, or icmp", "quoted": '"arp"', "bad-syntax": "tcp port ((",
        "bad-unknown": "frobnicate", "empty": "",
    }
    for name, f in filters.items():
        put("pcap-filter", name, f.encode() + b"\x00" + all_frames)


# ---- vxlan: [setup] then records 'd' SRC LEN16 BYTES, 'f' LEN16 BYTES, 'p' MAC SRC, 'u' MAC ----

def vx_hdr(vni, flags=0x08000000, rsvd=0):
    return struct.pack("!II", flags, vni << 8 | rsvd)


def gn_hdr(vni, opts=b"", flags=0, proto=0x6558, ver=0):
    return bytes([ver << 6 | len(opts) // 4, flags]) + struct.pack("!HI", proto, vni << 8) + opts


def dgram(src, payload):
    return b"d" + bytes([src]) + struct.pack("<H", len(payload)) + payload


def station(frame):
    return b"f" + struct.pack("<H", len(frame)) + frame


def gen_vxlan():
    arp, echo = arp_request(), icmp_echo()
    reply = MAC_A + MAC_B + echo[12:]
    seeds = {
        "arp-and-reply": bytes([0]) + dgram(0, vx_hdr(42) + arp) + station(reply) + station(arp),
        "unicast-learned": bytes([0]) + dgram(1, vx_hdr(42) + arp) + station(MAC_A + MAC_B + b"\x88\xb5" + bytes(46)),
        "bad-flags": bytes([0]) + b"".join(dgram(0, vx_hdr(42, flags=f) + arp)
                                          for f in (0, 0x0C000000, 0x08000001, 0x88000000, 0x08FF0000)),
        "reserved-byte": bytes([0]) + dgram(0, vx_hdr(42, rsvd=1) + arp),
        "short": bytes([0]) + dgram(0, b"") + dgram(0, b"\x08\x00\x00") + dgram(0, vx_hdr(42)[:7]),
        "unknown-vni": bytes([0]) + dgram(0, vx_hdr(7) + arp) + dgram(0, vx_hdr(0xFFFFFF) + arp),
        "second-vni": bytes([4]) + dgram(1, vx_hdr(43) + arp) + dgram(0, vx_hdr(42) + arp),
        "runts": bytes([0]) + dgram(0, vx_hdr(42)) + dgram(0, vx_hdr(42) + arp[:13]) + dgram(0, vx_hdr(42) + arp[:14]),
        "oversize": bytes([0]) + dgram(0, vx_hdr(42) + sized(1515)) + dgram(0, vx_hdr(42) + sized(3000)) +
                    dgram(0, vx_hdr(42) + sized(1514)),
        "tagged": bytes([0]) + dgram(0, vx_hdr(42) + vlan(10, arp)) + station(vlan(10, reply)),
        "learning-off": bytes([2]) + dgram(5, vx_hdr(42) + arp) + dgram(0, vx_hdr(42) + arp) +
                        b"p" + MAC_B + bytes([5]) + dgram(5, vx_hdr(42) + arp) + b"u" + MAC_B + dgram(5, vx_hdr(42) + arp),
        "pins": bytes([0]) + b"p" + MAC_B + bytes([1]) + station(reply) + b"p" + BCAST + bytes([1]) +
                b"u" + MAC_B + station(reply),
        "cap": bytes([8]) + b"".join(dgram(i % 2, vx_hdr(42) + BCAST + bytes([0x52, 0, 0, 0, 9, i]) + arp[12:])
                                     for i in range(8)),
        "vlan10": bytes([16]) + dgram(0, vx_hdr(42) + arp) + dgram(0, vx_hdr(42) + vlan(10, arp)) +
                  dgram(0, vx_hdr(42) + vlan(0, arp)) + station(vlan(10, reply)) + station(vlan(10, arp)),
        "geneve-plain": bytes([1]) + dgram(0, gn_hdr(42) + arp) + station(arp),
        "geneve-options": bytes([1]) + dgram(0, gn_hdr(42, bytes.fromhex("0101010100112233ffff0200")) + arp),
        "geneve-critical": bytes([1]) + dgram(0, gn_hdr(42, bytes.fromhex("0101810000000000")) + arp) +
                           dgram(0, gn_hdr(42, flags=0x40) + arp) + dgram(0, gn_hdr(42, flags=0x80) + arp),
        "geneve-bad": bytes([1]) + dgram(0, gn_hdr(42, ver=1) + arp) + dgram(0, gn_hdr(42, proto=0x0800) + arp) +
                      dgram(0, gn_hdr(42, bytes.fromhex("01010102")) + arp) +
                      dgram(0, bytes([0x3f, 0]) + struct.pack("!HI", 0x6558, 42 << 8) + arp),
        "geneve-reserved": bytes([1]) + dgram(0, gn_hdr(42, flags=0x3f) + arp),
    }
    for name, data in seeds.items():
        put("vxlan", name, data)


# ---- offload: a 16-byte head, then the frame (see fuzz-offload.c) ----

def off_head(caps=0x3F, mtu=1500, vhdr=(0, 0, 0, 0, 0, 0), switch=False, trunk=False, takes=0):
    mode = (caps & 0x3F) | (0x40 if switch else 0) | (0x80 if trunk else 0)
    return struct.pack("<BH", mode, mtu) + struct.pack("<BBHHHH", *vhdr) + bytes([takes, 0, 0])


def gen_offload():
    sys.path.insert(0, os.path.join(HERE, "..", "integration"))
    import gsopkt as g
    dst = BCAST

    def seed(name, f, vhdr, **kw):
        put("offload", name, off_head(vhdr=vhdr, **kw) + f.data)

    t4 = g.build(dst, MAC_A, 4, g.TCP, g.pattern(9000), flags=g.ACK | g.PSH | g.FIN | g.CWR)
    t6 = g.build(dst, MAC_A, 6, g.TCP, g.pattern(6000), flags=g.ACK | g.PSH)
    u4 = g.build(dst, MAC_A, 4, g.UDP, g.pattern(4000))
    u6 = g.build(dst, MAC_A, 6, g.UDP, g.pattern(3001))
    tag1 = g.build(dst, MAC_A, 4, g.TCP, g.pattern(5000), tags=[(0x8100, 10)])
    tag2 = g.build(dst, MAC_A, 6, g.UDP, g.pattern(2500), tags=[(0x88A8, 10), (0x8100, 20)])
    small = g.build(dst, MAC_A, 4, g.UDP, g.pattern(100))
    small6 = g.build(dst, MAC_A, 6, g.TCP, g.pattern(33))
    seed("tso4", t4, t4.vnet(1448))
    seed("tso6", t6, t6.vnet(1428))
    seed("tso4-ecn", t4, t4.vnet(1448, gso_type=0x81))
    seed("uso4", u4, u4.vnet(1472))
    seed("uso6", u6, u6.vnet(1000))
    seed("tso-one-segment", small6, small6.vnet(1448))
    seed("tso-cap", u4, u4.vnet(32), mtu=9000)
    seed("tso-tagged", tag1, tag1.vnet(1444))
    seed("uso-qinq", tag2, tag2.vnet(1400))
    seed("csum-udp", small, small.vnet())
    seed("csum-tcp6", small6, small6.vnet())
    seed("csum-generic", small, (1, 0, 0, 0, 14, 10))
    seed("data-valid", small, (2, 0, 0, 0, 0, 0))
    # malformed: each dropped before anything is cut
    fl, gt, hl, gs, cs, co = t4.vnet(1448)
    seed("bad-gso-size-0", t4, (fl, gt, hl, 0, cs, co))
    seed("bad-hdr-len-long", t4, (fl, gt, len(t4.data) + 1, gs, cs, co))
    seed("bad-hdr-len-short", t4, (fl, gt, t4.pay - 1, gs, cs, co))
    seed("bad-csum-start", small, (1, 0, 0, 0, len(small.data) + 4, 6))
    seed("bad-csum-offset", small, (1, 0, 0, 0, small.l4, 0xFFFF))
    seed("bad-tcp-on-udp", u4, (1, 1, u4.pay, 1000, u4.l4, 6))
    seed("bad-v4-type-on-v6", t6, (1, 1, t6.pay, 1000, t6.l4, 16))
    seed("bad-too-many-segs", t4, (fl, gt, hl, 60, cs, co))
    seed("bad-not-negotiated", t4, t4.vnet(1448), caps=0x1)
    seed("bad-over-mtu", t4, t4.vnet(1600))
    # through the switch: receivers that take offloads or not, an access and a trunk ingress
    seed("switch-tso4-mixed", t4, t4.vnet(1448), switch=True, takes=0b0101)
    seed("switch-tso6-plain", t6, t6.vnet(1428), switch=True, takes=0)
    seed("switch-uso-all", u4, u4.vnet(1472), switch=True, takes=0b1111)
    seed("switch-trunk-in", tag1, tag1.vnet(1444), switch=True, trunk=True, takes=0b0010)
    seed("switch-csum", small, small.vnet(), switch=True, takes=0b1001)
    seed("switch-bad", t4, (fl, gt, hl, 0, cs, co), switch=True, takes=0b0011)


def main():
    gen_framing()
    gen_spec()
    gen_control()
    gen_virtq()
    gen_vhost_user()
    gen_gvproxy()
    gen_pcap_filter()
    gen_vxlan()
    gen_offload()
    # seeds this script no longer writes go; crash-* files stay
    for target, names in written.items():
        d = os.path.join(CORPUS, target)
        for n in os.listdir(d):
            if n.startswith("seed-") and n not in names:
                os.unlink(os.path.join(d, n))
    for target in sorted(written):
        print("%-12s %3d seeds" % (target, len(written[target])))


if __name__ == "__main__":
    sys.exit(main())
