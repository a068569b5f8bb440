"""Open every page of the built book in headless Chromium with the network blocked.

Run by `make check-html` after it builds the book into _build/smoke (smoke profile).
For each page in _toc.yml: no JavaScript errors, no request leaves the machine, every
image exists and has non-zero size, the math is typeset (MathJax served by the book),
exercise solutions are collapsed until clicked and open on a click, and the Colab
launch link points at this notebook on the main branch. Figures: no cell-output figure is
shrunk below 60 % of its natural width, every image has an alt text in words (not a file
path), a click on a figure opens it at full size. Numbering: every exercise box shows the
number tools/nbtool.py computes (Exercise N.k, per chapter), and every page title in the
sidebar starts with its chapter/part number. Outputs: no output line wider than the column,
no raw Markdown emphasis, no `nan` in a table, no repr of a config or a module. Numbers in
sentences: every number tagged by lib.results.figure equals the figure in the execution's
records (_build/records/<profile>/). Screenshots go to _build/screenshots/ for a person to
look at (the top and the whole of five pages at 1280x1000, among others).
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("WORKBOOK_HTML", ROOT / "_build" / "smoke" / "_build" / "html"))
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
sys.path.insert(0, str(ROOT / "tools"))
import nbtool  # noqa: E402
from toc import toc_files, toc_notebooks  # noqa: E402

_URL, BRANCH = nbtool.repository()
REPO = _URL.removeprefix("https://github.com/")  # OWNER/NAME, from _config.yml


PAGES = toc_files()
MIN_SHOWN = 0.6        # a figure may be shown at no less than 60 % of its natural width
LOAD_MS = 120_000      # a page may take long to load on a loaded shared machine (not a defect)
IMAGE_FILE = re.compile(r"([\w-]+/)*[\w.-]+\.(png|jpe?g|gif|svg)$", re.I)


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        raise FileNotFoundError(f"no built book at {HTML}: run `make check-html` (it builds first)")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def open_page(browser, server, page_path):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors, blocked = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def route(r):
        if urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:  # the network is blocked: the book must not need it
            blocked.append(r.request.url)
            r.abort()
    page.route("**/*", route)
    page.goto(f"{server}/{page_path}.html", wait_until="load", timeout=LOAD_MS)
    page.wait_for_load_state("networkidle", timeout=LOAD_MS)
    return ctx, page, errors, blocked


@pytest.mark.parametrize("page_path", PAGES)
def test_page(browser, server, page_path):
    ctx, page, errors, blocked = open_page(browser, server, page_path)
    try:
        assert blocked == [], f"the page tried to reach the network: {blocked[:5]}"
        assert errors == [], f"JavaScript errors: {errors[:5]}"
        # images: every <img> exists on disk with non-zero size, and decoded
        for src, w in page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])"):
            assert w > 0, f"image {src[:80]} did not decode"
            if src.startswith("data:"):  # a scrubber's frame, inside the page (lib.scrubber)
                continue
            target = (HTML / page_path).parent / src.split("#")[0]
            assert target.exists() and target.stat().st_size > 0, f"missing image {src}"
        # figures: an alt text in words (the figure's titles, or its section), never a file name
        for src, alt in page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.alt])"):
            alt = (alt or "").strip()
            assert len(alt) >= 5 and not IMAGE_FILE.search(alt) and alt not in src, \
                f"image {src} has no alt text in words: {alt!r}"
        # math: MathJax (served by the book) typeset every formula; no raw $$ left in the text
        n_math = page.eval_on_selector_all(".math", "els => els.length")
        if n_math:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.document"
                                   " && document.querySelectorAll('mjx-container').length > 0", timeout=20000)
            assert page.eval_on_selector_all("mjx-container", "els => els.length") >= n_math
        text = page.evaluate("""() => {  // the prose and Markdown outputs, without code
            const main = (document.querySelector('main') || document.body).cloneNode(true);
            main.querySelectorAll('pre, code, .cell_input, mjx-container').forEach(e => e.remove());
            return main.innerText; }""")
        assert "$$" not in text, "raw $$ left in the page text"
        raw = re.search(r"(?<![\w$])\$[^$\s][^$\n]{0,80}\\[a-zA-Z]+[^$\n]{0,80}\$"  # $...\cmd...$
                        r"|(?<![\w$])\$[A-Za-z0-9][^$\s]{0,12}\$(?![\w$])", text)  # $t^2$, $x_0$
        assert not raw, f"raw inline $...$ math left: {raw.group(0)!r}"
        # exercise solutions: collapsed until clicked, open on a click
        sols = page.query_selector_all("div.solution.dropdown")
        for sol in sols:
            body = sol.query_selector(".admonition-title ~ *, section")
            assert body is not None and not body.is_visible(), "solution is visible before a click"
            sol.query_selector("button.toggle-button").click()
            page.wait_for_timeout(300)
            assert body.is_visible(), "solution did not open on a click"
        # Colab launch link of a notebook page
        if page_path.startswith("chapters/"):
            assert sols, "a chapter page has exercise solutions"
            href = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
            want = f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/{page_path}.ipynb"
            assert want in href, f"Colab link {href} should be {want}"
            assert (ROOT / f"{page_path}.ipynb").exists()
    finally:
        ctx.close()


CHAPTERS = [p for p in PAGES if p.startswith("chapters/")]


@pytest.mark.parametrize("page_path", CHAPTERS)
def test_figures_fit_the_column(browser, server, page_path):
    """No cell-output figure is shrunk below 60 % of its natural width (its text would be
    too small to read): a figure is drawn for the ~688-pixel column (lib.viz.COLUMN_INCHES)."""
    ctx, page, _, _ = open_page(browser, server, page_path)
    try:
        shown = page.eval_on_selector_all(".cell_output img", """els => els.map(e => [
            e.alt, e.naturalWidth, e.getBoundingClientRect().width])""")
        small = [f"{alt[:60]!r} at {w:.0f} of {nw} px" for alt, nw, w in shown if nw and w < MIN_SHOWN * nw]
        assert not small, f"{len(small)} figure(s) shrunk below {MIN_SHOWN:.0%} of their width: {small}"
    finally:
        ctx.close()


@pytest.mark.parametrize("page_path", CHAPTERS)
def test_code_fits_the_column(browser, server, page_path):
    """No code cell scrolls sideways: its lines (at most 88 characters, a hygiene test)
    fit the code block at the book's code font (_ext/static/workbook.css)."""
    ctx, page, _, _ = open_page(browser, server, page_path)
    try:
        sizes = page.eval_on_selector_all(".cell_input pre", """els => els.map(e => [
            e.scrollWidth, e.clientWidth, e.textContent.split("\\n")[0].slice(0, 50)])""")
        assert sizes, "no code cells found"
        wide = [f"{text!r}: {sw} > {cw} px" for sw, cw, text in sizes if sw > cw + 1]
        assert not wide, f"{len(wide)} code cell(s) scroll sideways: {wide[:5]}"
    finally:
        ctx.close()


