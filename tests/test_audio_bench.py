"""vasa_jax.audio.bench on a tiny architecture (the real figures come from the base size, run by hand)."""

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.audio import EncoderConfig, Wav2Vec2Features, Wav2Vec2Model, bench

TINY = EncoderConfig(conv_dim=(8,) * 7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=16, num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)


def test_bench_reports_throughput_and_memory():
    result = bench.run(seconds=4.0, clip_seconds=1.0, chunk_seconds=1.0, context_seconds=0.5, config=TINY, repeats=1)
    assert result["frames"] == 100
    for key in ("one_shot_seconds_per_second", "chunked_seconds_per_second", "peak_rss_gib"):
        assert result[key] > 0, key


def test_window_errors_are_zero_when_nothing_is_windowed():
    model = Wav2Vec2Model(TINY)
    variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 400)))
    encoder = Wav2Vec2Features(model, variables)
    audio = (0.1 * np.random.default_rng(0).standard_normal(20000)).astype(np.float32)
    errors = bench.window_errors(encoder, audio, chunk_seconds=5.0, context_seconds=1.0)  # 1.25 s: one piece
    assert errors["chunked_max_abs"] == 0.0 and errors["feature_rms"] > 0.1
    assert errors["stream_clip_stats_max_abs"] > 0  # streams always window
