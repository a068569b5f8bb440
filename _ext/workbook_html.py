"""Small Sphinx fixes for the built book (loaded from _config.yml: sphinx.local_extensions).

* sphinx-thebe 0.3.1 under Jupyter Book 1.0.4 adds its inline configuration script twice
  to every page, which throws "Identifier 'THEBE_JS_URL' has already been declared" in the
  browser; we keep the first copy of every identical script.
* The theme logs an error when no colour mode is set; the book defaults to light.
* One numbering: sphinx-exercise numbers exercises through the whole book (Exercise 21);
  the book numbers them per chapter, Exercise N.k, N read from the page's title ("# 5.2 ..."),
  k counted over all parts of chapter N in reading order (``tools/nbtool.py
  exercise_numbers`` applies the same rule, and a test checks the titles against _toc.yml).
  ``{numref}`label``` and the exercise boxes both use these numbers.
* Figures: a cell-output image gets an alt text in words instead of its file path: the
  figure's own titles, which ``lib.viz`` stores in the PNG's "Description" chunk, else the
  section the figure is in. A click on a figure opens it at full size (static/workbook.js:
  the book's own script, no CDN).
* Live playgrounds (``lib.live``): the ONNX models a cell output carries inline (base64)
  are written to ``_live/<sha>.onnx`` in the built book and fetched from there, so a page
  weighs no more than its figures until a reader's browser loads the model.
"""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from docutils import nodes
from PIL import Image

STATIC = Path(__file__).resolve().parent / "static"
TITLE_NUMBER = re.compile(r"^(\d+)(?:\.\d+)?\s")


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for js in context.get("script_files", []):
        # the two copies differ only in filename None vs "" (both mean "inline script")
        key = (getattr(js, "filename", str(js)) or "", tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"][:] = unique  # in place: later handlers (MathJax) append to this list


def chapter_of(title: str) -> int | None:
    """The chapter number N that a page title starts with ("5.2 Diffusion ..." -> 5)."""
    m = TITLE_NUMBER.match(title)
    return int(m.group(1)) if m else None


def _number_exercises_per_chapter(app, env):
    """After Sphinx has numbered every exercise book-wide (in reading order), renumber
    them (N, k): the k-th exercise of chapter N."""
    found = []
    for docname, types in env.toc_fignumbers.items():
        for figid, number in types.get("exercise", {}).items():
            found.append((number, docname, figid))
    count: dict[int, int] = {}
    for _, docname, figid in sorted(found):
        title = env.titles.get(docname)
        chapter = chapter_of(title.astext()) if title is not None else None
        if chapter is None:
            continue
        count[chapter] = count.get(chapter, 0) + 1
        env.toc_fignumbers[docname]["exercise"][figid] = (chapter, count[chapter])
    return []


def png_description(path: Path) -> str:
    """The "Description" text chunk of a PNG ('' if there is none or it is no PNG)."""
    try:
        with Image.open(path) as im:
            return str(im.info.get("Description", "")).strip()
    except (OSError, ValueError):
        return ""


def _figure_alt_text(app, doctree):
    """Give every image without an alt text one in words (see the module docstring)."""
    env = app.env
    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        # Sphinx's image collector has already made the path relative to the source folder
        local = image.get("candidates", {}).get("*")
        text = png_description(Path(env.srcdir) / local) if local and "://" not in local else ""
        if not text:
            section = next((p for p in _ancestors(image) if isinstance(p, nodes.section)), None)
            title = section.next_node(nodes.title) if section is not None else None
            heading = re.sub(r"\\([A-Za-z]+)", r"\1", title.astext()) if title is not None else ""  # \to -> to
            text = f"Figure in “{heading}”" if heading else "Figure"
        image["alt"] = text


LIVE_MODEL = re.compile(
    r'<script type="application/octet-stream" class="workbook-live-model" data-name="([^"]*)" '
    r'data-sha="([0-9a-f]+)">([A-Za-z0-9+/=\s]*)</script>'
)


def _live_models_to_files(app, doctree, docname):
    """Move every inline live model (see the module docstring) into ``_live/``."""
    if app.builder.format != "html":
        return
    out = Path(app.outdir) / "_live"

    def extract(m):
        data = base64.b64decode(m.group(3))
        sha = hashlib.sha256(data).hexdigest()[:16]
        if sha != m.group(2):
            raise ValueError(f"{docname}: live model {m.group(1)!r} is damaged (sha {sha} != {m.group(2)})")
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{sha}.onnx").write_bytes(data)
        return (
            f'<script type="application/octet-stream" class="workbook-live-model" data-name="{m.group(1)}" '
            f'data-sha="{sha}" data-src="_live/{sha}.onnx"></script>'
        )

    for raw in list(doctree.findall(nodes.raw)):
        text = raw.astext()
        if "workbook-live-model" in text:
            new = LIVE_MODEL.sub(extract, text)
            raw.replace_self(nodes.raw(new, new, format=raw.get("format", "html")))


def _ancestors(node):
    while node.parent is not None:
        node = node.parent
        yield node


def _static_path(app, config):
    config.html_static_path.append(str(STATIC))


def setup(app):
    app.config.html_context.setdefault("default_mode", "light")
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    app.connect("env-get-updated", _number_exercises_per_chapter, priority=900)  # after Sphinx's own
    app.connect("doctree-read", _figure_alt_text)
    app.connect("doctree-resolved", _live_models_to_files)
    app.connect("config-inited", _static_path)
    app.add_js_file("workbook.js", defer="defer")
    app.add_css_file("workbook.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
