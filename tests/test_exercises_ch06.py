"""lib.exercises.ch06: each checker passes the reference answer and turns wrong ones down.

Reference answers are computed here the way the hidden solutions compute them (with
lib.metrics on the run's own samples), on small synthetic stand-ins for the trained
networks: random generators and discriminators, hand-made ring samples and fakes.
"""

import pytest
import torch
from torch import nn

from lib import data, exercises, gan, metrics
from exercise_testing import verdict


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and len(v.message) > 30, v
    return v


def test_chapter_6_registers_its_seven_checks():
    assert {
        "ch06-lsgan-hinge",
        "ch06-minibatch-std",
        "ch06-saturating",
        "ch06-shell",
        "ch06-feature-inversion",
        "ch06-mapping",
        "ch06-no-label",
    } <= set(exercises.labels())


# --- 6.1: the ring and the 1-D game ---------------------------------------------------


def ring_like(n_modes, hq_share, seed):
    """2,500 points: a share on the first n_modes modes (sigma 0.01), the rest in between."""
    g = torch.Generator().manual_seed(seed)
    centres = data.ring8_centres()
    n_good = int(2500 * hq_share)
    on = centres[torch.arange(n_good) % n_modes] + 0.005 * torch.randn(
        n_good, 2, generator=g
    )
    angle = 2 * torch.pi * (torch.rand(2500 - n_good, generator=g) * 8 + 0.5) / 8
    off = 0.8 * torch.stack(
        [angle.cos(), angle.sin()], 1
    )  # inside the ring, far from modes
    return torch.cat([on, off])


def coverage(samples):
    r = metrics.mode_coverage(samples)
    return r["modes"], r["high_quality"]


def test_ch06_lsgan_hinge(capsys):
    samples = {"lsgan": ring_like(5, 0.4, 1), "hinge": ring_like(3, 0.2, 2)}
    modes, hq = {}, {}
    for k, s in samples.items():
        modes[k], hq[k] = coverage(s)
    assert (modes, {k: round(v) for k, v in hq.items()}) == (
        {"lsgan": 5, "hinge": 3},
        {"lsgan": 40, "hinge": 20},
    )
    v = verdict(
        "ch06-lsgan-hinge",
        capsys,
        ring_samples=samples,
        modes_covered=modes,
        high_quality=hq,
    )
    assert v and "lsgan 5 of 8 modes, 40.0 %" in v.message
    swapped = {"lsgan": modes["hinge"], "hinge": modes["lsgan"]}
    wrong = [
        dict(modes_covered=swapped, high_quality=hq),  # shuffled
        dict(modes_covered={"lsgan": 0, "hinge": 0}, high_quality=hq),  # zeros
        dict(
            modes_covered={"lsgan": 8, "hinge": 8}, high_quality=hq
        ),  # nearest centre only
        dict(modes_covered=modes, high_quality={k: v / 100 for k, v in hq.items()}),
        dict(modes_covered=modes, high_quality={"lsgan": 0.0, "hinge": 0.0}),
        dict(
            modes_covered=modes,
            high_quality={"lsgan": hq["hinge"], "hinge": hq["lsgan"]},
        ),
    ]
    for w in wrong:
        not_yet("ch06-lsgan-hinge", capsys, ring_samples=samples, **w)
    v = not_yet(
        "ch06-lsgan-hinge",
        capsys,
        ring_samples=samples,
        modes_covered=modes,
        high_quality={k: v / 100 for k, v in hq.items()},
    )
    assert "percentage" in v.message
    same = {"lsgan": samples["lsgan"], "hinge": samples["lsgan"]}
    not_yet(
        "ch06-lsgan-hinge",
        capsys,
        ring_samples=same,
        modes_covered={"lsgan": 5, "hinge": 5},
        high_quality={"lsgan": hq["lsgan"], "hinge": hq["lsgan"]},
    )
    few = {k: s[:1000] for k, s in samples.items()}
    assert (
        "2,500"
        in not_yet(
            "ch06-lsgan-hinge",
            capsys,
            ring_samples=few,
            modes_covered=modes,
            high_quality=hq,
        ).message
    )
    with pytest.raises(TypeError, match="dict"):
        exercises.check(
            "ch06-lsgan-hinge", ring_samples=samples, modes_covered=5, high_quality=hq
        )
    with pytest.raises(ValueError, match="missing: 'hinge'"):
        exercises.check(
            "ch06-lsgan-hinge",
            ring_samples=samples,
            modes_covered={"lsgan": 5},
            high_quality=hq,
        )
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        exercises.check(
            "ch06-lsgan-hinge",
            ring_samples={k: torch.zeros(2500, 3) for k in samples},
            modes_covered=modes,
            high_quality=hq,
        )


