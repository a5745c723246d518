#!/usr/bin/env python3
"""test_inherited.py - listening sockets handed to the daemon instead of bound by it (fd=N for
stream, seqpacket and dgram ports), which outlive it: the socket files stay, and a client that
connects between two daemons is served by the second. fdname= (by name, from systemd) is
test_systemd.py's."""

import os
import signal
import socket
import subprocess
import tempfile
import time

from sntest import (BROADCAST, SKIP, Daemon, StreamClient, binary, eth, mac, run_tests)

SQUIBNET = binary("SQUIBNET", "tools/squibnet")


def wait_path(path, timeout=5.0):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def frames_flow(a, b):
    f = eth(BROADCAST, mac(1), b"across an inherited socket")
    a.send(f)
    got = b.recv(2.0)
    assert got == f, got


def test_fd_listeners():
    """fd=N: a stream, a seqpacket and a datagram socket bound by someone else; the port works on
    them, and at exit leaves their files alone."""
    with tempfile.TemporaryDirectory(prefix="sn-fd-") as tmp:
        st = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        st.bind(os.path.join(tmp, "st.sock"))
        st.listen(8)
        sp = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sp.bind(os.path.join(tmp, "sp.sock"))
        sp.listen(8)
        dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dg.bind(os.path.join(tmp, "dg.sock"))
        fds = [st.fileno(), sp.fileno(), dg.fileno()]
        ctl = os.path.join(tmp, "c.sock")
        args = [SQUIBNET, "--control", ctl, "--port", f"stream,name=st,fd={fds[0]}",
                "--port", f"seqpacket,name=sp,fd={fds[1]}", "--port", f"dgram,name=dg,fd={fds[2]}"]
        proc = subprocess.Popen(args, pass_fds=fds, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        d = Daemon([], tmp=tmp, expect_start=False)
        d.proc.kill()
        d.proc.wait()
        d.proc, d.control = proc, ctl
        try:
            d.wait_ready()
            ports = d.ports()
            assert ports["st"]["peer"] == f"listen unix:{tmp}/st.sock (fd {fds[0]}) framing=qemu", ports["st"]
            assert ports["sp"]["peer"].startswith(f"listen unix:{tmp}/sp.sock (fd {fds[1]})"), ports["sp"]
            a = StreamClient(os.path.join(tmp, "st.sock"))
            b = StreamClient(os.path.join(tmp, "st.sock"))
            d.wait_ports(lambda p: "st.2" in p)
            frames_flow(a, b)
            # a datagram peer through the inherited datagram socket reaches the stream clients
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            peer.bind(os.path.join(tmp, "peer.sock"))
            f = eth(BROADCAST, mac(2), b"datagram")
            peer.sendto(f, os.path.join(tmp, "dg.sock"))
            assert a.recv(2.0) == f
            a.close()
            b.close()
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err
        for name in ("st.sock", "sp.sock", "dg.sock"):
            assert os.path.exists(os.path.join(tmp, name)), f"the switch removed {name}, which it did not create"


def test_restart_keeps_the_socket():
    """The socket outlives the daemon (as systemd's socket unit holds it): a client that connects
    while no daemon runs waits in the backlog, and the next daemon on the same socket takes it."""
    with tempfile.TemporaryDirectory(prefix="sn-fd-") as tmp:
        path = os.path.join(tmp, "sw.sock")
        lis = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lis.bind(path)
        lis.listen(8)
        ctl = os.path.join(tmp, "c.sock")

        def start():
            p = subprocess.Popen([SQUIBNET, "--control", ctl, "--port", f"stream,name=sw,fd={lis.fileno()}"],
                                 pass_fds=[lis.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wait_path(ctl)
            return p

        p = start()
        a = StreamClient(path)
        time.sleep(0.1)
        p.terminate()
        p.communicate(timeout=5)
        assert a.expect_eof(), "the client of a stopped switch kept its connection"
        # nobody serves the socket now; connecting still works
        b = StreamClient(path)
        c = StreamClient(path)
        p = start()
        try:
            frames_flow(b, c)
        finally:
            p.terminate()
            p.communicate(timeout=5)


def test_fd_errors():
    with tempfile.TemporaryDirectory(prefix="sn-fd-") as tmp:
        dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dg.bind(os.path.join(tmp, "dg.sock"))
        unbound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cases = [
            (f"stream,fd={dg.fileno()}", "a datagram socket, and this port takes a stream socket"),
            (f"stream,fd={unbound.fileno()}", "the socket does not listen"),
            ("stream,fd=0", "not a socket"),
            ("stream,fd=999", "Bad file descriptor"),
            (f"stream,fd={dg.fileno()},listen=unix:{tmp}/x.sock", "give exactly one of them"),
            (f"stream,fd={dg.fileno()},connect=unix:{tmp}/x.sock", "has 'connect'"),
            ("stream,fd=3,fdname=x", "give one of them"),
            (f"stream,fd={dg.fileno()},mode=0660", "creates none"),
            ("stream,fdname=nosuch", "'nosuch' for key 'fdname': no socket of that name was inherited"),
            ("dgram,fdname=nosuch", "no socket of that name was inherited"),
            ("seqpacket,fdname=", "empty value for key 'fdname'"),
        ]
        for spec, want in cases:
            r = subprocess.run([SQUIBNET, "--control", os.path.join(tmp, "c.sock"), "--port", spec],
                               pass_fds=[dg.fileno(), unbound.fileno()], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=10)
            assert r.returncode != 0 and want in r.stderr, (spec, r.stderr)
        # fdname= with listen=: no socket of that name was inherited, so the address is bound
        with Daemon([f"stream,name=s,fdname=switch,listen=unix:@s.sock"]) as d:
            assert d.ports()["s"]["peer"] == f"listen unix:{d.tmp}/s.sock framing=qemu"
            assert os.path.exists(d.path("s.sock"))
            d.stop()
            assert not os.path.exists(d.path("s.sock")), "a socket file the switch made was left behind"


if __name__ == "__main__":
    run_tests([
        test_fd_listeners,
        test_restart_keeps_the_socket,
        test_fd_errors,
    ])
