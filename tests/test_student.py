"""Student copies (tools/student.py): no solution code survives; each copy runs up to its first placeholder."""
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import student  # noqa: E402

NOTEBOOKS = sorted(ROOT.glob("chapters/*/*.ipynb"))


def solution_cells(nb):
    out, inside = [], False
    for c in nb.cells:
        if c.cell_type == "markdown":
            for kind in re.findall(r":::\{(solution-start|solution-end)\}", c.source):
                inside = kind == "solution-start"
        elif inside:
            out.append(c.source)
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_no_solution_survives(path):
    nb = nbformat.read(path, as_version=4)
    solutions = solution_cells(nb)
    labels = re.findall(r":label: (\S+)", "\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    stu = student.strip_solutions(nbformat.read(path, as_version=4))
    nbformat.validate(stu)
    text = "\n".join(c.source for c in stu.cells)
    code = [c.source for c in stu.cells if c.cell_type == "code"]
    assert solutions and not any(s in code for s in solutions)
    assert "solution-start" not in text and "solution-end" not in text
    for label in labels:  # exercise text kept, one placeholder each
        assert f":label: {label}" in text
        assert sum(f'exercise {label}: your solution goes here' in c for c in code) == 1
    assert len(stu.cells) < len(nb.cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_check_call_survives_after_its_placeholder(path):
    nb = nbformat.read(path, as_version=4)
    checks = [c.source for c in nb.cells if c.cell_type == "code" and "exercises.check(" in c.source]
    stu = student.strip_solutions(nbformat.read(path, as_version=4))
    code = [c.source for c in stu.cells if c.cell_type == "code"]
    assert all(src in code for src in checks), "a check cell was removed with the solutions"
    for src in checks:
        label = re.search(r"exercises\.check\(\s*\"([^\"]+)\"", src).group(1)
        i = code.index(src)
        placeholder = f'exercise {label}: your solution goes here'
        assert placeholder in code[i - 1], f"the check of {label} follows its placeholder"
        # the placeholder names what the check reads that the solution defines
        names = re.findall(r"`(\w+)`", code[i - 1].split("reads:")[-1]) if "reads:" in code[i - 1] else []
        assert all(re.search(rf"\b{n}\s*=", src) for n in names)


def test_placeholder_names_the_answers_the_check_reads():
    src = ROOT / "chapters" / "01-analysis-synthesis" / "analysis_synthesis.ipynb"
    stu = student.strip_solutions(nbformat.read(src, as_version=4))
    ridge = next(c.source for c in stu.cells if "exercise ch01-ridge: your solution" in c.source)
    # rank and test_loglik come from the solution; x_train is the notebook's own data
    assert "reads: `rank`, `test_loglik`." in ridge and "x_train" not in ridge


def test_make_student_writes_an_index_of_colab_links(tmp_path):
    student.main(str(tmp_path / "handout"))
    index = (tmp_path / "handout" / "README.md").read_text()
    links = re.findall(r"\]\((https://colab[^)]+)\)", index)
    url, branch = student.nbtool.repository()
    prefix = f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{branch}/handout/"
    assert len(links) == len(NOTEBOOKS) and all(link.startswith(prefix) for link in links)
    for link in links:  # each link names a copy that was written
        copy = tmp_path / "handout" / link.removeprefix(prefix)
        assert copy.exists() and "NotImplementedError" in copy.read_text()
