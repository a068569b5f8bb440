"""Semantic image synthesis (chapter 10): SPADE, its generator and style encoder, the
instance-norm U-Net of the comparison, close-up crops of landscapes, mIoU and the scene
feature net."""
import pytest
import torch
import torch.nn.functional as F

from lib import landscapes as L, metrics, nets, translation as T

C = len(L.CLASSES)


def _layouts(n=2, size=32, seed=0):
    d = L.landscapes(n, size, seed, times=("day",), weathers=("clear",))
    return L.one_hot(d["labels"]), d["images"]


def test_spade_normalises_then_modulates_by_the_layout():
    torch.manual_seed(0)
    spade = T.SPADE(4, C, hidden=8)
    h = torch.randn(3, 4, 8, 8)
    m = L.one_hot(torch.randint(0, C, (3, 16, 16)))   # a finer layout is resized to 8x8
    out = spade(h, m)
    assert out.shape == h.shape
    # with the modulation switched off, SPADE is a BatchNorm without scale and shift
    for conv in (spade.gamma, spade.beta):
        torch.nn.init.zeros_(conv.weight); torch.nn.init.zeros_(conv.bias)
    ref = (h - h.mean((0, 2, 3), keepdim=True)) / torch.sqrt(h.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(spade(h, m), ref, atol=1e-4)


def test_spade_keeps_the_class_of_a_flat_layout_that_instance_norm_washes_away():
    # SPADE's argument: conv + InstanceNorm maps every uniform layout to zero; SPADE does not
    torch.manual_seed(0)
    flat = torch.stack([L.one_hot(torch.full((8, 8), c)) for c in range(C)])   # (C, C, 8, 8)
    conv_in = torch.nn.Sequential(torch.nn.Conv2d(C, 4, 1), torch.nn.InstanceNorm2d(4, affine=False))
    assert conv_in(flat).abs().max() < 1e-3
    spade = T.SPADE(4, C, hidden=8).eval()
    out = spade(torch.zeros(C, 4, 8, 8), flat)
    assert (out[0] - out[2]).abs().mean() > 1e-2       # sky and grass differ


def test_spade_generator_shapes_styles_and_input_checks():
    torch.manual_seed(0)
    G = T.SPADEGenerator(C, z_dim=4, ngf=4, hidden=8)
    m, x = _layouts(2)
    z = torch.randn(2, 4)
    y = G(m, z)
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1
    assert torch.equal(G.eval()(m, z), G(m, z))                       # deterministic given z
    assert G(m, style=x).shape == (2, 3, 32, 32) and G.kl.dim() == 0 and G.kl >= 0
    mu, logvar = G.encode(x)
    assert mu.shape == logvar.shape == (2, 4)
    assert torch.allclose(G(m, style=x), G(m, mu))                     # eval mode: z = mu
    with pytest.raises(ValueError, match=r"one-hot map \(N, 5, H, W\)"):
        G(m[:, :3], z)
    with pytest.raises(ValueError, match="32x32"):
        G(F.interpolate(m, size=16), z[:, :4])
    with pytest.raises(ValueError, match="not both"):
        G(m, z, style=x)
    with pytest.raises(ValueError, match="z"):
        G(m, torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\[-1, 1\]|range"):
        G(m, style=x * 255)
    with pytest.raises(ValueError, match="no style encoder"):
        T.SPADEGenerator(C, z_dim=4, ngf=4, encoder=False).encode(x)


def test_changing_the_layout_changes_the_output_in_that_region():
    torch.manual_seed(0)
    G = T.SPADEGenerator(C, z_dim=4, ngf=4, hidden=8).eval()
    lab = torch.full((1, 32, 32), L.SKY)
    lab[:, 16:] = L.GRASS
    edit = lab.clone()
    edit[:, 24:, :8] = L.WATER                                        # a pond bottom-left
    z = torch.randn(1, 4)
    with torch.no_grad():
        diff = (G(L.one_hot(edit), z) - G(L.one_hot(lab), z)).abs().sum(1)[0]
    inside = diff[24:, :8].mean()
    far = diff[:8, 16:].mean()                                        # top right, far from the pond
    assert inside > 1e-3 and far < 0.1 * inside


def test_pix2pix_step_trains_spade_with_its_kl_term():
    torch.manual_seed(0)
    G = T.SPADEGenerator(C, z_dim=4, ngf=4, hidden=8)
    D = nets.PatchDiscriminator(C + 3, 8, n_layers=1)
    og, od = (torch.optim.Adam(n.parameters(), 1e-3) for n in (G, D))
    m, x = _layouts(4)
    out = T.pix2pix_step(G, D, og, od, m, x, kl_weight=0.1)
    assert set(out) == {"D", "G_gan", "G_l1", "KL"} and out["KL"] >= 0
    with pytest.raises(ValueError, match="style encoder"):
        T.pix2pix_step(nets.ImageUNet(C, 3, 4, 5), D, og, od, m, x, kl_weight=0.1)
    with pytest.raises(ValueError, match="kl_weight"):
        T.pix2pix_step(G, D, og, od, m, x, kl_weight=-1.0)


def test_image_unet_instance_norm_and_logits():
    torch.manual_seed(0)
    G = nets.ImageUNet(C, 3, ngf=4, depth=3, norm="instance")
    assert any(isinstance(mod, torch.nn.InstanceNorm2d) for mod in G.modules())
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in G.modules())
    m, _ = _layouts(2)
    assert G(m).shape == (2, 3, 32, 32)
    seg = nets.ImageUNet(3, C, ngf=4, depth=3, out="logits")
    with torch.no_grad():
        seg.up[-1][1].bias.fill_(5.0)                                 # logits are not squashed
    assert seg(torch.zeros(1, 3, 32, 32)).max() > 1.5
    with pytest.raises(ValueError, match="norm"):
        nets.ImageUNet(C, 3, norm="group")
    with pytest.raises(ValueError, match="out"):
        nets.ImageUNet(C, 3, out="sigmoid")


def test_crops_are_exact_close_ups_of_the_big_render():
    d = L.crops(3, size=16, zoom=3, seed=4, per_scene=2)
    assert d["images"].shape == (6, 3, 16, 16) and d["labels"].shape == (6, 16, 16)
    assert len(d["layouts"]) == len(d["styles"]) == 6 and d["boxes"].shape == (6, 2)
    assert int(d["boxes"].min()) >= 0 and int(d["boxes"].max()) <= 32
    j = 3
    r, c = d["boxes"][j].tolist()
    big = L.render(d["layouts"][j], d["styles"][j], "day", "clear", 48)
    assert torch.equal(d["images"][j], big[:, r:r + 16, c:c + 16])
    assert torch.equal(d["labels"][j], L.layout_labels(d["layouts"][j], 48)[r:r + 16, c:c + 16])
    assert d["layouts"][2] is d["layouts"][3]                          # two close-ups per scene
    with pytest.raises(ValueError, match="zoom"):
        L.crops(2, zoom=0)


def test_iou_by_hand_and_its_checks():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    m, per = metrics.iou(pred, target, 3)
    assert per[0] == pytest.approx(1 / 2) and per[1] == pytest.approx(2 / 3) and torch.isnan(per[2])
    assert m == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics.iou(target, target, 3)[0] == 1.0
    with pytest.raises(TypeError, match="int64"):
        metrics.iou(pred.float(), target, 3)
    with pytest.raises(ValueError, match="same shape"):
        metrics.iou(pred[:, :3], target, 3)
    with pytest.raises(ValueError, match="0..2"):
        metrics.iou(pred + 5, target, 3)


def test_scene_feature_net_shapes_and_checks():
    net = metrics.SceneFeatureNet(7, width=4)
    x = torch.zeros(2, 3, 32, 32)
    assert net(x).shape == (2, 7) and net.features(x).shape == (2, 64)
    with pytest.raises(ValueError, match="32x32"):
        net.features(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError):
        net.features(torch.full((2, 3, 32, 32), 3.0))
