"""Tests of lib/gan.py and the chapter-6 mode-coverage metric in lib/metrics.py.

Expected values are derived by hand (probabilities chosen so the logs are simple) or from
an independent formula, never copied from the code's output.
"""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from lib import data, degrade, gan, inversion, metrics, nets, train

LOG4 = math.log(4.0)  # sigmoid(log 4) = 0.8, sigmoid(-log 4) = 0.2


# --- the losses ------------------------------------------------------------------------

def test_value_function_and_d_loss_match_the_slide_formulas():
    real = torch.tensor([LOG4, 0.0])          # D(x) = 0.8, 0.5
    fake = torch.tensor([-LOG4, -LOG4, 0.0])  # D(G(z)) = 0.2, 0.2, 0.5
    e_log_d_real = (math.log(0.8) + math.log(0.5)) / 2
    e_log_1m_d_fake = (2 * math.log(0.8) + math.log(0.5)) / 3
    assert gan.value_function(real, fake).item() == pytest.approx(e_log_d_real + e_log_1m_d_fake, abs=1e-6)
    assert gan.d_loss(real, fake).item() == pytest.approx(-0.5 * e_log_d_real - 0.5 * e_log_1m_d_fake, abs=1e-6)
    # J^(D) is half the binary cross-entropy with labels 1 (real) and 0 (fake)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert gan.d_loss(real, fake).item() == pytest.approx(
        0.5 * bce(real, torch.ones(2)).item() + 0.5 * bce(fake, torch.zeros(3)).item(), abs=1e-6)


def test_generator_losses_match_their_formulas():
    fake = torch.tensor([-LOG4, LOG4])       # D(G(z)) = 0.2, 0.8
    assert gan.g_loss(fake, "saturating").item() == pytest.approx(0.5 * (math.log(0.8) + math.log(0.2)) / 2, abs=1e-6)
    assert gan.g_loss(fake, "nonsaturating").item() == pytest.approx(-0.5 * (math.log(0.2) + math.log(0.8)) / 2, abs=1e-6)
    raw = torch.tensor([0.5, -2.0])
    assert gan.g_loss(raw, "lsgan").item() == pytest.approx(0.5 * ((0.5 - 1) ** 2 + (-3.0) ** 2) / 2)
    assert gan.g_loss(raw, "hinge").item() == pytest.approx(0.75)


def test_lsgan_and_hinge_discriminator_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-0.5, 1.0])
    assert gan.d_loss(real, fake, "lsgan").item() == pytest.approx(0.5 * (1 + 0.25) / 2 + 0.5 * (0.25 + 1) / 2)
    # hinge: relu(1 - 2) = 0, relu(1 - .5) = .5 ; relu(1 - .5) = .5, relu(1 + 1) = 2
    assert gan.d_loss(real, fake, "hinge").item() == pytest.approx(0.25 + 1.25)


def test_generator_gradients_saturate_only_for_the_minimax_loss():
    # d/dl of 1/2 log(1 - sigmoid(l)) is -sigmoid(l)/2; of -1/2 log sigmoid(l) it is -(1 - sigmoid(l))/2
    logits = torch.tensor([-8.0, 0.0, 8.0], requires_grad=True)
    for kind, expected in (("saturating", lambda s: -s / 2), ("nonsaturating", lambda s: -(1 - s) / 2)):
        (g,) = torch.autograd.grad(gan.g_loss(logits, kind) * 3, logits)  # *3 undoes the mean
        assert torch.allclose(g, expected(torch.sigmoid(logits.detach())), atol=1e-6)
    (g_sat,) = torch.autograd.grad(gan.g_loss(logits, "saturating"), logits)
    (g_ns,) = torch.autograd.grad(gan.g_loss(logits, "nonsaturating"), logits)
    assert abs(g_sat[0]) < 1e-3 < abs(g_ns[0])  # D(G(z)) ~ 0: only the non-saturating loss still pushes


