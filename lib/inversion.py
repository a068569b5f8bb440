"""GAN inversion (chapter 6's latent space; chapter 10's time-travel rephotography): find the
latent code ``w`` whose image ``G(w)`` is a given photo.

Three ways, as on the lecture's "GAN Inversion" slide:

* **optimisation** (:func:`project`): gradient descent on ``w`` so that ``G(w)`` matches ``x``;
* **learning** (:class:`Encoder`, trained by :func:`encoder_step` on fresh ``(G(z), z)`` pairs):
  ``w = E(x)`` in one forward pass;
* **hybrid**: :func:`project` started from ``E(x)`` and tied to it (``lam``, ``z_anchor``).

*Degradation-aware* inversion passes ``render`` (e.g. an old camera, :func:`lib.degrade.antique_camera`)
to both: the fit is between ``render(G(w))`` and the degraded photo, and ``G(w)`` is the restoration.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import checks
from .gan import _check_latent, _labels_for


class Encoder(nn.Module):
    """Learning-based GAN inversion: ``x (N, 1, 16, 16)`` in ``[-1, 1]`` -> latent ``(N, z_dim)``.

    The discriminator's body with ``z_dim`` outputs (trained on ``(G(z), z)`` pairs,
    :func:`encoder_step`).
    """

    def __init__(self, z_dim: int = 32, ch: int = 32):
        super().__init__()
        self.z_dim = checks.positive_int(z_dim, "z_dim")
        self.net = nn.Sequential(
            nn.Conv2d(1, ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.BatchNorm2d(2 * ch), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ch, 4 * ch, 4, 1, 0), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * ch, z_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.images(x.detach(), channels=1, size=16, name="images")
        return self.net(x).flatten(1)


def project(G: nn.Module, x: torch.Tensor, steps: int = 200, lr: float = 0.05, z_init: torch.Tensor | None = None,
            lam: float = 0.0, z_anchor: torch.Tensor | None = None, labels: torch.Tensor | None = None,
            render=None, penalty=None) -> tuple[torch.Tensor, list[float]]:
    """Project images into the latent space by gradient descent on ``w`` (optimisation-based inversion):

    ``w* = argmin_w ||x - G(w)||^2 / P + lam * ||w - E(x)||^2 / z_dim`` per image (``P`` pixels),

    the slide's ``L_img + lam L_latent`` with ``E(x) = z_anchor``. ``x (N, C, H, W)`` in ``[-1, 1]``;
    ``z_init (N, z_dim)`` is the encoder's guess for the hybrid; by default a seeded draw from the
    prior ``N(0, I)`` -- not ``w = 0``: near the origin a trained DCGAN draws a blank image whose
    tanh output is saturated at -1, and the gradient vanishes there.
    ``G`` is put in eval mode (batch-norm statistics fixed, so images are inverted independently).
    A class-conditional ``G`` needs the images' ``labels`` (only ``w`` is optimised; the class is given).
    *Degradation-aware* inversion (time-travel rephotography, chapter 10): ``render`` (a function
    ``(N, C, H, W) -> x``'s shape, e.g. an old camera) compares ``render(G(w))`` with ``x``, and
    ``penalty(G(w)) -> (N,)`` adds any per-image term (a colour loss); ``G(w)`` is the restoration.
    Returns ``(z (N, z_dim), losses)`` with the mean objective before each of the ``steps`` steps.
    """
    checks.images(x, name="images to project")
    render = render or (lambda img: img)
    checks.positive_int(steps, "steps")
    if not lr > 0 or lam < 0:
        raise ValueError(f"need lr > 0 and lam >= 0, got lr={lr}, lam={lam}")
    z_dim = G.z_dim
    dev = next(G.parameters()).device
    x = x.to(dev)
    if z_init is None:  # a draw from the prior, seeded (not w = 0: see the docstring)
        z = torch.randn(len(x), z_dim, generator=torch.Generator().manual_seed(0)).to(dev)
    else:
        z = _check_latent(z_init, z_dim).detach().to(dev).clone()
    if len(z) != len(x):
        raise ValueError(f"z_init must have one row per image, got {len(z)} rows for {len(x)} images")
    y = _labels_for(G, labels, len(x), dev)
    cond = () if y is None else (y,)
    if lam > 0:
        if z_anchor is None:
            raise ValueError("lam > 0 needs z_anchor (the encoder's guess E(x))")
        z_anchor = _check_latent(z_anchor, z_dim).detach().to(dev)
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    losses = []
    try:
        with torch.enable_grad():  # works even when called under torch.no_grad()
            for _ in range(steps):
                img = G(z, *cond)
                per_image = ((render(img) - x) ** 2).flatten(1).mean(1)
                if penalty is not None:
                    per_image = per_image + penalty(img)
                if lam > 0:
                    per_image = per_image + lam * ((z - z_anchor) ** 2).mean(1)
                losses.append(float(per_image.detach().mean()))
                opt.zero_grad(); per_image.sum().backward(); opt.step()
    finally:
        for p in G.parameters():
            p.requires_grad_(True)
    return z.detach(), losses


def encoder_step(E: nn.Module, G: nn.Module, opt: torch.optim.Optimizer, batch: int = 64,
                 generator: torch.Generator | None = None, render=None) -> torch.Tensor:
    """One training step of a learning-based inverter on fresh pairs ``(G(z), z)``, ``z ~ N(0, I)``:
    minimise ``||E(G(z)) - z||^2`` (mean over coordinates). ``G`` is frozen (eval mode). Returns the loss.
    With ``render`` (e.g. an old camera) the pairs are ``(render(G(z)), z)``: an encoder of degraded photos.

    For a class-conditional ``G`` the pairs are ``(G(z, y), z)`` with ``y`` uniform over the classes:
    the encoder recovers the latent code ``z`` (the style), the class is given separately.
    """
    checks.positive_int(batch, "batch")
    dev = next(G.parameters()).device
    G.eval()
    with torch.no_grad():
        z = torch.randn(batch, G.z_dim, generator=generator)
        k = getattr(G, "num_classes", None)
        cond = () if k is None else (torch.randint(k, (batch,), generator=generator).to(dev),)
        z = z.to(dev)
        x = G(z, *cond) if render is None else render(G(z, *cond))
    loss = ((E(x) - z) ** 2).mean()
    if not torch.isfinite(loss):
        raise FloatingPointError("encoder training diverged: loss is NaN or infinite; lower the learning rate")
    opt.zero_grad(); loss.backward(); opt.step()
    return loss.detach()
