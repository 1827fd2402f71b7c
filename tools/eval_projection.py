#!/usr/bin/python3
"""eval_projection.py - measure ganedit's editing commands on the real DCGAN
and compare `ganedit project` with the PyTorch reference (project_torch.py).

What it runs (start it under `nice -n 10`; every child runs with
OMP_WAIT_POLICY=passive, see ENV below; numbers and images go to --out, the
figures for the docs to --images):

  1. projection: `ganedit project` and tools/project_torch.py on
     ../shared/data/sketches/target_{0,2,4}.png (--steps-targets) and the first
     20 images of ../shared/data/grumpy64/grumpy by sorted name
     (--steps-grumpy), image i with seed i on both sides, one image at a time
     and alternating ganedit / torch so that both see the same machine load.
     Quality: PSNR of result.png against the target (8-bit, [0,255] terms)
     and the perceptual distance given by `ganedit distance` (normalised
     VGG-19, conv1_1..conv3_1, sum over layers of the mean squared feature
     difference) for BOTH sides. Speed: wall seconds per step as each side
     reports it, and the CPU seconds of each child process.
  2. draw: `ganedit draw` on each sketches/sketch_*.png; RMS error (0..255)
     between result and scribble inside the alpha mask (alpha-weighted), also
     for the start image; a scribble | result grid.
  3. edit: `ganedit edit` on target_2.png with a white forehead patch
     scribble made here; its printed RMS errors (outside vs projection,
     inside vs scribble) and the same recomputed from the PNGs.
  4. interpolate: between the latents of two projections above (checks the
     first and last frames against those projections' result.png), and
     between two photos (projected inside the command, short runs; checks
     the frames against from/result.png and to/result.png).
  5. L-BFGS: `ganedit project --optimizer lbfgs` on the 3 targets: start and
     final loss, evaluations, time per step; Adam's start and final loss are
     taken from step 1.
  6. same start: ganedit (--init FILE.npy) and torch (--init-npy) from the
     same z on the 3 targets: the loss curves side by side and the largest
     pixel difference of the results, i.e. the implementation difference
     without the difference of the random starts.

--only runs some parts and adds them to an existing OUT/results.json;
--summarize-only rewrites OUT/results.md from it.

Usage (from the repository root):
  nice -n 10 /usr/bin/python3 tools/eval_projection.py --out /tmp/eval \
      --images docs/images
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = "../shared"
MODEL = SHARED + "/weights/dcgan_grumpy_deluxe.pkl"
VGG = SHARED + "/weights/vgg19_normalised_conv3_1.pth"
TARGETS = [SHARED + "/data/sketches/target_%d.png" % i for i in (0, 2, 4)]
GRUMPY_DIR = SHARED + "/data/grumpy64/grumpy"
SKETCHES = [SHARED + "/data/sketches/sketch_%d.png" % i for i in range(9)]


# ---- small helpers shared with ablations.py ---------------------------------

def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# Both ganedit and torch use OpenMP (libgomp). On this shared 2-core machine
# with a load of 5-12, the default (active, spinning) wait policy made a
# 100-step projection take 100 s and 33 s CPU instead of 15 s and 4 s:
# threads spin while their partner is descheduled. Every child therefore runs
# with OMP_WAIT_POLICY=passive, on both sides of the comparison.
ENV = dict(os.environ, OMP_WAIT_POLICY="passive")


def run(cmd, log=None):
    """Runs cmd (priority inherited: start this script under nice);
    returns (stdout, stderr, wall s, child CPU s). Fails loudly."""
    cmd = [str(c) for c in cmd]
    if "--out" in cmd:  # ganedit creates --out but not its parents
        os.makedirs(os.path.dirname(cmd[cmd.index("--out") + 1]), exist_ok=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if log is not None:
        log.write("$ %s\n%s%s[rc %d, %.1f s wall, %.1f s CPU, load %.2f]\n\n" %
                  (" ".join(cmd), p.stdout, p.stderr, p.returncode, wall, cpu, loadavg()))
        log.flush()
    if p.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr[-2000:]))
    return p.stdout, p.stderr, wall, cpu


def read_rgb(path):
    """PNG -> float64 (H,W,3) in [0,255]."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def read_rgba(path):
    return np.asarray(Image.open(path).convert("RGBA"), dtype=np.float64)


