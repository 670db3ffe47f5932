#!/usr/bin/env python3
"""Shape statistics of first-layer filters saved by `reproduce-paper` (numpy only).

Same definitions as Tests/ExperimentsTests/FilterStatistics.swift, on the transferred
(folded) filters: a WhitenedConv2D's W is folded to W Z first.
- low:    share of the non-DC spatial energy at the lowest frequencies (|kx|, |ky| <= 1);
          random filters ~0.229, edges/bars/gradients higher, high-frequency noise lower.
- chroma: energy of the channel-difference part (filter minus its per-pixel channel mean)
          over the total; random ~0.667, luminance edges ~0, colour-opponent filters ~1.
- spread: standard deviation of the per-filter chroma across the bank (random ~0.05;
          a bank split into luminance and colour filters spreads out).
- axis:   largest eigenvalue of the 3x3 channel Gram matrix over its trace (one spatial
          pattern times one colour vector scores 1; random ~0.45).

Usage: swift_filter_stats.py FILE.safetensors...  (contrastive_stage1 or kmeans_stage1)
"""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        out[k] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v['shape'])
    return out


def folded(t, prefix='stage1.0'):
    w = t[prefix + '.weight']
    if prefix + '.whiteningMatrix' in t:
        z = t[prefix + '.whiteningMatrix']
        return (w.reshape(w.shape[0], -1).astype(np.float64) @ z.astype(np.float64)).reshape(w.shape)
    return w.astype(np.float64)


def stats(w):
    f, c, k, _ = w.shape
    low, chroma, axis = [], [], []
    lowmask = np.zeros((k, k), bool)
    for u in (0, 1, k - 1):
        for v in (0, 1, k - 1):
            lowmask[u, v] = True
    lowmask[0, 0] = False
    for i in range(f):
        x = w[i]
        total = (x ** 2).sum()
        if total == 0:
            continue
        p = (np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2).sum(0)
        low.append(p[lowmask].sum() / (p.sum() - p[0, 0]))
        lum = x.mean(0)
        chroma.append((total - c * (lum ** 2).sum()) / total)
        g = x.reshape(c, -1) @ x.reshape(c, -1).T
        axis.append(np.linalg.eigvalsh(g)[-1] / total)
    chroma = np.array(chroma)
    return dict(low=float(np.mean(low)), chroma=float(chroma.mean()), spread=float(chroma.std()),
                axis=float(np.mean(axis)))


if __name__ == '__main__':
    for path in sys.argv[1:]:
        s = stats(folded(load(path)))
        print(f"{path}: low {s['low']:.3f} | chroma {s['chroma']:.3f} (spread {s['spread']:.3f}) | axis {s['axis']:.3f}")
