#!/usr/bin/env python3
"""Integration tests of the ports onto the host: pcap (a host interface through libpcap) and tap
(a Linux TAP device), each with a real kernel stack on the other side.

Every test makes its own network namespace with 10.77.0.1/24 in it, on one end of a veth pair
(pcap) or on the TAP device the switch created (tap), attaches the other end to the real daemon,
and puts squibnet-ping stations on a stream listener of the same switch. The namespace pings a
station and a station pings the namespace; squibnetctl's counters must show the traffic on the
host port and no frame the switch injected may come back in as ingress. Error cases check that
a missing interface, a missing TAP device and a bad filter are refused with a message that says
which and why. Namespaces, links and devices are removed in finally blocks, pass or fail.

Environment: SQUIBNET, SQUIBNETCTL, SQUIBNET_PING (paths of the programs; default build/tools/).
Needs root, `ip` and `ping` (iputils or busybox). Exit status: 0 passed, 1 failed, 77 skipped.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sntest import SKIP, Daemon, StreamClient, binary, eth, mac, mac_str, popen, run, run_tests, scaled  # noqa: E402

PID = os.getpid()
NS_IP = "10.77.0.1"
PING_CMD = None  # set by main()
KINDS = set()    # the host port kinds this build has


def skip(why):
    print(f"skip: {why}", flush=True)
    sys.exit(SKIP)


def sh(*args, check=True, ns=None):
    """Runs a command (inside network namespace ns when given); returns the CompletedProcess."""
    if ns:
        args = ("ip", "netns", "exec", ns) + args
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def link_exists(name, ns=None):
    args = ["ip"] + (["-n", ns] if ns else []) + ["link", "show", "dev", name]
    return subprocess.run(args, capture_output=True).returncode == 0


def link_stats(name, ns=None):
    """(rx_packets, tx_packets) of a link, from `ip -s -j link`."""
    args = ["ip"] + (["-n", ns] if ns else []) + ["-s", "-j", "link", "show", "dev", name]
    j = json.loads(sh(*args).stdout)[0]
    return j["stats64"]["rx"]["packets"], j["stats64"]["tx"]["packets"]


class Netns:
    """A network namespace for one test, and the links made for it; cleanup() removes all of it
    and must be called from a finally block."""

    def __init__(self, tag):
        self.name = f"snt-{tag}-{PID}"
        self.links = []      # (name, ns or None) to delete
        self.taps = []       # persistent TAP devices to delete
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        # IPv6 would add router solicitations and DAD to the counters the tests compare
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
           ns=self.name, check=False)

    def veth(self, host, inner):
        """A veth pair: @inner in the namespace with NS_IP, @host in the root namespace, up, no IP."""
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", inner)
        self.links.append((host, None))
        sh("sysctl", "-qw", f"net.ipv6.conf.{host}.disable_ipv6=1", check=False)
        sh("ip", "link", "set", inner, "netns", self.name)
        self.addr(inner)
        sh("ip", "link", "set", host, "up")

    def addr(self, dev):
        sh("ip", "-n", self.name, "addr", "add", NS_IP + "/24", "dev", dev)
        sh("ip", "-n", self.name, "link", "set", dev, "up")

    def ping(self, ip, count=3):
        return sh(*PING_CMD, "-c", str(count), "-W", "2", ip, ns=self.name, check=False)

    def cleanup(self):
        for name, ns in self.links:
            args = ["ip"] + (["-n", ns] if ns else []) + ["link", "del", name]
            subprocess.run(args, capture_output=True)
        for name in self.taps:
            subprocess.run(["ip", "tuntap", "del", "dev", name, "mode", "tap"], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Stations:
    """squibnet-ping processes attached to the switch; stop() kills what is still running."""

    def __init__(self, sock):
        self.bin = binary("SQUIBNET_PING", "tools/squibnet-ping")
        self.sock = sock
        self.procs = []

    def serve(self, ip):
        p = popen([self.bin, "--connect", "unix:" + self.sock, "--ip", ip + "/24", "--serve", "0", "-q"],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def ping(self, ip, peer, count=3):
        """Runs a station at @ip pinging @peer; returns (exit status, JSON summary or None, stderr)."""
        r = run([self.bin, "--connect", "unix:" + self.sock, "--ip", ip + "/24", "--ping", peer,
                 "--count", str(count), "--interval", "0.2", "--timeout", "2", "--json"],
                capture_output=True, text=True, timeout=30)
        try:
            j = json.loads(r.stdout)
        except ValueError:
            j = None
        return r.returncode, j, r.stderr

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(scaled(5))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def expect_ping_ok(net, ip, what):
    r = net.ping(ip)
    assert r.returncode == 0, f"{what}: ping {ip} from the namespace failed: {r.stdout}{r.stderr}"
    assert " 0% packet loss" in r.stdout, f"{what}: ping lost packets: {r.stdout}"


def stop_clean(d):
    """Stops the daemon with SIGTERM: it must exit 0 without a sanitizer report."""
    rc = d.stop()
    assert rc == 0, f"squibnet exited {rc} on SIGTERM: {d.stderr.strip()}"
    for bad in ("Sanitizer", "runtime error:"):
        assert bad not in d.stderr, f"squibnet reported at exit: {d.stderr.strip()}"


def expect_start_fails(spec, *words):
    """The daemon refuses @spec at start, exits non-zero, and its message holds every word."""
    with Daemon([spec], expect_start=False) as d:
        try:
            d.proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"squibnet --port {spec} kept running")
        err = d.proc.stderr.read()
        assert d.proc.returncode != 0, f"--port {spec} exited 0"
        for w in words:
            assert w in err, f"--port {spec}: message lacks {w!r}: {err.strip()}"
        assert "Sanitizer" not in err and "runtime error:" not in err, f"--port {spec}: {err.strip()}"
        return err


def need(kind):
    if kind not in KINDS:
        print(f"note: this build has no {kind} ports; test skipped", flush=True)
        return False
    return True


# ETHTOOL_STXCSUM through SIOCETHTOOL, so the test needs no ethtool binary
TX_CSUM_OFF = """
import ctypes, fcntl, socket, struct, sys
val = ctypes.create_string_buffer(struct.pack("II", 0x17, 0), 8)
ifr = struct.pack("16sQ16x", sys.argv[1].encode(), ctypes.addressof(val))
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8946, ifr)
"""

TCP_SINK = """
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5201)); s.listen(1); s.settimeout(20)
c, _ = s.accept(); c.settimeout(20); h = hashlib.sha256(); n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d); n += len(d)
print(n, h.hexdigest())
"""

TCP_SOURCE = """
import hashlib, socket, sys
data = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(1 << 20))
s = socket.create_connection((sys.argv[1], 5201), timeout=20); s.sendall(data); s.close()
print(len(data), hashlib.sha256(data).hexdigest())
"""


# ---- pcap ----

def test_pcap_ping_both_ways():
    if not need("pcap"):
        return
    net = Netns("pc")
    host, inner = f"snpa{PID}", f"snpb{PID}"
    st = None
    try:
        net.veth(host, inner)
        with Daemon(["stream,name=vms,listen=unix:@s.sock", f"pcap,name=host,dev={host}"]) as d:
            st = Stations(d.path("s.sock"))
            st.serve("10.77.0.2")
            time.sleep(scaled(0.3))
            expect_ping_ok(net, "10.77.0.2", "pcap")
            rc, j, err = st.ping("10.77.0.3", NS_IP)
            assert rc == 0 and j and j["received"] == 3, f"station -> namespace over pcap: rc={rc} {j} {err}"

            ports = d.ports()
            hp = ports["host"]
            assert hp["kind"] == "pcap" and hp["state"] == "up", hp
            s = hp["stats"]
            assert s["rx_frames"] >= 6 and s["tx_frames"] >= 6, f"pcap port counters: {hp}"

            # No loops: everything the pcap port read was sent by the namespace, never one of the
            # frames the switch injected (the station's replies, ARP, its own pings).
            ns_rx, ns_tx = link_stats(inner, net.name)
            assert s["rx_frames"] <= ns_tx, f"pcap rx {s['rx_frames']} > frames the namespace sent {ns_tx}"
            assert s["tx_frames"] <= ns_rx + 1, f"pcap tx {s['tx_frames']} vs namespace rx {ns_rx}"

            # A flood of broadcasts from a VM: all go out, none comes back in, and the VM's MAC
            # stays learned behind its own port (a loop would move it to the pcap port).
            c = StreamClient(d.path("s.sock"))
            vm = mac(0x7701)
            rx0, tx0 = s["rx_frames"], s["tx_frames"]
            ns_tx0 = link_stats(inner, net.name)[1]
            for i in range(300):
                c.send(eth(b"\xff" * 6, vm, struct.pack("!I", i), size=60))
            time.sleep(scaled(0.5))
            hp = d.ports()["host"]
            s = hp["stats"]
            ns_tx1 = link_stats(inner, net.name)[1]
            assert s["tx_frames"] - tx0 >= 300, f"flood went out: {s['tx_frames'] - tx0} of 300"
            assert s["rx_frames"] - rx0 <= ns_tx1 - ns_tx0, \
                f"pcap read {s['rx_frames'] - rx0} frames while the namespace sent {ns_tx1 - ns_tx0}: a loop"
            where = [e["port"] for e in d.fdb() if e["mac"] == mac_str(vm)]
            assert where and where[0] != "host", f"the VM's MAC is learned on {where}"
            c.close()
            # and the switch still works afterwards
            expect_ping_ok(net, "10.77.0.2", "pcap after the flood")
            stop_clean(d)
    finally:
        if st:
            st.stop()
        net.cleanup()


def test_pcap_filter():
    """filter= decides what is read from the interface: 'arp or icmp' lets ping through and keeps
    UDP out."""
    if not need("pcap"):
        return
    net = Netns("pf")
    host, inner = f"snfa{PID}", f"snfb{PID}"
    st = None
    try:
        net.veth(host, inner)
        spec = f'pcap,name=host,dev={host},filter="arp or icmp"'
        with Daemon(["stream,name=vms,listen=unix:@s.sock", spec]) as d:
            st = Stations(d.path("s.sock"))
            st.serve("10.77.0.2")
            time.sleep(scaled(0.3))
            expect_ping_ok(net, "10.77.0.2", "pcap with filter")
            c = StreamClient(d.path("s.sock"))
            c.send(eth(b"\xff" * 6, mac(0x7702), b"hello", size=60))  # so there is a VM to flood to
            rx0 = d.ports()["host"]["stats"]["rx_frames"]
            code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                    "s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1); "
                    "[s.sendto(b'x' * 32, ('10.77.0.255', 9)) for _ in range(20)]")
            sh(sys.executable, "-c", code, ns=net.name)
            time.sleep(scaled(0.3))
            rx1 = d.ports()["host"]["stats"]["rx_frames"]
            assert rx1 == rx0, f"the filter let {rx1 - rx0} UDP frames in"
            got = [f for f in c.recv_all(0.3) if len(f) >= 34 and f[12:14] == b"\x08\x00" and f[23] == 17]
            assert not got, f"a VM received {len(got)} UDP frames the filter should have dropped"
            c.close()
            stop_clean(d)
    finally:
        if st:
            st.stop()
        net.cleanup()


def test_pcap_errors():
    if not need("pcap"):
        return
    missing = f"snnone{PID}"
    expect_start_fails(f"pcap,dev={missing}", missing, "no interface")
    err = expect_start_fails('pcap,dev=lo,filter="ip and and"', "bad filter", "ip and and")
    # libpcap's own words after ours
    assert "syntax error" in err, f"libpcap's message is missing: {err.strip()}"
    expect_start_fails("pcap,filter=arp", "dev=")
    expect_start_fails("pcap,dev=lo,promisc=maybe", "promisc")
    # without the privilege: as nobody, with every capability dropped
    if shutil.which("setpriv"):
        r = run([binary("SQUIBNET", "tools/squibnet"), "--port", "pcap,dev=lo", "--control",
                 f"/tmp/sn-hostports-{PID}.sock"], capture_output=True, text=True,
                prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        assert r.returncode != 0, "capturing as nobody succeeded"
        assert "CAP_NET_RAW" in r.stderr and "lo" in r.stderr, f"permission message: {r.stderr.strip()}"


def test_pcap_interface_comes_back():
    """The interface is deleted and made again: the port goes down, reopens it, and carries
    frames again."""
    if not need("pcap"):
        return
    net = Netns("pr")
    host, inner = f"snra{PID}", f"snrb{PID}"
    st = None
    try:
        net.veth(host, inner)
        with Daemon(["stream,name=vms,listen=unix:@s.sock", f"pcap,name=host,dev={host}"]) as d:
            st = Stations(d.path("s.sock"))
            st.serve("10.77.0.2")
            time.sleep(scaled(0.3))
            expect_ping_ok(net, "10.77.0.2", "before")
            sh("ip", "link", "del", host)
            d.wait_ports(lambda p: p["host"]["state"] == "down", timeout=scaled(5))
            net.veth(host, inner)
            d.wait_ports(lambda p: p["host"]["state"] == "up", timeout=scaled(10))
            expect_ping_ok(net, "10.77.0.2", "after the interface came back")
            stop_clean(d)
    finally:
        if st:
            st.stop()
        net.cleanup()


# ---- tap ----

def test_tap_created_in_namespace():
    if not need("tap"):
        return
    net = Netns("tp")
    dev = f"snt{PID}"
    st = None
    try:
        with Daemon(["stream,name=vms,listen=unix:@s.sock", f"tap,name=host,ifname={dev},create=on"]) as d:
            # create=on made it and brought it up
            j = json.loads(sh("ip", "-j", "link", "show", "dev", dev).stdout)[0]
            assert "UP" in j["flags"], f"create=on left {dev} down: {j['flags']}"
            # the host side goes into the namespace with the descriptor still open
            sh("ip", "link", "set", dev, "netns", net.name)
            net.addr(dev)
            st = Stations(d.path("s.sock"))
            st.serve("10.77.0.2")
            time.sleep(scaled(0.3))
            expect_ping_ok(net, "10.77.0.2", "tap")
            rc, j, err = st.ping("10.77.0.3", NS_IP)
            assert rc == 0 and j and j["received"] == 3, f"station -> namespace over tap: rc={rc} {j} {err}"
            hp = d.ports()["host"]
            s = hp["stats"]
            assert hp["kind"] == "tap" and hp["state"] == "up", hp
            assert s["rx_frames"] >= 6 and s["tx_frames"] >= 6, f"tap port counters: {hp}"
            ns_rx, ns_tx = link_stats(dev, net.name)
            assert s["rx_frames"] <= ns_tx and s["tx_frames"] <= ns_rx + 1, \
                f"tap counters {s['rx_frames']}/{s['tx_frames']} vs the device's {ns_tx}/{ns_rx}"
            # a device the port created goes away with the port
            d.ctl("port", "del", "host")
            deadline = time.monotonic() + scaled(3)
            while link_exists(dev, net.name) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not link_exists(dev, net.name), f"{dev} outlived the port that created it"
            stop_clean(d)
    finally:
        if st:
            st.stop()
        net.cleanup()


def test_tap_existing_device():
    """Without create=on the device must exist; a persistent one is attached, works from a
    namespace, and is left in place when the port goes."""
    if not need("tap"):
        return
    dev = f"snq{PID}"
    net = Netns("tq")
    st = None
    try:
        expect_start_fails(f"tap,ifname={dev}", dev, "create=on")
        expect_start_fails("tap,create=on", "ifname=")
        expect_start_fails("tap,ifname=waytoolongname0123456789", "ifname")
        sh("ip", "tuntap", "add", "dev", dev, "mode", "tap")
        net.taps.append(dev)
        with Daemon(["stream,name=vms,listen=unix:@s.sock", f"tap,name=host,ifname={dev}"]) as d:
            hp = d.ports()["host"]
            assert hp["state"] == "up" and "created" not in hp["peer"], hp
            sh("ip", "link", "set", dev, "netns", net.name)
            net.links.append((dev, net.name))
            net.addr(dev)
            st = Stations(d.path("s.sock"))
            st.serve("10.77.0.2")
            time.sleep(scaled(0.3))
            expect_ping_ok(net, "10.77.0.2", "persistent tap")
            d.ctl("port", "del", "host")
            time.sleep(scaled(0.2))
            assert link_exists(dev, net.name), f"persistent {dev} was removed with the port"
            stop_clean(d)
    finally:
        if st:
            st.stop()
        net.cleanup()


def test_tap_busy():
    """A single-queue TAP device one port holds cannot be taken by a second port."""
    if not need("tap"):
        return
    dev = f"snb{PID}"
    with Daemon([f"tap,name=one,ifname={dev},create=on"]) as d:
        r = d.ctl_text("port", "add", f"tap,name=two,ifname={dev}")
        assert r.returncode != 0 and dev in r.stderr and "in use" in r.stderr, \
            f"second attach: rc={r.returncode} {r.stderr.strip()}"
        stop_clean(d)
    # the daemon is gone, and with it the device it created
    deadline = time.monotonic() + scaled(3)
    while link_exists(dev) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not link_exists(dev), f"{dev} outlived the daemon that created it"


def test_pcap_to_tap_tcp():
    """Two kernels talk TCP through the switch: one behind a veth attached by pcap, one behind a
    TAP device; 1 MiB arrives whole. Locally made frames on a veth carry unfinished checksums
    (checksum offload), so the sending side turns tx checksumming off, as the README says."""
    if not need("pcap") or not need("tap"):
        return
    a, b = Netns("ta"), Netns("tb")
    host, inner, dev = f"snca{PID}", f"sncb{PID}", f"snct{PID}"
    sink = None
    try:
        a.veth(host, inner)
        sh(sys.executable, "-c", TX_CSUM_OFF, inner, ns=a.name)
        with Daemon([f"pcap,name=veth,dev={host}", f"tap,name=tap,ifname={dev},create=on"]) as d:
            sh("ip", "link", "set", dev, "netns", b.name)
            b.links.append((dev, b.name))
            sh("ip", "-n", b.name, "addr", "add", "10.77.0.2/24", "dev", dev)
            sh("ip", "-n", b.name, "link", "set", dev, "up")
            sink = subprocess.Popen(["ip", "netns", "exec", b.name, sys.executable, "-c", TCP_SINK],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
            src = sh(sys.executable, "-c", TCP_SOURCE, "10.77.0.2", ns=a.name)
            out, err = sink.communicate(timeout=30)
            assert sink.returncode == 0, f"receiver failed: {err.strip()}"
            assert out.split() == src.stdout.split(), f"sent {src.stdout.strip()}, received {out.strip()}"
            p = d.ports()
            assert p["veth"]["stats"]["rx_bytes"] >= 1 << 20 and p["tap"]["stats"]["tx_bytes"] >= 1 << 20, p
            assert p["veth"]["stats"]["drop_oversize"] == 0, p["veth"]
            stop_clean(d)
    finally:
        if sink and sink.poll() is None:
            sink.kill()
            sink.wait()
        a.cleanup()
        b.cleanup()


TCP_SOURCE_N = """
import hashlib, socket, sys
n = int(sys.argv[2])
data = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))
s = socket.create_connection((sys.argv[1], 5201), timeout=20); s.sendall(data); s.close()
print(len(data), hashlib.sha256(data).hexdigest())
"""

# UDP GSO (UDP_SEGMENT): one send of 20 datagrams' worth, cut by whoever takes USO
UDP_SINK = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5202)); s.settimeout(5)
got = []
try:
    while len(got) < 20:
        got.append(s.recv(65536))
except socket.timeout:
    pass
print(len(got), sorted(set(len(g) for g in got)), all(g == bytes([i]) * 1400 for i, g in enumerate(got)))
"""

