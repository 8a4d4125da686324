"""What the motion denoiser is conditioned on, how conditions are dropped, and the normalisation statistics.

C = [X_pre, A_pre; A, g, d, e] (VASA-1): the previous window's last K motions and audio features, this window's
audio features, gaze g = (theta, phi), head distance d and emotion offset e. Every condition carries a mask
(True = present). A dropped condition, a label the data does not have, an audio frame past the end of the
audio: all the same thing, a False mask, which the denoiser replaces by a learned "empty" embedding; the value
under a False mask is zeroed here and never read, so no zero (or NaN) stands for a real value.
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.errors import ConfigError, dataclass_from_section

# Quantities normalised with dataset statistics (mean and std per feature, stored in the checkpoint). The
# statistics also hold "velocity" (velocity_stats), which weighs the velocity loss.
STAT_NAMES = ("motion", "audio", "gaze", "distance", "emotion")
_MIN_STD = 1e-4  # features that barely vary are divided by this, not by ~0


@flax.struct.dataclass
class Conditions:
    """Normalised conditions for a batch of windows (B windows of W frames, K context frames)."""

    audio: jax.Array  # [B, W, Da] A
    audio_mask: jax.Array  # [B, W] bool: the frame's audio is known (False: dropped, truncated, past the end)
    context_motion: jax.Array  # [B, K, M] X_pre
    context_audio: jax.Array  # [B, K, Da] A_pre
    context_mask: jax.Array  # [B] bool: the window has a previous window (dropped together)
    gaze: jax.Array  # [B, 2] g
    gaze_mask: jax.Array  # [B] bool
    distance: jax.Array  # [B, 1] d
    distance_mask: jax.Array  # [B] bool
    emotion: jax.Array  # [B, E] e
    emotion_mask: jax.Array  # [B] bool

    def drop(self, name: str) -> "Conditions":
        """The same conditions with `name` ("audio", "gaze", "distance", "emotion" or "context") empty."""
        if name == "audio":
            return self.replace(audio_mask=jnp.zeros_like(self.audio_mask))
        if name in ("gaze", "distance", "emotion", "context"):
            mask = getattr(self, f"{name}_mask")
            return self.replace(**{f"{name}_mask": jnp.zeros_like(mask)})
        raise ValueError(f"unknown condition {name!r}")

    @property
    def batch_size(self) -> int:
        return self.audio.shape[0]


def _masked(x, mask):
    """x where mask (broadcast over x's trailing axes), else 0: what a False mask hides is never read."""
    mask = jnp.asarray(mask, bool)
    return jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)), x, 0.0)


def make_conditions(stats, *, audio, audio_mask, context_motion, context_audio, context_mask, gaze, gaze_mask,
                    distance, distance_mask, emotion, emotion_mask) -> Conditions:
    """Conditions from raw values (degrees, 1 / scale, the encoder's features): normalised with `stats`, the
    values under False masks zeroed. distance may be [B] or [B, 1]; emotion [B] or [B, E]."""
    distance = jnp.asarray(distance, jnp.float32)
    emotion = jnp.asarray(emotion, jnp.float32)
    distance = distance[..., None] if distance.ndim == 1 else distance
    emotion = emotion[..., None] if emotion.ndim == 1 else emotion
    context_mask = jnp.asarray(context_mask, bool)
    return Conditions(
        audio=_masked(normalize(stats, "audio", audio), audio_mask),
        audio_mask=jnp.asarray(audio_mask, bool),
        context_motion=_masked(normalize(stats, "motion", context_motion), context_mask),
        context_audio=_masked(normalize(stats, "audio", context_audio), context_mask),
        context_mask=context_mask,
        gaze=_masked(normalize(stats, "gaze", gaze), gaze_mask),
        gaze_mask=jnp.asarray(gaze_mask, bool),
        distance=_masked(normalize(stats, "distance", distance), distance_mask),
        distance_mask=jnp.asarray(distance_mask, bool),
        emotion=_masked(normalize(stats, "emotion", emotion), emotion_mask),
        emotion_mask=jnp.asarray(emotion_mask, bool),
    )


