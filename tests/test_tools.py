"""tools/bench.py (toc order) and tools/results_page.py (the generated appendix)."""
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import bench  # noqa: E402
import nbformat  # noqa: E402
import results_page  # noqa: E402


def test_bench_runs_the_toc_notebooks_in_order():
    toc = (ROOT / "_toc.yml").read_text()
    listed = [l.split("file: ")[1].strip() + ".ipynb" for l in toc.splitlines() if "file: chapters/" in l]
    assert [str(p.relative_to(ROOT)) for p in bench.toc_notebooks()] == listed


def _rows(page):
    return [l for l in page.splitlines() if l.startswith("| ") and "---" not in l]


def test_results_page_is_the_books_own_execution_with_links_and_verdicts(tmp_path, monkeypatch):
    recs = [{"notebook": "chapters/01-x/a.ipynb", "seconds": 30.0, "device": "cpu", "threads": 1, "error": None,
             "phases": {"training": 10.0, "evaluation": 6.0, "plotting": 4.0},
             "figures": [
                 {"name": "|mu - m| with $x$", "value": 1.0, "unit": "nats", "baseline": 2.0, "baseline_name": "b|c",
                  "higher_is_better": True},
                 {"name": "error", "value": 0.1, "unit": "", "baseline": 0.5, "baseline_name": "base",
                  "higher_is_better": False},
                 {"name": "memoriser", "value": 3.0, "unit": "px"},
                 {"name": "over-fitted", "value": 5.0, "unit": "", "baseline": 1.0, "baseline_name": "best",
                  "higher_is_better": False, "kind": "reference"}]},
            {"notebook": "chapters/02-y/b.ipynb", "seconds": 40.0, "device": "cpu", "threads": 1,
             "error": "RuntimeError: x|y", "figures": []}]
    for r in recs:
        p = tmp_path / "_build" / "records" / "full" / (r["notebook"] + ".json")
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(r))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 1. The first chapter\n\ntext")])
    (tmp_path / "chapters" / "01-x").mkdir(parents=True)
    nbformat.write(nb, tmp_path / "chapters" / "01-x" / "a.ipynb")
    monkeypatch.setattr(results_page, "ROOT", tmp_path)
    page = results_page.render("full", tmp_path)
    for row in _rows(page):  # escaped pipes do not split cells
        assert len(re.split(r"(?<!\\)\|", row)) == 7, row
    assert len(_rows(page)) == 2 + 2 + 4  # two headers, two notebooks, four figures
    a = "[1. The first chapter](../chapters/01-x/a.ipynb)"   # the page's title, linked to the page
    assert f"| {a} | \\|mu - m\\| with \\$x\\$ | 1 nats | b\\|c: 2 nats | ***lost*** |" in page
    assert f"| {a} | error | 0.1  | base: 0.5 | won |" in page
    assert f"| {a} | memoriser | 3 px | — | — |" in page          # no baseline: no verdict
    assert "[b](../chapters/02-y/b.ipynb) | 40 | — | — | error: RuntimeError: x\\|y |" in page
    assert f"| {a} | 30 | — | 50 / 30 / 20 % | ok |" in page     # where the time went
    assert f"| {a} | over-fitted | 5  | best: 1 | reference |" in page  # a lesson, not a lost claim
    assert "**1 beat the baseline** and **1 do not**" in page
    assert "execution of the notebooks" in page and "snapshot" not in page
    assert (tmp_path / "results-seconds.png").stat().st_size > 1000
    assert (tmp_path / "results-claims.png").stat().st_size > 1000
    assert "```{figure} results-claims.png" in page and ":alt: Bar chart" in page
    assert "smoke" not in page
    smoke = tmp_path / "_build" / "records" / "smoke" / "chapters" / "01-x" / "a.ipynb.json"
    smoke.parent.mkdir(parents=True)
    smoke.write_text(json.dumps(recs[0]))
    assert "This build ran the **smoke** profile" in results_page.render("smoke")


def test_results_page_falls_back_to_the_bench_snapshot_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(results_page, "ROOT", tmp_path)
    assert "No notebook has been executed yet" in results_page.render()
    snap = {"commit": "abc", "date": "today", "machine": "x86_64, 2 CPU cores", "total_seconds": 30,
            "notebooks": [{"notebook": "chapters/01-x/a.ipynb", "seconds": 30.0, "error": None, "figures": [
                {"name": "acc", "value": 90.0, "unit": "%", "baseline": 80.0, "baseline_name": "mean",
                 "higher_is_better": True}]}]}
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results-cpu.json").write_text(json.dumps(snap))
    page = results_page.render()
    assert "committed `make bench` snapshot, not this build's" in page
    assert "| [a](../chapters/01-x/a.ipynb) | acc | 90 % | mean: 80 % | won |" in page


