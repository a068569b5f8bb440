"""Tests of lib.palette (chapter 10): image-to-image diffusion and the luma/chroma helpers."""
import numpy as np
import pytest
import torch

from lib import diffusion, palette as P


def img(n=2, c=1, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_luma_chroma_split_round_trips_and_scales():
    x = img(3, 3, 8, 8, seed=5)
    assert torch.allclose(P.compose_yuv(P.luma_of(x), P.chroma_of(x)), x, atol=1e-5)
    grey = torch.full((1, 3, 4, 4), 0.2)
    assert torch.allclose(P.luma_of(grey), torch.full((1, 1, 4, 4), 0.2), atol=1e-6)
    assert torch.allclose(P.chroma_of(grey), torch.zeros(1, 2, 4, 4), atol=1e-6)
    # pure blue has U = 0.436 and pure red V = 0.615 (ITU-R 601): both scaled to exactly 1
    blue = torch.tensor([-1.0, -1.0, 1.0]).view(1, 3, 1, 1)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    assert abs(float(P.chroma_of(blue)[0, 0]) - 1) < 1e-3 and abs(float(P.chroma_of(red)[0, 1]) - 1) < 1e-3
    assert float(P.chroma_of(x).abs().max()) <= 1 + 1e-6
    with pytest.raises(ValueError):
        P.compose_yuv(P.luma_of(x), P.chroma_of(x)[:, :1])


def test_palette_eps_loss_is_ho_et_al_and_x0_mode_converts():
    sched = diffusion.linear_schedule(50)
    torch.manual_seed(0)
    eps_model = P.Palette(2, 1, sched, base=8, predict="eps")
    x0, cond = img(4, 2, 8, 8, seed=1), img(4, 1, 8, 8, seed=2)
    a = P.palette_loss(eps_model, x0, cond, generator=torch.Generator().manual_seed(3))
    b = diffusion.eps_loss(eps_model, sched, x0, y=cond, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b)
    # an x0-model that knows the answer implies the exact noise ...
    x0_model = P.Palette(2, 1, sched, base=8, predict="x0")
    x0_model.raw = lambda x_t, t, c: x0
    t = torch.tensor([1, 10, 30, 50])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    x_t = diffusion.q_sample(sched, x0, t, noise)
    assert torch.allclose(x0_model(x_t, t, cond), noise, atol=1e-3)
    # ... and its DDIM samples are that answer, whatever the starting noise
    s1 = P.palette_sample(x0_model, cond, steps=5, generator=torch.Generator().manual_seed(0))
    s2 = P.palette_sample(x0_model, cond, steps=5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(s1, x0, atol=1e-4) and torch.allclose(s2, x0, atol=1e-4)
    with pytest.raises(ValueError):
        P.Palette(2, 1, sched, predict="v")
    with pytest.raises(ValueError):
        eps_model(x0, t, img(4, 3, 8, 8))


def test_fit_palette_learns_and_samples_vary():
    sched = diffusion.linear_schedule(100)
    torch.manual_seed(0)
    model = P.Palette(2, 1, sched, base=8, predict="x0")
    x = img(16, 3, 8, 8, seed=7)
    h, ema = P.fit_palette(model, P.chroma_of(x), P.luma_of(x), steps=30, batch=8, lr=5e-3)
    assert np.mean(h["x0 loss"][-5:]) < np.mean(h["x0 loss"][:5])
    s1 = P.palette_sample(ema, P.luma_of(x[:3]), steps=4, generator=torch.Generator().manual_seed(0))
    s1b = P.palette_sample(ema, P.luma_of(x[:3]), steps=4, generator=torch.Generator().manual_seed(0))
    s2 = P.palette_sample(ema, P.luma_of(x[:3]), steps=4, generator=torch.Generator().manual_seed(1))
    assert s1.shape == (3, 2, 8, 8) and s1.abs().max() <= 1 and torch.equal(s1, s1b) and not torch.equal(s1, s2)
    with pytest.raises(ValueError):
        P.fit_palette(model, P.chroma_of(x) * 3, P.luma_of(x), steps=1)
    with pytest.raises(ValueError):
        P.fit_palette(model, P.chroma_of(x), P.luma_of(x[:5]), steps=1)
    with pytest.raises(TypeError):
        P.palette_sample(torch.nn.Identity(), P.luma_of(x), steps=2)
