#!/usr/bin/env python3
"""test_vm.py - the vm suite: two real QEMU guests on a real squibnet switch.

Boots two Debian-kernel guests under TCG with a busybox initramfs this script builds, attaches
both to one `squibnet` stream listener with `-netdev stream`, and has guest A ping guest B and
send it 1 MiB of known data over TCP (with tests/vm/guest-tcp.c, which meson links statically
and SQUIBNET_GUEST_TCP names; without it with busybox nc: see guest_tcp()). It passes when
A's ping succeeds, the md5 sums printed by both guests match the sum of the data the host
generated, and (when squibnetctl answers) the switch learned each guest's MAC behind its own port and its counters show the payload went
through. The guests then wait for "poweroff" on their console, so the counters are read while
both ports are still up. The kernel package is fetched once with `apt-get download` into a cache
beside the build. Exits 77 when QEMU, a static busybox or the kernel cannot be had.

Environment: SQUIBNET and SQUIBNETCTL (the binaries, set by meson), SQUIBNET_GUEST_TCP (the static
guest-tcp, set by meson when the compiler links statically), SQUIBNET_VM_CACHE (where the
kernel is kept), QEMU (default qemu-system-x86_64), SQUIBNET_QEMU10 (see find_qemu10(); the
vm suite's QEMU 10 tests use it), BUSYBOX (default /bin/busybox),
SQUIBNET_VM_TIMEOUT (seconds the guests get, default 300), SQUIBNET_VM_KEEP=1 (keep the
temporary directory with logs). `--direct` skips the switch and joins the guests with QEMU's
own stream server: a check of the guest image alone.
"""

import hashlib
import io
import json
import lzma
import gzip
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import sntest  # noqa: E402
from sntest import scaled  # noqa: E402

SKIP = 77
MARK = "SQUIBNET-VM:"
PAYLOAD_SIZE = 1 << 20
PAYLOAD_SEED = 0x5b1b
MACS = {"a": "52:54:00:12:34:01", "b": "52:54:00:12:34:02"}
# The modules virtio-net over PCI needs; their dependencies are read from the .ko files.
WANTED_MODULES = ["virtio_pci", "virtio_net"]

T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.2f}s] {msg}", flush=True)


class Skip(Exception):
    pass


class Fail(Exception):
    pass


class Stage:
    """Times one stage; the summary at the end shows where the run spent its time."""
    done = []

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.start = time.monotonic()
        log(f"stage {self.name}: start")
        return self

    def __exit__(self, *exc):
        took = time.monotonic() - self.start
        Stage.done.append((self.name, took))
        log(f"stage {self.name}: {took:.2f}s")
        return False


# ---------------------------------------------------------------------------------------------
# Host prerequisites

