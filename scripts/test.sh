#!/usr/bin/env bash
# Install, build, and run every test with ctest (unit, in-process SIP, loader, config, SIPp black-box, install),
# then the .deb test when allowed (below), then
# every fuzz target for a short fixed time (FUZZ_SECONDS each, default 8; 0 skips; see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase's wall time is printed at the end (CI's whole run has a 20-minute budget: see where it goes).
phases=()
phase() { phases+=("$(printf '%-10s %4d s' "$1" $((SECONDS - phase_start)))"); phase_start=$SECONDS; }
report() { echo "test.sh: wall time per phase:"; printf '  %s\n' "${phases[@]}"; echo "  total      $SECONDS s"; }
trap report EXIT
phase_start=$SECONDS
scripts/setup.sh
phase setup
scripts/build.sh
phase build
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j"${JOBS:-2}" --timeout 300)
phase ctest
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
phase deb
if [ "${FUZZ_SECONDS:-8}" -gt 0 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-8}"
fi
phase fuzz
