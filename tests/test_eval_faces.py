"""dlib face metrics (vasa_jax.eval.face_metrics): CSIM, LMD and mouth opening on toy-world clips."""

import numpy as np
import pytest

from vasa_jax.data.faces import face_measures
from vasa_jax.data.toyworld import make_clip
from vasa_jax.errors import ConfigError
from vasa_jax.eval import face_metrics as fm
from vasa_jax.eval.signals import correlation

SECONDS, SIZE = 2.0, 128


@pytest.fixture(scope="module")
def analyzer():
    return fm.FaceAnalyzer(detect_every=10)


@pytest.fixture(scope="module")
def clips(analyzer):
    """Two clips of one held-out person and one of another: (clip, track) each."""
    out = {}
    for name, seed, identity in (("a", 3, 1_000_005), ("a2", 4, 1_000_005), ("b", 5, 1_000_006)):
        clip = make_clip(seed, identity=identity, seconds=SECONDS, size=SIZE)
        out[name] = (clip, analyzer.track(clip.frames, name=name))
    return out


def test_tracks(clips):
    clip, track = clips["a"]
    assert track.landmarks.shape == (50, 68, 2) and track.boxes.shape == (50, 4)
    assert track.searched.sum() == 6  # frames 0, 10, ..., 40 and the last
    assert track.detected.sum() >= 5  # dlib finds ~95 % of toy faces (vasa_jax.data.faces)
    assert 20 < np.median(track.face_size) < 60


def test_video_against_itself(analyzer, clips):
    clip, track = clips["a"]
    lmd = fm.landmark_distance(track.landmarks, track.landmarks)
    assert lmd == {"lmd_face": 0.0, "lmd_mouth": 0.0}
    index = fm.sample_frames(len(clip.frames), 4)
    own = analyzer.descriptors(clip.frames, track, index)
    np.testing.assert_allclose(fm.identity_similarity(own, own), 1.0, atol=1e-6)


def test_another_person_is_less_similar(analyzer, clips):
    clip, _ = clips["a"]
    anchor = analyzer.portrait(clip.frames[0])
    index = fm.sample_frames(50, 6)
    same = fm.identity_similarity(analyzer.descriptors(clips["a2"][0].frames, clips["a2"][1], index), anchor)
    other = fm.identity_similarity(analyzer.descriptors(clips["b"][0].frames, clips["b"][1], index), anchor)
    assert same.mean() > other.mean() + 0.02
    assert same.mean() > 0.9


def test_mouth_opening_follows_the_lips(clips):
    """dlib's lips on 128 px toy faces follow the true opening with correlation 0.5-0.9 by identity."""
    clip, track = clips["a"]
    assert correlation(fm.mouth_opening(track.landmarks), clip.truth["mouth_open"]) > 0.6


def test_lmd_units():
    rng = np.random.default_rng(0)
    ref = np.tile(np.array([[100.0, 100.0]]), (3, 68, 1)) + rng.normal(0, 20, (3, 68, 2))
    size = face_measures(ref)[2]
    moved = ref + np.array([3.0, 4.0])  # the whole face 5 px away: lip shape unchanged
    lmd = fm.landmark_distance(moved, ref)
    assert lmd["lmd_face"] == pytest.approx(np.mean(5.0 / size))
    assert lmd["lmd_mouth"] == pytest.approx(0.0, abs=1e-9)


def test_no_face_is_a_named_error(analyzer):
    with pytest.raises(ConfigError, match="--video: no face found on any of the 2 frames"):
        analyzer.track(np.full((8, 64, 64, 3), 128, np.uint8), name="--video")
    with pytest.raises(ConfigError, match="face.png: no face found"):
        analyzer.portrait(np.full((64, 64, 3), 128, np.uint8), name="face.png")
