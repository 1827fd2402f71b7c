"""conv_torch.py - the PyTorch side of bench/conv_bench.c: the same VGG-19
conv shapes and passes (forward, backward-data, backward-weights, each on its
own through aten.convolution_backward's output mask), batch 1, float32,
median of repeats, GFLOP/s. PyTorch starts with 1 thread here, so the thread
count is set explicitly (default 2).

Run with Debian's torch: /usr/bin/python3 bench/conv_torch.py [threads] [min_seconds]
Prints lines "layer input spatial pass ms gflops best_ms best_gflops" as
conv_bench does (median, then best of the repeats).
"""
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
min_s = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
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


with torch.no_grad():
    for layer, inp, cin, cout, hw in CASES:
        x = torch.randn(1, cin, hw, hw)
        w = torch.randn(cout, cin, 3, 3)
        b = torch.zeros(cout)
        dy = torch.randn(1, cout, hw, hw)
        flops = 2.0 * cout * cin * 9 * hw * hw
        passes = [("forward", lambda: F.conv2d(x, w, b, padding=1)),
                  ("backward_data", lambda: bwd(dy, x, w, [True, False, False])),
                  ("backward_weights", lambda: bwd(dy, x, w, [False, True, False]))]
        for name, fn in passes:
            fn()  # warm-up
            ts = []
            start = time.perf_counter()
            while len(ts) < 201 and (len(ts) < 5 or time.perf_counter() - start < min_s):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            ts.sort()
            med, best = ts[len(ts) // 2], ts[0]
            print(f"{layer} {inp}x{inp} {hw}x{hw} {name} {med * 1e3:.3f} {flops / med * 1e-9:.1f} "
                  f"{best * 1e3:.3f} {flops / best * 1e-9:.1f}")
            sys.stdout.flush()
