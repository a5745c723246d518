#!/usr/bin/env python3
"""test_config.py - squibnet --config FILE: errors with their line, reload (SIGHUP and
squibnetctl reload) that changes only what changed, and squibnetctl save written back and
loaded again."""

import os
import signal
import subprocess
import tempfile
import time

from sntest import (BROADCAST, Daemon, StreamClient, binary, eth, mac, run_tests)


class ConfDaemon(Daemon):
    """The daemon on a configuration file FILE in its own temp dir; '@' in the text stands for
    that dir."""

    def __init__(self, text, expect_start=True):
        tmp = tempfile.mkdtemp(prefix="sn-conf-")
        self.conf = os.path.join(tmp, "sn.conf")
        self.write(text, tmp)
        super().__init__([], extra=["--config", self.conf], tmp=tmp, expect_start=expect_start)
        self.own_tmp = True

    def write(self, text, tmp=None):
        with open(self.conf, "w") as f:
            f.write(text.replace("@", (tmp or self.tmp) + "/"))


def start_fails(text, *extra):
    """Runs the daemon on a file holding @text; returns its stderr, asserting it refused to start."""
    squibnet = binary("SQUIBNET", "tools/squibnet")
    with tempfile.TemporaryDirectory(prefix="sn-conf-") as tmp:
        conf = os.path.join(tmp, "bad.conf")
        with open(conf, "w") as f:
            f.write(text.replace("@", tmp + "/"))
        r = subprocess.run([squibnet, "--config", conf, "--control", os.path.join(tmp, "c.sock"), *extra],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0, f"started with {text!r}"
        return r.stderr.replace(conf, "FILE")


def test_errors_name_file_and_line():
    cases = [
        ("# a comment\n\nport stream,name=a,listen=unix:@a.sock,x=1\n",
         "FILE:3: unknown key 'x' for port kind 'stream'"),
        ("port stream,listen=unix:@a.sock\n", "FILE:1: port needs name=NAME"),
        ("port strem,name=a,listen=unix:@a.sock\n", "FILE:1: unknown port kind 'strem'"),
        ("port stream,name=a,listen=unix:@a.sock\nport stream,name=a,listen=unix:@b.sock\n",
         "FILE:2: port 'a' is defined at line 1 already"),
        ("set fdb-maxx=3\n", "FILE:1: unknown setting 'fdb-maxx'"),
        ("set fdb-max=0\n", "FILE:1: bad value '0' for setting 'fdb-max'"),
        ("set fdb-evict=maybe\n", "FILE:1: bad value 'maybe' for setting 'fdb-evict'"),
        ("\n\n  listen foo\n", "FILE:3: unknown directive 'listen'"),
        ("fdb 52:54:00:00:00:0g up\n", "FILE:1: '52:54:00:00:00:0g' is not a MAC address"),
        ("fdb 01:00:5e:00:00:01 up\n", "FILE:1: 01:00:5e:00:00:01 is a multicast address"),
        ("fdb 52:54:00:00:00:01 up vlan=4096\n", "FILE:1: 'vlan=4096'"),
        ("port stream,name=a,listen=unix:@a.sock\nport\n", "FILE:2: usage: port SPEC"),
        ("capture @x.pcap,filter=\"tcp\n", "FILE:1: unterminated quote"),
        # a line that parses but cannot be applied: the start fails, naming it
        ("port stream,name=a,listen=tcp:127.0.0.1:0\n", "FILE:1: a: bad value"),
        ("port stream,name=a,connect=unix:@none.sock\nfdb 52:54:00:00:00:01 nosuch\n",
         "FILE:2: fdb: no data port of that name"),
    ]
    for text, want in cases:
        err = start_fails(text)
        assert want in err, f"{text!r}: {err!r} does not say {want!r}"
    err = start_fails("port stream,name=a,listen=unix:@a.sock\n", "--port", "stream,listen=unix:/tmp/x")
    assert "--port and --config do not go together" in err, err
    err = start_fails("", "--fdb-max", "10")
    assert "--fdb-max and --config" in err, err


def test_comments():
    """A '#' that starts a word ends the line, after any directive; one inside a word is part
    of it."""
    with ConfDaemon("# the switch\n"
                    "set fdb-max=100   # a cap\n"
                    "port stream,name=up,connect=unix:@no#body.sock   # a dialing port\n"
                    "fdb 52:54:00:00:00:01 up   # pinned\n"
                    "capture @all.pcap,filter=\"not arp\",ports=up # of one port\n"
                    "  # indented\n") as d:
        assert d.ctl("stats")["switch"]["fdb_max"] == 100
        assert "no#body.sock " in d.ports()["up"]["peer"], d.ports()["up"]
        assert [e["mac"] for e in d.fdb()] == ["52:54:00:00:00:01"]
        caps = d.ctl("capture", "list")["captures"]
        assert len(caps) == 1 and caps[0]["filter"] == "not arp", caps


def test_settings_and_static_entries():
    with ConfDaemon("set fdb-max=100 fdb-aging=60\nset txq-len=64\n"
                    "port stream,name=up,connect=unix:@nobody.sock\n"
                    "fdb 52:54:00:00:00:01 up vlan=7\n") as d:
        st = d.ctl("stats")["switch"]
        assert st["fdb_max"] == 100, st
        assert d.ports()["up"]["txq_len"] == 64
        assert d.ctl("set")["settings"]["sock_buf"] == 1 << 20
        fdb = d.fdb()
        assert [(e["mac"], e["vlan"], e["port"], e["static"]) for e in fdb] == \
            [("52:54:00:00:00:01", 7, "up", True)], fdb
        # run time: fdb-max changes, txq-len waits for a restart; the entry moves to VLAN 8
        d.write("set fdb-max=200 fdb-aging=60 sock-buf=0\nset txq-len=128\n"
                "port stream,name=up,connect=unix:@nobody.sock\n"
                "fdb 52:54:00:00:00:01 up vlan=8\n")
        r = d.ctl_text("reload")
        assert r.returncode == 0, r.stderr
        assert "setting fdb-max=200 (was 100)" in r.stdout, r.stdout
        assert "txq-len=128 takes effect when squibnet starts again" in r.stdout, r.stdout
        assert d.ctl("stats")["switch"]["fdb_max"] == 200
        assert d.ctl("set")["settings"]["sock_buf"] == 0
        assert d.ports()["up"]["txq_len"] == 64
        assert [(e["vlan"], e["static"]) for e in d.fdb()] == [(8, True)], d.fdb()
        # a setting no longer in the file goes back to its default
        d.write("port stream,name=up,connect=unix:@nobody.sock\n")
        assert d.ctl_text("reload").returncode == 0
        assert d.ctl("stats")["switch"]["fdb_max"] == 8192
        assert d.ctl("set")["settings"]["sock_buf"] == 1 << 20
        assert d.fdb() == []


def test_reload_keeps_unchanged_ports():
    """The point of a reload: a client of a listener whose line did not change keeps its
    connection (and keeps forwarding); the client of a removed listener loses its; a changed
    port is made again; a new one appears."""
    text = ("port stream,name=keep,listen=unix:@keep.sock\n"
            "port stream,name=gone,listen=unix:@gone.sock\n"
            "port stream,name=change,listen=unix:@change.sock\n")
    with ConfDaemon(text) as d:
        k1 = StreamClient(d.path("keep.sock"))
        k2 = StreamClient(d.path("keep.sock"))
        g = StreamClient(d.path("gone.sock"))
        c = StreamClient(d.path("change.sock"))
        d.wait_ports(lambda p: len(p) == 7)
        # a port added by hand is no file's: reloads leave it
        d.ctl("port", "add", "stream,name=byhand,connect=unix:" + d.path("nobody.sock"))
        d.write("port stream,listen=unix:@keep.sock,name=keep\n"      # the same keys, another order
                "port stream,name=change,listen=unix:@change.sock,framing=vde\n"
                "port seqpacket,name=new,listen=@new.sock\n")
        d.proc.send_signal(signal.SIGHUP)
        ports = d.wait_ports(lambda p: "new" in p and "gone" not in p)
        assert g.expect_eof(), "the removed listener's client kept its connection"
        assert c.expect_eof(), "the changed listener's client kept its connection"
        assert "keep.1" in ports and "keep.2" in ports and "byhand" in ports, ports
        assert "framing=vde" in ports["change"]["peer"], ports["change"]
        assert not os.path.exists(d.path("gone.sock")), "the removed listener left its socket file"
        f = eth(BROADCAST, mac(1), b"still here")
        k1.send(f)
        assert k2.recv(2.0) == f, "an unchanged port's clients stopped forwarding"
        # the same file again: nothing changes
        r = d.ctl_text("reload")
        assert r.returncode == 0 and "0 added, 0 removed, 0 changed, 3 unchanged" in r.stdout, r.stdout
        k1.send(f)
        assert k2.recv(2.0) == f


def test_reload_with_errors():
    """A file that does not load changes nothing and says where it is wrong; in a file that loads,
    a line that fails does not keep the others from being applied."""
    with ConfDaemon("port stream,name=a,listen=unix:@a.sock\n") as d:
        d.write("port stream,name=a,listen=unix:@a.sock\nport stream,name=b,listen=unix:@b.sock,bogus=1\n")
        r = d.ctl_text("reload")
        assert r.returncode == 1 and f"{d.conf}:2: unknown key 'bogus'" in r.stderr, r.stderr
        assert set(d.ports()) == {"a"}
        # b cannot bind (a live process has that path), c can
        other = Daemon(["stream,listen=unix:" + d.path("b.sock")])
        try:
            d.write("port stream,name=b,listen=unix:@b.sock\nport stream,name=c,listen=unix:@c.sock\n")
            d.proc.send_signal(signal.SIGHUP)
            ports = d.wait_ports(lambda p: "c" in p)
            assert "b" not in ports and "a" not in ports, ports
            # JSON: the error in the envelope
            r = d.ctl("reload", check=False)
            assert r["error"]["code"] == "EADDRINUSE" and ":1: b:" in r["error"]["message"], r
        finally:
            other.stop()
            other.__exit__(None, None, None)


def test_save_and_start_again():
    text = ("set fdb-aging=45 fdb-evict=on sock-buf=65536\n"
            "port stream,name=sw,listen=unix:@sw.sock,framing=hyperkit\n"
            "port stream,name=up,connect=unix:@up.sock\n"
            "port dgram,name=dg,listen=@dg.sock,max-peers=8\n"
            "fdb 52:54:00:00:00:05 up\n")
    with ConfDaemon(text) as d:
        cl = StreamClient(d.path("sw.sock"), framing="hyperkit")
        d.wait_ports(lambda p: "sw.1" in p)
        # runtime changes: a port added by hand, with a made-up name, and a capture
        added = d.ctl("port", "add", f"seqpacket,listen={d.path('sp.sock')}")["added"]
        d.ctl("capture", "start", d.path("all.pcap"), "filter=not arp", "dir=in")
        before = d.ctl("ports")["ports"]
        r = d.ctl_text("save")
        assert r.returncode == 0 and f"saved {d.conf}" in r.stdout, (r.stdout, r.stderr)
        saved = open(d.conf).read()
        assert "sw.1" not in saved, "a listener's client was written out"
        assert f"port seqpacket,listen={d.path('sp.sock')},name={added}\n" in saved, saved
        assert "fdb 52:54:00:00:00:05 up\n" in saved, saved
        assert "set fdb-aging=45\n" in saved and "set fdb-evict=on\n" in saved, saved
        assert "set sock-buf=65536\n" in saved, saved
        assert f"capture {d.path('all.pcap')},filter=not arp,dir=in\n" in saved, saved
        # save - prints the same text; the JSON form carries it
        assert d.ctl_text("save", "-").stdout == saved
        assert d.ctl("save", "-")["config"] == saved
        cl.close()
        d.stop()
        # the saved file starts the same switch
        d2 = Daemon([], extra=["--config", d.conf], tmp=d.tmp)
        try:
            after = d2.ctl("ports")["ports"]
            assert [(p["name"], p["kind"]) for p in after] == \
                [(p["name"], p["kind"]) for p in before if p["name"] != "sw.1"], (after, before)
            assert [(e["mac"], e["port"]) for e in d2.fdb()] == [("52:54:00:00:00:05", "up")]
            caps = d2.ctl("capture", "list")["captures"]
            assert len(caps) == 1 and caps[0]["filter"] == "not arp", caps
            # save keeps the file's mode
            os.chmod(d.conf, 0o640)
            assert d2.ctl_text("save").returncode == 0
            assert os.stat(d.conf).st_mode & 0o777 == 0o640
        finally:
            d2.stop()


def test_port_set_is_saved():
    """A port's policy changed at run time (port set) is in what save writes, so a reload of the
    saved file finds the port unchanged and its clients keep their connections."""
    with ConfDaemon("port stream,name=vms,listen=unix:@vms.sock,mode=0640\n") as d:
        a = StreamClient(d.path("vms.sock"))
        b = StreamClient(d.path("vms.sock"))
        d.wait_ports(lambda p: "vms.2" in p)
        d.ctl("port", "set", "vms", "trunk=10+20-22", "native=10", "isolated=off", "max-macs=7")
        saved = d.ctl("save", "-")["config"]
        line = [x for x in saved.splitlines() if x.startswith("port ")]
        assert line == ['port stream,name=vms,listen=unix:' + d.path("vms.sock") +
                        ',mode=0640,trunk="10,20-22",native=10,max-macs=7'], line
        d.ctl("port", "set", "vms", "vlan=none", "max-macs=0")
        assert d.ctl_text("save").returncode == 0
        assert "port stream,name=vms,listen=unix:" + d.path("vms.sock") + ",mode=0640\n" in open(d.conf).read()
        r = d.ctl_text("reload")
        assert r.returncode == 0 and "0 changed, 1 unchanged" in r.stdout, r.stdout
        f = eth(BROADCAST, mac(1), b"same port")
        a.send(f)
        assert b.recv(2.0) == f, "the reload made the port again"


def test_captures_follow_the_file():
    with Daemon([]) as d:
        r = d.ctl("capture", "start", d.path("probe.pcap"), check=False)
        if "error" in r and r["error"]["code"] == "ENOTSUP":
            print("skip: built without libpcap: no captures")
            return
    with ConfDaemon("capture @a.pcap\ncapture @b.pcap,dir=out\n") as d:
        ids = {c["file"]: c["id"] for c in d.ctl("capture", "list")["captures"]}
        assert set(ids) == {d.path("a.pcap"), d.path("b.pcap")}, ids
        # a capture started by hand is not the file's: a reload leaves it alone
        mine = d.ctl("capture", "start", d.path("mine.pcap"))["id"]
        d.write("capture @a.pcap\ncapture @c.pcap\n")
        r = d.ctl_text("reload")
        assert r.returncode == 0, r.stderr
        now = {c["file"]: c["id"] for c in d.ctl("capture", "list")["captures"]}
        assert now[d.path("a.pcap")] == ids[d.path("a.pcap")], "an unchanged capture was started again"
        assert d.path("b.pcap") not in now and d.path("c.pcap") in now, now
        assert now[d.path("mine.pcap")] == mine


def test_no_config_file():
    with Daemon(["stream,listen=unix:@s.sock"]) as d:
        r = d.ctl_text("reload")
        assert r.returncode == 1 and "without a configuration file" in r.stderr, r.stderr
        r = d.ctl_text("save")
        assert r.returncode == 1 and "without a configuration file" in r.stderr, r.stderr
        r = d.ctl_text("save", "-")
        assert r.returncode == 0 and "port stream,listen=unix:" in r.stdout, r.stdout
        r = d.ctl_text("save", "x.conf")
        assert r.returncode == 1 and "neither" in r.stderr, r.stderr
        # SIGHUP without a file: the captures' reopen only, the switch carries on
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.1)
        assert d.proc.poll() is None and len(d.ports()) == 1


if __name__ == "__main__":
    run_tests([
        test_errors_name_file_and_line,
        test_comments,
        test_settings_and_static_entries,
        test_reload_keeps_unchanged_ports,
        test_reload_with_errors,
        test_save_and_start_again,
        test_port_set_is_saved,
        test_captures_follow_the_file,
        test_no_config_file,
    ])