def is_static_elf(path):
    """True when @path is an ELF executable with no PT_INTERP, i.e. it runs without a libc."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    end = "<" if data[5] == 1 else ">"
    phoff, = struct.unpack_from(end + "Q", data, 0x20)
    phentsize, phnum = struct.unpack_from(end + "HH", data, 0x36)
    for i in range(phnum):
        p_type, = struct.unpack_from(end + "I", data, phoff + i * phentsize)
        if p_type == 3:
            return False
    return True


def find_prereqs():
    qemu = shutil.which(os.environ.get("QEMU", "qemu-system-x86_64"))
    if not qemu:
        raise Skip("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    busybox = os.environ.get("BUSYBOX", "/bin/busybox")
    if not os.path.exists(busybox):
        raise Skip(f"{busybox} not found (apt-get install busybox-static)")
    if not is_static_elf(busybox):
        raise Skip(f"{busybox} is not statically linked (apt-get install busybox-static)")
    return qemu, busybox


def find_qemu10(cache):
    """QEMU 10 unpacked by tools/fetch-qemu10.py: in $SQUIBNET_QEMU10, else in cache/qemu10
    (where .ci/run puts it). Returns (binary, arguments it needs: -L for its own data files),
    or raises Skip saying why there is none."""
    where = os.environ.get("SQUIBNET_QEMU10") or os.path.join(cache, "qemu10")
    binary = os.path.join(where, "root", "usr", "bin", "qemu-system-x86_64")
    if not os.path.exists(os.path.join(where, "ready")) or not os.path.exists(binary):
        why = ""
        try:
            with open(os.path.join(where, "failed")) as f:
                why = f": the last fetch failed: {f.read().strip()}"
        except OSError:
            pass
        raise Skip(f"no QEMU 10 in {where}{why} (tools/fetch-qemu10.py {where} unpacks it from "
                   "Debian's bookworm-backports; .ci/run does)")
    return binary, ["-L", os.path.join(where, "root", "usr", "share", "qemu")]


# ---------------------------------------------------------------------------------------------
# The guest kernel: Debian's, from the package, with the virtio-net modules

def run_quiet(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def kernel_package():
    """The versioned image package linux-image-amd64 points at, or None."""
    want = os.environ.get("SQUIBNET_VM_KERNEL_PKG")
    if want:
        return want
    if not shutil.which("apt-cache"):
        return None
    r = run_quiet(["apt-cache", "depends", "linux-image-amd64"])
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*)", r.stdout)
    return m.group(1) if m else None


def module_name(path):
    base = os.path.basename(path)
    return re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base).replace("-", "_")


def decompress_ko(path, data):
    if path.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.endswith(".ko.zst"):
        if not shutil.which("zstd"):
            raise Fail(f"{path} is zstd-compressed and zstd is not installed")
        return subprocess.run(["zstd", "-dc"], input=data, stdout=subprocess.PIPE, check=True).stdout
    return data


def ko_depends(data):
    m = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", data)
    if not m or not m.group(1):
        return []
    return [d.replace("-", "_") for d in m.group(1).decode().split(",") if d]


def walk_package(deb, visit):
    """Streams the package's file tree through @visit(name, member, tar) without unpacking it."""
    p = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=p.stdout, mode="r|") as tf:
            for member in tf:
                if member.isfile():
                    visit(member.name.lstrip("./"), member, tf)
    finally:
        p.stdout.close()
        if p.wait() != 0:
            raise Fail(f"dpkg-deb --fsys-tarfile {deb} failed")


def unpack_kernel(deb, dest):
    """Takes vmlinuz and the modules virtio-net needs, in load order, out of @deb into @dest."""
    deps, paths, builtin = {}, {}, set()
    vmlinuz = []

    def scan(name, member, tf):
        if re.fullmatch(r"boot/vmlinuz-.*", name):
            vmlinuz.append(name)
            with open(os.path.join(dest, "vmlinuz"), "wb") as f:
                shutil.copyfileobj(tf.extractfile(member), f)
        elif re.fullmatch(r"lib/modules/[^/]+/modules\.builtin", name):
            for line in tf.extractfile(member).read().decode().split():
                builtin.add(module_name(line))
        elif re.search(r"\.ko(\.(xz|gz|zst))?$", name):
            data = decompress_ko(name, tf.extractfile(member).read())
            deps[module_name(name)] = ko_depends(data)
            paths[module_name(name)] = name

    walk_package(deb, scan)
    if len(vmlinuz) != 1:
        raise Fail(f"{deb}: expected one boot/vmlinuz-*, found {vmlinuz}")

    # Dependencies before their users, as modprobe would load them; built-ins need nothing.
    order, seen = [], set()

    def need(mod, chain):
        if mod in seen or mod in builtin:
            return
        if mod not in deps:
            raise Fail(f"{deb}: module {mod} (needed by {' <- '.join(chain)}) is neither built in "
                       "nor shipped")
        seen.add(mod)
        for d in deps[mod]:
            need(d, chain + [mod])
        order.append(mod)

    for mod in WANTED_MODULES:
        need(mod, [])

    wanted = {paths[m]: m for m in order}
    os.makedirs(os.path.join(dest, "modules"), exist_ok=True)

    def take(name, member, tf):
        if name in wanted:
            data = decompress_ko(name, tf.extractfile(member).read())
            with open(os.path.join(dest, "modules", wanted[name] + ".ko"), "wb") as f:
                f.write(data)

    if order:
        walk_package(deb, take)
    with open(os.path.join(dest, "modules.order"), "w") as f:
        f.write("".join(m + "\n" for m in order))
    return order


