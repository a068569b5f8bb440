"""Chapter 7's exercise checks: the reference answer passes, wrong answers get a hint.

Reference answers are computed here the way the hidden solutions compute them, on small
untrained models (a check recomputes from the student's own model, so training adds nothing
to what is tested) and the real digits; never with the checker's own helpers.
"""

import math

import numpy as np
import pytest
import torch

from lib import data, exercises, metrics, vae, vq
from exercise_testing import verdict


def fails(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)
    return v


@pytest.fixture(scope="module")
def digits():
    x_train, y_train = data.digits("train")
    x_test, y_test = data.digits("test")
    return x_train, y_train, x_test, y_test


# --- 7.1 autoencoders and VAEs ------------------------------------------------------------


def test_ch07_bernoulli(digits, capsys):
    x_train, _, x_test, _ = digits
    torch.manual_seed(0)
    bvae = vae.VAE(latent_dim=4, hidden=32, likelihood="bernoulli").eval()
    b_train, b_test = data.binarize(x_train), data.binarize(x_test)
    with torch.no_grad():
        nelbo = -float(bvae.elbo(b_test)["elbo"].mean())
    p = b_train.mean(0).clamp(1e-3, 1 - 1e-3)
    nll = -float(
        (b_test * p.log() + (1 - b_test) * (1 - p).log()).flatten(1).sum(1).mean()
    )
    common = dict(bvae=bvae, x_train=x_train, x_test=x_test)
    v = verdict("ch07-bernoulli", capsys, **common, nelbo_b=nelbo, nll_indep=nll)
    assert v and "independent pixels" in v.message
    # another smoothing of the pixel frequencies is just as right
    p2 = (b_train.sum(0) + 1) / (len(b_train) + 2)
    nll2 = -float(
        (b_test * p2.log() + (1 - b_test) * (1 - p2).log()).flatten(1).sum(1).mean()
    )
    assert verdict("ch07-bernoulli", capsys, **common, nelbo_b=nelbo, nll_indep=nll2)
    wrong = [
        dict(nelbo_b=nelbo / 256, nll_indep=nll / 256),  # per pixel
        dict(nelbo_b=nelbo / math.log(2), nll_indep=nll / math.log(2)),  # bits
        dict(nelbo_b=-nelbo, nll_indep=-nll),  # log-likelihoods, not their negatives
        dict(nelbo_b=0.0, nll_indep=0.0),  # zeros
        dict(nelbo_b=nll, nll_indep=nelbo),  # swapped
        dict(nelbo_b=nelbo, nll_indep=nll / 2),  # half the baseline
    ]
    for w in wrong:
        fails("ch07-bernoulli", capsys, **common, **w)
    gaussian = vae.VAE(latent_dim=4, hidden=32, likelihood="gaussian")
    v = fails(
        "ch07-bernoulli",
        capsys,
        bvae=gaussian,
        x_train=x_train,
        x_test=x_test,
        nelbo_b=nelbo,
        nll_indep=nll,
    )
    assert "Bernoulli" in v.message
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check("ch07-bernoulli", **common, nelbo_b="162", nll_indep=nll)
    with pytest.raises(TypeError, match="lib.vae.VAE"):
        exercises.check(
            "ch07-bernoulli",
            bvae=None,
            x_train=x_train,
            x_test=x_test,
            nelbo_b=1,
            nll_indep=1,
        )


@pytest.fixture(scope="module")
def gauss_vae():
    torch.manual_seed(1)
    return vae.VAE(latent_dim=4, hidden=32, likelihood="gaussian", sigma=0.1).eval()


