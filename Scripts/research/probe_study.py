#!/usr/bin/env python3
"""probe_study.py — layer-1 pretraining recipe study for Layerwise (issue 9).

One run = one recipe (or baseline) + the linear probe; one JSON line is appended to --out.

Layer 1 (what transfers): 64 linear filters on 6x6x3 patches (= Conv2d(3,64,6)) + bias.
Encoder during pretraining: 7x7 patch -> the four 6x6 sub-patches -> [optional fixed preprocessing P]
-> linear W,b -> max over the 4 positions (= MaxPool2d(2) of the 2x2 conv map) -> ReLU -> 64-d embedding
-> [optional projection head, pretraining only] -> loss.

Fixed input preprocessing P (applied to each 6x6x3 = 108-d patch vector, inputs already normalised per
channel with CIFAR-100 train mean/std):
  --pre none : identity
  --pre zca  : x -> Z (x - mu), Z = V diag(1/sqrt(lambda + eps)) V^T of the covariance of 400k random 6x6
               patches of CIFAR-100 train (after --cn if given). Linear, so at transfer it is folded into
               conv1: W_eff = W Z, b_eff = b - W Z mu (exact; the transferred layer is a plain Conv2d).
  --cn EPS   : per-patch contrast normalisation before ZCA: x -> (x - mean(x)) / sqrt(var(x) + EPS)
               (mean/var over the 108 values). NOT linear: cannot be folded; the probe then applies it too
               (reported with probe_mode "cn").
Sampler (per image, per step): a "view" is a 7x7 patch sampled by grid_sample from the 32x32 image:
  anchor centre uniform (patch inside the image); positive centre = anchor + (dy,dx), each uniform integer
  in [-maxoff, maxoff] (re-drawn if both 0 and --min-off 1); optional per-view scale s (side 7*s pixels,
  log-uniform in [1/smax, smax]), rotation (uniform in [-rot, rot] degrees, or --rot90: multiples of 90),
  hflip p=0.5 (--flip indep: per view; same: one flip for the image, both views; none), colour jitter (prob --jit-p: brightness/contrast/saturation factors U(1-j,1+j), random
  grayscale p=--gray-p) applied to the patch in [0,1] pixel space, then per-channel normalisation.
  --same-neg: a third view from the same image with |offset| >= --same-min in some axis = extra negative.
  --paper-sampler: the paper's code instead: random 8x8 crop (+flip), its 4 overlapping 7x7 patches, all 6 pairs.
Losses:
  triplet-cos     : d = 1 - cos, margin --margin, one random in-batch negative (or the same-image one)
  triplet-euclid  : d = squared Euclidean, margin --margin, --mining semihard|hardest|random
  infonce         : NT-Xent, L2-normalised embeddings (after head), temperature --tau, all 2B-2 in-batch
                    views (+ same-image views) are negatives, symmetric.
  barlow          : Barlow Twins (cross-correlation of batch-standardised embeddings -> identity, off-diagonal
                    weight --bt-lambda).
  vicreg          : VICReg (invariance MSE 25, variance hinge 25, covariance 1).
  swav            : swapped prediction of Sinkhorn codes (--swav-eps) with the filters as prototypes
                    (use with --embed proto --unit-filters: cosine of window and filter, max over windows).
Fourth-pass levers (issue 9, 2026-11-29 night): --blur-p/--blur-max (per-view Gaussian blur), --noise (per-view
pixel noise), --smooth L (penalty L x mean roughness of the folded filters: spatial-difference energy over energy),
--bias-quantiles (probe again with each filter's bias reset to a response quantile).
Probe (same as ../shared/peer/paper_ref.py with --probe-l2 0,1e-5,1e-4,1e-3,1e-2,1e-1 --probe-iters 1000;
the cheap screening default is a fixed L2 = 1e-4 (what paper_ref's grid picks for random filters) and 300
L-BFGS iterations, which gave identical validation accuracy to 1000 iterations in a check): ReLU(conv1(x)) on full 32x32 CIFAR-10 images normalised by
CIFAR-10 train stats (27x27 map), sum-pool quadrants split at 14 -> 256 features, standardise (train mean,
sqrt(var+0.01)), multinomial logistic regression with L-BFGS (1000 iters), L2 chosen from
{0,1e-5,1e-4,1e-3,1e-2,1e-1} on an 80/20 split of the 16,000 training images, refit on all 16,000,
accuracy on the held-out last 4,000 of data_batch_1+2.
Baselines: --baseline random (paper_ref: torch.manual_seed(seed); nn.Conv2d(3,64,6) default init),
           --baseline kmeans (Coates, Lee & Ng 2011, see kmeans_features()).
"""
import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ------------------------------------------------------------------------------------------------ data
def read_bin(path, rec, lab):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, rec)
    return raw[:, lab:].reshape(-1, 3, 32, 32), raw[:, lab - 1].astype(np.int64)


