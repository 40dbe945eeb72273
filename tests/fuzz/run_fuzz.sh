#!/bin/bash
# run_fuzz.sh FUZZER CORPUS RUNS [SEED [LIBFUZZER-FLAGS...]]: run a libFuzzer target over its
# committed corpus for RUNS executions (-1: no limit; make test: a fixed seed, so a run is
# repeatable; make fuzz: 0, random, and -max_total_time). New
# inputs go to a scratch directory under the build tree, never into the committed corpus. A
# crash leaves its input in the working directory (crash-*): add it to CORPUS with the fix.
set -u
fuzzer=$1 corpus=$2 runs=$3 seed=${4:-0}
shift 3; [ $# = 0 ] || shift
scratch=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-scratch.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
args=(-runs="$runs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
[ "$seed" = 0 ] || args+=(-seed="$seed")
args+=("$@")
"$fuzzer" "${args[@]}" "$scratch" "$corpus" 2>&1 | grep -v '^#[0-9]' | tail -n 40
exit "${PIPESTATUS[0]}"
