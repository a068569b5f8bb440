"""One numbering for the whole book: chapter N is the folder NN-..., a chapter with several
notebooks has parts N.1, N.2 in _toc.yml order, exercises are numbered per chapter by the
book (never typed), and prose cites them by label."""
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nbtool  # noqa: E402
import student  # noqa: E402
from toc import toc_notebooks  # noqa: E402

NOTEBOOKS = toc_notebooks()


def _markdown(path):
    nb = nbformat.read(path, as_version=4)
    return nb, "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_titles_number_chapters_and_parts_in_toc_order():
    by_chapter = {}
    for path in NOTEBOOKS:
        chapter = int(path.parent.name.split("-")[0])
        by_chapter.setdefault(chapter, []).append(path)
    assert sorted(by_chapter) == list(range(1, len(by_chapter) + 1))
    for chapter, paths in by_chapter.items():
        for k, path in enumerate(paths, 1):
            nb, _ = _markdown(path)
            want = (chapter, None) if len(paths) == 1 else (chapter, k)
            assert nbtool.title_number(nb) == want, f"{path.name}: title {nb.cells[0].source.splitlines()[0]!r}, want {want}"


def test_readme_lists_every_notebook_under_its_number():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        nb, _ = _markdown(path)
        ch, part = nbtool.title_number(nb)
        number = f"{ch}" if part is None else f"{ch}.{part}"
        rel = path.relative_to(ROOT).as_posix()
        rows = [l for l in readme.splitlines() if l.startswith("|") and f"[{rel}]" in l]
        assert len(rows) == 1 and rows[0].startswith(f"| {number} "), (rel, rows)


def test_exercises_are_numbered_per_chapter_never_typed_and_cited_by_label():
    numbers = nbtool.exercise_numbers(NOTEBOOKS)
    assert numbers["ch01-ridge"] == "1.1" and numbers["ch05-variance"] == "5.4"  # 5.2 continues 5.1's count
    assert numbers["ch10-removal-ambiguous"] == "10.20"
    labels = set(numbers)
    for path in NOTEBOOKS:
        _, md = _markdown(path)
        assert not re.search(r"(?<![{`%<\w])[Ee]xercises? \d+\.\d+", md), f"{path.name}: a typed exercise number"
        for target in re.findall(r"\{numref\}`(?:[^`<]*<)?([^`>]+)>?`", md):
            assert target in labels, f"{path.name}: {{numref}} to unknown label {target!r}"
    with pytest.raises(ValueError, match="numbered title"):
        bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Untitled\n\n:::{exercise} X\n:label: x\n:::")])
        p = ROOT / "_build" / "tmp-numbering.ipynb"
        p.parent.mkdir(exist_ok=True)
        nbformat.write(bad, p)
        try:
            nbtool.exercise_numbers([p])
        finally:
            p.unlink()


def test_student_placeholders_carry_the_books_exercise_number():
    numbers = nbtool.exercise_numbers(NOTEBOOKS)
    path = ROOT / "chapters" / "05-diffusion" / "digits.ipynb"
    stu = student.strip_solutions(nbformat.read(path, as_version=4), numbers)
    code = "\n".join(c.source for c in stu.cells if c.cell_type == "code")
    assert "# Exercise 5.4 (The reverse variance $c$): write your solution here" in code
