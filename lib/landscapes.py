"""Procedural landscapes: a semantic layout, an appearance (style) and scene attributes
(time of day, weather), rendered separately so that one layout can be drawn in many styles
and under many attributes -- the ground truth that chapter 10's semantic image synthesis
(layout -> image) and scene-attribute editing (day -> night, clear -> snow) are measured
against.

Read top to bottom: the words (:data:`CLASSES`, :data:`TIMES`, :data:`WEATHERS`),
:class:`Layout` and :func:`sample_layout`, :func:`layout_labels` (the class of every
pixel) and :func:`one_hot`, :class:`Style` and :func:`sample_style`, :func:`render` (the
clear-day look, then the time of day, then the weather) and the data set
:func:`landscapes`. Images are float32 ``(3, size, size)`` in ``[-1, 1]``; label maps are
int64 ``(size, size)`` with values in ``range(len(CLASSES))``.

A layout is a sky above a horizon, an optional mountain ridge rising from the horizon,
grass below it, an optional lake (an ellipse in the grass) and up to three trees
(triangles standing on the grass). Every random texture (grass, ripples, stars, snow) is
drawn from the layout's own ``seed``, so re-rendering the same layout and style under
another attribute changes only what the attribute changes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import checks

CLASSES = ("sky", "mountain", "grass", "water", "tree")
TIMES = ("day", "sunset", "night")
WEATHERS = ("clear", "fog", "snow")
SKY, MOUNTAIN, GRASS, WATER, TREE = range(len(CLASSES))
SUPERSAMPLE = 2  # images are drawn at 2x and averaged: soft region edges


@dataclass(frozen=True)
class Layout:
    """Where the regions are, in units of the image side (``y`` grows downwards).

    ``horizon``: the sky/ground line; ``ridge``: ``(height, (a1, f1, p1), (a2, f2, p2))`` of
    the mountain's top edge above the horizon (two sinusoids), or ``None``; ``lake``:
    ``(cx, cy, rx, ry)`` of an ellipse of water, or ``None``; ``trees``: ``(x, base, h, w)``
    per tree; ``seed``: the textures' seed."""

    horizon: float
    ridge: tuple | None
    lake: tuple | None
    trees: tuple
    seed: int


@dataclass(frozen=True)
class Style:
    """The clear-day appearance: an RGB colour in ``[0, 1]`` per class (the sky's is its
    colour at the top; it pales towards the horizon) and a texture strength."""

    sky: tuple
    mountain: tuple
    grass: tuple
    water: tuple
    tree: tuple
    texture: float


def sample_layout(rng: np.random.Generator) -> Layout:
    """A random layout: horizon in [0.4, 0.6], a ridge with probability 0.75, a lake with
    probability 0.6, zero to three trees."""
    horizon = float(rng.uniform(0.4, 0.6))
    ridge = None
    if rng.random() < 0.75:
        waves = tuple(
            (float(rng.uniform(0.03, 0.08)), float(f), float(rng.uniform(0, 2 * np.pi)))
            for f in (rng.uniform(1.0, 2.5), rng.uniform(3.0, 6.0))
        )
        ridge = (float(rng.uniform(0.1, horizon - 0.15)), *waves)
    lake = None
    if rng.random() < 0.6:
        ry = float(rng.uniform(0.06, 0.12))
        cy = float(rng.uniform(horizon + ry + 0.03, 0.95 - ry))
        lake = (float(rng.uniform(0.3, 0.7)), cy, float(rng.uniform(0.15, 0.3)), ry)
    trees = []
    for _ in range(int(rng.integers(0, 4))):
        x, base = float(rng.uniform(0.08, 0.92)), float(rng.uniform(horizon + 0.08, 0.9))
        if lake is not None and _in_ellipse(x, base, lake, margin=0.05):
            continue  # no tree stands in the lake
        trees.append((x, base, float(rng.uniform(0.15, 0.3)), float(rng.uniform(0.05, 0.09))))
    return Layout(horizon, ridge, lake, tuple(trees), int(rng.integers(0, 2**31 - 1)))


def _in_ellipse(x, y, lake, margin: float = 0.0):
    cx, cy, rx, ry = lake
    return ((x - cx) / (rx + margin)) ** 2 + ((y - cy) / (ry + margin)) ** 2 <= 1.0


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size
    return np.meshgrid(c, c, indexing="xy")  # x, y: (size, size), pixel centres


