"""LivePortrait's SPADE decoder G: the warped feature map [B, 64, 64, 256] -> the image [B, 512, 512, 3] in
[0, 1]. Every normalisation is modulated by the warped features themselves (SPADE), resized to its size.

The residual blocks' convolutions are spectrally normalised upstream; weights.convert bakes the stored
normalisation into plain kernels at load, so here they are ordinary convolutions.

The parameters are upstream's, module by module; the computation is regrouped where that is faster and exact
up to float rounding. Every SPADE's shared conv reads the same segmap, so those of one resolution run as one
conv; at 128 and 256 the segmap is the 64 x 64 feature map upsampled (nearest), and a 3x3 conv of a nearest
upsampling is computed at the low resolution with per-phase 2x2 kernels (4/9 of the multiplications);
gamma and beta run as one conv, and a block's norms share one instance normalisation.

Precision: a bfloat16 `dtype` applies to the SPADE modulation branch only (the shared, gamma and beta convs,
59% of G's multiply-adds), as bfloat16 operands with float32 accumulation and output. The residual path (fc,
the blocks' convs, the stream, the instance norms, the modulation and the output conv) stays float32: its
rounding adds straight into the stream and compounds block after block. Measured at full size against
upstream (random weights, max abs on the image): everything in bfloat16 3.7e-2; bfloat16 operands with
float32 accumulation and stream 2.0e-2; this split 8.4e-3 (7.4e-3 on a second draw of weights and input).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.face.liveportrait import weights
from vasa_jax.face.liveportrait.config import SpadeConfig
from vasa_jax.face.liveportrait.layers import (
    Conv,
    instance_norm,
    leaky_relu,
    upsample_nearest,
)

NUM_MIDDLE_BLOCKS = 6


def pixel_shuffle(x, factor: int = 2):
    """torch.nn.PixelShuffle, channels-last: [B, H, W, C * f * f] -> [B, H * f, W * f, C], where output
    (h * f + i, w * f + j, c) reads input channel c * f * f + i * f + j."""
    b, h, w, c = x.shape
    c //= factor * factor
    x = x.reshape(b, h, w, c, factor, factor)
    return jnp.transpose(x, (0, 1, 4, 2, 5, 3)).reshape(b, h * factor, w * factor, c)


def conv3x3(x, kernel, bias, padding: int = 1, dtype=None):
    """A 3x3 (or any odd) conv with torch's zero padding; kernel [k, k, Cin, Cout]. Operands in `dtype` (None:
    x's), accumulation and result float32 (a bfloat16 gamma would round the modulation of every pixel)."""
    dtype = dtype or x.dtype
    y = jax.lax.conv_general_dilated(x.astype(dtype), kernel.astype(dtype), (1, 1), [(padding, padding)] * 2,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=jnp.float32)
    return y + bias.astype(jnp.float32)


def _phase_taps(factor: int) -> np.ndarray:
    """[factor, 2, 3]: for output phase p of a nearest upsampling by `factor`, which of the two low-resolution
    samples of its window each tap of a 3x3 conv (padding 1) reads. Phase p's window starts one sample early
    for p = 0 and at its own sample otherwise (see conv3x3_of_upsampled)."""
    taps = np.zeros((factor, 2, 3), np.float32)
    for p in range(factor):
        start = -1 if p == 0 else 0
        for t in range(3):
            taps[p, (p + t - 1) // factor - start, t] = 1
    return taps


def conv3x3_of_upsampled(x, kernel, bias, factor: int, dtype=None):
    """conv3x3(upsample_nearest(x, factor)) with padding 1, computed at x's resolution (factor >= 2).

    Output row factor * i + p reads upsampled rows factor * i + p - 1 .. + 1, which are low-resolution rows
    i - 1 and i (p = 0) or i and i + 1 (p = factor - 1; both i for the phases between), the zero padding
    included. So each (row, column) phase is a 2x2 conv of x with the 3x3 taps summed per low-resolution
    sample: all phases run as one 2x2 conv over x padded by 1, with factor^2 * Cout outputs.
    """
    b, n, m, _ = x.shape
    taps = jnp.asarray(_phase_taps(factor), kernel.dtype)
    phased = jnp.einsum("pay,qbx,yxio->abipqo", taps, taps, kernel)  # [2, 2, Cin, p, q, Cout]
    cout = kernel.shape[-1]
    phased = phased.reshape(2, 2, kernel.shape[2], factor * factor * cout)
    y = conv3x3(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), phased, jnp.tile(bias, factor * factor), padding=0,
                dtype=dtype)
    y = y.reshape(b, n + 1, m + 1, factor, factor, cout)
    first = [0] + [1] * (factor - 1)  # the window of phase 0 starts one sample early
    rows = [jnp.stack([y[:, first[p]:first[p] + n, first[q]:first[q] + m, p, q] for q in range(factor)], axis=3)
            for p in range(factor)]
    return jnp.stack(rows, axis=2).reshape(b, n * factor, m * factor, cout)