def load(data, val):
    c100, _ = read_bin(os.path.join(data, "cifar-100-binary", "train.bin"), 3074, 2)
    a, ya = read_bin(os.path.join(data, "cifar-10-batches-bin", "data_batch_1.bin"), 3073, 1)
    b, yb = read_bin(os.path.join(data, "cifar-10-batches-bin", "data_batch_2.bin"), 3073, 1)
    u10, y10 = np.concatenate([a, b]), np.concatenate([ya, yb])
    return c100, u10[:-val], y10[:-val], u10[-val:], y10[-val:]


def stats(u8):
    x = u8.astype(np.float64) / 255.0
    return (torch.tensor(x.mean(axis=(0, 2, 3)), dtype=torch.float32),
            torch.tensor(x.std(axis=(0, 2, 3)), dtype=torch.float32))


def norm(x01, m, s):
    return (x01 - m.view(1, 3, 1, 1)) / s.view(1, 3, 1, 1)


# ------------------------------------------------------------------------------------------------ preprocessing
def contrast_norm(p, eps):  # p (..., 108)
    mu = p.mean(-1, keepdim=True)
    return (p - mu) / (p.var(-1, keepdim=True, unbiased=False) + eps).sqrt()


def random_patches(xn, n, g):
    i = torch.randint(0, xn.shape[0], (n,), generator=g)
    y = torch.randint(0, 27, (n,), generator=g)
    x = torch.randint(0, 27, (n,), generator=g)
    ar = torch.arange(6)
    rows = (y.view(-1, 1) + ar).view(n, 1, 6, 1)
    cols = (x.view(-1, 1) + ar).view(n, 1, 1, 6)
    return xn[i.view(-1, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1), rows, cols].reshape(n, 108)


def zca(p, eps):
    p = p.double()
    mu = p.mean(0)
    c = torch.cov((p - mu).t())
    lam, v = torch.linalg.eigh(c)
    z = v @ torch.diag(1.0 / (lam.clamp_min(0) + eps).sqrt()) @ v.t()
    return mu.float(), z.float()


# ------------------------------------------------------------------------------------------------ sampler
class ViewSampler:
    def __init__(self, x01, a):
        self.x, self.a = x01, a

    def offsets(self, b, g, lo, hi):
        """integer offsets (b,2) with each |component| <= hi and max(|dy|,|dx|) >= lo."""
        d = torch.randint(-hi, hi + 1, (b, 2), generator=g)
        bad = d.abs().max(1).values < lo
        while bad.any():
            d[bad] = torch.randint(-hi, hi + 1, (int(bad.sum()), 2), generator=g)
            bad = d.abs().max(1).values < lo
        return d

    def views(self, idx, centres, g, flip=None):
        """7x7 views of images idx at integer centre (cy,cx) = top-left + 3, with the per-view augmentations."""
        a, b = self.a, idx.shape[0]
        s = torch.ones(b)
        if a.smax > 1:
            s = torch.exp((torch.rand(b, generator=g) * 2 - 1) * math.log(a.smax))
        th = torch.zeros(b)
        if a.rot > 0:
            th = (torch.rand(b, generator=g) * 2 - 1) * math.radians(a.rot)
        if a.rot90:
            th = th + torch.randint(0, 4, (b,), generator=g).float() * (math.pi / 2)
        fl = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)  # drawn always (same RNG stream)
        if flip is None:
            flip = fl if a.flip == "indep" else torch.ones(b)
        k = s * 7 / 32
        cy, cx = centres[:, 0].float(), centres[:, 1].float()
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = k * torch.cos(th) * flip
        theta[:, 0, 1] = -k * torch.sin(th)
        theta[:, 1, 0] = k * torch.sin(th) * flip
        theta[:, 1, 1] = k * torch.cos(th)
        theta[:, 0, 2] = (2 * cx + 1) / 32 - 1
        theta[:, 1, 2] = (2 * cy + 1) / 32 - 1
        grid = F.affine_grid(theta, (b, 3, 7, 7), align_corners=False)
        v = F.grid_sample(self.x[idx], grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if a.jit > 0 and a.jit_p > 0:
            on = (torch.rand(b, 1, 1, 1, generator=g) < a.jit_p).float()
            j = a.jit

            def f():
                return 1 + (torch.rand(b, 1, 1, 1, generator=g) * 2 - 1) * j * on

            v = v * f()                                                    # brightness
            gm = v.mean((1, 2, 3), keepdim=True)
            v = (v - gm) * f() + gm                                        # contrast
            gr = (0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3])
            v = (v - gr) * f() + gr                                        # saturation
            v = v.clamp(0, 1)
        if a.blur_p > 0:  # Gaussian blur per view, sigma ~ U(0.1, blur_max), radius 2, reflect padding
            on = torch.rand(b, generator=g) < a.blur_p
            sig = 0.1 + torch.rand(b, generator=g) * (a.blur_max - 0.1)
            t = torch.arange(-2, 3).float()
            k = torch.exp(-t.view(1, -1) ** 2 / (2 * sig.view(-1, 1) ** 2))
            k = k / k.sum(1, keepdim=True)
            k = torch.where(on.view(-1, 1), k, torch.tensor([0, 0, 1.0, 0, 0]))
            kk = k.repeat_interleave(3, 0)  # (3b, 5)
            u = F.pad(v.reshape(1, 3 * b, 7, 7), (2, 2, 2, 2), mode="reflect")
            u = F.conv2d(u, kk.view(3 * b, 1, 5, 1), groups=3 * b)
            v = F.conv2d(u, kk.view(3 * b, 1, 1, 5), groups=3 * b).view(b, 3, 7, 7)
        if a.noise > 0:
            v = (v + torch.randn(v.shape, generator=g) * a.noise).clamp(0, 1)
        if a.gray_p > 0:
            gsel = (torch.rand(b, 1, 1, 1, generator=g) < a.gray_p).float()
            gr = (0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3]).expand_as(v)
            v = gsel * gr + (1 - gsel) * v
        return v

    def batch(self, idx, g):
        """returns list of view tensors (b,3,7,7) in [0,1]: [anchor, positive] (+ [same-image negative])."""
        a, b = self.a, idx.shape[0]
        d = self.offsets(b, g, a.min_off, a.maxoff)
        # anchor centre so that both patch centres lie in [3, 28]
        lo = 3 + (-d).clamp_min(0)
        hi = 28 - d.clamp_min(0)
        ca = lo + (torch.rand(b, 2, generator=g) * (hi - lo + 1).float()).long()
        cp = ca + d
        fl = None
        if a.flip == "same":  # one flip for the whole image (pair), as the paper's crop flip
            fl = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
            # mirror the image about its centre: centre x -> 31 - x keeps the pair geometry (mirrored offsets)
            ca, cp = ca.clone(), cp.clone()
            m = fl < 0
            ca[m, 1], cp[m, 1] = 31 - ca[m, 1], 31 - cp[m, 1]
        out = [self.views(idx, ca, g, fl), self.views(idx, cp, g, fl)]
        if a.same_neg:
            dn = self.offsets(b, g, a.same_min, 25)
            cn = (ca + dn).clamp(3, 28)
            far = (cn - ca).abs().max(1).values < a.same_min  # clamped too close: reflect to other side
            cn[far] = (ca[far] - dn[far]).clamp(3, 28)
            if fl is not None:
                cn = cn.clone()
                cn[fl < 0, 1] = 31 - cn[fl < 0, 1]
            out.append(self.views(idx, cn, g, fl))
        return out


