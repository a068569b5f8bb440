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
* :func:`psnr`, :func:`ssim` -- image fidelity, via scikit-image.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks, runtime


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
    """Unbiased squared MMD with a Gaussian kernel between ``a (N, D)`` and ``b (M, D)``.

    ``bandwidth`` defaults to the median pairwise distance of the pooled sample.
    """
    a, b = _points(a, "a"), _points(b, "b")
    z = torch.cat([a, b])
    d2 = torch.cdist(z, z).pow(2)
    if bandwidth is None:
        bandwidth = float(d2[d2 > 0].median().sqrt())
    k = torch.exp(-d2 / (2 * bandwidth ** 2))
    n, m = len(a), len(b)
    kaa, kbb, kab = k[:n, :n], k[n:, n:], k[:n, n:]
    return float((kaa.sum() - kaa.trace()) / (n * (n - 1)) + (kbb.sum() - kbb.trace()) / (m * (m - 1))
                 - 2 * kab.mean())


def frechet_distance(fa: torch.Tensor, fb: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features ``fa (N, F)`` and ``fb (M, F)``:
    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``."""
    from scipy import linalg

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
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


_FEATURE_NET: DigitFeatureNet | None = None
_FEATURE_CONFIG = {"arch": "DigitFeatureNet-v1", "steps": 1000, "batch": 128, "seed": 1234}


def _code_fingerprint(*objects) -> str:
    """A short hash of the source code of ``objects``: the cache key changes whenever the code does."""
    import hashlib
    import inspect

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
    from . import train

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
        from . import data
        reference = data.digits("test")[0]
    return frechet_distance(digit_features(samples), digit_features(reference))


def fdd_reference(n_samples: int = 1000, seed: int = 0) -> dict[str, float]:
    """The two reference rows of every FDD table.

    ``floor``: real *train* digits vs the test digits -- what a perfect model would get.
    ``gaussian``: ``n_samples`` draws from chapter 1's per-class Gaussians -- the baseline.
    """
    from . import data, density

    xtr, ytr = data.digits("train")
    g = torch.Generator().manual_seed(seed)
    samples, _ = density.ClassGaussians().fit(xtr, ytr).sample(n_samples, generator=g)
    return {"floor": frechet_digit_distance(xtr), "gaussian": frechet_digit_distance(samples)}


def _to_numpy_unit(x: torch.Tensor, name: str) -> np.ndarray:
    checks.images(x, name=name)
    return ((x.detach().cpu().double() + 1) / 2).permute(0, 2, 3, 1).numpy()  # (N, H, W, C) in [0, 1]


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean PSNR in dB over a batch; both ``(N, C, H, W)`` in ``[-1, 1]`` (peak = the [0, 1] range)."""
    from skimage.metrics import peak_signal_noise_ratio

    if x.shape != ref.shape:
        raise ValueError(f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}")
    a, b = _to_numpy_unit(x, "x"), _to_numpy_unit(ref, "ref")
    return float(np.mean([peak_signal_noise_ratio(r, i, data_range=1.0) for i, r in zip(a, b)]))


def ssim(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean SSIM over a batch; both ``(N, C, H, W)`` in ``[-1, 1]``."""
    from skimage.metrics import structural_similarity

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
        from . import data
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
