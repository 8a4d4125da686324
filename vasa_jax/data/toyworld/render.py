"""Toy-world renderer: perspective ray casting of a procedural 3D head, vectorised in numpy.

The head is a union of ellipsoids in head-local space (two skull halves, the lower one lengthening as the jaw
drops; nose; ears; a hair shell and, for long hair, a hanging curtain), so rotation is 3D-consistent and the
nose, ears and hair occlude what lies behind them. Eyes, brows, mouth, lips, teeth, freckles and beard are
painted on the skull in face coordinates with anti-aliased edges. Neck and shoulders follow the head's
position but not its rotation. One call renders a batch of frames in chunks sized to stay in cache.

Conventions (also of the ground truth): the project's pose convention (vasa_jax/pose.py); the camera looks
down -z with x right and y up. The head's distance is BASE_DISTANCE / scale.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from vasa_jax.data.toyworld.identity import Identity
from vasa_jax.pose import rotation_matrices

TAN_HALF_FOV = 0.32  # a ~35 degree field of view: portrait-lens perspective
BASE_DISTANCE = 5.0  # head-centre distance at scale 1 (head radius ~1): the head fills ~70 % of the height
JAW_DROP = 0.12  # chin drop at mouth_open = 1
MOUTH_OPENING = 0.19  # lip gap at mouth_open = 1
_LIGHT = np.array([-0.45, 0.55, 0.70]) / np.linalg.norm([-0.45, 0.55, 0.70])  # from the upper left, camera side

STATE_KEYS = ("yaw", "pitch", "roll", "tx", "ty", "scale", "mouth_open", "mouth_width", "blink", "gaze", "emotion")

# Part ids of the optional label map (what each pixel shows).
PARTS = ("background", "skin", "hair", "nose", "ear", "eye_white", "iris", "lips", "mouth_inside", "teeth",
         "brow", "neck", "clothes")
_PART = {name: i for i, name in enumerate(PARTS)}

LANDMARKS = ("nose_tip", "eye_l", "eye_r", "mouth_l", "mouth_r", "upper_lip", "lower_lip", "chin")  # l/r: image side, frontal

# Primitive ids for the depth test; _BACKGROUND marks rays that hit nothing.
_UPPER, _LOWER, _NOSE, _EAR_L, _EAR_R, _HAIR_NEAR, _HAIR_FAR, _CURTAIN, _NECK, _TORSO, _BACKGROUND = range(11)


def neutral_state(num_frames: int = 1, **overrides) -> dict:
    """A frontal, neutral state for `num_frames` frames; keyword arguments override any entry."""
    state = {k: np.zeros(num_frames, np.float32) for k in STATE_KEYS}
    state["scale"] = np.ones(num_frames, np.float32)
    state["gaze"] = np.zeros((num_frames, 2), np.float32)
    for key, value in overrides.items():
        if key not in STATE_KEYS:
            raise KeyError(f"unknown state entry {key!r}; expected one of {STATE_KEYS}")
        state[key] = np.broadcast_to(np.asarray(value, np.float32), state[key].shape).copy()
    return state


def head_centres(state: Mapping) -> np.ndarray:
    """Camera-space head centres [T, 3] from tx, ty (image coordinates) and scale."""
    z = BASE_DISTANCE / np.asarray(state["scale"], np.float64)
    return np.stack([state["tx"] * z * TAN_HALF_FOV, -np.asarray(state["ty"]) * z * TAN_HALF_FOV, -z], -1)


def project(points_local: np.ndarray, state: Mapping) -> np.ndarray:
    """Head-local points [T, K, 3] -> image coordinates [T, K, 2] ([-1, 1], x right, y down)."""
    rot = rotation_matrices(state["yaw"], state["pitch"], state["roll"])
    cam = np.einsum("tij,tkj->tki", rot, points_local)
    cam = cam + head_centres(state)[:, None]
    depth = -cam[..., 2] * TAN_HALF_FOV
    return np.stack([cam[..., 0] / depth, -cam[..., 1] / depth], -1)


def landmarks(identity: Identity, state: Mapping) -> np.ndarray:
    """Image coordinates [T, len(LANDMARKS), 2] of the named facial points (visible or not)."""
    ident = identity
    n = np.asarray(state["yaw"]).shape[0]
    drop = JAW_DROP * np.asarray(state["mouth_open"], np.float64)
    jaw = ident.jaw_length + drop
    mouth = _mouth_geometry(ident, np.asarray(state["mouth_open"]), np.asarray(state["mouth_width"]),
                            np.asarray(state["emotion"]))

    def on_skull(x, y, lower_b):
        b = np.where(y >= 0, ident.head_top, lower_b)
        inside = np.clip(1 - (x / ident.head_width) ** 2 - (y / b) ** 2, 0, None)
        return np.stack([np.broadcast_to(x, (n,)), np.broadcast_to(y, (n,)), ident.head_depth * np.sqrt(inside)], -1)

    ones = np.ones(n)
    nose = _nose_centre(ident)
    pts = [
        np.stack([0 * ones, nose[1] * ones, (nose[2] + ident.nose_depth) * ones], -1),
        on_skull(-ident.eye_sep * ones, ident.eye_y * ones, jaw),
        on_skull(ident.eye_sep * ones, ident.eye_y * ones, jaw),
        on_skull(-mouth["half_width"], mouth["corner_y"], jaw),
        on_skull(mouth["half_width"], mouth["corner_y"], jaw),
        on_skull(0 * ones, mouth["upper_outer"], jaw),
        on_skull(0 * ones, mouth["lower_outer"], jaw),
        on_skull(0 * ones, -0.93 * jaw, jaw),
    ]
    return project(np.stack(pts, 1), state).astype(np.float32)


def render(identity: Identity, state: Mapping, size: int, *, parts: bool = False, supersample: int = 1):
    """Renders frames RGB uint8 [T, size, size, 3] (and, with parts=True, part ids uint8 [T, size, size]).

    state: per-frame arrays [T] for STATE_KEYS (gaze [T, 2]); see the module docstring for units.
    supersample: render at that factor and box-filter down (smoother silhouettes, k^2 the cost).
    """
    if not 16 <= size <= 1024:
        raise ValueError(f"size must be in [16, 1024], got {size}")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise KeyError(f"state lacks {missing}")
    k = int(supersample)
    inner = size * k
    num_frames = np.asarray(state["yaw"]).shape[0]
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    labels = np.empty((num_frames, size, size), np.uint8) if parts else None
    chunk = max(1, 65536 // (inner * inner))
    rays = _pixel_rays(inner)
    for start in range(0, num_frames, chunk):
        sl = slice(start, min(start + chunk, num_frames))
        sub = {key: np.asarray(state[key])[sl] for key in STATE_KEYS}
        rgb, part = _render_chunk(identity, sub, rays, inner)
        rgb = rgb.reshape(-1, inner, inner, 3)
        if k > 1:
            rgb = rgb.reshape(-1, size, k, size, k, 3).mean(axis=(2, 4))
            part = part.reshape(-1, size, k, size, k)[:, :, k // 2, :, k // 2]
        frames[sl] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if parts:
            labels[sl] = part.reshape(-1, size, size)
    return (frames, labels) if parts else frames


def _pixel_rays(size: int):
    """Camera-space ray directions through pixel centres, flattened row-major: three arrays [size * size]."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1) * TAN_HALF_FOV
    dx = np.tile(c, size)
    dy = np.repeat(-c, size)
    return dx, dy, -np.ones_like(dx)


