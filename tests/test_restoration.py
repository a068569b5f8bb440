"""Tests of lib.restoration (chapter 10): classical baselines, networks, the trainer, bad inputs."""
import math

import numpy as np
import pytest
import torch

from lib import data, degrade as D, metrics, nets, restoration as R


def img(n=2, c=1, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_merge_debevec_recovers_radiance_without_noise():
    rad = torch.exp(torch.linspace(math.log(0.02), math.log(15), 200)).view(1, 1, 10, 20)
    times = [1 / 16, 1 / 2, 4.0]
    ldrs = torch.stack([D.expose(rad, t, bits=None) for t in times], 1)
    est = R.merge_debevec(ldrs, times)
    assert torch.allclose(est, rad, rtol=1e-4)
    assert torch.allclose(R.merge_debevec(ldrs, times, noise_aware=True), rad, rtol=1e-4)
    # with sensor noise, inverse-variance (noise-aware) weights are closer in the dark
    g = torch.Generator().manual_seed(0)
    dark = torch.full((1, 1, 64, 64), 0.05)
    noisy = torch.stack([D.expose(dark, t, noise=0.004, bits=None, generator=g) for t in times], 1)
    assert (metrics.log_radiance_error(R.merge_debevec(noisy, times, noise_aware=True), dark)
            < metrics.log_radiance_error(R.merge_debevec(noisy, times), dark))
    # every exposure clipped: falls back to the shortest one (clipped at 1/t_min)
    bright = torch.full((1, 1, 1, 1), 1000.0)
    lb = torch.stack([D.expose(bright, t, bits=None) for t in times], 1)
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
    clean = D.blur(data.photo_patches("test", 2, 48, gray=True, seed=0), D.gaussian_kernel(5, 1.0))
    noisy = D.add_noise(clean, 0.1, generator=torch.Generator().manual_seed(0))
    p0 = metrics.psnr(noisy.clamp(-1, 1), clean)
    for m in R.DENOISERS:
        out = R.denoise_classical(noisy, m, 0.1)
        assert out.shape == clean.shape
        assert metrics.psnr(out, clean) > p0 + 2, m
    with pytest.raises(ValueError):
        R.denoise_classical(noisy, "bm3d", 0.1)


def test_deconvolution_sharpens_a_blurred_image():
    x = data.photo_patches("test", 2, 48, gray=True, seed=1)
    k = D.gaussian_kernel(7, 1.5)
    b = D.blur(x, k)
    for method, param in (("richardson_lucy", 30), ("wiener", 0.01)):
        out = R.deconvolve(b, k, method, param)
        assert out.shape == x.shape
        assert metrics.sharpness(out) > metrics.sharpness(b)
    with pytest.raises(ValueError):
        R.deconvolve(b, k, "blind")


def test_inpaint_biharmonic_fills_only_the_hole_and_is_exact_for_linear_ramps():
    ramp = torch.linspace(-0.8, 0.8, 16).view(1, 1, 1, 16).repeat(1, 3, 16, 1)
    m = D.box_masks(1, 16, 6, centre=True)
    out = R.inpaint_biharmonic(ramp * (1 - m), m)
    assert torch.allclose(out, ramp, atol=1e-3)  # a linear function is biharmonic
    with pytest.raises(ValueError):
        R.inpaint_biharmonic(ramp, m[:, :, :8])
    with pytest.raises(ValueError):
        R.inpaint_biharmonic(ramp, m * 0.5)


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
    m = D.box_masks(2, 16, 4)
    ce = R.ContextEncoder(3, 8)(torch.cat([x3 * (1 - m), m], 1))
    assert ce.shape == x3.shape and torch.allclose(ce * (1 - m), x3 * (1 - m))  # known pixels kept
    colorizer = R.Colorizer(8)
    col = colorizer(x)
    assert col.shape == (2, 3, 16, 16) and torch.allclose(col, x.expand(-1, 3, -1, -1), atol=1e-5)  # starts grey
    torch.nn.init.normal_(colorizer.out.weight, std=0.1)
    col = colorizer(x).detach()
    inside = ((col > -1) & (col < 1)).all(1, keepdim=True)  # no channel clipped
    assert inside.float().mean() > 0.2 and metrics.colourfulness(col) > 0
    assert torch.allclose(D.rgb_to_yuv(col)[:, :1][inside], ((x + 1) / 2)[inside], atol=1e-4)  # luma kept
    ldrs = torch.rand(2, 3, 1, 16, 16)
    assert R.HDRMerge(3, 1, 8, 3)(ldrs, [0.25, 1, 4]).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError):
        R.HDRMerge(3, 1, 8, 3)(torch.rand(2, 2, 1, 16, 16), [1, 2])
    assert nets.PatchDiscriminator(1, 8, n_layers=2, norm=False, max_mult=2, tail_kernel=3)(x).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError):
        R.SRResNet(1, 3)


