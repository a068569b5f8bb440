"""Tests of lib.translation and the chapter-8 data (pix2pix, PatchGAN, CycleGAN)."""
import math

import pytest
import torch
import torch.nn as nn

from lib import data, gan, nets, translation as T


# --- receptive fields and output grids -------------------------------------------------------

@pytest.mark.parametrize("n_layers, rf", [(0, 1), (1, 16), (2, 34), (3, 70), (4, 142), (5, 286)])
def test_receptive_field_standard_designs(n_layers, rf):
    # the values of the pix2pix paper (1, 16, 70, 286) and its code (34, 142)
    D = nets.PatchDiscriminator(in_ch=6, ndf=8, n_layers=n_layers)
    assert T.receptive_field(D) == rf
    assert T.receptive_field(T.standard_patchgan_layers(n_layers)) == rf


def test_receptive_field_hand_computed():
    assert T.receptive_field([(3, 1)] * 3) == 7                # 1 -> 3 -> 5 -> 7
    assert T.receptive_field([(3, 2), (3, 1)]) == 2 * 3 + 1     # 1 -> 3 -> 2*(3-1)+3
    assert T.receptive_field([(7, 1, 3)]) == 7
    assert T.receptive_field(nn.Sequential(nn.Conv2d(1, 1, 5, 2), nn.ReLU(), nn.Conv2d(1, 1, 3))) == 2 * 2 + 5


