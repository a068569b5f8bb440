"""Checks for chapter 4's exercises (autoregressive models: next-token prediction, PixelCNN,
MaskGIT)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .. import checks
from ..autoregressive import CharTokenizer
from . import NotYet, checker, close, expect, number

# --- 4.1 next_token ---------------------------------------------------------------------


def _ids(x, name: str) -> torch.Tensor:
    checks.tensor(x, name)
    if x.dim() != 1 or x.dtype != torch.int64 or len(x) < 2:
        raise ValueError(
            f"{name} must be a 1-d int64 tensor of token ids (tok.encode(text))"
        )
    return x


@checker("ch04-bigram")
def bigram(*, train_ids, test_ids, vocab_size, test_bits, bigram, share) -> str:
    """``bigram``: held-out bits per character of the add-one-smoothed bigram model estimated
    on ``train_ids``; ``share``: the fraction of the transformer's saving over the unigram
    (``test_bits`` is the transformer's held-out bits/char) that the bigram already gives."""
    train_ids, test_ids = _ids(train_ids, "train_ids"), _ids(test_ids, "test_ids")
    V = checks.positive_int(vocab_size, "vocab_size")
    counts = torch.ones(V, V, dtype=torch.float64)
    counts.index_put_(
        (train_ids[:-1], train_ids[1:]),
        torch.ones(len(train_ids) - 1, dtype=torch.float64),
        accumulate=True,
    )
    p = counts / counts.sum(1, keepdim=True)
    ref = float(-p[test_ids[:-1], test_ids[1:]].log2().mean())
    freq = torch.bincount(train_ids, minlength=V).double() + 1
    unigram = float(-(freq / freq.sum())[test_ids].log2().mean())
    b = number(bigram, "bigram")
    expect(
        b > 0,
        "a cross-entropy is a mean of -log2 p over the held-out characters: it is positive",
    )
    if abs(b - ref) > 0.01 * ref and abs(b - ref * math.log(2)) <= 0.01 * ref:
        raise NotYet(
            "bigram looks like nats per character: the book reports bits (log2)"
        )
    close(
        b,
        ref,
        "the bigram model is a table p(next | previous) of counts over consecutive pairs "
        "of the TRAINING text, each row plus one and normalised; bigram is the mean of "
        "-log2 p(c_i | c_{i-1}) over consecutive pairs of the HELD-OUT text",
        rtol=0.01,
    )
    expect(
        b < unigram,
        "one character of context should already beat the unigram frequencies",
    )
    t = number(test_bits, "test_bits")
    gain = unigram - t
    s = number(share, "share")
    if abs(gain) < 0.02:
        tail = "the transformer does not differ from the unigram here, so share is not checked"
    else:
        want = (unigram - ref) / gain
        if abs(s - want) > 0.02 + 0.02 * abs(want) and abs(s / 100 - want) < 0.02:
            raise NotYet(
                "share looks like a percentage: give it as a fraction (0.5 for half)"
            )
        close(
            s,
            want,
            "share is the bigram's saving over the unigram (in bits/char) divided by the "
            "transformer's saving over the unigram",
            rtol=0.02,
            atol=0.02,
        )
        tail = (
            f"one character of context gives {s:.0%} of the transformer's gain"
            if gain > 0
            else f"the transformer is worse than the unigram in this run (share {s:.2f})"
        )
    return (
        f"unigram {unigram:.3f}, bigram {b:.3f}, transformer {t:.3f} bits/char: {tail}"
    )


_EXACT_UP_TO = 512  # texts up to this many characters are rescored at every position
_SUBSET = (
    192  # longer texts: this many evenly spaced positions (an estimate of the mean)
)


@torch.no_grad()
def _char_bits(model, tok, text: str) -> tuple[torch.Tensor, int]:
    """-log2 p(c_t | context) as ``ar.score_text`` computes it, at every position of a short
    text, or at evenly spaced positions of a long one (batched windows: one pass per batch).
    Returns (bits at the scored positions, length of the text)."""
    ids = tok.encode(text)
    if len(ids) == 0:
        raise ValueError("a sampled text must not be empty")
    T = model.context
    dev = next(model.parameters()).device
    if len(ids) <= _EXACT_UP_TO:
        pos = torch.arange(len(ids))
    else:
        pos = torch.linspace(0, len(ids) - 1, _SUBSET).round().long().unique()
    inp = torch.cat([torch.tensor([CharTokenizer.BOS]), ids])
    was = model.training
    model.eval()
    out = []
    early, late = pos[pos < T], pos[pos >= T]
    if len(early):  # positions < T: one pass over [BOS] + the first characters
        logp = model(inp[None, : int(early.max()) + 1].to(dev))[0].log_softmax(-1)
        out.append(logp[early.to(dev), ids[early].to(dev)].cpu())
    if len(late):  # position t >= T: the window [BOS] + the T-1 characters before t
        offsets = torch.arange(-(T - 1), 0)
        windows = torch.cat(
            [
                torch.full((len(late), 1), CharTokenizer.BOS),
                ids[late[:, None] + offsets],
            ],
            1,
        )
        for w, t in zip(windows.split(128), late.split(128)):
            logp = model(w.to(dev))[:, -1].log_softmax(-1)
            out.append(logp[torch.arange(len(t), device=dev), ids[t].to(dev)].cpu())
    model.train(was)
    return -torch.cat(out).double() / math.log(2), len(ids)


_NATS = "text_bits[{tau}] looks like nats per character: divide by log(2) for bits"
_NOT_THE_SCORE = (
    "text_bits[{tau}] is not the model's bits per character of texts[{tau}]: score "
    "the whole sampled text (prompt included) with the model and average -log2 p "
    "over its characters"
)


@checker("ch04-temperature")
def temperature(*, model, tok, texts, text_bits, most_likely) -> str:
    """``texts``: {temperature: sampled text}; ``text_bits``: {temperature: bits per character
    of that text under the model}, for at least three temperatures; ``most_likely``: the
    temperature whose text the model finds most likely."""
    if not isinstance(texts, Mapping) or not isinstance(text_bits, Mapping):
        raise TypeError(
            "texts and text_bits must be dicts {temperature: sampled text} and "
            "{temperature: bits per character}"
        )
    if len(texts) < 3 or set(texts) != set(text_bits):
        raise ValueError(
            "texts and text_bits need the same temperatures, at least three of them"
        )
    if not all(isinstance(s, str) for s in texts.values()):
        raise TypeError("texts must map each temperature to the sampled text (a str)")
    taus = sorted(texts, key=lambda k: number(k, "a temperature"))
    bits = {tau: number(text_bits[tau], f"text_bits[{tau}]") for tau in taus}
    # texts rescored on a subset: (temperature, z-score as bits, z-score as nats)
    zs = []
    for tau in taus:
        expect(
            bits[tau] > 0,
            f"text_bits[{tau}] should be a positive number of bits: -log2 of a "
            "probability, averaged over the characters",
        )
        ref, n = _char_bits(model, tok, texts[tau])
        mean = float(ref.mean())
        if len(ref) == n:  # every character rescored: the exact value
            tol = 0.01 * mean + 1e-3
        else:  # an estimate from a subset of the positions: allow for its sampling error
            se = max(float(ref.std()) / math.sqrt(len(ref)), 0.01)
            tol = 4 * se + 0.05
            nats = (bits[tau] - mean * math.log(2)) / (se * math.log(2))
            zs.append((tau, (bits[tau] - mean) / se, nats))
        if abs(bits[tau] - mean) > tol:
            if abs(bits[tau] - mean * math.log(2)) <= tol * math.log(2):
                raise NotYet(_NATS.format(tau=tau))
            raise NotYet(_NOT_THE_SCORE.format(tau=tau))
    if zs:  # jointly: small deviations that all go the same way are not chance
        chi2_bits = sum(z * z for _, z, _ in zs)
        chi2_nats = sum(z * z for _, _, z in zs)
        if chi2_bits > 4 * len(zs) + 10:
            tau = max(zs, key=lambda t: abs(t[1]))[0]
            raise NotYet(
                (_NATS if chi2_nats < chi2_bits / 4 else _NOT_THE_SCORE).format(tau=tau)
            )
    cheapest = min(taus, key=bits.get)
    m = number(most_likely, "most_likely")
    expect(
        any(abs(m - float(tau)) < 1e-9 for tau in taus),
        "most_likely should be one of the temperatures you sampled at",
    )
    expect(
        abs(m - float(cheapest)) < 1e-9,
        "the most likely text is the one with the FEWEST bits per character under the model",
    )
    listed = ", ".join(f"{bits[tau]:.2f} at {float(tau):g}" for tau in taus)
    return (
        f"bits/char under the model: {listed}; the text sampled at temperature "
        f"{float(cheapest):g} is the most likely"
    )


# --- 4.2 pixelcnn_maskgit ----------------------------------------------------------------


@checker("ch04-bottom-up")
def bottom_up(*, given, bottom, filled) -> str:
    """``bottom``: the (16, 16) boolean mask of the given pixels (the bottom half); ``given``:
    the test digits; ``filled``: the masked model's completions, (N, 1, 16, 16) in {0, 1}."""
    checks.tensor(given, "given")
    checks.tensor(bottom, "bottom")
    checks.tensor(filled, "filled")
    if given.dim() != 4 or given.shape[1:] != (1, 16, 16):
        raise ValueError(
            f"given must be binarised digits (N, 1, 16, 16), got {tuple(given.shape)}"
        )
    known = bottom.reshape(bottom.shape[-2:]) if bottom.dim() > 2 else bottom
    if known.shape != (16, 16):
        raise ValueError(f"bottom must be a (16, 16) mask, got {tuple(known.shape)}")
    known = known.bool().cpu()
    half = torch.zeros(16, 16, dtype=torch.bool)
    half[8:] = True
    expect(
        torch.equal(known, half),
        "the given pixels are the bottom half of each digit, rows 8 to 15, and nothing else",
    )
    expect(
        tuple(filled.shape) == tuple(given.shape),
        f"filled should hold one completion per given digit, shape {tuple(given.shape)}",
    )
    expect(
        bool(((filled == 0) | (filled == 1)).all()),
        "every pixel of filled should be decided, 0 or 1: no hidden (MASK) or grey pixels "
        "left; decode until nothing is masked",
    )
    f, g = filled.float().cpu(), given.float().cpu()
    expect(
        torch.equal(f[:, :, 8:], g[:, :, 8:]),
        "the bottom half is given: the completions must keep those pixels exactly (tell "
        "the decoder the images and which pixels are known)",
    )
    same = int((f[:, :, :8] == g[:, :, :8]).flatten(1).all(1).sum())
    expect(
        same < len(g) or len(g) == 1 and g[:, :, :8].sum() == 0,
        "every top half is exactly the original's: the decoder must not see the hidden "
        "top half, only the bottom one",
    )
    ink = f[:, :, :8].mean().item()
    return (
        f"{len(f)} digits completed from their bottom half: the given rows are kept, every "
        f"pixel of the top half decided ({ink:.0%} ink), {same} top halves equal to the "
        "original"
    )


def _mask_a_reach(size: int, row: int, col: int) -> torch.Tensor:
    """The input pixels that can reach output (row, col) through two 3x3 type-A layers."""
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, -1)]  # what one type-A 3x3 kernel sees
    reach = torch.zeros(size, size, dtype=torch.bool)
    for a in offsets:
        for b in offsets:
            r, c = row + a[0] + b[0], col + a[1] + b[1]
            if 0 <= r < size and 0 <= c < size:
                reach[r, c] = True
    return reach


