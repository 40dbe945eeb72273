#!/bin/bash
# make demo-host's story, checked from its output (not from the script's own verdict alone):
# the kill lands after at least two committed checkpoints and before the end, the restart
# resumes from the last checkpoint printed before the kill (same step and epoch), and the
# restored run's answer is the uninterrupted run's. About 25 s on this 2-core host under a
# load of 20; it fails past 120 s.
#   demo_host_test.sh SOURCE_DIR     (CKPT_BIN: the built examples and ckpt-tool)
set -uo pipefail
top=$1
t0=$(date +%s)
out=$("$top/scripts/demo.sh" --host 2>&1); rc=$?
took=$(( $(date +%s) - t0 ))
printf '%s\n' "$out"
fail() { echo "demo_host_test: FAIL: $*"; exit 1; }
[ $rc -eq 0 ] || fail "demo.sh --host exited $rc"
k=$(sed -nE 's/.*kill -9 at about step ([0-9]+) of ([0-9]+), after ([0-9]+) committed checkpoints \(the last: step ([0-9]+), epoch ([0-9]+)\).*/\1 \2 \3 \4 \5/p' <<<"$out")
[ -n "$k" ] || fail "no kill line"
read -r at steps cks ckstep ckepoch <<<"$k"
[ "$cks" -ge 2 ] || fail "killed after $cks committed checkpoints (want >= 2)"
[ "$at" -lt "$steps" ] || fail "killed at step $at of $steps: not mid-run"
[ "$ckstep" -gt 0 ] && [ "$ckstep" -le "$at" ] || fail "last checkpoint at step $ckstep, kill at $at"
r=$(sed -nE 's/^ *resumed at step ([0-9]+) \(epoch ([0-9]+)\)$/\1 \2/p' <<<"$out")
[ "$r" = "$ckstep $ckepoch" ] || fail "resumed at '$r', not at the last checkpoint '$ckstep $ckepoch'"
# The uninterrupted run's result (step 1) and the restored run's (step 4) are the same line.
want=$(grep -m1 -oE 'result: steps=[0-9]+ checksum=[0-9a-f]+' <<<"$out")
got=$(grep -oE 'result: steps=[0-9]+ checksum=[0-9a-f]+' <<<"$out" | tail -n1)
[ -n "$want" ] && [ "$want" = "$got" ] && [ "$(grep -cE 'result: steps=' <<<"$out")" -ge 2 ] ||
  fail "answers differ or missing: '$want' vs '$got'"
grep -q '^== same answer after kill -9 and restore: yes' <<<"$out" || fail "no 'same answer' verdict"
[ $took -le 120 ] || fail "took $took s (want <= 120)"
echo "demo_host_test: ok: killed at step $at of $steps after $cks checkpoints, resumed at step $ckstep (epoch $ckepoch), same answer, $took s"
