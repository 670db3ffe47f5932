#!/usr/bin/env bash
# Data-parallel training over MPI with 2 ranks on this machine (Docs/Distributed.md).
#
# On synthetic CIFAR-format data (Scripts/make_synthetic_cifar.py), with `reproduce-paper`
# (debug build from `swift build`, or BIN=path) and OPENBLAS_NUM_THREADS=1, it checks:
#   1. agreement: a 2-rank pretraining + linear probe matches one process computing the same
#      global batches (--batch-shards 2): stage weights within 1e-3 (absolute; Adam's
#      normalised steps carry last-bit differences of the summed gradients), every epoch loss
#      within 1e-5 relative, and every probe accuracy within 1 test image;
#   2. determinism: a second 2-rank run gives byte-identical weights and identical losses and
#      probe accuracies;
#   3. kill and resume: a 2-rank pretraining SIGKILLed (one rank) KILLS times and resumed
#      each time ends with weights byte-identical to the uninterrupted 2-rank run, and every
#      checkpoint left behind is intact;
#   4. faults: when one rank is SIGKILLed the other has ended within 60 s (non-zero exit); when
#      one rank hangs (SIGSTOP) the other ends within 60 s with the typed timeout error
#      naming its rank (LAYERWISE_MPI_TIMEOUT=10); when one rank gets bad input, it prints a
#      typed error naming its rank and the job ends (non-zero) within 60 s.
# Usage: Scripts/mpi_test.sh   Environment: KILLS (default 2), KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS="${KILLS:-2}"
export OPENBLAS_NUM_THREADS=1
WORK="$(mktemp -d "${TMPDIR:-/tmp}/layerwise-mpi.XXXXXX")"
started=$(date +%s)
cleanup() {
    # Leftover ranks of a failed check (a stopped rank first gets SIGCONT so SIGKILL lands).
    for p in $(pgrep -f "$WORK" 2>/dev/null || true); do
        kill -CONT "$p" 2>/dev/null || true
        kill -9 "$p" 2>/dev/null || true
    done
    if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

if ! command -v mpirun >/dev/null; then echo "mpirun not found (bash Scripts/setup.sh installs Open MPI)"; exit 1; fi
if [[ -z "${BIN:-}" ]]; then
    swift build --product reproduce-paper >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
    BIN="$(swift build --show-bin-path)/reproduce-paper"
fi
OPTIONS=(--oversubscribe --bind-to none)
if [[ "$(id -u)" == 0 ]]; then OPTIONS+=(--allow-run-as-root); fi
MPIRUN=(mpirun -np 2 "${OPTIONS[@]}")

python3 Scripts/make_synthetic_cifar.py "$WORK/data"
DATA=(--cifar100 "$WORK/data/cifar100" --cifar10 "$WORK/data/cifar10")
PROBE=(--probe-only --skip-supervised --pretrain-epochs 3 --probe-epochs 20 "${DATA[@]}")

run() {  # run LOG COMMAND…: appends its output to LOG; on failure shows the end of LOG and exits
    local log=$1; shift
    "$@" >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
}

compare() {  # compare.py MODE DIR_A DIR_B: "close" (agreement tolerances) or "identical"
    python3 - "$@" <<'PY'
import json, struct, sys
mode, a, b = sys.argv[1:]
def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n]); header.pop("__metadata__", None)
    body = data[8 + n:]
    return {k: struct.unpack(f"<{(v['data_offsets'][1] - v['data_offsets'][0]) // 4}f",
                             body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}
ta, tb = tensors(f"{a}/contrastive_stage1.safetensors"), tensors(f"{b}/contrastive_stage1.safetensors")
ra, rb = json.load(open(f"{a}/results.json")), json.load(open(f"{b}/results.json"))
la, lb = (r["pretraining"]["contrastive_stage1"]["loss_per_epoch"] for r in (ra, rb))
pa, pb = ra["linear_probe"], rb["linear_probe"]
weights = max(abs(x - y) for k in ta for x, y in zip(ta[k], tb[k]))
losses = max(abs(x - y) / abs(x) for x, y in zip(la, lb))
probes = max(abs(pa[k] - pb[k]) for k in pa)
test_images = ra["data"]["test_images"]
print(f"  max |weight difference| {weights:.3g}, max relative epoch-loss difference {losses:.3g}, "
      f"max probe difference {probes * test_images:.2f} test images; probes {pa}")
ok = set(pa) == set(pb) and len(la) == len(lb)
if mode == "identical":
    ok = ok and weights == 0 and la == lb and pa == pb
else:
    ok = ok and weights <= 1e-3 and losses <= 1e-5 and probes * test_images <= 1.0 + 1e-6
sys.exit(0 if ok else 1)
PY
}

echo "== 1. 2 ranks against one process with the same global batches"
run "$WORK/one.log" "$BIN" "${PROBE[@]}" --batch-shards 2 --out "$WORK/one"
run "$WORK/two.log" "${MPIRUN[@]}" "$BIN" "${PROBE[@]}" --out "$WORK/two"
compare close "$WORK/one" "$WORK/two" || { echo "FAIL: 2 ranks disagree with one process"; exit 1; }
lines=$(grep -c "linear probe" "$WORK/two.log" || true)
[[ "$lines" == 3 ]] || { echo "FAIL: expected 3 probe lines from rank 0 only, got $lines"; exit 1; }
echo "PASS agreement (rank 0 alone printed)"

echo "== 2. two 2-rank runs"
run "$WORK/again.log" "${MPIRUN[@]}" "$BIN" "${PROBE[@]}" --out "$WORK/again"
compare identical "$WORK/two" "$WORK/again" || { echo "FAIL: two 2-rank runs differ"; exit 1; }
echo "PASS determinism"

