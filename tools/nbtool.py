"""Authoring helpers for the notebooks (not used by the book at run time).

    python tools/nbtool.py build chapters/01-analysis-synthesis/analysis_synthesis.py
        -> writes analysis_synthesis.ipynb next to it from a py:percent source
           (cells split at '# %%' / '# %% [markdown]'), clean, without outputs.
    python tools/nbtool.py sync-setup
        -> rewrites the first code cell of every notebook in _toc.yml to tools/setup_cell.py.
    python tools/nbtool.py sync-repository
        -> writes the repository address of _config.yml (repository.url, .branch) into
           tools/setup_cell.py (the Colab clone), every notebook's setup cell and the
           README's Colab links. `make book` and `make student` run it: a fork changes
           _config.yml only.
    python tools/nbtool.py renumber
        -> numbers every notebook's title by its place in _toc.yml (chapter N from its folder,
           parts N.1, N.2 where a chapter has several) and the README's table rows to match.
    python tools/nbtool.py clean FILE.ipynb...
        -> strips outputs, execution counts and cell metadata in place.
    python tools/nbtool.py sync-runtime
        -> writes each notebook's "Expected run time" note (under its title) and its Colab
           accelerator from the bench snapshots bench/results-{cpu,cuda}.json. `make bench`
           runs it; the times are measured, never typed.

The committed artefact is the .ipynb; the .py source is a scratch file you may
delete (``jupytext --to py:percent`` recreates one from a notebook).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SETUP = (ROOT / "tools" / "setup_cell.py").read_text().rstrip("\n")
GITHUB = re.compile(r"https://github\.com/([\w.-]+)/([\w-]+(?:\.[\w-]+)*?)(\.git)?(?=[\"'/)\s]|$)")
COLAB = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/")


def repository(root: Path = ROOT) -> tuple[str, str]:
    """(url, branch) of the book's repository: the one setting, in _config.yml."""
    import yaml

    cfg = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    url = cfg["url"].rstrip("/")
    if not GITHUB.fullmatch(url):
        raise ValueError(f"_config.yml repository.url must be https://github.com/OWNER/NAME, got {url!r}")
    return url, cfg.get("branch", "main")


