"""Parity of vasa_jax.audio.wav2vec2 with transformers' Wav2Vec2Model / HubertModel (PyTorch, CPU, eval mode).

Random small models of each layout are built in PyTorch, saved as Hugging Face folders and loaded back through
vasa_jax.audio.from_pretrained, so these tests prove the Flax port and the weight conversion together.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from audio_models import LAYOUTS, save_tiny_checkpoint
from transformers import HubertConfig, Wav2Vec2Config, Wav2Vec2ForCTC

from vasa_jax.audio import EncoderConfig, from_pretrained

PARITY_TOL = 1e-4

def _encoder(model):
    return model.wav2vec2 if isinstance(model, Wav2Vec2ForCTC) else model


def _padded_batch():
    """Two clips, the second 2500 samples shorter and zero-padded, with their attention mask."""
    g = torch.Generator().manual_seed(1)
    waveform = torch.randn(2, 8000, generator=g)
    mask = torch.ones(2, 8000, dtype=torch.long)
    waveform[1, 5500:] = 0.0
    mask[1, 5500:] = 0
    return waveform, mask


def _max_errors(ours, theirs):
    last = float(np.abs(np.asarray(ours.last_hidden_state) - theirs.last_hidden_state.numpy()).max())
    assert len(ours.hidden_states) == len(theirs.hidden_states)
    hidden = [float(np.abs(np.asarray(a) - b.numpy()).max()) for a, b in zip(ours.hidden_states, theirs.hidden_states)]
    return last, hidden


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_matches_transformers_with_padding_and_mask(tmp_path, layout):
    reference = save_tiny_checkpoint(tmp_path, layout, bin_file=layout == "hubert")
    waveform, mask = _padded_batch()
    with torch.no_grad():
        expected = _encoder(reference)(waveform, attention_mask=mask, output_hidden_states=True)
        expected_unpadded = _encoder(reference)(waveform[:1, :5500]).last_hidden_state.numpy()
    model, variables = from_pretrained(tmp_path)
    got = jax.jit(lambda v, x, m: model.apply(v, x, attention_mask=m, output_hidden_states=True))(
        variables, waveform.numpy(), mask.numpy())
    got_unpadded = jax.jit(model.apply)(variables, waveform[:1, :5500].numpy())

    assert got.last_hidden_state.shape == (2, 24, 32)  # (8000 - 400) // 320 + 1 frames
    last, hidden = _max_errors(got, expected)
    assert last <= PARITY_TOL, (layout, last)
    assert max(hidden) <= PARITY_TOL, (layout, hidden)
    assert got_unpadded.hidden_states is None
    assert float(np.abs(np.asarray(got_unpadded.last_hidden_state) - expected_unpadded).max()) <= PARITY_TOL
    if layout == "layer-stable":  # transformers 5: the last layer's output before the final LayerNorm
        assert float(jnp.abs(got.hidden_states[-1] - got.last_hidden_state).max()) > 0.1


def test_output_length_matches_transformers(tmp_path):
    reference = save_tiny_checkpoint(tmp_path, "group-postln")
    model, _ = from_pretrained(tmp_path)
    lengths = np.array([0, 399, 400, 719, 720, 1000, 16000, 16080, 123457])
    expected = _encoder(reference)._get_feat_extract_output_lengths(torch.tensor(lengths)).numpy()
    got = np.maximum(model.config.output_length(lengths), 0)
    np.testing.assert_array_equal(got, np.maximum(expected, 0))
    assert model.config.frame_stride == 320 and model.config.receptive_field == 400


def test_dropout_only_when_not_deterministic(tmp_path):
    save_tiny_checkpoint(tmp_path, "group-postln")
    model, variables = from_pretrained(tmp_path)
    x = np.random.default_rng(0).standard_normal((1, 4000)).astype(np.float32)
    eval_out = jax.jit(model.apply)(variables, x).last_hidden_state
    train_apply = jax.jit(lambda v, x, key: model.apply(v, x, deterministic=False, rngs={"dropout": key}))
    train = [train_apply(variables, x, jax.random.key(k)).last_hidden_state for k in (0, 0, 1)]
    assert float(jnp.abs(train[0] - eval_out).max()) > 1e-2
    np.testing.assert_array_equal(np.asarray(train[0]), np.asarray(train[1]))
    assert float(jnp.abs(train[0] - train[2]).max()) > 1e-2


def test_config_defaults_are_transformers_defaults():
    # load_config fills fields a config.json leaves out with EncoderConfig's defaults.
    for config_cls in (Wav2Vec2Config, HubertConfig):
        reference = config_cls()
        for field, value in EncoderConfig.__dataclass_fields__.items():
            if field == "model_type" or not hasattr(reference, field):
                continue
            theirs = getattr(reference, field)
            assert (tuple(theirs) if isinstance(theirs, list) else theirs) == value.default, (config_cls, field)


def test_saved_config_round_trips(tmp_path):
    save_tiny_checkpoint(tmp_path, "layer-stable")
    model, _ = from_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert model.config.model_type == "wav2vec2"
    assert model.config.conv_dim == tuple(raw["conv_dim"]) and model.config.do_stable_layer_norm
