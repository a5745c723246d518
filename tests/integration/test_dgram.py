#!/usr/bin/env python3
"""dgram ports of the real daemon seen from real unix datagram sockets: a listener that makes a
port of every sending address, vfkit's hello, runts, oversize, unnamed senders, vanished peers,
connect mode with a peer that comes late, and a stream client talking to a datagram peer.

Needs SQUIBNET and SQUIBNETCTL (see sntest.py); exits 77 when they are missing."""

import os
import re
import select
import socket
import tempfile
import time

from sntest import (BROADCAST, Daemon, StreamClient, assert_specs_refused, eth, mac, mac_str, run_tests, scaled)

HELLO = b"VFKT"


class DgramPeer:
    """A datagram peer bound to its own path: a QEMU -netdev dgram or vfkit stand-in."""

    def __init__(self, path, remote=None, connect=False):
        self.path = path
        self.remote = remote
        self.connected = connect
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.settimeout(scaled(5))
        if path is not None:
            self.sock.bind(path)
        if connect:
            self.sock.connect(remote)

    def send(self, frame, to=None):
        if self.connected:
            self.sock.send(frame)
        else:
            self.sock.sendto(frame, to or self.remote)

    def recv(self, timeout=2.0):
        """The next datagram and its sender, or (None, None) when none arrives in time (scaled)."""
        r, _, _ = select.select([self.sock], [], [], scaled(timeout))
        if not r:
            return None, None
        return self.sock.recvfrom(1 << 17)

    def recv_all(self, timeout=0.3):
        """Every datagram until the line has been quiet for timeout."""
        out = []
        while True:
            d, _ = self.recv(timeout)
            if d is None:
                return out
            out.append(d)

    def close(self):
        self.sock.close()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)


def announce(d, peers, listener="dg"):
    """Each peer sends a broadcast, so the listener makes a port of it and the switch learns its
    MAC; returns the names of their ports in order, with every inbox drained."""
    for i, p in enumerate(peers):
        p.send(eth(BROADCAST, mac(i + 1), b"hello %d" % i))
        d.wait_ports(lambda ps: f"{listener}.{i + 1}" in ps)
    for p in peers:
        p.recv_all(0.2)
    return [f"{listener}.{i + 1}" for i in range(len(peers))]


def test_listener_unicast_privacy():
    with Daemon(["dgram,listen=@d.sock,name=dg"]) as d:
        sock = d.path("d.sock")
        a, b, c = (DgramPeer(d.path(n), sock) for n in ("a.sock", "b.sock", "c.sock"))
        names = announce(d, [a, b, c])
        ports = d.ports()
        assert ports["dg"]["state"] == "listening", ports["dg"]
        assert ports["dg"]["peer"] == f"listen unix:{sock}", ports["dg"]
        for n, p in zip(names, (a, b, c)):
            assert ports[n]["parent"] == "dg" and ports[n]["state"] == "up", ports[n]
            assert ports[n]["peer"] == f"unix:{p.path}", ports[n]
            assert ports[n]["kind"] == "dgram"
        fdb = {e["mac"]: e["port"] for e in d.fdb()}
        assert fdb == {mac_str(mac(1)): "dg.1", mac_str(mac(2)): "dg.2", mac_str(mac(3)): "dg.3"}, fdb
        for i in range(10):
            a.send(eth(mac(2), mac(1), b"to-b %d" % i))
            b.send(eth(mac(1), mac(2), b"to-a %d" % i))
        got_b, got_a = b.recv_all(), a.recv_all()
        assert got_b == [eth(mac(2), mac(1), b"to-b %d" % i) for i in range(10)], got_b
        assert got_a == [eth(mac(1), mac(2), b"to-a %d" % i) for i in range(10)], got_a
        assert c.recv_all() == [], "a third peer saw unicast between two learned stations"
        # replies come from the listener's own socket
        a.send(eth(BROADCAST, mac(1), b"where from"))
        data, sender = b.recv()
        assert data is not None and sender == sock, sender


def test_burst_is_delivered_whole():
    # The receiving peer does not read while the burst goes on, so its socket queue (only a
    # handful of datagrams by default) fills and the switch must hold and retry, not lose.
    with Daemon(["dgram,listen=@d.sock,name=dg"]) as d:
        sock = d.path("d.sock")
        a, b = (DgramPeer(d.path(n), sock) for n in ("a.sock", "b.sock"))
        announce(d, [a, b])
        n = 300
        for i in range(n):
            a.send(eth(mac(2), mac(1), i.to_bytes(4, "big"), size=200))
        got = b.recv_all(0.5)
        assert len(got) == n, f"{len(got)} of {n} frames arrived"
        assert [int.from_bytes(f[14:18], "big") for f in got] == list(range(n)), "frames reordered"
        st = d.ports()["dg.2"]["stats"]
        assert st["tx_frames"] >= n and st["drop_txq_full"] == 0, st