def cached_kernels(cache):
    """The kernel packages unpacked in @cache, oldest name first: linux-image-* only, for
    QEMU 10 (tools/fetch-qemu10.py) keeps a "ready" file in cache/qemu10 too."""
    return [d for d in sorted(os.listdir(cache))
            if d.startswith("linux-image-") and os.path.exists(os.path.join(cache, d, "ready"))]


def get_kernel(cache):
    """Returns (vmlinuz, [module paths in load order]), downloading the package on first use."""
    os.makedirs(cache, exist_ok=True)
    pkg = kernel_package()
    ready = cached_kernels(cache)

    def load(name):
        d = os.path.join(cache, name)
        with open(os.path.join(d, "modules.order")) as f:
            mods = [os.path.join(d, "modules", m + ".ko") for m in f.read().split()]
        log(f"kernel: {name} (cached in {d}), modules: {' '.join(map(module_name, mods))}")
        return os.path.join(d, "vmlinuz"), mods

    if pkg and pkg in ready:
        return load(pkg)
    if not pkg:
        if ready:
            return load(ready[-1])
        raise Skip("cannot tell which linux-image package to fetch: `apt-cache depends "
                   "linux-image-amd64` found none (run apt-get update, or set SQUIBNET_VM_KERNEL_PKG)")
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise Skip("apt-get/dpkg-deb not available to fetch the guest kernel")

    dl = tempfile.mkdtemp(prefix="dl-", dir=cache)
    try:
        log(f"kernel: apt-get download {pkg}")
        r = run_quiet(["apt-get", "download", pkg], cwd=dl)
        debs = [f for f in os.listdir(dl) if f.endswith(".deb")]
        if r.returncode != 0 or len(debs) != 1:
            if ready:
                log(f"kernel: download failed, using the cached {ready[-1]}:\n{r.stdout}")
                return load(ready[-1])
            raise Skip(f"cannot download the guest kernel {pkg} (no network to the Debian "
                       f"mirror?):\n{r.stdout.strip()}")
        deb = os.path.join(dl, debs[0])
        log(f"kernel: {debs[0]} ({os.path.getsize(deb) >> 20} MiB), unpacking")
        dest = os.path.join(cache, pkg)
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        unpack_kernel(deb, dest)
        open(os.path.join(dest, "ready"), "w").close()
        for old in ready:   # superseded kernels: the cache keeps one
            shutil.rmtree(os.path.join(cache, old), ignore_errors=True)
    finally:
        shutil.rmtree(dl, ignore_errors=True)
    return load(pkg)


# ---------------------------------------------------------------------------------------------
# The initramfs: busybox, /init, the modules, the payload

