"""Checks for the exercises of notebook 10.5 (Semantic image synthesis: SPADE)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import checks
from . import checker, expect, numbers


@checker("ch10-spade-flat")
def spade_flat(*, judge, uniform, flat_images, flat_acc) -> str:
    """``uniform``: flat one-hot layouts ``(N, C, H, W)`` (each one class everywhere, every
    class present); ``flat_images``: {"pix2pix": images, "SPADE": images}, each
    ``(N, 3, H, W)`` in [-1, 1]; ``flat_acc``: keyed alike, a tensor of ``C`` fractions (the
    judge's per-class pixel accuracy)."""
    checks.tensor(uniform, "uniform")
    if uniform.dim() != 4:
        raise ValueError(f"uniform must be one-hot layouts (N, C, H, W), got {tuple(uniform.shape)}")
    n, c = uniform.shape[:2]
    for name, d in (("flat_images", flat_images), ("flat_acc", flat_acc)):
        if not isinstance(d, Mapping) or set(d) != {"pix2pix", "SPADE"}:
            raise ValueError(f'{name} must be a dict with the keys "pix2pix" and "SPADE"')
    asked = uniform.argmax(1)                                            # (N, H, W)
    one_class = (uniform.sum(1) == 1).all() and bool(
        (asked == asked[:, :1, :1]).all())
    expect(one_class, "each layout of uniform must be one class everywhere (a one-hot "
           "map whose argmax is the same at every pixel)")
    per_layout = asked[:, 0, 0]
    expect(set(per_layout.tolist()) == set(range(c)),
           f"uniform must hold a flat layout of each of the {c} classes")
    got = {}
    for name, images in flat_images.items():
        checks.images(images, channels=3, name=f"flat_images[{name!r}]")
        if len(images) != n:
            raise ValueError(f"flat_images[{name!r}] must hold one image per layout ({n})")
        with torch.no_grad():
            seg = judge(images.float()).argmax(1)
        right = (seg == asked).float().mean((1, 2))                      # (N,)
        ref = torch.stack([right[per_layout == k].mean() for k in range(c)])
        acc = numbers(flat_acc[name], f"flat_acc[{name!r}]", length=c).float()
        expect((acc - ref).abs().max() <= 0.01,
               f"flat_acc[{name!r}] is not the fraction of pixels the judge labels with the "
               "class that was asked for, per class (in the order of landscapes.CLASSES)")
        got[name] = ref
    return ("per-class accuracy on flat layouts: pix2pix "
            + ", ".join(f"{a:.2f}" for a in got["pix2pix"].tolist())
            + "; SPADE " + ", ".join(f"{a:.2f}" for a in got["SPADE"].tolist()))


@checker("ch10-spade-mix")
def spade_mix(*, spade_g, mix_layout, mix_t, mix_images, mix_sky) -> str:
    """``mix_layout``: one one-hot layout ``(1, C, H, W)``; ``mix_t``: the interpolation
    weights, rising from 0 to 1; ``mix_images``: one image per weight ``(T, 3, H, W)``;
    ``mix_sky``: the mean colour of the sky region of each image ``(T, 3)``."""
    checks.tensor(mix_layout, "mix_layout")
    if mix_layout.dim() != 4 or len(mix_layout) != 1:
        raise ValueError(f"mix_layout must be one layout (1, C, H, W), got {tuple(mix_layout.shape)}")
    t = numbers(mix_t, "mix_t")
    expect(len(t) >= 5, "use at least five values of t between 0 and 1")
    expect(abs(float(t[0])) < 1e-6 and abs(float(t[-1]) - 1) < 1e-6 and bool((t.diff() > 0).all()),
           "mix_t must rise step by step from t = 0 (the first style) to t = 1 (the second)")
    checks.images(mix_images, channels=3, name="mix_images")
    if len(mix_images) != len(t):
        raise ValueError(f"mix_images must hold one image per value of t ({len(t)})")
    sky = mix_layout[0, 0].bool()                                        # landscapes.SKY == 0
    expect(bool(sky.any()), "pick a layout with some sky")
    ref = mix_images.detach()[:, :, sky].mean(2).double()                # (T, 3)
    got = numbers(mix_sky, "mix_sky").view(-1)
    if got.numel() != ref.numel():
        raise ValueError(f"mix_sky must be (T, 3) = ({len(t)}, 3), one mean colour per image")
    expect((got.view_as(ref) - ref).abs().max() <= 0.01,
           "mix_sky is not the mean colour of the sky pixels of each image (the pixels where "
           "the layout's sky channel is 1)")
    total = (ref[-1] - ref[0]).norm().item()
    expect(not torch.equal(mix_images[0], mix_images[-1]), "the two ends are the same image: encode two different style images, "
           "and paint the layout with their codes")
    steps = (ref[1:] - ref[:-1]).norm(dim=1)
    return (f"the sky moves by {total:.2f} (RGB distance, [-1, 1] units) from t = 0 to t = 1; "
            f"the largest single step is {steps.max().item():.2f}, "
            + ("a smooth walk" if steps.max().item() <= 0.5 * total + 0.05 else "a jumpy walk"))
