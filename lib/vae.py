"""Autoencoders and variational autoencoders (introduced in chapter 7).

Read top to bottom:

1. :class:`Autoencoder` -- the classical deterministic autoencoder
   ``argmin E||G(E(x)) - x||^2`` and :func:`noisy_autoencoder_loss`, the lecture
   slide's ``||G(E(x + eps)) - x||^2 + ||E(x + eps)||^2``;
2. the two small pieces every VAE is made of: :func:`gaussian_kl` (closed-form
   ``KL(N(mu, sigma^2) || N(0, I))``) and :func:`reparameterize`
   (``z = mu + sigma * eps``, so gradients reach ``mu`` and ``log sigma^2``);
3. :class:`VAE` -- Gaussian encoder ``q(z|x)``, standard-normal prior ``p(z)``,
   and a decoder ``p(x|z)`` that is either **Bernoulli** (binarised images in
   ``{0, 1}``: ``log p(x)`` is a log *probability*, in nats, always ``<= 0``) or
   **Gaussian** with a fixed standard deviation (images in ``[-1, 1]``: a
   *density*, whose nats depend on that standard deviation); with
   :meth:`VAE.elbo` and the importance-weighted bound :meth:`VAE.iwae`. With
   ``num_classes`` it is the *conditional* VAE (Sohn et al. 2015): encoder
   ``q(z|x, y)`` and decoder ``p(x|z, y)`` also see the class ``y`` (one-hot), the
   prior stays ``N(0, I)``, and every method takes the labels ``y``.

The VQ-VAE, with its discrete codes and the priors over them, is in :mod:`lib.vq`.

Shapes: images are ``(N, 1, H, W)``; latent codes of the MLP models ``(N, D)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks, gan, nets

LIKELIHOODS = ("bernoulli", "gaussian")


def _latent(z: torch.Tensor, dim: int, name: str = "z") -> torch.Tensor:
    checks.tensor(z, name)
    if z.dim() != 2 or z.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(z.shape)}")
    return z


# --- 1. the classical autoencoder ------------------------------------------------------------

class Autoencoder(nn.Module):
    """Deterministic MLP autoencoder ``x -> z = E(x) -> G(z)`` for images in ``[-1, 1]``.

    ``encode(x)``: ``(N, 1, S, S)`` -> codes ``(N, code_dim)``;
    ``decode(z)``: ``(N, code_dim)`` -> images ``(N, 1, S, S)`` in ``(-1, 1)`` (tanh);
    ``forward(x)`` -> ``(reconstruction, code)``. Trained with :func:`autoencoder_loss`.
    """

    def __init__(self, code_dim: int = 2, hidden: int = 256, image_size: int = 16):
        super().__init__()
        checks.positive_int(code_dim, "code_dim"); checks.positive_int(hidden, "hidden")
        checks.positive_int(image_size, "image_size")
        self.code_dim, self.image_size = code_dim, image_size
        d = image_size * image_size
        self.encoder = nets.mlp([d, hidden, hidden // 2, code_dim])
        self.decoder = nets.mlp([code_dim, hidden // 2, hidden, d])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        checks.images(x, channels=1, size=self.image_size)
        return self.encoder(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        _latent(z, self.code_dim)
        return torch.tanh(self.decoder(z)).view(-1, 1, self.image_size, self.image_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decode(z), z


def autoencoder_loss(ae: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """The slide *Classical Autoencoder*: mean over the batch of ``||G(E(x)) - x||^2`` (0-d)."""
    recon, _ = ae(x)
    return (recon - x).pow(2).flatten(1).sum(1).mean()


def noisy_autoencoder_loss(ae: Autoencoder, x: torch.Tensor, noise_std: float = 0.5,
                           code_weight: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The slide *Variational Autoencoder* objective, taken literally (0-d tensor):

    ``E_{x, eps} ||G(E(x + eps)) - x||^2 + code_weight * ||E(x + eps)||^2``, ``eps ~ N(0, noise_std^2 I)``.

    The noise makes nearby inputs share a reconstruction; the code penalty pulls
    every code towards the origin (it is ``-2 log N(z; 0, I)`` up to a constant).
    Noisy inputs may leave ``[-1, 1]``, so the encoder is applied without the range check.
    """
    checks.images(x, channels=1, size=ae.image_size)
    if not noise_std >= 0 or not code_weight >= 0:
        raise ValueError(f"noise_std and code_weight must be >= 0, got {noise_std}, {code_weight}")
    eps = torch.randn(x.shape, generator=generator, device=x.device) * noise_std
    z = ae.encoder((x + eps).flatten(1))
    recon = ae.decode(z)
    return ((recon - x).pow(2).flatten(1).sum(1) + code_weight * z.pow(2).sum(1)).mean()


# --- 2. the two pieces of every VAE ----------------------------------------------------------

