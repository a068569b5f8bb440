"""Checks for the exercises of chapter 10.4 (colorization and inpainting)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .. import checks, metrics, restoration
from . import checker, close, expect, number

METHODS = ("biharmonic", "context encoder")


def _entry(table, key: str, name: str) -> float:
    """``table[key]`` of one of the notebook's dicts of results, as a number."""
    if not isinstance(table, Mapping):
        raise TypeError(
            f"{name} must be the notebook's dict of results, got {type(table).__name__}"
        )
    if key not in table:
        raise ValueError(
            f"{name} must be the notebook's table, with an entry {key!r}; got keys {list(table)}"
        )
    return number(table[key], f"{name}[{key!r}]")


@checker("ch10-inpaint-big")
def inpaint_big(*, test_rgb, ce, hole_psnr, m16, psnr16, faster) -> str:
    """``m16``: the 16x16 hole masks ``(N, 1, H, W)`` (1 = missing) used on ``test_rgb``;
    ``psnr16``: {"biharmonic": dB, "context encoder": dB}, the PSNR inside those holes;
    ``faster``: the method ("biharmonic" or "context encoder") whose PSNR in the hole falls more
    from the 12x12 holes of the notebook's table ``hole_psnr`` to the 16x16 holes."""
    x = checks.images(
        checks.floating(checks.tensor(test_rgb, "test_rgb"), "test_rgb"),
        3,
        name="test_rgb",
    )
    if not isinstance(ce, nn.Module):
        raise TypeError(
            f"ce must be the context encoder (an nn.Module), got {type(ce).__name__}"
        )
    m = checks.binary(checks.tensor(m16, "m16"), "m16")
    if m.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(
            f"m16 must have shape {(x.shape[0], 1, *x.shape[2:])} (one mask per test image), "
            f"got {tuple(m.shape)}"
        )
    if not isinstance(psnr16, Mapping) or set(psnr16) != set(METHODS):
        raise TypeError(
            'psnr16 must be a dict {"biharmonic": PSNR in dB, "context encoder": PSNR in dB}'
        )
    if faster not in METHODS:
        raise ValueError(
            f'faster must be "biharmonic" or "context encoder", got {faster!r}'
        )
    m = m.to(x.dtype)
    area = m.sum(dim=(1, 2, 3))
    expect(
        bool((area == 256).all()),
        f"every mask should remove a 16 x 16 square, 256 pixels; yours remove {int(area.min())} to "
        f"{int(area.max())}",
    )
    rows, cols = (
        m[:, 0].amax(2).sum(1),
        m[:, 0].amax(1).sum(1),
    )  # the extent of each hole
    expect(
        bool(((rows == 16) & (cols == 16)).all()),
        "each hole should be one 16 x 16 square",
    )
    with torch.no_grad():
        filled_ce = restoration.restore(ce, torch.cat([x * (1 - m), m], 1)).to(x.dtype)
    reference = {
        "biharmonic": metrics.psnr_masked(
            restoration.inpaint_biharmonic(x * (1 - m), m), x, m
        ),
        "context encoder": metrics.psnr_masked(filled_ce.clamp(-1, 1), x, m),
    }
    got = {k: number(psnr16[k], f"psnr16[{k!r}]") for k in METHODS}
    for k in METHODS:
        close(
            got[k],
            reference[k],
            f"psnr16[{k!r}] is not the PSNR of the {k} fill inside these holes: fill the masked "
            "test photos (the network sees the masked image and the mask) and measure the PSNR "
            "over the hole pixels only, averaged over images",
            rtol=0.0,
            atol=0.05,
        )
    before = {
        "biharmonic": _entry(hole_psnr, "biharmonic (classical)", "hole_psnr"),
        "context encoder": _entry(
            hole_psnr, "context encoder, content loss", "hole_psnr"
        ),
    }
    change = {k: reference[k] - before[k] for k in METHODS}  # 12x12 -> 16x16, in dB
    other = next(k for k in METHODS if k != faster)
    expect(
        change[faster] < change[other],
        "the method that degrades faster is the one whose PSNR in the hole falls more (or "
        "rises less) from the 12 x 12 holes of the table to the 16 x 16 ones: compare the "
        "two changes",
    )
    return (
        "from 12x12 to 16x16 holes the PSNR in the hole goes "
        + ", ".join(
            f"{before[k]:.2f} -> {reference[k]:.2f} dB ({change[k]:+.2f}) for the {k}"
            for k in METHODS
        )
        + (
            f": the {faster} degrades faster"
            if change[faster] < 0
            else f": neither degrades on these few patches, and the {faster} gains less"
        )
    )


