"""JoyVASA behind the motion-generator interface (vasa_jax.motion.generator), driving LivePortrait's face model.

Each window JoyVASA samples is de-normalised LivePortrait motion [exp 63 | scale | t 3 | pitch, yaw, roll]; it is
handed on in the layout of LivePortraitFaceModel (yaw, pitch, roll, tx, ty, scale, then exp; tz dropped, as
LivePortrait never uses it). Upstream's clip padding puts two frames before the speech: they are dropped, and the
motion is cut to the audio's length at 25 fps, so the frames line up with the speech as VASA's do.

Controls: the audio guidance scale (cfg={"audio": s}, default upstream's 2.8), the sampler ("ancestral": all
diffusion steps, upstream's procedure; "ddim": `steps`, default 10) and the seed. JoyVASA has no gaze, distance
or emotion condition: asking for one is a ConfigError.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vasa_jax.audio.features import num_frames
from vasa_jax.errors import ConfigError
from vasa_jax.motion.generator import DEFAULT, lacks
from vasa_jax.motion.joyvasa.config import SAMPLES_PER_FRAME
from vasa_jax.motion.joyvasa.sampling import CLIP_PADDING, DEFAULT_CFG_SCALE, SAMPLERS, JoyVasaStream, _options

NAME = "joyvasa"
FACE_MODEL = "liveportrait"
LEAD_FRAMES = CLIP_PADDING[0] // SAMPLES_PER_FRAME  # frames of the leading padding, before the speech


def to_face_layout(motion: np.ndarray) -> np.ndarray:
    """[T, 70] JoyVASA (exp, scale, t, pitch, yaw, roll) -> [T, 69] LivePortraitFaceModel's motion layout."""
    exp, scale, t = motion[:, :63], motion[:, 63:64], motion[:, 64:67]
    pitch, yaw, roll = motion[:, 67:68], motion[:, 68:69], motion[:, 69:70]
    return np.concatenate([yaw, pitch, roll, t[:, :2], scale, exp], axis=1).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class JoyVasaOptions:
    cfg_scale: float
    sampler: str
    steps: int | None


class JoyVasaGenerator:
    """A loaded JoyVASA model (vasa_jax.motion.joyvasa.load_joyvasa) as a pipeline's motion generator."""

    name = NAME
    face_model = FACE_MODEL

    def __init__(self, model, params):
        import jax

        self.model, self.params = model, jax.device_put(params)
        self.window = model.config.n_motions
        self.motion_dim = 6 + 63

    @property
    def first_window_seconds(self) -> float:
        """The first window's speech: n_motions frames less the leading padding the wrapper adds."""
        return (self.window * SAMPLES_PER_FRAME - CLIP_PADDING[0]) / 16000

    def options(self, *, gaze=DEFAULT, distance=DEFAULT, emotion=None, cfg=None, steps=None,
                sampler=None) -> JoyVasaOptions:
        for control, value in (("gaze", gaze), ("distance", distance), ("emotion", emotion)):
            if value is not None and not (isinstance(value, str) and value == DEFAULT):
                raise lacks(NAME, control, " (its only condition is the audio)")
        scale = DEFAULT_CFG_SCALE
        if cfg:
            unknown = sorted(set(cfg) - {"audio"})
            if unknown:
                raise lacks(NAME, f"{unknown[0]} guidance", "; its one guidance scale is cfg['audio']")
            try:
                scale = float(cfg["audio"])
            except (TypeError, ValueError):
                raise ConfigError(f"cfg['audio'] must be a number; got {cfg['audio']!r}") from None
            if not np.isfinite(scale):
                raise ConfigError(f"cfg['audio'] must be finite; got {scale}")
        sampler = "ancestral" if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)} for JoyVASA; got {sampler!r}")
        try:
            steps = _options(self.model, sampler, steps)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return JoyVasaOptions(scale, sampler, steps)

    def online(self, hop=None, lookahead=None):
        raise ConfigError(f"the {NAME} motion model has no online mode: it samples whole {self.window}-frame windows "
                          "whose HuBERT features need the whole window's speech, and was not trained on windows "
                          "with unknown audio; stream it without --online (online=False)")

    def start(self, options: JoyVasaOptions, key, *, online=None) -> "JoyVasaRun":
        if online is not None:
            self.online()
        return JoyVasaRun(self, options, key)

    @classmethod
    def from_checkpoint(cls, manifest: dict, folder):
        """From a pipeline checkpoint whose motion section names the folder of JoyVASA's converted weights."""
        from pathlib import Path

        from vasa_jax.io.weights import CheckpointError
        from vasa_jax.motion.joyvasa import load_joyvasa

        section = manifest["motion"]
        if not isinstance(section.get("folder"), str):
            raise CheckpointError(Path(folder) / "pipeline.json", "its joyvasa motion section names no weights folder")
        model, params = load_joyvasa(Path(folder) / section["folder"])
        return cls(model, params)


class JoyVasaRun:
    """One generation: a JoyVasaStream whose windows are cut to the speech and put in the face's layout."""

    def __init__(self, generator: JoyVasaGenerator, options: JoyVasaOptions, key):
        self._stream = JoyVasaStream(generator.model, generator.params, key, cfg_scale=options.cfg_scale,
                                     sampler=options.sampler, steps=options.steps)
        self._skip = LEAD_FRAMES  # leading frames still to drop
        self._samples = 0
        self._emitted = 0

    @property
    def windows_done(self) -> int:
        return self._stream.windows_done

    def _hand_over(self, windows, final: bool) -> list[np.ndarray]:
        out = []
        for window in windows:
            window = to_face_layout(np.asarray(window))
            drop = min(self._skip, len(window))
            window, self._skip = window[drop:], self._skip - drop
            if final:
                window = window[:max(0, num_frames(self._samples) - self._emitted)]
            if len(window):
                self._emitted += len(window)
                out.append(window)
        return out

    def push_audio(self, samples) -> list[np.ndarray]:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._samples += samples.size
        return self._hand_over(self._stream.push(samples), final=False)

    def flush(self) -> list[np.ndarray]:
        return self._hand_over(self._stream.flush(), final=True)

    def offline(self, waveform):
        """The windows of a whole clip, sampled one at a time as they are asked for (the same motion as
        upstream's whole-clip sampling: the stream equals it for any chunking)."""
        waveform = np.asarray(waveform, np.float32).reshape(-1)
        step = self._stream.model.config.n_motions * SAMPLES_PER_FRAME
        for start in range(0, waveform.size, step):
            yield from self.push_audio(waveform[start:start + step])
        yield from self.flush()
