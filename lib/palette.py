"""Image-to-image diffusion: Palette (introduced in chapter 10).

Palette (Saharia et al. 2022) is a plain DDPM whose denoiser also sees the conditioning image,
concatenated to the noisy image along the channels: f_theta(cat(x_t, c), t). Nothing else
changes: the same forward process and samplers (:mod:`lib.diffusion`); a sample is *one*
plausible output for c, and several samples show the spread that a regression loss averages
away. Palette predicts the noise eps; with ``predict="x0"`` the U-Net predicts the clean image
instead (the same model, reparameterised: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)),
which trains much faster on a small budget (chapter 10 measures both).

* :class:`Palette` (a :class:`lib.nets.UNet` on the noisy image concatenated with the
  condition), :func:`palette_loss`, :func:`fit_palette`, :func:`palette_sample`;
* the colorization helpers :func:`luma_of`, :func:`chroma_of`, :func:`compose_yuv`.

Images are ``(N, C, H, W)`` float tensors in ``[-1, 1]``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks, diffusion, nets, train
from .degrade import rgb_to_yuv, yuv_to_rgb


class Palette(nn.Module):
    """Conditional denoiser for image-to-image diffusion.

    ``forward(x_t (N, C, H, W), t (N,), cond (N, K, H, W)) -> eps (N, C, H, W)``, so that it plugs
    into :func:`lib.diffusion.ddim_sample` / ``ddpm_sample`` with ``y=cond``. Inside, a
    :class:`lib.nets.UNet` reads ``cat(x_t, cond)`` (``C + K`` channels; its first ``C`` output
    channels are used). ``predict`` says what those channels are: ``"eps"`` (Palette, DDPM: the
    noise) or ``"x0"`` (the clean image; converted to eps with the schedule ``sched``).
    :meth:`raw` returns the network's own prediction, the quantity :func:`palette_loss` regresses.
    """

    def __init__(self, channels: int, cond_channels: int, sched, base: int = 32, mults: tuple = (1, 2, 2),
                 predict: str = "eps"):
        super().__init__()
        checks.positive_int(channels, "channels"); checks.positive_int(cond_channels, "cond_channels")
        checks.choice(predict, ("eps", "x0"), "predict")
        self.channels, self.cond_channels, self.predict, self.sched = channels, cond_channels, predict, sched
        self.register_buffer("alpha_bars", sched.alpha_bars.float())
        self.unet = nets.UNet(in_ch=channels + cond_channels, base=base, mults=mults)

    def raw(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The U-Net's prediction (noise or clean image, see ``predict``), ``(N, C, H, W)``."""
        checks.shape(x_t, (None, self.channels, None, None), "x_t")
        checks.shape(cond, (len(x_t), self.cond_channels, *x_t.shape[2:]), "cond")
        return self.unet(torch.cat([x_t, cond.to(x_t)], 1), t)[:, :self.channels]

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.raw(x_t, t, cond)
        if self.predict == "eps":
            return out
        ab = self.alpha_bars[t.long()].view(-1, *([1] * (x_t.dim() - 1)))
        return (x_t - ab.sqrt() * out) / (1 - ab).sqrt()


