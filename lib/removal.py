"""Instruction-based object removal: the GQA-Inpaint pipeline on procedural scenes
(introduced in chapter 10, after Yildirim et al. 2023, "Inst-Inpaint").

The GQA-Inpaint data set is built from images that come with a *scene graph* (objects with
attributes, and relations between them). For every training pair it (a) selects an object of
the graph, (b) takes its segmentation mask, (c) removes it from the image, and (d) writes an
instruction from the graph, e.g. "remove the woman at the right of the boat". A network then
learns ``(image, instruction) -> image without that object``. Here the images are chapter 9's
procedural scenes (:mod:`lib.scenes`), drawn with two or three objects, so that steps (b) and (c)
are exact: a scene is re-rendered without its target (:func:`lib.scenes.render_scene` with
``objects=[...]``), and the true mask is the object's coverage (:func:`lib.scenes.object_masks`).

Read top to bottom:

1. **Scenes and their graph**: :func:`lib.scenes.sample_removal_scene` draws 2-3
   non-overlapping objects, often two of the same colour and shape, so that an instruction must
   *disambiguate*; :func:`relation` (the spatial relation of one object to another, or ``None``
   when it is not clear-cut), :func:`scene_graph` (nodes = attribute words, edges = relations).
2. **Instructions**: :func:`referring_expressions` lists every phrase of the grammar that picks
   out the target and nothing else; :func:`instruction` chooses one ("remove the ...");
   :func:`resolve` is the *reader*: it parses an instruction and returns the indices of the
   objects it can refer to (exactly one for a good instruction); :func:`tokenize_instruction`
   turns instructions into word ids of :data:`INSTRUCTION_VOCAB`.
3. **Data**: :func:`removal_examples` -> :class:`RemovalSet` (input, ground truth, masks, ...).
4. **Model**: :class:`InstructionRemover`, a small U-Net whose features are modulated (FiLM) by
   a GRU encoding of the instruction (:class:`InstructionEncoder`); it predicts a soft mask and
   a fill, and blends them. :func:`fit_remover` trains it with an l1 loss against the ground
   truth plus a cross-entropy between its mask and the target's (the data set has the masks);
   :func:`apply_remover` runs it over a data set.
5. **Measures**: :func:`removal_fractions` (how much of each object an edit removed),
   :func:`right_object`, :func:`right_object_rate`, and the PSNR inside the removed region
   (:func:`lib.metrics.psnr_masked`); baselines :func:`inpaint` (biharmonic inpainting of a
   given mask), :func:`oracle_inpaint` (of the *true* mask) and :func:`remove_objects` (the
   exact removal of any object, e.g. a wrong one).

The instruction grammar (one target, described by its colour and shape, plus what makes it unique)::

    remove the {colour} {shape}                                    "remove the red circle"
    remove the {size} {colour} {shape}                             "remove the small red circle"
    remove the {colour} {shape} {on the left | ... | at the bottom}  (the extreme one of its kind)
    remove the {colour} {shape} {to the left of | ... | below} the {reference}
                                     "remove the red circle to the left of the large blue square"

Images are ``(N, 3, H, W)`` float tensors in ``[-1, 1]``; masks ``(N, 1, H, W)`` with 1 = the object.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage

from . import checks, restoration, scenes, train

# --- 1. The scene graph ------------------------------------------------------------------

FORMS = ("attributes", "size", "position", "relation")     # the four instruction templates
INSTRUCTION_VOCAB = ("<pad>", "remove", "the", *scenes.SIZES, *scenes.COLOURS, *scenes.SHAPES,
                     "on", "at", "left", "right", "top", "bottom", "to", "of", "above", "below")
INSTRUCTION_TOKENS = 12   # the longest: "remove the red circle to the right of the large blue square"
MARGIN = 3 / 32           # "clear-cut" position difference, in units of the image side


def relation(a: scenes.SceneObject, b: scenes.SceneObject) -> str | None:
    """The spatial relation of ``a`` to ``b`` ("left of", "right of", "above", "below"), or ``None``
    when it is not clear-cut. Clear-cut means: along the dominant axis the centres differ by at
    least :data:`MARGIN` and by at least twice their difference across it (a diagonal neighbour
    is neither "left of" nor "above")."""
    dx, dy = b.cx - a.cx, b.cy - a.cy               # image y grows downwards
    if abs(dx) >= max(MARGIN, 2 * abs(dy)):
        return "left of" if dx > 0 else "right of"
    if abs(dy) >= max(MARGIN, 2 * abs(dx)):
        return "above" if dy > 0 else "below"
    return None


@dataclass(frozen=True)
class SceneGraph:
    """``nodes``: one ``(size, colour, shape)`` word triple per object; ``edges``: the clear-cut
    relations ``(i, relation, j)`` ("object i is <relation> object j"), both directions listed."""
    nodes: tuple
    edges: tuple

    def relations_of(self, i: int) -> list[tuple[str, int]]:
        """``[(relation, j), ...]`` for the edges leaving node ``i``."""
        return [(r, j) for a, r, j in self.edges if a == i]


def scene_graph(scene: scenes.Scene) -> SceneGraph:
    """The scene graph of ``scene``: attribute words per object and every clear-cut relation."""
    if not isinstance(scene, scenes.Scene):
        raise TypeError(f"scene must be a lib.scenes.Scene, got {type(scene).__name__}")
    o = scene.objects
    edges = tuple((i, relation(o[i], o[j]), j) for i in range(len(o)) for j in range(len(o))
                  if i != j and relation(o[i], o[j]) is not None)
    return SceneGraph(tuple(x.words for x in o), edges)


# --- 2. Instructions: writing (generation) and reading (resolution) -----------------------

def _matches(words, desc) -> bool:
    """Does an object with ``words = (size, colour, shape)`` fit ``desc`` (``(colour, shape)`` or
    ``(size, colour, shape)``)?"""
    return tuple(words[-len(desc):]) == tuple(desc)


def _extreme(objs, idx: list[int], i: int, pos: str) -> bool:
    """Is ``objs[i]`` the one of ``objs[idx]`` farthest towards ``pos``, by at least MARGIN?"""
    key = {"left": lambda o: o.cx, "right": lambda o: -o.cx, "top": lambda o: o.cy, "bottom": lambda o: -o.cy}[pos]
    return all(key(objs[j]) - key(objs[i]) >= MARGIN for j in idx if j != i)


def _unique_name(scene: scenes.Scene, j: int) -> str | None:
    """The shortest attribute phrase ("blue square" or "large blue square") naming object ``j``
    alone, or ``None``."""
    words = scene.objects[j].words
    for desc in (words[1:], words):
        if sum(_matches(o.words, desc) for o in scene.objects) == 1:
            return " ".join(desc)
    return None


def referring_expressions(scene: scenes.Scene, target: int) -> dict[str, list[str]]:
    """Every phrase of the grammar (after "remove the") that refers to object ``target`` and to no
    other object of ``scene``, by form: ``{"attributes": [...], "size": [...], "position": [...],
    "relation": [...]}`` (a form can have none). "position" is only used when two or more objects
    share the target's colour and shape (it names the extreme one of them); "relation" refers
    to another object by its shortest unique name."""
    if not isinstance(scene, scenes.Scene):
        raise TypeError(f"scene must be a lib.scenes.Scene, got {type(scene).__name__}")
    objs = scene.objects
    if not isinstance(target, (int, np.integer)) or not 0 <= target < len(objs):
        raise ValueError(f"target must index the scene's {len(objs)} objects, got {target!r}")
    size, colour, shape = objs[target].words
    same = [j for j, o in enumerate(objs) if _matches(o.words, (colour, shape))]   # includes the target
    out = {f: [] for f in FORMS}
    if len(same) == 1:
        out["attributes"].append(f"{colour} {shape}")
    if sum(_matches(o.words, (size, colour, shape)) for o in objs) == 1:
        out["size"].append(f"{size} {colour} {shape}")
    if len(same) >= 2:
        out["position"] += [f"{colour} {shape} {text}" for p, text in scenes.WHERE_TEXT.items()
                            if _extreme(objs, same, target, p)]
    for j in range(len(objs)):
        if j == target or (rel := relation(objs[target], objs[j])) is None:
            continue
        name = _unique_name(scene, j)
        if name is None:
            continue
        if all(relation(objs[k], objs[j]) != rel for k in same if k != target):
            out["relation"].append(f"{colour} {shape} {scenes.RELATION_TEXT[rel]} the {name}")
    return out


def instruction(scene: scenes.Scene, target: int, rng: np.random.Generator | None = None) -> tuple[str, str]:
    """An instruction that removes object ``target`` and no other: ``(text, form)``. With ``rng``
    the form is drawn uniformly among those available, then a phrase of that form (the variety
    the network trains on); without, the first available form and phrase (the shortest)."""
    exprs = referring_expressions(scene, target)
    forms = [f for f in FORMS if exprs[f]]
    if not forms:
        raise ValueError(f"object {target} of this scene cannot be described uniquely by the grammar")
    form = forms[int(rng.integers(len(forms)))] if rng is not None else forms[0]
    phrases = exprs[form]
    phrase = phrases[int(rng.integers(len(phrases)))] if rng is not None else phrases[0]
    return "remove the " + phrase, form


def _parse_desc(ws: list[str], text: str) -> tuple:
    if len(ws) == 3 and ws[0] in scenes.SIZES and ws[1] in scenes.COLOURS and ws[2] in scenes.SHAPES:
        return tuple(ws)
    if len(ws) == 2 and ws[0] in scenes.COLOURS and ws[1] in scenes.SHAPES:
        return tuple(ws)
    raise ValueError(f"not an instruction of the grammar: {text!r} (bad object description {' '.join(ws)!r})")


def resolve(scene: scenes.Scene, text: str) -> list[int]:
    """Read an instruction: the indices of the objects of ``scene`` it can refer to (a good
    instruction gives exactly one). This is the *reader* of the grammar, written independently
    of :func:`referring_expressions`: it parses the words, then evaluates them on the scene.
    A relational instruction refers to the objects fitting the description that have that
    relation to *some* object fitting the reference. Text outside the grammar raises ValueError."""
    if not isinstance(scene, scenes.Scene):
        raise TypeError(f"scene must be a lib.scenes.Scene, got {type(scene).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"instruction must be a str, got {type(text).__name__}")
    ws = text.split()
    if ws[:2] != ["remove", "the"]:
        raise ValueError(f"an instruction starts with 'remove the', got {text!r}")
    ws = ws[2:]
    objs = scene.objects
    n_desc = 3 if ws and ws[0] in scenes.SIZES else 2
    desc, rest = _parse_desc(ws[:n_desc], text), " ".join(ws[n_desc:])
    cand = [i for i, o in enumerate(objs) if _matches(o.words, desc)]
    if rest == "":
        return cand
    for pos, phrase in scenes.WHERE_TEXT.items():
        if rest == phrase:
            return [i for i in cand if _extreme(objs, cand, i, pos)]
    for rel, phrase in scenes.RELATION_TEXT.items():
        if rest.startswith(phrase + " the "):
            ref = _parse_desc(rest[len(phrase + " the "):].split(), text)
            refs = [j for j, o in enumerate(objs) if _matches(o.words, ref)]
            return [i for i in cand if any(j != i and relation(objs[i], objs[j]) == rel for j in refs)]
    raise ValueError(f"not an instruction of the grammar: {text!r}")


def tokenize_instruction(texts, length: int = INSTRUCTION_TOKENS) -> torch.Tensor:
    """Word ids ``(N, length)`` int64 into :data:`INSTRUCTION_VOCAB` (0 = padding, at the end)."""
    return scenes.tokenize(texts, length, vocab=INSTRUCTION_VOCAB)


# --- 3. Data: (input, instruction) -> ground truth, with masks for the measures -----------

@dataclass
class RemovalSet:
    """``N`` removal examples: ``inputs`` and ``targets`` (the scene without its target object)
    ``(N, 3, S, S)`` in ``[-1, 1]``; ``backgrounds`` (the scene without any object); ``masks``
    ``(N, K, S, S)`` in ``[0, 1]``: the coverage of each object (rows past a scene's object count
    are zero); ``target (N,)`` int64 (which mask row is the target); ``instructions``, their
    ``tokens (N, INSTRUCTION_TOKENS)``, ``forms`` (see :data:`FORMS`) and the ``scenes``."""
    inputs: torch.Tensor
    targets: torch.Tensor
    backgrounds: torch.Tensor
    masks: torch.Tensor
    target: torch.Tensor
    instructions: list
    tokens: torch.Tensor
    forms: list
    scenes: list

    def __len__(self):
        return len(self.instructions)

    def target_masks(self, threshold: float = 0.5) -> torch.Tensor:
        """Binary ``(N, 1, S, S)`` masks of the removed objects (coverage > ``threshold``)."""
        m = self.masks[torch.arange(len(self)), self.target]
        return (m > threshold).float()[:, None]

    def subset(self, idx) -> "RemovalSet":
        """The examples ``idx`` (a list, range or index tensor)."""
        idx = torch.as_tensor(list(idx) if not torch.is_tensor(idx) else idx, dtype=torch.long)
        pick = lambda seq: [seq[int(i)] for i in idx]
        return RemovalSet(self.inputs[idx], self.targets[idx], self.backgrounds[idx], self.masks[idx],
                          self.target[idx], pick(self.instructions), self.tokens[idx], pick(self.forms),
                          pick(self.scenes))


def removal_examples(split: str = "train", n: int = 1000, size: int = 32, seed: int = 0,
                     n_objects: tuple = (2, 3), p_duplicate: float = 0.6) -> RemovalSet:
    """``n`` GQA-Inpaint-style examples, deterministic given ``seed``; ``"train"`` and ``"test"``
    use disjoint random streams (the test scenes are new scenes). For each scene: (a) select a
    target object at random, (b) its mask, (c) the scene rendered without it, (d) a random
    instruction that refers to it alone (:func:`instruction`). Example ``i`` depends only on
    ``(seed, split, i)``."""
    checks.choice(split, ("train", "test"), "split")
    checks.positive_int(n, "n"); checks.positive_int(size, "size")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels for the shapes to be recognisable, got {size}")
    stream = 10 + ("train", "test").index(split)               # disjoint from lib.data's scene streams
    kmax = max(n_objects)
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        while True:
            scene = scenes.sample_removal_scene(rng, n_objects, p_duplicate)
            order = rng.permutation(len(scene.objects))
            ok = [t for t in order if any(referring_expressions(scene, int(t)).values())]
            if ok:
                break
        t = int(ok[0])
        text, form = instruction(scene, t, rng)
        keep = [k for k in range(len(scene.objects)) if k != t]
        m = torch.zeros(kmax, size, size)
        m[:len(scene.objects)] = scenes.object_masks(scene, size)
        rows.append((scenes.render_scene(scene, size), scenes.render_scene(scene, size, objects=keep),
                     scenes.render_background(scene, size), m, t, text, form, scene))
    cols = list(zip(*rows))
    texts = list(cols[5])
    return RemovalSet(torch.stack(cols[0]), torch.stack(cols[1]), torch.stack(cols[2]), torch.stack(cols[3]),
                      torch.tensor(cols[4], dtype=torch.int64), texts, tokenize_instruction(texts), list(cols[6]),
                      list(cols[7]))


def remove_objects(ds: RemovalSet, which) -> torch.Tensor:
    """The exact removal of object ``which[i]`` from example ``i`` (``(N,)`` object indices): the
    scene re-rendered without it, ``(N, 3, S, S)``. ``which = ds.target`` is the ground truth;
    another object gives the *wrong-object* baseline."""
    checks.tensor(which, "which")
    which = which.long()
    if which.shape != (len(ds),):
        raise ValueError(f"which must have shape ({len(ds)},), got {tuple(which.shape)}")
    size = ds.inputs.shape[-1]
    out = []
    for sc, w in zip(ds.scenes, which.tolist()):
        if not 0 <= w < len(sc.objects):
            raise ValueError(f"which must index each scene's objects, got {w} for a scene of {len(sc.objects)}")
        out.append(scenes.render_scene(sc, size, objects=[k for k in range(len(sc.objects)) if k != w]))
    return torch.stack(out)


# --- 4. The model: a FiLM-conditioned U-Net that predicts a soft mask and a fill ----------

class InstructionEncoder(nn.Module):
    """Word embeddings + a bidirectional GRU over the instruction (padding skipped):
    ``forward(tokens (N, L) int64) -> (N, 2 * dim)`` (the two final hidden states)."""

    def __init__(self, dim: int = 48, vocab: int = len(INSTRUCTION_VOCAB)):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.gru = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.vocab = vocab

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        checks.tensor(tokens, "tokens")
        if tokens.dim() != 2 or tokens.dtype != torch.int64:
            raise ValueError(f"tokens must be int64 word ids of shape (N, L) (lib.removal.tokenize_instruction), "
                             f"got {tokens.dtype} {tuple(tokens.shape)}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab):
            raise ValueError(f"word ids must lie in [0, {self.vocab}), got {int(tokens.min())}..{int(tokens.max())}")
        lengths = (tokens != 0).sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.gru(packed)                                   # (2, N, dim)
        return torch.cat([h[0], h[1]], 1)


class FiLMBlock(nn.Module):
    """conv3x3 -> GroupNorm -> FiLM (``h * (1 + gamma(t)) + beta(t)``) -> SiLU -> conv3x3 -> SiLU,
    with a residual 1x1 path: ``forward(x (N, c_in, H, W), t (N, T)) -> (N, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, c_out), c_out)
        self.film = nn.Linear(t_dim, 2 * c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, t):
        gamma, beta = self.film(t)[:, :, None, None].chunk(2, 1)
        h = F.silu(self.norm(self.conv1(x)) * (1 + gamma) + beta)
        return F.silu(self.conv2(h)) + self.skip(x)


