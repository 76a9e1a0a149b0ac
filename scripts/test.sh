#!/usr/bin/env bash
# Install, build, and run every test with ctest (unit, in-process SIP, loader, config, SIPp black-box, install),
# then the .deb test when allowed (below), then
# every fuzz target for a short fixed time (FUZZ_SECONDS each, default 8; 0 skips; see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j"${JOBS:-2}" --timeout 300)
# The .deb test installs and purges a system package (tests/install/test_deb.sh; it refuses when a parkway
# package is already installed): run it wherever that is possible (root or passwordless sudo), as CI does;
# PARKWAY_DEB_TEST=0 skips it.
if [ "${PARKWAY_DEB_TEST:-1}" = 0 ]; then
  echo "skipped: .deb install test (PARKWAY_DEB_TEST=0)"
elif [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
  echo "skipped: .deb install test (needs root or passwordless sudo to install a package)"
else
  tests/install/test_deb.sh "${BUILD_DIR:-build}"
fi
if [ "${FUZZ_SECONDS:-8}" -gt 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-8}"
fi
