"""lib.attributes: paired edit data, the conditioning hook, the local affine transfer, the
global colour transfers and the measures."""
import pytest
import torch

from lib import attributes as A
from lib import landscapes as L
from lib import nets, translation


@pytest.fixture(scope="module")
def pairs():
    return A.edit_pairs(6, size=16, seed=3)


def test_edit_pairs_are_the_same_scenes_under_each_edit(pairs):
    assert pairs["source"].shape == (6, 3, 16, 16)
    assert pairs["target"].shape == (6, len(A.EDITS), 3, 16, 16)
    lay, sty = pairs["layouts"][2], pairs["styles"][2]
    assert torch.equal(pairs["source"][2], L.render(lay, sty, "day", "clear", 16))
    k = A.EDIT_NAMES.index("snow")
    assert torch.equal(pairs["target"][2, k], L.render(lay, sty, "day", "snow", 16))
    t, w = A.target_attributes(["night", "fog"])
    assert t.tolist() == [L.TIMES.index("night"), L.TIMES.index("day")]
    assert w.tolist() == [L.WEATHERS.index("clear"), L.WEATHERS.index("fog")]


def test_condition_appends_one_hot_planes_and_trains_with_pix2pix(pairs):
    x = pairs["source"]
    c = A.condition(x, torch.tensor([0, 1, 2, 3, 0, 1]))
    assert c.shape == (6, 3 + len(A.EDITS), 16, 16)
    assert torch.equal(c[:, :3], x)
    assert c[1, 3 + 1].eq(1).all() and c[1, 3:].sum(0).eq(1).all()
    assert torch.equal(A.condition(x, "fog")[:, 3:], A.condition(x, [3] * 6)[:, 3:])
    with pytest.raises(ValueError, match="one edit per image"):
        A.condition(x, [0, 1])
    with pytest.raises(ValueError, match="edit"):
        A.condition(x, "rain")
    with pytest.raises(ValueError, match="0..3"):
        A.condition(x, [7])
    torch.manual_seed(0)
    G = nets.ImageUNet(c.shape[1], 3, ngf=4, depth=4)
    D = nets.PatchDiscriminator(c.shape[1] + 3, ndf=4, n_layers=1)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), 1e-3) for m in (G, D))
    out = translation.pix2pix_step(G, D, opt_g, opt_d, c, pairs["target"][:, 0])
    assert set(out) == {"D", "G_gan", "G_l1"}


def test_local_affine_transfer_keeps_edges_and_takes_colours():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g) * 1.6 - 0.8
    # a styled image that is a global affine colour map of x: reproduced exactly
    m = torch.tensor([[0.5, 0.1, 0.0], [0.0, 0.6, 0.1], [0.1, 0.0, 0.4]])
    styled = (torch.einsum("ij,njhw->nihw", m, x) - 0.2).clamp(-1, 1)
    out = A.local_affine_transfer(x, styled, radius=2, eps=1e-6)
    assert out.shape == x.shape and (out - styled).abs().max() < 1e-3
    # a blurred, recoloured version of a blocky image: the edges come back sharp
    blocks = torch.rand(2, 3, 4, 4, generator=g).repeat_interleave(4, 2).repeat_interleave(4, 3)
    blocks = blocks * 1.6 - 0.8
    recoloured = (0.5 * blocks.flip(1) - 0.3).clamp(-1, 1)
    blurred = torch.nn.functional.avg_pool2d(recoloured, 5, 1, 2, count_include_pad=False)
    out = A.local_affine_transfer(blocks, blurred, radius=2, eps=1e-4)
    assert A.structure_kept(out, blocks) > A.structure_kept(blurred, blocks) + 0.1
    assert (out - recoloured).abs().mean() < (blurred - recoloured).abs().mean()
    with pytest.raises(ValueError, match="same shape"):
        A.local_affine_transfer(x, x[:, :, :8])
    with pytest.raises(ValueError, match="radius"):
        A.local_affine_transfer(x, x, radius=-1)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        A.local_affine_transfer(x * 255, x)


def test_global_transfers_match_the_exemplars_statistics(pairs):
    x, ex = pairs["source"], pairs["target"][:, A.EDIT_NAMES.index("night")]
    h = A.histogram_transfer(x, ex)
    assert h.shape == x.shape and h.min() >= -1 and h.max() <= 1
    assert abs(float(h.mean() - ex.mean())) < 0.05 < abs(float(x.mean() - ex.mean()))
    r = A.reinhard_transfer(x, ex[:1])  # one exemplar for all
    assert r.shape == x.shape and float(r.mean()) < float(x.mean()) - 0.3
    with pytest.raises(ValueError, match="one exemplar per image"):
        A.histogram_transfer(x, ex[:2])


def test_judge_accuracy_and_structure_measures(pairs):
    torch.manual_seed(0)
    judge = A.AttributeJudge(width=8, size=16).eval()
    x = pairs["source"]
    out = judge(x)
    assert out["time"].shape == (6, 3) and out["weather"].shape == (6, 3)
    t, w = judge.predict(x)
    # accuracy is the fraction where both heads read what the edit asks for
    want_t, want_w = A.target_attributes(["night"] * 6)
    acc = A.attribute_accuracy(judge, x, "night")
    assert acc == float(((t == want_t) & (w == want_w)).double().mean())
    assert A.structure_kept(x, x) == pytest.approx(1.0)
    assert A.luminance(x).shape == (6, 1, 16, 16)
    with pytest.raises(ValueError, match="one edit per image"):
        A.attribute_accuracy(judge, x, ["night", "fog"])
