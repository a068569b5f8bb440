"""Execute the book's notebooks, several at once, into the cache the book build reads.

    python tools/execute.py                          # full profile, every notebook in _toc.yml
    python tools/execute.py --profile smoke --cache _build/smoke/.jupyter_cache
    python tools/execute.py --only 05,06 --force     # re-run these even if nothing changed
    python tools/execute.py --jobs 2 --threads 1     # two kernels at once, one torch thread each

``jupyter-book build`` (``execute_notebooks: cache``) then finds every notebook
executed and only renders it. Each execution also writes what the notebook
recorded with ``lib.results.record`` (and its time) to
``_build/records/<profile>/<notebook>.json``; the results appendix is generated
from those files, so its numbers are those of the execution whose outputs are on
the pages, not of another run.

A notebook is executed again when its code changed (the cache's key), when
``lib/`` changed since its record was written (the cache's key alone would keep
outputs computed by old library code), or with ``--force``. Kernels start a few
seconds apart (two kernels starting in the same instant once hung), longest
notebook first so the pool finishes together.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toc import toc_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "_build" / "records"
STAGGER_S = 3.0  # seconds between the first kernels' start-ups


def lib_hash(root: Path = ROOT) -> str:
    """A digest of every ``lib/`` source file: outputs computed by other library code are stale."""
    h = hashlib.sha256()
    for p in sorted((root / "lib").rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def record_path(notebook: Path, profile: str, records: Path = RECORDS, root: Path = ROOT) -> Path:
    """Where one notebook's execution record lives: ``<records>/<profile>/<path>.json``."""
    return records / profile / (str(notebook.relative_to(root)) + ".json")


def load_records(profile: str, records: Path = RECORDS) -> dict[str, dict]:
    """Every execution record of ``profile``, by notebook path (relative to the book)."""
    out = {}
    for p in sorted((records / profile).rglob("*.ipynb.json")):
        r = json.loads(p.read_text())
        out[r["notebook"]] = r
    return out


# What a cell spends its time on, read from its code (the first that matches): fitting a
# model; drawing; everything else (metrics, sampling for a table, data) is evaluation.
TRAINING = re.compile(r"train\.(fit|train_loop)\(|\.backward\(|train_step\(|\.fit\(|\bfit_[a-z_]*\(")
PLOTTING = re.compile(r"\bplt\.|\bviz\.|show_images\(|\bscrub\(")


