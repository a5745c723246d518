#!/usr/bin/env python3
"""Checksum and segmentation offloads through the real daemon, seen from vhost-user front-ends
(vufront.py, playing QEMU) and a stream client.

Ports: va and vb negotiate every offload, vc is offload=off (no offload features are offered
on it), st is a stream listener (plain frames only). A large TCP or UDP frame from va reaches vb
whole, with its virtio-net header as va sent it, and vc and the stream client as segments whose
every length and checksum is right (gsopkt.py checks them); a partial checksum is filled in for
the plain ports; malformed headers are dropped and counted on va (drop_bad_offload) and nothing
of them reaches anyone; a header on vc, which negotiated nothing, is refused the same way."""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from sntest import BROADCAST, Daemon, StreamClient, eth, mac, run_tests  # noqa: E402
import gsopkt as g  # noqa: E402
import vufront as vf  # noqa: E402

PORTS = ["stream,listen=unix:@s.sock,name=st", "vhost-user,listen=@va.sock,name=va",
         "vhost-user,listen=@vb.sock,name=vb", "vhost-user,listen=@vc.sock,name=vc,offload=off"]
BASE = vf.F_VERSION_1 | vf.F_MRG_RXBUF
MA, MB, MC, MS, MX = mac(1), mac(2), mac(3), mac(4), mac(99)


class Setup:
    """The daemon, three front-ends and a stream client that learned each other's MACs."""

    def __enter__(self):
        self.d = Daemon(PORTS).__enter__()
        try:
            self.a = vf.Frontend(self.d.path("va.sock"))
            self.a.setup(features=BASE | vf.F_OFFLOADS, rx_buffers=200)
            self.b = vf.Frontend(self.d.path("vb.sock"))
            self.b.setup(features=BASE | vf.F_OFFLOADS, rx_buffers=200)
            self.c = vf.Frontend(self.d.path("vc.sock"))
            self.c.setup(features=BASE, rx_buffers=200)
            self.s = StreamClient(self.d.path("s.sock"))
            self.d.wait_ports(lambda p: all(p[n]["state"] == "up" for n in ("va", "vb", "vc"))
                              and any(x["parent"] == "st" and x["state"] == "up" for x in p.values()))
            for fe, m in ((self.a, MA), (self.b, MB), (self.c, MC)):
                fe.send_frame(eth(BROADCAST, m, b"hello"))
            self.s.send(eth(BROADCAST, MS, b"hello"))
            for fe in (self.a, self.b, self.c):
                assert len(fe.recv_packets(3, timeout=2)) == 3
            assert len(self.s.recv_all(0.3)) == 3
        except BaseException:
            self.d.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for fe in (self.a, self.b, self.c):
            fe.close()
        self.s.close()
        return self.d.__exit__(*exc)

    def stats(self, name):
        return self.d.ports()[name]["stats"]

    def quiet(self):
        """Nothing more arrives anywhere."""
        for fe in (self.a, self.b, self.c):
            assert fe.recv_packets(1, timeout=0.2) == [], "a front-end got a frame"
        assert self.s.recv_all(0.2) == [], "the stream client got a frame"


def frames_of(pkts):
    return [f for _, f in pkts]


def test_negotiated_offloads_shown():
    with Setup() as t:
        p = t.d.ports()
        assert p["va"]["offload_tx"] == "csum,tso4,tso6,ecn,uso4,uso6", p["va"]
        assert p["va"]["offload_rx"] == "csum,tso4,tso6,ecn,uso4,uso6", p["va"]
        assert p["vc"]["offload_tx"] == p["vc"]["offload_rx"] == "", p["vc"]
        st = [x for x in p.values() if x["parent"] == "st"][0]
        assert st["offload_tx"] == st["offload_rx"] == "", st
        offered = t.a.get_u64(vf.GET_FEATURES)
        assert offered & vf.F_OFFLOADS == vf.F_OFFLOADS, f"{offered:#x}"
    # offload=off offers none of them
    with Daemon(PORTS[3:]) as d:
        fe = vf.Frontend(d.path("vc.sock"))
        try:
            offered = fe.get_u64(vf.GET_FEATURES)
        finally:
            fe.close()
        assert offered & vf.F_OFFLOADS == 0, f"{offered:#x}"
    # a front-end that leaves them out gets plain frames on a port that offers them
    with Daemon(PORTS[1:2]) as d:
        fe = vf.Frontend(d.path("va.sock"))
        try:
            fe.setup(features=BASE | vf.F_CSUM | vf.F_HOST_TSO4)
            d.wait_ports(lambda p: p["va"]["state"] == "up")
            p = d.ports()["va"]
            assert p["offload_tx"] == "" and p["offload_rx"] == "csum,tso4", p
        finally:
            fe.close()