class MinibatchStd(nn.Module):
    """As an exercise solution would write it: each sample plus the batch's mean std."""

    def __init__(self, hidden=16):
        super().__init__()
        self.net = gan.mlp([3, hidden, hidden, 1], act=lambda: nn.LeakyReLU(0.2))

    def forward(self, x):
        std = x.std(0).mean().expand(len(x), 1)
        return self.net(10 * torch.cat([x, std], 1)).squeeze(1)


class LastSampleAsFeature(MinibatchStd):
    """Batch-dependent, but through one sample (the last), not the whole batch."""

    def forward(self, x):
        return self.net(10 * torch.cat([x, x[-1:, :1].expand(len(x), 1)], 1)).squeeze(1)


def test_ch06_minibatch_std(capsys):
    torch.manual_seed(0)
    D = MinibatchStd()
    samples = ring_like(6, 0.3, 3)
    m, h = coverage(samples)
    answer = {"mbstd_samples": samples, "mbstd_modes": m, "mbstd_high_quality": h}
    assert verdict("ch06-minibatch-std", capsys, D=D, **answer)
    per_sample = gan.MLPDiscriminator(2, 16, 2, scale=10.0)  # the plain GAN's D
    v = not_yet("ch06-minibatch-std", capsys, D=per_sample, **answer)
    assert "on its own" in v.message
    v = not_yet("ch06-minibatch-std", capsys, D=LastSampleAsFeature(), **answer)
    assert "reorder" in v.message
    three = nn.Sequential(nn.Linear(2, 3))  # not one logit per sample
    not_yet("ch06-minibatch-std", capsys, D=three, **answer)
    for modes, hq in [
        (0, h),  # zeros
        (m, h / 100),  # a fraction
        (8, 100.0),  # the real ring's numbers
    ]:
        not_yet(
            "ch06-minibatch-std",
            capsys,
            D=D,
            mbstd_samples=samples,
            mbstd_modes=modes,
            mbstd_high_quality=hq,
        )
    with pytest.raises(TypeError, match="nn.Module"):
        exercises.check("ch06-minibatch-std", D=lambda x: x, **answer)


def biased_d(bias):
    torch.manual_seed(1)
    D = gan.MLPDiscriminator(1, 8, 1)
    with torch.no_grad():
        D.net[-1].bias.fill_(bias)
    return D


