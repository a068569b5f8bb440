"""Text-to-video: moving-object clips, a factorised space-time video diffusion model, and the
measurements of motion and temporal consistency (introduced in chapter 9).

A minimal version of the lecture's *Imagen Video* and *Sora* slides, small enough for a CPU,
used by ``chapters/09-foundation-models/text_to_video.ipynb``:

1. **Clips** (:func:`moving_clips`): ``frames`` frames of one object of the scene grammar
   (:mod:`lib.scenes`) gliding over a still background, with a caption from a grammar with
   motion words, e.g. "a large red square moves left quickly". Four (shape, direction) pairs
   (:data:`HELDOUT_MOTIONS`) never occur in training: the "heldout" split tests whether the
   model composes a shape with a motion it never saw that shape make.
2. **The model** is chapter 9's latent diffusion, one frame at a time through the same
   autoencoder (:class:`lib.text2image.LatentAutoencoder`), with a denoiser that sees the whole
   clip: :class:`lib.text2image.TextUNet` with ``frames`` (2-D convolutions per frame, then
   attention across the frames at every latent pixel, :class:`lib.nets.TemporalAttention`).
   :func:`video_diffusion_loss` trains it on clips and, for a fraction of them, on their frames
   as independent images (temporal layers off), as Ho et al. train on videos and images jointly;
   :func:`generate` samples clips with classifier-free guidance (``video=True``) or, as the
   baseline, each frame as an independent image from the same caption (``video=False``).
3. **Measurements**, with no learned part: :func:`object_centroids` tracks the coloured object
   (the background is grey), :func:`fit_motion` fits a straight path to the track (velocity and
   the wobble around it), :func:`read_motion` turns a velocity into a direction and a speed, and
   :func:`background_flicker` measures how much the still background changes between frames.

Clips are float32 ``(N, frames, 3, size, size)`` in ``[-1, 1]``; positions and velocities are in
pixels (x to the right, y downwards).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from . import checks, diffusion, scenes, text2image

DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = ("slowly", "quickly")
SPEED_PER_FRAME = {"slowly": 1 / 32, "quickly": 2 / 32}      # fractions of the image side per frame
STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}   # (dx, dy), y downwards
HELDOUT_MOTIONS = (("circle", "left"), ("square", "right"), ("triangle", "up"), ("cross", "down"))
CLIP_SPLITS = ("train", "test", "heldout", "all")
VOCAB = (*scenes.VOCAB, "moves", "up", "down", *SPEEDS)      # left/right are scene words already
MAX_TOKENS = 7   # "a small red triangle moves left slowly"


# --- captions -----------------------------------------------------------------------------------

def motion_caption(size: str, colour: str, shape: str, direction: str, speed: str) -> str:
    """"a {size} {colour} {shape} moves {direction} {speed}", e.g. "a large red square moves left
    quickly"."""
    checks.choice(size, scenes.SIZES, "size"); checks.choice(colour, scenes.COLOURS, "colour")
    checks.choice(shape, scenes.SHAPES, "shape"); checks.choice(direction, DIRECTIONS, "direction")
    checks.choice(speed, SPEEDS, "speed")
    return f"a {size} {colour} {shape} moves {direction} {speed}"


def parse_motion_caption(caption: str) -> dict:
    """Inverse of :func:`motion_caption`: ``{"size", "colour", "shape", "direction", "speed"}``;
    anything outside the grammar raises ``ValueError``."""
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a str, got {type(caption).__name__}")
    w = caption.split()
    if (len(w) != 7 or w[0] != "a" or w[1] not in scenes.SIZES or w[2] not in scenes.COLOURS
            or w[3] not in scenes.SHAPES or w[4] != "moves" or w[5] not in DIRECTIONS or w[6] not in SPEEDS):
        raise ValueError(f"not a caption of the motion grammar: {caption!r} "
                         "(expected 'a {size} {colour} {shape} moves {left|right|up|down} {slowly|quickly}')")
    return dict(zip(("size", "colour", "shape", "direction", "speed"), w[1:4] + w[5:]))


