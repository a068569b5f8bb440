"""Recording a notebook's headline figures (introduced in chapter 1).

A notebook calls :func:`record` for every number that says how well a model
worked, with its baseline where there is one. The value is printed, and when
``WORKBOOK_RESULTS_FILE`` is set (``make bench`` sets it, one file per
notebook) it is appended to that file as one JSON line, with the device. The
bench script then prints a table of every chapter's figures and times and
writes ``_build/results.json``.
"""
from __future__ import annotations

import json
import math
import os

from . import runtime


def record(name: str, value: float, unit: str = "", *, baseline: float | None = None,
           baseline_name: str | None = None, higher_is_better: bool | None = None) -> None:
    """Print and record one figure (one JSON line in ``WORKBOOK_RESULTS_FILE`` if that is set).

    ``name``: what was measured ("test accuracy"); ``unit``: "%", "bits/dim", ...
    ``baseline``/``baseline_name``: the number a learned method is compared with.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: value must be finite, got {value}")
    rec = {"name": name, "value": value, "unit": unit, "device": str(runtime.device()),
           "profile": runtime.profile()}
    if baseline is not None:
        rec["baseline"] = float(baseline)
        rec["baseline_name"] = baseline_name or "baseline"
    if higher_is_better is not None:
        rec["higher_is_better"] = bool(higher_is_better)
    text = f"{name}: {value:.4g} {unit}".rstrip()
    if baseline is not None:
        text += f"   ({rec['baseline_name']}: {float(baseline):.4g} {unit})".rstrip()
    print(text)
    path = os.environ.get("WORKBOOK_RESULTS_FILE")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
