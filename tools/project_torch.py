#!/usr/bin/python3
"""project_torch.py - a PyTorch reference for `ganedit project` on the DCGAN.

The same method with the same settings, written independently in PyTorch so
that ganedit's projections (quality and time per step) can be compared with a
standard implementation on the same machine (tools/eval_projection.sh).
Run it with /usr/bin/python3 (Debian's python3-torch 1.13, CPU).

What is matched, from include/ganedit.h (editing section), src/edit/edit.c,
src/edit/objective.c and cli/edit_common.c:

  * generator: the "deluxe" DCGAN of ../shared/DATA.md (loaded with torch.load
    from dcgan_grumpy_deluxe.pkl); z is (1,100,1,1), uniform in [-1,1].
  * VGG: the "normalised" VGG-19 of ../shared/ref/README.md (1x1 colour conv,
    reflection padding, ceil-mode max-pool); images in [-1,1] are mapped to
    [0,1] by (x+1)/2 before the 1x1 conv; features are taken BEFORE ReLU.
  * loss = w_pixel * mean((G(z) - target)^2)                 (over 3*H*W)
         + w_perc  * sum_l mean((VGG_l(G(z)) - VGG_l(target))^2) (over C*h*w)
    defaults 0.3 / 0.7 on conv1_1,conv1_2,conv2_1,conv2_2,conv3_1.
  * start: mean of N=10 samples of U(-1,1) z (--init mean), or one (random),
    or a given z (--init-npy, as ganedit's --init FILE.npy).
  * Adam (lr 0.003, betas 0.9/0.999, eps 1e-8), z clamped to [-1,1] after
    every Adam step (ganedit does this for uniform-z DCGANs); or L-BFGS
    (history 10, strong Wolfe, one iteration per step, no clamp).
  * loss history: row 0 at the start, then one row per step; the result is
    the lowest-loss point seen (as ganedit returns it; --keep last: the
    final z). PNGs are written as ganedit writes them:
    byte = floor((x+1)*127.5 + 0.5) clipped to [0,255].

Speed: the weights are frozen (requires_grad False), the target's features
are computed once, and torch runs with 2 threads (--threads).

Outputs, under --out DIR: one folder per target (result.png, target.png,
loss.csv, latent.npy) and summary.csv with one row per target: start and
final losses, wall seconds, seconds per step and CPU seconds.

Usage:
  /usr/bin/python3 tools/project_torch.py --out /tmp/tp --steps 1000 \
      ../shared/data/sketches/target_0.png ../shared/data/sketches/target_2.png
"""
import argparse
import csv
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

ALL_LAYERS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"]


class DeluxeGenerator(nn.Module):
    """The course "deluxe" DCGAN generator (layout of ../shared/DATA.md)."""

    def __init__(self):
        super().__init__()
        self.up_conv1 = nn.Sequential(nn.Conv2d(100, 256, 4, 1, 3, bias=False))
        chans = [(256, 128), (128, 64), (64, 32)]
        for i, (ci, co) in enumerate(chans, start=2):
            setattr(self, "up_conv%d" % i,
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                  nn.Conv2d(ci, co, 3, 1, 1, bias=False)))
        self.up_conv5 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                      nn.Conv2d(32, 3, 3, 1, 1, bias=True))

    def forward(self, z):  # z (N,100,1,1) -> (N,3,64,64) in [-1,1]
        x = z
        for i in range(1, 5):
            x = getattr(self, "up_conv%d" % i)(x)
            x = F.relu(F.instance_norm(x, eps=1e-5))
        return torch.tanh(self.up_conv5(x))


