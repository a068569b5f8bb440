"""Autoregressive models of text (introduced in chapter 4).

The chain rule writes any joint distribution as a product of conditionals,

    p(x_1, ..., x_n) = prod_i p(x_i | x_1, ..., x_{i-1}),

so a generative model can be "just a next-token classifier". This module holds
the text model: :class:`CharTokenizer` and :class:`NextTokenTransformer`, a tiny
causal (GPT-style) transformer over characters (its blocks are :class:`lib.nets.TransformerBlock`); :func:`bits_per_token`,
:func:`unigram_bits` (the baseline), :func:`score_text` (``log p("Once upon a
time")``) and :func:`generate_text` with a temperature. The autoregressive models
of pixels (PixelCNN) and their parallel, MaskGIT-style decoding are in
:mod:`lib.pixelcnn`.

Log-probabilities are in nats unless a name says bits.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks, nets


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
        self.blocks = nn.Sequential(*[nets.TransformerBlock(d_model, n_heads, causal=True) for _ in range(n_layers)])
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
