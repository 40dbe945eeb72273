#!/bin/bash
# Whole-process C/R in the VM: each zdtm-like test (build/cmake/zdtm/*) is started, dumped
# with `ckpt-tool dump` (which kills it), restored with `ckpt-tool restore --wait`, told to go
# on, and must print PASS. Prints TAP and a kselftest "# Totals:" line.
#   tests/e2e/vm-zdtm.sh [TEST...]      (default: every test built; CKPT_BUILD: build dir;
#                                        CKPT_ZDTM_REFUSALS=1: the refusals after the TESTs)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CKPT_BUILD:-$top/build/cmake}
bin=$build/zdtm
tool=${CKPT_TOOL:-$build/bin/ckpt-tool}  # CKPT_TOOL: another ckpt-tool (to see what an older one does)
n=0 pass=0 fail=0 skip=0
# The group of /dev/ckpt (root:GROUP 0660, scripts/vm/guest.sh): what runs as uid 65534 gets it
# as a supplementary group, as a user added to the ckpt group would have it.
ckpt_group=$(stat -c %g /dev/ckpt)

tap() {  # tap STATUS DESCRIPTION [REASON]  (STATUS: 0 pass, 4 skip, else fail)
  n=$((n + 1))
  case $1 in
    0) pass=$((pass + 1)); echo "ok $n - $2" ;;
    4) skip=$((skip + 1)); echo "ok $n - $2 # SKIP ${3:-}" ;;
    *) fail=$((fail + 1)); echo "not ok $n - $2${3:+ # $3}" ;;
  esac
}

# nap SECS: sleep without forking. Written when restore took the image's PID through
# ns_last_pid, which any fork in between (a polling `sleep`) defeated; clone3's set_tid has no
# such race, and a wait that forks nothing still keeps the harness out of the PIDs under test.
# (A FIFO nobody writes, opened for each nap: a descriptor kept open would leak into the
# processes under test, and ckpt-tool dump refuses a FIFO.)
napfifo=$(mktemp -u /tmp/vm-zdtm-nap.XXXXXX) && mkfifo "$napfifo" && trap 'rm -f "$napfifo"' EXIT
nap() { read -t "$1" <> "$napfifo"; [ $? -gt 128 ] || sleep "$1"; }

wait_file() {  # wait_file PATH SECONDS
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    [ -e "$1" ] && return 0
    nap 0.05
  done
  return 1
}

# one TEST: run, dump+kill, restore, go, check. Extra args after the name go to the test.
# With as_user=UID, the program, its dump and its restore all run as that user (no right to
# choose PIDs: the restorer's clone3 set_tid is refused and it takes new IDs).
one() {
  local t=$1; shift
  local label="$t${store_at:+ (store $store_at)}${as_user:+ (as uid $as_user)}"
  local d; d=$(mktemp -d /tmp/zdtm.XXXXXX)
  local out=$d/out img=${store_at:-$d/img}
  local as=()
  if [ -n "${as_user:-}" ]; then  # its stdout too: the restore reopens it as that user
    as=(setpriv --reuid="$as_user" --regid="$as_user" --groups="$ckpt_group")
    chmod 777 "$d"; : > "$out"; chown "$as_user" "$out"
  fi
  (cd "$d" && exec ${as[@]+"${as[@]}"} "$bin/$t" "$d/ready" "$d/go" "$@" >"$out" 2>&1) &
  local pid=$!
  if ! wait_file "$d/ready" 60; then
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    sed 's/^/# /' "$out"; tap 1 "$label" "never became ready"; return
  fi
  if ! timeout 300 ${as[@]+"${as[@]}"} "$tool" dump --store "$img" ${store_at:+--create} $pid 2>"$d/dump.err"; then
    sed 's/^/# /' "$d/dump.err" "$out"
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    tap 1 "$label" "dump failed"; return
  fi
  sed 's/^/# /' "$d/dump.err"
  wait $pid 2>/dev/null
  if kill -0 $pid 2>/dev/null; then tap 1 "$label" "still running after dump"; return; fi
  # The restored process keeps the dumped stdout (a regular file at its offset).
  ${as[@]+"${as[@]}"} "$tool" restore --store "$img" --wait </dev/null 2>"$d/restore.err" &
  local rpid=$!
  nap 0.2
  : > "$d/go"
  # A restored process that hangs must not hang the suite.
  local i rc=124
  for ((i = 0; i < 1200; i++)); do
    if ! kill -0 $rpid 2>/dev/null; then wait $rpid; rc=$?; break; fi
    nap 0.1
  done
  if [ $rc = 124 ]; then
    local np; np=$(sed -n 's/.*restored as pid \([0-9]*\).*/\1/p' "$d/restore.err")
    [ -n "$np" ] && kill -9 "$np" 2>/dev/null
    wait $rpid 2>/dev/null
  fi
  sed 's/^/# /' "$d/restore.err" "$out"
  if [ $rc = 4 ] && grep -q "^SKIP" "$out"; then
    tap 4 "$label" "$(grep -m1 '^SKIP' "$out")"
  elif [ $rc = 0 ] && grep -q "^PASS $t" "$out"; then
    tap 0 "$label"
  else
    tap 1 "$label" "exit $rc$([ $rc = 124 ] && echo ' (timed out)')"
  fi
  rm -rf "$d"
}

