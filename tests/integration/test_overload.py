#!/usr/bin/env python3
"""Overload against the real daemon: a fast flow loses nothing, peers that stop reading cost
only themselves, and a flood of random source MACs leaves known stations working.

Each test pushes far more frames than the egress queues hold, so it fails on a switch that
drops what a keeping-up receiver could take (flushing once per loop iteration), that lets idle
peers pin the whole frame pool, or that rescans its forwarding table on every refused learn."""

import ctypes
import os
import socket
import struct
import threading
import time

from sntest import BROADCAST, Daemon, StreamClient, eth, mac, run_tests, scaled

FRAME = 60
REC = 4 + FRAME  # qemu framing: a 4-byte big-endian length, then the frame


def record(dst, src, size=FRAME):
    f = eth(dst, src, size=size)
    return struct.pack("!I", len(f)) + f


# The kernel's default send buffer (--sock-buf 0) for a test of what happens once a peer's
# socket is full: it fills after ~200 KiB instead of after 2 MiB, and what the switch does
# from then on does not depend on where that happens.
SMALL_SOCK_BUF = ["--sock-buf", "0"]


def lossless_daemon(extra=()):
    """The daemon for a test that must lose nothing: a slow run (valgrind) stretches the stall
    timeout with it, so a receiver that keeps up is never taken for one that stopped."""
    return Daemon(["stream,listen=unix:@s.sock"], extra=["--stall-timeout", str(round(scaled(500))), *extra])


def clients(d, n, sock="s.sock"):
    cs = [StreamClient(d.path(sock)) for _ in range(n)]
    d.wait_ports(lambda p: sum(1 for x in p.values() if x["state"] == "up") >= n)
    return cs


class Counter(threading.Thread):
    """Reads a client's socket as fast as it can and counts the bytes: every frame of a run has
    the same size, so bytes tell frames."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.sock = client.sock
        self.bytes = 0
        self.stop = False
        self.sock.settimeout(0.2)

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.bytes += len(data)

    def wait_for(self, nbytes, quiet=2.0):
        """Until nbytes arrived, or nothing arrived for `quiet` seconds."""
        quiet = scaled(quiet)
        last, t = -1, time.monotonic()
        while self.bytes < nbytes:
            if self.bytes != last:
                last, t = self.bytes, time.monotonic()
            elif time.monotonic() - t > quiet:
                break
            time.sleep(0.02)
        self.stop = True
        self.join()
        return self.bytes


def learn(cs, first=1):
    """Every client sends one broadcast from its MAC (mac(first), mac(first + 1), ...)."""
    for i, c in enumerate(cs):
        c.send(eth(BROADCAST, mac(first + i), b"hello"))


def drain(cs, timeout=0.3):
    for c in cs:
        c.recv_all(timeout)


def pair_transfer(d, a, b, nframes, chunk=1024, one_per_write=False):
    """a sends nframes unicast to b as fast as its socket takes them; returns what b got."""
    counter = Counter(b)
    counter.start()
    rec = record(mac(2), mac(1))
    a.sock.settimeout(30)
    if one_per_write:
        for _ in range(nframes):
            a.sock.sendall(rec)
    else:
        block = rec * chunk
        for _ in range(nframes // chunk):
            a.sock.sendall(block)
    got = counter.wait_for(nframes * REC)
    assert got % REC == 0, f"{got} bytes is not a whole number of frames"
    return got // REC


def test_fast_flow_batched_loses_nothing():
    """A sender writing batches as fast as the socket takes them, to a receiver that reads:
    nothing is dropped, however much the switch reads per wake-up."""
    with lossless_daemon() as d:
        a, b = clients(d, 2)
        learn([a, b])
        drain([a, b])
        n = 256 * 1024
        got = pair_transfer(d, a, b, n)
        st = d.ports()
        assert got == n, f"b got {got} of {n}: {st['stream0.2']['stats']}"
        assert st["stream0.2"]["stats"]["drop_txq_full"] == 0, st["stream0.2"]["stats"]
        assert st["stream0.1"]["stats"]["drop_no_buffer"] == 0, st["stream0.1"]["stats"]


def test_fast_flow_one_frame_per_write_loses_nothing():
    """Like QEMU: one write per frame, no window, to a receiver that reads in bursts with
    pauses between them. Nothing is dropped: the sender's writes wait instead."""
    with lossless_daemon() as d:
        a, b = clients(d, 2)
        learn([a, b])
        drain([a, b])
        n = 100000
        rec = record(mac(2), mac(1))
        done = threading.Event()

        def send():
            a.sock.settimeout(30)
            for _ in range(n):
                a.sock.sendall(rec)
            done.set()

        threading.Thread(target=send, daemon=True).start()
        got = 0
        b.sock.settimeout(scaled(2))
        while got < n * REC:
            time.sleep(0.002)
            try:
                data = b.sock.recv(1 << 18)
            except socket.timeout:
                break
            assert data, "switch closed b"
            got += len(data)
        st = d.ports()["stream0.2"]["stats"]
        assert done.wait(10)
        assert got == n * REC, f"b got {got // REC} of {n}: {st}"
        assert st["drop_txq_full"] == 0, st