def test_ch07_iwae_k(digits, gauss_vae, capsys):
    _, _, x_test, _ = digits
    model = gauss_vae
    ks = [1, 4, 16, 64, 256]
    with torch.no_grad():
        bounds = [
            -float(
                model.iwae(
                    x_test, k=k, generator=torch.Generator().manual_seed(1)
                ).mean()
            )
            for k in ks
        ]
    closed = (bounds[0] - bounds[2]) / (bounds[0] - bounds[-1])
    common = dict(model=model, x_test=x_test, ks=ks)
    v = verdict("ch07-iwae-k", capsys, **common, bounds=bounds, closed=closed)
    assert v and "k = 16 closes" in v.message
    # the bound itself instead of its negative, and fresh random draws: also right
    with torch.no_grad():
        other = [
            float(
                model.iwae(
                    x_test, k=k, generator=torch.Generator().manual_seed(7)
                ).mean()
            )
            for k in ks
        ]
    c2 = (other[0] - other[2]) / (other[0] - other[-1])
    assert verdict("ch07-iwae-k", capsys, **common, bounds=other, closed=c2)
    wrong = [
        dict(bounds=bounds[::-1], closed=closed),  # reversed
        dict(bounds=[b / 256 for b in bounds], closed=closed),  # per pixel
        dict(bounds=[0.0] * 5, closed=0.0),  # zeros
        dict(bounds=[bounds[0]] * 5, closed=0.0),  # the ELBO for every k
        dict(bounds=bounds, closed=100 * closed),  # a percentage
        dict(bounds=bounds, closed=1 - closed),  # the gap left, not the gap closed
        dict(bounds=[bounds[i] for i in (0, 2, 1, 4, 3)], closed=closed),  # shuffled
    ]
    for w in wrong:
        fails("ch07-iwae-k", capsys, **common, **w)
    fails(
        "ch07-iwae-k",
        capsys,
        model=model,
        x_test=x_test,
        ks=[1, 4, 64, 256],
        bounds=bounds[:2] + bounds[3:],
        closed=closed,
    )
    with pytest.raises(ValueError, match="must hold 5 numbers"):
        exercises.check("ch07-iwae-k", **common, bounds=bounds[:4], closed=closed)
    with pytest.raises(TypeError, match="bounds must be a list"):
        exercises.check(
            "ch07-iwae-k", **common, bounds=dict(zip(ks, bounds)), closed=closed
        )
    with pytest.raises(TypeError, match="ks must"):
        exercises.check(
            "ch07-iwae-k",
            model=model,
            x_test=x_test,
            ks="1,4",
            bounds=bounds,
            closed=closed,
        )