def test_fit_reduces_a_denoising_loss():
    x = data.photo_patches("train", 64, 16, gray=True, seed=0)
    net = R.DnCNN(1, 8, 3)
    degrade = lambda y, g: D.add_noise(y, 0.1, generator=g)
    h = R.fit_restorer(net, x, degrade, 60, batch=8, lr=3e-3)
    assert np.mean(h["content"][-10:]) < np.mean(h["content"][:10])
    h = R.fit_restorer(net, x, degrade, 3, batch=4, disc=nets.PatchDiscriminator(2, 8, n_layers=2, norm=False, max_mult=2, tail_kernel=3), conditional=True)
    assert set(h) == {"content", "adversarial", "discriminator"}
    with pytest.raises(ValueError):
        R.fit_restorer(net, x, degrade, 3, content="l3")


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
        D.downsample(np.zeros((1, 1, 4, 4)), 2)
    with pytest.raises(ValueError, match="0..255"):
        D.downsample(torch.full((1, 1, 4, 4), 200.0), 2)
    with pytest.raises(ValueError):
        metrics.sharpness(torch.zeros(4, 4))
    with pytest.raises(ValueError):
        metrics.colourfulness(torch.zeros(1, 1, 4, 4))


def test_edsr_block_and_skip_encoder_decoder_shapes():
    x = img(2, 8, 16, 16)
    block = R.EDSRBlock(8)
    torch.nn.init.zeros_(block.body[2].weight); torch.nn.init.zeros_(block.body[2].bias)
    assert torch.equal(block(x), x)                       # a zero residual is the identity
    body = R.SkipEncoderDecoder(3, 8)
    assert body(img(2, 3, 16, 16)).shape == (2, 8, 16, 16)
    with pytest.raises(ValueError):
        R.SkipEncoderDecoder(0, 8)


def test_match_colours_gives_grey_images_the_reference_colours():
    grey = img(2, 1, 8, 8).repeat(1, 3, 1, 1)
    ref = torch.stack([torch.full((8, 8), 0.8), torch.full((8, 8), -0.2), torch.full((8, 8), -0.6)])[None]
    ref = ref + 0.1 * img(1, 3, 8, 8)
    out = R.match_colours(grey, ref)
    assert out.shape == grey.shape
    assert metrics.colourfulness(out) > metrics.colourfulness(grey) + 10  # got a colour cast
    for c in range(3):  # each channel takes the reference's distribution (its mean)
        assert abs(float(out[:, c].mean() - ref[:, c].mean())) < 0.05
    # the tone curves are monotone: the brightness order of the pixels is kept
    a, b = grey[0, 0].flatten(), out[0, 0].flatten()
    assert (b[a.argsort()].diff() >= -1e-6).all()
    with pytest.raises(ValueError, match="channel"):
        R.match_colours(grey, ref[:, :1])


