"""gen_sg2_disc_vectors.py - reference vectors for the StyleGAN2-ADA
discriminator (src/models/sg2_disc.c): tests/vectors/sg2_disc.safetensors.

A small float64 re-implementation, written from the description of
stylegan2-ada-pytorch's training/networks.py Discriminator (architecture
'resnet', c_dim 0, mbstd group 4 / 1 channel, conv_clamp 256, lrelu 0.2 with
gain sqrt 2, equalised learning rate), at R = 16, channel_base 128,
channel_max 16 (C16 = 8, C8 = 16, C4 = 16), batch 8 (two mbstd groups).
Weights randn, biases randn * 0.5 (non-zero so they are tested), x randn *
0.5, dlogits randn. Saves, as float32:
  D.<name>      the weights (ADA's names, no resample_filter buffers)
  x, dlogits, logits
  dx            d(sum dlogits * logits)/dx
  grad.<name>   the weight gradients
and the same for x * 400 under "big." (big.x, big.logits, big.dx,
big.grad.<name>): there the conv_clamp (256) cuts many activations, so the
clamp's forward and its zero gradient are tested too. And R1 at x:
  r1.value      mean_i |grad_{x_i} sum_j D(x_j)|^2
  r1.grad.<name> its weight gradient by double backward (autograd: the leaky
                ReLU and clamp patterns held fixed)
Run with /usr/bin/python3 (Debian's python3-torch) from the repository root.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stvec  # noqa: E402

R, BASE, CMAX, N = 16, 128, 16, 8
CLAMP = 256.0


def ch(r):
    return min(BASE // r, CMAX)


def fir():
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    f = torch.outer(k, k)
    return f / f.sum()


def blur(x, pad, down):
    """upfirdn2d with the [1,3,3,1] filter (symmetric, so flipping is moot)."""
    c = x.shape[1]
    x = F.pad(x, [pad, pad, pad, pad])
    w = fir().flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, w, groups=c)
    return x[:, :, ::down, ::down]


def act(x, b, lrelu, gain, clamp):
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.dim() - 2))
    if lrelu:
        x = F.leaky_relu(x, 0.2)
    x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def conv(x, w, stride=1, pad=0):
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    return F.conv2d(x, w / math.sqrt(fan_in), stride=stride, padding=pad)


def mbstd(x, group=4):
    n, c, h, w = x.shape
    g = min(group, n)
    y = x.reshape(g, -1, c, h, w)  # sample i in group i % (n / g)
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()
    y = y.mean(dim=[1, 2, 3])  # (n / g)
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


def disc(P, img):
    x = None
    r = R
    s2, sh = math.sqrt(2.0), math.sqrt(0.5)
    while r >= 8:
        p = "b%d." % r
        if x is None:
            x = act(conv(img, P[p + "fromrgb.weight"]), P[p + "fromrgb.bias"], True, s2, CLAMP)
        y = conv(blur(x, 1, 2), P[p + "skip.weight"]) * sh  # linear, no bias, no clamp
        x = act(conv(x, P[p + "conv0.weight"], pad=1), P[p + "conv0.bias"], True, s2, CLAMP)
        x = conv(blur(x, 2, 1), P[p + "conv1.weight"], stride=2)
        x = act(x, P[p + "conv1.bias"], True, s2 * sh, CLAMP * sh)
        x = y + x
        r //= 2
    x = mbstd(x)
    x = act(conv(x, P["b4.conv.weight"], pad=1), P["b4.conv.bias"], True, s2, CLAMP)
    x = x.flatten(1)
    wfc = P["b4.fc.weight"]
    x = act(x @ wfc.t() / math.sqrt(wfc.shape[1]), P["b4.fc.bias"], True, s2, None)
    wo = P["b4.out.weight"]
    return (x @ wo.t() / math.sqrt(wo.shape[1]) + P["b4.out.bias"]).reshape(-1)


def shapes():
    out = []
    r = R
    while r >= 8:
        t, o = ch(r), ch(r // 2)
        p = "b%d." % r
        if r == R:
            out += [(p + "fromrgb.weight", (t, 3, 1, 1)), (p + "fromrgb.bias", (t,))]
        out += [(p + "conv0.weight", (t, t, 3, 3)), (p + "conv0.bias", (t,)),
                (p + "conv1.weight", (o, t, 3, 3)), (p + "conv1.bias", (o,)),
                (p + "skip.weight", (o, t, 1, 1))]
        r //= 2
    c4 = ch(4)
    out += [("b4.conv.weight", (c4, c4 + 1, 3, 3)), ("b4.conv.bias", (c4,)),
            ("b4.fc.weight", (c4, c4 * 16)), ("b4.fc.bias", (c4,)),
            ("b4.out.weight", (1, c4)), ("b4.out.bias", (1,))]
    return out


def main():
    torch.manual_seed(2026)
    P = {}
    for name, shape in shapes():
        v = torch.randn(shape, dtype=torch.float64)
        if name.endswith(".bias"):
            v = v * 0.5
        # round to float32 first: the C side sees exactly these values
        P[name] = v.float().double().requires_grad_(True)
    x = (torch.randn(N, 3, R, R, dtype=torch.float64) * 0.5).float().double().requires_grad_(True)
    dl = torch.randn(N, dtype=torch.float64).float().double()
    out = {}
    for name, _ in shapes():
        out["D." + name] = P[name]
    out["dlogits"] = dl
    for pre, scale in (("", 1.0), ("big.", 400.0)):
        xs = (x.detach() * scale).float().double().requires_grad_(True)
        for name, _ in shapes():
            P[name].grad = None
        logits = disc(P, xs)
        (logits * dl).sum().backward()
        out[pre + "x"] = xs
        out[pre + "logits"] = logits
        out[pre + "dx"] = xs.grad
        for name, _ in shapes():
            out[pre + "grad." + name] = P[name].grad
    # R1: d/dtheta of mean_i |grad_{x_i} sum_j D(x_j)|^2 at x, by double backward
    xs = x.detach().requires_grad_(True)
    g, = torch.autograd.grad(disc(P, xs).sum(), xs, create_graph=True)
    pen = g.square().sum() / N
    names = [name for name, _ in shapes()]
    r1g = torch.autograd.grad(pen, [P[n] for n in names], allow_unused=True)
    out["r1.value"] = pen.detach().reshape(1)
    for name, t in zip(names, r1g):
        out["r1.grad." + name] = t if t is not None else torch.zeros_like(P[name])
    path = os.path.join("tests", "vectors", "sg2_disc.safetensors")
    stvec.save(path, out, {"generator": "tools/gen_sg2_disc_vectors.py",
                           "R": R, "channel_base": BASE, "channel_max": CMAX, "n": N})
    print(path, os.path.getsize(path), "bytes; logits", logits.detach().numpy())


if __name__ == "__main__":
    main()
