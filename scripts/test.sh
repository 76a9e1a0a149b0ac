#!/usr/bin/env bash
# Install, build, and run every test with ctest (unit, in-process SIP, loader, config, SIPp black-box), then
# every fuzz target for a short fixed time (FUZZ_SECONDS each, default 15; 0 skips; see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j"${JOBS:-2}" --timeout 300)
if [ "${FUZZ_SECONDS:-15}" -gt 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
fi
