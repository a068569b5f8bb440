"""Autoregressive models (introduced in chapter 4).

The chain rule writes any joint distribution as a product of conditionals,

    p(x_1, ..., x_n) = prod_i p(x_i | x_1, ..., x_{i-1}),

so a generative model can be "just a next-token classifier". This module holds
three such models, read top to bottom:

1. **Text** -- :class:`CharTokenizer` and :class:`NextTokenTransformer`, a tiny
   causal (GPT-style) transformer over characters; :func:`bits_per_token`,
   :func:`unigram_bits` (the baseline), :func:`score_text` (``log p("Once upon a
   time")``) and :func:`generate_text` with a temperature.
2. **Pixels** -- :class:`MaskedConv2d` (mask type A and B) and :class:`PixelCNN`
   for binary images, with the exact log-likelihood, raster-order sampling and
   completion (:func:`sample_raster`); :class:`BernoulliPixels` is the
   independent-pixel baseline.
3. **Parallel decoding** -- :class:`MaskedTokenModel`, a bidirectional
   masked-token model trained MaskGIT-style with a cosine masking schedule, and
   :func:`decode_parallel`, which fills in all pixels in exactly ``steps``
   forward passes (``steps = n_pixels`` is one token per step, i.e. sequential).

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
# 1. Text: a next-character model
# ============================================================================================

class CharTokenizer:
    """Characters <-> integer ids. Id 0 is ``BOS``, "beginning of sequence" (no context yet).

    The default alphabet is newline plus the 95 printable ASCII characters (space to ``~``),
    so ``vocab_size == 97``. ``encode`` refuses characters outside the alphabet with a
    ``ValueError`` naming them (``lib.data.text_corpus`` is already ASCII).
    """

    BOS = 0

    def __init__(self, alphabet: str | None = None):
        alphabet = "\n" + "".join(chr(c) for c in range(32, 127)) if alphabet is None else alphabet
        if not isinstance(alphabet, str) or not alphabet or len(set(alphabet)) != len(alphabet):
            raise ValueError("alphabet must be a non-empty string of distinct characters")
        self.alphabet = alphabet
        self.index = {ch: i + 1 for i, ch in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 1

    def encode(self, text: str) -> torch.Tensor:
        """``text`` -> int64 ids of shape ``(len(text),)`` in ``1 .. vocab_size-1`` (no BOS added)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"characters not in the alphabet: {unknown[:10]!r}")
        return torch.tensor([self.index[ch] for ch in text], dtype=torch.int64)

    def decode(self, ids) -> str:
        """Ids (a tensor or list) -> text; BOS ids are skipped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), got {min(ids)}..{max(ids)}")
        return "".join(self.alphabet[i - 1] for i in ids if i != self.BOS)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention; with ``causal=True`` position t only sees positions <= t.

    ``(B, T, d_model) -> (B, T, d_model)``.
    """

    def __init__(self, d_model: int, n_heads: int, causal: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.causal = n_heads, causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, h, T, C/h)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # softmax(q k^T / sqrt(d)) v, masked
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, d_model: int, n_heads: int, causal: bool = True):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, causal)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class NextTokenTransformer(nn.Module):
    """A tiny GPT: token + position embeddings, ``n_layers`` causal blocks, a linear head.

    ``forward(idx)``: int64 ids ``(B, T)`` with ``T <= context`` -> logits ``(B, T, vocab_size)``;
    ``logits[:, t]`` parametrises ``p(x_{t+1} | idx[:, :t+1])`` and depends only on
    ``idx[:, :t+1]`` (causal attention).
    """

    def __init__(self, vocab_size: int, context: int = 64, d_model: int = 96, n_layers: int = 3,
                 n_heads: int = 4):
        super().__init__()
        checks.positive_int(vocab_size, "vocab_size"); checks.positive_int(context, "context")
        self.vocab_size, self.context = vocab_size, context
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.zeros(1, context, d_model))
        self.blocks = nn.Sequential(*[Block(d_model, n_heads, causal=True) for _ in range(n_layers)])
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        checks.tensor(idx, "idx")
        if idx.dim() != 2 or idx.dtype != torch.int64:
            raise ValueError(f"idx must be int64 token ids of shape (B, T), got {idx.dtype} {tuple(idx.shape)}")
        if idx.shape[1] > self.context:
            raise ValueError(f"sequence length {idx.shape[1]} exceeds the model's context {self.context}")
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size})")
        h = self.tok(idx) + self.pos[:, :idx.shape[1]]  # (B, T, d_model)
        return self.head(self.ln(self.blocks(h)))        # (B, T, vocab_size)


