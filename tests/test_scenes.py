"""lib.scenes: the captioned scenes (chapter 9): grammar round trip, held-out combinations, rendering;
chapter 10's removal layouts; the helpers shared by both."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from lib import scenes

objects = st.tuples(st.sampled_from(scenes.SIZES), st.sampled_from(scenes.COLOURS), st.sampled_from(scenes.SHAPES))


@given(st.one_of(
    st.tuples(st.lists(objects, min_size=1, max_size=1), st.sampled_from(scenes.WHERES), st.none()),
    st.tuples(st.lists(objects, min_size=2, max_size=2), st.none(), st.sampled_from(scenes.RELATIONS))))
@settings(max_examples=200, deadline=None)
def test_caption_grammar_round_trips(attrs):
    objs, where, rel = attrs
    cap = scenes.make_caption(objs, where=where, relation=rel)
    assert scenes.parse_caption(cap) == {"objects": tuple(map(tuple, objs)), "where": where, "relation": rel}
    assert scenes.tokenize(cap).shape == (1, scenes.MAX_TOKENS)


def test_caption_examples_by_hand():
    assert scenes.make_caption([("small", "green", "square"), ("large", "blue", "circle")], relation="below") == \
        "a small green square below a large blue circle"
    assert scenes.make_caption([("large", "red", "cross")], where="top") == "a large red cross at the top"
    assert scenes.parse_caption("a small red triangle to the right of a large blue circle")["relation"] == "right of"
    # the same picture, said two ways, has one canonical form
    a = scenes.parse_caption("a small green square below a large blue circle")
    b = scenes.parse_caption("a large blue circle above a small green square")
    assert scenes.canonical_attributes(a) == scenes.canonical_attributes(b) == b


def test_scenes_round_trip_and_are_deterministic():
    s = scenes.captioned_scenes("train", 40, seed=3)
    for scene, cap in zip(s.scenes, s.captions):
        assert scenes.parse_caption(cap) == scenes.scene_attributes(scene)
    s2 = scenes.captioned_scenes("train", 60, seed=3)
    assert torch.equal(s.images, s2.images[:40]) and s.captions == s2.captions[:40]   # prefix-stable
    s3 = scenes.captioned_scenes("train", 40, seed=4)
    assert s3.captions != s.captions
    assert s.images.shape == (40, 3, 32, 32) and s.images.min() >= -1 and s.images.max() <= 1
    assert scenes.captioned_scenes("test", 5, size=24).images.shape == (5, 3, 24, 24)


def test_heldout_combinations_never_in_train_or_test():
    for split in ("train", "test"):
        s = scenes.captioned_scenes(split, 600)
        pairs = {(o.shape, o.colour) for sc in s.scenes for o in sc.objects}
        assert not pairs & set(scenes.HELDOUT_PAIRS)
        assert len(pairs) == 16 - len(scenes.HELDOUT_PAIRS)          # every other pair does occur
        # and the captions say so too
        for cap in s.captions:
            for size, colour, shape in scenes.parse_caption(cap)["objects"]:
                assert (shape, colour) not in scenes.HELDOUT_PAIRS
        assert not s.heldout.any()
    h = scenes.captioned_scenes("heldout", 200)
    assert h.heldout.all()
    assert all(any((o.shape, o.colour) in scenes.HELDOUT_PAIRS for o in sc.objects) for sc in h.scenes)
    # the held-out pairs form a Latin square: every shape and every colour is held out once
    assert sorted(p[0] for p in scenes.HELDOUT_PAIRS) == sorted(scenes.SHAPES)
    assert sorted(p[1] for p in scenes.HELDOUT_PAIRS) == sorted(scenes.COLOURS)
    # train and test are different scenes
    tr, te = scenes.captioned_scenes("train", 50), scenes.captioned_scenes("test", 50)
    assert not any(torch.equal(a, b) for a in tr.images for b in te.images)


def test_geometry_matches_the_caption():
    s = scenes.captioned_scenes("all", 300, seed=1)
    for sc in s.scenes:
        if sc.relation is not None:
            a, b = sc.objects
            dx, dy = b.cx - a.cx, b.cy - a.cy           # reference minus subject; y grows downwards
            along = {"left of": dx, "right of": -dx, "above": dy, "below": -dy}[sc.relation]
            across = dy if sc.relation in ("left of", "right of") else dx
            assert along >= a.r + b.r and abs(across) <= 0.5 * along
        else:
            (o,) = sc.objects
            off = {"left": 0.5 - o.cx, "right": o.cx - 0.5, "top": 0.5 - o.cy, "bottom": o.cy - 0.5}[sc.where]
            assert off > 0.15
        for o in sc.objects:                              # inside the image
            assert o.r < o.cx < 1 - o.r and o.r < o.cy < 1 - o.r


def test_render_background_masks_and_removal():
    s = scenes.captioned_scenes("all", 30, seed=2, p_two=1.0)
    sc = s.scenes[0]
    img, bg, masks = scenes.render_scene(sc), scenes.render_background(sc), scenes.object_masks(sc)
    assert masks.shape == (2, 32, 32) and masks.min() >= 0 and masks.max() <= 1
    assert (masks > 0.5).flatten(1).sum(1).min() > 4                  # both objects are visible
    outside = (masks.sum(0) == 0)
    assert torch.allclose(img[:, outside], bg[:, outside])            # background where no object is
    inside = masks[0] == 1
    want = torch.tensor(sc.objects[0].rgb) * 2 - 1
    assert torch.allclose(img[:, inside], want[:, None].expand(3, int(inside.sum())), atol=1e-6)
    # removing the subject leaves the background where it was
    removed = scenes.render_scene(sc, objects=[1])
    assert torch.allclose(removed[:, masks[0] == 1], bg[:, masks[0] == 1])
    assert torch.allclose(scenes.render_scene(sc, objects=[]), bg, atol=1e-6)


def test_shape_areas_and_colours_are_distinct():
    o = dict(colour="red", size="large", cx=0.5, cy=0.5, r=6 / 32, rgb=(1.0, 0.0, 0.0))
    areas = {k: float(scenes.object_masks(scenes.Scene((scenes.SceneObject(shape=k, **o),), where="left")).sum())
             for k in scenes.SHAPES}
    assert abs(areas["circle"] - np.pi * 36) < 3                      # area of a disc of radius 6 px
    assert abs(areas["triangle"] - 0.5 * 12 * 12) < 3                 # base 12, height 12
    masks = torch.stack([scenes.object_masks(scenes.Scene((scenes.SceneObject(shape=k, **o),), where="left"))[0]
                         for k in scenes.SHAPES])
    assert min((masks[i] - masks[j]).abs().sum() for i in range(4) for j in range(i)) > 10


def test_labels_are_canonical():
    cap = "a small green square below a large blue circle"
    sc = scenes.Scene((scenes.SceneObject("square", "green", "small", 0.5, 0.8, 0.1, (0, 1, 0)),
                     scenes.SceneObject("circle", "blue", "large", 0.5, 0.3, 0.2, (0, 0, 1))), relation="below")
    assert scenes.scene_caption(sc) == cap
    lab = {k: int(v[0]) for k, v in scenes.scene_labels([sc]).items()}
    assert lab == {"n_objects": 2, "shape": scenes.SHAPES.index("circle"), "colour": scenes.COLOURS.index("blue"),
                   "size": 1, "where": -1, "axis": 0, "shape2": scenes.SHAPES.index("square"),
                   "colour2": scenes.COLOURS.index("green"), "size2": 0}


def test_one_object_captions_enumerates_the_grammar():
    assert len(scenes.one_object_captions()) == 2 * 4 * 4 * 4
    circles = scenes.one_object_captions(shape="circle")
    assert len(circles) == 32 and all(scenes.parse_caption(c)["objects"][0][2] == "circle" for c in circles)
    assert len(scenes.one_object_captions(shape="circle", colour="red", where="top")) == 2


def test_bad_inputs():
    with pytest.raises(ValueError, match="split"):
        scenes.captioned_scenes("valid", 10)
    with pytest.raises(ValueError, match="size"):
        scenes.captioned_scenes("train", 10, size=8)
    with pytest.raises(ValueError):
        scenes.captioned_scenes("train", 0)
    with pytest.raises(ValueError, match="grammar"):
        scenes.parse_caption("a purple square at the top")
    with pytest.raises(ValueError, match="grammar"):
        scenes.parse_caption("a small red square next to a large blue circle")
    with pytest.raises(TypeError):
        scenes.parse_caption(3)
    with pytest.raises(ValueError, match="unknown word"):
        scenes.tokenize(["a small purple square"])
    with pytest.raises(ValueError, match="more than"):
        scenes.tokenize(["a small red square"], length=3)
    with pytest.raises(ValueError):
        scenes.make_caption([("small", "red", "square")], relation="above")
    with pytest.raises(ValueError, match="colour"):
        scenes.make_caption([("small", "pink", "square")], where="top")
    with pytest.raises(ValueError, match="n_objects"):
        scenes.sample_scene(np.random.default_rng(0), 3)
    with pytest.raises(TypeError):
        scenes.render_scene("a red square")
    sc = scenes.captioned_scenes("train", 1).scenes[0]
    with pytest.raises(ValueError, match="index"):
        scenes.render_scene(sc, objects=[5])
    with pytest.raises(ValueError, match="attribute"):
        scenes.one_object_captions(texture="furry")


def test_removal_scene_objects_do_not_overlap():
    rng = np.random.default_rng(1)
    counts, dup = [], 0
    for _ in range(200):
        sc = scenes.sample_removal_scene(rng, n_objects=(2, 3), p_duplicate=0.5)
        m = scenes.object_masks(sc, 32)
        counts.append(len(sc.objects))
        assert float((m.sum(0) > 1.0 + 1e-6).sum()) == 0                # coverages never add up past 1
        for i in range(len(m)):
            for j in range(i):
                assert float((m[i] * m[j]).sum()) == 0                  # no shared pixel at all
        dup += (sc.objects[0].colour, sc.objects[0].shape) == (sc.objects[1].colour, sc.objects[1].shape)
    assert set(counts) == {2, 3}
    assert 0.4 < dup / 200 < 0.65      # p_duplicate = 0.5, plus 1/16 by chance; 200 draws: sd 0.035
    with pytest.raises(ValueError):
        scenes.sample_removal_scene(rng, n_objects=(2, 5))
    with pytest.raises(ValueError):
        scenes.sample_removal_scene(rng, p_duplicate=1.5)


def test_shape_colour_pairs_hold_out_the_latin_square():
    allp = scenes.shape_colour_pairs("all")
    assert len(allp) == 16 == len(set(allp)) and scenes.shape_colour_pairs("heldout") == allp
    seen = scenes.shape_colour_pairs("train")
    assert seen == scenes.shape_colour_pairs("test") == [p for p in allp if p not in scenes.HELDOUT_PAIRS]
    assert len(seen) == 12
    with pytest.raises(ValueError, match="split"):
        scenes.shape_colour_pairs("valid")


def test_sample_background_ranges_and_determinism():
    a = [scenes.sample_background(np.random.default_rng(s)) for s in range(200)]
    assert a[3] == scenes.sample_background(np.random.default_rng(3))
    level, amp, angle = map(np.array, zip(*a))
    assert (0.12 <= level).all() and (level <= 0.35).all()
    assert (0 <= amp).all() and (amp <= 0.12).all()
    assert (0 <= angle).all() and (angle < 2 * np.pi).all()
    img = scenes.render_background(scenes.Scene((), background=a[0]), 16)
    assert img.shape == (3, 16, 16) and float(img.min()) >= -1 and float(img.max()) <= 1


def test_saturation_mask_finds_the_coloured_objects_and_not_the_grey_background():
    ds = scenes.captioned_scenes("test", 8, p_two=0.0)
    m = scenes.saturation_mask(ds.images)
    assert m.shape == (8, 32, 32) and m.min() >= 0 and m.max() <= 1
    truth = torch.stack([scenes.object_masks(s).amax(0) for s in ds.scenes])   # rendered coverage
    assert (m[truth > 0.9] > 0.99).float().mean() > 0.95       # inside an object: 1
    assert m[truth == 0].abs().max() == 0                      # the grey background: exactly 0
    # any leading dimensions (e.g. clips (N, frames, 3, H, W))
    assert scenes.saturation_mask(ds.images[None]).shape == (1, 8, 32, 32)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        scenes.saturation_mask(ds.images[:, :1])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        scenes.saturation_mask(ds.images * 255)
    with pytest.raises(ValueError, match="threshold"):
        scenes.saturation_mask(ds.images, threshold=0.6)
