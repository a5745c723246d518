#!/usr/bin/env python3
"""test_vm_vhost.py - the vm suite over vhost-user: a real QEMU guest on squibnet's vhost-user-net
back-end talks to a second guest on a stream port.

Guest a runs with its RAM in a shared memfd (`-object memory-backend-memfd,share=on -numa
node,memdev=m`) and `-netdev vhost-user` on a `-chardev socket` to the switch's
`vhost-user,listen=` port, so its virtio-net rings are processed by the switch itself; guest b
uses `-netdev stream` as in test_vm.py. A pings b and sends it 1 MiB with nc; the test passes
when the ping works, both md5 sums match the host's, and squibnetctl shows a's MAC learned
behind the vhost-user port with the payload counted there. Then guest a's QEMU is killed and
a fresh one attaches to the same port: it must be able to ping b again (reconnect).

Kernel, initramfs and guest handling come from test_vm.py (imported). Same environment
variables; exits 77 without QEMU, a static busybox or the kernel.
"""

import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_vm as vm  # noqa: E402
from test_vm import Fail, Skip, Stage, log, scaled, sntest  # noqa: E402

MEM = "256M"   # test_vm.Guest gives every guest -m 256M; the memfd backend must match


def start_switch(squibnet, tmp):
    sock = os.path.join(tmp, "switch.sock")
    vsock = os.path.join(tmp, "vhost.sock")
    ctl = os.path.join(tmp, "ctl.sock")
    logf = open(os.path.join(tmp, "squibnet.log"), "wb")
    proc = sntest.popen([squibnet, "-v", "--port", f"stream,listen=unix:{sock},name=st",
                         "--port", f"vhost-user,listen={vsock},name=vu", "--control", ctl],
                        stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                        start_new_session=True)
    logf.close()
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = vm.read_log(tmp, "squibnet.log")
            if "unknown port kind 'vhost-user'" in text:
                raise Skip("this squibnet was built without vhost-user")
            raise Fail(f"squibnet exited with {proc.returncode} at start:\n{text}")
        if all(os.path.exists(p) for p in (sock, vsock, ctl)):
            return proc, sock, vsock, ctl
        time.sleep(0.05)
    vm.stop(proc, "squibnet")
    raise Fail(f"squibnet made no sockets within 10 s:\n{vm.read_log(tmp, 'squibnet.log')}")


def vhost_guest(qemu, kernel, initrd, vsock, tmp, role="a"):
    """A test_vm.Guest whose NIC is vhost-user: RAM in a shared memfd so the switch can map it."""
    g = vm.Guest(role, qemu, kernel, initrd, "vhost-user,id=n0,chardev=vu0", tmp)
    i = g.cmd.index("-netdev")
    g.cmd[i:i] = ["-object", f"memory-backend-memfd,id=mem0,share=on,size={MEM}",
                  "-numa", "node,memdev=mem0",
                  "-chardev", f"socket,id=vu0,path={vsock}"]
    # No MSI-X: QEMU 7.2 under TCG (no KVM irqfd) segfaults in msix_set_vector_notifiers()
    # when vhost starts; with INTx the call eventfds are read by QEMU and injected as usual.
    i = next(k for k, a in enumerate(g.cmd) if a.startswith("virtio-net-pci,"))
    g.cmd[i] += ",vectors=0"
    return g


