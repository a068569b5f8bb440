"""Chapter 10.3's exercise checks (HDR): the reference answer passes, wrong answers get a
hint. Reference answers are computed as a student would (as the hidden solutions do), on
a few small simulated exposure stacks; no notebook is run."""

import math

import pytest
import torch

from lib import data, degrade, exercises, metrics, restoration
from exercise_testing import verdict

TIMES = (1 / 16, 1.0, 16.0)


def assert_not_yet(v):
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)


@pytest.fixture(scope="module")
def hdr():
    test_rad = degrade.synthetic_radiance(
        data.photo_patches("test", 3, 32, seed=1), 4.0
    )
    g = torch.Generator().manual_seed(3)
    test_stack = torch.stack(
        [degrade.expose(test_rad, t, noise=0.004, generator=g) for t in TIMES], 1
    )
    clipped_mid = (test_stack[:, 1] >= 1).any(1, keepdim=True).float()
    assert 0 < clipped_mid.mean() < 1
    return test_stack, test_rad, clipped_mid


def region_errors(est, rad, clipped):
    return (
        metrics.log_radiance_error(est, rad),
        metrics.log_radiance_error(est, rad, clipped),
        metrics.log_radiance_error(est, rad, 1 - clipped),
    )


def test_ch10_hdr_two(hdr, capsys):
    test_stack, test_rad, clipped_mid = hdr
    two = restoration.merge_debevec(test_stack[:, :2], TIMES[:2])
    err_two = region_errors(two, test_rad, clipped_mid)
    common = dict(
        test_stack=test_stack, test_rad=test_rad, clipped_mid=clipped_mid, times=TIMES
    )
    v = verdict("ch10-hdr-two", capsys, **common, err_two=err_two)
    assert v and "three exposures" in v.message, str(v)

    three = region_errors(
        restoration.merge_debevec(test_stack, TIMES), test_rad, clipped_mid
    )
    no_short = region_errors(
        restoration.merge_debevec(test_stack[:, 1:], TIMES[1:]), test_rad, clipped_mid
    )
    natural_log = [e * math.log(2) for e in err_two]  # nats, not stops
    v = verdict("ch10-hdr-two", capsys, **common, err_two=three)
    assert_not_yet(v)
    assert "three-exposure" in v.message
    wrong = [
        no_short,  # dropped the short exposure instead of the long one
        natural_log,
        [0.0, 0.0, 0.0],
        list(reversed(err_two)),  # columns in another order
    ]
    for w in wrong:
        assert_not_yet(verdict("ch10-hdr-two", capsys, **common, err_two=w))

    with pytest.raises(TypeError, match="sequence of numbers"):
        exercises.check(
            "ch10-hdr-two", **common, err_two={"all": 1.0, "clipped": 1.0, "not": 1.0}
        )
    with pytest.raises(ValueError, match="must hold 3 numbers"):
        exercises.check("ch10-hdr-two", **common, err_two=err_two[:2])
    with pytest.raises(ValueError, match="3 numbers"):
        exercises.check(
            "ch10-hdr-two", **{**common, "times": TIMES[:2]}, err_two=err_two
        )


def test_ch10_hdr_crf(hdr, capsys):
    test_stack, test_rad, _ = hdr
    wrong_curve = restoration.merge_debevec(test_stack, TIMES, gamma=1.0)
    err_wrong = metrics.log_radiance_error(wrong_curve, test_rad)
    common = dict(test_stack=test_stack, test_rad=test_rad, times=TIMES)
    v = verdict("ch10-hdr-crf", capsys, **common, err_wrong=err_wrong)
    assert v and "times the error" in v.message, str(v)

    right_curve = metrics.log_radiance_error(
        restoration.merge_debevec(test_stack, TIMES), test_rad
    )
    assert right_curve < err_wrong
    v = verdict("ch10-hdr-crf", capsys, **common, err_wrong=right_curve)
    assert_not_yet(v)
    assert "true response curve" in v.message
    too_dark = restoration.merge_debevec(test_stack, TIMES, gamma=3.0)
    wrong = [
        0.0,
        err_wrong * math.log(2),  # nats, not stops
        metrics.log_radiance_error(too_dark, test_rad),  # another wrong curve
        metrics.log_radiance_error(  # only the middle exposure, read linearly
            test_stack[:, 1].clamp_min(2**-12) / TIMES[1], test_rad
        ),
    ]
    for w in wrong:
        assert_not_yet(verdict("ch10-hdr-crf", capsys, **common, err_wrong=w))

    with pytest.raises(TypeError, match="must be a number"):
        exercises.check("ch10-hdr-crf", **common, err_wrong="large")
    with pytest.raises(ValueError, match=r"\(N, K, C, H, W\)"):
        exercises.check(
            "ch10-hdr-crf",
            test_stack=test_stack[:, 0],
            test_rad=test_rad,
            times=TIMES,
            err_wrong=err_wrong,
        )
