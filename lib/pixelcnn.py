"""Autoregressive models of pixels and their parallel decoding (introduced in chapter 4).

The chain rule of :mod:`lib.autoregressive`, applied to the pixels of an image in
raster order, read top to bottom:

1. **Pixels** -- :class:`MaskedConv2d` (mask type A and B) and :class:`PixelCNN`
   for binary images, with the exact log-likelihood, raster-order sampling and
   completion (:func:`sample_raster`); :class:`BernoulliPixels` is the
   independent-pixel baseline.
2. **Parallel decoding** -- :class:`MaskedTokenModel`, a bidirectional
   masked-token model trained MaskGIT-style with a cosine masking schedule
   (:func:`masking_schedule`), and :func:`decode_parallel`, which fills in all
   pixels in exactly ``steps`` forward passes (``steps = n_pixels`` is one token
   per step, i.e. sequential).

Conventions: binary images are float tensors ``(N, 1, H, W)`` with values in
``{0, 1}`` (use ``lib.data.binarize`` on digits in ``[-1, 1]``); log-probabilities
are in nats unless a name says bits.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks

# ============================================================================================
# 1. Pixels: masked convolutions and the PixelCNN
# ============================================================================================

def causal_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    """The ``(k, k)`` 0/1 mask of a masked convolution (van den Oord et al., 2016).

    A kernel centred on pixel ``i`` may only see pixels *before* ``i`` in raster order
    (rows above, and the left part of its own row). Type ``"A"`` also hides the
    centre (the pixel itself: used for the first layer, which sees the image);
    type ``"B"`` keeps it (later layers, whose centre holds features that were
    computed from strictly earlier pixels only). ``kernel_size`` must be odd.
    """
    checks.choice(mask_type, ("A", "B"), "mask_type")
    checks.positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the kernel needs a centre pixel), got {kernel_size}")
    k, c = kernel_size, kernel_size // 2
    m = torch.zeros(k, k)
    m[:c, :] = 1                                   # every row above the centre
    m[c, :c + (mask_type == "B")] = 1              # left of the centre (and the centre for B)
    return m


class MaskedConv2d(nn.Conv2d):
    """A ``Conv2d`` whose kernel is multiplied by :func:`causal_mask` on every call.

    ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` ('same' padding). With one
    image channel the mask is purely spatial (PixelCNN for RGB also orders R, G, B
    within a pixel; not needed here).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str):
        mask = causal_mask(kernel_size, mask_type)  # validates kernel_size and mask_type
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", mask[None, None])  # (1, 1, k, k), broadcast over channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def check_binary_images(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Check a batch of binary images: ``(N, 1, H, W)`` with values in ``{0, 1}``."""
    checks.tensor(x, name)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (N, 1, H, W) (one channel), got {tuple(x.shape)}")
    if not ((x == 0) | (x == 1)).all():
        hint = " (it looks like digits in [-1, 1]: use lib.data.binarize)" if (x < 0).any() else ""
        raise ValueError(f"{name} must be binary, with pixels in {{0, 1}}{hint}")
    return x


class PixelCNN(nn.Module):
    """PixelCNN for binary images (one Bernoulli logit per pixel).

    Layers: a type-A masked ``first_kernel x first_kernel`` convolution, ``n_layers``
    residual blocks ``h + conv_B(relu(h))`` with 3x3 type-B masked convolutions, and two
    1x1 convolutions to a logit. ``forward(x)``: ``x (N, 1, H, W)`` in ``{0, 1}`` ->
    logits ``(N, 1, H, W)``; ``logits[..., r, c]`` parametrises
    ``p(x_rc = 1 | pixels before (r, c) in raster order)``.

    (The stacked 3x3 masks have a "blind spot" up and to the right that grows with
    depth; the gated PixelCNN fixes it with two stacks. At 16x16 it matters little.)
    """

    def __init__(self, channels: int = 48, n_layers: int = 6, first_kernel: int = 7):
        super().__init__()
        checks.positive_int(channels, "channels"); checks.positive_int(n_layers, "n_layers")
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.layers = nn.ModuleList(MaskedConv2d(channels, channels, 3, "B") for _ in range(n_layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_binary_images(x)
        h = self.first(2 * x - 1)          # inputs centred to {-1, +1}: (N, C, H, W)
        for conv in self.layers:
            h = h + conv(F.relu(h))        # residual: the centre of h is already "strictly before"
        return self.head(h)                # (N, 1, H, W) logits

    def log_prob_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_i | x_<i)`` of every pixel, in nats: ``(N, 1, H, W)``."""
        return -F.binary_cross_entropy_with_logits(self(x), x, reduction="none")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x)`` per image in nats, ``(N,)``: the chain rule's sum over pixels."""
        return self.log_prob_pixels(x).flatten(1).sum(1)


class BernoulliPixels:
    """The baseline: every pixel an independent coin, ``p(x) = prod_i q_i^x_i (1-q_i)^(1-x_i)``.

    ``fit(x)`` sets ``q_i`` to the training frequency of ink at pixel ``i`` with
    add-``alpha`` smoothing (so no test pixel gets probability 0).
    """

    def __init__(self, alpha: float = 1.0):
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha, self.q = float(alpha), None

    def fit(self, x: torch.Tensor) -> "BernoulliPixels":
        check_binary_images(x)
        self.q = (x.sum(0) + self.alpha) / (len(x) + 2 * self.alpha)  # (1, H, W)
        return self

    def _check(self, x):
        if self.q is None:
            raise ValueError("call fit() first")
        check_binary_images(x)
        if x.shape[1:] != self.q.shape:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, self.q.shape))}), got {tuple(x.shape)}")

    def log_prob_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_i)`` of every pixel (nats): ``(N, 1, H, W)``."""
        self._check(x)
        q = self.q.to(x.device)
        return x * q.log() + (1 - x) * (1 - q).log()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` per image (nats): ``(N,)``."""
        return self.log_prob_pixels(x).flatten(1).sum(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` images ``(n, 1, H, W)`` in ``{0, 1}``: every pixel an independent coin."""
        checks.positive_int(n, "n")
        if self.q is None:
            raise ValueError("call fit() first")
        return torch.bernoulli(self.q.expand(n, *self.q.shape), generator=generator)


