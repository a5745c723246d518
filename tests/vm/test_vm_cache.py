#!/usr/bin/env python3
"""The vm suite's cache holds the guest kernel beside QEMU 10 (tools/fetch-qemu10.py puts it in
cache/qemu10, with a "ready" file as a kernel's directory has): fetching a newer kernel removes
the kernels it supersedes, and nothing else. Runs without QEMU or network."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_vm as vm  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as cache:
        for d in ("qemu10", "linux-image-6.1.0-56-amd64", "linux-image-6.1.0-57-amd64", "dl-x", "other"):
            os.makedirs(os.path.join(cache, d))
            if d != "dl-x":
                open(os.path.join(cache, d, "ready"), "w").close()
        got = vm.cached_kernels(cache)
        want = ["linux-image-6.1.0-56-amd64", "linux-image-6.1.0-57-amd64"]
        if got != want:
            print(f"FAIL cached kernels {got}, want {want}: a new kernel would remove the others")
            return 1
    print("ok   cached_kernels lists kernels only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
