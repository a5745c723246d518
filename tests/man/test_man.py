#!/usr/bin/env python3
"""test_man.py - the man pages keep up with the programs.

For squibnet(8), squibnetctl(8) and squibnet-ping(1), every option the program's --help shows
must appear in its built page (the roff meson made from doc/*.scd); so must every SPEC key
squibnet --help shows (each kind's and the captures'), every port kind, and every command that
squibnetctl --help lists. squibnet.conf(5) must exist and name the statements of the format.

Environment (set by meson): SQUIBNET, SQUIBNETCTL, SQUIBNET_PING, MAN_DIR (the built pages),
MAN_PAGES ('1' when this build has them). Exit 77 without them (no scdoc).
"""
import os
import re
import subprocess
import sys

failures = []
passes = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    (passes if cond else failures).append(what)


def page_text(name):
    """The page's roff with font changes and escapes taken out, so words can be searched."""
    raw = open(os.path.join(os.environ["MAN_DIR"], name), encoding="utf-8").read()
    raw = re.sub(r"\\f[BIRP]", "", raw)
    raw = raw.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")
    return raw


def help_text(prog):
    r = subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, f"{prog} --help: {r.returncode} {r.stderr}"
    return r.stdout


def options(text):
    """Long and short options named anywhere in a --help text."""
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])", text))


def check_options(prog_env, page):
    prog = os.environ[prog_env]
    text = help_text(prog)
    man = page_text(page)
    opts = options(text)
    check(len(opts) >= 3, f"{page}: found options in {os.path.basename(prog)} --help ({len(opts)})")
    missing = sorted(o for o in opts if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", man))
    check(not missing, f"{page}: every option of --help is in the page (missing: {missing})")
    return text, man


def main():
    if os.environ.get("MAN_PAGES") != "1":
        print("skip: this build has no man pages (scdoc not found; -Dman-pages=enabled to insist)")
        sys.exit(77)

    text, man = check_options("SQUIBNET", "squibnet.8")
    # the kinds: the first word of each usage line between "kinds this build has:" and the
    # line for every kind
    kinds_block = text.split("of the kinds this build has:\n", 1)[1].split("  every kind:", 1)[0]
    kinds = {m.group(1) for m in re.finditer(r"^  ([a-z][a-z-]*)[,\[ ]", kinds_block, re.M)}
    check({"stream", "dgram"} <= kinds, f"squibnet --help lists kinds: {sorted(kinds)}")
    missing = sorted(k for k in kinds if not re.search(r"(?<![\w-])" + re.escape(k) + r"(?=[,\[ ]|$)", man, re.M))
    check(not missing, f"squibnet.8: every port kind is in the page (missing: {missing})")
    keys = set(re.findall(r"(?<![\w-])([a-z][a-z-]*)=", text))
    check({"listen", "connect", "framing", "filter", "rotate", "name", "mtu"} <= keys,
          f"squibnet --help shows SPEC keys: {sorted(keys)}")
    missing = sorted(k for k in keys if (k + "=") not in man)
    check(not missing, f"squibnet.8: every SPEC and capture key is in the page (missing: {missing})")

    text, man = check_options("SQUIBNETCTL", "squibnetctl.8")
    block = text.split("commands", 1)[1].split("\noptions", 1)[0]
    commands = set()
    for line in block.splitlines()[1:]:
        m = re.match(r"  (\S.*?)(?:  |$)", line)
        if m and not line.startswith("      "):
            words = []
            for w in m.group(1).split():
                if not re.fullmatch(r"[a-z]+", w):
                    break
                words.append(w)
            if words:
                commands.add(" ".join(words))
    check({"ports", "help", "gvproxy expose", "capture list"} <= commands,
          f"squibnetctl --help lists the commands: {sorted(commands)}")
    flat = " ".join(man.split())
    missing = sorted(c for c in commands if c not in flat)
    check(not missing, f"squibnetctl.8: every command of --help is in the page (missing: {missing})")

    check_options("SQUIBNET_PING", "squibnet-ping.1")

    conf = page_text("squibnet.conf.5")
    for word in ("port", "capture", "fdb", "--config", "reload", "save", "#"):
        check(word in conf, f"squibnet.conf.5 describes '{word}'")

    print(f"{len(passes)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
