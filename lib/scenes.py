"""The procedural scene grammar: objects, layouts, rendering, captions, tokens, labels
(introduced in chapter 9; chapter 10 draws its own layouts for object removal).

Small RGB images of one or two flat shapes on a smooth grey background, each with a
caption from a tiny grammar and its structured attributes (chapter 9's CLIP and
text-to-image; chapter 10 reuses the objects, the separately rendered background and
the per-object masks for instruction-based object removal, :mod:`lib.removal`)::

    one object:  "a {size} {colour} {shape} {where}"      e.g. "a large red square at the top"
    two objects: "a {size} {colour} {shape} {relation} a {size} {colour} {shape}"
                 e.g. "a small green square below a large blue circle"

A scene is a list of objects (shape, colour, size, centre, radius in units of the image
side) plus a background; rendering is separate (:func:`render_scene`), so a scene can be
redrawn at any resolution, without some of its objects, or as masks.
Four (shape, colour) pairs -- a Latin square, so every shape and every colour is held
out exactly once -- never occur in the "train" and "test" splits; the "heldout" split
has at least one of them in every scene: compositional generalisation is measurable.

Read top to bottom: the words (:data:`SHAPES`, ...), :class:`SceneObject` and
:class:`Scene`, layouts (:func:`sample_scene` for captioned scenes of one or two objects,
:func:`sample_removal_scene` for chapter 10's two to four), rendering (:func:`render_scene`,
:func:`object_masks`), captions (:func:`scene_caption`, :func:`parse_caption`), tokens
(:func:`tokenize`), labels (:func:`scene_labels`) and the data set
(:func:`captioned_scenes`). Images are float32 ``(3, size, size)`` in ``[-1, 1]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import checks

SHAPES = ("square", "circle", "triangle", "cross")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
WHERES = ("left", "right", "top", "bottom")                 # one-object scenes: absolute position
RELATIONS = ("left of", "right of", "above", "below")       # two-object scenes: subject vs reference
HELDOUT_PAIRS = (("circle", "red"), ("square", "green"), ("triangle", "blue"), ("cross", "yellow"))
SCENE_SPLITS = ("train", "test", "heldout", "all")
RGB = {"red": (0.90, 0.15, 0.12), "green": (0.15, 0.78, 0.20), "blue": (0.18, 0.35, 0.98),
       "yellow": (0.95, 0.85, 0.12)}
WHERE_TEXT = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
RELATION_TEXT = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
_FLIP = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
RADIUS = {"small": (3.0 / 32, 4.0 / 32), "large": (5.5 / 32, 6.5 / 32)}   # half-extent / image side
VOCAB = ("<pad>", "a", *SIZES, *COLOURS, *SHAPES,
         "on", "at", "the", "left", "right", "top", "bottom", "to", "of", "above", "below")
MAX_TOKENS = 12  # the longest caption: "a small red triangle to the right of a large blue circle"


@dataclass(frozen=True)
class SceneObject:
    """One shape: ``shape``/``colour``/``size`` words, centre ``(cx, cy)`` and half-extent ``r``
    in units of the image side (``cy`` grows downwards), and its ``rgb`` in ``[0, 1]``."""
    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    r: float
    rgb: tuple

    @property
    def words(self) -> tuple[str, str, str]:
        """``(size, colour, shape)``, the caption's words for this object."""
        return (self.size, self.colour, self.shape)


@dataclass(frozen=True)
class Scene:
    """Objects (the first is the caption's subject), the one-object ``where`` or the two-object
    ``relation`` (of ``objects[0]`` to ``objects[1]``), and the background: grey ``level``,
    gradient amplitude ``amp`` and direction ``angle`` (radians)."""
    objects: tuple
    where: str | None = None
    relation: str | None = None
    background: tuple = field(default=(0.25, 0.0, 0.0))


def shape_colour_pairs(split: str = "all") -> list[tuple[str, str]]:
    """The (shape, colour) pairs a split may draw: all 16 for ``"heldout"``/``"all"``, the 12
    not in :data:`HELDOUT_PAIRS` for ``"train"``/``"test"``."""
    checks.choice(split, SCENE_SPLITS, "split")
    allp = [(s, c) for s in SHAPES for c in COLOURS]
    if split in ("train", "test"):
        return [p for p in allp if p not in HELDOUT_PAIRS]
    return allp