def test_vfkit_hello_consumed():
    with Daemon(["dgram,listen=@d.sock,name=dg"]) as d:
        sock = d.path("d.sock")
        a = DgramPeer(d.path("a.sock"), sock)
        # vfkit connects its socket and greets first
        v = DgramPeer(d.path("v.sock"), sock, connect=True)
        v.send(HELLO)
        d.wait_ports(lambda ps: "dg.1" in ps)
        a.send(eth(BROADCAST, mac(1), b"from a"))
        got = v.recv_all()
        assert got == [eth(BROADCAST, mac(1), b"from a")], got
        assert a.recv_all() == [], "the hello was forwarded"
        v.send(eth(mac(1), mac(7), b"from vfkit"))
        assert a.recv_all() == [eth(mac(1), mac(7), b"from vfkit")]
        st = d.ports()["dg.1"]["stats"]
        assert st["drop_runt"] == 0 and st["rx_frames"] == 1, st
        # only the first datagram is a hello: later it is a runt like any other
        v.send(HELLO)
        assert a.recv_all() == []
        assert d.ports()["dg.1"]["stats"]["drop_runt"] == 1


def test_runt_and_oversize_counted_not_forwarded():
    with Daemon(["dgram,listen=@d.sock,name=dg"]) as d:
        sock = d.path("d.sock")
        a, b = (DgramPeer(d.path(n), sock) for n in ("a.sock", "b.sock"))
        announce(d, [a, b])
        a.send(b"\x01\x02\x03\x04\x05\x06")              # 6 bytes: no Ethernet header
        a.send(b"")                                      # empty datagram
        a.send(eth(BROADCAST, mac(1), size=1600))        # over MTU 1500 + 18
        a.send(eth(BROADCAST, mac(1), size=1514))        # the largest untagged frame: fine
        got = b.recv_all()
        assert [len(f) for f in got] == [1514], [len(f) for f in got]
        st = d.ports()["dg.1"]["stats"]
        assert st["drop_runt"] == 2, st
        assert st["drop_oversize"] + d.ports()["dg"]["stats"]["drop_oversize"] == 1, st


def test_jumbo_mtu():
    with Daemon(["dgram,listen=@d.sock,name=dg,mtu=9000"]) as d:
        sock = d.path("d.sock")
        a, b = (DgramPeer(d.path(n), sock) for n in ("a.sock", "b.sock"))
        announce(d, [a, b])
        big = eth(mac(2), mac(1), size=9014)
        a.send(big)
        assert b.recv_all() == [big]


def test_unnamed_sender_dropped():
    with Daemon(["dgram,listen=@d.sock,name=dg"]) as d:
        sock = d.path("d.sock")
        a = DgramPeer(d.path("a.sock"), sock)
        announce(d, [a])
        anon = DgramPeer(None, sock)
        anon.send(eth(BROADCAST, mac(9), b"nobody can answer me"))
        anon.send(eth(BROADCAST, mac(9), b"still nobody"))
        assert a.recv_all() == []
        ports = d.ports()
        assert set(ports) == {"dg", "dg.1"}, sorted(ports)
        assert ports["dg"]["stats"]["drop_bad_framing"] == 2, ports["dg"]["stats"]


def test_vanished_peer_closed():
    with Daemon(["dgram,listen=@d.sock,name=dg"]) as d:
        sock = d.path("d.sock")
        a, b = (DgramPeer(d.path(n), sock) for n in ("a.sock", "b.sock"))
        announce(d, [a, b])
        b.close()                                        # socket and its file are gone
        a.send(eth(BROADCAST, mac(1), b"anyone?"))
        d.wait_ports(lambda ps: "dg.2" not in ps)
        assert mac_str(mac(2)) not in {e["mac"] for e in d.fdb()}
        # the same address coming back is a new port
        b = DgramPeer(d.path("b.sock"), sock)
        b.send(eth(BROADCAST, mac(2), b"back"))
        d.wait_ports(lambda ps: "dg.3" in ps)
        assert a.recv_all() == [eth(BROADCAST, mac(2), b"back")]


