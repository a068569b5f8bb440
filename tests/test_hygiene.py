"""Notebook hygiene: clean outputs, the shared setup cell, toc coverage, exercises, citations."""
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("chapters/*/*.ipynb"))
SETUP = (ROOT / "tools" / "setup_cell.py").read_text().rstrip("\n")
sys.path.insert(0, str(ROOT / "tools"))
from toc import toc_files  # noqa: E402


def test_there_are_notebooks():
    assert NOTEBOOKS, "no chapter notebooks found"


def test_every_notebook_is_in_the_toc_and_every_toc_entry_exists():
    entries = toc_files()
    for nb in NOTEBOOKS:
        assert str(nb.relative_to(ROOT).with_suffix("")) in entries, f"{nb} is not in _toc.yml"
    generated = {"appendix/results"}  # written by tools/results_page.py before every build
    for e in entries:
        assert e in generated or any((ROOT / (e + ext)).exists() for ext in (".md", ".ipynb")), f"toc entry {e} has no file"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_notebook_is_clean(path):
    raw = json.loads(path.read_text())
    nb = nbformat.reads(path.read_text(), as_version=4)
    nbformat.validate(nb)
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    for i, c in enumerate(raw["cells"]):
        assert set(c.get("metadata", {})) <= {"tags"}, f"cell {i} has metadata {c['metadata']}"
        if c["cell_type"] == "code":
            assert c["outputs"] == [], f"cell {i} has outputs"
            assert c["execution_count"] is None, f"cell {i} has an execution count"
            src = "".join(c["source"])
            assert "pip install" not in src, f"cell {i} pip-installs something"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_notebook_anatomy(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "starts with a title"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == SETUP, "the first code cell must be tools/setup_cell.py (run tools/nbtool.py sync-setup)"
    assert nb.cells.index(code[0]) == 1, "the setup cell comes right after the title"
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"^## Exercises\s*$", md, re.M), "ends with an '## Exercises' section"
    headings = [c for c in nb.cells if c.cell_type == "markdown" and re.search(r"^## ", c.source, re.M)]
    assert "## Exercises" in headings[-1].source, "Exercises is the last section"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_exercise_has_a_runnable_solution(path):
    nb = nbformat.read(path, as_version=4)
    labels = re.findall(r":::\{exercise\}[^\n]*\n:label: (\S+)", "\n".join(c.source for c in nb.cells))
    assert labels, "at least one exercise"
    state, solved = None, []
    for c in nb.cells:
        if c.cell_type == "markdown":
            for kind, arg in re.findall(r":::\{(solution-start|solution-end)\}\s*(\S*)", c.source):
                if kind == "solution-start":
                    assert state is None, "nested solution-start"
                    state, ncode = arg, 0
                else:
                    assert state is not None, "solution-end without start"
                    assert ncode > 0, f"solution {state} has no code cell"
                    solved.append(state)
                    state = None
        elif state is not None:
            ncode += 1
    assert state is None, f"solution {state} is never closed"
    assert sorted(solved) == sorted(labels), f"exercises {labels} vs solutions {solved}"


def test_exercise_labels_are_unique_across_the_book():
    labels = []
    for p in NOTEBOOKS:
        labels += re.findall(r":label: (\S+)", p.read_text())
    assert len(labels) == len(set(labels)), sorted(l for l in labels if labels.count(l) > 1)


def test_every_citation_is_in_references_bib():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(), re.M))
    sources = [p.read_text() for p in NOTEBOOKS] + [p.read_text() for p in ROOT.glob("*.md")]
    cited = set()
    for s in sources:
        for group in re.findall(r"\{cite[pt]?\}`([\w:.\-]+(?:\s*,\s*[\w:.\-]+)*)`", s):
            cited |= {k.strip() for k in group.split(",")}
    assert cited, "the book cites nothing"
    assert cited <= keys, f"unknown citation keys: {sorted(cited - keys)}"


def test_setup_cell_clone_url_matches_config():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = cfg["repository"]["url"].rstrip("/")
    assert f'"{url}.git"' in SETUP
    assert cfg["repository"]["branch"] == "main"


def test_notebook_code_is_formatted_to_the_column():
    """Notebook code is ruff-formatted (88 characters, ruff.toml) so it fits the book's column."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    out = subprocess.run([ruff, "format", "--check", "chapters"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, f"run `ruff format chapters`:\n{out.stdout}{out.stderr}"


def test_notebook_code_lines_fit_the_column():
    """No code line wider than 88 characters (ruff's formatter does not split strings or comments)."""
    wide = [f"{p.name} cell {i}: {len(line)} chars: {line.strip()[:60]}"
            for p in NOTEBOOKS
            for i, c in enumerate(nbformat.read(p, as_version=4).cells) if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > 88]
    assert not wide, "\n".join(wide)
