"""End-to-end generation (VASA-1's inference): one portrait and speech in, a talking-face video out.

    pipeline = vasa_jax.load_pipeline()                           # the bundled demo, or load_pipeline("DIR")
    video = pipeline.generate("portrait.png", "speech.wav")       # Video: frames [T, H, W, 3] uint8, 25 fps
    pipeline.write("out.mp4", "portrait.png", "speech.wav")       # long audio: frames are written as made
    for frames in pipeline.stream("portrait.png", chunks): ...    # online: frames as the audio arrives

How a video is made. The portrait is framed as the face model's training frames were (its framer) and encoded
once into its two latents. The motion generator (vasa_jax.motion.generator: VASA's DiT or JoyVASA) turns the
speech into motion window by window, each window conditioned on the previous one's tail; each window is
decoded as soon as it is sampled, in fixed-size batches, and handed on. So at most one window of frames is in
flight whatever the audio's length, and one compiled program of each kind serves every length. The pipeline
knows the two models only through their interfaces; pipeline.json names them.

Controls (keyword arguments of generate / write / stream). The first five belong to the motion model, which
checks them (vasa_jax.motion.generator): a control it lacks is a ConfigError, never ignored.
    gaze=(theta, phi)   main eye-gaze direction in degrees; default: the model's (VASA's DiT: (0, 0) = at the
                        camera, VASA-1's default); None = unconditional
    distance=d          head distance (1 / face scale); default: the model's (VASA's DiT: "average" = the
                        training data's mean); None = unconditional
    emotion=e           emotion offset (a number, or emotion_dim numbers); default None = unconditional
    cfg={"audio": 0.5, "gaze": 1.0}   classifier-free guidance scales (merged over the model's defaults)
    steps, sampler      denoising steps and sampler (VASA's DiT: "ddim" / "ddpm", 50 / ddim at VASA scale;
                        JoyVASA: "ancestral", all its steps, upstream's / "ddim", 10 steps)
    seed                the generation's random seed (same seed, same audio: same video)
    crop                True: find the face and crop it as training frames were; False: the image's centred
                        square, for images that are already framed
    size                output side in pixels (default: the model's resolution); frames are resized
    pasteback           True (default): where the face model's framing allows it (LivePortrait), the animated
                        crop is put back into the whole photo at the photo's resolution (capped, even sides),
                        and size does not apply; False: the square crop
    pose_offset         (yaw, pitch, roll) degrees added to every frame's head pose (after pose_from), with any
                        face and motion model: turn or tilt the head
    eye_ratio, lip_ratio   target eye / lip open ratios (0 closed, about 0.8 wide open), where the face model
                        has such edits (LivePortrait's retargeting MLPs), with any motion model: the portrait's
                        eyes or lips set more open or closed for the whole video (face.edit_source); None = as is
    pose_from           a video or motion file (or a pose array [L, >= 6], e.g. from Pipeline.pose_track) whose
                        head pose replaces the generated one while lips and expression follow the audio
                        (pose.py: shorter sources play back and forth)
    save_motion         a .npz / .npy path for the motion as rendered [T, M] (z_pose then z_dyn)
    online, hop, lookahead   online=True: VASA-1's online mode (the motion generator's): every `hop` frames a
                        window is sampled with the audio known `lookahead` frames past the hop, and `hop` frames are
                        rendered, so a live stream's frame waits for hop + lookahead frames of speech, not a window;
                        None: the generator's measured defaults. Also offline (generate / write), to see what a
                        live stream would show. steps then defaults to the generator's online steps (fewer). A
                        generator without an online mode is a ConfigError.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax import __version__
from vasa_jax.audio.features import FPS, SAMPLES_PER_FRAME, as_waveform, num_frames
from vasa_jax.errors import ConfigError
from vasa_jax.io import SAMPLE_RATE, MediaError, VideoWriter
from vasa_jax.io.errors import check_readable_file
from vasa_jax.io.weights import CheckpointError
from vasa_jax.motion.config import MotionConfig
from vasa_jax.motion.generator import DEFAULT
from vasa_jax.pipeline.checkpoint import bundled_demo_dir, read_pipeline_checkpoint
from vasa_jax.pipeline.live import PacedAudio
from vasa_jax.pipeline.portrait import Portrait
from vasa_jax.pipeline.pose import check_motion_path, load_pose_source, pose_indices, save_motion, video_motion
from vasa_jax.provenance import ProvenanceMarker

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
MAX_SIZE = 4096  # output side, pixels


def provenance_metadata() -> dict[str, str]:
    """Container metadata that marks a video as AI-generated by vasa-jax (every video the pipeline writes)."""
    return {"title": f"AI-generated talking face (vasa-jax {__version__})",
            "comment": f"AI-generated by vasa-jax {__version__} (a VASA-1 reimplementation) from a single portrait "
                       "and a speech clip. Not a real recording."}


@dataclasses.dataclass
class Video:
    """A generated video held in memory (for long audio, Pipeline.write keeps memory bounded instead)."""

    frames: np.ndarray  # [T, H, W, 3] uint8
    fps: int
    audio: np.ndarray  # [N] float32 at sample_rate, sample 0 plays with frame 0
    sample_rate: int
    motion: np.ndarray  # [T, M] float32, z_pose then z_dyn, as rendered
    portrait: Portrait

    def write(self, path, *, overwrite: bool = False, watermark: bool = True) -> Path:
        """Writes an mp4 (H.264 + AAC) with provenance metadata, the invisible watermark in the frames and a
        signed C2PA manifest (vasa_jax.provenance); watermark=False (research use): neither of the two."""
        path = check_output(path, overwrite=overwrite)
        marker = ProvenanceMarker(path, enabled=watermark)
        with VideoWriter(path, fps=self.fps, sample_rate=self.sample_rate, metadata=provenance_metadata(),
                         finish=marker.finish) as w:
            w.write_audio(self.audio)
            w.write(marker.frames(self.frames))
        return path


@dataclasses.dataclass
class WriteReport:
    """What Pipeline.write did."""

    path: Path
    num_frames: int
    seconds: float  # wall time of the whole generation, writing included
    motion: np.ndarray  # [T, M] as rendered
    portrait: Portrait
    first_frame_latency: float | None = None  # streaming: seconds from the first audio chunk to the first frame
    live: object | None = None  # live=True: the LiveReport (vasa_jax.pipeline.live): every frame's latency

    @property
    def fps(self) -> float:
        """Frames generated (and written) per second of wall time."""
        return self.num_frames / self.seconds if self.seconds > 0 else math.inf


def check_output(path, *, overwrite: bool = False) -> Path:
    """An output video path, checked before any work: a known extension, not an existing file unless
    `overwrite`, its folder created if missing and writable. MediaError naming the path otherwise."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise MediaError(path, f"output must be a video file ending in one of {', '.join(VIDEO_SUFFIXES)}")
    if path.is_dir():
        raise MediaError(path, "is a folder; give a file name for the video")
    if path.exists() and not overwrite:
        raise MediaError(path, "already exists; choose another name or pass --overwrite (overwrite=True)")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".vasa-jax-write-test.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise MediaError(path, f"cannot be written: the folder {folder} cannot be created or written to "
                               f"({e.strerror or e})") from None
    return path