@pytest.mark.parametrize("page_path", CHAPTERS[:1] + CHAPTERS[-1:])
def test_a_click_on_a_figure_opens_it_full_size(browser, server, page_path):
    ctx, page, errors, _ = open_page(browser, server, page_path)
    try:
        figs = page.query_selector_all(".cell_output a.workbook-zoom img")
        assert figs, "cell-output figures are wrapped in a zoom link"
        img = figs[0]
        href = img.evaluate("e => e.closest('a').getAttribute('href')")
        assert href == img.get_attribute("src") and ((HTML / page_path).parent / href).exists()
        natural = img.evaluate("e => e.naturalWidth")
        img.scroll_into_view_if_needed()
        img.click()
        big = page.wait_for_selector(".workbook-lightbox img", state="visible", timeout=5000)
        page.wait_for_function("() => document.querySelector('.workbook-lightbox img').complete")
        assert big.evaluate("e => e.naturalWidth") == natural
        assert abs(big.evaluate("e => e.getBoundingClientRect().width") - natural) <= 1, "shown at full size"
        assert big.get_attribute("alt") == img.get_attribute("alt")
        page.keyboard.press("Escape")
        assert page.query_selector(".workbook-lightbox") is None, "Escape closes the full-size view"
        assert errors == []
    finally:
        ctx.close()


