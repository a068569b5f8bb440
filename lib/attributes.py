"""Scene-attribute editing and photo style transfer (chapter 10's "Semantic image editing").

Karacan et al.'s recipe for "make this photo look like night": *hallucinate* the scene under the
target attribute with a conditional generator, then *transfer the look* of the hallucination
onto the input photo's own structure with a photorealistic style-transfer step. Read top to
bottom:

1. The edits (:data:`EDITS`: night, sunset, snow, fog, each a ``(time, weather)`` of
   :mod:`lib.landscapes`) and the paired data :func:`edit_pairs`: every scene rendered on a
   clear day (the input) and under every edit (the ground truth of that edit).
2. The conditioning hook :func:`condition`: the target attribute as constant one-hot planes
   concatenated to the input image (as StarGAN does), so the book's
   :class:`lib.nets.ImageUNet` and :class:`lib.nets.PatchDiscriminator` and
   :func:`lib.translation.pix2pix_step` train an attribute-conditioned translator unchanged.
3. The photo-style-transfer step :func:`local_affine_transfer`: in every small window the
   output is an affine function of the input's colours, fitted to the hallucination (the
   guided filter of He et al.; Luan et al.'s photorealism constraint is the same local affine
   model). The edges stay the input's, the colours become the hallucination's.
4. The photographer's baselines: global colour transfer from an exemplar of the target
   attribute, :func:`histogram_transfer` (``skimage.exposure.match_histograms``) and
   :func:`reinhard_transfer` (mean and spread per channel in CIE Lab, Reinhard et al. 2001).
5. The measures: :class:`AttributeJudge` (a separately trained classifier of time of day and
   weather) and :func:`attribute_accuracy`; :func:`structure_kept` (edge correlation of the
   luminance with the input's).

Images are ``(N, 3, H, W)`` float tensors in ``[-1, 1]``.
"""
from __future__ import annotations

import warnings

import numpy as np
import skimage.color
import skimage.exposure
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks, clip, degrade, landscapes, metrics

EDITS = {"night": ("night", "clear"), "sunset": ("sunset", "clear"),
         "snow": ("day", "snow"), "fog": ("day", "fog")}
EDIT_NAMES = tuple(EDITS)
SOURCE = ("day", "clear")  # the attribute of every input photo


# --- 1. paired data ------------------------------------------------------------------------

def edit_pairs(n: int, size: int = 32, seed: int = 0) -> dict:
    """``n`` landscapes (layouts and styles from :func:`lib.landscapes.landscapes` with
    ``seed``) rendered on a clear day and under every edit.

    Returns ``{"source": (n, 3, size, size), "target": (n, len(EDITS), 3, size, size),
    "labels": (n, size, size), "layouts", "styles"}``; ``target[:, e]`` is the ground truth
    of edit ``EDIT_NAMES[e]`` for each scene."""
    d = landscapes.landscapes(n, size, seed, times=(SOURCE[0],), weathers=(SOURCE[1],))
    target = torch.stack([torch.stack([landscapes.render(lay, sty, t, w, size) for t, w in EDITS.values()])
                          for lay, sty in zip(d["layouts"], d["styles"])])
    return {"source": d["images"], "target": target, "labels": d["labels"],
            "layouts": d["layouts"], "styles": d["styles"]}


def edit_index(edit) -> torch.Tensor:
    """Edit names or indices -> int64 ``(N,)`` indices into :data:`EDIT_NAMES`."""
    if isinstance(edit, str):
        edit = [edit]
    if isinstance(edit, torch.Tensor):
        idx = edit.long().flatten()
    else:
        idx = torch.tensor([EDIT_NAMES.index(checks.choice(e, EDIT_NAMES, "edit")) if isinstance(e, str)
                            else int(e) for e in edit], dtype=torch.long)
    if idx.numel() and (idx.min() < 0 or idx.max() >= len(EDITS)):
        raise ValueError(f"edit indices must lie in 0..{len(EDITS) - 1} ({', '.join(EDIT_NAMES)})")
    return idx


