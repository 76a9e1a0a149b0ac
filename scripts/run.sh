#!/usr/bin/env bash
# Install, build, and start parkway with examples/parkway.toml on 127.0.0.1:5060 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec "${BUILD_DIR:-build}/bin/parkway" --config examples/parkway.toml "$@"
