#!/usr/bin/env python3
"""Writes small synthetic CIFAR-10 and CIFAR-100 binary folders (the official layout) for tests.

Every image is a colour grating whose orientation, frequency and tint depend on its class, at a
random phase, plus pixel noise: unlabelled patches have structure to learn and the classes are
linearly separable enough for a probe to score well above chance. Deterministic (seeded).

Usage: make_synthetic_cifar.py OUT_DIR [--pretrain N] [--train N] [--test N] [--seed S]
Writes OUT_DIR/cifar100/train.bin and OUT_DIR/cifar10/{data_batch_1.bin,test_batch.bin}.
"""
import argparse
import math
import os
import random


def image(rng, label, classes):
    angle = math.pi * (label % 10) / 10
    frequency = 0.25 + 0.15 * ((label // 10) % 4)
    tint = [0.5 + 0.5 * math.cos(2 * math.pi * (label / classes + c / 3)) for c in range(3)]
    phase = rng.uniform(0, 2 * math.pi)
    ca, sa = math.cos(angle), math.sin(angle)
    out = bytearray()
    for c in range(3):
        for y in range(32):
            for x in range(32):
                v = 0.5 + 0.35 * tint[c] * math.sin(frequency * (ca * x + sa * y) + phase) + rng.gauss(0, 0.08)
                out.append(max(0, min(255, int(v * 255))))
    return bytes(out)


def write(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for r in records:
            f.write(r)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--pretrain", type=int, default=600)
    p.add_argument("--train", type=int, default=500)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--seed", type=int, default=19)
    a = p.parse_args()
    rng = random.Random(a.seed)
    c100 = []
    for i in range(a.pretrain):
        fine = i % 100
        c100.append(bytes([fine // 5, fine]) + image(rng, fine, 100))
    write(os.path.join(a.out, "cifar100", "train.bin"), c100)
    for name, n in (("data_batch_1.bin", a.train), ("test_batch.bin", a.test)):
        write(os.path.join(a.out, "cifar10", name), [bytes([i % 10]) + image(rng, i % 10, 10) for i in range(n)])


if __name__ == "__main__":
    main()
