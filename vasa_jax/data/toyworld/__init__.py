"""The toy talking-face world: procedural 3D heads that speak synthetic syllables, with exact ground truth.

It is the project's data where no real talking-face video or pretrained face weights can be had: tests,
smoke training, learning checks and the bundled demo. See make_clip for the entry point, render for the
conventions of pose and image coordinates, and clip.TRUTH_DOC for the ground truth.
"""

from vasa_jax.data.toyworld.clip import FPS, POSE_KEYS, SAMPLE_RATE, TRUTH_DOC, Clip, make_clip, perform, pose_vectors
from vasa_jax.data.toyworld.identity import HELDOUT_IDENTITIES, TRAIN_IDENTITIES, Identity, is_heldout, sample_identity
from vasa_jax.data.toyworld.performance import GAZE_LIMITS, POSE_LIMITS
from vasa_jax.data.toyworld.render import LANDMARKS, PARTS, STATE_KEYS, landmarks, neutral_state, project, render
from vasa_jax.data.toyworld.speech import PHONES, VISEMES

__all__ = [
    "FPS", "GAZE_LIMITS", "POSE_KEYS", "HELDOUT_IDENTITIES", "LANDMARKS", "PARTS", "PHONES", "POSE_LIMITS", "SAMPLE_RATE",
    "STATE_KEYS", "TRAIN_IDENTITIES", "TRUTH_DOC", "VISEMES", "Clip", "Identity", "is_heldout", "landmarks",
    "make_clip", "neutral_state", "perform", "pose_vectors", "project", "render", "sample_identity",
]
