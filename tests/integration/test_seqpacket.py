#!/usr/bin/env python3
"""seqpacket ports of the real daemon seen from real unix seqpacket sockets: a listener with
several clients, one client leaving, oversize messages, connect mode against a server that
drops the connection or starts late, and SPEC errors.

Needs SQUIBNET and SQUIBNETCTL (see sntest.py); exits 77 when they are missing."""

import os
import select
import socket
import time

from sntest import (BROADCAST, Daemon, StreamClient, announce, assert_specs_refused, eth, mac, mac_str, run_tests,
                    scaled)


class SeqClient:
    """A peer on a seqpacket socket: a gvproxy -listen-bess stand-in."""

    def __init__(self, sock=None, path=None):
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.connect(path)
        self.sock = sock
        self.sock.settimeout(scaled(5))

    def send(self, frame):
        self.sock.send(frame)

    def recv(self, timeout=2.0):
        r, _, _ = select.select([self.sock], [], [], scaled(timeout))
        if not r:
            return None
        data = self.sock.recv(1 << 17)
        if not data:
            raise EOFError("switch closed the connection")
        return data

    def recv_all(self, timeout=0.3):
        out = []
        while True:
            f = self.recv(timeout)
            if f is None:
                return out
            out.append(f)

    def close(self):
        self.sock.close()


def attach(d, n, sock="q.sock", listener="sq"):
    cs = [SeqClient(path=d.path(sock)) for _ in range(n)]
    d.wait_ports(lambda ps: all(f"{listener}.{i + 1}" in ps for i in range(n)))
    return announce(cs)


def test_listener_clients_both_ways():
    with Daemon(["seqpacket,listen=@q.sock,name=sq"]) as d:
        a, b, c = attach(d, 3)
        ports = d.ports()
        assert ports["sq"]["state"] == "listening"
        assert ports["sq"]["peer"] == f"listen unix:{d.path('q.sock')}", ports["sq"]
        assert ports["sq.1"]["parent"] == "sq" and ports["sq.1"]["kind"] == "seqpacket"
        assert ports["sq.1"]["peer"] == f"unix:{d.path('q.sock')}", ports["sq.1"]
        fdb = {e["mac"]: e["port"] for e in d.fdb()}
        assert fdb == {mac_str(mac(1)): "sq.1", mac_str(mac(2)): "sq.2", mac_str(mac(3)): "sq.3"}, fdb
        for i in range(100):
            a.send(eth(mac(2), mac(1), b"a%d" % i))
            b.send(eth(mac(1), mac(2), b"b%d" % i))
        assert b.recv_all() == [eth(mac(2), mac(1), b"a%d" % i) for i in range(100)]
        assert a.recv_all() == [eth(mac(1), mac(2), b"b%d" % i) for i in range(100)]
        assert c.recv_all() == [], "a third client saw unicast"

        # one client leaving disturbs nobody else
        c.close()
        d.wait_ports(lambda ps: "sq.3" not in ps)
        assert mac_str(mac(3)) not in {e["mac"] for e in d.fdb()}
        a.send(eth(mac(2), mac(1), b"still here"))
        assert b.recv_all() == [eth(mac(2), mac(1), b"still here")]
        b.send(eth(BROADCAST, mac(2), b"all"))
        assert a.recv_all() == [eth(BROADCAST, mac(2), b"all")]


def test_runt_oversize_and_empty():
    with Daemon(["seqpacket,listen=@q.sock,name=sq"]) as d:
        a, b = attach(d, 2)
        a.send(b"\x00" * 10)                             # runt
        a.send(eth(BROADCAST, mac(1), size=3000))        # cut by the kernel, counted
        a.send(eth(BROADCAST, mac(1), size=1514))
        assert [len(f) for f in b.recv_all()] == [1514]
        st = d.ports()["sq.1"]["stats"]
        assert st["drop_runt"] == 1 and st["drop_oversize"] == 1, st
        # an empty message is indistinguishable from the end of the connection
        a.send(b"")
        d.wait_ports(lambda ps: "sq.1" not in ps)
        assert "sq.2" in d.ports()


