"""Sampling JoyVASA's motion from speech as upstream's wrapper does, offline (lax.scan over windows) or streaming.

    motion = sample_motion(model, params, waveform, key)   # [frames, 70]: exp 63 | scale | t 3 | pitch, yaw, roll
    stream = JoyVasaStream(model, params, key)
    for chunk in chunks: for window in stream.push(chunk): show(window)   # [n_motions, 70] as each completes
    for window in stream.flush(): show(window)                           # the rest, the last window trimmed

Upstream's procedure (src/live_portrait_wmg_wrapper.py gen_motion_sequence): the 16 kHz clip gets 1280 zeros
before and 640 after (pad_clip); it is cut into windows of n_motions * 640 samples, the last filled up per
pad_mode; each window's audio features come from its own samples; window n starts from the same x_T as window 0
and is conditioned on window n - 1's last P generated motions and audio features (the first on the learned start
tokens); every diffusion step runs (ancestral) with audio guidance; the frames of the filler are cut, the motion
is de-normalised with the template, and scale, t and the head angles are smoothed by an exponential moving
average (alpha 0.01). Frame k covers samples [640 k, 640 (k + 1)) of the padded clip: with pad_clip the motion has
floor(N / 640) + 3 frames and its first two precede the speech. "ddim" replaces the T ancestral steps by `steps`
deterministic DDIM steps (faster; not upstream's procedure).

Noise: x_T and window n's step noise come from window_noise(model, key, n), in the scan (clip_noise draws all
windows' at once) and in the stream alike, so both give the same motion for the same audio and key.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.motion.diffusion import sampler_update, sampling_timesteps
from vasa_jax.motion.joyvasa.config import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from vasa_jax.motion.joyvasa.model import JoyVasa, ancestral_update, extract_audio_features, guided_x0

SAMPLERS = ("ancestral", "ddim")
DEFAULT_CFG_SCALE = 2.8  # upstream's inference default
DEFAULT_DDIM_STEPS = 10
CLIP_PADDING = (1280, 640)  # samples of silence the wrapper puts before and after the clip
POSE = slice(63, 70)  # scale, t, pitch, yaw, roll: the part upstream smooths
EMA_ALPHA = 0.01  # weight of the new frame in upstream's smoothing


def window_noise(model: JoyVasa, key, index):
    """(x_T [1, L, M], step noise [T, 1, L, M]) for window `index`: x_T is the same for every window (upstream
    starts each window from window 0's x_T), the step noise row j is the z of step T - j."""
    c = model.config
    k_start, k_steps = jax.random.split(key)
    x_t = jax.random.normal(k_start, (1, c.n_motions, c.motion_dim))
    step_noise = jax.random.normal(jax.random.fold_in(k_steps, index), (c.n_diff_steps, 1, c.n_motions, c.motion_dim))
    return x_t, step_noise


def _ancestral(model, params, audio_feat, prev_motion, prev_audio, x_t, step_noise, cfg_scale):
    def body(x, inputs):
        t, z = inputs
        x0 = guided_x0(model, params, x, audio_feat, prev_motion, prev_audio, t, cfg_scale)
        return ancestral_update(params, x, x0, t, z), None

    ts = jnp.arange(model.config.n_diff_steps, 0, -1)
    return jax.lax.scan(body, x_t, (ts, step_noise))[0]


def _ddim(model, params, audio_feat, prev_motion, prev_audio, x_t, cfg_scale, steps: int):
    ts = sampling_timesteps(model.config.n_diff_steps, steps) + 1  # upstream's steps are 1 .. T
    ab = params["diffusion_sched"]["alpha_bars"]

    def body(x, inputs):
        t, s = inputs
        x0 = guided_x0(model, params, x, audio_feat, prev_motion, prev_audio, t, cfg_scale)
        return sampler_update(x, x0, ab[t], ab[s], 0.0, 0.0), None

    return jax.lax.scan(body, x_t, (jnp.asarray(ts), jnp.asarray(np.append(ts[1:], 0))))[0]


@functools.partial(jax.jit, static_argnames=("model",))
def sample_window(model: JoyVasa, params, audio_feat, prev_motion, prev_audio, x_t, step_noise, cfg_scale):
    """One window as upstream's DitTalkingHead.sample: x_T [B, L, M] through all T guided ancestral steps with the
    given step noise [T, B, L, M] (row j: step T - j) -> normalised motion [B, L, M]. prev_motion / prev_audio
    None: the start tokens."""
    return _ancestral(model, params, audio_feat, prev_motion, prev_audio, x_t, step_noise, cfg_scale)


def denormalize(template, motion):
    """Normalised motion [..., M] -> exp / scale / t / degrees, with the motion template's statistics."""
    return motion * template["scale"] + template["offset"]


def smooth_pose(motion, state):
    """Upstream's EMA over scale, t and the head angles: motion [T, M], the previous smoothed value [7] ->
    (last smoothed value, motion with those columns smoothed)."""

    def body(s, x):
        s = EMA_ALPHA * x + (1 - EMA_ALPHA) * s
        return s, s

    state, smoothed = jax.lax.scan(body, state, motion[:, POSE])
    return state, motion.at[:, POSE].set(smoothed)


def split_motion(motion) -> dict:
    """[T, 70] -> LivePortrait's parts: exp [T, 21, 3], scale [T, 1], t [T, 3], pitch / yaw / roll [T, 1] degrees."""
    return {"exp": motion[:, :63].reshape(-1, 21, 3), "scale": motion[:, 63:64], "t": motion[:, 64:67],
            "pitch": motion[:, 67:68], "yaw": motion[:, 68:69], "roll": motion[:, 69:70]}


def clip_plan(num_samples: int, n_motions: int) -> tuple[int, int, int]:
    """(windows, frames, filler samples) for a (padded) clip of num_samples, as the wrapper computes them."""
    clip_frames = int(num_samples / SAMPLE_RATE * FPS)  # the wrapper's expression, float rounding included
    windows = 1 if clip_frames <= n_motions else math.ceil(clip_frames / n_motions)
    filler = n_motions * SAMPLES_PER_FRAME * windows - num_samples
    return windows, windows * n_motions - max(math.ceil(filler / SAMPLES_PER_FRAME), 0), filler


def _filled(clip: np.ndarray, filler: int, pad_mode: str, last_sample: float) -> np.ndarray:
    if filler <= 0:
        return clip
    value = last_sample if pad_mode == "replicate" else 0.0
    return np.concatenate([clip, np.full(filler, value, np.float32)])


def _options(model: JoyVasa, sampler: str, steps) -> int | None:
    """The DDIM step count, or None for the ancestral sampler; ValueError for options that do not fit."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")
    t = model.config.n_diff_steps
    if sampler == "ancestral":
        if steps not in (None, t):
            raise ValueError(f"the ancestral sampler runs all {t} steps (upstream's); use sampler='ddim' for fewer")
        return None
    steps = min(DEFAULT_DDIM_STEPS, t) if steps is None else int(steps)
    sampling_timesteps(t, steps)  # validates
    return steps


def _clip_window(model: JoyVasa, params, carry, wave, index, x_t, step_noise, cfg_scale, *, steps, smooth):
    """One window of a clip: (carry, samples [S]) -> (carry, motion [L, M] de-normalised, smoothed if asked).
    carry: the previous window's last P motions [1, P, M] and audio features [1, P, d], the EMA state [7]."""
    c = model.config
    prev_motion, prev_audio, ema = carry
    audio = extract_audio_features(model, params, wave[None], num_frames=c.n_motions)
    if steps is None:
        x0 = _ancestral(model, params, audio, prev_motion, prev_audio, x_t, step_noise, cfg_scale)
    else:
        x0 = _ddim(model, params, audio, prev_motion, prev_audio, x_t, cfg_scale, steps)
    motion = denormalize(params["template"], x0[0])
    if smooth:
        ema, motion = smooth_pose(motion, jnp.where(index == 0, motion[0, POSE], ema))
    return (x0[:, -c.n_prev_motions:], audio[:, -c.n_prev_motions:], ema), motion


def _initial_carry(model: JoyVasa, params):
    return params["start_motion_feat"], params["start_audio_feat"], jnp.zeros((POSE.stop - POSE.start,))


@functools.partial(jax.jit, static_argnames=("model", "windows"))
def clip_noise(model: JoyVasa, key, windows: int):
    """window_noise for windows 0 .. windows - 1 at once: (x_T [1, L, M], step noise [windows, T, 1, L, M])."""
    step_noise = jax.vmap(lambda i: window_noise(model, key, i)[1])(jnp.arange(windows))
    return window_noise(model, key, 0)[0], step_noise


_window_noise = jax.jit(window_noise, static_argnames=("model",))


@functools.partial(jax.jit, static_argnames=("model", "steps", "smooth"))
def _stream_window(model, params, carry, wave, index, x_t, step_noise, cfg_scale, *, steps, smooth):
    return _clip_window(model, params, carry, wave, index, x_t, step_noise, cfg_scale, steps=steps, smooth=smooth)


@functools.partial(jax.jit, static_argnames=("model", "steps", "smooth"))
def _scan_clip(model, params, windows, x_t, step_noise, cfg_scale, *, steps, smooth):
    """lax.scan of _clip_window over windows [n, S] -> motion [n, L, M] (step noise [n, T, 1, L, M], or None for
    DDIM)."""

    def body(carry, inputs):
        wave, index, z = inputs
        return _clip_window(model, params, carry, wave, index, x_t, z, cfg_scale, steps=steps, smooth=smooth)

    return jax.lax.scan(body, _initial_carry(model, params), (windows, jnp.arange(windows.shape[0]), step_noise))[1]


def sample_motion(model: JoyVasa, params, waveform, key=None, *, cfg_scale: float = DEFAULT_CFG_SCALE,
                  sampler: str = "ancestral", steps: int | None = None, smooth: bool = True, pad_clip: bool = True,
                  noise=None) -> np.ndarray:
    """Motion for a whole clip: waveform [N] (16 kHz mono, not normalised) -> [frames, 70] float32.

    sampler "ancestral" (upstream's, all T steps) or "ddim" (`steps`, default 10 or T if fewer). smooth: upstream's EMA of the
    pose. pad_clip: the wrapper's silence around the clip. noise: (x_T [1, L, M], step noise [windows, T, 1, L, M])
    instead of drawing from key, to replay a given run. Compiled once per number of windows.
    """
    steps = _options(model, sampler, steps)
    c = model.config
    clip = np.asarray(waveform, np.float32).reshape(-1)
    if clip.size == 0:
        raise ValueError("the waveform is empty")
    if pad_clip:
        clip = np.pad(clip, CLIP_PADDING)
    n, frames, filler = clip_plan(clip.size, c.n_motions)
    clip = _filled(clip, filler, c.pad_mode, float(clip[-1]))
    windows = clip[:n * c.window_samples].reshape(n, c.window_samples)
    if noise is None:
        if key is None:
            raise ValueError("sample_motion needs a key (or the noise to replay)")
        noise = clip_noise(model, key, n)
    x_t, step_noise = noise
    motion = _scan_clip(model, params, jnp.asarray(windows), jnp.asarray(x_t),
                        None if steps is not None else jnp.asarray(step_noise), jnp.float32(cfg_scale), steps=steps,
                        smooth=smooth)
    return np.asarray(motion).reshape(-1, c.motion_dim)[:frames]


class JoyVasaStream:
    """Online sampling: push 16 kHz samples chunk by chunk; each window's motion [L, 70] comes back as soon as its
    samples are in (the first window's latency: its n_motions * 640 samples, less the wrapper's 1280 leading
    zeros, plus one window's sampling time). Pushed and flushed in any chunks, the windows concatenated equal
    sample_motion for the same audio, key and options."""

    def __init__(self, model: JoyVasa, params, key, *, cfg_scale: float = DEFAULT_CFG_SCALE,
                 sampler: str = "ancestral", steps: int | None = None, smooth: bool = True, pad_clip: bool = True):
        self.model, self.params, self.key = model, params, key
        self._steps, self._smooth, self._pad_clip = _options(model, sampler, steps), smooth, pad_clip
        self._cfg_scale = jnp.float32(cfg_scale)
        self._carry = _initial_carry(model, params)
        self._pending = np.zeros(CLIP_PADDING[0] if pad_clip else 0, np.float32)  # samples not in a window yet
        self._seen = self._pending.size  # samples of the (padded) clip so far
        self._last_sample = 0.0
        self.windows_done = 0
        self._closed = False

    def _run(self, wave) -> np.ndarray:
        x_t, step_noise = _window_noise(self.model, self.key, self.windows_done)
        self._carry, motion = _stream_window(self.model, self.params, self._carry, jnp.asarray(wave),
                                             self.windows_done, x_t, None if self._steps is not None else step_noise,
                                             self._cfg_scale, steps=self._steps, smooth=self._smooth)
        self.windows_done += 1
        return np.asarray(motion)

    def push(self, samples) -> list[np.ndarray]:
        """Add samples [n]; returns the motion [L, 70] of every window completed."""
        if self._closed:
            raise RuntimeError("this JoyVasaStream was flushed; start a new one")
        samples = np.asarray(samples, np.float32).reshape(-1)
        if samples.size:
            self._last_sample = float(samples[-1])
        self._pending = np.concatenate([self._pending, samples])
        self._seen += samples.size
        size = self.model.config.window_samples
        out = []
        while self._pending.size >= size:
            out.append(self._run(self._pending[:size]))
            self._pending = self._pending[size:]
        return out

    def flush(self) -> list[np.ndarray]:
        """End of the audio: the remaining windows, the last trimmed to the clip's frames."""
        if self._closed:
            raise RuntimeError("this JoyVasaStream was flushed; start a new one")
        if self._seen == (CLIP_PADDING[0] if self._pad_clip else 0):
            raise ValueError("the stream received no audio")
        self._closed = True
        c = self.model.config
        if self._pad_clip:
            self._pending = np.concatenate([self._pending, np.zeros(CLIP_PADDING[1], np.float32)])
            self._seen += CLIP_PADDING[1]
            self._last_sample = 0.0
        n, frames, filler = clip_plan(self._seen, c.n_motions)
        rest = _filled(self._pending, filler, c.pad_mode, self._last_sample)
        out = [self._run(rest[i * c.window_samples:(i + 1) * c.window_samples]) for i in range(n - self.windows_done)]
        if out:
            out[-1] = out[-1][:frames - (n - 1) * c.n_motions]
        return out
