"""Checks for the exercises of chapter 10's time-travel rephotography notebook."""

from __future__ import annotations

import torch

from .. import checks, degrade, metrics
from . import checker, close, expect, number


def _restored(x, truth, name) -> torch.Tensor:
    x = checks.tensor(x, name)
    if x.shape != truth.shape:
        raise ValueError(
            f"{name} must be one restored colour image per old photo, shape "
            f"{tuple(truth.shape)}, got {tuple(x.shape)}"
        )
    return checks.images(x.detach().cpu(), channels=3, name=name)


def _fit(restored, old, film="orthochromatic") -> float:
    """Mean squared error between the old photos and the camera's rendering of ``restored``."""
    with torch.no_grad():
        sim = degrade.antique_camera(restored, film=film, grain=0.0)
    return float(((sim - old) ** 2).mean())


def _scores(restored, truth, psnr, colour, what) -> tuple[float, float]:
    p, c = metrics.psnr(restored, truth), metrics.colour_error(restored, truth)
    close(
        number(psnr, "psnr"),
        p,
        f"the PSNR does not belong to {what}: measure metrics.psnr(restored, truth) "
        "against the modern ground truth",
        rtol=0.0,
        atol=0.01,
    )
    close(
        number(colour, "colour_error"),
        c,
        f"the colour error does not belong to {what}: measure "
        "metrics.colour_error(restored, truth)",
        rtol=0.0,
        atol=0.05,
    )
    return p, c


@checker("ch10-rephoto-film")
def wrong_film(*, old, truth, aware, restored_pan, psnr_pan, colour_pan) -> str:
    """``restored_pan``: degradation-aware restorations of the old photos fitted through a camera
    that assumes *panchromatic* film (otherwise the notebook's camera); ``psnr_pan`` and
    ``colour_pan`` their PSNR and colour error against the modern truth. ``aware``: the
    notebook's restorations (orthochromatic camera)."""
    truth = checks.images(checks.tensor(truth, "truth").cpu(), channels=3, name="truth")
    old = checks.images(checks.tensor(old, "old").cpu(), channels=1, name="old")
    aware = _restored(aware, truth, "aware")
    pan = _restored(restored_pan, truth, "restored_pan")
    expect(
        not torch.allclose(pan, aware, atol=1e-4),
        "these are the notebook's own restorations: invert again, with a camera whose "
        "film is 'panchromatic'",
    )
    expect(
        _fit(pan, old, "panchromatic") < _fit(aware, old, "panchromatic"),
        "seen through a panchromatic camera, these restorations match the old photos no "
        "better than the notebook's own: pass film='panchromatic' to the camera that the "
        "inversion renders through",
    )
    p, c = _scores(pan, truth, psnr_pan, colour_pan, "restored_pan")
    p0, c0 = metrics.psnr(aware, truth), metrics.colour_error(aware, truth)
    return (
        f"the wrong film: PSNR {p:.2f} dB, colour error {c:.1f} against {p0:.2f} dB, "
        f"{c0:.1f} with the right one"
    )


@checker("ch10-rephoto-sibling")
def no_sibling(*, old, truth, plain, restored_prior, psnr_prior, colour_prior) -> str:
    """``restored_prior``: degradation-aware restorations started from draws of the prior instead
    of the encoder's guess (no sibling, no latent anchor); ``psnr_prior`` and ``colour_prior``
    their PSNR and colour error. ``plain``: the plain inversion's restorations."""
    truth = checks.images(checks.tensor(truth, "truth").cpu(), channels=3, name="truth")
    old = checks.images(checks.tensor(old, "old").cpu(), channels=1, name="old")
    plain = _restored(plain, truth, "plain")
    prior = _restored(restored_prior, truth, "restored_prior")
    expect(
        _fit(prior, old) < _fit(plain, old),
        "seen through the old camera, these restorations match the old photos no better "
        "than the plain inversion does: fit G(w) *through* the camera (render=camera)",
    )
    p, c = _scores(prior, truth, psnr_prior, colour_prior, "restored_prior")
    return f"without the sibling: PSNR {p:.2f} dB, colour error {c:.1f}"
