"""vasa_jax.audio.features: the frame rule, input statistics, frame interpolation, layer mixing, streams."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transformers import Wav2Vec2FeatureExtractor

from vasa_jax.audio import EncoderConfig, LayerMix, MelFeatures, Wav2Vec2Model, WaveStats, num_frames
from vasa_jax.audio.features import interpolate_frames
from vasa_jax.io import MediaError


def test_frame_rule_rounds_half_up():
    # T frames for T / 25 s; a partial last frame counts from half a frame (320 samples) on.
    assert [num_frames(n) for n in (0, 319, 320, 639, 640, 959, 960, 640 * 250)] == [0, 0, 1, 1, 1, 1, 2, 250]


def test_stats_do_not_depend_on_how_the_audio_is_split():
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(20000) + 0.05).astype(np.float32)
    whole, pieces = WaveStats(10, 5), WaveStats(10, 5)
    whole.add(audio)
    cuts = np.sort(rng.choice(np.arange(1, audio.size), 40, replace=False))
    for piece in np.split(audio, cuts):
        pieces.add(piece)
    assert (whole.count, whole.patches) == (pieces.count, pieces.patches) == (20000, 3999)
    np.testing.assert_allclose(whole.normalizer(), pieces.normalizer(), rtol=1e-12)
    kernel, bias = rng.standard_normal((10, 1, 8)), rng.standard_normal(8)
    for a, b in zip(whole.group_norm_stats(kernel, bias, 0.1, 2.0), pieces.group_norm_stats(kernel, bias, 0.1, 2.0)):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_normalizer_matches_the_feature_extractor():
    audio = (0.2 * np.random.default_rng(1).standard_normal(16000) + 0.1).astype(np.float32)
    stats = WaveStats()
    stats.add(audio)
    mean, scale = stats.normalizer()
    expected = Wav2Vec2FeatureExtractor(do_normalize=True)(audio, sampling_rate=16000, return_tensors="np")
    np.testing.assert_allclose((audio - mean) / scale, expected["input_values"][0], atol=1e-5)


def test_group_norm_stats_equal_the_models_own():
    # A window normalised with the clip's statistics (from WaveStats) must equal the model on the whole clip.
    config = EncoderConfig(conv_dim=(8,) * 7, conv_bias=True, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=16, num_conv_pos_embeddings=8,
                           num_conv_pos_embedding_groups=2)
    model = Wav2Vec2Model(config)
    variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 400)))  # rbg: quick to compile
    audio = (0.2 * np.random.default_rng(2).standard_normal(6000) + 0.03).astype(np.float32)
    stats = WaveStats(10, 5)
    stats.add(audio)
    mean, scale = stats.normalizer()
    conv = variables["params"]["feature_extractor"]["conv_layers_0"]["conv"]
    x = ((audio - mean) / scale)[None]
    apply = jax.jit(model.apply)
    own = apply(variables, x).last_hidden_state
    given = apply(variables, x, group_norm_stats=stats.group_norm_stats(conv["kernel"], conv["bias"], mean, scale))
    np.testing.assert_allclose(np.asarray(given.last_hidden_state), np.asarray(own), atol=1e-5)


def test_interpolation_is_linear_and_clamped():
    hidden = np.stack([np.arange(6.0), 10 * np.arange(6.0)], axis=1)  # [J = 6, 2]
    got = interpolate_frames(hidden, np.array([-1.0, 0.0, 0.375, 2.375, 4.5, 5.0, 7.0]))
    np.testing.assert_allclose(got[:, 0], [0.0, 0.0, 0.375, 2.375, 4.5, 5.0, 5.0])
    np.testing.assert_allclose(got[:, 1], 10 * got[:, 0])


def test_layer_mix_starts_as_the_mean_and_learns():
    layers = jnp.asarray(np.random.default_rng(3).standard_normal((2, 7, 5, 4)), jnp.float32)  # [B, T, L, D]
    mix = LayerMix()
    params = mix.init(jax.random.key(0), layers)
    np.testing.assert_allclose(np.asarray(mix.apply(params, layers)), np.asarray(layers.mean(axis=2)), atol=1e-6)
    grad = jax.grad(lambda p: mix.apply(p, layers)[..., 0].sum())(params)
    assert float(jnp.abs(grad["params"]["logits"]).sum()) > 0


def test_stream_rejects_bad_input_and_use_after_flush():
    stream = MelFeatures().stream()
    with pytest.raises(MediaError, match="mono 16 kHz"):
        stream.push(np.zeros((100, 2), np.float32))
    with pytest.raises(MediaError, match="NaN"):
        stream.push(np.array([0.0, np.nan], np.float32))
    assert stream.push(np.zeros(500, np.float32)).shape == (0, 80)
    assert stream.flush().shape == (1, 80)  # 500 samples: one frame
    with pytest.raises(RuntimeError, match="flushed"):
        stream.push(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="step_frames"):
        MelFeatures().stream(step_frames=0)
