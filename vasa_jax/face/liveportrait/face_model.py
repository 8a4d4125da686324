"""LivePortrait behind the project's face interface (vasa_jax.face.model.FaceModel).

Motion layout (MOTION_KEYS), one vector per frame, the project's z_pose order then the expression:
    yaw, pitch, roll   degrees, LivePortrait's own angles (headpose soft-argmax)
    tx, ty             LivePortrait's translation (tz is never used by its keypoint transform, so not kept)
    scale              LivePortrait's scale
    exp                the 21 x 3 expression deformation, flattened (z_dyn)
encode_source keeps the source's canonical keypoints and its driven keypoints x_s besides f_s; decode builds
the driving keypoints s * (kp_c @ R + exp) + (tx, ty, 0), adds the source's edit, stitches them to x_s
(upstream's stitching MLP, so the face fits back into the source frame) and renders through W and G at 512x512.

Edits (EDITS): eye and lip open ratios through upstream's retargeting MLPs, as its retargeting tool applies
them: the MLP reads the source keypoints, the source's own open ratios (from landmarks) and the target ratio,
and its keypoint delta is added to every frame's driving keypoints before stitching. edit_source computes the
delta once per portrait and keeps it in the identity latent ("edit", zeros when unedited), so edited and
unedited generations share one compiled decode.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from vasa_jax.face.liveportrait.camera import rotation_matrix
from vasa_jax.face.liveportrait.config import LivePortraitConfig
from vasa_jax.face.liveportrait.model import (CONVERTED_CONFIG, OUTPUT_SIZE, SOURCE_SIZE, LivePortrait,
                                              load_liveportrait, upstream_root)

POSE_KEYS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
NAME = "liveportrait"
EDITS = ("eye_ratio", "lip_ratio")  # target open ratios, as upstream's retargeting sliders (0 closed, ~0.8 wide)


def _distance(points, a, b):
    return float(np.linalg.norm(points[a] - points[b]))


def open_ratios(landmarks) -> tuple[np.ndarray, np.ndarray]:
    """(eyes [2], lip [1]): the open ratios upstream's retargeting MLPs read, from dlib's 68 points.

    Upstream measures them on its own 203-point landmarks: each eye's lid gap (the lids' middle points) over
    its width (the corners), the image-left eye first, and the inner lips' gap over the mouth's width. These are
    the same quantities on dlib's points (the lids' middle is the mean of their two inner points); a ratio does
    not depend on where or how large the face is, so photo pixels serve."""
    p = np.asarray(landmarks, np.float64)
    if p.shape != (68, 2) or not np.all(np.isfinite(p)):
        raise ValueError(f"open_ratios takes dlib's 68 landmarks [68, 2]; got {p.shape}")
    eps = 1e-6  # upstream's guard against a zero width
    eyes = []
    for corner_a, corner_b, upper, lower in ((36, 39, (37, 38), (41, 40)), (42, 45, (43, 44), (47, 46))):
        gap = np.linalg.norm(p[list(upper)].mean(0) - p[list(lower)].mean(0))
        eyes.append(gap / (_distance(p, corner_a, corner_b) + eps))
    lip = _distance(p, 62, 66) / (_distance(p, 48, 54) + eps)
    return np.asarray(eyes, np.float32), np.asarray([lip], np.float32)


class LivePortraitFaceModel:
    """encode_source / encode_motion / decode over LivePortrait (see the module docstring for the layout)."""

    name = NAME
    image_size = SOURCE_SIZE
    output_size = OUTPUT_SIZE
    pose_dim = len(POSE_KEYS)
    edits = EDITS

    def __init__(self, config: LivePortraitConfig = LivePortraitConfig(), *, stitching: bool = True,
                 dtype: str = "float32"):
        self.config, self.stitching, self.dtype = config, bool(stitching), str(dtype)
        self.model = LivePortrait(config, dtype=jnp.dtype(dtype))
        self.motion_dim = self.pose_dim + 3 * config.num_kp

    def __eq__(self, other):
        return type(other) is type(self) and self.manifest() == other.manifest()

    def __hash__(self):
        return hash((type(self), self.config, self.stitching, self.dtype))

    # ---- what pipeline.json stores --------------------------------------------------------------------------

    def manifest(self) -> dict:
        return {"implementation": NAME, "config": self.config.to_dict(), "stitching": self.stitching,
                "dtype": self.dtype}

    @classmethod
    def from_manifest(cls, section: dict) -> "LivePortraitFaceModel":
        return cls(LivePortraitConfig.from_dict(section.get("config", {})), stitching=section.get("stitching", True),
                   dtype=section.get("dtype", "float32"))

    def init(self, key):
        return self.model.init(key)

    def framer(self):
        """Upstream's crop, with paste-back into the photo (framing.LivePortraitFramer)."""
        from vasa_jax.face.liveportrait.framing import LivePortraitFramer

        return LivePortraitFramer(self.image_size, self.output_size)

    # ---- the interface ----------------------------------------------------------------------------------------

    def _check(self, image):
        if image.ndim != 4 or image.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"LivePortrait takes images [B, {self.image_size}, {self.image_size}, 3] in [0, 1]; "
                             f"got {image.shape}")

    def encode_source(self, params, image):
        """(f_s [B, 16, 64, 64, 32], {"kp": canonical keypoints, "x_s": the source's driven keypoints,
        "edit": the keypoint delta of edit_source, zeros})."""
        self._check(image)
        info = self.model.motion_info(params, image)
        x_s = self.model.keypoints(info)
        return self.model.appearance(params, image), {"kp": info["kp"], "x_s": x_s, "edit": jnp.zeros_like(x_s)}

    def edit_source(self, params, source, landmarks, *, eye_ratio=None, lip_ratio=None):
        """The identity latent with its eyes / lips retargeted to open ratios (None: unchanged), given the
        portrait's dlib 68 landmarks; the delta replaces any earlier edit."""
        eyes, lip = open_ratios(landmarks)
        x_s = source["x_s"]
        b = x_s.shape[0]
        delta = jnp.zeros_like(x_s)
        if eye_ratio is not None:
            ratios = jnp.broadcast_to(jnp.asarray([*eyes, eye_ratio], jnp.float32), (b, 3))
            delta = delta + self.model.retarget_eye(params, x_s, ratios)
        if lip_ratio is not None:
            ratios = jnp.broadcast_to(jnp.asarray([*lip, lip_ratio], jnp.float32), (b, 2))
            delta = delta + self.model.retarget_lip(params, x_s, ratios)
        return {**source, "edit": delta}

    def encode_motion(self, params, image):
        self._check(image)
        return motion_vector(self.model.motion_info(params, image))

    def keypoints(self, source, motion):
        """The driving keypoints [B, 21, 3] of motion [B, M] for a source (before stitching)."""
        info = motion_info(motion, self.config.num_kp)
        return self.model.keypoints({**info, "kp": source["kp"]})

    def decode(self, params, f_s, source, motion):
        """Frames [B, 512, 512, 3] in [0, 1] of the source driven by motion [B, M]."""
        if motion.ndim != 2 or motion.shape[1] != self.motion_dim:
            raise ValueError(f"motion must be [B, {self.motion_dim}]; got {motion.shape}")
        x_d = self.keypoints(source, motion) + source["edit"]
        if self.stitching:
            x_d = self.model.stitch(params, source["x_s"], x_d)
        warped = self.model.warp(params, f_s, source["x_s"], x_d)
        return self.model.generate(params, warped["out"])

    def relative_motion(self, source_motion, reference_motion, driving_motion):
        """Upstream's relative driving: the source's motion moved as the driving frames move from the reference
        frame. Rotations compose (R_d R_ref^T R_s), expression and translation add their change, scale
        multiplies. Shapes: [1 or B, M] each -> [B, M]."""
        k = self.config.num_kp
        s, r, d = (motion_info(m, k) for m in (source_motion, reference_motion, driving_motion))
        rotation = (rotation_matrix(d["pitch"], d["yaw"], d["roll"])
                    @ jnp.swapaxes(rotation_matrix(r["pitch"], r["yaw"], r["roll"]), -1, -2)
                    @ rotation_matrix(s["pitch"], s["yaw"], s["roll"]))
        pitch, yaw, roll = rotation_angles(rotation)
        return motion_vector({"pitch": pitch, "yaw": yaw, "roll": roll,
                              "t": s["t"] + d["t"] - r["t"], "scale": s["scale"] * d["scale"] / r["scale"],
                              "exp": s["exp"] + d["exp"] - r["exp"]})


