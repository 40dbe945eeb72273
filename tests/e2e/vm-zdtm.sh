#!/bin/bash
# Whole-process C/R in the VM: each zdtm-like test (build/cmake/zdtm/*) is started, dumped
# with `ckpt-tool dump` (which kills it), restored with `ckpt-tool restore --wait`, told to go
# on, and must print PASS. Prints TAP and a kselftest "# Totals:" line.
#   tests/e2e/vm-zdtm.sh [TEST...]      (default: every test built)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$top/build/cmake/zdtm
tool=$top/build/cmake/bin/ckpt-tool
n=0 pass=0 fail=0 skip=0

tap() {  # tap STATUS DESCRIPTION [REASON]  (STATUS: 0 pass, 4 skip, else fail)
  n=$((n + 1))
  case $1 in
    0) pass=$((pass + 1)); echo "ok $n - $2" ;;
    4) skip=$((skip + 1)); echo "ok $n - $2 # SKIP ${3:-}" ;;
    *) fail=$((fail + 1)); echo "not ok $n - $2${3:+ # $3}" ;;
  esac
}

wait_file() {  # wait_file PATH SECONDS
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    [ -e "$1" ] && return 0
    sleep 0.05
  done
  return 1
}

# one TEST: run, dump+kill, restore, go, check. Extra args after the name go to the test.
one() {
  local t=$1; shift
  local d; d=$(mktemp -d /tmp/zdtm.XXXXXX)
  local out=$d/out img=$d/img
  (cd "$d" && exec "$bin/$t" "$d/ready" "$d/go" "$@" >"$out" 2>&1) &
  local pid=$!
  if ! wait_file "$d/ready" 60; then
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    sed 's/^/# /' "$out"; tap 1 "$t" "never became ready"; return
  fi
  if ! timeout 300 "$tool" dump --store "$img" $pid 2>"$d/dump.err"; then
    sed 's/^/# /' "$d/dump.err" "$out"
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    tap 1 "$t" "dump failed"; return
  fi
  sed 's/^/# /' "$d/dump.err"
  wait $pid 2>/dev/null
  if kill -0 $pid 2>/dev/null; then tap 1 "$t" "still running after dump"; return; fi
  # The restored process keeps the dumped stdout (a regular file at its offset).
  "$tool" restore --store "$img" --wait </dev/null 2>"$d/restore.err" &
  local rpid=$!
  sleep 0.2
  touch "$d/go"
  # A restored process that hangs must not hang the suite.
  local i rc=124
  for ((i = 0; i < 1200; i++)); do
    if ! kill -0 $rpid 2>/dev/null; then wait $rpid; rc=$?; break; fi
    sleep 0.1
  done
  if [ $rc = 124 ]; then
    local np; np=$(sed -n 's/.*restored as pid \([0-9]*\).*/\1/p' "$d/restore.err")
    [ -n "$np" ] && kill -9 "$np" 2>/dev/null
    wait $rpid 2>/dev/null
  fi
  sed 's/^/# /' "$d/restore.err" "$out"
  if [ $rc = 4 ] && grep -q "^SKIP" "$out"; then
    tap 4 "$t" "$(grep -m1 '^SKIP' "$out")"
  elif [ $rc = 0 ] && grep -q "^PASS $t" "$out"; then
    tap 0 "$t"
  else
    tap 1 "$t" "exit $rc$([ $rc = 124 ] && echo ' (timed out)')"
  fi
  rm -rf "$d"
}

echo "TAP version 13"
if [ ! -x "$tool" ] || [ ! -d "$bin" ]; then
  echo "1..1"; tap 1 "zdtm tests built"
  echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"; exit 1
fi
if [ $# -gt 0 ]; then tests=("$@"); else
  tests=(); for f in "$bin"/*; do [ -x "$f" ] && tests+=("$(basename "$f")"); done
fi
echo "1..${#tests[@]}"
for t in "${tests[@]}"; do one "$t"; done
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ $fail = 0 ]
