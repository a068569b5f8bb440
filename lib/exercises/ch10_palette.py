"""Checks for the exercises of notebook 10.8 (Palette: image-to-image diffusion)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import checks, metrics
from . import NotYet, checker, expect, number


def _dicts(keys_of: str, **named) -> list:
    """The dicts ``named`` (all keyed alike); returns their common keys."""
    for name, d in named.items():
        if not isinstance(d, Mapping):
            raise TypeError(
                f"{name} must be a dict keyed by {keys_of}, got {type(d).__name__}"
            )
    keys = [set(d) for d in named.values()]
    if any(k != keys[0] for k in keys):
        raise ValueError(
            f"{', '.join(named)} must have the same keys ({keys_of}), got "
            + "; ".join(f"{n}: {sorted(map(str, d))}" for n, d in named.items())
        )
    return next(iter(named.values())).keys()


def _measured(test_rgb, samples, psnr, colourfulness, keys, pre) -> dict:
    """Recompute PSNR and colourfulness of each ``samples[k]``; expect the student's
    numbers. ``pre``: the prefix of the notebook's names (``step_`` for ``step_samples``, ...).
    Returns {k: (psnr, colourfulness)} as recomputed."""
    checks.images(test_rgb, channels=3, name="test_rgb")
    out = {}
    for k in keys:
        x = samples[k]
        checks.images(x, channels=3, name=f"{pre}samples[{k!r}]")
        if x.shape != test_rgb.shape:
            raise ValueError(
                f"{pre}samples[{k!r}] must colour every held-out patch: shape "
                f"{tuple(test_rgb.shape)}, got {tuple(x.shape)}"
            )
        x = x.detach().cpu()
        p, c = metrics.psnr(x, test_rgb), metrics.colourfulness(x)
        p_s = number(psnr[k], f"{pre}psnr[{k!r}]")
        c_s = number(colourfulness[k], f"{pre}colourfulness[{k!r}]")
        expect(
            abs(p_s - p) <= 0.05,
            f"{pre}psnr[{k!r}] is not the PSNR of {pre}samples[{k!r}] against the true "
            "colour patches (test_rgb), in dB, averaged over the patches",
        )
        expect(
            abs(c_s - c) <= 0.1 + 0.01 * c,
            f"{pre}colourfulness[{k!r}] is not the colourfulness of {pre}samples[{k!r}] "
            "(the RGB images, after putting the sampled chroma next to the luma)",
        )
        out[k] = (p, c)
    return out


@checker("ch10-palette-eps")
def palette_eps(
    *, test_rgb, predict_samples, predict_psnr, predict_colourfulness
) -> str:
    """``predict_samples``: {"eps": RGB samples of the noise predictor, "x0": of the x0
    predictor}, both (N, 3, H, W) in [-1, 1] for the held-out patches ``test_rgb``, the two
    models trained for the same number of steps; ``predict_psnr`` /
    ``predict_colourfulness``: their measures, keyed alike."""
    samples, psnr, colourfulness = predict_samples, predict_psnr, predict_colourfulness
    keys = _dicts(
        '"eps" and "x0"',
        predict_samples=samples,
        predict_psnr=psnr,
        predict_colourfulness=colourfulness,
    )
    if set(keys) != {"eps", "x0"}:
        raise ValueError(
            "predict_samples, predict_psnr and predict_colourfulness must be keyed by "
            f'"eps" and "x0" (the two values of predict), got {sorted(map(str, keys))}'
        )
    got = _measured(test_rgb, samples, psnr, colourfulness, ("eps", "x0"), "predict_")
    expect(
        not torch.equal(samples["eps"].detach().cpu(), samples["x0"].detach().cpu()),
        "the two samples are identical: train one model with predict='eps' and one "
        "with predict='x0', and sample each",
    )
    truth = metrics.colourfulness(test_rgb)
    (pe, ce), (px, cx) = got["eps"], got["x0"]
    return (
        f"noise predictor: PSNR {pe:.2f} dB, colourfulness {ce:.1f}; x0 predictor: "
        f"{px:.2f} dB, {cx:.1f} (true photos {truth:.1f}): the noise predictor is "
        + ("more" if ce > cx else "less")
        + " colourful and "
        + ("lower" if pe < px else "not lower")
        + " in PSNR after the same training"
    )


@checker("ch10-palette-steps")
def palette_steps(
    *, test_rgb, step_samples, step_psnr, step_colourfulness, step_seconds
) -> str:
    """``step_samples``: {DDIM steps: RGB samples of the held-out patches ``test_rgb``},
    for at least 2, 5 and 50 steps from the same starting noise; ``step_psnr``,
    ``step_colourfulness``, ``step_seconds`` (the sampling time): keyed alike."""
    samples, psnr, colourfulness = step_samples, step_psnr, step_colourfulness
    seconds = step_seconds
    keys = _dicts(
        "the number of DDIM steps",
        step_samples=samples,
        step_psnr=psnr,
        step_colourfulness=colourfulness,
        step_seconds=seconds,
    )
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in keys):
        raise TypeError("the keys must be numbers of DDIM steps (positive ints)")
    steps = sorted(keys)
    if not {2, 5, 50} <= set(steps):
        raise ValueError(f"sample with (at least) 2, 5 and 50 DDIM steps, got {steps}")
    got = _measured(test_rgb, samples, psnr, colourfulness, steps, "step_")
    secs = {k: number(seconds[k], f"step_seconds[{k}]") for k in steps}
    expect(
        all(s > 0 for s in secs.values()),
        "step_seconds should be the positive wall time of each sampling run",
    )
    lo, hi = steps[0], steps[-1]
    if secs[hi] <= secs[lo]:
        raise NotYet(
            f"sampling with {hi} steps took no longer than with {lo}: time the "
            "sampling call itself, each number of steps separately (every step is one "
            "U-Net evaluation)"
        )
    listed = (
        f"steps {', '.join(str(k) for k in steps)}: PSNR "
        + ", ".join(f"{got[k][0]:.2f}" for k in steps)
        + " dB; colourfulness "
        + ", ".join(f"{got[k][1]:.1f}" for k in steps)
        + "; "
        + ", ".join(f"{secs[k]:.2f}" for k in steps)
        + " s"
    )
    ratio = secs[hi] / secs[lo]
    return f"DDIM {listed}: {hi} steps cost {ratio:.0f}x the time of {lo}"
