#!/usr/bin/env bash
# compare_w_wplus.sh - projects the same photos with a StyleGAN2 generator in
# w and in w+ (same start, steps and losses otherwise) and prints the PSNR of
# each result against its target, the means, and how often w+ beats w: the
# spec's finding that w+ inverts better than w.
#
#   tools/compare_w_wplus.sh MODEL OUT_DIR [STEPS] [N_GRUMPY] [EXTRA project options...]
#
# Targets: ../shared/data/sketches/target_{0,2,4}.png (the course's projection
# targets) and the first N_GRUMPY (default 12) images of
# ../shared/data/grumpy64/grumpy in name order. STEPS defaults to 500. Uses
# build/ganedit (GANEDIT=... to change).
set -eu
MODEL=${1:?usage: tools/compare_w_wplus.sh MODEL OUT_DIR [STEPS] [N_GRUMPY] [options...]}
OUT=${2:?usage: tools/compare_w_wplus.sh MODEL OUT_DIR [STEPS] [N_GRUMPY] [options...]}
STEPS=${3:-500}
NG=${4:-12}
shift $(($# < 4 ? $# : 4))
BIN=${GANEDIT:-build/ganedit}
SHARED=${SHARED:-../shared}

mkdir -p "$OUT"
list="$OUT/targets.txt"
: >"$list"
for i in 0 2 4; do echo "$SHARED/data/sketches/target_$i.png" >>"$list"; done
ls "$SHARED/data/grumpy64/grumpy" | sort -V | head -n "$NG" |
    sed "s|^|$SHARED/data/grumpy64/grumpy/|" >>"$list"

for sp in w w+; do
    "$BIN" project --model "$MODEL" --targets "$list" --latent "$sp" --steps "$STEPS" \
        --quiet --out "$OUT/$sp" "$@" >/dev/null
done

# manifest.csv: image,folder,status,loss,pixel,perceptual,style,reg,psnr_db,...
psnr() { awk -F, 'NR > 1 && $3 ~ /ok/ { gsub(/"/, "", $2); print $2, $9 }' "$OUT/$1/manifest.csv" | sort; }
join <(psnr w) <(psnr w+) | awk '
    { n++; dw += $2; dp += $3; if ($3 > $2) better++; d = $3 - $2; sd += d; sdd += d * d
      printf "%-28s w %6.2f dB   w+ %6.2f dB   %+5.2f\n", $1, $2, $3, d }
    END { if (!n) { print "no results"; exit 1 }
          m = sd / n; se = n > 1 ? sqrt((sdd / n - m * m) / (n - 1)) : 0
          printf "mean over %d images: w %.2f dB, w+ %.2f dB, w+ - w = %+.2f dB (s.e. %.2f); w+ higher on %d/%d\n",
                 n, dw / n, dp / n, m, se, better, n }'
