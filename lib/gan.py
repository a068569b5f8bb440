"""Generative adversarial networks (introduced in chapter 6).

Read top to bottom:

1. **The game.** The discriminator ``D`` returns a *logit* ``l``; ``D(x) = sigmoid(l)`` is its
   probability that ``x`` is real. The losses are written with ``log D = logsigmoid(l)`` and
   ``log(1 - D) = logsigmoid(-l)``, which never take the log of 0:

   * value function ``V(D, G) = E_x log D(x) + E_z log(1 - D(G(z)))`` (:func:`value_function`);
   * ``J^(D) = -1/2 E_x log D(x) - 1/2 E_z log(1 - D(G(z)))`` (:func:`d_loss`, the slide's);
   * ``J^(G)``: the *saturating* (minimax) ``1/2 E_z log(1 - D(G(z)))`` and the
     *non-saturating* ``-1/2 E_z log D(G(z))`` of the slide (:func:`g_loss`);
   * the optimal discriminator ``D* = p_data / (p_data + p_g)`` (:func:`optimal_discriminator`).

   These are *all* the book's GAN losses: chapters 8 and 10 call them at twice the scale and
   with their own ``form`` of the logistic terms (see :func:`_neg_log_d`).

2. **Networks.** Small MLPs for 1-D/2-D toys, and a DCGAN generator/discriminator for 16x16
   digits with the DCGAN tricks: no fully connected layers, batch norm, LeakyReLU in ``D``,
   ``N(0, 0.02)`` initial weights; trained with Adam, ``lr = 2e-4``, ``beta1 = 0.5``.
   PacGAN packing (:func:`pack`) lets ``D`` judge ``m`` samples at once. With
   ``num_classes`` both are *class-conditional* (a conditional GAN): ``G`` reads a one-hot
   label next to ``z``, and ``D`` is a projection discriminator (:func:`labels_onehot`).

3. **Training.** :func:`train_step` does one discriminator and one generator update (passing
   ``labels`` to conditional networks) and stops with ``FloatingPointError`` if a loss is NaN
   or infinite.

4. **The latent space.** :func:`lerp`, :func:`slerp`. Projecting images back into it (GAN
   inversion: optimisation, an encoder, or both) is :mod:`lib.inversion`.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks
from .nets import mlp  # noqa: F401  (gan.mlp: the chapter-6 notebooks build their MLPs with it)

D_LOSSES = ("minimax", "lsgan", "hinge")
G_LOSSES = ("saturating", "nonsaturating", "lsgan", "hinge")
LOGISTIC_FORMS = ("logsigmoid", "bce", "softplus")


# --- 1. the game ---------------------------------------------------------------------------

def _logits(x, name):
    checks.tensor(x, name)
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def value_function(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]`` from logits of any shape; a 0-d tensor.

    ``D`` maximises it, ``G`` minimises it; at ``D = 1/2`` everywhere it equals ``-log 4``.
    """
    _logits(real_logits, "real_logits"); _logits(fake_logits, "fake_logits")
    return F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean()


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "minimax",
           form: str = "logsigmoid") -> torch.Tensor:
    """The discriminator's loss (a 0-d tensor) from its logits on real and on generated samples.

    * ``"minimax"``: ``J^(D) = -1/2 E log D(x) - 1/2 E log(1 - D(G(z)))`` (binary cross-entropy / 2);
    * ``"lsgan"``: ``1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2`` on the raw outputs (Mao et al. 2017);
    * ``"hinge"``: ``E relu(1 - D(x)) + E relu(1 + D(G(z)))`` on the raw outputs.

    Logits of any shape (a PatchGAN's grid too) are averaged over every entry. ``form``: how the
    logistic terms of ``"minimax"`` are evaluated (:func:`_neg_log_d`); other kinds ignore it.
    """
    checks.choice(kind, D_LOSSES, "discriminator loss")
    checks.choice(form, LOGISTIC_FORMS, "logistic form")
    _logits(real_logits, "real_logits"); _logits(fake_logits, "fake_logits")
    if kind == "minimax":
        if form == "logsigmoid":
            return -0.5 * F.logsigmoid(real_logits).mean() - 0.5 * F.logsigmoid(-fake_logits).mean()
        return 0.5 * (_neg_log_d(real_logits, True, form) + _neg_log_d(fake_logits, False, form))
    if kind == "lsgan":
        return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating", form: str = "logsigmoid") -> torch.Tensor:
    """The generator's loss (a 0-d tensor) from the discriminator's logits on generated samples.

    * ``"saturating"``: ``J^(G) = -J^(D)`` up to a term without ``G``: ``1/2 E log(1 - D(G(z)))``;
      its gradient vanishes when ``D`` confidently rejects the fakes (early in training);
    * ``"nonsaturating"``: ``J^(G) = -1/2 E log D(G(z))`` ("maximise the log-probability of
      the discriminator being mistaken"), the slide's and the one used in practice;
    * ``"lsgan"``: ``1/2 E (D(G(z)) - 1)^2``; ``"hinge"``: ``-E D(G(z))``.

    ``form`` (``"nonsaturating"`` only): how ``-log D`` is evaluated, see :func:`_neg_log_d`.
    """
    checks.choice(kind, G_LOSSES, "generator loss")
    checks.choice(form, LOGISTIC_FORMS, "logistic form")
    _logits(fake_logits, "fake_logits")
    if kind == "saturating":
        return 0.5 * F.logsigmoid(-fake_logits).mean()
    if kind == "nonsaturating":
        if form == "logsigmoid":
            return -0.5 * F.logsigmoid(fake_logits).mean()
        return 0.5 * _neg_log_d(fake_logits, True, form)
    if kind == "lsgan":
        return 0.5 * ((fake_logits - 1) ** 2).mean()
    return -fake_logits.mean()