def tokenize(captions) -> torch.Tensor:
    """Motion captions -> tokens ``(N, MAX_TOKENS)`` int64 over :data:`VOCAB` (0 = padding)."""
    return scenes.tokenize(captions, length=MAX_TOKENS, vocab=VOCAB)


def all_captions(split: str = "all") -> list[str]:
    """Every caption of the motion grammar (256), or those of one split: ``"train"``/``"test"``
    without a held-out (shape, direction) pair (192), ``"heldout"`` with one (64)."""
    checks.choice(split, CLIP_SPLITS, "split")
    caps = [motion_caption(s, c, k, d, v) for k in scenes.SHAPES for d in DIRECTIONS for c in scenes.COLOURS
            for s in scenes.SIZES for v in SPEEDS]
    if split == "all":
        return caps
    held = [(parse_motion_caption(c)["shape"], parse_motion_caption(c)["direction"]) in HELDOUT_MOTIONS
            for c in caps]
    return [c for c, h in zip(caps, held) if h == (split == "heldout")]


# --- clips -------------------------------------------------------------------------------------

@dataclass
class ClipSet:
    """A batch of captioned clips: ``clips (N, frames, 3, size, size)`` in ``[-1, 1]``,
    ``captions``, the true object ``paths (N, frames, 2)`` (centre, pixels) and ``labels``
    ``{shape, colour, size, direction, speed: (N,) int64}`` (indices into the word lists)."""
    clips: torch.Tensor
    captions: list
    paths: torch.Tensor
    labels: dict

    def __len__(self):
        return len(self.captions)


def sample_clip(rng: np.random.Generator, caption: str, frames: int = 8) -> tuple[list, torch.Tensor]:
    """One clip of ``caption``: ``frames`` :class:`lib.scenes.Scene` s (one object, moving in a
    straight line at the caption's speed, wholly inside the picture, on a still random
    background) and its centre per frame ``(frames, 2)`` in fractions of the side."""
    checks.positive_int(frames, "frames")
    a = parse_motion_caption(caption)
    r = float(rng.uniform(*scenes.RADIUS[a["size"]]))
    margin = r + 1 / 32
    travel = (frames - 1) * SPEED_PER_FRAME[a["speed"]]
    if travel > 1 - 2 * margin:
        raise ValueError(f"{frames} frames at {a['speed']!r} speed do not fit in the picture")
    dx, dy = STEP[a["direction"]]
    lo = float(rng.uniform(margin, 1 - margin - travel))              # the low end of the path
    across = float(rng.uniform(margin, 1 - margin))
    start = lo if dx + dy > 0 else lo + travel
    obj = scenes.sample_object(rng, (a["shape"], a["colour"]), a["size"], 0.5, 0.5, r)
    background = scenes.sample_background(rng)
    centres = []
    for f in range(frames):
        along = start + (dx + dy) * f * SPEED_PER_FRAME[a["speed"]]
        centres.append((along, across) if dx else (across, along))
    shots = [scenes.Scene((replace(obj, cx=cx, cy=cy),), background=background) for cx, cy in centres]
    return shots, torch.tensor(centres, dtype=torch.float32)


def moving_clips(split: str = "train", n: int = 1000, frames: int = 8, size: int = 32,
                 seed: int = 0) -> ClipSet:
    """``n`` captioned clips of ``split``, deterministic given ``seed``: captions drawn uniformly
    from :func:`all_captions` ``(split)`` (``"test"`` draws the training captions from a
    disjoint random stream: new clips of seen combinations). Clip ``i`` depends only on
    ``(seed, split, i)``."""
    checks.choice(split, CLIP_SPLITS, "split")
    checks.positive_int(n, "n"); checks.positive_int(size, "size")
    pool = all_captions("train" if split == "test" else split)
    stream = 10 + CLIP_SPLITS.index(split)
    clips, caps, paths = [], [], []
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        cap = pool[int(rng.integers(len(pool)))]
        shots, centres = sample_clip(rng, cap, frames)
        clips.append(torch.stack([scenes.render_scene(s, size) for s in shots]))
        caps.append(cap)
        paths.append(centres * size - 0.5)          # pixel coordinates of the centre (pixel k spans k-0.5..k+0.5)
    return ClipSet(torch.stack(clips), caps, torch.stack(paths), caption_labels(caps))