@checker("ch04-mask-a")
def mask_a(*, seen) -> str:
    """``seen``: a (16, 16) boolean map, True where an input pixel affects output pixel (8, 8)
    of a two-layer stack of 3x3 type-A masked convolutions."""
    if not torch.is_tensor(seen):
        try:
            seen = torch.as_tensor(seen)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"seen must be a (16, 16) boolean map, got {type(seen).__name__}"
            ) from e
    while seen.dim() > 2 and seen.shape[0] == 1:
        seen = seen[0]
    if seen.shape != (16, 16):
        raise ValueError(
            f"seen must be a (16, 16) map of the input pixels, got {tuple(seen.shape)}"
        )
    s = seen.detach().cpu() != 0
    ref = _mask_a_reach(16, 8, 8)
    after = torch.zeros(16 * 16, dtype=torch.bool)
    after[8 * 16 + 8 :] = True
    expect(
        not bool((s.flatten() & after).any()),
        "seen marks pixels at or after (8, 8) in raster order: a causal stack cannot see "
        "them; mark the input pixels whose gradient w.r.t. output (8, 8) is non-zero",
    )
    expect(
        s.any(),
        "seen is empty: backpropagate from output (8, 8) and mark the input pixels with a "
        "non-zero gradient",
    )
    expect(
        not bool(s[8, 7]),
        "seen includes the left neighbour (8, 7): is mask A (centre hidden) in BOTH layers?",
    )
    expect(
        not bool((s & ~ref).any()),
        "seen includes pixels two 3x3 layers cannot reach from (8, 8): is the map of the "
        "right output pixel, with rows as the first index?",
    )
    missing = int((ref & ~s).sum())
    expect(
        missing <= 2,
        f"{missing} of the {int(ref.sum())} reachable pixels are missing from seen: mark "
        "every input pixel whose gradient is non-zero (a random, not an all-zero, input)",
    )
    return (
        f"{int(s.sum())} input pixels affect (8, 8), all before it, and the left neighbour "
        "(8, 7) is not among them: mask A in the second layer hides it"
    )