def _neg_log_d(logits: torch.Tensor, real: bool, form: str) -> torch.Tensor:
    """``E[-log D]`` (``real``) or ``E[-log(1 - D)]``, ``D = sigmoid(logits)``: the BCE against the
    label. Three forms agree up to rounding, not bit for bit: ``"logsigmoid"`` (chapter 6, written
    out in :func:`d_loss` / :func:`g_loss`), ``"bce"`` (``F.binary_cross_entropy_with_logits``,
    chapter 8) and ``"softplus"`` (``F.softplus(-+l)``, chapter 10); each chapter keeps its own so
    that its recorded numbers stay exactly reproducible."""
    if form == "softplus":
        return F.softplus(-logits if real else logits).mean()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """``D*(x) = p_data(x) / (p_data(x) + p_g(x))`` from two density tensors of the same shape.

    Densities must be finite and non-negative. Where both are 0 every value of ``D`` is
    optimal (no sample ever lands there); we return ``1/2`` there.
    """
    checks.tensor(p_data, "p_data"); checks.tensor(p_g, "p_g")
    if p_data.shape != p_g.shape:
        raise ValueError(f"p_data and p_g must have the same shape, got {tuple(p_data.shape)} and {tuple(p_g.shape)}")
    for t, name in ((p_data, "p_data"), (p_g, "p_g")):
        if not torch.isfinite(t).all() or (t < 0).any():
            raise ValueError(f"{name} must hold finite, non-negative density values")
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(torch.finfo(total.dtype).tiny), torch.full_like(total, 0.5))


# --- 2. networks ---------------------------------------------------------------------------

