#!/bin/sh
# Re-create the real-client traces of the replay suite (tests/replay/traces/real_*.pcapng) and their fixtures:
# baresip and linphonec (Debian packages baresip-core, linphone-cli) park and retrieve calls through a real
# parkway daemon while tshark captures the daemon's SIP port on loopback (capture_real_clients.py says how).
#   tests/replay/capture_real_clients.sh [BUILD_DIR] [SCENARIO...]      (default build dir: build)
# Needs root or the capture capability for tshark on lo; parkway and parkway-replay built in BUILD_DIR/bin.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
exec python3 "$here/capture_real_clients.py" --parkway "$build/bin/parkway" --replay "$build/bin/parkway-replay" "$@"
