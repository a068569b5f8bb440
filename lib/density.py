"""Explicit density models (introduced in chapter 1; chapter 3 adds mixtures and energies).

:class:`ClassGaussians` is the simplest generative model of images in the book:
one multivariate Gaussian per class, fitted by maximum likelihood in pixel
space. It is the *baseline* every deep generative model must beat.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from . import checks, data, nets


class ClassGaussians:
    """One Gaussian ``N(mu_k, Sigma_k + reg I)`` per class ``k`` over flattened images.

    ``fit(x, y)``: ``x`` of shape ``(N, D)`` or ``(N, C, H, W)``, ``y`` of shape ``(N,)``.
    ``reg`` adds ``reg * I`` to each covariance: with fewer images per class than
    pixels the sample covariance is singular, and the small ridge keeps the
    density finite everywhere.
    """

    def __init__(self, reg: float = 1e-2):
        if not reg > 0:
            raise ValueError(f"reg must be > 0, got {reg}")
        self.reg = float(reg)
        self.dists: list[torch.distributions.MultivariateNormal] = []
        self.shape: tuple[int, ...] | None = None

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> "ClassGaussians":
        checks.tensor(x, "x"); checks.tensor(y, "y")
        if x.dim() < 2 or y.dim() != 1 or len(x) != len(y):
            raise ValueError(f"x must be (N, ...) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        self.shape = tuple(x.shape[1:])
        flat = x.reshape(len(x), -1).double()
        self.classes = sorted(int(c) for c in y.unique())
        self.labels = y.detach().cpu().long()  # the training labels, to draw classes at their frequencies
        counts = torch.tensor([(y == c).sum() for c in self.classes], dtype=torch.float64)
        self.log_prior = (counts / counts.sum()).log()
        self.dists = []
        for c in self.classes:
            xc = flat[y == c]
            if len(xc) < 2:
                raise ValueError(f"class {c} has {len(xc)} example(s); need at least 2 to fit a covariance")
            mu = xc.mean(0)
            cov = (xc - mu).T @ (xc - mu) / len(xc)  # maximum likelihood: 1/N
            cov = cov + self.reg * torch.eye(cov.shape[0], dtype=cov.dtype)
            self.dists.append(torch.distributions.MultivariateNormal(mu, covariance_matrix=cov))
        return self

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dists:
            raise ValueError("call fit() first")
        checks.tensor(x, "x")
        if tuple(x.shape[1:]) != self.shape and not (x.dim() == 2 and x.shape[1] == math.prod(self.shape)):
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        return x.reshape(len(x), -1).double()

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density in nats, shape ``(N,)``: ``log p(x | y)`` if ``y`` is given, else ``log p(x)``
        under the mixture with the class frequencies as weights."""
        flat = self._flat(x)
        per_class = torch.stack([d.log_prob(flat) for d in self.dists], 1)  # (N, K)
        if y is None:
            return torch.logsumexp(per_class + self.log_prior, 1).float()
        idx = torch.tensor([self.classes.index(int(c)) for c in y])
        return per_class[torch.arange(len(flat)), idx].float()

    def sample(self, n: int, y: int | None = None, generator: torch.Generator | None = None,
               clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples (of class ``y``, or classes drawn from the prior).

        Returns ``(x, labels)`` with ``x`` of shape ``(n, *shape)``, values clipped to ``[-1, 1]``
        (the range of images; ``clip=False`` for other data, e.g. latent codes).
        """
        checks.positive_int(n, "n")
        if not self.dists:
            raise ValueError("call fit() first")
        if y is None:
            drawn = data.sample_labels(self.labels, n, generator)  # class values
            labels = torch.searchsorted(torch.tensor(self.classes), drawn)  # their index k
        else:
            if y not in self.classes:
                raise ValueError(f"unknown class {y}; expected one of {self.classes}")
            labels = torch.full((n,), self.classes.index(y))
        out = torch.empty(n, math.prod(self.shape), dtype=torch.float64)
        for k, d in enumerate(self.dists):
            m = labels == k
            if m.any():
                eps = torch.randn(int(m.sum()), out.shape[1], generator=generator, dtype=torch.float64)
                out[m] = d.loc + eps @ d.scale_tril.T
        classes = torch.tensor(self.classes)[labels]
        out = out.float().clamp(-1, 1) if clip else out.float()
        return out.reshape(n, *self.shape), classes


# --- chapter 3: Gaussian maximum likelihood, mixtures (EM), energy/score models, a direct generator ---
#
# Chapter 3 fits densities by maximum likelihood, first in closed form and by gradient
# ascent (one Gaussian), then with EM (a mixture of Gaussians), and contrasts the two
# ways of representing a data generator: *indirect* -- a network that scores points,
# E: X -> R, sampled with Langevin dynamics -- and *direct* -- a network G: Z -> X.



def _points2(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Validate a point cloud ``(N, D)`` of finite values with ``N >= 1``."""
    checks.tensor(x, name)
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def gaussian_mle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form maximum likelihood Gaussian (the slide's *Case study #1*).

    ``x``: ``(N,)`` (1-D data) or ``(N, D)``. Returns ``(mu, var)``: for 1-D data two
    0-d tensors ``mu = mean(x)``, ``var = mean((x - mu)^2)`` (the 1/N, *biased*
    estimate); for ``(N, D)`` the mean ``(D,)`` and covariance ``(D, D)`` with 1/N.
    """
    checks.tensor(x, "x")
    if x.dim() == 1:
        x1 = _points2(x[:, None])[:, 0].double()
        mu = x1.mean()
        return mu, ((x1 - mu) ** 2).mean()
    x = _points2(x).double()
    mu = x.mean(0)
    return mu, (x - mu).T @ (x - mu) / len(x)


def gaussian_log_likelihood(x: torch.Tensor, mu, var) -> torch.Tensor:
    """Average log-likelihood (nats per point) of 1-D data ``x (N,)`` under ``N(mu, var)``.

    Differentiable in ``mu`` and ``var`` (tensors) -- what gradient ascent climbs.
    """
    checks.tensor(x, "x")
    if x.dim() != 1:
        raise ValueError(f"x must be 1-D data of shape (N,), got {tuple(x.shape)}")
    var = torch.as_tensor(var, dtype=torch.float64)
    if not (var > 0).all():
        raise ValueError(f"var must be > 0, got {var}")
    x = x.double()
    return (-0.5 * math.log(2 * math.pi) - 0.5 * torch.log(var) - (x - mu) ** 2 / (2 * var)).mean()


def gaussian_gradient_ascent(x: torch.Tensor, steps: int = 500, lr: float = 0.05,
                             init: tuple[float, float] | None = None) -> dict:
    """Fit ``N(mu, sigma^2)`` to 1-D data ``x (N,)`` by gradient ascent on the average log-likelihood.

    Parameters are ``mu`` and ``log sigma`` (so sigma stays positive), updated with
    Adam through torch autograd. ``init = (mu0, sigma0)`` defaults to ``(0, 1)``.
    Returns ``{"mu", "var" (floats), "path": (steps + 1, 2) array of (mu, sigma),
    "loglik": list of the average log-likelihood per step}``.
    """
    checks.tensor(x, "x")
    if x.dim() != 1 or len(x) < 1:
        raise ValueError(f"x must be 1-D data of shape (N,), got {tuple(x.shape)}")
    checks.positive_int(steps, "steps")
    mu0, s0 = init if init is not None else (0.0, 1.0)
    if not s0 > 0:
        raise ValueError(f"initial sigma must be > 0, got {s0}")
    mu = torch.tensor(float(mu0), dtype=torch.float64, requires_grad=True)
    log_s = torch.tensor(math.log(s0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, log_s], lr=lr)
    path, ll = [(mu0, s0)], []
    for _ in range(steps):
        obj = gaussian_log_likelihood(x, mu, torch.exp(2 * log_s))
        opt.zero_grad(); (-obj).backward(); opt.step()   # ascent = descent on -obj
        ll.append(float(obj.detach())); path.append((float(mu.detach()), float(log_s.detach().exp())))
    return {"mu": float(mu.detach()), "var": float(torch.exp(2 * log_s.detach())), "path": np.array(path), "loglik": ll}


class GaussianMixture:
    """Mixture of ``k`` full-covariance Gaussians fitted by EM (Dempster et al., 1977).

    ``p(x) = sum_j pi_j N(x; mu_j, Sigma_j)`` on points ``(N, D)``. The E-step
    computes responsibilities with log-sum-exp (no underflow far from every
    component); the M-step re-estimates weights, means and covariances, adding
    ``reg * I`` to each covariance. A component that loses (almost) all its points
    keeps its previous mean and covariance with a weight of ~0 instead of dividing
    by zero, so a collapsing component never produces NaNs. ``history`` holds the
    average training log-likelihood after every iteration (non-decreasing, up to
    the tiny effect of ``reg``).
    """

    def __init__(self, k: int, reg: float = 1e-6):
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k (number of components) must be an int, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k (number of components) must be a positive integer, got {k}")
        if not reg > 0:
            raise ValueError(f"reg must be > 0, got {reg}")
        self.k, self.reg = k, float(reg)
        self.history: list[float] = []
        self.weights = self.means = self.covs = None

    def _component_logpdf(self, x: torch.Tensor) -> torch.Tensor:
        """``log pi_j + log N(x_i; mu_j, Sigma_j)`` as ``(N, k)``."""
        L = torch.linalg.cholesky(self.covs)                        # (k, D, D)
        diff = (x[:, None, :] - self.means[None]).unsqueeze(-1)     # (N, k, D, 1)
        sol = torch.linalg.solve_triangular(L[None], diff, upper=False).squeeze(-1)  # (N, k, D)
        maha = (sol ** 2).sum(-1)                                   # (N, k)
        logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (k,)
        D = x.shape[1]
        return torch.log(self.weights.clamp_min(1e-300)) - 0.5 * (D * math.log(2 * math.pi) + logdet + maha)

    def fit(self, x: torch.Tensor, iters: int = 100, seed: int = 0, tol: float = 0.0,
            snapshots: bool = False) -> "GaussianMixture":
        """Run EM on ``x (N, D)`` for ``iters`` iterations (stop early once the gain < ``tol``).

        Initialisation: ``k`` distinct data points as means (k-means++ style spread,
        seeded), the data covariance for every component, equal weights.
        ``snapshots=True`` keeps ``self.snapshots``: ``(weights, means, covs)`` at the start
        and after every iteration (``snapshots[i]`` is the mixture after ``i`` iterations).
        """
        x = _points2(x).double()
        checks.positive_int(iters, "iters")
        n, D = x.shape
        g = torch.Generator().manual_seed(seed)
        eye = torch.eye(D, dtype=torch.float64)
        # k-means++ seeding: each new mean is drawn with probability ~ squared distance to the chosen ones.
        idx = [int(torch.randint(n, (1,), generator=g))]
        for _ in range(1, self.k):
            d2 = torch.cdist(x, x[idx]).min(1).values ** 2
            probs = d2 / d2.sum() if d2.sum() > 0 else torch.full((n,), 1.0 / n, dtype=torch.float64)
            idx.append(int(torch.multinomial(probs, 1, generator=g)))
        self.means = x[idx].clone()
        cov0 = (x - x.mean(0)).T @ (x - x.mean(0)) / n + self.reg * eye
        self.covs = cov0.expand(self.k, D, D).clone()
        self.weights = torch.full((self.k,), 1.0 / self.k, dtype=torch.float64)
        self.history = []
        self.snapshots = []
        keep = (lambda: self.snapshots.append((self.weights.clone(), self.means.clone(), self.covs.clone()))
                if snapshots else lambda: None)
        keep()
        for _ in range(iters):
            logp = self._component_logpdf(x)                        # (N, k)   E-step
            total = torch.logsumexp(logp, 1, keepdim=True)          # (N, 1)
            resp = torch.exp(logp - total)                          # (N, k), rows sum to 1
            nk = resp.sum(0)                                        # (k,)     M-step
            alive = nk > 1e-8 * n
            self.weights = nk / n
            means = (resp.T @ x) / nk.clamp_min(1e-300)[:, None]
            self.means = torch.where(alive[:, None], means, self.means)
            diff = x[None] - self.means[:, None]                    # (k, N, D)
            covs = torch.einsum("kn,kni,knj->kij", resp.T, diff, diff) / nk.clamp_min(1e-300)[:, None, None]
            covs = 0.5 * (covs + covs.transpose(1, 2)) + self.reg * eye
            self.covs = torch.where(alive[:, None, None], covs, self.covs)
            self.history.append(float(self.log_prob(x).mean()))
            keep()
            if tol > 0 and len(self.history) > 1 and self.history[-1] - self.history[-2] < tol:
                break
        return self

    def _check_fitted(self, x: torch.Tensor) -> torch.Tensor:
        if self.means is None:
            raise ValueError("call fit() first")
        x = _points2(x)
        if x.shape[1] != self.means.shape[1]:
            raise ValueError(f"x must have shape (N, {self.means.shape[1]}), got {tuple(x.shape)}")
        return x.double()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` in nats, shape ``(N,)``, for points ``x (N, D)``."""
        return torch.logsumexp(self._component_logpdf(self._check_fitted(x)), 1)

    def ellipses(self, n_sigma: float = 2.0, points: int = 100, covs: torch.Tensor | None = None,
                 means: torch.Tensor | None = None) -> np.ndarray:
        """The ``n_sigma`` contour of each 2-D component, ``(k, 2, points)`` (x and y rows), for
        plotting; ``means``/``covs`` default to the fitted ones (pass a snapshot's to draw it)."""
        means = self.means if means is None else means
        covs = self.covs if covs is None else covs
        if means is None:
            raise ValueError("call fit() first")
        if means.shape[1] != 2:
            raise ValueError(f"ellipses are drawn for 2-D mixtures, this one is {means.shape[1]}-D")
        th = torch.linspace(0, 2 * math.pi, points, dtype=torch.float64)
        circle = torch.stack([th.cos(), th.sin()])                          # (2, P)
        L = torch.linalg.cholesky(covs.double())                            # (k, 2, 2)
        return (means.double()[:, :, None] + n_sigma * L @ circle).numpy()

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior ``p(component j | x_i)``, shape ``(N, k)``, rows sum to 1."""
        logp = self._component_logpdf(self._check_fitted(x))
        return torch.softmax(logp, 1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points ``(n, D)`` (float32): pick a component by weight, then ``mu + L eps``."""
        checks.positive_int(n, "n")
        if self.means is None:
            raise ValueError("call fit() first")
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        L = torch.linalg.cholesky(self.covs)
        eps = torch.randn(n, self.means.shape[1], 1, generator=generator, dtype=torch.float64)
        return (self.means[comp] + (L[comp] @ eps).squeeze(-1)).float()


class EnergyNet(nn.Module):
    """A noise-conditional energy ``E_theta(x, sigma): R^D x R+ -> R`` (an MLP).

    Low energy = likely: ``p_sigma(x) ~ exp(-E(x, sigma))``. The *score* is
    ``s(x, sigma) = -dE/dx`` (:meth:`score`), computed by autograd. ``sigma`` enters
    as ``log sigma`` appended to the input, so one network models the data blurred
    at every noise level (as in (Song & Ermon, 2019)). The output is divided by
    ``sigma`` so that the score scales like ``1/sigma`` from the start.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        checks.positive_int(dim, "dim"); checks.positive_int(hidden, "hidden"); checks.positive_int(depth, "depth")
        self.net = nets.mlp([dim + 1] + [hidden] * depth + [1], act=nn.SiLU)
        self.dim = dim

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``x (B, D)``, ``sigma (B,)`` or a float (> 0) -> energies ``(B,)``."""
        checks.shape(x, (None, self.dim), "x")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(len(x))
        if not (sigma > 0).all():
            raise ValueError("sigma (the noise level) must be > 0")
        return self.net(torch.cat([x, sigma.log()[:, None]], 1)).squeeze(1) / sigma

    def score(self, x: torch.Tensor, sigma, create_graph: bool = False) -> torch.Tensor:
        """``-grad_x E(x, sigma)``, shape ``(B, D)``; ``create_graph=True`` while training."""
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            e = self(x, sigma).sum()
            (g,) = torch.autograd.grad(e, x, create_graph=create_graph)
        return -g


def noise_levels(sigma_max: float = 1.0, sigma_min: float = 0.01, n: int = 10) -> torch.Tensor:
    """Geometric noise levels ``(n,)`` from ``sigma_max`` down to ``sigma_min``."""
    checks.positive_int(n, "n")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), n))


