"""Sampling motion from audio: multi-condition classifier-free guidance, DDIM / DDPM, windows by lax.scan, and
the streaming form. Pure functions of (params, inputs, key); the denoiser does not know how it is sampled.

    params = {"denoiser": ..., "stats": ...}        # vasa_jax.train.motion.load_motion_checkpoint gives these
    motion = sample_windows(params, features, Controls(gaze=(0.0, 0.0)), key, config=config)   # [T, motion_dim]

    stream = MotionStream(params, controls, key, config=config)
    for chunk in feature_chunks:                        # or stream.push_audio(samples) with an audio stream
        for window in stream.push(chunk): show(window)  # [window, motion_dim] each, as soon as it is ready
    for window in stream.flush(): show(window)          # the rest (the last window trimmed to the audio)

Windows. The audio of T frames is cut into ceil(T / W) windows of W frames; the last is padded with frames
whose audio is marked unknown (the model was trained on truncated audio for this) and its output trimmed, so
the motion has exactly T frames. Window n is conditioned on the last K generated motions and audio features of
window n - 1, and starts where they point (continue_context, config.seam_frames); the first window has no
context (its context tokens are masked out). A window's noise is indexed by the clip's frames (frame_noise:
frame f from fold_in(key, f)), in the scan and in the stream alike, so both give the same motion for the same
audio and key (the stream computes each window with the same function the scan runs on each step).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.motion.conditions import Conditions, denormalize, make_conditions
from vasa_jax.motion.config import CONDITIONS, DISTANCE_DIM, GAZE_DIM, SAMPLERS, MotionConfig
from vasa_jax.face.config import POSE_DIM
from vasa_jax.motion.denoiser import MotionDenoiser
from vasa_jax.motion.diffusion import cosine_alphas_cumprod, sampler_update, sampling_timesteps

_ETA = {"ddim": 0.0, "ddpm": 1.0}


@flax.struct.dataclass
class Controls:
    """What steers generation besides the audio; None = that condition empty (unconditional for it).

    gaze: (theta, phi) degrees [2]; distance: head distance 1 / scale (scalar or [1]); emotion: [emotion_dim]
    (or a scalar when emotion_dim is 1). VASA-1's inference defaults are forward gaze (0, 0), the average
    distance and no emotion.
    """

    gaze: jax.Array | None = None
    distance: jax.Array | None = None
    emotion: jax.Array | None = None


def guided_x0(denoiser_params, config: MotionConfig, x_t, t, cond: Conditions, scales: Mapping[str, float]):
    """Multi-condition classifier-free guidance (VASA-1):

        X0_hat = (1 + sum_c lambda_c) H(X_t, t, C) - sum_c lambda_c H(X_t, t, C | c = empty)

    over the conditions c named in `scales` ({name: lambda_c}). The full pass and one pass per named condition
    go through the denoiser as one batch (stacked on the batch axis). x_t [B, W, M], t [B] -> [B, W, M].
    """
    names = tuple(scales)
    unknown = set(names) - set(CONDITIONS)
    if unknown:
        raise ValueError(f"guidance scales for unknown conditions {sorted(unknown)}; known: {CONDITIONS}")
    model = MotionDenoiser(config)
    if not names:
        return model.apply({"params": denoiser_params}, x_t, t, cond)
    passes = [cond] + [cond.drop(name) for name in names]
    stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs), *passes)
    p = len(passes)
    out = model.apply({"params": denoiser_params}, jnp.tile(x_t, (p, 1, 1)), jnp.tile(t, p), stacked)
    full, *dropped = jnp.split(out, p)
    lambdas = [jnp.asarray(scales[name], out.dtype) for name in names]
    return (1.0 + sum(lambdas)) * full - sum(lam * h for lam, h in zip(lambdas, dropped))


def continue_context(x0, cond: Conditions, frames, dynamics_frames=None):
    """X0 estimates [B, W, M] (normalised) whose first frames are shifted so that each window with a context
    starts where the context's last step points: frame 0 becomes c_K + (c_K - c_{K-1}) (c the context motion;
    c_K itself with a one-frame context), the shift falling from 1 at frame 0 to 0 at frame `frames` as half a
    cosine (so it adds no step of its own). dynamics_frames (None: `frames`): the horizon for the features
    after z_pose (the first POSE_DIM), so the head and the face can be continued over different spans.
    Windows without context are returned as they are.

    Why: the denoiser sees its context but, trained with a per-frame loss, does not continue it exactly: each
    window started with a step of about twice the typical frame-to-frame change (measured on the toy world).
    Applied to every step's estimate, the following steps fit the rest of the window to the corrected start.
    """
    k, m = cond.context_motion.shape[1], x0.shape[-1]
    dynamics_frames = frames if dynamics_frames is None else dynamics_frames
    if (frames == 0 and dynamics_frames == 0) or k == 0:
        return x0
    horizon = np.where(np.arange(m) < POSE_DIM, frames, dynamics_frames)  # [M], static
    i = np.arange(x0.shape[1])[:, None]
    weight = np.where(i < horizon, 0.5 * (1.0 + np.cos(np.pi * i / np.maximum(horizon, 1))), 0.0)  # [W, M]
    last = cond.context_motion[:, -1]
    target = 2.0 * last - cond.context_motion[:, -2] if k > 1 else last
    shift = (target - x0[:, 0]) * cond.context_mask[:, None]  # [B, M]
    return x0 + jnp.asarray(weight, x0.dtype)[None] * shift[:, None, :]


def frame_noise(key, start, frames: int, batch: int, dim: int):
    """Standard normal noise [batch, frames, dim] whose frame f is drawn from fold_in(key, start + f) alone:
    windows that overlap (the online mode's hops) draw the same noise for the frames they share, so they sample
    the same motion there up to what their audio and context change, instead of a fresh draw every hop."""
    keys = jax.vmap(lambda f: jax.random.fold_in(key, f))(start + jnp.arange(frames))
    return jnp.swapaxes(jax.vmap(lambda k: jax.random.normal(k, (batch, dim)))(keys), 0, 1)


def denoise(denoiser_params, config: MotionConfig, cond: Conditions, key, *, steps: int, sampler: str,
            scales: Mapping[str, float], start=0, seams: tuple[int, int] | None = None):
    """Samples normalised X0 [B, W, M] for conditions `cond` (batch B): `steps` guided updates from pure noise,
    each window continuing its context (continue_context over `seams` = (z_pose frames, other frames); None:
    config.seam_frames for both). start: the window's first frame in the clip, which indexes its noise
    (frame_noise)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")
    ab = cosine_alphas_cumprod(config.diffusion_steps)
    ts = sampling_timesteps(config.diffusion_steps, steps)
    ab_t = ab[ts]
    ab_s = np.append(ab[ts[1:]], 1.0).astype(np.float32)  # after the last step: X0 itself
    b = cond.batch_size
    k_start, k_steps = jax.random.split(key)
    w, m = config.window, config.motion_dim
    x = frame_noise(k_start, start, w, b, m)

    def step(x, inputs):
        i, t, a_t, a_s = inputs
        x0 = guided_x0(denoiser_params, config, x, jnp.full((b,), t), cond, scales)
        x0 = continue_context(x0, cond, *(seams or (config.seam_frames,)))
        noise = frame_noise(jax.random.fold_in(k_steps, i), start, w, b, m)
        return sampler_update(x, x0, a_t, a_s, _ETA[sampler], noise), None

    x, _ = jax.lax.scan(step, x, (jnp.arange(steps), jnp.asarray(ts), jnp.asarray(ab_t), jnp.asarray(ab_s)))
    return x


def _active_scales(config: MotionConfig, controls: Controls, cfg: Mapping[str, float] | None) -> tuple:
    """(name, lambda) pairs that need a guidance pass: a nonzero scale on a condition that is present (dropping
    an empty condition changes nothing, so its pass would be wasted)."""
    scales = dict(config.cfg_scales)
    if cfg is not None:
        unknown = set(cfg) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"cfg scales for unknown conditions {sorted(unknown)}; known: {CONDITIONS}")
        scales.update({k: float(v) for k, v in cfg.items()})
    present = {"audio": True, "gaze": controls.gaze is not None, "distance": controls.distance is not None,
               "emotion": controls.emotion is not None}
    return tuple((name, lam) for name, lam in scales.items() if lam != 0.0 and present[name])


