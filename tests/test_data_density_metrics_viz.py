"""lib.data, lib.density, lib.metrics, lib.viz (the parts chapter 1 introduces)."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from lib import data, density, metrics, train, viz


def test_digits_shapes_range_and_disjoint_split():
    xtr, ytr = data.digits("train")
    xte, yte = data.digits("test")
    assert xtr.shape == (1437, 1, 16, 16) and xte.shape == (360, 1, 16, 16)
    assert xtr.min() >= -1 and xtr.max() <= 1 and ytr.dtype == torch.int64
    assert set(ytr.tolist()) == set(range(10))
    xall, _ = data.digits("all", size=8)
    assert xall.shape == (1797, 1, 8, 8)
    train8 = {tuple(r) for r in data.digits("train", size=8)[0].flatten(1).tolist()}
    test8 = [tuple(r) for r in data.digits("test", size=8)[0].flatten(1).tolist()]
    assert len(train8) + len(test8) >= 1700 and sum(t in train8 for t in test8) < 5  # (a few duplicate images exist)
    with pytest.raises(ValueError, match="split"):
        data.digits("valid")
    with pytest.raises(ValueError, match="size"):
        data.digits("train", size=12)


def test_binarize_and_unit():
    x = torch.tensor([[-1.0, 0.2]])
    assert data.binarize(x).tolist() == [[0.0, 1.0]]
    assert torch.allclose(data.from_unit(data.to_unit(x)), x)
    with pytest.raises(ValueError):
        data.binarize(torch.tensor([3.0]))


def test_class_gaussians_is_the_closed_form_mle():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g) * torch.tensor([1.0, 2.0, 0.5]) + 1
    y = torch.zeros(500, dtype=torch.long)
    m = density.ClassGaussians(reg=1e-6).fit(x, y)
    mu = x.double().mean(0)
    cov = ((x.double() - mu).T @ (x.double() - mu)) / 500
    assert torch.allclose(m.dists[0].loc, mu)
    assert torch.allclose(m.dists[0].covariance_matrix, cov + 1e-6 * torch.eye(3), atol=1e-9)
    ref = torch.distributions.MultivariateNormal(mu, cov).log_prob(x.double())
    assert torch.allclose(m.log_prob(x, y).double(), ref, atol=1e-3)


def test_class_gaussians_samples_and_errors():
    xtr, ytr = data.digits("train")
    m = density.ClassGaussians().fit(xtr, ytr)
    s, lab = m.sample(7, y=3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 16, 16) and (lab == 3).all() and s.abs().max() <= 1
    s2, _ = m.sample(7, y=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, s2)
    assert m.log_prob(xtr[:5]).shape == (5,)
    with pytest.raises(ValueError, match="shape"):
        m.log_prob(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="unknown class"):
        m.sample(2, y=11)
    with pytest.raises(ValueError, match="reg"):
        density.ClassGaussians(reg=0)


@settings(max_examples=10, deadline=None)
@given(shift=st.floats(0.5, 3.0))
def test_sliced_wasserstein_zero_for_same_and_grows_with_shift(shift):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    same = metrics.sliced_wasserstein(a, b)
    moved = metrics.sliced_wasserstein(a, b + shift)
    assert same < 0.06
    assert moved > same + 0.3 * shift
    assert metrics.sliced_wasserstein(a, b + 2 * shift) > moved


def test_mmd_and_shapes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)
    assert abs(metrics.mmd(a, b)) < 0.01 < metrics.mmd(a, b + 1)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        metrics.sliced_wasserstein(torch.zeros(5), torch.zeros(5, 2))


def test_frechet_digit_distance_self_zero_and_grows_with_noise():
    x, _ = data.digits("test")
    assert abs(metrics.frechet_digit_distance(x, x)) < 1e-3
    g = torch.Generator().manual_seed(0)
    d = [metrics.frechet_digit_distance((x + s * torch.randn(x.shape, generator=g)).clamp(-1, 1), x)
         for s in (0.1, 0.4, 0.8)]
    assert d[0] < d[1] < d[2]
    ref = metrics.fdd_reference()
    assert ref["floor"] < ref["gaussian"] < ref["gaussian_unconditional"]   # labels help a Gaussian
    with pytest.raises(ValueError, match="16x16"):
        metrics.frechet_digit_distance(torch.zeros(4, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        metrics.frechet_digit_distance(x * 255)


def test_psnr_ssim_agree_with_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    x = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(-1, 1)
    a, b = ((x + 1) / 2).permute(0, 2, 3, 1).double().numpy(), ((ref + 1) / 2).permute(0, 2, 3, 1).double().numpy()
    assert metrics.psnr(x, ref) == pytest.approx(np.mean([peak_signal_noise_ratio(b[i], a[i], data_range=1) for i in range(2)]))
    assert metrics.ssim(x, ref) == pytest.approx(np.mean([structural_similarity(b[i], a[i], data_range=1, channel_axis=2) for i in range(2)]), rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(x[:1], ref)


def test_bits_per_dim():
    assert metrics.bits_per_dim(torch.tensor([256 * math.log(2)]), 256) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.bits_per_dim(1.0, 0)


def test_viz_grid_and_checks():
    grid = viz.image_grid(torch.zeros(6, 1, 4, 4), nrow=3, pad=1)
    assert grid.shape == (9, 14, 1) and np.allclose(grid[:4, :4], 0.5)
    ax = viz.show_images(torch.zeros(4, 3, 8, 8))
    plt.close("all")
    with pytest.raises(ValueError, match="channels"):
        viz.image_grid(torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError):
        viz.scatter2d(torch.zeros(5, 3))


def test_viz_interactive_draws_static_figure(monkeypatch):
    monkeypatch.setenv("WORKBOOK_STATIC", "1")
    calls = []
    assert viz.interactive(lambda a, b: calls.append((a, b)), a=viz.Slider(0, 5, 1, 2), b=viz.Choice(["x", "y"], "y")) is None
    assert calls == [(2, "y")]
    with pytest.raises(ValueError, match="must lie"):
        viz.Slider(0, 1, 0.1, 3)
    with pytest.raises(TypeError, match="Slider"):
        viz.interactive(lambda a: None, a=3)


def test_toy2d():
    for name in data.TOY2D:
        a = data.toy2d(name, 500, seed=1)
        assert a.shape == (500, 2) and torch.isfinite(a).all()
        assert torch.equal(a, data.toy2d(name, 500, seed=1))
    moons = data.toy2d("moons", 4000)
    assert moons.mean(0).abs().max() < 0.1 and (moons.std(0) - 1).abs().max() < 0.15
    ring = data.toy2d("ring8", 2000)
    d = torch.cdist(ring, data.ring8_centres()).min(1).values
    assert d.max() < 0.06  # sigma 0.01: every point within 6 sigma of a centre
    with pytest.raises(ValueError, match="toy distribution"):
        data.toy2d("spiral", 10)
    with pytest.raises(ValueError, match="sigma"):
        data.toy2d("ring8", 10, sigma=0)


def test_photos_and_disjoint_patch_splits():
    for gray in (False, True):
        assert not set(data.photo_names("train", gray)) & set(data.photo_names("test", gray))
    im = data.photo("astronaut")
    assert im.shape == (3, 512, 512) and im.min() >= -1 and im.max() <= 1
    assert data.photo("astronaut", gray=True).shape == (1, 512, 512)
    with pytest.raises(ValueError, match="greyscale"):
        data.photo("camera")
    with pytest.raises(ValueError, match="unknown photo"):
        data.photo("lena")
    p = data.photo_patches("test", 20, size=24, seed=3)
    assert p.shape == (20, 3, 24, 24) and torch.equal(p, data.photo_patches("test", 20, size=24, seed=3))
    # every test patch is an exact crop of a test photo, and of no training photo
    test_ims = [data.photo(n) for n in data.photo_names("test")]
    train_ims = [data.photo(n) for n in data.photo_names("train")]

    def found(patch, ims):
        for im in ims:
            hits = (im[0].unfold(0, 24, 1).unfold(1, 24, 1) == patch[0]).all(-1).all(-1)
            if hits.any():
                return True
        return False
    assert all(found(q, test_ims) for q in p[:3])
    assert not any(found(q, train_ims) for q in p[:3])
    assert data.photo_patches("train", 4, size=16, gray=True).shape == (4, 1, 16, 16)


def test_feature_net_trains_from_an_empty_cache_under_no_grad(tmp_path, monkeypatch):
    """A fresh checkout has no cached feature net; the first FDD call may come under no_grad,
    and must leave the caller's random state as it found it."""
    monkeypatch.setenv("WORKBOOK_CACHE", str(tmp_path))
    monkeypatch.setattr(metrics, "_FEATURE_NET", None)
    x, _ = data.digits("test")
    torch.manual_seed(5)
    with torch.no_grad():
        d = metrics.frechet_digit_distance(x[:100], x[100:])
    after_training = torch.randn(3)
    assert (tmp_path / "digit_feature_net.pt").exists() and d > 0
    monkeypatch.setattr(metrics, "_FEATURE_NET", None)
    torch.manual_seed(5)
    assert metrics.frechet_digit_distance(x[:100], x[100:]) == pytest.approx(d, rel=1e-5)  # loaded from cache
    assert torch.equal(torch.randn(3), after_training)