# --- tools/nbtool.py sync-runtime: the "Expected run time" note and the Colab accelerator -----

import nbtool  # noqa: E402
import pytest  # noqa: E402


def test_about_rounds_measured_durations_for_readers():
    assert nbtool.about(0.4) == "about 5 s"      # never "about 0 s"
    assert nbtool.about(7.4) == "about 5 s"
    assert nbtool.about(41) == "about 40 s"
    assert nbtool.about(61) == "about 1 min"
    assert nbtool.about(400.2) == "about 7 min"  # 6.67 min
    with pytest.raises(ValueError, match=">= 0"):
        nbtool.about(-1)


def _snap(seconds, machine="x86_64, 2 CPU cores", **extra):
    return {"machine": machine, "notebooks": [{"notebook": "chapters/01-x/a.ipynb", "seconds": seconds}], **extra}


def test_runtime_note_states_cpu_and_gpu_times_and_asks_for_a_gpu_only_when_worth_it():
    note, gpu = nbtool.runtime_note("chapters/01-x/a.ipynb", _snap(400.0), _snap(30.0, "x86_64, 16 CPU cores", gpu="NVIDIA H100"))
    assert "**about 7 min** on a 2-core CPU" in note and "**about 30 s** on an NVIDIA H100 GPU" in note
    assert gpu and "GPU runtime" in note
    assert "not been measured" not in note
    note, gpu = nbtool.runtime_note("chapters/01-x/a.ipynb", _snap(20.0), None)
    assert "about 20 s" in note and "GPU" not in note and not gpu  # no GPU time measured: none stated
    for n in (note, nbtool.runtime_note("chapters/01-x/a.ipynb", _snap(400.0), None)[0]):
        body = n.split("\n", 3)[3]  # below the marker, the admonition's head and class
        assert "make" not in body and "bench" not in body and "profile" not in body  # no build chatter
    assert nbtool.runtime_note("chapters/02-y/b.ipynb", _snap(20.0), None) == (None, False)


def test_apply_runtime_puts_the_note_under_the_title_and_replaces_an_old_one():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title\n\nIntro text.")])
    first, _ = nbtool.runtime_note("chapters/01-x/a.ipynb", _snap(400.0), None)
    nbtool.apply_runtime(nb, first, True)
    assert nb.cells[0].source == f"# Title\n\n{first}\n\nIntro text." and nb.metadata["accelerator"] == "GPU"
    second, _ = nbtool.runtime_note("chapters/01-x/a.ipynb", _snap(20.0), None)
    nbtool.apply_runtime(nb, second, False)
    assert nb.cells[0].source == f"# Title\n\n{second}\n\nIntro text." and "accelerator" not in nb.metadata
    nbtool.apply_runtime(nb, None, False)
    assert nb.cells[0].source == "# Title\n\nIntro text."


def test_every_notebook_states_the_benched_run_time():
    """The committed notes and accelerators are what the committed bench snapshots say
    (after `make bench`, or `python tools/nbtool.py sync-runtime`)."""
    cpu, cuda = nbtool.load_bench("cpu"), nbtool.load_bench("cuda")
    assert cpu is not None, "bench/results-cpu.json is missing: run make bench"
    for row in cpu["notebooks"]:
        path = ROOT / row["notebook"]
        if not path.exists():
            continue
        nb = nbformat.read(path, as_version=4)
        note, gpu = nbtool.runtime_note(row["notebook"], cpu, cuda)
        assert note in nb.cells[0].source, f"{row['notebook']}: run time note is stale; run tools/nbtool.py sync-runtime"
        assert (nb.metadata.get("accelerator") == "GPU") == gpu, row["notebook"]


