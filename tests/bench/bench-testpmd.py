#!/usr/bin/env python3
"""bench-testpmd.py - squibnet's vhost-user ports against DPDK's own vhost PMD, with DPDK's
dpdk-testpmd as the client.

The client is a testpmd with two net_virtio_user ports (--no-huge --no-pci) in mac forwarding:
what arrives on one port goes out of the other with its MACs rewritten, port 0's frames
addressed to port 1's MAC and back, and `start tx_first 32` puts 32 bursts of 32 frames on
each port to start the loop. In the middle sits either

  dpdk      a second testpmd with two net_vhost ports in io forwarding (port 0 <-> port 1), or
  squibnet  the squibnet daemon with two vhost-user,listen= ports: it learns both MACs, looks
            each frame's destination up in its FDB and counts it, as for any port.

The switch runs on CPU 0 and the client on CPU 1 (taskset and DPDK's --lcores). For each
frame size the client starts afresh, runs WARMUP seconds, then its port counters are read
twice MEASURE seconds apart: delivered Mpps is the frames the client received over both ports
per second; loss is 1 - received / sent over the same interval (frames the switch dropped, plus
the few in flight). Exits 77 when dpdk-testpmd (Debian: dpdk-dev, librte-net-vhost23,
librte-net-virtio23) is missing.

Usage: bench-testpmd.py [--sizes 64,512,1514] [--measure S] [--warmup S] [--runs N]
                        [--switch dpdk,squibnet] [--squibnet PATH]
Environment: SQUIBNET (the daemon, set by meson).
"""

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
MAC0, MAC1 = "02:00:00:00:00:10", "02:00:00:00:00:11"
PROMPT = "testpmd> "


class Fail(Exception):
    pass


class TestPmd:
    """An interactive dpdk-testpmd driven through its prompt."""

    def __init__(self, args, log):
        self.log = log
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.buf = b""
        self.read_prompt(60)

    def read_prompt(self, timeout=20):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while PROMPT.encode() not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"testpmd gave no prompt within {timeout} s:\n{self.buf.decode(errors='replace')[-3000:]}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise Fail(f"testpmd exited ({self.proc.wait()}):\n{self.buf.decode(errors='replace')[-3000:]}")
                self.buf += chunk
                self.log.write(chunk)
        out, _, self.buf = self.buf.partition(PROMPT.encode())
        return out.decode(errors="replace")

    def cmd(self, line, timeout=20):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self.read_prompt(timeout)

    def port_counts(self):
        """(rx, tx) frames summed over all ports."""
        out = self.cmd("show port stats all")
        rx = sum(int(x) for x in re.findall(r"RX-packets:\s+(\d+)", out))
        tx = sum(int(x) for x in re.findall(r"TX-packets:\s+(\d+)", out))
        return rx, tx

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"stop\nquit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def eal(lcores, prefix):
    # two lcores on one CPU: testpmd's main lcore (the prompt) and its forwarding lcore
    # stdbuf: testpmd printf()s to a pipe, its prompt is written directly: keep them in order
    return ["stdbuf", "-o0", "dpdk-testpmd", "--lcores", f"0@{lcores},1@{lcores}", "--no-huge", "--no-pci", "-m", "512",
            "--file-prefix", prefix, "--log-level", "user1,notice"]


def wait_files(paths, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(p) for p in paths):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Fail(f"the switch made no sockets {paths}")
        time.sleep(0.05)


class DpdkSwitch:
    name = "dpdk vhost PMD"
    counts_cpu = False  # it polls on a thread of its own: its CPU time is the whole interval

    def __init__(self, tmp, log):
        self.socks = [os.path.join(tmp, f"vh{i}.sock") for i in (0, 1)]
        args = eal(0, "sn-bench-sw") + [
            "--vdev", f"net_vhost0,iface={self.socks[0]},queues=1",
            "--vdev", f"net_vhost1,iface={self.socks[1]},queues=1",
            "--", "-i", "--forward-mode=io", "--nb-cores=1", "--total-num-mbufs=16384"]
        self.pmd = TestPmd(args, log)
        self.pmd.cmd("start")
        self.pid = self.pmd.proc.pid
        wait_files(self.socks, self.pmd.proc)

    def close(self):
        self.pmd.close()


