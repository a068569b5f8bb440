"""Data translation: pix2pix (U-Net + PatchGAN) and CycleGAN (introduced in chapter 8).

Read top to bottom:

1. The networks live in :mod:`lib.nets`: the generator ``G(x)`` is :class:`lib.nets.ImageUNet`
   (an encoder-decoder whose mirror layers are joined by skip connections, so low-level
   structure can go straight from the input to the output), the discriminator ``D(x, y)`` is
   :class:`lib.nets.PatchDiscriminator` (a fully convolutional net that classifies every *patch*
   of the pair as real or fake, a grid of logits). ``n_layers`` sets the patch size;
   :func:`receptive_field` computes it from the layers (1, 16, 34, 70, 142, 286 pixels for
   ``n_layers = 0 .. 5``, as in pix2pix), :func:`output_size` the grid's side.
2. The losses: the GAN losses are :func:`lib.gan.d_loss` / :func:`lib.gan.g_loss` (the
   generator's at twice their scale, BCE or least squares); the pix2pix objective
   :func:`pix2pix_losses` ``L_cGAN + lambda * L1`` (lambda = 100), and one training step
   :func:`pix2pix_step` for the three variants of the loss ablation ("l1", "cgan", "cgan+l1").
3. :class:`CycleGAN` -- two generators ``G: A -> B``, ``F: B -> A``, two unconditional
   discriminators, the LSGAN loss, the cycle loss :func:`cycle_loss` and the optional
   identity loss; one training step :func:`cyclegan_step`.
4. Semantic image synthesis (chapter 10): :class:`SPADE`, the spatially-adaptive
   normalisation of Park et al. 2019 (a parameter-free BatchNorm whose per-pixel scale and
   shift are computed from the one-hot layout), :class:`SPADEResBlock`,
   :class:`SPADEGenerator` (a decoder from a style code ``z`` whose every normalisation
   reads the layout) and its :class:`StyleEncoder` (image -> ``mu, logvar`` of ``z``, the
   paper's VAE variant). :func:`pix2pix_step` trains it too (``kl_weight``).

Images are ``(N, C, H, W)`` float tensors in ``[-1, 1]``. The measures of chapter 8 (how sharp,
how much of the input's structure survives) are in :mod:`lib.metrics`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

import torch.nn.functional as F

from . import checks, gan, nets, vae

MODES = ("l1", "cgan", "cgan+l1")


def _pos_int(n, name, allow_zero=False) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else 'a positive integer'}, got {n}")
    return n


# --- 1. the PatchGAN's receptive field ------------------------------------------------

def conv_layers(module: nn.Module) -> list[tuple[int, int, int]]:
    """The ``(kernel, stride, padding)`` of every ``Conv2d`` in ``module``, in order (square kernels)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    out = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if m.dilation != (1, 1):
                raise ValueError("dilated convolutions are not supported")
            out.append((m.kernel_size[0], m.stride[0], m.padding[0]))
    if not out:
        raise ValueError("module has no Conv2d layers")
    return out


def receptive_field(layers) -> int:
    """Receptive field (pixels) of one output unit of a stack of convolutions.

    ``layers``: an ``nn.Module`` (its ``Conv2d`` layers are read in order) or a sequence
    of ``(kernel, stride)`` or ``(kernel, stride, padding)`` tuples. Walking back from one
    output unit, a layer with kernel ``k`` and stride ``s`` turns a field of ``r`` units
    into ``s * (r - 1) + k`` units of its input:  ``r <- s * r + (k - s)``.
    """
    if isinstance(layers, nn.Module):
        layers = conv_layers(layers)
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be an nn.Module or a sequence of (kernel, stride) tuples, got {type(layers).__name__}")
    layers = list(layers)
    if not layers:
        raise ValueError("layers must not be empty")
    r = 1
    for spec in reversed(layers):
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise ValueError(f"each layer must be (kernel, stride[, padding]), got {spec!r}")
        k, s = spec[0], spec[1]
        _pos_int(k, "kernel"); _pos_int(s, "stride")
        r = s * (r - 1) + k
    return r


def output_size(layers, size: int) -> int:
    """Side of a discriminator's output grid for a ``size x size`` input: ``floor((n + 2p - k) / s) + 1`` per layer."""
    if isinstance(layers, nn.Module):
        layers = conv_layers(layers)
    n = _pos_int(size, "size")
    for spec in layers:
        k, s, p = (spec + (0,))[:3] if len(spec) == 2 else spec
        n = (n + 2 * p - k) // s + 1
        if n < 1:
            raise ValueError(f"input of size {size} is too small for these layers")
    return n