def test_receptive_field_matches_gradient_support():
    # independent check: the input pixels that influence the centre logit
    torch.manual_seed(0)
    D = nets.PatchDiscriminator(in_ch=1, ndf=4, n_layers=1).eval()
    x = torch.randn(1, 1, 64, 64, requires_grad=True)
    out = D(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten()
    assert int(rows.max() - rows.min() + 1) == 16 and int(cols.max() - cols.min() + 1) == 16


@pytest.mark.parametrize("size, n_layers, grid", [(256, 3, 30), (256, 0, 256), (32, 1, 14), (32, 2, 6), (32, 3, 2)])
def test_patchgan_output_grid(size, n_layers, grid):
    # 256 -> 128 -> 64 -> 32 -> 31 -> 30 for pix2pix's 70x70 PatchGAN (its 30x30 grid);
    # 32 -> 16 -> 15 -> 14 for one layer; (n + 2 - 4) // 2 + 1 halves, stride-1 k4 p1 removes one.
    D = nets.PatchDiscriminator(in_ch=2, ndf=4, n_layers=n_layers)
    x = torch.zeros(2, 1, size, size)
    assert D(x, x).shape == (2, 1, grid, grid)
    assert T.output_size(D, size) == grid


def test_patchgan_parameter_count_by_hand():
    # pix2pix's 70x70 D on 6 channels with ndf=64: conv(+bias), 3 convs without bias + BN, conv(+bias)
    expect = (6 * 64 * 16 + 64) + (64 * 128 * 16 + 2 * 128) + (128 * 256 * 16 + 2 * 256) \
        + (256 * 512 * 16 + 2 * 512) + (512 * 16 + 1)
    assert T.n_params(nets.PatchDiscriminator(6, 64, 3)) == expect


# --- U-Net ------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, h, w", [(5, 32, 32), (5, 64, 96), (3, 8, 16), (1, 2, 2), (4, 48, 16)])
def test_unet_output_shape_equals_input(depth, h, w):
    G = nets.ImageUNet(in_ch=2, out_ch=3, ngf=4, depth=depth)
    y = G(torch.zeros(2, 2, h, w))
    assert y.shape == (2, 3, h, w)
    assert y.abs().max() <= 1


@pytest.mark.parametrize("h, w", [(40, 32), (32, 33), (16, 16)])
def test_unet_refuses_bad_sizes(h, w):
    G = nets.ImageUNet(1, 1, ngf=4, depth=5)
    with pytest.raises(ValueError, match="multiples of 2\\*\\*5 = 32"):
        G(torch.zeros(1, 1, h, w))


def test_unet_bad_inputs():
    G = nets.ImageUNet(1, 1, ngf=4, depth=2)
    with pytest.raises(ValueError, match="shape"):
        G(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        G(torch.zeros(1, 8, 8))
    with pytest.raises(TypeError):
        G([[0.0]])
    with pytest.raises(ValueError):
        nets.ImageUNet(1, 1, depth=0)
    with pytest.raises(TypeError):
        nets.ImageUNet(1, 1, ngf=4.0)


def test_unet_skips_carry_information():
    # without skips the whole image passes a 1x1 bottleneck; with skips the first decoder
    # level sees the input's first-level features: perturbing one pixel changes the output
    # locally in both, but the skip U-Net has strictly more parameters on the way up
    a, b = nets.ImageUNet(1, 1, ngf=4, depth=3, skips=True), nets.ImageUNet(1, 1, ngf=4, depth=3, skips=False)
    assert T.n_params(a) > T.n_params(b)
    assert b(torch.zeros(1, 1, 8, 8)).shape == (1, 1, 8, 8)


# --- losses -----------------------------------------------------------------------------------

def test_cgan_l1_loss_equals_formula_on_fixed_tensors():
    d_fake = torch.tensor([[[[0.0, 1.0]]]])              # logits of D(x, G(x)), shape (1, 1, 1, 2)
    fake = torch.tensor([[[[0.5, -0.5], [1.0, 0.0]]]])
    target = torch.tensor([[[[0.0, -0.5], [0.0, 1.0]]]])
    # gan: -log sigmoid(0) = log 2, -log sigmoid(1) = log(1 + e^-1); l1: (0.5 + 0 + 1 + 1) / 4
    adv = (math.log(2) + math.log(1 + math.exp(-1))) / 2
    l1 = 2.5 / 4
    out = T.pix2pix_losses(d_fake, fake, target, lam=100)
    assert math.isclose(float(out["total"]), adv + 100 * l1, rel_tol=1e-6)
    assert math.isclose(float(out["gan"]), adv, rel_tol=1e-6)
    assert math.isclose(float(out["l1"]), l1, rel_tol=1e-6)
    assert math.isclose(float(T.pix2pix_losses(d_fake, fake, target, mode="l1")["total"]), l1, rel_tol=1e-6)
    assert math.isclose(float(T.pix2pix_losses(d_fake, fake, target, mode="cgan")["total"]), adv, rel_tol=1e-6)
    # D's loss (lib.gan's, pix2pix's "bce" form): 0.5 * (-log sigmoid(real) - log(1 - sigmoid(fake)))
    d = gan.d_loss(torch.tensor([0.0]), torch.tensor([0.0]), form="bce")
    assert math.isclose(float(d), math.log(2), rel_tol=1e-6)


def test_loss_bad_inputs():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError):
        T.pix2pix_losses(x, x, torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError):
        T.pix2pix_losses(x, x, x, mode="l2")
    with pytest.raises(ValueError):
        T.pix2pix_losses(x, x, x, lam=-1)
    with pytest.raises(TypeError):
        T.l1_loss(x.numpy(), x)


def test_pix2pix_step_updates_and_reduces_l1():
    torch.manual_seed(0)
    x = torch.rand(8, 2, 8, 8) * 2 - 1
    y = x[:, :1].clone()
    G = nets.ImageUNet(2, 1, ngf=8, depth=3)
    opt = torch.optim.Adam(G.parameters(), 1e-2)
    first = T.pix2pix_step(G, None, opt, None, x, y, mode="l1")["G_l1"]
    for _ in range(8):
        last = T.pix2pix_step(G, None, opt, None, x, y, mode="l1")["G_l1"]
    assert last < first
    D = nets.PatchDiscriminator(3, 4, 1)
    out = T.pix2pix_step(G, D, opt, torch.optim.Adam(D.parameters()), x, y, mode="cgan+l1")
    assert set(out) == {"D", "G_gan", "G_l1"}
    with pytest.raises(ValueError, match="discriminator"):
        T.pix2pix_step(G, None, opt, None, x, y, mode="cgan")


# --- CycleGAN ---------------------------------------------------------------------------------

class Identity(nn.Module):
    def forward(self, x):
        return x


def test_cycle_loss_zero_for_inverse_maps():
    torch.manual_seed(0)
    a, b = torch.rand(4, 1, 8, 8) * 2 - 1, torch.rand(4, 1, 8, 8) * 2 - 1
    m = T.CycleGAN(1, 1, ngf=4, depth=3, ndf=4, n_layers=1, lam_id=0.5)
    m.G, m.F = Identity(), Identity()
    out = m.generator_losses(a, b)
    assert float(out["cycle"]) == 0.0 and float(out["identity"]) == 0.0
    # G(x) = -x and F(y) = -y are inverses too
    assert float(T.cycle_loss(a, -(-a))) == 0.0
    # a non-inverse pair has a positive cycle loss: G = F = x/2 gives |x/4 - x|
    half = T.cycle_loss(a, a / 4)
    assert math.isclose(float(half), float((0.75 * a).abs().mean()), rel_tol=1e-6)


def test_cyclegan_losses_and_step():
    torch.manual_seed(0)
    a, b = torch.rand(4, 1, 8, 8) * 2 - 1, torch.rand(4, 1, 8, 8) * 2 - 1
    m = T.CycleGAN(1, 1, ngf=4, depth=3, ndf=4, n_layers=1, lam_cycle=10, lam_id=0.5)
    out = m.generator_losses(a, b)
    expect = out["gan"] + 10 * out["cycle"] + 10 * 0.5 * out["identity"]
    assert torch.isclose(out["total"], expect)
    # the LSGAN generator loss is the mean of (D(fake) - 1)^2 over both discriminators
    with torch.no_grad():
        gan = ((m.D_B(out["fake_b"]) - 1) ** 2).mean() + ((m.D_A(out["fake_a"]) - 1) ** 2).mean()
    assert torch.isclose(out["gan"], gan, rtol=1e-5)
    og = torch.optim.Adam(list(m.G.parameters()) + list(m.F.parameters()), 1e-3)
    od = torch.optim.Adam(list(m.D_A.parameters()) + list(m.D_B.parameters()), 1e-3)
    assert set(T.cyclegan_step(m, og, od, a, b)) == {"G_gan", "cycle", "D"}
    off = T.CycleGAN(1, 1, ngf=4, depth=3, ndf=4, n_layers=1, lam_cycle=0)
    o2 = off.generator_losses(a, b)
    assert torch.isclose(o2["total"], o2["gan"])


def test_cyclegan_d_norm_option():
    # d_norm=False: discriminators without BatchNorm (and with biases in their convolutions)
    with_bn = T.CycleGAN(1, 1, ngf=4, depth=3, ndf=4, n_layers=2)
    no_bn = T.CycleGAN(1, 1, ngf=4, depth=3, ndf=4, n_layers=2, d_norm=False)
    for m, n_bn in ((with_bn, 2), (no_bn, 0)):
        for D in (m.D_A, m.D_B):
            assert sum(isinstance(x, nn.BatchNorm2d) for x in D.modules()) == n_bn
            assert all((c.bias is not None) == (n_bn == 0 or i in (0, 3))
                       for i, c in enumerate(x for x in D.modules() if isinstance(x, nn.Conv2d)))
    # the generators are untouched, and so is the receptive field
    assert T.n_params(no_bn.G) == T.n_params(with_bn.G)
    assert T.receptive_field(no_bn.D_B) == T.receptive_field(with_bn.D_B) == 34
    # without BatchNorm a fake's score does not depend on the other images of its batch
    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    for m, independent in ((no_bn, True), (with_bn, False)):
        alone, in_batch = m.D_B(x[:1]), m.D_B(x)[:1]
        assert torch.allclose(alone, in_batch, atol=1e-6) == independent
    og = torch.optim.Adam(list(no_bn.G.parameters()) + list(no_bn.F.parameters()), 1e-3)
    od = torch.optim.Adam(list(no_bn.D_A.parameters()) + list(no_bn.D_B.parameters()), 1e-3)
    assert set(T.cyclegan_step(no_bn, og, od, x, x.flip(0))) == {"G_gan", "cycle", "D"}
    with pytest.raises(TypeError, match="d_norm"):
        T.CycleGAN(d_norm=0)


def test_cyclegan_bad_inputs():
    with pytest.raises(ValueError):
        T.CycleGAN(lam_cycle=-1)
    with pytest.raises(ValueError):
        T.CycleGAN(ch_a=1, ch_b=3, lam_id=0.5)
    with pytest.raises(TypeError):
        T.cyclegan_step(nn.Linear(1, 1), None, None, None, None)
    D = nets.PatchDiscriminator(2, 4, 1)
    with pytest.raises(ValueError, match="channels"):
        D(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="share"):
        D(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError):
        D()
    with pytest.raises(ValueError):
        T.receptive_field([])
    with pytest.raises(ValueError):
        T.receptive_field([(4,)])
    with pytest.raises(TypeError):
        T.receptive_field(3)
    with pytest.raises(ValueError):
        T.output_size([(4, 2, 0)] * 3, 8)
    with pytest.raises(ValueError):
        T.conv_layers(nn.Linear(2, 2))


# --- measurements -----------------------------------------------------------------------------

# --- data -------------------------------------------------------------------------------------

def test_edges2photo_shapes_ranges_and_alignment():
    x, y = data.edges2photo("test", 6, size=32, seed=3)
    assert x.shape == (6, 2, 32, 32) and y.shape == (6, 1, 32, 32)
    assert set(torch.unique(x[:, 0]).tolist()) <= {-1.0, 1.0}
    assert y.min() >= -1 and y.max() <= 1
    # the hint channel is the 4x4 block mean of the photo (computed independently)
    blocks = y.reshape(6, 1, 4, 8, 4, 8).mean((3, 5))
    assert torch.allclose(x[:, 1, ::8, ::8], blocks[:, 0], atol=1e-5)
    e, y2 = data.edges2photo("test", 6, size=32, seed=3, hint=0)
    assert e.shape == (6, 1, 32, 32) and torch.equal(y2, y)
    assert torch.equal(data.edges2photo("test", 6, seed=3)[0], x)               # deterministic
    with pytest.raises(ValueError):
        data.edges2photo("val", 4)
    with pytest.raises(ValueError):
        data.edges2photo("test", 4, hint=-1)


def test_edge_map_and_sketch():
    img = torch.zeros(32, 32)
    img[:, 16:] = 1.0                                                            # a vertical step edge
    e = data.edge_map(img, sigma=1.0)
    cols = torch.nonzero(e > 0)[:, 1]
    assert len(cols) > 0 and (cols - 15.5).abs().max() <= 1.5
    s = data.sketch(img)
    assert s.shape == (32, 32) and s.min() >= -1 and s.max() <= 1
    assert s[:, 15:17].mean() < s[:, :8].mean()                                  # dark line on white paper
    with pytest.raises(ValueError):
        data.edge_map(img * 255)
    with pytest.raises(ValueError):
        data.sketch(torch.zeros(2, 3, 3))


def test_photo_sketch_domains_disjoint_and_shapes():
    for split in ("train", "test"):
        assert not set(data.SKETCH_DOMAINS[split]["A"]) & set(data.SKETCH_DOMAINS[split]["B"])
    train_all = set(data.SKETCH_DOMAINS["train"]["A"] + data.SKETCH_DOMAINS["train"]["B"])
    test_all = set(data.SKETCH_DOMAINS["test"]["A"] + data.SKETCH_DOMAINS["test"]["B"])
    assert not train_all & test_all
    assert train_all == set(data.photo_names("train", gray=True))
    a = data.photo_sketch("test", "A", 4)
    b = data.photo_sketch("test", "B", 4)
    assert a.shape == b.shape == (4, 1, 32, 32)
    p, s = data.photo_sketch_pairs("test", 4, seed=1)
    assert p.shape == s.shape == (4, 1, 32, 32)
    with pytest.raises(ValueError):
        data.photo_sketch("test", "C", 4)


def test_tone_hint():
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    h = data.tone_hint(x, cells=2)
    assert torch.allclose(h[:, :, :4, :4], x[:, :, :4, :4].mean((2, 3), keepdim=True).expand(2, 1, 4, 4))
    with pytest.raises(ValueError):
        data.tone_hint(x, cells=3)
    with pytest.raises(ValueError):
        data.tone_hint(x * 10)
