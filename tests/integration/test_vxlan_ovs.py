#!/usr/bin/env python3
"""Interop of squibnet's vxlan and geneve ports with Open vSwitch's userspace datapath, in
network namespaces (root).

The lab of test_vxlan_netns.py (an underlay bridge in namespace U, the daemon with a TAP port in
namespace A on 10.66.0.1) meets a private Open vSwitch in namespace B: its own ovsdb-server and
ovs-vswitchd run by this script (database, sockets and logs in a temporary directory; the
system's OVS, if any, is not touched), bridges with datapath_type=netdev. As OVS's userspace
tunnelling wants, the underlay veth is a port of bridge br-phy whose internal interface holds
10.66.0.2; bridge br-int has a vxlan (or geneve) interface with remote_ip=10.66.0.1 and an
internal port p0 (192.168.77.2), the station. Checked: pings both ways, 1400-byte pings, 4 MiB
of TCP each way with md5 sums, each side's learning (squibnet's fdb with DST, `ovs-appctl
fdb/show`), and for Geneve, OVS sending options (a tunnel metadata TLV) that squibnet skips,
then a critical option that squibnet drops and counts.

Environment: SQUIBNET, SQUIBNETCTL. Needs root, iproute2, ping and Open vSwitch's programs
(Debian: openvswitch-switch); exit status 77 without them, or when ovs-vswitchd cannot start
(the reason, from its log, is printed).
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sntest import SKIP, binary, run_tests, scaled  # noqa: E402
import test_vxlan_netns as nx  # noqa: E402

SCHEMA_PATHS = ["/usr/share/openvswitch/vswitch.ovsschema", "/usr/local/share/openvswitch/vswitch.ovsschema"]
OVS_REASON = None  # why OVS cannot run here, once known


class Ovs:
    """ovsdb-server and ovs-vswitchd in namespace @ns, everything under @tmp."""

    def __init__(self, lab, ns):
        self.ns = ns
        self.dir = os.path.join(lab.tmp, "ovs")
        os.makedirs(self.dir)
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_LOGDIR=self.dir, OVS_DBDIR=self.dir,
                        OVS_SYSCONFDIR=self.dir, OVS_PKGDATADIR=os.path.dirname(self.schema()))
        self.db = os.path.join(self.dir, "db.sock")
        subprocess.run(["ovsdb-tool", "create", os.path.join(self.dir, "conf.db"), self.schema()], check=True,
                       env=self.env, capture_output=True)
        self.dbserver = self.spawn(lab, ["ovsdb-server", os.path.join(self.dir, "conf.db"), f"--remote=punix:{self.db}",
                                         f"--unixctl={self.dir}/ovsdb.ctl", f"--log-file={self.dir}/ovsdb.log"])
        self.wait_for(lambda: os.path.exists(self.db), "ovsdb-server", "ovsdb.log")
        self.vsctl("--no-wait", "init")
        self.vswitchd = self.spawn(lab, ["ovs-vswitchd", f"unix:{self.db}", f"--unixctl={self.dir}/vswitchd.ctl",
                                         f"--log-file={self.dir}/vswitchd.log"])
        self.wait_for(lambda: os.path.exists(f"{self.dir}/vswitchd.ctl"), "ovs-vswitchd", "vswitchd.log")

    @staticmethod
    def schema():
        for p in SCHEMA_PATHS:
            if os.path.exists(p):
                return p
        raise FileNotFoundError("vswitch.ovsschema")

    def spawn(self, lab, args):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns] + args, env=self.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        lab.procs.append(p)
        return p

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name)) as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def wait_for(self, pred, what, logname):
        global OVS_REASON
        deadline = time.monotonic() + 15
        while not pred():
            procs = [p for p in (getattr(self, "dbserver", None), getattr(self, "vswitchd", None)) if p]
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                OVS_REASON = f"{what} did not start: {self.log(logname)}"
                raise RuntimeError(OVS_REASON)
            time.sleep(0.05)

    def vsctl(self, *args):
        r = subprocess.run(["ovs-vsctl", f"--db=unix:{self.db}", "--timeout=10"] + list(args), env=self.env,
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"ovs-vsctl {' '.join(args)}: {r.stderr.strip()}\n{self.log('vswitchd.log')}")
        return r.stdout

    def appctl(self, *args):
        return subprocess.run(["ovs-appctl", "-t", f"{self.dir}/vswitchd.ctl"] + list(args), env=self.env,
                              capture_output=True, text=True, timeout=20).stdout

    def ofctl(self, *args):
        r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15"] + list(args), env=self.env, capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"ovs-ofctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout


def ovs_lab(tag, tunnel_type, key):
    """The lab with OVS in B: br-phy on the underlay, br-int with the tunnel and p0."""
    lab = nx.Lab(tag, hosts=("B",))
    try:
        ovs = Ovs(lab, lab.ns["B"])
        b = lab.ns["B"]
        ovs.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev", "--",
                  "add-port", "br-phy", "und")
        nx.sh("ip", "-n", b, "addr", "flush", "dev", "und")
        nx.sh("ip", "-n", b, "addr", "add", f"{nx.UNDERLAY}.2/24", "dev", "br-phy")
        nx.sh("ip", "-n", b, "link", "set", "br-phy", "up")
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev", "--",
                  "add-port", "br-int", "tun0", "--", "set", "interface", "tun0", f"type={tunnel_type}",
                  f"options:remote_ip={nx.UNDERLAY}.1", f"options:key={key}", "--",
                  "add-port", "br-int", "p0", "--", "set", "interface", "p0", "type=internal")
        nx.sh("ip", "-n", b, "addr", "add", f"{nx.OVERLAY}.2/24", "dev", "p0")
        nx.sh("ip", "-n", b, "link", "set", "p0", "mtu", "1450", "up")
        return lab, ovs
    except BaseException:
        lab.cleanup()
        raise


def check_traffic(lab, ovs, d, port):
    # first contact: OVS's userspace tunnel drops what it cannot send until it has resolved the
    # remote VTEP's address (its own ARP from br-phy), and the kernels ARP for the stations; on
    # a loaded machine that outlasted two pings. One reply within 10 s, then every ping counts.
    nx.expect_ping(lab, "A", f"{nx.OVERLAY}.2", "A -> OVS, first contact", count=1,
                   extra=["-w", str(round(scaled(10)))])
    nx.expect_ping(lab, "A", f"{nx.OVERLAY}.2", "A -> OVS")
    nx.expect_ping(lab, "B", f"{nx.OVERLAY}.1", "OVS -> A")
    nx.expect_ping(lab, "A", f"{nx.OVERLAY}.2", "A -> OVS, 1400 bytes", size=1400)
    nx.expect_ping(lab, "B", f"{nx.OVERLAY}.1", "OVS -> A, 1400 bytes", size=1400)
    nx.tcp_transfer(lab, "A", "B", f"{nx.OVERLAY}.2", 11)
    nx.tcp_transfer(lab, "B", "A", f"{nx.OVERLAY}.1", 12)
    p0 = nx.sh("cat", "/sys/class/net/p0/address", ns=lab.ns["B"]).stdout.strip()
    tap = nx.sh("cat", "/sys/class/net/snt0/address", ns=lab.ns["A"]).stdout.strip()
    fdb = {e["mac"]: e for e in d.fdb()}
    assert fdb.get(p0, {}).get("port") == port and fdb[p0].get("dst") == f"{nx.UNDERLAY}.2", fdb
    ofdb = ovs.appctl("fdb/show", "br-int")
    assert tap in ofdb, f"OVS did not learn {tap}:\n{ofdb}"
    st = d.ports()[port]["stats"]
    assert st["rx_bytes"] >= 4 << 20 and st["tx_bytes"] >= 4 << 20 and st["drop_oversize"] == 0, st


def test_ovs_vxlan():
    lab, ovs = ovs_lab("o", "vxlan", 42)
    try:
        d = lab.squibnet(f"vxlan,name=vx,local={nx.UNDERLAY}.1,vni=42,remote={nx.UNDERLAY}.2")
        check_traffic(lab, ovs, d, "vx")
        c = d.ctl("tunnel", "show", "vx")["tunnels"][0]["counters"]
        assert c["bad_header"] == 0 and c["unknown_vni"] == 0, c
        assert d.stop() == 0
    finally:
        lab.cleanup()


def test_ovs_geneve_options():
    lab, ovs = ovs_lab("q", "geneve", 43)
    try:
        d = lab.squibnet(f"geneve,name=gn,local={nx.UNDERLAY}.1,vni=43,remote={nx.UNDERLAY}.2")
        check_traffic(lab, ovs, d, "gn")
        # OVS puts a Geneve option on everything from p0 (class 0xffff, type 1: not critical)
        ovs.ofctl("add-tlv-map", "br-int", "{class=0xffff,type=0x01,len=4}->tun_metadata0,"
                  "{class=0xffff,type=0x81,len=4}->tun_metadata1")
        ovs.ofctl("add-flow", "br-int", "priority=10,in_port=p0,actions=set_field:0x12345678->tun_metadata0,"
                  "output:tun0")
        nx.expect_ping(lab, "B", f"{nx.OVERLAY}.1", "OVS -> A with a Geneve option")
        c = d.ctl("tunnel", "show", "gn")["tunnels"][0]["counters"]
        assert c["critical"] == 0 and c["bad_options"] == 0, c
        # now a critical one (type 0x81): squibnet understands none, so it must drop them
        ovs.ofctl("add-flow", "br-int", "priority=20,in_port=p0,actions=set_field:0x1->tun_metadata1,output:tun0")
        r = lab.ping("B", f"{nx.OVERLAY}.1", count=2)
        assert r.returncode != 0, "frames with a critical option went through"
        c = d.ctl("tunnel", "show", "gn")["tunnels"][0]["counters"]
        assert c["critical"] >= 2, c
        assert d.stop() == 0
    finally:
        lab.cleanup()


def main():
    if os.geteuid() != 0:
        nx.skip("needs root (network namespaces, Open vSwitch's datapath)")
    missing = [p for p in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ovs-ofctl")
               if not shutil.which(p)]
    if missing:
        nx.skip(f"Open vSwitch is not installed (no {', '.join(missing)}; Debian: openvswitch-switch)")
    try:
        Ovs.schema()
    except FileNotFoundError:
        nx.skip("Open vSwitch's vswitch.ovsschema is not installed")
    for tool in ("ip", "ping"):
        if not shutil.which(tool):
            nx.skip(f"no {tool}")
    nx.PING = ["ping"]
    sq = binary("SQUIBNET", "tools/squibnet")
    h = subprocess.run([sq, "--help"], capture_output=True, text=True, timeout=10)
    if "vxlan," not in h.stdout + h.stderr or "tap," not in h.stdout + h.stderr:
        nx.skip("this build lacks vxlan or tap ports")
    # OVS may be unable to run at all here (no /dev/net/tun for its internal ports, say):
    # that is a skip with the reason, not a failure of squibnet
    probe = nx.Lab("p", hosts=("B",))
    try:
        Ovs(probe, probe.ns["B"]).vsctl("add-br", "probe", "--", "set", "bridge", "probe", "datapath_type=netdev")
    except (RuntimeError, subprocess.CalledProcessError) as e:
        nx.skip(f"Open vSwitch cannot run here: {OVS_REASON or e}")
    finally:
        probe.cleanup()
    run_tests([test_ovs_vxlan, test_ovs_geneve_options])


if __name__ == "__main__":
    main()
