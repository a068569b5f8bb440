"""Checks for chapter 3's exercises (learning a density model)."""

from __future__ import annotations

import math

import torch

from .. import checks, density, metrics
from . import checker, close, expect, number, numbers

_N = 5  # the size of each simulated data set in ch03-bias


@checker("ch03-bias")
def bias(*, var_hat) -> str:
    """``var_hat``: the maximum-likelihood variance of each of many simulated data sets of
    N = 5 draws from N(0, 1) (one value per data set)."""
    v = numbers(
        var_hat.detach().cpu() if torch.is_tensor(var_hat) else var_hat, "var_hat"
    )
    if len(v) < 2:
        raise TypeError(
            "var_hat must hold one ML variance per simulated data set (a sequence), "
            "not their average"
        )
    expect(
        bool((v >= 0).all()),
        "a variance is an average of squares and can never be negative",
    )
    n = len(v)
    expect(
        n >= 500,
        f"{n} data sets are too few to tell (N-1)/N = 0.8 from 1 by simulation: draw "
        "at least several hundred",
    )
    # N * var_hat is sigma^2 times a chi-square with N - 1 degrees of freedom
    sd = math.sqrt(2 * (_N - 1)) / _N
    se = sd / math.sqrt(n)
    mean, spread = float(v.mean()), float(v.std())
    expect(
        abs(mean - 1.0) > 5 * se,
        f"the average is {mean:.3f}, close to 1: that is the unbiased estimate; the "
        "maximum-likelihood variance divides the squared deviations by N, not N - 1",
    )
    expect(
        0.75 * sd <= spread <= 1.25 * sd,
        f"your {n} variances spread by {spread:.3f}: each one should be the ML variance "
        "of its own data set of 5 fresh standard normal draws, so they scatter widely "
        "from one data set to the next",
    )
    z = (mean - (_N - 1) / _N) / se
    expect(
        abs(z) <= 5,
        f"the average of your variances, {mean:.3f}, is {abs(z):.0f} standard errors "
        "from (N-1)/N: is each data set 5 draws from N(0, 1), with the variance taken "
        "around that data set's own mean?",
    )
    return (
        f"the ML variance averages {mean:.3f} over {n} data sets of N = 5, within "
        f"{abs(z):.1f} standard errors ({se:.3f}) of (N-1)/N = 0.8, and clearly below 1"
    )


def _mixtures(runs, name: str) -> list[density.GaussianMixture]:
    if not isinstance(runs, (list, tuple)) or not all(
        isinstance(m, density.GaussianMixture) for m in runs
    ):
        raise TypeError(
            f"{name} must be a list of fitted density.GaussianMixture models"
        )
    if any(m.means is None for m in runs):
        raise ValueError(f"every model in {name} must be fitted (call fit() first)")
    return list(runs)


@checker("ch03-local")
def local(*, ring_train, runs, finals, worst) -> str:
    """``runs``: the ten 8-component mixtures fitted to ``ring_train`` by EM, one per seed;
    ``finals``: the final training log-likelihood of each run (nats/point), in order;
    ``worst``: the run with the lowest of them."""
    x = checks.floating(checks.tensor(ring_train, "ring_train"), "ring_train")
    runs = _mixtures(runs, "runs")
    if not isinstance(worst, density.GaussianMixture) or worst.means is None:
        raise TypeError(
            "worst must be one of the fitted GaussianMixture models of runs"
        )
    expect(len(runs) == 10, f"fit ten runs, one per seed (got {len(runs)})")
    expect(
        all(m.k == 8 for m in runs),
        "every run is a mixture of 8 components, like the fit above",
    )
    loglik = [float(m.log_prob(x).mean()) for m in runs]
    expect(
        all(
            m.history and abs(m.history[-1] - ll) < 1e-6 for m, ll in zip(runs, loglik)
        ),
        "fit every run to the training ring (ring_train)",
    )
    expect(
        not any(
            torch.equal(a.means, b.means)
            for i, a in enumerate(runs)
            for b in runs[i + 1 :]
        ),
        "some of your runs are identical: start each EM run from its own seed",
    )
    f = numbers(finals, "finals")
    if len(f) != len(runs):
        raise ValueError(
            f"finals must hold one log-likelihood per run ({len(runs)}), got {len(f)}"
        )
    ref = torch.tensor(loglik, dtype=torch.float64)
    expect(
        torch.allclose(f, ref, atol=1e-4, rtol=0),
        "finals: for each run, in the order of runs, its average training "
        "log-likelihood per point (nats) after the last EM iteration",
    )
    close(
        float(worst.log_prob(x).mean()),
        float(ref.min()),
        "the worst fit is the run whose final training log-likelihood is the lowest",
        rtol=0,
        atol=1e-6,
    )
    lo, hi = float(ref.min()), float(ref.max())
    how = (
        "EM's end point depends on where it starts"
        if hi - lo > 1e-3
        else "here all ten reached the same optimum"
    )
    return f"the ten runs end between {lo:.3f} and {hi:.3f} nats/point: {how}"


@checker("ch03-anneal")
def anneal(*, moons_test, sigmas, init, langevin, flat, sw_flat) -> str:
    """``flat``: samples (n, 2) of Langevin dynamics at the smallest noise level only, from
    the start ``init``; ``sw_flat``: their sliced Wasserstein distance to ``moons_test``.
    ``langevin`` are the annealed sampler's samples (from the same start)."""
    for name, t in (
        ("moons_test", moons_test),
        ("init", init),
        ("langevin", langevin),
        ("flat", flat),
    ):
        checks.shape(checks.floating(checks.tensor(t, name), name), (None, 2), name)
    init, langevin, flat = (t.detach().cpu() for t in (init, langevin, flat))
    sigmas = checks.tensor(sigmas, "sigmas").detach().cpu()
    if flat.shape != init.shape or langevin.shape != init.shape:
        raise ValueError(
            f"flat {tuple(flat.shape)}, langevin {tuple(langevin.shape)} and init "
            f"{tuple(init.shape)} must hold the same number of points"
        )
    expect(
        bool(torch.isfinite(flat).all()),
        "some samples are NaN or infinite: the Langevin steps diverged (is the step "
        "size that of the smallest noise level?)",
    )
    start = float(init.std())
    expect(
        abs(start - float(sigmas[0])) <= 0.15 * float(sigmas[0]),
        f"the chains should start from the same broad noise as the annealed sampler, "
        f"with a spread of sigma_max = {float(sigmas[0]):.2f} (yours: {start:.2f})",
    )
    ref = metrics.sliced_wasserstein(flat, moons_test.detach().cpu())
    close(
        number(sw_flat, "sw_flat"),
        ref,
        "sw_flat is the sliced Wasserstein distance between your samples and the "
        "held-out moons, measured as in the table",
        rtol=0.02,
    )
    moved = float((flat - init).norm(dim=1).median())
    moved_ann = float((langevin - init).norm(dim=1).median())
    expect(
        moved > 0,
        "your samples are exactly their starting points: take the Langevin steps",
    )
    expect(
        moved < 0.5 * moved_ann,
        f"your chains moved a median {moved:.3f} from their start, about as far as the "
        f"annealed ones ({moved_ann:.3f}) or farther: use only the smallest noise level "
        "(and its step size), for the same total number of steps",
    )
    sw_ann = metrics.sliced_wasserstein(langevin, moons_test.detach().cpu())
    return (
        f"without annealing the chains moved a median {moved:.3f} from their start "
        f"(annealed: {moved_ann:.3f}); sliced Wasserstein {ref:.3f} against "
        f"{sw_ann:.3f} annealed"
    )
