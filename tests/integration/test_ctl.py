#!/usr/bin/env python3
"""test_ctl.py - squibnetctl and the control socket against a real squibnet daemon.

Starts the daemon with a stream listener and a control socket in a temporary directory,
attaches two stream clients (4-byte big-endian length prefixes) that each send a broadcast,
then checks what squibnetctl reports and changes, and that the control socket survives bad
clients. Environment: SQUIBNET and SQUIBNETCTL name the binaries (default: build-ctl/tools/).
Exit status 0 on success, 1 on failure, 77 when the binaries are missing.
"""
import json
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import shutil
import time

import sntest
from sntest import scaled

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SQUIBNET = os.environ.get("SQUIBNET", os.path.join(ROOT, "build-ctl", "tools", "squibnet"))
SQUIBNETCTL = os.environ.get("SQUIBNETCTL", os.path.join(ROOT, "build-ctl", "tools", "squibnetctl"))

MAC1 = "52:54:00:00:00:01"
MAC2 = "52:54:00:00:00:02"

failures = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)
    return cond


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + scaled(timeout)
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


def frame(src):
    mac = bytes(int(x, 16) for x in src.split(":"))
    eth = b"\xff" * 6 + mac + b"\x88\xb5" + bytes(46)  # broadcast, local experimental type
    return struct.pack(">I", len(eth)) + eth


def recv_frame(sock, timeout=3.0):
    sock.settimeout(scaled(timeout))
    buf = b""
    try:
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
    except socket.timeout:
        return None
    return buf[4:4 + struct.unpack(">I", buf[:4])[0]]


class Ctl:
    def __init__(self, path):
        self.path = path

    def run(self, *args, js=False, control=None):
        cmd = [SQUIBNETCTL, "--control", control or self.path] + (["--json"] if js else []) + list(args)
        p = sntest.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def port_names(self):
        return [p["name"] for p in (self.json("ports")[1] or {}).get("ports", [])]

    def json(self, *args):
        rc, out, err = self.run(*args, js=True)
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        return rc, doc, err


def raw_request(path, data, close_early=False):
    """Sends @data on a fresh control connection and returns everything the server answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(scaled(5))
    s.connect(path)
    s.sendall(data)
    if close_early:
        s.close()
        return None
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def check_table(text, what):
    """The human table: a header, and every row's cells lined up under their headings."""
    lines = text.rstrip("\n").split("\n")
    head = lines[0]
    if not check(head.split()[:3] == ["NAME", "KIND", "STATE"], what + ": header row"):
        return
    cols = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", head)]
    left = {"NAME", "KIND", "STATE", "VLAN", "PEER"}
    ok = True
    for row in lines[1:]:
        cells = [(m.start(), m.end()) for m in re.finditer(r"\S+", row)]
        if len(cells) < len(cols):
            ok = False
            break
        for i, (name, start, end) in enumerate(cols):
            s, e = cells[i]
            if (name in left and s != start) or (name not in left and e != end):
                ok = False
        ok = ok and row == row.rstrip()
    check(ok and len(lines) >= 4, what + ": rows aligned under the header\n" + text)


