#!/bin/sh
# run.sh - builds and runs the conv benchmark in C (bench/conv_bench.c) and
# in PyTorch (bench/conv_torch.py, Debian's /usr/bin/python3), then prints one
# table with both and the ratio ganedit / torch of GFLOP/s (> 1: ganedit
# faster). Called by `make bench` as bench/run.sh BUILD_DIR.
#
# The 2 cores are shared, and a burst of load from another process can slow a
# 2-thread measurement ten-fold, so the two programs run alternately for
# ROUNDS rounds; each row shows the round with the lowest median time (each
# program's median of its repeats), and the best single repeat of all rounds.
#
# Usage: bench/run.sh [build_dir (build)] [threads (2)] [min_seconds (1)] [rounds (3)]
#                     [set: all|vgg|sg2 (all)] [precision: fp32|bf16 (fp32)]
# Environment: IMPL=im2col times ganedit's reference path instead of the
# oneDNN primitives (docs/speed.md); CLOCK=cpu times process CPU time on
# both sides instead of wall time (for 1 thread on a loaded machine). The
# sg2 rows "fused_step" have no PyTorch counterpart (PyTorch is timed in the
# unfused form only).
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
T=${2:-2}
S=${3:-1}
R=${4:-3}
SET=${5:-all}
PREC=${6:-fp32}
CLOCK=${CLOCK:-wall}
make -s BUILD="$B" "$B/bench/conv_bench"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=1
while [ "$i" -le "$R" ]; do
    echo "# round $i of $R, load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$B/bench/conv_bench" "$T" "$S" "${IMPL:-fast}" "$PREC" "$CLOCK" "$SET" | tee -a "$tmp/c.txt"
    /usr/bin/python3 bench/conv_torch.py "$T" "$S" "$SET" "$CLOCK" | tee -a "$tmp/t.txt"
    i=$((i + 1))
done
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $T threads, $R rounds, $CLOCK time, load $(cut -d' ' -f1-3 /proc/loadavg)"
awk '
    /^#/ { next }
    {
        key = $1 " " $2 " " $3 " " $4
        if (FNR == NR) { side = "c" } else { side = "t" }
        k = side SUBSEP key
        if (!(key in seen)) { seen[key] = 1; order[n++] = key }
        if (!(k in ms) || $5 < ms[k]) { ms[k] = $5; gf[k] = $6 }
        if (!(k in bgf) || $8 > bgf[k]) bgf[k] = $8
    }
    END {
        printf "| layer | input | spatial | pass | ganedit ms | ganedit GFLOP/s | torch ms | torch GFLOP/s | ratio | best ganedit / torch GFLOP/s | best ratio |\n"
        printf "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for (i = 0; i < n; i++) {
            key = order[i]; split(key, f, " ")
            c = "c" SUBSEP key; t = "t" SUBSEP key
            if (!(c in ms)) continue
            r = (t in gf && gf[t] > 0) ? sprintf("%.2f", gf[c] / gf[t]) : "-"
            br = (t in bgf && bgf[t] > 0) ? sprintf("%.2f", bgf[c] / bgf[t]) : "-"
            tm = (t in ms) ? ms[t] : "-"; tg = (t in gf) ? gf[t] : "-"; tb = (t in bgf) ? bgf[t] : "-"
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n", f[1], f[2], f[3], f[4], ms[c], gf[c], tm, tg, r, bgf[c], tb, br
        }
    }' "$tmp/c.txt" "$tmp/t.txt"

# The whole-step benchmark of the generators and editing pipelines (issue #6):
# bench/run_models.sh, results in docs/bench-models.md. MODELS=0 skips it.
if [ "${MODELS:-1}" != 0 ]; then
    echo
    bench/run_models.sh "$B" "$T"
fi
