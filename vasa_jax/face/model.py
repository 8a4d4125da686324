"""The face model and the one interface stage 2 and sampling use.

    face = WarpingFaceModel(FaceConfig(...))
    params = face.init(key)
    v_app, z_id = face.encode_source(params, portrait)   # once per portrait
    motion = face.encode_motion(params, frames)          # [B, face.motion_dim]: z_pose then z_dyn
    frames = face.decode(params, v_app, z_id, motion)    # any pose and dynamics of that face

Images are float [B, S, S, 3] in [0, 1]: read at face.image_size, written at face.output_size. Stage 2 sees
only motion vectors, so any model with these pure functions (FaceModel) can stand behind it; the registry
(vasa_jax.face.registry) maps the name a checkpoint records to the implementation.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa_jax.face.config import POSE_DIM, FaceConfig
from vasa_jax.face.networks import AppearanceEncoder, Decoder, Enhancer, IdentityEncoder, MotionEncoder, WarpGenerator
from vasa_jax.face.warping import canonical_points, source_points, to_canonical
from vasa_jax.ops import grid_sample


class FaceModel(Protocol):
    """What stage 2 and sampling need from a face model: pure functions of (params, inputs).

    Models are hashable and compare equal when they compute the same thing, so jitted functions take one as
    a static argument. The two latents of encode_source are pytrees with a leading batch axis (arrays, or
    dicts of arrays), opaque to everything but decode.
    """

    name: str  # the registry's name for the implementation
    image_size: int  # side of the images encode_source / encode_motion read
    output_size: int  # side of the images decode writes
    motion_dim: int  # z_pose then z_dyn
    pose_dim: int  # motion[:, :pose_dim] is z_pose in POSE_KEYS order (vasa_jax.pose)
    edits: tuple[str, ...]  # the portrait edits edit_source takes (keyword names); () for none

    def init(self, key: jax.Array): ...

    def manifest(self) -> dict: ...  # what a checkpoint records to rebuild the model (registry.face_model)

    def encode_source(self, params, image: jax.Array) -> tuple: ...

    def encode_motion(self, params, image: jax.Array) -> jax.Array: ...

    # The identity latent edited once per portrait (e.g. LivePortrait's eye / lip open ratios), from the
    # portrait's dlib 68 landmarks; only models with edits need it.
    def edit_source(self, params, identity, landmarks, **edits): ...

    def decode(self, params, appearance, identity, motion: jax.Array) -> jax.Array: ...

    def relative_motion(self, source_motion, reference_motion, driving_motion) -> jax.Array: ...

    def framer(self): ...  # frames portraits as the model's training frames were (vasa_jax.pipeline.portrait)


# FaceNetwork's parts: the top-level groups of its params (what face_train.freeze names).
# "enhancer" only where the config has one.
FACE_PARTS = ("appearance", "identity", "motion", "warp_to_canonical", "warp_from_canonical", "decoder", "enhancer")


class FaceNetwork(nn.Module):
    """VASA-1's face latent space as one Flax module (MegaPortraits' recipe)."""

    config: FaceConfig

    def setup(self):
        c = self.config
        self.appearance = AppearanceEncoder(c)
        self.identity = IdentityEncoder(c)
        self.motion = MotionEncoder(c)
        self.warp_to_canonical = WarpGenerator(c)
        self.warp_from_canonical = WarpGenerator(c)
        self.decoder = Decoder(c)
        if c.enhancer_widths:
            self.enhancer = Enhancer(c)

    @staticmethod
    def _resized(image, size: int):
        if size == image.shape[1]:
            return image
        return jax.image.resize(image, (image.shape[0], size, size, image.shape[3]), "linear", antialias=True)

    def _encoder_view(self, image):
        """The image as the identity and motion encoders read it (config.encoder_size, else base_size)."""
        return self._resized(image, self.config.encoder_size or self.config.base_size)

    def analyze(self, image):
        """Everything the encoders read from an image: its appearance, z_id and its motion. The appearance is
        V_app, or with an enhancer {"volume": V_app, "source_points", "source_image", "source_small"}: where each
        canonical point reads the source image, and the image at full and at the base size, for the enhancer's
        source skip (made once per portrait, not per frame)."""
        small = self._encoder_view(image)
        motion = self.motion(small)
        z_id = self.identity(small)
        pose, dyn = motion[:, :POSE_DIM], motion[:, POSE_DIM:]
        base_view = self._resized(image, self.config.base_size)
        posed = self.appearance(base_view)
        flow = self.warp_to_canonical(dyn, z_id)
        v_app = to_canonical(posed, pose, flow)
        if not self.config.enhancer_widths:
            return v_app, z_id, motion
        appearance = {"volume": v_app, "source_points": source_points(pose, flow), "source_image": image,
                      "source_small": base_view}
        return appearance, z_id, motion

    def encode_source(self, image):
        appearance, z_id, _ = self.analyze(image)
        return appearance, z_id

    def encode_motion(self, image):
        return self.motion(self._encoder_view(image))

    def decode(self, appearance, z_id, motion):
        pose, dyn = motion[:, :POSE_DIM], motion[:, POSE_DIM:]
        v_app = appearance["volume"] if self.config.enhancer_widths else appearance
        points = canonical_points(pose, self.warp_from_canonical(dyn, z_id))
        driven = grid_sample(v_app, points)
        logits, features = self.decoder(driven)
        if not self.config.enhancer_widths:
            return nn.sigmoid(logits)
        # The composite map driver -> source: the canonical point each driven voxel reads, then where the source
        # image shows that canonical point (border: points past the cube keep the edge's).
        to_source = grid_sample(appearance["source_points"], points, padding_mode="border")
        return self.enhancer(logits, features, jnp.concatenate([dyn, z_id], axis=-1), driven, to_source,
                             appearance["source_image"], appearance["source_small"])

    def __call__(self, source, driver):
        """Self-reenactment: the source's face with the driver's motion (also what init traces)."""
        v_app, z_id = self.encode_source(source)
        return self.decode(v_app, z_id, self.encode_motion(driver))


class WarpingFaceModel:
    """The FaceModel interface over FaceNetwork."""

    name = "vasa"
    pose_dim = POSE_DIM
    edits = ()

    def __init__(self, config: FaceConfig):
        self.config = config
        self.network = FaceNetwork(config)
        self.image_size = self.output_size = config.image_size
        self.motion_dim = config.motion_dim

    def __eq__(self, other):
        return type(other) is type(self) and other.config == self.config

    def __hash__(self):
        return hash((type(self), self.config))

    def manifest(self) -> dict:
        return {"implementation": self.name, "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_manifest(cls, section: dict) -> "WarpingFaceModel":
        return cls(FaceConfig.from_config(section["config"]))

    def framer(self):
        from vasa_jax.pipeline.portrait import Framer

        return Framer(self.image_size)

    def relative_motion(self, source_motion, reference_motion, driving_motion):
        """The source's motion moved by the driving frames' change from the reference frame (pose and dynamics
        are vectors here: the change adds). Shapes [1 or B, M] -> [B, M]."""
        return source_motion + driving_motion - reference_motion

    def init(self, key: jax.Array):
        image = jnp.zeros((1, self.image_size, self.image_size, 3), jnp.float32)
        # Jitted: traced op by op, initialising the 3-D convolutions and warps takes many times longer.
        return jax.jit(self.network.init)(key, image, image)["params"]

    def _check(self, image):
        if image.ndim != 4 or image.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"the face model takes images [B, {self.image_size}, {self.image_size}, 3] in [0, 1]; "
                             f"got {image.shape}")

    def analyze(self, params, image):
        """(V_app, z_id, motion) in one pass: what training needs of every frame."""
        self._check(image)
        return self.network.apply({"params": params}, image, method=FaceNetwork.analyze)

    def encode_source(self, params, image):
        self._check(image)
        return self.network.apply({"params": params}, image, method=FaceNetwork.encode_source)

    def encode_motion(self, params, image):
        self._check(image)
        return self.network.apply({"params": params}, image, method=FaceNetwork.encode_motion)

    def decode(self, params, v_app, z_id, motion):
        if motion.ndim != 2 or motion.shape[1] != self.motion_dim:
            raise ValueError(f"motion must be [B, {self.motion_dim}]; got {motion.shape}")
        return self.network.apply({"params": params}, v_app, z_id, motion, method=FaceNetwork.decode)
