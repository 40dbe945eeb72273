#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Whole-process dump and restore: ckpt-tool (through ckpt.ko) vs CRIU 3.17, same process.

Runs in the VM as root (bench/run-guest.sh). The process is bench/criu/memhog: MIB MiB of
anonymous memory with a pattern, THP on or off. Per repeat, for each tool: start it, dump it
(both tools kill it after the dump), restore it, ask it to check its memory (SIGUSR1 -> DIR/ok),
kill it. Wall-clock times of the dump and restore commands; images on /tmp (tmpfs) for both.

--incremental: one full checkpoint, then memhog writes 1% of its 4 KiB pages (SIGUSR2), then one
incremental checkpoint. ckpt-tool: `run --interval 0 --stats F` (checkpoints on SIGUSR1, one
JSON line per checkpoint: pages, bytes, pause_s, total_s); CRIU: `pre-dump --track-mem`, then
`dump --track-mem --prev-images-dir` (soft-dirty; it writes only pages dirtied since the
pre-dump). Same process, same writes, alternating in each repeat; THP-backed and not.

  criu_bench.py --json OUT [--mib 64] [--reps 5] [--quick] [--incremental]
--images DIR --tag=-pmem: the same with both tools writing to DIR (the bench passes /mnt/pmem,
the NVDIMM's -o dax ext4, where ckpt-tool's store is a DAX store); names get the tag, and the
comparisons carry no target (the issue's targets are for the /tmp setting).
Writes {"section": "criu"|"criu-incr" (+tag), "figures": [...], "comparisons": [...]} like ckpt_bench.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("CKPT_BUILD") or os.path.join(TOP, "build/cmake")  # bench/run-guest.sh sets it
HOG = os.path.join(BUILD, "bench/criu_memhog")
TOOL = os.path.join(BUILD, "bin/ckpt-tool")


class Fail(Exception):
    pass


def wait_file(path, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def run(cmd, what):
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise Fail(f"{what}: exit {p.returncode}: {(p.stderr or p.stdout).strip()[-800:]}")
    return dt, p


def start(mib, thp, d, wrap=()):
    p = subprocess.Popen([*wrap, HOG, str(mib), "thp" if thp else "nothp", d], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if wrap else subprocess.DEVNULL,
                         start_new_session=True, text=True)
    if not wait_file(os.path.join(d, "ready"), 120):
        p.kill()
        raise Fail(f"memhog never became ready{': ' + p.communicate()[1].strip()[-800:] if wrap else ''}")
    return p


def hog_pid(d):
    return int(open(os.path.join(d, "ready")).read().split()[0])


def anon_huge_kib(pid):
    """AnonHugePages of the process (kB): how much of it THP really backs."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def dirty_one_percent(pid, d, n):
    """memhog writes 1% of its pages; wait until it says so (round n)."""
    os.kill(pid, signal.SIGUSR2)
    if not wait_file(os.path.join(d, f"dirtied.{n}"), 60):
        raise Fail("memhog never finished writing its 1%")


def stats_lines(path, n, secs, proc):
    """Wait until ckpt-tool's --stats file holds n JSON lines; return them."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            lines = [json.loads(x) for x in open(path).read().splitlines() if x.strip()]
        except (OSError, ValueError):
            lines = []
        if len(lines) >= n:
            return lines
        if proc.poll() is not None:
            raise Fail(f"ckpt-tool run exited ({proc.returncode}): {proc.communicate()[1].strip()[-800:]}")
        time.sleep(0.01)
    raise Fail(f"ckpt-tool run wrote no checkpoint {n} in {secs} s")


def incr_ckpt(mib, thp, work):
    d = tempfile.mkdtemp(dir=work)
    img, st = os.path.join(d, "img"), os.path.join(d, "stats.jsonl")
    p = start(mib, thp, d, wrap=(TOOL, "run", "--store", img, "--interval", "0", "--stats", st, "--"))
    pid = hog_pid(d)
    huge = anon_huge_kib(pid)
    try:
        os.kill(p.pid, signal.SIGUSR1)
        stats_lines(st, 1, 300, p)
        dirty_one_percent(pid, d, 1)
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGUSR1)
        full, inc = stats_lines(st, 2, 300, p)[:2]
        wall = time.monotonic() - t0  # includes ckpt-tool's up-to-20 ms wait for the request
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(d)
    return {"full_s": full["total_s"], "incr_s": inc["total_s"], "incr_pause_s": inc["pause_s"],
            "incr_wall_s": wall, "incr_bytes": inc["bytes"], "incr_pages": inc["pages"],
            "full_bytes": full["bytes"], "huge_kib": huge}


def dir_bytes(path, prefix=""):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path) if f.startswith(prefix))