def test_losses_reject_bad_input():
    with pytest.raises(ValueError, match="unknown discriminator loss"):
        gan.d_loss(torch.zeros(2), torch.zeros(2), "wasserstein")
    with pytest.raises(ValueError, match="unknown generator loss"):
        gan.g_loss(torch.zeros(2), "minimax")
    with pytest.raises(ValueError, match="NaN"):
        gan.g_loss(torch.tensor([float("nan")]))
    with pytest.raises(TypeError):
        gan.value_function([0.0], torch.zeros(1))


# --- the optimal discriminator ---------------------------------------------------------

def test_optimal_discriminator_two_gaussians():
    # p_data = N(0, 1), p_g = N(1, 1): p_g / p_data = exp(x - 1/2), so D* = sigmoid(1/2 - x)
    x = torch.linspace(-4, 5, 101, dtype=torch.float64)
    normal = lambda m: torch.exp(-(x - m) ** 2 / 2) / math.sqrt(2 * math.pi)
    assert torch.allclose(gan.optimal_discriminator(normal(0.0), normal(1.0)), torch.sigmoid(0.5 - x), atol=1e-12)


def test_optimal_discriminator_maximises_the_pointwise_value():
    # a log D + b log(1 - D) is maximal at D = a / (a + b): check against a fine grid of D
    a, b = torch.tensor([0.3, 2.0, 1.0]), torch.tensor([0.9, 0.5, 1.0])
    d = torch.linspace(1e-4, 1 - 1e-4, 20001, dtype=torch.float64)[:, None]
    best = d[(a * d.log() + b * (1 - d).log()).argmax(0), 0]
    assert torch.allclose(gan.optimal_discriminator(a, b).double(), best, atol=1e-3)


def test_optimal_discriminator_edge_cases_and_errors():
    out = gan.optimal_discriminator(torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 2.0]))
    assert out.tolist() == [0.5, 1.0, 0.0]
    with pytest.raises(ValueError, match="non-negative"):
        gan.optimal_discriminator(torch.tensor([-1.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="same shape"):
        gan.optimal_discriminator(torch.ones(2), torch.ones(3))


# --- the mode-coverage metric ----------------------------------------------------------

def _on_ring(angles, radius=1.0):
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], 1)


def test_mode_coverage_on_between_and_away_from_modes():
    k = torch.arange(2500) % 8
    on = _on_ring(2 * math.pi * k / 8)
    r = metrics.mode_coverage(on)
    assert r["modes"] == 8 and r["high_quality"] == pytest.approx(100.0) and sum(r["counts"]) == 2500
    between = _on_ring(2 * math.pi * (k + 0.5) / 8)
    assert metrics.mode_coverage(between)["modes"] == 0 and metrics.mode_coverage(between)["high_quality"] == 0
    away = _on_ring(2 * math.pi * k / 8, radius=1.2)  # 0.2 = 20 sigma from the modes
    assert metrics.mode_coverage(away)["modes"] == 0
    assert metrics.mode_coverage(torch.zeros(10, 2))["high_quality"] == 0


def test_mode_coverage_counts_collapse_and_the_three_sigma_radius():
    # 3 modes hit exactly (600 samples), 200 samples 2 sigma radially off mode 4 (high quality),
    # 200 samples 4 sigma off mode 5 (not), 1000 at the origin: 4 modes, 800/2000 = 40 % high quality
    k = torch.arange(600) % 3
    pts = torch.cat([_on_ring(2 * math.pi * k / 8),
                     _on_ring(torch.full((200,), 2 * math.pi * 4 / 8), radius=1.02),
                     _on_ring(torch.full((200,), 2 * math.pi * 5 / 8), radius=1.04),
                     torch.zeros(1000, 2)])
    r = metrics.mode_coverage(pts)
    assert r["modes"] == 4 and r["high_quality"] == pytest.approx(40.0)
    assert r["counts"] == [200, 200, 200, 0, 200, 0, 0, 0]
    assert metrics.mode_coverage(pts, min_count=201)["modes"] == 0
    assert metrics.mode_coverage(pts, sigma=0.02)["modes"] == 5  # 4 sigma of 0.01 is 2 sigma of 0.02


