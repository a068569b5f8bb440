"""Checks for the exercises of chapter 10.1 (single-image super-resolution)."""

from __future__ import annotations

import torch

from .. import checks, metrics, restoration
from . import checker, close, expect, keyed, numbers

LOSSES = ("l1", "l2")
N_RERUN = 4  # test patches on which the networks are re-run: are the outputs theirs?


def psnr_each(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of every image of ``x`` against ``ref`` (both in [-1, 1], peak = the [0, 1]
    range), as ``metrics.psnr`` computes it before averaging."""
    mse = (((x.double() - ref.double()) / 2) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-20))


def sharpness_each(x: torch.Tensor) -> torch.Tensor:
    """``metrics.sharpness`` of every image of ``x``."""
    return torch.tensor([metrics.sharpness(x[i : i + 1]) for i in range(len(x))])


@checker("ch10-sr-l2")
def pixel_loss(*, net_l1, net_l2, test_lr, test_hr, outs, scores, blurrier) -> str:
    """``outs``: {"l1": restored test patches, "l2": ...} of the two retrained networks;
    ``scores``: {"l1": (PSNR in dB, sharpness / sharpness of test_hr), "l2": ...};
    ``blurrier``: "l1" or "l2", the loss whose network gives the blurrier output."""
    hr = checks.images(test_hr, name="test_hr")
    lr = checks.images(test_lr, name="test_lr")
    nets = {"l1": net_l1, "l2": net_l2}
    for k, net in nets.items():
        if not isinstance(net, torch.nn.Module):
            raise TypeError(
                f"net_{k} must be the retrained network, got {type(net).__name__}"
            )
    outs = keyed(outs, "outs", LOSSES, "restored test patches")
    scores = keyed(scores, "scores", LOSSES, "PSNR in dB, sharpness / true sharpness")
    for k in LOSSES:
        checks.tensor(outs[k], f"outs[{k!r}]")
        if outs[k].shape != hr.shape:
            raise ValueError(
                f"outs[{k!r}] must be the restored test patches, shape "
                f"{tuple(hr.shape)}, got {tuple(outs[k].shape)}"
            )
        checks.value_range(outs[k], -1, 1, f"outs[{k!r}]")
    if blurrier not in LOSSES:
        raise ValueError(f"blurrier must be 'l1' or 'l2', got {blurrier!r}")

    for k in LOSSES:
        rerun = restoration.restore(nets[k], lr[:N_RERUN]).clamp(-1, 1)
        expect(
            torch.allclose(rerun, outs[k][:N_RERUN].cpu().to(rerun.dtype), atol=2e-3),
            f"outs[{k!r}] is not what net_{k} makes of the low-resolution test patches: "
            "run each network on test_lr and clip to [-1, 1]",
        )
    expect(
        not torch.equal(outs["l1"], outs["l2"]),
        "the two outputs are identical: train a second network with the other loss "
        "(a fresh one from the same initialisation), do not reuse the first",
    )
    sharp_true = metrics.sharpness(hr)
    ref = {
        k: (metrics.psnr(outs[k], hr), metrics.sharpness(outs[k]) / sharp_true)
        for k in LOSSES
    }
    got = {}
    for k in LOSSES:
        pair = numbers(scores[k], f"scores[{k!r}]", length=2)
        got[k] = (float(pair[0]), float(pair[1]))
        close(
            got[k][0],
            ref[k][0],
            f"scores[{k!r}][0] is the PSNR (dB) of the {k} network's output against "
            "the true high-resolution test patches, the mean over patches as "
            "metrics.psnr gives it",
            rtol=0.0,
            atol=0.05,
        )
        close(
            got[k][1],
            ref[k][1],
            f"scores[{k!r}][1] is the sharpness of the {k} output as a *fraction* of "
            "the sharpness of the true patches (1.0 = as sharp as the real photos)",
            rtol=0.01,
        )
    soft, crisp = sorted(LOSSES, key=lambda k: ref[k][1])
    tie = ref[crisp][1] - ref[soft][1] < 0.005 * ref[crisp][1]
    expect(
        tie or blurrier == soft,
        "the blurrier output is the one with the lower sharpness ratio: "
        "compare the two numbers you measured",
    )
    closing = (
        "the two are equally sharp (within 0.5%)"
        if tie
        else f"the {soft} network is the blurrier one here"
    )
    return (
        f"l1: {ref['l1'][0]:.2f} dB, sharpness {ref['l1'][1]:.3f} of the true patches; "
        f"l2: {ref['l2'][0]:.2f} dB, sharpness {ref['l2'][1]:.3f}; {closing}"
    )


@checker("ch10-sr-where")
def where(*, sr_resnet, sr_bicubic, test_hr, gain, sharp) -> str:
    """``gain``: per test patch, PSNR of SRResNet minus PSNR of bicubic (dB); ``sharp``: per
    test patch, the sharpness (mean gradient magnitude) of the true high-resolution patch."""
    hr = checks.images(test_hr, name="test_hr")
    for name, x in (("sr_resnet", sr_resnet), ("sr_bicubic", sr_bicubic)):
        checks.images(x, name=name)
        if x.shape != hr.shape:
            raise ValueError(
                f"{name} must have the shape of test_hr {tuple(hr.shape)}, "
                f"got {tuple(x.shape)}"
            )
    n = len(hr)
    g = numbers(gain, "gain", length=n)
    s = numbers(sharp, "sharp", length=n)
    ref_g = psnr_each(sr_resnet, hr) - psnr_each(sr_bicubic, hr)
    ref_s = sharpness_each(hr).double()
    right = torch.allclose(g, ref_g, atol=0.02)
    expect(
        right or not torch.allclose(g, -ref_g, atol=0.02),
        "the signs are reversed: a gain of SRResNet over bicubic is "
        "PSNR(SRResNet) - PSNR(bicubic), positive where SRResNet is closer to the truth",
    )
    expect(
        right or not torch.allclose(g.sort().values, ref_g.sort().values, atol=0.02),
        "the gains are right but not in the order of the test patches: keep gain[i] "
        "for patch i, so that it can be paired with sharp[i]",
    )
    expect(
        right,
        "gain[i] is the PSNR (dB) of SRResNet's output for test patch i alone minus "
        "that of the bicubic output for the same patch, both against the true patch",
    )
    expect(
        torch.allclose(s, ref_s, rtol=0.01, atol=1e-6),
        "sharp[i] is the sharpness (metrics.sharpness, the mean gradient magnitude) "
        "of the true high-resolution patch i, not of a restored one",
    )
    summary = (
        f"{n} per-patch gains from {ref_g.min():.2f} to {ref_g.max():.2f} dB "
        f"(mean {ref_g.mean():.2f})"
    )
    if n < 3:
        return summary
    corr = float(torch.corrcoef(torch.stack([ref_s, ref_g]))[0, 1])
    thirds = [ref_g[i].mean().item() for i in ref_s.argsort().tensor_split(3)]
    return (
        f"{summary}; mean gain on the flattest, middle and sharpest third of the "
        f"patches: {thirds[0]:.2f}, {thirds[1]:.2f}, {thirds[2]:.2f} dB; "
        f"correlation with sharpness {corr:.2f}"
    )
