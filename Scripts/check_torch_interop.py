#!/usr/bin/env python3
"""Loads a `layerwise pretrain` model into torch.nn.Conv2d layers and checks that PyTorch
computes the same pooled features as `layerwise features`.

    layerwise features --model model.safetensors --data images.npy --out features.npy
    python3 Scripts/check_torch_interop.py model.safetensors images.npy features.npy [--index 0]

images.npy is a uint8 N×H×W×C array (the same input both sides see). Exits non-zero when
any feature of the image differs by more than 1e-5 (relative to the largest feature).
Needs torch and numpy.
"""
import argparse
import json
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    """The tensors and metadata of a safetensors file (the format is 8 bytes of header
    length, a JSON header, then the raw little-endian data)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=np.float32).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, metadata


def load_model(path):
    """The model as torch layers (conv → max-pool → ReLU per stage) and its input normalisation."""
    tensors, metadata = read_safetensors(path)
    recipe = json.loads(metadata["recipe"])
    layers, channels = [], int(metadata["inputChannels"])
    for k, stage in enumerate(recipe["stages"], start=1):
        conv = torch.nn.Conv2d(channels, stage["filters"], stage["kernelSize"])
        with torch.no_grad():
            conv.weight.copy_(tensors[f"stage{k}.weight"])
            conv.bias.copy_(tensors[f"stage{k}.bias"])
        layers.append(conv)
        if stage["pool"] > 1:
            layers.append(torch.nn.MaxPool2d(stage["pool"]))
        layers.append(torch.nn.ReLU())
        channels = stage["filters"]
    mean = torch.tensor([float(v) for v in metadata["normalization.mean"].split(",")])
    std = torch.tensor([float(v) for v in metadata["normalization.std"].split(",")])
    return torch.nn.Sequential(*layers), mean, std


def pooled_features(model, mean, std, image_hwc):
    """ReLU features sum-pooled over the four quadrants, ordered [channel][quadrant]
    (top-left, top-right, bottom-left, bottom-right; odd sizes give the middle to the first half)."""
    x = torch.from_numpy(image_hwc).permute(2, 0, 1).double() / 255
    x = ((x - mean.double()[:, None, None]) / std.double()[:, None, None])[None]
    with torch.no_grad():
        y = model.double()(x)[0].clamp(min=0)
    c, h, w = y.shape
    hy, hx = (h + 1) // 2, (w + 1) // 2
    quadrants = [y[:, :hy, :hx], y[:, :hy, hx:], y[:, hy:, :hx], y[:, hy:, hx:]]
    return torch.stack([q.sum(dim=(1, 2)) for q in quadrants], dim=1).reshape(-1).numpy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("images")
    parser.add_argument("features")
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args()
    model, mean, std = load_model(args.model)
    images = np.load(args.images)
    ours = np.load(args.features)[args.index].astype(np.float64)
    theirs = pooled_features(model, mean, std, images[args.index])
    error = np.abs(ours - theirs).max() / max(1.0, np.abs(theirs).max())
    print(f"image {args.index}: {theirs.size} features, largest {np.abs(theirs).max():.4f}, "
          f"max difference {np.abs(ours - theirs).max():.2e} (relative {error:.2e})")
    sys.exit(0 if error <= 1e-5 else 1)


if __name__ == "__main__":
    main()