def _control(value, dim: int):
    """A control as ([1, dim] float32, [1] mask)."""
    if value is None:
        return jnp.zeros((1, dim), jnp.float32), jnp.zeros((1,), bool)
    value = jnp.asarray(value, jnp.float32).reshape(1, dim)
    return value, jnp.ones((1,), bool)


def window_conditions(stats, config: MotionConfig, controls: Controls, audio, audio_mask, context_motion,
                      context_audio, has_context) -> Conditions:
    """Conditions (batch 1) for one window from raw values: audio [W, Da], audio_mask [W], the previous window's
    last K motions [K, M] and audio features [K, Da], has_context (bool scalar)."""
    gaze, gaze_mask = _control(controls.gaze, GAZE_DIM)
    distance, distance_mask = _control(controls.distance, DISTANCE_DIM)
    emotion, emotion_mask = _control(controls.emotion, config.emotion_dim)
    return make_conditions(stats, audio=audio[None], audio_mask=audio_mask[None], context_motion=context_motion[None],
                           context_audio=context_audio[None], context_mask=jnp.reshape(has_context, (1,)),
                           gaze=gaze, gaze_mask=gaze_mask, distance=distance, distance_mask=distance_mask,
                           emotion=emotion, emotion_mask=emotion_mask)


def _initial_carry(config: MotionConfig):
    """No previous window: zero context, masked."""
    return (jnp.zeros((config.context, config.motion_dim)), jnp.zeros((config.context, config.audio_dim)),
            jnp.zeros((), bool))


