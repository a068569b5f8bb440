"""Tests of lib/vae.py and lib/vq.py: KL, reparameterisation, ELBO/IWAE, vector quantisation, priors, bad inputs.

Expected values come from formulas and independent computations (Monte Carlo with
torch.distributions, brute-force loops, hand-derived gradients), never from the code's output.
"""
import math

import pytest
import torch

from lib import data, vae, vq as vqlib


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- Gaussian KL and the reparameterisation trick ---------------------------------------------

def test_gaussian_kl_matches_monte_carlo():
    g = gen(1)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.5
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    z = q.sample((200_000,))                                    # (S, 5, 3)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)        # (5,)
    closed = vae.gaussian_kl(mu, logvar)
    assert closed.shape == (5,)
    assert torch.allclose(closed, mc, atol=0.03, rtol=0.02)
    # and it agrees with torch's own closed form
    assert torch.allclose(closed, torch.distributions.kl_divergence(q, p).sum(-1), atol=1e-10)


def test_gaussian_kl_is_zero_only_at_the_prior():
    assert vae.gaussian_kl(torch.zeros(4, 2), torch.zeros(4, 2)).abs().max() < 1e-7
    assert (vae.gaussian_kl(torch.tensor([[0.1, 0.0]]), torch.tensor([[0.0, -0.2]])) > 0).all()


def test_reparameterized_sample_has_the_right_mean_and_variance():
    mu = torch.tensor([1.5, -2.0, 0.0], dtype=torch.float64).expand(100_000, 3)
    logvar = torch.tensor([0.0, math.log(4.0), math.log(0.01)], dtype=torch.float64).expand(100_000, 3)
    z = vae.reparameterize(mu, logvar, generator=gen(2))
    assert torch.allclose(z.mean(0), torch.tensor([1.5, -2.0, 0.0], dtype=torch.float64), atol=0.03)
    assert torch.allclose(z.var(0), torch.tensor([1.0, 4.0, 0.01], dtype=torch.float64), rtol=0.03)


def test_reparameterized_sample_carries_gradients_to_mu_and_logvar():
    mu = torch.tensor([0.3, -1.0], requires_grad=True)
    logvar = torch.tensor([0.2, -0.4], requires_grad=True)
    z = vae.reparameterize(mu, logvar, generator=gen(3))
    eps = torch.randn(2, generator=gen(3))                      # the same noise, drawn again
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones(2))               # dz/dmu = 1
    expected = 0.5 * torch.exp(0.5 * logvar.detach()) * eps     # dz/dlogvar = sigma * eps / 2
    assert torch.allclose(logvar.grad, expected, atol=1e-6)
    assert logvar.grad.abs().min() > 0


# --- the VAE: ELBO and IWAE -------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_vae_and_data():
    torch.manual_seed(0)
    m = vae.VAE(latent_dim=2, hidden=32, likelihood="bernoulli", image_size=8).double()
    x = data.binarize(data.digits("test", size=8)[0][:6]).double()
    return m, x


def test_elbo_parts_and_shapes(small_vae_and_data):
    m, x = small_vae_and_data
    out = m.elbo(x, generator=gen(0))
    assert out["elbo"].shape == out["rec"].shape == out["kl"].shape == (6,)
    assert torch.allclose(out["elbo"], out["rec"] - out["kl"])
    assert (out["rec"] <= 0).all()                               # Bernoulli: a log probability
    assert torch.allclose(out["loss"], (-out["rec"] + out["kl"]).mean())
    assert torch.allclose(m.elbo(x, beta=3.0, generator=gen(0))["loss"], (-out["rec"] + 3 * out["kl"]).mean())


def test_bernoulli_log_likelihood_by_hand():
    m = vae.VAE(latent_dim=2, hidden=8, image_size=8)
    x = torch.zeros(1, 1, 8, 8); x[0, 0, 0, :3] = 1
    logits = torch.zeros(1, 1, 8, 8)                             # p = 1/2 everywhere
    assert torch.allclose(m.log_likelihood(x, logits), torch.tensor([64 * math.log(0.5)]))


