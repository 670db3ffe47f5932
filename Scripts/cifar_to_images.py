#!/usr/bin/env python3
"""Writes CIFAR-10 binary records as a folder of PNG and JPEG files, root/<class>/<file>,
with Pillow — a stand-in for "your own photos" to try `layerwise pretrain` on.

Images alternate between PNG and JPEG (quality 90); with --mixed-sizes every second image
is upscaled to 48x40 or 64x64 (bicubic) so the folder holds several sizes.

Usage:
  python3 Scripts/cifar_to_images.py --cifar Examples/ReproducePaper/Resources/cifar10_sample/data_batch_1.bin \
      --out photos --count 300 [--mixed-sizes]
Needs Pillow and NumPy (pip install pillow numpy).
"""
import argparse
import os

import numpy as np
from PIL import Image

RECORD = 3073


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cifar", required=True, help="a CIFAR-10 binary batch (data_batch_*.bin)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--mixed-sizes", action="store_true")
    args = parser.parse_args()
    raw = np.fromfile(args.cifar, dtype=np.uint8)
    records = raw[: (raw.size // RECORD) * RECORD].reshape(-1, RECORD)[: args.count]
    meta = os.path.join(os.path.dirname(args.cifar), "batches.meta.txt")
    names = [l.strip() for l in open(meta) if l.strip()] if os.path.exists(meta) else [str(i) for i in range(10)]
    for i, record in enumerate(records):
        label = names[record[0]]
        image = Image.fromarray(record[1:].reshape(3, 32, 32).transpose(1, 2, 0))
        if args.mixed_sizes and i % 2 == 1:
            image = image.resize((48, 40) if i % 4 == 1 else (64, 64), Image.BICUBIC)
        folder = os.path.join(args.out, label)
        os.makedirs(folder, exist_ok=True)
        if i % 2 == 0:
            image.save(os.path.join(folder, f"{i:05d}.png"))
        else:
            image.save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    print(f"wrote {len(records)} images to {args.out}")


if __name__ == "__main__":
    main()