def test_one_setting_for_the_repository_address():
    """_config.yml's repository.url is the only place to change: the setup cell (the Colab
    clone), every notebook and the README's Colab links agree with it."""
    url, branch = nbtool.repository()
    owner_name = url.removeprefix("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    colab = re.findall(r"https://colab\.research\.google\.com/github/([^)\s`]+?)/blob/([\w.-]+)/", readme)
    assert colab and all(c == (owner_name, branch) for c in colab)
    assert f'"{url}.git"' in nbtool.SETUP and f'HERE / "{url.rsplit("/", 1)[1]}"' in nbtool.SETUP


def test_a_fork_changes_the_address_in_one_place(tmp_path):
    for part in ["_config.yml", "README.md", "tools/setup_cell.py",
                 "chapters/01-analysis-synthesis/analysis_synthesis.ipynb",
                 "chapters/05-diffusion/digits.ipynb"]:
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / part, tmp_path / part)
    cfg = (tmp_path / "_config.yml").read_text()
    old, _ = nbtool.repository(tmp_path)
    (tmp_path / "_config.yml").write_text(
        cfg.replace(old, "https://github.com/some-course/gen-models").replace("branch: main", "branch: fall27"))
    changed = {p.relative_to(tmp_path).as_posix() for p in nbtool.sync_repository(tmp_path)}
    assert changed == {"README.md", "tools/setup_cell.py",
                       "chapters/01-analysis-synthesis/analysis_synthesis.ipynb",
                       "chapters/05-diffusion/digits.ipynb"}
    old_name = old.removeprefix("https://github.com/")
    for part in changed:
        text = (tmp_path / part).read_text()
        assert old_name not in text, f"{part} still names {old_name}"
    setup = (tmp_path / "tools/setup_cell.py").read_text()
    assert '"https://github.com/some-course/gen-models.git"' in setup and 'HERE / "gen-models"' in setup
    readme = (tmp_path / "README.md").read_text()
    assert "colab.research.google.com/github/some-course/gen-models/blob/fall27/chapters/" in readme
    nb = nbformat.read(tmp_path / "chapters/05-diffusion/digits.ipynb", as_version=4)
    assert next(c for c in nb.cells if c.cell_type == "code").source == setup.rstrip("\n")
    assert nbtool.sync_repository(tmp_path) == [], "a second sync changes nothing"
    (tmp_path / "_config.yml").write_text(cfg.replace(old, "https://gitlab.example.org/x"))
    with pytest.raises(ValueError, match="OWNER/NAME"):
        nbtool.repository(tmp_path)


def test_across_seeds_matches_figures_by_position_and_a_claim_must_win_on_every_seed(tmp_path, monkeypatch):
    def rows(v, base, name):
        return [{"notebook": "chapters/01-x/a.ipynb", "error": None, "figures": [
            {"name": name, "value": v, "unit": "", "baseline": base, "baseline_name": "Gauss",
             "higher_is_better": False, "kind": "claim"},
            {"name": "floor", "value": 1.0, "unit": ""}]}]
    table = bench.across_seeds({0: rows(14.0, 22.8, "FDD (K = 8)"), 1: rows(17.0, 22.9, "FDD (K = 6)"),
                                2: rows(25.0, 22.7, "FDD (K = 8)")})
    (fdd, floor), = table.values()
    assert fdd["name"] == "FDD (K = 8)" and fdd["values"] == [14.0, 17.0, 25.0]
    assert fdd["won"] == [True, True, False] and "won" not in floor
    with pytest.raises(ValueError, match="different numbers of figures"):
        bench.across_seeds({0: rows(1, 2, "a"), 1: [{**rows(1, 2, "a")[0], "figures": []}]})
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "seeds-cpu.json").write_text(json.dumps({"date": "today", "notebooks": table}))
    r = tmp_path / "_build" / "records" / "full" / "chapters" / "01-x" / "a.ipynb.json"
    r.parent.mkdir(parents=True)
    r.write_text(json.dumps({**rows(14.0, 22.8, "FDD (K = 8)")[0], "seconds": 3.0}))
    monkeypatch.setattr(results_page, "ROOT", tmp_path)
    page = results_page.render("full")
    assert "## Across seeds" in page
    assert "| FDD (K = 8) | 18.7 ± 5.7 (14..25)  | Gauss: 22.8 | 2 of 3 seeds (***lost***) |" in page


def test_a_claims_label_is_shortened_at_a_word_never_inside_one():
    name = "VQ-VAE + autoregressive code prior (trained to the end), samples FDD"
    label = results_page.claim_label("vqvae", name)
    assert len(label) <= 64 and label.endswith(" …") and label.startswith("vqvae: VQ-VAE")
    kept = label.removesuffix(" …").removeprefix("vqvae: ").split()
    assert kept == name.split()[: len(kept)]                  # whole words only
    assert results_page.claim_label("hdr", "HDR error") == "hdr: HDR error"
