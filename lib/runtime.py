"""Device, seeding and the profile (introduced in chapter 1; used by every notebook).

The book runs in two *profiles*, chosen by the environment variable
``WORKBOOK_PROFILE``:

* ``full`` (the default) -- what the HTML book shows: models train long enough
  to work on a 2-core CPU in a few minutes per notebook;
* ``smoke`` -- set only by the test command (``make test``): every loop runs a
  handful of steps on tiny data, so CI checks that every cell *runs*.

Any other value is an error. Sizes for each model are chosen in one place in
the notebook that trains it, with :func:`choose`.

``WORKBOOK_STATIC=1`` (set by ``make book``) means "no live kernel will be
attached to these outputs": widgets are not displayed, only their static
figures, and progress bars print one summary line instead of a bar.

``WORKBOOK_THREADS=N`` (set by ``tools/execute.py``, which runs several notebooks
at once) gives each notebook's torch N CPU threads; unset, torch's default.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

PROFILES = ("smoke", "full")
ROOT = Path(__file__).resolve().parent.parent


def profile() -> str:
    """The active profile, ``"smoke"`` or ``"full"``, from ``WORKBOOK_PROFILE`` (default ``full``)."""
    value = os.environ.get("WORKBOOK_PROFILE", "full").strip().lower() or "full"
    if value not in PROFILES:
        raise ValueError(f"WORKBOOK_PROFILE must be one of {PROFILES}, got {value!r}")
    return value


def is_smoke() -> bool:
    """True under the test profile."""
    return profile() == "smoke"


def static() -> bool:
    """True when outputs are rendered without a kernel (book build): no widgets, no live bars."""
    return os.environ.get("WORKBOOK_STATIC", "0") not in ("", "0", "false", "False")


def device(name: str | None = None) -> torch.device:
    """Pick the compute device: CUDA, then Apple MPS, then CPU.

    ``name`` forces one of ``"cuda"``, ``"mps"``, ``"cpu"`` (or ``"auto"``);
    ``WORKBOOK_DEVICE`` sets it from the environment. An unknown name, or a
    device that is not available, raises ``ValueError``.
    """
    name = (name or os.environ.get("WORKBOOK_DEVICE", "auto")).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cuda", "mps", "cpu"):
        raise ValueError(f"unknown device {name!r}; expected 'auto', 'cuda', 'mps' or 'cpu'")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available here")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested but Apple MPS is not available here")
    return torch.device(name)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so that a notebook's results repeat."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


SEED_STRIDE = 1_000_003  # a prime: the seeds of two runs never coincide for small seeds


def seed_offset() -> int:
    """The run's seed shift, ``WORKBOOK_SEED`` (default 0: the book's own seeds).

    ``make bench ARGS='--seeds 0,1,2'`` runs notebooks with other values to check that a
    result holds when the seeds change. It shifts the seeds a notebook sets itself
    (:func:`rng`, :func:`manual_seed`, :func:`setup`); the data and the metrics' own nets
    keep theirs, so every run is measured on the same test set with the same yardstick."""
    value = os.environ.get("WORKBOOK_SEED", "").strip() or "0"
    if not value.isdigit():
        raise ValueError(f"WORKBOOK_SEED must be a whole number >= 0, got {value!r}")
    return int(value)


def _shifted(seed: int) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return seed + SEED_STRIDE * seed_offset()


def rng(seed: int, device=None) -> torch.Generator:
    """A torch generator seeded with ``seed`` (shifted by :func:`seed_offset`); the
    notebooks' ``torch.Generator().manual_seed(seed)``."""
    return torch.Generator(device=device).manual_seed(_shifted(seed))


def manual_seed(seed: int) -> None:
    """``torch.manual_seed(seed)``, shifted by :func:`seed_offset` (the global torch stream)."""
    torch.manual_seed(_shifted(seed))


def choose(smoke: dict, full: dict, cuda: dict | None = None) -> dict:
    """Return the sizes for the active profile, in one place per model.

    ``cuda`` (optional) overrides entries of ``full`` when the full profile runs on
    a CUDA device, where training may be longer or larger. Every dict must have
    the same keys, so the profiles cannot silently drift apart.

    >>> cfg = choose(smoke=dict(steps=5), full=dict(steps=2000))
    """
    if set(smoke) != set(full):
        raise ValueError(f"smoke and full sizes must have the same keys, got {sorted(smoke)} vs {sorted(full)}")
    if cuda is not None and not set(cuda) <= set(full):
        raise ValueError(f"cuda sizes may only override keys of full, got extra {sorted(set(cuda) - set(full))}")
    if is_smoke():
        return dict(smoke)
    out = dict(full)
    if cuda and device().type == "cuda":
        out.update(cuda)
    return out


def cache_dir() -> Path:
    """A folder for artefacts that are cheap to recompute (e.g. the metric's feature net)."""
    path = Path(os.environ.get("WORKBOOK_CACHE", ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def threads() -> int | None:
    """The CPU thread count asked for by ``WORKBOOK_THREADS`` (None: torch's default)."""
    value = os.environ.get("WORKBOOK_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"WORKBOOK_THREADS must be a whole number >= 1, got {value!r}")
    return int(value)


def setup(seed: int = 0) -> torch.device:
    """What every notebook's setup cell calls: seed, pick the device, print both and the profile."""
    if threads() is not None:
        torch.set_num_threads(threads())
    seed_everything(_shifted(seed))
    dev = device()
    extra = f" ({torch.cuda.get_device_name(0)})" if dev.type == "cuda" else ""
    shift = f" (shifted: WORKBOOK_SEED={seed_offset()})" if seed_offset() else ""
    print(f"device: {dev}{extra} | profile: {profile()} | seed: {seed}{shift} | torch {torch.__version__}")
    return dev
