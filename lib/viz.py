"""Figures: image grids, 2-D scatters, training curves, widgets with a static fallback
(introduced in chapter 1; used by every chapter).

Every widget in the book goes through :func:`interactive`, which first draws the
figure at the default values (this is what the HTML book shows), then, when a
live kernel can use it, displays the ipywidgets controls (ipywidgets 7.7 and 8).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import checks, runtime


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile ``images (N, C, H, W)`` in ``[-1, 1]`` into one array ``(rows*H, nrow*W, C)`` in ``[0, 1]``."""
    checks.images(images, name="images")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels to be shown, got {images.shape[1]}")
    x = ((images.detach().cpu().float() + 1) / 2).permute(0, 2, 3, 1).numpy()
    n, h, w, c = x.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / nrow))
    out = np.ones((rows * (h + pad) - pad, nrow * (w + pad) - pad, c))
    for i in range(n):
        r, col = divmod(i, nrow)
        out[r * (h + pad):r * (h + pad) + h, col * (w + pad):col * (w + pad) + w] = x[i]
    return out


def show_images(images: torch.Tensor, nrow: int | None = None, title: str | None = None,
                ax: plt.Axes | None = None, figsize: tuple | None = None) -> plt.Axes:
    """Show a batch of images ``(N, C, H, W)`` in ``[-1, 1]`` as one grid (grey for 1 channel)."""
    grid = image_grid(images, nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize or (min(12, 1 + grid.shape[1] / 12), min(12, 1 + grid.shape[0] / 12)))
    ax.imshow(grid[..., 0] if grid.shape[2] == 1 else grid, cmap="gray" if grid.shape[2] == 1 else None,
              vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]); ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


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
