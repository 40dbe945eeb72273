#!/usr/bin/env bash
# The VM harness's own promises, checked from the host (four short guest boots):
#   - CMD's exit status comes back: `sh -c 'exit 3'` exits 3;
#   - a WARNING in the guest kernel log fails a run whose command succeeded;
#   - the guest boots with SLUB debugging and page poisoning, and a SLUB report fails the run;
#   - --no-debug (what make bench uses) boots without them.
# TAP output with a kselftest-style "# Totals:" line.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
run=$top/scripts/vm/run
n=0 fail=0
check() { n=$((n+1)); if [ "$1" = "$2" ]; then echo "ok $n $3"; else echo "not ok $n $3 (got $1, want $2)"; fail=$((fail+1)); fi; }
echo "TAP version 13"; echo "1..4"
"$run" --no-pmem --no-module -- sh -c 'exit 3' >/dev/null 2>&1; check $? 3 "exit status of the command comes back"
"$run" --no-pmem --no-module -- sh -c 'echo x > /dev/kmsg; echo "WARNING: x" > /dev/kmsg' >/dev/null 2>&1
check $? 125 "a WARNING in the guest kernel log fails the run"
# Exit 3 if the debugging options are not in force; else a line as SLUB prints it when a freed
# object was written, which must fail the run although the command succeeds.
slab=/sys/kernel/slab/kmalloc-64
"$run" --no-pmem --no-module -- sh -c "grep -qw slub_debug=FZPU /proc/cmdline && grep -qw page_poison=1 /proc/cmdline &&
  [ \$(cat $slab/poison) = 1 ] && [ \$(cat $slab/red_zone) = 1 ] && [ \$(cat $slab/store_user) = 1 ] &&
  [ \$(cat $slab/sanity_checks) = 1 ] || exit 3
  echo 'BUG kmalloc-64 (Tainted: G           O      ): Poison overwritten' > /dev/kmsg" >/dev/null 2>&1
check $? 125 "SLUB debugging and page poisoning are on, and a SLUB report fails the run"
"$run" --no-debug --no-pmem --no-module -- sh -c "! grep -q slub_debug /proc/cmdline && [ \$(cat $slab/poison) = 0 ]" \
  >/dev/null 2>&1
check $? 0 "--no-debug boots without them"
echo "# Totals: pass:$((n-fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail -eq 0 ]
