"""Stage-2 sampling on the tiny config: multi-condition CFG, DDIM / DDPM, windows by scan, and streaming."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from motion_models import MOTION, A, M, W, full_conditions, perturbed_params, random_stats

from vasa_jax.audio import make_audio_encoder
from vasa_jax.data import toyworld
from vasa_jax.motion.denoiser import MotionDenoiser
from vasa_jax.errors import ConfigError
from vasa_jax.motion.sampling import Controls, MotionStream, continue_context, guided_x0, sample_windows

CONTROLS = Controls(gaze=(8.0, -3.0))
LONG = 2 * W + 5  # three windows, the last one padded


@pytest.fixture(scope="module")
def params():
    return {"denoiser": perturbed_params(0), "stats": random_stats()}


@pytest.fixture(scope="module")
def features():
    audio, _ = toyworld.perform(3, identity=5, seconds=LONG / toyworld.FPS)
    return audio, make_audio_encoder("mel").features(audio)


@pytest.fixture(scope="module")
def ddpm_motion(params, features):
    return np.asarray(sample_windows(params, features[1], CONTROLS, jax.random.key(7), config=MOTION, sampler="ddpm"))


def test_cfg_with_zero_scales_is_the_conditional_pass_and_follows_vasa(params):
    cond = full_conditions(jax.random.key(1), 2)
    x, t = jax.random.normal(jax.random.key(2), (2, W, M)), jnp.array([30, 4])
    guided = jax.jit(lambda scales: guided_x0(params["denoiser"], MOTION, x, t, cond, scales))
    apply = jax.jit(lambda c: MotionDenoiser(MOTION).apply({"params": params["denoiser"]}, x, t, c))
    full = np.asarray(apply(cond))
    zero = {name: jnp.float32(0.0) for name in ("audio", "gaze", "distance", "emotion")}
    # Every pass is computed (one batch of five) and weighted by 0: exactly the conditional pass.
    np.testing.assert_allclose(guided(zero), full, rtol=1e-5, atol=1e-5)
    scales = dict(zero, audio=jnp.float32(0.5), gaze=jnp.float32(1.0))
    no_audio, no_gaze = np.asarray(apply(cond.drop("audio"))), np.asarray(apply(cond.drop("gaze")))
    np.testing.assert_allclose(guided(scales), 2.5 * full - 0.5 * no_audio - 1.0 * no_gaze, rtol=1e-4, atol=1e-4)
    assert not np.allclose(no_audio, full, atol=1e-3) and not np.allclose(no_gaze, full, atol=1e-3)


def test_windows_cover_the_audio_and_are_deterministic(params, features, ddpm_motion):
    assert ddpm_motion.shape == (LONG, M) and np.all(np.isfinite(ddpm_motion))
    again = sample_windows(params, features[1], CONTROLS, jax.random.key(7), config=MOTION, sampler="ddpm")
    np.testing.assert_array_equal(again, ddpm_motion)
    other = sample_windows(params, features[1], CONTROLS, jax.random.key(8), config=MOTION, sampler="ddpm")
    assert not np.allclose(other, ddpm_motion, atol=1e-3)
    assert sample_windows(params, features[1][:0], CONTROLS, jax.random.key(7), config=MOTION).shape == (0, M)


def test_the_first_window_needs_no_context(params, features, ddpm_motion):
    """A clip of one window is a first window alone; it equals the first window of a longer clip (a window sees
    no later audio), and shorter audio is padded and trimmed."""
    one = sample_windows(params, features[1][:W], CONTROLS, jax.random.key(7), config=MOTION, sampler="ddpm")
    np.testing.assert_allclose(one, ddpm_motion[:W], rtol=1e-5, atol=1e-5)
    short = sample_windows(params, features[1][:W - 3], CONTROLS, jax.random.key(7), config=MOTION, sampler="ddpm")
    assert short.shape == (W - 3, M) and np.all(np.isfinite(short))
    ddim = sample_windows(params, features[1][:W], CONTROLS, jax.random.key(7), config=MOTION, sampler="ddim")
    np.testing.assert_array_equal(ddim, sample_windows(params, features[1][:W], CONTROLS, jax.random.key(7),
                                                       config=MOTION, sampler="ddim"))
    assert not np.allclose(ddim, one, atol=1e-3)
    with pytest.raises(ValueError, match="audio features must be"):
        sample_windows(params, features[1][:, :A - 1], CONTROLS, jax.random.key(7), config=MOTION)


def test_streaming_equals_the_scan(params, features, ddpm_motion):
    audio, feats = features
    stream = MotionStream(params, CONTROLS, jax.random.key(7), config=MOTION, sampler="ddpm")
    windows, sizes = [], []
    for chunk in np.split(feats, [3, 4, 4 + W + 2, 2 * W + 1]):  # uneven chunks, one longer than a window
        ready = stream.push(chunk)
        windows += ready
        sizes.append(len(ready))
    assert sizes == [0, 0, 1, 1, 0]  # each window as soon as its last frame is in
    windows += stream.flush()
    assert [len(w) for w in windows] == [W, W, LONG - 2 * W]
    np.testing.assert_allclose(np.concatenate(windows), ddpm_motion, rtol=1e-5, atol=1e-5)
    # From audio samples through the mel encoder's stream (equal to its offline features).
    stream = MotionStream(params, CONTROLS, jax.random.key(7), config=MOTION, sampler="ddpm",
                          audio_stream=make_audio_encoder("mel").stream())
    windows = []
    for chunk in np.array_split(audio, 7):
        windows += stream.push_audio(chunk)
    windows += stream.flush()
    np.testing.assert_allclose(np.concatenate(windows), ddpm_motion, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="flushed"):
        stream.push(feats[:1])


def test_windows_continue_their_context(params, features):
    """With seam_frames > 0 each window starts where its context's last step points (exactly: the last step's
    X0 estimate is the output), the shift fades out over seam_frames frames, and a window without context (the
    first) is left as the model made it."""
    cond = full_conditions(jax.random.key(3), 2)
    cond = cond.replace(context_mask=jnp.array([True, False]))
    x0 = jax.random.normal(jax.random.key(4), (2, W, M))
    assert continue_context(x0, cond, 0) is x0
    out = np.asarray(continue_context(x0, cond, 3))
    ctx = np.asarray(cond.context_motion)
    np.testing.assert_allclose(out[0, 0], 2 * ctx[0, -1] - ctx[0, -2], rtol=1e-5, atol=1e-5)
    shift = out[0] - np.asarray(x0[0])
    np.testing.assert_allclose(shift[1], 0.75 * shift[0], rtol=1e-5, atol=1e-5)  # half a cosine over 3 frames
    np.testing.assert_allclose(shift[2], 0.25 * shift[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[0, 3:], np.asarray(x0[0, 3:]))
    np.testing.assert_array_equal(out[1], np.asarray(x0[1]))
    # The head (the first POSE_DIM features) and the rest over their own spans (the online mode's).
    split = np.asarray(continue_context(x0, cond, 3, 0))
    np.testing.assert_allclose(split[0, :, :6], out[0, :, :6], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(split[0, :, 6:], np.asarray(x0[0, :, 6:]))

    assert MOTION.seam_frames == 4  # the default
    motion = np.asarray(sample_windows(params, features[1], CONTROLS, jax.random.key(7), config=MOTION,
                                       sampler="ddpm"))
    plain = np.asarray(sample_windows(params, features[1], CONTROLS, jax.random.key(7),
                                      config=dataclasses.replace(MOTION, seam_frames=0), sampler="ddpm"))
    scale = np.abs(plain).max()
    # The first window has no context. The two programs differ, so XLA may order their float sums differently:
    # equal to float32 rounding accumulated over the DDPM steps, relative to the motion's scale.
    np.testing.assert_allclose(motion[:W], plain[:W], rtol=0, atol=1e-5 * scale)
    for start in (W, 2 * W):  # the motion's own last step goes on across the boundary
        np.testing.assert_allclose(motion[start] - motion[start - 1], motion[start - 1] - motion[start - 2],
                                   atol=1e-4 * scale)
        assert not np.allclose(plain[start] - plain[start - 1], plain[start - 1] - plain[start - 2],
                               atol=1e-2 * scale)
    with pytest.raises(ConfigError, match="seam_frames"):
        dataclasses.replace(MOTION, seam_frames=W + 1)
