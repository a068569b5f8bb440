"""Live models in the reader's browser: a playground cell that runs a notebook's trained
network with onnxruntime-web (WebAssembly), no server and no kernel.

At build time a model is exported to ONNX (:func:`export`, the batch dimension dynamic)
and checked against PyTorch with Python's onnxruntime (:func:`run`). A playground
(:func:`dcgan`, :func:`vae_map`, :func:`pix2pix`, :func:`text_to_image`) is one cell
output: a static figure (what print, a reader without JavaScript, or Jupyter/Colab
shows; the figure alone where onnx/onnxruntime are not installed), the models as base64
ONNX, a reference input with the PyTorch output for it, and the script
``lib/live.js``, which builds the controls once the book's copy of
onnxruntime-web (``ort/``, installed by the Makefile like MathJax) has loaded. The
book's Sphinx extension moves the models out of the page into ``_live/*.onnx`` files
(``_ext/workbook_html.py``), so a page loads as fast as one without them.

In the browser, ``box.live.check()`` runs the reference input through the same code path
as the controls and returns the largest difference from PyTorch's output (the HTML
tests call it: parity is measured in the browser).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import importlib.util
import io
import itertools
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import checks

ORT_VERSION = "1.30.0"  # onnxruntime-web (npm), the Makefile puts it in _extra/ort
TOLERANCE = 1e-3  # browser / onnxruntime vs PyTorch, on [-1, 1] images
_JS = Path(__file__).with_name("live.js")
_counter = itertools.count()


class Call(nn.Module):
    """``Call(owner, fn)``: a module whose forward is ``fn(*inputs)``, a function that
    uses ``owner`` (say ``lambda z: vae.mean_image(vae.decode(z))``), so that a model's
    method, or a few of them, can be exported; ``owner``'s parameters are its own."""

    def __init__(self, owner: nn.Module, fn: Callable):
        super().__init__()
        if not isinstance(owner, nn.Module) or not callable(fn):
            raise TypeError("Call needs an nn.Module and a function of the inputs")
        self.owner, self.fn = owner, fn

    def forward(self, *inputs):
        return self.fn(*inputs)


def export(model: nn.Module, inputs: dict, outputs: Sequence[str]) -> bytes:
    """The ONNX bytes of ``model``, exported in eval mode on its device (its train/eval
    mode is restored). ``inputs``: name -> an example tensor ``(N, ...)`` (float32 or int64), in the
    order ``model.forward`` takes them; ``outputs``: the names of its outputs. Dimension 0
    of every input and output is dynamic (any batch size). A model that cannot be
    exported raises ``ValueError`` naming it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, dict) or not inputs:
        raise ValueError(
            "inputs must be a non-empty dict: name -> example tensor (N, ...)"
        )
    for name, x in inputs.items():
        checks.tensor(x, f"inputs[{name!r}]")
        if x.dim() < 1 or x.dtype not in (torch.float32, torch.int64):
            raise ValueError(
                f"inputs[{name!r}] must be a float32 or int64 tensor (N, ...), "
                f"got {x.dtype} of shape {tuple(x.shape)}"
            )
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    if not outputs or not all(isinstance(o, str) for o in outputs):
        raise ValueError("outputs must be a non-empty list of names")
    training = model.training
    args = tuple(x.detach().to(_device(model)) for x in inputs.values())
    dynamic = {name: {0: "batch"} for name in [*inputs, *outputs]}
    buf = io.BytesIO()
    try:
        model.eval()
        fast = torch.backends.mha.get_fastpath_enabled()
        # the fused kernel of nn.TransformerEncoderLayer has no ONNX form
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter (deprecated since torch 2.9) traces the models as
            # they are; their input checks run once, on the example, outside the graph.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                args,
                buf,
                input_names=list(inputs),
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
    except Exception as e:  # the exporter's errors are many and long; say which model
        raise ValueError(
            f"cannot export {type(model).__name__} to ONNX for the browser: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    finally:
        model.train(training)
        torch.backends.mha.set_fastpath_enabled(fast)
    return buf.getvalue()


def run(onnx_model: bytes, inputs: dict) -> dict[str, np.ndarray]:
    """Run ONNX bytes with Python's onnxruntime (one thread): name -> array."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        onnx_model, options, providers=["CPUExecutionProvider"]
    )
    feed = {
        k: (v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v))
        for k, v in inputs.items()
    }
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


