"""lib.exercises.ch09: the reference answers pass, wrong answers get a hint.

Small untrained models (a CLIP, a VAE decoder, a text-conditioned U-Net) and a rule-based
stand-in for the scene judge keep this fast; the reference answers are computed as the
notebooks' hidden solutions do, never with the checker's code.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lib import clip, diffusion, exercises, scenes, text2image
from exercise_testing import verdict


def not_yet(label, capsys, **answer):
    v = verdict(label, capsys, **answer)
    assert not v and "not yet" in str(v) and len(v.message) > 40, str(v)
    return v


class RuleJudge(nn.Module):
    """Reads one object whose colour is the image's dominant channel and whose size is
    "large" when the image is bright on average: enough to make match rates vary."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def predict(self, x):
        n = len(x)
        out = {k: torch.full((n,), -1, dtype=torch.int64) for k in scenes.LABELS}
        out["n_objects"] = torch.ones(n, dtype=torch.int64)
        out["colour"] = x.mean((2, 3)).argmax(1).cpu()
        out["size"] = (x.mean((1, 2, 3)) > 0).long().cpu()
        out["shape"] = (x[:, 0].mean((1, 2)) > x[:, 1].mean((1, 2))).long().cpu()
        out["where"] = torch.zeros(n, dtype=torch.int64)
        return out


@pytest.fixture(scope="module")
def small_clip():
    torch.manual_seed(0)
    model = clip.CLIP(dim=16, width=8).eval()
    test_set = scenes.captioned_scenes("test", 96)
    with torch.no_grad():
        zi = model.encode_image(test_set.images)
        zt = model.encode_captions(test_set.captions)
    return model, test_set, zi, zt


# --- ch09-templates ---------------------------------------------------------------------


def test_ch09_templates(small_clip, capsys):
    model, test_set, zi_test, _ = small_clip
    one = test_set.labels["n_objects"] == 1
    fixed = {
        "shape": dict(size="small", colour="red", where="left"),
        "colour": dict(size="small", shape="square", where="left"),
        "size": dict(colour="red", shape="square", where="left"),
        "where": dict(size="small", colour="red", shape="square"),
    }
    classes = {
        "shape": scenes.SHAPES,
        "colour": scenes.COLOURS,
        "size": scenes.SIZES,
        "where": scenes.WHERES,
    }
    one_template = {}
    for attr, cs in classes.items():
        w1 = clip.zero_shot_classifier(
            model, [scenes.one_object_captions(**{attr: c, **fixed[attr]}) for c in cs]
        )
        pred = clip.zero_shot_predict(zi_test[one], w1)
        one_template[attr] = 100 * float(
            (pred == test_set.labels[attr][one]).float().mean()
        )
    common = dict(model=model, zi_test=zi_test, labels=test_set.labels)
    v = verdict("ch09-templates", capsys, **common, one_template=one_template)
    assert v and "shape" in v.message and "ensemble" in v.message
    # a subset of the attributes is fine too
    assert verdict(
        "ch09-templates",
        capsys,
        **common,
        one_template={"colour": one_template["colour"]},
    )
    wrong = [
        {k: v / 100 for k, v in one_template.items()},  # fractions, not percent
        {k: 0.0 for k in one_template},  # zeros
        {k: 100.0 for k in one_template},  # perfect
        {k: v + 100 for k, v in one_template.items()},  # not a percentage
    ]
    for w in wrong:
        not_yet("ch09-templates", capsys, **common, one_template=w)
    with pytest.raises(ValueError, match="keys must be among"):
        exercises.check("ch09-templates", **common, one_template={"texture": 50.0})
    with pytest.raises(TypeError, match="one_template must be a dict"):
        exercises.check("ch09-templates", **common, one_template=[50.0, 60.0])


# --- ch09-temperature -------------------------------------------------------------------


