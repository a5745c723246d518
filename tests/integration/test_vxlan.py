#!/usr/bin/env python3
"""Integration tests of the vxlan and geneve ports against the real daemon, without root.

The daemon's tunnel port listens on 127.0.0.1:P; the remote VTEPs are this script's UDP sockets
on 127.0.0.2:P and 127.0.0.3:P (a learned MAC's frames go to the tunnel's UDP port on the
VTEP's address, as Linux sends them), 127.0.0.4 and up play VTEPs nobody configured. Stations
are stream clients of the same daemon. The tests check the datagrams on the wire byte by byte,
what squibnetctl shows (fdb with DST, tunnel show, the counters), static entries and the flood
list changed at run time, hostile underlay input (garbage, bad headers, unknown VNIs, inner
runts, unknown VTEPs, a flood of source MACs) counted without disturbing the stations, SPEC
errors, and two daemons joined by VXLAN pinging with squibnet-ping.

Environment: SQUIBNET, SQUIBNETCTL, SQUIBNET_PING (default build/tools/). Exit status: 0 passed,
1 failed, 77 skipped (a build without the vxlan kind).
"""
import json
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sntest import (SKIP, BROADCAST, Daemon, StreamClient, assert_specs_refused, binary, eth, mac,  # noqa: E402
                    mac_str, run_tests)

FLAGS = 0x08000000


