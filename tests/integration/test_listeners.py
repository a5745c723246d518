#!/usr/bin/env python3
"""Listening sockets of the real daemon under abuse: addresses that must be refused, and
(below) what a listener does at the descriptor limit, the modes its socket files get, and a
control socket that idle clients must not lock.

Needs SQUIBNET and SQUIBNETCTL (see sntest.py); exits 77 when they are missing."""

import errno
import grp
import os
import resource
import socket
import stat
import subprocess
import tempfile
import time

from sntest import BROADCAST, Daemon, StreamClient, eth, mac, run_tests


def assert_refused(spec, *words):
    """The daemon refuses to start with SPEC, and its message holds every one of words."""
    with Daemon([spec], expect_start=False) as d:
        code = d.proc.wait(timeout=5)
        err = d.proc.stderr.read()
        assert code != 0, f"{spec} was accepted"
        for w in words:
            assert w in err, f"{spec}: message lacks {w!r}: {err!r}"


def test_tcp_ports_out_of_range_refused():
    # 4294967297 is 2^32 + 1: it used to wrap to port 1 and bind it
    for port in ("0", "65536", "4294967297", "18446744073709551617", "-1", "+80", "0x50", "80a", ""):
        assert_refused(f"stream,listen=tcp:127.0.0.1:{port}", f"'tcp:127.0.0.1:{port}'", "'listen'",
                       "port must be 1 to 65535")
    assert_refused("stream,connect=tcp:[::1]:99999", "'connect'", "port must be 1 to 65535")
    assert_refused("stream,connect=tcp:localhost:0", "'connect'", "port must be 1 to 65535")


def other_group():
    """A group that exists and this process may give its files: for root any group but its own,
    else one of its supplementary groups, else its own."""
    if os.geteuid() == 0:
        for g in grp.getgrall():
            if g.gr_gid != os.getegid():
                return g
    for gid in os.getgroups():
        if gid != os.getegid():
            try:
                return grp.getgrgid(gid)
            except KeyError:
                pass
    return grp.getgrgid(os.getegid())


def has_vhost_user(d):
    """Whether this build has vhost-user ports: asks the running daemon @d."""
    r = d.ctl_text("port", "add", f"vhost-user,listen={d.path('probe.sock')},name=probe")
    if r.returncode != 0:
        assert "vhost-user" in r.stderr, r.stderr  # an unknown kind, nothing else
        return False
    d.ctl("port", "del", "probe")
    return True


# Every kind of socket file a SPEC can create: (SPEC without its keys, file). The dgram
# connect port's file is its local= path.
SOCKET_SPECS = [
    ("stream,name=st,listen=unix:@st.sock", "st.sock"),
    ("dgram,name=dg,listen=@dg.sock", "dg.sock"),
    ("seqpacket,name=sq,listen=@sq.sock", "sq.sock"),
    ("dgram,name=dc,connect=@peer.sock,local=@dc.sock", "dc.sock"),
]


def mode_of(path):
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode), f"{path} is not a socket"
    return stat.S_IMODE(st.st_mode), st.st_gid


def test_socket_files_0600_under_umask_000():
    # under umask 000 these were 0777: any local user could attach a "VM"
    with Daemon([s for s, _ in SOCKET_SPECS], preexec_fn=lambda: os.umask(0)) as d:
        for _, f in SOCKET_SPECS:
            assert mode_of(d.path(f))[0] == 0o600, f"{f}: mode {mode_of(d.path(f))[0]:o}"
        assert mode_of(d.control)[0] == 0o600
        # added at run time: the same
        d.ctl("port", "add", f"stream,name=late,listen=unix:{d.path('late.sock')}")
        assert mode_of(d.path("late.sock"))[0] == 0o600
        if has_vhost_user(d):
            d.ctl("port", "add", f"vhost-user,name=vu,listen={d.path('vu.sock')}")
            assert mode_of(d.path("vu.sock"))[0] == 0o600, f"vhost-user: {mode_of(d.path('vu.sock'))[0]:o}"
        # and clients still get in
        a, b = StreamClient(d.path("st.sock")), StreamClient(d.path("st.sock"))
        d.wait_ports(lambda ps: "st.2" in ps)
        a.send(eth(BROADCAST, mac(1), b"hello"))
        assert b.recv() == eth(BROADCAST, mac(1), b"hello")