def _labels(layout: Layout, size: int) -> np.ndarray:
    x, y = _grid(size)
    lab = np.where(y < layout.horizon, SKY, GRASS)
    if layout.ridge is not None:
        height, *waves = layout.ridge
        top = layout.horizon - height - sum(a * np.sin(2 * np.pi * f * x + p) for a, f, p in waves)
        lab = np.where((y >= top) & (y < layout.horizon), MOUNTAIN, lab)
    if layout.lake is not None:
        lab = np.where(_in_ellipse(x, y, layout.lake), WATER, lab)
    for tx, base, h, w in layout.trees:
        half = w * (y - base + h) / h  # a triangle: apex at (tx, base - h), base width 2w
        lab = np.where((y <= base) & (y >= base - h) & (np.abs(x - tx) <= half), TREE, lab)
    return lab


def layout_labels(layout: Layout, size: int = 32) -> torch.Tensor:
    """The class index of every pixel: int64 ``(size, size)``."""
    return torch.from_numpy(_labels(layout, checks.positive_int(size, "size"))).long()


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    """Label maps ``(N, H, W)`` or ``(H, W)`` -> float one-hot ``(N, C, H, W)`` or
    ``(C, H, W)`` with ``C = len(CLASSES)``."""
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        raise TypeError(f"labels must be an int64 tensor of class indices, got {type(labels).__name__}"
                        + (f" of {labels.dtype}" if isinstance(labels, torch.Tensor) else ""))
    if labels.dim() not in (2, 3):
        raise ValueError(f"labels must be (H, W) or (N, H, W), got shape {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ValueError(f"labels must lie in 0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    out = torch.nn.functional.one_hot(labels, len(CLASSES)).float()
    return out.permute(2, 0, 1) if labels.dim() == 2 else out.permute(0, 3, 1, 2)


def _jitter(rng, rgb, amount):
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0.0, 1.0)) for c in rgb)


def sample_style(rng: np.random.Generator) -> Style:
    """A random clear-day appearance around the natural colours of each class."""
    return Style(
        sky=_jitter(rng, (0.25, 0.5, 0.9), 0.12),
        mountain=_jitter(rng, (0.45, 0.4, 0.42), 0.15),
        grass=_jitter(rng, (0.3, 0.62, 0.22), 0.15),
        water=_jitter(rng, (0.15, 0.35, 0.55), 0.1),
        tree=_jitter(rng, (0.1, 0.35, 0.12), 0.08),
        texture=float(rng.uniform(0.04, 0.12)),
    )


def render(layout: Layout, style: Style, time: str = "day", weather: str = "clear",
           size: int = 32) -> torch.Tensor:
    """Draw ``layout`` in ``style`` at ``time`` of day under ``weather``: ``(3, size, size)``
    in ``[-1, 1]``. The same layout and style under other attributes differ only by what
    the attributes change (the textures come from ``layout.seed``)."""
    checks.choice(time, TIMES, "time")
    checks.choice(weather, WEATHERS, "weather")
    s = checks.positive_int(size, "size") * SUPERSAMPLE
    _, y = _grid(s)
    lab = _labels(layout, s)
    tex = np.random.default_rng(layout.seed)
    noise = tex.standard_normal((s, s))
    h = layout.horizon
    below = np.clip((y - h) / max(1 - h, 1e-3), 0, 1)  # 0 at the horizon, 1 at the bottom

    # The sky: the time of day sets its colours, top -> horizon.
    up = np.clip(y / h, 0, 1)[..., None]  # 0 at the top, 1 at the horizon
    top, low = {
        "day": (np.array(style.sky), 0.5 * np.array(style.sky) + 0.5),
        "sunset": (np.array([0.35, 0.2, 0.45]), np.array([1.0, 0.6, 0.25])),
        "night": (np.array([0.02, 0.03, 0.1]), np.array([0.08, 0.1, 0.22])),
    }[time]
    sky = (1 - up) * top + up * low
    if time == "night":  # stars, fixed by the layout's seed
        sky = sky + (tex.random((s, s)) > 0.985)[..., None] * 0.8

    # The ground under clear daylight, each class with its texture.
    colour = {c: np.array(getattr(style, c)) for c in CLASSES[1:]}
    img = sky.copy()
    shade = 1.0 + style.texture * noise[..., None]
    img[lab == MOUNTAIN] = (colour["mountain"] * (1.1 - 0.3 * (1 - below[lab == MOUNTAIN]))[..., None]
                            * shade[lab == MOUNTAIN])
    grass = colour["grass"] * (0.85 + 0.3 * below)[..., None] * shade
    img[lab == GRASS] = grass[lab == GRASS]
    ripples = 0.08 * np.sin(2 * np.pi * 12 * y + 0.5 * noise)[..., None]
    water = 0.55 * colour["water"] + 0.45 * low + ripples  # reflects the horizon's light
    img[lab == WATER] = water[lab == WATER]
    img[lab == TREE] = (colour["tree"] * shade)[lab == TREE]

    # The light of the time of day on the ground (the sky already has its own).
    ground = lab != SKY
    light = {"day": np.ones(3), "sunset": np.array([1.0, 0.72, 0.55]),
             "night": np.array([0.18, 0.22, 0.38])}[time]
    img[ground] = img[ground] * light

    # Weather: snow whitens the flat ground and the tree tops; fog fades with distance.
    if weather == "snow":
        white = np.array([0.92, 0.94, 0.98]) * light
        flat = (lab == GRASS) | (lab == MOUNTAIN)
        img[flat] = (0.85 * white + 0.15 * img[flat]) * (1 + 0.5 * style.texture * noise[flat])[..., None]
        img[lab == SKY] = 0.5 * img[lab == SKY] + 0.5 * np.array([0.7, 0.72, 0.76]) * light
        flakes = (tex.random((s, s)) > 0.97)[..., None]
        img = np.where(flakes, 0.5 * img + 0.5 * white, img)
    elif weather == "fog":
        grey = np.array([0.78, 0.8, 0.82]) * (0.5 + 0.5 * light)
        f = np.where(lab == SKY, 0.85, 0.8 * (1 - below))[..., None]
        img = (1 - f) * img + f * grey

    img = torch.from_numpy(np.clip(img, 0, 1)).float().permute(2, 0, 1)
    img = torch.nn.functional.avg_pool2d(img[None], SUPERSAMPLE)[0]
    return img * 2 - 1


