"""Text-to-image by latent diffusion with classifier-free guidance (introduced in chapter 9).

A minimal, self-contained version of the lecture's *Latent diffusion* / *Stable Diffusion*
slides, small enough for a CPU:

1. :class:`SceneVAE` -- a small convolutional VAE compresses a 32x32 RGB scene into a
   ``z_dim``-vector (the "autoencoder" of latent diffusion; chapter 9's CLIP notebook also
   uses its decoder as the generator that CLIP steers);
2. :class:`LatentDenoiser` -- an MLP that predicts the noise added to a latent, given the
   time step and a caption encoded by a small Transformer (:class:`lib.clip.TextEncoder`);
   captions are dropped (replaced by a learned "null" embedding) with probability
   ``p_uncond`` during training, so one network is both conditional and unconditional;
3. :func:`ddim_sample` -- deterministic DDIM sampling with *classifier-free guidance*
   :func:`cfg_eps`: ``eps = eps_uncond + w (eps_cond - eps_uncond)``.

(Chapter 5's ``lib.diffusion`` is the general pixel-space version of the schedules and
samplers; the vector-latent code above keeps its own few lines so that it does not depend on it.)

The text-to-image notebook (``chapters/09-foundation-models/text_to_image.ipynb``) uses the
second half of the module: a *spatial* latent like Stable Diffusion's
(:class:`LatentAutoencoder`, 32x32x3 -> 8x8xC), a text-conditioned U-Net
(:class:`TextUNet`), caption dropout (:func:`text_diffusion_loss`), guided sampling with
``lib.diffusion`` (:func:`generate`) and the labels a caption asks for
(:func:`caption_labels`, :func:`content_match`) to measure prompt adherence.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks, scenes
from .clip import TextEncoder


# --- the autoencoder ---------------------------------------------------------------------------

class SceneVAE(nn.Module):
    """Convolutional VAE for ``(N, 3, 32, 32)`` images in ``[-1, 1]`` with a ``z_dim`` latent.

    ``encode(x) -> (mu, logvar)`` each ``(N, z_dim)``; ``decode(z) -> (N, 3, 32, 32)`` in
    ``[-1, 1]`` (tanh); ``loss(x)`` is the negative ELBO per image with a Gaussian
    likelihood of fixed scale (squared error, summed over pixels, divided by ``2 sigma^2``)
    and ``beta`` times the KL to ``N(0, I)``.
    """

    def __init__(self, z_dim: int = 32, width: int = 32, sigma: float = 0.1, beta: float = 1.0):
        super().__init__()
        w = width
        self.z_dim, self.sigma, self.beta = z_dim, sigma, beta
        self.enc = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.GELU(),                  # 16x16
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.GELU(),              # 8x8
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.GELU(),          # 4x4
            nn.Flatten(), nn.Linear(2 * w * 16, 256), nn.GELU(), nn.Linear(256, 2 * z_dim))
        self.dec_in = nn.Sequential(nn.Linear(z_dim, 256), nn.GELU(), nn.Linear(256, 2 * w * 16), nn.GELU())
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.GELU(),  # 8x8
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.GELU(),      # 16x16
            nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.GELU(),          # 32x32
            nn.Conv2d(w, 3, 3, padding=1), nn.Tanh())
        self.w = w

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        checks.shape(x, (None, 3, 32, 32), "images")
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 5)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        checks.shape(z, (None, self.z_dim), "z")
        return self.dec(self.dec_in(z).view(-1, 2 * self.w, 4, 4))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss": negative ELBO, "recon": squared error, "kl": KL}``, each averaged over the batch."""
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        recon = (self.decode(z) - x).pow(2).flatten(1).sum(1).mean()
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        return {"loss": recon / (2 * self.sigma ** 2) + self.beta * kl, "recon": recon, "kl": kl}


# --- the noise schedule and the forward process -----------------------------------------------

def cosine_alpha_bar(T: int, s: float = 0.008) -> torch.Tensor:
    """``alpha_bar_t`` for ``t = 0 .. T`` (``(T+1,)``; ``alpha_bar_0 = 1``), the cosine schedule
    of Nichol & Dhariwal (2021), clipped so that every ``beta_t <= 0.999``."""
    checks.positive_int(T, "T")
    t = torch.linspace(0, 1, T + 1, dtype=torch.float64)
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    ab = f / f[0]
    betas = (1 - ab[1:] / ab[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)]).float()


