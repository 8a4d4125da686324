"""The light audio encoder: log-mel features at 25 fps, for runs without a pretrained checkpoint (tiny / toy).

Frame i's spectrum comes from an 80 ms Hann window centred on the frame's audio [640 i, 640 (i + 1)), i.e.
samples [640 i - 320, 640 i + 960) with silence outside the clip, so consecutive windows overlap by half and
every sample counts. Each frame depends on 1280 samples only: windowed, streaming and offline features are
equal, and streaming adds 20 ms of latency past a frame's end (plus the rest of its step group).
"""

from __future__ import annotations

import librosa
import numpy as np

from vasa_jax.audio.features import FPS, SAMPLES_PER_FRAME, AudioEncoder, FeatureStream
from vasa_jax.io import SAMPLE_RATE

_WINDOW = 2 * SAMPLES_PER_FRAME  # 1280 samples, 80 ms
_LOG_FLOOR = 1e-6  # added to the mel power before the log: silence maps to log(1e-6) ~ -13.8, not -inf
_OFFLINE_CHUNK_FRAMES = FPS * 60  # offline features() computes a minute of frames per window


class MelFeatures(AudioEncoder):
    """log(mel power + 1e-6) per frame: [T, n_mels] at 25 fps (librosa's Slaney mel scale, 0 to 8 kHz)."""

    def __init__(self, *, n_mels: int = 80, name: str = "mel"):
        self.name, self.n_mels = name, n_mels
        self.frame_shape = (n_mels,)
        self._filters = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=_WINDOW, n_mels=n_mels).astype(np.float32)

    def _offline_stream(self, stats, num_samples):
        return FeatureStream(self, _OFFLINE_CHUNK_FRAMES, 0.0, 0.0, stats)

    def _window(self, i0, i1, left_seconds, right_seconds):
        half = SAMPLES_PER_FRAME // 2
        return max(0, i0 * SAMPLES_PER_FRAME - half), i1 * SAMPLES_PER_FRAME + half

    def _encode(self, samples, a, b, i0, i1, stats, total):
        start = i0 * SAMPLES_PER_FRAME - SAMPLES_PER_FRAME // 2  # may be negative: silence before the clip
        y = np.zeros(b - start, np.float32)
        y[a - start: a - start + samples.size] = samples
        spectrum = np.abs(librosa.stft(y, n_fft=_WINDOW, hop_length=SAMPLES_PER_FRAME, window="hann",
                                       center=False)) ** 2
        return np.log(self._filters @ spectrum + _LOG_FLOOR).T.astype(np.float32)  # [i1 - i0, n_mels]