# expect_refusal DESCRIPTION PATTERN CMD...: CMD must fail with exit status 1..3 (not a crash)
# and say PATTERN on stderr.
expect_refusal() {
  local desc=$1 pat=$2; shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  printf '%s\n' "$err" | sed 's/^/# /'
  if [ $rc -ge 1 ] && [ $rc -le 3 ] && printf '%s' "$err" | grep -q -- "$pat"; then
    tap 0 "$desc"
  else
    tap 1 "$desc" "exit $rc"
  fi
}

# What must be refused clearly, and must lose nothing.
refusals() {
  local d; d=$(mktemp -d /tmp/zdtm-refuse.XXXXXX)
  chmod 755 "$d"
  # A socket: not supported; the process must keep running.
  /usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
open(sys.argv[1], "w").close()
time.sleep(600)' "$d/ready" &
  local pid=$!
  wait_file "$d/ready" 60
  expect_refusal "dump refuses a socket" "is not supported" "$tool" dump --store "$d/img" $pid
  if kill -0 $pid 2>/dev/null; then tap 0 "the refused process still runs"; else tap 1 "the refused process still runs"; fi
  kill -9 $pid; wait $pid 2>/dev/null
  [ -e "$d/img" ] && tap 1 "no image left by a refused dump" || tap 0 "no image left by a refused dump"

  # Timers that cannot be restored yet (ITIMER_VIRTUAL; a POSIX timer, even disarmed): refused
  # by name, the process left running. (ITIMER_REAL is saved: zdtm test itimer.)
  local kind
  for kind in virtual posix; do
    rm -f "$d/ready.$kind"
    /usr/bin/python3 -c 'import ctypes, signal, sys, time
if sys.argv[2] == "virtual":
    signal.signal(signal.SIGVTALRM, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_VIRTUAL, 100)
else:
    tid = ctypes.c_void_p()
    assert ctypes.CDLL(None, use_errno=True).timer_create(1, None, ctypes.byref(tid)) == 0
open(sys.argv[1], "w").close()
time.sleep(600)' "$d/ready.$kind" $kind &
    pid=$!
    wait_file "$d/ready.$kind" 60
    expect_refusal "dump refuses $kind timers, by name" \
      "$([ $kind = virtual ] && echo ITIMER_VIRTUAL || echo 'POSIX timers')" \
      "$tool" dump --store "$d/img.$kind" $pid
    kill -9 $pid; wait $pid 2>/dev/null
  done

  # seccomp (here a filter that allows everything): restored without its filters the process
  # would run outside its sandbox, so dump refuses it, by name, and leaves it running.
  rm -f "$d/ready.seccomp"
  /usr/bin/python3 -c 'import ctypes, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
insn = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7fff0000))  # RET ALLOW
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(1, ctypes.addressof(insn))
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
open(sys.argv[1], "w").close()
time.sleep(600)' "$d/ready.seccomp" &
  pid=$!
  wait_file "$d/ready.seccomp" 60
  expect_refusal "dump refuses a process under seccomp" "seccomp" \
    "$tool" dump --store "$d/img.seccomp" $pid
  kill -0 $pid 2>/dev/null && tap 0 "the seccomp process still runs" || tap 1 "the seccomp process still runs"
  kill -9 $pid; wait $pid 2>/dev/null

  # Shared file mappings dump does not save, refused by name (read-only ones of a file opened
  # read-only are saved: zdtm test file_shared_ro): a writable one, and a memfd's.
  for kind in writable memfd; do
    rm -f "$d/ready.$kind"
    # (libc's mmap: Python's mmap module keeps a descriptor of its own, which dump would
    # refuse first.)
    /usr/bin/python3 -c 'import ctypes, mmap, os, sys, time