def standard_patchgan_layers(n_layers: int) -> list[tuple[int, int, int]]:
    """``(kernel, stride, padding)`` of pix2pix's discriminator with ``n_layers`` (0 = PixelGAN, 1x1 convs)."""
    _pos_int(n_layers, "n_layers", allow_zero=True)
    if n_layers == 0:
        return [(1, 1, 0)] * 3
    return [(4, 2, 1)] * n_layers + [(4, 1, 1)] * 2


def n_params(module: nn.Module) -> int:
    """Number of trainable parameters."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --- 2. the losses ------------------------------------------------------------------------

def l1_loss(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error ``E|y - G(x)|`` over every pixel; shapes must match."""
    checks.tensor(fake, "fake"); checks.tensor(target, "target")
    if fake.shape != target.shape:
        raise ValueError(f"fake and target must have the same shape, got {tuple(fake.shape)} and {tuple(target.shape)}")
    return (fake - target).abs().mean()


def pix2pix_losses(d_fake: torch.Tensor, fake: torch.Tensor, target: torch.Tensor,
                   lam: float = 100.0, mode: str = "cgan+l1") -> dict[str, torch.Tensor]:
    """The generator's pix2pix objective ``L_cGAN + lam * L_L1`` {Isola 2017}.

    ``d_fake``: ``D(x, G(x))`` logits; ``fake = G(x)`` and ``target = y``, both ``(N, C, H, W)``.
    Returns ``{"total", "gan", "l1"}`` where ``gan = BCE(d_fake, real)`` (non-saturating)
    and ``l1 = mean|y - G(x)|``; ``total`` is ``gan + lam*l1`` ("cgan+l1"), ``l1``
    ("l1": no adversary) or ``gan`` ("cgan": no L1).
    """
    checks.choice(mode, MODES, "pix2pix loss mode")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam < 0:
        raise ValueError(f"lam must be a number >= 0, got {lam!r}")
    l1 = l1_loss(fake, target)
    # the non-saturating loss at twice lib.gan's scale: BCE(D(x, G(x)), 1), pix2pix's own form
    adv = 2 * gan.g_loss(d_fake, form="bce") if d_fake is not None else torch.zeros((), device=fake.device)
    total = {"l1": l1, "cgan": adv, "cgan+l1": adv + lam * l1}[mode]
    return {"total": total, "gan": adv, "l1": l1}


def pix2pix_step(G: nn.Module, D: nn.Module | None, opt_g, opt_d, x: torch.Tensor, y: torch.Tensor,
                 mode: str = "cgan+l1", lam: float = 100.0, kl_weight: float | None = None) -> dict[str, float]:
    """One training step of pix2pix on a batch of pairs ``x -> y``; returns the losses as floats.

    First D is updated on real pairs ``(x, y)`` against fake pairs ``(x, G(x))`` (skipped
    for ``mode="l1"``, where ``D``/``opt_d`` may be ``None``), then G on
    :func:`pix2pix_losses`.

    ``kl_weight`` (a number >= 0): ``G`` is a :class:`SPADEGenerator` with a style encoder;
    it is called as ``G(x, style=y)`` (the target's appearance is encoded into ``z``, so the
    L1 term asks for *this* target, not the average one) and ``kl_weight * G.kl`` (the
    encoder's KL to ``N(0, I)``) joins the generator's loss (SPADE's VAE variant).
    """
    checks.choice(mode, MODES, "pix2pix loss mode")
    if kl_weight is not None:
        checks.nonnegative(kl_weight, "kl_weight")
        if getattr(G, "encoder", None) is None:
            raise ValueError("kl_weight needs a SPADEGenerator built with a style encoder (z_dim > 0, encoder=True)")
    fake = G(x) if kl_weight is None else G(x, style=y)
    out = {}
    if mode != "l1":
        if D is None or opt_d is None:
            raise ValueError(f"mode {mode!r} needs a discriminator and its optimiser")
        ld = gan.d_loss(D(x, y), D(x, fake.detach()), form="bce")   # 1/2 (BCE(real, 1) + BCE(fake, 0))
        opt_d.zero_grad(); ld.backward(); opt_d.step()
        out["D"] = float(ld.detach())
    losses = pix2pix_losses(D(x, fake) if mode != "l1" else None, fake, y, lam, mode)
    total = losses["total"] if kl_weight is None else losses["total"] + kl_weight * G.kl
    opt_g.zero_grad(); total.backward(); opt_g.step()
    out.update({"G_gan": float(losses["gan"].detach()), "G_l1": float(losses["l1"].detach())})
    if kl_weight is not None:
        out["KL"] = float(G.kl.detach())
    if mode == "l1":
        del out["G_gan"]
    return out


