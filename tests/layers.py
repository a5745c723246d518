#!/usr/bin/env python3
"""The library's layers, checked on what it is built from.

src/ is the core (switch, ports' contract, FDB, pool, framing, sockets, virtqueues), with the
control server and the captures beside it; src/ports/ are the port kinds, which use the core
and may drive backends; src/backends/ are host-side machinery that knows neither ports nor
the switch. Which object calls which is read off the objects themselves (nm), so a call that
closes a cycle fails here whatever the headers say; the two registries meson generates (the
kinds of a build and the modules with control commands) are the one place that names them
all and are left out. A quoted include must not be able to pick a public header either.

usage: layers.py SRCDIR ARCHIVE"""

import os
import re
import subprocess
import sys

# what each layer may call besides itself
ALLOWED = {
    "core": set(),
    "control": {"core"},
    "capture": {"core"},
    "capture_ctl": {"core", "capture", "control"},
    "conffile": {"core", "capture", "control"},
    "top_ctl": {"core", "control"},
    "ports": {"core", "backends", "control"},
    "backends": {"core"},
}

CORE_INCLUDES_FORBIDDEN = ("control.h", "capture_impl.h", "ports/", "backends/")
PUBLIC_NAMES = {"switch.h", "capture.h", "log.h", "virtio.h", "squibnet.h", "config.h", "gvproxy.h", "conffile.h"}


def layer_of(obj):
    """The layer of an object file named like meson names them: ports_stream.c.o, switch.c.o."""
    base = os.path.basename(obj)
    if "meson-generated" in base:
        return None
    if base.startswith("ports_"):
        return "ports"
    if base.startswith("backends_"):
        return "backends"
    name = base.split(".c.o")[0]
    if name in ("control", "capture", "capture_ctl", "conffile", "top_ctl"):
        return name
    return "core"


def symbols(archive):
    """{object: (defined, undefined)} of the global symbols of every object in @archive."""
    out = subprocess.run(["nm", "-A", "-g", archive], capture_output=True, text=True, check=True).stdout
    objs = {}
    for line in out.splitlines():
        # "archive:member: [value] TYPE name"; an undefined symbol has no value
        m = re.match(r"^(?:[^:]*:)?([^:]+\.o):\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z])\s+(\S+)$", line)
        if not m:
            continue
        obj, kind, name = m.groups()
        d, u = objs.setdefault(obj, (set(), set()))
        (u if kind == "U" else d).add(name)
    return objs


def check_calls(archive):
    objs = symbols(archive)
    owner = {}
    for obj, (defined, _) in objs.items():
        for s in defined:
            owner[s] = obj
    bad = []
    for obj, (_, undefined) in objs.items():
        lo = layer_of(obj)
        if lo is None:
            continue
        for s in sorted(undefined):
            target = owner.get(s)
            if target is None or target == obj:
                continue
            lt = layer_of(target)
            if lt is None or lt == lo:
                continue
            if lt not in ALLOWED[lo]:
                bad.append(f"{os.path.basename(obj)} ({lo}) calls {s} of {os.path.basename(target)} ({lt})")
    return bad


def check_includes(srcdir):
    bad = []
    for root, _, files in os.walk(srcdir):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, srcdir)
            in_core = os.sep not in rel
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                inc = m.group(1)
                if os.path.basename(inc) in PUBLIC_NAMES:
                    bad.append(f"{rel}:{n}: quoted include of {inc} has a public header's name")
                if rel.startswith(("ports" + os.sep, "backends" + os.sep)) and os.path.basename(inc) == "core.h":
                    bad.append(f"{rel}:{n}: a port or backend includes the switch's own struct (core.h)")
                if rel.startswith("backends" + os.sep) and inc.startswith("../ports/"):
                    bad.append(f"{rel}:{n}: a backend includes a port's header ({inc})")
                if in_core and f not in ("control.c", "capture.c", "capture_ctl.c", "conffile.c", "top_ctl.c", "control.h"):
                    if any(inc.startswith(p) or os.path.basename(inc) == p for p in CORE_INCLUDES_FORBIDDEN):
                        bad.append(f"{rel}:{n}: the core includes {inc}")
                if f == "capture.c" and inc == "control.h":
                    bad.append(f"{rel}:{n}: captures include the control server")
    return bad


def main():
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[-1], file=sys.stderr)
        return 2
    srcdir, archive = sys.argv[1:]
    try:
        bad = check_calls(archive)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"skip: cannot read symbols with nm: {e}", file=sys.stderr)
        return 77
    bad += check_includes(srcdir)
    for b in bad:
        print(b)
    print(f"{len(bad)} layering problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
