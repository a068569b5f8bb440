"""Checks for chapter 9's exercises (a small CLIP; text-to-image with latent diffusion)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks, clip, scenes, text2image
from . import checker, close, expect, number

ATTRS = {
    "shape": scenes.SHAPES,
    "colour": scenes.COLOURS,
    "size": scenes.SIZES,
    "where": scenes.WHERES,
}
# What the judge reads of a scene, for "how many different scenes" (ch09-diversity).
SCENE_KEYS = ("n_objects", "colour", "size", "shape", "colour2", "size2", "shape2")
# What "the judge's match" compares for a one-object prompt (ch09-prior).
MATCH_KEYS = ("n_objects", "shape", "colour", "size", "where")


def _module(x, name: str, kind: str) -> nn.Module:
    if not isinstance(x, nn.Module):
        raise TypeError(f"{name} must be {kind} (an nn.Module), got {type(x).__name__}")
    return x


def _mapping(x, name: str, what: str, at_least: int = 1) -> Mapping:
    if not isinstance(x, Mapping) or len(x) < at_least:
        raise TypeError(
            f"{name} must be a dict {what} with at least {at_least} entries"
        )
    return x


def _percent(values: dict, name: str) -> None:
    """Rates and accuracies are percentages, 0 to 100."""
    for k, v in values.items():
        expect(
            0.0 <= v <= 100.0,
            f"{name}[{k!r}] = {v:g} is not a percentage between 0 and 100",
        )


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def _caption_list(prompts, name: str = "prompts") -> list[str]:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"{name} must be a list of captions (strings)")
    if len(prompts) == 0:
        raise ValueError(f"{name} must not be empty")
    return list(prompts)


# --- 9.1 clip --------------------------------------------------------------------------


@checker("ch09-templates")
def templates(*, model, zi_test, labels, one_template) -> str:
    """``one_template``: {attribute: zero-shot accuracy in %} on the one-object test scenes
    (embeddings ``zi_test``, labels ``labels``) of a classifier built from a single caption
    per class, for some or all of "shape", "colour", "size", "where"."""
    _module(model, "model", "the CLIP model")
    zi = checks.floating(checks.tensor(zi_test, "zi_test"), "zi_test")
    if not isinstance(labels, Mapping) or "n_objects" not in labels:
        raise TypeError("labels must be the test scenes' label dict (test_set.labels)")
    _mapping(one_template, "one_template", "{attribute: accuracy in %}")
    unknown = [a for a in one_template if a not in ATTRS]
    if unknown:
        raise ValueError(
            f"one_template's keys must be among {list(ATTRS)}, got {unknown}"
        )
    one = torch.as_tensor(labels["n_objects"]).cpu() == 1
    if len(one) != len(zi):
        raise ValueError(
            f"zi_test holds {len(zi)} embeddings but labels {len(one)} scenes"
        )
    zi = zi[one].cpu().float()
    n = len(zi)
    expect(n > 0, "there are no one-object scenes among these test scenes")
    got = {a: number(v, f"one_template[{a!r}]") for a, v in one_template.items()}
    _percent(got, "one_template")
    # every one-object caption, embedded once; row of (size, colour, shape, where)
    combos = list(
        itertools.product(scenes.SIZES, scenes.COLOURS, scenes.SHAPES, scenes.WHERES)
    )
    with torch.no_grad():
        emb = model.encode_captions(
            [scenes.make_caption([(s, c, k)], where=w) for s, c, k, w in combos]
        )
    emb = emb.cpu().float()
    order = ("size", "colour", "shape", "where")
    rows = {combo: i for i, combo in enumerate(combos)}
    slack = 50 / n + 1e-6  # half a scene
    lines = []
    for attr, value in got.items():
        y = torch.as_tensor(labels[attr]).cpu()[one]
        j = order.index(attr)

        def accuracy(class_emb, y=y):
            return 100 * float(
                (clip.zero_shot_predict(zi, class_emb) == y).float().mean()
            )

        # one caption per class: fix the other three attributes, vary this one
        singles = []
        for combo in combos:
            if combo[j] == ATTRS[attr][0]:
                members = [combo[:j] + (c,) + combo[j + 1 :] for c in ATTRS[attr]]
                singles.append(accuracy(emb[[rows[m] for m in members]]))
        ensemble = torch.stack(
            [
                F.normalize(
                    emb[[i for m, i in rows.items() if m[j] == c]].mean(0), dim=-1
                )
                for c in ATTRS[attr]
            ]
        )
        expect(
            not (value <= 1.0 < min(singles)),
            f"one_template[{attr!r}] = {value:g} looks like a fraction: give the "
            "accuracy in percent",
        )
        expect(
            min(singles) - slack <= value <= max(singles) + slack,
            f"no classifier built from one caption per {attr} scores {value:.1f}% on the "
            f"{n} one-object test scenes: use one caption per class that differs from the "
            f"others only in the {attr} word, embed it with the text tower, and predict "
            "the class of largest cosine similarity",
        )
        lines.append(f"{attr} {value:.1f}% (ensemble {accuracy(ensemble):.1f}%)")
    return (
        f"one template per class on {n} one-object test scenes: "
        + ", ".join(lines)
        + "; each is within what a single template can reach"
    )


@checker("ch09-temperature")
def temperature(*, zi_test, zt_test, model, test_loss) -> str:
    """``test_loss``: {inverse temperature s: mean InfoNCE of the test pairs (embeddings
    ``zi_test``, ``zt_test``) in batches of 128} for several s from 1 to 100."""
    zi = checks.floating(checks.tensor(zi_test, "zi_test"), "zi_test").cpu().float()
    zt = checks.floating(checks.tensor(zt_test, "zt_test"), "zt_test").cpu().float()
    if zi.dim() != 2 or zi.shape != zt.shape or len(zi) < 2:
        raise ValueError(
            "zi_test and zt_test must be (N, D) embeddings of the same N test pairs, got "
            f"{tuple(zi.shape)} and {tuple(zt.shape)}"
        )
    _module(model, "model", "the CLIP model")
    _mapping(
        test_loss, "test_loss", "{inverse temperature s: test InfoNCE}", at_least=3
    )
    scales = sorted(test_loss, key=lambda s: number(s, "an inverse temperature"))
    s_vals = [number(s, "an inverse temperature") for s in scales]
    if any(s <= 0 for s in s_vals):
        raise ValueError(f"inverse temperatures must be > 0, got {s_vals}")
    losses = [number(test_loss[s], f"test_loss[{s}]") for s in scales]
    expect(
        s_vals[0] <= 1.0 + 1e-9 and s_vals[-1] >= 100.0 - 1e-9,
        "try inverse temperatures across the whole range the exercise asks for, from "
        "s = 1 up to s = 100",
    )
    b = min(128, len(zi))
    starts = range(0, len(zi) - b + 1, b)
    reference = [
        sum(float(clip.info_nce(zi[i : i + b], zt[i : i + b], s)) for i in starts)
        / len(starts)
        for s in s_vals
    ]
    floor = math.log(1 + (b - 1) * math.exp(-2 * s_vals[0]))  # cosines lie in [-1, 1]
    expect(
        losses[0] >= floor - 1e-3,
        f"at s = {s_vals[0]:g} your loss {losses[0]:.3f} is lower than unit-length "
        f"embeddings allow in batches of {b}: are the embeddings normalised, and does s "
        "multiply the cosine similarities?",
    )
    slopes = [
        (l2 - l1) / (s2 - s1)
        for (s1, l1), (s2, l2) in itertools.pairwise(zip(s_vals, losses))
    ]
    expect(
        all(b2 >= b1 - 1e-3 for b1, b2 in itertools.pairwise(slopes)),
        "InfoNCE is a convex function of s (a log-sum-exp of terms linear in s, minus "
        "one such term), but your values are not convex in s: is each loss stored "
        "under its own s?",
    )
    for s, value, ref in zip(s_vals, losses, reference):
        close(
            value,
            ref,
            f"your test loss at s = {s:g} is not what these test embeddings give: use "
            f"the symmetric InfoNCE (both directions averaged) on batches of {b} test "
            "pairs, and average it over the batches",
            rtol=0.1,
            atol=0.05,
        )
    best = s_vals[min(range(len(losses)), key=losses.__getitem__)]
    return (
        f"test InfoNCE {losses[0]:.3f} at s = {s_vals[0]:g} (log B = {math.log(b):.3f}), "
        f"lowest {min(losses):.3f} at s = {best:g} of those tried; the learned s is "
        f"{float(model.scale().detach()):.1f}"
    )


@checker("ch09-prior")
def prior(
    *, decode, model, judge, few_prompts, prior_latents, prior_norm, prior_match
) -> str:
    """``prior_latents``: {prior weight: optimised latents (P, d)} for the P prompts
    ``few_prompts``;
    ``prior_norm``: {weight: mean |z| / sqrt(d)}; ``prior_match``: {weight: % of prompts
    whose every attribute the judge finds in the decoded image}. The weights include 0
    and a large one."""
    if not callable(decode):
        raise TypeError("decode must be the decoder function, latents -> images")
    _module(model, "model", "the CLIP model")
    _module(judge, "judge", "the scene judge")
    prompts = _caption_list(few_prompts, "few_prompts")
    for name, d in (
        ("prior_latents", prior_latents),
        ("prior_norm", prior_norm),
        ("prior_match", prior_match),
    ):
        _mapping(d, name, "{prior weight: ...}", at_least=2)
    if not set(prior_latents) == set(prior_norm) == set(prior_match):
        raise ValueError(
            "prior_latents, prior_norm and prior_match must share their keys"
        )
    weights = sorted(prior_latents, key=lambda w: number(w, "a prior weight"))
    lam = [number(w, "a prior weight") for w in weights]
    if lam[0] < 0:
        raise ValueError(f"prior weights must be >= 0, got {lam}")
    expect(
        lam[0] == 0 and lam[-1] >= 0.1,
        "compare no prior at all (prior_weight=0) with a large weight such as 1.0",
    )
    z = {}
    for w in weights:
        zw = checks.floating(
            checks.tensor(prior_latents[w], f"prior_latents[{w}]"), "z"
        )
        if zw.dim() != 2 or len(zw) != len(prompts):
            raise ValueError(
                f"prior_latents[{w}] must be ({len(prompts)}, d), one latent per prompt, "
                f"got {tuple(zw.shape)}"
            )
        z[w] = zw.detach()
    d = z[weights[0]].shape[1]
    target = text2image.caption_labels(prompts)
    norm, match = {}, {}
    dev = _device(judge)
    for w in weights:
        norm[w] = float(z[w].norm(dim=1).mean()) / math.sqrt(d)
        with torch.no_grad():
            pred = judge.predict(decode(z[w].to(dev)).clamp(-1, 1))
        match[w] = 100 * float(
            clip.attribute_match(pred, target, MATCH_KEYS).float().mean()
        )
    for w in weights:
        close(
            number(prior_norm[w], f"prior_norm[{w}]"),
            norm[w],
            f"prior_norm[{w}] should be the mean over prompts of |z| / sqrt(d), d the size "
            "of a latent: about 1 for a latent drawn from N(0, I)",
            rtol=0.02,
        )
        value = number(prior_match[w], f"prior_match[{w}]")
        _percent({w: value}, "prior_match")
        close(
            value,
            match[w],
            f"prior_match[{w}] should be the percentage of the prompts for which the judge "
            "reads every attribute of the prompt (count, shape, colour, size, position) in "
            "the decoded image",
            rtol=0.0,
            atol=50 / len(prompts) + 1e-6,
        )
    expect(
        norm[weights[-1]] < norm[weights[0]],
        "the prior term pulls the latents towards 0, so with the large weight |z| should "
        "end up smaller than without a prior: did each run get its own prior_weight?",
    )
    return (
        f"on {len(prompts)} prompts, |z|/sqrt(d) goes "
        + ", ".join(f"{norm[w]:.2f}" for w in weights)
        + " and the judge's match "
        + ", ".join(f"{match[w]:.0f}%" for w in weights)
        + " for prior weights "
        + ", ".join(f"{w:g}" for w in lam)
    )


# --- 9.2 text to image ------------------------------------------------------------------


def _setting(key) -> tuple[int, float]:
    if not isinstance(key, tuple) or len(key) != 2:
        raise TypeError(
            f"keys must be (steps, eta) pairs such as (20, 0.0), got {key!r}"
        )
    steps, eta = key
    if isinstance(steps, bool) or int(number(steps, "steps")) != number(steps, "steps"):
        raise TypeError(f"the number of steps must be an integer, got {steps!r}")
    return int(steps), number(eta, "eta")


@checker("ch09-ddim-steps")
def ddim_steps(*, judge, prompts, step_images, step_adherence) -> str:
    """``step_images``: {(steps, eta): images (P, 3, 32, 32)} generated for the P ``prompts``
    (one-object, seen pairs, at the best guidance scale); ``step_adherence``: {(steps, eta):
    % of images whose colours and sizes the judge finds right} for (5, 0), (10, 0), (20, 0)
    and (20, 1)."""
    _module(judge, "judge", "the scene judge")
    prompts = _caption_list(prompts)
    _mapping(step_images, "step_images", "{(steps, eta): images}")
    _mapping(step_adherence, "step_adherence", "{(steps, eta): % right}")
    if set(step_images) != set(step_adherence):
        raise ValueError("step_images and step_adherence must share their keys")
    settings = {_setting(k): k for k in step_images}
    wanted = [(5, 0.0), (10, 0.0), (20, 0.0), (20, 1.0)]
    missing = [s for s in wanted if s not in settings]
    expect(
        not missing,
        "measure all four samplers the exercise asks for: 5, 10 and 20 deterministic "
        f"steps (eta=0) and 20 stochastic ones (eta=1); missing {missing}",
    )
    target = text2image.caption_labels(prompts)
    ims, rate = {}, {}
    for s in wanted:
        x = checks.images(
            checks.tensor(step_images[settings[s]], f"step_images[{s}]"),
            3,
            name=f"step_images[{s}]",
        )
        if len(x) != len(prompts):
            raise ValueError(
                f"step_images[{s}] must hold one image per prompt ({len(prompts)}), "
                f"got {len(x)}"
            )
        ims[s] = x.detach().cpu().float()
        pred = judge.predict(x.to(_device(judge)))
        rate[s] = 100 * float(text2image.content_match(pred, target).float().mean())
        value = number(step_adherence[settings[s]], f"step_adherence[{s}]")
        _percent({s: value}, "step_adherence")
        close(
            value,
            rate[s],
            f"step_adherence[{s}] is not the lenient adherence of these images: the "
            "percentage whose number of objects, colours and sizes the judge reads as "
            "the prompt asks",
            rtol=0.0,
            atol=50 / len(prompts) + 1e-6,
        )
    expect(
        float((ims[(20, 1.0)] - ims[(20, 0.0)]).abs().max()) > 1e-6,
        "the stochastic sampler (eta=1) adds fresh noise at every step, so its images "
        "should differ from the deterministic sampler's",
    )
    expect(
        float((ims[(5, 0.0)] - ims[(20, 0.0)]).abs().max()) > 1e-6,
        "the images of 5 and of 20 sampling steps are the same: did the number of steps "
        "reach the sampler?",
    )
    return (
        f"colours and sizes right for {len(prompts)} prompts: "
        + ", ".join(
            f"{k} {'stochastic' if eta else 'deterministic'} steps {rate[(k, eta)]:.1f}%"
            for k, eta in wanted
        )
        + f" (one prompt = {100 / len(prompts):.1f} points)"
    )


@checker("ch09-diversity")
def diversity(*, judge, diversity_samples, n_kinds) -> str:
    """``diversity_samples``: {guidance scale w: 12 images (12, 3, 32, 32)} of one prompt;
    ``n_kinds``: {w: number of different scenes the judge reads among them}, a scene being
    its object count, colours, sizes and shapes."""
    _module(judge, "judge", "the scene judge")
    _mapping(diversity_samples, "diversity_samples", "{guidance scale: images}", 2)
    _mapping(n_kinds, "n_kinds", "{guidance scale: number of different scenes}", 2)
    if set(diversity_samples) != set(n_kinds):
        raise ValueError("diversity_samples and n_kinds must share their keys")
    ws = sorted(diversity_samples, key=lambda w: number(w, "a guidance scale"))
    scales = [number(w, "a guidance scale") for w in ws]
    expect(
        scales[0] == 0 and scales[-1] >= 3,
        "compare the unguided model (w = 0) with strong guidance (the exercise goes up "
        "to w = 8)",
    )
    kinds = {}
    for w in ws:
        x = checks.images(
            checks.tensor(diversity_samples[w], f"diversity_samples[{w}]"),
            3,
            name=f"diversity_samples[{w}]",
        )
        expect(
            len(x) == 12,
            f"draw 12 samples at each scale; at w = {w:g} there are {len(x)}",
        )
        flat = x.detach().flatten(1).cpu().double()
        same = torch.cdist(flat, flat) + torch.eye(len(x)) * 1e9
        expect(
            float(same.min()) > 1e-6,
            f"two of the samples at w = {w:g} are the same image: each of the 12 samples "
            "needs its own starting noise",
        )
        pred = judge.predict(x.to(_device(judge)))
        kinds[w] = len(
            {tuple(int(pred[k][i]) for k in SCENE_KEYS) for i in range(len(x))}
        )
        value = number(n_kinds[w], f"n_kinds[{w}]")
        expect(
            value == kinds[w],
            f"n_kinds[{w:g}] should count the different scenes the judge reads among the "
            "12 samples, a scene being its object count and the colour, size and shape "
            "of each object (the position does not count)",
        )
    return "among 12 samples of the prompt the judge reads " + ", ".join(
        f"{kinds[w]} different scenes at w = {w:g}"
        if i == 0
        else f"{kinds[w]} at w = {w:g}"
        for i, w in enumerate(ws)
    )
