#!/usr/bin/env python3
"""test_vm_vxlan.py - the vm suite across two "hosts": two squibnet daemons joined by VXLAN,
a real QEMU guest on each.

Host A and host B are network namespaces joined by a veth pair (10.67.0.1 and .2, MTU 1500);
each runs its own squibnet with a stream listener and a vxlan port (VNI 100) whose remote is
the other host. Guest a attaches to A's switch, guest b to B's, with `-netdev stream`; both
NICs get host_mtu=1450 (virtio-net's MTU feature), the overlay's MTU over a 1500-byte
underlay, so the guests' TCP fits the tunnel. Guest a pings b and sends it 1 MiB with nc, as in
test_vm.py. It passes when the ping works, both md5 sums match the host's, and each switch
learned the remote guest's MAC behind its vxlan port with the other host as DST, the payload
counted there, nothing dropped as oversize.

Without root (no namespaces) the two daemons share the host's loopback instead, on 127.0.0.1
and 127.0.0.2, and the guests keep MTU 1500 (lo's MTU leaves room). Kernel, initramfs and guest
handling come from test_vm.py (imported). Same environment variables; exits 77 without QEMU, a
static busybox or the kernel.
"""

import ctypes
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_vm as vm  # noqa: E402
from test_vm import Fail, Skip, Stage, log  # noqa: E402

VNI = 100
CLONE_NEWNET = 0x40000000


def enter_netns(name):
    def enter():
        os.setsid()
        if name is None:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            os._exit(127)
        os.close(fd)
    return enter


class Hosts:
    """Two namespaces and a veth between them (root), or nothing but two loopback addresses."""

    def __init__(self):
        self.ns = {}
        self.netns = os.geteuid() == 0 and shutil.which("ip") is not None
        if self.netns:
            try:
                for h, ip in (("A", "10.67.0.1"), ("B", "10.67.0.2")):
                    name = f"snvm{h}-{os.getpid()}"
                    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
                    self.ns[h] = name
                    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
                subprocess.run(["ip", "-n", self.ns["A"], "link", "add", "und", "type", "veth", "peer", "name", "und",
                                "netns", self.ns["B"]], check=True, capture_output=True)
                for h, ip in (("A", "10.67.0.1"), ("B", "10.67.0.2")):
                    subprocess.run(["ip", "-n", self.ns[h], "addr", "add", ip + "/24", "dev", "und"], check=True)
                    subprocess.run(["ip", "-n", self.ns[h], "link", "set", "und", "up"], check=True)
            except (subprocess.CalledProcessError, OSError) as e:
                log(f"no namespaces ({e}): the two daemons share the loopback instead")
                self.cleanup()
                self.netns = False
        self.ip = {"A": "10.67.0.1", "B": "10.67.0.2"} if self.netns else {"A": "127.0.0.1", "B": "127.0.0.2"}

    def cleanup(self):
        for name in self.ns.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.ns = {}


def start_switch(squibnet, tmp, hosts, h):
    sock = os.path.join(tmp, f"switch-{h}.sock")
    ctl = os.path.join(tmp, f"ctl-{h}.sock")
    other = "B" if h == "A" else "A"
    logf = open(os.path.join(tmp, f"squibnet-{h}.log"), "wb")
    spec = f"vxlan,name=vx,local={hosts.ip[h]},vni={VNI},remote={hosts.ip[other]}"
    proc = subprocess.Popen([squibnet, "-v", "--port", f"stream,name=st,listen=unix:{sock}", "--port", spec,
                             "--control", ctl], stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            preexec_fn=enter_netns(hosts.ns.get(h)))
    logf.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fail(f"squibnet {h} exited with {proc.returncode}:\n{vm.read_log(tmp, f'squibnet-{h}.log')}")
        if os.path.exists(sock) and os.path.exists(ctl):
            return proc, sock, ctl
        time.sleep(0.05)
    vm.stop(proc, f"squibnet {h}")
    raise Fail(f"squibnet {h} made no sockets within 10 s:\n{vm.read_log(tmp, f'squibnet-{h}.log')}")