def test_ch07_interp(digits, capsys):
    x_train, _, x_test, y_test = digits
    torch.manual_seed(2)
    ae = vae.Autoencoder(code_dim=2, hidden=32)
    vae2 = vae.VAE(latent_dim=2, hidden=32, likelihood="gaussian", sigma=0.5)
    # a little training spreads the codes and bends the decoded lines (an untrained
    # decoder saturates, and mixing its images would look like mixing its codes)
    params = [*ae.parameters(), *vae2.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    g = torch.Generator().manual_seed(2)
    for _ in range(150):
        xb = x_train[torch.randint(0, len(x_train), (128,), generator=g)]
        loss = vae.autoencoder_loss(ae, xb) + vae2.elbo(xb)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    ae.eval(), vae2.eval()

    def paths(i=0, j=0, n=10, first=1, last=7, sample_vae=False):
        a = x_test[y_test == first][i : i + 1]
        b = x_test[y_test == last][j : j + 1]
        t = torch.linspace(0, 1, n)[:, None]
        with torch.no_grad():
            za, zb = ae.encode(a), ae.encode(b)
            p_ae = ae.decode((1 - t) * za + t * zb)
            (ma, la), (mb, lb) = vae2.encode(a), vae2.encode(b)
            if sample_vae:
                ma, mb = ma + (0.5 * la).exp(), mb + (0.5 * lb).exp()
            p_vae = vae2.mean_image(vae2.decode((1 - t) * ma + t * mb))
        return p_ae, p_vae

    common = dict(ae=ae, vae2=vae2, x_train=x_train, x_test=x_test, y_test=y_test)
    p_ae, p_vae = paths()
    v = verdict("ch07-interp", capsys, **common, path_ae=p_ae, path_vae=p_vae)
    assert v and "farthest from every training digit" in v.message
    # other digits, the other direction, more frames: just as right
    for kw in (dict(i=3, j=5), dict(first=7, last=1), dict(n=25)):
        q_ae, q_vae = paths(**kw)
        assert verdict("ch07-interp", capsys, **common, path_ae=q_ae, path_vae=q_vae)
    t = torch.linspace(0, 1, 10).view(-1, 1, 1, 1)
    blend_ae = (1 - t) * p_ae[:1] + t * p_ae[-1:]  # mixing the images, not the codes
    blend_vae = (1 - t) * p_vae[:1] + t * p_vae[-1:]
    s_ae, s_vae = paths(sample_vae=True)
    f_ae, f_vae = paths(last=4)  # a 1 -> 4 path
    wrong = [
        dict(path_ae=blend_ae, path_vae=blend_vae),
        dict(path_ae=p_ae, path_vae=s_vae),  # sampled codes, not posterior means
        dict(path_ae=p_vae, path_vae=p_ae),  # swapped
        dict(path_ae=p_ae[torch.randperm(10)], path_vae=p_vae),  # shuffled frames
        dict(path_ae=f_ae, path_vae=f_vae),
        dict(path_ae=torch.zeros(10, 1, 16, 16), path_vae=p_vae),
    ]
    for w in wrong:
        fails("ch07-interp", capsys, **common, **w)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        exercises.check("ch07-interp", **common, path_ae=list(p_ae), path_vae=p_vae)
    with pytest.raises(ValueError, match="shape"):
        exercises.check(
            "ch07-interp", **common, path_ae=p_ae.flatten(1), path_vae=p_vae
        )


# --- 7.2 VQ-VAE -------------------------------------------------------------------------


def test_ch07_noreset(digits, capsys):
    _, _, x_test, _ = digits
    torch.manual_seed(3)
    K = 16
    plain = vq.VQVAE(num_codes=K, code_dim=4, channels=8).eval()
    with torch.no_grad():
        rec, idx, _ = plain(x_test)
    used = int((torch.bincount(idx.flatten(), minlength=K) > 0).sum())
    ppl = vq.perplexity(idx, K)
    psnr = metrics.psnr(rec.clamp(-1, 1), x_test)
    common = dict(plain=plain, x_test=x_test)
    v = verdict(
        "ch07-noreset",
        capsys,
        **common,
        used_plain=used,
        ppl_plain=ppl,
        psnr_plain=psnr,
    )
    assert v and f"{used} of {K} codes" in v.message
    wrong = [
        dict(used_plain=used + 1, ppl_plain=ppl, psnr_plain=psnr),
        dict(used_plain=used, ppl_plain=math.log(ppl), psnr_plain=psnr),  # the entropy
        dict(
            used_plain=used, ppl_plain=ppl, psnr_plain=psnr - 20 * math.log10(2)
        ),  # peak 2
        dict(used_plain=0, ppl_plain=0, psnr_plain=0),  # zeros
        dict(used_plain=used, ppl_plain=float(used) + 1, psnr_plain=psnr),
    ]
    for w in wrong:
        fails("ch07-noreset", capsys, **common, **w)
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check(
            "ch07-noreset", **common, used_plain="5", ppl_plain=ppl, psnr_plain=psnr
        )
    with pytest.raises(TypeError, match="lib.vq.VQVAE"):
        exercises.check(
            "ch07-noreset",
            plain=vae.Autoencoder(),
            x_test=x_test,
            used_plain=1,
            ppl_plain=1,
            psnr_plain=1,
        )


def test_ch07_copy(capsys):
    g = torch.Generator().manual_seed(4)
    idx_train = torch.randint(0, 8, (300, 4, 4), generator=g)
    idx_test = torch.cat([idx_train[:12], torch.randint(0, 8, (48, 4, 4), generator=g)])
    sampled = {
        "memoriser": torch.cat(
            [
                idx_train[torch.randint(0, 300, (70,), generator=g)],
                torch.randint(0, 8, (30, 4, 4), generator=g),
            ]
        ),
        "new grids": torch.randint(0, 8, (100, 4, 4), generator=g),
    }
    train_set = {tuple(gr.flatten().tolist()) for gr in idx_train}

    def rate(grids):
        return float(
            np.mean([tuple(gr.flatten().tolist()) in train_set for gr in grids])
        )

    rates = {n: rate(gr) for n, gr in sampled.items()}
    test_in_train = rate(idx_test)
    assert rates["memoriser"] >= 0.7 and test_in_train >= 0.2
    common = dict(idx_train=idx_train, idx_test=idx_test, sampled=sampled)
    v = verdict(
        "ch07-copy", capsys, **common, copy_rates=rates, test_in_train=test_in_train
    )
    assert v and "'memoriser'" in v.message

    def against(ref, grids):
        s = {tuple(gr.flatten().tolist()) for gr in ref}
        return float(np.mean([tuple(gr.flatten().tolist()) in s for gr in grids]))

    wrong = [
        dict(
            copy_rates={n: 100 * r for n, r in rates.items()},
            test_in_train=test_in_train,
        ),
        dict(copy_rates={n: 0.0 for n in rates}, test_in_train=0.0),  # zeros
        dict(
            copy_rates=dict(zip(rates, reversed(rates.values()))),  # swapped
            test_in_train=test_in_train,
        ),
        dict(
            copy_rates={
                n: against(idx_test, gr) for n, gr in sampled.items()
            },  # vs test
            test_in_train=test_in_train,
        ),
        dict(
            copy_rates=rates, test_in_train=1.0
        ),  # every test grid "is in" the train set
    ]
    for w in wrong:
        fails("ch07-copy", capsys, **common, **w)
    with pytest.raises(TypeError, match="names of sampled"):
        exercises.check(
            "ch07-copy", **common, copy_rates={"memoriser": 0.7}, test_in_train=0.2
        )
    with pytest.raises(ValueError, match="integer tensor"):
        exercises.check(
            "ch07-copy",
            idx_train=idx_train.float(),
            idx_test=idx_test,
            sampled=sampled,
            copy_rates=rates,
            test_in_train=test_in_train,
        )


def test_ch07_ablation(digits, capsys):
    x_train, y_train, _, _ = digits
    torch.manual_seed(5)
    K = 8
    vqvae = vq.VQVAE(num_codes=K, code_dim=4, channels=8).eval()
    prior = vq.CodePrior(K, grid=(4, 4), embed=8, hidden=16, num_classes=10).eval()
    g = torch.Generator().manual_seed(6)
    labels = data.sample_labels(y_train, 300, torch.Generator().manual_seed(4))
    idx_val = torch.randint(0, K, (40, 4, 4), generator=g)
    y_val = torch.randint(0, 10, (40,), generator=g)
    with torch.no_grad():
        nll = -float(prior.log_prob(idx_val, y_val).mean())
        grids = prior.sample(
            300, generator=torch.Generator().manual_seed(0), labels=labels
        )
        fdd = metrics.frechet_digit_distance(vqvae.decode_indices(grids).clamp(-1, 1))
    common = dict(
        clean_prior=prior,
        vqvae=vqvae,
        labels=labels,
        idx_val=idx_val,
        y_val=y_val,
        fdd_noisy=20.0,
        nll_noisy=25.0,
    )
    v = verdict("ch07-ablation", capsys, **common, fdd_clean=fdd, nll_clean=nll)
    assert v and "clean codes: FDD" in v.message
    fdd_real = metrics.frechet_digit_distance(x_train[:300])  # not the prior's samples
    wrong = [
        dict(fdd_clean=fdd, nll_clean=nll / 16),  # per cell
        dict(fdd_clean=fdd_real, nll_clean=nll),
        dict(fdd_clean=2 * fdd, nll_clean=nll),
        dict(fdd_clean=0.0, nll_clean=0.0),  # zeros
    ]
    for w in wrong:
        fails("ch07-ablation", capsys, **common, **w)
    unconditional = vq.CodePrior(K, grid=(4, 4), embed=8, hidden=16)
    fails(
        "ch07-ablation",
        capsys,
        **(common | dict(clean_prior=unconditional)),
        fdd_clean=fdd,
        nll_clean=nll,
    )
    with pytest.raises(TypeError, match="lib.vq.CodePrior"):
        exercises.check(
            "ch07-ablation",
            **(common | dict(clean_prior="gru")),
            fdd_clean=fdd,
            nll_clean=nll,
        )
    with pytest.raises(ValueError, match="labels"):
        exercises.check(
            "ch07-ablation",
            **(common | dict(labels=labels.float())),
            fdd_clean=fdd,
            nll_clean=nll,
        )