@checker("ch10-colour-weight")
def colour_weight(
    *,
    test_gray,
    test_rgb,
    col_l1,
    colour_c,
    col_big,
    big_psnr,
    big_colour,
    more_colourful,
) -> str:
    """``col_big``: a copy of the l1 colorizer fine-tuned with the adversarial weight 0.3;
    ``big_psnr`` / ``big_colour``: its PSNR (dB) and colourfulness on the test patches;
    ``more_colourful``: True if it is more colourful than the l1 + cGAN colorizer of the table
    ``colour_c`` (the notebook's {name: colourfulness})."""
    gray = checks.images(
        checks.floating(checks.tensor(test_gray, "test_gray"), "test_gray"),
        1,
        name="test_gray",
    )
    rgb = checks.images(
        checks.floating(checks.tensor(test_rgb, "test_rgb"), "test_rgb"),
        3,
        name="test_rgb",
    )
    for name, net in (("col_l1", col_l1), ("col_big", col_big)):
        if not isinstance(net, nn.Module):
            raise TypeError(
                f"{name} must be a colorizer (an nn.Module), got {type(net).__name__}"
            )
    if not isinstance(more_colourful, bool):
        raise TypeError(
            f"more_colourful must be True or False, got {type(more_colourful).__name__}"
        )
    c_l1 = _entry(colour_c, "l1", "colour_c")
    c_gan = _entry(colour_c, "l1 + cGAN", "colour_c")
    expect(
        col_big is not col_l1,
        "col_big is the l1 colorizer itself: fine-tune a copy of it, so that the table's l1 row "
        "still describes the l1 colorizer",
    )
    with torch.no_grad():
        v_l1 = restoration.restore(col_l1, gray).clamp(-1, 1)
        v = restoration.restore(col_big, gray).clamp(-1, 1)
    close(
        metrics.colourfulness(v_l1),
        c_l1,
        "the l1 colorizer no longer gives the colours of the table: was it fine-tuned in place? "
        "Start the fine-tuning from a copy of it",
        rtol=1e-3,
        atol=1e-3,
    )
    expect(
        float((v - v_l1).abs().max()) > 1e-5,
        "col_big colours the test patches exactly as the l1 colorizer does: fine-tune it "
        "(with the larger adversarial weight) before measuring",
    )
    ref_psnr, ref_colour = metrics.psnr(v, rgb), metrics.colourfulness(v)
    close(
        number(big_psnr, "big_psnr"),
        ref_psnr,
        "big_psnr is the PSNR of col_big's colorized test patches against the true colour patches",
        rtol=0.0,
        atol=0.02,
    )
    close(
        number(big_colour, "big_colour"),
        ref_colour,
        "big_colour is the colourfulness (metrics.colourfulness) of col_big's colorized test "
        "patches, on the same scale as the table",
        rtol=0.01,
        atol=0.05,
    )
    expect(
        more_colourful == (ref_colour > c_gan),
        "compare col_big's colourfulness with the l1 + cGAN row of the table "
        "(adversarial weight 0.05)",
    )
    return (
        f"adversarial weight 0.3: PSNR {ref_psnr:.2f} dB, colourfulness {ref_colour:.1f} "
        f"(l1 alone {c_l1:.1f}, l1 + 0.05 cGAN {c_gan:.1f}): "
        + (
            "more colourful still"
            if more_colourful
            else "no more colourful than with 0.05"
        )
    )
