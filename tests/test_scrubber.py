"""lib.scrubber (viz.scrub): frames, sizes, the static first frame, bad input refused.
Its behaviour in a browser (slider, play) is tested on the built book (tests_html)."""
import base64
import io
import json
import re

import matplotlib.pyplot as plt
import pytest
import torch
from PIL import Image

from lib import viz


def figures(n, size=(4, 2)):
    out = []
    for i in range(n):
        fig, ax = plt.subplots(figsize=size)
        ax.plot([0, 1], [0, i])
        ax.set_title(f"step {i}")
        out.append(fig)
    return out


def frames_of(html):
    data = re.search(r'<script type="application/json" class="workbook-scrubber-frames">(.*?)</script>', html, re.S)
    return json.loads(data.group(1))


def test_figures_become_same_size_frames_and_are_closed():
    figs = figures(5)
    s = viz.scrub(figs, labels=[f"t = {i}" for i in range(5)], title="a line that tilts")
    assert len(s) == 5 and all(not plt.fignum_exists(f.number) for f in figs)
    sizes = {Image.open(io.BytesIO(f)).size for f in s.frames}
    assert sizes == {s.size} and s.size[0] <= viz.COLUMN_PX
    assert len(set(s.frames)) == 5, "each frame differs"
    html = s._repr_html_()
    data = frames_of(html)
    assert data["labels"] == [f"t = {i}" for i in range(5)]
    assert [base64.b64decode(x) for x in data["src"]] == s.frames
    assert s.nbytes == sum(len(x) for x in data["src"])


def test_the_first_frame_is_the_static_picture():
    s = viz.scrub(torch.rand(4, 1, 8, 8) * 2 - 1, title="noise")
    html = s._repr_html_()
    img = re.search(r'<img src="data:image/png;base64,([^"]+)" width="(\d+)" height="(\d+)" alt="noise">', html)
    assert img and base64.b64decode(img.group(1)) == s.frames[0] == s._repr_png_()
    assert (int(img.group(2)), int(img.group(3))) == s.size
    assert 'max="3"' in html and ">1 / 4<" in html
    # an 8x8 image is enlarged (nearest neighbour) to be seen, not shown at 8 pixels
    assert s.size[0] >= 8 * viz.MIN_PX_PER_PIXEL
    assert "http" not in html.replace("data:image/png", ""), "nothing is fetched"


def test_images_as_a_list_and_rgb():
    imgs = [torch.zeros(3, 16, 16), torch.ones(3, 16, 16) * 0.5]
    s = viz.scrub(imgs, labels=["a", "b"], title="two colours")
    assert Image.open(io.BytesIO(s.frames[1])).mode == "RGB"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="title"):
        viz.scrub(torch.zeros(3, 1, 4, 4), title="")
    with pytest.raises(ValueError, match="at least 2 frames"):
        viz.scrub([], title="x")
    with pytest.raises(ValueError, match="at least 2 frames"):
        viz.scrub(torch.zeros(1, 1, 4, 4), title="x")
    with pytest.raises(ValueError, match="2 labels for 3 frames"):
        viz.scrub(torch.zeros(3, 1, 4, 4), labels=["a", "b"], title="x")
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        viz.scrub(torch.zeros(3, 4, 4), title="x")
    with pytest.raises(TypeError, match="Figure or an image tensor"):
        viz.scrub([1, 2], title="x")
    with pytest.raises(TypeError, match="list of figures or images"):
        viz.scrub("frames", title="x")
    with pytest.raises(ValueError, match="NaN|finite"):
        viz.scrub(torch.full((2, 1, 4, 4), float("nan")), title="x")
    with pytest.raises(ValueError, match=r"\[-1, 1\]|range"):
        viz.scrub(torch.full((2, 1, 4, 4), 3.0), title="x")
    with pytest.raises(ValueError, match="same size"):
        viz.scrub(figures(1, (4, 2)) + figures(1, (5, 2)), title="x")
    with pytest.raises(ValueError, match="at most"):
        viz.scrub(torch.zeros(__import__("lib.scrubber").scrubber.MAX_FRAMES + 1, 1, 2, 2), title="x")


def test_rows_frame_is_one_labelled_axes_of_fixed_pixel_size():
    rows = {"input": torch.zeros(4, 1, 8, 8), "output": torch.ones(4, 1, 8, 8) * 0.5}
    fig = viz.rows_frame(rows, "iteration 3", scale=4)
    assert len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["input", "output"]
    w, h = fig.get_size_inches() * viz.DPI
    assert round(w) == viz.COLUMN_PX and round(h) == 4 * (2 * 9 - 1) + 30
    a = viz.scrub([fig, viz.rows_frame(rows, "iteration 4")], title="two frames")
    assert len(a) == 2
    with pytest.raises(ValueError, match="same number of images"):
        viz.rows_frame({"a": torch.zeros(4, 1, 8, 8), "b": torch.zeros(3, 1, 8, 8)}, "x")
    assert viz.rows_frame({"rgb": torch.zeros(2, 3, 8, 8)}, "colour").axes[0].images[0].get_array().ndim == 3
    plt.close("all")
