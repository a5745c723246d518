#!/usr/bin/env python3
"""test_recipes.py - the README's recipes, run as written, with traffic through them.

Each ```sh block of the README's "Recipes" section is run line by line (every line a program
that stays up, started through sh in a directory of its own that stands in for /tmp, with
`squibnet` and `gvproxy` on PATH pointing at the programs under test), then stations send
frames through what it built:

  passt     a DHCP lease from passt through the switch, and the MTU it hands out is 1500
  vde_plug  a station on a vde_switch and one on the switch ping each other
  gvproxy   a DHCP lease from gvproxy (-listen-stdio through socat) and a ping of its gateway,
            against the real gvproxy ($SQUIBNET_GVPROXY or PATH) and the stand-in

A recipe whose programs are missing is skipped; exit 77 when all are.
Environment: SQUIBNET, SQUIBNETCTL, SQUIBNET_PING, FAKE_GVPROXY (set by meson).
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import sntest  # noqa: E402
from sntest import binary  # noqa: E402

SQUIBNET = binary("SQUIBNET", "tools/squibnet")
SQUIBNETCTL = binary("SQUIBNETCTL", "tools/squibnetctl")
PING = binary("SQUIBNET_PING", "tools/squibnet-ping")
README = os.path.join(HERE, "..", "..", "README.md")


def recipes():
    """The sh blocks of the README's Recipes section, keyed by the first program each runs
    besides squibnet."""
    text = open(README, encoding="utf-8").read()
    m = re.search(r"^### Recipes\n(.*?)^##", text, re.S | re.M)
    assert m, "README has no '### Recipes' section"
    out = {}
    for block in re.findall(r"^```sh\n(.*?)^```$", m.group(1), re.S | re.M):
        lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        key = next(ln.split()[0] for ln in lines if ln.split()[0] != "squibnet")
        out[key] = lines
    return out


class Recipe:
    """A directory standing in for /tmp, a bin directory first on PATH, and the processes
    started in it (each in a process group of its own, so that its children go with it; dpipe
    makes its own group, and cannot from a session leader)."""

    def __init__(self, gvproxy=None):
        self.tmp = tempfile.mkdtemp(prefix="sn-recipe-")
        self.bin = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin)
        os.symlink(SQUIBNET, os.path.join(self.bin, "squibnet"))
        if gvproxy:
            os.symlink(gvproxy, os.path.join(self.bin, "gvproxy"))
        self.env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
        self.env["PATH"] = self.bin + os.pathsep + os.environ.get("PATH", "")
        self.procs = []
        self.control = self.path("squibnet-control.sock")  # the default with no XDG_RUNTIME_DIR

    def path(self, name):
        return os.path.join(self.tmp, name)

    def start(self, line):
        """Runs one line of a recipe, /tmp moved here."""
        cmd = line.replace("/tmp/", self.tmp + "/")
        log = open(self.path(f"log.{len(self.procs)}"), "w")
        p = subprocess.Popen(["sh", "-c", "exec " + cmd], cwd=self.tmp, env=self.env, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, process_group=0)
        p.line, p.log = cmd, log.name
        self.procs.append(p)
        return p

    def start_plain(self, args, stdin=subprocess.DEVNULL):
        log = open(self.path(f"log.{len(self.procs)}"), "w")
        p = subprocess.Popen(args, cwd=self.tmp, env=self.env, stdin=stdin, stdout=log, stderr=subprocess.STDOUT,
                             process_group=0)
        p.line, p.log = " ".join(args), log.name
        self.procs.append(p)
        return p

    def logs(self):
        return "\n".join(f"--- {p.line} (exit {p.poll()}):\n{open(p.log).read()[-2000:]}" for p in self.procs)

    def wait_for(self, pred, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise AssertionError(f"{dead[0].line} exited while waiting for {what}:\n{self.logs()}")
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s:\n{self.logs()}")

    def ctl(self, *args):
        r = subprocess.run([SQUIBNETCTL, "--control", self.control, "--json", *args], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0, f"squibnetctl {' '.join(args)}: {r.stderr}\n{self.logs()}"
        return json.loads(r.stdout)

    def ports(self):
        return {p["name"]: p for p in self.ctl("ports")["ports"]}

    def wait_port_up(self, name, timeout=10.0):
        def up():
            return os.path.exists(self.control) and self.ports().get(name, {}).get("state") == "up"
        self.wait_for(up, f"port {name} up", timeout)

    def station(self, *args, timeout=20):
        r = subprocess.run([PING, *args], capture_output=True, text=True, timeout=timeout, cwd=self.tmp)
        assert r.returncode == 0, f"station {' '.join(args)}: {r.returncode} {r.stdout} {r.stderr}\n{self.logs()}"
        return json.loads(r.stdout)

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pcap_frames(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), f"{path} is not a little-endian pcap file"
    off, out = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        out.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return out


def dhcp_mtu(frames):
    """The interface MTU (option 26) of the first DHCP reply among Ethernet frames, or None."""
    for f in frames:
        if len(f) < 14 + 20 + 8 + 240 or f[12:14] != b"\x08\x00" or f[23] != 17:
            continue
        ihl = (f[14] & 0x0F) * 4
        udp = 14 + ihl
        if struct.unpack("!H", f[udp:udp + 2])[0] != 67:
            continue
        opts = f[udp + 8 + 240:]
        i = 0
        while i < len(opts) and opts[i] != 255:
            if opts[i] == 0:
                i += 1
                continue
            code, n = opts[i], opts[i + 1]
            if code == 26:
                return struct.unpack("!H", opts[i + 2:i + 4])[0]
            i += 2 + n
    return None


def test_passt():
    lines = recipes()["passt"]
    with Recipe() as r:
        if os.geteuid() == 0:
            os.chmod(r.tmp, 0o777)  # passt changes to nobody before it makes its socket
        r.start(lines[0])
        r.wait_for(lambda: os.path.exists(r.path("passt.sock")), "passt socket")
        r.start(lines[1])
        r.wait_port_up("uplink")
        cap = r.ctl("capture", "start", r.path("uplink.pcap"), "ports=uplink")["id"]
        out = r.station("--connect", "unix:" + r.path("sw.sock"), "--dhcp", "--serve", "0.2", "--json")
        lease = out["lease"]
        assert lease["ip"] and lease["router"] and lease["prefix"], out
        print(f"  passt leased {lease['ip']}/{lease['prefix']} router {lease['router']}")
        r.ctl("capture", "stop", str(cap))
        mtu = dhcp_mtu(pcap_frames(r.path("uplink.pcap")))
        assert mtu == 1500, f"passt offered MTU {mtu}, the recipe's -m 1500 should make it 1500"
        up = r.ports()["uplink"]
        assert up["stats"]["rx_frames"] >= 2 and up["stats"]["drop_oversize"] == 0, up


def test_vde_plug():
    lines = recipes()["dpipe"]
    with Recipe() as r:
        # the vde_switch the recipe joins, and a station on it (through the same plumbing)
        r.start_plain(["vde_switch", "-s", r.path("vde.ctl")], stdin=subprocess.PIPE)
        r.wait_for(lambda: os.path.exists(r.path("vde.ctl/ctl")), "vde_switch control socket")
        r.start_plain(["dpipe", "vde_plug", r.path("vde.ctl"), "=", "socat", "-", "UNIX-LISTEN:" + r.path("st.sock")])
        r.wait_for(lambda: os.path.exists(r.path("st.sock")), "the vde station's socket")
        b = r.start_plain([PING, "--connect", "unix:" + r.path("st.sock"), "--framing", "vde", "--ip", "10.0.7.2/24",
                           "--serve", "60", "-q"])
        for line in lines:
            r.start(line)
            if line.startswith("squibnet "):
                r.wait_for(lambda: os.path.exists(r.path("sw-vde.sock")) and os.path.exists(r.control),
                           "squibnet's sockets")
        r.wait_port_up("vde.1")
        out = r.station("--connect", "unix:" + r.path("sw.sock"), "--ip", "10.0.7.1/24", "--ping", "10.0.7.2",
                        "--count", "3", "--interval", "0.1", "--json")
        assert out["received"] == 3 and out["peer_mac"] == "52:54:00:00:07:02", out
        assert b.poll() is None, r.logs()
        vde = r.ports()["vde.1"]
        assert vde["stats"]["rx_frames"] >= 4 and vde["stats"]["tx_frames"] >= 4, vde


def gvproxy_test(path, label):
    def t():
        lines = recipes()["socat"]
        with Recipe(gvproxy=path) as r:
            r.start(lines[0])
            r.wait_for(lambda: os.path.exists(r.path("sw-gv.sock")) and os.path.exists(r.control),
                       "squibnet's sockets")
            r.start(lines[1])
            r.wait_port_up("gv.1")
            out = r.station("--connect", "unix:" + r.path("sw.sock"), "--dhcp", "--ping-gateway", "--count", "2",
                            "--json")
            assert out["received"] == 2 and out["lease"]["router"] == "192.168.127.1", out
            print(f"  {label} gvproxy leased {out['lease']['ip']} and answered pings")
    t.__name__ = f"test_gvproxy_stdio[{label}]"
    return t


def missing(*progs):
    return [p for p in progs if not shutil.which(p)]


def main():
    tests, skipped = [], []
    for t, progs in ((test_passt, ["passt"]), (test_vde_plug, ["vde_switch", "vde_plug", "dpipe", "socat"])):
        gone = missing(*progs)
        (skipped.append(f"{t.__name__}: no {', '.join(gone)}") if gone else tests.append(t))
    real = os.environ.get("SQUIBNET_GVPROXY") or shutil.which("gvproxy")
    fake = os.environ.get("FAKE_GVPROXY")
    if missing("socat"):
        skipped.append("gvproxy recipe: no socat")
    else:
        if fake and os.access(fake, os.X_OK):
            tests.append(gvproxy_test(fake, "fake"))
        if real and os.access(real, os.X_OK):
            tests.append(gvproxy_test(real, "real"))
        else:
            skipped.append("gvproxy recipe against the real gvproxy: none ($SQUIBNET_GVPROXY or PATH)")
    for s in skipped:
        print(f"skip {s}")
    if not tests:
        sys.exit(sntest.SKIP)
    sntest.run_tests(tests)


if __name__ == "__main__":
    main()
