"""One small training loop with a progress bar, and checkpoints (introduced in chapter 1).

The loop is deliberately generic: you give it a ``step(i)`` function that does
one optimisation step and returns its losses, so the same loop trains a
classifier, a diffusion model or a GAN (whose step updates two networks).

    def step(i):
        x, y = next(batches)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        return {"loss": loss}

    history = train_loop(step, steps=2000, desc="classifier")
    history["loss"]  # one float per step, ready to plot
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from . import runtime


def _as_float(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def train_loop(step: Callable[[int], dict | float | torch.Tensor], steps: int, desc: str = "train",
               postfix_every: int = 25) -> dict[str, list[float]]:
    """Call ``step(i)`` for ``i = 0 .. steps-1`` and return the loss history.

    ``step`` returns a float/0-d tensor (recorded as ``"loss"``) or a dict of
    them. A progress bar (``tqdm.auto``) is shown in interactive use; under the
    smoke profile it is silent and in the static book build it prints one
    summary line. A NaN or infinite loss stops training with
    ``FloatingPointError`` instead of going on to plot garbage.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    history: dict[str, list[float]] = {}
    quiet = runtime.is_smoke() or runtime.static()
    if quiet:
        bar = None
        it = range(steps)
    else:
        from tqdm.auto import tqdm
        bar = tqdm(range(steps), desc=desc, leave=True)
        it = bar
    t0 = time.perf_counter()
    for i in it:
        out = step(i)
        losses = out if isinstance(out, dict) else {"loss": out}
        for k, v in losses.items():
            v = _as_float(v)
            if not math.isfinite(v):
                raise FloatingPointError(
                    f"{desc}: loss {k!r} became {v} at step {i}; training diverged "
                    "(try a smaller learning rate or check the inputs' value range)")
            history.setdefault(k, []).append(v)
        if bar is not None and (i % postfix_every == 0 or i == steps - 1):
            bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.items()})
    if bar is not None:
        bar.close()
    elif runtime.static():
        last = ", ".join(f"{k} {v[-1]:.4g}" for k, v in history.items())
        print(f"{desc}: {steps} steps in {time.perf_counter() - t0:.1f} s; final {last}", file=sys.stdout)
    return history


def batches(*tensors: torch.Tensor, batch_size: int, generator: torch.Generator | None = None,
            device: torch.device | None = None) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless shuffled minibatches over tensors that share their first dimension.

    Yields tuples of tensors of shape ``(batch_size, ...)`` (moved to ``device``).
    Each pass over the data is a fresh permutation drawn from ``generator``.
    """
    if not tensors:
        raise ValueError("batches() needs at least one tensor")
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"all tensors must share their first dimension, got {[tuple(t.shape) for t in tensors]}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n - batch_size + 1, batch_size):
            idx = perm[s:s + batch_size]
            yield tuple(t[idx].to(device) if device is not None else t[idx] for t in tensors)


def save_checkpoint(path: str | Path, model: torch.nn.Module, config: dict) -> Path:
    """Save ``model``'s weights with the ``config`` that built it (plain types only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # atomic: parallel writers never leave half a file
    torch.save({"config": dict(config), "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module, config: dict) -> torch.nn.Module:
    """Load weights saved by :func:`save_checkpoint` into ``model``.

    The checkpoint is read with ``weights_only=True`` (no arbitrary code runs),
    and refused with ``ValueError`` when its stored config differs from
    ``config``: a mismatched checkpoint must not load silently.
    """
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a checkpoint written by save_checkpoint")
    if ckpt["config"] != dict(config):
        diff = {k: (ckpt["config"].get(k), config.get(k)) for k in set(ckpt["config"]) | set(config)
                if ckpt["config"].get(k) != config.get(k)}
        raise ValueError(f"checkpoint {path} was saved with a different config (saved, wanted): {diff}")
    model.load_state_dict(ckpt["state_dict"])
    return model
