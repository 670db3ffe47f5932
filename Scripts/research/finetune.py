#!/usr/bin/env python3
"""Transfer arm (scratch / contrastive_finetuned / frozen) on CIFAR-10 exactly as ../shared/peer/paper_ref.py
step 3 (imports its Classifier, train_classifier, data helpers), with conv1 optionally loaded from a .pt file
written by probe_study.py --save-conv1 (folded weights). Held-out: last --val of data_batch_1+2.
One JSON line per run appended to --out."""
import argparse, json, os, sys, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--peer", default="/work/shared/peer", help="folder with paper_ref.py")
ap.add_argument("--conv1", default="", help=".pt from probe_study --save-conv1; empty = scratch")
ap.add_argument("--frozen", action="store_true")
ap.add_argument("--name", default="")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--epochs", type=int, default=15)
ap.add_argument("--val", type=int, default=4000)
ap.add_argument("--out", default="finetune.jsonl")
a = ap.parse_args()
sys.path.insert(0, a.peer)
import paper_ref as R
torch.set_num_threads(1)
u1, y1 = R.read_cifar10(os.path.join(a.data, "cifar-10-batches-bin", "data_batch_1.bin"))
u2, y2 = R.read_cifar10(os.path.join(a.data, "cifar-10-batches-bin", "data_batch_2.bin"))
u, y = np.concatenate([u1, u2]), np.concatenate([y1, y2])
utr, ytr, ute, yte = u[:-a.val], y[:-a.val], u[-a.val:], y[-a.val:]
m, s = R.channel_stats(utr)
xtr, xte = R.normalise(utr, m, s), R.normalise(ute, m, s)
xpad = R.pad_black(xtr, m, s)
args = argparse.Namespace(lr=1e-3, lr_drop=1e-4, batch=128)
torch.manual_seed(a.seed)
model = R.Classifier(64, 128, 256, 10)
if a.conv1:
    d = torch.load(a.conv1)
    with torch.no_grad():
        model.conv1.weight.copy_(d["weight"])
        model.conv1.bias.copy_(d["bias"])
g = torch.Generator().manual_seed(a.seed + 12345)
t0 = time.perf_counter()
r = R.train_classifier(model, xpad, torch.from_numpy(ytr), xte, torch.from_numpy(yte), a.epochs, args, g,
                       a.name or "arm", frozen_conv1=a.frozen)
rec = {"name": a.name, "conv1": a.conv1, "frozen": a.frozen, "seed": a.seed, "epochs": a.epochs,
       "curve": r["curve"], "final": r["final"], "wall_s": time.perf_counter() - t0, "cmd": " ".join(sys.argv)}
print("RESULT", json.dumps(rec), flush=True)
with open(a.out, "a") as f:
    f.write(json.dumps(rec) + "\n")
