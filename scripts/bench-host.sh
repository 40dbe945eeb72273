#!/usr/bin/env bash
# make bench-host: the userspace trackers (uffd-async, uffd, mprotect, full) measured on this
# machine's own kernel, no VM, in one run (build/cmake/bench/host_bench, ~3 min), then the work
# queue's throughput with ckpt_mutex_t (scripts/bench-workq.sh, ~4 min). Writes
# bench/results/host.json and bench/results/host.md, and puts host.md into
# Documentation/performance.md as its own section (between the bench-host markers; report.py
# keeps it when make bench rewrites the page).
#
#   scripts/bench-host.sh           full run
#   scripts/bench-host.sh --quick   tiny sizes, a smoke check; results go to build/bench-host-quick/
#
# CKPT_BUILD=DIR takes host_bench from another build directory (default build/cmake).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
quick=
case ${1:-} in
  --quick) quick=--quick ;;
  "") ;;
  *) echo "usage: scripts/bench-host.sh [--quick]" >&2; exit 2 ;;
esac
build=${CKPT_BUILD:-$top/build/cmake}
bin=$build/bench/host_bench
[ -x "$bin" ] || { echo "bench-host: $bin is not built (run make)" >&2; exit 2; }
if [ -n "$quick" ]; then out=build/bench-host-quick; else out=bench/results; fi
mkdir -p "$out"
"$bin" $quick --json "$out/host.json" --md "$out/host.md"
# The work queue with ckpt_mutex_t against pthread_mutex_t (its own section of the page).
scripts/bench-workq.sh $quick
[ -n "$quick" ] && exit 0
/usr/bin/python3 - "$out/host.md" Documentation/performance.md <<'PY'
import sys
sec, page = sys.argv[1], sys.argv[2]
body = open(sec).read().rstrip("\n")
begin, end = "<!-- bench-host: begin (scripts/bench-host.sh) -->", "<!-- bench-host: end -->"
block = f"{begin}\n{body}\n{end}"
doc = open(page).read()
if begin in doc and end in doc:
    doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
elif "\n## Reproducing" in doc:
    i = doc.index("\n## Reproducing")
    doc = doc[:i] + "\n" + block + "\n" + doc[i:]
else:
    doc = doc.rstrip("\n") + "\n\n" + block + "\n"
open(page, "w").write(doc)
print(f"bench-host: wrote {page} (section from {sec})")
PY
