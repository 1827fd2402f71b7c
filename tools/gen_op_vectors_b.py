#!/usr/bin/python3
"""gen_op_vectors_b.py - PyTorch reference vectors for the second group of ops
(instance norm, max/avg pool, nearest upsample, upfirdn2d, noise injection,
2nd-moment normalisation, masked L2/L1 losses, Gram matrices).

Run with Debian's torch:  /usr/bin/python3 tools/gen_op_vectors_b.py
Writes tests/vectors/ops_b.safetensors (read by tests/test_ops_*.c).

Inputs are drawn in float32 and stored as they are; every output and
gradient is computed in float64 from those exact values, then stored as
float32. Gradients are of L = sum(y * r) for a stored random r (losses: of the
scalar loss itself). upfirdn2d is computed by a small re-implementation,
written here, of the steps of NVlabs stylegan2-ada-pytorch's
torch_utils/ops/upfirdn2d.py `_upfirdn2d_ref` (zero-stuff, pad/crop, flip the
filter unless flip_filter, depthwise conv2d, stride) using only torch ops.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stvec  # noqa: E402

torch.manual_seed(20240611)
out = {}
meta = {"generator": "tools/gen_op_vectors_b.py", "torch": torch.__version__,
        "precision": "inputs float32, computed in float64, stored float32"}


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def f64(t):
    return t.double().requires_grad_(True)


def grad_of(fn, *inputs):
    """y = fn(inputs in float64), r ~ N(0,1) float32, grads of sum(y r)."""
    xs = [f64(t) for t in inputs]
    y = fn(*xs)
    r = randn(*y.shape)
    (y * r.double()).sum().backward()
    return y.detach(), r, [x.grad for x in xs]


# ---- instance norm -------------------------------------------------------
x = randn(2, 3, 5, 7) * 2 + 0.5
y, r, (dx,) = grad_of(lambda t: torch.nn.InstanceNorm2d(3, eps=1e-5, affine=False)(t), x)
out.update(inorm_x=x, inorm_y=y, inorm_r=r, inorm_dx=dx)

# ---- max pool 2x2 s2, ceil and floor, odd sizes -------------------------
for tag, shape in (("a", (2, 2, 7, 9)), ("b", (1, 3, 6, 5))):
    x = randn(*shape)
    out["maxpool_%s_x" % tag] = x
    for mode, ceil in (("ceil", True), ("floor", False)):
        y, r, (dx,) = grad_of(lambda t: F.max_pool2d(t, 2, 2, ceil_mode=ceil), x)
        out["maxpool_%s_%s_y" % (tag, mode)] = y
        out["maxpool_%s_%s_r" % (tag, mode)] = r
        out["maxpool_%s_%s_dx" % (tag, mode)] = dx

# ---- avg pool 2x2 s2 (mask pooling) --------------------------------------
# nn.AvgPool2d(2, ceil_mode=True), padding 0, count_include_pad default True:
# PyTorch clips a window to (input + padding) before counting, so with
# padding 0 a partial window at the edge is divided by the number of input
# elements it covers. Checked here: a ones input must pool to ones.
ones = torch.ones(1, 1, 5, 7, dtype=torch.float64)
assert torch.all(F.avg_pool2d(ones, 2, 2, ceil_mode=True) == 1.0)
x = torch.rand(2, 2, 7, 9, dtype=torch.float32)
out["avgpool_x"] = x
for mode, ceil in (("ceil", True), ("floor", False)):
    y, r, (dx,) = grad_of(lambda t: torch.nn.AvgPool2d(2, ceil_mode=ceil)(t), x)
    out["avgpool_%s_y" % mode] = y
    out["avgpool_%s_r" % mode] = r
    out["avgpool_%s_dx" % mode] = dx

# ---- nearest upsample x2 -------------------------------------------------
x = randn(2, 3, 4, 5)
y, r, (dx,) = grad_of(lambda t: F.interpolate(t, scale_factor=2, mode="nearest"), x)
out.update(upsample_x=x, upsample_y=y, upsample_r=r, upsample_dx=dx)


# ---- upfirdn2d -------------------------------------------------------------
def upfirdn2d_ref(x, f, up, down, pad, flip_filter, gain):
    """The steps of _upfirdn2d_ref for a 2-D filter, in plain torch."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = pad
    # 1. zero-stuff: each pixel followed by up-1 zeros, in both directions
    z = torch.zeros(n, c, h, up, w, up, dtype=x.dtype)
    z[:, :, :, 0, :, 0] = x
    x = z.reshape(n, c, h * up, w * up)
    # 2. pad the positive parts, then crop the negative parts
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0):x.shape[2] - max(-py1, 0), max(-px0, 0):x.shape[3] - max(-px1, 0)]
    # 3. a 2-D filter is scaled by gain ** (ndim / 2) = gain; conv2d is a
    #    correlation, so the filter is flipped unless flip_filter
    k = f.to(x.dtype) * gain
    if not flip_filter:
        k = k.flip([0, 1])
    x = F.conv2d(x, k[None, None].repeat(c, 1, 1, 1), groups=c)
    # 4. keep every down-th pixel
    return x[:, :, ::down, ::down]


