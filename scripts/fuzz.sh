#!/usr/bin/env bash
# Build the libFuzzer targets (clang-14, ASan+UBSan, build-fuzz/) and run each over its seed corpus.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      SECONDS per target (default 60); TARGET e.g. fuzz_sdp (default all)
# Each target runs on a temporary copy of fuzz/corpus/<name>/, so nothing new lands in git without review
# (FUZZ_KEEP=1 keeps the copy and prints where). Prints per target: runs, exec/s, coverage (cov/ft), corpus size.
# Exits non-zero on any crash, leak, timeout, out-of-memory or sanitizer report, naming the target and the
# saved reproducer (copied to $FUZZ_ARTIFACTS, default build-fuzz/fuzz-artifacts/).
# Environment: FUZZ_BUILD_DIR (build-fuzz), FUZZ_TIMEOUT (seconds one input may take, 25), FUZZ_RSS_MB (2048),
# JOBS (build parallelism, 2), FUZZ_PARALLEL (targets run at once, one per core), FUZZ_ARGS (extra libFuzzer
# flags). See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

secs=${1:-60}
[ $# -gt 0 ] && shift
case "$secs" in '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

build=${FUZZ_BUILD_DIR:-build-fuzz}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
all=(fuzz_sdp fuzz_refer fuzz_bodies fuzz_dialplan fuzz_config fuzz_admin_json fuzz_sip_core fuzz_sip_core_tcp fuzz_trace)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

# ---- build (its own tree, clang; the normal build stays g++). -O1 and line tables only: quicker to build, and
# what libFuzzer and the sanitizer reports need; no NDEBUG, so assert() stays on.
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 "${launcher[@]}" \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
      -DPARKWAY_FUZZ=ON -DPARKWAY_TESTS=OFF -DPARKWAY_BENCH=OFF -DPARKWAY_WERROR=OFF -DPARKWAY_UNITY=ON >/dev/null
build_start=$SECONDS
cmake --build "$build" -j"${JOBS:-2}" --target fuzz_all
echo "fuzz: build took $((SECONDS - build_start)) s"

# ---- run
work=$(mktemp -d "${TMPDIR:-/tmp}/parkway-fuzz-run.XXXXXX")
cleanup() { if [ "${FUZZ_KEEP:-0}" = 1 ]; then echo "fuzz: working copies kept in $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
mkdir -p "$artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export LSAN_OPTIONS="suppressions=$root/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# One target on a copy of its seed corpus, in the background; its exit status lands in $dir/rc.
launch() {
  local t=$1 name=${1#fuzz_} bin="$build/bin/$1" dir="$work/$1"
  mkdir -p "$dir/corpus"
  [ -x "$bin" ] || return 0
  local seeds=("$root/fuzz/corpus/$name")
  [ "$t" = fuzz_sip_core_tcp ] && seeds+=("$root/fuzz/corpus/sip_core")
  for s in "${seeds[@]}"; do [ -d "$s" ] && cp "$s"/* "$dir/corpus/" 2>/dev/null || true; done
  rm -f "$dir/corpus/README.md" "$dir/corpus/"*.py
  local dict=()
  [ -f "$root/fuzz/dict/$name.dict" ] && dict=(-dict="$root/fuzz/dict/$name.dict")
  [[ "$t" == fuzz_sip_core* ]] && dict=(-dict="$root/fuzz/dict/sip.dict")
  # Targets holding a live proxy: libFuzzer's per-input leak check scans the whole heap after almost every input
  # (state changes each time) and costs 100x in speed; LeakSanitizer still checks the heap when the run ends.
  local leaks=()
  case "$t" in fuzz_sip_core* | fuzz_config | fuzz_admin_json) leaks=(-detect_leaks=0) ;; esac
  # shellcheck disable=SC2086
  ( (cd "$dir" && "$bin" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-25}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
      -print_final_stats=1 -artifact_prefix="$dir/" "${dict[@]}" "${leaks[@]}" ${FUZZ_ARGS:-} corpus) >"$dir/log" 2>&1
    echo $? >"$dir/rc") &
}

# Targets run FUZZ_PARALLEL at a time (default: one per core), each for its full SECONDS.
parallel=${FUZZ_PARALLEL:-$(nproc 2>/dev/null || echo 1)}
running=0
for t in "${targets[@]}"; do
  launch "$t"
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

failed=()
printf '%-18s %10s %8s %7s %7s %7s  %s\n' target runs exec/s cov ft corpus result
for t in "${targets[@]}"; do
  bin="$build/bin/$t"
  dir="$work/$t"
  if [ ! -x "$bin" ]; then
    printf '%-18s %s\n' "$t" "not built (see cmake output)"
    failed+=("$t: not built")
    continue
  fi
  rc=$(cat "$dir/rc" 2>/dev/null || echo 125)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  covline=$(grep -E '^#[0-9]+.*cov: [0-9]+' "$dir/log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$covline")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$covline")
  # -fork=N runs (e.g. FUZZ_ARGS="-fork=1 -ignore_crashes=1" for long runs) print no final stats: use the last line.
  [ -z "$runs" ] && runs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$covline")
  [ -z "$eps" ] && eps=$(sed -n 's/.*exec\/s:\{0,1\} \([0-9]*\).*/\1/p' <<<"$covline")
  ncorpus=$(find "$dir/corpus" -type f | wc -l)
  repro=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
          | head -1)
  result=ok
  if [ $rc -ne 0 ] || [ -n "$repro" ]; then
    result="FAILED (exit $rc)"
    if [ -n "$repro" ]; then
      cp "$repro" "$artifacts/$t-$(basename "$repro")"
      result="$result reproducer: $artifacts/$t-$(basename "$repro")"
    fi
    cp "$dir/log" "$artifacts/$t.log"
    failed+=("$t: $result (log: $artifacts/$t.log)")
  fi
  printf '%-18s %10s %8s %7s %7s %7s  %s\n' "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "$ncorpus" "$result"
  if [ "$result" != ok ]; then
    # The report that made it fail: the sanitizer / libFuzzer lines and the first frames.
    grep -E 'ERROR:|SUMMARY|runtime error|invariant broken|Assertion|deadly signal|Test unit written' "$dir/log" \
      | head -8 | sed 's/^/    /' || true
    # A leak found when the run ended has no single reproducer: show where the first ones were allocated.
    grep -A5 -E '^(Direct|Indirect) leak' "$dir/log" | grep -E 'leak of|#[1-4] ' | head -10 | cut -c1-200 \
      | sed 's/^/    /' || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed:" >&2
  for f in "${failed[@]}"; do echo "  $f" >&2; done
  echo "reproduce: $build/bin/<target> <reproducer>   (PARKWAY_FUZZ_VERBOSE=1 shows the SIP answers)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) ran ${secs}s each without a finding"
