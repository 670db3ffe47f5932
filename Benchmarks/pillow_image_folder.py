#!/usr/bin/env python3
"""Pillow's speed on the work `ImageFolderDataset` does: list root/<class>/<file>, decode each
PNG/JPEG, convert to RGB, resize the shorter side to SIZE (bilinear, antialiased), cut the
centre SIZE x SIZE square and collect uint8 arrays — torchvision's ImageFolder with
Resize(SIZE) + CenterCrop(SIZE), without tensors.

Prints the best of --repeats runs, in one process and with a pool of --workers processes
(a DataLoader with that many workers).

Usage: python3 Benchmarks/pillow_image_folder.py FOLDER [--size 32] [--repeats 5] [--workers 2]
Needs Pillow and NumPy.
"""
import argparse
import multiprocessing
import os
import time

import numpy as np
from PIL import Image


def files(root):
    out = []
    for cls in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
        folder = os.path.join(root, cls)
        out += [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                if f.lower().endswith((".png", ".jpg", ".jpeg"))]
    return out


def load(path, size=32):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((rw, rh), Image.BILINEAR)
    left, top = (rw - size) // 2, (rh - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for workers in (1, args.workers):
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            paths = files(args.folder)
            if workers == 1:
                arrays = [load(p, args.size) for p in paths]
            else:
                with multiprocessing.Pool(workers) as pool:
                    arrays = pool.map(load, paths, chunksize=32)
            best = min(best, time.perf_counter() - start)
        print(f"Pillow, {workers} process(es): {len(arrays)} images in {best:.3f} s = {len(arrays) / best:.0f} images/s")


if __name__ == "__main__":
    main()
