"""The landing page's gallery: one figure per chapter, from the book's own execution.

    python tools/gallery.py                                   # after tools/execute.py (full profile)
    python tools/gallery.py --profile smoke --cache _build/smoke/.jupyter_cache

Each notebook marks one code cell with the tag ``gallery`` (its first figure) or
``gallery-last`` (its last): the cell whose figure shows best what the chapter makes
(samples, an edit, a restoration). This script takes that figure from the executed
notebook in the build's
jupyter-cache, writes a thumbnail to ``gallery/<notebook>.png`` and the cards to
``gallery/gallery.inc`` (included by ``intro.md``): the picture, the chapter's title
linked to its page, and the chapter's first claim (a learned method against its
baseline, from the same execution's records) under it. Generated, never edited.
"""
from __future__ import annotations

import argparse
import base64
import io
import sys
from contextlib import suppress
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import execute  # noqa: E402
import results_page  # noqa: E402
from toc import toc_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "gallery"
THUMB_WIDTH = 460  # pixels: a card is about a third of the 1280-px page, at 2x for sharp screens
TAGS = ("gallery", "gallery-last")  # the cell's first figure, or its last


def gallery_cell(nb) -> tuple[int, str]:
    """(index, tag) of the notebook's one code cell tagged for the gallery (ValueError if not one)."""
    tagged = [(i, t) for i, c in enumerate(nb.cells) for t in c.get("metadata", {}).get("tags", [])
              if t in TAGS]
    if len(tagged) != 1 or nb.cells[tagged[0][0]].cell_type != "code":
        raise ValueError(f"a notebook needs exactly one code cell tagged one of {TAGS}, found {tagged}")
    return tagged[0]


def cell_png(cell, which: str = "gallery") -> bytes | None:
    """The first (``gallery``) or last (``gallery-last``) PNG among a cell's outputs, or None."""
    pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    if not pngs:
        return None
    return base64.b64decode(pngs[-1] if which == "gallery-last" else pngs[0])


def thumbnail(png: bytes, width: int = THUMB_WIDTH) -> bytes:
    """``png`` scaled down to ``width`` pixels (never up), as PNG bytes."""
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB")
    if im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def headline(rec: dict | None) -> str:
    """The chapter's first claim (else its first figure with a baseline, else its first figure),
    as one line: 'name: value unit (baseline name: value)'."""
    figs = (rec or {}).get("figures", [])
    pick = next((f for f in figs if results_page.verdict(f)), None) or next(
        (f for f in figs if "baseline" in f), None) or (figs[0] if figs else None)
    if pick is None:
        return ""
    text = f"{pick['name']}: **{results_page.fmt(pick['value'])} {pick['unit']}".strip() + "**"
    if "baseline" in pick:
        text += f" ({pick['baseline_name']}: {results_page.fmt(pick['baseline'])} {pick['unit']}".rstrip() + ")"
    return text


def render(cards: list[dict]) -> str:
    """The MyST source of the gallery: a grid of linked cards (sphinx-design)."""
    lines = ["::::{grid} 1 2 3 3", ":gutter: 3", ""]
    for c in cards:
        text = results_page.cell(c["headline"]).replace("\\|", "|") if c["headline"] else ""
        lines += [f":::{{grid-item-card}} {c['title']}", f":link: {c['doc']}", ":link-type: doc",
                  f":img-top: {c['image']}", f":img-alt: {c['alt']}", ":class-card: workbook-gallery", "",
                  text, ":::", ""]
    return "\n".join(lines + ["::::", ""])


def build(profile: str, cache_path: Path, out: Path = OUT, root: Path = ROOT,
          notebooks: list[Path] | None = None) -> list[dict]:
    """Write the thumbnails and ``gallery.inc``; return the cards (one per notebook with a figure)."""
    from jupyter_cache import get_cache

    cache = get_cache(str(cache_path))
    records = execute.load_records(profile, root / "_build" / "records")
    out.mkdir(parents=True, exist_ok=True)
    cards = []
    for nb_path in notebooks if notebooks is not None else toc_notebooks():
        nb = nbformat.read(nb_path, as_version=4)
        i, which = gallery_cell(nb)
        executed = None
        with suppress(KeyError):
            executed = cache.merge_match_into_notebook(nb)[1]
        png = cell_png(executed.cells[i], which) if executed is not None else None
        rel = str(nb_path.relative_to(root))
        if png is None:
            print(f"gallery: no executed figure for {rel} (run tools/execute.py first)", file=sys.stderr)
            continue
        stem = nb_path.stem
        (out / f"{stem}.png").write_bytes(thumbnail(png))
        title = results_page.title(rel) if root == results_page.ROOT else nb_path.stem
        cards.append({"title": title, "doc": rel.removesuffix(".ipynb"),
                      "image": f"{out.name}/{stem}.png", "alt": f"{title}: a figure of the chapter's results",
                      "headline": headline(records.get(rel))})
    (out / "gallery.inc").write_text(render(cards))
    return cards


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=["full", "smoke"])
    ap.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    args = ap.parse_args(argv)
    cards = build(args.profile, Path(args.cache))
    print(f"wrote {OUT.relative_to(ROOT)}/gallery.inc: {len(cards)} chapters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
