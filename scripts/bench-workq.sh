#!/usr/bin/env bash
# The work queue's throughput (examples/workq.c, issue 21): ckpt_mutex_t with registered state
# against plain pthread_mutex_t and no library, at 1, 2 and 4 producer/consumer pairs, with no
# checkpoints and with 10 checkpoints/s (the timer, lock-aligned). Each configuration runs
# REPS times, interleaved, for SECONDS each; the median is reported, and the ratios to the
# pthread run of the same pair count. Writes bench/results/workq.md (and .json) and puts the
# table into Documentation/performance.md between the bench-workq markers.
#
#   scripts/bench-workq.sh [--quick]        (make bench-host runs it; --quick: 0.5 s, 1 rep, no page update)
#   CKPT_BUILD=DIR  the build directory (default build/cmake); CKPT_WORKQ_ARGS extra workq args
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=${CKPT_BUILD:-$top/build/cmake}
bin=$build/bin/workq
[ -x "$bin" ] || { echo "bench-workq: $bin is not built (run make)" >&2; exit 2; }
secs=${CKPT_WORKQ_SECS:-2} reps=${CKPT_WORKQ_REPS:-3} out=bench/results
if [ "${1:-}" = --quick ]; then secs=0.5 reps=1 out=build/bench-workq-quick; fi
mkdir -p "$out"
tmp=$(mktemp -d /tmp/ckpt-workq-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
raw=$tmp/raw.txt
: > "$raw"
for rep in $(seq "$reps"); do
  for pairs in 1 2 4; do
    for cfgname in pthread ckpt0 ckpt10; do
      case $cfgname in
        pthread) args=(--mode pthread) ;;
        ckpt0) rm -f "$tmp/s"; args=(--mode ckpt --store "$tmp/s" --interval-ms 0) ;;
        ckpt10) rm -f "$tmp/s"; args=(--mode ckpt --store "$tmp/s" --interval-ms 100) ;;
      esac
      line=$("$bin" --bench "$secs" --pairs "$pairs" ${CKPT_WORKQ_ARGS:-} "${args[@]}" | grep '^bench:')
      echo "$cfgname $pairs $line" | tee -a "$raw"
    done
  done
done
python3 - "$raw" "$out" "$secs" "$reps" "$(cat /proc/loadavg | cut -d' ' -f1-3)" <<'PY'
import json, re, statistics, sys, datetime
raw, out, secs, reps, load = sys.argv[1:6]
runs = {}
trk = "-"
for l in open(raw):
    cfg, pairs, rest = l.split(" ", 2)
    m = re.search(r"items_per_s=(\d+)", rest)
    c = re.search(r"checkpoints=(\d+)", rest)
    t = re.search(r"tracker=(\S+)", rest)
    if t and t.group(1) != "-":
        trk = t.group(1)
    runs.setdefault((cfg, int(pairs)), []).append((float(m.group(1)), int(c.group(1))))
res = {}
rows = []
for pairs in (1, 2, 4):
    base = statistics.median(x for x, _ in runs[("pthread", pairs)])
    r0 = statistics.median(x for x, _ in runs[("ckpt0", pairs)])
    r10 = statistics.median(x for x, _ in runs[("ckpt10", pairs)])
    ck = statistics.median(c for _, c in runs[("ckpt10", pairs)])
    res[pairs] = dict(pthread=base, ckpt_mutex=r0, ckpt_mutex_10_per_s=r10, checkpoints=ck,
                      ratio_mutex=r0 / base, ratio_10_per_s=r10 / base)
    rows.append(f"| {pairs} | {base:,.0f} | {r0:,.0f} | {r10:,.0f} ({ck:.0f} checkpoints) | "
                f"{r0 / base:.2f}x | {r10 / base:.2f}x |")
now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
md = f"""## Threads: the work queue with ckpt_mutex_t (make bench-host)

`examples/workq.c --bench {secs}`: P producer and P consumer threads, a shared 1024-item queue in a
registered region; each item costs 2 x 200 rounds of a 64-bit mix outside the lock.
Items consumed per second, median of {reps} interleaved runs; ratios to plain `pthread_mutex_t`
with no library at the same P. `ckpt_mutex_t` runs: the queue registered, each thread
non-volatile with its own region or heap, tracker {trk}, a file store (io_uring); "10/s" is
the timer at 100 ms, each checkpoint taken between critical sections. {now}, host load {load}
on {len(open('/proc/cpuinfo').read().split('processor')) - 1} CPUs: other work shares the machine,
read the ratios, not the absolute rates.

| pairs | pthread_mutex_t, items/s | ckpt_mutex_t, no checkpoints | ckpt_mutex_t, 10 checkpoints/s | kept, no checkpoints | kept at 10/s (target >= 0.90) |
| --- | --- | --- | --- | --- | --- |
""" + "\n".join(rows) + "\n"
open(f"{out}/workq.md", "w").write(md)
json.dump(dict(date=now, load=load, tracker=trk, secs=float(secs), reps=int(reps), results=res),
          open(f"{out}/workq.json", "w"), indent=1)
print(md)
PY
[ "$out" = bench/results ] || exit 0
python3 - "$out/workq.md" Documentation/performance.md <<'PY'
import sys
sec, page = sys.argv[1], sys.argv[2]
body = open(sec).read().rstrip("\n")
begin, end = "<!-- bench-workq: begin (scripts/bench-workq.sh) -->", "<!-- bench-workq: end -->"
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
print(f"bench-workq: wrote {page} (section from {sec})")
PY
