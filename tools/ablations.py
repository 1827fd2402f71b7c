#!/usr/bin/python3
"""ablations.py - the ablations of issue #4 item 6, run with `ganedit project`.

On ../shared/data/sketches/target_{0,2,4}.png with the real DCGAN, each
setting changed one at a time from the spec's defaults (Adam lr 0.003,
pixel 0.3 + perceptual 0.7 on conv1_1..conv3_1, z, mean-of-10 start):

  * perceptual layer sets (--layers),
  * loss weights: perceptual 0 / 0.3 / 0.7 / 1 with pixel = 1 - perceptual,
  * start: 1 sample vs the mean of 10 (--init-samples),
  * optimiser: Adam vs L-BFGS (fewer steps; every step runs a line search),
  * latent space: z for the DCGAN (its only space); z, w and w+ for a
    StyleGAN2 generator. No trained StyleGAN2 exists in the project yet, so
    ../shared/ref/stylegan2_g2.safetensors (RANDOM weights, 64x64) is used
    only to show that the machinery runs: its numbers say nothing about
    which latent space is better.

Every result is scored with one fixed measure, whatever loss produced it:
PSNR against the target (8-bit PNGs) and `ganedit distance` (normalised
VGG-19, conv1_1..conv3_1). Image i uses seed i in every setting, so the
settings start from the same latent (except the 1-sample start).

Writes OUT/ablations.md (a markdown table), OUT/ablations.json, and
IMAGES/eval_ablations.png (one row per target: the target, then one column per
setting in the table's order).

Usage (from the repository root):
  nice -n 10 /usr/bin/python3 tools/ablations.py --ganedit build/ganedit \
      --out /tmp/ablations --images docs/images
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_projection as ev  # noqa: E402  (shared helpers)

SG2 = ev.SHARED + "/ref/stylegan2_g2.safetensors"

ALL = "conv1_1,conv1_2,conv2_1,conv2_2,conv3_1"


def settings(adam_steps, lbfgs_steps):
    """(group, label, extra ganedit args, steps)."""
    s = [("default", "spec defaults (all 5 layers, 0.3/0.7, mean of 10, Adam)", [], adam_steps)]
    for layers in ["conv1_1", "conv1_1,conv1_2", "conv1_1,conv1_2,conv2_1,conv2_2", "conv3_1"]:
        s.append(("layers", "layers " + layers, ["--layers", layers], adam_steps))
    for perc in ["0", "0.3", "1"]:
        pix = "%g" % (1 - float(perc))
        s.append(("weights", "perceptual %s, pixel %s" % (perc, pix),
                  ["--perceptual", perc, "--pixel", pix], adam_steps))
    s.append(("init", "start: 1 sample", ["--init-samples", "1"], adam_steps))
    s.append(("optimizer", "L-BFGS, %d steps" % lbfgs_steps, ["--optimizer", "lbfgs"], lbfgs_steps))
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--ganedit", default="build/ganedit")
    ap.add_argument("--steps", type=int, default=200, help="Adam steps per run")
    ap.add_argument("--lbfgs-steps", type=int, default=50)
    ap.add_argument("--sg-steps", type=int, default=20, help="steps of the StyleGAN2 runs")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.images, exist_ok=True)
    t0 = time.perf_counter()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    R = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": vars(args), "load_before": ev.loadavg(),
         "runs": [], "stylegan2": []}
    log = open(os.path.join(args.out, "log.txt"), "a")
    names = ["target_0", "target_2", "target_4"]
    grid_rows = [[ev.read_rgb(t) for t in ev.TARGETS]]
    for i, (group, label, extra, steps) in enumerate(settings(args.steps, args.lbfgs_steps)):
        per = []
        for seed, (name, path) in enumerate(zip(names, ev.TARGETS)):
            d = os.path.join(args.out, "run%02d" % i, name)
            r = ev.ganedit_project(args.ganedit, path, d, seed, steps, extra=extra, log=log)
            r["psnr"] = ev.psnr(r["result"], path)
            r["distance"] = ev.distance(args.ganedit, r["result"], path, log=log)
            r["name"] = name
            per.append(r)
        row = {"group": group, "label": label, "args": extra, "steps": steps, "per_target": per}
        for k in ("psnr", "distance", "sec_per_step", "evals", "cpu"):
            row[k] = float(np.mean([r[k] for r in per]))
        row["loss_decreased"] = all(r["final_total"] < r["start_total"] for r in per)
        R["runs"].append(row)
        grid_rows.append([ev.read_rgb(r["result"]) for r in per])
        print("%-60s psnr %.2f dist %.2f %.1f ms/step" % (label, row["psnr"], row["distance"],
                                                         1e3 * row["sec_per_step"]), file=sys.stderr)
    # StyleGAN2 (random weights): the latent-space machinery only
    sg_row = []
    for space in ["z", "w", "w+"]:
        d = os.path.join(args.out, "sg2_" + space.replace("+", "plus"))
        r = ev.ganedit_project(args.ganedit, ev.TARGETS[0], d, 0, args.sg_steps,
                               extra=["--latent", space], log=log, model=SG2)
        r["psnr"] = ev.psnr(r["result"], ev.TARGETS[0])
        r["distance"] = ev.distance(args.ganedit, r["result"], ev.TARGETS[0], log=log)
        r["space"] = space
        R["stylegan2"].append(r)
        sg_row.append(ev.read_rgb(r["result"]))
        print("stylegan2 (random weights) %-3s loss %.4g -> %.4g, %.0f ms/step" %
              (space, r["start_total"], r["final_total"], 1e3 * r["sec_per_step"]), file=sys.stderr)
    # one row per target: the target, then each setting in table order
    ev.grid([list(col) for col in zip(*grid_rows)], os.path.join(args.images, "eval_ablations.png"))
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    R["wall"] = time.perf_counter() - t0
    R["cpu"] = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    R["load_after"] = ev.loadavg()
    with open(os.path.join(args.out, "ablations.json"), "w") as f:
        json.dump(R, f, indent=1)

    # the markdown table
    L = ["| setting | steps | PSNR (dB) | perceptual distance | loss fell on all 3 | ms/step | evaluations (as reported) |",
         "|---|---:|---:|---:|:---:|---:|---:|"]
    for row in R["runs"]:
        L.append("| %s | %d | %.2f | %.1f | %s | %.0f | %.0f |" %
                 (row["label"], row["steps"], row["psnr"], row["distance"],
                  "yes" if row["loss_decreased"] else "NO", 1e3 * row["sec_per_step"], row["evals"]))
    L += ["", "Per target (PSNR dB / distance):", "",
          "| setting | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row in R["runs"]:
        L.append("| %s | " % row["label"] + " | ".join(
            "%.2f / %.1f" % (r["psnr"], r["distance"]) for r in row["per_target"]) + " |")
    L += ["", "StyleGAN2 with RANDOM weights (`%s`, 64x64), target_0, %d Adam steps: "
          "the machinery runs; the numbers are not meaningful until a trained model exists." %
          (SG2, args.sg_steps), "",
          "| latent | start loss | final loss | PSNR (dB) | distance | ms/step |",
          "|---|---:|---:|---:|---:|---:|"]
    for r in R["stylegan2"]:
        L.append("| %s | %.4g | %.4g | %.2f | %.1f | %.0f |" %
                 (r["space"], r["start_total"], r["final_total"], r["psnr"], r["distance"],
                  1e3 * r["sec_per_step"]))
    L += ["", "Run: %s, %.0f s wall, %.0f s CPU, load average %.2f before and %.2f after." %
          (R["date"], R["wall"], R["cpu"], R["load_before"], R["load_after"])]
    with open(os.path.join(args.out, "ablations.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
