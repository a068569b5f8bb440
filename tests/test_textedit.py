"""lib.textedit (chapter 10, CLIPInverter): edit requests, the CLIP editing loss, latent
optimisation, the adapter/remapper network and the edit scores."""
import numpy as np
import pytest
import torch

from lib import clip, scenes, textedit


def tiny():
    torch.manual_seed(0)
    model = clip.CLIP(dim=16, width=8).eval()
    dec_lin = torch.nn.Linear(8, 3 * 32 * 32)
    decode = lambda w: torch.tanh(dec_lin(w)).view(-1, 3, 32, 32)
    return model, decode


def test_edit_requests_change_exactly_one_attribute():
    caps = scenes.captioned_scenes("train", 40, p_two=0.0).captions
    req = textedit.edit_requests(caps, np.random.default_rng(0))
    assert len(req) == 40 and req.attribute.shape == (40,)
    for i in range(40):
        changed = [a for a in textedit.ATTRIBUTES if req.target[a][i] != req.labels[a][i]]
        assert changed == [textedit.ATTRIBUTES[int(req.attribute[i])]]
        # the specific description is the caption of the edited scene
        p = scenes.parse_caption(req.specific[i])
        (size, colour, shape), where = p["objects"][0], p["where"]
        new = {"shape": shape, "colour": colour, "size": size, "where": where}
        assert all(textedit.VALUES[a].index(new[a]) == req.target[a][i] for a in textedit.ATTRIBUTES)
        attr, value = req.generic[i]
        assert new[attr] == value and attr == changed[0]
    # only the requested attributes are edited
    req2 = textedit.edit_requests(caps, np.random.default_rng(0), attributes=("colour",))
    assert (req2.attribute == textedit.ATTRIBUTES.index("colour")).all()
    with pytest.raises(ValueError, match="one-object"):
        textedit.edit_requests(["a small red square above a large blue circle"], np.random.default_rng(0))
    with pytest.raises(ValueError):
        textedit.edit_requests(caps, np.random.default_rng(0), attributes=("mood",))


def test_text_targets_are_unit_vectors_and_generic_ignores_other_words():
    model, _ = tiny()
    caps = ["a small red square on the left", "a large red circle at the top"]
    req = textedit.edit_requests(caps, np.random.default_rng(0), attributes=("colour",))
    for specific in (True, False):
        t, s = textedit.text_targets(model, req, specific=specific)
        assert t.shape == s.shape == (2, 16)
        assert torch.allclose(t.norm(dim=1), torch.ones(2), atol=1e-5)
    t, s = textedit.text_targets(model, req, specific=False)
    assert torch.allclose(s[0], s[1])                 # both sources are "it is red", whatever else
    if req.generic[0] == req.generic[1]:
        assert torch.allclose(t[0], t[1])


def test_edit_loss_terms_and_checks():
    model, decode = tiny()
    w = torch.randn(3, 8)
    t = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    s = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    x_emb = model.encode_image(decode(w)).detach()
    out = textedit.edit_loss(model, decode, w, w, x_emb, t, s)
    assert out["latent"].item() == 0                     # no move: no latent cost
    assert 0 <= out["global"].item() <= 2 and 0 <= out["directional"].item() <= 2
    assert out["loss"].item() == pytest.approx(out["global"].item() + out["directional"].item(), rel=1e-5)
    far = textedit.edit_loss(model, decode, w + 1, w, x_emb, t, s, direction=0.0, latent=2.0)
    assert far["latent"].item() == pytest.approx(1.0, rel=1e-5)
    assert far["loss"].item() == pytest.approx(far["global"].item() + 2.0, rel=1e-5)
    with pytest.raises(ValueError, match="w, w_src"):
        textedit.edit_loss(model, decode, w, w[:2], x_emb, t, s)
    # the image term: the mean squared difference to the source picture, per edit
    x = decode(w).detach()
    assert textedit.edit_loss(model, decode, w, w, x_emb, t, s, image=5.0, x=x)["image"].item() == 0
    y = textedit.edit_loss(model, decode, w + 1, w, x_emb, t, s, direction=0.0, latent=0.0, image=3.0, x=x)
    want = (decode(w + 1) - x).pow(2).mean()
    assert y["image"].item() == pytest.approx(want.item(), rel=1e-5)
    assert y["loss"].item() == pytest.approx(y["global"].item() + 3.0 * want.item(), rel=1e-5)
    with pytest.raises(ValueError, match="source images x"):
        textedit.edit_loss(model, decode, w, w, x_emb, t, s, image=1.0)
    with pytest.raises(ValueError, match="latent must be a finite number >= 0"):
        textedit.edit_loss(model, decode, w, w, x_emb, t, s, latent=-1.0)
    with pytest.raises(TypeError, match="direction"):
        textedit.edit_loss(model, decode, w, w, x_emb, t, s, direction="1")
    with pytest.raises(ValueError, match="x"):
        textedit.edit_loss(model, decode, w, w, x_emb, t, s, image=1.0, x=x[:, :, :16])


