#!/usr/bin/env python3
"""The vhost-user-net back-end seen from a front-end (vufront.py, playing QEMU) on the real
daemon: hostile messages close only their own connection, with the reason logged, while a
stream port pair keeps forwarding; a well-formed session exchanges frames with a stream
client both ways; GET_VRING_BASE, SET_VRING_ENABLE, REPLY_ACK, reconnect, a refused second
front-end and an inherited descriptor (fd=N)."""

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from sntest import BROADCAST, Daemon, StreamClient, eth, mac, popen, run, run_tests, scaled  # noqa: E402
import vufront as vf  # noqa: E402

PORTS = ["stream,listen=unix:@s.sock,name=st", "vhost-user,listen=@vu.sock,name=vu"]


def stream_pair(d):
    """Two stream clients that learned each other: forwarding between them proves the switch
    is alive."""
    a, b = StreamClient(d.path("s.sock")), StreamClient(d.path("s.sock"))
    d.wait_ports(lambda p: sum(1 for x in p.values() if x["parent"] == "st" and x["state"] == "up") >= 2)
    a.send(eth(BROADCAST, mac(101), b"a"))
    b.send(eth(BROADCAST, mac(102), b"b"))
    a.recv_all(0.2)
    b.recv_all(0.2)
    return a, b


def check_forwarding(a, b, tag):
    f = eth(mac(102), mac(101), b"alive " + tag.encode())
    a.send(f)
    got = b.recv(2.0)
    assert got == f, f"stream forwarding stopped after {tag}: {got!r}"


def vu_state(d):
    return d.ports()["vu"]["state"]


def hostile_cases(mem):
    """(name, function(front-end) sending the bad message, text the log must show)."""
    region = (mem.gpa, mem.size, mem.uaddr, 0)

    def send_table(fe, regions, fds, count=None):
        payload = struct.pack("<II", len(regions) if count is None else count, 0) + \
            b"".join(struct.pack("<QQQQ", *r) for r in regions)
        fe.send(vf.SET_MEM_TABLE, payload, fds)

    def truncated(fe):
        fe.sock.sendall(struct.pack("<III", vf.GET_FEATURES, 1, 0)[:6])
        fe.sock.shutdown(socket.SHUT_WR)

    def nine_fds(fe):
        fds = [os.dup(mem.fd) for _ in range(9)]
        try:
            send_table(fe, [region], fds)
        finally:
            for x in fds:
                os.close(x)

    small = os.memfd_create("small")
    os.ftruncate(small, 4096)
    ro = os.open(f"/proc/self/fd/{mem.fd}", os.O_RDONLY)
    pipe_r, pipe_w = os.pipe()
    return [
        ("bad size", lambda fe: fe.send(vf.SET_FEATURES, b"\0" * 4), "SET_FEATURES with a 4-byte payload"),
        ("bad index", lambda fe: fe.state(vf.SET_VRING_NUM, 5, 256), "SET_VRING_NUM for ring 5"),
        ("bad index in a fd message", lambda fe: fe.set_u64(vf.SET_VRING_CALL, 7 | vf.VRING_NOFD),
         "SET_VRING_CALL for ring 7"),
        ("too many regions", lambda fe: send_table(fe, [region] * 9, [], count=9), "with 9 regions"),
        ("missing fd", lambda fe: send_table(fe, [region], []), "came with 0 file descriptors"),
        ("unknown request", lambda fe: fe.send(99), "unsupported request 99"),
        ("huge size field", lambda fe: fe.send(vf.GET_FEATURES, size=0xFFFFFFFF), "announces a 4294967295-byte"),
        ("truncated header", truncated, "in the middle of a message"),
        ("fd with wrong request", lambda fe: fe.send(vf.SET_OWNER, fds=[mem.fd]), "SET_OWNER came with 1 file"),
        ("too many fds", nine_fds, "more than 8 file descriptors"),
        ("overlapping regions", lambda fe: send_table(
            fe, [region, (mem.gpa + 4096, 8192, mem.uaddr + (64 << 20), 0)], [mem.fd, mem.fd]), "overlap"),
        ("wrapping region", lambda fe: send_table(fe, [(2 ** 64 - 4096, 8192, 0, 0)], [mem.fd]), "wraps around"),
        ("region past the end of its file", lambda fe: send_table(fe, [(0, 1 << 20, 0, 0)], [small]),
         "not a regular file of at least 0x100000"),
        ("mmap failure", lambda fe: send_table(fe, [(0, 4096, 0, 0)], [ro]), "mmap of 0x1000 bytes"),
        ("reply flag on a request", lambda fe: fe.send(vf.GET_FEATURES, flags=vf.VERSION | vf.REPLY), "bad flags"),
        ("wrong version", lambda fe: fe.send(vf.GET_FEATURES, flags=2), "bad flags"),
        ("kick without descriptor", lambda fe: fe.set_u64(vf.SET_VRING_KICK, 0 | vf.VRING_NOFD), "polling"),
        ("fd flag and a descriptor", lambda fe: fe.set_u64(vf.SET_VRING_CALL, 0 | vf.VRING_NOFD, [mem.fd]),
         "says no descriptor but came with 1"),
        ("ring size not a power of 2", lambda fe: fe.state(vf.SET_VRING_NUM, 0, 100), "want a power of 2"),
        ("features not offered", lambda fe: fe.set_u64(vf.SET_FEATURES, 1 << 63), "features not offered"),
        ("kick before the ring is set up", lambda fe: (fe.set_u64(vf.SET_VRING_KICK, 1, [fe_kick]),
                                                        os.eventfd_write(fe_kick, 1)), "kicked before"),
        ("a memfd as call fd", lambda fe: fe.set_u64(vf.SET_VRING_CALL, 0, [small]),
         "SET_VRING_CALL for ring 0: the descriptor is a regular file, not an eventfd"),
        ("a pipe as err fd", lambda fe: fe.set_u64(vf.SET_VRING_ERR, 1, [pipe_w]),
         "SET_VRING_ERR for ring 1: the descriptor is a pipe, not an eventfd"),
        ("a memfd as kick fd", lambda fe: fe.set_u64(vf.SET_VRING_KICK, 0, [small]),
         "SET_VRING_KICK for ring 0: the descriptor is a regular file, not an eventfd"),
    ], [small, ro, pipe_r, pipe_w]


