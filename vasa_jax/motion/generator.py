"""Motion generators behind one interface, and the table from the name a pipeline checkpoint records to the
implementation (the twin of vasa_jax.face.registry for the face models).

    options = generator.options(gaze=DEFAULT, distance=DEFAULT, emotion=None, cfg=None, steps=None, sampler=None)
    run = generator.start(options, key)                # one generation's sampler state
    for window in run.offline(waveform): ...           # motion [n, motion_dim] in the face model's layout
    for window in run.push_audio(chunk): ...           # or online: chunks of 16 kHz samples as they arrive,
    for window in run.flush(): ...                     # then the rest when the audio ends
    run = generator.start(options, key, online=generator.online(hop, lookahead))   # online mode (hops)

Every window a run hands over is motion the face model reads (z_pose then z_dyn in its layout); the windows of
one generation, concatenated, are as long as the audio at 25 fps. Online mode (VASA-1's): every `hop` frames a
window is sampled with the audio known only `lookahead` frames past the hop, and `hop` frames are handed over;
a generator that cannot run it says so from online(). A control the generator lacks is a
ConfigError naming the generator and the control, never silently ignored; DEFAULT leaves a control to the
generator (VASA's DiT: gaze at the camera and the average distance; JoyVASA has neither condition).
"""

from __future__ import annotations

import importlib
from typing import Protocol

from vasa_jax.errors import ConfigError

DEFAULT = "default"  # a control left to the generator's own default

MOTION_MODELS = {
    "vasa-dit": "vasa_jax.motion.dit_generator:DiTGenerator",
    "joyvasa": "vasa_jax.motion.joyvasa.generator:JoyVasaGenerator",
}


class MotionRun(Protocol):
    """One generation's sampling state."""

    windows_done: int

    def offline(self, waveform): ...  # iterator of windows for a whole clip

    def push_audio(self, samples) -> list: ...

    def flush(self) -> list: ...


class MotionGenerator(Protocol):
    name: str  # the table's name for the implementation
    motion_dim: int
    window: int  # frames in a full window (decode batches split it evenly)
    face_model: str | None  # the face model whose motion it makes, where it is tied to one (its name)
    first_window_seconds: float  # audio a live source must deliver before the first window can be sampled

    def options(self, *, gaze, distance, emotion, cfg, steps, sampler): ...  # checked, hashable

    # (hop, lookahead) frames checked, None taking the generator's measured defaults; ConfigError if it has no
    # online mode or the values cannot work.
    def online(self, hop: int | None, lookahead: int | None) -> tuple[int, int]: ...

    online_steps: int  # the online mode's denoising steps when none are asked for (where it has one)

    def start(self, options, key, *, online: tuple[int, int] | None = None) -> MotionRun: ...


def lacks(generator: str, control: str, hint: str = "") -> ConfigError:
    """The error for a control a generator does not have."""
    return ConfigError(f"the {generator} motion model has no {control} control{hint}")


def load_generator(manifest: dict, folder):
    """The generator a pipeline checkpoint's manifest describes (its "motion" section; weights under `folder`);
    ConfigError for an unknown implementation, CheckpointError for unusable weights. A section without an
    implementation name (written before this table existed) is VASA's DiT."""
    name = manifest["motion"].get("implementation", "vasa-dit")
    if name not in MOTION_MODELS:
        raise ConfigError(f"unknown motion model {name!r}; this vasa-jax knows {sorted(MOTION_MODELS)}")
    module, _, cls = MOTION_MODELS[name].partition(":")
    return getattr(importlib.import_module(module), cls).from_checkpoint(manifest, folder)
