"""Discrete codes: vector quantisation, the VQ-VAE and priors over its codes (chapter 7).

Read top to bottom:

1. the vector-quantisation layer :class:`VectorQuantizer` (nearest code,
   straight-through gradient, codebook and commitment losses, dead-code reset),
   :func:`perplexity` of the code usage, and :class:`VQVAE`;
2. two priors over a VQ-VAE's grid of codes, so it can *sample*:
   :class:`PositionalCategorical` (one independent categorical per grid cell)
   and :class:`CodePrior` (a small autoregressive GRU over the codes in raster
   order, optionally class-conditional). Chapter 4's PixelCNN is a stronger
   drop-in replacement.

Shapes: images are ``(N, 1, H, W)``; the VQ-VAE's encoder output ``(N, D, h, w)``
and its code indices ``(N, h, w)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks


# --- 1. vector quantisation and the VQ-VAE ---------------------------------------------------

def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Forward: ``z_q``; backward: the gradient w.r.t. the output goes to ``z_e`` unchanged.

    ``z_e + (z_q - z_e).detach()`` -- the quantiser's argmin has no useful gradient,
    so the decoder's gradient is copied to the encoder (van den Oord et al. 2017).
    """
    checks.tensor(z_e, "z_e"); checks.tensor(z_q, "z_q")
    if z_e.shape != z_q.shape:
        raise ValueError(f"z_e and z_q must have the same shape, got {tuple(z_e.shape)} and {tuple(z_q.shape)}")
    return z_e + (z_q - z_e).detach()


def perplexity(indices: torch.Tensor, num_codes: int) -> float:
    """Codebook perplexity ``exp(H(p))`` of the empirical code frequencies ``p``.

    ``indices``: integer tensor of any shape with values in ``[0, num_codes)``. 1 when a
    single code is used, ``num_codes`` when all are used equally often: the "effective
    number of codes".
    """
    checks.tensor(indices, "indices"); checks.positive_int(num_codes, "num_codes")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise TypeError(f"indices must be an integer tensor, got {indices.dtype}")
    if indices.numel() == 0:
        raise ValueError("indices is empty")
    if int(indices.min()) < 0 or int(indices.max()) >= num_codes:
        raise ValueError(f"indices must lie in [0, {num_codes}), got [{int(indices.min())}, {int(indices.max())}]")
    p = torch.bincount(indices.flatten().cpu(), minlength=num_codes).double()
    p = p / p.sum()
    h = -(p[p > 0] * p[p > 0].log()).sum()
    return float(h.exp())


class VectorQuantizer(nn.Module):
    """A codebook of ``num_codes`` vectors of size ``code_dim`` and the VQ-VAE's quantisation.

    ``forward(z_e)`` with ``z_e (N, D, h, w)`` returns ``(z_st, indices, losses)``:

    * ``indices (N, h, w)``: the nearest code (Euclidean) for every grid cell;
    * ``z_st (N, D, h, w)``: the quantised vectors ``e_indices``, with the straight-through gradient;
    * ``losses``: ``codebook = ||sg[z_e] - e||^2`` (moves the codes to the encoder outputs) and
      ``commitment = ||z_e - sg[e]||^2`` (keeps the encoder near its codes; weight ``beta``
      in the total), both averaged over cells and dimensions.

    Dead codes (never chosen) get no gradient: :meth:`reset_dead_codes` moves them onto
    random recent encoder outputs.
    """

    def __init__(self, num_codes: int = 32, code_dim: int = 16, beta: float = 0.25):
        super().__init__()
        checks.positive_int(num_codes, "num_codes"); checks.positive_int(code_dim, "code_dim")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.num_codes, self.code_dim, self.beta = num_codes, code_dim, float(beta)
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes))

    def _check(self, z_e: torch.Tensor) -> torch.Tensor:
        checks.tensor(z_e, "z_e")
        if z_e.dim() != 4 or z_e.shape[1] != self.code_dim:
            raise ValueError(f"z_e must have shape (N, {self.code_dim}, h, w), got {tuple(z_e.shape)}")
        return z_e

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for every cell: ``(N, D, h, w)`` -> ``(N, h, w)`` int64."""
        self._check(z_e)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.code_dim)            # (N*h*w, D)
        d2 = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T
              + self.codebook.pow(2).sum(1))                                  # (N*h*w, K)
        return d2.argmin(1).view(z_e.shape[0], *z_e.shape[2:])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors for ``indices (N, h, w)``: ``(N, D, h, w)``."""
        checks.tensor(indices, "indices")
        if indices.dim() != 3 or indices.dtype.is_floating_point:
            raise ValueError(f"indices must be an integer tensor (N, h, w), got {indices.dtype} {tuple(indices.shape)}")
        if int(indices.min()) < 0 or int(indices.max()) >= self.num_codes:
            raise ValueError(f"indices must lie in [0, {self.num_codes})")
        return self.codebook[indices].permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        indices = self.nearest(z_e)
        z_q = self.lookup(indices)
        losses = {"codebook": (z_e.detach() - z_q).pow(2).mean(),
                  "commitment": (z_e - z_q.detach()).pow(2).mean()}
        return straight_through(z_e, z_q), indices, losses

    @torch.no_grad()
    def reset_dead_codes(self, z_e: torch.Tensor, counts: torch.Tensor,
                         generator: torch.Generator | None = None) -> int:
        """Move every code with ``counts == 0`` onto a randomly chosen encoder output of ``z_e``.

        ``z_e (N, D, h, w)``: recent encoder outputs; ``counts (K,)``: how often each code was
        chosen since the last reset. Returns the number of codes that were reset.
        """
        self._check(z_e)
        checks.shape(counts, (self.num_codes,), "counts")
        dead = (counts == 0).nonzero().flatten()
        if len(dead):
            flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.code_dim)
            pick = torch.randint(len(flat), (len(dead),), generator=generator).to(flat.device)
            self.codebook.data[dead] = flat[pick] + 1e-3 * torch.randn(len(dead), self.code_dim,
                                                                      generator=generator).to(flat.device)
        return int(len(dead))


