"""The layers LivePortrait's networks are built from, with PyTorch's inference semantics, channels-last.

Images are [B, H, W, C] and volumes [B, D, H, W, C]. Parameter names follow the weight mapping of
weights.py: a torch `weight` becomes `kernel` (convolutions, linear) or `scale` (norms), BatchNorm's running
statistics become the params `mean` and `var` (these networks only ever run in eval mode, so the statistics
are inputs like any weight and the whole model is one params tree).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa_jax.ops import conv_general_dilated

BN_EPS = 1e-5  # torch.nn.BatchNorm / InstanceNorm default


class BatchNorm(nn.Module):
    """torch.nn.BatchNorm{2,3}d in eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias."""

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        mean = self.param("mean", nn.initializers.zeros, (c,))
        var = self.param("var", nn.initializers.ones, (c,))
        inv = scale * jax.lax.rsqrt(var + BN_EPS)
        return x * inv.astype(x.dtype) + (bias - mean * inv).astype(x.dtype)


def instance_norm(x, eps: float = BN_EPS):
    """torch.nn.InstanceNorm2d(affine=False): each sample and channel over its spatial axes, biased variance."""
    axes = tuple(range(1, x.ndim - 1))
    x32 = x.astype(jnp.float32)
    mean = x32.mean(axes, keepdims=True)
    var = jnp.square(x32 - mean).mean(axes, keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def avg_pool(x, window: Sequence[int]):
    """torch AvgPool with kernel = stride = window over the spatial axes (sizes divisible by the window)."""
    b, *spatial, c = x.shape
    shape = [b]
    for size, w in zip(spatial, window):
        shape += [size // w, w]
    x = x.reshape(*shape, c)
    return x.mean(axis=tuple(range(2, 2 * len(spatial) + 1, 2)))


def upsample_nearest(x, factors: Sequence[int]):
    """F.interpolate(mode='nearest') by whole factors over the spatial axes."""
    for axis, f in enumerate(factors, start=1):
        if f > 1:
            x = jnp.repeat(x, f, axis=axis)
    return x


def resize_nearest(x, size: Sequence[int]):
    """F.interpolate(x, size=size, mode='nearest') for 2-D images: source index floor(i * in / out)."""
    for axis, out in enumerate(size, start=1):
        n = x.shape[axis]
        if n != out:
            index = jnp.floor(jnp.arange(out) * (n / out)).astype(jnp.int32)
            x = jnp.take(x, jnp.minimum(index, n - 1), axis=axis)
    return x


class Conv(nn.Module):
    """torch.nn.Conv{2,3}d with symmetric zero padding: kernel [k..., Cin / groups, Cout], optional bias.

    3-D convolutions with stride 1 on the CPU run as 2-D convolutions (vasa_jax.ops.conv); elsewhere XLA's own
    convolution (cuDNN on NVIDIA GPUs, which is fast in 3-D). Same parameters either way.
    """

    features: int
    kernel_size: int
    padding: int = 0
    stride: int = 1
    groups: int = 1
    use_bias: bool = True
    dtype: jnp.dtype | None = None  # computation dtype; None = the input's

    @nn.compact
    def __call__(self, x):
        nd = x.ndim - 2
        cin = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (self.kernel_size,) * nd + (cin // self.groups, self.features))
        dtype = self.dtype or x.dtype
        x, kernel = x.astype(dtype), kernel.astype(dtype)
        spec = {2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}[nd]
        y = conv_general_dilated(x, kernel, (self.stride,) * nd, [(self.padding, self.padding)] * nd,
                                 dimension_numbers=spec, feature_group_count=self.groups)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(dtype)
        return y


class Linear(nn.Module):
    """torch.nn.Linear: kernel [in, out], bias."""

    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return x @ kernel.astype(x.dtype) + bias.astype(x.dtype)


def leaky_relu(x, slope: float = 0.01):
    """torch's LeakyReLU (default slope 0.01; SPADE blocks use 0.2)."""
    return jnp.where(x >= 0, x, slope * x)
