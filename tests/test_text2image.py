"""lib.text2image's latent diffusion (chapter 9b): autoencoder, text-conditioned U-Net,
caption dropout, guided generation, the labels a caption asks for; and the scene VAE that
chapter 9's CLIP notebook steers."""
import pytest
import torch

from lib import diffusion, scenes, text2image


def small_model(channels=3):
    torch.manual_seed(0)
    model = text2image.TextUNet(channels=channels, base=8, mults=(1, 2), cond_dim=16, map_channels=4).eval()
    with torch.no_grad():                            # the U-Net starts by predicting 0: wake it up
        model.unet.out.weight.normal_(0, 0.1)
    return model


def test_autoencoder_shapes_ranges_and_loss():
    torch.manual_seed(0)
    ae = text2image.LatentAutoencoder(channels=3, width=8)
    x = scenes.captioned_scenes("train", 4).images
    z = ae.encode(x)
    assert z.shape == (4, 3, 8, 8) and z.abs().max() <= 1           # tanh latents
    y = ae.decode(z * 5)                                            # even far-off latents decode into the image range
    assert y.shape == (4, 3, 32, 32) and y.min() >= -1 and y.max() <= 1
    # with noise = 0 the loss is the plain mean squared error, computed independently here
    want = ((ae.dec(ae.enc(x)) - x) ** 2).sum() / x.numel()
    assert ae.loss(x, noise=0.0).item() == pytest.approx(want.item(), rel=1e-5)
    # noise makes it random, and (on average) worse
    g = torch.Generator().manual_seed(0)
    assert ae.loss(x, noise=0.5, generator=g).item() != pytest.approx(want.item(), rel=1e-5)
    with pytest.raises(ValueError, match="noise"):
        ae.loss(x, noise=-0.1)
    with pytest.raises(ValueError, match="shape"):
        ae.encode(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        ae.decode(torch.zeros(2, 4, 8, 8))


def test_object_weight_weighs_the_error_on_the_objects_only():
    torch.manual_seed(0)
    ae = text2image.LatentAutoencoder(channels=3, width=8)
    ds = scenes.captioned_scenes("train", 4, p_two=0.0)
    x = ds.images
    err = (ae.dec(ae.enc(x)) - x).pow(2)                            # (N, 3, H, W)
    m = scenes.saturation_mask(x)[:, None]
    want = (err * (1 + 4 * m)).mean()
    assert ae.loss(x, noise=0.0, object_weight=4.0).item() == pytest.approx(want.item(), rel=1e-5)
    assert ae.loss(x, noise=0.0, object_weight=4.0) > ae.loss(x, noise=0.0)
    # a grey image has no object: the weight changes nothing
    grey = torch.zeros(2, 3, 32, 32)
    assert ae.loss(grey, noise=0.0, object_weight=9.0).item() == pytest.approx(ae.loss(grey, noise=0.0).item())
    with pytest.raises(ValueError, match="object_weight"):
        ae.loss(x, object_weight=-1.0)


def test_encode_all_equals_one_batch_and_fit_autoencoder_learns():
    torch.manual_seed(0)
    ae = text2image.LatentAutoencoder(channels=3, width=8).eval()
    x = scenes.captioned_scenes("train", 10).images
    with torch.no_grad():
        whole = ae.encode(x)
    got = ae.encode_all(x, batch=3)                                 # 4 chunks, the last of 1
    assert got.shape == (10, 3, 8, 8) and not got.requires_grad
    torch.testing.assert_close(got, whole, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batch"):
        ae.encode_all(x, batch=0)
    # the recipe trains: the reconstruction error after 60 steps is below the untrained one
    train_x = scenes.captioned_scenes("train", 64).images
    untrained = text2image.LatentAutoencoder(channels=3, width=8)
    with torch.no_grad():
        before = untrained.loss(train_x, noise=0.0).item()
    fitted = text2image.fit_autoencoder(train_x, 60, channels=3, width=8, seed=0, desc="test")
    assert not fitted.training and fitted.channels == 3
    with torch.no_grad():
        after = fitted.loss(train_x, noise=0.0).item()
    assert after < 0.7 * before, (before, after)
    with pytest.raises(ValueError, match="images"):
        text2image.fit_autoencoder(torch.zeros(4, 1, 32, 32), 5)


def test_fit_denoiser_returns_the_ema_model_and_lowers_the_loss():
    sched = diffusion.cosine_schedule(50)
    model = small_model()
    model.train()
    z0 = torch.rand(32, 3, 8, 8) * 2 - 1
    tok = scenes.tokenize(scenes.captioned_scenes("train", 32).captions)
    gen = torch.Generator().manual_seed(0)
    loss = lambda z, t: text2image.text_diffusion_loss(model, sched, z, t, generator=gen)
    run = text2image.fit_denoiser(model, loss, (z0, tok), 40, batch_size=8, desc="test")
    assert run.model is not model                                   # the EMA copy
    assert len(run.history["loss"]) == 40
    first, last = run.history["loss"][:10], run.history["loss"][-10:]
    assert sum(last) < sum(first)


def test_text_unet_conditions_and_dropout():
    model = small_model()
    z, t = torch.randn(2, 3, 8, 8), torch.tensor([5, 50])
    tok = scenes.tokenize(["a small red square at the top", "a large blue circle above a small red cross"])
    with torch.no_grad():
        with_caption, none = model(z, t, tok), model(z, t, None)
        dropped_all = model(z, t, tok, drop=torch.tensor([True, True]))
        dropped_one = model(z, t, tok, drop=torch.tensor([True, False]))
    assert with_caption.shape == z.shape
    # a dropped caption is exactly "no caption" (what the unconditional model sees at sampling)
    assert torch.allclose(dropped_all, none, atol=1e-6)
    assert torch.allclose(dropped_one[0], none[0], atol=1e-6) and torch.allclose(dropped_one[1], with_caption[1], atol=1e-6)
    # the caption matters, and so does word order ("swapped colours")
    assert not torch.allclose(with_caption, none, atol=1e-4)
    swapped = scenes.tokenize(["a small red square at the top", "a large red circle above a small blue cross"])
    with torch.no_grad():
        assert not torch.allclose(model(z, t, swapped)[1], with_caption[1], atol=1e-5)
    with pytest.raises(ValueError, match="caption per latent"):
        model(z, t, tok[:1])
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 4, 8, 8), t, tok)


