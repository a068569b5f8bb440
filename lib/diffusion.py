"""Gaussian diffusion: schedules, the forward process, the training loss, samplers, guidance
(introduced in chapter 5; chapters 9 and 10 reuse the samplers and the guidance helper).

Notation. The lecture writes the forward step as ``x_t = a x_{t-1} + eps``, ``eps ~ N(0, b)``
and the reverse step as ``x_{t-1} ~ N(f_theta(x_t), c)``. Ho, Jain & Abbeel (2020) set

    a = sqrt(1 - beta_t),   b = beta_t,   c = beta_t  or  beta_tilde_t,

with a *schedule* ``beta_1 .. beta_T`` in (0, 1). Then, with ``alpha_t = 1 - beta_t`` and
``alpha_bar_t = alpha_1 * ... * alpha_t``, the chain can be jumped in one shot:

    q(x_t | x_0) = N( sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I ).

Time steps are the paper's: ``t = 1 .. T`` (``x_0`` is data, ``x_T`` is almost pure noise).
Every per-step array of a :class:`Schedule` has length ``T + 1`` and is indexed by ``t``
directly; entry 0 is the "no noise yet" convention ``beta_0 = 0``, ``alpha_bar_0 = 1``.

A denoiser is any callable ``model(x_t, t)`` (or ``model(x_t, t, y)`` with a condition)
taking ``x_t (N, ...)`` and integer steps ``t (N,)`` in ``1 .. T`` and returning the
predicted noise ``eps_hat`` with the shape of ``x_t`` (the "eps-prediction" of Ho et al.).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import torch

from . import checks

VARIANCES = ("beta", "beta_tilde")


# --- schedules ----------------------------------------------------------------------------

@dataclass
class Schedule:
    """A noise schedule and the quantities derived from it (float64, each of length ``T + 1``).

    ``betas[t]`` = beta_t, ``alphas[t]`` = 1 - beta_t, ``alpha_bars[t]`` = prod_{s<=t} alpha_s,
    ``beta_tildes[t]`` = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t (the variance of the
    true posterior ``q(x_{t-1} | x_t, x_0)``), all with the index-0 entry meaning "no noise".
    Build one with :func:`linear_schedule`, :func:`cosine_schedule` or :func:`from_betas`.
    """
    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor
    beta_tildes: torch.Tensor
    name: str = "custom"

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return len(self.betas) - 1

    def __repr__(self) -> str:
        return (f"Schedule({self.name}, T={self.T}, beta_1={self.betas[1]:.3g}, beta_T={self.betas[-1]:.3g}, "
                f"alpha_bar_T={self.alpha_bars[-1]:.3g})")


def from_betas(betas: torch.Tensor, name: str = "custom") -> Schedule:
    """Build a :class:`Schedule` from ``betas (T,)`` = beta_1 .. beta_T, each strictly in (0, 1).

    ``alpha_bar_t`` is the cumulative product of ``1 - beta_t``.
    """
    checks.tensor(betas, "betas")
    if betas.dim() != 1 or len(betas) < 1:
        raise ValueError(f"betas must have shape (T,) with T >= 1, got {tuple(betas.shape)}")
    b = betas.detach().double().cpu()
    if not torch.isfinite(b).all() or (b <= 0).any() or (b >= 1).any():
        raise ValueError(f"every beta_t must lie strictly in (0, 1), got range [{b.min():.3g}, {b.max():.3g}]")
    betas = torch.cat([torch.zeros(1, dtype=torch.float64), b])      # (T+1,), betas[0] = 0
    alphas = 1 - betas
    alpha_bars = torch.cumprod(alphas, 0)                             # alpha_bars[0] = 1
    beta_tildes = torch.zeros_like(betas)
    beta_tildes[1:] = (1 - alpha_bars[:-1]) / (1 - alpha_bars[1:]) * betas[1:]
    return Schedule(betas, alphas, alpha_bars, beta_tildes, name)


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Ho et al.'s linear schedule: ``beta_t`` evenly spaced from ``beta_start`` to ``beta_end``.

    The endpoints are given for ``T = 1000``; for another ``T`` both are scaled by ``1000 / T``
    (as in Nichol & Dhariwal 2021), so that the total noise added, and hence ``alpha_bar_T``
    (about 4e-5), stays the same. Unscaled, ``T = 50`` would leave ``alpha_bar_T = 0.60``:
    ``x_T`` would still be mostly signal, not the ``N(0, I)`` that sampling starts from.
    """
    checks.positive_int(T, "T")
    scale = 1000 / T
    lo, hi = beta_start * scale, beta_end * scale
    if not 0 < lo <= hi < 1:
        raise ValueError(f"scaled betas must satisfy 0 < beta_start <= beta_end < 1, got {lo:.3g} .. {hi:.3g} "
                         f"(T={T} is too small for these endpoints)")
    betas = torch.linspace(lo, hi, T, dtype=torch.float64) if T > 1 else torch.tensor([hi], dtype=torch.float64)
    return from_betas(betas, f"linear({lo:.3g}..{hi:.3g})")


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal's cosine schedule: ``alpha_bar(t) = f(t)/f(0)``, ``f(t) = cos^2(pi/2 (t/T + s)/(1 + s))``.

    ``beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}``, clipped at ``max_beta`` (the last steps
    would otherwise have beta = 1). Adds noise more gently at small ``t`` than the linear one.
    """
    checks.positive_int(T, "T")
    if not 0 < max_beta < 1:
        raise ValueError(f"max_beta must lie in (0, 1), got {max_beta}")
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = (1 - abar[1:] / abar[:-1]).clamp(min=1e-8, max=max_beta)
    return from_betas(betas, "cosine")


# --- helpers ------------------------------------------------------------------------------

def _steps(sched: Schedule, t, n: int, device) -> torch.Tensor:
    """``t`` (an int or an int tensor (n,)) -> a long tensor (n,) checked to lie in 1 .. T."""
    if isinstance(t, bool):
        raise TypeError("t must be an int or an integer tensor, got bool")
    if isinstance(t, int):
        t = torch.full((n,), t, dtype=torch.long)
    checks.timestep_tensor(t, sched.T, first=1, name="t")
    if t.dim() != 1 or len(t) != n:
        raise ValueError(f"t must be an int or have shape ({n},), got {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.long)


def _gather(values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``values[t]`` reshaped to ``(N, 1, ..., 1)`` to broadcast against ``x (N, ...)``."""
    v = values.to(x.device)[t.to(x.device)].to(x.dtype)
    return v.reshape(len(t), *([1] * (x.dim() - 1)))