def with_repository(text: str, url: str, branch: str, clone_dir: bool = False) -> str:
    """``text`` with every GitHub address (and Colab link) pointing at ``url``/``branch``.
    ``clone_dir``: also rename the folder the setup cell clones into (``HERE / "NAME"``)."""
    owner, name = GITHUB.fullmatch(url).group(1, 2)
    text = COLAB.sub(f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/", text)
    text = GITHUB.sub(lambda m: f"https://github.com/{owner}/{name}{m.group(3) or ''}", text)
    if clone_dir:
        text = re.sub(r'HERE / "[\w.-]+"', f'HERE / "{name}"', text)
    return text


def sync_repository(root: Path = ROOT) -> list[Path]:
    """Write the address of _config.yml into the setup cell (tools/setup_cell.py and every
    notebook's first code cell) and the README; return the files that changed."""
    url, branch = repository(root)
    changed = []
    setup_path = root / "tools" / "setup_cell.py"
    setup = with_repository(setup_path.read_text(), url, branch, clone_dir=True)
    for path, new in [(setup_path, setup),
                      (root / "README.md", with_repository((root / "README.md").read_text(), url, branch))]:
        if path.read_text() != new:
            path.write_text(new)
            changed.append(path)
    for f in sorted(root.glob("chapters/*/*.ipynb")):
        nb = nbformat.read(f, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        if first.source != setup.rstrip("\n"):
            first.source = setup.rstrip("\n")
            nbformat.write(nb, f)
            changed.append(f)
    return changed
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


# --- one numbering: chapter N (folder NN-...), parts N.1, N.2, exercises N.k per chapter -------

TITLE = re.compile(r"^# (\d+)(?:\.(\d+))? (\S.*)$")
EXERCISE = re.compile(r":::\{exercise\}[ \t]*([^\n]*)\n:label: (\S+)")


def title_number(nb: nbformat.NotebookNode) -> tuple[int, int | None] | None:
    """(chapter, part) typed at the start of the notebook's ``# `` title, e.g. (5, 2) for
    "# 5.2 Diffusion ...", (1, None) for "# 1 Analysis ..."; None if it has no number."""
    m = TITLE.match(nb.cells[0].source.partition("\n")[0]) if nb.cells else None
    return None if m is None else (int(m.group(1)), None if m.group(2) is None else int(m.group(2)))


def exercises(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(label, title) of every ``{exercise}`` box of a notebook, in order."""
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return [(label, title.strip()) for title, label in EXERCISE.findall(md)]


CHECK_CALL = re.compile(r"exercises\.check\(\s*[\"'](\S+?)[\"']")
SOLUTION_END = re.compile(r":::\{solution-end\}[ \t]*\n:::[ \t]*\n?")


def _solution_end_cell(nb: nbformat.NotebookNode, label: str) -> int:
    """Index of the markdown cell holding the ``{solution-end}`` of exercise ``label``."""
    inside = None
    for i, c in enumerate(nb.cells):
        if c.cell_type != "markdown":
            continue
        for m in re.finditer(r":::\{solution-(start|end)\}\s*(\S*)", c.source):
            if m.group(1) == "start":
                inside = m.group(2)
            elif inside == label:
                return i
            else:
                inside = None
    raise ValueError(f"exercise {label!r} has no solution-start ... solution-end block")


def insert_check(nb: nbformat.NotebookNode, label: str, call: str) -> nbformat.NotebookNode:
    """Put the code cell ``call`` (an ``exercises.check(label, ...)`` call) right after the
    solution of exercise ``label``, outside it, so that the student copy keeps it. A markdown
    cell that goes on after the ``{solution-end}`` is split around the new cell."""
    if CHECK_CALL.search(call) is None or CHECK_CALL.search(call).group(1) != label:
        raise ValueError(f"the check cell must call exercises.check({label!r}, ...)")
    i = _solution_end_cell(nb, label)
    text = nb.cells[i].source
    m = SOLUTION_END.search(text)
    head, rest = text[:m.end()].rstrip("\n"), text[m.end():].strip("\n")
    nb.cells[i].source = head
    new = [nbformat.v4.new_code_cell(call.strip("\n"))]
    if rest:
        new.append(nbformat.v4.new_markdown_cell(rest))
    nb.cells[i + 1:i + 1] = new
    return nb


def insert_rubric(nb: nbformat.NotebookNode, label: str, items: list[str]) -> nbformat.NotebookNode:
    """Put a collapsed self-assessment rubric (``items``: what a good answer contains) right
    after the box of exercise ``label``, before its solution."""
    box = re.compile(r"(:::\{exercise\}[^\n]*\n:label: " + re.escape(label) + r"\n.*?\n:::[ \t]*\n)", re.S)
    for c in nb.cells:
        if c.cell_type == "markdown" and box.search(c.source):
            rubric = ("\n:::{admonition} Check yourself\n:class: dropdown tip\n"
                      "A good answer\n" + "".join(f"- {item}\n" for item in items) + ":::\n")
            c.source = box.sub(lambda m: m.group(1) + rubric, c.source, count=1)
            return nb
    raise ValueError(f"no exercise box labelled {label!r}")


def exercise_numbers(paths: list[Path]) -> dict[str, str]:
    """label -> "N.k" for the notebooks at ``paths`` in book order: the k-th exercise of
    chapter N, counted over all of the chapter's parts. This is the number the book shows
    (``_ext/workbook_html.py`` numbers the boxes by the same rule)."""
    count, out = {}, {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        num = title_number(nb)
        for label, _ in exercises(nb):
            if num is None:
                raise ValueError(f"{path}: an exercise in a notebook without a numbered title")
            count[num[0]] = count.get(num[0], 0) + 1
            out[label] = f"{num[0]}.{count[num[0]]}"
    return out


# --- expected run time and Colab accelerator, from the bench snapshots -----------------------

RUNTIME_BEGIN = "<!-- run-time: generated from bench/ by tools/nbtool.py sync-runtime; do not edit -->"
RUNTIME_END = "<!-- /run-time -->"
GPU_WORTH_S = 60  # a notebook that takes longer than this on the CPU asks Colab for a GPU


def about(seconds: float) -> str:
    """A measured duration as a reader wants it: 'about 40 s', 'about 3 min'."""
    if seconds < 0:
        raise ValueError(f"a duration must be >= 0 seconds, got {seconds}")
    if seconds < 55:
        return f"about {max(5, 5 * round(seconds / 5))} s"
    return f"about {max(1, round(seconds / 60))} min"


def load_bench(kind: str) -> dict | None:
    """bench/results-<kind>.json (kind 'cpu' or 'cuda'), or None if it was never measured."""
    p = ROOT / "bench" / f"results-{kind}.json"
    return json.loads(p.read_text()) if p.exists() else None


def runtime_note(rel: str, cpu: dict | None, cuda: dict | None) -> tuple[str | None, bool]:
    """(markdown block, wants a GPU) for the notebook at repo-relative path ``rel``.

    The block is for a reader: the measured times, and on Colab whether to pick a GPU;
    no build instructions. It is None when no bench snapshot has a row for the notebook."""
    rows = {k: next((r for r in (snap or {}).get("notebooks", []) if r["notebook"] == rel), None)
            for k, snap in (("cpu", cpu), ("cuda", cuda))}
    if rows["cpu"] is None and rows["cuda"] is None:
        return None, False
    parts = []
    if rows["cpu"] is not None:
        cores = cpu["machine"].split(", ")[-1].replace(" CPU cores", "-core CPU")
        parts.append(f"**{about(rows['cpu']['seconds'])}** on a {cores}")
    if rows["cuda"] is not None:
        parts.append(f"**{about(rows['cuda']['seconds'])}** on an {cuda.get('gpu', 'NVIDIA')} GPU")
    gpu = rows["cpu"] is not None and rows["cpu"]["seconds"] > GPU_WORTH_S
    lines = [RUNTIME_BEGIN, ":::{admonition} Expected run time", ":class: note",
             "Run from top to bottom, this notebook takes " + " and ".join(parts) + "."]
    if gpu:
        lines.append("On Colab, pick a GPU runtime (*Runtime → Change runtime type*): the notebook finds it by itself.")
    lines += [":::", RUNTIME_END]
    return "\n".join(lines), gpu


def apply_runtime(nb: nbformat.NotebookNode, note: str | None, gpu: bool) -> nbformat.NotebookNode:
    """Put ``note`` right under the title of the first cell (replacing an earlier one) and set
    the Colab accelerator. ``note=None`` removes both."""
    title = nb.cells[0]
    src = re.sub(re.escape(RUNTIME_BEGIN) + r".*?" + re.escape(RUNTIME_END) + r"\n*", "", title.source, flags=re.S)
    if note is not None:
        head, _, rest = src.partition("\n")
        src = f"{head}\n\n{note}\n\n{rest.lstrip(chr(10))}"
    title.source = src.rstrip("\n")
    if gpu:
        nb.metadata["accelerator"] = "GPU"
    else:
        nb.metadata.pop("accelerator", None)
    return nb


def renumber() -> list[Path]:
    """Rewrite the number in every notebook's title (and its README table row) from the
    notebook's place in _toc.yml; returns the files changed."""
    from toc import toc_notebooks

    by_chapter: dict[int, list[Path]] = {}
    for path in toc_notebooks():
        by_chapter.setdefault(int(path.parent.name.split("-")[0]), []).append(path)
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    changed = []
    for chapter, paths in by_chapter.items():
        for k, path in enumerate(paths, 1):
            number = f"{chapter}" if len(paths) == 1 else f"{chapter}.{k}"
            nb = nbformat.read(path, as_version=4)
            first, _, rest = nb.cells[0].source.partition("\n")
            m = TITLE.match(first)
            if m is None:
                raise ValueError(f"{path.name}: the first cell has no numbered '# N.k Title' line")
            new = f"# {number} {m.group(3)}"
            if new != first:
                nb.cells[0].source = new + ("\n" + rest if rest else "")
                nbformat.write(clean(nb), path)
                changed.append(path)
            rel = re.escape(path.relative_to(ROOT).as_posix())
            row = re.compile(rf"^\| [\d.]+ (.*\[{rel}\].*)$", re.M)
            readme = row.sub(lambda r: f"| {number} {r.group(1)}", readme)
    if readme != readme_path.read_text():
        readme_path.write_text(readme)
        changed.append(readme_path)
    return changed


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
    elif cmd == "renumber":
        for f in renumber():
            print("wrote", f.relative_to(ROOT))
    elif cmd == "sync-repository":
        for f in sync_repository():
            print("wrote", f.relative_to(ROOT))
    elif cmd == "sync-runtime":
        cpu, cuda = load_bench("cpu"), load_bench("cuda")
        for f in sorted(ROOT.glob("chapters/*/*.ipynb")):
            nb = nbformat.read(f, as_version=4)
            note, gpu = runtime_note(str(f.relative_to(ROOT)), cpu, cuda)
            nbformat.write(clean(apply_runtime(nb, note, gpu)), f)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
