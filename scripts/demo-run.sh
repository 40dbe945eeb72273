#!/bin/bash
# The demo's story, run where the store lives (in the VM for `make demo`, on the host for
# `make demo-host`): start heat checkpointing to STORE, kill -9 it mid-run after its second
# committed checkpoint, inspect the store, restart it so it resumes from its last checkpoint and
# finishes, and compare its answer with an uninterrupted run's.
#   demo-run.sh STORE REFERENCE_STORE
# The work and the checkpoint interval are sized from this machine (an uninterrupted run is
# timed first), so the story holds on a fast CPU as under QEMU's TCG. The script checks its own
# story and exits 1 if it did not happen: killed after at least two committed checkpoints and
# before the end, resumed from the last of them, same answer.
set -u
store=$1 ref=$2
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${CKPT_BIN:-$top/build/cmake/bin}
n=1024
bold() { printf '%s\n' "$*"; }
broken() { bold "== BROKEN STORY: $*"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wipe() {  # no store at $1: remove a file; zero the head of a device-DAX node (mmap only)
  if [ -c "$1" ]; then
    python3 -c "import mmap,os,sys; fd=os.open(sys.argv[1],os.O_RDWR); m=mmap.mmap(fd,2<<20); m[:]=bytes(len(m)); m.close()" "$1"
  else rm -f "$1"; fi
}
wipe "$store"; wipe "$ref"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; wipe "$ref"' EXIT
log=$tmp/log

tracker=$( [ -c /dev/ckpt ] && echo "ckpt.ko (module)" || echo "a userspace tracker (no module here)")
bold "== ckpt demo: heat diffusion on a $n x $n plate (16 MiB of state)"
echo "   store: $store    tracker: $tracker"
echo

# 1. The answer to compare with, and how fast this machine is: the uninterrupted run, with
# twice the steps until it takes at least 2 s (the first ~430 steps are cheap: the heat front
# is still small).
bold "1. the computation, never interrupted: its answer, and how long it takes here"
steps=450
while :; do
  wipe "$ref"
  t0=$(now_ms)
  "$bin/heat" --store "$ref" --n $n --steps $steps --interval-ms 0 --quiet > "$log" 2>&1 ||
    { cat "$log"; broken "the uninterrupted run failed"; }
  took=$(( $(now_ms) - t0 ))
  [ $took -ge 2000 ] || [ $steps -ge 100000 ] || { steps=$((steps * 2)); continue; }
  break
done
want=$(grep '^result:' "$log")
# About eight checkpoints in a run (more: it is slower with checkpoints than this), so the kill,
# two and a half intervals in, still lands mid-run if this machine gets up to 3x faster
# meanwhile; the interval kept between 50 ms and 2 s (under TCG the run takes minutes).
interval=$(( took / 8 )); [ $interval -ge 50 ] || interval=50; [ $interval -le 2000 ] || interval=2000
echo "   $steps steps in $took ms: $want"
echo "   so: $steps steps, a checkpoint every $interval ms"
echo
args=(--n $n --steps $steps --interval-ms $interval)

bold "2. run it again checkpointing, and kill -9 it after its 2nd checkpoint"
mkfifo "$tmp/out"
"$bin/heat" --store "$store" "${args[@]}" > "$tmp/out" 2>&1 &
pid=$!
exec 3< "$tmp/out"
: > "$log"
cks=0
while IFS= read -r line <&3; do
  printf '%s\n' "$line" >> "$log"
  case $line in *checkpoint*) cks=$((cks + 1)); [ $cks -lt 2 ] || break ;; esac
done
t_ck=$(now_ms)
[ $cks -ge 2 ] || { exec 3<&-; wait $pid; sed 's/^/   /' "$log"; broken "heat ended before its second checkpoint"; }
if [ -x "$bin/ckpt-tool" ] && [ -c /dev/ckpt ]; then
  echo "   ckpt-tool stat, while it runs:"
  "$bin/ckpt-tool" stat 2>&1 | sed 's/^/     /'
fi
# Three quarters of the way to the next checkpoint: the work since the last one is what the
# kill loses (the first writes after a checkpoint are the slow ones: they fault again).
wait_ms=$(( interval * 3 / 4 - ($(now_ms) - t_ck) ))
[ $wait_ms -le 0 ] || sleep "$((wait_ms / 1000)).$(printf '%03d' $((wait_ms % 1000)))"
kill -0 $pid 2>/dev/null || { exec 3<&-; broken "heat finished before the kill"; }
kill -9 $pid
wait $pid 2>/dev/null
cat <&3 >> "$log"; exec 3<&-
grep -q '^result:' "$log" && broken "heat printed its result before the kill"
grep -E "starting|checkpoint" "$log" | sed 's/^/   /'
last=$(grep -E '^step [0-9]+' "$log" | tail -n1 | sed -E 's/^step ([0-9]+).*/\1/')
lastck=$(grep checkpoint "$log" | tail -n1 | sed -E 's/^step ([0-9]+).*/\1/')
lastep=$(grep checkpoint "$log" | tail -n1 | sed -E 's/.*checkpoint epoch ([0-9]+).*/\1/')
cks=$(grep -c checkpoint "$log")
echo
bold "   kill -9 at about step $last of $steps, after $cks committed checkpoints (the last: step $lastck, epoch $lastep)"
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
resumed=$(sed -nE 's/^resumed at step ([0-9]+) \(epoch ([0-9]+)\)$/\1 \2/p' "$log")
echo
[ "$resumed" = "$lastck $lastep" ] || broken "resumed at '$resumed' (step epoch), not from the last checkpoint ($lastck $lastep)"
if [ "$rc" -eq 0 ] && [ -n "$got" ] && [ "$got" = "$want" ]; then
  bold "== same answer after kill -9 and restore: yes"
else
  bold "== MISMATCH: restored run gave '$got', uninterrupted run '$want'"; exit 1
fi