k1 = torch.tensor([1.0, 3.0, 3.0, 1.0])
f_sg = torch.outer(k1, k1)
f_sg = (f_sg / f_sg.sum()).float()
f_asym = torch.rand(3, 4, dtype=torch.float32) + 0.1
cases = {
    # upsample2d with [1,3,3,1]: px0 = (4+2-1)//2 = 2, px1 = (4-2)//2 = 1, gain up^2
    "up2": dict(x=(2, 3, 5, 6), f=f_sg, up=2, down=1, pad=(2, 1, 2, 1), flip=0, gain=4.0),
    # downsample2d with [1,3,3,1]: p = (4-2+1)//2 = 1 and (4-2)//2 = 1 each side
    "down2": dict(x=(2, 3, 8, 7), f=f_sg, up=1, down=2, pad=(1, 1, 1, 1), flip=0, gain=1.0),
    # plain filter, non-symmetric so that the flip convention shows
    "plain": dict(x=(1, 2, 6, 7), f=f_asym, up=1, down=1, pad=(1, 2, 0, 1), flip=0, gain=1.5),
    # correlation (flip_filter) with crops (negative padding)
    "flipcrop": dict(x=(1, 2, 6, 7), f=f_asym, up=1, down=1, pad=(-1, 2, 1, -1), flip=1, gain=0.8),
    # general up 3 / down 2 with a non-symmetric filter
    "up3down2": dict(x=(1, 2, 4, 5), f=f_asym, up=3, down=2, pad=(2, 0, 1, 2), flip=0, gain=2.0),
}
for name, cs in cases.items():
    x = randn(*cs["x"])
    def op(t, cs=cs):
        return upfirdn2d_ref(t, cs["f"], cs["up"], cs["down"], cs["pad"], cs["flip"], cs["gain"])
    y, r, (dx,) = grad_of(op, x)
    p = "upfirdn_%s_" % name
    out[p + "x"] = x
    out[p + "f"] = cs["f"]
    out[p + "y"] = y
    out[p + "r"] = r
    out[p + "dx"] = dx
    # up, down, px0, px1, py0, py1, flip, gain
    out[p + "params"] = torch.tensor([cs["up"], cs["down"], *cs["pad"], cs["flip"], cs["gain"]])

# ---- noise injection -----------------------------------------------------
strength = 0.7
for tag, nn_ in (("per", 2), ("shared", 1)):
    x = randn(2, 3, 4, 5)
    noise = randn(nn_, 1, 4, 5)
    xs = f64(x)
    s = torch.tensor(strength, dtype=torch.float64, requires_grad=True)
    y = xs + s * noise.double()
    r = randn(*y.shape)
    (y * r.double()).sum().backward()
    p = "noise_%s_" % tag
    out.update({p + "x": x, p + "noise": noise, p + "y": y.detach(), p + "r": r,
                p + "dx": xs.grad, p + "dstrength": s.grad.reshape(1)})
out["noise_strength"] = torch.tensor([strength])

# ---- normalize_2nd_moment ------------------------------------------------
x = randn(3, 16) * 1.7
y, r, (dx,) = grad_of(lambda t: t * (t.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt(), x)
out.update(norm2_x=x, norm2_y=y, norm2_r=r, norm2_dx=dx)

# ---- masked L2 / L1 ------------------------------------------------------
a = randn(2, 3, 4, 5)
b = randn(2, 3, 4, 5)
mask = torch.rand(2, 1, 4, 5, dtype=torch.float32)
scale = 0.37
out.update(loss_a=a, loss_b=b, loss_mask=mask, loss_scale=torch.tensor([scale]))
for name, fn in (("l2", lambda d: d.square()), ("l1", lambda d: d.abs())):
    for mtag, m in (("m", mask), ("nm", torch.ones_like(mask))):
        at = f64(a)
        loss = scale * (m.double() * fn(at - b.double())).sum()
        loss.backward()
        out["loss_%s_%s" % (name, mtag)] = loss.detach().reshape(1)
        out["loss_%s_%s_da" % (name, mtag)] = at.grad
    # the same distances as torch's own losses (unmasked, mean reduction)
    ref = (F.mse_loss if name == "l2" else F.l1_loss)(a.double(), b.double())
    assert abs(float(ref) * a.numel() * scale - float(out["loss_%s_nm" % name])) < 1e-9

# ---- Gram matrices -------------------------------------------------------
x = randn(2, 4, 6, 5)
gmask = torch.rand(2, 1, 6, 5, dtype=torch.float32)
gscale = 1.0 / (4 * 30)
out.update(gram_x=x, gram_mask=gmask, gram_scale=torch.tensor([gscale]))
for mtag, m in (("nm", None), ("m", gmask)):
    xs = f64(x)
    feat = xs if m is None else xs * m.double()
    feat = feat.reshape(2, 4, 30)
    g = gscale * feat @ feat.transpose(1, 2)
    r = randn(*g.shape)
    (g * r.double()).sum().backward()
    out["gram_%s_g" % mtag] = g.detach()
    out["gram_%s_r" % mtag] = r
    out["gram_%s_dx" % mtag] = xs.grad

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vectors",
                    "ops_b.safetensors")
stvec.save(path, out, meta)
print("wrote %s: %d tensors, %d bytes" % (os.path.normpath(path), len(out), os.path.getsize(path)))
