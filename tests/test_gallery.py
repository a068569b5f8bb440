"""tools/gallery.py: the landing page's cards, from the book's own execution."""
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import execute  # noqa: E402
import gallery  # noqa: E402

FIGURE = """import matplotlib.pyplot as plt
for colour in ("red", "blue"):   # the kernel's inline backend: one PNG output per show()
    fig, ax = plt.subplots(figsize=(9, 3), dpi=100)
    ax.imshow([[1, 1], [1, 1]], cmap="Reds" if colour == "red" else "Blues", vmin=0, vmax=1,
              aspect="auto")
    plt.show()"""


def _notebook(path, tag):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 3. A chapter"),
                                         nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell(FIGURE)])
    nb.cells[2].metadata["tags"] = [tag]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_cards_show_the_tagged_figure_of_the_execution_and_the_first_claim(tmp_path):
    (tmp_path / "lib").mkdir()
    nbs = [_notebook(tmp_path / "chapters" / "a.ipynb", "gallery"),
           _notebook(tmp_path / "chapters" / "b.ipynb", "gallery-last")]
    done, _ = execute.run(nbs, profile="smoke", cache_path=tmp_path / "cache", jobs=2, threads=1,
                          timeout=120, records=tmp_path / "_build" / "records", root=tmp_path)
    assert all(r["error"] is None for r in done)
    rec_path = tmp_path / "_build" / "records" / "smoke" / "chapters" / "a.ipynb.json"
    rec = json.loads(rec_path.read_text())
    rec["figures"] = [{"name": "memoriser", "value": 1.0, "unit": "", "kind": "reference",
                       "baseline": 2.0, "baseline_name": "x", "higher_is_better": True},
                      {"name": "FDD", "value": 12.34, "unit": "", "baseline": 20.0,
                       "baseline_name": "per-class Gaussians", "higher_is_better": False}]
    rec_path.write_text(json.dumps(rec))
    cards = gallery.build("smoke", tmp_path / "cache", out=tmp_path / "gallery", root=tmp_path,
                          notebooks=nbs)
    assert [c["doc"] for c in cards] == ["chapters/a", "chapters/b"]
    assert cards[0]["headline"] == "FDD: **12.3** (per-class Gaussians: 20)"   # the first claim
    assert cards[1]["headline"] == ""                                            # no figures
    assert gallery.headline({"figures": [{"name": "floor", "value": 7.6, "unit": ""},
                                         {"name": "sum", "value": 1.0, "unit": "", "baseline": 0.99,
                                          "baseline_name": "the slide"}]}) == "sum: **1** (the slide: 0.99)"
    assert gallery.headline({"figures": [{"name": "floor", "value": 7.6, "unit": "s"}]}) == "floor: **7.6 s**"
    from PIL import Image
    reds, blues = (Image.open(tmp_path / "gallery" / f"{n}.png").convert("RGB") for n in ("a", "b"))
    assert reds.width == blues.width == gallery.THUMB_WIDTH                     # 900 px scaled down
    r, g, b = reds.resize((1, 1), Image.BOX).getpixel((0, 0))
    assert r > b                          # "gallery": the cell's first figure (the red one)
    r, g, b = blues.resize((1, 1), Image.BOX).getpixel((0, 0))
    assert b > r                          # "gallery-last": its last (the blue one)
    inc = (tmp_path / "gallery" / "gallery.inc").read_text()
    assert inc.count(":::{grid-item-card}") == 2 and ":link: chapters/a" in inc
    assert ":img-top: gallery/a.png" in inc and ":img-alt: a: a figure" in inc


def test_every_notebook_of_the_book_has_one_gallery_figure():
    from toc import toc_notebooks
    for nb_path in toc_notebooks():
        i, tag = gallery.gallery_cell(nbformat.read(nb_path, as_version=4))
        assert tag in gallery.TAGS, nb_path


def test_a_notebook_without_or_with_two_gallery_cells_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_code_cell("2")])
    with pytest.raises(ValueError, match="exactly one code cell tagged"):
        gallery.gallery_cell(nb)
    nb.cells[0].metadata["tags"] = ["gallery"]
    nb.cells[1].metadata["tags"] = ["gallery-last"]
    with pytest.raises(ValueError, match="exactly one code cell tagged"):
        gallery.gallery_cell(nb)
