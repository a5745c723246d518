#!/usr/bin/env python3
"""test_vm_pair.py - the vm suite on QEMU 10: two guests, both on vhost-user, a measured TCP
transfer between them, restarts on both sides, and the same guests on -netdev stream.

QEMU 10.0 (unpacked by tools/fetch-qemu10.py beside Debian 12's 7.2, see
test_vm.find_qemu10()) runs vhost-user under TCG with MSI-X, so no `vectors=0` here. The
switch has two vhost-user ports, one of each mode:

  guest a  QEMU -chardev socket,server=on       <- squibnet vhost-user,connect=  (port va)
  guest b  QEMU -chardev socket,reconnect-ms=   -> squibnet vhost-user,listen=   (port vb)

1. vhost-user: a pings b and sends it the payload REPEAT times over (64 MiB) over TCP; both
   md5 sums must match the host's, and the time from a's "sending" to b's "transfer done" is
   reported as the throughput, beside the CPU time both QEMU processes ran in it (which, unlike
   the time, other programs on a shared machine hardly change; nothing timed is asserted). The
   switch must show a's MAC behind va and b's behind vb.
   The guests move it with tests/vm/guest-tcp.c (test_vm.guest_tcp(); busybox nc when the
   build could not link it statically): a sendfile()s the payload from tmpfs, b splices the
   stream into pipes and keeps it there until its end, says "transfer done", and only then
   writes it into tmpfs for the md5. So what is timed is the guests' network stacks, the
   virtio rings and the switch, not the copies busybox nc makes (which under TCG cost more
   than everything else together). squibnet.rx=splice or read on SQUIBNET_VM_APPEND makes b
   copy into the file within the timed part; squibnet.tool=nc goes back to busybox nc.
2. The VMM behind the connect port restarts: guest a's QEMU is killed and a new one started on
   the same socket path; the switch redials it and the new guest pings b.
3. The switch restarts (SIGKILL, then a new squibnet with the same ports): QEMU b redials the
   listen port by itself, the new switch dials QEMU a, and a pings b again. Neither guest is
   restarted.
4. The same transfer with the guests' offloads off (QEMU's csum=off, guest_tso4=off, ...):
   every frame is at most 1514 bytes and checksummed by the guest.
5. The same transfer between two fresh guests on `-netdev stream` to a stream port.
6. Guest a on vhost-user with offloads, guest b on `-netdev stream`: a's stack sends TSO frames
   of up to 64 KiB, which the switch segments and checksums for b's stream port (and b's plain
   frames go to a as they are). md5-checked like the others.

CONFIGS names the runs of the transfer, with each guest's netdev and whether vhost-user guests
keep QEMU's offloads (csum, guest_csum, host_tso4/6, guest_tso4/6, ...; QEMU's defaults) on.
After each vhost-user run the switch's counters must show what was negotiated, and with
offloads that large frames did cross (more bytes per frame than a 1514-byte frame has).
Exits 77 without QEMU 10, a static busybox or the kernel. Environment as test_vm.py;
SQUIBNET_VM_REPEAT changes the payload's repetitions (64); SQUIBNET_VM_CONFIGS=NAME,NAME runs
those transfers in that order, a name as often as it is given (the restarts go with the first
vhost-user one); SQUIBNET_VM_APPEND adds to the transfer guests' kernel command line (the
squibnet.* options of test_vm.INIT: squibnet.rx=, squibnet.sockbuf=, squibnet.tool=).
"""

import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_vm as vm  # noqa: E402
from test_vm import Fail, Skip, Stage, log  # noqa: E402

MEM = "256M"   # test_vm.Guest gives every guest -m 256M; the memfd backend must match
REPEAT = int(os.environ.get("SQUIBNET_VM_REPEAT", "64"))
APPEND = os.environ.get("SQUIBNET_VM_APPEND", "")   # more of the transfer guests' kernel command line

# The transfer runs: name, the netdev kind of guests a and b, and (for vhost-user) whether
# the device keeps its offloads on. The restart stages follow the first vhost-user run.
CONFIGS = [
    {"name": "vhost-user-offloads", "netdev": ("vhost-user", "vhost-user"), "offloads": True},
    {"name": "vhost-user-plain", "netdev": ("vhost-user", "vhost-user"), "offloads": False},
    {"name": "stream", "netdev": ("stream", "stream")},
    {"name": "vhost-to-stream", "netdev": ("vhost-user", "stream"), "offloads": True},
]
QEMU_OFFLOADS_OFF = ",csum=off,guest_csum=off,host_tso4=off,host_tso6=off,guest_tso4=off,guest_tso6=off"


