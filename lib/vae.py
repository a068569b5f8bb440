"""Autoencoders, variational autoencoders and VQ-VAEs (introduced in chapter 7).

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
   :meth:`VAE.elbo` and the importance-weighted bound :meth:`VAE.iwae`;
4. the vector-quantisation layer :class:`VectorQuantizer` (nearest code,
   straight-through gradient, codebook and commitment losses, dead-code reset),
   :func:`perplexity` of the code usage, and :class:`VQVAE`;
5. two priors over a VQ-VAE's grid of codes, so it can *sample*:
   :class:`PositionalCategorical` (one independent categorical per grid cell)
   and :class:`CodePrior` (a small autoregressive GRU over the codes in raster
   order, optionally class-conditional). Chapter 4's PixelCNN is a stronger
   drop-in replacement.

Shapes: images are ``(N, 1, H, W)``; latent codes of the MLP models ``(N, D)``;
the VQ-VAE's encoder output ``(N, D, h, w)`` and its code indices ``(N, h, w)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks

LIKELIHOODS = ("bernoulli", "gaussian")


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU in between (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


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
        self.encoder = _mlp([d, hidden, hidden // 2, code_dim])
        self.decoder = _mlp([code_dim, hidden // 2, hidden, d])

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
    """

    def __init__(self, latent_dim: int = 16, hidden: int = 400, likelihood: str = "bernoulli",
                 sigma: float = 0.1, image_size: int = 16, learn_sigma: bool = False):
        super().__init__()
        checks.positive_int(latent_dim, "latent_dim"); checks.positive_int(hidden, "hidden")
        checks.positive_int(image_size, "image_size")
        checks.choice(likelihood, LIKELIHOODS, "likelihood")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if learn_sigma and likelihood != "gaussian":
            raise ValueError("learn_sigma needs likelihood='gaussian' (a Bernoulli decoder has no sigma)")
        self.latent_dim, self.likelihood, self.image_size = latent_dim, likelihood, image_size
        self.learn_sigma = bool(learn_sigma)
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))   # a 0-d parameter
        else:
            self._sigma = float(sigma)
        d = image_size * image_size
        self.encoder = _mlp([d, hidden, hidden])
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = _mlp([latent_dim, hidden, hidden, d])

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

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (N, 1, S, S)`` -> ``(mu, logvar)``, each ``(N, latent_dim)``."""
        self._check(x)
        inp = x * 2 - 1 if self.likelihood == "bernoulli" else x  # the encoder sees [-1, 1] either way
        h = F.relu(self.encoder(inp.flatten(1)))
        return self.to_mu(h), self.to_logvar(h).clamp(-12, 8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z (..., latent_dim)`` -> decoder output ``(..., 1, S, S)``: logits or Gaussian means."""
        checks.tensor(z, "z")
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (..., {self.latent_dim}), got {tuple(z.shape)}")
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

    def elbo(self, x: torch.Tensor, beta: float = 1.0, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One-sample ELBO with the closed-form KL, per image (nats, shape ``(N,)``):

        ``elbo = E_q[log p(x|z)] - KL(q(z|x) || p(z))`` (estimated with one reparameterised ``z``).
        Returns ``{"elbo", "rec" (log p(x|z)), "kl", "loss"}`` where ``loss`` (0-d) is the
        batch mean of ``-rec + beta * kl`` -- the beta-VAE objective; ``beta = 1`` is the VAE.
        """
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator)
        rec = self.log_likelihood(x, self.decode(z))
        kl = gaussian_kl(mu, logvar)
        return {"elbo": rec - kl, "rec": rec, "kl": kl, "loss": (-rec + beta * kl).mean()}

    def iwae(self, x: torch.Tensor, k: int = 64, chunk: int = 64, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-weighted lower bound on ``log p(x)`` with ``k`` samples (Burda et al. 2016) (nats, ``(N,)``):

        ``log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)``, ``z_i ~ q(z|x)``. For ``k = 1`` its expectation
        is the ELBO; it is non-decreasing in ``k`` (in expectation) and tends to ``log p(x)``.
        The ``k`` samples are drawn in chunks of ``chunk`` to bound memory.
        """
        checks.positive_int(k, "k"); checks.positive_int(chunk, "chunk")
        mu, logvar = self.encode(x)
        logw = []
        for s in range(0, k, chunk):
            m = min(chunk, k - s)
            eps = torch.randn((m, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps                            # (m, N, D)
            log_px_z = self.log_likelihood(x, self.decode(z))                # (m, N)
            logw.append(log_px_z + _std_normal_logpdf(z) - _diag_normal_logpdf(z, mu, logvar))
        return torch.logsumexp(torch.cat(logw), 0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
        """Decode ``n`` prior samples ``z ~ N(0, I)``: mean images ``(n, 1, S, S)`` in ``[-1, 1]``."""
        checks.positive_int(n, "n")
        device = device or next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.mean_image(self.decode(z))


# --- 4. vector quantisation and the VQ-VAE ---------------------------------------------------

def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Forward: ``z_q``; backward: the gradient w.r.t. the output goes to ``z_e`` unchanged.

    ``z_e + (z_q - z_e).detach()`` -- the quantiser's argmin has no useful gradient,
    so the decoder's gradient is copied to the encoder (van den Oord et al. 2017).
    """
    checks.tensor(z_e, "z_e"); checks.tensor(z_q, "z_q")
    if z_e.shape != z_q.shape:
        raise ValueError(f"z_e and z_q must have the same shape, got {tuple(z_e.shape)} and {tuple(z_q.shape)}")
    return z_e + (z_q - z_e).detach()


def perplexity(indices: torch.Tensor, num_codes: int) -> float:
    """Codebook perplexity ``exp(H(p))`` of the empirical code frequencies ``p``.

    ``indices``: integer tensor of any shape with values in ``[0, num_codes)``. 1 when a
    single code is used, ``num_codes`` when all are used equally often: the "effective
    number of codes".
    """
    checks.tensor(indices, "indices"); checks.positive_int(num_codes, "num_codes")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise TypeError(f"indices must be an integer tensor, got {indices.dtype}")
    if indices.numel() == 0:
        raise ValueError("indices is empty")
    if int(indices.min()) < 0 or int(indices.max()) >= num_codes:
        raise ValueError(f"indices must lie in [0, {num_codes}), got [{int(indices.min())}, {int(indices.max())}]")
    p = torch.bincount(indices.flatten().cpu(), minlength=num_codes).double()
    p = p / p.sum()
    h = -(p[p > 0] * p[p > 0].log()).sum()
    return float(h.exp())


class VectorQuantizer(nn.Module):
    """A codebook of ``num_codes`` vectors of size ``code_dim`` and the VQ-VAE's quantisation.

    ``forward(z_e)`` with ``z_e (N, D, h, w)`` returns ``(z_st, indices, losses)``:

    * ``indices (N, h, w)``: the nearest code (Euclidean) for every grid cell;
    * ``z_st (N, D, h, w)``: the quantised vectors ``e_indices``, with the straight-through gradient;
    * ``losses``: ``codebook = ||sg[z_e] - e||^2`` (moves the codes to the encoder outputs) and
      ``commitment = ||z_e - sg[e]||^2`` (keeps the encoder near its codes; weight ``beta``
      in the total), both averaged over cells and dimensions.

    Dead codes (never chosen) get no gradient: :meth:`reset_dead_codes` moves them onto
    random recent encoder outputs.
    """

    def __init__(self, num_codes: int = 32, code_dim: int = 16, beta: float = 0.25):
        super().__init__()
        checks.positive_int(num_codes, "num_codes"); checks.positive_int(code_dim, "code_dim")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.num_codes, self.code_dim, self.beta = num_codes, code_dim, float(beta)
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes))

    def _check(self, z_e: torch.Tensor) -> torch.Tensor:
        checks.tensor(z_e, "z_e")
        if z_e.dim() != 4 or z_e.shape[1] != self.code_dim:
            raise ValueError(f"z_e must have shape (N, {self.code_dim}, h, w), got {tuple(z_e.shape)}")
        return z_e

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for every cell: ``(N, D, h, w)`` -> ``(N, h, w)`` int64."""
        self._check(z_e)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.code_dim)            # (N*h*w, D)
        d2 = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T
              + self.codebook.pow(2).sum(1))                                  # (N*h*w, K)
        return d2.argmin(1).view(z_e.shape[0], *z_e.shape[2:])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors for ``indices (N, h, w)``: ``(N, D, h, w)``."""
        checks.tensor(indices, "indices")
        if indices.dim() != 3 or indices.dtype.is_floating_point:
            raise ValueError(f"indices must be an integer tensor (N, h, w), got {indices.dtype} {tuple(indices.shape)}")
        if int(indices.min()) < 0 or int(indices.max()) >= self.num_codes:
            raise ValueError(f"indices must lie in [0, {self.num_codes})")
        return self.codebook[indices].permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        indices = self.nearest(z_e)
        z_q = self.lookup(indices)
        losses = {"codebook": (z_e.detach() - z_q).pow(2).mean(),
                  "commitment": (z_e - z_q.detach()).pow(2).mean()}
        return straight_through(z_e, z_q), indices, losses

    @torch.no_grad()
    def reset_dead_codes(self, z_e: torch.Tensor, counts: torch.Tensor,
                         generator: torch.Generator | None = None) -> int:
        """Move every code with ``counts == 0`` onto a randomly chosen encoder output of ``z_e``.

        ``z_e (N, D, h, w)``: recent encoder outputs; ``counts (K,)``: how often each code was
        chosen since the last reset. Returns the number of codes that were reset.
        """
        self._check(z_e)
        checks.shape(counts, (self.num_codes,), "counts")
        dead = (counts == 0).nonzero().flatten()
        if len(dead):
            flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.code_dim)
            pick = torch.randint(len(flat), (len(dead),), generator=generator).to(flat.device)
            self.codebook.data[dead] = flat[pick] + 1e-3 * torch.randn(len(dead), self.code_dim,
                                                                      generator=generator).to(flat.device)
        return int(len(dead))


class VQVAE(nn.Module):
    """A small convolutional VQ-VAE for ``(N, 1, 16, 16)`` images in ``[-1, 1]``.

    encoder: 16x16 -> 8x8 -> 4x4 grid of ``code_dim``-vectors ``z_e (N, D, 4, 4)``;
    quantiser: :class:`VectorQuantizer` with ``num_codes`` codes -> indices ``(N, 4, 4)``;
    decoder: 4x4 -> 8x8 -> 16x16 image in ``(-1, 1)``.

    ``forward(x)`` -> ``(reconstruction, indices, losses)`` with ``losses`` holding
    ``"recon"`` (mean squared error), ``"codebook"``, ``"commitment"`` and ``"loss"``
    (``recon + codebook + beta * commitment``). :meth:`decode_indices` turns a code grid into images.
    """

    def __init__(self, num_codes: int = 32, code_dim: int = 16, channels: int = 64, beta: float = 0.25,
                 image_size: int = 16):
        super().__init__()
        checks.positive_int(channels, "channels")
        checks.choice(image_size, (16,), "image_size")
        self.image_size = image_size
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.ReLU(),          # (N, c, 8, 8)
            nn.Conv2d(c, c, 4, stride=2, padding=1), nn.ReLU(),          # (N, c, 4, 4)
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, code_dim, 1))                                   # (N, D, 4, 4)
        self.vq = VectorQuantizer(num_codes, code_dim, beta)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, c, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.ReLU(),  # (N, c, 8, 8)
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.ReLU(),  # (N, c, 16, 16)
            nn.Conv2d(c, 1, 3, padding=1), nn.Tanh())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous encoder output ``z_e (N, D, 4, 4)``."""
        checks.images(x, channels=1, size=self.image_size)
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        z_e = self.encode(x)
        z_st, indices, losses = self.vq(z_e)
        recon = self.decoder(z_st)
        losses["recon"] = (recon - x).pow(2).mean()
        losses["loss"] = losses["recon"] + losses["codebook"] + self.vq.beta * losses["commitment"]
        return recon, indices, losses

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Code grid ``(N, 4, 4)`` (int64) of images ``x``."""
        return self.vq.nearest(self.encode(x))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 1, 16, 16)`` in ``(-1, 1)`` from a code grid ``indices (N, 4, 4)``."""
        return self.decoder(self.vq.lookup(indices))


# --- 5. priors over the code grid ------------------------------------------------------------

def _code_grid(indices: torch.Tensor, num_codes: int, name: str = "indices") -> torch.Tensor:
    checks.tensor(indices, name)
    if indices.dim() != 3 or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor (N, h, w), got {indices.dtype} {tuple(indices.shape)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_codes):
        raise ValueError(f"{name} must lie in [0, {num_codes})")
    return indices


class PositionalCategorical:
    """The simplest prior over code grids: an independent categorical at each grid cell.

    ``fit(indices (N, h, w))`` counts codes per cell (with ``alpha`` add-one smoothing);
    ``log_prob(indices)`` -> ``(N,)`` nats; ``sample(n)`` -> ``(n, h, w)``. It ignores how
    neighbouring codes depend on each other, so its samples mix parts of different digits.
    """

    def __init__(self, num_codes: int, alpha: float = 0.5):
        checks.positive_int(num_codes, "num_codes")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.num_codes, self.alpha = num_codes, float(alpha)
        self.log_p: torch.Tensor | None = None                  # (h, w, K)

    def fit(self, indices: torch.Tensor) -> "PositionalCategorical":
        _code_grid(indices, self.num_codes)
        onehot = F.one_hot(indices.cpu(), self.num_codes).double()  # (N, h, w, K)
        counts = onehot.sum(0) + self.alpha
        self.log_p = (counts / counts.sum(-1, keepdim=True)).log()
        return self

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        if self.log_p is None:
            raise ValueError("call fit() first")
        _code_grid(indices, self.num_codes)
        if tuple(indices.shape[1:]) != tuple(self.log_p.shape[:2]):
            raise ValueError(f"indices must have shape (N, {self.log_p.shape[0]}, {self.log_p.shape[1]})")
        lp = self.log_p.unsqueeze(0).expand(len(indices), -1, -1, -1)
        return lp.gather(-1, indices.cpu().unsqueeze(-1)).squeeze(-1).flatten(1).sum(1).float()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        checks.positive_int(n, "n")
        if self.log_p is None:
            raise ValueError("call fit() first")
        h, w, k = self.log_p.shape
        probs = self.log_p.exp().reshape(h * w, k).float()
        draws = torch.multinomial(probs, n, replacement=True, generator=generator)  # (h*w, n)
        return draws.T.reshape(n, h, w)


class CodePrior(nn.Module):
    """An autoregressive prior over a code grid: ``p(c) = prod_t p(c_t | c_<t)`` in raster order.

    A GRU reads the codes so far (and a start token) and predicts the next one. Small and
    readable; chapter 4's PixelCNN (masked convolutions over the grid) is the classic choice.

    With ``num_classes=C`` it is **class-conditional**, ``p(c | y) = prod_t p(c_t | c_<t, y)``:
    the start token is the label (token ``K + y``), so the GRU knows the class from its first
    step on. ``num_classes=None`` (the default) is the unconditional prior with one start token ``K``.
    ``dropout`` (default 0) drops the GRU's outputs before the head during training -- a
    regulariser against memorising a small set of grids.

    ``forward(indices (N, h, w), labels (N,) or None)`` -> next-code logits ``(N, h*w, K)``;
    ``log_prob(indices, labels)`` -> ``(N,)`` nats; ``sample(n, labels=...)`` -> ``(n, h, w)`` int64.
    A conditional prior needs ``labels`` (int64 in ``[0, C)``) everywhere, an unconditional one refuses them.
    """

    def __init__(self, num_codes: int, grid: tuple[int, int] = (4, 4), embed: int = 64, hidden: int = 128,
                 num_classes: int | None = None, dropout: float = 0.0):
        super().__init__()
        checks.positive_int(num_codes, "num_codes"); checks.positive_int(embed, "embed")
        checks.positive_int(hidden, "hidden")
        if num_classes is not None:
            checks.positive_int(num_classes, "num_classes")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_codes, self.grid, self.num_classes = num_codes, tuple(grid), num_classes
        self.length = self.grid[0] * self.grid[1]
        starts = 1 if num_classes is None else num_classes
        self.embed = nn.Embedding(num_codes + starts, embed)              # indices >= K are start tokens
        self.pos = nn.Parameter(torch.zeros(self.length, embed))
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_codes)

    def _start(self, labels: torch.Tensor | None, n: int, device) -> torch.Tensor:
        """Start tokens ``(n, 1)``: ``K`` (unconditional) or ``K + label`` (conditional)."""
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("this CodePrior is unconditional (num_classes=None): do not pass labels")
            return torch.full((n, 1), self.num_codes, dtype=torch.long, device=device)
        if labels is None:
            raise ValueError(f"this CodePrior is class-conditional: pass labels, an int tensor (N,) in [0, {self.num_classes})")
        checks.tensor(labels, "labels")
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (n,):
            raise ValueError(f"labels must be an integer tensor of shape ({n},), got {labels.dtype} {tuple(labels.shape)}")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes})")
        return (self.num_codes + labels.long()).view(n, 1).to(device)

    def forward(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _code_grid(indices, self.num_codes)
        if tuple(indices.shape[1:]) != self.grid:
            raise ValueError(f"indices must have shape (N, {self.grid[0]}, {self.grid[1]}), got {tuple(indices.shape)}")
        seq = indices.flatten(1)                                          # (N, T)
        start = self._start(labels, len(seq), seq.device)
        inp = torch.cat([start, seq[:, :-1]], 1)                          # shifted right: c_<t predicts c_t
        h, _ = self.rnn(self.embed(inp) + self.pos)
        return self.head(self.drop(h))                                    # (N, T, K)

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        logits = self(indices, labels)
        return -F.cross_entropy(logits.transpose(1, 2), indices.flatten(1), reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` code grids ``(n, h, w)``; a conditional prior draws grid ``i`` given ``labels[i]``."""
        checks.positive_int(n, "n")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        dev = self.pos.device
        tok = self._start(labels, n, dev)
        state, out = None, []
        for t in range(self.length):
            h, state = self.rnn(self.embed(tok) + self.pos[t], state)
            probs = F.softmax(self.head(self.drop(h[:, -1])) / temperature, -1)
            tok = torch.multinomial(probs.cpu(), 1, generator=generator).to(dev)
            out.append(tok)
        return torch.cat(out, 1).view(n, *self.grid)
