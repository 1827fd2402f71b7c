#!/bin/sh
# run_models.sh - whole optimisation steps, ganedit (bench/model_bench.c)
# against PyTorch (bench/model_torch.py, Debian's /usr/bin/python3), on the
# same machine in one go, and one table: median ms per step on each side,
# the ratio ganedit / PyTorch (< 1: ganedit faster), GFLOP/s and % of the
# FP32 peak, peak RSS, and whether both computed the same loss.
#
# Steps, in order:
#   1. build model_bench; check the PyTorch re-implementations against the
#      official code's outputs in ../shared/ref (model_torch.py verify);
#   2. write the inputs once into BUILD/bench/model_data (random
#      StyleGAN2-ADA weights, 64x64 and 256x256, channel_base 16384,
#      channel_max 512, ~95 MB each; latents; targets) - rewritten only when
#      model_torch.py changes; never committed;
#   3. ROUNDS rounds; in each, every pipeline runs once in ganedit and once
#      in PyTorch, back to back (ganedit first in odd rounds, PyTorch first
#      in even ones), each in its own process so its peak RSS is its own.
#      The 2 cores are shared and their speed drifts, so each row gives the
#      median over rounds of the per-round medians, and the ratio is the
#      median of the per-round ratios (each from one back-to-back pair) with
#      their range; "best" is the fastest single step of all rounds (the
#      least disturbed one, a steadier estimate when the machine is busy).
#      In round 1 ganedit also runs ge_edit_run (Adam) on the ENGINE
#      pipelines, to time the library's own loop and check that its
#      objective gives the loss computed in model_bench.c;
#   4. L-BFGS: ganedit's ge_edit_run(L-BFGS) and torch.optim.LBFGS on
#      dcgan64_vgg_b1, LBFGS_STEPS iterations each, every round.
#
# Usage: bench/run_models.sh [build_dir (build)] [threads (2)] [rounds (3)] [min_seconds (1)]
# Environment: PIPELINES="name ..." runs a subset (names in model_torch.py);
#   LBFGS_STEPS=0 skips the L-BFGS rows (default 20); ENGINE="name ..." the
#   pipelines of the ge_edit_run check (default: the VGG ones but 256x256;
#   ENGINE=none: no check); GE_BENCH_CLOCK=cpu (or CLOCK=cpu, as for
#   bench/run.sh) times process CPU time instead of wall time on both
#   sides (meaningful with 1 thread only: then it measures the work,
#   whatever else runs on the machine);
#   PROFILE="name ..." afterwards builds model_bench with
#   -DGE_BENCH_PROFILE (every library op wrapped by the linker and timed) and
#   prints, for each named pipeline, where ganedit's time goes.
# The raw lines of a run are kept in BUILD/bench/model_results.txt;
# REPORT=that_file bench/run_models.sh prints its tables again without running.
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
T=${2:-2}
R=${3:-3}
S=${4:-1}
PY=/usr/bin/python3
ALL="dcgan64_gen sg2ref64_gen dcgan64_vgg_b1 dcgan64_vgg_b10 sg2_64_vgg_b1 sg2_256_vgg_b1"
P=${PIPELINES:-$ALL}
LS=${LBFGS_STEPS:-20}
EN=${ENGINE:-dcgan64_vgg_b1 dcgan64_vgg_b10 sg2_64_vgg_b1}
CLK=wall
if [ "${CLOCK:-}" = cpu ]; then # the name bench/run.sh uses
    GE_BENCH_CLOCK=cpu
    export GE_BENCH_CLOCK
fi
if [ "${GE_BENCH_CLOCK:-}" = cpu ]; then CLK="process CPU"; fi
D="$B/bench/model_data"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${REPORT:-}" ]; then
    cp "$REPORT" "$tmp/out.txt" # only the tables, from a kept results file
    T=$(sed -n 's/^# machine: .*, \([0-9]*\) threads,.*/\1/p' "$tmp/out.txt")