def test_networks_check_their_input_rank_channels_and_range():
    sr = R.SRResNet(channels=1, factor=2, width=4, blocks=1)
    assert sr(torch.zeros(2, 1, 8, 8)).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"low-resolution images must have 1 channel"):
        sr(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[-1, 1\].*divide by 127.5"):
        sr(torch.full((1, 1, 8, 8), 200.0))
    dn = R.DnCNN(channels=1, width=4, depth=3, extra=1)
    assert dn(torch.randn(2, 2, 8, 8) * 3).shape == (2, 1, 8, 8)     # noisy inputs may leave [-1, 1]
    with pytest.raises(ValueError, match=r"\+ 1 extra channel.*shape \(N, 2, N, N\)"):
        dn(torch.zeros(2, 1, 8, 8))
    ms = R.MultiScaleDeblur(channels=1, width=4, depth=3)
    with pytest.raises(ValueError, match="even height and width"):
        ms(torch.zeros(1, 1, 9, 8))
    with pytest.raises(ValueError, match="blurry images must have shape"):
        ms(torch.zeros(1, 8, 8))
    ce = R.ContextEncoder(channels=3, width=4)
    m = torch.zeros(1, 1, 16, 16)
    assert ce(torch.cat([torch.zeros(1, 3, 16, 16), m], 1)).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="the masked image, 3 channel"):
        ce(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"the mask \(1 = hole\) must have values in \[0, 1\]"):
        ce(torch.cat([torch.zeros(1, 3, 16, 16), m - 1], 1))
    with pytest.raises(ValueError, match="multiples of 8"):
        ce(torch.zeros(1, 4, 12, 12))
    col = R.Colorizer(width=4)
    with pytest.raises(ValueError, match=r"grey images \(luma\) must have 1 channel"):
        col(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        col(torch.full((1, 1, 16, 16), 2.0))


def test_dihedral_transforms_round_trip_and_are_the_eight_symmetries():
    x = img(2, 3, 5, 7)  # non-square: a quarter turn swaps height and width
    seen = set()
    for k in range(8):
        y = R.dihedral(x, k)
        assert y.shape == ((2, 3, 5, 7) if k % 2 == 0 else (2, 3, 7, 5))
        assert torch.equal(R.dihedral(y, k, inverse=True), x)  # exact, every k
        seen.add(tuple(y.flatten().tolist()))
    assert len(seen) == 8  # eight different images
    assert torch.equal(R.dihedral(x, 0), x)
    assert torch.equal(R.dihedral(x, 4), x.flip(-1))  # k = 4: the left-right mirror
    sq = img(1, 1, 4, 4)
    assert torch.equal(R.dihedral(sq, 1), torch.rot90(sq, 1, dims=(-2, -1)))
    for bad in (8, -1):
        with pytest.raises(ValueError):
            R.dihedral(x, bad)


class _Identity(torch.nn.Module):
    """Equivariant to every flip and rotation; has one parameter so that restore finds a device."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.w * x


class _LeftShift(_Identity):
    """Not equivariant: moves the image one pixel to the left (wrapping around)."""

    def forward(self, x):
        return self.w * x.roll(-1, -1)


def test_self_ensemble_of_an_equivariant_net_returns_its_output():
    x = img(3, 1, 8, 8)
    assert torch.allclose(R.restore(_Identity(), x, self_ensemble=True), x, atol=1e-6)
    assert torch.allclose(R.restore(_Identity(), x, chunk=2, self_ensemble=True), x, atol=1e-6)
    # a non-equivariant net: the 8 transformed shifts average to the mean of the 4 one-pixel
    # shifts (left, right, up, down: each direction from two of the eight transforms)
    out = R.restore(_LeftShift(), x, self_ensemble=True)
    want = sum(x.roll(s, d) for s in (1, -1) for d in (-1, -2)) / 4
    assert torch.allclose(out, want, atol=1e-6)
    assert not torch.allclose(R.restore(_LeftShift(), x), want, atol=1e-3)
    with pytest.raises(ValueError):
        R.restore(_Identity(), x, self_ensemble="yes")


def test_psnr_loss_is_the_mean_per_image_log10_mse():
    target = torch.zeros(2, 1, 4, 4)
    out = torch.full_like(target, 0.1)  # every pixel off by 0.1: MSE 0.01 per image
    assert float(R.psnr_loss(out, target)) == pytest.approx(-2.0, abs=1e-6)
    # image 1 at MSE 0.01 (log10 = -2), image 2 at MSE 1e-4 (log10 = -4): mean -3,
    # not the log of the pooled MSE (log10 0.00505 = -2.30)
    out[1] = 0.01
    assert float(R.psnr_loss(out, target)) == pytest.approx(-3.0, abs=1e-6)
    # the PSNR of the [-1, 1] images (peak = the [0, 1] range) is 10 log10 4 - 10 * loss per image
    a, b = img(4, 1, 8, 8, seed=1), img(4, 1, 8, 8, seed=2) * 0.5
    want = (10 * math.log10(4) - metrics.psnr(b, a)) / 10
    assert float(R.psnr_loss(b, a)) == pytest.approx(want, abs=1e-4)
    with pytest.raises(ValueError):
        R.psnr_loss(out, target[:1])


def test_fit_restorer_psnr_content_and_augment_options():
    x = data.photo_patches("train", 32, 16, gray=True, seed=0)
    net = R.DnCNN(1, 8, 3)
    degrade = lambda y, g: D.add_noise(y, 0.1, generator=g)
    h = R.fit_restorer(net, x, degrade, 40, batch=8, lr=3e-3, content="psnr", augment=True)
    assert np.mean(h["content"][-10:]) < np.mean(h["content"][:10])
    # augment draws each step's transform from the generator: the batches seen differ
    seen = {False: [], True: []}
    for aug, batches in seen.items():
        R.fit_restorer(R.DnCNN(1, 8, 3), x, lambda y, g, b=batches: b.append(y) or y, 3,
                       batch=4, augment=aug)
    assert any(not torch.equal(a, b) for a, b in zip(seen[False], seen[True]))
    for bad in ({"content": "psnr2"}, {"content": "PSNR"}, {"augment": "yes"}):
        with pytest.raises(ValueError):
            R.fit_restorer(net, x, degrade, 3, **bad)


def test_context_stats_are_the_ring_of_known_pixels_around_the_hole():
    x = torch.zeros(2, 3, 8, 8)
    m = torch.zeros(2, 1, 8, 8)
    m[:, :, 3:5, 3:5] = 1
    x[0, 0] = 0.5                                  # image 0: uniform surround, channel 0 = 0.5
    x[0, :, 3:5, 3:5] = 0.9                        # (what lies in the hole is never read)
    x[1, :, 2, :] = 1.0                            # image 1: the ring's top row (4 of 12) is 1
    mu, sd = R.context_stats(x, m, ring=1)
    assert mu.shape == (2, 3, 1, 1) and sd.shape == (2, 1, 1, 1)
    assert torch.allclose(mu[0].flatten(), torch.tensor([0.5, 0.0, 0.0])) and sd[0].item() == 0
    assert torch.allclose(mu[1].flatten(), torch.full((3,), 4 / 12))
    assert sd[1].item() == pytest.approx(math.sqrt((4 / 12) * (8 / 12)))   # a Bernoulli's sd
    mu2, _ = R.context_stats(x, m, ring=3)           # a wider ring covers the whole image
    assert mu2[1, 0].item() == pytest.approx(8 / 60)  # the 8 ones of row 2 among 64 - 4
    with pytest.raises(ValueError, match="mask must be binary"):
        R.context_stats(x, m * 0.5)
    with pytest.raises(ValueError, match="mask must have shape"):
        R.context_stats(x, m[:, :, :4])
    with pytest.raises(ValueError, match="ring must be"):
        R.context_stats(x, m, ring=0)


def test_normalized_context_encoder_takes_colour_and_contrast_from_the_surround():
    torch.manual_seed(0)
    ce = R.ContextEncoder(3, 8, normalize=True)
    torch.nn.init.normal_(ce.out.weight, std=0.5)  # a net that would paint the hole
    m = D.box_masks(4, 16, 6, generator=torch.Generator().manual_seed(1))
    flat = torch.tensor([0.3, -0.2, 0.6]).view(1, 3, 1, 1).expand(4, 3, 16, 16)
    out = ce(torch.cat([flat * (1 - m), m], 1))
    assert torch.allclose(out, flat, atol=1e-6)    # a uniform surround: its colour, exactly
    x = img(4, 3, 16, 16) * 0.4                    # in [-0.4, 0.4]: a shift stays in range
    out = ce(torch.cat([x * (1 - m), m], 1)).detach()
    assert torch.allclose(out * (1 - m), x * (1 - m)) and not torch.allclose(out, x)
    shifted = ce(torch.cat([(x + 0.3) * (1 - m), m], 1)).detach()
    assert torch.allclose(shifted, out + 0.3, atol=1e-5)  # brighter surround, brighter fill
    plain = R.ContextEncoder(3, 8)                 # Pathak et al.'s absolute colours: no such rule
    a = plain(torch.cat([x * (1 - m), m], 1)).detach()
    b = plain(torch.cat([(x + 0.3) * (1 - m), m], 1)).detach()
    assert not torch.allclose(b, a + 0.3, atol=1e-3)
    with pytest.raises(ValueError, match="normalize"):
        R.ContextEncoder(3, 8, normalize="yes")


def test_context_encoder_started_at_biharmonic_is_biharmonic_until_trained():
    torch.manual_seed(0)
    x = img(3, 3, 16, 16)
    m = D.box_masks(3, 16, 6, generator=torch.Generator().manual_seed(2))
    inp = torch.cat([x * (1 - m), m], 1)
    ce = R.ContextEncoder(3, 8, normalize=True, start="biharmonic")
    bih = R.inpaint_biharmonic(x * (1 - m), m)
    assert torch.allclose(ce(inp), bih, atol=1e-6)          # the correction starts at zero
    torch.nn.init.normal_(ce.out.weight, std=0.5)
    out = ce(inp).detach()
    assert not torch.allclose(out, bih, atol=1e-3) and torch.allclose(out * (1 - m), x * (1 - m))
    hist = R.fit_restorer(ce, x, lambda y, g: torch.cat([y * (1 - m), m], 1), 2, batch=3)
    assert len(hist["content"]) == 2                        # trains with the solver inside
    with pytest.raises(ValueError, match="unknown start"):
        R.ContextEncoder(3, 8, normalize=True, start="harmonic")
    with pytest.raises(ValueError, match="needs normalize=True"):
        R.ContextEncoder(3, 8, start="biharmonic")
