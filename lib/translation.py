"""Data translation: pix2pix (U-Net + PatchGAN) and CycleGAN (introduced in chapter 8).

Read top to bottom:

1. :class:`UNet` -- the generator ``G(x)``: an encoder-decoder whose mirror layers are joined
   by skip connections, so low-level structure (edges, positions) can go straight from the
   input to the output. Output shape = input shape (spatially), values in ``[-1, 1]`` (tanh).
2. :class:`PatchDiscriminator` -- ``D(x, y)``: a fully convolutional net that classifies
   every *patch* of the pair (input, output) as real or fake, giving a grid of logits.
   ``n_layers`` sets the patch size; :func:`receptive_field` computes it from the layers
   (1, 16, 34, 70, 142, 286 pixels for ``n_layers = 0 .. 5``, as in pix2pix).
3. The losses: :func:`gan_loss` (non-saturating BCE or least squares), the pix2pix objective
   :func:`pix2pix_losses` ``L_cGAN + lambda * L1`` (lambda = 100), and one training step
   :func:`pix2pix_step` for the three variants of the loss ablation ("l1", "cgan", "cgan+l1").
4. :class:`CycleGAN` -- two generators ``G: A -> B``, ``F: B -> A``, two unconditional
   discriminators, the LSGAN loss, the cycle loss :func:`cycle_loss` and the optional
   identity loss; one training step :func:`cyclegan_step`.

Images are ``(N, C, H, W)`` float tensors in ``[-1, 1]``. ``lib.gan`` (chapter 6) has the
unconditional GAN losses; the few lines needed here are written out so this module stands
alone.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks

MODES = ("l1", "cgan", "cgan+l1")
GAN_KINDS = ("bce", "lsgan")


def _pos_int(n, name, allow_zero=False) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else 'a positive integer'}, got {n}")
    return n


# --- 1. the U-Net generator --------------------------------------------------------------

class UNet(nn.Module):
    """U-Net generator ``(N, in_ch, H, W) -> (N, out_ch, H, W)`` in ``[-1, 1]`` {Ronneberger 2015; pix2pix}.

    ``depth`` stride-2 convolutions (kernel 4, padding 1) halve the size down to
    ``H / 2**depth``; ``depth`` transposed convolutions double it back, and the decoder at
    each scale sees the encoder's features of the same scale concatenated to its own (the
    skip connections). ``H`` and ``W`` must therefore be multiples of ``2**depth``; other
    sizes raise ``ValueError`` (no silent cropping). Channels: ``ngf * 2**i``, capped at
    ``max_ch``. ``skips=False`` gives the plain encoder-decoder of the pix2pix paper's
    ablation (everything must pass the bottleneck). BatchNorm everywhere except the
    outermost layers and the bottleneck, LeakyReLU(0.2) down, ReLU up, tanh out.
    """

    def __init__(self, in_ch: int = 1, out_ch: int = 1, ngf: int = 32, depth: int = 5,
                 max_ch: int = 256, skips: bool = True):
        super().__init__()
        for v, nm in ((in_ch, "in_ch"), (out_ch, "out_ch"), (ngf, "ngf"), (depth, "depth"), (max_ch, "max_ch")):
            _pos_int(v, nm)
        self.in_ch, self.out_ch, self.depth, self.skips = in_ch, out_ch, depth, bool(skips)
        ch = [min(ngf * 2 ** i, max_ch) for i in range(depth)]        # encoder output channels per level
        self.down = nn.ModuleList()
        prev = in_ch
        for i, c in enumerate(ch):
            norm = 0 < i < depth - 1                                   # no norm on the first layer and the 1x1 bottleneck
            self.down.append(nn.Sequential(
                *([] if i == 0 else [nn.LeakyReLU(0.2)]),
                nn.Conv2d(prev, c, 4, 2, 1, bias=not norm),
                *([nn.BatchNorm2d(c)] if norm else [])))
            prev = c
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):                               # level i doubles size back to level i-1
            c_in = ch[i] * (2 if (self.skips and i < depth - 1) else 1)
            last = i == 0
            c_out = out_ch if last else ch[i - 1]
            self.up.append(nn.Sequential(
                nn.ReLU(),
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=last),
                *([nn.Tanh()] if last else [nn.BatchNorm2d(c_out)])))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(N, in_ch, H, W)`` with ``H, W`` multiples of ``2**depth``."""
        checks.tensor(x, "x")
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"x must have shape (N, {self.in_ch}, H, W), got {tuple(x.shape)}")
        m = 2 ** self.depth
        h, w = x.shape[-2:]
        if h % m or w % m:
            raise ValueError(f"this U-Net (depth {self.depth}) needs H and W to be multiples of 2**{self.depth} = {m}, "
                             f"got {h}x{w}; pad or crop the image, or build the U-Net with a smaller depth")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        feats = []
        h = x
        for layer in self.down:                                        # (N, ch[i], H/2^(i+1), W/2^(i+1))
            h = layer(h)
            feats.append(h)
        h = feats.pop()                                                # bottleneck (N, ch[-1], H/2^depth, W/2^depth)
        for j, layer in enumerate(self.up):
            if j > 0 and self.skips:
                h = torch.cat([h, feats.pop()], 1)                     # skip connection from the mirror level
            h = layer(h)
        return h                                                       # (N, out_ch, H, W) in [-1, 1]


