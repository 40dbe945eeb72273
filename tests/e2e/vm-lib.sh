#!/bin/bash
# libckpt in the VM: the host's GoogleTest suites again, with the module tracker and the DAX
# writer (device-DAX /dev/dax0.0 and a file on the -o dax mount /mnt/pmem), plus the io_uring
# writer with the module tracker, the kill -9 campaign on DAX, and the C program.
# Run by tests/vm/run-all (or: scripts/vm/run -- tests/e2e/vm-lib.sh). Prints TAP.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CKPT_LIB_TEST_BIN:-$top/build/cmake/tests/unit}   # override to test another build
n=0 pass=0 fail=0 skip=0

tap() {  # tap STATUS DESCRIPTION   (STATUS: 0 pass, 4 skip, else fail)
  n=$((n + 1))
  case $1 in
    0) pass=$((pass + 1)); echo "ok $n - $2" ;;
    4) skip=$((skip + 1)); echo "ok $n - $2 # SKIP ${3:-}" ;;
    *) fail=$((fail + 1)); echo "not ok $n - $2" ;;
  esac
}

run() {  # run DESCRIPTION ENV... -- PROGRAM ARGS...
  local desc=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  if [ ! -x "$1" ]; then tap 1 "$desc ($1 not built)"; return; fi
  local out t0=$SECONDS
  out=$(env "${envs[@]}" "$@" 2>&1)
  local rc=$?
  printf '%s\n' "$out" | grep -E '^\[ *(FAILED|crash) *\]|Failure|Which is|round [0-9]' | sed 's/^/# /' | head -n 40
  tap $rc "$desc ($((SECONDS - t0)) s)"
}

echo "TAP version 13"
echo "1..10"

module=0
if [ -x "$bin/lib_session_test" ] && \
   env CKPT_REQUIRE_MODULE=1 "$bin/lib_session_test" --gtest_filter='Module.Tracks' >/dev/null 2>&1; then
  module=1
fi
gt="--gtest_brief=1"
dax=/dev/dax0.0 pmemfile=/mnt/pmem/lib-store

nomod="ckpt.ko has no CKPT_FEATURE_TRACK"
# Every test opens (and formats) a store; on /dev/dax0.0 that costs seconds each under TCG, so
# the device gets the tests that prove bytes, consistency and no missed write, the file stores
# the whole suite.
key='Trackers/*RoundTrip*:Trackers/*Randomized*:Trackers/*Concurrent*:Trackers/*Racing*:Trackers/*KernelWrites*:Trackers/*Thp*:Trackers/*Async*'
for store in "$dax" "$pmemfile" ""; do
  where=${store:-a file on /tmp (io_uring writer)}
  filter='Trackers/*:Auto.*'
  [ "$store" != "$dax" ] || filter=$key
  if [ $module -eq 1 ]; then
    run "session suite, module tracker, store $where" CKPT_TEST_TRACKERS=module CKPT_TEST_STORE=$store -- \
      "$bin/lib_session_test" $gt --gtest_filter="$filter"
  else
    tap 4 "session suite, module tracker, store $where" "$nomod"
  fi
done
# The userspace trackers on the DAX writer (the host runs the whole suite on io_uring; under
# TCG all of it takes minutes, so the tests that prove identical bytes and consistency).
# Device-DAX stores are much slower to format under TCG than the -o dax file (both use the DAX
# writer), so the longer suites use the file.
run "session suite, userspace trackers, store $pmemfile" CKPT_TEST_TRACKERS=uffd,mprotect,full CKPT_TEST_STORE=$pmemfile -- \
  "$bin/lib_session_test" $gt --gtest_filter="$key"

# Going back to the retained epoch (ckpt_restore_epoch): the module on device-DAX, the
# userspace trackers on the -o dax file.
if [ $module -eq 1 ]; then
  run "older epochs, module tracker, store $dax" CKPT_TEST_TRACKERS=module CKPT_TEST_STORE=$dax -- \
    "$bin/lib_epoch_test" $gt --gtest_filter='*RestoreTheRetained*'
else
  tap 4 "older epochs, module tracker, store $dax" "$nomod"
fi
run "older epochs, userspace trackers, store $pmemfile" CKPT_TEST_TRACKERS=uffd,mprotect,full CKPT_TEST_STORE=$pmemfile -- \
  "$bin/lib_epoch_test" $gt
run "persistent heap, store $pmemfile" CKPT_TEST_STORE=$pmemfile -- "$bin/lib_heap_test" $gt
run "C++ API, store $pmemfile" CKPT_TEST_STORE=$pmemfile -- "$bin/lib_cxx_test" $gt
run "C API from C11, store $dax" -- "$bin/capi_c11_test" "$dax"
if [ $module -eq 1 ]; then
  # TCG runs ~10x slower than the host: fewer rounds (the host does 200+ kills), and a kill
  # window that gives each child time for a few checkpoints.
  run "kill -9 campaign, module tracker, store $pmemfile" CKPT_TEST_TRACKERS=module CKPT_CRASH_ROUNDS=25 \
    CKPT_CRASH_WINDOW_MS=300,1300 CKPT_TEST_STORE=$pmemfile -- "$bin/lib_crash_test" $gt
else
  tap 4 "kill -9 campaign, module tracker, store $pmemfile" "$nomod"
fi
rm -f "$pmemfile"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ $fail -eq 0 ]
