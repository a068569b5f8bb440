"""Chapter 9's text-to-video exercise checks: the reference answer passes, wrong answers get a
hint. A tiny random space-time U-Net (8x8 "pixels" for latents) stands in for the notebook's
trained one; no notebook is run."""

import pytest
import torch
from exercise_testing import verdict

from lib import diffusion, text2image, video

CAPS = [
    "a small red square moves left quickly",
    "a large blue cross moves up slowly",
    "a large green circle moves down quickly",
]


class Pixels(torch.nn.Module):
    def decode(self, z):
        return z.clamp(-1, 1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = text2image.TextUNet(
        channels=3,
        base=8,
        mults=(1, 2),
        cond_dim=16,
        map_channels=4,
        frames=4,
        vocab=len(video.VOCAB),
        length=video.MAX_TOKENS,
    ).eval()
    with torch.no_grad():
        m.unet.out.weight.normal_(0, 0.1)
        for layer in m.unet.temporal:
            layer.attn.proj.weight.normal_(0, 0.3)
    return m


def sample(model, w, video_on=True, x_T=None, seed=1):
    return video.generate(
        model,
        Pixels(),
        diffusion.cosine_schedule(50),
        CAPS,
        w=w,
        steps=4,
        video=video_on,
        x_T=x_T,
        generator=torch.Generator().manual_seed(seed),
    )


def motion(clips):
    rep = video.motion_report(clips, CAPS)
    return 100 * rep["motion"].float().mean().item(), rep["flicker"].mean().item()


def test_ch09_video_guidance(model, capsys):
    clips = {w: sample(model, w) for w in (0.0, 1.0, 3.0)}
    rates = {w: motion(c)[0] for w, c in clips.items()}
    v = verdict(
        "ch09-video-guidance",
        capsys,
        guide_caps=CAPS,
        clips_by_w=clips,
        motion_by_w=rates,
    )
    assert v and "w = 3" in v.message, str(v)
    wrong = dict(rates)
    wrong[3.0] = rates[3.0] + 40
    v = verdict(
        "ch09-video-guidance",
        capsys,
        guide_caps=CAPS,
        clips_by_w=clips,
        motion_by_w=wrong,
    )
    assert not v and "motion_report" in v.message, str(v)
    same = {w: clips[0.0] for w in clips}  # the scale never reached the sampler
    v = verdict(
        "ch09-video-guidance",
        capsys,
        guide_caps=CAPS,
        clips_by_w=same,
        motion_by_w={w: rates[0.0] for w in clips},
    )
    assert not v and "scale reach" in v.message, str(v)
    weak = {w: clips[w] for w in (0.0, 1.0)} | {2.0: sample(model, 2.0)}
    v = verdict(
        "ch09-video-guidance",
        capsys,
        guide_caps=CAPS,
        clips_by_w=weak,
        motion_by_w={w: motion(c)[0] for w, c in weak.items()},
    )
    assert not v and "strong guidance" in v.message, str(v)
    with pytest.raises(ValueError, match="share their keys"):
        video_guidance_keys = {0.0: 1.0, 1.0: 1.0, 5.0: 1.0}
        verdict(
            "ch09-video-guidance",
            capsys,
            guide_caps=CAPS,
            clips_by_w=clips,
            motion_by_w=video_guidance_keys,
        )


def test_ch09_video_same_noise(model, capsys):
    one = torch.randn(len(CAPS), 1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    clips = sample(model, 3.0, video_on=False, x_T=one.repeat(1, 4, 1, 1, 1))
    m, f = motion(clips)
    v = verdict(
        "ch09-video-same-noise",
        capsys,
        same_caps=CAPS,
        clips_same=clips,
        motion_same=m,
        flicker_same=f,
    )
    assert v and "frames agree" in v.message, str(v)
    own = sample(model, 3.0, video_on=False)  # every frame its own noise
    m2, f2 = motion(own)
    v = verdict(
        "ch09-video-same-noise",
        capsys,
        same_caps=CAPS,
        clips_same=own,
        motion_same=m2,
        flicker_same=f2,
    )
    assert not v and "same starting noise" in v.message, str(v)
    v = verdict(
        "ch09-video-same-noise",
        capsys,
        same_caps=CAPS,
        clips_same=clips,
        motion_same=m,
        flicker_same=f + 0.05,
    )
    assert not v and "flicker" in v.message, str(v)
    with pytest.raises(ValueError, match="one clip per caption"):
        verdict(
            "ch09-video-same-noise",
            capsys,
            same_caps=CAPS[:2],
            clips_same=clips,
            motion_same=m,
            flicker_same=f,
        )