def shared_activations(segmap, norms, size, dtype=None):
    """Every SPADE in `norms` applies its shared conv + ReLU to the segmap resized (nearest) to `size`: one conv
    for all of them (at the segmap's own resolution when `size` is an integer multiple of it), operands in
    `dtype`. -> one [B, *size, hidden] float32 per SPADE."""
    kernels, biases = zip(*(norm.shared_weights() for norm in norms))
    kernel, bias = jnp.concatenate(kernels, axis=-1), jnp.concatenate(biases)
    factor = size[0] // segmap.shape[1]
    if tuple(size) == segmap.shape[1:3]:
        actv = conv3x3(segmap, kernel, bias, dtype=dtype)
    elif factor >= 2 and tuple(size) == (segmap.shape[1] * factor, segmap.shape[2] * factor):
        actv = conv3x3_of_upsampled(segmap, kernel, bias, factor, dtype)
    else:
        raise ValueError(f"SPADE segmap {segmap.shape[1:3]} does not divide the feature size {tuple(size)}")
    return jnp.split(nn.relu(actv), len(norms), axis=-1)


class ConvWeights(nn.Module):
    """A 3x3 convolution's parameters only (kernel [3, 3, Cin, Cout], bias), for convolutions grouped with others."""

    in_features: int
    features: int

    @nn.compact
    def __call__(self):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, self.in_features, self.features))
        return kernel, self.param("bias", nn.initializers.zeros, (self.features,))


class SPADE(nn.Module):
    """normalized * (1 + gamma) + beta, gamma and beta convolved from the segmap's shared activations."""

    norm_nc: int
    label_nc: int
    hidden: int
    dtype: Any = None  # operand dtype of the gamma and beta conv (None: the activations')

    def setup(self):
        self.mlp_shared_0 = ConvWeights(self.label_nc, self.hidden)
        self.mlp_gamma = ConvWeights(self.hidden, self.norm_nc)
        self.mlp_beta = ConvWeights(self.hidden, self.norm_nc)

    def shared_weights(self):
        return self.mlp_shared_0()

    def __call__(self, normalized, actv):
        """normalized: the instance-normalised input; actv: relu(shared conv of the resized segmap)."""
        (kg, bg), (kb, bb) = self.mlp_gamma(), self.mlp_beta()
        gamma_beta = conv3x3(actv, jnp.concatenate([kg, kb], axis=-1), jnp.concatenate([bg, bb]), dtype=self.dtype)
        gamma, beta = jnp.split(gamma_beta, 2, axis=-1)
        return normalized * (1 + gamma) + beta