fe_kick = os.eventfd(0, os.EFD_CLOEXEC)


def test_hostile_messages_close_only_that_connection():
    with Daemon(PORTS) as d:
        a, b = stream_pair(d)
        mem = vf.GuestMemory(size=1 << 20)
        cases, extra_fds = hostile_cases(mem)
        try:
            for name, bad, _ in cases:
                fe = vf.Frontend(d.path("vu.sock"))
                # a little valid conversation first: the back-end is in a live session
                assert fe.get_u64(vf.GET_FEATURES) & vf.F_PROTOCOL_FEATURES
                bad(fe)
                assert fe.closed_by_peer(), f"{name}: the back-end kept the connection open"
                fe.close()
                check_forwarding(a, b, name)
                assert d.proc.poll() is None, f"{name}: the daemon died"
        finally:
            mem.close()
            for x in extra_fds:
                os.close(x)
        # after all that, a well-formed session still works
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        d.wait_ports(lambda p: p["vu"]["state"] == "up")
        fe.close()
        assert d.stop() == 0
        for name, _, reason in cases:
            assert reason in d.stderr, f"{name}: '{reason}' not in the daemon log:\n{d.stderr}"
        assert d.stderr.count("vhost-user protocol error") >= len(cases) - 1, d.stderr


def test_session_exchanges_frames_with_a_stream_port():
    with Daemon(PORTS) as d:
        assert vu_state(d) == "down"
        c = StreamClient(d.path("s.sock"))
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        d.wait_ports(lambda p: p["vu"]["state"] == "up" and any(x["parent"] == "st" for x in p.values()))
        guest, station = mac(1), mac(2)
        # guest -> switch: a broadcast reaches the stream client, and the TX chain comes back used
        hello = eth(BROADCAST, guest, b"hello from the guest")
        fe.send_frame(hello)
        assert c.recv(2.0) == hello
        fe.wait_tx_used(1)
        # stream -> guest: unicast to the learned guest MAC lands in an RX buffer
        frames = [eth(guest, station, b"to the guest %d" % i, size=60 + 10 * i) for i in range(20)]
        for f in frames:
            c.send(f)
        got = fe.recv_frames(want=len(frames))
        assert got == frames, f"guest got {len(got)} of {len(frames)} frames"
        assert fe.rings[vf.RX].calls() > 0, "no RX interrupt"
        # guest -> station unicast, many, larger than one page
        big = [eth(station, guest, bytes([i]) * 1400) for i in range(100)]
        for i, f in enumerate(big):
            fe.send_frame(f)
            if i % 50 == 49:
                fe.wait_tx_used(2 + i)
        got = []
        while len(got) < len(big):
            f = c.recv(2.0)
            assert f is not None, f"stream client got {len(got)} of {len(big)}"
            got.append(f)
        assert got == big
        assert fe.rings[vf.TX].calls() > 0, "no TX interrupt"
        st = d.ports()["vu"]["stats"]
        assert st["rx_frames"] == 101 and st["tx_frames"] == 20, st
        # GET_VRING_BASE stops the ring and says where it stopped; the port goes down
        base = struct.unpack("<II", fe.call(vf.GET_VRING_BASE, struct.pack("<II", vf.TX, 0)))
        assert base == (vf.TX, 101), base
        base = struct.unpack("<II", fe.call(vf.GET_VRING_BASE, struct.pack("<II", vf.RX, 0)))
        assert base == (vf.RX, 20), base
        d.wait_ports(lambda p: p["vu"]["state"] == "down")
        fe.close()


