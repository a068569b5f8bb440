"""Tests of chapter 3's additions to lib.density (Gaussian MLE, EM, score model, generator),
of the sample distance used to judge them (lib.metrics.sliced_wasserstein), and of
lib.data.sample_labels (the class mix that ClassGaussians.sample draws)."""
import math

import numpy as np
import pytest
import torch

from lib import data, density, metrics


def test_gaussian_mle_closed_form_1d_and_nd():
    x = torch.tensor([1.0, 2.0, 4.0, 7.0])
    mu, var = density.gaussian_mle(x)
    assert float(mu) == pytest.approx(3.5)
    assert float(var) == pytest.approx(((1 - 3.5) ** 2 + (2 - 3.5) ** 2 + (4 - 3.5) ** 2 + (7 - 3.5) ** 2) / 4)
    xs = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    mu, cov = density.gaussian_mle(xs)
    np.testing.assert_allclose(cov.numpy(), np.cov(xs.numpy().T, bias=True), atol=1e-6)
    np.testing.assert_allclose(mu.numpy(), xs.numpy().mean(0), atol=1e-6)


def test_gaussian_loglik_matches_scipy_and_is_maximised_at_mle():
    from scipy.stats import norm
    x = torch.randn(300, generator=torch.Generator().manual_seed(1)) * 2 + 1
    mu, var = density.gaussian_mle(x)
    ll = float(density.gaussian_log_likelihood(x, mu, var))
    assert ll == pytest.approx(norm.logpdf(x.numpy(), float(mu), math.sqrt(float(var))).mean(), rel=1e-9)
    for dmu, fvar in [(0.05, 1), (-0.05, 1), (0, 1.05), (0, 0.95), (0, 1.0 * (300 / 299))]:
        assert float(density.gaussian_log_likelihood(x, mu + dmu, var * fvar)) < ll


def test_gradient_ascent_reaches_closed_form():
    x = torch.randn(400, generator=torch.Generator().manual_seed(2)) * 0.7 - 2
    mu, var = density.gaussian_mle(x)
    fit = density.gaussian_gradient_ascent(x, steps=400, lr=0.1)
    assert fit["mu"] == pytest.approx(float(mu), abs=1e-3)
    assert fit["var"] == pytest.approx(float(var), rel=1e-3)
    assert fit["path"].shape == (401, 2) and len(fit["loglik"]) == 400
    assert fit["loglik"][-1] > fit["loglik"][0]


def _blobs(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    k = torch.randint(3, (n,), generator=g)
    return c[k] + 0.5 * torch.randn(n, 2, generator=g)


def test_em_loglik_monotone_and_finds_clusters():
    x = _blobs()
    gm = density.GaussianMixture(3).fit(x, iters=60, seed=1)
    h = np.array(gm.history)
    assert np.all(np.diff(h) >= -1e-9), np.diff(h).min()
    # the true log-likelihood of the generating mixture is the natural reference
    true = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(3) / 3),
        torch.distributions.MultivariateNormal(torch.tensor([[-3.0, 0], [3, 0], [0, 4]]), 0.25 * torch.eye(2).expand(3, 2, 2)))
    assert h[-1] >= float(true.log_prob(x).mean()) - 1e-6  # MLE is at least as good on the training data
    means = gm.means[gm.means[:, 0].argsort()]
    np.testing.assert_allclose(means.numpy(), [[-3, 0], [0, 4], [3, 0]], atol=0.2)
    assert gm.weights.sum().item() == pytest.approx(1.0)
    r = gm.responsibilities(x)
    np.testing.assert_allclose(r.sum(1).numpy(), 1.0, atol=1e-9)


def test_em_one_component_equals_gaussian_mle():
    x = _blobs(300, seed=3)
    gm = density.GaussianMixture(1, reg=1e-9).fit(x, iters=3)
    mu, cov = density.gaussian_mle(x)
    np.testing.assert_allclose(gm.means[0].numpy(), mu.numpy(), atol=1e-9)
    np.testing.assert_allclose(gm.covs[0].numpy(), cov.numpy(), atol=1e-7)
    ref = torch.distributions.MultivariateNormal(mu, cov).log_prob(x.double())
    np.testing.assert_allclose(gm.log_prob(x).numpy(), ref.numpy(), rtol=1e-6)


