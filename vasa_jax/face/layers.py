"""Building blocks of the face networks, for 2-D images [B, H, W, C] and 3-D volumes [B, D, H, W, C] alike."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from vasa_jax.ops import conv_general_dilated

# Every conv of the face networks: 3-D ones run as 2-D convs on the CPU (vasa_jax.ops.conv), 3-5x faster there.
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


def num_groups(channels: int, groups: int) -> int:
    """The largest group count <= groups that divides channels."""
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return g


def upsample(x: jnp.ndarray, factors: tuple[int, ...]) -> jnp.ndarray:
    """Nearest-neighbour upsampling of the spatial axes (all but batch and channels) by integer factors."""
    for axis, f in enumerate(factors, start=1):
        if f > 1:
            x = jnp.repeat(x, f, axis=axis)
    return x


class ResBlock(nn.Module):
    """Pre-activation residual block (GroupNorm, SiLU, 3^n conv, twice), optionally strided; a 1^n conv shortcut
    where the shape changes. Works on any number of spatial axes."""

    features: int
    groups: int
    stride: int = 1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        nd = x.ndim - 2

        def conv(f, k, s=1, name=None):
            return Conv(f, (k,) * nd, strides=(s,) * nd, dtype=self.dtype, name=name)

        h = nn.silu(nn.GroupNorm(num_groups(x.shape[-1], self.groups), dtype=self.dtype)(x))
        h = conv(self.features, 3, self.stride)(h)
        h = nn.silu(nn.GroupNorm(num_groups(self.features, self.groups), dtype=self.dtype)(h))
        h = conv(self.features, 3)(h)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = conv(self.features, 1, self.stride, name="shortcut")(x)
        return x + h


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm whose scale and shift come from a conditioning vector (MegaPortraits' warp generators)."""

    groups: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, cond):
        c = x.shape[-1]
        x = nn.GroupNorm(num_groups(c, self.groups), use_scale=False, use_bias=False, dtype=self.dtype)(x)
        # Zero-initialised: the block starts as a plain GroupNorm.
        style = nn.Dense(2 * c, kernel_init=nn.initializers.zeros, dtype=self.dtype)(cond)
        scale, shift = jnp.split(style.reshape(style.shape[0], *([1] * (x.ndim - 2)), 2 * c), 2, axis=-1)
        return x * (1 + scale) + shift


class AdaptiveResBlock(nn.Module):
    """ResBlock with adaptive GroupNorm conditioned on a vector."""

    features: int
    groups: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, cond):
        nd = x.ndim - 2
        h = nn.silu(AdaptiveGroupNorm(self.groups, self.dtype)(x, cond))
        h = Conv(self.features, (3,) * nd, dtype=self.dtype)(h)
        h = nn.silu(AdaptiveGroupNorm(self.groups, self.dtype)(h, cond))
        h = Conv(self.features, (3,) * nd, dtype=self.dtype)(h)
        if x.shape[-1] != self.features:
            x = Conv(self.features, (1,) * nd, dtype=self.dtype, name="shortcut")(x)
        return x + h


class Head(nn.Module):
    """GroupNorm, SiLU and a final conv: the end of a generator.

    init_scale < 1 starts the output near zero while still passing gradients back (an exactly zero kernel
    would block them at the first step)."""

    features: int
    groups: int
    kernel: int = 3
    init_scale: float = 1.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        nd = x.ndim - 2
        x = nn.silu(nn.GroupNorm(num_groups(x.shape[-1], self.groups), dtype=self.dtype)(x))
        init = nn.initializers.variance_scaling(self.init_scale, "fan_in", "truncated_normal")
        return Conv(self.features, (self.kernel,) * nd, kernel_init=init, dtype=self.dtype)(x)
