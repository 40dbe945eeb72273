#!/bin/bash
# Start-up cost is mostly shared objects to load and relocate (Documentation/whole-process.md,
# "Start-up"): ckpt-tool and libckpt.so must not link libpmem2 or its chain (the store loads
# it when a DAX store is opened), and ckpt-tool carries libstdc++ and libgcc in itself.
#   startup_deps_test.sh CKPT_TOOL LIBCKPT_SO        (prints TAP)
set -u
n=0 fail=0
tap() {  # tap OK DESCRIPTION
  n=$((n + 1))
  if [ "$1" = ok ]; then echo "ok $n - $2"; else fail=$((fail + 1)); echo "not ok $n - $2"; fi
}
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
echo "TAP version 13"
echo "1..5"
for f in "$1" "$2"; do
  libs=$(needed "$f")
  echo "# $(basename "$f") needs: $(echo $libs)"
  if [ -z "$libs" ]; then tap bad "$(basename "$f"): readelf -d lists its DT_NEEDED"; continue; fi
  tap ok "$(basename "$f"): readelf -d lists its DT_NEEDED"
  if echo "$libs" | grep -qE '^lib(pmem2|pmem|ndctl|daxctl)\.'; then
    tap bad "$(basename "$f") does not link libpmem2, libndctl or libdaxctl"
  else
    tap ok "$(basename "$f") does not link libpmem2, libndctl or libdaxctl"
  fi
done
if needed "$1" | grep -qE '^lib(stdc\+\+|gcc_s)\.'; then
  tap bad "ckpt-tool links libstdc++ and libgcc statically"
else
  tap ok "ckpt-tool links libstdc++ and libgcc statically"
fi
echo "# Totals: pass:$((n - fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ "$fail" -eq 0 ]
