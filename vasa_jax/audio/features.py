"""From 16 kHz audio to features at the motion frame rate: the machinery every audio encoder shares.

Frame rule. The motion (and video) runs at 25 fps; frame i covers the audio [i / 25, (i + 1) / 25) s, samples
[640 i, 640 (i + 1)). A clip of N samples has T = round(N / 640) frames, halves rounded up:
T = (N + 320) // 640. This matches the video writer's T frames for T / 25 s of audio and absorbs the few
samples that codecs add or trim at the end of a track; a last partial frame shorter than 20 ms is dropped.

Windows. An encoder computes frames [i0, i1) from a window of samples around their audio. Offline
(AudioEncoder.features) long clips go in windows of `chunk_seconds` of frames with `context_seconds` of audio
on both sides, so memory stays bounded; streaming (AudioEncoder.stream) in groups of `step_frames` frames
with bounded left context and a small look-ahead. Both run through FeatureStream: offline is the streaming
computation with a wide look-ahead and the clip's own statistics. For encoders whose frames see a bounded
span of audio (the mel encoder, the convolutions of a Wav2Vec2) windows change nothing; a Wav2Vec2's
attention spans its whole input, so its windowed features differ from one-shot ones by a tolerance that
depends on the weights (tests/test_audio_encoders.py bounds it for random models; `python -m
vasa_jax.audio.bench --checkpoint DIR --audio CLIP` measures it for a real one).
"""

from __future__ import annotations

import abc
import math
import os

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vasa_jax.io import SAMPLE_RATE, MediaError, load_audio

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
_NORMALIZE_EPS = 1e-7  # Wav2Vec2FeatureExtractor: (x - mean) / sqrt(var + 1e-7)
_STATS_BLOCK = 10 * SAMPLE_RATE


