"""vasa_jax.audio.encoders: 25 fps Wav2Vec2 / HuBERT features offline, in windows and streaming; encoders by name.

Windowed features (offline chunks, streaming) differ from one-shot ones only through the transformer's
attention context. Two kinds of test pin this down:
- without transformer layers (finite receptive field) windows must reproduce the one-shot features exactly,
  which proves the windowing, the clip statistics, the padding masks and the frame alignment;
- with layers, random models initialised as transformers does must agree within WINDOW_TOL. That bound is a
  property of the weights: perturbed weights, whose attention is sharper, deviate by ~0.1 (see the report).
"""

import json

import numpy as np
import pytest
import torch
from audio_models import save_tiny_checkpoint
from transformers import Wav2Vec2FeatureExtractor

import vasa_jax.audio.encoders as encoders
from vasa_jax.audio import FPS, CheckpointError, MelFeatures, Wav2Vec2Features, make_audio_encoder, num_frames

EXACT_TOL = 1e-5
WINDOW_TOL = 1e-2  # max abs difference, features of unit scale; chunked and streaming alike


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    made = {}
    for layout in ("group-postln", "layer-stable"):
        for layers in (0, 2):
            folder = tmp_path_factory.mktemp(f"{layout}-{layers}")
            save_tiny_checkpoint(folder, layout, perturb=False, num_hidden_layers=layers)
            made[layout, layers] = folder
    return made


