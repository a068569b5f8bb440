"""lib.landscapes: layouts, label maps, rendering under attributes, the data set."""
import numpy as np
import pytest
import torch

from lib import landscapes as L


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    return L.sample_layout(rng), L.sample_style(rng)


def test_labels_cover_the_classes_where_the_layout_puts_them():
    lay = L.Layout(horizon=0.5, ridge=(0.2, (0.0, 1.0, 0.0), (0.0, 1.0, 0.0)),
                   lake=(0.5, 0.8, 0.2, 0.1), trees=((0.15, 0.9, 0.3, 0.08),), seed=1)
    lab = L.layout_labels(lay, 40)
    assert lab.shape == (40, 40) and lab.dtype == torch.long
    assert lab[0, 20] == L.SKY                 # top row: sky
    assert lab[16, 20] == L.MOUNTAIN           # between horizon - 0.2 and the horizon
    assert lab[32, 20] == L.WATER              # the lake's centre
    assert lab[34, 6] == L.TREE                # just above the tree's base, at its axis
    assert lab[23, 6] == L.GRASS               # above the tree's apex (0.6) but below the horizon
    # a tree is a triangle standing on its base: wider at the bottom than at the top
    rows = (lab == L.TREE).sum(1)
    tree_rows = rows.nonzero().flatten()
    assert rows[tree_rows[-1]] > rows[tree_rows[0]]


def test_render_is_an_image_and_attributes_change_only_the_look():
    lay, sty = _scene(3)
    day = L.render(lay, sty, "day", "clear", 32)
    assert day.shape == (3, 32, 32) and day.min() >= -1 and day.max() <= 1
    assert torch.equal(day, L.render(lay, sty, "day", "clear", 32))  # deterministic
    night = L.render(lay, sty, "night", "clear", 32)
    snow = L.render(lay, sty, "day", "snow", 32)
    assert night.mean() < day.mean() - 0.3                          # night is darker
    ground = L.layout_labels(lay, 32) == L.GRASS
    assert snow[:, ground].mean() > day[:, ground].mean() + 0.3      # snow whitens the grass
    fog = L.render(lay, sty, "day", "fog", 32)
    assert fog.std() < day.std()                                      # fog lowers contrast


def test_one_hot_and_its_checks():
    lab = L.layout_labels(_scene(1)[0], 16)
    oh = L.one_hot(lab)
    assert oh.shape == (len(L.CLASSES), 16, 16) and torch.equal(oh.argmax(0), lab)
    assert L.one_hot(lab[None].repeat(2, 1, 1)).shape == (2, len(L.CLASSES), 16, 16)
    with pytest.raises(TypeError, match="int64"):
        L.one_hot(lab.float())
    with pytest.raises(ValueError, match="lie in 0..4"):
        L.one_hot(lab + 10)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        L.one_hot(lab[None, None])


def test_bad_attributes_and_sizes_are_refused():
    lay, sty = _scene()
    with pytest.raises(ValueError, match="time"):
        L.render(lay, sty, "noon")
    with pytest.raises(ValueError, match="weather"):
        L.render(lay, sty, "day", "rain")
    with pytest.raises(ValueError, match="size"):
        L.render(lay, sty, size=0)
    with pytest.raises(ValueError, match="weathers"):
        L.landscapes(2, weathers=("hail",))


def test_data_set_rerenders_exactly_and_draws_the_asked_attributes():
    d = L.landscapes(12, size=16, seed=5, times=("day", "night"), weathers=("clear",))
    assert d["images"].shape == (12, 3, 16, 16) and d["labels"].shape == (12, 16, 16)
    assert set(d["time"].tolist()) <= {L.TIMES.index("day"), L.TIMES.index("night")}
    assert set(d["weather"].tolist()) == {L.WEATHERS.index("clear")}
    i = 4
    again = L.render(d["layouts"][i], d["styles"][i], L.TIMES[d["time"][i]], "clear", 16)
    assert torch.equal(again, d["images"][i])
    assert torch.equal(L.landscapes(12, size=16, seed=5, times=("day", "night"),
                                    weathers=("clear",))["images"], d["images"])
