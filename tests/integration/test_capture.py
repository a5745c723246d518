#!/usr/bin/env python3
"""test_capture.py - pcap captures of the real daemon: --capture files, squibnetctl capture
start/list/stop, live streams on the control connection, and what happens to files across
SIGTERM, SIGHUP, rotation, count=N and a full disk.

Every capture is read back by a pcap reader written here (struct), and also by `tcpdump -r` and
`tshark -r` when they are installed (those sub-checks are skipped otherwise), and compared with
what the test sent: frame counts, bytes, contents and ports. The full-disk case mounts a 64 KiB
tmpfs and needs root; without it that case is skipped (reported, not failed).
Environment: SQUIBNET, SQUIBNETCTL name the binaries (sntest.py). Exit 0, 1 on failure, 77 when
the binaries are missing or the switch was built without libpcap.
"""

import ctypes
import ctypes.util
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from sntest import BROADCAST, SKIP, Daemon, StreamClient, command, eth, mac, mac_str, popen, run_tests, scaled

LISTEN = "stream,name=sw,listen=unix:@s.sock"
M1, M2, M3 = mac(1), mac(2), mac(3)


# ---- reading pcap ----

def read_pcap(path):
    """(header dict, [(ts_sec, ts_frac, caplen, origlen, data)]) of a whole pcap file; raises on
    anything a libpcap reader would refuse, or on a torn last record."""
    with open(path, "rb") as f:
        return parse_pcap(f.read(), path)


