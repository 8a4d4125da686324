"""JoyVASA's motion generator as pure functions of (params, inputs): audio features, one denoiser call, one guided
ancestral step. Sampling over windows lives in sampling.py; loading in checkpoint.py.

params (load_joyvasa gives them; names follow upstream's state dict):
    audio_encoder      HuBERT variables ({"params": ...}), vasa_jax.audio's layout
    audio_feature_map  Linear(audio_dim -> d)
    denoising_net      DenoisingNetwork params
    start_motion_feat [1, P, M], start_audio_feat [1, P, d]   the first window's context
    null_audio_feat [1, 1, d]                                 the audio condition dropped, for guidance
    diffusion_sched    {"alphas", "alpha_bars", "sigmas"} [T + 1] each, row t for step t (row 0: no noise)
    template           {"scale", "offset"} [M]: motion = normalised * scale + offset
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from vasa_jax.motion.joyvasa.audio import ResampledHubert, pad_audio, resample_linear
from vasa_jax.motion.joyvasa.config import JoyVasaConfig
from vasa_jax.motion.joyvasa.network import DenoisingNetwork


@dataclasses.dataclass(frozen=True)
class JoyVasa:
    """The model's functions; hashable (jit holds it as static). Batch B on every input's first axis."""

    config: JoyVasaConfig

    def audio_features(self, params, waveform, num_frames: int):
        """Waveform [B, N] (16 kHz) -> audio features [B, num_frames, d]: upstream's extract_audio_feature (its
        pad_audio, HuBERT at 2 * num_frames frames, resampled to num_frames, then audio_feature_map)."""
        return extract_audio_features(self, params, jnp.asarray(waveform, jnp.float32), num_frames=int(num_frames))

    def denoise(self, params, motion_t, audio_feat, prev_motion, prev_audio, step):
        """The denoising network: (noisy motion [B, L, M], audio features [B, L, d], previous motion [B, P, M] and
        audio features [B, P, d] (None: the learned start tokens), step [B] or scalar int) -> [B, P + L, M]."""
        return _denoise(self, params, motion_t, audio_feat, prev_motion, prev_audio, step)

    def step(self, params, motion_t, audio_feat, prev_motion, prev_audio, step, noise, cfg_scale):
        """One ancestral step with audio guidance: motion at `step` [B, L, M] -> motion at step - 1 [B, L, M].

        noise [B, L, M] is the step's z (ignored at step 1, where upstream adds none). Guidance is upstream's
        "incremental" mode with audio as its one condition: r_null + cfg_scale * (r_audio - r_null).
        """
        return _step(self, params, motion_t, audio_feat, prev_motion, prev_audio, step, noise, cfg_scale)


def _context(model: JoyVasa, params, prev_motion, prev_audio, batch: int):
    """The previous window's motion and audio features, or the learned start tokens."""
    c = model.config
    if prev_motion is None:
        prev_motion = jnp.broadcast_to(params["start_motion_feat"], (batch, c.n_prev_motions, c.motion_dim))
    if prev_audio is None:
        prev_audio = jnp.broadcast_to(params["start_audio_feat"], (batch, c.n_prev_motions, c.feature_dim))
    return prev_motion, prev_audio


def _steps(step, batch: int):
    return jnp.broadcast_to(jnp.asarray(step, jnp.int32), (batch,))


@functools.partial(jax.jit, static_argnames=("model", "num_frames"))
def extract_audio_features(model: JoyVasa, params, waveform, *, num_frames: int):
    hidden = ResampledHubert(model.config.audio).apply(params["audio_encoder"], pad_audio(waveform), 2 * num_frames)
    hidden = resample_linear(hidden, num_frames)
    linear = params["audio_feature_map"]
    return hidden @ linear["kernel"] + linear["bias"]


def denoise_raw(model: JoyVasa, params, motion_t, audio_feat, prev_motion, prev_audio, step):
    """The denoiser un-jitted, for use inside other traced functions."""
    b = motion_t.shape[0]
    prev_motion, prev_audio = _context(model, params, prev_motion, prev_audio, b)
    return DenoisingNetwork(model.config).apply({"params": params["denoising_net"]}, motion_t, audio_feat,
                                                prev_motion, prev_audio, _steps(step, b))


_denoise = jax.jit(denoise_raw, static_argnames=("model",))


def guided_x0(model: JoyVasa, params, motion_t, audio_feat, prev_motion, prev_audio, step, cfg_scale):
    """The guided estimate of the clean window [B, L, M]: the null-audio and the audio passes in one batch (as
    upstream stacks them), r_null + cfg_scale * (r_audio - r_null) over the last L frames."""
    b, n = motion_t.shape[:2]
    prev_motion, prev_audio = _context(model, params, prev_motion, prev_audio, b)
    null = jnp.broadcast_to(params["null_audio_feat"], audio_feat.shape)
    twice = lambda x: jnp.concatenate([x, x])  # noqa: E731
    out = denoise_raw(model, params, twice(motion_t), jnp.concatenate([null, audio_feat]), twice(prev_motion),
                      twice(prev_audio), twice(_steps(step, b)))[:, -n:]
    r_null, r_audio = out[:b], out[b:]
    return r_null + cfg_scale * (r_audio - r_null)


def ancestral_update(params, motion_t, x0, step, noise):
    """Upstream's step for the target "sample" with flexibility 0: the posterior mean of x_{t-1} given x_t and the
    x0 estimate, plus sigma_t z (no noise at t = 1)."""
    sched = params["diffusion_sched"]
    t = jnp.broadcast_to(jnp.asarray(step, jnp.int32), motion_t.shape[:1])
    per_example = lambda v: v[:, None, None]  # noqa: E731
    alpha, ab, ab_prev = (per_example(sched[k][i]) for k, i in
                          (("alphas", t), ("alpha_bars", t), ("alpha_bars", t - 1)))
    c0 = (1 - ab_prev) * jnp.sqrt(alpha) / (1 - ab)
    c1 = (1 - alpha) * jnp.sqrt(ab_prev) / (1 - ab)
    z = jnp.where(per_example(t) > 1, noise, 0.0)
    return c0 * motion_t + c1 * x0 + per_example(sched["sigmas"][t]) * z


@functools.partial(jax.jit, static_argnames=("model",))
def _step(model: JoyVasa, params, motion_t, audio_feat, prev_motion, prev_audio, step, noise, cfg_scale):
    x0 = guided_x0(model, params, motion_t, audio_feat, prev_motion, prev_audio, step, cfg_scale)
    return ancestral_update(params, motion_t, x0, step, noise)
