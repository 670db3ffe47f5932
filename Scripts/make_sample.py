#!/usr/bin/env python3
"""Builds the embedded sample data of the reproduce-paper example.

Copies whole records (official CIFAR binary format, unchanged) from a folder holding the
official cifar-10-batches-bin/ and cifar-100-binary/ files into
Examples/ReproducePaper/Resources, so the library's CIFAR loaders read the sample
exactly like the full data. The source files are shuffled with a fixed seed, so
prefixes are roughly class-balanced; the counts are printed for the README.

Usage: python3 Scripts/make_sample.py --source DATA
"""
import argparse
import collections
import hashlib
import os
import shutil

CIFAR10_RECORD = 3073
CIFAR100_RECORD = 3074

# (source file, destination file, record length, first record, record count, label byte)
PLAN = [
    ("cifar-10-batches-bin/data_batch_1.bin", "cifar10_sample/data_batch_1.bin", CIFAR10_RECORD, 0, 1200, 0),
    # Held-out validation images: a different source file, so disjoint from the training sample.
    ("cifar-10-batches-bin/data_batch_2.bin", "cifar10_sample/test_batch.bin", CIFAR10_RECORD, 0, 400, 0),
    ("cifar-100-binary/train.bin", "cifar100_sample/train.bin", CIFAR100_RECORD, 0, 1000, 1),
]
COPIES = [
    ("cifar-10-batches-bin/batches.meta.txt", "cifar10_sample/batches.meta.txt"),
    ("cifar-100-binary/fine_label_names.txt", "cifar100_sample/fine_label_names.txt"),
    ("cifar-100-binary/coarse_label_names.txt", "cifar100_sample/coarse_label_names.txt"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="folder with cifar-10-batches-bin/ and cifar-100-binary/")
    parser.add_argument("--dest", default=os.path.join(os.path.dirname(__file__), "..", "Examples", "ReproducePaper", "Resources"))
    args = parser.parse_args()
    total = 0
    for src, dst, length, first, count, label_byte in PLAN:
        src_path, dst_path = os.path.join(args.source, src), os.path.join(args.dest, dst)
        with open(src_path, "rb") as f:
            f.seek(first * length)
            data = f.read(count * length)
        if len(data) != count * length:
            raise SystemExit(f"{src_path}: wanted {count} records from record {first}, file too short")
        os.makedirs(os.path.dirname(dst_path), exist_ok=True)
        with open(dst_path, "wb") as f:
            f.write(data)
        labels = collections.Counter(data[i * length + label_byte] for i in range(count))
        total += len(data)
        print(f"{dst}: {count} records ({len(data)} bytes) from {src} records {first}..{first + count - 1}")
        print(f"  sha256 {hashlib.sha256(data).hexdigest()}")
        print(f"  classes {len(labels)}, per class min {min(labels.values())} max {max(labels.values())}")
    for src, dst in COPIES:
        shutil.copyfile(os.path.join(args.source, src), os.path.join(args.dest, dst))
        total += os.path.getsize(os.path.join(args.dest, dst))
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