def test_one_numbering_in_the_sidebar_and_the_exercise_boxes(browser, server):
    notebooks = toc_notebooks()
    numbers = nbtool.exercise_numbers(notebooks)
    for path in notebooks:
        page_path = path.relative_to(ROOT).with_suffix("").as_posix()
        if not (HTML / f"{page_path}.html").exists():
            continue
        ctx, page, _, _ = open_page(browser, server, page_path)
        try:
            ch, part = nbtool.title_number(nbformat.read(path, as_version=4))
            want = f"{ch}" if part is None else f"{ch}.{part}"
            h1 = page.inner_text("main h1").strip()
            assert h1.startswith(want + " "), (page_path, h1)
            side = page.eval_on_selector_all("nav.bd-links a.current", "els => els.map(e => e.innerText.trim())")
            assert any(t.startswith(want + " ") for t in side), (page_path, side)
            shown = page.eval_on_selector_all("div.exercise p.admonition-title",
                                              "els => els.map(e => e.innerText.trim())")
            boxes = [label for label, _ in nbtool.exercises(nbformat.read(path, as_version=4))]
            assert len(shown) == len(boxes), (page_path, shown)
            for label, title in zip(boxes, shown):
                assert title.startswith(f"Exercise {numbers[label]} "), (page_path, label, title)
        finally:
            ctx.close()


def test_screenshots(browser, server):
    SHOTS.mkdir(parents=True, exist_ok=True)
    chapters = [p for p in PAGES if p.startswith("chapters/")]
    for page_path in [PAGES[0]] + chapters[:1] + chapters[-1:]:
        ctx, page, _, _ = open_page(browser, server, page_path)
        out = SHOTS / (page_path.replace("/", "_") + ".png")
        page.screenshot(path=str(out), full_page=False)
        ctx.close()
        assert out.stat().st_size > 10_000


DARK = """() => {
  const lum = c => { const m = c.match(/[\\d.]+/g).map(Number);
    const [r, g, b] = m.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const alpha = c => { const m = c.match(/[\\d.]+/g).map(Number); return m.length > 3 ? m[3] : 1; };
  const background = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
    if (alpha(c) > 0.5) return c; } return getComputedStyle(document.body).backgroundColor; };
  const low = [];
  document.querySelectorAll('.cell_output pre, .cell_output td, .cell_output th, .cell_output caption, main p').forEach(e => {
    if (!e.innerText.trim() || !e.getClientRects().length) return;
    const a = lum(getComputedStyle(e).color), b = lum(background(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push([e.tagName, e.innerText.trim().slice(0, 40), ratio.toFixed(2)]);
  });
  const see = [];
  document.querySelectorAll('.cell_output img').forEach(img => {
    const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let clear = 0; for (let i = 3; i < d.length; i += 4) if (d[i] < 250) clear++;
    see.push([img.alt.slice(0, 50), clear]);
  });
  return {theme: document.documentElement.dataset.theme, low, see};
}"""