def free_port():
    """A UDP port free on 127.0.0.1 to 127.0.0.9."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        try:
            held = []
            for i in range(1, 10):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(t)
                t.bind((f"127.0.0.{i}", p))
            return p
        except OSError:
            pass
        finally:
            for t in held:
                t.close()
    raise RuntimeError("no free UDP port")


def vxlan_hdr(vni, flags=FLAGS, rsvd=0):
    return struct.pack("!II", flags, vni << 8 | rsvd)


class Vtep:
    """A remote VTEP: a UDP socket on @ip:@port that sends and receives tunnel datagrams."""

    def __init__(self, ip, port, target_port):
        self.ip = ip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.to = ("127.0.0.1", target_port)

    def send_raw(self, data):
        self.sock.sendto(data, self.to)

    def send(self, vni, frame):
        self.send_raw(vxlan_hdr(vni) + frame)

    def recv_all(self, timeout=0.3):
        """[(datagram, (ip, port))] until the socket has been quiet for @timeout."""
        out = []
        while True:
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return out
            out.append(self.sock.recvfrom(65536))

    def close(self):
        self.sock.close()


class Setup:
    """A daemon with a stream listener and a tunnel port on 127.0.0.1:P, and VTEPs .2 and .3."""

    def __init__(self, extra="", remotes="127.0.0.2+127.0.0.3", kind="vxlan", args=(), listen=True):
        self.port = free_port()
        spec = f"{kind},name=vx,local=127.0.0.1:{self.port},vni=42,mtu=1500"
        if remotes:
            spec += f",remote={remotes}"
        if extra:
            spec += "," + extra
        ports = ([f"stream,name=st,listen=unix:@st.sock"] if listen else []) + [spec]
        self.d = Daemon(ports, extra=args)
        self.v2 = Vtep("127.0.0.2", self.port, self.port)
        self.v3 = Vtep("127.0.0.3", self.port, self.port)
        self.clients = []

    def client(self):
        """A stream client of "st", once the switch has it as a port (the switch accepts it
        from its loop: a datagram sent before that would find no one to flood to)."""
        n = len(self.clients) + 1
        c = StreamClient(self.d.path("st.sock"))
        self.clients.append(c)
        self.d.wait_ports(lambda p: f"st.{n}" in p)
        return c

    def tunnel(self):
        return self.d.ctl("tunnel", "show", "vx")["tunnels"][0]

    def counters(self):
        return self.tunnel()["counters"]

    def vx(self):
        return self.d.ports()["vx"]

    def close(self):
        try:
            for c in self.clients:
                c.close()
            self.v2.close()
            self.v3.close()
        finally:
            close_daemon(self.d)


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


def stop_clean(d):
    rc = d.stop()
    assert rc == 0, f"squibnet exited {rc}: {d.stderr.strip()}"
    for bad in ("Sanitizer", "runtime error:"):
        assert bad not in d.stderr, f"squibnet reported: {d.stderr.strip()}"


def settle(s, what, pred, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        v = what()
        if pred(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached the expected state: {v}")
        time.sleep(0.02)


# ---- tests ----


def test_encap_decap_learning():
    """A station's broadcast reaches both remotes as well-formed VXLAN; a remote's frame reaches
    the station, its MAC is learned behind the VTEP (fdb shows DST) and the answer goes to that
    VTEP only."""
    s = Setup()
    try:
        a = s.client()
        a.send(eth(BROADCAST, mac(1), b"hello", size=60))
        for v in (s.v2, s.v3):
            got = v.recv_all()
            assert len(got) == 1, f"{v.ip}: {len(got)} datagrams"
            data, (ip, sport) = got[0]
            assert data[:8] == vxlan_hdr(42), data[:8].hex()
            assert data[8:] == eth(BROADCAST, mac(1), b"hello", size=60), data.hex()
            assert ip == "127.0.0.1" and 32768 <= sport <= 60999, (ip, sport)
        # M = mac(9) behind 127.0.0.3
        s.v3.send(42, eth(BROADCAST, mac(9), b"from-m", size=80))
        f = a.recv(2)
        assert f == eth(BROADCAST, mac(9), b"from-m", size=80), f
        fdb = {e["mac"]: e for e in s.d.fdb()}
        assert fdb[mac_str(mac(9))]["port"] == "vx" and fdb[mac_str(mac(9))]["dst"] == "127.0.0.3", fdb
        assert "dst" not in fdb[mac_str(mac(1))], fdb
        text = s.d.ctl_text("fdb").stdout
        assert text.split("\n")[0].split() == ["MAC", "VLAN", "PORT", "TYPE", "AGE", "DST"], text
        assert "127.0.0.3" in text, text
        a.send(eth(mac(9), mac(1), b"answer", size=60))
        assert [d[8:] for d, _ in s.v3.recv_all()] == [eth(mac(9), mac(1), b"answer", size=60)]
        assert s.v2.recv_all() == []
        t = s.tunnel()
        assert t["vni"] == 42 and t["kind"] == "vxlan" and t["flood"] == ["127.0.0.2", "127.0.0.3"], t
        assert t["local"] == f"127.0.0.1:{s.port}" and t["learning"] is True, t
        assert [(r["mac"], r["dst"], r["static"]) for r in t["remotes"]] == [(mac_str(mac(9)), "127.0.0.3", False)], t
        st = s.vx()["stats"]
        assert st["rx_frames"] == 1 and st["tx_frames"] == 2, st
        assert "vni 42" in s.vx()["peer"] and "remotes=1" in s.vx()["peer"], s.vx()["peer"]
        stop_clean(s.d)
    finally:
        s.close()


def test_static_entries_and_flood_list():
    """fdb add MAC vx dst=IP pins a MAC to a VTEP (EVPN's type-2 routes); fdb del lets go of it;
    tunnel flood add/del edit the head-end replication list (EVPN's type-3 routes)."""
    s = Setup(extra="learning=off")
    try:
        a = s.client()
        a.send(eth(BROADCAST, mac(1), size=60))
        s.v2.recv_all(0.1)
        s.v3.recv_all(0.1)
        m = mac_str(mac(7))
        s.d.ctl("fdb", "add", m, "vx", "dst=127.0.0.3")
        e = [x for x in s.d.fdb() if x["mac"] == m][0]
        assert e["static"] and e["dst"] == "127.0.0.3" and e["port"] == "vx", e
        a.send(eth(mac(7), mac(1), b"pinned", size=60))
        assert len(s.v3.recv_all()) == 1 and s.v2.recv_all() == []
        # the pinned VTEP is known: its frames are taken although learning is off
        s.v3.send(42, eth(mac(1), mac(7), b"back", size=60))
        assert a.recv(2) == eth(mac(1), mac(7), b"back", size=60)
        # an unknown VTEP's are not
        v4 = Vtep("127.0.0.4", s.port, s.port)
        v4.send(42, eth(mac(1), mac(8), b"stranger", size=60))
        assert a.recv(0.3) is None
        assert s.counters()["unknown_vtep"] == 1, s.counters()
        # the pin goes with the entry
        s.d.ctl("fdb", "del", m)
        a.send(eth(mac(7), mac(1), size=60))
        assert len(s.v2.recv_all()) == 1 and len(s.v3.recv_all()) == 1
        r = s.d.ctl_text("fdb", "add", m, "vx", "dst=fd00::1")
        assert r.returncode == 1 and "IPv4" in r.stderr, r.stderr
        r = s.d.ctl_text("fdb", "add", "00:00:00:00:00:00", "vx", "dst=127.0.0.3")
        assert r.returncode == 1 and "tunnel flood add" in r.stderr, r.stderr
        # the flood list at run time
        assert s.d.ctl("tunnel", "flood", "del", "vx", "127.0.0.3") == {"version": 1}
        a.send(eth(BROADCAST, mac(1), size=60))
        assert len(s.v2.recv_all()) == 1 and s.v3.recv_all() == []
        s.d.ctl("tunnel", "flood", "add", "vx", "127.0.0.4")
        a.send(eth(BROADCAST, mac(1), size=60))
        assert len(s.v2.recv_all()) == 1 and s.v3.recv_all() == []
        got = v4.recv_all()
        assert len(got) == 1 and got[0][0][:8] == vxlan_hdr(42), got
        assert s.tunnel()["flood"] == ["127.0.0.2", "127.0.0.4"], s.tunnel()
        # a flood remote is known too
        v4.send(42, eth(mac(1), mac(8), b"now known", size=60))
        assert a.recv(2) == eth(mac(1), mac(8), b"now known", size=60)
        for args, word in ((("tunnel", "flood", "add", "vx", "127.0.0.2"), "already"),
                           (("tunnel", "flood", "del", "vx", "127.0.0.9"), "not on the flood list"),
                           (("tunnel", "flood", "add", "vx", "239.1.1.1"), "group="),
                           (("tunnel", "flood", "add", "st", "127.0.0.9"), "not a tunnel port"),
                           (("tunnel", "show", "nosuch"), "no port")):
            r = s.d.ctl_text(*args)
            assert r.returncode == 1 and word in r.stderr, (args, r.stderr)
        text = s.d.ctl_text("tunnel", "show").stdout
        assert "flood" in text and "127.0.0.4" in text, text
        v4.close()
        stop_clean(s.d)
    finally:
        s.close()


def test_hostile_underlay():
    """Garbage, malformed headers, unknown VNIs, inner runts and strangers on the tunnel socket are
    dropped and counted exactly; two stations on the switch keep talking all the while, and the
    switch's table does not grow from the underlay."""
    s = Setup(extra="learning=off", args=["--fdb-max", "64"])
    try:
        a, b = s.client(), s.client()
        a.send(eth(BROADCAST, mac(1), size=60))
        b.send(eth(BROADCAST, mac(2), size=60))
        a.recv_all(0.2)
        b.recv_all(0.2)
        rnd = random.Random(7)
        sent = {"short": 0, "bad": 0, "vni": 0, "runt": 0, "stranger": 0}
        strangers = [Vtep(f"127.0.0.{i}", 0, s.port) for i in range(4, 10)]
        for i in range(3000):
            k = i % 5
            if k == 0:
                s.v2.send_raw(bytes(rnd.randrange(256) for _ in range(rnd.randrange(8))))
                sent["short"] += 1
            elif k == 1:
                hdr = vxlan_hdr(42, flags=rnd.choice([0, 0x0C000000, 0x08000001, 0x88000000, 0x08FF0000]))
                s.v2.send_raw(hdr + eth(BROADCAST, mac(100 + i), size=60))
                sent["bad"] += 1
            elif k == 2:
                s.v2.send(rnd.choice([0, 41, 43, 0xFFFFFF]), eth(BROADCAST, mac(100 + i), size=60))
                sent["vni"] += 1
            elif k == 3:
                s.v2.send(42, eth(BROADCAST, mac(100 + i))[:rnd.randrange(14)])
                sent["runt"] += 1
            else:
                rnd.choice(strangers).send(42, eth(BROADCAST, mac(100 + i), size=60))
                sent["stranger"] += 1
            if i % 100 == 0:
                a.send(eth(mac(2), mac(1), b"still here", size=60))
                assert b.recv(2) == eth(mac(2), mac(1), b"still here", size=60), f"round {i}"
        c = settle(s, s.counters, lambda c: c["unknown_vtep"] >= sent["stranger"])
        assert c["short_packets"] == sent["short"], (c, sent)
        assert c["bad_header"] == sent["bad"], (c, sent)
        assert c["unknown_vni"] == sent["vni"], (c, sent)
        assert c["unknown_vtep"] == sent["stranger"], (c, sent)
        vx = s.vx()["stats"]
        assert vx["drop_runt"] == sent["runt"] and vx["rx_frames"] == 0, vx
        assert c["remotes"] == 0, c
        st = s.d.ctl("stats")["switch"]
        assert st["fdb_entries"] == 2, st
        # and a good datagram still goes through
        s.v2.send(42, eth(mac(1), mac(3), b"good", size=60))
        assert a.recv(2) == eth(mac(1), mac(3), b"good", size=60)
        for v in strangers:
            v.close()
        stop_clean(s.d)
    finally:
        s.close()


def test_source_mac_flood_is_capped():
    """A remote sending from thousands of source MACs fills the port's table to the switch's
    per-port cap and no further; the refusals are counted, frames still pass."""
    s = Setup(args=["--fdb-port-max", "100"])
    try:
        a = s.client()
        for i in range(1000):
            s.v2.send(42, eth(mac(1), mac(1000 + i), size=60))
        c = settle(s, s.counters, lambda c: c["remotes"] + c["learn_refused"] >= 1000)
        assert c["remotes"] == 100 and c["learn_refused"] == 900, c
        got = a.recv_all(0.3)
        assert len(got) == 1000, len(got)
        stop_clean(s.d)
    finally:
        s.close()


def test_geneve():
    """The same through a geneve port: its header out, options skipped on the way in, a
    critical option refused."""
    s = Setup(kind="geneve")
    try:
        a = s.client()
        a.send(eth(BROADCAST, mac(1), size=60))
        data, _ = s.v2.recv_all()[0]
        assert data[:8] == bytes.fromhex("0000655800002a00"), data[:8].hex()
        opt = bytes.fromhex("0101010100112233")  # class 0x0101, type 1, 1 word
        s.v2.send_raw(bytes([2, 0]) + bytes.fromhex("6558") + struct.pack("!I", 42 << 8) + opt +
                      eth(mac(1), mac(5), b"opts", size=60))
        assert a.recv(2) == eth(mac(1), mac(5), b"opts", size=60)
        crit = bytes.fromhex("0101810000000000")
        s.v2.send_raw(bytes([2, 0]) + bytes.fromhex("6558") + struct.pack("!I", 42 << 8) + crit +
                      eth(mac(1), mac(5), size=60))
        assert a.recv(0.3) is None
        assert s.counters()["critical"] == 1, s.counters()
        stop_clean(s.d)
    finally:
        s.close()


def test_port_add_del_at_run_time():
    """Tunnel ports come and go through squibnetctl; VNIs on one address share a socket and a
    VNI is taken once."""
    s = Setup()
    try:
        r = s.d.ctl("port", "add", f"vxlan,name=vx43,local=127.0.0.1:{s.port},vni=43,remote=127.0.0.3")
        assert r["added"] == "vx43", r
        r = s.d.ctl_text("port", "add", f"vxlan,name=again,local=127.0.0.1:{s.port},vni=43")
        assert r.returncode == 1 and "vx43" in r.stderr, r.stderr
        a = s.client()
        s.v3.send(43, eth(BROADCAST, mac(6), size=60))
        assert a.recv(2) == eth(BROADCAST, mac(6), size=60)
        assert s.d.ports()["vx43"]["stats"]["rx_frames"] == 1
        s.d.ctl("port", "del", "vx")
        s.v3.send(43, eth(BROADCAST, mac(6), size=60))
        assert a.recv(2) == eth(BROADCAST, mac(6), size=60)
        s.d.ctl("port", "del", "vx43")
        # the socket went with the last VNI: the address is free again
        t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t.bind(("127.0.0.1", s.port))
        t.close()
        stop_clean(s.d)
    finally:
        s.close()


def test_config_file_pins():
    """A configuration file pins a MAC behind the tunnel port to a VTEP (fdb MAC vx dst=IP);
    save writes the dst= back; a reload with another dst= moves the pin; a dst= behind a port
    that is no tunnel is refused with its line."""
    p = free_port()
    tmp = tempfile.mkdtemp(prefix="sn-vxconf-")
    conf = os.path.join(tmp, "sn.conf")
    m = mac_str(mac(7))

    def write(dst, extra=""):
        with open(conf, "w") as f:
            f.write(f"port stream,name=st,listen=unix:{tmp}/st.sock\n"
                    f"port vxlan,name=vx,local=127.0.0.1:{p},vni=42,remote=127.0.0.2+127.0.0.3\n"
                    f"fdb {m} vx dst={dst}\n" + extra)

    write("127.0.0.3")
    d = Daemon([], extra=["--config", conf], tmp=tmp)
    try:
        e = [x for x in d.fdb() if x["mac"] == m]
        assert len(e) == 1 and e[0]["static"] and e[0].get("dst") == "127.0.0.3", e
        saved = d.ctl_text("save", "-").stdout
        assert f"fdb {m} vx dst=127.0.0.3\n" in saved, saved
        write("127.0.0.2")
        r = d.ctl_text("reload")
        assert r.returncode == 0, r.stderr
        e = [x for x in d.fdb() if x["mac"] == m]
        assert e and e[0].get("dst") == "127.0.0.2", e
        write("127.0.0.2", f"port stream,name=up,connect=unix:{tmp}/nobody.sock\n"
                           f"fdb {mac_str(mac(8))} up dst=127.0.0.9\n")
        r = d.ctl_text("reload")
        assert r.returncode != 0 and ":5:" in r.stderr and "tunnel" in r.stderr, (r.stdout, r.stderr)
        stop_clean(d)
    finally:
        close_daemon(d)
        shutil.rmtree(tmp, ignore_errors=True)


def test_spec_errors():
    p = free_port()
    assert_specs_refused([
        ("vxlan,vni=1", "local"),
        (f"vxlan,local=127.0.0.1:{p}", "vni"),
        (f"vxlan,local=127.0.0.1:{p},vni=99999999", "vni"),
        (f"vxlan,local=127.0.0.1:{p},vni=1,remote=bogus", "remote"),
        (f"vxlan,local=127.0.0.1:{p},vni=1,group=239.1.1.1", "dev"),
        (f"vxlan,local=127.0.0.1:{p},vni=1,udp-csum=perhaps", "udp-csum"),
        (f"geneve,local=127.0.0.1:{p},vni=1,frob=1", "frob"),
        ("vxlan,local=192.0.2.1,vni=1", "no interface"),
    ])


def test_two_daemons():
    """Two switches joined by VXLAN over loopback addresses, a squibnet-ping station on each."""
    ping = binary("SQUIBNET_PING", "tools/squibnet-ping")
    p = free_port()
    da = Daemon(["stream,name=st,listen=unix:@st.sock", f"vxlan,name=vx,local=127.0.0.1:{p},vni=7,remote=127.0.0.2"])
    db = Daemon(["stream,name=st,listen=unix:@st.sock", f"vxlan,name=vx,local=127.0.0.2:{p},vni=7,remote=127.0.0.1"])
    server = None
    try:
        server = subprocess.Popen([ping, "--connect", "unix:" + db.path("st.sock"), "--ip", "10.9.0.2/24",
                                   "--serve", "0", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        r = subprocess.run([ping, "--connect", "unix:" + da.path("st.sock"), "--ip", "10.9.0.1/24", "--ping",
                            "10.9.0.2", "--count", "5", "--interval", "0.1", "--timeout", "2", "--size", "1400",
                            "--json"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"ping failed: {r.stdout} {r.stderr}"
        j = json.loads(r.stdout)
        assert j["received"] == 5, j
        fa = {e["mac"]: e for e in da.fdb()}
        assert any(e["port"] == "vx" and e.get("dst") == "127.0.0.2" for e in fa.values()), fa
        stop_clean(da)
        stop_clean(db)
    finally:
        if server and server.poll() is None:
            server.kill()
            server.wait()
        close_daemon(da)
        close_daemon(db)


def main():
    sq = binary("SQUIBNET", "tools/squibnet")
    r = subprocess.run([sq, "--help"], capture_output=True, text=True, timeout=10)
    if "vxlan," not in r.stdout + r.stderr:
        print("skip: this build has no vxlan ports", flush=True)
        sys.exit(SKIP)
    run_tests([test_encap_decap_learning, test_static_entries_and_flood_list, test_hostile_underlay,
               test_source_mac_flood_is_capped, test_geneve, test_port_add_del_at_run_time, test_config_file_pins,
               test_spec_errors,
               test_two_daemons])


if __name__ == "__main__":
    main()