def dsm_loss(model: EnergyNet, x: torch.Tensor, sigmas: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Denoising score matching loss (Vincent, 2011) averaged over random noise levels.

    For clean ``x (B, D)``, a level ``sigma`` drawn from ``sigmas`` per point and
    ``x~ = x + sigma eps``, the score of the noising kernel is ``-eps / sigma``;
    the loss is ``mean sigma^2 || s(x~, sigma) + eps / sigma ||^2`` (the ``sigma^2``
    weights all levels equally). Minimising it makes ``s`` the score of the data
    blurred with noise ``sigma``.
    """
    x = _points2(x)
    idx = torch.randint(len(sigmas), (len(x),), generator=generator).to(x.device)
    sig = sigmas.to(x.device)[idx]                                  # (B,)
    eps = torch.randn(x.shape, generator=generator).to(x.device)
    xt = x + sig[:, None] * eps
    s = model.score(xt.requires_grad_(True), sig, create_graph=True)
    return ((sig[:, None] * s + eps) ** 2).sum(1).mean()


@torch.no_grad()
def langevin_sample(model: EnergyNet, n: int, sigmas: torch.Tensor, steps_per_level: int = 50,
                    eps: float = 2e-5, init: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, keep_levels: bool = False):
    """Annealed Langevin dynamics (Song & Ermon, 2019): generate by following the score.

    Start from ``init`` (default ``N(0, sigma_max^2 I)``, shape ``(n, D)``); for each
    level ``sigma`` (largest first) take ``steps_per_level`` steps
    ``x <- x + (a/2) s(x, sigma) + sqrt(a) z`` with ``a = eps * sigma^2 / sigma_min^2``.
    Returns ``(n, D)``; the last level's noise-free step is the final denoising
    ``x + sigma_min^2 s(x, sigma_min)``. With ``keep_levels=True`` returns
    ``(x, [x after each level, on the CPU])`` to show the annealing.
    """
    checks.positive_int(n, "n"); checks.positive_int(steps_per_level, "steps_per_level")
    dev = next(model.parameters()).device
    sigmas = sigmas.to(dev)
    x = init.to(dev).clone() if init is not None else \
        torch.randn(n, model.dim, generator=generator).to(dev) * sigmas[0]
    levels = []
    for sigma in sigmas:
        a = eps * (sigma / sigmas[-1]) ** 2
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator).to(dev)
            x = x + 0.5 * a * model.score(x, sigma) + a.sqrt() * z
        levels.append(x.cpu())
    x = x + sigmas[-1] ** 2 * model.score(x, sigmas[-1])
    return (x, levels) if keep_levels else x


class Generator2d(nn.Module):
    """A direct generator ``G: Z -> X``: an MLP from ``z ~ N(0, I_zdim)`` to points in ``R^dim``."""

    def __init__(self, z_dim: int = 4, dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        for v, nm in ((z_dim, "z_dim"), (dim, "dim"), (hidden, "hidden"), (depth, "depth")):
            checks.positive_int(v, nm)
        self.net = nets.mlp([z_dim] + [hidden] * depth + [dim], act=nn.SiLU)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, z_dim)`` -> ``x (B, dim)``."""
        checks.shape(z, (None, self.z_dim), "z")
        return self.net(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples ``(n, dim)``: ``G(z)`` with ``z ~ N(0, I)``."""
        checks.positive_int(n, "n")
        dev = next(self.parameters()).device
        return self(torch.randn(n, self.z_dim, generator=generator).to(dev))


def mmd_loss(a: torch.Tensor, b: torch.Tensor, bandwidths=(0.05, 0.1, 0.2, 0.5, 1.0),
             unbiased: bool = False) -> torch.Tensor:
    """Differentiable squared MMD (Gretton et al., 2012) with a sum of Gaussian kernels
    ``k(x, y) = sum_h exp(-|x - y|^2 / (2 h^2))`` over ``bandwidths`` (``None``: one kernel
    whose bandwidth is the median pairwise distance of the pooled sample).

    ``a (N, D)``, ``b (M, D)``; a 0-d tensor. By default the biased (V-statistic) estimate,
    >= 0, zero iff the two empirical distributions coincide (for a characteristic kernel):
    training a generator to minimise it is a *generative moment matching network*.
    ``unbiased=True`` leaves out the ``k(x, x)`` terms (the U-statistic, which can be
    slightly negative; :func:`lib.metrics.mmd` reports it).
    """
    a, b = _points2(a, "a"), _points2(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    n, m = len(a), len(b)
    if unbiased and min(n, m) < 2:
        raise ValueError(f"the unbiased MMD needs at least two points on each side, got {n} and {m}")
    z = torch.cat([a, b])
    d2 = torch.cdist(z, z).pow(2)                                   # (N + M, N + M)
    if bandwidths is None:
        bandwidths = (float(d2[d2 > 0].median().sqrt()),)
    k = sum(torch.exp(-d2 / (2 * h ** 2)) for h in bandwidths)
    kaa, kbb, kab = k[:n, :n], k[n:, n:], k[:n, n:]
    if unbiased:
        return (kaa.sum() - kaa.trace()) / (n * (n - 1)) + (kbb.sum() - kbb.trace()) / (m * (m - 1)) - 2 * kab.mean()
    return kaa.mean() + kbb.mean() - 2 * kab.mean()
