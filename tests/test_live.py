"""lib.live: the ONNX export (shapes, dynamic batch, equal to PyTorch under onnxruntime,
clear errors) and the playground cell's output. The playgrounds in a browser are tested
on the built book (tests_html/test_live.py)."""

import base64
import io
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from lib import diffusion, gan, live, metrics, text2image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "_ext"))
import workbook_html  # noqa: E402


class Tiny(nn.Module):
    """A float input and an int64 class: (N, 4), (N,) -> (N, 1, 4, 4)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(3, 4)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.Tanh())

    def forward(self, z, y):
        return self.net(z + self.emb(y)).view(-1, 1, 4, 4)


class Eigen(nn.Module):
    def forward(self, x):
        return torch.linalg.eigvals(x).real


def test_export_equals_pytorch_for_any_batch():
    torch.manual_seed(0)
    m = Tiny()
    m(torch.randn(8, 4), torch.randint(0, 3, (8,)))  # BatchNorm statistics move
    onnx = live.export(
        m, {"z": torch.randn(2, 4), "y": torch.zeros(2, dtype=torch.int64)}, ["image"]
    )
    assert m.training, "the model's train/eval mode is restored"
    m.eval()
    for n in (1, 5):  # not the example's batch size: dimension 0 is dynamic
        z, y = torch.randn(n, 4), torch.randint(0, 3, (n,))
        got = live.run(onnx, {"z": z, "y": y})["image"]
        assert got.shape == (n, 1, 4, 4)
        assert abs(got - m(z, y).detach().numpy()).max() < 1e-5


def test_export_of_a_transformer_and_guidance_in_one_graph():
    """The text-to-image noise predictor (a Transformer text encoder) with both passes of
    classifier-free guidance, the scale one input per sample."""
    torch.manual_seed(0)
    model = text2image.TextUNet(
        channels=4, base=8, mults=(1,), cond_dim=16, map_channels=4
    ).eval()
    for p in (
        model.parameters()
    ):  # the U-Net's last layer starts at zero: make it say something
        p.data += 0.05 * torch.randn_like(p)
    guided = live.Call(
        model,
        lambda z, t, tok, w: diffusion.cfg_eps(model(z, t, tok), model(z, t, None), w),
    )
    tok = torch.randint(1, 10, (2, 12))
    args = {
        "z": torch.randn(2, 4, 8, 8),
        "t": torch.tensor([50, 100]),
        "tokens": tok,
        "w": torch.tensor([0.0, 4.0]),
    }
    onnx = live.export(guided, args, ["eps"])
    want = guided(*args.values()).detach().numpy()
    assert abs(want).max() > 1e-3
    assert abs(live.run(onnx, args)["eps"] - want).max() < 1e-4


def test_unsupported_model_and_bad_input_are_refused_clearly():
    with pytest.raises(ValueError, match="cannot export Eigen to ONNX.*eigvals"):
        live.export(Eigen(), {"x": torch.rand(2, 3, 3)}, ["y"])
    with pytest.raises(TypeError, match="nn.Module"):
        live.export(lambda x: x, {"x": torch.rand(2)}, ["y"])
    with pytest.raises(ValueError, match="float32 or int64"):
        live.export(
            Tiny(),
            {"z": torch.rand(2, 4, dtype=torch.float64), "y": torch.zeros(2).long()},
            ["y"],
        )
    with pytest.raises(ValueError, match="non-empty dict"):
        live.export(Tiny(), {}, ["y"])


def test_dcgan_playground_output():
    torch.manual_seed(0)
    G = gan.DCGenerator(8, 4, num_classes=10).train()
    p = live.dcgan(G, metrics.digit_feature_net(), 8)
    assert G.training, "the generator's mode is restored"
    assert (
        set(p.nbytes) == {"generator", "classifier"}
        and max(p.errors.values()) < live.TOLERANCE
    )
    html = p._repr_html_()
    assert Image.open(io.BytesIO(p._repr_png_())).mode in ("L", "RGB"), (
        "an opaque static figure"
    )
    assert (
        'class="workbook-live"' in html
        and 'data-kind="dcgan"' in html
        and 'alt="DCGAN' in html
    )
    config = json.loads(
        re.search(r'class="workbook-live-config">(.*?)</script>', html).group(1)
    )
    ref = config["reference"]
    assert (
        ref["z"]["shape"] == [10, 8]
        and ref["image"]["shape"] == [10, 1, 16, 16]
        and len(ref["readings"]) == 10
    )
    assert "data-content_root" in live._JS.read_text(), (
        "the script finds the book's own onnxruntime-web"
    )


def test_the_book_moves_the_models_out_of_the_page(tmp_path):
    """The Sphinx extension's pattern finds every model the cell carries, intact."""
    from docutils import nodes

    from lib import vae

    v = vae.VAE(latent_dim=2, hidden=16, likelihood="gaussian", sigma=0.5)
    p = live.vae_map(
        live.Call(v, lambda z: v.mean_image(v.decode(z))),
        torch.randn(20, 2),
        torch.arange(20) % 10,
    )
    html = p._repr_html_()
    doctree = nodes.section()
    doctree += nodes.raw(html, html, format="html")

    class App:
        outdir = tmp_path

        class builder:
            format = "html"

    workbook_html._live_models_to_files(App, doctree, "chapters/x")
    new = doctree.next_node(nodes.raw).astext()
    (src,) = re.findall(r'data-src="(_live/[0-9a-f]+\.onnx)"', new)
    assert (tmp_path / src).read_bytes() == p.models["decoder"]
    assert len(new) < len(html) - len(base64.b64encode(p.models["decoder"])) + 200
    with pytest.raises(ValueError, match="2 columns|shape"):
        live.vae_map(v, torch.randn(20, 3), torch.arange(20))


def test_without_onnx_a_playground_is_its_static_figure(monkeypatch):
    """Where onnx/onnxruntime are missing (Colab may lack them) the cell still runs."""
    monkeypatch.setattr(live, "runtime_available", lambda: False)
    p = live.dcgan(
        gan.DCGenerator(8, 4, num_classes=10), metrics.digit_feature_net(), 8
    )
    html = p._repr_html_()
    assert p.models == {} and "static figure" in repr(p)
    assert "<img" in html and "<script" not in html


def test_the_printed_summary_fits_the_book_column():
    """The book prints each playground; its output lines must fit the column (~70 characters
    of output font): one short line per item, never one long line."""
    p = live.Playground(
        "text2image", {"eps": b"x" * 1_990_000, "decoder": b"x" * 90_000}, {}, b"", "t",
        {"eps": 6.1e-06, "decoder": 3.7e-07},
    )
    lines = repr(p).splitlines()
    assert len(lines) == 3 and max(map(len, lines)) <= 70, lines
    assert "eps 1.99 MB" in lines[1] and "decoder 3.7e-07" in lines[2]
