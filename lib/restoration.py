"""Image restoration, editing and HDR: degradations, networks, classical baselines
(introduced in chapter 10).

Read top to bottom:

1. **Degradations** -- the forward models a restoration network learns to invert:
   :func:`downsample`, :func:`gaussian_kernel`, :func:`motion_kernel`, :func:`blur`,
   :func:`add_noise`, :func:`box_masks`, and for HDR the camera model :func:`crf`,
   :func:`inverse_crf`, :func:`expose`, plus :func:`synthetic_radiance` (a linear
   high-dynamic-range scene made from an ordinary photo).
2. **Classical baselines** (scikit-image): :func:`bicubic`, :func:`denoise_classical`,
   :func:`deconvolve`, :func:`inpaint_biharmonic`, :func:`merge_debevec`, :func:`tonemap`.
3. **Networks**: :class:`SRResNet`, :class:`DnCNN` (also the deblurrer), :class:`MultiScaleDeblur`,
   :class:`ContextEncoder`, :class:`Colorizer`, :class:`HDRMerge`, :class:`PatchDiscriminator`.
4. **Losses and training**: :func:`d_loss`, :func:`g_adv_loss` (the non-saturating GAN loss),
   :func:`fit` (content loss, optionally + adversarial loss).
5. **Measures**: :func:`sharpness`, :func:`colourfulness`, :func:`log_radiance_error`,
   :func:`psnr_masked`; PSNR and SSIM themselves are :func:`lib.metrics.psnr` / ``ssim``.
6. **Image-to-image diffusion** (Palette): :class:`Palette` (a U-Net on the noisy image
   concatenated with the condition), :func:`palette_loss`, :func:`fit_palette`,
   :func:`palette_sample`, and the colorization helpers :func:`luma_of`, :func:`chroma_of`,
   :func:`compose_yuv`.

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

from . import checks

# ---------------------------------------------------------------------------------------
# 1. Degradations
# ---------------------------------------------------------------------------------------


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Box (area) downsampling: ``(N, C, H, W) -> (N, C, H/f, W/f)``.

    Each low-resolution pixel is the mean of one ``factor x factor`` block, so the
    image mean is preserved exactly. ``H`` and ``W`` must be multiples of ``factor``.
    """
    checks.images(x)
    checks.positive_int(factor, "factor")
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"image size {tuple(x.shape[-2:])} must be a multiple of factor {factor}")
    return F.avg_pool2d(x, factor)


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """An isotropic Gaussian blur kernel ``(size, size)``, odd ``size``, summing to 1."""
    checks.positive_int(size, "size")
    if size % 2 == 0:
        raise ValueError(f"kernel size must be odd, got {size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = torch.outer(g, g)
    return (k / k.sum()).float()


def motion_kernel(length: int, angle: float = 0.0, size: int | None = None) -> torch.Tensor:
    """A linear motion-blur kernel ``(size, size)``: a line of ``length`` pixels at ``angle`` degrees
    (0 = horizontal, counter-clockwise), anti-aliased by 8x supersampling, summing to 1.

    ``size`` defaults to the smallest odd number >= ``length``.
    """
    checks.positive_int(length, "length")
    size = size or (length + 1 - length % 2)
    checks.positive_int(size, "size")
    if size % 2 == 0 or size < length:
        raise ValueError(f"size must be odd and >= length, got size={size}, length={length}")
    k = np.zeros((size, size))
    c = size // 2
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, 8 * length)
    a = math.radians(angle)
    xs, ys = c + t * math.cos(a), c - t * math.sin(a)
    for x, y in zip(xs, ys):  # bilinear splat of each sample point
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                k[y0 + dy, x0 + dx] += w
    return torch.tensor(k / k.sum(), dtype=torch.float32)