def test_gaussian_log_likelihood_by_hand():
    m = vae.VAE(latent_dim=2, hidden=8, image_size=8, likelihood="gaussian", sigma=0.5)
    x = torch.zeros(1, 1, 8, 8); mean = torch.full((1, 1, 8, 8), 0.25)
    expected = sum(math.log(1 / (0.5 * math.sqrt(2 * math.pi))) - 0.25 ** 2 / (2 * 0.25) for _ in range(64))
    assert torch.allclose(m.log_likelihood(x, mean), torch.tensor([expected]), atol=1e-5)


def test_learned_sigma_matches_the_fixed_one_and_gets_gradients():
    m = vae.VAE(latent_dim=2, hidden=8, image_size=8, likelihood="gaussian", sigma=0.5, learn_sigma=True)
    fixed = vae.VAE(latent_dim=2, hidden=8, image_size=8, likelihood="gaussian", sigma=0.5)
    x = torch.zeros(1, 1, 8, 8); mean = torch.full((1, 1, 8, 8), 0.25)
    assert m.sigma == pytest.approx(0.5)
    ll = m.log_likelihood(x, mean)
    assert torch.allclose(ll, fixed.log_likelihood(x, mean), atol=1e-5)
    ll.sum().backward()
    # d/dlog(s) [-sq/(2 s^2) - d log s] = sq/s^2 - d, with sq = 64 * 0.25^2, s = 0.5, d = 64
    assert float(m.log_sigma.grad) == pytest.approx(64 * 0.0625 / 0.25 - 64, rel=1e-5)


def test_learned_sigma_is_maximum_likelihood_at_the_rms_error():
    # for a fixed decoder output the log-likelihood is maximal at sigma^2 = mean squared error per pixel
    torch.manual_seed(0)
    x = torch.rand(4, 1, 8, 8) * 2 - 1; out = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    rms = float((x - out).pow(2).mean().sqrt())
    m = vae.VAE(latent_dim=2, hidden=8, image_size=8, likelihood="gaussian", sigma=rms, learn_sigma=True)
    m.log_likelihood(x, out).sum().backward()
    assert abs(float(m.log_sigma.grad)) < 1e-3 * x.numel()
    best = float(m.log_likelihood(x, out).sum())
    for f in (0.8, 1.25):
        with torch.no_grad():
            m.log_sigma.fill_(math.log(rms * f))
        assert float(m.log_likelihood(x, out).sum()) < best


def test_learned_sigma_needs_a_gaussian_decoder():
    with pytest.raises(ValueError, match="learn_sigma"):
        vae.VAE(likelihood="bernoulli", learn_sigma=True)


def test_iwae_k1_equals_elbo_in_expectation(small_vae_and_data):
    m, x = small_vae_and_data
    with torch.no_grad():
        # the ELBO with the exact KL; one-sample estimates of it from iwae(k=1)
        mu, logvar = m.encode(x)
        z = vae.reparameterize(mu.expand(20_000, *mu.shape), logvar.expand(20_000, *mu.shape), generator=gen(5))
        exact_elbo = m.log_likelihood(x, m.decode(z)).mean(0) - vae.gaussian_kl(mu, logvar)
        iw1 = torch.stack([m.iwae(x, k=1, generator=gen(100 + s)) for s in range(4000)])  # (S, N)
    se = iw1.std(0) / math.sqrt(len(iw1))
    assert ((iw1.mean(0) - exact_elbo).abs() < 4 * se + 0.02).all()


def test_iwae_is_non_decreasing_in_k(small_vae_and_data):
    m, x = small_vae_and_data
    means, ses = [], []
    with torch.no_grad():
        for k in (1, 4, 16, 64):
            r = torch.stack([m.iwae(x, k=k, generator=gen(1000 * k + s)).mean() for s in range(300)])
            means.append(r.mean()); ses.append(r.std() / math.sqrt(len(r)))
    for a, b, sa, sb in zip(means[:-1], means[1:], ses[:-1], ses[1:]):
        assert b > a - 3 * math.sqrt(sa ** 2 + sb ** 2)
    assert means[-1] > means[0]                                  # strictly tighter overall


def test_vae_sample_and_decode_shapes():
    m = vae.VAE(latent_dim=3, hidden=16, likelihood="gaussian")
    s = m.sample(5, generator=gen(0))
    assert s.shape == (5, 1, 16, 16) and s.min() >= -1 and s.max() <= 1
    assert m.decode(torch.zeros(2, 4, 3)).shape == (2, 4, 1, 16, 16)