def landscapes(n: int, size: int = 32, seed: int = 0, times=TIMES, weathers=WEATHERS) -> dict:
    """``n`` random landscapes: layouts, styles and attributes drawn with ``seed``.

    Returns a dict with ``images`` ``(n, 3, size, size)`` in [-1, 1], ``labels`` ``(n, size,
    size)`` int64, ``time`` and ``weather`` ``(n,)`` int64 indices into :data:`TIMES`/:data:`WEATHERS`
    (each drawn uniformly from the given ``times``/``weathers``), and the ``layouts``/``styles`` lists so
    that any scene can be re-rendered under another attribute with :func:`render`."""
    n = checks.positive_int(n, "n")
    for value in times:
        checks.choice(value, TIMES, "times")
    for value in weathers:
        checks.choice(value, WEATHERS, "weathers")
    rng = np.random.default_rng(seed)
    layouts = [sample_layout(rng) for _ in range(n)]
    styles = [sample_style(rng) for _ in range(n)]
    t = rng.integers(0, len(times), n)
    w = rng.integers(0, len(weathers), n)
    images = torch.stack([render(lay, sty, times[i], weathers[j], size)
                          for lay, sty, i, j in zip(layouts, styles, t, w)])
    labels = torch.stack([layout_labels(lay, size) for lay in layouts])
    time_idx = torch.tensor([TIMES.index(times[i]) for i in t])
    weather_idx = torch.tensor([WEATHERS.index(weathers[j]) for j in w])
    return {"images": images, "labels": labels, "time": time_idx, "weather": weather_idx,
            "layouts": layouts, "styles": styles}



def crops(n: int, size: int = 32, zoom: int = 2, seed: int = 0, per_scene: int = 4,
          times=("day",), weathers=("clear",)) -> dict:
    """``n * per_scene`` close-ups: each of ``n`` scenes is rendered at ``zoom * size`` and
    ``per_scene`` random ``size x size`` windows are cut out of it, so one region (a patch
    of sky, of grass, of water) often fills most of the view -- the flat layouts that
    SPADE's argument is about.

    Returns the keys of :func:`landscapes` (``images``, ``labels``, ``time``, ``weather``,
    ``layouts``, ``styles``; scene ``i`` gives close-ups ``i * per_scene ...``) plus
    ``boxes`` ``(n * per_scene, 2)`` int64, each window's top-left corner ``(row, col)`` in
    the ``zoom * size`` render: :func:`render` at ``zoom * size`` cropped there re-renders a
    close-up exactly."""
    n, size, zoom, k = (checks.positive_int(v, nm) for v, nm in
                        ((n, "n"), (size, "size"), (zoom, "zoom"), (per_scene, "per_scene")))
    big = landscapes(n, size * zoom, seed, times, weathers)
    rng = np.random.default_rng(seed + 1)
    boxes = torch.from_numpy(rng.integers(0, size * (zoom - 1) + 1, (n * k, 2))).long()

    def cut(x):  # (n, ..., zoom * size, zoom * size) -> (n * k, ..., size, size)
        return torch.stack([x[j // k, ..., r:r + size, c:c + size] for j, (r, c) in enumerate(boxes.tolist())])

    return {"images": cut(big["images"]), "labels": cut(big["labels"]),
            "time": big["time"].repeat_interleave(k), "weather": big["weather"].repeat_interleave(k),
            "layouts": [lay for lay in big["layouts"] for _ in range(k)],
            "styles": [sty for sty in big["styles"] for _ in range(k)], "boxes": boxes}
