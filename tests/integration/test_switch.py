#!/usr/bin/env python3
"""The switch's behaviour seen from real stream clients of the real daemon: learning,
flooding, unicast privacy, drops, broken peers, many clients, runtime port changes, SPEC
errors, shutdown."""

import os
import signal
import socket
import time

from sntest import (BROADCAST, Daemon, StreamClient, announce, assert_specs_refused, eth, mac, mac_str, run,
                    run_tests, scaled)


def attach(d, n, sock="s.sock", framing="qemu"):
    """n clients on listener socket `sock`, each announced with a broadcast so the switch
    learns it; returns them with their inboxes drained."""
    cs = [StreamClient(d.path(sock), framing) for _ in range(n)]
    d.wait_ports(lambda p: sum(1 for x in p.values() if x["state"] == "up") >= n)
    return announce(cs)


def test_learning_and_unicast_privacy():
    with Daemon(["stream,listen=unix:@s.sock,name=sw"]) as d:
        a, b, c = attach(d, 3)
        fdb = {e["mac"]: e["port"] for e in d.fdb()}
        assert fdb == {mac_str(mac(1)): "sw.1", mac_str(mac(2)): "sw.2", mac_str(mac(3)): "sw.3"}, fdb
        for i in range(10):
            a.send(eth(mac(2), mac(1), b"to-b %d" % i))
            b.send(eth(mac(1), mac(2), b"to-a %d" % i))
        got_b = b.recv_all()
        got_a = a.recv_all()
        assert len(got_b) == 10 and all(f[6:12] == mac(1) for f in got_b), got_b
        assert len(got_a) == 10 and all(f[6:12] == mac(2) for f in got_a)
        assert c.recv_all() == [], "a third port saw unicast between two learned stations"
        assert d.ctl("stats")["switch"]["unicast"] >= 20


def test_flooding():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, b, c = attach(d, 3)
        unknown = eth(mac(99), mac(1), b"who")
        multicast = eth(bytes.fromhex("01005e000001"), mac(1), b"mc")
        a.send(unknown)
        a.send(multicast)
        for x in (b, c):
            assert x.recv_all() == [unknown, multicast]
        assert a.recv_all() == [], "a frame went back out of its ingress port"


def test_never_back_to_ingress():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, b = attach(d, 2)
        # a frame to a MAC learned on the sender's own port is filtered
        a.send(eth(mac(1), mac(1), b"self"))
        assert a.recv_all() == [] and b.recv_all() == []
        assert d.ctl("stats")["switch"]["filtered"] == 1


def test_runt_and_oversize_counted():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, b = attach(d, 2)
        a.send(b"\x01" * 10)                                    # runt
        a.send(eth(mac(2), mac(1), size=1514 + 1))              # one byte over MTU 1500
        tagged = eth(mac(2), mac(1), b"\x00\x05\x88\xb5", ethertype=0x8100, size=1518)
        a.send(tagged)                                          # tagged at full size: fine
        a.send(eth(mac(2), mac(1), b"after"))
        got = b.recv_all()
        assert len(got) == 2 and got[0] == tagged and got[1][14:19] == b"after", [len(f) for f in got]
        st = d.ports()["stream0.1"]["stats"]
        assert st["drop_runt"] == 1 and st["drop_oversize"] == 1, st


def test_jumbo_mtu():
    with Daemon(["stream,listen=unix:@s.sock,mtu=9000"]) as d:
        a, b = attach(d, 2)
        big = eth(mac(2), mac(1), size=9014)
        a.send(big)
        assert b.recv_all() == [big]
        a.send(eth(mac(2), mac(1), size=9015))
        assert b.recv_all() == []
        assert d.ports()["stream0.1"]["stats"]["drop_oversize"] == 1


def test_bad_length_closes_only_that_peer():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, b, c = attach(d, 3)
        c.send_raw(b"\x00\x00\x00\x00")                         # zero length
        assert c.expect_eof(), "switch kept a peer that sent a zero length"
        d.wait_ports(lambda p: "stream0.3" not in p)
        a.send(eth(mac(2), mac(1), b"still"))
        assert [f[14:19] for f in b.recv_all()] == [b"still"]
        # entries of the removed port went with it
        assert mac_str(mac(3)) not in {e["mac"] for e in d.fdb()}