def motion_vector(info: dict):
    """motion_info's dict -> [B, 6 + 3K] in MOTION layout (tz dropped)."""
    b = info["exp"].shape[0]
    return jnp.concatenate([jnp.stack([info["yaw"], info["pitch"], info["roll"]], -1).reshape(b, 3),
                            info["t"][:, :2], info["scale"].reshape(b, 1), info["exp"].reshape(b, -1)], -1)


def motion_info(motion, num_kp: int) -> dict:
    """[B, 6 + 3K] -> the dict transform_keypoints reads (tz = 0, no canonical keypoints)."""
    b = motion.shape[0]
    return {"yaw": motion[:, 0], "pitch": motion[:, 1], "roll": motion[:, 2],
            "t": jnp.concatenate([motion[:, 3:5], jnp.zeros((b, 1), motion.dtype)], -1),
            "scale": motion[:, 5:6], "exp": motion[:, 6:].reshape(b, num_kp, 3)}


def rotation_angles(rotation):
    """(pitch, yaw, roll) in degrees of rotations [B, 3, 3] made by camera.rotation_matrix, for |yaw| < 90:
    that matrix is (Rz(roll) Ry(yaw) Rx(pitch))^T, whose transpose's bottom row and first column give them."""
    m = jnp.swapaxes(rotation, -1, -2)
    pitch = jnp.arctan2(m[..., 2, 1], m[..., 2, 2])
    yaw = -jnp.arcsin(jnp.clip(m[..., 2, 0], -1.0, 1.0))
    roll = jnp.arctan2(m[..., 1, 0], m[..., 0, 0])
    return jnp.degrees(pitch), jnp.degrees(yaw), jnp.degrees(roll)


def holds_weights(folder) -> bool:
    """Whether `folder` holds LivePortrait weights (upstream's layout, the hub download's, or converted)."""
    folder = Path(folder)
    return folder.is_dir() and ((folder / CONVERTED_CONFIG).is_file() or upstream_root(folder) is not None)


def load_face_weights(folder):
    """(LivePortraitFaceModel, params) of a LivePortrait weights folder (vasa_jax.face.registry)."""
    model, params = load_liveportrait(folder)
    return LivePortraitFaceModel(model.config), params