def _array(x) -> dict:
    """A tensor as JSON: dtype, shape and its bytes in base64 (exact, compact)."""
    a = np.ascontiguousarray(x.detach().cpu().numpy() if torch.is_tensor(x) else x)
    if a.dtype not in (np.float32, np.int64):
        a = a.astype(np.float32)
    return {
        "dtype": str(a.dtype),
        "shape": list(a.shape),
        "b64": base64.b64encode(a.tobytes()).decode(),
    }


def _checked(onnx_model: bytes, inputs: dict, want: torch.Tensor, what: str) -> float:
    """Largest |onnxruntime - PyTorch|; raises if above TOLERANCE."""
    got = next(iter(run(onnx_model, inputs).values()))
    err = float(np.abs(got - want.detach().cpu().numpy()).max())
    if not err <= TOLERANCE:
        raise ValueError(
            f"{what}: ONNX output differs from PyTorch by {err:.2g} > {TOLERANCE}"
        )
    return err


def _png(images: torch.Tensor, nrow: int) -> bytes:
    """A row/grid of images ``(N, C, H, W)`` in [-1, 1] as an opaque PNG (the static figure)."""
    from . import viz

    images = checks.images(images.detach().cpu().clamp(-1, 1), name="images")
    grid = viz.image_grid(
        images, nrow=nrow, scale=viz._px_per_pixel(nrow * images.shape[-1])
    )
    arr = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


class Playground:
    """A live cell: ``kind`` (which controls ``lib/live.js`` builds), ``models`` (name ->
    ONNX bytes), ``config`` (JSON for the controls, with the ``reference`` input and
    PyTorch output), ``figure`` (PNG bytes shown without the browser runtime), ``title``.
    ``errors``: the onnxruntime-vs-PyTorch differences measured when it was built."""

    def __init__(
        self,
        kind: str,
        models: dict,
        config: dict,
        figure: bytes,
        title: str,
        errors: dict,
    ):
        checks.choice(kind, ("dcgan", "vae", "pix2pix", "text2image"), "kind")
        self.kind, self.models, self.config = kind, dict(models), dict(config)
        self.figure, self.title, self.errors = figure, title, dict(errors)

    @property
    def nbytes(self) -> dict[str, int]:
        """Each model's size in bytes (what the page fetches)."""
        return {k: len(v) for k, v in self.models.items()}

    def __repr__(self) -> str:
        # One short line each: printed in the book, where an output line must fit the column.
        if not self.models:
            return f"{self.kind} playground: a static figure\n(pip install onnx onnxruntime to go live)"
        sizes = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in self.nbytes.items())
        errs = ", ".join(f"{k} {v:.1e}" for k, v in self.errors.items())
        return f"live {self.kind} playground\n  models: {sizes}\n  |ONNX - PyTorch| max: {errs}"

    def _repr_png_(self) -> bytes:
        return self.figure

    def _repr_html_(self) -> str:
        e = html.escape
        w, h = Image.open(io.BytesIO(self.figure)).size
        fig = (
            f'<img class="workbook-live-static" src="data:image/png;base64,'
            f'{base64.b64encode(self.figure).decode()}" width="{w}" height="{h}" alt="{e(self.title)}">'
        )
        if not self.models:  # made without onnx/onnxruntime (Colab?): the figure only
            return f"<div><p>{e(self.title)} (a static figure)</p>{fig}</div>"
        models = "".join(
            f'<script type="application/octet-stream" class="workbook-live-model" data-name="{e(name)}" '
            f'data-sha="{hashlib.sha256(b).hexdigest()[:16]}">{base64.b64encode(b).decode()}</script>'
            for name, b in self.models.items()
        )
        config = json.dumps(self.config).replace("</", "<\\/")
        return (
            f'<div class="workbook-live" id="workbook-live-{next(_counter)}" data-kind="{self.kind}">'
            f'<p class="workbook-live-status">{e(self.title)} (a static figure: the live version runs in '
            f"the HTML book)</p>"
            f'{fig}<script type="application/json" class="workbook-live-config">{config}</script>{models}'
            f"<script>{_JS.read_text()}</script></div>"
        )


@contextlib.contextmanager
def _evaluating(*models: nn.Module):
    """Models in eval mode inside the block, each back in its own mode after it."""
    modes = [m.training for m in models]
    try:
        yield [m.eval() for m in models]
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def _device(model: nn.Module) -> torch.device:
    return next(
        itertools.chain(model.parameters(), model.buffers()), torch.zeros(0)
    ).device


