#!/usr/bin/env python3
"""Interop of squibnet's tunnel ports with the Linux kernel's vxlan and geneve devices, in
network namespaces (root).

Each test builds a small lab: namespace U holds the underlay, a Linux bridge with a veth leg to
each "host"; host A runs the real daemon with a tunnel port on 10.66.0.1 and a TAP port into A
(192.168.77.1, MTU 1450, the overlay's); hosts B and C (10.66.0.2 and .3) each have a Linux
vxlan (or geneve) device in a Linux bridge whose own address (192.168.77.2, .3) is the station.
Checked: ping both ways, 1400-byte pings, 4 MiB of TCP each way with md5 sums, learning on both
sides (squibnet's fdb with DST; `bridge fdb` of the Linux device), BUM frames replicated to both
remotes, the underlay captured with tcpdump and dissected by tshark without one error, outer
packets too long for the path dropped and counted rather than fragmented, a multicast group,
Geneve, an IPv6 underlay, and an EVPN-style setup with learning off and static entries on
both sides.

Frames a Linux vxlan device sends leave with their inner TCP checksum unfinished (checksum
offload): over a real NIC the hardware or the kernel completes it, but handed through a veth to
a local UDP socket it arrives unfinished, so each Linux device here gets `tx off` (the same
note as for pcap ports in the README).

Every namespace, veth, bridge and tunnel device is made inside the lab's namespaces and goes
with them in a finally block, pass or fail. Environment: SQUIBNET, SQUIBNETCTL. Needs root,
`ip`, `bridge` and ping; tcpdump and tshark for the capture checks (noted and left out when
absent). Exit status: 0 passed, 1 failed, 77 skipped.
"""
import ctypes
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sntest import SKIP, Daemon, binary, run_tests  # noqa: E402

PID = os.getpid()
PING = None
CLONE_NEWNET = 0x40000000
OVERLAY = "192.168.77"
UNDERLAY = "10.66.0"

TX_CSUM_OFF = """
import ctypes, fcntl, socket, struct, sys
for dev in sys.argv[1:]:
    val = ctypes.create_string_buffer(struct.pack("II", 0x17, 0), 8)   # ETHTOOL_STXCSUM, off
    ifr = struct.pack("16sQ16x", dev.encode(), ctypes.addressof(val))
    fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8946, ifr)
"""

TCP_SINK = """
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5201)); s.listen(1); s.settimeout(20)
c, _ = s.accept(); c.settimeout(20); h = hashlib.md5(); n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d); n += len(d)
print(n, h.hexdigest())
"""

TCP_SOURCE = """
import hashlib, random, socket, sys
data = random.Random(int(sys.argv[2])).randbytes(4 << 20)
s = socket.create_connection((sys.argv[1], 5201), timeout=20); s.sendall(data); s.close()
print(len(data), hashlib.md5(data).hexdigest())
"""


def skip(why):
    print(f"skip: {why}", flush=True)
    sys.exit(SKIP)


def sh(*args, ns=None, check=True, timeout=30):
    if ns:
        args = ("ip", "netns", "exec", ns) + args
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def enter_netns(name):
    """A preexec_fn that moves the child into network namespace @name before exec."""
    def enter():
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            os._exit(127)
        os.close(fd)
    return enter