UDP_GSO_SOURCE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_UDP, 103, 1400)  # UDP_SEGMENT
s.sendto(b"".join(bytes([i]) * 1400 for i in range(20)), (sys.argv[1], 5202))
"""


def tap_pair(d, a, b, da, db):
    """Moves the switch's TAP devices @da and @db into namespaces @a (10.77.0.1) and @b
    (10.77.0.2)."""
    for dev, net, ip in ((da, a, "10.77.0.1/24"), (db, b, "10.77.0.2/24")):
        sh("ip", "link", "set", dev, "netns", net.name)
        net.links.append((dev, net.name))
        sh("ip", "-n", net.name, "addr", "add", ip, "dev", dev)
        sh("ip", "-n", net.name, "link", "set", dev, "up")
    d.wait_ports(lambda p: p["ta"]["state"] == "up" and p["tb"]["state"] == "up")


def test_tap_offloads_tcp_and_udp():
    """Two kernels talk through two TAP ports with offload=on: the sender's stack hands the
    switch TSO frames of up to 64 KiB. To a TAP that takes them they go whole; to one with
    offload=off the switch cuts them into segments. 2 MiB of TCP arrive whole either way, and a
    UDP_SEGMENT send of 20 datagrams (USO, where the kernel has it) arrives as 20 datagrams."""
    if not need("tap"):
        return
    for b_offload in ("on", "off"):
        a, b = Netns("oa"), Netns("ob")
        da, db = f"snoa{PID}", f"snob{PID}"
        sink = None
        try:
            with Daemon([f"tap,name=ta,ifname={da},create=on",
                         f"tap,name=tb,ifname={db},create=on,offload={b_offload}"]) as d:
                p = d.ports()
                assert p["ta"]["offload_tx"].startswith("csum,tso4,tso6,ecn"), p["ta"]
                assert p["ta"]["offload_rx"] == p["ta"]["offload_tx"], p["ta"]
                assert p["tb"]["offload_tx"] == ("" if b_offload == "off" else p["ta"]["offload_tx"]), p["tb"]
                uso = "uso4" in p["ta"]["offload_tx"]
                tap_pair(d, a, b, da, db)
                sink = subprocess.Popen(["ip", "netns", "exec", b.name, sys.executable, "-c", TCP_SINK],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                time.sleep(0.5)
                src = sh(sys.executable, "-c", TCP_SOURCE_N, "10.77.0.2", str(2 << 20), ns=a.name)
                out, err = sink.communicate(timeout=30)
                assert sink.returncode == 0, f"receiver failed: {err.strip()}"
                assert out.split() == src.stdout.split(), f"sent {src.stdout.strip()}, received {out.strip()}"
                p = d.ports()
                ta, tb = p["ta"]["stats"], p["tb"]["stats"]
                # large frames came in, and went out whole or cut
                assert ta["rx_bytes"] / ta["rx_frames"] > 3000, f"no large frames from the sender: {ta}"
                if b_offload == "on":
                    assert tb["tx_bytes"] / tb["tx_frames"] > 3000, f"tb got them cut: {tb}"
                else:
                    assert tb["tx_bytes"] / tb["tx_frames"] <= 1514, f"tb got frames over its MTU: {tb}"
                    assert tb["tx_frames"] >= (2 << 20) // 1448, tb
                for st in (ta, tb):
                    assert st["drop_bad_offload"] == 0 and st["drop_oversize"] == 0, p
                if uso:
                    usink = subprocess.Popen(["ip", "netns", "exec", b.name, sys.executable, "-c", UDP_SINK],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    time.sleep(0.5)
                    before = d.ports()["ta"]["stats"]["rx_frames"]
                    sh(sys.executable, "-c", UDP_GSO_SOURCE, "10.77.0.2", ns=a.name)
                    out, err = usink.communicate(timeout=30)
                    assert out.split(None, 1)[0] == "20" and "[1400]" in out and "True" in out, \
                        f"USO: the receiver got {out.strip()} {err.strip()}"
                    assert d.ports()["ta"]["stats"]["rx_frames"] - before < 20, "the UDP send came in cut already"
                else:
                    print("note: this kernel has no USO on TAP devices; the UDP part is skipped", flush=True)
                stop_clean(d)
        finally:
            if sink and sink.poll() is None:
                sink.kill()
                sink.wait()
            a.cleanup()
            b.cleanup()


def test_tap_offload_off_and_key():
    """offload=off opens the device without a virtio-net header; a bad value is refused."""
    if not need("tap"):
        return
    dev = f"snof{PID}"
    expect_start_fails(f"tap,ifname={dev},create=on,offload=maybe", "offload")
    with Daemon([f"tap,name=t,ifname={dev},create=on,offload=off"]) as d:
        p = d.ports()["t"]
        assert p["offload_tx"] == p["offload_rx"] == "" and "vnet-hdr" not in p["peer"], p
        stop_clean(d)


def main():
    global PING_CMD
    if os.geteuid() != 0:
        skip("needs root (network namespaces, veth pairs, TAP devices and live capture)")
    if not shutil.which("ip"):
        skip("`ip` (iproute2) is not installed")
    if shutil.which("ping"):
        PING_CMD = ["ping"]
    elif shutil.which("busybox"):
        PING_CMD = ["busybox", "ping"]
    else:
        skip("no ping (iputils-ping or busybox) to run in the namespace")
    probe = f"snt-probe-{PID}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot create a network namespace: {r.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    sq = binary("SQUIBNET", "tools/squibnet")
    for kind in ("pcap", "tap"):
        r = run([sq, "--port", f"{kind},name=probe", "--control", f"/tmp/sn-probe-{PID}.sock"],
                capture_output=True, text=True)
        if "unknown port kind" not in r.stderr:
            KINDS.add(kind)
    if not KINDS:
        skip("this build has neither pcap nor tap ports")
    run_tests([test_pcap_ping_both_ways, test_pcap_filter, test_pcap_errors, test_pcap_interface_comes_back,
               test_tap_created_in_namespace, test_tap_existing_device, test_tap_busy,
               test_pcap_to_tap_tcp, test_tap_offloads_tcp_and_udp, test_tap_offload_off_and_key])


if __name__ == "__main__":
    main()
