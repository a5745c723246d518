#!/usr/bin/env python3
"""802.1Q and per-port policy against the real daemon, byte by byte, with raw stream stations:
access and trunk ports (tags pushed and popped exactly, priority kept, VLANs kept apart), native
VLANs, QinQ (dot1q-tunnel into an 802.1ad trunk) and the MTU after a push, isolated ports, flood
flags, per-port MAC caps, static FDB entries, and the same settings changed at run time
(`port set`, `fdb add/del/find`, `set`). Bad keys are refused with a message naming the key."""

import struct
import time

from sntest import BROADCAST, Daemon, StreamClient, assert_specs_refused, eth, mac, mac_str, run_tests

ET = 0x88B5  # IEEE 802 local experimental


def tagged(dst, src, vid, payload=b"", tpid=0x8100, pcp=0, size=None, inner=ET):
    f = dst + src + struct.pack("!HH", tpid, pcp << 13 | vid) + struct.pack("!H", inner) + payload
    return f + bytes(max(0, (size or 0) - len(f)))


def untag(frame):
    """The frame as an access port puts it on the wire: without its first tag."""
    return frame[:12] + frame[16:]


def tag(frame, vid, tpid=0x8100, pcp=0):
    return frame[:12] + struct.pack("!HH", tpid, pcp << 13 | vid) + frame[12:]


LAYOUT = [
    "stream,name=a10,listen=unix:@a10.sock,vlan=10",
    "stream,name=b10,listen=unix:@b10.sock,vlan=10",
    "stream,name=a20,listen=unix:@a20.sock,vlan=20",
    'stream,name=t,listen=unix:@t.sock,trunk="10,20"',
    "stream,name=n,listen=unix:@n.sock,trunk=10+20,native=10",
    "stream,name=x,listen=unix:@x.sock",
]