def sample_window(params, controls, context, audio, audio_mask, start, key, *, config, steps, sampler, scales,
                  seams=None):
    """The window function every path shares (offline scan, stream, online hops): motion [W, M] un-normalised for
    one window of audio [W, Da] with audio_mask [W], given its context (the K motions and audio features before
    it and whether there are any: (context_motion [K, M], context_audio [K, Da], has_context)). start: the
    window's first frame in the clip, which indexes its noise (frame_noise). seams: denoise's."""
    context_motion, context_audio, has_context = context
    cond = window_conditions(params["stats"], config, controls, audio, audio_mask, context_motion, context_audio,
                             has_context)
    x0 = denoise(params["denoiser"], config, cond, key, steps=steps, sampler=sampler, scales=dict(scales),
                 start=start, seams=seams)
    return denormalize(params["stats"], "motion", x0[0])


def _window(params, controls, carry, audio, audio_mask, index, key, *, config, steps, sampler, scales):
    """One window: (carry, audio [W, Da], audio_mask [W], its index) -> (next carry, motion [W, M] un-normalised).

    The carry is the previous window's last K motions and audio features and whether there was one.
    """
    motion = sample_window(params, controls, carry, audio, audio_mask, index * config.window, key, config=config,
                           steps=steps, sampler=sampler, scales=scales)
    w, k = config.window, config.context
    return (motion[w - k:], jnp.asarray(audio, jnp.float32)[w - k:], jnp.ones((), bool)), motion


def _online_step(params, controls, carry, audio, audio_mask, index, key, *, config, steps, sampler, scales, hop):
    """One online hop: a whole window sampled at the first frame not yet emitted (its audio known only `hop +
    lookahead` frames in, as audio_mask says), of which the first `hop` frames are kept.
    -> (next carry, motion [hop, M]).

    The next context is the last K frames emitted. Before K frames exist, the first frame emitted stands in for
    the frames before it (a head held still before it starts talking), so every hop after the first has a full
    context, as training always does."""
    seams = (config.online_seam_pose, config.online_seam_dynamics)
    motion = sample_window(params, controls, carry, audio, audio_mask, index * hop, key, config=config, steps=steps,
                           sampler=sampler, scales=scales, seams=seams)[:hop]
    context_motion, context_audio, has_context = carry
    k = config.context
    audio = jnp.asarray(audio, jnp.float32)[:hop]
    held_motion = jnp.where(has_context, context_motion, jnp.broadcast_to(motion[:1], context_motion.shape))
    held_audio = jnp.where(has_context, context_audio, jnp.broadcast_to(audio[:1], context_audio.shape))
    next_motion = jnp.concatenate([held_motion, motion])[-k:]
    next_audio = jnp.concatenate([held_audio, audio])[-k:]
    return (next_motion, next_audio, jnp.ones((), bool)), motion


