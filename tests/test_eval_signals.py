"""Per-frame signal metrics (vasa_jax.eval.signals) on cases whose answers are known."""

import numpy as np
import pytest

from vasa_jax.data.toyworld import perform
from vasa_jax.eval import signals
from vasa_jax.motion import evaluate as motion_evaluate


@pytest.fixture(scope="module")
def toy():
    audio, truth = perform(5, identity=1_000_003, seconds=6.0)
    return audio, truth


def test_delta_p_of_frozen_and_steady_poses():
    frozen = np.tile([[10.0, -5.0, 3.0]], (50, 1))
    assert signals.delta_p(frozen) == 0.0
    ramp = np.stack([np.arange(50) * 0.5, -np.arange(50) * 0.2, np.zeros(50)], 1)
    assert signals.delta_p(ramp) == pytest.approx((0.5 + 0.2 + 0.0) / 3)
    assert signals.delta_p(np.stack([ramp, frozen])) == pytest.approx((0.7 / 3) / 2)  # [C, T, M] too
    stats = signals.pose_statistics(ramp)
    assert stats["yaw_delta"] == pytest.approx(0.5) and stats["yaw_range"] == pytest.approx(24.5)
    assert stats["roll_std"] == 0.0 and stats["delta_p"] == signals.delta_p(ramp)
    assert motion_evaluate.delta_p is signals.delta_p  # one Delta-P for every evaluation
    clips = np.stack([ramp, frozen])  # [C, T, 3]
    assert motion_evaluate.pose_spread(clips) == pytest.approx((ramp.std(0).mean() + 0.0) / 2)


def test_boundary_jumps_tell_a_seam_from_random_events():
    """Random-walk motion with random spikes (blink-like events) anywhere: jump by jump, some boundary jumps exceed
    the within-window 95th percentile, but the seam test (mean jump by offset in the window) passes; a step added
    at every boundary fails both."""
    rng = np.random.default_rng(0)
    clips, frames, window = 64, 300, 50
    motion = np.cumsum(rng.normal(0, 0.1, (clips, frames, 3)), axis=1)
    motion[rng.random((clips, frames)) < 0.05] += 2.0
    std = np.ones(3)
    jumps = motion_evaluate.boundary_jumps(motion, std, window)
    assert jumps["across"].size == clips * 5 and jumps["by_offset"].shape == (window,)
    assert jumps["by_offset"][0] == pytest.approx(jumps["across"].mean())
    assert jumps["across"].max() > np.percentile(jumps["inside"], 95)  # the strict reading fails on events alone
    seam = motion_evaluate.seam_metrics(jumps)
    assert seam["seam_boundary"] <= seam["seam_inside_p95"]
    stepped = motion + 1.5 * (np.arange(frames) // window)[None, :, None]
    seam = motion_evaluate.seam_metrics(motion_evaluate.boundary_jumps(stepped, std, window), "x_")
    assert seam["x_seam_boundary"] > seam["x_seam_inside_p95"]


def test_correlation():
    x = np.sin(np.arange(100) / 5)
    assert signals.correlation(x, 3 * x + 1) == pytest.approx(1.0)
    assert signals.correlation(x, -x) == pytest.approx(-1.0)
    assert signals.correlation(x, np.ones(100)) == 0.0


def test_audio_envelope_frames():
    audio = np.concatenate([np.zeros(640), np.full(640, 0.5), -np.full(320, 0.25)]).astype(np.float32)
    env = signals.audio_envelope(audio)
    np.testing.assert_allclose(env, [0.0, 0.5, np.sqrt(0.25**2 / 2)], rtol=1e-6)  # frame rule: round(N / 640)
    assert signals.audio_envelope(audio, 5).shape == (5,)


@pytest.mark.parametrize("shift", [0, 2, -3, 4])
def test_lip_sync_finds_an_audio_shift(toy, shift):
    """Toy truth mouth against its own audio peaks at lag 0; audio k frames early (the video trails) at +k."""
    audio, truth = toy
    mouth = truth["mouth_open"]
    if shift >= 0:
        moved = audio[shift * 640:]  # audio starts k frames into the speech: the mouth comes k frames late
    else:
        moved = np.concatenate([np.zeros(-shift * 640, np.float32), audio])
    result = signals.lip_sync(mouth, moved, max_lag=5)
    assert result["sync_lag_frames"] == shift
    assert result["sync_correlation"] > 0.5
    if shift:
        assert result["sync_correlation_lag0"] < result["sync_correlation"]


def test_lag_search_needs_enough_frames():
    with pytest.raises(ValueError, match="needs more than"):
        signals.lagged_correlations(np.ones(10), np.ones(10), max_lag=5)