def _data(x: torch.Tensor, name: str) -> torch.Tensor:
    """Check data ``x (N, ...)``: floating point (an integer ``x0`` would truncate
    ``sqrt(alpha_bar_t)`` to 0), ``N >= 1``, finite; images ``(N, C, H, W)`` must lie in
    [-1, 1] (2-D points may not)."""
    checks.floating(x, name)
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (N, D) or (N, C, H, W), got {tuple(x.shape)}")
    checks.nonempty(x, name)
    if x.dim() == 4:
        checks.value_range(x, -1, 1, name)
    else:
        checks.finite(x, name)
    return x


def _state(x: torch.Tensor, name: str) -> torch.Tensor:
    """Check a noisy state ``x_t (N, ...)``: a non-empty floating-point batch (any range)."""
    checks.floating(x, name)
    return checks.nonempty(x, name)


def _like(a: torch.Tensor, ref: torch.Tensor, name: str, ref_name: str) -> torch.Tensor:
    """Check that ``a`` is a floating-point tensor with the shape of ``ref``."""
    checks.floating(a, name)
    if a.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(a.shape)}")
    return a


def _call(model: Callable, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
    out = model(x, t) if y is None else model(x, t, y)
    if out.shape != x.shape:
        raise ValueError(f"the denoiser must return eps of shape {tuple(x.shape)}, got {tuple(out.shape)}")
    return out


# --- forward process ----------------------------------------------------------------------

def q_step(sched: Schedule, x_prev: torch.Tensor, t, noise: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One forward step, the lecture's ``x_t = a x_{t-1} + eps``, ``eps ~ N(0, b)``, with
    ``a = sqrt(1 - beta_t)``, ``b = beta_t``. ``x_prev (N, ...)``, ``t`` int or ``(N,)`` in 1..T.

    No range check on ``x_prev``: intermediate ``x_t`` leave [-1, 1].
    """
    _state(x_prev, "x_prev")
    t = _steps(sched, t, len(x_prev), x_prev.device)
    if noise is None:
        noise = torch.randn(x_prev.shape, generator=generator).to(x_prev)
    _like(noise, x_prev, "noise", "x_prev")
    return _gather(sched.alphas.sqrt(), t, x_prev) * x_prev + _gather(sched.betas.sqrt(), t, x_prev) * noise


def q_sample(sched: Schedule, x0: torch.Tensor, t, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Jump straight to ``x_t ~ q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``.

    ``x0 (N, ...)`` floating point (images in [-1, 1]); ``t`` int or long ``(N,)`` in 1..T; ``noise`` like ``x0``
    (drawn from ``generator`` if not given). Returns ``x_t`` with the shape of ``x0``.
    """
    _data(x0, "x0")
    t = _steps(sched, t, len(x0), x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator).to(x0)
    _like(noise, x0, "noise", "x0")
    ab = _gather(sched.alpha_bars, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def predict_x0(sched: Schedule, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """Invert the one-shot formula: ``x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``.

    With the true noise ``eps`` this returns ``x_0`` exactly (up to rounding). Shapes as ``x_t``.
    """
    _state(x_t, "x_t")
    _like(eps, x_t, "eps", "x_t")
    t = _steps(sched, t, len(x_t), x_t.device)
    ab = _gather(sched.alpha_bars, t, x_t)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def posterior_mean(sched: Schedule, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """Mean of the reverse step, the lecture's ``mu = f_theta(x_t)``, in Ho et al.'s eps form:

        mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t).

    This equals the mean of the true posterior ``q(x_{t-1} | x_t, x_0)`` with ``x_0`` replaced by
    :func:`predict_x0` -- exactly ``x_0`` at ``t = 1`` when ``eps`` is the true noise.
    """
    _state(x_t, "x_t")
    _like(eps, x_t, "eps", "x_t")
    t = _steps(sched, t, len(x_t), x_t.device)
    b, a, ab = (_gather(v, t, x_t) for v in (sched.betas, sched.alphas, sched.alpha_bars))
    return (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()


# --- training -----------------------------------------------------------------------------

def eps_loss(model: Callable, sched: Schedule, x0: torch.Tensor, t: torch.Tensor | None = None,
             y=None, noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
             reduction: str = "mean") -> torch.Tensor:
    """Ho et al.'s simplified loss ``|| eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2``.

    ``x0 (N, ...)`` data (images in [-1, 1]); ``t`` long ``(N,)`` (default: uniform on 1..T);
    ``y`` an optional condition passed as ``model(x_t, t, y)``. ``reduction="mean"`` returns a
    scalar; ``"none"`` the per-example mean squared error ``(N,)`` (to plot the loss per ``t``).
    Every ``t`` is its own supervised regression problem: *predict the noise that was added*.
    """
    checks.choice(reduction, ("mean", "none"), "reduction")
    _data(x0, "x0")
    n = len(x0)
    if t is None:
        t = torch.randint(1, sched.T + 1, (n,), generator=generator)
    t = _steps(sched, t, n, x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator).to(x0)
    x_t = q_sample(sched, x0, t, noise)
    err = (_call(model, x_t, t, y) - noise).pow(2).flatten(1).mean(1)   # (N,)
    return err.mean() if reduction == "mean" else err


def v_target(sched: Schedule, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
    """The *velocity* ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` (Salimans & Ho 2022), the
    target of a v-prediction network: it is ``eps`` at low noise and ``-x_0`` at high noise."""
    _data(x0, "x0")
    t = _steps(sched, t, len(x0), x0.device)
    _like(noise, x0, "noise", "x0")
    ab = _gather(sched.alpha_bars, t, x0)
    return ab.sqrt() * noise - (1 - ab).sqrt() * x0


def eps_from_v(sched: Schedule, x_t: torch.Tensor, t, v: torch.Tensor) -> torch.Tensor:
    """The noise a velocity implies: ``eps = sqrt(abar_t) v + sqrt(1 - abar_t) x_t``."""
    _state(x_t, "x_t")
    t = _steps(sched, t, len(x_t), x_t.device)
    _like(v, x_t, "v", "x_t")
    ab = _gather(sched.alpha_bars, t, x_t)
    return ab.sqrt() * v + (1 - ab).sqrt() * x_t


def v_to_eps(model: Callable, sched: Schedule) -> Callable:
    """Wrap a v-prediction network ``model(x_t, t[, y])`` into the noise predictor that the
    samplers (:func:`ddim_sample`, ...) expect, via :func:`eps_from_v`."""
    def eps(x, t, *y):
        return eps_from_v(sched, x, t, model(x, t, *y))
    return eps


def v_loss(model: Callable, sched: Schedule, x0: torch.Tensor, y=None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """The v-prediction loss ``|| v - v_theta(x_t, t) ||^2`` (``t`` uniform on ``1..T``, the
    mean over the batch). In terms of the clean data it weighs the error of ``x_0`` by
    ``1 + SNR(t)`` where :func:`eps_loss` weighs it by ``SNR(t)``: the high-noise steps, where
    the layout of a sample is decided, count too (Imagen Video trains this way)."""
    _data(x0, "x0")
    t = torch.randint(1, sched.T + 1, (len(x0),), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    x_t = q_sample(sched, x0, t, noise)
    return (_call(model, x_t, t, y) - v_target(sched, x0, t, noise)).pow(2).mean()


# --- samplers -----------------------------------------------------------------------------

SPACINGS = ("uniform", "quadratic")


def timesteps(T: int, steps: int, spacing: str = "uniform") -> list[int]:
    """``steps`` time steps from ``T`` down to 1 (always containing T): the subsequence a
    shortened sampler visits. ``"uniform"`` spaces them evenly,
    ``timesteps(1000, 4) == [1000, 750, 500, 250]``; ``"quadratic"`` (Song et al.'s choice for
    images in DDIM) puts ``t_i = T ((steps - i) / steps)^2``, so the small jumps fall at low
    noise, where the strokes are drawn: ``timesteps(100, 5, "quadratic") == [100, 64, 36, 16, 4]``.
    Rounded steps that collide are pushed apart, so the list is always strictly decreasing."""
    checks.positive_int(T, "T"); checks.positive_int(steps, "steps")
    checks.choice(spacing, SPACINGS, "time-step spacing")
    if steps > T:
        raise ValueError(f"steps must be at most T = {T}, got {steps}")
    if spacing == "uniform":
        return [int(round(T - i * T / steps)) for i in range(steps)]
    seq = [max(1, int(round(T * ((steps - i) / steps) ** 2))) for i in range(steps)]
    for i in range(steps - 2, -1, -1):                  # from the end: t_i > t_{i+1}
        seq[i] = max(seq[i], seq[i + 1] + 1)
    return seq


def _start(shape, generator, device, x_T):
    if x_T is not None:
        _state(x_T, "x_T")
        return checks.finite(x_T, "x_T").to(device)
    if (not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2
            or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape)):
        raise ValueError(f"shape must be a tuple (N, ...) of at least 2 positive ints, got {shape!r}")
    return torch.randn(tuple(shape), generator=generator).to(device)


@torch.no_grad()
def ddpm_sample(model: Callable, sched: Schedule, shape=None, steps: int | None = None,
                variance: str = "beta_tilde", y=None, clip_x0: bool = False,
                generator: torch.Generator | None = None, device=None, x_T: torch.Tensor | None = None,
                return_trajectory: bool = False, spacing: str = "uniform"):
    """Ancestral sampling (Ho et al. Algorithm 2): start at ``x_T ~ N(0, I)`` and repeat
    ``x_{t-1} = mu_theta(x_t, t) + sigma_t z``, ``z ~ N(0, I)`` (no noise at the last step).

    ``variance`` is the lecture's ``c``: ``"beta"`` (``sigma_t^2 = beta_t``) or ``"beta_tilde"``
    (``sigma_t^2 = beta_tilde_t``, the true posterior's variance). ``steps < T`` visits only
    :func:`timesteps` ``(T, steps, spacing)``, with the betas of the shortened chain recomputed from
    ``alpha_bar`` (``beta'_i = 1 - alpha_bar_{t_i} / alpha_bar_{t_{i+1}}``, "respacing").
    ``clip_x0`` clips the implied ``x0_hat`` to [-1, 1] before forming the mean (Ho et al.'s
    code does this for images; without clipping the two ways of writing the mean agree).

    ``shape`` ``(N, ...)`` of the samples (or pass ``x_T``); ``y`` an optional condition.
    Returns ``x_0 (N, ...)`` (images are *not* clamped), or ``(x_0, [x_T, ..., x_0])`` with the
    trajectory on the CPU when ``return_trajectory``.
    """
    checks.choice(variance, VARIANCES, "variance")
    seq = timesteps(sched.T, steps if steps is not None else sched.T, spacing) + [0]
    x = _start(shape, generator, device, x_T)
    traj = [x.cpu()] if return_trajectory else None
    for t, s in zip(seq[:-1], seq[1:]):                       # t -> s < t
        tt = torch.full((len(x),), t, dtype=torch.long, device=x.device)
        eps = _call(model, x, tt, y)
        ab_t, ab_s = float(sched.alpha_bars[t]), float(sched.alpha_bars[s])
        beta = 1 - ab_t / ab_s                                  # = beta_t when s = t - 1
        x0 = predict_x0(sched, x, tt, eps)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        # mean of q(x_s | x_t, x0_hat): a weighted average of x0_hat and x_t
        x = (math.sqrt(ab_s) * beta / (1 - ab_t)) * x0 + (math.sqrt(1 - beta) * (1 - ab_s) / (1 - ab_t)) * x
        if s > 0:
            var = beta if variance == "beta" else (1 - ab_s) / (1 - ab_t) * beta
            x = x + math.sqrt(var) * torch.randn(x.shape, generator=generator).to(x)
        if return_trajectory:
            traj.append(x.cpu())
    return (x, traj) if return_trajectory else x


@torch.no_grad()
def ddim_sample(model: Callable, sched: Schedule, shape=None, steps: int = 50, eta: float = 0.0,
                y=None, clip_x0: bool = False, generator: torch.Generator | None = None, device=None,
                x_T: torch.Tensor | None = None, return_trajectory: bool = False,
                spacing: str = "uniform"):
    """DDIM (Song, Meng & Ermon 2021) over :func:`timesteps` ``(T, steps, spacing)``:

        x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
        x_s    = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z,
        sigma  = eta * sqrt((1 - abar_s)/(1 - abar_t)) * sqrt(1 - abar_t/abar_s).

    ``eta = 0`` is deterministic given ``x_T`` (an ODE-like map from noise to data, usable with
    few steps); ``eta = 1`` is ancestral sampling with ``c = beta_tilde``. Arguments and return
    value as :func:`ddpm_sample`.
    """
    checks.nonnegative(eta, "eta")
    seq = timesteps(sched.T, steps, spacing) + [0]
    x = _start(shape, generator, device, x_T)
    traj = [x.cpu()] if return_trajectory else None
    for t, s in zip(seq[:-1], seq[1:]):
        tt = torch.full((len(x),), t, dtype=torch.long, device=x.device)
        eps = _call(model, x, tt, y)
        ab_t, ab_s = float(sched.alpha_bars[t]), float(sched.alpha_bars[s])
        x0 = predict_x0(sched, x, tt, eps)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = (x - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)  # keep eps consistent with x0_hat
        sigma = eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
        x = math.sqrt(ab_s) * x0 + math.sqrt(max(1 - ab_s - sigma ** 2, 0.0)) * eps
        if sigma > 0 and s > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator).to(x)
        if return_trajectory:
            traj.append(x.cpu())
    return (x, traj) if return_trajectory else x


def dpm_solver_sample(model: Callable, sched: Schedule, shape=None, steps: int = 10, y=None,
                      clip_x0: bool = False, generator: torch.Generator | None = None, device=None,
                      x_T: torch.Tensor | None = None, return_trajectory: bool = False,
                      spacing: str = "uniform"):
    """DPM-Solver++(2M) (Lu et al. 2022): DDIM's ODE, solved to second order.

    DDIM (``eta = 0``) is the first-order (Euler) step of the probability-flow ODE written in
    ``lambda_t = log(sqrt(abar_t) / sqrt(1 - abar_t))``, holding the predicted clean image
    ``x0_hat`` constant over a jump ``t -> s``. This sampler reuses the previous step's
    ``x0_hat`` to extrapolate it linearly in ``lambda`` (one network call per step, as DDIM):

        h = lambda_s - lambda_t,   r = h_prev / h,
        D = (1 + 1/(2r)) x0_hat_t - 1/(2r) x0_hat_prev        (D = x0_hat_t on the first step)
        x_s = sqrt(1 - abar_s)/sqrt(1 - abar_t) x_t + sqrt(abar_s) (1 - e^{-h}) D.

    The last jump, to ``s = 0`` (``abar_0 = 1``), returns ``x0_hat``. With the first-order
    ``D = x0_hat_t`` at every step the update is exactly :func:`ddim_sample`'s. Time steps,
    arguments and return value as :func:`ddim_sample` (it is deterministic given ``x_T``).
    """
    seq = timesteps(sched.T, steps, spacing) + [0]
    x = _start(shape, generator, device, x_T)
    traj = [x.cpu()] if return_trajectory else None
    ab = [float(a) for a in sched.alpha_bars]
    lam = lambda t: 0.5 * math.log(ab[t] / (1 - ab[t]))                                  # noqa: E731
    x0_prev = h_prev = None
    for t, s in zip(seq[:-1], seq[1:]):
        tt = torch.full((len(x),), t, dtype=torch.long, device=x.device)
        eps = _call(model, x, tt, y)
        x0 = predict_x0(sched, x, tt, eps)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        if s == 0:                                   # sigma_0 = 0: the ODE ends on x0_hat
            x = x0
        else:
            h = lam(s) - lam(t)
            d = x0 if x0_prev is None else x0 + (x0 - x0_prev) * h / (2 * h_prev)
            x = math.sqrt((1 - ab[s]) / (1 - ab[t])) * x - math.sqrt(ab[s]) * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        if return_trajectory:
            traj.append(x.cpu())
    return (x, traj) if return_trajectory else x


# --- guidance (chapters 9, 10) ------------------------------------------------------------

def guidance_scales(w, n: int):
    """A guidance scale ``w``: one finite number ``>= 0`` (returned as a float) or one per
    sample, a sequence/1-D tensor of length ``n`` (returned as a float tensor)."""
    if isinstance(w, (list, tuple, torch.Tensor)):
        t = torch.as_tensor(w, dtype=torch.float32).detach()
        if t.ndim != 1 or len(t) != n:
            raise ValueError(f"per-sample guidance scales must be a 1-D sequence of {n} numbers "
                             f"(one per sample), got shape {tuple(t.shape)}")
        if not torch.isfinite(t).all() or (t < 0).any():
            raise ValueError(f"guidance scales must be finite numbers >= 0, got {t.tolist()}")
        return t
    return checks.nonnegative(w, "guidance scale w")


def cfg_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): ``eps_uncond + w (eps_cond - eps_uncond)``.

    ``w = 0`` is the unconditional model, ``w = 1`` the conditional one, ``w > 1`` extrapolates
    away from the unconditional prediction (sharper, less diverse samples). Shapes must match;
    ``w`` must be a finite number ``>= 0``, or one such number per sample (a sweep over the
    scale in one batch, :func:`guidance_scales`).
    """
    checks.tensor(eps_cond, "eps_cond"); checks.tensor(eps_uncond, "eps_uncond")
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"eps_cond and eps_uncond must have the same shape, got "
                         f"{tuple(eps_cond.shape)} and {tuple(eps_uncond.shape)}")
    w = guidance_scales(w, len(eps_cond))
    if isinstance(w, torch.Tensor):
        w = w.to(eps_cond).view(-1, *[1] * (eps_cond.ndim - 1))
    return eps_uncond + w * (eps_cond - eps_uncond)


def guided(model: Callable, y, w, null=None) -> Callable:
    """Wrap a conditional denoiser ``model(x, t, y)`` into ``model(x, t)`` that returns the
    classifier-free guided noise :func:`cfg_eps`. ``null`` is what the model was trained to read
    as "no condition" (``None`` passes ``y=None``, which :class:`lib.nets.UNet` understands).
    Use it with :func:`ddpm_sample` / :func:`ddim_sample`.
    """
    def eps(x, t):
        return cfg_eps(model(x, t, y), model(x, t, null), w)
    if not isinstance(w, (list, tuple, torch.Tensor)):
        checks.nonnegative(w, "guidance scale w")  # now, not at sampling time
    return eps