def test_em_collapsing_component_gives_no_nans():
    # 4 distinct points repeated, 6 components: some components must collapse or starve.
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]).repeat(10, 1)
    gm = density.GaussianMixture(6).fit(x, iters=50)
    assert all(math.isfinite(v) for v in gm.history)
    for t in (gm.means, gm.covs, gm.weights, gm.log_prob(x), gm.sample(20)):
        assert torch.isfinite(t).all()
    # far-away points: log-sum-exp keeps the density finite (very negative, not -inf)
    assert torch.isfinite(gm.log_prob(torch.tensor([[1e3, -1e3]]))).all()


def test_em_sample_statistics():
    x = _blobs(800, seed=4)
    gm = density.GaussianMixture(3).fit(x, iters=80)
    s = gm.sample(4000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4000, 2)
    assert metrics.sliced_wasserstein(s, x) < 0.25


def test_em_bad_inputs():
    with pytest.raises(ValueError, match="positive"):
        density.GaussianMixture(0)
    with pytest.raises(ValueError, match="positive"):
        density.GaussianMixture(-2)
    with pytest.raises(TypeError):
        density.GaussianMixture(2.5)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        density.GaussianMixture(2).fit(torch.zeros(10))
    gm = density.GaussianMixture(2).fit(_blobs(100), iters=5)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        gm.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="fit"):
        density.GaussianMixture(2).log_prob(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="1-D"):
        density.gaussian_log_likelihood(torch.zeros(3, 2), 0.0, 1.0)
    with pytest.raises(ValueError, match="var"):
        density.gaussian_log_likelihood(torch.zeros(3), 0.0, 0.0)
    with pytest.raises(ValueError, match="sigma_min"):
        density.noise_levels(0.1, 1.0)
    with pytest.raises(ValueError, match="same dimension"):
        density.mmd_loss(torch.zeros(3, 2), torch.zeros(3, 3))


def test_energy_score_is_minus_gradient_and_dsm_is_exact_for_gaussian():
    torch.manual_seed(0)
    net = density.EnergyNet(hidden=16, depth=1)
    x = torch.randn(5, 2)
    s = net.score(x, 0.3)
    eps = 1e-4
    fd = torch.stack([(net(x + eps * e, 0.3) - net(x - eps * e, 0.3)) / (2 * eps) for e in torch.eye(2)], 1)
    np.testing.assert_allclose(s.detach().numpy(), -fd.detach().numpy(), atol=2e-3)

    # For data N(0, I) the blurred density is N(0, (1 + sigma^2) I), whose energy
    # ||x||^2 / (2 (1 + sigma^2)) has the exact score. DSM loss of the exact score:
    # sigma s + eps = (eps - sigma x) / (1 + sigma^2), so E||.||^2 = D / (1 + sigma^2) = 2 / 1.25
    # (not 0: the DSM loss has an irreducible constant; its minimiser is still the true score).
    class Exact(density.EnergyNet):
        def forward(self, x, sigma):
            sigma = torch.as_tensor(sigma, dtype=x.dtype).expand(len(x))
            return (x ** 2).sum(1) / (2 * (1 + sigma ** 2))
    ex = Exact(hidden=1, depth=1)
    sig = torch.tensor([0.5])
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(20000, 2, generator=g)
    loss = float(density.dsm_loss(ex, xs, sig, generator=g).detach())
    assert loss == pytest.approx(2 / 1.25, rel=0.03)
    # Langevin with the exact score samples the N(0, 1 + sigma^2) blurred Gaussian
    out = density.langevin_sample(ex, 4000, torch.tensor([0.5, 0.1]), steps_per_level=400, eps=5e-3,
                                  generator=torch.Generator().manual_seed(1))
    assert out.shape == (4000, 2) and torch.isfinite(out).all()
    assert out.var(0).mean().item() == pytest.approx(1.0, abs=0.15)
    again, levels = density.langevin_sample(ex, 4000, torch.tensor([0.5, 0.1]), steps_per_level=200, eps=5e-3,
                                            generator=torch.Generator().manual_seed(1), keep_levels=True)
    assert len(levels) == 2 and levels[0].shape == (4000, 2)
    # at the first level the chain samples the blurred N(0, 1 + 0.5^2) (plus a small step-size bias)
    assert levels[0].var(0).mean().item() == pytest.approx(1.25, abs=0.2)