def test_autoencoder_losses():
    torch.manual_seed(0)
    ae = vae.Autoencoder(code_dim=2, hidden=16, image_size=8)
    x = data.digits("test", size=8)[0][:4]
    recon, z = ae(x)
    assert recon.shape == x.shape and z.shape == (4, 2)
    assert torch.allclose(vae.autoencoder_loss(ae, x), ((recon - x) ** 2).sum((1, 2, 3)).mean())
    # no noise, no code penalty: the slide's objective is the classical one
    assert torch.allclose(vae.noisy_autoencoder_loss(ae, x, noise_std=0.0, code_weight=0.0),
                          vae.autoencoder_loss(ae, x))
    # no noise: the code penalty adds exactly ||E(x)||^2
    assert torch.allclose(vae.noisy_autoencoder_loss(ae, x, noise_std=0.0, code_weight=1.0),
                          vae.autoencoder_loss(ae, x) + (z ** 2).sum(1).mean())


# --- vector quantisation ----------------------------------------------------------------------

def test_vq_returns_the_nearest_code():
    torch.manual_seed(0)
    vq = vqlib.VectorQuantizer(num_codes=7, code_dim=3)
    vq.codebook.data = torch.randn(7, 3)
    z_e = torch.randn(2, 3, 4, 5)
    idx = vq.nearest(z_e)
    assert idx.shape == (2, 4, 5) and idx.dtype == torch.int64
    for n in range(2):
        for i in range(4):
            for j in range(5):
                d = [float(((z_e[n, :, i, j] - vq.codebook[k].detach()) ** 2).sum()) for k in range(7)]
                assert int(idx[n, i, j]) == min(range(7), key=d.__getitem__)
    z_st, idx2, _ = vq(z_e)
    assert torch.equal(idx, idx2)
    assert torch.allclose(z_st, vq.codebook[idx].permute(0, 3, 1, 2))  # forward value is the code


def test_straight_through_passes_gradients_unchanged():
    z_e = torch.randn(2, 3, 2, 2, requires_grad=True)
    vq = vqlib.VectorQuantizer(num_codes=4, code_dim=3)
    z_st, _, _ = vq(z_e)
    w = torch.randn_like(z_st)
    (w * z_st).sum().backward()
    assert torch.allclose(z_e.grad, w)
    assert vq.codebook.grad is None or vq.codebook.grad.abs().max() == 0  # only the codebook loss moves codes


def test_vq_losses_by_hand():
    vq = vqlib.VectorQuantizer(num_codes=2, code_dim=1, beta=0.25)
    vq.codebook.data = torch.tensor([[0.0], [1.0]])
    z_e = torch.tensor([0.2, 0.9]).view(1, 1, 1, 2).requires_grad_()
    _, idx, losses = vq(z_e)
    assert idx.tolist() == [[[0, 1]]]
    expected = (0.2 ** 2 + 0.1 ** 2) / 2
    assert math.isclose(float(losses["codebook"]), expected, rel_tol=1e-5)
    assert math.isclose(float(losses["commitment"]), expected, rel_tol=1e-5)
    losses["codebook"].backward()
    # d/de_k of mean (z - e_k)^2 over 2 cells = -(z - e_k)
    assert torch.allclose(vq.codebook.grad, torch.tensor([[-0.2], [0.1]]), atol=1e-6)


def test_perplexity_one_code_and_uniform_use():
    assert math.isclose(vqlib.perplexity(torch.full((10, 4, 4), 3), 8), 1.0)
    assert math.isclose(vqlib.perplexity(torch.arange(8).repeat(5), 8), 8.0, rel_tol=1e-9)
    # two codes used 3:1 -> exp(H) with H = -(.75 log .75 + .25 log .25)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert math.isclose(vqlib.perplexity(torch.tensor([0, 0, 0, 5]), 6), math.exp(h), rel_tol=1e-9)


def test_dead_code_reset_moves_only_dead_codes_onto_encoder_outputs():
    vq = vqlib.VectorQuantizer(num_codes=4, code_dim=2)
    vq.codebook.data = torch.tensor([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0], [-50.0, 50.0]])
    z_e = torch.tensor([[0.1, 0.0], [0.9, 1.1], [1.2, 0.8]]).T.reshape(1, 2, 1, 3)
    counts = torch.bincount(vq.nearest(z_e).flatten(), minlength=4)
    assert counts.tolist() == [1, 2, 0, 0]
    before = vq.codebook.data.clone()
    assert vq.reset_dead_codes(z_e, counts, generator=gen(0)) == 2
    assert torch.equal(vq.codebook.data[:2], before[:2])
    outs = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    for k in (2, 3):
        assert torch.cdist(vq.codebook.data[k:k + 1], outs).min() < 0.01