def _nose_centre(ident: Identity) -> np.ndarray:
    """The nose ellipsoid's centre: on the midline, sunk into the face so that it protrudes by nose_depth."""
    surface_z = ident.head_depth * np.sqrt(max(1 - (ident.nose_y / ident.jaw_length) ** 2, 0.0))
    return np.array([0.0, ident.nose_y, surface_z - 0.2 * ident.nose_depth])


def _mouth_geometry(ident: Identity, mouth_open, mouth_width, emotion) -> dict:
    """Per-frame mouth shape: half-width, opening, lip thickness, corner lift and contour heights at u = 0."""
    mouth_open, mouth_width, emotion = (np.asarray(a, np.float64) for a in (mouth_open, mouth_width, emotion))
    half_width = ident.mouth_width * (1 + 0.22 * mouth_width) * (1 + 0.08 * np.maximum(emotion, 0))
    opening = MOUTH_OPENING * mouth_open
    lip = ident.lip_thickness * (1 + 0.3 * np.maximum(-mouth_width, 0))
    corner = 0.035 * emotion  # smile lifts the corners, sadness drops them
    upper_inner = ident.mouth_y + 0.1 * opening
    lower_inner = ident.mouth_y - 0.9 * opening
    return {
        "half_width": half_width, "opening": opening, "lip": lip, "corner": corner,
        "shape": 0.75 + 0.25 * mouth_width,  # contour exponent: rounder for rounded lips, flatter when spread
        "upper_inner": upper_inner, "lower_inner": lower_inner,
        "upper_outer": upper_inner + lip, "lower_outer": lower_inner - 1.25 * lip,
        "corner_y": ident.mouth_y + corner,
    }