def test_dsm_training_reduces_loss_and_mmd_generator_learns():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = data.toy2d("ring8", 512, seed=0, sigma=0.1)
    net = density.EnergyNet(hidden=32, depth=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sig = density.noise_levels(1.0, 0.05, 5)
    first = [float(density.dsm_loss(net, x, sig, generator=torch.Generator().manual_seed(9)).detach())]
    for _ in range(150):
        loss = density.dsm_loss(net, x[torch.randint(512, (128,), generator=g)], sig, generator=g)
        opt.zero_grad(); loss.backward(); opt.step()
    after = float(density.dsm_loss(net, x, sig, generator=torch.Generator().manual_seed(9)).detach())
    assert after < 0.9 * first[0]

    gen = density.Generator2d(z_dim=2, hidden=32, depth=2)
    opt = torch.optim.Adam(gen.parameters(), lr=3e-3)
    before = metrics.sliced_wasserstein(gen.sample(512, generator=torch.Generator().manual_seed(1)).detach(), x)
    for _ in range(150):
        loss = density.mmd_loss(gen.sample(128, generator=g), x[torch.randint(512, (128,), generator=g)])
        opt.zero_grad(); loss.backward(); opt.step()
    after = metrics.sliced_wasserstein(gen.sample(512, generator=torch.Generator().manual_seed(1)).detach(), x)
    assert after < 0.5 * before
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        gen(torch.zeros(3, 5))


def test_mmd_loss_zero_on_identical_and_positive_otherwise():
    a = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    assert float(density.mmd_loss(a, a.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(density.mmd_loss(a, a + 1.0)) > 0.1


def test_mmd_loss_is_the_one_mmd_unbiased_and_median_bandwidth():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(40, 2, generator=g, dtype=torch.float64), torch.randn(30, 2, generator=g, dtype=torch.float64)
    # the unbiased estimate by hand, median bandwidth (what lib.metrics.mmd reported before it called mmd_loss)
    z = torch.cat([a, b])
    d2 = torch.cdist(z, z).pow(2)
    h = float(d2[d2 > 0].median().sqrt())
    k = torch.exp(-d2 / (2 * h ** 2))
    kaa, kbb, kab = k[:40, :40], k[40:, 40:], k[:40, 40:]
    ref = (kaa.sum() - kaa.trace()) / (40 * 39) + (kbb.sum() - kbb.trace()) / (30 * 29) - 2 * kab.mean()
    assert float(density.mmd_loss(a, b, None, unbiased=True)) == float(ref)
    assert metrics.mmd(a, b) == float(ref) and metrics.mmd(a, b, bandwidth=h) == float(ref)
    biased = density.mmd_loss(a, b, None)
    assert float(biased) > float(ref)                          # the V-statistic keeps the k(x, x) = 1 terms
    x = a.clone().requires_grad_(True)
    density.mmd_loss(x, b, unbiased=True).backward()           # differentiable either way
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="two points"):
        density.mmd_loss(a[:1], b, unbiased=True)


def test_noise_levels_geometric():
    s = density.noise_levels(1.0, 0.01, 3)
    np.testing.assert_allclose(s.numpy(), [1.0, 0.1, 0.01], rtol=1e-5)


def test_sliced_wasserstein_zero_for_same_distribution_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3000, 2, generator=g), torch.randn(3000, 2, generator=g)
    same = metrics.sliced_wasserstein(a, b)
    assert same < 0.05
    prev = same
    for shift in (0.5, 1.0, 2.0):
        d = metrics.sliced_wasserstein(a, b + shift * torch.tensor([1.0, 0.0]))
        # a shift t along x moves every projection by t*cos(angle): SW1 = t * E|cos| = t * 2/pi
        assert d == pytest.approx(shift * 2 / math.pi, abs=0.06)
        assert d > prev
        prev = d


# --- data.sample_labels: the class mix of every class-conditional sampler ----------------

def test_sample_labels_follow_the_training_frequencies():
    y = torch.tensor([0] * 600 + [2] * 300 + [3] * 100)
    drawn = data.sample_labels(y, 20_000, torch.Generator().manual_seed(0))
    assert drawn.dtype == torch.long and drawn.shape == (20_000,)
    freq = torch.bincount(drawn, minlength=4).double() / 20_000
    assert torch.allclose(freq, torch.tensor([0.6, 0.0, 0.3, 0.1], dtype=torch.float64), atol=0.015)
    assert freq[1] == 0  # a class absent from the training labels is never drawn
    again = data.sample_labels(y, 20_000, torch.Generator().manual_seed(0), num_classes=10)
    assert torch.equal(drawn, again)  # trailing empty classes do not change the draws


def test_class_gaussians_draw_their_classes_with_sample_labels():
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([1] * 30 + [4] * 10)
    x = torch.randn(40, 3, generator=g)
    m = density.ClassGaussians().fit(x, y)
    _, classes = m.sample(500, generator=torch.Generator().manual_seed(5))
    assert torch.equal(classes, data.sample_labels(y, 500, torch.Generator().manual_seed(5)))


def test_sample_labels_refuses_bad_labels():
    with pytest.raises(ValueError, match="integer labels"):
        data.sample_labels(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match=">= 0"):
        data.sample_labels(torch.tensor([-1, 1]), 3)
    with pytest.raises(ValueError):
        data.sample_labels(torch.tensor([0, 1]), 0)


def test_em_snapshots_replay_the_fit_and_ellipses_are_each_components_contour():
    x = data.toy2d("ring8", 200, seed=0, sigma=0.1)
    gm = density.GaussianMixture(8).fit(x, iters=12, seed=3, snapshots=True)
    assert len(gm.snapshots) == len(gm.history) + 1 == 13     # the start, then every iteration
    w, m, c = gm.snapshots[-1]
    assert torch.equal(w, gm.weights) and torch.equal(m, gm.means) and torch.equal(c, gm.covs)
    assert not torch.equal(gm.snapshots[0][1], gm.means)      # the start is not the end
    # replaying a snapshot's mixture gives the log-likelihood EM recorded after that iteration
    for i in (1, 5, 12):
        replay = density.GaussianMixture(8)
        replay.weights, replay.means, replay.covs = gm.snapshots[i]
        assert float(replay.log_prob(x).mean()) == pytest.approx(gm.history[i - 1], abs=1e-9)
    assert density.GaussianMixture(8).fit(x, iters=3).snapshots == []   # off by default
    e = gm.ellipses(n_sigma=2.0, points=50)
    assert e.shape == (8, 2, 50)
    for j in range(8):   # every point lies at Mahalanobis distance 2 from its component's mean
        d = torch.from_numpy(e[j]).T - gm.means[j]
        maha = torch.einsum("pi,ij,pj->p", d, torch.linalg.inv(gm.covs[j]), d).sqrt()
        assert torch.allclose(maha, torch.full_like(maha, 2.0), atol=1e-9)
    w0, m0, c0 = gm.snapshots[0]
    assert gm.ellipses(means=m0, covs=c0).shape == (8, 2, 100)
    with pytest.raises(ValueError, match="call fit"):
        density.GaussianMixture(2).ellipses()
    with pytest.raises(ValueError, match="2-D mixtures"):
        density.GaussianMixture(2).fit(torch.randn(50, 3), iters=2).ellipses()


def test_class_gaussians_clip_images_but_not_codes():
    from lib import density
    g = torch.Generator().manual_seed(0)
    codes = 3 * torch.randn(400, 4, generator=g)
    y = torch.arange(400) % 2
    cg = density.ClassGaussians(reg=1e-3).fit(codes, y)
    clipped, _ = cg.sample(500, generator=torch.Generator().manual_seed(1))
    free, labels = cg.sample(500, generator=torch.Generator().manual_seed(1), clip=False)
    assert clipped.abs().max() <= 1 and free.abs().max() > 3        # codes keep their scale
    assert torch.allclose(free.clamp(-1, 1), clipped)                # the same draws
    assert free.std().item() == pytest.approx(3.0, rel=0.15) and set(labels.tolist()) == {0, 1}


def test_energy_net_refuses_bad_points_and_noise_levels():
    net = density.EnergyNet(dim=2, hidden=8, depth=1)
    assert net(torch.zeros(3, 2), 0.5).shape == (3,)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        net(torch.zeros(3, 3), 0.5)
    with pytest.raises(ValueError, match="sigma .* must be > 0"):
        net(torch.zeros(3, 2), 0.0)