def test_vqvae_forward_and_decode():
    torch.manual_seed(0)
    m = vqlib.VQVAE(num_codes=8, code_dim=4, channels=8)
    x = data.digits("test")[0][:3]
    recon, idx, losses = m(x)
    assert recon.shape == x.shape and idx.shape == (3, 4, 4)
    assert torch.allclose(losses["loss"], losses["recon"] + losses["codebook"] + 0.25 * losses["commitment"])
    assert torch.allclose(m.decode_indices(idx), recon, atol=1e-5)
    assert torch.equal(m.codes(x), idx)


# --- priors over the code grid ----------------------------------------------------------------

def test_positional_categorical_by_hand():
    idx = torch.tensor([[[0, 1]], [[0, 2]], [[0, 1]]])            # (3, 1, 2), K = 3
    prior = vqlib.PositionalCategorical(3, alpha=1.0).fit(idx)
    # cell 0: counts (3,0,0)+1 -> 4/6; cell 1: counts (0,2,1)+1 -> 3/6 for code 1
    assert torch.allclose(prior.log_prob(torch.tensor([[[0, 1]]])), torch.tensor([math.log(4 / 6) + math.log(3 / 6)]))
    s = prior.sample(2000, generator=gen(0))
    assert s.shape == (2000, 1, 2)
    assert abs(float((s[:, 0, 0] == 0).float().mean()) - 4 / 6) < 0.04


def test_code_prior_is_a_normalised_autoregressive_model():
    torch.manual_seed(0)
    prior = vqlib.CodePrior(num_codes=3, grid=(1, 3), embed=8, hidden=8)
    # summing p(c) over all 27 grids gives 1
    grids = torch.cartesian_prod(*[torch.arange(3)] * 3).view(27, 1, 3)
    with torch.no_grad():
        assert math.isclose(float(prior.log_prob(grids).exp().sum()), 1.0, rel_tol=1e-5)
        # the first logit cannot depend on the codes (causality)
        l1, l2 = prior(torch.tensor([[[0, 0, 0]]])), prior(torch.tensor([[[2, 1, 0]]]))
    assert torch.allclose(l1[:, 0], l2[:, 0])
    assert prior.sample(4, generator=gen(0)).shape == (4, 1, 3)


def test_code_prior_learns_a_deterministic_sequence():
    torch.manual_seed(0)
    prior = vqlib.CodePrior(num_codes=4, grid=(2, 2), embed=16, hidden=32)
    idx = torch.tensor([[[1, 3], [0, 2]]]).repeat(16, 1, 1)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-2)
    for _ in range(80):
        loss = -prior.log_prob(idx).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    assert float(loss) < 0.1
    assert torch.equal(prior.sample(5, generator=gen(1)), idx[:5])


def test_class_conditional_code_prior_is_normalised_for_every_label():
    torch.manual_seed(0)
    prior = vqlib.CodePrior(num_codes=3, grid=(2, 2), embed=8, hidden=8, num_classes=4).eval()
    grids = torch.cartesian_prod(*[torch.arange(3)] * 4).view(81, 2, 2)       # all 3^4 grids
    with torch.no_grad():
        for y in range(4):
            total = prior.log_prob(grids, torch.full((81,), y)).exp().sum()
            assert math.isclose(float(total), 1.0, rel_tol=1e-5)
        # the label is the start token: the first code's distribution depends on it, not on the codes
        l0 = prior(torch.tensor([[[0, 0], [0, 0]], [[2, 1], [0, 2]]]), torch.tensor([1, 1]))
        l1 = prior(torch.tensor([[[0, 0], [0, 0]]]), torch.tensor([3]))
    assert torch.allclose(l0[0, 0], l0[1, 0])
    assert not torch.allclose(l0[0, 0], l1[0, 0])