def paper_crops(x01, idx, g):
    b = idx.shape[0]
    y = torch.randint(0, 25, (b,), generator=g)
    x = torch.randint(0, 25, (b,), generator=g)
    flip = torch.randint(0, 2, (b,), generator=g).bool()
    ar = torch.arange(8)
    rows = (y.view(-1, 1) + ar).view(b, 1, 8, 1)
    colr = torch.where(flip.view(-1, 1), 7 - ar, ar)
    cols = (x.view(-1, 1) + colr).view(b, 1, 1, 8)
    return x01[idx.view(-1, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1), rows, cols]


# ------------------------------------------------------------------------------------------------ model
class Layer1(nn.Module):
    def __init__(self, w1, mu, z, cn_eps):
        super().__init__()
        lin = nn.Linear(108, w1)  # same default init as Conv2d(3,w1,6) (fan_in 108)
        self.weight, self.bias = lin.weight, lin.bias
        self.register_buffer("mu", mu)
        self.register_buffer("z", z)
        self.cn_eps = cn_eps
        self.embed = "relu"
        self.unit_filters = False

    def effective(self):
        """(W_eff (w1,3,6,6), b_eff): the preprocessing folded in (only valid without cn)."""
        w = self.weight
        if self.unit_filters:  # every filter unit-norm in whitened space (like spherical k-means)
            w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-8)
        we = w @ self.z
        return we.view(-1, 3, 6, 6), self.bias - we @ self.mu

    def embed_views(self, v):  # (B,3,7,7) normalised -> (B, w1) = ReLU(maxpool(conv)) with preprocessing
        p = F.unfold(v, 6).transpose(1, 2)  # (B, 4, 108), channel-major (c,ky,kx) like conv weights
        if self.cn_eps > 0:
            p = contrast_norm(p, self.cn_eps)
            h = (p - self.mu) @ (self.weight @ self.z).t() + self.bias
        else:
            we, be = self.effective()
            h = p @ we.view(we.shape[0], -1).t() + be
        if self.embed == "proto":  # cosine of each window with each unit-norm filter (prototype), max over windows
            c = F.normalize((p - self.mu) @ self.z, dim=-1) @ F.normalize(self.weight, dim=1).t()
            return c.max(1).values
        m = h.max(1).values
        if self.embed == "linear":  # no ReLU: signed responses (third pass, issue 9)
            return m
        if self.embed == "center":  # ReLU, then each feature centred over the batch
            r = F.relu(m)
            return r - r.mean(0, keepdim=True)
        if self.embed == "compete":  # only responses above the patch's mean response (triangle-like)
            return F.relu(m - m.mean(1, keepdim=True))
        return F.relu(m)


