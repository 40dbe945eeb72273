#!/bin/bash
# ckpt-tool loses nothing by a mistake (issue 17), in the VM (dump needs ckpt.ko):
# - dump refuses, by name and leaving the process running, the process state it does not
#   save: child processes, file locks (flock, POSIX, OFD), the child-subreaper flag (which only
#   ckpt.ko can report), threads with different scheduling,
#   a file offset shared with another process and System V IPC it used (these two: exit 4,
#   --lose dumps them anyway), event descriptors whose state is not saved whole;
# - a nice value the restorer may not give is refused at restore (zdtm test sched_oom checks
#   that scheduling and oom_score_adj are saved);
# - restore of another user's image is refused (exit 4), root included; --as-image-user
#   restores it as that user, and fails for a caller who may not become it;
# - dump and run refuse a store holding another process's image (exit 4) unless --replace.
# Prints TAP with a kselftest "# Totals:" line. CKPT_BUILD: the build to test; CKPT_TOOL:
# another ckpt-tool.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CKPT_BUILD:-$top/build/cmake}
tool=${CKPT_TOOL:-$build/bin/ckpt-tool}
zdtm=$build/zdtm
holder=$build/zdtm-run/state_holder
n=0 pass=0 fail=0 skip=0
ckpt_group=$(stat -c %g /dev/ckpt)
nobody=(setpriv --reuid=65534 --regid=65534 --groups="$ckpt_group")

tap() {  # tap STATUS DESCRIPTION [REASON]
  n=$((n + 1))
  if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
  else fail=$((fail + 1)); echo "not ok $n - $2${3:+ # $3}"; fi
}

wait_file() {
  local i
  for ((i = 0; i < 600; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done
  return 1
}

d=$(mktemp -d /tmp/tool-refusals.XXXXXX)
chmod 777 "$d"
cleanup() { kill -9 $(jobs -p) 2>/dev/null; rm -rf "$d"; }
trap cleanup EXIT

# start NAME PYTHON-CODE [setpriv...]: a Python process that runs CODE, creates $d/NAME.ready
# and sleeps; its pid in $pid. (Written for what dump refuses before it reads the mappings,
# when Python's shared mapping of gconv-modules.cache was refused; it is saved since image 2.7.)
start() {
  local name=$1 code=$2; shift 2
  rm -f "$d/$name.ready"
  "$@" /usr/bin/python3 -c "import os, sys, time
$code
open(sys.argv[1], 'w').close()
time.sleep(600)" "$d/$name.ready" </dev/null >/dev/null 2>"$d/$name.py.err" &
  pid=$!
  wait_file "$d/$name.ready" || { cat "$d/$name.py.err" | sed 's/^/# /'; }
}

# hold NAME MODE [setpriv...]: tests/zdtm/state_holder.c in MODE; its pid in $pid.
hold() {
  local name=$1 mode=$2; shift 2
  rm -f "$d/$name.ready"
  : > "$d/$name.err"; chmod 666 "$d/$name.err"  # a restore as another user reopens it
  "$@" "$holder" "$d/$name.ready" "$mode" </dev/null >/dev/null 2>"$d/$name.err" &
  pid=$!
  wait_file "$d/$name.ready" || sed 's/^/# /' "$d/$name.err"
}

# expect RC PATTERN DESCRIPTION CMD...: CMD exits RC and its stderr matches PATTERN.
expect() {
  local want=$1 pat=$2 desc=$3; shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  printf '%s\n' "$err" | sed 's/^/# /'
  if [ "$rc" = "$want" ] && printf '%s' "$err" | grep -q -- "$pat"; then tap 0 "$desc"
  else tap 1 "$desc" "exit $rc, want $want and '$pat'"; fi
}

alive() {  # alive PID DESCRIPTION
  if kill -0 "$1" 2>/dev/null; then tap 0 "$2"; else tap 1 "$2"; fi
}

echo "TAP version 13"
echo "1..36"

# --- dump refuses what it does not save, and leaves the process running ---
hold child child
expect 1 "child processes (pid" "dump refuses a process with a child, naming it" \
  "$tool" dump --store "$d/s.child" $pid
alive $pid "the process with a child still runs"
[ -e "$d/s.child" ] && tap 1 "no store left by the refused dump" || tap 0 "no store left by the refused dump"
kill -9 $(cat "/proc/$pid/task/$pid/children") $pid; wait $pid 2>/dev/null

hold subreaper subreaper
expect 1 "is a child subreaper" "dump refuses a child subreaper (reported by ckpt.ko)" \
  "$tool" dump --store "$d/s.subreaper" $pid
alive $pid "the subreaper still runs"
kill -9 $pid; wait $pid 2>/dev/null

start flock 'import fcntl; f = open(sys.argv[1] + ".lock", "w"); fcntl.flock(f, fcntl.LOCK_EX)'
expect 1 "holds an flock() lock" "dump refuses an flock lock" "$tool" dump --store "$d/s" $pid
alive $pid "the flock process still runs"
kill -9 $pid; wait $pid 2>/dev/null

start posix 'import fcntl; f = open(sys.argv[1] + ".lock", "w"); fcntl.lockf(f, fcntl.LOCK_EX)'
expect 1 "holds a POSIX record lock" "dump refuses a POSIX lock" "$tool" dump --store "$d/s" $pid
kill -9 $pid; wait $pid 2>/dev/null

start ofd 'import fcntl, struct; f = open(sys.argv[1] + ".lock", "w")
fcntl.fcntl(f, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))'
expect 1 "open file description lock" "dump refuses an OFD lock" "$tool" dump --store "$d/s" $pid
kill -9 $pid; wait $pid 2>/dev/null

start sched 'import threading
def t():
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5); time.sleep(600)
threading.Thread(target=t, daemon=True).start(); time.sleep(0.5)'
expect 1 "another scheduling policy, priority or nice value" \
  "dump refuses threads with different nice values" "$tool" dump --store "$d/s" $pid