INIT = r"""#!/bin/busybox sh
# PID 1 of a squibnet vm-test guest. Role a (10.0.0.1) pings b (10.0.0.2) and sends it
# /payload.bin with guest-tcp (or busybox nc); b receives it into /tmp/recv. Both report on the console with MARK lines, then wait
# for the host to say "poweroff" (so it can read the switch counters while the ports are up).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null

say() { echo "@MARK@ $* (t=$(cut -d' ' -f1 /proc/uptime))"; }
# Until "poweroff" (or 300 s of silence) the host may ask for more: "ping" pings the peer
# again, retrying for 60 s (after the switch or the peer's VMM restarted).
finish() {
	say "done"
	while read -t 300 cmd; do
		case "$cmd" in
		ping)
			n=0
			until ping -c 1 -W 1 $peer > /dev/null 2>&1; do
				n=$((n + 1))
				[ $n -ge 60 ] && break
			done
			if [ $n -lt 60 ]; then say "ping again ok after $n retries"; else say "ping again failed"; fi
			;;
		*) break ;;
		esac
	done
	poweroff -f
}
fail() { say "FAIL $*"; finish; }

# squibnet.role=a|b; squibnet.repeat=N: a sends the payload N times over, b keeps it in
# tmpfs and both time only the transfer; squibnet.task=ping: a only pings (a restarted guest);
# squibnet.tool=nc: busybox nc even with guest-tcp there; squibnet.rx=hold|splice|read: how
# guest-tcp receives (hold: the stream stays in pipes until its end and goes into the file
# after "transfer done", so the timed part has no copy in b; splice: socket -> pipe -> file;
# read: read() and write() of 1 MiB); squibnet.sockbuf=BYTES: SO_SNDBUF/SO_RCVBUF for
# guest-tcp (and the net.core maxima to allow it), else the kernel's autotuning
role= repeat=1 task=all tool=guest-tcp rx=hold sockbuf= gtopt=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	squibnet.role=*) role=${arg#squibnet.role=} ;;
	squibnet.repeat=*) repeat=${arg#squibnet.repeat=} ;;
	squibnet.task=*) task=${arg#squibnet.task=} ;;
	squibnet.tool=*) tool=${arg#squibnet.tool=} ;;
	squibnet.rx=*) rx=${arg#squibnet.rx=} ;;
	squibnet.sockbuf=*) sockbuf=${arg#squibnet.sockbuf=} ;;
	esac
done
case "$role" in
a) me=10.0.0.1 peer=10.0.0.2 ;;
b) me=10.0.0.2 peer=10.0.0.1 ;;
*) fail "no squibnet.role= on the kernel command line" ;;
esac
say "init role $role"

for m in $(cat /lib/modules/order); do
	insmod /lib/modules/$m.ko || fail "insmod $m"
done
n=0
while [ ! -e /sys/class/net/eth0 ]; do
	n=$((n + 1))
	[ $n -gt 100 ] && fail "no eth0 after loading the modules"
	sleep 0.1
done

# The transfer goes with /bin/guest-tcp (sendfile on a's side, splice into pipes on b's) when
# the initramfs has it, else with busybox nc; squibnet.tool=nc asks for nc anyway.
[ -x /bin/guest-tcp ] || tool=nc
if [ -n "$sockbuf" ] && [ "$tool" != nc ]; then
	for f in rmem_max wmem_max; do echo $sockbuf > /proc/sys/net/core/$f; done
	gtopt="-b $sockbuf"
fi
if [ "$role" = b ] && [ "$task" = all ]; then
	# Listen before the address is up: once a can ping us, the port is open.
	if [ "$tool" = nc ]; then
		# nc's stdin must stay open: at its EOF nc half-closes, and a's nc stops sending
		# when it sees that.
		mkfifo /tmp/hold
		sleep 300 > /tmp/hold &
		timeout 150 nc -l -p 5000 < /tmp/hold > /tmp/recv &
	else
		# it says "transfer done" itself at the end of the stream (-m hold: before it
		# writes out what it kept in pipes)
		guest-tcp recv -t 150 -m $rx $gtopt -D "@MARK@ transfer done" 5000 /tmp/recv 2> /tmp/gt.log &
	fi
	ncpid=$!
fi

ip link set lo up
ip link set eth0 up
ip addr add $me/24 dev eth0 || fail "ip addr add $me"
say "net up $me mac $(cat /sys/class/net/eth0/address)"

if [ "$role" = a ]; then
	n=0
	until ping -c 1 -W 1 $peer > /dev/null 2>&1; do
		n=$((n + 1))
		[ $n -ge 90 ] && fail "$peer never answered a ping"
		sleep 0.2
	done
	say "peer answered after $n retries"
	ping -c 3 -W 3 $peer > /tmp/ping 2>&1 || { cat /tmp/ping; fail "ping -c 3 $peer"; }
	say "ping ok $(grep -E 'received|round-trip' /tmp/ping | tr '\n' ' ')"
	[ "$task" = ping ] && finish
	src=/payload.bin
	if [ "$repeat" -gt 1 ]; then
		i=0
		while [ $i -lt $repeat ]; do cat /payload.bin; i=$((i + 1)); done > /tmp/big
		src=/tmp/big
	fi
	if [ "$tool" = nc ]; then
		say "sending $(wc -c < $src) bytes with busybox nc"
		n=0
		until timeout 120 nc $peer 5000 < $src; do
			n=$((n + 1))
			[ $n -ge 20 ] && fail "nc $peer 5000"
			sleep 0.5
		done
	else
		say "sending $(wc -c < $src) bytes with guest-tcp (sendfile${gtopt:+, sockbuf $sockbuf})"
		# it retries the connection itself, for about 20 s
		guest-tcp send -t 120 $gtopt $peer 5000 $src 2> /tmp/gt.log || { cat /tmp/gt.log; fail "guest-tcp send $peer 5000"; }
		say "$(cat /tmp/gt.log)"
	fi
	say "sent $(wc -c < $src) bytes"
	say "md5 $(md5sum $src | cut -d' ' -f1)"
elif [ "$task" = all ]; then
	wait $ncpid || { st=$?; cat /tmp/gt.log 2>/dev/null; fail "$tool receiving exited with $st"; }
	if [ "$tool" = nc ]; then say "transfer done"; else say "$(cat /tmp/gt.log)"; fi
	say "received $(wc -c < /tmp/recv) bytes"
	say "md5 $(md5sum /tmp/recv | cut -d' ' -f1)"
fi
finish
"""