def test_slow_receiver_pauses_sender():
    """A receiver slower than its sender: the sender is held back (its writes block) rather
    than the frames dropped, and everything arrives."""
    with lossless_daemon(SMALL_SOCK_BUF) as d:
        a, b = clients(d, 2)
        learn([a, b])
        drain([a, b])
        n = 64 * 1024
        rec = record(mac(2), mac(1))
        got = 0
        done = threading.Event()

        def send():
            a.sock.settimeout(30)
            a.sock.sendall(rec * n)
            done.set()

        t = threading.Thread(target=send, daemon=True)
        t.start()
        b.sock.settimeout(scaled(5))
        paused_seen = False
        while got < n * REC:
            time.sleep(0.01)  # slower than the sender, yet never stopping for long
            data = b.sock.recv(16384)
            assert data, "switch closed b"
            got += len(data)
            if not paused_seen and got > 1 << 20:
                paused_seen = d.ports()["stream0.1"]["stats"]["rx_pauses"] > 0
        t.join(10)
        assert done.is_set()
        st = d.ports()
        assert got == n * REC
        assert st["stream0.2"]["stats"]["drop_txq_full"] == 0, st["stream0.2"]["stats"]
        assert st["stream0.2"]["stats"]["stalls"] == 0, st["stream0.2"]["stats"]
        assert paused_seen, st["stream0.1"]["stats"]


