"""Shared network building blocks (introduced in chapters 4 and 5; reused by chapters 6 to 10).

* :func:`mlp` -- a multilayer perceptron (linear layers, an activation between them);
* :class:`SelfAttention` and :class:`TransformerBlock` -- multi-head self-attention (causal or
  bidirectional, with an optional padding mask) and the pre-norm transformer block, shared by
  the next-token model (chapter 4) and CLIP's text encoder (chapter 9);
* :func:`sinusoidal_embedding` -- a time step ``t`` as a vector of sines and cosines;
* :class:`MLPDenoiser` -- predicts the noise of 2-D points ``(N, D)`` at step ``t``;
* :class:`ResBlock` and :class:`UNet` -- the time-conditioned residual block and the small
  diffusion U-Net for images ``(N, C, 16, 16)`` or ``(N, C, 32, 32)`` with a time embedding and
  an optional condition (a class label or a vector, e.g. a text embedding), in the spirit of Ho
  et al.'s (2020) PixelCNN++-style U-Net, scaled down to run on a CPU. These take ``(x, t)`` or
  ``(x, t, y)`` and return a tensor shaped like ``x``;
* :class:`ImageUNet` -- the image-to-image U-Net (pix2pix's generator, chapter 8): no time step,
  skip connections between mirror levels, tanh output;
* :class:`PatchDiscriminator` -- the PatchGAN discriminator, a grid of real/fake logits, one per
  patch (chapters 8 and 10);
* :class:`EMA` -- an exponential moving average of a model's weights.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks


def mlp(sizes: list[int] | tuple[int, ...], act: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    """A multilayer perceptron ``(N, sizes[0]) -> (N, sizes[-1])``: ``nn.Linear`` layers with
    ``act()`` between them and none after the last (``mlp([2, 64, 64, 1], nn.SiLU)``)."""
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2 or any(
            not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive ints (input, hidden..., output), got {sizes}")
    if not callable(act):
        raise TypeError(f"act must make an activation module (e.g. nn.ReLU), got {act!r}")
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers[:-1])


class SelfAttention(nn.Module):
    """Multi-head self-attention ``(B, T, d_model) -> (B, T, d_model)``; with ``causal=True``
    position t only sees positions <= t. ``forward(x, pad)``: an optional bool ``pad (B, T)``,
    True at padding positions, which no position attends to."""

    def __init__(self, d_model: int, n_heads: int, causal: bool = True):
        super().__init__()
        checks.positive_int(d_model, "d_model"); checks.positive_int(n_heads, "n_heads")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.causal = n_heads, causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, h, T, C/h)
        mask = None if pad is None else ~pad[:, None, None, :]         # (B, 1, 1, T): True = may attend
        # softmax(q k^T / sqrt(d)) v, masked
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and mask is None)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block ``(B, T, d_model) -> (B, T, d_model)``: ``x + attn(ln(x))``,
    then ``x + mlp(ln(x))`` with a GELU MLP of width ``mlp_ratio * d_model``. ``causal``: each
    position sees only the ones before it (a next-token model); ``forward(x, pad)`` takes an
    optional bool padding mask ``(B, T)`` (True = padding, not attended to)."""

    def __init__(self, d_model: int, n_heads: int, causal: bool = True, mlp_ratio: int = 4):
        super().__init__()
        checks.positive_int(mlp_ratio, "mlp_ratio")
        self.d_model = d_model
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, causal)
        self.mlp = mlp([d_model, mlp_ratio * d_model, d_model], act=nn.GELU)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        checks.tensor(x, "x")
        if x.dim() != 3 or x.shape[2] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        if pad is not None and (pad.dtype != torch.bool or pad.shape != x.shape[:2]):
            raise ValueError(f"pad must be a bool mask of shape {tuple(x.shape[:2])}, got {pad.dtype} {tuple(pad.shape)}")
        if pad is not None and self.attn.causal:
            raise ValueError("a padding mask goes with causal=False (a causal model pads at the end)")
        x = x + self.attn(self.ln1(x), pad)
        return x + self.mlp(self.ln2(x))


