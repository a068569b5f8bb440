"""Measuring generative models (introduced in chapter 1; shared by every chapter).

* :func:`bits_per_dim` -- negative log-likelihood per dimension, in bits;
* :func:`sliced_wasserstein` -- a distance between two 2-D (or n-D) point clouds;
* :func:`mmd` -- kernel maximum mean discrepancy, a second such distance;
* :func:`frechet_digit_distance` -- the Fréchet distance between two sets of
  16x16 digit images in the feature space of a small classifier trained once by
  this module (the "FID" of this book, see Heusel et al. 2017);
* :func:`fdd_reference` -- the two reference rows every image chapter prints:
  real train vs real test digits (the floor) and the chapter-1 per-class
  Gaussian samples (the baseline to beat);
* :func:`psnr`, :func:`ssim` -- image fidelity, via scikit-image; :func:`psnr_masked` -- PSNR
  over the pixels of a hole only (inpainting);
* :func:`mode_coverage` -- modes of a ring of Gaussians a GAN covers (chapter 6);
* image measures of chapters 8 and 10: :func:`hf_energy_ratio` and :func:`sharpness` (how much
  fine detail), :func:`gradient_magnitude`, :func:`image_correlation` (the one Pearson
  correlation helper) and :func:`structure_correlation` (does the output keep the input's
  edges), :func:`colourfulness`, :func:`colour_error` (CIELAB Delta E), :func:`log_radiance_error`
  (HDR, in stops);
* layouts and scenes (chapter 10): :func:`iou` -- per-class intersection over union of label
  maps and their mean (mIoU), the layout adherence of semantic image synthesis;
  :class:`SceneFeatureNet` -- a small CNN for 32x32 colour scenes whose features a notebook
  trains and uses for a Fréchet distance (:func:`frechet_distance`).
"""
from __future__ import annotations

import hashlib
import inspect
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg
from skimage.color import deltaE_cie76, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from . import checks, data, density, runtime, train


def bits_per_dim(nll_nats: torch.Tensor | float, dims: int) -> float:
    """Average negative log-likelihood ``nll_nats`` (nats per example) -> bits per dimension."""
    checks.positive_int(dims, "dims")
    nll = float(nll_nats.mean()) if isinstance(nll_nats, torch.Tensor) else float(nll_nats)
    return nll / (dims * math.log(2))


def _points(x, name):
    checks.tensor(x, name)
    if x.dim() != 2 or len(x) < 2:
        raise ValueError(f"{name} must have shape (N, D) with N >= 2, got {tuple(x.shape)}")
    return x.double()


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between point clouds ``a (N, D)`` and ``b (M, D)``.

    Both clouds are projected on ``n_projections`` random unit directions; on each
    line the 1-D Wasserstein distance is the mean gap between matching quantiles.
    Zero (up to sampling noise) for two samples of one distribution; grows with a shift.
    """
    a, b = _points(a, "a"), _points(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], n_projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    q = torch.linspace(0, 1, max(len(a), len(b)), dtype=torch.float64)
    pa = torch.quantile(a @ dirs, q, dim=0)  # (Q, P)
    pb = torch.quantile(b @ dirs, q, dim=0)
    return float((pa - pb).abs().mean())


def mmd(a: torch.Tensor, b: torch.Tensor, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with a Gaussian kernel between ``a (N, D)`` and ``b (M, D)``, a float
    (in double precision; the one definition is :func:`lib.density.mmd_loss`, the loss).

    ``bandwidth`` defaults to the median pairwise distance of the pooled sample.
    """
    a, b = _points(a, "a"), _points(b, "b")
    return float(density.mmd_loss(a, b, None if bandwidth is None else (bandwidth,), unbiased=True))


