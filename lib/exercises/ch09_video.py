"""Checks for the exercises of chapter 9's text-to-video notebook."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import checks, video
from . import checker, close, expect, number


def _clips(x, name: str, n: int | None = None) -> torch.Tensor:
    x = checks.tensor(x, name)
    if x.dim() != 5 or x.shape[2] != 3:
        raise ValueError(f"{name} must be clips of shape (N, frames, 3, H, W), got {tuple(x.shape)}")
    if n is not None and len(x) != n:
        raise ValueError(f"{name} must hold one clip per caption ({n}), got {len(x)}")
    return x.detach().cpu().float()


def _captions(captions) -> list[str]:
    if isinstance(captions, str) or not isinstance(captions, (list, tuple)) or not captions:
        raise TypeError("captions must be a non-empty list of motion captions")
    for c in captions:
        video.parse_motion_caption(c)  # a clear ValueError for a caption outside the grammar
    return list(captions)


def _percent(mask: torch.Tensor) -> float:
    return 100 * mask.float().mean().item()


@checker("ch09-video-guidance")
def guidance(*, guide_caps, clips_by_w, motion_by_w) -> str:
    """``guide_caps``: the motion captions; ``clips_by_w``: {guidance scale w: clips (N, frames,
    3, 32, 32)} of the video model, one per caption, at several scales including 0; ``motion_by_w``: {w: % of clips whose tracked
    object moves the caption's way at its speed} (:func:`lib.video.motion_report`)."""
    captions = _captions(guide_caps)
    for name, d in (("clips_by_w", clips_by_w), ("motion_by_w", motion_by_w)):
        if not isinstance(d, Mapping) or len(d) < 3:
            raise TypeError(f"{name} must be a dict {{guidance scale: ...}} with at least 3 scales")
    if set(clips_by_w) != set(motion_by_w):
        raise ValueError("clips_by_w and motion_by_w must share their keys (the guidance scales)")
    ws = sorted(clips_by_w, key=lambda w: number(w, "a guidance scale"))
    expect(
        number(ws[0], "w") == 0 and number(ws[-1], "w") >= 3,
        "compare the unguided model (w = 0) with strong guidance (w = 3 or more)",
    )
    rates = {}
    for w in ws:
        x = _clips(clips_by_w[w], f"clips_by_w[{w}]", len(captions))
        rates[w] = _percent(video.motion_report(x, captions)["motion"])
        close(
            number(motion_by_w[w], f"motion_by_w[{w}]"),
            rates[w],
            f"at w = {w:g} the motion rate is not the one of these clips: measure "
            "video.motion_report(clips, captions)['motion'] as a percentage",
            rtol=0.0,
            atol=0.5,
        )
    first = _clips(clips_by_w[ws[0]], "clips")
    expect(
        not torch.allclose(first, _clips(clips_by_w[ws[-1]], "clips"), atol=1e-4),
        "the clips at the smallest and the largest scale are the same: did the scale reach "
        "the sampler?",
    )
    return "moving as the caption says: " + ", ".join(f"w = {w:g} {rates[w]:.1f}%" for w in ws)


@checker("ch09-video-same-noise")
def same_noise(*, same_caps, clips_same, motion_same, flicker_same) -> str:
    """``same_caps``: the motion captions; ``clips_same``: the frame-by-frame baseline (temporal layers off) sampled from *one*
    starting noise shared by all frames of a clip; ``motion_same``: % of those clips moving as
    the caption says; ``flicker_same``: their mean background flicker
    (:func:`lib.video.motion_report`)."""
    captions = _captions(same_caps)
    x = _clips(clips_same, "clips_same", len(captions))
    change = (x[:, 1:] - x[:, :-1]).abs().amax().item()
    expect(
        change < 1e-3,
        f"the frames of a clip differ (by up to {change:.3f}): give every frame of a clip the "
        "same starting noise (repeat one frame's noise along the frame axis) and switch the "
        "temporal layers off",
    )
    rep = video.motion_report(x, captions)
    motion, flicker = _percent(rep["motion"]), rep["flicker"].mean().item()
    close(
        number(motion_same, "motion_same"),
        motion,
        "motion_same is not the motion rate of these clips: measure "
        "video.motion_report(clips_same, captions)['motion'] as a percentage",
        rtol=0.0,
        atol=0.5,
    )
    close(
        number(flicker_same, "flicker_same"),
        flicker,
        "flicker_same is not the mean background flicker of these clips",
        rtol=0.0,
        atol=1e-4,
    )
    return (
        f"one noise for every frame: the frames agree (largest change {change:.1e}), "
        f"motion right {motion:.1f}%, flicker {flicker:.4f}"
    )
