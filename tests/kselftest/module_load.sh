#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# ckpt.ko loads and unloads cleanly, /dev/ckpt follows it, and the module cannot be unloaded
# while a session is open. Run in the VM as root with ckpt.ko loaded; KO names the module file.
# Output is TAP, as kselftest's shell tests print it.
set -u
KO=${VM_CKPT_KO:?the module file: run in scripts/vm/run, which sets VM_CKPT_KO}
# Loaded again with the parameters it was loaded with (the VM harness sets hook_stay_armed and
# the mode and group of /dev/ckpt).
ARGS="hook_stay_armed=$(cat /sys/module/ckpt/parameters/hook_stay_armed 2>/dev/null || echo N)"
for p in dev_mode dev_gid; do
  [ -r /sys/module/ckpt/parameters/$p ] && ARGS="$ARGS $p=$(cat /sys/module/ckpt/parameters/$p)"
done
n=0 fail=0
ok() { n=$((n+1)); echo "ok $n $1"; }
nok() { n=$((n+1)); fail=$((fail+1)); echo "not ok $n $1"; }
echo "TAP version 13"
echo "1..5"
[ -c /dev/ckpt ] && ok "loaded: /dev/ckpt present" || nok "loaded: /dev/ckpt present"
exec 9<>/dev/ckpt
if rmmod ckpt 2>/dev/null; then nok "rmmod refused while a session is open"; insmod "$KO" $ARGS; else ok "rmmod refused while a session is open"; fi
exec 9>&-
rmmod ckpt && ok "rmmod once no session is open" || nok "rmmod once no session is open"
[ ! -e /dev/ckpt ] && ok "/dev/ckpt gone after rmmod" || nok "/dev/ckpt gone after rmmod"
insmod "$KO" $ARGS && [ -c /dev/ckpt ] && ok "insmod again" || nok "insmod again"
echo "# Totals: pass:$((n-fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail -eq 0 ]
