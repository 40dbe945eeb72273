#!/bin/bash
# Nothing lost by a mistake (issue 17), on real block devices in the guest: a loop device holding
# an ext4 file system is refused by ckpt_open() (heat, which asks CKPT_CFG_CREATE) and by
# ckpt-tool dump (exit 4, one line naming ext4), with and without --create, and the file system
# still checks clean; --force formats it. A blank loop device needs --create. A store on a
# read-only loop device (losetup -r: read-only media) is inspected and verified.
# Run by tests/vm/run-all, or: scripts/vm/run -- tests/e2e/vm-store-safety.sh
# (CKPT_BUILD_DIR=/other/build/cmake runs another build's binaries: main's, to see it fail).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CKPT_BUILD_DIR:-$top/build/cmake}
tool=$build/bin/ckpt-tool
heat=$build/bin/heat
n=0 pass=0 fail=0

tap() {  # tap STATUS DESCRIPTION
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
  else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
say() { sed 's/^/# /'; }

echo "TAP version 13"
echo "1..10"
if [ ! -x "$tool" ] || [ ! -x "$heat" ]; then
  echo "# $tool or $heat not built (make)"
  echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"
  exit 1
fi
kdir=$top/build/cache/kernel-$(uname -r)
modprobe -C /run/ckpt-modprobe.d -d "$kdir" -S "$(uname -r)" loop 2>/dev/null
d=$(mktemp -d /tmp/store-safety.XXXXXX)
loops=()
cleanup() {
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
  rm -rf "$d"
}
trap cleanup EXIT

truncate -s 16M "$d/fs.img"
if ! fs=$(losetup -f --show "$d/fs.img"); then
  echo "# no loop device"
  echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"
  exit 1
fi
loops+=("$fs")
mkfs.ext4 -q -F "$fs" || { echo "# mkfs.ext4 $fs failed"; exit 1; }
fs_ok() { e2fsck -n -f "$1" >/dev/null 2>&1; }

# ckpt_open() through heat (CKPT_CFG_CREATE): refused, the file system untouched.
out=$("$heat" --store "$fs" --n 64 --steps 10 2>&1); rc=$?
printf '%s\n' "$out" | head -n 3 | say
[ "$rc" -ne 0 ] && grep -q 'ext4' <<<"$out" && fs_ok "$fs"
tap $? "ckpt_open (CKPT_CFG_CREATE) refuses a loop device holding ext4, names it, fs intact"

sleep 3600 > /dev/null 2>&1 &   # killed at the end (a loaded TCG guest outran 60 s); its own stdout: one shared with this script is refused (shared offset)
pid=$!
for opt in "" "--create"; do
  out=$("$tool" dump --store "$fs" $opt --leave-running $pid 2>&1); rc=$?
  printf '%s\n' "$out" | say
  [ "$rc" -eq 4 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && grep -q '"ext4" file system' <<<"$out" &&
    grep -q -- '--force' <<<"$out" && kill -0 $pid && fs_ok "$fs"
  tap $? "ckpt-tool dump ${opt:-(no option)} onto ext4: exit 4, one line naming ext4 and --force, process and fs intact"
done
blkid -p "$fs" 2>/dev/null | say
out=$("$tool" dump --store "$fs" --force --leave-running $pid 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
[ "$rc" -eq 0 ] && ! fs_ok "$fs" && "$tool" inspect "$fs" >/dev/null
tap $? "ckpt-tool dump --force formats it (and the store inspects)"

# A blank device: a store only with --create.
truncate -s 16M "$d/blank.img"
blank=$(losetup -f --show "$d/blank.img") && loops+=("$blank")
out=$("$tool" dump --store "$blank" --leave-running $pid 2>&1); rc=$?
printf '%s\n' "$out" | say
[ "$rc" -eq 4 ] && grep -q 'holds no ckpt store' <<<"$out" && grep -q -- '--create' <<<"$out" &&
  [ -z "$(tr -d '\0' < "$d/blank.img" | head -c 1)" ]
tap $? "ckpt-tool dump onto a blank device: exit 4 naming --create, nothing written"
out=$("$tool" dump --store "$blank" --create --leave-running $pid 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
tap $rc "ckpt-tool dump --create onto a blank device"
kill $pid 2>/dev/null; wait $pid 2>/dev/null

# Read-only media: the store of the blank device, copied onto a read-only loop device.
losetup -d "$blank"
ro=$(losetup -r -f --show "$d/blank.img") && loops+=("$ro")
out=$("$tool" inspect "$ro" 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
tap $rc "ckpt-tool inspect of a store on a read-only device"
out=$("$tool" verify -q "$ro" 2>&1); rc=$?
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
tap $rc "ckpt-tool verify of a store on a read-only device"
# Inspections at once: another reader holds the shared POSIX lock (what a running inspect or
# restore holds) while inspect and verify run.
python3 -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
print("locked", flush=True); time.sleep(5)' "$ro" > "$d/locked" &
lk=$!
for _ in $(seq 50); do [ -s "$d/locked" ] && break; sleep 0.1; done
out=$("$tool" inspect "$ro" 2>&1); rc=$?
out1=$("$tool" verify -q "$ro" 2>&1); rc1=$?
[ "$rc" -eq 0 ] && [ "$rc1" -eq 0 ] && [ -s "$d/locked" ]
tap $? "inspect and verify while another reader holds the store"
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | say
[ "$rc1" -eq 0 ] || printf '%s\n' "$out1" | say
kill $lk 2>/dev/null; wait $lk 2>/dev/null

# Writing needs the write lock: a writer on the read-only device is refused, clearly.
out=$("$heat" --store "$ro" --n 64 --steps 10 2>&1); rc=$?
printf '%s\n' "$out" | head -n 2 | say
[ "$rc" -ne 0 ]
tap $? "ckpt_open for writing on a read-only device fails"

echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" -eq 0 ]
