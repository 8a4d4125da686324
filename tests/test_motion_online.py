"""The online mode (VASA-1's): hops of a window sampled with bounded look-ahead, on the tiny config."""

import dataclasses

import jax
import numpy as np
import pytest
from motion_models import MOTION, W, K, M, perturbed_params, random_stats

from vasa_jax.audio import make_audio_encoder
from vasa_jax.audio.features import SAMPLES_PER_FRAME
from vasa_jax.data import toyworld
from vasa_jax.motion.sampling import Controls, OnlineMotionStream, sample_online, sample_windows

CONTROLS = Controls(gaze=(8.0, -3.0))
LONG = 2 * W + 5
HOP, LOOKAHEAD = 3, 2


@pytest.fixture(scope="module")
def params():
    return {"denoiser": perturbed_params(1), "stats": random_stats(1)}


@pytest.fixture(scope="module")
def features():
    audio, _ = toyworld.perform(4, identity=6, seconds=LONG / toyworld.FPS)
    return audio, make_audio_encoder("mel").features(audio)


def online(params, feats, key=7, config=MOTION, **options):
    options = {"hop": HOP, "lookahead": LOOKAHEAD, **options}
    return np.asarray(sample_online(params, feats, CONTROLS, jax.random.key(key), config=config, steps=4, **options))


def test_online_has_the_audios_length_and_is_deterministic(params, features):
    feats = features[1]
    motion = online(params, feats)
    assert motion.shape == (LONG, M) and np.all(np.isfinite(motion))
    np.testing.assert_array_equal(online(params, feats), motion)
    assert not np.allclose(online(params, feats, key=8), motion, atol=1e-3)
    # A hop sees no audio past its look-ahead: changing later audio leaves the earlier hops alone.
    changed = feats.copy()
    changed[HOP + LOOKAHEAD:] += 1.0
    np.testing.assert_allclose(online(params, changed)[:HOP], motion[:HOP], atol=1e-6)
    assert not np.allclose(online(params, changed)[HOP:2 * HOP], motion[HOP:2 * HOP], atol=1e-3)
    with pytest.raises(ValueError, match="hop and lookahead"):
        online(params, feats, hop=W, lookahead=1)


def test_online_and_offline_share_their_window_function(params, features):
    """A hop of a whole window with no look-ahead, continuing its context as windows do, is the offline scan
    exactly: same window function, same context (the last K frames), same noise, the same padded last window."""
    feats = features[1]
    offline = sample_windows(params, feats, CONTROLS, jax.random.key(7), config=MOTION, steps=4)
    same_seams = dataclasses.replace(MOTION, online_seam_pose=MOTION.seam_frames,
                                     online_seam_dynamics=MOTION.seam_frames)
    np.testing.assert_allclose(online(params, feats, hop=W, lookahead=0, config=same_seams), offline, rtol=1e-5,
                               atol=1e-5)
    # The online mode's own continuation (the head over more frames than the face) is another sampling.
    assert not np.allclose(online(params, feats, hop=W, lookahead=0), offline, atol=1e-3)


def test_stream_equals_the_scan_and_chunking_does_not_matter(params, features):
    audio, feats = features
    want = online(params, feats)
    stream = OnlineMotionStream(params, CONTROLS, jax.random.key(7), config=MOTION, steps=4, hop=HOP,
                                lookahead=LOOKAHEAD)
    hops = []
    for chunk in np.split(feats, [1, 7, 8, 8 + W + 2]):
        hops += stream.push(chunk)
    hops += stream.flush()
    assert [len(h) for h in hops[:-1]] == [HOP] * (len(hops) - 1) and sum(map(len, hops)) == LONG
    np.testing.assert_allclose(np.concatenate(hops), want, rtol=1e-4, atol=1e-4)
    # From audio samples through the mel encoder's stream (its frames equal its offline features).
    stream = OnlineMotionStream(params, CONTROLS, jax.random.key(7), config=MOTION, steps=4, hop=HOP,
                                lookahead=LOOKAHEAD, audio_stream=make_audio_encoder("mel").stream(step_frames=1))
    hops = []
    for chunk in np.array_split(audio, 11):
        hops += stream.push_audio(chunk)
    hops += stream.flush()
    np.testing.assert_allclose(np.concatenate(hops), want, rtol=1e-4, atol=1e-4)


def test_the_first_frame_needs_only_hop_plus_lookahead_frames_of_audio(params, features):
    audio, feats = features
    stream = OnlineMotionStream(params, CONTROLS, jax.random.key(7), config=MOTION, steps=4, hop=HOP,
                                lookahead=LOOKAHEAD)
    consumed = 0
    while not stream.push(feats[consumed:consumed + 1]):
        consumed += 1
    assert consumed + 1 == HOP + LOOKAHEAD
    # Counted in samples through the mel stream: hop + lookahead frames plus the encoder's 20 ms overhang.
    encoder_stream = make_audio_encoder("mel").stream(step_frames=1)
    stream = OnlineMotionStream(params, CONTROLS, jax.random.key(7), config=MOTION, steps=4, hop=HOP,
                                lookahead=LOOKAHEAD, audio_stream=encoder_stream)
    samples = 0
    while not stream.push_audio(audio[samples:samples + 80]):  # 5 ms chunks
        samples += 80
    samples += 80
    limit = (HOP + LOOKAHEAD) * SAMPLES_PER_FRAME + encoder_stream.latency_seconds * 16000
    assert limit - 80 < samples <= limit
    assert K <= W  # the context the hops carry fits a window