def make_head(kind, w1, hid):
    if kind == "none":
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(w1, w1)
    return nn.Sequential(nn.Linear(w1, hid), nn.BatchNorm1d(hid), nn.ReLU(), nn.Linear(hid, w1))


# ------------------------------------------------------------------------------------------------ losses
def sqdist(a, b):
    return (a * a).sum(1, keepdim=True) + (b * b).sum(1).view(1, -1) - 2 * a @ b.t()


def loss_fn(a, anc, pos, negx, g):
    """anc,pos (B,D) matched rows; negx optional (B,D) same-image negatives (row i belongs to anchor i)."""
    B = anc.shape[0]
    if a.loss == "barlow":  # Barlow Twins: cross-correlation of batch-standardised embeddings -> identity
        z1 = (anc - anc.mean(0)) / (anc.std(0) + 1e-4)
        z2 = (pos - pos.mean(0)) / (pos.std(0) + 1e-4)
        c = z1.t() @ z2 / B
        on = (torch.diagonal(c) - 1).pow(2).sum()
        off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
        return on + a.bt_lambda * off, torch.diagonal(c).mean().item()
    if a.loss == "vicreg":  # VICReg: invariance (MSE) + variance hinge + covariance, weights 25/25/1
        inv = F.mse_loss(anc, pos)
        var = sum(F.relu(1 - (z.var(0) + 1e-4).sqrt()).mean() for z in (anc, pos))
        cov = 0.0
        for z in (anc, pos):
            zc = z - z.mean(0)
            cz = zc.t() @ zc / (B - 1)
            cov = cov + (cz - torch.diag(torch.diagonal(cz))).pow(2).sum() / z.shape[1]
        return 25 * inv + 25 * var + cov, inv.item()
    if a.loss == "swav":  # swapped prediction of Sinkhorn cluster codes (Caron et al. 2020); anc/pos = cosines
        with torch.no_grad():
            qs = []
            for sc in (anc, pos):
                q = torch.exp(sc / a.swav_eps).t()  # (K, B)
                q /= q.sum()
                K, Bq = q.shape
                for _ in range(3):
                    q /= q.sum(1, keepdim=True); q /= K
                    q /= q.sum(0, keepdim=True); q /= Bq
                qs.append((q * Bq).t())
        l = -0.5 * ((qs[0] * F.log_softmax(pos / a.tau, 1)).sum(1).mean()
                    + (qs[1] * F.log_softmax(anc / a.tau, 1)).sum(1).mean())
        return l, (qs[0].argmax(1) == pos.argmax(1)).float().mean().item()
    if a.loss == "infonce":
        z1, z2 = F.normalize(anc, dim=1), F.normalize(pos, dim=1)
        zs = [z1, z2] + ([F.normalize(negx, dim=1)] if negx is not None else [])
        allz = torch.cat(zs)
        sim = torch.cat([z1, z2]) @ allz.t() / a.tau           # (2B, kB)
        eye = torch.arange(2 * B)
        sim[eye, eye] = float("-inf")                          # self-similarity excluded
        target = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)])
        l = F.cross_entropy(sim, target)
        acc = (sim.argmax(1) == target).float().mean().item()
        return l, acc
    # triplets: anchor i, positive i, negative chosen
    if a.loss == "triplet-cos":
        dfun = lambda x, y: 1 - F.cosine_similarity(x, y, dim=1, eps=1e-8)
        D = None
        if a.mining != "random":
            an, cn = F.normalize(anc, dim=1), F.normalize(torch.cat([pos, anc]), dim=1)
            D = 1 - an @ cn.t()
    else:
        dfun = lambda x, y: (x - y).pow(2).sum(1)
        D = sqdist(anc, torch.cat([pos, anc])) if a.mining != "random" else None
    cand = torch.cat([pos, anc])  # 2B candidate negatives (views of other images)
    dap = dfun(anc, pos)
    if negx is not None and a.mining == "random":
        neg = negx
    elif a.mining == "random":
        k = torch.randint(1, B, (B,), generator=g)
        j = (torch.arange(B) + k) % B + B * torch.randint(0, 2, (B,), generator=g)
        neg = cand[j]
    else:
        with torch.no_grad():
            Dd = D.detach().clone()
            ar = torch.arange(B)
            Dd[ar, ar] = float("inf")
            Dd[ar, ar + B] = float("inf")
            if a.mining == "hardest":
                j = Dd.argmin(1)
                keep = torch.ones(B, dtype=torch.bool)
            else:  # semihard: d_ap < d_an < d_ap + margin, uniformly among them
                ap = dap.detach().view(-1, 1)
                m = (Dd > ap) & (Dd < ap + a.margin)
                r = torch.where(m, torch.rand(m.shape, generator=g), torch.full_like(Dd, -1.0))
                j = r.argmax(1)
                keep = m.any(1)
                if not keep.any():
                    keep = torch.ones(B, dtype=torch.bool)
        neg = cand[j]
        if negx is not None:  # same-image negative used when it is harder
            dx = dfun(anc, negx).detach()
            use = dx < dfun(anc, neg).detach()
            neg = torch.where(use.view(-1, 1), negx, neg)
        anc, pos, neg, dap = anc[keep], pos[keep], neg[keep], dap[keep]
    dan = dfun(anc, neg)
    l = F.relu(dap - dan + a.margin).mean()
    return l, (dap < dan).float().mean().item()


