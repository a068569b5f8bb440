"""Authoring helpers for the notebooks (not used by the book at run time).

    python tools/nbtool.py build chapters/01-analysis-synthesis/analysis_synthesis.py
        -> writes analysis_synthesis.ipynb next to it from a py:percent source
           (cells split at '# %%' / '# %% [markdown]'), clean, without outputs.
    python tools/nbtool.py sync-setup
        -> rewrites the first code cell of every notebook in _toc.yml to tools/setup_cell.py.
    python tools/nbtool.py clean FILE.ipynb...
        -> strips outputs, execution counts and cell metadata in place.

The committed artefact is the .ipynb; the .py source is a scratch file you may
delete (``jupytext --to py:percent`` recreates one from a notebook).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SETUP = (ROOT / "tools" / "setup_cell.py").read_text().rstrip("\n")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata = {"kernelspec": KERNELSPEC,
                   "language_info": {"name": "python"},
                   **({"accelerator": nb.metadata["accelerator"]} if "accelerator" in nb.metadata else {})}
    for i, c in enumerate(nb.cells):
        keep = {k: v for k, v in c.get("metadata", {}).items() if k in ("tags",)}
        c["metadata"] = keep
        c["id"] = f"c{i:03d}"
        if c.cell_type == "code":
            c["outputs"] = []
            c["execution_count"] = None
    return nb


def from_percent(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    chunks = re.split(r"^# %%(.*)$", text, flags=re.M)
    # chunks: [preamble, header1, body1, header2, body2, ...]
    for header, body in zip(chunks[1::2], chunks[2::2]):
        body = body.strip("\n")
        tags = re.findall(r"tags=\[([^\]]*)\]", header)
        if "[markdown]" in header:
            lines = [l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines()]
            cell = nbformat.v4.new_markdown_cell("\n".join(lines).strip("\n"))
        else:
            is_setup = body.strip() == "SETUP"
            cell = nbformat.v4.new_code_cell(SETUP if is_setup else body)
            if is_setup:
                cell.metadata["tags"] = ["hide-input"]  # collapsed in the HTML book
        if tags:
            cell.metadata["tags"] = [t.strip().strip("'\"") for t in tags[0].split(",") if t.strip()]
        nb.cells.append(cell)
    return clean(nb)


def main(argv):
    cmd, *args = argv
    if cmd == "build":
        for src in args:
            src = Path(src)
            nb = from_percent(src.read_text())
            nbformat.write(nb, src.with_suffix(".ipynb"))
            print("wrote", src.with_suffix(".ipynb"))
    elif cmd == "clean":
        for f in args:
            nbformat.write(clean(nbformat.read(f, as_version=4)), f)
    elif cmd == "sync-setup":
        for f in sorted(ROOT.glob("chapters/*/*.ipynb")):
            nb = nbformat.read(f, as_version=4)
            first = next(c for c in nb.cells if c.cell_type == "code")
            first.source = SETUP
            first.metadata["tags"] = ["hide-input"]
            nbformat.write(clean(nb), f)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
