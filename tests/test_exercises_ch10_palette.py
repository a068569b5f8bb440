"""Notebook 10.6's exercise checks (Palette): the reference answer passes, wrong answers
get a hint. Synthetic images stand in for the samples: the checks measure them, they do
not judge the model."""

import pytest
import torch

from lib import exercises, metrics, palette
from exercise_testing import verdict


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)
    return v


@pytest.fixture(scope="module")
def photos():
    g = torch.Generator().manual_seed(0)
    test_rgb = (torch.rand(6, 3, 8, 8, generator=g) * 1.6 - 0.8).clamp(-1, 1)
    y = palette.luma_of(test_rgb)

    def colour(
        scale, seed
    ):  # a "sample": the true luma with random chroma of some size
        noise = torch.randn(6, 2, 8, 8, generator=torch.Generator().manual_seed(seed))
        return palette.compose_yuv(y, (scale * noise).clamp(-1, 1))

    return test_rgb, colour


def measures(samples, test_rgb):
    return (
        {k: metrics.psnr(v, test_rgb) for k, v in samples.items()},
        {k: metrics.colourfulness(v) for k, v in samples.items()},
    )


def test_ch10_palette_eps(photos, capsys):
    test_rgb, colour = photos
    samples = {"eps": colour(1.0, 1), "x0": colour(0.1, 2)}  # garish vs dull
    psnr, col = measures(samples, test_rgb)
    v = verdict(
        "ch10-palette-eps",
        capsys,
        test_rgb=test_rgb,
        predict_samples=samples,
        predict_psnr=psnr,
        predict_colourfulness=col,
    )
    assert v and "more colourful and lower in PSNR" in v.message
    common = dict(test_rgb=test_rgb, predict_samples=samples)
    swap = lambda d: {"eps": d["x0"], "x0": d["eps"]}  # noqa: E731
    wrong = [
        dict(predict_psnr=swap(psnr), predict_colourfulness=col),  # swapped
        dict(predict_psnr=psnr, predict_colourfulness=swap(col)),
        dict(predict_psnr={k: 0.0 for k in psnr}, predict_colourfulness=col),  # zeros
        dict(predict_psnr=psnr, predict_colourfulness={k: 0.0 for k in col}),
        dict(
            predict_psnr={k: 2 * p for k, p in psnr.items()}, predict_colourfulness=col
        ),  # off by 2
        dict(
            predict_psnr=psnr,
            predict_colourfulness={k: c / 255 for k, c in col.items()},
        ),  # 0..1 scale
    ]
    for w in wrong:
        not_yet("ch10-palette-eps", capsys, **common, **w)
    same = {"eps": samples["x0"], "x0": samples["x0"]}
    p2, c2 = measures(same, test_rgb)
    assert (
        "identical"
        in not_yet(
            "ch10-palette-eps",
            capsys,
            test_rgb=test_rgb,
            predict_samples=same,
            predict_psnr=p2,
            predict_colourfulness=c2,
        ).message
    )
    with pytest.raises(ValueError, match='"eps" and "x0"'):
        exercises.check(
            "ch10-palette-eps",
            test_rgb=test_rgb,
            predict_samples={"noise": samples["eps"], "x0": samples["x0"]},
            predict_psnr={"noise": 1.0, "x0": 1.0},
            predict_colourfulness={"noise": 1.0, "x0": 1.0},
        )
    with pytest.raises(ValueError, match="same keys"):
        exercises.check(
            "ch10-palette-eps",
            **common,
            predict_psnr={"eps": 1.0},
            predict_colourfulness=col,
        )
    with pytest.raises(ValueError, match="every held-out patch"):
        exercises.check(
            "ch10-palette-eps",
            test_rgb=test_rgb,
            predict_samples={k: v[:3] for k, v in samples.items()},
            predict_psnr=psnr,
            predict_colourfulness=col,
        )
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check(
            "ch10-palette-eps",
            **common,
            predict_psnr={k: str(p) for k, p in psnr.items()},
            predict_colourfulness=col,
        )
    with pytest.raises(TypeError, match="dict"):
        exercises.check(
            "ch10-palette-eps",
            **common,
            predict_psnr=list(psnr.values()),
            predict_colourfulness=col,
        )


def test_ch10_palette_steps(photos, capsys):
    test_rgb, colour = photos
    steps = (2, 3, 5, 50)
    samples = {
        k: colour(0.05 * k**0.5, 7) for k in steps
    }  # more colour with more steps
    psnr, col = measures(samples, test_rgb)
    seconds = {k: 0.01 * k + 0.002 for k in steps}
    common = dict(test_rgb=test_rgb, step_samples=samples)
    v = verdict(
        "ch10-palette-steps",
        capsys,
        **common,
        step_psnr=psnr,
        step_colourfulness=col,
        step_seconds=seconds,
    )
    assert v and "50 steps cost" in v.message and "steps 2, 3, 5, 50" in v.message
    shuffled = dict(zip(steps, [psnr[k] for k in steps[1:] + steps[:1]]))
    wrong = [
        dict(step_psnr=shuffled, step_colourfulness=col, step_seconds=seconds),
        dict(
            step_psnr={k: 0.0 for k in steps},
            step_colourfulness=col,
            step_seconds=seconds,
        ),  # zeros
        dict(
            step_psnr=psnr, step_colourfulness=col, step_seconds={k: 0.0 for k in steps}
        ),
        dict(
            step_psnr=psnr,
            step_colourfulness=col,
            step_seconds=dict(zip(steps, reversed(seconds.values()))),
        ),
        dict(
            step_psnr=psnr,
            step_colourfulness={k: 1.1 * c for k, c in col.items()},
            step_seconds=seconds,
        ),
    ]
    for w in wrong:
        not_yet("ch10-palette-steps", capsys, **common, **w)
    with pytest.raises(ValueError, match="2, 5 and 50"):
        exercises.check(
            "ch10-palette-steps",
            test_rgb=test_rgb,
            step_samples={k: samples[k] for k in (2, 3, 5)},
            step_psnr={k: psnr[k] for k in (2, 3, 5)},
            step_colourfulness={k: col[k] for k in (2, 3, 5)},
            step_seconds={k: seconds[k] for k in (2, 3, 5)},
        )
    with pytest.raises(TypeError, match="positive ints"):
        exercises.check(
            "ch10-palette-steps",
            test_rgb=test_rgb,
            step_samples={str(k): v for k, v in samples.items()},
            step_psnr={str(k): v for k, v in psnr.items()},
            step_colourfulness={str(k): v for k, v in col.items()},
            step_seconds={str(k): v for k, v in seconds.items()},
        )
    with pytest.raises(ValueError, match=r"values in \[-1, 1\]"):
        exercises.check(
            "ch10-palette-steps",
            test_rgb=test_rgb,
            step_samples={k: (v + 1) * 127.5 for k, v in samples.items()},
            step_psnr=psnr,
            step_colourfulness=col,
            step_seconds=seconds,
        )
