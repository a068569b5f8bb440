"""Checks for the exercises of chapter 10's scene-attribute editing notebook."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .. import attributes, checks, metrics
from . import checker, close, expect, number, numbers


def _images(x, name):
    return checks.images(checks.floating(checks.tensor(x, name), name), 3, name=name)


def _per_edit(table, name) -> dict[str, float]:
    if not isinstance(table, Mapping) or set(table) != set(attributes.EDIT_NAMES):
        raise TypeError(
            f"{name} must be a dict with one number per edit {attributes.EDIT_NAMES}"
        )
    return {e: number(table[e], f"{name}[{e!r}]") for e in attributes.EDIT_NAMES}


@checker("ch10-edit-oracle")
def edit_oracle(*, judge, x_test, truth, oracle_acc, oracle_psnr, worst) -> str:
    """``oracle_acc`` / ``oracle_psnr``: {edit: judge accuracy in % / PSNR to the truth in dB}
    of the histogram transfer of each test scene to its own true render under that edit;
    ``worst``: the edit with the lowest PSNR."""
    x = _images(x_test, "x_test")
    if not isinstance(judge, attributes.AttributeJudge):
        raise TypeError(
            f"judge must be the notebook's AttributeJudge, got {type(judge).__name__}"
        )
    if not isinstance(truth, Mapping) or set(truth) != set(attributes.EDIT_NAMES):
        raise TypeError("truth must be the notebook's dict {edit: true renders}")
    if worst not in attributes.EDIT_NAMES:
        raise ValueError(f"worst must be one of {attributes.EDIT_NAMES}, got {worst!r}")
    acc, psnr = _per_edit(oracle_acc, "oracle_acc"), _per_edit(oracle_psnr, "oracle_psnr")
    ref_acc, ref_psnr = {}, {}
    for e in attributes.EDIT_NAMES:
        t = _images(truth[e], f"truth[{e!r}]")
        out = attributes.histogram_transfer(x, t)
        ref_acc[e] = 100 * attributes.attribute_accuracy(judge, out, e)
        ref_psnr[e] = metrics.psnr(out, t)
    for e in attributes.EDIT_NAMES:
        close(
            psnr[e],
            ref_psnr[e],
            f"oracle_psnr[{e!r}] is not the PSNR of the histogram transfer to each scene's own "
            "true render: the exemplar of scene i is truth[edit][i], and the PSNR is measured "
            "against that same render",
            rtol=0.0,
            atol=0.05,
        )
        close(
            acc[e],
            ref_acc[e],
            f"oracle_acc[{e!r}] should be the judge's accuracy (in %) on those transfers: "
            "attributes.attribute_accuracy gives a fraction",
            rtol=0.0,
            atol=0.5,
        )
    expect(
        worst == min(ref_psnr, key=ref_psnr.get),
        "worst is the edit whose oracle transfer has the lowest PSNR to the truth",
    )
    return (
        "oracle histogram transfer: "
        + ", ".join(f"{e} {ref_acc[e]:.0f}% / {ref_psnr[e]:.1f} dB" for e in ref_psnr)
        + f"; furthest from the truth: {worst}"
    )


@checker("ch10-edit-radius")
def edit_radius(
    *, x_test, halluc, truth, eps, radii, kept_r, psnr_r, more_structure
) -> str:
    """``radii``: the window radii tried; ``kept_r`` / ``psnr_r``: the structure kept
    (``attributes.structure_kept``) and the PSNR to ``truth`` of
    ``local_affine_transfer(x_test, halluc, r, eps)`` for each; ``more_structure``: True if
    the largest radius keeps more structure than the smallest."""
    x, h, t = _images(x_test, "x_test"), _images(halluc, "halluc"), _images(truth, "truth")
    if not isinstance(radii, Sequence) or isinstance(radii, str) or len(radii) < 3:
        raise TypeError("radii must be a list of at least three window radii")
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in radii):
        raise ValueError(f"radii must be integers >= 0, got {radii!r}")
    if not isinstance(more_structure, bool):
        raise TypeError(
            f"more_structure must be True or False, got {type(more_structure).__name__}"
        )
    kept = numbers(kept_r, "kept_r", len(radii))
    psnr = numbers(psnr_r, "psnr_r", len(radii))
    expect(
        len(set(radii)) == len(radii) and list(radii) == sorted(radii),
        "try distinct radii in increasing order",
    )
    with torch.no_grad():
        outs = [attributes.local_affine_transfer(x, h, r, float(eps)) for r in radii]
    ref_kept = [attributes.structure_kept(o, x) for o in outs]
    ref_psnr = [metrics.psnr(o, t) for o in outs]
    for i, r in enumerate(radii):
        close(
            float(kept[i]),
            ref_kept[i],
            f"kept_r for radius {r} is not the structure kept by the transfer with that "
            "radius (same hallucinations, same eps), measured against the input",
            rtol=0.0,
            atol=0.005,
        )
        close(
            float(psnr[i]),
            ref_psnr[i],
            f"psnr_r for radius {r} is not the PSNR of that transfer to the true night render",
            rtol=0.0,
            atol=0.05,
        )
    expect(
        more_structure == (ref_kept[-1] > ref_kept[0]),
        "compare the structure kept with the largest radius and with the smallest",
    )
    return "radius " + ", ".join(
        f"{r}: kept {k:.3f}, {p:.1f} dB" for r, k, p in zip(radii, ref_kept, ref_psnr)
    )
