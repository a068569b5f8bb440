"""Tests of lib.degrade (chapter 10): resolution, blur kernels, noise, masks, the HDR camera, YUV."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from lib import data, degrade as D, metrics


def img(n=2, c=1, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_downsample_is_block_mean():
    x = img(2, 3, 8, 12)
    y = D.downsample(x, 4)
    assert y.shape == (2, 3, 2, 3)
    assert torch.allclose(y[1, 2, 1, 2], x[1, 2, 4:8, 8:12].mean())
    assert torch.allclose(y.mean(), x.mean(), atol=1e-6)  # mean preserved
    with pytest.raises(ValueError, match="multiple"):
        D.downsample(img(1, 1, 10, 10), 4)


def test_kernels_are_normalised_and_shaped():
    g = D.gaussian_kernel(7, 1.5)
    assert g.shape == (7, 7) and abs(float(g.sum()) - 1) < 1e-6
    assert torch.allclose(g, g.T) and torch.allclose(g, g.flip(0))
    # variance along one axis matches sigma^2 (the kernel is wide enough to hold most of the mass)
    g13 = D.gaussian_kernel(13, 1.5)  # +-4 sigma: the truncated mass is negligible
    r = torch.arange(13.) - 6
    var = float((g13.sum(0) * r ** 2).sum())
    assert abs(var - 1.5 ** 2) < 1e-3
    m = D.motion_kernel(9, 0)
    assert m.shape == (9, 9) and abs(float(m.sum()) - 1) < 1e-6
    assert float(m[4].sum()) > 0.999  # horizontal: all mass in the middle row
    v = D.motion_kernel(9, 90)
    assert float(v[:, 4].sum()) > 0.999  # vertical
    with pytest.raises(ValueError):
        D.gaussian_kernel(4, 1.0)
    with pytest.raises(ValueError):
        D.gaussian_kernel(5, 0.0)
    with pytest.raises(ValueError):
        D.motion_kernel(9, 0, size=7)


def test_blur_matches_scipy_convolution_and_keeps_constants():
    x = img(1, 2, 20, 24, seed=3)
    k = D.motion_kernel(7, 30)
    y = D.blur(x, k)
    ref = np.stack([ndimage.convolve(x[0, c].double().numpy(), k.double().numpy(), mode="mirror") for c in range(2)])
    assert np.allclose(y[0].numpy(), ref, atol=1e-5)
    const = torch.full((1, 1, 10, 10), 0.3)
    assert torch.allclose(D.blur(const, D.gaussian_kernel(5, 1.0)), const, atol=1e-6)
    delta = torch.zeros(3, 3); delta[1, 1] = 1
    assert torch.allclose(D.blur(x, delta), x)
    with pytest.raises(ValueError, match="sum to 1"):
        D.blur(x, torch.ones(3, 3))
    with pytest.raises(ValueError, match="odd"):
        D.blur(x, torch.ones(2, 2) / 4)


def test_noise_has_documented_std():
    x = torch.zeros(4, 1, 64, 64)
    y = D.add_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    assert abs(float(y.std()) - 0.2) < 0.01  # std 2 * sigma on [-1, 1] images
    assert abs(float(y.mean())) < 0.01
    y2 = D.add_noise(x, torch.tensor([0.0, 0.05, 0.1, 0.2]), generator=torch.Generator().manual_seed(0))
    assert float(y2[0].abs().max()) == 0
    assert abs(float(y2[3].std()) - 0.4) < 0.03
    assert float(D.add_noise(x + 0.95, 0.5, clip=True).max()) <= 1
    with pytest.raises(ValueError):
        D.add_noise(x, -0.1)
    with pytest.raises(ValueError):
        D.add_noise(x, torch.tensor([0.1, 0.2]))


def test_box_masks():
    m = D.box_masks(50, 16, 5, generator=torch.Generator().manual_seed(0))
    assert m.shape == (50, 1, 16, 16)
    assert torch.all(m.sum(dim=(1, 2, 3)) == 25)
    for mi in m[:, 0]:  # one contiguous square
        rows, cols = torch.nonzero(mi, as_tuple=True)
        assert int(rows.max() - rows.min()) == 4 and int(cols.max() - cols.min()) == 4
    c = D.box_masks(1, 16, 4, centre=True)
    assert c[0, 0, 6:10, 6:10].sum() == 16
    with pytest.raises(ValueError):
        D.box_masks(1, 8, 8)


def test_textured_box_masks_cover_the_busiest_square():
    x = -torch.ones(3, 3, 16, 16)
    x[0, :, 2, 13] = 1.0                                  # one bright dot near a corner
    x[1, :, 9:, :] = 1.0                                  # a horizontal edge at row 9
    x[2] = torch.linspace(-1, 1, 16)                      # a smooth ramp: any position
    m = D.textured_box_masks(x, 4)
    assert m.shape == (3, 1, 16, 16) and torch.all(m.sum(dim=(1, 2, 3)) == 16)
    assert m[0, 0, 2, 13] == 1                            # the dot is in the hole
    rows = torch.nonzero(m[1, 0].amax(1)).flatten()
    assert rows.min() <= 9 <= rows.max()                  # the edge crosses the hole
    inner = D.textured_box_masks(x, 4, margin=2)          # 2 known pixels on every side
    assert inner[0, 0, 2:6, 10:14].sum() == 16            # the one such square over the dot
    inner = D.textured_box_masks(x, 4, margin=3)          # no square may cover the dot now
    assert inner[0, 0, :3].sum() == 0 and inner[0, 0, :, 13:].sum() == 0
    with pytest.raises(ValueError, match="smaller than the image"):
        D.textured_box_masks(x, 16)
    with pytest.raises(ValueError, match="smaller than the image"):
        D.textured_box_masks(x, 8, margin=5)              # 8 + 2 * 5 > 16
    with pytest.raises(ValueError, match="margin must be"):
        D.textured_box_masks(x, 4, margin=-1)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        D.textured_box_masks(x * 3, 4)


def test_camera_model_exposure_clipping_and_inverse():
    rad = torch.tensor([0.01, 0.1, 0.5, 0.9, 2.0, 10.0]).view(1, 1, 1, 6)
    z = D.expose(rad, 1.0, bits=None)
    assert torch.allclose(z.flatten()[:4], rad.flatten()[:4] ** (1 / 2.2))
    assert torch.all(z.flatten()[4:] == 1)  # clipped where t * E >= 1
    assert torch.allclose(D.inverse_crf(z).flatten()[:4], rad.flatten()[:4], atol=1e-6)
    z8 = D.expose(rad, 0.05)  # quantised to 8 bits
    assert torch.allclose(z8 * 255, torch.round(z8 * 255))
    assert float((z8 - (0.05 * rad) ** (1 / 2.2)).abs().max()) <= 0.5 / 255 + 1e-6
    zn = D.expose(torch.full((1, 1, 64, 64), 0.25), 1.0, noise=0.01, bits=None,
                  generator=torch.Generator().manual_seed(0))
    assert abs(float(D.inverse_crf(zn).std()) - 0.01) < 0.002
    with pytest.raises(ValueError):
        D.expose(-rad, 1.0)
    with pytest.raises(ValueError):
        D.expose(rad, 0.0)
    with pytest.raises(ValueError):
        D.crf(torch.tensor([1.5]))


def test_synthetic_radiance_range():
    x = data.photo_patches("test", 4, 32, seed=0)
    rad = D.synthetic_radiance(x, stops=6)
    assert rad.shape == x.shape and float(rad.min()) > 0
    lin = ((x + 1) / 2) ** 2.2 + 2 ** -10
    ratio = rad / lin  # the brightening factor 2 ** (stops * b), b in [0, 1]
    assert float(ratio.min()) >= 1 - 1e-4 and float(ratio.max()) <= 2 ** 6 + 1e-3


def test_yuv_matches_skimage_and_round_trips():
    import skimage.color

    x = img(2, 3, 8, 8)
    yuv = D.rgb_to_yuv(x)
    ref = skimage.color.rgb2yuv(((x[0] + 1) / 2).permute(1, 2, 0).double().numpy())
    assert np.allclose(yuv[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    assert torch.allclose(D.yuv_to_rgb(yuv), x, atol=1e-5)
    with pytest.raises(ValueError):
        D.rgb_to_yuv(img(1, 1))


def test_check_kernel_accepts_blur_kernels_only():
    k = D.gaussian_kernel(5, 1.0)
    assert D.check_kernel(k) is k
    with pytest.raises(ValueError, match="odd"):
        D.check_kernel(torch.full((4, 4), 1 / 16))
    with pytest.raises(ValueError, match="sum to 1"):
        D.check_kernel(torch.ones(3, 3))
    with pytest.raises(TypeError):
        D.check_kernel(np.ones((3, 3)) / 9)


# --- the antique camera (rephotography) ---------------------------------------------------

def _colour(rgb, n=1, size=8):
    x = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1) * 2 - 1
    return x.expand(n, 3, size, size).clone()


def test_film_exposure_keeps_grey_and_sees_no_red_on_orthochromatic_film():
    for film, w in D.FILMS.items():
        assert abs(sum(w) - 1) < 1e-9, film
        grey = torch.full((2, 3, 4, 4), 0.3)
        assert torch.allclose(D.film_exposure(grey, film), grey[:, :1])  # grey stays grey
    red, blue = _colour((1.0, 0.0, 0.0)), _colour((0.0, 0.0, 1.0))
    ortho = lambda x: float(D.film_exposure(x, "orthochromatic").mean())
    assert ortho(red) == pytest.approx(-1.0)  # red records as black
    assert ortho(blue) > 0.0  # blue records light
    # panchromatic film is the luma of YUV
    x = img(2, 3, 6, 6)
    assert torch.allclose(D.film_exposure(x, "panchromatic"), D.rgb_to_yuv(x)[:, :1] * 2 - 1, atol=1e-5)
    assert D.film_exposure(x).shape == (2, 1, 6, 6)


def test_antique_camera_fades_blurs_and_adds_grain():
    x = img(3, 3, 16, 16)
    y = D.antique_camera(x, grain=0.0)
    assert y.shape == (3, 1, 16, 16)
    u = (y + 1) / 2  # fading: the range shrinks to [lift, lift + contrast]
    assert float(u.min()) >= 0.15 - 1e-6 and float(u.max()) <= 0.85 + 1e-6
    assert torch.equal(y, D.antique_camera(x, grain=0.0))  # deterministic without grain
    sharp = D.antique_camera(x, blur_sigma=0.0, grain=0.0)
    assert metrics.sharpness(y) < metrics.sharpness(sharp)  # the lens blurs
    # no blur, no fading, no grain: exactly the film
    assert torch.allclose(D.antique_camera(x, blur_sigma=0.0, contrast=1.0, lift=0.0, grain=0.0),
                          D.film_exposure(x), atol=1e-6)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    noisy = D.antique_camera(x, grain=0.05, generator=g1)
    assert torch.equal(noisy, D.antique_camera(x, grain=0.05, generator=g2))  # seeded grain
    assert 0.03 < float((noisy - y).std()) < 0.1  # std 2 * contrast * grain on [-1, 1]
    # differentiable without grain: the forward model of degradation-aware inversion
    xr = x.clone().requires_grad_(True)
    D.antique_camera(xr, grain=0.0).sum().backward()
    assert xr.grad is not None and torch.isfinite(xr.grad).all()


def test_antique_camera_bad_input():
    with pytest.raises(ValueError, match="3"):
        D.antique_camera(img(1, 1, 8, 8))
    with pytest.raises(ValueError, match="film"):
        D.antique_camera(img(1, 3, 8, 8), film="kodachrome")
    with pytest.raises(ValueError, match="contrast"):
        D.antique_camera(img(1, 3, 8, 8), contrast=0.9, lift=0.3)
    with pytest.raises(ValueError, match="grain"):
        D.antique_camera(img(1, 3, 8, 8), grain=-0.1)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        D.film_exposure(torch.rand(1, 3, 4, 4) * 255)
