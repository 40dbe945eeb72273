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
# - what it does not save and a process may set on itself (issue 20's audit): a NUMA memory
#   policy, speculation control, utilisation clamps, KSM merge-any (6.4+: skipped on 6.1), a
#   thread with a CPU affinity of its own (one affinity is saved for the process).
# And not refused: an OFD lock held by another process, through its descriptor, on a file the
# process maps (before: refused as if it could be the process's own).
# vm-tool-refusals.sh has the others (a child, locks held through an fd, ...). Prints TAP with
# a kselftest "# Totals:" line. CKPT_BUILD: the build to test; CKPT_TOOL: another ckpt-tool
# (to see what an older one does).
# shellcheck source=tests/e2e/tap-lib.sh
. "$(dirname "$0")/tap-lib.sh" tool-losses
tool=${CKPT_TOOL:-$build/bin/ckpt-tool}
holder=$build/zdtm-run/state_holder

# refused MODE PATTERN DESCRIPTION: state_holder in MODE (run by ${pre[@]} if set) is dumped; the dump must exit 1 with
# PATTERN in its message, leave the process running and write no store.
refused() {
  local mode=$1 pat=$2 desc=$3 i err rc pid kids
  rm -f "$d/$mode.ready"
  ${pre[@]+"${pre[@]}"} "$holder" "$d/$mode.ready" "$mode" </dev/null >"$d/$mode.err" 2>&1 &
  pid=$!
  for ((i = 0; i < 600; i++)); do
    [ -e "$d/$mode.ready" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -e "$d/$mode.ready" ] && ! kill -0 $pid 2>/dev/null; then  # it could not set it up
    wait $pid; rc=$?
    sed 's/^/# /' "$d/$mode.err"
    if [ $rc = 4 ]; then
      tap 4 "$desc" "this kernel or machine does not offer it"
      tap 4 "$mode: the process still runs, no store was written"
    else
      tap 1 "$desc" "state_holder $mode exit $rc"; tap 1 "$mode: the process still runs, no store was written"
    fi
    return
  fi
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
echo "1..23"
refused zombie "child processes (pid" "dump refuses a zombie child, naming it"
refused thread-child "child processes (pid" "dump refuses a child of a second thread"
refused flock-mapped "holds an flock() lock on $d/flock-mapped.ready.lock through no open descriptor" \
  "dump refuses an flock lock held through a mapping"
refused ofd-mapped "open file description lock (F_OFD_SETLK) on $d/ofd-mapped.ready.lock" \
  "dump refuses an OFD lock on a mapped file"
refused mlock "is locked in memory (mlock) (VmFlags lo)" "dump refuses an mlock()ed mapping"
# Not refused: an OFD lock another process holds through its own descriptor on a file the
# process maps (its fdinfo lists it). Before, every OFD lock on a mapped file was refused,
# since /proc/locks does not say whose it is.
other_ofd() {
  local i err rc holder_pid pid
  "$holder" "$d/ofd-fd.ready" "ofd-fd=$d/shared.lock" </dev/null >/dev/null 2>&1 &
  holder_pid=$!
  for ((i = 0; i < 600; i++)); do [ -e "$d/ofd-fd.ready" ] && break; sleep 0.1; done
  "$holder" "$d/map.ready" "map=$d/shared.lock" </dev/null >/dev/null 2>&1 &
  pid=$!
  for ((i = 0; i < 600; i++)); do [ -e "$d/map.ready" ] && break; sleep 0.1; done
  grep OFDLCK /proc/locks | sed 's/^/# \/proc\/locks: /'
  err=$("$tool" dump --leave-running --store "$d/s.other-ofd" $pid 2>&1 >/dev/null); rc=$?
  printf '%s\n' "$err" | sed 's/^/# /'
  [ $rc = 0 ] && tap 0 "dump takes a process that maps a file another process holds an OFD lock on" ||
    tap 1 "dump takes a process that maps a file another process holds an OFD lock on" "exit $rc"
  kill -9 $pid $holder_pid 2>/dev/null; wait $pid $holder_pid 2>/dev/null
}
other_ofd
refused mempolicy "NUMA memory policy bind" "dump refuses a NUMA memory policy (set_mempolicy), by name"
refused speculation "speculation control" "dump refuses speculation control (PR_SET_SPECULATION_CTRL), by name"
refused uclamp "utilisation clamps" "dump refuses utilisation clamps (sched_setattr), by name"
# merge-any (6.4+) is shown in /proc/PID/ksm_stat only from 6.14 (ksm_merge_any): before that
# dump cannot see it, a gap whole-process.md states; the check needs a kernel that shows it.
if grep -q '^ksm_merge_any:' /proc/self/ksm_stat 2>/dev/null; then
  refused ksm-any "KSM merging of all its memory" "dump refuses KSM merge-any (PR_SET_MEMORY_MERGE), by name"
else
  tap 4 "dump refuses KSM merge-any (PR_SET_MEMORY_MERGE), by name" "this kernel's ksm_stat does not show merge-any (6.14+): dump cannot see it (a known gap)"
  tap 4 "ksm-any: the process still runs, no store was written"
fi
refused thread-affinity "another CPU affinity than the main thread" "dump refuses a thread with its own CPU affinity"
pre=(unshare --uts)
refused plain "another uts namespace than ckpt-tool" "dump refuses a process in another UTS namespace"
unset pre
totals