def parse_pcap(raw, what="stream", allow_partial=False):
    assert len(raw) >= 24, f"{what}: {len(raw)} bytes, no pcap file header"
    magic = struct.unpack("<I", raw[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    else:
        magic = struct.unpack(">I", raw[:4])[0]
        assert magic in (0xA1B2C3D4, 0xA1B23C4D), f"{what}: bad magic {raw[:4].hex()}"
        e = ">"
    vmaj, vmin, _, _, snaplen, linktype = struct.unpack(e + "HHiIII", raw[4:24])
    assert (vmaj, vmin) == (2, 4), f"{what}: version {vmaj}.{vmin}"
    assert linktype == 1, f"{what}: linktype {linktype}, want 1 (EN10MB)"
    hdr = {"nano": magic == 0xA1B23C4D, "snaplen": snaplen}
    recs, off = [], 24
    while off < len(raw):
        if off + 16 > len(raw):
            assert allow_partial, f"{what}: torn record header at {off}"
            break
        sec, frac, caplen, origlen = struct.unpack(e + "IIII", raw[off:off + 16])
        if off + 16 + caplen > len(raw):
            assert allow_partial, f"{what}: torn record at {off}"
            break
        assert caplen <= origlen and caplen <= snaplen, f"{what}: caplen {caplen} origlen {origlen}"
        assert frac < (10**9 if hdr["nano"] else 10**6), f"{what}: subsecond {frac}"
        recs.append((sec, frac, caplen, origlen, raw[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    hdr["consumed"] = off
    return hdr, recs


def frames_of(path):
    return [r[4] for r in read_pcap(path)[1]]


def packet_lines(text):
    """Packets in tcpdump's output: it hex-dumps unknown ethertypes on indented lines."""
    return len([ln for ln in text.splitlines() if ln.strip() and not ln[0].isspace()])


def tool_count(path):
    """Frames `tcpdump -r` and `tshark -r` count in path; None for a tool that is absent."""
    out = {}
    if shutil.which("tcpdump"):
        r = subprocess.run(["tcpdump", "-nr", path], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"tcpdump -r {path}: {r.stderr}"
        out["tcpdump"] = packet_lines(r.stdout)
    if shutil.which("tshark"):
        r = subprocess.run(["tshark", "-n", "-r", path], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"tshark -r {path}: {r.stderr}"
        out["tshark"] = len([ln for ln in r.stdout.splitlines() if ln.strip()])
    return out


def check_file(path, want):
    """path holds exactly the frames `want`, in order, and the installed readers agree."""
    got = frames_of(path)
    assert got == want, f"{path}: {len(got)} frames, want {len(want)}; first difference at " \
        f"{next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}"
    for tool, n in tool_count(path).items():
        assert n == len(want), f"{tool} -r {path}: {n} frames, want {len(want)}"


# ---- driving the switch ----

class CapDaemon(Daemon):
    """The daemon with --capture arguments whose '@' means its temporary directory."""

    def __init__(self, ports=(LISTEN,), extra=(), **kw):
        tmp = tempfile.mkdtemp(prefix="sn-capture-")
        super().__init__(ports, [x.replace("@", tmp + "/") for x in extra], tmp=tmp, **kw)
        self.own_tmp = True


def attach(d, n):
    """n stream clients, connected one at a time so client i is port sw.i."""
    cs = []
    for i in range(n):
        cs.append(StreamClient(d.path("s.sock")))
        d.wait_ports(lambda p, k=i + 1: f"sw.{k}" in p and p[f"sw.{k}"]["state"] == "up")
    return cs


def captures(d):
    return {c["id"]: c for c in d.ctl("capture", "list")["captures"]}


def wait_frames(d, cid, n, timeout=5.0):
    deadline = time.monotonic() + scaled(timeout)
    while True:
        c = captures(d)[cid]
        if c["frames"] >= n or time.monotonic() > deadline:
            return c
        time.sleep(0.02)


def wait_rx(d, port, n, timeout=5.0):
    d.wait_ports(lambda p: p[port]["stats"]["rx_frames"] >= n, timeout)


def numbered(dst, src, i, size=60):
    return eth(dst, src, struct.pack("!I", i), size=size)


def pcap_lib():
    name = ctypes.util.find_library("pcap")
    try:
        return ctypes.CDLL(name or "libpcap.so.0.8")
    except OSError:
        return None


def libpcap_message(expr):
    """What libpcap itself says compiling expr on a dead Ethernet handle, or None."""
    lib = pcap_lib()
    if not lib:
        return None
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    p = lib.pcap_open_dead(1, 262144)
    prog = ctypes.create_string_buffer(64)
    r = lib.pcap_compile(p, prog, expr.encode(), 1, 0xFFFFFFFF)
    msg = lib.pcap_geterr(p).decode() if r < 0 else None
    lib.pcap_close(p)
    return msg


# ---- the tests ----

def test_counts_bytes_and_ports():
    """One combined file (each frame once, as it entered) and one file per port (both
    directions) hold exactly what was sent and delivered."""
    with Daemon([LISTEN]) as d:
        allf, perport = d.path("all.pcap"), d.path("p-%p.pcap")
        d.ctl("capture", "start", allf)
        d.ctl("capture", "start", perport)
        a, b = attach(d, 2)
        sent_a = [eth(BROADCAST, M1, b"hello a")]
        a.send(sent_a[0])
        assert b.recv() == sent_a[0]
        sent_b = [eth(BROADCAST, M2, b"hello b")]
        b.send(sent_b[0])
        assert a.recv() == sent_b[0]
        for i in range(50):
            f = numbered(M2, M1, i, size=60 + i * 20)
            a.send(f)
            sent_a.append(f)
            g = numbered(M1, M2, i)
            b.send(g)
            sent_b.append(g)
        got_b, got_a = b.recv_all(), a.recv_all()
        assert got_b == sent_a[1:] and got_a == sent_b[1:], "the switch itself lost frames"
        wait_frames(d, 1, len(sent_a) + len(sent_b))
        info = captures(d)
        assert info[1]["dir"] == "in" and info[2]["dir"] == "both", info
        assert info[1]["frames"] == 102 and info[1]["bytes"] == sum(map(len, sent_a + sent_b)), info[1]
        assert d.stop() == 0
        # combined: every frame once; order is the switch's, so compare per sender
        got = frames_of(allf)
        assert len(got) == len(sent_a) + len(sent_b), len(got)
        assert [f for f in got if f[6:12] == M1] == sent_a
        assert [f for f in got if f[6:12] == M2] == sent_b
        assert sum(map(len, got)) == sum(map(len, sent_a + sent_b))
        for tool, n in tool_count(allf).items():
            assert n == 102, f"{tool}: {n}"
        # per port: what the port received and what it sent to its peer
        for port, own, peer in (("sw.1", sent_a, sent_b), ("sw.2", sent_b, sent_a)):
            path = d.path(f"p-{port}.pcap")
            got = frames_of(path)
            assert [f for f in got if f in own] == own, port
            assert [f for f in got if f not in own] == peer, port
            assert len(got) == 102, (port, len(got))
            check_file(path, got)


def test_filter_drops_exactly():
    with CapDaemon(extra=["--capture", "@f.pcap,filter=ether src " + mac_str(M1)]) as d:
        a, b = attach(d, 2)
        want = []
        for i in range(40):
            f = numbered(BROADCAST, M1, i)
            a.send(f)
            want.append(f)
            b.send(numbered(BROADCAST, M2, i))
        wait_rx(d, "sw.2", 40)
        c = wait_frames(d, 1, 40)
        assert c["frames"] == 40 and c["filtered"] == 40 and c["dir"] == "in", c
        assert d.stop() == 0
        check_file(d.path("f.pcap"), want)


def test_filter_over_ctl_and_quoted():
    """A filter is one argument to squibnetctl; in a SPEC a comma needs quotes."""
    with CapDaemon(extra=["--capture", '@q.pcap,filter="ether[14:4] < 5",count=100']) as d:
        a, b = attach(d, 2)
        d.ctl("capture", "start", d.path("c.pcap"), "filter=ether dst " + mac_str(M2) + " and ether[14:4] >= 5")
        want_q, want_c = [], []
        for i in range(10):
            f = numbered(M2, M1, i)
            a.send(f)
            (want_q if i < 5 else want_c).append(f)
        assert len(b.recv_all()) == 10
        wait_frames(d, 2, 5)
        assert d.stop() == 0
        check_file(d.path("q.pcap"), want_q)
        check_file(d.path("c.pcap"), want_c)


def test_per_port_direction():
    with CapDaemon(extra=["--capture", "@in-%p.pcap,dir=in", "--capture", "@out-%p.pcap,dir=out",
                                 "--capture", "@one.pcap,ports=sw.2,dir=out", "--capture", "@lis.pcap,ports=sw"]) as d:
        a, b, c = attach(d, 3)
        from_a = [numbered(BROADCAST, M1, i) for i in range(5)]
        from_b = [numbered(M1, M2, i) for i in range(7)]
        for f in from_a:
            a.send(f)
        assert b.recv_all() == from_a and c.recv_all() == from_a
        for f in from_b:
            b.send(f)
        assert a.recv_all() == from_b
        assert c.recv_all() == []
        wait_frames(d, 1, 12)
        info = captures(d)
        assert info[3]["frames"] == 5 and info[4]["dir"] == "both", info
        assert d.stop() == 0
        check_file(d.path("in-sw.1.pcap"), from_a)
        check_file(d.path("in-sw.2.pcap"), from_b)
        check_file(d.path("out-sw.1.pcap"), from_b)
        check_file(d.path("out-sw.2.pcap"), from_a)
        check_file(d.path("out-sw.3.pcap"), from_a)
        assert not os.path.exists(d.path("in-sw.3.pcap")), "a file for a port that received nothing"
        check_file(d.path("one.pcap"), from_a)
        # the listener's name covers its clients: in and out on all three, so 5*3 + 7*2
        assert len(frames_of(d.path("lis.pcap"))) == 5 * 3 + 7 * 2


def test_nanosecond_and_snaplen():
    with CapDaemon(extra=["--capture", "@ns.pcap,tstamp=ns,snaplen=100"]) as d:
        (a,) = attach(d, 1)
        big = numbered(BROADCAST, M1, 1, size=1000)
        t0 = time.time()
        a.send(big)
        wait_frames(d, 1, 1)
        assert d.stop() == 0
        hdr, recs = read_pcap(d.path("ns.pcap"))
        assert hdr["nano"] and hdr["snaplen"] == 100, hdr
        (sec, frac, caplen, origlen, data), = recs
        assert caplen == 100 and origlen == 1000 and data == big[:100]
        assert abs(sec + frac / 1e9 - t0) < 5, (sec, frac, t0)
        tool_count(d.path("ns.pcap"))


def test_rotation():
    with CapDaemon(extra=["--capture", "@r.pcap,rotate=1"]) as d:
        (a,) = attach(d, 1)
        sent = [numbered(BROADCAST, M1, i, size=1514) for i in range(1700)]  # ~2.6 MB
        for f in sent:
            a.send(f)
        wait_frames(d, 1, len(sent), timeout=10)
        assert captures(d)[1]["rotations"] == 2, captures(d)
        assert d.stop() == 0
        names = ["r.pcap", "r.pcap.1", "r.pcap.2"]
        got = []
        for n in names:
            p = d.path(n)
            size = os.path.getsize(p)
            assert size <= 1000000, f"{n}: {size} bytes over rotate=1"
            part = frames_of(p)
            assert part, f"{n} is empty"
            for tool, k in tool_count(p).items():
                assert k == len(part), f"{tool} -r {n}: {k}, want {len(part)}"
            got += part
        assert not os.path.exists(d.path("r.pcap.3"))
        assert got == sent, f"{len(got)} frames across the files, want {len(sent)}"


def test_sighup_reopens():
    with CapDaemon(extra=["--capture", "@h.pcap", "--capture", "@h-%p.pcap"]) as d:
        (a,) = attach(d, 1)
        first = [numbered(BROADCAST, M1, i) for i in range(5)]
        second = [numbered(BROADCAST, M1, 100 + i) for i in range(7)]
        for f in first:
            a.send(f)
        wait_frames(d, 1, 5)
        os.rename(d.path("h.pcap"), d.path("h.pcap.old"))
        os.rename(d.path("h-sw.1.pcap"), d.path("h-sw.1.pcap.old"))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + scaled(5)
        while not (os.path.exists(d.path("h.pcap")) and os.path.exists(d.path("h-sw.1.pcap"))):
            assert time.monotonic() < deadline, "no new file after SIGHUP"
            time.sleep(0.02)
        # the old files are complete and valid as soon as the switch let go of them
        check_file(d.path("h.pcap.old"), first)
        check_file(d.path("h-sw.1.pcap.old"), first)
        for f in second:
            a.send(f)
        wait_frames(d, 1, 12)
        # a HUP with nothing renamed only flushes: the file goes on
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(scaled(0.2))
        assert d.stop() == 0
        check_file(d.path("h.pcap"), second)
        check_file(d.path("h-sw.1.pcap"), second)
        assert "reopened" in d.stderr, d.stderr


def test_sigterm_keeps_every_frame():
    """SIGTERM well inside the first second: nothing was flushed by the timer yet."""
    t0 = time.monotonic()
    with CapDaemon(extra=["--capture", "@t.pcap"]) as d:
        (a,) = attach(d, 1)
        sent = [numbered(BROADCAST, M1, i, size=60 + (i % 50)) for i in range(2000)]
        for f in sent:
            a.send(f)
        wait_rx(d, "sw.1", len(sent))
        # the 1 s timer started after t0; a slow run (valgrind) is past it and cannot tell
        if time.monotonic() - t0 < 0.9:
            assert os.path.getsize(d.path("t.pcap")) < 2000 * 16, "the buffer was written already"
        assert d.stop(signal.SIGTERM) == 0
        check_file(d.path("t.pcap"), sent)
    with CapDaemon(extra=["--capture", "@i.pcap"]) as d:
        (a,) = attach(d, 1)
        a.send(numbered(BROADCAST, M1, 1))
        wait_rx(d, "sw.1", 1)
        assert d.stop(signal.SIGINT) == 0
        check_file(d.path("i.pcap"), [numbered(BROADCAST, M1, 1)])


def test_flushed_within_a_second():
    with CapDaemon(extra=["--capture", "@s.pcap"]) as d:
        (a,) = attach(d, 1)
        sent = [numbered(BROADCAST, M1, i) for i in range(3)]
        for f in sent:
            a.send(f)
        deadline = time.monotonic() + scaled(2.5)
        while os.path.getsize(d.path("s.pcap")) < 24 + 3 * (16 + 60):
            assert time.monotonic() < deadline, f"not on disk after {scaled(2.5)} s"
            time.sleep(0.05)
        check_file(d.path("s.pcap"), sent)


def test_count():
    with CapDaemon(extra=["--capture", "@n.pcap,count=10"]) as d:
        (a,) = attach(d, 1)
        sent = [numbered(BROADCAST, M1, i) for i in range(25)]
        for f in sent:
            a.send(f)
        wait_rx(d, "sw.1", 25)
        c = captures(d)[1]
        assert c["state"] == "done" and c["frames"] == 10 and c["files_open"] == 0, c
        check_file(d.path("n.pcap"), sent[:10])  # closed: complete without a signal
        assert d.stop() == 0


def test_bad_filter_refused():
    expr = "ether sorc 52:54:00:00:00:01"
    lib_msg = libpcap_message(expr)
    with CapDaemon(extra=["--capture", "@b.pcap,filter=" + expr], expect_start=False) as d:
        rc = d.proc.wait(timeout=scaled(10))
        err = d.proc.stderr.read()
        assert rc != 0, "started with a bad filter"
        assert "bad filter" in err, err
        if lib_msg:
            assert lib_msg in err, f"libpcap says {lib_msg!r}; the daemon said {err!r}"
        assert not os.path.exists(d.path("b.pcap"))
    with Daemon([LISTEN]) as d:
        r = d.ctl_text("capture", "start", d.path("b.pcap"), "filter=" + expr)
        assert r.returncode == 1 and "EINVAL" not in r.stdout, r
        if lib_msg:
            assert lib_msg in r.stderr, r.stderr
        for bad, why in ((["dir=sideways"], "dir"), (["snaplen=10"], "snaplen"), (["colour=red"], "colour"),
                         (["ports=a++b"], "ports"), (["tstamp=ps"], "tstamp"), (["rotate=0"], "rotate")):
            r = d.ctl_text("capture", "start", d.path("x.pcap"), *bad)
            assert r.returncode == 1 and why in r.stderr, (bad, r.stderr)
        r = d.ctl_text("capture", "start", "/nonexistent-dir/x.pcap")
        assert r.returncode == 1 and "No such file" in r.stderr, r.stderr
        assert captures(d) == {}


def test_ctl_start_list_stop():
    with Daemon([LISTEN]) as d:
        a, b = attach(d, 2)
        r = d.ctl_text("capture", "start", d.path("c1.pcap"), "ports=sw.1")
        assert r.returncode == 0 and r.stdout.strip() == "1", r
        cid = d.ctl("capture", "-w", d.path("c2.pcap"), "dir=out")["id"]
        assert cid == 2
        sent = [numbered(M2, M1, i) for i in range(8)]
        for f in sent:
            a.send(f)
        assert b.recv_all() == sent
        wait_frames(d, 1, 8)
        text = d.ctl_text("capture", "list").stdout
        assert "running" in text and "c1.pcap" in text and "sw.1" in text, text
        info = captures(d)
        assert info[1]["frames"] == 8 and info[1]["ports"] == "sw.1" and info[1]["dir"] == "both", info
        assert info[2]["frames"] == 8, info
        assert d.ctl("capture", "stop", "1")["stopped"] == 1
        check_file(d.path("c1.pcap"), sent)  # closed by stop: complete now
        r = d.ctl_text("capture", "stop", "1")
        assert r.returncode == 1 and "no capture 1" in r.stderr, r
        r = d.ctl_text("capture", "stop", "x")
        assert r.returncode == 1, r
        assert list(captures(d)) == [2]
        d.ctl("capture", "stop", "2")
        check_file(d.path("c2.pcap"), sent)
        assert captures(d) == {}
        assert "capture start" in d.ctl_text("help").stdout


class LiveReader:
    """squibnetctl capture -w - ..., its stdout read as a pcap stream."""

    def __init__(self, d, *args):
        self.proc = popen([d.ctl_bin, "--control", d.control, "capture", "-w", "-", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.raw = b""

    def read_until(self, n, timeout=5.0):
        import select
        deadline = time.monotonic() + scaled(timeout)
        fd = self.proc.stdout.fileno()
        while True:
            if len(self.raw) >= 24:
                hdr, recs = parse_pcap(self.raw, "live stream", allow_partial=True)
                if len(recs) >= n:
                    return hdr, recs
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"live stream: {len(self.raw)} bytes after {timeout}s")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return parse_pcap(self.raw, "live stream")
                self.raw += chunk


def test_live_stream():
    with CapDaemon(extra=["--capture", "@file.pcap"]) as d:
        a, b = attach(d, 2)
        live = LiveReader(d, "filter=ether src " + mac_str(M1))
        deadline = time.monotonic() + scaled(5)
        while 2 not in captures(d):
            assert time.monotonic() < deadline and live.proc.poll() is None, live.proc.stderr.read()
            time.sleep(0.02)
        assert captures(d)[2]["file"] == "-"
        sent = []
        for i in range(30):
            f = numbered(M2, M1, i, size=100)
            a.send(f)
            sent.append(f)
            b.send(numbered(M1, M2, i))
        hdr, recs = live.read_until(30)
        assert [r[4] for r in recs] == sent and not hdr["nano"], len(recs)
        # the reader goes away: its capture ends, the switch and the other capture go on
        live.proc.stdout.close()
        assert live.proc.wait(timeout=scaled(5)) == 0, live.proc.stderr.read()
        assert live.proc.stderr.read() == b""
        deadline = time.monotonic() + scaled(5)
        while 2 in captures(d):
            assert time.monotonic() < deadline, "the live capture outlived its reader"
            time.sleep(0.02)
        b.recv_all()
        a.recv_all()
        more = numbered(M2, M1, 999)
        a.send(more)
        assert b.recv() == more
        info = captures(d)
        assert list(info) == [1] and info[1]["state"] == "running"
        wait_frames(d, 1, 61)
        assert d.stop() == 0
        assert len(frames_of(d.path("file.pcap"))) == 61


def test_live_stream_ends_with_count_and_json():
    """count=N ends the stream from the switch's side: squibnetctl sees the end and exits 0;
    with --json the body is still pure pcap."""
    with Daemon([LISTEN]) as d:
        (a,) = attach(d, 1)
        proc = popen([d.ctl_bin, "--control", d.control, "--json", "capture", "start", "-", "count=5"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + scaled(5)
        while not captures(d):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        sent = [numbered(BROADCAST, M1, i) for i in range(9)]
        for f in sent:
            a.send(f)
        out, err = proc.communicate(timeout=scaled(10))
        assert proc.returncode == 0, err
        hdr, recs = parse_pcap(out)
        assert [r[4] for r in recs] == sent[:5]
        assert captures(d) == {}
        if shutil.which("tcpdump"):
            ctl = shlex.join(command([d.ctl_bin, "--control", d.control, "capture", "-w", "-", "count=3"]))
            p = subprocess.Popen(f"{ctl} | tcpdump -nr -",
                                 shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + scaled(5)
            while not captures(d):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            for f in sent[:4]:
                a.send(f)
            out, err = p.communicate(timeout=scaled(20))
            assert p.returncode == 0, err
            assert packet_lines(out) == 3, out


def test_live_reader_slow_or_gone_without_traffic():
    """A reader that leaves while nothing flows still ends its capture (squibnetctl notices the
    closed pipe), and `| head -c` style readers end quietly."""
    with Daemon([LISTEN]) as d:
        (a,) = attach(d, 1)
        ctl = shlex.join(command([d.ctl_bin, "--control", d.control, "capture", "-w", "-"]))
        p = subprocess.Popen(f"{ctl} | head -c 24 > /dev/null", shell=True, stderr=subprocess.PIPE, text=True)
        _, err = p.communicate(timeout=scaled(10))
        assert p.returncode == 0 and err == "", err
        deadline = time.monotonic() + scaled(5)
        while captures(d):
            assert time.monotonic() < deadline, "capture outlived its reader"
            time.sleep(0.02)
        a.send(numbered(BROADCAST, M1, 1))
        wait_rx(d, "sw.1", 1)


def test_full_disk_stops_only_that_capture():
    if os.geteuid() != 0 or not shutil.which("mount"):
        print("skip: full-disk case needs root to mount a tmpfs", file=sys.stderr)
        return
    mnt = tempfile.mkdtemp(prefix="sn-capture-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        print(f"skip: cannot mount a tmpfs: {r.stderr.strip()}", file=sys.stderr)
        return
    try:
        with CapDaemon(extra=["--capture", os.path.join(mnt, "full.pcap"), "--capture", "@ok.pcap"]) as d:
            a, b = attach(d, 2)
            sent = [numbered(M2, M1, i, size=1514) for i in range(200)]  # ~300 KB
            for f in sent:
                a.send(f)
            got = []
            deadline = time.monotonic() + scaled(10)
            while len(got) < len(sent) and time.monotonic() < deadline:
                got += b.recv_all(0.2)
            assert got == sent, f"the switch delivered {len(got)} of {len(sent)}"
            deadline = time.monotonic() + scaled(5)
            while captures(d)[1]["state"] == "running":
                assert time.monotonic() < deadline, captures(d)
                time.sleep(0.05)
            info = captures(d)
            full, ok = info[1], info[2]
            assert full["state"] == "failed" and full["errors"] >= 1, full
            assert "No space" in (full["error"] or ""), full
            assert full["files_open"] == 0 and full["frames"] < len(sent), full
            assert ok["state"] == "running" and ok["frames"] == len(sent), ok
            assert d.stop() == 0
            assert "No space left on device" in d.stderr, d.stderr
            check_file(d.path("ok.pcap"), sent)
            # what did reach the small disk is a valid prefix
            hdr, recs = parse_pcap(open(os.path.join(mnt, "full.pcap"), "rb").read(), "full.pcap", allow_partial=True)
            assert [r[4] for r in recs] == sent[:len(recs)]
    finally:
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)


def main():
    with Daemon([LISTEN]) as d:
        r = d.ctl_text("capture", "list")
        if r.returncode != 0:
            print(f"skip: this switch has no captures: {r.stderr.strip()}", file=sys.stderr)
            sys.exit(SKIP)
        r = d.ctl_text("capture", "start", d.path("probe.pcap"))
        if r.returncode != 0 and "no libpcap" in r.stderr:
            print("skip: built without libpcap", file=sys.stderr)
            sys.exit(SKIP)
    run_tests([
        test_counts_bytes_and_ports,
        test_filter_drops_exactly,
        test_filter_over_ctl_and_quoted,
        test_per_port_direction,
        test_nanosecond_and_snaplen,
        test_rotation,
        test_sighup_reopens,
        test_sigterm_keeps_every_frame,
        test_flushed_within_a_second,
        test_count,
        test_bad_filter_refused,
        test_ctl_start_list_stop,
        test_live_stream,
        test_live_stream_ends_with_count_and_json,
        test_live_reader_slow_or_gone_without_traffic,
        test_full_disk_stops_only_that_capture,
    ])


if __name__ == "__main__":
    main()
