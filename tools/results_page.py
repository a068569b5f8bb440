"""Generate the book's results appendix (appendix/results.md and its two charts).

    python tools/results_page.py                  # from the book's own execution (full profile)
    python tools/results_page.py --profile smoke  # the check-html build

The figures come from the execution that produced the book's pages: ``tools/execute.py``
writes each notebook's recorded figures and time to ``_build/records/<profile>/``, and
this page is generated from those records after the notebooks ran and before the book
is rendered. Where no notebook has been executed yet, the committed bench snapshot
``bench/results-cpu.json`` (``make bench``) stands in, and the page says so. GPU times
come from ``bench/results-cuda.json`` when a GPU run was recorded. The page is generated,
never edited by hand, so its numbers are the code's numbers.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import execute  # noqa: E402
from toc import toc_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "appendix" / "results.md"


def load(kind: str) -> dict | None:
    p = ROOT / "bench" / f"results-{kind}.json"
    return json.loads(p.read_text()) if p.exists() else None


def load_execution(profile: str) -> dict | None:
    """The book's own execution records of ``profile`` in reading order, as a snapshot-like dict."""
    recs = execute.load_records(profile, ROOT / "_build" / "records")
    order = [str(p.relative_to(execute.ROOT)) for p in toc_notebooks()]
    rows = [recs[n] for n in order if n in recs] + [recs[n] for n in recs if n not in order]
    if not rows:
        return None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "?"
    threads = sorted({r.get("threads") or 0 for r in rows})
    return {"profile": profile, "source": "execution", "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "threads": ", ".join(str(t) if t else "default" for t in threads),
            "total_seconds": round(sum(r["seconds"] for r in rows), 1), "notebooks": rows}


def cell(text: str) -> str:
    """Make text safe inside a MyST table cell: no column breaks, no math or roles."""
    return (str(text).replace("|", "\\|").replace("$", "\\$").replace("`", "'")
            .replace("{", "(").replace("}", ")"))


def fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def title(notebook: str) -> str:
    """The notebook's title (its first heading), or its file name."""
    path = ROOT / notebook
    if path.exists():
        for c in nbformat.read(path, as_version=4).cells:
            if c.cell_type == "markdown":
                for line in c.source.splitlines():
                    if line.startswith("# "):
                        return line[2:].strip()
    return notebook.split("/")[-1].removesuffix(".ipynb")


def link(notebook: str) -> str:
    """A Markdown link from the appendix to the notebook's page, titled as the page is."""
    return f"[{cell(title(notebook))}](../{notebook})"


def verdict(f: dict) -> str | None:
    """'won' / 'lost' for a claim with a baseline and a direction, else None (references too)."""
    if "baseline" not in f or "higher_is_better" not in f or f.get("kind", "claim") != "claim":
        return None
    better = f["value"] > f["baseline"] if f["higher_is_better"] else f["value"] < f["baseline"]
    return "won" if better else "lost"


def claim_label(notebook: str, name: str, width: int = 64) -> str:
    """A claim's label in the chart: its notebook and name, shortened at a word (with "…")
    to ``width`` characters, so no label is cut in the middle of a word."""
    import textwrap

    return textwrap.shorten(f"{notebook}: {name}", width=width, placeholder=" …")


