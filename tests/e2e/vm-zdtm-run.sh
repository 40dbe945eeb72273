#!/bin/bash
# `ckpt-tool run` (incremental checkpoints) of long computations, killed with SIGKILL and
# resumed with `ckpt-tool restore --interval` again and again until they finish; they must end
# with the right answer: tests/zdtm/longcalc.c (scattered writes over 8 MiB) and
# tests/zdtm/layoutcalc.c (its layout keeps changing: munmap/mmap, mprotect splits,
# MADV_DONTNEED, brk, pread into memory). Also: `run --interval 0 --stats` checkpoints only
# on SIGUSR1 and logs one JSON line per checkpoint (on_request); and ckpt-tool itself killed
# with SIGKILL in the middle of checkpoints leaves a store that verifies and restores the
# previous checkpoint (tool_crash). Prints TAP and a kselftest "# Totals:" line.
#   tests/e2e/vm-zdtm-run.sh [KILLS [PART]]  (PART: on_request, dropped, tool_crash, longcalc
#                                             or layoutcalc; default
#                                             all. CKPT_BUILD: build dir, default build/cmake)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CKPT_BUILD:-$top/build/cmake}
tool=$build/bin/ckpt-tool
kills=${1:-3} part=${2:-all} interval=300
n=0 pass=0 fail=0

tap() {
  n=$((n + 1))
  if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"; else
    fail=$((fail + 1)); echo "not ok $n - $2${3:+ # $3}"; fi
}

pid_of() {  # the program's pid from a run/restore log
  sed -n 's/.*\(started\|restored as\) pid \([0-9]*\).*/\2/p; s/.*resumed as pid \([0-9]*\).*/\1/p' "$1" | tail -1
}

# STEPS: enough work that the program is still running at the last kill (each kill comes ~4 s
# after the start or restore); 600 layoutcalc steps (20 ms of sleep each) ran out once the
# checkpoints' pauses and the restores got faster.
campaign() {  # campaign PROGRAM STEPS
local name=$1 steps=$2 prog=$build/zdtm-run/$1 k i pid rc sup
if [ ! -x "$prog" ] || [ ! -x "$tool" ]; then
  for ((k = 0; k < kills + 2; k++)); do tap 1 "$name built"; done
  return
fi
local d; d=$(mktemp -d /tmp/zrun.XXXXXX)
local img out
img=$d/img out=$d/out
"$tool" run --interval $interval --store "$img" -- "$prog" "$steps" >"$out" 2>"$d/log.0" &
sup=$!
for ((k = 1; k <= kills; k++)); do
  # Let it start (the first exec over 9p is slow), make progress and take a few checkpoints,
  # then kill it.
  for ((i = 0; i < 600; i++)); do
    [ -n "$(pid_of "$d/log.$((k - 1))")" ] && break
    sleep 0.1
  done
  sleep 4
  pid=$(pid_of "$d/log.$((k - 1))")
  if [ -z "$pid" ] || ! kill -9 "$pid" 2>/dev/null; then
    sed 's/^/# /' "$d/log.$((k - 1))"
    tap 1 "$name: kill $k" "no program to kill (finished too early? pid '$pid')"
    continue
  fi
  wait $sup
  rc=$?
  grep -c "checkpoint" "$d/log.$((k - 1))" | sed 's/^/# checkpoints before kill: /'
  "$tool" restore --store "$img" --interval $interval >/dev/null 2>"$d/log.$k" &
  sup=$!
  for ((i = 0; i < 300; i++)); do
    [ -n "$(pid_of "$d/log.$k")" ] && break
    kill -0 $sup 2>/dev/null || break
    sleep 0.1
  done
  if [ $rc = 137 ] && [ -n "$(pid_of "$d/log.$k")" ]; then
    tap 0 "$name: kill -9 $k and restore ($(sed -n 's/.*\(restored as pid [0-9]* in [0-9.]* s\).*/\1/p' "$d/log.$k"))"
  else
    tail -3 "$d/log.$((k - 1))" | sed 's/^/# /'; sed 's/^/# /' "$d/log.$k"
    tap 1 "$name: kill -9 $k and restore" "supervisor exit $rc"
  fi
done
# Let it finish (bounded).
for ((i = 0; i < 3000; i++)); do kill -0 $sup 2>/dev/null || break; sleep 0.1; done
if kill -0 $sup 2>/dev/null; then
  kill -9 "$(pid_of "$d/log.$kills")" 2>/dev/null
  tap 1 "$name finished" "still running after 300 s"
else
  wait $sup; rc=$?
  [ $rc = 0 ] || for f in "$d"/log.*; do sed 's/^/# /' "$f"; done
  sed 's/^/# /' "$d/log.$kills" | tail -3
  tap $rc "$name finished after $kills kills (exit $rc)"
fi
sed 's/^/# /' "$out"
if grep -q "^RESULT OK" "$out"; then tap 0 "$name: right answer"; else tap 1 "$name: right answer"; fi
rm -rf "$d"
}

