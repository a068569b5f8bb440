"""Checks for the exercises of chapter 10.3 (high dynamic range imaging)."""

from __future__ import annotations

import torch

from .. import checks, metrics, restoration
from . import checker, close, expect, number, numbers

REGIONS = ("all pixels", "clipped in middle", "not clipped")


def _inputs(
    test_stack, test_rad, times
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    stack = checks.tensor(test_stack, "test_stack")
    rad = checks.tensor(test_rad, "test_rad")
    if (
        stack.dim() != 5
        or rad.dim() != 4
        or stack.shape[:1] + stack.shape[2:] != rad.shape
    ):
        raise ValueError(
            "test_stack must be (N, K, C, H, W) exposures of test_rad (N, C, H, W), got "
            f"{tuple(stack.shape)} and {tuple(rad.shape)}"
        )
    t = [float(v) for v in numbers(times, "times", length=stack.shape[1])]
    if min(t) <= 0:
        raise ValueError(f"times must be positive, got {t}")
    return stack, rad, t


def _errors(est, rad, clipped) -> list[float]:
    return [
        metrics.log_radiance_error(est, rad),
        metrics.log_radiance_error(est, rad, clipped),
        metrics.log_radiance_error(est, rad, 1 - clipped),
    ]


@checker("ch10-hdr-two")
def two_exposures(*, test_stack, test_rad, clipped_mid, times, err_two) -> str:
    """``err_two``: log2-radiance error (stops) of the classical merge of the stack without its
    longest exposure, as (all pixels, clipped in the middle exposure, not clipped) -- the
    columns of the notebook's table. ``times``: the exposure times of the full stack."""
    stack, rad, t = _inputs(test_stack, test_rad, times)
    clipped = checks.binary(checks.tensor(clipped_mid, "clipped_mid"), "clipped_mid")
    if clipped.shape != (rad.shape[0], 1, *rad.shape[2:]):
        raise ValueError(
            f"clipped_mid must be the (N, 1, H, W) mask of the test stack, "
            f"got {tuple(clipped.shape)}"
        )
    if isinstance(err_two, (int, float)):
        raise TypeError(
            "err_two must be three errors in stops: (all pixels, clipped in middle, "
            "not clipped), the columns of the table"
        )
    got = [float(v) for v in numbers(err_two, "err_two", length=3)]
    longest = max(range(len(t)), key=t.__getitem__)
    keep = [j for j in range(len(t)) if j != longest]
    two = restoration.merge_debevec(stack[:, keep], [t[j] for j in keep])
    ref = _errors(two, rad, clipped)
    three = _errors(restoration.merge_debevec(stack, t), rad, clipped)
    same = all(abs(g - h) <= 1e-4 + 1e-3 * h for g, h in zip(got, three))
    expect(
        not same or ref == three,
        "these are the errors of the three-exposure merge: merge the stack without "
        "its longest exposure",
    )
    for name, g, r in zip(REGIONS, got, ref):
        close(
            g,
            r,
            f"the error '{name}' does not match the classical merge of the two shorter "
            f"exposures (t = {', '.join(f'{t[j]:g}' for j in keep)}): drop the *long* "
            "exposure, tell the merge the times of the two you keep, and measure in "
            "stops (log2) in the order all pixels, clipped in middle, not clipped",
            rtol=0.01,
            atol=1e-4,
        )
    growth = ", ".join(
        f"{name} {r:.3f} (three exposures: {h:.3f})"
        for name, r, h in zip(REGIONS, ref, three)
    )
    return f"two-exposure error in stops: {growth}"


@checker("ch10-hdr-crf")
def response_curve(*, test_stack, test_rad, times, err_wrong) -> str:
    """``err_wrong``: log2-radiance error (stops, all pixels) of the classical merge of the test
    stack that assumes a linear camera (gamma = 1)."""
    stack, rad, t = _inputs(test_stack, test_rad, times)
    got = number(err_wrong, "err_wrong")
    ref = metrics.log_radiance_error(
        restoration.merge_debevec(stack, t, gamma=1.0), rad
    )
    right = metrics.log_radiance_error(restoration.merge_debevec(stack, t), rad)
    expect(
        abs(got - right) > 1e-3 * right or abs(ref - right) <= 1e-3 * right,
        "this is the error of the merge with the true response curve: assume a linear "
        "camera (gamma = 1) when the pixel values are turned back into exposures",
    )
    close(
        got,
        ref,
        "err_wrong is the mean absolute error of log2 radiance (stops) over all pixels "
        "of the test stack, merged with all exposures but with gamma = 1",
        rtol=0.01,
        atol=1e-4,
    )
    return (
        f"assuming a linear camera: {ref:.3f} stops against {right:.3f} with the true "
        f"curve ({ref / right:.1f} times the error)"
    )
