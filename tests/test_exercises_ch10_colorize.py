"""lib.exercises.ch10_colorize: the reference answers pass, wrong answers get a hint.

Small inputs (a few photo patches, untrained or briefly trained nets); the reference answers
are computed as the notebook's hidden solutions do, never with the checker's code.
"""

import copy

import pytest
import torch

from lib import data, degrade, exercises, metrics, restoration
from exercise_testing import verdict


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 40, str(v)
    return v


# --- ch10-inpaint-big -----------------------------------------------------------------


@pytest.fixture(scope="module")
def inpainting():
    test_rgb = data.photo_patches("test", 6, 32, seed=1)
    torch.manual_seed(0)
    ce = restoration.ContextEncoder(channels=3, width=8)
    masks = degrade.box_masks(6, 32, 12, generator=torch.Generator().manual_seed(11))
    hole_psnr = {
        "biharmonic (classical)": metrics.psnr_masked(
            restoration.inpaint_biharmonic(test_rgb * (1 - masks), masks),
            test_rgb,
            masks,
        ),
        "context encoder, content loss": metrics.psnr_masked(
            restoration.restore(ce, torch.cat([test_rgb * (1 - masks), masks], 1)),
            test_rgb,
            masks,
        ),
    }
    return test_rgb, ce, hole_psnr, masks


def sixteen(test_rgb, ce, m):
    """What the solution computes for the masks m."""
    bih = restoration.inpaint_biharmonic(test_rgb * (1 - m), m)
    filled = restoration.restore(ce, torch.cat([test_rgb * (1 - m), m], 1))
    return {
        "biharmonic": metrics.psnr_masked(bih, test_rgb, m),
        "context encoder": metrics.psnr_masked(filled, test_rgb, m),
    }


def test_ch10_inpaint_big(inpainting, capsys):
    test_rgb, ce, hole_psnr, masks = inpainting
    m16 = degrade.box_masks(6, 32, 16, generator=torch.Generator().manual_seed(12))
    psnr16 = sixteen(test_rgb, ce, m16)
    before = {
        "biharmonic": hole_psnr["biharmonic (classical)"],
        "context encoder": hole_psnr["context encoder, content loss"],
    }
    faster = min(psnr16, key=lambda k: psnr16[k] - before[k])
    slower = next(k for k in psnr16 if k != faster)
    common = dict(test_rgb=test_rgb, ce=ce, hole_psnr=hole_psnr)
    v = verdict(
        "ch10-inpaint-big", capsys, **common, m16=m16, psnr16=psnr16, faster=faster
    )
    assert v and f"the {faster} " in v.message and "12x12 to 16x16" in v.message
    wrong = [
        # the 12x12 holes of the table, measured again
        dict(m16=masks, psnr16=sixteen(test_rgb, ce, masks), faster=faster),
        dict(m16=m16, psnr16=psnr16, faster=slower),  # the wrong conclusion
        dict(m16=m16, psnr16={k: 0.0 for k in psnr16}, faster=faster),  # zeros
        dict(  # swapped
            m16=m16,
            psnr16={
                "biharmonic": psnr16["context encoder"],
                "context encoder": psnr16["biharmonic"],
            },
            faster=faster,
        ),
        dict(  # the PSNR of the whole image, not of the hole
            m16=m16,
            psnr16={
                "biharmonic": metrics.psnr(
                    restoration.inpaint_biharmonic(test_rgb * (1 - m16), m16), test_rgb
                ),
                "context encoder": psnr16["context encoder"],
            },
            faster=faster,
        ),
    ]
    for w in wrong:
        not_yet("ch10-inpaint-big", capsys, **common, **w)
    with pytest.raises(TypeError, match="psnr16 must be a dict"):
        exercises.check(
            "ch10-inpaint-big", **common, m16=m16, psnr16=[1.0, 2.0], faster=faster
        )
    with pytest.raises(ValueError, match="faster must be"):
        exercises.check(
            "ch10-inpaint-big", **common, m16=m16, psnr16=psnr16, faster="the network"
        )
    with pytest.raises(ValueError, match="m16 must have shape"):
        exercises.check(
            "ch10-inpaint-big", **common, m16=m16[:3], psnr16=psnr16, faster=faster
        )