def test_oversize_length_closes_peer():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, b = attach(d, 2)
        a.send_raw(b"\x00\x01\x00\x00")                         # 65536: above any frame
        assert a.expect_eof()
        b.send(eth(BROADCAST, mac(2), b"alive"))
        d.wait_ports(lambda p: "stream0.1" not in p)


def test_peer_dies_mid_frame():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, b, c = attach(d, 3)
        frame = eth(mac(2), mac(3), size=200)
        c.send_raw(b"\x00\x00\x00\xc8" + frame[:50])           # half a frame, then gone
        c.close()
        d.wait_ports(lambda p: "stream0.3" not in p)
        assert b.recv_all() == [], "a partial frame was forwarded"
        a.send(eth(mac(2), mac(1), b"next"))
        assert [f[14:18] for f in b.recv_all()] == [b"next"]


def test_64_clients():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        cs = [StreamClient(d.path("s.sock")) for _ in range(64)]
        d.wait_ports(lambda p: sum(1 for x in p.values() if x["state"] == "up") == 64)
        for i, c in enumerate(cs):
            c.send(eth(BROADCAST, mac(i + 1), b"hi"))
        for i, c in enumerate(cs):
            got = []
            deadline = time.monotonic() + scaled(5)
            while len(got) < 63 and time.monotonic() < deadline:
                f = c.recv(0.5)
                if f is not None:
                    got.append(f)
            srcs = sorted(f[6:12] for f in got)
            assert srcs == sorted(mac(j + 1) for j in range(64) if j != i), f"client {i}: {len(got)} frames"
        assert len(d.fdb()) == 64
        # every pair can now talk privately
        cs[10].send(eth(mac(50), mac(11), b"x"))
        assert len(cs[49].recv_all()) == 1
        assert all(c.recv_all(0.05) == [] for j, c in enumerate(cs) if j != 49)


def test_slow_peer_does_not_stall_others():
    # the kernel's default send buffer, so that the stuck socket fills after ~200 KiB
    with Daemon(["stream,listen=unix:@s.sock"], extra=["--sock-buf", "0"]) as d:
        a, b, stuck = attach(d, 3)
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # flood the stuck port (never reading) with unicast it must queue and then drop
        payload = eth(mac(3), mac(1), size=1514)
        for _ in range(3000):
            a.send(payload)
        # a and b still talk
        a.send(eth(mac(2), mac(1), b"through"))
        got = b.recv_all(0.5)
        assert any(f[14:21] == b"through" for f in got), "a stuck peer stalled another port"
        st = d.ports()["stream0.3"]["stats"]
        assert st["drop_txq_full"] > 0, st
        assert st["txq_depth"] <= d.ports()["stream0.3"]["txq_len"]


def test_port_add_del_at_runtime():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a = StreamClient(d.path("s.sock"))
        r = d.ctl("port", "add", f"stream,listen=unix:{d.path('t.sock')},name=extra")
        assert r["added"] == "extra"
        b = StreamClient(d.path("t.sock"))
        d.wait_ports(lambda p: "extra.1" in p and p["extra.1"]["state"] == "up")
        a.send(eth(BROADCAST, mac(1), b"cross"))
        assert [f[14:19] for f in b.recv_all()] == [b"cross"]
        assert d.ctl("port", "del", "extra")["deleted"] == "extra"
        assert b.expect_eof(), "deleting a listener left its clients attached"
        assert not os.path.exists(d.path("t.sock")), "deleted listener left its socket file"
        assert "extra" not in d.ports() and "extra.1" not in d.ports()
        r = run([d.ctl_bin, "--control", d.control, "port", "del", "nosuch"], capture_output=True, text=True)
        assert r.returncode == 1 and "nosuch" in r.stderr, r.stderr


def test_connect_mode_reconnects():
    with Daemon([]) as d:
        path = d.path("peer.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(scaled(5))
        d.ctl("port", "add", f"stream,connect=unix:{path},name=up")
        d.ctl("port", "add", f"stream,listen=unix:{d.path('s.sock')},name=sw")
        conn, _ = srv.accept()
        peer = StreamClient.__new__(StreamClient)
        peer.sock, peer.hlen, peer.framing, peer.buf = conn, 4, "qemu", b""
        peer.put = lambda n: n.to_bytes(4, "big")
        a = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda p: p["up"]["state"] == "up" and "sw.1" in p)
        a.send(eth(BROADCAST, mac(1), b"one"))
        assert [f[14:17] for f in peer.recv_all()] == [b"one"]
        conn.close()
        # it notices and dials again (the connecting spell between is too short to poll for: the
        # first redial comes after 0.1 s and the backlog takes it at once)
        conn, _ = srv.accept()
        peer.sock, peer.buf = conn, b""
        d.wait_ports(lambda p: p["up"]["state"] == "up")
        a.send(eth(BROADCAST, mac(1), b"two"))
        assert [f[14:17] for f in peer.recv_all()] == [b"two"]


