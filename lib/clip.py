"""A small CLIP, its adaptors, and plugging it into a generator (introduced in chapter 9).

CLIP {Radford et al. 2021} learns an image encoder and a text encoder whose embeddings
agree for matching (image, caption) pairs, with the symmetric InfoNCE loss over a batch:
each image must pick out its own caption among the ``B`` captions of the batch, and each
caption its own image. Everything here is small enough to train on a CPU on the
captioned scenes of :func:`lib.scenes.captioned_scenes` (32x32 RGB, captions of at most 12 words).

* :class:`ImageEncoder`, :class:`TextEncoder`, :class:`CLIP` -- the two towers and the
  learned temperature; embeddings are unit vectors, similarity is the cosine;
* :func:`info_nce` -- the symmetric contrastive loss;
* :func:`recall_at_k` -- image->text / text->image retrieval;
* :func:`zero_shot_classifier`, :func:`zero_shot_predict` -- "create a dataset classifier
  from label text" (prompt templates, averaged) and "just ask" (argmax cosine);
* :func:`fit_linear_probe` -- the other adaptor: a linear classifier on frozen embeddings;
* :class:`SceneJudge` -- a separately trained attribute classifier, the *measuring
  instrument* that tells whether a generated image shows what its prompt asked for;
  :func:`scene_judge` trains one once and caches it on disk, :func:`judge_accuracy` checks
  it on real scenes;
* :func:`clip_guided_latents` -- CLIP+generator: optimise a generator's latent ``z`` to
  maximise the cosine similarity of the image and text embeddings.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks, metrics, nets, runtime, scenes, train


# --- the two encoders ---------------------------------------------------------------------

class ImageEncoder(nn.Module):
    """Small CNN: images ``(N, 3, size, size)`` in ``[-1, 1]`` -> features ``(N, dim)`` (not normalised).

    Three stride-2 convolutions (size -> size/8) and a linear layer on the *flattened* map,
    so the features keep where things are (needed for "left of", "above").
    """

    def __init__(self, dim: int = 64, width: int = 24, size: int = 32):
        super().__init__()
        if size % 8:
            raise ValueError(f"size must be a multiple of 8, got {size}")
        self.size = size
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * w), nn.GELU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * (size // 8) ** 2, 128), nn.GELU(),
                                  nn.Linear(128, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.shape(x, (None, 3, self.size, self.size), "images")
        return self.head(self.conv(x))


class TextEncoder(nn.Module):
    """A tiny Transformer over word tokens: ``(N, L)`` int64 (0 = padding) -> features ``(N, dim)``.

    Token + position embeddings, ``layers`` blocks :class:`lib.nets.TransformerBlock` (the
    next-token model's block, bidirectional: no causal mask; padding is not attended to), then
    the mean over the non-padding tokens. Word *order* matters (the position embeddings), so
    "a red square above a blue circle" and "a blue square above a red circle" can get
    different embeddings.
    """

    def __init__(self, dim: int = 64, width: int = 64, layers: int = 2, heads: int = 4,
                 vocab: int = len(scenes.VOCAB), length: int = scenes.MAX_TOKENS):
        super().__init__()
        self.length = length
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Parameter(torch.randn(length, width) * 0.02)
        self.blocks = nn.ModuleList(nets.TransformerBlock(width, heads, causal=False, mlp_ratio=2)
                                    for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        checks.tensor(tokens, "tokens")
        if tokens.dim() != 2 or tokens.dtype != torch.int64 or tokens.shape[1] != self.length:
            raise ValueError(f"tokens must be int64 of shape (N, {self.length}), got {tuple(tokens.shape)} "
                             f"{tokens.dtype} (use lib.scenes.tokenize)")
        pad = tokens == 0                                     # (N, L) True where padding
        h = self.tok(tokens) + self.pos                       # (N, L, width)
        for block in self.blocks:
            h = block(h, pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.out((h * keep).sum(1) / keep.sum(1).clamp(min=1))


class CLIP(nn.Module):
    """Image and text towers with a shared embedding size and a learned temperature.

    ``encode_image(x)``/``encode_text(tokens)`` return *unit* vectors ``(N, dim)``;
    ``logit_scale`` is ``log(1/temperature)``, initialised to ``log(1/0.07)`` as in CLIP and
    clamped at ``log(100)``. ``forward(images, tokens)`` returns the InfoNCE loss of the batch.
    """

    def __init__(self, dim: int = 64, width: int = 24, size: int = 32):
        super().__init__()
        self.image_encoder = ImageEncoder(dim, width, size)
        self.text_encoder = TextEncoder(dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_encoder(x), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_encoder(tokens), dim=-1)

    def encode_captions(self, captions: Sequence[str]) -> torch.Tensor:
        """Unit text embeddings ``(N, dim)`` of caption strings (tokenised with :func:`lib.scenes.tokenize`)."""
        return self.encode_text(scenes.tokenize(list(captions)).to(self.logit_scale.device))

    def scale(self) -> torch.Tensor:
        """The inverse temperature ``exp(logit_scale)``, at most 100."""
        return self.logit_scale.clamp(max=math.log(100)).exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return info_nce(self.encode_image(images), self.encode_text(tokens), self.scale())


# --- the loss and the retrieval metric ------------------------------------------------------

def info_nce(image_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP's loss) for a batch of ``B`` matching pairs.

    ``image_emb``, ``text_emb``: ``(B, D)`` unit vectors, row ``i`` of each is a pair;
    ``scale``: the inverse temperature. With ``S = scale * image_emb @ text_emb.T`` (``B x B``)
    the loss is the average of the cross-entropies "image i picks caption i" (rows of ``S``)
    and "caption i picks image i" (columns). It equals ``log B`` when all similarities are
    equal, and goes to 0 when every pair is much more similar than every non-pair.
    """
    checks.tensor(image_emb, "image_emb"); checks.tensor(text_emb, "text_emb")
    if image_emb.dim() != 2 or image_emb.shape != text_emb.shape or len(image_emb) < 2:
        raise ValueError(f"image_emb and text_emb must both have shape (B, D) with B >= 2, got "
                         f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    logits = scale * image_emb @ text_emb.T                    # (B, B)
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def recall_at_k(sim: torch.Tensor, k: int = 1, groups: torch.Tensor | None = None) -> float:
    """Fraction of queries (rows of ``sim``, ``(N, M)``) whose correct item is among the ``k``
    most similar columns. Without ``groups`` the correct item of row ``i`` is column ``i``
    (``N == M``); with ``groups`` (``(N,)`` row ids and ``(M,)`` column ids given as a pair
    ``(row_groups, col_groups)`` or one ``(N,)`` tensor when ``N == M``) every column of the
    same group counts (two identical captions describe the same picture equally well).
    For text->image retrieval pass ``sim.T``."""
    checks.tensor(sim, "sim")
    if sim.dim() != 2:
        raise ValueError(f"sim must be a matrix (N, M), got shape {tuple(sim.shape)}")
    checks.positive_int(k, "k")
    n, m = sim.shape
    if groups is None:
        if n != m:
            raise ValueError(f"without groups sim must be square, got {tuple(sim.shape)}")
        rg = cg = torch.arange(n)
    elif isinstance(groups, (tuple, list)):
        rg, cg = groups
    else:
        rg = cg = groups
    if len(rg) != n or len(cg) != m:
        raise ValueError(f"groups must have {n} row and {m} column ids, got {len(rg)} and {len(cg)}")
    top = sim.topk(min(k, m), dim=1).indices.cpu()              # (N, k)
    hit = (cg.cpu()[top] == rg.cpu()[:, None]).any(1)
    return float(hit.float().mean())


def chance_recall_at_k(n_items: int, group_sizes: torch.Tensor, k: int) -> float:
    """Expected recall@k of a random ranking of ``n_items`` columns when query ``i`` has
    ``group_sizes[i]`` correct columns: mean of ``1 - C(n-g, k) / C(n, k)``."""
    checks.positive_int(n_items, "n_items"); checks.positive_int(k, "k")
    g = torch.as_tensor(group_sizes, dtype=torch.float64)
    miss = torch.ones_like(g)
    for j in range(k):                                         # C(n-g, k)/C(n, k) = prod (n-g-j)/(n-j)
        miss = miss * ((n_items - g - j) / (n_items - j)).clamp(min=0)
    return float((1 - miss).mean())


# --- adaptors: zero-shot ("just ask") and the linear probe ----------------------------------

@torch.no_grad()
def zero_shot_classifier(model: CLIP, class_prompts: Sequence[Sequence[str]]) -> torch.Tensor:
    """"Create a dataset classifier from label text": one unit vector per class, ``(C, D)``,
    the normalised mean of the text embeddings of that class's prompts (prompt ensembling)."""
    if len(class_prompts) < 2 or any(isinstance(p, str) or len(p) == 0 for p in class_prompts):
        raise ValueError("class_prompts must be a list of at least 2 non-empty lists of prompts")
    return torch.stack([F.normalize(model.encode_captions(p).mean(0), dim=-1) for p in class_prompts])


def zero_shot_predict(image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """"Use for zero-shot prediction": the class ``(N,)`` of largest cosine similarity between
    each image embedding ``(N, D)`` and each class embedding ``(C, D)``."""
    checks.tensor(image_emb, "image_emb"); checks.tensor(class_emb, "class_emb")
    if image_emb.dim() != 2 or class_emb.dim() != 2 or image_emb.shape[1] != class_emb.shape[1]:
        raise ValueError(f"image_emb (N, D) and class_emb (C, D) must share D, got "
                         f"{tuple(image_emb.shape)} and {tuple(class_emb.shape)}")
    return (F.normalize(image_emb, dim=-1) @ F.normalize(class_emb, dim=-1).T).argmax(1)


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, c: float = 1.0):
    """The linear adaptor: a multinomial logistic regression (scikit-learn) on frozen features
    ``(N, D)`` with labels ``(N,)``; returns the fitted classifier (``.predict``, ``.score``)."""
    from sklearn.linear_model import LogisticRegression
    checks.tensor(features, "features"); checks.tensor(labels, "labels")
    if features.dim() != 2 or labels.shape != (len(features),):
        raise ValueError(f"features must be (N, D) and labels (N,), got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)}")
    if len(torch.unique(labels)) < 2:
        raise ValueError("a linear probe needs at least two classes in labels")
    return LogisticRegression(C=c, max_iter=2000).fit(features.detach().cpu().numpy(), labels.cpu().numpy())


# --- the measuring instrument: an attribute classifier --------------------------------------

HEADS = {"n_objects": 2, "shape": len(scenes.SHAPES), "colour": len(scenes.COLOURS), "size": len(scenes.SIZES),
         "where": len(scenes.WHERES), "axis": 2, "shape2": len(scenes.SHAPES), "colour2": len(scenes.COLOURS),
         "size2": len(scenes.SIZES)}


class SceneJudge(nn.Module):
    """A CNN that reads the canonical attributes of a scene (see :func:`lib.scenes.scene_labels`):
    images ``(N, 3, size, size)`` -> ``{label name: logits (N, classes)}``.

    It is trained on its own (on the ``"all"`` split, every combination) and only used to
    *judge* what generated images show, like the Inception net behind FID.
    """

    def __init__(self, width: int = 24, size: int = 32):
        super().__init__()
        self.features = ImageEncoder(128, width, size)
        self.heads = nn.ModuleDict({k: nn.Linear(128, c) for k, c in HEADS.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.gelu(self.features(x))
        return {k: head(h) for k, head in self.heads.items()}

    def loss(self, x: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum over heads of the cross-entropy, ignoring labels that do not apply (-1)."""
        out = self(x)
        total = 0.0
        for k, logits in out.items():
            y = labels[k].to(logits.device)
            if k == "n_objects":
                y = y - 1
            if (y >= 0).any():
                total = total + F.cross_entropy(logits, y, ignore_index=-1)
        return total

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 512) -> dict[str, torch.Tensor]:
        """Predicted labels ``{name: (N,) int64}`` in the convention of :func:`lib.scenes.scene_labels`
        (``n_objects`` is 1 or 2; heads that do not apply to the predicted count are -1)."""
        checks.images(x, 3, name="images")
        outs = [self(x[i:i + batch]) for i in range(0, len(x), batch)]
        pred = {k: torch.cat([o[k] for o in outs]).argmax(1).cpu() for k in HEADS}
        pred["n_objects"] = pred["n_objects"] + 1
        one = pred["n_objects"] == 1
        for k in ("axis", "shape2", "colour2", "size2"):
            pred[k][one] = -1
        pred["where"][~one] = -1
        return pred


def scene_judge(n_scenes: int, steps: int, width: int = 24, batch: int = 128, lr: float = 2e-3,
                seed: int = 1, device: torch.device | str | None = None) -> SceneJudge:
    """A :class:`SceneJudge` trained on ``n_scenes`` scenes of the ``"all"`` split (seed ``seed``),
    trained once and cached on disk (``runtime.cache_dir()``), returned in eval mode on ``device``.

    Training: the judge is initialised after ``torch.manual_seed(seed)``, then ``steps`` steps
    of AdamW (weight decay 1e-4) with a one-cycle schedule peaking at ``lr`` (10% warm-up) on
    minibatches of ``batch`` scenes (shuffled by a generator seeded with ``seed``), minimising
    :meth:`SceneJudge.loss`. It runs on ``device`` (default CPU) with the caller's thread
    count (multi-threaded float sums differ in the last bits, so a CPU net trained with one
    thread differs slightly from one trained with two); a cached net is reused only if its
    settings, its device type, the thread count and the code that builds and trains it are
    unchanged. The caller's random state is left untouched whether the judge is trained or
    loaded.
    """
    checks.positive_int(n_scenes, "n_scenes"); checks.positive_int(steps, "steps")
    checks.positive_int(width, "width"); checks.positive_int(batch, "batch")
    dev = torch.device("cpu" if device is None else device)
    cfg = {"arch": "SceneJudge-v1", "n_scenes": n_scenes, "steps": steps, "width": width, "batch": batch,
           "lr": float(lr), "seed": seed, "device": dev.type,
           "threads": torch.get_num_threads() if dev.type == "cpu" else 0}
    name = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
    path = runtime.cache_dir() / f"scene_judge-{name}.pt"
    cfg["code"] = metrics._code_fingerprint(ImageEncoder, SceneJudge, _train_scene_judge, scenes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        judge = SceneJudge(width=width).to(dev)
        try:
            train.load_checkpoint(path, judge, cfg)
        except (FileNotFoundError, ValueError, RuntimeError):
            _train_scene_judge(judge, cfg, dev)
            train.save_checkpoint(path, judge, cfg)
    return judge.eval()


@torch.enable_grad()
def _train_scene_judge(judge: SceneJudge, cfg: dict, dev: torch.device) -> None:
    judge_set = scenes.captioned_scenes("all", cfg["n_scenes"], seed=cfg["seed"])
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=cfg["steps"], pct_start=0.1)
    keys = list(scenes.LABELS)
    stream = train.batches(judge_set.images, *[judge_set.labels[k] for k in keys], batch_size=cfg["batch"],
                           generator=torch.Generator().manual_seed(cfg["seed"]), device=dev)

    def step(i):
        x, *ys = next(stream)
        loss = judge.loss(x, dict(zip(keys, ys)))
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        return loss

    judge.train()
    train.train_loop(step, cfg["steps"], desc="attribute judge")


def attribute_match(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                    keys: Sequence[str] | None = None) -> torch.Tensor:
    """Per image ``(N,)`` bool: every label in ``keys`` (default: all of ``target``) agrees,
    where ``target`` uses -1 for "does not apply" (then the prediction must be -1 too)."""
    keys = list(target) if keys is None else list(keys)
    for k in keys:
        if k not in pred or k not in target:
            raise ValueError(f"label {k!r} missing from pred or target")
    ok = torch.ones(len(target[keys[0]]), dtype=torch.bool)
    for k in keys:
        ok &= pred[k].cpu() == target[k].cpu()
    return ok


def judge_accuracy(judge: SceneJudge, sets: dict, attributes: Sequence[str] = (),
                   device: torch.device | str | None = None) -> dict[str, dict[str, float]]:
    """How well ``judge`` reads real scenes: for each entry ``name -> scenes`` of ``sets``
    (objects with ``images (N, 3, S, S)`` and ``labels``, e.g. :func:`lib.scenes.captioned_scenes`),
    the percentage of scenes whose attributes it reads all right (``"all attributes"``, see
    :func:`attribute_match`) and, for each name in ``attributes`` (``"shape"``, ``"colour"``,
    ...), the percentage whose attribute it reads right. Returns ``{name: {column: %}}``,
    the rows of a :func:`lib.results.table`."""
    if not isinstance(judge, SceneJudge):
        raise TypeError(f"judge must be a lib.clip.SceneJudge, got {type(judge).__name__}")
    if not isinstance(sets, dict) or not sets:
        raise TypeError("sets must be a non-empty dict: name -> scenes (with .images and .labels)")
    unknown = [a for a in attributes if a not in HEADS]
    if isinstance(attributes, str) or unknown:
        raise ValueError(f"attributes must be names among {sorted(HEADS)}, got {unknown or attributes!r}")
    rows = {}
    for name, s in sets.items():
        p = judge.predict(s.images.to(device) if device is not None else s.images)
        rows[name] = {"all attributes": 100 * float(attribute_match(p, s.labels).float().mean())}
        for a in attributes:
            rows[name][a] = 100 * float((p[a].cpu() == s.labels[a].cpu()).float().mean())
    return rows


# --- plugging models together: CLIP + generator --------------------------------------------

def clip_guided_latents(decode: Callable[[torch.Tensor], torch.Tensor], model: CLIP, prompts: Sequence[str],
                        z_dim: int, steps: int = 200, lr: float = 0.05, prior_weight: float = 0.01,
                        restarts: int = 4, generator: torch.Generator | None = None):
    """Optimise latents so that the generated images match the prompts (the lecture's CLIP+GAN).

    For each prompt ``p`` and ``restarts`` random starts ``z ~ N(0, I)`` (``z_dim``), minimise
    ``-cos(E_img(decode(z)), E_txt(p)) + prior_weight * |z|^2 / z_dim`` with Adam; the prior
    term keeps ``z`` where the generator was trained. ``decode`` maps ``(N, z_dim)`` to images
    ``(N, 3, H, W)`` in ``[-1, 1]``; neither it nor the CLIP model is changed.

    Returns ``(z, sims)``: for each prompt the best start's latent ``(P, z_dim)`` and its final
    cosine similarity ``(P,)``.
    """
    checks.positive_int(z_dim, "z_dim"); checks.positive_int(steps, "steps"); checks.positive_int(restarts, "restarts")
    if isinstance(prompts, str) or len(prompts) == 0:
        raise ValueError("prompts must be a non-empty list of captions")
    dev = model.logit_scale.device
    with torch.no_grad():
        t = model.encode_captions(prompts).repeat_interleave(restarts, 0)     # (P*R, D)
    z = torch.randn(len(t), z_dim, generator=generator).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            sim = (model.encode_image(decode(z)) * t).sum(1)                  # (P*R,)
            loss = (-sim + prior_weight * z.pow(2).mean(1)).sum()
            opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad():
            sim = (model.encode_image(decode(z)) * t).sum(1).view(len(prompts), restarts)
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    best = sim.argmax(1)                                                      # (P,)
    zb = z.detach().view(len(prompts), restarts, z_dim)[torch.arange(len(prompts)), best]
    return zb, sim.max(1).values
