"""Checks for chapter 6's exercises (GANs: the game on points, DCGAN and its latent space).

Nothing here trains a network. Every number a student reports is recomputed from what
the student's own runs produced (generated samples, a trained discriminator, the
generator and its codes) with the book's metrics, so any correct answer passes whatever
the training length, the seed or the profile -- and a wrong formula, a fraction given
for a percentage, or the wrong samples do not.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping

import torch
from torch import nn

from .. import checks, data, metrics
from . import checker, close, expect, module, module_device, number

RING_SAMPLES = 2500  # the PacGAN protocol
SCALES = (0.25, 0.5, 0.75, 1.0, 1.5)


# --- shared helpers ---------------------------------------------------------------------


def _mapping(x, keys, name: str) -> dict:
    """``x`` as a dict holding (at least) ``keys``; a wrong kind or missing key raises."""
    if not isinstance(x, Mapping):
        raise TypeError(
            f"{name} must be a dict with the keys {', '.join(map(repr, keys))}, "
            f"got {type(x).__name__}"
        )
    missing = [k for k in keys if k not in x]
    if missing:
        raise ValueError(
            f"{name} must have the keys {', '.join(map(repr, keys))}; "
            f"missing: {', '.join(map(repr, missing))}"
        )
    return {k: x[k] for k in keys}


def _digits(x, name: str) -> torch.Tensor:
    """A batch of 16x16 digit images in [-1, 1], detached, on the CPU."""
    x = checks.floating(checks.tensor(x, name), name).detach().cpu()
    return checks.images(x, channels=1, size=16, name=name)


def _percent_hint(name: str) -> str:
    return f"{name} looks like a fraction: report it as a percentage (0 to 100)"


def _differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape != b.shape or not torch.equal(a, b)


@functools.cache
def _test_features() -> torch.Tensor:
    """Digit features of the held-out test digits, the FDD's reference (computed once)."""
    return metrics.digit_features(data.digits("test")[0])


def _fdd(x: torch.Tensor) -> float:
    """The FDD of ``x`` (as ``metrics.frechet_digit_distance``), reference features cached."""
    return metrics.frechet_distance(metrics.digit_features(x), _test_features())


def _coverage(samples, name: str) -> dict:
    s = checks.floating(checks.tensor(samples, name), name).detach().cpu()
    checks.shape(s, (None, 2), name)
    expect(
        len(s) == RING_SAMPLES,
        f"{name} holds {len(s)} points: the PacGAN protocol measures "
        f"{RING_SAMPLES:,} generated samples (the number of covered modes depends on it)",
    )
    expect(
        bool(torch.isfinite(s).all()),
        f"{name} holds NaN or infinity: training diverged",
    )
    return metrics.mode_coverage(s) | {"samples": s}


def _check_coverage(ref: dict, modes, hq, what: str) -> tuple[int, float]:
    m = number(modes, f"modes covered ({what})")
    h = number(hq, f"high quality ({what})")
    expect(
        m == int(m) and 0 <= m <= 8,
        f"the modes covered ({what}) are a whole number between 0 and 8",
    )
    expect(
        int(m) == ref["modes"],
        f"the modes covered ({what}) do not match your samples: a mode counts as covered "
        "only when at least one *high-quality* sample (within 3 sigma = 0.03 of its centre) "
        "lies on it, not when it is merely the nearest centre of some sample",
    )
    if (
        abs(h - ref["high_quality"]) > 0.05
        and abs(100 * h - ref["high_quality"]) <= 0.05
    ):
        expect(False, _percent_hint(f"high quality ({what})"))
    close(
        h,
        ref["high_quality"],
        f"the high-quality share ({what}) does not match your samples: it is the "
        "percentage of all samples lying within 3 sigma = 0.03 of their nearest mode centre",
        rtol=0.0,
        atol=0.05,
    )
    return int(m), h


# --- 6.1 the game ------------------------------------------------------------------------