def caption_labels(captions) -> dict[str, torch.Tensor]:
    """What each motion caption asks for: ``{shape, colour, size, direction, speed: (N,) int64}``."""
    if isinstance(captions, str):
        captions = [captions]
    words = {"shape": scenes.SHAPES, "colour": scenes.COLOURS, "size": scenes.SIZES,
             "direction": DIRECTIONS, "speed": SPEEDS}
    parsed = [parse_motion_caption(c) for c in captions]
    return {k: torch.tensor([v.index(p[k]) for p in parsed], dtype=torch.int64) for k, v in words.items()}


def _clips(x: torch.Tensor, name: str = "clips") -> torch.Tensor:
    checks.tensor(x, name)
    if x.dim() != 5 or x.shape[2] != 3:
        raise ValueError(f"{name} must have shape (N, frames, 3, H, W), got {tuple(x.shape)}")
    checks.nonempty(x, name)
    checks.floating(x, name)
    return checks.value_range(x, -1, 1, name)


# --- the model: training and sampling -----------------------------------------------------------

def video_diffusion_loss(model: text2image.TextUNet, sched, z0: torch.Tensor, tokens: torch.Tensor,
                         p_uncond: float = 0.15, p_image: float = 0.25,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """The v-prediction loss (:func:`lib.diffusion.v_loss`, as Imagen Video) on latent clips ``z0
    (N, frames, C, H, W)`` with captions ``tokens (N, L)``: each caption dropped with probability
    ``p_uncond`` (classifier-free guidance), and each clip treated as ``frames`` independent
    images (temporal layers off) with probability ``p_image`` -- so one network is also a
    text-to-*image* model of single frames."""
    checks.probability(p_uncond, "p_uncond"); checks.probability(p_image, "p_image")
    if model.frames is None:
        raise ValueError("the model must be a video denoiser: TextUNet(frames=...)")
    drop = torch.rand(len(z0), generator=generator) < p_uncond
    video = (torch.rand(len(z0), generator=generator) >= p_image).to(z0.device)
    return diffusion.v_loss(lambda x, t, y: model(x, t, y, drop, video), sched, z0, y=tokens,
                            generator=generator)


@torch.no_grad()
def generate(model: text2image.TextUNet, autoencoder: text2image.LatentAutoencoder, sched, captions,
             w: float = 3.0, steps: int = 20, video: bool = True, generator: torch.Generator | None = None,
             x_T: torch.Tensor | None = None) -> torch.Tensor:
    """Text-to-video: clips ``(N, frames, 3, 32, 32)`` in ``[-1, 1]`` for ``N`` motion captions.

    DDIM (``steps``, deterministic) on latent clips with classifier-free guidance of scale ``w``
    (:func:`lib.diffusion.guided`; the network predicts ``v``, :func:`lib.diffusion.v_to_eps`),
    then the autoencoder decodes each frame. ``video=False`` is
    the baseline: the same network with its temporal layers off, so every frame is an
    independent text-to-image sample of the caption (from its own noise). ``x_T``: the starting
    noise ``(N, frames, C, 8, 8)`` (default: drawn with ``generator``).
    """
    if isinstance(captions, str) or len(captions) == 0:
        raise ValueError("captions must be a non-empty list of motion captions")
    if model.frames is None:
        raise ValueError("the model must be a video denoiser: TextUNet(frames=...)")
    if not isinstance(video, bool):
        raise TypeError(f"video must be True (clips) or False (independent frames), got {video!r}")
    dev = next(model.parameters()).device
    tokens = tokenize(list(captions)).to(dev)
    shape = (len(tokens), model.frames, model.channels, 8, 8)
    if x_T is not None:
        checks.shape(x_T, shape, "x_T")
        x_T = x_T.to(dev)
    on = torch.full((len(tokens),), video, device=dev)
    net = lambda z, t, y: model(z, t, y, video=on)
    eps = diffusion.v_to_eps(diffusion.guided(net, tokens, w, null=None), sched)   # guidance is linear: v or eps
    z = diffusion.ddim_sample(eps, sched, shape, steps=steps, clip_x0=True, generator=generator, device=dev,
                              x_T=x_T)
    frames = autoencoder.decode(z.clamp(-1, 1).flatten(0, 1))
    return frames.view(len(tokens), model.frames, *frames.shape[1:])


# --- measurements -------------------------------------------------------------------------------

def object_mask(clips: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """Soft object masks ``(N, frames, H, W)`` in ``[0, 1]``: the saturation (max minus min over
    the colour channels, in ``[0, 1]`` units) ramped from 0 at ``threshold`` to 1 at twice it.
    The backgrounds are grey (saturation 0) and the objects strongly coloured (about 0.6-0.8):
    :func:`lib.scenes.saturation_mask` of every frame."""
    return scenes.saturation_mask(_clips(clips), threshold)


def object_centroids(clips: torch.Tensor, min_pixels: float = 2.0) -> torch.Tensor:
    """Track the object: its centre ``(N, frames, 2)`` (x, y) in pixels per frame, the centroid
    of :func:`object_mask`; NaN in frames with less than ``min_pixels`` of object."""
    m = object_mask(clips)
    H, W = m.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=m.dtype), torch.arange(W, dtype=m.dtype), indexing="ij")
    mass = m.sum((-2, -1))
    c = torch.stack([(m * xs).sum((-2, -1)), (m * ys).sum((-2, -1))], -1) / mass.clamp(min=1e-6)[..., None]
    return torch.where((mass >= min_pixels)[..., None], c, torch.full_like(c, float("nan")))


