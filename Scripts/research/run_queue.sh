#!/bin/bash
# usage: run_queue.sh QUEUEFILE [DATA]  — each non-comment line: NAME ARGS...; appends to results.jsonl
Q=$1; DATA=${2:-../shared/data}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cd "$(dirname "$0")"; mkdir -p logs
PY=${PY:-/work/.venv-torch/bin/python}
while read -r name args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  echo "=== $name $args" >> logs/$(basename $Q).log
  nice -n 15 $PY probe_study.py --data "$DATA" --name "$name" $args --out results.jsonl >> logs/$(basename $Q).log 2>&1
done < "$Q"
echo DONE >> logs/$(basename $Q).log
