"""Audio encoders by name, for configs: "wav2vec2" / "hubert" (a pretrained checkpoint) or "mel" (none).

    encoder = make_audio_encoder("wav2vec2", checkpoint="/data/wav2vec2-base-960h")
    encoder = make_audio_encoder("mel")                      # tiny / toy configs: no checkpoint
    feats = encoder.features("speech.wav")                   # [T, encoder.dim] at 25 fps

Wav2Vec2Features turns the encoder's 50 Hz hidden states into 25 fps features: the waveform is normalised as
the checkpoint's feature extractor does, hidden states are taken from one layer, a fixed weighted sum of
layers, or all layers (for features.LayerMix), then linearly interpolated at each motion frame's centre.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.audio.checkpoint import CheckpointError, expects_normalized_input, from_pretrained
from vasa_jax.audio.features import (FPS, SAMPLES_PER_FRAME, AudioEncoder, FeatureStream, WaveStats,
                                     interpolate_frames, num_frames)
from vasa_jax.audio.mel import MelFeatures
from vasa_jax.audio.wav2vec2 import Wav2Vec2Model
from vasa_jax.io import SAMPLE_RATE

_UNBOUNDED = 2 ** 40  # frames / samples: more than any clip
_WINDOW_BUCKET_SECONDS = 1  # windows are zero-padded (and masked) to whole seconds: few distinct compiled shapes


class Wav2Vec2Features(AudioEncoder):
    """25 fps features from a Wav2Vec2 / HuBERT encoder.

    layer: "last" (last_hidden_state, default: for an ASR-fine-tuned checkpoint such as wav2vec2-base-960h
      the most phonetic layer, the one talking-face models usually take), an index into transformers'
      hidden_states (0 = input of the first layer, num_hidden_layers = output of the last one), a sequence of
      num_hidden_layers + 1 weights (a fixed weighted sum of hidden_states), or "all" (frames [L + 1, D], for
      a learned features.LayerMix). Layers after the one selected are not computed.
    normalize: zero-mean unit-variance input per utterance, as Wav2Vec2FeatureExtractor(do_normalize=True).
      Offline the statistics are the whole clip's; streaming they are running ones, or fixed ones given.
    chunk_seconds / context_seconds: offline, a clip up to chunk_seconds + 2 * context_seconds long is encoded
      in one piece (the encoder on the whole clip); a longer one in windows producing chunk_seconds of frames
      each, with context_seconds of audio on both sides, so memory stays bounded. The transformer attends
      over its whole input, so windowed features equal one-shot ones only within a tolerance set by the
      context (tests/test_audio_encoders.py measures it). chunk_seconds=None: always one piece.
    The first conv layer's GroupNorm ("group" models) always uses the statistics of the whole clip (or of
    the stream so far), never of the window alone, so windows change nothing but the attention context.
    """

    def __init__(self, model: Wav2Vec2Model, variables, *, layer: int | str | Sequence[float] = "last",
                 normalize: bool = True, chunk_seconds: float | None = 20.0, context_seconds: float = 4.0,
                 name: str | None = None):
        config = model.config
        self.name = name or config.model_type
        self.model, self.variables, self.config = model, variables, config
        self.normalize = normalize
        self.chunk_seconds, self.context_seconds = chunk_seconds, context_seconds
        num_hidden = config.num_hidden_layers + 1
        if isinstance(layer, str):
            if layer not in ("last", "all"):
                raise ValueError(f"layer must be 'last', 'all', an index or weights; got {layer!r}")
        elif isinstance(layer, (int, np.integer)):
            if not -num_hidden <= layer < num_hidden:
                raise ValueError(f"layer {layer} is out of range: the encoder has {num_hidden} hidden states")
            layer = int(layer)
        else:
            layer = tuple(float(w) for w in layer)
            if len(layer) != num_hidden:
                raise ValueError(f"{len(layer)} layer weights given; the encoder has {num_hidden} hidden states")
        self.layer = layer
        self.frame_shape = (num_hidden, config.hidden_size) if layer == "all" else (config.hidden_size,)
        conv0 = variables["params"]["feature_extractor"]["conv_layers_0"]["conv"]
        self._conv0 = (np.asarray(conv0["kernel"]), None if "bias" not in conv0 else np.asarray(conv0["bias"]))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, normalize: bool | None = None, **options):
        """From a checkpoint folder; normalize defaults to the folder's preprocessor_config.json."""
        model, variables = from_pretrained(folder)
        if normalize is None:
            normalize = expects_normalized_input(folder)
        return cls(model, variables, normalize=normalize, **options)

    def _new_stats(self) -> WaveStats:
        if self.config.feat_extract_norm == "group":
            return WaveStats(self.config.conv_kernel[0], self.config.conv_stride[0])
        return WaveStats()

    def _offline_stream(self, stats, num_samples):
        if self.chunk_seconds is None or num_samples <= (self.chunk_seconds + 2 * self.context_seconds) * SAMPLE_RATE:
            return FeatureStream(self, _UNBOUNDED, math.inf, math.inf, stats)
        step = max(1, round(self.chunk_seconds * FPS))
        return FeatureStream(self, step, self.context_seconds, self.context_seconds, stats)

    def _position(self, i):
        """Fractional hidden-frame index at the centre of motion frame(s) i.

        Hidden frame j sees samples [S j, S j + R) (S = frame_stride, R = receptive_field); its centre
        S j + R / 2 meets motion frame i's centre 640 i + 320 at j = (640 i + 320 - R / 2) / S, which is
        2 i + 0.375 for the public checkpoints.
        """
        c = self.config
        return np.maximum((np.asarray(i) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME / 2 - c.receptive_field / 2)
                          / c.frame_stride, 0.0)

    def _window(self, i0, i1, left_seconds, right_seconds):
        c = self.config
        first, last = int(self._position(i0)), int(self._position(i1 - 1)) + 1  # hidden frames read
        per_second = SAMPLE_RATE / c.frame_stride
        left = math.ceil(left_seconds * per_second) if math.isfinite(left_seconds) else first
        right = math.ceil(right_seconds * per_second) if math.isfinite(right_seconds) else _UNBOUNDED
        return c.frame_stride * max(0, first - left), c.frame_stride * (last + right) + c.receptive_field

    def _clip_end(self, total: int) -> int:
        """Length of the clip as encoded: the audio, then silence up to the last sample the last frame needs."""
        frames = num_frames(total)
        if frames == 0:
            return total
        last = int(self._position(frames - 1)) + 1
        return max(total, self.config.frame_stride * last + self.config.receptive_field)

    def _encode(self, samples, a, b, i0, i1, stats, total):
        c = self.config
        mean, scale = stats.normalizer() if self.normalize else (0.0, 1.0)
        end = b if total is None else min(b, self._clip_end(total))
        bucket = _WINDOW_BUCKET_SECONDS * SAMPLE_RATE
        length = max(bucket, -(-(end - a) // bucket) * bucket)
        x = np.zeros((1, length), np.float32)
        x[0, :samples.size] = (samples.astype(np.float64) - mean) / scale
        mask = (np.arange(length) < end - a)[None]
        group_norm_stats = None
        if c.feat_extract_norm == "group":
            group_norm_stats = stats.group_norm_stats(*self._conv0, mean, scale)
        hidden = np.asarray(_selected_hidden(self.variables, x, mask, group_norm_stats, config=c,
                                             layer=self.layer))[0]
        hidden = hidden[:max(0, c.output_length(end - a))]
        return interpolate_frames(hidden, self._position(np.arange(i0, i1)) - a / c.frame_stride)


@functools.partial(jax.jit, static_argnames=("config", "layer"))
def _selected_hidden(variables, waveform, mask, group_norm_stats, *, config, layer):
    """The hidden states `layer` selects: [B, J, D], or [B, J, L + 1, D] for "all".

    Jitted once per (config, layer, shape) for all encoders; layers past the selected one are dead code.
    """
    out = Wav2Vec2Model(config).apply(variables, waveform, attention_mask=mask, output_hidden_states=layer != "last",
                                      group_norm_stats=group_norm_stats)
    if layer == "last":
        return out.last_hidden_state
    if layer == "all":
        return jnp.stack(out.hidden_states, axis=2)
    if isinstance(layer, int):
        return out.hidden_states[layer]
    return sum(w * h for w, h in zip(layer, out.hidden_states))


def make_audio_encoder(name: str, *, checkpoint: str | os.PathLike | None = None, **options) -> AudioEncoder:
    """An audio encoder by name: "mel" (no checkpoint), or "wav2vec2" / "hubert" (checkpoint: a local folder).

    options go to MelFeatures or Wav2Vec2Features (layer, normalize, chunk_seconds, context_seconds).
    """
    if name == "mel":
        if checkpoint is not None:
            raise ValueError("the mel encoder takes no checkpoint")
        return MelFeatures(**options)
    if name in ("wav2vec2", "hubert"):
        if checkpoint is None:
            raise ValueError(f"the {name} encoder needs checkpoint=<folder of a Hugging Face {name} model>; "
                             "see the README for fetching facebook/wav2vec2-base-960h once")
        encoder = Wav2Vec2Features.from_pretrained(checkpoint, **options)
        if encoder.config.model_type != name:
            raise CheckpointError(checkpoint, f"holds a {encoder.config.model_type} model; the config asks for {name}")
        return encoder
    raise ValueError(f"unknown audio encoder {name!r}; known: 'mel', 'wav2vec2', 'hubert'")
