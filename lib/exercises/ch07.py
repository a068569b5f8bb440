"""Checks for chapter 7's exercises (autoencoders, VAEs and the VQ-VAE).

Every reference is recomputed from the student's own trained model and the notebook's data
(a forward pass, never a training run), so the checks hold for a 30-step smoke model as for
the book's full one. Where the answer is a Monte Carlo estimate, the tolerance allows for its
noise: for an ELBO or IWAE bound, five times the standard error the checker measures with two
draws of its own; for the FDD of 1,000 sampled digits, 20% (it moves by a few percent from one
draw to the next).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .. import checks, data, metrics, vae, vq
from . import checker, close, expect, monotone, nearest_distance, number, numbers

# --- helpers --------------------------------------------------------------------------


def _model(m, cls: type, name: str) -> nn.Module:
    if not isinstance(m, cls):
        raise TypeError(
            f"{name} must be a lib.{cls.__module__.split('.')[-1]}.{cls.__name__}, "
            f"got {type(m).__name__}"
        )
    return m


def _device(m: nn.Module) -> torch.device:
    return next(m.parameters()).device


def _digits(x, name: str) -> torch.Tensor:
    return checks.images(
        checks.floating(checks.tensor(x, name), name), 1, name=name, size=16
    )


def _mean_and_noise(replicas: list[torch.Tensor]) -> tuple[float, float]:
    """The mean of two Monte Carlo replicas of per-image values ``(N,)``, and the standard
    error of ONE replica's mean (from the spread of their per-image differences)."""
    a, b = (r.double().cpu() for r in replicas)
    return float((a.mean() + b.mean()) / 2), float(
        (a - b).std() / math.sqrt(2 * len(a))
    )


def _neg_elbo(model: vae.VAE, x: torch.Tensor, sampled_kl: bool = False):
    """-ELBO in nats per image of ``x`` under ``model``: (mean of two replicas, its noise).
    ``sampled_kl``: estimate it as the IWAE bound with k = 1 (the KL sampled too, noisier)."""
    dev = _device(model)
    with torch.no_grad():
        reps = []
        for s in (101, 202):
            g = torch.Generator(device=dev).manual_seed(s)
            if sampled_kl:
                reps.append(-model.iwae(x.to(dev), k=1, generator=g))
            else:
                reps.append(-model.elbo(x.to(dev), generator=g)["elbo"])
    return _mean_and_noise(reps)


def _fraction(x, name: str, slack: float = 0.05) -> float:
    v = number(x, name)
    expect(
        -slack <= v <= 1 + slack,
        f"{name} is {v:g}: give it as a fraction between 0 and 1 (0.25, not 25%)",
    )
    return v


# --- 7.1 autoencoders and VAEs ------------------------------------------------------------


@checker("ch07-bernoulli")
def bernoulli(*, bvae, x_train, x_test, nelbo_b, nll_indep) -> str:
    """``bvae``: the trained Bernoulli VAE; ``nelbo_b``: its test -ELBO and ``nll_indep``: the test
    negative log-likelihood of independent Bernoulli pixels, both in nats per binarised test digit."""
    model = _model(bvae, vae.VAE, "bvae")
    x_train, x_test = _digits(x_train, "x_train"), _digits(x_test, "x_test")
    expect(
        model.likelihood == "bernoulli",
        "the exercise asks for a VAE with a Bernoulli decoder "
        "(likelihood='bernoulli'), trained on binarised digits",
    )
    b_train, b_test = data.binarize(x_train), data.binarize(x_test)
    d = b_test[0].numel()
    # the baseline: each pixel on with its training frequency (kept away from 0 and 1)
    p = b_train.double().mean(0).clamp(1e-3, 1 - 1e-3)
    ref_indep = -float(
        (b_test * p.log() + (1 - b_test) * (1 - p).log()).flatten(1).sum(1).mean()
    )
    ref_nelbo, noise = _neg_elbo(model, b_test)
    v_nelbo, v_indep = number(nelbo_b, "nelbo_b"), number(nll_indep, "nll_indep")
    per_pixel = f"; per pixel it would be about 1/{d} of that"
    expect(
        v_indep > 0 and v_nelbo > 0,
        "a binary image has a probability, at most 1, so its negative log-probability "
        "(and a bound on it) is positive: check the sign",
    )
    close(
        v_indep,
        ref_indep,
        "the baseline's negative log-likelihood is a sum over the pixels of a test digit "
        "(each pixel on with its frequency in the binarised *training* digits), averaged "
        "over the test digits, in nats (natural log)" + per_pixel,
        rtol=0.02,
        atol=0.5,
    )
    close(
        v_nelbo,
        ref_nelbo,
        "the -ELBO of your model should be the mean over the binarised *test* digits of "
        "-(log p(x|z) - KL), in nats per image",
        rtol=0.01,
        atol=5 * noise + 0.5,
    )
    better = "better" if ref_nelbo < ref_indep else "not yet better"
    return (
        f"test -ELBO {v_nelbo:.1f} vs independent pixels {v_indep:.1f} nats per binary "
        f"image ({v_nelbo / (d * math.log(2)):.3f} vs {v_indep / (d * math.log(2)):.3f} "
        f"bits/pixel): the VAE's bound is {better} than the baseline"
    )


