#!/bin/bash
# ckpt-tool dump refuses, by name, what it used to drop silently (issue 20: "whatever dump does
# not save, it refuses by name"), and leaves the process running with no store written:
# - a zombie child (exited, not reaped: its parent's wait() would get ECHILD after a restore);
# - a child forked by a thread other than the main one (/proc/PID/task/TID/children);
# - an flock() lock and an open file description lock held through no descriptor: the file
#   was mapped and its fd closed, so the mapping keeps the lock and fdinfo shows nothing
#   (before: dumped, and the restored process had no lock);
# - a page locked with mlock (VmFlags lo; before: restored unlocked);
# - a process in another namespace (here UTS: before, restored with the restorer's hostname).
# vm-tool-refusals.sh has the others (a child, locks held through an fd, ...). Prints TAP with
# a kselftest "# Totals:" line. CKPT_BUILD: the build to test; CKPT_TOOL: another ckpt-tool
# (to see what an older one does).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CKPT_BUILD:-$top/build/cmake}
tool=${CKPT_TOOL:-$build/bin/ckpt-tool}
holder=$build/zdtm-run/state_holder
n=0 pass=0 fail=0 skip=0

tap() {  # tap STATUS DESCRIPTION [REASON]
  n=$((n + 1))
  if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
  else fail=$((fail + 1)); echo "not ok $n - $2${3:+ # $3}"; fi
}

d=$(mktemp -d /tmp/tool-losses.XXXXXX)
cleanup() { kill -9 $(jobs -p) 2>/dev/null; rm -rf "$d"; }
trap cleanup EXIT

# refused MODE PATTERN DESCRIPTION: state_holder in MODE (run by ${pre[@]} if set) is dumped; the dump must exit 1 with
# PATTERN in its message, leave the process running and write no store.
refused() {
  local mode=$1 pat=$2 desc=$3 i err rc pid kids
  rm -f "$d/$mode.ready"
  ${pre[@]+"${pre[@]}"} "$holder" "$d/$mode.ready" "$mode" </dev/null >/dev/null 2>"$d/$mode.err" &
  pid=$!
  for ((i = 0; i < 600; i++)); do [ -e "$d/$mode.ready" ] && break; sleep 0.1; done
  err=$("$tool" dump --store "$d/s.$mode" $pid 2>&1 >/dev/null); rc=$?
  printf '%s\n' "$err" | sed 's/^/# /'
  if [ "$rc" = 1 ] && printf '%s' "$err" | grep -q -- "$pat"; then tap 0 "$desc"
  else tap 1 "$desc" "exit $rc, want 1 and '$pat'"; fi
  if kill -0 $pid 2>/dev/null && [ ! -e "$d/s.$mode" ]; then
    tap 0 "$mode: the process still runs, no store was written"
  else
    tap 1 "$mode: the process still runs, no store was written"
  fi
  kids=$(cat /proc/$pid/task/*/children 2>/dev/null)
  kill -9 $kids $pid 2>/dev/null; wait $pid 2>/dev/null
}

echo "TAP version 13"
echo "1..12"
refused zombie "child processes (pid" "dump refuses a zombie child, naming it"
refused thread-child "child processes (pid" "dump refuses a child of a second thread"
refused flock-mapped "holds an flock() lock on $d/flock-mapped.ready.lock through no open descriptor" \
  "dump refuses an flock lock held through a mapping"
refused ofd-mapped "open file description lock (F_OFD_SETLK) on $d/ofd-mapped.ready.lock" \
  "dump refuses an OFD lock on a mapped file"
refused mlock "is locked in memory (mlock) (VmFlags lo)" "dump refuses an mlock()ed mapping"
pre=(unshare --uts)
refused plain "another uts namespace than ckpt-tool" "dump refuses a process in another UTS namespace"
unset pre
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ "$fail" = 0 ]
