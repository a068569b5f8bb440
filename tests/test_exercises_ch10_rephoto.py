"""Chapter 10's rephotography exercise checks: the reference answer passes, wrong answers get a
hint. A tiny random generator stands in for the notebook's trained one; no notebook is run."""

import pytest
import torch

from lib import degrade, gan, inversion, metrics
from exercise_testing import verdict


def assert_not_yet(v):
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    G = gan.DCGenerator(z_dim=8, ch=8, out_channels=3)
    for m in G.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running statistics = plain average of the batches below
    with torch.no_grad():
        torch.nn.init.normal_(
            G.net[-2].weight, 0.0, 0.3
        )  # images that depend visibly on z
        for _ in range(5):
            G(torch.randn(64, 8))
    G.eval()
    with torch.no_grad():
        truth = G(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)))
    old = degrade.antique_camera(truth, generator=torch.Generator().manual_seed(2))
    camera = lambda img: degrade.antique_camera(img, grain=0.0)
    z0 = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    z_aw, _ = inversion.project(G, old, steps=20, lr=0.05, z_init=z0, render=camera)
    z_pl, _ = inversion.project(G, old.repeat(1, 3, 1, 1), steps=20, lr=0.05)
    with torch.no_grad():
        return G, truth, old, z0, G(z_aw), G(z_pl)


def scores(x, truth):
    return metrics.psnr(x, truth), metrics.colour_error(x, truth)


def test_ch10_rephoto_film(setup, capsys):
    G, truth, old, z0, aware, _ = setup
    pan_camera = lambda img: degrade.antique_camera(img, film="panchromatic", grain=0.0)
    z, _ = inversion.project(G, old, steps=20, lr=0.05, z_init=z0, render=pan_camera)
    with torch.no_grad():
        pan = G(z)
    p, c = scores(pan, truth)
    common = dict(old=old, truth=truth, aware=aware)
    v = verdict(
        "ch10-rephoto-film",
        capsys,
        **common,
        restored_pan=pan,
        psnr_pan=p,
        colour_pan=c,
    )
    assert v and "wrong film" in v.message, str(v)
    # the notebook's own restorations, renamed
    pa, ca = scores(aware, truth)
    assert_not_yet(
        verdict(
            "ch10-rephoto-film",
            capsys,
            **common,
            restored_pan=aware,
            psnr_pan=pa,
            colour_pan=ca,
        )
    )
    # numbers that are not the restorations'
    assert_not_yet(
        verdict(
            "ch10-rephoto-film",
            capsys,
            **common,
            restored_pan=pan,
            psnr_pan=p + 1.0,
            colour_pan=c,
        )
    )
    with pytest.raises(ValueError, match="restored_pan"):
        verdict(
            "ch10-rephoto-film",
            capsys,
            **common,
            restored_pan=pan[:2],
            psnr_pan=p,
            colour_pan=c,
        )


def test_ch10_rephoto_sibling(setup, capsys):
    G, truth, old, _, aware, plain = setup
    camera = lambda img: degrade.antique_camera(img, grain=0.0)
    z, _ = inversion.project(G, old, steps=20, lr=0.05, render=camera)
    with torch.no_grad():
        prior = G(z)
    p, c = scores(prior, truth)
    common = dict(old=old, truth=truth, plain=plain)
    v = verdict(
        "ch10-rephoto-sibling",
        capsys,
        **common,
        restored_prior=prior,
        psnr_prior=p,
        colour_prior=c,
    )
    assert v and "without the sibling" in v.message, str(v)
    # a plain inversion (not through the camera) does not fit the old photo better
    pp, cp = scores(plain, truth)
    assert_not_yet(
        verdict(
            "ch10-rephoto-sibling",
            capsys,
            **common,
            restored_prior=plain,
            psnr_prior=pp,
            colour_prior=cp,
        )
    )
    assert_not_yet(
        verdict(
            "ch10-rephoto-sibling",
            capsys,
            **common,
            restored_prior=prior,
            psnr_prior=p,
            colour_prior=c + 5.0,
        )
    )