@pytest.mark.parametrize("page_path", CHAPTERS)
def test_dark_mode_keeps_figures_and_text_readable(browser, server, page_path):
    """In the theme's dark mode every output figure is opaque (no transparent background
    whose black text would vanish on the dark page) and the printed outputs, tables and
    prose keep a contrast of at least 4.5:1 (WCAG AA)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.add_init_script("localStorage.setItem('theme', 'dark'); localStorage.setItem('mode', 'dark');")
    page = ctx.new_page()
    page.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).hostname == "127.0.0.1" else r.abort())
    try:
        page.goto(f"{server}/{page_path}.html", wait_until="load", timeout=LOAD_MS)
        page.wait_for_load_state("networkidle", timeout=LOAD_MS)
        page.wait_for_function("() => [...document.querySelectorAll('.cell_output img')].every(i => i.complete)")
        got = page.evaluate(DARK)
        assert got["theme"] == "dark", "the page did not switch to dark mode"
        assert got["see"], "a chapter page has figures"
        clear = [(alt, n) for alt, n in got["see"] if n]
        assert not clear, f"figures with transparent pixels (unreadable on a dark page): {clear[:5]}"
        assert not got["low"], f"text below 4.5:1 contrast in dark mode: {got['low'][:5]}"
        if page_path == CHAPTERS[0]:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.query_selector(".cell_output img").scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "dark_mode.png"))
    finally:
        ctx.close()


def scrubber_pages():
    return [p for p in PAGES if (HTML / f"{p}.html").exists()
            and "workbook-scrubber" in (HTML / f"{p}.html").read_text(errors="ignore")]


SCRUBBER_PAGES = scrubber_pages() if HTML.exists() else []
MIN_SCRUBBER_PAGES = 10  # the lecture's processes and sweeps (issue 20): see lib/scrubber.py


def test_the_book_has_its_scrubbable_figures():
    assert len(SCRUBBER_PAGES) >= MIN_SCRUBBER_PAGES, f"scrubbable figures on {SCRUBBER_PAGES}"


@pytest.mark.parametrize("page_path", SCRUBBER_PAGES)
def test_scrubbers_move_and_play_with_no_kernel(browser, server, page_path):
    """Each scrubbable figure (lib.scrubber): the slider changes the picture and its label,
    play advances the frames, no JavaScript error, nothing fetched from outside."""
    ctx, page, errors, blocked = open_page(browser, server, page_path)
    try:
        boxes = page.query_selector_all("div.workbook-scrubber")
        assert boxes
        for k, box in enumerate(boxes):
            assert box.get_attribute("data-ready") == "1", "the scrubber's script ran"
            n = int(box.get_attribute("data-frames"))
            img, label = box.query_selector("img"), box.query_selector(".workbook-scrubber-label")
            first_src, first_label = img.get_attribute("src"), label.inner_text()
            box.scroll_into_view_if_needed()
            box.query_selector("input[type=range]").evaluate(
                "(r, i) => { r.value = i; r.dispatchEvent(new Event('input')); }", n - 1)
            assert img.get_attribute("src") != first_src, "moving the slider changes the frame"
            assert label.inner_text() != first_label and box.get_attribute("data-frame") == str(n - 1)
            if k < 2:
                SHOTS.mkdir(parents=True, exist_ok=True)
                name = page_path.replace("/", "_")
                box.screenshot(path=str(SHOTS / f"scrubber_{name}_{k}_last.png"))
            box.query_selector("button").click()  # at the end, play restarts from the first frame
            page.wait_for_function("b => +b.getAttribute('data-frame') >= Math.min(2, +b.getAttribute('data-frames') - 1)",
                                   arg=box, timeout=10000)
            box.query_selector("button").click()  # pause
            if k < 2:
                box.screenshot(path=str(SHOTS / f"scrubber_{name}_{k}_playing.png"))
        assert blocked == [] and errors == [], (blocked[:3], errors[:3])
    finally:
        ctx.close()


@pytest.mark.parametrize("page_path", CHAPTERS)
def test_page_weight(page_path):
    """A page with its figures (the scrubbers' frames are inside the HTML) stays under 5 MB."""
    page = HTML / f"{page_path}.html"
    text = page.read_text(errors="ignore")
    images = {m for m in re.findall(r'<img[^>]+src="([^"]+\.png)"', text)}
    total = page.stat().st_size + sum((page.parent / src).stat().st_size for src in images
                                      if (page.parent / src).exists())
    assert total < 5e6, f"{page_path}: {total / 1e6:.1f} MB"


FIGURE_SPAN = re.compile(r'<span class="workbook-figure" hidden data-figure="([^"]*)"></span>')


def test_the_appendix_shows_the_figures_of_the_execution_on_the_pages(browser, server):
    """Each page's recorded figures (left in it by lib.results.record) are the appendix's rows
    for that page, value for value: the appendix comes from the execution on the pages."""
    import html as html_lib
    import json

    import results_page

    on_pages = {}
    for nb in toc_notebooks():
        page = str(nb.relative_to(ROOT)).removesuffix(".ipynb")
        text = (HTML / f"{page}.html").read_text(errors="ignore")
        figures = [json.loads(html_lib.unescape(m)) for m in FIGURE_SPAN.findall(text)]
        if figures:
            # as a table cell shows a name: no backticks or braces (results_page.cell)
            on_pages[page] = [(f["name"].replace("`", "'").replace("{", "(").replace("}", ")"),
                               f"{results_page.fmt(f['value'])} {f['unit']}".strip()) for f in figures]
    assert len(on_pages) >= 15, f"only {len(on_pages)} pages carry their recorded figures"
    ctx, page, errors, blocked = open_page(browser, server, "appendix/results")
    rows = page.evaluate("""() => [...document.querySelectorAll('table')]
        .filter(t => [...t.rows[0].cells].map(c => c.textContent.trim()).join('|')
                     === 'chapter|figure|value|baseline|verdict')  // the headline figures table
        .flatMap(t => [...t.tBodies[0].rows].map(r => [
            r.cells[0].querySelector('a').getAttribute('href'),
            r.cells[1].textContent.trim(), r.cells[2].textContent.trim()]))""")
    ctx.close()
    in_appendix: dict[str, list] = {}
    for href, name, value in rows:
        target = re.sub(r"\.html(#.*)?$", "", href.removeprefix("../"))
        # Sphinx sets straight quotes as typographic ones in the page's prose and tables
        name = name.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
        in_appendix.setdefault(target, []).append((name, value))
    assert in_appendix == on_pages
    assert not errors and not blocked


def test_the_landing_page_shows_one_figure_per_chapter_linked_to_it(browser, server):
    ctx, page, errors, blocked = open_page(browser, server, toc_files()[0])
    try:
        cards = page.eval_on_selector_all(".workbook-gallery", """els => els.map(e => {
            const img = e.querySelector('img'), a = e.querySelector('a');
            return [a && a.getAttribute('href'), img && img.naturalWidth, img && img.alt,
                    e.innerText.trim()]; })""")
        chapters = [str(p.relative_to(ROOT)).removesuffix(".ipynb") for p in toc_notebooks()]
        linked = [re.sub(r"\.html(#.*)?$", "", href or "") for href, *_ in cards]
        assert linked == chapters, "one card per chapter, in reading order, linking to it"
        for href, width, alt, text in cards:
            assert width and width > 100, f"{href}: the card's picture did not load"
            assert len(alt) > 10 and len(text) > 5, f"{href}: card without alt text or title"
        assert not errors and not blocked
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".workbook-gallery").first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "landing_gallery.png"), full_page=False)
    finally:
        ctx.close()


