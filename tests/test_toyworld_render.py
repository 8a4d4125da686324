"""The toy renderer: 3D-consistent pose, visible facial dynamics, distinct identities, truthful landmarks."""

import numpy as np
import pytest

from vasa_jax.data.toyworld import LANDMARKS, PARTS, landmarks, neutral_state, render, sample_identity

P = {name: i for i, name in enumerate(PARTS)}
IDENT = sample_identity(2)
SIZE = 128


def centroid_x(mask):
    cols = np.nonzero(mask)[1]
    return cols.mean() if cols.size else np.nan


def to_pixels(xy):
    """Image coordinates in [-1, 1] -> pixel (column, row)."""
    return (np.asarray(xy) + 1) / 2 * SIZE - 0.5


def test_yaw_sweep_moves_the_nose_tip_monotonically():
    yaw = np.linspace(-30, 30, 13)
    state = neutral_state(13, yaw=yaw)
    _, parts = render(IDENT, state, SIZE, parts=True)
    nose_x = [centroid_x(p == P["nose"]) for p in parts]
    assert np.all(np.diff(nose_x) > 0), nose_x  # positive yaw turns the face to the image's right
    tip = landmarks(IDENT, state)[:, LANDMARKS.index("nose_tip")]
    assert np.all(np.diff(tip[:, 0]) > 0)
    # The projected tip lands on nose pixels.
    for frame_parts, (col, row) in zip(parts, to_pixels(tip)):
        r, c = int(round(row)), int(round(col))
        assert (frame_parts[r - 1 : r + 2, c - 1 : c + 2] == P["nose"]).any()


def test_pitch_up_raises_the_nose_tip():
    state = neutral_state(9, pitch=np.linspace(-20, 20, 9))
    tip = landmarks(IDENT, state)[:, LANDMARKS.index("nose_tip")]
    assert np.all(np.diff(tip[:, 1]) < 0)  # image y points down


def test_turned_head_hides_its_far_side():
    _, parts = render(IDENT, neutral_state(2, yaw=[0, 30]), SIZE, parts=True)
    front, turned = parts
    mid = centroid_x(front == P["nose"])
    ears_front = [(front[:, :int(mid)] == P["ear"]).sum(), (front[:, int(mid):] == P["ear"]).sum()]
    ears_turned = [(turned[:, :int(mid)] == P["ear"]).sum(), (turned[:, int(mid):] == P["ear"]).sum()]
    assert ears_front[0] > 0 and ears_front[1] > 0
    assert ears_turned[1] == 0 and ears_turned[0] > ears_front[0]  # the far (right) ear is occluded
    nose_x = centroid_x(turned == P["nose"])
    eyes = np.isin(turned, [P["eye_white"], P["iris"]])
    near_eye, far_eye = eyes[:, : int(nose_x)].sum(), eyes[:, int(nose_x):].sum()
    assert far_eye < 0.8 * near_eye  # foreshortened


def test_roll_tilts_the_eye_line():
    state = neutral_state(2, roll=[0, 15])
    pts = landmarks(IDENT, state)
    eye_l, eye_r = pts[:, LANDMARKS.index("eye_l")], pts[:, LANDMARKS.index("eye_r")]
    slope = (eye_r[:, 1] - eye_l[:, 1]) / (eye_r[:, 0] - eye_l[:, 0])
    assert abs(slope[0]) < 1e-3
    assert np.degrees(np.arctan(-slope[1])) == pytest.approx(15, abs=2.0)  # counter-clockwise


def test_blink_closes_the_eyes_in_the_image():
    frames, parts = render(IDENT, neutral_state(3, blink=[0, 0.5, 1]), SIZE, parts=True)
    eye_pixels = np.isin(parts, [P["eye_white"], P["iris"]]).sum(axis=(1, 2))
    assert eye_pixels[0] > 40 and eye_pixels[1] < 0.75 * eye_pixels[0] and eye_pixels[2] == 0
    rows, cols = np.nonzero(np.isin(parts[0], [P["eye_white"], P["iris"]]))
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    diff = np.abs(frames[0][box].astype(int) - frames[2][box]).mean()
    assert diff > 20


