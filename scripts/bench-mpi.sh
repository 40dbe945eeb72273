#!/usr/bin/env bash
# make bench-mpi (and the end of make bench): libckpt-mpi's checkpoint time per rank against each
# rank writing the same state with MPI-IO to one shared file (bench/mpi/mpi_bench.c), in the same
# run, under Open MPI (build/cmake) and MPICH (build/cmake-mpich), at 1, 2 and 4 ranks and two
# state sizes per rank. Two local levels in each run, each compared with MPI-IO on the same
# storage: this machine's disk (build/bench-mpi; the stores' commits and MPI_File_sync both reach
# the disk) and /dev/shm (a RAM disk, the default cache directory of SCR, SCR_CACHE_BASE; on a
# cluster the node-local NVMe or pmem). The target (issue 22) is judged on the checkpoint's own
# cost, the slowest rank's local commit; the agreement's own cost and the whole collective call
# (which adds the wait for the slowest rank) are reported beside it. Writes
# bench/results/mpi.json, bench/results/mpi.md and that section of Documentation/performance.md.
# Run it at high priority (nice -n -10) on a shared machine.
#   CKPT_BENCH_MPI_SIZES="16 128" (MiB per rank)  CKPT_BENCH_MPI_RANKS="1 2 4"  CKPT_BENCH_MPI_REPS=5
#   scripts/bench-mpi.sh --render: rewrite mpi.md and the section from mpi.json, measuring nothing
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sizes=${CKPT_BENCH_MPI_SIZES:-16 128}
ranks=${CKPT_BENCH_MPI_RANKS:-1 2 4}
reps=${CKPT_BENCH_MPI_REPS:-5}
work=$top/build/bench-mpi
out=$top/bench/results/mpi.json
mkdir -p "$work" "$top/bench/results"
shm=/dev/shm/ckpt-bench-mpi.$$
trap 'rm -rf "$shm"' EXIT
fs=$(df --output=fstype "$work" | tail -n1)
: >"$out.tmp"
render=0
[ "${1:-}" = --render ] && render=1
[ $render = 1 ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); [print(json.dumps(r)) for r in d["results"]]' "$out" >"$out.tmp"
[ $render = 1 ] || for impl in openmpi mpich; do
  case $impl in
    openmpi) bin=$top/build/cmake/bin/mpi_bench
             run=(mpiexec.openmpi --allow-run-as-root --oversubscribe --mca btl self,vader) ;;
    mpich)   bin=$top/build/cmake-mpich/bin/mpi_bench
             run=(mpiexec.mpich) ;;
  esac
  [ -x "$bin" ] || { echo "bench-mpi: $bin missing (make userspace mpich)" >&2; exit 1; }
  for mib in $sizes; do
    for np in $ranks; do
      rm -rf "$work/run" "$shm"; mkdir -p "$work/run" "$shm"
      echo "bench-mpi: $impl, $np ranks, $mib MiB per rank" >&2
      "${run[@]}" -np "$np" "$bin" --dir "$work/run" --local "disk ($fs)" --dir2 "$shm" --local2 "/dev/shm (tmpfs)" \
        --mib "$mib" --reps "$reps" --label "$impl" | grep '^{' >>"$out.tmp"
    done
  done
done
rm -rf "$work/run" "$shm"
RENDER=$render python3 - "$out.tmp" "$out" "$top/bench/results/mpi.md" "$top/Documentation/performance.md" <<'EOF'
import json, sys, datetime, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("bench-mpi: no results")
date = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
load = os.getloadavg()[0]
if os.environ.get("RENDER") == "1":  # --render: the measured run's date and load
    old = json.load(open(sys.argv[2]))
    date, load = old["date"], old["load"]