# --- what a reader should never meet in an output -------------------------------------------

@pytest.mark.parametrize("page_path", PAGES)
def test_outputs_fit_the_column(browser, server, page_path):
    """No output line (printed text, a table, a Markdown output) is wider than the column:
    nothing in an output area scrolls sideways or spills over the column."""
    ctx, page, _, _ = open_page(browser, server, page_path)
    try:
        sizes = page.evaluate("""() => {
            const col = document.querySelector('main article') || document.querySelector('main');
            const right = col.getBoundingClientRect().right;
            return [...document.querySelectorAll(
                '.cell_output pre, .cell_output > .output, .cell_output table, main table')]
              .filter(e => e.getClientRects().length)
              .map(e => [e.tagName, e.scrollWidth, e.clientWidth, e.getBoundingClientRect().right - right,
                         (e.innerText || '').trim().split('\\n')[0].slice(0, 60)]); }""")
        wide = [f"{tag} {text!r}: {sw} > {cw} px" if sw > cw + 1 else f"{tag} {text!r}: {over:.0f} px past the column"
                for tag, sw, cw, over, text in sizes if sw > cw + 1 or over > 1]
        assert not wide, f"{len(wide)} output(s) wider than the column: {wide[:5]}"
    finally:
        ctx.close()


RESIDUE = {
    "raw Markdown emphasis": re.compile(r"(?<![\w*])\*{1,2}[A-Za-z][^*\n]{0,80}?\*{1,2}(?![\w*])"
                                        r"|(?<![\w])_{1,2}[A-Za-z][^_\n]{0,80}?[A-Za-z]_{1,2}(?![\w])"),
    "a config dict": re.compile(r"\{'\w+': "),
    "a module repr": re.compile(r"\b(Sequential|Conv2d|ConvTranspose2d|Linear|ModuleList|ModuleDict|"
                                r"BatchNorm2d|GroupNorm|LayerNorm|Embedding|Dropout)\("),
    "an object repr": re.compile(r"<(lib|torch|__main__)\.[\w.]+|object at 0x[0-9a-f]+"),
}