@dataclasses.dataclass(frozen=True)
class DropoutRates:
    """Condition dropout for classifier-free guidance (VASA-1: 0.1 per condition, 0.5 for the context)."""

    audio: float = 0.1
    gaze: float = 0.1
    distance: float = 0.1
    emotion: float = 0.1
    context: float = 0.5  # X_pre and A_pre together: the first window of a clip has neither
    truncate: float = 0.1  # chance that a window's last audio frames are dropped (short audio, the padded last window)
    truncate_max: int = 0  # most frames truncated, uniform in [1, truncate_max]; 0 = window - 1

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "truncate_max" and not 0.0 <= value <= 1.0:
                raise ConfigError(f"motion_train.dropout.{f.name} is a probability; got {value}")
        if self.truncate_max < 0:
            raise ConfigError(f"motion_train.dropout.truncate_max must be >= 0; got {self.truncate_max}")

    @classmethod
    def from_config(cls, section) -> "DropoutRates":
        return dataclass_from_section(cls, section, "motion_train.dropout")


def drop_conditions(cond: Conditions, key: jax.Array, rates: DropoutRates) -> Conditions:
    """Training-time dropout: each condition's mask AND a Bernoulli(1 - rate) draw per window; with probability
    rates.truncate the last L ~ U{1..truncate_max} audio frames of a window are also hidden. Masks that are
    already False (labels the data lacks) stay False."""
    b, w = cond.audio_mask.shape
    k_audio, k_gaze, k_dist, k_emo, k_ctx, k_trunc, k_len = jax.random.split(key, 7)

    def keep(k, rate):
        return jax.random.bernoulli(k, 1.0 - rate, (b,))

    longest = min(rates.truncate_max or w - 1, w - 1)
    truncated = jax.random.bernoulli(k_trunc, rates.truncate, (b,)) & (longest > 0)
    length = jax.random.randint(k_len, (b,), 1, max(longest, 1) + 1)
    cut = truncated[:, None] & (jnp.arange(w)[None] >= w - length[:, None])
    return cond.replace(
        audio_mask=cond.audio_mask & keep(k_audio, rates.audio)[:, None] & ~cut,
        gaze_mask=cond.gaze_mask & keep(k_gaze, rates.gaze),
        distance_mask=cond.distance_mask & keep(k_dist, rates.distance),
        emotion_mask=cond.emotion_mask & keep(k_emo, rates.emotion),
        context_mask=cond.context_mask & keep(k_ctx, rates.context),
    )


def compute_stats(values: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Per-feature mean and std (floored at 1e-4) of each STAT_NAMES entry: {name: [N, D] array} -> {name:
    {"mean": [D], "std": [D]}} float32. Rows with NaN (missing labels) are left out."""
    missing = set(STAT_NAMES) - set(values)
    if missing:
        raise ValueError(f"statistics need {sorted(missing)} too")
    stats = {}
    for name in STAT_NAMES:
        x = np.asarray(values[name], np.float64)
        x = x.reshape(x.shape[0], -1)
        x = x[np.all(np.isfinite(x), axis=1)]
        if x.shape[0] == 0:  # a label no clip has: identity normalisation
            mean, std = np.zeros(x.shape[1]), np.ones(x.shape[1])
        else:
            mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), _MIN_STD)
        stats[name] = {"mean": mean.astype(np.float32), "std": std.astype(np.float32)}
    return stats


def velocity_stats(motion: np.ndarray, clip_start: np.ndarray, motion_stats: dict, floor: float = 0.01) -> dict:
    """Typical frame-to-frame change of each normalised motion feature: {"mean": 0, "std": [M]}, the std of the
    differences within clips (motion [N, M], clips at clip_start offsets), floored at `floor` (1 % of the
    feature's own spread per frame) so that a feature that never moves does not get an unbounded weight."""
    motion = (np.asarray(motion, np.float64) - motion_stats["mean"]) / motion_stats["std"]
    diffs = [np.diff(motion[a:b], axis=0) for a, b in zip(clip_start[:-1], clip_start[1:]) if b - a > 1]
    dim = motion.shape[1]
    if not diffs:
        return {"mean": np.zeros(dim, np.float32), "std": np.ones(dim, np.float32)}
    std = np.maximum(np.concatenate(diffs).std(axis=0), floor)
    return {"mean": np.zeros(dim, np.float32), "std": std.astype(np.float32)}


def normalize(stats, name: str, x):
    return (jnp.asarray(x, jnp.float32) - stats[name]["mean"]) / stats[name]["std"]


def denormalize(stats, name: str, x):
    return jnp.asarray(x, jnp.float32) * stats[name]["std"] + stats[name]["mean"]
