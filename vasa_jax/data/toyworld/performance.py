"""Toy-world performance: what the face does over a clip, frame by frame, given what is said.

The mouth follows the phones (a viseme target per phone, smoothed for coarticulation); head motion is slow
random drift plus nods and sways that follow prosody (loudness and pitch); blinks come at random; gaze is
mostly steady with occasional shifts; emotion is a per-clip offset with a little drift. All angles are in
degrees.
"""

from __future__ import annotations

import numpy as np

from vasa_jax.data.toyworld.speech import CONTROL_RATE, PHONE_OPEN, PHONE_VISEME, PHONE_WIDTH, Script, gaussian_smooth

# The pose range the renderer supports and the data covers: yaw, pitch, roll (degrees).
POSE_LIMITS = (30.0, 20.0, 15.0)
GAZE_LIMITS = (30.0, 20.0)  # theta (horizontal), phi (vertical), eye-in-head


def frame_times(num_frames: int, fps: float) -> np.ndarray:
    """The instant each frame shows: the centre of the interval [i / fps, (i + 1) / fps) it covers."""
    return (np.arange(num_frames) + 0.5) / fps


def mouth_tracks(script: Script, times: np.ndarray, rng: np.random.Generator) -> dict:
    """mouth_open [T] in [0, 1], mouth_width [T] in [-1, 1], viseme and phone [T] at the frame instants."""
    tc = np.arange(int(np.ceil(times[-1] * CONTROL_RATE)) + 2) / CONTROL_RATE
    seg = script.phone_at(tc)
    phone = script.phones[seg]
    articulation = rng.uniform(0.75, 1.05)  # some speakers open wider than others
    open_target = PHONE_OPEN[phone] * articulation * (0.8 + 0.25 * script.stress[seg])
    width_target = PHONE_WIDTH[phone]
    # Coarticulation: lips move towards each target with ~25 ms of smoothing at either side.
    sigma = 0.025 * CONTROL_RATE
    idx = np.minimum(np.round(times * CONTROL_RATE).astype(np.int64), tc.size - 1)
    frame_phone = script.phones[script.phone_at(times)]
    return {
        "mouth_open": np.clip(gaussian_smooth(open_target, sigma)[idx], 0.0, 1.0),
        "mouth_width": np.clip(gaussian_smooth(width_target, sigma)[idx], -1.0, 1.0),
        "viseme": PHONE_VISEME[frame_phone].astype(np.int32),
        "phone": frame_phone.astype(np.int32),
    }


