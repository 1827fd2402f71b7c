"""gen_io_vectors.py - test vectors for ganedit's file readers (tests/test_io_*.c).

Run from the repository root with Debian's Python, which has torch:

    /usr/bin/python3 tools/gen_io_vectors.py

Writes tests/vectors/io_*:

  io_dtypes.safetensors   F16, BF16, F64 and integer/bool tensors, each with an
                          F32 '<name>_expect' tensor holding numpy's conversion
  io_sd_zip.pt            a small checkpoint, torch.save zip format (protocol 2)
  io_sd_proto4.pt         the same, pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL)
  io_sd_legacy.pt         the same, legacy (non-zip) format
  io_sd_expect.safetensors  what the three must load as: names, order, float32 values
  io_noncontig.pt         a checkpoint holding a transposed (non-contiguous) tensor
  io_evil_*.pkl / .pt     pickles whose __reduce__ calls os.system, builtins.eval,
                          subprocess.Popen, pickle.loads, also hidden inside real
                          zip and legacy checkpoints. They are only ever WRITTEN
                          here (pickle.dumps / torch.save never run the gadget);
                          nothing here loads them. The commands are harmless anyway.

The checkpoint holds what real ones do: a nested dict ({'G_ema': state_dict,
'step': int, 'note': str}), nn.Parameters, float16/bfloat16/float64 tensors,
an int64 0-d buffer (like BatchNorm's num_batches_tracked), a 0-d float,
an empty tensor, and two tensors that are views into one storage at
different offsets.
"""
import builtins
import collections
import json
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vectors")


def write_safetensors_raw(path, entries):
    """entries: list of (name, dtype_string, shape, raw bytes)."""
    header, blobs, off = {}, [], 0
    for name, dt, shape, raw in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def dtypes_vector():
    f16 = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.1035156e-05,  # min normal
                    5.9604645e-08, -5.9604645e-08, 3.0517578e-05,  # subnormals
                    np.inf, -np.inf, np.nan, 0.333251953125, 1234.0], dtype="<f2")
    bf16_f32 = np.array([0.0, -0.0, 1.0, -3.140625, 3.3895314e38, 1e-38, 9.18355e-41,
                         np.inf, -np.inf, np.nan, 0.1], dtype="<f4")
    bf16_bits = (bf16_f32.view("<u4") >> 16).astype("<u2")  # truncation: exact bf16 values
    bf16_exp = (bf16_bits.astype("<u4") << 16).view("<f4")
    # 1e300 overflows to inf in float32, -1e-50 underflows to -0
    f64 = np.array([0.1, -1e-50, 1e300, 3.141592653589793, 1.0000000596046448, -7.5], dtype="<f8")
    with np.errstate(over="ignore"):
        f64_exp = f64.astype("<f4")
    i64 = np.array([0, 1, -1, 123456789, -(2 ** 40), 2 ** 24 + 1], dtype="<i8")
    i32 = np.array([0, -7, 2 ** 31 - 1, -(2 ** 31)], dtype="<i4")
    i16 = np.array([0, -32768, 32767, 5], dtype="<i2")
    i8 = np.array([-128, 127, 0, -1], dtype="i1")
    u8 = np.array([0, 255, 128, 1], dtype="u1")
    bl = np.array([True, False, True], dtype="?")
    e = []
    for name, dt, arr, exp in [
        ("f16", "F16", f16.reshape(3, 5), f16.astype("<f4").reshape(3, 5)),
        ("bf16", "BF16", bf16_bits, bf16_exp),
        ("f64", "F64", f64.reshape(2, 3), f64_exp.reshape(2, 3)),
        ("i64", "I64", i64, i64.astype("<f4")),
        ("i32", "I32", i32, i32.astype("<f4")),
        ("i16", "I16", i16, i16.astype("<f4")),
        ("i8", "I8", i8, i8.astype("<f4")),
        ("u8", "U8", u8, u8.astype("<f4")),
        ("bool", "BOOL", bl, bl.astype("<f4")),
    ]:
        e.append((name, dt, arr.shape, arr.tobytes()))
        e.append((name + "_expect", "F32", exp.shape, np.ascontiguousarray(exp, dtype="<f4").tobytes()))
    write_safetensors_raw(os.path.join(OUT, "io_dtypes.safetensors"), e)


