"""Time every notebook from scratch and collect its recorded figures.

    python tools/bench.py                     # full profile, every notebook in _toc.yml
    python tools/bench.py --profile smoke     # the test profile
    python tools/bench.py --only 05           # notebooks whose path contains "05"
    python tools/bench.py --only 05,06        # ... "05" or "06"
    python tools/bench.py --jobs 1 --threads 2  # one notebook at a time, two torch threads

The bench is the book's own execution (``tools/execute.py``: the same kernels,
the same cache, the same records the appendix is generated from), forced to run
every chosen notebook again, plus a table and the committed snapshot. Prints one
table (notebook, seconds, device, figures) and writes ``_build/results.json`` (or
``_build/results-<profile>.json`` for a profile other than full) and, for the full
profile, ``bench/results-<cpu|cuda>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import execute  # noqa: E402
import results_page  # noqa: E402
from toc import toc_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHES = {"full": ROOT / "_build" / ".jupyter_cache", "smoke": ROOT / "_build" / "smoke" / ".jupyter_cache"}


def fmt(rec: dict) -> str:
    s = f"{rec['name']} = {rec['value']:.4g} {rec['unit']}".rstrip()
    if "baseline" in rec:
        s += f" (vs {rec['baseline_name']} {rec['baseline']:.4g})"
    return s


def across_seeds(per_seed: dict[int, list[dict]]) -> dict[str, list[dict]]:
    """Each notebook's figures over several seeds: by position in the notebook (a name may
    carry a run-dependent number), with the values, baselines and verdicts of every seed."""
    seeds = sorted(per_seed)
    out: dict[str, list[dict]] = {}
    by_nb = {s: {r["notebook"]: r for r in per_seed[s] if not r.get("error")} for s in seeds}
    for nb in by_nb[seeds[0]]:
        if not all(nb in by_nb[s] for s in seeds):
            continue
        runs = [by_nb[s][nb]["figures"] for s in seeds]
        if len({len(f) for f in runs}) != 1:
            raise ValueError(f"{nb}: the seeds recorded different numbers of figures "
                             f"{[len(f) for f in runs]}")
        rows = []
        for figs in zip(*runs):
            first = figs[0]
            row = {"name": first["name"], "unit": first["unit"], "kind": first.get("kind", "claim"),
                   "values": [f["value"] for f in figs], "seeds": seeds}
            if "baseline" in first:
                row.update(baseline_name=first["baseline_name"], baselines=[f["baseline"] for f in figs])
            if "higher_is_better" in first:
                row["higher_is_better"] = first["higher_is_better"]
            verdicts = [results_page.verdict(f) for f in figs]
            if all(verdicts):
                row["won"] = [v == "won" for v in verdicts]
            rows.append(row)
        out[nb] = rows
    return out


def main_seeds(args) -> int:
    """``--seeds 0,1,2``: the chosen notebooks once per seed shift; a claim counts as won
    only if it wins on every seed. Writes bench/seeds-<cpu|cuda>.json (for the appendix)."""
    seeds = sorted({int(x) for x in args.seeds.split(",") if x.strip()})
    if len(seeds) < 2:
        raise SystemExit("--seeds needs at least two seeds, e.g. --seeds 0,1,2")
    nbs = execute.select(args.only)
    rows, _ = execute.run(nbs, profile=args.profile, cache_path=CACHES[args.profile], jobs=args.jobs,
                          threads=args.threads or None, force=True, timeout=args.timeout, seed=seeds)
    per_seed = {sd: [r for r in rows if r["seed"] == sd] for sd in seeds}
    table = across_seeds(per_seed)
    failed = any(r.get("error") for rows in per_seed.values() for r in rows)
    print(f"\n{'notebook / figure':70s} over seeds {seeds}")
    for nb, rows in table.items():
        print(nb)
        for row in rows:
            base = f"  vs {row['baseline_name']} {results_page.spread(row['baselines'])}" if "baselines" in row else ""
            won = row.get("won")
            mark = "" if won is None else f"  won on {sum(won)} of {len(won)}"
            print(f"  {row['name'][:66]:66s} {results_page.spread(row['values'])}{base}{mark}")
            if won is not None and not all(won) and row["kind"] == "claim":
                failed = True
    if args.profile == "full":
        devices = {f["device"] for rows in per_seed.values() for r in rows for f in r["figures"]}
        kind = "cuda" if any(str(d).startswith("cuda") for d in devices) else "cpu"
        snap = ROOT / "bench" / f"seeds-{kind}.json"
        old = json.loads(snap.read_text())["notebooks"] if snap.exists() else {}
        old.update(table)
        order = [str(p.relative_to(ROOT)) for p in toc_notebooks()]
        import datetime
        payload = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   "notebooks": {n: old[n] for n in order if n in old}}
        snap.write_text(json.dumps(payload, indent=1))
        print(f"wrote {snap.relative_to(ROOT)}")
    return 1 if failed else 0


def main() -> int:
    ap = execute.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    ap.add_argument("--reuse", action="store_true",
                    help="keep the book's own execution where it is up to date (after `make book`: "
                         "the snapshot of the very run on the pages) and execute only what is stale")
    ap.add_argument("--seeds", default=None,
                    help="comma-separated seed shifts (0 = the book's seeds): a claim must win on each")
    args = ap.parse_args()
    if args.seeds:
        return main_seeds(args)
    nbs = execute.select(args.only)
    rows, wall = execute.run(nbs, profile=args.profile, cache_path=CACHES[args.profile], jobs=args.jobs,
                             threads=args.threads or None, force=not args.reuse, timeout=args.timeout)
    if args.reuse:  # every chosen notebook's latest record; a failure of this run has none
        recs = {**execute.load_records(args.profile), **{r["notebook"]: r for r in rows if r["error"]}}
        rows = [recs[str(nb.relative_to(ROOT))] for nb in nbs if str(nb.relative_to(ROOT)) in recs]
        wall = None
    for r in rows:
        r.pop("nb", None)
        r.pop("traceback", None)
    print()
    print(f"{'notebook':58s} {'seconds':>8s}  {'device':6s}  figures")
    for r in rows:
        figs = "; ".join(fmt(f) for f in r["figures"]) or ("ERROR " + r["error"] if r["error"] else "-")
        print(f"{r['notebook']:58s} {r['seconds']:8.1f}  {r['device']:6s}  {figs}")
    print(f"\n{'where the time goes':58s} {'train':>6s} {'eval':>6s} {'plot':>6s}  slowest cell")
    for r in rows:
        ph = r.get("phases")
        if ph:
            tot = sum(ph.values()) or 1.0
            slow = r["slowest"][0] if r.get("slowest") else None
            slow_txt = f"cell {slow[0]}: {slow[1]:.0f} s  {slow[2][:40]}" if slow else ""
            print(f"{r['notebook']:58s} " + " ".join(f"{100 * ph[k] / tot:5.0f}%"
                  for k in ("training", "evaluation", "plotting")) + f"  {slow_txt}")
    total = sum(r["seconds"] for r in rows)
    print(f"{'total':58s} {total:8.1f}" + ("" if wall is None else f"   ({wall:.0f} s wall, {args.jobs} at once)"))
    import datetime
    import platform
    import subprocess
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = f"{commit}-dirty" if commit and dirty else commit  # measured with uncommitted changes
    devices = sorted({r["device"] for r in rows if r["device"] != "?"})
    payload = {"profile": args.profile, "total_seconds": round(total, 1),
               "wall_seconds": None if wall is None else round(wall, 1),
               "jobs": args.jobs, "threads": args.threads or None, "commit": commit or "?",
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "devices": devices, "notebooks": rows}
    if any(d.startswith("cuda") for d in devices):
        import torch
        payload["gpu"] = torch.cuda.get_device_name(0)
    out = ROOT / "_build" / ("results.json" if args.profile == "full" else f"results-{args.profile}.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {out.relative_to(ROOT)}")
    if args.profile == "full":
        # The committed snapshots (one per device type) give the notebooks' run-time notes, the
        # appendix's GPU column, and the appendix when a build did not execute the notebooks. A run
        # with --only updates its notebooks' rows and keeps the others (each row has its date).
        kind = "cuda" if any(d.startswith("cuda") for d in devices) else "cpu"
        snap = ROOT / "bench" / f"results-{kind}.json"
        snap.parent.mkdir(exist_ok=True)
        for r in rows:
            r["commit"], r["date"] = payload["commit"], payload["date"]
        if args.only and snap.exists():
            old = {r["notebook"]: r for r in json.loads(snap.read_text())["notebooks"]}
            old.update({r["notebook"]: r for r in rows})
            order = [str(p.relative_to(ROOT)) for p in toc_notebooks()]
            payload["notebooks"] = [old[n] for n in order if n in old]
            payload["total_seconds"] = round(sum(r["seconds"] for r in payload["notebooks"]), 1)
        snap.write_text(json.dumps(payload, indent=1))
        print(f"wrote {snap.relative_to(ROOT)}")
        # Each notebook's "Expected run time" note and Colab accelerator come from these snapshots.
        import subprocess as sp
        sp.run([sys.executable, str(ROOT / "tools" / "nbtool.py"), "sync-runtime"], check=True)
    failed = any(r["error"] for r in rows)
    if args.profile == "full":  # smoke-profile models are tiny: their figures claim nothing
        lost = [(r["notebook"], f) for r in rows for f in r["figures"] if results_page.verdict(f) == "lost"]
        if lost:
            print(f"\n{len(lost)} claim(s) lose to their baseline (record them as kind='reference' only if "
                  "they are lessons, not claims):")
            for nb, f in lost:
                print(f"  {nb}: {fmt(f)}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