def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` in nats, summed over the last dimension.

    ``mu``, ``logvar``: ``(..., D)`` -> ``(...)``. Closed form, per dimension:
    ``0.5 * (mu^2 + sigma^2 - 1 - log sigma^2)``; zero exactly when ``mu = 0, sigma = 1``.
    """
    checks.tensor(mu, "mu"); checks.tensor(logvar, "logvar")
    if mu.shape != logvar.shape or mu.dim() < 1:
        raise ValueError(f"mu and logvar must have the same shape (..., D), got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A sample ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``; same shape as ``mu``.

    The randomness sits in ``eps``, which does not depend on the parameters, so
    ``dz/dmu = 1`` and ``dz/dlogvar = 0.5 * sigma * eps``: gradients flow through the sample.
    """
    checks.tensor(mu, "mu"); checks.tensor(logvar, "logvar")
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def _std_normal_logpdf(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` summed over the last dimension."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)


def _diag_normal_logpdf(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` summed over the last dimension."""
    return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


# --- 3. the variational autoencoder ----------------------------------------------------------

class VAE(nn.Module):
    """A VAE with MLP encoder and decoder (Kingma & Welling 2014; Rezende et al. 2014).

    * prior ``p(z) = N(0, I)`` with ``z`` of dimension ``latent_dim``;
    * encoder ``q(z|x) = N(mu(x), diag(exp(logvar(x))))``: :meth:`encode` -> ``(mu, logvar)``, each ``(N, D)``;
    * decoder :meth:`decode` ``(N, D)`` -> ``(N, 1, S, S)``: Bernoulli **logits** (``likelihood="bernoulli"``,
      data ``x`` binary in ``{0, 1}``) or the Gaussian **mean** in ``(-1, 1)``
      (``likelihood="gaussian"``, data in ``[-1, 1]``, standard deviation ``sigma``: fixed, or with
      ``learn_sigma=True`` one learned scalar that starts at ``sigma`` and is trained with the ELBO,
      the maximum-likelihood noise level of the "calibrated decoder" of Rybkin et al. 2021).

    :meth:`elbo` and :meth:`iwae` return per-image values in nats, shape ``(N,)``.

    ``num_classes = C > 0`` makes it the conditional VAE: the encoder reads ``[x, onehot(y)]``,
    the decoder ``[z, onehot(y)]``, and ``encode``, ``decode``, ``elbo``, ``iwae`` and ``sample``
    take integer labels ``y (N,)`` in ``[0, C)`` (required then, refused otherwise).
    """

    def __init__(self, latent_dim: int = 16, hidden: int = 400, likelihood: str = "bernoulli",
                 sigma: float = 0.1, image_size: int = 16, learn_sigma: bool = False,
                 num_classes: int = 0):
        super().__init__()
        checks.positive_int(latent_dim, "latent_dim"); checks.positive_int(hidden, "hidden")
        checks.positive_int(image_size, "image_size")
        checks.choice(likelihood, LIKELIHOODS, "likelihood")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if learn_sigma and likelihood != "gaussian":
            raise ValueError("learn_sigma needs likelihood='gaussian' (a Bernoulli decoder has no sigma)")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0: not conditional), got {num_classes!r}")
        self.latent_dim, self.likelihood, self.image_size = latent_dim, likelihood, image_size
        self.num_classes = num_classes
        self.learn_sigma = bool(learn_sigma)
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))   # a 0-d parameter
        else:
            self._sigma = float(sigma)
        d = image_size * image_size
        self.encoder = nets.mlp([d + num_classes, hidden, hidden])
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nets.mlp([latent_dim + num_classes, hidden, hidden, d])

    @property
    def sigma(self) -> float:
        """The decoder's pixel standard deviation (the current learned value with ``learn_sigma``)."""
        return float(self.log_sigma.detach().exp()) if self.learn_sigma else self._sigma

    # data checks: a Bernoulli model needs binary pixels, a Gaussian one images in [-1, 1]
    def _check(self, x: torch.Tensor) -> torch.Tensor:
        checks.images(x, channels=1, size=self.image_size, lo=-1.0, hi=1.0)
        if self.likelihood == "bernoulli":
            checks.binary(x, "x (a Bernoulli VAE models binarised images; use lib.data.binarize)")
        return x

    def _onehot(self, y: torch.Tensor | None, n: int, device) -> torch.Tensor | None:
        """Labels ``y (n,)`` -> one-hot ``(n, C)`` for a conditional VAE; ``None`` otherwise."""
        if not self.num_classes:
            if y is not None:
                raise ValueError("this VAE is not conditional (num_classes=0): call it without y")
            return None
        if y is None:
            raise ValueError(f"this conditional VAE needs the labels y, integers in [0, {self.num_classes})")
        if y.dtype.is_floating_point:
            raise TypeError(f"y must hold integer class labels in [0, {self.num_classes}), got dtype {y.dtype}")
        return gan.labels_onehot(y, self.num_classes, n).to(device)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (N, 1, S, S)`` (and labels ``y (N,)`` if conditional) -> ``(mu, logvar)``, each ``(N, latent_dim)``."""
        self._check(x)
        inp = (x * 2 - 1 if self.likelihood == "bernoulli" else x).flatten(1)  # the encoder sees [-1, 1]
        c = self._onehot(y, len(x), x.device)
        h = F.relu(self.encoder(inp if c is None else torch.cat([inp, c], 1)))
        return self.to_mu(h), self.to_logvar(h).clamp(-12, 8)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``z (..., N, latent_dim)`` (and labels ``y (N,)`` if conditional) -> decoder output
        ``(..., N, 1, S, S)``: logits or Gaussian means."""
        checks.tensor(z, "z")
        if z.dim() < 1 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (..., {self.latent_dim}), got {tuple(z.shape)}")
        if self.num_classes and z.dim() < 2:
            raise ValueError(f"a conditional VAE decodes codes of shape (..., N, {self.latent_dim}), got {tuple(z.shape)}")
        c = self._onehot(y, z.shape[-2] if z.dim() >= 2 else 1, z.device)
        if c is not None:
            z = torch.cat([z, c.expand(*z.shape[:-1], self.num_classes)], -1)
        out = self.decoder(z).view(*z.shape[:-1], 1, self.image_size, self.image_size)
        return out if self.likelihood == "bernoulli" else torch.tanh(out)

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` in nats, summed over pixels: ``x (N, 1, S, S)``, ``out (..., N, 1, S, S)`` -> ``(..., N)``."""
        if self.likelihood == "bernoulli":
            x = x.expand_as(out)
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(-3).sum(-1)
        d = x[0].numel()
        sq = (x - out).pow(2).flatten(-3).sum(-1)
        if self.learn_sigma:                                   # keeps the gradient to log_sigma
            return -0.5 * sq * torch.exp(-2 * self.log_sigma) - d * (self.log_sigma + 0.5 * math.log(2 * math.pi))
        return -0.5 * sq / self.sigma ** 2 - d * (math.log(self.sigma) + 0.5 * math.log(2 * math.pi))

    def mean_image(self, out: torch.Tensor) -> torch.Tensor:
        """Decoder output -> the mean image ``E[x|z]`` mapped to ``[-1, 1]`` (for display and metrics)."""
        return torch.sigmoid(out) * 2 - 1 if self.likelihood == "bernoulli" else out

    def elbo(self, x: torch.Tensor, beta: float = 1.0, generator: torch.Generator | None = None,
             y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One-sample ELBO with the closed-form KL, per image (nats, shape ``(N,)``):

        ``elbo = E_q[log p(x|z)] - KL(q(z|x) || p(z))`` (estimated with one reparameterised ``z``).
        Returns ``{"elbo", "rec" (log p(x|z)), "kl", "loss"}`` where ``loss`` (0-d) is the
        batch mean of ``-rec + beta * kl`` -- the beta-VAE objective; ``beta = 1`` is the VAE.
        A conditional VAE takes the labels ``y (N,)`` and bounds ``log p(x | y)``.
        """
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar, generator)
        rec = self.log_likelihood(x, self.decode(z, y))
        kl = gaussian_kl(mu, logvar)
        return {"elbo": rec - kl, "rec": rec, "kl": kl, "loss": (-rec + beta * kl).mean()}

    def iwae(self, x: torch.Tensor, k: int = 64, chunk: int = 64, generator: torch.Generator | None = None,
             y: torch.Tensor | None = None) -> torch.Tensor:
        """Importance-weighted lower bound on ``log p(x)`` with ``k`` samples (Burda et al. 2016) (nats, ``(N,)``):

        ``log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)``, ``z_i ~ q(z|x)``. For ``k = 1`` its expectation
        is the ELBO; it is non-decreasing in ``k`` (in expectation) and tends to ``log p(x)``.
        The ``k`` samples are drawn in chunks of ``chunk`` to bound memory.
        """
        checks.positive_int(k, "k"); checks.positive_int(chunk, "chunk")
        mu, logvar = self.encode(x, y)
        logw = []
        for s in range(0, k, chunk):
            m = min(chunk, k - s)
            eps = torch.randn((m, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps                            # (m, N, D)
            log_px_z = self.log_likelihood(x, self.decode(z, y))             # (m, N)
            logw.append(log_px_z + _std_normal_logpdf(z) - _diag_normal_logpdf(z, mu, logvar))
        return torch.logsumexp(torch.cat(logw), 0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | None = None,
               y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode ``n`` prior samples ``z ~ N(0, I)`` (of classes ``y (n,)`` if conditional):
        mean images ``(n, 1, S, S)`` in ``[-1, 1]``."""
        checks.positive_int(n, "n")
        device = device or next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.mean_image(self.decode(z, None if y is None else y.to(device)))
