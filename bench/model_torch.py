"""model_torch.py - the PyTorch side of bench/model_bench.c: whole optimisation
steps (forward + backward to the latent) of the generators alone and of the
issue #6 editing pipelines (generator -> VGG-19 to conv3_1 -> pixel +
perceptual loss against cached target features -> backward to the latent),
timed the way a careful PyTorch user would run them on a CPU.

The networks are compact re-implementations in plain torch.nn.functional, so
that the script needs nothing but Debian's python3-torch:

- DCGAN "deluxe" (the course's upsample + conv layout of
  shared/weights/dcgan_grumpy_deluxe.*), instance norm without affine.
- StyleGAN2-ADA's generator (NVlabs training/networks.py, architecture
  'skip'), with the UNFUSED modulated convolution: the activations are scaled
  by the styles before a convolution with the shared weight and by the
  demodulation coefficients after it, so the backward pass costs one
  convolution (data gradient), not two (data + per-sample weight gradient) as
  the grouped "fused" form does. The demodulation coefficients come from
  styles^2 @ sum_k(weight^2)^T, which is the official formula rearranged
  without building the (N, O, I, k, k) modulated weight.
- The "normalised" VGG-19 of shared/weights/vgg19_normalised_conv3_1.* (1x1
  colour layer, reflection padding, ceil-mode pooling), up to conv3_1.
`verify` checks each of them against the official code's outputs in
shared/ref (image and latent gradient), so that both sides of the benchmark
compute the same thing.

Best practice for the timed steps: weights are plain tensors that do not
require gradients (no weight gradient is computed), the target's VGG features
are computed once under no_grad, only the latent requires grad, the loss is
summed per restart exactly as ganedit's objective defines it,
torch.set_num_threads(threads).

Usage (run with /usr/bin/python3, which has torch):
  model_torch.py prep DATA_DIR         write the random StyleGAN2 weights and
                                       the latents/targets both sides read
  model_torch.py verify                compare with shared/ref (prints errors)
  model_torch.py run DATA_DIR PIPELINE [threads (2)] [min_seconds (1)] [max_reps (50)]
      prints one line:
      torch PIPELINE median_ms best_ms reps gflop peak_rss_mib loss0
      (wall-clock times, or process CPU time with GE_BENCH_CLOCK=cpu)
      where gflop is the nominal work of one step: 2 x the multiply-adds of
      the forward convolutions / linear layers / FIR filters (forward plus
      the data gradient of the backward).
  model_torch.py lbfgs DATA_DIR PIPELINE [threads (2)] [steps (20)]
      torch.optim.LBFGS (strong Wolfe, history 10) for `steps` iterations:
      torch-lbfgs PIPELINE mean_ms_per_step ms_per_eval evals_per_step steps peak_rss_mib

Pipelines (the same table is in model_bench.c):
  dcgan64_gen      DCGAN deluxe 64x64, z, batch 1, loss sum(img * r)
  sg2ref64_gen     shared/ref/stylegan2_g2 (64x64, 32-64 channels), w+, batch 1, sum(img * r)
  dcgan64_vgg_b1   DCGAN deluxe + VGG, batch 1
  dcgan64_vgg_b10  the same, batch 10 (restarts)
  sg2_64_vgg_b1    StyleGAN2-ADA 64x64, channel_base 16384, channel_max 512, w+, + VGG
  sg2_256_vgg_b1   the same rule at 256x256
The VGG loss: 0.3 * mean((img - target)^2) + 0.7 * sum over conv1_1,
conv1_2, conv2_1, conv2_2, conv3_1 (pre-ReLU) of mean((F(img) - F(target))^2),
per restart, summed over restarts (ganedit's default editing objective).
"""
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
# GE_BENCH_CLOCK=cpu: process CPU time instead of wall time (meaningful with 1 thread)
clock = time.process_time if os.environ.get("GE_BENCH_CLOCK") == "cpu" else time.perf_counter
SHARED = os.environ.get("GANEDIT_SHARED", os.path.join(HERE, "..", "..", "shared"))
DCGAN = os.path.join(SHARED, "weights", "dcgan_grumpy_deluxe.safetensors")
VGG = os.path.join(SHARED, "weights", "vgg19_normalised_conv3_1.safetensors")
SG2REF = os.path.join(SHARED, "ref", "stylegan2_g2.safetensors")
LAYERS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"]
W_PIXEL, W_PERCEPTUAL = 0.3, 0.7

