"""lib.autoregressive and lib.pixelcnn (chapter 4), and lib.data.text_corpus."""
import math

import pytest
import torch
import torch.nn.functional as F

from lib import autoregressive as ar, data, pixelcnn as pix

H = 8  # small images keep the tests fast


def raster_before(i: int, size: int) -> torch.Tensor:
    """Independent reference: bool (size, size), True at pixels strictly before i in raster order."""
    return (torch.arange(size * size) < i).reshape(size, size)


def input_gradient(net, x, r, c):
    """d output[0, 0, r, c] / d input, shape (H, W) (inputs as a float leaf)."""
    x = x.clone().requires_grad_(True)
    net(x)[0, 0, r, c].backward()
    return x.grad[0, 0]


# --- masked convolutions: causality via gradients -------------------------------------------

@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_is_causal(mask_type):
    torch.manual_seed(0)
    conv = pix.MaskedConv2d(1, 4, 5, mask_type)
    torch.nn.init.normal_(conv.weight)  # random, non-zero weights everywhere
    x = torch.randn(1, 1, H, H)
    for i in range(H * H):
        r, c = divmod(i, H)
        net = lambda t: conv(t).sum(1, keepdim=True)
        g = input_gradient(net, x, r, c)
        allowed = raster_before(i, H).clone()
        if mask_type == "B":
            allowed[r, c] = True
        assert (g[~allowed] == 0).all(), f"pixel {i}: gradient leaks to later pixels"
        # and it does see its (in-range) allowed 5x5 neighbourhood
        near = torch.zeros(H, H, dtype=torch.bool)
        near[max(0, r - 2):r + 3, max(0, c - 2):c + 3] = True
        assert (g[allowed & near] != 0).all()


def test_pixelcnn_output_depends_only_on_earlier_pixels():
    torch.manual_seed(0)
    net = pix.PixelCNN(channels=8, n_layers=3)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.bernoulli(torch.full((1, 1, H, H), 0.5))
    forward = lambda t: net.head(_body(net, t))
    for i in range(H * H):
        r, c = divmod(i, H)
        g = input_gradient(forward, x, r, c)
        assert (g[~raster_before(i, H)] == 0).all(), f"pixel {i} sees itself or a later pixel"
    g = input_gradient(forward, x, H - 1, H - 1)
    assert g[H - 1, H - 2] != 0 and g[H - 2, H - 1] != 0  # ... and does see its neighbours before it


def _body(net, x):
    """PixelCNN.forward without the binary-input check (so the input can carry gradients)."""
    h = net.first(2 * x - 1)
    for conv in net.layers:
        h = h + conv(F.relu(h))
    return h