def _ids(ids: torch.Tensor, name: str = "ids") -> torch.Tensor:
    checks.tensor(ids, name)
    if ids.dim() != 1 or ids.dtype != torch.int64:
        raise ValueError(f"{name} must be a 1-D int64 tensor of token ids, got {ids.dtype} {tuple(ids.shape)}")
    return ids


def text_batch(ids: torch.Tensor, context: int, batch_size: int,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A random training batch of ``batch_size`` windows from a token stream ``ids (L,)``.

    Returns ``(inputs, targets)``, both ``(batch_size, context)``: a window
    ``c_1 .. c_T`` of the stream becomes inputs ``[BOS, c_1, .., c_{T-1}]`` and targets
    ``[c_1, .., c_T]`` -- the model learns to predict every character from the ones
    before it in the window (BOS means "nothing before").
    """
    _ids(ids); checks.positive_int(context, "context"); checks.positive_int(batch_size, "batch_size")
    if len(ids) < context:
        raise ValueError(f"the stream ({len(ids)} tokens) is shorter than the context ({context})")
    start = torch.randint(0, len(ids) - context + 1, (batch_size,), generator=generator)
    targets = torch.stack([ids[s:s + context] for s in start.tolist()])                     # (B, T)
    bos = torch.full((batch_size, 1), CharTokenizer.BOS, dtype=torch.int64)
    return torch.cat([bos, targets[:, :-1]], 1), targets


def next_token_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of the next-token classifier: a 0-d tensor."""
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def bits_per_token(model: NextTokenTransformer, ids: torch.Tensor, batch_size: int = 64) -> float:
    """Held-out cross-entropy of ``model`` on a stream ``ids (L,)``, in bits per token.

    The stream is cut into consecutive windows of ``model.context`` tokens, each
    read from BOS, as in training (the last partial window is scored too);
    the result is ``-(1/L) sum_t log2 p(c_t | window before t)``.
    """
    _ids(ids)
    dev = next(model.parameters()).device
    T, total = model.context, 0.0
    was_training = model.training
    model.eval()
    windows = [ids[s:s + T] for s in range(0, len(ids), T)]
    for i in range(0, len(windows), batch_size):
        for w in _group_by_length(windows[i:i + batch_size]):
            tgt = torch.stack(w).to(dev)                                                  # (b, t)
            inp = torch.cat([torch.full_like(tgt[:, :1], CharTokenizer.BOS), tgt[:, :-1]], 1)
            logits = model(inp)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="sum").item()
    model.train(was_training)
    return total / (len(ids) * math.log(2))


def _group_by_length(windows):
    groups: dict[int, list] = {}
    for w in windows:
        groups.setdefault(len(w), []).append(w)
    return groups.values()


def unigram_probs(ids: torch.Tensor, vocab_size: int, alpha: float = 1.0) -> torch.Tensor:
    """Character frequencies with add-``alpha`` smoothing: ``(vocab_size,)``, summing to 1.

    BOS (id 0) is never a target, so it gets probability 0.
    """
    _ids(ids); checks.positive_int(vocab_size, "vocab_size")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    counts = torch.bincount(ids, minlength=vocab_size).double()[:vocab_size] + alpha
    counts[CharTokenizer.BOS] = 0
    return counts / counts.sum()


def unigram_bits(train_ids: torch.Tensor, test_ids: torch.Tensor, vocab_size: int, alpha: float = 1.0) -> float:
    """The baseline: bits per token of ``test_ids`` under the training character frequencies
    (every character drawn independently, no context at all)."""
    p = unigram_probs(train_ids, vocab_size, alpha)
    _ids(test_ids, "test_ids")
    return float(-p[test_ids].log2().mean())


def _context_window(history: list[int], context: int) -> torch.Tensor:
    """The model's input to predict the next token: ``[BOS] + the last context-1 tokens`` as ``(1, t)``."""
    recent = history[-(context - 1):] if context > 1 else []
    return torch.tensor([[CharTokenizer.BOS] + recent], dtype=torch.int64)