def test_caption_dropout_loss():
    model = small_model()
    sched = diffusion.cosine_schedule(20)
    z0 = torch.rand(6, 3, 8, 8) * 2 - 1
    tok = scenes.tokenize(scenes.captioned_scenes("train", 6).captions)
    run = lambda p: text2image.text_diffusion_loss(model, sched, z0, tok, p_uncond=p, generator=torch.Generator().manual_seed(1))
    l0, l1 = run(0.0), run(1.0)
    assert l0.item() > 0 and torch.isfinite(l1)
    # p_uncond = 1 is the unconditional loss: the same as eps_loss with the caption-less model,
    # drawn with the same random numbers (the dropout draw comes first)
    g = torch.Generator().manual_seed(1)
    torch.rand(6, generator=g)
    want = diffusion.eps_loss(lambda x, t: model(x, t, None), sched, z0, generator=g)
    assert l1.item() == pytest.approx(want.item(), rel=1e-5)
    with pytest.raises(ValueError):
        run(1.5)


def test_generate_with_guidance_zero_and_one_is_unconditional_and_conditional():
    model = small_model(channels=3)
    ae = text2image.LatentAutoencoder(channels=3, width=8).eval()
    sched = diffusion.cosine_schedule(20)
    caps = ["a small red square at the top", "a large blue circle above a small red cross"]
    gen = lambda caps, w: text2image.generate(model, ae, sched, caps, w=w, steps=4,
                                              generator=torch.Generator().manual_seed(3))
    x0, x1, x3 = gen(caps, 0.0), gen(caps, 1.0), gen(caps, 3.0)
    assert x0.shape == (2, 3, 32, 32) and x0.min() >= -1 and x0.max() <= 1
    # w = 0 ignores the caption: the same images for other captions
    assert torch.allclose(x0, gen(caps[::-1], 0.0), atol=1e-6)
    assert not torch.allclose(x1, gen(caps[::-1], 1.0), atol=1e-4)
    # the general guided path (two network calls, cfg_eps) reduces to the special cases
    assert torch.allclose(gen(caps, 1e-9), x0, atol=1e-4)
    assert torch.allclose(gen(caps, 1.0 + 1e-9), x1, atol=1e-4)
    assert not torch.allclose(x3, x1, atol=1e-4)
    # and equals DDIM run by hand on cfg_eps with the same start
    tok = scenes.tokenize(caps)
    zT = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(3))
    eps = lambda z, t: diffusion.cfg_eps(model(z, t, tok), model(z, t, None), 3.0)
    z = diffusion.ddim_sample(eps, sched, steps=4, x_T=zT, clip_x0=True)
    assert torch.allclose(ae.decode(z.clamp(-1, 1)), x3, atol=1e-5)
    with pytest.raises(ValueError, match="guidance"):
        gen(caps, -1.0)
    with pytest.raises(ValueError, match="captions"):
        gen("a small red square at the top", 1.0)


