#!/usr/bin/env python3
"""Kill -9 campaign for a checkpointing program.

Runs PROG once without interruption against a fresh store to get the reference result line, then
in rounds against another fresh store, killing it with SIGKILL at random instants (checkpoints
take a good share of the run time, so many kills land inside one) and restarting it until it
finishes, round after round until --kills kills were delivered.
Asserts (TAP output, with a kselftest-style "# Totals:" line):
  - the final result line equals the uninterrupted run's;
  - no committed checkpoint is lost: each restart resumes at or after the newest checkpoint the
    killed run reported as committed before it was killed;
  - the work lost per kill is bounded: the time between the killed run's last checkpoint (or,
    if it made none, the moment it was ready to work after its restore) and the kill is at most
    --lost-bound seconds (loose: the checkpoint interval plus a checkpoint's duration plus slack).

  kill_campaign.py --name NAME --kills K --store-a PATH --store-b PATH \
      [--lost-bound SEC] [--max-delay SEC] -- PROG ARGS...   (ARGS may contain {store})

Output lines PROG must print: "resumed at <label> N", "<label> N: checkpoint ..." for each
checkpoint, and "result: ..." at the end.
"""
import argparse
import mmap
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

CKPT_RE = re.compile(r"^\w+ (\d+): checkpoint epoch (\d+)")
RESUME_RE = re.compile(r"^resumed at \w+ (\d+)")


def wipe(path):
    """Make PATH hold no store: delete a file, zero the head of a device (DAX devices can only
    be written through mmap)."""
    if not os.path.exists(path):
        return
    if os.path.isfile(path):
        os.unlink(path)
        return
    fd = os.open(path, os.O_RDWR)
    try:
        m = mmap.mmap(fd, 2 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m[:] = bytes(len(m))
        m.close()
    finally:
        os.close(fd)


class Run:
    """One start of PROG; collects its lines with arrival times."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  bufsize=1)
        self.start = time.monotonic()
        self.kill_time = None
        self.lines = []  # (time, line)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait(self, timeout=None):
        rc = self.p.wait(timeout=timeout)
        self.t.join(5)
        return rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--store-a", required=True)
    ap.add_argument("--store-b", required=True)
    ap.add_argument("--lost-bound", type=float, default=3.0)
    ap.add_argument("--max-delay", type=float, default=1.5)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("prog", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    prog = a.prog[1:] if a.prog and a.prog[0] == "--" else a.prog
    seed = a.seed if a.seed is not None else int(time.time())
    rnd = random.Random(seed)
    print("TAP version 13")
    print(f"# {a.name}: seed {seed}, {a.kills} kills")
    results = []

    def check(ok, what):
        results.append(ok)
        print(f"{'ok' if ok else 'not ok'} {len(results)} {a.name}: {what}")
        sys.stdout.flush()

    # Reference run.
    wipe(a.store_a)
    ref = Run([x.replace("{store}", a.store_a) for x in prog])
    rc = ref.wait(a.timeout)
    ref_result = [l for _, l in ref.lines if l.startswith("result:")]
    check(rc == 0 and len(ref_result) == 1, f"uninterrupted run finishes (exit {rc})")
    if rc != 0 or not ref_result:
        for _, l in ref.lines[-20:]:
            print("#   " + l)
        finish(results)
        return
    wipe(a.store_a)

    # Campaign: rounds on a fresh store, each run-kill-restart until the program finishes and
    # its result is compared; rounds continue until --kills kills were delivered.
    argv = [x.replace("{store}", a.store_b) for x in prog]
    kills = rounds = 0
    rounds_ok = True
    lost_ok = resume_ok = True
    worst_lost = 0.0
    deadline = time.monotonic() + a.timeout
    while kills < a.kills and time.monotonic() < deadline:
        rounds += 1
        wipe(a.store_b)
        final = None
        committed = None      # newest checkpoint (step) reported committed by killed runs
        kill_time = None      # when the last kill was delivered
        start = 0
        while time.monotonic() < deadline:
            start += 1
            r = Run(argv)
            killed = False
            if kills < a.kills:
                time.sleep(rnd.uniform(0.05, a.max_delay))
                if r.p.poll() is None:
                    r.p.send_signal(signal.SIGKILL)
                    r.kill_time = time.monotonic()
                    killed = True
            r.wait(a.timeout)
            lines = [l for _, l in r.lines]
            resumed = [int(m.group(1)) for l in lines if (m := RESUME_RE.match(l))]
            fresh = any(l.startswith("starting:") for l in lines)
            if kill_time is not None and (resumed or fresh):
                got = resumed[0] if resumed else 0
                if committed is not None and got < committed:
                    resume_ok = False
                    print(f"# round {rounds} start {start}: resumed at {got}, but checkpoint "
                          f"{committed} was reported committed before a kill")
            # Work this run had done since its last checkpoint (or since it was ready to work,
            # after its restore) is what a kill loses.
            since = r.start
            for t, l in r.lines:
                if (m := CKPT_RE.match(l)):
                    committed = max(committed or 0, int(m.group(1)))
                    since = t
                elif RESUME_RE.match(l) or l.startswith("starting:"):
                    since = t
            if killed:
                kills += 1
                kill_time = r.kill_time
                lost = kill_time - since
                worst_lost = max(worst_lost, lost)
                if lost > a.lost_bound:
                    lost_ok = False
                    print(f"# round {rounds} start {start}: lost {lost:.2f}s of work "
                          f"(bound {a.lost_bound}s)")
                continue
            res = [l for l in lines if l.startswith("result:")]
            if r.p.returncode != 0 or not res:
                print(f"# round {rounds} start {start}: exit {r.p.returncode}")
                for l in lines[-10:]:
                    print("#   " + l)
                rounds_ok = False
                break
            final = res[0]
            break
        if final != ref_result[0]:
            rounds_ok = False
            print(f"# round {rounds}: result {final!r}, expected {ref_result[0]!r}")
            break
    check(kills >= a.kills, f"{kills} kills delivered")
    check(rounds_ok, f"every round's result after kills equals the uninterrupted run's ({rounds} rounds)")
    check(resume_ok, "no committed checkpoint lost across kills")
    check(lost_ok, f"work lost per kill bounded (worst {worst_lost:.2f}s, bound {a.lost_bound}s)")
    wipe(a.store_b)
    finish(results)


def finish(results):
    p = sum(results)
    f = len(results) - p
    print(f"1..{len(results)}")
    print(f"# Totals: pass:{p} fail:{f} xfail:0 xpass:0 skip:0 error:0")
    sys.exit(0 if f == 0 else 1)


if __name__ == "__main__":
    main()
