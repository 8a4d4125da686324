"""LivePortrait behind the project's face interface (vasa_jax.face.model.FaceModel).

Motion layout (MOTION_KEYS), one vector per frame, the project's z_pose order then the expression:
    yaw, pitch, roll   degrees, LivePortrait's own angles (headpose soft-argmax)
    tx, ty             LivePortrait's translation (tz is never used by its keypoint transform, so not kept)
    scale              LivePortrait's scale
    exp                the 21 x 3 expression deformation, flattened (z_dyn)
encode_source keeps the source's canonical keypoints and its driven keypoints x_s besides f_s; decode builds
the driving keypoints s * (kp_c @ R + exp) + (tx, ty, 0), stitches them to x_s (upstream's stitching MLP, so
the face fits back into the source frame) and renders through W and G at 512x512.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp

from vasa_jax.face.liveportrait.camera import rotation_matrix
from vasa_jax.face.liveportrait.config import LivePortraitConfig
from vasa_jax.face.liveportrait.model import (CONVERTED_CONFIG, OUTPUT_SIZE, SOURCE_SIZE, LivePortrait,
                                              load_liveportrait, upstream_root)

POSE_KEYS = ("yaw", "pitch", "roll", "tx", "ty", "scale")
NAME = "liveportrait"


class LivePortraitFaceModel:
    """encode_source / encode_motion / decode over LivePortrait (see the module docstring for the layout)."""

    name = NAME
    image_size = SOURCE_SIZE
    output_size = OUTPUT_SIZE
    pose_dim = len(POSE_KEYS)

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
        """(f_s [B, 16, 64, 64, 32], {"kp": canonical keypoints, "x_s": the source's driven keypoints})."""
        self._check(image)
        info = self.model.motion_info(params, image)
        return self.model.appearance(params, image), {"kp": info["kp"], "x_s": self.model.keypoints(info)}

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
        x_d = self.keypoints(source, motion)
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
