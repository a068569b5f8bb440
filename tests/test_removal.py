"""Tests of lib.removal (chapter 10, instruction-based object removal): scene graph, instruction
generation (refers to exactly one object), resolution, data, measures, model, bad inputs."""
import copy
import re

import numpy as np
import pytest
import torch

from lib import metrics, removal as R, scenes


def obj(shape, colour, size, cx, cy):
    r = {"small": 3.5 / 32, "large": 6 / 32}[size]
    return scenes.SceneObject(shape, colour, size, cx, cy, r, scenes.RGB[colour])


def scene(*objs):
    return scenes.Scene(tuple(objs), background=(0.2, 0.05, 0.3))


# --- an independent reader of the grammar ---------------------------------------------------
# Written from the grammar's *definition* (docstrings of lib.removal), not from its code: it
# parses with a regular expression and evaluates the geometry directly.

_REL = {"to the left of": "left of", "to the right of": "right of", "above": "above", "below": "below"}
_PAT = re.compile(r"^remove the (?:(small|large) )?(\w+) (\w+)"
                  r"(?: (on the left|on the right|at the top|at the bottom)"
                  r"| (to the left of|to the right of|above|below) the (?:(small|large) )?(\w+) (\w+))?$")


def related(a, b, rel):
    dx, dy = b.cx - a.cx, b.cy - a.cy
    m = 3 / 32
    return {"left of": dx >= m and dx >= 2 * abs(dy), "right of": -dx >= m and -dx >= 2 * abs(dy),
            "above": dy >= m and dy >= 2 * abs(dx), "below": -dy >= m and -dy >= 2 * abs(dx)}[rel]


def referents(sc, text):
    g = _PAT.match(text)
    assert g, f"instruction outside the grammar: {text!r}"
    size, colour, shape, pos, rel, rsize, rcolour, rshape = g.groups()
    fits = lambda o, s, c, k: o.colour == c and o.shape == k and (s is None or o.size == s)
    cand = [i for i, o in enumerate(sc.objects) if fits(o, size, colour, shape)]
    if pos:
        coord = {"on the left": lambda o: o.cx, "on the right": lambda o: -o.cx,
                 "at the top": lambda o: o.cy, "at the bottom": lambda o: -o.cy}[pos]
        return [i for i in cand if all(coord(sc.objects[j]) - coord(sc.objects[i]) >= 3 / 32 - 1e-12
                                       for j in cand if j != i)]
    if rel:
        refs = [j for j, o in enumerate(sc.objects) if fits(o, rsize, rcolour, rshape)]
        assert len(refs) == 1, f"the reference of {text!r} is not unique"
        return [i for i in cand if i != refs[0] and related(sc.objects[i], sc.objects[refs[0]], _REL[rel])]
    return cand


# --- scene graph -----------------------------------------------------------------------------

def test_relation_by_hand():
    a, b = obj("circle", "red", "small", 0.2, 0.5), obj("square", "blue", "small", 0.7, 0.55)
    assert R.relation(a, b) == "left of" and R.relation(b, a) == "right of"
    top, low = obj("cross", "green", "small", 0.5, 0.2), obj("cross", "green", "small", 0.45, 0.8)
    assert R.relation(top, low) == "above" and R.relation(low, top) == "below"
    diag = obj("circle", "blue", "small", 0.7, 0.8)
    assert R.relation(a, diag) is None                         # dx = 0.5, dy = 0.3: not twice
    close = obj("circle", "blue", "small", 0.2 + 2 / 32, 0.5)
    assert R.relation(a, close) is None                        # below the 3/32 margin


def test_scene_graph_lists_both_directions():
    sc = scene(obj("circle", "red", "small", 0.2, 0.5), obj("square", "blue", "large", 0.7, 0.5),
               obj("cross", "green", "small", 0.7, 0.9))
    g = R.scene_graph(sc)
    assert g.nodes == (("small", "red", "circle"), ("large", "blue", "square"), ("small", "green", "cross"))
    assert set(g.edges) == {(0, "left of", 1), (1, "right of", 0), (1, "above", 2), (2, "below", 1)}
    assert g.relations_of(1) == [("right of", 0), ("above", 2)]
    with pytest.raises(TypeError):
        R.scene_graph("a scene")


# --- instructions ------------------------------------------------------------------------------