def test_mode_and_group_keys():
    g = other_group()
    for key in (f"group={g.gr_name}", f"group={g.gr_gid}"):
        specs = [f"{s},mode=0660,{key}" for s, _ in SOCKET_SPECS]
        with Daemon(specs, preexec_fn=lambda: os.umask(0o077)) as d:
            for _, f in SOCKET_SPECS:
                assert mode_of(d.path(f)) == (0o660, g.gr_gid), f"{f} with {key}: {mode_of(d.path(f))}"
            # mode alone keeps the default group; three digits are octal too
            d.ctl("port", "add", f"stream,name=m,listen=unix:{d.path('m.sock')},mode=640")
            assert mode_of(d.path("m.sock")) == (0o640, os.getegid())
            if has_vhost_user(d):
                d.ctl("port", "add", f"vhost-user,name=vu,listen={d.path('vu.sock')},mode=0660,{key}")
                assert mode_of(d.path("vu.sock")) == (0o660, g.gr_gid)
            # a peer can use the socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(d.path("sq.sock"))
            d.wait_ports(lambda ps: "sq.1" in ps)
            s.close()


def test_bad_mode_and_group_refused():
    for value in ("0999", "rw", "01777", "7777", "", "-600", "0x1b6", "06600"):
        assert_refused(f"stream,listen=unix:@s.sock,mode={value}", f"'{value}'", "'mode'")
    for value in ("no-such-group-squibnet", "", "99999999999999999999", "-1"):
        assert_refused(f"seqpacket,listen=@s.sock,group={value}", f"'{value}'", "'group'")
    # only a socket file the port creates has a mode
    assert_refused("stream,listen=tcp:127.0.0.1:5555,mode=0600", "'mode'")
    assert_refused("stream,connect=unix:@s.sock,mode=0600", "'mode'")
    assert_refused("seqpacket,connect=@s.sock,group=0", "'group'")


# ---- the descriptor limit ----

FD_LIMIT = 48


def cpu_seconds(pid):
    """User plus system CPU time of @pid so far: /proc/PID/stat fields 14 and 15 where there is
    a /proc, else what ps says ("M:SS.cc" on macOS)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except FileNotFoundError:
        out = subprocess.run(["ps", "-o", "time=", "-p", str(pid)], capture_output=True, text=True).stdout
        days, _, clock = out.strip().rpartition("-")
        secs = 0.0
        for part in clock.split(":"):
            secs = secs * 60 + float(part)
        return secs + 86400 * int(days or 0)


def low_fd_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def knock(addr, family=socket.AF_UNIX, kind=socket.SOCK_STREAM):
    """Starts a connection to @addr without waiting for it: the backlog may be full."""
    s = socket.socket(family, kind)
    s.setblocking(False)
    e = s.connect_ex(addr)
    assert e in (0, errno.EINPROGRESS, errno.EAGAIN), os.strerror(e)
    return s


def wait_log(log, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.seek(0)
        if text in log.read():
            return
        time.sleep(0.05)
    log.seek(0)
    raise AssertionError(f"the log never said {text!r}: {log.read()[-2000:]!r}")


def check_no_spin(d, log, fill, knocks):
    """Fills the daemon's descriptors with connections to @fill, then for one second keeps
    connecting to each of @knocks; every one is a knock() argument tuple. The daemon must not
    spin or flood its log meanwhile. Closes every connection it made."""
    clients = [knock(*fill) for _ in range(FD_LIMIT + 8)]  # the rest wait in the backlog
    try:
        wait_log(log, "Too many open files")
        time.sleep(0.2)
        cpu0, size0, t0 = cpu_seconds(d.proc.pid), os.path.getsize(log.name), time.monotonic()
        while time.monotonic() - t0 < 1.0:
            clients += [knock(*k) for k in knocks]
            time.sleep(0.02)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(d.proc.pid) - cpu0
        grown = os.path.getsize(log.name) - size0
        log.seek(size0)
        assert cpu < 0.3 * wall, f"the daemon used {cpu:.2f} s of CPU in {wall:.2f} s at the descriptor limit"
        assert grown < 2048, f"the log grew by {grown} bytes in {wall:.2f} s: {log.read(500)!r}"
        assert d.proc.poll() is None, "the daemon died at the descriptor limit"
    finally:
        for c in clients:
            c.close()


def test_descriptor_limit_tcp_listener():
    port = free_tcp_port()
    addr = ("127.0.0.1", port)
    with tempfile.TemporaryFile("w+") as log, \
            Daemon([f"stream,listen=tcp:127.0.0.1:{port},name=tcp"], stderr=log, preexec_fn=low_fd_limit) as d:
        # the control socket meets the limit too
        check_no_spin(d, log, (addr, socket.AF_INET), [(addr, socket.AF_INET), (d.control,)])
        # every client is gone: the listener takes new ones again, and they forward
        d.wait_ports(lambda ps: set(ps) == {"tcp"}, timeout=10)
        a = StreamClient(addr, family=socket.AF_INET)
        b = StreamClient(addr, family=socket.AF_INET)
        ps = d.wait_ports(lambda ps: len(ps) == 3, timeout=5)
        assert all(p["state"] == "up" for n, p in ps.items() if n != "tcp"), ps
        a.send(eth(BROADCAST, mac(1), b"after the limit"))
        assert b.recv() == eth(BROADCAST, mac(1), b"after the limit")
        b.send(eth(mac(1), mac(2), b"and back"))
        assert a.recv() == eth(mac(1), mac(2), b"and back")


def test_descriptor_limit_unix_listeners():
    # seqpacket and vhost-user listeners meet the same limit
    with tempfile.TemporaryFile("w+") as log, \
            Daemon(["stream,listen=unix:@st.sock,name=st", "seqpacket,listen=@sq.sock,name=sq"],
                   stderr=log, preexec_fn=low_fd_limit) as d:
        knocks = [(d.path("sq.sock"), socket.AF_UNIX, socket.SOCK_SEQPACKET)]
        if has_vhost_user(d):
            d.ctl("port", "add", f"vhost-user,listen={d.path('vu.sock')},name=vu")
            knocks.append((d.path("vu.sock"),))
        check_no_spin(d, log, (d.path("st.sock"),), knocks)
        d.wait_ports(lambda ps: not any(p["parent"] for p in ps.values()), timeout=10)
        a, b = StreamClient(d.path("st.sock")), StreamClient(d.path("st.sock"))
        d.wait_ports(lambda ps: sum(1 for p in ps.values() if p["parent"] == "st") == 2, timeout=5)
        a.send(eth(BROADCAST, mac(1), b"after the limit"))
        assert b.recv() == eth(BROADCAST, mac(1), b"after the limit")


# ---- the control socket's clients ----

CONTROL_CLIENTS_MAX = 64


def closed_by_peer(s, timeout):
    """What the switch sent @s before closing it, or None when it is still open after @timeout."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except socket.timeout:
        return None


