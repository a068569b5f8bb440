"""Tests of the image measures of lib.metrics (chapters 8 and 10): sharpness, colourfulness,
log-radiance error, PSNR in a hole, high-frequency energy and the correlations."""
import math

import pytest
import torch

from lib import data, degrade as D, metrics


def img(n=2, c=1, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_sharpness_of_a_ramp_and_of_blur():
    a = 0.01  # slope per pixel in [0, 1] units
    ramp = (torch.arange(32.) * a * 2 - 0.5).view(1, 1, 1, 32).repeat(1, 1, 32, 1)
    assert abs(metrics.sharpness(ramp) - a) < 1e-9
    x = data.photo_patches("test", 2, 32, gray=True)
    assert metrics.sharpness(D.blur(x, D.gaussian_kernel(5, 1.5))) < metrics.sharpness(x)


def test_colourfulness_by_hand():
    grey = torch.zeros(1, 3, 4, 4)
    assert metrics.colourfulness(grey) == 0
    # half pure red, half pure green (0..255): rg = +-255, yb = 127.5 everywhere
    x = -torch.ones(1, 3, 2, 2)
    x[0, 0, 0] = 1; x[0, 1, 1] = 1
    expected = math.sqrt(255.0 ** 2 + 0) + 0.3 * math.sqrt(0 + 127.5 ** 2)
    assert abs(metrics.colourfulness(x) - expected) < 1e-6


def test_colourfulness_each_is_per_image():
    grey, x = torch.zeros(1, 3, 4, 4), -torch.ones(1, 3, 2, 2)
    x[0, 0, 0] = 1; x[0, 1, 1] = 1  # the half-red, half-green image above
    each = metrics.colourfulness_each(torch.cat([grey, x.repeat(1, 1, 2, 2)]))
    assert each.shape == (2,) and each[0] == 0
    assert abs(float(each[1]) - (255.0 + 0.3 * 127.5)) < 1e-6


def test_colour_distribution_distance_compares_sets_not_pairs():
    real = data.photo_patches("test", 48, 32, seed=1)  # (48, 3, 32, 32) colour photos
    luma = real.mean(1, keepdim=True)
    shuffled = real[torch.randperm(48, generator=torch.Generator().manual_seed(0))]
    dull = luma + 0.3 * (real - luma)  # a regression-like average: same brightness, shrunk colours
    grey = luma.expand_as(real)
    d = {n: metrics.colour_distribution_distance(v, real)
         for n, v in [("same", real), ("shuffled", shuffled), ("dull", dull), ("grey", grey)]}
    assert d["same"] < 1e-9
    # reordering the set changes every pair but not the distribution (only the quantile grid)
    assert d["shuffled"] < 1e-9
    assert 0 < d["dull"] < d["grey"]
    # pixel-wise the shuffled set is far from the truth, the dull one near it
    assert metrics.psnr(shuffled, real) < metrics.psnr(dull, real)


def test_colour_distribution_distance_refuses_bad_input():
    x = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match="multiples of patch"):
        metrics.colour_distribution_distance(torch.zeros(2, 3, 6, 6), x)
    with pytest.raises(ValueError, match="3 channel"):
        metrics.colour_distribution_distance(torch.zeros(2, 1, 8, 8), x)
    with pytest.raises(ValueError):
        metrics.colour_distribution_distance(x, x, patch=0)


def test_log_radiance_error_in_stops():
    ref = torch.ones(1, 1, 2, 2)
    est = torch.tensor([[[[2.0, 1.0], [0.25, 1.0]]]])
    assert abs(metrics.log_radiance_error(est, ref) - 3 / 4) < 1e-12
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert abs(metrics.log_radiance_error(est, ref, mask) - 1.5) < 1e-12
    with pytest.raises(ValueError):
        metrics.log_radiance_error(est * 0, ref)
    with pytest.raises(ValueError):
        metrics.log_radiance_error(est, ref, mask * 0)


def test_psnr_masked_matches_skimage_on_the_hole():
    from skimage.metrics import peak_signal_noise_ratio

    x, y = img(1, 3, 16, 16, 1), img(1, 3, 16, 16, 2)
    m = D.box_masks(1, 16, 6, generator=torch.Generator().manual_seed(3))
    sel = m[0, 0].bool()
    a = ((x[0] + 1) / 2)[:, sel].double().numpy()
    b = ((y[0] + 1) / 2)[:, sel].double().numpy()
    ref = peak_signal_noise_ratio(b, a, data_range=1.0)
    assert abs(metrics.psnr_masked(x, y, m) - ref) < 1e-6
    full = torch.ones(1, 1, 16, 16)
    assert abs(metrics.psnr_masked(x, y, full) - metrics.psnr(x, y)) < 1e-6
    with pytest.raises(ValueError):
        metrics.psnr_masked(x, y, torch.zeros(1, 1, 16, 16))