class InstructionRemover(nn.Module):
    """Instruction-conditioned object removal: ``forward(x (N, 3, H, W), tokens (N, L)) -> (N, 3, H, W)``.

    The instruction is encoded by :class:`InstructionEncoder`; a U-Net (``H, W`` divisible by 8; widths
    ``w, 2w, 4w, 4w`` at ``H, H/2, H/4, H/8``) reads the image plus two coordinate channels
    (x and y in ``[-1, 1]``: "left" and "top" are then easy to express) and every block is
    FiLM-modulated by the text. The head predicts a soft *mask* ``m`` (where to edit, sigmoid)
    and a *fill* ``f`` (what to paint, tanh); the output is ``x (1 - m) + f m``, so the network
    must both find the right object (``m``) and invent the background under it (``f``).
    :meth:`mask` returns ``m (N, 1, H, W)``.
    """

    def __init__(self, width: int = 16, text_dim: int = 48):
        super().__init__()
        checks.positive_int(width, "width"); checks.positive_int(text_dim, "text_dim")
        w, t = width, 2 * text_dim
        self.text = InstructionEncoder(text_dim)
        self.inp = nn.Conv2d(3 + 2, w, 3, padding=1)
        self.d1, self.d2, self.d3 = FiLMBlock(w, w, t), FiLMBlock(w, 2 * w, t), FiLMBlock(2 * w, 4 * w, t)
        self.mid = FiLMBlock(4 * w, 4 * w, t)
        self.u3, self.u2, self.u1 = FiLMBlock(8 * w, 2 * w, t), FiLMBlock(4 * w, w, t), FiLMBlock(2 * w, w, t)
        self.head = nn.Conv2d(w, 4, 3, padding=1)

    def _run(self, x, tokens):
        checks.images(x, channels=3, name="x")
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"H and W must be divisible by 8, got {tuple(x.shape[-2:])}")
        checks.shape(tokens, (len(x), None), "tokens")
        if tokens.dtype != torch.int64:
            raise TypeError(f"tokens must be int64 word ids (lib.removal.tokenize_instruction), got {tokens.dtype}")
        t = self.text(tokens.to(x.device))
        n, _, h, w = x.shape
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device), torch.linspace(-1, 1, w, device=x.device),
                                indexing="ij")
        h1 = self.d1(self.inp(torch.cat([x, xx.expand(n, 1, h, w), yy.expand(n, 1, h, w)], 1)), t)  # (N, w, H, W)
        h2 = self.d2(F.avg_pool2d(h1, 2), t)                                  # (N, 2w, H/2, W/2)
        h3 = self.d3(F.avg_pool2d(h2, 2), t)                                  # (N, 4w, H/4, W/4)
        u = self.mid(F.avg_pool2d(h3, 2), t)                                  # (N, 4w, H/8, W/8)
        u = self.u3(torch.cat([F.interpolate(u, scale_factor=2.0), h3], 1), t)
        u = self.u2(torch.cat([F.interpolate(u, scale_factor=2.0), h2], 1), t)
        u = self.u1(torch.cat([F.interpolate(u, scale_factor=2.0), h1], 1), t)
        o = self.head(u)
        return o[:, :1], torch.tanh(o[:, 1:])                              # mask logits, fill

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, return_logits: bool = False):
        """The edited image ``(N, 3, H, W)``; with ``return_logits`` also the mask logits ``(N, 1, H, W)``."""
        logits, f = self._run(x, tokens)
        m = torch.sigmoid(logits)
        out = x * (1 - m) + f * m
        return (out, logits) if return_logits else out

    @torch.no_grad()
    def mask(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The predicted edit mask ``(N, 1, H, W)`` in ``[0, 1]``."""
        return torch.sigmoid(self._run(x, tokens)[0])


def fit_remover(net: InstructionRemover, ds: RemovalSet, steps: int, batch: int = 32, lr: float = 2e-3,
        mask_weight: float = 1.0, seed: int = 0, desc: str = "instruction remover") -> dict[str, list[float]]:
    """Train ``net`` on ``ds``: the l1 loss between its output and the ground truth, plus
    ``mask_weight`` times the binary cross-entropy between its mask and the target's coverage
    (the data set has the masks; ``mask_weight=0`` trains on image pairs alone, as Inst-Inpaint
    does -- a small network then tends to settle for editing nothing). Adam, cosine learning-rate
    decay; each step draws ``batch`` examples at random. Returns the :func:`lib.train.train_loop` history."""
    if not isinstance(ds, RemovalSet):
        raise TypeError(f"ds must be a lib.removal.RemovalSet, got {type(ds).__name__}")
    checks.positive_int(steps, "steps"); checks.positive_int(batch, "batch")
    dev = next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def loss(idx):                                                      # idx (B,) examples
        out, logits = net(ds.inputs[idx].to(dev), ds.tokens[idx].to(dev), return_logits=True)
        l1 = F.l1_loss(out, ds.targets[idx].to(dev))
        true_mask = ds.masks[idx, ds.target[idx]][:, None].to(dev)       # (B, 1, S, S) coverage in [0, 1]
        bce = F.binary_cross_entropy_with_logits(logits, true_mask)
        return {"loss": l1 + mask_weight * bce, "l1": l1, "mask BCE": bce}

    net.train()
    run = train.fit(net, loss, lambda: torch.randint(len(ds), (batch,), generator=g), steps, lr=lr,
                    schedule=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05),
                    desc=desc)
    net.eval()
    return {k: v for k, v in run.history.items() if k != "loss"}


@torch.no_grad()
def apply_remover(net: InstructionRemover, ds: RemovalSet, tokens: torch.Tensor | None = None, chunk: int = 128,
          masks: bool = False) -> torch.Tensor:
    """The edits of ``net`` on ``ds.inputs`` (with ``ds.tokens``, or other ``tokens``), ``(N, 3, S, S)``
    on the CPU; with ``masks=True`` its predicted masks ``(N, 1, S, S)`` in ``[0, 1]`` instead."""
    if not isinstance(ds, RemovalSet):
        raise TypeError(f"ds must be a lib.removal.RemovalSet, got {type(ds).__name__}")
    net.eval()
    dev = next(net.parameters()).device
    tokens = ds.tokens if tokens is None else tokens
    checks.shape(tokens, (len(ds), None), "tokens")
    run = net.mask if masks else net
    return torch.cat([run(x.to(dev), t.to(dev)).cpu() for x, t in zip(ds.inputs.split(chunk), tokens.split(chunk))])


# --- 5. Measures and baselines ------------------------------------------------------------

def removal_fractions(out: torch.Tensor, ds: RemovalSet) -> torch.Tensor:
    """How much of each object an edit ``out (N, 3, S, S)`` removed: ``(N, K)``, the projection of
    the change ``out - x`` on the exact removal ``background - x``, weighted by the object's
    coverage: ``sum m (out - x)(bg - x) / sum m (bg - x)^2``. 1 = replaced by the true background,
    0 = untouched; NaN for mask rows past a scene's object count."""
    checks.images(out, channels=3, name="out")
    if out.shape != ds.inputs.shape:
        raise ValueError(f"out must have the inputs' shape {tuple(ds.inputs.shape)}, got {tuple(out.shape)}")
    change = (out - ds.inputs).double()[:, None]                    # (N, 1, 3, S, S)
    full = (ds.backgrounds - ds.inputs).double()[:, None]
    m = ds.masks.double()[:, :, None]                               # (N, K, 1, S, S)
    num = (m * change * full).sum(dim=(2, 3, 4))
    den = (m * full * full).sum(dim=(2, 3, 4))
    frac = num / den.clamp_min(1e-12)
    present = torch.tensor([[k < len(s.objects) for k in range(ds.masks.shape[1])] for s in ds.scenes])
    return torch.where(present, frac, torch.full_like(frac, float("nan")))


def right_object(out: torch.Tensor, ds: RemovalSet, threshold: float = 0.5) -> torch.Tensor:
    """``(N,)`` bool: the edit removed the target (removal fraction ``>= threshold``) and kept
    every other object (fraction ``< threshold``)."""
    f = removal_fractions(out, ds)
    tgt = f[torch.arange(len(ds)), ds.target]
    others = f.clone()
    others[torch.arange(len(ds)), ds.target] = float("nan")
    kept = torch.nan_to_num(others, nan=-1.0).max(1).values < threshold
    return (tgt >= threshold) & kept


def right_object_rate(out: torch.Tensor, ds: RemovalSet, threshold: float = 0.5) -> float:
    """Fraction of examples where exactly the right object was removed (:func:`right_object`)."""
    return float(right_object(out, ds, threshold).float().mean())


def inpaint(inputs: torch.Tensor, masks: torch.Tensor, dilate: int = 1) -> torch.Tensor:
    """Classical removal: biharmonic inpainting (:func:`lib.restoration.inpaint_biharmonic`) of
    the binary ``masks (N, 1, S, S)`` dilated by ``dilate`` pixels (to cover anti-aliased rims)."""
    checks.images(inputs, channels=3, name="inputs"); checks.binary(masks, "masks")
    checks.shape(masks, (len(inputs), 1, *inputs.shape[2:]), "masks")
    m = masks[:, 0].bool().numpy()
    if dilate:
        m = np.stack([ndimage.binary_dilation(a, iterations=int(dilate)) for a in m])
    m = torch.tensor(m, dtype=torch.float32)[:, None]
    return restoration.inpaint_biharmonic(inputs * (1 - m), m)


def oracle_inpaint(ds: RemovalSet, dilate: int = 1) -> torch.Tensor:
    """Classical baseline that is *told* the true mask: :func:`inpaint` of the target's coverage
    (every pixel it touches), dilated by ``dilate``. It cannot pick the wrong object; it can only fill."""
    m = (ds.masks[torch.arange(len(ds)), ds.target] > 0.01).float()[:, None]
    return inpaint(ds.inputs, m, dilate)
