#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A write error in the middle of a checkpoint (issue 17): ckpt-tool dump reports it (one line,
# exit 1 as ckpt-tool(1)'s table says for a failed dump), and the previous epoch stays live,
# verifies and restores. Two real write errors:
#   - ENOSPC: the store is a file on a small tmpfs that is then filled up;
#   - EIO: the store is a device-mapper device; after the first dump its table is switched to
#     dm-flakey with error_writes (every write fails with EIO, reads pass), the second dump
#     fails, then the table is switched back and the first epoch is restored.
# The processes are zdtm's anon_big (64 MiB of anonymous memory with a pattern it checks itself
# once told to go): A is dumped first; the failing dump is of another instance B (--replace), which
# needs 64 MiB of new blocks; then A is killed, restored from the store, told to go, and must print
# PASS (its memory is epoch 1's). Run in the VM as root with ckpt.ko loaded
# (scripts/vm/run -- tests/kselftest/store_write_errors.sh). TAP output.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CKPT_BUILD_DIR:-$top/build/cmake}
tool=$build/bin/ckpt-tool
big=$build/zdtm/anon_big
n=0 pass=0 fail=0
tap() {  # tap STATUS DESCRIPTION
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
  else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
say() { sed 's/^/# /'; }
finish() {
  echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
  [ "$fail" -eq 0 ]
  exit
}

echo "TAP version 13"
echo "1..11"
if [ ! -x "$tool" ] || [ ! -x "$big" ]; then echo "# $tool or $big not built (make)"; tap 1 "built"; finish; fi
export DM_DISABLE_UDEV=1  # no udev in the guest: dmsetup makes the /dev/mapper nodes itself
kdir=$top/build/cache/kernel-$(uname -r)
modprobe -C /run/ckpt-modprobe.d -d "$kdir" -S "$(uname -r)" -a loop dm_mod dm_flakey 2>&1 | say

d=$(mktemp -d /tmp/store-werr.XXXXXX)
pids=() loop="" dm=""
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -z "$dm" ] || dmsetup remove --noudevsync "$dm" 2>/dev/null
  [ -z "$loop" ] || losetup -d "$loop" 2>/dev/null
  umount "$d/small" 2>/dev/null
  rm -rf "$d"
}
trap cleanup EXIT

# start_big DIR: anon_big in DIR (ready, go and out files there), its PID on stdout once ready.
start_big() {
  local dir=$1
  mkdir -p "$dir"
  (cd "$dir" && exec "$big" "$dir/ready" "$dir/go" > "$dir/out" 2>&1) &
  local pid=$!
  for _ in $(seq 600); do [ -e "$dir/ready" ] && break; sleep 0.1; done
  echo "$pid"
}
# restore_and_check STORE DIR: kill nothing; restore the store's process (--wait), tell it to go,
# and succeed if it exits 0 having printed PASS (its memory is the dumped one).
restore_and_check() {
  local store=$1 dir=$2 rpid rc=124 i
  rm -f "$dir/go"
  "$tool" restore --store "$store" --wait < /dev/null 2> "$dir/restore.err" &
  rpid=$!
  sleep 0.5
  : > "$dir/go"
  for ((i = 0; i < 1200; i++)); do
    if ! kill -0 $rpid 2>/dev/null; then wait $rpid; rc=$?; break; fi
    sleep 0.1
  done
  [ $rc = 124 ] && kill -9 $rpid 2>/dev/null
  sed 's/^/# /' "$dir/restore.err" "$dir/out"
  [ $rc = 0 ] && grep -q '^PASS anon_big' "$dir/out"
}
epoch_of() { "$tool" inspect --json "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])'; }

# ---- ENOSPC: a file store on a full tmpfs ----
mkdir -p "$d/small"
mount -t tmpfs -o size=128m tmpfs "$d/small" || { tap 1 "mount a 128 MiB tmpfs"; finish; }
a=$(start_big "$d/a"); pids+=("$a")
b=$(start_big "$d/b"); pids+=("$b")
store=$d/small/s
out=$("$tool" dump --store "$store" --leave-running "$a" 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
tap $rc "ENOSPC: first dump (process A, 64 MiB) into a file store on a 128 MiB tmpfs"
dd if=/dev/zero of="$d/small/fill" bs=64k 2>/dev/null
df -k "$d/small" | tail -n 1 | say
out=$("$tool" dump --store "$store" --replace --leave-running "$b" 2>&1); rc=$?
printf '%s\n' "$out" | say
[ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && grep -qi 'no space left' <<<"$out" && kill -0 "$b"
tap $? "ENOSPC: dumping process B on the full file system exits 1 with one line naming it; B runs on"
e=$(epoch_of "$store")
out=$("$tool" verify -q "$store" 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
[ "$rc" -eq 0 ] && [ "$e" = 1 ]
tap $? "ENOSPC: the store still holds epoch 1 (got '$e') and it verifies"
rm -f "$d/small/fill"
kill -9 "$a"; wait "$a" 2>/dev/null
restore_and_check "$store" "$d/a"
tap $? "ENOSPC: epoch 1 restores process A, whose memory checks (PASS)"
umount "$d/small"

# ---- EIO: a device-mapper device whose writes start failing ----
truncate -s 256M "$d/dev.img"
loop=$(losetup -f --show "$d/dev.img") || { tap 1 "loop device"; finish; }
sectors=$(blockdev --getsz "$loop")
dm=ckpt-werr-$$
dmsetup create --noudevsync "$dm" --table "0 $sectors linear $loop 0" 2>&1 | say
dev=/dev/mapper/$dm
[ -b "$dev" ] || { tap 1 "dmsetup create $dm (dm_mod loaded? /dev/mapper/control?)"; finish; }
tap 0 "EIO: device-mapper device $dev over $loop"
c=$(start_big "$d/c"); pids+=("$c")
out=$("$tool" dump --store "$dev" --create --leave-running "$c" 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
tap $rc "EIO: first dump (process C) onto the device (--create)"
# Every write now fails with EIO; reads still work (dm-flakey, always down, error_writes).
table() { dmsetup suspend --noudevsync "$dm" && dmsetup reload --noudevsync "$dm" --table "$1" &&
            dmsetup resume --noudevsync "$dm"; }
table "0 $sectors flakey $loop 0 0 1 1 error_writes" 2>&1 | say
dmsetup table "$dm" | say
out=$("$tool" dump --store "$dev" --replace --leave-running "$b" 2>&1); rc=$?
printf '%s\n' "$out" | say
[ "$rc" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && grep -qi 'input/output error' <<<"$out" && kill -0 "$b"
tap $? "EIO: dumping process B while writes fail exits 1 with one line naming the I/O error; B runs on"
e=$(epoch_of "$dev")
out=$("$tool" verify -q "$dev" 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
[ "$rc" -eq 0 ] && [ "$e" = 1 ]
tap $? "EIO: with writes still failing, the store holds epoch 1 (got '$e') and it verifies"
table "0 $sectors linear $loop 0" 2>&1 | say
out=$("$tool" verify -q "$dev" 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
tap $rc "EIO: the device working again, epoch 1 verifies"
kill -9 "$c"; wait "$c" 2>/dev/null
restore_and_check "$dev" "$d/c"
tap $? "EIO: epoch 1 restores process C, whose memory checks (PASS)"
# And the device takes a checkpoint again: the failed one left nothing in the way.
out=$("$tool" dump --store "$dev" --replace --leave-running "$b" 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
e=$(epoch_of "$dev")
[ "$rc" -eq 0 ] && [ "$e" = 2 ]
tap $? "EIO: after the device recovers, dumping B commits epoch 2 (got '$e')"
finish
