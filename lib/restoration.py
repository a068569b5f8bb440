"""Image restoration, editing and HDR: classical baselines and the restoration networks
(introduced in chapter 10).

Read top to bottom:

1. **Classical baselines** (scikit-image): :func:`bicubic`, :func:`denoise_classical`,
   :func:`deconvolve`, :func:`match_colours`, :func:`inpaint_biharmonic`, :func:`merge_debevec` (with
   :func:`hat_weight`), :func:`tonemap`.
2. **Networks**: :class:`SRResNet` (built of :class:`EDSRBlock` s), :class:`DnCNN` (also the
   deblurrer), :class:`MultiScaleDeblur`, :class:`ContextEncoder` (with :func:`context_stats`),
   :class:`Colorizer`,
   :class:`HDRMerge`. Their adversary is :class:`lib.nets.PatchDiscriminator`.
3. **Training and inference**: :func:`psnr_loss` (the per-image log-MSE content loss),
   :func:`dihedral` (the 8 flips/rotations: augmentation and self-ensemble),
   :func:`fit_restorer` (content loss, optionally + the non-saturating GAN loss of
   :mod:`lib.gan`), :func:`restore` (a trained net over a batch, optionally self-ensembled).

The degradations these networks learn to invert (blur, noise, masks, the HDR camera) are in
:mod:`lib.degrade`; the measures (PSNR in the hole, sharpness, colourfulness, log-radiance
error) in :mod:`lib.metrics`; image-to-image diffusion in :mod:`lib.palette`.

Conventions: images are ``(N, C, H, W)`` float tensors in ``[-1, 1]``; *linear radiance*
(HDR) is ``(N, C, H, W)`` in ``[0, inf)``; low-dynamic-range exposures are in ``[0, 1]``
(the sensor's 0..255 divided by 255). Masks are ``(N, 1, H, W)`` with 1 = missing pixel.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from skimage import restoration as skr
from skimage.exposure import match_histograms
from skimage import transform as skt

from . import checks, gan, train
from .degrade import check_kernel, inverse_crf, yuv_to_rgb


# ---------------------------------------------------------------------------------------
# 1. Classical baselines (scikit-image) and tone mapping
# ---------------------------------------------------------------------------------------

def _np(x):  # (N, C, H, W) [-1, 1] -> list of (H, W, C) float64 in [0, 1]
    return list(((x.detach().cpu().double() + 1) / 2).permute(0, 2, 3, 1).numpy())


def _torch(ims, like):  # list of (H, W, C) in [0, 1] -> (N, C, H, W) in [-1, 1]
    a = np.clip(np.stack(ims), 0, 1)
    return (torch.tensor(a, dtype=like.dtype).permute(0, 3, 1, 2) * 2 - 1).to(like.device)


def bicubic(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Classical upsampling: ``(N, C, h, w) -> (N, C, h*f, w*f)`` with scikit-image's bicubic
    spline (``skimage.transform.resize(order=3)``), clipped to ``[-1, 1]``."""
    checks.images(x); checks.positive_int(factor, "factor")
    h, w = x.shape[-2:]
    return _torch([skt.resize(im, (h * factor, w * factor, im.shape[2]), order=3, mode="reflect",
                              anti_aliasing=False) for im in _np(x)], x)


DENOISERS = ("nl_means", "tv", "bilateral")