def test_caption_labels_agree_with_the_labels_of_real_scenes():
    s = scenes.captioned_scenes("all", 300, seed=4)
    got = text2image.caption_labels(s.captions)
    for k, v in s.labels.items():
        assert torch.equal(got[k], v), k
    # hand-checked example: "below" is canonicalised to the other object being above
    lab = text2image.caption_labels("a small green cross below a large blue circle")
    assert lab["n_objects"].item() == 2 and lab["axis"].item() == 0
    assert scenes.SHAPES[lab["shape"].item()] == "circle" and scenes.COLOURS[lab["colour"].item()] == "blue"
    assert scenes.SHAPES[lab["shape2"].item()] == "cross" and scenes.SIZES[lab["size2"].item()] == "small"
    assert lab["where"].item() == -1
    with pytest.raises(ValueError, match="grammar"):
        text2image.caption_labels(["a purple square at the top"])


def test_content_match_ignores_shape_and_arrangement_only():
    t = text2image.caption_labels(["a small green cross below a large blue circle"] * 5
                                  + ["a large red square at the top"] * 3)
    p = {k: v.clone() for k, v in t.items()}
    # image 0: exact; 1: other shapes and the pair side by side; 2: the pair's objects swapped;
    # 3: a wrong colour; 4: a wrong size (of the swapped pair); 5: exact; 6: one object elsewhere,
    # another shape; 7: two objects where one was asked for
    p["shape"][1], p["shape2"][1], p["axis"][1] = 0, 0, 1
    for a, b in (("colour", "colour2"), ("size", "size2"), ("shape", "shape2")):
        p[a][2], p[b][2] = t[b][2], t[a][2]
        p[a][4], p[b][4] = t[b][4], t[a][4]
    p["colour"][3] = 0
    p["size"][4] = 1 - p["size"][4]
    p["where"][6], p["shape"][6] = (t["where"][6] + 1) % 4, (t["shape"][6] + 1) % 4
    p["n_objects"][7], p["colour2"][7], p["size2"][7], p["shape2"][7], p["axis"][7], p["where"][7] = 2, 1, 0, 0, 0, -1
    want = [True, True, True, False, False, True, True, False]
    assert text2image.content_match(p, t).tolist() == want
    with pytest.raises(ValueError, match="missing"):
        text2image.content_match({"n_objects": t["n_objects"]}, t)


def test_scene_vae_shapes_and_loss():
    torch.manual_seed(0)
    vae = text2image.SceneVAE(z_dim=8, width=8)
    x = scenes.captioned_scenes("train", 4).images
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (4, 8) and vae.decode(mu).shape == (4, 3, 32, 32)
    out = vae.loss(x)
    assert out["kl"] >= 0 and torch.isfinite(out["loss"])
    # the negative ELBO is recon / (2 sigma^2) + beta KL, with the KL in closed form
    assert out["loss"].item() == pytest.approx((out["recon"] / (2 * 0.1 ** 2) + out["kl"]).item(), rel=1e-6)
    want_kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
    assert out["kl"].item() == pytest.approx(want_kl.item(), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        vae.encode(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        vae.decode(torch.zeros(2, 9))


def test_generate_sweeps_the_guidance_scale_in_one_batch_from_a_given_noise():
    model = small_model(channels=3)
    ae = text2image.LatentAutoencoder(channels=3, width=8).eval()
    sched = diffusion.cosine_schedule(20)
    cap = "a small red square at the top"
    zT = torch.randn((1, 3, 8, 8), generator=torch.Generator().manual_seed(5))
    sweep = text2image.generate(model, ae, sched, [cap] * 3, w=[0.0, 1.0, 3.0], steps=4,
                                x_T=zT.repeat(3, 1, 1, 1))
    for i, w in enumerate((0.0, 1.0, 3.0)):   # each row: that scale alone, from the same noise
        one = text2image.generate(model, ae, sched, [cap], w=w, steps=4, x_T=zT)
        assert torch.allclose(sweep[i], one[0], atol=1e-5), w
    seeded = text2image.generate(model, ae, sched, [cap], w=3.0, steps=4,
                                 generator=torch.Generator().manual_seed(5))
    assert torch.allclose(seeded, sweep[2:], atol=1e-5)    # x_T is the noise the generator draws
    with pytest.raises(ValueError, match=r"x_T must be latent noise of shape \(2, 3, 8, 8\)"):
        text2image.generate(model, ae, sched, [cap] * 2, steps=4, x_T=zT)
    with pytest.raises(ValueError, match="one per sample"):
        text2image.generate(model, ae, sched, [cap] * 2, w=[1.0], steps=4)
