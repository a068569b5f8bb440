"""lib.exercises.ch05: chapter 5's checkers (reference answers pass, wrong ones get a hint).

The reference answers are computed here the way a student would (as the hidden solutions
do), on small synthetic inputs or tiny untrained networks; never with the checker's code.
"""

import math

import pytest
import torch
from torch import nn

from lib import data, diffusion, exercises, gan, metrics, nets, train
from exercise_testing import verdict


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)
    return v


def test_chapter5_checkers_are_registered():
    labels = set(exercises.labels())
    assert {
        "ch05-cosine",
        "ch05-x0",
        "ch05-cfg",
        "ch05-variance",
        "ch05-interp",
        "ch05-copy",
        "ch05-longer",
    } <= labels


# --- ch05-cosine ------------------------------------------------------------------------


def cosine_abar(T=1000, s=0.008, square=True, offset=True):
    tt = torch.arange(T + 1, dtype=torch.float64)
    c = torch.cos((tt / T + (s if offset else 0)) / (1 + s) * math.pi / 2)
    f = c**2 if square else c.abs()
    abar = f / f[0]
    beta = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - beta, 0)])


def test_ch05_cosine(capsys):
    abar = cosine_abar()
    v = verdict("ch05-cosine", capsys, my_abar=abar, high_snr="cosine")
    assert v and "matches" in v.message
    # t = 1 .. T only, in float32, is a correct answer too
    assert verdict("ch05-cosine", capsys, my_abar=abar[1:].float(), high_snr="cosine")
    wrong = [
        dict(my_abar=abar, high_snr="linear"),  # the wrong reading of the plot
        dict(my_abar=cosine_abar(offset=False), high_snr="cosine"),  # s forgotten
        dict(my_abar=cosine_abar(square=False), high_snr="cosine"),  # no square
        dict(my_abar=torch.zeros(1001, dtype=torch.float64), high_snr="cosine"),
        dict(my_abar=abar.flip(0), high_snr="cosine"),  # reversed
        dict(my_abar=abar * 2, high_snr="cosine"),  # off by a factor
    ]
    for w in wrong:
        not_yet("ch05-cosine", capsys, **w)
    with pytest.raises(ValueError, match="high_snr"):
        exercises.check("ch05-cosine", my_abar=abar, high_snr="cos")
    with pytest.raises(TypeError, match="torch.Tensor"):
        exercises.check("ch05-cosine", my_abar=abar.tolist(), high_snr="cosine")
    with pytest.raises(TypeError, match="floating-point"):
        exercises.check(
            "ch05-cosine", my_abar=torch.ones(5, dtype=torch.long), high_snr="cosine"
        )


# --- ch05-x0 ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moons_x0():
    """A small x0-predicting MLP trained briefly, as the solution does (smaller, T = 50)."""
    sched = diffusion.linear_schedule(50)
    x_train = data.toy2d("moons", 1000, seed=10)
    x_held = data.toy2d("moons", 400, seed=11)
    torch.manual_seed(1)
    net = nets.MLPDenoiser(dim=2, hidden=32, layers=2)
    g = torch.Generator().manual_seed(1)

    def x0_loss(xb):
        t = torch.randint(1, sched.T + 1, (len(xb),), generator=g)
        xt = diffusion.q_sample(sched, xb, t, generator=g)
        return (net(xt, t) - xb).pow(2).mean()

    train.fit(
        net, x0_loss, x_train, 30, batch_size=128, generator=g, lr=5e-3, desc="x0"
    )
    return sched, x_held, net


