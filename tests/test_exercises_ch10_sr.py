"""Chapter 10.1's exercise checks (super-resolution): the reference answer passes, wrong
answers get a hint. Reference answers are computed as a student would (as the hidden
solutions do), on a few small patches and two tiny networks; no notebook is run."""

import pytest
import torch

from lib import data, degrade, exercises, metrics, restoration
from exercise_testing import verdict


def assert_not_yet(v):
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)


@pytest.fixture(scope="module")
def sr():
    test_hr = data.photo_patches("test", 6, 32, gray=True, seed=1)
    test_lr = degrade.downsample(test_hr, 4)
    torch.manual_seed(0)
    net_l1 = restoration.SRResNet(channels=1, factor=4, width=4, blocks=1)
    torch.manual_seed(0)
    net_l2 = restoration.SRResNet(channels=1, factor=4, width=4, blocks=1)
    with torch.no_grad():  # stands in for training: the l2 net adds some detail
        torch.nn.init.normal_(net_l2.tail.weight, std=0.05)
    return test_hr, test_lr, net_l1, net_l2


def l2_answer(test_hr, test_lr, net_l1, net_l2):
    sharp_true = metrics.sharpness(test_hr)
    outs, scores = {}, {}
    for name, n in (("l1", net_l1), ("l2", net_l2)):
        outs[name] = o = restoration.restore(n, test_lr).clamp(-1, 1)
        scores[name] = (metrics.psnr(o, test_hr), metrics.sharpness(o) / sharp_true)
    blurrier = min(scores, key=lambda k: scores[k][1])
    return outs, scores, blurrier


def test_ch10_sr_l2(sr, capsys):
    test_hr, test_lr, net_l1, net_l2 = sr
    outs, scores, blurrier = l2_answer(*sr)
    common = dict(net_l1=net_l1, net_l2=net_l2, test_lr=test_lr, test_hr=test_hr)
    v = verdict(
        "ch10-sr-l2", capsys, **common, outs=outs, scores=scores, blurrier=blurrier
    )
    assert v and "blurrier" in v.message, str(v)
    assert blurrier == "l1"  # the fixture's l1 net is plain bicubic upsampling

    sharp_true = metrics.sharpness(test_hr)
    swapped = {"l1": scores["l2"], "l2": scores["l1"]}
    raw = {k: (p, s * sharp_true) for k, (p, s) in scores.items()}  # not a ratio
    zeros = {k: (0.0, 0.0) for k in scores}
    batch_psnr = {  # one PSNR of the whole batch, not the mean over patches
        k: (
            float(10 * torch.log10(4 / ((outs[k] - test_hr) ** 2).mean())),
            scores[k][1],
        )
        for k in scores
    }
    wrong = [
        dict(outs=outs, scores=swapped, blurrier="l2"),
        dict(outs=outs, scores=raw, blurrier=blurrier),
        dict(outs=outs, scores=zeros, blurrier=blurrier),
        dict(outs=outs, scores=scores, blurrier="l2"),  # the wrong conclusion
        dict(outs={"l1": outs["l2"], "l2": outs["l1"]}, scores=swapped, blurrier="l2"),
        dict(
            outs={k: o.flip(0) for k, o in outs.items()}, scores=scores, blurrier="l1"
        ),
    ]
    if abs(batch_psnr["l1"][0] - scores["l1"][0]) > 0.05:
        wrong.append(dict(outs=outs, scores=batch_psnr, blurrier=blurrier))
    for w in wrong:
        assert_not_yet(verdict("ch10-sr-l2", capsys, **common, **w))

    # the same network twice: its outputs are identical
    same_outs, same_scores, same_b = l2_answer(test_hr, test_lr, net_l1, net_l1)
    v = verdict(
        "ch10-sr-l2",
        capsys,
        **{**common, "net_l2": net_l1},
        outs=same_outs,
        scores=same_scores,
        blurrier=same_b,
    )
    assert_not_yet(v)
    assert "identical" in v.message

    with pytest.raises(TypeError, match="dict"):
        exercises.check(
            "ch10-sr-l2",
            **common,
            outs=outs,
            scores=list(scores.values()),
            blurrier="l1",
        )
    with pytest.raises(ValueError, match="keys"):
        exercises.check(
            "ch10-sr-l2", **common, outs=outs, scores={"L1": 1, "L2": 2}, blurrier="l1"
        )
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        exercises.check(
            "ch10-sr-l2", **common, outs=outs, scores=scores, blurrier="mse"
        )
    with pytest.raises(TypeError, match="retrained network"):
        exercises.check(
            "ch10-sr-l2",
            **{**common, "net_l1": "net"},
            outs=outs,
            scores=scores,
            blurrier="l1",
        )


def test_ch10_sr_where(sr, capsys):
    test_hr, test_lr, _, net = sr
    sr_resnet = restoration.restore(net, test_lr).clamp(-1, 1)
    sr_bicubic = restoration.bicubic(test_lr, 4)
    n = len(test_hr)
    gain = [
        metrics.psnr(sr_resnet[i : i + 1], test_hr[i : i + 1])
        - metrics.psnr(sr_bicubic[i : i + 1], test_hr[i : i + 1])
        for i in range(n)
    ]
    sharp = [metrics.sharpness(test_hr[i : i + 1]) for i in range(n)]
    common = dict(sr_resnet=sr_resnet, sr_bicubic=sr_bicubic, test_hr=test_hr)
    v = verdict("ch10-sr-where", capsys, **common, gain=gain, sharp=sharp)
    assert v and "third" in v.message, str(v)

    order = torch.tensor(gain).argsort()  # a permutation that moves every patch
    shuffled = [gain[i] for i in order.roll(1)]
    sharp_of_output = [metrics.sharpness(sr_resnet[i : i + 1]) for i in range(n)]
    wrong = [
        dict(gain=[-g for g in gain], sharp=sharp),  # bicubic minus SRResNet
        dict(gain=shuffled, sharp=sharp),
        dict(gain=[0.0] * n, sharp=sharp),
        dict(gain=[2 * g for g in gain], sharp=sharp),
        dict(gain=gain, sharp=sharp_of_output),  # of the restored, not the true patch
        dict(gain=gain, sharp=[0.0] * n),
    ]
    messages = set()
    for w in wrong:
        v = verdict("ch10-sr-where", capsys, **common, **w)
        assert_not_yet(v)
        messages.add(v.message)
    assert len(messages) >= 4, "the hints name the different mistakes"

    with pytest.raises(TypeError, match="sequence of numbers"):
        exercises.check(
            "ch10-sr-where", **common, gain=sum(gain) / n, sharp=sharp
        )  # one mean gain, not one per patch
    with pytest.raises(ValueError, match=f"hold {n} numbers"):
        exercises.check("ch10-sr-where", **common, gain=gain[:-1], sharp=sharp)
    with pytest.raises(ValueError, match="shape of test_hr"):
        exercises.check(
            "ch10-sr-where",
            sr_resnet=sr_resnet[:2],
            sr_bicubic=sr_bicubic,
            test_hr=test_hr,
            gain=gain,
            sharp=sharp,
        )
