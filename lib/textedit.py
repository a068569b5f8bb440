"""Text-guided image editing in a generator's latent space (chapter 10, CLIPInverter).

An edit takes an image ``x`` and a target description ``t`` and returns an image ``y``
that shows what ``t`` says while keeping the rest of ``x``. Everything works in the
latent space of a generator ``G`` with an encoder (an inverter) ``E``: ``w_x = E(x)``,
``y = G(w)``. Two ways to find ``w``, both steered by the small CLIP of chapter 9
(:class:`lib.clip.CLIP`) and both minimising the same :func:`edit_loss`:

* :func:`optimise_edits` -- StyleCLIP's latent optimisation {Patashnik et al. 2021}
  (the slides' "StyleCLIP-LO"): gradient descent on ``w`` for every single edit;
* :class:`CLIPInverter` {Baykal et al. 2023} -- a network trained once
  (:func:`fit_inverter`), so that an edit is one forward pass: a :class:`CLIPAdapter`
  (the text embedding modulates the image's feature maps, which are turned into a
  residual latent) followed by a :class:`CLIPRemapper` (a correction of that latent
  computed from the text embedding).

Edits of one-object scenes (:mod:`lib.scenes`) are drawn by :func:`edit_requests`: one
attribute (shape, colour, size or position) changes, and each request comes with a
*specific* target description (the full caption of the edited scene) and a *generic*
one (only the new attribute: the mean of the embeddings of every caption that says it,
chapter 9's zero-shot class vector), so the slides' "Limitations" -- an edit leaks into
attributes the text did not mention, less so when the text is specific -- can be measured.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import checks, clip, scenes, train

ATTRIBUTES = ("shape", "colour", "size", "where")
VALUES = {"shape": scenes.SHAPES, "colour": scenes.COLOURS, "size": scenes.SIZES, "where": scenes.WHERES}


# --- edit requests ------------------------------------------------------------------------


@dataclass
class EditRequests:
    """``N`` edits of one-object scenes: the source ``captions`` and ``labels`` (index of each
    attribute's value, ``{attr: (N,) int64}``), the ``attribute`` that changes (``(N,)`` index
    into :data:`ATTRIBUTES`), the ``target`` labels (the source's with that one value replaced)
    and the target descriptions: ``specific`` (the edited scene's full caption) and ``generic``
    (``(attribute, value)`` word pairs, embedded by :func:`text_targets`)."""

    captions: list
    labels: dict
    attribute: torch.Tensor
    target: dict
    specific: list
    generic: list

    def __len__(self):
        return len(self.captions)


def edit_requests(captions, rng: np.random.Generator, attributes=ATTRIBUTES) -> EditRequests:
    """One random edit per one-object caption: an attribute drawn uniformly from ``attributes``
    and a new value drawn uniformly among the other values of that attribute."""
    if isinstance(captions, str) or len(captions) == 0:
        raise ValueError("captions must be a non-empty list of one-object captions")
    for a in attributes:
        checks.choice(a, ATTRIBUTES, "attribute")
    labels = {a: [] for a in ATTRIBUTES}
    target = {a: [] for a in ATTRIBUTES}
    which, specific, generic = [], [], []
    for c in captions:
        p = scenes.parse_caption(c)
        if len(p["objects"]) != 1:
            raise ValueError(f"edits are defined for one-object captions, got {c!r}")
        size, colour, shape = p["objects"][0]
        src = {"shape": shape, "colour": colour, "size": size, "where": p["where"]}
        attr = attributes[int(rng.integers(len(attributes)))]
        options = [v for v in VALUES[attr] if v != src[attr]]
        new = dict(src, **{attr: options[int(rng.integers(len(options)))]})
        for a in ATTRIBUTES:
            labels[a].append(VALUES[a].index(src[a]))
            target[a].append(VALUES[a].index(new[a]))
        which.append(ATTRIBUTES.index(attr))
        specific.append(scenes.make_caption([(new["size"], new["colour"], new["shape"])], where=new["where"]))
        generic.append((attr, new[attr]))
    as_t = lambda d: {a: torch.tensor(v) for a, v in d.items()}
    return EditRequests(list(captions), as_t(labels), torch.tensor(which), as_t(target), specific, generic)


@torch.no_grad()
def text_targets(model: clip.CLIP, req: EditRequests, specific: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit text embeddings ``(target, source)``, each ``(N, D)``, of the requests.

    ``specific=True``: the edited scene's full caption and the source caption. ``False``:
    the *generic* descriptions "it is <new value>" and "it is <old value>", each the
    normalised mean embedding of every one-object caption with that value
    (:func:`lib.clip.zero_shot_classifier`), i.e. a text that names only the edited attribute.
    """
    if specific:
        return model.encode_captions(req.specific), model.encode_captions(req.captions)
    cls = {a: clip.zero_shot_classifier(model, [scenes.one_object_captions(**{a: v}) for v in VALUES[a]])
           for a in ATTRIBUTES}
    attr = [ATTRIBUTES[i] for i in req.attribute.tolist()]
    t = torch.stack([cls[a][VALUES[a].index(v)] for a, v in zip(attr, (v for _, v in req.generic))])
    s = torch.stack([cls[a][int(req.labels[a][i])] for i, a in enumerate(attr)])
    return t, s


def render_edits(source: list, req: EditRequests, size: int = 32) -> torch.Tensor:
    """The ground truth the grammar can draw: each source scene (``source``, one-object
    :class:`lib.scenes.Scene` list) with its request applied, ``(N, 3, size, size)``. The
    background, and the object's centre unless the position changes, are kept; a new size
    takes the middle radius of that size class (same-size edits keep the radius); a new
    position puts the object 0.23 of the side off-centre towards it."""
    if len(source) != len(req):
        raise ValueError(f"need one scene per request, got {len(source)} scenes and {len(req)} requests")
    out = []
    for sc, i in zip(source, range(len(req))):
        if not isinstance(sc, scenes.Scene) or len(sc.objects) != 1:
            raise ValueError("render_edits needs one-object lib.scenes.Scene objects")
        o = sc.objects[0]
        new = {a: VALUES[a][int(req.target[a][i])] for a in ATTRIBUTES}
        r = o.r if new["size"] == o.size else float(np.mean(scenes.RADIUS[new["size"]]))
        cx, cy = o.cx, o.cy
        if new["where"] != sc.where:
            cx, cy = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73)}[new["where"]]
        rgb = scenes.RGB[new["colour"]] if new["colour"] != o.colour else o.rgb
        obj = scenes.SceneObject(new["shape"], new["colour"], new["size"], cx, cy, r, tuple(rgb))
        out.append(scenes.render_scene(scenes.Scene((obj,), where=new["where"], background=sc.background), size))
    return torch.stack(out)


