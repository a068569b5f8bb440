"""Explicit density models (introduced in chapter 1; chapter 3 adds mixtures and energies).

:class:`ClassGaussians` is the simplest generative model of images in the book:
one multivariate Gaussian per class, fitted by maximum likelihood in pixel
space. It is the *baseline* every deep generative model must beat.
"""
from __future__ import annotations

import math

import torch

from . import checks


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

    def sample(self, n: int, y: int | None = None, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples (of class ``y``, or classes drawn from the prior).

        Returns ``(x, labels)`` with ``x`` of shape ``(n, *shape)``, values clipped to ``[-1, 1]``.
        """
        checks.positive_int(n, "n")
        if not self.dists:
            raise ValueError("call fit() first")
        if y is None:
            labels = torch.multinomial(self.log_prior.exp(), n, replacement=True, generator=generator)
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
        return out.float().clamp(-1, 1).reshape(n, *self.shape), classes