# --- chapter 05: upsample_digits ---

def test_upsample_digits_reproduces_the_16px_digits():
    x8, _ = data.digits("train", size=8)
    x16, _ = data.digits("train", size=16)
    assert torch.allclose(data.upsample_digits(x8), x16, atol=1e-6)


def test_upsample_digits_bilinear_values_by_hand():
    # one bright column (index 3) on a dark background; with align_corners=False, output column
    # 2i+1 samples the input at i + 1/4 and column 2i at i - 1/4 (linear weights 3/4, 1/4)
    x = -torch.ones(1, 1, 8, 8)
    x[..., 3] = 1.0
    up = data.upsample_digits(x)[0, 0, 4]                       # one row, in [-1, 1]
    expected = -torch.ones(16)
    expected[[5, 8]] = -0.5                                      # 1/4 of the way to ink: 0.25 -> -0.5
    expected[[6, 7]] = 0.5                                       # 3/4 of the way: 0.75 -> 0.5
    assert torch.allclose(up, expected, atol=1e-6)
    assert data.upsample_digits(x, size=8) is x


def test_upsample_digits_bad_input():
    with pytest.raises(ValueError, match="8x8"):
        data.upsample_digits(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError):
        data.upsample_digits(torch.full((2, 1, 8, 8), 2.0))
    with pytest.raises(ValueError):
        data.upsample_digits(torch.zeros(2, 1, 8, 8), size=12)