def hand_scene():
    # 0: small red circle, left;  1: large red circle, right;  2: small blue square below circle 1
    return scene(obj("circle", "red", "small", 0.2, 0.3), obj("circle", "red", "large", 0.7, 0.3),
                 obj("square", "blue", "small", 0.7, 0.8))


def test_referring_expressions_by_hand():
    sc = hand_scene()
    e0 = R.referring_expressions(sc, 0)
    assert e0 == {"attributes": [], "size": ["small red circle"], "position": ["red circle on the left"],
                  "relation": ["red circle to the left of the large red circle"]}
    e1 = R.referring_expressions(sc, 1)
    assert e1["attributes"] == [] and e1["size"] == ["large red circle"]
    assert e1["position"] == ["red circle on the right"]
    assert set(e1["relation"]) == {"red circle to the right of the small red circle",
                                   "red circle above the blue square"}
    e2 = R.referring_expressions(sc, 2)
    assert e2["attributes"] == ["blue square"] and e2["position"] == []
    assert e2["relation"] == ["blue square below the large red circle"]
    # the shortest instruction, without rng
    assert R.instruction(sc, 2) == ("remove the blue square", "attributes")
    assert R.instruction(sc, 0) == ("remove the small red circle", "size")


def test_resolve_by_hand():
    sc = hand_scene()
    assert R.resolve(sc, "remove the red circle") == [0, 1]                 # ambiguous: two objects
    assert R.resolve(sc, "remove the large red circle") == [1]
    assert R.resolve(sc, "remove the red circle on the left") == [0]
    assert R.resolve(sc, "remove the red circle at the top") == []          # same height: no clear top one
    assert R.resolve(sc, "remove the red circle above the blue square") == [1]
    assert R.resolve(sc, "remove the green cross") == []
    for bad in ("delete the red circle", "remove the red", "remove the red circle near the blue square",
                "remove the red circle to the left of"):
        with pytest.raises(ValueError):
            R.resolve(sc, bad)
    with pytest.raises(TypeError):
        R.resolve(sc, 3)


def test_an_object_that_cannot_be_described_is_refused():
    # two identical small red circles close together: neither size, position nor relation separates them
    sc = scene(obj("circle", "red", "small", 0.3, 0.3), obj("circle", "red", "small", 0.35, 0.33))
    assert not any(R.referring_expressions(sc, 0).values())
    with pytest.raises(ValueError, match="uniquely"):
        R.instruction(sc, 0)
    with pytest.raises(ValueError):
        R.referring_expressions(sc, 2)


def test_generated_instructions_refer_to_exactly_the_target():
    rng = np.random.default_rng(0)
    forms = set()
    for _ in range(400):
        sc = scenes.sample_removal_scene(rng)
        for t in range(len(sc.objects)):
            for form, phrases in R.referring_expressions(sc, t).items():
                for p in phrases:
                    text = "remove the " + p
                    assert referents(sc, text) == [t], (text, sc)      # the independent reader
                    assert R.resolve(sc, text) == [t], text            # the library's reader
                    assert len(text.split()) <= R.INSTRUCTION_TOKENS
                    forms.add(form)
    assert forms == set(R.FORMS)


def test_tokenize():
    tok = R.tokenize_instruction(["remove the red circle", "remove the small blue cross above the green square"])
    assert tok.shape == (2, R.INSTRUCTION_TOKENS) and tok.dtype == torch.int64
    assert [R.INSTRUCTION_VOCAB[i] for i in tok[0, :4]] == ["remove", "the", "red", "circle"]
    assert (tok[0, 4:] == 0).all() and (tok[1, :9] != 0).all() and (tok[1, 9:] == 0).all()
    with pytest.raises(ValueError, match="unknown word"):
        R.tokenize_instruction("remove the purple circle")
    with pytest.raises(ValueError, match="more than"):
        R.tokenize_instruction("remove the red circle", length=3)


# --- data ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ds():
    return R.removal_examples("test", 60, size=32, seed=0)


