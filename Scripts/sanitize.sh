#!/usr/bin/env bash
# Runs the test suite under a sanitizer (Docs/Reliability.md):
#   Scripts/sanitize.sh address [swift test options, e.g. --filter DatasetsTests]
#   Scripts/sanitize.sh thread  [...]
# AddressSanitizer (with LeakSanitizer) or ThreadSanitizer, debug build in its own scratch
# folder (.build-asan / .build-tsan) so the normal build is untouched. Exit status 0 only if
# every test passed and the sanitizer reported nothing (any report makes the run fail).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
shift || true
case "$mode" in
  address)
    scratch=.build-asan
    # halt_on_error: the first report ends the run with a non-zero status. Leak detection is
    # off here: XCTest keeps its test-case objects (and everything their properties hold)
    # until exit, which LeakSanitizer reports as ~1 MB of leaks allocated by XCTest. Leaks
    # are checked by the fuzz targets instead (Scripts/fuzz.sh, LeakSanitizer per input).
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
    ;;
  thread)
    scratch=.build-tsan
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
    ;;
  *)
    echo "usage: $0 address|thread [swift test options]" >&2
    exit 2
    ;;
esac
bash Scripts/setup.sh
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift build --build-tests --sanitize="$mode" --scratch-path "$scratch"
log=$(mktemp)
set +e
swift test --skip-build --sanitize="$mode" --scratch-path "$scratch" --disable-swift-testing "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?," "$log" | tail -n 1 || true)
reports=$(grep -cE "^(==[0-9]+==ERROR|WARNING: ThreadSanitizer|SUMMARY: (Address|Thread|Leak)Sanitizer)" "$log" || true)
rm -f "$log"
echo "sanitize $mode: ${summary:-no summary} — sanitizer reports: $reports, exit status $status"
if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then exit 1; fi
