#!/usr/bin/env python3
"""Integration tests of the gvproxy port kind: the real daemon supervising a gvproxy child.

Every test runs against the stand-in tests/gvproxy/fake-gvproxy.c (built by meson); the tests
that need nothing stand-in specific run again against a real gvproxy when one is found
($SQUIBNET_GVPROXY, else gvproxy on PATH). Stations are squibnet-ping processes taking DHCP
leases from the gateway 192.168.127.1 through the switch.

Environment:
  SQUIBNET, SQUIBNETCTL, SQUIBNET_PING  the programs under test (default: build/ beside the tree)
  FAKE_GVPROXY                          the stand-in (default: build/tests/gvproxy/fake-gvproxy)
  SQUIBNET_GVPROXY                      a real gvproxy to test as well (optional)
Exit status: 0 passed, 1 failed, 77 a program is missing.
"""
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import sntest  # noqa: E402
from sntest import Daemon, binary, popen, scaled  # noqa: E402

PING = binary("SQUIBNET_PING", "tools/squibnet-ping")
FAKE = binary("FAKE_GVPROXY", "tests/gvproxy/fake-gvproxy")
GATEWAY = "192.168.127.1"
GATEWAY_MAC = "5a:94:ef:e4:0c:dd"
GRACE = 2.0  # SN_GVPROXY_GRACE


def find_real():
    p = os.environ.get("SQUIBNET_GVPROXY") or shutil.which("gvproxy")
    return p if p and os.access(p, os.X_OK) else None


REAL = find_real()


def set_subreaper():
    """Orphans of the daemon become our children, so the tests can see whether a gvproxy
    outlived it and reap it instead of leaving it to init."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER


SUBREAPER = set_subreaper()


@contextlib.contextmanager
def env(**kv):
    """Environment for the daemon (and so its gvproxy child) started inside the block."""
    old = {k: os.environ.get(k) for k in kv}
    os.environ.update({k: str(v) for k, v in kv.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def gv_spec(path, extra=""):
    return f"gvproxy,name=gv,path={path},ssh-port=-1{extra}"


def start(path, extra=""):
    return Daemon(["stream,name=vms,listen=unix:@vms.sock", gv_spec(path, extra)])


def gv_pid(d):
    """The child's pid from `ports` (its peer reads "gvproxy pid N ..."), or None."""
    p = d.ports().get("gv")
    m = re.match(r"gvproxy pid (\d+)", p["peer"] if p else "")
    return int(m.group(1)) if m and p["state"] == "up" else None


def wait_up(d, not_pid=None, timeout=5.0):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        pid = gv_pid(d)
        if pid and pid != not_pid:
            return pid
        time.sleep(0.02)
    raise AssertionError(f"gvproxy port never came up: {d.ports().get('gv')}")


def station(d, *args, timeout=15):
    r = sntest.run([PING, "--connect", "unix:" + d.path("vms.sock"), *args], capture_output=True,
                   text=True, timeout=timeout)
    return r


def dhcp_ping(d, mac, *extra):
    r = station(d, "--dhcp", "--mac", mac, "--ping-gateway", "--count", "3", "--json", *extra)
    assert r.returncode == 0, f"station failed ({r.returncode}): {r.stdout} {r.stderr}"
    return json.loads(r.stdout)


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


