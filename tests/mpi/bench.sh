#!/bin/sh
# tests/mpi/bench.sh BUILD [N] [STEPS] - images per minute of
# `ganedit project --targets` over N grumpy photos (default 8) at STEPS Adam
# steps (default 20), for DCGAN (z) and the 64x64 reference StyleGAN2
# (random weights, w+): one process with --batch 1 and --batch 4, and two
# MPI ranks (one OpenMP thread each) with --batch 1 and --batch 4. Prints one
# line per run with the 1-minute load average before it (docs/batch.md).
set -eu
BUILD=${1:-build}; N=${2:-8}; STEPS=${3:-20}
BIN=$(cd "$BUILD" && pwd)/ganedit
SHARED=${GE_SHARED:-../shared}
V=$SHARED/weights/vgg19_normalised_conv3_1.safetensors
export OMP_WAIT_POLICY=passive
T=$(mktemp -d /tmp/ganedit-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir "$T/in"
i=0; while [ $i -lt "$N" ]; do cp "$SHARED/data/grumpy64/grumpy/$i.png" "$T/in/b$i.png"; i=$((i + 1)); done
run() { # name model procs batch
  load=$(cut -d' ' -f1 /proc/loadavg)
  out="$T/out.$1.$3.$4"
  t0=$(date +%s.%N)
  if [ "$3" = 1 ]; then
    "$BIN" project --model "$2" --vgg "$V" --targets "$T/in" --out "$out" --steps "$STEPS" --quiet --batch "$4" 2>/dev/null
  else
    OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -n "$3" "$BIN" project --model "$2" \
      --vgg "$V" --targets "$T/in" --out "$out" --steps "$STEPS" --quiet --batch "$4" 2>/dev/null
  fi
  t1=$(date +%s.%N)
  echo "$1 procs=$3 batch=$4 images=$N steps=$STEPS seconds=$(echo "$t1 - $t0" | bc) \
images_per_min=$(echo "scale=1; 60 * $N / ($t1 - $t0)" | bc) load_before=$load"
}
for model in dcgan:$SHARED/weights/dcgan_grumpy_deluxe.safetensors sg2:$SHARED/ref/stylegan2_g2.safetensors; do
  name=${model%%:*}; path=${model#*:}
  run "$name" "$path" 1 1
  run "$name" "$path" 1 4
  run "$name" "$path" 2 1
  run "$name" "$path" 2 4
done