def runtime_available() -> bool:
    """Whether this Python can export and check a model (``onnx`` and ``onnxruntime``
    installed: the book's requirements; Colab may lack them, and then a playground is
    its static figure)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def _playground(
    kind: str, title: str, figure: bytes, config: dict, specs: dict
) -> Playground:
    """Export and check each model of ``specs``: name -> (module, example inputs, output
    names, PyTorch's output for those inputs); only the figure without onnx/onnxruntime."""
    models, errors = {}, {}
    if runtime_available():
        for name, (module, inputs, outputs, want) in specs.items():
            models[name] = export(module, inputs, outputs)
            errors[name] = _checked(models[name], inputs, want, name)
    return Playground(kind, models, config, figure, title, errors)


def _noise(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def dcgan(
    generator: nn.Module,
    classifier: nn.Module,
    z_dim: int,
    n_classes: int = 10,
    seed: int = 0,
) -> Playground:
    """Class buttons, latent sliders and "new sample" for a class-conditional generator
    ``generator(z (N, z_dim), y (N,) int64) -> (N, 1, H, W)``; ``classifier(x) -> logits
    (N, n_classes)`` reads the digit drawn. Reference: one code ``z`` for every class."""
    checks.positive_int(z_dim, "z_dim")
    checks.positive_int(n_classes, "n_classes")
    z = _noise((1, z_dim), seed).expand(n_classes, z_dim).contiguous()
    y = torch.arange(n_classes)
    with _evaluating(generator, classifier):
        images = generator(z.to(_device(generator)), y.to(_device(generator))).cpu()
        logits = classifier(images.to(_device(classifier))).cpu()
    config = {
        "z_dim": z_dim,
        "n_classes": n_classes,
        "sliders": min(6, z_dim),
        "reference": {
            "z": _array(z),
            "y": _array(y),
            "image": _array(images),
            "readings": logits.argmax(1).tolist(),
        },
    }
    title = "DCGAN playground: one latent code, the ten class buttons"
    specs = {
        "generator": (generator, {"z": z, "y": y}, ["image"], images),
        "classifier": (classifier, {"image": images}, ["logits"], logits),
    }
    return _playground("dcgan", title, _png(images, n_classes), config, specs)


@torch.no_grad()
def vae_map(
    decoder: nn.Module, codes: torch.Tensor, labels: torch.Tensor, grid: int = 6
) -> Playground:
    """Click a point of the 2-D latent map to decode it: ``decoder(z (N, 2)) -> (N, C, H, W)``
    in [-1, 1] (wrap a method with :class:`Call`); ``codes (M, 2)`` and ``labels (M,)``: the
    encoded digits drawn as the map. Reference: a ``grid x grid`` lattice over the map."""
    checks.shape(codes, (None, 2), "codes")
    checks.shape(labels, (len(codes),), "labels")
    lo = codes.min(0).values.tolist()
    hi = codes.max(0).values.tolist()
    u = torch.linspace(0, 1, grid)
    zz = torch.stack(
        [
            torch.tensor([lo[0] + (hi[0] - lo[0]) * a, hi[1] - (hi[1] - lo[1]) * b])
            for b in u.tolist()
            for a in u.tolist()
        ]
    ).float()
    with _evaluating(decoder):
        images = decoder(zz.to(_device(decoder))).cpu()
    config = {
        "extent": [lo[0], hi[0], lo[1], hi[1]],
        "codes": [[round(float(a), 4), round(float(b), 4)] for a, b in codes.cpu()],
        "labels": [int(k) for k in labels.cpu()],
        "reference": {"z": _array(zz), "image": _array(images)},
    }
    title = "VAE playground: the decoder over a lattice of the 2-D latent map"
    specs = {"decoder": (decoder, {"z": zz}, ["image"], images)}
    return _playground("vae", title, _png(images, grid), config, specs)


@torch.no_grad()
def pix2pix(
    generator: nn.Module,
    sketch: torch.Tensor,
    inside: float = 0.6,
    outside: float = -0.4,
) -> Playground:
    """Draw edges (and tone) on a canvas, see the photo: ``generator(sketch (N, 2, S, S)) ->
    (N, 1, S, S)``, channel 0 the edges in {-1, 1}, channel 1 the tone hint (``inside`` a
    shape, ``outside``). ``sketch (1, 2, S, S)``: the drawing the canvas starts from (and
    the reference)."""
    checks.shape(sketch, (1, 2, None, None), "sketch")
    with _evaluating(generator):
        photo = generator(sketch.to(_device(generator))).cpu()
    config = {
        "inside": inside,
        "outside": outside,
        "reference": {"sketch": _array(sketch), "photo": _array(photo)},
    }
    title = "pix2pix playground: the sketch (edges, tone) and the generator's photo"
    shown = torch.cat([sketch[:, :1].cpu(), sketch[:, 1:].cpu(), photo.clamp(-1, 1)])
    specs = {"generator": (generator, {"sketch": sketch.cpu()}, ["photo"], photo)}
    return _playground("pix2pix", title, _png(shown, 3), config, specs)


@torch.no_grad()
def text_to_image(
    model: nn.Module,
    autoencoder: nn.Module,
    sched,
    caption: str,
    w: float = 3.0,
    steps: int = 20,
    seed: int = 0,
) -> Playground:
    """Text-to-image in the browser: pick a caption of the grammar, DDIM ``steps`` steps
    with classifier-free guidance ``w`` (a slider) in the latent space of ``autoencoder``,
    then its decoder. ``model``: a :class:`lib.text2image.TextUNet`. The guided noise
    predictor (both passes, :func:`lib.diffusion.cfg_eps`) is one ONNX model, the decoder
    another; the DDIM loop runs in JavaScript. Reference: ``caption`` from the seeded
    noise, through :func:`lib.text2image.generate`, and the mean colour PyTorch draws from
    that noise with each colour word in the caption (``config["colours"]``)."""
    from . import diffusion, scenes, text2image

    checks.positive_int(steps, "steps")
    checks.nonnegative(w, "w")
    tokens = scenes.tokenize([caption])
    x_T = _noise((1, model.channels, 8, 8), seed)
    dev = _device(model)
    guided = Call(
        model,
        lambda z, t, tok, ws: diffusion.cfg_eps(
            model(z, t, tok), model(z, t, None), ws
        ),
    )
    t = torch.full((1,), sched.T, dtype=torch.int64)
    ws = torch.full((1,), float(w))
    eps_in = {"z": x_T, "t": t, "tokens": tokens, "w": ws}
    z0 = x_T.clamp(-1, 1)
    words = caption.split()
    at = next((i for i, word in enumerate(words) if word in scenes.COLOURS), None)
    if at is None:
        raise ValueError(f"caption {caption!r} names no colour of {scenes.COLOURS}")
    variants = [" ".join([*words[:at], c, *words[at + 1 :]]) for c in scenes.COLOURS]
    with _evaluating(model, autoencoder):
        image = text2image.generate(
            model, autoencoder, sched, [caption], w=w, steps=steps, x_T=x_T.to(dev)
        ).cpu()
        # the same noise under each colour word: what PyTorch draws (mean R, G, B)
        recoloured = text2image.generate(
            model,
            autoencoder,
            sched,
            variants,
            w=w,
            steps=steps,
            x_T=x_T.expand(len(variants), -1, -1, -1).to(dev),
        ).cpu()
        eps = guided(*[v.to(dev) for v in eps_in.values()]).cpu()
        decoded = autoencoder.decode(z0.to(dev)).cpu()
    config = {
        "vocab": list(scenes.VOCAB),
        "max_tokens": scenes.MAX_TOKENS,
        "grammar": {
            "size": list(scenes.SIZES),
            "colour": list(scenes.COLOURS),
            "shape": list(scenes.SHAPES),
            "where": [scenes.WHERE_TEXT[k] for k in scenes.WHERES],
        },
        "alpha_bars": [float(a) for a in sched.alpha_bars],
        "steps": steps,
        "channels": model.channels,
        "w": float(w),
        "colours": {
            c: recoloured[i].mean((1, 2)).tolist() for i, c in enumerate(scenes.COLOURS)
        },
        "reference": {
            "caption": caption,
            "x_T": _array(x_T),
            "w": float(w),
            "image": _array(image),
        },
    }
    title = (
        f"text-to-image playground: {caption!r}, guidance w = {w:g}, {steps} DDIM steps"
    )
    specs = {
        "eps": (guided, eps_in, ["eps"], eps),
        "decoder": (
            Call(autoencoder, autoencoder.decode),
            {"z": z0},
            ["image"],
            decoded,
        ),
    }
    return _playground("text2image", title, _png(image, 1), config, specs)
