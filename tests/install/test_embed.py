#!/usr/bin/env python3
"""test_embed.py - the README's embedding example against an installed tree, with pkg-config only.

Installs the build into a temporary DESTDIR (`meson install --destdir`), takes the C program
from the README's "Embedding" section, compiles and links it with nothing but
`pkg-config --cflags --libs squibnet` (PKG_CONFIG_SYSROOT_DIR points pkg-config into the
DESTDIR), runs it with its socket paths moved into a temporary directory, and asks it for its
ports through the installed squibnetctl. Also checks that the .pc file gives an embedder no
include paths of libraries it does not see (libpcap's D-Bus ones, say).

Environment (set by meson): MESON, BUILD_ROOT, PREFIX, LIBDIR, INCLUDEDIR, CC_JSON (the C compiler's
command), SANITIZE (b_sanitize). Argument: the README. Exit status 0 passed, 1 failed, 77 when
pkg-config or the compiler is missing.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


def skip(why):
    print(f"skip: {why}")
    sys.exit(SKIP)


def fail(why):
    print(f"FAIL {why}")
    sys.exit(1)


def readme_example(path):
    """The first C block of the README's Embedding section."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^## Embedding\n(.*?)^## ", text, re.S | re.M)
    if not m:
        fail("README has no '## Embedding' section")
    code = re.search(r"^```c\n(.*?)^```$", m.group(1), re.S | re.M)
    if not code:
        fail("the Embedding section has no ```c block")
    return code.group(1)


def main():
    readme = sys.argv[1]
    pkg_config = shutil.which("pkg-config")
    if not pkg_config:
        skip("pkg-config is not installed")
    cc = json.loads(os.environ["CC_JSON"])
    if not shutil.which(cc[0]):
        skip(f"no compiler {cc[0]}")
    prefix, libdir = os.environ["PREFIX"], os.environ["LIBDIR"]
    libdir = libdir if os.path.isabs(libdir) else os.path.join(prefix, libdir)

    tmp = tempfile.mkdtemp(prefix="sn-embed-")
    proc = None
    try:
        dest = os.path.join(tmp, "dest")
        r = subprocess.run([os.environ["MESON"], "install", "-C", os.environ["BUILD_ROOT"], "--no-rebuild",
                            "--quiet", "--destdir", dest], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fail(f"meson install --destdir: {r.returncode} {r.stdout} {r.stderr}")
        staged_lib = dest + libdir
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(staged_lib, "pkgconfig"), PKG_CONFIG_SYSROOT_DIR=dest)
        flags = subprocess.run([pkg_config, "--cflags", "--libs", "squibnet"], capture_output=True, text=True, env=env)
        if flags.returncode != 0:
            fail(f"pkg-config squibnet: {flags.stderr.strip()}")
        words = flags.stdout.split()
        print("pkg-config --cflags --libs squibnet:", flags.stdout.strip())
        # our headers, and libev's where it has a .pc file: nothing else
        includedir = os.environ["INCLUDEDIR"]
        allowed = {"-I" + dest + (includedir if os.path.isabs(includedir) else os.path.join(prefix, includedir))}
        ev = subprocess.run([pkg_config, "--cflags", "libev"], capture_output=True, text=True, env=env)
        if ev.returncode == 0:
            allowed |= set(ev.stdout.split())
        for w in words:
            if w.startswith("-I") and w not in allowed:
                fail(f"the .pc file hands embedders an include path they did not ask for: {w}")
        if "-lev" not in words and not any("libev" in w for w in words):
            fail(f"libev is missing from the flags, yet the public header uses its types: {words}")

        src = os.path.join(tmp, "vmm.c")
        code = readme_example(readme).replace("/run/vm/", tmp + "/")
        with open(src, "w") as f:
            f.write(code)
        prog = os.path.join(tmp, "vmm")
        sanitize = os.environ.get("SANITIZE", "none")
        extra = [f"-fsanitize={sanitize}"] if sanitize not in ("", "none") else []
        r = subprocess.run(cc + ["-std=c11", "-Wall", "-Werror", *extra, "-o", prog, src, *words],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"the README's example does not build against the installed tree:\n{r.stderr}")
        print("ok   the README's example compiles and links with pkg-config alone")

        run_env = dict(os.environ, LD_LIBRARY_PATH=staged_lib)
        proc = subprocess.Popen([prog], stderr=subprocess.PIPE, text=True, env=run_env)
        ctl_sock = os.path.join(tmp, "ctl.sock")
        deadline = time.monotonic() + 5
        while not os.path.exists(ctl_sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                fail(f"the example did not make its control socket: {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}")
            time.sleep(0.02)
        ctl = os.path.join(dest + prefix, "bin", "squibnetctl")
        r = subprocess.run([ctl, "--control", ctl_sock, "--json", "ports"], capture_output=True, text=True,
                           env=run_env, timeout=10)
        if r.returncode != 0:
            fail(f"the installed squibnetctl could not ask the example: {r.stderr}")
        ports = json.loads(r.stdout)["ports"]
        if [(p["kind"], p["state"], p["peer"].split()[:2]) for p in ports] != [
                ("stream", "listening", ["listen", "unix:" + os.path.join(tmp, "sw.sock")])]:
            fail(f"the example's ports: {ports}")
        print("ok   the example runs: its listener answers the installed squibnetctl")
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)
    print("2 passed, 0 failed")


if __name__ == "__main__":
    main()
