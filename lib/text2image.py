"""Text-to-image by latent diffusion with classifier-free guidance (introduced in chapter 9).

A minimal version of the lecture's *Latent diffusion* / *Stable Diffusion* slides, small
enough for a CPU, used by ``chapters/09-foundation-models/text_to_image.ipynb``:

1. :class:`LatentAutoencoder` -- the "first stage": a *spatial* latent like Stable
   Diffusion's (``(N, 3, 32, 32) <-> (N, C, 8, 8)``), trained by :func:`fit_autoencoder`;
2. :class:`TextUNet` -- a text-conditioned U-Net ``eps_theta(z_t, t, caption)`` with a
   jointly trained text encoder (:class:`lib.clip.TextEncoder`);
3. :func:`text_diffusion_loss` -- training with caption dropout, so one network is both
   the conditional and the unconditional model (the optimiser recipe: :func:`fit_denoiser`);
4. :func:`generate` -- DDIM in the latent space with classifier-free guidance, both from
   :mod:`lib.diffusion` (the schedules, the loss, the samplers and the guidance of chapter 5:
   this module adds no second copy of them);
5. :func:`caption_labels`, :func:`content_match` -- the labels a caption asks for, to
   measure prompt adherence.

Also here: :class:`SceneVAE`, a small convolutional VAE of the same 32x32 scenes with a
*vector* latent, whose decoder chapter 9's CLIP notebook steers with CLIP (its KL and
reparameterisation are :func:`lib.vae.gaussian_kl` and :func:`lib.vae.reparameterize`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import checks, diffusion, nets, runtime, scenes, train, vae
from .clip import TextEncoder


# --- a VAE of scenes with a vector latent (the generator CLIP steers in chapter 9) -------------

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
        """Images ``(N, 3, 32, 32)`` -> ``(mu, logvar)`` of ``q(z | x)``, each ``(N, z_dim)``."""
        checks.shape(x, (None, 3, 32, 32), "images")
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 5)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(N, z_dim)`` -> images ``(N, 3, 32, 32)`` in ``[-1, 1]``."""
        checks.shape(z, (None, self.z_dim), "z")
        return self.dec(self.dec_in(z).view(-1, 2 * self.w, 4, 4))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss": negative ELBO, "recon": squared error, "kl": KL}``, each averaged over the batch."""
        mu, logvar = self.encode(x)
        z = vae.reparameterize(mu, logvar)
        recon = (self.decode(z) - x).pow(2).flatten(1).sum(1).mean()
        kl = vae.gaussian_kl(mu, logvar).mean()
        return {"loss": recon / (2 * self.sigma ** 2) + self.beta * kl, "recon": recon, "kl": kl}