class Cpio:
    """Writes a cpio archive in the "newc" format the kernel unpacks as its initramfs."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\x00"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08x" % v for v in fields))
        self.buf.write(name_b)
        self.buf.write(b"\x00" * (-self.buf.tell() % 4))
        self.buf.write(data)
        self.buf.write(b"\x00" * (-self.buf.tell() % 4))

    def dir(self, name):
        self._entry(name, 0o040755)

    def file(self, name, data, perm=0o644):
        self._entry(name, 0o100000 | perm, data)

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def guest_tcp():
    """The static guest-tcp the build made (meson sets SQUIBNET_GUEST_TCP), or None: then the
    guests' /init moves the payload with busybox nc. Logs which."""
    path = os.environ.get("SQUIBNET_GUEST_TCP")
    if path and is_static_elf(path):
        log(f"transfer tool: {path} (sendfile / splice)")
        return path
    log("transfer tool: busybox nc (the build made no static guest-tcp: "
        + (f"{path} is not a static executable" if path else "the compiler cannot link statically")
        + ")")
    return None


def build_initramfs(path, busybox, modules, payload, helper=None):
    """Writes the guests' initramfs to @path; @helper, when given, is the static guest-tcp the
    /init uses for the transfer (see guest_tcp())."""
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        c.dir(d)
    # The kernel opens /dev/console for PID 1 before /init could mount devtmpfs.
    c.chardev("dev/console", 5, 1)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    if helper:
        with open(helper, "rb") as f:
            c.file("bin/guest-tcp", f.read(), 0o755)
    c.file("init", INIT.replace("@MARK@", MARK).encode(), 0o755)
    for m in modules:
        with open(m, "rb") as f:
            c.file(f"lib/modules/{module_name(m)}.ko", f.read())
    c.file("lib/modules/order", "".join(module_name(m) + "\n" for m in modules).encode())
    c.file("payload.bin", payload)
    data = c.finish()
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


# ---------------------------------------------------------------------------------------------
# Processes: the switch and the guests

class Guest:
    """One QEMU process; a thread copies its serial console to a log, timestamping marks."""

    def __init__(self, role, qemu, kernel, initrd, netdev, tmp, qemu_args=(), append=""):
        """@qemu_args go right after the binary (e.g. -L for an unpacked QEMU); @append is
        added to the kernel command line (squibnet.repeat=N, squibnet.task=ping)."""
        self.role = role
        self.lines = []
        self.marks = []          # (host seconds, text after MARK)
        self.lock = threading.Lock()
        self.logpath = os.path.join(tmp, f"guest-{role}.log")
        # romfile= : the guest boots from -kernel, so no iPXE ROM (nor the package holding it).
        self.cmd = [
            qemu, *qemu_args, "-nodefaults", "-accel", "tcg", "-m", "256M", "-smp", "1",
            "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel, "-initrd", initrd,
            "-append", f"console=ttyS0 panic=-1 quiet squibnet.role={role} {append}".rstrip(),
            "-netdev", netdev,
            "-device", f"virtio-net-pci,netdev=n0,mac={MACS[role]},romfile=",
        ]
        self.proc = None

    def start(self):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(self.logpath, "wb") as logf:
            for raw in self.proc.stdout:
                logf.write(raw)
                logf.flush()
                line = raw.decode(errors="replace").rstrip("\r\n")
                with self.lock:
                    self.lines.append(line)
                    i = line.find(MARK)
                    if i >= 0:
                        text = line[i + len(MARK):].strip()
                        self.marks.append((time.monotonic(), text))
                        log(f"guest {self.role}: {text}")

    def mark(self, prefix):
        """The first mark starting with @prefix, as (time, text), or None."""
        with self.lock:
            for t, text in self.marks:
                if text.startswith(prefix):
                    return t, text
        return None

    def marks_after(self, prefix, t):
        """The marks starting with @prefix that arrived after host time @t, as (time, text)."""
        with self.lock:
            return [(mt, text) for mt, text in self.marks if mt > t and text.startswith(prefix)]

    def say(self, line):
        """Writes @line to the guest's console (its /init reads commands after "done")."""
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def poweroff(self):
        self.say("poweroff")

    def tail(self, n=40):
        with self.lock:
            return "\n".join(f"  {self.role}| {l}" for l in self.lines[-n:])