def test_ch06_saturating(capsys):
    g = torch.Generator().manual_seed(4)
    fakes = {
        "saturating": -4 + 0.3 * torch.randn(20000, generator=g),  # stuck far away
        "nonsaturating": 1.8 + 0.6 * torch.randn(20000, generator=g),
    }
    ds = {"saturating": biased_d(-2.0), "nonsaturating": biased_d(1.5)}
    real = 2 + 0.5 * torch.randn(20000, generator=torch.Generator().manual_seed(8))
    dg, w1 = {}, {}
    for k, f in fakes.items():
        with torch.no_grad():
            dg[k] = float(torch.sigmoid(ds[k](f[:, None])).mean())
        w1[k] = float((f.sort().values - real.sort().values).abs().mean())
    assert w1["saturating"] > 5 and w1["nonsaturating"] < 1
    common = dict(fakes=fakes, discriminators=ds)
    assert verdict("ch06-saturating", capsys, mean_d_of_g=dg, w1_to_data=w1, **common)
    swap = lambda d: {
        "saturating": d["nonsaturating"],
        "nonsaturating": d["saturating"],
    }
    zeros = {"saturating": 0.0, "nonsaturating": 0.0}
    wrong = [
        dict(mean_d_of_g=swap(dg), w1_to_data=w1),  # shuffled
        dict(mean_d_of_g=dg, w1_to_data=swap(w1)),
        dict(mean_d_of_g=zeros, w1_to_data=w1),  # zeros
        dict(mean_d_of_g=dg, w1_to_data=zeros),
        dict(mean_d_of_g={k: 1 - v for k, v in dg.items()}, w1_to_data=w1),  # P(fake)
        dict(mean_d_of_g=dg, w1_to_data={k: v**2 for k, v in w1.items()}),
    ]
    for w in wrong:
        not_yet("ch06-saturating", capsys, **common, **w)
    with torch.no_grad():
        logit = {k: float(ds[k](f[:, None]).mean()) for k, f in fakes.items()}
    assert (
        "probability"
        in not_yet(
            "ch06-saturating", capsys, mean_d_of_g=logit, w1_to_data=w1, **common
        ).message
    )
    same = {"saturating": fakes["saturating"], "nonsaturating": fakes["saturating"]}
    dsame = {"saturating": ds["saturating"], "nonsaturating": ds["saturating"]}
    not_yet(
        "ch06-saturating",
        capsys,
        mean_d_of_g={k: dg["saturating"] for k in dg},
        w1_to_data={k: w1["saturating"] for k in w1},
        fakes=same,
        discriminators=dsame,
    )
    with pytest.raises(ValueError, match="missing: 'nonsaturating'"):
        exercises.check(
            "ch06-saturating",
            mean_d_of_g={"saturating": 0.1},
            w1_to_data=w1,
            **common,
        )
    with pytest.raises(TypeError, match="number"):
        exercises.check(
            "ch06-saturating",
            mean_d_of_g={k: "0.5" for k in dg},
            w1_to_data=w1,
            **common,
        )


# --- 6.2: DCGAN and its latent space --------------------------------------------------


class ToyG(nn.Module):
    """A stand-in for a trained conditional generator G(z, y): the class's mean digit,
    as faint as the code is short, plus a fixed random projection of the code."""

    num_classes = 10

    def __init__(self, z_dim=8):
        super().__init__()
        x, y = data.digits("train")
        self.register_buffer(
            "means", torch.stack([x[y == k].mean(0) for k in range(10)])
        )
        torch.manual_seed(2)
        self.proj = nn.Linear(z_dim, 256)

    def forward(self, z, y):
        r = z.norm(dim=1) / z.shape[1] ** 0.5
        x = self.means[y] * r[:, None, None, None] + 0.3 * self.proj(z).view(
            -1, 1, 16, 16
        )
        return x.clamp(-1, 1)


@pytest.fixture(scope="module")
def small_g():
    return ToyG()


def test_ch06_shell(small_g, capsys):
    z = torch.randn(150, 8, generator=torch.Generator().manual_seed(11))
    y = torch.arange(150) % 10
    fdd = {}
    for s in (0.25, 0.5, 0.75, 1, 1.5):  # an int key for the scale 1 is fine
        with torch.no_grad():
            fdd[s] = metrics.frechet_digit_distance(small_g(s * z, y))
    assert fdd[0.25] > 1.2 * fdd[1]
    common = dict(G=small_g, z_base=z, y_base=y)
    v = verdict("ch06-shell", capsys, **common, fdd_by_scale=fdd)
    assert v and "lowest at s =" in v.message
    unscaled = {s: fdd[1] for s in fdd}  # the codes were never scaled
    wrong = [
        unscaled,
        {s: 0.0 for s in fdd},  # zeros
        dict(zip(fdd, reversed(fdd.values()))),  # shuffled
        {s: 2 * f for s, f in fdd.items()},  # off by a factor
    ]
    for w in wrong:
        not_yet("ch06-shell", capsys, **common, fdd_by_scale=w)
    with pytest.raises(ValueError, match="missing: 1.5"):
        exercises.check(
            "ch06-shell",
            **common,
            fdd_by_scale={s: f for s, f in fdd.items() if s < 1.2},
        )
    with pytest.raises(TypeError, match="dict"):
        exercises.check("ch06-shell", **common, fdd_by_scale=list(fdd.values()))
    with pytest.raises(ValueError, match="one label per code"):
        exercises.check(
            "ch06-shell", G=small_g, z_base=z, y_base=y[:10], fdd_by_scale=fdd
        )