class VQVAE(nn.Module):
    """A small convolutional VQ-VAE for ``(N, 1, 16, 16)`` images in ``[-1, 1]``.

    encoder: 16x16 -> 8x8 -> 4x4 grid of ``code_dim``-vectors ``z_e (N, D, 4, 4)``;
    quantiser: :class:`VectorQuantizer` with ``num_codes`` codes -> indices ``(N, 4, 4)``;
    decoder: 4x4 -> 8x8 -> 16x16 image in ``(-1, 1)``.

    ``forward(x)`` -> ``(reconstruction, indices, losses)`` with ``losses`` holding
    ``"recon"`` (mean squared error), ``"codebook"``, ``"commitment"`` and ``"loss"``
    (``recon + codebook + beta * commitment``). :meth:`decode_indices` turns a code grid into images.
    """

    def __init__(self, num_codes: int = 32, code_dim: int = 16, channels: int = 64, beta: float = 0.25,
                 image_size: int = 16):
        super().__init__()
        checks.positive_int(channels, "channels")
        checks.choice(image_size, (16,), "image_size")
        self.image_size = image_size
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.ReLU(),          # (N, c, 8, 8)
            nn.Conv2d(c, c, 4, stride=2, padding=1), nn.ReLU(),          # (N, c, 4, 4)
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, code_dim, 1))                                   # (N, D, 4, 4)
        self.vq = VectorQuantizer(num_codes, code_dim, beta)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, c, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.ReLU(),  # (N, c, 8, 8)
            nn.ConvTranspose2d(c, c, 4, stride=2, padding=1), nn.ReLU(),  # (N, c, 16, 16)
            nn.Conv2d(c, 1, 3, padding=1), nn.Tanh())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous encoder output ``z_e (N, D, 4, 4)``."""
        checks.images(x, channels=1, size=self.image_size)
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        z_e = self.encode(x)
        z_st, indices, losses = self.vq(z_e)
        recon = self.decoder(z_st)
        losses["recon"] = (recon - x).pow(2).mean()
        losses["loss"] = losses["recon"] + losses["codebook"] + self.vq.beta * losses["commitment"]
        return recon, indices, losses

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Code grid ``(N, 4, 4)`` (int64) of images ``x``."""
        return self.vq.nearest(self.encode(x))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 1, 16, 16)`` in ``(-1, 1)`` from a code grid ``indices (N, 4, 4)``."""
        return self.decoder(self.vq.lookup(indices))


# --- 2. priors over the code grid ------------------------------------------------------------

def _code_grid(indices: torch.Tensor, num_codes: int, name: str = "indices") -> torch.Tensor:
    checks.tensor(indices, name)
    if indices.dim() != 3 or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor (N, h, w), got {indices.dtype} {tuple(indices.shape)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_codes):
        raise ValueError(f"{name} must lie in [0, {num_codes})")
    return indices


class PositionalCategorical:
    """The simplest prior over code grids: an independent categorical at each grid cell.

    ``fit(indices (N, h, w))`` counts codes per cell (with ``alpha`` add-one smoothing);
    ``log_prob(indices)`` -> ``(N,)`` nats; ``sample(n)`` -> ``(n, h, w)``. It ignores how
    neighbouring codes depend on each other, so its samples mix parts of different digits.
    """

    def __init__(self, num_codes: int, alpha: float = 0.5):
        checks.positive_int(num_codes, "num_codes")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.num_codes, self.alpha = num_codes, float(alpha)
        self.log_p: torch.Tensor | None = None                  # (h, w, K)

    def fit(self, indices: torch.Tensor) -> "PositionalCategorical":
        _code_grid(indices, self.num_codes)
        onehot = F.one_hot(indices.cpu(), self.num_codes).double()  # (N, h, w, K)
        counts = onehot.sum(0) + self.alpha
        self.log_p = (counts / counts.sum(-1, keepdim=True)).log()
        return self

    def log_prob(self, indices: torch.Tensor) -> torch.Tensor:
        if self.log_p is None:
            raise ValueError("call fit() first")
        _code_grid(indices, self.num_codes)
        if tuple(indices.shape[1:]) != tuple(self.log_p.shape[:2]):
            raise ValueError(f"indices must have shape (N, {self.log_p.shape[0]}, {self.log_p.shape[1]})")
        lp = self.log_p.unsqueeze(0).expand(len(indices), -1, -1, -1)
        return lp.gather(-1, indices.cpu().unsqueeze(-1)).squeeze(-1).flatten(1).sum(1).float()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        checks.positive_int(n, "n")
        if self.log_p is None:
            raise ValueError("call fit() first")
        h, w, k = self.log_p.shape
        probs = self.log_p.exp().reshape(h * w, k).float()
        draws = torch.multinomial(probs, n, replacement=True, generator=generator)  # (h*w, n)
        return draws.T.reshape(n, h, w)


class CodePrior(nn.Module):
    """An autoregressive prior over a code grid: ``p(c) = prod_t p(c_t | c_<t)`` in raster order.

    A GRU reads the codes so far (and a start token) and predicts the next one. Small and
    readable; chapter 4's PixelCNN (masked convolutions over the grid) is the classic choice.

    With ``num_classes=C`` it is **class-conditional**, ``p(c | y) = prod_t p(c_t | c_<t, y)``:
    the start token is the label (token ``K + y``), so the GRU knows the class from its first
    step on. ``num_classes=None`` (the default) is the unconditional prior with one start token ``K``.
    ``dropout`` (default 0) drops the GRU's outputs before the head during training -- a
    regulariser against memorising a small set of grids.

    ``forward(indices (N, h, w), labels (N,) or None)`` -> next-code logits ``(N, h*w, K)``;
    ``log_prob(indices, labels)`` -> ``(N,)`` nats; ``sample(n, labels=...)`` -> ``(n, h, w)`` int64.
    A conditional prior needs ``labels`` (int64 in ``[0, C)``) everywhere, an unconditional one refuses them.
    """

    def __init__(self, num_codes: int, grid: tuple[int, int] = (4, 4), embed: int = 64, hidden: int = 128,
                 num_classes: int | None = None, dropout: float = 0.0):
        super().__init__()
        checks.positive_int(num_codes, "num_codes"); checks.positive_int(embed, "embed")
        checks.positive_int(hidden, "hidden")
        if num_classes is not None:
            checks.positive_int(num_classes, "num_classes")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_codes, self.grid, self.num_classes = num_codes, tuple(grid), num_classes
        self.length = self.grid[0] * self.grid[1]
        starts = 1 if num_classes is None else num_classes
        self.embed = nn.Embedding(num_codes + starts, embed)              # indices >= K are start tokens
        self.pos = nn.Parameter(torch.zeros(self.length, embed))
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_codes)

    def _start(self, labels: torch.Tensor | None, n: int, device) -> torch.Tensor:
        """Start tokens ``(n, 1)``: ``K`` (unconditional) or ``K + label`` (conditional)."""
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("this CodePrior is unconditional (num_classes=None): do not pass labels")
            return torch.full((n, 1), self.num_codes, dtype=torch.long, device=device)
        if labels is None:
            raise ValueError(f"this CodePrior is class-conditional: pass labels, an int tensor (N,) in [0, {self.num_classes})")
        checks.tensor(labels, "labels")
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (n,):
            raise ValueError(f"labels must be an integer tensor of shape ({n},), got {labels.dtype} {tuple(labels.shape)}")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes})")
        return (self.num_codes + labels.long()).view(n, 1).to(device)

    def forward(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        _code_grid(indices, self.num_codes)
        if tuple(indices.shape[1:]) != self.grid:
            raise ValueError(f"indices must have shape (N, {self.grid[0]}, {self.grid[1]}), got {tuple(indices.shape)}")
        seq = indices.flatten(1)                                          # (N, T)
        start = self._start(labels, len(seq), seq.device)
        inp = torch.cat([start, seq[:, :-1]], 1)                          # shifted right: c_<t predicts c_t
        h, _ = self.rnn(self.embed(inp) + self.pos)
        return self.head(self.drop(h))                                    # (N, T, K)

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        logits = self(indices, labels)
        return -F.cross_entropy(logits.transpose(1, 2), indices.flatten(1), reduction="none").sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """``n`` code grids ``(n, h, w)``; a conditional prior draws grid ``i`` given ``labels[i]``."""
        checks.positive_int(n, "n")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        dev = self.pos.device
        tok = self._start(labels, n, dev)
        state, out = None, []
        for t in range(self.length):
            h, state = self.rnn(self.embed(tok) + self.pos[t], state)
            probs = F.softmax(self.head(self.drop(h[:, -1])) / temperature, -1)
            tok = torch.multinomial(probs.cpu(), 1, generator=generator).to(dev)
            out.append(tok)
        return torch.cat(out, 1).view(n, *self.grid)