def load_speech(audio) -> np.ndarray:
    """Mono float32 [N] at 16 kHz from a path or a 16 kHz array; MediaError if unusable or shorter than one frame."""
    source = os.fspath(audio) if isinstance(audio, (str, os.PathLike)) else None
    waveform = as_waveform(audio)
    if waveform.size < SAMPLES_PER_FRAME:
        raise MediaError(source, f"audio is {1000 * waveform.size / SAMPLE_RATE:.0f} ms long; a video needs at "
                                 f"least one frame ({1000 // FPS} ms) of audio")
    return waveform


def fresh_path(path) -> Path:
    """`path` if nothing is there yet, else the first free `stem-1.ext`, `stem-2.ext`, ..."""
    path = Path(path)
    n = 0
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


@dataclasses.dataclass(frozen=True)
class Settings:
    """One generation's options, checked and resolved (Pipeline.settings)."""

    motion: object  # the motion generator's own options (controls, guidance, steps, sampler), checked by it
    seed: int
    crop: bool
    size: int
    pasteback: bool  # frames put back into the whole photo where the face model's framing allows it
    pose_offset: np.ndarray | None  # degrees [3] added to every frame's yaw, pitch, roll
    pose_from: str | np.ndarray | None  # a file, or z_pose [L, face.pose_dim]
    save_motion: Path | None
    edits: tuple[tuple[str, float], ...] = ()  # the face model's portrait edits, (name, value)
    online: tuple[int, int] | None = None  # (hop, lookahead) frames of the online mode