class NormalisedVGG(nn.Module):
    """VGG-19 conv1_1..conv3_1, "normalised" layout (../shared/ref/README.md).
    forward returns the requested pre-ReLU conv outputs, running only as deep
    as the deepest one."""

    # (state-dict index, name, pool after its ReLU)
    CONVS = [(2, "conv1_1", False), (5, "conv1_2", True), (9, "conv2_1", False),
             (12, "conv2_2", True), (16, "conv3_1", False)]

    def __init__(self, sd):
        super().__init__()
        self.c0 = nn.Conv2d(3, 3, 1)
        self.c0.weight.data.copy_(sd["0.weight"])
        self.c0.bias.data.copy_(sd["0.bias"])
        self.convs = nn.ModuleList()
        for idx, _, _ in self.CONVS:
            w = sd["%d.weight" % idx]
            c = nn.Conv2d(w.shape[1], w.shape[0], 3)
            c.weight.data.copy_(w)
            c.bias.data.copy_(sd["%d.bias" % idx])
            self.convs.append(c)

    def forward(self, x, layers):  # x (N,3,H,W) in [-1,1]
        want = set(layers)
        depth = max(i for i, (_, n, _) in enumerate(self.CONVS) if n in want)
        h = self.c0((x + 1) * 0.5)
        out = {}
        for i, (_, name, pool) in enumerate(self.CONVS[:depth + 1]):
            h = self.convs[i](F.pad(h, (1, 1, 1, 1), mode="reflect"))
            if name in want:
                out[name] = h
            if i == depth:
                break
            h = F.relu(h)
            if pool:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        return out


def load_image(path):
    """PNG/JPEG -> (1,3,H,W) float in [-1,1], as ganedit reads it (v/127.5-1)."""
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(a / 127.5 - 1.0).permute(2, 0, 1).unsqueeze(0).contiguous()