# an output block that is nothing but a number, a bool, None, a tensor or a tuple of them
BARE_VALUE = re.compile(r"\(?\s*((tensor\()?[-+]?(\d[\d.]*(e[-+]?\d+)?|nan|inf|True|False|None)\)?,?\s*)+\)?")


def test_residue_patterns_catch_what_they_name():
    found = {what for what, pat in RESIDUE.items()
             for text in ["the *training* set", "a __bold__ word", "{'steps': 200, 'lr': 0.001}",
                          "Sequential(\n  (0): Conv2d(1, 32, ...)", "<lib.nets.UNet object at 0x7f3a2c>"]
             if pat.search(text)}
    assert found == set(RESIDUE)
    clean = ["x_0 and x_t", "2 * 3 = 6", "p(x) * q(x)", "best in its column *", "snake_case_name"]
    assert not [t for t in clean if any(p.search(t) for p in RESIDUE.values())]
    assert all(BARE_VALUE.fullmatch(t) for t in ["0.0", "tensor(3.5000)", "(1.5, 2)", "True", "-3e-05"])
    assert not any(BARE_VALUE.fullmatch(t) for t in ["PSNR 25.3 dB", "0.0 %  (baseline 1.0)", "done"])


@pytest.mark.parametrize("page_path", PAGES)
def test_outputs_hold_no_residue(browser, server, page_path):
    """Outputs say what they mean: no raw `*`/`_` Markdown emphasis, no `nan` in a table,
    no Python repr of a config or a module (lib.results, lib.viz print them for readers)."""
    ctx, page, _, _ = open_page(browser, server, page_path)
    try:
        outputs = page.evaluate("""() => [...document.querySelectorAll('.cell_output')]
            .map(e => e.innerText)""")
        found = [f"{what}: {m.group(0)!r}" for text in outputs for what, pat in RESIDUE.items()
                 for m in pat.finditer(text)]
        assert not found, f"{len(found)} residue(s) in the outputs: {found[:6]}"
        blocks = page.evaluate("""() => [...document.querySelectorAll('.cell_output > .output')]
            .filter(e => e.getClientRects().length).map(e => e.innerText.trim())""")
        bare = [b for b in blocks if BARE_VALUE.fullmatch(b)]
        assert not bare, f"an output that is only a value (a cell ending in a call that returns it): {bare[:5]}"
        cells = page.eval_on_selector_all("main table td, main table th", "els => els.map(e => e.innerText.trim())")
        nans = [c for c in cells if re.search(r"\bnan\b", c, re.I)]
        pre = [m.group(0) for text in outputs for m in re.finditer(r"(?<![\w'\"])nan(?![\w'\"])", text, re.I)]
        assert not nans and not pre, f"'nan' shown in a table: {(nans + pre)[:5]}"
    finally:
        ctx.close()


# --- numbers in sentences are the run's recorded figures (lib.results.figure / say) ----------

RECORDS = ROOT / "_build" / "records" / os.environ.get(
    "WORKBOOK_RECORDS_PROFILE", "smoke" if "smoke" in HTML.parts else "full")
MIN_TAGGED_PAGES = 11  # pages whose headline sentence states recorded figures (results.say)
SHOWN = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?(?:e([+-]?\d+))?")


def shown_matches(text: str, want: float) -> bool:
    """Whether ``text`` (a number as formatted: '+0.52', '1,437', '1.2e-03', with a typographic
    minus) is ``want`` rounded to the digits shown."""
    t = text.strip().replace("\u2212", "-").replace(",", "")
    m = SHOWN.fullmatch(t)
    if not m:
        return False
    decimals = len(m.group(3) or "")
    exp = int(m.group(4) or 0)
    ulp = 10.0 ** (exp - decimals)
    return abs(float(t) - want) <= 0.5 * ulp * (1 + 1e-9) + 1e-12


