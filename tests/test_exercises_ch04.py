"""Chapter 4's exercise checks: the reference answer passes, wrong answers get a hint.

Reference answers are computed here the way a student would (as the hidden solutions
do), on small inputs, never with the checkers' own helpers.
"""

import math

import pytest
import torch

from lib import autoregressive as ar
from lib import data, exercises
from lib import pixelcnn as pix
from exercise_testing import verdict


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)
    return v


# --- 4.1 next_token ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus():
    tok = ar.CharTokenizer()
    train_ids = tok.encode(data.text_corpus("train"))[:30000]
    test_ids = tok.encode(data.text_corpus("test"))[:8000]
    return tok, train_ids, test_ids


def bigram_bits(train_ids, test_ids, V, on=None):
    """Held-out bits/char of the add-one bigram, counted with bincount over pair codes."""
    on = train_ids if on is None else on
    pairs = torch.bincount(on[:-1] * V + on[1:], minlength=V * V).reshape(V, V)
    p = (pairs.double() + 1) / (pairs.double() + 1).sum(1, keepdim=True)
    return -p[test_ids[:-1], test_ids[1:]].log2().mean().item()


def test_ch04_bigram(corpus, capsys):
    tok, train_ids, test_ids = corpus
    V = tok.vocab_size
    unigram = ar.unigram_bits(train_ids, test_ids, V)
    bigram = bigram_bits(train_ids, test_ids, V)
    test_bits = unigram - 2.0  # a transformer that saves 2 bits/char
    share = (unigram - bigram) / (unigram - test_bits)
    common = dict(
        train_ids=train_ids, test_ids=test_ids, vocab_size=V, test_bits=test_bits
    )
    v = verdict("ch04-bigram", capsys, **common, bigram=bigram, share=share)
    assert v and f"{share:.0%}" in v.message
    # a transformer worse than the unigram (a smoke run): share is negative, still checked
    worse = dict(common, test_bits=unigram + 1.0)
    neg = (unigram - bigram) / (unigram - worse["test_bits"])
    v = verdict("ch04-bigram", capsys, **worse, bigram=bigram, share=neg)
    assert v and "worse than the unigram" in v.message
    wrong = [
        dict(bigram=unigram, share=0.0),  # the unigram again
        dict(bigram=0.0, share=share),  # zeros
        dict(bigram=bigram * math.log(2), share=share),  # nats
        dict(bigram=bigram_bits(train_ids, test_ids, V, on=test_ids), share=share),
        dict(bigram=bigram, share=100 * share),  # a percentage
        dict(bigram=bigram, share=1 / share),  # upside down
        dict(bigram=bigram, share=0.0),
    ]
    for w in wrong:
        not_yet("ch04-bigram", capsys, **common, **w)
    assert "nats" in not_yet("ch04-bigram", capsys, **common, **wrong[2]).message
    assert "percentage" in not_yet("ch04-bigram", capsys, **common, **wrong[4]).message
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check("ch04-bigram", **common, bigram="3.7", share=share)
    with pytest.raises(TypeError, match="must be a number"):
        exercises.check("ch04-bigram", **common, bigram=None, share=share)
    with pytest.raises(ValueError, match="token ids"):
        exercises.check(
            "ch04-bigram",
            **dict(common, train_ids=train_ids.float()),
            bigram=bigram,
            share=share,
        )


def peaky_model(scale):
    """A tiny untrained next-character model with sharp (far from uniform) predictions."""
    tok = ar.CharTokenizer()
    torch.manual_seed(0)
    model = ar.NextTokenTransformer(tok.vocab_size, context=16, d_model=16, n_layers=1)
    with torch.no_grad():
        model.head.weight.mul_(scale)
    return tok, model


def sample_and_score(model, tok, n_chars):
    texts, text_bits = {}, {}
    for tau in (0.5, 1.0, 1.5):
        text = ar.generate_text(
            model, tok, "The ", n_chars, tau, torch.Generator().manual_seed(0)
        )
        texts[tau] = text
        text_bits[tau] = -ar.score_text(model, tok, text).mean().item() / math.log(2)
    return texts, text_bits


# 40 characters are rescored exactly; 300 (2,000 in the book) on a subset of positions
@pytest.mark.parametrize(("n_chars", "scale"), [(40, 30), (300, 6)])
def test_ch04_temperature(n_chars, scale, capsys, monkeypatch):
    tok, model = peaky_model(scale)
    monkeypatch.setattr("lib.exercises.ch04._EXACT_UP_TO", 100)
    monkeypatch.setattr("lib.exercises.ch04._SUBSET", 96)
    texts, text_bits = sample_and_score(model, tok, n_chars)
    assert max(text_bits.values()) - min(text_bits.values()) > 0.15
    most_likely = min(text_bits, key=text_bits.get)
    common = dict(model=model, tok=tok, texts=texts)
    v = verdict(
        "ch04-temperature",
        capsys,
        **common,
        text_bits=text_bits,
        most_likely=most_likely,
    )
    assert v and f"{most_likely:g} is the most likely" in v.message
    taus = list(text_bits)
    rolled = dict(zip(taus, [text_bits[t] for t in taus[1:] + taus[:1]]))
    wrong = [
        dict(text_bits={t: b * len(texts[t]) for t, b in text_bits.items()}),  # sums
        dict(text_bits={t: -b for t, b in text_bits.items()}),  # log-likelihoods
        dict(text_bits={t: 0.0 for t in text_bits}),  # zeros
    ]
    wrong.append(dict(text_bits={t: b * math.log(2) for t, b in text_bits.items()}))
    if n_chars <= 100:  # rescored exactly: small errors are caught too
        wrong.append(dict(text_bits=rolled))  # shuffled
    for w in wrong:
        not_yet("ch04-temperature", capsys, **common, **w, most_likely=most_likely)
    nats = not_yet(
        "ch04-temperature", capsys, **common, **wrong[3], most_likely=most_likely
    )
    assert "nats" in nats.message
    answer = dict(common, text_bits=text_bits)
    most = max(text_bits, key=text_bits.get)
    assert (
        "FEWEST"
        in not_yet("ch04-temperature", capsys, **answer, most_likely=most).message
    )
    not_yet("ch04-temperature", capsys, **answer, most_likely=0.7)  # not sampled
    with pytest.raises(ValueError, match="same temperatures"):
        exercises.check(
            "ch04-temperature",
            model=model,
            tok=tok,
            texts={0.5: texts[0.5]},
            text_bits={0.5: 1.0},
            most_likely=0.5,
        )
    with pytest.raises(TypeError, match="a str"):
        exercises.check(
            "ch04-temperature",
            model=model,
            tok=tok,
            texts={t: tok.encode(s) for t, s in texts.items()},
            text_bits=text_bits,
            most_likely=most_likely,
        )
    with pytest.raises(TypeError, match="dicts"):
        exercises.check(
            "ch04-temperature",
            model=model,
            tok=tok,
            texts=list(texts.values()),
            text_bits=text_bits,
            most_likely=most_likely,
        )


