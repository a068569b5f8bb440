"""Checks for chapter 5's exercises (diffusion: the forward process, 2-D points, digits)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from .. import checks, data, diffusion, metrics
from . import checker, close, expect, keyed, monotone, nearest_distance, number

SIGNAL = 0.5  # "high signal-to-noise ratio": alpha_bar > 1/2, i.e. log SNR > 0


def _device(model) -> torch.device:
    """Where a network's parameters live (the CPU for a plain function)."""
    if isinstance(model, nn.Module):
        p = next(model.parameters(), None)
        if p is not None:
            return p.device
    return torch.device("cpu")


def _callable(f, name: str):
    if not callable(f):
        raise TypeError(
            f"{name} must be a function or a network, got {type(f).__name__}"
        )
    return f


def _schedule(s, name: str) -> diffusion.Schedule:
    if not isinstance(s, diffusion.Schedule):
        raise TypeError(
            f"{name} must be a lib.diffusion.Schedule, got {type(s).__name__}"
        )
    return s


def _points(x, name: str, dim: int = 2) -> torch.Tensor:
    x = checks.floating(checks.tensor(x, name), name)
    checks.shape(x, (None, dim), name)
    checks.nonempty(x, name)
    expect(
        bool(torch.isfinite(x).all()),
        f"{name} holds a NaN or infinity: the sampler diverged",
    )
    return x.detach().cpu()


def _digits(x, name: str) -> torch.Tensor:
    """A batch of 16x16 digits in [-1, 1], as the FDD measures them."""
    x = checks.floating(checks.tensor(x, name), name)
    if x.dim() == 4 and tuple(x.shape[-2:]) == (8, 8):
        raise ValueError(
            f"{name} are 8x8: the FDD measures 16x16 digits; upsample the samples "
            "as the notebook does before measuring"
        )
    checks.images(x, channels=1, size=16, name=name)
    if len(x) < 2:
        raise ValueError(f"{name} must hold at least 2 samples, got {len(x)}")
    return x.detach().cpu()


_TEST_FEATURES: list[torch.Tensor] = []


def _fdd(x: torch.Tensor) -> float:
    """lib.metrics.frechet_digit_distance against the test digits, with the test digits'
    features computed once (the checks of a notebook measure several sample sets)."""
    if not _TEST_FEATURES:
        _TEST_FEATURES.append(metrics.digit_features(data.digits("test")[0]))
    return metrics.frechet_distance(metrics.digit_features(x), _TEST_FEATURES[0])


# --- forward_and_2d.ipynb -------------------------------------------------------------


@checker("ch05-cosine")
def cosine(*, my_abar, high_snr) -> str:
    """``my_abar``: your cosine-schedule alpha_bar for t = 0..T (or t = 1..T); ``high_snr``:
    "linear" or "cosine", the schedule that spends more steps at high signal-to-noise ratio."""
    abar = checks.floating(checks.tensor(my_abar, "my_abar"), "my_abar")
    abar = abar.detach().double().cpu().flatten()
    if abar.numel() < 2:
        raise ValueError(
            f"my_abar must hold one alpha_bar per step, got {abar.numel()} value(s)"
        )
    checks.choice(high_snr, ("linear", "cosine"), "high_snr")
    expect(
        bool(torch.isfinite(abar).all()),
        "my_abar holds a NaN or infinity: a division by a zero f(0) or alpha_bar?",
    )
    expect(
        float(abar.min()) >= -1e-9 and float(abar.max()) <= 1 + 1e-9,
        "alpha_bar_t is the fraction of the signal's variance left at step t: every "
        f"value lies in [0, 1], yours span [{float(abar.min()):.3g}, {float(abar.max()):.3g}]",
    )
    starts_at_0 = abs(float(abar[0]) - 1.0) < 1e-9  # t = 0 .. T, alpha_bar_0 = 1
    T = abar.numel() - 1 if starts_at_0 else abar.numel()
    reference = diffusion.cosine_schedule(T).alpha_bars
    reference = reference if starts_at_0 else reference[1:]
    monotone(
        abar,
        "alpha_bar_t can only fall as t grows: each step removes a little signal",
        increasing=False,
        tol=1e-12,
    )
    err = (abar - reference).abs()
    worst = int(err.argmax()) + (0 if starts_at_0 else 1)
    expect(
        float(err.max()) < 1e-5,
        f"your alpha_bar differs from the cosine schedule's by up to {float(err.max()):.2g} "
        f"(at t = {worst} of T = {T}): look again at the offset s, the factor pi/2, the "
        "square of the cosine and the division by f(0)",
    )
    # which schedule keeps log SNR > 0 (alpha_bar > 1/2) for more of its steps, at T = 1000
    n_lin = int((diffusion.linear_schedule(1000).alpha_bars[1:] > SIGNAL).sum())
    n_cos = int((diffusion.cosine_schedule(1000).alpha_bars[1:] > SIGNAL).sum())
    more = "cosine" if n_cos > n_lin else "linear"
    expect(
        high_snr == more,
        "read the log-SNR plot: for how many of the T steps does each curve stay above "
        "0 (more signal than noise)?",
    )
    return (
        f"your alpha_bar matches the cosine schedule (T = {T}; largest difference "
        f"{float(err.max()):.2g}); "
        f"log SNR stays above 0 for {n_cos} of 1000 steps with the cosine schedule and "
        f"{n_lin} with the linear one"
    )