def _known_mask(known, size: int, device) -> torch.Tensor:
    """A shared ``(H, W)`` bool mask of pixels that are given (not to be generated)."""
    if known is None:
        return torch.zeros(size, size, dtype=torch.bool, device=device)
    checks.tensor(known, "known")
    if known.shape != (size, size):
        raise ValueError(f"known must be a ({size}, {size}) boolean mask, got {tuple(known.shape)}")
    return known.to(device=device, dtype=torch.bool)


def _start_images(n, size, x, known, device):
    if x is None:
        if known.any():
            raise ValueError("known pixels need their values: pass x")
        return torch.zeros(n, 1, size, size, device=device)
    check_binary_images(x)
    if x.shape[-2:] != (size, size):
        raise ValueError(f"x must be {size}x{size}, got {tuple(x.shape[-2:])}")
    return x.to(device).clone()


def _sampling_start(model: nn.Module, n: int, size: int, x: torch.Tensor | None, known: torch.Tensor | None,
                    temperature: float) -> tuple[torch.device, torch.Tensor, torch.Tensor]:
    """What both samplers check and set up: ``(device, known (H, W) bool, images (n, 1, H, W))``."""
    checks.positive_int(n, "n"); checks.positive_int(size, "size")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    dev = next(model.parameters()).device
    known = _known_mask(known, size, dev)
    img = _start_images(n, size, x, known, dev)
    if len(img) != n:
        raise ValueError(f"x holds {len(img)} images, expected n={n}")
    return dev, known, img