class Generation:
    """A generation under way: iterate for frame batches uint8 [n, H, W, 3] (in order, as they are made).

    num_frames and audio are known from the start when the audio is (offline); motion holds the motion of
    the frames made so far [t, M]; windows_sampled counts motion windows sampled. The motion file
    (save_motion) is written when the iteration ends.
    """

    def __init__(self, pipeline: "Pipeline", portrait: Portrait, latents, settings: Settings, windows: Iterator,
                 pose: np.ndarray | None, *, num_frames: int | None, audio: np.ndarray | None):
        self.portrait, self.settings = portrait, settings
        self.num_frames, self.audio = num_frames, audio
        self.windows_sampled = 0
        self._pipeline, self._latents, self._windows, self._pose = pipeline, latents, windows, pose
        self._motion: list[np.ndarray] = []
        self._frames_done = 0
        self._iterator = self._run()

    @property
    def motion(self) -> np.ndarray:
        m = self._pipeline.generator.motion_dim
        return np.concatenate(self._motion) if self._motion else np.zeros((0, m), np.float32)

    def __iter__(self):
        return self._iterator

    def __next__(self):
        return next(self._iterator)

    def _run(self):
        pipeline, size = self._pipeline, self.settings.size
        paste = self.portrait.paste if self.settings.pasteback else None
        if paste is not None:
            size = pipeline.face.output_size  # the crop goes back into the photo at the photo's resolution
        for window in self._windows:
            self.windows_sampled += 1
            window = np.array(window, np.float32)
            if self._pose is not None:
                rows = pose_indices(self._frames_done, len(window), len(self._pose))
                window[:, :pipeline.face.pose_dim] = self._pose[rows]
            if self.settings.pose_offset is not None:
                window[:, :3] += self.settings.pose_offset  # yaw, pitch, roll lead z_pose (vasa_jax.pose.POSE_KEYS)
            self._motion.append(window)
            self._frames_done += len(window)
            # Every batch of the window is dispatched before the first is read back: the device works on the
            # next batches while the host copies (and the caller encodes) the first. Online, a hop is one batch.
            batch = pipeline.render_batch(self.settings)
            pending = [pipeline._render_batch(self._latents, window[i:i + batch], size, batch)
                       for i in range(0, len(window), batch)]
            for frames, count in pending:
                yield np.asarray(frames if paste is None else paste(frames))[:count]
        if self._frames_done == 0:
            raise MediaError(None, "the audio stream ended before one frame's worth (40 ms) of audio arrived")
        if self.settings.save_motion is not None:
            save_motion(self.settings.save_motion, self.motion)


# Compiled per face model (hashable, equal when they compute the same), not per Pipeline: pipelines of one
# model share their programs.
@functools.partial(jax.jit, static_argnames=("face",))
def _encode_source(params, image, *, face):
    return face.encode_source(params, image)


@functools.partial(jax.jit, static_argnames=("face",))
def _encode_poses(params, images, *, face):
    return face.encode_motion(params, images)[:, :face.pose_dim]


@functools.partial(jax.jit, static_argnames=("face",))
def _encode_motion(params, images, *, face):
    return face.encode_motion(params, images)


@functools.partial(jax.jit, static_argnames=("face",))
def _relative_motion(source, reference, driving, *, face):
    return face.relative_motion(source, reference, driving)


