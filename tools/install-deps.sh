#!/bin/sh
# Installs what building squibnet needs on Debian/Ubuntu; with --test, also what the test
# suites use (QEMU and busybox for the vm suite, tcpdump/tshark to read captures back and to
# capture through squibnet-extcap, passt, vde2 and socat for the README's recipes, valgrind for
# meson test --setup valgrind, systemd for socket activation, Open vSwitch for the tunnel ports'
# interop test).
set -eu
pkgs="gcc meson ninja-build pkg-config libev-dev libpcap-dev check python3 scdoc"
if [ "${1:-}" = "--test" ]; then
	pkgs="$pkgs clang qemu-system-x86 busybox-static cpio iproute2 iputils-ping tcpdump tshark valgrind vde2 passt socat bash-completion openvswitch-switch"
	# the daemon with socket activation and readiness, and systemd-socket-activate to test them
	pkgs="$pkgs libsystemd-dev systemd"
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing:$missing"
$sudo apt-get update -qq
# tshark asks whether non-root users may capture; the answer does not matter here
echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