# name: (generator file (DATA_DIR-relative if not absolute), latent space, batch, with VGG)
PIPELINES = {
    "dcgan64_gen": (DCGAN, "z", 1, False),
    "sg2ref64_gen": (SG2REF, "wplus", 1, False),
    "dcgan64_vgg_b1": (DCGAN, "z", 1, True),
    "dcgan64_vgg_b10": (DCGAN, "z", 10, True),
    "sg2_64_vgg_b1": ("sg2_64.safetensors", "wplus", 1, True),
    "sg2_256_vgg_b1": ("sg2_256.safetensors", "wplus", 1, True),
}

# ---- FLOP counting: 2 per multiply-add of the matrix-like work, forward only.
FLOPS = [0.0]


def conv2d(x, w, b=None, padding=0, groups=1):
    y = F.conv2d(x, w, b, padding=padding, groups=groups)
    FLOPS[0] += 2.0 * y.numel() * w.shape[1] * w.shape[2] * w.shape[3]
    return y


def conv_transpose2d(x, w, stride):
    y = F.conv_transpose2d(x, w, stride=stride)
    FLOPS[0] += 2.0 * x.numel() * w.shape[1] * w.shape[2] * w.shape[3]
    return y


def linear(x, w, b=None):
    FLOPS[0] += 2.0 * x.shape[0] * w.numel()
    return F.linear(x, w, b)


# ---- safetensors (F32 only; all files used here are F32), read tensor by tensor so
# that the file's bytes are never held twice (the peak RSS is the model's)
def st_load(path):
    out = {}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        meta = header.pop("__metadata__", {}) or {}
        for name, e in header.items():
            if e["dtype"] != "F32":
                raise SystemExit(f"{path}: {name} is {e['dtype']}, only F32 is read here")
            b0, b1 = e["data_offsets"]
            f.seek(8 + n + b0)
            a = np.frombuffer(bytearray(f.read(b1 - b0)), dtype="<f4").reshape(e["shape"])
            out[name] = torch.from_numpy(a)
    return out, meta


# ---- DCGAN deluxe
class DCGAN_G:
    def __init__(self, path):
        t, _ = st_load(path)
        self.w = [t["up_conv1.0.weight"]] + [t[f"up_conv{i}.1.weight"] for i in range(2, 6)]
        self.b5 = t["up_conv5.1.bias"]
        self.z_dim = self.w[0].shape[1]
        self.R = 64

    def __call__(self, z):
        x = z.reshape(z.shape[0], -1, 1, 1)
        x = F.relu(F.instance_norm(conv2d(x, self.w[0], padding=3), eps=1e-5))
        for i in range(1, 4):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.relu(F.instance_norm(conv2d(x, self.w[i], padding=1), eps=1e-5))
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(conv2d(x, self.w[4], self.b5, padding=1))


# ---- StyleGAN2-ADA generator (synthesis network; mapping for prep only)
def fir(x, f, pad, gain):
    """upfirdn2d without up/down: pad (x0, x1, y0, y1), depthwise FIR f * gain."""
    c = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[2], pad[3]])
    k = (f * gain).flip([0, 1])[None, None].expand(c, 1, f.shape[0], f.shape[1])
    return conv2d(x, k, groups=c)


