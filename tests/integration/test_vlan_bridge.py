#!/usr/bin/env python3
"""squibnet's VLANs against real kernels, in network namespaces.

First, with TAP devices only (no kernel VLAN support needed): namespaces A10 and A20 hold the
TAP devices of two access ports (vlan=10, vlan=20), namespace BR the TAP of a trunk port, and a
squibnet-ping station sits on a third access port in VLAN 10. A10 pings the station; tcpdump on
the trunk sees every frame of it tagged VLAN 10, and on A20's device nothing; a frame a raw
socket sends tagged VLAN 20 into the trunk comes out of A20's device untagged, not A10's.

Then, where the kernel has VLAN filtering and 802.1Q devices: namespace A10 and A20 each hold a TAP device of an access port (vlan=10, vlan=20); namespace
BR holds a Linux bridge with vlan_filtering 1, a trunk TAP of squibnet's (trunk=10,20) as a
tagged bridge port, and VLAN sub-interfaces br0.10 and br0.20 with addresses on each VLAN. Each
access namespace pings the bridge on its own VLAN; the trunk carries 802.1Q tags (tcpdump -e on
the bridge side sees them); nothing of one VLAN reaches the other (tcpdump on the other access
device sees no frame at all while one VLAN pings). Everything made is removed, pass or fail.

Needs root, iproute2 (`ip`, `bridge`), ping and tcpdump; exits 77 without them."""

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_hostports as hp  # noqa: E402
from sntest import Daemon, run_tests  # noqa: E402

PID = os.getpid()


def ns_ip(net, dev, cidr):
    hp.sh("ip", "-n", net.name, "addr", "add", cidr, "dev", dev)
    hp.sh("ip", "-n", net.name, "link", "set", dev, "up")


