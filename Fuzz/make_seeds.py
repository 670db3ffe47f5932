#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into Fuzz/Seeds (standard library;
the JPEG seeds need Pillow and are skipped without it). The checkpoint seeds come from the
target itself: `Scripts/fuzz.sh seeds`."""
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Seeds")


def put(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header, buffer = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (shape, values) in sorted(tensors.items()):
        data = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(buffer), len(buffer) + len(data)]}
        buffer += data
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + buffer


def npy(descr, shape, payload, version=1):
    shape_text = f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}"
    prefix = 10 if version == 1 else 12
    text += " " * (-(prefix + len(text) + 1) % 64) + "\n"
    length = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + length + text.encode("latin1" if version < 3 else "utf-8") + payload


put("FuzzSafeTensors", "empty", safetensors({}))
put("FuzzSafeTensors", "one", safetensors({"w": ([2, 3], [0.5, -1, 2, 3.25, 0, 1e-3])}))
put("FuzzSafeTensors", "metadata", safetensors(
    {"stage1.0.weight": ([2, 1, 1, 1], [1, 2]), "stage1.0.bias": ([2], [0, 0]), "s": ([], [7])},
    {"format": "layerwise-checkpoint-v1", "kind": "weights", "note": "caf\u00e9 \\\" \n"}))
put("FuzzSafeTensors", "zero-size", safetensors({"empty": ([0, 3], []), "x": ([1], [1])}, {}))

images = bytes(range(2 * 2 * 2 * 3))
labels = struct.pack("<2q", 3, 0)
for name, data in [
    ("nhwc", npy("|u1", [2, 2, 2, 3], images)),
    ("gray-v2", npy("|u1", [2, 3, 4], bytes(range(24)), version=2)),
    ("v3", npy("|u1", [1, 1, 2, 2], bytes(4), version=3)),
    ("labels-i8", npy("<i8", [2], labels)),
    ("labels-u2", npy("<u2", [3], struct.pack("<3H", 1, 2, 65535))),
]:
    put("FuzzNPY", name, b"\x00" + data)
pair_images, pair_labels = npy("|u1", [2, 3, 2, 2], bytes(range(24))), npy("<i8", [2], labels)
put("FuzzNPY", "images-and-labels", b"\x01" + struct.pack("<H", len(pair_images)) + pair_images + pair_labels)

pixels = bytes((i * 7) % 256 for i in range(3072))
put("FuzzCIFAR", "cifar10-one", bytes([3]) + pixels)
put("FuzzCIFAR", "cifar10-two", bytes([9]) + pixels + bytes([0]) + pixels[::-1])
put("FuzzCIFAR", "cifar100-one", bytes([19, 99]) + pixels)


def png(width, height, color_type, rows):
    """A PNG of 8-bit samples: color type 0 (gray), 2 (RGB), 6 (RGBA); filter byte 0 per row."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


put("FuzzImages", "gray-3x2.png", png(3, 2, 0, [bytes([0, 128, 255]), bytes([10, 20, 30])]))
put("FuzzImages", "rgb-2x2.png", png(2, 2, 2, [bytes(range(6)), bytes(range(6, 12))]))
put("FuzzImages", "rgba-2x1.png", png(2, 1, 6, [bytes([255, 0, 0, 255, 0, 255, 0, 128])]))
try:
    import io
    from PIL import Image
    for name, mode, size in [("rgb-8x8.jpg", "RGB", (8, 8)), ("gray-4x4.jpg", "L", (4, 4))]:
        image = Image.new(mode, size)
        image.putdata([((x * 37) % 256, (x * 91) % 256, (x * 13) % 256) if mode == "RGB" else (x * 16) % 256
                       for x in range(size[0] * size[1])])
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=75)
        put("FuzzImages", name, out.getvalue())
except ImportError:
    print("Pillow is not installed: no JPEG seeds")