def _speechlike(seconds, seed=0):
    """Noise with a slowly varying level and a DC offset: normalisation and statistics matter."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    envelope = 0.05 + 0.1 * (1 + np.sin(2 * np.pi * np.arange(n) / 16000 * 0.7))
    return (envelope * rng.standard_normal(n) + 0.01).astype(np.float32)


def _stream_all(stream, audio, seed=0, max_piece=4000):
    rng = np.random.default_rng(seed)
    pieces, start = [], 0
    while start < audio.size:
        n = int(rng.integers(1, max_piece))
        pieces.append(stream.push(audio[start: start + n]))
        start += n
    pieces.append(stream.flush())
    return np.concatenate(pieces)


def test_one_shot_is_transformers_at_the_frame_centres(tmp_path):
    reference = save_tiny_checkpoint(tmp_path, "group-postln")  # perturbed weights: a strict comparison
    audio = _speechlike(1.6 + 0.005)  # 640 T + 80 samples: the last frame needs no padding
    encoder = Wav2Vec2Features.from_pretrained(tmp_path, layer="all", chunk_seconds=None)
    feats = encoder.features(audio)
    assert feats.shape == (40, 3, 32) == (num_frames(audio.size), 3, 32)

    normalised = Wav2Vec2FeatureExtractor(do_normalize=True)(audio, sampling_rate=16000, return_tensors="np")
    with torch.no_grad():
        out = reference.wav2vec2(torch.from_numpy(normalised["input_values"]), output_hidden_states=True)
    hidden = torch.stack(out.hidden_states, dim=2)[0].numpy()  # [J = 80, 3, 32] at 50 Hz
    # Frame i (samples [640 i, 640 i + 640), centre 640 i + 320) lies at 2 i + 0.375 on the 50 Hz grid, whose
    # frame j sees samples [320 j, 320 j + 400) (centre 320 j + 200).
    expected = 0.625 * hidden[0::2] + 0.375 * hidden[1::2]
    np.testing.assert_allclose(feats, expected, atol=1e-4)


def test_layer_selection(folders):
    folder = folders["group-postln", 2]
    audio = _speechlike(1.0)
    every = Wav2Vec2Features.from_pretrained(folder, layer="all").features(audio)  # [T, 3, D]
    np.testing.assert_allclose(Wav2Vec2Features.from_pretrained(folder, layer=1).features(audio), every[:, 1],
                               atol=EXACT_TOL)
    np.testing.assert_allclose(Wav2Vec2Features.from_pretrained(folder).features(audio), every[:, -1],
                               atol=EXACT_TOL)  # post-LN: last_hidden_state is the last layer's output
    weights = (0.2, 0.3, 0.5)
    np.testing.assert_allclose(Wav2Vec2Features.from_pretrained(folder, layer=weights).features(audio),
                               np.einsum("tld,l->td", every, weights), atol=EXACT_TOL)
    for bad in ("first", 3, (0.5, 0.5)):
        with pytest.raises(ValueError, match="layer"):
            Wav2Vec2Features.from_pretrained(folder, layer=bad)


@pytest.mark.parametrize("layout", ["group-postln", "layer-stable"])
def test_windows_are_exact_without_attention(folders, layout):
    folder = folders[layout, 0]
    audio = _speechlike(7.0)
    one_shot = Wav2Vec2Features.from_pretrained(folder, chunk_seconds=None)
    expected = one_shot.features(audio)
    chunked = Wav2Vec2Features.from_pretrained(folder, chunk_seconds=1.0, context_seconds=0.5).features(audio)
    streamed = _stream_all(one_shot.stream(stats=one_shot.stats(audio), step_frames=3, left_context_seconds=0.5,
                                           lookahead_seconds=0.2), audio)
    np.testing.assert_allclose(chunked, expected, atol=EXACT_TOL)
    np.testing.assert_allclose(streamed, expected, atol=EXACT_TOL)


@pytest.mark.parametrize("layout", ["group-postln", "layer-stable"])
def test_windows_match_one_shot_within_tolerance(folders, layout):
    folder = folders[layout, 2]
    audio = _speechlike(8.0, seed=1)
    one_shot = Wav2Vec2Features.from_pretrained(folder, chunk_seconds=None)
    expected = one_shot.features(audio)
    chunked = Wav2Vec2Features.from_pretrained(folder, chunk_seconds=2.0, context_seconds=2.0).features(audio)
    streamed = _stream_all(one_shot.stream(stats=one_shot.stats(audio), step_frames=2, left_context_seconds=2.0,
                                           lookahead_seconds=0.16), audio, seed=1)
    assert chunked.shape == streamed.shape == expected.shape == (200, 32)
    assert np.abs(chunked - expected).max() <= WINDOW_TOL
    # Away from the stream's first second, where windows hold under a second of audio (there up to ~2e-2).
    assert np.abs(streamed - expected)[FPS:].max() <= WINDOW_TOL
    # The bound discriminates: features one frame off are far outside it.
    assert np.abs(expected[1:] - expected[:-1]).max() > 50 * WINDOW_TOL


@pytest.mark.parametrize("layout", ["group-postln", "layer-stable"])
def test_running_statistics_converge_to_the_clip_statistics(folders, layout):
    # A stream without given statistics normalises with those of the audio so far. Compared with a stream
    # given the clip's statistics (same windows), it differs by the statistics alone: much at first (on this
    # signal, whose level swings 5x every 1.4 s), less as audio accumulates, not at all once flushed.
    audio = _speechlike(10.0, seed=2)
    encoder = Wav2Vec2Features.from_pretrained(folders[layout, 2], chunk_seconds=None)
    settings = dict(step_frames=2, left_context_seconds=2.0, lookahead_seconds=0.16)
    running = _stream_all(encoder.stream(**settings), audio)
    fixed = _stream_all(encoder.stream(stats=encoder.stats(audio), **settings), audio)
    error = np.abs(running - fixed).max(axis=1)
    assert error[-3:].max() <= EXACT_TOL  # computed at flush, with the whole clip's statistics
    assert error[-2 * FPS:-3].max() < 0.5 * error[:FPS].max()


def test_long_audio_runs_in_bounded_windows(folders, monkeypatch):
    seen = []
    original = encoders._selected_hidden

    def spy(variables, waveform, *args, **kwargs):
        seen.append(waveform.shape[1])
        return original(variables, waveform, *args, **kwargs)

    monkeypatch.setattr(encoders, "_selected_hidden", spy)
    encoder = Wav2Vec2Features.from_pretrained(folders["group-postln", 0], chunk_seconds=2.0, context_seconds=1.0)
    feats = encoder.features(_speechlike(60.0, seed=3))
    assert feats.shape == (1500, 32)
    assert len(seen) == 30 and max(seen) <= 16000 * 5  # 2 s chunks + 2 x 1 s context, padded to whole seconds


def test_default_stream_latency(folders):
    encoder = Wav2Vec2Features.from_pretrained(folders["group-postln", 0])
    # The first frame of a 2-frame group waits for the second (40 ms), 160 ms of look-ahead, and the 80 samples
    # (5 ms) by which the last 50 Hz frame it reads overhangs the group.
    assert encoder.stream().latency_seconds == pytest.approx(0.04 + 0.16 + 0.005)


def test_encoders_by_name(folders, tmp_path):
    assert isinstance(make_audio_encoder("mel"), MelFeatures)
    folder = folders["group-postln", 0]
    encoder = make_audio_encoder("wav2vec2", checkpoint=folder, layer="all")
    assert encoder.name == "wav2vec2" and encoder.dim == 32 and encoder.frame_shape == (1, 32)
    assert encoder.normalize  # no preprocessor_config.json: the feature extractor's default
    with pytest.raises(CheckpointError, match="holds a wav2vec2 model; the config asks for hubert"):
        make_audio_encoder("hubert", checkpoint=folder)
    with pytest.raises(ValueError, match="needs checkpoint="):
        make_audio_encoder("wav2vec2")
    with pytest.raises(ValueError, match="unknown audio encoder 'whisper'"):
        make_audio_encoder("whisper")
    with pytest.raises(ValueError, match="takes no checkpoint"):
        make_audio_encoder("mel", checkpoint=folder)


def test_normalisation_follows_the_checkpoint(folders, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((folders["layer-stable", 0] / name).read_bytes())
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False}))
    audio = _speechlike(1.0, seed=4)
    raw = Wav2Vec2Features.from_pretrained(folder)
    assert not raw.normalize
    normalised = Wav2Vec2Features.from_pretrained(folder, normalize=True)
    assert np.abs(raw.features(audio) - normalised.features(audio)).max() > 0.1