def _ellipsoid(o, d, centre, axes, far=False):
    """Ray-ellipsoid intersection. o: 3 arrays [F, 1]; d: 3 arrays [F, P]; centre/axes: 3 scalars or [F, 1].
    Returns t_near (and t_far with far=True), inf where the ray misses."""
    ox, oy, oz = ((o[i] - centre[i]) / axes[i] for i in range(3))
    dx, dy, dz = (d[i] / axes[i] for i in range(3))
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - 1.0
    disc = b * b - a * c
    hit = disc > 0
    root = np.sqrt(np.where(hit, disc, 0.0))
    near = np.where(hit, (-b - root) / a, np.inf)
    if not far:
        return near
    return near, np.where(hit, (-b + root) / a, np.inf)


def _hit_y(o, d, t):
    """Height of the hit point; NaN (false in any comparison) where the ray misses (t = inf)."""
    return o[1] + np.where(np.isfinite(t), t, np.nan) * d[1]


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _cover(signed_distance, width):
    """Anti-aliased coverage of a region whose inside has positive signed distance."""
    return np.clip(signed_distance / width + 0.5, 0.0, 1.0)


def _mix(colour, target, amount):
    """colour [N, 3] towards target ([3] or [N, 3]) by amount [N]."""
    return colour + amount[:, None] * (np.asarray(target, np.float32) - colour)


