#!/bin/sh
# tests/mpi/run.sh BUILD - `ganedit project --targets` under Open MPI on one
# machine (docs/batch.md): 20 grumpy photos (copied into a temporary folder),
#  1. one process, --batch 4: the reference results;
#  2. mpirun -n 3 (oversubscribed), --batch 2: every image done exactly once
#     (one manifest row each, spread over the 3 ranks, no part files left)
#     and every latent.npy byte-identical to the reference;
#  3. mpirun -n 3 again into a new folder, rank 1 killed (SIGKILL) once it
#     has finished a batch: mpirun ends the job, the finished images of every
#     rank survive in their part manifests; a re-run with -n 2 finishes the
#     rest without redoing them, and every latent.npy matches the reference.
# Needs mpirun (openmpi-bin) and a ganedit built with libopenmpi-dev.
set -eu
BUILD=${1:-build}
BIN=$(cd "$BUILD" && pwd)/ganedit
SHARED=${GE_SHARED:-../shared}
M=$SHARED/weights/dcgan_grumpy_deluxe.safetensors
V=$SHARED/weights/vgg19_normalised_conv3_1.safetensors
STEPS=${STEPS:-4}
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
T=$(mktemp -d /tmp/ganedit-mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
MPIRUN="mpirun --allow-run-as-root --oversubscribe"
mkdir "$T/in"
i=0; while [ $i -lt 20 ]; do cp "$SHARED/data/grumpy64/grumpy/$i.png" "$T/in/img$i.png"; i=$((i + 1)); done
proj() { out=$1; shift; "$BIN" project --model "$M" --vgg "$V" --targets "$T/in" --out "$out" \
           --steps "$STEPS" --init-samples 2 --seed 7 --quiet "$@"; }
ok_rows() { grep -c ',ok,' "$1/manifest.csv" || true; }
same_as_ref() {
  for d in "$T"/ref/img*; do
    n=$(basename "$d")
    cmp -s "$d/latent.npy" "$1/$n/latent.npy" || fail "$1/$n/latent.npy differs from the single-process run"
  done
}

t0=$(date +%s)
# 1. the reference: one process
proj "$T/ref" --batch 4 2>"$T/ref.log" || { cat "$T/ref.log"; fail "single-process run"; }
[ "$(ok_rows "$T/ref")" = 20 ] || fail "reference: not 20 ok rows"

# 2. three ranks
$MPIRUN -n 3 "$BIN" project --model "$M" --vgg "$V" --targets "$T/in" --out "$T/mpi" \
  --steps "$STEPS" --init-samples 2 --seed 7 --quiet --batch 2 2>"$T/mpi.log" \
  || { cat "$T/mpi.log"; fail "mpirun -n 3"; }
[ "$(ok_rows "$T/mpi")" = 20 ] || fail "mpi: not 20 ok rows"
[ "$(tail -n +2 "$T/mpi/manifest.csv" | cut -d, -f2 | sort | uniq -d | wc -l)" = 0 ] || fail "an image has two rows"
[ "$(tail -n +2 "$T/mpi/manifest.csv" | wc -l)" = 20 ] || fail "mpi: not 20 rows"
for r in 0 1 2; do
  c=$(tail -n +2 "$T/mpi/manifest.csv" | awk -F, -v r=$r '$11 == r' | wc -l)
  [ "$c" -ge 6 ] && [ "$c" -le 7 ] || fail "rank $r did $c images (expected 6 or 7)"
done
ls "$T/mpi" | grep -q 'manifest\.rank' && fail "part manifests left behind"
same_as_ref "$T/mpi"
echo "ok   3 ranks: 20 images once each, identical to one process"

# 3. kill rank 1 after its first finished batch, then re-run
$MPIRUN -n 3 "$BIN" project --model "$M" --vgg "$V" --targets "$T/in" --out "$T/kill" \
  --steps "$STEPS" --init-samples 2 --seed 7 --quiet --batch 1 2>"$T/kill.log" &
JOB=$!
pid=""; n=0
while [ $n -lt 600 ]; do
  if [ -z "$pid" ]; then
    for p in $(pgrep -P $JOB 2>/dev/null || true); do
      tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && pid=$p
    done
  fi
  if [ -n "$pid" ] && [ -f "$T/kill/manifest.rank1.csv" ] && grep -q ',ok,' "$T/kill/manifest.rank1.csv"; then
    kill -9 "$pid"; break
  fi
  sleep 0.1; n=$((n + 1))
done
[ -n "$pid" ] || fail "did not find rank 1"
if wait $JOB; then fail "mpirun succeeded although rank 1 was killed"; fi
[ -f "$T/kill/manifest.rank1.csv" ] || fail "rank 1's part manifest is gone"
before=$(cat "$T"/kill/manifest*.csv | grep -c ',ok,' || true)
[ "$before" -ge 1 ] && [ "$before" -lt 20 ] || fail "$before images ok after the kill (expected 1..19)"
# the files of the images finished before the kill must not be rewritten
cat "$T"/kill/manifest*.csv | grep ',ok,' | cut -d, -f2 | tr -d '"' | sort -u > "$T/done_before"
for n in $(cat "$T/done_before"); do touch -d '2001-01-01' "$T/kill/$n/latent.npy"; done
$MPIRUN -n 2 "$BIN" project --model "$M" --vgg "$V" --targets "$T/in" --out "$T/kill" \
  --steps "$STEPS" --init-samples 2 --seed 7 --quiet --batch 2 2>"$T/rerun.log" \
  || { cat "$T/rerun.log"; fail "re-run after the kill"; }
grep -q "$(cat "$T/done_before" | wc -l) done before" "$T/rerun.log" || { cat "$T/rerun.log"; fail "re-run did not skip the finished images"; }
for n in $(cat "$T/done_before"); do
  [ "$(date -r "$T/kill/$n/latent.npy" +%Y)" = 2001 ] || fail "$n was redone"
done
[ "$(ok_rows "$T/kill")" = 20 ] || fail "after the re-run: not 20 ok rows"
[ "$(tail -n +2 "$T/kill/manifest.csv" | wc -l)" = 20 ] || fail "after the re-run: not 20 rows"
ls "$T/kill" | grep -q 'manifest\.rank' && fail "part manifests left behind"
same_as_ref "$T/kill"
echo "ok   rank 1 killed after $before images; re-run finished the rest, identical to one process"
echo "tests/mpi/run.sh: all passed in $(( $(date +%s) - t0 )) s"
