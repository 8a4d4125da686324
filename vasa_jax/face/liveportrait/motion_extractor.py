"""LivePortrait's motion extractor M: a ConvNeXtV2 backbone and linear heads for the canonical keypoints, the
head pose bins, the translation, the expression deformation and the scale of a face image.

Returns the raw head outputs; camera.motion_info turns them into degrees and keypoint arrays. Weight-compatible
with upstream's motion_extractor.pth, whose keys all carry the `detector.` prefix of upstream's wrapper.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.face.liveportrait import weights
from vasa_jax.face.liveportrait.config import MotionExtractorConfig
from vasa_jax.face.liveportrait.layers import Conv, Linear

LN_EPS = 1e-6  # every LayerNorm of upstream's ConvNeXtV2
GRN_EPS = 1e-6
HEADS = ("kp", "pitch", "yaw", "roll", "t", "exp", "scale")


def _layer_norm(x, name: str):
    """LayerNorm over channels in x's dtype (statistics in float32), with the exact two-pass variance as torch
    computes it rather than Flax's default E[x^2] - E[x]^2."""
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False, dtype=x.dtype, name=name)(x)


class GRN(nn.Module):
    """Global response normalisation: each channel's L2 norm over the spatial axes, divided by the mean of those
    norms over channels, rescales x; gamma and beta keep upstream's shape [1, 1, 1, C]."""

    @nn.compact
    def __call__(self, x):
        shape = (1, 1, 1, x.shape[-1])
        gamma = self.param("gamma", nn.initializers.zeros, shape)
        beta = self.param("beta", nn.initializers.zeros, shape)
        # The sum of squares runs over every pixel: float32 keeps it accurate under bf16 compute.
        norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)), axis=(1, 2), keepdims=True))
        response = (norm / (norm.mean(axis=-1, keepdims=True) + GRN_EPS)).astype(x.dtype)
        return gamma.astype(x.dtype) * (x * response) + beta.astype(x.dtype) + x


class ConvNeXtBlock(nn.Module):
    """Depthwise conv7x7, LayerNorm, Linear x4, exact GELU, GRN, Linear back, plus the input."""

    @nn.compact
    def __call__(self, x):
        dim = x.shape[-1]
        h = Conv(dim, 7, padding=3, groups=dim, name="dwconv")(x)
        h = jax.nn.gelu(Linear(4 * dim, name="pwconv1")(_layer_norm(h, "norm")), approximate=False)
        return x + Linear(dim, name="pwconv2")(GRN(name="grn")(h))


class ConvNeXtV2(nn.Module):
    """Upstream's `detector`: image [B, H, W, 3] -> dict of raw head outputs (see MotionExtractor)."""

    config: MotionExtractorConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        for i, (depth, dim) in enumerate(zip(cfg.depths, cfg.dims)):
            # Upstream's downsample_layers[i] is a Sequential: the stem is (conv4x4/4, LN), the others (LN, conv2x2/2).
            if i == 0:
                x = _layer_norm(Conv(dim, 4, stride=4, name="downsample_layers_0_0")(x), "downsample_layers_0_1")
            else:
                x = Conv(dim, 2, stride=2, name=f"downsample_layers_{i}_1")(_layer_norm(x, f"downsample_layers_{i}_0"))
            for j in range(depth):
                x = ConvNeXtBlock(name=f"stages_{i}_{j}")(x)
        features = _layer_norm(x.mean(axis=(1, 2)), "norm")
        sizes = {"kp": 3 * cfg.num_kp, "pitch": cfg.num_bins, "yaw": cfg.num_bins, "roll": cfg.num_bins,
                 "t": 3, "exp": 3 * cfg.num_kp, "scale": 1}
        return {head: Linear(sizes[head], name=f"fc_{head}")(features) for head in HEADS}


class MotionExtractor(nn.Module):
    """image [B, H, W, 3] in [0, 1] (256x256 for the released weights) -> float32 raw outputs: kp [B, 3K],
    pitch / yaw / roll [B, num_bins] (logits of 3-degree bins), t [B, 3], exp [B, 3K], scale [B, 1]."""

    config: MotionExtractorConfig
    dtype: jnp.dtype | None = None  # computation dtype; params stay float32

    @nn.compact
    def __call__(self, image):
        raw = ConvNeXtV2(self.config, name="detector")(image.astype(self.dtype or jnp.float32))
        return {k: v.astype(jnp.float32) for k, v in raw.items()}


def params_from_torch(state: dict[str, np.ndarray], config: MotionExtractorConfig, path) -> dict:
    """Upstream's motion_extractor state dict -> params of MotionExtractor(config)."""
    template = jax.eval_shape(MotionExtractor(config).init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    return weights.convert(state, template["params"], path)
