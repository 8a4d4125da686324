"""LivePortrait's appearance feature extractor F: a source image -> the 3-D appearance feature volume f_s.

Weight-compatible with upstream's appearance_feature_extractor.pth (module names chosen so weights.convert maps
its keys unchanged). The image goes in as it is, RGB in [0, 1]: upstream applies no normalisation.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.face.liveportrait import weights
from vasa_jax.face.liveportrait.config import AppearanceConfig
from vasa_jax.face.liveportrait.layers import BatchNorm, Conv, avg_pool


class ConvBlock2d(nn.Module):
    """conv3x3, BatchNorm, ReLU, then optionally a 2x2 average pool (upstream's SameBlock2d / DownBlock2d)."""

    features: int
    pool: bool

    @nn.compact
    def __call__(self, x):
        x = nn.relu(BatchNorm(name="norm")(Conv(self.features, 3, padding=1, name="conv")(x)))
        return avg_pool(x, (2, 2)) if self.pool else x


class ResBlock3d(nn.Module):
    """Pre-activation residual block on a volume: BN, ReLU, conv3^3, BN, ReLU, conv3^3, plus the input."""

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        h = Conv(c, 3, padding=1, name="conv1")(nn.relu(BatchNorm(name="norm1")(x)))
        return x + Conv(c, 3, padding=1, name="conv2")(nn.relu(BatchNorm(name="norm2")(h)))


class ResBlocks3d(nn.Module):
    """Upstream's `resblocks_3d` Sequential, whose children it names '3dr0', '3dr1', ..."""

    count: int

    @nn.compact
    def __call__(self, x):
        for i in range(self.count):
            x = ResBlock3d(name=f"3dr{i}")(x)
        return x


class AppearanceFeatureExtractor(nn.Module):
    """image [B, H, W, 3] in [0, 1] (256x256 for the released weights) -> f_s [B, D, H/4, W/4, C] float32
    (D = reshape_depth 16, C = reshape_channel 32 at full size)."""

    config: AppearanceConfig
    dtype: jnp.dtype | None = None  # computation dtype; params stay float32

    @nn.compact
    def __call__(self, image):
        cfg = self.config
        x = ConvBlock2d(cfg.block_expansion, pool=False, name="first")(image.astype(self.dtype or jnp.float32))
        for i in range(cfg.num_down_blocks):
            x = ConvBlock2d(min(cfg.max_features, cfg.block_expansion * 2 ** (i + 1)), pool=True,
                            name=f"down_blocks_{i}")(x)
        x = Conv(cfg.max_features, 1, name="second")(x)
        b, h, w, _ = x.shape
        # Upstream views its [B, C*D, H, W] tensor as [B, C, D, H, W]: channel index c * D + d.
        volume = x.reshape(b, h, w, cfg.reshape_channel, cfg.reshape_depth).transpose(0, 4, 1, 2, 3)
        return ResBlocks3d(cfg.num_resblocks, name="resblocks_3d")(volume).astype(jnp.float32)


def params_from_torch(state: dict[str, np.ndarray], config: AppearanceConfig, path) -> dict:
    """Upstream's appearance_feature_extractor state dict -> params of AppearanceFeatureExtractor(config)."""
    module = AppearanceFeatureExtractor(config)
    template = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 64, 64, config.image_channel)))
    return weights.convert(state, template["params"], path)
