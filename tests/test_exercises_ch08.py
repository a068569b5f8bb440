"""lib.exercises.ch08: chapter 8's checkers (pix2pix, CycleGAN) pass the reference answer and
fail wrong ones with a hint. Answers are computed as the hidden solutions do, on tiny
untrained models and synthetic images (no training, no notebook)."""

import pytest
import torch

from lib import exercises, metrics, nets, translation
from exercise_testing import verdict


def fails(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and len(v.message) > 30, v
    return v


def images(n, ch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, ch, 32, 32, generator=g) * 2 - 1


# --- ch08-rf ---------------------------------------------------------------------------


def test_ch08_rf(capsys):
    rf = translation.receptive_field
    ref = dict(
        rf_a=rf([(3, 1)] * 3),
        rf_b=rf([(3, 2)] + [(3, 1)] * 2),
        rf_c=rf([(3, 2)] * 3 + [(3, 1)] * 2),
    )
    v = verdict("ch08-rf", capsys, **ref)
    assert v and "(a) 7, (b) 11, (c) 47" in v.message
    wrong = [
        dict(ref, rf_a=9),  # 3 x 3
        dict(ref, rf_b=rf([(3, 1)] * 2 + [(3, 2)])),  # stride applied at the output
        dict(ref, rf_b=7),
        dict(ref, rf_c=70),  # the kernel-4 PatchGAN
        dict(ref, rf_c=rf([(3, 2)] * 5)),  # every layer strided
        dict(rf_a=0, rf_b=0, rf_c=0),  # zeros
        dict(ref, rf_a=7.5),  # not a whole number
    ]
    for w in wrong:
        fails("ch08-rf", capsys, **w)
    v = fails("ch08-rf", capsys, **dict(ref, rf_b=7))
    assert "first layer" in v.message
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check("ch08-rf", rf_a="7", rf_b=11, rf_c=47)


# --- ch08-seed -------------------------------------------------------------------------


def evaluate(out, ref):  # as the notebook's evaluate()
    return {
        "L1": (out - ref).abs().mean().item(),
        "PSNR": metrics.psnr(out.clamp(-1, 1), ref),
        "HF ratio": metrics.hf_energy_ratio(out, ref),
    }


def test_ch08_seed(capsys):
    y = images(16, seed=0)
    first = (0.5 * y + 0.3 * images(16, seed=1)).clamp(-1, 1)
    out = (0.5 * y + 0.3 * images(16, seed=2)).clamp(-1, 1)
    again = evaluate(out, y)
    common = dict(y_test=y, out_first=first)
    v = verdict("ch08-seed", capsys, **common, out_seed=out, again=again)
    assert v and "moves L1 by" in v.message
    # without PSNR is fine too
    assert verdict(
        "ch08-seed",
        capsys,
        **common,
        out_seed=out,
        again={k: again[k] for k in ("L1", "HF ratio")},
    )
    wrong = [
        dict(out_seed=first, again=evaluate(first, y)),  # the same run again
        dict(out_seed=out, again={"L1": 0.0, "HF ratio": 0.0}),  # zeros
        dict(out_seed=out, again=dict(again, L1=again["L1"] * 2)),  # off by a factor
        dict(out_seed=out, again=dict(again, **{"HF ratio": 1 / again["HF ratio"]})),
        dict(out_seed=out, again=evaluate(first, y)),  # the first run's measures
        dict(out_seed=out, again=dict(again, PSNR=again["PSNR"] + 3)),
    ]
    for w in wrong:
        fails("ch08-seed", capsys, **common, **w)
    with pytest.raises(TypeError, match="keys 'L1', 'HF ratio'"):
        exercises.check("ch08-seed", **common, out_seed=out, again=[0.1, 0.2])
    with pytest.raises(ValueError, match="shape of y_test"):
        exercises.check("ch08-seed", **common, out_seed=out[:4], again=again)


# --- ch08-edges-only -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sketches():
    y_train = 0.5 * images(24, seed=3) + 0.3  # photos brighter than mid-grey
    y_test = 0.5 * images(12, seed=4) + 0.3
    edges = (images(12, seed=5) > 0.6).float() * 2 - 1
    hint = torch.nn.functional.interpolate(
        torch.nn.functional.avg_pool2d(y_test, 8), 32
    )
    x_test = torch.cat([edges, hint], 1)
    torch.manual_seed(0)
    g_edges = nets.ImageUNet(1, 1, ngf=4, depth=2).eval()
    g_skips = nets.ImageUNet(2, 1, ngf=4, depth=2).eval()
    g_noskips = nets.ImageUNet(2, 1, ngf=4, depth=2, skips=False).eval()
    return y_train, y_test, x_test, g_edges, g_skips, g_noskips


def test_ch08_edges_only(sketches, capsys):
    y_train, y_test, x_test, g_edges, g_skips, g_noskips = sketches
    e_test = x_test[:, :1]
    with torch.no_grad():
        l1 = {
            "l1_edges": (g_edges(e_test) - y_test).abs().mean().item(),
            "l1_skips": (g_skips(x_test) - y_test).abs().mean().item(),
            "l1_noskips": (g_noskips(x_test) - y_test).abs().mean().item(),
        }
    l1["l1_grey"] = (y_test - y_train.mean()).abs().mean().item()
    common = dict(x_test=x_test, y_train=y_train, y_test=y_test)
    models = dict(g_edges=g_edges, g_skips=g_skips, g_noskips=g_noskips)
    v = verdict("ch08-edges-only", capsys, **common, **models, **l1)
    assert v and "(a) edges only" in v.message
    assert not g_edges.training, "the check leaves the models' mode alone"
    grey0 = y_test.abs().mean().item()  # predicting mid-grey 0, not the mean
    wrong = [
        dict(models, **dict(l1, l1_grey=grey0)),
        dict(models, **dict(l1, l1_grey=l1["l1_grey"] ** 2)),
        dict(models, **{k: 0.0 for k in l1}),  # zeros
        dict(models, **dict(l1, l1_edges=l1["l1_skips"], l1_skips=l1["l1_edges"])),
        dict(models, **dict(l1, l1_noskips=l1["l1_noskips"] * 127.5)),  # 0..255 units
        dict(dict(models, g_noskips=g_skips), **l1),  # the "plain" model has skips
        dict(dict(models, g_edges=g_skips), **l1),  # trained on sketches with hints
    ]
    for w in wrong:
        fails("ch08-edges-only", capsys, **common, **w)
    v = fails(
        "ch08-edges-only", capsys, **common, **dict(models, g_edges=g_skips), **l1
    )
    assert "edge channel alone" in v.message
    # computed in training mode (batch statistics), not eval mode
    g_edges.train()
    with torch.no_grad():
        l1_train = (g_edges(e_test) - y_test).abs().mean().item()
    g_edges.eval()
    if abs(l1_train - l1["l1_edges"]) > 0.01 * l1["l1_edges"] + 1e-4:
        v = fails(
            "ch08-edges-only", capsys, **common, **models, **dict(l1, l1_edges=l1_train)
        )
        assert "eval mode" in v.message
    with pytest.raises(TypeError, match="nn.Module"):
        exercises.check(
            "ch08-edges-only", **common, **dict(models, g_skips="unet"), **l1
        )
    with pytest.raises(ValueError, match="x_test"):
        exercises.check(
            "ch08-edges-only", **dict(common, x_test=e_test), **models, **l1
        )


# --- ch08-inverse ----------------------------------------------------------------------


def test_ch08_inverse(capsys):
    a, b = images(8, seed=6), 0.9 - 0.1 * images(8, seed=7).abs()  # bright "sketches"
    D_B = torch.nn.Conv2d(1, 1, 4, 2, 1)  # a "discriminator" that scores brightness
    torch.nn.init.constant_(D_B.weight, 1 / 16)
    torch.nn.init.zeros_(D_B.bias)
    neg = lambda x: -x  # noqa: E731
    cycle = (
        translation.cycle_loss(a, neg(neg(a))) + translation.cycle_loss(b, neg(neg(b)))
    ).item()
    with torch.no_grad():
        d_score, d_real = D_B(neg(a)).mean().item(), D_B(b).mean().item()
        d_photos = D_B(a).mean().item()
    common = dict(a=a, b=b, D_B=D_B)
    ok = dict(G_map=neg, F_map=neg, cycle=cycle, d_score=d_score, d_real=d_real)
    v = verdict("ch08-inverse", capsys, **common, **ok)
    assert v and "cycle loss" in v.message
    double = lambda x: 2 * x  # noqa: E731
    wrong = [
        dict(ok, F_map=lambda x: x),  # not the inverse
        dict(ok, G_map=double, F_map=double),
        dict(ok, cycle=1.0),
        dict(ok, d_score=d_real),  # swapped scores
        dict(ok, d_score=0.0, d_real=0.0),  # zeros
        dict(ok, d_score=d_photos),  # D_B on the photos, not on G(a)
    ]
    for w in wrong:
        fails("ch08-inverse", capsys, **common, **w)
    with pytest.raises(TypeError, match="function"):
        exercises.check("ch08-inverse", **common, **dict(ok, G_map=3.0))
    with pytest.raises(TypeError, match="nn.Module"):
        exercises.check("ch08-inverse", **dict(common, D_B=None), **ok)


# --- ch08-f ----------------------------------------------------------------------------


def test_ch08_f(capsys):
    x_test, s_test = images(12, seed=8), images(12, seed=9)
    torch.manual_seed(0)
    F_w, F_o = (  # any sketch -> photo network will do; small ones keep this fast
        torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1),
            torch.nn.Tanh(),
            torch.nn.Conv2d(4, 1, 3, padding=1),
        )
        for _ in range(2)
    )
    with torch.no_grad():  # photos that F_w translates well
        x_test = F_w(s_test) + 0.1 * images(12, seed=10)
    f_corr, f_edges = {}, {}
    for name, F in (("with", F_w), ("without", F_o)):
        with torch.no_grad():
            fb = F(s_test)
        f_corr[name] = metrics.image_correlation(fb, x_test).mean().item()
        f_edges[name] = metrics.structure_correlation(s_test, fb).mean().item()
    common = dict(F_with=F_w, F_without=F_o, s_test=s_test, x_test=x_test)
    v = verdict("ch08-f", capsys, **common, f_corr=f_corr, f_edges=f_edges)
    assert v and "edges kept" in v.message
    with torch.no_grad():
        fb_w = F_w(s_test)
    swapped = {"with": f_corr["without"], "without": f_corr["with"]}

    def mean_sc(u, v):
        return metrics.structure_correlation(u, v).mean().item()

    def mean_ic(u, v):
        return metrics.image_correlation(u, v).mean().item()

    zeros = {"with": 0.0, "without": 0.0}
    wrong = [
        dict(f_corr=swapped, f_edges=f_edges),
        dict(f_corr=zeros, f_edges=zeros),
        # edges kept measured against the photo, not the input sketch
        dict(f_corr=f_corr, f_edges={**f_edges, "with": mean_sc(x_test, fb_w)}),
        # correlated with the input sketch instead of the true photo
        dict(f_corr={**f_corr, "with": mean_ic(fb_w, s_test)}, f_edges=f_edges),
        dict(f_corr={k: 100 * v for k, v in f_corr.items()}, f_edges=f_edges),  # in %
    ]
    for w in wrong:
        fails("ch08-f", capsys, **common, **w)
    with pytest.raises(TypeError, match="keys 'with', 'without'"):
        exercises.check("ch08-f", **common, f_corr=[0.1, 0.2], f_edges=f_edges)
    with pytest.raises(ValueError, match="s_test and x_test"):
        exercises.check(
            "ch08-f", **dict(common, x_test=x_test[:3]), f_corr=f_corr, f_edges=f_edges
        )