def test_listener_delete_closes_clients():
    with Daemon(["seqpacket,listen=@q.sock,name=sq", "stream,listen=unix:@s.sock,name=st"]) as d:
        a, b = attach(d, 2)
        d.ctl("port", "del", "sq")
        assert set(d.ports()) == {"st"}
        assert not os.path.exists(d.path("q.sock"))
        for c in (a, b):
            try:
                assert c.recv(2.0) is None
                raise AssertionError("the client was not disconnected")
            except (EOFError, ConnectionResetError):
                pass


class SeqServer:
    """A seqpacket listening socket the switch dials."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(scaled(5))
        self.path = path

    def accept(self, timeout=5.0):
        self.sock.settimeout(scaled(timeout))
        conn, _ = self.sock.accept()
        return SeqClient(sock=conn)

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def test_connect_mode_reconnects():
    with Daemon(["stream,listen=unix:@s.sock,name=st"]) as d:
        path = d.path("g.sock")
        srv = SeqServer(path)
        d.ctl("port", "add", f"seqpacket,connect={path},name=gv")
        g = srv.accept()
        d.wait_ports(lambda ps: ps["gv"]["state"] == "up")
        assert d.ports()["gv"]["peer"] == f"connect unix:{path}"
        s = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda ps: "st.1" in ps)
        s.send(eth(BROADCAST, mac(1), b"to gvproxy"))
        assert g.recv_all() == [eth(BROADCAST, mac(1), b"to gvproxy")]
        g.send(eth(mac(1), mac(2), b"from gvproxy"))
        assert s.recv_all() == [eth(mac(1), mac(2), b"from gvproxy")]

        # the server drops the connection: connecting, then back on its own (the connecting
        # spell is too short to poll for: the first redial comes after 0.1 s and the backlog
        # takes it at once)
        t0 = time.monotonic()
        g.close()
        g = srv.accept(timeout=3)
        d.wait_ports(lambda ps: ps["gv"]["state"] == "up")
        assert time.monotonic() - t0 < scaled(1.5), "reconnect took longer than the backoff allows"
        assert mac_str(mac(2)) not in {e["mac"] for e in d.fdb()}, "entries outlived the connection"
        g.send(eth(mac(1), mac(2), b"again"))
        assert s.recv_all() == [eth(mac(1), mac(2), b"again")]
        s.send(eth(mac(2), mac(1), b"welcome back"))
        assert g.recv_all() == [eth(mac(2), mac(1), b"welcome back")]


def test_connect_mode_server_starts_late():
    with Daemon(["seqpacket,connect=@g.sock,name=gv", "stream,listen=unix:@s.sock,name=st"]) as d:
        gv = d.ports()["gv"]
        assert gv["state"] == "connecting" and "No such file" in gv["error"], gv
        time.sleep(0.5)                                  # a few dials fail meanwhile
        srv = SeqServer(d.path("g.sock"))
        g = srv.accept(timeout=4)                        # backoff stays under 5 s
        d.wait_ports(lambda ps: ps["gv"]["state"] == "up")
        s = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda ps: "st.1" in ps)
        s.send(eth(BROADCAST, mac(1), b"hi"))
        assert g.recv_all() == [eth(BROADCAST, mac(1), b"hi")]
        # deleting the port hangs up
        d.ctl("port", "del", "gv")
        try:
            assert g.recv(2.0) is None
            raise AssertionError("the connection stayed open after port del")
        except (EOFError, ConnectionResetError):
            pass


def test_bad_specs_refused_at_start():
    cases = [
        ("seqpacket,listen=@x.sock,framing=qemu", "framing"),
        ("seqpacket,listen=@x.sock,bogus=1", "bogus"),
        ("seqpacket", "listen"),
        ("seqpacket,listen=@x.sock,connect=@y.sock", "connect"),
        ("seqpacket,connect=tcp:127.0.0.1:5000", "connect"),
        ("seqpacket,listen=@x.sock,mtu=x", "mtu"),
    ]
    assert_specs_refused(cases)


if __name__ == "__main__":
    run_tests([
        test_listener_clients_both_ways,
        test_runt_oversize_and_empty,
        test_listener_delete_closes_clients,
        test_connect_mode_reconnects,
        test_connect_mode_server_starts_late,
        test_bad_specs_refused_at_start,
    ])