def _render_chunk(ident: Identity, st: Mapping, rays, size: int):
    f = np.asarray(st["yaw"]).shape[0]
    rot = rotation_matrices(st["yaw"], st["pitch"], st["roll"]).astype(np.float32)  # [F, 3, 3]
    centre = head_centres(st).astype(np.float32)  # [F, 3]
    col = lambda a: np.asarray(a, np.float32)[:, None]  # noqa: E731  per-frame scalar -> [F, 1]
    # Rays in head-local space: o = -R^T C, d = R^T d_cam.
    o_loc = -np.einsum("fji,fj->fi", rot, centre)
    o = tuple(col(o_loc[:, i]) for i in range(3))
    d = tuple(rot[:, 0, i, None] * rays[0] + rot[:, 1, i, None] * rays[1] + rot[:, 2, i, None] * rays[2]
              for i in range(3))
    mouth_open = np.asarray(st["mouth_open"], np.float32)
    jaw = col(ident.jaw_length + JAW_DROP * mouth_open)
    hw, ht, hd = ident.head_width, ident.head_top, ident.head_depth

    depth = np.full((_BACKGROUND,) + d[0].shape, np.inf, np.float32)
    up_near = _ellipsoid(o, d, (0, 0, 0), (hw, ht, hd))
    depth[_UPPER] = np.where(_hit_y(o, d, up_near) >= 0, up_near, np.inf)
    low_near = _ellipsoid(o, d, (0, 0, 0), (hw, jaw, hd))
    depth[_LOWER] = np.where(_hit_y(o, d, low_near) < 0, low_near, np.inf)
    nose_c = _nose_centre(ident)
    depth[_NOSE] = _ellipsoid(o, d, nose_c, (ident.nose_width, ident.nose_length, ident.nose_depth))
    ear_axes = (0.07, ident.ear_size, 0.13)
    ear_y = ident.eye_y - 0.12
    depth[_EAR_L] = _ellipsoid(o, d, (-0.96 * hw, ear_y, -0.08), ear_axes)
    depth[_EAR_R] = _ellipsoid(o, d, (0.96 * hw, ear_y, -0.08), ear_axes)
    hair_c = (0.0, 0.04, -0.05)
    hair_axes = (hw * ident.hair_volume, ht * ident.hair_volume, hd * ident.hair_volume)
    if not ident.bald:
        near, far = _ellipsoid(o, d, hair_c, hair_axes, far=True)
        depth[_HAIR_NEAR] = np.where(_hair_region(ident, o, d, near, hair_c, hair_axes), near, np.inf)
        depth[_HAIR_FAR] = np.where(_hair_region(ident, o, d, far, hair_c, hair_axes), far, np.inf)
    # Long hair hangs behind the head and neck, showing at their sides.
    curtain_c, curtain_axes = (0.0, -0.6, -0.68 * hd), (hw * 1.1, 1.35, 0.58 * hd)
    if ident.long_hair:
        depth[_CURTAIN] = _ellipsoid(o, d, curtain_c, curtain_axes)
    # Neck (vertical cylinder) and torso in camera space: they follow position and distance, not rotation.
    cx, cy, cz = (col(centre[:, i]) for i in range(3))
    neck_r = 0.42 * hw / 0.79
    ndx, ndz = rays[0], rays[2]
    a = ndx * ndx + ndz * ndz
    b = -(ndx * cx + ndz * (cz - 0.12))
    c = cx * cx + (cz - 0.12) ** 2 - neck_r**2
    disc = b * b - a * c
    t_neck = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    depth[_NECK] = np.where(t_neck * rays[1] < cy - 0.35, t_neck, np.inf)
    cam_o = (np.zeros((f, 1), np.float32),) * 3
    torso_c = (cx, cy - 2.5, cz - 0.45)
    depth[_TORSO] = _ellipsoid(cam_o, rays, torso_c, (1.8, 1.08, 0.9))

    winner = np.argmin(depth, axis=0)  # [F, P]
    t_hit = np.take_along_axis(depth, winner[None], 0)[0]
    winner = np.where(np.isfinite(t_hit), winner, _BACKGROUND)

    rgb = np.empty(winner.shape + (3,), np.float32)
    part = np.zeros(winner.shape, np.uint8)
    frame_of = np.broadcast_to(np.arange(f)[:, None], winner.shape)
    light = np.einsum("fji,j->fi", rot, _LIGHT).astype(np.float32)  # light direction in head-local space

    def select(ids, local=True):
        """Pixels won by any of `ids`: (index, frame, hit point in head-local or camera space)."""
        mask = winner == ids[0]
        for other in ids[1:]:
            mask |= winner == other
        idx = np.nonzero(mask)
        fr = frame_of[idx]
        t = t_hit[idx]
        if local:
            return idx, fr, tuple(o[i][fr, 0] + t * d[i][idx] for i in range(3))
        return idx, fr, tuple(t * rays[i][idx[1]] for i in range(3))

    def lambert(normal, fr, local=True):
        n = np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2) + 1e-9
        lx, ly, lz = (light[fr, i] for i in range(3)) if local else _LIGHT.astype(np.float32)
        diffuse = np.maximum((normal[0] * lx + normal[1] * ly + normal[2] * lz) / n, 0.0)
        return (0.42 + 0.62 * diffuse)[:, None]

    # Background: vertical gradient with a soft vignette.
    idx = np.nonzero(winner == _BACKGROUND)
    ry, rx = rays[1][idx[1]] / TAN_HALF_FOV, rays[0][idx[1]] / TAN_HALF_FOV
    top, bottom = np.asarray(ident.background_top, np.float32), np.asarray(ident.background_bottom, np.float32)
    grad = ((1 - ry) / 2)[:, None]
    rgb[idx] = (top + grad * (bottom - top)) * (1 - 0.18 * (rx**2 + ry**2))[:, None]

    # Skull: skin with the painted face.
    idx, fr, p = select([_UPPER, _LOWER])
    if idx[0].size:
        b = np.where(p[1] >= 0, ht, jaw[fr, 0])
        shade = lambert((p[0] / hw**2, p[1] / b**2, p[2] / hd**2), fr)
        colour, labels = _paint_face(ident, st, fr, p, size)
        rgb[idx] = colour * shade
        part[idx] = labels

    idx, fr, p = select([_NOSE])
    if idx[0].size:
        ax = (ident.nose_width, ident.nose_length, ident.nose_depth)
        q = tuple((p[i] - nose_c[i]) / ax[i] for i in range(3))
        shade = lambert((q[0] / ax[0], q[1] / ax[1], q[2] / ax[2]), fr)
        skin = np.asarray(ident.skin, np.float32)
        colour = np.broadcast_to(0.91 * skin + 0.06 * np.array([0.8, 0.35, 0.3], np.float32), (fr.size, 3))
        nostril = np.minimum(_cover(0.2 - np.hypot(np.abs(q[0]) - 0.42, (q[1] + 0.62) * 1.2), 0.08), q[2] > 0)
        rgb[idx] = _mix(colour, (0.12, 0.05, 0.04), nostril * 0.85) * shade
        part[idx] = _PART["nose"]

    idx, fr, p = select([_EAR_L, _EAR_R])
    if idx[0].size:
        side = np.sign(p[0])
        q = ((p[0] - side * 0.96 * hw) / 0.07, (p[1] - ear_y) / ident.ear_size, (p[2] + 0.08) / 0.13)
        shade = lambert((q[0] / 0.07, q[1] / ident.ear_size, q[2] / 0.13), fr)
        inner = _cover(0.55 - np.hypot(q[1], q[2]), 0.15) * (q[0] * side > 0)
        colour = np.asarray(ident.skin, np.float32) * (0.93 - 0.2 * inner)[:, None]
        rgb[idx] = colour * shade
        part[idx] = _PART["ear"]

    idx, fr, p = select([_HAIR_NEAR, _HAIR_FAR, _CURTAIN])
    if idx[0].size:
        in_curtain = winner[idx] == _CURTAIN
        cen = np.where(in_curtain[:, None], np.asarray(curtain_c, np.float32), np.asarray(hair_c, np.float32))
        axs = np.where(in_curtain[:, None], np.asarray(curtain_axes, np.float32), np.asarray(hair_axes, np.float32))
        q = tuple((p[i] - cen[:, i]) / axs[:, i] for i in range(3))
        inside = np.where(winner[idx] == _HAIR_FAR, -1.0, 1.0)  # the inside of the shell faces the other way
        shade = lambert(tuple(inside * q[i] / axs[:, i] for i in range(3)), fr)
        strands = 0.86 + 0.14 * np.sin(38.0 * q[0] + 6.0 * q[1] + 3.0 * np.sin(9.0 * q[1]))
        dim = np.where(winner[idx] == _HAIR_FAR, 0.55, 1.0)
        rgb[idx] = np.asarray(ident.hair, np.float32) * (shade * (strands * dim)[:, None])
        part[idx] = _PART["hair"]

    idx, fr, p = select([_NECK], local=False)
    if idx[0].size:
        shade = lambert((p[0] - cx[fr, 0], 0 * p[0], p[2] - (cz[fr, 0] - 0.12)), fr, local=False)
        under_chin = _smoothstep(cy[fr, 0] - 0.35, cy[fr, 0] - 1.3, p[1])
        rgb[idx] = np.asarray(ident.skin, np.float32) * (shade * (0.62 + 0.25 * under_chin)[:, None])
        part[idx] = _PART["neck"]

    idx, fr, p = select([_TORSO], local=False)
    if idx[0].size:
        nrm = ((p[0] - cx[fr, 0]) / 1.8**2, (p[1] - cy[fr, 0] + 2.5) / 1.08**2, (p[2] - cz[fr, 0] + 0.45) / 0.9**2)
        rgb[idx] = np.asarray(ident.clothes, np.float32) * lambert(nrm, fr, local=False)
        part[idx] = _PART["clothes"]

    return rgb.reshape(-1, 3), part.reshape(-1)


