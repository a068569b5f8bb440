"""Write student copies of every notebook: exercise text kept, solutions removed.

    python tools/student.py [OUT_DIR]      # default: student/

Each `{solution-start}` ... `{solution-end}` block (the markdown directive cells and the
code cells between them) becomes one code cell holding a placeholder that raises
``NotImplementedError`` naming the exercise, so a student copy runs top to bottom up to
the first exercise and stops there with a clear message. The exercise's check cell
(``exercises.check(...)``, after the solution) is kept, and the placeholder names the
variables it reads, so a student runs their own code and then the check. The setup
cell is kept as well: a copy opened in Colab clones the repository for ``lib/`` exactly
as the book's notebooks do. Folders mirror chapters/.
"""
from __future__ import annotations

import ast
import re
import textwrap
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nbtool  # noqa: E402
from toc import toc_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START = re.compile(r":::\{solution-start\}\s*(\S+)")

PLACEHOLDER = '''# {title}: write your solution here, then delete the line below.{reads}
raise NotImplementedError("exercise {label}: your solution goes here")'''
CHECK = re.compile(r"\bexercises\.check\(")


def _assigned(sources: list[str]) -> set[str]:
    """Names that the code ``sources`` assigns at top level (targets of =, for, with, def)."""
    names: set[str] = set()
    for src in sources:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
    return names


def check_reads(source: str) -> list[str]:
    """The variables an ``exercises.check(label, key=value, ...)`` cell passes, in order."""
    out: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "exercises.check":
            for kw in node.keywords:
                for n in ast.walk(kw.value):
                    if isinstance(n, ast.Name) and n.id not in out:
                        out.append(n.id)
    return out


def strip_solutions(nb: nbformat.NotebookNode, numbers: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """``numbers``: exercise label -> its number in the book (``nbtool.exercise_numbers``)."""
    numbers = numbers or {}
    titles = {label: f"Exercise {numbers[label]} ({title})" if label in numbers else f"Exercise ({title})"
              for label, title in nbtool.exercises(nb)}
    cells, inside, solution, placeholders = [], None, {}, []
    directive = re.compile(r":::\{(solution-start|solution-end)\}[^\n]*\n(?::class:[^\n]*\n)?:::[ \t]*\n?")
    for c in nb.cells:
        if c.cell_type != "markdown":
            if inside is None:
                cells.append(c)
            else:
                solution.setdefault(inside, []).append(c.source)
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
                placeholders.append((len(cells), inside))  # filled in below
                cells.append(nbformat.v4.new_code_cell(""))
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
    for i, label in placeholders:
        reads = ""
        after = next((d for d in cells[i + 1:] if d.cell_type == "code"), None)
        if after is not None and CHECK.search(after.source):
            # the names the solution defines and the check cell reads: what the student must define
            names = [n for n in check_reads(after.source) if n in _assigned(solution.get(label, []))]
            if names:
                text = "The check cell below reads: " + ", ".join(f"`{n}`" for n in names) + "."
                reads = "".join("\n# " + line for line in textwrap.wrap(text, 86))
        cells[i].source = PLACEHOLDER.format(title=titles.get(label, "Exercise"), label=label, reads=reads)
    nb.cells = cells
    for i, c in enumerate(nb.cells):
        c["id"] = f"s{i:03d}"
    return nb


def index(out: str, rows: list[tuple[str, str]]) -> str:
    """student/README.md: one Colab link per copy, at the repository address of _config.yml
    (the copies open there once ``out/`` is pushed to that branch)."""
    url, branch = nbtool.repository()
    owner_name = url.removeprefix("https://github.com/")
    lines = ["# Student copies", "",
             "Exercises without their solutions. Open a chapter in Colab, run it from the top, "
             "write your answer where a cell says `your solution goes here`, then run the "
             "check cell below it: it prints *on track* or *not yet* with a hint.", "",
             "| chapter | open in Colab |", "| --- | --- |"]
    for title, rel in rows:
        link = f"https://colab.research.google.com/github/{owner_name}/blob/{branch}/{out}/{rel}"
        lines.append(f"| {title} | [{rel}]({link}) |")
    return "\n".join(lines) + "\n"


def main(out: str = "student") -> None:
    out_dir = ROOT / out
    numbers = nbtool.exercise_numbers(toc_notebooks())
    rows = []
    for src in toc_notebooks():
        nb = strip_solutions(nbformat.read(src, as_version=4), numbers)
        rel = src.relative_to(ROOT).as_posix()
        dst = out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dst)
        rows.append((nb.cells[0].source.splitlines()[0].lstrip("# ").strip(), rel))
        print("wrote", dst)
    where = out_dir.relative_to(ROOT).as_posix() if out_dir.is_relative_to(ROOT) else out_dir.name
    (out_dir / "README.md").write_text(index(where, rows))
    print("wrote", out_dir / "README.md")


if __name__ == "__main__":
    main(*sys.argv[1:])
