#!/bin/sh
# The README's first command ends here: start squibnet on its default setup, attach two
# squibnet-ping stations as a stand-in for two VMs, ping across the switch, show what the
# switch learned, and stop. Usage: tools/demo.sh [BUILD_DIR]
set -eu
build=${1:-build}
bin="$build/tools"
for t in squibnet squibnetctl squibnet-ping; do
	[ -x "$bin/$t" ] || { echo "demo: $bin/$t is missing: build first (ninja -C $build)" >&2; exit 1; }
done
if [ -n "${XDG_RUNTIME_DIR:-}" ] && [ -d "$XDG_RUNTIME_DIR" ]; then
	dir="$XDG_RUNTIME_DIR/squibnet"; sock="$dir/switch.sock"; ctl="$dir/control.sock"
else
	sock="./squibnet.sock"; ctl="./squibnet-control.sock"
fi

"$bin/squibnet" &
sw=$!
station=""
trap 'kill $station $sw 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
i=0
until [ -S "$ctl" ] && "$bin/squibnetctl" --control "$ctl" ports >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "demo: squibnet did not start" >&2; exit 1; }
	sleep 0.05
done

echo "--- station A (10.0.0.1) and station B (10.0.0.2) attach; B pings A through the switch"
"$bin/squibnet-ping" --connect "unix:$sock" --ip 10.0.0.1/24 --serve 0 &
station=$!
"$bin/squibnet-ping" --connect "unix:$sock" --ip 10.0.0.2/24 --ping 10.0.0.1 --count 5
echo "--- squibnetctl ports"
"$bin/squibnetctl" --control "$ctl" ports
echo "--- squibnetctl fdb"
"$bin/squibnetctl" --control "$ctl" fdb
