#!/usr/bin/env bash
# make bench: boot the VM once, run every benchmark in it (bench/run-guest.sh), then merge the
# results into bench/results/latest.json, render the plots into Documentation/ and write
# Documentation/performance.md (bench/report.py).
#
#   scripts/bench.sh            full run (~25 min under TCG); commits nothing
#   scripts/bench.sh --quick    every benchmark with tiny sizes, a smoke check (~1 min); results
#                               go to build/bench-quick/, the committed results are not touched
#   scripts/bench.sh --only criu,criu-incr
#                               just those benchmarks (bench/run-guest.sh's names), full size;
#                               results go to build/bench-only/, the committed ones are not touched
#
# Needs the build (make) and python3-matplotlib (scripts/deps.sh) on the host.
# CKPT_BUILD=DIR takes the binaries from another build directory (default build/cmake).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
quick= only=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=--quick; shift ;;
    --only) only=(--only "$2"); shift 2 ;;
    *) echo "usage: scripts/bench.sh [--quick] [--only NAME[,NAME...]]" >&2; exit 2 ;;
  esac
done

build=${CKPT_BUILD:-$top/build/cmake}
case $build in /*) ;; *) build=$top/$build ;; esac
for b in $build/bench/track_bench $build/bench/ckpt_bench $build/bench/criu_memhog \
         $build/bin/ckpt-tool "build/kmod/$(scripts/kernel-abi.sh)/ckpt.ko"; do
  [ -e "$b" ] || { echo "bench: $b is not built (run make)" >&2; exit 2; }
done

if [ ${#only[@]} -gt 0 ]; then
  raw=build/bench-only/raw results=build/bench-only/latest.json docdir=build/bench-only
  vmopts=(--timeout 3000 --pmem-size 3072M --dax-size 1536M --mem 3G)
elif [ -n "$quick" ]; then
  raw=build/bench-quick/raw results=build/bench-quick/latest.json docdir=build/bench-quick
  vmopts=(--timeout 600)
else
  raw=bench/results/raw results=bench/results/latest.json docdir=Documentation
  # The latency benchmark's 256 MiB region with the full-copy tracker rewrites all of it at each
  # checkpoint while the live and the retained epoch stay intact: three copies in the store.
  # Issue 4's check registers 1 GiB (module tracker: one full copy plus the dirty pages), on
  # either writer. So a 1.5 GiB device-DAX namespace, 1.5 GiB for the -o dax file system
  # (io_uring store), and 3 GiB of guest RAM for the 1 GiB region beside everything else.
  vmopts=(--timeout 3000 --pmem-size 3072M --dax-size 1536M --mem 3G)
fi
# Benchmarks measure the kernel as shipped: no SLUB debugging or page poisoning (vm/run boots
# with them by default for the tests; Documentation/vm-harness.md says what they cost).
vmopts+=(--no-debug)
# What CRIU needs in the guest (bench/criu): socket diagnostics and netfilter modules.
vmopts+=(--env "CKPT_BUILD=$build")
vmopts+=(--modules "unix_diag inet_diag tcp_diag udp_diag netlink_diag nf_tables nft_ct tun veth nf_conntrack nft_compat nft_chain_nat")
py=/usr/bin/python3   # Debian's, with python3-matplotlib (not whatever python3 is first in PATH)
rm -rf "$raw"
mkdir -p "$raw"
t0=$SECONDS
rc=0
# The host's load says how much the figures' spread owes to other work on the machine.
load() { cut -d' ' -f1-3 /proc/loadavg; }
load0=$(load)
scripts/vm/run "${vmopts[@]}" -- bench/run-guest.sh --out "$top/$raw" $quick "${only[@]}" || rc=$?
echo "bench: guest session finished in $((SECONDS - t0)) s (exit $rc)"
printf '{"load_start": "%s", "load_end": "%s", "session_seconds": %d, "cpus": %d}\n' \
  "$load0" "$(load)" $((SECONDS - t0)) "$(nproc)" > "$raw/host.json"
$py bench/report.py merge "$raw" "$results"
if [ -n "$quick" ] || [ ${#only[@]} -gt 0 ]; then
  $py -c 'import matplotlib' 2>/dev/null && $py bench/report.py render "$results" "$docdir"
else
  $py bench/report.py render "$results" "$docdir"
fi
[ "$rc" -eq 0 ] || { echo "bench: some benchmark failed (exit $rc); results are partial" >&2; exit "$rc"; }
