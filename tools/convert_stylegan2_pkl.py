#!/usr/bin/python3
"""convert_stylegan2_pkl.py - turn an NVlabs StyleGAN2-ADA network pickle into
a safetensors file that ganedit loads with its architecture recorded.

An NVlabs snapshot (network-snapshot-*.pkl, or the published ffhq.pkl,
afhqcat.pkl, ...) is a Python pickle of the networks' *classes and code*:
reading it runs code from the pickle, which ganedit refuses to do. This tool
runs once, on your machine, with your own copy of the official code, and
writes only tensors and JSON:

  - every tensor of G_ema.state_dict() (parameters and buffers), float32, with
    the state-dict names and order (mapping.fc0.weight, synthesis.b4.const,
    ...), exactly what `torch.save(G_ema.state_dict())` would hold;
  - `__metadata__` with `generator_kwargs` = json(G_ema.init_kwargs) (the
    constructor call: z_dim, c_dim, w_dim, img_resolution, img_channels,
    mapping_kwargs, synthesis_kwargs incl. conv_clamp and architecture), plus
    the flat keys ganedit's reference files carry (z_dim, w_dim, num_ws,
    conv_clamp, mapping_lr_multiplier, channels_per_resolution, ...). Every
    metadata value is a JSON text, as in shared/ref.

conv_clamp matters: StyleGAN2-ADA configs train with conv_clamp=256, and a
bare state dict does not record it; this file does.

Usage (needs PyTorch and the official code on PYTHONPATH, because unpickling
imports its `dnnlib` and `torch_utils` modules):

    PYTHONPATH=/path/to/stylegan2-ada-pytorch \\
        /usr/bin/python3 tools/convert_stylegan2_pkl.py ffhq.pkl ffhq.safetensors
    ganedit info ffhq.safetensors

Options: --key picks another network of the pickle (default G_ema);
--io FILE also writes a small check file (z, ws, img with noise_mode='const',
float32 on CPU, force_fp32) in the layout of shared/ref/stylegan2_*_io so the
C port can be compared with the official code on your own model.

Only the 'skip' synthesis architecture and c_dim = 0 run in ganedit; other
generators are converted all the same, with a warning.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def save_safetensors(path, tensors, metadata):
    """F32 safetensors, names in the given order, 0-d tensors kept 0-d (shape
    [], as noise_strength is in the state dict); written to a temporary name
    and renamed, so a failed run leaves no half-written file."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        a = np.array(arr, dtype="<f4", order="C")  # np.array keeps ndim 0
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header = {"__metadata__": dict(metadata), **header}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_network(path, key):
    """Unpickles an NVlabs snapshot and returns the network `key`."""
    if not os.path.isfile(path):
        sys.exit(f"convert_stylegan2_pkl: {path}: no such file")
    try:
        import legacy  # the official repository's loader (also reads TF pickles)
        with open(path, "rb") as f:
            data = legacy.load_network_pkl(f)
    except ImportError:
        import pickle
        try:
            import dnnlib  # noqa: F401
            import torch_utils  # noqa: F401
        except ImportError:
            sys.exit("convert_stylegan2_pkl: put a stylegan2-ada-pytorch checkout on PYTHONPATH "
                     "(the pickle needs its dnnlib and torch_utils modules)")
        with open(path, "rb") as f:
            data = pickle.load(f)
    if not isinstance(data, dict) or key not in data:
        have = sorted(data) if isinstance(data, dict) else type(data).__name__
        sys.exit(f"convert_stylegan2_pkl: {path}: no '{key}' network (found {have})")
    return data[key]