def tso_case(t, dst, ipv, proto, size, mss, flags=g.ACK | g.PSH):
    """va sends a GSO frame of @size payload bytes to @dst; returns what vb, vc and the stream
    client got."""
    f = g.build(dst, MA, ipv=ipv, proto=proto, payload=g.pattern(size, seed=ipv + proto), flags=flags)
    t.a.send_frame(f.data, vhdr=vf.vnet_hdr(*f.vnet(gso_size=mss)))
    nseg = (size + mss - 1) // mss
    return f, t.b.recv_packets(1, timeout=2), t.c.recv_packets(nseg, timeout=2), t.s.recv_all(0.3)


def test_gso_whole_to_offload_port_segments_to_the_others():
    with Setup() as t:
        cases = [(4, g.TCP, 20000, 1448, g.ACK | g.PSH | g.FIN), (6, g.TCP, 30000, 1428, g.ACK | g.CWR | g.PSH),
                 (4, g.UDP, 9000, 1472, 0), (6, g.UDP, 4000, 1000, 0), (4, g.TCP, 500, 1448, g.ACK)]
        for ipv, proto, size, mss, flags in cases:
            what = f"IPv{ipv} {'TCP' if proto == g.TCP else 'UDP'} {size} B / {mss}"
            f, at_b, at_c, at_s = tso_case(t, MX, ipv, proto, size, mss, flags)
            # the port that negotiated the offload gets the frame and its header as they came
            assert len(at_b) == 1, f"{what}: vb got {len(at_b)} packets"
            hdr, frame = at_b[0]
            assert frame == f.data, f"{what}: vb's frame differs"
            assert vf.parse_vnet_hdr(hdr) == f.vnet(gso_size=mss), f"{what}: vb's header {vf.parse_vnet_hdr(hdr)}"
            # the others get segments, made once and the same for both
            assert frames_of(at_c) == at_s, f"{what}: vc and the stream client got different segments"
            g.check_segments(f, at_s, mss)
            for hdr, _ in at_c:
                assert vf.parse_vnet_hdr(hdr) == (0, 0, 0, 0, 0, 0), f"{what}: vc (no offloads) got header {hdr!r}"
        # known unicast: to the stream client alone, in segments
        f, at_b, at_c, at_s = tso_case(t, MS, 4, g.TCP, 10000, 1448)
        assert at_b == [] and at_c == [], "unicast to the stream client reached others"
        g.check_segments(f, at_s, 1448)
        # and to vb alone, whole
        f, at_b, at_c, at_s = tso_case(t, MB, 6, g.TCP, 40000, 1440)
        assert [fr for _, fr in at_b] == [f.data] and at_c == [] and at_s == []
        st = t.stats("va")
        assert st["drop_bad_offload"] == 0 and st["rx_frames"] == 1 + len(cases) + 2, st
        assert t.stats("vb")["drop_oversize"] == 0


def test_partial_checksum_filled_in_for_plain_ports():
    with Setup() as t:
        for ipv, proto in ((4, g.UDP), (6, g.TCP)):
            f = g.build(MB, MA, ipv=ipv, proto=proto, payload=g.pattern(333))
            # unicast to vb: left to it, the header as it came
            t.a.send_frame(f.data, vhdr=vf.vnet_hdr(*f.vnet()))
            got = t.b.recv_packets(1)
            assert [fr for _, fr in got] == [f.data], "vb's frame differs"
            assert vf.parse_vnet_hdr(got[0][0]) == f.vnet()
            # unicast to the stream client and to vc: checksummed
            for dst, recv in ((MS, lambda: t.s.recv_all(0.3)), (MC, lambda: frames_of(t.c.recv_packets(1)))):
                f2 = g.build(dst, MA, ipv=ipv, proto=proto, payload=g.pattern(333))
                t.a.send_frame(f2.data, vhdr=vf.vnet_hdr(*f2.vnet()))
                out = recv()
                assert len(out) == 1, out
                g.check_full_csum(out[0], f2)
                c = f2.l4 + (16 if proto == g.TCP else 6)
                assert out[0][:c] + out[0][c + 2:] == f2.data[:c] + f2.data[c + 2:], "more than the checksum changed"
            # flooded: every copy verifies, and vb's says so (DATA_VALID) or leaves it to vb
            f3 = g.build(MX, MA, ipv=ipv, proto=proto, payload=g.pattern(100))
            t.a.send_frame(f3.data, vhdr=vf.vnet_hdr(*f3.vnet()))
            hdr, frame = t.b.recv_packets(1)[0]
            flags = vf.parse_vnet_hdr(hdr)[0]
            assert flags in (vf.NEEDS_CSUM, vf.DATA_VALID), flags
            if flags == vf.DATA_VALID:
                g.check_full_csum(frame, f3)
            g.check_full_csum(t.s.recv(), f3)
            g.check_full_csum(t.c.recv_packets(1)[0][1], f3)


