#!/bin/bash
# The examples survive kill -9 campaigns in the VM with the module tracker and the DAX writer:
# heat on the device-DAX namespace (/dev/dax0.0), kvindex in a file on the ext4 -o dax mount.
# TAP with a "# Totals:" line (tests/vm/run-all); the campaigns' own TAP lines are folded in.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$top/build/cmake/bin
kc=$top/tests/e2e/kill_campaign.py
kills=${CKPT_VM_KILLS:-8}
export CKPT_TRACKER=module
pass=0 fail=0
echo "TAP version 13"
run() {  # name, then kill_campaign.py arguments
  local name=$1 out; shift
  out=$(python3 "$kc" --name "$name" --kills "$kills" --lost-bound 6 --max-delay 2.5 --timeout 400 "$@" 2>&1)
  printf '%s\n' "$out" | grep -E '^(ok|not ok|#)' | grep -v '^# Totals' | sed 's/^/# /'
  local t
  t=$(printf '%s\n' "$out" | grep -E '^# Totals:' | tail -n1)
  if [ -z "$t" ]; then fail=$((fail + 1)); printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'; return; fi
  pass=$((pass + $(sed -E 's/.*Totals: pass:([0-9]+).*/\1/' <<<"$t")))
  fail=$((fail + $(sed -E 's/.* fail:([0-9]+).*/\1/' <<<"$t")))
}
if [ ! -c /dev/ckpt ] || [ ! -e /dev/dax0.0 ]; then
  echo "# needs /dev/ckpt and /dev/dax0.0 (run inside scripts/vm/run)"
  echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"; exit 1
fi
# heat's two runs (reference and campaign) need two stores: the DAX device and a DAX file.
run heat-dax --store-a /mnt/pmem/heat-ref.store --store-b /dev/dax0.0 \
  -- "$bin/heat" --store '{store}' --n 512 --steps 800 --interval-ms 300
run kvindex-fsdax --store-a /mnt/pmem/kv-a.store --store-b /mnt/pmem/kv-b.store \
  -- "$bin/kvindex" --store '{store}' --records 60000 --every 5000 --heap-mib 16
echo "1..$((pass + fail))"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" -eq 0 ]
