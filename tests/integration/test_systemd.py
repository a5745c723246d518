#!/usr/bin/env python3
"""test_systemd.py - the daemon under systemd: socket activation (systemd-socket-activate binds a
socket and starts the daemon with it in LISTEN_FDS/LISTEN_FDNAMES; a port takes it by fdname=)
and readiness on NOTIFY_SOCKET (READY=1, RELOADING=1, STOPPING=1). Skips (77) where
systemd-socket-activate is missing or the daemon was built without libsystemd."""

import os
import shutil
import signal
import sys
import socket
import subprocess
import tempfile
import time

from sntest import (BROADCAST, SKIP, Daemon, StreamClient, binary, eth, mac, run_tests)

SQUIBNET = binary("SQUIBNET", "tools/squibnet")


def has_libsystemd():
    """A daemon without libsystemd says so when it sees LISTEN_FDS; one with it checks
    LISTEN_PID, finds another process's, and takes nothing."""
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID="1")
    r = subprocess.run([SQUIBNET, "--port", "nosuchkind"], env=env, capture_output=True, text=True, timeout=10)
    return "built without libsystemd" not in r.stderr


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


def test_socket_activation():
    """systemd-socket-activate binds the socket, waits for a client, and starts the daemon with
    it in LISTEN_FDS/LISTEN_FDNAMES: the port that names it by fdname= serves that client."""
    tool = shutil.which("systemd-socket-activate")
    with tempfile.TemporaryDirectory(prefix="sn-sa-") as tmp:
        path, ctl = os.path.join(tmp, "sw.sock"), os.path.join(tmp, "c.sock")
        proc = subprocess.Popen([tool, "-l", path, "--fdname=switch", SQUIBNET, "--control", ctl,
                                 "--port", f"stream,name=sw,fdname=switch,listen=unix:{tmp}/fallback.sock"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_path(path)
            a = StreamClient(path)  # this one starts the daemon
            wait_path(ctl)
            d = Daemon([], tmp=tmp, expect_start=False)
            d.proc.kill()
            d.proc.wait()
            d.proc, d.control = proc, ctl
            d.wait_ready()
            b = StreamClient(path)
            ports = d.wait_ports(lambda p: "sw.2" in p)
            assert ports["sw"]["peer"] == f"listen unix:{path} (inherited fdname=switch) framing=qemu", ports["sw"]
            assert not os.path.exists(os.path.join(tmp, "fallback.sock")), "bound listen= despite the inherited socket"
            frames_flow(a, b)
            frames_flow(b, a)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err
        assert os.path.exists(path), "the switch removed the socket file systemd made"


def recv_states(sock, want, timeout=5.0):
    """Datagrams from the daemon until one holds the line @want; returns all lines seen."""
    seen = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        seen += msg.split("\n")
        if want in msg.split("\n"):
            return seen
    raise AssertionError(f"no {want} on NOTIFY_SOCKET; got {seen}")


def test_notify():
    with tempfile.TemporaryDirectory(prefix="sn-nt-") as tmp:
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(os.path.join(tmp, "notify"))
        conf = os.path.join(tmp, "sn.conf")
        with open(conf, "w") as f:
            f.write(f"port stream,name=a,listen=unix:{tmp}/a.sock\n")
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify"))
        proc = subprocess.Popen([SQUIBNET, "--config", conf, "--control", os.path.join(tmp, "c.sock")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            recv_states(ns, "READY=1")
            # READY=1 comes once every port is up: the listener exists by then
            assert os.path.exists(os.path.join(tmp, "a.sock"))
            with open(conf, "a") as f:
                f.write(f"port stream,name=b,listen=unix:{tmp}/b.sock\n")
            proc.send_signal(signal.SIGHUP)
            seen = recv_states(ns, "READY=1")
            assert "RELOADING=1" in seen and any(s.startswith("MONOTONIC_USEC=") for s in seen), seen
            assert os.path.exists(os.path.join(tmp, "b.sock"))
            proc.send_signal(signal.SIGTERM)
            recv_states(ns, "STOPPING=1")
        finally:
            if proc.poll() is None:
                proc.terminate()
            _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err


if __name__ == "__main__":
    if not has_libsystemd():
        print("skip: squibnet was built without libsystemd", file=sys.stderr)
        sys.exit(SKIP)
    if not shutil.which("systemd-socket-activate"):
        print("skip: systemd-socket-activate is not installed (Debian package systemd)", file=sys.stderr)
        sys.exit(SKIP)
    run_tests([
        test_socket_activation,
        test_notify,
    ])