# --- ch10-colour-weight ---------------------------------------------------------------


def gray_of(rgb):
    return degrade.rgb_to_yuv(rgb)[:, :1] * 2 - 1


def fine_tune(net, seed, scale=0.05):
    """Stands in for a short fine-tuning (fit_restorer is too slow for a unit test): the
    weights move a little, so the colours change."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return net


@pytest.fixture(scope="module")
def colorizers():
    test_rgb = data.photo_patches("test", 6, 32, seed=1)
    torch.manual_seed(0)
    col_l1 = fine_tune(restoration.Colorizer(width=8), seed=0)  # "trained" with l1
    col_gan = fine_tune(copy.deepcopy(col_l1), seed=1)
    test_gray = gray_of(test_rgb)
    colour_c = {
        "grey (no colour)": 0.0,
        "l1": metrics.colourfulness(restoration.restore(col_l1, test_gray)),
        "l1 + cGAN": metrics.colourfulness(restoration.restore(col_gan, test_gray)),
    }
    return test_rgb, test_gray, col_l1, colour_c


def test_ch10_colour_weight(colorizers, capsys):
    test_rgb, test_gray, col_l1, colour_c = colorizers
    col_big = fine_tune(copy.deepcopy(col_l1), seed=2)
    v = restoration.restore(col_big, test_gray)
    big_psnr, big_colour = metrics.psnr(v, test_rgb), metrics.colourfulness(v)
    more = big_colour > colour_c["l1 + cGAN"]
    common = dict(
        test_gray=test_gray, test_rgb=test_rgb, col_l1=col_l1, colour_c=colour_c
    )
    answer = dict(
        col_big=col_big, big_psnr=big_psnr, big_colour=big_colour, more_colourful=more
    )
    assert verdict("ch10-colour-weight", capsys, **common, **answer)
    wrong = [
        dict(answer, more_colourful=not more),  # the wrong conclusion
        dict(answer, big_psnr=0.0, big_colour=0.0),  # zeros
        dict(answer, big_psnr=big_colour, big_colour=big_psnr),  # swapped
        dict(answer, big_colour=colour_c["l1"]),  # the l1 row
        dict(answer, col_big=col_l1),  # no copy
        dict(answer, col_big=copy.deepcopy(col_l1)),  # never fine-tuned
    ]
    for w in wrong:
        not_yet("ch10-colour-weight", capsys, **common, **w)
    # fine-tuned in place, then measured from a copy: the table's l1 row no longer holds
    in_place = fine_tune(copy.deepcopy(col_l1), seed=2)
    v2 = restoration.restore(in_place, test_gray)
    msg = not_yet(
        "ch10-colour-weight",
        capsys,
        **dict(common, col_l1=in_place),
        col_big=copy.deepcopy(in_place),
        big_psnr=metrics.psnr(v2, test_rgb),
        big_colour=metrics.colourfulness(v2),
        more_colourful=metrics.colourfulness(v2) > colour_c["l1 + cGAN"],
    ).message
    assert "in place" in msg
    with pytest.raises(TypeError, match="True or False"):
        exercises.check(
            "ch10-colour-weight", **common, **dict(answer, more_colourful="yes")
        )
    with pytest.raises(TypeError, match="nn.Module"):
        exercises.check("ch10-colour-weight", **common, **dict(answer, col_big=v))
    with pytest.raises(ValueError, match="entry 'l1 \\+ cGAN'"):
        exercises.check(
            "ch10-colour-weight", **dict(common, colour_c={"l1": 1.0}), **answer
        )