def test_malformed_headers_dropped_and_counted():
    with Setup() as t:
        tcp = g.build(MX, MA, ipv=4, proto=g.TCP, payload=g.pattern(8000))
        udp = g.build(MX, MA, ipv=4, proto=g.UDP, payload=g.pattern(3000))
        tcp6 = g.build(MX, MA, ipv=6, proto=g.TCP, payload=g.pattern(3000))
        small = g.build(MX, MA, ipv=4, proto=g.TCP, payload=g.pattern(300))
        fl, gt, hl, gs, cs, co = tcp.vnet(gso_size=1448)
        bad = [
            ("gso_size 0", tcp, (fl, gt, hl, 0, cs, co)),
            ("csum_start beyond the frame", small, (fl, 0, 0, 0, len(small.data) + 100, co)),
            ("csum_offset beyond the frame", small, (fl, 0, 0, 0, cs, len(small.data))),
            ("csum_start in the Ethernet header", small, (fl, 0, 0, 0, 6, co)),
            ("hdr_len beyond the frame", tcp, (fl, gt, len(tcp.data) + 1, gs, cs, co)),
            ("hdr_len shorter than the headers", tcp, (fl, gt, tcp.pay - 2, gs, cs, co)),
            ("TCP gso_type on UDP", udp, (fl, vf.GSO_TCPV4, udp.pay, 1000, udp.l4, 6)),
            ("TCPv4 gso_type on IPv6", tcp6, (fl, vf.GSO_TCPV4, tcp6.pay, 1000, tcp6.l4, 16)),
            ("TCPv6 gso_type on IPv4", tcp, (fl, vf.GSO_TCPV6, hl, gs, cs, co)),
            ("UFO", udp, (fl, vf.GSO_UDP, udp.pay, 1000, udp.l4, 6)),
            ("more segments than the cap", tcp, (fl, gt, hl, 50, cs, co)),
            ("GSO without NEEDS_CSUM", tcp, (0, gt, hl, gs, cs, co)),
        ]
        for what, f, h in bad:
            t.a.send_frame(f.data, vhdr=vf.vnet_hdr(*h))
            t.a.wait_tx_used(t.a.rings[vf.TX].avail_idx)
        t.quiet()
        st = t.stats("va")
        assert st["drop_bad_offload"] == len(bad), st
        assert st["rx_frames"] == 1, st
        # the port and the others go on
        f, at_b, at_c, at_s = tso_case(t, MX, 4, g.TCP, 5000, 1448)
        assert len(at_b) == 1 and len(at_c) == 4
        g.check_segments(f, at_s, 1448)
        # segments over the MTU are oversize, not malformed
        t.a.send_frame(tcp.data, vhdr=vf.vnet_hdr(fl, gt, hl, 1600, cs, co))
        t.quiet()
        assert t.stats("va")["drop_oversize"] == 1 and t.stats("va")["drop_bad_offload"] == len(bad)
        # vc negotiated no offloads: a header that asks for one is refused the same way
        small = g.build(MX, MC, ipv=4, proto=g.UDP, payload=g.pattern(100))
        t.c.send_frame(small.data, vhdr=vf.vnet_hdr(*small.vnet()))
        t.quiet()
        assert t.stats("vc")["drop_bad_offload"] == 1, t.stats("vc")
        # in the Prometheus output too
        text = t.d.ctl_text("stats", "--prometheus").stdout
        assert f'squibnet_port_dropped_frames_total{{port="va",kind="vhost-user",reason="bad_offload"}} {len(bad)}' \
            in text, text
        assert "squibnet_port_dropped_frames_total" in text
        table = t.d.ctl_text("stats").stdout
        assert "BAD-OFFLOAD" in table, table


def test_data_valid_from_a_driver_ignored():
    """A driver must not say DATA_VALID: the switch does not pass it on as if it were true."""
    with Setup() as t:
        f = g.build(MB, MA, ipv=4, proto=g.UDP, payload=g.pattern(50))
        t.a.send_frame(f.data, vhdr=vf.vnet_hdr(vf.DATA_VALID))
        hdr, frame = t.b.recv_packets(1)[0]
        assert frame == f.data and vf.parse_vnet_hdr(hdr)[0] == 0, vf.parse_vnet_hdr(hdr)


def test_plain_frames_from_a_port_without_offloads():
    """vc's driver negotiated no offloads and sends zero headers: plain frames, forwarded."""
    with Setup() as t:
        small = g.build(MS, MC, ipv=4, proto=g.TCP, payload=g.pattern(100))
        t.c.send_frame(small.data)
        assert t.s.recv_all(0.3) == [small.data]


if __name__ == "__main__":
    run_tests([
        test_negotiated_offloads_shown,
        test_gso_whole_to_offload_port_segments_to_the_others,
        test_partial_checksum_filled_in_for_plain_ports,
        test_malformed_headers_dropped_and_counted,
        test_data_valid_from_a_driver_ignored,
        test_plain_frames_from_a_port_without_offloads,
    ])