def incr_criu(mib, thp, work):
    d = tempfile.mkdtemp(dir=work)
    pre, dump = os.path.join(d, "pre"), os.path.join(d, "dump")
    os.mkdir(pre)
    os.mkdir(dump)
    p = start(mib, thp, d)
    pid = p.pid
    huge = anon_huge_kib(pid)
    try:
        full, _ = run(["criu", "pre-dump", "-t", str(pid), "-D", pre, "--track-mem", "-o", "pre.log"],
                      "criu pre-dump")
        dirty_one_percent(pid, d, 1)
        inc, _ = run(["criu", "dump", "-t", str(pid), "-D", dump, "--track-mem", "--prev-images-dir", "../pre",
                      "-o", "dump.log"], "criu dump --prev-images-dir")
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    r = {"full_s": full, "incr_s": inc, "incr_bytes": dir_bytes(dump, "pages-"),
         "incr_all_bytes": dir_bytes(dump), "full_bytes": dir_bytes(pre, "pages-"), "huge_kib": huge}
    shutil.rmtree(d)
    return r


def incremental(a, work):
    figures, comparisons = [], []
    mem = a.mib << 20
    # The smoke check (--quick) runs each path once: THP-backed for full dumps, not for these.
    for thp in ((False,) if a.quick else (True, False)):
        tag = "thp" if thp else "nothp"
        ck, cr = [], []
        for _ in range(a.reps):  # interleaved: one of each per repeat
            ck.append(incr_ckpt(a.mib, thp, work))
            cr.append(incr_criu(a.mib, thp, work))
        params = {"process_mib": a.mib, "thp": thp, "dirty_pages": (mem // 4096 + 99) // 100,
                  "ckpt_anon_huge_kib": ck[-1]["huge_kib"], "criu_anon_huge_kib": cr[-1]["huge_kib"]}
        def fig(name, unit, v):
            figures.append({"name": f"criu-incr{a.tag}/{tag}/{name}", "unit": unit, **stats(v), "params": params})
            print(f"  {tag} {name:<22} median {statistics.median(v):.4g} {unit} (min {min(v):.4g}, max {max(v):.4g})")
        fig("ckpt_full", "s", [x["full_s"] for x in ck])
        fig("ckpt_incr", "s", [x["incr_s"] for x in ck])
        fig("ckpt_incr_pause", "s", [x["incr_pause_s"] for x in ck])
        fig("ckpt_incr_wall", "s", [x["incr_wall_s"] for x in ck])
        fig("ckpt_incr_bytes", "bytes", [x["incr_bytes"] for x in ck])
        fig("criu_predump", "s", [x["full_s"] for x in cr])
        fig("criu_incr", "s", [x["incr_s"] for x in cr])
        fig("criu_incr_bytes", "bytes", [x["incr_bytes"] for x in cr])
        fig("criu_incr_all_bytes", "bytes", [x["incr_all_bytes"] for x in cr])

        def compare(name, what, num, den, limit=None, at_most=False):
            if a.tag:  # a variant (another medium): reported beside the setting, no target
                limit = None
            per = [n / k for n, k in zip(num, den)]
            ratio = statistics.median(num) / statistics.median(den)
            c = {"name": name, "unit": "ratio", "what": what, "ratio": ratio, "median": statistics.median(per),
                 "min": min(per), "max": max(per), "n": len(per), "params": params}
            if limit is not None:
                c["target"] = f"{'<=' if at_most else '>='} {limit:g}"
                c["met"] = ratio <= limit if at_most else ratio >= limit
            comparisons.append(c)
            print(f"  {name}: {ratio:.4g}" + (f" target {c['target']} -> {'met' if c['met'] else 'NOT MET'}"
                                              if limit is not None else ""))
        compare(f"criu incremental dump time / ckpt-tool incremental checkpoint time ({tag}, {a.mib} MiB, 1% written{where(a)})",
                "criu dump --prev-images-dir wall time over ckpt-tool's checkpoint total_s (higher: ckpt-tool faster)",
                [x["incr_s"] for x in cr], [x["incr_s"] for x in ck], 50)
        compare(f"ckpt-tool incremental bytes / process memory ({tag}, {a.mib} MiB, 1% written{where(a)})",
                "bytes the incremental checkpoint wrote over the process's memory (lower is better)",
                [x["incr_bytes"] for x in ck], [mem] * len(ck), 0.02, True)
        compare(f"criu incremental page bytes / process memory ({tag}, {a.mib} MiB, 1% written{where(a)})",
                "pages-*.img bytes of criu's incremental dump over the process's memory",
                [x["incr_bytes"] for x in cr], [mem] * len(cr))
    return figures, comparisons


def verify_and_kill(pid, d):
    for _ in range(100):  # memhog's pause() may miss a signal sent just before it: resend
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            raise Fail(f"restored pid {pid} is gone")
        if wait_file(os.path.join(d, "ok"), 0.5) or os.path.exists(os.path.join(d, "bad")):
            break
    ok = os.path.exists(os.path.join(d, "ok"))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for _ in range(200):  # wait until the pid is free again (CRIU restores the same pid)
        try:
            os.kill(pid, 0)
            time.sleep(0.02)
        except ProcessLookupError:
            break
    if not ok:
        raise Fail(f"restored process {pid}: memory check failed")


def one_ckpt(mib, thp, work):
    d = tempfile.mkdtemp(dir=work)
    img = os.path.join(d, "img")
    p = start(mib, thp, d)
    dump, _ = run([TOOL, "dump", "--store", img, str(p.pid)], "ckpt-tool dump")
    p.wait()
    os.unlink(os.path.join(d, "ready"))
    rest, r = run([TOOL, "restore", "--store", img], "ckpt-tool restore")
    m = re.search(r"restored as pid (\d+)", r.stderr)
    if not m:
        raise Fail(f"ckpt-tool restore: no pid in its output: {r.stderr.strip()}")
    pid = int(m.group(1))
    verify_and_kill(pid, d)
    size = os.path.getsize(img)
    shutil.rmtree(d)
    return dump, rest, size


def one_criu(mib, thp, work):
    d = tempfile.mkdtemp(dir=work)
    img = os.path.join(d, "img")
    os.mkdir(img)
    p = start(mib, thp, d)
    dump, _ = run(["criu", "dump", "-t", str(p.pid), "-D", img, "-o", "dump.log"], "criu dump")
    p.wait()
    os.unlink(os.path.join(d, "ready"))
    pidfile = os.path.join(d, "pid")
    rest, _ = run(["criu", "restore", "-D", img, "-d", "-o", "restore.log", "--pidfile", pidfile],
                  "criu restore")
    pid = int(open(pidfile).read().split()[0])
    verify_and_kill(pid, d)
    size = sum(os.path.getsize(os.path.join(img, f)) for f in os.listdir(img))
    shutil.rmtree(d)
    return dump, rest, size


def where(a):
    """The comparison names' note of a variant's medium ("" for the issue's setting)."""
    return f", images on {a.images}" if a.tag else ""


def stats(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v), "samples": v}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--incremental", action="store_true", help="full then 1%% incremental (see above)")
    ap.add_argument("--images", default="/tmp",
                    help="directory both tools write to (default /tmp, tmpfs; /mnt/pmem: the "
                         "emulated NVDIMM's -o dax file system, where ckpt-tool's store is a DAX store)")
    ap.add_argument("--tag", default="", help="suffix of the section name (criu-pmem, ...)")
    a = ap.parse_args()
    if a.quick:
        a.mib, a.reps = 8, 1
    for b in (HOG, TOOL):
        if not os.access(b, os.X_OK):
            print(f"criu_bench: {b} is not built", file=sys.stderr)
            return 1
    if not shutil.which("criu"):
        print("criu_bench: criu is not installed (scripts/deps.sh)", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="criu-bench.", dir=a.images)
    figures, comparisons = [], []
    section = ("criu-incr" if a.incremental else "criu") + a.tag
    try:
        if a.incremental:
            figures, comparisons = incremental(a, work)
        for thp in (() if a.incremental else (True,) if a.quick else (True, False)):
            tag = "thp" if thp else "nothp"
            r = {k: [] for k in ("ckpt_dump", "ckpt_restore", "criu_dump", "criu_restore")}
            sizes = {}
            for _ in range(a.reps):  # interleaved: one of each per repeat
                d1, r1, s1 = one_ckpt(a.mib, thp, work)
                d2, r2, s2 = one_criu(a.mib, thp, work)
                r["ckpt_dump"].append(d1); r["ckpt_restore"].append(r1)
                r["criu_dump"].append(d2); r["criu_restore"].append(r2)
                sizes = {"ckpt_image_bytes": s1, "criu_image_bytes": s2}
            params = {"process_mib": a.mib, "thp": thp, **sizes}
            for k, v in r.items():
                figures.append({"name": f"criu{a.tag}/{tag}/{k}", "unit": "s", **stats(v), "params": params})
                print(f"  {tag} {k:<14} median {statistics.median(v):.3f} s (min {min(v):.3f}, max {max(v):.3f})")
            for op, limit in (("dump", 4), ("restore", 3)):  # issue 6's targets
                per = [c / k for c, k in zip(r[f"criu_{op}"], r[f"ckpt_{op}"])]
                ratio = statistics.median(r[f"criu_{op}"]) / statistics.median(r[f"ckpt_{op}"])
                c = {"name": f"criu {op} time / ckpt-tool {op} time ({tag}, {a.mib} MiB{where(a)})",
                     "unit": "ratio", "what": "higher: ckpt-tool is faster", "ratio": ratio,
                     "median": statistics.median(per), "min": min(per), "max": max(per),
                     "n": len(per), "params": params}
                if not a.tag:  # the targets are for the setting (images on tmpfs)
                    c["target"], c["met"] = f">= {limit}", ratio >= limit
                comparisons.append(c)
                print(f"  {tag} criu/ckpt-tool {op}: {ratio:.3f}"
                      + (f" target {c['target']} -> {'met' if c['met'] else 'NOT MET'}" if "target" in c else ""))
        if not a.incremental:
            # What each command costs before it does any work: exec to exit of `--version`, the
            # same number of times, alternating. Every dump and restore above includes it once.
            st = {"ckpt": [], "criu": []}
            for _ in range(max(a.reps, 3)):
                st["ckpt"].append(run([TOOL, "--version"], "ckpt-tool --version")[0])
                st["criu"].append(run(["criu", "--version"], "criu --version")[0])
            for k, v in st.items():
                figures.append({"name": f"criu{a.tag}/startup/{k}", "unit": "s", **stats(v),
                                "params": {"process_mib": a.mib, "command": "--version"}})
                print(f"  start-up ({k} --version) median {statistics.median(v):.3f} s "
                      f"(min {min(v):.3f}, max {max(v):.3f})")
    except Fail as e:
        print(f"criu_bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(a.json, "w") as f:
        json.dump({"section": section, "quick": a.quick, "reps": a.reps, "figures": figures,
                   "comparisons": comparisons}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