def target_attributes(edit) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(time, weather)`` indices (into :data:`lib.landscapes.TIMES` / ``WEATHERS``) that
    each edit asks for: two int64 ``(N,)`` tensors."""
    idx = edit_index(edit)
    t = torch.tensor([landscapes.TIMES.index(EDITS[EDIT_NAMES[i]][0]) for i in idx.tolist()], dtype=torch.long)
    w = torch.tensor([landscapes.WEATHERS.index(EDITS[EDIT_NAMES[i]][1]) for i in idx.tolist()],
                     dtype=torch.long)
    return t, w


# --- 2. the conditioning hook ---------------------------------------------------------------

def condition(x: torch.Tensor, edit) -> torch.Tensor:
    """Append the target attribute to an image batch as constant one-hot planes:
    ``x (N, C, H, W)``, ``edit`` (names or indices, one per image, or one for all) ->
    ``(N, C + len(EDITS), H, W)``. Any image-to-image network with ``C + len(EDITS)`` input
    channels becomes attribute-conditioned."""
    checks.tensor(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    idx = edit_index(edit).to(x.device)
    if len(idx) == 1:
        idx = idx.expand(len(x))
    if len(idx) != len(x):
        raise ValueError(f"give one edit per image ({len(x)}) or one for all, got {len(idx)}")
    planes = F.one_hot(idx, len(EDITS)).to(x.dtype)[:, :, None, None]   # (N, E, 1, 1)
    return torch.cat([x, planes.expand(-1, -1, *x.shape[-2:])], 1)


# --- 3. photo style transfer: the local affine colour model --------------------------------------

def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the ``(2r+1)^2`` window around each pixel (windows cut at the border)."""
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def local_affine_transfer(guide: torch.Tensor, styled: torch.Tensor, radius: int = 2,
                          eps: float = 1e-2) -> torch.Tensor:
    """Give ``guide`` the colours of ``styled`` through a *local affine* colour map (the colour
    guided filter, He et al. 2013): in every ``(2r+1)^2`` window ``k`` fit
    ``styled ~ A_k guide + b_k`` (``A_k`` 3x3, ridge ``eps``), average the coefficients of the
    windows that cover a pixel and apply them to the guide's own colour there.

    ``guide``, ``styled``: ``(N, 3, H, W)`` in ``[-1, 1]``, same shape (upsample a small
    hallucination first). Edges come from ``guide`` (the map is smooth in space and affine in
    colour), colours from ``styled``. Larger ``eps`` -> flatter, more global maps; ``radius=0``
    with ``eps -> 0`` reproduces ``styled``. Returns ``(N, 3, H, W)`` clipped to ``[-1, 1]``."""
    checks.images(guide, 3, name="guide"); checks.images(styled, 3, name="styled")
    if guide.shape != styled.shape:
        raise ValueError(f"guide and styled must have the same shape, got {tuple(guide.shape)} and "
                         f"{tuple(styled.shape)}")
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ValueError(f"radius must be an int >= 0, got {radius!r}")
    eps = checks.nonnegative(eps, "eps")
    g, s = guide.double(), styled.double()
    mg, ms = _box(g, radius), _box(s, radius)                                  # (N, 3, H, W)
    # covariances in each window, as (N, H, W, 3, 3): sigma[i, j] = E[g_i g_j] - E[g_i] E[g_j]
    gg = _box((g[:, :, None] * g[:, None]).flatten(1, 2), radius).unflatten(1, (3, 3))
    gs = _box((g[:, :, None] * s[:, None]).flatten(1, 2), radius).unflatten(1, (3, 3))  # [i guide, j styled]
    sigma = (gg - mg[:, :, None] * mg[:, None]).permute(0, 3, 4, 1, 2)
    cov = (gs - mg[:, :, None] * ms[:, None]).permute(0, 3, 4, 1, 2)
    eye = torch.eye(3, dtype=g.dtype, device=g.device)
    a = torch.linalg.solve(sigma + (eps + 1e-9) * eye, cov)                   # (N, H, W, 3 guide, 3 out)
    b = ms.permute(0, 2, 3, 1) - torch.einsum("nhwi,nhwio->nhwo", mg.permute(0, 2, 3, 1), a)
    a = _box(a.flatten(3).permute(0, 3, 1, 2), radius).permute(0, 2, 3, 1).unflatten(3, (3, 3))
    b = _box(b.permute(0, 3, 1, 2), radius)
    out = torch.einsum("nihw,nhwio->nohw", g, a) + b
    return out.clamp(-1, 1).to(guide.dtype)


# --- 4. the photographer's baselines: global colour transfer ------------------------------------

def _unit_np(x: torch.Tensor, name: str) -> np.ndarray:
    checks.images(x, 3, name=name)
    return ((x.detach().cpu().double() + 1) / 2).permute(0, 2, 3, 1).numpy()   # (N, H, W, 3) in [0, 1]