def test_disabled_tx_ring_discards():
    with Daemon(PORTS) as d:
        c = StreamClient(d.path("s.sock"))
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        fe.state(vf.SET_VRING_ENABLE, vf.TX, 0)
        fe.set_u64(vf.SET_FEATURES, fe.features, ack=True)  # a barrier
        for i in range(5):
            fe.send_frame(eth(BROADCAST, mac(1), b"discard me %d" % i))
        fe.wait_tx_used(5)
        assert c.recv_all(0.3) == [], "a disabled ring forwarded frames"
        # and while RX is disabled, frames wait in the port's queue until it is enabled
        fe.state(vf.SET_VRING_ENABLE, vf.RX, 0)
        fe.set_u64(vf.SET_FEATURES, fe.features, ack=True)
        c.send(eth(BROADCAST, mac(2), b"queued"))
        time.sleep(scaled(0.2))
        assert fe.recv_frames(want=1, timeout=0.3) == [], "a disabled RX ring got a frame"
        fe.state(vf.SET_VRING_ENABLE, vf.RX, 1)
        fe.state(vf.SET_VRING_ENABLE, vf.TX, 1)
        fe.set_u64(vf.SET_FEATURES, fe.features, ack=True)
        c.send(eth(BROADCAST, mac(2), b"after enable"))
        got = fe.recv_frames(want=2)
        assert [g[14:] for g in got] == [b"queued", b"after enable"], got
        fe.send_frame(eth(BROADCAST, mac(1), b"now forwarded"))
        assert c.recv(2.0)[14:] == b"now forwarded"
        fe.close()


def test_reply_ack_and_queue_num():
    with Daemon(PORTS) as d:
        fe = vf.Frontend(d.path("vu.sock"))
        fe.set_u64(vf.SET_PROTOCOL_FEATURES, vf.PROTOCOL_F_REPLY_ACK)
        fe.send(vf.SET_OWNER, flags=vf.VERSION | vf.NEED_REPLY)
        assert struct.unpack("<Q", fe.reply(vf.SET_OWNER))[0] == 0
        assert fe.get_u64(vf.GET_QUEUE_NUM) == 1
        # GET_* already have a reply: need_reply adds nothing
        fe.send(vf.GET_FEATURES, flags=vf.VERSION | vf.NEED_REPLY)
        assert struct.unpack("<Q", fe.reply(vf.GET_FEATURES))[0] & vf.F_VERSION_1
        assert fe.get_u64(vf.GET_PROTOCOL_FEATURES) & vf.PROTOCOL_F_MQ
        fe.close()