def sample_object(rng, pair, size_word, cx, cy, r) -> "SceneObject":
    """One object ``pair = (shape, colour)`` of size ``size_word`` centred at ``(cx, cy)`` with
    half-extent ``r`` (fractions of the image side), its colour jittered slightly by ``rng``."""
    shape, colour = pair
    rgb = tuple(float(np.clip(v + rng.uniform(-0.05, 0.05), 0, 1)) for v in RGB[colour])
    return SceneObject(shape, colour, size_word, float(cx), float(cy), float(r), rgb)


def sample_background(rng: np.random.Generator) -> tuple[float, float, float]:
    """A random background ``(level, amp, angle)`` (see :class:`Scene`): grey level uniform in
    ``[0.12, 0.35]``, gradient amplitude in ``[0, 0.12]``, direction in ``[0, 2 pi)``."""
    return (float(rng.uniform(0.12, 0.35)), float(rng.uniform(0.0, 0.12)), float(rng.uniform(0, 2 * np.pi)))


def sample_scene(rng: np.random.Generator, n_objects: int = 1, pairs=None) -> Scene:
    """Draw one random scene with ``n_objects`` (1 or 2) objects whose (shape, colour) pairs
    come from ``pairs`` (default: all 16). Positions make the caption unambiguous: a one-object
    scene's object is clearly off-centre towards ``where``; in a two-object scene the objects
    do not overlap and their offset along the relation's axis is at least twice the other."""
    if n_objects not in (1, 2):
        raise ValueError(f"n_objects must be 1 or 2, got {n_objects!r}")
    pairs = list(pairs) if pairs is not None else shape_colour_pairs("all")
    background = sample_background(rng)
    sizes = [SIZES[int(rng.integers(2))] for _ in range(n_objects)]
    radii = [float(rng.uniform(*RADIUS[s])) for s in sizes]
    chosen = [pairs[int(rng.integers(len(pairs)))] for _ in range(n_objects)]
    if n_objects == 1:
        where = WHERES[int(rng.integers(4))]
        r = radii[0]
        along = rng.uniform(0.17, 0.5 - r - 1 / 32)          # offset from the centre along the axis
        across = rng.uniform(-0.5, 0.5) * min(along, 0.5 - r - 1 / 32)
        sign = -1 if where in ("left", "top") else 1
        dx, dy = (sign * along, across) if where in ("left", "right") else (across, sign * along)
        return Scene((sample_object(rng, chosen[0], sizes[0], 0.5 + dx, 0.5 + dy, r),), where=where,
                     background=background)
    relation = RELATIONS[int(rng.integers(4))]
    for _ in range(1000):  # rejection sampling of the two centres
        c = [rng.uniform(r + 1 / 32, 1 - r - 1 / 32, size=2) for r in radii]
        d = c[1] - c[0]                                        # reference minus subject, (dx, dy)
        along, across = {"left of": (d[0], d[1]), "right of": (-d[0], d[1]),
                         "above": (d[1], d[0]), "below": (-d[1], d[0])}[relation]
        if along >= radii[0] + radii[1] + 2 / 32 and abs(across) <= 0.5 * along:
            break
    else:  # pragma: no cover - the acceptance rate is far above 1/1000
        raise RuntimeError("could not place two objects")
    objs = tuple(sample_object(rng, chosen[k], sizes[k], c[k][0], c[k][1], radii[k]) for k in range(2))
    return Scene(objs, relation=relation, background=background)


def sample_removal_scene(rng: np.random.Generator, n_objects: tuple = (2, 3), p_duplicate: float = 0.6) -> Scene:
    """A random scene for object removal: ``n`` objects (``n`` uniform in ``n_objects``, 1 to 4),
    any of the 16 (shape, colour) pairs, any size, and boxes that do not overlap (so that under
    each object there is only background). With probability ``p_duplicate`` the second object
    copies the first one's colour and shape (its size is drawn again): then "remove the red
    circle" is ambiguous and the instruction has to say which one. The background is chapter 9's
    grey gradient. Returns a :class:`Scene` (``where`` and ``relation`` are ``None``). Chapter
    10's layout (:mod:`lib.removal`)."""
    lo, hi = min(n_objects), max(n_objects)
    if lo < 1 or hi > 4:
        raise ValueError(f"n_objects must lie in 1..4, got {n_objects!r}")
    checks.probability(p_duplicate, "p_duplicate")
    k = int(rng.integers(lo, hi + 1))
    background = sample_background(rng)
    pairs = shape_colour_pairs("all")
    chosen = [pairs[int(rng.integers(len(pairs)))] for _ in range(k)]
    if k >= 2 and rng.random() < p_duplicate:
        chosen[1] = chosen[0]
    for _ in range(100):  # rejection sampling: every pair of bounding boxes at least 2 px apart
        sizes = [SIZES[int(rng.integers(2))] for _ in range(k)]     # (three large ones rarely fit:
        radii = [float(rng.uniform(*RADIUS[s])) for s in sizes]  #  then the sizes are drawn again)
        for _ in range(100):
            c = [rng.uniform(r + 1 / 32, 1 - r - 1 / 32, size=2) for r in radii]
            if all(np.abs(c[i] - c[j]).max() >= radii[i] + radii[j] + 2 / 32 for i in range(k) for j in range(i)):
                break
        else:
            continue
        break
    else:  # pragma: no cover - the acceptance rate is far above 1/10000
        raise RuntimeError("could not place the objects")
    objs = tuple(sample_object(rng, chosen[i], sizes[i], c[i][0], c[i][1], radii[i]) for i in range(k))
    return Scene(objs, background=background)