def _check_kernel(kernel):
    checks.tensor(kernel, "kernel")
    if kernel.dim() != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be 2-D with odd sides, got shape {tuple(kernel.shape)}")
    if abs(float(kernel.sum()) - 1) > 1e-4 or float(kernel.min()) < 0:
        raise ValueError("kernel must be non-negative and sum to 1 (a blur preserves brightness)")
    return kernel


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of ``x (N, C, H, W)`` with ``kernel (k, k)`` (odd sides, sums to 1).

    Borders are handled by mirror reflection (``torch``'s ``reflect`` = scipy's ``mirror``),
    so a constant image stays constant. This is true convolution (the kernel is flipped).
    """
    checks.images(x)
    _check_kernel(kernel)
    kh, kw = kernel.shape
    if kh // 2 >= x.shape[-2] or kw // 2 >= x.shape[-1]:
        raise ValueError(f"kernel {tuple(kernel.shape)} is too large for images {tuple(x.shape[-2:])}")
    c = x.shape[1]
    w = kernel.flip(0, 1).to(x).expand(c, 1, kh, kw)
    xp = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    return F.conv2d(xp, w, groups=c)


def add_noise(x: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator | None = None,
              clip: bool = False) -> torch.Tensor:
    """Additive white Gaussian noise of standard deviation ``sigma`` *in [0, 1] units*.

    ``sigma = 25/255`` is the classic "sigma 25" of the denoising literature. On the
    ``[-1, 1]`` images of this book the added noise therefore has std ``2 * sigma``.
    ``sigma`` may be a tensor ``(N,)`` (one level per image). With ``clip=True`` the result
    is clipped to ``[-1, 1]`` (a real sensor's range); by default it is not, so the noise
    statistics are exactly Gaussian.
    """
    checks.images(x)
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if (s < 0).any():
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if s.dim() == 1:
        if len(s) != len(x):
            raise ValueError(f"one sigma per image expected ({len(x)}), got {len(s)}")
        s = s.view(-1, 1, 1, 1)
    elif s.dim() != 0:
        raise ValueError("sigma must be a number or a 1-D tensor")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    y = x + 2 * s * noise
    return y.clamp(-1, 1) if clip else y


def box_masks(n: int, size: int, hole: int, generator: torch.Generator | None = None,
              centre: bool = False) -> torch.Tensor:
    """``n`` masks ``(n, 1, size, size)`` with one ``hole x hole`` square of ones (missing pixels)
    at a uniformly random position inside the image (or in the centre with ``centre=True``)."""
    checks.positive_int(n, "n"); checks.positive_int(size, "size"); checks.positive_int(hole, "hole")
    if hole >= size:
        raise ValueError(f"hole ({hole}) must be smaller than the image ({size})")
    m = torch.zeros(n, 1, size, size)
    for i in range(n):
        if centre:
            r = c = (size - hole) // 2
        else:
            r, c = torch.randint(size - hole + 1, (2,), generator=generator).tolist()
        m[i, :, r:r + hole, c:c + hole] = 1
    return m


# --- the camera: response curve, exposure, clipping, noise (HDR) -------------------------

def crf(e: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """Camera response curve: linear exposure ``e`` in ``[0, 1]`` -> pixel value ``e ** (1/gamma)``."""
    checks.value_range(e, 0, 1, "exposure")
    return e.clamp(0, 1) ** (1 / gamma)


def inverse_crf(z: torch.Tensor, gamma: float = 2.2) -> torch.Tensor:
    """Inverse of :func:`crf`: pixel value ``z`` in ``[0, 1]`` -> linear exposure ``z ** gamma``."""
    checks.value_range(z, 0, 1, "pixel values")
    return z.clamp(0, 1) ** gamma


def synthetic_radiance(x: torch.Tensor, stops: float = 6.0, gamma: float = 2.2) -> torch.Tensor:
    """A linear HDR scene ``(N, C, H, W)`` in ``(0, ~2**stops]`` made from photos ``x`` in ``[-1, 1]``.

    The photo is linearised (``((x+1)/2) ** gamma``) and its bright parts are boosted: each pixel
    is multiplied by ``2 ** (stops * b)``, where ``b`` in ``[0, 1]`` is the pixel's smoothed
    luminance squared, so highlights gain up to ``stops`` stops while shadows
    keep their value. A small ambient term ``2**-10`` is added to the linear image first, so that
    no pixel is perfectly black and the logarithm stays finite.
    """
    checks.images(x)
    lin = ((x + 1) / 2) ** gamma + 2 ** -10
    lum = lin.mean(1, keepdim=True).clamp(0, 1)
    lum = blur(lum * 2 - 1, gaussian_kernel(9, 2.0)).add(1).div(2).clamp(0, 1)
    return lin * 2 ** (stops * lum ** 2)


def expose(radiance: torch.Tensor, t: float, gamma: float = 2.2, noise: float = 0.0, bits: int | None = 8,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One low-dynamic-range exposure of ``radiance`` (linear, ``>= 0``) with exposure time ``t``.

    ``z = crf(clip(t * radiance + noise * eps, 0, 1))``, quantised to ``bits`` bits (``None``: not
    quantised). ``eps`` is standard normal sensor noise (in linear units, before the curve).
    Returns ``(N, C, H, W)`` in ``[0, 1]``; pixels with ``t * radiance >= 1`` are clipped to 1.
    """
    checks.tensor(radiance, "radiance")
    if (radiance < 0).any() or not torch.isfinite(radiance).all():
        raise ValueError("radiance must be finite and >= 0 (linear light)")
    if not t > 0:
        raise ValueError(f"exposure time t must be > 0, got {t}")
    e = t * radiance
    if noise:
        e = e + noise * torch.randn(e.shape, generator=generator, dtype=e.dtype).to(e.device)
    z = crf(e.clamp(0, 1), gamma)
    if bits is not None:
        q = 2 ** bits - 1
        z = torch.round(z * q) / q
    return z


# ---------------------------------------------------------------------------------------
# 2. Classical baselines (scikit-image) and tone mapping
# ---------------------------------------------------------------------------------------

def _np(x):  # (N, C, H, W) [-1, 1] -> list of (H, W, C) float64 in [0, 1]
    return list(((x.detach().cpu().double() + 1) / 2).permute(0, 2, 3, 1).numpy())


def _torch(ims, like):  # list of (H, W, C) in [0, 1] -> (N, C, H, W) in [-1, 1]
    a = np.clip(np.stack(ims), 0, 1)
    return (torch.tensor(a, dtype=like.dtype).permute(0, 3, 1, 2) * 2 - 1).to(like.device)


def bicubic(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Classical upsampling: ``(N, C, h, w) -> (N, C, h*f, w*f)`` with scikit-image's bicubic
    spline (``skimage.transform.resize(order=3)``), clipped to ``[-1, 1]``."""
    from skimage.transform import resize

    checks.images(x); checks.positive_int(factor, "factor")
    h, w = x.shape[-2:]
    return _torch([resize(im, (h * factor, w * factor, im.shape[2]), order=3, mode="reflect",
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
    from skimage import restoration as R

    checks.choice(method, DENOISERS, "denoiser")
    checks.tensor(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    ims = list(((x.detach().cpu().double() + 1) / 2).permute(0, 2, 3, 1).numpy())
    out = []
    for im3 in ims:
        im, ax = (im3[..., 0], None) if im3.shape[2] == 1 else (im3, -1)
        if method == "nl_means":
            y = R.denoise_nl_means(im, h=strength * 0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                   fast_mode=True, channel_axis=ax)
        elif method == "tv":
            y = R.denoise_tv_chambolle(im, weight=strength * sigma, channel_axis=ax)
        else:
            y = R.denoise_bilateral(np.clip(im, 0, 1), sigma_color=strength * 2 * sigma, sigma_spatial=1.5,
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
    from skimage import restoration as R

    checks.images(x); _check_kernel(kernel)
    checks.choice(method, ("richardson_lucy", "wiener"), "deconvolution method")
    psf = kernel.double().numpy()
    p = max(psf.shape)  # mirror-pad so that neither method sees a hard image border (then crop)
    out = []
    for im in _np(x):
        chans = []
        for c in range(im.shape[2]):
            padded = np.pad(im[..., c], p, mode="symmetric")
            if method == "richardson_lucy":
                d = R.richardson_lucy(padded, psf, num_iter=int(param or 30), clip=True)
            else:
                d = R.wiener(padded, psf, balance=0.01 if param is None else param, clip=False)
            chans.append(d[p:-p, p:-p])
        out.append(np.stack(chans, -1))
    return _torch(out, x)


def inpaint_biharmonic(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Classical inpainting: fill the pixels where ``mask == 1`` by solving the biharmonic equation
    (``skimage.restoration.inpaint_biharmonic``). ``x (N, C, H, W)``, ``mask (N, 1, H, W)``."""
    from skimage.restoration import inpaint_biharmonic as bih

    checks.images(x); checks.binary(mask, "mask")
    if mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"mask must have shape {(x.shape[0], 1, *x.shape[2:])}, got {tuple(mask.shape)}")
    ms = mask[:, 0].cpu().numpy().astype(bool)
    return _torch([bih(im, m, channel_axis=-1) for im, m in zip(_np(x), ms)], x)


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
# 3. Networks
# ---------------------------------------------------------------------------------------

class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip (EDSR-style: no batch norm). ``(N, w, H, W)`` -> same."""

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
        self.factor = factor
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        ups = []
        for _ in range(int(math.log2(factor))):
            ups += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.ReLU()]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight); nn.init.zeros_(self.tail.bias)

    def forward(self, x):
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
        self.channels = channels

    def forward(self, x):
        return x[:, :self.channels] - self.net(x)


class MultiScaleDeblur(nn.Module):
    """A two-scale deblurrer in the spirit of Nah et al. (2017): a coarse DnCNN restores the
    half-resolution image; its upsampled result is given to the fine-scale DnCNN as extra input
    ("coarser scale features aid finer scale deblurring"). Residual output, ``(N, C, H, W)``."""

    def __init__(self, channels: int = 1, width: int = 32, depth: int = 6):
        super().__init__()
        self.coarse = DnCNN(channels, width, depth)
        self.fine = DnCNN(channels, width, depth, extra=channels)

    def forward(self, x):
        small = self.coarse(F.avg_pool2d(x, 2))
        up = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.fine(torch.cat([x, up], 1))


def _down(a, b):
    return nn.Sequential(nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.2))


def _up(a, b):
    return nn.Sequential(nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU())


class ContextEncoder(nn.Module):
    """Context-encoder-style inpainting net (Pathak et al. 2016) with U-Net skips.

    Input: the masked image and the mask, ``(N, C+1, H, W)`` (``H, W`` multiples of 8).
    Encoder 3 stride-2 convs -> bottleneck -> decoder 3 transposed convs. Output: the image
    with the hole filled, ``mask * prediction + (1 - mask) * input`` in ``[-1, 1]``.
    """

    def __init__(self, channels: int = 3, width: int = 32):
        super().__init__()
        w = width
        self.e1, self.e2, self.e3 = _down(channels + 1, w), _down(w, 2 * w), _down(2 * w, 4 * w)
        self.mid = nn.Sequential(nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU())
        self.d3, self.d2, self.d1 = _up(4 * w, 2 * w), _up(4 * w, w), _up(2 * w, w)
        self.out = nn.Conv2d(w, channels, 3, padding=1)
        self.channels = channels

    def forward(self, inp):
        x, m = inp[:, :self.channels], inp[:, self.channels:]
        h1 = self.e1(inp); h2 = self.e2(h1); h3 = self.e3(h2)
        u = self.d3(self.mid(h3))
        u = self.d2(torch.cat([u, h2], 1))
        u = self.d1(torch.cat([u, h1], 1))
        pred = torch.tanh(self.out(u))
        return m * pred + (1 - m) * x


def rgb_to_yuv(x: torch.Tensor) -> torch.Tensor:
    """RGB in ``[-1, 1]`` -> YUV (ITU-R 601, as ``skimage.color.rgb2yuv``) computed on ``[0, 1]``:
    ``Y`` in ``[0, 1]``, ``U`` in ``[-0.436, 0.436]``, ``V`` in ``[-0.615, 0.615]``. ``(N, 3, H, W)``."""
    checks.images(x, channels=3)
    m = torch.tensor(_YUV, dtype=x.dtype, device=x.device)
    return torch.einsum("ij,njhw->nihw", m, (x + 1) / 2)


def yuv_to_rgb(yuv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_yuv`; the RGB result is clipped to ``[-1, 1]``. ``(N, 3, H, W)``."""
    checks.shape(yuv, (None, 3, None, None), "yuv")
    m = torch.linalg.inv(torch.tensor(_YUV, dtype=torch.float64)).to(yuv)
    return (torch.einsum("ij,njhw->nihw", m, yuv) * 2 - 1).clamp(-1, 1)


_YUV = [[0.299, 0.587, 0.114], [-0.14714119, -0.28886916, 0.43601035], [0.61497538, -0.51496512, -0.10001026]]


class Colorizer(nn.Module):
    """Colorization net: grey image ``(N, 1, H, W)`` in ``[-1, 1]`` (the luma ``Y`` mapped to
    ``[-1, 1]``) -> RGB ``(N, 3, H, W)``. A small U-Net predicts the chroma ``(U, V)``; the
    input's luma is kept (exactly where no RGB channel clips), so the output differs from the input
    only in colour. The last layer starts at zero: an untrained colorizer returns the grey image."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.e1, self.e2, self.e3 = _down(1, w), _down(w, 2 * w), _down(2 * w, 4 * w)
        self.mid = nn.Sequential(nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU())
        self.d3, self.d2, self.d1 = _up(4 * w, 2 * w), _up(4 * w, w), _up(2 * w, w)
        self.out = nn.Conv2d(w + 1, 2, 3, padding=1)
        nn.init.zeros_(self.out.weight); nn.init.zeros_(self.out.bias)

    def forward(self, g):
        h1 = self.e1(g); h2 = self.e2(h1); h3 = self.e3(h2)
        u = self.d3(self.mid(h3))
        u = self.d2(torch.cat([u, h2], 1))
        u = self.d1(torch.cat([u, h1], 1))
        uv = 0.5 * torch.tanh(self.out(torch.cat([u, g], 1)))  # zero-initialised: starts grey
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


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: ``(N, C, H, W)`` -> one logit per overlapping patch ``(N, 1, H/4, W/4)``.
    For a conditional GAN pass the condition concatenated to the image (``channels`` = both)."""

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, 1, 1))

    def forward(self, x):
        return self.net(x)


