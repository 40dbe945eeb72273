#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# hook_stay_armed=1 (kmod/fault.c; the VM harness loads ckpt.ko with it): the fault hook is on
# handle_mm_fault() from load on, before any region exists and after the last one is gone, so
# the kernel's text is patched once per boot. Read from ftrace's enabled_functions. Run in the
# VM as root with ckpt.ko loaded. Output is TAP, as kselftest's shell tests print it; exit 4
# (skip) when the module was loaded without the parameter.
set -u
tr=/sys/kernel/tracing
param=/sys/module/ckpt/parameters/hook_stay_armed
n=0 fail=0
ok() { n=$((n+1)); echo "ok $n $1"; }
nok() { n=$((n+1)); fail=$((fail+1)); echo "not ok $n $1"; }
armed() { grep -q '^handle_mm_fault\b' "$tr/enabled_functions"; }
echo "TAP version 13"
if [ "$(cat "$param" 2>/dev/null)" != Y ]; then
  echo "1..0 # SKIP ckpt.ko was loaded without hook_stay_armed=1"
  exit 4
fi
[ -r "$tr/enabled_functions" ] || mount -t tracefs nodev "$tr" 2>/dev/null
echo "1..3"
if [ ! -r "$tr/enabled_functions" ]; then
  nok "tracefs readable at $tr"
else
  ok "tracefs readable at $tr"
fi
# No test program has a session open now (run-all runs one at a time): no region exists.
armed && ok "hook armed with no region anywhere" || nok "hook armed with no region anywhere"
# A tracked process (ckpt-tool run registers its mappings) comes and goes: the last region's
# removal does not disarm it, not even a linger later.
tool=${CKPT_BUILD_DIR:-$(dirname "$0")/../../build/cmake}/bin/ckpt-tool
store=$(mktemp -u /tmp/hook-armed.XXXXXX)
if "$tool" run --interval 50 --store "$store" -- sleep 0.5 >/dev/null 2>&1; then
  sleep "$(awk '{ print $1 / 1000 + 1 }' /sys/module/ckpt/parameters/hook_linger_ms)"
  armed && ok "still armed a linger after the last region went" || nok "still armed a linger after the last region went"
else
  nok "ckpt-tool run of a short process"
fi
rm -f "$store"
echo "# Totals: pass:$((n-fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail -eq 0 ]
