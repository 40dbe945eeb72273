#!/bin/bash
# The store's DAX writer in the VM: runs each test of build/cmake/tests/unit/store_dax_test
# (device-DAX /dev/dax0.0 and a file on the -o dax mount /mnt/pmem) as one TAP test, then the
# host store suite and the exhaustive crash enumerations again inside the guest (io_uring on
# the guest's tmpfs, where O_DIRECT is refused and the buffered path runs). Run by tests/vm/run-all, or:
#   scripts/vm/run -- tests/e2e/vm-store-dax.sh
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CKPT_BUILD_DIR:-$top/build/cmake}/tests/unit  # another build dir: --env CKPT_BUILD_DIR=...
n=0 pass=0 fail=0 skip=0

tap() {  # tap STATUS DESCRIPTION
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
  else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}

run() {  # run DESCRIPTION PROGRAM ARGS...
  local desc=$1; shift
  if [ ! -x "$1" ]; then echo "# $1 not built (make)"; tap 1 "$desc"; return; fi
  local out rc
  out=$("$@" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^# |^\[ *(FAILED|crash|corrupt|resealed) *\]|Failure|Expected|Which is|error' \
    | sed -E 's/^([^#])/# \1/' | head -n 40
  tap $rc "$desc"
}

# A loop device for the io_uring writer on a block device (StoreBlockDevice.*).
kdir=$top/build/cache/kernel-$(uname -r)
modprobe -C /run/ckpt-modprobe.d -d "$kdir" -S "$(uname -r)" loop 2>/dev/null
truncate -s 8M /tmp/store-blk.img
if loopdev=$(losetup -f --show /tmp/store-blk.img 2>/dev/null); then
  export CKPT_STORE_BLOCKDEV=$loopdev
else
  echo "# no loop device: StoreBlockDevice fails"
fi

echo "TAP version 13"
tests=""
if [ -x "$bin/store_dax_test" ]; then
  tests=$("$bin/store_dax_test" --gtest_list_tests | awk '/^[^ ]/ {s=$1} /^  / {print s $1}')
fi
count=$(printf '%s\n' $tests | grep -c .)
echo "1..$(( count > 0 ? count + 3 : 4 ))"
[ "$count" -gt 0 ] || tap 1 "store DAX tests listed (build/cmake/tests/unit/store_dax_test)"
for t in $tests; do
  run "store DAX: $t" "$bin/store_dax_test" --gtest_filter="$t"
done
run "store suite in the guest (io_uring on tmpfs)" "$bin/store_test"
run "store regions that change in the guest (io_uring on tmpfs)" "$bin/store_region_test"
run "store crash enumeration in the guest (exhaustive ones)" "$bin/store_crash_test" --gtest_filter='-*Sampled*'

[ -z "${loopdev:-}" ] || losetup -d "$loopdev"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ "$fail" -eq 0 ]
