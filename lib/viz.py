"""Figures: image grids, 2-D scatters, training curves, widgets with a static fallback
(introduced in chapter 1; used by every chapter).

Importing this module sets matplotlib's defaults to the book's ~688-pixel content
column (:data:`RC`: 6.9 in at 100 dpi, fonts of at least 10 pt). Small images are
shown enlarged by nearest neighbour (:func:`show_images`, :func:`image_rows`), at
4 to 8 screen pixels per image pixel. In a Jupyter kernel, every figure's PNG carries
:func:`describe` (its titles in words), which the book uses as the image's alt text.

Every widget in the book goes through :func:`interactive`, which first draws the
figure at the default values (this is what the HTML book shows), then, when a
live kernel can use it, displays the ipywidgets controls (ipywidgets 7.7 and 8).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torchvision
from IPython import get_ipython
from IPython.core.pylabtools import print_figure
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

from . import checks, runtime


# --- the book's column -----------------------------------------------------------------------
# sphinx-book-theme's content column is ~688 px wide; figures are drawn at 100 dpi, so a
# figure of COLUMN_INCHES fills it at its natural size (the inline backend crops with
# bbox_inches="tight" and pads 0.1 in on each side).
DPI = 100
COLUMN_PX = 688
COLUMN_INCHES = COLUMN_PX / DPI
MIN_PX_PER_PIXEL = 4   # a small image (8x8, 16x16, 32x32) is shown at least this much enlarged
MAX_PX_PER_PIXEL = 8
LINE_PX = 16  # one line of text in the default font size (10 pt at 100 dpi, with leading)
RC = {
    "figure.figsize": (COLUMN_INCHES - 0.2, 3.6),
    "figure.dpi": DPI,
    "savefig.dpi": "figure",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 12,
    # opaque white behind every figure: in the book's dark mode a transparent figure
    # would show its black text and axes on a dark page (a browser test checks)
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
}


def use_book_style() -> None:
    """Set matplotlib's defaults to the book's column: width, dpi, fonts of at least 10 pt."""
    plt.rcParams.update(RC)


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile ``images (N, C, H, W)`` in ``[-1, 1]`` into one array ``(rows*H', nrow*W', C)`` in ``[0, 1]``.

    ``nrow`` images per row (default: a square), ``pad`` white pixels between them
    (``torchvision.utils.make_grid``, without the outer border), ``scale`` an integer
    nearest-neighbour enlargement of every image (``H' = scale*H + pad``), so small
    images stay crisp when shown.
    """
    checks.images(images, name="images")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels to be shown, got {images.shape[1]}")
    checks.positive_int(scale, "scale")
    if nrow is not None:
        checks.positive_int(nrow, "nrow")
    x = ((images.detach().cpu().float() + 1) / 2).clamp(0, 1)
    if scale > 1:
        x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
    nrow = nrow or int(math.ceil(math.sqrt(len(x))))
    grid = torchvision.utils.make_grid(x, nrow=nrow, padding=pad, pad_value=1.0)
    if pad and len(x) > 1:  # make_grid returns a single image as it is, with no border
        grid = grid[:, pad:-pad, pad:-pad]
    return grid[: images.shape[1]].permute(1, 2, 0).numpy()