def test_optimise_edits_lowers_the_loss_and_leaves_models_alone():
    model, decode = tiny()
    w_src = torch.randn(4, 8)
    x_emb = model.encode_image(decode(w_src)).detach()
    t = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    s = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    l0 = textedit.edit_loss(model, decode, w_src, w_src, x_emb, t, s)["loss"].item()
    w, secs = textedit.optimise_edits(model, decode, w_src, x_emb, t, s, steps=30, lr=0.05)
    l1 = textedit.edit_loss(model, decode, w, w_src, x_emb, t, s)["loss"].item()
    assert l1 < l0 and secs > 0 and w.shape == w_src.shape and not w.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_inverter_starts_as_identity_and_learns():
    model, decode = tiny()
    torch.manual_seed(1)
    net = textedit.CLIPInverter(z_dim=8, text_dim=16, width=8, hidden=16)
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    w_src = torch.randn(6, 8)
    t = torch.nn.functional.normalize(torch.randn(6, 16), dim=1)
    assert torch.allclose(net(x, w_src, t), w_src)                   # zero-initialised outputs
    s = torch.nn.functional.normalize(torch.randn(6, 16), dim=1)
    x_emb = model.encode_image(decode(w_src)).detach()
    l0 = textedit.edit_loss(model, decode, net(x, w_src, t), w_src, x_emb, t, s)["loss"].item()
    run = textedit.fit_inverter(net, model, decode, x, w_src, x_emb, t, s, steps=40, batch=6, lr=3e-3,
                                 generator=torch.Generator().manual_seed(0))
    l1 = textedit.edit_loss(model, decode, net(x, w_src, t), w_src, x_emb, t, s)["loss"].item()
    assert len(run.history["loss"]) == 40 and l1 < l0
    assert net(x, w_src, t, remap=False).shape == (6, 8)
    with pytest.raises(ValueError, match="shape"):
        net(x[:, :, :16], w_src, t)


def test_edit_scores():
    req = textedit.edit_requests(["a small red square on the left"] * 2, np.random.default_rng(0),
                                 attributes=("colour",))
    pred = {a: req.target[a].clone() for a in textedit.ATTRIBUTES}      # a perfect edit ...
    pred["size"][1] = 1 - pred["size"][1]                                # ... and one that also resizes
    sc = textedit.edit_scores(pred, req)
    assert sc["success"].tolist() == [1.0, 1.0]
    assert sc["preserved"].tolist() == pytest.approx([1.0, 2 / 3])
    assert sc["leaked"].tolist() == pytest.approx([0.0, 1 / 3])
    src = {a: req.labels[a].clone() for a in textedit.ATTRIBUTES}        # no edit at all
    assert textedit.edit_scores(src, req)["success"].tolist() == [0.0, 0.0]


def test_render_edits_draws_the_requested_scene():
    s = scenes.captioned_scenes("test", 24, p_two=0.0)
    req = textedit.edit_requests(s.captions, np.random.default_rng(3))
    gt = textedit.render_edits(s.scenes, req)
    assert gt.shape == (24, 3, 32, 32) and gt.min() >= -1 and gt.max() <= 1
    assert torch.allclose(gt[:, :, 0, 0], s.images[:, :, 0, 0], atol=1e-5)  # background kept
    for i in range(24):
        attr = textedit.ATTRIBUTES[int(req.attribute[i])]
        o = s.scenes[i].objects[0]
        if attr == "colour":  # the object's centre pixel shows the new colour
            rgb = scenes.RGB[textedit.VALUES["colour"][int(req.target["colour"][i])]]
            px = gt[i, :, int(o.cy * 32), int(o.cx * 32)]
            assert torch.allclose((px + 1) / 2, torch.tensor(rgb), atol=0.02)
    with pytest.raises(ValueError, match="one scene per request"):
        textedit.render_edits(s.scenes[:3], req)
