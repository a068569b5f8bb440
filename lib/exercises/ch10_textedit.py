"""Checks for the exercises of notebook 10.6 (text-guided image editing: CLIPInverter)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import checks, textedit
from . import checker, expect, number


def _measured(judge, req, images, success, preserved, keys_of: str) -> dict:
    """Recompute success and preservation (%) of each ``images[k]`` with the judge and
    expect the student's numbers; returns ``{k: (success, preserved)}`` as recomputed."""
    for name, d in (("images", images), ("success", success), ("preserved", preserved)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{name} must be a dict keyed by {keys_of}, got {type(d).__name__}")
    if not (set(images) == set(success) == set(preserved)):
        raise ValueError(f"images, success and preserved must have the same keys ({keys_of})")
    if not isinstance(req, textedit.EditRequests):
        raise TypeError(f"req must be the test edit requests (lib.textedit.EditRequests), got {type(req).__name__}")
    out = {}
    dev = next(judge.parameters()).device
    for k, x in images.items():
        checks.images(x, channels=3, name=f"images[{k!r}]")
        if len(x) != len(req):
            raise ValueError(f"images[{k!r}] must hold one edited image per request ({len(req)}), got {len(x)}")
        sc = textedit.edit_scores(judge.predict(x.detach().to(dev)), req)
        s, p = 100 * float(sc["success"].mean()), 100 * float(sc["preserved"].mean())
        expect(abs(number(success[k], f"success[{k!r}]") - s) <= 0.5,
               f"success[{k!r}] is not the judge's edit success on images[{k!r}] in % "
               "(the fraction of edits whose edited attribute shows the requested value)")
        expect(abs(number(preserved[k], f"preserved[{k!r}]") - p) <= 0.5,
               f"preserved[{k!r}] is not the judge's preservation on images[{k!r}] in % "
               "(the fraction of the three other attributes still read as in the source)")
        out[k] = (s, p)
    return out


@checker("ch10-textedit-latent")
def textedit_latent(*, judge, req, latent_images, latent_success, latent_preserved) -> str:
    """``latent_images``: {latent weight: edited test images (N, 3, 32, 32)} for weights 0, 1
    and 4 (at least three weights including 0); ``latent_success`` / ``latent_preserved``:
    the judge's % for each."""
    images = latent_images
    got = _measured(judge, req, images, latent_success, latent_preserved, "latent weight")
    weights = sorted(number(w, "a latent weight") for w in got)
    expect(len(weights) >= 3 and weights[0] == 0 and weights[-1] >= 1,
           "run at least three latent weights, from 0 (no latent term) to a large one (e.g. 2)")
    lo, hi = images[min(images)], images[max(images)]
    expect(not torch.equal(lo, hi), "the images for the smallest and the largest weight are identical: "
           "did the latent weight reach the loss (optimise_edits(..., latent=...))?")
    return ("success and preservation match the judge for latent weights "
            + ", ".join(f"{w:g}" for w in weights))


@checker("ch10-textedit-terms")
def textedit_terms(*, judge, req, term_images, term_success, term_preserved) -> str:
    """``term_images``: {"global": ..., "directional": ...} edited test images (N, 3, 32, 32)
    from the two losses alone (generic descriptions); ``term_success`` /
    ``term_preserved``: the judge's %."""
    images = term_images
    if not isinstance(images, Mapping) or set(images) != {"global", "directional"}:
        raise ValueError('images must be keyed by "global" and "directional" (the two losses)')
    got = _measured(judge, req, images, term_success, term_preserved, '"global" and "directional"')
    expect(not torch.equal(images["global"], images["directional"]),
           "the two losses gave identical images: set similarity=0 or direction=0 for each")
    g, d = got["global"], got["directional"]
    return (f"measured: global loss leaks {100 - g[1]:.1f}%, directional {100 - d[1]:.1f}% "
            "of the unrequested attributes")