def psnr(a_path, b_path):
    mse = np.mean((read_rgb(a_path) - read_rgb(b_path)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def distance(ganedit, a_path, b_path, log=None):
    """`ganedit distance` total (normalised VGG, conv1_1..conv3_1)."""
    out, _, _, _ = run([ganedit, "distance", "--vgg", VGG, a_path, b_path], log=log)
    m = re.search(r"^total\s+(\S+)", out, re.M)
    return float(m.group(1))


def loss_csv(path):
    """loss.csv -> (first row, last row, lowest-total row), dicts of floats."""
    with open(path) as f:
        lines = [l.strip() for l in f if l.strip()]
    head = lines[0].split(",")
    rows = [dict(zip(head, map(float, l.split(",")))) for l in lines[1:]]
    return rows[0], rows[-1], min(rows, key=lambda r: r["total"])


def loss_at(path, step):
    """The total loss at one step of a loss.csv."""
    with open(path) as f:
        for l in f:
            v = l.strip().split(",")
            if v[0] == str(step):
                return float(v[1])
    return float("nan")


def ganedit_time(stderr):
    """(kept step, steps done, seconds) from project's last line
    'loss L (step S of N, T s)'."""
    m = re.search(r"\(step (\d+) of (\d+), ([\d.]+) s\)", stderr)
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


def report_evals(html_path):
    with open(html_path) as f:
        m = re.search(r"([\d.]+) s, (\d+) evaluations", f.read())
    return int(m.group(2))


def ganedit_project(ganedit, target, out, seed, steps, extra=(), log=None, model=MODEL):
    """Runs `ganedit project`; returns a dict of its outputs and timings."""
    cmd = [ganedit, "project", "--model", model, "--vgg", VGG, "--target", target,
           "--steps", steps, "--seed", seed, "--quiet", "--out", out] + list(extra)
    _, err, wall, cpu = run(cmd, log=log)
    at, n, secs = ganedit_time(err)
    first, last, low = loss_csv(os.path.join(out, "loss.csv"))
    return {"cmd": " ".join(map(str, cmd)), "steps": n, "seconds": secs,
            "sec_per_step": secs / n, "process_wall": wall, "cpu": cpu,
            "start_total": first["total"], "final_total": last["total"],
            "final_pixel": last["pixel"], "final_perceptual": last["perceptual"],
            "kept_step": at, "kept_total": low["total"],
            "loss_at_200": loss_at(os.path.join(out, "loss.csv"), 200),
            "evals": report_evals(os.path.join(out, "report.html")),
            "result": os.path.join(out, "result.png"), "load": loadavg()}


def torch_project(target, out, name, seed, steps, extra=(), log=None):
    """Runs tools/project_torch.py on one target; returns the same kind of dict."""
    summ = os.path.join(out, "summary_%s.csv" % name)
    cmd = ["/usr/bin/python3", os.path.join(HERE, "project_torch.py"), "--out", out,
           "--names", name, "--summary", summ, "--steps", steps, "--seed", seed] + \
        list(extra) + [target]
    _, _, wall, cpu = run(cmd, log=log)
    with open(summ) as f:
        lines = f.read().strip().split("\n")
    row = dict(zip(lines[0].split(","), lines[1].split(",")))
    return {"cmd": " ".join(map(str, cmd)), "steps": int(row["steps"]),
            "seconds": float(row["seconds"]), "sec_per_step": float(row["sec_per_step"]),
            "process_wall": wall, "cpu": cpu, "cpu_in_loop": float(row["cpu_seconds"]),
            "start_total": float(row["start_total"]), "final_total": float(row["final_total"]),
            "final_pixel": float(row["final_pixel"]),
            "final_perceptual": float(row["final_perceptual"]),
            "kept_step": int(row["kept_step"]), "kept_total": float(row["kept_total"]),
            "loss_at_200": loss_at(os.path.join(out, name, "loss.csv"), 200),
            "result": os.path.join(out, name, "result.png"), "load": loadavg()}


def on_white(rgba):
    """(H,W,4) in [0,255] -> (H,W,3) composited over white."""
    a = rgba[..., 3:4] / 255.0
    return rgba[..., :3] * a + 255.0 * (1 - a)


def grid(rows, path, scale=2, gap=2):
    """rows: list of lists of (H,W,3) arrays in [0,255] -> one PNG, white gaps."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + gap) - gap, ncol * (w + gap) - gap, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            if im is None:
                continue
            out[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = \
                np.clip(np.rint(im), 0, 255).astype(np.uint8)
    img = Image.fromarray(out)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path, optimize=True)


def mean_std(xs):
    xs = np.asarray(xs, dtype=np.float64)
    return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0


# ---- the evaluation ----------------------------------------------------------

def eval_projection(args, log, R):
    grumpy = sorted(os.listdir(GRUMPY_DIR))[:args.n_grumpy]
    items = [("target_%d" % i, p, args.steps_targets) for i, p in zip((0, 2, 4), TARGETS)] + \
        [("grumpy_" + os.path.splitext(g)[0], os.path.join(GRUMPY_DIR, g), args.steps_grumpy)
         for g in grumpy]
    R["projection"] = []
    for seed, (name, path, steps) in enumerate(items):
        ge = ganedit_project(args.ganedit, path, os.path.join(args.out, "ge", name), seed, steps, log=log)
        th = torch_project(path, os.path.join(args.out, "torch"), name, seed, steps, log=log)
        for side in (ge, th):
            side["psnr"] = psnr(side["result"], path)
            side["distance"] = distance(args.ganedit, side["result"], path, log=log)
        R["projection"].append({"name": name, "target": path, "seed": seed, "steps": steps,
                                "ganedit": ge, "torch": th})
        print("%-12s ganedit psnr %.2f dist %.2f %.1f ms/step | torch psnr %.2f dist %.2f %.1f ms/step"
              % (name, ge["psnr"], ge["distance"], 1e3 * ge["sec_per_step"], th["psnr"],
                 th["distance"], 1e3 * th["sec_per_step"]), file=sys.stderr)
        save_json(args, R)
    # grid: targets + first 5 grumpy; rows target / ganedit / torch
    sel = R["projection"][:8]
    grid([[read_rgb(p["target"]) for p in sel],
          [read_rgb(p["ganedit"]["result"]) for p in sel],
          [read_rgb(p["torch"]["result"]) for p in sel]],
         os.path.join(args.images, "eval_projection.png"))


def eval_draw(args, log, R):
    R["draw"] = []
    rows = [[], []]
    for path in SKETCHES:
        name = os.path.splitext(os.path.basename(path))[0]
        out = os.path.join(args.out, "draw", name)
        cmd = [args.ganedit, "draw", "--model", MODEL, "--scribble", path, "--steps",
               args.draw_steps, "--quiet", "--out", out]
        _, err, wall, cpu = run(cmd, log=log)
        s = read_rgba(path)
        a = s[..., 3] / 255.0

        def masked_rms(img_path):
            d = (read_rgb(img_path) - s[..., :3]) ** 2
            return float(np.sqrt((d * a[..., None]).sum() / (3 * a.sum())))

        first, last, _ = loss_csv(os.path.join(out, "loss.csv"))
        R["draw"].append({"name": name, "cmd": " ".join(map(str, cmd)),
                          "rms_in_mask": masked_rms(os.path.join(out, "result.png")),
                          "rms_in_mask_start": masked_rms(os.path.join(out, "start.png")),
                          "start_total": first["total"], "final_total": last["total"],
                          "wall": wall, "cpu": cpu, "mask_mean": float(a.mean())})
        rows[0].append(on_white(s))
        rows[1].append(read_rgb(os.path.join(out, "result.png")))
        print("draw %s rms in mask %.2f (start %.2f)" % (name, R["draw"][-1]["rms_in_mask"],
                                                         R["draw"][-1]["rms_in_mask_start"]),
              file=sys.stderr)
    grid(rows, os.path.join(args.images, "eval_draw.png"))
    save_json(args, R)


def make_edit_scribble(path):
    """A white patch over the forehead of target_2 (x 20..44, y 3..17 of 64),
    soft-edged alpha: 'make the forehead white'."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    e = ((xx - 32) / 12.5) ** 2 + ((yy - 10) / 7.5) ** 2
    alpha = np.clip((1.15 - e) / 0.3, 0, 1)
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = 245
    rgba[..., 3] = np.rint(alpha * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(path)


def eval_edit(args, log, R):
    out = os.path.join(args.out, "edit")
    os.makedirs(out, exist_ok=True)
    scr = os.path.join(args.out, "edit_scribble.png")
    make_edit_scribble(scr)
    photo = TARGETS[1]
    cmd = [args.ganedit, "edit", "--model", MODEL, "--vgg", VGG, "--target", photo,
           "--scribble", scr, "--project-steps", args.edit_project_steps, "--steps",
           args.edit_steps, "--quiet", "--out", out]
    _, err, wall, cpu = run(cmd, log=log)
    m = re.search(r"RMS error outside the mask vs the (\w+) ([\d.]+), inside vs the scribble ([\d.]+)", err)
    s = read_rgba(scr)
    a = s[..., 3:4] / 255.0
    res = read_rgb(os.path.join(out, "result.png"))
    proj = read_rgb(os.path.join(out, "projection.png"))
    photo_px = read_rgb(photo)
    out_rms = float(np.sqrt((((res - proj) ** 2) * (1 - a)).sum() / (3 * (1 - a).sum())))
    in_rms = float(np.sqrt((((res - s[..., :3]) ** 2) * a).sum() / (3 * a.sum())))
    proj_in_rms = float(np.sqrt((((proj - s[..., :3]) ** 2) * a).sum() / (3 * a.sum())))
    R["edit"] = {"cmd": " ".join(map(str, cmd)), "wall": wall, "cpu": cpu,
                 "printed_vs": m.group(1),
                 "printed_rms_outside": float(m.group(2)), "printed_rms_inside": float(m.group(3)),
                 "png_rms_outside_vs_projection": out_rms, "png_rms_inside_vs_scribble": in_rms,
                 "png_rms_inside_projection_vs_scribble": proj_in_rms,
                 "psnr_projection_vs_photo": psnr(os.path.join(out, "projection.png"), photo)}
    overlay = on_white(np.concatenate([photo_px, np.full((64, 64, 1), 255.0)], -1))
    overlay = overlay * (1 - a) + s[..., :3] * a
    grid([[photo_px, overlay, proj, res]], os.path.join(args.images, "eval_edit.png"))
    print("edit: %s" % json.dumps(R["edit"]), file=sys.stderr)
    save_json(args, R)


def eval_interpolate(args, log, R):
    R["interpolate"] = {}
    frames = 8
    # (a) between the latents of two projections of step 1
    a_dir, b_dir = os.path.join(args.out, "ge", "target_0"), os.path.join(args.out, "ge", "target_2")
    out = os.path.join(args.out, "interp_npy")
    cmd = [args.ganedit, "interpolate", "--model", MODEL, "--from", a_dir + "/latent.npy",
           "--to", b_dir + "/latent.npy", "--frames", frames, "--quiet", "--out", out]
    run(cmd, log=log)
    f0, fl = os.path.join(out, "frame_000.png"), os.path.join(out, "frame_%03d.png" % (frames - 1))
    R["interpolate"]["npy"] = {
        "cmd": " ".join(map(str, cmd)),
        "first_vs_from_maxabs": float(np.abs(read_rgb(f0) - read_rgb(a_dir + "/result.png")).max()),
        "last_vs_to_maxabs": float(np.abs(read_rgb(fl) - read_rgb(b_dir + "/result.png")).max()),
        "gif_bytes": os.path.getsize(os.path.join(out, "interpolation.gif"))}
    grid([[read_rgb(TARGETS[0])] + [read_rgb(os.path.join(out, "frame_%03d.png" % i))
                                    for i in range(frames)] + [read_rgb(TARGETS[1])]],
         os.path.join(args.images, "eval_interpolation.png"))
    # (b) between two photos, projected by the command itself (short projections)
    out = os.path.join(args.out, "interp_photos")
    cmd = [args.ganedit, "interpolate", "--model", MODEL, "--vgg", VGG, "--from", TARGETS[0],
           "--to", TARGETS[2], "--frames", frames, "--steps", args.interp_steps, "--quiet",
           "--out", out]
    _, _, wall, cpu = run(cmd, log=log)
    f0, fl = os.path.join(out, "frame_000.png"), os.path.join(out, "frame_%03d.png" % (frames - 1))
    R["interpolate"]["photos"] = {
        "cmd": " ".join(map(str, cmd)), "wall": wall, "cpu": cpu,
        "first_vs_from_maxabs": float(np.abs(read_rgb(f0) - read_rgb(out + "/from/result.png")).max()),
        "last_vs_to_maxabs": float(np.abs(read_rgb(fl) - read_rgb(out + "/to/result.png")).max()),
        "gif_bytes": os.path.getsize(os.path.join(out, "interpolation.gif"))}
    print("interpolate: %s" % json.dumps(R["interpolate"]), file=sys.stderr)
    save_json(args, R)


def eval_optimizers(args, log, R):
    R["optimizers"] = []
    for i, path in zip((0, 2, 4), TARGETS):
        name = "target_%d" % i
        lb = ganedit_project(args.ganedit, path, os.path.join(args.out, "lbfgs", name), 0,
                             args.lbfgs_steps, extra=["--optimizer", "lbfgs"], log=log)
        lb["psnr"] = psnr(lb["result"], path)
        lb["distance"] = distance(args.ganedit, lb["result"], path, log=log)
        adam = next(p["ganedit"] for p in R["projection"] if p["name"] == name)
        R["optimizers"].append({"name": name, "lbfgs": lb,
                                "adam": {k: adam[k] for k in ("steps", "start_total", "final_total",
                                                              "kept_total", "sec_per_step", "evals",
                                                              "cpu", "psnr", "distance")}})
        print("%s lbfgs %.4g -> %.4g in %d steps (%d evals) %.1f ms/step" %
              (name, lb["start_total"], lb["final_total"], lb["steps"], lb["evals"],
               1e3 * lb["sec_per_step"]), file=sys.stderr)
    save_json(args, R)


def summarize(R):
    """results.json -> markdown tables (results.md)."""
    L = []
    P = R.get("projection", [])
    sets = [("sketches/target_{0,2,4}", [p for p in P if p["name"].startswith("target_")]),
            ("grumpy64/grumpy, first %d" % len([p for p in P if p["name"].startswith("grumpy_")]),
             [p for p in P if p["name"].startswith("grumpy_")])]
    if P:
        L += ["## Projection: ganedit vs PyTorch", "",
              "| images | steps | side | PSNR dB mean (sd) | distance mean (sd) | loss at start | "
              "loss at end | wall ms/step (median) | CPU ms/step |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for label, ps in sets:
            if not ps:
                continue
            for side in ("ganedit", "torch"):
                q = [p[side] for p in ps]
                cpu = [(x["cpu_in_loop"] if side == "torch" else x["cpu"]) / x["steps"] for x in q]
                L.append("| %s (%d) | %d | %s | %.2f (%.2f) | %.1f (%.1f) | %.2f | %.2f | %.0f | %.0f |" % (
                    label, len(ps), ps[0]["steps"], side, *mean_std([x["psnr"] for x in q]),
                    *mean_std([x["distance"] for x in q]), np.mean([x["start_total"] for x in q]),
                    np.mean([x["kept_total"] for x in q]),
                    1e3 * np.median([x["sec_per_step"] for x in q]), 1e3 * np.mean(cpu)))
        L += ["", "Paired differences, ganedit minus torch (image i: seed i on both sides; "
              "higher PSNR and lower distance are better):", "",
              "| images | PSNR diff mean (s.e.) | ganedit PSNR higher | distance diff mean (s.e.) | "
              "ganedit distance lower | wall time ratio ganedit/torch (median) | CPU ratio |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for label, ps in sets + [("all", P)]:
            if not ps:
                continue
            dp = [p["ganedit"]["psnr"] - p["torch"]["psnr"] for p in ps]
            dd = [p["ganedit"]["distance"] - p["torch"]["distance"] for p in ps]
            tr = [p["ganedit"]["sec_per_step"] / p["torch"]["sec_per_step"] for p in ps]
            cr = [p["ganedit"]["cpu"] / p["torch"]["cpu_in_loop"] for p in ps]
            n = len(ps)
            L.append("| %s | %+.2f (%.2f) | %d of %d | %+.1f (%.1f) | %d of %d | %.2f | %.2f |" % (
                label, np.mean(dp), mean_std(dp)[1] / np.sqrt(n), sum(d > 0 for d in dp), n,
                np.mean(dd), mean_std(dd)[1] / np.sqrt(n), sum(d < 0 for d in dd), n,
                np.median(tr), np.mean(cr)))
        L += ["", "Per image:", "", "| image | steps | ganedit PSNR | torch PSNR | ganedit dist | "
              "torch dist | ganedit loss | torch loss | ganedit ms/step | torch ms/step | load |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in P:
            g, t = p["ganedit"], p["torch"]
            L.append("| %s | %d | %.2f | %.2f | %.1f | %.1f | %.2f | %.2f | %.0f | %.0f | %.1f |" % (
                p["name"], p["steps"], g["psnr"], t["psnr"], g["distance"], t["distance"],
                g["kept_total"], t["kept_total"], 1e3 * g["sec_per_step"], 1e3 * t["sec_per_step"],
                g["load"]))
        t3 = [p for p in P if p["steps"] >= 200 and p["name"].startswith("target_")]
        if t3:
            L += ["", "Loss at step 200 of the 1000-step runs (targets): ganedit %s, torch %s." % (
                ", ".join("%.2f" % p["ganedit"]["loss_at_200"] for p in t3),
                ", ".join("%.2f" % p["torch"]["loss_at_200"] for p in t3))]
    if "draw" in R:
        L += ["", "## Draw", "", "| scribble | mask mean | RMS in mask, result (0-255) | "
              "RMS in mask, start | loss start | loss end |", "|---|---:|---:|---:|---:|---:|"]
        for d in R["draw"]:
            L.append("| %s | %.2f | %.1f | %.1f | %.4f | %.4f |" % (
                d["name"], d["mask_mean"], d["rms_in_mask"], d["rms_in_mask_start"],
                d["start_total"], d["final_total"]))
        L.append("| mean | | %.1f | %.1f | | |" % (np.mean([d["rms_in_mask"] for d in R["draw"]]),
                                                   np.mean([d["rms_in_mask_start"] for d in R["draw"]])))
    if "edit" in R:
        e = R["edit"]
        L += ["", "## Edit", "", "`%s`" % e["cmd"], "",
              "- printed by ganedit ([-1,1] units): RMS outside the mask vs the %s %.4f, inside vs "
              "the scribble %.4f" % (e["printed_vs"], e["printed_rms_outside"], e["printed_rms_inside"]),
              "- from the PNGs (0-255): outside vs projection %.2f, inside vs scribble %.2f "
              "(the projection itself inside vs scribble: %.2f); projection vs photo PSNR %.2f dB" % (
                  e["png_rms_outside_vs_projection"], e["png_rms_inside_vs_scribble"],
                  e["png_rms_inside_projection_vs_scribble"], e["psnr_projection_vs_photo"])]
    if "interpolate" in R:
        L += ["", "## Interpolate", ""]
        for k, v in R["interpolate"].items():
            L.append("- %s: `%s`: max |first frame - from| = %g, max |last frame - to| = %g "
                     "(0-255), GIF %d bytes" % (k, v["cmd"], v["first_vs_from_maxabs"],
                                                 v["last_vs_to_maxabs"], v["gif_bytes"]))
    if "optimizers" in R:
        L += ["", "## Adam vs L-BFGS (ganedit)", "", "| target | optimiser | steps | evaluations (as reported) | "
              "loss start | loss end (kept) | fell | ms/step | CPU s | PSNR | distance |",
              "|---|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|"]
        for o in R["optimizers"]:
            for k in ("adam", "lbfgs"):
                x = o[k]
                L.append("| %s | %s | %d | %d | %.2f | %.2f | %s | %.0f | %.1f | %.2f | %.1f |" % (
                    o["name"], k, x["steps"], x["evals"], x["start_total"], x["kept_total"],
                    "yes" if x["kept_total"] < x["start_total"] else "NO",
                    1e3 * x["sec_per_step"], x["cpu"], x["psnr"], x["distance"]))
    if "same_start" in R:
        S = R["same_start"]
        at = list(S[0]["loss_at"].keys())
        L += ["", "## Same start latent on both sides", "",
              "Total loss, ganedit / torch, at step:", "",
              "| target | " + " | ".join(at) + " | result PNG max / mean abs diff | PSNR g / t | distance g / t |",
              "|---|" + "---:|" * (len(at) + 3)]
        for x in S:
            L.append("| %s | " % x["name"] + " | ".join(
                "%.4g / %.4g" % tuple(x["loss_at"][k]) for k in at) +
                " | %.0f / %.2f | %.2f / %.2f | %.1f / %.1f |" % (
                    x["result_maxabs"], x["result_meanabs"], x["ganedit"]["psnr"], x["torch"]["psnr"],
                    x["ganedit"]["distance"], x["torch"]["distance"]))
    if "parts" in R:
        L += ["", "## Cost", "", "| part | wall s | CPU s | load before | load after |",
              "|---|---:|---:|---:|---:|"]
        for k, v in R["parts"].items():
            L.append("| %s | %.0f | %.0f | %.1f | %.1f |" % (k, v["wall"], v["cpu"], v["load_before"],
                                                             v["load_after"]))
    return "\n".join(L) + "\n"


def eval_same_start(args, log, R):
    """Both sides from the SAME start latent (ganedit --init FILE.npy, torch
    --init-npy): what is left of the difference is the implementation."""
    R["same_start"] = []
    for i, path in zip((0, 2, 4), TARGETS):
        name = "target_%d" % i
        rng = np.random.default_rng(1000 + i)
        z0 = rng.uniform(-1, 1, size=(10, 100)).mean(0, keepdims=True).astype(np.float32)
        d = os.path.join(args.out, "same_start")
        os.makedirs(d, exist_ok=True)
        zp = os.path.join(d, "z0_%s.npy" % name)
        np.save(zp, z0)
        ge = ganedit_project(args.ganedit, path, os.path.join(d, "ge", name), 0, args.same_start_steps,
                             extra=["--init", zp], log=log)
        th = torch_project(path, os.path.join(d, "torch"), name, 0, args.same_start_steps,
                           extra=["--init-npy", zp], log=log)
        curves = {}
        for side, f in (("ganedit", os.path.join(d, "ge", name, "loss.csv")),
                        ("torch", os.path.join(d, "torch", name, "loss.csv"))):
            with open(f) as fh:
                curves[side] = [float(l.split(",")[1]) for l in fh.read().strip().split("\n")[1:]]
        at = [s for s in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if s <= args.same_start_steps]
        for side in (ge, th):
            side["psnr"] = psnr(side["result"], path)
            side["distance"] = distance(args.ganedit, side["result"], path, log=log)
        R["same_start"].append({
            "name": name, "steps": args.same_start_steps, "ganedit": ge, "torch": th,
            "loss_at": {str(s): [curves["ganedit"][s], curves["torch"][s]] for s in at},
            "result_maxabs": float(np.abs(read_rgb(ge["result"]) - read_rgb(th["result"])).max()),
            "result_meanabs": float(np.abs(read_rgb(ge["result"]) - read_rgb(th["result"])).mean())})
        print("same start %s: %s" % (name, R["same_start"][-1]["loss_at"]), file=sys.stderr)
    save_json(args, R)


def save_json(args, R):
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(R, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="work folder (all outputs, results.json, log.txt)")
    ap.add_argument("--images", required=True, help="folder for the doc figures")
    ap.add_argument("--ganedit", default="build/ganedit")
    ap.add_argument("--steps-targets", type=int, default=1000)
    ap.add_argument("--steps-grumpy", type=int, default=1000)
    ap.add_argument("--draw-steps", type=int, default=1000)
    ap.add_argument("--edit-project-steps", type=int, default=1000)
    ap.add_argument("--edit-steps", type=int, default=1000)
    ap.add_argument("--interp-steps", type=int, default=1000)
    ap.add_argument("--lbfgs-steps", type=int, default=100)
    ap.add_argument("--same-start-steps", type=int, default=200)
    ap.add_argument("--n-grumpy", type=int, default=20, help="grumpy images (first by sorted name)")
    ap.add_argument("--only", default="projection,draw,edit,interpolate,optimizers,same_start")
    ap.add_argument("--summarize-only", action="store_true",
                    help="only rewrite OUT/results.md from OUT/results.json")
    args = ap.parse_args()
    if args.summarize_only:
        R = json.load(open(os.path.join(args.out, "results.json")))
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(summarize(R))
        return
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.images, exist_ok=True)
    rpath = os.path.join(args.out, "results.json")
    R = json.load(open(rpath)) if os.path.exists(rpath) else {}
    R.setdefault("started", []).append(time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    R.setdefault("args", vars(args))  # the first run's; later --only runs are listed below
    R.setdefault("invocations", []).append(" ".join(sys.argv))
    R["ganedit_version"] = subprocess.run([args.ganedit, "--version"], capture_output=True,
                                          text=True).stdout.strip()
    t0 = time.perf_counter()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.path.join(args.out, "log.txt"), "a") as log:
        steps = {"projection": eval_projection, "draw": eval_draw, "edit": eval_edit,
                 "interpolate": eval_interpolate, "optimizers": eval_optimizers,
                 "same_start": eval_same_start}
        for part in args.only.split(","):
            lt = time.perf_counter()
            lc = resource.getrusage(resource.RUSAGE_CHILDREN)
            la = loadavg()
            steps[part](args, log, R)
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            R.setdefault("parts", {})[part] = {
                "wall": time.perf_counter() - lt,
                "cpu": c1.ru_utime + c1.ru_stime - lc.ru_utime - lc.ru_stime,
                "load_before": la, "load_after": loadavg()}
            save_json(args, R)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    R["total_wall"] = time.perf_counter() - t0
    R["total_cpu"] = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    R["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    R.setdefault("totals", []).append({"only": args.only, "wall": R["total_wall"],
                                       "cpu": R["total_cpu"], "finished": R["finished"]})
    save_json(args, R)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(summarize(R))
    print("done: %.0f s wall, %.0f s CPU" % (R["total_wall"], R["total_cpu"]), file=sys.stderr)


if __name__ == "__main__":
    main()
