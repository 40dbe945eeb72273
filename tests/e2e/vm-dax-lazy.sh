#!/bin/bash
# libpmem2 is loaded only for DAX stores (libckpt/store/medium_dax.cpp), in the VM where DAX
# is real: /dev/dax0.0 and a file on the -o dax mount /mnt/pmem load it, a file on tmpfs does
# not, and a DAX store without a loadable libpmem2 gives an error naming it and changes nothing
# (CKPT_LIBPMEM2 naming no file, and Debian's own libpmem2.so.1 made unloadable by a bind
# mount in a private mount namespace). Also ckpt-tool dump and inspect on a DAX file store
# (inspect reads it read-only: no libpmem2 needed).
# Run by tests/vm/run-all, or: scripts/vm/run -- tests/e2e/vm-dax-lazy.sh
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${CKPT_BUILD_DIR:-$top/build/cmake}  # another build dir: --env CKPT_BUILD_DIR=...
t=$build/tests/unit/pmem2_load_test
tool=$build/bin/ckpt-tool
n=0 pass=0 fail=0

tap() {  # tap STATUS DESCRIPTION
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "ok $n - $2"
  else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
run() {  # run DESCRIPTION COMMAND...: passes on exit 0; shows the failed TAP lines and comments
  local desc=$1 out rc; shift
  out=$("$@" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^# |^not ok' | grep -v '^# Totals' | sed -E 's/^not ok/# not ok/'
  tap $rc "$desc"
}

echo "TAP version 13"
echo "1..9"
if [ ! -x "$t" ] || [ ! -x "$tool" ]; then
  echo "# $t or $tool not built (make)"
  echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"
  exit 1
fi
rm -f /mnt/pmem/lazy-store /tmp/lazy-store /mnt/pmem/lazy-dump
run "device-DAX store: libpmem2 loaded" "$t" loaded /dev/dax0.0
run "file store on -o dax ext4: libpmem2 loaded" "$t" loaded /mnt/pmem/lazy-store
run "file store on tmpfs (io_uring): libpmem2 not loaded" "$t" absent /tmp/lazy-store
run "device-DAX, CKPT_LIBPMEM2 names no file: clear error, store unchanged" \
  env CKPT_LIBPMEM2=/nonexistent/libpmem2.so.1 "$t" missing /dev/dax0.0
run "DAX file store, CKPT_LIBPMEM2 names no file: clear error, store unchanged" \
  env CKPT_LIBPMEM2=/nonexistent/libpmem2.so.1 "$t" missing /mnt/pmem/lazy-store
lib=$(readlink -f "$(ldconfig -p | sed -n 's/.*libpmem2\.so\.1 .*=> //p' | head -n1)")
echo "# Debian's libpmem2: $lib"
run "device-DAX, Debian's libpmem2.so.1 unloadable (bind mount): clear error, store unchanged" \
  unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' sh "$lib" "$t" missing /dev/dax0.0

# ckpt-tool inspect opens a store read-only, through a read-only mapping: no libpmem2 needed,
# and it still names the DAX writer.
out=$(CKPT_LIBPMEM2=/nonexistent/libpmem2.so.1 "$tool" inspect --json /mnt/pmem/lazy-store 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q '"writer": *"dax"' <<<"$out"
rc2=$?
[ "$rc2" -eq 0 ] || echo "# ckpt-tool inspect: exit $rc: $(head -c 400 <<<"$out")"
tap $rc2 "ckpt-tool inspect of a DAX store without libpmem2: read-only, exit 0, writer dax"

# ckpt-tool dump of a live process into a DAX file store, then inspect it.
# Its own stdout: one shared with this script is a shared offset, which dump refuses.
sleep 60 > /dev/null 2>&1 &
pid=$!
out=$("$tool" dump --store /mnt/pmem/lazy-dump --leave-running "$pid" 2>&1); rc=$?
[ "$rc" -eq 0 ] || echo "# ckpt-tool dump: exit $rc: $out" | head -n 5
tap $rc "ckpt-tool dump into a file store on /mnt/pmem"
kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
out=$("$tool" inspect --json /mnt/pmem/lazy-dump 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q '"writer": *"dax"' <<<"$out"
rc2=$?
[ "$rc2" -eq 0 ] || echo "# ckpt-tool inspect: exit $rc: $(head -c 400 <<<"$out")"
tap $rc2 "ckpt-tool inspect: that store was written by the DAX writer"

rm -f /mnt/pmem/lazy-store /tmp/lazy-store /mnt/pmem/lazy-dump
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" -eq 0 ]
