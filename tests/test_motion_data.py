"""Stage-2 data on the tiny config: the cache (toy-world truth as motion, audio features, labels) and the grain
pipeline of windows with their previous-window context."""

import numpy as np
import pytest

from vasa_jax.audio import make_audio_encoder
from vasa_jax.config import load_config
from vasa_jax.data import toyworld
from vasa_jax.data.motion_data import (TOY_TRUTH_LAYOUT, MotionCache, MotionSource, MotionWindowSource, build_cache,
                                       cache_dir, clip_plan, motion_window_batches, window_conditions_from_labels)
from vasa_jax.errors import ConfigError


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    c = load_config("configs/tiny.py")
    c.motion_data.cache_dir = str(tmp_path_factory.mktemp("motion_cache"))
    return c


@pytest.fixture(scope="module")
def cache(config):
    return MotionCache(build_cache(config, "train"))


def test_cache_holds_exact_truth_and_features(config, cache):
    frames = round(config.motion_data.clip_seconds * toyworld.FPS)
    assert cache.num_clips == config.motion_data.train_clips
    assert list(cache.clip_lengths()) == [frames] * cache.num_clips
    assert cache.meta["motion_dim"] == len(TOY_TRUTH_LAYOUT) and cache.meta["audio_dim"] == 80
    identity, seed = clip_plan("train", 1)
    clip = cache.clip(1)
    assert (clip["identity"], clip["seed"]) == (identity, seed)
    audio, truth = toyworld.perform(seed, identity=identity, seconds=config.motion_data.clip_seconds)
    np.testing.assert_array_equal(clip["motion"][:, :6], toyworld.pose_vectors(truth))
    np.testing.assert_array_equal(clip["motion"][:, 6], truth["mouth_open"])
    np.testing.assert_array_equal(clip["motion"][:, 9:11], truth["gaze"])
    np.testing.assert_allclose(clip["distance"], 1 / truth["scale"], rtol=1e-6)
    np.testing.assert_allclose(clip["audio"], make_audio_encoder("mel").features(audio), rtol=1e-6)
    # Built once: a second call finds it; held-out clips are held-out people.
    assert build_cache(config, "train") == cache.path
    assert all(toyworld.is_heldout(clip_plan("heldout", i)[0]) for i in range(3))
    assert not any(toyworld.is_heldout(clip_plan("train", i)[0]) for i in range(50))
    other = config.copy_and_resolve_references()
    other.motion_data.clip_seconds = 2.0
    assert cache_dir(other, "train") != cache.path  # another data definition, another cache


def test_windows_carry_their_previous_frames(config, cache):
    w, k = 16, 4
    source = MotionWindowSource(cache.path, w, k, seed=3)
    starts = {source.locate(i)[1] for i in range(200)}
    assert min(starts) == 0 and max(starts) == 30 - w  # uniform over every window of every clip
    for i in range(20):
        clip, start = source.locate(i)
        item, full = source[i], cache.clip(clip)
        np.testing.assert_array_equal(item["motion"], full["motion"][start:start + w])
        np.testing.assert_array_equal(item["audio"], full["audio"][start:start + w])
        assert item["has_context"] == (start >= k)
        if start >= k:
            np.testing.assert_array_equal(item["context_motion"], full["motion"][start - k:start])
            np.testing.assert_array_equal(item["context_audio"], full["audio"][start - k:start])
        np.testing.assert_allclose(item["gaze"], np.median(full["gaze"][start:start + w], axis=0))
        assert item["has_gaze"] and item["has_distance"] and item["has_emotion"]
    it = motion_window_batches(cache.path, window=w, context=k, batch_size=4, shard_index=0, shard_count=1)
    first = next(it)
    assert first["motion"].shape == (4, w, 12) and first["context_audio"].shape == (4, k, 80)
    state = it.get_state()
    expected = next(it)
    again = motion_window_batches(cache.path, window=w, context=k, batch_size=4, shard_index=0, shard_count=1)
    again.set_state(state)
    np.testing.assert_array_equal(next(again)["motion"], expected["motion"])


def test_missing_labels_become_missing_conditions():
    gaze = np.full((5, 2), np.nan, np.float32)
    distance = np.array([1.0, np.nan, 3.0, np.nan, 2.0], np.float32)
    g, has_g, d, has_d, e, has_e = window_conditions_from_labels(gaze, distance, np.zeros((5, 1), np.float32))
    assert not has_g and np.all(g == 0)  # the value under a missing label is never NaN (it is masked anyway)
    assert has_d and d[0] == pytest.approx(2.0)  # frames without the label are left out
    assert has_e


def test_incomplete_sources_say_what_to_do(config, tmp_path):
    c = config.copy_and_resolve_references()
    c.motion_data.source = "shards"
    with pytest.raises(ConfigError, match="data.shards"):
        MotionSource(c, "train")
    c.data.shards = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="nowhere: shards folder not found"):
        MotionSource(c, "train")
    c.motion_data.source = "face_model"
    with pytest.raises(ConfigError, match="face_workdir"):
        MotionSource(c, "train")
    c.motion_data.source = "videos"
    with pytest.raises(ConfigError, match="toy_truth"):
        MotionSource(c, "train")
