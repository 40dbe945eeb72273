#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# libckpt when ckpt.ko refuses a process's memory (-EXDEV): the process is tracked by one load
# of ckpt.ko, the module is reloaded, and the next load refuses that mm for its life (kmod/mm.c,
# "Secondary MMUs"). lib_module_refused checks that an automatic session moves to a userspace
# tracker and still checkpoints exactly, and that a forced module tracker and an asynchronous
# session are refused with the reason. Run in the VM as root. TAP output.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
prog=${CKPT_BUILD_DIR:-$top/build/cmake}/tests/unit/lib_module_refused
KO=${VM_CKPT_KO:?the module file: run in scripts/vm/run, which sets VM_CKPT_KO}
params=/sys/module/ckpt/parameters
args=""
for p in hook_stay_armed hook_linger_ms dev_mode dev_gid; do
  [ -r $params/$p ] && args="$args $p=$(cat $params/$p)"
done
[ -x "$prog" ] || { echo "1..1"; echo "not ok 1 $prog not built"; exit 1; }
dir=$(mktemp -d /tmp/ckpt-refused.XXXXXX)
trap 'rm -rf "$dir"' EXIT
# The program talks to this script over two FIFOs, not a bash coproc: bash closes a coproc's
# descriptors when it reaps it, which may be before the loop below has read its last lines.
mkfifo "$dir/to" "$dir/from"
"$prog" "$dir" < "$dir/to" > "$dir/from" 2>&1 &
ppid=$!
exec {out}>"$dir/to" {in}<"$dir/from"
reloaded=0
while IFS= read -r -u "$in" line; do
  if [ "$line" = reload ]; then
    # The program holds no /dev/ckpt descriptor now (its session is closed).
    if rmmod ckpt && insmod "$KO" $args; then reloaded=1; else echo "# reload of ckpt.ko failed"; fi
    echo go >&"$out"
    continue
  fi
  echo "$line"
done
wait "$ppid"; rc=$?
exec {in}<&- {out}>&-
[ -c /dev/ckpt ] || insmod "$KO" $args
[ $reloaded -eq 1 ] || { echo "not ok - ckpt.ko was not reloaded"; exit 1; }
exit $rc