def test_psnr_masked_per_image_matches_skimage_per_hole_and_floors_exact_fills():
    from skimage.metrics import peak_signal_noise_ratio

    x, y = img(3, 3, 16, 16, 4), img(3, 3, 16, 16, 5)
    y[2] = x[2]                                          # an exact fill
    m = D.box_masks(3, 16, 6, generator=torch.Generator().manual_seed(6))
    per = metrics.psnr_masked(x, y, m, per_image=True)
    assert per.shape == (3,)
    for i in range(2):
        sel = m[i, 0].bool()
        a = ((x[i] + 1) / 2)[:, sel].double().numpy()
        b = ((y[i] + 1) / 2)[:, sel].double().numpy()
        assert abs(float(per[i]) - peak_signal_noise_ratio(b, a, data_range=1.0)) < 1e-6
    assert abs(float(per[2]) - 120.0) < 1e-9               # MSE floored at 1e-12
    assert abs(metrics.psnr_masked(x, y, m) - float(per.mean())) < 1e-9


def test_hf_energy_ratio():
    torch.manual_seed(0)
    y = torch.randn(2, 1, 16, 16)
    assert math.isclose(metrics.hf_energy_ratio(y, y), 1.0)
    assert math.isclose(metrics.hf_energy_ratio(2 * y, y), 4.0, rel_tol=1e-9)        # energy is quadratic
    ramp = torch.arange(16.0).expand(2, 1, 16, 16)                                # Laplacian of a ramp = 0
    assert metrics.hf_energy_ratio(ramp, y) == 0.0
    blurred = torch.nn.functional.avg_pool2d(y, 3, 1, 1)
    assert metrics.hf_energy_ratio(blurred, y) < 0.5
    with pytest.raises(ValueError):
        metrics.hf_energy_ratio(y, ramp)
    with pytest.raises(ValueError):
        metrics.hf_energy_ratio(y, y[:1])


def test_structure_correlation():
    torch.manual_seed(0)
    x = torch.randn(3, 1, 12, 12)
    assert torch.allclose(metrics.structure_correlation(x, x), torch.ones(3))
    assert torch.allclose(metrics.structure_correlation(x, -3 * x + 1), torch.ones(3), atol=1e-6)   # same edges
    assert torch.allclose(metrics.structure_correlation(x, torch.zeros_like(x)), torch.zeros(3))
    unrelated = metrics.structure_correlation(x, torch.randn(3, 1, 12, 12)).abs().mean()
    assert unrelated < 0.4
    g = metrics.gradient_magnitude(torch.arange(5.0).expand(1, 1, 5, 5))              # ramp of slope 1: |grad| = 2
    assert torch.allclose(g, torch.full((1, 1, 3, 3), 2.0))
    with pytest.raises(ValueError):
        metrics.structure_correlation(x, x[:2])
    with pytest.raises(ValueError):
        metrics.gradient_magnitude(torch.zeros(1, 1, 2, 5))


def test_gradient_magnitude_forward_differences_are_what_sharpness_averages():
    ramp = torch.arange(5.0).expand(1, 1, 5, 5)
    assert torch.allclose(metrics.gradient_magnitude(ramp, "forward"), torch.ones(1, 1, 4, 4))
    x = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0)) * 2 - 1
    u = (x.double() + 1) / 2                                  # sharpness before it called gradient_magnitude
    dx, dy = u[..., :-1, 1:] - u[..., :-1, :-1], u[..., 1:, :-1] - u[..., :-1, :-1]
    assert metrics.sharpness(x) == float(torch.sqrt(dx ** 2 + dy ** 2).mean())
    assert metrics.gradient_magnitude(torch.zeros(1, 1, 2, 2), "forward").shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="differences"):
        metrics.gradient_magnitude(ramp, "backward")
    with pytest.raises(ValueError, match="H, W >= 2"):
        metrics.gradient_magnitude(torch.zeros(1, 1, 1, 5), "forward")


def test_image_correlation():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 6, 6)
    assert torch.allclose(metrics.image_correlation(x, 2 * x + 3), torch.ones(4), atol=1e-6)
    assert torch.allclose(metrics.image_correlation(x, -x), -torch.ones(4), atol=1e-6)
    assert torch.allclose(metrics.image_correlation(x, torch.ones_like(x)), torch.zeros(4))
    # hand-computed: (1, 2, 3) vs (1, 3, 2): centred (-1, 0, 1), (-1, 1, 0): 1 / (sqrt2 sqrt2) = 0.5
    assert math.isclose(float(metrics.image_correlation(torch.tensor([[1.0, 2, 3]]), torch.tensor([[1.0, 3, 2]]))[0]), 0.5,
                        rel_tol=1e-6)
    with pytest.raises(ValueError):
        metrics.image_correlation(x, x[:2])