# --- the loss both editors minimise -----------------------------------------------------------


def edit_loss(model: clip.CLIP, decode: Callable, w: torch.Tensor, w_src: torch.Tensor, x_emb: torch.Tensor,
              t: torch.Tensor, s: torch.Tensor, similarity: float = 1.0, direction: float = 1.0,
              latent: float = 0.5, image: float = 0.0, x: torch.Tensor | None = None) -> dict:
    """The CLIP editing loss per edit, averaged over the batch (a dict with ``"loss"`` and its terms).

    ``w``, ``w_src``: edited and source latents ``(N, d)``; ``x_emb``: unit CLIP image
    embeddings of the source images ``(N, D)``; ``t``, ``s``: unit text embeddings of the
    target and source descriptions ``(N, D)``. With ``u = E_img(decode(w))``:

    * global CLIP loss ``1 - cos(u, t)`` (StyleCLIP), weighted by ``similarity``: look like
      the target text;
    * directional CLIP loss ``1 - cos(u - x_emb, t - s)`` (StyleGAN-NADA, CLIPInverter),
      weighted by ``direction``: the image should move the way the text moves;
    * latent loss ``|w - w_src|^2 / d``, weighted by ``latent``: stay close to the source;
    * image loss, the mean squared difference of ``decode(w)`` and the source images ``x``
      ``(N, 3, H, W)`` (needed when ``image`` > 0), weighted by ``image``: stay close to the
      source *picture*, the part of an edit's loss that CLIPInverter and StyleCLIP fill with
      reconstruction and identity terms. Without it, CLIP is pleased by extra blobs of the
      requested colour that a small decoder draws anywhere.
    """
    for v, n in ((w, "w"), (w_src, "w_src"), (x_emb, "x_emb"), (t, "t"), (s, "s")):
        checks.tensor(v, n)
    if w.shape != w_src.shape or not (x_emb.shape == t.shape == s.shape) or len(w) != len(t):
        raise ValueError(f"w, w_src must be (N, d) and x_emb, t, s (N, D), got {tuple(w.shape)}, "
                         f"{tuple(w_src.shape)}, {tuple(x_emb.shape)}, {tuple(t.shape)}, {tuple(s.shape)}")
    for v, nm in ((similarity, "similarity"), (direction, "direction"), (latent, "latent"), (image, "image")):
        checks.nonnegative(v, nm)
    if image > 0 and x is None:
        raise ValueError("the image term (image > 0) needs the source images x")
    y = decode(w)
    u = model.encode_image(y)
    glob = 1 - (u * t).sum(1)
    dirl = 1 - F.cosine_similarity(u - x_emb, t - s, dim=1)
    lat = (w - w_src).pow(2).mean(1)
    total = similarity * glob + direction * dirl + latent * lat
    out = {"global": glob.mean(), "directional": dirl.mean(), "latent": lat.mean()}
    if x is not None:
        checks.shape(x, tuple(y.shape), "x")
        pix = (y - x).pow(2).flatten(1).mean(1)
        total = total + image * pix
        out["image"] = pix.mean()
    return {"loss": total.mean(), **out}


