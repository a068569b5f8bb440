"""lib.nets (chapter 5): time embedding, 2-D MLP denoiser, small U-Net."""
import math

import pytest
import torch

from lib import diffusion, nets


def test_sinusoidal_embedding_by_hand():
    e = nets.sinusoidal_embedding(torch.tensor([0, 1]), 4)
    # frequencies 10000^(-k/2), k = 0, 1 -> 1 and 0.01
    want = torch.tensor([[1.0, 1.0, 0.0, 0.0],
                         [math.cos(1.0), math.cos(0.01), math.sin(1.0), math.sin(0.01)]])
    assert torch.allclose(e, want, atol=1e-6)
    assert nets.sinusoidal_embedding(torch.arange(5), 64).shape == (5, 64)
    with pytest.raises(ValueError, match="even"):
        nets.sinusoidal_embedding(torch.tensor([1]), 3)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        nets.sinusoidal_embedding(torch.zeros(2, 2), 4)


def test_mlp_denoiser_shapes_and_learning():
    torch.manual_seed(0)
    net = nets.MLPDenoiser(dim=2, hidden=32, layers=2, t_dim=16)
    assert net(torch.zeros(5, 2), torch.arange(1, 6)).shape == (5, 2)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        net(torch.zeros(5, 3), torch.arange(1, 6))
    # data concentrated near a point: the noise is predictable, so the loss must drop well below 1
    sched = diffusion.linear_schedule(50)
    g = torch.Generator().manual_seed(0)
    data = 0.5 + 0.05 * torch.randn(2000, 2, generator=g)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(150):
        idx = torch.randint(0, 2000, (256,), generator=g)
        loss = diffusion.eps_loss(net, sched, data[idx], generator=g)
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        held = diffusion.eps_loss(net, sched, 0.5 + 0.05 * torch.randn(4000, 2, generator=g), generator=g)
    assert float(held) < 0.5


@pytest.mark.parametrize("size", [16, 32])
def test_unet_shapes_and_zero_init_output(size):
    net = nets.UNet(in_ch=3, base=8, mults=(1, 2))
    x = torch.randn(2, 3, size, size)
    out = net(x, torch.tensor([1, 50]))
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(x))  # last conv starts at zero
    # after one optimisation step the output depends on x and on t
    opt = torch.optim.SGD(net.parameters(), 0.1)
    loss = (net(x, torch.tensor([1, 50])) - torch.randn_like(x)).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        a = net(x, torch.tensor([1, 1]))
        b = net(x, torch.tensor([90, 90]))
    assert not torch.allclose(a, b) and not torch.allclose(a[0], a[1])


def test_unet_conditioning():
    torch.manual_seed(0)
    net = nets.UNet(1, base=8, mults=(1, 2), num_classes=10)
    for p in net.out.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([5, 5, 5])
    with torch.no_grad():
        y0, y1, none = net(x, t, torch.tensor([0, 0, 0])), net(x, t, torch.tensor([7, 7, 7])), net(x, t)
    assert not torch.allclose(y0, y1) and not torch.allclose(y0, none)
    assert net.drop_condition(torch.tensor([1, 2, 3]), 0.0).tolist() == [1, 2, 3]
    assert net.drop_condition(torch.tensor([1, 2, 3]), 1.0).tolist() == [10, 10, 10]
    with pytest.raises(ValueError, match="labels"):
        net(x, t, torch.tensor([0, 11, 0]))
    vec = nets.UNet(1, base=8, mults=(1, 2), cond_dim=5)
    assert vec(x, t, torch.randn(3, 5)).shape == x.shape
    assert vec.drop_condition(torch.ones(3, 5), 1.0).abs().sum() == 0
    for p in vec.out.parameters():
        torch.nn.init.normal_(p, std=0.1)
    with torch.no_grad():  # "no condition" at sampling time is what a dropped (zeroed) row trained as
        assert torch.equal(vec(x, t), vec(x, t, vec.drop_condition(torch.randn(3, 5), 1.0)))
        assert not torch.allclose(vec(x, t), vec(x, t, torch.randn(3, 5)))
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        vec(x, t, torch.randn(3, 4))
    with pytest.raises(ValueError, match="no condition"):
        nets.UNet(1, base=8, mults=(1, 2))(x, t, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="not both"):
        nets.UNet(1, num_classes=10, cond_dim=4)