json.dump({"date": date, "load": load, "results": rows}, open(sys.argv[2], "w"), indent=1)
ok = lambda r: r['ratio_local_1pct_over_mpiio'] <= 0.05
okc = lambda r: r['ratio_1pct_over_mpiio'] <= 0.05
name = lambda r: f"{r['mpi']} {r['local']} {r['ranks']}x{r['mib_per_rank']} MiB"
L = ["## MPI jobs: libckpt-mpi against MPI-IO (make bench-mpi)", "",
     f"Measured {date} on this machine (2 CPUs shared with other work, load average {load:.1f}; the bench at nice -10, "
     "ranks oversubscribed at 4), `scripts/bench-mpi.sh` (bench/mpi/mpi_bench.c), one run per MPI, rank count and size. "
     "Every rank holds the state (MiB/rank), writes 1% of its pages and takes a collective `ckpt_mpi_checkpoint` "
     "(its own file store, tracker chosen automatically, io_uring writer), interleaved in the same run with every "
     "rank writing its whole state with MPI-IO to one shared file (`MPI_File_write_at_all` + `MPI_File_sync`, as "
     "durable as a checkpoint). Like with like: each local level's stores and its MPI-IO file are in the same "
     "directory — the disk (ext4 on a virtio disk: two fdatasyncs per commit, the pages' and the commit record's) "
     "and /dev/shm (tmpfs: a RAM disk, whose fdatasync costs nothing, not durable across a reboot, as SCR's cache).", "",
     "Columns, medians of "
     f"{rows[0]['reps']} repetitions (ckpt full: the first checkpoint, once): **local commit** is the checkpoint's own "
     "cost per rank — the rank's store commit of the 1% delta, durable — the slowest rank's; **agreement** is the "
     "agreement's own cost (the allreduce with every rank there, plus writing the rank's record; its fdatasync runs "
     "in the background until the next local commit), measured on the rank that waited for nobody; **allreduce alone** "
     "the bare MPI_Allreduce; **collective** the whole `ckpt_mpi_checkpoint` call, the slowest rank's: the "
     "slowest local commit, the ranks' skew leaving the barrier before it (on this oversubscribed, shared machine a "
     "rank that is not scheduled), then the agreement. The issue's target — a 1% incremental checkpoint costs <= 1/20 "
     "of an MPI-IO full write of the same state, with the agreement reported apart — is judged on the local commit "
     "(ratio local/MPI-IO <= 0.05); collective/MPI-IO shows what the job waited for in this run.", "",
     f"Target met (local commit) in {sum(map(ok, rows))} of {len(rows)} rows; not met in: "
     + (", ".join(name(r) for r in rows if not ok(r)) or "none") + ". "
     f"Collective call within 1/20 in {sum(map(okc, rows))} of {len(rows)} rows.", "",
     "Reading the table. Where a row misses the target, the local commit is not 1/20 of the full write "
     "for one of three reasons: (1) fixed costs — on the disk every commit pays two fdatasyncs (pages, "
     "then the commit record) whatever its size, while the MPI-IO write pays one for all its bytes (this "
     "virtio disk writes 128 MiB in tens of ms, so even at 128 MiB one rank's two flushes are not 1/20 "
     "of it); on tmpfs a 16 MiB write is a memcpy of a few ms and the commit's fixed part "
     "(collecting the tracker, metadata, the record) is not 1/20 of it; (2) CPU starvation when the "
     "ranks outnumber the CPUs (4 ranks; 2 ranks on 2 CPUs shared with other work): ranks waiting in "
     "MPI poll, MPICH's ch4:ucx busily ('allreduce alone' of tens of ms with every rank "
     "already there), so the rank committing — and its io_uring workers — get a share of a CPU; "
     "(3) noise: on this shared machine one configuration's repetitions vary by an order of "
     "magnitude (`MPI_BENCH_DEBUG=1` prints every rank's parts of every repetition). The "
     "agreement's own cost is a fraction of a millisecond in every row.", "",
     "| MPI | local level | ranks | MiB/rank | ckpt full (ms) | MPI-IO full (ms) | 1%: local commit (ms) | agreement (ms) | allreduce alone (ms) | collective (ms) | local / MPI-IO | target met | collective / MPI-IO |",
     "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    L.append(f"| {r['mpi']} | {r['local']} | {r['ranks']} | {r['mib_per_rank']} | {r['ckpt_full_ms']:.1f} | {r['mpiio_full_ms']:.1f} | "
             f"{r['ckpt_1pct_local_ms']:.2f} | {r['agreement_ms']:.2f} | {r['allreduce_ms']:.3f} | {r['ckpt_1pct_ms']:.2f} | "
             f"{r['ratio_local_1pct_over_mpiio']:.3f} | {'yes' if ok(r) else 'no'} | {r['ratio_1pct_over_mpiio']:.3f} |")
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