def jsonable(x):
    """init_kwargs may hold EasyDicts, tuples and numpy scalars: plain JSON."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalar
        return x.item()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def generator_metadata(G, source):
    """The __metadata__ dict (values are JSON texts) for generator G."""
    kw = jsonable(dict(getattr(G, "init_kwargs", {}) or {}))
    if not kw:
        kw = {"z_dim": int(G.z_dim), "c_dim": int(G.c_dim), "w_dim": int(G.w_dim),
              "img_resolution": int(G.img_resolution), "img_channels": int(G.img_channels)}
    mk = kw.get("mapping_kwargs", {}) or {}
    sk = kw.get("synthesis_kwargs", {}) or {}
    syn = G.synthesis
    res_list = [int(r) for r in syn.block_resolutions]
    channels = {str(r): int(getattr(syn, f"b{r}").conv1.weight.shape[0]) for r in res_list}
    conv_clamp = sk.get("conv_clamp", None)
    flat = {
        "arch": "stylegan2-ada-pytorch",
        "class": type(G).__module__ + "." + type(G).__name__,
        "generator_kwargs": kw,
        "z_dim": int(G.z_dim),
        "w_dim": int(G.w_dim),
        "c_dim": int(G.c_dim),
        "img_resolution": int(G.img_resolution),
        "img_channels": int(G.img_channels),
        "num_ws": int(G.num_ws),
        "block_resolutions": res_list,
        "channels_per_resolution": channels,
        "mapping_num_layers": int(G.mapping.num_layers),
        "mapping_lr_multiplier": float(mk.get("lr_multiplier", 0.01)),
        "mapping_activation": mk.get("activation", "lrelu"),
        "conv_clamp": conv_clamp,
        "architecture": sk.get("architecture", "skip"),
        "num_fp16_res": sk.get("num_fp16_res", 0),
        "source": os.path.basename(source),
    }
    return {k: json.dumps(v, separators=(",", ":")) for k, v in flat.items()}


def state_tensors(G):
    """name -> float32 numpy array, in state-dict order."""
    out = {}
    for name, t in G.state_dict().items():
        out[name] = t.detach().to("cpu").float().contiguous().numpy()
    return out


def write_io(path, G, n, seed):
    """z, ws, img (noise_mode='const') for n samples, to compare ganedit with."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=gen)
    c = torch.zeros([n, G.c_dim])
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=1)
        img = G.synthesis(ws, noise_mode="const", force_fp32=True)
    save_safetensors(path, {"z": z.numpy(), "ws": ws.numpy(), "img": img.numpy()},
                     {"img": json.dumps("G.synthesis(ws, noise_mode='const', force_fp32=True), "
                                        "CPU float32"), "seed": json.dumps(seed)})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pkl", help="NVlabs network pickle (network-snapshot-*.pkl)")
    ap.add_argument("out", help="output .safetensors")
    ap.add_argument("--key", default="G_ema", help="network in the pickle (default G_ema)")
    ap.add_argument("--io", help="also write a check file of z, ws, img for N samples")
    ap.add_argument("--n", type=int, default=2, help="samples in the --io file (default 2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the --io z (default 0)")
    args = ap.parse_args()

    G = load_network(args.pkl, args.key).to("cpu").eval().float()
    meta = generator_metadata(G, args.pkl)
    kw = json.loads(meta["generator_kwargs"])
    if int(G.c_dim) != 0:
        print("convert_stylegan2_pkl: warning: class-conditional generator (c_dim %d); ganedit "
              "does not run these" % G.c_dim, file=sys.stderr)
    arch = (kw.get("synthesis_kwargs") or {}).get("architecture", "skip")
    if arch != "skip":
        print("convert_stylegan2_pkl: warning: synthesis architecture '%s'; ganedit runs only "
              "'skip'" % arch, file=sys.stderr)
    tensors = state_tensors(G)
    save_safetensors(args.out, tensors, meta)
    n_floats = sum(a.size for a in tensors.values())
    print("%s: %d tensors, %d floats, %dx%d, z %d, w %d, num_ws %d, conv_clamp %s" % (
        args.out, len(tensors), n_floats, G.img_resolution, G.img_resolution, G.z_dim, G.w_dim,
        G.num_ws, meta["conv_clamp"]))
    if args.io:
        write_io(args.io, G, args.n, args.seed)
        print("%s: z, ws, img for %d samples" % (args.io, args.n))


if __name__ == "__main__":
    main()
