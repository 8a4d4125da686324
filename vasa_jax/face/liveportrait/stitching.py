"""LivePortrait's stitching and retargeting MLPs S, and the keypoint edits they make (upstream's
LivePortraitWrapper.stitching / retarget_eye / retarget_lip).

Stitching nudges the driving keypoints (expression and an image-plane shift) so that the animated crop pastes
back into the source photo without a seam; the eye and lip MLPs give keypoint deltas that open or close the
eyes and lips to a target ratio. The params are one tree {"stitching": ..., "lip": ..., "eye": ...}, read
from upstream's stitching_retargeting_module.pth (three state dicts, keys prefixed `module.`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.face.liveportrait import weights
from vasa_jax.face.liveportrait.config import MLPConfig, StitchingConfig
from vasa_jax.face.liveportrait.layers import Linear

# Our names of the three MLPs -> the names upstream's file stores them under.
FILE_SECTIONS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}


class RetargetingMLP(nn.Module):
    """Linear + ReLU per hidden size, then a Linear out; the Linears are upstream's Sequential indices 0, 2, 4..."""

    config: MLPConfig

    @nn.compact
    def __call__(self, x):
        for i, size in enumerate(self.config.hidden_sizes):
            x = nn.relu(Linear(size, name=f"mlp_{2 * i}")(x))
        return Linear(self.config.output_size, name=f"mlp_{2 * len(self.config.hidden_sizes)}")(x)


def stitch(params: dict, kp_source, kp_driving):
    """kp_source, kp_driving [B, K, 3] -> the stitched driving keypoints [B, K, 3]: the MLP's first 3K outputs
    added to every coordinate, its last two (tx, ty) to x and y of every keypoint."""
    b, k, _ = kp_source.shape
    delta = _apply(params["stitching"], _features(kp_source, kp_driving))
    moved = kp_driving + delta[:, :3 * k].reshape(b, k, 3)
    return moved.at[..., :2].add(delta[:, None, 3 * k:3 * k + 2])


def retarget_eye(params: dict, kp_source, eye_ratio):
    """kp_source [B, K, 3], eye_ratio [B, 3] (source left and right eye ratios, target ratio) -> delta [B, K, 3]."""
    return _apply(params["eye"], _features(kp_source, eye_ratio)).reshape(kp_source.shape)


def retarget_lip(params: dict, kp_source, lip_ratio):
    """kp_source [B, K, 3], lip_ratio [B, 2] (source lip ratio, target ratio) -> delta [B, K, 3]."""
    return _apply(params["lip"], _features(kp_source, lip_ratio)).reshape(kp_source.shape)


def _features(kp_source, other):
    """Upstream's concat_feat: both inputs flattened per sample and concatenated."""
    b = kp_source.shape[0]
    return jnp.concatenate([kp_source.reshape(b, -1), other.reshape(b, -1)], axis=1)


def _apply(mlp_params: dict, x):
    """Runs a RetargetingMLP whose sizes are read off its params, so callers need no config."""
    sizes = [mlp_params[f"mlp_{2 * i}"]["kernel"].shape[1] for i in range(len(mlp_params))]
    config = MLPConfig(x.shape[-1], tuple(sizes[:-1]), sizes[-1])
    return RetargetingMLP(config).apply({"params": mlp_params}, x)


def _flax_path(module_path: str) -> tuple[str, ...]:
    """`retarget_shoulder.module.mlp.0` -> ('stitching', 'mlp_0'); upstream's loader drops `module.` too."""
    section, _, rest = module_path.partition(".")
    ours = {v: k for k, v in FILE_SECTIONS.items()}.get(section, section)
    return (ours,) + weights.flax_path(rest.removeprefix("module."))


def params_from_torch(state: dict[str, np.ndarray], config: StitchingConfig, path) -> dict:
    """Upstream's stitching_retargeting_module file, flattened to keys `retarget_shoulder.module.mlp.0.weight`
    (vasa_jax.io.weights.read_state_dict does that) -> {"stitching": ..., "lip": ..., "eye": ...}."""
    template = {name: jax.eval_shape(RetargetingMLP(cfg).init, jax.random.key(0),
                                     jnp.zeros((1, cfg.input_size)))["params"]
                for name, cfg in (("stitching", config.stitching), ("lip", config.lip), ("eye", config.eye))}
    return weights.convert(state, template, path, rename=_flax_path)
