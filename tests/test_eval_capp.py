"""CAPP (vasa_jax.eval.capp): a tiny model trained on a constructed audio-pose relation, saving and loading, scoring
and the training command."""

import dataclasses
import json

import numpy as np
import pytest

from vasa_jax.data.toyworld.speech import gaussian_smooth
from vasa_jax.errors import ConfigError
from vasa_jax.eval import capp as capp_lib

CONFIG, TRAINING = capp_lib.PRESETS["tiny"]
FRAMES = 150


def constructed_pairs(rng, clips: int):
    """Features [C, T, 80] (the mel encoder's size; two of smooth noise, the rest silent), and a head that follows
    the two, two frames late, on top of a slow drift of its own: a relation a CAPP learns in a few hundred steps."""
    z = np.zeros((clips, FRAMES + 2, 80))
    z[..., :2] = gaussian_smooth(rng.normal(size=(clips, FRAMES + 2, 2)), 2.0, axis=1) * 3.0
    drift = np.linspace(0, 1, FRAMES)[None, :, None] * rng.normal(0, 5, (clips, 1, 3))
    angles = np.stack([15 * z[:, :FRAMES, 0], 8 * z[:, :FRAMES, 1], np.zeros((clips, FRAMES))], -1) + drift
    return z[:, 2:].astype(np.float32), angles.astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    data = (*constructed_pairs(rng, 256), *constructed_pairs(rng, 16))
    training = dataclasses.replace(TRAINING, steps=300, log_every=1000)
    model, report = capp_lib.train_capp(CONFIG, training, data=data, log=lambda s: None)
    return model, report, data


def test_matched_pairs_score_above_shuffled_ones(trained):
    _, report, _ = trained
    assert report["windows"] == 16  # one window per held-out clip of 150 frames (room for 4 frames of shift)
    assert report["matched_score"] > report["shuffled_score"] + 0.3
    assert report["retrieval_top1"] >= 4 * report["retrieval_chance"]
    assert report["shift_scores"][0] == pytest.approx(report["matched_score"])


def test_score_save_and_load(trained, tmp_path):
    model, _, (_, _, features, angles) = trained
    matched = model.score_features(features[0], angles[0])
    shuffled = model.score_features(features[0], angles[1])
    assert len(matched["capp_windows"]) == 2  # windows at frames 0 and 75
    assert matched["capp"] > shuffled["capp"]
    model.save(tmp_path / "capp", {"note": 1})
    loaded = capp_lib.Capp.load(tmp_path / "capp")
    assert loaded.config == model.config
    again = loaded.score_features(features[0], angles[0])
    assert again["capp"] == pytest.approx(matched["capp"])
    np.testing.assert_allclose(again["capp_windows"], matched["capp_windows"], rtol=1e-6)
    assert json.loads((tmp_path / "capp" / capp_lib.CONFIG_FILE).read_text())["note"] == 1
    # From a waveform: the model's own audio encoder (mel) makes the features.
    audio = np.random.default_rng(1).normal(0, 0.1, 16000 * 4).astype(np.float32)
    from_audio = loaded.score(audio, angles[0])
    direct = loaded.score_features(loaded.encoder.features(audio), angles[0])
    assert from_audio["capp"] == pytest.approx(direct["capp"])
    np.testing.assert_allclose(from_audio["capp_windows"], direct["capp_windows"], rtol=1e-6)
    with pytest.raises(ValueError, match="the clip has 50"):
        loaded.score_features(features[0][:50], angles[0])


def test_load_errors(tmp_path, trained):
    with pytest.raises(ConfigError, match="not a CAPP model folder"):
        capp_lib.Capp.load(tmp_path)
    model = trained[0]
    other = dataclasses.replace(model.config, width=16, heads=2)
    capp_lib.Capp(other, capp_lib.init_params(other, __import__("jax").random.key(0), 80), model.audio_mean,
                  model.audio_std).save(tmp_path / "other")
    (tmp_path / "other" / capp_lib.CONFIG_FILE).write_text(json.dumps({"config": dataclasses.asdict(model.config)}))
    with pytest.raises(ConfigError, match="do not match"):
        capp_lib.Capp.load(tmp_path / "other")
    with pytest.raises(ConfigError, match="multiple of patch"):
        capp_lib.CappConfig(window=76)


def test_windows_and_starts():
    np.testing.assert_array_equal(capp_lib.window_starts(150, 75), [0, 75])
    np.testing.assert_array_equal(capp_lib.window_starts(160, 75), [0, 75, 85])
    rng = np.random.default_rng(0)
    for _ in range(20):
        starts = capp_lib.sample_starts(rng, 225, 75, 4, 15)
        assert starts.min() >= 0 and starts.max() <= 150 and np.diff(starts).min() >= 15


def test_training_command(tmp_path, capsys):
    out = tmp_path / "capp_tiny"
    args = ["--out", str(out), "--preset", "tiny", "--steps", "2", "--warmup-steps", "0", "--train-clips", "2",
            "--heldout-clips", "2", "--clip-seconds", "3.2", "--workers", "1"]
    assert capp_lib.main(args) == 0
    printed = capsys.readouterr().out
    assert "matched" in printed and "retrieval top-1" in printed
    meta = json.loads((out / capp_lib.CONFIG_FILE).read_text())
    assert meta["heldout"]["windows"] == 2 and meta["training"]["steps"] == 2
    capp_lib.Capp.load(out)
    assert capp_lib.main(args) == 2  # never overwrites a model
    assert capsys.readouterr().err.strip().endswith("already holds a CAPP model; choose a new --out")