def test_reconnect_and_second_frontend():
    with Daemon(PORTS) as d:
        c = StreamClient(d.path("s.sock"))
        for round_ in range(3):
            fe = vf.Frontend(d.path("vu.sock"))
            fe.setup()
            d.wait_ports(lambda p: p["vu"]["state"] == "up")
            if round_ == 0:
                other = vf.Frontend(d.path("vu.sock"))
                assert other.closed_by_peer(), "a second front-end was accepted"
                other.close()
            f = eth(BROADCAST, mac(1), b"round %d" % round_)
            fe.send_frame(f)
            assert c.recv(2.0) == f
            g = eth(mac(1), mac(2), b"back %d" % round_)
            c.send(g)
            assert fe.recv_frames(1) == [g]
            fe.close()
            d.wait_ports(lambda p: p["vu"]["state"] == "down")
        assert d.stop() == 0
        assert d.stderr.count("vhost-user front-end connected") == 3, d.stderr
        assert "refusing a second vhost-user front-end" in d.stderr


def test_memory_table_change_keeps_running():
    """A new memory table under running rings (memory hot-plug) restarts them in place."""
    with Daemon(PORTS) as d:
        c = StreamClient(d.path("s.sock"))
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        fe.send_frame(eth(BROADCAST, mac(1), b"before"))
        assert c.recv(2.0)[14:] == b"before"
        m = fe.mem
        extra = vf.GuestMemory(size=1 << 20, gpa=0x80000000, uaddr=0x7F2200000000)
        payload = fe.mem_table_payload([(m.gpa, m.size, m.uaddr, 0), (extra.gpa, extra.size, extra.uaddr, 0)])
        fe.send(vf.SET_MEM_TABLE, payload, [m.fd, extra.fd], vf.VERSION | vf.NEED_REPLY)
        assert struct.unpack("<Q", fe.reply(vf.SET_MEM_TABLE))[0] == 0
        fe.send_frame(eth(BROADCAST, mac(1), b"after"))
        assert c.recv(2.0)[14:] == b"after"
        c.send(eth(mac(1), mac(2), b"down"))
        assert [g[14:] for g in fe.recv_frames(1)] == [b"down"]
        extra.close()
        fe.close()


