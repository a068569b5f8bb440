"""lib.diffusion (chapter 5): schedules, forward process, loss, samplers, guidance."""
import math

import pytest
import torch

from lib import diffusion

BOOK_TS = (50, 100, 200, 250, 1000)  # every chain length the book uses


def test_alpha_bar_is_the_cumulative_product_of_one_minus_beta():
    g = torch.Generator().manual_seed(0)
    betas = torch.rand(37, generator=g, dtype=torch.float64) * 0.3 + 1e-3
    s = diffusion.from_betas(betas)
    prod = 1.0
    for t in range(1, 38):
        prod *= 1.0 - float(betas[t - 1])          # independent running product
        assert math.isclose(float(s.alpha_bars[t]), prod, rel_tol=1e-12)
        assert math.isclose(float(s.alphas[t]), 1 - float(betas[t - 1]), rel_tol=1e-12)
    assert s.T == 37 and s.alpha_bars[0] == 1 and s.betas[0] == 0
    # posterior variance, Ho et al. eq. (7)
    t = 5
    want = (1 - prod_upto(betas, t - 1)) / (1 - prod_upto(betas, t)) * float(betas[t - 1])
    assert math.isclose(float(s.beta_tildes[t]), want, rel_tol=1e-12)


def prod_upto(betas, t):
    p = 1.0
    for b in betas[:t].tolist():
        p *= 1 - b
    return p


def test_linear_schedule_endpoints_are_exact_and_scaled_by_1000_over_T():
    s = diffusion.linear_schedule(1000)
    assert float(s.betas[1]) == 1e-4 and float(s.betas[1000]) == 0.02
    steps = s.betas[2:] - s.betas[1:-1]
    assert torch.allclose(steps, torch.full_like(steps, (0.02 - 1e-4) / 999), rtol=1e-9)
    s50 = diffusion.linear_schedule(50)
    assert math.isclose(float(s50.betas[1]), 1e-4 * 20, rel_tol=1e-12)
    assert math.isclose(float(s50.betas[50]), 0.02 * 20, rel_tol=1e-12)


@pytest.mark.parametrize("T", BOOK_TS)
def test_alpha_bar_T_is_close_to_zero_for_every_T_the_book_uses(T):
    # sum of the scaled linear betas is 1000 * (1e-4 + 0.02) / 2 = 10.05, so alpha_bar_T <= e^-10.05
    assert float(diffusion.linear_schedule(T).alpha_bars[-1]) <= math.exp(-10.05) * 1.0001
    assert float(diffusion.cosine_schedule(T).alpha_bars[-1]) < 1e-3


def test_unscaled_short_chain_is_not_noise():
    # the warning: T = 50 with the T = 1000 endpoints leaves alpha_bar_T = prod(1 - beta) ~ e^-0.5
    s = diffusion.from_betas(torch.linspace(1e-4, 0.02, 50, dtype=torch.float64))
    assert 0.55 < float(s.alpha_bars[-1]) < 0.65


def test_cosine_schedule_follows_its_formula():
    T, sft = 100, 0.008
    s = diffusion.cosine_schedule(T, s=sft)
    f = lambda t: math.cos((t / T + sft) / (1 + sft) * math.pi / 2) ** 2
    for t in (1, 10, 50, 90):
        assert math.isclose(float(s.alpha_bars[t]), f(t) / f(0), rel_tol=1e-9)
    assert (s.betas[1:] > 0).all() and (s.betas[1:] < 1).all()
    assert (s.betas[2:] >= s.betas[1:-1]).all()    # noise is added faster and faster