@checker("ch06-lsgan-hinge")
def lsgan_hinge(*, ring_samples, modes_covered, high_quality) -> str:
    """Each a dict {"lsgan": ..., "hinge": ...}: the 2,500 generated points (N, 2) of each
    run, its modes covered (0..8) and its % of high-quality samples."""
    losses = ("lsgan", "hinge")
    samples = _mapping(ring_samples, losses, "ring_samples")
    modes = _mapping(modes_covered, losses, "modes_covered")
    hq = _mapping(high_quality, losses, "high_quality")
    refs = {k: _coverage(samples[k], f"ring_samples[{k!r}]") for k in losses}
    expect(
        _differ(refs["lsgan"]["samples"], refs["hinge"]["samples"]),
        "the two sample sets are identical: train one generator per loss "
        "and draw the samples of each",
    )
    got = {k: _check_coverage(refs[k], modes[k], hq[k], k) for k in losses}
    return (
        "recomputed from your samples with the PacGAN protocol: "
        + "; ".join(
            f"{k} {m} of 8 modes, {h:.1f} % high quality" for k, (m, h) in got.items()
        )
        + " (compare with the plain GAN and PacGAN2 rows of the table)"
    )


@checker("ch06-minibatch-std")
def minibatch_std(*, D, mbstd_samples, mbstd_modes, mbstd_high_quality) -> str:
    """``D``: the trained minibatch-std discriminator ((N, 2) -> N logits);
    ``mbstd_samples``: 2,500 points of its generator; their modes covered and % high
    quality."""
    D = module(D, "D")
    x = data.toy2d("ring8", 64, seed=606, sigma=0.01).to(module_device(D))
    # the same first point, in a batch with no spread
    collapsed = x[:1].repeat(len(x), 1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        out, out_c, out_p = (D(b) for b in (x, collapsed, x[perm]))
    for o in (out, out_c, out_p):
        expect(
            torch.is_tensor(o) and o.numel() == len(x),
            "the discriminator returns one logit per sample: a batch (N, 2) gives N numbers",
        )
    out, out_c, out_p = (
        o.detach().reshape(-1).double().cpu() for o in (out, out_c, out_p)
    )
    expect(bool(torch.isfinite(out).all()), "the discriminator outputs NaN or infinity")
    change = float((out[0] - out_c[0]).abs())
    expect(
        change > 1e-4,
        "your discriminator judges each sample on its own: its verdict on a point is the "
        "same whether the rest of the batch is spread over the ring or collapsed onto that "
        "point. Give it the batch's spread as one more input feature",
    )
    expect(
        torch.allclose(out_p, out[perm], atol=1e-4, rtol=1e-4),
        "reordering the batch should only reorder the verdicts: the extra feature is a "
        "statistic of the whole batch, computed the same way for every sample in it",
    )
    ref = _coverage(mbstd_samples, "mbstd_samples")
    m, h = _check_coverage(ref, mbstd_modes, mbstd_high_quality, "minibatch std")
    return (
        f"the verdict on a point moves by {change:.3g} (logit) when the batch collapses "
        f"onto it, and follows a reordering of the batch; its generator covers {m} of 8 "
        f"modes with {h:.1f} % high quality (recomputed from your samples)"
    )


def _w1_to_data(fake: torch.Tensor) -> float:
    """W1 between a 1-D sample and N(2, 0.5^2): sorted sample vs the normal's quantiles."""
    n = len(fake)
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    q = 2 + 0.5 * math.sqrt(2) * torch.erfinv(2 * u - 1)
    return float((fake.double().sort().values - q).abs().mean())


@checker("ch06-saturating")
def saturating(*, mean_d_of_g, w1_to_data, fakes, discriminators) -> str:
    """Each a dict {"saturating": ..., "nonsaturating": ...}: mean D(G(z)) and the W1
    distance to the data N(2, 0.5^2) after training, the final fakes (N,) and the trained D."""
    kinds = ("saturating", "nonsaturating")
    dg = _mapping(mean_d_of_g, kinds, "mean_d_of_g")
    w1 = _mapping(w1_to_data, kinds, "w1_to_data")
    fk = _mapping(fakes, kinds, "fakes")
    ds = _mapping(discriminators, kinds, "discriminators")
    got = {}
    for k in kinds:
        f = checks.floating(checks.tensor(fk[k], f"fakes[{k!r}]"), f"fakes[{k!r}]")
        f = f.detach().reshape(-1)
        if len(f) < 100:
            raise ValueError(
                f"fakes[{k!r}] must hold the generated points (at least 100)"
            )
        expect(bool(torch.isfinite(f).all()), f"fakes[{k!r}] holds NaN or infinity")
        D = module(ds[k], f"discriminators[{k!r}]")
        with torch.no_grad():
            ref_dg = float(torch.sigmoid(D(f[:, None].to(module_device(D)))).mean())
        d = number(dg[k], f"mean_d_of_g[{k!r}]")
        expect(
            0.0 <= d <= 1.0,
            f"mean_d_of_g[{k!r}] = {d:.3g} is not a probability: D(G(z)) is the "
            "discriminator's probability that a fake is real (its logit through a sigmoid)",
        )
        close(
            d,
            ref_dg,
            f"mean_d_of_g[{k!r}] does not match your discriminator on your fakes: average "
            "the probability 'real' that D gives each generated point",
            rtol=0.0,
            atol=0.01,
        )
        ref_w1 = _w1_to_data(f.cpu())
        w = number(w1[k], f"w1_to_data[{k!r}]")
        close(
            w,
            ref_w1,
            f"w1_to_data[{k!r}] does not match your fakes: the Wasserstein-1 distance of "
            "two 1-D samples of equal size is the mean absolute difference of their sorted "
            "values; compare with as many draws of the data N(2, 0.5^2)",
            rtol=0.05,
            atol=0.03,
        )
        got[k] = (d, w)
    expect(
        _differ(fk["saturating"].detach(), fk["nonsaturating"].detach()),
        "the two runs gave identical fakes: train one generator per generator cost",
    )
    (ds_, ws), (dn, wn) = got["saturating"], got["nonsaturating"]
    return (
        f"recomputed from your fakes and discriminators: saturating D(G(z)) = {ds_:.3f}, "
        f"W1 = {ws:.2f}; non-saturating D(G(z)) = {dn:.3f}, W1 = {wn:.2f} "
        "(the data sit at 2, the shifted generator started near -6)"
    )


# --- 6.2 DCGAN and its latent space -------------------------------------------------------


def _labels(G: nn.Module, y, n: int):
    if getattr(G, "num_classes", None) is None:
        return ()
    y = checks.tensor(y, "y_base")
    if len(y) != n:
        raise ValueError(f"y_base must hold one label per code ({n}), got {len(y)}")
    return (y.to(module_device(G)),)


@checker("ch06-shell")
def shell(*, G, z_base, y_base, fdd_by_scale) -> str:
    """``fdd_by_scale``: {s: FDD of the images of the codes s * z_base (labels y_base)} for
    s in 0.25, 0.5, 0.75, 1, 1.5."""
    G = module(G, "G")
    z = checks.floating(checks.tensor(z_base, "z_base"), "z_base").detach()
    checks.shape(z, (None, None), "z_base")
    cond = _labels(G, y_base, len(z))
    if not isinstance(fdd_by_scale, Mapping):
        raise TypeError(
            f"fdd_by_scale must be a dict {{scale: FDD}}, got {type(fdd_by_scale).__name__}"
        )
    given = {}
    for key, value in fdd_by_scale.items():
        s = number(key, "a scale of fdd_by_scale")
        given[min(SCALES, key=lambda t: abs(t - s))] = (s, value)
    missing = [s for s in SCALES if s not in given or abs(given[s][0] - s) > 1e-9]
    if missing:
        raise ValueError(
            "fdd_by_scale must hold the FDD of each scale 0.25, 0.5, 0.75, 1, 1.5; missing: "
            + ", ".join(f"{s:g}" for s in missing)
        )
    got = {}
    with torch.no_grad():
        for s in SCALES:
            imgs = G((s * z).to(module_device(G)), *cond).cpu()
            ref = _fdd(imgs)
            f = number(given[s][1], f"fdd_by_scale[{s:g}]")
            close(
                f,
                ref,
                f"the FDD at scale {s:g} does not match: multiply each of the codes by the "
                "scale, keep their labels, and measure the FDD of the generated digits "
                "against the held-out test digits",
                rtol=2e-3,
                atol=0.01,
            )
            got[s] = f
    best = min(got, key=got.get)
    radius = float(z.norm(dim=1).mean())
    return (
        "FDD by scale "
        + ", ".join(f"{s:g}: {f:.2f}" for s, f in got.items())
        + f" -- lowest at s = {best:g}; your codes' mean norm is {radius:.2f} at s = 1 "
        f"(the shell's radius, about sqrt({z.shape[1]}) = {math.sqrt(z.shape[1]):.2f})"
    )


@checker("ch06-feature-inversion")
def feature_inversion(*, x_target, y_target, x_pixel, x_feat, class_kept) -> str:
    """``x_pixel`` / ``x_feat``: reconstructions of the held-out digits ``x_target`` (labels
    ``y_target``) by pixel-loss and pixel + feature-loss inversion; ``class_kept``:
    {"pixel loss": %, "pixel + feature loss": %} of reconstructions the classifier reads
    as the same digit."""
    x = _digits(x_target, "x_target")
    y = checks.tensor(y_target, "y_target").detach().cpu().reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"y_target must hold {len(x)} labels, got {len(y)}")
    rec = {
        "pixel loss": _digits(x_pixel, "x_pixel"),
        "pixel + feature loss": _digits(x_feat, "x_feat"),
    }
    for name, r in rec.items():
        if r.shape != x.shape:
            raise ValueError(
                f"the {name} reconstructions must have the targets' shape {tuple(x.shape)}, "
                f"got {tuple(r.shape)}"
            )
        expect(
            float(((r - x) ** 2).mean()) > 1e-8,
            f"the {name} reconstructions are the target digits themselves: pass the "
            "generator's images of the codes found by the inversion",
        )
    expect(
        _differ(rec["pixel loss"], rec["pixel + feature loss"]),
        "x_feat is the pixel-loss reconstruction: run a new inversion whose loss adds the "
        "feature term",
    )
    net = metrics.digit_feature_net()
    with torch.no_grad():
        read_x = net(x).argmax(1)
        reads = {k: net(r).argmax(1) for k, r in rec.items()}
    atol = 0.5 * 100 / len(x)  # half an image
    got = {}
    kept = _mapping(class_kept, list(rec), "class_kept")
    for name, r in reads.items():
        v = number(kept[name], f"class_kept[{name!r}]")
        refs = [100 * float((r == t).double().mean()) for t in (read_x, y)]
        if all(abs(v - ref) > atol for ref in refs):
            expect(
                not any(abs(100 * v - ref) <= atol for ref in refs),
                _percent_hint(f"class_kept[{name!r}]"),
            )
            expect(
                False,
                f"class_kept[{name!r}] does not match your reconstructions: the share of "
                "digits whose reconstruction the classifier assigns to the same class as "
                "the digit itself (or as its true label)",
            )
        got[name] = v
    mse = {k: float(((r - x) ** 2).mean()) for k, r in rec.items()}
    return (
        f"on {len(x)} held-out digits the class is kept in {got['pixel loss']:.0f} % "
        f"(pixel loss, MSE {mse['pixel loss']:.4f}) vs {got['pixel + feature loss']:.0f} % "
        f"(pixel + feature loss, MSE {mse['pixel + feature loss']:.4f})"
    )


