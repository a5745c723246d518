"""Shared helpers for squibnet's integration tests: run the real daemon, talk to its ports
over real sockets, read its counters through squibnetctl --json."""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77

BROADCAST = b"\xff" * 6


def binary(env, default_rel):
    path = os.environ.get(env)
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "build", default_rel)
    if not os.access(path, os.X_OK):
        print(f"skip: {env} not set and {path} is not executable", file=sys.stderr)
        sys.exit(SKIP)
    return path


def mac(n):
    """A locally administered unicast MAC numbered n."""
    return bytes([0x52, 0x54, 0x00, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])


def mac_str(m):
    return ":".join(f"{b:02x}" for b in m)


def eth(dst, src, payload=b"", ethertype=0x88B5, size=None):
    """An Ethernet frame; ethertype 0x88B5 is reserved for local experiments."""
    f = dst + src + struct.pack("!H", ethertype) + payload
    if size is not None:
        f = f + bytes(max(0, size - len(f)))
    return f


FRAMINGS = {
    "qemu": (4, lambda n: struct.pack("!I", n)),
    "hyperkit": (2, lambda n: struct.pack("<H", n)),
    "vde": (2, lambda n: struct.pack("!H", n)),
}


class StreamClient:
    """A peer on a stream port: a QEMU -netdev stream stand-in."""

    def __init__(self, addr, framing="qemu", family=socket.AF_UNIX):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(addr)
        self.hlen, self.put = FRAMINGS[framing]
        self.framing = framing
        self.buf = b""

    def send(self, frame):
        self.sock.sendall(self.put(len(frame)) + frame)

    def send_raw(self, data):
        self.sock.sendall(data)

    def _parse(self):
        if len(self.buf) < self.hlen:
            return None
        if self.framing == "qemu":
            n = struct.unpack("!I", self.buf[:4])[0]
        elif self.framing == "hyperkit":
            n = struct.unpack("<H", self.buf[:2])[0]
        else:
            n = struct.unpack("!H", self.buf[:2])[0]
        if len(self.buf) < self.hlen + n:
            return None
        f = self.buf[self.hlen:self.hlen + n]
        self.buf = self.buf[self.hlen + n:]
        return f

    def recv(self, timeout=2.0):
        """The next frame, or None when none arrives within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("switch closed the connection")
            self.buf += data

    def recv_all(self, timeout=0.3):
        """Every frame that arrives until the line has been quiet for timeout."""
        out = []
        while True:
            f = self.recv(timeout)
            if f is None:
                return out
            out.append(f)

    def expect_eof(self, timeout=3.0):
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


class Daemon:
    """The real squibnet binary with the given --port SPECs, in its own temp dir."""

    def __init__(self, ports=(), extra=(), tmp=None, expect_start=True, stderr=None, preexec_fn=None):
        """stderr: a file for the daemon's log instead of a pipe (a pipe that nobody reads
        blocks a chatty daemon); preexec_fn: run in the child before exec (limits, umask)."""
        self.squibnet = binary("SQUIBNET", "tools/squibnet")
        self.ctl_bin = binary("SQUIBNETCTL", "tools/squibnetctl")
        self.own_tmp = tmp is None
        self.tmp = tmp or tempfile.mkdtemp(prefix="sn-test-")
        self.control = os.path.join(self.tmp, "control.sock")
        args = [self.squibnet, "--control", self.control]
        for p in ports:
            args += ["--port", p.replace("@", self.tmp + "/")]
        args += list(extra)
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr or subprocess.PIPE, text=True,
                                     preexec_fn=preexec_fn)
        if expect_start:
            self.wait_ready()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def wait_ready(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(f"squibnet exited with {self.proc.returncode}: {(err or '').strip()}")
            if os.path.exists(self.control):
                try:
                    self.ctl("ports")
                    return
                except RuntimeError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("squibnet did not come up")

    def ctl(self, *args, check=True):
        r = subprocess.run([self.ctl_bin, "--control", self.control, "--json", *args],
                           capture_output=True, text=True, timeout=10)
        if check and r.returncode != 0:
            raise RuntimeError(f"squibnetctl {' '.join(args)}: {r.returncode} {r.stderr.strip()}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    def ctl_text(self, *args):
        return subprocess.run([self.ctl_bin, "--control", self.control, *args],
                              capture_output=True, text=True, timeout=10)

    def ports(self):
        return {p["name"]: p for p in self.ctl("ports")["ports"]}

    def fdb(self):
        return self.ctl("fdb", "show")["fdb"]

    def wait_ports(self, pred, timeout=3.0):
        """Polls `ports` until pred(ports) holds; returns the ports."""
        deadline = time.monotonic() + timeout
        while True:
            ports = self.ports()
            if pred(ports):
                return ports
            if time.monotonic() > deadline:
                raise AssertionError(f"ports never reached the expected state: {json.dumps(ports, indent=1)}")
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("squibnet did not exit on SIGTERM")
        self.stdout, self.stderr = out, err
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        if self.own_tmp:
            subprocess.run(["rm", "-rf", self.tmp])


def announce(clients):
    """Each client sends a broadcast from its own MAC (mac(1), mac(2), ...) so the switch learns
    it; every client must receive exactly the others' broadcasts. Returns the clients."""
    n = len(clients)
    for i, c in enumerate(clients):
        c.send(eth(BROADCAST, mac(i + 1), b"hello"))
    for c in clients:
        got = c.recv_all(0.3)
        assert len(got) == n - 1, f"expected {n - 1} broadcasts, got {len(got)}"
    return clients


def assert_specs_refused(cases):
    """For each (SPEC, word): the daemon refuses to start with SPEC and its message names word."""
    for spec, word in cases:
        with Daemon([spec], expect_start=False) as d:
            code = d.proc.wait(timeout=5)
            err = d.proc.stderr.read()
            assert code != 0, f"{spec} was accepted"
            assert word in err, f"{spec}: message does not name '{word}': {err!r}"


def run_tests(tests):
    """Runs test functions by name, prints a closing 'N passed, N failed' line, exits non-zero on
    any failure."""
    passed = failed = 0
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            import traceback
            traceback.print_exc()
            print(f"FAIL {t.__name__}: {e}", flush=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