def test_unconditional_code_prior_keeps_its_parameters():
    # num_classes=None is the original prior: one start token, so the embedding has K + 1 rows
    prior = vqlib.CodePrior(num_codes=5, grid=(2, 2), embed=4, hidden=6)
    assert prior.embed.weight.shape == (6, 4) and prior.num_classes is None
    assert vqlib.CodePrior(num_codes=5, grid=(2, 2), embed=4, hidden=6, num_classes=3).embed.weight.shape == (8, 4)


def test_dropout_prior_is_normalised_and_deterministic_in_eval_mode():
    torch.manual_seed(0)
    prior = vqlib.CodePrior(num_codes=3, grid=(1, 3), embed=8, hidden=16, dropout=0.5)
    grids = torch.cartesian_prod(*[torch.arange(3)] * 3).view(27, 1, 3)
    with torch.no_grad():
        train_a, train_b = prior.log_prob(grids), prior.log_prob(grids)
        prior.eval()
        eval_a, eval_b = prior.log_prob(grids), prior.log_prob(grids)
    assert not torch.equal(train_a, train_b)                     # dropout is active while training
    assert torch.equal(eval_a, eval_b)
    assert math.isclose(float(eval_a.exp().sum()), 1.0, rel_tol=1e-5)


def test_conditional_code_prior_learns_one_grid_per_label_and_samples_by_label():
    torch.manual_seed(0)
    prior = vqlib.CodePrior(num_codes=4, grid=(2, 2), embed=16, hidden=32, num_classes=2)
    per_label = torch.tensor([[[1, 3], [0, 2]], [[2, 2], [3, 0]]])       # label y -> grid per_label[y]
    labels = torch.tensor([0, 1]).repeat(8)
    idx = per_label[labels]
    opt = torch.optim.Adam(prior.parameters(), lr=3e-2)
    for _ in range(100):
        loss = -prior.log_prob(idx, labels).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    assert float(loss) < 0.1
    want = torch.tensor([1, 0, 0, 1, 1])
    s = prior.sample(5, generator=gen(1), labels=want)
    assert s.shape == (5, 2, 2) and s.dtype == torch.long
    assert torch.equal(s, per_label[want])