def cell_seconds(nb) -> list[tuple[int, float]]:
    """(cell index, seconds) of every executed code cell, from nbclient's timing metadata."""
    import datetime

    out = []
    for i, c in enumerate(nb.cells):
        t = c.get("metadata", {}).get("execution", {})
        if c.cell_type == "code" and "iopub.execute_input" in t and "shell.execute_reply" in t:
            start, end = (datetime.datetime.fromisoformat(t[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            out.append((i, max(0.0, (end - start).total_seconds())))
    return out


def profile_cells(nb, top: int = 3) -> dict:
    """Seconds per phase (training / evaluation / plotting) and the ``top`` slowest cells."""
    phases = {"training": 0.0, "evaluation": 0.0, "plotting": 0.0}
    times = cell_seconds(nb)
    for i, sec in times:
        src = nb.cells[i].source
        kind = "training" if TRAINING.search(src) else "plotting" if PLOTTING.search(src) else "evaluation"
        phases[kind] += sec
    slowest = sorted(times, key=lambda t: -t[1])[:top]
    return {"phases": {k: round(v, 1) for k, v in phases.items()},
            "slowest": [[i, round(sec, 1), (nb.cells[i].source.strip().splitlines() or [""])[0][:70]]
                        for i, sec in slowest]}


def _untimed(nb):
    """``nb`` without nbclient's per-cell timing metadata (read by :func:`profile_cells`): the
    cache's key includes cell metadata, so a timed notebook would not match its source."""
    for c in nb.cells:
        c.get("metadata", {}).pop("execution", None)
    return nb


def execute_one(path: str, profile: str, threads: int | None, timeout: int, delay: float = 0.0,
                root: str = str(ROOT), seed: int = 0) -> dict:
    """Execute one notebook in a fresh kernel in its own folder; return its record.

    The record holds the executed notebook (``"nb"``, JSON text) when it succeeded,
    else the error and its traceback. Runs in a worker process: the environment
    set here (profile, static build, results file, threads) is the kernel's.
    """
    from jupyter_cache.executors.utils import single_nb_execution

    time.sleep(delay)
    nb_path = Path(path)
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as f:
        results_file = f.name
    env = {"WORKBOOK_PROFILE": profile, "WORKBOOK_STATIC": "1", "WORKBOOK_RESULTS_FILE": results_file,
           "WORKBOOK_SEED": str(seed)}
    if threads is not None:
        env.update(WORKBOOK_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads))
    os.environ.update(env)
    nb = nbformat.read(nb_path, as_version=4)
    t0 = time.perf_counter()
    result = single_nb_execution(nb, cwd=str(nb_path.parent), timeout=timeout,
                                 allow_errors=False, meta_override=True, record_timing=True)
    seconds = time.perf_counter() - t0
    text = Path(results_file).read_text()
    os.unlink(results_file)
    figures = [json.loads(line) for line in text.splitlines() if line.strip()]
    error = None
    if result.err is not None:
        last = str(result.err).strip().splitlines()
        error = f"{type(result.err).__name__}: {last[-1] if last else ''}"
    return {"notebook": str(nb_path.relative_to(root)), "seconds": round(seconds, 1),
            "device": figures[0]["device"] if figures else "?", "profile": profile,
            "threads": threads, "seed": seed, "error": error, "traceback": result.exc_string if error else None,
            "figures": figures, **profile_cells(nb), "nb": None if error else nbformat.writes(_untimed(nb))}


def _cached(cache, nb_path: Path):
    """The cache record whose code matches the notebook on disk, or None."""
    with suppress(KeyError):
        return cache.match_cache_notebook(nbformat.read(nb_path, as_version=4))
    return None


def plan(notebooks: list[Path], cache, profile: str, *, force: bool = False,
         records: Path = RECORDS, root: Path = ROOT) -> tuple[list[Path], list[Path]]:
    """Split ``notebooks`` into (to execute, up to date), longest previous run first (the last
    record's time, else the bench snapshot's, else unknown: first)."""
    digest = lib_hash(root)
    todo, fresh, last = [], [], {}
    for nb in notebooks:
        rp = record_path(nb, profile, records, root)
        rec = json.loads(rp.read_text()) if rp.exists() else None
        hit = None if force else _cached(cache, nb)
        if rec:
            last[nb] = rec["seconds"]
        if (hit is not None and rec is not None and rec.get("cache_pk") == hit.pk
                and rec.get("lib") == digest and not rec.get("error")):
            fresh.append(nb)
        else:
            todo.append(nb)
    snap = root / "bench" / "results-cpu.json"   # first run of a clone: the bench's times
    if snap.exists():
        for r in json.loads(snap.read_text()).get("notebooks", []):
            last.setdefault(root / r["notebook"], r["seconds"])
    todo.sort(key=lambda nb: -last.get(nb, float("inf")))
    return todo, fresh


def store(cache, rec: dict, *, records: Path = RECORDS, root: Path = ROOT) -> dict:
    """Put a successful execution into the cache and write its record (without the notebook)."""
    from jupyter_cache.base import CacheBundleIn

    nb_path = root / rec["notebook"]
    rec = dict(rec)
    nb = nbformat.reads(rec.pop("nb"), as_version=4)
    bundle = CacheBundleIn(nb, str(nb_path), data={"execution_seconds": rec["seconds"]})
    rec["cache_pk"] = cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True).pk
    return write_record(rec, rec["profile"], records=records, root=root)


def write_record(rec: dict, key: str, *, records: Path = RECORDS, root: Path = ROOT) -> dict:
    """Write an execution record (without the notebook, with the lib digest) under ``key``."""
    rec = {k: v for k, v in rec.items() if k != "nb"}
    rec["lib"] = lib_hash(root)
    rp = record_path(root / rec["notebook"], key, records, root)
    rp.parent.mkdir(parents=True, exist_ok=True)
    rp.write_text(json.dumps(rec, indent=1))
    return rec


def run(notebooks: list[Path], *, profile: str, cache_path: Path, jobs: int, threads: int | None,
        force: bool = False, timeout: int = 1800, records: Path = RECORDS,
        root: Path = ROOT, seed: int | list[int] = 0) -> tuple[list[dict], float]:
    """Execute what is stale among ``notebooks``; return (this run's records, wall seconds).

    ``seed`` other than 0 (``WORKBOOK_SEED``, :func:`lib.runtime.seed_offset`) is a
    robustness run: every notebook executes, its record goes to
    ``<records>/<profile>-seed<seed>/`` and nothing goes into the book's cache (the pages
    keep the book's own seeds). A list of seeds runs every notebook once per seed, all in
    the same pool (each record says its ``"seed"``)."""
    from jupyter_cache import get_cache

    seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 (or None for torch's default), got {threads}")
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"seed must be a whole number >= 0 (or a list of them), got {seed!r}")
    cache = get_cache(str(cache_path))
    work, n_fresh = [], 0
    for sd in seeds:
        todo, fresh = plan(notebooks, cache, profile, force=force or sd != 0, records=records, root=root)
        work += [(nb, sd) for nb in todo]
        n_fresh += len(fresh)
    shifted = [s for s in seeds if s]
    print(f"{n_fresh} notebook(s) up to date; executing {len(work)} ({profile} profile, "
          + (f"seeds shifted by WORKBOOK_SEED={','.join(map(str, shifted))}, " if shifted else "") +
          f"{jobs} at once, {threads or 'default'} thread(s) each)", flush=True)
    done: list[dict] = []
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = [pool.submit(execute_one, str(nb), profile, threads, timeout,
                               STAGGER_S * i if i < jobs else 0.0, str(root), sd)
                   for i, (nb, sd) in enumerate(work)]
        for fut in cf.as_completed(futures):
            rec = fut.result()
            if rec["error"] is None and rec["seed"] == 0:
                rec = store(cache, rec, records=records, root=root)
            elif rec["error"] is None:
                rec = write_record(rec, f"{rec['profile']}-seed{rec['seed']}", records=records, root=root)
            done.append(rec)
            status = f"ERROR {rec['error']}" if rec["error"] else f"{len(rec['figures'])} figure(s)"
            tag = f"  [seed {rec['seed']}]" if len(seeds) > 1 or rec["seed"] else ""
            print(f"  {rec['seconds']:7.1f} s  {rec['notebook']}{tag}  {status}", flush=True)
    wall = time.perf_counter() - t0
    print(f"executed {len(done)} notebook(s) in {wall:.0f} s wall "
          f"({sum(r['seconds'] for r in done):.0f} s of notebook time)", flush=True)
    for rec in done:
        if rec["error"]:
            print(f"\n--- {rec['notebook']} failed ---\n{rec['traceback']}", file=sys.stderr)
    order = [str(nb.relative_to(root)) for nb in notebooks]
    done.sort(key=lambda r: (seeds.index(r["seed"]), order.index(r["notebook"])))
    return done, wall


def select(only: str | None) -> list[Path]:
    """The book's notebooks in reading order, those whose path contains one of ``only`` (a,b,...)."""
    nbs = toc_notebooks()
    if only:
        keys = [k for k in only.split(",") if k]
        nbs = [nb for nb in nbs if any(k in str(nb.relative_to(ROOT)) for k in keys)]
        if not nbs:
            raise SystemExit(f"--only {only!r} matches no notebook of _toc.yml")
    return nbs


def arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options execute.py and bench.py share."""
    ap.add_argument("--profile", default="full", choices=["full", "smoke"])
    ap.add_argument("--only", default=None, help="comma-separated parts of notebook paths")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks executed at once")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per notebook (0: torch's default)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    ap.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    ap.add_argument("--force", action="store_true", help="execute even notebooks that are up to date")
    ap.add_argument("--seed", type=int, default=0,
                    help="shift the notebooks' own seeds (WORKBOOK_SEED); 0: the book's seeds")
    args = ap.parse_args(argv)
    done, _ = run(select(args.only), profile=args.profile, cache_path=Path(args.cache), jobs=args.jobs,
                  threads=args.threads or None, force=args.force, timeout=args.timeout, seed=args.seed)
    return 1 if any(r["error"] for r in done) else 0


if __name__ == "__main__":
    sys.exit(main())
