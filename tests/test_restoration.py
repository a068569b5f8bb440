"""Tests of lib.restoration (chapter 10): degradations, baselines, networks, measures, bad inputs."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from lib import data, metrics, restoration as R


def img(n=2, c=1, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- degradations --------------------------------------------------------------------------

def test_downsample_is_block_mean():
    x = img(2, 3, 8, 12)
    y = R.downsample(x, 4)
    assert y.shape == (2, 3, 2, 3)
    assert torch.allclose(y[1, 2, 1, 2], x[1, 2, 4:8, 8:12].mean())
    assert torch.allclose(y.mean(), x.mean(), atol=1e-6)  # mean preserved
    with pytest.raises(ValueError, match="multiple"):
        R.downsample(img(1, 1, 10, 10), 4)


def test_kernels_are_normalised_and_shaped():
    g = R.gaussian_kernel(7, 1.5)
    assert g.shape == (7, 7) and abs(float(g.sum()) - 1) < 1e-6
    assert torch.allclose(g, g.T) and torch.allclose(g, g.flip(0))
    # variance along one axis matches sigma^2 (the kernel is wide enough to hold most of the mass)
    g13 = R.gaussian_kernel(13, 1.5)  # +-4 sigma: the truncated mass is negligible
    r = torch.arange(13.) - 6
    var = float((g13.sum(0) * r ** 2).sum())
    assert abs(var - 1.5 ** 2) < 1e-3
    m = R.motion_kernel(9, 0)
    assert m.shape == (9, 9) and abs(float(m.sum()) - 1) < 1e-6
    assert float(m[4].sum()) > 0.999  # horizontal: all mass in the middle row
    v = R.motion_kernel(9, 90)
    assert float(v[:, 4].sum()) > 0.999  # vertical
    with pytest.raises(ValueError):
        R.gaussian_kernel(4, 1.0)
    with pytest.raises(ValueError):
        R.gaussian_kernel(5, 0.0)
    with pytest.raises(ValueError):
        R.motion_kernel(9, 0, size=7)


def test_blur_matches_scipy_convolution_and_keeps_constants():
    x = img(1, 2, 20, 24, seed=3)
    k = R.motion_kernel(7, 30)
    y = R.blur(x, k)
    ref = np.stack([ndimage.convolve(x[0, c].double().numpy(), k.double().numpy(), mode="mirror") for c in range(2)])
    assert np.allclose(y[0].numpy(), ref, atol=1e-5)
    const = torch.full((1, 1, 10, 10), 0.3)
    assert torch.allclose(R.blur(const, R.gaussian_kernel(5, 1.0)), const, atol=1e-6)
    delta = torch.zeros(3, 3); delta[1, 1] = 1
    assert torch.allclose(R.blur(x, delta), x)
    with pytest.raises(ValueError, match="sum to 1"):
        R.blur(x, torch.ones(3, 3))
    with pytest.raises(ValueError, match="odd"):
        R.blur(x, torch.ones(2, 2) / 4)


def test_noise_has_documented_std():
    x = torch.zeros(4, 1, 64, 64)
    y = R.add_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    assert abs(float(y.std()) - 0.2) < 0.01  # std 2 * sigma on [-1, 1] images
    assert abs(float(y.mean())) < 0.01
    y2 = R.add_noise(x, torch.tensor([0.0, 0.05, 0.1, 0.2]), generator=torch.Generator().manual_seed(0))
    assert float(y2[0].abs().max()) == 0
    assert abs(float(y2[3].std()) - 0.4) < 0.03
    assert float(R.add_noise(x + 0.95, 0.5, clip=True).max()) <= 1
    with pytest.raises(ValueError):
        R.add_noise(x, -0.1)
    with pytest.raises(ValueError):
        R.add_noise(x, torch.tensor([0.1, 0.2]))


def test_box_masks():
    m = R.box_masks(50, 16, 5, generator=torch.Generator().manual_seed(0))
    assert m.shape == (50, 1, 16, 16)
    assert torch.all(m.sum(dim=(1, 2, 3)) == 25)
    for mi in m[:, 0]:  # one contiguous square
        rows, cols = torch.nonzero(mi, as_tuple=True)
        assert int(rows.max() - rows.min()) == 4 and int(cols.max() - cols.min()) == 4
    c = R.box_masks(1, 16, 4, centre=True)
    assert c[0, 0, 6:10, 6:10].sum() == 16
    with pytest.raises(ValueError):
        R.box_masks(1, 8, 8)


def test_camera_model_exposure_clipping_and_inverse():
    rad = torch.tensor([0.01, 0.1, 0.5, 0.9, 2.0, 10.0]).view(1, 1, 1, 6)
    z = R.expose(rad, 1.0, bits=None)
    assert torch.allclose(z.flatten()[:4], rad.flatten()[:4] ** (1 / 2.2))
    assert torch.all(z.flatten()[4:] == 1)  # clipped where t * E >= 1
    assert torch.allclose(R.inverse_crf(z).flatten()[:4], rad.flatten()[:4], atol=1e-6)
    z8 = R.expose(rad, 0.05)  # quantised to 8 bits
    assert torch.allclose(z8 * 255, torch.round(z8 * 255))
    assert float((z8 - (0.05 * rad) ** (1 / 2.2)).abs().max()) <= 0.5 / 255 + 1e-6
    zn = R.expose(torch.full((1, 1, 64, 64), 0.25), 1.0, noise=0.01, bits=None,
                  generator=torch.Generator().manual_seed(0))
    assert abs(float(R.inverse_crf(zn).std()) - 0.01) < 0.002
    with pytest.raises(ValueError):
        R.expose(-rad, 1.0)
    with pytest.raises(ValueError):
        R.expose(rad, 0.0)
    with pytest.raises(ValueError):
        R.crf(torch.tensor([1.5]))


def test_synthetic_radiance_range():
    x = data.photo_patches("test", 4, 32, seed=0)
    rad = R.synthetic_radiance(x, stops=6)
    assert rad.shape == x.shape and float(rad.min()) > 0
    lin = ((x + 1) / 2) ** 2.2 + 2 ** -10
    ratio = rad / lin  # the brightening factor 2 ** (stops * b), b in [0, 1]
    assert float(ratio.min()) >= 1 - 1e-4 and float(ratio.max()) <= 2 ** 6 + 1e-3


# --- classical baselines ------------------------------------------------------------------

def test_merge_debevec_recovers_radiance_without_noise():
    rad = torch.exp(torch.linspace(math.log(0.02), math.log(15), 200)).view(1, 1, 10, 20)
    times = [1 / 16, 1 / 2, 4.0]
    ldrs = torch.stack([R.expose(rad, t, bits=None) for t in times], 1)
    est = R.merge_debevec(ldrs, times)
    assert torch.allclose(est, rad, rtol=1e-4)
    assert torch.allclose(R.merge_debevec(ldrs, times, noise_aware=True), rad, rtol=1e-4)
    # with sensor noise, inverse-variance (noise-aware) weights are closer in the dark
    g = torch.Generator().manual_seed(0)
    dark = torch.full((1, 1, 64, 64), 0.05)
    noisy = torch.stack([R.expose(dark, t, noise=0.004, bits=None, generator=g) for t in times], 1)
    assert (R.log_radiance_error(R.merge_debevec(noisy, times, noise_aware=True), dark)
            < R.log_radiance_error(R.merge_debevec(noisy, times), dark))
    # every exposure clipped: falls back to the shortest one (clipped at 1/t_min)
    bright = torch.full((1, 1, 1, 1), 1000.0)
    lb = torch.stack([R.expose(bright, t, bits=None) for t in times], 1)
    assert torch.allclose(R.merge_debevec(lb, times), torch.tensor(16.0))
    with pytest.raises(ValueError):
        R.merge_debevec(ldrs, [1.0, 2.0])
    with pytest.raises(ValueError):
        R.merge_debevec(ldrs[0], times)


def test_hat_weight():
    z = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.allclose(R.hat_weight(z), torch.tensor([0.0, 0.5, 1.0, 0.0]))


def test_tonemap_range_and_monotonic():
    rad = torch.exp(torch.linspace(-5, 5, 64)).view(1, 1, 8, 8).repeat(1, 3, 1, 1)
    t = R.tonemap(rad)
    assert t.shape == rad.shape and float(t.min()) >= -1 and float(t.max()) <= 1
    assert torch.all(t[0, 0].flatten().diff() >= 0)
    with pytest.raises(ValueError):
        R.tonemap(-rad)


def test_bicubic_shape_and_exact_on_constants():
    x = torch.full((2, 3, 8, 8), 0.2)
    y = R.bicubic(x, 4)
    assert y.shape == (2, 3, 32, 32) and torch.allclose(y, torch.full_like(y, 0.2), atol=1e-6)


def test_classical_denoisers_reduce_noise():
    clean = R.blur(data.photo_patches("test", 2, 48, gray=True, seed=0), R.gaussian_kernel(5, 1.0))
    noisy = R.add_noise(clean, 0.1, generator=torch.Generator().manual_seed(0))
    p0 = metrics.psnr(noisy.clamp(-1, 1), clean)
    for m in R.DENOISERS:
        out = R.denoise_classical(noisy, m, 0.1)
        assert out.shape == clean.shape
        assert metrics.psnr(out, clean) > p0 + 2, m
    with pytest.raises(ValueError):
        R.denoise_classical(noisy, "bm3d", 0.1)


def test_deconvolution_sharpens_a_blurred_image():
    x = data.photo_patches("test", 2, 48, gray=True, seed=1)
    k = R.gaussian_kernel(7, 1.5)
    b = R.blur(x, k)
    for method, param in (("richardson_lucy", 30), ("wiener", 0.01)):
        out = R.deconvolve(b, k, method, param)
        assert out.shape == x.shape
        assert R.sharpness(out) > R.sharpness(b)
    with pytest.raises(ValueError):
        R.deconvolve(b, k, "blind")


def test_inpaint_biharmonic_fills_only_the_hole_and_is_exact_for_linear_ramps():
    ramp = torch.linspace(-0.8, 0.8, 16).view(1, 1, 1, 16).repeat(1, 3, 16, 1)
    m = R.box_masks(1, 16, 6, centre=True)
    out = R.inpaint_biharmonic(ramp * (1 - m), m)
    assert torch.allclose(out, ramp, atol=1e-3)  # a linear function is biharmonic
    with pytest.raises(ValueError):
        R.inpaint_biharmonic(ramp, m[:, :, :8])
    with pytest.raises(ValueError):
        R.inpaint_biharmonic(ramp, m * 0.5)


# --- colour -------------------------------------------------------------------------------

def test_yuv_matches_skimage_and_round_trips():
    import skimage.color

    x = img(2, 3, 8, 8)
    yuv = R.rgb_to_yuv(x)
    ref = skimage.color.rgb2yuv(((x[0] + 1) / 2).permute(1, 2, 0).double().numpy())
    assert np.allclose(yuv[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    assert torch.allclose(R.yuv_to_rgb(yuv), x, atol=1e-5)
    with pytest.raises(ValueError):
        R.rgb_to_yuv(img(1, 1))


# --- networks -----------------------------------------------------------------------------

def test_network_shapes():
    x = img(2, 1, 16, 16)
    sr = R.SRResNet(1, 4, width=8, blocks=1)
    assert sr(x).shape == (2, 1, 64, 64)
    # the residual tail starts at zero: an untrained SRResNet is bicubic interpolation
    assert torch.allclose(sr(x), torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic").clamp(-1.5, 1.5))
    assert R.DnCNN(1, 8, 3)(x).shape == x.shape
    assert R.DnCNN(1, 8, 3, extra=1)(torch.cat([x, x], 1)).shape == x.shape
    assert R.MultiScaleDeblur(1, 8, 3)(x).shape == x.shape
    x3 = img(2, 3, 16, 16)
    m = R.box_masks(2, 16, 4)
    ce = R.ContextEncoder(3, 8)(torch.cat([x3 * (1 - m), m], 1))
    assert ce.shape == x3.shape and torch.allclose(ce * (1 - m), x3 * (1 - m))  # known pixels kept
    colorizer = R.Colorizer(8)
    col = colorizer(x)
    assert col.shape == (2, 3, 16, 16) and torch.allclose(col, x.expand(-1, 3, -1, -1), atol=1e-5)  # starts grey
    torch.nn.init.normal_(colorizer.out.weight, std=0.1)
    col = colorizer(x).detach()
    inside = ((col > -1) & (col < 1)).all(1, keepdim=True)  # no channel clipped
    assert inside.float().mean() > 0.2 and R.colourfulness(col) > 0
    assert torch.allclose(R.rgb_to_yuv(col)[:, :1][inside], ((x + 1) / 2)[inside], atol=1e-4)  # luma kept
    ldrs = torch.rand(2, 3, 1, 16, 16)
    assert R.HDRMerge(3, 1, 8, 3)(ldrs, [0.25, 1, 4]).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError):
        R.HDRMerge(3, 1, 8, 3)(torch.rand(2, 2, 1, 16, 16), [1, 2])
    assert R.PatchDiscriminator(1, 8)(x).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError):
        R.SRResNet(1, 3)


def test_gan_losses_match_their_formulas():
    dr, df = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    ref_d = -(torch.log(sig(dr)).mean() + torch.log(1 - sig(df)).mean())
    assert torch.allclose(R.d_loss(dr, df), ref_d)
    assert torch.allclose(R.g_adv_loss(df), -torch.log(sig(df)).mean())


def test_fit_reduces_a_denoising_loss():
    x = data.photo_patches("train", 64, 16, gray=True, seed=0)
    net = R.DnCNN(1, 8, 3)
    degrade = lambda y, g: R.add_noise(y, 0.1, generator=g)
    h = R.fit(net, x, degrade, 60, batch=8, lr=3e-3)
    assert np.mean(h["content"][-10:]) < np.mean(h["content"][:10])
    h = R.fit(net, x, degrade, 3, batch=4, disc=R.PatchDiscriminator(2, 8), conditional=True)
    assert set(h) == {"content", "adversarial", "discriminator"}
    with pytest.raises(ValueError):
        R.fit(net, x, degrade, 3, content="l3")


# --- measures -----------------------------------------------------------------------------

def test_sharpness_of_a_ramp_and_of_blur():
    a = 0.01  # slope per pixel in [0, 1] units
    ramp = (torch.arange(32.) * a * 2 - 0.5).view(1, 1, 1, 32).repeat(1, 1, 32, 1)
    assert abs(R.sharpness(ramp) - a) < 1e-9
    x = data.photo_patches("test", 2, 32, gray=True)
    assert R.sharpness(R.blur(x, R.gaussian_kernel(5, 1.5))) < R.sharpness(x)


def test_colourfulness_by_hand():
    grey = torch.zeros(1, 3, 4, 4)
    assert R.colourfulness(grey) == 0
    # half pure red, half pure green (0..255): rg = +-255, yb = 127.5 everywhere
    x = -torch.ones(1, 3, 2, 2)
    x[0, 0, 0] = 1; x[0, 1, 1] = 1
    expected = math.sqrt(255.0 ** 2 + 0) + 0.3 * math.sqrt(0 + 127.5 ** 2)
    assert abs(R.colourfulness(x) - expected) < 1e-6


def test_log_radiance_error_in_stops():
    ref = torch.ones(1, 1, 2, 2)
    est = torch.tensor([[[[2.0, 1.0], [0.25, 1.0]]]])
    assert abs(R.log_radiance_error(est, ref) - 3 / 4) < 1e-12
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert abs(R.log_radiance_error(est, ref, mask) - 1.5) < 1e-12
    with pytest.raises(ValueError):
        R.log_radiance_error(est * 0, ref)
    with pytest.raises(ValueError):
        R.log_radiance_error(est, ref, mask * 0)


def test_psnr_masked_matches_skimage_on_the_hole():
    from skimage.metrics import peak_signal_noise_ratio

    x, y = img(1, 3, 16, 16, 1), img(1, 3, 16, 16, 2)
    m = R.box_masks(1, 16, 6, generator=torch.Generator().manual_seed(3))
    sel = m[0, 0].bool()
    a = ((x[0] + 1) / 2)[:, sel].double().numpy()
    b = ((y[0] + 1) / 2)[:, sel].double().numpy()
    ref = peak_signal_noise_ratio(b, a, data_range=1.0)
    assert abs(R.psnr_masked(x, y, m) - ref) < 1e-6
    full = torch.ones(1, 1, 16, 16)
    assert abs(R.psnr_masked(x, y, full) - metrics.psnr(x, y)) < 1e-6
    with pytest.raises(ValueError):
        R.psnr_masked(x, y, torch.zeros(1, 1, 16, 16))


# --- data: held-out photos never in training patches -----------------------------------------

@pytest.mark.parametrize("gray", [False, True])
def test_test_photos_never_appear_in_training_patches(gray):
    train = data.photo_names("train", gray)
    test = data.photo_names("test", gray)
    assert not set(train) & set(test)
    size = 16
    patches = data.photo_patches("train", 40, size, gray=gray, seed=0)
    # every training patch is found, exactly, in one of the training photos and in no test photo
    photos = {nm: data.photo(nm, gray=gray) for nm in train + test}

    def found(p, names):
        for nm in names:
            ph = photos[nm]
            h, w = ph.shape[1] - size + 1, ph.shape[2] - size + 1
            r, c = torch.nonzero(ph[0, :h, :w] == p[0, 0, 0], as_tuple=True)  # candidate corners
            j = torch.arange(size)
            ok = (ph[0][r[:, None], c[:, None] + j] == p[0, 0]).all(1)           # first row matches
            for rr, cc in zip(r[ok].tolist(), c[ok].tolist()):
                if torch.equal(ph[:, rr:rr + size, cc:cc + size], p):
                    return True
        return False

    for p in patches:
        assert found(p, train) and not found(p, test)


def test_bad_inputs_are_refused():
    with pytest.raises(TypeError):
        R.downsample(np.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(ValueError, match="0..255"):
        R.downsample(torch.full((1, 1, 4, 4), 200.0), 2)
    with pytest.raises(ValueError):
        R.sharpness(torch.zeros(4, 4))
    with pytest.raises(ValueError):
        R.colourfulness(torch.zeros(1, 1, 4, 4))


# --- image-to-image diffusion (Palette) -----------------------------------------------------

def test_luma_chroma_split_round_trips_and_scales():
    x = img(3, 3, 8, 8, seed=5)
    assert torch.allclose(R.compose_yuv(R.luma_of(x), R.chroma_of(x)), x, atol=1e-5)
    grey = torch.full((1, 3, 4, 4), 0.2)
    assert torch.allclose(R.luma_of(grey), torch.full((1, 1, 4, 4), 0.2), atol=1e-6)
    assert torch.allclose(R.chroma_of(grey), torch.zeros(1, 2, 4, 4), atol=1e-6)
    # pure blue has U = 0.436 and pure red V = 0.615 (ITU-R 601): both scaled to exactly 1
    blue = torch.tensor([-1.0, -1.0, 1.0]).view(1, 3, 1, 1)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    assert abs(float(R.chroma_of(blue)[0, 0]) - 1) < 1e-3 and abs(float(R.chroma_of(red)[0, 1]) - 1) < 1e-3
    assert float(R.chroma_of(x).abs().max()) <= 1 + 1e-6
    with pytest.raises(ValueError):
        R.compose_yuv(R.luma_of(x), R.chroma_of(x)[:, :1])


def test_palette_eps_loss_is_ho_et_al_and_x0_mode_converts():
    from lib import diffusion

    sched = diffusion.linear_schedule(50)
    torch.manual_seed(0)
    eps_model = R.Palette(2, 1, sched, base=8, predict="eps")
    x0, cond = img(4, 2, 8, 8, seed=1), img(4, 1, 8, 8, seed=2)
    a = R.palette_loss(eps_model, x0, cond, generator=torch.Generator().manual_seed(3))
    b = diffusion.eps_loss(eps_model, sched, x0, y=cond, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b)
    # an x0-model that knows the answer implies the exact noise ...
    x0_model = R.Palette(2, 1, sched, base=8, predict="x0")
    x0_model.raw = lambda x_t, t, c: x0
    t = torch.tensor([1, 10, 30, 50])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    x_t = diffusion.q_sample(sched, x0, t, noise)
    assert torch.allclose(x0_model(x_t, t, cond), noise, atol=1e-3)
    # ... and its DDIM samples are that answer, whatever the starting noise
    s1 = R.palette_sample(x0_model, cond, steps=5, generator=torch.Generator().manual_seed(0))
    s2 = R.palette_sample(x0_model, cond, steps=5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(s1, x0, atol=1e-4) and torch.allclose(s2, x0, atol=1e-4)
    with pytest.raises(ValueError):
        R.Palette(2, 1, sched, predict="v")
    with pytest.raises(ValueError):
        eps_model(x0, t, img(4, 3, 8, 8))


def test_fit_palette_learns_and_samples_vary():
    from lib import diffusion

    sched = diffusion.linear_schedule(100)
    torch.manual_seed(0)
    model = R.Palette(2, 1, sched, base=8, predict="x0")
    x = img(16, 3, 8, 8, seed=7)
    h, ema = R.fit_palette(model, R.chroma_of(x), R.luma_of(x), steps=30, batch=8, lr=5e-3)
    assert np.mean(h["x0 loss"][-5:]) < np.mean(h["x0 loss"][:5])
    s1 = R.palette_sample(ema, R.luma_of(x[:3]), steps=4, generator=torch.Generator().manual_seed(0))
    s1b = R.palette_sample(ema, R.luma_of(x[:3]), steps=4, generator=torch.Generator().manual_seed(0))
    s2 = R.palette_sample(ema, R.luma_of(x[:3]), steps=4, generator=torch.Generator().manual_seed(1))
    assert s1.shape == (3, 2, 8, 8) and s1.abs().max() <= 1 and torch.equal(s1, s1b) and not torch.equal(s1, s2)
    with pytest.raises(ValueError):
        R.fit_palette(model, R.chroma_of(x) * 3, R.luma_of(x), steps=1)
    with pytest.raises(ValueError):
        R.fit_palette(model, R.chroma_of(x), R.luma_of(x[:5]), steps=1)
    with pytest.raises(TypeError):
        R.palette_sample(torch.nn.Identity(), R.luma_of(x), steps=2)
