"""Write student copies of every notebook: exercise text kept, solutions removed.

    python tools/student.py [OUT_DIR]      # default: student/

Each `{solution-start}` ... `{solution-end}` block (the markdown directive cells and the
code cells between them) becomes one code cell holding a placeholder that raises
``NotImplementedError`` naming the exercise, so a student copy runs top to bottom up to
the first exercise and stops there with a clear message. Folders mirror chapters/.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbtool  # noqa: E402
from toc import toc_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START = re.compile(r":::\{solution-start\}\s*(\S+)")

PLACEHOLDER = '''# {title}: write your solution here, then delete the line below.
raise NotImplementedError("exercise {label}: your solution goes here")'''


def strip_solutions(nb: nbformat.NotebookNode, numbers: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """``numbers``: exercise label -> its number in the book (``nbtool.exercise_numbers``)."""
    numbers = numbers or {}
    titles = {label: f"Exercise {numbers[label]} ({title})" if label in numbers else f"Exercise ({title})"
              for label, title in nbtool.exercises(nb)}
    cells, inside = [], None
    directive = re.compile(r":::\{(solution-start|solution-end)\}[^\n]*\n(?::class:[^\n]*\n)?:::[ \t]*\n?")
    for c in nb.cells:
        if c.cell_type != "markdown":
            if inside is None:
                cells.append(c)
            continue
        text, pos = c.source + "\n", 0
        for m in directive.finditer(text):
            kept = text[pos:m.start()].strip()
            if kept and inside is None:
                cells.append(nbformat.v4.new_markdown_cell(kept))
            if m.group(1) == "solution-start":
                if inside is not None:
                    raise ValueError(f"solution-start inside solution {inside}")
                inside = START.search(m.group(0)).group(1)
                cells.append(nbformat.v4.new_code_cell(
                    PLACEHOLDER.format(title=titles.get(inside, "Exercise"), label=inside)))
            else:
                if inside is None:
                    raise ValueError("solution-end without solution-start")
                inside = None
            pos = m.end()
        rest = text[pos:].strip()
        if rest and inside is None:
            cells.append(nbformat.v4.new_markdown_cell(rest))
    if inside is not None:
        raise ValueError(f"solution {inside} is never closed")
    nb.cells = cells
    for i, c in enumerate(nb.cells):
        c["id"] = f"s{i:03d}"
    return nb


def main(out: str = "student") -> None:
    out_dir = ROOT / out
    numbers = nbtool.exercise_numbers(toc_notebooks())
    for src in sorted(ROOT.glob("chapters/*/*.ipynb")):
        nb = strip_solutions(nbformat.read(src, as_version=4), numbers)
        dst = out_dir / src.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dst)
        print("wrote", dst)


if __name__ == "__main__":
    main(*sys.argv[1:])
