#!/bin/bash
# Threads with persistent memory (issue 21) in the VM, with ckpt.ko and persistent memory:
# lib_threads_test with the module tracker on a file of the -o dax mount, then the work queue
# (examples/workq.c: producer and consumer threads restored by name, a shared queue under a
# ckpt_mutex_t, timer checkpoints between critical sections) killed with SIGKILL on the
# device-DAX namespace, finishing with the uninterrupted run's result. TAP with a "# Totals:"
# line (tests/vm/run-all). Targeted run: scripts/vm/run -- tests/vm/run-all vm-workq
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$top/build/cmake
kills=${CKPT_VM_KILLS:-8}
pass=0 fail=0
echo "TAP version 13"
if [ ! -c /dev/ckpt ] || [ ! -e /dev/dax0.0 ]; then
  echo "# needs /dev/ckpt and /dev/dax0.0 (run inside scripts/vm/run)"
  echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"; exit 1
fi
t0=$SECONDS
out=$(CKPT_TEST_TRACKERS=module CKPT_TEST_STORE=/mnt/pmem/threads-test.store \
      "$bin/tests/unit/lib_threads_test" --gtest_brief=1 2>&1)
rc=$?
printf '%s\n' "$out" | grep -E '^\[ *(FAILED|PASSED) *\]|Failure|Which is' | head -n 40 | sed 's/^/# /'
if [ $rc -eq 0 ] && grep -q 'PASSED' <<<"$out"; then
  pass=$((pass + 1)); echo "ok 1 lib_threads_test, module tracker, /mnt/pmem ($((SECONDS - t0)) s)"
else
  fail=$((fail + 1)); echo "not ok 1 lib_threads_test, module tracker, /mnt/pmem (exit $rc)"
fi
rm -f /mnt/pmem/threads-test.store
export CKPT_TRACKER=module
out=$(python3 "$top/tests/e2e/kill_campaign.py" --name workq-dax --kills "$kills" --lost-bound 6 --max-delay 2.5 \
      --timeout 100 --store-a /mnt/pmem/workq-ref.store --store-b /dev/dax0.0 \
      -- "$bin/bin/workq" --store '{store}' --pairs 2 --items 60000 --work 300 --interval-ms 200 2>&1)
printf '%s\n' "$out" | grep -E '^(ok|not ok|#)' | grep -v '^# Totals' | sed 's/^/# /'
t=$(printf '%s\n' "$out" | grep -E '^# Totals:' | tail -n1)
if [ -z "$t" ]; then
  fail=$((fail + 1)); printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'
else
  pass=$((pass + $(sed -E 's/.*Totals: pass:([0-9]+).*/\1/' <<<"$t")))
  fail=$((fail + $(sed -E 's/.* fail:([0-9]+).*/\1/' <<<"$t")))
fi
rm -f /mnt/pmem/workq-ref.store
echo "1..$((pass + fail))"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" -eq 0 ]