@functools.partial(jax.jit, static_argnames=("face", "size"))
def _render(params, appearance, identity, motion, *, face, size: int):
    """uint8 frames [B, size, size, 3] of the portrait (latents: batch 1) driven by motion [B, M]."""
    b = motion.shape[0]
    appearance, identity = jax.tree.map(lambda x: jnp.broadcast_to(x, (b,) + x.shape[1:]), (appearance, identity))
    images = face.decode(params, appearance, identity, motion)
    if size != images.shape[1]:
        images = jax.image.resize(images, (b, size, size, 3), "cubic", antialias=True)
    return jnp.clip(jnp.round(images * 255.0), 0, 255).astype(jnp.uint8)


class Pipeline:
    """A face model, a motion generator and an audio encoder that together make talking-face video.

    decode_batch: frames decoded per compiled call (rounded so that a motion window splits into equal batches).
    """

    fps = FPS
    sample_rate = SAMPLE_RATE

    def __init__(self, face, face_params, generator, *, decode_batch: int = 16, name: str | None = None):
        if generator.motion_dim != face.motion_dim or generator.face_model not in (None, face.name):
            raise ConfigError(f"the {generator.name} motion model makes {generator.motion_dim}-d motion"
                              + (f" for the {generator.face_model} face model" if generator.face_model else "")
                              + f"; the {face.name} face model reads {face.motion_dim}-d")
        self.face, self.generator, self.name = face, generator, name
        self.image_size = face.output_size
        self.face_params = jax.device_put(face_params)
        window = generator.window
        self.decode_batch = -(-window // -(-window // max(1, int(decode_batch))))
        self.framer = face.framer()

    @classmethod
    def from_checkpoint(cls, path, **options) -> "Pipeline":
        """A pipeline from a checkpoint folder (vasa_jax.pipeline.checkpoint)."""
        ckpt = read_pipeline_checkpoint(path)
        return cls(ckpt.face, ckpt.face_params, ckpt.generator, name=str(ckpt.path), **options)

    # The VASA motion DiT's parts, for the benchmark and the notebook (other motion models have none of these).
    @property
    def motion_config(self) -> MotionConfig:
        return self._dit().config

    @property
    def motion_params(self):
        return self._dit().params

    @property
    def audio_encoder(self):
        return self._dit().audio_encoder

    def _dit(self):
        if not hasattr(self.generator, "audio_encoder"):
            raise ConfigError(f"{self.name}: its motion model ({self.generator.name}) is not VASA's motion DiT")
        return self.generator

    # ---- options ---------------------------------------------------------------------------------------------

    def settings(self, *, gaze=DEFAULT, distance=DEFAULT, emotion=None, cfg: Mapping[str, float] | None = None,
                 steps: int | None = None, sampler: str | None = None, seed: int = 0, crop: bool = True,
                 size: int | None = None, pasteback: bool = True, pose_offset=None, pose_from=None,
                 save_motion=None, eye_ratio=None, lip_ratio=None, online: bool = False, hop: int | None = None,
                 lookahead: int | None = None) -> Settings:
        """Checks and resolves generation options (module docstring); ConfigError for a value that cannot work,
        or for a control the motion model lacks."""
        if not online and (hop is not None or lookahead is not None):
            raise ConfigError("hop and lookahead set the online mode; pass online=True (--online) with them")
        online = self.generator.online(hop, lookahead) if online else None
        if online is not None and steps is None:
            steps = self.generator.online_steps
        motion = self.generator.options(gaze=gaze, distance=distance, emotion=emotion, cfg=cfg, steps=steps,
                                        sampler=sampler)
        if not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed must be a whole number; got {seed!r}")
        size = self.image_size if size is None else size
        if not isinstance(size, (int, np.integer)) or not 16 <= size <= MAX_SIZE or size % 2:
            raise ConfigError(f"size must be an even number of pixels in [16, {MAX_SIZE}] (H.264 needs even sides); "
                              f"got {size!r}")
        if pose_offset is not None:
            wrong = f"pose_offset must be 3 finite numbers (yaw, pitch, roll degrees); got {pose_offset!r}"
            try:
                pose_offset = np.asarray(pose_offset, np.float32).reshape(-1)
            except (TypeError, ValueError):
                raise ConfigError(wrong) from None
            if pose_offset.size != 3 or not np.all(np.isfinite(pose_offset)):
                raise ConfigError(wrong)
        if save_motion is not None:
            save_motion = check_motion_path(save_motion)
        if isinstance(pose_from, (str, os.PathLike)):
            check_readable_file(pose_from)
            pose_from = os.fspath(pose_from)
        elif pose_from is not None:
            pose_from = np.asarray(pose_from, np.float32)
            pose_dim = self.face.pose_dim
            if pose_from.ndim != 2 or pose_from.shape[0] < 1 or pose_from.shape[1] < pose_dim:
                raise ConfigError(f"pose_from as an array must be [L, >= {pose_dim}] (z_pose first); got "
                                  f"{pose_from.shape}")
            if not np.all(np.isfinite(pose_from[:, :pose_dim])):
                raise ConfigError("pose_from holds NaN or infinite values")
            pose_from = pose_from[:, :pose_dim]
        edits = self._check_edits({"eye_ratio": eye_ratio, "lip_ratio": lip_ratio})
        return Settings(motion, int(seed), bool(crop), int(size), bool(pasteback), pose_offset, pose_from,
                        save_motion, edits, online)

    def _check_edits(self, requested: Mapping) -> tuple[tuple[str, float], ...]:
        """The portrait edits asked for (not None), checked: a number in [0, 1] the face model can apply."""
        edits = []
        for name, value in requested.items():
            if value is None:
                continue
            if name not in self.face.edits:
                raise ConfigError(f"{name} is an edit the {self.face.name} face model does not have (it has: "
                                  f"{', '.join(self.face.edits) or 'none'}); LivePortrait's face model has it")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name} must be a number in [0, 1] (0 closed, about 0.8 wide open); got {value!r}")
            edits.append((name, float(value)))
        return tuple(edits)

    # ---- the parts ---------------------------------------------------------------------------------------------

    def portrait(self, image, *, crop: bool = True) -> Portrait:
        """The portrait framed for the model (portrait.Framer): a path, an array or a Portrait."""
        return self.framer.portrait(image, crop=crop)

    def load_audio(self, audio) -> np.ndarray:
        """Mono float32 [N] at 16 kHz (load_speech)."""
        return load_speech(audio)

    def pose_track(self, pose_from, *, crop: bool = True) -> np.ndarray:
        """z_pose [L, face.pose_dim] of a pose source (pose.py)."""
        return load_pose_source(pose_from, self.framer,
                                lambda x: _encode_poses(self.face_params, x, face=self.face),
                                crop=crop, batch=self.decode_batch)

    def drive_track(self, video, *, crop: bool = True) -> np.ndarray:
        """The face model's motion [T, M] of a driving video's frames at 25 fps (pose.video_motion)."""
        check_readable_file(video)
        return video_motion(video, self.framer, lambda x: _encode_motion(self.face_params, x, face=self.face),
                            crop=crop, batch=self.decode_batch)

    def _begin(self, image, settings: Settings):
        portrait = self.portrait(image, crop=settings.crop)
        if portrait.faces > 1 and not isinstance(image, Portrait):
            warnings.warn(f"{portrait.source or 'the image'}: {portrait.faces} faces found; animating the largest",
                          stacklevel=3)
        latents = self._encode(portrait.image)
        if settings.edits:
            latents = self._edit(portrait, latents, dict(settings.edits))
        pose = settings.pose_from
        if isinstance(pose, str):
            pose = self.pose_track(pose, crop=settings.crop)
        return portrait, latents, pose

    def _encode(self, image: np.ndarray):
        """(V_app, z_id) of a framed uint8 [S, S, 3] portrait."""
        return _encode_source(self.face_params, jnp.asarray(image[None], jnp.float32) / 255.0, face=self.face)

    def _edit(self, portrait: Portrait, latents, edits: dict):
        """Latents with the face model's portrait edits applied, from the face's landmarks (found on the framed
        image where the portrait came without them, e.g. crop=False)."""
        landmarks = portrait.landmarks
        if landmarks is None:
            landmarks, _ = self.framer.face_landmarks(portrait.image, portrait.source)
        appearance, identity = latents
        return appearance, self.face.edit_source(self.face_params, identity, landmarks, **edits)

    def _motion_stream(self, settings: Settings):
        """The motion generator's run for one generation (offline windows or pushed audio; online: hops)."""
        return self.generator.start(settings.motion, jax.random.key(settings.seed), online=settings.online)

    def render_batch(self, settings: Settings) -> int:
        """Frames decoded per compiled call: decode_batch, or online the hop (a hop is rendered as it comes)."""
        return self.decode_batch if settings.online is None else settings.online[0]

    def _render_batch(self, latents, motion: np.ndarray, size: int, batch: int | None = None):
        """(frames [batch, size, size, 3] on the device, how many are real) for motion [n <= batch, M]."""
        n, batch = motion.shape[0], batch or self.decode_batch
        padded = np.concatenate([motion, np.repeat(motion[-1:], batch - n, axis=0)])
        return _render(self.face_params, *latents, jnp.asarray(padded), face=self.face, size=size), n

    # ---- generation --------------------------------------------------------------------------------------------

    def start(self, image, audio, **options) -> Generation:
        """An offline generation to iterate over (frame batches as they are made): memory stays bounded."""
        return self._start(image, self.load_audio(audio), self.settings(**options))

    def _start(self, image, waveform: np.ndarray, settings: Settings) -> Generation:
        portrait, latents, pose = self._begin(image, settings)
        windows = self._motion_stream(settings).offline(waveform)
        return Generation(self, portrait, latents, settings, windows, pose, num_frames=num_frames(waveform.size),
                          audio=waveform)

    def drive(self, image, video, **options) -> Generation:
        """Video-driven reenactment (LivePortrait's own task): the portrait moves as the driving video's face
        moves from its first frame (the face model's relative_motion: its expression and pose changes applied
        to the portrait's own), no motion generator involved. The generation's audio is the video's (silence
        if it has none)."""
        return self._drive(image, video, self.settings(**options))

    def _drive(self, image, video, settings: Settings) -> Generation:
        portrait, latents, pose = self._begin(image, settings)
        driving = self.drive_track(video, crop=settings.crop)
        source = _encode_motion(self.face_params, jnp.asarray(portrait.image[None], jnp.float32) / 255.0,
                                face=self.face)
        motion = np.asarray(_relative_motion(source, driving[:1], driving, face=self.face))
        try:
            waveform = load_speech(video)
        except MediaError:  # a driving video without sound drives the face all the same
            waveform = np.zeros(len(motion) * SAMPLES_PER_FRAME, np.float32)
        window = self.generator.window
        windows = (motion[i:i + window] for i in range(0, len(motion), window))
        return Generation(self, portrait, latents, settings, windows, pose, num_frames=len(motion), audio=waveform)

    def generate(self, image, audio, **options) -> Video:
        """The whole video in memory (frames [T, H, W, 3] uint8, T = the audio's frames at 25 fps)."""
        generation = self.start(image, audio, **options)
        frames = np.concatenate(list(generation))
        return Video(frames, FPS, generation.audio, SAMPLE_RATE, generation.motion, generation.portrait)

    def stream(self, image, audio_chunks: Iterable, **options) -> Generation:
        """Streaming generation: audio_chunks yields mono float32 16 kHz sample arrays as a live source delivers
        them; iterating gives frame batches uint8 [n, H, W, 3] as soon as each motion window's audio is in
        (a window of W frames, plus the audio encoder's look-ahead), or with online=True each hop's (hop +
        lookahead frames: the module docstring). The portrait is encoded before the first chunk is read."""
        return self._stream(image, audio_chunks, self.settings(**options))

    def _stream(self, image, audio_chunks: Iterable, settings: Settings) -> Generation:
        portrait, latents, pose = self._begin(image, settings)
        stream = self._motion_stream(settings)

        def windows():
            for chunk in audio_chunks:
                chunk = np.asarray(chunk, np.float32)
                if chunk.ndim != 1:
                    raise MediaError(None, f"an audio chunk must be mono 16 kHz samples [n]; got shape {chunk.shape}")
                yield from stream.push_audio(chunk)
            yield from stream.flush()

        return Generation(self, portrait, latents, settings, windows(), pose, num_frames=None, audio=None)

    def warm_up(self, *, stream: bool = False, **options) -> float:
        """Compiles what a generation with these options runs (one window of silence; stream: the audio
        encoder's stream too), so that timings and the first frame of a stream do not include compilation;
        returns the seconds it took."""
        started = time.perf_counter()
        settings = self.settings(**{k: v for k, v in options.items() if k not in ("pose_from", "save_motion")})
        latents = self._encode(np.zeros((self.face.image_size, self.face.image_size, 3), np.uint8))
        silence = np.zeros(self.generator.window * SAMPLES_PER_FRAME, np.float32)
        window = next(iter(self._motion_stream(settings).offline(silence)))
        if stream:
            run = self._motion_stream(settings)
            run.push_audio(silence)
            run.flush()
        batch = self.render_batch(settings)
        frames, _ = self._render_batch(latents, window[:batch], settings.size, batch)
        np.asarray(frames)
        return time.perf_counter() - started

    def write(self, path, image, audio, *, overwrite: bool = False, progress: bool = False,
              stream_chunk_seconds: float | None = None, live: bool = False, drive=None, watermark: bool = True,
              **options) -> WriteReport:
        """Generates and writes an mp4 (H.264 + AAC, provenance metadata), frames written as they are made, each
        batch watermarked on its way and the finished file signed with a C2PA manifest (vasa_jax.provenance;
        watermark=False, for research use: neither of the two).

        stream_chunk_seconds: None = offline; a number = streaming, the audio delivered to stream() in chunks of
        that length as fast as it is taken (the report then gives the first-frame latency: from the first
        chunk to the first frame ready, compute only). live: the chunks handed over at the pace of speech, as a
        live source would (vasa_jax.pipeline.live; the report's `live` gives every frame's latency from its
        speech arriving). progress: a tqdm bar on stderr. drive: a driving video
        (Pipeline.drive) instead of the motion generator; audio None then takes the video's sound.
        """
        from tqdm import tqdm

        path = check_output(path, overwrite=overwrite)
        settings = self.settings(**options)
        if live and stream_chunk_seconds is None:
            stream_chunk_seconds = 0.02  # a microphone's typical buffer
        marker = ProvenanceMarker(path, enabled=watermark)
        started = time.perf_counter()
        streaming = drive is None and stream_chunk_seconds is not None
        if drive is not None:
            generation = self._drive(image, drive, settings)
            waveform = generation.audio if audio is None else self.load_audio(audio)
            total = generation.num_frames
        else:
            waveform = self.load_audio(audio)
            total = num_frames(waveform.size)
        chunks = None
        if streaming:  # the audio goes into the file as the stream takes it
            chunks = PacedAudio(waveform, stream_chunk_seconds, paced=live, on_chunk=lambda c: writer.write_audio(c))
            generation = self._stream(image, chunks, settings)
        elif drive is None:
            generation = self._start(image, waveform, settings)
        ready = []
        with VideoWriter(path, fps=FPS, sample_rate=SAMPLE_RATE, metadata=provenance_metadata(),
                         finish=marker.finish) as writer, \
                tqdm(total=total, unit="frame", desc="generating", disable=not progress, leave=False) as bar:
            if not streaming:
                writer.write_audio(waveform)
            for frames in generation:
                ready.extend([time.perf_counter()] * len(frames))
                writer.write(marker.frames(frames))
                bar.update(len(frames))
        latency = ready[0] - chunks.start if streaming and ready else None
        return WriteReport(path, writer.num_frames, time.perf_counter() - started, generation.motion,
                           generation.portrait, latency,
                           chunks.report(ready, ready[-1] if ready else started) if live and streaming else None)


def load_pipeline(checkpoint=None, **options) -> Pipeline:
    """The generation pipeline of a checkpoint folder (python -m vasa_jax.pipeline.export makes one); None = the
    demo model bundled with vasa-jax. CheckpointError naming the folder or file if it cannot be used."""
    if checkpoint is None:
        checkpoint = bundled_demo_dir()
        if not (checkpoint / "pipeline.json").is_file():
            raise CheckpointError(checkpoint, "the bundled demo model is not in this installation; pass a pipeline "
                                              "checkpoint folder (python -m vasa_jax.pipeline.export makes one)")
    return Pipeline.from_checkpoint(checkpoint, **options)
