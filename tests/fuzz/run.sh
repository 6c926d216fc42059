#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Runs every fuzzer of a fuzz build (cmake -DLLMPROXY_FUZZ=ON, clang) for a fixed number of
# executions, each on a copy of its seed corpus (the repository's corpus is never written).
#
#   tests/fuzz/run.sh BUILD_DIR RUNS [FUZZER...]
#
# Prints, per fuzzer: executions, seconds, the corpus size before and after, and whether it
# found anything. A find (a crash, a sanitizer report, a broken invariant, a leak or a timeout)
# keeps its working directory and prints the path of the input that triggers it; the exit
# status is then 1 (2 if a fuzzer is missing). Reproduce with: BUILD_DIR/tests/fuzz/NAME INPUT
#
# Environment: FUZZ_SEED (libFuzzer -seed; default 1, so that a run is repeatable; 0 picks one
# at random), FUZZ_MAX_LEN (largest input, default 8192), FUZZ_TIMEOUT (seconds one input may
# take, default 30).
set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: tests/fuzz/run.sh BUILD_DIR RUNS [FUZZER...]" >&2
    exit 2
fi
build="$1"
runs="$2"
shift 2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fuzzers=("$@")
if [ ${#fuzzers[@]} -eq 0 ]; then
    fuzzers=(fuzz_requestgate fuzz_json fuzz_jsonl fuzz_upstreamparser fuzz_ssereplay)
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/llmproxy-fuzz.XXXXXX")"
status=0
keep=0

for name in "${fuzzers[@]}"; do
    bin="$build/tests/fuzz/$name"
    if [ ! -x "$bin" ]; then
        echo "$name: not built ($bin missing)"
        status=2
        continue
    fi
    dir="$work/$name"
    mkdir -p "$dir/corpus" "$dir/found"
    cp "$here/corpus/$name/"* "$dir/corpus/"
    seeds=$(find "$dir/corpus" -type f | wc -l)
    dict=()
    [ -f "$here/$name.dict" ] && dict=("-dict=$here/$name.dict")
    start=$(date +%s.%N)
    ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        "$bin" -runs="$runs" -seed="${FUZZ_SEED:-1}" -max_len="${FUZZ_MAX_LEN:-8192}" \
        -timeout="${FUZZ_TIMEOUT:-30}" -print_final_stats=1 -artifact_prefix="$dir/found/" \
        "${dict[@]}" "$dir/corpus" >"$dir/log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    corpus=$(find "$dir/corpus" -type f | wc -l)
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    found=$(find "$dir/found" -type f)
    if [ $rc -eq 0 ] && [ -z "$found" ]; then
        printf '%s: %s executions in %s s, corpus %s -> %s, nothing found\n' \
            "$name" "${execs:-?}" "$seconds" "$seeds" "$corpus"
    else
        printf '%s: FOUND something after %s executions in %s s (exit status %s)\n' \
            "$name" "${execs:-?}" "$seconds" "$rc"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|=== fuzz invariant)|runtime error' "$dir/log" | head -5
        for f in $found; do echo "  input: $f"; done
        [ -z "$found" ] && echo "  (no input saved)"
        echo "  log: $dir/log"
        status=1
        keep=1
    fi
done

if [ $keep -eq 0 ]; then
    rm -rf "$work"
else
    echo "fuzz: kept $work"
fi
exit $status