def _frozen(*modules):
    """Context: parameters of ``modules`` do not require grad inside, restored after."""
    class _Ctx:
        def __enter__(self):
            self.params = [p for m in modules for p in m.parameters()]
            self.flags = [p.requires_grad for p in self.params]
            for p in self.params:
                p.requires_grad_(False)

        def __exit__(self, *exc):
            for p, f in zip(self.params, self.flags):
                p.requires_grad_(f)
    return _Ctx()


# --- baseline: latent optimisation per edit (StyleCLIP-LO) ------------------------------------


def optimise_edits(model: clip.CLIP, decode: Callable, w_src: torch.Tensor, x_emb: torch.Tensor, t: torch.Tensor,
                   s: torch.Tensor, steps: int = 50, lr: float = 0.1, **loss_kw) -> tuple[torch.Tensor, float]:
    """StyleCLIP's latent optimisation: start at ``w_src`` ``(N, d)`` and run ``steps`` Adam steps
    on :func:`edit_loss` (``loss_kw``: its weights, and the source images ``x`` for its image
    term), each edit on its own latent (the batch only
    shares the arithmetic: the loss is summed over edits, so each latent gets the gradient of
    its own loss). Returns ``(w, seconds)``; neither network changes."""
    checks.positive_int(steps, "steps")
    w = w_src.detach().clone().requires_grad_(True)
    start = time.perf_counter()
    with _frozen(model), torch.enable_grad():
        train.fit([w], lambda: edit_loss(model, decode, w, w_src, x_emb, t, s, **loss_kw)["loss"] * len(w),
                  steps=steps, opt="adam", lr=lr, desc="StyleCLIP-LO")
    return w.detach(), time.perf_counter() - start


# --- CLIPInverter: CLIPAdapter + CLIPRemapper ---------------------------------------------------


class CLIPAdapter(nn.Module):
    """Image ``(N, 3, 32, 32)`` and text embedding ``(N, D)`` -> residual latent ``(N, d)``.

    Three stride-2 convolutions extract feature maps (32 -> 16 -> 8 -> 4); after each one
    the text embedding *modulates* the maps channel-wise, ``h <- h * (1 + gamma(t)) + beta(t)``
    (FiLM); a linear head turns the modulated 4x4 maps into the residual latent. The last
    layer starts at zero, so an untrained adapter leaves the latent unchanged.
    """

    def __init__(self, z_dim: int = 32, text_dim: int = 64, width: int = 32):
        super().__init__()
        w = width
        chans = (w, 2 * w, 2 * w)
        self.convs = nn.ModuleList([nn.Conv2d(3, chans[0], 4, 2, 1), nn.Conv2d(chans[0], chans[1], 4, 2, 1),
                                    nn.Conv2d(chans[1], chans[2], 4, 2, 1)])
        self.films = nn.ModuleList([nn.Linear(text_dim, 2 * c) for c in chans])
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[2] * 16, 256), nn.GELU(), nn.Linear(256, z_dim))
        nn.init.zeros_(self.head[-1].weight); nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        checks.shape(x, (None, 3, 32, 32), "images")
        h = x
        for conv, film in zip(self.convs, self.films):
            gamma, beta = film(t).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)   # (N, C, 1, 1) each
            h = F.gelu(conv(h) * (1 + gamma) + beta)
        return self.head(h)


