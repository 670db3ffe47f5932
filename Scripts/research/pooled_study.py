#!/usr/bin/env python3
"""pooled_study.py — does a larger view with pooled ReLU features teach conv1 better filters? (issue 9)

Same layer 1 as probe_study.py (64 whitened-space 6x6 filters, ZCA folded at transfer), same data
and screening probe, but each view is a PxP crop (default 16) and the embedding is the pooled
ReLU(conv) map: --pool avg (global mean, 64-d), max (global max, 64-d) or quad (4 quadrant means,
256-d) — the statistic the linear probe reads, instead of the paper's one 7x7 location.
Views: two PxP crops of one image, top-left offsets uniform in [-maxoff, maxoff]^2, one shared
horizontal flip, per-view colour jitter (prob 0.8, factors U(1-j, 1+j)) and grayscale (p).
Loss: NT-Xent over the 2B views, temperature tau. Adam.
"""
import argparse, json, math, sys, time, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probe_study as ps
import torch, torch.nn.functional as F, numpy as np


def crops(x01, idx, g, P, maxoff, same_flip=True):
    b = idx.shape[0]
    d = torch.randint(-maxoff, maxoff + 1, (b, 2), generator=g)
    lo = (-d).clamp_min(0)
    hi = (32 - P) - d.clamp_min(0)
    a = lo + (torch.rand(b, 2, generator=g) * (hi - lo + 1).float()).long()
    p = a + d
    ar = torch.arange(P)
    def cut(tl):
        rows = (tl[:, 0].view(-1, 1) + ar).view(b, 1, P, 1)
        cols = (tl[:, 1].view(-1, 1) + ar).view(b, 1, 1, P)
        return x01[idx.view(-1, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1), rows, cols]
    va, vp = cut(a), cut(p)
    fl = torch.rand(b, generator=g) < 0.5
    va[fl] = va[fl].flip(3); vp[fl] = vp[fl].flip(3)
    return va, vp


def jitter(v, g, j, jp, grayp):
    b = v.shape[0]
    if j > 0:
        on = (torch.rand(b, 1, 1, 1, generator=g) < jp).float()
        f = lambda: 1 + (torch.rand(b, 1, 1, 1, generator=g) * 2 - 1) * j * on
        v = v * f()
        gm = v.mean((1, 2, 3), keepdim=True); v = (v - gm) * f() + gm
        gr = 0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3]; v = (v - gr) * f() + gr
        v = v.clamp(0, 1)
    if grayp > 0:
        s = (torch.rand(b, 1, 1, 1, generator=g) < grayp).float()
        gr = (0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3]).expand_as(v)
        v = s * gr + (1 - s) * v
    return v


def nt_xent(e, tau):
    """NT-Xent over 2B embeddings: rows i and i + B are each other's positive."""
    B = e.shape[0] // 2
    zn = F.normalize(e, dim=1)
    sim = zn @ zn.t() / tau
    eye = torch.arange(2 * B)
    sim[eye, eye] = float("-inf")
    tgt = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)])
    return F.cross_entropy(sim, tgt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--name", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--P", type=int, default=16)
    ap.add_argument("--maxoff", type=int, default=4)
    ap.add_argument("--pool", choices=["avg", "max", "quad"], default="avg")
    ap.add_argument("--jit", type=float, default=0.8)
    ap.add_argument("--jit-p", type=float, default=0.8)
    ap.add_argument("--gray-p", type=float, default=0.5)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--zca-eps", type=float, default=0.1)
    ap.add_argument("--init-scale", type=float, default=1.0)
    ap.add_argument("--out", default="/tmp/pooled/results.jsonl")
    ap.add_argument("--save", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    c100, u_tr, y_tr, u_te, y_te = ps.load(a.data, 4000)
    y_tr, y_te = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    m, s = ps.stats(c100)
    x01 = torch.from_numpy(c100).float() / 255.0
    mu, z = ps.zca(ps.random_patches(ps.norm(x01, m, s), 400_000, torch.Generator().manual_seed(a.seed + 7)), a.zca_eps)
    torch.manual_seed(a.seed)
    lin = torch.nn.Linear(108, 64)
    W, b = lin.weight, lin.bias
    with torch.no_grad():
        W.mul_(a.init_scale)
    W0 = W.detach().clone()
    opt = torch.optim.Adam([W, b], lr=a.lr)
    g = torch.Generator().manual_seed(a.seed + 1)
    mv, sv = m.view(1, 3, 1, 1), s.view(1, 3, 1, 1)
    n = x01.shape[0]
    t0 = time.perf_counter()
    for ep in range(a.epochs):
        perm = torch.randperm(n, generator=g)
        ls = []
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            B = idx.shape[0]
            va, vp = crops(x01, idx, g, a.P, a.maxoff)
            v = torch.cat([jitter(va, g, a.jit, a.jit_p, a.gray_p), jitter(vp, g, a.jit, a.jit_p, a.gray_p)])
            v = (v - mv) / sv
            we = (W @ z).view(64, 3, 6, 6)
            h = F.relu(F.conv2d(v, we, b - (W @ z) @ mu))
            if a.pool == "avg":
                e = h.mean((2, 3))
            elif a.pool == "max":
                e = h.amax((2, 3))
            else:
                e = ps.quadrants(h) / (h.shape[2] * h.shape[3] / 4)
            loss = nt_xent(e, a.tau)
            opt.zero_grad(); loss.backward(); opt.step()
            ls.append(loss.item())
        ps.log(f"{a.name} ep {ep + 1} loss {np.mean(ls):.4f}")
    tpre = time.perf_counter() - t0
    with torch.no_grad():
        wf = W @ z
        w, bb = wf.view(64, 3, 6, 6), b - wf @ mu
    m10, s10 = ps.stats(u_tr)
    x_tr = ps.norm(torch.from_numpy(u_tr).float() / 255, m10, s10)
    x_te = ps.norm(torch.from_numpy(u_te).float() / 255, m10, s10)
    f_tr, f_te = ps.conv_features(w, bb, x_tr), ps.conv_features(w, bb, x_te)
    te, l2, tr, _ = ps.probe(f_tr, y_tr, f_te, y_te, [1e-4], 300)
    rel = ((W.detach() - W0).norm() / W0.norm()).item()
    ps.log(f"RESULT {a.name} seed {a.seed}: probe {100 * te:.2f} pretrain {tpre:.0f}s rel {rel:.2f} loss {np.mean(ls):.4f}")
    with open(a.out, "a") as f:
        f.write(json.dumps({"name": a.name, "seed": a.seed, "probe": te, "pretrain_s": tpre, "rel": rel,
                            "loss": float(np.mean(ls)), "args": vars(a)}) + "\n")
    if a.save:
        torch.save({"weight": w, "bias": bb}, a.save)


if __name__ == "__main__":
    main()