kill -9 $pid; wait $pid 2>/dev/null

# Event descriptors whose state dump cannot save whole (eventfd, signalfd, timerfd are saved:
# zdtm tests eventfd, signalfd, timerfd): an eventfd shared with another process (here its
# parent, which forked it), one open twice in the process (dup), one with an open flag F_SETFL
# set that is not saved, a cancel-on-set timerfd with an expiration not read (fdinfo does not
# tell it from a cancel).
start evshared 'e = os.eventfd(1)
c = os.fork()
if c == 0:
    time.sleep(600); os._exit(0)
open(sys.argv[1] + ".child", "w").write(str(c))'
cpid=$(cat "$d/evshared.ready.child" 2>/dev/null)
expect 1 "(anon_inode:\[eventfd\]) is shared with fd [0-9]* of process $pid" \
  "dump refuses an eventfd shared with another process" "$tool" dump --store "$d/s.ev" "${cpid:-0}"
alive "${cpid:-0}" "the process sharing an eventfd still runs"
kill -9 "${cpid:-0}" $pid; wait $pid 2>/dev/null
start evdup 'e = os.eventfd(1); e2 = os.dup(e)'
expect 1 "are the same anon_inode:\[eventfd\] (dup)" "dump refuses an eventfd open twice (dup)" \
  "$tool" dump --store "$d/s.ev" $pid
kill -9 $pid; wait $pid 2>/dev/null
start evflags 'import fcntl; e = os.eventfd(1); fcntl.fcntl(e, fcntl.F_SETFL, os.O_APPEND)'
expect 1 "has open flags 02002 (F_SETFL: only O_NONBLOCK is saved)" \
  "dump refuses an eventfd with O_APPEND set, by name" "$tool" dump --store "$d/s.ev" $pid
kill -9 $pid; wait $pid 2>/dev/null
start tfcancel 'import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
t = libc.timerfd_create(0, 0)
assert t >= 0 and libc.timerfd_settime(t, 3, struct.pack("qqqq", 0, 0, 1, 0), None) == 0
time.sleep(0.1)'
expect 1 "is a TFD_TIMER_CANCEL_ON_SET timer with expirations not yet read" \
  "dump refuses a cancel-on-set timerfd that expired, by name" "$tool" dump --store "$d/s.ev" $pid
[ -e "$d/s.ev" ] && tap 1 "no store left by the refused dumps" || tap 0 "no store left by the refused dumps"
kill -9 $pid; wait $pid 2>/dev/null

# A file offset shared with another process: this script keeps fd 7 open on the same file.
exec 7>"$d/shared.out"
hold shared plain
expect 4 "shares its file offset with fd 7 of process" \
  "dump refuses a file offset shared with another process (exit 4)" \
  "$tool" dump --store "$d/s.shared" $pid
alive $pid "the process sharing an offset still runs"
expect 0 "" "dump --lose shared-offset dumps it" \
  "$tool" dump --lose shared-offset --leave-running --store "$d/s.shared" $pid
kill -9 $pid; wait $pid 2>/dev/null
exec 7>&-

hold msg msg
expect 4 "System V message queue (msqid) $(cat "$d/msg.ready.id" 2>/dev/null)" \
  "dump refuses a System V message queue the process used (exit 4)" \
  "$tool" dump --store "$d/s.msg" $pid
expect 0 "" "dump --lose sysv-ipc dumps it" \
  "$tool" dump --lose sysv-ipc --leave-running --store "$d/s.msg" $pid
kill -9 $pid; wait $pid 2>/dev/null
ipcrm -q "$(cat "$d/msg.ready.id")" 2>/dev/null

hold sem sem
expect 4 "System V semaphore set (semid) $(cat "$d/sem.ready.id" 2>/dev/null)" \
  "dump refuses a System V semaphore set the process used (exit 4)" \
  "$tool" dump --store "$d/s.sem" $pid
kill -9 $pid; wait $pid 2>/dev/null
ipcrm -s "$(cat "$d/sem.ready.id")" 2>/dev/null

