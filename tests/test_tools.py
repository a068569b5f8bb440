"""tools/bench.py (toc order) and tools/results_page.py (the generated appendix)."""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402
import results_page  # noqa: E402


def test_bench_runs_the_toc_notebooks_in_order():
    toc = (ROOT / "_toc.yml").read_text()
    listed = [l.split("file: ")[1].strip() + ".ipynb" for l in toc.splitlines() if "file: chapters/" in l]
    assert [str(p.relative_to(ROOT)) for p in bench.toc_notebooks()] == listed


def test_results_page_tables_and_verdicts(tmp_path, monkeypatch):
    snap = {"commit": "abc", "date": "today", "machine": "x86_64, 2 CPU cores", "total_seconds": 70, "devices": ["cpu"],
            "notebooks": [{"notebook": "chapters/01-x/a.ipynb", "seconds": 30.0, "device": "cpu", "error": None, "figures": [
                {"name": "|mu - m| with $x$", "value": 1.0, "unit": "nats", "baseline": 2.0, "baseline_name": "b|c",
                 "higher_is_better": True},
                {"name": "error", "value": 0.1, "unit": "", "baseline": 0.5, "baseline_name": "base", "higher_is_better": False}]},
                {"notebook": "chapters/02-y/b.ipynb", "seconds": 40.0, "device": "cpu", "error": "RuntimeError: x|y", "figures": []}]}
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results-cpu.json").write_text(json.dumps(snap))
    monkeypatch.setattr(results_page, "ROOT", tmp_path)
    page = results_page.render()
    rows = [l for l in page.splitlines() if l.startswith("| ") and "---" not in l]
    assert len(rows) == 2 + 2 + 2  # two headers, two notebooks, two figures
    for row in rows:  # escaped pipes do not split cells: both tables have 5 columns
        assert len(re.split(r"(?<!\\)\|", row)) == 7, row
    assert "| a | \\|mu - m\\| with \\$x\\$ | 1 nats | b\\|c: 2 nats | **no** |" in page
    assert "| a | error | 0.1  | base: 0.5 | yes |" in page
    assert "error: RuntimeError: x\\|y" in page
    monkeypatch.setattr(results_page, "ROOT", tmp_path / "empty")
    assert "No benchmark has been recorded yet" in results_page.render()
