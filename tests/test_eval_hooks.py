"""Sync-C / Sync-D and Frechet distances from supplied networks (vasa_jax.eval.hooks), on constructed features."""

import numpy as np
import pytest

from vasa_jax.errors import ConfigError
from vasa_jax.eval import hooks


@pytest.mark.parametrize("offset", [0, 3, -2])
def test_sync_scores_find_the_offset(offset):
    rng = np.random.default_rng(0)
    video = rng.normal(size=(60, 16))
    audio = np.roll(video, -offset, axis=0)  # audio frame t - offset shows what video frame t shows
    scores = hooks.sync_scores(video, audio)
    assert scores["syncnet_offset_frames"] == offset
    assert scores["sync_d"] < 0.5  # edge frames rolled in from the other end add a little
    assert scores["sync_c"] > 4.0
    noise = hooks.sync_scores(video, rng.normal(size=(60, 16)))
    assert noise["sync_c"] < 1.0 and noise["sync_d"] > scores["sync_d"]


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4000, 3))
    assert hooks.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, mean moved by (1, 2, 2): the distance is |shift|^2 = 9.
    assert hooks.frechet_distance(a, a + np.array([1.0, 2.0, 2.0])) == pytest.approx(9.0, abs=1e-6)
    # N(0, I) against N(0, 4 I) in 3-D: tr(I + 4I - 2 * 2I) = 3.
    assert hooks.frechet_distance(rng.normal(size=(20000, 3)), 2 * rng.normal(size=(20000, 3))) == pytest.approx(
        3.0, abs=0.1)


def test_fid_and_fvd_through_a_feature_network():
    frames = np.random.default_rng(2).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    mean_colour = lambda x: x.reshape(len(x), -1, 3).mean(1)  # noqa: E731 - a stand-in network
    assert hooks.fid(mean_colour, frames, frames) == pytest.approx(0.0, abs=1e-6)
    seen = []
    clip_mean = lambda x: seen.append(x.shape) or x.reshape(len(x), -1).mean(1, keepdims=True)  # noqa: E731
    assert hooks.fvd(clip_mean, frames, frames, clip_frames=16) == pytest.approx(0.0, abs=1e-6)
    assert seen[0] == (3, 16, 8, 8, 3)
    with pytest.raises(ValueError, match="at least 2 clips of 25 frames"):
        hooks.fvd(clip_mean, frames[:30], frames, clip_frames=25)


def test_missing_networks_are_clear_errors():
    for call, name in ((lambda: hooks.syncnet_metrics(None, np.zeros((5, 8, 8, 3)), np.zeros(100)), "--syncnet"),
                       (lambda: hooks.fid(None, None, None), "--fid"), (lambda: hooks.fvd(None, None, None), "--fvd")):
        with pytest.raises(ConfigError, match=f"supply it as {name} module:function"):
            call()
    with pytest.raises(ConfigError, match="expected module:function"):
        hooks.load_hook("nocolon", "--syncnet")
    with pytest.raises(ConfigError, match="cannot import no_such_module_here"):
        hooks.load_hook("no_such_module_here:embed", "--fid")
    with pytest.raises(ConfigError, match="has no function nothing"):
        hooks.load_hook("numpy:nothing", "--fvd")
    assert hooks.load_hook("numpy:mean", "--fid") is np.mean