# --- 2. the PatchGAN discriminator and its receptive field -------------------------------

class PatchDiscriminator(nn.Module):
    """PatchGAN ``D(*images)``: concatenates its inputs along channels, returns a logit grid ``(N, 1, h, w)``.

    pix2pix's design {Isola 2017}: ``n_layers`` stride-2 convolutions (kernel 4, padding 1;
    channels ``ndf, 2 ndf, ...`` capped at ``8 ndf``), then one stride-1 convolution and a
    stride-1 convolution to one channel. Each output logit judges one patch of the input, of
    size :func:`receptive_field` = 16, 34, 70, 142, 286 for ``n_layers`` = 1 .. 5.
    ``n_layers=0`` is the *PixelGAN*: 1x1 convolutions only, each logit judges one pixel.
    BatchNorm on all but the first and last layers. ``in_ch`` is the total number of
    channels of the concatenated inputs (e.g. 1 + 1 for an edge map and a grey photo).
    """

    def __init__(self, in_ch: int = 2, ndf: int = 32, n_layers: int = 3):
        super().__init__()
        _pos_int(in_ch, "in_ch"); _pos_int(ndf, "ndf"); _pos_int(n_layers, "n_layers", allow_zero=True)
        self.in_ch, self.n_layers = in_ch, n_layers
        if n_layers == 0:                                              # PixelGAN
            layers = [nn.Conv2d(in_ch, ndf, 1), nn.LeakyReLU(0.2),
                      nn.Conv2d(ndf, 2 * ndf, 1, bias=False), nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.2),
                      nn.Conv2d(2 * ndf, 1, 1)]
        else:
            layers = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = ndf
            for i in range(1, n_layers + 1):                           # n_layers-1 more stride-2, then one stride-1
                c_next = ndf * min(2 ** i, 8)
                stride = 2 if i < n_layers else 1
                layers += [nn.Conv2d(c, c_next, 4, stride, 1, bias=False), nn.BatchNorm2d(c_next), nn.LeakyReLU(0.2)]
                c = c_next
            layers += [nn.Conv2d(c, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        if not images:
            raise ValueError("PatchDiscriminator needs at least one image batch")
        for i, im in enumerate(images):
            checks.tensor(im, f"image {i}")
            if im.dim() != 4:
                raise ValueError(f"image {i} must have shape (N, C, H, W), got {tuple(im.shape)}")
        if len({(im.shape[0], *im.shape[-2:]) for im in images}) != 1:
            raise ValueError(f"images must share N, H, W; got {[tuple(im.shape) for im in images]}")
        x = torch.cat(images, 1)
        if x.shape[1] != self.in_ch:
            raise ValueError(f"the concatenated images must have {self.in_ch} channels, got {x.shape[1]}")
        return self.net(x)                                             # (N, 1, h, w) logits, one per patch


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


# --- 3. the losses ------------------------------------------------------------------------

def gan_loss(logits: torch.Tensor, real: bool, kind: str = "bce") -> torch.Tensor:
    """Mean GAN loss of a discriminator's logits against the label "real" (1) or "fake" (0).

    ``"bce"``: binary cross-entropy on the logits, ``-log sigmoid(l)`` for real and
    ``-log(1 - sigmoid(l))`` for fake (the generator uses ``real=True`` on its fakes: the
    non-saturating loss). ``"lsgan"``: least squares ``(l - 1)^2`` or ``l^2`` {Mao 2017}.
    Averaged over the batch *and* over every patch of the grid.
    """
    checks.tensor(logits, "logits")
    checks.choice(kind, GAN_KINDS, "GAN loss kind")
    if not isinstance(real, bool):
        raise TypeError(f"real must be a bool, got {type(real).__name__}")
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.mse_loss(logits, target)


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
    gan = gan_loss(d_fake, True) if d_fake is not None else torch.zeros((), device=fake.device)
    total = {"l1": l1, "cgan": gan, "cgan+l1": gan + lam * l1}[mode]
    return {"total": total, "gan": gan, "l1": l1}


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """``0.5 * (loss(D(real), 1) + loss(D(fake), 0))`` (pix2pix halves D's loss to slow it down)."""
    return 0.5 * (gan_loss(d_real, True, kind) + gan_loss(d_fake, False, kind))


def pix2pix_step(G: nn.Module, D: nn.Module | None, opt_g, opt_d, x: torch.Tensor, y: torch.Tensor,
                 mode: str = "cgan+l1", lam: float = 100.0) -> dict[str, float]:
    """One training step of pix2pix on a batch of pairs ``x -> y``; returns the losses as floats.

    First D is updated on real pairs ``(x, y)`` against fake pairs ``(x, G(x))`` (skipped
    for ``mode="l1"``, where ``D``/``opt_d`` may be ``None``), then G on
    :func:`pix2pix_losses`.
    """
    checks.choice(mode, MODES, "pix2pix loss mode")
    fake = G(x)
    out = {}
    if mode != "l1":
        if D is None or opt_d is None:
            raise ValueError(f"mode {mode!r} needs a discriminator and its optimiser")
        d_loss = discriminator_loss(D(x, y), D(x, fake.detach()))
        opt_d.zero_grad(); d_loss.backward(); opt_d.step()
        out["D"] = float(d_loss.detach())
    losses = pix2pix_losses(D(x, fake) if mode != "l1" else None, fake, y, lam, mode)
    opt_g.zero_grad(); losses["total"].backward(); opt_g.step()
    out.update({"G_gan": float(losses["gan"].detach()), "G_l1": float(losses["l1"].detach())})
    if mode == "l1":
        del out["G_gan"]
    return out


# --- 4. CycleGAN ---------------------------------------------------------------------------

def cycle_loss(x: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency loss ``E|F(G(x)) - x|`` (L1), given ``x`` and its round trip ``x_rec``."""
    return l1_loss(x_rec, x)


class CycleGAN(nn.Module):
    """Two generators ``G: A -> B``, ``F: B -> A`` and two PatchGANs ``D_A``, ``D_B`` {Zhu 2017}.

    Generators are :class:`UNet` s (``ngf``, ``depth``), discriminators unconditional
    :class:`PatchDiscriminator` s (``ndf``, ``n_layers``) on one image each: unlike pix2pix
    there is no pair to condition on. ``lam_cycle`` (10 in the paper; 0 switches the cycle
    loss off) and ``lam_id`` (weight of the identity loss relative to ``lam_cycle``, 0.5 in
    the paper, 0 = off) set the objective of :meth:`generator_losses`.
    """

    def __init__(self, ch_a: int = 1, ch_b: int = 1, ngf: int = 16, depth: int = 5, ndf: int = 32,
                 n_layers: int = 2, lam_cycle: float = 10.0, lam_id: float = 0.0, skips: bool = True):
        super().__init__()
        for v, nm in ((lam_cycle, "lam_cycle"), (lam_id, "lam_id")):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{nm} must be a number >= 0, got {v!r}")
        if lam_id > 0 and ch_a != ch_b:
            raise ValueError("the identity loss needs domains with the same number of channels")
        self.G = UNet(ch_a, ch_b, ngf, depth, skips=skips)            # A -> B
        self.F = UNet(ch_b, ch_a, ngf, depth, skips=skips)            # B -> A
        self.D_A = PatchDiscriminator(ch_a, ndf, n_layers)
        self.D_B = PatchDiscriminator(ch_b, ndf, n_layers)
        self.lam_cycle, self.lam_id = float(lam_cycle), float(lam_id)

    def generator_losses(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """LSGAN + ``lam_cycle`` * cycle (+ ``lam_cycle * lam_id`` * identity) for both generators.

        Returns ``{"total", "gan", "cycle", "identity", "fake_a", "fake_b"}`` (fakes for D's step).
        """
        fake_b, fake_a = self.G(a), self.F(b)
        gan = gan_loss(self.D_B(fake_b), True, "lsgan") + gan_loss(self.D_A(fake_a), True, "lsgan")
        cyc = cycle_loss(a, self.F(fake_b)) + cycle_loss(b, self.G(fake_a))
        total = gan + self.lam_cycle * cyc
        ident = torch.zeros((), device=a.device)
        if self.lam_id > 0:
            ident = l1_loss(self.G(b), b) + l1_loss(self.F(a), a)
            total = total + self.lam_cycle * self.lam_id * ident
        return {"total": total, "gan": gan, "cycle": cyc, "identity": ident, "fake_a": fake_a, "fake_b": fake_b}

    def discriminator_losses(self, a, b, fake_a, fake_b) -> torch.Tensor:
        """LSGAN loss of both discriminators (real images vs the generators' detached fakes)."""
        return (discriminator_loss(self.D_A(a), self.D_A(fake_a.detach()), "lsgan")
                + discriminator_loss(self.D_B(b), self.D_B(fake_b.detach()), "lsgan"))


def cyclegan_step(model: CycleGAN, opt_g, opt_d, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """One CycleGAN step on unpaired batches ``a`` (domain A) and ``b`` (domain B): G/F, then D_A/D_B."""
    if not isinstance(model, CycleGAN):
        raise TypeError(f"model must be a CycleGAN, got {type(model).__name__}")
    g = model.generator_losses(a, b)
    opt_g.zero_grad(); g["total"].backward(); opt_g.step()
    d = model.discriminator_losses(a, b, g["fake_a"], g["fake_b"])
    opt_d.zero_grad(); d.backward(); opt_d.step()
    return {"G_gan": float(g["gan"].detach()), "cycle": float(g["cycle"].detach()), "D": float(d.detach())}


# --- 5. measuring blur and correspondence ---------------------------------------------------

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


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Central-difference gradient magnitude, ``(N, C, H, W) -> (N, C, H-2, W-2)``."""
    checks.tensor(x, "x")
    if x.dim() != 4 or min(x.shape[-2:]) < 3:
        raise ValueError(f"x must be (N, C, H, W) with H, W >= 3, got {tuple(x.shape)}")
    gx = x[..., 1:-1, 2:] - x[..., 1:-1, :-2]
    gy = x[..., 2:, 1:-1] - x[..., :-2, 1:-1]
    return (gx ** 2 + gy ** 2).sqrt()


def structure_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of the gradient magnitudes of ``x`` and ``y``: ``(N,)`` in ``[-1, 1]``.

    How much of ``x``'s structure (where its edges are) survives in ``y``: near 1 when the
    edges are in the same places, near 0 when ``y``'s edges are unrelated to ``x``'s.
    ``x``, ``y``: ``(N, C, H, W)`` of the same shape. A constant image has correlation 0.
    """
    checks.tensor(x, "x"); checks.tensor(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    u = gradient_magnitude(x.double()).flatten(1)
    v = gradient_magnitude(y.double()).flatten(1)
    u = u - u.mean(1, keepdim=True)
    v = v - v.mean(1, keepdim=True)
    den = u.norm(dim=1) * v.norm(dim=1)
    return torch.where(den > 0, (u * v).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den)).float()


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