def _coverage(obj: SceneObject, size: int) -> np.ndarray:
    """Anti-aliased coverage ``(size, size)`` in [0, 1] of one object, from a signed distance."""
    t = (np.arange(size) + 0.5) / size
    dx = np.broadcast_to((t[None, :] - obj.cx) * size, (size, size))   # pixels from the centre
    dy = np.broadcast_to((t[:, None] - obj.cy) * size, (size, size))
    r = obj.r * size
    if obj.shape == "circle":
        sdf = np.sqrt(dx ** 2 + dy ** 2) - r
    elif obj.shape == "square":
        sdf = np.maximum(np.abs(dx), np.abs(dy)) - 0.88 * r             # same area as the circle, roughly
    elif obj.shape == "triangle":                                      # apex up, base 2r, height 2r
        sdf = np.maximum.reduce([dy - r, (2 * dx - dy - r) / np.sqrt(5), (-2 * dx - dy - r) / np.sqrt(5)])
    else:  # cross: union of two bars of width 2r/2.6
        w = r / 2.6
        sdf = np.minimum(np.maximum(np.abs(dx) - r, np.abs(dy) - w), np.maximum(np.abs(dx) - w, np.abs(dy) - r))
    return np.clip(0.5 - sdf, 0.0, 1.0)


def render_background(scene: Scene, size: int = 32) -> torch.Tensor:
    """The scene's background alone: ``(3, size, size)`` in ``[-1, 1]`` (a grey linear gradient)."""
    checks.positive_int(size, "size")
    level, amp, angle = scene.background
    t = (np.arange(size) + 0.5) / size - 0.5
    g = level + amp * (np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]) * 2
    bg = np.repeat(np.clip(g, 0, 1)[None], 3, 0)
    return torch.tensor(bg * 2 - 1, dtype=torch.float32)


def object_masks(scene: Scene, size: int = 32) -> torch.Tensor:
    """Per-object coverage masks ``(K, size, size)`` in ``[0, 1]`` (anti-aliased; ``> 0.5`` for binary)."""
    checks.positive_int(size, "size")
    return torch.tensor(np.stack([_coverage(o, size) for o in scene.objects]), dtype=torch.float32)


def saturation_mask(images: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """Where the objects are, read from pixels alone: soft masks ``(..., H, W)`` in ``[0, 1]`` of
    images ``(..., 3, H, W)`` in ``[-1, 1]``. The saturation (max minus min over the colour
    channels, in ``[0, 1]`` units) is ramped from 0 at ``threshold`` to 1 at twice it: the
    backgrounds are grey (saturation 0) and the objects strongly coloured (about 0.6-0.8)."""
    checks.tensor(images, "images")
    if images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"images must have shape (..., 3, H, W), got {tuple(images.shape)}")
    checks.floating(images, "images")
    checks.value_range(images, -1, 1, "images")
    if not 0 < threshold < 0.5:
        raise ValueError(f"threshold must be in (0, 0.5), got {threshold!r}")
    x = (images + 1) / 2
    sat = x.amax(-3) - x.amin(-3)
    return ((sat - threshold) / threshold).clamp(0, 1)


def render_scene(scene: Scene, size: int = 32, objects=None) -> torch.Tensor:
    """Render ``scene`` as ``(3, size, size)`` in ``[-1, 1]``: the background, then each object
    alpha-blended with its mask. ``objects`` (indices) draws only those, e.g. ``objects=[1]``
    is the scene with its subject removed (chapter 10)."""
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a lib.scenes.Scene, got {type(scene).__name__}")
    idx = range(len(scene.objects)) if objects is None else list(objects)
    if any(not 0 <= k < len(scene.objects) for k in idx):
        raise ValueError(f"objects must index the scene's {len(scene.objects)} objects, got {list(idx)}")
    img = (render_background(scene, size).numpy() + 1) / 2
    for k in idx:
        a = _coverage(scene.objects[k], size)[None]
        img = img * (1 - a) + np.asarray(scene.objects[k].rgb)[:, None, None] * a
    return torch.tensor(img * 2 - 1, dtype=torch.float32)