# checkpoint_now SUP STATS N: ask `run` (pid SUP) for a checkpoint, wait (up to 60 s) until its
# --stats file STATS holds N lines.
checkpoint_now() {
  local i
  kill -USR1 "$1"
  for ((i = 0; i < 600; i++)); do
    [ "$(cat "$2" 2>/dev/null | wc -l)" -ge "$3" ] && return 0
    sleep 0.1
  done
  return 1
}

# on_request: --interval 0 takes checkpoints only on SIGUSR1; --stats has one line each; the
# second (incremental, the 64 MiB program idle meanwhile) writes < 2% of what the first did.
on_request() {
  local d; d=$(mktemp -d /tmp/zreq.XXXXXX)
  local i k sup rc lines=0
  "$tool" run --interval 0 --stats "$d/stats" --store "$d/img" -- \
    "$build/zdtm/anon_big" "$d/ready" "$d/go" >"$d/out" 2>"$d/log" &
  sup=$!
  for ((i = 0; i < 600; i++)); do [ -e "$d/ready" ] && break; sleep 0.1; done
  for k in 1 2; do checkpoint_now $sup "$d/stats" $k; done
  sleep 1
  lines=$(cat "$d/stats" 2>/dev/null | wc -l)
  # The supervisor keeps its own pages resident (mlockall), so no pause reads its code.
  local lck; lck=$(awk '/^VmLck:/ { print $2 }' /proc/$sup/status 2>/dev/null)
  [ "${lck:-0}" -gt 0 ] && tap 0 "run keeps its own pages locked in memory (VmLck $lck kB)" ||
    tap 1 "run keeps its own pages locked in memory" "VmLck '${lck}'"
  touch "$d/go"
  wait $sup; rc=$?
  sed 's/^/# /' "$d/stats" "$d/log" "$d/out"
  [ "$lines" = 2 ] && tap 0 "run --interval 0: one checkpoint per SIGUSR1, none else" ||
    tap 1 "run --interval 0: one checkpoint per SIGUSR1, none else" "$lines stats lines"
  if /usr/bin/python3 - "$d/stats" <<'PY'
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])][:2]
keys = {"checkpoint", "epoch", "pages", "mappings", "pause_s", "total_s", "bytes"}
assert keys <= a.keys() and keys <= b.keys(), a
assert b["epoch"] > a["epoch"] > 0, (a, b)
assert a["pages"] >= 16384, a                        # 64 MiB touched
assert 0 < b["pages"] < a["pages"] / 50, (a, b)      # idle since: < 2%
assert 0 < b["bytes"] < a["bytes"] / 10, (a, b)
assert 0 < a["pause_s"] <= a["total_s"], a
PY
  then tap 0 "--stats lines: fields, epochs grow, the incremental one writes < 2%"
  else tap 1 "--stats lines: fields, epochs grow, the incremental one writes < 2%"; fi
  [ $rc = 0 ] && grep -q "^PASS" "$d/out" && tap 0 "run exits with its program's status (PASS)" ||
    tap 1 "run exits with its program's status (PASS)" "exit $rc"
  rm -rf "$d"
}

# dropped: pages dropped (MADV_DONTNEED) between two checkpoints of run, a few scattered in one
# mapping and half of another (tests/zdtm/dropped.c); after kill -9 and restore the program
# checks the bytes and that the half it dropped was not brought back.
dropped() {
  local d; d=$(mktemp -d /tmp/zdrop.XXXXXX)
  local i sup rc pid np
  "$tool" run --interval 0 --stats "$d/stats" --store "$d/img" -- \
    "$build/zdtm-run/dropped" "$d/ready" "$d/go" >"$d/out" 2>"$d/log" &
  sup=$!
  for ((i = 0; i < 600; i++)); do [ -e "$d/ready" ] && break; sleep 0.1; done
  pid=$(pid_of "$d/log")
  checkpoint_now $sup "$d/stats" 1
  kill -USR2 "$pid"
  for ((i = 0; i < 600; i++)); do [ -e "$d/ready.dropped" ] && break; sleep 0.1; done
  checkpoint_now $sup "$d/stats" 2
  kill -9 "$pid" 2>/dev/null
  wait $sup
  sed 's/^/# /' "$d/stats"
  if /usr/bin/python3 - "$d/stats" <<'PY'
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])][:2]
# B's dropped half (510 unwritten pages) left the image; A's few were read as zeros.
assert b["pages"] + b["pages_kept"] <= a["pages"] - 500, (a, b)
assert b["pages"] < 100, b
PY
  then tap 0 "dropped: many dropped pages of a mapping leave the incremental image, few are read"
  else tap 1 "dropped: many dropped pages of a mapping leave the incremental image, few are read"; fi
  "$tool" restore --store "$d/img" --wait </dev/null 2>"$d/restore.err" &
  sup=$!
  for ((i = 0; i < 300; i++)); do
    np=$(sed -n 's/.*restored as pid \([0-9]*\).*/\1/p' "$d/restore.err")
    [ -n "$np" ] && break
    kill -0 $sup 2>/dev/null || break
    sleep 0.1
  done
  touch "$d/go"
  for ((i = 0; i < 300; i++)); do kill -0 $sup 2>/dev/null || break; sleep 0.1; done
  kill -9 $sup "$np" 2>/dev/null
  wait $sup; rc=$?
  sed 's/^/# /' "$d/restore.err" "$d/out"
  [ $rc = 0 ] && grep -q "^PASS" "$d/out" &&
    tap 0 "dropped: restored, dropped pages read zeros, the rest as written, none brought back" ||
    tap 1 "dropped: restored, dropped pages read zeros, the rest as written, none brought back" "exit $rc"
  # A's few were taken as present without pagemap (read as zeros, so restored as pages).
  grep -q "^A: 7 of 7 dropped" "$d/out" &&
    tap 0 "dropped: a few dropped pages of a mapping are read (no pagemap walk)" ||
    tap 1 "dropped: a few dropped pages of a mapping are read (no pagemap walk)"
  rm -rf "$d"
}