def test_ch05_x0(moons_x0, capsys):
    sched, x_held, net = moons_x0
    abars = sched.alpha_bars.float()

    def eps_from_x0(x, t):
        ab = abars[t][:, None]
        return (x - ab.sqrt() * net(x, t)) / (1 - ab).sqrt()

    s_x0 = diffusion.ddpm_sample(
        eps_from_x0, sched, (200, 2), generator=torch.Generator().manual_seed(2)
    )
    sw_x0 = metrics.sliced_wasserstein(s_x0, x_held)
    common = dict(x0net=net, sched2d=sched, x_held=x_held, s_x0=s_x0)
    assert verdict("ch05-x0", capsys, **common, eps_from_x0=eps_from_x0, sw_x0=sw_x0)

    def eps_alpha_not_bar(x, t):  # alpha_t instead of alpha_bar_t
        a = sched.alphas.float()[t][:, None]
        return (x - a.sqrt() * net(x, t)) / (1 - a).sqrt()

    def eps_no_scale(x, t):  # forgot the division
        return x - abars[t][:, None].sqrt() * net(x, t)

    for f in (eps_alpha_not_bar, eps_no_scale, lambda x, t: torch.zeros_like(x)):
        not_yet("ch05-x0", capsys, **common, eps_from_x0=f, sw_x0=sw_x0)
    for sw in (0.0, sw_x0 * 2, sw_x0**2):
        not_yet("ch05-x0", capsys, **common, eps_from_x0=eps_from_x0, sw_x0=sw)
    # an untrained network, or one that returns its noisy input, does not predict x0
    torch.manual_seed(0)
    untrained = nets.MLPDenoiser(dim=2, hidden=32, layers=2)
    for x0net in (untrained, lambda x, t: x):

        def convert(x, t, x0net=x0net):
            ab = abars[t][:, None]
            return (x - ab.sqrt() * x0net(x, t)) / (1 - ab).sqrt()

        v = not_yet(
            "ch05-x0",
            capsys,
            **{**common, "x0net": x0net},
            eps_from_x0=convert,
            sw_x0=sw_x0,
        )
        assert "data mean" in v.message
    with pytest.raises(TypeError, match="Schedule"):
        exercises.check(
            "ch05-x0", **{**common, "sched2d": 50}, eps_from_x0=eps_from_x0, sw_x0=sw_x0
        )
    with pytest.raises(TypeError, match="function or a network"):
        exercises.check("ch05-x0", **common, eps_from_x0=None, sw_x0=sw_x0)
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check("ch05-x0", **common, eps_from_x0=eps_from_x0, sw_x0="0.1")


# --- ch05-cfg ---------------------------------------------------------------------------


class CondMLP(nn.Module):
    """A conditional MLP denoiser: label 2 = no label (untrained is enough here)."""

    def __init__(self):
        super().__init__()
        self.net = nets.MLPDenoiser(dim=2, hidden=32, layers=2)
        self.label = nn.Embedding(3, self.net.t_dim)

    def forward(self, x, t, y=None):
        y = torch.full((len(x),), 2) if y is None else y
        emb = nets.sinusoidal_embedding(t, self.net.t_dim) + self.label(y)
        h = self.net.inp(x)
        for lin, tp in zip(self.net.hidden, self.net.t_proj):
            h = lin(torch.nn.functional.silu(h + tp(emb)))
        return self.net.out(torch.nn.functional.silu(h))


def test_ch05_cfg(capsys):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    # two labelled clusters stand in for the two moons
    y_c = torch.randint(0, 2, (400,), generator=g)
    x_c = torch.randn(400, 2, generator=g) * 0.3 + torch.stack(
        [y_c * 2.0 - 1.0, torch.zeros(400)], 1
    )
    cnet = CondMLP()
    # samples that drift onto cluster 0 as w grows (what guidance should do)
    guided_samples = {
        w: torch.tensor([-0.5, 0.0]) * min(w, 2)
        + torch.randn(100, 2, generator=g) * 0.5
        for w in (0.0, 1.0, 3.0)
    }

    def pct(s):
        lab = y_c[torch.cdist(s, x_c).argmin(1)]
        return (lab == 0).float().mean().item() * 100

    on_moon0 = {w: pct(s) for w, s in guided_samples.items()}
    common = dict(cnet=cnet, x_c=x_c, y_c=y_c, guided_samples=guided_samples)
    v = verdict("ch05-cfg", capsys, **common, on_moon0=on_moon0)
    assert v and "w = 3" in v.message
    wrong = [
        {w: p / 100 for w, p in on_moon0.items()},  # fractions, not percent
        {w: 0.0 for w in on_moon0},  # zeros
        dict(zip(on_moon0, reversed(on_moon0.values()))),  # shuffled
        {w: 100 - p for w, p in on_moon0.items()},  # the other moon
    ]
    for w in wrong:
        not_yet("ch05-cfg", capsys, **common, on_moon0=w)
    # only two scales
    two = {w: s for w, s in guided_samples.items() if w < 3}
    not_yet(
        "ch05-cfg",
        capsys,
        cnet=cnet,
        x_c=x_c,
        y_c=y_c,
        guided_samples=two,
        on_moon0={w: on_moon0[w] for w in two},
    )
    # a network that ignores the label
    blind = nets.MLPDenoiser(dim=2, hidden=32, layers=2)
    v = not_yet(
        "ch05-cfg",
        capsys,
        cnet=lambda x, t, y=None: blind(x, t),
        x_c=x_c,
        y_c=y_c,
        guided_samples=guided_samples,
        on_moon0=on_moon0,
    )
    assert "label" in v.message
    with pytest.raises(TypeError, match="dict"):
        exercises.check("ch05-cfg", **common, on_moon0=list(on_moon0.values()))
    with pytest.raises(ValueError, match="same keys"):
        exercises.check("ch05-cfg", **common, on_moon0={0.0: 50.0, 1.0: 60.0})