def test_inherited_fd():
    """vhost-user,fd=N: a listening socket handed over by the parent."""
    tmp_sock = None
    with Daemon(PORTS[:1]) as d:
        tmp_sock = d.path("inherited.sock")
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(tmp_sock)
        ls.listen(4)
        args = [d.squibnet, "--control", d.path("c2.sock"), "--port", f"vhost-user,fd={ls.fileno()},name=vu",
                "--port", "stream,listen=unix:" + d.path("s2.sock")]
        proc = popen(args, pass_fds=[ls.fileno()], stderr=subprocess.PIPE, text=True)
        ls.close()
        try:
            c = None
            end = time.monotonic() + scaled(5)
            while c is None:
                try:
                    c = StreamClient(d.path("s2.sock"))
                except (FileNotFoundError, ConnectionRefusedError):
                    assert time.monotonic() < end and proc.poll() is None, "second daemon did not start"
                    time.sleep(0.05)
            fe = vf.Frontend(tmp_sock)
            fe.setup()
            f = eth(BROADCAST, mac(1), b"via an inherited socket")
            fe.send_frame(f)
            assert c.recv(2.0) == f
            fe.close()
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=scaled(5))
        assert proc.returncode == 0, err
    # a connected socket: one session, carried over the inherited descriptor
    with Daemon(PORTS[:1]) as d:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        args = [d.squibnet, "--control", d.path("c2.sock"), "--port", f"vhost-user,fd={theirs.fileno()},name=vu",
                "--port", "stream,listen=unix:" + d.path("s2.sock")]
        proc = popen(args, pass_fds=[theirs.fileno()], stderr=subprocess.PIPE, text=True)
        theirs.close()
        try:
            fe = vf.Frontend(None, sock=mine)
            fe.setup()
            c = StreamClient(d.path("s2.sock"))
            time.sleep(scaled(0.1))
            f = eth(BROADCAST, mac(1), b"via an inherited connection")
            fe.send_frame(f)
            assert c.recv(2.0) == f
            fe.close()
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=scaled(5))
        assert proc.returncode == 0, err
    # a descriptor that is not a socket is refused at start-up
    r = run([d.squibnet, "--control", "/nonexistent/x", "--port", "vhost-user,fd=0"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert r.returncode != 0 and "not a socket" in r.stderr, r.stderr


def test_hostile_ring_breaks_only_that_ring():
    """A TX descriptor pointing outside guest memory breaks the TX ring (logged, shown by
    `ports`); RX and the rest of the switch carry on, and a new session repairs it."""
    with Daemon(PORTS) as d:
        c = StreamClient(d.path("s.sock"))
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        tx = fe.rings[vf.TX]
        head = tx.avail_idx % tx.num
        tx.set_desc(head, 0xDEAD00000000, 100, 0)
        tx.offer(head)
        tx.do_kick()
        d.wait_ports(lambda p: "tx broken" in p["vu"]["peer"])
        assert d.ports()["vu"]["state"] == "up"
        c.send(eth(BROADCAST, mac(2), b"rx still works"))
        assert [g[14:] for g in fe.recv_frames(1)] == [b"rx still works"]
        fe.close()
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        fe.send_frame(eth(BROADCAST, mac(1), b"repaired"))
        assert c.recv(2.0)[14:] == b"repaired"
        fe.close()
        assert d.stop() == 0
        assert "virtqueue broken" in d.stderr, d.stderr


def test_mrg_rx_waits_for_enough_buffers():
    """MRG_RXBUF with EVENT_IDX and one 512-byte RX buffer posted, then a 1500-byte frame for
    the guest: it needs three buffers. The frame waits in the port's queue, and the back-end
    asks for a kick at the driver's current avail index, so a driver that kicks only when asked
    (as Linux does) kicks for its next buffers and the frame arrives, merged from three."""
    with Daemon(PORTS) as d:
        c = StreamClient(d.path("s.sock"))
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup(features=vf.F_VERSION_1 | vf.F_MRG_RXBUF | vf.F_EVENT_IDX, rx_buffers=0)
        d.wait_ports(lambda p: p["vu"]["state"] == "up")
        rx = fe.rings[vf.RX]

        def post(n, length):
            old = rx.avail_idx
            for _ in range(n):
                head = rx.avail_idx % rx.num
                rx.set_desc(head, rx.buf(head), length, vf.DESC_F_WRITE)
                rx.offer(head)
            return rx.kick_if_asked(old)

        post(1, 512)
        frame = eth(BROADCAST, mac(2), (bytes(range(256)) * 6)[:1486])
        c.send(frame)
        d.wait_ports(lambda p: p["vu"]["stats"]["txq_depth"] == 1)
        time.sleep(0.1)
        assert rx.take_used() == [], "a frame went into too few buffers"
        assert rx.avail_event() == rx.avail_idx, \
            f"avail_event {rx.avail_event()}: the driver is not asked to kick for its next buffer ({rx.avail_idx})"
        assert d.proc.poll() is None
        assert post(3, 512), "the driver was not asked to kick"
        used, end = [], time.monotonic() + 2
        while len(used) < 3 and time.monotonic() < end:
            used += rx.take_used()
            time.sleep(0.005)
        assert len(used) == 3, f"used entries {used}"
        data = b"".join(rx.mem.read(rx.buf(head), length) for head, length in used)
        assert struct.unpack_from("<H", data, 10)[0] == 3, "num_buffers"
        assert data[vf.HDR_LEN:] == frame
        st = d.ports()["vu"]["stats"]
        assert st["txq_depth"] == 0 and st["tx_frames"] == 1, st
        fe.close()


def cpu_seconds(pid):
    """utime + stime of process pid so far, in seconds (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_kick_fd_regular_file_refused():
    """A regular file as kick fd is always readable: accepted, it kept the loop spinning at
    100 % CPU. It must be refused like any bad message, and the daemon stay idle."""
    with Daemon(PORTS) as d:
        a, b = stream_pair(d)
        path = d.path("not-an-eventfd")
        with open(path, "wb") as f:
            f.write(bytes(4096))
        fd = os.open(path, os.O_RDWR)
        fe = vf.Frontend(d.path("vu.sock"))
        try:
            try:
                fe.setup(fds={(vf.SET_VRING_KICK, vf.TX): fd})
                refused = False
            except (EOFError, BrokenPipeError, ConnectionResetError):
                refused = True
            refused = refused or fe.closed_by_peer(0.5)
            # a behaviour check, not a benchmark: a spinning loop burns the whole second
            before = cpu_seconds(d.proc.pid)
            time.sleep(1.0)
            used = cpu_seconds(d.proc.pid) - before
            assert used < 0.5, f"the daemon used {used:.2f} s of CPU in 1 s"
            assert refused, "a regular file was accepted as kick fd"
        finally:
            fe.close()
            os.close(fd)
        check_forwarding(a, b, "a regular file as kick fd")
        st = d.ports()["vu"]
        assert "1 protocol errors" in st["peer"], st["peer"]
        assert d.stop() == 0
        assert "SET_VRING_KICK for ring 1: the descriptor is a regular file, not an eventfd" in d.stderr, d.stderr


def test_kick_fd_own_socket_refused():
    """The front-end's own socket as kick fd: accepted, the daemon held the front-end's end of
    the connection, so the session never saw its end and every later front-end was refused."""
    with Daemon(PORTS) as d:
        c = StreamClient(d.path("s.sock"))
        fe = vf.Frontend(d.path("vu.sock"))
        assert fe.get_u64(vf.GET_FEATURES) & vf.F_PROTOCOL_FEATURES
        fe.set_u64(vf.SET_VRING_KICK, vf.RX, [fe.sock.fileno()])
        refused = fe.closed_by_peer()
        fe.close()
        assert refused, "the front-end's own socket was accepted as kick fd"
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        d.wait_ports(lambda p: p["vu"]["state"] == "up")
        f = eth(BROADCAST, mac(1), b"after the refused socket")
        fe.send_frame(f)
        assert c.recv(2.0) == f
        g = eth(mac(1), mac(2), b"and back")
        c.send(g)
        assert fe.recv_frames(1) == [g]
        fe.close()
        assert d.stop() == 0
        assert "SET_VRING_KICK for ring 0: the descriptor is a socket, not an eventfd" in d.stderr, d.stderr


def test_guest_memory_shrink_survived():
    """A front-end whose memfd cannot be sealed (no MFD_ALLOW_SEALING) shrinks it under
    running rings and kicks both: reading the rings used to kill the daemon with SIGBUS. Now
    only that port stops, both rings broken with the reason; the switch and two stream
    stations carry on; a new session gets a working port again."""
    with Daemon(PORTS) as d:
        a, b = stream_pair(d)
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        d.wait_ports(lambda p: p["vu"]["state"] == "up")
        seals = fcntl.fcntl(fe.mem.fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_SEAL and not seals & fcntl.F_SEAL_SHRINK, f"seals {seals:#x}"
        fe.send_frame(eth(BROADCAST, mac(1), b"before the shrink"))
        assert a.recv(2.0)[14:] == b"before the shrink"
        b.recv_all(0.2)
        # a TX chain waits un-kicked; after the shrink the front-end must not touch its memory
        fe.send_frame(eth(BROADCAST, mac(1), b"after the shrink"), kick=False)
        os.ftruncate(fe.mem.fd, 4096)  # the rings and buffers lie past this
        fe.rings[vf.TX].do_kick()
        fe.rings[vf.RX].do_kick()
        time.sleep(0.2)
        assert d.proc.poll() is None, f"the daemon died: {d.proc.returncode}"
        a.send(eth(BROADCAST, mac(101), b"to everyone, the guest too"))
        assert b.recv(2.0)[14:] == b"to everyone, the guest too"
        ports = d.wait_ports(lambda p: d.proc.poll() is not None or "tx broken" in p["vu"]["peer"]
                             and "rx broken" in p["vu"]["peer"])
        assert d.proc.poll() is None, f"the daemon died: {d.proc.returncode}"
        vu = ports["vu"]
        assert "guest memory shrank under the mapping" in vu["peer"], vu["peer"]
        assert vu["state"] == "down", vu
        check_forwarding(a, b, "the shrink")
        assert a.recv_all(0.3) == [], "a frame read from vanished guest memory was forwarded"
        fe.close()
        # a new session maps afresh and the port works again
        fe = vf.Frontend(d.path("vu.sock"))
        fe.setup()
        d.wait_ports(lambda p: p["vu"]["state"] == "up")
        f = eth(BROADCAST, mac(1), b"a new session")
        fe.send_frame(f)
        assert a.recv(2.0) == f
        assert b.recv(2.0) == f
        g = eth(mac(1), mac(101), b"to the new session")
        a.send(g)
        assert fe.recv_frames(1) == [g]
        fe.close()
        check_forwarding(a, b, "the new session")
        assert d.stop() == 0
        assert "guest memory shrank under the mapping" in d.stderr, d.stderr


def test_sealable_memfd_gets_shrink_seal():
    """A memfd that still takes seals gets F_SEAL_SHRINK at SET_MEM_TABLE: the front-end can
    no longer shrink it at all. Nothing else is sealed (it may still grow or be written)."""
    with Daemon(PORTS, extra=["-v"]) as d:
        fe = vf.Frontend(d.path("vu.sock"))
        mem = vf.GuestMemory(sealing=True)
        assert fcntl.fcntl(mem.fd, fcntl.F_GET_SEALS) == 0
        fe.setup(mem=mem)
        seals = fcntl.fcntl(mem.fd, fcntl.F_GET_SEALS)
        assert seals == fcntl.F_SEAL_SHRINK, f"seals {seals:#x}"
        try:
            os.ftruncate(mem.fd, 4096)
            raise AssertionError("the sealed memfd could still shrink")
        except PermissionError:
            pass
        os.ftruncate(mem.fd, mem.size + 4096)  # growing is still allowed
        c = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda p: p["vu"]["state"] == "up" and any(x["parent"] == "st" for x in p.values()))
        f = eth(BROADCAST, mac(1), b"sealed")
        fe.send_frame(f)
        assert c.recv(2.0) == f
        fe.close()
        assert d.stop() == 0
        assert "added F_SEAL_SHRINK" in d.stderr, d.stderr


class ListeningFrontend:
    """A front-end that listens, as QEMU with `-chardev socket,server=on` does: the back-end
    (a vhost-user,connect= port) dials it."""

    def __init__(self, path):
        self.path = path
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(path)
        self.ls.listen(4)

    def accept(self, timeout=5.0, scale=True):
        """The next connection from the back-end, or None within timeout (scaled unless not
        @scale)."""
        self.ls.settimeout(scaled(timeout) if scale else timeout)
        try:
            conn, _ = self.ls.accept()
        except socket.timeout:
            return None
        return conn

    def session(self, timeout=5.0):
        conn = self.accept(timeout)
        assert conn is not None, f"the back-end did not dial {self.path} within {scaled(timeout)} s"
        fe = vf.Frontend(None, sock=conn)
        fe.setup()
        return fe

    def close(self):
        """The VMM goes away: its socket file with it."""
        self.ls.close()
        os.unlink(self.path)


def exchange(d, fe, c, tag):
    """A broadcast from the guest reaches stream client c, and a unicast back reaches the guest."""
    f = eth(BROADCAST, mac(1), b"from the guest " + tag.encode())
    fe.send_frame(f)
    assert c.recv(2.0) == f, f"{tag}: the guest's frame did not reach the stream client"
    g = eth(mac(1), mac(2), b"to the guest " + tag.encode())
    c.send(g)
    assert fe.recv_frames(1) == [g], f"{tag}: the stream client's frame did not reach the guest"


def test_connect_mode_redials_a_restarted_frontend():
    """vhost-user,connect=: the switch dials a front-end that listens (QEMU server=on). When
    that front-end dies (its socket gone), the port goes down and the switch keeps dialing
    with backoff; a new front-end on the same path gets a session and frames flow again. A
    front-end that hangs up (QEMU killed with the socket file left) is redialed too."""
    tmp = tempfile.mkdtemp(prefix="sn-test-")
    path = os.path.join(tmp, "qemu.sock")
    qemu = ListeningFrontend(path)
    with Daemon(PORTS[:1] + [f"vhost-user,connect={path},name=vc"], tmp=tmp) as d:
        c = StreamClient(d.path("s.sock"))
        fe = qemu.session()
        d.wait_ports(lambda p: p["vc"]["state"] == "up")
        assert d.ports()["vc"]["peer"].startswith(f"connect unix:{path} front-end: rx running, tx running"), \
            d.ports()["vc"]["peer"]
        exchange(d, fe, c, "first session")
        # the VMM dies: connection and socket file gone
        fe.close()
        qemu.close()
        d.wait_ports(lambda p: p["vc"]["state"] == "connecting")
        assert "no front-end" in d.ports()["vc"]["peer"], d.ports()["vc"]["peer"]
        time.sleep(1.0)  # a few refused dials meanwhile
        assert d.proc.poll() is None
        qemu = ListeningFrontend(path)
        fe = qemu.session(timeout=8.0)
        d.wait_ports(lambda p: p["vc"]["state"] == "up")
        exchange(d, fe, c, "after the front-end restarted")
        # hung up, socket file kept: the switch dials the same listener again
        fe.close()
        fe = qemu.session()
        d.wait_ports(lambda p: p["vc"]["state"] == "up")
        exchange(d, fe, c, "after a hang-up")
        fe.close()
        qemu.close()
        assert d.stop() == 0
        assert d.stderr.count("vhost-user front-end connected") == 3, d.stderr
    shutil.rmtree(tmp, ignore_errors=True)


def test_connect_mode_survives_a_switch_restart():
    """The other side: the switch restarts under a front-end that keeps listening (QEMU with
    server=on stays up); the new switch dials it and the front-end starts a new session on the
    new connection, with no restart of its own."""
    tmp = tempfile.mkdtemp(prefix="sn-test-")
    path = os.path.join(tmp, "qemu.sock")
    qemu = ListeningFrontend(path)
    spec = [PORTS[0], f"vhost-user,connect={path},name=vc"]
    for round_ in range(2):
        with Daemon(spec, tmp=tmp) as d:
            c = StreamClient(d.path("s.sock"))
            fe = qemu.session()
            d.wait_ports(lambda p: p["vc"]["state"] == "up")
            exchange(d, fe, c, f"switch run {round_}")
            d.stop()
            # the front-end sees its connection end, and keeps its listener for the next switch
            assert fe.closed_by_peer(), "the stopped switch left the connection open"
            fe.close()
    qemu.close()
    shutil.rmtree(tmp, ignore_errors=True)


def test_connect_mode_backs_off_from_a_frontend_that_drops_it():
    """A listener that accepts and closes at once: each such session makes the next dial wait
    twice as long (0.1, 0.2, 0.4 s...) instead of redialing ten times a second."""
    tmp = tempfile.mkdtemp(prefix="sn-test-")
    path = os.path.join(tmp, "qemu.sock")
    qemu = ListeningFrontend(path)
    with Daemon([f"vhost-user,connect={path},name=vc"], tmp=tmp) as d:
        accepted, end = 0, time.monotonic() + 2.0
        while time.monotonic() < end:
            conn = qemu.accept(timeout=max(0.01, end - time.monotonic()), scale=False)
            if conn:
                accepted += 1
                conn.close()
        assert d.proc.poll() is None
        # 0 + 0.1 + 0.2 + 0.4 + 0.8 s: five dials in 2 s, not twenty
        assert 2 <= accepted <= 6, f"{accepted} dials in 2 s"
    qemu.close()
    shutil.rmtree(tmp, ignore_errors=True)


def test_spec_errors():
    with Daemon(PORTS[:1]) as d:
        for spec, text in [("vhost-user", "exactly one of"),
                           ("vhost-user,listen=@x.sock,fd=3", "exactly one of"),
                           ("vhost-user,listen=@x.sock,connect=@y.sock", "exactly one of"),
                           ("vhost-user,connect=tcp:127.0.0.1:5555", "needs a unix socket"),
                           ("vhost-user,connect=@y.sock,mode=0660", "creates none"),
                           ("vhost-user,listen=tcp:127.0.0.1:5555", "needs a unix socket"),
                           ("vhost-user,listen=@x.sock,bogus=1", "bogus")]:
            r = d.ctl_text("port", "add", spec.replace("@", d.tmp + "/"))
            assert r.returncode != 0 and text in (r.stderr + r.stdout), (spec, r.stderr, r.stdout)


if __name__ == "__main__":
    run_tests([
        test_hostile_messages_close_only_that_connection,
        test_session_exchanges_frames_with_a_stream_port,
        test_disabled_tx_ring_discards,
        test_reply_ack_and_queue_num,
        test_reconnect_and_second_frontend,
        test_memory_table_change_keeps_running,
        test_inherited_fd,
        test_hostile_ring_breaks_only_that_ring,
        test_mrg_rx_waits_for_enough_buffers,
        test_kick_fd_regular_file_refused,
        test_kick_fd_own_socket_refused,
        test_guest_memory_shrink_survived,
        test_sealable_memfd_gets_shrink_seal,
        test_connect_mode_redials_a_restarted_frontend,
        test_connect_mode_survives_a_switch_restart,
        test_connect_mode_backs_off_from_a_frontend_that_drops_it,
        test_spec_errors,
    ])