def q_sample(z0: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``z_t = sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) noise`` for latents ``(N, D)``, ``t (N,)``."""
    ab = alpha_bar.to(z0.device)[t].unsqueeze(1)
    return ab.sqrt() * z0 + (1 - ab).sqrt() * noise


# --- the text-conditioned denoiser -----------------------------------------------------------

def time_embedding(t: torch.Tensor, dim: int, T: int) -> torch.Tensor:
    """Sinusoidal embedding ``(N, dim)`` of integer time steps ``t (N,)`` in ``0 .. T``."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    a = (t.float() / T * 1000.0)[:, None] * freqs[None] / 10
    return torch.cat([a.sin(), a.cos()], 1)


class LatentDenoiser(nn.Module):
    """Predict the noise ``eps (N, z_dim)`` in a noisy latent ``z_t (N, z_dim)`` at step ``t (N,)``,
    given caption tokens ``(N, L)`` (or ``None``: unconditional).

    The caption goes through a small Transformer (:class:`lib.clip.TextEncoder`, trained jointly);
    ``drop (N,)`` bool replaces chosen captions by the learned null embedding (classifier-free
    guidance training). Residual MLP blocks get the time + text embedding added to their input.
    """

    def __init__(self, z_dim: int = 32, T: int = 200, width: int = 256, blocks: int = 4, cond_dim: int = 64):
        super().__init__()
        self.z_dim, self.T = z_dim, T
        self.text = TextEncoder(cond_dim)
        self.null = nn.Parameter(torch.zeros(cond_dim))
        self.emb = nn.Sequential(nn.Linear(64 + cond_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(z_dim, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, width),
                                                  nn.SiLU(), nn.Linear(width, width)) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, z_dim))

    def condition(self, tokens: torch.Tensor | None, n: int, drop: torch.Tensor | None = None) -> torch.Tensor:
        """Text embedding ``(n, cond_dim)``: the encoded caption, or the null embedding where
        ``tokens`` is ``None`` or ``drop`` is True."""
        if tokens is None:
            return self.null.expand(n, -1)
        c = self.text(tokens)
        if drop is not None:
            c = torch.where(drop[:, None].to(c.device), self.null.expand_as(c), c)
        return c

    def forward(self, z: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor | None = None,
                drop: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        checks.shape(z, (None, self.z_dim), "z")
        if cond is None:
            cond = self.condition(tokens, len(z), drop)
        e = self.emb(torch.cat([time_embedding(t, 64, self.T), cond], 1))
        h = self.inp(z)
        for blk in self.blocks:
            h = h + blk(h + e)
        return self.out(h)


def diffusion_loss(model: LatentDenoiser, z0: torch.Tensor, tokens: torch.Tensor, alpha_bar: torch.Tensor,
                   p_uncond: float = 0.15, generator: torch.Generator | None = None) -> torch.Tensor:
    """The DDPM "simple" loss ``|eps - eps_theta(z_t, t, c)|^2`` (mean), with a uniformly drawn
    ``t in 1..T`` and captions dropped with probability ``p_uncond`` (for classifier-free guidance)."""
    checks.probability(p_uncond, "p_uncond")
    n, dev = len(z0), z0.device
    t = torch.randint(1, model.T + 1, (n,), generator=generator).to(dev)
    noise = torch.randn(z0.shape, generator=generator).to(dev)
    drop = (torch.rand(n, generator=generator) < p_uncond).to(dev)
    return F.mse_loss(model(q_sample(z0, t, alpha_bar, noise), t, tokens, drop), noise)


# --- guidance and sampling ---------------------------------------------------------------------

def cfg_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance: ``eps_uncond + w * (eps_cond - eps_uncond)``.

    ``w = 0`` is the unconditional model, ``w = 1`` the conditional one, ``w > 1`` pushes
    samples further towards what distinguishes the caption from "anything"."""
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"eps_cond and eps_uncond must have the same shape, got {tuple(eps_cond.shape)} "
                         f"and {tuple(eps_uncond.shape)}")
    _check_w(w)
    return eps_uncond + w * (eps_cond - eps_uncond)


def _check_w(w):
    if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
        raise ValueError(f"guidance scale w must be a finite number >= 0, got {w!r}")


@torch.no_grad()
def ddim_sample(model: LatentDenoiser, captions, alpha_bar: torch.Tensor, w: float = 1.0, steps: int = 50,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Latents ``(N, z_dim)`` for ``N`` captions by deterministic DDIM (eta = 0) with ``steps``
    evenly spaced steps and classifier-free guidance scale ``w`` (:func:`cfg_eps`)."""
    checks.positive_int(steps, "steps")
    _check_w(w)
    if isinstance(captions, str) or len(captions) == 0:
        raise ValueError("captions must be a non-empty list of captions")
    dev = next(model.parameters()).device
    n = len(captions)
    cond = model.condition(scenes.tokenize(list(captions)).to(dev), n)
    null = model.condition(None, n)
    z = torch.randn(n, model.z_dim, generator=generator).to(dev)
    ts = torch.linspace(model.T, 0, min(steps, model.T) + 1).round().long().tolist()
    ab = alpha_bar.to(dev)
    for t, s in zip(ts[:-1], ts[1:]):
        tt = torch.full((n,), t, device=dev, dtype=torch.long)
        if w == 0:
            eps = model(z, tt, cond=null)
        elif w == 1:
            eps = model(z, tt, cond=cond)
        else:
            e = model(torch.cat([z, z]), torch.cat([tt, tt]), cond=torch.cat([cond, null]))
            eps = cfg_eps(e[:n], e[n:], w)
        z0 = (z - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
        z = ab[s].sqrt() * z0 + (1 - ab[s]).sqrt() * eps
    return z


# --- latent diffusion with a *spatial* latent (the text-to-image notebook) --------------------
#
# The vector latent above is what CLIP steers in chapter 9's first notebook. Stable Diffusion
# keeps the latent *spatial*: a small image with a few channels, a factor 4-8 smaller than
# the picture, denoised by a U-Net that reads the caption. The text-to-image notebook uses:
#
#   LatentAutoencoder  (N, 3, 32, 32) in [-1, 1]  <->  (N, C, 8, 8) in [-1, 1]   (factor 4)
#   TextUNet           eps_theta(z_t, t, caption), with a jointly trained text encoder
#   text_diffusion_loss, generate   training with caption dropout, sampling with guidance
#   lib.diffusion      the schedule, the loss, DDIM and classifier-free guidance (chapter 5)
#   caption_labels     what an attribute classifier should read in an image made from a caption


class LatentAutoencoder(nn.Module):
    """The "first stage" of latent diffusion: images ``(N, 3, 32, 32)`` in ``[-1, 1]`` ->
    latents ``(N, channels, 8, 8)`` in ``[-1, 1]`` (a ``tanh`` keeps them in the range that
    :mod:`lib.diffusion` expects of data) -> images.

    Two stride-2 convolutions down, two transposed convolutions up: every latent pixel
    describes a 4x4 patch of the image. :meth:`loss` adds a little Gaussian noise to the
    latent before decoding, so that the decoder also copes with the slightly imperfect latents
    a diffusion model will hand it.
    """

    def __init__(self, channels: int = 4, width: int = 32):
        super().__init__()
        checks.positive_int(channels, "channels"); checks.positive_int(width, "width")
        w = width
        self.channels = channels
        self.enc = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, w, 4, stride=2, padding=1), nn.GELU(),                  # 16x16
            nn.Conv2d(w, w, 4, stride=2, padding=1), nn.GELU(),                  # 8x8
            nn.Conv2d(w, channels, 1), nn.Tanh())
        self.dec = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.GELU(),
            nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.GELU(),         # 16x16
            nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.GELU(),         # 32x32
            nn.Conv2d(w, 3, 3, padding=1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 3, 32, 32)`` in ``[-1, 1]`` -> latents ``(N, channels, 8, 8)`` in ``[-1, 1]``."""
        checks.shape(x, (None, 3, 32, 32), "images")
        return self.enc(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(N, channels, 8, 8)`` -> images ``(N, 3, 32, 32)``, clamped to ``[-1, 1]``."""
        checks.shape(z, (None, self.channels, 8, 8), "latents")
        return self.dec(z).clamp(-1, 1)

    def loss(self, x: torch.Tensor, noise: float = 0.02, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error of ``decode(encode(x) + noise * N(0, I))`` against ``x`` (before clamping)."""
        if not isinstance(noise, (int, float)) or isinstance(noise, bool) or noise < 0:
            raise ValueError(f"noise must be a number >= 0, got {noise!r}")
        z = self.encode(x)
        z = z + noise * torch.randn(z.shape, generator=generator).to(z)
        return (self.dec(z) - x).pow(2).mean()


def _coords(n: int, h: int, w: int, device) -> torch.Tensor:
    """``(n, h, w, 2)``: the (x, y) position of every pixel, each in ``[-1, 1]``."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=device), torch.linspace(-1, 1, w, device=device),
                            indexing="ij")
    return torch.stack([xs, ys], -1).expand(n, h, w, 2)