def test_listener_delete_takes_peers_and_file():
    with Daemon(["dgram,listen=@d.sock,name=dg", "stream,listen=unix:@s.sock,name=st"]) as d:
        sock = d.path("d.sock")
        a, b = (DgramPeer(d.path(n), sock) for n in ("a.sock", "b.sock"))
        announce(d, [a, b])
        assert d.ctl("port", "del", "dg")["deleted"] == "dg"
        ports = d.ports()
        assert set(ports) == {"st"}, sorted(ports)
        assert not os.path.exists(sock), "listener socket file left behind"
        assert d.fdb() == []
        # the path can be listened on again at once
        d.ctl("port", "add", f"dgram,listen={sock},name=dg2")
        a.send(eth(BROADCAST, mac(1), b"again"))
        d.wait_ports(lambda ps: "dg2.1" in ps)


def test_connect_mode():
    with Daemon(["stream,listen=unix:@s.sock,name=st"]) as d:
        remote = d.path("q.sock")
        local = d.path("l.sock")
        q = DgramPeer(remote)                            # QEMU -netdev dgram stand-in
        name = d.ctl("port", "add", f"dgram,connect={remote},local={local},name=qm")["added"]
        assert name == "qm"
        p = d.ports()["qm"]
        assert p["state"] == "up" and p["peer"].startswith(f"connect unix:{remote}"), p
        s = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda ps: "st.1" in ps)
        s.send(eth(BROADCAST, mac(1), b"to qemu"))
        data, sender = q.recv()
        assert data == eth(BROADCAST, mac(1), b"to qemu") and sender == local, (data, sender)
        q.send(eth(mac(1), mac(2), b"from qemu"), to=local)
        assert s.recv_all() == [eth(mac(1), mac(2), b"from qemu")]
        # a restarted QEMU (new socket, same path) is reached without any reconnect step
        q.close()
        q = DgramPeer(remote)
        q.send(eth(mac(1), mac(2), b"reborn"), to=local)
        assert s.recv_all() == [eth(mac(1), mac(2), b"reborn")]
        s.send(eth(mac(2), mac(1), b"welcome back"))
        assert q.recv_all() == [eth(mac(2), mac(1), b"welcome back")]
        assert d.ctl("port", "del", "qm")["deleted"] == "qm"
        assert not os.path.exists(local), "local socket file left behind"


def test_connect_mode_peer_comes_later():
    with Daemon(["stream,listen=unix:@s.sock,name=st"]) as d:
        remote, local = d.path("q.sock"), d.path("l.sock")
        d.ctl("port", "add", f"dgram,connect={remote},local={local},name=qm")
        assert d.ports()["qm"]["state"] == "up"
        s = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda ps: "st.1" in ps)
        for i in range(5):
            s.send(eth(BROADCAST, mac(1), b"lost %d" % i))
        time.sleep(scaled(0.2))
        assert d.ports()["qm"]["state"] == "up", "the port went down while nobody listened"
        q = DgramPeer(remote)
        s.send(eth(BROADCAST, mac(1), b"found"))
        assert q.recv_all() == [eth(BROADCAST, mac(1), b"found")]


def test_connect_mode_vfkit_hello():
    with Daemon(["stream,listen=unix:@s.sock,name=st"]) as d:
        remote, local = d.path("g.sock"), d.path("l.sock")
        g = DgramPeer(remote)                            # gvproxy -listen-vfkit stand-in
        d.ctl("port", "add", f"dgram,connect={remote},local={local},hello=vfkit,name=vf")
        data, sender = g.recv()
        assert data == HELLO and sender == local, (data, sender)
        # and a peer that was not there at first is greeted before the first frame
        remote2, local2 = d.path("g2.sock"), d.path("l2.sock")
        d.ctl("port", "add", f"dgram,connect={remote2},local={local2},hello=vfkit,name=vf2")
        s = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda ps: "st.1" in ps)
        s.send(eth(BROADCAST, mac(1), b"lost"))
        time.sleep(scaled(0.2))
        g2 = DgramPeer(remote2)
        s.send(eth(BROADCAST, mac(1), b"first"))
        assert g2.recv_all() == [HELLO, eth(BROADCAST, mac(1), b"first")]
        assert g.recv_all() == [eth(BROADCAST, mac(1), b"lost"), eth(BROADCAST, mac(1), b"first")]


