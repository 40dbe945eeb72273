#!/usr/bin/env bash
# Power cut: kill QEMU itself at a random instant while heat checkpoints to the emulated NVDIMM
# (device-DAX), boot again on the same NVDIMM file, verify the store, restore, and check that the
# program finishes with the uninterrupted run's answer. Run from the host (it boots the VM
# CUTS+1 times). What a cut leaves is whatever stores reached the NVDIMM's backing file: QEMU
# does not emulate caches, so this tests the commit protocol's ordering against a torn sequence
# of stores, not cache-line write-back reordering (the store's crash-enumeration tests do that).
# TAP output with a "# Totals:" line.   powercut.sh [CUTS]
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$top/build/cmake/bin
cuts=${1:-2}
args=(--n 512 --steps 500 --interval-ms 300)
work=$(mktemp -d "$top/build/vm/powercut.XXXXXX")
pmem=$work/nvdimm.img
trap 'pkill -KILL -f "mem-path=$pmem" 2>/dev/null; rm -rf "$work"' EXIT
n=0 fail=0
ok() { n=$((n+1)); echo "ok $n $1"; }
nok() { n=$((n+1)); fail=$((fail+1)); echo "not ok $n $1"; }
echo "TAP version 13"

want=$("$bin/heat" --store "$work/ref.store" "${args[@]}" --quiet | grep '^result:')
[ -n "$want" ] && ok "reference run on the host: $want" || nok "reference run on the host"

wipe='python3 -c "import mmap,os; fd=os.open(\"/dev/dax0.0\",os.O_RDWR); m=mmap.mmap(fd,2<<20); m[:]=bytes(len(m))"'
for i in $(seq 1 "$cuts"); do
  log=$work/boot$i.log
  first=
  [ "$i" = 1 ] && first="$wipe; "
  "$top/scripts/vm/run" --pmem "$pmem" --timeout 600 -- sh -c \
    "${first}$bin/ckpt-tool verify -q /dev/dax0.0; exec $bin/heat --store /dev/dax0.0 ${args[*]}" \
    > "$log" 2>&1 &
  run=$!
  # Cut the power a random 0-2 s after the first checkpoint of this boot was reported. No
  # bound of its own: vm/run may first wait for a free VM slot, then bounds the boot (--timeout).
  while ! grep -q checkpoint "$log"; do kill -0 "$run" 2>/dev/null || break; sleep 0.1; done
  sleep "$(awk -v s=$RANDOM 'BEGIN{srand(s); printf "%.2f", rand()*2}')"
  if pkill -KILL -f "mem-path=$pmem"; then
    wait "$run" 2>/dev/null
    last=$(tr -d '\r' < "$log" | grep checkpoint | tail -n1 | sed -E 's/^step ([0-9]+).*/\1/')
    resumed=$(grep -m1 'resumed at' "$log" | sed -E 's/resumed at step ([0-9]+).*/\1/')
    ok "power cut $i: QEMU killed (boot resumed at ${resumed:-start}, last checkpoint reported: step ${last:-none})"
    echo "$last" > "$work/last$i"
  else
    wait "$run"; nok "power cut $i: the guest finished before the cut (make the run longer)"
    sed 's/^/# /' "$log" | tail -n 20
  fi
done

log=$work/final.log
"$top/scripts/vm/run" --pmem "$pmem" --timeout 900 -- sh -c \
  "$bin/ckpt-tool verify /dev/dax0.0 && exec $bin/heat --store /dev/dax0.0 ${args[*]}" > "$log" 2>&1
rc=$?
grep -q ': ok' "$log" && ok "after the cuts the store verifies (ckpt-tool verify)" || nok "after the cuts the store verifies (ckpt-tool verify)"
resumed=$(grep -m1 'resumed at' "$log" | sed -E 's/resumed at step ([0-9]+).*/\1/')
last=$(cat "$work/last$cuts" 2>/dev/null)
if [ -n "$resumed" ] && { [ -z "$last" ] || [ "$resumed" -ge "$last" ]; }; then
  ok "restore resumed at step $resumed, not before the last reported checkpoint (${last:-none})"
else
  nok "restore resumed at step ${resumed:-?}, last reported checkpoint ${last:-none}"
fi
got=$(tr -d '\r' < "$log" | grep '^result:')
if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then
  ok "finishes with the uninterrupted run's answer"
else
  nok "finishes with the uninterrupted run's answer (got '${got}', exit $rc)"; sed 's/^/# /' "$log" | tail -n 20
fi
echo "1..$n"
echo "# Totals: pass:$((n-fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" -eq 0 ]
