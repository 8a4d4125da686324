"""LivePortrait's camera maths: pose bins -> degrees, Euler angles -> rotation, and the implicit keypoints of a
face in its pose (upstream's headpose_pred_to_degree, get_rotation_matrix, get_kp_info and transform_keypoint).

Keypoints are row vectors in upstream's right-down-in frame: x_d = x_c @ R, so R is the transpose of the
usual column-vector rotation Rz(roll) Ry(yaw) Rx(pitch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The bins are 3 degrees wide and centred so that 66 of them span [-97.5, 97.5) (upstream's constants).
BIN_DEGREES = 3.0
BIN_OFFSET_DEGREES = 97.5


def headpose_degrees(bins):
    """bins [B, num_bins] (logits) -> degrees [B]: the softmax expectation of the bin index, times 3, minus 97.5."""
    probabilities = jax.nn.softmax(bins.astype(jnp.float32), axis=-1)
    expected_bin = jnp.sum(probabilities * jnp.arange(bins.shape[-1], dtype=jnp.float32), axis=-1)
    return expected_bin * BIN_DEGREES - BIN_OFFSET_DEGREES


def rotation_matrix(pitch, yaw, roll):
    """Angles in degrees [B] -> R [B, 3, 3] = (Rz(roll) @ Ry(yaw) @ Rx(pitch))^T, for row-vector keypoints."""
    x, y, z = (jnp.asarray(a, jnp.float32) / 180 * np.pi for a in (pitch, yaw, roll))
    one, zero = jnp.ones_like(x), jnp.zeros_like(x)

    def matrix(*rows):
        return jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)

    rot_x = matrix((one, zero, zero), (zero, jnp.cos(x), -jnp.sin(x)), (zero, jnp.sin(x), jnp.cos(x)))
    rot_y = matrix((jnp.cos(y), zero, jnp.sin(y)), (zero, one, zero), (-jnp.sin(y), zero, jnp.cos(y)))
    rot_z = matrix((jnp.cos(z), -jnp.sin(z), zero), (jnp.sin(z), jnp.cos(z), zero), (zero, zero, one))
    return jnp.swapaxes(_matmul(_matmul(rot_z, rot_y), rot_x), -1, -2)


def motion_info(raw: dict) -> dict:
    """MotionExtractor's raw outputs -> kp and exp [B, K, 3], pitch / yaw / roll in degrees [B], t [B, 3],
    scale [B, 1]."""
    b = raw["kp"].shape[0]
    return {"kp": raw["kp"].reshape(b, -1, 3), "exp": raw["exp"].reshape(b, -1, 3),
            "pitch": headpose_degrees(raw["pitch"]), "yaw": headpose_degrees(raw["yaw"]),
            "roll": headpose_degrees(raw["roll"]), "t": raw["t"], "scale": raw["scale"]}


def transform_keypoints(info: dict):
    """A motion_info dict -> the posed keypoints [B, K, 3] = scale * (kp @ R + exp) + (tx, ty, 0): upstream
    applies no depth translation."""
    rotation = rotation_matrix(info["pitch"], info["yaw"], info["roll"])
    posed = info["scale"][:, :, None] * (_matmul(info["kp"], rotation) + info["exp"])
    return posed.at[..., :2].add(info["t"][:, None, :2])


def _matmul(a, b):
    # Full float32: on GPUs the default precision may round float32 matmul inputs to TF32's 10-bit mantissa.
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
