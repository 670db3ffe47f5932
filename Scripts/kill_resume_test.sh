#!/usr/bin/env bash
# Kill-and-resume test of contrastive pretraining (Docs/Reliability.md).
#
# 1. Builds `reproduce-paper` (release) and runs its pretraining once, uninterrupted, as the
#    reference (OPENBLAS_NUM_THREADS=1).
# 2. Runs the same pretraining again into another folder, interrupting it at KILLS random
#    moments with SIGNAL (default KILL, i.e. kill -9) and restarting it with --resume each
#    time. After every interruption the newest checkpoint must be a complete, finite,
#    well-formed safetensors file (checked with python3, independently of the Swift reader).
#    With SIGNAL=TERM or INT the run must stop gracefully during pretraining (exit status 75,
#    "stopped after step N of stage K", a checkpoint of exactly that step, a "resume with:"
#    line), or die of the signal's default action (143 / 130) when it arrives before or after
#    pretraining, or have finished (0). With DOUBLE=1 every other interruption sends the
#    signal twice, 5–50 ms apart: the second must end the run at once (143 / 130) or find it
#    already stopped (75), and the checkpoint must still be intact.
# 3. Lets the last resume run to the end and requires the final stage weights to be
#    byte-identical (cmp) to the reference run's.
#
# Usage: Scripts/kill_resume_test.sh
# Environment: KILLS (default 10), SIGNAL (KILL, TERM or INT; default KILL), DOUBLE=1,
#   PRETRAIN_EPOCHS (default 150, about 8 s of pretraining on the embedded sample), KILL_SEED
#   (default 2026, the bash RANDOM seed for the kill moments), KEEP=1 keeps the work folder,
#   WORK=DIR uses DIR.
# Exit status 0 only if every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

KILLS="${KILLS:-10}"
EPOCHS="${PRETRAIN_EPOCHS:-150}"
KILL_SEED="${KILL_SEED:-2026}"
SIGNAL="${SIGNAL:-KILL}"
DOUBLE="${DOUBLE:-0}"
case "$SIGNAL" in
    KILL) DEFAULT_STATUS=137 ;;
    TERM) DEFAULT_STATUS=143 ;;
    INT) DEFAULT_STATUS=130 ;;
    *) echo "SIGNAL must be KILL, TERM or INT" >&2; exit 2 ;;
esac
export OPENBLAS_NUM_THREADS=1

WORK="${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/layerwise-kill-resume.XXXXXX")}"
mkdir -p "$WORK"
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$WORK"' EXIT; fi
echo "work folder: $WORK"

echo "== building reproduce-paper (release)"
swift build -c release --product reproduce-paper >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
BIN="$(swift build -c release --show-bin-path)/reproduce-paper"
ARGS=(--pretrain-only --pretrain-epochs "$EPOCHS" --seeds 1 --threads 1)

# Checks one checkpoint file without the Swift code (see Scripts/check_checkpoint.py).
check_checkpoint() {
    python3 Scripts/check_checkpoint.py "$1"
}

latest_checkpoint() {  # empty when there is none yet (ls fails; pipefail must not end the script)
    { ls "$1"/checkpoints/layerwise-stage*-step*.safetensors 2>/dev/null || true; } | sort | tail -1
}

echo "== reference run (uninterrupted, $EPOCHS pretraining epochs)"
start=$(date +%s.%N)
"$BIN" "${ARGS[@]}" --out "$WORK/reference" >"$WORK/reference.log" 2>&1 || { tail -20 "$WORK/reference.log"; exit 1; }
end=$(date +%s.%N)
REF_MS=$(python3 -c "print(int(($end - $start) * 1000))")
echo "reference run: ${REF_MS} ms; final weights $(wc -c <"$WORK/reference/contrastive_stage1.safetensors") bytes"
echo "reference checkpoints: $(ls "$WORK/reference/checkpoints" | tr '\n' ' ')"