class Switch:
    """The squibnet daemon with the pair's ports; restartable on the same paths."""

    def __init__(self, squibnet, ctl_bin, tmp):
        self.squibnet, self.ctl_bin, self.tmp = squibnet, ctl_bin, tmp
        self.sock = os.path.join(tmp, "switch.sock")
        self.qemu_a = os.path.join(tmp, "qemu-a.sock")   # guest a's QEMU listens here
        self.vsock_b = os.path.join(tmp, "vhost-b.sock")  # the switch listens here for b
        self.ctl = os.path.join(tmp, "ctl.sock")
        self.proc = None
        self.runs = 0

    def start(self):
        # a killed switch leaves its socket files: wait for the new ones, not for those
        for p in (self.sock, self.vsock_b, self.ctl):
            if os.path.exists(p):
                os.unlink(p)
        self.runs += 1
        logname = f"squibnet-{self.runs}.log"
        logf = open(os.path.join(self.tmp, logname), "wb")
        self.proc = subprocess.Popen(
            [self.squibnet, "-v", "--control", self.ctl,
             "--port", f"stream,listen=unix:{self.sock},name=st",
             "--port", f"vhost-user,connect={self.qemu_a},name=va",
             "--port", f"vhost-user,listen={self.vsock_b},name=vb"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        self.logname = logname
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log()
                if "unknown port kind 'vhost-user'" in text:
                    raise Skip("this squibnet was built without vhost-user")
                raise Fail(f"squibnet exited with {self.proc.returncode} at start:\n{text}")
            if all(os.path.exists(p) for p in (self.sock, self.vsock_b, self.ctl)):
                return
            time.sleep(0.05)
        raise Fail(f"squibnet made no sockets within 10 s:\n{self.log()}")

    def log(self):
        return vm.read_log(self.tmp, self.logname) if self.runs else "(no log)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ports(self):
        doc, why = vm.squibnetctl(self.ctl_bin, self.ctl, "ports")
        if doc is None:
            raise Fail(why)
        return {p["name"]: p for p in doc["ports"]}

    def wait_port(self, name, state, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            p = self.ports().get(name, {})
            if p.get("state") == state:
                return p
            if time.monotonic() > deadline:
                raise Fail(f"port {name} stayed {p.get('state')} ({p.get('peer')}), want {state}")
            time.sleep(0.1)

    def stop(self, sig=signal.SIGTERM):
        if not self.alive():
            return None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            raise Fail("squibnet did not exit within 10 s")


def netdev_of(config, role):
    return config["netdev"][0 if role == "a" else 1]


def make_guest(role, config, qemu, kernel, initrd, sw, tmp, suffix="", append=""):
    q, qargs = qemu
    if netdev_of(config, role) == "stream":
        g = vm.Guest(role, q, kernel, initrd, f"stream,id=n0,server=off,addr.type=unix,addr.path={sw.sock}", tmp,
                     qemu_args=qargs, append=append)
    else:
        # a: QEMU listens and the switch dials it; b: QEMU dials the switch and redials it
        chardev = (f"socket,id=vu0,path={sw.qemu_a},server=on" if role == "a"
                   else f"socket,id=vu0,path={sw.vsock_b},reconnect-ms=500")
        g = vm.Guest(role, q, kernel, initrd, "vhost-user,id=n0,chardev=vu0", tmp, qemu_args=qargs, append=append)
        i = g.cmd.index("-netdev")
        g.cmd[i:i] = ["-object", f"memory-backend-memfd,id=mem0,share=on,size={MEM}",
                      "-numa", "node,memdev=mem0", "-chardev", chardev]
        if not config.get("offloads"):
            i = next(k for k, a in enumerate(g.cmd) if a.startswith("virtio-net-pci,"))
            g.cmd[i] += QEMU_OFFLOADS_OFF
    g.logpath = os.path.join(tmp, f"guest-{config['name']}-{role}{suffix}.log")
    return g


def wait_marks(guests, sw, what, timeout):
    """Waits until every guest printed a mark starting with @what; raises on FAIL or death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(g.mark(what) for g in guests):
            return
        if any(g.mark("FAIL") for g in guests):
            time.sleep(2)
            fails = [f"{g.role}: {t}" for g in guests for _, t in g.marks if t.startswith("FAIL")]
            raise Fail("guest reported failure: " + "; ".join(fails) + "\n" + "\n".join(g.tail() for g in guests))
        dead = [g for g in guests if g.proc.poll() is not None]
        if dead:
            raise Fail(f"guest {dead[0].role} exited ({dead[0].proc.returncode}):\n{dead[0].tail()}")
        if sw.proc is not None and not sw.alive():
            raise Fail(f"squibnet died ({sw.proc.returncode}):\n{sw.log()}")
        time.sleep(0.1)
    raise Fail(f"no '{what}' from every guest within {timeout:.0f} s:\n" + "\n".join(g.tail() for g in guests))


def ping_again(g, sw, timeout=90):
    """Asks guest @g (done with its task) to ping its peer again; True when it did."""
    t = time.monotonic()
    g.say("ping")
    deadline = t + timeout
    while time.monotonic() < deadline:
        got = g.marks_after("ping again", t)
        if got:
            return got[0][1].startswith("ping again ok")
        if g.proc.poll() is not None:
            raise Fail(f"guest {g.role} exited:\n{g.tail()}")
        time.sleep(0.1)
    raise Fail(f"guest {g.role} did not answer 'ping' within {timeout} s:\n{g.tail()}")


def stats_delta(now, before, name):
    a, b = now.get(name, {}).get("stats", {}), before.get(name, {}).get("stats", {})
    return {k: v - b.get(k, 0) for k, v in a.items() if isinstance(v, int)}


def check_switch(sw, config, before):
    """The switch's view of a transfer of @config, against its counters @before it: the MACs
    behind the right ports, no malformed frames, the payload through the ports, and with
    offloads the negotiated ones and large frames."""
    fdb, why = vm.squibnetctl(sw.ctl_bin, sw.ctl, "fdb")
    if fdb is None:
        raise Fail(why)
    learned = {e["mac"].lower(): e["port"] for e in fdb["fdb"]}
    ports = sw.ports()
    names = {}
    for role, vport in (("a", "va"), ("b", "vb")):
        if netdev_of(config, role) == "vhost-user":
            names[role] = vport
        else:
            names[role] = learned.get(vm.MACS[role], "")
            if ports.get(names[role], {}).get("parent") != "st":
                raise Fail(f"guest {role}'s MAC is not behind a client of st: {fdb['fdb']}")
        if learned.get(vm.MACS[role]) != names[role]:
            raise Fail(f"guest {role}'s MAC is not behind {names[role]}: {fdb['fdb']}")
    for role in ("a", "b"):
        name = names[role]
        p = ports[name]
        st = stats_delta(ports, before, name)
        log(f"{config['name']}: switch port {name} ({p['state']}, {p['peer']}; offloads tx [{p['offload_tx']}] "
            f"rx [{p['offload_rx']}]): " + ", ".join(f"{k}={v}" for k, v in st.items() if v))
        bad = {k: st[k] for k in ("drop_bad_framing", "drop_runt", "drop_oversize", "drop_bad_offload") if st.get(k)}
        if bad:
            raise Fail(f"port {name} dropped malformed frames: {bad}")
        if netdev_of(config, role) == "vhost-user":
            if config.get("offloads"):
                ok = "tso4" in p["offload_rx"] and "tso4" in p["offload_tx"]
            else:
                ok = p["offload_rx"] == p["offload_tx"] == ""
            if not ok:
                raise Fail(f"port {name} negotiated tx [{p['offload_tx']}] rx [{p['offload_rx']}] "
                           f"with the guest's offloads {'on' if config.get('offloads') else 'off'}")
    a, b = stats_delta(ports, before, names["a"]), stats_delta(ports, before, names["b"])
    if a.get("rx_bytes", 0) < REPEAT * vm.PAYLOAD_SIZE:
        raise Fail(f"the payload did not go in through {names['a']}: {a}")
    if b.get("tx_bytes", 0) < REPEAT * vm.PAYLOAD_SIZE:
        raise Fail(f"the payload did not go out through {names['b']}: {b}")
    per_frame = a["rx_bytes"] / max(1, a["rx_frames"])
    log(f"{config['name']}: {a['rx_frames']} frames in from a, {per_frame:.0f} bytes each; "
        f"{b['tx_frames']} out to b, {b['tx_bytes'] / max(1, b['tx_frames']):.0f} bytes each")
    if config.get("offloads") and per_frame <= 1514:
        raise Fail(f"offloads on, but guest a's frames were {per_frame:.0f} bytes on average: no TSO")
    if not config.get("offloads") and per_frame > 1514:
        raise Fail(f"offloads off, but guest a's frames were {per_frame:.0f} bytes on average")
    if netdev_of(config, "b") == "stream" and b["tx_bytes"] / max(1, b["tx_frames"]) > 1514:
        raise Fail("the stream guest got frames over 1514 bytes")


def qemu_cpu(pid):
    """Seconds the QEMU process @pid ran on a CPU so far, all its threads (schedstat's first
    field, in ns); threads that ended meanwhile are not counted."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


class CpuSampler(threading.Thread):
    """Samples the CPU time of the guests' QEMU processes every 20 ms. On a shared machine the
    wall-clock time of a transfer also holds what other programs took from the guests; the CPU
    the two TCG guests spent in it does not (much), so the test reports both."""

    def __init__(self, guests):
        super().__init__(daemon=True)
        self.guests = guests
        self.samples = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.samples.append((time.monotonic(), [qemu_cpu(g.proc.pid) for g in self.guests]))
            self.done.wait(0.02)

    def at(self, t):
        """Each guest's CPU seconds at host time @t, interpolated between the samples around it."""
        before = [x for x in self.samples if x[0] <= t]
        after = [x for x in self.samples if x[0] >= t]
        if not before or not after:
            return None
        (t0, c0), (t1, c1) = before[-1], after[0]
        return [u if t1 == t0 else u + (v - u) * (t - t0) / (t1 - t0) for u, v in zip(c0, c1)]


def transfer(config, qemu, kernel, initrd, sw, tmp, want_md5, timeout):
    """Boots guests a and b for @config, runs the transfer, checks it; returns (guests, seconds,
    [CPU seconds QEMU a, QEMU b spent in those seconds] or None)."""
    guests = []
    append = f"squibnet.repeat={REPEAT} {APPEND}".rstrip()
    # a first: its QEMU must listen before the switch can dial it
    for role in ("a", "b"):
        g = make_guest(role, config, qemu, kernel, initrd, sw, tmp, append=append)
        log(f"guest {config['name']} {role}: {' '.join(g.cmd)}")
        g.start()
        guests.append(g)
    a, b = guests
    cpu = CpuSampler(guests)
    cpu.start()
    try:
        wait_marks(guests, sw, "done", timeout)
    except Fail:
        for g in guests:
            vm.stop(g.proc, f"guest {g.role}")
        raise
    finally:
        cpu.done.set()
        cpu.join()
    sums = {g.role: g.mark("md5 ")[1].split()[1] for g in guests}
    log(f"{config['name']}: md5 host {want_md5}, a sent {sums['a']}, b received {sums['b']}")
    if sums["a"] != want_md5 or sums["b"] != want_md5:
        raise Fail(f"{config['name']}: md5 mismatch")
    t0, t1 = a.mark("sending")[0], b.mark("transfer done")[0]
    c0, c1 = cpu.at(t0), cpu.at(t1)
    return guests, t1 - t0, ([v - u for u, v in zip(c0, c1)] if c0 and c1 else None)


def run():
    _, busybox = vm.find_prereqs()
    squibnet = os.environ.get("SQUIBNET")
    if not (squibnet and os.path.exists(squibnet)):
        raise Fail("SQUIBNET must name the squibnet binary (meson sets it)")
    ctl_bin = os.environ.get("SQUIBNETCTL")
    cache = os.environ.get("SQUIBNET_VM_CACHE") or os.path.join(os.getcwd(), "vm-cache")
    timeout = float(os.environ.get("SQUIBNET_VM_TIMEOUT", "300"))

    with Stage("qemu10"):
        qemu = vm.find_qemu10(cache)
        r = subprocess.run([qemu[0], "--version"], stdout=subprocess.PIPE, text=True)
        log(f"QEMU: {qemu[0]}: {r.stdout.splitlines()[0] if r.stdout else '?'}")

    with Stage("kernel"):
        kernel, modules = vm.get_kernel(cache)

    tmp = tempfile.mkdtemp(prefix="squibnet-vmpair-")
    sw = Switch(squibnet, ctl_bin, tmp)
    guests, results = [], []
    ok = False
    try:
        with Stage("initramfs"):
            payload = random.Random(vm.PAYLOAD_SEED).randbytes(vm.PAYLOAD_SIZE)
            want_md5 = hashlib.md5(payload * REPEAT).hexdigest()
            initrd = os.path.join(tmp, "initrd.cpio")
            vm.build_initramfs(initrd, busybox, modules, payload, vm.guest_tcp())

        with Stage("switch"):
            sw.start()

        only = [c for c in os.environ.get("SQUIBNET_VM_CONFIGS", "").split(",") if c]
        by_name = {c["name"]: c for c in CONFIGS}
        if any(n not in by_name for n in only):
            raise Fail(f"SQUIBNET_VM_CONFIGS={','.join(only)}: the runs are {', '.join(by_name)}")
        configs = [by_name[n] for n in only] if only else CONFIGS
        restarts = next((i for i, c in enumerate(configs) if c["netdev"] == ("vhost-user", "vhost-user")), None)
        for run_no, config in enumerate(configs):
            before = sw.ports()
            with Stage(f"transfer-{config['name']}"):
                guests, seconds, cpu = transfer(config, qemu, kernel, initrd, sw, tmp, want_md5, timeout)
                mbit = REPEAT * vm.PAYLOAD_SIZE * 8 / seconds / 1e6
                results.append((config["name"], seconds, mbit, cpu))
                log(f"{config['name']}: {REPEAT} MiB in {seconds:.2f} s, {mbit:.0f} Mbit/s"
                    + (f"; QEMU a ran {cpu[0]:.2f} CPU s in it, b {cpu[1]:.2f}" if cpu else ""))

            with Stage(f"switch-counters-{config['name']}"):
                check_switch(sw, config, before)

            if run_no == restarts:
                # 2. the VMM behind the connect port restarts; the switch redials it
                with Stage("restart-vmm"):
                    a, b = guests
                    vm.stop(a.proc, "guest a", grace=0.1)
                    sw.wait_port("va", "connecting", timeout=10)
                    a2 = make_guest("a", config, qemu, kernel, initrd, sw, tmp, suffix="2",
                                    append="squibnet.task=ping")
                    log(f"guest a (again): {' '.join(a2.cmd)}")
                    a2.start()
                    guests = [a2, b]
                    wait_marks([a2], sw, "ping ok", timeout)
                    log("vmm restart ok: the switch redialed the new QEMU a, which pinged b")

                # 3. the switch restarts; QEMU b redials it, it dials QEMU a; nobody else restarts
                with Stage("restart-switch"):
                    sw.stop(signal.SIGKILL)
                    sw.start()
                    sw.wait_port("va", "up")
                    sw.wait_port("vb", "up")
                    if not ping_again(a2, sw) or not ping_again(b, sw):
                        raise Fail("after the switch restarted, the guests could not ping each other:\n"
                                   + "\n".join(g.tail() for g in guests))
                    log("switch restart ok: both QEMUs kept running and the guests ping again")

            for g in guests:
                g.poweroff()
            for g in guests:
                try:
                    g.proc.wait(30)
                except subprocess.TimeoutExpired:
                    vm.stop(g.proc, f"guest {g.role}")
            guests = []

        with Stage("shutdown"):
            rc = sw.stop()
            if rc != 0:
                raise Fail(f"squibnet exited with {rc}:\n{sw.log()}")
            for i in range(1, sw.runs + 1):
                text = vm.read_log(tmp, f"squibnet-{i}.log")
                if "protocol error" in text:
                    raise Fail(f"QEMU's messages were refused (run {i}):\n{text}")

        log(f"transfer of {REPEAT} MiB between two QEMU {qemu[0].split('/')[-1]} TCG guests:")
        for name, seconds, mbit, cpu in results:
            log(f"  {name:20s} {seconds:6.2f} s  {mbit:6.0f} Mbit/s"
                + (f"  QEMU CPU a {cpu[0]:5.2f} s + b {cpu[1]:5.2f} s" if cpu else ""))
        speeds, cpus = {}, {}
        for n, _, m, c in results:
            speeds.setdefault(n, []).append(m)
            if c:
                cpus.setdefault(n, []).append(sum(c))
        if "vhost-user-offloads" in speeds and "vhost-user-plain" in speeds:
            on, off = speeds["vhost-user-offloads"], speeds["vhost-user-plain"]
            log(f"  offloads on / off: {sum(on) / len(on) / (sum(off) / len(off)):.2f}x (means of {len(on)} and "
                f"{len(off)} runs)")
        if "vhost-user-offloads" in cpus and "vhost-user-plain" in cpus:
            on, off = cpus["vhost-user-offloads"], cpus["vhost-user-plain"]
            log(f"  QEMU CPU (a + b) per transfer, offloads off / on: "
                f"{sum(off) / len(off) / (sum(on) / len(on)):.2f}x (means)")
        ok = True
    finally:
        for g in guests:
            vm.stop(g.proc, f"guest {g.role}")
        if sw.alive():
            vm.stop(sw.proc, "squibnet")
        if not ok and sw.runs:
            print("--- squibnet log ---\n" + sw.log()[-20000:], flush=True)
        vm.keep_or_remove(tmp, ok)
    return results


def main():
    return vm.run_test(run, lambda results: "vm: QEMU 10 guests on vhost-user moved " + ", ".join(
        f"{REPEAT} MiB over {n} at {m:.0f} Mbit/s" for n, _, m, _ in results)
        + "; both sides restarted and the guests pinged again")


if __name__ == "__main__":
    sys.exit(main())