def test_ch06_feature_inversion(capsys):
    x, y = data.digits("test")
    x, y = x[:16], y[:16]
    g = torch.Generator().manual_seed(5)
    x_pixel = (x + 1.2 * torch.randn(x.shape, generator=g)).clamp(
        -1, 1
    )  # often misread
    x_feat = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    net = metrics.digit_feature_net()
    names = ("pixel loss", "pixel + feature loss")
    with torch.no_grad():
        truth = net(x).argmax(1)
        kept, by_label = {}, {}
        for name, r in zip(names, (x_pixel, x_feat)):
            kept[name] = float((net(r).argmax(1) == truth).float().mean() * 100)
            by_label[name] = float((net(r).argmax(1) == y).float().mean() * 100)
    assert kept["pixel loss"] < kept["pixel + feature loss"]
    common = {"x_target": x, "y_target": y, "x_pixel": x_pixel, "x_feat": x_feat}
    v = verdict("ch06-feature-inversion", capsys, **common, class_kept=kept)
    assert v and "held-out digits" in v.message
    # measured against the true labels instead of the classifier's reading: also right
    assert verdict("ch06-feature-inversion", capsys, **common, class_kept=by_label)
    wrong = [
        dict(zip(names, reversed(kept.values()))),  # swapped
        dict.fromkeys(names, 0.0),  # zeros
        {k: v / 100 for k, v in kept.items()},  # a fraction
    ]
    for w in wrong:
        not_yet("ch06-feature-inversion", capsys, **common, class_kept=w)
    assert (
        "percentage"
        in not_yet(
            "ch06-feature-inversion", capsys, **common, class_kept=wrong[-1]
        ).message
    )
    for xp, xf in [(x_pixel, x_pixel), (x_pixel, x)]:  # no new inversion; the targets
        not_yet(
            "ch06-feature-inversion",
            capsys,
            x_target=x,
            y_target=y,
            x_pixel=xp,
            x_feat=xf,
            class_kept=dict.fromkeys(names, 100.0),
        )
    with pytest.raises(ValueError, match="shape"):
        exercises.check(
            "ch06-feature-inversion",
            **(common | {"x_feat": x_feat[:8]}),
            class_kept=kept,
        )
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        exercises.check(
            "ch06-feature-inversion",
            **(common | {"x_feat": (x_feat + 1) * 127.5}),
            class_kept=kept,
        )
    with pytest.raises(ValueError, match="missing: 'pixel \\+ feature loss'"):
        exercises.check(
            "ch06-feature-inversion", **common, class_kept={"pixel loss": 50.0}
        )


class Mapped(nn.Module):
    def __init__(self, z_dim=8, ch=4, layers=4, use_mapping=True, num_classes=10):
        super().__init__()
        self.mapping = gan.mlp([z_dim] * (layers + 1), act=lambda: nn.LeakyReLU(0.2))
        self.synthesis = gan.DCGenerator(z_dim, ch, num_classes=num_classes)
        self.use_mapping = use_mapping

    def forward(self, z, y=None):
        return self.synthesis(self.mapping(z) if self.use_mapping else z, y)


def noisy_digits(seed, noise, n=150):
    """Stand-in samples of a short run: training digits plus noise (more noise, worse FDD)."""
    x = data.digits("train")[0][n * seed : n * (seed + 1)]
    return (
        x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    ).clamp(-1, 1)