class TemporalAttention(nn.Module):
    """Attention *across the frames of a clip*, at every pixel on its own (the temporal half of a
    factorised space-time layer, Ho et al.'s Video Diffusion Models):
    ``forward(h (N * frames, C, H, W), video (N,) bool or None) -> same shape``.

    The ``N * frames`` feature maps are the frames of ``N`` clips, frame-major within a clip.
    Each pixel's ``frames`` feature vectors, plus a learned embedding of the frame index, are
    one sequence for :class:`SelfAttention` (bidirectional); the result is added back
    (residual). The output projection starts at zero, so the layer starts as the identity.
    ``video`` False for a clip switches the layer off for its frames (they stay independent
    images: joint training on images and videos); ``None`` = on for all.
    """

    def __init__(self, channels: int, frames: int, heads: int = 4, groups: int = 8):
        super().__init__()
        checks.positive_int(channels, "channels"); checks.positive_int(frames, "frames")
        self.frames = frames
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.pos = nn.Parameter(torch.randn(frames, channels) * 0.02)
        self.attn = SelfAttention(channels, heads, causal=False)
        nn.init.zeros_(self.attn.proj.weight); nn.init.zeros_(self.attn.proj.bias)

    def forward(self, h: torch.Tensor, video: torch.Tensor | None = None) -> torch.Tensor:
        NF, C, H, W = h.shape
        F_ = self.frames
        if NF % F_:
            raise ValueError(f"the batch ({NF}) must hold whole clips of {F_} frames")
        n = NF // F_
        x = self.norm(h).view(n, F_, C, H, W).permute(0, 3, 4, 1, 2).reshape(n * H * W, F_, C)
        y = self.attn(x + self.pos)                                   # (n*H*W, frames, C)
        y = y.view(n, H, W, F_, C).permute(0, 3, 4, 1, 2)             # (n, frames, C, H, W)
        if video is not None:
            checks.shape(video, (n,), "video")
            y = y * video.to(y.dtype).view(n, 1, 1, 1, 1)
        return h + y.reshape(NF, C, H, W)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style embedding of time steps ``t (N,)`` (ints or floats) -> ``(N, dim)``.

    Entry ``k < dim/2`` is ``cos(t * f_k)`` and entry ``dim/2 + k`` is ``sin(t * f_k)``, with
    frequencies ``f_k = max_period^(-k / (dim/2))`` from 1 down to about ``1 / max_period``:
    nearby steps get similar vectors, distant steps nearly orthogonal ones. ``dim`` must be even.
    """
    checks.tensor(t, "t")
    checks.positive_int(dim, "dim")
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    if t.dim() != 1:
        raise ValueError(f"t must have shape (N,), got {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]                     # (N, dim/2)
    return torch.cat([torch.cos(args), torch.sin(args)], 1)      # (N, dim)


class MLPDenoiser(nn.Module):
    """Noise predictor for points: ``forward(x (N, D), t (N,)) -> eps_hat (N, D)``.

    The time embedding (sinusoidal, then a linear layer) is added to every hidden layer,
    so each layer can behave differently at each noise level.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, layers: int = 3, t_dim: int = 32):
        super().__init__()
        checks.positive_int(dim, "dim"); checks.positive_int(hidden, "hidden"); checks.positive_int(layers, "layers")
        self.dim, self.t_dim = dim, t_dim
        self.inp = nn.Linear(dim, hidden)
        self.t_proj = nn.ModuleList(nn.Linear(t_dim, hidden) for _ in range(layers))
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        checks.shape(x, (None, self.dim), "x")
        emb = sinusoidal_embedding(t, self.t_dim)                 # (N, t_dim)
        h = self.inp(x)                                           # (N, hidden)
        for lin, tp in zip(self.hidden, self.t_proj):
            h = lin(F.silu(h + tp(emb)))
        return self.out(F.silu(h))                                # (N, dim)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm + SiLU and a residual path; the embedding
    ``emb (N, E)`` is projected and added as a per-channel bias between them.
    ``forward(x (N, c_in, H, W), emb) -> (N, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """A small U-Net noise predictor: ``forward(x (N, C, H, W), t (N,), y=None) -> (N, C, H, W)``.

    ``H = W`` must be divisible by ``2 ** (len(mults) - 1)`` (16 and 32 work with the defaults).
    Each resolution has one :class:`ResBlock` on the way down and one on the way up (which also
    reads the skip connection); the channel width at level ``i`` is ``base * mults[i]``.

    Conditioning (optional, for chapter 9's guided models): ``num_classes`` adds a label
    embedding (``y`` a long tensor ``(N,)`` in ``0 .. num_classes - 1``), ``cond_dim`` a linear
    map of a condition vector (``y`` float ``(N, cond_dim)``). Either is added to the time
    embedding. ``y=None`` means "no condition" (a learned null embedding for labels, zero for
    vectors), which is what classifier-free guidance needs; ``p_uncond`` during training is the
    caller's job (replace some ``y`` by ``None`` rows via :meth:`drop_condition`).

    Video (optional, chapter 9's text-to-video): ``frames`` adds a :class:`TemporalAttention`
    after every block, so the batch is ``N`` clips of ``frames`` frames (``N * frames`` images,
    frame-major within a clip): the 2-D convolutions see each frame, the temporal attention
    connects them (space and time factorised), and a learned embedding of the frame index joins
    the time embedding. ``forward(..., video=...)`` switches both off per clip (``(N,)`` bool;
    ``None`` = on): such a clip is ``frames`` independent images.
    """

    def __init__(self, in_ch: int = 1, base: int = 32, mults: tuple = (1, 2, 2), t_dim: int = 64,
                 num_classes: int | None = None, cond_dim: int | None = None, frames: int | None = None):
        super().__init__()
        checks.positive_int(in_ch, "in_ch"); checks.positive_int(base, "base")
        if num_classes is not None and cond_dim is not None:
            raise ValueError("give num_classes (labels) or cond_dim (vectors), not both")
        self.in_ch, self.t_dim, self.levels = in_ch, t_dim, len(mults)
        self.num_classes, self.cond_dim = num_classes, cond_dim
        emb = 4 * base
        self.t_mlp = mlp([t_dim, emb, emb], act=nn.SiLU)
        if num_classes is not None:
            checks.positive_int(num_classes, "num_classes")
            self.label_emb = nn.Embedding(num_classes + 1, emb)       # index num_classes = "no label"
        if cond_dim is not None:
            checks.positive_int(cond_dim, "cond_dim")
            self.cond_proj = nn.Linear(cond_dim, emb)
        widths = [base * m for m in mults]
        self.inp = nn.Conv2d(in_ch, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        c = widths[0]
        for w in widths:
            self.down.append(ResBlock(c, w, emb))
            c = w
        self.mid = ResBlock(c, c, emb)
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(ResBlock(c + w, w, emb))
            c = w
        self.frames = frames
        if frames is not None:   # one temporal layer after each block: down, mid, up
            self.temporal = nn.ModuleList(TemporalAttention(b.conv2.out_channels, frames)
                                          for b in [*self.down, self.mid, *self.up])
            self.frame_emb = nn.Parameter(torch.zeros(frames, emb))  # which frame: added to e
        self.out_norm = nn.GroupNorm(min(8, c), c)
        self.out = nn.Conv2d(c, in_ch, 3, padding=1)
        nn.init.zeros_(self.out.weight); nn.init.zeros_(self.out.bias)  # start by predicting eps = 0

    def embed(self, t: torch.Tensor, y=None) -> torch.Tensor:
        """Time (+ condition) embedding ``(N, 4 * base)``."""
        e = self.t_mlp(sinusoidal_embedding(t, self.t_dim))
        if self.num_classes is not None:
            if y is None:
                y = torch.full((len(t),), self.num_classes, dtype=torch.long, device=t.device)
            checks.tensor(y, "y")
            if y.dtype != torch.long or y.shape != (len(t),):
                raise ValueError(f"y must be a long tensor of labels ({len(t)},), got {y.dtype} {tuple(y.shape)}")
            if len(y) and (y.min() < 0 or y.max() > self.num_classes):
                raise ValueError(f"labels must lie in 0 .. {self.num_classes - 1} (or {self.num_classes} = none)")
            e = e + self.label_emb(y)
        elif self.cond_dim is not None:
            if y is None:  # "no condition" is the zero vector, exactly what drop_condition trains on
                y = torch.zeros(len(t), self.cond_dim, device=t.device)
            checks.shape(y, (len(t), self.cond_dim), "y")
            e = e + self.cond_proj(y.float())
        elif y is not None:
            raise ValueError("this UNet was built without num_classes/cond_dim; it takes no condition y")
        return e

    def drop_condition(self, y: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """For classifier-free guidance training: replace each label by "no label" with probability ``p``
        (label models only; for vector conditions, zero rows instead)."""
        checks.probability(p, "p")
        drop = torch.rand(len(y), generator=generator).to(y.device) < p
        if self.num_classes is not None:
            return torch.where(drop, torch.full_like(y, self.num_classes), y)
        return y * (~drop).to(y.dtype).reshape(-1, *([1] * (y.dim() - 1)))

    def _time(self, h: torch.Tensor, k: int, video) -> torch.Tensor:
        """The ``k``-th temporal layer (identity for an image U-Net)."""
        return h if self.frames is None else self.temporal[k](h, video)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None, video: torch.Tensor | None = None) -> torch.Tensor:
        checks.tensor(x, "x")
        if video is not None and self.frames is None:
            raise ValueError("this UNet was built without frames; it takes no video mask")
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"x must have shape (N, {self.in_ch}, H, W), got {tuple(x.shape)}")
        f = 2 ** (self.levels - 1)
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"H and W must be divisible by {f}, got {tuple(x.shape[2:])}")
        checks.shape(t, (len(x),), "t")
        e = self.embed(t, y)                                       # (N, E)
        if self.frames is not None:                                # + the frame's index, in video mode
            if len(x) % self.frames:
                raise ValueError(f"the batch ({len(x)}) must hold whole clips of {self.frames} frames")
            on = torch.ones(len(x) // self.frames, device=x.device) if video is None else video.to(e.dtype)
            e = e + (on[:, None, None] * self.frame_emb).reshape(len(x), -1)
        h = self.inp(x)                                            # (N, base*m0, H, W)
        skips = []
        k = iter(range(2 * self.levels + 1))                       # the temporal layers, in order
        for i, block in enumerate(self.down):
            h = self._time(block(h, e), next(k), video)
            skips.append(h)
            if i < self.levels - 1:
                h = F.avg_pool2d(h, 2)                             # halve H, W
        h = self._time(self.mid(h, e), next(k), video)
        for i, block in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = self._time(block(torch.cat([h, skips.pop()], 1), e), next(k), video)
        return self.out(F.silu(self.out_norm(h)))                  # (N, C, H, W)


class ImageUNet(nn.Module):
    """Image-to-image U-Net generator ``(N, in_ch, H, W) -> (N, out_ch, H, W)`` in ``[-1, 1]``
    (Ronneberger et al. 2015; pix2pix's generator, Isola et al. 2017). No time input: the
    diffusion U-Net is :class:`UNet`.

    ``depth`` stride-2 convolutions (kernel 4, padding 1) halve the size down to
    ``H / 2**depth``; ``depth`` transposed convolutions double it back, and the decoder at
    each scale sees the encoder's features of the same scale concatenated to its own (the
    skip connections). ``H`` and ``W`` must therefore be multiples of ``2**depth``; other
    sizes raise ``ValueError`` (no silent cropping). Channels: ``ngf * 2**i``, capped at
    ``max_ch``. ``skips=False`` gives the plain encoder-decoder of the pix2pix paper's
    ablation (everything must pass the bottleneck). BatchNorm everywhere except the
    outermost layers and the bottleneck, LeakyReLU(0.2) down, ReLU up, tanh out.

    ``norm="instance"`` puts InstanceNorm (with a learned scale and shift) where BatchNorm
    was: the normalisation of pix2pixHD, whose effect on flat layouts SPADE is about
    (chapter 10); ``out="logits"`` drops the final tanh (a segmentation net's class scores).
    """

    NORMS = ("batch", "instance")
    OUTS = ("tanh", "logits")

    def __init__(self, in_ch: int = 1, out_ch: int = 1, ngf: int = 32, depth: int = 5,
                 max_ch: int = 256, skips: bool = True, norm: str = "batch", out: str = "tanh"):
        super().__init__()
        for v, nm in ((in_ch, "in_ch"), (out_ch, "out_ch"), (ngf, "ngf"), (depth, "depth"), (max_ch, "max_ch")):
            checks.positive_int(v, nm)
        checks.choice(norm, self.NORMS, "norm")
        checks.choice(out, self.OUTS, "out")
        Norm = nn.BatchNorm2d if norm == "batch" else (lambda c: nn.InstanceNorm2d(c, affine=True))
        self.in_ch, self.out_ch, self.depth, self.skips = in_ch, out_ch, depth, bool(skips)
        ch = [min(ngf * 2 ** i, max_ch) for i in range(depth)]        # encoder output channels per level
        self.down = nn.ModuleList()
        prev = in_ch
        for i, c in enumerate(ch):
            normed = 0 < i < depth - 1                                 # no norm on the first layer and the 1x1 bottleneck
            self.down.append(nn.Sequential(
                *([] if i == 0 else [nn.LeakyReLU(0.2)]),
                nn.Conv2d(prev, c, 4, 2, 1, bias=not normed),
                *([Norm(c)] if normed else [])))
            prev = c
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):                               # level i doubles size back to level i-1
            c_in = ch[i] * (2 if (self.skips and i < depth - 1) else 1)
            last = i == 0
            c_out = out_ch if last else ch[i - 1]
            self.up.append(nn.Sequential(
                nn.ReLU(),
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=last),
                *(([nn.Tanh()] if out == "tanh" else []) if last else [Norm(c_out)])))

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
        return h                                                       # (N, out_ch, H, W) in [-1, 1] (tanh)