step_of() {  # the step number in a checkpoint file name, 0 for none
    if [[ -z "${1:-}" ]]; then echo 0; return; fi
    local name; name=$(basename "$1")
    name=${name##*-step}; name=${name%%.*}
    echo $((10#$name))
}
TOTAL_STEPS=$(step_of "$(latest_checkpoint "$WORK/reference")")

echo "== interrupted run: $KILLS SIG$SIGNAL at random moments (RANDOM seed $KILL_SEED${DOUBLE:+, DOUBLE=$DOUBLE})"
RANDOM=$KILL_SEED
kills=0; finished_early=0; checked=0; no_checkpoint=0; graceful=0; signal_deaths=0; doubles=0; immediate=0
for i in $(seq 1 "$KILLS"); do
    # The kill moment is uniform in [50 ms, 50 ms + 2 × (estimated remaining time) / (kills
    # left + 1)], so the kills spread over the whole run (the last one within the first two
    # thirds of what is left) and hit data loading, steps and checkpoint writes alike.
    done_steps=$(step_of "$(latest_checkpoint "$WORK/interrupted")")
    remaining_ms=$(( REF_MS * (TOTAL_STEPS - done_steps) / TOTAL_STEPS ))
    window=$(( 2 * remaining_ms / (KILLS - i + 2) ))
    (( window < 200 )) && window=200
    delay_ms=$(( 50 + (RANDOM * 32768 + RANDOM) % window ))
    "$BIN" "${ARGS[@]}" --resume --out "$WORK/interrupted" >"$WORK/run.log" 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    if kill -0 "$pid" 2>/dev/null; then
        kill -s "$SIGNAL" "$pid"
        second=""
        if [[ "$DOUBLE" == 1 && "$SIGNAL" != KILL && $((i % 2)) == 0 ]]; then
            gap_ms=$((5 + RANDOM % 46))
            sleep "0.$(printf '%03d' "$gap_ms")"
            kill -s "$SIGNAL" "$pid" 2>/dev/null && { second=", again after ${gap_ms} ms"; doubles=$((doubles + 1)); }
        fi
        status=0
        wait "$pid" 2>/dev/null || status=$?
        cat "$WORK/run.log" >>"$WORK/interrupted.log"
        kills=$((kills + 1))
        what="SIG$SIGNAL after ${delay_ms} ms$second: exit status $status"
        if [[ "$SIGNAL" != KILL ]]; then
            case "$status" in
                75)
                    stopped=$(grep -oE 'stopped after step [0-9]+ of stage [0-9]+' "$WORK/run.log") \
                        || { echo "  run $i: status 75 without the stop message"; cat "$WORK/run.log"; exit 1; }
                    grep -q "resume with: .*--resume" "$WORK/run.log" \
                        || { echo "  run $i: no 'resume with:' line"; exit 1; }
                    step=$(echo "$stopped" | awk '{print $4}'); stage=$(echo "$stopped" | awk '{print $7}')
                    expected=$(printf 'layerwise-stage%d-step%09d.safetensors' "$stage" "$step")
                    [[ -f "$WORK/interrupted/checkpoints/$expected" ]] \
                        || { echo "  run $i: stopped at step $step but $expected is missing"; exit 1; }
                    graceful=$((graceful + 1)); what="$what ($stopped)" ;;
                "$DEFAULT_STATUS")
                    if [[ -n "$second" ]]; then immediate=$((immediate + 1)); else signal_deaths=$((signal_deaths + 1)); fi ;;
                0) finished_early=$((finished_early + 1)) ;;
                *) echo "  run $i: unexpected exit status $status"; tail -20 "$WORK/run.log"; exit 1 ;;
            esac
        fi
    else
        wait "$pid" || { echo "run $i failed on its own:"; tail -20 "$WORK/run.log"; exit 1; }
        cat "$WORK/run.log" >>"$WORK/interrupted.log"
        finished_early=$((finished_early + 1))
        what="finished before the kill at ${delay_ms} ms"
    fi
    latest=$(latest_checkpoint "$WORK/interrupted")
    if [[ -z "$latest" ]]; then
        no_checkpoint=$((no_checkpoint + 1))
        echo "  run $i: $what; no checkpoint yet"
    else
        summary=$(check_checkpoint "$latest") || { echo "  run $i: $what; BAD checkpoint $latest"; exit 1; }
        checked=$((checked + 1))
        temps=$(ls -A "$WORK/interrupted/checkpoints" | grep -c '\.tmp-' || true)
        echo "  run $i: $what; latest $(basename "$latest"): $summary; leftover temporary files: $temps"
    fi
done

echo "== final resume, to completion"
"$BIN" "${ARGS[@]}" --resume --out "$WORK/interrupted" >>"$WORK/interrupted.log" 2>&1 || { tail -20 "$WORK/interrupted.log"; exit 1; }
check_checkpoint "$(latest_checkpoint "$WORK/interrupted")" >/dev/null

temps=$(ls -A "$WORK/interrupted/checkpoints" | grep -c '\.tmp-' || true)
echo "checkpoints left: $(ls "$WORK/interrupted/checkpoints" | tr '\n' ' '); temporary files left by killed writers: $temps"
if cmp "$WORK/reference/contrastive_stage1.safetensors" "$WORK/interrupted/contrastive_stage1.safetensors"; then
    signals=""
    if [[ "$SIGNAL" != KILL ]]; then
        signals=" ($graceful graceful stops with exit status 75, $signal_deaths default-action deaths outside pretraining, $doubles double signals of which $immediate exited at once with $DEFAULT_STATUS)"
    fi
    echo "PASS: $kills SIG$SIGNAL$signals, $finished_early runs finished before their signal, $no_checkpoint interruptions before the first checkpoint, $checked checkpoints verified; final weights byte-identical to the uninterrupted run"
else
    echo "FAIL: final weights differ from the uninterrupted run"
    exit 1
fi
