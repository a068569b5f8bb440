"""Self-checks for the book's exercises: a verdict for the student, never the solution.

Every exercise whose answer can be computed has a *checker*, registered under the
exercise's label (``ch01-ridge``, ...) in the chapter module that defines it
(:mod:`lib.exercises.ch01`, ...). After the exercise, the notebook calls::

    exercises.check("ch01-ridge", x_train=x_train, rank=rank, test_loglik=test_loglik)

with the student's own answer (and the notebook inputs the answer was computed
from). The checker tests *properties* of the answer -- a shape, a range, a value
within a tolerance of the reference recomputed from the same inputs, a monotone
trend, a figure beating a baseline -- so that every correct answer passes, not only
the one in the hidden solution. It prints one line:

    [ch01-ridge] on track: ...what was verified...
    [ch01-ridge] not yet: ...a hint at the idea, not at the code...

and returns a :class:`Verdict` (truthy when on track). Answers of the wrong *kind*
(a missing keyword, a string where a number belongs) raise ``TypeError`` /
``ValueError`` at once, as everywhere in ``lib``.

``WORKBOOK_CHECKS=strict`` (set by ``make book``, ``make test`` and ``make bench``)
turns a "not yet" into an :class:`ExerciseNotPassed` error: the book's own
reference solutions must pass their checks in every profile.

A checker is a function of keyword arguments that returns a short description of
what it verified, and calls :func:`expect` (or the helpers below) for each
property, each with its hint.
"""

from __future__ import annotations

import inspect
import math
import os
import textwrap
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping
from itertools import pairwise

import torch

from .. import metrics

__all__ = [
    "ExerciseNotPassed",
    "NotYet",
    "Verdict",
    "check",
    "checker",
    "keyed",
    "close",
    "expect",
    "labels",
    "module",
    "module_device",
    "monotone",
    "nearest_distance",
    "not_a_copy",
    "number",
    "numbers",
]

_CHECKERS: dict[str, Callable[..., str]] = {}


WIDTH = 88  # characters in a line of the book's column (ruff.toml's line length)


class NotYet(Exception):
    """Raised inside a checker: the answer does not have a property; ``args[0]`` is the hint."""


class ExerciseNotPassed(AssertionError):
    """A check failed under ``WORKBOOK_CHECKS=strict`` (the book's reference solutions)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`check`: ``ok`` and the line that was printed."""

    label: str
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        """The verdict as printed: wrapped to the book's column (``WIDTH`` characters), so
        that no output line scrolls sideways in the HTML book."""
        text = f"[{self.label}] {'on track' if self.ok else 'not yet'}: {self.message}"
        return "\n".join(
            textwrap.fill(line, WIDTH, subsequent_indent="  ", break_long_words=False,
                          break_on_hyphens=False) or line
            for line in text.splitlines()
        )

    def _ipython_display_(self) -> None:
        # check() has printed the verdict already; a cell ending in check(...) shows it once.
        pass