def test_examples_are_exact_removals(ds):
    assert ds.inputs.shape == ds.targets.shape == ds.backgrounds.shape == (60, 3, 32, 32)
    assert ds.masks.shape == (60, 3, 32, 32) and ds.tokens.shape == (60, R.INSTRUCTION_TOKENS)
    for i in range(len(ds)):
        sc, t = ds.scenes[i], int(ds.target[i])
        keep = [k for k in range(len(sc.objects)) if k != t]
        assert torch.equal(ds.targets[i], scenes.render_scene(sc, 32, objects=keep))
        assert R.resolve(sc, ds.instructions[i]) == [t]
        assert referents(sc, ds.instructions[i]) == [t]
        cover = ds.masks[i, t]
        inside, outside = cover > 0.999, cover == 0
        # under the target only the background is left; elsewhere nothing changed
        assert torch.allclose(ds.targets[i][:, inside], ds.backgrounds[i][:, inside], atol=1e-6)
        assert torch.equal(ds.targets[i][:, outside], ds.inputs[i][:, outside])
        assert (ds.masks[i, len(sc.objects):] == 0).all()
    assert torch.equal(ds.target_masks()[:, 0], (ds.masks[torch.arange(60), ds.target] > 0.5).float())


def test_examples_are_deterministic_and_splits_disjoint(ds):
    again = R.removal_examples("test", 30, seed=0)
    assert torch.equal(again.inputs, ds.inputs[:30]) and again.instructions == ds.instructions[:30]
    train = R.removal_examples("train", 60, seed=0)
    flat = lambda x: {tuple(np.round(v.numpy().ravel(), 4)) for v in x}
    assert not flat(train.inputs) & flat(ds.inputs)
    sub = ds.subset([3, 1])
    assert sub.instructions == [ds.instructions[3], ds.instructions[1]] and torch.equal(sub.inputs[1], ds.inputs[1])
    with pytest.raises(ValueError):
        R.removal_examples("val", 10)
    with pytest.raises(ValueError):
        R.removal_examples("train", 10, size=8)


# --- measures and baselines --------------------------------------------------------------------

def test_removal_fractions_and_right_object_rate(ds):
    n = len(ds)
    f = R.removal_fractions(ds.targets, ds)
    k = torch.tensor([len(s.objects) for s in ds.scenes])
    assert torch.allclose(f[torch.arange(n), ds.target], torch.ones(n, dtype=torch.float64))
    for i in range(n):
        others = [j for j in range(int(k[i])) if j != int(ds.target[i])]
        assert torch.allclose(f[i, others], torch.zeros(len(others), dtype=torch.float64))
        assert torch.isnan(f[i, int(k[i]):]).all()
    assert torch.allclose(torch.nan_to_num(R.removal_fractions(ds.inputs, ds)), torch.zeros(n, 3, dtype=torch.float64))
    half = R.removal_fractions((ds.inputs + ds.targets) / 2, ds)[torch.arange(n), ds.target]
    assert torch.allclose(half, torch.full((n,), 0.5, dtype=torch.float64))
    assert R.right_object_rate(ds.targets, ds) == 1.0 and R.right_object_rate(ds.inputs, ds) == 0.0
    # removing a wrong object (always another one) never counts; removing everything neither
    wrong = (ds.target + 1) % k
    assert R.right_object_rate(R.remove_objects(ds, wrong), ds) == 0.0
    assert R.right_object_rate(ds.backgrounds, ds) == 0.0
    with pytest.raises(ValueError):
        R.removal_fractions(ds.inputs[:3], ds)


def test_remove_objects_is_the_exact_removal(ds):
    assert torch.allclose(R.remove_objects(ds, ds.target), ds.targets, atol=1e-6)
    with pytest.raises(ValueError):
        R.remove_objects(ds, torch.full((len(ds),), 5))


def test_oracle_inpaint_removes_the_right_object(ds):
    o = R.oracle_inpaint(ds)
    assert R.right_object_rate(o, ds) == 1.0
    m = ds.target_masks()
    # the background is a smooth gradient: filling it from the border is (almost) exact
    assert metrics.psnr_masked(o, ds.targets, m) > metrics.psnr_masked(ds.inputs, ds.targets, m) + 20
    assert metrics.psnr(o, ds.targets) > 40
    # inpaint() of an empty mask changes nothing; of the target's mask it equals the oracle
    assert torch.allclose(R.inpaint(ds.inputs[:4], torch.zeros(4, 1, 32, 32)), ds.inputs[:4], atol=1e-6)
    cov = (ds.masks[torch.arange(4), ds.target[:4]] > 0.01).float()[:, None]
    assert torch.allclose(R.inpaint(ds.inputs[:4], cov), o[:4])
    # a one-pixel mask dilated by one pixel becomes scipy's 3x3 cross: on a noise image exactly
    # those 5 pixels change (and only the pixel itself without dilation)
    noise = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    one = torch.zeros(1, 1, 32, 32); one[0, 0, 10, 10] = 1
    cross = torch.zeros(32, 32, dtype=torch.bool); cross[9:12, 10] = True; cross[10, 9:12] = True
    changed = lambda d: ((R.inpaint(noise, one, dilate=d) - noise).abs() > 1e-5).any(1)[0]
    assert torch.equal(changed(1), cross) and torch.equal(changed(0), one[0, 0].bool())
    with pytest.raises(ValueError):
        R.inpaint(ds.inputs[:4], torch.full((4, 1, 32, 32), 0.5))


