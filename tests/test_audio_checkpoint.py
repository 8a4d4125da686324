"""vasa_jax.audio.checkpoint: reading Hugging Face folders, key spellings, and errors a user can act on."""

import json
import sys

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from audio_models import save_tiny_checkpoint

from vasa_jax.audio import CheckpointError, from_pretrained
from vasa_jax.audio.checkpoint import expects_normalized_input, load_config, load_state_dict


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("w2v")
    save_tiny_checkpoint(folder, "group-postln")
    return folder


def _copy(folder, dest, state=None, config_changes=None):
    dest.mkdir(exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config.update(config_changes or {})
    (dest / "config.json").write_text(json.dumps(config))
    save_file(load_file(folder / "model.safetensors") if state is None else state, dest / "model.safetensors")
    return dest


def _leaves(variables):
    return jax.tree.leaves(jax.tree.map(np.asarray, variables))


def test_prefix_and_weight_norm_spellings_load_the_same(checkpoint, tmp_path):
    state = load_file(checkpoint / "model.safetensors")
    assert any(k.startswith("lm_head.") for k in state) and "wav2vec2.masked_spec_embed" in state
    bare = {k.removeprefix("wav2vec2."): v for k, v in state.items() if k.startswith("wav2vec2.")}
    bare = {k.replace("parametrizations.weight.original0", "weight_g")
            .replace("parametrizations.weight.original1", "weight_v"): v for k, v in bare.items()}
    _, reference = from_pretrained(checkpoint)
    _, loaded = from_pretrained(_copy(checkpoint, tmp_path / "bare", bare))
    for a, b in zip(_leaves(reference), _leaves(loaded)):
        np.testing.assert_array_equal(a, b)


def test_sharded_safetensors(checkpoint, tmp_path):
    state = load_file(checkpoint / "model.safetensors")
    keys = sorted(state)
    shards = {"part-1.safetensors": keys[: len(keys) // 2], "part-2.safetensors": keys[len(keys) // 2:]}
    dest = tmp_path / "sharded"
    dest.mkdir()
    (dest / "config.json").write_text((checkpoint / "config.json").read_text())
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, dest / name)
    weight_map = {k: name for name, names in shards.items() for k in names}
    (dest / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert load_state_dict(dest).keys() == state.keys()


def test_missing_and_unexpected_keys_are_listed(checkpoint, tmp_path):
    state = load_file(checkpoint / "model.safetensors")
    del state["wav2vec2.encoder.layers.1.attention.q_proj.weight"]
    state["wav2vec2.encoder.layers.7.attention.q_proj.weight"] = np.zeros((32, 32), np.float32)
    with pytest.raises(CheckpointError) as e:
        from_pretrained(_copy(checkpoint, tmp_path / "bad", state))
    message = str(e.value)
    assert str(tmp_path / "bad") in message
    assert "1 missing keys: encoder.layers.1.attention.q_proj.weight" in message
    assert "1 unexpected keys: encoder.layers.7.attention.q_proj.weight" in message


def test_weights_that_do_not_fit_the_config(checkpoint, tmp_path):
    expected = r"wrong shape: .*q_proj.weight \(32, 32\) \(config.json implies \(48, 48\)"
    with pytest.raises(CheckpointError, match=expected):
        from_pretrained(_copy(checkpoint, tmp_path / "wide", config_changes={"hidden_size": 48}))


def test_pytorch_bin_needs_torch(tmp_path, monkeypatch):
    save_tiny_checkpoint(tmp_path, "hubert", bin_file=True)
    assert not (tmp_path / "model.safetensors").exists()
    assert load_config(tmp_path).model_type == "hubert"
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(CheckpointError, match="pytorch_model.bin: reading it needs torch"):
        from_pretrained(tmp_path)


@pytest.mark.parametrize("problem, expected", [
    ("no folder", "checkpoint folder not found"),
    ("a file", "is a file; expected a checkpoint folder"),
    ("no config", "has no config.json"),
    ("bad json", "config.json is not valid JSON"),
    ("wavlm", "model_type 'wavlm'; vasa-jax reads wav2vec2 and hubert"),
    ("adapter", "adapter layers"),
    ("no weights", "has no weights: expected model.safetensors or pytorch_model.bin"),
    ("corrupt weights", "model.safetensors: cannot be read as safetensors"),
])
def test_unusable_folders_name_the_folder_and_the_problem(checkpoint, tmp_path, problem, expected):
    folder = tmp_path / "ckpt"
    if problem == "a file":
        folder.write_text("x")
    elif problem != "no folder":
        folder.mkdir()
        config = json.loads((checkpoint / "config.json").read_text())
        config.update({"wavlm": {"model_type": "wavlm"}, "adapter": {"add_adapter": True}}.get(problem, {}))
        if problem == "bad json":
            (folder / "config.json").write_text("{not json")
        elif problem != "no config":
            (folder / "config.json").write_text(json.dumps(config))
        if problem == "corrupt weights":
            (folder / "model.safetensors").write_bytes(b"\x00" * 64)
        elif problem not in ("no weights", "no config", "bad json"):
            (folder / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as e:
        from_pretrained(folder)
    assert str(e.value).startswith(f"{folder}") and expected in str(e.value)  # the folder, or a file in it
    assert isinstance(e.value, ValueError)


def test_feature_extractor_settings(tmp_path):
    assert expects_normalized_input(tmp_path) is True  # no preprocessor_config.json: the extractor's default
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": False, "sampling_rate": 16000}))
    assert expects_normalized_input(tmp_path) is False
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 8000}))
    with pytest.raises(CheckpointError, match="expects 8000 Hz audio"):
        expects_normalized_input(tmp_path)