def test_code_prior_label_errors():
    cond = vqlib.CodePrior(num_codes=4, grid=(2, 2), embed=4, hidden=4, num_classes=3)
    plain = vqlib.CodePrior(num_codes=4, grid=(2, 2), embed=4, hidden=4)
    grids = torch.zeros(2, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="pass labels"):
        cond.log_prob(grids)
    with pytest.raises(ValueError, match="pass labels"):
        cond.sample(2)
    with pytest.raises(ValueError, match="unconditional"):
        plain.log_prob(grids, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        plain.sample(2, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cond.log_prob(grids, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cond.sample(2, labels=torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="integer"):
        cond.log_prob(grids, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        cond.sample(2, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        cond(grids, torch.tensor([[0], [1]]))
    with pytest.raises(TypeError):
        cond.sample(2, labels=[0, 1])
    with pytest.raises(ValueError, match="dropout"):
        vqlib.CodePrior(4, dropout=1.0)
    with pytest.raises(ValueError):
        vqlib.CodePrior(4, num_classes=0)


# --- bad inputs -------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    m = vae.VAE(latent_dim=2, hidden=8)
    grey = data.digits("test")[0][:2]
    with pytest.raises(ValueError, match="binar"):
        m.elbo(grey)                                             # Bernoulli VAE needs {0, 1} pixels
    with pytest.raises(ValueError, match="shape"):
        m.encode(torch.zeros(2, 256))
    with pytest.raises(ValueError, match=r"\[-1"):
        vae.VAE(likelihood="gaussian").encode(grey * 255)
    with pytest.raises(ValueError, match="likelihood"):
        vae.VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="sigma"):
        vae.VAE(likelihood="gaussian", sigma=0)
    with pytest.raises(ValueError):
        m.iwae(data.binarize(grey), k=0)
    with pytest.raises(TypeError):
        m.iwae(data.binarize(grey), k=2.5)
    with pytest.raises(ValueError, match="beta"):
        m.elbo(data.binarize(grey), beta=-1)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        m.decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="same shape"):
        vae.gaussian_kl(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(TypeError):
        vae.reparameterize([0.0], torch.zeros(1))
    with pytest.raises(ValueError, match="code_dim|shape"):
        vqlib.VectorQuantizer(8, 4).nearest(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="same shape"):
        vqlib.straight_through(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        vqlib.perplexity(torch.tensor([0, 4]), 4)
    with pytest.raises(TypeError, match="integer"):
        vqlib.perplexity(torch.tensor([0.0, 1.0]), 4)
    with pytest.raises(ValueError, match="empty"):
        vqlib.perplexity(torch.tensor([], dtype=torch.long), 4)
    with pytest.raises(ValueError, match="noise_std"):
        vae.noisy_autoencoder_loss(vae.Autoencoder(), grey, noise_std=-1)
    with pytest.raises(ValueError, match="fit"):
        vqlib.PositionalCategorical(4).sample(2)
    with pytest.raises(ValueError, match="shape"):
        vqlib.CodePrior(4)(torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        vqlib.VectorQuantizer(4, 2).reset_dead_codes(torch.zeros(1, 2, 1, 1), torch.zeros(3))


# --- the conditional VAE ------------------------------------------------------------------------

def test_conditional_vae_uses_the_label_everywhere_and_broadcasts_over_samples():
    torch.manual_seed(0)
    m = vae.VAE(latent_dim=3, hidden=32, likelihood="gaussian", num_classes=4)
    z = torch.randn(2, 5, 3, generator=gen(7))                  # (samples, N, D)
    y = torch.tensor([0, 1, 2, 3, 0])
    out = m.decode(z, y)
    assert out.shape == (2, 5, 1, 16, 16)
    for s in range(2):                                           # the label broadcast over samples
        assert torch.allclose(out[s], m.decode(z[s], y), atol=1e-6)
    # the same code with another label decodes to another image; with the same label, the same
    assert not torch.allclose(m.decode(z[0], (y + 1) % 4), out[0])
    assert torch.allclose(m.decode(z[0, :1], y[:1]), out[0, :1], atol=1e-6)
    x = torch.rand(5, 1, 16, 16, generator=gen(8)) * 2 - 1
    mu_a, _ = m.encode(x, y)
    mu_b, _ = m.encode(x, (y + 1) % 4)
    assert not torch.allclose(mu_a, mu_b)                        # the encoder reads y too
    assert m.elbo(x, y=y)["elbo"].shape == (5,)
    assert m.iwae(x, k=3, y=y).shape == (5,)
    s = m.sample(6, generator=gen(9), y=torch.tensor([3] * 6))
    assert s.shape == (6, 1, 16, 16) and s.abs().max() <= 1


def test_conditional_vae_refuses_missing_or_bad_labels():
    m = vae.VAE(latent_dim=3, hidden=32, likelihood="gaussian", num_classes=4)
    plain = vae.VAE(latent_dim=3, hidden=32, likelihood="gaussian")
    x = torch.zeros(3, 1, 16, 16)
    with pytest.raises(ValueError, match="needs the labels"):
        m.elbo(x)
    with pytest.raises(ValueError, match="not conditional"):
        plain.elbo(x, y=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"lie in \[0, 4\)"):
        m.elbo(x, y=torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="one label per sample"):
        m.elbo(x, y=torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer class labels"):
        m.elbo(x, y=torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="num_classes"):
        vae.VAE(latent_dim=3, hidden=32, num_classes=-1)


def test_conditional_vae_learns_what_the_label_says():
    """Two classes that differ only by which half of the image is bright: after a short fit,
    prior samples of each class are bright on their own half, whatever z is. (Trained
    for too short, the code itself still carries the class and some samples ignore y.)"""
    g = gen(10)
    n = 256
    y = torch.arange(n) % 2
    x = -torch.ones(n, 1, 16, 16)
    x[y == 0, :, :8] = 1.0
    x[y == 1, :, 8:] = 1.0
    x = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    torch.manual_seed(0)
    m = vae.VAE(latent_dim=2, hidden=64, likelihood="gaussian", sigma=0.6, num_classes=2)
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for _ in range(400):
        loss = m.elbo(x, y=y, generator=g)["loss"]
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        s0 = m.sample(50, generator=gen(11), y=torch.zeros(50, dtype=torch.long))
        s1 = m.sample(50, generator=gen(11), y=torch.ones(50, dtype=torch.long))
    assert (s0[:, :, :8].mean((1, 2, 3)) > s0[:, :, 8:].mean((1, 2, 3)) + 1).all()
    assert (s1[:, :, 8:].mean((1, 2, 3)) > s1[:, :, :8].mean((1, 2, 3)) + 1).all()