def _hair_region(ident: Identity, o, d, t, centre, axes):
    """Whether the shell point at ray parameter t carries hair (above a hairline that runs lower behind)."""
    hit = np.isfinite(t)
    t = np.where(hit, t, 0.0)
    q = tuple((o[i] + t * d[i] - centre[i]) / axes[i] for i in range(3))
    front = _smoothstep(-0.35, 0.35, q[2])
    fringe = ident.fringe * (1 - _smoothstep(0.15, 0.55, np.abs(q[0])))
    sideburn = 0.3 * _smoothstep(0.72, 0.95, np.abs(q[0])) * front
    threshold = ident.hair_back + front * (ident.hairline - fringe - ident.hair_back) - sideburn
    return hit & (q[1] > threshold)


def _paint_face(ident: Identity, st: Mapping, fr: np.ndarray, p, size: int):
    """Colour [N, 3] and part ids [N] of skull points p (head-local) for frames fr.

    Each feature is painted only inside its bounding box: most of the face is plain skin.
    """
    x, y, z = p
    n = x.size
    # World units per pixel at the head's distance: the width of anti-aliased edges.
    aa = (2 * TAN_HALF_FOV * BASE_DISTANCE / np.asarray(st["scale"], np.float32) / size)[fr]
    skin = np.asarray(ident.skin, np.float32)
    colour = np.broadcast_to(skin, (n, 3)).copy()
    labels = np.full(n, _PART["skin"], np.uint8)
    front = z > 0

    def paint(box, fn):
        idx = np.nonzero(box & front)[0]
        if idx.size:
            colour[idx], labels[idx] = fn(x[idx], y[idx], fr[idx], aa[idx], colour[idx], labels[idx])

    def cheeks(x, y, fr, aa, c, lab):
        cheek = np.exp(-((np.abs(x) - ident.eye_sep - 0.06) ** 2 + (y - ident.eye_y + 0.32) ** 2) / 0.012)
        return _mix(c, (0.85, 0.3, 0.3), ident.blush * 0.5 * cheek), lab

    if ident.blush > 0:
        paint(np.abs(y - ident.eye_y + 0.32) < 0.33, cheeks)
    for sx, sy, sr in ident.spots:
        def spot(x, y, fr, aa, c, lab, sx=sx, sy=sy, sr=sr):
            return _mix(c, skin * 0.55, 0.8 * _cover(sr - np.hypot(x - sx, y - sy), aa)), lab
        paint((np.abs(x - sx) < sr + 0.02) & (np.abs(y - sy) < sr + 0.02), spot)

    if ident.beard > 0:  # below the nose around the mouth, thinning towards the cheeks
        def beard(x, y, fr, aa, c, lab):
            region = _smoothstep(ident.nose_y - 0.12, ident.nose_y - 0.2, y) * (1 - _smoothstep(0.55, 0.75, np.abs(x)))
            texture = 0.75 + 0.25 * np.sin(90 * x) * np.sin(70 * y)
            return _mix(c, ident.hair, np.clip(ident.beard * region * texture, 0, 1)), lab
        paint(y < ident.nose_y - 0.12, beard)

    eyes_top = ident.eye_y + ident.brow_gap + ident.brow_arch + ident.brow_thickness + 0.06
    paint((np.abs(np.abs(x) - ident.eye_sep) < 1.5 * ident.eye_width) & (y > ident.eye_y - 1.2 * ident.eye_height)
          & (y < eyes_top), lambda *a: _paint_eyes(ident, st, *a))
    reach = MOUTH_OPENING + 2.0 * ident.lip_thickness * 1.3 + 0.06
    paint((np.abs(x) < 1.45 * ident.mouth_width) & (np.abs(y - ident.mouth_y) < reach),
          lambda *a: _paint_mouth(ident, st, *a))
    return colour, labels