_online_hop = jax.jit(_online_step, static_argnames=("config", "steps", "sampler", "scales", "hop"))


_window_jit = jax.jit(_window, static_argnames=("config", "steps", "sampler", "scales"))


@functools.partial(jax.jit, static_argnames=("config", "steps", "sampler", "scales"))
def _scan_windows(params, controls, audio_windows, mask_windows, key, *, config, steps, sampler, scales):
    """lax.scan of _window over windows [N, W, Da] -> motion [N, W, M]."""

    def body(carry, inputs):
        audio, mask, index = inputs
        return _window(params, controls, carry, audio, mask, index, key, config=config, steps=steps,
                       sampler=sampler, scales=scales)

    n = audio_windows.shape[0]
    _, motion = jax.lax.scan(body, _initial_carry(config), (audio_windows, mask_windows, jnp.arange(n)))
    return motion


def _options(config: MotionConfig, controls: Controls, steps, sampler, cfg):
    config.require_sizes()
    steps = config.sample_steps if steps is None else int(steps)
    sampler = config.sampler if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}")
    sampling_timesteps(config.diffusion_steps, steps)  # validates steps
    return steps, sampler, _active_scales(config, controls, cfg)


def _check_features(features, config: MotionConfig):
    if features.ndim != 2 or features.shape[1] != config.audio_dim:
        raise ValueError(f"audio features must be [T, {config.audio_dim}] (the encoder the model was trained "
                         f"with); got {features.shape}")


