"""Procedural synthesis from noise: the turtle sampler, dice and dice-driven plants
(introduced in chapter 2).

The lecture's first generative model has no learning in it at all: a *program*
``G`` turns random numbers ``z`` into a picture ``x = G(z)``. Everything random
about the picture is in ``z`` -- "noise is latent variables" (Concept #1). This
module holds the three examples of chapter 2:

* :func:`turtle_path` / :func:`turtle_image` -- the slide's sampler, exactly:
  ``z ~ Bernoulli(p)^N``; for ``i = 1..N`` extend a line one unit in the current
  heading, then turn 10 degrees right if ``z_i == 1`` else left;
* dice -- the slide "Probabilistic plants" rolls five six-sided dice. The exact
  probability of every hand, by enumeration (:func:`dice_hand_counts_enumerated`)
  and by counting (:func:`dice_hand_counts_closed_form`), a Monte Carlo estimate
  with its standard error (:func:`dice_monte_carlo`), and the slide's own (partly
  wrong) numbers (:data:`SLIDE_DICE`);
* :func:`grow_plant` -- a small branching plant whose every decision is a roll
  of five dice, so the same rolls always grow the same plant.
"""
from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import torch

from . import checks

# --------------------------------------------------------------------------- turtle

def sample_z(n: int, length: int, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` latent codes ``z ~ Bernoulli(p)^length``: a ``(n, length)`` float tensor of 0s and 1s."""
    checks.positive_int(n, "n"); checks.positive_int(length, "length (N)")
    p = checks.probability(p, "p")
    return torch.bernoulli(torch.full((n, length), p), generator=generator)


def turtle_path(z, step: float = 1.0, angle_deg: float = 10.0) -> np.ndarray:
    """The slide's sampler ``G: Z -> X`` as a polyline: vertices ``(N + 1, 2)``.

    ``z``: 1-D sequence (list, array or tensor) of 0/1 of length ``N``. The turtle
    starts at the origin heading up (+y). For each ``z_i`` it first extends the line
    ``step`` units in its heading, then rotates the heading by ``angle_deg`` to the
    right (clockwise) if ``z_i == 1``, else to the left. Deterministic in ``z``.
    """
    z = _binary_vector(z)
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    heading = math.pi / 2  # radians, measured counter-clockwise from +x: start heading up
    turn = math.radians(float(angle_deg))
    pts = np.zeros((len(z) + 1, 2))
    for i, zi in enumerate(z):
        pts[i + 1] = pts[i] + step * np.array([math.cos(heading), math.sin(heading)])
        heading += -turn if zi == 1 else turn  # right = clockwise = negative angle
    return pts


def _binary_vector(z) -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    z = np.asarray(z)
    if z.ndim != 1 or len(z) == 0:
        raise ValueError(f"z must be a non-empty 1-D sequence of 0s and 1s, got shape {z.shape}")
    if not np.isin(z, (0, 1)).all():
        raise ValueError("z must contain only 0s and 1s (a Bernoulli sample)")
    return z.astype(int)


def rasterize(paths: list[np.ndarray], size: int = 64, margin: int = 3, fit: str = "each") -> torch.Tensor:
    """Draw polylines into images ``(len(paths), 1, size, size)`` in ``[-1, 1]``: ink +1 on -1.

    Each path ``(M, 2)`` is scaled (keeping its aspect ratio) to fill the image
    (``fit="each"``), or all paths share one scale (``fit="shared"``, so sizes can
    be compared). Line segments are drawn with anti-aliasing (``skimage.draw.line_aa``).
    """
    from skimage.draw import line_aa

    checks.positive_int(size, "size")
    checks.choice(fit, ("each", "shared"), "fit")
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ValueError("paths must be a non-empty list of (M, 2) arrays")
    paths = [np.asarray(p, dtype=float) for p in paths]
    for p in paths:
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2:
            raise ValueError(f"each path must have shape (M >= 2, 2), got {p.shape}")
    span = lambda p: max(np.ptp(p[:, 0]), np.ptp(p[:, 1]), 1e-9)
    shared = max(span(p) for p in paths)
    out = np.zeros((len(paths), size, size))
    for k, p in enumerate(paths):
        scale = (size - 1 - 2 * margin) / (span(p) if fit == "each" else shared)
        centre = (p.min(0) + p.max(0)) / 2
        q = (p - centre) * scale + (size - 1) / 2
        cols, rows = q[:, 0], (size - 1) - q[:, 1]  # image rows grow downwards
        for i in range(len(q) - 1):
            rr, cc, val = line_aa(int(round(rows[i])), int(round(cols[i])),
                                  int(round(rows[i + 1])), int(round(cols[i + 1])))
            ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
            out[k, rr[ok], cc[ok]] = np.maximum(out[k, rr[ok], cc[ok]], val[ok])
    return torch.tensor(out * 2 - 1, dtype=torch.float32).unsqueeze(1)


def turtle_image(z, size: int = 64, angle_deg: float = 10.0) -> torch.Tensor:
    """``x = G(z)`` as images: ``z`` of shape ``(N,)`` or ``(B, N)`` -> ``(B, 1, size, size)`` in ``[-1, 1]``."""
    if isinstance(z, torch.Tensor) and z.dim() == 2:
        zs = list(z)
    elif isinstance(z, np.ndarray) and z.ndim == 2:
        zs = list(z)
    else:
        zs = [z]
    return rasterize([turtle_path(zi, angle_deg=angle_deg) for zi in zs], size=size)


# --------------------------------------------------------------------------- dice

#: Hand categories of five dice, from best to worst. Every outcome has exactly one.
HANDS = ("five of a kind", "four of a kind", "full house", "straight", "three of a kind",
         "two pairs", "one pair", "nothing")

#: The slide's numbers, as printed: (label on the slide, numerator of its fraction or None,
#: percentage it prints, the category its numerator actually counts or a note).
SLIDE_DICE = (
    ("One Pair", 720, 6.17, "720 = 6*5*4*3*2 counts rolls with five different faces (9.26%); "
     "6.17% is 480/7776, the probability of 'nothing'; one pair is 46.30%"),
    ("Two Pairs", 3600, 4.630, "3600 is the count of ONE pair; 3600/7776 = 46.30%, not 4.630%"),
    ("Three Pairs", 1800, 2.315, "impossible with 5 dice; 1800 is the count of TWO pairs (23.15%)"),
    ("Three of a Kind", 1200, 1.543, "1200 is right, but 1200/7776 = 15.43%, not 1.543%"),
    ("Full House", 360, 3.262, "the count is 300 (3.86%); 360/7776 is 4.63%, and neither is 3.262%"),
    ("Straight", 360, 3.09, "3.09% is right (240 outcomes); the printed fraction 360/7776 is not"),
    ("Four of a Kind", 30, 1.93, "1.93% is right (150 outcomes); the printed fraction 30/7776 is not"),
    ("Five of a Kind", 6, 0.08, "right: 6/7776 = 0.077%"),
)


def classify_hand(roll) -> str:
    """The category (one of :data:`HANDS`) of five dice ``roll`` with faces 1..6.

    A straight is 1-2-3-4-5 or 2-3-4-5-6 (five different faces in a run); "nothing"
    is five different faces that are not a straight.
    """
    roll = tuple(int(r) for r in roll)
    if len(roll) != 5 or not all(1 <= r <= 6 for r in roll):
        raise ValueError(f"a roll must be 5 dice with faces 1..6, got {roll}")
    counts = sorted(Counter(roll).values(), reverse=True)
    if counts[0] == 5:
        return "five of a kind"
    if counts[0] == 4:
        return "four of a kind"
    if counts[:2] == [3, 2]:
        return "full house"
    if counts[0] == 3:
        return "three of a kind"
    if counts[:2] == [2, 2]:
        return "two pairs"
    if counts[0] == 2:
        return "one pair"
    return "straight" if max(roll) - min(roll) == 4 else "nothing"


def dice_hand_counts_enumerated() -> dict[str, int]:
    """Number of the 6^5 = 7776 ordered outcomes in each category, by listing them all."""
    c = Counter(classify_hand(r) for r in itertools.product(range(1, 7), repeat=5))
    return {h: c.get(h, 0) for h in HANDS}


def dice_hand_counts_closed_form() -> dict[str, int]:
    """The same counts by combinatorics (choose the face values, then arrange them).

    Each count is (ways to choose which faces play which role) x (ordered arrangements
    of the five dice = multinomial coefficient 5! / (m_1! m_2! ...)).
    """
    C, f = math.comb, math.factorial
    arr = lambda *m: f(5) // math.prod(f(k) for k in m)  # orderings of a multiset
    return {
        "five of a kind": 6 * arr(5),                      # face
        "four of a kind": 6 * 5 * arr(4, 1),               # quad face, kicker
        "full house": 6 * 5 * arr(3, 2),                   # triple face, pair face
        "straight": 2 * arr(1, 1, 1, 1, 1),                # 1-5 or 2-6, any order
        "three of a kind": 6 * C(5, 2) * arr(3, 1, 1),     # triple face, 2 distinct kickers
        "two pairs": C(6, 2) * 4 * arr(2, 2, 1),           # two pair faces, kicker
        "one pair": 6 * C(5, 3) * arr(2, 1, 1, 1),         # pair face, 3 distinct others
        "nothing": (C(6, 5) - 2) * arr(1, 1, 1, 1, 1),     # 5 distinct faces, not a run
    }


def dice_probabilities() -> dict[str, float]:
    """Exact probability of each category: count / 7776 (sums to 1)."""
    return {h: c / 6 ** 5 for h, c in dice_hand_counts_closed_form().items()}


def roll_dice(n: int, dice: int = 5, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` rolls of ``dice`` fair six-sided dice: long tensor ``(n, dice)`` with faces 1..6."""
    checks.positive_int(n, "n"); checks.positive_int(dice, "dice")
    return torch.randint(1, 7, (n, dice), generator=generator)


def dice_monte_carlo(n: int, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Monte Carlo estimate of each category's probability from ``n`` simulated rolls.

    Returns ``{hand: (estimate, standard_error)}`` with the binomial standard error
    ``sqrt(p_hat (1 - p_hat) / n)``.
    """
    checks.positive_int(n, "n")
    rolls = roll_dice(n, generator=torch.Generator().manual_seed(seed)).numpy()
    # Vectorised classification: sorted multiplicities of the faces in each roll.
    counts = np.stack([(rolls == f).sum(1) for f in range(1, 7)], 1)   # (n, 6)
    m = -np.sort(-counts, 1)                                             # descending
    run = (counts.max(1) == 1) & ((counts[:, 0] == 0) | (counts[:, 5] == 0))
    cat = np.select(
        [m[:, 0] == 5, m[:, 0] == 4, (m[:, 0] == 3) & (m[:, 1] == 2), m[:, 0] == 3,
         (m[:, 0] == 2) & (m[:, 1] == 2), m[:, 0] == 2, run],
        [0, 1, 2, 4, 5, 6, 3], default=7)
    out = {}
    for k, h in enumerate(HANDS):
        p = float((cat == k).mean())
        out[h] = (p, math.sqrt(p * (1 - p) / n))
    return out


# --------------------------------------------------------------------------- plants

#: What a node of the plant does for each hand of five dice: (number of branches, flower?).
PLANT_RULES = {
    "nothing": (1, True),           # grow on and put out a leaf
    "one pair": (1, False),         # grow on
    "two pairs": (2, False),        # fork
    "three of a kind": (3, False),  # fork in three
    "straight": (0, False),         # the shoot stops (a bare tip)
    "full house": (2, True),        # fork and put out a leaf
    "four of a kind": (0, True),    # stop with a flower
    "five of a kind": (0, True),    # stop with a flower (the tweet never got one)
}


def grow_plant(rolls, max_depth: int = 7, spread_deg: float = 28.0, shrink: float = 0.8) -> dict:
    """Grow a branching plant whose every decision is one roll of five dice.

    ``rolls``: array-like ``(R, 5)`` of faces 1..6, consumed in order, one roll per
    node, breadth first. The hand (:func:`classify_hand`) picks the rule in
    :data:`PLANT_RULES`; the first die of the roll also bends the shoot by
    ``(die - 3.5) * 4`` degrees. Branches fan out by ``spread_deg``, get ``shrink``
    times shorter per level, and stop at ``max_depth`` or when the rolls run out.

    Returns ``{"segments": (S, 2, 2) array of line segments, "leaves": (L, 2),
    "flowers": (F, 2), "rolls_used": int, "hands": list of hands in order}``.
    Same ``rolls`` -> same plant (no other randomness).
    """
    rolls = np.asarray(rolls.numpy() if isinstance(rolls, torch.Tensor) else rolls)
    if rolls.ndim != 2 or rolls.shape[1] != 5 or not np.isin(rolls, np.arange(1, 7)).all():
        raise ValueError(f"rolls must have shape (R, 5) with faces 1..6, got shape {rolls.shape}")
    checks.positive_int(max_depth, "max_depth")
    segments, leaves, flowers, hands = [], [], [], []
    # A node: (start point, heading in degrees, length, depth)
    queue = [(np.zeros(2), 90.0, 1.0, 0)]
    used = 0
    while queue:
        start, heading, length, depth = queue.pop(0)
        if used == len(rolls):
            break
        roll = rolls[used]; used += 1
        hand = classify_hand(roll); hands.append(hand)
        heading = heading + (roll[0] - 3.5) * 4.0
        end = start + length * np.array([math.cos(math.radians(heading)), math.sin(math.radians(heading))])
        segments.append((start, end))
        n_branch, bloom = PLANT_RULES[hand]
        if bloom:
            (flowers if n_branch == 0 else leaves).append(end)
        if depth + 1 >= max_depth:
            continue
        offsets = {1: [0.0], 2: [-spread_deg, spread_deg], 3: [-spread_deg, 0.0, spread_deg]}.get(n_branch, [])
        for off in offsets:
            queue.append((end, heading + off, length * shrink, depth + 1))
    as_arr = lambda v: np.array(v, dtype=float).reshape(-1, 2)
    return {"segments": np.array(segments, dtype=float).reshape(-1, 2, 2), "leaves": as_arr(leaves),
            "flowers": as_arr(flowers), "rolls_used": used, "hands": hands}


def draw_plant(plant: dict, ax=None, title: str | None = None):
    """Draw a :func:`grow_plant` result with matplotlib: stems brown, leaves green, flowers pink."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    segs = plant["segments"]
    ax.add_collection(LineCollection(segs, colors="saddlebrown", linewidths=1.5))
    if len(plant["leaves"]):
        ax.scatter(*plant["leaves"].T, s=25, c="forestgreen", marker="o", label="leaf", zorder=3)
    if len(plant["flowers"]):
        ax.scatter(*plant["flowers"].T, s=60, c="hotpink", marker="*", label="flower", zorder=3)
    pts = segs.reshape(-1, 2)
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.1 * max(hi - lo) + 0.1
    ax.set_xlim(lo[0] - pad, hi[0] + pad); ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal"); ax.set_xticks([]); ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax
