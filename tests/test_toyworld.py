"""The toy world's clips: determinism, shapes, and the relations that make the two VASA stages learnable."""

import librosa
import numpy as np
import pytest

from vasa_jax.data.toyworld import (
    GAZE_LIMITS, HELDOUT_IDENTITIES, PHONES, POSE_LIMITS, TRAIN_IDENTITIES, TRUTH_DOC, VISEMES, make_clip,
    perform, sample_identity,
)
from vasa_jax.data.toyworld.speech import gaussian_smooth
from vasa_jax.io import read_video

VOWEL = np.array([p.kind == "vowel" for p in PHONES])
PAUSE = np.array([p.kind == "pause" for p in PHONES])


@pytest.fixture(scope="module")
def clip():
    return make_clip(11, identity=4, seconds=2.0, size=64, parts=True)


def test_same_seed_same_clip(clip):
    again = make_clip(11, identity=4, seconds=2.0, size=64, parts=True)
    np.testing.assert_array_equal(clip.frames, again.frames)
    np.testing.assert_array_equal(clip.audio, again.audio)
    for key in clip.truth:
        np.testing.assert_array_equal(clip.truth[key], again.truth[key])


def test_other_seed_or_identity_differs(clip):
    other_seed = make_clip(12, identity=4, seconds=2.0, size=64)
    assert not np.allclose(other_seed.audio, clip.audio)
    assert not np.allclose(other_seed.truth["mouth_open"], clip.truth["mouth_open"])
    other_person = make_clip(11, identity=5, seconds=2.0, size=64)
    assert np.abs(other_person.frames.astype(int) - clip.frames).mean() > 10