def test_unet_bad_inputs():
    net = nets.UNet(1, base=8, mults=(1, 2, 2))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        net(torch.zeros(2, 3, 16, 16), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(2, 1, 18, 18), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\(2\)"):
        net(torch.zeros(2, 1, 16, 16), torch.tensor([1, 2, 3]))


def test_ema_follows_the_running_average():
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    ema = nets.EMA(net, decay=0.5)
    w = 0.0
    for n, target in enumerate([1.0, 2.0, 3.0, 4.0]):
        torch.nn.init.constant_(net.weight, target)
        ema.update(net)
        d = min(0.5, (1 + n) / (10 + n))          # warm-up, then the fixed decay
        w = d * w + (1 - d) * target
    assert math.isclose(float(ema.model.weight), w, rel_tol=1e-6)
    assert not ema.model.weight.requires_grad
    with pytest.raises(ValueError, match="decay"):
        nets.EMA(net, decay=1.0)


def test_patch_discriminator_light_configuration():
    """Chapter 10's discriminator: no norm, widths w, 2w, 2w, 3x3 stride-1 layers, an H/4 grid."""
    D = nets.PatchDiscriminator(4, 8, n_layers=2, norm=False, max_mult=2, tail_kernel=3)
    assert D(torch.zeros(2, 4, 32, 32)).shape == (2, 1, 8, 8)
    assert D(torch.zeros(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)).shape == (2, 1, 4, 4)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (4, 8, 4, 2), (8, 16, 4, 2), (16, 16, 3, 1), (16, 1, 3, 1)]
    assert all(c.bias is not None for c in convs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    with pytest.raises(ValueError):
        nets.PatchDiscriminator(4, 8, n_layers=-1)
    with pytest.raises(TypeError):
        nets.PatchDiscriminator(4, 8, n_layers=1.5)
    with pytest.raises(ValueError, match="channels"):
        D(torch.zeros(2, 3, 16, 16))


# --- the MLP builder and the transformer block ------------------------------------------------

def test_mlp_builder_layers_and_refusals():
    net = nets.mlp([2, 5, 1])
    assert len(net) == 3 and isinstance(net[1], torch.nn.ReLU)
    assert net(torch.zeros(4, 2)).shape == (4, 1)
    silu = nets.mlp([3, 8, 8, 2], act=torch.nn.SiLU)
    assert [type(m).__name__ for m in silu] == ["Linear", "SiLU", "Linear", "SiLU", "Linear"]
    with pytest.raises(ValueError, match="at least two positive ints"):
        nets.mlp([2])
    with pytest.raises(ValueError, match="positive ints"):
        nets.mlp([2, 0, 1])
    with pytest.raises(TypeError, match="activation"):
        nets.mlp([2, 3], act="relu")


def test_mlp_builder_makes_the_same_networks_as_the_loops_it_replaced():
    torch.manual_seed(0)
    a = nets.mlp([3, 16, 16, 1], act=torch.nn.SiLU)
    torch.manual_seed(0)
    layers, w = [], 3
    for _ in range(2):
        layers += [torch.nn.Linear(w, 16), torch.nn.SiLU()]
        w = 16
    b = torch.nn.Sequential(*layers, torch.nn.Linear(w, 1))
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_transformer_block_causal_and_padding():
    torch.manual_seed(0)
    blk = nets.TransformerBlock(16, 4, causal=True)
    x = torch.randn(2, 6, 16)
    y = blk(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 4:] += 1.0                                            # the future changes ...
    assert torch.allclose(blk(x2)[:, :4], y[:, :4], atol=1e-6)  # ... the past does not see it
    enc = nets.TransformerBlock(16, 4, causal=False, mlp_ratio=2)
    assert enc.mlp[0].out_features == 32
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    x3 = x.clone()
    x3[0, 4:] = 7.0                                             # padding content is never attended to
    assert torch.allclose(enc(x3, pad)[0, :4], enc(x, pad)[0, :4], atol=1e-6)
    assert not torch.allclose(enc(x3)[0, :4], enc(x)[0, :4], atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(B, T, 16\)"):
        blk(torch.zeros(2, 6, 8))
    with pytest.raises(ValueError, match="bool mask"):
        enc(x, pad.long())
    with pytest.raises(ValueError, match="causal=False"):
        blk(x, pad)
    with pytest.raises(ValueError, match="divisible"):
        nets.TransformerBlock(10, 4)
