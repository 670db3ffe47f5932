#!/usr/bin/env python3
"""Render results.jsonl (probe_study.py output) as a markdown table, in run order."""
import json, sys
path = sys.argv[1] if len(sys.argv) > 1 else "results.jsonl"
print("| # | name | seed | probe % | probe mode | L2 (grid?) | pretrain s | final pretrain loss / acc | dead | command (args after probe_study.py) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for i, l in enumerate(open(path)):
    r = json.loads(l)
    h = r.get("hist_last") or {}
    hl = f"{h['loss']:.3f} / {h['acc']:.3f}" if h else "–"
    grid = "grid" if "," in r["args"]["probe_l2"] else "fixed"
    cmd = r["cmd"].split("probe_study.py", 1)[-1].replace("--data /work/shared/data", "").replace("--out results.jsonl", "").strip()
    print(f"| {i + 1} | {r['name']} | {r['seed']} | {100 * r['probe_acc']:.2f} | {r['probe_mode']} | {r['l2']:g} ({grid}, {r['args']['probe_iters']} it) | "
          f"{r['pretrain_s']:.1f} | {hl} | {r['dead_filters']} | `{cmd}` |")
