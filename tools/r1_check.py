"""r1_check.py - the reference for tools/r1_check.c: R1's weight gradient of
a training checkpoint's StyleGAN2 discriminator by PyTorch double backward,
d/dtheta mean_i |grad_{x_i} sum_j D(x_j)|^2 on the first 16 images (name
order) of a folder, in float64, with the discriminator of
tools/gen_sg2_disc_vectors.py. Writes x, logits, r1 and grad.<name>.

  /usr/bin/python3 tools/r1_check.py CKPT DATA_DIR RES OUT.safetensors

Images must already be RES x RES (cats64 at 64). Minutes on one core.
"""
import glob
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_sg2_disc_vectors as G  # noqa: E402
import stvec  # noqa: E402


def main():
    ck, data, res, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    G.R = res
    T = stvec.load(ck)
    P = {k[2:]: torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=True)
         for k, v in T.items() if k.startswith("D.")}
    imgs = []
    for f in sorted(glob.glob(os.path.join(data, "*")))[:16]:
        im = Image.open(f).convert("RGB")
        if im.size != (res, res):
            sys.exit("%s is not %dx%d" % (f, res, res))
        imgs.append(np.asarray(im, dtype=np.float64).transpose(2, 0, 1) / 127.5 - 1)
    x = torch.tensor(np.stack(imgs)).float().double().requires_grad_(True)
    logits = G.disc(P, x)
    g, = torch.autograd.grad(logits.sum(), x, create_graph=True)
    pen = g.square().sum() / x.shape[0]
    names = list(P)
    grads = torch.autograd.grad(pen, [P[n] for n in names], allow_unused=True)
    o = {"x": x.detach(), "logits": logits.detach(), "r1": pen.detach().reshape(1)}
    for n, t in zip(names, grads):
        o["grad." + n] = t if t is not None else torch.zeros_like(P[n])
    stvec.save(out, o)
    print("r1", float(pen))


if __name__ == "__main__":
    main()
