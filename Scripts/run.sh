#!/usr/bin/env bash
# The main job: the paper's experiment on the embedded sample (quick preset), in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift run -c release reproduce-paper "$@"