def stuck_peers_case(nstuck):
    with Daemon(["stream,listen=unix:@s.sock"], extra=SMALL_SOCK_BUF) as d:
        live = clients(d, 2)
        stuck = [StreamClient(d.path("s.sock")) for _ in range(nstuck)]
        hostile = StreamClient(d.path("s.sock"))
        for c in stuck:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        d.wait_ports(lambda p: sum(1 for x in p.values() if x["state"] == "up") == nstuck + 3)
        learn(live, 1)
        learn(stuck, 100)
        learn([hostile], 99)
        drain(live + [hostile])
        # the hostile peer fills every stuck queue with frames of its own: no two alike, so
        # each queue pins buffers no other holds; enough for all of them many times over
        per_port = 6000
        blocks = [record(mac(100 + i), mac(99)) * 500 for i in range(nstuck)]
        hostile.sock.settimeout(30)
        for _ in range(per_port // 500):
            for blk in blocks:
                hostile.sock.sendall(blk)
        # the live pair still talks, losing nothing
        got = pair_transfer(d, live[0], live[1], 32 * 1024)
        ports = d.ports()
        sw = d.ctl("stats")["switch"]
        assert got == 32 * 1024, f"live pair got {got}: pool {sw['pool_free']}/{sw['pool_total']}"
        stuck_ports = [p for p in ports.values() if p["parent"] and p["name"] not in
                       ("stream0.1", "stream0.2", f"stream0.{nstuck + 3}")]
        assert len(stuck_ports) == nstuck
        for p in stuck_ports:
            assert p["stats"]["stalls"] >= 1 and p["stalled"], p
            assert p["stats"]["txq_depth"] <= 32, p
        # what the stalled queues still pin is a few frames each
        assert sw["pool_free"] >= sw["pool_total"] - 32 * nstuck - 64, sw
        assert ports["stream0.2"]["stats"]["drop_txq_full"] == 0, ports["stream0.2"]
        # the pair is reachable both ways still
        live[1].send(eth(mac(1), mac(2), b"back"))
        assert any(f[14:18] == b"back" for f in live[0].recv_all(0.5))


def test_sixteen_stuck_peers_do_not_starve_the_rest():
    stuck_peers_case(16)


def test_sixty_four_stuck_peers_do_not_starve_the_rest():
    stuck_peers_case(64)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def mac_flood(d, flooder, n, dst=None):
    """n frames from random source MACs (locally administered unicast), all to dst, which sits
    behind the flooder itself: the switch learns (or refuses) every source and forwards none.
    Without dst, each frame goes to its own source, which is where the switch just learned it
    (with eviction on, the flooder's own address may be evicted, so it cannot be the target)."""
    rnd = os.urandom(5 * n)
    base = bytearray(record(dst or mac(0), mac(0)))
    chunk = 8192
    flooder.sock.settimeout(30)
    for start in range(0, n, chunk):
        buf = bytearray(base * min(chunk, n - start))
        for k in range(min(chunk, n - start)):
            m = b"\x02" + rnd[(start + k) * 5:(start + k) * 5 + 5]
            o = k * REC + 4
            buf[o + 6:o + 12] = m
            if dst is None:
                buf[o:o + 6] = m
        flooder.sock.sendall(buf)


def wait_processed(d, port, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = d.ports()[port]["stats"]
        if st["rx_frames"] >= n:
            return st
        time.sleep(0.1)
    raise AssertionError(f"{port} took {d.ports()[port]['stats']['rx_frames']} of {n} frames in {timeout} s")


def test_mac_flood_leaves_known_stations_working():
    """A million random source MACs: the table stays at its cap, memory stays put, refusals do
    not cost a table scan each (that made the switch 1000 times slower), and the stations it
    knew still reach each other privately."""
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, b, c, flooder = clients(d, 4)
        learn([a, b, c])
        learn([flooder], 50)
        drain([a, b, c, flooder])
        rss0 = rss_kb(d.proc.pid)
        n = 1000000
        t0 = time.monotonic()
        t = threading.Thread(target=mac_flood, args=(d, flooder, n, mac(50)), daemon=True)
        t.start()
        # while it floods, a and b talk; c hears none of it
        for i in range(200):
            a.send(eth(mac(2), mac(1), struct.pack("!I", i)))
        got = b.recv_all(0.5)
        # a liveness bound with a wide margin (it takes seconds; a table scan per refused
        # source made it minutes)
        wait_processed(d, "stream0.4", n + 1, timeout=60 - (time.monotonic() - t0))
        t.join(10)
        got += b.recv_all(0.3)
        assert len(got) == 200, f"b got {len(got)} of 200"
        assert c.recv_all(0.2) == [], "known unicast leaked to a third port"
        sw = d.ctl("stats")["switch"]
        assert sw["fdb_entries"] <= sw["fdb_max"], sw
        assert sw["fdb_refused_table"] >= n - sw["fdb_max"], sw
        growth = rss_kb(d.proc.pid) - rss0
        assert growth < 16 * 1024, f"RSS grew by {growth} kB"
        b.send(eth(mac(1), mac(2), b"back"))
        assert len(a.recv_all(0.3)) == 1


def test_mac_flood_with_fair_eviction():
    """With --fdb-evict the flooding port evicts its own entries: a station that appears during
    the flood is learned, and the known ones stay."""
    with Daemon(["stream,listen=unix:@s.sock"], extra=["--fdb-evict", "--fdb-max", "1024"]) as d:
        a, b, c, flooder = clients(d, 4)
        learn([a, b])
        learn([flooder], 50)
        drain([a, b, c, flooder])
        mac_flood(d, flooder, 200000)
        wait_processed(d, "stream0.4", 200001, timeout=60)
        c.send(eth(BROADCAST, mac(3), b"new"))
        drain([a, b])
        fdb = {e["mac"]: e["port"] for e in d.fdb()}
        from sntest import mac_str
        assert fdb.get(mac_str(mac(1))) == "stream0.1" and fdb.get(mac_str(mac(2))) == "stream0.2", len(fdb)
        assert fdb.get(mac_str(mac(3))) == "stream0.3", "a new station was not learned during the flood"
        sw = d.ctl("stats")["switch"]
        assert sw["fdb_evicted"] >= 200000 - 1024, sw
        assert sw["fdb_entries"] == 1024, sw
        a.send(eth(mac(3), mac(1), b"to c"))
        got = c.recv_all(0.3)
        assert [f[14:18] for f in got] == [b"to c"], got
        assert b.recv_all(0.1) == []


SYS_pidfd_getfd = 438  # the same number on every Linux architecture


def daemon_stream_sndbufs(d, sock="s.sock"):
    """SO_SNDBUF of each connection the daemon accepted on its listener @sock, read from copies
    of its descriptors (pidfd_getfd): what the switch asked for is only visible on its side.
    An accepted socket's own address is the listener's; the control connection that
    wait_ports() made may still be open and is not one of them."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(d.proc.pid)
    bufs = []
    try:
        for name in os.listdir(f"/proc/{d.proc.pid}/fd"):
            try:
                if not os.readlink(f"/proc/{d.proc.pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(SYS_pidfd_getfd, pidfd, int(name), 0)
            if fd < 0:
                raise OSError(ctypes.get_errno(), f"pidfd_getfd of the daemon's fd {name}")
            s = socket.socket(fileno=fd)
            try:
                if s.family != socket.AF_UNIX or s.type != socket.SOCK_STREAM:
                    continue
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) or s.getsockname() != d.path(sock):
                    continue
                bufs.append(s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
            finally:
                s.close()
    finally:
        os.close(pidfd)
    return bufs


def kernel_default_sndbuf():
    x, y = socket.socketpair()
    try:
        return x.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        x.close()
        y.close()


def test_stream_send_buffer_is_the_setting():
    """A stream connection's send buffer is sock-buf (1 MiB unless told; Linux reports twice
    what was set), 0 leaves the kernel's default, a change applies to the next connection and
    a size below a page is refused."""
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, = clients(d, 1)
        bufs = daemon_stream_sndbufs(d)
        if os.geteuid() == 0:  # SO_SNDBUFFORCE: not capped by net.core.wmem_max
            assert bufs == [2 * (1 << 20)], bufs
        else:
            assert len(bufs) == 1 and bufs[0] >= kernel_default_sndbuf(), bufs
        assert "sock-buf=1048576" in d.ctl_text("set").stdout
        d.ctl("set", "sock-buf=65536")
        assert d.ctl("set")["settings"]["sock_buf"] == 65536
        b = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda p: sum(1 for x in p.values() if x["state"] == "up") == 2)
        bufs = sorted(daemon_stream_sndbufs(d))
        if os.geteuid() == 0:
            assert bufs == [2 * 65536, 2 * (1 << 20)], bufs
        r = d.ctl_text("set", "sock-buf=1")
        assert r.returncode != 0 and "sock-buf=1" in r.stderr, r
        assert d.ctl("set")["settings"]["sock_buf"] == 65536
        a.close()
        b.close()
    with Daemon(["stream,listen=unix:@s.sock"], extra=["--sock-buf", "0"]) as d:
        c, = clients(d, 1)
        assert daemon_stream_sndbufs(d) == [kernel_default_sndbuf()]
        c.close()


if __name__ == "__main__":
    run_tests([
        test_fast_flow_batched_loses_nothing,
        test_fast_flow_one_frame_per_write_loses_nothing,
        test_slow_receiver_pauses_sender,
        test_sixteen_stuck_peers_do_not_starve_the_rest,
        test_sixty_four_stuck_peers_do_not_starve_the_rest,
        test_mac_flood_leaves_known_stations_working,
        test_mac_flood_with_fair_eviction,
        test_stream_send_buffer_is_the_setting,
    ])