@torch.no_grad()
def score_text(model: NextTokenTransformer, tokenizer: CharTokenizer, text: str) -> torch.Tensor:
    """Log-probabilities (nats) of each character of ``text`` given the ones before it: ``(len(text),)``.

    Their sum is ``log p(text)`` by the chain rule (the text is read from BOS, i.e.
    with no preceding context). Texts longer than the context are scored with a
    sliding window of the last ``context - 1`` characters.
    """
    ids = tokenizer.encode(text)
    if len(ids) == 0:
        raise ValueError("text must not be empty")
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    T = model.context
    inp = torch.cat([torch.tensor([CharTokenizer.BOS]), ids])
    out = torch.empty(len(ids))
    if len(ids) <= T:  # one forward pass scores every character
        logp = model(inp[None, :len(ids)].to(dev)).log_softmax(-1)[0]                  # (L, V)
        out = logp.gather(1, ids.to(dev)[:, None])[:, 0].cpu()
    else:
        hist = ids.tolist()
        for t in range(len(ids)):
            logp = model(_context_window(hist[:t], T).to(dev))[0, -1].log_softmax(-1)
            out[t] = logp[hist[t]].cpu()
    model.train(was_training)
    return out


def sample_logits(logits: torch.Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one index per row from ``softmax(logits / temperature)``: ``(..., V) -> (...)``.

    ``temperature`` 1 samples the model; below 1 sharpens (safer, more repetitive),
    above 1 flattens (more surprising, more errors); 0 is greedy (argmax).
    """
    checks.tensor(logits, "logits")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if temperature == 0:
        return logits.argmax(-1)
    probs = (logits.float() / temperature).softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1]).cpu()
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1]).to(logits.device)


@torch.no_grad()
def generate_text(model: NextTokenTransformer, tokenizer: CharTokenizer, prompt: str = "",
                  n_chars: int = 200, temperature: float = 1.0, generator: torch.Generator | None = None) -> str:
    """Continue ``prompt`` by ``n_chars`` characters, one forward pass per character.

    Each new character is drawn from ``p(c | last context-1 characters)`` at the given
    ``temperature`` (see :func:`sample_logits`) and appended: sequential decoding.
    Returns the prompt followed by the continuation.
    """
    checks.positive_int(n_chars, "n_chars")
    hist = tokenizer.encode(prompt).tolist()
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for _ in range(n_chars):
        logits = model(_context_window(hist, model.context).to(dev))[0, -1]              # (V,)
        logits[CharTokenizer.BOS] = -float("inf")                                          # never emit BOS
        hist.append(int(sample_logits(logits, temperature, generator)))
    model.train(was_training)
    return tokenizer.decode(hist)


# ============================================================================================
# 2. Pixels: masked convolutions and the PixelCNN
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


@torch.no_grad()
def sample_raster(model: nn.Module, n: int, size: int = 16, x: torch.Tensor | None = None,
                  known: torch.Tensor | None = None, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Sequential decoding: draw pixels one at a time in raster order from ``model`` (a PixelCNN).

    Pixel ``i`` is drawn from ``p(x_i | x_<i)``, which needs one forward pass of the whole
    image per pixel: ``size * size`` passes for a full sample. With ``known`` (an
    ``(H, W)`` bool mask shared by the batch) and ``x`` (``(n, 1, H, W)`` in ``{0, 1}``),
    the known pixels are kept and only the others are drawn (one pass each):
    "complete the bottom half given the top half". ``temperature`` divides the logits.
    Returns ``(n, 1, size, size)`` in ``{0, 1}``.
    """
    checks.positive_int(n, "n"); checks.positive_int(size, "size")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    dev = next(model.parameters()).device
    known = _known_mask(known, size, dev)
    img = _start_images(n, size, x, known, dev)
    if len(img) != n:
        raise ValueError(f"x holds {len(img)} images, expected n={n}")
    was_training = model.training
    model.eval()
    for i in range(size * size):
        r, c = divmod(i, size)
        if known[r, c]:
            continue
        p = torch.sigmoid(model(img)[:, 0, r, c] / temperature)                          # (n,)
        img[:, 0, r, c] = torch.bernoulli(p.cpu(), generator=generator).to(dev)
    model.train(was_training)
    return img


# ============================================================================================
# 3. Parallel decoding: a MaskGIT-style masked-token model
# ============================================================================================

MASK = 2  # token value of a masked pixel (pixels are 0 or 1)


def cosine_schedule(r) -> torch.Tensor:
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
    n_masked = torch.ceil(cosine_schedule(r) * D).clamp(min=1).long()                    # (N,)
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
        m = int(math.floor(float(cosine_schedule((t + 1) / steps)) * n_tokens))
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
    checks.positive_int(n, "n"); checks.positive_int(size, "size")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if choice_temperature < 0:
        raise ValueError(f"choice_temperature must be >= 0, got {choice_temperature}")
    dev = next(model.parameters()).device
    known = _known_mask(known, size, dev)
    img = _start_images(n, size, x, known, dev)
    if len(img) != n:
        raise ValueError(f"x holds {len(img)} images, expected n={n}")
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