def palette_loss(model: Palette, x0: torch.Tensor, cond: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One Monte-Carlo estimate of the training loss: draw ``t`` uniform on ``1..T`` and noise,
    form ``x_t`` (:func:`lib.diffusion.q_sample`), and regress the model's :meth:`Palette.raw`
    output on its target -- the noise (``predict="eps"``: exactly Ho et al.'s simplified loss,
    :func:`lib.diffusion.eps_loss`) or ``x0`` (``predict="x0"``). ``x0 (N, C, H, W)`` in ``[-1, 1]``."""
    checks.value_range(x0, -1, 1, "x0")
    sched = model.sched
    t = torch.randint(1, sched.T + 1, (len(x0),), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    x_t = diffusion.q_sample(sched, x0, t, noise)
    target = noise if model.predict == "eps" else x0
    return F.mse_loss(model.raw(x_t, t, cond), target)


def fit_palette(model: Palette, targets: torch.Tensor, conds: torch.Tensor, steps: int, batch: int = 32,
                lr: float = 2e-3, ema_decay: float = 0.995, seed: int = 0,
                desc: str = "palette") -> tuple[dict[str, list[float]], nn.Module]:
    """Train ``model`` with :func:`palette_loss` on pairs ``targets (N, C, H, W)`` (what to
    generate, in ``[-1, 1]``) and ``conds (N, K, H, W)``; Adam with a one-cycle learning rate, each
    step a random batch. Returns ``(history, ema_model)``: sample from the exponential moving
    average of the weights (:class:`lib.nets.EMA`)."""
    if not isinstance(model, Palette):
        raise TypeError(f"model must be a lib.palette.Palette, got {type(model).__name__}")
    checks.tensor(targets, "targets"); checks.tensor(conds, "conds")
    if len(targets) != len(conds) or targets.shape[2:] != conds.shape[2:]:
        raise ValueError(f"targets and conds must pair up, got {tuple(targets.shape)} and {tuple(conds.shape)}")
    checks.value_range(targets, -1, 1, "targets")
    checks.positive_int(steps, "steps"); checks.positive_int(batch, "batch")
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched_lr = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    ema = nets.EMA(model, ema_decay)

    def step(i):
        idx = torch.randint(len(targets), (batch,), generator=g)
        loss = palette_loss(model, targets[idx].to(dev), conds[idx].to(dev), generator=g)
        opt.zero_grad(); loss.backward(); opt.step(); sched_lr.step(); ema.update(model)
        return {f"{model.predict} loss": loss}

    model.train()
    hist = train.train_loop(step, steps, desc=desc)
    model.eval()
    return hist, ema.model


@torch.no_grad()
def palette_sample(model: Palette, conds: torch.Tensor, steps: int = 25, eta: float = 0.0,
                   generator: torch.Generator | None = None, chunk: int = 256) -> torch.Tensor:
    """One sample per condition ``conds (N, K, H, W)``: DDIM (:func:`lib.diffusion.ddim_sample`)
    with ``steps`` steps over the model's schedule, ``x0`` clipped to ``[-1, 1]``. Returns
    ``(N, C, H, W)`` in ``[-1, 1]`` on the CPU; another ``generator`` seed gives another plausible output."""
    if not isinstance(model, Palette):
        raise TypeError(f"model must be a lib.palette.Palette, got {type(model).__name__}")
    checks.shape(conds, (None, model.cond_channels, None, None), "conds")
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for c in conds.split(chunk):
        x_T = torch.randn((len(c), model.channels, *c.shape[2:]), generator=generator).to(dev)
        out.append(diffusion.ddim_sample(model, model.sched, steps=steps, eta=eta, y=c.to(dev), clip_x0=True,
                                         x_T=x_T).clamp(-1, 1).cpu())
    return torch.cat(out)


def chroma_of(rgb: torch.Tensor) -> torch.Tensor:
    """The chroma ``(U, V)`` of RGB ``(N, 3, H, W)`` in ``[-1, 1]``, scaled to about ``[-1, 1]``
    (``U / 0.436``, ``V / 0.615``): what a Palette colorizer generates. ``(N, 2, H, W)``."""
    yuv = rgb_to_yuv(rgb)
    return torch.cat([yuv[:, 1:2] / 0.436, yuv[:, 2:3] / 0.615], 1)


def luma_of(rgb: torch.Tensor) -> torch.Tensor:
    """The luma ``Y`` of RGB ``(N, 3, H, W)`` in ``[-1, 1]``, mapped to ``[-1, 1]``: ``(N, 1, H, W)``
    (the grey input of :class:`lib.restoration.Colorizer` and the condition of a Palette colorizer)."""
    return rgb_to_yuv(rgb)[:, :1] * 2 - 1


def compose_yuv(luma: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """RGB ``(N, 3, H, W)`` in ``[-1, 1]`` from :func:`luma_of` and :func:`chroma_of` outputs
    (inverse of the two; clipped where RGB leaves the gamut)."""
    checks.shape(luma, (None, 1, None, None), "luma")
    checks.shape(chroma, (len(luma), 2, *luma.shape[2:]), "chroma")
    return yuv_to_rgb(torch.cat([(luma + 1) / 2, chroma[:, :1] * 0.436, chroma[:, 1:] * 0.615], 1))
