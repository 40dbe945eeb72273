#!/bin/bash
# Every benchmark, one after the other, in ONE guest session (run by scripts/bench.sh through
# scripts/vm/run, and with --quick by tests/e2e/vm-bench-smoke.sh inside make test's VM).
#
#   bench/run-guest.sh --out DIR [--quick] [--only NAME[,NAME...]]
#
# --only runs just the named benchmarks (e.g. criu,criu-incr); the others are not listed.
#
# Writes DIR/<benchmark>.json and DIR/env.json (what the guest is), prints TAP: one test per
# benchmark (fails if it crashes, exits non-zero or writes JSON that bench/report.py rejects)
# and kselftest's "# Totals:" line. Exit status non-zero if any benchmark failed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
# CKPT_BUILD: the build directory to take the binaries from (default build/cmake).
build=${CKPT_BUILD:-$top/build/cmake}
export CKPT_BUILD=$build
bin=$build/bench
out= quick= only=
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --quick) quick=--quick; shift ;;
    --only) only=,$2,; shift 2 ;;
    *) echo "run-guest.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "run-guest.sh: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
n=0 pass=0 fail=0 skip=0

tap() {  # tap STATUS DESCRIPTION [SKIP-REASON]
  n=$((n + 1))
  case $1 in
    0) pass=$((pass + 1)); echo "ok $n - $2" ;;
    4) skip=$((skip + 1)); echo "ok $n - $2 # SKIP $3" ;;
    *) fail=$((fail + 1)); echo "not ok $n - $2" ;;
  esac
}

# bench NAME JSON-KIND CMD... : run one benchmark, then validate its JSON.
bench() {
  local name=$1 kind=$2; shift 2
  local json=$out/$name.json t0=$SECONDS
  [ -z "$only" ] || [[ $only == *",$name,"* ]] || return 0
  rm -f "$json"
  echo "# --- $name: $*"
  if [ ! -x "$1" ]; then tap 1 "$name ($1 not built)"; return; fi
  "$@" 2>&1 | sed 's/^/# /'
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then tap 1 "$name (exit $rc, $((SECONDS - t0)) s)"; return; fi
  if ! /usr/bin/python3 "$top/bench/report.py" --validate "$kind" "$json" 2>&1 | sed 's/^/# /'; then
    tap 1 "$name (malformed JSON $json)"; return
  fi
  tap 0 "$name ($((SECONDS - t0)) s)"
}

# Full sizes need a bigger NVDIMM than the default (scripts/bench.sh asks for it): the 256 MiB
# region's full-copy tracker rewrites all of it, so the store holds two copies.
dax=/dev/dax0.0 file=/mnt/pmem/bench.store
{
  echo "{"
  echo "  \"kernel\": \"$(uname -r)\","
  echo "  \"cpus\": $(nproc),"
  echo "  \"cpu_model\": \"$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)\","
  echo "  \"mem_kib\": $(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo),"
  echo "  \"dax_bytes\": $(cat /sys/bus/dax/devices/dax0.0/size 2>/dev/null || echo 0),"
  echo "  \"pmem_fs_kib\": $(df -k --output=size /mnt/pmem 2>/dev/null | tail -n1 | tr -d ' ' || echo 0),"
  echo "  \"thp\": \"$(cat /sys/kernel/mm/transparent_hugepage/enabled)\","
  echo "  \"quick\": $([ -n "$quick" ] && echo true || echo false),"
  # SLUB debugging / page poisoning (scripts/vm/run's default; scripts/bench.sh boots without).
  echo "  \"kernel_debug\": $(grep -qE 'slub_debug|page_poison' /proc/cmdline && echo true || echo false),"
  echo "  \"date\": \"$(date -u +%FT%TZ)\""
  echo "}"
} > "$out/env.json"