def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """PacGAN packing (Lin et al. 2018): concatenate ``m`` consecutive samples into one.

    ``(N, D) -> (N/m, m*D)`` for points, ``(N, C, H, W) -> (N/m, m*C, H, W)`` for images.
    ``m = 1`` returns ``x`` unchanged; ``N`` must be a multiple of ``m``.
    """
    checks.tensor(x, "x"); checks.positive_int(m, "m")
    if x.dim() not in (2, 4):
        raise ValueError(f"x must have shape (N, D) or (N, C, H, W), got {tuple(x.shape)}")
    if len(x) % m:
        raise ValueError(f"the batch size {len(x)} must be a multiple of the packing degree {m}")
    if m == 1:
        return x
    n = len(x) // m
    return x.reshape(n, m * x.shape[1], *x.shape[2:])


def _check_latent(z, z_dim):
    checks.tensor(z, "z")
    if z.dim() != 2 or z.shape[1] != z_dim:
        raise ValueError(f"latent z must have shape (N, {z_dim}), got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("latent z contains NaN or infinite values")
    return z


def labels_onehot(y: torch.Tensor, num_classes: int, n: int | None = None) -> torch.Tensor:
    """Labels for a conditional network as rows of class weights ``(N, num_classes)``.

    ``y`` is either integer class labels ``(N,)`` in ``[0, num_classes)`` (made one-hot) or
    float rows ``(N, num_classes)`` of non-negative weights summing to 1 -- a *mixture* of
    classes, used to interpolate between classes. ``n`` (optional) is the expected ``N``.
    """
    checks.tensor(y, "labels")
    if y.dtype.is_floating_point:
        if y.dim() != 2 or y.shape[1] != num_classes:
            raise ValueError(f"float labels must be class weights of shape (N, {num_classes}), got {tuple(y.shape)}")
        if not torch.isfinite(y).all() or (y < 0).any() or not torch.allclose(y.sum(1), torch.ones_like(y[:, 0]), atol=1e-4):
            raise ValueError("float labels must be non-negative class weights whose rows sum to 1")
        out = y
    elif y.dtype == torch.bool:
        raise TypeError("labels must be integer class indices (N,) or float class weights (N, K), got bool")
    else:
        if y.dim() != 1:
            raise ValueError(f"integer labels must have shape (N,), got {tuple(y.shape)}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got values from {int(y.min())} to {int(y.max())}")
        out = F.one_hot(y.long(), num_classes).float()
    if n is not None and len(out) != n:
        raise ValueError(f"need one label per sample: {n} samples but {len(out)} labels")
    return out


def _labels_for(net: nn.Module, y, n: int, device) -> torch.Tensor | None:
    """Check that ``y`` is given exactly when ``net`` is class-conditional; return ``(n, K)`` weights or None."""
    k = getattr(net, "num_classes", None)
    if k is None:
        if y is not None:
            raise ValueError(f"{type(net).__name__} is unconditional (num_classes=None): do not pass labels")
        return None
    if y is None:
        raise ValueError(f"{type(net).__name__} is class-conditional: pass labels (N,) in [0, {k}) or class weights (N, {k})")
    return labels_onehot(y, k, n).to(device)


class MLPGenerator(nn.Module):
    """Toy generator ``z (N, z_dim) ~ N(0, I) -> x (N, out_dim)`` (an MLP with ReLU)."""

    def __init__(self, z_dim: int = 2, out_dim: int = 2, hidden: int = 128, layers: int = 3):
        super().__init__()
        self.z_dim, self.out_dim = checks.positive_int(z_dim, "z_dim"), checks.positive_int(out_dim, "out_dim")
        self.net = mlp([z_dim] + [hidden] * layers + [out_dim])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(_check_latent(z, self.z_dim))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples ``(n, out_dim)`` from ``z ~ N(0, I)``."""
        z = torch.randn(checks.positive_int(n, "n"), self.z_dim, generator=generator)
        return self(z.to(next(self.parameters()).device))


class MLPDiscriminator(nn.Module):
    """Toy discriminator ``x (N, in_dim) -> logits (N,)``, LeakyReLU(0.2); with ``pack = m`` it
    takes ``(N, m * in_dim)`` (see :func:`pack`).

    ``scale`` multiplies the input first: data with structure at a small scale (the ring's
    modes have ``sigma = 0.01``) then need no huge first-layer weights to be told apart.
    """

    def __init__(self, in_dim: int = 2, hidden: int = 128, layers: int = 2, pack: int = 1, scale: float = 1.0):
        super().__init__()
        self.pack = checks.positive_int(pack, "pack")
        self.in_dim = checks.positive_int(in_dim, "in_dim") * self.pack
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = float(scale)
        self.net = mlp([self.in_dim] + [hidden] * layers + [1], act=lambda: nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.shape(x.detach(), (None, self.in_dim), "discriminator input")
        return self.net(x * self.scale).squeeze(1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): conv weights ~ N(0, 0.02), BN weights ~ N(1, 0.02).

    Use as ``net.apply(dcgan_init)``.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGenerator(nn.Module):
    """DCGAN generator for 16x16 images: ``z (N, z_dim) -> x (N, 1, 16, 16)`` in ``[-1, 1]``.

    All convolutional (no fully connected layer), batch norm + ReLU, tanh output:
    ``z`` as ``(N, z_dim, 1, 1)`` -> ConvT 4x4 -> ``(N, 4ch, 4, 4)`` -> ConvT /2 -> ``(N, 2ch, 8, 8)``
    -> ConvT /2 -> ``(N, ch, 16, 16)`` -> 3x3 conv -> ``(N, 1, 16, 16)``.

    With ``smooth=True`` the generator draws an 8x8 image and its last layer is a *fixed*
    bilinear 2x upsampling to 16x16 -- exactly how ``lib.data.digits`` makes its 16x16 digits
    from scikit-learn's 8x8 ones, so the generator cannot add pixel noise that real digits
    never have: ``... -> (N, 2ch, 8, 8)`` -> two 3x3 convs -> ``(N, 1, 8, 8)`` -> upsample.

    With ``num_classes = K`` it is class-conditional, ``G(z, y)``: the label's one-hot vector
    (or class weights, see :func:`labels_onehot`) is appended to ``z``, so the first layer reads
    ``z_dim + K`` channels -- still no fully connected layer.
    """

    def __init__(self, z_dim: int = 32, ch: int = 32, out_channels: int = 1, smooth: bool = False,
                 num_classes: int | None = None):
        super().__init__()
        self.z_dim = checks.positive_int(z_dim, "z_dim")
        self.num_classes = None if num_classes is None else checks.positive_int(num_classes, "num_classes")
        head = [nn.ConvTranspose2d(z_dim + (num_classes or 0), 4 * ch, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * ch), nn.ReLU(),   # 4x4
                nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ch), nn.ReLU()]  # 8x8
        if smooth:
            tail = [nn.Conv2d(2 * ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(),
                    nn.Conv2d(ch, out_channels, 3, 1, 1), nn.Tanh(),
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]                      # 16x16
        else:
            tail = [nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(),      # 16x16
                    nn.Conv2d(ch, out_channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*head, *tail)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = _check_latent(z, self.z_dim)
        y = _labels_for(self, y, len(z), z.device)
        if y is not None:
            z = torch.cat([z, y], 1)                                   # (N, z_dim + K)
        return self.net(z[:, :, None, None])

    def sample(self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` images ``(n, 1, 16, 16)`` from ``z ~ N(0, I)`` (in the module's current mode);
        a conditional generator needs the labels ``y`` of the ``n`` images."""
        z = torch.randn(checks.positive_int(n, "n"), self.z_dim, generator=generator)
        return self(z.to(next(self.parameters()).device), y)


class DCDiscriminator(nn.Module):
    """DCGAN discriminator for 16x16 images: ``x (N, pack*C, 16, 16)`` in ``[-1, 1]`` -> logits ``(N,)``.

    Strided convolutions instead of pooling, LeakyReLU(0.2), batch norm except on the first
    layer, no fully connected layer: ``16 -> 8 -> 4`` then a 4x4 convolution to one logit.

    With ``num_classes = K`` it is a *projection discriminator* (Miyato & Koyama 2018),
    ``D(x, y)``: the logit gets the extra term ``<embed(y), phi(x)>``, the inner product of a
    learned class embedding with the 4x4 features ``phi(x)`` summed over space. So ``D`` judges
    "is this a real *y*?", not only "is this real?". Packing and labels do not mix.
    """

    def __init__(self, ch: int = 32, in_channels: int = 1, pack: int = 1, num_classes: int | None = None):
        super().__init__()
        self.pack = checks.positive_int(pack, "pack")
        self.in_channels = checks.positive_int(in_channels, "in_channels") * self.pack
        self.num_classes = None if num_classes is None else checks.positive_int(num_classes, "num_classes")
        if num_classes is not None and pack > 1:
            raise ValueError("a class-conditional discriminator cannot pack samples (pack must be 1)")
        self.body = nn.Sequential(
            nn.Conv2d(self.in_channels, ch, 4, 2, 1), nn.LeakyReLU(0.2),                                  # 8x8
            nn.Conv2d(ch, 2 * ch, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ch), nn.LeakyReLU(0.2))       # 4x4
        self.head = nn.Conv2d(2 * ch, 1, 4, 1, 0)                                                        # 1x1
        self.embed = None if num_classes is None else nn.Linear(num_classes, 2 * ch, bias=False)        # class -> (2ch,)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        checks.images(x.detach(), channels=self.in_channels, size=16, name="discriminator input")
        y = _labels_for(self, y, len(x), x.device)
        h = self.body(x)                                               # (N, 2ch, 4, 4)
        logit = self.head(h).flatten()                                 # (N,)
        if y is not None:
            logit = logit + (self.embed(y) * h.sum((2, 3))).sum(1)     # + <embed(y), phi(x)>
        return logit


# --- 3. training ---------------------------------------------------------------------------

def _finite(losses: dict, where: str) -> dict:
    for k, v in losses.items():
        if not torch.isfinite(v).all():
            raise FloatingPointError(
                f"GAN training diverged: {k} became {float(v)} ({where}). Lower the learning rates, "
                "check that the data lie in the expected range, or use the non-saturating loss.")
    return losses


def train_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               real: torch.Tensor, z: torch.Tensor, loss: str = "nonsaturating", d_steps: int = 1,
               labels: torch.Tensor | None = None) -> dict:
    """One round of the game: ``d_steps`` discriminator updates, then one generator update.

    ``real`` is a batch of data ``(N, ...)``, ``z`` a batch of latents ``(N, z_dim)``; if ``D``
    has ``pack = m`` both batches are packed by ``m`` (``N`` must be a multiple of ``m``).
    Class-conditional networks need ``labels (N,)``, the real batch's labels: the fakes are
    drawn with the same labels, ``G(z, labels)``, so both sides see the same class mix.
    ``loss`` is a generator loss of :func:`g_loss`; the discriminator uses ``"minimax"``
    except for ``"lsgan"``/``"hinge"``, which pair with their own. Returns detached
    ``{"D": J^(D), "G": J^(G), "D(x)": mean D on real, "D(G(z))": mean D on fakes}``.
    Raises ``FloatingPointError`` with a clear message if a loss is NaN or infinite.
    """
    checks.choice(loss, G_LOSSES, "generator loss")
    checks.positive_int(d_steps, "d_steps")
    checks.tensor(real, "real"); checks.tensor(z, "z")
    if len(real) != len(z):
        raise ValueError(f"real and z must have the same batch size, got {len(real)} and {len(z)}")
    m = getattr(D, "pack", 1)
    kind_d = loss if loss in ("lsgan", "hinge") else "minimax"
    if getattr(G, "num_classes", None) != getattr(D, "num_classes", None):
        raise ValueError("G and D must both be unconditional or both conditional on the same number of classes")
    if labels is not None and getattr(G, "num_classes", None) is None:
        raise ValueError("labels were given, but G and D are unconditional (num_classes=None)")
    cond = () if labels is None and getattr(G, "num_classes", None) is None else (labels,)   # (labels,) for G(z, y), D(x, y)
    for _ in range(d_steps):
        with torch.no_grad():
            fake = G(z, *cond)
        real_logits, fake_logits = D(pack(real, m), *cond), D(pack(fake, m), *cond)
        if not (torch.isfinite(real_logits).all() and torch.isfinite(fake_logits).all()):
            raise FloatingPointError("GAN training diverged: the discriminator's outputs are NaN or infinite. "
                                     "Lower the learning rates or check the inputs' value range.")
        ld = _finite({"J^(D)": d_loss(real_logits, fake_logits, kind_d)}, "discriminator step")["J^(D)"]
        opt_d.zero_grad(set_to_none=True); ld.backward(); opt_d.step()
    fake_logits = D(pack(G(z, *cond), m), *cond)
    if not torch.isfinite(fake_logits).all():
        raise FloatingPointError("GAN training diverged: the discriminator's outputs on generated samples "
                                 "are NaN or infinite. Lower the learning rates.")
    lg = _finite({"J^(G)": g_loss(fake_logits, loss)}, "generator step")["J^(G)"]
    opt_g.zero_grad(set_to_none=True); lg.backward(); opt_g.step()
    return {"D": ld.detach(), "G": lg.detach(), "D(x)": torch.sigmoid(real_logits.detach()).mean(),
            "D(G(z))": torch.sigmoid(fake_logits.detach()).mean()}


