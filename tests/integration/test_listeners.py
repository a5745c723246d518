#!/usr/bin/env python3
"""Listening sockets of the real daemon under abuse: addresses that must be refused, and
(below) what a listener does at the descriptor limit, the modes its socket files get, and a
control socket that idle clients must not lock.

Needs SQUIBNET and SQUIBNETCTL (see sntest.py); exits 77 when they are missing."""

import grp
import os
import socket
import stat

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


if __name__ == "__main__":
    run_tests([
        test_tcp_ports_out_of_range_refused,
        test_socket_files_0600_under_umask_000,
        test_mode_and_group_keys,
        test_bad_mode_and_group_refused,
    ])
