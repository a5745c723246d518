#!/usr/bin/env python3
"""test_extcap.py - squibnet-extcap, Wireshark's extcap program for squibnet: the protocol's
answers (interfaces from the running switch, DLT, config, filter checks), and captures by the
real tshark through it, headless (`tshark -i squibnet-PORT -c N`), found in the personal extcap
folder of a HOME made for the test.

usage: test_extcap.py [protocol|tshark]: the tshark part skips (77) when tshark is missing."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from sntest import BROADCAST, SKIP, Daemon, StreamClient, binary, eth, mac, mac_str, run_tests

EXTCAP = os.path.abspath(binary("SQUIBNET_EXTCAP", "tools/squibnet-extcap"))


def extcap(d, *args):
    env = dict(os.environ, SQUIBNET_CONTROL=d.control)
    return subprocess.run([EXTCAP, *args], env=env, capture_output=True, text=True, timeout=10)


def test_protocol():
    with Daemon(["stream,name=sw,listen=unix:@s.sock", "stream,name=up,connect=unix:@nobody.sock"]) as d:
        a = StreamClient(d.path("s.sock"))
        d.wait_ports(lambda p: "sw.1" in p)
        r = extcap(d, "--extcap-interfaces", "--extcap-version=4.0")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("extcap {version="), lines
        assert "interface {value=squibnet}{display=squibnet: every port}" in lines, lines
        assert "interface {value=squibnet-sw}{display=squibnet port sw (stream, listening)}" in lines, lines
        assert "interface {value=squibnet-sw.1}{display=squibnet port sw.1 (stream, up)}" in lines, lines
        assert "interface {value=squibnet-up}{display=squibnet port up (stream, connecting)}" in lines, lines
        r = extcap(d, "--extcap-dlts", "--extcap-interface", "squibnet-sw.1")
        assert r.returncode == 0 and r.stdout == "dlt {number=1}{name=EN10MB}{display=Ethernet}\n", r
        r = extcap(d, "--extcap-config", "--extcap-interface", "squibnet-sw")
        assert r.returncode == 0 and "{call=--control}" in r.stdout and f"{{default={d.control}}}" in r.stdout, r
        assert "value {arg=1}{value=both}{display=Both}{default=true}" in r.stdout, r.stdout
        # filter checks: silence and 0 for a good one, the reason and non-zero otherwise
        r = extcap(d, "--extcap-interface", "squibnet", "--extcap-capture-filter", "ether src 52:54:00:00:00:01")
        assert r.returncode == 0 and r.stdout == "", r
        r = extcap(d, "--extcap-interface", "squibnet", "--extcap-capture-filter", "not a filter(")
        if r.returncode == 0:
            print("skip: built without libpcap: filters are checked by the switch")
        else:
            assert r.stdout.strip(), r
        r = extcap(d, "--extcap-dlts", "--extcap-interface", "eth0")
        assert r.returncode != 0 and "not a squibnet interface" in r.stderr, r
        # the capture itself, into a fifo as Wireshark makes it
        fifo = d.path("fifo")
        os.mkfifo(fifo)
        proc = subprocess.Popen([EXTCAP, "--capture", "--extcap-interface", "squibnet-sw.1", "--fifo", fifo,
                                 "--control", d.control], stderr=subprocess.PIPE)
        with open(fifo, "rb") as f:
            header = f.read(24)
            assert header[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"), header
            frame = eth(BROADCAST, mac(1), b"into the fifo", size=60)
            a.send(frame)
            rec = f.read(16 + len(frame))
            assert rec[16:] == frame, rec
        # the reader went away: the extcap ends, and so does the switch's capture
        proc.wait(timeout=5)
        end = time.monotonic() + 3
        while d.ctl("capture", "list")["captures"] and time.monotonic() < end:
            time.sleep(0.02)
        assert d.ctl("capture", "list")["captures"] == []
        # no switch: no interfaces, and still a valid answer
        r = subprocess.run([EXTCAP, "--extcap-interfaces", "--control", d.path("nothing.sock")],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and r.stdout.count("\n") == 1 and "cannot reach" in r.stderr, r


def tshark_env(tmp, control):
    """A HOME whose personal extcap folders hold the extcap: ~/.config/wireshark/extcap up to
    Wireshark 4.0, ~/.local/lib/wireshark/extcap from 4.1 on."""
    home = os.path.join(tmp, "home")
    for sub in (".config/wireshark/extcap", ".local/lib/wireshark/extcap"):
        os.makedirs(os.path.join(home, sub))
        os.symlink(EXTCAP, os.path.join(home, sub, "squibnet-extcap"))
    env = dict(os.environ, HOME=home, SQUIBNET_CONTROL=control)
    env.pop("XDG_CONFIG_HOME", None)
    return env


def wait_live_capture(d, n=1):
    end = time.monotonic() + 10
    while sum(c["file"] == "-" for c in d.ctl("capture", "list")["captures"]) < n:
        if time.monotonic() > end:
            raise AssertionError("tshark's capture never started in the switch")
        time.sleep(0.05)


def test_tshark():
    tshark = shutil.which("tshark")
    with Daemon(["stream,name=sw,listen=unix:@s.sock"]) as d, tempfile.TemporaryDirectory(prefix="sn-ws-") as tmp:
        a, b = StreamClient(d.path("s.sock")), StreamClient(d.path("s.sock"))
        d.wait_ports(lambda p: "sw.2" in p)
        env = tshark_env(tmp, d.control)
        r = subprocess.run([tshark, "-D"], env=env, capture_output=True, text=True, timeout=60)
        assert "squibnet-sw.1 (squibnet port sw.1 (stream, up))" in r.stdout, (r.stdout, r.stderr)
        assert "squibnet (squibnet: every port)" in r.stdout, r.stdout
        # three frames on one port
        proc = subprocess.Popen([tshark, "-i", "squibnet-sw.1", "-c", "3", "-T", "fields", "-e", "eth.src",
                                 "-e", "eth.type"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_live_capture(d)
        for i in range(3):
            a.send(eth(BROADCAST, mac(1), size=60))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.split("\n")[:3] == [f"{mac_str(mac(1))}\t0x88b5"] * 3, (out, err)
        # the capture filter runs in the switch: only mac(2)'s frame comes through
        proc = subprocess.Popen([tshark, "-i", "squibnet", "-f", f"ether src {mac_str(mac(2))}", "-c", "1", "-T",
                                 "fields", "-e", "eth.src"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        wait_live_capture(d)
        a.send(eth(BROADCAST, mac(1), size=60))
        b.send(eth(BROADCAST, mac(2), size=60))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.split("\n")[0] == mac_str(mac(2)), (out, err)
        # a filter the switch refuses: tshark says why
        r = subprocess.run([tshark, "-i", "squibnet", "-f", "not a filter(", "-c", "1"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "filter" in r.stderr, r.stderr


if __name__ == "__main__":
    part = sys.argv[1] if len(sys.argv) > 1 else "protocol"
    sys.argv[1:] = []
    if part == "tshark":
        if not shutil.which("tshark"):
            print("skip: tshark is not installed (Debian package tshark)", file=sys.stderr)
            sys.exit(SKIP)
        run_tests([test_tshark])
    else:
        run_tests([test_protocol])