else
    make -s BUILD="$B" "$B/bench/model_bench"
    $PY bench/model_torch.py verify
    if [ ! -f "$D/stamp" ] || [ -n "$(find bench/model_torch.py -newer "$D/stamp")" ]; then
        $PY bench/model_torch.py prep "$D"
        touch "$D/stamp"
    fi
    echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $T threads, $R rounds, $CLK time, tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src include 2>/dev/null || echo ' + uncommitted changes in src/ include/')" >"$tmp/out.txt"
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    t_start=$(date +%s)

    # each program's lines, prefixed with the round, go to out.txt (and the screen)
    keep() { sed "s/^/$i /" "$tmp/one.txt" | tee -a "$tmp/out.txt"; }
    run_c() { "$B/bench/model_bench" "$D" "$@" >"$tmp/one.txt"; keep; }
    run_t() { $PY bench/model_torch.py "$@" >"$tmp/one.txt"; keep; }

    i=1
    while [ "$i" -le "$R" ]; do
        echo "# round $i of $R, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$tmp/out.txt"
        for p in $P; do
            eng=
            if [ "$i" -eq 1 ]; then
                case " $EN " in *" $p "*) eng=engine ;; esac
            fi
            if [ $((i % 2)) -eq 1 ]; then
                run_c "$p" "$T" "$S" 50 $eng
                run_t run "$D" "$p" "$T" "$S" 50
            else
                run_t run "$D" "$p" "$T" "$S" 50
                run_c "$p" "$T" "$S" 50 $eng
            fi
        done
        if [ "$LS" -gt 0 ]; then
            run_c dcgan64_vgg_b1 "$T" 0 "$LS" lbfgs
            run_t lbfgs "$D" dcgan64_vgg_b1 "$T" "$LS"
        fi
        i=$((i + 1))
    done
    echo "# summary: $(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - t_start)) s wall, load average $load0 before, $(cut -d' ' -f1-3 /proc/loadavg) after" >>"$tmp/out.txt"
    cp "$tmp/out.txt" "$B/bench/model_results.txt"
fi

