#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""MPI tests of libckpt-mpi with examples/stencil_mpi, 4 ranks on this machine.

  mpi_test.py --mpiexec 'mpiexec.openmpi --allow-run-as-root --oversubscribe' --bin STENCIL \
              --dir WORKDIR TEST

TEST is one of:
  kill          kill campaign: SIGKILL one rank at a random instant after the ranks restored
                (the job dies), relaunch, until >= --kills kills and a run that finishes; every finished run prints the
                uninterrupted run's answer, every relaunch restores one epoch on all ranks, never
                older than the last epoch rank 0 reported complete before the kill
  crash-local   a rank dies between its local commit of epoch 5 and the agreement: the relaunch
                restores epoch 4 on every rank (though stores hold 5) and finishes right
  crash-agree   a rank dies after the agreement on epoch 5 but before recording it: the others
                recorded 5 (and may have committed 6 locally); its own record says 4; the
                relaunch restores 5 on every rank (the newest epoch any rank recorded)
  missing       a rank's store (and record) deleted: every rank fails with the same error
  damaged       a rank's store overwritten past its first 8 KiB (its epochs' pages and metadata
                gone): every rank fails with the same error, naming that rank
  interval      time-triggered checkpoints (--interval-ms) with ranks at different paces: no
                hang, and a restart from one of them finishes right
  lost-local    a rank's local storage lost, shared copies present: it restores from the shared
                copy, the others the same epoch from local, and the job finishes right
  retry         rank 1's local commit of epoch 5 fails (the others commit it locally; the
                collective checkpoint fails everywhere), the next checkpoint retries epoch 5 and
                every rank dies after its local commit, before the agreement: the relaunch
                restores epoch 4 (the last complete one) on every rank from its local store
  retry-late-region
                as retry, with a region registered after epoch 4 was complete (at step 41): going
                back to epoch 4 does not hold it, the retry writes it whole (before: -ESRCH, the
                retry committed on top of the failed attempt, and the relaunch found epoch 4 in
                no store of ranks 0, 2, 3: every rank failed with -ENODATA)
  early-hook    a relaunch calls ckpt_mpi_hook before ckpt_mpi_restore, checkpoints due: they
                are skipped (not committed over the stored epoch), the restore finds the
                epoch the crashed run completed, and the job finishes right
