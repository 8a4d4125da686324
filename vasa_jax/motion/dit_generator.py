"""VASA's motion diffusion transformer behind the motion-generator interface (vasa_jax.motion.generator).

It reads audio features from its audio encoder (offline: the whole clip's features, with their whole-clip
statistics; online: the encoder's stream) and samples windows with vasa_jax.motion.sampling.MotionStream.
Controls: gaze (default: at the camera), distance (default: the training data's average), emotion, the
guidance scales of each condition, steps and the DDIM / DDPM sampler.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from vasa_jax.errors import ConfigError
from vasa_jax.motion.config import CONDITIONS, SAMPLERS, MotionConfig
from vasa_jax.motion.generator import DEFAULT
from vasa_jax.motion.sampling import Controls, MotionStream, OnlineMotionStream, online_settings

NAME = "vasa-dit"
AVERAGE = "average"  # the distance control's name for the training data's mean


def numbers(name: str, value, count: int) -> np.ndarray:
    """`value` as `count` finite float32 numbers; ConfigError otherwise."""
    try:
        array = np.asarray(value, np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {count} number(s); got {value!r}") from None
    if array.size != count or not np.all(np.isfinite(array)):
        raise ConfigError(f"{name} must be {count} finite number(s); got {value!r}")
    return array


@dataclasses.dataclass(frozen=True)
class DiTOptions:
    controls: Controls
    cfg: Mapping[str, float] | None
    steps: int
    sampler: str


class DiTGenerator:
    """The motion DiT of a pipeline checkpoint: config, params ({"denoiser", "stats"}) and its audio encoder."""

    name = NAME
    face_model = None  # trained on whichever face model's motion it was exported with

    def __init__(self, config: MotionConfig, params, audio_encoder):
        import jax

        config.require_sizes()
        if audio_encoder.dim != config.audio_dim:
            raise ConfigError(f"the audio encoder gives {audio_encoder.dim}-d features; the motion model was trained "
                              f"on {config.audio_dim}-d")
        self.config, self.audio_encoder = config, audio_encoder
        self.params = jax.device_put(params)
        self.motion_dim, self.window = config.motion_dim, config.window

    @property
    def first_window_seconds(self) -> float:
        return self.config.window / 25 + self.audio_encoder.stream().latency_seconds

    def options(self, *, gaze=DEFAULT, distance=DEFAULT, emotion=None, cfg=None, steps=None,
                sampler=None) -> DiTOptions:
        mc = self.config
        gaze = (0.0, 0.0) if isinstance(gaze, str) and gaze == DEFAULT else gaze
        gaze = None if gaze is None else numbers("gaze (theta, phi degrees)", gaze, 2)
        if isinstance(distance, str):
            if distance not in (DEFAULT, AVERAGE):
                raise ConfigError(f"distance must be a number, {AVERAGE!r} or None; got {distance!r}")
            distance = np.asarray(self.params["stats"]["distance"]["mean"], np.float32).reshape(1)
        elif distance is not None:
            distance = numbers("distance", distance, 1)
            if distance[0] <= 0:
                raise ConfigError(f"distance must be positive (1 / face scale); got {float(distance[0])}")
        emotion = None if emotion is None else numbers("emotion", emotion, mc.emotion_dim)
        if cfg is not None:
            unknown = set(cfg) - set(CONDITIONS)
            if unknown:
                raise ConfigError(f"cfg scales for unknown conditions {sorted(unknown)}; known: {list(CONDITIONS)}")
            cfg = {k: float(numbers(f"cfg[{k!r}]", v, 1)[0]) for k, v in cfg.items()}
        steps = mc.sample_steps if steps is None else steps
        if not isinstance(steps, (int, np.integer)) or not 1 <= steps <= mc.diffusion_steps:
            raise ConfigError(f"steps must be a whole number in [1, {mc.diffusion_steps}]; got {steps!r}")
        sampler = mc.sampler if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
        return DiTOptions(Controls(gaze=None if gaze is None else jnp.asarray(gaze),
                                   distance=None if distance is None else jnp.asarray(distance),
                                   emotion=None if emotion is None else jnp.asarray(emotion)),
                          cfg, int(steps), sampler)

    @property
    def online_steps(self) -> int:
        """Denoising steps of the online mode when none are asked for."""
        return self.config.online_sample_steps

    def online(self, hop: int | None = None, lookahead: int | None = None) -> tuple[int, int]:
        try:
            return online_settings(self.config, hop, lookahead)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def start(self, options: DiTOptions, key, *, online: tuple[int, int] | None = None) -> "DiTRun":
        return DiTRun(self, options, key, online)

    @classmethod
    def from_checkpoint(cls, manifest: dict, folder):
        """From a pipeline checkpoint (its manifest and folder: motion.safetensors, the audio section)."""
        from vasa_jax.data.motion_data import make_config_audio_encoder
        from vasa_jax.io.weights import CheckpointError
        from vasa_jax.pipeline.checkpoint import read_dit

        config, params, audio = read_dit(manifest, folder)
        try:
            encoder = make_config_audio_encoder(audio)
        except ValueError as e:
            raise CheckpointError(folder, f"names an unusable audio encoder ({e})") from None
        return cls(config, params, encoder)


class DiTRun:
    """One generation: a MotionStream (online: an OnlineMotionStream) over the generator's audio features."""

    def __init__(self, generator: DiTGenerator, options: DiTOptions, key, online: tuple[int, int] | None = None):
        self.generator, self._key, self._options, self._online = generator, key, options, online
        self._stream = None

    def _motion_stream(self, audio_stream=None):
        g, o = self.generator, self._options
        common = dict(config=g.config, steps=o.steps, sampler=o.sampler, cfg=o.cfg, audio_stream=audio_stream)
        if self._online is None:
            self._stream = MotionStream(g.params, o.controls, self._key, **common)
        else:
            hop, lookahead = self._online
            self._stream = OnlineMotionStream(g.params, o.controls, self._key, hop=hop, lookahead=lookahead, **common)
        return self._stream

    def _audio_stream(self):
        # Online, features come a frame at a time: a hop must not wait for the rest of a feature group.
        return self.generator.audio_encoder.stream(step_frames=1 if self._online else 2)

    @property
    def windows_done(self) -> int:
        return 0 if self._stream is None else self._stream.windows_done

    def offline(self, waveform):
        """Windows (online: hops) of a whole clip, sampled one at a time as they are asked for (features of the
        whole clip)."""
        features = self.generator.audio_encoder.features(waveform)
        stream, window = self._motion_stream(), self.generator.window
        for start in range(0, features.shape[0], window):
            yield from stream.push(features[start:start + window])
        yield from stream.flush()

    def push_audio(self, samples) -> list[np.ndarray]:
        if self._stream is None:
            self._motion_stream(self._audio_stream())
        return self._stream.push_audio(samples)

    def flush(self) -> list[np.ndarray]:
        if self._stream is None:
            self._motion_stream(self._audio_stream())
        return self._stream.flush()