def main():
    for b in (SQUIBNET, SQUIBNETCTL):
        if not os.access(b, os.X_OK):
            print("skipping: %s not built (set SQUIBNET / SQUIBNETCTL)" % b)
            return 77

    tmp = tempfile.mkdtemp(prefix="sn-ctl-")
    sw_path = os.path.join(tmp, "sw.sock")
    ctl_path = os.path.join(tmp, "ctl.sock")
    log = open(os.path.join(tmp, "daemon.log"), "w+")
    daemon = sntest.popen([SQUIBNET, "--port", "stream,listen=unix:%s,name=sw" % sw_path,
                           "--control", ctl_path], stdout=log, stderr=subprocess.STDOUT)
    clients = []
    try:
        if not check(wait_for(lambda: os.path.exists(ctl_path) and os.path.exists(sw_path)),
                     "daemon creates its sockets"):
            return 1
        ctl = Ctl(ctl_path)

        check(stat.S_IMODE(os.stat(ctl_path).st_mode) == 0o600, "control socket has mode 0600")
        check(stat.S_ISSOCK(os.stat(ctl_path).st_mode), "control socket is a socket")

        # two guests: sw.1 sends from MAC1, sw.2 from MAC2
        for i in range(2):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sw_path)
            clients.append(s)
            check(wait_for(lambda: "sw.%d" % (i + 1) in ctl.port_names()), "client %d attaches as sw.%d" % (i, i + 1))
        a, b = clients
        a.sendall(frame(MAC1))
        check(recv_frame(b) is not None, "sw.2 receives the broadcast of sw.1")
        b.sendall(frame(MAC2))
        check(recv_frame(a) is not None, "sw.1 receives the broadcast of sw.2")

        # ports --json
        rc, doc, err = ctl.json("ports")
        check(rc == 0 and doc is not None and doc.get("version") == 1, "ports --json: a version 1 document")
        ports = {p["name"]: p for p in (doc or {}).get("ports", [])}
        check(set(ports) == {"sw", "sw.1", "sw.2"}, "ports --json lists sw, sw.1, sw.2: %s" % sorted(ports))
        sw = ports.get("sw", {})
        check(sw.get("state") == "listening" and sw.get("parent") is None and sw.get("kind") == "stream",
              "sw is a listening stream listener")
        for name, mac in (("sw.1", MAC1), ("sw.2", MAC2)):
            p = ports.get(name, {})
            st = p.get("stats", {})
            check(p.get("state") == "up" and p.get("parent") == "sw" and p.get("mtu") == 1500,
                  "%s is up, child of sw" % name)
            check(st.get("rx_frames") == 1 and st.get("rx_bytes") == 60 and st.get("tx_frames") == 1,
                  "%s counted 1 frame in, 60 bytes, 1 frame out: %s" % (name, st))
            check(st.get("fdb_entries") == 1 and p.get("txq_len", 0) > 0, "%s owns one MAC" % name)
        keys = {"rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "drop_txq_full", "drop_runt",
                "drop_oversize", "drop_bad_framing", "drop_no_buffer", "drop_vlan", "drop_bad_offload", "fdb_refused",
                "rx_pauses", "stalls",
                "fdb_entries", "txq_depth"}
        check(all(set(p.get("stats", {})) == keys for p in ports.values()), "every port has the stats keys")
        check(all(set(p) == {"name", "kind", "parent", "peer", "state", "mtu", "txq_len", "vlan", "rx_paused", "stalled", "error",
                             "offload_tx", "offload_rx", "stats"}
                  for p in ports.values()), "every port has the port keys")

        # fdb show --json, and plain fdb
        rc, doc, err = ctl.json("fdb", "show")
        fdb = {e["mac"]: e for e in (doc or {}).get("fdb", [])}
        check(rc == 0 and set(fdb) == {MAC1, MAC2}, "fdb show --json has both MACs: %s" % sorted(fdb))
        check(fdb.get(MAC1, {}).get("port") == "sw.1" and fdb.get(MAC2, {}).get("port") == "sw.2",
              "each MAC sits behind the port that sent it")
        e = fdb.get(MAC1, {})
        check(e.get("vlan") == 0 and e.get("static") is False and isinstance(e.get("age"), (int, float))
              and 0 <= e.get("age") < 60, "fdb entry fields: %s" % e)
        rc, out, err = ctl.run("fdb")
        check(rc == 0 and out.split("\n")[0].split() == ["MAC", "VLAN", "PORT", "TYPE", "AGE"]
              and MAC1 in out and "dynamic" in out, "plain fdb prints a table:\n" + out)

        # human ports table
        rc, out, err = ctl.run("ports")
        check(rc == 0 and err == "", "ports exits 0 quietly")
        check(out.split("\n")[0].split()[:12] == ["NAME", "KIND", "STATE", "MTU", "VLAN", "RX-FRAMES", "RX-BYTES",
                                                  "TX-FRAMES", "TX-BYTES", "DROPS", "MACS", "PEER"],
              "ports header names the columns")
        check_table(out, "ports")
        check(re.search(r"^sw +stream +listening ", out, re.M) is not None, "sw shows as listening")

        # stats
        rc, doc, err = ctl.json("stats")
        swst = (doc or {}).get("switch", {})
        check(rc == 0 and set(swst) == {"unicast", "flooded", "filtered", "isolated", "fdb_refused_table", "fdb_refused_port",
                                        "fdb_moves", "fdb_evicted", "fdb_entries", "fdb_max", "pool_free", "pool_total",
                                        "ports"},
              "stats --json switch keys")
        check(swst.get("flooded") == 2 and swst.get("fdb_entries") == 2 and swst.get("ports") == 3,
              "stats counts 2 floods, 2 entries, 3 ports: %s" % swst)
        check(len((doc or {}).get("ports", [])) == 3 and all(set(p) == {"name", "stats"} for p in doc["ports"]),
              "stats --json lists the ports' counters")
        rc, out, err = ctl.run("stats")
        check(rc == 0 and "TXQ-FULL" in out and "flooded" in out, "stats prints counters")

        # fdb flush of one port
        rc, doc, err = ctl.json("fdb", "flush", "sw.1")
        check(rc == 0 and doc == {"version": 1, "flushed": 1}, "fdb flush sw.1 removes 1: %s" % doc)
        rc, doc, err = ctl.json("fdb")
        check([e["mac"] for e in (doc or {}).get("fdb", [])] == [MAC2], "only MAC2 is left")
        rc, out, err = ctl.run("fdb", "flush", "nosuch")
        check(rc == 1 and "nosuch" in err, "fdb flush of an unknown port fails")
        rc, out, err = ctl.run("fdb", "flush")
        check(rc == 0 and "flushed 1 entry" in out, "fdb flush prints the count: " + out)

        # dst= is for tunnel ports only; without one, fdb show has no DST column
        STATIC = "52:54:00:00:00:99"
        rc, out, err = ctl.run("fdb", "add", STATIC, "sw.2", "dst=10.0.0.2")
        check(rc == 1 and "tunnel" in err and "sw.2" in err, "dst= behind a stream port is refused: %r" % err)
        rc, out, err = ctl.run("fdb", "add", STATIC, "sw.2", "vlan=7")
        check(rc == 0, "fdb add MAC PORT vlan=7: %r" % err)
        rc, doc, err = ctl.json("fdb")
        e = [x for x in (doc or {}).get("fdb", []) if x["mac"] == STATIC]
        check(len(e) == 1 and e[0]["static"] and "dst" not in e[0], "a static entry without dst: %s" % e)
        rc, out, err = ctl.run("fdb")
        check(rc == 0 and out.split("\n")[0].split() == ["MAC", "VLAN", "PORT", "TYPE", "AGE"],
              "no DST column without a tunnel port:\n" + out)
        rc, out, err = ctl.run("fdb", "del", STATIC, "vlan=7")
        check(rc == 0, "fdb del MAC vlan=7: %r" % err)

        # port add / del
        extra = os.path.join(tmp, "extra.sock")
        rc, out, err = ctl.run("port", "add", "stream,listen=unix:%s,name=extra" % extra)
        check(rc == 0 and out == "extra\n", "port add prints the new name: %r %r" % (out, err))
        check(os.path.exists(extra), "the new listener's socket exists")
        rc, doc, err = ctl.json("ports")
        check("extra" in [p["name"] for p in (doc or {}).get("ports", [])], "ports lists the new port")
        rc, doc, err = ctl.json("port", "del", "extra")
        check(rc == 0 and doc == {"version": 1, "deleted": "extra"}, "port del extra: %s" % doc)
        check(not os.path.exists(extra), "the deleted listener's socket is gone")
        rc, doc, err = ctl.json("port", "add", "stream,listen=unix:%s" % extra)
        added = (doc or {}).get("added")
        check(rc == 0 and isinstance(added, str) and set(doc) == {"version", "added"},
              "port add --json names the port: %s" % doc)
        rc, out, err = ctl.run("port", "del", added or "?")
        check(rc == 0 and out == "", "port del is quiet")
        rc, out, err = ctl.run("port", "del", "extra")
        check(rc == 1 and err.startswith("squibnetctl: ") and "extra" in err, "deleting a missing port fails")

        # a bad SPEC
        rc, out, err = ctl.run("port", "add", "stream,listen=unix:/x,bogus=1")
        check(rc == 1 and err.startswith("squibnetctl: ") and "bogus" in err and out == "",
              "a bad SPEC fails with the library's message: %r" % err)
        rc, doc, err = ctl.json("port", "add", "stream,listen=unix:/x,bogus=1")
        e = (doc or {}).get("error", {})
        check(rc == 1 and doc.get("version") == 1 and e.get("code") == "EINVAL" and "bogus" in e.get("message", ""),
              "a bad SPEC with --json gives the error object: %s" % doc)

        # unknown command, bad usage
        rc, out, err = ctl.run("frobnicate")
        check(rc == 1 and err.startswith("squibnetctl: ") and "frobnicate" in err and "Traceback" not in err,
              "an unknown command fails cleanly: %r" % err)
        rc, doc, err = ctl.json("frobnicate")
        check(rc == 1 and (doc or {}).get("error", {}).get("code") == "EINVAL", "unknown command, --json")
        rc, out, err = ctl.run("port", "add")
        check(rc == 1 and "usage" in err, "a missing argument gives the usage")
        rc, out, err = ctl.run("ports", "")
        check(rc != 0 and "empty" in err, "an empty argument is refused")

        # no switch there
        nowhere = os.path.join(tmp, "none.sock")
        rc, out, err = ctl.run("ports", control=nowhere)
        check(rc == 1 and err == "squibnetctl: cannot reach the switch at %s: No such file or directory\n" % nowhere,
              "no switch: %r" % err)
        rc, out, err = ctl.run("ports", js=True, control=nowhere)
        check(rc == 1 and json.loads(out or "{}").get("error", {}).get("code") == "ENOENT", "no switch, --json")

        # hostile and broken clients lose only their own connection
        held = []
        for _ in range(8):  # idle half-requests must not hold up anyone else
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(ctl_path)
            s.sendall(b"SQUIBNET-CONTROL 1\nports\n")
            held.append(s)
        out = raw_request(ctl_path, b"\x00\xffGET / HTTP/1.0\r\n\r\n")
        check(out.startswith(b"ERR EPROTO "), "garbage gets ERR EPROTO: %r" % out)
        out = raw_request(ctl_path, b"SQUIBNET-CONTROL 2\nports\n\n")
        check(out.startswith(b"ERR EPROTONOSUPPORT ") and b"version 2" in out, "version 2 is refused: %r" % out)
        out = raw_request(ctl_path, b"SQUIBNET-CONTROL 1 json\nports\nbogus\n\n")
        check(out.startswith(b"ERR EINVAL ") and b'"error"' in out, "extra argument: ERR with JSON body")
        out = raw_request(ctl_path, b"SQUIBNET-CONTROL 1\n" + b"A" * 70000)
        check(out.startswith(b"ERR E2BIG "), "an oversized request gets ERR E2BIG: %r" % out[:60])
        out = raw_request(ctl_path, b"SQUIBNET-CONTROL 1\n" + b"x\n" * 65 + b"\n")
        check(out.startswith(b"ERR E2BIG "), "too many arguments get ERR E2BIG: %r" % out[:60])
        raw_request(ctl_path, b"SQUIBNET-CONTROL 1\nfdb\n", close_early=True)
        raw_request(ctl_path, b"SQUIBNET-", close_early=True)
        rc, out, err = ctl.run("ports")
        check(rc == 0 and "sw.1" in out, "the daemon keeps serving while clients misbehave")
        for s in held:
            s.sendall(b"\n")
        answers = []
        for s in held:
            s.settimeout(scaled(5))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            answers.append(data)
            s.close()
        check(all(x.startswith(b"OK\nNAME ") for x in answers), "every held client gets its answer")
        check(daemon.poll() is None, "the daemon is still running")

        # a second daemon on the same control path is refused, and the first one is unharmed
        p = sntest.run([SQUIBNET, "--port", "stream,listen=unix:%s" % os.path.join(tmp, "other.sock"),
                        "--control", ctl_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(p.returncode != 0 and b"in use" in p.stderr, "a live control path is refused: %r" % p.stderr)
        rc, out, err = ctl.run("ports")
        check(rc == 0 and os.path.exists(ctl_path), "the first daemon still answers")

        rc, out, err = ctl.run("help")
        check(rc == 0 and "port add SPEC" in out, "help lists the commands")
        wide = [line for line in out.splitlines() if len(line) > 80]
        check(not wide, "help fits 80 columns: %r" % wide)
        rc, doc, err = ctl.json("help")
        names = [c["name"] for c in (doc or {}).get("commands", [])]
        check("gvproxy expose" in names and "help" in names and "capture list" in names,
              "help --json lists the modules' commands too: %r" % names)
        check(all(c["usage"] in " ".join(out.split()) for c in doc["commands"]),
              "every command of help --json is in the text")
        p = sntest.run([SQUIBNETCTL, "--version"], stdout=subprocess.PIPE)
        check(p.returncode == 0 and re.match(rb"squibnetctl \d+\.\d+\.\d+\n", p.stdout), "--version")
        p = sntest.run([SQUIBNETCTL, "--help"], stdout=subprocess.PIPE)
        check(p.returncode == 0 and b"usage: squibnetctl" in p.stdout, "--help")
        usage = p.stdout.decode()
        flat = " ".join(usage.split())
        missing = [c["usage"] for c in doc["commands"] if c["usage"] not in flat]
        check(not missing, "--help lists every command the switch has: missing %r" % missing)
        wide = [line for line in usage.splitlines() if len(line) > 80]
        check(not wide, "--help fits 80 columns: %r" % wide)

        # global flags after the command, as people type them; '--' ends them
        p = subprocess.run([SQUIBNETCTL, "stats", "--json", "--control", ctl_path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10, text=True)
        check(p.returncode == 0 and "switch" in json.loads(p.stdout or "{}"),
              "stats --json --control PATH: %r" % p.stderr)
        p = subprocess.run([SQUIBNETCTL, "-c", ctl_path, "fdb", "show", "-j"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10, text=True)
        check(p.returncode == 0 and "fdb" in json.loads(p.stdout or "{}"), "fdb show -j: %r" % p.stderr)
        p = subprocess.run([SQUIBNETCTL, "port", "del", "--control=" + ctl_path, "--", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10, text=True)
        check(p.returncode == 1 and "no port called '--json'" in p.stderr, "after '--', --json is an argument: %r"
              % p.stderr)
        p = subprocess.run([SQUIBNETCTL, "ports", "--help"], stdout=subprocess.PIPE, timeout=10)
        check(p.returncode == 0 and b"usage: squibnetctl" in p.stdout, "ports --help")

        daemon.send_signal(signal.SIGTERM)
        check(daemon.wait(timeout=scaled(10)) == 0, "the daemon exits cleanly")
        report = sntest.valgrind_report(daemon.valgrind_log)
        check(report is None, "the daemon exits without a valgrind report" + ("\n" + report if report else ""))
        check(not os.path.exists(ctl_path), "the control socket file is removed at exit")
    finally:
        for s in clients:
            s.close()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if failures:
            log.seek(0)
            print("--- daemon log ---\n" + log.read())
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(sntest.finish(main()))