def test_causal_mask_by_hand():
    assert pix.causal_mask(3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert pix.causal_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert pix.causal_mask(1, "A").tolist() == [[0]]


def test_masked_conv_bad_input():
    with pytest.raises(ValueError, match="odd"):
        pix.MaskedConv2d(1, 4, 4, "A")
    with pytest.raises(ValueError, match="mask_type"):
        pix.MaskedConv2d(1, 4, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        pix.causal_mask(2, "B")


# --- PixelCNN likelihood ------------------------------------------------------------------

def test_log_prob_is_the_sum_of_per_pixel_conditionals():
    torch.manual_seed(1)
    net = pix.PixelCNN(channels=8, n_layers=2, first_kernel=3).eval()
    x = torch.bernoulli(torch.full((3, 1, H, H), 0.4))
    lp = net.log_prob(x)
    assert lp.shape == (3,)
    # chain rule, one conditional at a time: pixel i's probability computed from an image in
    # which pixel i and everything after it is replaced by noise (it must not matter)
    total = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for i in range(H * H):
            r, c = divmod(i, H)
            noisy = torch.where(raster_before(i, H), x, torch.bernoulli(torch.full_like(x, 0.5)))
            p1 = torch.sigmoid(net(noisy)[:, 0, r, c]).double()
            total += torch.where(x[:, 0, r, c] == 1, p1, 1 - p1).log()
    assert torch.allclose(lp.double(), total, atol=1e-4)
    assert torch.allclose(lp, net.log_prob_pixels(x).flatten(1).sum(1))


def test_pixelcnn_rejects_bad_images():
    net = pix.PixelCNN(channels=8, n_layers=1)
    with pytest.raises(ValueError, match="binary"):
        net(torch.full((2, 1, H, H), 0.5))
    with pytest.raises(ValueError, match="binarize"):
        net(torch.full((2, 1, H, H), -1.0))
    with pytest.raises(ValueError, match="one channel"):
        net(torch.zeros(2, 3, H, H))
    with pytest.raises(ValueError, match="one channel"):
        net(torch.zeros(H, H))


def test_bernoulli_baseline_by_hand():
    x = torch.zeros(4, 1, 1, 2)
    x[:3, 0, 0, 0] = 1  # pixel 0 inked in 3 of 4 images, pixel 1 never
    model = pix.BernoulliPixels(alpha=1.0).fit(x)
    q0, q1 = 4 / 6, 1 / 6  # add-one smoothing
    want = math.log(q0) + math.log(1 - q1)
    assert model.log_prob(x[:1]).item() == pytest.approx(want, rel=1e-6)
    assert torch.allclose(model.log_prob(x), model.log_prob_pixels(x).flatten(1).sum(1))
    s = model.sample(20000, generator=torch.Generator().manual_seed(0))
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert s[:, 0, 0, 0].mean().item() == pytest.approx(q0, abs=0.02)
    with pytest.raises(ValueError, match="fit"):
        pix.BernoulliPixels().log_prob(x)
    with pytest.raises(ValueError, match="binary"):
        model.fit(x + 0.5)
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(1, 1, 2, 2))


def test_sample_raster_keeps_known_pixels_and_uses_one_pass_per_unknown_pixel():
    torch.manual_seed(0)
    net = pix.PixelCNN(channels=8, n_layers=1, first_kernel=3)
    x = torch.bernoulli(torch.full((5, 1, H, H), 0.5))
    known = torch.zeros(H, H, dtype=torch.bool)
    known[: H // 2] = True  # the top half is given
    calls = [0]
    net.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    out = pix.sample_raster(net, 5, size=H, x=x, known=known, generator=torch.Generator().manual_seed(0))
    assert calls[0] == H * H // 2
    assert torch.equal(out[:, :, : H // 2], x[:, :, : H // 2])
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="pass x"):
        pix.sample_raster(net, 5, size=H, known=known)
    with pytest.raises(ValueError, match="binary"):
        pix.sample_raster(net, 5, size=H, x=x * 0.5, known=known)


def test_sample_raster_matches_a_known_distribution():
    """A 'model' whose logits are fixed per pixel: samples must follow sigmoid(logit) per pixel."""

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.tensor([[[[-2.0, 0.0], [1.0, 3.0]]]]))

        def forward(self, x):
            return self.logits.expand(len(x), -1, -1, -1)

    s = pix.sample_raster(Fixed(), 4000, size=2, generator=torch.Generator().manual_seed(0))
    want = torch.sigmoid(torch.tensor([[-2.0, 0.0], [1.0, 3.0]]))
    assert torch.allclose(s.mean(0)[0], want, atol=0.03)


def test_sample_raster_cropped_to_the_rows_so_far_gives_the_same_samples():
    """crop=True feeds rows 0..r only; for a causal PixelCNN the draws must be identical
    to full-image passes with the same generator (free and with a known top half)."""
    torch.manual_seed(0)
    net = pix.PixelCNN(channels=8, n_layers=3, first_kernel=5)
    for p in net.parameters():  # larger weights: logits far from 0, strong dependencies
        p.data.mul_(3)
    img = torch.bernoulli(torch.full((6, 1, H, H), 0.5))
    with torch.no_grad():
        full = net(img)
        for r in range(H):
            assert torch.allclose(net(img[:, :, : r + 1])[:, :, r], full[:, :, r], atol=1e-5)
    known = torch.zeros(H, H, dtype=torch.bool)
    known[:3] = True
    for kw in ({}, {"x": img, "known": known}):
        a = pix.sample_raster(net, 6, size=H, generator=torch.Generator().manual_seed(1), **kw)
        b = pix.sample_raster(net, 6, size=H, generator=torch.Generator().manual_seed(1),
                              crop=False, **kw)
        assert torch.equal(a, b)
        assert 0.1 < a.mean() < 0.9  # non-trivial samples
    # the test can fail: a net that sees the row below (an unmasked convolution) does not
    # give the same samples when that row is cropped (here it holds given ink)
    leaky = torch.nn.Conv2d(1, 1, 3, padding=1)
    leaky.weight.data.fill_(-1.0)
    leaky.bias.data.fill_(1.0)
    ink, top = torch.ones(64, 1, H, H), torch.zeros(H, H, dtype=torch.bool)
    top[H - 1] = True  # the last row is given, all ink
    kw = {"size": H, "x": ink, "known": top}
    a = pix.sample_raster(leaky, 64, generator=torch.Generator().manual_seed(1), **kw)
    b = pix.sample_raster(leaky, 64, generator=torch.Generator().manual_seed(1), crop=False, **kw)
    assert not torch.equal(a, b)


# --- MaskGIT-style parallel decoding --------------------------------------------------------

def test_masking_schedule_and_counts():
    assert float(pix.masking_schedule(0.0)) == 1.0
    assert float(pix.masking_schedule(1.0)) == pytest.approx(0.0, abs=1e-12)
    assert float(pix.masking_schedule(0.5)) == pytest.approx(math.sqrt(0.5))
    for steps in (1, 2, 4, 8, 16, 64):
        c = pix.masking_counts(steps, 64)
        assert len(c) == steps and c[-1] == 0
        assert all(a > b for a, b in zip([64] + c, c)), c
    assert pix.masking_counts(4, 64) == [math.floor(64 * math.cos(math.pi / 2 * t / 4)) for t in (1, 2, 3, 4)]
    assert pix.masking_counts(64, 64) == list(range(63, -1, -1))  # one token per step
    with pytest.raises(ValueError, match="exceed"):
        pix.masking_counts(65, 64)
    with pytest.raises(ValueError):
        pix.masking_schedule(1.5)


def test_random_masking_fraction_follows_the_cosine_schedule():
    x = torch.ones(4000, 1, 4, 4)
    tokens, masked = pix.random_masking(x, torch.Generator().manual_seed(0))
    assert torch.equal(tokens == pix.MASK, masked)
    assert torch.equal(tokens[~masked], x[~masked])
    frac = masked.flatten(1).float().mean(1)
    assert (frac > 0).all()
    # E[cos(pi r / 2)] = 2 / pi for r ~ U(0, 1); ceil adds at most 1/16
    assert 2 / math.pi - 0.02 < frac.mean().item() < 2 / math.pi + 1 / 16 + 0.02


class Counting(torch.nn.Module):
    """Wraps a model and counts its forward calls (independent of lib's own hook helper)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, t):
        self.calls += 1
        return self.net(t)


@pytest.mark.parametrize("steps", [1, 3, 8, H * H])
def test_decode_parallel_uses_exactly_n_passes_and_leaves_no_masks(steps):
    torch.manual_seed(0)
    net = Counting(pix.MaskedTokenModel(channels=8, dilations=(1, 2)))
    out = pix.decode_parallel(net, 3, steps, size=H, generator=torch.Generator().manual_seed(0))
    assert net.calls == steps
    assert out.shape == (3, 1, H, H)
    assert not (out == pix.MASK).any() and set(out.unique().tolist()) <= {0.0, 1.0}
    with pix.count_forward_passes(net) as calls:
        pix.decode_parallel(net, 2, steps, size=H)
    assert calls[0] == steps


def test_decode_parallel_with_known_pixels_anywhere():
    net = pix.MaskedTokenModel(channels=8, dilations=(1,))
    x = torch.bernoulli(torch.full((2, 1, H, H), 0.5))
    known = torch.zeros(H, H, dtype=torch.bool)
    known[H // 2:] = True  # the *bottom* half is given: fine for a bidirectional model
    out = pix.decode_parallel(net, 2, 4, size=H, x=x, known=known)
    assert torch.equal(out[:, :, H // 2:], x[:, :, H // 2:])
    with pytest.raises(ValueError, match="exceed"):
        pix.decode_parallel(net, 2, H * H // 2 + 1, size=H, x=x, known=known)


def test_decode_parallel_one_step_samples_the_model_marginals():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([[[[-1.0, 2.0], [0.0, 0.5]]]]))

        def forward(self, t):
            return self.w.expand(len(t), -1, -1, -1)

    s = pix.decode_parallel(Fixed(), 4000, 1, size=2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(s.mean(0)[0], torch.sigmoid(Fixed().w[0, 0]).detach(), atol=0.03)


def test_masked_token_model_and_loss():
    net = pix.MaskedTokenModel(channels=8, dilations=(1,))
    x = torch.bernoulli(torch.full((4, 1, H, H), 0.5))
    loss = pix.masked_token_loss(net, x, torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and loss.item() > 0
    loss.backward()
    with pytest.raises(ValueError, match="MASK"):
        net(torch.full((1, 1, H, H), 3.0))
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(1, 2, H, H))
    with pytest.raises(ValueError, match="binary"):
        pix.masked_token_loss(net, x * 2 - 1)


# --- text -----------------------------------------------------------------------------------

def test_tokenizer_roundtrip_and_errors():
    tok = ar.CharTokenizer()
    assert tok.vocab_size == 97
    text = "Once upon a time\n~"
    ids = tok.encode(text)
    assert ids.dtype == torch.int64 and (ids > 0).all() and tok.decode(ids) == text
    assert tok.decode([0] + ids.tolist()) == text  # BOS is skipped
    with pytest.raises(ValueError, match="alphabet"):
        tok.encode("caf\u00e9")
    with pytest.raises(TypeError):
        tok.encode(3)
    with pytest.raises(ValueError):
        ar.CharTokenizer("aa")


def test_text_corpus_is_ascii_split_and_disjoint():
    train, test = data.text_corpus("train"), data.text_corpus("test")
    assert len(train) > 100_000 and 10_000 < len(test) < len(train) / 4
    ar.CharTokenizer().encode(test)  # every character is in the default alphabet
    paras = lambda s: {" ".join(p.split()) for p in s.split("\n\n") if len(p) > 200}
    assert not (paras(train) & paras(test))
    with pytest.raises(ValueError):
        data.text_corpus("valid")


def test_text_batch_shifts_targets_by_one():
    ids = torch.arange(1, 51)
    inp, tgt = ar.text_batch(ids, 10, 6, torch.Generator().manual_seed(0))
    assert inp.shape == tgt.shape == (6, 10)
    assert (inp[:, 0] == ar.CharTokenizer.BOS).all()
    assert torch.equal(inp[:, 1:], tgt[:, :-1])
    assert ((tgt[:, 1:] - tgt[:, :-1]) == 1).all()  # consecutive characters of the stream
    with pytest.raises(ValueError, match="shorter"):
        ar.text_batch(ids[:5], 10, 2)


def test_transformer_is_causal():
    torch.manual_seed(0)
    model = ar.NextTokenTransformer(20, context=12, d_model=16, n_layers=2, n_heads=2).eval()
    a = torch.randint(1, 20, (1, 12))
    b = a.clone()
    b[0, 7:] = torch.randint(1, 20, (5,))  # change the future
    with torch.no_grad():
        la, lb = model(a), model(b)
    assert torch.allclose(la[0, :7], lb[0, :7], atol=1e-5)
    assert not torch.allclose(la[0, 7:], lb[0, 7:])
    with pytest.raises(ValueError, match="context"):
        model(torch.zeros(1, 13, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        model(torch.zeros(1, 3))


def test_score_text_is_the_chain_rule_and_matches_long_and_short_paths():
    torch.manual_seed(0)
    tok = ar.CharTokenizer("abc ")
    model = ar.NextTokenTransformer(tok.vocab_size, context=8, d_model=16, n_layers=1, n_heads=2).eval()
    text = "abc ab"
    lp = ar.score_text(model, tok, text)
    # by hand: one conditional at a time, from BOS
    ids = [0] + tok.encode(text).tolist()
    want = [model(torch.tensor([ids[:t + 1]]))[0, -1].log_softmax(-1)[ids[t + 1]].item() for t in range(len(text))]
    assert torch.allclose(lp, torch.tensor(want), atol=1e-5)
    long = "abc " * 5  # longer than the context: sliding window of context-1 characters
    lp_long = ar.score_text(model, tok, long)
    ids = tok.encode(long).tolist()
    t = 15
    ctx = [0] + ids[t - 7:t]
    want = model(torch.tensor([ctx]))[0, -1].log_softmax(-1)[ids[t]].item()
    assert lp_long[t].item() == pytest.approx(want, abs=1e-5)
    assert torch.allclose(lp_long[:8], ar.score_text(model, tok, long[:8]), atol=1e-5)


def test_unigram_bits_by_hand():
    train = torch.tensor([1, 1, 1, 2])
    test = torch.tensor([1, 2])
    p = ar.unigram_probs(train, 3, alpha=1.0)  # counts 0 (BOS), 4, 2
    assert p.tolist() == pytest.approx([0, 4 / 6, 2 / 6])
    assert ar.unigram_bits(train, test, 3) == pytest.approx(-(math.log2(4 / 6) + math.log2(2 / 6)) / 2)


def test_bits_per_token_matches_cross_entropy():
    torch.manual_seed(0)
    model = ar.NextTokenTransformer(10, context=5, d_model=16, n_layers=1, n_heads=2).eval()
    ids = torch.randint(1, 10, (12,))  # windows of 5, 5 and 2
    total = 0.0
    for s in (0, 5, 10):
        w = ids[s:s + 5]
        inp = torch.cat([torch.tensor([0]), w[:-1]])[None]
        total += F.cross_entropy(model(inp)[0], w, reduction="sum").item()
    assert ar.bits_per_token(model, ids) == pytest.approx(total / 12 / math.log(2), rel=1e-5)


def test_sampling_with_temperature():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    assert ar.sample_logits(logits, 0).item() == 1  # greedy
    g = torch.Generator().manual_seed(0)
    draws = ar.sample_logits(logits.expand(20000, 3), 2.0, g)
    want = torch.softmax(logits[0] / 2.0, 0)
    freq = torch.bincount(draws, minlength=3).float() / 20000
    assert torch.allclose(freq, want, atol=0.015)
    with pytest.raises(ValueError, match="temperature"):
        ar.sample_logits(logits, -1.0)
    tok = ar.CharTokenizer("ab")
    model = ar.NextTokenTransformer(tok.vocab_size, context=4, d_model=8, n_layers=1, n_heads=2)
    out = ar.generate_text(model, tok, "ab", 10, 1.0, g)
    assert out.startswith("ab") and len(out) == 12 and set(out) <= {"a", "b"}
