"""Time every notebook from scratch and collect its recorded figures.

    python tools/bench.py                     # full profile, every notebook in _toc.yml
    python tools/bench.py --profile smoke     # the test profile
    python tools/bench.py --only 05           # notebooks whose path contains "05"
    python tools/bench.py --only 05,06        # ... "05" or "06"

Each notebook runs in a fresh kernel (nbclient) in its own folder with
WORKBOOK_RESULTS_FILE pointing at a temporary file, so whatever the notebook
passes to ``lib.results.record`` is collected. Prints one table (notebook,
seconds, device, figures) and writes ``_build/results.json`` (or
``_build/results-<profile>.json`` for a profile other than full).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toc import toc_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run(nb_path: Path, profile: str) -> dict:
    nb = nbformat.read(nb_path, as_version=4)
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as f:
        results_file = f.name
    env = {"WORKBOOK_PROFILE": profile, "WORKBOOK_STATIC": "1", "WORKBOOK_RESULTS_FILE": results_file}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    t0 = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    except Exception as e:  # report and go on with the other notebooks
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    figures = [json.loads(l) for l in Path(results_file).read_text().splitlines() if l.strip()]
    os.unlink(results_file)
    device = figures[0]["device"] if figures else "?"
    return {"notebook": str(nb_path.relative_to(ROOT)), "seconds": round(seconds, 1), "device": device,
            "profile": profile, "error": error, "figures": figures}


def fmt(rec: dict) -> str:
    s = f"{rec['name']} = {rec['value']:.4g} {rec['unit']}".rstrip()
    if "baseline" in rec:
        s += f" (vs {rec['baseline_name']} {rec['baseline']:.4g})"
    return s


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="full", choices=["full", "smoke"])
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    rows = []
    for nb in toc_notebooks():
        if args.only and not any(k in str(nb) for k in args.only.split(",")):
            continue
        print(f"running {nb.relative_to(ROOT)} ...", flush=True)
        rows.append(run(nb, args.profile))
        r = rows[-1]
        print(f"  {r['seconds']:.1f} s on {r['device']}" + (f"  ERROR {r['error']}" if r["error"] else ""), flush=True)
    print()
    print(f"{'notebook':58s} {'seconds':>8s}  {'device':6s}  figures")
    for r in rows:
        figs = "; ".join(fmt(f) for f in r["figures"]) or ("ERROR " + r["error"] if r["error"] else "-")
        print(f"{r['notebook']:58s} {r['seconds']:8.1f}  {r['device']:6s}  {figs}")
    total = sum(r["seconds"] for r in rows)
    print(f"{'total':58s} {total:8.1f}")
    import datetime
    import platform
    import subprocess
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = f"{commit}-dirty" if commit and dirty else commit  # measured with uncommitted changes
    devices = sorted({r["device"] for r in rows if r["device"] != "?"})
    payload = {"profile": args.profile, "total_seconds": round(total, 1), "commit": commit or "?",
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
        # The book's appendix is generated from these snapshots (one per device type). A run
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
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
