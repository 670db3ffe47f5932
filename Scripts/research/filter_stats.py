#!/usr/bin/env python3
"""Crude filter statistics of saved conv1 .pt files (probe_study.py --save-conv1): achromatic energy fraction,
roughness (spatial-difference energy / energy; ~2 for white noise, small for smooth), |DC|/norm, norm, bias."""
import sys, torch
for p in sys.argv[1:]:
    d = torch.load(p)
    w, b = d["weight"].double(), d["bias"].double()
    nrm = w.flatten(1).norm(dim=1) + 1e-12
    ach = (w.mean(1, keepdim=True).expand_as(w).flatten(1).norm(dim=1) / nrm) ** 2
    dx = (w[..., 1:] - w[..., :-1]).flatten(1).pow(2).sum(1)
    dy = (w[..., 1:, :] - w[..., :-1, :]).flatten(1).pow(2).sum(1)
    rough = (dx + dy) / nrm ** 2
    dc = w.flatten(1).sum(1).abs() / w[0].numel() ** 0.5 / nrm
    print(f"{p}: achromatic {ach.mean():.3f} rough {rough.mean():.3f} dc {dc.mean():.3f} norm {nrm.mean():.2f} "
          f"bias/norm {(b / nrm).mean():.3f}")
