"""stvec.py - write and read small safetensors files of float32 test vectors.

Used by the tools/gen_*.py scripts that make the reference vectors under
tests/vectors/ with PyTorch (run with /usr/bin/python3, which has Debian's
python3-torch). The C test suite reads these files with ganedit's own reader,
so the tests never need Python.
"""
import json
import struct

import numpy as np


def save(path, tensors, metadata=None):
    """tensors: dict name -> array-like (converted to float32, C order)."""
    header = {}
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        if hasattr(arr, "detach"):
            arr = arr.detach().cpu().numpy()
        a = np.asarray(arr, dtype="<f4")
        shape = list(a.shape)  # kept before ascontiguousarray, which makes 0-d arrays 1-d
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = e["data_offsets"]
        out[name] = np.frombuffer(data[b0:b1], dtype="<f4").reshape(e["shape"])
    return out