class Net:
    """The daemon with LAYOUT and one client on each listener, keyed by listener name."""

    def __init__(self, extra_ports=(), extra=()):
        self.d = Daemon(LAYOUT + list(extra_ports), extra=list(extra))
        self.c = {}
        for spec in LAYOUT + list(extra_ports):
            name = spec.split("name=")[1].split(",")[0]
            self.c[name] = StreamClient(self.d.path(name + ".sock"))
        self.d.wait_ports(lambda p: sum(1 for x in p.values() if x["state"] == "up") == len(self.c))

    def quiet(self, *names):
        for n in names:
            got = self.c[n].recv_all(0.2)
            assert got == [], f"{n} got {len(got)} frames it must not: {got[:2]}"

    def stats(self, listener):
        return self.d.ports()[listener + ".1"]["stats"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.d.__exit__(*exc)


def test_access_to_trunk_pushes_the_tag():
    with Net() as n:
        f = eth(BROADCAST, mac(1), b"from-a10", ethertype=ET)
        n.c["a10"].send(f)
        assert n.c["t"].recv() == tag(f, 10)
        assert n.c["b10"].recv() == f, "same VLAN, access to access: untagged"
        assert n.c["n"].recv() == f, "native VLAN 10 leaves a trunk untagged"
        assert n.c["x"].recv() == tag(f, 10), "a transparent port carries VLAN 10 tagged"
        n.quiet("a20", "a10")


def test_trunk_to_access_pops_the_tag_and_keeps_vlans_apart():
    with Net() as n:
        f = tagged(BROADCAST, mac(2), 20, b"from-t-vlan20", pcp=5)
        n.c["t"].send(f)
        assert n.c["a20"].recv() == untag(f)
        assert n.c["n"].recv() == f, "trunk to trunk: the tag, priority included, as it came"
        assert n.c["x"].recv() == f
        n.quiet("a10", "b10", "t")


def test_priority_kept_when_retagged():
    with Net() as n:
        # a priority tag (VID 0) on an access port is its VLAN with that priority
        f = tagged(BROADCAST, mac(1), 0, b"prio", pcp=6)
        n.c["a10"].send(f)
        assert n.c["t"].recv() == tagged(BROADCAST, mac(1), 10, b"prio", pcp=6)
        assert n.c["b10"].recv() == untag(f)


def test_refused_frames_are_counted():
    with Net() as n:
        n.c["t"].send(tagged(BROADCAST, mac(2), 30, b"not-carried"))
        n.c["t"].send(eth(BROADCAST, mac(2), b"untagged-no-native"))
        n.c["a10"].send(tagged(BROADCAST, mac(1), 10, b"tagged-on-access"))
        n.quiet("a10", "b10", "a20", "n", "x")
        assert n.stats("t")["drop_vlan"] == 2, n.stats("t")
        assert n.stats("a10")["drop_vlan"] == 1, n.stats("a10")
        # the native VLAN takes untagged frames on its trunk
        f = eth(BROADCAST, mac(3), b"untagged-native", ethertype=ET)
        n.c["n"].send(f)
        assert n.c["a10"].recv() == f
        assert n.c["t"].recv() == tag(f, 10)
        n.quiet("a20")


def test_learning_is_per_vlan():
    with Net() as n:
        n.c["a10"].send(eth(BROADCAST, mac(1), b"hi"))
        for c in ("b10", "t", "n", "x"):
            n.c[c].recv_all(0.2)
        # mac(1) is known in VLAN 10 only: in VLAN 20 it is unknown and floods VLAN 20
        f = tagged(mac(1), mac(2), 20, b"to-mac1-in-vlan20")
        n.c["t"].send(f)
        assert n.c["a20"].recv() == untag(f)
        assert n.c["n"].recv() == f and n.c["x"].recv() == f
        n.quiet("a10", "b10")
        # in VLAN 10 it goes to a10 alone
        g = tagged(mac(1), mac(2), 10, b"to-mac1-in-vlan10")
        n.c["t"].send(g)
        assert n.c["a10"].recv() == untag(g)
        n.quiet("b10", "a20", "n", "x")
        fdb = {(e["mac"], e["vlan"]): e["port"] for e in n.d.fdb()}
        assert fdb[(mac_str(mac(1)), 10)] == "a10.1" and fdb[(mac_str(mac(2)), 20)] == "t.1", fdb


def test_native_tagged_and_qinq():
    ports = ["stream,name=nt,listen=unix:@nt.sock,trunk=10,native=10,native-tagged=on",
             "stream,name=tun,listen=unix:@tun.sock,vlan=10,tpid=0x88a8",
             "stream,name=s,listen=unix:@s.sock,trunk=10,tpid=0x88a8,mtu=1504",
             "stream,name=s1500,listen=unix:@s1500.sock,trunk=10,tpid=0x88a8"]
    with Net(ports) as n:
        f = eth(BROADCAST, mac(1), b"x", ethertype=ET)
        n.c["a10"].send(f)
        assert n.c["nt"].recv() == tag(f, 10), "native-tagged: the native VLAN leaves tagged"
        assert n.c["s"].recv() == tag(f, 10, tpid=0x88a8)
        assert n.c["tun"].recv() == f, "the tunnel port is in VLAN 10 too"
        n.c["s1500"].recv_all(0.2)
        # a customer's C-tagged frame into the tunnel: one S-tag around it, kept whole
        c = tagged(BROADCAST, mac(5), 100, b"customer", size=1518)
        n.c["tun"].send(c)
        assert n.c["s"].recv() == tag(c, 10, tpid=0x88a8), "dot1q-tunnel: an outer 802.1ad tag"
        assert n.c["a10"].recv() == c, "VLAN 10 members get the customer frame as it came"
        for other in ("b10", "n", "nt", "t", "x"):
            n.c[other].recv_all(0.2)
        # 1518 + 4 bytes do not fit an MTU of 1500 with one tag allowed: dropped and counted
        assert n.c["s1500"].recv_all(0.3) == []
        assert n.stats("s1500")["drop_oversize"] == 1, n.stats("s1500")
        # and back: the S-tag comes off at the tunnel
        n.c["s"].send(tag(c, 10, tpid=0x88a8))
        assert n.c["tun"].recv() == c


def test_isolated_ports():
    ports = ["stream,name=i1,listen=unix:@i1.sock,isolated=on",
             "stream,name=i2,listen=unix:@i2.sock,isolated=on"]
    with Net(ports) as n:
        f = eth(BROADCAST, mac(11), b"from-i1")
        n.c["i1"].send(f)
        assert n.c["x"].recv() == f, "an isolated port reaches the others"
        n.quiet("i2")
        n.c["i2"].send(eth(BROADCAST, mac(12), b"from-i2"))
        n.c["x"].recv_all(0.2)
        n.c["i1"].recv_all(0.2)
        # known unicast between the two isolated ports: never delivered
        n.c["i1"].send(eth(mac(12), mac(11), b"i1-to-i2"))
        n.quiet("i2")
        assert n.d.ctl("stats")["switch"]["isolated"] == 1
        # the gateway reaches both, and they reach it
        n.c["x"].send(eth(mac(11), mac(20), b"gw-to-i1"))
        assert n.c["i1"].recv()[14:22] == b"gw-to-i1"
        n.c["i2"].send(eth(mac(20), mac(12), b"i2-to-gw"))
        assert n.c["x"].recv()[14:22] == b"i2-to-gw"


def test_flood_flags_and_max_macs():
    ports = ["stream,name=nf,listen=unix:@nf.sock,flood=off",
             "stream,name=nm,listen=unix:@nm.sock,mcast-flood=off",
             "stream,name=cap,listen=unix:@cap.sock,max-macs=2"]
    with Net(ports) as n:
        n.c["nf"].send(eth(BROADCAST, mac(31), b"hello"))
        for c in ("x", "nm", "cap"):
            n.c[c].recv_all(0.2)
        n.c["x"].send(eth(mac(99), mac(30), b"unknown-unicast"))
        n.quiet("nf")
        assert n.c["nm"].recv()[14:29] == b"unknown-unicast"
        n.c["cap"].recv_all(0.2)
        n.c["x"].send(eth(b"\x01\x00\x5e\x00\x00\x01", mac(30), b"multicast"))
        n.quiet("nm")
        assert n.c["nf"].recv()[14:23] == b"multicast"
        n.c["cap"].recv_all(0.2)
        n.c["x"].send(eth(BROADCAST, mac(30), b"broadcast"))
        assert n.c["nf"].recv()[14:23] == b"broadcast" and n.c["nm"].recv()[14:23] == b"broadcast"
        n.c["x"].send(eth(mac(31), mac(30), b"known"))
        assert n.c["nf"].recv()[14:19] == b"known", "known unicast still reaches a flood=off port"
        for i in range(3):
            n.c["cap"].send(eth(BROADCAST, mac(40 + i), b"m"))
        time.sleep(0.2)
        assert n.stats("cap")["fdb_entries"] == 2 and n.stats("cap")["fdb_refused"] == 1, n.stats("cap")


def test_static_entries_never_move_or_age():
    with Net(extra=["--fdb-aging", "1"]) as n:
        r = n.d.ctl("fdb", "add", mac_str(mac(50)), "a10.1", "vlan=10")
        assert r is not None
        # a frame from that MAC elsewhere does not move it
        n.c["b10"].send(eth(BROADCAST, mac(50), b"impostor"))
        assert n.c["a10"].recv()[14:22] == b"impostor"
        n.c["t"].send(tagged(mac(50), mac(2), 10, b"to-50"))
        assert n.c["a10"].recv()[14:19] == b"to-50"
        n.quiet("b10")
        time.sleep(1.5)
        found = n.d.ctl("fdb", "find", mac_str(mac(50)))["fdb"]
        assert [(e["port"], e["vlan"], e["static"]) for e in found] == [("a10.1", 10, True)], found
        assert all(e["mac"] != mac_str(mac(2)) for e in n.d.fdb()), "a learned entry outlived --fdb-aging 1"
        n.d.ctl("fdb", "del", mac_str(mac(50)), "vlan=10")
        assert n.d.ctl("fdb", "find", mac_str(mac(50)))["fdb"] == []
        r = n.d.ctl_text("fdb", "del", mac_str(mac(50)), "vlan=10")
        assert r.returncode != 0 and "no entry" in r.stderr, r.stderr
        r = n.d.ctl_text("fdb", "add", "01:00:5e:00:00:01", "a10.1")
        assert r.returncode != 0 and "multicast" in r.stderr, r.stderr
        r = n.d.ctl_text("fdb", "add", "52:54:00:zz:00:01", "a10.1")
        assert r.returncode != 0 and "not a MAC address" in r.stderr, r.stderr


def test_settings_at_run_time():
    with Net() as n:
        for i in range(6):
            n.c["x"].send(eth(BROADCAST, mac(60 + i), b"m"))
        time.sleep(0.2)
        assert len(n.d.fdb()) == 6
        s = n.d.ctl("set", "fdb-max=4", "fdb-aging=1")["settings"]
        assert s["fdb_max"] == 4 and s["fdb_aging"] == 1, s
        assert len(n.d.fdb()) <= 4
        time.sleep(1.3)
        assert n.d.fdb() == [], "entries outlived fdb-aging=1 set at run time"
        r = n.d.ctl_text("set", "fdb-max=0")
        assert r.returncode != 0 and "fdb-max" in r.stderr, r.stderr
        r = n.d.ctl_text("set", "bogus=1")
        assert r.returncode != 0 and "bogus" in r.stderr, r.stderr


def test_port_set_at_run_time():
    with Net() as n:
        ports = n.d.ports()
        assert ports["a10"]["vlan"] == "access 10" and ports["t.1"]["vlan"] == "trunk 10,20", ports["t.1"]
        assert ports["x"]["vlan"] == "transparent"
        n.d.ctl("port", "set", "t", "trunk=30,40-42")
        assert n.d.ports()["t.1"]["vlan"] == "trunk 30,40-42", "a listener's clients follow it"
        n.c["t"].send(tagged(BROADCAST, mac(2), 20, b"vlan20-now-refused"))
        n.quiet("a20")
        n.c["t"].send(tagged(BROADCAST, mac(2), 41, b"vlan41"))
        assert n.c["x"].recv() == tagged(BROADCAST, mac(2), 41, b"vlan41")
        n.d.ctl("port", "set", "a10", "vlan=none")
        f = eth(BROADCAST, mac(1), b"now-transparent")
        n.c["a10"].send(f)
        assert n.c["x"].recv() == f
        n.quiet("b10")
        r = n.d.ctl_text("port", "set", "a10", "mtu=9000")
        assert r.returncode != 0 and "mtu" in r.stderr, r.stderr
        r = n.d.ctl_text("port", "set", "nosuch", "vlan=3")
        assert r.returncode != 0 and "nosuch" in r.stderr, r.stderr


def test_bad_vlan_keys_refused():
    assert_specs_refused([
        ("stream,listen=unix:@s.sock,vlan=0", "vlan"),
        ("stream,listen=unix:@s.sock,vlan=4095", "vlan"),
        ("stream,listen=unix:@s.sock,vlan=ten", "vlan"),
        ("stream,listen=unix:@s.sock,trunk=20-10", "trunk"),
        ('stream,listen=unix:@s.sock,trunk="10,,20"', "trunk"),
        ("stream,listen=unix:@s.sock,trunk=0", "trunk"),
        ("stream,listen=unix:@s.sock,trunk=10,native=5,vlan=3", "trunk"),
        ("stream,listen=unix:@s.sock,native=5", "native"),
        ("stream,listen=unix:@s.sock,trunk=10,native-tagged=on", "native-tagged"),
        ("stream,listen=unix:@s.sock,vlan=3,tpid=0x1234", "tpid"),
        ("stream,listen=unix:@s.sock,tpid=0x88a8", "tpid"),
        ("stream,listen=unix:@s.sock,isolated=maybe", "isolated"),
        ("stream,listen=unix:@s.sock,max-macs=-1", "max-macs"),
    ])


if __name__ == "__main__":
    run_tests([
        test_access_to_trunk_pushes_the_tag,
        test_trunk_to_access_pops_the_tag_and_keeps_vlans_apart,
        test_priority_kept_when_retagged,
        test_refused_frames_are_counted,
        test_learning_is_per_vlan,
        test_native_tagged_and_qinq,
        test_isolated_ports,
        test_flood_flags_and_max_macs,
        test_static_entries_never_move_or_age,
        test_settings_at_run_time,
        test_port_set_at_run_time,
        test_bad_vlan_keys_refused,
    ])