def test_feature_net_cache_is_keyed_by_its_code(tmp_path, monkeypatch):
    """A net cached by older code (another fingerprint) must be retrained, not silently reused;
    one cached by the current code is loaded."""
    monkeypatch.setenv("WORKBOOK_CACHE", str(tmp_path))
    monkeypatch.setattr(metrics, "_FEATURE_NET", None)
    trained = []
    monkeypatch.setattr(metrics, "_train_feature_net", lambda net: trained.append(net))   # no real training here
    path = tmp_path / "digit_feature_net.pt"
    for k, stale_config in enumerate([metrics._FEATURE_CONFIG,                          # cached before fingerprints
                                      metrics._FEATURE_CONFIG | {"code": "older code"}]):
        train.save_checkpoint(path, metrics.DigitFeatureNet(), stale_config)
        monkeypatch.setattr(metrics, "_FEATURE_NET", None)
        metrics.digit_feature_net()
        assert len(trained) == k + 1                           # the stale checkpoint was refused
    monkeypatch.setattr(metrics, "_FEATURE_NET", None)
    net = metrics.digit_feature_net()
    assert len(trained) == 2 and net is not trained[-1]        # the checkpoint just written is loaded
    assert metrics._code_fingerprint(metrics.DigitFeatureNet) != metrics._code_fingerprint(metrics.DigitFeatureNet.forward)
