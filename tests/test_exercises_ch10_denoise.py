"""Chapter 10.2's exercise checks (denoising, deblurring): the reference answer passes, wrong
answers get a hint. Reference answers are computed as a student would (as the hidden
solutions do), on a few small patches and a tiny network; no notebook is run."""

import pytest
import torch

from lib import data, degrade, exercises, metrics, restoration
from exercise_testing import verdict


def assert_not_yet(v):
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)


@pytest.fixture(scope="module")
def test_x():
    return data.photo_patches("test", 4, 32, gray=True, seed=1)


def with_level(noisy, sigma):
    return torch.cat([noisy, torch.full_like(noisy, 2 * sigma)], 1)


def test_ch10_dn_ood(test_x, capsys):
    torch.manual_seed(0)
    dncnn = restoration.DnCNN(channels=1, width=4, depth=3, extra=1)
    s_out, strength = 0.3, 1.0
    noisy = degrade.add_noise(test_x, s_out, generator=torch.Generator().manual_seed(9))
    out_net = restoration.restore(dncnn, with_level(noisy, s_out)).clamp(-1, 1)
    out_nlm = restoration.denoise_classical(noisy, "nl_means", s_out, strength)
    psnr_net, psnr_nlm = metrics.psnr(out_net, test_x), metrics.psnr(out_nlm, test_x)
    common = dict(dncnn=dncnn, test_x=test_x, strength=strength)
    v = verdict(
        "ch10-dn-ood",
        capsys,
        **common,
        noisy=noisy,
        s_out=s_out,
        psnr_net=psnr_net,
        psnr_nlm=psnr_nlm,
    )
    assert v and "non-local means" in v.message, str(v)

    psnr_noisy = metrics.psnr(noisy.clamp(-1, 1), test_x)
    inside = degrade.add_noise(test_x, 0.2, generator=torch.Generator().manual_seed(9))
    half = degrade.add_noise(test_x, 0.15, generator=torch.Generator().manual_seed(9))
    answer = dict(noisy=noisy, s_out=s_out, psnr_net=psnr_net, psnr_nlm=psnr_nlm)
    wrong = [
        {**answer, "psnr_net": psnr_nlm, "psnr_nlm": psnr_net},  # swapped
        {**answer, "psnr_net": 0.0, "psnr_nlm": 0.0},
        {**answer, "psnr_net": psnr_noisy},  # the noisy input's PSNR
        {**answer, "noisy": half},  # sigma on the [-1, 1] scale: half the noise
        {**answer, "noisy": inside, "s_out": 0.2},  # inside the training range
    ]
    for w in wrong:
        assert_not_yet(verdict("ch10-dn-ood", capsys, **common, **w))
    # non-local means told a smaller sigma than the true one
    nlm_low = restoration.denoise_classical(noisy, "nl_means", 0.22, strength)
    v = verdict(
        "ch10-dn-ood",
        capsys,
        **common,
        **{**answer, "psnr_nlm": metrics.psnr(nlm_low, test_x)},
    )
    assert_not_yet(v)
    assert "non-local means" in v.message

    with pytest.raises(TypeError, match="must be a number"):
        exercises.check("ch10-dn-ood", **common, **{**answer, "psnr_net": "12 dB"})
    with pytest.raises(TypeError, match="trained network"):
        exercises.check("ch10-dn-ood", **{**common, "dncnn": None}, **answer)
    with pytest.raises(ValueError, match="shape of test_x"):
        exercises.check("ch10-dn-ood", **common, **{**answer, "noisy": noisy[:2]})


@pytest.fixture(scope="module")
def deblur(test_x):
    kernels = [
        degrade.motion_kernel(length, angle, size=11)
        for length, angle in ((7, 20.0), (9, 100.0), (5, 45.0), (11, 160.0))
    ]
    g = torch.Generator().manual_seed(7)
    blurred = torch.cat(
        [
            degrade.add_noise(degrade.blur(c[None], k), 0.01, generator=g)
            for c, k in zip(test_x, kernels)
        ]
    ).clamp(-1, 1)
    return blurred, kernels


def rl_each(blurred, kernels, n_iter):
    return torch.cat(
        [
            restoration.deconvolve(b[None], k, "richardson_lucy", n_iter)
            for b, k in zip(blurred, kernels)
        ]
    )


def test_ch10_db_wrong_kernel(test_x, deblur, capsys):
    blurred, kernels = deblur
    n_iter = 5
    wrong = [torch.rot90(k, 1) for k in kernels]
    psnr_true = metrics.psnr(rl_each(blurred, kernels, n_iter), test_x)
    psnr_wrong = metrics.psnr(rl_each(blurred, wrong, n_iter), test_x)
    common = dict(
        blurred_test=blurred, test_x=test_x, test_kernels=kernels, iterations=n_iter
    )
    answer = dict(wrong_kernels=wrong, psnr_true=psnr_true, psnr_wrong=psnr_wrong)
    v = verdict("ch10-db-wrong-kernel", capsys, **common, **answer)
    assert v and "lost" in v.message, str(v)
    assert psnr_wrong < psnr_true

    # another right answer: the other way round, or the streak redrawn at angle + 90
    clockwise = [torch.rot90(k, -1) for k in kernels]
    redrawn = [
        degrade.motion_kernel(length, angle + 90, size=11)
        for length, angle in ((7, 20.0), (9, 100.0), (5, 45.0), (11, 160.0))
    ]
    for other in (clockwise, redrawn):
        p = metrics.psnr(rl_each(blurred, other, n_iter), test_x)
        v = verdict(
            "ch10-db-wrong-kernel",
            capsys,
            **common,
            wrong_kernels=other,
            psnr_true=psnr_true,
            psnr_wrong=p,
        )
        assert v, str(v)

    rotated_45 = [
        degrade.motion_kernel(length, angle + 45, size=11)
        for length, angle in ((7, 20.0), (9, 100.0), (5, 45.0), (11, 160.0))
    ]
    mismatched = wrong[1:] + wrong[:1]  # each patch gets another patch's kernel
    wrongs = [
        {**answer, "wrong_kernels": kernels},  # not rotated at all
        {**answer, "wrong_kernels": [k.T for k in kernels]},  # mirrored, not rotated
        {**answer, "wrong_kernels": rotated_45},
        {**answer, "wrong_kernels": mismatched},
        {**answer, "psnr_true": psnr_wrong, "psnr_wrong": psnr_true},  # swapped
        {**answer, "psnr_true": 0.0, "psnr_wrong": 0.0},
        {**answer, "psnr_wrong": metrics.psnr(blurred, test_x)},  # not deconvolved
    ]
    for w in wrongs:
        assert_not_yet(verdict("ch10-db-wrong-kernel", capsys, **common, **w))

    with pytest.raises(TypeError, match="list of 2-D kernels"):
        exercises.check(
            "ch10-db-wrong-kernel", **common, **{**answer, "wrong_kernels": wrong[0]}
        )
    with pytest.raises(ValueError, match="one per patch"):
        exercises.check(
            "ch10-db-wrong-kernel", **common, **{**answer, "wrong_kernels": wrong[:2]}
        )
    with pytest.raises(ValueError, match="sum to 1"):
        exercises.check(
            "ch10-db-wrong-kernel",
            **common,
            **{**answer, "wrong_kernels": [2 * k for k in wrong]},
        )
