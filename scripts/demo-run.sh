#!/bin/bash
# The demo's story, run where the store lives (in the VM for `make demo`, on the host for
# `make demo-host`): start heat checkpointing to STORE, kill -9 it mid-run, inspect the store,
# restart it so it resumes from its last checkpoint and finishes, and compare its answer with an
# uninterrupted run's.   demo-run.sh STORE REFERENCE_STORE
set -u
store=$1 ref=$2
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${CKPT_BIN:-$top/build/cmake/bin}
args=(--n 1024 --steps 450 --interval-ms 400)
bold() { printf '%s\n' "$*"; }
wipe() {  # no store at $1: remove a file; zero the head of a device-DAX node (mmap only)
  if [ -c "$1" ]; then
    python3 -c "import mmap,os,sys; fd=os.open(sys.argv[1],os.O_RDWR); m=mmap.mmap(fd,2<<20); m[:]=bytes(len(m)); m.close()" "$1"
  else rm -f "$1"; fi
}
wipe "$store"; wipe "$ref"

tracker=$( [ -c /dev/ckpt ] && echo "ckpt.ko (module)" || echo "a userspace tracker (no module here)")
bold "== ckpt demo: heat diffusion on a 1024 x 1024 plate (16 MiB of state)"
echo "   store: $store    tracker: $tracker"
echo

bold "1. run it, checkpointing every 400 ms"
log=$(mktemp)
"$bin/heat" --store "$store" "${args[@]}" > "$log" 2>&1 &
pid=$!
# Let it commit a few checkpoints, then kill it between two of them.
for _ in $(seq 600); do
  [ "$(grep -c checkpoint "$log")" -ge 4 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -x "$bin/ckpt-tool" ] && [ -c /dev/ckpt ]; then
  echo "   ckpt-tool stat, while it runs:"
  "$bin/ckpt-tool" stat 2>&1 | sed 's/^/     /'
fi
sleep 0.25
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
grep -E "starting|checkpoint" "$log" | sed 's/^/   /'
last=$(grep -E '^step [0-9]+$|checkpoint' "$log" | tail -n1 | sed -E 's/^step ([0-9]+).*/\1/')
lastck=$(grep checkpoint "$log" | tail -n1 | sed -E 's/^step ([0-9]+).*/\1/')
echo
bold "2. kill -9 at about step $last (last committed checkpoint: step ${lastck:-none})"
echo

bold "3. what the store holds (ckpt-tool inspect)"
"$bin/ckpt-tool" inspect "$store" | sed -n '1,5p;/^EPOCH/,$p' | grep -v '^(a snapshot' | sed 's/^/   /'
"$bin/ckpt-tool" verify -q "$store" && echo "   ckpt-tool verify: the newest epoch verifies"
echo

bold "4. start it again: it restores and carries on"
"$bin/heat" --store "$store" "${args[@]}" > "$log" 2>&1
rc=$?
grep -E "resumed|result" "$log" | sed 's/^/   /'
got=$(grep '^result:' "$log")
echo

bold "5. the same computation, never interrupted"
"$bin/heat" --store "$ref" "${args[@]}" --quiet > "$log" 2>&1
want=$(grep '^result:' "$log")
echo "   $want"
rm -f "$log"
wipe "$ref"
echo
if [ "$rc" -eq 0 ] && [ -n "$got" ] && [ "$got" = "$want" ]; then
  bold "== same answer after kill -9 and restore: yes"
else
  bold "== MISMATCH: restored run gave '$got', uninterrupted run '$want'"; exit 1
fi