@checker("ch05-x0")
def x0_prediction(*, x0net, eps_from_x0, sched2d, x_held, s_x0, sw_x0) -> str:
    """``x0net``: your network predicting x0 from (x_t, t); ``eps_from_x0(x_t, t)``: its
    prediction turned into a noise prediction; ``s_x0``: (N, 2) samples drawn with it;
    ``sw_x0``: their sliced Wasserstein distance to ``x_held``."""
    _callable(x0net, "x0net")
    _callable(eps_from_x0, "eps_from_x0")
    sched = _schedule(sched2d, "sched2d")
    held = _points(x_held, "x_held")
    samples = _points(s_x0, "s_x0")
    device = _device(x0net)
    g = torch.Generator().manual_seed(0)
    x0 = held[:1000]
    t = torch.randint(1, sched.T + 1, (len(x0),), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = diffusion.q_sample(sched, x0, t, noise=noise)
    with torch.no_grad():
        pred = x0net(x_t.to(device), t.to(device))
        eps_hat = eps_from_x0(x_t.to(device), t.to(device))
    for out, name in ((pred, "x0net(x_t, t)"), (eps_hat, "eps_from_x0(x_t, t)")):
        checks.tensor(out, name)
        if tuple(out.shape) != tuple(x_t.shape):
            raise ValueError(
                f"{name} must return one 2-d vector per point, shape {tuple(x_t.shape)}, "
                f"got {tuple(out.shape)}"
            )
    pred, eps_hat = pred.detach().double().cpu(), eps_hat.detach().double().cpu()
    ab = sched.alpha_bars[t][:, None]
    reference = (x_t.double() - ab.sqrt() * pred) / (1 - ab).sqrt()
    expect(
        bool(torch.isfinite(eps_hat).all())
        and bool(((eps_hat - reference).abs() <= 1e-3 * (1 + reference.abs())).all()),
        "eps_from_x0 should solve x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps "
        "for eps, with the network's x0 in place of x0 and alpha_bar (the cumulative "
        "product, not alpha_t) taken at each point's own step t",
    )
    mse = float((pred - x0.double()).pow(2).mean())
    base = float((x0.double() - x0.double().mean(0)).pow(2).mean())
    expect(
        mse < 0.95 * base,
        f"x0net's guesses of the clean points are off by a squared error of {mse:.3f}, "
        f"no better than guessing the data mean ({base:.3f}): is it trained to output "
        "x0 itself (not the noise) from x_t and t?",
    )
    sw = number(sw_x0, "sw_x0")
    close(
        sw,
        metrics.sliced_wasserstein(samples, held),
        "sw_x0 is the sliced Wasserstein distance between the x0-model's samples and "
        "the held-out points, measured as in the table of the notebook",
        rtol=0.02,
        atol=1e-4,
    )
    return (
        f"eps_from_x0 inverts the forward formula at every t; x0net guesses x0 with a "
        f"squared error of {mse:.3f} (the data mean: {base:.3f}); its {len(samples)} "
        f"samples are {sw:.4f} (sliced W1) from the held-out points"
    )


@checker("ch05-cfg")
def guidance(*, cnet, x_c, y_c, guided_samples, on_moon0) -> str:
    """``cnet(x, t, y)``: your conditional denoiser (``y=None``: no label); ``x_c``, ``y_c``:
    the labelled training points; ``guided_samples``: {w: (N, 2) samples of moon 0 with
    guidance scale w}; ``on_moon0``: {w: percentage of those samples nearest to moon 0}."""
    _callable(cnet, "cnet")
    x = _points(x_c, "x_c")
    y = checks.tensor(y_c, "y_c").detach().cpu()
    if y.shape != (len(x),) or y.dtype.is_floating_point:
        raise ValueError(
            f"y_c must hold one integer label per point of x_c, shape ({len(x)},), "
            f"got {tuple(y.shape)} {y.dtype}"
        )
    for d, name in ((guided_samples, "guided_samples"), (on_moon0, "on_moon0")):
        if not isinstance(d, Mapping):
            raise TypeError(
                f"{name} must be a dict {{w: ...}} over the guidance scales, "
                f"got {type(d).__name__}"
            )
    ws = sorted(float(number(w, "a guidance scale w")) for w in guided_samples)
    if sorted(float(w) for w in on_moon0) != ws:
        raise ValueError(
            "guided_samples and on_moon0 must have the same keys (the w's)"
        )
    expect(
        len(ws) >= 3 and ws[0] == 0 and ws[-1] > 1,
        f"sample with at least three guidance scales: w = 0, w = 1 and a w above 1 "
        f"(you used {', '.join(f'{w:g}' for w in ws)})",
    )
    # the label must reach the network's prediction
    device = _device(cnet)
    g = torch.Generator().manual_seed(0)
    probe = x[torch.randperm(len(x), generator=g)[:256]].to(device)
    t = torch.randint(1, 21, (len(probe),), generator=g).to(device)
    with torch.no_grad():
        cond = cnet(probe, t, torch.zeros(len(probe), dtype=torch.long, device=device))
        uncond = cnet(probe, t, None)
    for out, name in ((cond, "cnet(x, t, y)"), (uncond, "cnet(x, t, None)")):
        checks.tensor(out, name)
        if tuple(out.shape) != tuple(probe.shape):
            raise ValueError(
                f"{name} must return one 2-d noise vector per point, got {tuple(out.shape)}"
            )
    expect(
        float((cond - uncond).abs().max()) > 1e-6,
        "cnet predicts the same noise with and without the label: the label has to "
        "enter the network (for example through an embedding added to the time embedding)",
    )
    by_w = {float(w): v for w, v in guided_samples.items()}
    pct_by_w = {float(w): v for w, v in on_moon0.items()}
    measured = {}
    for w in ws:
        s = _points(by_w[w], f"guided_samples[{w:g}]")
        nearest = torch.cdist(s.double(), x.double()).argmin(1)
        measured[w] = float((y[nearest] == 0).double().mean()) * 100
        close(
            number(pct_by_w[w], f"on_moon0[{w:g}]"),
            measured[w],
            "on_moon0[w] is the percentage (0 to 100) of the samples drawn with scale w "
            "whose nearest training point lies on moon 0",
            rtol=0,
            atol=1.0,
        )
    return (
        "samples nearest to moon 0: "
        + ", ".join(f"{measured[w]:.0f}% at w = {w:g}" for w in ws)
        + " (measured from your samples)"
    )


# --- digits.ipynb -------------------------------------------------------------------------


@checker("ch05-variance")
def reverse_variance(*, var_samples, var_fdd, better) -> str:
    """``var_samples``: {"beta": digits, "beta_tilde": digits}, 16x16 DDPM samples with each
    reverse variance c; ``var_fdd``: their FDDs; ``better``: the c with the better (lower) FDD."""
    keys = ("beta", "beta_tilde")
    samples = keyed(var_samples, "var_samples", keys)
    fdds = keyed(var_fdd, "var_fdd", keys)
    checks.choice(better, keys, "better")
    samples = {k: _digits(v, f"var_samples[{k!r}]") for k, v in samples.items()}
    expect(
        len(samples["beta"]) == len(samples["beta_tilde"]),
        "compare the same number of samples for both variances: a Frechet distance from "
        "fewer samples is biased upwards",
    )
    expect(
        float((samples["beta"] - samples["beta_tilde"]).abs().max()) > 1e-4,
        "the two sets of samples are identical: sample once with c = beta and once "
        "with c = beta_tilde",
    )
    measured = {k: _fdd(v) for k, v in samples.items()}
    for k in keys:
        close(
            number(fdds[k], f"var_fdd[{k!r}]"),
            measured[k],
            f"var_fdd[{k!r}] is the Frechet digit distance of the samples drawn with "
            f"c = {k} (against the test digits, as in the table of the notebook)",
            rtol=0.02,
        )
    lower = min(measured, key=measured.get)
    expect(
        better == lower,
        "better names the variance whose samples have the lower FDD (lower is better)",
    )
    n = len(samples["beta"])
    return (
        f"FDD of {n} samples: c = beta {measured['beta']:.2f}, c = beta_tilde "
        f"{measured['beta_tilde']:.2f}; {better} is better in this measurement"
    )


@checker("ch05-interp")
def interpolation(*, z0, z1, zs, walk) -> str:
    """``z0``, ``z1``: the two starting noises; ``zs``: (K, D) the points of the spherical
    interpolation from z0 to z1; ``walk``: their K DDIM decodings (images)."""
    a = checks.floating(checks.tensor(z0, "z0"), "z0").detach().double().cpu().flatten()
    b = checks.floating(checks.tensor(z1, "z1"), "z1").detach().double().cpu().flatten()
    if a.numel() != b.numel():
        raise ValueError(
            f"z0 and z1 must have the same size, got {a.numel()} and {b.numel()}"
        )
    z = checks.floating(checks.tensor(zs, "zs"), "zs").detach().double().cpu()
    if z.dim() < 2 or z[0].numel() != a.numel():
        raise ValueError(
            f"zs must hold one noise of {a.numel()} values per row, got shape "
            f"{tuple(z.shape)}"
        )
    z = z.flatten(1)
    images = checks.floating(checks.tensor(walk, "walk"), "walk").detach().cpu()
    if images.dim() != 4 or len(images) != len(z):
        raise ValueError(
            f"walk must hold one decoded image (N, C, H, W) per row of zs ({len(z)}), "
            f"got shape {tuple(images.shape)}"
        )
    expect(
        len(z) >= 3,
        "walk through several points between z0 and z1, not only the two ends",
    )
    expect(
        bool(torch.isfinite(z).all()) and bool(torch.isfinite(images).all()),
        "zs or walk holds a NaN or infinity: is the angle theta zero, or sin(theta)?",
    )
    scale = float(a.norm() + b.norm()) / 2
    expect(
        float((z[0] - a).norm()) < 1e-4 * scale
        and float((z[-1] - b).norm()) < 1e-4 * scale,
        "the walk starts at z0 (lambda = 0) and ends at z1 (lambda = 1)",
    )
    basis = torch.stack([a, b], 1)  # (D, 2)
    coef = torch.linalg.lstsq(basis, z.T).solution  # (2, K): z_k = c0 z0 + c1 z1
    residual = (basis @ coef - z.T).norm(dim=0).max()
    expect(
        float(residual) < 1e-4 * scale,
        "every point of the walk is a weighted sum of z0 and z1 only",
    )
    theta = math.acos(max(-1.0, min(1.0, float(a @ b / (a.norm() * b.norm())))))
    c0, c1 = coef
    if theta > 1e-3:
        lam = torch.atan2(c1 * math.sin(theta), c0 + c1 * math.cos(theta)) / theta
        want0 = torch.sin((1 - lam) * theta) / math.sin(theta)
        want1 = torch.sin(lam * theta) / math.sin(theta)
        expect(
            float(((c0 - want0).abs() + (c1 - want1).abs()).max()) < 1e-3,
            "the points are not on the arc of the spherical interpolation from z0 to z1: "
            "the weights of z0 and z1 are sin((1 - lambda) theta) / sin(theta) and "
            "sin(lambda theta) / sin(theta), not 1 - lambda and lambda",
        )
    else:
        lam = c1 / (c0 + c1)
    monotone(
        lam.tolist(),
        "lambda should grow from 0 to 1 along the walk, one step after the other",
        tol=1e-6,
    )
    expect(
        float((images[0] - images[-1]).abs().max()) > 1e-4,
        "the first and last decoded images are identical: decode each z_lambda with DDIM",
    )
    norms = z.norm(dim=1)
    return (
        f"{len(z)} points on the arc from z0 to z1 (norms {float(norms.min()):.1f} to "
        f"{float(norms.max()):.1f}), and {len(images)} decoded images"
    )


@checker("ch05-copy")
def copy(*, s_ddpm, x_train, x_test, d_samples, d_test, copies) -> str:
    """``s_ddpm``: the DDPM samples (16x16); ``d_samples`` / ``d_test``: median distance of
    those samples / of the test digits to their nearest training digit; ``copies``: True if
    you conclude the model copies its training set."""
    s = _digits(s_ddpm, "s_ddpm")
    x_train = _digits(x_train, "x_train")
    x_test = _digits(x_test, "x_test")
    if not isinstance(copies, bool):
        raise TypeError(f"copies must be True or False, got {type(copies).__name__}")
    ref_s = nearest_distance(s, x_train).median().item()
    ref_t = nearest_distance(x_test, x_train).median().item()
    close(
        number(d_samples, "d_samples"),
        ref_s,
        "d_samples is the median, over the samples, of the Euclidean distance from each "
        "sample (as a 256-pixel vector) to its nearest training digit",
        rtol=0.02,
    )
    close(
        number(d_test, "d_test"),
        ref_t,
        "d_test is the same median distance for the real test digits",
        rtol=0.02,
    )
    expect(
        copies == (ref_s < 0.5 * ref_t),
        "compare the two distances: a copying model's samples would sit much closer to "
        "the training set than new real digits do",
    )
    return (
        f"samples are {ref_s:.2f} from the training set, real test digits {ref_t:.2f} "
        f"(ratio {ref_s / ref_t:.2f}): "
        + ("the samples copy." if copies else "no sign of copying.")
    )


@checker("ch05-longer")
def longer(*, before, after, fdd_before, fdd_after) -> str:
    """``before`` / ``after``: 16x16 DDIM samples of the model before / after the extra
    training (the same number of each); ``fdd_before`` / ``fdd_after``: their FDDs."""
    x_b = _digits(before, "before")
    x_a = _digits(after, "after")
    expect(
        len(x_b) == len(x_a),
        "compare the same number of samples before and after: a Frechet distance from "
        "fewer samples is biased upwards",
    )
    expect(
        float((x_b - x_a).abs().max()) > 1e-6,
        "the samples after the extra training are identical to those before: did the "
        "model you sampled from change (the EMA copy is updated by training)?",
    )
    ref_b, ref_a = _fdd(x_b), _fdd(x_a)
    for value, ref, name in (
        (fdd_before, ref_b, "fdd_before"),
        (fdd_after, ref_a, "fdd_after"),
    ):
        close(
            number(value, name),
            ref,
            f"{name} is the Frechet digit distance of those samples (against the test "
            "digits, as in the table of the notebook)",
            rtol=0.02,
        )
    change = ref_a - ref_b
    return (
        f"FDD of {len(x_b)} samples: {ref_b:.2f} before, {ref_a:.2f} after the extra "
        f"training ({'down' if change < 0 else 'up'} by {abs(change):.2f})"
    )
