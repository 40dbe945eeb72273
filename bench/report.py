#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Results of `make bench`: validate, merge, plot, write the performance page.

  report.py --validate ckpt|track|host FILE   exit 1 if FILE is not a well-formed result
  report.py merge DIR OUT.json             DIR/*.json (bench/run-guest.sh) -> one results file
  report.py render RESULTS.json DOCDIR [KERNEL=RESULTS.json ...]
                                           PNG plots + DOCDIR/performance.md (needs matplotlib);
                                           the page is RESULTS.json's; its "Both kernels" section
                                           puts the comparisons of the KERNEL=RESULTS (every kernel
                                           of one make bench) side by side

The merged file has one entry per figure: name, unit, median, min, max (n, params), and for
comparisons also ratio, target and met. Only ratios measured in the same run are claimed.
"""
import json
import math
import os
import sys


def fail(msg):
    print(f"report.py: {msg}", file=sys.stderr)
    sys.exit(1)


def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_ckpt(d, path):
    errs = []
    for k in ("section", "figures", "comparisons"):
        if k not in d:
            errs.append(f"missing '{k}'")
    if errs:
        return errs
    if not d["figures"]:
        errs.append("no figures")
    for f in d["figures"] + d["comparisons"]:
        name = f.get("name", "?")
        for k in ("name", "unit", "median", "min", "max"):
            if k not in f:
                errs.append(f"{name}: missing '{k}'")
        if not all(num(f.get(k)) for k in ("median", "min", "max")):
            errs.append(f"{name}: median/min/max not finite numbers")
        elif not f["min"] <= f["median"] <= f["max"]:
            errs.append(f"{name}: not min <= median <= max")
        elif f["unit"] != "ratio" and f["min"] < 0:
            errs.append(f"{name}: negative")
    for c in d["comparisons"]:
        if not num(c.get("ratio")) or c["ratio"] <= 0:
            errs.append(f"{c.get('name')}: ratio missing or not positive")
        if "target" in c and not isinstance(c.get("met"), bool):
            errs.append(f"{c.get('name')}: target without met")
    return errs


def validate_track(d, path):
    errs = []
    npp = d.get("ns_per_page")
    if not isinstance(npp, dict) or not npp:
        return ["missing ns_per_page"]
    for k, v in npp.items():
        if not num(v) or v < 0:
            errs.append(f"ns_per_page.{k} not a non-negative number")
    for t in d.get("targets", []):
        if not num(t.get("value")) or not isinstance(t.get("met"), bool):
            errs.append(f"target {t.get('name')}: value/met malformed")
    if not isinstance(d.get("big_region"), dict):
        errs.append("missing big_region")
    return errs


def validate_host(d, path):
    """bench/host's host_bench JSON: figures {name: {value, unit}}, targets [{target, measured}]."""
    errs = []
    f = d.get("figures")
    if not isinstance(f, dict) or not f:
        return ["missing figures"]
    for k, v in f.items():
        if not isinstance(v, dict) or not num(v.get("value")) or v["value"] < 0:
            errs.append(f"figures.{k}: value not a non-negative number")
    if not isinstance(d.get("targets"), list) or not d["targets"]:
        errs.append("missing targets")
    return errs


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")


def validate(kind, path):
    d = load(path)
    errs = {"ckpt": validate_ckpt, "track": validate_track, "host": validate_host}[kind](d, path)
    if errs:
        for e in errs[:20]:
            print(f"{path}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{path}: well-formed")


def track_entries(d):
    """track_bench's JSON (bench/track, the module colleague's) as results entries. It
    reports the median over repeats of the best of 3 trials, without a spread."""
    out = []
    note = "median over repeats of the best of 3 trials; track_bench reports no spread"
    # The VM harness loads ckpt.ko with hook_stay_armed=1: the hook is then armed while loaded.
    armed = "; ckpt.ko had hook_stay_armed=1, so 'loaded' was armed as well" if d.get("hook_stay_armed") else ""
    for k, v in d["ns_per_page"].items():
        out.append({"name": f"track/{k}", "unit": "ns/page", "median": v, "min": None, "max": None,
                    "n": d.get("repeats"), "note": note + (armed if "untracked" in k else ""),
                    "params": {"pages": d.get("pages")}})
    br = d.get("big_region", {})
    for k in ("collect_1pct_ns", "softdirty_scan_ns", "softdirty_clear_refs_ns"):
        if k in br:
            out.append({"name": f"track/big_region/{k[:-3]}", "unit": "ms", "median": br[k] / 1e6,
                        "min": None, "max": None, "n": d.get("repeats"), "note": "median over repeats",
                        "params": {"bytes": br.get("bytes"), "dirty_pages": br.get("dirty_pages")}})
    for t in d.get("targets", []):
        out.append({"name": f"track: {t['name']}", "unit": "ratio", "median": t["value"], "min": None,
                    "max": None, "ratio": t["value"],
                    "target": f"{'<=' if t['at_most'] else '>='} {t['limit']}", "met": t["met"],
                    "note": "ratio of medians (track_bench)" + (armed if "untracked" in t["name"] else "")})
    for k, v in d.get("ratios", {}).items():
        out.append({"name": f"track/ratio/{k}", "unit": "ratio", "median": v, "min": None, "max": None,
                    "ratio": v, "note": "ratio of medians (track_bench)"})
    return out


def merge(indir, outpath):
    env = load(os.path.join(indir, "env.json")) if os.path.exists(os.path.join(indir, "env.json")) else {}
    if os.path.exists(os.path.join(indir, "host.json")):  # scripts/bench.sh: the host's load
        env["host"] = load(os.path.join(indir, "host.json"))
    entries, sections = [], []
    for name in ("track", "latency", "scaling", "throughput", "slowdown", "slowdown-async", "criu", "criu-incr",
                 "criu-pmem", "criu-incr-pmem"):
        p = os.path.join(indir, f"{name}.json")
        if not os.path.exists(p):
            continue
        d = load(p)
        sections.append(name)
        if name == "track":
            entries += track_entries(d)
        else:
            for f in d["figures"]:
                entries.append(f)
            for c in d["comparisons"]:
                entries.append(c)
    if not entries:
        fail(f"no results in {indir}")
    doc = {"environment": env, "sections": sections, "entries": entries}
    # ckpt.ko against uffd-async (bench/host's host_bench in a kernel that has both): its own table.
    md = os.path.join(indir, "uffd-async.md")
    if os.path.exists(md) and os.path.exists(os.path.join(indir, "uffd-async.json")):
        doc["uffd_async"] = load(os.path.join(indir, "uffd-async.json"))
        with open(md) as f:
            doc["uffd_async_md"] = f.read()
        sections.append("uffd-async")
    tp = os.path.join(indir, "track.json")
    if os.path.exists(tp) and load(tp).get("unload_failures"):
        doc["unload_failures"] = load(tp)["unload_failures"]
    with open(outpath, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"report.py: {len(entries)} entries from {', '.join(sections)} -> {outpath}")


# ---------------------------------------------------------------- render

def by_name(entries):
    return {e["name"]: e for e in entries}


def fmt(x, digits=3):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def render(results, docdir, also=()):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = load(results)
    E = by_name(d["entries"])
    env = d.get("environment", {})
    os.makedirs(docdir, exist_ok=True)
    plots = {}
    trackers = ["module", "uffd", "mprotect", "full"]
    writers = ["dax", "io_uring"]

    # 1. latency vs dirty pages, per tracker, one panel per writer.
    lat = [e for e in d["entries"] if e["name"].startswith("latency/")]
    if lat:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for ax, w in zip(axes, writers):
            for t in trackers:
                pts = sorted((e["params"]["dirty_pages"], e) for e in lat
                             if e["params"]["tracker"] == t and e["params"]["writer"] == w)
                if not pts:
                    continue
                xs = [p[0] for p in pts]
                ys = [p[1]["median"] for p in pts]
                lo = [p[1]["median"] - p[1]["min"] for p in pts]
                hi = [p[1]["max"] - p[1]["median"] for p in pts]
                ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=t)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"writer: {w}")
            ax.set_xlabel("dirty pages (4 KiB) per checkpoint")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("ckpt_checkpoint() latency, ms (median, min–max)")
        axes[0].legend()
        rb = lat[0]["params"]["region_bytes"] >> 20
        fig.suptitle(f"Checkpoint latency vs dirty pages, {rb} MiB registered region (QEMU TCG)")
        fig.tight_layout()
        plots["latency"] = "perf-latency.png"
        fig.savefig(os.path.join(docdir, plots["latency"]), dpi=90)
        plt.close(fig)

    # 1b. latency vs dirty pages, THP-backed region against 4 KiB pages (first writer).
    lt = [e for e in d["entries"] if e["name"].startswith("latency-thp/")]
    if lt:
        w = lt[0]["params"]["writer"]
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for i, t in enumerate(trackers):
            for kind, ls, tag in (("latency", "-", "4 KiB"), ("latency-thp", "--", "THP")):
                pts = sorted((e["params"]["dirty_pages"], e) for e in d["entries"]
                             if e["name"].startswith(f"{kind}/{t}/{w}/"))
                if not pts or not any(e["name"].startswith(f"latency-thp/{t}/") for e in lt):
                    continue
                ax.errorbar([p[0] for p in pts], [p[1]["median"] for p in pts],
                            yerr=[[p[1]["median"] - p[1]["min"] for p in pts],
                                  [p[1]["max"] - p[1]["median"] for p in pts]],
                            marker="o", capsize=3, ls=ls, color=f"C{i}", label=f"{t}, {tag}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("dirty pages (4 KiB) per checkpoint")
        ax.set_ylabel("ckpt_checkpoint() latency, ms")
        ax.set_title(f"THP-backed region vs MADV_NOHUGEPAGE (writer {w}, QEMU TCG)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        plots["latency_thp"] = "perf-latency-thp.png"
        fig.savefig(os.path.join(docdir, plots["latency_thp"]), dpi=90)
        plt.close(fig)

    # 2. persist / restore throughput vs memcpy.
    tp = [w for w in writers if f"throughput/{w}/persist" in E]
    if tp:
        fig, ax = plt.subplots(figsize=(8, 4))
        kinds = [("persist", "memcpy_before_persist"), ("restore", "memcpy_before_restore")]
        labels, vals, errs, colors = [], [], [], []
        for w in tp:
            for k, m in kinds:
                for name, col in ((f"throughput/{w}/{k}", "tab:blue"), (f"throughput/{w}/{m}", "tab:gray")):
                    e = E[name]
                    labels.append(f"{w}\n{k}" if col == "tab:blue" else f"{w}\nmemcpy")
                    vals.append(e["median"])
                    errs.append([e["median"] - e["min"], e["max"] - e["median"]])
                    colors.append(col)
        ax.bar(range(len(vals)), vals, yerr=list(zip(*errs)), color=colors, capsize=3)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("MiB/s (median, min–max)")
        ax.set_title("Store persist / restore vs memcpy of the same pages (QEMU TCG)")
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        plots["throughput"] = "perf-throughput.png"
        fig.savefig(os.path.join(docdir, plots["throughput"]), dpi=90)
        plt.close(fig)

    # 3. slowdown vs checkpoint frequency.
    sd = sorted(((e["params"]["rate_per_s"], e) for e in d["entries"]
                 if e["name"].startswith("throughput kept at") and not e["params"].get("async")),
                key=lambda x: x[0])
    sda = sorted(((e["params"]["rate_per_s"], e) for e in d["entries"]
                  if e["name"].startswith("throughput kept at") and e["params"].get("async")),
                 key=lambda x: x[0])
    if sd:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        xs = [s[0] for s in sd]
        ax.errorbar(xs, [100 * s[1]["ratio"] for s in sd],
                    yerr=[[100 * (s[1]["ratio"] - s[1]["min"]) for s in sd],
                          [100 * (s[1]["max"] - s[1]["ratio"]) for s in sd]],
                    marker="o", capsize=3, label="module tracker, DAX")
        if sda:
            ax.errorbar([s[0] for s in sda], [100 * s[1]["ratio"] for s in sda],
                        yerr=[[100 * (s[1]["ratio"] - s[1]["min"]) for s in sda],
                              [100 * (s[1]["max"] - s[1]["ratio"]) for s in sda]],
                        marker="s", capsize=3, label="module tracker, DAX, asynchronous")
        ax.axhline(95, color="tab:red", ls="--", label="target at 10/s: 95%")
        ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}/s" for x in xs])
        ax.set_ylim(0, 110)
        ax.set_xlabel("checkpoints per second")
        ax.set_ylabel("loop throughput kept, % of no-ckpt run")
        ax.set_title("Slowdown of a memory-bound loop (QEMU TCG)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        plots["slowdown"] = "perf-slowdown.png"
        fig.savefig(os.path.join(docdir, plots["slowdown"]), dpi=90)
        plt.close(fig)

    # 4. tracking cost per page (bench/track).
    tr = [(e["name"][len("track/"):], e["median"]) for e in d["entries"]
          if e["name"].startswith("track/") and e["unit"] == "ns/page"]
    if tr:
        fig, ax = plt.subplots(figsize=(9, 4.2))
        ax.barh([t[0] for t in tr], [t[1] for t in tr], color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlabel("ns per 4 KiB page (median), log scale")
        ax.set_title("Write-tracking cost per page (bench/track, QEMU TCG)")
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        plots["track"] = "perf-tracking.png"
        fig.savefig(os.path.join(docdir, plots["track"]), dpi=90)
        plt.close(fig)

    # 5. scaling with registered size.
    sc = sorted((e["params"]["region_bytes"], e) for e in d["entries"] if e["name"].startswith("scaling/"))
    if sc:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        xs = [s[0] / 2**20 for s in sc]
        ax.errorbar(xs, [s[1]["median"] for s in sc],
                    yerr=[[s[1]["median"] - s[1]["min"] for s in sc], [s[1]["max"] - s[1]["median"] for s in sc]],
                    marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("registered region, MiB")
        ax.set_ylabel("checkpoint latency, ms")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{sc[0][1]['params']['dirty_pages']} dirty pages vs registered size (module, DAX)")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        plots["scaling"] = "perf-scaling.png"
        fig.savefig(os.path.join(docdir, plots["scaling"]), dpi=90)
        plt.close(fig)

    # 6. whole-process dump/restore, ckpt-tool vs CRIU.
    cr = [e for e in d["entries"] if e["name"].startswith("criu/")]
    if cr:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels, vals, errs, colors = [], [], [], []
        for tag in ("thp", "nothp"):
            for op in ("dump", "restore"):
                for tool, col in (("ckpt", "tab:blue"), ("criu", "tab:orange")):
                    e = E.get(f"criu/{tag}/{tool}_{op}")
                    if not e:
                        continue
                    labels.append(f"{tag}\n{op}\n{'ckpt-tool' if tool == 'ckpt' else 'criu'}")
                    vals.append(e["median"])
                    errs.append([e["median"] - e["min"], e["max"] - e["median"]])
                    colors.append(col)
        ax.bar(range(len(vals)), vals, yerr=list(zip(*errs)), color=colors, capsize=3)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("seconds (median, min–max)")
        ax.set_title(f"Whole-process dump / restore of a {cr[0]['params']['process_mib']} MiB process (QEMU TCG)")
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        plots["criu"] = "perf-criu.png"
        fig.savefig(os.path.join(docdir, plots["criu"]), dpi=90)
        plt.close(fig)

    # 7. incremental checkpoint after 1% written, ckpt-tool vs CRIU: time and bytes.
    ci = [e for e in d["entries"] if e["name"].startswith("criu-incr/")]
    if ci:
        tags = [t for t in ("thp", "nothp") if f"criu-incr/{t}/ckpt_incr" in E]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key, unit, scale in ((a1, "incr", "seconds", 1), (a2, "incr_bytes", "MiB written", 2**20)):
            labels, vals, errs, colors = [], [], [], []
            for t in tags:
                for tool, col in (("ckpt", "tab:blue"), ("criu", "tab:orange")):
                    e = E.get(f"criu-incr/{t}/{tool}_{key}")
                    if not e:
                        continue
                    labels.append(f"THP {'on' if t == 'thp' else 'off'}\n{'ckpt-tool' if tool == 'ckpt' else 'criu'}")
                    vals.append(e["median"] / scale)
                    errs.append([(e["median"] - e["min"]) / scale, (e["max"] - e["median"]) / scale])
                    colors.append(col)
            ax.bar(range(len(vals)), vals, yerr=list(zip(*errs)), color=colors, capsize=3)
            ax.set_xticks(range(len(vals)))
            ax.set_xticklabels(labels, fontsize=8)
            ax.set_ylabel(f"{unit} (median, min–max)")
            ax.grid(True, axis="y", alpha=0.3)
        a1.set_title("incremental checkpoint time")
        a2.set_title("bytes written by it")
        fig.suptitle(f"{ci[0]['params']['process_mib']} MiB process, 1% of its pages written (QEMU TCG)")
        fig.tight_layout()
        plots["criu_incr"] = "perf-criu-incr.png"
        fig.savefig(os.path.join(docdir, plots["criu_incr"]), dpi=90)
        plt.close(fig)

    others = []
    for a in also:
        label, _, path = a.partition("=")
        others.append((label, load(path)))
    write_page(d, E, env, plots, docdir, others)


def stability(e):
    """Whether this run decides the target: every per-repeat ratio on the same side of it."""
    if e.get("min") is None:
        return "no spread reported"
    op, lim = e["target"].split()
    lim = float(lim)
    ok = [(x <= lim) if op == "<=" else (x >= lim) for x in (e["min"], e["max"])]
    if all(ok) or not any(ok):
        return "stable: every repeat on one side"
    return "**undecided**: repeats on both sides"


def target_rows(entries):
    rows = []
    for e in entries:
        if "target" in e:
            spread = (f"{fmt(e.get('min'))} – {fmt(e.get('max'))}" if e.get("min") is not None
                      else "(not reported)")
            rows.append(f"| {e['name']} | {fmt(e['ratio'])} | {spread} "
                        f"| {e['target']} | {'met' if e['met'] else '**not met**'} | {stability(e)} |")
    return rows


def kernels_section(d, others):
    """The comparisons of every kernel of one make bench (others: [(kernel, results)], the first
    kernel's included), side by side (issue 16)."""
    page_env = d.get("environment", {})
    runs = [o for _, o in others]
    d = runs[0]
    envs = [r.get("environment", {}) for r in runs]
    Es = [by_name(r["entries"]) for r in runs]
    L = []
    a = L.append
    a("## Both kernels side by side")
    a("")
    a("`make bench` runs every benchmark on each kernel of `KERNELS` (default `6.1 6.12`, as `make test`), "
      "one guest after the other in the same invocation, with the same binaries and the same guest "
      "settings (TCG, 2 vCPUs, `--no-debug`); "
      "this table puts the comparisons of each kernel beside each other. Under TCG and on a shared host, "
      "compare the ratios within a column; across columns only a large difference means something "
      "(the two guests ran minutes apart, under whatever load the host had then: see the load rows). "
      "On the kernels after the first, a full `make bench` runs the write-tracking (track_bench) and CRIU "
      "comparisons and ckpt.ko against uffd-async; the other benchmarks (latency, scaling, throughput, "
      "slowdown) are the first kernel's only (`CKPT_BENCH_ALL=1` runs them everywhere); `scripts/bench.sh "
      "--compare` runs just these comparisons on every kernel and rewrites only this section.")
    a("")
    same = page_env.get("date") == envs[0].get("date")
    a(f"This section: the run of {envs[0].get('date', '?')}" + (f" to {envs[-1].get('date')}" if len(envs) > 1 else "")
      + " (each kernel's guest start below). The other sections of this page: "
      + ("the same run's first kernel." if same else
         f"the full run of {page_env.get('date', '?')} on `{page_env.get('kernel', '?')}` (an earlier run).")
      )
    a("")
    a("| | " + " | ".join(f"`{e.get('kernel', '?')}`" for e in envs) + " |")
    a("| --- |" + " --- |" * len(runs))
    a("| measured (UTC) | " + " | ".join(str(e.get("date", "?")) for e in envs) + " |")
    a("| host load (1, 5, 15 min) at start / end | " + " | ".join(
        f"{e.get('host', {}).get('load_start', '?')} / {e.get('host', {}).get('load_end', '?')}" for e in envs) + " |")
    a("| guest session | " + " | ".join(f"{e.get('host', {}).get('session_seconds', 0) // 60} min" for e in envs) + " |")
    names = []
    for r in runs:
        for e in r["entries"]:
            if e["name"] not in names and ("target" in e or e["name"].startswith("track/")
                                           or e["name"].startswith("track: ")):
                names.append(e["name"])

    def cell(E, n):
        e = E.get(n)
        if not e:
            return "(not run)"
        v = e.get("ratio", e.get("median"))
        u = "" if e.get("unit") == "ratio" else f" {e.get('unit', '')}"
        t = f"{fmt(v)}{u}"
        if "met" in e:
            t += " met" if e["met"] else " **not met**"
        return t
    # Every track_bench row any kernel has (a missing one is news: "not run"); the other
    # comparisons where every kernel ran them (a full make bench runs the rest on the first only).
    names = [n for n in names if n.startswith("track") or all(n in E for E in Es)]
    targeted = [n for n in names if any("target" in E.get(n, {}) for E in Es)]
    a("| **comparisons with a target** (ratio, verdict) |" + " |" * len(runs))
    for n in targeted:
        tgt = next(E[n]["target"] for E in Es if n in E and "target" in E[n])
        a(f"| {n} (target {tgt}) | " + " | ".join(cell(E, n) for E in Es) + " |")
    a("| **track_bench, medians** |" + " |" * len(runs))
    for n in names:
        if n.startswith("track/") and not n.startswith("track/ratio/"):
            a(f"| {n[len('track/'):]} | " + " | ".join(cell(E, n) for E in Es) + " |")
    crit = [n for n in (e["name"] for e in d["entries"]) if n.startswith(("criu/", "criu-incr/"))
            and n.rsplit("/", 1)[-1] in ("ckpt_dump", "criu_dump", "ckpt_restore", "criu_restore", "ckpt_incr",
                                         "criu_incr")]
    if crit:
        a("| **CRIU comparison, medians** |" + " |" * len(runs))
        for n in crit:
            a(f"| {n} | " + " | ".join(cell(E, n) for E in Es) + " |")
    a("")
    for r, e in zip(runs, envs):
        for f in r.get("unload_failures", []):
            a(f"- `{e.get('kernel')}`: track_bench's `rmmod ckpt` failed (round {f.get('round')}, attempt "
              f"{f.get('attempt')}): `{f.get('rmmod', '').strip()}`; refcnt {f.get('refcnt')}, holders "
              f"`{f.get('holders') or 'none'}`, descriptors open on it: {', '.join(f.get('open_descriptors', [])) or 'none'}.")
    for r in runs:
        if r.get("uffd_async_md"):
            a("")
            a(r["uffd_async_md"].rstrip("\n"))
    a("")
    return L


def write_page(d, E, env, plots, docdir, others=()):
    L = []
    a = L.append
    quick = env.get("quick")
    a("# Performance")
    a("")
    a("Generated by `make bench` (`scripts/bench.sh`, `bench/report.py`) from "
      "`bench/results/latest.json`; do not edit by hand — edit the generator.")
    if quick:
        a("")
        a("**These are smoke-check (--quick) figures with tiny sizes; they mean nothing.**")
    a("")
    a("## Environment — read this first")
    a("")
    a(f"- Every figure was measured inside a **QEMU TCG guest** (no KVM: pure binary translation) with "
      f"{env.get('cpus', '?')} vCPUs on a 2-core host **shared with other engineers' builds and VMs** "
      f"at the time; guest kernel `{env.get('kernel', '?')}` (Debian bookworm), "
      f"{int(env.get('mem_kib', 0)) >> 10} MiB guest RAM, THP `{env.get('thp', '?')}` (the benchmarks' "
      f"regions use `MADV_NOHUGEPAGE` unless stated), measured {env.get('date', '?')}.")
    h = env.get("host")
    if h:
        a(f"- The host during this run: load average (1, 5, 15 min) {h.get('load_start', '?')} at the start and "
          f"{h.get('load_end', '?')} at the end on {h.get('cpus', '?')} CPUs"
          + (f" ({h['note']})" if h.get("note") else "")
          + f"; the guest session took {h.get('session_seconds', 0) // 60} min. A load above the CPU count "
          f"means the guest's vCPUs waited for the host's CPUs part of the time: single repeats swing.")
    a("- TCG inflates every cost, unevenly: a page fault costs ~10–20× native, a memcpy a few ×, "
      "an AVX checksum more. **Absolute times here are not hardware figures.** Only ratios between "
      "things measured in the same run, on the same buffers, are claimed, and even those shift on real "
      "hardware where faults are relatively cheaper.")
    a(f"- The \"persistent memory\" is QEMU's emulated NVDIMM: a `memory-backend-file` (a file in the "
      f"host's page cache) exposed as a device-DAX namespace `/dev/dax0.0` "
      f"({int(env.get('dax_bytes', 0)) >> 20} MiB) and an fsdax namespace with ext4 `-o dax` on "
      f"`/mnt/pmem`. It is ordinary RAM with DAX semantics: **no persistence domain, no media "
      f"latency or bandwidth limits, and cache flushes / non-temporal stores cost what they cost on "
      f"the emulated CPU, not what they cost on Optane or CXL memory.** The io_uring writer's file "
      f"store sits on the same `-o dax` ext4 file system, so the two writers share a medium.")
    a("- Each measurement is repeated (≥ 5 unless noted) and reported as median with min–max; "
      "ratios are ratios of medians (the slowdown's: the median of its paired runs' ratios), with the spread of the per-repeat ratios. With the host this "
      "noisy, spreads are wide; compare medians and ratios, not single runs.")
    a("")
    a("## Targets")
    a("")
    a("| comparison | ratio (median) | per-repeat min – max | target | | this run |")
    a("| --- | --- | --- | --- | --- | --- |")
    L += target_rows(d["entries"])
    a("")
    a("\"Stable\" means every repeat's ratio fell on the same side of the target, so the verdict does not "
      "hang on which repeat is the median; \"undecided\" targets need more repeats or a quieter machine "
      "before anyone quotes them as met or missed. track_bench's targets carry no per-repeat spread.")
    a("")
    if others:
        L += kernels_section(d, others)

    # Latency
    lat = [e for e in d["entries"] if e["name"].startswith("latency/")]
    if lat:
        rb = lat[0]["params"]["region_bytes"]
        a("## Checkpoint latency vs dirty pages, per tracker and writer")
        a("")
        a(f"`ckpt_bench latency`: one region of {rb >> 20} MiB (pre-faulted, first full checkpoint not "
          f"timed); each repeat writes one byte into N pages spread over it and times `ckpt_checkpoint()` "
          f"(collect + re-protect + persist + commit). The region is {rb >> 20} MiB, not 1 GiB: with the "
          f"full-copy tracker the store holds three copies of it (the live epoch, the retained one and the "
          f"one being written) and each of its checkpoints rewrites all of it, which under TCG makes the "
          f"run hours long at 1 GiB; issue 4's check below does use 1 GiB (module tracker). Regions "
          f"use 4 KiB pages (`MADV_NOHUGEPAGE`); the THP-backed variant follows.")
        a("")
        if "latency" in plots:
            a(f"![checkpoint latency]({plots['latency']})")
            a("")
        dirty = sorted({e["params"]["dirty_pages"] for e in lat})
        a("| tracker | writer | " + " | ".join(f"{n} dirty" for n in dirty) + " |")
        a("| --- | --- | " + " | ".join("---" for _ in dirty) + " |")
        for w in ("dax", "io_uring"):
            for t in ("module", "uffd", "mprotect", "full"):
                cells = []
                for n in dirty:
                    e = E.get(f"latency/{t}/{w}/dirty={n}")
                    cells.append(f"{fmt(e['median'])} ms" if e else "–")
                if any(c != "–" for c in cells):
                    a(f"| {t} | {w} | " + " | ".join(cells) + " |")
        a("")
        a("Ratios to the module tracker in the same run (latency of X / latency of module):")
        a("")
        a("| tracker / module | writer | " + " | ".join(f"{n}" for n in dirty) + " |")
        a("| --- | --- | " + " | ".join("---" for _ in dirty) + " |")
        for w in ("dax", "io_uring"):
            for t in ("uffd", "mprotect", "full"):
                cells = []
                for n in dirty:
                    e = E.get(f"latency {t} / module ({w}, {n} dirty)")
                    cells.append(f"{fmt(e['ratio'])}×" if e else "–")
                if any(c != "–" for c in cells):
                    a(f"| {t} | {w} | " + " | ".join(cells) + " |")
        a("")
        a("Reading: " + latency_reading(E, dirty))
        a("")

    lt = [e for e in d["entries"] if e["name"].startswith("latency-thp/")]
    if lt:
        w = lt[0]["params"]["writer"]
        dirty = sorted({e["params"]["dirty_pages"] for e in lt})
        a("### THP-backed region vs 4 KiB pages")
        a("")
        a(f"The same measurement with the region `MADV_HUGEPAGE` and faulted in huge pages (the Debian "
          f"kernel's THP mode is `always`, so this is what an unmodified program's heap usually is), writer "
          f"{w}, against the 4 KiB figures above (same run, separate sessions). \"THP at register\" is how "
          f"much of the region the kernel had in huge pages when the tracker took it "
          f"(`AnonHugePages`), \"after\" when its last checkpoint was done.")
        a("")
        if "latency_thp" in plots:
            a(f"![latency THP]({plots['latency_thp']})")
            a("")
        a("| tracker | THP at register / after | " + " | ".join(f"{n} dirty" for n in dirty) + " |")
        a("| --- | --- | " + " | ".join("---" for _ in dirty) + " |")
        for t in ("module", "uffd", "mprotect"):
            cells, hp = [], None
            for n in dirty:
                e = E.get(f"latency-thp/{t}/{w}/dirty={n}")
                r = E.get(f"latency THP-backed / 4 KiB pages ({t}, {w}, {n} dirty)")
                if e:
                    hp = e["params"]
                cells.append(f"{fmt(e['median'])} ms ({fmt(r['ratio'])}×)" if e and r else
                             f"{fmt(e['median'])} ms" if e else "–")
            if hp:
                none = "" if hp.get("huge_bytes_at_register", 0) else " (**not THP-backed**: no huge pages came back after the previous session, so this row repeats the 4 KiB case)"
                a(f"| {t} | {hp.get('huge_bytes_at_register', 0) >> 20} / {hp.get('huge_bytes_after', 0) >> 20} MiB "
                  f"of {hp['region_bytes'] >> 20}{none} | " + " | ".join(cells) + " |")
        a("")
        a("In parentheses: THP-backed latency over the 4 KiB-page latency of the same tracker and dirty "
          "count (above 1: THP costs more). A tracker that works per 4 KiB page must either split the huge "
          "pages (after < at register) or write whole 2 MiB pages (latency near the full copy's); which "
          "one each tracker does is visible in the two columns.")
        a("")

    i4 = [e for e in d["entries"] if e["name"].startswith("issue4 ") and "contiguous" not in e["name"]]
    if i4:
        a("### Issue 4: dirty bytes, not registered bytes")
        a("")
        for e in i4:
            p = e["params"]
            big = E.get(f"issue4/{p['tracker']}/{p['writer']}/big")
            small = E.get(f"issue4/{p['tracker']}/{p['writer']}/small")
            con = E.get(f"issue4/{p['tracker']}/{p['writer']}/big_contiguous")
            cr = [c for c in d["entries"] if c["name"].startswith("issue4 ") and "contiguous" in c["name"]
                  and c["params"]["writer"] == p["writer"]]
            a(f"- {p['writer']}: {p['dirty_pages']} dirty pages spread over a {p['big_region_bytes'] >> 20} MiB "
              f"region: {fmt(big['median'])} ms; the same {p['dirty_pages']} pages as a whole "
              f"{p['small_region_bytes'] >> 10} KiB region: {fmt(small['median'])} ms; ratio "
              f"**{fmt(e['ratio'])}** (per-repeat {fmt(e['min'])}–{fmt(e['max'])})"
              + (f", target {e['target']}: **{'met' if e['met'] else 'not met'}**" if 'target' in e else
                 " (no target for this writer)")
              + (f". The same pages contiguous at the start of the big region: {fmt(con['median'])} ms, "
                 f"{fmt(cr[0]['ratio'])}× the small region (per-repeat {fmt(cr[0]['min'])}–{fmt(cr[0]['max'])})."
                 if con and cr else "."))
        a("")
        a("Reading: the contiguous figure changes only the region's size against the small region; the spread "
          "one also scatters the dirty pages (one or two per 2 MiB), so the kernel walks a page table and "
          "flushes a TLB entry per page instead of per run, the store writes page-map entries across many "
          "blocks instead of a few, and the caches and TLB miss more. What is left between the contiguous "
          "figure and 1× is what grows with the registered size itself.")
        a("")

    sc = sorted((e["params"]["region_bytes"], e) for e in d["entries"] if e["name"].startswith("scaling/"))
    if sc:
        a("## Cost vs registered size")
        a("")
        if "scaling" in plots:
            a(f"![scaling]({plots['scaling']})")
            a("")
        a("| registered | checkpoint (median, min–max) | REGISTER |")
        a("| --- | --- | --- |")
        for b, e in sc:
            a(f"| {b >> 20} MiB | {fmt(e['median'])} ms ({fmt(e['min'])}–{fmt(e['max'])}) | "
              f"{fmt(e['params'].get('register_ms'))} ms |")
        a("")
        first, last = sc[0][1], sc[-1][1]
        a(f"Reading: with {first['params']['dirty_pages']} dirty pages, going from {sc[0][0] >> 20} MiB to "
          f"{sc[-1][0] >> 20} MiB registered ({(sc[-1][0] // sc[0][0])}× more) changes checkpoint latency "
          f"by {fmt(last['median'] / first['median'])}×. A checkpoint's cost follows the dirty pages; "
          f"registering (write-protecting every page once) is what grows with size.")
        a("")

    if "throughput/dax/persist" in E or "throughput/io_uring/persist" in E:
        a("## Persist and restore throughput vs memcpy")
        a("")
        a("`ckpt_bench throughput`: the store API directly (`begin` + N × `put_page` + `commit` = the "
          "persist cost of N pages, checksums included; `read_region` = restore), against `memcpy` of "
          "the same pages between two pre-faulted DRAM buffers, interleaved in each repeat.")
        a("")
        if "throughput" in plots:
            a(f"![throughput]({plots['throughput']})")
            a("")
        a("| writer | persist MiB/s | memcpy MiB/s | persist/memcpy | restore MiB/s | memcpy MiB/s | restore/memcpy |")
        a("| --- | --- | --- | --- | --- | --- | --- |")
        for w in ("dax", "io_uring"):
            if f"throughput/{w}/persist" not in E:
                continue
            pc = [e for e in d["entries"] if e["name"].startswith(f"persist throughput / memcpy ({w}")][0]
            rc = [e for e in d["entries"] if e["name"].startswith(f"restore throughput / memcpy ({w}")][0]
            a(f"| {w} | {fmt(E[f'throughput/{w}/persist']['median'])} | "
              f"{fmt(E[f'throughput/{w}/memcpy_before_persist']['median'])} | {fmt(pc['ratio'])} | "
              f"{fmt(E[f'throughput/{w}/restore']['median'])} | "
              f"{fmt(E[f'throughput/{w}/memcpy_before_restore']['median'])} | {fmt(rc['ratio'])} |")
        a("")
        a("Reading: the ratio is the fraction of memcpy's bandwidth the store reaches in the same run "
          "(target ≥ 0.5 for DAX; no target for io_uring). Per page the store does more than a copy: an "
          "xxHash checksum, a block allocation, a page-map entry, and on DAX the copy is made with "
          "non-temporal stores and flushes (libpmem2), which TCG emulates instruction by instruction while "
          "memcpy gets QEMU's fastest path. This run does not separate those parts, so it does not say how "
          "much of a miss is the store and how much is the emulator; a per-part breakdown (checksum alone, "
          "pmem2 copy alone) in the same run is the next step before tuning anything.")
        a("")

    sd = sorted(((e["params"]["rate_per_s"], e) for e in d["entries"]
                 if e["name"].startswith("throughput kept at") and not e["params"].get("async")), key=lambda x: x[0])
    sda = sorted(((e["params"]["rate_per_s"], e) for e in d["entries"]
                  if e["name"].startswith("throughput kept at") and e["params"].get("async")), key=lambda x: x[0])
    if sd:
        p = sd[0][1]["params"]
        a("## Application slowdown vs checkpoint frequency")
        a("")
        a(f"`ckpt_bench slowdown`: a loop that reads 64 KiB of a {p['working_set_bytes'] >> 20} MiB working set "
          f"per step and writes one byte into a page of a 1% window ({p['write_window_pages']} pages) that moves "
          f"after each checkpoint, so each interval dirties at most 1% of the pages; `ckpt_hook()` in the loop "
          f"checkpoints every 1/rate s (module tracker, DAX). Each checkpointed run is paired with a run of "
          f"the same loop without libckpt whose window moves at the same rate (the same pages written); the "
          f"pair is interleaved in each repeat (which one goes first alternates, the order of the rates "
          f"rotates), runs are {p['seconds_per_run']} s, and every run of either kind starts with the same "
          f"warm-up: one write to every page of the working set. That warm-up is what removed the old "
          f"bias (1/s at 123% of its baseline): a session that ends leaves its region write-protected, so "
          f"a baseline run after a checkpointed one paid a minor fault per page it wrote — the faults "
          f"columns show both kinds of run now start alike.")
        a("")
        if "slowdown" in plots:
            a(f"![slowdown]({plots['slowdown']})")
            a("")
        a("| rate asked | achieved | pages per checkpoint | throughput kept (per-pair min–max) | time in checkpoints | minor faults/s: ckpt / baseline | target |")
        a("| --- | --- | --- | --- | --- | --- | --- |")

        def sdf(r, what):
            for k in (f"{r:g}", f"{r}"):
                e = E.get(f"slowdown/module/dax/rate={k}/{what}")
                if e:
                    return e
            return None

        def bf(r):
            for k in (f"{r:g}", f"{r}"):
                e = E.get(f"slowdown/baseline/rate={k}/faults_per_s")
                if e:
                    return e
            return None
        for r, e in sd:
            ach, ppc, frac, cf, b = (sdf(r, "achieved_rate"), sdf(r, "pages_per_checkpoint"),
                                     sdf(r, "checkpoint_time_fraction"), sdf(r, "faults_per_s"), bf(r))
            fr = f"{100 * frac['median']:.1f}%" if frac else "–"
            a(f"| {r:g}/s | {fmt(ach['median']) if ach else '–'}/s | {fmt(ppc['median']) if ppc else '–'} | "
              f"{100 * e['ratio']:.1f}% ({100 * e['min']:.1f}–{100 * e['max']:.1f}) | {fr} | "
              f"{fmt(cf['median']) if cf else '–'} / {fmt(b['median']) if b else '–'} | "
              f"{(e['target'] + (' met' if e['met'] else ' **not met**')) if 'target' in e else '–'} |")
        hk = E.get("slowdown/module/dax/hook_ns")
        a("")
        if hk:
            a(f"`ckpt_hook()` when nothing is due: {fmt(hk['median'])} ns per call (min {fmt(hk['min'])}, max "
              f"{fmt(hk['max'])}), paid at every step of the loop.")
            a("")
        a("Reading: " + slowdown_reading(sd, E))
        a("")
        if sda:
            a("**Asynchronous checkpoints** (`CKPT_CFG_ASYNC`, `ckpt_bench slowdown --async`, same loop and "
              "pairing): the loop is held only while the written pages are collected and write-protected; "
              "a background thread persists and commits the epoch while it runs on, and ckpt.ko copies a "
              "page the loop writes before that thread has read it (held pages, ioctl-abi.md).")
            a("")
            a("| rate asked | achieved | pages per checkpoint | throughput kept (per-pair min–max) | time held in checkpoints | target |")
            a("| --- | --- | --- | --- | --- | --- |")
            for r, e in sda:
                def ga(what):
                    for k in (f"{r:g}", f"{r}"):
                        x = E.get(f"slowdown/module-async/dax/rate={k}/{what}")
                        if x:
                            return x
                    return None
                ach, ppc, frac = ga("achieved_rate"), ga("pages_per_checkpoint"), ga("checkpoint_time_fraction")
                a(f"| {r:g}/s | {fmt(ach['median']) if ach else '–'}/s | {fmt(ppc['median']) if ppc else '–'} | "
                  f"{100 * e['ratio']:.1f}% ({100 * e['min']:.1f}–{100 * e['max']:.1f}) | "
                  f"{(str(round(100 * frac['median'], 1)) + '%') if frac else '–'} | "
                  f"{(e['target'] + (' met' if e['met'] else ' **not met**')) if 'target' in e else '–'} |")
            a("")

    tr = [e for e in d["entries"] if e["name"].startswith("track")]
    if tr:
        a("## Write-tracking mechanisms (bench/track)")
        a("")
        a("`track_bench` (bench/track, run in the same session): per-page cost of ckpt.ko's first-write "
          "fault and COLLECT against soft-dirty (clear_refs + pagemap scan), userfaultfd-WP (sync), "
          "mprotect + SIGSEGV and plain writes, all on the same buffer; COLLECT of 1% of a large region "
          "against a soft-dirty scan of it; the page-fault cost of an untracked process with the module "
          "loaded, armed and unloaded. Medians over repeats of the best of 3 trials (it reports no spread).")
        a("")
        if "track" in plots:
            a(f"![tracking]({plots['track']})")
            a("")
        a("| figure | median |")
        a("| --- | --- |")
        for e in tr:
            if e["unit"] in ("ns/page", "ms"):
                a(f"| {e['name'][6:]} | {fmt(e['median'])} {e['unit']} |")
        a("")
        a("Reading: the targets table above lists track_bench's own comparisons (ratios of medians in the "
          "same run); see Documentation/design-tracking.md for why each mechanism costs what it does.")
        a("")

    a("## Whole-process dump/restore vs CRIU 3.17")
    a("")
    cr = [e for e in d["entries"] if e["name"].startswith("criu ") and "images on" not in e["name"]]
    if cr:
        p = cr[0]["params"]
        a(f"`bench/criu/criu_bench.py`: a {p['process_mib']} MiB process (bench/criu/memhog.c, its memory "
          f"filled with a pattern) is dumped and restored by `ckpt-tool dump/restore` (through ckpt.ko) and "
          f"by `criu dump/restore` (Debian's CRIU 3.17), alternating in each repeat; both kill the process "
          f"at dump; images on the guest's tmpfs; after each restore the process checks its memory "
          f"(SIGUSR1) and the run fails if it differs. Wall-clock time of each command.")
        if d.get("environment", {}).get("criu_note"):
            a("")
            a(d["environment"]["criu_note"])
        a("")
        if "criu" in plots:
            a(f"![ckpt vs criu]({plots['criu']})")
            a("")
        a("| | ckpt-tool | criu | criu / ckpt-tool (median, per-repeat min–max) |")
        a("| --- | --- | --- | --- |")
        for tag in ("thp", "nothp"):
            for op in ("dump", "restore"):
                k, c = E.get(f"criu/{tag}/ckpt_{op}"), E.get(f"criu/{tag}/criu_{op}")
                r = [e for e in cr if e["name"].startswith(f"criu {op} time") and f"({tag}," in e["name"]]
                if k and c and r:
                    a(f"| {op}, THP {'on' if tag == 'thp' else 'off'} | {fmt(k['median'])} s | {fmt(c['median'])} s "
                      f"| {fmt(r[0]['ratio'])}× ({fmt(r[0]['min'])}–{fmt(r[0]['max'])}) |")
        a("")
        unranked = [e["name"].split(" time")[0] + " (" + e["name"].split("(")[1].split(",")[0] + ")"
                    for e in cr if e["min"] < 1 < e["max"]]
        if unranked:
            a("Where the per-repeat ratios fall on both sides of 1 this run does not say which tool is faster: "
              + ", ".join(unranked) + ".")
            a("")
        su = {k: E.get(f"criu/startup/{k}") for k in ("ckpt", "criu")}
        if su["ckpt"] and su["criu"]:
            a(f"Start-up alone, same run (`--version`, exec to exit, {su['ckpt']['n']} each, alternating): "
              f"ckpt-tool {fmt(su['ckpt']['median'])} s ({fmt(su['ckpt']['min'])}–{fmt(su['ckpt']['max'])}), "
              f"criu {fmt(su['criu']['median'])} s ({fmt(su['criu']['min'])}–{fmt(su['criu']['max'])}). Every "
              f"dump and restore above pays its tool's once; in this guest it is a large, fixed share of "
              f"both tools' times (Documentation/whole-process.md, \"Start-up\").")
            a("")
        sz = cr[0]["params"]
        a(f"Image sizes: ckpt-tool {sz.get('ckpt_image_bytes', 0) >> 20} MiB, CRIU "
          f"{sz.get('criu_image_bytes', 0) >> 20} MiB. Reading: a ratio above 1 means ckpt-tool took less "
          f"time than CRIU for the same process in the same run. CRIU injects a parasite and goes through "
          f"ptrace and its own protocol for every step; ckpt-tool reads the stopped process with "
          f"process_vm_readv and restores through the module. Issue 6's targets (dump ≥ 4×, restore ≥ 3×) "
          f"are in the targets table at the top.")
    else:
        a("**TODO — not measured in this run.** `bench/criu/criu_bench.py` compares `ckpt-tool dump/restore` "
          "with CRIU 3.17 when the guest has the modules CRIU needs (scripts/bench.sh passes them); it was "
          "skipped or failed here.")
    a("")
    a("### Incremental: 1% of the pages written")
    a("")
    ci = [e for e in d["entries"] if e["name"].startswith("criu-incr/")]
    if ci:
        p = ci[0]["params"]
        mem = p["process_mib"] << 20
        a(f"`criu_bench.py --incremental`: the same {p['process_mib']} MiB process; one full checkpoint, then "
          f"it writes one word in every 100th 4 KiB page ({p['dirty_pages']} pages, 1%), then one incremental "
          f"checkpoint. ckpt-tool: `run --interval 0 --stats F` (a checkpoint per SIGUSR1; the incremental one "
          f"collects the pages ckpt.ko logged as written); time = its own `total_s`, bytes = its `bytes`. "
          f"CRIU: `pre-dump --track-mem`, then `dump --track-mem --prev-images-dir` (soft-dirty); time = the "
          f"command's wall clock, bytes = its `pages-*.img`. Alternating in each repeat.")
        a("")
        if "criu_incr" in plots:
            a(f"![incremental ckpt vs criu]({plots['criu_incr']})")
            a("")
        a("| | ckpt-tool full | ckpt-tool incremental (pause) | bytes (% of memory) | criu pre-dump | criu dump --prev-images-dir | bytes (% of memory) | time criu / ckpt-tool |")
        a("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for tag in ("thp", "nothp"):
            g = {k: E.get(f"criu-incr/{tag}/{k}") for k in ("ckpt_full", "ckpt_incr", "ckpt_incr_pause",
                                                             "ckpt_incr_bytes", "criu_predump", "criu_incr",
                                                             "criu_incr_bytes")}
            if not all(g.values()):
                continue
            r = [e for e in d["entries"] if e["name"].startswith("criu incremental dump time") and f"({tag}," in e["name"]
                 and "images on" not in e["name"]]
            a(f"| THP {'on' if tag == 'thp' else 'off'} | {fmt(g['ckpt_full']['median'])} s | "
              f"{fmt(g['ckpt_incr']['median'])} s ({fmt(g['ckpt_incr_pause']['median'])} s) | "
              f"{g['ckpt_incr_bytes']['median'] / 2**20:.2f} MiB ({100 * g['ckpt_incr_bytes']['median'] / mem:.2f}%) | "
              f"{fmt(g['criu_predump']['median'])} s | {fmt(g['criu_incr']['median'])} s | "
              f"{g['criu_incr_bytes']['median'] / 2**20:.2f} MiB ({100 * g['criu_incr_bytes']['median'] / mem:.1f}%) | "
              + (f"{fmt(r[0]['ratio'])}× ({fmt(r[0]['min'])}–{fmt(r[0]['max'])}) |" if r else "– |"))
        a("")
        hp = [(t, E.get(f"criu-incr/{t}/ckpt_incr")) for t in ("thp", "nothp")]
        a("Reading: targets (issue 7) are ≥ 50× less time than CRIU's incremental dump and ≤ 2% of memory "
          "written, THP-backed or not; see the targets table. CRIU tracks with soft-dirty, which on a "
          "THP-backed process works per 2 MiB page: writing 1% of the 4 KiB pages dirties nearly every huge "
          "page, so its incremental dump rewrites almost all the memory. CRIU's time also includes starting "
          "the criu binary and injecting its parasite; ckpt-tool's `total_s` is measured inside the running "
          "supervisor. THP backing at start (AnonHugePages): ckpt-tool's process "
          + ", ".join(f"{t}: {e['params'].get('ckpt_anon_huge_kib', 0) >> 10} MiB" for t, e in hp if e) + ".")
    else:
        a("**Not measured in this run** (`criu_bench.py --incremental` was skipped or failed; it needs "
          "`ckpt-tool run --interval 0 --stats`, CRIU and its modules).")
    a("")
    pm = [e for e in d["entries"] if "images on" in e["name"]]  # the variant's comparisons
    if pm:
        a("### The same on the NVDIMM (/mnt/pmem)")
        a("")
        a("`criu_bench.py --images /mnt/pmem` (3 repeats): both tools write to the emulated NVDIMM's "
          "ext4 `-o dax` file system instead of tmpfs; ckpt-tool's store is then a DAX store (MAP_SYNC "
          "mapping, non-temporal copies), CRIU's images are DAX files. A new store file is grown once "
          "per dump: ext4 hands out unwritten blocks, which the store converts by writing zeros before "
          "it maps them (a first store into an unwritten block through MAP_SYNC would commit the "
          "journal at every fault). No targets here; the issue's are for the tmpfs setting above.")
        a("")
        a("| comparison | ratio (median) | per-repeat min – max |")
        a("| --- | --- | --- |")
        for e in pm:
            a(f"| {e['name']} | {fmt(e['ratio'])} | {fmt(e['min'])} – {fmt(e['max'])} |")
        a("")
        for sec, what in (("criu-pmem", "dump and restore"), ("criu-incr-pmem", "incremental")):
            figs = [e for e in d["entries"] if e["name"].startswith(sec + "/") and e.get("unit") == "s"]
            if figs:
                a(f"Medians, {what}: " + ", ".join(f"{e['name'].split('/', 1)[1]} {fmt(e['median'])} s" for e in figs) + ".")
                a("")
    # make bench-host's section (scripts/bench-host.sh): kept as it was measured, on the host.
    host_md = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "host.md")
    if os.path.exists(host_md):
        a("<!-- bench-host: begin (scripts/bench-host.sh) -->")
        a(open(host_md).read().rstrip("\n"))
        a("<!-- bench-host: end -->")
        a("")
    # make bench-mpi's section (scripts/bench-mpi.sh): kept as it was measured, on the host.
    mpi_md = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "mpi.md")
    if os.path.exists(mpi_md):
        a("<!-- bench-mpi: begin (scripts/bench-mpi.sh) -->")
        a(open(mpi_md).read().rstrip("\n"))
        a("<!-- bench-mpi: end -->")
        a("")
    # bench-workq's section (scripts/bench-workq.sh, run by make bench and make bench-host):
    # kept as it was measured, on the host.
    workq_md = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "workq.md")
    if os.path.exists(workq_md):
        a("<!-- bench-workq: begin (scripts/bench-workq.sh) -->")
        a(open(workq_md).read().rstrip("\n"))
        a("<!-- bench-workq: end -->")
        a("")
    a("## Reproducing")
    a("")
    a("```sh")
    a("make bench                 # one VM boot per kernel of KERNELS (6.1 6.12), every benchmark, results + plots + this page")
    a("KERNELS=6.1 make bench     # one kernel only")
    a("CKPT_BUILD=build/x scripts/bench.sh   # the same with the binaries of another build directory")
    a("scripts/bench.sh --quick   # smoke check, tiny sizes (also run by make test: tests/e2e/vm-bench-smoke.sh)")
    a("make bench-host            # ~3 min, no VM: the userspace trackers on this machine's kernel")
    a("make bench-mpi             # no VM: libckpt-mpi against MPI-IO, Open MPI and MPICH, 1/2/4 ranks (also run by make bench)")
    a("nice -n -10 scripts/bench-workq.sh  # no VM: the work queue, ckpt_mutex_t against pthread_mutex_t (also run by make bench and make bench-host)")
    a("```")
    a("")
    a("Raw per-benchmark JSON of the last run: `bench/results/raw/` (first kernel) and `bench/results/raw-<kernel>/`; "
      "merged: `bench/results/latest.json` and `latest-<kernel>.json`.")
    with open(os.path.join(docdir, "performance.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print(f"report.py: wrote {os.path.join(docdir, 'performance.md')} and {len(plots)} plots")


def latency_reading(E, dirty):
    parts = []
    for w in ("dax", "io_uring"):
        m1 = E.get(f"latency/module/{w}/dirty={dirty[0]}")
        mn = E.get(f"latency/module/{w}/dirty={dirty[-1]}")
        f1 = E.get(f"latency/full/{w}/dirty={dirty[0]}")
        if m1 and mn:
            s = (f"with the module and {w}, latency goes from {fmt(m1['median'])} ms at {dirty[0]} dirty "
                 f"page(s) to {fmt(mn['median'])} ms at {dirty[-1]}")
            if f1:
                s += (f"; the full copy costs {fmt(f1['median'])} ms whatever is dirty "
                      f"({fmt(f1['median'] / m1['median'])}× the module at {dirty[0]} dirty)")
            parts.append(s)
    text = "; ".join(parts) + "." if parts else ""
    return (text + " The userspace trackers pay their cost mostly in the program's write faults (see "
            "bench/track), which this figure does not time; at checkpoint they pay re-protection "
            "(uffd: one UFFDIO_WRITEPROTECT per run of pages, mprotect: one mprotect per run), so they "
            "can come close to the module at checkpoint time while costing the program far more between "
            "checkpoints. Between the three trackers, where the min–max bars overlap in the plot this run "
            "does not rank them: the host was shared and single repeats were hit by others' load (see the "
            "spreads). What the run does show beyond the noise is the full copy's flat, region-sized cost "
            "against the trackers' cost growing with the dirty pages.")


def slowdown_reading(sd, E):
    def get(r, what):
        for k in (f"{r:g}", f"{r}"):
            e = E.get(f"slowdown/module/dax/rate={k}/{what}")
            if e:
                return e
        return None
    parts = []
    for r, e in sd:
        fr, co, pe = get(r, "checkpoint_time_fraction"), get(r, "collect_time_fraction"), get(r, "persist_time_fraction")
        t = f"{r:g}/s keeps {100 * e['ratio']:.1f}% (per pair {100 * e['min']:.0f}–{100 * e['max']:.0f}%)"
        if fr:
            t += (f"; the loop spent {100 * fr['median']:.1f}% of its time stopped in checkpoints "
                  f"(per run {100 * fr['min']:.1f}–{100 * fr['max']:.1f}%"
                  + (f"; collecting {100 * co['median']:.1f}%, persisting and committing {100 * pe['median']:.1f}%"
                     if co and pe else "") + ")")
        parts.append(t)
    s = "; ".join(parts) + ". "
    ten = [e for r, e in sd if r == 10]
    if ten and "met" in ten[0]:
        e = ten[0]
        s += (f"The 10/s target (≥ 95%) is **{'met' if e['met'] else 'not met'}** in this run"
              f"{'' if e['min'] >= 0.95 or e['max'] < 0.95 else ' (but repeats fall on both sides of it)'}. ")
    s += ("The throughput ratio compares separate runs, seconds apart, on a host whose load swings them "
          "by up to 2× (see the per-pair spread); the time stopped in checkpoints is measured inside each "
          "checkpointed run, so host load stretches its two parts alike: 100% minus it bounds the "
          "throughput kept from above, whatever the noise, and is the steadier figure. ")
    s += ("Where the time goes: the loop stops for each checkpoint (collect + re-protect + persist + commit, "
          "the \"time in checkpoints\" column, synchronous in `ckpt_hook()`), and after each one its first "
          "write to every page of the new window traps once more (the extra minor faults against the "
          "baseline); under TCG a trap costs roughly 10× its native cost (bench/track), and the persist "
          "runs at the store's DAX throughput measured above. The part of the loss not spent inside "
          "checkpoints is those faults plus `ckpt_hook()`'s own per-call cost. ")
    over = [f"{r:g}/s" for r, e in sd if e["ratio"] > 1.03]
    if over:
        s += (f"**Caution:** at {', '.join(over)} the loop ran faster with checkpoints than without — "
              "impossible for the work itself; read the slowdown figures as unreliable by about that margin. ")
    s += ("When one checkpoint takes longer than the interval (10 ms at 100/s), the achieved rate falls "
          "below the one asked for (`ckpt_hook()` counts the interval from the end of the previous "
          "checkpoint): compare the achieved column before reading the throughput kept at that rate.")
    return s


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "--validate" and a[1] in ("ckpt", "track", "host"):
        validate(a[1], a[2])
    elif len(a) == 3 and a[0] == "merge":
        merge(a[1], a[2])
    elif len(a) >= 3 and a[0] == "render" and all("=" in x for x in a[3:]):
        render(a[1], a[2], a[3:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