def upsample2d(x, f):
    """upfirdn2d.upsample2d: insert zeros (x2), pad (2, 1, 2, 1), FIR, gain 4."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, 1, 0, 0, 0, 1]).reshape(n, c, 2 * h, 2 * w)
    return fir(x, f, (2, 1, 2, 1), 4.0)


class SG2_G:
    def __init__(self, path):
        t, meta = st_load(path)
        kw = json.loads(meta["generator_kwargs"]) if "generator_kwargs" in meta else {}
        clamp = kw.get("synthesis_kwargs", {}).get("conv_clamp")
        if clamp is None and "conv_clamp" in meta:
            clamp = json.loads(meta["conv_clamp"])
        self.clamp = clamp
        self.res = sorted(int(k.split(".")[1][1:]) for k in t if k.startswith("synthesis.b") and
                          k.endswith(".conv1.weight"))
        self.R = self.res[-1]
        self.w_dim = t["synthesis.b4.conv1.affine.weight"].shape[1]
        self.num_ws = 2 * len(self.res)
        self.z_dim = t["mapping.fc0.weight"].shape[1]
        self.n_map = len([k for k in t if k.startswith("mapping.fc") and k.endswith(".weight")])
        self.t = t
        self.w_avg = t.get("mapping.w_avg")
        g = 1 / math.sqrt(self.w_dim)
        self.layers = {}
        for r in self.res:
            for name in (["conv1"] if r == 4 else ["conv0", "conv1"]):
                p = f"synthesis.b{r}.{name}."
                W = t.pop(p + "weight")  # pop: no second copy of what is rescaled or transposed
                L = {"A": t.pop(p + "affine.weight") * g, "ab": t[p + "affine.bias"],
                     "wsq": W.square().sum([2, 3]), "b": t[p + "bias"],
                     "f": t.get(p + "resample_filter", self._filter())}
                L["W"] = W.transpose(0, 1).contiguous() if name == "conv0" else W
                L["noise"] = t[p + "noise_const"] * t[p + "noise_strength"] \
                    if p + "noise_const" in t else None
                self.layers[(r, name)] = L
            p = f"synthesis.b{r}.torgb."
            C = t[p + "weight"].shape[1]
            self.layers[(r, "torgb")] = {"A": t.pop(p + "affine.weight") * (g / math.sqrt(C)),
                                         "ab": t[p + "affine.bias"] / math.sqrt(C),
                                         "W": t[p + "weight"], "b": t[p + "bias"]}
            self.layers[(r, "f")] = t.get(f"synthesis.b{r}.resample_filter", self._filter())

    @staticmethod
    def _filter():
        f = torch.tensor([1.0, 3.0, 3.0, 1.0])
        f = torch.outer(f, f)
        return f / f.sum()

    def mapping(self, z):
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.n_map):
            W, b = self.t[f"mapping.fc{i}.weight"], self.t[f"mapping.fc{i}.bias"]
            x = F.leaky_relu(linear(x, W * (0.01 / math.sqrt(W.shape[1]))) + b * 0.01, 0.2) * math.sqrt(2)
        return x

    def _layer(self, x, w, L, up):
        s = linear(w, L["A"], L["ab"])                                 # (N, I) styles
        d = (linear(s.square(), L["wsq"]) + 1e-8).rsqrt()              # (N, O) demodulation
        x = x * s[:, :, None, None]
        if up:
            x = fir(conv_transpose2d(x, L["W"], 2), L["f"], (1, 1, 1, 1), 4.0)
        else:
            x = conv2d(x, L["W"], padding=1)
        x = x * d[:, :, None, None]
        if L["noise"] is not None:
            x = x + L["noise"]
        x = F.leaky_relu(x + L["b"][None, :, None, None], 0.2) * math.sqrt(2)
        if self.clamp is not None:
            x = x.clamp(-self.clamp, self.clamp)
        return x

    def _torgb(self, x, w, L):
        s = linear(w, L["A"], L["ab"])
        y = conv2d(x * s[:, :, None, None], L["W"], L["b"])
        return y.clamp(-self.clamp, self.clamp) if self.clamp is not None else y

    def __call__(self, ws):                                            # ws (N, num_ws, w_dim)
        n = ws.shape[0]
        x = self.t["synthesis.b4.const"][None].expand(n, -1, -1, -1)
        img = None
        for i, r in enumerate(self.res):
            if r == 4:
                x = self._layer(x, ws[:, 0], self.layers[(4, "conv1")], False)
                img = self._torgb(x, ws[:, 1], self.layers[(4, "torgb")])
                continue
            x = self._layer(x, ws[:, 2 * i - 1], self.layers[(r, "conv0")], True)
            x = self._layer(x, ws[:, 2 * i], self.layers[(r, "conv1")], False)
            img = upsample2d(img, self.layers[(r, "f")]) + self._torgb(x, ws[:, 2 * i + 1],
                                                                        self.layers[(r, "torgb")])
        return img


# ---- the "normalised" VGG-19 up to conv3_1, input in [-1, 1]
class VGG_N:
    KEYS = [("conv1_1", "2", False), ("conv1_2", "5", True), ("conv2_1", "9", False),
            ("conv2_2", "12", True), ("conv3_1", "16", False)]

    def __init__(self, path):
        self.t, _ = st_load(path)

    def __call__(self, x):
        x = conv2d((x + 1) * 0.5, self.t["0.weight"], self.t["0.bias"])
        feats = []
        for i, (name, k, pool) in enumerate(self.KEYS):
            x = conv2d(F.pad(x, [1, 1, 1, 1], mode="reflect"), self.t[k + ".weight"], self.t[k + ".bias"])
            feats.append(x)
            if i + 1 == len(self.KEYS):
                break
            x = F.relu(x)
            if pool:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        return feats


def load_gen(path):
    t, _ = st_load(path)
    return SG2_G(path) if "mapping.fc0.weight" in t else DCGAN_G(path)


def rel(a, b):
    return float((a - b).norm() / b.norm())


def maxerr(a, b):
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def verify():
    """Each re-implementation against the official code's files in shared/ref."""
    ok = True

    def report(name, err, tol):
        nonlocal ok
        good = err <= tol
        ok &= good
        print(f"{name:38s} {err:.2e} (tolerance {tol:.0e}) {'ok' if good else 'FAIL'}")

    io, _ = st_load(os.path.join(SHARED, "ref", "stylegan2_g2_io.safetensors"))
    G = SG2_G(SG2REF)
    ws = io["ws"].clone().requires_grad_(True)
    img = G(ws)
    (img * io["r"]).sum().backward()
    report("stylegan2_g2 img (max err)", maxerr(img.detach(), io["img"]), 1e-5)
    report("stylegan2_g2 d_ws (relative L2)", rel(ws.grad, io["d_ws"]), 1e-4)
    z = io["z"].clone().requires_grad_(True)
    wz = G.mapping(z)
    report("stylegan2_g2 mapping ws (max err)", maxerr(wz.detach(), io["ws"][:, 0]), 1e-5)

    io, _ = st_load(os.path.join(SHARED, "ref", "dcgan_deluxe_io.safetensors"))
    G = DCGAN_G(DCGAN)
    z = io["z"].reshape(io["z"].shape[0], -1).clone().requires_grad_(True)
    img = G(z)
    (img * io["r"]).sum().backward()
    report("dcgan_deluxe img (max err)", maxerr(img.detach(), io["img"]), 1e-5)
    report("dcgan_deluxe d_z (relative L2)", rel(z.grad, io["d_z"].reshape(z.shape)), 1e-4)

    io, _ = st_load(os.path.join(SHARED, "ref", "vgg19n_io.safetensors"))
    V = VGG_N(VGG)
    x = (io["x"] * 2 - 1).requires_grad_(True)
    feats = V(x)
    sum((f * io["r_" + n]).sum() for f, n in zip(feats, LAYERS)).backward()
    for f, n in zip(feats, LAYERS):
        report(f"vgg19n {n} (max err)", maxerr(f.detach(), io[n]), 1e-5)
    # d/dx01 = 2 d/dx for x = 2 x01 - 1
    report("vgg19n d_x (relative L2)", rel(x.grad * 2, io["d_x"]), 1e-4)
    print("verify:", "all ok" if ok else "FAILED")
    return ok


