"""Head pose from elsewhere (VASA-1's disentangled control) and motion files.

A pose source replaces the generated z_pose (the first POSE_DIM entries of each motion vector) while z_dyn
(lips, expression, gaze, blinks) still follows the audio. Sources: a video (its frames at 25 fps, framed like
the portrait, through the face model's encode_motion) or a motion file that save_motion wrote (.npz) or any
[T, >= 6] array saved with numpy (.npy / .npz), whose first six columns are z_pose (vasa_jax.pose.POSE_KEYS).

A pose source shorter than the audio is played back and forth (0, 1, ..., L - 1, L - 2, ..., 1, 0, 1, ...):
the head keeps moving as the source did and never jumps, where looping would jump at every wrap and holding
would freeze the head. A longer one is cut.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vasa_jax import __version__
from vasa_jax.audio.features import FPS
from vasa_jax.errors import ConfigError
from vasa_jax.face.config import POSE_DIM
from vasa_jax.io import MediaError, iter_video_frames, probe_video
from vasa_jax.io.errors import check_readable_file

MOTION_SUFFIXES = (".npy", ".npz")


def check_motion_path(path) -> Path:
    """The path save_motion will write, checked before any work (ConfigError for a wrong extension)."""
    path = Path(path)
    if path.suffix.lower() not in MOTION_SUFFIXES:
        raise ConfigError(f"{path}: a motion file must end in .npz (motion and frame rate) or .npy (the array)")
    return path


def save_motion(path, motion: np.ndarray) -> Path:
    """Writes motion [T, M] (z_pose then z_dyn, 25 fps): .npz with `motion`, `fps` and the vasa-jax version, or
    .npy with the bare array. The folder is created if needed."""
    path = check_motion_path(path)
    motion = np.asarray(motion, np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, motion)
    else:
        np.savez(path, motion=motion, fps=np.int32(FPS), pose_dim=np.int32(POSE_DIM),
                 vasa_jax_version=np.str_(__version__))
    return path


def load_motion_file(path) -> np.ndarray:
    """Motion or pose [T, C >= POSE_DIM] float32 from a .npy / .npz file; MediaError if it is not one."""
    path = check_readable_file(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise MediaError(path, f"is not a numpy motion file ({e})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if "motion" in data.files:
                array = data["motion"]
            elif len(data.files) == 1:
                array = data[data.files[0]]
            else:
                raise MediaError(path, f"holds {data.files}; a motion file holds `motion` [T, M]")
    else:
        array = data
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < POSE_DIM or not np.issubdtype(array.dtype, np.number):
        raise MediaError(path, f"holds an array {array.dtype} {array.shape}; a motion file holds [T, M] numbers with "
                               f"z_pose in its first {POSE_DIM} columns")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array[:, :POSE_DIM])):
        raise MediaError(path, "motion contains NaN or infinite values")
    return array


def video_frames_25fps(path):
    """A video's frames at 25 fps (nearest timestamp), one at a time: RGB uint8 [H, W, 3]."""
    from vasa_jax.data.preprocess import resample_frames

    fps = probe_video(path).fps
    for _, _, frame in resample_frames(iter_video_frames(path), fps, FPS):
        yield frame


def video_motion(path, framer, encode, *, crop: bool, batch: int) -> np.ndarray:
    """What `encode` gives for each of a video's frames at 25 fps: [T, C].

    framer: the face model's portrait.Framer. crop=True finds the face on the first frame and crops every
    frame with that one box, so head motion inside the video stays head motion; crop=False takes each frame's
    centred square. encode: frames float [batch, S, S, 3] in [0, 1] -> [batch, C] (poses or whole motion).
    Frames go through in batches of `batch` (the last padded): memory stays bounded for long videos.
    """
    from vasa_jax.pipeline.portrait import MIN_SIDE, center_square

    box, pending, rows = None, [], []

    def run(final=False):
        if not pending or (len(pending) < batch and not final):
            return
        n = len(pending)
        images = np.stack(pending + [pending[-1]] * (batch - n)).astype(np.float32) / 255.0
        rows.append(np.asarray(encode(images))[:n])
        pending.clear()

    for frame in video_frames_25fps(path):
        if min(frame.shape[:2]) < MIN_SIDE:
            raise MediaError(path, f"video is {frame.shape[1]}x{frame.shape[0]} pixels; a driving or pose video "
                                   f"needs at least {MIN_SIDE} on each side")
        if crop:
            if box is None:
                box, _ = framer.face_box(frame, os.fspath(path))
            pending.append(framer.crop(frame, box))
        else:
            pending.append(center_square(frame, framer.size))
        run()
    run(final=True)
    if not rows:
        raise MediaError(path, "contains no video frames")
    return np.concatenate(rows).astype(np.float32)


def load_pose_source(path, framer, encode_poses, *, crop: bool, batch: int) -> np.ndarray:
    """z_pose [L, POSE_DIM] from a motion file (.npy / .npz) or a video (anything else)."""
    check_readable_file(path)
    if Path(path).suffix.lower() in MOTION_SUFFIXES:
        return load_motion_file(path)[:, :POSE_DIM]
    return video_motion(path, framer, encode_poses, crop=crop, batch=batch)[:, :POSE_DIM]


def pose_indices(start: int, count: int, length: int) -> np.ndarray:
    """Rows of a pose source of `length` frames for output frames [start, start + count): back and forth."""
    frames = np.arange(start, start + count)
    if length == 1:
        return np.zeros(count, np.int64)
    period = 2 * (length - 1)
    phase = frames % period
    return np.where(phase < length, phase, period - phase)
