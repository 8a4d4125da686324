"""Audio features for motion generation: Wav2Vec2 / HuBERT encoders in JAX and a light log-mel encoder.

    encoder = make_audio_encoder("wav2vec2", checkpoint=folder)  # or "hubert", or "mel" without a checkpoint
    feats = encoder.features(audio)                              # [T, encoder.dim], 25 fps, frame-aligned
    stream = encoder.stream(); stream.push(chunk) ...; stream.flush()
    model, variables = from_pretrained(folder)                   # the bare Flax encoder
"""

from vasa_jax.audio.checkpoint import CheckpointError, from_pretrained
from vasa_jax.audio.encoders import Wav2Vec2Features, make_audio_encoder
from vasa_jax.audio.features import FPS, AudioEncoder, FeatureStream, LayerMix, WaveStats, num_frames
from vasa_jax.audio.mel import MelFeatures
from vasa_jax.audio.wav2vec2 import EncoderConfig, EncoderOutput, Wav2Vec2Model

__all__ = [
    "FPS", "AudioEncoder", "CheckpointError", "EncoderConfig", "EncoderOutput", "FeatureStream", "LayerMix",
    "MelFeatures", "Wav2Vec2Features", "Wav2Vec2Model", "WaveStats", "from_pretrained", "make_audio_encoder",
    "num_frames",
]