class Lab:
    """Namespaces U (underlay bridge), A (squibnet) and the Linux hosts; cleanup() removes all."""

    def __init__(self, tag, hosts=("B", "C"), ipv6=False):
        self.tag = tag
        self.ns = {}
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="sn-vxns-")
        try:
            for h in ("U", "A") + tuple(hosts):
                name = f"snx{tag}{h}-{PID}"
                sh("ip", "netns", "add", name)
                self.ns[h] = name
                sh("ip", "-n", name, "link", "set", "lo", "up")
                # only the traffic the test makes: no router solicitations, no DAD waits
                if not ipv6:
                    sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                       ns=name, check=False)
                else:
                    sh("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                       ns=name, check=False)
            u = self.ns["U"]
            sh("ip", "-n", u, "link", "add", "ubr", "type", "bridge", "mcast_snooping", "0")
            sh("ip", "-n", u, "link", "set", "ubr", "up")
            for i, h in enumerate(("A",) + tuple(hosts)):
                sh("ip", "-n", u, "link", "add", f"leg{h}", "type", "veth", "peer", "name", "und", "netns", self.ns[h])
                sh("ip", "-n", u, "link", "set", f"leg{h}", "master", "ubr", "up")
                sh("ip", "-n", self.ns[h], "addr", "add", f"{UNDERLAY}.{i + 1}/24", "dev", "und")
                if ipv6:
                    sh("ip", "-n", self.ns[h], "addr", "add", f"fd66::{i + 1}/64", "dev", "und", "nodad")
                sh("ip", "-n", self.ns[h], "link", "set", "und", "up")
        except BaseException:
            self.cleanup()
            raise

    def underlay_ip(self, h):
        return f"{UNDERLAY}.{'ABC'.index(h) + 1}"

    def linux_tunnel(self, h, args, name="vx0"):
        """A Linux tunnel device @name (`ip link add @name type ...@args`) in a bridge br0 whose
        own address is the host's station; tx checksumming off (see the module's note)."""
        ns = self.ns[h]
        sh("ip", "-n", ns, "link", "add", name, "type", *args)
        sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", ns, "link", "set", name, "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{OVERLAY}.{'ABC'.index(h) + 1}/24", "dev", "br0")
        sh(sys.executable, "-c", TX_CSUM_OFF, name, ns=ns)

    def squibnet(self, *specs):
        """The daemon in A with a TAP port into A (the station 192.168.77.1) and @specs."""
        d = Daemon(["tap,name=tap,ifname=snt0,create=on"] + list(specs), preexec_fn=enter_netns(self.ns["A"]),
                   stderr=open(os.path.join(self.tmp, "squibnet.log"), "w"))
        self.procs.append(d)
        a = self.ns["A"]
        sh("ip", "-n", a, "link", "set", "snt0", "mtu", "1450")
        sh("ip", "-n", a, "addr", "add", f"{OVERLAY}.1/24", "dev", "snt0")
        return d

    def ping(self, h, ip, count=2, size=None, extra=()):
        args = list(PING) + ["-c", str(count), "-W", "2", "-i", "0.2"] + (["-s", str(size)] if size else []) + list(extra)
        return sh(*args, ip, ns=self.ns[h], check=False)

    def capture(self, leg="A"):
        """tcpdump of the UDP on the underlay leg of host @leg, or None without tcpdump."""
        if not shutil.which("tcpdump"):
            return None
        path = os.path.join(self.tmp, f"underlay-{leg}.pcap")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns["U"], "tcpdump", "-i", f"leg{leg}", "--immediate-mode", "-U", "-w", path,
                              "udp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        # tcpdump says "listening on" once the capture runs
        deadline = time.monotonic() + 5
        line = ""
        while time.monotonic() < deadline and "listening" not in line:
            line = p.stderr.readline()
        p.path = path
        return p

    def cleanup(self):
        """Whatever goes wrong stopping a process, the namespaces (and everything in them) go."""
        try:
            for p in self.procs:
                try:
                    if isinstance(p, Daemon):
                        close_daemon(p)
                    elif p.poll() is None:
                        p.terminate()
                        try:
                            p.wait(5)
                        except subprocess.TimeoutExpired:
                            p.kill()
                            p.wait()
                except Exception as e:  # noqa: BLE001 - the next process and the namespaces still go
                    print(f"cleanup: {e!r}", file=sys.stderr, flush=True)
                    proc = p.proc if isinstance(p, Daemon) else p
                    if proc.poll() is None:
                        proc.kill()
        finally:
            for name in self.ns.values():
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
            shutil.rmtree(self.tmp, ignore_errors=True)


def close_daemon(d):
    """What leaving a with block does (stop it, check for valgrind's reports), from a finally
    block: a report is printed, not raised over the test's own error, and the daemon is gone
    whatever happened."""
    try:
        d.__exit__(None, None, None)
    except Exception as e:  # noqa: BLE001 - printed; the daemon is killed below
        print(e, file=sys.stderr, flush=True)
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def stop_capture(p):
    time.sleep(0.3)
    p.terminate()
    p.wait(5)
    return p.path


def tshark_fields(path, fields, display=None):
    """[[field values]] of every packet of @path as tshark dissects it, or None without tshark."""
    if not shutil.which("tshark"):
        print("note: tshark is not installed: dissection not checked", flush=True)
        return None
    # the outer headers: the first occurrence of a field that the inner packet has too
    args = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    if display:
        args += ["-Y", display]
    for f in fields:
        args += ["-e", f]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("|") for line in r.stdout.splitlines() if line]


