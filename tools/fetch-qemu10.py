#!/usr/bin/env python3
"""fetch-qemu10.py DEST - unpacks QEMU 10 from Debian's bookworm-backports into DEST for the vm
suite, beside the system's QEMU 7.2 (nothing is installed, the system's apt state is untouched).

Debian 12's QEMU 7.2 crashes under TCG when vhost-user starts with MSI-X vectors; 10.0 works.
The backports suite is reached through the machine's own Debian source: the URI that serves
`CODENAME main` in /etc/apt/sources.list(.d) gets a second suite, CODENAME-backports, in a
private apt configuration under DEST/apt. `apt-get download` fetches qemu-system-x86,
qemu-system-data and qemu-system-common (their library dependencies are the 7.2 package's,
already installed with it) and `dpkg-deb -x` unpacks them into DEST/root. The vm suite runs
DEST/root/usr/bin/qemu-system-x86_64 with `-L DEST/root/usr/share/qemu`.

On success DEST/ready holds the version; on failure DEST/failed says why (the QEMU 10 tests
print it when they skip) and the exit status is 1. A DEST that is ready already is kept.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

PACKAGES = ["qemu-system-x86", "qemu-system-data", "qemu-system-common"]
WANT_MAJOR = 10


class Failed(Exception):
    pass


def codename():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("VERSION_CODENAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    raise Failed("no VERSION_CODENAME in /etc/os-release: not a Debian-like system")


def debian_uri(suite):
    """The URI of the first source that serves `suite main`, from one-line .list files and
    deb822 .sources files."""
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) + \
        sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for block in re.split(r"\n\s*\n", text):
                fields = {}
                for line in block.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.split()
                if ("deb" in fields.get("types", []) and suite in fields.get("suites", [])
                        and "main" in fields.get("components", []) and fields.get("uris")
                        and fields.get("enabled", ["yes"])[0].lower() != "no"):
                    return fields["uris"][0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == suite and "main" in words[3:]:
                    return words[1]
    raise Failed(f"no apt source serves '{suite} main' (looked in {', '.join(files)})")


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        raise Failed(f"{' '.join(cmd[:2])} ... exited with {r.returncode}:\n{r.stdout.strip()[-2000:]}")
    return r.stdout


def fetch(dest):
    suite = codename()
    uri = debian_uri(suite)
    apt = os.path.join(dest, "apt")
    shutil.rmtree(apt, ignore_errors=True)
    for d in ("lists/partial", "cache/archives/partial", "debs"):
        os.makedirs(os.path.join(apt, d))
    with open(os.path.join(apt, "sources.list"), "w") as f:
        f.write(f"deb {uri} {suite}-backports main\n")
    opts = [f"-oDir::Etc::SourceList={apt}/sources.list", "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={apt}/lists", f"-oDir::Cache={apt}/cache", "-oDebug::NoLocking=true",
            "-oAPT::Get::List-Cleanup=false"]
    print(f"fetch-qemu10: {uri} {suite}-backports", flush=True)
    run(["apt-get", *opts, "-qq", "update"])
    run(["apt-get", *opts, "-qq", "download", *PACKAGES], cwd=os.path.join(apt, "debs"))
    root = os.path.join(dest, "root")
    shutil.rmtree(root, ignore_errors=True)
    debs = sorted(glob.glob(os.path.join(apt, "debs", "*.deb")))
    if len(debs) != len(PACKAGES):
        raise Failed(f"apt-get download gave {len(debs)} packages, want {len(PACKAGES)}")
    for deb in debs:
        run(["dpkg-deb", "-x", deb, root])
    qemu = os.path.join(root, "usr", "bin", "qemu-system-x86_64")
    out = run([qemu, "--version"])
    m = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    if not m or int(m.group(1)) < WANT_MAJOR:
        raise Failed(f"the unpacked QEMU is not {WANT_MAJOR}.x: {out.strip()}")
    shutil.rmtree(os.path.join(apt, "debs"), ignore_errors=True)
    shutil.rmtree(os.path.join(apt, "cache"), ignore_errors=True)
    return m.group(0).split()[1]


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    dest = os.path.abspath(sys.argv[1])
    os.makedirs(dest, exist_ok=True)
    ready, failed = os.path.join(dest, "ready"), os.path.join(dest, "failed")
    if os.path.exists(ready):
        print(f"fetch-qemu10: {dest} holds QEMU {open(ready).read().strip()} already")
        return 0
    try:
        version = fetch(dest)
    except (Failed, OSError) as e:
        with open(failed, "w") as f:
            f.write(f"{e}\n")
        print(f"fetch-qemu10: {e}", file=sys.stderr)
        return 1
    if os.path.exists(failed):
        os.unlink(failed)
    with open(ready, "w") as f:
        f.write(version + "\n")
    print(f"fetch-qemu10: QEMU {version} in {dest}/root")
    return 0


if __name__ == "__main__":
    sys.exit(main())