def frechet_distance(fa: torch.Tensor, fb: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features ``fa (N, F)`` and ``fb (M, F)``:
    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``."""
    fa, fb = _points(fa, "fa").numpy(), _points(fb, "fb").numpy()
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    eye = 1e-6 * np.eye(fa.shape[1])  # keeps the square root defined when a feature is constant
    sa, sb = np.cov(fa, rowvar=False) + eye, np.cov(fb, rowvar=False) + eye
    covmean = linalg.sqrtm(sa @ sb)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * covmean))


class DigitFeatureNet(nn.Module):
    """Small CNN classifier of 16x16 digits; its 64-d penultimate layer is the feature space.

    ``forward(x)``: ``x (N, 1, 16, 16)`` in ``[-1, 1]`` -> logits ``(N, 10)``;
    ``features(x)`` -> ``(N, 64)``.
    """

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (N, 32, 8, 8)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 64, 4, 4)
            nn.Flatten(), nn.Linear(64 * 16, 64), nn.ReLU())              # (N, 64)
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        checks.shape(x, (None, 1, 16, 16), "digits")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


_FEATURE_NET: DigitFeatureNet | None = None
_FEATURE_CONFIG = {"arch": "DigitFeatureNet-v1", "steps": 1000, "batch": 128, "seed": 1234}


def _code_fingerprint(*objects) -> str:
    """A short hash of the source code of ``objects``: the cache key changes whenever the code does."""
    return hashlib.sha256("\n".join(inspect.getsource(o) for o in objects).encode()).hexdigest()[:16]


def _feature_config() -> dict:
    """The cached net's key: its settings plus a fingerprint of the code that builds and trains it,
    so an edit to either retrains the net instead of silently reusing an outdated one."""
    return _FEATURE_CONFIG | {"code": _code_fingerprint(DigitFeatureNet, _train_feature_net)}


def digit_feature_net() -> DigitFeatureNet:
    """The metric's classifier, trained once (about 12 s on a 2-core CPU) and cached on disk.

    Training is seeded, so every notebook and every run measures with the same net.
    The profile does not change it: the metric must mean the same thing in CI. The
    caller's random state is left untouched whether the net is trained or loaded,
    so a notebook's results do not depend on the cache.
    """
    global _FEATURE_NET
    if _FEATURE_NET is not None:
        return _FEATURE_NET

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_FEATURE_CONFIG["seed"])
        net = DigitFeatureNet()
        path = runtime.cache_dir() / "digit_feature_net.pt"
        config = _feature_config()
        try:
            train.load_checkpoint(path, net, config)
        except (FileNotFoundError, ValueError, RuntimeError):
            threads = torch.get_num_threads()
            torch.set_num_threads(1)   # multi-threaded float sums differ in the last bits: train the same net everywhere
            try:
                _train_feature_net(net)
            finally:
                torch.set_num_threads(threads)
            train.save_checkpoint(path, net, config)
    net.eval()
    _FEATURE_NET = net
    return net


# (Its function-local import stays: this function's source is part of the cached net's key,
# and an edit to it would retrain the net in every checkout.)
@torch.enable_grad()  # callers may hold torch.no_grad() (digit_features does): training needs gradients
def _train_feature_net(net: DigitFeatureNet) -> None:
    from . import data, train

    cfg = _FEATURE_CONFIG
    g = torch.Generator().manual_seed(cfg["seed"])
    x, y = data.digits("train")
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    stream = train.batches(x, y, batch_size=cfg["batch"], generator=g)
    for _ in range(cfg["steps"]):
        xb, yb = next(stream)
        shift = torch.randint(-1, 2, (2,), generator=g).tolist()  # small translations
        xb = torch.roll(xb, shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(); loss.backward(); opt.step()


@torch.no_grad()
def digit_features(x: torch.Tensor) -> torch.Tensor:
    """Features ``(N, 64)`` of digits ``x (N, 1, 16, 16)`` in ``[-1, 1]`` (any device)."""
    checks.images(x, channels=1, size=16, name="digits")
    net = digit_feature_net()
    return torch.cat([net.features(c.float().cpu()) for c in x.split(512)])


def frechet_digit_distance(samples: torch.Tensor, reference: torch.Tensor | None = None) -> float:
    """Fréchet digit distance (FDD) between ``samples (N, 1, 16, 16)`` in ``[-1, 1]`` and
    ``reference`` (default: the 360 real test digits). Lower is better."""
    if reference is None:
        reference = data.digits("test")[0]
    return frechet_distance(digit_features(samples), digit_features(reference))


def fdd_reference(n_samples: int = 1000, seed: int = 0) -> dict[str, float]:
    """The reference rows of the FDD tables.

    ``floor``: real *train* digits vs the test digits -- what a perfect model would get.
    ``gaussian``: ``n_samples`` draws from chapter 1's per-class Gaussians -- the baseline
    (for a generator that is told the class, or draws classes itself).
    ``gaussian_unconditional``: ``n_samples`` draws from one Gaussian fitted to all training
    digits, without their labels -- the baseline with the same information as an
    unconditional generator.
    """
    xtr, ytr = data.digits("train")
    g = torch.Generator().manual_seed(seed)
    samples, _ = density.ClassGaussians().fit(xtr, ytr).sample(n_samples, generator=g)
    one, _ = density.ClassGaussians().fit(xtr, torch.zeros_like(ytr)).sample(n_samples, generator=g)
    return {"floor": frechet_digit_distance(xtr), "gaussian": frechet_digit_distance(samples),
            "gaussian_unconditional": frechet_digit_distance(one)}


def _to_numpy_unit(x: torch.Tensor, name: str) -> np.ndarray:
    checks.images(x, name=name)
    return ((x.detach().cpu().double() + 1) / 2).permute(0, 2, 3, 1).numpy()  # (N, H, W, C) in [0, 1]


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean PSNR in dB over a batch; both ``(N, C, H, W)`` in ``[-1, 1]`` (peak = the [0, 1] range)."""
    if x.shape != ref.shape:
        raise ValueError(f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    a, b = _to_numpy_unit(x, "x"), _to_numpy_unit(ref, "ref")
    return float(np.mean([peak_signal_noise_ratio(r, i, data_range=1.0) for i, r in zip(a, b)]))


def ssim(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean SSIM over a batch; both ``(N, C, H, W)`` in ``[-1, 1]``."""
    if x.shape != ref.shape:
        raise ValueError(f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    a, b = _to_numpy_unit(x, "x"), _to_numpy_unit(ref, "ref")
    win = min(7, a.shape[1], a.shape[2])
    win -= (win + 1) % 2  # odd
    return float(np.mean([structural_similarity(r, i, data_range=1.0, channel_axis=2, win_size=win)
                          for i, r in zip(a, b)]))


# --- chapter 6: mode coverage of a ring of Gaussians (the PacGAN protocol) ---

def mode_coverage(samples: torch.Tensor, centres: torch.Tensor | None = None, sigma: float = 0.01,
                  n_sigmas: float = 3.0, min_count: int = 1) -> dict[str, float]:
    """Modes covered and percentage of high-quality samples (VEEGAN / PacGAN protocol).

    ``samples (N, D)`` are assigned to their nearest mode centre (``centres (K, D)``, default
    the 8 modes of ``lib.data.toy2d("ring8")`` on the unit circle). A sample is *high quality*
    if it lies within ``n_sigmas * sigma`` of that centre; a mode is *covered* if at least
    ``min_count`` high-quality samples fall on it. Returns
    ``{"modes": covered modes (0..K), "high_quality": % of samples that are high quality,
    "counts": high-quality samples per mode (list of K ints)}``.
    PacGAN (Lin et al. 2018, Table 1) draws 2,500 samples with ``sigma = 0.01``.
    """
    checks.tensor(samples, "samples")
    if centres is None:
        centres = data.ring8_centres()
    checks.tensor(centres, "centres")
    if samples.dim() != 2 or len(samples) < 1:
        raise ValueError(f"samples must have shape (N, D) with N >= 1, got {tuple(samples.shape)}")
    if centres.dim() != 2 or centres.shape[1] != samples.shape[1]:
        raise ValueError(f"centres must have shape (K, {samples.shape[1]}), got {tuple(centres.shape)}")
    if not torch.isfinite(samples).all():
        raise ValueError("samples contain NaN or infinite values")
    if not (isinstance(sigma, (int, float)) and sigma > 0 and n_sigmas > 0):
        raise ValueError(f"sigma and n_sigmas must be positive numbers, got {sigma} and {n_sigmas}")
    checks.positive_int(min_count, "min_count")
    d = torch.cdist(samples.double(), centres.double())           # (N, K)
    dist, nearest = d.min(1)
    good = dist <= n_sigmas * sigma
    counts = torch.bincount(nearest[good], minlength=len(centres))
    return {"modes": int((counts >= min_count).sum()), "high_quality": float(good.double().mean() * 100),
            "counts": counts.tolist()}


# --- chapter 8: blur and correspondence of translated images ---

def _laplacian(x: torch.Tensor) -> torch.Tensor:
    """5-point Laplacian on the interior: ``(N, C, H, W) -> (N, C, H-2, W-2)``."""
    return (4 * x[..., 1:-1, 1:-1] - x[..., :-2, 1:-1] - x[..., 2:, 1:-1]
            - x[..., 1:-1, :-2] - x[..., 1:-1, 2:])


def hf_energy_ratio(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Sharpness of ``x`` relative to ``ref``: high-frequency energy ``sum(Lap(x)^2) / sum(Lap(ref)^2)``.

    Both ``(N, C, H, W)`` (``H, W >= 3``), same shape. The 5-point Laplacian keeps only the
    finest detail, so a blurry output scores below 1, an output as detailed as the ground
    truth about 1, and a noisy one above 1. (It measures *how much* detail there is, not
    whether it is the right detail: the L1 error does that.)
    """
    checks.tensor(x, "x"); checks.tensor(ref, "ref")
    if x.shape != ref.shape or x.dim() != 4 or min(x.shape[-2:]) < 3:
        raise ValueError(f"x and ref must be (N, C, H, W) of the same shape with H, W >= 3, "
                         f"got {tuple(x.shape)} and {tuple(ref.shape)}")
    den = float(_laplacian(ref.double()).pow(2).sum())
    if den == 0:
        raise ValueError("ref has no high-frequency energy (it is constant or linear)")
    return float(_laplacian(x.double()).pow(2).sum()) / den


def gradient_magnitude(x: torch.Tensor, differences: str = "central") -> torch.Tensor:
    """Finite-difference gradient magnitude ``sqrt(dx^2 + dy^2)`` of ``x (N, C, H, W)``.

    ``differences="central"``: ``dx = x[i, j+1] - x[i, j-1]`` (and likewise ``dy``), ``(N, C, H-2, W-2)``;
    ``"forward"``: ``dx = x[i, j+1] - x[i, j]``, ``(N, C, H-1, W-1)`` (what :func:`sharpness` averages).
    """
    checks.tensor(x, "x")
    checks.choice(differences, ("central", "forward"), "differences")
    step = 2 if differences == "central" else 1
    if x.dim() != 4 or min(x.shape[-2:]) < step + 1:
        raise ValueError(f"x must be (N, C, H, W) with H, W >= {step + 1}, got {tuple(x.shape)}")
    if differences == "central":
        gx = x[..., 1:-1, 2:] - x[..., 1:-1, :-2]
        gy = x[..., 2:, 1:-1] - x[..., :-2, 1:-1]
    else:
        gx = x[..., :-1, 1:] - x[..., :-1, :-1]
        gy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (gx ** 2 + gy ** 2).sqrt()


def image_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of the pixel values of ``x`` and ``y``: ``(N,)`` in ``[-1, 1]``.

    Used to ask whether a translation is *of its input*: correlate the output with the
    right answer where one is known (1 = same picture up to brightness/contrast, 0 =
    unrelated). ``x``, ``y``: ``(N, ...)`` of the same shape; a constant image gives 0.
    """
    checks.tensor(x, "x"); checks.tensor(y, "y")
    if x.shape != y.shape or x.dim() < 2:
        raise ValueError(f"x and y must have the same shape (N, ...), got {tuple(x.shape)} and {tuple(y.shape)}")
    u = x.double().flatten(1); v = y.double().flatten(1)
    u = u - u.mean(1, keepdim=True)
    v = v - v.mean(1, keepdim=True)
    den = u.norm(dim=1) * v.norm(dim=1)
    return torch.where(den > 0, (u * v).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den)).float()


def structure_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation (:func:`image_correlation`) of the gradient magnitudes of ``x`` and ``y``: ``(N,)`` in ``[-1, 1]``.

    How much of ``x``'s structure (where its edges are) survives in ``y``: near 1 when the
    edges are in the same places, near 0 when ``y``'s edges are unrelated to ``x``'s.
    ``x``, ``y``: ``(N, C, H, W)`` of the same shape. A constant image has correlation 0.
    """
    checks.tensor(x, "x"); checks.tensor(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return image_correlation(gradient_magnitude(x.double()), gradient_magnitude(y.double()))


# --- chapter 10: image measures (sharpness, colour, HDR error, PSNR in a hole) ---

def sharpness(x: torch.Tensor) -> float:
    """Mean gradient magnitude ``sqrt(dx^2 + dy^2)`` (forward differences, in ``[0, 1]`` units,
    averaged over channels, pixels and images) of ``x (N, C, H, W)`` in ``[-1, 1]``.
    Blurry images score low; a restoration should score close to the ground truth."""
    checks.images(x)
    return float(gradient_magnitude((x.double() + 1) / 2, "forward").mean())


def colourfulness_each(x: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk's (2003) colourfulness of each RGB image of ``(N, 3, H, W)`` in
    ``[-1, 1]``, a ``(N,)`` tensor, computed on the 0..255 scale:
    ``sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)``, ``rg = R - G``,
    ``yb = (R + G)/2 - B``. Grey images score 0; vivid photos score 50-100."""
    checks.images(x, channels=3)
    u = (x.double() + 1) / 2 * 255
    r, g, b = u[:, 0].flatten(1), u[:, 1].flatten(1), u[:, 2].flatten(1)
    rg, yb = r - g, (r + g) / 2 - b
    sd = torch.sqrt(rg.var(1, unbiased=False) + yb.var(1, unbiased=False))
    mu = torch.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    return sd + 0.3 * mu


def colourfulness(x: torch.Tensor) -> float:
    """The mean over images of :func:`colourfulness_each` (Hasler & Süsstrunk 2003)."""
    return float(colourfulness_each(x).mean())


def colour_distribution_distance(x: torch.Tensor, ref: torch.Tensor, patch: int = 4,
                                 n_projections: int = 256, seed: int = 0) -> float:
    """How far the *distribution* of local colourings of ``x`` is from that of ``ref``: the sliced
    Wasserstein-1 distance between their ``patch x patch`` patches of opponent colour
    ``(R - G, (R + G)/2 - B)`` (each patch a point of ``2 * patch**2`` numbers; images
    ``(N, 3, H, W)`` in ``[-1, 1]``, ``H`` and ``W`` multiples of ``patch``).

    A measure for samplers, not for estimates: it compares sets, not pairs, so a colouring that
    differs from the truth pixel by pixel but is as varied and saturated as real photos scores
    well, while an average (a regression's dull, shrunken colours) scores badly. Brightness is
    left out (colorization keeps it). 0 for two identical sets."""
    checks.images(x, channels=3, name="x")
    checks.images(ref, channels=3, name="ref")
    checks.positive_int(patch, "patch")
    for name, t in (("x", x), ("ref", ref)):
        if t.shape[2] % patch or t.shape[3] % patch:
            raise ValueError(f"{name}'s height and width must be multiples of patch={patch}, "
                             f"got {tuple(t.shape[2:])}")

    def points(t):  # (N, 3, H, W) -> (N * H/p * W/p, 2 p^2)
        t = t.double()
        opp = torch.stack([t[:, 0] - t[:, 1], (t[:, 0] + t[:, 1]) / 2 - t[:, 2]], 1)
        return F.unfold(opp, patch, stride=patch).transpose(1, 2).reshape(-1, 2 * patch * patch)

    return sliced_wasserstein(points(x), points(ref), n_projections=n_projections, seed=seed)


def colour_error(x: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean colour difference CIE76 ``Delta E`` (Euclidean distance in CIELAB, via scikit-image)
    between RGB images ``x`` and ``ref``, both ``(N, 3, H, W)`` in ``[-1, 1]``, averaged over pixels
    and images; with ``mask (N, 1, H, W)`` (1 = counted) over the masked pixels of all images.
    0 for identical colours; about 2.3 is a just-noticeable difference; a grey image against a
    saturated red one is about 100."""
    checks.images(x, channels=3); checks.images(ref, channels=3)
    if x.shape != ref.shape:
        raise ValueError(f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    a, b = _to_numpy_unit(x, "x").clip(0, 1), _to_numpy_unit(ref, "ref").clip(0, 1)
    de = deltaE_cie76(rgb2lab(a), rgb2lab(b))                     # (N, H, W)
    if mask is None:
        return float(np.mean(de))
    m = checks.binary(checks.shape(mask, (len(x), 1, *x.shape[2:]), "mask"), "mask")[:, 0].cpu().numpy() > 0
    if not m.any():
        raise ValueError("mask selects no pixel")
    return float(de[m].mean())


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


def psnr_masked(x: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor,
                per_image: bool = False) -> float | torch.Tensor:
    """PSNR in dB computed only over the pixels where ``mask (N, 1, H, W)`` is 1 (the hole of an
    inpainting), per image, then averaged; images ``(N, C, H, W)`` in ``[-1, 1]`` (peak = [0, 1] range).
    An exact fill scores 120 dB (the MSE is floored at 1e-12). ``per_image=True`` returns the
    ``(N,)`` tensor of per-image values instead of their mean."""
    checks.images(x, name="x"); checks.images(ref, name="ref"); checks.binary(mask, "mask")
    if x.shape != ref.shape or mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"x, ref must match and mask be (N, 1, H, W); got {tuple(x.shape)}, "
                         f"{tuple(ref.shape)}, {tuple(mask.shape)}")
    d2 = (((x.double() - ref.double()) / 2) ** 2 * mask).sum(dim=(1, 2, 3))
    cnt = mask.double().sum(dim=(1, 2, 3)) * x.shape[1]
    if (cnt == 0).any():
        raise ValueError("every mask must select at least one pixel")
    mse = (d2 / cnt).clamp_min(1e-12)
    db = 10 * torch.log10(1 / mse)
    return db if per_image else float(db.mean())


# --- memorisation: are samples new, or copies of the training set? ---------------------------

def nearest_neighbours(x: torch.Tensor, reference: torch.Tensor,
                       chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices), each ``(N,)``: the Euclidean distance from each item of ``x``
    (``(N, ...)``, flattened) to its nearest item of ``reference`` (``(M, ...)``), and which one."""
    checks.tensor(x, "x"); checks.tensor(reference, "reference")
    if len(x) == 0 or len(reference) == 0:
        raise ValueError(f"x and reference must be non-empty, got {len(x)} and {len(reference)} items")
    a, b = x.flatten(1).double(), reference.flatten(1).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and reference items must have the same size, got {a.shape[1]} and {b.shape[1]}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("x and reference must be finite (no NaN or inf)")
    dist, idx = zip(*(torch.cdist(a[i:i + chunk], b).min(1) for i in range(0, len(a), chunk)))
    return torch.cat(dist), torch.cat(idx)


def copy_rate(samples: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor,
              quantile: float = 0.01) -> float:
    """Memorisation, in %: the share of ``samples`` closer to their nearest training item than
    all but ``quantile`` of new real data (``held_out``) is. New real data scores ``100 *
    quantile`` by construction (1 % by default); a model that copies its training set, 100 %."""
    checks.probability(quantile, "quantile")
    threshold = torch.quantile(nearest_neighbours(held_out, train)[0], quantile)
    return 100 * float((nearest_neighbours(samples, train)[0] < threshold).double().mean())


def record_copy_rate(what: str, samples: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor,
                     data: str = "digits") -> float:
    """Record :func:`copy_rate` of a generator's ``samples`` as the page's memorisation figure
    (a reference next to its quality figure: new real ``data`` -- ``"digits"``, ``"scenes"``,
    ... -- score 1 % by construction). Returns the recorded figure (a float,
    :class:`lib.results.Figure`; a cell ending in this call shows nothing)."""
    from . import results

    if not isinstance(data, str) or not data.strip():
        raise ValueError(f"data must name what the samples are (e.g. 'digits'), got {data!r}")
    rate = copy_rate(samples, train, held_out)
    return results.record(f"memorisation: {what} closer to the training set than 99% of test {data}",
                          rate, "%", baseline=1.0, baseline_name=f"new real {data} (by construction)",
                          higher_is_better=False, kind="reference")


# --- layouts and scenes (chapter 10) --------------------------------------------------------

def iou(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> tuple[float, torch.Tensor]:
    """Intersection over union of label maps ``pred`` and ``target`` (int64, same shape, e.g.
    ``(N, H, W)``), pooled over every pixel of the set: ``IoU_c = |pred = c and target = c| /
    |pred = c or target = c|``. Returns ``(mIoU, per_class)``: ``per_class`` ``(n_classes,)``
    float, NaN for a class that is in neither map; the mean is over the other classes."""
    checks.positive_int(n_classes, "n_classes")
    for x, nm in ((pred, "pred"), (target, "target")):
        checks.tensor(x, nm)
        if x.dtype != torch.long:
            raise TypeError(f"{nm} must hold int64 class indices, got {x.dtype}")
        if x.numel() and (x.min() < 0 or x.max() >= n_classes):
            raise ValueError(f"{nm} must lie in 0..{n_classes - 1}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    cls = torch.arange(n_classes, device=pred.device).view(-1, *([1] * pred.dim()))
    p, t = pred[None] == cls, target[None] == cls                         # (C, ...)
    inter = (p & t).flatten(1).sum(1).double()
    union = (p | t).flatten(1).sum(1).double()
    per = torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, float("nan")))
    return float(per[union > 0].mean()), per.float().cpu()


class SceneFeatureNet(nn.Module):
    """A small CNN for colour scenes ``(N, 3, 32, 32)`` in [-1, 1]: ``forward`` -> ``(N, n_out)``,
    ``features`` -> ``(N, 64)`` (the penultimate layer). A notebook trains it on real renders
    (e.g. to predict each scene's appearance and class fractions) and measures realism as the
    :func:`frechet_distance` of generated and real images' features."""

    def __init__(self, n_out: int, width: int = 32):
        super().__init__()
        checks.positive_int(n_out, "n_out"); checks.positive_int(width, "width")
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),          # (N, w, 16, 16)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),      # (N, 2w, 8, 8)
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),  # (N, 2w, 4, 4)
            nn.Flatten(), nn.Linear(2 * w * 16, 64), nn.ReLU())                  # (N, 64)
        self.head = nn.Linear(64, n_out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        checks.images(x.detach(), channels=3, size=32, name="scenes")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
