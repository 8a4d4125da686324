"""Warps between a posed volume and the canonical appearance volume V_app.

Volume coordinates are grid_sample's normalised (x, y, z) in [-1, 1]: x along W (the image's right), y along
H (the image's down), z along D (towards the camera). A pose (vasa_jax/pose.py) acts on them rigidly:
posed = scale * R c + (tx, ty, 0), with R the pose's rotation expressed in these axes (head-local y points
up, volume y down, hence the conjugation by diag(1, -1, 1)).

    to_canonical:   V_app(c) = V_s(T_s(c + flow_s(c)))        flow_s from (z_dyn_s, z_id): undoes the expression
    from_canonical: V_d(p)   = V_app(q + flow_d(q)), q = T_d^-1(p)   flow_d from (z_dyn_d, z_id): applies it
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vasa_jax.ops import grid_sample, make_base_grid
from vasa_jax.pose import rotation_matrices

_FLIP_Y = np.array([1.0, -1.0, 1.0], np.float32)  # numpy: importing this module must not start JAX (jax.distributed)


def volume_rotation(pose: jnp.ndarray) -> jnp.ndarray:
    """[B, 3, 3] rotation of the pose [B, 6] in volume axes."""
    r = rotation_matrices(pose[:, 0], pose[:, 1], pose[:, 2], xp=jnp)
    return r * _FLIP_Y[:, None] * _FLIP_Y[None, :]


def _translation(pose):
    return jnp.stack([pose[:, 3], pose[:, 4], jnp.zeros_like(pose[:, 3])], axis=-1)[:, None, None, None, :]


def pose_points(pose: jnp.ndarray, points: jnp.ndarray) -> jnp.ndarray:
    """Canonical points [B, D, H, W, 3] -> posed points: scale * R c + t."""
    rotated = jnp.einsum("bij,bdhwj->bdhwi", volume_rotation(pose), points)
    return pose[:, 5, None, None, None, None] * rotated + _translation(pose)


def unpose_points(pose: jnp.ndarray, points: jnp.ndarray) -> jnp.ndarray:
    """Posed points [B, D, H, W, 3] -> canonical points: R^T (p - t) / scale."""
    centred = (points - _translation(pose)) / pose[:, 5, None, None, None, None]
    return jnp.einsum("bji,bdhwj->bdhwi", volume_rotation(pose), centred)


def _base(volume):
    b, d, h, w, _ = volume.shape
    return jnp.broadcast_to(make_base_grid((d, h, w), align_corners=False), (b, d, h, w, 3))


def to_canonical(posed_volume: jnp.ndarray, pose: jnp.ndarray, flow: jnp.ndarray) -> jnp.ndarray:
    """The posed source volume [B, D, H, W, C] resampled into canonical space (V_app)."""
    grid = pose_points(pose, _base(posed_volume) + flow)
    return grid_sample(posed_volume, grid)  # grids stay float32: bf16 coordinates would be off by 1/4 voxel


def from_canonical(canonical_volume: jnp.ndarray, pose: jnp.ndarray, flow: jnp.ndarray) -> jnp.ndarray:
    """V_app [B, D, H, W, C] resampled into the driver's pose and expression."""
    q = unpose_points(pose, _base(canonical_volume))
    # The flow lives on the canonical grid: read it at q (border: no displacement falls off the edge).
    offset = grid_sample(flow, q, padding_mode="border")
    return grid_sample(canonical_volume, q + offset)