# --- the model ---------------------------------------------------------------------------------

def test_model_shapes_mask_and_padding_invariance(ds):
    torch.manual_seed(0)
    net = R.InstructionRemover(width=4, text_dim=8).eval()
    x, tok = ds.inputs[:4], ds.tokens[:4]
    out, logits = net(x, tok, return_logits=True)
    assert out.shape == x.shape and logits.shape == (4, 1, 32, 32)
    m = net.mask(x, tok)
    assert torch.allclose(m, torch.sigmoid(logits)) and (m >= 0).all() and (m <= 1).all()
    # the output is a blend of the input and the fill: where the mask is ~0 it equals the input
    with torch.no_grad():
        net.head.bias[0] = -50.0
    assert torch.allclose(net(x, tok), x, atol=1e-6)
    # longer padding does not change the reading of the instruction
    longer = torch.cat([tok, torch.zeros(4, 5, dtype=torch.int64)], 1)
    assert torch.allclose(net(x, tok), net(x, longer), atol=1e-6)
    with pytest.raises(TypeError):
        net(x, tok.float())
    with pytest.raises(ValueError):
        net(torch.zeros(1, 3, 20, 20), tok[:1])
    with pytest.raises(ValueError):
        net(x, tok[:3])


def test_fit_reduces_the_loss_and_uses_the_text(ds):
    torch.manual_seed(0)
    net = R.InstructionRemover(width=4, text_dim=8)
    small = ds.subset(range(8))
    h = R.fit_remover(net, small, steps=40, batch=8, lr=5e-3, desc="test")
    assert np.mean(h["l1"][-5:]) < np.mean(h["l1"][:5]) and np.mean(h["mask BCE"][-5:]) < np.mean(h["mask BCE"][:5])
    out = R.apply_remover(net, small)
    assert out.shape == small.inputs.shape
    m = R.apply_remover(net, small, masks=True)
    assert m.shape == (8, 1, 32, 32) and torch.allclose(m, net.mask(small.inputs, small.tokens))
    other = R.apply_remover(net, small, tokens=small.tokens.roll(1, 0))
    assert not torch.allclose(out, other)                  # a different instruction, a different edit
    with pytest.raises(TypeError):
        R.fit_remover(net, small.inputs, steps=1)
    with pytest.raises(ValueError):
        R.fit_remover(net, small, steps=0)


def test_fit_remover_takes_the_steps_of_its_former_hand_written_loop(ds):
    """fit_remover runs on lib.train.fit: the same weights as the loop it replaced."""
    import torch.nn.functional as F
    small = ds.subset(range(8))
    torch.manual_seed(1)
    a = R.InstructionRemover(width=4, text_dim=8)
    b = copy.deepcopy(a)
    h = R.fit_remover(a, small, steps=6, batch=4, lr=5e-3, mask_weight=0.5, seed=3)
    assert sorted(h) == ["l1", "mask BCE"] and len(h["l1"]) == 6
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    opt = torch.optim.Adam(b.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 6, eta_min=5e-3 * 0.05)
    b.train()
    for _ in range(6):
        idx = torch.randint(len(small), (4,), generator=g)
        out, logits = b(small.inputs[idx], small.tokens[idx], return_logits=True)
        loss = F.l1_loss(out, small.targets[idx]) + 0.5 * F.binary_cross_entropy_with_logits(
            logits, small.masks[idx, small.target[idx]][:, None])
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_instruction_encoder_refuses_bad_word_ids():
    enc = R.InstructionEncoder(dim=4)
    ok = R.tokenize_instruction(["remove the red circle"])
    assert enc(ok).shape == (1, 8)
    with pytest.raises(ValueError, match=r"int64 word ids of shape \(N, L\)"):
        enc(ok.float())
    with pytest.raises(ValueError, match=r"int64 word ids of shape \(N, L\)"):
        enc(ok[0])
    with pytest.raises(ValueError, match=r"word ids must lie in \[0, "):
        enc(ok + 1000)
