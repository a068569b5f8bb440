"""Scrubbable figures: a sequence of frames with a slider and play/pause, no kernel needed.

A process (the forward diffusion over t, a sampling chain, GAN training) or a sweep (the
guidance scale, the VAE's beta) is shown as frames the reader can scrub::

    frames = [draw(t) for t in steps]          # matplotlib figures, or images
    viz.scrub(frames, labels=[f"t = {t}" for t in steps], title="forward diffusion")

The output is one self-contained piece of HTML: the first frame as an ``<img>`` (what a
reader without JavaScript, print, or a renderer without HTML sees), the other frames as
PNG data inside the page, a range slider, a play/pause button and the frame's label, and
a few lines of inline JavaScript (no CDN, nothing fetched). It works the same in the
static HTML book, in Jupyter and in Colab. Its PNG representation is the first frame.

Frames are PNGs at the figure's own size (matplotlib figures are drawn for the book's
column, :func:`lib.viz.fit_to_column`), so a page's weight is the sum of its frames;
:attr:`Scrubber.nbytes` says how much.
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from . import checks

MAX_FRAMES = 120

_counter = itertools.count()

# One copy of the behaviour per output; it only wires up scrubbers not wired yet, so
# several scrubbers on a page (or a re-run cell) are fine.
_JS = """(function () {
  document.querySelectorAll('div.workbook-scrubber:not([data-ready])').forEach(function (box) {
    box.setAttribute('data-ready', '1');
    var frames = JSON.parse(box.querySelector('script.workbook-scrubber-frames').textContent);
    var img = box.querySelector('img'), range = box.querySelector('input[type=range]');
    var play = box.querySelector('button'), label = box.querySelector('.workbook-scrubber-label');
    var wait = parseInt(box.getAttribute('data-interval'), 10) || 250, timer = null;
    function show(i) {
      i = Math.max(0, Math.min(frames.src.length - 1, i));
      range.value = i; img.src = 'data:image/png;base64,' + frames.src[i];
      label.textContent = frames.labels[i]; box.setAttribute('data-frame', i);
    }
    function stop() { clearInterval(timer); timer = null; play.textContent = '\\u25B6'; play.setAttribute('aria-label', 'play'); }
    range.addEventListener('input', function () { stop(); show(parseInt(range.value, 10)); });
    play.addEventListener('click', function () {
      if (timer) { stop(); return; }
      if (+range.value >= frames.src.length - 1) show(0);
      play.textContent = '\\u23F8'; play.setAttribute('aria-label', 'pause');
      timer = setInterval(function () {
        var i = +range.value + 1;
        if (i >= frames.src.length) { stop(); return; }
        show(i);
      }, wait);
    });
    show(0);
  });
})();"""

_CSS = (".workbook-scrubber{margin:.25rem 0 1rem}.workbook-scrubber img{display:block;max-width:100%;"
        "height:auto}.workbook-scrubber-controls{display:flex;align-items:center;gap:.6rem;"
        "margin-top:.3rem}.workbook-scrubber-controls input{flex:1 1 auto;max-width:420px}"
        ".workbook-scrubber-controls button{min-width:2.2rem;font-size:1rem;line-height:1.4}"
        ".workbook-scrubber-label{font-variant-numeric:tabular-nums;min-width:8rem}")


def _figure_png(fig: Figure) -> bytes:
    from . import viz  # viz re-exports scrub(); the figure helpers live there

    viz.fit_to_column(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=viz.DPI)  # no tight bbox: every frame the same size
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _image_png(x: torch.Tensor, name: str) -> bytes:
    from . import viz

    x = checks.images(x.unsqueeze(0) if x.dim() == 3 else x, name=name)
    if len(x) != 1:
        raise ValueError(f"{name} must be one image (C, H, W), got a batch of {len(x)}")
    grid = viz.image_grid(x, nrow=1, scale=viz._px_per_pixel(x.shape[-1]))
    arr = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


class Scrubber:
    """Frames (PNG bytes) with labels, shown with a slider and play/pause; see :func:`scrub`."""

    def __init__(self, frames: Sequence[bytes], labels: Sequence[str], title: str, interval_ms: int):
        self.frames, self.labels, self.title, self.interval_ms = list(frames), list(labels), title, interval_ms
        sizes = {Image.open(io.BytesIO(f)).size for f in self.frames}
        if len(sizes) != 1:
            raise ValueError(f"every frame must have the same size in pixels, got {sorted(sizes)}: "
                             "draw each figure with the same figsize and layout")
        self.size = sizes.pop()  # (width, height)

    @property
    def nbytes(self) -> int:
        """What the scrubber adds to a page: its frames as base64 text, in bytes."""
        return sum(len(base64.b64encode(f)) for f in self.frames)

    def __len__(self) -> int:
        return len(self.frames)

    def _repr_png_(self) -> bytes:
        return self.frames[0]

    def _repr_html_(self) -> str:
        src = [base64.b64encode(f).decode("ascii") for f in self.frames]
        data = json.dumps({"src": src, "labels": self.labels}).replace("</", "<\\/")
        w, h = self.size
        e = html.escape
        return (
            f'<div class="workbook-scrubber" id="workbook-scrubber-{next(_counter)}" '
            f'data-interval="{self.interval_ms}" data-frames="{len(src)}">'
            f"<style>{_CSS}</style>"
            f'<img src="data:image/png;base64,{src[0]}" width="{w}" height="{h}" alt="{e(self.title)}">'
            f'<div class="workbook-scrubber-controls">'
            f'<button type="button" aria-label="play">&#9654;</button>'
            f'<input type="range" min="0" max="{len(src) - 1}" step="1" value="0" '
            f'aria-label="{e(self.title)}: frame">'
            f'<span class="workbook-scrubber-label">{e(self.labels[0])}</span></div>'
            f'<script type="application/json" class="workbook-scrubber-frames">{data}</script>'
            f"<script>{_JS}</script></div>"
        )


def scrub(frames, labels: Sequence[str] | None = None, *, title: str, interval_ms: int = 300) -> Scrubber:
    """A scrubbable figure of ``frames``: a list of matplotlib figures (each drawn at the
    same size, then closed), a list of images ``(C, H, W)`` in ``[-1, 1]``, or a tensor
    ``(T, C, H, W)``. ``labels``: one short text per frame (default "1 / T", ...);
    ``title``: what the figure shows (the image's alt text and the slider's name);
    ``interval_ms``: time per frame when playing. Display the result (last expression of
    a cell, or ``IPython.display.display``)."""
    if not isinstance(title, str) or not title.strip():
        raise ValueError("scrub() needs a title in words (the figure's alt text)")
    if torch.is_tensor(frames):
        if frames.dim() != 4:
            raise ValueError(f"a tensor of frames must be (T, C, H, W), got shape {tuple(frames.shape)}")
        frames = list(frames)
    if not isinstance(frames, Sequence) or isinstance(frames, (str, bytes)):
        raise TypeError(f"frames must be a list of figures or images, got {type(frames).__name__}")
    if len(frames) < 2:
        raise ValueError(f"a scrubber needs at least 2 frames, got {len(frames)}")
    if len(frames) > MAX_FRAMES:
        raise ValueError(f"at most {MAX_FRAMES} frames (the page's weight), got {len(frames)}")
    if labels is None:
        labels = [f"{i + 1} / {len(frames)}" for i in range(len(frames))]
    labels = [str(s) for s in labels]
    if len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")
    checks.positive_int(interval_ms, "interval_ms")
    pngs = []
    for i, f in enumerate(frames):
        if isinstance(f, Figure):
            pngs.append(_figure_png(f))
        elif torch.is_tensor(f):
            pngs.append(_image_png(checks.finite(f, f"frames[{i}]"), f"frames[{i}]"))
        else:
            raise TypeError(f"frames[{i}] must be a matplotlib Figure or an image tensor, got {type(f).__name__}")
    return Scrubber(pngs, labels, title.strip(), interval_ms)


def rows_frame(rows: dict[str, torch.Tensor], title: str, scale: int = 4) -> Figure:
    """One frame of labelled image rows on one axes, sized in pixels (the same for every
    frame of a scrubber): ``rows`` maps a label to images ``(n, C, H, W)`` in ``[-1, 1]``,
    the same ``n`` in every row; ``scale`` screen pixels per image pixel (nearest
    neighbour). Cheaper than :func:`lib.viz.image_rows` (one axes), for many frames."""
    from . import viz
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("rows_frame() needs at least one row")
    sizes = {len(v) for v in rows.values()}
    if len(sizes) != 1:
        raise ValueError(f"every row must hold the same number of images, got {sorted(sizes)}")
    checks.positive_int(scale, "scale")
    grid = viz.image_grid(torch.cat([v.detach().cpu() for v in rows.values()]), nrow=sizes.pop(), pad=1)
    h, w = scale * grid.shape[0], scale * grid.shape[1]
    fig = plt.figure(figsize=(viz.COLUMN_INCHES, (h + 30) / viz.DPI))
    ax = fig.add_axes((1 - (w + 8) / viz.COLUMN_PX, 4 / (h + 30), w / viz.COLUMN_PX, h / (h + 30)))
    ax.imshow(grid[..., 0] if grid.shape[2] == 1 else grid, cmap="gray" if grid.shape[2] == 1 else None,
              vmin=0, vmax=1, interpolation="nearest")
    row_h = grid.shape[0] / len(rows)
    ax.set_yticks([(i + 0.5) * row_h for i in range(len(rows))], list(rows))
    ax.set_xticks([])
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_title(title)
    return fig