def paper_loss(a, emb, B, g):
    """paper code: 4 patches per crop, 6 pairs, one negative (random for cosine, semihard for euclid)."""
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    base = torch.arange(B).view(-1, 1) * 4
    ai = (base + torch.tensor([p[0] for p in pairs])).reshape(-1)
    pi = (base + torch.tensor([p[1] for p in pairs])).reshape(-1)
    if a.loss == "triplet-cos":
        k = torch.randint(1, B, ai.shape, generator=g)
        ni = ((ai // 4 + k) % B) * 4 + torch.randint(0, 4, ai.shape, generator=g)
        d = lambda x, y: 1 - F.cosine_similarity(x, y, dim=1, eps=1e-8)
    else:
        d = lambda x, y: (x - y).pow(2).sum(1)
        with torch.no_grad():
            e = emb.detach()
            dm = sqdist(e, e)
            ap = dm[ai, pi]
            lv = ap.view(-1, 1) - dm[ai] + a.margin
            same = (torch.arange(4 * B) // 4).view(1, -1) == (ai // 4).view(-1, 1)
            m = (lv > 0) & (lv < a.margin) & ~same
            r = torch.where(m, torch.rand(m.shape, generator=g), torch.full_like(lv, -1.0))
            ni = r.argmax(1)
            keep = m.any(1)
        if keep.any():
            ai, pi, ni = ai[keep], pi[keep], ni[keep]
    dap, dan = d(emb[ai], emb[pi]), d(emb[ai], emb[ni])
    return F.relu(dap - dan + a.margin).mean(), (dap < dan).float().mean().item()


# ------------------------------------------------------------------------------------------------ pretrain
def pretrain(a, c100u8, seed):
    m, s = stats(c100u8)
    x01 = torch.from_numpy(c100u8).float() / 255.0
    xn = norm(x01, m, s)
    g = torch.Generator().manual_seed(seed + 1)
    mu, z = torch.zeros(108), torch.eye(108)
    if a.pre == "zca" or a.cn > 0:
        p = random_patches(xn, 400_000, torch.Generator().manual_seed(seed + 7))
        if a.cn > 0:
            p = contrast_norm(p, a.cn)
        if a.pre == "zca":
            mu, z = zca(p, a.zca_eps)
        else:
            mu = p.mean(0)
    torch.manual_seed(seed)
    L = Layer1(a.w1, mu, z, a.cn)
    L.embed = a.embed
    if a.embed == "proto":  # prototypes carry no bias: transfer as c Z, -c Z mu like the k-means conv
        with torch.no_grad():
            L.bias.zero_()
        L.bias.requires_grad_(False)
    L.unit_filters = a.unit_filters
    if a.init_scale != 1.0:
        with torch.no_grad():
            L.weight.mul_(a.init_scale)
    w_init = L.weight.detach().clone()
    head = make_head(a.head, a.w1, a.head_hid)
    params = list(L.parameters()) + list(head.parameters())
    opt = (torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd) if a.wd > 0 else
           torch.optim.Adam(params, lr=a.lr))
    n, bs = x01.shape[0], a.batch
    steps_total = a.epochs * ((n + bs - 1) // bs)
    sched = None
    if a.cosine_lr:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / max(steps_total, 1))))
    sampler = ViewSampler(x01, a)
    t_train, hist = 0.0, []
    mv, sv = m.view(1, 3, 1, 1), s.view(1, 3, 1, 1)
    for ep in range(a.epochs):
        perm = torch.randperm(n, generator=g)
        t0 = time.perf_counter()
        ls, accs = [], []
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            if a.paper_sampler:
                crops = (paper_crops(x01, idx, g) - mv) / sv
                pe = F.unfold(crops, 7).transpose(1, 2).reshape(-1, 3, 7, 7)  # (4B) patches, row-major offsets
                emb = head(L.embed_views(pe))
                loss, acc = paper_loss(a, emb, idx.shape[0], g)
            else:
                vs = [(v - mv) / sv for v in sampler.batch(idx, g)]
                B = idx.shape[0]
                e = head(L.embed_views(torch.cat(vs)))
                anc, pos = e[:B], e[B:2 * B]
                negx = e[2 * B:] if a.same_neg else None
                loss, acc = loss_fn(a, anc, pos, negx, g)
            if a.smooth > 0:  # roughness of the folded filters: spatial-difference energy over filter energy
                we, _ = L.effective()
                dx = (we[..., 1:] - we[..., :-1]).pow(2).flatten(1).sum(1)
                dy = (we[..., 1:, :] - we[..., :-1, :]).pow(2).flatten(1).sum(1)
                loss = loss + a.smooth * ((dx + dy) / we.pow(2).flatten(1).sum(1).clamp_min(1e-12)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            ls.append(loss.item())
            accs.append(acc)
        dt = time.perf_counter() - t0
        t_train += dt
        hist.append({"ep": ep + 1, "loss": float(np.mean(ls)), "acc": float(np.mean(accs)), "s": dt})
        if (ep + 1) % max(1, a.epochs // 5) == 0 or ep == a.epochs - 1:
            log(f"ep {ep + 1}/{a.epochs} loss {hist[-1]['loss']:.4f} acc {hist[-1]['acc']:.3f} {dt:.1f}s")
    with torch.no_grad():
        we, be = L.effective()
    rel = ((L.weight.detach() - w_init).norm() / w_init.norm()).item()
    log(f"weight relative change {rel:.3f}")
    return {"w": we.detach().clone(), "b": be.detach().clone(), "L": L, "hist": hist, "t": t_train, "rel": rel,
            "c100_mean": m, "c100_std": s}


# ------------------------------------------------------------------------------------------------ probe
def quadrants(h):
    hr = round(h.shape[2] / 2 + 1e-9)
    return torch.cat([t.sum((2, 3)) for t in (h[:, :, :hr, :hr], h[:, :, :hr, hr:], h[:, :, hr:, :hr],
                                              h[:, :, hr:, hr:])], 1)


def conv_features(w, b, x, bs=500):
    with torch.no_grad():
        return torch.cat([quadrants(F.relu(F.conv2d(x[i:i + bs], w, b))) for i in range(0, x.shape[0], bs)]).double()


def cn_features(L, x, bs=200):
    """features with the (nonlinear) contrast normalisation applied per 6x6 patch, as during pretraining."""
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], bs):
            p = F.unfold(x[i:i + bs], 6).transpose(1, 2)  # (n, 729, 108)
            p = contrast_norm(p, L.cn_eps)
            h = F.relu((p - L.mu) @ (L.weight @ L.z).t() + L.bias)  # (n,729,w1)
            h = h.transpose(1, 2).reshape(h.shape[0], -1, 27, 27)
            out.append(quadrants(h))
    return torch.cat(out).double()


