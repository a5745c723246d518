#!/usr/bin/env python3
"""Integration test of squibnet-ping, the small IPv4 station.

Most checks need no switch: Python plays the switch side of a unix socket (stream with each
framing, dgram, seqpacket), sends the station hand-made ARP and ICMP frames and checks every
field of what comes back; then Python plays the peer station and checks --ping's exit status,
JSON and text output. With SQUIBNET set to the daemon binary, two stations also ping each other
through the real switch.

Environment:
  SQUIBNET_PING  path to squibnet-ping (default: build/tools/squibnet-ping beside this tree)
  SQUIBNET       path to the squibnet daemon (optional: the through-the-switch part is skipped
                 without it, or while the daemon cannot start)
Exit status: 0 passed, 1 failed, 77 squibnet-ping missing.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import sntest
from sntest import scaled

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

BCAST = b"\xff" * 6
PY_MAC = bytes.fromhex("020000000002")
PY_IP = "10.0.0.2"
ST_IP = "10.0.0.1"
ST_MAC = bytes.fromhex("525400000001")  # the default: 52:54:00 + last three bytes of the IP


def find_ping():
    p = os.environ.get("SQUIBNET_PING")
    if p:
        return p if os.access(p, os.X_OK) else None
    for d in ("build", "builddir"):
        c = os.path.join(ROOT, d, "tools", "squibnet-ping")
        if os.access(c, os.X_OK):
            return c
    return None


PING = find_ping()


def ip4(s):
    return socket.inet_aton(s)


def mac_str(b):
    return ":".join("%02x" % x for x in b)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# ---- framing ----

def frame_prefix(framing, n):
    if framing == "qemu":
        return struct.pack("!I", n)
    if framing == "hyperkit":
        return struct.pack("<H", n)
    return struct.pack("!H", n)


class Stream:
    """The switch side of one stream connection: whole frames in and out."""

    def __init__(self, sock, framing):
        self.sock, self.framing, self.buf = sock, framing, b""
        self.hl = 4 if framing == "qemu" else 2

    def send(self, frame, split=False):
        rec = frame_prefix(self.framing, len(frame)) + frame
        if split:  # the station must reassemble records cut anywhere
            for i in range(0, len(rec), 7):
                self.sock.sendall(rec[i:i + 7])
                time.sleep(0.002)
        else:
            self.sock.sendall(rec)

    def _take(self):
        if len(self.buf) < self.hl:
            return None
        p = self.buf[:self.hl]
        fmt = {"qemu": "!I", "hyperkit": "<H", "vde": "!H"}[self.framing]
        n = struct.unpack(fmt, p)[0]
        if len(self.buf) < self.hl + n:
            return None
        f, self.buf = self.buf[self.hl:self.hl + n], self.buf[self.hl + n:]
        return f

    def recv(self, timeout):
        end = time.monotonic() + timeout
        while True:
            f = self._take()
            if f is not None:
                return f
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                d = self.sock.recv(65536)
                if not d:
                    return None
                self.buf += d


class Packet:
    """The switch side of a dgram or seqpacket socket."""

    def __init__(self, sock, peer=None):
        self.sock, self.peer = sock, peer

    def send(self, frame, split=False):
        if self.peer:
            self.sock.sendto(frame, self.peer)
        else:
            self.sock.send(frame)

    def recv(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None
        if self.peer is None and self.sock.type == socket.SOCK_DGRAM:
            d, self.peer = self.sock.recvfrom(65536)
            return d
        return self.sock.recv(65536)


# ---- frames ----

def eth(dst, src, etype, payload):
    return dst + src + struct.pack("!H", etype) + payload


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + ip4(spa) + tha + ip4(tpa)


def ipv4(src, dst, proto, payload, ttl=64, ident=1):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, ttl, proto, 0, ip4(src), ip4(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def icmp_echo(typ, ident, seq, payload, good=True):
    m = struct.pack("!BBHHH", typ, 0, 0, ident, seq) + payload
    c = csum(m)
    if not good:
        c ^= 0x5555
    return m[:2] + struct.pack("!H", c) + m[4:]


def parse_eth(f):
    return f[0:6], f[6:12], struct.unpack("!H", f[12:14])[0], f[14:]


def parse_arp(p):
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", p[:8])
    return dict(htype=htype, ptype=ptype, hlen=hlen, plen=plen, op=op, sha=p[8:14],
                spa=socket.inet_ntoa(p[14:18]), tha=p[18:24], tpa=socket.inet_ntoa(p[24:28]))


def parse_ipv4(p):
    ihl = (p[0] & 0xF) * 4
    tot = struct.unpack("!H", p[2:4])[0]
    return dict(version=p[0] >> 4, ihl=ihl, tot=tot, ttl=p[8], proto=p[9], hdr_ok=csum(p[:ihl]) == 0,
                src=socket.inet_ntoa(p[12:16]), dst=socket.inet_ntoa(p[16:20]), body=p[ihl:tot])


# ---- test plumbing ----

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def start(args, **kw):
    return sntest.popen([PING] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(proc, timeout=15):
    """Waits for @proc (timeout scaled): its status and output; a valgrind report fails."""
    try:
        out, err = proc.communicate(timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        check(False, "%s did not exit in %ss" % (proc.args, scaled(timeout)))
    report = sntest.valgrind_report(proc.valgrind_log)
    check(report is None, "%s: %s" % (proc.args, report))
    return proc.returncode, out, err


def accept(listener, proc, timeout=5):
    listener.settimeout(scaled(timeout))
    try:
        c, _ = listener.accept()
    except socket.timeout:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError("station never connected: " + err)
    c.settimeout(None)
    return c


def recv_until(peer, want, timeout=3):
    """The next frame @want accepts, skipping (and returning) the others seen on the way."""
    end = time.monotonic() + scaled(timeout)
    skipped = []
    while True:
        left = end - time.monotonic()
        f = peer.recv(max(left, 0)) if left > 0 else None
        if f is None:
            return None, skipped
        if want(f):
            return f, skipped
        skipped.append(f)


def is_arp(f):
    return len(f) >= 42 and parse_eth(f)[2] == 0x0806


def check_garp(f, mac=ST_MAC, ip=ST_IP, what=""):
    d, s, t, p = parse_eth(f)
    a = parse_arp(p)
    check(d == BCAST and s == mac, what + "gratuitous ARP goes to broadcast from the station MAC")
    check((a["htype"], a["ptype"], a["hlen"], a["plen"], a["op"]) == (1, 0x0800, 6, 4, 1),
          what + "gratuitous ARP header fields: %r" % a)
    check(a["sha"] == mac and a["spa"] == ip and a["tpa"] == ip, what + "gratuitous ARP addresses: %r" % a)


def station_answers(peer, what, split=False):
    """Drives a serving station at 10.0.0.1 through @peer; checks ARP and echo replies."""
    f, _ = recv_until(peer, is_arp)
    if not check(f is not None, what + "station sends a gratuitous ARP at start"):
        return
    check_garp(f, what=what)

    # ARP request for the station: a reply to us, with the right fields
    peer.send(eth(BCAST, PY_MAC, 0x0806, arp(1, PY_MAC, PY_IP, b"\0" * 6, ST_IP)), split)
    f, _ = recv_until(peer, lambda f: True)
    if check(f is not None, what + "ARP request answered"):
        d, s, t, p = parse_eth(f)
        check(t == 0x0806 and d == PY_MAC and s == ST_MAC, what + "ARP reply Ethernet header")
        a = parse_arp(p)
        check((a["htype"], a["ptype"], a["hlen"], a["plen"], a["op"]) == (1, 0x0800, 6, 4, 2),
              what + "ARP reply header fields: %r" % a)
        check(a["sha"] == ST_MAC and a["spa"] == ST_IP and a["tha"] == PY_MAC and a["tpa"] == PY_IP,
              what + "ARP reply addresses: %r" % a)
        check(len(f) >= 60, what + "short frames are padded to 60 bytes (got %d)" % len(f))

    # echo request: identical payload back, addresses swapped, both checksums right
    payload = os.urandom(300)
    req = ipv4(PY_IP, ST_IP, 1, icmp_echo(8, 0x1234, 7, payload), ttl=33, ident=99)
    peer.send(eth(ST_MAC, PY_MAC, 0x0800, req), split)
    f, _ = recv_until(peer, lambda f: True)
    if check(f is not None, what + "echo request answered"):
        d, s, t, p = parse_eth(f)
        check(t == 0x0800 and d == PY_MAC and s == ST_MAC, what + "echo reply Ethernet header")
        ip = parse_ipv4(p)
        check(ip["version"] == 4 and ip["hdr_ok"], what + "echo reply IPv4 header and checksum")
        check(ip["src"] == ST_IP and ip["dst"] == PY_IP and ip["proto"] == 1 and ip["ttl"] == 64,
              what + "echo reply addresses/proto/ttl: %r" % {k: ip[k] for k in ("src", "dst", "proto", "ttl")})
        b = ip["body"]
        check(len(b) == 8 + len(payload) and csum(b) == 0, what + "echo reply ICMP checksum and length")
        check(b[0] == 0 and b[1] == 0 and struct.unpack("!HH", b[4:8]) == (0x1234, 7),
              what + "echo reply type/code/id/seq")
        check(b[8:] == payload, what + "echo reply payload identical")

    # things the station must ignore, then a marker echo that must be the next answer
    ignored = [
        eth(BCAST, PY_MAC, 0x0806, arp(1, PY_MAC, PY_IP, b"\0" * 6, "10.0.0.77")),       # not its IP
        eth(ST_MAC, PY_MAC, 0x0800, ipv4(PY_IP, ST_IP, 1, icmp_echo(8, 1, 1, b"x" * 20, good=False))),
        eth(ST_MAC, PY_MAC, 0x0800, ipv4(PY_IP, "10.0.0.77", 1, icmp_echo(8, 1, 2, b"x" * 20))),
        eth(bytes.fromhex("020000000099"), PY_MAC, 0x0800, ipv4(PY_IP, ST_IP, 1, icmp_echo(8, 1, 3, b"x"))),
        eth(ST_MAC, PY_MAC, 0x0800, ipv4(PY_IP, ST_IP, 17, b"\0" * 16)),                  # UDP
        eth(ST_MAC, PY_MAC, 0x86DD, b"\x60" + b"\0" * 60),                                 # IPv6
        eth(ST_MAC, PY_MAC, 0x0800, icmp_echo(8, 1, 4, b"not an ip header at all")),
    ]
    bad_hdr = bytearray(ipv4(PY_IP, ST_IP, 1, icmp_echo(8, 1, 5, b"y" * 8)))
    bad_hdr[10] ^= 0xFF                                                                    # IP checksum
    ignored.append(eth(ST_MAC, PY_MAC, 0x0800, bytes(bad_hdr)))
    for fr in ignored:
        peer.send(fr, split)
    peer.send(eth(ST_MAC, PY_MAC, 0x0800, ipv4(PY_IP, ST_IP, 1, icmp_echo(8, 0x4321, 99, b"marker"))), split)
    f, _ = recv_until(peer, lambda f: True)
    if check(f is not None, what + "marker echo answered"):
        t = parse_eth(f)[2]
        b = parse_ipv4(parse_eth(f)[3])["body"] if t == 0x0800 else b""
        check(t == 0x0800 and struct.unpack("!HH", b[4:8]) == (0x4321, 99),
              what + "the station answered nothing it should have ignored (next frame: type %#06x, %s)"
              % (t, b[:8].hex()))


class Responder(threading.Thread):
    """Plays the peer station at 10.0.0.2 for a --ping run, recording what it saw."""

    def __init__(self, peer, answer_arp=True, drop_seqs=(), answer_icmp=True, mangle_seqs=()):
        super().__init__(daemon=True)
        self.peer, self.answer_arp, self.drop, self.answer_icmp = peer, answer_arp, set(drop_seqs), answer_icmp
        self.mangle = set(mangle_seqs)
        self.arps, self.echoes, self.stop = [], [], False

    def run(self):
        while not self.stop:
            try:
                f = self.peer.recv(0.1)
            except OSError:
                return
            if f is None:
                continue
            d, s, t, p = parse_eth(f)
            if t == 0x0806:
                a = parse_arp(p)
                self.arps.append((d, s, a))
                if self.answer_arp and a["op"] == 1 and a["tpa"] == PY_IP:
                    self.peer.send(eth(s, PY_MAC, 0x0806, arp(2, PY_MAC, PY_IP, a["sha"], a["spa"])))
            elif t == 0x0800:
                ip = parse_ipv4(p)
                b = ip["body"]
                self.echoes.append((d, s, ip))
                if ip["dst"] != PY_IP or b[0] != 8 or not self.answer_icmp:
                    continue
                seq = struct.unpack("!H", b[6:8])[0]
                if seq in self.drop:
                    continue
                data = b[8:]
                if seq in self.mangle:  # a reply whose payload is not the request's is no reply
                    data = bytes([data[0] ^ 1]) + data[1:]
                rep = icmp_echo(0, struct.unpack("!H", b[4:6])[0], seq, data)
                self.peer.send(eth(s, PY_MAC, 0x0800, ipv4(PY_IP, ip["src"], 1, rep)))


def ping_run(tmp, extra, framing="qemu", **resp_kw):
    path = os.path.join(tmp, "ping.sock")
    if os.path.exists(path):
        os.unlink(path)
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(1)
    proc = start(["--connect", "unix:" + path, "--framing", framing, "--ip", ST_IP + "/24",
                  "--ping", PY_IP] + extra)
    c = accept(lst, proc)
    resp = Responder(Stream(c, framing), **resp_kw)
    resp.start()
    rc, out, err = finish(proc)
    resp.stop = True
    resp.join()
    c.close()
    lst.close()
    return rc, out, err, resp


# ---- the cases ----

def test_serve_stream(tmp):
    for framing in ("qemu", "hyperkit", "vde"):
        path = os.path.join(tmp, "serve-%s.sock" % framing)
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind(path)
        lst.listen(1)
        t0 = time.monotonic()
        args = ["--connect", "unix:" + path, "--ip", ST_IP + "/24", "--serve", "3"]
        if framing != "qemu":
            args += ["--framing", framing]
        proc = start(args)
        c = accept(lst, proc)
        station_answers(Stream(c, framing), "stream/%s: " % framing, split=(framing == "qemu"))
        rc, out, err = finish(proc)
        check(rc == 0, "stream/%s: --serve 3 exits 0 (rc=%s, %s)" % (framing, rc, err.strip()))
        check(time.monotonic() - t0 >= 2.5, "stream/%s: --serve 3 lasted about 3 s" % framing)
        attach_re = r"squibnet-ping: 10\.0\.0\.1 \(52:54:00:00:00:01\) attached to unix:"
        check(re.search(attach_re, out) is not None,
              "stream/%s: attach line printed: %r" % (framing, out))
        c.close()
        lst.close()


def test_serve_signal(tmp):
    path = os.path.join(tmp, "sig.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(1)
    proc = start(["--connect", "unix:" + path, "--ip", "192.168.7.9/16", "--mac", "02:aa:bb:cc:dd:ee",
                  "--serve", "0", "-q"])
    c = accept(lst, proc)
    peer = Stream(c, "qemu")
    f, _ = recv_until(peer, is_arp)
    if check(f is not None, "--mac: gratuitous ARP seen"):
        check_garp(f, mac=bytes.fromhex("02aabbccddee"), ip="192.168.7.9", what="--mac: ")
    time.sleep(0.3)
    check(proc.poll() is None, "--serve 0 keeps running")
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc, 5)
    check(rc == 0, "--serve 0 exits 0 on SIGTERM (rc=%s)" % rc)
    check(out == "", "-q prints nothing while serving: %r" % out)
    c.close()
    lst.close()


def test_peer_closes(tmp):
    path = os.path.join(tmp, "close.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(1)
    proc = start(["--connect", "unix:" + path, "--ip", ST_IP + "/24", "--serve", "20"])
    c = accept(lst, proc)
    time.sleep(0.2)
    c.close()
    rc, out, err = finish(proc, 5)
    check(rc == 2, "switch closing the stream gives exit 2 (rc=%s)" % rc)
    check("closed" in err, "and a message saying so: %r" % err)
    lst.close()

    # a malformed length prefix is fatal too: the stream cannot be resynchronised
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.unlink(path)
    lst.bind(path)
    lst.listen(1)
    proc = start(["--connect", "unix:" + path, "--ip", ST_IP + "/24", "--serve", "20"])
    c = accept(lst, proc)
    c.sendall(b"\0\0\0\0")
    rc, out, err = finish(proc, 5)
    check(rc == 2 and "length" in err, "zero length prefix gives exit 2 (rc=%s, %r)" % (rc, err))
    c.close()
    lst.close()


def test_ping_ok(tmp):
    rc, out, err, resp = ping_run(tmp, ["--count", "3", "--json", "--timeout", "3"])
    check(rc == 0, "--ping with all replies exits 0 (rc=%s, %s)" % (rc, err.strip()))
    try:
        j = json.loads(out)
    except ValueError:
        check(False, "--json prints one JSON object: %r" % out)
        return
    check(j.get("transmitted") == 3 and j.get("received") == 3 and j.get("loss") == 0, "JSON counts: %r" % j)
    check(j.get("peer_mac") == mac_str(PY_MAC), "JSON peer_mac: %r" % j.get("peer_mac"))
    rtts = [j.get(k) for k in ("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms")]
    check(all(isinstance(x, (int, float)) for x in rtts) and rtts[0] <= rtts[1] <= rtts[2] and rtts[0] >= 0,
          "JSON rtt min <= avg <= max: %r" % rtts)

    reqs = [a for d, s, a in resp.arps if a["op"] == 1 and a["tpa"] == PY_IP]
    if check(reqs, "station sent an ARP request for the peer"):
        d, s, a = next((d, s, a) for d, s, a in resp.arps if a["tpa"] == PY_IP)
        check(d == BCAST and s == ST_MAC, "ARP request is broadcast from the station MAC")
        check((a["htype"], a["ptype"], a["hlen"], a["plen"]) == (1, 0x0800, 6, 4), "ARP request fields %r" % a)
        check(a["sha"] == ST_MAC and a["spa"] == ST_IP, "ARP request sender fields %r" % a)
    echoes = [(d, s, ip) for d, s, ip in resp.echoes if ip["body"][:1] == b"\x08"]
    check(len(echoes) == 3, "three echo requests sent (got %d)" % len(echoes))
    for i, (d, s, ip) in enumerate(echoes):
        b = ip["body"]
        check(d == PY_MAC and s == ST_MAC, "echo %d Ethernet addresses" % i)
        check(ip["hdr_ok"] and ip["src"] == ST_IP and ip["dst"] == PY_IP and ip["ttl"] == 64,
              "echo %d IPv4 header" % i)
        check(csum(b) == 0 and len(b) == 8 + 56, "echo %d ICMP checksum and 56-byte payload" % i)
        check(struct.unpack("!H", b[6:8])[0] == i + 1, "echo %d has icmp_seq %d" % (i, i + 1))


def test_ping_text(tmp):
    rc, out, err, resp = ping_run(tmp, ["--count", "2", "--size", "100", "--interval", "0.05"])
    check(rc == 0, "text --ping exits 0 (rc=%s)" % rc)
    lines = re.findall(r"^108 bytes from 10\.0\.0\.2: icmp_seq=(\d+) ttl=64 time=\d+\.\d{3} ms$", out, re.M)
    check(lines == ["1", "2"], "ping(8)-like reply lines: %r" % out)
    check(re.search(r"^2 packets transmitted, 2 received, 0% packet loss$", out, re.M) is not None,
          "summary line: %r" % out)
    check(re.search(r"^rtt min/avg/max = [\d.]+/[\d.]+/[\d.]+ ms$", out, re.M) is not None, "rtt line: %r" % out)


def test_ping_loss(tmp):
    t0 = time.monotonic()
    rc, out, err, resp = ping_run(tmp, ["--count", "2", "--json", "--timeout", "0.5"], answer_icmp=False)
    check(rc == 1, "100%% loss exits 1 (rc=%s)" % rc)
    check(time.monotonic() - t0 < scaled(4), "loss is declared after --timeout, not later")
    try:
        j = json.loads(out)
        check(j["transmitted"] == 2 and j["received"] == 0 and j["loss"] == 100 and j["rtt_avg_ms"] is None,
              "100%% loss JSON: %r" % j)
    except (ValueError, KeyError):
        check(False, "100%% loss JSON: %r" % out)

    rc, out, err, resp = ping_run(tmp, ["--count", "3", "--json", "--timeout", "0.5"], drop_seqs=(2,))
    check(rc == 1, "partial loss exits 1 (rc=%s)" % rc)
    try:
        j = json.loads(out)
        check(j["transmitted"] == 3 and j["received"] == 2 and abs(j["loss"] - 100 / 3) < 0.01,
              "partial loss JSON: %r" % j)
    except (ValueError, KeyError):
        check(False, "partial loss JSON: %r" % out)

    rc, out, err, resp = ping_run(tmp, ["--count", "2", "--json", "--timeout", "0.5"], mangle_seqs=(1,))
    check(rc == 1 and '"received":1' in out,
          "a reply with a changed payload is not counted (rc=%s, %r)" % (rc, out))

    rc, out, err, resp = ping_run(tmp, ["--count", "2", "--timeout", "0.6"], answer_arp=False)
    check(rc == 1, "no ARP reply exits 1 (rc=%s)" % rc)
    check("ARP" in err, "no ARP reply is reported: %r" % err)
    n = len([a for d, s, a in resp.arps if a["tpa"] == PY_IP])
    check(2 <= n <= 5, "ARP retried about every 200 ms within 0.6 s (saw %d)" % n)


def test_ping_framings(tmp):
    for framing in ("hyperkit", "vde"):
        rc, out, err, resp = ping_run(tmp, ["--count", "2", "--interval", "0.05", "-q"], framing=framing)
        check(rc == 0, "--ping over %s framing exits 0 (rc=%s, %s)" % (framing, rc, err.strip()))
        check("2 received" in out and "bytes from" not in out, "-q prints the summary only: %r" % out)


def test_dgram(tmp):
    sw = os.path.join(tmp, "dg-switch.sock")
    local = os.path.join(tmp, "dg-station.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sw)
    proc = start(["--kind", "dgram", "--connect", sw, "--local", local, "--ip", ST_IP + "/24", "--serve", "2"])
    peer = Packet(s)
    station_answers(peer, "dgram: ")
    check(peer.peer == local, "dgram: station sends from --local (%r)" % peer.peer)
    rc, out, err = finish(proc)
    check(rc == 0, "dgram: --serve exits 0 (rc=%s, %s)" % (rc, err.strip()))
    check(not os.path.exists(local), "dgram: --local socket removed at exit")

    # --ping over dgram
    proc = start(["--kind", "dgram", "--connect", "unix:" + sw, "--local", local, "--ip", ST_IP + "/24",
                  "--ping", PY_IP, "--json", "--count", "2", "--interval", "0.05"])
    resp = Responder(Packet(s))
    resp.start()
    rc, out, err = finish(proc)
    resp.stop = True
    resp.join()
    check(rc == 0 and '"received":2' in out, "dgram: --ping exits 0 (rc=%s, %r %s)" % (rc, out, err.strip()))
    s.close()


def test_seqpacket(tmp):
    path = os.path.join(tmp, "sp.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    lst.bind(path)
    lst.listen(1)
    proc = start(["--kind", "seqpacket", "--connect", path, "--ip", ST_IP + "/24", "--serve", "2"])
    c = accept(lst, proc)
    station_answers(Packet(c), "seqpacket: ")
    rc, out, err = finish(proc)
    check(rc == 0, "seqpacket: --serve exits 0 (rc=%s, %s)" % (rc, err.strip()))
    c.close()
    lst.close()


def test_usage(tmp):
    cases = [
        ([], "--connect"),
        (["--connect", "unix:" + tmp + "/x"], "--ip"),
        (["--connect", "unix:" + tmp + "/x", "--ip", "10.0.0.300/24"], "--ip"),
        (["--connect", "unix:" + tmp + "/x", "--ip", "10.0.0.1/24", "--kind", "dgram"], "--local"),
        (["--connect", "unix:" + tmp + "/x", "--ip", "10.0.0.1/24", "--kind", "bogus"], "--kind"),
        (["--connect", "unix:" + tmp + "/x", "--ip", "10.0.0.1/24", "--framing", "bogus"], "--framing"),
        (["--connect", "unix:" + tmp + "/x", "--ip", "10.0.0.1/24", "--mac", "zz"], "--mac"),
        (["--connect", "unix:" + tmp + "/x", "--ip", "10.0.0.1/24", "--ping", "10.9.0.1"], "--ping"),
        (["--connect", "unix:" + tmp + "/x", "--ip", "10.0.0.1/24", "--count", "0"], "--count"),
        (["--connect", "unix:" + tmp + "/nothing-here", "--ip", "10.0.0.1/24"], "nothing-here"),
        (["--connect", "bogus", "--ip", "10.0.0.1/24", "--kind", "dgram", "--local", tmp + "/l"], None),
    ]
    for args, word in cases:
        rc, out, err = finish(start(args), 10)
        check(rc == 2, "usage error %r exits 2 (rc=%s)" % (args, rc))
        if word:
            check(word in err, "usage error %r names %s: %r" % (args, word, err))
    rc, out, err = finish(start(["--help"]))
    check(rc == 0 and "--connect" in out, "--help")
    rc, out, err = finish(start(["--version"]))
    check(rc == 0 and out.startswith("squibnet-ping "), "--version")


def test_through_switch(tmp):
    daemon = os.environ.get("SQUIBNET")
    if not daemon:
        print("note: SQUIBNET not set, skipping the through-the-switch part", flush=True)
        return
    if not os.access(daemon, os.X_OK):
        check(False, "SQUIBNET=%s is not executable" % daemon)
        return
    sock, ctl = os.path.join(tmp, "s.sock"), os.path.join(tmp, "c.sock")
    sw = sntest.popen([daemon, "--port", "stream,listen=unix:" + sock, "--control", ctl],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + scaled(5)
        while not os.path.exists(sock) or not os.path.exists(ctl):
            if sw.poll() is not None:
                out, err = sw.communicate()
                if "not implemented" in out + err:
                    print("note: the daemon cannot start yet (%s); skipping the through-the-switch part"
                          % (out + err).strip().splitlines()[-1], flush=True)
                    return
                check(False, "daemon exited at start (rc=%s): %s" % (sw.returncode, (out + err).strip()))
                return
            if time.monotonic() > end:
                check(False, "daemon did not create %s and %s within %s s" % (sock, ctl, scaled(5)))
                return
            time.sleep(0.05)

        a = start(["--connect", "unix:" + sock, "--ip", "10.0.0.1/24", "--serve", "0", "-q"])
        time.sleep(scaled(0.3))  # A's gratuitous ARP is gone by now: B must get a real ARP reply
        b = start(["--connect", "unix:" + sock, "--ip", "10.0.0.2/24", "--ping", "10.0.0.1", "--count", "3",
                   "--json", "--serve", "3"])
        # while B keeps serving, A's counterpart C pings B: both directions through the switch
        time.sleep(scaled(0.3))
        c = start(["--connect", "unix:" + sock, "--ip", "10.0.0.3/24", "--ping", "10.0.0.2", "--count", "2",
                   "--interval", "0.05"])
        rc, out, err = finish(b, 20)
        check(rc == 0, "through the switch: B pings A, exit 0 (rc=%s, %r %s)" % (rc, out, err.strip()))
        try:
            j = json.loads(out)
            check(j["received"] == 3 and j["peer_mac"] == "52:54:00:00:00:01",
                  "through the switch JSON: %r" % j)
        except (ValueError, KeyError):
            check(False, "through the switch JSON: %r" % out)
        rc, out, err = finish(c, 20)
        check(rc == 0, "through the switch: C pings B while B serves, exit 0 (rc=%s, %s)" % (rc, err.strip()))
        d = start(["--connect", "unix:" + sock, "--ip", "10.0.0.4/24", "--ping", "10.0.0.99", "--count", "1",
                   "--timeout", "0.5", "-q"])
        rc, out, err = finish(d, 20)
        check(rc == 1, "through the switch: pinging nobody exits 1 (rc=%s)" % rc)
        a.send_signal(signal.SIGINT)
        rc, out, err = finish(a, 5)
        check(rc == 0, "through the switch: A exits 0 on SIGINT (rc=%s, %s)" % (rc, err.strip()))
    finally:
        if sw.poll() is None:
            sw.send_signal(signal.SIGTERM)
            try:
                check(sw.wait(scaled(5)) == 0, "through the switch: the daemon exits 0 on SIGTERM")
            except subprocess.TimeoutExpired:
                sw.kill()
                sw.wait()
        report = sntest.valgrind_report(sw.valgrind_log)
        check(report is None, "through the switch: the daemon: %s" % report)


def main():
    if not PING:
        print("skip: squibnet-ping not found (set SQUIBNET_PING)")
        return 77
    tmp = tempfile.mkdtemp(prefix="sn-ping-")
    try:
        for name, fn in sorted((k, v) for k, v in globals().items() if k.startswith("test_")):
            print("== " + name, flush=True)
            try:
                fn(tmp)
            except Exception:
                check(False, "%s raised:\n%s" % (name, traceback.format_exc()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(sntest.finish(main()))