def test_shown_matches_reads_numbers_as_formatted():
    assert shown_matches("25.50", 25.4999) and shown_matches("\u22120.50", -0.5) and shown_matches("+7.2", 7.25)
    assert shown_matches("1,437", 1437.2) and shown_matches("1.23e\u221203", 0.0012345)
    assert not shown_matches("25.5", 25.56) and not shown_matches("0.50", -0.5) and not shown_matches("n/a", 1)
    assert not shown_matches("1.23e-03", 0.00124)


def tagged_pages() -> list[str]:
    return [p for p in CHAPTERS if (HTML / f"{p}.html").exists()
            and 'class="workbook-number"' in (HTML / f"{p}.html").read_text(errors="ignore")]


def test_every_number_in_a_sentence_is_the_recorded_figure_of_the_run(browser, server):
    """Every number a page's sentence takes from a recorded figure (a span.workbook-number,
    lib.results.figure) equals that figure in the execution's records (_build/records/, the
    files the appendix is made from), rounded as shown: value, baseline, gain or ratio."""
    import json

    pages = tagged_pages()
    assert len(pages) >= MIN_TAGGED_PAGES, f"only {len(pages)} pages state recorded figures: {pages}"
    n, wrong = 0, []
    for page_path in pages:
        rec_file = RECORDS / f"{page_path}.ipynb.json"
        assert rec_file.exists(), f"no execution record {rec_file} for {page_path}"
        figures: dict[str, dict] = {}
        for f in json.loads(rec_file.read_text())["figures"]:
            figures[f["name"]] = f      # the last recorded under a name, as lib.results.figure
        ctx, page, _, _ = open_page(browser, server, page_path)
        try:
            spans = page.eval_on_selector_all("main span.workbook-number", """els => els.map(e => [
                e.dataset.record, e.dataset.field, e.innerText, e.getClientRects().length > 0])""")
        finally:
            ctx.close()
        assert spans, f"{page_path}: tagged numbers in the HTML file, none in the page"
        for name, field, text, visible in spans:
            n += 1
            f = figures.get(name)
            if f is None:
                wrong.append(f"{page_path}: {name!r} is not a recorded figure")
                continue
            want = {"value": f["value"], "baseline": f.get("baseline"),
                    "gain": f["value"] - f["baseline"] if "baseline" in f else None,
                    "ratio": f["value"] / f["baseline"] if f.get("baseline") else None}[field]
            if want is None or not visible or not shown_matches(text, want):
                wrong.append(f"{page_path}: {name!r} {field} shown as {text!r}, recorded {want!r}")
    assert not wrong, f"{len(wrong)} of {n} numbers differ from the records: {wrong[:6]}"


# --- screenshots for a person to look at -----------------------------------------------------

SHOT_PAGES = ["chapters/05-diffusion/digits", "chapters/06-gans/dcgan_latent",
              "chapters/10-applications/super_resolution", "chapters/04-autoregressive/pixelcnn_maskgit",
              "appendix/results"]


@pytest.mark.parametrize("page_path", SHOT_PAGES)
def test_screenshots_of_five_pages(browser, server, page_path):
    """The top of the page and the whole page at 1280x1000, in _build/screenshots/ (the issue's
    five pages); each whole page shows its figures loaded."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = ctx.new_page()
    page.route("**/*", lambda r: r.continue_() if urlparse(r.request.url).hostname == "127.0.0.1" else r.abort())
    try:
        page.goto(f"{server}/{page_path}.html", wait_until="load", timeout=LOAD_MS)
        page.wait_for_load_state("networkidle", timeout=LOAD_MS)
        page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)",
                               timeout=60000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        name = page_path.replace("/", "_")
        page.screenshot(path=str(SHOTS / f"{name}.png"))
        page.screenshot(path=str(SHOTS / f"{name}_full.png"), full_page=True)
        from PIL import Image
        with Image.open(SHOTS / f"{name}_full.png") as im:
            assert im.width == 1280 and im.height > 1000
    finally:
        ctx.close()
