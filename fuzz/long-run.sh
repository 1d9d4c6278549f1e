#!/usr/bin/env bash
# One long run per fuzz target, one at a time, at the lowest CPU priority:
#   fuzz/long-run.sh [RUNS] [TARGET...]
# RUNS defaults to 10000000; TARGET defaults to every target. Each run
# starts from a scratch copy of fuzz/corpus/<target> in $SCRATCH (default
# /tmp/sacbench-fuzz), so the checked-in corpus never grows; libFuzzer's
# log goes to $SCRATCH/<target>.log and one summary line per target to
# $SCRATCH/summary.tsv. Needs a nightly toolchain and cargo-fuzz
# (rustup toolchain install nightly; cargo install cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-10000000}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=($(ls fuzz_targets | sed 's/\.rs$//'))
fi
scratch=${SCRATCH:-/tmp/sacbench-fuzz}
mkdir -p "$scratch"
nice -n 19 cargo +nightly fuzz build -s none
for t in "${targets[@]}"; do
    corpus="$scratch/corpus-$t"
    rm -rf "$corpus" && cp -r "corpus/$t" "$corpus"
    start=$(date +%s)
    status=0
    nice -n 19 cargo +nightly fuzz run -s none "$t" "$corpus" -- \
        -runs="$runs" -timeout=10 -print_final_stats=1 >"$scratch/$t.log" 2>&1 || status=$?
    secs=$(( $(date +%s) - start ))
    final=$(grep -E '^#[0-9]+\s+DONE' "$scratch/$t.log" | tail -1 || true)
    crashes=$(ls artifacts/"$t" 2>/dev/null | grep -c -E '^(crash|oom|timeout|leak)-' || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$status" "$secs" "$(ls "$corpus" | wc -l)" "$crashes" "$final" \
        | tee -a "$scratch/summary.tsv"
done