# ---------------------------------------------------------------------------------------
# 4. Losses and training
# ---------------------------------------------------------------------------------------

def d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss ``-E[log D(real)] - E[log(1 - D(fake))]`` on logits (``D = sigmoid``)."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def g_adv_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``-E[log D(G(z))]`` on logits."""
    return F.softplus(-d_fake).mean()


def fit(net: nn.Module, targets: torch.Tensor, degrade: Callable, steps: int, batch: int = 16,
        lr: float = 1e-3, content: str = "l1", disc: nn.Module | None = None, adv_weight: float = 1e-2,
        conditional: bool = False, seed: int = 0, desc: str = "restorer",
        device: torch.device | None = None) -> dict[str, list[float]]:
    """Train a restoration network on pairs made on the fly: ``inp = degrade(target, generator)``.

    Loss = content loss (``"l1"`` or ``"l2"`` between ``net(inp)`` and the target), plus, when a
    discriminator ``disc`` is given, ``adv_weight`` times the non-saturating adversarial loss
    (SRGAN, context encoder, pix2pix). With ``conditional=True`` the discriminator sees
    ``cat(output, cond)`` where ``cond`` is the network input resized to the output size (a cGAN).
    Each step draws ``batch`` targets ``(N, ...)`` at random; Adam with a cosine learning-rate decay.
    Returns the :func:`lib.train.train_loop` history.
    """
    from . import train

    checks.tensor(targets, "targets"); checks.positive_int(steps, "steps"); checks.positive_int(batch, "batch")
    checks.choice(content, ("l1", "l2"), "content loss")
    device = device or next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    if disc is not None:
        opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    closs = F.l1_loss if content == "l1" else F.mse_loss

    def cond_of(inp, like):
        c = inp if inp.dim() == 4 else inp.flatten(1, 2)
        return F.interpolate(c, size=like.shape[-2:], mode="nearest") if c.shape[-2:] != like.shape[-2:] else c

    def step(i):
        idx = torch.randint(len(targets), (batch,), generator=g)
        y = targets[idx]
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
            ld = d_loss(disc(real), disc(fake.detach()))
            opt_d.zero_grad(); ld.backward(); opt_d.step()
            lg = g_adv_loss(disc(fake))
            loss = loss + adv_weight * lg
            logs.update(adversarial=lg, discriminator=ld)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        return logs

    net.train()
    hist = train.train_loop(step, steps, desc=desc)
    net.eval()
    return hist


