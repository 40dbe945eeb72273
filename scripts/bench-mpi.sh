#!/usr/bin/env bash
# make bench-mpi (and the end of make bench): libckpt-mpi's checkpoint time per rank against each
# rank writing the same state with MPI-IO to one shared file, in the same run
# (bench/mpi/mpi_bench.c), under Open MPI (build/cmake) and MPICH (build/cmake-mpich), at 1, 2
# and 4 ranks and two state sizes per rank, on this machine (stores and the MPI-IO file in
# build/bench-mpi, the same file system). Writes bench/results/mpi.json, bench/results/mpi.md
# and that section of Documentation/performance.md.
#   CKPT_BENCH_MPI_SIZES="16 128" (MiB per rank)  CKPT_BENCH_MPI_RANKS="1 2 4"  CKPT_BENCH_MPI_REPS=5
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sizes=${CKPT_BENCH_MPI_SIZES:-16 128}
ranks=${CKPT_BENCH_MPI_RANKS:-1 2 4}
reps=${CKPT_BENCH_MPI_REPS:-5}
work=$top/build/bench-mpi
out=$top/bench/results/mpi.json
mkdir -p "$work" "$top/bench/results"
: >"$out.tmp"
for impl in openmpi mpich; do
  case $impl in
    openmpi) bin=$top/build/cmake/bin/mpi_bench
             run=(mpiexec.openmpi --allow-run-as-root --oversubscribe --mca btl self,vader) ;;
    mpich)   bin=$top/build/cmake-mpich/bin/mpi_bench
             run=(mpiexec.mpich) ;;
  esac
  [ -x "$bin" ] || { echo "bench-mpi: $bin missing (make userspace mpich)" >&2; exit 1; }
  for mib in $sizes; do
    for np in $ranks; do
      rm -rf "$work/run"; mkdir -p "$work/run"
      echo "bench-mpi: $impl, $np ranks, $mib MiB per rank" >&2
      "${run[@]}" -np "$np" "$bin" --dir "$work/run" --mib "$mib" --reps "$reps" --label "$impl" \
        | grep '^{' >>"$out.tmp"
    done
  done
done
rm -rf "$work/run"
python3 - "$out.tmp" "$out" "$top/bench/results/mpi.md" "$top/Documentation/performance.md" <<'EOF'
import json, sys, datetime, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("bench-mpi: no results")
date = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
load = os.getloadavg()[0]
json.dump({"date": date, "load": load, "results": rows}, open(sys.argv[2], "w"), indent=1)
L = ["## MPI jobs: libckpt-mpi against MPI-IO (make bench-mpi)", "",
     f"Measured {date} on this machine (2 CPUs shared, load average {load:.1f}; ranks oversubscribed), "
     "`scripts/bench-mpi.sh` (bench/mpi/mpi_bench.c), one run per MPI, rank count and size: every rank "
     "holds the state, writes 1% of its pages and takes a collective `ckpt_mpi_checkpoint` (its own "
     "file store, tracker chosen automatically, io_uring writer), interleaved with every rank writing "
     "the whole state with MPI-IO to one shared file (`MPI_File_write_at_all` + `MPI_File_sync`, as "
     "durable as a checkpoint). Times are the slowest rank's (what the job waits for), medians of "
     f"{rows[0]['reps']} repetitions (full checkpoint: the first one, once). The local commit and the agreement are "
     "each the slowest rank's, so they need not add up: the agreement (the allreduce and the record's "
     "write; its fdatasync runs in the background until the next local commit, which waits for it) "
     "includes a fast rank's wait for the slowest rank's local commit; 'allreduce alone' is the same "
     "allreduce with every rank already there, the agreement's own cost. Target: 1% incremental <= 1/20 of an MPI-IO full "
     "write (ratio <= 0.05).", "",
     "| MPI | ranks | MiB/rank | ckpt full (ms) | ckpt 1% (ms) | local commit | agreement (with wait) | allreduce alone | MPI-IO full (ms) | 1% / MPI-IO | target met |",
     "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    L.append(f"| {r['mpi']} | {r['ranks']} | {r['mib_per_rank']} | {r['ckpt_full_ms']:.1f} | {r['ckpt_1pct_ms']:.2f} | "
             f"{r['ckpt_1pct_local_ms']:.2f} | {r['agreement_ms']:.2f} | {r['allreduce_ms']:.3f} | {r['mpiio_full_ms']:.1f} | "
             f"{r['ratio_1pct_over_mpiio']:.3f} | {'yes' if r['ratio_1pct_over_mpiio'] <= 0.05 else 'no'} |")
L += ["", "Reproduce: `make bench-mpi` (both MPIs; writes `bench/results/mpi.json` and this section)."]
md = "\n".join(L)
open(sys.argv[3], "w").write(md + "\n")
page = open(sys.argv[4]).read()
begin, end = "<!-- bench-mpi: begin (scripts/bench-mpi.sh) -->", "<!-- bench-mpi: end -->"
block = begin + "\n" + md + "\n" + end
if begin in page and end in page:
    a = page.index(begin); b = page.index(end) + len(end)
    page = page[:a] + block + page[b:]
else:
    i = page.index("## Reproducing")
    page = page[:i] + block + "\n\n" + page[i:]
open(sys.argv[4], "w").write(page)
print(md)
EOF
rm -f "$out.tmp"
