"""lib.video (chapter 9's text-to-video): the motion grammar, the clips, the tracker and the
motion measures (checked on clips drawn here by hand), the space-time U-Net's temporal layers,
the loss, the sampler and the animation."""
import numpy as np
import pytest
import torch

from lib import diffusion, nets, text2image, video

# --- captions and clips --------------------------------------------------------------------

def test_caption_grammar_round_trip_splits_and_tokens():
    c = video.motion_caption("large", "red", "square", "left", "quickly")
    assert c == "a large red square moves left quickly"
    assert video.parse_motion_caption(c) == {"size": "large", "colour": "red", "shape": "square",
                                             "direction": "left", "speed": "quickly"}
    for bad in ("a large red square moves left", "a large red square moves sideways quickly",
                "a large red square at the top"):
        with pytest.raises(ValueError, match="motion grammar"):
            video.parse_motion_caption(bad)
    with pytest.raises(TypeError):
        video.parse_motion_caption(3)
    with pytest.raises(ValueError, match="direction"):
        video.motion_caption("large", "red", "square", "north", "quickly")
    every, train, held = (video.all_captions(s) for s in ("all", "train", "heldout"))
    assert len(every) == len(set(every)) == 4 * 4 * 2 * 4 * 2
    assert sorted(train + held) == sorted(every) and len(held) == 64
    pairs = lambda caps: {(video.parse_motion_caption(c)["shape"], video.parse_motion_caption(c)["direction"])
                          for c in caps}
    assert pairs(held) == set(video.HELDOUT_MOTIONS) and not pairs(train) & set(video.HELDOUT_MOTIONS)
    tok = video.tokenize(every)
    assert tok.shape == (256, video.MAX_TOKENS) and tok.dtype == torch.int64 and (tok > 0).all()
    assert len({tuple(t) for t in tok.tolist()}) == 256                  # every caption its own tokens
    with pytest.raises(ValueError, match="unknown word"):
        video.tokenize(["a large red square moves sideways quickly"])


def test_clips_follow_their_captions():
    s = video.moving_clips("train", 24, frames=8, seed=0)
    assert s.clips.shape == (24, 8, 3, 32, 32) and s.clips.min() >= -1 and s.clips.max() <= 1
    assert torch.equal(s.clips, video.moving_clips("train", 24, frames=8, seed=0).clips)
    assert not torch.equal(s.clips, video.moving_clips("test", 24, frames=8, seed=0).clips)
    for i, c in enumerate(s.captions):
        a = video.parse_motion_caption(c)
        assert (a["shape"], a["direction"]) not in video.HELDOUT_MOTIONS
        step = s.paths[i, 1:] - s.paths[i, :-1]                         # (frames - 1, 2) pixels
        want = torch.tensor(video.STEP[a["direction"]], dtype=torch.float32)
        want = want * {"slowly": 1.0, "quickly": 2.0}[a["speed"]]
        assert torch.allclose(step, want.expand_as(step), atol=1e-4)     # 1 or 2 px per frame, the right way
        # the background is still: pixels that never see the object do not change
        bg = (s.clips[i] - s.clips[i, :1]).abs().amax((0, 1)) == 0
        assert bg.float().mean() > 0.4
    held = video.moving_clips("heldout", 12)
    assert all((video.parse_motion_caption(c)["shape"], video.parse_motion_caption(c)["direction"])
               in video.HELDOUT_MOTIONS for c in held.captions)
    lab = held.labels
    assert set(lab) == {"shape", "colour", "size", "direction", "speed"}
    assert video.DIRECTIONS[lab["direction"][0]] == video.parse_motion_caption(held.captions[0])["direction"]
    with pytest.raises(ValueError, match="split"):
        video.moving_clips("valid", 2)
    with pytest.raises(ValueError, match="do not fit"):
        video.moving_clips("train", 2, frames=40)


# --- the instruments, on clips drawn here --------------------------------------------------

def square_clip(x0, y0, vx, vy, frames=8, size=32, grey=0.3, rgb=(0.9, 0.1, 0.1)):
    """A 5x5 coloured square whose top-left corner moves from (x0, y0) by (vx, vy) per frame
    (whole pixels), on a uniform grey background: (frames, 3, size, size) in [-1, 1]."""
    clip = np.full((frames, 3, size, size), grey)
    for f in range(frames):
        x, y = x0 + vx * f, y0 + vy * f
        clip[f, :, y:y + 5, x:x + 5] = np.array(rgb)[:, None, None]
    return torch.tensor(clip * 2 - 1, dtype=torch.float32)


