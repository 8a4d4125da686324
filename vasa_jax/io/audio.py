"""Audio loading: any file soundfile or FFmpeg (through PyAV) reads, or an array -> mono float32 at 16 kHz."""

from __future__ import annotations

import os

import av
import librosa
import numpy as np
import soundfile

from vasa_jax.io.errors import MediaError, check_readable_file

SAMPLE_RATE = 16000  # what the whole project works at (Wav2Vec2 / HuBERT rate)


def load_audio(source, *, sample_rate: int = SAMPLE_RATE, source_rate: int | None = None) -> np.ndarray:
    """Returns mono float32 [N] at `sample_rate`.

    source: a path (wav, flac, ogg, mp3 through soundfile; m4a, aac, mp4, webm, mkv and the rest through
    FFmpeg), or an array [N] or [N, channels] whose rate is `source_rate`.
    Channels are averaged; the rate is converted with soxr (librosa's default high-quality resampler).
    """
    if isinstance(source, (str, os.PathLike)):
        path = check_readable_file(source)
        samples, rate = _read_audio_file(path)
        name = path
    else:
        if source_rate is None:
            raise MediaError(None, "an audio array needs its sample rate (source_rate=...)")
        samples, rate, name = np.asarray(source), int(source_rate), None
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
        if samples.ndim != 1:
            raise MediaError(None, f"an audio array must be [N] or [N, channels]; got shape {samples.shape}")
    if samples.size == 0:
        raise MediaError(name, "contains no audio samples (zero length)")
    samples = samples.astype(np.float32, copy=False)
    if not np.all(np.isfinite(samples)):
        raise MediaError(name, "audio contains NaN or infinite samples")
    return resample(samples, rate, sample_rate)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 [N] from `source_rate` to `target_rate`."""
    if source_rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    out = librosa.resample(samples, orig_sr=source_rate, target_sr=target_rate, res_type="soxr_hq")
    return out.astype(np.float32, copy=False)


def save_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Writes mono float32 [N] (or [N, channels]); the format follows the extension (wav, flac, ogg)."""
    soundfile.write(str(path), np.asarray(samples, dtype=np.float32), sample_rate)


def _read_audio_file(path) -> tuple[np.ndarray, int]:
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return samples.mean(axis=1), int(rate)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        pass  # not a format libsndfile knows: containers and codecs go through FFmpeg
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError):
        raise MediaError(path, "is not audio that soundfile or FFmpeg can read") from None
    with container:
        if not container.streams.audio:
            raise MediaError(path, "has no audio stream")
        try:
            return decode_audio_stream(container, container.streams.audio[0])
        except av.error.FFmpegError as e:
            raise MediaError(path, f"audio stream cannot be decoded ({e})") from None


def decode_audio_stream(container, stream) -> tuple[np.ndarray, int]:
    """Decodes one PyAV audio stream to mono float32 [N] at its own rate.

    Trims the decoder's trailing padding (AAC works in 1024-sample frames) to the duration the stream
    declares, so a clip reads back as long as it was written.
    """
    rate = stream.rate
    planar = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=rate)
    chunks = []
    for frame in container.decode(stream):
        for out in planar.resample(frame):
            chunks.append(out.to_ndarray().mean(axis=0))
    for out in planar.resample(None):
        chunks.append(out.to_ndarray().mean(axis=0))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if stream.duration is not None and stream.time_base is not None:
        declared = int(round(float(stream.duration * stream.time_base) * rate))
        if 0 < declared < samples.size:
            samples = samples[:declared]
    return samples, rate
