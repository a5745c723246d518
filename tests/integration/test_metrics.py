#!/usr/bin/env python3
"""test_metrics.py - squibnetctl stats --prometheus (the Prometheus text exposition format, line
by line, and through promtool where the Debian package prometheus is installed) and squibnetctl
top (rates from two samples, text screens redrawn on a terminal, JSON for scripts)."""

import json
import os
import pty
import re
import shutil
import socket
import subprocess
import time

from sntest import BROADCAST, Daemon, StreamClient, eth, mac, run_tests

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})(?:,[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})*)\}})? (\d+)$")
LABEL = re.compile(rf'([a-zA-Z_][a-zA-Z0-9_]*)=({LABEL_VALUE})')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v[1:-1])


def parse_exposition(text):
    """Checks @text against the format and returns {(name, frozenset(labels)): value}."""
    assert text.endswith("\n"), "the last line must end with a newline"
    families, samples = {}, {}
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            name, help_text = line[7:].split(" ", 1)
            assert re.fullmatch(NAME, name) and help_text, f"line {n}: {line!r}"
            assert name not in families, f"line {n}: family {name} twice"
            families[name] = None
            current = name
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name == current and families[name] is None, f"line {n}: TYPE of {name} without its HELP"
            assert kind in ("counter", "gauge"), f"line {n}: {kind}"
            families[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"line {n} is not a sample: {line!r}"
            name, labels, value = m.groups()
            assert name == current and families[name], f"line {n}: {name} outside its family"
            if families[name] == "counter":
                assert name.endswith("_total"), f"line {n}: a counter without _total"
            else:
                assert not name.endswith("_total"), f"line {n}: a gauge named like a counter"
            key = (name, frozenset((k, unescape(v)) for k, v in LABEL.findall(labels or "")))
            assert key not in samples, f"line {n}: the same sample twice"
            samples[key] = int(value)
    return samples


def test_prometheus():
    odd = 'we"ird\\name'
    with Daemon(["stream,name=sw,listen=unix:@s.sock", f'stream,name={odd},connect=unix:@nobody.sock']) as d:
        a, b = StreamClient(d.path("s.sock")), StreamClient(d.path("s.sock"))
        d.wait_ports(lambda p: "sw.2" in p)
        for i in range(5):
            a.send(eth(BROADCAST, mac(1), size=100))
        assert len(b.recv_all(0.3)) == 5
        r = d.ctl_text("stats", "--prometheus")
        assert r.returncode == 0, r.stderr
        s = parse_exposition(r.stdout)
        ports = d.ports()

        def port(name, metric, **extra):
            labels = {"port": name, "kind": ports[name]["kind"], **extra}
            return s[(metric, frozenset(labels.items()))]

        assert port("sw.1", "squibnet_port_rx_frames_total") == 5
        assert port("sw.1", "squibnet_port_rx_bytes_total") == 500
        assert port("sw.2", "squibnet_port_tx_frames_total") == 5
        assert port("sw.2", "squibnet_port_tx_bytes_total") == 500
        assert port("sw.1", "squibnet_port_dropped_frames_total", reason="runt") == 0
        assert port(odd, "squibnet_port_up") == 0 and port("sw.1", "squibnet_port_up") == 1
        assert port("sw.1", "squibnet_port_fdb_entries") == 1
        assert s[("squibnet_forwarded_frames_total", frozenset({("decision", "flooded")}))] == 5
        st = d.ctl("stats")["switch"]
        assert s[("squibnet_ports", frozenset())] == st["ports"] == 4
        assert s[("squibnet_pool_buffers", frozenset())] == st["pool_total"]
        # every port has every per-port family
        fams = {k[0] for k in s if k[0].startswith("squibnet_port_")}
        for f in fams:
            assert {dict(k[1])["port"] for k in s if k[0] == f} == set(ports), f
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=r.stdout, capture_output=True, text=True,
                               timeout=30)
            assert p.returncode == 0 and not p.stdout.strip(), (p.stdout, p.stderr)
        else:
            print("skip: promtool (Debian package prometheus) is not installed: format checked here only")
        r = d.ctl("stats", "--prometheus", check=False)
        assert r["error"]["code"] == "EINVAL", r