@pytest.mark.parametrize("t", [1, 7, 40])
def test_one_shot_q_sample_matches_chained_forward_steps(t):
    sched = diffusion.linear_schedule(50)
    n = 40000
    x0 = torch.tensor([[0.8, -0.5]], dtype=torch.float64).expand(n, 2)
    g = torch.Generator().manual_seed(t)
    chain = x0.clone()
    for k in range(1, t + 1):
        chain = diffusion.q_step(sched, chain, k, noise=torch.randn(n, 2, generator=g, dtype=torch.float64))
    shot = diffusion.q_sample(sched, x0, t, noise=torch.randn(n, 2, generator=g, dtype=torch.float64))
    ab = float(sched.alpha_bars[t])
    mean, var = math.sqrt(ab) * x0[0], 1 - ab
    se_mean = math.sqrt(var / n)                 # standard error of a mean of n draws
    se_var = var * math.sqrt(2 / (n - 1))        # standard error of a Gaussian sample variance
    for x in (chain, shot):
        assert ((x.mean(0) - mean).abs() < 5 * se_mean).all()
        assert ((x.var(0) - var).abs() < 5 * se_var).all()
    # and the two samples agree with each other (difference of two independent estimates)
    assert ((chain.mean(0) - shot.mean(0)).abs() < 5 * math.sqrt(2) * se_mean).all()
    assert ((chain.var(0) - shot.var(0)).abs() < 5 * math.sqrt(2) * se_var).all()


def test_oracle_noise_recovers_x0_in_closed_form():
    sched = diffusion.linear_schedule(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 10, 50, 99, 100])
    xt = diffusion.q_sample(sched, x0, t, noise=eps)
    assert torch.allclose(diffusion.predict_x0(sched, xt, t, eps), x0, atol=1e-9)
    # at t = 1 the reverse mean with the true noise is x0 itself
    x1 = diffusion.q_sample(sched, x0, 1, noise=eps)
    assert torch.allclose(diffusion.posterior_mean(sched, x1, 1, eps), x0, atol=1e-12)
    # in general it is the mean of q(x_{t-1} | x_t, x_0), Ho et al. eq. (7)
    ab, abp, b = sched.alpha_bars, sched.alpha_bars, sched.betas
    k = 10
    xk = diffusion.q_sample(sched, x0, k, noise=eps)
    mu7 = (math.sqrt(abp[k - 1]) * b[k] / (1 - ab[k])) * x0 + (math.sqrt(1 - b[k]) * (1 - abp[k - 1]) / (1 - ab[k])) * xk
    assert torch.allclose(diffusion.posterior_mean(sched, xk, k, eps), mu7, atol=1e-12)


def oracle_for(sched, x0):
    """A denoiser that knows x0: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)."""
    def model(x, t):
        ab = sched.alpha_bars[t].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return (x - ab.sqrt() * x0) / (1 - ab).sqrt()
    return model


