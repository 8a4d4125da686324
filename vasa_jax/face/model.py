"""The face model and the one interface stage 2 and sampling use.

    face = WarpingFaceModel(FaceConfig(...))
    params = face.init(key)
    v_app, z_id = face.encode_source(params, portrait)   # once per portrait
    motion = face.encode_motion(params, frames)          # [B, face.motion_dim]: z_pose then z_dyn
    frames = face.decode(params, v_app, z_id, motion)    # any pose and dynamics of that face

Images are float [B, S, S, 3] in [0, 1] at face.image_size. Stage 2 sees only motion vectors, so any model
with these three pure functions (FaceModel) can stand behind it.
"""

from __future__ import annotations

from typing import Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa_jax.face.config import POSE_DIM, FaceConfig
from vasa_jax.face.networks import AppearanceEncoder, Decoder, IdentityEncoder, MotionEncoder, WarpGenerator
from vasa_jax.face.warping import from_canonical, to_canonical


class FaceModel(Protocol):
    """What stage 2 and sampling need from a face model: three pure functions of (params, inputs)."""

    image_size: int
    motion_dim: int  # z_pose (POSE_DIM) then z_dyn

    def encode_source(self, params, image: jax.Array) -> tuple[jax.Array, jax.Array]: ...

    def encode_motion(self, params, image: jax.Array) -> jax.Array: ...

    def decode(self, params, v_app: jax.Array, z_id: jax.Array, motion: jax.Array) -> jax.Array: ...


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

    def analyze(self, image):
        """Everything the encoders read from an image: V_app, z_id and its motion."""
        motion = self.motion(image)
        z_id = self.identity(image)
        pose, dyn = motion[:, :POSE_DIM], motion[:, POSE_DIM:]
        v_app = to_canonical(self.appearance(image), pose, self.warp_to_canonical(dyn, z_id))
        return v_app, z_id, motion

    def encode_source(self, image):
        v_app, z_id, _ = self.analyze(image)
        return v_app, z_id

    def encode_motion(self, image):
        return self.motion(image)

    def decode(self, v_app, z_id, motion):
        pose, dyn = motion[:, :POSE_DIM], motion[:, POSE_DIM:]
        return self.decoder(from_canonical(v_app, pose, self.warp_from_canonical(dyn, z_id)))

    def __call__(self, source, driver):
        """Self-reenactment: the source's face with the driver's motion (also what init traces)."""
        v_app, z_id = self.encode_source(source)
        return self.decode(v_app, z_id, self.encode_motion(driver))


class WarpingFaceModel:
    """The FaceModel interface over FaceNetwork."""

    def __init__(self, config: FaceConfig):
        self.config = config
        self.network = FaceNetwork(config)
        self.image_size = config.image_size
        self.motion_dim = config.motion_dim

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