@torch.no_grad()
def apply(net: nn.Module, x: torch.Tensor, *args, chunk: int = 64) -> torch.Tensor:
    """Run ``net`` in eval mode over ``x`` in chunks (on the net's device); output on the CPU."""
    net.eval()
    dev = next(net.parameters()).device
    return torch.cat([net(c.to(dev), *args).cpu() for c in x.split(chunk)])


# ---------------------------------------------------------------------------------------
# 5. Measures
# ---------------------------------------------------------------------------------------

def sharpness(x: torch.Tensor) -> float:
    """Mean gradient magnitude ``sqrt(dx^2 + dy^2)`` (forward differences, in ``[0, 1]`` units,
    averaged over channels, pixels and images) of ``x (N, C, H, W)`` in ``[-1, 1]``.
    Blurry images score low; a restoration should score close to the ground truth."""
    checks.images(x)
    u = (x.double() + 1) / 2
    dx = u[..., :-1, 1:] - u[..., :-1, :-1]
    dy = u[..., 1:, :-1] - u[..., :-1, :-1]
    return float(torch.sqrt(dx ** 2 + dy ** 2).mean())


def colourfulness(x: torch.Tensor) -> float:
    """Hasler & Süsstrunk's (2003) colourfulness of RGB images ``(N, 3, H, W)`` in ``[-1, 1]``,
    computed on the 0..255 scale and averaged over images:
    ``sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)``, ``rg = R - G``,
    ``yb = (R + G)/2 - B``. Grey images score 0; vivid photos score 50-100."""
    checks.images(x, channels=3)
    u = (x.double() + 1) / 2 * 255
    r, g, b = u[:, 0].flatten(1), u[:, 1].flatten(1), u[:, 2].flatten(1)
    rg, yb = r - g, (r + g) / 2 - b
    sd = torch.sqrt(rg.var(1, unbiased=False) + yb.var(1, unbiased=False))
    mu = torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return float((sd + 0.3 * mu).mean())


