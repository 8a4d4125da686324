"""Video reading (frames and audio track of mp4 / mkv / avi / webm / mov) and mp4 writing (H.264 + AAC)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import numpy as np

from vasa_jax.io.audio import SAMPLE_RATE, decode_audio_stream, resample
from vasa_jax.io.errors import MediaError, check_readable_file


@dataclasses.dataclass
class VideoData:
    frames: np.ndarray  # [T, H, W, 3] uint8
    times: np.ndarray  # [T] float64 seconds from the first frame (variable frame rate shows here)
    fps: float  # the stream's average rate
    audio: np.ndarray | None  # mono float32 [N] at sample_rate, sample 0 at frame 0; None if no audio track
    sample_rate: int


@dataclasses.dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    num_frames: int  # from the container header; 0 where the container does not say
    duration: float  # seconds
    has_audio: bool
    metadata: dict


def probe_video(path) -> VideoInfo:
    """Reads the header only."""
    with _open_video(path) as (container, stream):
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=_stream_fps(path, stream),
            num_frames=int(stream.frames or 0),
            duration=duration,
            has_audio=bool(container.streams.audio),
            metadata=dict(container.metadata),
        )


def iter_video_frames(path) -> Iterator[tuple[float, np.ndarray]]:
    """Yields (seconds from the first frame, RGB uint8 [H, W, 3]) one frame at a time: memory stays flat."""
    with _open_video(path) as (container, stream):
        start = None
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else 0.0
                start = t if start is None else start
                yield t - start, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise MediaError(path, f"video stream cannot be decoded ({e})") from None
        if start is None:
            raise MediaError(path, "contains no decodable video frames")


def read_video(path, *, with_audio: bool = True, sample_rate: int = SAMPLE_RATE) -> VideoData:
    """Reads a whole video into memory: frames, their times, and the audio track aligned to frame 0."""
    times, frames = [], []
    for t, frame in iter_video_frames(path):
        times.append(t)
        frames.append(frame)
    with _open_video(path) as (_, stream):
        fps = _stream_fps(path, stream)
    audio = read_video_audio(path, sample_rate=sample_rate) if with_audio else None
    return VideoData(np.stack(frames), np.asarray(times), fps, audio, sample_rate)


def read_video_audio(path, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """A video's audio track as mono float32 [N] at `sample_rate`, sample 0 playing with the first frame (the
    alignment read_video gives, without decoding the frames); None if the video has no audio track."""
    with _open_video(path) as (container, stream):
        first_frame_time = _first_frame_time(container, stream)
    return _read_aligned_audio(path, first_frame_time, sample_rate)


class VideoWriter:
    """Writes an mp4 (H.264 yuv420p + AAC) frame batch by frame batch, so memory stays bounded.

    Audio may arrive all at once or in chunks; sample 0 plays with frame 0, and on close the audio is
    trimmed or padded with silence to exactly the frames' duration. `metadata` goes into the container
    (title, comment, ...). The file appears at `path` only when close() succeeds: a failed write leaves
    neither a partial file nor a clobbered earlier one. `finish(temporary_path)`, if given, runs on the complete
    file just before it is moved to `path` (vasa_jax.provenance signs it there); if it raises, nothing appears.

        with VideoWriter("out.mp4", fps=25, metadata={"comment": "..."}) as w:
            w.write_audio(waveform)
            w.write(frames)  # [N, H, W, 3] or [H, W, 3] uint8
    """

    _FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}

    def __init__(self, path, *, fps: float, with_audio: bool = True, sample_rate: int = SAMPLE_RATE,
                 metadata: dict | None = None, crf: int = 18, preset: str = "fast",
                 finish: Callable[[Path], None] | None = None):
        self.path = Path(path)
        self._finish = finish
        if self.path.suffix.lower() not in self._FORMATS:
            raise MediaError(self.path, f"cannot write this format; use one of {sorted(self._FORMATS)}")
        if self.path.parent and not self.path.parent.is_dir():
            raise MediaError(self.path, f"output folder {self.path.parent} does not exist")
        self.fps = Fraction(fps).limit_denominator(1001)
        self.sample_rate = sample_rate
        self.with_audio = with_audio
        self.num_frames = 0
        self._audio_sent = 0
        self._pending_audio = np.zeros(0, np.float32)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".partial", dir=self.path.parent)
        os.close(fd)
        self._container = av.open(self._tmp, "w", format=self._FORMATS[self.path.suffix.lower()],
                                  options={"movflags": "faststart"})
        self._container.metadata.update({k: str(v) for k, v in (metadata or {}).items()})
        self._options = {"crf": str(crf), "preset": preset}
        self._video = None
        self._audio = None
        self._size = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [N, H, W, 3] or [H, W, 3]; got {frames.dtype} {frames.shape}")
        if self._video is None:
            self._start_streams(frames.shape[1], frames.shape[2])
        if frames.shape[1:3] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {frames.shape[1:3]}")
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = self.num_frames
            self._mux(self._video.encode(vf))
            self.num_frames += 1
        self._flush_audio(self._audio_due())

    def write_audio(self, samples: np.ndarray, sample_rate: int | None = None) -> None:
        """Appends mono float32 [N] (at `sample_rate`, default the writer's) to the audio track."""
        if not self.with_audio:
            raise ValueError("this writer was opened with with_audio=False")
        samples = np.asarray(samples, np.float32).reshape(-1)
        if sample_rate is not None and sample_rate != self.sample_rate:
            samples = resample(samples, sample_rate, self.sample_rate)
        self._pending_audio = np.concatenate([self._pending_audio, samples])
        if self._video is not None:
            self._flush_audio(self._audio_due())

    def close(self) -> None:
        if self._container is None:
            return
        if self.num_frames == 0:
            self.abort()
            raise ValueError(f"{self.path}: no frames were written")
        if self._audio is not None:
            due = self._audio_due()
            missing = due - self._audio_sent - self._pending_audio.size
            if missing > 0:
                self._pending_audio = np.concatenate([self._pending_audio, np.zeros(missing, np.float32)])
            self._flush_audio(due)
            self._mux(self._audio.encode(None))
        self._mux(self._video.encode(None))
        self._container.close()
        self._container = None
        if self._finish is not None:
            try:
                self._finish(Path(self._tmp))
            except BaseException:
                os.remove(self._tmp)
                raise
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp made it private; give it a normal file's mode
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drops everything written so far; the target path is left as it was."""
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass
            self._container = None
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def _start_streams(self, height: int, width: int) -> None:
        if height % 2 or width % 2:
            self.abort()
            raise MediaError(self.path, f"H.264 (yuv420p) needs an even width and height; frames are {width}x{height}")
        self._size = (height, width)
        self._video = self._container.add_stream("libx264", rate=self.fps, options=self._options)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        self._video.codec_context.time_base = 1 / self.fps
        if self.with_audio:
            self._audio = self._container.add_stream("aac", rate=self.sample_rate)
            self._audio.layout = "mono"

    def _audio_due(self) -> int:
        """Audio samples that the frames written so far cover."""
        return int(round(self.num_frames / self.fps * self.sample_rate))

    def _flush_audio(self, upto: int) -> None:
        if self._audio is None:
            return
        n = min(upto - self._audio_sent, self._pending_audio.size)
        if n <= 0:
            return
        chunk, self._pending_audio = self._pending_audio[:n], self._pending_audio[n:]
        af = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout="mono")
        af.sample_rate, af.pts = self.sample_rate, self._audio_sent
        self._audio_sent += n
        self._mux(self._audio.encode(af))

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)


def write_video(path, frames: np.ndarray | Iterable[np.ndarray], *, fps: float, audio: np.ndarray | None = None,
                sample_rate: int = SAMPLE_RATE, metadata: dict | None = None) -> None:
    """Writes frames (an array [T, H, W, 3] uint8 or an iterable of frames / frame batches) with optional audio."""
    with VideoWriter(path, fps=fps, with_audio=audio is not None, sample_rate=sample_rate, metadata=metadata) as w:
        if audio is not None:
            w.write_audio(audio)
        if isinstance(frames, np.ndarray):
            w.write(frames)
        else:
            for batch in frames:
                w.write(batch)


class _open_video:
    """Context manager: (container, first video stream), with MediaError for everything a user can get wrong."""

    def __init__(self, path):
        self.path = check_readable_file(path)

    def __enter__(self):
        try:
            self.container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError):
            raise MediaError(self.path, "is not a video file FFmpeg can read") from None
        if not self.container.streams.video:
            audio_only = bool(self.container.streams.audio)
            self.container.close()
            raise MediaError(self.path, "has no video stream (audio only)" if audio_only
                             else "has no readable video stream (is it truncated or corrupt?)")
        return self.container, self.container.streams.video[0]

    def __exit__(self, *exc):
        self.container.close()


def _stream_fps(path, stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise MediaError(path, "the video stream does not state a frame rate")
    return float(rate)


def _first_frame_time(container, stream) -> float:
    for frame in container.decode(stream):
        return float(frame.time or 0.0)
    return 0.0


def _read_aligned_audio(path, first_frame_time: float, sample_rate: int) -> np.ndarray | None:
    """The audio track as mono float32 at `sample_rate`, shifted so that sample 0 plays with the first frame."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        try:
            samples, rate = decode_audio_stream(container, stream)
        except av.error.FFmpegError as e:
            raise MediaError(path, f"audio stream cannot be decoded ({e})") from None
        audio_start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    samples = resample(samples, rate, sample_rate)
    offset = int(round((audio_start - first_frame_time) * sample_rate))
    if offset > 0:
        samples = np.concatenate([np.zeros(offset, np.float32), samples])
    elif offset < 0:
        samples = samples[-offset:]
    return samples