def stop(proc, name, grace=5.0):
    """Ends @proc (and its process group): SIGTERM, then SIGKILL after @grace seconds."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        log(f"{name} ignored SIGTERM, killing it")
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def start_switch(squibnet, tmp):
    sock = os.path.join(tmp, "switch.sock")
    ctl = os.path.join(tmp, "ctl.sock")
    logf = open(os.path.join(tmp, "squibnet.log"), "wb")
    proc = sntest.popen([squibnet, "--port", f"stream,listen=unix:{sock}", "--control", ctl],
                        stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                        start_new_session=True)
    logf.close()
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Fail(f"squibnet exited with {proc.returncode} at start:\n{read_log(tmp, 'squibnet.log')}")
        if os.path.exists(sock) and os.path.exists(ctl):
            return proc, sock, ctl
        time.sleep(0.05)
    stop(proc, "squibnet")
    raise Fail(f"squibnet made no sockets within 10 s:\n{read_log(tmp, 'squibnet.log')}")


def read_log(tmp, name):
    try:
        with open(os.path.join(tmp, name), errors="replace") as f:
            return f.read()
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# squibnetctl: did the frames go through the switch?

def squibnetctl(ctl_bin, ctl, *args):
    """Runs squibnetctl --json; returns (document, None) or (None, why it gave none)."""
    if not ctl_bin or not os.path.exists(ctl_bin):
        return None, "SQUIBNETCTL does not name a binary"
    try:
        r = subprocess.run(sntest.command([ctl_bin, "--control", ctl, "--json", *args]),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=scaled(10))
    except subprocess.TimeoutExpired:
        return None, f"squibnetctl {' '.join(args)} did not answer within {scaled(10)} s"
    if r.returncode != 0:
        return None, (f"squibnetctl {' '.join(args)} exited with {r.returncode}: "
                      f"{r.stderr.strip() or r.stdout.strip()}")
    try:
        return json.loads(r.stdout), None
    except ValueError as e:
        return None, f"squibnetctl {' '.join(args)} printed no JSON ({e}): {r.stdout[:200]!r}"


def check_switch(ctl_bin, ctl):
    """Each guest's MAC was learned behind its own client port of the listener, both ports
    carried frames both ways without framing errors, and the sender's port took in the payload.
    Returns a note when squibnetctl cannot answer at all (it is allowed to be unfinished)."""
    ports, why = squibnetctl(ctl_bin, ctl, "ports")
    if ports is None:
        return why
    fdb, why = squibnetctl(ctl_bin, ctl, "fdb")
    if fdb is None:
        return why
    try:
        by_name = {p["name"]: p for p in ports["ports"]}
        learned = {e["mac"].lower(): e["port"] for e in fdb["fdb"]}
    except (KeyError, TypeError) as e:
        raise Fail(f"squibnetctl JSON lacks {e}: ports={ports} fdb={fdb}")
    for p in by_name.values():
        st = p.get("stats", {})
        log(f"switch port {p['name']} ({p.get('state')}, parent {p.get('parent')}): "
            + ", ".join(f"{k}={v}" for k, v in st.items() if v))

    where = {}
    for role, mac in MACS.items():
        name = learned.get(mac)
        if name is None:
            raise Fail(f"the switch never learned guest {role}'s MAC {mac}: fdb={fdb['fdb']}")
        p = by_name.get(name)
        if p is None or not p.get("parent"):
            raise Fail(f"guest {role}'s MAC {mac} sits behind {name}, not a client port: {p}")
        where[role] = p
    if where["a"]["name"] == where["b"]["name"]:
        raise Fail(f"both guest MACs sit behind one port {where['a']['name']}")
    for role, p in where.items():
        st = p["stats"]
        if not st.get("rx_frames") or not st.get("tx_frames"):
            raise Fail(f"guest {role}'s port {p['name']} did not carry frames both ways: {st}")
        bad = {k: st[k] for k in ("drop_bad_framing", "drop_runt", "drop_oversize") if st.get(k)}
        if bad:
            raise Fail(f"guest {role}'s port {p['name']} dropped malformed frames: {bad}")
    got = where["a"]["stats"].get("rx_bytes", 0)
    if got < PAYLOAD_SIZE:
        raise Fail(f"the sender's port {where['a']['name']} took in {got} bytes, under the "
                   f"{PAYLOAD_SIZE}-byte payload")
    got = where["b"]["stats"].get("tx_bytes", 0)
    if got < PAYLOAD_SIZE:
        raise Fail(f"the receiver's port {where['b']['name']} sent out {got} bytes, under the "
                   f"{PAYLOAD_SIZE}-byte payload")
    log(f"switch ok: a behind {where['a']['name']}, b behind {where['b']['name']}, payload through")
    return None


# ---------------------------------------------------------------------------------------------

def run(direct):
    qemu, busybox = find_prereqs()
    squibnet = os.environ.get("SQUIBNET")
    if not direct and not (squibnet and os.path.exists(squibnet)):
        raise Fail("SQUIBNET must name the squibnet binary (meson sets it)")
    cache = os.environ.get("SQUIBNET_VM_CACHE") or os.path.join(os.getcwd(), "vm-cache")
    timeout = scaled(float(os.environ.get("SQUIBNET_VM_TIMEOUT", "300")))

    with Stage("kernel"):
        kernel, modules = get_kernel(cache)

    tmp = tempfile.mkdtemp(prefix="squibnet-vm-")
    switch, guests = None, []
    ok = False
    try:
        with Stage("initramfs"):
            payload = random.Random(PAYLOAD_SEED).randbytes(PAYLOAD_SIZE)
            want_md5 = hashlib.md5(payload).hexdigest()
            initrd = os.path.join(tmp, "initrd.cpio")
            size = build_initramfs(initrd, busybox, modules, payload, guest_tcp())
            log(f"initramfs {size >> 10} KiB, payload md5 {want_md5}")

        with Stage("switch"):
            if direct:
                sock = os.path.join(tmp, "direct.sock")
                netdevs = {"b": f"stream,id=n0,server=on,addr.type=unix,addr.path={sock}",
                           "a": f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}"}
                ctl = None
                log("--direct: guest b is the stream server, no switch")
            else:
                switch, sock, ctl = start_switch(squibnet, tmp)
                log(f"squibnet pid {switch.pid} listening on {sock}")
                nd = f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}"
                netdevs = {"a": nd, "b": nd}

        with Stage("guests"):
            for role in ("b", "a"):
                g = Guest(role, qemu, kernel, initrd, netdevs[role], tmp)
                log(f"guest {role}: {' '.join(g.cmd)}")
                g.start()
                guests.append(g)
                if direct and role == "b":
                    deadline = time.monotonic() + 10
                    while not os.path.exists(sock) and time.monotonic() < deadline:
                        time.sleep(0.05)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all(g.mark("done") for g in guests):
                    break
                if any(g.mark("FAIL") for g in guests):
                    time.sleep(2)   # what the other guest says may explain it
                    break
                dead = [g for g in guests if g.proc.poll() is not None and not g.mark("done")]
                if dead:
                    raise Fail(f"guest {dead[0].role} exited ({dead[0].proc.returncode}) before "
                               f"it was done:\n{dead[0].tail()}")
                if switch and switch.poll() is not None:
                    raise Fail(f"squibnet died ({switch.returncode}):\n{read_log(tmp, 'squibnet.log')}")
                time.sleep(0.1)
            else:
                raise Fail(f"guests not done within {timeout:.0f} s:\n" +
                           "\n".join(g.tail() for g in guests))
            for g in guests:
                t = g.mark("init")
                if t:
                    log(f"guest {g.role}: /init ran {t[0] - g.started:.2f}s after QEMU started")
            b, a = guests
            fails = [f"{g.role}: {text}" for g in guests for _, text in g.marks if text.startswith("FAIL")]
            if fails:
                raise Fail("guest reported failure: " + "; ".join(fails) + "\n" +
                           "\n".join(g.tail() for g in guests))

        # The counters are read while both ports are still up: the guests wait for "poweroff".
        with Stage("switch-counters"):
            if direct:
                log("--direct: no switch counters to check")
            else:
                why = check_switch(os.environ.get("SQUIBNETCTL"), ctl)
                if why:
                    log(f"NOTE: skipping the switch counter check: {why}")

        with Stage("verdict"):
            if not a.mark("ping ok"):
                raise Fail("guest a never printed 'ping ok'")
            sums = {}
            for g in guests:
                m = g.mark("md5 ")
                if not m:
                    raise Fail(f"guest {g.role} printed no md5")
                sums[g.role] = m[1].split()[1]
            log(f"md5: host {want_md5}, a sent {sums['a']}, b received {sums['b']}")
            if sums["a"] != want_md5 or sums["b"] != want_md5:
                raise Fail("md5 mismatch")
            t_ping, t_recv = a.mark("ping ok")[0], b.mark("received")
            if t_recv:
                log(f"transfer: ping ok -> b received in {t_recv[0] - t_ping:.2f}s")

        with Stage("shutdown"):
            for g in guests:
                g.poweroff()
            for g in guests:
                try:
                    g.proc.wait(30)
                    log(f"guest {g.role}: QEMU exited with {g.proc.returncode}")
                except subprocess.TimeoutExpired:
                    raise Fail(f"guest {g.role} did not power off within 30 s:\n{g.tail()}")
            if switch:
                switch.send_signal(signal.SIGTERM)
                try:
                    rc = switch.wait(scaled(10))
                except subprocess.TimeoutExpired:
                    raise Fail("squibnet did not exit within 10 s of SIGTERM")
                if rc != 0:
                    raise Fail(f"squibnet exited with {rc}:\n{read_log(tmp, 'squibnet.log')}")
                report = sntest.valgrind_report(switch.valgrind_log)
                if report:
                    raise Fail(report)
        ok = True
    finally:
        for g in guests:
            stop(g.proc, f"guest {g.role}")
        stop(switch, "squibnet")
        if not ok and switch:
            print("--- squibnet log ---\n" + read_log(tmp, "squibnet.log"), flush=True)
        keep_or_remove(tmp, ok)


def keep_or_remove(tmp, ok):
    """The end of a test's run: its directory stays after a failure or with SQUIBNET_VM_KEEP."""
    if os.environ.get("SQUIBNET_VM_KEEP") or not ok:
        log(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def on_sigterm(signum, frame):
    raise Fail("killed by SIGTERM")


def run_test(run, passed):
    """A vm test's main(): run() with SIGTERM unwinding it (meson ends a test that runs over
    time that way, and the guests must be killed too); the exit status, 77 for Skip; the
    stages' times; and on success the line passed(what run() returned)."""
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        result = run()
    except Skip as e:
        print(f"SKIP: {e}", flush=True)
        return SKIP
    except Fail as e:
        log(f"FAIL: {e}")
        status = 1
    else:
        status = 0
    summary = ", ".join(f"{n} {t:.1f}s" for n, t in Stage.done)
    log(f"stages: {summary}; total {time.monotonic() - T0:.1f}s")
    if status == 0:
        print(passed(result), flush=True)
    return status


def main():
    direct = "--direct" in sys.argv[1:]
    return run_test(lambda: run(direct), lambda _: "vm: two guests pinged and moved 1 MiB " +
                    ("over a bare QEMU stream link" if direct else "through the switch"))


if __name__ == "__main__":
    sys.exit(sntest.finish(main()))
