#!/usr/bin/env bash
# coverage.sh - the source lines, branches and functions of src/io/ and
# cli/args.c that the fuzzers' corpora reach, as an llvm-cov table.
#
#   fuzz/coverage.sh [BUILD_DIR]     (from the repository root; make fuzz-cov)
#
# libFuzzer's "cov:" counts instrumented edges of everything linked into a
# target, so it says whether a run found new paths, not how much of a reader
# is exercised. This builds each target once more with clang's source-based
# coverage (no sanitizers), replays BUILD_DIR/corpus/<target> and
# BUILD_DIR/seeds/<target> through it (libFuzzer -runs=0: every input once),
# merges the profiles and prints llvm-cov's per-file report, also saved as
# BUILD_DIR/cov/report.txt.
set -euo pipefail

B=${1:-build-fuzz}
C="$B/cov"
CC=${FUZZ_CC:-clang}
PROFDATA=$(command -v llvm-profdata-14 || command -v llvm-profdata)
COV=$(command -v llvm-cov-14 || command -v llvm-cov)
PKGS="libpng libjpeg libzip json-c zlib"
CFLAGS="-std=c11 -g -O0 -D_GNU_SOURCE -Iinclude -Isrc -Icli $(pkg-config --cflags $PKGS)
        -fprofile-instr-generate -fcoverage-mapping"
LIBS="$(pkg-config --libs $PKGS) -lgif -lm"
TARGETS="safetensors npy torch_zip torch_legacy pickle image cli"

rm -rf "$C"
mkdir -p "$C"
objs=()
for t in $TARGETS; do
    extra=""
    [ "$t" = cli ] && extra=cli/args.c
    # shellcheck disable=SC2086
    $CC $CFLAGS -fsanitize=fuzzer -o "$C/fuzz_$t" "fuzz/fuzz_$t.c" src/core/*.c src/io/*.c $extra \
        $LIBS
    dirs=()
    for d in "$B/corpus/$t" "$B/seeds/$t"; do [ -d "$d" ] && dirs+=("$d"); done
    LLVM_PROFILE_FILE="$C/$t.profraw" "$C/fuzz_$t" -runs=0 "${dirs[@]}" >"$C/$t.log" 2>&1 || true
    objs+=(-object "$C/fuzz_$t")
done
"$PROFDATA" merge -sparse "$C"/*.profraw -o "$C/all.profdata"
"$COV" report "${objs[@]:1}" -instr-profile="$C/all.profdata" src/io/*.c cli/args.c |
    tee "$C/report.txt"