# --- 3. CycleGAN ---------------------------------------------------------------------------

def cycle_loss(x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency loss ``E|F(G(x)) - x|`` (L1), given ``x`` and its round trip ``x_rec``."""
    return l1_loss(x_rec, x)


class CycleGAN(nn.Module):
    """Two generators ``G: A -> B``, ``F: B -> A`` and two PatchGANs ``D_A``, ``D_B`` {Zhu 2017}.

    Generators are :class:`lib.nets.ImageUNet` s (``ngf``, ``depth``), discriminators unconditional
    :class:`lib.nets.PatchDiscriminator` s (``ndf``, ``n_layers``) on one image each: unlike pix2pix
    there is no pair to condition on. ``lam_cycle`` (10 in the paper; 0 switches the cycle
    loss off) and ``lam_id`` (weight of the identity loss relative to ``lam_cycle``, 0.5 in
    the paper, 0 = off) set the objective of :meth:`generator_losses`.

    ``d_norm`` (default ``True``): BatchNorm in the discriminators (pix2pix's PatchGAN).
    ``d_norm=False`` drops it. The discriminators see a batch of real and a batch of fake
    images in two separate calls, so in training mode BatchNorm normalises each batch by
    its *own* statistics and hides what all the fakes share (e.g. that they are all too
    dark, or all textured); without it a ``D_B`` trained as briefly as chapter 8's tells
    the generator's sketches from real ones far better.
    """

    def __init__(self, ch_a: int = 1, ch_b: int = 1, ngf: int = 16, depth: int = 5, ndf: int = 32,
                 n_layers: int = 2, lam_cycle: float = 10.0, lam_id: float = 0.0, skips: bool = True,
                 d_norm: bool = True):
        super().__init__()
        for v, nm in ((lam_cycle, "lam_cycle"), (lam_id, "lam_id")):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{nm} must be a number >= 0, got {v!r}")
        if not isinstance(d_norm, bool):
            raise TypeError(f"d_norm must be True or False, got {type(d_norm).__name__} {d_norm!r}")
        if lam_id > 0 and ch_a != ch_b:
            raise ValueError("the identity loss needs domains with the same number of channels")
        self.G = nets.ImageUNet(ch_a, ch_b, ngf, depth, skips=skips)            # A -> B
        self.F = nets.ImageUNet(ch_b, ch_a, ngf, depth, skips=skips)            # B -> A
        self.D_A = nets.PatchDiscriminator(ch_a, ndf, n_layers, norm=d_norm)
        self.D_B = nets.PatchDiscriminator(ch_b, ndf, n_layers, norm=d_norm)
        self.lam_cycle, self.lam_id = float(lam_cycle), float(lam_id)

    def generator_losses(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """LSGAN + ``lam_cycle`` * cycle (+ ``lam_cycle * lam_id`` * identity) for both generators.

        Returns ``{"total", "gan", "cycle", "identity", "fake_a", "fake_b"}`` (fakes for D's step).
        """
        fake_b, fake_a = self.G(a), self.F(b)
        # LSGAN at twice lib.gan's scale: E (D(G(a)) - 1)^2 for each generator
        adv = 2 * gan.g_loss(self.D_B(fake_b), "lsgan") + 2 * gan.g_loss(self.D_A(fake_a), "lsgan")
        cyc = cycle_loss(a, self.F(fake_b)) + cycle_loss(b, self.G(fake_a))
        total = adv + self.lam_cycle * cyc
        ident = torch.zeros((), device=a.device)
        if self.lam_id > 0:
            ident = l1_loss(self.G(b), b) + l1_loss(self.F(a), a)
            total = total + self.lam_cycle * self.lam_id * ident
        return {"total": total, "gan": adv, "cycle": cyc, "identity": ident, "fake_a": fake_a, "fake_b": fake_b}

    def discriminator_losses(self, a, b, fake_a, fake_b) -> torch.Tensor:
        """LSGAN loss of both discriminators (real images vs the generators' detached fakes)."""
        return (gan.d_loss(self.D_A(a), self.D_A(fake_a.detach()), "lsgan")
                + gan.d_loss(self.D_B(b), self.D_B(fake_b.detach()), "lsgan"))


def cyclegan_step(model: CycleGAN, opt_g, opt_d, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """One CycleGAN step on unpaired batches ``a`` (domain A) and ``b`` (domain B): G/F, then D_A/D_B."""
    if not isinstance(model, CycleGAN):
        raise TypeError(f"model must be a CycleGAN, got {type(model).__name__}")
    g = model.generator_losses(a, b)
    opt_g.zero_grad(); g["total"].backward(); opt_g.step()
    d = model.discriminator_losses(a, b, g["fake_a"], g["fake_b"])
    opt_d.zero_grad(); d.backward(); opt_d.step()
    return {"G_gan": float(g["gan"].detach()), "cycle": float(g["cycle"].detach()), "D": float(d.detach())}


# --- 4. semantic image synthesis: SPADE ------------------------------------------------------

def _layout(layout: torch.Tensor, n_classes: int, name: str = "layout") -> torch.Tensor:
    checks.tensor(layout, name)
    if layout.dim() != 4 or layout.shape[1] != n_classes:
        raise ValueError(f"{name} must be a one-hot map (N, {n_classes}, H, W), got {tuple(layout.shape)}")
    return layout


class SPADE(nn.Module):
    """Spatially-adaptive normalisation {Park 2019}: ``SPADE(h, m) = gamma(m) * BN(h) + beta(m)``.

    ``h (N, ch, H, W)`` is normalised by a BatchNorm *without* its own scale and shift; the
    scale ``1 + gamma`` and the shift ``beta``, both ``(N, ch, H, W)``, come from the layout
    ``m (N, n_classes, H', W')`` (one-hot, resized to ``H x W`` by nearest neighbours) through
    a small convolutional net (a 3x3 conv to ``hidden`` channels + ReLU, then one 3x3 conv
    each). A flat region of one class gets the class's own scale and shift, so unlike a
    normalisation followed by a learned constant, the class cannot be normalised away.
    """

    def __init__(self, ch: int, n_classes: int, hidden: int = 32):
        super().__init__()
        for v, nm in ((ch, "ch"), (n_classes, "n_classes"), (hidden, "hidden")):
            checks.positive_int(v, nm)
        self.n_classes = n_classes
        self.norm = nn.BatchNorm2d(ch, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(n_classes, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, ch, 3, padding=1)
        self.beta = nn.Conv2d(hidden, ch, 3, padding=1)

    def forward(self, h: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
        _layout(layout, self.n_classes)
        m = F.interpolate(layout, size=h.shape[-2:], mode="nearest")   # (N, n_classes, H, W)
        a = self.shared(m)                                              # (N, hidden, H, W)
        return self.norm(h) * (1 + self.gamma(a)) + self.beta(a)


class SPADEResBlock(nn.Module):
    """SPADE's residual block: ``[SPADE, LeakyReLU(0.2), conv 3x3] x 2`` plus a shortcut
    (``SPADE, conv 1x1`` when the channels change): ``(N, c_in, H, W) -> (N, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, n_classes: int, hidden: int = 32):
        super().__init__()
        mid = min(c_in, c_out)
        self.norm1, self.conv1 = SPADE(c_in, n_classes, hidden), nn.Conv2d(c_in, mid, 3, padding=1)
        self.norm2, self.conv2 = SPADE(mid, n_classes, hidden), nn.Conv2d(mid, c_out, 3, padding=1)
        self.learned_skip = c_in != c_out
        if self.learned_skip:
            self.norm_s, self.conv_s = SPADE(c_in, n_classes, hidden), nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, h: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(h, layout)) if self.learned_skip else h
        d = self.conv1(F.leaky_relu(self.norm1(h, layout), 0.2))
        d = self.conv2(F.leaky_relu(self.norm2(d, layout), 0.2))
        return skip + d


class StyleEncoder(nn.Module):
    """SPADE's image encoder: ``(N, 3, H, W)`` in [-1, 1] -> ``mu, logvar`` ``(N, z_dim)`` of a
    Gaussian over the style code (three stride-2 convolutions, LeakyReLU, global average
    pooling, two linear heads). Trained with a KL term to ``N(0, I)``, so that at test time
    ``z`` can be drawn from the prior or taken from a style image."""

    def __init__(self, z_dim: int = 8, ch: int = 16, in_ch: int = 3):
        super().__init__()
        for v, nm in ((z_dim, "z_dim"), (ch, "ch"), (in_ch, "in_ch")):
            checks.positive_int(v, nm)
        self.in_ch = in_ch
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())                      # (N, 4 ch)
        self.mu, self.logvar = nn.Linear(4 * ch, z_dim), nn.Linear(4 * ch, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        checks.images(x.detach(), channels=self.in_ch, name="style image")
        f = self.net(x)
        return self.mu(f), self.logvar(f).clamp(-10, 10)


class SPADEGenerator(nn.Module):
    """SPADE's generator {Park 2019}: ``G(layout, z)`` -> an image ``(N, out_ch, H, W)`` in [-1, 1].

    ``layout``: one-hot ``(N, n_classes, H, W)`` with ``H = W = 4 * 2**3 = 32`` by default
    (``H`` must be ``base * 2**levels``). The style code ``z (N, z_dim)`` goes through a linear
    layer to a ``base x base`` map; ``levels + 1`` :class:`SPADEResBlock` s, with a 2x
    nearest-neighbour upsampling between them, bring it to ``H x W`` (channels ``ngf * 4, ngf * 4,
    ngf * 2, ngf``), every normalisation modulated by the layout; then LeakyReLU, a 3x3 conv and
    tanh. The layout enters *only* through the normalisations: there is no encoder path
    that could lose it.

    ``encoder=True`` adds a :class:`StyleEncoder`: ``G(layout, style=images)`` encodes the
    images' appearance (in training a sample ``mu + sigma * eps``, in eval mode ``mu``) and
    keeps the KL of that code to ``N(0, I)`` in ``G.kl`` (batch mean) for the loss.
    ``G(layout)`` with neither ``z`` nor ``style`` draws ``z ~ N(0, I)`` (a random appearance).
    """

    def __init__(self, n_classes: int, z_dim: int = 8, ngf: int = 16, out_ch: int = 3, base: int = 4,
                 levels: int = 3, hidden: int = 32, encoder: bool = True):
        super().__init__()
        for v, nm in ((n_classes, "n_classes"), (z_dim, "z_dim"), (ngf, "ngf"), (out_ch, "out_ch"),
                      (base, "base"), (levels, "levels"), (hidden, "hidden")):
            checks.positive_int(v, nm)
        self.n_classes, self.z_dim, self.base, self.levels = n_classes, z_dim, base, levels
        self.size = base * 2 ** levels
        ch = [ngf * min(4, 2 ** (levels - i)) for i in range(levels + 1)]   # e.g. 64, 64, 32, 16
        ch = [ch[0]] + ch
        self.fc = nn.Linear(z_dim, ch[0] * base * base)
        self.blocks = nn.ModuleList(SPADEResBlock(ch[i], ch[i + 1], n_classes, hidden) for i in range(levels + 1))
        self.out = nn.Conv2d(ch[-1], out_ch, 3, padding=1)
        self.encoder = StyleEncoder(z_dim, ngf, out_ch) if encoder else None
        self.kl = torch.zeros(())

    def encode(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mu, logvar`` ``(N, z_dim)`` of the style code of images ``(N, out_ch, H, W)``."""
        if self.encoder is None:
            raise ValueError("this SPADEGenerator has no style encoder (build it with encoder=True)")
        return self.encoder(style)

    def forward(self, layout: torch.Tensor, z: torch.Tensor | None = None,
                style: torch.Tensor | None = None) -> torch.Tensor:
        _layout(layout, self.n_classes)
        n, (h, w) = len(layout), layout.shape[-2:]
        if (h, w) != (self.size, self.size):
            raise ValueError(f"this SPADEGenerator makes {self.size}x{self.size} images; the layout is {h}x{w}")
        if z is not None and style is not None:
            raise ValueError("give the style code z or a style image, not both")
        if style is not None:
            if len(style) != n:
                raise ValueError(f"one style image per layout: {len(style)} images for {n} layouts")
            mu, logvar = self.encode(style)
            z = vae.reparameterize(mu, logvar) if self.training else mu
            self.kl = vae.gaussian_kl(mu, logvar).mean()
        elif z is None:
            z = torch.randn(n, self.z_dim, device=layout.device)
        checks.shape(z, (n, self.z_dim), "z")
        x = self.fc(z).view(n, -1, self.base, self.base)                   # (N, 4 ngf, base, base)
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(x, layout)
        return torch.tanh(self.out(F.leaky_relu(x, 0.2)))                  # (N, out_ch, H, W)