def _paint_eyes(ident, st, x, y, fr, aa, colour, labels):
    """Brows, lids, eye whites, irises and pupils (both eyes at once, in mirrored coordinates)."""
    emotion = np.asarray(st["emotion"], np.float32)[fr]
    # Brows: emotion lifts them (happy) or raises their inner ends (sad).
    bw = ident.eye_width * 1.4
    ub = (np.abs(x) - ident.eye_sep) / bw  # -1 at the inner end, +1 at the outer end
    lift = 0.02 * np.maximum(emotion, 0) + 0.05 * np.maximum(-emotion, 0) * (1 - ub) / 2
    lift -= 0.015 * np.maximum(-emotion, 0) * (1 + ub) / 2
    brow_y = ident.eye_y + ident.brow_gap + ident.brow_arch * (1 - ub**2) + lift
    thick = ident.brow_thickness * (1 - 0.35 * ub)
    brow = np.minimum(_cover(thick / 2 - np.abs(y - brow_y), aa), _cover((1 - np.abs(ub)) * bw, aa))
    colour = _mix(colour, ident.brow, brow)
    labels = np.where(brow > 0.5, _PART["brow"], labels).astype(np.uint8)

    blink = np.asarray(st["blink"], np.float32)[fr]
    gaze = np.radians(np.asarray(st["gaze"], np.float32))[fr]
    side = np.sign(x)
    ew, eh = ident.eye_width, ident.eye_height
    u = (np.abs(x) - ident.eye_sep) / ew  # mirrored: both eyes at once
    v = (y - ident.eye_y) / eh
    bulge = np.clip(1 - u**2, 0, None)
    lower = -0.8 * bulge
    upper = bulge * (1 - blink) + lower * blink
    opening = np.minimum(np.minimum(v - lower, upper - v) * eh, (1 - np.abs(u)) * ew)
    eye = _cover(opening, aa)
    # Shadow of the lid fold, and the lash line along the upper lid (the closed-eye line when blinking).
    fold = _cover(0.7 * eh - np.abs(v - 1.45) * eh, aa) * (np.abs(u) < 1.1)
    colour = _mix(colour, np.asarray(ident.skin, np.float32) * 0.8, 0.5 * fold)
    lash = _cover(0.011 - np.abs((v - upper) * eh - 0.005), aa) * _cover((1.06 - np.abs(u)) * ew, aa)
    # Iris and pupil on an eyeball of radius ~1.15 eye widths, turned by the gaze (eye-in-head).
    ball = 1.15 * ew
    ix = np.abs(x) - ident.eye_sep - side * ball * np.sin(gaze[:, 0])
    iy = y - ident.eye_y - ball * np.sin(gaze[:, 1])
    ix = ix / np.cos(gaze[:, 0])  # foreshortened when looking sideways
    iy = iy / np.cos(gaze[:, 1])
    r = np.hypot(ix, iy)
    iris_r = 1.05 * eh
    white = np.asarray((0.95, 0.93, 0.9), np.float32) * (1 - 0.25 * u**4)[:, None]
    iris = _cover(iris_r - r, aa)
    pupil = _cover(0.45 * iris_r - r, aa)
    glint = _cover(0.16 * iris_r - np.hypot(ix + 0.35 * iris_r, iy - 0.35 * iris_r), aa)
    eyeball = _mix(_mix(_mix(white, ident.iris, iris), (0.03, 0.03, 0.04), pupil), (1, 1, 1), glint * 0.9)
    colour = colour + eye[:, None] * (eyeball - colour)
    colour = _mix(colour, (0.08, 0.06, 0.06), lash * 0.9)
    labels[eye > 0.5] = _PART["eye_white"]
    labels[(eye > 0.5) & (iris > 0.5)] = _PART["iris"]
    return colour, labels