def test_shapes_and_ranges(clip):
    t = 50
    assert clip.frames.shape == (t, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.parts.shape == (t, 64, 64)
    assert clip.audio.dtype == np.float32 and clip.audio.shape == (t * 640,)
    assert clip.sample_rate == 16000 and clip.fps == 25
    assert set(TRUTH_DOC) == set(clip.truth)
    for key, value in clip.truth.items():
        assert value.shape[0] == t, key
    assert clip.truth["gaze"].shape == (t, 2) and clip.truth["landmarks"].shape == (t, 8, 2)
    for key, limit in zip(("yaw", "pitch", "roll"), POSE_LIMITS):
        assert np.abs(clip.truth[key]).max() <= limit
    assert np.all(np.abs(clip.truth["gaze"]) <= GAZE_LIMITS)
    for key in ("mouth_open", "blink"):
        assert 0 <= clip.truth[key].min() and clip.truth[key].max() <= 1
    assert clip.truth["viseme"].max() < len(VISEMES)
    assert 0.05 < np.abs(clip.audio).max() <= 1.0


def test_resolution_is_configurable():
    for size in (64, 96, 512):
        frames = make_clip(0, identity=1, seconds=0.04, size=size).frames
        assert frames.shape == (1, size, size, 3)


def test_mouth_opens_for_vowels_and_the_image_shows_it():
    ratios, image_corr = [], []
    for seed in range(3):
        c = make_clip(seed, identity=seed + 20, seconds=3.0, size=96, parts=True)
        phone, mouth = c.truth["phone"], c.truth["mouth_open"]
        ratios.append(mouth[VOWEL[phone]].mean() / mouth[PAUSE[phone]].mean())
        # Inside-of-mouth pixels in the image follow the ground-truth opening.
        inside = ((c.parts == 8) | (c.parts == 9)).sum(axis=(1, 2))  # mouth_inside, teeth
        image_corr.append(np.corrcoef(inside, mouth)[0, 1])
    assert min(ratios) > 3.0, ratios
    assert min(image_corr) > 0.8, image_corr


def test_audio_is_louder_in_vowels_than_in_pauses():
    audio, truth = perform(5, identity=9, seconds=6.0)
    phone = truth["phone"]
    energy = np.sqrt((audio.reshape(len(phone), 640).astype(np.float64) ** 2).mean(1))  # RMS per frame
    assert energy[VOWEL[phone]].mean() > 8 * energy[PAUSE[phone]].mean()
    # Voiced frames carry a pitch, pauses none.
    assert (truth["f0"][VOWEL[phone]] > 60).mean() > 0.9
    assert (truth["f0"][PAUSE[phone]] == 0).mean() > 0.5


def test_fricatives_are_high_frequency_noise():
    audio, truth = perform(8, identity=3, seconds=8.0)
    spec = np.abs(librosa.stft(np.pad(audio, (0, 640)), n_fft=640, hop_length=640, center=False)).T[: len(truth["phone"])]
    freqs = librosa.fft_frequencies(sr=16000, n_fft=640)
    centroid = (spec * freqs).sum(1) / (spec.sum(1) + 1e-9)
    s_frames = truth["phone"] == [p.name for p in PHONES].index("s")
    assert s_frames.sum() > 0
    assert np.median(centroid[s_frames]) > 2.0 * np.median(centroid[VOWEL[truth["phone"]]])


def test_lips_are_predictable_from_audio():
    """A ridge regression from log-mel frames to mouth opening generalises to unseen clips and speakers."""
    def features(audio):
        mel = librosa.feature.melspectrogram(y=np.pad(audio, (0, 1024)), sr=16000, n_fft=1024, hop_length=640,
                                             win_length=640, n_mels=40, center=False)
        return np.log(mel.T + 1e-6)

    xs, ys = [], []
    for seed in range(10):
        audio, truth = perform(seed, identity=100 + seed, seconds=5.0)
        xs.append(features(audio)[: len(truth["mouth_open"])])
        ys.append(truth["mouth_open"])
    x_train, y_train = np.concatenate(xs[:7]), np.concatenate(ys[:7])
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    design = lambda x: np.c_[(x - mu) / sd, np.ones(len(x))]  # noqa: E731
    a = design(x_train)
    w = np.linalg.solve(a.T @ a + np.eye(a.shape[1]), a.T @ y_train)
    prediction = design(np.concatenate(xs[7:])) @ w
    assert np.corrcoef(prediction, np.concatenate(ys[7:]))[0, 1] > 0.75


def test_head_nods_follow_loudness():
    corrs = []
    for seed in range(4):
        _, truth = perform(seed, identity=seed, seconds=6.0, audio=False)
        loud = np.log(truth["loudness"] + 1e-4)
        loud_fast = gaussian_smooth(loud, 3) - gaussian_smooth(loud, 25)
        pitch_fast = truth["pitch"] - gaussian_smooth(truth["pitch"], 25)
        corrs.append(np.corrcoef(np.roll(loud_fast, 2)[5:-5], pitch_fast[5:-5])[0, 1])
    assert min(corrs) > 0.5, corrs


def test_truth_does_not_depend_on_synthesising_audio():
    audio, truth = perform(4, identity=2, seconds=3.0)
    silent, same = perform(4, identity=2, seconds=3.0, audio=False)
    assert silent is None and audio.shape == (75 * 640,)
    for key in truth:
        np.testing.assert_array_equal(truth[key], same[key])


def test_blinks_and_gaze_behave():
    blinks, steady = 0, []
    for seed in range(6):
        _, truth = perform(seed, identity=1, seconds=10.0, audio=False)
        closed = truth["blink"] > 0.5
        blinks += int((closed[1:] & ~closed[:-1]).sum())
        gaze = truth["gaze"]
        steady.append(np.mean(np.linalg.norm(gaze - np.median(gaze, axis=0), axis=1) < 3.0))
    assert 5 <= blinks <= 60, blinks  # about 0.15 - 0.5 blinks per second over 60 s
    assert np.median(steady) > 0.6, steady  # mostly steady, with occasional shifts


def test_identity_splits_are_disjoint_and_deterministic():
    assert not set(HELDOUT_IDENTITIES) & set(TRAIN_IDENTITIES)
    assert sample_identity(HELDOUT_IDENTITIES[0]) == sample_identity(HELDOUT_IDENTITIES[0])
    vectors = np.stack([sample_identity(i).vector() for i in range(300)])
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1) + np.eye(300)
    assert distances.min() > 0.05


def test_clip_writes_mp4_with_its_audio_and_truth(tmp_path, clip):
    path = clip.write(tmp_path / "clip.mp4")
    video = read_video(path)
    assert video.frames.shape == clip.frames.shape
    assert video.fps == 25
    assert abs(video.audio.size - clip.audio.size) <= 640
    saved = np.load(tmp_path / "clip.truth.npz")
    np.testing.assert_array_equal(saved["yaw"], clip.truth["yaw"])
    assert int(saved["identity"]) == 4