@checker("ch07-iwae-k")
def iwae_k(*, model, x_test, ks, bounds, closed) -> str:
    """``ks``: the numbers of importance samples (1, 4, 16, 64, 256); ``bounds``: the IWAE bound
    on the test digits for each (nats per image, the bound or its negative); ``closed``: the
    fraction of the gap between k = 1 and the largest k closed by k = 16."""
    model = _model(model, vae.VAE, "model")
    x_test = _digits(x_test, "x_test")
    if isinstance(ks, (str, bytes, Mapping)) or not isinstance(ks, Sequence):
        raise TypeError(
            f"ks must be a list of ints such as [1, 4, 16, 64, 256], got {ks!r}"
        )
    if any(isinstance(k, bool) or not isinstance(k, int) for k in ks):
        raise TypeError(f"ks must hold ints, got {ks!r}")
    if isinstance(bounds, (str, bytes, Mapping)):
        raise TypeError(
            f"bounds must be a list of numbers, one per k, got {type(bounds).__name__}"
        )
    values = numbers(bounds, "bounds", len(ks)).tolist()
    expect(
        list(ks) == sorted(set(ks)) and {1, 16} <= set(ks) and max(ks) > 16,
        "evaluate k = 1, 4, 16, 64, 256 (increasing, each once): the question compares "
        "k = 1, k = 16 and the largest k",
    )
    ref1, noise = _neg_elbo(model, x_test, sampled_kl=True)
    tol = 5 * noise + 0.005 * abs(ref1) + 0.5
    sign = 1.0
    if abs(-values[0] - ref1) <= tol < abs(values[0] - ref1):
        sign = -1.0  # the bound itself, not its negative: fine
    neg = [sign * v for v in values]
    close(
        neg[0],
        ref1,
        "at k = 1 the IWAE bound is the ELBO: your first value should match the mean "
        "ELBO of the test digits (in nats per image, not per pixel)",
        rtol=0,
        atol=tol,
    )
    monotone(
        neg,
        "the bound can only get tighter as k grows: the negative bound should fall "
        "(and the bound rise) from one k to the next; evaluate every k on the same test "
        "digits, in the order of ks",
        increasing=False,
        tol=tol,
    )
    gap = neg[0] - neg[-1]
    expect(
        gap > 0,
        "with more samples the bound should end up tighter than the ELBO",
    )
    own = (neg[0] - neg[list(ks).index(16)]) / gap
    c = _fraction(
        closed, "closed", slack=0.5
    )  # noisy bounds can overshoot [0, 1] a bit
    close(
        c,
        own,
        "the fraction closed by k = 16 is (bound at 16 - bound at 1) divided by "
        f"(bound at {max(ks)} - bound at 1), from your own bounds",
        rtol=0,
        atol=0.01,
    )
    return (
        f"-IWAE falls from {neg[0]:.1f} (k = 1, the ELBO) to {neg[-1]:.1f} nats (k = "
        f"{max(ks)}); k = 16 closes {own:.0%} of that gap"
    )


