#!/usr/bin/env python3
"""Checks one Layerwise training checkpoint without the Swift code: header length, JSON, F32
entries whose byte ranges tile the buffer exactly, finite values, the trainer's metadata.
Prints "stage S step N/T, K tensors"; exits non-zero on the first problem.

Usage: check_checkpoint.py FILE.safetensors
"""
import json, math, struct, sys
path = sys.argv[1]
data = open(path, "rb").read()
assert len(data) >= 8, f"{path}: {len(data)} bytes, too short"
n = struct.unpack("<Q", data[:8])[0]
assert 8 + n <= len(data), f"{path}: header length {n} runs past the end ({len(data)} bytes)"
header = json.loads(data[8:8 + n].decode("utf-8"))
meta = header.pop("__metadata__", {})
buffer = data[8 + n:]
spans = []
for name, entry in header.items():
    assert entry["dtype"] == "F32", f"{name}: dtype {entry['dtype']}"
    begin, end = entry["data_offsets"]
    count = 1
    for d in entry["shape"]:
        count *= d
    assert end - begin == 4 * count, f"{name}: {end - begin} bytes for shape {entry['shape']}"
    values = struct.unpack(f"<{count}f", buffer[begin:end])
    bad = sum(1 for v in values if not math.isfinite(v))
    assert bad == 0, f"{name}: {bad} non-finite values"
    spans.append((begin, end))
spans.sort()
position = 0
for begin, end in spans:
    assert begin == position, f"gap or overlap at byte {begin} (expected {position})"
    position = end
assert position == len(buffer), f"buffer has {len(buffer)} bytes, tensors cover {position}"
assert meta.get("format") == "layerwise-checkpoint-v1", f"format {meta.get('format')}"
assert meta.get("kind") == "training", f"kind {meta.get('kind')}"
print(f"stage {meta['stage']} step {meta['stepsDone']}/{meta['totalSteps']}, {len(header)} tensors")