def reap_orphan(pid, timeout):
    """Waits for a reparented child of ours to exit (timeout scaled); its status, or None if it
    is still running."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            p, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "not ours"
        if p == pid:
            return status
        time.sleep(0.02)
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- behaviour, against every gvproxy found ----

def check_dhcp_and_gateway(path):
    with start(path) as d:
        wait_up(d)
        out = dhcp_ping(d, "52:54:00:a0:00:01")
        lease = out["lease"]
        assert out["received"] == 3, out
        assert out["peer_mac"] == GATEWAY_MAC, out
        assert lease["router"] == GATEWAY and GATEWAY in lease["dns"] and lease["prefix"] == 24, lease
        assert lease["ip"].startswith("192.168.127.") and lease["ip"] != GATEWAY, lease
        gv = d.ports()["gv"]
        assert gv["kind"] == "gvproxy" and gv["stats"]["rx_frames"] >= 5 and gv["stats"]["tx_frames"] >= 5, gv
        # the same MAC gets the same address again
        again = dhcp_ping(d, "52:54:00:a0:00:01")
        assert again["lease"]["ip"] == lease["ip"], (lease, again)
        assert d.stop() == 0
        assert "port gv: gvproxy: " in d.stderr, d.stderr  # its stderr reaches the switch's log


def check_restart_after_kill(path):
    with start(path) as d:
        pid = wait_up(d)
        before = station(d, "--ip", "192.168.127.50/24", "--ping", GATEWAY, "--count", "2", "--json")
        assert before.returncode == 0, before.stderr
        os.kill(pid, signal.SIGKILL)
        ports = d.wait_ports(lambda p: p["gv"]["state"] == "down" or gv_pid(d) != pid)
        new = wait_up(d, not_pid=pid)
        assert new != pid and not alive(pid), (pid, new)
        peer = d.ports()["gv"]["peer"]
        assert "restarts 1" in peer, peer
        # a station that kept its address reaches the new gateway, and leases work again
        after = station(d, "--ip", "192.168.127.50/24", "--ping", GATEWAY, "--count", "2", "--json")
        assert after.returncode == 0 and json.loads(after.stdout)["received"] == 2, after.stderr
        dhcp_ping(d, "52:54:00:a0:00:02")
        d.stop()
        assert re.search(rf"gvproxy pid {pid} killed by signal 9", d.stderr), d.stderr
        del ports


def check_sigterm_leaves_nothing(path):
    with start(path) as d:
        pid = wait_up(d)
        assert d.stop(signal.SIGTERM) == 0
        # squibnet reaped it before exiting: no process, no zombie, nothing handed to us
        assert not alive(pid), open(f"/proc/{pid}/status").read()
        assert re.search(rf"gvproxy pid {pid} (exited|killed)", d.stderr), d.stderr
        assert not os.listdir(d.tmp) or "vms.sock" not in os.listdir(d.tmp)


def api_dir(d):
    m = re.search(r"api unix:(\S+)/api\.sock", d.ports()["gv"]["peer"])
    return m.group(1)


def sigkill_squibnet(path):
    if not SUBREAPER:
        print("  (skipped: needs PR_SET_CHILD_SUBREAPER)")
        return
    with start(path) as d:
        pid = wait_up(d)
        private = api_dir(d)
        d.proc.kill()
        d.proc.wait()
        # it is ours now (subreaper); it must end by itself: PR_SET_PDEATHSIG or stdin EOF
        status = reap_orphan(pid, 5.0)
        shutil.rmtree(private, ignore_errors=True)  # a killed squibnet cannot remove it
        if status is None:
            os.kill(pid, signal.SIGKILL)
            reap_orphan(pid, 2.0)
            raise AssertionError("gvproxy outlived a SIGKILLed squibnet")
        assert not alive(pid)


def check_sigkill_leaves_nothing(path):
    sigkill_squibnet(path)


def check_two_stations(path):
    with start(path) as d:
        wait_up(d)
        a = popen([PING, "--connect", "unix:" + d.path("vms.sock"), "--dhcp", "--mac",
                   "52:54:00:b0:00:01", "--ping-gateway", "--count", "2", "--serve", "30"],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            a_ip = None
            deadline = time.monotonic() + scaled(10)
            while time.monotonic() < deadline and not a_ip:
                line = a.stdout.readline()
                m = re.match(r"lease (\S+)/24 router " + re.escape(GATEWAY), line)
                if m:
                    a_ip = m.group(1)
            assert a_ip, "station A got no lease"
            # A pings the gateway (its summary comes only when it exits), then serves
            for line in iter(a.stdout.readline, ""):
                if "icmp_seq=2" in line:
                    break
            assert a.poll() is None, a.stderr.read()
            tx_before = d.ports()["gv"]["stats"]["tx_frames"]
            b = station(d, "--dhcp", "--mac", "52:54:00:b0:00:02", "--ping", a_ip, "--count", "10",
                        "--interval", "0.02", "--json")
            assert b.returncode == 0, (b.stdout, b.stderr)
            out = json.loads(b.stdout)
            assert out["received"] == 10 and out["peer_mac"] == "52:54:00:b0:00:01", out
            assert out["lease"]["ip"] != a_ip, out
            # B's echo requests went to A alone: gvproxy saw only B's broadcasts (DHCP, ARP)
            tx_delta = d.ports()["gv"]["stats"]["tx_frames"] - tx_before
            assert tx_delta <= 6, f"gvproxy was sent {tx_delta} frames while B pinged A"
            fdb = {e["mac"]: e["port"] for e in d.fdb()}
            assert fdb.get("52:54:00:b0:00:01", "").startswith("vms."), fdb
            assert fdb.get(GATEWAY_MAC) == "gv", fdb
            # and B uses the gateway too
            dhcp_ping(d, "52:54:00:b0:00:02")
        finally:
            a.terminate()
            a.communicate(timeout=scaled(5))
        assert d.stop() == 0


def check_expose_round_trip(path):
    with start(path) as d:
        wait_up(d)
        local = f"127.0.0.1:{free_port()}"
        assert d.ctl("gvproxy", "list")["forwards"] == []
        r = d.ctl("gvproxy", "expose", local, "192.168.127.2:80")
        assert r["exposed"] == {"local": local, "remote": "192.168.127.2:80", "protocol": "tcp"}, r
        udp = f"127.0.0.1:{free_port()}"
        d.ctl("gvproxy", "expose", "--proto", "udp", udp, "192.168.127.2:53")
        fw = d.ctl("gvproxy", "list")["forwards"]
        assert {(f["protocol"], f["local"], f["remote"]) for f in fw} == {
            ("tcp", local, "192.168.127.2:80"), ("udp", udp, "192.168.127.2:53")}, fw
        text = d.ctl_text("gvproxy", "list")
        assert text.returncode == 0 and local in text.stdout and "PROTO" in text.stdout, text
        dup = d.ctl("gvproxy", "expose", local, "192.168.127.2:80", check=False)
        assert dup["error"]["code"] == "EEXIST", dup
        d.ctl("gvproxy", "unexpose", local)
        d.ctl("gvproxy", "unexpose", udp, "--proto", "udp")
        assert d.ctl("gvproxy", "list")["forwards"] == []
        gone = d.ctl("gvproxy", "unexpose", local, check=False)
        assert gone["error"]["code"] == "ENOENT", gone
        bad = d.ctl("gvproxy", "expose", local, "x", "--proto", "sctp", check=False)
        assert bad["error"]["code"] == "EINVAL" and "sctp" in bad["error"]["message"], bad
        other = d.ctl("gvproxy", "list", "--port", "vms", check=False)
        assert other["error"]["code"] == "EINVAL" and "not a gvproxy port" in other["error"]["message"], other
        private = api_dir(d)
        assert d.stop() == 0
        assert not os.path.exists(private), "the private API directory was left behind"


# ---- the stand-in's failure modes ----

def test_hanging_child_is_killed():
    with env(FAKE_GVPROXY_HANG=1), start(FAKE) as d:
        pid = wait_up(d)
        t0 = time.monotonic()
        assert d.stop(signal.SIGTERM, timeout=10) == 0
        took = time.monotonic() - t0
        assert GRACE - 0.2 <= took <= GRACE + scaled(3), f"squibnet took {took:.2f} s to stop"
        assert not alive(pid), "the hanging gvproxy survived"
        assert "sending SIGKILL" in d.stderr and re.search(rf"pid {pid} killed by signal 9", d.stderr), d.stderr


def test_hanging_child_port_del():
    # inside the loop the port goes at once and the child is finished from the loop
    with env(FAKE_GVPROXY_HANG=1), start(FAKE) as d:
        pid = wait_up(d)
        t0 = time.monotonic()
        d.ctl("port", "del", "gv")
        assert time.monotonic() - t0 < scaled(1.0), "port del waited for the child"
        assert "gv" not in d.ports()
        deadline = time.monotonic() + GRACE + scaled(3)
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the child was not killed after port del"
        assert d.ctl("ports")  # the switch still answers
        d.stop()
        assert re.search(rf"pid {pid} killed by signal 9", d.stderr), d.stderr


def test_sigkill_pdeathsig():
    # the stand-in stays after stdin EOF here: only the parent-death signal can end it
    if not sys.platform.startswith("linux"):
        print("  (skipped: PR_SET_PDEATHSIG is Linux only)")
        return
    with env(FAKE_GVPROXY_IGNORE_EOF=1):
        sigkill_squibnet(FAKE)


def test_restart_off_and_status():
    with env(FAKE_GVPROXY_CRASH_AFTER=0), start(FAKE, ",restart=off") as d:
        ports = d.wait_ports(lambda p: "restart=off" in p["gv"]["peer"])
        peer = ports["gv"]["peer"]
        assert ports["gv"]["state"] == "down" and "killed by signal 6" in peer, peer
        time.sleep(0.6)
        assert d.ports()["gv"]["peer"] == peer  # no second start
        text = d.ctl_text("ports").stdout
        assert "restart=off" in text, text
        r = d.ctl("gvproxy", "list", check=False)
        assert r["error"]["code"] == "ENOTCONN", r
        d.stop()
        assert d.stderr.count("port gv: started") == 1, d.stderr


def test_restart_backoff():
    with env(FAKE_GVPROXY_CRASH_AFTER=0), start(FAKE) as d:
        time.sleep(2.5)
        d.stop()
        starts = d.stderr.count("port gv: started")
        # 0, 0.2, 0.6, 1.4, 3.0 s: four starts in 2.5 s with the delay doubling from 0.2 s
        assert 3 <= starts <= 5, f"{starts} starts in 2.5 s:\n{d.stderr}"
        assert "restarting in 0.8 s" in d.stderr, d.stderr


def test_old_gvproxy_refusing_ssh_port_off():
    # releases before October 2024 exit at once on -ssh-port -1: say what to do, do not loop
    with env(FAKE_GVPROXY_OLD=1), start(FAKE) as d:
        ports = d.wait_ports(lambda p: "ssh-port" in p["gv"]["peer"], timeout=5)
        gv = ports["gv"]
        assert gv["state"] == "down", gv
        for text in (gv["peer"], gv["error"]):
            assert "v0.7.5" in text and "ssh-port=N" in text and "newer gvproxy" in text, gv
        time.sleep(1.0)  # a restart loop would have started it 3 more times by now
        assert d.ports()["gv"]["peer"] == gv["peer"]
        assert "ssh-port" in d.ctl_text("ports").stdout
        d.stop()
        assert d.stderr.count("port gv: started") == 1, d.stderr
        assert "not restarting" in d.stderr, d.stderr
    # and with a port number of its range the same gvproxy serves
    with env(FAKE_GVPROXY_OLD=1), Daemon(["stream,name=vms,listen=unix:@vms.sock",
                                           f"gvproxy,name=gv,path={FAKE},ssh-port=2222"]) as d:
        wait_up(d)
        dhcp_ping(d, "52:54:00:a0:00:07")
        d.stop()


def test_crash_mid_traffic():
    # dies on the 4th frame: the first station's DHCP cannot finish on that child, the next one can
    with env(FAKE_GVPROXY_CRASH_AFTER=4), start(FAKE) as d:
        pid = wait_up(d)
        station(d, "--dhcp", "--mac", "52:54:00:c0:00:01", "--ping-gateway", "--count", "5", "--timeout", "2")
        new = wait_up(d, not_pid=pid)
        assert new != pid
        d.stop()
        assert "crashing after 4 frames" in d.stderr, d.stderr


# ---- the API calls do not block the switch (FAKE_GVPROXY_API_DELAY_MS) ----

API_TIMEOUT = 5.0  # SN_GVPROXY_API_TIMEOUT


def ctl_raw(d, *args, json_mode=True):
    """Sends one control request on a raw socket and returns the socket, reply unread."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.control)
    s.sendall(("SQUIBNET-CONTROL 1" + (" json" if json_mode else "") + "\n" + "".join(a + "\n" for a in args)
               + "\n").encode())
    return s


