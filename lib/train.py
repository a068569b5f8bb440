"""Training: :func:`fit` for one network, the bare :func:`train_loop`, batches, checkpoints.

:func:`fit` is everything around a loss that is not the lesson: the optimiser,
the learning-rate schedule, gradient clipping, an EMA of the weights, the
minibatches, the progress bar and the history, evaluation with early stopping
and best-state keeping. A notebook writes the loss; ``fit`` does the rest::

    run = train.fit(model, lambda xb, yb: F.cross_entropy(model(xb), yb),
                    (x_train, y_train), steps=2000, batch_size=128, lr=1e-3,
                    generator=torch.Generator().manual_seed(0))
    viz.plot_history(run.history)

:func:`train_loop` is the loop underneath, for what ``fit`` does not cover (a
game between two networks): you give it a ``step(i)`` function that does one
optimisation step and returns its losses, so the same loop trains a
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

import copy
import math
import os
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from . import checks, nets, runtime


def _as_float(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def train_loop(step: Callable[[int], dict | float | torch.Tensor], steps: int, desc: str = "train",
               postfix_every: int = 25,
               should_stop: Callable[[], bool] | None = None) -> dict[str, list[float]]:
    """Call ``step(i)`` for ``i = 0 .. steps-1`` and return the loss history.

    ``step`` returns a float/0-d tensor (recorded as ``"loss"``) or a dict of
    them. A progress bar (``tqdm.auto``) is shown in interactive use; under the
    smoke profile it is silent and in the static book build it prints one
    summary line. A NaN or infinite loss stops training with
    ``FloatingPointError`` instead of going on to plot garbage.
    ``should_stop()``, if given, is asked after every step; ``True`` ends the
    loop early (early stopping).
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
    done = 0
    for i in it:
        out = step(i)
        done = i + 1
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
        if should_stop is not None and should_stop():
            break
    if bar is not None:
        bar.close()
    elif runtime.static():
        last = ", ".join(f"{k} {v[-1]:.4g}" for k, v in history.items())
        line = f"{desc}: {done} steps in {time.perf_counter() - t0:.1f} s; final {last}"
        # one summary, wrapped to the book's 88-character column
        print(textwrap.fill(line, 88, subsequent_indent="    ", break_on_hyphens=False), file=sys.stdout)
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


# --- fit: one network, one loss ------------------------------------------------------------

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "cosine")


@dataclass
class Fit:
    """What :func:`fit` returns.

    ``history``: one float per step for every entry the loss returned (``viz.plot_history``
    plots it). ``model``: the network that was evaluated and is meant for use afterwards
    (``ema.model`` when an EMA was kept, else the trained model). ``opt``, ``scheduler``,
    ``ema`` and ``batches`` are the live objects, so a second ``fit`` call can go on where
    this one stopped. ``evals``: ``(step, value)`` for each evaluation; ``best_step``,
    ``best_value`` and ``best_state`` (a copy of ``model.state_dict()``) the best one when
    ``keep_best`` was set; ``steps``: the number of steps actually run (fewer than asked
    after early stopping).
    """

    history: dict[str, list[float]]
    model: nn.Module | None
    opt: torch.optim.Optimizer
    scheduler: Any = None
    ema: nets.EMA | None = None
    batches: Any = None
    evals: list[tuple[int, float]] = field(default_factory=list)
    best_step: int | None = None
    best_value: float = math.inf
    best_state: dict | None = None
    steps: int = 0

    def best_model(self) -> nn.Module:
        """A copy of ``model`` holding the best evaluated weights (``model`` itself is untouched)."""
        if self.best_state is None:
            raise ValueError("no best state was kept: call fit(..., eval_fn=..., keep_best=True)")
        best = copy.deepcopy(self.model)
        best.load_state_dict(self.best_state)
        return best


def _make_opt(opt, params, lr, weight_decay, betas):
    if isinstance(opt, torch.optim.Optimizer):
        if lr is not None:  # go on with the same optimiser (and its moments) at a new rate
            for group in opt.param_groups:
                group["lr"] = lr
                group.pop("initial_lr", None)
        return opt
    checks.choice(opt, OPTIMIZERS, "optimiser")
    lr = 1e-3 if lr is None else lr
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    extra = {} if betas is None or opt == "sgd" else {"betas": betas}
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[opt]
    return cls(params, lr=lr, weight_decay=weight_decay, **extra)


def _make_schedule(schedule, opt, steps, pct_start):
    if schedule is None:
        return None
    if callable(schedule):
        return schedule(opt)
    checks.choice(schedule, SCHEDULES, "schedule")
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    max_lr = [g["lr"] for g in opt.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr if len(max_lr) > 1 else max_lr[0],
                                               total_steps=steps, pct_start=pct_start)


def _make_batches(data, batch_size, generator, device):
    """Turn ``data`` into a function that returns the next batch (a tuple, or None)."""
    if data is None:
        return None, lambda: None
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, (tuple, list)):
        if batch_size is None:
            raise ValueError("fit() on tensors needs batch_size")
        stream = batches(*data, batch_size=batch_size, generator=generator, device=device)
        return stream, lambda: next(stream)
    if batch_size is not None:
        raise ValueError("batch_size is only for tensors; an iterator or function makes its own batches")
    if hasattr(data, "__next__"):
        return data, lambda: next(data)
    if callable(data):
        return data, data
    raise TypeError(f"data must be tensors, an iterator of batches, a function or None, got {type(data).__name__}")