def blink_track(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure [T] in [0, 1]: blinks at a random per-clip rate, each 120-260 ms, closing fast."""
    rate = rng.uniform(0.15, 0.5)  # blinks per second
    duration = times[-1] + 1.0
    onsets = np.cumsum(rng.exponential(1.0 / rate, size=int(duration * rate * 3) + 4) + 0.6) - 0.6 * rng.uniform()
    onsets = onsets[onsets < duration]
    closure = np.zeros_like(times)
    for onset in onsets:
        length = rng.uniform(0.12, 0.26)
        u = (times - onset) / length
        # closes in the first 40 %, reopens more slowly
        shape = np.where(u < 0.4, np.sin(0.5 * np.pi * u / 0.4), np.cos(0.5 * np.pi * (u - 0.4) / 0.6))
        closure = np.maximum(closure, np.where((u >= 0) & (u <= 1), shape**2, 0.0))
    return np.clip(closure, 0.0, 1.0).astype(np.float32)


def gaze_track(times: np.ndarray, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Gaze [T, 2] (theta, phi) degrees: a steady per-clip direction, with occasional held glances away."""
    base = np.array([rng.normal(0, 6.0), rng.normal(0, 4.0)])
    target = np.repeat(base[None], times.size, axis=0)
    t = rng.exponential(4.0)
    while t < times[-1]:
        hold = rng.uniform(0.3, 1.5)
        glance = base + rng.normal(0, [14.0, 8.0])
        target[(times >= t) & (times < t + hold)] = glance
        t += hold + rng.exponential(4.0)
    gaze = gaussian_smooth(target, 0.02 * fps, axis=0)  # saccades take about a frame
    return np.clip(gaze, [-GAZE_LIMITS[0], -GAZE_LIMITS[1]], GAZE_LIMITS).astype(np.float32)


def emotion_track(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Emotion [T] in [-1, 1] (sad ... happy): a per-clip offset with slow, small drift."""
    base = rng.choice([0.0, rng.uniform(-1, 1)], p=[0.25, 0.75])
    return np.clip(base + 0.08 * _slow_noise(times, rng, 0.15), -1.0, 1.0).astype(np.float32)


def head_tracks(times: np.ndarray, fps: float, loudness: np.ndarray, f0: np.ndarray,
                rng: np.random.Generator) -> dict:
    """Head pose [T] each: yaw, pitch, roll (degrees), tx, ty (image coordinates of the head centre,
    [-1, 1], x right, y down) and scale (apparent size; 1 = nominal distance).

    loudness: [T] speech loudness envelope; f0: frame pitch [T] (Hz, 0 where unvoiced). Nods follow loudness,
    sways follow pitch accents, both a little behind the voice, on top of slow drift.
    """
    loud = np.log(loudness + 1e-4)
    loud = (loud - loud.mean()) / (loud.std() + 1e-6)
    accent = np.where(f0 > 0, np.log(np.maximum(f0, 1.0)), np.nan)
    accent = np.nan_to_num(accent - np.nanmean(accent) if np.isfinite(accent).any() else accent)
    lag = int(round(0.08 * fps))  # head motion trails the voice
    nod = _delay(gaussian_smooth(loud, 0.12 * fps) - gaussian_smooth(loud, 1.0 * fps), lag)
    sway = _delay(gaussian_smooth(accent, 0.15 * fps) - gaussian_smooth(accent, 1.2 * fps), lag)
    expressive = rng.uniform(0.5, 1.5)  # how much this speaker moves with the voice

    yaw = rng.uniform(-14, 14) + 9.0 * _slow_noise(times, rng, 0.12) + expressive * 20.0 * sway
    pitch = rng.uniform(-7, 7) + 4.0 * _slow_noise(times, rng, 0.15) + expressive * 3.0 * nod
    roll = rng.uniform(-5, 5) + 3.5 * _slow_noise(times, rng, 0.1) + 0.25 * (yaw - yaw.mean()) * 0.3
    pose = {
        "yaw": _soft_limit(yaw, POSE_LIMITS[0]),
        "pitch": _soft_limit(pitch, POSE_LIMITS[1]),
        "roll": _soft_limit(roll, POSE_LIMITS[2]),
        "tx": rng.uniform(-0.06, 0.06) + 0.03 * _slow_noise(times, rng, 0.08),
        "ty": rng.uniform(-0.05, 0.05) + 0.02 * _slow_noise(times, rng, 0.08) - 0.004 * nod,
        "scale": rng.uniform(0.88, 1.12) * (1.0 + 0.03 * _slow_noise(times, rng, 0.05)),
    }
    return {k: v.astype(np.float32) for k, v in pose.items()}


def _slow_noise(times: np.ndarray, rng: np.random.Generator, max_hz: float) -> np.ndarray:
    """Smooth random motion with unit-ish amplitude: a few sinusoids below `max_hz`."""
    freqs = rng.uniform(0.2, 1.0, 4) * max_hz
    amps = rng.uniform(0.3, 1.0, 4)
    phases = rng.uniform(0, 2 * np.pi, 4)
    wave = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * times[None] + phases[:, None])).sum(0)
    return wave / np.sqrt((amps**2).sum() / 2)


def _delay(x: np.ndarray, frames: int) -> np.ndarray:
    """x shifted later by `frames`, holding its first value."""
    frames = min(frames, x.size)
    return np.concatenate([np.full(frames, x[0], x.dtype), x[: x.size - frames]])


def _soft_limit(x: np.ndarray, limit: float) -> np.ndarray:
    """Keeps x inside (-limit, limit) without a hard clip's kink."""
    return limit * np.tanh(x / limit)
