"""Metrics of per-frame signals (pose angles, mouth opening, audio loudness), shared by every evaluation.

Everything here is numpy on short 1-D or [T, C] series at the video frame rate (25 fps): no models, no files.
"""

from __future__ import annotations

import numpy as np

from vasa_jax.audio.features import SAMPLES_PER_FRAME, num_frames
from vasa_jax.pose import POSE_KEYS

ANGLES = POSE_KEYS[:3]  # yaw, pitch, roll (degrees)


def correlation(a, b) -> float:
    """Pearson correlation of two equally long series (0 where one is constant)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def delta_p(pose) -> float:
    """VASA-1's Delta-P: the mean absolute frame-to-frame change of yaw, pitch and roll (degrees per frame).

    pose: [..., T, C] with the three angles first (a motion vector's z_pose, or [T, 3] angles)."""
    return float(np.abs(np.diff(np.asarray(pose)[..., :3], axis=-2)).mean())


def pose_statistics(angles) -> dict:
    """Delta-P and per-angle mean, standard deviation and range (degrees) of angles [T, 3] (yaw, pitch, roll)."""
    angles = np.asarray(angles, np.float64)[:, :3]
    stats = {"delta_p": delta_p(angles)}
    for i, name in enumerate(ANGLES):
        stats[f"{name}_mean"] = float(angles[:, i].mean())
        stats[f"{name}_std"] = float(angles[:, i].std())
        stats[f"{name}_range"] = float(np.ptp(angles[:, i]))
        stats[f"{name}_delta"] = float(np.abs(np.diff(angles[:, i])).mean()) if len(angles) > 1 else 0.0
    return stats


def audio_envelope(audio, frames: int | None = None) -> np.ndarray:
    """RMS loudness per video frame: float32 [T] from mono 16 kHz audio [N]; frame i covers samples
    [640 i, 640 (i + 1)) (vasa_jax.audio's frame rule). `frames` pads with silence or trims to that length."""
    audio = np.asarray(audio, np.float32).ravel()
    frames = num_frames(audio.size) if frames is None else frames
    padded = np.zeros(frames * SAMPLES_PER_FRAME, np.float32)
    n = min(audio.size, padded.size)
    padded[:n] = audio[:n]
    return np.sqrt((padded.reshape(frames, SAMPLES_PER_FRAME) ** 2).mean(1))


def lagged_correlations(video_signal, audio_signal, max_lag: int) -> np.ndarray:
    """Correlation of video_signal[t + k] with audio_signal[t] for k in [-max_lag, max_lag] ([2 max_lag + 1]),
    each over the frames both cover. Positive k: the video trails the audio by k frames."""
    v = np.asarray(video_signal, np.float64)
    a = np.asarray(audio_signal, np.float64)
    t = min(v.size, a.size)
    if t <= 2 * max_lag + 2:
        raise ValueError(f"a lag search over +-{max_lag} frames needs more than {2 * max_lag + 2} frames; got {t}")
    v, a = v[:t], a[:t]
    out = []
    for k in range(-max_lag, max_lag + 1):
        out.append(correlation(v[k:], a[: t - k]) if k >= 0 else correlation(v[: t + k], a[-k:]))
    return np.asarray(out)


def lip_sync(mouth, audio, *, max_lag: int = 5) -> dict:
    """The download-free lip-sync score: correlation of mouth opening [T] with the audio's RMS envelope at the
    best lag within +-max_lag frames, that lag (frames; positive: the video trails the audio), and the
    correlation at lag 0."""
    mouth = np.asarray(mouth, np.float64)
    envelope = audio_envelope(audio, len(mouth))
    curve = lagged_correlations(mouth, envelope, max_lag)
    best = int(np.argmax(curve))
    return {"sync_correlation": float(curve[best]), "sync_lag_frames": best - max_lag,
            "sync_correlation_lag0": float(curve[max_lag]), "sync_max_lag": max_lag}