echo "TAP version 13"
echo "1..9"
bench track track "$bin/track_bench" --json "$out/track.json" --ko "${VM_CKPT_KO:?run in scripts/vm/run}" $quick
bench latency ckpt "$bin/ckpt_bench" latency --json "$out/latency.json" --dax $dax --file $file $quick
bench scaling ckpt "$bin/ckpt_bench" scaling --json "$out/scaling.json" --dax $dax --writers dax $quick
bench throughput ckpt "$bin/ckpt_bench" throughput --json "$out/throughput.json" --dax $dax --file $file $quick
# The slowdown pairs are the noisiest figures (whole seconds of a shared host): 7 repeats.
bench slowdown ckpt "$bin/ckpt_bench" slowdown --json "$out/slowdown.json" --dax $dax --writers dax \
  --reps 7 $quick
# The same loop with asynchronous checkpoints (CKPT_CFG_ASYNC): held only for the collect.
bench slowdown-async ckpt "$bin/ckpt_bench" slowdown --async --json "$out/slowdown-async.json" --dax $dax \
  --writers dax --reps 7 $quick
rm -f "$file" "$file.small"
# ckpt.ko against the kernel's own write tracking (UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN, Linux >=
# 6.7: Debian's 6.12, not 6.1), same run, libckpt's trackers (bench/host, design-tracking.md 8).
kv=$(uname -r | cut -d- -f1)
if [ -n "$only" ] && [[ $only != *",uffd-async,"* ]]; then
  :
elif [ "$(printf '%s\n' 6.7 "$kv" | sort -V | head -n1)" != 6.7 ]; then
  tap 4 "uffd-async" "kernel $kv has no UFFD_FEATURE_WP_ASYNC/PAGEMAP_SCAN (Linux >= 6.7)"
else
  bench uffd-async host "$bin/host_bench" --trackers module,uffd-async,mprotect --dir /dev/shm \
    --json "$out/uffd-async.json" --md "$out/uffd-async.md" $quick
fi
# CRIU needs these modules loaded (scripts/bench.sh passes them to scripts/vm/run --modules);
# make test's VM does not load them, so there the comparison is skipped, not failed.
criu_mods="unix_diag inet_diag tcp_diag udp_diag netlink_diag nf_tables nft_ct tun veth nf_conntrack nft_compat nft_chain_nat"
missing=
for m in $criu_mods; do grep -q "^$m " /proc/modules || missing="$missing $m"; done
if ! command -v criu >/dev/null; then
  tap 4 "criu" "criu is not installed (scripts/deps.sh)"
elif [ -n "$missing" ]; then
  tap 4 "criu" "modules CRIU needs are not loaded:$missing (scripts/vm/run --modules)"
else
  bench criu ckpt /usr/bin/python3 "$top/bench/criu/criu_bench.py" --json "$out/criu.json" $quick
fi
# Incremental: ckpt-tool run (checkpoint on SIGUSR1) vs criu pre-dump + dump --prev-images-dir.
if ! command -v criu >/dev/null; then
  tap 4 "criu-incr" "criu is not installed (scripts/deps.sh)"
elif [ -n "$missing" ]; then
  tap 4 "criu-incr" "modules CRIU needs are not loaded:$missing (scripts/vm/run --modules)"
else
  bench criu-incr ckpt /usr/bin/python3 "$top/bench/criu/criu_bench.py" --incremental \
    --json "$out/criu-incr.json" $quick
fi
# The same two with both tools writing to the NVDIMM (/mnt/pmem, ext4 -o dax): ckpt-tool's store
# is then a DAX store, CRIU's images DAX files. Full runs only.
if [ -z "$quick" ] && command -v criu >/dev/null && [ -z "$missing" ] && mountpoint -q /mnt/pmem; then
  bench criu-pmem ckpt /usr/bin/python3 "$top/bench/criu/criu_bench.py" --images /mnt/pmem \
    --tag=-pmem --reps 3 --json "$out/criu-pmem.json"
  bench criu-incr-pmem ckpt /usr/bin/python3 "$top/bench/criu/criu_bench.py" --incremental \
    --images /mnt/pmem --tag=-pmem --reps 3 --json "$out/criu-incr-pmem.json"
fi
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ "$fail" -eq 0 ]
