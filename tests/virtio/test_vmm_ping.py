#!/usr/bin/env python3
"""Integration test of the in-process virtio-net port through the example VMM.

squibnet-vmm embeds a switch with a stream listener and two simulated virtio-net guests (one
sending through indirect descriptors) that answer ARP and ICMP echo. squibnet-ping attaches to
the stream listener as a station and pings both guests, with small and large payloads, once with
mergeable RX buffers (512-byte buffers, so large replies span several) and once with the legacy
10-byte header.

Environment:
  SQUIBNET_VMM   path to squibnet-vmm
  SQUIBNET_PING  path to squibnet-ping
Exit status: 0 passed, 1 failed, 77 a program is missing.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import sntest  # noqa: E402
from sntest import scaled  # noqa: E402

VMM = os.environ.get("SQUIBNET_VMM", "")
PING = os.environ.get("SQUIBNET_PING", "")


def ping(sock, peer, size, count=3):
    out = sntest.run([PING, "--connect", "unix:" + sock, "--ip", "10.0.0.1/24", "--ping", peer,
                      "--count", str(count), "--interval", "0.05", "--size", str(size),
                      "--timeout", "3", "--json"],
                     capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError("ping %s size %d: exit %d: %s %s" % (peer, size, out.returncode, out.stdout,
                                                                  out.stderr))
    res = json.loads(out.stdout)
    if res.get("received") != count:
        raise AssertionError("ping %s size %d: %s" % (peer, size, out.stdout))


def run(extra):
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "sw.sock")
        vmm = sntest.popen([VMM, "--port", "stream,listen=unix:" + sock, "--guest", "10.0.0.2/24",
                            "--guest", "10.0.0.3/24"] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = vmm.stdout.readline()
            if line.strip() != "ready":
                raise AssertionError("squibnet-vmm did not start: %r %s" % (line, vmm.stderr.read()))
            for peer in ("10.0.0.2", "10.0.0.3"):
                for size in (56, 1400):
                    ping(sock, peer, size)
            # a peer that does not exist: no reply, and the guests keep answering afterwards
            out = sntest.run([PING, "--connect", "unix:" + sock, "--ip", "10.0.0.1/24", "--ping",
                              "10.0.0.9", "--count", "1", "--timeout", "0.3", "--json"],
                             capture_output=True, text=True, timeout=30)
            if out.returncode == 0:
                raise AssertionError("ping of a missing guest succeeded: " + out.stdout)
            ping(sock, "10.0.0.2", 56, count=1)
        finally:
            vmm.terminate()
            try:
                rest, err = vmm.communicate(timeout=scaled(5))
            except subprocess.TimeoutExpired:
                vmm.kill()
                rest, err = vmm.communicate()
        sntest.fail_on_report(vmm.valgrind_log)
        if vmm.returncode != 0 or "broken" in err:
            raise AssertionError("squibnet-vmm exit %s: %s" % (vmm.returncode, err))
        answered = [int(l.split()[-1]) for l in rest.splitlines() if "answered" in l]
        if len(answered) != 2 or min(answered) < 7:
            raise AssertionError("guests answered %s" % answered)


def main():
    if not (VMM and os.access(VMM, os.X_OK) and PING and os.access(PING, os.X_OK)):
        print("SKIP: SQUIBNET_VMM or SQUIBNET_PING not set")
        return 77
    failed = 0
    for name, extra in (("modern", []), ("mergeable", ["--mrg"]), ("legacy", ["--legacy"])):
        try:
            run(extra)
            print("ok", name)
        except Exception as e:  # noqa: BLE001 - report and go on with the next case
            print("FAIL", name, e)
            failed += 1
    return sntest.finish(1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
