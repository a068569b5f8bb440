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


def main() -> int:
    ap = execute.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    ap.add_argument("--reuse", action="store_true",
                    help="keep the book's own execution where it is up to date (after `make book`: "
                         "the snapshot of the very run on the pages) and execute only what is stale")
    args = ap.parse_args()
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