def test_ch09_temperature(small_clip, capsys):
    model, *_ = small_clip
    g = torch.Generator().manual_seed(0)
    zi = F.normalize(torch.randn(256, 16, generator=g), dim=-1)
    zt = F.normalize(zi + 0.5 * torch.randn(256, 16, generator=g), dim=-1)
    b = min(128, len(zi))
    test_loss = {}
    for s in (1, 3, 10, 30, 100):
        test_loss[s] = np.mean(
            [
                clip.info_nce(zi[i : i + b], zt[i : i + b], float(s)).item()
                for i in range(0, len(zi) - b + 1, b)
            ]
        )
    common = dict(zi_test=zi, zt_test=zt, model=model)
    v = verdict("ch09-temperature", capsys, **common, test_loss=test_loss)
    assert v and "learned s" in v.message
    whole = {s: clip.info_nce(zi, zt, float(s)).item() for s in test_loss}  # B = 256
    wrong = [
        dict(zip(test_loss, reversed(test_loss.values()))),  # shuffled
        {s: 0.0 for s in test_loss},  # zeros
        {s: v * b for s, v in test_loss.items()},  # summed over the batch
        whole,  # one batch of all 256 pairs, not batches of 128
        {s: v for s, v in test_loss.items() if s <= 30},  # stops before s = 100
    ]
    for w in wrong:
        not_yet("ch09-temperature", capsys, **common, test_loss=w)
    with pytest.raises(TypeError, match="test_loss must be a dict"):
        exercises.check("ch09-temperature", **common, test_loss=[4.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="same N test pairs"):
        exercises.check(
            "ch09-temperature", **dict(common, zt_test=zt[:10]), test_loss=test_loss
        )


# --- ch09-prior -------------------------------------------------------------------------


def test_ch09_prior(small_clip, capsys):
    model, *_ = small_clip
    torch.manual_seed(1)
    vae = text2image.SceneVAE(z_dim=8, width=8).eval()
    judge = RuleJudge()
    few = list(scenes.one_object_captions(size="large", where="left")[:4]) + list(
        scenes.one_object_captions(size="small", where="top")[:4]
    )
    t = text2image.caption_labels(few)
    match_keys = ["n_objects", "shape", "colour", "size", "where"]
    prior_latents, prior_norm, prior_match = {}, {}, {}
    for lam in (0.0, 0.01, 1.0):
        z_, s_ = clip.clip_guided_latents(
            vae.decode,
            model,
            few,
            8,
            steps=3,
            lr=0.1,
            prior_weight=lam,
            restarts=1,
            generator=torch.Generator().manual_seed(5),
        )
        with torch.no_grad():
            p = judge.predict(vae.decode(z_))
        prior_latents[lam] = z_
        prior_norm[lam] = z_.norm(dim=1).mean().item() / np.sqrt(8)
        prior_match[lam] = (
            100 * clip.attribute_match(p, t, match_keys).float().mean().item()
        )
    common = dict(decode=vae.decode, model=model, judge=judge, few_prompts=few)
    answer = dict(
        prior_latents=prior_latents, prior_norm=prior_norm, prior_match=prior_match
    )
    v = verdict("ch09-prior", capsys, **common, **answer)
    assert v and "|z|/sqrt(d)" in v.message
    flipped = dict(zip(prior_latents, reversed(prior_latents.values())))
    wrong = [
        dict(
            answer, prior_norm={k: v * np.sqrt(8) for k, v in prior_norm.items()}
        ),  # |z|
        dict(answer, prior_norm={k: 0.0 for k in prior_norm}),  # zeros
        dict(answer, prior_match={k: 100 - v for k, v in prior_match.items()}),
        dict(answer, prior_match={k: v + 101 for k, v in prior_match.items()}),
        dict(  # the runs under the wrong weights
            prior_latents=flipped,
            prior_norm={
                k: z.norm(dim=1).mean().item() / np.sqrt(8) for k, z in flipped.items()
            },
            prior_match=dict(zip(prior_match, reversed(prior_match.values()))),
        ),
        {  # no run without the prior
            k: {w: v for w, v in d.items() if w > 0} for k, d in answer.items()
        },
    ]
    for w in wrong:
        not_yet("ch09-prior", capsys, **common, **w)
    with pytest.raises(ValueError, match="share their keys"):
        exercises.check(
            "ch09-prior", **common, **dict(answer, prior_norm={0.0: 1.0, 2.0: 1.0})
        )
    with pytest.raises(ValueError, match="one latent per prompt"):
        exercises.check(
            "ch09-prior",
            **common,
            **dict(answer, prior_latents={k: z[:2] for k, z in prior_latents.items()}),
        )


# --- 9.2: ch09-ddim-steps and ch09-diversity --------------------------------------------


@pytest.fixture(scope="module")
def tiny_t2i():
    torch.manual_seed(3)
    ae = text2image.LatentAutoencoder(channels=4, width=8).eval()
    model = text2image.TextUNet(channels=4, base=8, mults=(1,), cond_dim=16).eval()
    nn.init.normal_(model.unet.out.weight, std=0.1)  # untrained nets predict eps = 0
    return model, ae, diffusion.cosine_schedule(50), RuleJudge()


def test_ch09_ddim_steps(tiny_t2i, capsys):
    model, ae, sched, judge = tiny_t2i
    caps = scenes.one_object_captions(shape="circle", where="right")  # 8 prompts
    target = text2image.caption_labels(caps)
    step_images, step_adherence = {}, {}
    for k, eta in ((5, 0.0), (10, 0.0), (20, 0.0), (20, 1.0)):
        ims = text2image.generate(
            model,
            ae,
            sched,
            caps,
            w=2.0,
            steps=k,
            eta=eta,
            generator=torch.Generator().manual_seed(10),
        )
        m = text2image.content_match(judge.predict(ims), target).float().mean().item()
        step_images[(k, eta)], step_adherence[(k, eta)] = ims, 100 * m
    common = dict(judge=judge, prompts=caps)
    v = verdict(
        "ch09-ddim-steps",
        capsys,
        **common,
        step_images=step_images,
        step_adherence=step_adherence,
    )
    assert v and "stochastic" in v.message
    strict = {
        k: 100 * clip.attribute_match(judge.predict(x), target).float().mean().item()
        for k, x in step_images.items()
    }
    same = dict(step_images)
    same[(20, 1.0)] = same[(20, 0.0)]
    wrong = [
        dict(
            step_images=step_images,
            step_adherence={k: 100 - v for k, v in step_adherence.items()},
        ),
        dict(
            step_images=step_images,
            step_adherence={k: v / 100 + 0.3 for k, v in step_adherence.items()},
        ),
        dict(step_images=step_images, step_adherence=strict),  # the strict test
        dict(step_images=same, step_adherence=step_adherence),  # eta never used
        dict(  # the (20, 1) run left out
            step_images={k: v for k, v in step_images.items() if k != (20, 1.0)},
            step_adherence={k: v for k, v in step_adherence.items() if k != (20, 1.0)},
        ),
    ]
    assert strict != step_adherence
    for w in wrong:
        not_yet("ch09-ddim-steps", capsys, **common, **w)
    with pytest.raises(TypeError, match=r"\(steps, eta\) pairs"):
        exercises.check(
            "ch09-ddim-steps",
            **common,
            step_images={"5 steps": step_images[(5, 0.0)]},
            step_adherence={"5 steps": 50.0},
        )
    with pytest.raises(ValueError, match="one image per prompt"):
        exercises.check(
            "ch09-ddim-steps",
            **common,
            step_images={k: v[:3] for k, v in step_images.items()},
            step_adherence=step_adherence,
        )


def test_ch09_diversity(tiny_t2i, capsys):
    model, ae, sched, judge = tiny_t2i
    keys = ("n_objects", "colour", "size", "shape", "colour2", "size2", "shape2")
    diversity_samples, n_kinds = {}, {}
    for w in (0.0, 1.0, 3.0, 8.0):
        ims = text2image.generate(
            model,
            ae,
            sched,
            ["a large blue square at the bottom"] * 12,
            w=w,
            steps=4,
            generator=torch.Generator().manual_seed(12),
        )
        p = judge.predict(ims)
        kinds = {tuple(p[k][i].item() for k in keys) for i in range(len(ims))}
        diversity_samples[w], n_kinds[w] = ims, len(kinds)
    common = dict(judge=judge)
    v = verdict(
        "ch09-diversity",
        capsys,
        **common,
        diversity_samples=diversity_samples,
        n_kinds=n_kinds,
    )
    assert v and "w = 8" in v.message
    copies = {w: x[:1].repeat(12, 1, 1, 1) for w, x in diversity_samples.items()}
    wrong = [
        dict(diversity_samples=diversity_samples, n_kinds={w: 12 for w in n_kinds}),
        dict(diversity_samples=diversity_samples, n_kinds={w: 0 for w in n_kinds}),
        dict(diversity_samples=copies, n_kinds={w: 1 for w in n_kinds}),  # one noise
        dict(  # 6 samples only
            diversity_samples={w: x[:6] for w, x in diversity_samples.items()},
            n_kinds=n_kinds,
        ),
        dict(  # no unguided row
            diversity_samples={w: x for w, x in diversity_samples.items() if w > 0},
            n_kinds={w: k for w, k in n_kinds.items() if w > 0},
        ),
    ]
    for w in wrong:
        not_yet("ch09-diversity", capsys, **common, **w)
    with pytest.raises(ValueError, match="share their keys"):
        exercises.check(
            "ch09-diversity",
            **common,
            diversity_samples=diversity_samples,
            n_kinds={0.0: 1, 1.0: 2},
        )
    with pytest.raises(ValueError, match="diversity_samples"):
        exercises.check(
            "ch09-diversity",
            **common,
            diversity_samples={w: x * 255 for w, x in diversity_samples.items()},
            n_kinds=n_kinds,
        )
