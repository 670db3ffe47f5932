#!/usr/bin/env python3
"""One row per `reproduce-paper --probe-only` output folder NAME-sS (results.json +
safetensors): probe %, k-means % and random % of the same run, pretrain seconds, and the
filter statistics of swift_filter_stats.py. Usage: swift_table.py DIR...  (markdown rows)"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from swift_filter_stats import folded, load, stats  # noqa: E402

for d in sys.argv[1:]:
    r = json.load(open(os.path.join(d, 'results.json')))
    lp, pre = r['linear_probe'], r['pretraining']
    name, seed = os.path.basename(d.rstrip('/')).rsplit('-s', 1)
    weights = os.path.join(d, 'contrastive_stage1.safetensors')
    if not os.path.exists(weights):  # --layers 2
        weights = os.path.join(d, 'contrastive_stages1-2.safetensors')
    st = stats(folded(load(weights)))
    km = os.path.join(d, 'kmeans_stage1.safetensors')
    kst = stats(folded(load(km))) if os.path.exists(km) else None
    extra = ', '.join(f"{k} {v * 100:.2f}" for k, v in sorted(lp.items()) if k not in ('contrastive', 'kmeans', 'random'))
    kmcol = f"{kst['low']:.3f} / {kst['axis']:.2f}" if kst else '–'
    stage1 = pre.get('contrastive_stage1', {}).get('seconds', float('nan'))
    loss = pre.get('contrastive_stage1', {}).get('final_loss', float('nan'))
    print(f"| {name} | {seed} | {lp['contrastive'] * 100:.2f} | {lp['kmeans'] * 100:.2f} | {lp['random'] * 100:.2f} | "
          f"{stage1:.1f} | {float(loss):.3f} | {st['low']:.3f} / {st['chroma']:.2f} / {st['spread']:.2f} / {st['axis']:.2f} | "
          f"{kmcol} | {extra or '–'} |")
