"""Generate the book's results appendix (appendix/results.md) from the bench snapshots.

    python tools/results_page.py

Reads ``bench/results-cpu.json`` (and ``bench/results-cuda.json`` when a GPU run was
recorded), both written by ``make bench``, and writes one table per chapter: each
headline figure next to its baseline, and each notebook's time on the CPU (and GPU).
The page is generated, never edited by hand, so its numbers are the code's numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "appendix" / "results.md"


def load(kind: str) -> dict | None:
    p = ROOT / "bench" / f"results-{kind}.json"
    return json.loads(p.read_text()) if p.exists() else None


def cell(text: str) -> str:
    """Make text safe inside a MyST table cell: no column breaks, no math or roles."""
    return str(text).replace("|", "\\|").replace("$", "\\$").replace("`", "'").replace("{", "(").replace("}", ")")


def fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def render() -> str:
    cpu, cuda = load("cpu"), load("cuda")
    lines = ["# Appendix: measured results", "",
             "Every number on this page was produced by `make bench`, which executes each notebook",
             "from scratch in the full profile and collects the figures the notebook records with",
             "`lib.results.record`. The page is generated from those measurements",
             "(`tools/results_page.py`); nothing here is typed by hand.", ""]
    if cpu is None:
        lines += ["```{note}", "No benchmark has been recorded yet: run `make bench`, then rebuild the book.", "```", ""]
        return "\n".join(lines) + "\n"
    lines += [f"CPU runs on {cpu['machine']}, last updated {cpu['date']} (commit `{cpu['commit']}`); "
              f"all notebooks together took {cpu['total_seconds'] / 60:.1f} minutes. Each notebook's row "
              "gives the commit and date it was measured at."]
    gpu_times = {}
    if cuda is not None:
        gpu_times = {r["notebook"]: r["seconds"] for r in cuda["notebooks"]}
        lines += [f"GPU run on {cuda.get('gpu', 'a CUDA GPU')} ({cuda['machine']}): commit `{cuda['commit']}`, {cuda['date']}; "
                  f"total {cuda['total_seconds'] / 60:.1f} minutes."]
    lines += ["", "## Time per notebook", "", "| notebook | CPU run, seconds | GPU run, seconds | measured | status |",
              "| --- | ---: | ---: | --- | --- |"]
    for r in cpu["notebooks"]:
        gpu = gpu_times.get(r["notebook"])
        status = cell("error: " + r["error"]) if r.get("error") else "ok"
        when = f"{r.get('date', cpu['date'])}, `{r.get('commit', cpu['commit'])}`"
        lines.append(f"| `{r['notebook']}` | {r['seconds']:.0f} | {'' if gpu is None else f'{gpu:.0f}'} | {when} | {status} |")
    lines += ["", "## Headline figures", "",
              "| notebook | figure | value | baseline | better than baseline? |", "| --- | --- | ---: | --- | --- |"]
    for r in cpu["notebooks"]:
        for f in r["figures"]:
            base, verdict = "", ""
            if "baseline" in f:
                base = cell(f"{f['baseline_name']}: {fmt(f['baseline'])} {f['unit']}".strip())
                if "higher_is_better" in f:
                    better = f["value"] > f["baseline"] if f["higher_is_better"] else f["value"] < f["baseline"]
                    verdict = "yes" if better else "**no**"
            name = r["notebook"].split("/")[-1].removesuffix(".ipynb")
            lines.append(f"| {name} | {cell(f['name'])} | {fmt(f['value'])} {cell(f['unit'])} | {base} | {verdict} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(render())
    print("wrote", OUT.relative_to(ROOT))


if __name__ == "__main__":
    main()
