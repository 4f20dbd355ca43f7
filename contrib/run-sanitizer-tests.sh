#!/usr/bin/env bash
# CI: the test suites again under the sanitizers, after contrib/run-tests.sh.
#   a. ASan + UBSan (build-asan/): the whole ctest suite, unit and integration.
#   b. TSan (build-tsan/): the tests whose code runs on more than one thread
#      (containment worker, freeze cache, incident/activity stores, notifier,
#      helper processes, the resilient counter store) and the Postfix and
#      floodgatectl tests that run several milter sessions at once.
#   c. libFuzzer (build-fuzz/, clang): every target of tests/fuzz for
#      FUZZ_SECONDS (20) on a scratch copy of its seed corpus, as many at
#      once as there are cores.
# Any step failing fails the script, and later steps do not run. Each step
# prints its wall time. Needs root on a machine missing packages (setup.sh).
# Usage: contrib/run-sanitizer-tests.sh [asan|tsan|fuzz]...   (default: all three)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
# The CI machine has two cores shared with nothing else; more jobs than cores
# only adds memory pressure to ASan links.
JOBS="${JOBS:-$(nproc)}"

# Any sanitizer report is a failure. ASan and UBSan already stop at the first
# report (the build uses -fno-sanitize-recover=undefined), halt_on_error is
# here so that stays true for targets built otherwise; detect_leaks is on by
# default on Linux x86-64 but is what makes a leak fail a test, so it is said.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The postfix.* and cli.* tests set their own TSAN_OPTIONS (suppressions only)
# in ctest and fail on any "ThreadSanitizer" line in the daemon's log instead.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/sanitizers/tsan.supp"

step_header() {
  printf '\n==== %s ====\n' "$*"
}

current_step=""
# set -e stops the script at the first failing command; this says where.
report_failure() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -n "$current_step" ]; then
    printf '\n==== FAILED (exit %d): %s ====\n' "$status" "$current_step" >&2
  fi
}
trap report_failure EXIT

run_timed() {
  local name="$1"
  shift
  local start=$SECONDS
  current_step="$name"
  step_header "$name"
  "$@"
  current_step=""
  printf '==== %s: passed in %dm%02ds ====\n' "$name" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60))
}

asan_step() {
  # setup.sh installs missing packages, then (FLOODGATE_SANITIZE=1) configures
  # build-asan with -DFLOODGATE_SANITIZE=ON and builds everything in it.
  FLOODGATE_SANITIZE=1 source "$ROOT/contrib/setup.sh"
  # Not the .deb test: it configures and builds a tree of its own, without
  # sanitizers, and run-tests.sh has just run it.
  (cd "$ROOT/build-asan" && ctest --output-on-failure -j2 --timeout 600 -E '^packaging\.deb_')
}

# Threaded code only: a TSan build runs 5-15x slower, and single-threaded
# parsers and scoring gain nothing from it (ASan/UBSan cover them).
# The postfix.* ones run daemons with many concurrent milter sessions, the
# worker, the metrics endpoint, reloads and draining shutdowns.
readonly TSAN_TESTS='Worker|Containment|Incident|Activity|RunChild|Notifier|FreezeCache|Resilient|RedisCounterStore|RedisFreezeStore|SessionTest|Metrics|ConfigReload|postfix\.(containment|incident|two_daemons|top|same_content|reload|shutdown|metrics|redis_killed|sentinel)|ctl\.'
readonly TSAN_TARGETS=(
  unit_milter unit_ratelimit unit_config unit_policy
  unit_containment_incident unit_containment_notify unit_containment_activity
  integration_redis floodgate floodgatectl make_spool_entries seed_activity seed_incident
)

tsan_step() {
  cmake -S "$ROOT" -B "$ROOT/build-tsan" -DFLOODGATE_SANITIZE_THREAD=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" >/dev/null
  cmake --build "$ROOT/build-tsan" -j"$JOBS" --target "${TSAN_TARGETS[@]}"
  (cd "$ROOT/build-tsan" && ctest --output-on-failure -j2 --timeout 600 -R "$TSAN_TESTS")
}

readonly FUZZ_TARGETS=(content_fingerprint_fuzz message_session_fuzz config_loader_fuzz header_address_fuzz)

fuzz_step() {
  command -v clang++ >/dev/null || { echo "run-sanitizer-tests: clang++ is missing (contrib/setup.sh installs it)" >&2; return 1; }
  CXX=clang++ cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DFLOODGATE_FUZZ=ON -DFLOODGATE_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build-fuzz" -j"$JOBS" --target "${FUZZ_TARGETS[@]}"
  local scratch target
  scratch="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand now: the variable is local
  trap "rm -rf '$scratch'" RETURN
  local running=() failed=0 pid
  for target in "${FUZZ_TARGETS[@]}"; do
    local corpus="${target%_fuzz}"
    # libFuzzer writes new inputs into its first folder: a scratch copy, so
    # the repository's seeds stay as they are. A crash leaves crash-* in the
    # scratch folder and its bytes in the target's log, printed on failure.
    cp -r "$ROOT/tests/fuzz/corpus/$corpus" "$scratch/$corpus"
    "$ROOT/build-fuzz/tests/fuzz/$target" -max_total_time="$FUZZ_SECONDS" -timeout=20 \
      -rss_limit_mb=2048 -artifact_prefix="$scratch/$target-" -print_final_stats=1 "$scratch/$corpus" \
      >"$scratch/$target.log" 2>&1 &
    running+=("$!:$target")
    if [ "${#running[@]}" -ge "$JOBS" ]; then
      fuzz_wait "${running[0]}" "$scratch" || failed=1
      running=("${running[@]:1}")
    fi
  done
  for pid in "${running[@]}"; do fuzz_wait "$pid" "$scratch" || failed=1; done
  return "$failed"
}

# Waits for one fuzzer ("PID:target"); prints its stats, or its whole log
# when it failed.
fuzz_wait() {
  local pid="${1%%:*}" target="${1#*:}" scratch="$2"
  if wait "$pid"; then
    echo "libFuzzer: $target: no crash in ${FUZZ_SECONDS}s ($(grep -E '^stat::number_of_executed_units' "$scratch/$target.log" | awk '{print $2}') runs)"
  else
    echo "libFuzzer: $target FAILED:" >&2
    cat "$scratch/$target.log" >&2
    return 1
  fi
}

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(asan tsan fuzz)
for step in "${steps[@]}"; do
  case "$step" in
    asan) run_timed "ASan+UBSan: build-asan, whole ctest suite" asan_step ;;
    tsan) run_timed "TSan: build-tsan, threaded tests" tsan_step ;;
    fuzz) run_timed "libFuzzer: build-fuzz, ${FUZZ_SECONDS}s per target" fuzz_step ;;
    *) echo "run-sanitizer-tests: unknown step '$step' (asan, tsan or fuzz)" >&2; exit 2 ;;
  esac
done