def tshark_clean(path):
    """tshark finds no malformed packet and no expert error in @path."""
    if not shutil.which("tshark"):
        return
    r = subprocess.run(["tshark", "-n", "-r", path, "-V"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    bad = [line for line in r.stdout.splitlines() if "Malformed" in line or "[Severity level: Error]" in line]
    assert not bad, "tshark reports:\n" + "\n".join(bad[:10])


def expect_ping(lab, h, ip, what, **kw):
    r = lab.ping(h, ip, **kw)
    assert r.returncode == 0, f"{what}: {r.stdout}{r.stderr}"


def tcp_transfer(lab, src, dst_host, dst_ip, seed):
    sink = subprocess.Popen(["ip", "netns", "exec", lab.ns[dst_host], sys.executable, "-c", TCP_SINK],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lab.procs.append(sink)
    time.sleep(0.4)
    out = sh(sys.executable, "-c", TCP_SOURCE, dst_ip, str(seed), ns=lab.ns[src]).stdout.split()
    got, err = sink.communicate(timeout=30)
    assert sink.returncode == 0, f"receiver: {err.strip()}"
    assert got.split() == out, f"{src} -> {dst_host}: sent {out}, received {got.split()}"


# ---- tests ----


def test_linux_bridge_interop():
    """squibnet <-> a Linux bridge with a vxlan device: ping both ways, 1400-byte pings, 4 MiB
    of TCP each way, and each side learned the other's MAC behind the other's VTEP."""
    lab = Lab("l", hosts=("B",))
    try:
        lab.linux_tunnel("B", ["vxlan", "id", "42", "dstport", "4789", "local", f"{UNDERLAY}.2", "remote",
                               f"{UNDERLAY}.1"])
        d = lab.squibnet(f"vxlan,name=vx,local={UNDERLAY}.1,vni=42,remote={UNDERLAY}.2")
        assert d.ports()["vx"]["mtu"] == 1450, d.ports()["vx"]
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B")
        expect_ping(lab, "B", f"{OVERLAY}.1", "B -> A")
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B, 1400 bytes", size=1400)
        expect_ping(lab, "B", f"{OVERLAY}.1", "B -> A, 1400 bytes", size=1400)
        tcp_transfer(lab, "A", "B", f"{OVERLAY}.2", 1)
        tcp_transfer(lab, "B", "A", f"{OVERLAY}.1", 2)
        br0 = sh("cat", "/sys/class/net/br0/address", ns=lab.ns["B"]).stdout.strip()
        tap = sh("cat", "/sys/class/net/snt0/address", ns=lab.ns["A"]).stdout.strip()
        fdb = {e["mac"]: e for e in d.fdb()}
        assert fdb.get(br0, {}).get("port") == "vx" and fdb[br0].get("dst") == f"{UNDERLAY}.2", fdb
        linux = sh("bridge", "fdb", "show", "dev", "vx0", ns=lab.ns["B"]).stdout
        assert f"{tap} dst {UNDERLAY}.1" in linux, linux
        st = d.ports()["vx"]["stats"]
        assert st["rx_bytes"] >= 4 << 20 and st["tx_bytes"] >= 4 << 20, st
        assert st["drop_oversize"] == 0 and st["drop_runt"] == 0, st
        c = d.ctl("tunnel", "show")["tunnels"][0]["counters"]
        assert c["bad_header"] == 0 and c["unknown_vni"] == 0 and c["tx_errors"] == 0, c
        assert d.stop() == 0
    finally:
        lab.cleanup()


def test_head_end_replication_and_tshark():
    """BUM frames go once to each remote=, unicast to the learned VTEP only; tcpdump on the
    underlay shows VXLAN that tshark dissects without an error: flags 0x08, VNI 42, DF set,
    UDP source ports in 32768-60999, no fragments."""
    lab = Lab("h")
    try:
        for h in ("B", "C"):
            lab.linux_tunnel(h, ["vxlan", "id", "42", "dstport", "4789", "local", lab.underlay_ip(h), "remote",
                                 f"{UNDERLAY}.1"])
        d = lab.squibnet(f"vxlan,name=vx,local={UNDERLAY}.1,vni=42,remote={UNDERLAY}.2+{UNDERLAY}.3")
        cap = lab.capture("A")
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B", count=1)
        expect_ping(lab, "A", f"{OVERLAY}.3", "A -> C", count=1)
        # a broadcast from B reaches A, and C through A? No: A never sends a remote's frame back
        # out of the tunnel port it came in on (one port per VNI), as a Linux vxlan device does.
        expect_ping(lab, "B", f"{OVERLAY}.1", "B -> A", count=1)
        fdb = {e["mac"]: e.get("dst") for e in d.fdb() if e["port"] == "vx"}
        assert sorted(fdb.values()) == [f"{UNDERLAY}.2", f"{UNDERLAY}.3"], fdb
        if cap:
            path = stop_capture(cap)
            rows = tshark_fields(path, ["ip.src", "ip.dst", "ip.flags.df", "ip.flags.mf", "udp.srcport",
                                        "udp.dstport", "vxlan.flags", "vxlan.vni", "arp.opcode", "icmp.type",
                                        "udp.checksum"])
            if rows is not None:
                ours = [r for r in rows if r[0] == f"{UNDERLAY}.1"]
                assert ours, rows
                for r in ours:
                    assert r[2] == "1" and r[3] == "0", f"DF must be set, no fragments: {r}"
                    assert 32768 <= int(r[4]) <= 60999 and r[5] == "4789", r
                    assert r[6] == "0x0800" and r[7] == "42", r
                    assert r[10] == "0x0000", f"IPv4 outer UDP checksums are zero by default: {r}"
                arp_requests = [r[1] for r in ours if r[8] == "1"]
                # each ARP request of A (for B, then for C) went to both remotes
                assert sorted(arp_requests) == sorted([f"{UNDERLAY}.2", f"{UNDERLAY}.3"] * 2), arp_requests
                echo = [r[1] for r in ours if r[9] == "8"]
                assert echo == [f"{UNDERLAY}.2", f"{UNDERLAY}.3"], f"unicast went to one VTEP each: {echo}"
                tshark_clean(path)
        assert d.stop() == 0
    finally:
        lab.cleanup()


def test_udp_checksum_on():
    """udp-csum=on: the outer UDP checksum is there and right (tshark checks it), and the Linux
    device takes the packets as before."""
    lab = Lab("c", hosts=("B",))
    try:
        lab.linux_tunnel("B", ["vxlan", "id", "42", "dstport", "4789", "local", f"{UNDERLAY}.2", "remote",
                               f"{UNDERLAY}.1"])
        d = lab.squibnet(f"vxlan,name=vx,local={UNDERLAY}.1,vni=42,remote={UNDERLAY}.2,udp-csum=on")
        # with checksum offload a veth carries (and tcpdump sees) the checksum unfinished
        sh(sys.executable, "-c", TX_CSUM_OFF, "und", ns=lab.ns["A"])
        cap = lab.capture("A")
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B with UDP checksums")
        if cap and shutil.which("tshark"):
            path = stop_capture(cap)
            r = subprocess.run(["tshark", "-n", "-r", path, "-o", "udp.check_checksum:TRUE", "-T", "fields",
                                "-E", "occurrence=f", "-e", "ip.src", "-e", "udp.checksum", "-e",
                                "udp.checksum.status"], capture_output=True, text=True, timeout=60)
            ours = [line.split("\t") for line in r.stdout.splitlines() if line.startswith(f"{UNDERLAY}.1\t")]
            assert ours and all(x[1] != "0x0000" and x[2] in ("1", "Good") for x in ours), ours
        assert d.stop() == 0
    finally:
        lab.cleanup()


def test_too_long_for_the_path_is_dropped_not_fragmented():
    """mtu=1500 over a 1500-byte underlay: a full-size frame cannot go out whole; it is dropped
    and counted as oversize, and nothing fragmented appears on the underlay."""
    lab = Lab("m", hosts=("B",))
    try:
        lab.linux_tunnel("B", ["vxlan", "id", "42", "dstport", "4789", "local", f"{UNDERLAY}.2", "remote",
                               f"{UNDERLAY}.1"])
        d = lab.squibnet(f"vxlan,name=vx,local={UNDERLAY}.1,vni=42,remote={UNDERLAY}.2,mtu=1500")
        sh("ip", "-n", lab.ns["A"], "link", "set", "snt0", "mtu", "1500")
        cap = lab.capture("A")
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B")
        r = lab.ping("A", f"{OVERLAY}.2", count=2, size=1472, extra=["-M", "do"])
        assert r.returncode != 0, "a 1500-byte packet crossed a 1500-byte underlay in one piece?"
        st = d.ports()["vx"]["stats"]
        assert st["drop_oversize"] == 2, st
        if cap:
            path = stop_capture(cap)
            rows = tshark_fields(path, ["ip.flags.mf", "ip.frag_offset", "frame.len"])
            if rows is not None:
                assert all(r[0] == "0" and r[1] == "0" for r in rows), rows
                assert max(int(r[2]) for r in rows) <= 1514, rows
        assert d.stop() == 0
    finally:
        lab.cleanup()


def test_multicast_group():
    """group=239.1.1.1,dev=und against Linux devices in group mode: BUM over the group, unicast to
    the learned VTEP."""
    lab = Lab("g")
    try:
        for h in ("B", "C"):
            lab.linux_tunnel(h, ["vxlan", "id", "42", "dstport", "4789", "local", lab.underlay_ip(h), "group",
                                 "239.1.1.1", "dev", "und", "ttl", "1"])
        d = lab.squibnet(f"vxlan,name=vx,local={UNDERLAY}.1,vni=42,group=239.1.1.1,dev=und")
        cap = lab.capture("A")
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B")
        expect_ping(lab, "A", f"{OVERLAY}.3", "A -> C")
        expect_ping(lab, "C", f"{OVERLAY}.1", "C -> A")
        fdb = {e["mac"]: e.get("dst") for e in d.fdb() if e["port"] == "vx"}
        assert sorted(fdb.values()) == [f"{UNDERLAY}.2", f"{UNDERLAY}.3"], fdb
        if cap:
            path = stop_capture(cap)
            rows = tshark_fields(path, ["ip.src", "ip.dst", "ip.ttl", "arp.opcode"])
            if rows is not None:
                arps = [r for r in rows if r[0] == f"{UNDERLAY}.1" and r[3] == "1"]
                assert arps and all(r[1] == "239.1.1.1" and r[2] == "1" for r in arps), arps
                tshark_clean(path)
        assert d.stop() == 0
    finally:
        lab.cleanup()


def test_geneve_interop():
    """A geneve port against a Linux geneve device: pings, TCP, tshark dissects Geneve."""
    lab = Lab("n", hosts=("B",))
    try:
        r = sh("ip", "-n", lab.ns["B"], "link", "add", "gnprobe", "type", "geneve", "id", "1", "remote",
               f"{UNDERLAY}.1", check=False)
        if r.returncode != 0:
            print(f"note: this kernel makes no geneve devices ({r.stderr.strip()}): test left out", flush=True)
            return
        sh("ip", "-n", lab.ns["B"], "link", "del", "gnprobe")
        lab.linux_tunnel("B", ["geneve", "id", "42", "remote", f"{UNDERLAY}.1"], name="gn0")
        d = lab.squibnet(f"geneve,name=gn,local={UNDERLAY}.1,vni=42,remote={UNDERLAY}.2")
        cap = lab.capture("A")
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B")
        expect_ping(lab, "B", f"{OVERLAY}.1", "B -> A", size=1400)
        tcp_transfer(lab, "B", "A", f"{OVERLAY}.1", 3)
        if cap:
            path = stop_capture(cap)
            rows = tshark_fields(path, ["ip.src", "udp.dstport", "geneve.version", "geneve.vni", "geneve.proto_type"])
            if rows is not None:
                ours = [r for r in rows if r[0] == f"{UNDERLAY}.1"]
                assert ours and all(r[1:] == ["6081", "0", "42", "0x6558"] for r in ours), ours[:5]
                tshark_clean(path)
        assert d.stop() == 0
    finally:
        lab.cleanup()


def test_ipv6_underlay():
    """VXLAN over IPv6 between squibnet and a Linux device (70 bytes of overhead: MTU 1430)."""
    lab = Lab("6", hosts=("B",), ipv6=True)
    try:
        lab.linux_tunnel("B", ["vxlan", "id", "43", "dstport", "4789", "local", "fd66::2", "remote", "fd66::1"])
        d = lab.squibnet("vxlan,name=vx,local=[fd66::1],vni=43,remote=fd66::2")
        assert d.ports()["vx"]["mtu"] == 1430, d.ports()["vx"]
        sh("ip", "-n", lab.ns["A"], "link", "set", "snt0", "mtu", "1430")
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B over IPv6")
        expect_ping(lab, "B", f"{OVERLAY}.1", "B -> A over IPv6", size=1380)
        fdb = {e["mac"]: e.get("dst") for e in d.fdb() if e["port"] == "vx"}
        assert list(fdb.values()) == ["fd66::2"], fdb
        assert d.stop() == 0
    finally:
        lab.cleanup()


def test_evpn_style_static():
    """What an EVPN control plane would install, by hand: learning off on both sides, the flood
    list and each MAC's VTEP configured. Both directions work; a third VTEP that nobody put in
    the configuration is refused by squibnet."""
    lab = Lab("e")
    try:
        b = lab.ns["B"]
        lab.linux_tunnel("B", ["vxlan", "id", "42", "dstport", "4789", "local", f"{UNDERLAY}.2", "nolearning"])
        # C is a VTEP that squibnet was not told about; it floods to A anyway
        lab.linux_tunnel("C", ["vxlan", "id", "42", "dstport", "4789", "local", f"{UNDERLAY}.3", "remote",
                               f"{UNDERLAY}.1"])
        d = lab.squibnet(f"vxlan,name=vx,local={UNDERLAY}.1,vni=42,learning=off")
        tap = sh("cat", "/sys/class/net/snt0/address", ns=lab.ns["A"]).stdout.strip()
        br0 = sh("cat", "/sys/class/net/br0/address", ns=b).stdout.strip()
        # type-3 routes: the flood lists; type-2 routes: where each MAC lives
        sh("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", f"{UNDERLAY}.1", ns=b)
        sh("bridge", "fdb", "add", tap, "dev", "vx0", "dst", f"{UNDERLAY}.1", "static", "self", ns=b)
        d.ctl("tunnel", "flood", "add", "vx", f"{UNDERLAY}.2")
        d.ctl("fdb", "add", br0, "vx", f"dst={UNDERLAY}.2")
        expect_ping(lab, "A", f"{OVERLAY}.2", "A -> B")
        expect_ping(lab, "B", f"{OVERLAY}.1", "B -> A")
        t = d.ctl("tunnel", "show", "vx")["tunnels"][0]
        assert [(r["mac"], r["dst"], r["static"]) for r in t["remotes"]] == [(br0, f"{UNDERLAY}.2", True)], t
        # C's ARP for A reaches A's socket and is refused there
        before = t["counters"]["unknown_vtep"]
        r = lab.ping("C", f"{OVERLAY}.1", count=1)
        assert r.returncode != 0, "C, a VTEP nobody configured, reached A"
        assert d.ctl("tunnel", "show", "vx")["tunnels"][0]["counters"]["unknown_vtep"] > before
        assert d.stop() == 0
    finally:
        lab.cleanup()


def main():
    global PING
    if os.geteuid() != 0:
        skip("needs root (network namespaces, veth pairs, Linux vxlan devices)")
    for tool in ("ip", "bridge"):
        if not shutil.which(tool):
            skip(f"`{tool}` (iproute2) is not installed")
    if shutil.which("ping"):
        PING = ["ping"]
    elif shutil.which("busybox"):
        PING = ["busybox", "ping"]
    else:
        skip("no ping (iputils-ping or busybox)")
    probe = f"snx-probe-{PID}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot create a network namespace: {r.stderr.strip()}")
    try:
        r = subprocess.run(["ip", "-n", probe, "link", "add", "vxprobe", "type", "vxlan", "id", "1", "dstport",
                            "4789"], capture_output=True, text=True)
        if r.returncode != 0:
            skip(f"this kernel makes no vxlan devices: {r.stderr.strip()}")
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    sq = binary("SQUIBNET", "tools/squibnet")
    help_text = subprocess.run([sq, "--help"], capture_output=True, text=True, timeout=10)
    if "vxlan," not in help_text.stdout + help_text.stderr or "tap," not in help_text.stdout + help_text.stderr:
        skip("this build lacks vxlan or tap ports")
    run_tests([test_linux_bridge_interop, test_head_end_replication_and_tshark, test_udp_checksum_on,
               test_too_long_for_the_path_is_dropped_not_fragmented, test_multicast_group, test_geneve_interop,
               test_ipv6_underlay, test_evpn_style_static])


if __name__ == "__main__":
    main()