class SquibnetSwitch:
    name = "squibnet"
    counts_cpu = True

    def __init__(self, tmp, log, squibnet):
        self.socks = [os.path.join(tmp, f"vu{i}.sock") for i in (0, 1)]
        ctl = os.path.join(tmp, "ctl.sock")
        self.proc = subprocess.Popen(["taskset", "-c", "0", squibnet, "--control", ctl,
                                      "--port", f"vhost-user,listen={self.socks[0]},name=vu0",
                                      "--port", f"vhost-user,listen={self.socks[1]},name=vu1"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid  # taskset execs squibnet in place
        wait_files(self.socks + [ctl], self.proc)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cpu_ns(pid):
    """CPU time of process @pid so far, in ns (/proc/PID/schedstat), or None."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def measure(switch, size, warmup, seconds, log):
    args = eal(1, "sn-bench-cl") + [
        "--vdev", f"net_virtio_user0,path={switch.socks[0]},queues=1,mac={MAC0}",
        "--vdev", f"net_virtio_user1,path={switch.socks[1]},queues=1,mac={MAC1}",
        "--", "-i", "--forward-mode=mac", f"--eth-peer=0,{MAC1}", f"--eth-peer=1,{MAC0}",
        "--nb-cores=1", "--total-num-mbufs=16384"]
    pmd = TestPmd(args, log)
    try:
        pmd.cmd(f"set txpkts {size}")
        pmd.cmd("start tx_first 32")
        time.sleep(warmup)
        rx0, tx0 = pmd.port_counts()
        t0, c0 = time.monotonic(), cpu_ns(switch.pid)
        time.sleep(seconds)
        rx1, tx1 = pmd.port_counts()
        t1, c1 = time.monotonic(), cpu_ns(switch.pid)
    finally:
        pmd.close()
    rx, tx = rx1 - rx0, tx1 - tx0
    if rx == 0:
        raise Fail(f"{switch.name}, {size} B: the client received nothing")
    # the switch's CPU time per frame it forwarded: steadier than Mpps on a shared machine
    # (DPDK's PMD polls, so for it this is just the interval over the frames)
    us = (c1 - c0) / 1e3 / rx if switch.counts_cpu and c0 is not None and c1 is not None else None
    return rx / (t1 - t0) / 1e6, (1 - rx / tx) if tx else 0.0, rx, tx, us


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,512,1514")
    ap.add_argument("--measure", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=1, help="measurements per size and switch")
    ap.add_argument("--switch", default="dpdk,squibnet")
    ap.add_argument("--squibnet", default=os.environ.get("SQUIBNET"))
    opt = ap.parse_args()
    sizes = [int(s) for s in opt.sizes.split(",")]
    if not shutil.which("dpdk-testpmd"):
        print("SKIP: dpdk-testpmd not found (apt-get install dpdk-dev librte-net-vhost23 librte-net-virtio23)")
        return SKIP
    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        print("SKIP: needs taskset and two CPUs")
        return SKIP
    kinds = opt.switch.split(",")
    if "squibnet" in kinds and not (opt.squibnet and os.path.exists(opt.squibnet)):
        print("FAIL: --squibnet or SQUIBNET must name the squibnet binary")
        return 1
    tmp = tempfile.mkdtemp(prefix="sn-bench-testpmd-")
    results = {}
    log = open(os.path.join(tmp, "bench.log"), "wb")
    ok = False
    try:
        # the switches take turns, so that a change of load on a shared machine hits both
        for size in sizes:
            for run in range(opt.runs):
                for kind in kinds:
                    sw = DpdkSwitch(tmp, log) if kind == "dpdk" else SquibnetSwitch(tmp, log, opt.squibnet)
                    try:
                        mpps, loss, rx, tx, us = measure(sw, size, opt.warmup, opt.measure, log)
                    finally:
                        sw.close()
                    results.setdefault((kind, size), []).append((mpps, loss))
                    print(f"{sw.name:15s} {size:5d} B  run {run + 1}: {mpps:6.2f} Mpps delivered, "
                          f"loss {100 * loss:.4f} % ({rx} of {tx} frames)"
                          + (f", switch CPU {us:.3f} us/frame" if us is not None else ""), flush=True)
        ok = True
    except Fail as e:
        print(f"FAIL: {e}\n(log in {tmp}/bench.log)")
        return 1
    finally:
        log.close()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)

    # Loss can come out a hair below 0: the counters of the two ports are read one after the
    # other while frames move between them; it is shown as 0.
    both = set(kinds) >= {"dpdk", "squibnet"}
    print()
    print("| frame | " + " | ".join(f"{k}: Mpps, each run | loss" for k in kinds)
          + (" | squibnet / dpdk, median (best) |" if both else " |"))
    print("|---:|" + "---:|---:|" * len(kinds) + ("---:|" if both else ""))
    for size in sizes:
        cells, med, best = [], {}, {}
        for k in kinds:
            runs = results[(k, size)]
            rates = sorted(m for m, _ in runs)
            med[k], best[k] = rates[len(rates) // 2], rates[-1]
            cells.append(" / ".join(f"{m:.2f}" for m, _ in runs))
            cells.append(f"{100 * max(0.0, max(l for _, l in runs)):.3f} %")
        ratio = (f" | {med['squibnet'] / med['dpdk']:.2f}x ({best['squibnet'] / best['dpdk']:.2f}x)"
                 if both else "")
        print(f"| {size} B | " + " | ".join(cells) + ratio + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
