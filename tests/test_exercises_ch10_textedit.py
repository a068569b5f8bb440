"""Notebook 10.6's exercise checks (CLIPInverter): the reference answer passes, wrong answers
get a hint. A tiny untrained judge and random images stand in for the edits: the checks
measure them, they do not judge the editor."""

import numpy as np
import pytest
import torch
from exercise_testing import verdict

from lib import clip, scenes, textedit


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    judge = clip.SceneJudge(width=8).eval()
    caps = scenes.captioned_scenes("test", 12, p_two=0.0).captions
    req = textedit.edit_requests(caps, np.random.default_rng(0))
    g = torch.Generator().manual_seed(1)
    ims = {k: torch.rand(12, 3, 32, 32, generator=g) * 2 - 1 for k in (0.0, 0.5, 2.0)}

    def measure(images):
        out = {}
        for k, x in images.items():
            sc = textedit.edit_scores(judge.predict(x), req)
            out[k] = (100 * float(sc["success"].mean()), 100 * float(sc["preserved"].mean()))
        return {k: v[0] for k, v in out.items()}, {k: v[1] for k, v in out.items()}

    return judge, req, ims, measure


def test_ch10_textedit_latent(setup, capsys):
    judge, req, ims, measure = setup
    s, p = measure(ims)
    assert verdict("ch10-textedit-latent", capsys, judge=judge, req=req, latent_images=ims, latent_success=s, latent_preserved=p)
    bad = {**s, 0.5: s[0.5] + 10}
    v = verdict("ch10-textedit-latent", capsys, judge=judge, req=req, latent_images=ims, latent_success=bad, latent_preserved=p)
    assert not v and "success[0.5]" in v.message
    two = {k: ims[k] for k in (0.5, 2.0)}
    s2, p2 = measure(two)
    assert not verdict("ch10-textedit-latent", capsys, judge=judge, req=req, latent_images=two, latent_success=s2, latent_preserved=p2)
    with pytest.raises(ValueError, match="same keys"):
        verdict("ch10-textedit-latent", capsys, judge=judge, req=req, latent_images=ims, latent_success={0.0: 1}, latent_preserved=p)


def test_ch10_textedit_terms(setup, capsys):
    judge, req, ims, measure = setup
    terms = {"global": ims[0.0], "directional": ims[2.0]}
    s, p = measure(terms)
    v = verdict("ch10-textedit-terms", capsys, judge=judge, req=req, term_images=terms, term_success=s, term_preserved=p)
    assert v and "leaks" in v.message
    same = {"global": ims[0.0], "directional": ims[0.0]}
    s2, p2 = measure(same)
    assert not verdict("ch10-textedit-terms", capsys, judge=judge, req=req, term_images=same, term_success=s2, term_preserved=p2)
    bad = dict(p, directional=p["directional"] - 20)
    assert not verdict("ch10-textedit-terms", capsys, judge=judge, req=req, term_images=terms, term_success=s, term_preserved=bad)
    with pytest.raises(ValueError, match="global"):
        verdict("ch10-textedit-terms", capsys, judge=judge, req=req, term_images=ims, term_success=s, term_preserved=p)
