"""Stage 1: the VASA face latent space (appearance volume, identity, pose, dynamics) and its warping decoder."""

from vasa_jax.face.config import POSE_DIM, FaceConfig

__all__ = ["POSE_DIM", "FaceConfig"]
