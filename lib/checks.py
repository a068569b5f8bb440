"""Input validation shared by every module (introduced in chapter 1).

Each helper raises ``ValueError`` (wrong shape, range, option) or ``TypeError``
(wrong type) with a message that says what was expected, so a student who
passes an image in 0..255 where -1..1 is expected gets told so instead of
seeing a silently wrong picture.
"""
from __future__ import annotations

import math

import torch


def tensor(x, name: str = "x") -> torch.Tensor:
    """Return ``x`` if it is a ``torch.Tensor``; raise ``TypeError`` otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def shape(x: torch.Tensor, dims: tuple, name: str = "x") -> torch.Tensor:
    """Check ``x.shape`` against ``dims``; ``None`` in ``dims`` matches any size.

    >>> shape(torch.zeros(5, 2), (None, 2))  # doctest: +ELLIPSIS
    tensor(...)
    """
    tensor(x, name)
    if x.dim() != len(dims) or any(d is not None and d != s for d, s in zip(dims, x.shape)):
        want = "(" + ", ".join("N" if d is None else str(d) for d in dims) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    return x


def value_range(x: torch.Tensor, lo: float, hi: float, name: str = "x", tol: float = 1e-4) -> torch.Tensor:
    """Check that every value of ``x`` lies in ``[lo, hi]`` (up to ``tol``) and is finite."""
    tensor(x, name)
    if x.numel() == 0:
        return x
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    mn, mx = float(x.min()), float(x.max())
    if mn < lo - tol or mx > hi + tol:
        hint = ""
        if hi <= 1 and mx > 1.5:
            hint = f" (it looks like 0..255 pixels: {_rescale_hint(lo, hi)})"
        raise ValueError(f"{name} must have values in [{lo:g}, {hi:g}], got [{mn:.3g}, {mx:.3g}]{hint}")
    return x


def _rescale_hint(lo: float, hi: float) -> str:
    """How to bring 0..255 pixels into ``[lo, hi]``, in words."""
    if (lo, hi) == (0, 1):
        return "divide by 255 for [0, 1]"
    if (lo, hi) == (-1, 1):
        return "divide by 127.5 and subtract 1 for [-1, 1]"
    return f"x / 255 * {hi - lo:g} + {lo:g} maps them to [{lo:g}, {hi:g}]"


def images(x: torch.Tensor, channels: int | None = None, lo: float = -1.0, hi: float = 1.0,
           name: str = "images", size: int | tuple | None = None) -> torch.Tensor:
    """Check an image batch: shape ``(N, C, H, W)``, ``C == channels``, values in ``[lo, hi]``.

    ``size`` (an int or ``(H, W)``) additionally fixes the spatial size.
    """
    tensor(x, name)
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s), got {x.shape[1]} (shape {tuple(x.shape)})")
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(x.shape[-2:]) != hw:
            raise ValueError(f"{name} must be {hw[0]}x{hw[1]} pixels, got {tuple(x.shape[-2:])}")
    return value_range(x, lo, hi, name)


def binary(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Check that ``x`` holds only 0s and 1s."""
    tensor(x, name)
    if not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{name} must be binary (only 0 and 1); binarise it first, e.g. (x > 0).float()")
    return x


def choice(value, options, name: str = "option"):
    """Check that ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(map(str, options))}")
    return value


def positive_int(n, name: str = "n") -> int:
    """Check that ``n`` is an integer >= 1."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n}")
    return n


def probability(p, name: str = "p") -> float:
    """Check that ``p`` is a number in ``[0, 1]``."""
    if not isinstance(p, (int, float)) or isinstance(p, bool):
        raise TypeError(f"{name} must be a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return float(p)


def floating(x, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a floating-point tensor (an integer or bool tensor would truncate
    the arithmetic done on it, e.g. ``sqrt(alpha_bar) * x`` rounded towards 0)."""
    tensor(x, name)
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype} "
                        f"(convert it first, e.g. {name}.float())")
    return x


def nonempty(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Check that the batch ``x (N, ...)`` holds at least one example (``N >= 1``)."""
    tensor(x, name)
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty batch (N, ...) with N >= 1, got shape {tuple(x.shape)}")
    return x


def finite(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Check that every value of ``x`` is finite (no NaN, no +-inf)."""
    tensor(x, name)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, but it contains NaN or infinite values")
    return x


def timestep_tensor(t, T: int, first: int = 1, name: str = "t") -> torch.Tensor:
    """Check that ``t`` is an integer tensor of diffusion time steps in ``first .. T``."""
    tensor(t, name)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer time steps ({first} .. T = {T}), got dtype {t.dtype}")
    if t.numel() and (t.min() < first or t.max() > T):
        raise ValueError(f"time steps must lie in {first} .. T = {T}, got [{int(t.min())}, {int(t.max())}]")
    return t


def nonnegative(v, name: str = "value") -> float:
    """Check that ``v`` is a finite number ``>= 0`` (e.g. a guidance scale)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise TypeError(f"{name} must be a finite number >= 0, got {type(v).__name__} {v!r}")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return float(v)
