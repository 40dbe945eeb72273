#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Whole-process dump and restore: ckpt-tool (through ckpt.ko) vs CRIU 3.17, same process.

Runs in the VM as root (bench/run-guest.sh). The process is bench/criu/memhog: MIB MiB of
anonymous memory with a pattern, THP on or off. Per repeat, for each tool: start it, dump it
(both tools kill it after the dump), restore it, ask it to check its memory (SIGUSR1 -> DIR/ok),
kill it. Wall-clock times of the dump and restore commands; images on /tmp (tmpfs) for both.
Incremental dumps are not compared: ckpt-tool's incremental mode is `run --interval`, which has
no single-shot counterpart to `criu dump --prev-images-dir` yet.

  criu_bench.py --json OUT [--mib 64] [--reps 5] [--quick]
Writes {"section": "criu", "figures": [...], "comparisons": [...]} like ckpt_bench.
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
HOG = os.path.join(TOP, "build/cmake/bench/criu_memhog")
TOOL = os.path.join(TOP, "build/cmake/bin/ckpt-tool")


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


def start(mib, thp, d):
    p = subprocess.Popen([HOG, str(mib), "thp" if thp else "nothp", d], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    if not wait_file(os.path.join(d, "ready"), 120):
        p.kill()
        raise Fail("memhog never became ready")
    return p


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


def stats(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v), "samples": v}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
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
    work = tempfile.mkdtemp(prefix="criu-bench.", dir="/tmp")
    figures, comparisons = [], []
    try:
        for thp in (True, False):
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
                figures.append({"name": f"criu/{tag}/{k}", "unit": "s", **stats(v), "params": params})
                print(f"  {tag} {k:<14} median {statistics.median(v):.3f} s (min {min(v):.3f}, max {max(v):.3f})")
            for op in ("dump", "restore"):
                per = [c / k for c, k in zip(r[f"criu_{op}"], r[f"ckpt_{op}"])]
                ratio = statistics.median(r[f"criu_{op}"]) / statistics.median(r[f"ckpt_{op}"])
                comparisons.append({"name": f"criu {op} time / ckpt-tool {op} time ({tag}, {a.mib} MiB)",
                                    "unit": "ratio", "what": "higher: ckpt-tool is faster", "ratio": ratio,
                                    "median": statistics.median(per), "min": min(per), "max": max(per),
                                    "n": len(per), "params": params})
                print(f"  {tag} criu/ckpt-tool {op}: {ratio:.3f}")
    except Fail as e:
        print(f"criu_bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(a.json, "w") as f:
        json.dump({"section": "criu", "quick": a.quick, "reps": a.reps, "figures": figures,
                   "comparisons": comparisons}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