def _back(ims: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    out = torch.from_numpy(np.clip(ims, 0, 1)).permute(0, 3, 1, 2) * 2 - 1
    return out.to(like.dtype).to(like.device)


def _pairs(x, exemplar):
    a, b = _unit_np(x, "x"), _unit_np(exemplar, "exemplar")
    if len(b) == 1:
        b = np.repeat(b, len(a), 0)
    if len(b) != len(a):
        raise ValueError(f"give one exemplar per image ({len(a)}) or one for all, got {len(b)}")
    return a, b


def histogram_transfer(x: torch.Tensor, exemplar: torch.Tensor) -> torch.Tensor:
    """Match each image's histogram to its exemplar's, channel by channel
    (``skimage.exposure.match_histograms``): ``x (N, 3, H, W)``, ``exemplar`` ``(N, 3, h, w)``
    or ``(1, 3, h, w)`` -> ``(N, 3, H, W)``. A global, per-pixel tone curve: where things
    are plays no part."""
    a, b = _pairs(x, exemplar)
    out = np.stack([skimage.exposure.match_histograms(i, e, channel_axis=-1) for i, e in zip(a, b)])
    return _back(out, x)


def reinhard_transfer(x: torch.Tensor, exemplar: torch.Tensor) -> torch.Tensor:
    """Reinhard et al.'s colour transfer: in CIE Lab, shift and scale each channel of ``x`` to
    the exemplar's mean and standard deviation. Shapes as :func:`histogram_transfer`."""
    a, b = _pairs(x, exemplar)
    la, lb = skimage.color.rgb2lab(a), skimage.color.rgb2lab(b)               # (N, H, W, 3)
    mu_a, sd_a = la.mean((1, 2), keepdims=True), la.std((1, 2), keepdims=True)
    mu_b, sd_b = lb.mean((1, 2), keepdims=True), lb.std((1, 2), keepdims=True)
    out = (la - mu_a) / np.maximum(sd_a, 1e-6) * sd_b + mu_b
    with warnings.catch_warnings():  # colours outside the sRGB gamut are clipped, as intended
        warnings.simplefilter("ignore", UserWarning)
        rgb = skimage.color.lab2rgb(out)
    return _back(rgb, x)


# --- 5. measures -------------------------------------------------------------------------------

class AttributeJudge(nn.Module):
    """Reads time of day and weather from a landscape: ``(N, 3, size, size)`` ->
    ``{"time": (N, 3), "weather": (N, 3)}`` logits. The book's small image encoder
    (:class:`lib.clip.ImageEncoder`) with two linear heads; trained on real renders only and
    used to *judge* edits."""

    def __init__(self, width: int = 16, size: int = 32):
        super().__init__()
        self.features = clip.ImageEncoder(64, width, size)
        self.heads = nn.ModuleDict({"time": nn.Linear(64, len(landscapes.TIMES)),
                                    "weather": nn.Linear(64, len(landscapes.WEATHERS))})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.gelu(self.features(x))
        return {k: head(h) for k, head in self.heads.items()}

    def loss(self, x: torch.Tensor, time: torch.Tensor, weather: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of both heads (``time``, ``weather``: int64 ``(N,)``), summed."""
        out = self(x)
        return F.cross_entropy(out["time"], time) + F.cross_entropy(out["weather"], weather)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted ``(time, weather)`` indices, two int64 ``(N,)`` tensors."""
        checks.images(x, 3, name="images")
        outs = [self(x[i:i + batch]) for i in range(0, len(x), batch)]
        return tuple(torch.cat([o[k] for o in outs]).argmax(1).cpu() for k in ("time", "weather"))


def attribute_accuracy(judge: AttributeJudge, images: torch.Tensor, edit) -> float:
    """Fraction of ``images`` in which ``judge`` reads both the time of day and the weather that
    ``edit`` (one per image, or one for all) asks for."""
    idx = edit_index(edit)
    if len(idx) == 1:
        idx = idx.expand(len(images))
    if len(idx) != len(images):
        raise ValueError(f"give one edit per image ({len(images)}) or one for all, got {len(idx)}")
    t, w = target_attributes(idx)
    pt, pw = judge.predict(images)
    return float(((pt == t) & (pw == w)).double().mean())


def luminance(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma in ``[-1, 1]``: ``(N, 3, H, W) -> (N, 1, H, W)``."""
    return degrade.rgb_to_yuv(x)[:, :1] * 2 - 1


def structure_kept(edited: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean correlation of the luminance edges (gradient magnitudes) of ``edited`` with those of
    ``reference`` (:func:`lib.metrics.structure_correlation`), both ``(N, 3, H, W)``: 1 = every
    edge where the reference has one, whatever the colours; 0 = unrelated. With the input as
    reference: how much of its structure an edit keeps; with the true edit: whether the edit
    has the edges it should have."""
    return float(metrics.structure_correlation(luminance(reference), luminance(edited)).mean())