class PatchDiscriminator(nn.Module):
    """PatchGAN ``D(*images)``: concatenates its inputs along channels, returns a logit grid ``(N, 1, h, w)``.

    pix2pix's design (Isola et al. 2017), all convolutions with padding 1: a stride-2 convolution
    (kernel 4) to ``ndf`` channels, ``n_layers - 1`` more stride-2 convolutions (kernel 4) and one
    stride-1 convolution (channels
    ``ndf * min(2**i, max_mult)``), then a stride-1 convolution to one channel; LeakyReLU(0.2)
    between layers. Each output logit judges one patch of the input, of size
    :func:`lib.translation.receptive_field` = 16, 34, 70, 142, 286 for ``n_layers`` = 1 .. 5.
    ``n_layers=0`` is the *PixelGAN*: 1x1 convolutions only, each logit judges one pixel.
    ``in_ch`` is the total number of channels of the concatenated inputs (e.g. 1 + 1 for an
    edge map and a grey photo; image + condition for a conditional GAN).

    Options: ``norm=True`` puts BatchNorm on all but the first and last layers (pix2pix; the
    convolutions before a norm have no bias); ``tail_kernel`` is the kernel of the stride-1
    layers (4 in pix2pix). Chapter 10's restoration GANs use the lighter
    ``PatchDiscriminator(c, w, n_layers=2, norm=False, max_mult=2, tail_kernel=3)``: no norm,
    widths ``w, 2w, 2w``, 3x3 stride-1 layers, a ``(N, 1, H/4, W/4)`` grid.
    """

    def __init__(self, in_ch: int = 2, ndf: int = 32, n_layers: int = 3, norm: bool = True,
                 max_mult: int = 8, tail_kernel: int = 4):
        super().__init__()
        checks.positive_int(in_ch, "in_ch"); checks.positive_int(ndf, "ndf")
        checks.positive_int(max_mult, "max_mult"); checks.positive_int(tail_kernel, "tail_kernel")
        if isinstance(n_layers, bool) or not isinstance(n_layers, int):
            raise TypeError(f"n_layers must be an int, got {type(n_layers).__name__}")
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        self.in_ch, self.n_layers = in_ch, n_layers

        def block(c_in, c_out, k, s, p):                               # conv (+ BN) + LeakyReLU
            return [nn.Conv2d(c_in, c_out, k, s, p, bias=not norm),
                    *([nn.BatchNorm2d(c_out)] if norm else []), nn.LeakyReLU(0.2)]

        if n_layers == 0:                                              # PixelGAN
            layers = [nn.Conv2d(in_ch, ndf, 1), nn.LeakyReLU(0.2), *block(ndf, 2 * ndf, 1, 1, 0),
                      nn.Conv2d(2 * ndf, 1, 1)]
        else:
            layers = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = ndf
            for i in range(1, n_layers + 1):                           # n_layers-1 more stride-2, then one stride-1
                c_next = ndf * min(2 ** i, max_mult)
                k, stride = (4, 2) if i < n_layers else (tail_kernel, 1)
                layers += block(c, c_next, k, stride, 1)
                c = c_next
            layers += [nn.Conv2d(c, 1, tail_kernel, 1, 1)]
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


class EMA:
    """Exponential moving average of a model's weights, the usual way to get clean diffusion samples.

    ``ema = EMA(model, decay)``; call ``ema.update(model)`` after every optimiser step;
    ``ema.model`` is a frozen copy whose parameters follow ``p_ema <- d p_ema + (1 - d) p`` with
    the warm-up ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (early weights are
    forgotten quickly). Sample from ``ema.model``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.995):
        if not 0 < decay < 1:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay, self.n = float(decay), 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.lerp_(p.detach(), 1 - d)
        for be, b in zip(self.model.buffers(), model.buffers()):
            be.copy_(b)
        self.n += 1
