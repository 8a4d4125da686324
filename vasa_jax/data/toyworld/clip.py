"""Toy-world clips: a person (identity seed) performs a random utterance (clip seed) -> frames, audio, truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from vasa_jax import __version__
from vasa_jax.data.toyworld import performance, speech
from vasa_jax.data.toyworld.identity import sample_identity
from vasa_jax.data.toyworld.render import landmarks, render
from vasa_jax.io import VideoWriter
from vasa_jax.pose import POSE_KEYS

FPS = 25
SAMPLE_RATE = speech.SAMPLE_RATE
_CLIP_STREAM = 0xC1  # separates clip randomness from identity randomness for the same integer seed


# Ground truth per frame; every entry has T rows. Angles in degrees.
TRUTH_DOC = {
    "yaw": "[T] head yaw, + turns the face to the image's right",
    "pitch": "[T] head pitch, + raises the chin",
    "roll": "[T] head roll, + turns the head counter-clockwise in the image",
    "tx": "[T] head centre x in image coordinates [-1, 1], + right",
    "ty": "[T] head centre y in image coordinates [-1, 1], + down",
    "scale": "[T] apparent head size (1 = nominal distance; distance = 1 / scale)",
    "mouth_open": "[T] lip opening in [0, 1] (the jaw drops with it)",
    "mouth_width": "[T] lip shape in [-1, 1]: - rounded, + spread",
    "viseme": "[T] int, index into VISEMES of the phone at the frame's instant",
    "phone": "[T] int, index into PHONES",
    "blink": "[T] eyelid closure in [0, 1] (1 = closed)",
    "gaze": "[T, 2] (theta, phi): eye-in-head gaze, + right / + up",
    "emotion": "[T] in [-1, 1]: sad ... happy (brows and mouth corners)",
    "loudness": "[T] loudness envelope of the speech over the frame's interval (source amplitude, 0 in silence)",
    "f0": "[T] voice pitch in Hz at the frame's instant, 0 where unvoiced",
    "landmarks": "[T, 8, 2] image coordinates of render.LANDMARKS",
}


@dataclasses.dataclass
class Clip:
    frames: np.ndarray  # [T, H, W, 3] uint8
    audio: np.ndarray  # [N] float32 at sample_rate, N = T * sample_rate / fps; sample 0 plays with frame 0
    sample_rate: int
    fps: int
    truth: dict  # see TRUTH_DOC
    identity: int
    seed: int
    parts: np.ndarray | None = None  # [T, H, W] uint8 part ids (render.PARTS) when asked for

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def pose(self) -> np.ndarray:
        """[T, 6] float32 head pose in POSE_KEYS order."""
        return pose_vectors(self.truth)

    def write(self, path: str | Path) -> Path:
        """Writes the clip as mp4 (H.264 + AAC) with provenance metadata, and its truth beside it as
        <stem>.truth.npz. Returns the mp4 path."""
        path = Path(path)
        metadata = {
            "title": f"vasa-jax toy world: identity {self.identity}, seed {self.seed}",
            "comment": f"Synthetic clip from the vasa-jax {__version__} toy world (procedural, not a real person).",
        }
        with VideoWriter(path, fps=self.fps, sample_rate=self.sample_rate, metadata=metadata) as writer:
            writer.write_audio(self.audio)
            writer.write(self.frames)
        np.savez_compressed(path.with_suffix(".truth.npz"), identity=self.identity, seed=self.seed,
                            fps=self.fps, **self.truth)
        return path


def pose_vectors(truth: dict) -> np.ndarray:
    """[T, 6] float32 head pose in POSE_KEYS order from a truth mapping."""
    return np.stack([np.asarray(truth[k], np.float32) for k in POSE_KEYS], axis=-1)


def perform(seed: int, *, identity: int, seconds: float, fps: int = FPS,
            audio: bool = True) -> tuple[np.ndarray | None, dict]:
    """What happens in a clip, without pixels: (audio [N] float32 at 16 kHz, truth without landmarks).

    audio=False skips synthesising the waveform (most of the cost) and returns None for it; the truth is the
    same either way.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    ident = sample_identity(identity)
    num_frames = max(1, int(round(seconds * fps)))
    duration = num_frames / fps
    rngs = np.random.default_rng([_CLIP_STREAM, int(seed)]).spawn(8)
    script = speech.sample_script(rngs[0], duration, ident.speech_rate)
    controls = speech.source_controls(script, rngs[1], duration, voice_pitch=ident.voice_pitch,
                                      formant_scale=ident.formant_scale)
    times = performance.frame_times(num_frames, fps)
    bounds = np.round(np.arange(num_frames + 1) * speech.CONTROL_RATE / fps).astype(np.int64)
    loudness = np.add.reduceat(controls.loudness, bounds[:-1]) / np.diff(bounds)
    f0 = controls.pitch[np.minimum(np.round(times * speech.CONTROL_RATE).astype(np.int64), controls.f0.size - 1)]
    truth = {
        **performance.head_tracks(times, fps, loudness, f0, rngs[2]),
        **performance.mouth_tracks(script, times, rngs[3]),
        "blink": performance.blink_track(times, rngs[4]),
        "gaze": performance.gaze_track(times, fps, rngs[5]),
        "emotion": performance.emotion_track(times, rngs[6]),
        "loudness": loudness.astype(np.float32),
        "f0": f0.astype(np.float32),
    }
    return (speech.synthesize(controls, rngs[7], duration) if audio else None), truth


def make_clip(seed: int, *, identity: int, seconds: float = 4.0, size: int = 128, fps: int = FPS,
              supersample: int = 1, parts: bool = False) -> Clip:
    """A talking-face clip: `identity` (a seed) says a random utterance (`seed`) for `seconds`.

    Deterministic for (seed, identity, seconds, size, fps). Frames are rendered at the centre of each
    frame's interval; the audio covers exactly the frames' duration.
    """
    audio, truth = perform(seed, identity=identity, seconds=seconds, fps=fps)
    ident = sample_identity(identity)
    truth["landmarks"] = landmarks(ident, truth)
    out = render(ident, truth, size, parts=parts, supersample=supersample)
    frames, part_ids = out if parts else (out, None)
    return Clip(frames, audio, SAMPLE_RATE, fps, truth, int(identity), int(seed), part_ids)
