"""Chapter 3's exercise checks: the reference answer passes, wrong answers get a hint.

Reference answers are computed the way a student would (as the hidden solutions do), on
small inputs; never with the checker's own helpers.
"""

import pytest
import torch

from lib import data, density, exercises, metrics
from exercise_testing import verdict


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)
    return v


def test_all_three_registered():
    assert {"ch03-bias", "ch03-local", "ch03-anneal"} <= set(exercises.labels())


# --- ch03-bias --------------------------------------------------------------------------


def ml_variances(n_sets, size=5, scale=1.0, seed=0, unbiased=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_sets):
        x = scale * torch.randn(size, generator=g)
        out.append(x.var() if unbiased else density.gaussian_mle(x)[1])
    return torch.stack(out)


def test_bias(capsys):
    var_hat = ml_variances(1000)
    v = verdict("ch03-bias", capsys, var_hat=var_hat)
    assert v and "0.8" in v.message
    assert verdict("ch03-bias", capsys, var_hat=ml_variances(1000, seed=3).tolist())
    wrong = [
        ml_variances(1000, unbiased=True),  # divides by N - 1
        torch.zeros(1000),  # zeros
        torch.full((1000,), 0.8),  # the answer, repeated
        ml_variances(1000, size=10),  # data sets of another size
        ml_variances(1000, scale=2.0),  # not N(0, 1)
        ml_variances(1000).sqrt(),  # standard deviations
        ml_variances(100),  # too few data sets
        -ml_variances(1000),
    ]
    for w in wrong:
        not_yet("ch03-bias", capsys, var_hat=w)
    v = not_yet("ch03-bias", capsys, var_hat=ml_variances(1000, unbiased=True))
    assert "unbiased" in v.message
    with pytest.raises(TypeError, match="one ML variance per simulated data set"):
        exercises.check("ch03-bias", var_hat=var_hat.mean())
    with pytest.raises(TypeError, match="sequence of numbers"):
        exercises.check("ch03-bias", var_hat="0.8")


# --- ch03-local -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ring():
    return data.toy2d("ring8", 200, seed=0, sigma=0.1)


@pytest.fixture(scope="module")
def em_runs(ring):
    return [density.GaussianMixture(8).fit(ring, iters=5, seed=s) for s in range(10)]


def test_local(ring, em_runs, capsys):
    runs = em_runs
    finals = [m.history[-1] for m in runs]
    worst = runs[min(range(10), key=finals.__getitem__)]
    best = runs[max(range(10), key=finals.__getitem__)]
    v = verdict(
        "ch03-local", capsys, ring_train=ring, runs=runs, finals=finals, worst=worst
    )
    assert v and "nats/point" in v.message
    # computed anew from the models, in a tensor: the same answer
    again = torch.stack([m.log_prob(ring).mean() for m in runs])
    assert verdict(
        "ch03-local", capsys, ring_train=ring, runs=runs, finals=again, worst=worst
    )
    same_seed = [density.GaussianMixture(8).fit(ring, iters=5, seed=0)] * 10
    other = data.toy2d("ring8", 200, seed=5, sigma=0.1)
    wrong = [
        dict(runs=runs, finals=finals, worst=best),  # the best, not the worst
        dict(runs=runs, finals=finals[::-1], worst=worst),  # another order
        dict(runs=runs, finals=[200 * f for f in finals], worst=worst),  # summed
        dict(runs=runs, finals=[m.history[0] for m in runs], worst=worst),  # first
        dict(runs=runs, finals=[0.0] * 10, worst=worst),  # zeros
        dict(
            runs=same_seed,
            finals=[m.history[-1] for m in same_seed],
            worst=same_seed[0],
        ),
        dict(runs=runs[:9], finals=finals[:9], worst=worst),  # nine runs
    ]
    for w in wrong:
        not_yet("ch03-local", capsys, ring_train=ring, **w)
    # fitted to other data, or with another number of components
    for make in (
        lambda s: density.GaussianMixture(8).fit(other, iters=3, seed=s),
        lambda s: density.GaussianMixture(4).fit(ring, iters=3, seed=s),
    ):
        rs = [make(s) for s in range(10)]
        fs = [m.log_prob(ring).mean().item() for m in rs]
        not_yet("ch03-local", capsys, ring_train=ring, runs=rs, finals=fs, worst=rs[0])
    with pytest.raises(TypeError, match="GaussianMixture"):
        exercises.check(
            "ch03-local", ring_train=ring, runs=finals, finals=finals, worst=worst
        )
    with pytest.raises(ValueError, match="one log-likelihood per run"):
        exercises.check(
            "ch03-local", ring_train=ring, runs=runs, finals=finals[:3], worst=worst
        )
    with pytest.raises(ValueError, match="fitted"):
        exercises.check(
            "ch03-local",
            ring_train=ring,
            runs=[density.GaussianMixture(8)] * 10,
            finals=finals,
            worst=worst,
        )


