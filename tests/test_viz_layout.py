"""lib.viz: the book's column (figure defaults), image grids sized for small images,
labelled rows of images, and figure descriptions (the alt text of the book's images)."""
import base64
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from lib import viz


def test_importing_viz_sets_the_books_figure_defaults():
    assert plt.rcParams["figure.dpi"] == viz.DPI == 100
    w, _ = plt.rcParams["figure.figsize"]
    assert viz.COLUMN_PX - 30 <= w * viz.DPI <= viz.COLUMN_PX  # + 0.1 in padding each side <= column
    for key in ("font.size", "xtick.labelsize", "ytick.labelsize", "legend.fontsize", "axes.labelsize"):
        assert float(plt.rcParams[key]) >= 10, key


def test_image_grid_is_make_grid_without_the_outer_border_and_scales_by_nearest_neighbour():
    x = torch.linspace(-1, 1, 6 * 16).reshape(6, 1, 4, 4)
    grid = viz.image_grid(x, nrow=3, pad=1)
    assert grid.shape == (9, 14, 1) and grid.min() >= 0 and grid.max() <= 1
    assert np.allclose(grid[:4, :4, 0], ((x[0, 0] + 1) / 2).numpy())
    assert np.all(grid[4, :, 0] == 1) and np.all(grid[:, 4, 0] == 1)  # white separators
    big = viz.image_grid(x, nrow=3, pad=1, scale=4)
    assert big.shape == (2 * 16 + 1, 3 * 16 + 2, 1)
    assert np.allclose(big[:16:4, :16:4, 0], grid[:4, :4, 0]) and np.allclose(big[:4, :4, 0], grid[0, 0, 0])
    assert viz.image_grid(torch.zeros(2, 3, 5, 5), nrow=2, pad=0).shape == (5, 10, 3)
    with pytest.raises(ValueError, match="scale"):
        viz.image_grid(x, scale=0)


@pytest.mark.parametrize("size", [8, 16, 32])
def test_small_images_get_at_least_four_screen_pixels_per_pixel_and_fit_the_column(size):
    for n, nrow in ((1, None), (16, None), (5, 5), (64, 8)):
        ax = viz.show_images(torch.zeros(n, 1, size, size), nrow=nrow)
        fig = ax.figure
        shown_w = fig.get_size_inches()[0] * fig.dpi * ax.get_position().width
        cols = min(nrow or int(np.ceil(np.sqrt(n))), n)
        per_pixel = shown_w / (cols * size)  # screen pixels per image pixel (separators aside)
        assert shown_w <= viz.COLUMN_PX, (size, n, shown_w)
        if size * cols * 4 <= viz.COLUMN_PX - 24:  # what fits the column at 4x
            assert per_pixel >= 4, (size, n, nrow, per_pixel)
        plt.close(fig)


def test_a_long_strip_is_split_into_rows_but_a_grid_keeps_its_columns():
    ax = viz.show_images(torch.zeros(12, 1, 16, 16), nrow=12)
    h, w = ax.get_images()[0].get_array().shape[:2]
    assert h * 3 < w < h * 4  # 2 rows of 6 instead of 1 row of 12 (whose pixels would be < 4 px)
    px = ax.figure.get_size_inches()[0] * ax.figure.dpi / (6 * 17)
    assert px >= 4
    plt.close("all")
    ax = viz.show_images(torch.zeros(60, 1, 16, 16), nrow=10)  # digit k in column k: kept
    h, w = ax.get_images()[0].get_array().shape[:2]
    assert abs(w / h - 10 / 6) < 0.05
    plt.close("all")
    ax = viz.show_images(torch.zeros(4, 3, 8, 8), title="t")  # the old call still works
    assert ax.get_title() == "t"
    fig, axes = plt.subplots(1, 2)
    assert viz.show_images(torch.zeros(4, 1, 8, 8), ax=axes[1]) is axes[1]
    plt.close("all")


def test_image_rows_labels_each_row_and_shares_one_pixel_scale():
    rows = {"DDPM": torch.zeros(8, 1, 16, 16), "DDIM, 10 steps": torch.ones(8, 1, 16, 16) * 0.5}
    axes = viz.image_rows(rows, title="samples", column_titles=[f"t={i}" for i in range(8)])
    fig = axes[0].figure
    assert [a.get_ylabel() for a in axes] == list(rows)
    assert [t.get_text() for t in axes[0].get_xticklabels()] == [f"t={i}" for i in range(8)]
    assert axes[0].get_images()[0].get_array().shape == axes[1].get_images()[0].get_array().shape
    assert fig.get_size_inches()[0] * fig.dpi <= viz.COLUMN_PX
    assert viz.describe(fig) == "samples: DDPM; DDIM, 10 steps"
    per_pixel = axes[0].get_position().width * fig.get_size_inches()[0] * fig.dpi / (8 * 16)
    assert per_pixel >= 4
    plt.close("all")
    with pytest.raises(TypeError, match="non-empty dict"):
        viz.image_rows({})
    with pytest.raises(ValueError, match="column_titles"):
        viz.image_rows(rows, column_titles=["a"])
    with pytest.raises(ValueError):
        viz.image_rows({"bad": torch.zeros(2, 16, 16)})


