#!/bin/bash
# usage: run_queue.sh QUEUEFILE [DATA] [WAITPID] — each non-comment line: NAME ARGS...; appends to results.jsonl.
# The queue file is read once at start (edit-safe). WAITPID: wait for that process to end first.
Q=$1; DATA=${2:-../shared/data}; W=${3:-}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cd "$(dirname "$0")"; mkdir -p logs
PY=${PY:-/work/.venv-torch/bin/python}
if [ -n "$W" ]; then while kill -0 "$W" 2>/dev/null; do sleep 5; done; fi
mapfile -t LINES < "$Q"
for line in "${LINES[@]}"; do
  read -r name args <<< "$line"
  [[ -z "$name" || "$name" == \#* ]] && continue
  echo "=== $name $args" >> logs/$(basename $Q).log
  nice -n 15 $PY probe_study.py --data "$DATA" --name "$name" $args --save-conv1 logs/$name.pt --out results.jsonl >> logs/$(basename $Q).log 2>&1
done
echo DONE >> logs/$(basename $Q).log