def test_gaze_moves_the_irises():
    _, parts = render(IDENT, neutral_state(3, gaze=[[-25, 0], [0, 0], [25, 0]]), SIZE, parts=True)
    iris_x = [centroid_x(p == P["iris"]) for p in parts]
    assert iris_x[0] < iris_x[1] - 1 and iris_x[2] > iris_x[1] + 1


def test_visemes_are_distinguishable():
    """Open, spread and rounded lips differ in the shape of the mouth opening."""
    state = neutral_state(3, mouth_open=[1.0, 0.4, 0.6], mouth_width=[0.1, 1.0, -1.0])
    _, parts = render(IDENT, state, 256, parts=True)
    shapes = []
    for p in parts:
        rows, cols = np.nonzero(np.isin(p, [P["mouth_inside"], P["teeth"]]))
        shapes.append((rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
    (h_open, w_open), (h_spread, w_spread), (h_round, w_round) = shapes
    assert h_open > h_round > h_spread
    assert w_spread > w_open > w_round
    assert w_spread / h_spread > 2 * w_round / h_round


def test_emotion_lifts_mouth_corners():
    state = neutral_state(2, emotion=[-1, 1])
    pts = landmarks(IDENT, state)
    corners_y = pts[:, [LANDMARKS.index("mouth_l"), LANDMARKS.index("mouth_r")], 1].mean(1)
    lips_y = pts[:, [LANDMARKS.index("upper_lip"), LANDMARKS.index("lower_lip")], 1].mean(1)
    assert corners_y[1] < lips_y[1] and corners_y[0] > lips_y[0]  # smile up, frown down (y points down)
    _, parts = render(IDENT, state, SIZE, parts=True)
    brow_rows = [np.nonzero(p == P["brow"])[0].mean() for p in parts]
    assert brow_rows[0] != brow_rows[1]


def test_translation_and_scale():
    state = neutral_state(3, tx=[0, 0.2, 0], scale=[1, 1, 1.2])
    _, parts = render(IDENT, state, SIZE, parts=True)
    head = [np.isin(p, [P["skin"], P["nose"], P["hair"]]) for p in parts]
    assert centroid_x(head[1]) - centroid_x(head[0]) == pytest.approx(0.2 * SIZE / 2, abs=2)
    assert head[2].sum() > 1.3 * head[0].sum()


def test_eye_landmarks_land_on_the_eyes():
    state = neutral_state(1)
    _, parts = render(IDENT, state, SIZE, parts=True)
    for name in ("eye_l", "eye_r"):
        col, row = to_pixels(landmarks(IDENT, state)[0, LANDMARKS.index(name)])
        assert parts[0, int(round(row)), int(round(col))] in (P["eye_white"], P["iris"])


def test_identities_are_visibly_distinct():
    state = neutral_state(1)
    images = np.stack([render(sample_identity(i), state, 64)[0] for i in range(120)]).astype(np.float32)
    flat = images.reshape(len(images), -1)
    closest = min(np.delete(np.abs(flat - row).mean(-1), i).min() for i, row in enumerate(flat))
    assert closest > 6.0  # mean absolute difference in 0-255 units over the whole image


def test_supersampling_matches_the_plain_render():
    state = neutral_state(1, yaw=[10])
    plain = render(IDENT, state, 64).astype(np.float32)
    smooth = render(IDENT, state, 64, supersample=2).astype(np.float32)
    assert smooth.shape == plain.shape
    assert np.abs(plain - smooth).mean() < 4


def test_bad_state_is_refused():
    with pytest.raises(KeyError, match="unknown state entry"):
        neutral_state(1, jaw=[1])
    state = neutral_state(1)
    del state["blink"]
    with pytest.raises(KeyError, match="blink"):
        render(IDENT, state, 64)
    with pytest.raises(ValueError, match="size"):
        render(IDENT, neutral_state(1), 8)