def make_caption(objects, where: str | None = None, relation: str | None = None) -> str:
    """Caption from attributes: ``objects`` is a sequence of ``(size, colour, shape)`` word triples
    (one with ``where``, two with ``relation``). Inverse of :func:`parse_caption`."""
    objects = [tuple(o) for o in objects]
    for o in objects:
        if len(o) != 3:
            raise ValueError(f"each object must be a (size, colour, shape) triple, got {o!r}")
        checks.choice(o[0], SIZES, "size"); checks.choice(o[1], COLOURS, "colour"); checks.choice(o[2], SHAPES, "shape")
    if len(objects) == 1 and where is not None and relation is None:
        checks.choice(where, WHERES, "where")
        return f"a {' '.join(objects[0])} {WHERE_TEXT[where]}"
    if len(objects) == 2 and relation is not None and where is None:
        checks.choice(relation, RELATIONS, "relation")
        return f"a {' '.join(objects[0])} {RELATION_TEXT[relation]} a {' '.join(objects[1])}"
    raise ValueError("a caption needs one object with `where`, or two objects with `relation`")


def scene_attributes(scene: Scene) -> dict:
    """The caption-level attributes of ``scene``: ``{"objects": ((size, colour, shape), ...),
    "where": str | None, "relation": str | None}`` (the same dict :func:`parse_caption` returns)."""
    return {"objects": tuple(o.words for o in scene.objects), "where": scene.where, "relation": scene.relation}


def scene_caption(scene: Scene) -> str:
    """The caption of ``scene`` (e.g. "a small green square below a large blue circle")."""
    a = scene_attributes(scene)
    return make_caption(a["objects"], a["where"], a["relation"])


def parse_caption(caption: str) -> dict:
    """Parse a caption of the grammar back to its attributes (see :func:`scene_attributes`);
    anything outside the grammar raises ``ValueError``."""
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    w = caption.strip().split()

    def obj(ws):
        if len(ws) != 4 or ws[0] != "a" or ws[1] not in SIZES or ws[2] not in COLOURS or ws[3] not in SHAPES:
            raise ValueError(f"not a caption of the scene grammar: {caption!r} "
                             "(expected 'a {size} {colour} {shape} ...')")
        return tuple(ws[1:])

    rest = " ".join(w[4:])
    for where, text in WHERE_TEXT.items():
        if rest == text:
            return {"objects": (obj(w[:4]),), "where": where, "relation": None}
    for rel, text in RELATION_TEXT.items():
        n = len(text.split())
        if " ".join(w[4:4 + n]) == text and len(w) == 8 + n:
            return {"objects": (obj(w[:4]), obj(w[4 + n:])), "where": None, "relation": rel}
    raise ValueError(f"not a caption of the scene grammar: {caption!r}")


def canonical_attributes(attrs: dict) -> dict:
    """Rewrite "X below Y" as "Y above X" and "X right of Y" as "Y left of X", so that two
    captions of the same picture get the same attributes (one-object attributes are unchanged)."""
    if attrs.get("relation") in ("below", "right of"):
        o = attrs["objects"]
        return {"objects": (o[1], o[0]), "where": None, "relation": _FLIP[attrs["relation"]]}
    return dict(attrs)


def tokenize(captions, length: int = MAX_TOKENS, vocab: tuple | list | None = None) -> torch.Tensor:
    """Word-level tokens ``(N, length)`` int64 (index into ``vocab``, default :data:`VOCAB`;
    0 = padding). Chapter 10's instructions use it with their own vocabulary."""
    vocab = VOCAB if vocab is None else vocab
    if isinstance(captions, str):
        captions = [captions]
    index = {w: i for i, w in enumerate(vocab)}
    out = torch.zeros(len(captions), length, dtype=torch.int64)
    for i, c in enumerate(captions):
        ws = c.split()
        if len(ws) > length:
            raise ValueError(f"text {c!r} has {len(ws)} words, more than length={length}")
        for j, word in enumerate(ws):
            if word not in index:
                raise ValueError(f"unknown word {word!r} in {c!r}; the vocabulary has {len(vocab)} words "
                                 f"({', '.join(vocab[1:6])}, ...)")
            out[i, j] = index[word]
    return out