def kmeans_features(x_u8, C, zm, zp, bs=200):
    """Coates et al.: 6x6 patches stride 1 on raw 0-255 pixels, per-patch normalisation (x-mean)/sqrt(var+10),
    ZCA (mean zm, matrix zp), triangle activation f_k = max(0, mean_j(z_j) - z_k), z_k = ||x - c_k||."""
    out = []
    with torch.no_grad():
        for i in range(0, x_u8.shape[0], bs):
            x = torch.from_numpy(x_u8[i:i + bs]).float()
            p = F.unfold(x, 6).transpose(1, 2)  # (n,729,108)
            p = contrast_norm(p, 10.0)
            p = (p - zm) @ zp
            d = ((p * p).sum(-1, keepdim=True) + (C * C).sum(1) - 2 * p @ C.t()).clamp_min(0).sqrt()
            f = F.relu(d.mean(-1, keepdim=True) - d)
            out.append(quadrants(f.transpose(1, 2).reshape(f.shape[0], -1, 27, 27)))
    return torch.cat(out).double()


def kmeans_train(c100u8, k, iters, seed, x=None, cn_eps=10.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(c100u8).float() if x is None else x
    p = random_patches(x, 400_000, g)
    p = contrast_norm(p, cn_eps)
    zm, zp = zca(p, 0.1)
    p = (p - zm) @ zp
    C = torch.randn(k, 108, generator=g) * 0.1
    for _ in range(iters):  # Coates' run_kmeans: batch assignment, empty clusters keep 0 sum -> centroid 0
        s = torch.zeros(k, 108)
        cnt = torch.zeros(k)
        for j in range(0, p.shape[0], 50_000):
            q = p[j:j + 50_000]
            a = (0.5 * (C * C).sum(1) - q @ C.t()).argmin(1)
            s.index_add_(0, a, q)
            cnt.index_add_(0, a, torch.ones(a.shape[0]))
        C = s / cnt.clamp_min(1).view(-1, 1)
    return C, zm, zp


def fit_logreg(xf, y, l2, iters):
    d, c = xf.shape[1], int(y.max().item()) + 1
    W = torch.zeros(d, c, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=iters, max_eval=int(iters * 1.25), tolerance_grad=1e-9,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xf @ W + b, y) + 0.5 * l2 * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def std(tr, *o):
    mu, sd = tr.mean(0), (tr.var(0) + 0.01).sqrt()
    return [(t - mu) / sd for t in (tr,) + o]


def acc(W, b, x, y):
    return ((x @ W + b).argmax(1) == y).double().mean().item()


def probe(f_tr, y_tr, f_te, y_te, l2s, iters):
    nfit = int(round(0.8 * f_tr.shape[0]))
    a, v = std(f_tr[:nfit], f_tr[nfit:])
    grid = []
    for l2 in (l2s if len(l2s) > 1 else []):
        W, b = fit_logreg(a, y_tr[:nfit], l2, iters)
        grid.append((acc(W, b, v, y_tr[nfit:]), l2))
    best = max(grid)[1] if grid else l2s[0]
    a, t = std(f_tr, f_te)
    W, b = fit_logreg(a, y_tr, best, iters)
    return acc(W, b, t, y_te), best, acc(W, b, a, y_tr), grid


# ------------------------------------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--val", type=int, default=4000)
    ap.add_argument("--baseline", choices=["none", "random", "kmeans", "kmeans-conv"], default="none")
    ap.add_argument("--name", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--w1", type=int, default=64)
    ap.add_argument("--pre", choices=["none", "zca"], default="none")
    ap.add_argument("--zca-eps", type=float, default=0.1)
    ap.add_argument("--cn", type=float, default=0.0, help="per-patch contrast normalisation eps (0 = off)")
    ap.add_argument("--paper-sampler", action="store_true")
    ap.add_argument("--maxoff", type=int, default=1)
    ap.add_argument("--min-off", type=int, default=1)
    ap.add_argument("--smax", type=float, default=1.0)
    ap.add_argument("--flip", choices=["indep", "same", "none"], default="indep",
                    help="hflip: independent per view (runs before 16:47), same for both views of an image, or none")
    ap.add_argument("--rot", type=float, default=0.0)
    ap.add_argument("--rot90", action="store_true")
    ap.add_argument("--jit", type=float, default=0.0)
    ap.add_argument("--jit-p", type=float, default=0.8)
    ap.add_argument("--gray-p", type=float, default=0.0)
    ap.add_argument("--blur-p", type=float, default=0.0, help="per-view Gaussian blur probability")
    ap.add_argument("--blur-max", type=float, default=1.5, help="blur sigma ~ U(0.1, blur-max) pixels")
    ap.add_argument("--smooth", type=float, default=0.0, help="weight of a roughness penalty on the folded filters")
    ap.add_argument("--noise", type=float, default=0.0, help="per-view additive Gaussian pixel noise std ([0,1] units)")
    ap.add_argument("--same-neg", action="store_true")
    ap.add_argument("--same-min", type=int, default=8)
    ap.add_argument("--loss", choices=["triplet-cos", "triplet-euclid", "infonce", "barlow", "vicreg", "swav"], default="triplet-cos")
    ap.add_argument("--mining", choices=["random", "semihard", "hardest"], default="random")
    ap.add_argument("--margin", type=float, default=0.5)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--swav-eps", type=float, default=0.05, help="Sinkhorn entropy weight (swav)")
    ap.add_argument("--bt-lambda", type=float, default=0.02, help="Barlow Twins off-diagonal weight")
    ap.add_argument("--embed", choices=["relu", "linear", "center", "compete", "proto"], default="relu",
                    help="pretraining embedding: ReLU(max) (the recipe), max without ReLU, ReLU centred per batch, "
                         "or ReLU of the responses above the patch's mean response")
    ap.add_argument("--unit-filters", action="store_true", help="normalise each whitened-space filter to norm 1")
    ap.add_argument("--head", choices=["none", "linear", "mlp"], default="none")
    ap.add_argument("--head-hid", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--cosine-lr", action="store_true")
    ap.add_argument("--wd", type=float, default=0.0, help="AdamW decoupled weight decay (0 = plain Adam)")
    ap.add_argument("--init-scale", type=float, default=1.0, help="multiply the default-init conv weights")
    ap.add_argument("--kmeans-iters", type=int, default=50)
    ap.add_argument("--probe-l2", default="1e-4", help="one value = fixed; several = paper_ref grid selection")
    ap.add_argument("--probe-iters", type=int, default=300)
    ap.add_argument("--save-conv1", default="", help="save {'weight','bias'} (folded) to this .pt path")
    ap.add_argument("--bias-quantiles", default="",
                    help="comma list q: also probe with each filter's bias reset so that a fraction q of its "
                         "responses on 1,000 probe-training images is <= 0 (conv modes only)")
    ap.add_argument("--out", default="probe_study.jsonl")
    a = ap.parse_args()
    torch.set_num_threads(1)
    T0 = time.perf_counter()
    c100, u_tr, y_tr, u_te, y_te = load(a.data, a.val)
    y_tr, y_te = torch.from_numpy(y_tr), torch.from_numpy(y_te)
    m10, s10 = stats(u_tr)
    x_tr = norm(torch.from_numpy(u_tr).float() / 255, m10, s10)
    x_te = norm(torch.from_numpy(u_te).float() / 255, m10, s10)
    rec = {"name": a.name, "cmd": " ".join(sys.argv), "seed": a.seed, "baseline": a.baseline}
    t_pre = 0.0
    if a.baseline == "kmeans":
        t0 = time.perf_counter()
        C, zm, zp = kmeans_train(c100, a.w1, a.kmeans_iters, a.seed)
        t_pre = time.perf_counter() - t0
        f_tr, f_te = kmeans_features(u_tr, C, zm, zp), kmeans_features(u_te, C, zm, zp)
        mode = "kmeans-triangle"
    elif a.baseline == "kmeans-conv":
        # Coates k-means fitted on per-channel-normalised CIFAR-100 patches (CN eps 0.0025 = Coates' 10 in
        # 0-255 units for a channel std of ~0.25), used as plain conv filters: the dot-product encoding
        # c_k . Z (x - mu) folded into W = c_k Z, b = -c_k Z mu (no CN at feature time), then ReLU probe.
        t0 = time.perf_counter()
        m, s = stats(c100)
        xn = norm(torch.from_numpy(c100).float() / 255.0, m, s)
        C, zm, zp = kmeans_train(c100, a.w1, a.kmeans_iters, a.seed, x=xn, cn_eps=0.0025)
        t_pre = time.perf_counter() - t0
        wf = C @ zp  # zp symmetric
        w, b = wf.view(a.w1, 3, 6, 6), -(wf @ zm)
        f_tr, f_te = conv_features(w, b, x_tr), conv_features(w, b, x_te)
        mode = "conv-relu"
        if a.save_conv1:
            torch.save({"weight": w, "bias": b, "args": vars(a)}, a.save_conv1)
    elif a.baseline == "random":
        torch.manual_seed(a.seed)
        c = nn.Conv2d(3, a.w1, 6)
        w, b = c.weight.detach(), c.bias.detach()
        if a.pre == "zca":  # random filters in whitened space (control)
            x01 = torch.from_numpy(c100).float() / 255.0
            m, s = stats(c100)
            mu, z = zca(random_patches(norm(x01, m, s), 400_000, torch.Generator().manual_seed(a.seed + 7)), a.zca_eps)
            wf = w.reshape(a.w1, 108) @ z
            w, b = wf.view(a.w1, 3, 6, 6), b - wf @ mu
        f_tr, f_te = conv_features(w, b, x_tr), conv_features(w, b, x_te)
        mode = "conv-relu"
    else:
        r = pretrain(a, c100, a.seed)
        t_pre = r["t"]
        rec["hist_last"] = r["hist"][-1] if r["hist"] else None
        rec["weight_rel_change"] = r["rel"]
        if a.cn > 0:
            f_tr, f_te = cn_features(r["L"], x_tr), cn_features(r["L"], x_te)
            mode = "cn+conv-relu"
        else:
            f_tr, f_te = conv_features(r["w"], r["b"], x_tr), conv_features(r["w"], r["b"], x_te)
            mode = "conv-relu"
        if a.save_conv1:
            torch.save({"weight": r["w"], "bias": r["b"], "args": vars(a)}, a.save_conv1)
    t1 = time.perf_counter()
    l2s = [float(v) for v in a.probe_l2.split(",") if v]
    if a.bias_quantiles and mode == "conv-relu":
        w_c, b_c = (r["w"], r["b"]) if a.baseline == "none" else (w, b)
        with torch.no_grad():
            pre = F.conv2d(x_tr[:1000], w_c, None).transpose(0, 1).reshape(w_c.shape[0], -1)
            act = (pre + b_c.view(-1, 1) > 0).float().mean().item()
            rec["active_fraction"] = act
            log(f"learned bias: active fraction {act:.3f}")
            qs = {}
            for q in [float(v) for v in a.bias_quantiles.split(",")]:
                bq = -torch.quantile(pre[:, ::7], q, dim=1)
                te_q, _, _, _ = probe(conv_features(w_c, bq, x_tr), y_tr, conv_features(w_c, bq, x_te), y_te, l2s,
                                      a.probe_iters)
                qs[str(q)] = te_q
                log(f"bias quantile {q}: probe {100 * te_q:.2f}%")
            rec["bias_quantile_probe"] = qs
    te, l2, tr, grid = probe(f_tr, y_tr, f_te, y_te, l2s, a.probe_iters)
    dead = int((f_tr.abs().sum(0).view(4, -1).sum(0) == 0).sum().item())
    rec.update({"probe_mode": mode, "probe_acc": te, "probe_train_acc": tr, "l2": l2, "pretrain_s": t_pre,
                "probe_s": time.perf_counter() - t1, "total_s": time.perf_counter() - T0, "dead_filters": dead,
                "args": vars(a)})
    log(f"RESULT {a.name} seed {a.seed}: probe {100 * te:.2f}% (train {100 * tr:.1f}, l2 {l2:g}, dead {dead}) "
        f"pretrain {t_pre:.1f}s total {rec['total_s']:.0f}s")
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
