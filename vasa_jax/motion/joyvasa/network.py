"""JoyVASA's denoising network in Flax Linen: motion tokens through a post-LN transformer decoder that reads the
audio features as memory, each token only its own frame's.

Parameter names follow upstream's module tree ("transformer/layers_3/self_attn/in_proj_kernel" for
"denoising_net.transformer.layers.3.self_attn.in_proj_weight"), which keeps the weight conversion mechanical.
Dropout is left out: upstream runs the network in eval mode.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.motion.joyvasa.config import JoyVasaConfig

gelu = functools.partial(jax.nn.gelu, approximate=False)  # torch's nn.GELU / F.gelu default (erf form)
LayerNorm = functools.partial(nn.LayerNorm, epsilon=1e-5, use_fast_variance=False)  # torch's eps, two-pass variance


def sinusoid_table(rows: int, dim: int) -> np.ndarray:
    """The vanilla sinusoidal table [rows, dim] (sin on even, cos on odd columns), computed in float32 as upstream
    computes its buffer, so the rows match it to the last bit or two."""
    position = np.arange(rows, dtype=np.float32)[:, None]
    frequency = np.exp(np.arange(0, dim, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / dim))
    angle = position * frequency
    table = np.zeros((rows, dim), np.float32)
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle)
    return table


class Attention(nn.Module):
    """torch's nn.MultiheadAttention (batch_first) with its packed in-projection: kernel [d, 3d] = [q | k | v]."""

    features: int
    heads: int

    @nn.compact
    def __call__(self, x, memory, allowed=None):  # x [B, Q, d], memory [B, K, d], allowed [Q, K] bool or None
        d, h = self.features, self.heads
        kernel = self.param("in_proj_kernel", nn.initializers.xavier_uniform(), (d, 3 * d))
        bias = self.param("in_proj_bias", nn.initializers.zeros, (3 * d,))
        q = (x @ kernel[:, :d] + bias[:d]).reshape(*x.shape[:2], h, d // h)
        k = (memory @ kernel[:, d:2 * d] + bias[d:2 * d]).reshape(*memory.shape[:2], h, d // h)
        v = (memory @ kernel[:, 2 * d:] + bias[2 * d:]).reshape(*memory.shape[:2], h, d // h)
        logits = jnp.einsum("bqhc,bkhc->bhqk", q * (d // h) ** -0.5, k)
        if allowed is not None:
            logits = jnp.where(allowed, logits, -jnp.inf)
        out = jnp.einsum("bhqk,bkhc->bqhc", jax.nn.softmax(logits, axis=-1), v).reshape(x.shape)
        return nn.Dense(d, name="out_proj")(out)


class DecoderLayer(nn.Module):
    """torch's nn.TransformerDecoderLayer with norm_first=False: self-attention, cross-attention, GELU MLP, each
    added to its input and then normalised."""

    config: JoyVasaConfig

    @nn.compact
    def __call__(self, x, memory, allowed):
        c = self.config
        d = c.feature_dim
        x = LayerNorm(name="norm1")(x + Attention(d, c.n_heads, name="self_attn")(x, x))
        x = LayerNorm(name="norm2")(x + Attention(d, c.n_heads, name="multihead_attn")(x, memory, allowed))
        y = nn.Dense(d, name="linear2")(gelu(nn.Dense(c.mlp_ratio * d, name="linear1")(x)))
        return LayerNorm(name="norm3")(x + y)


class TransformerDecoder(nn.Module):
    config: JoyVasaConfig

    @nn.compact
    def __call__(self, x, memory, allowed):
        for i in range(self.config.n_layers):
            x = DecoderLayer(self.config, name=f"layers_{i}")(x, memory, allowed)
        return x


class DenoisingNetwork(nn.Module):
    """(noisy motion [B, L, M], audio features [B, L, d], previous motion [B, P, M], previous audio features
    [B, P, d], diffusion step [B] int in 1..T) -> the network's estimate of the clean motion for all P + L
    frames [B, P + L, M] (upstream's target "sample"; sampling keeps the last L)."""

    config: JoyVasaConfig

    @nn.compact
    def __call__(self, motion, audio, prev_motion, prev_audio, step):
        c = self.config
        d = c.feature_dim
        step_embedding = jnp.asarray(sinusoid_table(c.n_diff_steps + 1, d))[step]
        step_embedding = nn.Dense(d, name="diff_step_map_2")(gelu(nn.Dense(d, name="diff_step_map_0")(step_embedding)))
        x = nn.Dense(d, name="feature_proj")(jnp.concatenate([prev_motion, motion], axis=1))
        n = x.shape[1]
        positions = sinusoid_table(c.max_positions, d)
        x = x + jnp.asarray(positions[n] if c.positional_encoding == "single_row" else positions[:n])
        x = x + step_embedding[:, None]
        memory = jnp.concatenate([prev_audio, audio], axis=1)
        # Upstream's alignment mask (enc_dec_mask with frame width 1): token i reads memory frame i alone.
        allowed = np.eye(n, memory.shape[1], dtype=bool)
        x = TransformerDecoder(c, name="transformer")(x, memory, allowed)
        x = gelu(nn.Dense(d // 2, name="motion_dec_0")(x))
        return nn.Dense(c.motion_dim, name="motion_dec_2")(x)