def test_describe_and_the_png_it_goes_into():
    fig, ax = plt.subplots(1, 2)
    fig.suptitle(r"forward process $q(x_t | x_0)$")
    ax[0].set_title("t = 0")
    ax[1].set_xlabel("step"); ax[1].set_ylabel("loss")
    assert viz.describe(fig) == "forward process q(x_t | x_0): t = 0; loss against step"
    png = viz._png_with_alt(fig)
    assert Image.open(io.BytesIO(base64.b64decode(png))).info["Description"] == viz.describe(fig)
    plt.close("all")
    fig, ax = plt.subplots()
    assert viz.describe(fig) == ""
    assert "Description" not in Image.open(io.BytesIO(base64.b64decode(viz._png_with_alt(fig)))).info
    plt.close("all")


def test_a_figure_wider_than_the_column_is_shown_at_the_columns_width():
    fig, ax = plt.subplots(1, 6, figsize=(16, 3), layout="constrained")
    for a in ax:
        a.imshow(np.zeros((8, 8)))
        a.set_title("panel")
    png = Image.open(io.BytesIO(base64.b64decode(viz._png_with_alt(fig))))
    # natural width at most the column plus the tight bbox's padding; aspect kept
    assert png.width <= viz.COLUMN_PX + 30
    assert fig.get_size_inches()[1] == pytest.approx(3 * viz.COLUMN_INCHES / 16)
    plt.close("all")
    fig, _ = plt.subplots(figsize=(4, 3))
    viz.fit_to_column(fig)
    assert tuple(fig.get_size_inches()) == (4, 3)  # a figure that fits is left alone
    plt.close("all")


def test_figures_have_an_opaque_background_for_dark_mode():
    """What the inline backend writes (print_figure, as Jupyter and the book do) is opaque
    white behind the axes: on a dark page a transparent PNG would hide its black text."""
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    ax.set_title("a title")
    viz.show_images(torch.zeros(2, 1, 4, 4), nrow=2, title="images")
    figs = [fig, plt.gcf()]
    for f in figs:
        buf = io.BytesIO()
        f.canvas.print_figure(buf, format="png", bbox_inches="tight")
        rgba = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGBA"))
        assert rgba[..., 3].min() == 255, "every pixel is opaque"
        assert (rgba[0, 0, :3] == 255).all(), "the background is white"
    plt.close("all")


def test_a_single_image_keeps_every_pixel():
    """make_grid adds no border around one image: image_grid must not crop one off."""
    x = torch.linspace(-1, 1, 35).reshape(1, 1, 7, 5)
    grid = viz.image_grid(x, pad=1)
    assert grid.shape == (7, 5, 1)
    assert np.allclose(grid[..., 0], ((x[0, 0] + 1) / 2).numpy())
    assert viz.image_grid(x, pad=2, scale=3).shape == (21, 15, 1)


def test_image_rows_with_labels_above_each_row():
    titles = ['"a red circle"\nright in 3/4', '"a blue square"\nright in 1/4']
    rows = {t: torch.zeros(4, 3, 32, 32) for t in titles}
    axes = viz.image_rows(rows, title="text-to-image", labels="above")
    fig = axes[0].figure
    assert [a.get_title(loc="left") for a in axes] == titles
    assert [a.get_ylabel() for a in axes] == ["", ""]
    assert fig.get_size_inches()[0] * fig.dpi <= viz.COLUMN_PX
    top0, bottom0 = axes[0].get_position().y1, axes[0].get_position().y0
    assert axes[1].get_position().y1 < bottom0 < top0  # the second row (and its label) below
    per_pixel = axes[0].get_position().width * fig.get_size_inches()[0] * fig.dpi / (4 * 32)
    assert per_pixel >= 4
    plt.close("all")
    with pytest.raises(ValueError, match="labels"):
        viz.image_rows(rows, labels="right")
    with pytest.raises(ValueError, match="column_titles"):
        viz.image_rows(rows, labels="above", column_titles=["a"] * 4)
