#!/usr/bin/env python3
"""test_qemu_hint.py - the QEMU options squibnet prints at start-up, given to a real QEMU.

The daemon prints a -netdev line for each unix stream listener and the spelling of the
reconnect option for each QEMU version range (reconnect= became reconnect-ms= in QEMU 9.2, and
10.2 drops the old name). This takes those lines as printed, asks the QEMU at hand for its
version, and runs it with the -netdev line plus every spelling: the ones the hint says are for
this version must attach a client to the switch, the others must be refused by QEMU.

Environment: SQUIBNET, SQUIBNETCTL as for every integration test; QEMU, a qemu-system binary
(default: qemu-system-x86_64, else qemu-system-aarch64, on PATH). Exit 77 when there is none.
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sntest  # noqa: E402
from sntest import Daemon  # noqa: E402


def find_qemu():
    q = os.environ.get("QEMU")
    if q:
        return q if os.access(q, os.X_OK) else None
    for name in ("qemu-system-x86_64", "qemu-system-aarch64"):
        if shutil.which(name):
            return shutil.which(name)
    return None


QEMU = find_qemu()


def qemu_version():
    out = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    assert m, f"cannot read the version of {QEMU}: {out!r}"
    return int(m.group(1)), int(m.group(2))


def hint_lines(d):
    """The daemon's stdout up to its control socket line."""
    lines = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        line = d.proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("squibnet: control socket"):
            return lines
    raise AssertionError(f"no control socket line in {lines}")


def parse_version(text):
    major, minor = text.split(".")
    return int(major), int(minor)


def spellings(lines):
    """[(option, first version, last version or None)] from the reconnect lines."""
    text = " ".join(lines)
    out = []
    for opt, lo, hi in re.findall(r"(reconnect(?:-ms)?=\d+) \(QEMU (?:>= (\d+\.\d+)|(\d+\.\d+ to \d+\.\d+))\)", text):
        if lo:
            out.append((opt, parse_version(lo), None))
        else:
            a, b = hi.split(" to ")
            out.append((opt, parse_version(a), parse_version(b)))
    return out


def run_qemu(netdev):
    """QEMU with nothing but the netdev, stopped before it runs any guest code."""
    return subprocess.Popen([QEMU, "-machine", "none", "-nodefaults", "-display", "none", "-monitor", "none", "-S",
                             "-netdev", netdev], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_hint_works_on_this_qemu():
    version = qemu_version()
    print(f"  {QEMU}: QEMU {version[0]}.{version[1]}")
    with Daemon(["stream,name=sw,listen=unix:@sw.sock"]) as d:
        lines = hint_lines(d)
        netdev = next((ln.split()[1] for ln in lines if ln.strip().startswith("-netdev ")), None)
        assert netdev and d.path("sw.sock") in netdev, lines
        assert any(ln.strip().startswith("-device virtio-net-pci,netdev=net0,mac=") for ln in lines), lines
        forms = spellings(lines)
        assert {f[0] for f in forms} == {"reconnect=1", "reconnect-ms=1000"}, lines
        plain_ok = version >= (7, 2)
        cases = [("", plain_ok)] + [(f"," + opt, version >= lo and (hi is None or version <= hi))
                                     for opt, lo, hi in forms]
        if version >= (8, 0):
            assert any(ok for _, ok in cases[1:]), f"the hint names no reconnect option for QEMU {version}: {lines}"
        clients = 0
        for extra, should_work in cases:
            q = run_qemu(netdev + extra)
            try:
                if should_work:
                    clients += 1
                    want = f"sw.{clients}"
                    try:
                        d.wait_ports(lambda p: want in p and p[want]["state"] == "up", timeout=10)
                    except AssertionError:
                        q.kill()
                        raise AssertionError(f"QEMU {version} did not attach with {netdev + extra}: "
                                             f"{q.communicate()[1]}")
                    print(f"  ok: {extra[1:] or 'no reconnect option'} attaches")
                else:
                    try:
                        _, err = q.communicate(timeout=10)
                    except subprocess.TimeoutExpired:
                        raise AssertionError(f"QEMU {version} took {extra[1:]}, which the hint says it does not")
                    assert q.returncode != 0 and extra[1:].split("=")[0] in err, (extra, q.returncode, err)
                    print(f"  ok: {extra[1:] or 'no reconnect option'} refused, as the hint says")
            finally:
                if q.poll() is None:
                    q.kill()
                    q.communicate()
            if should_work:
                want = f"sw.{clients}"
                d.wait_ports(lambda p: want not in p, timeout=5)


def main():
    if not QEMU:
        print("skip: no qemu-system-x86_64 or qemu-system-aarch64 on PATH and no $QEMU")
        sys.exit(sntest.SKIP)
    sntest.run_tests([test_hint_works_on_this_qemu])


if __name__ == "__main__":
    main()