def test_nearest_neighbours_and_copy_rate_tell_copies_from_new_data():
    from lib import metrics
    g = torch.Generator().manual_seed(0)
    train = torch.randn(300, 1, 4, 4, generator=g)
    new = torch.randn(200, 1, 4, 4, generator=g)
    d, idx = metrics.nearest_neighbours(train[[5, 17]] + 1e-3, train, chunk=1)
    assert idx.tolist() == [5, 17] and torch.allclose(d, torch.full((2,), 4e-3, dtype=torch.float64))
    brute = torch.cdist(new.flatten(1).double(), train.flatten(1).double()).min(1).values
    assert torch.allclose(metrics.nearest_neighbours(new, train, chunk=7)[0], brute)
    held_out = torch.randn(400, 1, 4, 4, generator=g)
    assert metrics.copy_rate(train[:100], train, held_out) == 100.0           # a memoriser
    assert metrics.copy_rate(new, train, held_out) < 5.0                       # new data: ~1 %
    assert metrics.copy_rate(held_out, train, held_out, quantile=0.1) == pytest.approx(10.0, abs=0.5)
    with pytest.raises(ValueError, match="non-empty"):
        metrics.nearest_neighbours(train[:0], train)
    with pytest.raises(ValueError, match="same size"):
        metrics.nearest_neighbours(train, torch.randn(5, 3))
    with pytest.raises(ValueError, match="finite"):
        metrics.nearest_neighbours(torch.full((2, 16), float("nan")), train)


def test_record_copy_rate_records_the_memorisation_figure_as_a_reference(tmp_path, monkeypatch):
    import json
    from lib import metrics
    f = tmp_path / "r.jsonl"
    monkeypatch.setenv("WORKBOOK_RESULTS_FILE", str(f))
    g = torch.Generator().manual_seed(0)
    train, held_out = torch.randn(200, 1, 4, 4, generator=g), torch.randn(300, 1, 4, 4, generator=g)
    rate = metrics.record_copy_rate("copies", train[:50], train, held_out)
    (rec,) = [json.loads(line) for line in f.read_text().splitlines()]
    assert rate == rec["value"] == 100.0 == metrics.copy_rate(train[:50], train, held_out)
    assert rec["name"] == "memorisation: copies closer to the training set than 99% of test digits"
    assert rec["kind"] == "reference" and rec["baseline"] == 1.0 and rec["higher_is_better"] is False
    assert rec["baseline_name"] == "new real digits (by construction)"
    # other data say what they are, in the name and in the baseline's
    new = metrics.record_copy_rate("new samples", held_out[:50], train, held_out, data="scenes")
    rec = json.loads(f.read_text().splitlines()[-1])
    assert rec["name"] == "memorisation: new samples closer to the training set than 99% of test scenes"
    assert rec["baseline_name"] == "new real scenes (by construction)" and new < 10
    with pytest.raises(ValueError, match="data"):
        metrics.record_copy_rate("x", train[:5], train, held_out, data="")


def test_colour_error_is_zero_for_equal_images_and_large_for_grey_vs_red():
    x = img(2, 3, 8, 8)
    assert metrics.colour_error(x, x) == pytest.approx(0.0, abs=1e-9)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    grey = torch.zeros(1, 3, 4, 4)
    assert metrics.colour_error(grey, red) > 50
    assert metrics.colour_error(grey, red) == pytest.approx(metrics.colour_error(red, grey))
    with pytest.raises(ValueError, match="shape"):
        metrics.colour_error(x, x[:1])
    # with a mask only the masked pixels count
    y = x.clone()
    y[:, :, :4] = red.expand(2, 3, 4, 4).repeat(1, 1, 1, 2)      # top half differs
    top = torch.zeros(2, 1, 8, 8)
    top[:, :, :4] = 1
    assert metrics.colour_error(y, x, 1 - top) == pytest.approx(0.0, abs=1e-9)
    assert metrics.colour_error(y, x, top) == pytest.approx(2 * metrics.colour_error(y, x))
    with pytest.raises(ValueError, match="no pixel"):
        metrics.colour_error(x, x, torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="3"):
        metrics.colour_error(img(1, 1), img(1, 1))


def test_digit_feature_net_refuses_other_images():
    net = metrics.DigitFeatureNet()
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 10) and net.features(torch.zeros(2, 1, 16, 16)).shape == (2, 64)
    with pytest.raises(ValueError, match=r"digits must have shape \(N, 1, 16, 16\)"):
        net(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"digits must have shape \(N, 1, 16, 16\)"):
        net.features(torch.zeros(1, 16, 16))