def read_reply(s, timeout):
    """The whole reply (to end of stream) of a raw request, and how long it took to come."""
    t0 = time.monotonic()
    s.settimeout(scaled(timeout))
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data, time.monotonic() - t0


def pinger(d, ip):
    """A station that answers ARP and echo at @ip until terminated; waits until it is attached."""
    before = {n for n in d.ports() if n.startswith("vms.")}
    p = popen([PING, "--connect", "unix:" + d.path("vms.sock"), "--ip", ip + "/24", "--serve", "60"],
              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    d.wait_ports(lambda ports: {n for n in ports if n.startswith("vms.")} - before)
    return p


def test_slow_api_does_not_stall_the_switch():
    # bounds are loose for a loaded 2-core CI machine; a blocking call would stall for `delay`
    delay = 4.0
    with env(FAKE_GVPROXY_API_DELAY_MS=int(delay * 1000)), start(FAKE) as d:
        wait_up(d)
        a = pinger(d, "192.168.127.60")
        try:
            t0 = time.monotonic()
            # two at once: they wait side by side, not one after the other
            first = ctl_raw(d, "gvproxy", "list")
            second = ctl_raw(d, "gvproxy", "list", json_mode=False)
            time.sleep(0.1)
            # while gvproxy sits on its answer, the control socket answers other commands at once
            t1 = time.monotonic()
            assert "gv" in d.ports()
            took = time.monotonic() - t1
            assert took < scaled(1.0), f"`ports` took {took:.2f} s while a gvproxy call was pending"
            # and two stations on the stream port ping each other without a stall
            b = station(d, "--ip", "192.168.127.61/24", "--ping", "192.168.127.60", "--count", "15",
                        "--interval", "0.05", "--json")
            assert b.returncode == 0, (b.stdout, b.stderr)
            out = json.loads(b.stdout)
            assert out["received"] == 15, out
            assert out["rtt_max_ms"] < 1000, f"a ping took {out['rtt_max_ms']} ms while gvproxy was slow"
            pinged = time.monotonic() - t0
            assert pinged < delay, f"the pings ran past the delay ({pinged:.2f} s): proves nothing"
            # then gvproxy answers, and both replies are what an immediate one would be
            data, _ = read_reply(first, 10)
            took = time.monotonic() - t0
            assert data == b'OK\n{"version":1,"port":"gv","forwards":[]}\n', data
            data, _ = read_reply(second, 10)
            assert data == b"OK\nPROTO  LOCAL  REMOTE\n", data
            took2 = time.monotonic() - t0
            assert delay - 0.1 <= took and took2 < delay + scaled(1.5), \
                f"replies after {took:.2f} s and {took2:.2f} s"
            # squibnetctl, with an expose in between: the state changed through deferred replies
            local = f"127.0.0.1:{free_port()}"
            r = d.ctl("gvproxy", "expose", local, "192.168.127.2:22")
            assert r["exposed"]["local"] == local, r
            text = d.ctl_text("gvproxy", "list")
            assert text.returncode == 0 and local in text.stdout, text
            dup = d.ctl_text("gvproxy", "expose", local, "192.168.127.2:22")
            assert dup.returncode == 1 and "already running" in dup.stderr, dup
        finally:
            a.terminate()
            a.communicate(timeout=scaled(5))
        assert d.stop() == 0


def test_api_timeout():
    with env(FAKE_GVPROXY_API_DELAY_MS=int((API_TIMEOUT + 2) * 1000)), start(FAKE) as d:
        wait_up(d)
        t0 = time.monotonic()
        s = ctl_raw(d, "gvproxy", "list")
        time.sleep(0.2)
        assert d.ctl("ports")
        data, _ = read_reply(s, API_TIMEOUT + 5)
        took = time.monotonic() - t0
        assert API_TIMEOUT - 0.2 <= took <= API_TIMEOUT + scaled(1.5), f"ERR after {took:.2f} s"
        head, body = data.split(b"\n", 1)
        assert head == b"ERR ETIMEDOUT gvproxy API did not answer within 5 s", data
        assert json.loads(body) == {"version": 1, "error": {
            "code": "ETIMEDOUT", "message": "gvproxy API did not answer within 5 s"}}, data
        # text mode through squibnetctl, in parallel with the switch carrying frames
        ctl = popen([d.ctl_bin, "--control", d.control, "gvproxy", "unexpose", "127.0.0.1:1"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        r = station(d, "--dhcp", "--mac", "52:54:00:e0:00:01", "--ping-gateway", "--count", "2", "--json")
        assert r.returncode == 0 and ctl.poll() is None, (r.stderr, ctl.poll())
        out, err = ctl.communicate(timeout=scaled(API_TIMEOUT + 5))
        assert ctl.returncode == 1 and out == "" and "did not answer within 5 s" in err, (out, err)
        # the switch is fine, and it had closed the call: gvproxy's late answer found nobody
        assert d.ctl("ports")["ports"]
        time.sleep(max(0, t0 + API_TIMEOUT + 2 + scaled(0.5) - time.monotonic()))
        assert d.stop() == 0
        assert "answer not delivered, the client left" in d.stderr, d.stderr


def test_client_leaves_mid_call():
    # gvproxy answers well within the API timeout, so only the cancellation can make it miss
    with env(FAKE_GVPROXY_API_DELAY_MS=2000), start(FAKE) as d:
        wait_up(d)
        t0 = time.monotonic()
        s = ctl_raw(d, "gvproxy", "list")
        time.sleep(0.2)
        s.close()  # the command is abandoned: squibnet must drop its HTTP request too
        assert d.ctl("ports")
        time.sleep(max(0, t0 + 2 + scaled(0.4) - time.monotonic()))
        # a later call still works
        assert d.ctl("gvproxy", "list")["forwards"] == []
        assert d.stop() == 0
        assert d.stderr.count("answer not delivered, the client left") == 1, d.stderr


def test_port_del_mid_call():
    with env(FAKE_GVPROXY_API_DELAY_MS=3000), start(FAKE) as d:
        pid = wait_up(d)
        s = ctl_raw(d, "gvproxy", "expose", "127.0.0.1:1", "192.168.127.2:1")
        time.sleep(0.2)
        d.ctl("port", "del", "gv")
        data, took = read_reply(s, 5)
        assert took < scaled(1.0), f"the pending call was answered {took:.2f} s after port del"
        head, body = data.split(b"\n", 1)
        assert head.startswith(b"ERR ECANCELED port 'gv': the port was removed"), data
        assert json.loads(body)["error"]["code"] == "ECANCELED", data
        assert "gv" not in d.ports()
        deadline = time.monotonic() + GRACE + scaled(2)
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
        assert d.stop() == 0


def test_child_dies_mid_call():
    with env(FAKE_GVPROXY_API_DELAY_MS=3000), start(FAKE) as d:
        pid = wait_up(d)
        s = ctl_raw(d, "gvproxy", "list", json_mode=False)
        time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        data, took = read_reply(s, 5)
        assert took < scaled(1.0), f"the pending call was answered {took:.2f} s after gvproxy died"
        assert data.startswith(b"ERR ECONNRESET ") and data.endswith(b"\n") and data.count(b"\n") == 1, data
        new = wait_up(d, not_pid=pid)
        # the new child answers (after its delay)
        t0 = time.monotonic()
        assert d.ctl("gvproxy", "list")["forwards"] == []
        assert time.monotonic() - t0 >= 2.9
        assert new != pid
        assert d.stop() == 0


def test_shutdown_mid_call():
    # the control server goes first and drops the call; then the port and its child
    with env(FAKE_GVPROXY_API_DELAY_MS=3000), start(FAKE) as d:
        pid = wait_up(d)
        s = ctl_raw(d, "gvproxy", "list")
        time.sleep(0.2)
        t0 = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t0 < scaled(2.0)
        data, _ = read_reply(s, 2)
        assert data == b"", data  # no status line: the switch went away
        assert not alive(pid)


# ---- SPEC checks ----

def port_add_error(d, spec):
    r = d.ctl("port", "add", spec, check=False)
    assert r and "error" in r, f"{spec} was accepted: {r}"
    return r["error"]


def test_bad_specs():
    with Daemon(["stream,name=vms,listen=unix:@vms.sock"]) as d:
        e = port_add_error(d, "gvproxy,path=/nonexistent/gvproxy")
        assert e["code"] == "ENOENT" and "/nonexistent/gvproxy" in e["message"], e
        e = port_add_error(d, "gvproxy,path=/tmp")
        assert e["code"] == "EINVAL" and "not a regular file" in e["message"], e
        plain = d.path("plain")
        with open(plain, "w") as f:
            f.write("not a program\n")
        os.chmod(plain, 0o644)
        e = port_add_error(d, f"gvproxy,path={plain}")
        assert e["code"] == "EACCES" and "not executable" in e["message"], e
        os.chmod(plain, 0o755)
        e = port_add_error(d, f"gvproxy,path={plain}")
        assert "cannot run" in e["message"] and "format" in e["message"].lower(), e
        e = port_add_error(d, f"gvproxy,path={FAKE},args=-mtu 9000")
        assert e["code"] == "EINVAL" and "mtu=N" in e["message"], e
        e = port_add_error(d, f'gvproxy,path={FAKE},args="{" ".join(["-debug"] * 40)}"')
        assert e["code"] == "E2BIG", e
        e = port_add_error(d, f"gvproxy,path={FAKE},args=-x{'y' * 1100}")
        assert e["code"] == "EINVAL" and "longer" in e["message"], e
        e = port_add_error(d, f"gvproxy,path={FAKE},ssh-port=22")
        assert e["code"] == "EINVAL" and "ssh-port" in e["message"], e
        e = port_add_error(d, f"gvproxy,path={FAKE},restart=maybe")
        assert e["code"] == "EINVAL" and "restart" in e["message"], e
        e = port_add_error(d, f"gvproxy,path={FAKE},colour=blue")
        assert e["code"] == "EINVAL" and "colour" in e["message"], e
        # a failed add leaves no port and no private directory behind
        assert set(d.ports()) == {"vms"}
        # args= reaches the child (the stand-in takes -debug)
        d.ctl("port", "add", f'gvproxy,name=gv,path={FAKE},ssh-port=-1,args="-debug"')
        wait_up(d)
        r = station(d, "--dhcp", "--mac", "52:54:00:d0:00:01", "--ping-gateway", "--count", "1")
        assert r.returncode == 0, r.stderr
        d.stop()
        assert "dhcp ack" in d.stderr, d.stderr


def test_bad_path_at_startup():
    d = Daemon(["gvproxy,path=/nonexistent/gvproxy"], expect_start=False)
    with d:
        out, err = d.proc.communicate(timeout=scaled(10))
        assert d.proc.returncode != 0
        assert "/nonexistent/gvproxy" in err and "No such file" in err, err


def test_no_gvproxy_anywhere():
    with env(PATH="/nonexistent", SQUIBNET_GVPROXY=""):
        d = Daemon(["stream,name=vms,listen=unix:@vms.sock"])
    with d:
        e = port_add_error(d, "gvproxy")
        assert e["code"] == "ENOENT" and "SQUIBNET_GVPROXY" in e["message"], e
    with env(SQUIBNET_GVPROXY=FAKE), Daemon(["stream,name=vms,listen=unix:@vms.sock"]) as d:
        d.ctl("port", "add", "gvproxy,name=gv,ssh-port=-1")
        wait_up(d)
        d.stop()
        assert f"started {os.path.realpath(FAKE)}" in d.stderr, d.stderr


COMMON = [check_dhcp_and_gateway, check_restart_after_kill, check_sigterm_leaves_nothing,
          check_sigkill_leaves_nothing, check_two_stations, check_expose_round_trip]


def make(check, path, label):
    def t():
        check(path)
    t.__name__ = f"{check.__name__.replace('check_', 'test_')}[{label}]"
    return t


def main():
    tests = [make(c, FAKE, "fake") for c in COMMON]
    tests += [test_sigkill_pdeathsig, test_hanging_child_is_killed, test_hanging_child_port_del, test_restart_off_and_status,
              test_restart_backoff, test_old_gvproxy_refusing_ssh_port_off, test_crash_mid_traffic, test_bad_specs, test_bad_path_at_startup,
              test_no_gvproxy_anywhere, test_slow_api_does_not_stall_the_switch, test_api_timeout,
              test_client_leaves_mid_call, test_port_del_mid_call, test_child_dies_mid_call,
              test_shutdown_mid_call]
    if REAL:
        print(f"also testing the real gvproxy at {REAL}")
        tests += [make(c, REAL, "real") for c in COMMON]
    else:
        print("no real gvproxy ($SQUIBNET_GVPROXY or PATH): testing the stand-in only")
    sntest.run_tests(tests)


if __name__ == "__main__":
    main()