def wait_done(guests, switch, tmp, timeout, what="done"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(g.mark(what) for g in guests):
            return
        if any(g.mark("FAIL") for g in guests):
            time.sleep(2)
            break
        dead = [g for g in guests if g.proc.poll() is not None and not g.mark(what)]
        if dead:
            raise Fail(f"guest {dead[0].role} exited ({dead[0].proc.returncode}) before it was done:\n"
                       f"{dead[0].tail()}")
        if switch.poll() is not None:
            raise Fail(f"squibnet died ({switch.returncode}):\n{vm.read_log(tmp, 'squibnet.log')}")
        time.sleep(0.1)
    else:
        raise Fail(f"guests not done within {timeout:.0f} s:\n" + "\n".join(g.tail() for g in guests))
    fails = [f"{g.role}: {text}" for g in guests for _, text in g.marks if text.startswith("FAIL")]
    if fails:
        raise Fail("guest reported failure: " + "; ".join(fails) + "\n" + "\n".join(g.tail() for g in guests))


def check_switch(ctl_bin, ctl):
    """a's MAC behind the vhost-user port, b's behind a stream client; the payload went in
    through the vhost-user port and out through b's."""
    ports, why = vm.squibnetctl(ctl_bin, ctl, "ports")
    if ports is None:
        raise Fail(why)
    fdb, why = vm.squibnetctl(ctl_bin, ctl, "fdb")
    if fdb is None:
        raise Fail(why)
    by_name = {p["name"]: p for p in ports["ports"]}
    learned = {e["mac"].lower(): e["port"] for e in fdb["fdb"]}
    for p in by_name.values():
        log(f"switch port {p['name']} ({p.get('state')}, {p.get('peer')}): "
            + ", ".join(f"{k}={v}" for k, v in p.get("stats", {}).items() if v))
    if learned.get(vm.MACS["a"]) != "vu":
        raise Fail(f"guest a's MAC is not behind the vhost-user port: {fdb['fdb']}")
    pb = by_name.get(learned.get(vm.MACS["b"], ""), {})
    if pb.get("parent") != "st":
        raise Fail(f"guest b's MAC is not behind a stream client: {fdb['fdb']}")
    st = by_name["vu"]["stats"]
    if by_name["vu"]["state"] != "up" or st.get("rx_bytes", 0) < vm.PAYLOAD_SIZE or not st.get("tx_frames"):
        raise Fail(f"the vhost-user port did not carry the payload: {by_name['vu']}")
    bad = {k: st[k] for k in ("drop_bad_framing", "drop_runt", "drop_oversize") if st.get(k)}
    if bad:
        raise Fail(f"the vhost-user port dropped malformed frames: {bad}")
    log("switch ok: a behind vu (vhost-user), b behind " + pb["name"])


def run():
    qemu, busybox = vm.find_prereqs()
    squibnet = os.environ.get("SQUIBNET")
    if not (squibnet and os.path.exists(squibnet)):
        raise Fail("SQUIBNET must name the squibnet binary (meson sets it)")
    ctl_bin = os.environ.get("SQUIBNETCTL")
    cache = os.environ.get("SQUIBNET_VM_CACHE") or os.path.join(os.getcwd(), "vm-cache")
    timeout = scaled(float(os.environ.get("SQUIBNET_VM_TIMEOUT", "300")))

    with Stage("kernel"):
        kernel, modules = vm.get_kernel(cache)

    tmp = tempfile.mkdtemp(prefix="squibnet-vmvu-")
    switch, guests = None, []
    ok = False
    try:
        with Stage("initramfs"):
            payload = random.Random(vm.PAYLOAD_SEED).randbytes(vm.PAYLOAD_SIZE)
            want_md5 = hashlib.md5(payload).hexdigest()
            initrd = os.path.join(tmp, "initrd.cpio")
            vm.build_initramfs(initrd, busybox, modules, payload)

        with Stage("switch"):
            switch, sock, vsock, ctl = start_switch(squibnet, tmp)

        with Stage("guests"):
            b = vm.Guest("b", qemu, kernel, initrd, f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}", tmp)
            a = vhost_guest(qemu, kernel, initrd, vsock, tmp)
            for g in (b, a):
                log(f"guest {g.role}: {' '.join(g.cmd)}")
                g.start()
                guests.append(g)
            wait_done(guests, switch, tmp, timeout)
            if not a.mark("ping ok"):
                raise Fail("guest a never printed 'ping ok'")

        with Stage("switch-counters"):
            check_switch(ctl_bin, ctl)

        with Stage("verdict"):
            sums = {g.role: g.mark("md5 ")[1].split()[1] for g in guests}
            log(f"md5: host {want_md5}, a sent {sums['a']}, b received {sums['b']}")
            if sums["a"] != want_md5 or sums["b"] != want_md5:
                raise Fail("md5 mismatch")

        # The front-end goes away without a word (QEMU killed) and a new one attaches to the
        # same port: it must get working rings again. Guest b is done with nc but still up;
        # the new guest a pings it (nc would find no listener: its failure is not ours).
        with Stage("reconnect"):
            vm.stop(a.proc, "guest a", grace=0.1)
            deadline = time.monotonic() + scaled(10)
            while True:
                ports, _ = vm.squibnetctl(ctl_bin, ctl, "ports")
                vu = {p["name"]: p for p in (ports or {}).get("ports", [])}.get("vu", {})
                if vu.get("state") == "down":
                    break
                if time.monotonic() > deadline:
                    raise Fail(f"the vhost-user port stayed {vu.get('state')} after its QEMU died")
                time.sleep(0.1)
            a2 = vhost_guest(qemu, kernel, initrd, vsock, tmp, role="a")
            a2.logpath = os.path.join(tmp, "guest-a2.log")
            log(f"guest a (again): {' '.join(a2.cmd)}")
            a2.start()
            guests[1] = a2
            deadline = time.monotonic() + timeout
            while not a2.mark("ping ok") and not a2.mark("FAIL"):
                if time.monotonic() > deadline or a2.proc.poll() is not None:
                    raise Fail(f"the reconnected guest a never pinged b:\n{a2.tail()}")
                time.sleep(0.1)
            if not a2.mark("ping ok"):
                raise Fail(f"the reconnected guest a failed:\n{a2.tail()}")
            log("reconnect ok: a new QEMU on the same vhost-user port pinged b")

        with Stage("shutdown"):
            for g in guests:
                vm.stop(g.proc, f"guest {g.role}", grace=2)
            switch.send_signal(signal.SIGTERM)
            try:
                rc = switch.wait(scaled(10))
            except subprocess.TimeoutExpired:
                raise Fail("squibnet did not exit within 10 s of SIGTERM")
            if rc != 0:
                raise Fail(f"squibnet exited with {rc}:\n{vm.read_log(tmp, 'squibnet.log')}")
            report = sntest.valgrind_report(switch.valgrind_log)
            if report:
                raise Fail(report)
            text = vm.read_log(tmp, "squibnet.log")
            if "protocol error" in text:
                raise Fail("QEMU's messages were refused:\n" + text)
        ok = True
    finally:
        for g in guests:
            vm.stop(g.proc, f"guest {g.role}")
        vm.stop(switch, "squibnet")
        if not ok and switch:
            print("--- squibnet log ---\n" + vm.read_log(tmp, "squibnet.log")[-20000:], flush=True)
        vm.keep_or_remove(tmp, ok)


def main():
    return vm.run_test(run, lambda _: "vm: a vhost-user guest pinged a stream guest, moved 1 MiB and "
                       "reattached after its QEMU died")


if __name__ == "__main__":
    sys.exit(sntest.finish(main()))
