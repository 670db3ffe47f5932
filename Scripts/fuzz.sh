#!/usr/bin/env bash
# Coverage-guided fuzzing of Layerwise's file readers with libFuzzer (Docs/Reliability.md).
#
#   Scripts/fuzz.sh build                     build every target (release, -sanitize=fuzzer,address)
#   Scripts/fuzz.sh run TARGET SECONDS [ARGS] fuzz TARGET for SECONDS (extra libFuzzer ARGS, e.g. -runs=N)
#   Scripts/fuzz.sh merge TARGET              minimise the corpus found so far into Fuzz/Corpus/TARGET
#   Scripts/fuzz.sh seeds                     regenerate the checkpoint seeds (Fuzz/Seeds/FuzzCheckpoint)
#   Scripts/fuzz.sh ci SECONDS                build, then run every target for SECONDS (what CI runs)
#
# Targets: FuzzSafeTensors, FuzzNPY, FuzzCIFAR, FuzzCheckpoint, FuzzImages (Fuzz/Sources). The
# package in Fuzz/ depends on this one by path and builds into .build-fuzz. A run starts from the
# seeds (Fuzz/Seeds/TARGET) and the committed minimised corpus (Fuzz/Corpus/TARGET); new
# inputs go to .build-fuzz/corpus/TARGET, findings (crash-*, leak-*, timeout-*) to
# .build-fuzz/findings/TARGET. Every input must finish within 1 s (-timeout=1) and leaks
# are errors (LeakSanitizer after every input that allocates more than it frees).
# Exit status 0 only if libFuzzer found nothing (a timeout whose input then runs within 1 s
# three times on its own is reported as a machine stall and ends the run early, status 0).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH="$ROOT/.build-fuzz"
TARGETS=(FuzzSafeTensors FuzzNPY FuzzCIFAR FuzzCheckpoint FuzzImages)

max_len() {  # a valid CIFAR input needs 3,073+ bytes; two records fit in 8 KB
    case "$1" in FuzzCIFAR) echo 8192 ;; *) echo 4096 ;; esac
}

binary() { echo "$(swift build -c release --package-path Fuzz --scratch-path "$SCRATCH" --show-bin-path)/$1"; }

build() {
    bash Scripts/setup.sh
    # Always from scratch (about a minute on an idle machine): an incremental build of the
    # path dependency was seen to mix objects compiled against an old class layout (a
    # heap-buffer-overflow in LayerwiseTrainer.init), and missed newly added source files.
    rm -rf "$SCRATCH/release.yaml" "$SCRATCH/release" "$SCRATCH"/*-unknown-linux-gnu
    swift build -c release --package-path Fuzz --scratch-path "$SCRATCH" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
}

known_target() {
    local t
    for t in "${TARGETS[@]}"; do [[ "$t" == "$1" ]] && return 0; done
    echo "unknown target '$1'; targets: ${TARGETS[*]}" >&2
    exit 2
}

run() {
    local target=$1 seconds=$2
    shift 2
    known_target "$target"
    local bin; bin=$(binary "$target")
    [[ -x "$bin" ]] || { echo "$bin is missing: run '$0 build' first" >&2; exit 2; }
    mkdir -p "$SCRATCH/corpus/$target" "$SCRATCH/findings/$target" "Fuzz/Corpus/$target" "Fuzz/Seeds/$target"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}"
    export OPENBLAS_NUM_THREADS=1
    echo "== $target for ${seconds}s"
    local before; before=$(ls "$SCRATCH/findings/$target" | sort)
    local status=0
    nice "$bin" -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len="$(max_len "$target")" \
        -print_final_stats=1 -artifact_prefix="$SCRATCH/findings/$target/" "$@" \
        "$SCRATCH/corpus/$target" "Fuzz/Corpus/$target" "Fuzz/Seeds/$target" || status=$?
    [[ $status -eq 0 ]] && return 0
    # On a loaded machine a stalled process can exceed the 1 s limit once. A timeout counts
    # only if the input is slow again on its own (3 runs under the same limit).
    local new; new=$(comm -13 <(echo "$before") <(ls "$SCRATCH/findings/$target" | sort))
    [[ -n "$new" ]] || return "$status"
    local f
    for f in $new; do
        [[ "$f" == timeout-* ]] || return "$status"
        if "$bin" -timeout=1 -runs=3 "$SCRATCH/findings/$target/$f" >/dev/null 2>&1; then
            echo "note: $f did not time out again on its own (3 runs within 1 s each): a stall of the machine, not a finding"
            mkdir -p "$SCRATCH/stalls/$target"; mv "$SCRATCH/findings/$target/$f" "$SCRATCH/stalls/$target/"
        else
            return "$status"
        fi
    done
}

merge() {
    local target=$1
    known_target "$target"
    local bin; bin=$(binary "$target")
    local fresh="$SCRATCH/merged/$target"
    rm -rf "$fresh"; mkdir -p "$fresh"
    OPENBLAS_NUM_THREADS=1 nice "$bin" -merge=1 -timeout=1 -max_len="$(max_len "$target")" "$fresh" \
        "$SCRATCH/corpus/$target" "Fuzz/Corpus/$target" "Fuzz/Seeds/$target"
    rm -rf "Fuzz/Corpus/$target"; mkdir -p "Fuzz/Corpus/$target"
    cp "$fresh"/* "Fuzz/Corpus/$target/" 2>/dev/null || true
    echo "Fuzz/Corpus/$target: $(ls "Fuzz/Corpus/$target" | wc -l) inputs, $(du -sk "Fuzz/Corpus/$target" | cut -f1) KB"
}

seeds() {
    local dir="Fuzz/Seeds/FuzzCheckpoint"
    rm -rf "$dir"; mkdir -p "$dir"
    LAYERWISE_FUZZ_SEED_DIR="$ROOT/$dir" OPENBLAS_NUM_THREADS=1 "$(binary FuzzCheckpoint)"
    rm -f "$dir/.layerwise.lock"
    ls -l "$dir"
}

case "${1:-}" in
    build) build ;;
    run) [[ $# -ge 3 ]] || { echo "usage: $0 run TARGET SECONDS [libFuzzer args]" >&2; exit 2; }; shift; run "$@" ;;
    merge) [[ $# -eq 2 ]] || { echo "usage: $0 merge TARGET" >&2; exit 2; }; merge "$2" ;;
    seeds) seeds ;;
    ci)
        [[ $# -eq 2 ]] || { echo "usage: $0 ci SECONDS" >&2; exit 2; }
        build
        for t in "${TARGETS[@]}"; do run "$t" "$2"; done
        ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
esac
