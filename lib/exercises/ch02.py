"""Checks for chapter 2's exercises (synthesis from noise)."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import torch

from .. import checks, metrics
from . import NotYet, checker, close, expect, nearest_distance, number, numbers

_TURN = math.radians(10.0)


def _mapping(x, name: str, what: str) -> Mapping:
    if not isinstance(x, Mapping) or not x:
        raise TypeError(
            f"{name} must be a non-empty dict {what}, got {type(x).__name__}"
        )
    return x


def _end_to_end_sq(N: int) -> float:
    """The double sum over i, j = 1..N of cos(10 deg)^|i - j| (exact, float64)."""
    i = torch.arange(N, dtype=torch.float64)
    return float((math.cos(_TURN) ** (i[:, None] - i[None]).abs()).sum())


@functools.cache
def _end_to_end_sd(N: int, paths: int = 2000) -> float:
    """Spread (standard deviation) of ||x_N - x_0||^2 over turtle paths, estimated once
    from a fixed-seed simulation of ``paths`` turtles (vectorised: headings are cumulative
    sums of the turns)."""
    g = torch.Generator().manual_seed(12345 + N)
    turns = (torch.randint(0, 2, (paths, N), generator=g) * 2 - 1).double() * _TURN
    heading = torch.cat(
        [torch.zeros(paths, 1, dtype=torch.float64), turns.cumsum(1)[:, :-1]], 1
    )
    end = torch.stack([heading.cos().sum(1), heading.sin().sum(1)], 1)
    return float((end**2).sum(1).std())


@checker("ch02-turtle-distance")
def turtle_distance(*, n_mc, theory, monte_carlo) -> str:
    """``theory`` / ``monte_carlo``: {N: mean squared end-to-end distance}, from the double
    sum and from ``n_mc`` simulated turtles per N (an int, or {N: count}), for N = 10, 50, 200."""
    theory = _mapping(theory, "theory", "{N: double sum}")
    monte_carlo = _mapping(monte_carlo, "monte_carlo", "{N: Monte Carlo mean}")
    for name, d in (("theory", theory), ("monte_carlo", monte_carlo)):
        bad = [k for k in d if isinstance(k, bool) or not isinstance(k, int) or k < 1]
        if bad:
            raise TypeError(
                f"the keys of {name} must be step counts N >= 1, got {bad[0]!r}"
            )
    missing = sorted({10, 50, 200} - set(theory) | {10, 50, 200} - set(monte_carlo))
    expect(
        not missing,
        f"give the theory and the Monte Carlo estimate for N = 10, 50 and 200 "
        f"(missing: N = {', '.join(map(str, missing))})",
    )
    counts = n_mc if isinstance(n_mc, Mapping) else {N: n_mc for N in monte_carlo}
    for N in sorted(theory):
        ref = _end_to_end_sq(N)
        t = number(theory[N], f"theory[{N}]")
        if abs(t - ref) > 1e-6 * ref and abs(t - ref) <= 1e-3 * ref:
            raise NotYet(
                f"theory[{N}] is {t:.4f}, close but not equal to the double sum: it is "
                "an exact finite sum, no approximation is needed"
            )
        close(
            t,
            ref,
            f"theory[{N}] = {t:.4g} is not the double sum over all pairs (i, j), each "
            f"from 1 to {N}, of cos(10 degrees)^|i-j|: its {N} diagonal terms are 1, "
            "and cos(10 degrees) is about 0.985 (mind degrees vs radians)",
            rtol=1e-6,
        )
    worst = 0.0
    for N in sorted(monte_carlo):
        n = counts.get(N) if isinstance(counts, Mapping) else None
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(
                f"n_mc must be the number of simulated paths (an int, or a dict "
                f"{{N: int}}), got {type(n).__name__} for N = {N}"
            )
        checks.positive_int(n, "n_mc")
        expect(
            n >= 100,
            f"with only {n} paths the Monte Carlo estimate is too rough to test the "
            "theory: simulate at least a hundred turtles per N",
        )
        ref, se = _end_to_end_sq(N), _end_to_end_sd(N) / math.sqrt(n)
        m = number(monte_carlo[N], f"monte_carlo[{N}]")
        z = (m - ref) / se
        expect(
            abs(z) <= 5,
            f"monte_carlo[{N}] = {m:.4g} is {abs(z):.0f} standard errors away from the "
            "theory: average, over simulated paths, the *squared* Euclidean distance "
            "between the turtle's last vertex and its start (not the distance itself, "
            "not the path length), with the turtle turning 10 degrees at each step",
        )
        worst = max(worst, abs(z))
    shown = ", ".join(f"N={N}: {_end_to_end_sq(N):.1f}" for N in (10, 50, 200))
    return (
        f"the double sums are right ({shown}) and your Monte Carlo means lie within "
        f"{worst:.1f} standard errors of them"
    )


@checker("ch02-five-kind")
def five_kind(*, plants, rolls_needed, p_none) -> str:
    """``rolls_needed``: {0.5: n, 0.95: n}, the fewest rolls of five dice for that chance of at
    least one five of a kind; ``p_none``: for each of ``plants`` (the notebook's list of
    (rolls, plant)), the probability that none of the rolls it used is a five of a kind."""
    if not isinstance(plants, (list, tuple)) or not all(
        isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], Mapping)
        for p in plants
    ):
        raise TypeError("plants must be the notebook's list of (rolls, plant) pairs")
    rolls_needed = _mapping(rolls_needed, "rolls_needed", "{target chance: rolls}")
    p5 = 6 / 6**5  # any of the six faces, on all five dice
    for target in (0.5, 0.95):
        expect(
            target in rolls_needed,
            f"rolls_needed needs an entry for the target chance {target}",
        )
        n = number(rolls_needed[target], f"rolls_needed[{target}]")
        expect(
            n == int(n) and n >= 1,
            f"rolls_needed[{target}] = {n}: a number of rolls is a whole number >= 1 "
            "(round up: fewer rolls than that would not reach the target)",
        )
        n = int(n)
        reach = 1 - (1 - p5) ** n
        expect(
            reach >= target - 1e-12,
            f"{n} rolls give only a {100 * reach:.1f}% chance of at least one five of a "
            f"kind, short of {100 * target:.0f}%: 'at least one' is the complement of "
            "'none', and the rolls are independent",
        )
        fewest = math.ceil(math.log(1 - target) / math.log(1 - p5))
        expect(
            n <= fewest + max(1, 0.01 * fewest),
            f"{n} rolls are more than needed for a {100 * target:.0f}% chance: find the "
            "smallest number, and check the chance of five of a kind in one roll (any of "
            "the six faces counts)",
        )
    used = [int(pl["rolls_used"]) for _, pl in plants]
    p = numbers(p_none, "p_none")
    if len(p) != len(plants):
        raise ValueError(
            f"p_none must hold one probability per plant ({len(plants)}), got {len(p)}"
        )
    ref = torch.tensor([(1 - p5) ** u for u in used], dtype=torch.float64)
    expect(
        not torch.allclose(p, 1 - ref, rtol=1e-3),
        "p_none is the chance that a plant NEVER shows a five of a kind, not that it "
        "shows at least one",
    )
    expect(
        torch.allclose(p, ref, rtol=1e-3, atol=0),
        "p_none: for each plant (in the order of plants), the chance that none of the "
        "rolls it used (its 'rolls_used') is a five of a kind",
    )
    return (
        f"{int(rolls_needed[0.5])} rolls for a 50% chance and "
        f"{int(rolls_needed[0.95])} for 95%; plants that used {min(used)}-{max(used)} "
        f"rolls never show one with probability {float(ref.min()):.3f}-"
        f"{float(ref.max()):.3f}"
    )


@checker("ch02-average")
def average(*, avg, x_train, x_test, d_avg, fdd_avg, copy_rate_avg) -> str:
    """``avg``: the lazy model's samples (N, 1, 16, 16); ``d_avg``: their distances to the
    nearest training digit (N,) (or the median); ``fdd_avg``: their FDD; ``copy_rate_avg``:
    the percentage of samples closer to the training set than the 1st percentile of the
    test digits' distances."""
    avg = checks.images(
        checks.floating(checks.tensor(avg, "avg"), "avg"),
        channels=1,
        size=16,
        name="avg",
    )
    checks.nonempty(avg, "avg")
    x_train = checks.tensor(x_train, "x_train")
    x_test = checks.tensor(x_test, "x_test")
    d_ref = nearest_distance(avg.cpu(), x_train.cpu())
    expect(
        (d_ref == 0).double().mean() < 0.5,
        "most of your samples ARE training digits: average two different digits of "
        "the same class",
    )
    d = numbers(d_avg.detach().cpu() if torch.is_tensor(d_avg) else d_avg, "d_avg")
    if len(d) not in (1, len(avg)):
        raise ValueError(
            f"d_avg must hold one distance per sample ({len(avg)}) or their median, "
            f"got {len(d)} numbers"
        )
    med, med_ref = float(d.median()), float(d_ref.median())
    close(
        med,
        med_ref,
        f"d_avg (median {med:.3f}): the Euclidean distance of each average to its "
        "nearest training digit (flattened images), as for the table's rows",
        rtol=0.02,
    )
    fdd_ref = metrics.frechet_digit_distance(avg)
    fdd = number(fdd_avg, "fdd_avg")
    close(
        fdd,
        fdd_ref,
        "fdd_avg is the Fréchet digit distance of the averages, measured like the "
        "table's FDD column (against the held-out test digits)",
        rtol=0.01,
    )
    d_test = nearest_distance(x_test.cpu(), x_train.cpu())
    thresh = float(torch.quantile(d_test, 0.01))
    rate_ref = 100 * float((d_ref < thresh).double().mean())
    rate = number(copy_rate_avg, "copy_rate_avg")
    if (
        rate_ref > 0
        and abs(rate * 100 - rate_ref) <= 0.5
        and abs(rate - rate_ref) > 0.5
    ):
        raise NotYet(
            "copy_rate_avg is a percentage, like the table's 'below 1% of test' column"
        )
    close(
        rate,
        rate_ref,
        "copy_rate_avg: the percentage of averages closer to the training set than "
        f"{thresh:.2f}, the 1st percentile of the test digits' distances",
        atol=0.5,
        rtol=0,
    )
    return (
        f"{len(avg)} averages: median distance {med_ref:.2f} to the training set "
        f"(test digits {float(d_test.median()):.2f}), {rate_ref:.1f}% closer than the "
        f"test digits' 1st percentile, FDD {fdd_ref:.1f}: now set them beside the table"
    )
