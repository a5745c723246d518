"""Shared helpers for squibnet's integration tests: run the real daemon, talk to its ports
over real sockets, read its counters through squibnetctl --json.

Environment (`meson test --setup valgrind` sets all three):
  SQUIBNET_WRAPPER        a command put in front of every program of the project a test runs
                          (command(), popen(), run(), Daemon); when it is valgrind, each process
                          gets its own log and a report in it fails the test that ran it
  SQUIBNET_VALGRIND_LOGS  where those logs go (default: the temporary directory)
  SQUIBNET_TIMEOUT_SCALE  multiplies every timeout and deadline of the tests (scaled())
"""

import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77

BROADCAST = b"\xff" * 6


_TIMEOUT_SCALE = float(os.environ.get("SQUIBNET_TIMEOUT_SCALE") or 1)


def scaled(seconds):
    """@seconds of waiting for the programs under test, stretched by $SQUIBNET_TIMEOUT_SCALE
    (valgrind makes them many times slower). Every timeout and deadline of the tests goes
    through here. Durations the daemon is told (--fdb-aging) are not scaled for it: a test
    whose steps must fit inside one scales it itself."""
    return seconds * _TIMEOUT_SCALE


WRAPPER = shlex.split(os.environ.get("SQUIBNET_WRAPPER", ""))
if WRAPPER:  # found now: a test may run the daemon with another PATH
    if not shutil.which(WRAPPER[0]):
        print(f"skip: {WRAPPER[0]} (SQUIBNET_WRAPPER) is not installed", file=sys.stderr)
        sys.exit(SKIP)
    WRAPPER[0] = shutil.which(WRAPPER[0])
VALGRIND = bool(WRAPPER) and os.path.basename(WRAPPER[0]) == "valgrind"
if VALGRIND and not {"-q", "--quiet"} & set(WRAPPER):
    WRAPPER.insert(1, "--quiet")  # so that a log holds nothing but reports (and warnings)

_log_dir = None
_logs = []           # the valgrind log of every process command() made, in order
_reported = set()    # logs whose report already failed a test


def command(args):
    """@args (a program of the project and its arguments) as a test must run it: behind
    $SQUIBNET_WRAPPER when that is set. Under valgrind the process gets its own log file,
    which valgrind_report() and the checks after each test read."""
    args = [str(a) for a in args]
    if not WRAPPER:
        return args
    if not VALGRIND:
        return WRAPPER + args
    global _log_dir
    if _log_dir is None:
        base = os.environ.get("SQUIBNET_VALGRIND_LOGS") or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        script = os.path.splitext(os.path.basename(sys.argv[0]))[0] or "test"
        _log_dir = tempfile.mkdtemp(prefix=script + "-", dir=base)
        os.chmod(_log_dir, 0o755)
    log = os.path.join(_log_dir, f"{len(_logs):04d}-{os.path.basename(args[0])}.log")
    # made here and writable by all: a test may run the program as another user (setpriv)
    with open(log, "w"):
        pass
    os.chmod(log, 0o666)
    _logs.append(log)
    return WRAPPER + ["--log-file=" + log] + args


def popen(args, prefix=(), **kw):
    """subprocess.Popen of a project program through command(), behind @prefix (setpriv ...);
    .valgrind_log names its log."""
    argv = list(prefix) + command(args)
    p = subprocess.Popen(argv, **kw)
    p.valgrind_log = _logs[-1] if VALGRIND else None
    return p


def run(args, timeout=10, prefix=(), **kw):
    """subprocess.run of a project program through command(), behind @prefix, @timeout scaled;
    fails with the valgrind report when the program had one."""
    argv = list(prefix) + command(args)
    log = _logs[-1] if VALGRIND else None
    r = subprocess.run(argv, timeout=scaled(timeout), **kw)
    fail_on_report(log)
    return r


def valgrind_report(log):
    """The errors in valgrind log @log as text, or None when it holds none. Blocks that are
    only warnings ("Warning: set address range perms") are not errors; everything else is: an
    invalid access, an uninitialised value, a leak, a fatal signal. A process killed with
    SIGKILL has no leak check, but what valgrind saw before is in its log."""
    if not log:
        return None
    try:
        with open(log, errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    blocks, cur = [], []
    for line in text.splitlines():
        body = re.sub(r"^==\d+== ?", "", line)
        if body.strip():
            cur.append(body)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    if all(b[0].startswith(("Warning", "WARNING")) for b in blocks):
        return None
    return f"valgrind report in {log}:\n{text.rstrip()}"


def fail_on_report(log):
    """Raises AssertionError with the report of @log, once."""
    report = valgrind_report(log)
    if report and log not in _reported:
        _reported.add(log)
        raise AssertionError(report)


def valgrind_reports():
    """Reports in the logs of every process run so far that no test has failed on yet; each is
    returned once. A process still running is looked at again next time."""
    out = []
    for log in _logs:
        if log in _reported:
            continue
        report = valgrind_report(log)
        if report:
            _reported.add(log)
            out.append(report)
    return out


def clean_logs():
    """Removes the empty logs of clean processes at the end of a run, keeping the reports."""
    for log in _logs:
        try:
            if os.path.getsize(log) == 0:
                os.unlink(log)
        except OSError:
            pass
    if _log_dir:
        try:
            os.rmdir(_log_dir)
        except OSError:
            pass


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
        self.sock.settimeout(scaled(5))
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
        """The next frame, or None when none arrives within timeout (scaled)."""
        deadline = time.monotonic() + scaled(timeout)
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
        """Every frame that arrives until the line has been quiet for timeout (scaled)."""
        out = []
        while True:
            f = self.recv(timeout)
            if f is None:
                return out
            out.append(f)

    def expect_eof(self, timeout=3.0):
        self.sock.settimeout(scaled(timeout))
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
    """The real squibnet binary with the given --port SPECs, in its own temp dir. Leaving the
    with block stops it with SIGTERM: it must exit 0, and under valgrind without a report (a
    test that kills it with SIGKILL gets no leak check, but still the errors seen before)."""

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
        self.proc = popen(args, stdout=subprocess.PIPE, stderr=stderr or subprocess.PIPE, text=True,
                          preexec_fn=preexec_fn)
        if expect_start:
            try:
                self.wait_ready()
            except BaseException:
                # no with block will stop it: a daemon that never came up must not outlive us
                if self.proc.poll() is None:
                    self.proc.kill()
                self.proc.communicate()
                if self.own_tmp:
                    shutil.rmtree(self.tmp, ignore_errors=True)
                raise

    def path(self, name):
        return os.path.join(self.tmp, name)

    def wait_ready(self, timeout=5.0):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                fail_on_report(self.proc.valgrind_log)
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
        r = run([self.ctl_bin, "--control", self.control, "--json", *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"squibnetctl {' '.join(args)}: {r.returncode} {r.stderr.strip()}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    def ctl_text(self, *args):
        return run([self.ctl_bin, "--control", self.control, *args], capture_output=True, text=True)

    def ports(self):
        return {p["name"]: p for p in self.ctl("ports")["ports"]}

    def fdb(self):
        return self.ctl("fdb", "show")["fdb"]

    def wait_ports(self, pred, timeout=3.0):
        """Polls `ports` until pred(ports) holds (for timeout, scaled); returns the ports."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            ports = self.ports()
            if pred(ports):
                return ports
            if time.monotonic() > deadline:
                raise AssertionError(f"ports never reached the expected state: {json.dumps(ports, indent=1)}")
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Sends @sig and waits (for timeout, scaled); the exit status. Fails on a valgrind
        report."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"squibnet did not exit on signal {sig}")
        self.stdout, self.stderr = out, err
        fail_on_report(self.proc.valgrind_log)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            running = self.proc.poll() is None
            if running or self.proc.stdout and not self.proc.stdout.closed:
                rc = self.stop()
                if running and rc != 0 and exc_type is None:
                    raise AssertionError(f"squibnet exited {rc} on SIGTERM: {self.stderr.strip()}")
            else:
                fail_on_report(self.proc.valgrind_log)
        except AssertionError as e:
            if exc_type is None:
                raise
            # the test failed already: its own error is the one to see, the report goes beside it
            print(e, file=sys.stderr, flush=True)
        finally:
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
            code = d.proc.wait(timeout=scaled(5))
            err = d.proc.stderr.read()
            assert code != 0, f"{spec} was accepted"
            assert word in err, f"{spec}: message does not name '{word}': {err!r}"


def run_tests(tests):
    """Runs test functions by name, prints a closing 'N passed, N failed' line, exits non-zero on
    any failure. A valgrind report of any process a test started fails that test."""
    passed = failed = 0
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            t()
            reports = valgrind_reports()
            if reports:
                raise AssertionError("\n".join(reports))
            passed += 1
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            import traceback
            traceback.print_exc()
            for r in valgrind_reports():
                print(r, flush=True)
            print(f"FAIL {t.__name__}: {e}", flush=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(finish(1 if failed else 0))


def finish(status):
    """The exit status of a test script that has status so far: 1 when a process it ran left a
    valgrind report no test failed on yet (printed here). Removes the clean logs."""
    reports = valgrind_reports()
    for r in reports:
        print(r, flush=True)
    clean_logs()
    return 1 if reports and status in (0, SKIP) else status