Exit 0 only if every assertion held.
"""
import argparse, os, random, re, shlex, shutil, signal, subprocess, sys, time

N, STEPS, EVERY = 256, 120, 10


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


class Runner:
    def __init__(self, a):
        self.mpiexec = shlex.split(a.mpiexec)
        self.bin = a.bin
        self.dir = a.dir
        self.tool = a.tool
        self.env = dict(os.environ, STENCIL_VERBOSE="1")

    def newest(self, store):
        """The newest committed epoch of a rank's store, from ckpt-tool inspect."""
        p = subprocess.run([self.tool, "inspect", store], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        m = re.search(r"^epoch\s+(\d+) \(newest committed\)", p.stdout, re.M)
        if not m:
            fail(f"ckpt-tool inspect {store}: no newest epoch\n{p.stdout}")
        return int(m.group(1))

    def cmd(self, store, *extra, steps=STEPS, every=EVERY):
        return self.mpiexec + ["-np", "4", self.bin, "--store", store, "--n", str(N),
                               "--steps", str(steps)] + (["--every", str(every)] if every else []) + list(extra)

    def run(self, store, *extra, env=None, timeout=120, **kw):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run(self.cmd(store, *extra, **kw), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=e, timeout=timeout)
        return p.returncode, p.stdout


def answer(out):
    m = re.search(r"^answer ([0-9a-f]+) steps (\d+)$", out, re.M)
    return m.group(1) if m else None


def restored(out):
    """{rank: (epoch, step, source)} from a relaunch's output."""
    return {int(m[0]): (int(m[1]), int(m[2]), m[3]) for m in
            re.findall(r"^rank (\d+): restored epoch (\d+) step (\d+) from (\w+)$", out, re.M)}


def fresh(d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def reference(r, steps=STEPS):
    """The uninterrupted run's answer, computed once per binary (cached beside the test dirs)."""
    cache = os.path.join(os.path.dirname(os.path.abspath(r.dir)),
                         f"reference-{N}-{steps}-{int(os.stat(r.bin).st_mtime)}")
    if os.path.exists(cache):
        return open(cache).read().strip()
    d = fresh(os.path.join(r.dir, "ref"))
    rc, out = r.run(os.path.join(d, "s.%d"), steps=steps)
    ref = answer(out)
    if rc != 0 or not ref:
        fail(f"uninterrupted run: exit {rc}\n{out}")
    with open(cache, "w") as f:
        f.write(ref + "\n")
    return ref


def one_epoch_all_ranks(out, what):
    res = restored(out)
    if sorted(res) != [0, 1, 2, 3]:
        fail(f"{what}: not every rank restored:\n{out}")
    epochs = {v[0] for v in res.values()}
    steps = {v[1] for v in res.values()}
    if len(epochs) != 1 or len(steps) != 1:
        fail(f"{what}: ranks restored different epochs {res}")
    return res


def gone(pgid, limit=20.0):
    """Wait until no process of the launch's process group (mpiexec's session: its daemons and
    ranks) is left, so the next launch finds the stores unlocked; SIGKILL them after `limit`."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    return False


def t_kill(r, a):
    ref = reference(r)
    rng = random.Random(a.seed)
    print(f"reference answer {ref}; seed {a.seed}")
    kills = finished = launches = 0
    d = fresh(os.path.join(r.dir, "kill"))
    store = os.path.join(d, "s.%d")
    last_complete = 0   # newest epoch rank 0 reported complete in this round
    t0 = time.monotonic()
    while kills < a.kills or finished == 0:
        if time.monotonic() - t0 > a.budget:
            fail(f"campaign over its {a.budget} s budget: {kills} kills, {finished} finished runs")
        piddir = fresh(os.path.join(r.dir, "pids"))
        launches += 1
        tl = time.monotonic()
        # Open MPI's daemon waits odls_base_sigkill_timeout (1 s) after the SIGTERM it sends the
        # surviving ranks of a job one of whose ranks died, before SIGKILL: 1-2 s of every kill
        # launch's teardown (the campaign took 93 s of its 115 at load 18, 52 s with 0). MPICH
        # ignores the variable. mpiexec may then return before the ranks are gone: gone() waits.
        p = subprocess.Popen(r.cmd(store, "--pid-dir", piddir, "--sleep-us", str(a.sleep_us)),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(r.env, OMPI_MCA_odls_base_sigkill_timeout="0"),
                             start_new_session=True)
        # Wait for the four ranks, then kill one at a random instant.
        deadline = time.monotonic() + 30
        while len(os.listdir(piddir)) < 4 and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        tready = time.monotonic()
        killed = None
        # Once the campaign has its kills, the next launch runs to the end.
        if kills < a.kills and p.poll() is None and len(os.listdir(piddir)) == 4:
            time.sleep(rng.uniform(0.0, a.max_delay))
            victim = rng.randrange(4)
            try:
                pid = int(open(os.path.join(piddir, f"{victim}.pid")).read())
                os.kill(pid, signal.SIGKILL)
                killed = victim
                tkill = time.monotonic()
            except (ProcessLookupError, ValueError):
                pass
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            fail(f"launch {launches}: the job did not end after rank {killed} was killed\n{out}")
        if not gone(p.pid):
            fail(f"launch {launches}: ranks still alive 20 s after mpiexec returned\n{out}")
        res = restored(out)
        if res:
            one_epoch_all_ranks(out, f"launch {launches}")
            e = next(iter(res.values()))[0]
            if e < last_complete:
                fail(f"launch {launches}: restored epoch {e}, but epoch {last_complete} had been "
                     f"reported complete before the kill\n{out}")
        elif "fresh start" not in out and p.returncode == 0:
            fail(f"launch {launches}: neither restored nor fresh\n{out}")
        elif last_complete and "fresh start" in out:
            fail(f"launch {launches}: fresh start after epoch {last_complete} was complete\n{out}")
        reported = [int(x) for x in re.findall(r"^epoch (\d+) at step", out, re.M)]
        if reported:
            last_complete = max(last_complete, max(reported))
        if p.returncode == 0:
            ans = answer(out)
            if ans != ref:
                fail(f"launch {launches}: finished with answer {ans}, expected {ref}\n{out}")
            finished += 1
            print(f"launch {launches}: finished, answer matches ({kills} kills so far)")
            d = fresh(os.path.join(r.dir, "kill"))   # next round from scratch
            last_complete = 0
            continue
        if killed is None:
            fail(f"launch {launches}: exit {p.returncode} without a kill\n{out}")
        if "ckpt_mpi_restore:" in out or "ckpt_mpi_open:" in out:
            fail(f"launch {launches}: restore failed\n{out}")
        kills += 1
        print(f"launch {launches}: killed rank {killed}; restored {sorted(set(res.values()))}; "
              f"newest reported complete {last_complete}; {tready - tl:.1f} s to the ranks' start, "
              f"killed {tkill - tready:.1f} s later, the job ended {time.monotonic() - tkill:.1f} s later")
    print(f"PASS: {kills} kills, {finished} finished runs with the reference answer, "
          f"{launches} launches, {time.monotonic() - t0:.0f} s")


def record_complete(path):
    """The epoch a rank's record (<store>.mpi) says is globally complete. libckpt_mpi's layout:
    two slots at 0 and 512 of magic[8], rank u32, size u32, gen, base, valid_from, complete, seq,
    csum (u64 LE); the valid slot with the higher seq is the record (the checksum is XXH3, not
    checked here)."""
    with open(path, "rb") as f:
        b = f.read()
    best = None
    for off in (0, 512):
        s = b[off:off + 64]
        if len(s) == 64 and s[:8] == b"CKPTMPI1":
            seq = int.from_bytes(s[48:56], "little")
            if best is None or seq > best[0]:
                best = (seq, int.from_bytes(s[40:48], "little"))
    if best is None:
        fail(f"{path}: no record")
    return best[1]


def crash_then_restart(r, a, fault, expect_epoch):
    ref = reference(r)
    d = fresh(os.path.join(r.dir, fault))
    store = os.path.join(d, "s.%d")
    rc, out = r.run(store, env={"CKPT_MPI_FAULT": f"{fault}:5:1"})
    if rc == 0:
        fail(f"the fault {fault}:5:1 did not kill the job\n{out}")
    newest = [r.newest(store % k) for k in range(4)]
    complete = [record_complete(store % k + ".mpi") for k in range(4)]
    print(f"after the crash: stores' newest epochs {newest}, records say complete {complete}")
    if newest[1] != 5:
        fail("rank 1 died at its fault point without its store holding epoch 5")
    if fault == "after-local-commit" and complete != [4, 4, 4, 4]:
        fail("a record says more than epoch 4 is complete though rank 1 never agreed on 5")
    if fault == "after-agreement" and (complete[1] != 4 or max(complete) != 5):
        fail("expected rank 1's record at 4 and another rank's at 5")
    rc, out = r.run(store)
    res = one_epoch_all_ranks(out, "relaunch")
    e, step, _ = res[0]
    if e != expect_epoch or step != expect_epoch * EVERY:
        fail(f"restored epoch {e} step {step}, expected epoch {expect_epoch}\n{out}")
    if rc != 0 or answer(out) != ref:
        fail(f"relaunch: exit {rc}, answer {answer(out)}, expected {ref}\n{out}")
    print(f"PASS: every rank restored epoch {expect_epoch}, answer {ref}")


def t_retry(r, a, late=False):
    ref = reference(r)
    d = fresh(os.path.join(r.dir, "retry"))
    store = os.path.join(d, "s.%d")
    extra = ["--late-region-at", str(4 * EVERY + 1)] if late else []
    rc, out = r.run(store, *extra, env={"CKPT_MPI_FAULT": "fail-local-commit:5:1,after-local-commit-retry:5:*"})
    if rc == 0:
        fail(f"the faults did not kill the job\n{out}")
    if "rank 1: local commit of epoch 5: injected fault" not in out:
        fail(f"the first checkpoint of epoch 5 did not fail with rank 1's error\n{out}")
    complete = [record_complete(store % k + ".mpi") for k in range(4)]
    newest = [r.newest(store % k) for k in range(4)]
    print(f"after the crash in the retry: stores' newest epochs {newest}, records say complete {complete}")
    if complete != [4, 4, 4, 4]:
        fail("a record says more than epoch 4 is complete")
    rc, out = r.run(store, *extra)
    res = one_epoch_all_ranks(out, "relaunch")
    if res[0][0] != 4 or res[0][1] != 4 * EVERY or any(v[2] != "local" for v in res.values()):
        fail(f"expected epoch 4 (step {4 * EVERY}) from local on every rank: {res}\n{out}")
    if rc != 0 or answer(out) != ref:
        fail(f"relaunch: exit {rc}, answer {answer(out)}, expected {ref}\n{out}")
    print(f"PASS: after a crash in the retry of epoch 5, every rank restored epoch 4 from its "
          f"local store, answer {ref}")


def t_damaged(r, a):
    d = fresh(os.path.join(r.dir, "damaged"))
    store = os.path.join(d, "s.%d")
    rc, out = r.run(store, "--die-at-step", "75", "--die-rank", "0")
    if rc == 0:
        fail("the job did not die")
    p = os.path.join(d, "s.2")
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.seek(8192)
        f.write(bytes([0xa5]) * (size - 8192))
    rc, out = r.run(store)
    # Rank 2's damage shows at open or at restore: either way every rank the same error.
    lines = re.findall(r"^rank (\d+): (ckpt_mpi_(?:open|restore): .*)$", out, re.M)
    if rc == 0 or sorted(int(k) for k, _ in lines) != [0, 1, 2, 3]:
        fail(f"expected every rank to fail (exit {rc})\n{out}")
    texts = {t for _, t in lines}
    if len(texts) != 1:
        fail(f"the ranks' errors differ: {texts}")
    t = texts.pop()
    if "rank 2" not in t:
        fail(f"the error does not name rank 2: {t}")
    print(f"PASS: every rank: {t}")


def t_missing(r, a):
    d = fresh(os.path.join(r.dir, "missing"))
    store = os.path.join(d, "s.%d")
    rc, out = r.run(store, "--die-at-step", "75", "--die-rank", "0")
    if rc == 0:
        fail("the job did not die")
    for f in ("s.2", "s.2.mpi"):
        os.unlink(os.path.join(d, f))
    rc, out = r.run(store)
    lines = re.findall(r"^rank (\d+): (ckpt_mpi_restore: .*)$", out, re.M)
    if rc == 0 or sorted(int(k) for k, _ in lines) != [0, 1, 2, 3]:
        fail(f"expected every rank to fail ckpt_mpi_restore (exit {rc})\n{out}")
    texts = {t for _, t in lines}
    if len(texts) != 1:
        fail(f"the ranks' errors differ: {texts}")
    t = texts.pop()
    if "rank 2" not in t or "s.2" not in t or "missing" not in t:
        fail(f"the error does not name rank 2 and its missing store: {t}")
    print(f"PASS: every rank: {t}")


def t_lost_local(r, a):
    ref = reference(r)
    d = fresh(os.path.join(r.dir, "lost"))
    shared = fresh(os.path.join(r.dir, "lost-shared"))
    store = os.path.join(d, "s.%d")
    extra = ["--shared", shared, "--shared-every", "3"]
    # Epochs 1..6 (steps 10..60), copies of 3 and 6; the job dies at step 65.
    rc, out = r.run(store, *extra, "--die-at-step", "65", "--die-rank", "3")
    if rc == 0:
        fail("the job did not die")
    have = sorted(os.listdir(shared))
    want = [f"ckpt-mpi.r{k}.e{e}" for k in range(4) for e in (3, 6)]
    if sorted(want) != have:
        fail(f"shared directory holds {have}, expected {sorted(want)}")
    for f in ("s.1", "s.1.mpi"):
        os.unlink(os.path.join(d, f))
    rc, out = r.run(store, *extra)
    res = one_epoch_all_ranks(out, "relaunch")
    if res[1][2] != "shared" or any(res[k][2] != "local" for k in (0, 2, 3)):
        fail(f"expected rank 1 from the shared copy, the others local: {res}\n{out}")
    if res[0][0] != 6:
        fail(f"restored epoch {res[0][0]}, expected 6\n{out}")
    if rc != 0 or answer(out) != ref:
        fail(f"relaunch: exit {rc}, answer {answer(out)}, expected {ref}\n{out}")
    print(f"PASS: rank 1 restored epoch 6 from the shared copy, the others from local; answer {ref}")


def t_interval(r, a):
    """The time trigger is collective: ranks whose clocks find the interval elapsed at different
    steps (a rank-dependent pace) still checkpoint together — a rank waiting alone in a checkpoint
    would hang the job (the timeout fails it) — and a restart from such an epoch is right."""
    ref = reference(r)
    d = fresh(os.path.join(r.dir, "interval"))
    store = os.path.join(d, "s.%d")
    extra = ["--interval-ms", "40", "--skew-us", "300"]
    rc, out = r.run(store, *extra, "--die-at-step", "80", "--die-rank", "2", every=0, timeout=100)
    reported = [int(x) for x in re.findall(r"^epoch (\d+) at step", out, re.M)]
    if rc == 0 or len(reported) < 2:
        fail(f"expected >= 2 time-triggered checkpoints before the crash (got {reported}, exit {rc})\n{out}")
    rc, out = r.run(store, *extra, every=0, timeout=100)
    res = one_epoch_all_ranks(out, "relaunch")
    e = res[0][0]
    if e < max(reported):
        fail(f"restored epoch {e}, but {max(reported)} was complete\n{out}")
    if rc != 0 or answer(out) != ref:
        fail(f"relaunch: exit {rc}, answer {answer(out)}, expected {ref}\n{out}")
    print(f"PASS: {len(reported)} time-triggered checkpoints before the crash, every rank restored "
          f"epoch {e} (step {res[0][1]}), answer {ref}")


def t_early_hook(r, a):
    ref = reference(r)
    d = fresh(os.path.join(r.dir, "early-hook"))
    store = os.path.join(d, "s.%d")
    rc, out = r.run(store, "--die-at-step", "50", "--die-rank", "1")
    if rc == 0:
        fail(f"the first run did not die\n{out}")
    # 25 hooks with --every 10: two are due before the restore.
    rc, out = r.run(store, "--hooks-before-restore", "25")
    early = re.findall(r"^rank (\d+): hooks before restore: (\d+) taken, (\d+) skipped$", out, re.M)
    if sorted(int(x[0]) for x in early) != [0, 1, 2, 3] or any(x[1:] != ("0", "2") for x in early):
        fail(f"expected 0 taken, 2 skipped on every rank before the restore: {early}\n{out}")
    res = one_epoch_all_ranks(out, "relaunch")
    if res[0][:2] != (5, 50):
        fail(f"restored epoch {res[0][0]} step {res[0][1]}, expected epoch 5 step 50\n{out}")
    if rc != 0 or answer(out) != ref:
        fail(f"relaunch: exit {rc}, answer {answer(out)}, expected {ref}\n{out}")
    print(f"PASS: 2 due hooks skipped before the restore on every rank, epoch 5 restored, answer {ref}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tool", required=True, help="ckpt-tool")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--budget", type=float, default=115)
    ap.add_argument("--sleep-us", type=int, default=8000,
                    help="the campaign's runs sleep this long per step (a run lasts >= 1 s)")
    ap.add_argument("--max-delay", type=float, default=1.0,
                    help="a kill lands uniformly within this many seconds after the ranks restored")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CKPT_MPI_SEED", time.time_ns() % 100000)))
    ap.add_argument("test", choices=["kill", "crash-local", "crash-agree", "missing", "lost-local",
                                     "interval", "retry", "retry-late-region", "damaged",
                                     "early-hook"])
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    r = Runner(a)
    if a.test == "kill":
        t_kill(r, a)
    elif a.test == "crash-local":
        crash_then_restart(r, a, "after-local-commit", 4)
    elif a.test == "crash-agree":
        crash_then_restart(r, a, "after-agreement", 5)
    elif a.test == "missing":
        t_missing(r, a)
    elif a.test == "interval":
        t_interval(r, a)
    elif a.test == "retry":
        t_retry(r, a)
    elif a.test == "damaged":
        t_damaged(r, a)
    elif a.test == "retry-late-region":
        t_retry(r, a, late=True)
    elif a.test == "early-hook":
        t_early_hook(r, a)
    else:
        t_lost_local(r, a)


if __name__ == "__main__":
    main()
