"""The motion denoiser H (VASA-1 stage 2): a transformer encoder that predicts the clean motion X0 of a window.

Conditioning (VASA-1 does not say how; this is vasa-jax's choice):
- Per-frame signals are tokens. Token i of the window = Dense(X_t[i]) + (Dense(A[i]) where A[i] is known,
  else a learned empty-audio vector) + a learned position. The previous window's last K frames come first as
  K context tokens, Dense(X_pre[k]) + Dense(A_pre[k]) + their positions (0..K-1; the window's are K..K+W-1),
  so "time" runs across the seam. A window without a previous one has its context tokens masked out of the
  attention (keys), so the first window is the same computation with nothing before it.
- Per-window signals (diffusion step t, gaze g, distance d, emotion e) are summed into one conditioning
  vector, each an MLP of the (normalised) value or, when that condition is empty, its own learned empty
  vector; the vector modulates every block by adaLN-Zero (DiT, Peebles & Xie 2023: per-block shift, scale
  and a zero-initialised gate for attention and MLP), which DiT found better than in-context condition
  tokens at equal cost. So every condition has a learned "empty" state, which is what classifier-free
  guidance needs.
- With config.frame_conditions, the per-window controls (gaze, distance, emotion; not t) are also added to
  every frame token through their own embeddings (with their own learned empty vectors): a direct path from a
  control to the features it sets, which adaLN alone gave only loosely (the gaze was followed with a gain far
  from 1 on the toy world).
The output head predicts normalised X0 for the W window frames (context tokens are not read out), directly or,
with config.x0_skip, as sqrt(ab_t) X_t + sqrt(1 - ab_t) F (see MotionConfig.x0_skip).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa_jax.motion.conditions import Conditions
from vasa_jax.motion.config import DISTANCE_DIM, GAZE_DIM, MotionConfig
from vasa_jax.motion.diffusion import cosine_alphas_cumprod


def timestep_embedding(t, dim: int, max_period: float = 10_000.0):
    """Sinusoidal embedding [B, dim] of integer diffusion steps t [B]."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    return jnp.pad(emb, ((0, 0), (0, dim - 2 * half)))


class ConditionEmbedding(nn.Module):
    """A per-window condition -> [B, width]: an MLP of the value where mask, else a learned empty vector."""

    width: int

    @nn.compact
    def __call__(self, value, mask):
        emb = nn.Dense(self.width)(nn.silu(nn.Dense(self.width)(value)))
        empty = self.param("empty", nn.initializers.normal(0.02), (self.width,))
        return jnp.where(mask[:, None], emb, empty)


