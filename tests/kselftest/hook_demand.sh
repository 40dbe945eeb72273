#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The default fault hook, armed on demand (hook_stay_armed=0, what real machines run; the VM
# harness loads ckpt.ko with hook_stay_armed=1, kmod/fault.c says why): ckpt.ko is reloaded
# with hook_stay_armed=0 and a short hook_linger_ms, and the exactness tests run through
# several arm/disarm cycles, each checked in ftrace's enabled_functions (armed while a region
# exists, disarmed a linger after the last one). Also: with the hook disarmed,
# kernel.ftrace_enabled=0 makes REGISTER fail with EBUSY (track_lostwrite_test). At the end
# ckpt.ko is loaded again with the parameters it had. Run in the VM as root. TAP output.
#
# Each cycle patches handle_mm_fault() twice (text_poke_bp). QEMU's TCG was once seen to
# livelock on that (a vCPU spinning on the stale int3; Documentation/vm-harness.md): the
# harness's softlockup_panic=1 turns that into a failed run, not a hang.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
ks=${CKPT_BUILD_DIR:-$top/build/cmake}/kselftest
KO=${VM_CKPT_KO:?the module file: run in scripts/vm/run, which sets VM_CKPT_KO}
params=/sys/module/ckpt/parameters
tr=/sys/kernel/tracing
cycles=${CKPT_HOOK_CYCLES:-3}
n=0 fail=0
ok() { n=$((n+1)); echo "ok $n $1"; }
nok() { n=$((n+1)); fail=$((fail+1)); echo "not ok $n $1"; }
armed() { grep -q '^handle_mm_fault\b' "$tr/enabled_functions"; }
echo "TAP version 13"
[ -r "$tr/enabled_functions" ] || mount -t tracefs nodev "$tr" 2>/dev/null
stay=$(cat $params/hook_stay_armed) linger=$(cat $params/hook_linger_ms)
case $stay in Y) stay=1 ;; N) stay=0 ;; esac
dev="dev_mode=$(cat $params/dev_mode) dev_gid=$(cat $params/dev_gid)"

if ! { rmmod ckpt && insmod "$KO" hook_stay_armed=0 hook_linger_ms=100 $dev; }; then
  nok "reload ckpt.ko with hook_stay_armed=0"
  insmod "$KO" hook_stay_armed=$stay hook_linger_ms=$linger $dev 2>/dev/null
  echo "1..$n"; echo "# Totals: pass:0 fail:$fail xfail:0 xpass:0 skip:0 error:0"; exit 1
fi
ok "reload ckpt.ko with hook_stay_armed=0 hook_linger_ms=100"
armed && nok "disarmed after load, no region" || ok "disarmed after load, no region"

for i in $(seq "$cycles"); do
  # A region exists for the program's life: armed meanwhile (checked from here, mid-run).
  # Each of its tests opens a session of its own: more arm/disarm cycles inside.
  "$ks/track_exact_test" > /tmp/hook-demand.$$ 2>&1 &
  pid=$!
  seen=0
  while kill -0 $pid 2>/dev/null; do armed && seen=1; sleep 0.2; done
  wait $pid && ok "cycle $i: track_exact_test passes with the hook armed on demand" ||
    { nok "cycle $i: track_exact_test passes with the hook armed on demand"; sed 's/^/# /' /tmp/hook-demand.$$ | tail -n 30; }
  [ $seen = 1 ] && ok "cycle $i: armed while it ran" || nok "cycle $i: armed while it ran"
  sleep 0.5
  armed && nok "cycle $i: disarmed a linger after its last region" ||
    ok "cycle $i: disarmed a linger after its last region"
done
rm -f /tmp/hook-demand.$$

# ftrace disabled while disarmed: REGISTER fails with EBUSY; ftrace on again: it works. And the
# rest of the loss tests under this mode.
if "$ks/track_lostwrite_test" > /tmp/hook-demand.$$ 2>&1; then
  ok "track_lostwrite_test (ftrace disabled: REGISTER fails) with the hook on demand"
else
  nok "track_lostwrite_test (ftrace disabled: REGISTER fails) with the hook on demand"
  sed 's/^/# /' /tmp/hook-demand.$$ | tail -n 30
fi
rm -f /tmp/hook-demand.$$
[ "$(cat /proc/sys/kernel/ftrace_enabled)" = 1 ] || { echo 1 > /proc/sys/kernel/ftrace_enabled; nok "ftrace_enabled left at 0"; }

# Loaded again as it was (run-all fails a program that leaves hook_stay_armed changed).
rmmod ckpt && insmod "$KO" hook_stay_armed=$stay hook_linger_ms=$linger $dev &&
  ok "reloaded with hook_stay_armed=$stay hook_linger_ms=$linger" ||
  nok "reloaded with hook_stay_armed=$stay hook_linger_ms=$linger"
echo "1..$n"
echo "# Totals: pass:$((n-fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail -eq 0 ]