def log_radiance_error(est: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean absolute error of ``log2`` radiance, in *stops* (1 stop = a factor of 2), between
    positive ``est`` and ``ref`` ``(N, C, H, W)``; only where ``mask`` (same shape, or ``(N, 1, H, W)``) is 1."""
    checks.tensor(est, "est"); checks.tensor(ref, "ref")
    if est.shape != ref.shape:
        raise ValueError(f"est and ref must have the same shape, got {tuple(est.shape)} and {tuple(ref.shape)}")
    if (est <= 0).any() or (ref <= 0).any():
        raise ValueError("radiance must be > 0 to take its logarithm")
    err = (torch.log2(est.double()) - torch.log2(ref.double())).abs()
    if mask is None:
        return float(err.mean())
    checks.binary(mask, "mask")
    m = mask.expand_as(err).bool()
    if not m.any():
        raise ValueError("mask selects no pixel")
    return float(err[m].mean())


def psnr_masked(x: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR in dB computed only over the pixels where ``mask (N, 1, H, W)`` is 1 (the hole of an
    inpainting), per image, then averaged; images ``(N, C, H, W)`` in ``[-1, 1]`` (peak = [0, 1] range)."""
    checks.images(x, name="x"); checks.images(ref, name="ref"); checks.binary(mask, "mask")
    if x.shape != ref.shape or mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"x, ref must match and mask be (N, 1, H, W); got {tuple(x.shape)}, "
                         f"{tuple(ref.shape)}, {tuple(mask.shape)}")
    d2 = (((x.double() - ref.double()) / 2) ** 2 * mask).sum(dim=(1, 2, 3))
    cnt = mask.double().sum(dim=(1, 2, 3)) * x.shape[1]
    if (cnt == 0).any():
        raise ValueError("every mask must select at least one pixel")
    mse = (d2 / cnt).clamp_min(1e-12)
    return float((10 * torch.log10(1 / mse)).mean())


