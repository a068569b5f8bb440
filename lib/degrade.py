"""Degradations and camera models: the forward models a restoration network learns to invert
(introduced in chapter 10).

* resolution and blur: :func:`downsample`, :func:`gaussian_kernel`, :func:`motion_kernel`, :func:`blur`;
* noise and holes: :func:`add_noise`, :func:`box_masks`, :func:`textured_box_masks` (the hole
  over the busiest square of each image);
* the HDR camera: :func:`crf` (response curve), :func:`inverse_crf`, :func:`expose` (one clipped,
  noisy, quantised exposure) and :func:`synthetic_radiance` (a linear high-dynamic-range scene
  made from an ordinary photo);
* colour: :func:`rgb_to_yuv`, :func:`yuv_to_rgb` (the luma/chroma split of colorization);
* the antique camera (time-travel rephotography): :func:`film_exposure` (a film's spectral
  sensitivity: blue-sensitive, orthochromatic, panchromatic) and :func:`antique_camera` (film,
  lens blur, fading, grain).

Conventions: images are ``(N, C, H, W)`` float tensors in ``[-1, 1]``; *linear radiance*
(HDR) is ``(N, C, H, W)`` in ``[0, inf)``; low-dynamic-range exposures are in ``[0, 1]``
(the sensor's 0..255 divided by 255). Masks are ``(N, 1, H, W)`` with 1 = missing pixel.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from . import checks



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



def check_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` unless ``kernel`` is a 2-D blur kernel with odd sides, non-negative, summing to 1."""
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
    checks.images(x.detach())
    check_kernel(kernel)
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


def textured_box_masks(x: torch.Tensor, hole: int, margin: int = 0) -> torch.Tensor:
    """One ``hole x hole`` square hole per image of ``x (N, C, H, W)``, placed over the
    *busiest* square of that image: the position whose window has the largest gradient
    energy (the sum over the window and the channels of the squared horizontal and vertical
    differences of ``x``), among the positions that leave at least ``margin`` known pixels
    between the hole and every border (context on all sides). Masks ``(N, 1, H, W)``, 1 = missing.

    Random holes in photographs mostly land on smooth shading, where a smooth interpolant
    (biharmonic inpainting) is close to the truth; these holes cover texture and edges
    instead, a harder test of an inpainter. The position is chosen from the *true* image,
    so the masks belong to the test set's construction, never to a method's input.
    Example: a flat image with one bright pixel gets the hole over that pixel.
    """
    checks.images(x, name="x"); checks.positive_int(hole, "hole")
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise ValueError(f"margin must be an int >= 0, got {margin!r}")
    n, _, h, w = x.shape
    if hole >= min(h, w) or hole + 2 * margin > min(h, w):
        raise ValueError(f"hole ({hole}) must be smaller than the image ({h}x{w}) and fit in it "
                         f"with a margin of {margin} on both sides")
    xd = x.detach().double()
    dy = torch.zeros(n, h, w, dtype=xd.dtype); dx = torch.zeros(n, h, w, dtype=xd.dtype)
    dy[:, 1:] = ((xd[:, :, 1:] - xd[:, :, :-1]) ** 2).sum(1)      # each difference counted
    dx[:, :, 1:] = ((xd[..., 1:] - xd[..., :-1]) ** 2).sum(1)     # at its lower/right pixel
    energy = F.avg_pool2d((dx + dy)[:, None], hole, stride=1)[:, 0]  # (N, h-hole+1, w-hole+1)
    energy = energy[:, margin:energy.shape[1] - margin, margin:energy.shape[2] - margin]
    best = energy.flatten(1).argmax(1)
    cols = energy.shape[-1]
    m = torch.zeros(n, 1, h, w)
    for i, k in enumerate(best.tolist()):
        r, c = (v + margin for v in divmod(k, cols))
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


# --- colour: luma and chroma (colorization) ----------------------------------------------

_YUV = [[0.299, 0.587, 0.114], [-0.14714119, -0.28886916, 0.43601035], [0.61497538, -0.51496512, -0.10001026]]


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


# --- the antique camera: film sensitivity, blur, fading, grain (rephotography) ------------

FILMS = {"blue-sensitive": (0.0, 0.1, 0.9), "orthochromatic": (0.0, 0.4, 0.6),
         "panchromatic": (0.299, 0.587, 0.114)}
"""Spectral sensitivity of a film as weights of the (R, G, B) channels, summing to 1: early
plates saw only blue light, orthochromatic film (about 1873-1920s) blue and green but no red,
panchromatic film all three roughly like the eye (the luma weights of :func:`rgb_to_yuv`)."""


def film_exposure(x: torch.Tensor, film: str = "orthochromatic") -> torch.Tensor:
    """The grey image a film records of colour images: ``(N, 3, H, W) -> (N, 1, H, W)``, both in
    ``[-1, 1]``. Each pixel is the film's weighted sum of the ``[0, 1]`` RGB values
    (:data:`FILMS`), so grey stays the same grey, and on orthochromatic film a red object turns
    nearly black while a blue one turns light."""
    checks.images(x.detach(), channels=3)
    checks.choice(film, tuple(FILMS), "film")
    w = torch.tensor(FILMS[film], dtype=x.dtype, device=x.device)
    return torch.einsum("c,nchw->nhw", w, x)[:, None]          # linear: weights sum to 1


def antique_camera(x: torch.Tensor, film: str = "orthochromatic", blur_sigma: float = 0.7,
                   contrast: float = 0.7, lift: float = 0.15, grain: float = 0.03,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """A photograph of ``x (N, 3, H, W)`` taken with an old camera and aged: ``(N, 1, H, W)`` in ``[-1, 1]``.

    In ``[0, 1]`` units, ``y = clip(lift + contrast * (blur(film(x)) + grain * eps), 0, 1)``:

    1. the film's spectral sensitivity (:func:`film_exposure`): no colour, and the grey levels
       of colours differ from the eye's (orthochromatic film is blind to red);
    2. a soft lens: a Gaussian blur of ``blur_sigma`` pixels (``0``: none);
    3. grain: white Gaussian noise ``eps`` of std ``grain`` (drawn from ``generator``; ``0``: none);
    4. fading: the range ``[0, 1]`` shrinks to ``[lift, lift + contrast]`` -- no black, dull whites.

    With ``grain = 0`` the camera is deterministic and differentiable: the forward model that
    degradation-aware inversion fits through (:func:`lib.inversion.project` with ``render=``).
    """
    checks.images(x.detach(), channels=3)
    for v, name in ((blur_sigma, "blur_sigma"), (grain, "grain"), (lift, "lift")):
        checks.nonnegative(v, name)
    if not 0 < contrast <= 1 or lift + contrast > 1:
        raise ValueError(f"need 0 < contrast <= 1 and lift + contrast <= 1, got contrast={contrast}, lift={lift}")
    y = film_exposure(x, film)
    if blur_sigma > 0:
        y = blur(y, gaussian_kernel(2 * math.ceil(2.5 * blur_sigma) + 1, blur_sigma))
    if grain > 0:
        y = add_noise(y, grain, generator=generator)           # std grain in [0, 1] units
    u = lift + contrast * (y + 1) / 2
    return (u.clamp(0, 1) * 2 - 1)