@pytest.mark.parametrize("steps", [1, 5, 100])
def test_samplers_with_an_oracle_land_exactly_on_x0(steps):
    sched = diffusion.linear_schedule(100)
    x0 = torch.tensor([[0.3, -0.7], [1.5, 0.2]], dtype=torch.float64)
    model = oracle_for(sched, x0)
    xT = torch.randn(2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for var in ("beta", "beta_tilde"):
        out = diffusion.ddpm_sample(model, sched, steps=steps, variance=var, x_T=xT,
                                    generator=torch.Generator().manual_seed(1))
        assert torch.allclose(out, x0, atol=1e-9)
    assert torch.allclose(diffusion.ddim_sample(model, sched, steps=steps, x_T=xT), x0, atol=1e-9)


def gaussian_denoiser(sched, m, s):
    """The exact E[eps | x_t] when x0 ~ N(m, s^2) (1-D): sqrt(1-ab) (x - sqrt(ab) m) / (ab s^2 + 1 - ab)."""
    def model(x, t):
        ab = sched.alpha_bars[t].to(x.dtype).reshape(-1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * m) / (ab * s ** 2 + 1 - ab)
    return model


@pytest.mark.parametrize("kind", ["beta_tilde", "beta", "ddim"])
def test_samplers_with_the_exact_denoiser_reproduce_a_gaussian(kind):
    # with the exact E[eps | x_t] of Gaussian data N(m, s^2), a full T = 1000 chain returns N(m, s^2)
    sched, m, s, n = diffusion.linear_schedule(1000), 0.5, 0.3, 20000
    model = gaussian_denoiser(sched, m, s)
    g = torch.Generator().manual_seed(0)
    if kind == "ddim":
        x = diffusion.ddim_sample(model, sched, (n, 1), steps=1000, generator=g).double()
    else:
        x = diffusion.ddpm_sample(model, sched, (n, 1), variance=kind, generator=g).double()
    # sampling error 5 * s / sqrt(n) ~ 0.011 (mean) and 5 * s / sqrt(2n) ~ 0.008 (std), plus a
    # small time-discretisation error
    assert abs(float(x.mean()) - m) < 0.015
    assert abs(float(x.std()) - s) < 0.015


def test_fewer_sampling_steps_cost_accuracy():
    # coarser chains are under-dispersed (each big step ignores the uncertainty about x0);
    # the error shrinks monotonically as the number of steps grows
    sched, m, s = diffusion.linear_schedule(1000), 0.5, 0.3
    model = gaussian_denoiser(sched, m, s)
    xT = torch.randn(20000, 1, generator=torch.Generator().manual_seed(0))
    errs = [abs(float(diffusion.ddim_sample(model, sched, steps=k, x_T=xT).std()) - s) for k in (5, 20, 100, 1000)]
    assert errs == sorted(errs, reverse=True) and errs[-1] < 0.01 < errs[0]


@pytest.mark.parametrize("steps", [100, 7])
def test_ddim_with_eta1_is_ancestral_sampling_with_beta_tilde(steps):
    # two different formulas (DDIM's eq. 12 and the posterior mean + noise) give the same chain
    sched = diffusion.linear_schedule(100)
    model = gaussian_denoiser(sched, -0.2, 0.7)
    a = diffusion.ddim_sample(model, sched, (500, 1), steps=steps, eta=1.0, generator=torch.Generator().manual_seed(3))
    b = diffusion.ddpm_sample(model, sched, (500, 1), steps=steps, variance="beta_tilde",
                              generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, atol=1e-4)


def test_ddim_eta0_is_deterministic_given_the_starting_noise():
    sched = diffusion.linear_schedule(50)
    model = gaussian_denoiser(sched, 0.2, 0.5)
    xT = torch.randn(100, 1, generator=torch.Generator().manual_seed(0))
    a = diffusion.ddim_sample(model, sched, steps=10, x_T=xT, generator=torch.Generator().manual_seed(1))
    b = diffusion.ddim_sample(model, sched, steps=10, x_T=xT, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = diffusion.ddim_sample(model, sched, steps=10, eta=1.0, x_T=xT, generator=torch.Generator().manual_seed(1))
    d = diffusion.ddim_sample(model, sched, steps=10, eta=1.0, x_T=xT, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(c, d)
    _, traj = diffusion.ddim_sample(model, sched, steps=10, x_T=xT, return_trajectory=True)
    assert len(traj) == 11 and torch.equal(traj[0], xT) and torch.equal(traj[-1], a)


def test_eps_loss_is_zero_for_the_oracle_and_one_for_a_zero_predictor():
    sched = diffusion.linear_schedule(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4000, 1, 2, 2, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(1, 101, (4000,), generator=g)
    xt = diffusion.q_sample(sched, x0, t, noise=noise)
    oracle = lambda x, tt: (x - sched.alpha_bars[tt].float().sqrt().reshape(-1, 1, 1, 1) * x0) / \
        (1 - sched.alpha_bars[tt].float()).sqrt().reshape(-1, 1, 1, 1)
    assert float(diffusion.eps_loss(oracle, sched, x0, t=t, noise=noise)) < 1e-8
    per = diffusion.eps_loss(lambda x, tt: torch.zeros_like(x), sched, x0, generator=g, reduction="none")
    assert per.shape == (4000,)
    # E|eps|^2 per pixel = 1; the mean of 16000 chi^2_1 / 1 draws has standard error sqrt(2 / 16000)
    assert abs(float(per.mean()) - 1) < 5 * math.sqrt(2 / 16000)
    assert torch.equal(xt, diffusion.q_sample(sched, x0, t, noise=noise))
    # a condition is passed through as model(x, t, y)
    seen = {}
    def cond_model(x, tt, y):
        seen["y"] = y
        return torch.zeros_like(x)
    diffusion.eps_loss(cond_model, sched, x0[:3], y=torch.tensor([1, 2, 3]))
    assert seen["y"].tolist() == [1, 2, 3]


def test_timesteps_are_evenly_spaced_from_T():
    assert diffusion.timesteps(1000, 4) == [1000, 750, 500, 250]
    assert diffusion.timesteps(10, 10) == list(range(10, 0, -1))
    assert diffusion.timesteps(100, 1) == [100]


@pytest.mark.parametrize("T,steps", [(100, 5), (100, 10), (100, 50), (1000, 20), (10, 10), (7, 3)])
def test_quadratic_timesteps_crowd_the_low_noise_end_and_never_repeat(T, steps):
    seq = diffusion.timesteps(T, steps, "quadratic")
    assert len(seq) == steps and seq[0] == T and seq[-1] >= 1
    assert all(a > b for a, b in zip(seq, seq[1:]))                # strictly decreasing
    gaps = [a - b for a, b in zip(seq, seq[1:])]
    half = len(gaps) // 2
    if half:                                                          # big jumps first, at high noise
        assert sum(gaps[:half]) >= sum(gaps[-half:]) and (steps == T or gaps[0] > gaps[-1])
    assert diffusion.timesteps(100, 5, "quadratic") == [100, 64, 36, 16, 4]   # 100 (k/5)^2
    with pytest.raises(ValueError, match="spacing"):
        diffusion.timesteps(100, 5, "cubic")


def test_samplers_follow_the_spacing_they_are_given():
    sched = diffusion.linear_schedule(100)
    calls = []
    model = lambda x, t: (calls.append(int(t[0])), torch.zeros_like(x))[1]          # noqa: E731
    xT = torch.randn(3, 1, generator=torch.Generator().manual_seed(0))
    for sampler in (diffusion.ddpm_sample, diffusion.ddim_sample, diffusion.dpm_solver_sample):
        calls.clear()
        sampler(model, sched, steps=5, x_T=xT, spacing="quadratic")
        assert calls == [100, 64, 36, 16, 4]


def test_classifier_free_guidance_combination():
    c, u = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
    assert torch.equal(diffusion.cfg_eps(c, u, 0.0), u)
    assert torch.equal(diffusion.cfg_eps(c, u, 1.0), c)
    assert torch.allclose(diffusion.cfg_eps(c, u, 3.0), torch.tensor([0.5 + 3 * 0.5, -1.0 + 3 * 3.0]))
    model = lambda x, t, y: torch.zeros_like(x) + (0.0 if y is None else 1.0)
    eps = diffusion.guided(model, torch.tensor([1]), 2.5)(torch.zeros(1, 2), torch.tensor([3]))
    assert torch.allclose(eps, torch.full((1, 2), 2.5))
    with pytest.raises(ValueError, match="shape"):
        diffusion.cfg_eps(c, u[:1], 1.0)
    with pytest.raises(TypeError):
        diffusion.guided(model, None, "strong")


def test_guidance_scale_limits_and_checks():
    # (moved from the removed duplicate lib.text2image.cfg_eps)
    g = torch.Generator().manual_seed(0)
    ec, eu = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    assert torch.equal(diffusion.cfg_eps(ec, eu, 0.0), eu)
    assert torch.allclose(diffusion.cfg_eps(ec, eu, 1.0), ec)
    assert torch.allclose(diffusion.cfg_eps(ec, eu, 3.0), eu + 3 * (ec - eu))
    with pytest.raises(ValueError, match="shape"):
        diffusion.cfg_eps(ec, eu[:2], 1.0)
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="guidance scale w must be a finite number >= 0"):
            diffusion.cfg_eps(ec, eu, bad)
        with pytest.raises(ValueError, match="guidance scale"):
            diffusion.guided(lambda x, t, y: x, None, bad)     # refused when wrapping, not when sampling
    with pytest.raises(TypeError, match="guidance scale"):
        diffusion.cfg_eps(ec, eu, True)


def conditional_denoiser():
    """A small conditional denoiser: eps depends on x, t and (unless y is None) a label y."""
    torch.manual_seed(0)
    lin, emb = torch.nn.Linear(2, 2), torch.nn.Embedding(2, 2)

    def model(x, t, y=None):
        h = lin(x) * (t.float()[:, None] / 20)
        return h if y is None else h + emb(y)
    return model


def test_guided_sampler_reduces_to_the_unconditional_and_the_conditional_model():
    # (moved from the removed duplicate lib.text2image.ddim_sample)
    sched, model = diffusion.cosine_schedule(20), conditional_denoiser()
    y, other = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 0])
    run = lambda eps: diffusion.ddim_sample(eps, sched, (3, 2), steps=5,
                                            generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unc, cond = run(lambda x, t: model(x, t)), run(lambda x, t: model(x, t, y))
        z0, z1, z2 = (run(diffusion.guided(model, y, w)) for w in (0.0, 1.0, 2.0))
        # w = 0 ignores the condition: the same samples for any label
        assert torch.allclose(z0, run(diffusion.guided(model, other, 0.0)), atol=1e-6)
        assert torch.allclose(z0, unc, atol=1e-6) and torch.allclose(z1, cond, atol=1e-5)
        assert not torch.allclose(z1, z2, atol=1e-4)
        # DDIM (eta = 0) is deterministic given the generator's seed
        assert torch.equal(z2, run(diffusion.guided(model, y, 2.0)))


def test_cosine_schedule_forward_process_preserves_variance():
    # (moved from the removed duplicate lib.text2image.cosine_alpha_bar / q_sample)
    ab = diffusion.cosine_schedule(100).alpha_bars
    assert ab.shape == (101,) and ab[0] == 1 and ab[-1] < 1e-3
    assert (ab[1:] < ab[:-1]).all()
    z0 = torch.randn(20000, 2)
    zt = diffusion.q_sample(diffusion.cosine_schedule(100), z0, torch.full((20000,), 50), torch.randn(20000, 2))
    assert zt.var(0).mean().item() == pytest.approx(1.0, abs=0.05)       # variance preserving
    assert (zt * z0).mean().item() == pytest.approx(ab[50].sqrt().item(), abs=0.03)


def test_integer_data_is_refused_not_truncated():
    # before, an int64 x0 cast sqrt(alpha_bar_t) to 0: x_t was pure (truncated) noise
    sched = diffusion.linear_schedule(100)
    x_int = torch.ones(2, 1, 4, 4, dtype=torch.long)
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor, got dtype torch.int64"):
        diffusion.q_sample(sched, x_int, 5)
    with pytest.raises(TypeError, match="floating-point"):
        diffusion.eps_loss(lambda a, b: a, sched, x_int)
    with pytest.raises(TypeError, match="floating-point"):
        diffusion.q_step(sched, x_int, 5)
    with pytest.raises(TypeError, match="floating-point"):
        diffusion.predict_x0(sched, x_int, 5, torch.zeros(2, 1, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        diffusion.ddim_sample(lambda a, b: a, sched, x_T=torch.zeros(2, 2, dtype=torch.long), steps=2)
    # the float version of the same data goes through, with sqrt(alpha_bar) intact
    x = x_int.float()
    noise = torch.zeros_like(x)
    assert torch.allclose(diffusion.q_sample(sched, x, 5, noise=noise), sched.alpha_bars[5].sqrt().float() * x)


def test_empty_nonfinite_and_misshapen_batches_are_refused():
    sched = diffusion.linear_schedule(100)
    with pytest.raises(ValueError, match="non-empty"):
        diffusion.q_sample(sched, torch.zeros(0, 2), 5)
    with pytest.raises(ValueError, match="non-empty"):
        diffusion.eps_loss(lambda a, b: a, sched, torch.zeros(0, 1, 4, 4))
    with pytest.raises(ValueError, match="finite"):
        diffusion.q_sample(sched, torch.tensor([[0.0, math.nan]]), 5)
    with pytest.raises(ValueError, match="finite"):
        diffusion.eps_loss(lambda a, b: a, sched, torch.full((1, 1, 2, 2), math.inf))
    with pytest.raises(ValueError, match="finite"):
        diffusion.ddpm_sample(lambda a, b: a, sched, x_T=torch.full((2, 2), math.nan), steps=2)
    with pytest.raises(ValueError, match="positive ints"):
        diffusion.ddim_sample(lambda a, b: a, sched, (0, 2), steps=2)
    with pytest.raises(ValueError, match="shape of x0"):
        diffusion.q_sample(sched, torch.zeros(2, 2), 5, noise=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="shape of x_t"):
        diffusion.predict_x0(sched, torch.zeros(2, 2), 5, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="shape of x_prev"):
        diffusion.q_step(sched, torch.zeros(2, 2), 5, noise=torch.zeros(2))
    # time steps: integer, in 1 .. T, one per example, also for the loss
    with pytest.raises(TypeError, match="integer time steps"):
        diffusion.eps_loss(lambda a, b: a, sched, torch.zeros(2, 2), t=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="1 .. T = 100"):
        diffusion.eps_loss(lambda a, b: a, sched, torch.zeros(2, 2), t=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        diffusion.eps_loss(lambda a, b: a, sched, torch.zeros(2, 2), t=torch.tensor([1]))
    for bad in (math.nan, -0.5):
        with pytest.raises(ValueError, match="eta"):
            diffusion.ddim_sample(lambda a, b: a, sched, (2, 2), steps=2, eta=bad)


def test_bad_inputs_raise_clear_errors():
    sched = diffusion.linear_schedule(100)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="1 .. T = 100"):
        diffusion.q_sample(sched, x, 0)
    with pytest.raises(ValueError, match="1 .. T = 100"):
        diffusion.q_sample(sched, x, torch.tensor([1, 101]))
    with pytest.raises(TypeError, match="integer"):
        diffusion.q_sample(sched, x, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        diffusion.q_sample(sched, x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        diffusion.from_betas(torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        diffusion.from_betas(torch.tensor([0.0, 0.1]))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        diffusion.from_betas(torch.tensor([-0.1, 0.1]))
    with pytest.raises(ValueError, match="too small"):
        diffusion.linear_schedule(10)                       # 0.02 * 100 = 2 is not a beta
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        diffusion.q_sample(sched, torch.full((2, 1, 4, 4), 255.0), 5)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        diffusion.eps_loss(lambda a, b: a, sched, torch.full((2, 1, 4, 4), 3.0))
    with pytest.raises(ValueError, match="variance"):
        diffusion.ddpm_sample(lambda a, b: a, sched, (2, 2), variance="big")
    with pytest.raises(ValueError, match="at most T"):
        diffusion.ddim_sample(lambda a, b: a, sched, (2, 2), steps=101)
    with pytest.raises(ValueError, match="eta"):
        diffusion.ddim_sample(lambda a, b: a, sched, (2, 2), eta=-1)
    with pytest.raises(ValueError, match="must return eps"):
        diffusion.ddim_sample(lambda a, b: a[:, :1], sched, (2, 2), steps=2)
    with pytest.raises(TypeError):
        diffusion.q_sample(sched, [[0.0, 1.0]], 3)


def test_per_sample_guidance_scales_are_each_rows_own_scale():
    g = torch.Generator().manual_seed(1)
    ec, eu = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    got = diffusion.cfg_eps(ec, eu, [0.0, 1.0, 4.0])
    for i, w in enumerate((0.0, 1.0, 4.0)):
        assert torch.allclose(got[i], diffusion.cfg_eps(ec[i:i + 1], eu[i:i + 1], w)[0])
    assert torch.allclose(diffusion.cfg_eps(ec, eu, torch.tensor([2.0, 2.0, 2.0])), diffusion.cfg_eps(ec, eu, 2.0))
    with pytest.raises(ValueError, match="one per sample"):
        diffusion.cfg_eps(ec, eu, [1.0, 2.0])
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        diffusion.cfg_eps(ec, eu, [1.0, -2.0, 0.0])
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        diffusion.cfg_eps(ec, eu, [1.0, math.nan, 0.0])


def test_dpm_solver_is_second_order_on_the_exact_gaussian_flow():
    # For Gaussian data N(m, s^2) the probability-flow ODE is known in closed form: it keeps
    # each sample's z-score, x_t = m sqrt(ab_t) + (x_T - m sqrt(ab_T)) std_t / std_T with
    # std_t^2 = ab_t s^2 + 1 - ab_t. DDIM (Euler) approaches it as 1/steps, DPM-Solver++(2M)
    # as 1/steps^2: compare both at t = 100 of a T = 1000 chain.
    sched, m, s = diffusion.linear_schedule(1000), 0.3, 0.5
    model = gaussian_denoiser(sched, m, s)
    xT = torch.randn(64, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ab = lambda t: float(sched.alpha_bars[t])                                      # noqa: E731
    std = lambda t: math.sqrt(ab(t) * s ** 2 + 1 - ab(t))                          # noqa: E731
    exact = m * math.sqrt(ab(100)) + (xT - m * math.sqrt(ab(1000))) * std(100) / std(1000)
    err = {}
    for name, sampler in [("ddim", diffusion.ddim_sample), ("dpm", diffusion.dpm_solver_sample)]:
        for k in (10, 50):
            _, traj = sampler(model, sched, steps=k, x_T=xT, return_trajectory=True)
            at = (diffusion.timesteps(1000, k) + [0]).index(100)
            err[name, k] = float((traj[at] - exact).abs().max())
    assert err["dpm", 10] < err["ddim", 10] / 3
    assert err["ddim", 50] > 0.2 * err["ddim", 10]            # first order: 5x steps, ~5x less
    assert err["dpm", 50] < err["dpm", 10] / 20               # second order: ~25x less
    assert err["dpm", 50] < 1e-3


def test_dpm_solver_equals_ddim_where_no_second_order_step_is_taken():
    # two steps: the first is first order (no earlier x0_hat), the second lands on t = 0
    sched = diffusion.linear_schedule(100)
    model = gaussian_denoiser(sched, -0.2, 0.7)
    xT = torch.randn(200, 1, generator=torch.Generator().manual_seed(1))
    for clip in (False, True):
        a = diffusion.ddim_sample(model, sched, steps=2, x_T=xT, clip_x0=clip)
        b = diffusion.dpm_solver_sample(model, sched, steps=2, x_T=xT, clip_x0=clip)
        assert torch.allclose(a, b, atol=1e-5)
    c = diffusion.dpm_solver_sample(model, sched, steps=5, x_T=xT)
    assert not torch.allclose(c, diffusion.ddim_sample(model, sched, steps=5, x_T=xT), atol=1e-3)
    with pytest.raises(ValueError):
        diffusion.dpm_solver_sample(model, sched, steps=101, x_T=xT)


def test_v_prediction_round_trip_and_oracle_loss():
    sched = diffusion.cosine_schedule(100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 2, 3, 4, 4, generator=g) * 2 - 1                   # clips work as well as images
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([1, 10, 40, 70, 99, 100])
    x_t = diffusion.q_sample(sched, x0, t, noise)
    v = diffusion.v_target(sched, x0, t, noise)
    ab = sched.alpha_bars[t].float().view(-1, 1, 1, 1, 1)
    assert torch.allclose(v, ab.sqrt() * noise - (1 - ab).sqrt() * x0)
    assert torch.allclose(diffusion.eps_from_v(sched, x_t, t, v), noise, atol=1e-5)
    # x_0 from (x_t, v): sqrt(abar) x_t - sqrt(1 - abar) v, the identity behind the parametrisation
    assert torch.allclose(ab.sqrt() * x_t - (1 - ab).sqrt() * v, x0, atol=1e-5)

    def oracle(x, tt):  # knows x0, so it can compute v exactly from x_t
        a = sched.alpha_bars[tt].float().view(-1, 1, 1, 1, 1)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    assert diffusion.v_loss(oracle, sched, x0, generator=g).item() < 1e-8
    assert torch.allclose(diffusion.v_to_eps(oracle, sched)(x_t, t), noise, atol=1e-4)
    zero = lambda x, tt: torch.zeros_like(x)
    assert diffusion.v_loss(zero, sched, x0, generator=g).item() > 0.1
    with pytest.raises(ValueError, match="shape"):
        diffusion.eps_from_v(sched, x_t, t, v[:, :1])
    with pytest.raises(ValueError, match="t"):
        diffusion.v_target(sched, x0, torch.tensor([0, 1, 2, 3, 4, 5]), noise)