def checkpoint():
    g = torch.Generator().manual_seed(4242)
    base = torch.randn(10, generator=g)
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.nn.Parameter(torch.randn(4, 3, 3, 3, generator=g))
    sd["conv.bias"] = torch.nn.Parameter(torch.randn(4, generator=g))
    sd["half"] = torch.randn(2, 5, generator=g).half()
    sd["bf16"] = torch.randn(7, generator=g).bfloat16()
    sd["double"] = torch.randn(3, 2, generator=g).double()
    sd["bn.num_batches_tracked"] = torch.tensor(12345, dtype=torch.int64)
    sd["noise_strength"] = torch.tensor(0.25)
    sd["empty"] = torch.zeros(0, 4)
    sd["view_a"] = base[0:3]        # storage offset 0
    sd["view_b"] = base[3:10].view(7, 1)  # the same storage, offset 3
    ckpt = {"G_ema": sd, "step": 5, "note": "ganedit io test", "lr": 0.002}
    expect = collections.OrderedDict()
    for k, v in sd.items():
        expect["G_ema." + k] = v.detach().float().numpy()
    return ckpt, expect


class Gadget:
    """Pickles as a call of fn(*args): the classic __reduce__ gadget."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def main():
    os.makedirs(OUT, exist_ok=True)
    dtypes_vector()

    ckpt, expect = checkpoint()
    # not stvec.save: its np.ascontiguousarray turns 0-d arrays into shape [1]
    write_safetensors_raw(os.path.join(OUT, "io_sd_expect.safetensors"),
                          [(k, "F32", v.shape, np.asarray(v, dtype="<f4").tobytes()) for k, v in expect.items()])
    torch.save(ckpt, os.path.join(OUT, "io_sd_zip.pt"))
    torch.save(ckpt, os.path.join(OUT, "io_sd_proto4.pt"), pickle_protocol=4)
    torch.save(ckpt, os.path.join(OUT, "io_sd_legacy.pt"), _use_new_zipfile_serialization=False)

    torch.save({"w": torch.arange(6.0).reshape(2, 3).t()}, os.path.join(OUT, "io_noncontig.pt"))

    # Gadget pickles. Never loaded here: pickle.dumps only records fn by name.
    cmd = "echo ganedit-test-gadget-must-never-run"
    gadgets = {
        "posix_system": Gadget(os.system, (cmd,)),
        "eval": Gadget(builtins.eval, ("print('ganedit-test-gadget-must-never-run')",)),
        "popen": Gadget(subprocess.Popen, (["true"],)),
        "nested_pickle": Gadget(pickle.loads, (pickle.dumps(Gadget(os.system, (cmd,)), protocol=2),)),
    }
    for name, gadget in gadgets.items():
        # protocol 3: protocol 2 would rename the globals to their Python 2
        # modules (__builtin__.eval, commands.Popen); io_evil_posix_system
        # stays at 2, as torch.save writes.
        with open(os.path.join(OUT, "io_evil_%s.pkl" % name), "wb") as f:
            f.write(pickle.dumps(gadget, protocol=2 if name == "posix_system" else 3))
    with open(os.path.join(OUT, "io_evil_proto5.pkl"), "wb") as f:
        f.write(pickle.dumps({"w": 1, "x": Gadget(os.system, (cmd,))}, protocol=5))
    # Inside real checkpoints, after a genuine tensor, in both containers.
    evil = collections.OrderedDict()
    evil["w"] = torch.ones(3)
    evil["x"] = Gadget(os.system, (cmd,))
    torch.save(evil, os.path.join(OUT, "io_evil_zip.pt"))
    torch.save(evil, os.path.join(OUT, "io_evil_legacy.pt"), _use_new_zipfile_serialization=False)

    for f in sorted(os.listdir(OUT)):
        if f.startswith("io_"):
            print("%-28s %8d bytes" % (f, os.path.getsize(os.path.join(OUT, f))))


if __name__ == "__main__":
    main()
