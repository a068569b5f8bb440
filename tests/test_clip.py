"""lib.clip (chapter 9): the properties the chapter relies on."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib import clip, scenes, train


def unit(x):
    return F.normalize(x, dim=-1)


# --- InfoNCE -------------------------------------------------------------------------------

def test_info_nce_is_symmetric_in_images_and_texts():
    g = torch.Generator().manual_seed(0)
    a, b = unit(torch.randn(16, 8, generator=g)), unit(torch.randn(16, 8, generator=g))
    assert torch.allclose(clip.info_nce(a, b, 7.0), clip.info_nce(b, a, 7.0))


def test_info_nce_by_hand_for_two_pairs():
    # B = 2, sims [[1, c], [c, 1]] with c = cos(60 deg) = 0.5, scale s:
    # each row/column: -log(e^s / (e^s + e^{s c})) = log(1 + e^{s (c - 1)})
    a = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    s = 3.0
    want = math.log(1 + math.exp(s * (0.5 - 1)))
    assert clip.info_nce(a, a.clone(), s).item() == pytest.approx(want, rel=1e-6)


def test_info_nce_is_log_batch_for_uninformative_embeddings():
    b = 32
    x = unit(torch.randn(b, 16))
    assert clip.info_nce(x, x, 0.0).item() == pytest.approx(math.log(b), rel=1e-6)   # all logits equal
    # random unit vectors in high dimension: cosines ~ N(0, 1/D), so the expected loss is log B
    g = torch.Generator().manual_seed(1)
    losses = [clip.info_nce(unit(torch.randn(b, 512, generator=g)), unit(torch.randn(b, 512, generator=g)), 1.0)
              for _ in range(50)]
    assert float(torch.stack(losses).mean()) == pytest.approx(math.log(b), abs=0.01)


def test_info_nce_is_minimal_for_matched_pairs():
    b, s = 6, 10.0
    e = torch.eye(b, dtype=torch.float64)              # orthonormal embeddings, pairs identical
    matched = clip.info_nce(e, e, s).item()
    # closed form: every row is -log(e^s / (e^s + (B-1) e^0)) = log(1 + (B-1) e^{-s})
    assert matched == pytest.approx(math.log(1 + (b - 1) * math.exp(-s)), rel=1e-6)
    for perm in itertools.islice(itertools.permutations(range(b)), 1, 200):
        assert clip.info_nce(e, e[list(perm)], s).item() > matched
    assert clip.info_nce(e, e, 100.0).item() < 1e-6   # and it goes to 0 with the temperature


def test_clip_model_shapes_units_and_temperature():
    torch.manual_seed(0)
    m = clip.CLIP(dim=16, width=8)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    zi = m.encode_image(x)
    zt = m.encode_captions(["a small red square at the top"] * 2 + ["a large blue circle above a small red cross"] * 2)
    assert zi.shape == zt.shape == (4, 16)
    assert torch.allclose(zi.norm(dim=1), torch.ones(4)) and torch.allclose(zt.norm(dim=1), torch.ones(4))
    assert m.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        m.logit_scale.fill_(10.0)
    assert m.scale().item() == pytest.approx(100.0)                         # clamped
    loss = m(x, scenes.tokenize(["a small red square at the top"] * 4))
    loss.backward()
    assert m.logit_scale.grad is not None                                   # the temperature is learned
    # word order matters to the text encoder
    a, b = m.encode_captions(["a small red square above a large blue circle",
                              "a small blue square above a large red circle"])
    assert not torch.allclose(a, b)
    # padding does not change the embedding
    t = scenes.tokenize(["a small red square at the top"])
    t2 = scenes.tokenize(["a small red square at the top"])
    assert torch.allclose(m.encode_text(t), m.encode_text(t2))


def test_clip_learns_a_tiny_matching_problem():
    torch.manual_seed(0)
    s = scenes.captioned_scenes("train", 32, p_two=0.0)
    m = clip.CLIP(dim=16, width=8)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    tok = scenes.tokenize(s.captions)
    first = m(s.images, tok).item()
    for _ in range(40):
        loss = m(s.images, tok)
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.5 * first


# --- retrieval ------------------------------------------------------------------------------

def test_recall_at_k_by_hand_and_with_groups():
    sim = torch.tensor([[0.9, 0.1, 0.0],
                        [0.8, 0.2, 0.1],     # row 1's own column is second best
                        [0.3, 0.5, 0.1]])    # row 2's own column is last
    assert clip.recall_at_k(sim, 1) == pytest.approx(1 / 3)
    assert clip.recall_at_k(sim, 2) == pytest.approx(2 / 3)
    assert clip.recall_at_k(sim, 3) == pytest.approx(1.0)
    # row 1 describes the same picture as column 0 (same group): its best column now counts
    assert clip.recall_at_k(sim, 1, torch.tensor([0, 0, 1])) == pytest.approx(2 / 3)
    assert clip.recall_at_k(sim[:2], 1, (torch.tensor([0, 1]), torch.tensor([0, 1, 1]))) == pytest.approx(0.5)


def test_chance_recall_matches_enumeration():
    n, k = 5, 2
    groups = torch.tensor([0, 0, 1, 2, 3])              # query 0 and 1 have two correct columns
    hits = []
    for perm in itertools.permutations(range(n)):       # every ranking equally likely
        top = list(perm[:k])
        hits.append([any(groups[j] == groups[i] for j in top) for i in range(n)])
    want = float(np.mean(hits))
    sizes = torch.tensor([int((groups == groups[i]).sum()) for i in range(n)])
    assert clip.chance_recall_at_k(n, sizes, k) == pytest.approx(want)
    assert clip.chance_recall_at_k(100, torch.ones(100), 5) == pytest.approx(0.05)


# --- adaptors --------------------------------------------------------------------------------

def test_zero_shot_is_argmax_cosine():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(50, 8, generator=g) * torch.rand(50, 1, generator=g) * 5   # not unit length
    cls = torch.randn(4, 8, generator=g) * torch.tensor([[1.0], [3.0], [0.2], [7.0]])
    a, c = img.numpy(), cls.numpy()
    cos = (a @ c.T) / np.linalg.norm(a, axis=1)[:, None] / np.linalg.norm(c, axis=1)[None]
    assert clip.zero_shot_predict(img, cls).tolist() == cos.argmax(1).tolist()


def test_zero_shot_classifier_averages_prompt_embeddings():
    torch.manual_seed(0)
    m = clip.CLIP(dim=16, width=8).eval()
    p = ["a small red square at the top", "a large red square at the top", "a small blue circle on the left"]
    with torch.no_grad():
        e = m.encode_captions(p)
    w = clip.zero_shot_classifier(m, [[p[0]], [p[2]]])
    assert torch.allclose(w, e[[0, 2]], atol=1e-6)                # one prompt per class: its embedding
    w2 = clip.zero_shot_classifier(m, [p[:2], [p[2], p[2]]])
    mean = e[0] + e[1]
    assert torch.allclose(w2[0], mean / mean.norm(), atol=1e-6)
    assert torch.allclose(w2[1], e[2], atol=1e-6)
    with pytest.raises(ValueError):
        clip.zero_shot_classifier(m, [p])
    with pytest.raises(ValueError):
        clip.zero_shot_classifier(m, ["a small red square at the top", "a large red square at the top"])


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (120,), generator=g)
    f = torch.randn(120, 5, generator=g) * 0.1 + F.one_hot(y, 5).float() * 3
    probe = clip.fit_linear_probe(f, y)
    assert probe.score(f.numpy(), y.numpy()) == 1.0
    with pytest.raises(ValueError):
        clip.fit_linear_probe(f, y[:10])
    with pytest.raises(ValueError, match="two classes"):
        clip.fit_linear_probe(f, torch.zeros(120, dtype=torch.long))


# --- the judge and CLIP-guided latents -------------------------------------------------------

def test_scene_judge_conventions_and_attribute_match():
    torch.manual_seed(0)
    s = scenes.captioned_scenes("all", 16)
    j = clip.SceneJudge(width=8)
    loss = j.loss(s.images, s.labels)
    assert torch.isfinite(loss) and loss.item() > 0
    pred = j.predict(s.images)
    assert set(pred) == set(scenes.LABELS) and all(v.shape == (16,) for v in pred.values())
    one = pred["n_objects"] == 1
    assert (pred["axis"][one] == -1).all() and (pred["where"][~one] == -1).all()
    assert clip.attribute_match(s.labels, s.labels).all()
    wrong = {k: v.clone() for k, v in s.labels.items()}
    wrong["colour"][0] = (wrong["colour"][0] + 1) % 4
    m = clip.attribute_match(wrong, s.labels)
    assert not m[0] and m[1:].all()
    assert clip.attribute_match(wrong, s.labels, keys=["shape"]).all()
    with pytest.raises(ValueError, match="missing"):
        clip.attribute_match(wrong, s.labels, keys=["texture"])


def test_judge_accuracy_rows_are_the_percentages_read_right():
    torch.manual_seed(0)
    a, b = scenes.captioned_scenes("all", 12), scenes.captioned_scenes("all", 8, seed=3)
    j = clip.SceneJudge(width=8)
    rows = clip.judge_accuracy(j, {"a": a, "b": b}, attributes=("shape", "colour"))
    assert list(rows) == ["a", "b"] and list(rows["a"]) == ["all attributes", "shape", "colour"]
    p = j.predict(b.images)
    assert rows["b"]["all attributes"] == 100 * float(clip.attribute_match(p, b.labels).float().mean())
    assert rows["b"]["shape"] == 100 * float((p["shape"] == b.labels["shape"]).float().mean())
    assert all(0 <= v <= 100 for r in rows.values() for v in r.values())
    assert list(clip.judge_accuracy(j, {"a": a})["a"]) == ["all attributes"]
    with pytest.raises(TypeError, match="SceneJudge"):
        clip.judge_accuracy(object(), {"a": a})
    with pytest.raises(TypeError, match="non-empty dict"):
        clip.judge_accuracy(j, {})
    with pytest.raises(ValueError, match="attributes"):
        clip.judge_accuracy(j, {"a": a}, attributes=("texture",))


def _judge_by_hand(n, steps, width, batch):
    """The judge's training as chapter 9's notebooks wrote it inline, before lib.clip.scene_judge."""
    torch.manual_seed(1)
    judge_set = scenes.captioned_scenes("all", n, seed=1)
    judge = clip.SceneJudge(width=width)
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    keys = list(scenes.LABELS)
    stream = train.batches(judge_set.images, *[judge_set.labels[k] for k in keys], batch_size=batch,
                           generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        x, *ys = next(stream)
        loss = judge.loss(x, dict(zip(keys, ys)))
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    return judge


def test_scene_judge_is_trained_once_cached_and_leaves_the_rng_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBOOK_CACHE", str(tmp_path))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    j = clip.scene_judge(48, 3, width=8, batch=16)
    assert torch.equal(torch.get_rng_state(), state)                  # caller's random state untouched
    assert isinstance(j, clip.SceneJudge) and not j.training
    files = list(tmp_path.glob("scene_judge-*.pt"))
    assert len(files) == 1
    ref = _judge_by_hand(48, 3, 8, 16).state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in j.state_dict().items())   # same numbers as the inline loop

    def no_training(*args, **kwargs):
        raise AssertionError("a cached judge must not be trained again")

    monkeypatch.setattr(scenes, "captioned_scenes", no_training)     # training would draw the scenes
    state = torch.get_rng_state()
    again = clip.scene_judge(48, 3, width=8, batch=16)
    assert all(torch.equal(v, ref[k]) for k, v in again.state_dict().items())
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(AssertionError, match="cached"):                 # other settings: another judge
        clip.scene_judge(48, 4, width=8, batch=16)


def test_scene_judge_retrains_a_stale_checkpoint_and_checks_its_input(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBOOK_CACHE", str(tmp_path))
    j = clip.scene_judge(32, 2, width=8, batch=16)
    (path,) = tmp_path.glob("scene_judge-*.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["code"] = "older code"
    ckpt["state_dict"] = {k: torch.zeros_like(v) for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, path)
    k = clip.scene_judge(32, 2, width=8, batch=16)                     # retrained, not the zeros
    assert all(torch.equal(v, j.state_dict()[n]) for n, v in k.state_dict().items())
    assert torch.load(path, weights_only=True)["config"]["code"] != "older code"
    with pytest.raises(ValueError, match="n_scenes"):
        clip.scene_judge(0, 2)
    with pytest.raises(ValueError, match="steps"):
        clip.scene_judge(32, 0)


def test_clip_guided_latents_increase_similarity_and_leave_models_alone():
    torch.manual_seed(0)
    m = clip.CLIP(dim=16, width=8)
    dec = torch.nn.Linear(4, 3 * 32 * 32)
    decode = lambda z: torch.tanh(dec(z)).view(-1, 3, 32, 32)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    prompts = ["a small red square at the top", "a large blue circle on the left"]
    g = torch.Generator().manual_seed(0)
    z0, s0 = clip.clip_guided_latents(decode, m, prompts, 4, steps=1, lr=1e-9, restarts=2,
                                      generator=torch.Generator().manual_seed(0))
    z, sims = clip.clip_guided_latents(decode, m, prompts, 4, steps=40, lr=0.1, restarts=2, generator=g)
    assert z.shape == (2, 4) and sims.shape == (2,)
    assert (sims > s0).all()
    with torch.no_grad():
        again = (m.encode_image(decode(z)) * m.encode_captions(prompts)).sum(1)
    assert torch.allclose(again, sims, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    assert all(p.requires_grad for p in m.parameters())
    with pytest.raises(ValueError):
        clip.clip_guided_latents(decode, m, "a small red square at the top", 4)


# --- bad inputs ----------------------------------------------------------------------------

def test_bad_inputs():
    m = clip.CLIP(dim=16, width=8)
    with pytest.raises(ValueError, match="shape"):
        m.encode_image(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="tokenize"):
        m.encode_text(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="tokenize"):
        m.encode_text(torch.zeros(2, scenes.MAX_TOKENS))
    with pytest.raises(ValueError):
        clip.info_nce(torch.zeros(4, 8), torch.zeros(4, 7))
    with pytest.raises(ValueError):
        clip.info_nce(torch.zeros(1, 8), torch.zeros(1, 8))
    with pytest.raises(TypeError):
        clip.info_nce(np.zeros((4, 8)), torch.zeros(4, 8))
    with pytest.raises(ValueError):
        clip.recall_at_k(torch.zeros(3, 4), 1)
    with pytest.raises(ValueError):
        clip.recall_at_k(torch.zeros(3, 3), 0)
    with pytest.raises(ValueError):
        clip.zero_shot_predict(torch.zeros(3, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="multiple of 8"):
        clip.ImageEncoder(size=20)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        clip.SceneJudge(width=8).predict(torch.full((2, 3, 32, 32), 255.0))


