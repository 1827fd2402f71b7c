#!/usr/bin/env bash
# run.sh - runs the libFuzzer targets one after the other, each for a fixed
# time, and prints one summary line per target (executions, executions per
# second, libFuzzer's cov: and ft: counts, corpus size, result).
#
#   fuzz/run.sh BUILD_DIR SECONDS [TARGET...]     (from the repository root;
#                                                   make fuzz / make fuzz-ci call it)
#
# Before fuzzing, each target replays its regression inputs
# (tests/vectors/fuzz_regress/<target>-*), which must run clean. The working
# corpus is BUILD_DIR/corpus/<target> (grows across runs), seeded from
# BUILD_DIR/seeds/<target> (fuzz/seed_corpus.sh); crashes are saved in
# BUILD_DIR/crashes/<target>/ and logs in BUILD_DIR/logs/. Targets run one at
# a time under nice, one process each (the machine is shared); set
# FUZZ_ARGS (e.g. "-fork=8") for more. Exit status 1 if any target crashed.
# Besides libFuzzer's exec/s (per wall-clock second), the summary gives
# executions per CPU second (cpu_s from /usr/bin/time), which is what the
# targets cost when the machine is busy with other work.
set -u

B=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
T=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
TARGETS=${*:-safetensors npy torch_zip torch_legacy pickle image cli}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

maxlen() {
    case $1 in
    npy) echo 16384 ;;
    cli) echo 4096 ;;
    *) echo 65536 ;;
    esac
}

dict() {
    case $1 in
    safetensors | npy | image | cli) echo "fuzz/$1.dict" ;;
    pickle | torch_legacy) echo "fuzz/pickle.dict" ;;
    torch_zip)
        cat fuzz/pickle.dict fuzz/zip.dict >"$B/torch_zip.dict"
        echo "$B/torch_zip.dict"
        ;;
    esac
}

mkdir -p "$B/logs"
failed=0
summary="$B/logs/summary.txt"
printf '%-13s %6s %6s %12s %8s %9s %6s %7s %6s  %s\n' target secs cpu_s execs exec/s exec/cpu_s \
    cov ft corpus result |
    tee "$summary"
for t in $TARGETS; do
    bin="$B/fuzz_$t"
    log="$B/logs/$t.log"
    mkdir -p "$B/corpus/$t" "$B/crashes/$t" "$B/seeds/$t"
    result=ok
    regress=$(ls tests/vectors/fuzz_regress/"$t"-* 2>/dev/null)
    if [ -n "$regress" ] && ! "$bin" $regress >"$B/logs/$t.regress.log" 2>&1; then
        result="REGRESSION (see $B/logs/$t.regress.log)"
        failed=1
    fi
    start=$(date +%s)
    timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -f '%U %S' -o "$B/logs/$t.cpu")
    nice -n 10 "${timer[@]}" "$bin" -max_total_time="$T" -max_len="$(maxlen "$t")" -dict="$(dict "$t")" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$B/crashes/$t/" ${FUZZ_ARGS:-} \
        "$B/corpus/$t" "$B/seeds/$t" >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    if [ $rc -ne 0 ]; then
        result="CRASH rc=$rc (see $log and $B/crashes/$t/)"
        failed=1
    fi
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(printf '%s' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corp=$(printf '%s' "$last" | sed -n 's/.*corp: \([0-9]*\).*/\1/p')
    cpu=$(awk '/^[0-9.]+ [0-9.]+$/ { printf "%.1f", $1 + $2 }' "$B/logs/$t.cpu" 2>/dev/null)
    per_cpu=$(awk -v e="${execs:-0}" -v c="${cpu:-0}" 'BEGIN { if (c > 0) printf "%d", e / c; else print "-" }')
    printf '%-13s %6s %6s %12s %8s %9s %6s %7s %6s  %s\n' "$t" "$secs" "${cpu:--}" "${execs:--}" \
        "${rate:--}" "$per_cpu" "${cov:--}" "${ft:--}" "${corp:--}" "$result" | tee -a "$summary"
done
exit $failed