def test_mode_coverage_of_the_true_ring_is_complete():
    x = data.toy2d("ring8", 2500, seed=3, sigma=0.01)
    r = metrics.mode_coverage(x)
    assert r["modes"] == 8
    assert r["high_quality"] > 98.0  # a 2-D Gaussian puts 1 - exp(-9/2) = 98.9 % within 3 sigma


def test_mode_coverage_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.mode_coverage(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="NaN"):
        metrics.mode_coverage(torch.full((4, 2), float("nan")))
    with pytest.raises(ValueError, match="positive"):
        metrics.mode_coverage(torch.zeros(4, 2), sigma=0.0)


# --- packing and networks --------------------------------------------------------------

def test_pack_concatenates_consecutive_samples():
    x = torch.arange(12.0).reshape(6, 2)
    assert gan.pack(x, 2).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    im = torch.rand(4, 1, 16, 16)
    p = gan.pack(im, 2)
    assert p.shape == (2, 2, 16, 16) and torch.equal(p[1, 0], im[2, 0]) and torch.equal(p[1, 1], im[3, 0])
    assert gan.pack(x, 1) is x
    with pytest.raises(ValueError, match="multiple"):
        gan.pack(x, 4)


def test_networks_shapes_and_ranges():
    G, D = gan.DCGenerator(z_dim=8, ch=4), gan.DCDiscriminator(ch=4, pack=2)
    x = G(torch.randn(6, 8))
    assert x.shape == (6, 1, 16, 16) and x.abs().max() <= 1
    assert D(gan.pack(x, 2)).shape == (3,)
    assert inversion.Encoder(z_dim=8, ch=4)(x).shape == (6, 8)
    g2, d2 = gan.MLPGenerator(3, 2, 16, 2), gan.MLPDiscriminator(2, 16, 2, pack=4)
    assert g2.sample(8).shape == (8, 2) and d2(gan.pack(g2.sample(8), 4)).shape == (2,)
    assert gan.mlp is nets.mlp                       # the one MLP builder, tested in test_nets.py


def test_networks_reject_bad_input():
    G, D = gan.DCGenerator(z_dim=8, ch=4), gan.DCDiscriminator(ch=4)
    with pytest.raises(ValueError, match=r"latent z must have shape \(N, 8\)"):
        G(torch.randn(3, 7))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        D(torch.rand(2, 1, 16, 16) * 255)
    with pytest.raises(ValueError, match="16x16"):
        D(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        gan.MLPDiscriminator(2, 8, 1)(torch.zeros(3, 3))


def test_dcgan_init_statistics():
    G = gan.DCGenerator(z_dim=16, ch=32)
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 2e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
    opt = gan.adam(G.parameters())
    assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)


# --- training --------------------------------------------------------------------------

def test_train_step_learns_to_discriminate_and_returns_finite_losses():
    torch.manual_seed(0)
    G, D = gan.MLPGenerator(1, 1, 16, 2), gan.MLPDiscriminator(1, 16, 2)
    og, od = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    real = torch.randn(64, 1) * 0.1 + 3.0  # far from where G starts
    out = {}
    for _ in range(30):
        out = gan.train_step(G, D, og, od, real, torch.randn(64, 1), d_steps=2)
    assert set(out) == {"D", "G", "D(x)", "D(G(z))"}
    assert out["D(x)"] > out["D(G(z))"]
    assert all(torch.isfinite(v) for v in out.values())


def test_train_step_stops_on_nan_with_a_clear_message():
    G, D = gan.MLPGenerator(2, 2, 8, 1), gan.MLPDiscriminator(2, 8, 1)
    with torch.no_grad():
        next(G.parameters()).fill_(float("nan"))
    og, od = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    with pytest.raises(FloatingPointError, match="diverged"):
        gan.train_step(G, D, og, od, torch.randn(8, 2), torch.randn(8, 2))


def test_a_diverging_gan_stops_the_training_loop():
    # an absurd learning rate blows the generator up; train_loop must stop, not return garbage
    torch.manual_seed(0)
    G, D = gan.MLPGenerator(2, 2, 16, 2), gan.MLPDiscriminator(2, 16, 2)
    og, od = torch.optim.SGD(G.parameters(), lr=1e12), torch.optim.SGD(D.parameters(), lr=1e12)
    real = data.toy2d("ring8", 64)
    with pytest.raises(FloatingPointError, match="diverged"):
        train.train_loop(lambda i: gan.train_step(G, D, og, od, real, torch.randn(64, 2)), steps=200, desc="gan")