# --- digits: ch05-variance, ch05-interp, ch05-copy, ch05-longer --------------------------


@pytest.fixture(scope="module")
def digit_sets():
    x_train, _ = data.digits("train")
    x_test, _ = data.digits("test")
    x8, _ = data.digits("train", size=8)
    return x_train, x_test, x8


def fake_samples(x8, n, noise, seed):
    """'Samples': real 8x8 digits plus noise, upsampled to 16x16 and clipped, as show16 does."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(x8), generator=g)[:n]
    x = x8[pick] + noise * torch.randn(x8[pick].shape, generator=g)
    return data.upsample_digits(x.clamp(-1, 1))


def test_ch05_variance(digit_sets, capsys):
    _, _, x8 = digit_sets
    var_samples = {
        "beta": fake_samples(x8, 48, 0.3, 0),  # more noise per step: speckle
        "beta_tilde": fake_samples(x8, 48, 0.05, 0),
    }
    var_fdd = {c: metrics.frechet_digit_distance(s) for c, s in var_samples.items()}
    better = min(var_fdd, key=var_fdd.get)
    assert better == "beta_tilde"
    v = verdict(
        "ch05-variance", capsys, var_samples=var_samples, var_fdd=var_fdd, better=better
    )
    assert v and "beta_tilde" in v.message
    wrong = [
        dict(var_fdd=var_fdd, better="beta"),  # the wrong conclusion
        dict(var_fdd={c: 0.0 for c in var_fdd}, better=better),  # zeros
        dict(
            var_fdd=dict(zip(var_fdd, reversed(var_fdd.values()))), better=better
        ),  # swapped
        dict(var_fdd={c: 2 * f for c, f in var_fdd.items()}, better=better),
    ]
    for w in wrong:
        not_yet("ch05-variance", capsys, var_samples=var_samples, **w)
    same = {"beta": var_samples["beta"], "beta_tilde": var_samples["beta"]}
    not_yet(
        "ch05-variance",
        capsys,
        var_samples=same,
        var_fdd={c: var_fdd["beta"] for c in same},
        better="beta",
    )
    with pytest.raises(ValueError, match="keys"):
        exercises.check(
            "ch05-variance",
            var_samples={"beta": var_samples["beta"]},
            var_fdd=var_fdd,
            better=better,
        )
    with pytest.raises(ValueError, match="8x8"):
        exercises.check(
            "ch05-variance",
            var_samples={"beta": x8[:10], "beta_tilde": x8[10:20]},
            var_fdd=var_fdd,
            better=better,
        )
    with pytest.raises(ValueError, match="better"):
        exercises.check(
            "ch05-variance", var_samples=var_samples, var_fdd=var_fdd, better="c"
        )


class TinyDenoiser(nn.Module):
    """An untrained conv net standing in for the U-Net (DDIM only needs eps(x, t, y))."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, t, y=None):
        return self.conv(x) * (t.float()[:, None, None, None] / 100)


def test_ch05_interp(capsys):
    g = torch.Generator().manual_seed(0)
    xT = torch.randn(2, 1, 8, 8, generator=g)
    z0, z1 = xT[0].flatten(), xT[1].flatten()
    lam = torch.linspace(0, 1, 10)
    theta = torch.arccos(z0 @ z1 / (z0.norm() * z1.norm()))
    zs = (
        torch.sin((1 - lam) * theta)[:, None] / torch.sin(theta) * z0
        + torch.sin(lam * theta)[:, None] / torch.sin(theta) * z1
    )
    sched = diffusion.linear_schedule(100)
    torch.manual_seed(0)
    model = TinyDenoiser()

    def decode(z):
        return diffusion.ddim_sample(
            model, sched, steps=5, x_T=z.reshape(-1, 1, 8, 8), clip_x0=True
        )

    walk = decode(zs)
    v = verdict("ch05-interp", capsys, z0=z0, z1=z1, zs=zs, walk=walk)
    assert v and "on the arc" in v.message
    # the library's slerp, unevenly spaced, is just as right
    zs2 = gan.slerp(z0, z1, torch.tensor([0.0, 0.1, 0.5, 0.6, 1.0]))
    assert verdict("ch05-interp", capsys, z0=z0, z1=z1, zs=zs2, walk=decode(zs2))
    lerp = (1 - lam)[:, None] * z0 + lam[:, None] * z1
    wrong = [
        dict(zs=lerp, walk=decode(lerp)),  # linear, not spherical
        dict(zs=zs.flip(0), walk=walk.flip(0)),  # from z1 to z0
        dict(zs=zs[torch.randperm(10, generator=g)], walk=walk),  # shuffled
        dict(zs=zs * 2, walk=walk),  # off by a factor
        dict(zs=zs[[0, -1]], walk=walk[[0, -1]]),  # only the two ends
        dict(zs=zs, walk=torch.zeros_like(walk)),  # nothing decoded
    ]
    for w in wrong:
        not_yet("ch05-interp", capsys, z0=z0, z1=z1, **w)
    with pytest.raises(ValueError, match="one decoded image"):
        exercises.check("ch05-interp", z0=z0, z1=z1, zs=zs, walk=walk[:5])
    with pytest.raises(ValueError, match="one noise"):
        exercises.check("ch05-interp", z0=z0, z1=z1, zs=zs[:, :10], walk=walk)
    with pytest.raises(TypeError, match="torch.Tensor"):
        exercises.check("ch05-interp", z0=z0.tolist(), z1=z1, zs=zs, walk=walk)