@torch.no_grad()
def sample_raster(model: nn.Module, n: int, size: int = 16, x: torch.Tensor | None = None,
                  known: torch.Tensor | None = None, temperature: float = 1.0,
                  generator: torch.Generator | None = None, crop: bool = True) -> torch.Tensor:
    """Sequential decoding: draw pixels one at a time in raster order from ``model`` (a PixelCNN).

    Pixel ``i`` is drawn from ``p(x_i | x_<i)``, which needs one forward pass per pixel:
    ``size * size`` passes for a full sample. With ``known`` (an ``(H, W)`` bool mask
    shared by the batch) and ``x`` (``(n, 1, H, W)`` in ``{0, 1}``), the known pixels are
    kept and only the others are drawn (one pass each): "complete the bottom half given
    the top half". ``temperature`` divides the logits.

    ``crop`` (default): a pixel of row ``r`` is drawn from a pass over rows ``0..r`` only,
    not the whole image. For a causal convolutional net (the PixelCNN: masked
    convolutions with 'same' padding, then 1x1 convolutions) the output at row ``r``
    depends on rows ``<= r`` only, and the rows below -- cropped or zero-padded -- are
    hidden by the masks, so the logits and samples are the same as with
    ``crop=False``, at about half the cost of a full sample. Pass ``crop=False`` for a
    model whose output depends on the image height.
    Returns ``(n, 1, size, size)`` in ``{0, 1}``.
    """
    dev, known, img = _sampling_start(model, n, size, x, known, temperature)
    was_training = model.training
    model.eval()
    for i in range(size * size):
        r, c = divmod(i, size)
        if known[r, c]:
            continue
        inp = img[:, :, : r + 1] if crop else img                                        # rows 0..r
        p = torch.sigmoid(model(inp)[:, 0, r, c] / temperature)                          # (n,)
        img[:, 0, r, c] = torch.bernoulli(p.cpu(), generator=generator).to(dev)
    model.train(was_training)
    return img


# ============================================================================================
# 2. Parallel decoding: a MaskGIT-style masked-token model
# ============================================================================================

MASK = 2  # token value of a masked pixel (pixels are 0 or 1)


def masking_schedule(r) -> torch.Tensor:
    """MaskGIT's masking schedule ``gamma(r) = cos(pi r / 2)``: the fraction of tokens still
    masked at progress ``r`` in ``[0, 1]`` (1 at the start, 0 at the end)."""
    r = torch.as_tensor(r, dtype=torch.float64)
    checks.value_range(r, 0, 1, "r", tol=0)
    return torch.cos(math.pi / 2 * r)