def _modulate(x, shift, scale):
    return x * (1.0 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    """Pre-LN transformer block with adaLN-Zero: shift / scale / gate from the conditioning vector."""

    width: int
    heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(self, x, c, attention_mask):
        mod = nn.Dense(6 * self.width, kernel_init=nn.initializers.zeros)(nn.silu(c))
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(mod, 6, axis=-1)
        h = _modulate(nn.LayerNorm(use_scale=False, use_bias=False)(x), shift1, scale1)
        h = nn.MultiHeadDotProductAttention(self.heads)(h, h, mask=attention_mask)
        x = x + gate1[:, None] * h
        h = _modulate(nn.LayerNorm(use_scale=False, use_bias=False)(x), shift2, scale2)
        h = nn.Dense(self.width)(nn.gelu(nn.Dense(self.mlp_ratio * self.width)(h)))
        return x + gate2[:, None] * h


class MotionDenoiser(nn.Module):
    """H(X_t, t, C) -> X0: normalised motion [B, W, M] in and out."""

    config: MotionConfig

    @nn.compact
    def __call__(self, x_t, t, cond: Conditions):
        c = self.config
        b, w, _ = x_t.shape
        k = cond.context_motion.shape[1]
        if w != c.window or k != c.context:
            raise ValueError(f"the denoiser is built for windows of {c.window} frames after {c.context} context "
                             f"frames; got {w} and {k}")
        positions = self.param("positions", nn.initializers.normal(0.02), (k + w, c.width))

        empty_audio = self.param("empty_audio", nn.initializers.normal(0.02), (c.width,))
        audio = jnp.where(cond.audio_mask[..., None], nn.Dense(c.width, name="audio_in")(cond.audio), empty_audio)
        frames = nn.Dense(c.width, name="motion_in")(x_t) + audio + positions[k:]
        if c.frame_conditions:
            frames = frames + self._controls(cond, "frame_")[:, None]
        context = (nn.Dense(c.width, name="context_motion_in")(cond.context_motion)
                   + nn.Dense(c.width, name="context_audio_in")(cond.context_audio) + positions[:k])
        tokens = jnp.concatenate([context, frames], axis=1)
        # Keys a query may attend to: the window frames always, the context tokens only where there is a context.
        keys = jnp.concatenate([jnp.broadcast_to(cond.context_mask[:, None], (b, k)), jnp.ones((b, w), bool)], 1)
        attention_mask = keys[:, None, None, :]

        cvec = nn.Dense(c.width)(nn.silu(nn.Dense(c.width)(timestep_embedding(t, c.width))))
        cvec = cvec + self._controls(cond, "")

        for i in range(c.layers):
            tokens = Block(c.width, c.heads, c.mlp_ratio, name=f"block_{i}")(tokens, cvec, attention_mask)
        shift, scale = jnp.split(nn.Dense(2 * c.width, kernel_init=nn.initializers.zeros)(nn.silu(cvec)), 2, -1)
        out = _modulate(nn.LayerNorm(use_scale=False, use_bias=False)(tokens[:, k:]), shift, scale)
        out = nn.Dense(c.motion_dim, kernel_init=nn.initializers.zeros, name="out")(out)
        if c.x0_skip:
            ab = jnp.asarray(cosine_alphas_cumprod(c.diffusion_steps))[t].reshape(b, 1, 1)
            out = jnp.sqrt(ab) * x_t + jnp.sqrt(1.0 - ab) * out
        return out

    def _controls(self, cond: Conditions, prefix: str):
        """The sum of the per-window control embeddings (gaze, distance, emotion) [B, width]."""
        b, c = cond.batch_size, self.config
        values = {"gaze": cond.gaze.reshape(b, GAZE_DIM), "distance": cond.distance.reshape(b, DISTANCE_DIM),
                  "emotion": cond.emotion.reshape(b, c.emotion_dim)}
        return sum(ConditionEmbedding(c.width, name=prefix + name)(value, getattr(cond, f"{name}_mask"))
                   for name, value in values.items())


def dummy_conditions(config: MotionConfig, batch: int = 1) -> Conditions:
    """All-empty conditions of the right shapes (for init and shape checks)."""
    config.require_sizes()
    w, k, m, a = config.window, config.context, config.motion_dim, config.audio_dim
    no = jnp.zeros((batch,), bool)
    return Conditions(
        audio=jnp.zeros((batch, w, a)), audio_mask=jnp.zeros((batch, w), bool),
        context_motion=jnp.zeros((batch, k, m)), context_audio=jnp.zeros((batch, k, a)), context_mask=no,
        gaze=jnp.zeros((batch, GAZE_DIM)), gaze_mask=no, distance=jnp.zeros((batch, DISTANCE_DIM)), distance_mask=no,
        emotion=jnp.zeros((batch, config.emotion_dim)), emotion_mask=no)


def init_denoiser(config: MotionConfig, key: jax.Array):
    """Fresh denoiser params."""
    x = jnp.zeros((1, config.window, config.motion_dim))
    # Jitted: Flax init traced op by op takes many times longer.
    init = jax.jit(MotionDenoiser(config).init)
    return init(key, x, jnp.zeros((1,), jnp.int32), dummy_conditions(config))["params"]
