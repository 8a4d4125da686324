"""Small media files for tests, made on the spot with PyAV (no fixtures checked in)."""

from fractions import Fraction

import av
import numpy as np


def smooth_frames(num_frames: int, height: int = 64, width: int = 64) -> np.ndarray:
    """Frames with smooth gradients (codec-friendly) that change over time: uint8 [T, H, W, 3]."""
    t = np.arange(num_frames)[:, None, None]
    y = np.arange(height)[None, :, None]
    x = np.arange(width)[None, None, :]
    r = 128 + 100 * np.sin(0.05 * x + 0.2 * t)
    g = 128 + 100 * np.cos(0.07 * y - 0.1 * t)
    b = 128 + 80 * np.sin(0.03 * (x + y) + 0.15 * t)
    return np.clip(np.stack(np.broadcast_arrays(r, g, b), -1), 0, 255).astype(np.uint8)


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """A sine tone, float32 [N] or [N, channels]."""
    n = int(round(seconds * rate))
    wave = (0.4 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def write_with_codecs(path, frames=None, fps=25, audio=None, rate=16000, vcodec="libx264", acodec="aac",
                      container_format=None):
    """Writes any combination of a video and an audio stream with the given codecs (for reader tests)."""
    with av.open(str(path), "w", format=container_format) as out:
        vs = as_ = None
        if frames is not None:
            vs = out.add_stream(vcodec, rate=Fraction(fps))
            vs.height, vs.width = frames.shape[1:3]
            vs.pix_fmt = "yuv420p"
        if audio is not None:
            as_ = out.add_stream(acodec, rate=rate)
            as_.layout = "mono"
        if vs is not None:
            for frame in frames:
                for packet in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
        if as_ is not None:
            fmt = as_.codec_context.format.name  # the encoder's native sample format
            chunk = audio.astype(np.float32)[None]
            if fmt.startswith("s16"):
                chunk = (chunk * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                chunk = (chunk * 2147483647).astype(np.int32)
            frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = 0
            for packet in as_.encode(frame):
                out.mux(packet)
            for packet in as_.encode(None):
                out.mux(packet)