class MaskedTokenModel(nn.Module):
    """A bidirectional masked-token model of binary images (MaskGIT-style, convolutional).

    ``forward(tokens)``: ``(N, 1, H, W)`` with values in ``{0, 1, MASK}`` -> logits
    ``(N, 1, H, W)`` of ``p(x_i = 1 | all unmasked tokens)``, for every position. Unlike
    the PixelCNN nothing is masked inside the network: every output sees the whole
    image (dilated 3x3 convolutions give a receptive field wider than 16x16).
    (MaskGIT uses a transformer over VQ tokens; the decoding algorithm is the same.)
    """

    def __init__(self, channels: int = 48, dilations: tuple = (1, 2, 4, 8, 1, 2)):
        super().__init__()
        checks.positive_int(channels, "channels")
        self.inp = nn.Conv2d(3, channels, 3, padding=1)       # one-hot {0, 1, MASK} -> features
        self.layers = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d) for d in dilations)
        self.norms = nn.ModuleList(nn.GroupNorm(8 if channels % 8 == 0 else 1, channels) for _ in dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        checks.tensor(tokens, "tokens")
        if tokens.dim() != 4 or tokens.shape[1] != 1:
            raise ValueError(f"tokens must have shape (N, 1, H, W), got {tuple(tokens.shape)}")
        if not ((tokens == 0) | (tokens == 1) | (tokens == MASK)).all():
            raise ValueError(f"tokens must hold 0, 1 or MASK={MASK}")
        onehot = F.one_hot(tokens[:, 0].long(), 3).permute(0, 3, 1, 2).float()         # (N, 3, H, W)
        h = self.inp(onehot)
        for conv, norm in zip(self.layers, self.norms):
            h = h + conv(F.relu(norm(h)))
        return self.head(h)


def random_masking(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MaskGIT training corruption: per image draw ``r ~ U(0, 1)`` and mask
    ``ceil(gamma(r) * D)`` random pixels (at least one), ``gamma`` the cosine schedule.

    ``x (N, 1, H, W)`` in ``{0, 1}`` -> ``(tokens, masked)``: tokens with ``MASK`` at the
    masked positions, and the bool mask ``(N, 1, H, W)``.
    """
    check_binary_images(x)
    N, D = len(x), x[0].numel()
    r = torch.rand(N, generator=generator)
    n_masked = torch.ceil(masking_schedule(r) * D).clamp(min=1).long()                    # (N,)
    scores = torch.rand(N, D, generator=generator)                                        # random order
    ranks = scores.argsort(1).argsort(1)                                                  # rank of each position
    masked = (ranks < n_masked[:, None]).reshape(x.shape).to(x.device)
    return torch.where(masked, torch.full_like(x, MASK), x), masked


def masked_token_loss(model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross-entropy (nats per masked token) of predicting the masked pixels: 0-d tensor."""
    tokens, masked = random_masking(x, generator)
    logits = model(tokens)
    return F.binary_cross_entropy_with_logits(logits[masked], x[masked])


def masking_counts(steps: int, n_tokens: int) -> list[int]:
    """How many tokens are still masked after each of ``steps`` decoding steps.

    ``floor(gamma((t+1)/steps) * n_tokens)`` for ``t = 0 .. steps-1``, adjusted so that
    every step unmasks at least one token: strictly decreasing, ending at 0. With
    ``steps == n_tokens`` every step unmasks exactly one (sequential decoding).
    """
    checks.positive_int(steps, "steps"); checks.positive_int(n_tokens, "n_tokens")
    if steps > n_tokens:
        raise ValueError(f"steps ({steps}) cannot exceed the number of tokens to decode ({n_tokens})")
    out, prev = [], n_tokens
    for t in range(steps):
        m = int(math.floor(float(masking_schedule((t + 1) / steps)) * n_tokens))
        m = max(min(m, prev - 1), steps - t - 1)  # unmask >= 1 now, leave >= 1 for each later step
        out.append(m)
        prev = m
    return out


@torch.no_grad()
def decode_parallel(model: nn.Module, n: int, steps: int, size: int = 16, x: torch.Tensor | None = None,
                    known: torch.Tensor | None = None, temperature: float = 1.0, choice_temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Scheduled parallel decoding (MaskGIT): all unknown pixels in exactly ``steps`` forward passes.

    Start with every unknown pixel masked. At step ``t`` one forward pass predicts all
    masked pixels at once; a value is drawn for each; the ones the model is most
    confident about are kept and the rest are masked again, so that
    ``masking_counts(steps, n_unknown)[t]`` remain masked. Confidence is the log-probability
    of the drawn value plus Gumbel noise scaled by ``choice_temperature * (1 - (t+1)/steps)``
    (MaskGIT's annealed randomness). ``steps = n_unknown`` is sequential decoding (one
    token per pass, the most confident first); a few steps decode many tokens per pass.
    ``known``/``x`` keep given pixels, as in :func:`sample_raster` -- but here they may be
    anywhere (the model is bidirectional). Returns ``(n, 1, size, size)`` in ``{0, 1}``.
    """
    if choice_temperature < 0:
        raise ValueError(f"choice_temperature must be >= 0, got {choice_temperature}")
    dev, known, img = _sampling_start(model, n, size, x, known, temperature)
    counts = masking_counts(steps, int((~known).sum()))
    tokens = torch.where(known, img, torch.full_like(img, MASK))                         # (n, 1, H, W)
    was_training = model.training
    model.eval()
    for t, n_keep_masked in enumerate(counts):
        masked = tokens == MASK
        logits = model(tokens) / temperature                                             # one forward pass
        p1 = torch.sigmoid(logits)
        draw = torch.bernoulli(p1.cpu(), generator=generator).to(dev)
        logp = torch.where(draw == 1, F.logsigmoid(logits), F.logsigmoid(-logits))       # log p(drawn value)
        u = torch.rand(logp.shape, generator=generator).clamp(1e-9, 1 - 1e-9).to(dev)
        conf = logp - choice_temperature * (1 - (t + 1) / steps) * torch.log(-torch.log(u))
        conf = torch.where(masked, conf, torch.full_like(conf, float("inf"))).flatten(1)  # decided stay decided
        # the n_keep_masked least confident of the masked positions stay masked
        order = conf.argsort(1)                                                          # ascending
        remask = torch.zeros_like(conf, dtype=torch.bool)
        remask.scatter_(1, order[:, :n_keep_masked], True)
        remask = remask.reshape(masked.shape)
        tokens = torch.where(masked & ~remask, draw, tokens)
    model.train(was_training)
    if (tokens == MASK).any():  # cannot happen: the last count is 0
        raise RuntimeError("decoding left masked tokens")
    return tokens


@contextlib.contextmanager
def count_forward_passes(model: nn.Module):
    """Count calls of ``model.forward`` inside a ``with`` block (a forward hook).

    >>> with count_forward_passes(net) as calls:
    ...     decode_parallel(net, 4, steps=8)
    >>> calls[0]
    8
    """
    calls = [0]

    def hook(*_):
        calls[0] += 1

    handle = model.register_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()