def fit_motion(centroids: torch.Tensor) -> dict[str, torch.Tensor]:
    """A straight path at constant speed through each track ``(N, frames, 2)`` (least squares):
    ``velocity (N, 2)`` in pixels per frame, and ``wobble (N,)``, the root-mean-square distance
    of the track from that path (0 for uniform motion in a straight line). NaN for tracks that
    lose the object in some frame."""
    checks.tensor(centroids, "centroids")
    if centroids.dim() != 3 or centroids.shape[2] != 2 or centroids.shape[1] < 2:
        raise ValueError(f"centroids must have shape (N, frames >= 2, 2), got {tuple(centroids.shape)}")
    f = torch.arange(centroids.shape[1], dtype=centroids.dtype)
    fc = f - f.mean()
    mean = centroids.mean(1, keepdim=True)                                  # (N, 1, 2)
    velocity = (fc[None, :, None] * (centroids - mean)).sum(1) / fc.pow(2).sum()   # (N, 2)
    path = mean + fc[None, :, None] * velocity[:, None, :]
    wobble = (centroids - path).pow(2).sum(-1).mean(1).sqrt()
    return {"velocity": velocity, "wobble": wobble}


def read_motion(velocity: torch.Tensor, size: int = 32, still: float = 0.4) -> dict[str, torch.Tensor]:
    """Read a velocity ``(N, 2)`` (pixels per frame) as the caption's words: ``direction (N,)``
    (index into :data:`DIRECTIONS`, the dominant axis and its sign; -1 when slower than
    ``still`` pixels per frame or NaN) and ``speed (N,)`` (index into :data:`SPEEDS`, split
    halfway between the two speeds of a ``size``-pixel picture)."""
    checks.shape(velocity, (None, 2), "velocity")
    vx, vy = velocity[:, 0], velocity[:, 1]
    horizontal = vx.abs() >= vy.abs()
    direction = torch.where(horizontal, torch.where(vx < 0, 0, 1), torch.where(vy < 0, 2, 3))
    speed_px = torch.maximum(vx.abs(), vy.abs())
    moving = speed_px >= still                                              # False for NaN too
    direction = torch.where(moving, direction, -1).long()
    halfway = size * (SPEED_PER_FRAME["slowly"] + SPEED_PER_FRAME["quickly"]) / 2
    return {"direction": direction, "speed": (speed_px >= halfway).long()}