def test_train_step_bad_input():
    G, D = gan.MLPGenerator(2, 2, 8, 1), gan.MLPDiscriminator(2, 8, 1, pack=2)
    og, od = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    with pytest.raises(ValueError, match="same batch size"):
        gan.train_step(G, D, og, od, torch.randn(8, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match="multiple"):
        gan.train_step(G, D, og, od, torch.randn(7, 2), torch.randn(7, 2))
    with pytest.raises(ValueError, match="latent"):
        gan.train_step(G, D, og, od, torch.randn(8, 2), torch.randn(8, 3))


# --- interpolation ---------------------------------------------------------------------

def test_interpolation_endpoints_are_exact():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(32, generator=g), torch.randn(32, generator=g)
    for f in (gan.lerp, gan.slerp):
        path = f(z0, z1, torch.linspace(0, 1, 7))
        assert path.shape == (7, 32)
        assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    assert torch.allclose(gan.lerp(z0, z1, 0.5)[0], (z0 + z1) / 2)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 64))
def test_slerp_keeps_the_norm_of_unit_vectors(seed, dim):
    g = torch.Generator().manual_seed(seed)
    z0, z1 = torch.randn(dim, generator=g, dtype=torch.float64), torch.randn(dim, generator=g, dtype=torch.float64)
    z0, z1 = z0 / z0.norm(), z1 / z1.norm()
    if (z0 @ z1) < -0.999:
        return
    path = gan.slerp(z0, z1, torch.linspace(0, 1, 11, dtype=torch.float64))
    assert torch.allclose(path.norm(dim=1), torch.ones(11, dtype=torch.float64), atol=1e-9)
    # and the angle grows linearly along the great circle
    omega = torch.arccos((z0 @ z1).clamp(-1, 1))
    angles = torch.arccos((path @ z0).clamp(-1, 1))
    assert torch.allclose(angles, omega * torch.linspace(0, 1, 11, dtype=torch.float64), atol=1e-5)


def test_interpolation_bad_input():
    with pytest.raises(ValueError, match="same size"):
        gan.lerp(torch.zeros(3), torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match="opposite"):
        gan.slerp(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]), 0.5)
    with pytest.raises(ValueError, match="non-zero"):
        gan.slerp(torch.zeros(2), torch.ones(2), 0.5)
    # parallel vectors: slerp falls back to lerp
    assert torch.allclose(gan.slerp(torch.ones(2), 2 * torch.ones(2), 0.5)[0], 1.5 * torch.ones(2))


# --- projection into the latent space ---------------------------------------------------

def _small_generator(out_channels=1):
    torch.manual_seed(0)
    G = gan.DCGenerator(z_dim=8, ch=8, out_channels=out_channels)
    G.train()
    for m in G.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running statistics = plain average of the batches below
    with torch.no_grad():
        torch.nn.init.normal_(G.net[-2].weight, 0.0, 0.3)  # outputs that depend visibly on z
        for _ in range(5):
            G(torch.randn(64, 8))
    return G.eval()


def test_projection_loss_decreases_and_recovers_a_generated_image():
    G = _small_generator()
    with torch.no_grad():
        x = G(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)))
    z, losses = inversion.project(G, x, steps=60, lr=0.1)
    assert z.shape == (4, 8) and len(losses) == 60
    assert losses[-1] < 0.2 * losses[0]
    with torch.no_grad():
        final = ((G(z) - x) ** 2).mean().item()
    assert final < losses[0]
    assert all(p.requires_grad for p in G.parameters())  # G is left trainable