def test_connect_mode_backs_off_from_a_peer_that_drops_it():
    """A peer that accepts and closes at once is not redialed ten times a second: each such
    connection makes the next dial wait twice as long, as a refused one does."""
    with Daemon([]) as d:
        path = d.path("peer.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(4)
        d.ctl("port", "add", f"stream,connect=unix:{path},name=up")
        accepted, end = 0, time.monotonic() + 2.0
        while time.monotonic() < end:
            srv.settimeout(max(0.01, end - time.monotonic()))
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            accepted += 1
            conn.close()
        assert d.proc.poll() is None
        # 0.1 + 0.2 + 0.4 + 0.8 s between dials: at most five in 2 s, not twenty
        assert 2 <= accepted <= 6, f"{accepted} dials in 2 s"
        srv.close()


def test_connect_mode_absent_peer_shows_connecting():
    """A connect-mode port whose peer never appears says so: `connecting` and the last error,
    in JSON and in the text table, until the peer is there."""
    with Daemon(["stream,connect=unix:@nope.sock,name=up", "stream,listen=unix:@s.sock,name=sw"]) as d:
        path = d.path("nope.sock")
        p = d.wait_ports(lambda p: p["up"]["error"])["up"]
        assert p["state"] == "connecting" and "No such file or directory" in p["error"], p
        text = d.ctl_text("ports").stdout
        row = next(line for line in text.splitlines() if line.startswith("up "))
        assert " connecting " in row and "No such file or directory" in row, text
        # a socket file nobody listens on: the error follows what the dialer meets now
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(path)
        p = d.wait_ports(lambda p: "refused" in p["up"]["error"], timeout=8)["up"]
        assert p["state"] == "connecting", p
        dead.close()
        os.unlink(path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(8)
        conn, _ = srv.accept()
        p = d.wait_ports(lambda p: p["up"]["state"] == "up")["up"]
        assert p["error"] == "", p
        # lost again: connecting, and the error says why
        conn.close()
        p = d.wait_ports(lambda p: p["up"]["state"] != "up")["up"]
        assert p["state"] == "connecting" and p["error"], p
        conn, _ = srv.accept()
        d.wait_ports(lambda p: p["up"]["state"] == "up" and p["up"]["error"] == "")
        conn.close()
        srv.close()
        # ports that dial nothing have no error
        assert d.ports()["sw"]["error"] == "" and d.ports()["sw"]["state"] == "listening"


def test_tcp_and_framings():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Daemon([f"stream,listen=tcp:127.0.0.1:{port},name=tcp",
                 "stream,listen=unix:@h.sock,framing=hyperkit,name=hk",
                 "stream,listen=unix:@v.sock,framing=vde,name=vde"]) as d:
        t = StreamClient(("127.0.0.1", port), "qemu", socket.AF_INET)
        h = StreamClient(d.path("h.sock"), "hyperkit")
        v = StreamClient(d.path("v.sock"), "vde")
        d.wait_ports(lambda p: all(n in p for n in ("tcp.1", "hk.1", "vde.1")))
        for i, c in enumerate((t, h, v)):
            c.send(eth(BROADCAST, mac(i + 1), b"from %d" % i))
        for i, c in enumerate((t, h, v)):
            got = sorted(f[14:20] for f in c.recv_all())
            assert got == sorted(b"from %d" % j for j in range(3) if j != i), (i, got)


def test_fdb_aging_and_caps():
    # the entries must outlive the steps up to the stats, which take scaled time
    aging = round(scaled(2))
    with Daemon(["stream,listen=unix:@s.sock"], extra=["--fdb-aging", str(aging), "--fdb-max", "4"]) as d:
        a, b = attach(d, 2)
        for n in range(10, 16):                                 # 6 more MACs behind a: 2 fit
            a.send(eth(BROADCAST, mac(n), b"x"))
        b.recv_all()
        st = d.ctl("stats")["switch"]
        assert st["fdb_entries"] == 4 and st["fdb_refused_table"] == 4, st
        assert d.ports()["stream0.1"]["stats"]["fdb_refused"] == 4
        time.sleep(aging + 0.3)
        assert d.fdb() == [], f"entries outlived --fdb-aging {aging}"
        # a refused station is learned once room is back
        a.send(eth(BROADCAST, mac(15), b"x"))
        assert [e["mac"] for e in d.fdb()] == [mac_str(mac(15))]


def test_fdb_flush_and_move():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        a, b, c = attach(d, 3)
        c.send(eth(BROADCAST, mac(1), b"moved"))                # mac 1 now behind c
        a.recv_all(); b.recv_all()
        assert {e["mac"]: e["port"] for e in d.fdb()}[mac_str(mac(1))] == "stream0.3"
        assert d.ctl("stats")["switch"]["fdb_moves"] == 1
        assert d.ctl("fdb", "flush", "stream0.2")["flushed"] == 1
        assert d.ctl("fdb", "flush")["flushed"] == 2           # mac 1 and mac 3, both on .3
        assert d.fdb() == []


def test_bad_specs_refused_at_start():
    cases = [
        ("stream,listen=unix:@x.sock,bogus=1", "bogus"),
        ("stream,listen=nope:x", "listen"),
        ("stream,listen=unix:@x.sock,framing=xyz", "framing"),
        ("stream,listen=unix:@x.sock,mtu=99999999", "mtu"),
        ("stream,listen=unix:@x.sock,mtu=abc", "mtu"),
        ("stream", "listen"),
        ("frob,listen=x", "frob"),
        ("stream,listen=unix:@x.sock,name=a b", "name"),
        ("stream,listen", "listen"),
        # a misspelt key is named, not what its absence made of the rest (issue 14)
        ("stream,listn=unix:@x.sock", "unknown key 'listn' for port kind 'stream'"),
        ("seqpacket,conect=@x.sock", "unknown key 'conect' for port kind 'seqpacket'"),
        ("dgram,listen=@x.sock,max-peer=3", "unknown key 'max-peer' for port kind 'dgram'"),
    ]
    assert_specs_refused(cases)


def test_stale_socket_replaced_live_refused():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        # a live listener owns the path: a second daemon must refuse it
        with Daemon([f"stream,listen=unix:{d.path('s.sock')}"], expect_start=False,
                    extra=[]) as d2:
            assert d2.proc.wait(timeout=scaled(5)) != 0
            assert "in use" in d2.proc.stderr.read()
        tmp = d.tmp
        d.proc.kill()                                           # leaves s.sock behind
        d.proc.wait()
        assert os.path.exists(os.path.join(tmp, "s.sock"))
        with Daemon(["stream,listen=unix:@s.sock"], tmp=tmp) as d3:
            a = StreamClient(d3.path("s.sock"))
            d3.wait_ports(lambda p: "stream0.1" in p)
            a.close()
            assert d3.stop() == 0


def test_sigterm_cleans_up():
    with Daemon(["stream,listen=unix:@s.sock", "dgram,listen=@d.sock"]) as d:
        a = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda p: "stream0.1" in p)
        assert d.stop(signal.SIGTERM) == 0, d.stderr
        for f in ("s.sock", "d.sock", "control.sock"):
            assert not os.path.exists(d.path(f)), f"{f} left behind after SIGTERM"
        assert a.expect_eof()


if __name__ == "__main__":
    run_tests([
        test_learning_and_unicast_privacy,
        test_flooding,
        test_never_back_to_ingress,
        test_runt_and_oversize_counted,
        test_jumbo_mtu,
        test_bad_length_closes_only_that_peer,
        test_oversize_length_closes_peer,
        test_peer_dies_mid_frame,
        test_64_clients,
        test_slow_peer_does_not_stall_others,
        test_port_add_del_at_runtime,
        test_connect_mode_reconnects,
        test_connect_mode_backs_off_from_a_peer_that_drops_it,
        test_connect_mode_absent_peer_shows_connecting,
        test_tcp_and_framings,
        test_fdb_aging_and_caps,
        test_fdb_flush_and_move,
        test_bad_specs_refused_at_start,
        test_stale_socket_replaced_live_refused,
        test_sigterm_cleans_up,
    ])