def background_flicker(clips: torch.Tensor) -> torch.Tensor:
    """How much the background changes from frame to frame, per clip ``(N,)``: the mean absolute
    change (in ``[0, 1]`` intensity units) over the pixels that are background in both frames
    (:func:`object_mask` below 0.05). A camera that does not move gives 0."""
    x = (_clips(clips) + 1) / 2
    bg = object_mask(clips) < 0.05                                          # (N, frames, H, W)
    both = (bg[:, 1:] & bg[:, :-1]).unsqueeze(2).to(x.dtype)                # (N, frames-1, 1, H, W)
    diff = (x[:, 1:] - x[:, :-1]).abs() * both
    return diff.sum((1, 2, 3, 4)) / (3 * both.sum((1, 2, 3, 4))).clamp(min=1)


def motion_report(clips: torch.Tensor, captions) -> dict[str, torch.Tensor]:
    """Per clip ``(N,)``: ``direction`` / ``speed`` / ``motion`` (bool: the tracked object moves
    the caption's way, at its speed, both), ``wobble`` (pixels) and ``flicker`` (see above)."""
    clips = _clips(clips)
    if len(captions) != len(clips):
        raise ValueError(f"need one caption per clip: {len(captions)} captions for {len(clips)} clips")
    want = caption_labels(list(captions))
    fit = fit_motion(object_centroids(clips))
    got = read_motion(fit["velocity"], size=clips.shape[-1])
    d, s = got["direction"] == want["direction"], got["speed"] == want["speed"]
    return {"direction": d, "speed": s, "motion": d & s, "wobble": fit["wobble"],
            "flicker": background_flicker(clips)}


def same_in_every_frame(labels: dict[str, torch.Tensor], frames: int, keys=("shape", "colour", "size")
                        ) -> torch.Tensor:
    """Identity kept, per clip ``(N,)`` bool: per-frame labels ``{key: (N * frames,)}`` (e.g. a
    judge's reading of every frame, frame-major within a clip) are the same in all frames."""
    checks.positive_int(frames, "frames")
    out = None
    for k in keys:
        v = labels[k]
        if len(v) % frames:
            raise ValueError(f"labels[{k!r}] has {len(v)} entries, not whole clips of {frames} frames")
        v = v.view(-1, frames)
        same = (v == v[:, :1]).all(1)
        out = same if out is None else out & same
    return out


# --- showing clips ------------------------------------------------------------------------------

def play(rows: dict[str, torch.Tensor], title: str, interval_ms: int = 250, scale: int = 3):
    """Clips as an animation that plays in the HTML book with no kernel (:func:`lib.viz.scrub`):
    ``rows`` maps a label to clips ``(n, frames, 3, H, W)`` (the same ``n`` and ``frames`` in every
    row); frame ``f`` of the animation shows frame ``f`` of every clip, one row per label."""
    from . import viz
    if not rows:
        raise ValueError("play() needs at least one row of clips")
    rows = {k: _clips(v, f"rows[{k!r}]").detach().cpu() for k, v in rows.items()}
    shapes = {tuple(v.shape[:2]) for v in rows.values()}
    if len(shapes) != 1:
        raise ValueError(f"every row must hold the same number of clips and frames, got {sorted(shapes)}")
    frames = shapes.pop()[1]
    figs = [viz.rows_frame({k: v[:, f] for k, v in rows.items()}, title=title, scale=scale) for f in range(frames)]
    return viz.scrub(figs, [f"frame {f + 1} / {frames}" for f in range(frames)], title=title,
                     interval_ms=interval_ms)