# --- 4.2 pixelcnn_maskgit ----------------------------------------------------------------


@pytest.fixture(scope="module")
def test_digits():
    return data.binarize(data.digits("test")[0])[:8]


def test_ch04_bottom_up(test_digits, capsys):
    given = test_digits
    torch.manual_seed(0)
    maskgit = pix.MaskedTokenModel(8)
    bottom = torch.zeros(16, 16, dtype=torch.bool)
    bottom[8:] = True
    filled = pix.decode_parallel(
        maskgit,
        len(given),
        8,
        x=given,
        known=bottom,
        generator=torch.Generator().manual_seed(0),
    )
    assert verdict("ch04-bottom-up", capsys, given=given, bottom=bottom, filled=filled)
    top = ~bottom
    from_top = pix.decode_parallel(
        maskgit,
        len(given),
        8,
        x=given,
        known=top,
        generator=torch.Generator().manual_seed(0),
    )
    unconditional = pix.decode_parallel(
        maskgit, len(given), 8, generator=torch.Generator().manual_seed(0)
    )
    shown = given.clone()
    shown[:, :, :8] = 0.5
    wrong = [
        dict(bottom=top, filled=from_top),  # the wrong half given
        dict(bottom=bottom, filled=from_top),
        dict(bottom=bottom, filled=unconditional),  # the bottom half not kept
        dict(bottom=bottom, filled=shown),  # the grey picture, not the completion
        dict(bottom=bottom, filled=given),  # the original: the top half leaked
        dict(bottom=bottom, filled=torch.zeros_like(given)),  # zeros
        dict(bottom=bottom, filled=filled[:4]),  # not one per digit
        dict(bottom=bottom, filled=torch.where(top, pix.MASK, given)),  # still masked
    ]
    for w in wrong:
        not_yet("ch04-bottom-up", capsys, given=given, **w)
    with pytest.raises(ValueError, match=r"\(16, 16\) mask"):
        exercises.check("ch04-bottom-up", given=given, bottom=bottom[8:], filled=filled)
    with pytest.raises(ValueError, match="binarised digits"):
        exercises.check(
            "ch04-bottom-up", given=given[:, 0], bottom=bottom, filled=filled
        )
    with pytest.raises(TypeError, match="torch.Tensor"):
        exercises.check(
            "ch04-bottom-up", given=given, bottom=bottom, filled=filled.tolist()
        )


def influence_map(kinds, seed, out=(8, 8)):
    """Which inputs affect one output pixel of two stacked 3x3 masked convolutions."""
    torch.manual_seed(seed)
    stack = torch.nn.Sequential(
        pix.MaskedConv2d(1, 8, 3, kinds[0]),
        torch.nn.ReLU(),
        pix.MaskedConv2d(8, 1, 3, kinds[1]),
    )
    xin = torch.randn(1, 1, 16, 16, requires_grad=True)
    stack(xin)[0, 0, out[0], out[1]].backward()
    return xin.grad[0, 0] != 0


def test_ch04_mask_a(capsys):
    for seed in range(3):
        seen = influence_map("AA", seed)
        v = verdict("ch04-mask-a", capsys, seen=seen)
        assert v and "(8, 7) is not among them" in v.message
    seen = influence_map("AA", 0)
    assert verdict("ch04-mask-a", capsys, seen=seen.float().numpy())  # 0/1 array
    assert verdict("ch04-mask-a", capsys, seen=seen[None, None])  # (1, 1, 16, 16)
    wrong = [
        influence_map("AB", 0),  # mask B in the second layer
        influence_map("BB", 0),
        influence_map("AA", 0, out=(8, 9)),  # another output pixel
        seen.T,  # rows and columns swapped
        torch.ones(16, 16, dtype=torch.bool),
        torch.zeros(16, 16, dtype=torch.bool),  # the untouched answer
        seen & torch.rand(16, 16, generator=torch.Generator().manual_seed(0)).lt(0.3),
    ]
    for w in wrong:
        not_yet("ch04-mask-a", capsys, seen=w)
    assert "BOTH" in not_yet("ch04-mask-a", capsys, seen=wrong[0]).message
    with pytest.raises(ValueError, match=r"\(16, 16\) map"):
        exercises.check("ch04-mask-a", seen=seen[:8])
    with pytest.raises(TypeError, match="boolean map"):
        exercises.check("ch04-mask-a", seen={"left": False})