def denoise_classical(x: torch.Tensor, method: str, sigma: float, strength: float = 1.0) -> torch.Tensor:
    """scikit-image's classical denoisers on ``x (N, C, H, W)`` with known noise ``sigma`` ([0, 1] units).

    * ``"nl_means"`` -- non-local means (Buades et al. 2005), ``h = strength * 0.8 * sigma``;
    * ``"tv"`` -- total-variation (Chambolle), ``weight = strength * sigma``;
    * ``"bilateral"`` -- the bilateral filter, range ``sigma_color = strength * 2 * sigma``, spatial
      ``sigma_spatial = 1.5`` pixels. (Wavelet shrinkage, ``denoise_wavelet``, needs PyWavelets,
      which is not a dependency of this book.)

    ``strength`` scales the method's parameter (tune it on training images). Inputs may lie a
    little outside ``[-1, 1]`` (unclipped noise); the output is clipped to ``[-1, 1]``.
    """
    checks.choice(method, DENOISERS, "denoiser")
    checks.tensor(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    ims = list(((x.detach().cpu().double() + 1) / 2).permute(0, 2, 3, 1).numpy())
    out = []
    for im3 in ims:
        im, ax = (im3[..., 0], None) if im3.shape[2] == 1 else (im3, -1)
        if method == "nl_means":
            y = skr.denoise_nl_means(im, h=strength * 0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                   fast_mode=True, channel_axis=ax)
        elif method == "tv":
            y = skr.denoise_tv_chambolle(im, weight=strength * sigma, channel_axis=ax)
        else:
            y = skr.denoise_bilateral(np.clip(im, 0, 1), sigma_color=strength * 2 * sigma, sigma_spatial=1.5,
                                    channel_axis=ax)
        out.append(y.reshape(im3.shape))
    return _torch(out, x)


def deconvolve(x: torch.Tensor, kernel: torch.Tensor, method: str = "richardson_lucy",
               param: float | None = None) -> torch.Tensor:
    """Non-blind deconvolution with the *known* kernel (scikit-image):

    * ``"richardson_lucy"`` -- ``param`` iterations (default 30) of Richardson-Lucy;
    * ``"wiener"`` -- Wiener filter with regularisation ``balance = param`` (default 0.01).

    Each image is mirror-padded by the kernel size before deconvolution and cropped after, so
    that the zero (Richardson-Lucy) or periodic (Wiener) border assumptions do not ring.
    """
    checks.images(x); check_kernel(kernel)
    checks.choice(method, ("richardson_lucy", "wiener"), "deconvolution method")
    psf = kernel.double().numpy()
    p = max(psf.shape)  # mirror-pad so that neither method sees a hard image border (then crop)
    out = []
    for im in _np(x):
        chans = []
        for c in range(im.shape[2]):
            padded = np.pad(im[..., c], p, mode="symmetric")
            if method == "richardson_lucy":
                d = skr.richardson_lucy(padded, psf, num_iter=int(param or 30), clip=True)
            else:
                d = skr.wiener(padded, psf, balance=0.01 if param is None else param, clip=False)
            chans.append(d[p:-p, p:-p])
        out.append(np.stack(chans, -1))
    return _torch(out, x)


def match_colours(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Classical colourisation by histogram matching: each channel of ``x (N, C, H, W)`` gets the
    value distribution of the same channel of ``reference (M, C, H', W')`` (all its images pooled),
    by a monotone per-channel tone curve (``skimage.exposure.match_histograms``). A grey image
    repeated to 3 channels thus gets the reference's colour cast: brighter pixels take the colours
    of the reference's brighter pixels. Both in ``[-1, 1]``; returns ``x``'s shape."""
    checks.images(x); checks.images(reference, channels=x.shape[1], name="reference")
    ref = np.concatenate(_np(reference), 0)                       # (M*H', W', C): one pooled image
    return _torch([match_histograms(im, ref, channel_axis=-1) for im in _np(x)], x)


def inpaint_biharmonic(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Classical inpainting: fill the pixels where ``mask == 1`` by solving the biharmonic equation
    (``skimage.restoration.inpaint_biharmonic``). ``x (N, C, H, W)``, ``mask (N, 1, H, W)``."""
    checks.images(x); checks.binary(mask, "mask")
    if mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"mask must have shape {(x.shape[0], 1, *x.shape[2:])}, got {tuple(mask.shape)}")
    ms = mask[:, 0].cpu().numpy().astype(bool)
    return _torch([skr.inpaint_biharmonic(im, m, channel_axis=-1) for im, m in zip(_np(x), ms)], x)


def hat_weight(z: torch.Tensor) -> torch.Tensor:
    """Debevec-Malik's triangle weight ``w(z) = 1 - |2z - 1|`` for pixel values ``z`` in ``[0, 1]``:
    full trust at mid-grey, none at 0 (under-exposed) and 1 (clipped)."""
    checks.value_range(z, 0, 1, "pixel values")
    return 1 - (2 * z - 1).abs()


def merge_debevec(ldrs: torch.Tensor, times, gamma: float = 2.2, noise_aware: bool = False) -> torch.Tensor:
    """Classical HDR merge: the weighted average in the log domain (Debevec & Malik 1997)

    ``ln E = sum_j w(z_j) (ln f^-1(z_j) - ln t_j) / sum_j w(z_j)``

    ``ldrs (N, K, C, H, W)`` in ``[0, 1]``: ``K`` exposures with times ``times`` (length K).
    Where every exposure has zero weight (all clipped, or all black) the pixel takes the
    shortest exposure's estimate if it is clipped there, else the longest's. Returns linear
    radiance ``(N, C, H, W)``.

    ``noise_aware=True`` multiplies each weight by ``(t_j / t_max)^2``: with additive sensor noise the
    variance of an exposure's log estimate falls like ``1 / t_j^2``, so longer exposures deserve
    more trust (inverse-variance weighting, as in Robertson et al.'s and later noise-optimal merges).
    """
    checks.tensor(ldrs, "ldrs")
    if ldrs.dim() != 5:
        raise ValueError(f"ldrs must have shape (N, K, C, H, W), got {tuple(ldrs.shape)}")
    t = torch.as_tensor(times, dtype=ldrs.dtype, device=ldrs.device)
    if t.dim() != 1 or len(t) != ldrs.shape[1] or (t <= 0).any():
        raise ValueError(f"times must be {ldrs.shape[1]} positive numbers, got {times}")
    w = hat_weight(ldrs)
    if noise_aware:
        w = w * (t / t.max()).view(1, -1, 1, 1, 1) ** 2
    ln_e = torch.log(inverse_crf(ldrs, gamma).clamp_min(1e-8)) - torch.log(t).view(1, -1, 1, 1, 1)
    est = (w * ln_e).sum(1) / w.sum(1).clamp_min(1e-12)
    short, long_ = t.argmin(), t.argmax()
    fallback = torch.where(ldrs[:, short] > 0.5, ln_e[:, short], ln_e[:, long_])
    est = torch.where(w.sum(1) > 1e-6, est, fallback)
    return est.exp()


def tonemap(radiance: torch.Tensor, key: float = 0.18, gamma: float = 2.2) -> torch.Tensor:
    """Global Reinhard tone mapping: linear radiance ``(N, C, H, W)`` -> displayable ``[-1, 1]``.

    The luminance is scaled so that its log-average becomes ``key``, compressed by
    ``L / (1 + L)``, the colours follow the luminance ratio, and a display gamma is applied.
    """
    checks.tensor(radiance, "radiance")
    if (radiance < 0).any():
        raise ValueError("radiance must be >= 0")
    lum = radiance.mean(1, keepdim=True).clamp_min(1e-8)
    logavg = torch.exp(torch.log(lum).mean(dim=(1, 2, 3), keepdim=True))
    ls = key * lum / logavg
    ld = ls / (1 + ls)
    out = (radiance / lum * ld).clamp(0, 1) ** (1 / gamma)
    return out * 2 - 1


# ---------------------------------------------------------------------------------------
# 2. Networks
# ---------------------------------------------------------------------------------------

class EDSRBlock(nn.Module):
    """EDSR's residual block (Lim et al. 2017): conv-ReLU-conv, no batch norm, the residual scaled
    by 0.5 and added to the identity. ``(N, w, H, W)`` -> same. (The time-conditioned residual
    block of the diffusion U-Net is :class:`lib.nets.ResBlock`.)"""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1))

    def forward(self, h):
        return h + 0.5 * self.body(h)