def test_ch05_copy(digit_sets, capsys):
    x_train, x_test, x8 = digit_sets

    def median_nn(x):
        return torch.cdist(x.flatten(1), x_train.flatten(1)).min(1).values.median()

    s_ddpm = fake_samples(x8, 48, 0.4, 1)  # noisy: farther from the training set
    d_s, d_t = median_nn(s_ddpm), median_nn(x_test)
    common = dict(s_ddpm=s_ddpm, x_train=x_train, x_test=x_test)
    v = verdict("ch05-copy", capsys, **common, d_samples=d_s, d_test=d_t, copies=False)
    assert v and "no sign of copying" in v.message
    copied = x_train[:48]  # a model that returns its training digits
    assert verdict(
        "ch05-copy",
        capsys,
        s_ddpm=copied,
        x_train=x_train,
        x_test=x_test,
        d_samples=median_nn(copied),
        d_test=d_t,
        copies=True,
    )
    wrong = [
        dict(d_samples=d_s, d_test=d_t, copies=True),  # wrong conclusion
        dict(d_samples=0.0, d_test=0.0, copies=False),  # zeros
        dict(d_samples=d_s**2, d_test=d_t**2, copies=False),  # squared distances
        dict(d_samples=d_t, d_test=d_s, copies=False),  # swapped
    ]
    for w in wrong:
        not_yet("ch05-copy", capsys, **common, **w)
    with pytest.raises(TypeError, match="True or False"):
        exercises.check("ch05-copy", **common, d_samples=d_s, d_test=d_t, copies=0)
    with pytest.raises(ValueError, match="8x8"):
        exercises.check(
            "ch05-copy",
            s_ddpm=x8[:10],
            x_train=x_train,
            x_test=x_test,
            d_samples=d_s,
            d_test=d_t,
            copies=False,
        )


def test_ch05_longer(digit_sets, capsys):
    _, _, x8 = digit_sets
    before = fake_samples(x8, 48, 0.3, 2)
    after = fake_samples(x8, 48, 0.1, 2)  # the same digits, less noise after training
    fdd_b = metrics.frechet_digit_distance(before)
    fdd_a = metrics.frechet_digit_distance(after)
    v = verdict(
        "ch05-longer",
        capsys,
        before=before,
        after=after,
        fdd_before=fdd_b,
        fdd_after=fdd_a,
    )
    assert v and "down" in v.message
    wrong = [
        dict(before=before, after=after, fdd_before=fdd_a, fdd_after=fdd_b),  # swapped
        dict(before=before, after=after, fdd_before=0.0, fdd_after=0.0),  # zeros
        dict(before=before, after=after, fdd_before=fdd_b, fdd_after=fdd_a * 10),
        dict(
            before=before, after=before, fdd_before=fdd_b, fdd_after=fdd_b
        ),  # no change
        dict(before=before, after=after[:24], fdd_before=fdd_b, fdd_after=fdd_a),
    ]
    for w in wrong:
        not_yet("ch05-longer", capsys, **w)
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check(
            "ch05-longer", before=before, after=after, fdd_before=None, fdd_after=fdd_a
        )
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        exercises.check(
            "ch05-longer",
            before=(before + 1) * 127.5,
            after=after,
            fdd_before=fdd_b,
            fdd_after=fdd_a,
        )