rank_pid() {  # rank_pid MPIRUN_PID RANK: the pid of that rank (empty while not started)
    local p
    for p in $(pgrep -P "$1" 2>/dev/null || true); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$p"; return; fi
    done
}
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [[ "$s" != Z* ]]; }  # zombies are gone
latest_checkpoint() {  # empty when there is none yet
    { ls "$1"/checkpoints/layerwise-stage*-step*.safetensors 2>/dev/null || true; } | sort | tail -1
}
wait_for_checkpoint() {  # wait_for_checkpoint DIR AFTER_FILE: until a checkpoint newer than AFTER_FILE exists
    for _ in $(seq 1 600); do
        local c; c=$(latest_checkpoint "$1")
        if [[ -n "$c" && "$c" != "$2" ]]; then return 0; fi
        sleep 0.1
    done
    return 1
}
LONG=(--pretrain-only --pretrain-epochs 12 "${DATA[@]}")

echo "== 3. kill and resume with 2 ranks ($KILLS kills)"
run "$WORK/reference.log" "${MPIRUN[@]}" "$BIN" "${LONG[@]}" --out "$WORK/reference"
for i in $(seq 1 "$KILLS"); do
    before=$(latest_checkpoint "$WORK/interrupted")
    "${MPIRUN[@]}" "$BIN" "${LONG[@]}" --resume --out "$WORK/interrupted" >>"$WORK/interrupted.log" 2>&1 &
    job=$!
    wait_for_checkpoint "$WORK/interrupted" "$before" || { echo "FAIL: no new checkpoint"; exit 1; }
    sleep 0.$((RANDOM % 10))
    victim=$(rank_pid "$job" $((i % 2)))
    [[ -n "$victim" ]] && kill -9 "$victim"
    wait "$job" 2>/dev/null && { echo "  run $i finished before the kill"; continue; }
    summary=$(python3 Scripts/check_checkpoint.py "$(latest_checkpoint "$WORK/interrupted")") \
        || { echo "FAIL: bad checkpoint after kill $i"; exit 1; }
    echo "  kill $i (rank $((i % 2))): latest checkpoint intact: $summary"
done
run "$WORK/interrupted.log" "${MPIRUN[@]}" "$BIN" "${LONG[@]}" --resume --out "$WORK/interrupted"
cmp "$WORK/reference/contrastive_stage1.safetensors" "$WORK/interrupted/contrastive_stage1.safetensors" \
    || { echo "FAIL: resumed weights differ from the uninterrupted 2-rank run"; exit 1; }
echo "PASS kill and resume: final weights byte-identical"

echo "== 4. a rank that dies, hangs or gets bad input ends the job within 60 s"
for fault in KILL STOP; do
    out="$WORK/fault-$fault"
    LAYERWISE_MPI_TIMEOUT=10 "${MPIRUN[@]}" "$BIN" --pretrain-only --pretrain-epochs 200 "${DATA[@]}" --out "$out" \
        >"$out.log" 2>&1 &
    job=$!
    wait_for_checkpoint "$out" "" || { echo "FAIL: no checkpoint"; exit 1; }
    survivor=$(rank_pid "$job" 0); victim=$(rank_pid "$job" 1)
    t0=$(date +%s)
    kill -"$fault" "$victim"
    status=0
    for _ in $(seq 1 600); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$job" 2>/dev/null; then echo "FAIL: $fault: the job still runs after 60 s"; exit 1; fi
    wait "$job" || status=$?
    seconds=$(( $(date +%s) - t0 ))
    if alive "$survivor"; then echo "FAIL: $fault: rank 0 still runs"; exit 1; fi
    [[ "$status" != 0 ]] || { echo "FAIL: $fault: the job exited 0"; exit 1; }
    python3 Scripts/check_checkpoint.py "$(latest_checkpoint "$out")" >/dev/null \
        || { echo "FAIL: bad checkpoint"; exit 1; }
    if [[ "$fault" == STOP ]]; then
        grep -q "error: rank 0: .* did not complete within 10.0 s" "$out.log" \
            || { echo "FAIL: no typed timeout error from rank 0:"; tail -5 "$out.log"; exit 1; }
        echo "  SIGSTOP rank 1: rank 0 exited after ${seconds} s: $(grep -m1 'error: rank 0' "$out.log")"
    else
        launcher=$(grep -m1 -i 'rank 1\|signal' "$out.log" || true)
        echo "  SIGKILL rank 1: rank 0 gone after ${seconds} s (exit status $status): $launcher"
    fi
done
# Bad input on one rank only (an MPMD launch: rank 1 gets a data folder that does not exist).
t0=$(date +%s)
status=0
timeout 60 mpirun "${OPTIONS[@]}" \
    -np 1 "$BIN" --pretrain-only "${DATA[@]}" --out "$WORK/bad" : \
    -np 1 "$BIN" --pretrain-only --cifar100 "$WORK/missing" --cifar10 "$WORK/data/cifar10" --out "$WORK/bad" \
    >"$WORK/bad.log" 2>&1 || status=$?
seconds=$(( $(date +%s) - t0 ))
if [[ "$status" == 0 || "$status" == 124 ]]; then
    echo "FAIL: bad input: exit status $status (124: still running after 60 s)"; tail -5 "$WORK/bad.log"; exit 1
fi
if ! grep -q "error: rank 1: .*missing" "$WORK/bad.log"; then
    echo "FAIL: no typed error from rank 1:"; tail -5 "$WORK/bad.log"; exit 1
fi
echo "  bad input on rank 1: the job ended after ${seconds} s: $(grep -m1 'error: rank 1' "$WORK/bad.log")"
echo "PASS faults"
echo "mpi_test: all checks passed in $(( $(date +%s) - started )) s"
