#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The ckpt.ko that DKMS built from the ckpt-dkms package (tests/pkg/deb_test.sh, into
# build/deb/dkms) for the kernel this guest runs: it loads, /dev/ckpt appears, the module's
# tracking tests pass against it (track_api_test), and a program checkpoints through it with the
# module tracker and restores. Then the tree's ckpt.ko is loaded again as it was. Run in the VM
# as root by tests/vm/run-all. TAP output. Skipped (exit 4) when no DKMS build for this kernel is
# there (make test builds it in its host part, before the VM part).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
k=$(uname -r)
ko=$(ls "$top"/build/deb/dkms/ckpt/*/"$k"/*/module/ckpt.ko* 2>/dev/null | head -n1)
echo "TAP version 13"
if [ -z "$ko" ]; then
  echo "1..0 # SKIP no DKMS-built ckpt.ko for $k in build/deb/dkms (tests/pkg/deb_test.sh builds it)"
  exit 4
fi
n=0 fail=0
ok() { n=$((n+1)); echo "ok $n $1"; }
nok() { n=$((n+1)); fail=$((fail+1)); echo "not ok $n $1"; }
d=$(mktemp -d)
case $ko in *.xz) xz -dc "$ko" > "$d/ckpt.ko"; ko=$d/ckpt.ko ;; esac
echo "# $ko"
# Loaded as the harness loaded the tree's module: under TCG the fault hook must stay armed
# (kmod/fault.c, hook_stay_armed), and /dev/ckpt keeps its mode and group (dev_mode, dev_gid);
# a module not loaded at all is loaded with hook_stay_armed=1.
was=$(cat /sys/module/ckpt/parameters/hook_stay_armed 2>/dev/null)
args="hook_stay_armed=${was:-1}"
for p in dev_mode dev_gid; do
  [ -r /sys/module/ckpt/parameters/$p ] && args="$args $p=$(cat /sys/module/ckpt/parameters/$p)"
done
[ -n "$was" ] && rmmod ckpt
vm=$(modinfo -F vermagic "$ko")
[ "${vm%% *}" = "$k" ] && ok "DKMS-built for the running kernel (vermagic $vm)" || nok "DKMS-built for the running kernel (vermagic $vm, running $k)"
if insmod "$ko" $args && [ -c /dev/ckpt ]; then ok "insmod the DKMS-built ckpt.ko: /dev/ckpt present"
else nok "insmod the DKMS-built ckpt.ko: /dev/ckpt present"; fi
if "$top/build/cmake/kselftest/track_api_test" > "$d/log" 2>&1; then
  ok "track_api_test passes against it ($(grep -E '^# Totals' "$d/log"))"
else nok "track_api_test passes against it"; sed 's/^/# /' "$d/log" | grep -E 'not ok|FAIL|Totals|Expected|\.c:[0-9]+:' | head -n 20; fi
heat=$top/build/cmake/bin/heat
a=(--store "$d/h.store" --n 256 --steps 60 --interval-ms 0)
if CKPT_TRACKER=module "$heat" "${a[@]}" > "$d/o1" 2>&1 && want=$(grep '^result:' "$d/o1") &&
   CKPT_TRACKER=module "$heat" "${a[@]}" > "$d/o2" 2>&1 && grep -q '^resumed at step 60' "$d/o2" &&
   [ "$(grep '^result:' "$d/o2")" = "$want" ]; then
  ok "heat checkpoints with the module tracker and restores the same result"
else nok "heat checkpoints with the module tracker and restores the same result"; sed 's/^/# /' "$d/o1" "$d/o2" | tail -n 6; fi
rmmod ckpt || nok "rmmod the DKMS-built ckpt.ko"
if [ -n "$was" ]; then
  insmod "${VM_CKPT_KO:-$top/build/kmod/$k/ckpt.ko}" $args || nok "the tree's ckpt.ko loaded again"
fi
rm -rf "$d"
echo "1..$n"
echo "# Totals: pass:$((n-fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail -eq 0 ]
