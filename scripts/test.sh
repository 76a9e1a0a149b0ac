#!/usr/bin/env bash
# Install, build, and run every test with ctest (unit, in-process SIP, loader, config, SIPp black-box, install),
# then the .deb test when allowed (below), then
# every fuzz target for a short fixed time (FUZZ_SECONDS each, default 15; 0 skips; see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j"${JOBS:-2}" --timeout 300)
# The .deb test installs and purges a system package (tests/install/test_deb.sh): only where that is wanted
# (CI's throwaway container, or PARKWAY_DEB_TEST=1) and possible (root or passwordless sudo).
if [ -z "${CI:-}" ] && [ "${PARKWAY_DEB_TEST:-0}" != 1 ]; then
  echo "skipped: .deb install test (set PARKWAY_DEB_TEST=1 to install and purge the parkway package here)"
elif [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
  echo "skipped: .deb install test (needs root or passwordless sudo to install a package)"
else
  tests/install/test_deb.sh "${BUILD_DIR:-build}"
fi
if [ "${FUZZ_SECONDS:-15}" -gt 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
fi