def test_ch06_mapping(capsys):
    names = ("plain_short", "mapped_short", "paper_lr_short")
    samples = {n: noisy_digits(i, 0.3 * i) for i, n in enumerate(names)}
    fdd = {n: metrics.frechet_digit_distance(s) for n, s in samples.items()}
    runs = {
        "plain_short_samples": samples["plain_short"],
        "mapped_short_samples": samples["mapped_short"],
        "paper_lr_samples": samples["paper_lr_short"],
    }
    v = verdict("ch06-mapping", capsys, mapped_generator=Mapped(), **fdd, **runs)
    assert v and "4-layer mapping" in v.message
    for g in [Mapped(layers=2), Mapped(use_mapping=False), Mapped(num_classes=None)]:
        not_yet("ch06-mapping", capsys, mapped_generator=g, **fdd, **runs)
    wrong = [
        dict(zip(names, reversed(fdd.values()))),  # shuffled
        dict.fromkeys(names, 0.0),  # zeros
        {k: f / 2 for k, f in fdd.items()},  # off by a factor
    ]
    for w in wrong:
        not_yet("ch06-mapping", capsys, mapped_generator=Mapped(), **w, **runs)
    not_yet(  # the same run three times
        "ch06-mapping",
        capsys,
        mapped_generator=Mapped(),
        **dict.fromkeys(names, fdd["plain_short"]),
        **dict.fromkeys(runs, samples["plain_short"]),
    )
    with pytest.raises(TypeError, match="nn.Module"):
        exercises.check("ch06-mapping", mapped_generator=Mapped, **fdd, **runs)
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check(
            "ch06-mapping",
            mapped_generator=Mapped(),
            **(fdd | {"mapped_short": "12"}),
            **runs,
        )


def test_ch06_no_label(capsys):
    x, y = data.digits("train")
    cond = x[:150]  # every digit
    uncond = x[(y == 1) | (y == 7)][:150]  # a generator that draws only two of them
    net = metrics.digit_feature_net()
    fdd = {
        "plain_short": metrics.frechet_digit_distance(cond),
        "uncond_short": metrics.frechet_digit_distance(uncond),
    }
    with torch.no_grad():
        drawn = {
            k: len(torch.unique(net(s).argmax(1)))
            for k, s in (("conditional", cond), ("unconditional", uncond))
        }
    assert drawn["conditional"] == 10 > drawn["unconditional"]
    smp = {"plain_short_samples": cond, "uncond_samples": uncond}
    v = verdict("ch06-no-label", capsys, **fdd, **smp, digits_drawn=drawn)
    assert v and "of 10" in v.message
    swapped_fdd = {
        "plain_short": fdd["uncond_short"],
        "uncond_short": fdd["plain_short"],
    }
    swapped_drawn = dict(zip(drawn, reversed(drawn.values())))
    wrong = [
        (swapped_fdd, drawn),  # shuffled
        (fdd, swapped_drawn),
        (dict.fromkeys(fdd, 0.0), drawn),  # zeros
        (fdd, dict.fromkeys(drawn, 0)),
        (fdd, dict.fromkeys(drawn, 10)),  # assumed, not counted
    ]
    for f, d in wrong:
        not_yet("ch06-no-label", capsys, **f, **smp, digits_drawn=d)
    not_yet(  # the conditional run twice
        "ch06-no-label",
        capsys,
        **dict.fromkeys(fdd, fdd["plain_short"]),
        **dict.fromkeys(smp, cond),
        digits_drawn=dict.fromkeys(drawn, 10),
    )
    with pytest.raises(TypeError, match="dict"):
        exercises.check("ch06-no-label", **fdd, **smp, digits_drawn=10)
    with pytest.raises(ValueError, match="shape"):
        exercises.check(
            "ch06-no-label",
            **fdd,
            **(smp | {"uncond_samples": uncond[:, 0]}),
            digits_drawn=drawn,
        )