class SPADEResnetBlock(nn.Module):
    """Two SPADE-modulated 3x3 convs with LeakyReLU 0.2, plus the input (through a SPADE and a 1x1 conv
    without bias when the width changes)."""

    fin: int
    fout: int
    label_nc: int
    hidden: int
    dtype: Any = None  # the SPADEs' operand dtype; the convs run in the input's (float32: module docstring)

    def setup(self):
        middle = min(self.fin, self.fout)
        self.conv_0 = Conv(middle, 3, padding=1)
        self.conv_1 = Conv(self.fout, 3, padding=1)
        self.norm_0 = SPADE(self.fin, self.label_nc, self.hidden, dtype=self.dtype)
        self.norm_1 = SPADE(middle, self.label_nc, self.hidden, dtype=self.dtype)
        if self.fin != self.fout:
            self.conv_s = Conv(self.fout, 1, use_bias=False)
            self.norm_s = SPADE(self.fin, self.label_nc, self.hidden, dtype=self.dtype)

    def norms(self) -> list[SPADE]:
        """The block's SPADEs, in the order __call__ takes their shared activations."""
        return [self.norm_0, self.norm_1] + ([self.norm_s] if self.fin != self.fout else [])

    def __call__(self, x, actvs):
        normalized = instance_norm(x)  # norm_0 and norm_s normalise the same x
        shortcut = x
        if self.fin != self.fout:
            shortcut = self.conv_s(self.norm_s(normalized, actvs[2]))
        dx = self.conv_0(leaky_relu(self.norm_0(normalized, actvs[0]), 0.2))
        dx = self.conv_1(leaky_relu(self.norm_1(instance_norm(dx), actvs[1]), 0.2))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    """G: feature [B, H, W, C] -> image [B, 8H, 8W, 3] in [0, 1], float32 (two nearest x2 upsamplings, then
    with upscale > 1 a conv to 12 channels and a pixel shuffle by 2; with upscale <= 1 a conv to 3: 4H x 4W)."""

    config: SpadeConfig = SpadeConfig()
    dtype: Any = None  # operand dtype of the SPADE modulation convs (None: float32); the rest is float32

    @nn.compact
    def __call__(self, feature):
        cfg = self.config
        dtype = self.dtype or jnp.float32
        width = min(cfg.max_features, cfg.block_expansion * 2 ** cfg.num_down_blocks)
        segmap = feature.astype(jnp.float32)  # float32 into fc keeps the whole residual path float32
        _, h, w, label_nc = segmap.shape
        middle = [SPADEResnetBlock(2 * width, 2 * width, label_nc, cfg.hidden, dtype=dtype, name=f"G_middle_{i}")
                  for i in range(NUM_MIDDLE_BLOCKS)]
        up_0 = SPADEResnetBlock(2 * width, width, label_nc, cfg.hidden, dtype=dtype, name="up_0")
        up_1 = SPADEResnetBlock(width, cfg.out_channels, label_nc, cfg.hidden, dtype=dtype, name="up_1")

        x = Conv(2 * width, 3, padding=1, name="fc")(segmap)
        actvs = shared_activations(segmap, [n for block in middle for n in block.norms()], (h, w), dtype)
        for i, block in enumerate(middle):
            x = block(x, actvs[2 * i:2 * i + 2])
        for block, factor in ((up_0, 2), (up_1, 4)):
            x = upsample_nearest(x, (2, 2))
            x = block(x, shared_activations(segmap, block.norms(), (h * factor, w * factor), dtype))
        x = leaky_relu(x, 0.2)
        if cfg.upscale is None or cfg.upscale <= 1:
            x = Conv(3, 3, padding=1, name="conv_img")(x)
        else:
            x = pixel_shuffle(Conv(3 * 4, 3, padding=1, name="conv_img_0")(x))
        return jax.nn.sigmoid(x)


def params_from_torch(state: dict[str, np.ndarray], config: SpadeConfig, path) -> dict:
    """Upstream's spade_generator state dict -> params of SPADEDecoder(config); `path` names the file in errors."""
    width = min(config.max_features, config.block_expansion * 2 ** config.num_down_blocks)
    feature = jax.ShapeDtypeStruct((1, 16, 16, width), jnp.float32)
    template = jax.eval_shape(SPADEDecoder(config).init, jax.random.PRNGKey(0), feature)["params"]
    return weights.convert(state, template, path)
