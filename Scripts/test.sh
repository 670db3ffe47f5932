#!/usr/bin/env bash
# Runs the whole test suite (the README's test command). Installs OpenBLAS first if missing.
# Long experiments are skipped unless LAYERWISE_EXPERIMENTS=1 (see Docs/ReproducingThePaper.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift build --build-tests
swift test --skip-build