def test_tracker_motion_fit_and_reading():
    clips = torch.stack([square_clip(20, 10, -2, 0), square_clip(5, 5, 0, 1), square_clip(12, 12, 0, 0)])
    c = video.object_centroids(clips)
    assert torch.allclose(c[0, 0], torch.tensor([22.0, 12.0]))          # the square's centre pixel
    fit = video.fit_motion(c)
    assert torch.allclose(fit["velocity"], torch.tensor([[-2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), atol=1e-5)
    assert fit["wobble"].abs().max() < 1e-5
    got = video.read_motion(fit["velocity"])
    assert got["direction"].tolist() == [video.DIRECTIONS.index("left"), video.DIRECTIONS.index("down"), -1]
    assert got["speed"].tolist()[:2] == [1, 0]                          # quickly, slowly
    # a jumpy track: the same end points, a wobble of about the jump
    jumpy = c[:1].clone()
    jumpy[0, 1::2, 1] += 3
    assert video.fit_motion(jumpy)["wobble"][0] > 1.0
    rep = video.motion_report(clips[:2], ["a small red square moves left quickly",
                                          "a small red square moves down quickly"])
    assert rep["direction"].tolist() == [True, True] and rep["speed"].tolist() == [True, False]
    assert rep["motion"].tolist() == [True, False] and rep["flicker"].abs().max() < 1e-6
    # no object in a frame: NaN, and no direction
    empty = clips[:1].clone()
    empty[0, 3] = 2 * 0.3 - 1
    assert torch.isnan(video.object_centroids(empty)[0, 3]).all()
    assert video.read_motion(video.fit_motion(video.object_centroids(empty))["velocity"])["direction"][0] == -1


def test_flicker_and_identity():
    still = square_clip(3, 3, 1, 0)
    flicker = still.clone()
    flicker[1::2] = torch.where(video.object_mask(still[None])[0, 1::2, None] > 0, flicker[1::2],
                                flicker[1::2] + 0.2)                     # every other frame brighter by 0.1
    f = video.background_flicker(torch.stack([still, flicker]))
    assert f[0] == 0 and f[1] == pytest.approx(0.1, abs=1e-4)
    labels = {"shape": torch.tensor([0, 0, 0, 1, 1, 2]), "colour": torch.zeros(6, dtype=torch.long),
              "size": torch.zeros(6, dtype=torch.long)}
    assert video.same_in_every_frame(labels, 3).tolist() == [True, False]
    with pytest.raises(ValueError, match="whole clips"):
        video.same_in_every_frame(labels, 4)


def test_measures_reject_bad_clips():
    good = square_clip(3, 3, 1, 0)[None]
    with pytest.raises(ValueError, match="frames, 3, H, W"):
        video.object_centroids(good[0])                                  # a single clip without N
    with pytest.raises(ValueError, match="frames, 3, H, W"):
        video.background_flicker(good[:, :, :1])                          # grey, one channel
    with pytest.raises(ValueError, match=r"\[-1, 1\]|range"):
        video.object_mask(good * 255)
    with pytest.raises(ValueError, match="empty|non-empty|at least one"):
        video.object_mask(good[:0])
    with pytest.raises(ValueError, match="one caption per clip"):
        video.motion_report(good, [])
    with pytest.raises(ValueError, match="velocity"):
        video.read_motion(torch.zeros(3))


# --- the space-time U-Net, its loss and the sampler --------------------------------------------

def small_video_model(frames=4):
    torch.manual_seed(0)
    model = text2image.TextUNet(channels=3, base=8, mults=(1, 2), cond_dim=16, map_channels=4, frames=frames,
                                vocab=len(video.VOCAB), length=video.MAX_TOKENS).eval()
    with torch.no_grad():
        model.unet.out.weight.normal_(0, 0.1)                            # the U-Net starts by predicting 0
    return model


def test_temporal_layers_start_as_identity_and_then_connect_the_frames():
    model = small_video_model()
    z = torch.randn(2, 4, 3, 8, 8)
    t = torch.tensor([5, 50])
    tok = video.tokenize(["a small red square moves left quickly", "a large blue cross moves up slowly"])
    z2 = z.clone()
    z2[:, 0] += 1.0                                                       # change frame 0 only
    with torch.no_grad():
        on, on2 = model(z, t, tok), model(z2, t, tok)
        off = model(z, t, tok, video=torch.tensor([False, False]))
    assert on.shape == z.shape
    assert torch.allclose(on[:, 1:], on2[:, 1:], atol=1e-6)              # zero-initialised: frames apart
    assert not torch.allclose(on, off)                                    # but each frame knows its time
    with torch.no_grad():
        for layer in model.unet.temporal:
            layer.attn.proj.weight.normal_(0, 0.3)
        model.unet.frame_emb.normal_(0, 0.3)
        mask = torch.tensor([True, False])                               # clip 0 a video, clip 1 images
        a, b = model(z, t, tok, video=mask), model(z2, t, tok, video=mask)
        same = model(z[:, :1].expand_as(z).contiguous(), t, tok, video=mask)
    assert torch.allclose(same[1, 1:], same[1, :1].expand_as(same[1, 1:]), atol=1e-5)  # images: no frame index
    assert (a[0, 1:] - b[0, 1:]).abs().max() > 1e-4                      # the video's other frames see it
    assert torch.allclose(a[1, 1:], b[1, 1:], atol=1e-6)                  # the images' other frames do not
    with pytest.raises(ValueError, match=r"\(N, 4, 3, H, W\)"):
        model(z[:, :3], t, tok)
    with pytest.raises(ValueError, match="video"):
        text2image.TextUNet(channels=3, base=8, cond_dim=16)(z[:, 0], t, None, video=mask)
    with pytest.raises(ValueError, match="whole clips"):
        nets.TemporalAttention(8, 4)(torch.zeros(6, 8, 2, 2))


def test_loss_and_generate():
    model = small_video_model()
    sched = diffusion.cosine_schedule(50)
    caps = ["a small red square moves left quickly", "a large blue cross moves up slowly"]
    z0 = torch.rand(2, 4, 3, 8, 8) * 2 - 1
    loss = video.video_diffusion_loss(model.train(), sched, z0, video.tokenize(caps),
                                      generator=torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.unet.temporal.parameters())
    with pytest.raises(ValueError, match="video denoiser"):
        video.video_diffusion_loss(text2image.TextUNet(channels=3, base=8, cond_dim=16), sched, z0[:, 0],
                                   video.tokenize(caps))
    model.eval()

    class Pixels(torch.nn.Module):                                      # a stand-in autoencoder: 8x8 pixels
        def decode(self, z):
            return z.clamp(-1, 1)

    with torch.no_grad():
        for layer in model.unet.temporal:
            layer.attn.proj.weight.normal_(0, 0.3)
    g = lambda: torch.Generator().manual_seed(1)
    clips = video.generate(model, Pixels(), sched, caps, steps=4, generator=g())
    frames = video.generate(model, Pixels(), sched, caps, steps=4, video=False, generator=g())
    assert clips.shape == frames.shape == (2, 4, 3, 8, 8) and clips.abs().max() <= 1
    assert not torch.allclose(clips, frames)                              # same noise, the frames connected or not
    x_T = torch.randn(2, 1, 3, 8, 8).repeat(1, 4, 1, 1, 1)
    same = video.generate(model, Pixels(), sched, caps, steps=4, video=False, x_T=x_T)
    assert (same[:, 1:] - same[:, :1]).abs().max() < 1e-5                 # independent frames from one noise
    with pytest.raises(ValueError, match="x_T"):
        video.generate(model, Pixels(), sched, caps, steps=4, x_T=x_T[:, :2])
    with pytest.raises(ValueError, match="non-empty list"):
        video.generate(model, Pixels(), sched, caps[0], steps=4)
    with pytest.raises(TypeError, match="video must be"):
        video.generate(model, Pixels(), sched, caps, steps=4, video=1)


def test_play_makes_one_frame_per_clip_frame():
    s = video.moving_clips("test", 2, frames=5)
    sc = video.play({"a": s.clips[:1], "b": s.clips[1:]}, title="two clips")
    assert len(sc) == 5 and sc.labels[-1] == "frame 5 / 5"
    with pytest.raises(ValueError, match="same number"):
        video.play({"a": s.clips, "b": s.clips[:1]}, title="x")
