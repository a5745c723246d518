#!/usr/bin/env python3
"""Listening sockets of the real daemon under abuse: addresses that must be refused, and
(below) what a listener does at the descriptor limit, the modes its socket files get, and a
control socket that idle clients must not lock.

Needs SQUIBNET and SQUIBNETCTL (see sntest.py); exits 77 when they are missing."""

from sntest import Daemon, run_tests


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


if __name__ == "__main__":
    run_tests([
        test_tcp_ports_out_of_range_refused,
    ])
