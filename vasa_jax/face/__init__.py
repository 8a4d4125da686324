"""Stage 1: the VASA face latent space (appearance volume, identity, pose, dynamics) and its warping decoder."""

from vasa_jax.face.config import POSE_DIM, FaceConfig
from vasa_jax.face.model import FaceModel, FaceNetwork, WarpingFaceModel

__all__ = ["POSE_DIM", "FaceConfig", "FaceModel", "FaceNetwork", "WarpingFaceModel"]
