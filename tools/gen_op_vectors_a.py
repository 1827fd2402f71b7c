"""gen_op_vectors_a.py - PyTorch reference vectors for conv2d, conv_transpose2d,
linear, bias_act and modulate (tests/test_ops_*.c of the "opsa" area).

Run with Debian's torch:  /usr/bin/python3 tools/gen_op_vectors_a.py
Writes tests/vectors/ops_a.safetensors.

Every case stores its float32 inputs, a fixed random weighting r, the forward
output y and the autograd gradients of L = sum(y * r) with respect to every
input (d_x, d_w, d_b, d_s), computed in float64 from the float32 inputs and
rounded to float32. The case parameters are stored as a float32 vector
"<op>/<case>/params" whose layout is documented beside each op below, so the
C test needs no JSON. bias_act follows StyleGAN2-ADA's bias_act 'ref' maths and
modulate its modulated_conv2d weight (de)modulation, both re-written here.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stvec  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "vectors",
                   "ops_a.safetensors")

gen = torch.Generator().manual_seed(20240501)


def rnd(*shape, scale=1.0):
    """float32 normal values, returned as float64 (exactly representable)."""
    return (torch.randn(*shape, generator=gen, dtype=torch.float32) * scale).double()


tensors = {}


def put(prefix, **kw):
    for k, v in kw.items():
        tensors[f"{prefix}/{k}"] = v.detach().float() if torch.is_tensor(v) else \
            torch.tensor(v, dtype=torch.float32)


def grads(y, inputs):
    r = rnd(*y.shape)
    loss = (y * r).sum()
    gs = torch.autograd.grad(loss, inputs)
    return r, gs


# ---- conv2d --------------------------------------------------------------
# params: n, c_in, h, w, c_out, kh, kw, stride, pad, pad_mode (0 zero, 1 reflect),
#         per_sample (0/1), has_bias (0/1)
CONV = [
    dict(n=2, c_in=3, h=7, w=6, c_out=4, k=3, stride=1, pad=1, mode=0, ps=0, bias=1),
    dict(n=1, c_in=4, h=9, w=8, c_out=5, k=3, stride=2, pad=1, mode=0, ps=0, bias=1),
    dict(n=2, c_in=3, h=8, w=7, c_out=2, k=3, stride=1, pad=1, mode=1, ps=0, bias=1),
    dict(n=2, c_in=3, h=6, w=6, c_out=4, k=3, stride=1, pad=0, mode=0, ps=1, bias=1),
    dict(n=2, c_in=5, h=5, w=5, c_out=3, k=1, stride=1, pad=0, mode=0, ps=1, bias=1),
    dict(n=1, c_in=3, h=8, w=8, c_out=4, k=4, stride=2, pad=1, mode=0, ps=0, bias=0),
    dict(n=2, c_in=2, h=9, w=7, c_out=3, k=3, stride=2, pad=1, mode=1, ps=0, bias=1),
    dict(n=2, c_in=3, h=7, w=9, c_out=4, k=3, stride=1, pad=1, mode=0, ps=1, bias=0),
    dict(n=1, c_in=2, h=9, w=9, c_out=2, k=5, stride=1, pad=2, mode=1, ps=0, bias=1),
]

for ci, c in enumerate(CONV):
    n, cin, cout, k = c["n"], c["c_in"], c["c_out"], c["k"]
    x = rnd(n, cin, c["h"], c["w"]).requires_grad_()
    wshape = (n, cout, cin, k, k) if c["ps"] else (cout, cin, k, k)
    w = rnd(*wshape, scale=1 / math.sqrt(cin * k * k)).requires_grad_()
    b = rnd(cout).requires_grad_() if c["bias"] else None
    xp = x
    pad = c["pad"]
    if c["mode"] == 1 and pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        pad = 0
    if c["ps"]:  # per-sample weights: the grouped-convolution trick of StyleGAN2
        y = F.conv2d(xp.reshape(1, n * cin, *xp.shape[2:]), w.reshape(n * cout, cin, k, k),
                     stride=c["stride"], padding=pad, groups=n)
        y = y.reshape(n, cout, *y.shape[2:])
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
    else:
        y = F.conv2d(xp, w, b, stride=c["stride"], padding=pad)
    ins = [x, w] + ([b] if b is not None else [])
    r, gs = grads(y, ins)
    params = [n, cin, c["h"], c["w"], cout, k, k, c["stride"], c["pad"], c["mode"], c["ps"],
              c["bias"]]
    put(f"conv2d/{ci}", params=params, x=x, w=w, r=r, y=y, d_x=gs[0], d_w=gs[1])
    if b is not None:
        put(f"conv2d/{ci}", b=b, d_b=gs[2])

# ---- conv_transpose2d ------------------------------------------------------
# params: n, c_in, h, w, c_out, kh, kw, stride, pad, per_sample, has_bias
CONVT = [
    dict(n=2, c_in=4, h=4, w=4, c_out=3, k=4, stride=2, pad=1, ps=0, bias=1),
    dict(n=1, c_in=3, h=5, w=3, c_out=2, k=3, stride=1, pad=0, ps=0, bias=1),
    dict(n=2, c_in=3, h=4, w=5, c_out=3, k=3, stride=2, pad=0, ps=1, bias=1),
    dict(n=2, c_in=6, h=1, w=1, c_out=3, k=4, stride=1, pad=0, ps=0, bias=0),
    dict(n=2, c_in=4, h=3, w=3, c_out=2, k=1, stride=1, pad=0, ps=1, bias=1),
    dict(n=1, c_in=2, h=5, w=4, c_out=3, k=3, stride=2, pad=1, ps=0, bias=1),
]

for ti, c in enumerate(CONVT):
    n, cin, cout, k = c["n"], c["c_in"], c["c_out"], c["k"]
    x = rnd(n, cin, c["h"], c["w"]).requires_grad_()
    wshape = (n, cin, cout, k, k) if c["ps"] else (cin, cout, k, k)
    w = rnd(*wshape, scale=1 / math.sqrt(cin * k * k)).requires_grad_()
    b = rnd(cout).requires_grad_() if c["bias"] else None
    if c["ps"]:
        y = F.conv_transpose2d(x.reshape(1, n * cin, c["h"], c["w"]),
                               w.reshape(n * cin, cout, k, k), stride=c["stride"],
                               padding=c["pad"], groups=n)
        y = y.reshape(n, cout, *y.shape[2:])
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
    else:
        y = F.conv_transpose2d(x, w, b, stride=c["stride"], padding=c["pad"])
    ins = [x, w] + ([b] if b is not None else [])
    r, gs = grads(y, ins)
    params = [n, cin, c["h"], c["w"], cout, k, k, c["stride"], c["pad"], c["ps"], c["bias"]]
    put(f"convt2d/{ti}", params=params, x=x, w=w, r=r, y=y, d_x=gs[0], d_w=gs[1])
    if b is not None:
        put(f"convt2d/{ti}", b=b, d_b=gs[2])

# ---- linear ----------------------------------------------------------------
# params: n, in, out, w_gain, b_gain, has_bias
LIN = [
    dict(n=3, i=7, o=5, lr=1.0, bias=1),
    dict(n=2, i=6, o=4, lr=0.01, bias=1),
    dict(n=4, i=5, o=9, lr=1.0, bias=0),
]
for li, c in enumerate(LIN):
    x = rnd(c["n"], c["i"]).requires_grad_()
    w = rnd(c["o"], c["i"], scale=1 / c["lr"]).requires_grad_()
    b = rnd(c["o"]).requires_grad_() if c["bias"] else None
    # the gains as the C side sees them (float32)
    wg32 = float(np.float32(c["lr"] / math.sqrt(c["i"])))
    bg32 = float(np.float32(c["lr"]))
    y = x.matmul((w * wg32).t())
    if b is not None:
        y = y + b * bg32
    ins = [x, w] + ([b] if b is not None else [])
    r, gs = grads(y, ins)
    put(f"linear/{li}", params=[c["n"], c["i"], c["o"], wg32, bg32, c["bias"]], x=x, w=w, r=r,
        y=y, d_x=gs[0], d_w=gs[1])
    if b is not None:
        put(f"linear/{li}", b=b, d_b=gs[2])

# ---- bias_act ----------------------------------------------------------------
# params: n, c, spatial, act (0 linear, 1 relu, 2 lrelu, 3 tanh), alpha, gain, b_gain,
#         clamp (-1 none), has_bias
ACTS = {0: lambda v, a: v, 1: lambda v, a: F.relu(v), 2: lambda v, a: F.leaky_relu(v, a),
        3: lambda v, a: torch.tanh(v)}
SQ2 = float(np.float32(math.sqrt(2)))
BA = [
    dict(n=2, c=3, sp=5, act=0, alpha=0.0, gain=1.0, bg=1.0, clamp=-1, bias=1),
    dict(n=2, c=3, sp=6, act=1, alpha=0.0, gain=SQ2, bg=1.0, clamp=-1, bias=1),
    dict(n=2, c=4, sp=9, act=2, alpha=0.2, gain=SQ2, bg=1.0, clamp=0.8, bias=1),
    dict(n=3, c=2, sp=4, act=3, alpha=0.0, gain=1.0, bg=1.0, clamp=-1, bias=0),
    dict(n=3, c=5, sp=1, act=2, alpha=0.2, gain=SQ2, bg=0.01, clamp=-1, bias=1),
    dict(n=1, c=3, sp=8, act=3, alpha=0.0, gain=2.0, bg=1.0, clamp=1.5, bias=1),
]
for ai, c in enumerate(BA):
    x = rnd(c["n"], c["c"], c["sp"]).requires_grad_()
    b = rnd(c["c"], scale=(1 / c["bg"]) * 0.5).requires_grad_() if c["bias"] else None
    v = x
    if b is not None:
        v = v + (b * c["bg"]).reshape(1, -1, 1)
    y = ACTS[c["act"]](v, c["alpha"])
    if c["gain"] != 1:
        y = y * c["gain"]
    if c["clamp"] >= 0:
        y = y.clamp(-c["clamp"], c["clamp"])
        assert (y.abs() == c["clamp"]).any(), "no element was clamped"
    ins = [x] + ([b] if b is not None else [])
    r, gs = grads(y, ins)
    put(f"bias_act/{ai}", params=[c["n"], c["c"], c["sp"], c["act"], c["alpha"], c["gain"],
                                  c["bg"], c["clamp"], c["bias"]], x=x, r=r, y=y, d_x=gs[0])
    if b is not None:
        put(f"bias_act/{ai}", b=b, d_b=gs[1])

# ---- modulate ----------------------------------------------------------------
# params: n, c_out, c_in, k, demod
MOD = [
    dict(n=2, co=3, ci=4, k=3, demod=1),
    dict(n=2, co=3, ci=4, k=3, demod=0),
    dict(n=1, co=5, ci=6, k=1, demod=1),
    dict(n=3, co=4, ci=2, k=3, demod=1),
]
for mi, c in enumerate(MOD):
    w = rnd(c["co"], c["ci"], c["k"], c["k"]).requires_grad_()
    s = (rnd(c["n"], c["ci"], scale=0.5) + 1.0).requires_grad_()
    wm = w.unsqueeze(0) * s.reshape(c["n"], 1, -1, 1, 1)
    if c["demod"]:
        d = (wm.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        wm = wm * d.reshape(c["n"], -1, 1, 1, 1)
    r, gs = grads(wm, [s, w])
    put(f"modulate/{mi}", params=[c["n"], c["co"], c["ci"], c["k"], c["demod"]], w=w, s=s, r=r,
        y=wm, d_s=gs[0], d_w=gs[1])

stvec.save(OUT, tensors, metadata={
    "generator": "tools/gen_op_vectors_a.py",
    "torch": torch.__version__,
    "precision": "float64 maths from float32 inputs, stored as float32",
    "loss": "L = sum(y * r); d_* = dL/d*",
})
print(f"wrote {OUT}: {len(tensors)} tensors, {os.path.getsize(OUT)} bytes")
