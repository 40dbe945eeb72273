#!/usr/bin/env bash
# make fuzz: the /dev/ckpt ioctl storm (tests/kselftest/fuzz_storm.c, build/cmake/kselftest/fuzz_storm)
# in one VM boot, with CKPT_FUZZ_CALLS random calls (default 1000000). Prints the
# seed and the number of calls made; a failure names the seed that replays it:
#   CKPT_FUZZ_SEED=0x... make fuzz
# Passed to the guest when set: CKPT_FUZZ_SEED, CKPT_FUZZ_CALLS, CKPT_FUZZ_ORACLE_CALLS,
# CKPT_FUZZ_COMMITS, CKPT_FUZZ_HOLD_TAKE_RACE (tests/kselftest/fuzz_util.h). CKPT_FUZZ_TIMEOUT:
# seconds the fuzzers may take (default 14400). Then the host fuzz targets (store_fuzz,
# image_fuzz) for CKPT_FUZZ_HOST_SECONDS each (default 600).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export CKPT_FUZZ_CALLS=${CKPT_FUZZ_CALLS:-1000000}
limit=${CKPT_FUZZ_TIMEOUT:-14400}
envs=(--env "CKPT_TEST_TIMEOUT=$limit")
for v in CKPT_FUZZ_SEED CKPT_FUZZ_CALLS CKPT_FUZZ_ORACLE_CALLS CKPT_FUZZ_COMMITS CKPT_FUZZ_HOLD_TAKE_RACE; do
  [ -z "${!v:-}" ] || envs+=(--env "$v=${!v}")
done
log=$top/build/fuzz.log
t0=$SECONDS
scripts/vm/run --timeout $((limit + 600)) "${envs[@]}" -- build/cmake/kselftest/fuzz_storm 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo "fuzz: $((SECONDS - t0)) s; exit $rc"
grep -h '^# fuzz: seed' "$log" | sed 's/^# /fuzz: /'
# The host fuzz targets (tests/fuzz: the store reader and the process-image decoder), each for
# CKPT_FUZZ_HOST_SECONDS (default 600) from its committed corpus with a random seed; make test
# runs them for 100000 executions only. A crash input lands in build/fuzz-artifacts/.
mkdir -p build/fuzz-artifacts
for f in store image; do
  tests/fuzz/run_fuzz.sh "build/cmake/fuzz/${f}_fuzz" "tests/fuzz/corpus/$f" -1 0 \
    -max_total_time="${CKPT_FUZZ_HOST_SECONDS:-600}" -artifact_prefix="$top/build/fuzz-artifacts/$f-"
  frc=$?
  echo "fuzz: ${f}_fuzz exit $frc"
  [ "$frc" = 0 ] || rc=$frc
done
exit "$rc"
