"""Exact metrics against toy-world ground truth: pose error, mouth-opening correlation, gaze error.

The truth is a clip's <stem>.truth.npz (toyworld.Clip.write) or the truth dict of toyworld.perform; measured
signals come from wherever the evaluation has them: poses re-extracted by a face model, mouth opening from
landmarks, or generated motion in the toy-truth layout (stage 2 trained with motion_data.source="toy_truth"),
which carries pose, mouth opening and gaze directly (read_toy_motion).
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from vasa_jax.data.motion_data import TOY_TRUTH_LAYOUT
from vasa_jax.data.toyworld import pose_vectors
from vasa_jax.errors import ConfigError
from vasa_jax.eval.signals import ANGLES, correlation

TRUTH_KEYS = ("yaw", "pitch", "roll", "mouth_open", "gaze")  # what the metrics read from a truth file


def load_truth(path) -> dict:
    """A toy clip's truth (<stem>.truth.npz) as a dict of arrays; ConfigError naming the file if it is missing,
    unreadable or lacks the entries the metrics need."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: truth file not found (toy clips write <stem>.truth.npz beside the mp4)")
    try:
        with np.load(path) as data:
            truth = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path}: cannot be read as a .npz truth file ({e})") from None
    missing = [k for k in TRUTH_KEYS if k not in truth]
    if missing:
        raise ConfigError(f"{path}: not a toy-world truth file (lacks {', '.join(missing)})")
    return truth


def read_toy_motion(motion) -> dict:
    """Motion [T, 12] in the toy-truth layout (TOY_TRUTH_LAYOUT) -> pose [T, 6], mouth [T], gaze [T, 2]."""
    motion = np.asarray(motion, np.float32)
    if motion.ndim != 2 or motion.shape[1] != len(TOY_TRUTH_LAYOUT):
        raise ValueError(f"toy-truth motion must be [T, {len(TOY_TRUTH_LAYOUT)}] ({', '.join(TOY_TRUTH_LAYOUT)}); "
                         f"got {motion.shape}")
    index = {name: i for i, name in enumerate(TOY_TRUTH_LAYOUT)}
    return {"pose": motion[:, :6], "mouth": motion[:, index["mouth_open"]],
            "gaze": motion[:, [index["gaze_theta"], index["gaze_phi"]]]}


def toy_metrics(truth: dict, *, pose=None, mouth=None, gaze=None) -> dict:
    """Measured signals against the truth, over the frames both have (each measure optional):
    pose [T, >=3] degrees (yaw, pitch, roll first): mean absolute error per angle and overall;
    mouth [T] in any unit (landmark opening, a probe, the toy value): Pearson correlation with mouth_open;
    gaze [T, 2] (theta, phi) degrees: mean per-frame angular distance ||measured - true||.
    Zero errors and correlation 1 when the measured signals are the truth itself."""
    out = {}
    if pose is not None:
        true = pose_vectors(truth)[:, :3]
        pose = np.asarray(pose, np.float64)[:, :3]
        t = min(len(true), len(pose))
        error = np.abs(pose[:t] - true[:t])
        out["toy_pose_error_deg"] = float(error.mean())
        out.update({f"toy_{name}_error_deg": float(error[:, i].mean()) for i, name in enumerate(ANGLES)})
        out["toy_pose_frames"] = t
    if mouth is not None:
        true = np.asarray(truth["mouth_open"], np.float64)
        t = min(len(true), len(mouth))
        out["toy_mouth_correlation"] = correlation(np.asarray(mouth)[:t], true[:t])
        out["toy_mouth_frames"] = t
    if gaze is not None:
        true = np.asarray(truth["gaze"], np.float64)
        t = min(len(true), len(gaze))
        out["toy_gaze_error_deg"] = float(np.linalg.norm(np.asarray(gaze, np.float64)[:t] - true[:t], axis=-1).mean())
        out["toy_gaze_frames"] = t
    return out
