"""Face detection, landmarks, the crop rule and the track smoother (vasa_jax.data.faces) on toy-world renders."""

import numpy as np
import pytest

from vasa_jax.data import toyworld
from vasa_jax.data.faces import (CROP_OFFSET, CROP_SCALE, FaceDetector, calibrate_crop, crop_box, crop_image,
                                 model_file, smooth_crop_boxes, smooth_track)
from vasa_jax.errors import ConfigError

# Neutral (frontal, centred, nominal distance) renders of these identities are found by the detector (checked
# when the tests were written: the union of dlib's detectors misses ~2 % of toy faces, never these).
IDENTITIES = (1000, 1002, 1003, 1004, 1005, 1006)
SIZE = 128


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(detect_size=192)


@pytest.fixture(scope="module")
def renders():
    """(frames uint8 [N, S, S, 3], truth landmarks [N, 8, 2] in pixels) at the toy world's own framing."""
    frames, points = [], []
    for identity in IDENTITIES:
        person, state = toyworld.sample_identity(identity), toyworld.neutral_state(1)
        frames.append(toyworld.render(person, state, SIZE)[0])
        points.append((toyworld.landmarks(person, state)[0] + 1) * SIZE / 2)
    return np.stack(frames), np.stack(points)


@pytest.fixture(scope="module")
def landmarks(detector, renders):
    return np.stack([detector.landmarks(frame, detector.detect(frame)[0]) for frame in renders[0]])


def test_detector_finds_the_toy_face(detector, renders):
    nose = toyworld.LANDMARKS.index("nose_tip")
    for frame, truth in zip(*renders):
        boxes = detector.detect(frame)
        assert boxes.shape == (1, 4) and boxes.dtype == np.float32
        x0, y0, x1, y1 = boxes[0]
        assert x0 < truth[nose, 0] < x1 and y0 < truth[nose, 1] < y1
        assert 0.3 * SIZE < x1 - x0 < 0.8 * SIZE  # a face-sized box, not the whole frame or a feature


def test_largest_face_comes_first(detector):
    big = toyworld.render(toyworld.sample_identity(IDENTITIES[0]), toyworld.neutral_state(1), 192)[0]
    small = toyworld.render(toyworld.sample_identity(IDENTITIES[1]), toyworld.neutral_state(1), 112)[0]
    canvas = np.empty((192, 320, 3), np.uint8)
    canvas[:] = big[:1, :1]  # background colour
    canvas[:, 192:] = np.pad(small, ((40, 40), (8, 8), (0, 0)), mode="edge")
    canvas[:, :192] = big
    for image, big_on_left in ((canvas, True), (canvas[:, ::-1], False)):
        boxes = detector.detect(np.ascontiguousarray(image), both=True)
        assert len(boxes) == 2
        widths = boxes[:, 2] - boxes[:, 0]
        assert widths[0] > 1.4 * widths[1]
        centre = (boxes[0, 0] + boxes[0, 2]) / 2
        assert (centre < 160) == big_on_left


def test_landmarks_shape_and_eyes(landmarks, renders):
    assert landmarks.shape == (len(IDENTITIES), 68, 2) and landmarks.dtype == np.float32
    truth = renders[1]
    for name, points in (("eye_l", slice(36, 42)), ("eye_r", slice(42, 48))):
        error = np.linalg.norm(landmarks[:, points].mean(1) - truth[:, toyworld.LANDMARKS.index(name)], axis=-1)
        assert error.max() < 0.05 * SIZE, name  # measured: up to 0.037


def test_crop_rule_frames_toy_renders_as_whole_frames(landmarks, renders):
    # The calibration: at the toy world's own framing the crop is close to the whole frame.
    result = calibrate_crop(renders[0], landmarks)
    assert abs(result["side_ratio"] - 1.0) < 0.1  # measured 1.04 on these six; 1.00 on 36 identities at 256 px
    assert np.abs(result["centre_error"]).max() < 0.03
    assert abs(result["scale"] / CROP_SCALE - 1) < 0.1 and abs(result["offset"] - CROP_OFFSET) < 0.05
    boxes = crop_box(landmarks)
    assert boxes.shape == (len(IDENTITIES), 3)
    # The rule is geometric: moving and scaling the face moves and scales the crop alike.
    moved = crop_box(landmarks * 2 + np.array([10.0, -4.0], np.float32))
    np.testing.assert_allclose(moved[:, :2], boxes[:, :2] * 2 + [10.0, -4.0], rtol=1e-5)
    np.testing.assert_allclose(moved[:, 2], boxes[:, 2] * 2, rtol=1e-5)


def test_crop_image_geometry():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    # The box that is exactly a region at the output size returns that region.
    np.testing.assert_array_equal(crop_image(image, (40, 24, 32), 32), image[8:40, 24:56])
    # A box reaching past the border repeats the edge pixels.
    out = crop_image(image, (2, 24, 16), 16)
    np.testing.assert_array_equal(out[:, :6], np.repeat(image[16:32, :1], 6, axis=1))
    np.testing.assert_array_equal(out[:, 6:], image[16:32, :10])


def test_smoother_removes_outliers_and_jitter_but_keeps_motion():
    t = np.arange(100, dtype=np.float64)
    ramp = 50 + 0.2 * t
    noisy = ramp + np.random.default_rng(1).normal(0, 1.0, t.size)
    noisy[40] += 30  # one landmark failure
    smooth = smooth_track(noisy[:, None], median=11, sigma=12)[:, 0]
    assert np.abs(np.diff(noisy)).max() > 10
    assert np.abs(np.diff(smooth)).max() < 0.3  # the ramp's own slope is 0.2 per frame
    assert np.abs(smooth - ramp)[20:80].max() < 0.5  # no lag in the interior, no trace of the outlier
    boxes = np.stack([noisy, noisy, np.full(t.size, 80.0)], -1)
    out = smooth_crop_boxes(boxes, median=11, sigma=12)
    np.testing.assert_allclose(out[:, 2], 80.0, rtol=1e-5)
    np.testing.assert_allclose(out[:, 0], smooth, atol=1e-3)


def test_missing_weights_are_named():
    assert model_file("shape_predictor_68_face_landmarks.dat").is_file()
    with pytest.raises(ConfigError, match="no_such_model.dat"):
        model_file("no_such_model.dat")
