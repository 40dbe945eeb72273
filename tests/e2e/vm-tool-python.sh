#!/bin/bash
# A real program nobody here wrote under `ckpt-tool run`: python3 running a script (hashing,
# a dict, time.sleep, print to a regular file), killed with SIGKILL and restored with
# `ckpt-tool restore --interval` until it finishes; its output must be the uninterrupted
# run's, byte for byte. python3 maps glibc's gconv-modules.cache read-only MAP_SHARED (its
# locale's converters), which dump used to refuse ("shared file mappings ... are not
# supported") at the first checkpoint: the test checks the mapping is there before the first
# kill and still there after the last restore. python3 is the host's (the guest runs on the
# host's root). Prints TAP with a kselftest "# Totals:" line.
#   tests/e2e/vm-tool-python.sh [KILLS]   (default 2; CKPT_BUILD: build dir). About a minute.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CKPT_BUILD:-$top/build/cmake}
tool=${CKPT_TOOL:-$build/bin/ckpt-tool}
kills=${1:-2}
n=0 pass=0 fail=0

tap() {  # tap STATUS DESCRIPTION [REASON]
  n=$((n + 1))
  if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
  else fail=$((fail + 1)); echo "not ok $n - $2${3:+ # $3}"; fi
}
pid_of() {  # the program's pid from a run/restore log
  sed -n 's/.*\(started\|restored as\) pid \([0-9]*\).*/\2/p' "$1" | tail -1
}
shared_ro() {  # shared_ro PID: its read-only MAP_SHARED file mappings
  grep ' r--s ' "/proc/$1/maps" 2>/dev/null | awk '{ print $6 }'
}

d=$(mktemp -d /tmp/tool-python.XXXXXX)
cleanup() { kill -9 $(jobs -p) 2>/dev/null; rm -rf "$d"; }
trap cleanup EXIT
cat > "$d/script.py" <<'PY'
import hashlib, sys, time
steps = int(sys.argv[1])
h = hashlib.sha256()
seen = {}
for i in range(steps):
    for k in range(50):
        h.update(b"%d:%d" % (i, k))
    seen[h.hexdigest()[:2]] = i
    if i % 10 == 0:
        print("step", i, h.hexdigest()[:16], len(seen), flush=True)
    time.sleep(0.06)
print("RESULT", h.hexdigest(), len(seen), sum(seen.values()), flush=True)
PY
steps=200  # >= 12 s of sleeps: still running at the second kill (~10 s in)
export LC_ALL=C.UTF-8  # a UTF-8 locale: glibc maps its converters' cache (gconv-modules.cache)

echo "TAP version 13"
echo "1..$((kills + 4))"
# The uninterrupted run, meanwhile (the guest has two CPUs; the script mostly sleeps).
/usr/bin/python3 "$d/script.py" $steps >"$d/want" 2>&1 &
ref=$!
"$tool" run --interval 300 --store "$d/img" -- /usr/bin/python3 "$d/script.py" $steps \
  >"$d/out" 2>"$d/log.0" &
sup=$!
for ((k = 1; k <= kills; k++)); do
  for ((i = 0; i < 600; i++)); do [ -n "$(pid_of "$d/log.$((k - 1))")" ] && break; sleep 0.1; done
  sleep 4
  pid=$(pid_of "$d/log.$((k - 1))")
  if [ $k = 1 ]; then
    maps=$(shared_ro "$pid")
    echo "# read-only shared file mappings of python3: $maps"
    if printf '%s' "$maps" | grep -q gconv-modules; then
      tap 0 "python3 maps gconv-modules.cache read-only MAP_SHARED"
    else
      tap 1 "python3 maps gconv-modules.cache read-only MAP_SHARED" "not in /proc/$pid/maps"
    fi
  fi
  if [ -z "$pid" ] || ! kill -9 "$pid" 2>/dev/null; then
    sed 's/^/# /' "$d/log.$((k - 1))"
    tap 1 "kill -9 $k and restore" "no program to kill (pid '$pid')"
    continue
  fi
  wait $sup; rc=$?
  echo "# checkpoints before kill $k: $(grep -c checkpoint "$d/log.$((k - 1))")"
  "$tool" restore --store "$d/img" --interval 300 >/dev/null 2>"$d/log.$k" &
  sup=$!
  for ((i = 0; i < 300; i++)); do
    [ -n "$(pid_of "$d/log.$k")" ] && break
    kill -0 $sup 2>/dev/null || break
    sleep 0.1
  done
  if [ $rc = 137 ] && [ -n "$(pid_of "$d/log.$k")" ]; then
    tap 0 "kill -9 $k and restore"
  else
    tail -3 "$d/log.$((k - 1))" | sed 's/^/# /'; sed 's/^/# /' "$d/log.$k"
    tap 1 "kill -9 $k and restore" "supervisor exit $rc"
  fi
done
pid=$(pid_of "$d/log.$kills")
if [ -n "$pid" ] && shared_ro "$pid" | grep -q gconv-modules; then
  tap 0 "the restored python3 still maps gconv-modules.cache read-only MAP_SHARED"
else
  tap 1 "the restored python3 still maps gconv-modules.cache read-only MAP_SHARED"
fi
for ((i = 0; i < 1200; i++)); do kill -0 $sup 2>/dev/null || break; sleep 0.1; done
if kill -0 $sup 2>/dev/null; then
  kill -9 "$pid" 2>/dev/null
  tap 1 "python3 finished" "still running after 120 s"
else
  wait $sup; rc=$?
  [ $rc = 0 ] || for f in "$d"/log.*; do sed 's/^/# /' "$f"; done
  tap $rc "python3 finished after $kills kills (exit $rc)"
fi
wait $ref
sed 's/^/# /' "$d/out" | tail -3
if [ -s "$d/want" ] && grep -q '^RESULT' "$d/want" && cmp -s "$d/want" "$d/out"; then
  tap 0 "the output is the uninterrupted run's"
else
  diff "$d/want" "$d/out" | head -10 | sed 's/^/# /'
  tap 1 "the output is the uninterrupted run's"
fi
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail = 0 ]