def sample_windows(params, audio_features, controls: Controls | None, key, *, config: MotionConfig,
                   steps: int | None = None, sampler: str | None = None, cfg: Mapping[str, float] | None = None):
    """Motion for a whole clip: audio_features [T, audio_dim] at 25 fps -> motion [T, motion_dim] (un-normalised:
    z_pose then z_dyn), deterministic for `key`.

    controls: gaze / distance / emotion (None or a None field: that condition empty). steps, sampler ("ddim" or
    "ddpm") and cfg ({condition: lambda}, merged over the config's scales) default to the config's.
    Windows go through one jax.lax.scan; compiled once per number of windows. Works under jax.vmap over clips of
    one length (with per-clip keys and controls).
    """
    controls = Controls() if controls is None else controls
    steps, sampler, scales = _options(config, controls, steps, sampler, cfg)
    audio_features = jnp.asarray(audio_features, jnp.float32)
    _check_features(audio_features, config)
    t, w = audio_features.shape[0], config.window
    n = -(-t // w)
    if n == 0:
        return jnp.zeros((0, config.motion_dim), jnp.float32)
    audio = jnp.pad(audio_features, ((0, n * w - t), (0, 0)))
    mask = jnp.arange(n * w) < t
    motion = _scan_windows(params, controls, audio.reshape(n, w, -1), mask.reshape(n, w), key, config=config,
                           steps=steps, sampler=sampler, scales=scales)
    return motion.reshape(n * w, -1)[:t]


def sample_online(params, audio_features, controls: Controls | None, key, *, config: MotionConfig,
                  steps: int | None = None, sampler: str | None = None, cfg: Mapping[str, float] | None = None,
                  hop: int | None = None, lookahead: int | None = None):
    """The online mode for a whole clip: what OnlineMotionStream emits for these features, as one lax.scan over
    hops. audio_features [T, audio_dim] -> motion [T, motion_dim]; works under jax.vmap like sample_windows."""
    controls = Controls() if controls is None else controls
    steps, sampler, scales = _options(config, controls, steps, sampler, cfg)
    hop, lookahead = online_settings(config, hop, lookahead)
    audio_features = jnp.asarray(audio_features, jnp.float32)
    _check_features(audio_features, config)
    t = audio_features.shape[0]
    if t == 0:
        return jnp.zeros((0, config.motion_dim), jnp.float32)
    return _scan_hops(params, controls, audio_features, key, config=config, steps=steps, sampler=sampler,
                      scales=scales, hop=hop, lookahead=lookahead)[:t]


@functools.partial(jax.jit, static_argnames=("config", "steps", "sampler", "scales", "hop", "lookahead"))
def _scan_hops(params, controls, audio_features, key, *, config, steps, sampler, scales, hop, lookahead):
    t, w = audio_features.shape[0], config.window
    n = -(-t // hop)
    padded = jnp.pad(audio_features, ((0, n * hop + w - t), (0, 0)))
    frames = jnp.arange(w)

    def body(carry, index):
        start = index * hop
        known = jnp.minimum(hop + lookahead, t - start)
        audio = jax.lax.dynamic_slice_in_dim(padded, start, w)
        mask = frames < known
        audio = jnp.where(mask[:, None], audio, 0.0)
        return _online_step(params, controls, carry, audio, mask, index, key, config=config, steps=steps,
                            sampler=sampler, scales=scales, hop=hop)

    _, motion = jax.lax.scan(body, _initial_carry(config), jnp.arange(n))
    return motion.reshape(n * hop, -1)


class _FeatureStream:
    """What the window stream and the online stream share: options, the carried context, the audio features
    pushed and not yet used, and push / push_audio / flush; subclasses say what the pending features make
    (_take)."""

    def __init__(self, params, controls: Controls | None, key, *, config: MotionConfig, steps: int | None = None,
                 sampler: str | None = None, cfg: Mapping[str, float] | None = None, audio_stream=None):
        self.params, self.key, self.config = params, key, config
        self.controls = Controls() if controls is None else controls
        self._steps, self._sampler, self._scales = _options(config, self.controls, steps, sampler, cfg)
        self.audio_stream = audio_stream
        self._carry = _initial_carry(config)
        self._pending = np.zeros((0, config.audio_dim), np.float32)
        self.windows_done = 0
        self._closed = False

    def _take(self, final: bool) -> list[np.ndarray]:
        raise NotImplementedError

    def push(self, features) -> list[np.ndarray]:
        """Add audio features [n, audio_dim]; returns the motion of every window (hop) completed."""
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} was flushed; start a new one")
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[1] != self.config.audio_dim:
            raise ValueError(f"audio features must be [n, {self.config.audio_dim}]; got {features.shape}")
        self._pending = np.concatenate([self._pending, features])
        return self._take(final=False)

    def push_audio(self, samples) -> list[np.ndarray]:
        """Add 16 kHz audio samples (through audio_stream); returns the windows (hops) completed."""
        if self.audio_stream is None:
            raise ValueError(f"push_audio needs {type(self).__name__}(..., audio_stream=encoder.stream())")
        return self.push(self.audio_stream.push(samples))

    def flush(self) -> list[np.ndarray]:
        """End of the audio: the rest of the motion, up to the last frame of audio."""
        out = self.push(self.audio_stream.flush()) if self.audio_stream is not None else []
        self._closed = True
        return out + self._take(final=True)


class MotionStream(_FeatureStream):
    """Streaming: push audio features (or audio) chunk by chunk; each window's motion comes back as soon as its W
    frames of audio are in. For the same audio and key the windows, concatenated, equal sample_windows.

    audio_stream: an audio encoder's FeatureStream (encoder.stream()), for push_audio(). The latency of a
    window is its W frames of audio (plus the audio stream's own latency) plus one window's sampling time.
    """

    def _run(self, audio, mask):
        self._carry, motion = _window_jit(self.params, self.controls, self._carry, jnp.asarray(audio),
                                          jnp.asarray(mask), self.windows_done, self.key, config=self.config,
                                          steps=self._steps, sampler=self._sampler, scales=self._scales)
        self.windows_done += 1
        return np.asarray(motion)

    def _take(self, final: bool) -> list[np.ndarray]:
        """Every full window pending; at the end the last, partial one (padded, then trimmed to its frames)."""
        w, out = self.config.window, []
        while self._pending.shape[0] >= w:
            window, self._pending = self._pending[:w], self._pending[w:]
            out.append(self._run(window, np.ones(w, bool)))
        t = self._pending.shape[0]
        if final and t:
            audio = np.concatenate([self._pending, np.zeros((w - t, self.config.audio_dim), np.float32)])
            out.append(self._run(audio, np.arange(w) < t)[:t])
            self._pending = self._pending[:0]
        return out


# Online defaults, chosen by measurement. A frame waits for up to hop + lookahead - 1 frames of speech after its
# own (the first frame of a hop), plus the audio stream's 20 ms and a hop's compute. The bundled demo on this
# project's 2-core CPU with a live source (python -m vasa_jax.bench --realtime, 30 s of speech, 4 steps):
# hop 3 / look-ahead 1: first frame 0.22 s, median 0.16 s, p95 0.21 s, 47.6 frames/s of compute; hop 4 /
# look-ahead 1: 0.26 / 0.20 / 0.27 s, 49.4 frames/s. Quality (a 4000-step toy_truth model, 32 held-out clips,
# the config's online seams and steps; offline DDIM 10: mouth correlation 0.959, Delta-P 0.92x the data's):
# 3 / 1: mouth 0.91, Delta-P 1.04x, gaze within 2.1 degrees, no seam at the hops; 4 / 1: 0.92, 1.08x;
# 4 / 4 (8 / 2 seams): 0.91, 1.09x; 2 / 2 (DDIM 10): 0.85 and a seam at the hops (python -m
# vasa_jax.motion.evaluate --online). Hop 3 buys 40 ms of latency for 1 % of mouth correlation.
ONLINE_HOP = 3
ONLINE_LOOKAHEAD = 1


class OnlineMotionStream(_FeatureStream):
    """Online sampling, VASA-1's online mode: every `hop` frames of audio, one window is sampled starting at the
    first frame not yet emitted, with the audio known `hop + lookahead` frames past that frame and the rest of
    the window's audio marked unknown (as the model was trained on truncated windows); its first `hop` frames
    are emitted. So a frame waits for at most hop + lookahead frames of audio (plus the audio stream's latency
    and one window's sampling), instead of a whole window.

    The window function is sample_window, the offline scan's; the noise is indexed by frame (frame_noise), so
    consecutive hops draw the same noise for the frames they share and do not jitter from hop to hop. For the
    same audio and key the motion does not depend on how the audio was chunked, and equals sample_online.
    push / push_audio / flush return hops [hop, M] (the last one shorter).
    """

    def __init__(self, params, controls: Controls | None, key, *, hop: int | None = None,
                 lookahead: int | None = None, **options):
        super().__init__(params, controls, key, **options)
        self.hop, self.lookahead = online_settings(self.config, hop, lookahead)

    @property
    def known(self) -> int:
        """Frames of audio a hop needs past the first frame it emits."""
        return self.hop + self.lookahead

    def _run(self, length: int, known: int):
        """Samples the hop at the pending audio's start, emits `length` frames with `known` frames of audio."""
        w = self.config.window
        audio = np.zeros((w, self.config.audio_dim), np.float32)
        audio[:known] = self._pending[:known]
        self._carry, motion = _online_hop(self.params, self.controls, self._carry, jnp.asarray(audio),
                                          jnp.asarray(np.arange(w) < known), self.windows_done, self.key,
                                          config=self.config, steps=self._steps, sampler=self._sampler,
                                          scales=self._scales, hop=self.hop)
        self.windows_done += 1
        self._pending = self._pending[length:]
        return np.asarray(motion)[:length]

    def _take(self, final: bool) -> list[np.ndarray]:
        """Every hop whose look-ahead is in; at the end the rest, hop by hop, with the audio that exists."""
        out = []
        while self._pending.shape[0] >= self.known:
            out.append(self._run(self.hop, self.known))
        while final and self._pending.shape[0]:
            t = self._pending.shape[0]
            out.append(self._run(min(self.hop, t), min(self.known, t)))
        return out


def online_settings(config: MotionConfig, hop: int | None = None, lookahead: int | None = None) -> tuple[int, int]:
    """(hop, lookahead) with None taking ONLINE_HOP / ONLINE_LOOKAHEAD; ValueError unless 1 <= hop, lookahead >= 0
    and hop + lookahead <= the window."""
    hop = ONLINE_HOP if hop is None else hop
    lookahead = ONLINE_LOOKAHEAD if lookahead is None else lookahead
    for name, value in (("hop", hop), ("lookahead", lookahead)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be a whole number of frames; got {value!r}")
    if hop < 1 or lookahead < 0 or hop + lookahead > config.window:
        raise ValueError(f"online hop and lookahead must be hop >= 1, lookahead >= 0, hop + lookahead <= the window "
                         f"({config.window} frames); got hop {hop}, lookahead {lookahead}")
    return int(hop), int(lookahead)
