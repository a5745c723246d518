#!/usr/bin/env python3
"""wrap-built.py - the exe_wrapper of `meson test --setup valgrind`.

meson puts its wrapper in front of every test command, and most integration tests are python
scripts: valgrind in front of python would check the interpreter and nothing of squibnet. So a
test program built in this tree (a Check unit test, the C integration tests) runs under
$SQUIBNET_WRAPPER, and anything else (python, shell) runs as it is; the python tests put
$SQUIBNET_WRAPPER in front of the project's programs themselves (tests/integration/sntest.py).

usage: wrap-built.py BUILD_ROOT COMMAND [ARG]...
"""
import os
import shlex
import shutil
import sys


def main():
    if len(sys.argv) < 3:
        print("usage: wrap-built.py BUILD_ROOT COMMAND [ARG]...", file=sys.stderr)
        return 2
    root = os.path.realpath(sys.argv[1])
    cmd = sys.argv[2:]
    wrapper = shlex.split(os.environ.get("SQUIBNET_WRAPPER", ""))
    prog = os.path.realpath(cmd[0])
    if wrapper and os.path.commonpath([root, prog]) == root:
        if not shutil.which(wrapper[0]):
            print(f"skip: {wrapper[0]} is not installed", file=sys.stderr)
            return 77
        cmd = wrapper + cmd
    sys.stdout.flush()
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