def _fdd_of_runs(runs: dict) -> dict:
    """``runs``: {name of the FDD variable: (its value, name of the samples, the samples)}.
    Recompute each FDD from its samples; the runs' samples must differ."""
    got, seen = {}, []
    for fdd_name, (value, samples_name, samples) in runs.items():
        x = _digits(samples, samples_name)
        f = number(value, fdd_name)
        close(
            f,
            _fdd(x),
            f"{fdd_name} is not the FDD of {samples_name}: measure the Fréchet digit "
            "distance of that run's generated digits against the held-out test digits",
            rtol=2e-3,
            atol=0.01,
        )
        for other_name, other in seen:
            expect(
                _differ(x, other),
                f"{samples_name} and {other_name} are identical: each run needs its own "
                "freshly trained generator and its own samples",
            )
        seen.append((samples_name, x))
        got[fdd_name] = f
    return got


@checker("ch06-mapping")
def mapping(
    *,
    mapped_generator,
    plain_short,
    mapped_short,
    paper_lr_short,
    plain_short_samples,
    mapped_short_samples,
    paper_lr_samples,
) -> str:
    """``mapped_generator``: your mapping-network generator G(z, y); the FDDs of the three
    short runs (plain, with the mapping, plain at lr 2e-4) and their samples."""
    from .. import gan

    G = module(mapped_generator, "mapped_generator")
    linear = [m for m in G.modules() if isinstance(m, nn.Linear)]
    synth = [m for m in G.modules() if isinstance(m, gan.DCGenerator)]
    expect(
        len(synth) == 1,
        "the synthesis network should be one conditional lib.gan.DCGenerator, fed with w",
    )
    synth = synth[0]
    expect(
        synth.num_classes is not None,
        "the DCGenerator behind the mapping should be conditional (num_classes=10), "
        "like the DCGAN of this notebook",
    )
    expect(
        len(linear) == 4,
        f"your generator has {len(linear)} linear layers: the mapping network is an MLP "
        "of 4 layers (four linear maps with nonlinearities between them) in front of "
        "the convolutional generator, which has none",
    )
    g = copy.deepcopy(G).eval()
    s = copy.deepcopy(synth).eval()
    dev = module_device(g)
    z = torch.randn(8, s.z_dim, generator=torch.Generator().manual_seed(6)).to(dev)
    y = (torch.arange(8) % s.num_classes).to(dev)
    with torch.no_grad():
        out = g(z, y)
        direct = s(z, y)
    expect(
        torch.is_tensor(out) and tuple(out.shape) == (8, 1, 16, 16),
        "G(z, y) should return a batch of 16x16 digits (N, 1, 16, 16)",
    )
    expect(
        not torch.allclose(out, direct),
        "the synthesis network draws the same images from z as your generator does: "
        "it should receive the mapped code w, not z",
    )
    got = _fdd_of_runs(
        {
            "plain_short": (plain_short, "plain_short_samples", plain_short_samples),
            "mapped_short": (
                mapped_short,
                "mapped_short_samples",
                mapped_short_samples,
            ),
            "paper_lr_short": (paper_lr_short, "paper_lr_samples", paper_lr_samples),
        }
    )
    return (
        "a 4-layer mapping in front of a conditional DCGenerator; FDD of your short runs "
        f"(recomputed from the samples): plain {got['plain_short']:.2f}, with the "
        f"mapping {got['mapped_short']:.2f}, plain at lr 2e-4 {got['paper_lr_short']:.2f}"
    )


