"""Chapter 2's exercise checks: the reference answer passes, wrong answers get a hint.

Reference answers are computed the way a student would (as the hidden solutions do), on
small inputs; never with the checker's own helpers.
"""

import math

import numpy as np
import pytest
import torch

from lib import data, exercises, metrics, procedural
from exercise_testing import verdict


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)
    return v


def test_all_three_registered():
    assert {"ch02-turtle-distance", "ch02-five-kind", "ch02-average"} <= set(
        exercises.labels()
    )


# --- ch02-turtle-distance ---------------------------------------------------------------


@pytest.fixture(scope="module")
def turtle():
    c = math.cos(math.radians(10))
    n_mc = 200
    theory, mc = {}, {}
    for N in (10, 50, 200):
        i = np.arange(N)
        theory[N] = (c ** np.abs(i[:, None] - i[None])).sum()
        zz = procedural.sample_z(n_mc, N, generator=torch.Generator().manual_seed(N))
        mc[N] = np.mean([np.sum(procedural.turtle_path(z)[-1] ** 2) for z in zz])
    return n_mc, theory, mc


def test_turtle_distance(turtle, capsys):
    n_mc, theory, mc = turtle
    v = verdict(
        "ch02-turtle-distance", capsys, n_mc=n_mc, theory=theory, monte_carlo=mc
    )
    assert v and "standard errors" in v.message
    # n_mc may also be given per N
    per_n = {N: n_mc for N in mc}
    assert verdict(
        "ch02-turtle-distance", capsys, n_mc=per_n, theory=theory, monte_carlo=mc
    )
    c_rad = math.cos(10)  # radians, not degrees
    wrong = [
        dict(theory={N: 0.0 for N in theory}, monte_carlo=mc),  # zeros
        dict(theory={N: float(N) for N in theory}, monte_carlo=mc),  # independent steps
        dict(
            theory={
                N: sum(c_rad ** abs(i - j) for i in range(N) for j in range(N))
                for N in (10, 50, 200)
            },
            monte_carlo=mc,
        ),
        dict(theory=theory, monte_carlo={N: math.sqrt(v) for N, v in mc.items()}),
        dict(theory=theory, monte_carlo={N: 0.0 for N in mc}),
        dict(theory=theory, monte_carlo=dict(zip(mc, reversed(mc.values())))),
        dict(theory=theory, monte_carlo={N: 2 * v for N, v in mc.items()}),
        dict(theory={10: theory[10]}, monte_carlo={10: mc[10]}),  # N missing
    ]
    for w in wrong:
        not_yet("ch02-turtle-distance", capsys, n_mc=n_mc, **w)
    v = not_yet("ch02-turtle-distance", capsys, n_mc=5, theory=theory, monte_carlo=mc)
    assert "hundred" in v.message
    with pytest.raises(TypeError, match="dict"):
        exercises.check("ch02-turtle-distance", n_mc=n_mc, theory=3.0, monte_carlo=mc)
    with pytest.raises(TypeError, match="number of simulated paths"):
        exercises.check(
            "ch02-turtle-distance", n_mc="300", theory=theory, monte_carlo=mc
        )
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check(
            "ch02-turtle-distance",
            n_mc=n_mc,
            theory={N: "big" for N in theory},
            monte_carlo=mc,
        )


# --- ch02-five-kind ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def plants():
    out = []
    for seed in range(4):
        rolls = procedural.roll_dice(600, generator=torch.Generator().manual_seed(seed))
        out.append((rolls, procedural.grow_plant(rolls, max_depth=8)))
    return out


