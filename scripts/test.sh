#!/usr/bin/env bash
# Install, build, and run every test with ctest (unit, in-process SIP, loader, config, SIPp black-box).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j"${JOBS:-2}" --timeout 300