def adam(params, lr: float = 2e-4, beta1: float = 0.5) -> torch.optim.Adam:
    """The DCGAN optimiser: Adam with ``lr = 2e-4`` and ``beta1 = 0.5`` (the slide's tweak)."""
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999))


# --- 4. the latent space -------------------------------------------------------------------

def _pair(z0, z1):
    checks.tensor(z0, "z0"); checks.tensor(z1, "z1")
    if z0.shape != z1.shape or z0.dim() != 1:
        raise ValueError(f"z0 and z1 must be vectors (D,) of the same size, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    return z0, z1


def _ts(t, like):
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device).reshape(-1)
    if not torch.isfinite(t).all():
        raise ValueError("t must be finite")
    return t[:, None]                                                 # (T, 1)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """Linear interpolation ``(1 - t) z0 + t z1``: vectors ``(D,)`` and ``t`` (a float or ``(T,)``) -> ``(T, D)``.

    Exactly ``z0`` at ``t = 0`` and ``z1`` at ``t = 1``.
    """
    z0, z1 = _pair(z0, z1)
    t = _ts(t, z0)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GANs) along the great circle:

    ``sin((1 - t) W) / sin W * z0 + sin(t W) / sin W * z1`` with ``W`` the angle between ``z0`` and ``z1``.
    Vectors ``(D,)``, ``t`` a float or ``(T,)`` -> ``(T, D)``. For unit vectors every point has
    norm 1 (a lerp cuts through the inside of the sphere, where a Gaussian latent has little mass).
    Falls back to :func:`lerp` for (nearly) parallel vectors; opposite vectors raise ``ValueError``.
    """
    z0, z1 = _pair(z0, z1)
    n0, n1 = z0.norm(), z1.norm()
    if n0 == 0 or n1 == 0:
        raise ValueError("slerp needs non-zero vectors")
    cos = (z0 @ z1 / (n0 * n1)).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega < 1e-4:
        return lerp(z0, z1, t)
    if math.pi - float(omega) < 1e-4:
        raise ValueError("slerp between opposite vectors is undefined (every great circle joins them)")
    t = _ts(t, z0)
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * z0 + torch.sin(t * omega) / so * z1