# ---------------------------------------------------------------------------------------
# 6. Image-to-image diffusion (Palette)
# ---------------------------------------------------------------------------------------
#
# Palette (Saharia et al. 2022) is a plain DDPM whose denoiser also sees the conditioning image,
# concatenated to the noisy image along the channels: f_theta(cat(x_t, c), t). Nothing else
# changes: the same forward process and samplers (lib.diffusion); a sample is *one* plausible
# output for c, and several samples show the spread that a regression loss averages away.
# Palette predicts the noise eps; with ``predict="x0"`` the U-Net predicts the clean image
# instead (the same model, reparameterised: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)),
# which trains much faster on a small budget (chapter 10 measures both).

class Palette(nn.Module):
    """Conditional denoiser for image-to-image diffusion.

    ``forward(x_t (N, C, H, W), t (N,), cond (N, K, H, W)) -> eps (N, C, H, W)``, so that it plugs
    into :func:`lib.diffusion.ddim_sample` / ``ddpm_sample`` with ``y=cond``. Inside, a
    :class:`lib.nets.UNet` reads ``cat(x_t, cond)`` (``C + K`` channels; its first ``C`` output
    channels are used). ``predict`` says what those channels are: ``"eps"`` (Palette, DDPM: the
    noise) or ``"x0"`` (the clean image; converted to eps with the schedule ``sched``).
    :meth:`raw` returns the network's own prediction, the quantity :func:`palette_loss` regresses.
    """

    def __init__(self, channels: int, cond_channels: int, sched, base: int = 32, mults: tuple = (1, 2, 2),
                 predict: str = "eps"):
        super().__init__()
        from . import nets

        checks.positive_int(channels, "channels"); checks.positive_int(cond_channels, "cond_channels")
        checks.choice(predict, ("eps", "x0"), "predict")
        self.channels, self.cond_channels, self.predict, self.sched = channels, cond_channels, predict, sched
        self.register_buffer("alpha_bars", sched.alpha_bars.float())
        self.unet = nets.UNet(in_ch=channels + cond_channels, base=base, mults=mults)

    def raw(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The U-Net's prediction (noise or clean image, see ``predict``), ``(N, C, H, W)``."""
        checks.shape(x_t, (None, self.channels, None, None), "x_t")
        checks.shape(cond, (len(x_t), self.cond_channels, *x_t.shape[2:]), "cond")
        return self.unet(torch.cat([x_t, cond.to(x_t)], 1), t)[:, :self.channels]

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.raw(x_t, t, cond)
        if self.predict == "eps":
            return out
        ab = self.alpha_bars[t.long()].view(-1, *([1] * (x_t.dim() - 1)))
        return (x_t - ab.sqrt() * out) / (1 - ab).sqrt()


def palette_loss(model: Palette, x0: torch.Tensor, cond: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One Monte-Carlo estimate of the training loss: draw ``t`` uniform on ``1..T`` and noise,
    form ``x_t`` (:func:`lib.diffusion.q_sample`), and regress the model's :meth:`Palette.raw`
    output on its target -- the noise (``predict="eps"``: exactly Ho et al.'s simplified loss,
    :func:`lib.diffusion.eps_loss`) or ``x0`` (``predict="x0"``). ``x0 (N, C, H, W)`` in ``[-1, 1]``."""
    from . import diffusion

    checks.value_range(x0, -1, 1, "x0")
    sched = model.sched
    t = torch.randint(1, sched.T + 1, (len(x0),), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    x_t = diffusion.q_sample(sched, x0, t, noise)
    target = noise if model.predict == "eps" else x0
    return F.mse_loss(model.raw(x_t, t, cond), target)


def fit_palette(model: Palette, targets: torch.Tensor, conds: torch.Tensor, steps: int, batch: int = 32,
                lr: float = 2e-3, ema_decay: float = 0.995, seed: int = 0,
                desc: str = "palette") -> tuple[dict[str, list[float]], nn.Module]:
    """Train ``model`` with :func:`palette_loss` on pairs ``targets (N, C, H, W)`` (what to
    generate, in ``[-1, 1]``) and ``conds (N, K, H, W)``; Adam with a one-cycle learning rate, each
    step a random batch. Returns ``(history, ema_model)``: sample from the exponential moving
    average of the weights (:class:`lib.nets.EMA`)."""
    from . import nets, train

    if not isinstance(model, Palette):
        raise TypeError(f"model must be a lib.restoration.Palette, got {type(model).__name__}")
    checks.tensor(targets, "targets"); checks.tensor(conds, "conds")
    if len(targets) != len(conds) or targets.shape[2:] != conds.shape[2:]:
        raise ValueError(f"targets and conds must pair up, got {tuple(targets.shape)} and {tuple(conds.shape)}")
    checks.value_range(targets, -1, 1, "targets")
    checks.positive_int(steps, "steps"); checks.positive_int(batch, "batch")
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched_lr = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    ema = nets.EMA(model, ema_decay)

    def step(i):
        idx = torch.randint(len(targets), (batch,), generator=g)
        loss = palette_loss(model, targets[idx].to(dev), conds[idx].to(dev), generator=g)
        opt.zero_grad(); loss.backward(); opt.step(); sched_lr.step(); ema.update(model)
        return {f"{model.predict} loss": loss}

    model.train()
    hist = train.train_loop(step, steps, desc=desc)
    model.eval()
    return hist, ema.model


@torch.no_grad()
def palette_sample(model: Palette, conds: torch.Tensor, steps: int = 25, eta: float = 0.0,
                   generator: torch.Generator | None = None, chunk: int = 256) -> torch.Tensor:
    """One sample per condition ``conds (N, K, H, W)``: DDIM (:func:`lib.diffusion.ddim_sample`)
    with ``steps`` steps over the model's schedule, ``x0`` clipped to ``[-1, 1]``. Returns
    ``(N, C, H, W)`` in ``[-1, 1]`` on the CPU; another ``generator`` seed gives another plausible output."""
    from . import diffusion

    if not isinstance(model, Palette):
        raise TypeError(f"model must be a lib.restoration.Palette, got {type(model).__name__}")
    checks.shape(conds, (None, model.cond_channels, None, None), "conds")
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for c in conds.split(chunk):
        x_T = torch.randn((len(c), model.channels, *c.shape[2:]), generator=generator).to(dev)
        out.append(diffusion.ddim_sample(model, model.sched, steps=steps, eta=eta, y=c.to(dev), clip_x0=True,
                                         x_T=x_T).clamp(-1, 1).cpu())
    return torch.cat(out)


def chroma_of(rgb: torch.Tensor) -> torch.Tensor:
    """The chroma ``(U, V)`` of RGB ``(N, 3, H, W)`` in ``[-1, 1]``, scaled to about ``[-1, 1]``
    (``U / 0.436``, ``V / 0.615``): what a Palette colorizer generates. ``(N, 2, H, W)``."""
    yuv = rgb_to_yuv(rgb)
    return torch.cat([yuv[:, 1:2] / 0.436, yuv[:, 2:3] / 0.615], 1)


def luma_of(rgb: torch.Tensor) -> torch.Tensor:
    """The luma ``Y`` of RGB ``(N, 3, H, W)`` in ``[-1, 1]``, mapped to ``[-1, 1]``: ``(N, 1, H, W)``
    (the grey input of :class:`Colorizer` and the condition of a Palette colorizer)."""
    return rgb_to_yuv(rgb)[:, :1] * 2 - 1


def compose_yuv(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """RGB ``(N, 3, H, W)`` in ``[-1, 1]`` from :func:`luma_of` and :func:`chroma_of` outputs
    (inverse of the two; clipped where RGB leaves the gamut)."""
    checks.shape(luma, (None, 1, None, None), "luma")
    checks.shape(chroma, (len(luma), 2, *luma.shape[2:]), "chroma")
    return yuv_to_rgb(torch.cat([(luma + 1) / 2, chroma[:, :1] * 0.436, chroma[:, 1:] * 0.615], 1))
