"""Checks for chapter 8's exercises (pix2pix and CycleGAN)."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from .. import checks, metrics
from . import NotYet, checker, close, expect, module, module_device, number


# --- helpers -------------------------------------------------------------------------


def _walk_back(layers) -> int:
    """Receptive field of one output unit of a stack of ``(kernel, stride)`` layers."""
    r = 1
    for k, s in reversed(layers):
        r = s * r + (k - s)
    return r


def _whole(x, name: str) -> int:
    value = number(x, name)
    expect(
        value == int(value) and value >= 1,
        f"{name} is {value}: a receptive field is a whole number of pixels, at least 1",
    )
    return int(value)


@torch.no_grad()
def _run(m: nn.Module, x: torch.Tensor, eval_mode: bool = True) -> torch.Tensor:
    """``m(x)`` in chunks on ``m``'s device, on the CPU; in eval mode (restored after), or in
    the module's own mode on a copy (so that BatchNorm statistics are left alone)."""
    if not eval_mode and m.training:
        m = copy.deepcopy(m)
    was = m.training
    if eval_mode:
        m.eval()
    try:
        dev = module_device(m)
        return torch.cat([m(xb.to(dev)).cpu() for xb in x.split(256)])
    finally:
        m.train(was)


def _metrics_dict(d, name: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(d, Mapping) or not all(k in d for k in keys):
        raise TypeError(
            f"{name} must be a dict with the keys {', '.join(map(repr, keys))}, "
            f"got {type(d).__name__}"
            + (
                f" with keys {', '.join(map(repr, d))}"
                if isinstance(d, Mapping)
                else ""
            )
        )
    return {k: number(d[k], f"{name}[{k!r}]") for k in keys}


def _same_shape(x: torch.Tensor, ref: torch.Tensor, name: str, ref_name: str) -> None:
    checks.floating(checks.tensor(x, name), name)
    if x.shape != ref.shape:
        raise ValueError(
            f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, "
            f"got {tuple(x.shape)}"
        )


# --- 8.1 pix2pix -----------------------------------------------------------------------


@checker("ch08-rf")
def receptive_fields(*, rf_a, rf_b, rf_c) -> str:
    """``rf_a``, ``rf_b``, ``rf_c``: the receptive fields (pixels) of stacks (a), (b), (c)."""
    a, b, c = (
        _whole(v, n) for v, n in ((rf_a, "rf_a"), (rf_b, "rf_b"), (rf_c, "rf_c"))
    )
    ref_a = _walk_back([(3, 1)] * 3)
    ref_b = _walk_back([(3, 2)] + [(3, 1)] * 2)
    ref_b_reversed = _walk_back([(3, 1)] * 2 + [(3, 2)])
    ref_c = _walk_back([(3, 2)] * 3 + [(3, 1)] * 2)
    expect(
        a == ref_a,
        "(a): start from one output unit (r = 1) and walk back through the layers: a "
        "k x k convolution with stride 1 widens the window by k - 1 pixels",
    )
    expect(
        b != ref_b_reversed,
        "(b): the stride-2 layer is the first layer of the stack, so walking back from "
        "the output you meet it last, when the window is already wide: r <- s r + (k - s)",
    )
    expect(
        b == ref_b,
        "(b): walk back from the output through the two stride-1 layers, then through "
        "the stride-2 first layer, which multiplies the window it receives by its "
        "stride: r <- s r + (k - s)",
    )
    expect(
        c != 70,
        "(c): 70 is the receptive field with kernel 4; the exercise asks for the same "
        "strides with every kernel 3",
    )
    expect(
        c == ref_c,
        "(c): the 70x70 PatchGAN is three stride-2 convolutions and then two stride-1 "
        "convolutions; give each kernel 3 and walk back from one output unit",
    )
    return (
        f"receptive fields (a) {a}, (b) {b}, (c) {c} px: a stride early in the stack "
        "multiplies the growth of every layer after it"
    )


@checker("ch08-seed")
def seed_variation(*, y_test, out_first, out_seed, again) -> str:
    """``out_seed``: the test outputs of the cGAN + L1 model retrained with another seed;
    ``again``: its measures {"L1", "HF ratio"(, "PSNR")} on the test photos; ``out_first``:
    the outputs of the first run (seed 0)."""
    y = checks.floating(checks.tensor(y_test, "y_test"), "y_test")
    _same_shape(out_seed, y, "out_seed", "y_test")
    _same_shape(out_first, y, "out_first", "y_test")
    keys = ("L1", "HF ratio")
    got = _metrics_dict(again, "again", keys)
    expect(
        not torch.allclose(out_seed, out_first, atol=1e-5),
        "out_seed is identical to the first run's outputs: train a fresh cGAN + L1 model "
        "with another seed (it sets the initial weights and the order of the batches)",
    )
    ref_l1 = (out_seed - y).abs().mean().item()
    ref_hf = metrics.hf_energy_ratio(out_seed, y)
    close(
        got["L1"],
        ref_l1,
        "again['L1'] is the mean absolute difference between the new model's test "
        "outputs and the true test photos, over every pixel, in [-1, 1] units",
        rtol=0.01,
        atol=1e-4,
    )
    close(
        got["HF ratio"],
        ref_hf,
        "again['HF ratio'] is the high-frequency energy of the new outputs relative to "
        "that of the true photos (outputs in the numerator: below 1 means blurrier)",
        rtol=0.01,
    )
    if "PSNR" in again:
        close(
            number(again["PSNR"], "again['PSNR']"),
            metrics.psnr(out_seed.clamp(-1, 1), y),
            "again['PSNR'] is the PSNR of the (clamped) new outputs against the true "
            "photos, measured as in the ablation table",
            atol=0.05,
        )
    l1_0 = (out_first - y).abs().mean().item()
    hf_0 = metrics.hf_energy_ratio(out_first, y)
    return (
        f"new seed: L1 {ref_l1:.3f}, HF ratio {ref_hf:.2f}; first run: L1 {l1_0:.3f}, "
        f"HF ratio {hf_0:.2f}. The seed alone moves L1 by {abs(ref_l1 - l1_0):.3f} and "
        f"the HF ratio by {abs(ref_hf - hf_0):.2f}: gaps in the tables no larger than "
        "that may be noise"
    )


@checker("ch08-edges-only")
def edges_only(
    *,
    x_test,
    y_train,
    y_test,
    g_edges,
    g_skips,
    g_noskips,
    l1_edges,
    l1_grey,
    l1_skips,
    l1_noskips,
) -> str:
    """``g_edges``: the L1 model trained on edges only; ``g_skips`` / ``g_noskips``: the L1
    models with and without skip connections trained on the sketches with hints;
    ``l1_*``: the test L1 errors of the three models and of predicting the training
    photos' mean grey everywhere."""
    x = checks.floating(checks.tensor(x_test, "x_test"), "x_test")
    y = checks.floating(checks.tensor(y_test, "y_test"), "y_test")
    y_tr = checks.floating(checks.tensor(y_train, "y_train"), "y_train")
    if x.dim() != 4 or x.shape[1] != 2 or len(x) != len(y):
        raise ValueError(
            "x_test must be the (N, 2, H, W) test sketches (edges, tone hint) of y_test, "
            f"got {tuple(x.shape)} for y_test {tuple(y.shape)}"
        )
    models = {
        "g_edges": module(g_edges, "g_edges"),
        "g_skips": module(g_skips, "g_skips"),
        "g_noskips": module(g_noskips, "g_noskips"),
    }
    answers = {
        "l1_edges": number(l1_edges, "l1_edges"),
        "l1_grey": number(l1_grey, "l1_grey"),
        "l1_skips": number(l1_skips, "l1_skips"),
        "l1_noskips": number(l1_noskips, "l1_noskips"),
    }
    expect(
        all(0 < v <= 2 for v in answers.values()),
        "an L1 error between images in [-1, 1] lies between 0 and 2 per pixel: take the "
        "mean of the absolute differences over every pixel of the test photos",
    )
    ref_grey = (y - y_tr.mean()).abs().mean().item()
    close(
        answers["l1_grey"],
        ref_grey,
        "the constant baseline predicts one grey level at every pixel of every test "
        "photo: the mean of all the training photos' pixels; l1_grey is its mean "
        "absolute error on the test photos",
        rtol=0.01,
        atol=1e-4,
    )
    expect(
        getattr(g_noskips, "skips", False) is False,
        "g_noskips still has its skip connections: the plain encoder-decoder is the "
        "U-Net built without them",
    )
    inputs = {"g_edges": x[:, :1], "g_skips": x, "g_noskips": x}
    refs = {}
    for name, m in models.items():
        try:
            out = _run(m, inputs[name])
        except (ValueError, RuntimeError) as e:
            what = "the edge channel alone" if name == "g_edges" else "both channels"
            raise NotYet(
                f"{name} cannot translate the test sketches ({type(e).__name__}): it "
                f"should take {what} of the sketch as input"
            ) from None
        if out.shape != y.shape:
            raise NotYet(f"{name} should map a sketch to a one-channel photo")
        refs[name] = (out - y).abs().mean().item()
    for name in models:
        key = "l1" + name[1:]
        close(
            answers[key],
            refs[name],
            f"{key} is the mean absolute difference between {name}'s outputs on the "
            "test sketches and the test photos; compute it with the model in eval mode "
            "(model.eval(): BatchNorm then uses its running statistics)",
            rtol=0.01,
            atol=1e-4,
        )
    e, g, s, n = (answers[k] for k in ("l1_edges", "l1_grey", "l1_skips", "l1_noskips"))
    rel = (
        "about the same as"
        if abs(e - g) <= 0.03 * g
        else "worse than"
        if e > g
        else "better than"
    )
    return (
        f"(a) edges only: L1 {e:.3f}, {rel} the constant mean grey ({g:.3f}); "
        f"(b) with the tone hint: U-Net {s:.3f}, without skip connections {n:.3f}"
    )


# --- 8.2 CycleGAN ----------------------------------------------------------------------


@checker("ch08-inverse")
def inverse_maps(*, a, b, G_map, F_map, cycle, D_B, d_score, d_real) -> str:
    """``G_map`` / ``F_map``: an invertible map A -> B and its inverse (functions of an image
    batch); ``cycle``: the cycle loss of the pair on the photos ``a`` and sketches ``b``;
    ``d_score`` / ``d_real``: the mean score of the trained ``D_B`` on ``G_map(a)`` and on
    ``b``."""
    a = checks.floating(checks.tensor(a, "a"), "a")
    b = checks.floating(checks.tensor(b, "b"), "b")
    for f, name in ((G_map, "G_map"), (F_map, "F_map")):
        if not callable(f):
            raise TypeError(
                f"{name} must be a function of an image batch, got {type(f).__name__}"
            )
    module(D_B, "D_B")
    with torch.no_grad():
        g_a = G_map(a)
        round_a, round_b = F_map(g_a), G_map(F_map(b))
    for t, name in ((g_a, "G_map(a)"), (round_a, "F_map(G_map(a))")):
        if not torch.is_tensor(t) or t.shape != a.shape:
            raise ValueError(f"{name} must be an image batch of the shape of a")
    if not torch.is_tensor(round_b) or round_b.shape != b.shape:
        raise ValueError("G_map(F_map(b)) must be an image batch of the shape of b")
    ref = ((round_a - a).abs().mean() + (round_b - b).abs().mean()).item()
    expect(
        ref < 1e-5,
        "F_map is not the inverse of G_map: translating there and back should return "
        "each photo (F(G(a)) = a) and each sketch (G(F(b)) = b) exactly",
    )
    close(
        number(cycle, "cycle"),
        ref,
        "the cycle loss adds the two round trips, the mean absolute error of F(G(a)) "
        "against a and of G(F(b)) against b; for a map and its inverse each term is exact",
        atol=1e-4,
    )
    ref_score = _run(D_B, g_a, eval_mode=False).mean().item()
    ref_real = _run(D_B, b, eval_mode=False).mean().item()
    close(
        number(d_score, "d_score"),
        ref_score,
        "d_score is the mean of D_B's outputs (one score per patch) on the translated "
        "photos G(a), with the trained D_B as it is",
        rtol=0.01,
        atol=1e-3,
    )
    close(
        number(d_real, "d_real"),
        ref_real,
        "d_real is the mean of D_B's outputs on the real sketches b",
        rtol=0.01,
        atol=1e-3,
    )
    changes = (g_a - a).abs().mean().item() > 1e-3
    return (
        f"F(G(a)) = a and G(F(b)) = b: cycle loss {ref:.1e}"
        + ("" if changes else " (G is the identity: a trivial inverse pair)")
        + f"; the trained D_B scores G(a) {ref_score:.3f} and real sketches "
        f"{ref_real:.3f} (LSGAN: 1 = real, 0 = fake)"
    )


@checker("ch08-f")
def f_direction(*, F_with, F_without, s_test, x_test, f_corr, f_edges) -> str:
    """``f_corr`` / ``f_edges``: {"with": ..., "without": ...}, the mean correlation of
    F(b) with the true photo and the mean edges kept (sketch b vs F(b)), for the F of the
    models trained with and without the cycle loss."""
    s = checks.floating(checks.tensor(s_test, "s_test"), "s_test")
    x = checks.floating(checks.tensor(x_test, "x_test"), "x_test")
    if s.shape != x.shape or s.dim() != 4:
        raise ValueError(
            "s_test and x_test must be the (N, C, H, W) test sketches and their photos, "
            f"got {tuple(s.shape)} and {tuple(x.shape)}"
        )
    keys = ("with", "without")
    corr = _metrics_dict(f_corr, "f_corr", keys)
    edges = _metrics_dict(f_edges, "f_edges", keys)
    expect(
        all(-1 <= v <= 1 for v in (*corr.values(), *edges.values())),
        "a correlation lies between -1 and 1: average the per-image correlations",
    )
    fs = {"with": module(F_with, "F_with"), "without": module(F_without, "F_without")}
    ref_c, ref_e = {}, {}
    for k, F in fs.items():
        fb = _run(F, s)
        if fb.shape != x.shape:
            raise ValueError(f"F_{k}(s_test) must have the shape of x_test")
        ref_c[k] = metrics.image_correlation(fb, x).mean().item()
        ref_e[k] = metrics.structure_correlation(s, fb).mean().item()
    for k in keys:
        close(
            corr[k],
            ref_c[k],
            f"f_corr[{k!r}]: translate every test sketch b with F (the sketch -> photo "
            "generator) and correlate each F(b) with the photo that sketch was drawn "
            "from, pixel by pixel; average over the test set",
            atol=0.005,
        )
        close(
            edges[k],
            ref_e[k],
            f"f_edges[{k!r}]: the edges kept of the B -> A direction compare where the "
            "input sketch b has edges with where its translation F(b) has them",
            atol=0.005,
        )
    return (
        f"F(b) correlates {ref_c['with']:.3f} (with cycle loss) and "
        f"{ref_c['without']:.3f} (without) with the true photos; edges kept "
        f"{ref_e['with']:.3f} and {ref_e['without']:.3f}"
    )