def test_mixed_stream_and_dgram():
    with Daemon(["stream,listen=unix:@s.sock,name=st", "dgram,listen=@d.sock,name=dg"]) as d:
        s = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda ps: "st.1" in ps)
        g = DgramPeer(d.path("g.sock"), d.path("d.sock"))
        g.send(eth(BROADCAST, mac(2), b"dgram here"))
        assert s.recv_all() == [eth(BROADCAST, mac(2), b"dgram here")]
        s.send(eth(mac(2), mac(1), b"stream here"))
        assert g.recv_all() == [eth(mac(2), mac(1), b"stream here")]
        for i in range(20):
            g.send(eth(mac(1), mac(2), b"d%d" % i))
            s.send(eth(mac(2), mac(1), b"s%d" % i))
        assert s.recv_all() == [eth(mac(1), mac(2), b"d%d" % i) for i in range(20)]
        assert g.recv_all() == [eth(mac(2), mac(1), b"s%d" % i) for i in range(20)]
        assert {e["mac"]: e["port"] for e in d.fdb()} == {mac_str(mac(1)): "st.1", mac_str(mac(2)): "dg.1"}


def refused(port):
    """Datagrams a dgram listener refused from new peers, from its PEER text (0 when absent)."""
    m = re.search(r" refused=(\d+)", port["peer"])
    return int(m.group(1)) if m else 0


def test_max_peers():
    # every new sender address used to become a port: 16,399 of them, +250 MB
    n, cap = 300, 256  # the default max-peers
    sink = mac(0xFFFF)
    # a log file, not a pipe nobody reads: 256 "attached" lines would come close to filling it
    with tempfile.TemporaryFile("w+") as log, \
            Daemon(["dgram,listen=@d.sock,name=dg", "stream,listen=unix:@s.sock,name=st"], stderr=log) as d:
        sock = d.path("d.sock")
        # the senders talk to one stream station, so nothing floods to the peers meanwhile
        st = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda ps: "st.1" in ps)
        st.send(eth(BROADCAST, sink, b"sink"))
        peers = [DgramPeer(d.path(f"p{i}.sock"), sock) for i in range(n)]
        for i, p in enumerate(peers):
            p.send(eth(sink, mac(i + 1), b"hi"))
        ports = d.wait_ports(lambda ps: refused(ps["dg"]) == n - cap)
        kids = {p["peer"]: name for name, p in ports.items() if p["parent"] == "dg"}
        assert len(kids) == cap, f"{len(kids)} ports for {n} senders"
        assert len(st.recv_all()) == cap, "frames of refused senders were forwarded"
        # the first cap senders got ports, each learned behind its own: the lookup found each one
        assert set(kids) == {f"unix:{p.path}" for p in peers[:cap]}, "the wrong senders got ports"
        fdb = {e["mac"]: e["port"] for e in d.fdb()}
        for i in range(cap):
            assert fdb[mac_str(mac(i + 1))] == kids[f"unix:{peers[i].path}"], i
        assert mac_str(mac(cap + 1)) not in fdb
        # refused, and counted, on every datagram
        peers[-1].send(eth(mac(1), mac(n), b"let me in"))
        peers[0].send(eth(mac(2), mac(1), b"known"))
        assert peers[1].recv_all() == [eth(mac(2), mac(1), b"known")]
        assert peers[0].recv_all() == []
        assert refused(d.ports()["dg"]) == n - cap + 1
        # known peers keep forwarding both ways, unicast and flooded
        peers[cap - 1].send(eth(mac(1), mac(cap), b"last in"))
        assert peers[0].recv_all() == [eth(mac(1), mac(cap), b"last in")]
        peers[5].send(eth(BROADCAST, mac(6), b"to all"))
        assert st.recv_all() == [eth(BROADCAST, mac(6), b"to all")]
        got = [len(p.recv_all(0)) for p in peers]
        assert got == [1 if i < cap and i != 5 else 0 for i in range(n)], got
        # a peer that leaves frees its slot for a newcomer
        d.ctl("port", "del", kids[f"unix:{peers[7].path}"])
        peers[-1].send(eth(BROADCAST, mac(n), b"now?"))
        d.wait_ports(lambda ps: f"unix:{peers[-1].path}" in {p["peer"] for p in ps.values()})
        for p in peers:
            p.close()


