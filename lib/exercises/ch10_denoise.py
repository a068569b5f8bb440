"""Checks for the exercises of chapter 10.2 (denoising and deblurring)."""

from __future__ import annotations

import torch

from .. import checks, degrade, metrics, restoration
from . import checker, close, expect, number

TRAIN_SIGMA_MAX = 0.22  # the DnCNN of the notebook saw noise levels in [0, 0.22]


@checker("ch10-dn-ood")
def out_of_range(*, dncnn, test_x, noisy, s_out, strength, psnr_net, psnr_nlm) -> str:
    """``noisy``: the test patches with noise of level ``s_out`` ([0, 1] units) added, as the
    denoisers saw them; ``psnr_net`` / ``psnr_nlm``: PSNR (dB) of DnCNN (told ``s_out`` by its
    noise-level map) and of non-local means (told ``s_out``, at ``strength``) on them."""
    if not isinstance(dncnn, torch.nn.Module):
        raise TypeError(
            f"dncnn must be the trained network, got {type(dncnn).__name__}"
        )
    clean = checks.images(test_x, name="test_x")
    checks.tensor(noisy, "noisy")
    if noisy.shape != clean.shape:
        raise ValueError(
            f"noisy must have the shape of test_x {tuple(clean.shape)}, "
            f"got {tuple(noisy.shape)}"
        )
    checks.finite(noisy, "noisy")
    s = number(s_out, "s_out")
    k = number(strength, "strength")
    if s <= 0 or k <= 0:
        raise ValueError(f"s_out and strength must be > 0, got {s} and {k}")
    expect(
        s > TRAIN_SIGMA_MAX,
        f"sigma = {s:g} is inside the training range (up to {TRAIN_SIGMA_MAX}): the "
        "exercise is about a level the network never saw",
    )
    measured = float((noisy.double() - clean.double()).std()) / 2
    expect(
        abs(measured - s) <= 0.05 * s,
        f"the noise in `noisy` has a level of {measured:.3f}, not sigma = {s:g}: the "
        "levels are in units of the [0, 1] range (twice that on the [-1, 1] images), "
        "and the noisy images are not clipped, as in the notebook's noisy_test",
    )
    level = torch.full_like(noisy, 2 * s)
    out_net = restoration.restore(dncnn, torch.cat([noisy, level], 1)).clamp(-1, 1)
    ref_net = metrics.psnr(out_net, clean)
    ref_nlm = metrics.psnr(
        restoration.denoise_classical(noisy, "nl_means", s, k), clean
    )
    ref_noisy = metrics.psnr(noisy.clamp(-1, 1), clean)
    close(
        number(psnr_net, "psnr_net"),
        ref_net,
        "psnr_net is the PSNR of DnCNN's output (clipped to [-1, 1]) against the clean "
        "test patches, with the network told the true level through its noise-level "
        "map (the same two-channel input as in training)",
        rtol=0.0,
        atol=0.05,
    )
    close(
        number(psnr_nlm, "psnr_nlm"),
        ref_nlm,
        "psnr_nlm is the PSNR of non-local means against the clean test patches, "
        "with the true sigma and the strength you pass to this check",
        rtol=0.0,
        atol=0.05,
    )
    return (
        f"at sigma = {s:g} (training range up to {TRAIN_SIGMA_MAX}): noisy input "
        f"{ref_noisy:.2f} dB, DnCNN {ref_net:.2f} dB, non-local means {ref_nlm:.2f} dB"
    )


def _kernels(value, n: int, name: str) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor) and value.dim() == 3:
        value = list(value)
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"{name} must be a list of 2-D kernels, one per test patch, "
            f"got {type(value).__name__}"
        )
    if len(value) != n:
        raise ValueError(
            f"{name} must hold {n} kernels (one per patch), got {len(value)}"
        )
    return [degrade.check_kernel(k).double() for k in value]


def spread(kernel: torch.Tensor) -> torch.Tensor:
    """The 2x2 covariance matrix of a kernel seen as a distribution over (row, col)."""
    rows, cols = torch.meshgrid(
        torch.arange(kernel.shape[0], dtype=torch.float64),
        torch.arange(kernel.shape[1], dtype=torch.float64),
        indexing="ij",
    )
    p = kernel.double() / kernel.sum()
    coords = torch.stack([rows.flatten(), cols.flatten()], 1)
    mean = (p.flatten()[:, None] * coords).sum(0)
    centred = coords - mean
    return (p.flatten()[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(
        0
    )


def _rotated(c: torch.Tensor) -> torch.Tensor:
    """The covariance of a kernel after a rotation by 90 degrees (either way)."""
    return torch.stack(
        [torch.stack([c[1, 1], -c[0, 1]]), torch.stack([-c[1, 0], c[0, 0]])]
    )


@checker("ch10-db-wrong-kernel")
def wrong_kernel(
    *,
    blurred_test,
    test_x,
    test_kernels,
    wrong_kernels,
    iterations,
    psnr_true,
    psnr_wrong,
) -> str:
    """``wrong_kernels``: per test patch, its true kernel rotated by 90 degrees;
    ``psnr_true`` / ``psnr_wrong``: PSNR (dB) of Richardson-Lucy with ``iterations`` iterations
    given the true / the rotated kernels."""
    clean = checks.images(test_x, name="test_x")
    blurred = checks.images(blurred_test, name="blurred_test")
    if blurred.shape != clean.shape:
        raise ValueError(
            f"blurred_test must have the shape of test_x {tuple(clean.shape)}, "
            f"got {tuple(blurred.shape)}"
        )
    true = _kernels(test_kernels, len(clean), "test_kernels")
    wrong = _kernels(wrong_kernels, len(clean), "wrong_kernels")
    n_iter = checks.positive_int(iterations, "iterations")
    for i, (k, w) in enumerate(zip(true, wrong)):
        expect(
            not (k.shape == w.shape and torch.allclose(k, w, atol=1e-6)),
            f"wrong_kernels[{i}] is the true kernel of patch {i}: rotate each kernel "
            "by 90 degrees",
        )
        c, cw = spread(k), spread(w)
        expect(
            torch.allclose(cw, _rotated(c), atol=0.05 * float(c.trace()) + 1e-6),
            f"wrong_kernels[{i}] is not the true kernel of patch {i} turned by 90 "
            "degrees: the same streak (same length) in the perpendicular direction",
        )

    def deconvolve_all(kernels):
        return torch.cat(
            [
                restoration.deconvolve(b[None], k.float(), "richardson_lucy", n_iter)
                for b, k in zip(blurred, kernels)
            ]
        )

    ref_true = metrics.psnr(deconvolve_all(true), clean)
    ref_wrong = metrics.psnr(deconvolve_all(wrong), clean)
    close(
        number(psnr_true, "psnr_true"),
        ref_true,
        "psnr_true is the PSNR of Richardson-Lucy given each patch's true kernel "
        f"({n_iter} iterations), against the sharp test patches",
        rtol=0.0,
        atol=0.05,
    )
    close(
        number(psnr_wrong, "psnr_wrong"),
        ref_wrong,
        "psnr_wrong is the same PSNR with each patch deconvolved by *its own* rotated "
        "kernel, with the same number of iterations",
        rtol=0.0,
        atol=0.05,
    )
    loss = ref_true - ref_wrong
    change = f"{loss:.2f} dB lost" if loss >= 0 else f"{-loss:.2f} dB gained"
    return (
        f"Richardson-Lucy ({n_iter} iterations) on {len(clean)} patches: "
        f"{ref_true:.2f} dB with the true kernels, {ref_wrong:.2f} dB with kernels "
        f"turned by 90 degrees ({change})"
    )
