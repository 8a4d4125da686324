"""Warps between a posed volume and the canonical appearance volume V_app.

Volume coordinates are grid_sample's normalised (x, y, z) in [-1, 1]: x along W (the image's right), y along
H (the image's down), z along D (towards the camera). A pose (vasa_jax/pose.py) acts on them rigidly:
posed = scale * R c + (tx, ty, 0), with R the pose's rotation expressed in these axes (head-local y points
up, volume y down, hence the conjugation by diag(1, -1, 1)).

    to_canonical:   V_app(c) = V_s(T_s(c + flow_s(c)))        flow_s from (z_dyn_s, z_id): undoes the expression
    from canonical: V_d(p)   = V_app(q + flow_d(q)), q = T_d^-1(p)   flow_d from (z_dyn_d, z_id): applies it
                    (grid_sample(V_app, canonical_points(pose_d, flow_d)))
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


def source_points(pose: jnp.ndarray, flow: jnp.ndarray) -> jnp.ndarray:
    """Where each canonical grid point [B, D, H, W, 3] reads the posed source: T_s(c + flow_s(c))."""
    return pose_points(pose, _base(flow) + flow)


def to_canonical(posed_volume: jnp.ndarray, pose: jnp.ndarray, flow: jnp.ndarray) -> jnp.ndarray:
    """The posed source volume [B, D, H, W, C] resampled into canonical space (V_app)."""
    # grids stay float32: bf16 coordinates would be off by 1/4 voxel
    return grid_sample(posed_volume, source_points(pose, flow))


def canonical_points(pose: jnp.ndarray, flow: jnp.ndarray) -> jnp.ndarray:
    """Where each point of the driver's posed grid [B, D, H, W, 3] reads the canonical volume: q + flow_d(q),
    q = T_d^-1(p)."""
    q = unpose_points(pose, _base(flow))
    # The flow lives on the canonical grid: read it at q (border: no displacement falls off the edge).
    return q + grid_sample(flow, q, padding_mode="border")