def num_frames(num_samples: int) -> int:
    """Motion frames for a clip of `num_samples` 16 kHz samples: round(N / 640), halves up."""
    return (num_samples + SAMPLES_PER_FRAME // 2) // SAMPLES_PER_FRAME


def as_waveform(audio, source_rate: int | None = None) -> np.ndarray:
    """Any audio -> mono float32 [N] at 16 kHz, through vasa_jax.io.load_audio.

    audio: a path (any format load_audio reads), or an array [N] / [N, channels] at `source_rate`; an array
    without a rate is taken to be 16 kHz already. Raises MediaError for unusable audio.
    """
    if source_rate is None and not isinstance(audio, (str, os.PathLike)):
        source_rate = SAMPLE_RATE
    return load_audio(audio, source_rate=source_rate)


def interpolate_frames(hidden: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of hidden [J, ...] at fractional frame positions [T] (clamped to [0, J - 1])."""
    positions = np.clip(positions, 0.0, hidden.shape[0] - 1)
    lo = np.minimum(np.floor(positions).astype(np.int64), hidden.shape[0] - 2) if hidden.shape[0] > 1 else (
        np.zeros(positions.shape, np.int64))
    w = (positions - lo).astype(np.float32).reshape(-1, *([1] * (hidden.ndim - 1)))
    hi = np.minimum(lo + 1, hidden.shape[0] - 1)
    return (1.0 - w) * hidden[lo] + w * hidden[hi]


class LayerMix(nn.Module):
    """A learned weighted sum over encoder layers: [..., L, D] -> [..., D] with softmax weights.

    For features computed with layer="all" ([T, L, D]); the weights start equal and train with the model that
    consumes the features (stage 2), as in SUPERB-style probing.
    """

    @nn.compact
    def __call__(self, layers):
        logits = self.param("logits", nn.initializers.zeros, (layers.shape[-2],))
        return jnp.einsum("...ld,l->...d", layers, nn.softmax(logits))


class WaveStats:
    """Running statistics of a waveform; add() over any split of the samples gives the same totals.

    Holds what Wav2Vec2FeatureExtractor normalises an utterance with (mean and variance of its samples) and,
    for GroupNorm models, the moments of the first conv layer's input patches, from which that layer's
    per-channel GroupNorm statistics follow exactly (the conv is linear): a window of a long clip is then
    normalised as the whole clip would be.
    """

    def __init__(self, patch: int = 0, stride: int = 1):
        self.patch, self.stride = patch, stride  # the first conv layer's kernel and stride; patch 0: none
        self.count, self._sum, self._sum_sq = 0, 0.0, 0.0
        self.patches = 0
        self._patch_sum = np.zeros(patch)
        self._patch_outer = np.zeros((patch, patch))
        self._pending = np.zeros(0)  # samples from patch index `patches` on, not yet in a complete patch

    def add(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, np.float64)
        self.count += x.size
        self._sum += x.sum()
        self._sum_sq += np.dot(x, x)
        if self.patch:
            pending = np.concatenate([self._pending, x])
            n = (pending.size - self.patch) // self.stride + 1 if pending.size >= self.patch else 0
            if n:
                patches = np.lib.stride_tricks.sliding_window_view(pending, self.patch)[: n * self.stride: self.stride]
                self._patch_sum += patches.sum(axis=0)
                self._patch_outer += patches.T @ patches
                self.patches += n
            self._pending = pending[n * self.stride:]

    def normalizer(self) -> tuple[float, float]:
        """(mean, scale) with which Wav2Vec2FeatureExtractor maps x -> (x - mean) / scale."""
        if self.count == 0:
            return 0.0, 1.0
        mean = self._sum / self.count
        var = max(self._sum_sq / self.count - mean * mean, 0.0)
        return mean, math.sqrt(var + _NORMALIZE_EPS)

    def group_norm_stats(self, kernel: np.ndarray, bias: np.ndarray | None, mean: float, scale: float):
        """Per-channel (mean [C], var [C]) of conv(kernel [K, 1, C], bias) over (x - mean) / scale."""
        w = np.asarray(kernel, np.float64).reshape(self.patch, -1)
        n = max(self.patches, 1)
        patch_mean = self._patch_sum / n
        patch_cov = self._patch_outer / n - np.outer(patch_mean, patch_mean)
        channel_mean = (patch_mean - mean) @ w / scale + (0.0 if bias is None else np.asarray(bias, np.float64))
        channel_var = np.maximum(np.einsum("kc,kl,lc->c", w, patch_cov, w), 0.0) / (scale * scale)
        return channel_mean.astype(np.float32), channel_var.astype(np.float32)


class AudioEncoder(abc.ABC):
    """Audio -> features at 25 fps, frame-aligned with the video. Every encoder has this interface.

    features(audio) -> [T, *frame_shape] offline (bounded memory on long audio);
    stream(...) -> FeatureStream, whose push(samples) returns the frames that became ready and flush()
    the rest. Subclasses say which samples frames [i0, i1) need (_window) and compute them (_encode).
    """

    name: str
    frame_shape: tuple[int, ...]  # one frame's shape: (D,), or (L + 1, D) for all layers of a Wav2Vec2

    @property
    def dim(self) -> int:
        """Feature size of a frame (the last axis)."""
        return self.frame_shape[-1]

    def features(self, audio, *, source_rate: int | None = None) -> np.ndarray:
        """Offline features of a whole clip: [T, *frame_shape], T = num_frames(N)."""
        waveform = as_waveform(audio, source_rate)
        stream = self._offline_stream(self.stats(waveform), waveform.size)
        return np.concatenate([stream.push(waveform), stream.flush()])

    def stats(self, audio, *, source_rate: int | None = None) -> WaveStats | None:
        """The clip-level statistics the encoder normalises with (None for encoders that have none)."""
        stats = self._new_stats()
        if stats is not None:
            waveform = as_waveform(audio, source_rate)
            for start in range(0, waveform.size, _STATS_BLOCK):  # blocks: float64 copies stay small
                stats.add(waveform[start: start + _STATS_BLOCK])
        return stats

    def stream(self, *, step_frames: int = 2, left_context_seconds: float = 3.0, lookahead_seconds: float = 0.16,
               stats: WaveStats | None = None) -> FeatureStream:
        """A streaming encoder: frames in groups of `step_frames`, each computed from a window with
        `left_context_seconds` of past audio and `lookahead_seconds` of audio past the group.

        Latency: a frame comes out once this much audio past its end has arrived (FeatureStream.latency_seconds),
        compute time not included: (step_frames - 1) / 25 s for the rest of its group, then for a Wav2Vec2
        lookahead_seconds (in whole 20 ms steps) + 5 ms (its last 50 Hz frame overhangs the motion frame),
        0.205 s with the defaults; for the mel encoder, whose frames need no context, 20 ms (half its
        window). A Wav2Vec2 stream re-encodes each group's whole window, so its compute grows with
        left_context_seconds / step_frames.
        stats: fixed normalisation statistics (e.g. AudioEncoder.stats of a reference recording), with which
        a stream equals offline features within the windowing tolerance; None: running statistics of the
        audio pushed so far, which differ from a clip's own until they settle (by seconds; GroupNorm
        checkpoints such as wav2vec2-base are the most sensitive).
        """
        return FeatureStream(self, step_frames, left_context_seconds, lookahead_seconds, stats)

    @abc.abstractmethod
    def _offline_stream(self, stats: WaveStats | None, num_samples: int) -> FeatureStream:
        """The stream offline features() runs on a clip of num_samples: wide windows, the clip's statistics."""

    def _new_stats(self) -> WaveStats | None:
        return None

    @abc.abstractmethod
    def _window(self, i0: int, i1: int, left_seconds: float, right_seconds: float) -> tuple[int, int]:
        """The samples [a, b) (a >= 0) that frames [i0, i1) are computed from; b may pass the clip's end."""

    @abc.abstractmethod
    def _encode(self, samples: np.ndarray, a: int, b: int, i0: int, i1: int, stats: WaveStats | None,
                total: int | None) -> np.ndarray:
        """Frames [i0, i1) from samples = audio[a : min(b, total)]. total: the clip's length in samples once
        known (the audio past it is silence), None while streaming (then b <= samples received)."""


class FeatureStream:
    """Incremental features: push() audio as it arrives, get the frames whose window is complete.

    Frames come out in groups of `step_frames`. Frame i of a group [i0, i1) comes out once the audio up to
    sample b of that group's window has arrived; latency_seconds is the largest such wait past the end of a
    frame's own audio (the compute time comes on top).
    """

    def __init__(self, encoder: AudioEncoder, step_frames: int, left_seconds: float, right_seconds: float,
                 stats: WaveStats | None = None):
        if step_frames < 1:
            raise ValueError(f"step_frames must be at least 1; got {step_frames}")
        if left_seconds < 0 or right_seconds < 0:
            raise ValueError("context and look-ahead must not be negative")
        self.encoder, self.step = encoder, step_frames
        self.left, self.right = left_seconds, right_seconds
        self._running = stats is None
        self._stats = encoder._new_stats() if stats is None else stats
        self._buffer = np.zeros(0, np.float32)  # audio[_start : _received]
        self._start = self._received = self._next = 0
        self._closed = False

    @property
    def latency_seconds(self) -> float:
        """Audio needed past the end of a frame before it comes out (worst frame of a group), in seconds."""
        i0 = 10 * self.step + math.ceil(self.left * FPS)  # a group clear of the clip's start
        _, b = self.encoder._window(i0, i0 + self.step, self.left, self.right)
        return (b - (i0 + 1) * SAMPLES_PER_FRAME) / SAMPLE_RATE

    def push(self, samples) -> np.ndarray:
        """Adds 16 kHz mono samples [n]; returns the frames now complete, [k, *frame_shape] (k may be 0)."""
        if self._closed:
            raise RuntimeError("this stream was flushed; start a new one")
        samples = np.asarray(samples, np.float32)
        if samples.ndim != 1:
            raise MediaError(None, f"a stream takes mono 16 kHz samples [n]; got shape {samples.shape}")
        if not np.all(np.isfinite(samples)):
            raise MediaError(None, "audio contains NaN or infinite samples")
        if self._running and self._stats is not None:
            self._stats.add(samples)
        self._buffer = np.concatenate([self._buffer, samples])
        self._received += samples.size
        out = []
        while True:
            i1 = self._next + self.step
            a, b = self.encoder._window(self._next, i1, self.left, self.right)
            if b > self._received:
                break
            out.append(self._run(self._next, i1, a, b, None))
        self._drop_used_audio()
        return self._collect(out)

    def flush(self) -> np.ndarray:
        """Ends the stream: the remaining frames up to num_frames(samples pushed), the audio after the end
        taken as silence."""
        self._closed = True
        total = num_frames(self._received)
        out = []
        while self._next < total:
            i1 = min(self._next + self.step, total)
            a, b = self.encoder._window(self._next, i1, self.left, self.right)
            out.append(self._run(self._next, i1, a, b, self._received))
        return self._collect(out)

    def _run(self, i0, i1, a, b, total):
        end = b if total is None else min(b, total)
        frames = self.encoder._encode(self._buffer[a - self._start: end - self._start], a, b, i0, i1, self._stats,
                                      total)
        self._next = i1
        return frames

    def _drop_used_audio(self):
        a, _ = self.encoder._window(self._next, self._next + self.step, self.left, self.right)
        if a > self._start:
            self._buffer = self._buffer[a - self._start:].copy()
            self._start = a

    def _collect(self, out):
        if not out:
            return np.zeros((0, *self.encoder.frame_shape), np.float32)
        return np.concatenate(out)