def check_switch(ctl_bin, ctl, h, hosts, local_role, remote_role, mtu):
    """On host @h's switch: the local guest behind a stream client, the remote guest behind vx
    with the other host as DST, and the payload through vx."""
    ports, why = vm.squibnetctl(ctl_bin, ctl, "ports")
    if ports is None:
        raise Fail(why)
    fdb, why = vm.squibnetctl(ctl_bin, ctl, "fdb")
    if fdb is None:
        raise Fail(why)
    by_name = {p["name"]: p for p in ports["ports"]}
    entries = {e["mac"].lower(): e for e in fdb["fdb"]}
    for p in by_name.values():
        log(f"switch {h}: port {p['name']} ({p.get('state')}, {p.get('peer')}): "
            + ", ".join(f"{k}={v}" for k, v in p.get("stats", {}).items() if v))
    other = "B" if h == "A" else "A"
    e = entries.get(vm.MACS[remote_role])
    if not e or e["port"] != "vx" or e.get("dst") != hosts.ip[other]:
        raise Fail(f"switch {h}: guest {remote_role}'s MAC is not behind vx with dst {hosts.ip[other]}: "
                   f"{fdb['fdb']}")
    e = entries.get(vm.MACS[local_role])
    if not e or by_name.get(e["port"], {}).get("parent") != "st":
        raise Fail(f"switch {h}: guest {local_role}'s MAC is not behind a stream client: {fdb['fdb']}")
    vx = by_name["vx"]
    st = vx["stats"]
    key = "tx_bytes" if local_role == "a" else "rx_bytes"
    if st.get(key, 0) < vm.PAYLOAD_SIZE:
        raise Fail(f"switch {h}: vx {key} {st.get(key)} is under the payload: {vx}")
    bad = {k: st[k] for k in ("drop_runt", "drop_oversize", "drop_txq_full") if st.get(k)}
    if bad or vx.get("mtu") != mtu:
        raise Fail(f"switch {h}: vx dropped frames or has the wrong MTU ({vx.get('mtu')}, want {mtu}): {bad}")
    log(f"switch {h} ok: guest {remote_role} behind vx dst {hosts.ip[other]}, payload through")