if sys.argv[2] == "writable":
    fd = os.open(sys.argv[1] + ".data", os.O_RDWR | os.O_CREAT, 0o600)
else:
    fd = os.memfd_create("zdtm")
os.ftruncate(fd, 4096)
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
assert libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0) != ctypes.c_void_p(-1).value
os.close(fd)
open(sys.argv[1], "w").close()
time.sleep(600)' "$d/ready.$kind" $kind &
    pid=$!
    wait_file "$d/ready.$kind" 60
    expect_refusal "dump refuses a $kind shared mapping, by name" \
      "$([ $kind = writable ] && echo 'writable shared file mapping' || echo 'shared mapping of a memfd')" \
      "$tool" dump --store "$d/img.$kind" $pid
    kill -9 $pid; wait $pid 2>/dev/null
  done
  # A file mapped shared that changed on disk after the dump: the restore refuses it.
  (cd "$d" && exec "$bin/file_shared_ro" "$d/ready.sh" "$d/go.sh" >"$d/out.sh" 2>&1) &
  pid=$!
  wait_file "$d/ready.sh" 60
  "$tool" dump --store "$d/img.sh" $pid 2>/dev/null; wait $pid 2>/dev/null
  touch -d '2001-01-01' "$d/zdtm_file_shared_ro.data"
  expect_refusal "restore refuses a shared-mapped file that changed on disk" \
    "zdtm_file_shared_ro.data changed on disk" "$tool" restore --store "$d/img.sh"

  # Not allowed to ptrace (another user): refused, process untouched.
  sleep 600 &
  pid=$!
  expect_refusal "dump as another user is refused" "not allowed to ptrace" \
    setpriv --reuid=65534 --regid=65534 --groups="$ckpt_group" "$tool" dump --store "$d/img2" $pid
  kill -0 $pid 2>/dev/null && tap 0 "the other user's process still runs" || tap 1 "the other user's process still runs"
  kill -9 $pid; wait $pid 2>/dev/null

  # A good image (a file store), then damaged copies of it. The store's checksums catch a
  # damaged page; the copies are found by content: a marker in the program's environment (its
  # stack) and the path of its stdout (only in the process metadata).
  cp "$bin/signals" "$d/prog"
  local marker=ckpt-refusal-marker-0123456789abcdef0123456789abcdef
  (cd "$d" && CKPT_MARKER=$marker exec "$d/prog" "$d/ready2" "$d/go2" >"$d/out" 2>&1) &
  pid=$!
  wait_file "$d/ready2" 60
  "$tool" dump --store "$d/good" $pid 2>/dev/null; wait $pid 2>/dev/null
  local off
  cp "$d/good" "$d/bad-data"
  off=$(grep -boa "$marker" "$d/bad-data" | head -1 | cut -d: -f1)
  printf 'XX' | dd of="$d/bad-data" bs=1 seek=$((off + 4)) conv=notrunc status=none
  expect_refusal "restore refuses damaged page data (names the mapping)" \
    "corrupted image: the mapping at 0x" "$tool" restore --store "$d/bad-data"
  cp "$d/good" "$d/bad-meta"
  off=$(grep -boa "$d/out" "$d/bad-meta" | head -1 | cut -d: -f1)
  printf 'X' | dd of="$d/bad-meta" bs=1 seek=$((off + 1)) conv=notrunc status=none
  expect_refusal "restore refuses damaged metadata" "corrupted image: the process metadata" \
    "$tool" restore --store "$d/bad-meta"
  off=$(grep -boa "$marker" "$d/good" | head -1 | cut -d: -f1)
  head -c $((off / 4096 * 4096)) "$d/good" >"$d/short"   # cuts a page of the stack
  expect_refusal "restore refuses a truncated store" "store\|corrupt\|damaged" \
    "$tool" restore --store "$d/short"
  # Two epochs, the newest one's copy of a stack page damaged: restore falls back to epoch 1 as
  # a whole (the store finds the damage when the tool opens its Reader, before anything is
  # read) and the restored process carries on.
  (cd "$d" && CKPT_MARKER=$marker exec "$d/prog" "$d/ready3" "$d/go3" >"$d/out3" 2>&1) &
  pid=$!
  wait_file "$d/ready3" 60
  "$tool" dump --leave-running --store "$d/two" $pid 2>/dev/null
  "$tool" dump --store "$d/two" $pid 2>/dev/null; wait $pid 2>/dev/null
  off=$(grep -boa "$marker" "$d/two" | tail -1 | cut -d: -f1)
  printf 'XX' | dd of="$d/two" bs=1 seek=$((off + 4)) conv=notrunc status=none
  local err
  err=$("$tool" restore --store "$d/two" 2>&1); echo "$err" | sed 's/^/# /'
  touch "$d/go3"
  for ((i = 0; i < 200; i++)); do grep -q 'PASS\|FAIL' "$d/out3" && break; sleep 0.1; done
  if printf '%s' "$err" | grep -q "(epoch 1) restored" && grep -q PASS "$d/out3"; then
    tap 0 "restore falls back to the intact older epoch when the newest has a damaged page"
  else
    tap 1 "restore falls back to the intact older epoch when the newest has a damaged page"
    sed 's/^/# out: /' "$d/out3"
  fi
  head -c 65536 /dev/urandom >"$d/random"
  expect_refusal "restore refuses a random file" "holds no ckpt store" "$tool" restore --store "$d/random"
  touch -d '2001-01-01' "$d/prog"
  expect_refusal "restore refuses a changed binary" "changed on disk" "$tool" restore --store "$d/good"
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
# CKPT_ZDTM_REFUSALS=1 with named tests: run the refusals too.
if [ $# = 0 ]; then echo "1..$((${#tests[@]} + 21))"
elif [ -n "${CKPT_ZDTM_REFUSALS:-}" ]; then echo "1..$((${#tests[@]} + 18))"
else echo "1..${#tests[@]}"; fi
for t in "${tests[@]}"; do one "$t"; done
# The same store code on the other media: device-DAX (DAX writer) and a file on ext4 -o dax.
# The device may hold another test's store: its header blocks are zeroed, so it is blank.
dax_stores() {
  local s
  for s in /dev/dax0.0 /mnt/pmem/zdtm.store; do
    if [ ! -w "$(dirname "$s")" ] && [ ! -w "$s" ]; then tap 4 "threads8 on $s" "no $s"; continue; fi
    # A blank device, so that the dump formats it: device-DAX takes no write(2), only a mapping.
    if [ -c "$s" ] && ! python3 -c 'import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR); m = mmap.mmap(fd, 2 << 20); m[:] = bytes(len(m))' "$s"; then
      tap 1 "threads8 on $s" "could not wipe $s"; continue
    fi
    rm -f /mnt/pmem/zdtm.store
    store_at=$s one threads8
    store_at=
  done
  rm -f /mnt/pmem/zdtm.store
}
# Not root: the restorer may not choose PIDs or TIDs (clone3 set_tid: EPERM), so the process
# and its threads come back with new IDs, and must still pass.
unprivileged() {
  as_user=65534 one threads8
  as_user=
}
if [ $# = 0 ]; then dax_stores; unprivileged; refusals
elif [ -n "${CKPT_ZDTM_REFUSALS:-}" ]; then refusals; fi
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ $fail = 0 ]