def _endpoint_codes(
    model, x, y, label: int, is_vae: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (posterior means for the VAE) and decoded images of the test digits of ``label``."""
    dev = _device(model)
    digits = x[y == label].to(dev)
    with torch.no_grad():
        if is_vae:
            z = model.encode(digits)[0]
            img = model.mean_image(model.decode(z))
        else:
            z = model.encode(digits)
            img = model.decode(z)
    return z, img.cpu().flatten(1).double()


def _on_segment(model, path, x_test, y_test, is_vae: bool, what: str) -> None:
    """Expect ``path`` to decode points, in order, of the segment between the code of a test 1
    and that of a test 7 (either way round), its first and last frames the two digits' own."""
    frames = path.flatten(1).double()
    ends = {lab: _endpoint_codes(model, x_test, y_test, lab, is_vae) for lab in (1, 7)}
    # 1 -> 7 or 7 -> 1: the orientation whose end frames match decoded digits best
    best = None
    for a, b in ((1, 7), (7, 1)):
        da = torch.cdist(frames[:1], ends[a][1]).flatten()
        db = torch.cdist(frames[-1:], ends[b][1]).flatten()
        ia, ib = int(da.argmin()), int(db.argmin())
        if best is None or float(da[ia] + db[ib]) < best[0]:
            best = (float(da[ia] + db[ib]), a, b, ia, ib, float(da[ia]), float(db[ib]))
    _, a, b, ia, ib, ea, eb = best
    za, zb = ends[a][0][ia], ends[b][0][ib]
    # tolerance: 0.5% of the distance between the two end images, plus 0.0005 per pixel
    # (RMS) for float round-off; the line is searched at 1001 points, then finer
    span = float((ends[a][1][ia] - ends[b][1][ib]).norm())
    tol = 0.005 * span + 5e-4 * math.sqrt(frames.shape[1])
    code = "posterior mean" if is_vae else "code"
    expect(
        ea <= tol and eb <= tol,
        f"the first and last frames of {what} should be the decoded images of a test 1 "
        f"and a test 7 themselves: decode each digit's own {code}",
    )
    dev = _device(model)

    def decoded(t):  # images of the points (1 - t) za + t zb, t (n,) in [0, 1]
        t = t.to(device=dev, dtype=za.dtype)[:, None]
        with torch.no_grad():
            out = model.decode((1 - t) * za + t * zb)
            return (model.mean_image(out) if is_vae else out).cpu().flatten(1).double()

    grid = torch.linspace(0, 1, 1001)
    d = torch.cdist(frames, decoded(grid))
    where = d.argmin(1)
    # then around each frame's nearest grid point, 201 points within one grid step of it
    fine = (grid[where][:, None] + torch.linspace(-1e-3, 1e-3, 201)).clamp(0, 1)
    near = torch.cdist(frames[:, None], decoded(fine.flatten()).view(*fine.shape, -1))
    expect(
        float(near.flatten(1).min(1).values.max()) <= tol,
        f"every frame of {what} should decode a point on the straight line between the "
        f"two {code}s (mix the two codes, not the two images)",
    )
    expect(
        bool((where[1:] >= where[:-1]).all()),
        f"the frames of {what} should walk along the line in order, from one digit to "
        "the other",
    )


@checker("ch07-interp")
def interp(*, ae, vae2, x_train, x_test, y_test, path_ae, path_vae) -> str:
    """``path_ae`` / ``path_vae``: the decoded frames (n, 1, 16, 16) of the straight path in code
    space from a test 1 to a test 7, for the autoencoder ``ae`` and the 2-D VAE ``vae2``."""
    ae = _model(ae, vae.Autoencoder, "ae")
    vae2 = _model(vae2, vae.VAE, "vae2")
    x_train, x_test = _digits(x_train, "x_train"), _digits(x_test, "x_test")
    y_test = checks.tensor(y_test, "y_test")
    if y_test.shape != (len(x_test),):
        raise ValueError(
            f"y_test must hold one label per test digit, got {tuple(y_test.shape)}"
        )
    paths = {}
    for name, p in (("path_ae", path_ae), ("path_vae", path_vae)):
        p = checks.images(checks.tensor(p, name), 1, name=name, size=16)
        if len(p) < 3:
            raise ValueError(
                f"{name} must hold the frames of the path (10), got {len(p)}"
            )
        paths[name] = p.detach().cpu()
    _on_segment(ae, paths["path_ae"], x_test, y_test, False, "the autoencoder's path")
    _on_segment(vae2, paths["path_vae"], x_test, y_test, True, "the VAE's path")
    far = {n: float(nearest_distance(p, x_train).max()) for n, p in paths.items()}
    typical = float(nearest_distance(x_test, x_train).median())
    return (
        f"both paths decode the straight line between the codes of a test 1 and a test 7 "
        f"({len(paths['path_ae'])} and {len(paths['path_vae'])} frames); the frame "
        f"farthest from every training digit is {far['path_ae']:.2f} away for the "
        f"autoencoder, {far['path_vae']:.2f} for the VAE (a real test digit: typically "
        f"{typical:.2f})"
    )


# --- 7.2 VQ-VAE -------------------------------------------------------------------------


@checker("ch07-noreset")
def noreset(*, plain, x_test, used_plain, ppl_plain, psnr_plain) -> str:
    """``plain``: the VQ-VAE trained without dead-code resets; ``used_plain``: how many of its
    codes the test digits use; ``ppl_plain``: the codebook perplexity on the test digits;
    ``psnr_plain``: the test reconstruction PSNR in dB."""
    model = _model(plain, vq.VQVAE, "plain")
    x_test = _digits(x_test, "x_test")
    k = model.vq.num_codes
    dev = _device(model)
    with torch.no_grad():
        recon, idx, _ = model(x_test.to(dev))
    idx = idx.cpu()
    ref_used = int((torch.bincount(idx.flatten(), minlength=k) > 0).sum())
    ref_ppl = vq.perplexity(idx, k)
    ref_psnr = metrics.psnr(recon.cpu().clamp(-1, 1), x_test)
    used = number(used_plain, "used_plain")
    expect(
        used == ref_used,
        f"count the codes (out of {k}) that at least one cell of one test digit is "
        "assigned to",
    )
    ppl = number(ppl_plain, "ppl_plain")
    expect(
        1 <= ppl <= used + 1e-6,
        "a perplexity lies between 1 (one code) and the number of codes used (all used "
        "equally): it is exp of the entropy of the code frequencies",
    )
    close(
        ppl,
        ref_ppl,
        "the perplexity is exp(entropy) of the frequencies of the codes over all cells "
        "of all test digits (natural log)",
        rtol=0.01,
    )
    close(
        number(psnr_plain, "psnr_plain"),
        ref_psnr,
        "the PSNR compares the model's reconstructions of the test digits with the "
        "digits themselves, averaged over images, with the peak of the [0, 1] range "
        "(as lib.metrics.psnr does for images in [-1, 1])",
        rtol=0,
        atol=0.05,
    )
    return (
        f"without resets: {ref_used} of {k} codes used on the test digits, perplexity "
        f"{ref_ppl:.1f}, PSNR {ref_psnr:.2f} dB"
    )


def _grid_rows(g, name: str) -> torch.Tensor:
    g = checks.tensor(g, name)
    if g.dim() != 3 or g.dtype.is_floating_point or g.dtype == torch.bool:
        raise ValueError(
            f"{name} must be an integer tensor of code grids (N, h, w), got {g.dtype} "
            f"{tuple(g.shape)}"
        )
    return g.detach().cpu().flatten(1)


def _copy_rate(grids: torch.Tensor, train_rows: torch.Tensor) -> float:
    """Fraction of the rows of ``grids`` that equal some row of ``train_rows`` exactly."""
    known = {tuple(r) for r in train_rows.tolist()}
    return sum(tuple(r) in known for r in grids.tolist()) / len(grids)


@checker("ch07-copy")
def copy(*, idx_train, idx_test, sampled, copy_rates, test_in_train) -> str:
    """``sampled``: {prior name: its sampled code grids}; ``copy_rates``: {the same names: the
    fraction of those grids that equal a training grid}; ``test_in_train``: that fraction for
    the test digits' grids."""
    if not isinstance(sampled, Mapping) or not sampled:
        raise TypeError("sampled must be a dict {prior name: sampled grids (N, 4, 4)}")
    if not isinstance(copy_rates, Mapping) or set(copy_rates) != set(sampled):
        raise TypeError(
            "copy_rates must be a dict {prior name: fraction} with the names of sampled: "
            + ", ".join(map(repr, sampled))
        )
    train_rows = _grid_rows(idx_train, "idx_train")
    test_rows = _grid_rows(idx_test, "idx_test")
    hint = (
        "a sampled grid copies the training set when it equals the code grid of one "
        "training digit in every cell; the rate is the fraction of sampled grids that do"
    )
    rates = {}
    for name, grids in sampled.items():
        rows = _grid_rows(grids, f"sampled[{name!r}]")
        if rows.shape[1] != train_rows.shape[1]:
            raise ValueError(
                f"sampled[{name!r}] must be grids of the shape of idx_train"
            )
        ref = _copy_rate(rows, train_rows)
        close(
            _fraction(copy_rates[name], f"copy_rates[{name!r}]"),
            ref,
            hint,
            rtol=0,
            atol=1e-3,
        )
        rates[name] = ref
    ref_test = _copy_rate(test_rows, train_rows)
    close(
        _fraction(test_in_train, "test_in_train"),
        ref_test,
        "test_in_train: the same fraction for the code grids of the test digits, "
        "compared with the training digits' grids",
        rtol=0,
        atol=1e-3,
    )
    most = max(rates, key=rates.get)
    verdict = (
        f"the prior that copies most is '{most}'"
        if rates[most] > 0
        else "no sampled grid copies a training grid"
    )
    return (
        "copy rates: "
        + "; ".join(f"{n} {r:.1%}" for n, r in rates.items())
        + f"; test digits {ref_test:.1%}. {verdict[0].upper()}{verdict[1:]}"
    )


@checker("ch07-ablation")
def ablation(
    *,
    clean_prior,
    vqvae,
    labels,
    idx_val,
    y_val,
    fdd_clean,
    nll_clean,
    fdd_noisy,
    nll_noisy,
) -> str:
    """``clean_prior``: the early-stopped class-conditional prior trained on clean codes (label and
    EMA, no noise); ``fdd_clean``: the FDD of 1,000 of its samples decoded by ``vqvae``, drawn
    with ``labels``; ``nll_clean``: its best held-out NLL (nats per grid). ``fdd_noisy`` and
    ``nll_noisy`` are the table's noisy-code prior, for the comparison."""
    prior = _model(clean_prior, vq.CodePrior, "clean_prior")
    vqvae = _model(vqvae, vq.VQVAE, "vqvae")
    labels = checks.tensor(labels, "labels")
    if labels.dim() != 1 or labels.dtype.is_floating_point:
        raise ValueError(
            "labels must be the (N,) integer labels the samples were drawn with"
        )
    expect(
        prior.num_classes == 10,
        "this ablation keeps the label: train the prior class-conditional (num_classes=10)",
    )
    dev = _device(prior)
    with torch.no_grad():
        ref_nll = -float(prior.log_prob(idx_val.to(dev), y_val.to(dev)).mean())
        # a fresh draw of 1,000 samples: the FDD moves little from one draw to the next
        grids = prior.sample(
            len(labels),
            generator=torch.Generator().manual_seed(11),
            labels=labels.to(dev),
        )
        imgs = vqvae.decode_indices(grids.to(_device(vqvae))).cpu().clamp(-1, 1)
        ref_fdd = metrics.frechet_digit_distance(imgs)
    v_nll = number(nll_clean, "nll_clean")
    close(
        v_nll,
        ref_nll,
        "the best held-out NLL is the mean negative log-likelihood (nats per grid) of the "
        "held-out clean grids given their labels, for the weights kept by early stopping",
        rtol=0.002,
        atol=0.05,
    )
    close(
        number(fdd_clean, "fdd_clean"),
        ref_fdd,
        "fdd_clean is the Fréchet digit distance to the test digits of 1,000 samples of "
        "the early-stopped clean-code prior (the weights you pass as clean_prior), drawn with "
        "the given labels and decoded by the VQ-VAE",
        rtol=0.2,
        atol=1.0,
    )
    f_noisy, n_noisy = number(fdd_noisy, "fdd_noisy"), number(nll_noisy, "nll_noisy")
    return (
        f"clean codes: FDD {float(fdd_clean):.1f}, best held-out NLL {v_nll:.1f} nats; "
        f"noisy codes (the table): FDD {f_noisy:.1f}, NLL {n_noisy:.1f} nats"
    )
