"""conv_torch.py - the PyTorch side of bench/conv_bench.c: the same VGG-19
conv shapes and passes (forward, backward-data, backward-weights, each on its
own through aten.convolution_backward's output mask), and the same
StyleGAN2 64x64 modulated layers as one editing step each ("unfused_step":
x * styles -> conv with the shared weight -> * demodulation, then autograd
to x and the styles, the form bench/model_torch.py times; the weight's
squared tap sums and, for the up-sampling layer, its transposed copy are
prepared once, as a model would). Batch 1, float32, median of repeats,
GFLOP/s counted as conv_bench counts them. PyTorch starts with 1 thread
here, so the thread count is set explicitly (default 2).

Run with Debian's torch:
  /usr/bin/python3 bench/conv_torch.py [threads] [min_seconds] [all|vgg|sg2] [wall|cpu]
Prints lines "layer input spatial pass ms gflops best_ms best_gflops" as
conv_bench does (median, then best of the repeats).
"""
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
min_s = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
which = sys.argv[3] if len(sys.argv) > 3 else "all"
# "cpu": process CPU time instead of wall time (as conv_bench's "cpu")
clock = time.process_time if len(sys.argv) > 4 and sys.argv[4] == "cpu" else time.perf_counter
torch.set_num_threads(threads)
torch.manual_seed(1)

CASES = [("conv1_2", 64, 64, 64, 64), ("conv1_2", 256, 64, 64, 256),
         ("conv3_1", 64, 128, 256, 16), ("conv3_1", 256, 128, 256, 64)]

print(f"# torch {torch.__version__} F.conv2d / aten.convolution_backward, "
      f"{torch.get_num_threads()} threads, mkldnn {torch.backends.mkldnn.is_available()}")
print("# layer input spatial pass ms gflops best_ms best_gflops")


def bwd(dy, x, w, mask):
    return torch.ops.aten.convolution_backward(dy, x, w, [w.shape[0]], [1, 1], [1, 1], [1, 1],
                                               False, [0, 0], 1, mask)




def measure(layer, inp, hw, name, flops, fn):
    fn()  # warm-up
    ts = []
    start = clock()
    while len(ts) < 201 and (len(ts) < 5 or clock() - start < min_s):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    ts.sort()
    med, best = ts[len(ts) // 2], ts[0]
    print(f"{layer} {inp}x{inp} {hw}x{hw} {name} {med * 1e3:.3f} {flops / med * 1e-9:.1f} "
          f"{best * 1e3:.3f} {flops / best * 1e-9:.1f}")
    sys.stdout.flush()


def vgg():
    with torch.no_grad():
        for layer, inp, cin, cout, hw in CASES:
            x = torch.randn(1, cin, hw, hw)
            w = torch.randn(cout, cin, 3, 3)
            b = torch.zeros(cout)
            dy = torch.randn(1, cout, hw, hw)
            flops = 2.0 * cout * cin * 9 * hw * hw
            measure(layer, inp, hw, "forward", flops, lambda: F.conv2d(x, w, b, padding=1))
            measure(layer, inp, hw, "backward_data", flops,
                    lambda: bwd(dy, x, w, [True, False, False]))
            measure(layer, inp, hw, "backward_weights", flops,
                    lambda: bwd(dy, x, w, [False, True, False]))


SG2 = [("sg2_b4_conv1", 4, 512, 512, 0), ("sg2_b8_conv0up", 4, 512, 512, 1),
       ("sg2_b8_conv1", 8, 512, 512, 0), ("sg2_b16_conv0up", 8, 512, 512, 1),
       ("sg2_b16_conv1", 16, 512, 512, 0), ("sg2_b32_conv0up", 16, 512, 512, 1),
       ("sg2_b32_conv1", 32, 512, 512, 0), ("sg2_b64_conv0up", 32, 512, 256, 1),
       ("sg2_b64_conv1", 64, 256, 256, 0)]


def sg2():
    for layer, hw, cin, cout, up in SG2:
        w = torch.randn(cout, cin, 3, 3)
        wsq = w.square().sum((2, 3))                   # (O, I), once per weight
        wt = w.transpose(0, 1).contiguous()            # (I, O, 3, 3) for the up layer, once
        x = torch.randn(1, cin, hw, hw, requires_grad=True)
        s = (torch.randn(1, cin) * 0.3).requires_grad_(True)
        oh = 2 * (hw - 1) + 3 if up else hw
        dy = torch.randn(1, cout, oh, oh)

        def step():
            d = (F.linear(s.square(), wsq) + 1e-8).rsqrt()
            xs = x * s[:, :, None, None]
            u = F.conv_transpose2d(xs, wt, stride=2) if up else F.conv2d(xs, w, padding=1)
            y = u * d[:, :, None, None]
            return torch.autograd.grad(y, [x, s], dy)

        flops = 2 * 2.0 * cout * cin * 9 * (hw * hw if up else oh * oh)
        measure(layer, 64, oh, "unfused_step", flops, step)


if which != "sg2":
    vgg()
if which != "vgg":
    sg2()