# --- restore refuses a nice value the caller may not give ---
hold nice plain "${nobody[@]}"
renice -n -5 -p $pid >/dev/null
expect 0 "" "dump of a process at nice -5 (made so by root)" \
  "${nobody[@]}" "$tool" dump --store "$d/s.nice" $pid
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
chmod 666 "$d/s.nice"
expect 1 "restoring nice -5: Permission denied" \
  "restore refuses a nice value the caller may not give (CAP_SYS_NICE)" \
  "${nobody[@]}" "$tool" restore --store "$d/s.nice"

# --- whose image: credentials ---
# zdtm's threads8, started as uid 65534, dumped by root: root's restore is refused.
run_zdtm() {  # run_zdtm NAME [setpriv...]: starts $zdtm/threads8; pid in $pid
  local name=$1; shift
  rm -f "$d/$name.ready" "$d/$name.go"
  : > "$d/$name.out"; chmod 666 "$d/$name.out"
  (cd "$d" && exec "$@" "$zdtm/threads8" "$d/$name.ready" "$d/$name.go" >"$d/$name.out" 2>&1) &
  pid=$!
  wait_file "$d/$name.ready"
}
run_zdtm other "${nobody[@]}"
"$tool" dump --store "$d/s.other" $pid 2>/dev/null; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
chmod 666 "$d/s.other"
expect 4 "the image was made by uid 65534,65534,65534,65534 (real, effective, saved, fs); you are 0" \
  "root's restore of another user's image is refused (exit 4)" \
  "$tool" restore --store "$d/s.other"
"$tool" restore --as-image-user --store "$d/s.other" --wait </dev/null 2>"$d/other.err" &
rpid=$!
for ((i = 0; i < 100; i++)); do grep -q "restored as pid" "$d/other.err" && break; sleep 0.1; done
np=$(sed -n 's/.*restored as pid \([0-9]*\).*/\1/p' "$d/other.err")
sed 's/^/# /' "$d/other.err"
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$np/status" 2>/dev/null)
groups=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$np/status" 2>/dev/null)
caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$np/status" 2>/dev/null)
touch "$d/other.go"; wait $rpid; rc=$?
if [ "$uids" = "65534 65534 65534 65534" ] && [ "$caps" = 0000000000000000 ] && [ $rc = 0 ] &&
   grep -q "^PASS" "$d/other.out"; then
  tap 0 "restore --as-image-user runs it as uid 65534, groups$groups, no capabilities; it passes"
else
  tap 1 "restore --as-image-user runs it as the image's user" "uids '$uids' caps '$caps' exit $rc"
  sed 's/^/# /' "$d/other.out"
fi
# root's image, restored by uid 65534: refused; --as-image-user cannot make it root's.
run_zdtm root
"$tool" dump --store "$d/s.root" $pid 2>/dev/null; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
chmod 666 "$d/s.root"
expect 4 "the image was made by uid 0,0,0,0" "another user's restore of root's image is refused (exit 4)" \
  "${nobody[@]}" "$tool" restore --store "$d/s.root"
expect 1 "Operation not permitted" "--as-image-user does not give uid 65534 root's credentials" \
  "${nobody[@]}" "$tool" restore --as-image-user --store "$d/s.root"
# The same user with other groups: refused too.
run_zdtm groups "${nobody[@]}"
"${nobody[@]}" "$tool" dump --store "$d/s.groups" $pid 2>/dev/null; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
expect 4 "supplementary groups $ckpt_group; you have" \
  "restore by the same user with other groups is refused (exit 4)" \
  setpriv --reuid=65534 --regid=65534 --groups="$ckpt_group,4242" "$tool" restore --store "$d/s.groups"

# --- --replace: dump and run ---
hold a plain
pa=$pid
hold b plain
pb=$pid
expect 0 "" "dump of process A into a new store" "$tool" dump --leave-running --store "$d/s.replace" $pa
expect 4 "holds the image of another process (pid $pa" "dump of process B into A's store is refused (exit 4)" \
  "$tool" dump --leave-running --store "$d/s.replace" $pb
expect 0 "" "dump --replace overwrites it" "$tool" dump --leave-running --replace --store "$d/s.replace" $pb
kill -9 $pa $pb; wait $pa $pb 2>/dev/null
rm -f "$d/ran"
expect 4 "holds the image of process $pb ($holder)" "run into a store holding an image is refused (exit 4)" \
  "$tool" run --store "$d/s.replace" --interval 0 -- touch "$d/ran"
[ -e "$d/ran" ] && tap 1 "the refused run started nothing" || tap 0 "the refused run started nothing"
expect 0 "" "run --replace starts the program" \
  "$tool" run --replace --store "$d/s.replace" --interval 0 -- touch "$d/ran"
[ -e "$d/ran" ] && tap 0 "run --replace ran it" || tap 1 "run --replace ran it"

echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ $fail = 0 ]
