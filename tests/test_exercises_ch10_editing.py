"""lib.exercises.ch10_editing: the reference answers pass, wrong answers get a hint.

Small inputs (a few scenes, an untrained judge, a blurred truth standing in for the
hallucinations); the reference answers are computed as the notebook's hidden solutions do."""

import pytest
import torch

from lib import attributes, metrics
from exercise_testing import verdict

EDITS = attributes.EDIT_NAMES


@pytest.fixture(scope="module")
def scenes():
    d = attributes.edit_pairs(5, size=16, seed=7)
    truth = {e: d["target"][:, k] for k, e in enumerate(EDITS)}
    torch.manual_seed(0)
    judge = attributes.AttributeJudge(width=8, size=16).eval()
    return d["source"], truth, judge


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 30, str(v)
    return v


def test_ch10_edit_oracle(scenes, capsys):
    x, truth, judge = scenes
    oracle = {e: attributes.histogram_transfer(x, truth[e]) for e in EDITS}
    acc = {e: 100 * attributes.attribute_accuracy(judge, oracle[e], e) for e in EDITS}
    psnr = {e: metrics.psnr(oracle[e], truth[e]) for e in EDITS}
    worst = min(EDITS, key=lambda e: psnr[e])
    common = dict(judge=judge, x_test=x, truth=truth)
    v = verdict("ch10-edit-oracle", capsys, **common, oracle_acc=acc, oracle_psnr=psnr,
                worst=worst)
    assert v and f"furthest from the truth: {worst}" in v.message
    best = max(EDITS, key=lambda e: psnr[e])
    not_yet("ch10-edit-oracle", capsys, **common, oracle_acc=acc, oracle_psnr=psnr,
            worst=best)
    # a fraction where a percentage is asked (matters only where the accuracy is not 0)
    frac = {e: a / 100 for e, a in acc.items()}
    if any(a > 1 for a in acc.values()):
        not_yet("ch10-edit-oracle", capsys, **common, oracle_acc=frac, oracle_psnr=psnr,
                worst=worst)
    # the input's PSNR instead of the transfer's
    raw = {e: metrics.psnr(x, truth[e]) for e in EDITS}
    not_yet("ch10-edit-oracle", capsys, **common, oracle_acc=acc, oracle_psnr=raw,
            worst=min(EDITS, key=lambda e: raw[e]))
    with pytest.raises(TypeError, match="one number per edit"):
        verdict("ch10-edit-oracle", capsys, **common, oracle_acc={"night": 1.0},
                oracle_psnr=psnr, worst=worst)
    with pytest.raises(ValueError, match="worst"):
        verdict("ch10-edit-oracle", capsys, **common, oracle_acc=acc, oracle_psnr=psnr,
                worst="rain")


def test_ch10_edit_radius(scenes, capsys):
    x, truth, _ = scenes
    halluc = torch.nn.functional.avg_pool2d(truth["night"], 3, 1, 1, count_include_pad=False)
    radii = [1, 2, 4]
    outs = [attributes.local_affine_transfer(x, halluc, r, 1e-2) for r in radii]
    kept = [attributes.structure_kept(o, x) for o in outs]
    psnr = [metrics.psnr(o, truth["night"]) for o in outs]
    more = kept[-1] > kept[0]
    common = dict(x_test=x, halluc=halluc, truth=truth["night"], eps=1e-2, radii=radii)
    v = verdict("ch10-edit-radius", capsys, **common, kept_r=kept, psnr_r=psnr,
                more_structure=more)
    assert v and "radius 1: kept" in v.message
    not_yet("ch10-edit-radius", capsys, **common, kept_r=kept, psnr_r=psnr,
            more_structure=not more)
    not_yet("ch10-edit-radius", capsys, **common, kept_r=kept[::-1], psnr_r=psnr,
            more_structure=more)
    # the hallucination's own structure, not the transfer's
    raw = [attributes.structure_kept(halluc, x)] * 3
    not_yet("ch10-edit-radius", capsys, **common, kept_r=raw, psnr_r=psnr,
            more_structure=more)
    with pytest.raises(ValueError, match="3 numbers"):
        verdict("ch10-edit-radius", capsys, **common, kept_r=kept[:2], psnr_r=psnr,
                more_structure=more)
    with pytest.raises(TypeError, match="True or False"):
        verdict("ch10-edit-radius", capsys, **common, kept_r=kept, psnr_r=psnr,
                more_structure="yes")