def run():
    qemu, busybox = vm.find_prereqs()
    squibnet = os.environ.get("SQUIBNET")
    if not (squibnet and os.path.exists(squibnet)):
        raise Fail("SQUIBNET must name the squibnet binary (meson sets it)")
    ctl_bin = os.environ.get("SQUIBNETCTL")
    cache = os.environ.get("SQUIBNET_VM_CACHE") or os.path.join(os.getcwd(), "vm-cache")
    timeout = float(os.environ.get("SQUIBNET_VM_TIMEOUT", "300"))
    h = subprocess.run([squibnet, "--help"], capture_output=True, text=True, timeout=10)
    if "vxlan," not in h.stdout + h.stderr:
        raise Skip("this squibnet was built without vxlan ports")

    with Stage("kernel"):
        kernel, modules = vm.get_kernel(cache)

    tmp = tempfile.mkdtemp(prefix="squibnet-vmvx-")
    hosts = None
    switches, guests = {}, []
    ok = False
    try:
        with Stage("initramfs"):
            payload = random.Random(vm.PAYLOAD_SEED).randbytes(vm.PAYLOAD_SIZE)
            want_md5 = hashlib.md5(payload).hexdigest()
            initrd = os.path.join(tmp, "initrd.cpio")
            vm.build_initramfs(initrd, busybox, modules, payload)

        with Stage("hosts"):
            hosts = Hosts()
            log(f"hosts: {'namespaces ' + ' '.join(hosts.ns.values()) if hosts.netns else 'loopback addresses'}, "
                f"A {hosts.ip['A']}, B {hosts.ip['B']}")
            for hh in ("A", "B"):
                switches[hh] = start_switch(squibnet, tmp, hosts, hh)
            mtu = 1450 if hosts.netns else 65535 - 50

        with Stage("guests"):
            for role, hh in (("b", "B"), ("a", "A")):
                nd = f"stream,id=n0,server=off,addr.type=unix,addr.path={switches[hh][1]}"
                g = vm.Guest(role, qemu, kernel, initrd, nd, tmp)
                if hosts.netns:
                    i = next(k for k, x in enumerate(g.cmd) if x.startswith("virtio-net-pci,"))
                    g.cmd[i] += ",host_mtu=1450"
                log(f"guest {role} on host {hh}: {' '.join(g.cmd)}")
                g.start()
                guests.append(g)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all(g.mark("done") for g in guests):
                    break
                if any(g.mark("FAIL") for g in guests):
                    time.sleep(2)
                    break
                dead = [g for g in guests if g.proc.poll() is not None and not g.mark("done")]
                if dead:
                    raise Fail(f"guest {dead[0].role} exited ({dead[0].proc.returncode}) before it was done:\n"
                               f"{dead[0].tail()}")
                for hh, (proc, _, _) in switches.items():
                    if proc.poll() is not None:
                        raise Fail(f"squibnet {hh} died ({proc.returncode}):\n"
                                   f"{vm.read_log(tmp, f'squibnet-{hh}.log')}")
                time.sleep(0.1)
            else:
                raise Fail(f"guests not done within {timeout:.0f} s:\n" + "\n".join(g.tail() for g in guests))
            fails = [f"{g.role}: {text}" for g in guests for _, text in g.marks if text.startswith("FAIL")]
            if fails:
                raise Fail("guest reported failure: " + "; ".join(fails) + "\n" + "\n".join(g.tail() for g in guests))

        with Stage("switch-counters"):
            check_switch(ctl_bin, switches["A"][2], "A", hosts, "a", "b", mtu)
            check_switch(ctl_bin, switches["B"][2], "B", hosts, "b", "a", mtu)

        with Stage("verdict"):
            b, a = guests
            if not a.mark("ping ok"):
                raise Fail("guest a never printed 'ping ok'")
            sums = {g.role: g.mark("md5 ")[1].split()[1] for g in guests}
            log(f"md5: host {want_md5}, a sent {sums['a']}, b received {sums['b']}")
            if sums["a"] != want_md5 or sums["b"] != want_md5:
                raise Fail("md5 mismatch")

        with Stage("shutdown"):
            for g in guests:
                g.poweroff()
            for g in guests:
                try:
                    g.proc.wait(30)
                except subprocess.TimeoutExpired:
                    raise Fail(f"guest {g.role} did not power off within 30 s:\n{g.tail()}")
            for hh, (proc, _, _) in switches.items():
                proc.send_signal(signal.SIGTERM)
                try:
                    rc = proc.wait(10)
                except subprocess.TimeoutExpired:
                    raise Fail(f"squibnet {hh} did not exit within 10 s of SIGTERM")
                if rc != 0:
                    raise Fail(f"squibnet {hh} exited with {rc}:\n{vm.read_log(tmp, f'squibnet-{hh}.log')}")
        ok = True
    finally:
        for g in guests:
            vm.stop(g.proc, f"guest {g.role}")
        for hh, (proc, _, _) in switches.items():
            vm.stop(proc, f"squibnet {hh}")
            if not ok:
                print(f"--- squibnet {hh} log ---\n" + vm.read_log(tmp, f"squibnet-{hh}.log")[-10000:], flush=True)
        if hosts:
            hosts.cleanup()
        vm.keep_or_remove(tmp, ok)


def main():
    return vm.run_test(run, lambda _: "vm: two guests on two switches joined by VXLAN pinged and moved 1 MiB")


if __name__ == "__main__":
    sys.exit(main())