class CLIPRemapper(nn.Module):
    """Latent ``(N, d)`` and text embedding ``(N, D)`` -> a correction ``(N, d)`` (an MLP on
    both; zero at initialisation), added to the adapter's latent."""

    def __init__(self, z_dim: int = 32, text_dim: int = 64, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim + text_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, z_dim))
        nn.init.zeros_(self.net[-1].weight); nn.init.zeros_(self.net[-1].bias)

    def forward(self, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([w, t], dim=1))


class CLIPInverter(nn.Module):
    """The learned editor: ``w = w_src + adapter(x, t)``, then ``w + remapper(w, t)`` (with
    ``remap=False`` the adapter alone). ``forward(x, w_src, t) -> (N, d)`` edited latents."""

    def __init__(self, z_dim: int = 32, text_dim: int = 64, width: int = 32, hidden: int = 128):
        super().__init__()
        self.adapter = CLIPAdapter(z_dim, text_dim, width)
        self.remapper = CLIPRemapper(z_dim, text_dim, hidden)

    def forward(self, x: torch.Tensor, w_src: torch.Tensor, t: torch.Tensor, remap: bool = True) -> torch.Tensor:
        checks.shape(w_src, (len(x), None), "w_src"); checks.shape(t, (len(x), None), "t")
        w = w_src + self.adapter(x, t)
        return w + self.remapper(w, t) if remap else w


def fit_inverter(net: CLIPInverter, model: clip.CLIP, decode: Callable, images: torch.Tensor, w_src: torch.Tensor,
                 x_emb: torch.Tensor, t: torch.Tensor, s: torch.Tensor, steps: int, batch: int = 64,
                 lr: float = 2e-3, generator: torch.Generator | None = None, remap: bool = True,
                 **loss_kw) -> train.Fit:
    """Train ``net`` on edits ``(images (N,3,32,32), w_src (N,d), x_emb (N,D), t (N,D), s (N,D))``
    with :func:`edit_loss` (``loss_kw``: its weights; its image term compares each result with
    its *source* image) -- no edited image is ever shown, only CLIP's opinion of the result.
    AdamW with a one-cycle schedule (:func:`lib.train.fit`); CLIP and the generator stay
    frozen. ``remap=False`` trains the adapter alone."""
    checks.positive_int(steps, "steps")
    n = len(images)
    for v, name in ((w_src, "w_src"), (x_emb, "x_emb"), (t, "t"), (s, "s")):
        checks.shape(v, (n, None), name)

    def loss(xb, wb, eb, tb, sb):
        return edit_loss(model, decode, net(xb, wb, tb, remap=remap), wb, eb, tb, sb, x=xb, **loss_kw)

    net.train()
    with _frozen(model):
        run = train.fit(net, loss, (images, w_src, x_emb, t, s), steps, batch_size=batch, generator=generator,
                        device=next(net.parameters()).device, opt="adamw", lr=lr, weight_decay=1e-4,
                        schedule="onecycle", pct_start=0.2, desc="CLIPInverter")
    net.eval()
    return run


# --- measuring an edit --------------------------------------------------------------------------


def edit_scores(pred: dict, req: EditRequests) -> dict[str, torch.Tensor]:
    """Per edit ``(N,)``, from a judge's reading ``pred`` of the edited images
    (:meth:`lib.clip.SceneJudge.predict`): ``success`` (the edited attribute shows the
    requested value), ``preserved`` (fraction of the other three attributes still equal to
    the source's) and ``leaked`` (1 - preserved)."""
    n = len(req)
    vals = torch.stack([pred[a].cpu() for a in ATTRIBUTES], 1)                  # (N, 4)
    tgt = torch.stack([req.target[a] for a in ATTRIBUTES], 1)
    src = torch.stack([req.labels[a] for a in ATTRIBUTES], 1)
    edited = F.one_hot(req.attribute, len(ATTRIBUTES)).bool()
    success = (vals[torch.arange(n), req.attribute] == tgt[torch.arange(n), req.attribute]).float()
    kept = ((vals == src) & ~edited).sum(1).float() / (len(ATTRIBUTES) - 1)
    return {"success": success, "preserved": kept, "leaked": 1 - kept}