def top_request(d, *args):
    """A raw `top` request; returns the socket once the switch answered OK (its first sample is
    taken then)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(d.control)
    s.sendall(("SQUIBNET-CONTROL 1 json\ntop\n" + "".join(a + "\n" for a in args) + "\n").encode())
    status = b""
    while not status.endswith(b"\n"):
        status += s.recv(1)
    assert status == b"OK\n", status
    return s


def read_all(s):
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk


def test_top_rates():
    """Frames sent between two samples show as their number over the time between them."""
    with Daemon(["stream,name=sw,listen=unix:@s.sock"]) as d:
        a, b = StreamClient(d.path("s.sock")), StreamClient(d.path("s.sock"))
        d.wait_ports(lambda p: "sw.2" in p)
        s = top_request(d, "--once", "--interval", "2")
        for i in range(100):
            a.send(eth(BROADCAST, mac(1), size=200))
        docs = [json.loads(line) for line in read_all(s).decode().splitlines()]
        assert len(docs) == 1, docs
        doc = docs[0]
        dt = doc["interval"]
        rates = {p["name"]: p for p in doc["ports"]}
        def times_dt(rate):
            # rates have one decimal, the interval six: the product is off by no more than that
            return rate * dt, 0.05 * dt + 1e-6 * rate + 1e-6

        for got, want in [(rates["sw.1"]["rx_frames_per_s"], 100), (rates["sw.1"]["rx_bits_per_s"], 100 * 200 * 8),
                          (rates["sw.2"]["tx_frames_per_s"], 100), (rates["sw.2"]["tx_bits_per_s"], 100 * 200 * 8),
                          (doc["switch"]["flooded_per_s"], 100)]:
            v, slack = times_dt(got)
            assert abs(v - want) <= slack, (got, want, dt, doc)
        assert rates["sw.2"]["rx_frames_per_s"] == 0 and rates["sw"]["state"] == "listening"
        assert len(b.recv_all(0.3)) == 100


def test_top_screens():
    """Piped, screens follow each other with no control characters; on a terminal each starts
    with ANSI home and clear; --count ends the stream; bad arguments are refused."""
    with Daemon(["stream,name=sw,listen=unix:@s.sock"]) as d:
        r = subprocess.run([d.ctl_bin, "--control", d.control, "top", "--count", "2", "--interval", "0.2"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert "\f" not in r.stdout and "\033" not in r.stdout, repr(r.stdout)
        assert r.stdout.count("squibnet top - ") == 2, r.stdout
        assert re.search(r"^PORT +KIND +STATE +RX-FRAMES/S +TX-FRAMES/S +RX-BITS/S +TX-BITS/S +DROPS/S$", r.stdout,
                         re.M), r.stdout
        assert re.search(r"^sw +stream +listening +0 +0 +0 +0 +0$", r.stdout, re.M), r.stdout
        # on a terminal
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(d.ctl_bin, [d.ctl_bin, "--control", d.control, "top", "--once", "--interval", "0.2"])
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        assert out.startswith(b"\033[H\033[Jsquibnet top - "), out[:80]
        for args, want in [(["--interval", "0"], "bad interval"), (["--count", "x"], "bad count"),
                           (["--frobnicate"], "unexpected argument")]:
            r = d.ctl_text("top", *args)
            assert r.returncode == 1 and want in r.stderr, (args, r.stderr)
        # a client that goes away ends its stream: the switch carries on
        s = top_request(d, "--interval", "0.1")
        time.sleep(0.3)
        s.close()
        time.sleep(0.2)
        assert d.proc.poll() is None and "sw" in d.ports()


if __name__ == "__main__":
    run_tests([test_prometheus, test_top_rates, test_top_screens])
