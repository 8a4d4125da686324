"""Exact metrics against toy-world truth (vasa_jax.eval.toy)."""

import numpy as np
import pytest

from vasa_jax.data.motion_data import toy_truth_motion
from vasa_jax.data.toyworld import perform, pose_vectors
from vasa_jax.errors import ConfigError
from vasa_jax.eval.toy import load_truth, read_toy_motion, toy_metrics


@pytest.fixture(scope="module")
def truth():
    return perform(2, identity=1_000_010, seconds=2.0, audio=False)[1]


def test_truth_against_itself_is_exact(truth):
    read = read_toy_motion(toy_truth_motion(truth))
    np.testing.assert_array_equal(read["pose"], pose_vectors(truth))
    np.testing.assert_array_equal(read["mouth"], truth["mouth_open"])
    np.testing.assert_array_equal(read["gaze"], truth["gaze"])
    m = toy_metrics(truth, **read)
    assert m["toy_pose_error_deg"] == 0.0 and m["toy_yaw_error_deg"] == 0.0 and m["toy_gaze_error_deg"] == 0.0
    assert m["toy_mouth_correlation"] == pytest.approx(1.0)
    assert m["toy_pose_frames"] == m["toy_mouth_frames"] == m["toy_gaze_frames"] == 50


def test_known_errors(truth):
    pose = pose_vectors(truth)[:, :3] + np.array([2.0, -4.0, 0.0])
    gaze = truth["gaze"] + np.array([3.0, 4.0])
    m = toy_metrics(truth, pose=pose[:40], mouth=-truth["mouth_open"], gaze=gaze)
    assert m["toy_pose_error_deg"] == pytest.approx(2.0, abs=1e-5)
    assert (m["toy_yaw_error_deg"], m["toy_pitch_error_deg"]) == pytest.approx((2.0, 4.0), abs=1e-5)
    assert m["toy_pose_frames"] == 40  # the frames both have
    assert m["toy_mouth_correlation"] == pytest.approx(-1.0)
    assert m["toy_gaze_error_deg"] == pytest.approx(5.0, abs=1e-5)
    assert toy_metrics(truth) == {}


def test_truth_files(tmp_path, truth):
    path = tmp_path / "clip.truth.npz"
    np.savez(path, **truth)
    assert set(load_truth(path)) == set(truth)
    with pytest.raises(ConfigError, match="nothing.truth.npz: truth file not found"):
        load_truth(tmp_path / "nothing.truth.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="junk.npz: cannot be read"):
        load_truth(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", yaw=truth["yaw"])
    with pytest.raises(ConfigError, match="partial.npz: not a toy-world truth file"):
        load_truth(tmp_path / "partial.npz")
    with pytest.raises(ValueError, match=r"\[T, 12\]"):
        read_toy_motion(np.zeros((5, 6)))