def save_png(path, x):
    """(1,3,H,W) in [-1,1] -> PNG, with ganedit's rounding."""
    a = ((x[0].detach().permute(1, 2, 0).numpy() + 1.0) * 127.5 + 0.5)
    a = np.clip(np.floor(a), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(path)


def frozen(m):
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def project(G, vgg, target, args, seed):
    """One projection; returns (history [(total,pixel,perc)], z, image, wall
    seconds, CPU seconds of the process over the run, step of z)."""
    layers = [l for l in args.layers.split(",") if l]
    use_vgg = args.perceptual > 0
    with torch.no_grad():
        tfeat = vgg(target, layers) if use_vgg else {}
    if args.init_npy:  # a given start (e.g. the one ganedit gets with --init FILE.npy)
        z0 = torch.from_numpy(np.load(args.init_npy).astype(np.float32)).reshape(1, 100, 1, 1)
    else:
        gen = torch.Generator().manual_seed(seed)
        n = args.init_samples if args.init == "mean" else 1
        z0 = (torch.rand(n, 100, 1, 1, generator=gen) * 2 - 1).mean(0, keepdim=True)
    z = z0.clone().requires_grad_(True)

    def objective():
        img = G(z)
        pix = F.mse_loss(img, target)
        perc = torch.zeros(())
        if use_vgg:
            feat = vgg(img, layers)
            for l in layers:
                perc = perc + F.mse_loss(feat[l], tfeat[l])
        total = args.pixel * pix + args.perceptual * perc
        return total, pix, perc, img

    hist = []
    best = {"f": float("inf"), "step": 0, "z": None, "img": None}

    def keep(step, img):
        """Remembers the lowest-loss point seen (ganedit returns that one)."""
        if hist[-1][0] < best["f"]:
            best.update(f=hist[-1][0], step=step, z=z.detach().clone(), img=img.detach().clone())

    t0, c0 = time.perf_counter(), time.process_time()
    if args.optimizer == "adam":
        opt = torch.optim.Adam([z], lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
        for step in range(args.steps + 1):
            opt.zero_grad(set_to_none=True)
            total, pix, perc, img = objective()
            total.backward()  # the last gradient is unused; ganedit computes it too
            hist.append((total.item(), pix.item(), perc.item()))
            keep(step, img)
            if step == args.steps:
                break
            opt.step()
            with torch.no_grad():
                z.clamp_(-1.0, 1.0)
    else:
        opt = torch.optim.LBFGS([z], lr=1.0, max_iter=1, history_size=10,
                                tolerance_grad=1e-7, tolerance_change=1e-9,
                                line_search_fn="strong_wolfe")
        last = {}

        def closure():
            opt.zero_grad(set_to_none=True)
            total, pix, perc, img = objective()
            total.backward()
            last.update(total=total.item(), pix=pix.item(), perc=perc.item())
            return total

        with torch.no_grad():
            total, pix, perc, img = objective()
        hist.append((total.item(), pix.item(), perc.item()))
        keep(0, img)
        for step in range(args.steps):
            opt.step(closure)
            # the loss at the accepted point (the line search's last evaluation
            # is not always the accepted one, so evaluate it again: no grad)
            with torch.no_grad():
                total, pix, perc, img = objective()
            hist.append((total.item(), pix.item(), perc.item()))
            keep(step + 1, img)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.keep == "last":
        with torch.no_grad():
            return hist, z.detach(), G(z), secs, cpu, len(hist) - 1
    return hist, best["z"], best["img"], secs, cpu, best["step"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("targets", nargs="+", help="target images (64x64)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="../shared/weights/dcgan_grumpy_deluxe.pkl")
    ap.add_argument("--vgg", default="../shared/weights/vgg19_normalised_conv3_1.pth")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--pixel", type=float, default=0.3)
    ap.add_argument("--perceptual", type=float, default=0.7)
    ap.add_argument("--layers", default=",".join(ALL_LAYERS))
    ap.add_argument("--init", choices=["mean", "random"], default="mean")
    ap.add_argument("--init-samples", type=int, default=10)
    ap.add_argument("--init-npy", default=None,
                    help="start from this z (.npy, 100 floats) instead (every target)")
    ap.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the first target; target i uses seed+i")
    ap.add_argument("--keep", choices=["best", "last"], default="best",
                    help="return the lowest-loss point seen (as ganedit does) or the last")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--summary", default=None,
                    help="where to write the summary CSV (default OUT/summary.csv)")
    ap.add_argument("--names", default=None,
                    help="comma-separated output folder names (default: file stems)")
    args = ap.parse_args()
    for l in args.layers.split(","):
        if l not in ALL_LAYERS:
            sys.exit("project_torch.py: unknown layer '%s' (have %s)" % (l, ",".join(ALL_LAYERS)))

    torch.set_num_threads(args.threads)
    G = DeluxeGenerator()
    G.load_state_dict(torch.load(args.model, map_location="cpu"), strict=True)
    G = frozen(G)
    vgg = frozen(NormalisedVGG(torch.load(args.vgg, map_location="cpu")))

    names = args.names.split(",") if args.names else \
        [os.path.splitext(os.path.basename(t))[0] for t in args.targets]
    if len(names) != len(args.targets):
        sys.exit("project_torch.py: --names needs one name per target")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for i, (path, name) in enumerate(zip(args.targets, names)):
        target = load_image(path)
        if target.shape[-2:] != (64, 64):
            sys.exit("project_torch.py: %s is not 64x64" % path)
        hist, z, img, secs, cpu, at = project(G, vgg, target, args, args.seed + i)
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        save_png(os.path.join(d, "result.png"), img)
        save_png(os.path.join(d, "target.png"), target)
        np.save(os.path.join(d, "latent.npy"), z.reshape(1, 100).numpy().astype(np.float32))
        with open(os.path.join(d, "loss.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "total", "pixel", "perceptual"])
            for s, h in enumerate(hist):
                w.writerow([s, "%.8g" % h[0], "%.8g" % h[1], "%.8g" % h[2]])
        row = {"name": name, "target": path, "optimizer": args.optimizer,
               "steps": args.steps, "seed": args.seed + i,
               "start_total": hist[0][0], "final_total": hist[-1][0],
               "final_pixel": hist[-1][1], "final_perceptual": hist[-1][2],
               "kept_step": at, "kept_total": hist[at][0],
               "seconds": secs, "sec_per_step": secs / args.steps,
               "cpu_seconds": cpu}
        rows.append(row)
        print("%s: loss %.5g -> %.5g in %d steps, %.1f ms/step" %
              (name, hist[0][0], hist[-1][0], args.steps, 1000 * secs / args.steps),
              file=sys.stderr)
    with open(args.summary or os.path.join(args.out, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("%.8g" % v if isinstance(v, float) else v) for k, v in r.items()})


if __name__ == "__main__":
    main()