def start_capture(net, dev):
    return subprocess.Popen(["ip", "netns", "exec", net.name, "tcpdump", "-l", "-nn", "-e", "-i", dev],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_capture(p):
    """The frames tcpdump printed: one header line each (hex dumps of unknown types left out)."""
    time.sleep(0.5)
    p.terminate()
    out, _ = p.communicate(timeout=5)
    return [line for line in out.splitlines() if line.strip() and not line[0].isspace()]


INJECT = r"""
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
f = b"\xff" * 6 + bytes.fromhex("525400aa0014") + struct.pack("!HH", 0x8100, 20) + struct.pack("!H", 0x88b5)
s.send(f + b"tagged-20-from-the-trunk".ljust(46, b"\0"))
"""


def test_access_and_trunk_on_kernel_taps():
    a10, a20, tr = hp.Netns("k10"), hp.Netns("k20"), hp.Netns("ktr")
    t10, t20, tt = f"snk10{PID}"[:15], f"snk20{PID}"[:15], f"snkt{PID}"[:15]
    st = None
    try:
        with Daemon(["stream,name=st,listen=unix:@s.sock,vlan=10",
                     f"tap,name=a10,ifname={t10},create=on,vlan=10",
                     f"tap,name=a20,ifname={t20},create=on,vlan=20",
                     f'tap,name=trunk,ifname={tt},create=on,trunk="10,20"']) as d:
            for dev, net in ((t10, a10), (t20, a20), (tt, tr)):
                hp.sh("ip", "link", "set", dev, "netns", net.name)
            ns_ip(a10, t10, "10.10.0.1/24")
            ns_ip(a20, t20, "10.20.0.1/24")
            hp.sh("ip", "-n", tr.name, "link", "set", tt, "up")
            st = hp.Stations(d.path("s.sock"))
            st.serve("10.10.0.2")
            trunk_cap, other_cap = start_capture(tr, tt), start_capture(a20, t20)
            time.sleep(0.5)
            r = a10.ping("10.10.0.2")
            assert r.returncode == 0, f"VLAN 10: TAP access port -> stream access port: {r.stdout}{r.stderr}"
            trunk, other = stop_capture(trunk_cap), stop_capture(other_cap)
            assert trunk, "tcpdump on the trunk saw nothing (the ARP broadcast floods VLAN 10)"
            assert all("vlan 10" in line for line in trunk), "a frame on the trunk without its tag:\n" + "\n".join(trunk)
            assert other == [], "VLAN 10's traffic reached the VLAN 20 device:\n" + "\n".join(other)
            # a tagged frame from the trunk side comes out of VLAN 20's device untagged
            c20, c10 = start_capture(a20, t20), start_capture(a10, t10)
            time.sleep(0.5)
            hp.sh(sys.executable, "-c", INJECT, tt, ns=tr.name)
            got20, got10 = stop_capture(c20), stop_capture(c10)
            assert len(got20) == 1 and "vlan" not in got20[0] and "0x88b5" in got20[0], got20
            assert got10 == [], got10
            assert d.ports()["trunk"]["stats"]["rx_frames"] >= 1
    finally:
        if st:
            st.stop()
        for net in (a10, a20, tr):
            net.cleanup()


def kernel_vlans():
    """Why this kernel cannot run the bridge test (no VLAN filtering or 802.1Q devices), or None."""
    probe = f"snvp{PID}"[:15]
    r = subprocess.run(["ip", "link", "add", probe, "type", "bridge", "vlan_filtering", "1"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return f"the kernel has no bridge VLAN filtering ({r.stderr.strip()})"
    r = subprocess.run(["ip", "link", "add", "link", probe, "name", probe[:12] + ".5", "type", "vlan", "id", "5"],
                       capture_output=True, text=True)
    subprocess.run(["ip", "link", "del", probe], capture_output=True)
    if r.returncode != 0:
        return f"the kernel has no 802.1Q VLAN devices ({r.stderr.strip()})"
    return None


def test_access_and_trunk_against_a_vlan_filtering_bridge():
    why = kernel_vlans()
    if why:
        print(f"skip test_access_and_trunk_against_a_vlan_filtering_bridge: {why}", flush=True)
        return
    a10, a20, br = hp.Netns("v10"), hp.Netns("v20"), hp.Netns("vbr")
    t10, t20, tt = f"snv10{PID}"[:15], f"snv20{PID}"[:15], f"snvt{PID}"[:15]
    try:
        with Daemon([f"tap,name=a10,ifname={t10},create=on,vlan=10",
                     f"tap,name=a20,ifname={t20},create=on,vlan=20",
                     f'tap,name=trunk,ifname={tt},create=on,trunk="10,20"']) as d:
            for dev, net in ((t10, a10), (t20, a20), (tt, br)):
                hp.sh("ip", "link", "set", dev, "netns", net.name)
            ns_ip(a10, t10, "10.10.0.1/24")
            ns_ip(a20, t20, "10.20.0.1/24")
            b = br.name
            hp.sh("ip", "-n", b, "link", "add", "br0", "type", "bridge", "vlan_filtering", "1")
            hp.sh("ip", "-n", b, "link", "set", tt, "master", "br0")
            hp.sh("ip", "-n", b, "link", "set", tt, "up")
            hp.sh("ip", "netns", "exec", b, "bridge", "vlan", "del", "dev", tt, "vid", "1")
            for vid in ("10", "20"):
                hp.sh("ip", "netns", "exec", b, "bridge", "vlan", "add", "dev", tt, "vid", vid)
                hp.sh("ip", "netns", "exec", b, "bridge", "vlan", "add", "dev", "br0", "vid", vid, "self")
                hp.sh("ip", "-n", b, "link", "add", "link", "br0", "name", "br0." + vid, "type", "vlan", "id", vid)
                ns_ip(br, "br0." + vid, f"10.{vid}.0.2/24")
            hp.sh("ip", "-n", b, "link", "set", "br0", "up")
            d.wait_ports(lambda p: all(p[n]["state"] == "up" for n in ("a10", "a20", "trunk")))

            # each VLAN reaches the bridge; the trunk side sees the right tag on every frame
            trunk_cap = start_capture(br, tt)
            other_cap = start_capture(a20, t20)
            time.sleep(0.5)
            r = a10.ping("10.10.0.2")
            assert r.returncode == 0, f"VLAN 10: access -> bridge: {r.stdout}{r.stderr}"
            trunk = stop_capture(trunk_cap)
            other = stop_capture(other_cap)
            assert trunk, "tcpdump on the trunk saw nothing"
            assert all("vlan 10" in line for line in trunk), "a frame on the trunk without its VLAN 10 tag:\n" + \
                "\n".join(trunk)
            assert other == [], "VLAN 10's traffic reached the VLAN 20 access port:\n" + "\n".join(other)

            other_cap = start_capture(a10, t10)
            time.sleep(0.5)
            r = a20.ping("10.20.0.2")
            assert r.returncode == 0, f"VLAN 20: access -> bridge: {r.stdout}{r.stderr}"
            other = stop_capture(other_cap)
            assert other == [], "VLAN 20's traffic reached the VLAN 10 access port:\n" + "\n".join(other)

            # the bridge pings back on each VLAN
            for vid, target in (("10", "10.10.0.1"), ("20", "10.20.0.1")):
                r = br.ping(target)
                assert r.returncode == 0, f"VLAN {vid}: bridge -> access: {r.stdout}{r.stderr}"
            # and the switch learned each station in its own VLAN only
            fdb = {(e["port"], e["vlan"]) for e in d.fdb()}
            assert ("a10", 10) in fdb and ("a20", 20) in fdb and ("trunk", 10) in fdb and ("trunk", 20) in fdb, fdb
            assert not any(p in ("a10", "a20") and v not in (10, 20) for p, v in fdb), fdb
            assert d.ports()["trunk"]["stats"]["drop_vlan"] == 0, d.ports()["trunk"]
    finally:
        for net in (a10, a20, br):
            net.cleanup()


def main():
    if os.geteuid() != 0:
        hp.skip("needs root (network namespaces, TAP devices, a Linux bridge)")
    for prog in ("ip", "bridge", "tcpdump", "timeout"):
        if not shutil.which(prog):
            hp.skip(f"`{prog}` is not installed")
    if shutil.which("ping"):
        hp.PING_CMD = ["ping"]
    elif shutil.which("busybox"):
        hp.PING_CMD = ["busybox", "ping"]
    else:
        hp.skip("no ping (iputils-ping or busybox) to run in the namespaces")
    r = subprocess.run(["ip", "netns", "add", f"snt-probe-{PID}"], capture_output=True, text=True)
    if r.returncode != 0:
        hp.skip(f"cannot create a network namespace: {r.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", f"snt-probe-{PID}"], capture_output=True)
    run_tests([test_access_and_trunk_on_kernel_taps, test_access_and_trunk_against_a_vlan_filtering_bridge])


if __name__ == "__main__":
    main()
