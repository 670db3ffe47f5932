#!/usr/bin/env python3
"""stage2_study.py — does whitening stage 2's input make layer-wise stage-2 training useful? (issue 9)

Stage 1 is fixed: a folded conv1 (64x3x6x6, e.g. conv1_winner_seed0.pt) → max-pool 2 → ReLU.
Stage 2: conv 3x3, 64 → 128, trained layer-wise on 13x13 views (stage 1 frozen): two views of
one image at top-left offsets in [-maxoff, maxoff]^2, shared flip, per-view colour jitter and
grayscale (the stage-1 recipe's), stage1 → conv2 → max-pool 2 → ReLU → 128-d → NT-Xent.
--white zca: conv2 works in whitened coordinates of the 576-d 3x3x64 windows of stage-1 maps
(ZCA fitted on CIFAR-100 maps, eps --eps relative to the mean eigenvalue), folded at probe time.
Probe (screening, as probe_study.py): stage1 map (13x13) → conv2 → ReLU (11x11) → quadrant sums
→ 512 features [+ stage-1's 256 with --concat] → logistic regression (L2 1e-4, 300 L-BFGS).
"""
import argparse, json, sys, os, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probe_study as ps
from pooled_study import crops, jitter, nt_xent
import torch, torch.nn.functional as F, numpy as np


def stage1(x, w1, b1):
    return F.relu(F.max_pool2d(F.conv2d(x, w1, b1), 2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--conv1", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv1_winner_seed0.pt"))
    ap.add_argument("--name", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--white", choices=["none", "zca"], default="zca")
    ap.add_argument("--eps", type=float, default=0.01, help="ZCA eps as a fraction of the mean eigenvalue")
    ap.add_argument("--train", type=int, default=1, help="0 = probe the initial (random) stage 2")
    ap.add_argument("--maxoff", type=int, default=4)
    ap.add_argument("--jit", type=float, default=0.8)
    ap.add_argument("--gray-p", type=float, default=0.5)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", default="/tmp/pooled/stage2.jsonl")
    a = ap.parse_args()
    torch.set_num_threads(1)
    c1 = torch.load(a.conv1)
    w1, b1 = c1["weight"].float(), c1["bias"].float()
    c100, u_tr, y_tr, u_te, y_te = ps.load(a.data, 4000)
    y_tr, y_te = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    m, s = ps.stats(c100)
    x01 = torch.from_numpy(c100).float() / 255.0
    mv, sv = m.view(1, 3, 1, 1), s.view(1, 3, 1, 1)
    D = 64 * 9
    mu, z = torch.zeros(D), torch.eye(D)
    if a.white == "zca":
        g = torch.Generator().manual_seed(a.seed + 7)
        idx = torch.randint(0, x01.shape[0], (4000,), generator=g)
        with torch.no_grad():
            h = stage1((x01[idx] - mv) / sv, w1, b1)            # (4000, 64, 13, 13)
            p = F.unfold(h, 3).transpose(1, 2).reshape(-1, D)    # all 3x3 windows
            p = p[torch.randperm(p.shape[0], generator=g)[:200_000]].double()
            mu = p.mean(0)
            c = torch.cov((p - mu).t())
            lam, v = torch.linalg.eigh(c)
            e = a.eps * lam.clamp_min(0).mean()
            z = (v @ torch.diag(1 / (lam.clamp_min(0) + e).sqrt()) @ v.t()).float()
            mu = mu.float()
    torch.manual_seed(a.seed)
    conv = torch.nn.Conv2d(64, 128, 3)
    W = torch.nn.Parameter(conv.weight.detach().reshape(128, D).clone())
    b = torch.nn.Parameter(conv.bias.detach().clone())
    W0 = W.detach().clone()
    opt = torch.optim.Adam([W, b], lr=a.lr)
    g = torch.Generator().manual_seed(a.seed + 1)
    n = x01.shape[0]
    t0 = time.perf_counter()
    loss_v = float("nan")
    for ep in range(a.epochs if a.train else 0):
        perm = torch.randperm(n, generator=g)
        ls = []
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            B = idx.shape[0]
            va, vp = crops(x01, idx, g, 13, a.maxoff)
            v = torch.cat([jitter(va, g, a.jit, 0.8, a.gray_p), jitter(vp, g, a.jit, 0.8, a.gray_p)])
            with torch.no_grad():
                h = stage1((v - mv) / sv, w1, b1)                   # (2B, 64, 4, 4)
            wf = W @ z
            y = F.conv2d(h, wf.view(128, 64, 3, 3), b - wf @ mu)    # 2x2
            e = F.relu(y.amax((2, 3)))
            loss = nt_xent(e, a.tau)
            opt.zero_grad(); loss.backward(); opt.step()
            ls.append(loss.item())
        loss_v = float(np.mean(ls))
        ps.log(f"{a.name} ep {ep + 1} loss {loss_v:.4f}")
    tpre = time.perf_counter() - t0
    with torch.no_grad():
        wf = W @ z
        w2, b2 = wf.view(128, 64, 3, 3), b - wf @ mu
    m10, s10 = ps.stats(u_tr)
    feats = {}
    for name, u in (("tr", u_tr), ("te", u_te)):
        x = ps.norm(torch.from_numpy(u).float() / 255, m10, s10)
        f1, f2 = [], []
        with torch.no_grad():
            for i in range(0, x.shape[0], 500):
                xb = x[i:i + 500]
                f1.append(ps.quadrants(F.relu(F.conv2d(xb, w1, b1))))
                f2.append(ps.quadrants(F.relu(F.conv2d(stage1(xb, w1, b1), w2, b2))))
        feats[name] = (torch.cat(f1).double(), torch.cat(f2).double())
    r = {}
    te, *_ = ps.probe(feats["tr"][1], y_tr, feats["te"][1], y_te, [1e-4], 300)
    r["stage2"] = te
    te, *_ = ps.probe(torch.cat(feats["tr"], 1), y_tr, torch.cat(feats["te"], 1), y_te, [1e-4], 300)
    r["concat"] = te
    rel = ((W.detach() - W0).norm() / W0.norm()).item()
    ps.log(f"RESULT {a.name} seed {a.seed}: stage2 {100 * r['stage2']:.2f} concat {100 * r['concat']:.2f} "
           f"pretrain {tpre:.0f}s rel {rel:.2f} loss {loss_v:.4f}")
    with open(a.out, "a") as f:
        f.write(json.dumps({"name": a.name, "seed": a.seed, **r, "pretrain_s": tpre, "rel": rel, "loss": loss_v,
                            "args": vars(a)}) + "\n")


if __name__ == "__main__":
    main()