# --- ch03-anneal ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def energy():
    torch.manual_seed(0)
    # untrained: the check looks at how far the chains travel, which the step sizes of
    # the noise levels decide whatever the network has learned (smoke models barely learn)
    net = density.EnergyNet(dim=2, hidden=32, depth=2)
    return net, density.noise_levels(1.0, 0.02, 4)


def test_anneal(energy, capsys):
    net, sigmas = energy
    n, steps = 300, 10
    moons_test = data.toy2d("moons", n, seed=1)
    langevin = density.langevin_sample(
        net,
        n,
        sigmas,
        steps_per_level=steps,
        eps=1e-5,
        generator=torch.Generator().manual_seed(1),
    )

    def flat_from(init, levels, eps=1e-5):
        return density.langevin_sample(
            net,
            n,
            levels,
            steps_per_level=steps * len(sigmas),
            eps=eps,
            init=init,
            generator=torch.Generator().manual_seed(1),
        )

    init = torch.randn(n, 2, generator=torch.Generator().manual_seed(1)) * sigmas[0]
    flat = flat_from(init, sigmas[-1:])
    sw_flat = metrics.sliced_wasserstein(flat, moons_test)
    common = dict(moons_test=moons_test, sigmas=sigmas, langevin=langevin)
    v = verdict("ch03-anneal", capsys, **common, init=init, flat=flat, sw_flat=sw_flat)
    assert v and "moved" in v.message
    # the smallest level's score with the largest level's step size
    big = flat_from(init, sigmas[-1:], eps=1e-5 * float(sigmas[0] / sigmas[-1]) ** 2)
    small_start = init * 0.1
    small = flat_from(small_start, sigmas[-1:])
    wrong = [
        dict(init=init, flat=flat, sw_flat=0.0),  # zeros
        dict(
            init=init,
            flat=langevin,
            sw_flat=metrics.sliced_wasserstein(langevin, moons_test),
        ),
        dict(init=init, flat=big, sw_flat=sw_flat),
        dict(
            init=init, flat=init, sw_flat=metrics.sliced_wasserstein(init, moons_test)
        ),
        dict(
            init=small_start,
            flat=small,
            sw_flat=metrics.sliced_wasserstein(small, moons_test),
        ),
        dict(init=init, flat=flat[torch.randperm(n)], sw_flat=sw_flat),  # shuffled
    ]
    for w in wrong:
        not_yet("ch03-anneal", capsys, **common, **w)
    with pytest.raises(ValueError, match="shape"):
        exercises.check(
            "ch03-anneal", **common, init=init, flat=flat[:, :1], sw_flat=sw_flat
        )
    with pytest.raises(TypeError, match="torch.Tensor"):
        exercises.check(
            "ch03-anneal", **common, init=init, flat=flat.numpy(), sw_flat=sw_flat
        )
    with pytest.raises(ValueError, match="same number of points"):
        exercises.check(
            "ch03-anneal", **common, init=init, flat=flat[:10], sw_flat=sw_flat
        )