echo
grep '^# machine\|^# summary' "$tmp/out.txt"
awk -v T="$T" '
    function med(s,    a, n, i, j, x) {  # median of space-separated numbers
        n = split(s, a, " ")
        for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function lo(s,    a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
    function hi(s,    a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
    function add(arr, k, v) { arr[k] = (k in arr) ? arr[k] " " v : v }
    $2 == "ganedit" || $2 == "torch" {
        r = $1; side = $2; p = $3
        if (!(p in seen)) { seen[p] = 1; order[np++] = p }
        ms[side, p, r] = $4
        add(all_ms, side SUBSEP p, $4)
        if (!((side, p) in best) || $5 < best[side, p]) best[side, p] = $5
        if ($8 + 0 > pk[side, p]) pk[side, p] = $8
        if (side == "torch") gflop[p] = $7
        loss[side, p] = $9
    }
    $2 == "#" && $3 == "parts" { add(parts, $4, $5 "/" $6 "/" $7 "/" $8 "/" $9) }
    $2 == "#" && $3 == "engine" { eng[$4] = $6; eloss[$4] = $8; rloss[$4] = $10 }
    $2 == "ganedit-lbfgs" || $2 == "torch-lbfgs" {
        s = $2; add(lstep, s, $4); add(leval, s, $5); add(lper, s, $6); lpk[s] = $8
    }
    END {
        peak = 175 * T
        printf "\n| pipeline | ganedit ms | PyTorch ms | ratio ganedit/PyTorch (range) | best ms ganedit / PyTorch (ratio) | GFLOP/step | ganedit GFLOP/s (%% of %d) | PyTorch GFLOP/s (%%) | peak RSS MiB ganedit / PyTorch | loss rel. diff |\n", peak
        printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for (i = 0; i < np; i++) {
            p = order[i]
            rat = ""
            for (r = 1; r <= 99; r++)
                if ((("ganedit", p, r) in ms) && (("torch", p, r) in ms) && ms["torch", p, r] > 0)
                    rat = rat " " ms["ganedit", p, r] / ms["torch", p, r]
            c = med(all_ms["ganedit" SUBSEP p]); t = med(all_ms["torch" SUBSEP p])
            gc = gflop[p] / c * 1e3; gt = gflop[p] / t * 1e3
            dl = loss["torch", p] != 0 ? (loss["ganedit", p] - loss["torch", p]) / loss["torch", p] : 0
            if (dl < 0) dl = -dl
            printf "| %s | %.1f | %.1f | %.2f (%.2f-%.2f) | %.1f / %.1f (%.2f) | %.2f | %.1f (%.0f%%) | %.1f (%.0f%%) | %d / %d | %.1e |\n",
                p, c, t, med(rat), lo(rat), hi(rat), best["ganedit", p], best["torch", p], best["ganedit", p] / best["torch", p],
                gflop[p], gc, 100 * gc / peak, gt, 100 * gt / peak,
                pk["ganedit", p], pk["torch", p], dl
        }
        printf "\nganedit step by part, ms (median over rounds of per-round medians):\n\n"
        printf "| pipeline | generator fwd | VGG fwd | loss | VGG bwd | generator bwd | ge_edit_run Adam step | objective check |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for (i = 0; i < np; i++) {
            p = order[i]
            if (!(p in parts)) continue
            n = split(parts[p], rows, " ")
            for (k = 1; k <= 5; k++) col[k] = ""
            for (j = 1; j <= n; j++) { split(rows[j], f, "/"); for (k = 1; k <= 5; k++) col[k] = col[k] " " f[k] }
            chk = "-"
            if (p in eloss) { d = eloss[p] - rloss[p]; if (d < 0) d = -d; chk = sprintf("%.1e", rloss[p] != 0 ? d / rloss[p] : d) }
            printf "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s |\n", p, med(col[1]), med(col[2]), med(col[3]), med(col[4]), med(col[5]),
                (p in eng) ? sprintf("%.1f", eng[p]) : "-", chk
        }
        if ("ganedit-lbfgs" in lstep) {
            printf "\nL-BFGS on dcgan64_vgg_b1 (strong Wolfe, history 10; medians over rounds):\n\n"
            printf "| side | ms per iteration | ms per evaluation | evaluations per iteration | peak RSS MiB |\n|---|---:|---:|---:|---:|\n"
            printf "| ganedit ge_edit_run | %.1f | %.1f | %.2f | %d |\n", med(lstep["ganedit-lbfgs"]), med(leval["ganedit-lbfgs"]), med(lper["ganedit-lbfgs"]), lpk["ganedit-lbfgs"]
            printf "| torch.optim.LBFGS | %.1f | %.1f | %.2f | %d |\n", med(lstep["torch-lbfgs"]), med(leval["torch-lbfgs"]), med(lper["torch-lbfgs"]), lpk["torch-lbfgs"]
            printf "| ratio ganedit/PyTorch | %.2f | %.2f | | |\n", med(lstep["ganedit-lbfgs"]) / med(lstep["torch-lbfgs"]), med(leval["ganedit-lbfgs"]) / med(leval["torch-lbfgs"])
        }
    }' "$tmp/out.txt"

if [ -n "${PROFILE:-}" ]; then
    W=
    for f in conv2d_forward conv2d_backward convt2d_forward convt2d_backward linear_forward \
        linear_backward modulate_forward modulate_backward upfirdn2d_forward upfirdn2d_backward \
        bias_act_forward bias_act_backward noise_forward noise_backward maxpool2_forward \
        maxpool2_backward instance_norm_forward instance_norm_backward upsample2_forward \
        upsample2_backward gemm im2col_rows col2im_rows; do
        W="$W,--wrap=ge_$f"
    done
    PKGS=$(sed -n 's/^PKGS *:= *//p' Makefile) # the libraries the Makefile links
    # shellcheck disable=SC2046,SC2086 # PKGS is a list of words
    cc -std=c11 -Wall -Wextra -Wno-unused-parameter -O2 -g -fopenmp -D_GNU_SOURCE -Iinclude -Isrc \
        $(pkg-config --cflags $PKGS) -DGE_BENCH_PROFILE -o "$B/bench/model_bench_prof" \
        bench/model_bench.c "$B/libganedit.a" -fopenmp "-Wl$W" $(pkg-config --libs $PKGS) \
        -lgif -ldnnl -lm
    for p in $PROFILE; do
        echo
        echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
        "$B/bench/model_bench_prof" "$D" "$p" "$T" "$S" 50
    done
fi
