"""JoyVASA's audio path: HuBERT run the way upstream's subclass runs it, at 2 frames per motion frame.

The conv feature encoder's ~50 Hz output is cut and linearly resampled to exactly 2L frames before the feature
projection and the transformer (so the positional conv and attention see 2L frames), and the last hidden state
is resampled to the L motion frames. The encoder modules are the project's (vasa_jax.audio.wav2vec2), under the
same names as in Wav2Vec2Model, so vasa_jax.audio.checkpoint's converted variables apply as they are.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from vasa_jax.audio.wav2vec2 import Encoder, EncoderConfig, FeatureEncoder, FeatureProjection

_AUDIO_UNIT = 320  # samples per conv frame
_PAD_THRESHOLD = 80  # pad_audio grows a signal to a multiple of 320 samples plus this many


def pad_audio(waveform):
    """Upstream's pad_audio: [B, N] -> [B, N'] with N' = 320 * (N // 320) + 80 where N's remainder is at most 80
    (reflection, applied twice, and one replicated sample for an odd shortfall), else unchanged."""
    shortfall = -((waveform.shape[-1] % _AUDIO_UNIT - _PAD_THRESHOLD) // 2)  # ceil of half the missing samples
    if shortfall < 0:
        return waveform
    reflect, replicate = divmod(shortfall, 2)
    widths = ((0, 0), (reflect, reflect))
    if reflect:
        waveform = jnp.pad(jnp.pad(waveform, widths, mode="reflect"), widths, mode="reflect")
    if replicate:
        waveform = jnp.pad(waveform, ((0, 0), (1, 1)), mode="edge")
    return waveform


def resample_linear(x, size: int):
    """torch's F.interpolate(mode="linear", align_corners=False) along axis 1: [B, T, C] -> [B, size, C].

    Source positions and weights are computed in float32 as torch's CPU kernel does.
    """
    length = x.shape[1]
    if length == size:
        return x
    scale = np.float32(length / size)
    source = np.maximum((np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0.0)
    lo = source.astype(np.int64)
    hi = np.minimum(lo + 1, length - 1)
    weight = np.clip(source - lo, 0.0, 1.0).astype(np.float32)[:, None]
    return x[:, lo] * (1.0 - weight) + x[:, hi] * weight


class ResampledHubert(nn.Module):
    """Waveform [B, N] (16 kHz, as the wrapper loads it: not normalised) -> last hidden state [B, frames, D],
    the conv features resampled to `frames` first (upstream calls its HuBERT with frame_num = frames)."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, waveform, frames: int):
        features = FeatureEncoder(self.config, name="feature_extractor")(jnp.asarray(waveform, jnp.float32))
        # Upstream first cuts the ~50 Hz features to what `frames` frames at 25 fps would span (2 * frames
        # frames: longer than the features in practice, so this keeps them whole).
        features = resample_linear(features[:, :2 * frames], frames)
        x = FeatureProjection(self.config, name="feature_projection")(features, True)
        return Encoder(self.config, name="encoder")(x, None, True)[0]
