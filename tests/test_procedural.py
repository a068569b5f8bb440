"""Tests of lib.procedural (chapter 2): turtle sampler, dice probabilities, dice-driven plants."""
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from lib import procedural as P


# ------------------------------------------------------------------ turtle
def test_turtle_straight_zigzag_is_hand_computable():
    # z = 1, 0, 1, 0: turn right 10 deg, then left 10 deg, ... -> headings 90, 80, 90, 80 degrees.
    pts = P.turtle_path([1, 0, 1, 0])
    h = [90, 80, 90, 80]
    expected = np.cumsum([[0, 0]] + [[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in h], 0)
    np.testing.assert_allclose(pts, expected, atol=1e-12)


def test_turtle_all_ones_closes_a_circle_clockwise():
    # 36 right turns of 10 degrees: a regular 36-gon with unit sides, back at the start.
    pts = P.turtle_path(np.ones(36))
    np.testing.assert_allclose(pts[-1], [0, 0], atol=1e-9)
    assert pts[1, 0] == pytest.approx(0) and pts[2, 0] > 0  # first step up, then bends right (+x)
    radius = 1 / (2 * math.sin(math.pi / 36))
    centre = pts.mean(0)  # vertices of a regular polygon: their mean is the centre (first==last dropped)
    centre = pts[:-1].mean(0)
    np.testing.assert_allclose(np.linalg.norm(pts[:-1] - centre, axis=1), radius, rtol=1e-9)
    # all zeros turns left: mirror image in x
    np.testing.assert_allclose(P.turtle_path(np.zeros(36)) * [-1, 1], pts, atol=1e-9)


def test_turtle_deterministic_in_z_and_changes_with_z():
    z = P.sample_z(1, 60, generator=torch.Generator().manual_seed(3))[0]
    a, b = P.turtle_image(z, size=32), P.turtle_image(z.clone(), size=32)
    assert torch.equal(a, b)
    assert a.shape == (1, 1, 32, 32) and a.min() >= -1 and a.max() <= 1 and (a > 0).any()
    z2 = z.clone(); z2[0] = 1 - z2[0]
    assert not np.allclose(P.turtle_path(z), P.turtle_path(z2))
    batch = P.turtle_image(torch.stack([z, z2]), size=32)
    assert batch.shape == (2, 1, 32, 32) and torch.equal(batch[0], a[0])


def test_sample_z_bernoulli_rate_and_extremes():
    g = torch.Generator().manual_seed(0)
    z = P.sample_z(200, 100, p=0.3, generator=g)
    assert z.shape == (200, 100) and set(z.unique().tolist()) <= {0.0, 1.0}
    assert abs(z.mean().item() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / z.numel())
    assert P.sample_z(3, 5, p=1.0).eq(1).all() and P.sample_z(3, 5, p=0.0).eq(0).all()


def test_rasterize_shared_scale_keeps_relative_size():
    short, long = np.array([[0, 0], [0, 1.0]]), np.array([[0, 0], [0, 4.0]])
    im = P.rasterize([short, long], size=33, fit="shared")
    ink = (im > 0).sum((1, 2, 3))
    assert ink[1] > 3 * ink[0]
    each = P.rasterize([short, long], size=33, fit="each")
    assert (each[0] > 0).sum() == (each[1] > 0).sum()


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_sample_z_rejects_bad_p(p):
    with pytest.raises(ValueError, match="probability"):
        P.sample_z(2, 10, p=p)


def test_turtle_bad_inputs():
    with pytest.raises(ValueError, match="0s and 1s"):
        P.turtle_path([0, 2, 1])
    with pytest.raises(ValueError, match="1-D"):
        P.turtle_path(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="1-D"):
        P.turtle_path([])
    with pytest.raises(ValueError, match="shape"):
        P.rasterize([np.zeros((3, 3))])
    with pytest.raises(TypeError):
        P.sample_z(2.5, 10)


# ------------------------------------------------------------------ dice
def _brute_force_counts():
    """Independent classification by the sorted multiset of face multiplicities."""
    out = {h: 0 for h in P.HANDS}
    for r in itertools.product(range(1, 7), repeat=5):
        mult = tuple(sorted((r.count(f) for f in set(r)), reverse=True))
        if mult == (1, 1, 1, 1, 1):
            out["straight" if sorted(r) in ([1, 2, 3, 4, 5], [2, 3, 4, 5, 6]) else "nothing"] += 1
        else:
            out[{(5,): "five of a kind", (4, 1): "four of a kind", (3, 2): "full house",
                 (3, 1, 1): "three of a kind", (2, 2, 1): "two pairs", (2, 1, 1, 1): "one pair"}[mult]] += 1
    return out


def test_dice_enumeration_matches_closed_form_and_partitions():
    enum, closed = P.dice_hand_counts_enumerated(), P.dice_hand_counts_closed_form()
    assert enum == closed == _brute_force_counts()
    assert set(enum) == set(P.HANDS) and sum(enum.values()) == 6 ** 5 == 7776
    # textbook counts (hand-computed): 6, 150, 300, 240, 1200, 1800, 3600, 480
    assert [enum[h] for h in P.HANDS] == [6, 150, 300, 240, 1200, 1800, 3600, 480]
    probs = P.dice_probabilities()
    assert sum(Fraction(c, 7776) for c in closed.values()) == 1
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-12)