def checker(label: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register ``fn`` as the checker of exercise ``label`` (one per label)."""

    def register(fn: Callable[..., str]) -> Callable[..., str]:
        if label in _CHECKERS:
            raise ValueError(f"exercise {label!r} already has a checker")
        _CHECKERS[label] = fn
        return fn

    return register


def labels() -> list[str]:
    """The labels of every exercise that has a checker, sorted."""
    return sorted(_CHECKERS)


def check(label: str, /, **answer) -> Verdict:
    """Check the answer to exercise ``label``; print and return the :class:`Verdict`.

    ``answer`` holds the keyword arguments the exercise's check cell names. An unknown
    label, a missing or unexpected keyword raise ``ValueError`` / ``TypeError``.
    """
    if not isinstance(label, str):
        raise TypeError(
            f"label must be an exercise label such as 'ch01-ridge', got {type(label).__name__}"
        )
    if label not in _CHECKERS:
        raise ValueError(
            f"no check for exercise {label!r}; exercises with checks: {', '.join(labels())}"
        )
    fn = _CHECKERS[label]
    params = inspect.signature(fn).parameters
    wanted = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
    required = [n for n in wanted if params[n].default is inspect.Parameter.empty]
    missing = [n for n in required if n not in answer]
    extra = [n for n in answer if n not in wanted]
    if missing or extra:
        raise TypeError(
            f"check({label!r}, ...) takes the keywords {', '.join(wanted)}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
        )
    try:
        verdict = Verdict(label, True, fn(**answer))
    except NotYet as e:
        verdict = Verdict(label, False, str(e.args[0]) if e.args else "not yet")
    print(verdict)
    if (
        not verdict.ok
        and os.environ.get("WORKBOOK_CHECKS", "").strip().lower() == "strict"
    ):
        raise ExerciseNotPassed(str(verdict))
    return verdict


# --- property helpers used by the checkers -------------------------------------------


def expect(condition, hint: str) -> None:
    """Raise :class:`NotYet` with ``hint`` unless ``condition`` holds."""
    if not bool(condition):
        raise NotYet(hint)


def keyed(d, name: str, keys: Iterable, what: str | None = None) -> dict:
    """``d`` as a dict whose keys are exactly ``keys`` (``what``: what each value is, for the
    message); ``TypeError`` for another kind of object, ``ValueError`` for other keys."""
    keys = list(keys)
    want = f"a dict with exactly the keys {', '.join(map(repr, keys))}" + (f" ({what})" if what else "")
    if not isinstance(d, Mapping):
        raise TypeError(f"{name} must be {want}, got {type(d).__name__}")
    if set(d) != set(keys):
        raise ValueError(f"{name} must be {want}, got the keys {', '.join(map(repr, d))}")
    return dict(d)


def module(x, name: str) -> torch.nn.Module:
    """``x`` if it is a ``torch.nn.Module`` (a network the answer hands in); ``TypeError`` otherwise."""
    if not isinstance(x, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(x).__name__}")
    return x


def module_device(net: torch.nn.Module) -> torch.device:
    """The device of ``net``'s parameters (the CPU for a network without parameters)."""
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def number(x, name: str) -> float:
    """``x`` as a finite Python float (a number, 0-d tensor or array); NaN/inf is "not yet"."""
    if isinstance(x, bool) or x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a number, got {type(x).__name__}")
    try:
        value = float(torch.as_tensor(x, dtype=torch.float64).reshape(()))
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(
            f"{name} must be a single number, got {type(x).__name__}"
        ) from e
    expect(
        math.isfinite(value),
        f"{name} is {value}: a NaN or infinity means "
        "something diverged or divided by zero before the answer was computed",
    )
    return value


def numbers(x, name: str, length: int | None = None) -> torch.Tensor:
    """``x`` (a sequence, array or tensor of numbers) as a 1-d float64 tensor, all finite."""
    if isinstance(x, Mapping):
        raise TypeError(
            f"{name} must be a sequence of numbers, got a mapping (pass its values)"
        )
    try:
        t = torch.as_tensor(
            list(x) if not torch.is_tensor(x) else x, dtype=torch.float64
        ).flatten()
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(
            f"{name} must be a sequence of numbers, got {type(x).__name__}"
        ) from e
    if length is not None and t.numel() != length:
        raise ValueError(f"{name} must hold {length} numbers, got {t.numel()}")
    expect(
        bool(torch.isfinite(t).all()),
        f"{name} holds a NaN or infinity: something diverged",
    )
    return t


def close(
    value: float, reference: float, hint: str, rtol: float = 0.05, atol: float = 0.0
) -> None:
    """Expect ``|value - reference| <= atol + rtol * |reference|``."""
    expect(abs(value - reference) <= atol + rtol * abs(reference), hint)


def monotone(
    values: Iterable[float], hint: str, increasing: bool = True, tol: float = 0.0
) -> None:
    """Expect ``values`` to rise (or fall) step by step, allowing each step to go back by ``tol``."""
    v = [float(a) for a in values]
    steps = [b - a for a, b in pairwise(v)]
    expect(all((s if increasing else -s) >= -tol for s in steps), hint)


def nearest_distance(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Euclidean distance from each row of ``x`` (flattened) to its nearest row of ``reference``
    (:func:`lib.metrics.nearest_neighbours`)."""
    return metrics.nearest_neighbours(torch.as_tensor(x), torch.as_tensor(reference))[0]


def not_a_copy(
    samples: torch.Tensor,
    train: torch.Tensor,
    held_out: torch.Tensor,
    hint: str,
    factor: float = 0.5,
) -> tuple[float, float]:
    """Expect samples to be no closer to the training set than ``factor`` times held-out real data is.

    Returns the two median nearest-training-neighbour distances (samples, held-out).
    """
    d_s = nearest_distance(samples, train).median().item()
    d_h = nearest_distance(held_out, train).median().item()
    expect(d_s >= factor * d_h, hint)
    return d_s, d_h


def _register_chapters() -> None:
    """Import every chapter module (``ch01.py``, ...): each registers its checkers."""
    import importlib
    import pkgutil

    for m in pkgutil.iter_modules(__path__):
        if m.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{m.name}")


_register_chapters()