class TextUNet(nn.Module):
    """The text-conditioned noise predictor of latent diffusion:
    ``forward(z_t (N, C, H, W), t (N,), tokens (N, L) or None) -> eps (N, C, H, W)``.

    A small Transformer (:class:`lib.clip.TextEncoder`, trained jointly) turns the caption
    tokens (:func:`lib.scenes.tokenize`) into a vector ``c (N, cond_dim)``, which enters a
    :class:`lib.nets.UNet` twice: added to its time embedding (*what*), and as a condition
    *map*: a per-pixel MLP of ``(c, x, y)`` gives ``map_channels`` extra input channels, so
    that "at the top" or "left of" can say *where* (the role cross-attention plays in
    Stable Diffusion's U-Net).

    ``tokens=None`` is "no caption": ``c = 0``, which is also what :func:`text_diffusion_loss`
    substitutes for a fraction of the captions during training -- so one network learns the
    conditional and the unconditional model that classifier-free guidance mixes. Use it
    with :func:`lib.diffusion.guided` (``y = tokens``, ``null = None``) or :func:`generate`.
    """

    def __init__(self, channels: int = 4, base: int = 32, mults: tuple = (1, 2), cond_dim: int = 64,
                 map_channels: int = 16):
        super().__init__()
        from . import nets
        checks.positive_int(map_channels, "map_channels")
        self.channels, self.cond_dim = channels, cond_dim
        self.text = TextEncoder(cond_dim)
        self.where = nn.Sequential(nn.Linear(cond_dim + 2, 64), nn.SiLU(), nn.Linear(64, map_channels))
        self.unet = nets.UNet(in_ch=channels + map_channels, base=base, mults=mults, cond_dim=cond_dim)

    def condition(self, tokens: torch.Tensor | None, n: int, drop: torch.Tensor | None = None) -> torch.Tensor:
        """The caption vector ``(n, cond_dim)``: the encoded caption, or zeros where there is no
        caption (``tokens=None``, or ``drop (n,)`` True: caption dropout)."""
        if tokens is None:
            return torch.zeros(n, self.cond_dim, device=self.unet.inp.weight.device)
        if len(tokens) != n:
            raise ValueError(f"need one caption per latent: {len(tokens)} captions for {n} latents")
        c = self.text(tokens)
        if drop is not None:
            c = c * (~drop.to(c.device)).to(c.dtype)[:, None]
        return c

    def forward(self, z: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor | None = None,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        checks.tensor(z, "z")
        if z.dim() != 4 or z.shape[1] != self.channels:
            raise ValueError(f"z must have shape (N, {self.channels}, H, W), got {tuple(z.shape)}")
        n, _, h, w = z.shape
        c = self.condition(tokens, n, drop)                                      # (n, cond_dim)
        grid = torch.cat([c[:, None, None, :].expand(n, h, w, -1), _coords(n, h, w, z.device)], -1)
        cmap = self.where(grid).permute(0, 3, 1, 2)                              # (n, map_channels, h, w)
        return self.unet(torch.cat([z, cmap], 1), t, c)[:, :self.channels]       # the extra outputs are unused


def text_diffusion_loss(model: TextUNet, sched, z0: torch.Tensor, tokens: torch.Tensor, p_uncond: float = 0.15,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Classifier-free guidance training: Ho et al.'s noise-prediction loss
    (:func:`lib.diffusion.eps_loss`, ``t`` uniform in ``1..T``) with each caption dropped
    (replaced by "no caption") with probability ``p_uncond``. ``z0 (N, C, H, W)`` latents in
    ``[-1, 1]``, ``tokens (N, L)``; ``sched`` a :class:`lib.diffusion.Schedule`."""
    from . import diffusion
    checks.probability(p_uncond, "p_uncond")
    drop = torch.rand(len(z0), generator=generator) < p_uncond
    return diffusion.eps_loss(lambda x, t, y: model(x, t, y, drop), sched, z0, y=tokens, generator=generator)


@torch.no_grad()
def generate(model: TextUNet, autoencoder: LatentAutoencoder, sched, captions, w: float = 3.0, steps: int = 25,
             eta: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Text-to-image: images ``(N, 3, 32, 32)`` in ``[-1, 1]`` for ``N`` captions.

    DDIM (:func:`lib.diffusion.ddim_sample`, ``steps`` steps, ``eta = 0`` deterministic,
    ``eta = 1`` ancestral; the predicted clean latent clipped to ``[-1, 1]``) in the latent space with classifier-free guidance
    ``eps = eps(no caption) + w (eps(caption) - eps(no caption))`` (:func:`lib.diffusion.cfg_eps`;
    ``w = 0``: unconditional, ``w = 1``: conditional), then the decoder.
    """
    from . import diffusion
    if isinstance(captions, str) or len(captions) == 0:
        raise ValueError("captions must be a non-empty list of captions")
    _check_w(w)
    dev = next(model.parameters()).device
    tokens = scenes.tokenize(list(captions)).to(dev)
    if w == 0:                                    # the two special cases need one network call
        eps = lambda z, t: model(z, t, None)
    elif w == 1:
        eps = lambda z, t: model(z, t, tokens)
    else:
        eps = diffusion.guided(model, tokens, float(w), null=None)
    z = diffusion.ddim_sample(eps, sched, (len(tokens), model.channels, 8, 8), steps=steps, eta=eta,
                              clip_x0=True, generator=generator, device=dev)
    return autoencoder.decode(z.clamp(-1, 1))


def caption_labels(captions) -> dict[str, torch.Tensor]:
    """The labels ``{name: (N,) int64}`` (the convention of :func:`lib.scenes.scene_labels`) that
    the captions ask for: what an attribute classifier should read in an image generated from
    each caption. Only the caption's words matter, not where exactly the objects are."""
    if isinstance(captions, str):
        captions = [captions]
    out = []
    for c in captions:
        a = scenes.parse_caption(c)
        objs = tuple(scenes.SceneObject(k, col, sz, 0.5, 0.5, 0.1, (0.0, 0.0, 0.0)) for sz, col, k in a["objects"])
        out.append(scenes.Scene(objs, a["where"], a["relation"]))
    return scenes.scene_labels(out)


def content_match(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    """A lenient prompt-adherence test, per image ``(N,)`` bool: the right number of objects
    with the right (colour, size) pairs, in any arrangement -- shapes, the position of a single
    object and the arrangement of a pair are ignored. ``pred`` and ``target`` are label dicts
    (:func:`lib.scenes.scene_labels` convention, e.g. a judge's prediction and
    :func:`caption_labels`)."""
    for k in ("n_objects", "colour", "size", "colour2", "size2"):
        if k not in pred or k not in target:
            raise ValueError(f"label {k!r} missing from pred or target")
    p = {k: pred[k].cpu() for k in ("n_objects", "colour", "size", "colour2", "size2")}
    t = {k: target[k].cpu() for k in p}
    first = (p["colour"] == t["colour"]) & (p["size"] == t["size"])
    second = (p["colour2"] == t["colour2"]) & (p["size2"] == t["size2"])           # -1 == -1 for one object
    crossed = ((p["colour"] == t["colour2"]) & (p["size"] == t["size2"])
               & (p["colour2"] == t["colour"]) & (p["size2"] == t["size"]))
    return (p["n_objects"] == t["n_objects"]) & ((first & second) | ((t["n_objects"] == 2) & crossed))