# tool_crash: checkpoint continuously (--interval 1, a checkpoint of longcalc takes longer),
# kill -9 ckpt-tool at a random instant KILLS times, each time after at least one commit; the
# store must verify, and restoring it (ckpt-tool restore --interval, again checkpointing
# continuously) must carry the computation on to the right answer.
tool_crash() {
  local d; d=$(mktemp -d /tmp/zcrash.XXXXXX)
  local k i pid sup rc c0 c
  "$tool" run --interval 1 --stats "$d/stats" --store "$d/img" -- "$build/zdtm-run/longcalc" 400 \
    >"$d/out" 2>"$d/log.0" &
  sup=$!
  for ((k = 1; k <= kills; k++)); do
    c0=$(cat "$d/stats" 2>/dev/null | wc -l)
    for ((i = 0; i < 600; i++)); do
      c=$(cat "$d/stats" 2>/dev/null | wc -l)
      [ "$c" -gt "$c0" ] && break
      sleep 0.1
    done
    # Somewhere inside the next checkpoint (they take 100+ ms here, back to back).
    sleep 0.$((RANDOM % 10))$((RANDOM % 10))
    pid=$(pid_of "$d/log.$((k - 1))")
    kill -9 $sup; wait $sup 2>/dev/null
    kill -9 "$pid" 2>/dev/null
    sleep 0.2
    if "$tool" verify -q "$d/img" >"$d/verify" 2>&1; then
      tap 0 "tool_crash $k: the store verifies after ckpt-tool was killed ($c checkpoints done)"
    else
      sed 's/^/# /' "$d/verify"; tap 1 "tool_crash $k: the store verifies after ckpt-tool was killed"
    fi
    "$tool" restore --store "$d/img" --interval 1 --stats "$d/stats" >/dev/null 2>"$d/log.$k" &
    sup=$!
    for ((i = 0; i < 300; i++)); do
      [ -n "$(pid_of "$d/log.$k")" ] && break
      kill -0 $sup 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$(pid_of "$d/log.$k")" ] || sed 's/^/# /' "$d/log.$k"
  done
  for ((i = 0; i < 3000; i++)); do kill -0 $sup 2>/dev/null || break; sleep 0.1; done
  if kill -0 $sup 2>/dev/null; then
    kill -9 $sup "$(pid_of "$d/log.$kills")" 2>/dev/null
    tap 1 "tool_crash: finished" "still running after 300 s"
  else
    wait $sup; rc=$?
    tap $rc "tool_crash: finished after $kills kills of ckpt-tool (exit $rc)"
  fi
  sed 's/^/# /' "$d/out"
  grep -q "^RESULT OK" "$d/out" && tap 0 "tool_crash: right answer" || tap 1 "tool_crash: right answer"
  rm -rf "$d"
}

echo "TAP version 13"
case $part in
  all) echo "1..$((3 * (kills + 2) + 7))"; on_request; dropped; tool_crash; campaign longcalc 800
       campaign layoutcalc 1000 ;;
  on_request) echo "1..4"; on_request ;;
  dropped) echo "1..3"; dropped ;;
  tool_crash) echo "1..$((kills + 2))"; tool_crash ;;
  longcalc) echo "1..$((kills + 2))"; campaign longcalc 800 ;;
  layoutcalc) echo "1..$((kills + 2))"; campaign layoutcalc 1000 ;;
esac
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail = 0 ]