def test_max_peers_key_and_timeout():
    # the steps below must fit inside one peer-timeout, however slow the programs run
    timeout = max(2, round(scaled(2)))
    with Daemon([f"dgram,listen=@d.sock,name=dg,max-peers=2,peer-timeout={timeout}"]) as d:
        sock = d.path("d.sock")
        a, b, c = (DgramPeer(d.path(n), sock) for n in ("a.sock", "b.sock", "c.sock"))
        names = announce(d, [a, b])
        c.send(eth(BROADCAST, mac(3), b"full"))
        assert a.recv_all() == [] and b.recv_all() == []
        assert refused(d.ports()["dg"]) == 1
        # b talks, a stays silent: a is closed after peer-timeout, and c takes its place
        t0 = time.monotonic()
        while names[0] in d.ports():
            assert time.monotonic() - t0 < 3 * timeout, "a silent peer was never aged out"
            b.send(eth(BROADCAST, mac(2), b"still here"))
            time.sleep(0.2)
        ports = d.ports()
        assert names[1] in ports, "a peer that kept talking was aged out"
        assert mac_str(mac(1)) not in {e["mac"] for e in d.fdb()}
        # b speaks once more: the two control calls above may have taken a peer-timeout on a
        # loaded machine under valgrind, and b must still be there for c's frame
        b.send(eth(BROADCAST, mac(2), b"still here"))
        c.send(eth(mac(2), mac(3), b"my turn"))
        assert b.recv(1.0)[0] == eth(mac(2), mac(3), b"my turn")
        assert f"unix:{c.path}" in {p["peer"] for p in d.ports().values()}
        # a, back, finds the listener full
        a.send(eth(BROADCAST, mac(1), b"back"))
        assert b.recv(0.2)[0] is None and refused(d.ports()["dg"]) == 2
        # and gets in once the others went silent too
        t0 = time.monotonic()
        while f"unix:{a.path}" not in {p["peer"] for p in d.ports().values()}:
            assert time.monotonic() - t0 < 3 * timeout, "silent peers kept their places"
            a.send(eth(BROADCAST, mac(1), b"knock"))
            time.sleep(0.3)


def test_bad_specs_refused_at_start():
    cases = [
        ("dgram,listen=@x.sock,bogus=1", "bogus"),
        ("dgram,connect=@x.sock", "local"),
        ("dgram", "listen"),
        ("dgram,listen=@x.sock,connect=@y.sock", "connect"),
        ("dgram,listen=tcp:127.0.0.1:5000", "listen"),
        ("dgram,listen=@x.sock,local=@y.sock", "local"),
        ("dgram,connect=@x.sock,local=@y.sock,hello=qemu", "hello"),
        ("dgram,listen=@x.sock,mtu=10", "mtu"),
        ("dgram,listen=@x.sock,max-peers=0", "max-peers"),
        ("dgram,listen=@x.sock,max-peers=many", "max-peers"),
        ("dgram,listen=@x.sock,max-peers=1000000", "max-peers"),
        ("dgram,listen=@x.sock,peer-timeout=-1", "peer-timeout"),
        ("dgram,listen=@x.sock,peer-timeout=1.5", "peer-timeout"),
        ("dgram,connect=@x.sock,local=@y.sock,max-peers=4", "max-peers"),
        ("dgram,connect=@x.sock,local=@y.sock,peer-timeout=4", "peer-timeout"),
    ]
    assert_specs_refused(cases)


def test_live_path_refused_stale_replaced():
    with Daemon(["dgram,listen=@d.sock"]) as d:
        with Daemon([f"dgram,listen={d.path('d.sock')}"], expect_start=False) as d2:
            assert d2.proc.wait(timeout=scaled(5)) != 0
            assert "in use" in d2.proc.stderr.read()
        tmp = d.tmp
        d.proc.kill()                                    # leaves d.sock behind
        d.proc.wait()
        assert os.path.exists(os.path.join(tmp, "d.sock"))
        with Daemon(["dgram,listen=@d.sock,name=dg"], tmp=tmp) as d3:
            a = DgramPeer(d3.path("a.sock"), d3.path("d.sock"))
            a.send(eth(BROADCAST, mac(1)))
            d3.wait_ports(lambda ps: "dg.1" in ps)
            assert d3.stop() == 0
            assert not os.path.exists(d3.path("d.sock"))


if __name__ == "__main__":
    run_tests([
        test_listener_unicast_privacy,
        test_burst_is_delivered_whole,
        test_vfkit_hello_consumed,
        test_runt_and_oversize_counted_not_forwarded,
        test_jumbo_mtu,
        test_unnamed_sender_dropped,
        test_vanished_peer_closed,
        test_listener_delete_takes_peers_and_file,
        test_max_peers,
        test_max_peers_key_and_timeout,
        test_connect_mode,
        test_connect_mode_peer_comes_later,
        test_connect_mode_vfkit_hello,
        test_mixed_stream_and_dgram,
        test_bad_specs_refused_at_start,
        test_live_path_refused_stale_replaced,
    ])