def test_idle_control_clients_do_not_lock_out():
    with Daemon(["stream,listen=unix:@s.sock,name=st"]) as d:
        # a live capture streams to its client for as long as it runs: never idle (a build
        # without libpcap has no captures, and this part is left out)
        live = subprocess.Popen([d.ctl_bin, "--control", d.control, "capture", "-w", "-"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 5
            while not d.ctl("capture", "list")["captures"]:
                if live.poll() is not None:
                    err = live.stderr.read()
                    assert b"no libpcap" in err, err
                    live = None
                    break
                assert time.monotonic() < deadline, "the live capture did not start"
                time.sleep(0.02)
            # more idle connections than the server takes clients, some with half a request
            idle = []
            for i in range(CONTROL_CLIENTS_MAX + 4):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(d.control)
                if i % 2:
                    s.sendall(b"SQUIBNET-CONTROL 1\nports\n")
                idle.append(s)
            time.sleep(0.2)
            # squibnetctl gets its answer at once (ctl() gives up after 10 s; the lock-out was 30 s)
            assert "st" in d.ports()
            assert d.ctl_text("ports").returncode == 0
            # to make room, the oldest idle clients were told and closed; the newest are still open
            said = [closed_by_peer(s, 0.05) for s in idle]
            evicted = [i for i, x in enumerate(said) if x is not None]
            assert evicted and evicted == list(range(len(evicted))), f"evicted {evicted}"
            assert all(x.startswith(b"ERR EBUSY ") for x in said if x is not None), said
            assert said[-1] is None
            # the capture was not taken for an idle client, and still delivers
            a, b = StreamClient(d.path("s.sock")), StreamClient(d.path("s.sock"))
            d.wait_ports(lambda ps: "st.2" in ps)
            a.send(eth(BROADCAST, mac(1), b"captured"))
            assert b.recv() == eth(BROADCAST, mac(1), b"captured")
            if live:
                assert live.poll() is None, live.stderr.read()
                assert len(d.ctl("capture", "list")["captures"]) == 1
                assert len(live.stdout.read(24)) == 24  # the pcap file header, then the frame
            for s in idle:
                s.close()
        finally:
            if live:
                live.kill()
                live.wait()


def test_idle_control_client_times_out():
    with Daemon(["stream,listen=unix:@s.sock,name=st"]) as d:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.control)
        # a request trickled in byte by byte does not keep the connection either
        t0 = time.monotonic()
        for c in b"SQUIBNET-CONTROL 1\nports\n":
            s.send(bytes([c]))
            time.sleep(0.3)
        said = closed_by_peer(s, 20 - (time.monotonic() - t0))
        assert said is not None, "an idle control client was not closed within 20 s"
        assert said.startswith(b"ERR ETIMEDOUT "), said
        assert "st" in d.ports()


if __name__ == "__main__":
    run_tests([
        test_descriptor_limit_tcp_listener,
        test_descriptor_limit_unix_listeners,
        test_idle_control_clients_do_not_lock_out,
        test_idle_control_client_times_out,
        test_tcp_ports_out_of_range_refused,
        test_socket_files_0600_under_umask_000,
        test_mode_and_group_keys,
        test_bad_mode_and_group_refused,
    ])
