#!/usr/bin/env python3
"""test_completion.py - the bash completion (tools/completion.bash) against a running switch.

Starts the daemon with a listener, a client of it, a connect-mode port and a capture, then has
bash (with the bash-completion library loaded, as an interactive shell has it) complete
command lines the way readline would hand them over (COMP_WORDS split at COMP_WORDBREAKS) and
compares the candidates: commands and their words, port names, capture IDs, the names after
ports=...+, options, and the fallback to squibnetctl --help when no switch answers.

Environment: SQUIBNET, SQUIBNETCTL, SQUIBNET_PING (set by meson); COMPLETION, the script
(default tools/completion.bash beside this tree). Exit 77 without bash or bash-completion.
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import sntest  # noqa: E402
from sntest import Daemon, StreamClient  # noqa: E402

SCRIPT = os.environ.get("COMPLETION") or os.path.join(HERE, "..", "..", "tools", "completion.bash")
LIBRARY_PATHS = ["/usr/share/bash-completion/bash_completion", "/usr/local/share/bash-completion/bash_completion",
                 "/opt/homebrew/share/bash-completion/bash_completion", "/etc/bash_completion"]


def library():
    r = subprocess.run(["pkg-config", "--variable=prefix", "bash-completion"], capture_output=True, text=True) \
        if shutil.which("pkg-config") else None
    paths = ([os.path.join(r.stdout.strip(), "share/bash-completion/bash_completion")] if r and r.returncode == 0
             else []) + LIBRARY_PATHS
    return next((p for p in paths if os.path.isfile(p)), None)


LIB = library()

DRIVER = r'''
source "$LIB"
source "$SCRIPT"
# readline's split of the line: words at blanks, and each COMP_WORDBREAKS character a word
line=$LINE
COMP_LINE=$line
COMP_POINT=${#line}
COMP_WORDS=()
word=""
for ((i = 0; i < ${#line}; i++)); do
    ch=${line:i:1}
    if [[ $ch == " " ]]; then
        [[ $word ]] && COMP_WORDS+=("$word")
        word=""
    elif [[ $ch == "=" || $ch == ":" ]]; then
        [[ $word ]] && COMP_WORDS+=("$word")
        COMP_WORDS+=("$ch")
        word=""
    else
        word+=$ch
    fi
done
COMP_WORDS+=("$word")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
func=$(complete -p "${COMP_WORDS[0]##*/}" | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
"$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def complete(line):
    """What bash offers for the word at the end of @line."""
    r = subprocess.run(["bash", "-c", DRIVER], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, LIB=LIB, SCRIPT=SCRIPT, LINE=line))
    assert r.returncode == 0, f"{line!r}: bash exited {r.returncode}: {r.stderr}"
    return sorted(x for x in r.stdout.split("\n") if x)


def test_completion():
    ctl = os.environ.get("SQUIBNETCTL") or sntest.binary("SQUIBNETCTL", "tools/squibnetctl")
    sn = os.environ.get("SQUIBNET") or sntest.binary("SQUIBNET", "tools/squibnet")
    with Daemon(["stream,name=vms,listen=unix:@vms.sock", "stream,name=up,connect=unix:@nope.sock"]) as d:
        client = StreamClient(d.path("vms.sock"))
        d.wait_ports(lambda p: "vms.1" in p)
        d.ctl("capture", "start", d.path("all.pcap"))
        c = f"{ctl} -c {d.control}"
        cases = [
            (f"{c} p", ["port", "ports"]),
            (f"{c} port ", ["add", "del", "set"]),
            (f"{c} port set v", ["vms", "vms.1"]),
            (f"{c} port del v", ["vms", "vms.1"]),
            (f"{c} fdb ", ["add", "del", "find", "flush", "show"]),
            (f"{c} fdb flush u", ["up"]),
            (f"{c} capture ", ["-w", "list", "start", "stop"]),
            (f"{c} capture stop ", ["1"]),
            (f"{c} capture -w - po", ["ports="]),
            (f"{c} capture -w - ports=vms.1+u", ["vms.1+up"]),
            (f"{c} capture start x.pcap dir=b", ["both"]),
            (f"{c} g", ["gvproxy"]),
            (f"{c} gvproxy list --port v", ["vms", "vms.1"]),
            (f"{c} gvproxy expose --pr", ["--proto"]),
            (f"{c} stats --j", ["--json"]),
            (f"{c} port add se", ["seqpacket,"]),
            (f"{ctl} --control={d.control} port del vms.", ["vms.1"]),
            (f"{ctl} --control {d.control} --json port del u", ["up"]),
            # no switch: the commands still come (from --help), names do not
            (f"{ctl} -c {d.path('nobody.sock')} capture s", ["start", "stop"]),
            (f"{ctl} -c {d.path('nobody.sock')} port del ", []),
            (f"{sn} --fdb-a", ["--fdb-aging"]),
        ]
        bad = []
        for line, want in cases:
            got = complete(line)
            shown = line.replace(ctl, "squibnetctl").replace(sn, "squibnet").replace(d.tmp, "T")
            if got == want:
                print(f"  ok: {shown!r} -> {got}")
            else:
                bad.append(f"{shown!r}: got {got}, want {want}")
        client.close()
        assert not bad, "\n".join(bad)


def main():
    if not shutil.which("bash"):
        print("skip: no bash")
        sys.exit(sntest.SKIP)
    if not LIB:
        print("skip: bash-completion is not installed (no bash_completion script in " + ", ".join(LIBRARY_PATHS) + ")")
        sys.exit(sntest.SKIP)
    sntest.run_tests([test_completion])


if __name__ == "__main__":
    main()
