"""Notebook 10.5's exercise checks (SPADE): the reference answer passes, wrong answers get
a hint. A toy judge (the class whose colour is nearest) and painted images stand in for
the trained networks."""

import pytest
import torch

from lib import landscapes as L
from exercise_testing import verdict

C = len(L.CLASSES)
COLOURS = torch.tensor([[-0.5, 0.0, 0.8], [0.0, -0.2, -0.1], [-0.4, 0.3, -0.6],
                        [-0.7, -0.3, 0.1], [-0.8, -0.3, -0.8]])


def judge(x):  # logits: minus the distance of each pixel's colour to each class colour
    return -((x[:, None] - COLOURS[None, :, :, None, None]) ** 2).sum(2)


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)
    return v


def test_ch10_spade_flat(capsys):
    uniform = torch.stack([L.one_hot(torch.full((8, 8), c)) for c in range(C) for _ in range(2)])
    right = torch.einsum("nchw,cd->ndhw", uniform, COLOURS)        # every class painted right
    wrong = torch.einsum("nchw,cd->ndhw", uniform, COLOURS[[2] * C])  # everything grass
    images = {"pix2pix": wrong, "SPADE": right}
    acc = {"pix2pix": (torch.arange(C) == 2).float(), "SPADE": torch.ones(C)}
    v = verdict("ch10-spade-flat", capsys, judge=judge, uniform=uniform, flat_images=images,
                flat_acc=acc)
    assert v and "SPADE 1.00, 1.00" in v.message
    swapped = {"pix2pix": acc["SPADE"], "SPADE": acc["pix2pix"]}
    not_yet("ch10-spade-flat", capsys, judge=judge, uniform=uniform, flat_images=images,
            flat_acc=swapped)
    mixed = uniform.clone()
    mixed[0, :, :4] = L.one_hot(torch.full((4, 8), 1))             # not flat
    not_yet("ch10-spade-flat", capsys, judge=judge, uniform=mixed, flat_images=images,
            flat_acc=acc)
    with pytest.raises(ValueError, match="pix2pix"):
        verdict("ch10-spade-flat", capsys, judge=judge, uniform=uniform,
                flat_images={"a": right}, flat_acc=acc)


def test_ch10_spade_mix(capsys):
    lab = torch.full((1, 8, 8), L.GRASS)
    lab[:, :4] = L.SKY
    layout = L.one_hot(lab)
    t = torch.linspace(0, 1, 7)
    a, b = torch.tensor([-0.5, 0.0, 0.8]), torch.tensor([0.6, 0.2, -0.4])
    sky_colours = (1 - t)[:, None] * a + t[:, None] * b               # (7, 3)
    images = sky_colours[:, :, None, None].repeat(1, 1, 8, 8)
    images[:, :, 4:] = -0.3
    sky = images[:, :, :4].mean((2, 3))
    v = verdict("ch10-spade-mix", capsys, spade_g=None, mix_layout=layout, mix_t=t,
                mix_images=images, mix_sky=sky)
    assert v and "smooth" in v.message
    not_yet("ch10-spade-mix", capsys, spade_g=None, mix_layout=layout, mix_t=t,
            mix_images=images, mix_sky=images.mean((2, 3)))           # the whole image
    not_yet("ch10-spade-mix", capsys, spade_g=None, mix_layout=layout, mix_t=t.flip(0),
            mix_images=images, mix_sky=sky)
    same = images[:1].repeat(7, 1, 1, 1)
    not_yet("ch10-spade-mix", capsys, spade_g=None, mix_layout=layout, mix_t=t,
            mix_images=same, mix_sky=same[:, :, :4].mean((2, 3)))