def _px_per_pixel(width: int, budget: int = COLUMN_PX - 24) -> int:
    """Integer screen pixels per image pixel for a grid ``width`` pixels wide in the column."""
    return int(max(1, min(MAX_PX_PER_PIXEL, budget // max(1, width))))


def _fit_nrow(n: int, nrow: int, w: int, pad: int, budget: int = COLUMN_PX - 24) -> int:
    """Images per row for a strip: fewer (balanced rows) when the column cannot show each
    image at least MIN_PX_PER_PIXEL screen pixels per image pixel (small images, up to
    32 pixels wide) or 96 pixels wide (larger ones)."""
    need = MIN_PX_PER_PIXEL * w if w <= 32 else 96
    fits = max(1, (budget + pad) // (need + pad))
    if nrow <= fits:
        return nrow
    rows = math.ceil(n / fits)
    return math.ceil(n / rows)


def _imshow(ax: plt.Axes, grid: np.ndarray) -> None:
    ax.imshow(grid[..., 0] if grid.shape[2] == 1 else grid, cmap="gray" if grid.shape[2] == 1 else None,
              vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]); ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def show_images(images: torch.Tensor, nrow: int | None = None, title: str | None = None,
                ax: plt.Axes | None = None, figsize: tuple | None = None) -> plt.Axes:
    """Show a batch of images ``(N, C, H, W)`` in ``[-1, 1]`` as one grid (grey for 1 channel).

    Without ``ax`` a figure is made to measure: each image pixel becomes 4 to 8 screen
    pixels (nearest neighbour) and the grid fits the book's column; a strip (one row,
    ``nrow >= N``) too long for that is split into balanced rows, while a grid with
    several rows keeps its ``nrow`` (its columns may mean something: digit k in column
    k). ``figsize`` overrides the measure.
    """
    checks.images(images, name="images")
    n, _, h, w = images.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    if ax is None and figsize is None:
        if nrow >= n:  # a strip: split it when it is too long for the column
            nrow = _fit_nrow(n, n, w, 1)
        cols = min(nrow, n)
        k = _px_per_pixel(cols * (w + 1) - 1)
        grid = image_grid(images, nrow, scale=k)
        fig = plt.figure(figsize=(grid.shape[1] / DPI, grid.shape[0] / DPI))
        ax = fig.add_axes((0, 0, 1, 1))
    else:
        grid = image_grid(images, nrow, scale=2 if max(h, w) <= 32 else 1)
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
    _imshow(ax, grid)
    if title:
        ax.set_title(title)
    return ax


def _text_px(text: str) -> float:
    """Width in screen pixels of ``text`` set in the default font size."""
    w, _, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(size=plt.rcParams["font.size"]), ismath=False)
    return w * DPI / 72


def image_rows(rows: dict[str, torch.Tensor], *, title: str | None = None,
               column_titles: Sequence[str] | None = None, nrow: int | None = None,
               labels: str = "left") -> list[plt.Axes]:
    """One labelled row of images per entry of ``rows`` (label -> ``(N, C, H, W)`` in ``[-1, 1]``).

    The common "method by method" or "step by step" figure: every row is one strip with
    its label at the left; ``column_titles`` (one per image) go above the first row;
    ``nrow`` caps the images per row (a longer entry wraps onto more lines). All rows
    share one pixel scale (4 to 8 screen pixels per image pixel), so images of the same
    size are drawn the same size and the figure fits the book's column.
    ``labels="above"`` sets each label above its row instead, left-aligned (for long
    labels such as prompts; a label may have several lines).
    Returns the rows' axes (like :func:`show_images`, not the figure: Jupyter would
    show a returned figure twice).
    """
    if not isinstance(rows, dict) or not rows:
        raise TypeError("rows must be a non-empty dict: label -> images (N, C, H, W)")
    for label, x in rows.items():
        checks.images(x, name=f"rows[{label!r}]")
    checks.choice(labels, ("left", "above"), "labels")
    if labels == "above" and column_titles is not None:
        raise ValueError("column_titles go with labels='left' (above, they would cover the first label)")
    n_max = max(len(x) for x in rows.values())
    if column_titles is not None and len(column_titles) != n_max:
        raise ValueError(f"column_titles has {len(column_titles)} entries for rows of up to {n_max} images")
    w_max = max(x.shape[3] for x in rows.values())
    above = labels == "above"
    # room for the labels: at the left, or above each row (LINE_PX a line of text)
    label_px = 0 if above else max(_text_px(str(k)) for k in rows) + 16
    heads = [(str(k).count("\n") + 1) * LINE_PX + 4 if above else 0 for k in rows]
    budget = int(COLUMN_PX - 24 - label_px)
    per_row = min(nrow or n_max, n_max)
    per_row = _fit_nrow(n_max, per_row, w_max, 1, budget)
    k = _px_per_pixel(per_row * (w_max + 1) - 1, budget)
    grids = {label: image_grid(x, per_row, scale=k) for label, x in rows.items()}
    width = max(g.shape[1] for g in grids.values())
    heights = [g.shape[0] for g in grids.values()]
    top = 30 if column_titles is not None else 0
    gap = 6
    total_h = sum(heights) + sum(heads) + gap * (len(heights) - 1) + top + (24 if title else 0)
    fig = plt.figure(figsize=((width + label_px) / DPI, total_h / DPI))
    y = total_h - (24 if title else 0) - top
    axes = []
    for i, ((label, g), head) in enumerate(zip(grids.items(), heads)):
        y -= head
        ax = fig.add_axes(((label_px) / (width + label_px), (y - g.shape[0]) / total_h,
                           g.shape[1] / (width + label_px), g.shape[0] / total_h))
        y -= g.shape[0] + gap
        axes.append(ax)
        _imshow(ax, g)
        if above:
            ax.set_title(str(label), loc="left", fontsize=plt.rcParams["font.size"], pad=3)
        else:
            ax.set_ylabel(str(label), rotation=0, ha="right", va="center", labelpad=6)
        if i == 0 and column_titles is not None:
            cell = g.shape[1] / min(per_row, len(column_titles)) if per_row else g.shape[1]
            ax.set_xticks([(j + 0.5) * cell - 0.5 for j in range(min(per_row, len(column_titles)))])
            ax.set_xticklabels([str(t) for t in column_titles[:per_row]])
            ax.xaxis.tick_top()
            ax.tick_params(axis="x", length=0, pad=2)
    if title:
        fig.suptitle(title, y=1.0, va="top")
    return axes


def describe(fig: plt.Figure) -> str:
    """A figure in words, from its own texts: the title, then the panels' titles (or axis
    labels). This is the alt text of the figure in the book (see :func:`_png_with_alt`)."""
    def clean(t: str) -> str:  # mathtext in words: "$x \\sim \\mathcal{N}(\\mu, 1)$" -> "x ~ N(mu, 1)"
        t = re.sub(r"\\(?:mathcal|mathbf|mathrm|text|bar|hat|tilde|operatorname)\{([^}]*)\}", r"\1", t)
        t = re.sub(r"\\(?:bar|hat|tilde)(?=\\)", "", t)  # \\bar\\alpha -> alpha
        t = t.replace("\\sim", "~").replace("\\to", "→").replace("\\times", "×")
        t = re.sub(r"\\([A-Za-z]+)", r"\1", t).replace("$", "").replace("{", "").replace("}", "")
        return " ".join(t.split())
    parts = []
    sup = getattr(fig, "_suptitle", None)
    head = clean(sup.get_text()) if sup is not None else ""
    for ax in fig.axes:
        t = clean(" ".join(ax.get_title(loc) for loc in ("left", "center", "right")))
        if not t:
            t = clean(" against ".join(s for s in (ax.get_ylabel(), ax.get_xlabel()) if s))
        if t and t not in parts:
            parts.append(t)
    text = head
    if parts:
        text += (": " if head else "") + "; ".join(parts)
    return (text[:297] + "...") if len(text) > 300 else text


def fit_to_column(fig: plt.Figure) -> plt.Figure:
    """Shrink a figure wider than the book's column to the column's width (aspect kept).

    Fonts keep their point size, so the text stays readable where the browser would
    otherwise scale the whole picture down; the layout engine (``layout="constrained"``
    or ``tight_layout``) re-runs at the new size. Figures that fit are left alone.
    """
    w, h = fig.get_size_inches()
    if w > COLUMN_INCHES:
        fig.set_size_inches(COLUMN_INCHES, h * COLUMN_INCHES / w)
    return fig


def _png_with_alt(fig: plt.Figure) -> str | None:
    """The inline backend's PNG, at most the column's width (:func:`fit_to_column`), with
    :func:`describe` stored in the PNG's "Description" text chunk; the book's Sphinx
    extension (_ext) turns it into the image's alt text."""
    fit_to_column(fig)
    text = describe(fig)
    return print_figure(fig, "png", base64=True, metadata={"Description": text} if text else None)


def _install_png_alt() -> None:
    """In a Jupyter kernel, replace the PNG formatter of matplotlib figures by :func:`_png_with_alt`."""
    ip = get_ipython()
    if ip is None or not hasattr(ip, "display_formatter"):
        return
    plt._get_backend_mod()  # load the inline backend first: it installs its own formatter
    ip.display_formatter.formatters["image/png"].for_type(Figure, _png_with_alt)


def scatter2d(points: torch.Tensor, ax: plt.Axes | None = None, title: str | None = None,
              c=None, s: float = 3, alpha: float = 0.5, lim: float | None = None, **kw) -> plt.Axes:
    """Scatter a 2-D point cloud ``(N, 2)`` with equal axes and labelled x1/x2."""
    checks.shape(points, (None, 2), "points")
    p = points.detach().cpu().numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, c=c, **kw)
    ax.set_aspect("equal")
    if lim is not None:
        ax.set_xlim(-lim, lim); ax.set_ylim(-lim, lim)
    ax.set_xlabel("$x_1$"); ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax


def plot_history(history: dict[str, Sequence[float]], ax: plt.Axes | None = None, smooth: int = 20,
                 title: str = "training curve", logy: bool = False) -> plt.Axes:
    """Plot each loss of a :func:`lib.train.train_loop` history against the step (moving average)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    for k, v in history.items():
        v = np.asarray(v, dtype=float)
        w = max(1, min(smooth, len(v) // 5 or 1))
        sm = np.convolve(v, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w - 1, len(v)), sm, label=k)
    ax.set_xlabel("step"); ax.set_ylabel("loss"); ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    return ax


@dataclass
class Slider:
    """A numeric control for :func:`interactive`: integers if all of lo, hi, step, value are ints."""
    lo: float
    hi: float
    step: float
    value: float
    description: str | None = None

    def __post_init__(self):
        if not self.lo <= self.value <= self.hi:
            raise ValueError(f"slider value {self.value} must lie in [{self.lo}, {self.hi}]")


@dataclass
class Choice:
    """A drop-down control for :func:`interactive`."""
    options: Sequence[Any]
    value: Any
    description: str | None = None

    def __post_init__(self):
        if self.value not in self.options:
            raise ValueError(f"choice value {self.value!r} must be one of {list(self.options)}")


def _widget(name: str, spec):
    if not isinstance(spec, (Slider, Choice)):
        raise TypeError(f"control {name!r} must be a viz.Slider or viz.Choice, got {type(spec).__name__}")
    import ipywidgets as w

    desc = spec.description or name
    if isinstance(spec, Choice):
        return w.Dropdown(options=list(spec.options), value=spec.value, description=desc)
    if isinstance(spec, Slider):
        if all(isinstance(v, int) for v in (spec.lo, spec.hi, spec.step, spec.value)):
            return w.IntSlider(min=spec.lo, max=spec.hi, step=spec.step, value=spec.value,
                               description=desc, continuous_update=False)
    return w.FloatSlider(min=spec.lo, max=spec.hi, step=spec.step, value=spec.value,
                         description=desc, continuous_update=False)


def interactive(fn: Callable[..., Any], **controls):
    """Draw ``fn(**defaults)`` as a static figure, then offer live controls if a kernel can use them.

    ``controls`` maps each keyword of ``fn`` to a :class:`Slider` or :class:`Choice`.
    The static figure is always drawn (the HTML book shows it); the widget is
    skipped in the static book build (``WORKBOOK_STATIC=1``). Returns the
    ipywidgets ``interactive`` object, or ``None``.
    """
    if not controls:
        raise ValueError("interactive() needs at least one control")
    for k, spec in controls.items():
        if not isinstance(spec, (Slider, Choice)):
            raise TypeError(f"control {k!r} must be a viz.Slider or viz.Choice, got {type(spec).__name__}")
    fn(**{k: spec.value for k, spec in controls.items()})
    plt.show()
    if runtime.static():  # no widget objects at all: nothing for the HTML page to load
        return None
    import ipywidgets
    from IPython.display import display

    box = ipywidgets.interactive(fn, **{k: _widget(k, spec) for k, spec in controls.items()})
    display(box)
    return box


use_book_style()
_install_png_alt()

from .scrubber import Scrubber, rows_frame, scrub  # noqa: E402  (scrubbable figures)
