#!/usr/bin/env bash
# The VM harness's own promises, checked from the host (two short guest boots):
#   - CMD's exit status comes back: `sh -c 'exit 3'` exits 3;
#   - a WARNING in the guest kernel log fails a run whose command succeeded.
# TAP output with a kselftest-style "# Totals:" line.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
run=$top/scripts/vm/run
n=0 fail=0
check() { n=$((n+1)); if [ "$1" = "$2" ]; then echo "ok $n $3"; else echo "not ok $n $3 (got $1, want $2)"; fail=$((fail+1)); fi; }
echo "TAP version 13"; echo "1..2"
"$run" --no-pmem --no-module -- sh -c 'exit 3' >/dev/null 2>&1; check $? 3 "exit status of the command comes back"
"$run" --no-pmem --no-module -- sh -c 'echo x > /dev/kmsg; echo "WARNING: x" > /dev/kmsg' >/dev/null 2>&1
check $? 125 "a WARNING in the guest kernel log fails the run"
echo "# Totals: pass:$((n-fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail -eq 0 ]
