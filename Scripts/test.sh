#!/usr/bin/env bash
# Runs the whole test suite (the README's test command): the XCTest suite, then the 2-rank MPI
# checks (Scripts/mpi_test.sh). Installs OpenBLAS and Open MPI first if missing.
# Long experiments are skipped unless LAYERWISE_EXPERIMENTS=1 (see Docs/Experiments.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift build --build-tests
# The suite is XCTest only; without this flag the empty Swift Testing run prints the last
# line ("0 tests passed"), which reads as if nothing ran.
log=$(mktemp)
set +e
swift test --skip-build --disable-swift-testing 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One plain summary line: "N passed, N failed, N skipped".
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?," "$log" | tail -n 1)
rm -f "$log"
if [ -n "$summary" ]; then
  executed=$(echo "$summary" | grep -oE 'Executed [0-9]+' | grep -oE '[0-9]+')
  failures=$(echo "$summary" | grep -oE '[0-9]+ failures?' | grep -oE '^[0-9]+' || echo 0)
  skipped=$(echo "$summary" | grep -oE '[0-9]+ tests? skipped' | grep -oE '^[0-9]+' || echo 0)
  echo "tests: $((executed - failures - skipped)) passed, $failures failed, $skipped skipped"
fi
# Data-parallel training with 2 MPI ranks, on the reproduce-paper binary built above.
set +e
BIN="$(swift build --show-bin-path)/reproduce-paper" bash Scripts/mpi_test.sh
mpi_status=$?
set -e
echo "mpi checks: $([ "$mpi_status" -eq 0 ] && echo passed || echo FAILED)"
if [ "$status" -eq 0 ]; then status=$mpi_status; fi
exit "$status"