# ---- prep: random StyleGAN2-ADA weights by the official layout rules, latents, targets
def sg2_random(R, seed, channel_base=16384, channel_max=512, z_dim=512, w_dim=512, n_map=8,
               conv_clamp=256):
    g = torch.Generator().manual_seed(seed)

    def randn(*s):
        return torch.randn(*s, generator=g)

    res = [2 ** i for i in range(2, int(math.log2(R)) + 1)]
    ch = {r: min(channel_base // r, channel_max) for r in res}
    f = SG2_G._filter()
    t = {}
    for r in res:
        p = f"synthesis.b{r}."
        if r == 4:
            t[p + "const"] = randn(ch[4], 4, 4)
        t[p + "resample_filter"] = f
        for name in (["conv1"] if r == 4 else ["conv0", "conv1"]):
            cin = ch[r] if name == "conv1" or r == 4 else ch[r // 2]
            q = p + name + "."
            t[q + "weight"] = randn(ch[r], cin, 3, 3)
            t[q + "noise_strength"] = torch.tensor(0.1)
            t[q + "bias"] = 0.1 * randn(ch[r])
            t[q + "resample_filter"] = f
            t[q + "noise_const"] = randn(r, r)
            t[q + "affine.weight"] = randn(cin, w_dim)
            t[q + "affine.bias"] = torch.ones(cin)
        q = p + "torgb."
        t[q + "weight"] = randn(3, ch[r], 1, 1)
        t[q + "bias"] = torch.zeros(3)
        t[q + "affine.weight"] = randn(ch[r], w_dim)
        t[q + "affine.bias"] = torch.ones(ch[r])
    t["mapping.w_avg"] = torch.zeros(w_dim)
    for i in range(n_map):
        t[f"mapping.fc{i}.weight"] = randn(w_dim, z_dim if i == 0 else w_dim) / 0.01
        t[f"mapping.fc{i}.bias"] = torch.zeros(w_dim)
    kwargs = {"z_dim": z_dim, "c_dim": 0, "w_dim": w_dim, "img_resolution": R, "img_channels": 3,
              "mapping_kwargs": {"num_layers": n_map},
              "synthesis_kwargs": {"channel_base": channel_base, "channel_max": channel_max,
                                   "num_fp16_res": 0, "conv_clamp": conv_clamp, "architecture": "skip"}}
    meta = {"arch": json.dumps("stylegan2-ada-pytorch"), "generator_kwargs": json.dumps(kwargs),
            "z_dim": str(z_dim), "w_dim": str(w_dim), "c_dim": "0", "img_resolution": str(R),
            "img_channels": "3", "num_ws": str(2 * len(res)), "mapping_num_layers": str(n_map),
            "channel_base": str(channel_base), "channel_max": str(channel_max),
            "conv_clamp": str(conv_clamp), "architecture": json.dumps("skip"),
            "note": json.dumps("random weights for bench/ (bench/model_torch.py prep), seed %d" % seed)}
    return t, meta


def prep(data):
    sys.path.insert(0, os.path.join(HERE, "..", "tools"))
    import stvec
    os.makedirs(data, exist_ok=True)
    torch.manual_seed(6)
    for R, seed in [(64, 6064), (256, 6256)]:
        path = os.path.join(data, f"sg2_{R}.safetensors")
        t, meta = sg2_random(R, seed)
        stvec.save(path + ".tmp", t, meta)
        os.replace(path + ".tmp", path)
        G = SG2_G(path)
        with torch.no_grad():  # w_avg: the mean of mapping(z), as training would track it
            t["mapping.w_avg"] = G.mapping(torch.randn(2048, G.z_dim)).mean(0)
        stvec.save(path + ".tmp", t, meta)
        os.replace(path + ".tmp", path)
    for name, (gpath, space, n, vgg) in PIPELINES.items():
        G = load_gen(gpath if os.path.isabs(gpath) else os.path.join(data, gpath))
        with torch.no_grad():
            if space == "z":
                lat = torch.rand(n, G.z_dim) * 2 - 1          # the deluxe DCGAN draws z ~ U(-1, 1)
                other = G(torch.rand(1, G.z_dim) * 2 - 1)
            else:
                lat = G.mapping(torch.randn(n, G.z_dim))[:, None].repeat(1, G.num_ws, 1)
                lat = lat + 0.1 * torch.randn_like(lat)        # a w+ point, rows differ a little
                other = G(G.mapping(torch.randn(1, G.z_dim))[:, None].repeat(1, G.num_ws, 1))
            # VGG pipelines: a target image from the generator; generator rows: r ~ N(0, 1)
            tgt = other[0].clamp(-1, 1) if vgg else torch.randn(1, 3, G.R, G.R)[0]
        np.save(os.path.join(data, name + ".latent.npy"), lat.numpy().astype("<f4"))
        np.save(os.path.join(data, name + ".target.npy"), tgt.numpy().astype("<f4"))
    print(f"prep: wrote {data}")


# ---- the timed step
def run(data, name, threads, min_s, max_reps, lbfgs_steps=0):
    torch.set_num_threads(threads)
    gpath, space, n, with_vgg = PIPELINES[name]
    G = load_gen(gpath if os.path.isabs(gpath) else os.path.join(data, gpath))
    lat0 = torch.from_numpy(np.load(os.path.join(data, name + ".latent.npy")))
    tgt = torch.from_numpy(np.load(os.path.join(data, name + ".target.npy")))[None]
    if space == "wplus":
        lat0 = lat0.reshape(n, G.num_ws, G.w_dim)
    V = VGG_N(VGG) if with_vgg else None
    R = G.R
    if V is not None:
        with torch.no_grad():
            tfeats = V(tgt)                                    # cached target features

    def loss_fn(img):
        if V is None:
            return (img * tgt).sum()
        loss = W_PIXEL / (3 * R * R) * F.mse_loss(img, tgt.expand_as(img), reduction="sum")
        for f, t in zip(V(img), tfeats):
            loss = loss + W_PERCEPTUAL / t[0].numel() * F.mse_loss(f, t.expand_as(f), reduction="sum")
        return loss

    lat = lat0.clone().requires_grad_(True)

    def step():
        lat.grad = None
        loss = loss_fn(G(lat))
        loss.backward()
        return float(loss)

    FLOPS[0] = 0.0
    with torch.no_grad():
        loss_fn(G(lat0))
    gflop = 2 * FLOPS[0] * 1e-9                                # forward + data-gradient backward
    if lbfgs_steps:
        return run_lbfgs(name, lat, lat0, loss_fn, G, lbfgs_steps)
    # warm-up (oneDNN primitives, allocator): one step, a second if it was quick;
    # then at least 5 timed steps (3 if slow) and min_s seconds, as model_bench.c does
    tw = clock()
    loss0 = step()
    tw = clock() - tw
    if tw < 2:
        step()
    min_reps = 5 if tw < 2 else 3
    ts = []
    start = clock()
    while len(ts) < max_reps and (len(ts) < min_reps or clock() - start < min_s):
        t0 = clock()
        step()
        ts.append(clock() - t0)
    ts.sort()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"torch {name} {ts[len(ts) // 2] * 1e3:.2f} {ts[0] * 1e3:.2f} {len(ts)} {gflop:.4f} "
          f"{peak:.0f} {loss0:.8g}")
    sys.stdout.flush()


def run_lbfgs(name, lat, lat0, loss_fn, G, steps):
    """torch.optim.LBFGS as a user would run it: one .step() call doing `steps`
    iterations (strong Wolfe line search, history 10, tolerances off, like
    ganedit's defaults), timed as a whole; prints mean ms per iteration and
    per evaluation."""
    evals = [0]

    def closure():
        evals[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(G(lat))
        loss.backward()
        return loss

    opt = torch.optim.LBFGS([lat], lr=1, max_iter=1, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=0, tolerance_change=0)
    opt.step(closure)                                          # warm-up: one iteration
    with torch.no_grad():
        lat.copy_(lat0)                                        # start where ganedit starts
    opt = torch.optim.LBFGS([lat], lr=1, max_iter=steps, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=0, tolerance_change=0)
    evals[0] = 0
    t0 = clock()
    opt.step(closure)
    total = clock() - t0
    iters = opt.state[opt._params[0]]["n_iter"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"torch-lbfgs {name} {total / iters * 1e3:.2f} {total / evals[0] * 1e3:.2f} "
          f"{evals[0] / iters:.2f} {iters} {peak:.0f}")
    sys.stdout.flush()


def main(argv):
    if len(argv) >= 2 and argv[1] == "verify":
        return 0 if verify() else 1
    if len(argv) >= 3 and argv[1] == "prep":
        prep(argv[2])
        return 0
    if len(argv) >= 4 and argv[1] in ("run", "lbfgs") and argv[3] in PIPELINES:
        threads = int(argv[4]) if len(argv) > 4 else 2
        if argv[1] == "lbfgs":
            run(argv[2], argv[3], threads, 0, 0, int(argv[5]) if len(argv) > 5 else 20)
        else:
            run(argv[2], argv[3], threads, float(argv[5]) if len(argv) > 5 else 1.0,
                int(argv[6]) if len(argv) > 6 else 50)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