def one_object_captions(**fixed) -> list[str]:
    """Every one-object caption of the grammar whose attributes match ``fixed`` (keys among
    ``shape``, ``colour``, ``size``, ``where``), e.g. all 32 captions of circles: the prompt
    "templates" of a zero-shot classifier."""
    for k, v in fixed.items():
        options = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "where": WHERES}
        checks.choice(k, options, "attribute")
        checks.choice(v, options[k], k)
    return [make_caption([(s, c, k)], where=w) for s in SIZES for c in COLOURS for k in SHAPES for w in WHERES
            if all({"shape": k, "colour": c, "size": s, "where": w}[a] == v for a, v in fixed.items())]


LABELS = ("n_objects", "shape", "colour", "size", "where", "axis", "shape2", "colour2", "size2")


def scene_labels(scenes) -> dict[str, torch.Tensor]:
    """Integer labels ``{name: (N,) int64}`` of the *canonical* attributes (identifiable from the
    picture): ``n_objects`` (1, 2); ``shape``/``colour``/``size`` of the only object, or of the
    upper/left object of a pair; ``where`` (index in WHERES, one object); ``axis`` (0 = vertical
    "above", 1 = horizontal "left of"; two objects); ``shape2``/``colour2``/``size2`` of the
    lower/right object. Entries that do not apply are -1."""
    out = {k: torch.full((len(scenes),), -1, dtype=torch.int64) for k in LABELS}
    for i, s in enumerate(scenes):
        a = canonical_attributes(scene_attributes(s))
        out["n_objects"][i] = len(a["objects"])
        for suffix, o in zip(("", "2"), a["objects"]):
            out["size" + suffix][i] = SIZES.index(o[0])
            out["colour" + suffix][i] = COLOURS.index(o[1])
            out["shape" + suffix][i] = SHAPES.index(o[2])
        if a["where"] is not None:
            out["where"][i] = WHERES.index(a["where"])
        else:
            out["axis"][i] = 0 if a["relation"] == "above" else 1
    return out


@dataclass
class SceneSet:
    """A batch of captioned scenes: ``images (N, 3, size, size)`` in ``[-1, 1]``, ``captions``,
    the ``scenes`` themselves, their ``labels`` (:func:`scene_labels`) and ``heldout (N,)`` bool
    (True when the scene contains a held-out (shape, colour) pair)."""
    images: torch.Tensor
    captions: list
    scenes: list
    labels: dict
    heldout: torch.Tensor

    def __len__(self):
        return len(self.captions)


def captioned_scenes(split: str = "train", n: int = 2000, size: int = 32, seed: int = 0,
                     p_two: float = 0.5) -> SceneSet:
    """``n`` captioned scenes of ``split``, deterministic given ``seed``.

    * ``"train"``/``"test"``: never a held-out (shape, colour) pair (:data:`HELDOUT_PAIRS`);
      disjoint random streams, so the test scenes are new scenes of *seen* combinations;
    * ``"heldout"``: every scene contains at least one held-out pair (the other object, if
      any, is any pair);
    * ``"all"``: any pairs (for evaluation tools such as an attribute classifier that judges
      generated images, which must know every combination).

    Each scene has two objects with probability ``p_two``. Scene ``i`` depends only on
    ``(seed, split, i)``, so a larger ``n`` extends a smaller one.
    """
    checks.choice(split, SCENE_SPLITS, "split")
    checks.positive_int(n, "n"); checks.positive_int(size, "size")
    checks.probability(p_two, "p_two")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels for the shapes to be recognisable, got {size}")
    stream = SCENE_SPLITS.index(split)
    scenes = []
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        k = 2 if rng.random() < p_two else 1
        if split == "heldout":
            held = int(rng.integers(k))                              # which object is held out
            s = sample_scene(rng, k, shape_colour_pairs("all"))
            o = list(s.objects)
            pair = HELDOUT_PAIRS[int(rng.integers(len(HELDOUT_PAIRS)))]
            o[held] = sample_object(rng, pair, o[held].size, o[held].cx, o[held].cy, o[held].r)
            s = Scene(tuple(o), s.where, s.relation, s.background)
        else:
            s = sample_scene(rng, k, shape_colour_pairs(split))
        scenes.append(s)
    images = torch.stack([render_scene(s, size) for s in scenes])
    heldout = torch.tensor([any((o.shape, o.colour) in HELDOUT_PAIRS for o in s.objects) for s in scenes])
    return SceneSet(images, [scene_caption(s) for s in scenes], scenes, scene_labels(scenes), heldout)