def test_dice_monte_carlo_within_standard_errors():
    exact = P.dice_probabilities()
    mc = P.dice_monte_carlo(40000, seed=1)
    assert set(mc) == set(exact)
    for h, (p_hat, se) in mc.items():
        assert se == pytest.approx(math.sqrt(p_hat * (1 - p_hat) / 40000))
        assert abs(p_hat - exact[h]) < 4.5 * max(se, 1e-4), h
    assert math.isclose(sum(p for p, _ in mc.values()), 1.0, abs_tol=1e-9)


def test_vectorised_mc_classification_agrees_with_classify_hand():
    rolls = P.roll_dice(3000, generator=torch.Generator().manual_seed(0))
    counts = {h: 0 for h in P.HANDS}
    for r in rolls.tolist():
        counts[P.classify_hand(r)] += 1
    mc = P.dice_monte_carlo(3000, seed=0)
    for h in P.HANDS:
        assert mc[h][0] == pytest.approx(counts[h] / 3000)


def test_classify_hand_examples_and_errors():
    assert P.classify_hand([3, 3, 3, 3, 3]) == "five of a kind"
    assert P.classify_hand([2, 5, 2, 5, 5]) == "full house"
    assert P.classify_hand([6, 2, 4, 3, 5]) == "straight"
    assert P.classify_hand([1, 2, 3, 4, 6]) == "nothing"
    assert P.classify_hand([1, 1, 2, 2, 6]) == "two pairs"
    with pytest.raises(ValueError, match="5 dice"):
        P.classify_hand([1, 2, 3])
    with pytest.raises(ValueError, match="1..6"):
        P.classify_hand([0, 1, 2, 3, 4])


def test_slide_numbers_are_kept_and_do_not_form_a_distribution():
    assert len(P.SLIDE_DICE) == 8
    total = sum(pct for _, _, pct, _ in P.SLIDE_DICE)
    assert abs(total - 100) > 50  # the slide's percentages sum to about 23%, not 100%
    assert any(label == "Three Pairs" for label, *_ in P.SLIDE_DICE)


# ------------------------------------------------------------------ plants
def test_plant_same_rolls_same_plant_and_rules():
    rolls = P.roll_dice(400, generator=torch.Generator().manual_seed(5))
    a, b = P.grow_plant(rolls), P.grow_plant(rolls.clone())
    np.testing.assert_array_equal(a["segments"], b["segments"])
    assert a["hands"] == b["hands"] and a["rolls_used"] == len(a["segments"])
    # one node per roll used, and the number of nodes follows the branching rules
    n_children = sum(P.PLANT_RULES[h][0] for h in a["hands"])
    assert a["rolls_used"] <= 1 + n_children
    # a straight on the first roll stops the plant after one stem
    stub = P.grow_plant([[1, 2, 3, 4, 5]] + [[1, 1, 1, 1, 1]] * 5)
    assert stub["rolls_used"] == 1 and len(stub["flowers"]) == 0
    # five of a kind first: one stem with a flower
    flower = P.grow_plant([[6, 6, 6, 6, 6]])
    assert len(flower["flowers"]) == 1 and flower["rolls_used"] == 1
    # "nothing" grows on with a leaf at the end of its segment
    leafy = P.grow_plant([[1, 2, 3, 4, 6], [1, 2, 3, 4, 5]])
    assert leafy["rolls_used"] == 2 and len(leafy["leaves"]) == 1
    np.testing.assert_allclose(leafy["leaves"][0], leafy["segments"][0, 1])


def test_plant_fork_and_depth_limit():
    pair = [1, 1, 2, 3, 4]   # one pair -> grow on
    two = [2, 2, 4, 4, 6]    # two pairs -> fork in two
    p = P.grow_plant([two, pair, pair, pair, pair], max_depth=2)
    assert p["rolls_used"] == 3  # root + its 2 children; depth limit stops there
    # the two children start where the root ends
    np.testing.assert_allclose(p["segments"][1, 0], p["segments"][0, 1])
    np.testing.assert_allclose(p["segments"][2, 0], p["segments"][0, 1])


def test_plant_bad_rolls():
    with pytest.raises(ValueError, match=r"\(R, 5\)"):
        P.grow_plant([[1, 2, 3]])
    with pytest.raises(ValueError, match="1..6"):
        P.grow_plant([[7, 1, 1, 1, 1]])


def test_draw_plant_draws_every_segment_and_marker():
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    p = P.grow_plant([[2, 2, 4, 4, 6], [6, 6, 6, 6, 6], [1, 2, 3, 4, 6]], max_depth=3)
    ax = P.draw_plant(p, title="t")
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1 and len(lines[0].get_segments()) == len(p["segments"]) == 3
    assert len(p["flowers"]) == 1 and len(p["leaves"]) == 1
    assert ax.get_title() == "t"
    plt.close("all")


def test_roll_dice_faces_and_shape():
    r = P.roll_dice(5000, dice=3, generator=torch.Generator().manual_seed(0))
    assert r.shape == (5000, 3) and r.min() == 1 and r.max() == 6
    counts = torch.bincount(r.flatten(), minlength=7)[1:].float() / r.numel()
    assert (counts - 1 / 6).abs().max() < 0.02
    with pytest.raises(ValueError):
        P.roll_dice(0)
