#!/usr/bin/env python3
"""bench-vxlan.py - VXLAN forwarding figures: squibnet's vxlan port against a Linux vxlan
device, beside the same traffic between two Linux vxlan devices (the kernel as the anchor).

    sudo tools/bench-vxlan.py [--build DIR] [--seconds S] [--sizes 60,1400] [--json]

Two network namespaces, A and B, joined by a veth pair (10.68.0.1 and .2, MTU 1500). B always
has a Linux vxlan device (VNI 42). Each case runs SECONDS (default 5) per frame size:

  kernel-tx    frames written into a Linux vxlan device in A (AF_PACKET), counted arriving at B's
  squibnet-tx  frames into squibnet in A through a dgram port, out of its vxlan port to B's
  kernel-rx    frames written into B's device, counted arriving at a Linux vxlan device in A
  squibnet-rx  frames written into B's device, decapsulated and switched by squibnet in A (to
               no port: the kernel-rx frames end at A's device too)

Frames are counted where they arrive (the receiving device's rx_packets, or squibnet's port
counters), so a rate is what got through; loss is sent minus received. CPU per
frame is the switch process's user and system time over frames for the squibnet cases (its
system time holds the receiving kernel's work too: over a veth, Linux runs the peer's receive
softirq in the sender's system call), and for the kernel cases the CPU the whole machine spent (all non-idle time in /proc/stat, the frame source
included), because the kernel's work runs in softirq and in the sender's system calls; the
squibnet cases show that figure too, for comparison. squibnet is pinned to CPU 1 and the
frame source to CPU 0. A benchmark, not a test: it reports and never judges. Needs root,
iproute2, a kernel with vxlan, and the build's squibnet, squibnetctl and squibnet-blast.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

PID = os.getpid()
NS = {"A": f"snbvA-{PID}", "B": f"snbvB-{PID}"}
IP = {"A": "10.68.0.1", "B": "10.68.0.2"}


def sh(*args, ns=None, check=True):
    if ns:
        args = ("ip", "netns", "exec", NS[ns]) + args
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def in_ns(name, cpu):
    import ctypes

    def enter():
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{NS[name]}", os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:
            os._exit(127)
        os.close(fd)
        if cpu is not None and os.cpu_count() and cpu < os.cpu_count():
            os.sched_setaffinity(0, {cpu})
    return enter


def rx_packets(ns, dev):
    j = json.loads(sh("ip", "-n", NS[ns], "-s", "-j", "link", "show", "dev", dev).stdout)[0]
    return j["stats64"]["rx"]["packets"]


def busy_seconds():
    """Non-idle CPU seconds of the whole machine so far (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """(user, system) CPU seconds of process @pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def cpu_delta(pid, before):
    now = proc_cpu(pid)
    return now[0] - before[0], now[1] - before[1]


class Bench:
    def __init__(self, build, seconds):
        self.build = build
        self.seconds = seconds
        self.tmp = tempfile.mkdtemp(prefix="sn-bench-vxlan-")
        self.procs = []

    def tool(self, name):
        p = os.path.join(self.build, "tools", name)
        if not os.access(p, os.X_OK):
            sys.exit(f"bench-vxlan: {p} is not built")
        return p

    def setup(self):
        for h in ("A", "B"):
            sh("ip", "netns", "add", NS[h])
            sh("ip", "-n", NS[h], "link", "set", "lo", "up")
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=h, check=False)
        sh("ip", "-n", NS["A"], "link", "add", "und", "type", "veth", "peer", "name", "und", "netns", NS["B"])
        for h in ("A", "B"):
            sh("ip", "-n", NS[h], "addr", "add", IP[h] + "/24", "dev", "und")
            sh("ip", "-n", NS[h], "link", "set", "und", "up")
        self.linux_vxlan("B", "vxB")

    def linux_vxlan(self, h, name):
        other = "B" if h == "A" else "A"
        sh("ip", "-n", NS[h], "link", "add", name, "type", "vxlan", "id", "42", "dstport", "4789", "local", IP[h],
           "remote", IP[other], "nolearning")
        sh("ip", "-n", NS[h], "link", "set", name, "up")

    def squibnet(self, dgram_local=None, dgram_peer=None):
        ctl = os.path.join(self.tmp, "ctl.sock")
        log = open(os.path.join(self.tmp, "squibnet.log"), "w")
        ports = ["--port", f"dgram,name=src,connect={dgram_peer},local={dgram_local}"] if dgram_local else []
        p = subprocess.Popen([self.tool("squibnet"), "--control", ctl] + ports +
                             ["--port", f"vxlan,name=vx,local={IP['A']},vni=42,remote={IP['B']}"],
                             stdout=log, stderr=subprocess.STDOUT, preexec_fn=in_ns("A", 1))
        self.procs.append(p)
        deadline = time.monotonic() + 10
        while not os.path.exists(ctl):
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("squibnet did not start: " + open(log.name).read())
            time.sleep(0.05)
        p.ctl = ctl
        return p

    def ports(self, sw):
        r = subprocess.run([self.tool("squibnetctl"), "--control", sw.ctl, "--json", "ports"], capture_output=True,
                           text=True, timeout=10)
        return {x["name"]: x for x in json.loads(r.stdout)["ports"]}

    def blast(self, ns, *args):
        return subprocess.Popen([self.tool("squibnet-blast"), *args], stdout=subprocess.PIPE, text=True,
                                preexec_fn=in_ns(ns, 0))

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def measure(self, case, size):
        s = str(self.seconds)
        src_sock = os.path.join(self.tmp, "blast.sock")
        sw_sock = os.path.join(self.tmp, "sw.sock")
        sw = None
        try:
            if case == "kernel-tx":
                self.linux_vxlan("A", "vxA")
                before, busy0 = rx_packets("B", "vxB"), busy_seconds()
                b = self.blast("A", "packet", "vxA", str(size), s)
                out = json.loads(b.communicate()[0])
                time.sleep(0.2)
                got = rx_packets("B", "vxB") - before
                busy = busy_seconds() - busy0
                sh("ip", "-n", NS["A"], "link", "del", "vxA")
                return dict(sent=out["frames"], received=got, seconds=out["seconds"], busy=busy, switch_cpu=None)
            if case == "kernel-rx":
                self.linux_vxlan("A", "vxA")
                before, busy0 = rx_packets("A", "vxA"), busy_seconds()
                b = self.blast("B", "packet", "vxB", str(size), s)
                out = json.loads(b.communicate()[0])
                time.sleep(0.2)
                got = rx_packets("A", "vxA") - before
                busy = busy_seconds() - busy0
                sh("ip", "-n", NS["A"], "link", "del", "vxA")
                return dict(sent=out["frames"], received=got, seconds=out["seconds"], busy=busy, switch_cpu=None)
            if case == "squibnet-tx":
                sw = self.squibnet(sw_sock, src_sock)
                before, busy0, cpu0 = rx_packets("B", "vxB"), busy_seconds(), proc_cpu(sw.pid)
                b = self.blast("A", "dgram", src_sock, sw_sock, str(size), s)
                out = json.loads(b.communicate()[0])
                time.sleep(0.2)
                got = rx_packets("B", "vxB") - before
                busy, cpu = busy_seconds() - busy0, cpu_delta(sw.pid, cpu0)
                return dict(sent=out["frames"], received=got, seconds=out["seconds"], busy=busy, switch_cpu=cpu,
                            switch=self.ports(sw))
            if case == "squibnet-rx":
                # the frames go nowhere after the switch (it has no other port), as the kernel's
                # go nowhere after the device: decapsulation, learning and the forwarding decision
                sw = self.squibnet()
                time.sleep(0.3)
                p0 = self.ports(sw)["vx"]["stats"]["rx_frames"]
                busy0, cpu0 = busy_seconds(), proc_cpu(sw.pid)
                b = self.blast("B", "packet", "vxB", str(size), s)
                out = json.loads(b.communicate()[0])
                time.sleep(0.2)
                busy, cpu = busy_seconds() - busy0, cpu_delta(sw.pid, cpu0)
                ports = self.ports(sw)
                got = ports["vx"]["stats"]["rx_frames"] - p0
                return dict(sent=out["frames"], received=got, seconds=out["seconds"], busy=busy, switch_cpu=cpu,
                            switch=ports)
        finally:
            if sw:
                self.stop(sw)
                self.procs.remove(sw)

    def cleanup(self):
        for p in self.procs:
            self.stop(p)
        for name in NS.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--sizes", default="60,1400")
    ap.add_argument("--cases", default="kernel-tx,squibnet-tx,kernel-rx,squibnet-rx")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-vxlan: needs root (network namespaces, vxlan devices)")
    b = Bench(a.build, a.seconds)
    results = []
    try:
        b.setup()
        for size in [int(x) for x in a.sizes.split(",")]:
            for case in a.cases.split(","):
                r = b.measure(case, size)
                r.update(case=case, size=size)
                results.append(r)
                if not a.json:
                    rate = r["received"] / r["seconds"]
                    n = max(r["received"], 1)
                    cpu = (f"{r['switch_cpu'][0] / n * 1e9:5.0f} + {r['switch_cpu'][1] / n * 1e9:5.0f}"
                           if r["switch_cpu"] is not None else "    -         ")
                    print(f"{case:12s} {size:5d} B  {rate / 1e6:6.3f} Mframes/s  {rate * size * 8 / 1e9:6.2f} Gbit/s  "
                          f"loss {1 - r['received'] / max(r['sent'], 1):6.1%}  switch CPU user + sys {cpu} ns/frame  "
                          f"machine CPU {r['busy'] / n * 1e9:6.0f} ns/frame", flush=True)
    finally:
        b.cleanup()
    if a.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
