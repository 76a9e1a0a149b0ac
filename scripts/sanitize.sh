#!/usr/bin/env bash
# Build and run the tests under a sanitizer: scripts/sanitize.sh thread|address [ctest -R regex]
# ThreadSanitizer checks the one cross-thread path (admin thread / post() -> SIP thread) and the MOH player
# thread; AddressSanitizer+UBSan checks memory. -Werror is off here: GCC 12 warns falsely inside std::regex
# under -fsanitize=address.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-thread}
filter=${2:-}
case "$kind" in thread|address) ;; *) echo "usage: $0 thread|address [ctest-regex]" >&2; exit 2 ;; esac
scripts/setup.sh
dir="build-${kind}"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARKWAY_SANITIZE="$kind" -DPARKWAY_WERROR=OFF \
      -DPARKWAY_BENCH=OFF
cmake --build "$dir" -j"${JOBS:-2}"
cd "$dir"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
ctest --output-on-failure -j"${JOBS:-2}" --timeout 600 ${filter:+-R "$filter"}