def test_hybrid_projection_is_pulled_towards_the_anchor():
    G = _small_generator()
    z_target = torch.randn(2, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = G(z_target)
    anchor = z_target + 1.0  # an encoder's imperfect guess
    z_free, _ = inversion.project(G, x, steps=30, lr=0.02, z_init=anchor)
    z_tied, losses = inversion.project(G, x, steps=30, lr=0.02, z_init=anchor, lam=3.0, z_anchor=anchor)
    assert (z_tied - anchor).norm() < (z_free - anchor).norm()
    assert losses[-1] < losses[0]


def test_projection_bad_input():
    G = _small_generator()
    with pytest.raises(ValueError, match=r"0\.\.255"):
        inversion.project(G, torch.rand(2, 1, 16, 16) * 255, steps=2)
    with pytest.raises(ValueError, match="latent"):
        inversion.project(G, torch.zeros(2, 1, 16, 16), steps=2, z_init=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="z_anchor"):
        inversion.project(G, torch.zeros(2, 1, 16, 16), steps=2, lam=1.0)


def test_encoder_step_reduces_the_latent_error():
    G = _small_generator()
    torch.manual_seed(0)
    E = inversion.Encoder(z_dim=8, ch=8)
    opt = torch.optim.Adam(E.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    losses = [inversion.encoder_step(E, G, opt, batch=64, generator=g).item() for _ in range(80)]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


def test_mlp_discriminator_scale_multiplies_the_input():
    torch.manual_seed(0)
    d1 = gan.MLPDiscriminator(2, 8, 1, scale=1.0)
    d10 = gan.MLPDiscriminator(2, 8, 1, scale=10.0)
    d10.load_state_dict(d1.state_dict())
    x = torch.randn(5, 2)
    assert torch.allclose(d10(x), d1(10 * x))
    with pytest.raises(ValueError, match="scale"):
        gan.MLPDiscriminator(2, 8, 1, scale=0.0)


def test_smooth_generator_outputs_bilinear_upsamplings_of_8x8_images():
    # like lib.data.digits, every image is a linear function of 64 pixels: rank <= 64
    torch.manual_seed(0)
    G = gan.DCGenerator(z_dim=8, ch=4, smooth=True).eval()
    with torch.no_grad():
        x = G(torch.randn(200, 8))
    assert x.shape == (200, 1, 16, 16) and x.abs().max() <= 1
    assert torch.linalg.matrix_rank(x.flatten(1).double(), rtol=1e-4).item() <= 64
    real, _ = data.digits("train")
    assert torch.linalg.matrix_rank(real[:300].flatten(1).double(), rtol=1e-4).item() <= 64


# --- class-conditional DCGAN ---------------------------------------------------------------

def test_labels_onehot_and_its_errors():
    y = gan.labels_onehot(torch.tensor([2, 0]), 3)
    assert torch.equal(y, torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    w = torch.tensor([[0.25, 0.75, 0.0]])
    assert torch.equal(gan.labels_onehot(w, 3), w)                      # class weights pass through
    for bad, err in [(torch.tensor([3]), ValueError), (torch.tensor([-1]), ValueError),
                     (torch.tensor([[0, 1]]), ValueError), (torch.tensor([True]), TypeError),
                     (torch.tensor([[0.5, 0.6, 0.0]]), ValueError), (torch.tensor([[1.5, -0.5, 0.0]]), ValueError),
                     (torch.tensor([[1.0, 0.0]]), ValueError)]:
        with pytest.raises(err):
            gan.labels_onehot(bad, 3)
    with pytest.raises(ValueError, match="one label per sample"):
        gan.labels_onehot(torch.tensor([0, 1]), 3, n=3)


def test_conditional_generator_uses_its_label():
    torch.manual_seed(0)
    G = gan.DCGenerator(z_dim=8, ch=4, num_classes=3).eval()
    z = torch.randn(2, 8)
    x0, x2 = G(z, torch.tensor([0, 0])), G(z, torch.tensor([2, 2]))
    assert x0.shape == (2, 1, 16, 16) and not torch.allclose(x0, x2)
    assert torch.allclose(G(z, gan.labels_onehot(torch.tensor([2, 2]), 3)), x2)   # int label == its one-hot row
    assert G.sample(4, y=torch.tensor([0, 1, 2, 0])).shape == (4, 1, 16, 16)
    with pytest.raises(ValueError, match="class-conditional: pass labels"):
        G(z)
    with pytest.raises(ValueError, match="one label per sample"):
        G(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="unconditional"):
        gan.DCGenerator(z_dim=8, ch=4)(z, torch.tensor([0, 1]))


def test_projection_discriminator_is_linear_in_the_class_weights():
    """D(x, y) = base(x) + <embed(y), phi(x)>: the label enters only through a term linear in y,
    so a mixture of two classes gives the same mixture of their logits."""
    torch.manual_seed(0)
    D = gan.DCDiscriminator(ch=4, num_classes=3).eval()
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    d0, d1 = D(x, torch.zeros(5, dtype=torch.long)), D(x, torch.ones(5, dtype=torch.long))
    mix = torch.tensor([[0.3, 0.7, 0.0]]).expand(5, 3)
    assert torch.allclose(D(x, mix), 0.3 * d0 + 0.7 * d1, atol=1e-5)
    assert not torch.allclose(d0, d1)
    with torch.no_grad():
        D.embed.weight.zero_()                                          # no class embedding: no label effect
    assert torch.allclose(D(x, torch.zeros(5, dtype=torch.long)), D(x, torch.full((5,), 2)))
    with pytest.raises(ValueError, match="cannot pack"):
        gan.DCDiscriminator(ch=4, num_classes=3, pack=2)
    with pytest.raises(ValueError, match="pass labels"):
        D(x)


def test_conditional_train_step_learns_the_label():
    """Class 0 is a dark image, class 1 a bright one: only if the labels reach G and D consistently
    can G learn to draw each class's brightness."""
    torch.manual_seed(0)
    G, D = gan.DCGenerator(z_dim=4, ch=4, num_classes=2), gan.DCDiscriminator(ch=4, num_classes=2)
    og, od = gan.adam(G.parameters(), lr=2e-3), gan.adam(D.parameters(), lr=2e-3)
    labels = torch.arange(32) % 2
    real = (labels.float() * 1.2 - 0.6).view(32, 1, 1, 1).expand(32, 1, 16, 16).contiguous()
    for _ in range(150):
        out = gan.train_step(G, D, og, od, real, torch.randn(32, 4), labels=labels)
    assert all(torch.isfinite(v) for v in out.values())
    G.eval()
    with torch.no_grad():
        m0 = float(G(torch.randn(64, 4), torch.zeros(64, dtype=torch.long)).mean())
        m1 = float(G(torch.randn(64, 4), torch.ones(64, dtype=torch.long)).mean())
    assert m0 < -0.3 and m1 > 0.3, (m0, m1)


def test_conditional_train_step_refuses_mismatches():
    G, D = gan.DCGenerator(z_dim=4, ch=4, num_classes=2), gan.DCDiscriminator(ch=4, num_classes=2)
    og, od = gan.adam(G.parameters()), gan.adam(D.parameters())
    real, z = torch.zeros(4, 1, 16, 16), torch.randn(4, 4)
    with pytest.raises(ValueError, match="pass labels"):
        gan.train_step(G, D, og, od, real, z)
    with pytest.raises(ValueError, match="both"):
        gan.train_step(G, gan.DCDiscriminator(ch=4), og, od, real, z, labels=torch.zeros(4, dtype=torch.long))
    G2, D2 = gan.DCGenerator(z_dim=4, ch=4), gan.DCDiscriminator(ch=4)
    with pytest.raises(ValueError, match="unconditional"):
        gan.train_step(G2, D2, gan.adam(G2.parameters()), gan.adam(D2.parameters()), real, z,
                       labels=torch.zeros(4, dtype=torch.long))


def test_projection_and_encoder_with_a_conditional_generator():
    torch.manual_seed(0)
    G = gan.DCGenerator(z_dim=8, ch=8, num_classes=3).eval()
    y = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        x = G(torch.randn(4, 8), y)
    z, losses = inversion.project(G, x, steps=60, lr=0.1, labels=y)
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="pass labels"):
        inversion.project(G, x, steps=2)
    E = inversion.Encoder(z_dim=8, ch=8)
    opt = torch.optim.Adam(E.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    l = [inversion.encoder_step(E, G, opt, batch=64, generator=g).item() for _ in range(60)]
    assert sum(l[-10:]) < sum(l[:10])


# --- the forms and scales chapters 8 and 10 use (moved from tests of lib.translation / lib.restoration) ---

def test_bce_and_lsgan_label_losses_match_their_formulas():
    """Chapter 8 uses the losses at twice lib.gan's scale: 2 * g_loss is the loss of the label "real",
    2 * d_loss with the other side's loss zero is the loss of the label "fake"."""
    l = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    sig = 1 / (1 + torch.exp(-l))
    big = torch.full_like(l, 30.0)            # -log sigmoid(30) = 0 in float32: the real side adds nothing
    assert torch.isclose(2 * gan.g_loss(l, form="bce"), (-torch.log(sig)).mean())
    assert torch.isclose(2 * gan.d_loss(big, l, form="bce"), (-torch.log(1 - sig)).mean())
    assert torch.isclose(2 * gan.g_loss(l, "lsgan"), ((l - 1) ** 2).mean())
    assert torch.isclose(2 * gan.d_loss(torch.ones_like(l), l, "lsgan"), (l ** 2).mean())
    assert math.isclose(float(2 * gan.g_loss(torch.zeros(3), form="bce")), math.log(2), rel_tol=1e-6)


def test_restoration_gan_losses_match_their_formulas():
    dr, df = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    ref_d = -(torch.log(sig(dr)).mean() + torch.log(1 - sig(df)).mean())
    assert torch.allclose(2 * gan.d_loss(dr, df, form="softplus"), ref_d)
    assert torch.allclose(2 * gan.g_loss(df, form="softplus"), -torch.log(sig(df)).mean())


def test_logistic_forms_agree_up_to_rounding():
    g = torch.Generator().manual_seed(0)
    r, f = torch.randn(2, 1, 6, 6, generator=g) * 3, torch.randn(2, 1, 6, 6, generator=g) * 3
    for form in gan.LOGISTIC_FORMS:
        assert torch.allclose(gan.d_loss(r, f, form=form), gan.d_loss(r, f), atol=1e-6)
        assert torch.allclose(gan.g_loss(f, form=form), gan.g_loss(f), atol=1e-6)
    with pytest.raises(ValueError):
        gan.d_loss(r, f, kind="wgan")
    with pytest.raises(ValueError):
        gan.g_loss(f, form="exp")
    with pytest.raises(TypeError):
        gan.d_loss(r.numpy(), f)


def test_degradation_aware_projection_fits_through_the_camera():
    """``render``: the generator's image is compared with the photo *after* the forward model, so
    a grey, blurred photo of a generated colour image is matched by a colour image."""
    G = _small_generator(out_channels=3)
    with torch.no_grad():
        truth = G(torch.randn(3, 8, generator=torch.Generator().manual_seed(1)))
    camera = lambda img: degrade.antique_camera(img, grain=0.0)
    old = camera(truth)                                                # (3, 1, 16, 16)
    z, losses = inversion.project(G, old, steps=80, lr=0.1, render=camera)
    assert z.shape == (3, 8) and losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert G(z).shape == (3, 3, 16, 16)
    # a per-image penalty is added to the objective: a huge one on the mean changes the answer
    calls = []
    pen = lambda img: (calls.append(1), 10.0 * img.mean((1, 2, 3)) ** 2)[1]
    z_pen, losses_pen = inversion.project(G, old, steps=5, lr=0.1, render=camera, penalty=pen)
    assert len(calls) == 5 and losses_pen[0] > losses[0]


def test_encoder_step_with_a_render_sees_degraded_images():
    G = _small_generator(out_channels=3)
    E = inversion.Encoder(z_dim=8, ch=8)                                     # reads 1-channel photos
    opt = torch.optim.Adam(E.parameters(), 2e-3)
    g = torch.Generator().manual_seed(0)
    camera = lambda img: degrade.antique_camera(img, grain=0.0)
    losses = [inversion.encoder_step(E, G, opt, batch=32, generator=g, render=camera).item() for _ in range(40)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    with pytest.raises(ValueError, match="channel"):
        inversion.encoder_step(E, G, opt, batch=4)                           # colour images, grey encoder
