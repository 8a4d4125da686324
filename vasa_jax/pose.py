"""The project's head-pose convention, shared by the toy world (numpy) and the face model (jax.numpy).

A pose is (yaw, pitch, roll) in degrees plus tx, ty (the head centre in image coordinates, [-1, 1], x right,
y down) and scale (apparent size). Rotations map head-local coordinates (x to the image's right when the
face looks at the camera, y up, z out of the face) to camera coordinates (x right, y up, z towards the
viewer): R = Rz(roll) Ry(yaw) Rx(-pitch). Positive yaw turns the face towards the image's right, positive
pitch raises the chin, positive roll turns the head counter-clockwise in the image.
"""

from __future__ import annotations

import numpy as np

POSE_KEYS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
# Typical magnitudes of each pose entry: pose losses divide by these so that every entry weighs alike.
POSE_SCALE = (30.0, 20.0, 15.0, 0.25, 0.25, 0.15)


def rotation_matrices(yaw, pitch, roll, xp=np):
    """[..., 3, 3] head-local -> camera rotations from angles in degrees; xp is numpy or jax.numpy."""
    y, p, r = (xp.radians(xp.asarray(a)) for a in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = xp.cos(y), xp.sin(y), xp.cos(-p), xp.sin(-p), xp.cos(r), xp.sin(r)
    one, zero = xp.ones_like(y), xp.zeros_like(y)
    rz = xp.stack([xp.stack([cr, -sr, zero], -1), xp.stack([sr, cr, zero], -1), xp.stack([zero, zero, one], -1)], -2)
    ry = xp.stack([xp.stack([cy, zero, sy], -1), xp.stack([zero, one, zero], -1), xp.stack([-sy, zero, cy], -1)], -2)
    rx = xp.stack([xp.stack([one, zero, zero], -1), xp.stack([zero, cp, -sp], -1), xp.stack([zero, sp, cp], -1)], -2)
    return rz @ ry @ rx