# --- latent diffusion with a *spatial* latent (the text-to-image notebook) --------------------
#
# The vector latent above is what CLIP steers in chapter 9's CLIP notebook. Stable Diffusion
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

    def loss(self, x: torch.Tensor, noise: float = 0.02, generator: torch.Generator | None = None,
             object_weight: float = 0.0) -> torch.Tensor:
        """Mean squared error of ``decode(encode(x) + noise * N(0, I))`` against ``x`` (before clamping).

        ``object_weight`` > 0 weighs the squared error of the scenes' objects (the coloured
        pixels, :func:`lib.scenes.saturation_mask`) by ``1 + object_weight``: a small object
        covers a few dozen of the 1,024 pixels, so a plain mean lets the decoder blur its shape.
        """
        for v, nm in ((noise, "noise"), (object_weight, "object_weight")):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{nm} must be a number >= 0, got {v!r}")
        z = self.encode(x)
        z = z + noise * torch.randn(z.shape, generator=generator).to(z)
        err = (self.dec(z) - x).pow(2)
        if object_weight > 0:
            err = err * (1 + object_weight * scenes.saturation_mask(x)).unsqueeze(1)
        return err.mean()

    @torch.no_grad()
    def encode_all(self, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
        """Latents of a whole dataset ``(N, 3, 32, 32)``, ``batch`` images at a time on the
        autoencoder's device; returned on the CPU ``(N, channels, 8, 8)``."""
        checks.positive_int(batch, "batch")
        device = next(self.parameters()).device
        return torch.cat([self.encode(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


def fit_autoencoder(images: torch.Tensor, steps: int, *, channels: int = 8, width: int = 24,
                    lr: float = 3e-3, object_weight: float = 0.0, seed: int = 2, device=None,
                    desc: str = "autoencoder") -> LatentAutoencoder:
    """Train the first stage on ``images (N, 3, 32, 32)``; returns it in eval mode.

    Chapter 9's recipe: batches of 64, Adam with a one-cycle schedule (peak ``lr``, 10 %
    warm-up), the reconstruction loss of :meth:`LatentAutoencoder.loss` with latent noise
    0.02 (and its ``object_weight``). ``seed`` seeds the weights, the batches and the latent
    noise (through :func:`lib.runtime.rng`, so ``WORKBOOK_SEED`` shifts it).
    """
    checks.shape(images, (None, 3, 32, 32), "images")
    runtime.manual_seed(seed)
    ae = LatentAutoencoder(channels, width).to(device)
    noise = runtime.rng(seed)
    train.fit(ae, lambda x: {"reconstruction MSE": ae.loss(x, noise=0.02, generator=noise,
                                                           object_weight=object_weight)},
              images, steps, batch_size=64, generator=runtime.rng(seed), device=device, lr=lr,
              schedule="onecycle", pct_start=0.1, loss_key="reconstruction MSE", desc=desc)
    return ae.eval()


def fit_denoiser(model: nn.Module, loss_fn, data, steps: int, *, batch_size: int, seed: int = 3, device=None,
                 desc: str = "latent diffusion") -> "train.Fit":
    """Chapter 9's recipe for the diffusion stage: :func:`lib.train.fit` of ``loss_fn`` over
    ``data`` with AdamW (peak learning rate 2e-3, weight decay 1e-4), a one-cycle schedule
    (10 % warm-up) and an EMA of the weights (decay 0.99), which the result's ``.model`` holds.
    ``seed`` seeds the batches. The loss is the lesson and stays with the caller
    (:func:`text_diffusion_loss`, :func:`lib.video.video_diffusion_loss`).
    """
    return train.fit(model, loss_fn, data, steps, batch_size=batch_size, generator=runtime.rng(seed),
                     device=device, opt="adamw", lr=2e-3, weight_decay=1e-4, schedule="onecycle",
                     pct_start=0.1, ema=0.99, desc=desc)


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

    ``frames`` makes it a *video* denoiser (:mod:`lib.video`): ``z_t (N, frames, C, H, W)``,
    one caption per clip, temporal attention after every U-Net block
    (:class:`lib.nets.TemporalAttention`), each frame's time in ``[-1, 1]`` as one more input of
    the condition map, and ``forward(..., video=(N,) bool)`` to treat some clips as ``frames``
    independent images (no temporal layers, no frame time). ``vocab``/``length``: the text encoder's vocabulary
    size and caption length (chapter 9's video captions have their own words).
    """

    def __init__(self, channels: int = 4, base: int = 32, mults: tuple = (1, 2), cond_dim: int = 64,
                 map_channels: int = 16, frames: int | None = None, vocab: int = len(scenes.VOCAB),
                 length: int = scenes.MAX_TOKENS):
        super().__init__()
        checks.positive_int(map_channels, "map_channels")
        self.channels, self.cond_dim, self.frames = channels, cond_dim, frames
        self.text = TextEncoder(cond_dim, vocab=vocab, length=length)
        self.where = nets.mlp([cond_dim + (2 if frames is None else 3), 64, map_channels], act=nn.SiLU)
        self.unet = nets.UNet(in_ch=channels + map_channels, base=base, mults=mults, cond_dim=cond_dim,
                              frames=frames)

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
                drop: torch.Tensor | None = None, video: torch.Tensor | None = None) -> torch.Tensor:
        checks.tensor(z, "z")
        if self.frames is not None:                                              # clips -> frames
            if z.dim() != 5 or z.shape[1] != self.frames or z.shape[2] != self.channels:
                raise ValueError(f"z must have shape (N, {self.frames}, {self.channels}, H, W) "
                                 f"(clips of latent frames), got {tuple(z.shape)}")
            n = len(z)
            c = self.condition(tokens, n, drop).repeat_interleave(self.frames, 0)   # (n*frames, cond_dim)
            t = checks.shape(t, (n,), "t").repeat_interleave(self.frames)
            when = torch.linspace(-1, 1, self.frames, device=z.device).repeat(n)          # (n*frames,)
            if video is not None:                                                  # images: no frame index
                when = when * video.to(when.dtype).repeat_interleave(self.frames)
            return self._denoise(z.flatten(0, 1), t, c, video, when).view_as(z)
        if video is not None:
            raise ValueError("this TextUNet was built without frames; it takes no video mask")
        if z.dim() != 4 or z.shape[1] != self.channels:
            raise ValueError(f"z must have shape (N, {self.channels}, H, W), got {tuple(z.shape)}")
        return self._denoise(z, t, self.condition(tokens, len(z), drop))

    def _denoise(self, z: torch.Tensor, t: torch.Tensor, c: torch.Tensor, video=None, when=None) -> torch.Tensor:
        n, _, h, w = z.shape
        grid = [c[:, None, None, :].expand(n, h, w, -1), _coords(n, h, w, z.device)]
        if when is not None:                                 # video: the frame's time in [-1, 1], per pixel
            grid.append(when[:, None, None, None].expand(n, h, w, 1))
        grid = torch.cat(grid, -1)
        cmap = self.where(grid).permute(0, 3, 1, 2)                              # (n, map_channels, h, w)
        return self.unet(torch.cat([z, cmap], 1), t, c, video=video)[:, :self.channels]  # extra outputs unused


def text_diffusion_loss(model: TextUNet, sched, z0: torch.Tensor, tokens: torch.Tensor, p_uncond: float = 0.15,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Classifier-free guidance training: Ho et al.'s noise-prediction loss
    (:func:`lib.diffusion.eps_loss`, ``t`` uniform in ``1..T``) with each caption dropped
    (replaced by "no caption") with probability ``p_uncond``. ``z0 (N, C, H, W)`` latents in
    ``[-1, 1]``, ``tokens (N, L)``; ``sched`` a :class:`lib.diffusion.Schedule`."""
    checks.probability(p_uncond, "p_uncond")
    drop = torch.rand(len(z0), generator=generator) < p_uncond
    return diffusion.eps_loss(lambda x, t, y: model(x, t, y, drop), sched, z0, y=tokens, generator=generator)


@torch.no_grad()
def generate(model: TextUNet, autoencoder: LatentAutoencoder, sched, captions, w=3.0, steps: int = 25,
             eta: float = 0.0, generator: torch.Generator | None = None,
             x_T: torch.Tensor | None = None) -> torch.Tensor:
    """Text-to-image: images ``(N, 3, 32, 32)`` in ``[-1, 1]`` for ``N`` captions.

    DDIM (:func:`lib.diffusion.ddim_sample`, ``steps`` steps, ``eta = 0`` deterministic,
    ``eta = 1`` ancestral; the predicted clean latent clipped to ``[-1, 1]``) in the latent
    space with classifier-free guidance ``eps = eps(no caption) + w (eps(caption) - eps(no
    caption))`` (:func:`lib.diffusion.guided`; ``w = 0``: unconditional, ``w = 1``:
    conditional, one network call each; ``w`` a finite number ``>= 0``, or one per caption
    to sweep the scale in one batch), then the decoder. ``x_T``: the starting latent noise
    ``(N, C, 8, 8)`` (default: drawn with ``generator``).
    """
    if isinstance(captions, str) or len(captions) == 0:
        raise ValueError("captions must be a non-empty list of captions")
    w = diffusion.guidance_scales(w, len(captions))
    dev = next(model.parameters()).device
    tokens = scenes.tokenize(list(captions)).to(dev)
    shape = (len(tokens), model.channels, 8, 8)
    if x_T is not None:
        checks.tensor(x_T, "x_T")
        if tuple(x_T.shape) != shape:
            raise ValueError(f"x_T must be latent noise of shape {shape} (one per caption), "
                             f"got {tuple(x_T.shape)}")
        x_T = x_T.to(dev)
    if isinstance(w, float) and w == 0:           # the two special cases need one network call
        eps = lambda z, t: model(z, t, None)
    elif isinstance(w, float) and w == 1:
        eps = lambda z, t: model(z, t, tokens)
    else:
        eps = diffusion.guided(model, tokens, w, null=None)
    z = diffusion.ddim_sample(eps, sched, shape, steps=steps, eta=eta, clip_x0=True,
                              generator=generator, device=dev, x_T=x_T)
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