def test_five_kind(plants, capsys):
    p5 = 6 / 7776
    needed = {t: math.ceil(math.log(1 - t) / math.log(1 - p5)) for t in (0.5, 0.95)}
    p_none = [(1 - p5) ** pl["rolls_used"] for _, pl in plants]
    v = verdict(
        "ch02-five-kind", capsys, plants=plants, rolls_needed=needed, p_none=p_none
    )
    assert v and str(needed[0.5]) in v.message
    # the Poisson approximation (n ~ -log(1 - t) / p, rounded up) is a fair answer too
    approx = {t: math.ceil(-math.log(1 - t) / p5) for t in (0.5, 0.95)}
    assert verdict(
        "ch02-five-kind", capsys, plants=plants, rolls_needed=approx, p_none=p_none
    )
    one_outcome = {  # only 6-6-6-6-6 counted (p = 1/7776)
        t: math.ceil(math.log(1 - t) / math.log(1 - 1 / 7776)) for t in (0.5, 0.95)
    }
    wrong = [
        dict(rolls_needed={0.5: 0, 0.95: 0}, p_none=p_none),  # zeros
        dict(rolls_needed={0.5: 648, 0.95: 1231}, p_none=p_none),  # target / p
        dict(rolls_needed=one_outcome, p_none=p_none),
        dict(rolls_needed={0.5: 897.97, 0.95: 3881}, p_none=p_none),  # not rounded
        dict(rolls_needed={0.5: needed[0.5]}, p_none=p_none),  # 95% missing
        dict(rolls_needed=needed, p_none=[1 - p for p in p_none]),  # at least one
        dict(rolls_needed=needed, p_none=[0.0] * len(p_none)),  # zeros
        dict(rolls_needed=needed, p_none=p_none[::-1]),  # another order
        dict(rolls_needed=needed, p_none=[p**6 for p in p_none]),  # off by a factor
    ]
    for w in wrong:
        not_yet("ch02-five-kind", capsys, plants=plants, **w)
    v = not_yet(
        "ch02-five-kind",
        capsys,
        plants=plants,
        rolls_needed=needed,
        p_none=[1 - p for p in p_none],
    )
    assert "NEVER" in v.message
    with pytest.raises(ValueError, match="one probability per plant"):
        exercises.check(
            "ch02-five-kind", plants=plants, rolls_needed=needed, p_none=p_none[:2]
        )
    with pytest.raises(TypeError, match="rolls, plant"):
        exercises.check("ch02-five-kind", plants=[1, 2], rolls_needed=needed, p_none=[])
    with pytest.raises(TypeError, match="dict"):
        exercises.check(
            "ch02-five-kind", plants=plants, rolls_needed=[898, 3881], p_none=p_none
        )


# --- ch02-average -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    x_train, y_train = data.digits("train")
    x_test, _ = data.digits("test")
    return x_train, y_train, x_test


def test_average(digits, capsys):
    x_train, y_train, x_test = digits
    g = torch.Generator().manual_seed(1)
    avg = []
    for _ in range(150):
        k = int(torch.randint(10, (1,), generator=g))
        pool = x_train[y_train == k]
        a, b = pool[torch.randint(len(pool), (2,), generator=g)]
        avg.append((a + b) / 2)
    avg = torch.stack(avg)

    def nn_dist(x):
        return torch.cdist(x.flatten(1), x_train.flatten(1)).min(1).values

    d_avg = nn_dist(avg)
    thresh = torch.quantile(nn_dist(x_test), 0.01)
    rate = 100 * (d_avg < thresh).float().mean().item()
    fdd = metrics.frechet_digit_distance(avg)
    common = dict(avg=avg, x_train=x_train, x_test=x_test)
    ok = dict(d_avg=d_avg, fdd_avg=fdd, copy_rate_avg=rate)
    v = verdict("ch02-average", capsys, **common, **ok)
    assert v and "FDD" in v.message
    assert verdict("ch02-average", capsys, **common, **ok | {"d_avg": d_avg.median()})
    wrong = [
        ok | {"d_avg": torch.zeros_like(d_avg)},  # zeros
        ok | {"d_avg": d_avg**2},  # squared distances
        ok | {"d_avg": nn_dist(x_test)[:150]},  # the test digits' distances
        ok | {"fdd_avg": 0.0},
        ok | {"fdd_avg": metrics.frechet_digit_distance(x_train)},  # another row's FDD
        ok | {"copy_rate_avg": rate / 100},  # a fraction, not a percentage
        ok | {"copy_rate_avg": 100 - rate},  # the complement
    ]
    for w in wrong:
        not_yet("ch02-average", capsys, **common, **w)
    v = not_yet("ch02-average", capsys, **common, **ok | {"copy_rate_avg": rate / 100})
    assert "percentage" in v.message
    # the memoriser: its "averages" are training digits themselves
    copies = x_train[:150]
    v = not_yet(
        "ch02-average",
        capsys,
        avg=copies,
        x_train=x_train,
        x_test=x_test,
        d_avg=nn_dist(copies),
        fdd_avg=metrics.frechet_digit_distance(copies),
        copy_rate_avg=100.0,
    )
    assert "ARE training digits" in v.message
    with pytest.raises(ValueError, match="values in"):
        exercises.check("ch02-average", **common | {"avg": avg * 255}, **ok)
    with pytest.raises(TypeError, match="torch.Tensor"):
        exercises.check("ch02-average", **common | {"avg": avg.numpy()}, **ok)
    with pytest.raises(ValueError, match="one distance per sample"):
        exercises.check("ch02-average", **common, **ok | {"d_avg": d_avg[:10]})