def fit(model: nn.Module | list, loss_fn: Callable, data=None, steps: int = 1000, *,
        batch_size: int | None = None, generator: torch.Generator | None = None,
        device: torch.device | None = None, opt: str | torch.optim.Optimizer = "adam",
        lr: float | None = None, weight_decay: float = 0.0, betas: tuple[float, float] | None = None,
        schedule: str | Callable | None = None, pct_start: float = 0.3, clip_grad: float | None = None,
        ema: float | nets.EMA | None = None, loss_key: str = "loss",
        after_step: Callable[[int, Any], None] | None = None,
        eval_fn: Callable[[nn.Module], float] | None = None, eval_every: int | None = None,
        patience: int | None = None, keep_best: bool = False, restore_best: bool = False,
        desc: str = "train") -> Fit:
    """Minimise ``loss_fn`` over ``steps`` optimiser steps; return a :class:`Fit`.

    ``model``: the ``nn.Module`` to train (or a list of tensors to optimise, e.g. a latent).
    ``data`` and ``loss_fn`` work together; every step draws one batch and calls the loss on it:

    * tensors ``(x, y, ...)`` (or one tensor): shuffled minibatches of ``batch_size`` from
      :func:`batches` (permutations drawn from ``generator``, moved to ``device``);
      ``loss_fn(xb, yb, ...)``;
    * an iterator of batches (e.g. a :func:`batches` stream you keep), or a function that
      returns a batch: ``loss_fn(*batch)`` for a tuple, ``loss_fn(batch)`` otherwise;
    * ``None``: ``loss_fn()`` (full-batch fits, or losses that draw their own samples).

    ``loss_fn`` returns a 0-d loss, or a dict of 0-d tensors whose ``loss_key`` entry is
    minimised; every entry goes into the history. One step is
    ``zero_grad; backward; clip_grad_norm_ (if clip_grad); opt.step; scheduler.step;
    ema.update; after_step(i, batch)``, then every ``eval_every`` steps
    ``eval_fn(model)`` (under ``no_grad``; lower is better) on the EMA model if there is
    one. ``opt``: ``"adam"``, ``"adamw"``, ``"sgd"`` (built with ``lr`` (default 1e-3),
    ``weight_decay`` and ``betas``) or an optimiser to go on with (``lr``, if given,
    replaces its rate). ``schedule``: ``"onecycle"`` (peak ``lr``, warm-up ``pct_start``),
    ``"cosine"`` (to 0 over ``steps``), a function ``opt -> scheduler``, or ``None``
    (constant). ``ema``: a decay (a :class:`lib.nets.EMA` is made) or an EMA to update.
    ``patience``: stop after that many evaluations without a new best. ``keep_best``
    keeps a copy of the best weights; ``restore_best`` also loads them into the model at
    the end.

    Example (a PixelCNN with a one-cycle schedule)::

        run = train.fit(pixelcnn, lambda x: -pixelcnn.log_prob(x).mean(), x_train,
                        steps=800, batch_size=64, lr=3e-3, schedule="onecycle",
                        pct_start=0.1, generator=torch.Generator().manual_seed(0))
        run.history["loss"][-1]
    """
    checks.positive_int(steps, "steps")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if isinstance(model, nn.Module):
        params, module = list(model.parameters()), model
    elif isinstance(model, (list, tuple)) and model and all(isinstance(p, torch.Tensor) for p in model):
        params, module = list(model), None
    else:
        raise TypeError("model must be an nn.Module or a non-empty list of tensors to optimise")
    if module is None and (ema is not None or eval_fn is not None):
        raise ValueError("ema and eval_fn need an nn.Module, not a list of tensors")
    if eval_fn is None and (eval_every is not None or patience is not None or keep_best or restore_best):
        raise ValueError("eval_every, patience, keep_best and restore_best need an eval_fn")
    if eval_fn is not None:
        checks.positive_int(eval_every, "eval_every")
    if patience is not None:
        checks.positive_int(patience, "patience")
    if clip_grad is not None and not clip_grad > 0:
        raise ValueError(f"clip_grad must be > 0, got {clip_grad}")
    if not 0 < pct_start < 1:
        raise ValueError(f"pct_start must lie in (0, 1), got {pct_start}")
    keep_best = keep_best or restore_best
    stream, draw = _make_batches(data, batch_size, generator, device)
    optimizer = _make_opt(opt, params, lr, weight_decay, betas)
    scheduler = _make_schedule(schedule, optimizer, steps, pct_start)
    if ema is not None and not isinstance(ema, nets.EMA):
        ema = nets.EMA(module, ema)
    run = Fit(history={}, model=ema.model if ema is not None else module, opt=optimizer,
              scheduler=scheduler, ema=ema, batches=stream)
    stale = [0]

    def step(i):
        batch = draw()
        out = loss_fn() if batch is None else loss_fn(*batch) if isinstance(batch, tuple) else loss_fn(batch)
        if isinstance(out, dict):
            if loss_key not in out:
                raise ValueError(f"loss_fn returned the keys {sorted(out)}; fit minimises {loss_key!r} (loss_key)")
            loss = out[loss_key]
        else:
            loss, out = out, {loss_key: out}
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise ValueError(f"the loss must be a 0-d tensor, got {type(loss).__name__} "
                             f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}")
        optimizer.zero_grad()
        loss.backward()
        if clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_grad)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update(module)
        if after_step is not None:
            after_step(i, batch)
        if eval_fn is not None and (i + 1) % eval_every == 0:
            with torch.no_grad():
                value = float(eval_fn(run.model))
            run.evals.append((i + 1, value))
            if value < run.best_value:
                run.best_step, run.best_value, stale[0] = i + 1, value, 0
                if keep_best:
                    run.best_state = copy.deepcopy(run.model.state_dict())
            else:
                stale[0] += 1
        run.steps = i + 1
        return out

    run.history = train_loop(step, steps, desc=desc,
                             should_stop=lambda: patience is not None and stale[0] >= patience)
    if restore_best and run.best_state is not None:
        run.model.load_state_dict(run.best_state)
    return run


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