def charts(cpu: dict, gpu_times: dict, out_dir: Path) -> list[str]:
    """Two PNG charts next to the page (seconds per notebook; each claim against its baseline)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = cpu["notebooks"]
    names = [r["notebook"].split("/")[-1].removesuffix(".ipynb") for r in rows]
    fig, ax = plt.subplots(figsize=(6.9, 0.26 * len(rows) + 1.0), dpi=100)
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], [r["seconds"] for r in rows], height=0.4, label="CPU", color="#4c72b0")
    if gpu_times:
        ax.barh([i + 0.2 for i in y], [gpu_times.get(r["notebook"], 0) for r in rows], height=0.4,
                label="GPU", color="#dd8452")
    ax.set_yticks(list(y), names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per notebook")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "results-seconds.png", facecolor="white")
    plt.close(fig)
    written.append("results-seconds.png")

    claims = [(n, f) for n, r in zip(names, rows) for f in r["figures"] if verdict(f)]
    if claims:
        fig, ax = plt.subplots(figsize=(6.9, 0.2 * len(claims) + 1.2), dpi=100)
        # The gain over the baseline in the figure's own direction, as a share of the baseline:
        # right of zero is a win, left a loss.
        gain = []
        for _, f in claims:
            d = (f["value"] - f["baseline"]) * (1 if f["higher_is_better"] else -1)
            gain.append(100 * d / max(abs(f["baseline"]), 1e-12))
        gain = [max(-100.0, min(100.0, g)) for g in gain]
        colours = ["#55a868" if verdict(f) == "won" else "#c44e52" for _, f in claims]
        ax.barh(range(len(claims)), gain, color=colours, height=0.7)
        ax.set_yticks(range(len(claims)), [claim_label(n, f["name"]) for n, f in claims], fontsize=7.5)
        ax.invert_yaxis()
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlim(-100, 100)
        ax.set_xlabel("gain over the baseline, in % of it (clipped at ±100)")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "results-claims.png", facecolor="white")
        plt.close(fig)
        written.append("results-claims.png")
    return written


def render(profile: str = "full", out_dir: Path | None = None) -> str:
    cpu, cuda = load_execution(profile), load("cuda") if profile == "full" else None  # GPU: full profile
    lines = ["# Appendix: measured results", ""]
    if cpu is not None:
        lines += [f"Every number on this page was recorded by the execution of the notebooks whose outputs are "
                  f"this book's pages ({cpu['profile']} profile, `tools/execute.py`, {cpu['threads']} torch "
                  f"thread{'' if cpu['threads'] == '1' else 's'} per notebook, several notebooks at once): each notebook records its figures "
                  "with `lib.results.record` while it runs, and this page is generated from those records "
                  "(`tools/results_page.py`); nothing here is typed by hand.", ""]
        if profile != "full":
            lines += ["```{note}", f"This build ran the **{profile}** profile: tiny models and a handful of "
                      "steps, to check that every cell runs. Its figures say nothing about the methods; "
                      "`make book` builds the full profile.", "```", ""]
    else:
        cpu = load("cpu")
        if cpu is None:
            lines += ["```{note}", "No notebook has been executed yet: run `make book` (or `make bench`).",
                      "```", ""]
            return "\n".join(lines) + "\n"
        lines += ["The notebooks of this build were not executed by `tools/execute.py`, so the figures "
                  "below are the committed `make bench` snapshot, not this build's.", ""]
    lines += [f"CPU: {cpu['machine']}, {cpu['date']} (commit `{cpu['commit']}`); the notebooks' times add "
              f"up to {cpu['total_seconds'] / 60:.1f} minutes."]
    gpu_times = {}
    if cuda is not None:
        gpu_times = {r["notebook"]: r["seconds"] for r in cuda["notebooks"]}
        lines += [f"GPU times: the `make bench` run on {cuda.get('gpu', 'a CUDA GPU')} ({cuda['machine']}), "
                  f"commit `{cuda['commit']}`, {cuda['date']}; total {cuda['total_seconds'] / 60:.1f} minutes."]
    claims = [verdict(f) for r in cpu["notebooks"] for f in r["figures"]]
    won, lost = claims.count("won"), claims.count("lost")
    lines += ["", f"Of the {won + lost} claims (a learned method against its baseline), **{won} beat the "
              f"baseline** and **{lost} do not** (marked *lost* below); rows marked *reference* are "
              "lessons or yardsticks (a memoriser, an over-fitted model, a paper's number), not claims.", ""]
    if out_dir is not None:
        for png in charts(cpu, gpu_times, out_dir):
            alt = ("Bar chart of seconds per notebook" + (", CPU and GPU side by side" if gpu_times else "")
                   if "seconds" in png else "Bar chart of each figure's gain over its baseline, green won, red lost")
            lines += [f"```{{figure}} {png}", f":alt: {alt}", ":width: 100%", "", alt + ".", "```", ""]
    lines += ["## Time per notebook", "",
              "Training / evaluation / plotting: the share of the notebook's cell time in cells that fit "
              "a model, that only draw, and the rest (metrics, sampling, data), read from each cell's "
              "code and timing.", "",
              "| chapter | CPU, s | GPU, s | training / evaluation / plotting | status |",
              "| --- | ---: | ---: | ---: | --- |"]
    for r in cpu["notebooks"]:
        gpu = gpu_times.get(r["notebook"])
        status = cell("error: " + r["error"]) if r.get("error") else "ok"
        ph = r.get("phases")
        shares = "—"
        if ph and sum(ph.values()) > 0:
            tot = sum(ph.values())
            shares = " / ".join(f"{100 * ph[k] / tot:.0f}" for k in ("training", "evaluation", "plotting")) + " %"
        lines.append(f"| {link(r['notebook'])} | {r['seconds']:.0f} | {'—' if gpu is None else f'{gpu:.0f}'} "
                     f"| {shares} | {status} |")
    lines += ["", "## Headline figures", "",
              "| chapter | figure | value | baseline | verdict |", "| --- | --- | ---: | --- | --- |"]
    for r in cpu["notebooks"]:
        for f in r["figures"]:
            base = "—"
            if "baseline" in f:
                base = cell(f"{f['baseline_name']}: {fmt(f['baseline'])} {f['unit']}".strip())
            v = verdict(f)
            mark = ("won" if v == "won" else "***lost***" if v == "lost"
                    else "reference" if f.get("kind") == "reference" else "—")
            lines.append(f"| {link(r['notebook'])} | {cell(f['name'])} | {fmt(f['value'])} {cell(f['unit'])} "
                         f"| {base} | {mark} |")
    seeds_file = ROOT / "bench" / "seeds-cpu.json"
    seeds = json.loads(seeds_file.read_text()) if profile == "full" and seeds_file.exists() else None
    if seeds:
        lines += ["", "## Across seeds", "",
                  f"`make bench ARGS='--seeds …'` ran these notebooks again with their own seeds shifted "
                  f"(the data, the test sets and the metrics' nets unchanged; {seeds['date']}). A claim "
                  "counts as won only if it wins on every seed.", "",
                  "| chapter | figure | mean ± s.d. (min..max) | baseline, mean | won on |",
                  "| --- | --- | ---: | --- | --- |"]
        for nb, rows in seeds["notebooks"].items():
            for row in rows:
                base = "—"
                if "baselines" in row:
                    base = cell(f"{row['baseline_name']}: {fmt(sum(row['baselines']) / len(row['baselines']))}")
                won = row.get("won")
                if row.get("kind") == "reference":
                    mark = "reference"
                elif won is None:
                    mark = "—"
                else:
                    mark = f"{sum(won)} of {len(won)} seeds" + ("" if all(won) else " (***lost***)")
                lines.append(f"| {link(nb)} | {cell(row['name'])} | {cell(spread(row['values']))} "
                             f"{cell(row['unit'])} | {base} | {mark} |")
    return "\n".join(lines) + "\n"


def spread(values: list[float]) -> str:
    """'mean ± s.d. (min..max)' of a figure over seeds."""
    import statistics
    m = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt(m)} ± {sd:.2g} ({fmt(min(values))}..{fmt(max(values))})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=["full", "smoke"])
    args = ap.parse_args(argv)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(render(args.profile, OUT.parent))
    print("wrote", OUT.relative_to(ROOT))


if __name__ == "__main__":
    main()