def _paint_mouth(ident, st, x, y, fr, aa, colour, labels):
    """Lips, the opening between them, teeth and tongue."""
    emotion = np.asarray(st["emotion"], np.float32)[fr]
    m = _mouth_geometry(ident, np.asarray(st["mouth_open"])[fr], np.asarray(st["mouth_width"])[fr], emotion)
    m = {k: np.asarray(v, np.float32) for k, v in m.items()}
    u = x / m["half_width"]
    inside_u = np.clip(1 - u**2, 0, None)
    profile = inside_u ** m["shape"]
    lip_taper = 0.55 + 0.45 * np.sqrt(inside_u)
    curve = m["corner"] * u**2
    upper_in = m["upper_inner"] + curve + (m["upper_inner"] - ident.mouth_y) * (profile - 1)
    lower_in = ident.mouth_y + curve - (ident.mouth_y - m["lower_inner"]) * profile
    gap = np.maximum(upper_in - lower_in, 0.0) + 0.006  # a dark line remains between closed lips
    mid = 0.5 * (upper_in + lower_in)
    upper_out = upper_in + m["lip"] * lip_taper
    lower_out = lower_in - 1.25 * m["lip"] * lip_taper
    width_edge = (1 - np.abs(u)) * m["half_width"]
    lips = np.minimum(np.minimum(upper_out - y, y - lower_out), width_edge * 1.06 + 0.004)
    lips = _cover(lips, aa)
    hole = _cover(np.minimum(gap / 2 - np.abs(y - mid), width_edge), aa)
    colour = _mix(colour, ident.lips, lips)
    inside = np.broadcast_to(np.asarray((0.2, 0.06, 0.07), np.float32), colour.shape).copy()
    teeth = _cover(np.minimum(0.026 - (upper_in - y), (0.72 - np.abs(u)) * m["half_width"]), aa)
    tongue = _cover(0.35 * (upper_in - lower_in) - (y - lower_in), aa)
    inside = _mix(_mix(inside, (0.62, 0.26, 0.27), tongue * 0.8), (0.93, 0.91, 0.86), teeth)
    colour = colour + hole[:, None] * (inside - colour)
    labels[lips > 0.5] = _PART["lips"]
    labels[hole > 0.5] = _PART["mouth_inside"]
    labels[(hole > 0.5) & (teeth > 0.5)] = _PART["teeth"]
    return colour, labels