class SRResNet(nn.Module):
    """SRResNet-style super-resolution (Ledig et al. 2017), small.

    ``(N, C, h, w)`` in ``[-1, 1]`` -> ``(N, C, h*f, w*f)``: head conv, ``blocks`` residual blocks
    at low resolution, a long skip, sub-pixel convolution (PixelShuffle) x2 per octave, tail conv.
    As in VDSR the network predicts only the *residual* on top of a bicubic upsampling of its
    input, so at initialisation it already equals (torch's) bicubic interpolation.
    """

    def __init__(self, channels: int = 1, factor: int = 2, width: int = 32, blocks: int = 4):
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"factor must be 2 or 4, got {factor}")
        self.factor, self.channels = factor, channels
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*[EDSRBlock(width) for _ in range(blocks)])
        ups = []
        for _ in range(int(math.log2(factor))):
            ups += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.ReLU()]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight); nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.images(x, channels=self.channels, name="low-resolution images")
        h = self.head(x)
        h = h + self.blocks(h)
        base = F.interpolate(x, scale_factor=self.factor, mode="bicubic", align_corners=False)
        return (base + self.tail(self.up(h))).clamp(-1.5, 1.5)


class DnCNN(nn.Module):
    """DnCNN-style residual CNN (Zhang et al. 2017): ``depth`` 3x3 convs with ReLUs predict the
    *degradation* (noise, or the blur residual), which is subtracted from the input.

    ``(N, C_in, H, W)`` -> ``(N, C, H, W)``; ``C_in = channels + extra`` (e.g. a noise-level map);
    the output is ``x[:, :channels] - residual``.
    """

    def __init__(self, channels: int = 1, width: int = 32, depth: int = 6, extra: int = 0):
        super().__init__()
        layers = [nn.Conv2d(channels + extra, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(width, channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.channels, self.extra = channels, extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # degraded images: noisy values may leave [-1, 1], so only the shape is checked
        checks.shape(x, (None, self.channels + self.extra, None, None),
                     "degraded images" + (f" (+ {self.extra} extra channel(s))" if self.extra else ""))
        return x[:, :self.channels] - self.net(x)


class MultiScaleDeblur(nn.Module):
    """A two-scale deblurrer in the spirit of Nah et al. (2017): a coarse DnCNN restores the
    half-resolution image; its upsampled result is given to the fine-scale DnCNN as extra input
    ("coarser scale features aid finer scale deblurring"). Residual output, ``(N, C, H, W)``."""

    def __init__(self, channels: int = 1, width: int = 32, depth: int = 6):
        super().__init__()
        self.coarse = DnCNN(channels, width, depth)
        self.fine = DnCNN(channels, width, depth, extra=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.shape(x, (None, self.coarse.channels, None, None), "blurry images")
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"blurry images need an even height and width (one 2x coarser scale), "
                             f"got {tuple(x.shape[-2:])}")
        small = self.coarse(F.avg_pool2d(x, 2))
        up = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.fine(torch.cat([x, up], 1))


def _down(a, b):
    return nn.Sequential(nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2))


def _up(a, b):
    return nn.Sequential(nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU())


class SkipEncoderDecoder(nn.Module):
    """The small U-Net body of :class:`ContextEncoder` and :class:`Colorizer`:
    ``(N, in_ch, H, W) -> features (N, width, H, W)`` (``H, W`` multiples of 8).

    Three stride-2 convolutions (kernel 4, LeakyReLU(0.2) after each) down to ``H/8``, a 3x3
    convolution + ReLU at the bottleneck, three transposed convolutions (ReLU after each) back
    up; the second and third read the encoder's features of their scale concatenated to their
    own (the skips). The caller adds its own output layer. (Not the pix2pix generator
    :class:`lib.nets.ImageUNet`: post-activation, no batch norm, a bottleneck convolution.)
    """

    def __init__(self, in_ch: int, width: int = 32):
        super().__init__()
        checks.positive_int(in_ch, "in_ch"); checks.positive_int(width, "width")
        w = width
        self.e1, self.e2, self.e3 = _down(in_ch, w), _down(w, 2 * w), _down(2 * w, 4 * w)
        self.mid = nn.Sequential(nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU())
        self.d3, self.d2, self.d1 = _up(4 * w, 2 * w), _up(4 * w, w), _up(2 * w, w)
        self.in_ch = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.shape(x, (None, self.in_ch, None, None), "input")
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"input height and width must be multiples of 8, got {tuple(x.shape[-2:])}")
        h1 = self.e1(x); h2 = self.e2(h1); h3 = self.e3(h2)            # H/2, H/4, H/8
        u = self.d3(self.mid(h3))                                      # (N, 2w, H/4, W/4)
        u = self.d2(torch.cat([u, h2], 1))                             # (N, w, H/2, W/2)
        return self.d1(torch.cat([u, h1], 1))                          # (N, w, H, W)


def context_stats(x: torch.Tensor, mask: torch.Tensor, ring: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour and the contrast around a hole: statistics of the *known* pixels within
    ``ring`` pixels (Chebyshev distance) of the hole.

    ``x (N, C, H, W)``, ``mask (N, 1, H, W)`` (1 = missing). Returns the per-channel mean
    ``mu (N, C, 1, 1)`` and one standard deviation ``sd (N, 1, 1, 1)`` (pooled over the
    channels) of the ring's pixels; an image without a hole (or whose ring is empty) gets
    ``mu = 0``, ``sd = 0``. A uniform surround gives ``sd = 0`` exactly. Used by
    :class:`ContextEncoder` with ``normalize=True``.
    """
    checks.tensor(x, "x"); checks.positive_int(ring, "ring")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    checks.binary(mask, "mask")
    if mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"mask must have shape {(x.shape[0], 1, *x.shape[2:])}, got {tuple(mask.shape)}")
    m = mask.to(x.dtype)
    near = F.max_pool2d(m, 2 * ring + 1, stride=1, padding=ring) - m    # 1 on the ring of known pixels
    n = near.sum((2, 3), keepdim=True).clamp_min(1)
    mu = (x * near).sum((2, 3), keepdim=True) / n                       # (N, C, 1, 1)
    var = (((x - mu) ** 2) * near).sum((1, 2, 3), keepdim=True) / (n * x.shape[1])
    return mu, var.sqrt()                                               # (N, 1, 1, 1)


class ContextEncoder(nn.Module):
    """Context-encoder-style inpainting net (Pathak et al. 2016) with U-Net skips.

    Input: the masked image and the mask, ``(N, C+1, H, W)`` (``H, W`` multiples of 8).
    A :class:`SkipEncoderDecoder` and a 3x3 output convolution predict the image. Output:
    the image with the hole filled, ``mask * prediction + (1 - mask) * input`` in ``[-1, 1]``
    (the known pixels are copied: compositing).

    ``normalize=False`` (Pathak et al.): the hole is zero (mid-grey) in the input and the
    prediction is ``tanh`` of the output convolution, absolute colours the net must get right
    from its training photos. ``normalize=True`` (*context normalization*): with ``mu, sd``
    the colour and contrast of the known pixels within ``ring`` pixels of the hole
    (:func:`context_stats`), the net sees ``(input - mu) / sd`` (the hole pre-filled with
    ``mu``, so it reads 0) and the prediction is ``mu + sd * output``, clipped to
    ``[-1, 1]``: the net only predicts the *shape* of the fill in units of the local
    contrast, the colour and brightness come from the hole's own surround, and a uniform
    surround (``sd = 0``) is filled with exactly its colour.

    ``start="biharmonic"`` (only with ``normalize=True``): the hole is pre-filled by
    :func:`inpaint_biharmonic` instead of ``mu`` and the prediction is that fill plus
    ``sd * output``, with the output convolution starting at zero: an untrained net *is*
    biharmonic inpainting, and training learns a correction to the classical fill (the
    classical solver runs on the CPU in every forward pass, training included).
    """

    STARTS = ("mean", "biharmonic")

    def __init__(self, channels: int = 3, width: int = 32, normalize: bool = False, ring: int = 3,
                 start: str = "mean"):
        super().__init__()
        checks.positive_int(channels, "channels")
        checks.choice(normalize, (False, True), "normalize"); checks.positive_int(ring, "ring")
        checks.choice(start, self.STARTS, "start")
        if start == "biharmonic" and not normalize:
            raise ValueError('start="biharmonic" needs normalize=True (the correction is in units of sd)')
        self.body = SkipEncoderDecoder(channels + 1, width)
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        self.channels, self.normalize, self.ring, self.start = channels, normalize, ring, start
        if start == "biharmonic":
            nn.init.zeros_(self.out.weight); nn.init.zeros_(self.out.bias)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        checks.shape(inp, (None, self.channels + 1, None, None),
                     f"input (the masked image, {self.channels} channel(s), and the mask)")
        x, m = inp[:, :self.channels], inp[:, self.channels:]
        checks.value_range(x, -1.0, 1.0, "the masked image")
        checks.value_range(m, 0.0, 1.0, "the mask (1 = hole)")
        if not self.normalize:
            pred = torch.tanh(self.out(self.body(inp)))
            return m * pred + (1 - m) * x
        hole = (m > 0.5).to(x.dtype)
        mu, sd = context_stats(x, hole, self.ring)
        fill = mu if self.start == "mean" else inpaint_biharmonic(x.detach() * (1 - hole), hole)
        base = x * (1 - m) + fill * m
        z = torch.where(sd > 0, (base - mu) / (sd + 1e-3), torch.zeros_like(base))
        pred = fill + sd * self.out(self.body(torch.cat([z, m], 1)))
        return (m * pred + (1 - m) * x).clamp(-1, 1)


class Colorizer(nn.Module):
    """Colorization net: grey image ``(N, 1, H, W)`` in ``[-1, 1]`` (the luma ``Y`` mapped to
    ``[-1, 1]``) -> RGB ``(N, 3, H, W)``. A small U-Net (:class:`SkipEncoderDecoder`) predicts the
    chroma ``(U, V)``; the input's luma is kept (exactly where no RGB channel clips), so the output
    differs from the input only in colour. The last layer starts at zero: an untrained colorizer
    returns the grey image."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.body = SkipEncoderDecoder(1, width)
        self.out = nn.Conv2d(width + 1, 2, 3, padding=1)
        nn.init.zeros_(self.out.weight); nn.init.zeros_(self.out.bias)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        checks.images(g, channels=1, name="grey images (luma)")
        uv = 0.5 * torch.tanh(self.out(torch.cat([self.body(g), g], 1)))  # zero-initialised: starts grey
        return yuv_to_rgb(torch.cat([(g + 1) / 2, uv], 1))


class HDRMerge(nn.Module):
    """A small learned HDR merge (in the spirit of Kalantari & Ramamoorthi 2017).

    Input: ``K`` exposures ``(N, K, C, H, W)`` in ``[0, 1]`` and their times. Each exposure gives a
    per-pixel log-radiance estimate ``ln f^-1(z_j) - ln t_j``; a CNN that sees all exposures predicts
    per-pixel softmax *weights* over the ``K`` estimates (a learned, noise- and context-aware version
    of the hat weights) and a small log-domain correction. Output: linear radiance ``(N, C, H, W)``.
    """

    def __init__(self, k: int = 3, channels: int = 1, width: int = 32, depth: int = 5, gamma: float = 2.2):
        super().__init__()
        self.k, self.c, self.gamma = k, channels, gamma
        layers = [nn.Conv2d(2 * k * channels, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(width, k * channels + channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def log_estimates(self, ldrs, times):
        t = torch.as_tensor(times, dtype=ldrs.dtype, device=ldrs.device).view(1, -1, 1, 1, 1)
        return torch.log(inverse_crf(ldrs, self.gamma).clamp_min(2 ** -16)) - torch.log(t)

    def forward(self, ldrs, times):
        n, k, c, h, w = ldrs.shape
        if k != self.k or c != self.c:
            raise ValueError(f"expected (N, {self.k}, {self.c}, H, W) exposures, got {tuple(ldrs.shape)}")
        ln_e = self.log_estimates(ldrs, times)                         # (N, K, C, H, W)
        feats = torch.cat([ldrs * 2 - 1, hat_weight(ldrs)], 1).view(n, 2 * k * c, h, w)
        out = self.net(feats)
        logits = out[:, :k * c].view(n, k, c, h, w) + 4 * torch.log(hat_weight(ldrs) + 1e-3)
        wts = torch.softmax(logits, 1)
        return torch.exp((wts * ln_e).sum(1) + 0.1 * out[:, k * c:])


# ---------------------------------------------------------------------------------------
# 3. Training and inference
# ---------------------------------------------------------------------------------------

CONTENT_LOSSES = ("l1", "l2", "psnr")


def psnr_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The PSNR-matched content loss: the mean over the batch of each image's ``log10 MSE``.

    ``out``, ``target``: ``(N, ...)``; the MSE is taken per image (over everything but the
    first dimension), clamped at ``1e-10``. With images in ``[-1, 1]`` (peak = the [0, 1]
    range) an image's PSNR is ``10 log10 4 - 10 log10 MSE``, so minimising this loss is
    maximising the *mean per-image PSNR*, the number :func:`lib.metrics.psnr` reports:
    ``psnr_loss = (10 log10 4 - mean PSNR) / 10``. Unlike the plain MSE (``"l2"``), which is
    dominated by the noisiest, hardest images of a batch, each image counts by its *relative*
    error, as in the PSNR average. Example: every image at MSE 0.01 gives ``-2``.
    """
    checks.tensor(out, "out"); checks.tensor(target, "target")
    if out.shape != target.shape or out.dim() < 2:
        raise ValueError(f"out and target must have the same (N, ...) shape, "
                         f"got {tuple(out.shape)} and {tuple(target.shape)}")
    mse = ((out - target) ** 2).flatten(1).mean(1)
    return torch.log10(mse.clamp_min(1e-10)).mean()


def dihedral(x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """One of the 8 symmetries of the square on the last two (spatial) dimensions of ``x``.

    ``k`` in ``0..7``: rotate by ``k % 4`` quarter turns (``torch.rot90`` over ``(-2, -1)``),
    then, for ``k >= 4``, flip left-right. ``k = 0`` is the identity. ``inverse=True`` applies
    the inverse transform, so ``dihedral(dihedral(x, k), k, inverse=True)`` is ``x`` exactly:
    training-time augmentation (:func:`fit_restorer` with ``augment=True``) and the geometric
    self-ensemble of :func:`restore` use it.
    """
    checks.tensor(x, "x"); checks.choice(k, range(8), "dihedral transform k")
    if x.dim() < 2:
        raise ValueError(f"x needs two spatial dimensions, got shape {tuple(x.shape)}")
    checks.choice(inverse, (False, True), "inverse")
    r, flip = int(k) % 4, int(k) >= 4
    if inverse:
        x = x.flip(-1) if flip else x
        return torch.rot90(x, -r, dims=(-2, -1))
    x = torch.rot90(x, r, dims=(-2, -1))
    return x.flip(-1) if flip else x

def fit_restorer(net: nn.Module, targets: torch.Tensor, degrade: Callable, steps: int, batch: int = 16,
                 lr: float = 1e-3, content: str = "l1", disc: nn.Module | None = None,
                 adv_weight: float = 1e-2, conditional: bool = False, seed: int = 0, desc: str = "restorer",
                 device: torch.device | None = None, augment: bool = False) -> dict[str, list[float]]:
    """Train a restoration network on pairs made on the fly: ``inp = degrade(target, generator)``.

    Loss = content loss (``"l1"`` or ``"l2"`` between ``net(inp)`` and the target, or ``"psnr"``:
    :func:`psnr_loss`, the mean per-image log MSE, i.e. the mean PSNR maximised), plus, when a
    discriminator ``disc`` is given, ``adv_weight`` times the non-saturating adversarial loss
    (SRGAN, context encoder, pix2pix). The GAN losses are :func:`lib.gan.d_loss` /
    :func:`lib.gan.g_loss` at *twice* their scale (``-E log D(x) - E log(1 - D(G(z)))`` and
    ``-E log D(G(z))``, without the game's 1/2), evaluated in the ``"softplus"`` form: the
    scale ``adv_weight`` was tuned against. With ``conditional=True`` the discriminator sees
    ``cat(output, cond)`` where ``cond`` is the network input resized to the output size (a cGAN).
    Each step draws ``batch`` targets ``(N, ...)`` at random; with ``augment=True`` the batch is
    then flipped/rotated by one of the 8 :func:`dihedral` transforms (drawn from the same
    generator) before it is degraded, which multiplies the distinct training patches by 8.
    Adam with a cosine learning-rate decay. Returns the :func:`lib.train.train_loop` history.
    """
    checks.tensor(targets, "targets"); checks.positive_int(steps, "steps"); checks.positive_int(batch, "batch")
    checks.choice(content, CONTENT_LOSSES, "content loss")
    checks.choice(augment, (False, True), "augment")
    device = device or next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    if disc is not None:
        opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    closs = {"l1": F.l1_loss, "l2": F.mse_loss, "psnr": psnr_loss}[content]

    def cond_of(inp, like):
        c = inp if inp.dim() == 4 else inp.flatten(1, 2)
        return F.interpolate(c, size=like.shape[-2:], mode="nearest") if c.shape[-2:] != like.shape[-2:] else c

    def step(i):
        idx = torch.randint(len(targets), (batch,), generator=g)
        y = targets[idx]
        if augment:
            y = dihedral(y, int(torch.randint(8, (1,), generator=g)))
        inp = degrade(y, g)
        y, inp = y.to(device), inp.to(device)
        out = net(inp)
        loss_c = closs(out, y)
        logs = {"content": loss_c}
        loss = loss_c
        if disc is not None:
            c = cond_of(inp, y) if conditional else None
            real = torch.cat([y, c], 1) if conditional else y
            fake = torch.cat([out, c], 1) if conditional else out
            ld = 2 * gan.d_loss(disc(real), disc(fake.detach()), form="softplus")
            opt_d.zero_grad(); ld.backward(); opt_d.step()
            lg = 2 * gan.g_loss(disc(fake), form="softplus")
            loss = loss + adv_weight * lg
            logs.update(adversarial=lg, discriminator=ld)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        return logs

    net.train()
    hist = train.train_loop(step, steps, desc=desc)
    net.eval()
    return hist


@torch.no_grad()
def restore(net: nn.Module, x: torch.Tensor, *args, chunk: int = 64,
            self_ensemble: bool = False) -> torch.Tensor:
    """Run a restoration ``net`` in eval mode over ``x`` in chunks of ``chunk`` (on the net's
    device, extra ``args`` passed to every call, e.g. exposure times); output on the CPU.

    ``self_ensemble=True``: the geometric self-ensemble (EDSR, Lim et al. 2017; also used
    with DnCNN-style denoisers): the input is transformed by each of the 8 :func:`dihedral`
    flips/rotations, restored, transformed back, and the 8 outputs are averaged. Eight times
    the cost; it helps a net that is not exactly equivariant to these symmetries (a CNN
    trained on photos is only approximately so). The net must accept the rotated shape
    (square images, or any shape its layers allow)."""
    checks.choice(self_ensemble, (False, True), "self_ensemble")
    net.eval()
    dev = next(net.parameters()).device

    def run(c):
        if not self_ensemble:
            return net(c.to(dev), *args).cpu()
        outs = [dihedral(net(dihedral(c, k).to(dev), *args).cpu(), k, inverse=True)
                for k in range(8)]
        return torch.stack(outs).mean(0)

    return torch.cat([run(c) for c in x.split(chunk)])