@checker("ch06-no-label")
def no_label(
    *, plain_short, uncond_short, plain_short_samples, uncond_samples, digits_drawn
) -> str:
    """The FDDs and samples of the short conditional and unconditional runs;
    ``digits_drawn``: {"conditional": n, "unconditional": n}, how many different digits
    the classifier finds among each run's samples."""
    got = _fdd_of_runs(
        {
            "plain_short": (plain_short, "plain_short_samples", plain_short_samples),
            "uncond_short": (uncond_short, "uncond_samples", uncond_samples),
        }
    )
    keys = ("conditional", "unconditional")
    drawn = _mapping(digits_drawn, keys, "digits_drawn")
    net = metrics.digit_feature_net()
    found = {}
    for k, x in zip(keys, (plain_short_samples, uncond_samples)):
        x = _digits(x, k)
        with torch.no_grad():
            counts = torch.bincount(net(x).argmax(1), minlength=10)
        most = int((counts > 0).sum())  # every class read at least once
        least = int((counts >= 0.01 * len(x)).sum())  # classes with 1 % of the samples
        d = number(drawn[k], f"digits_drawn[{k!r}]")
        expect(
            d == int(d) and least <= d <= most,
            f"digits_drawn[{k!r}] = {d:g} does not match the samples: count the different "
            "classes the digit classifier assigns to them (at most 10)",
        )
        found[k] = int(d)
    return (
        f"conditional: FDD {got['plain_short']:.2f}, {found['conditional']} of 10 digits; "
        f"unconditional: FDD {got['uncond_short']:.2f}, {found['unconditional']} of 10 "
        "(recomputed from your samples)"
    )
