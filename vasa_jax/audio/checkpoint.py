"""Wav2Vec2 / HuBERT checkpoints in Hugging Face's folder format -> (Wav2Vec2Model, variables).

A folder holds config.json plus model.safetensors (read with safetensors' numpy loader) or pytorch_model.bin
(read through torch with weights_only=True, so a checkpoint cannot run code; only when torch is installed),
either possibly sharded with an *.index.json. Nothing is downloaded: fetch a checkpoint once and pass its folder.
Every problem raises CheckpointError naming the folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.audio.wav2vec2 import EncoderConfig, Wav2Vec2Model
from vasa_jax.io.weights import CheckpointError, checkpoint_folder, read_state_dict

SUPPORTED_MODEL_TYPES = ("wav2vec2", "hubert")
_PREFIXES = ("wav2vec2.", "hubert.")  # transformers' base_model_prefix, in checkpoints of models with heads
# Keys of the encoder's own namespace that inference never uses (SpecAugment's mask vector, BatchNorm's counter).
_UNUSED_SUFFIXES = ("masked_spec_embed", "num_batches_tracked")
_POS_CONV = "encoder.pos_conv_embed.conv."
_WEIGHT_NORM_SPELLINGS = (("weight_g", "weight_v"), ("parametrizations.weight.original0",
                                                      "parametrizations.weight.original1"))
_SHOWN_KEYS = 12  # keys listed per kind in an error message


def from_pretrained(folder: str | os.PathLike) -> tuple[Wav2Vec2Model, dict]:
    """Loads a local Hugging Face-format Wav2Vec2 / HuBERT folder.

    Returns (model, variables): `model.apply(variables, waveform [B, N], attention_mask=None,
    output_hidden_states=False)` gives transformers' Wav2Vec2Model / HubertModel outputs in eval mode.
    variables holds 'params' (and 'batch_stats' for HuBERT's conv_pos_batch_norm variant).
    """
    config = load_config(folder)
    state = load_state_dict(folder)
    return Wav2Vec2Model(config), convert_state_dict(state, config, folder)


def load_config(folder: str | os.PathLike) -> EncoderConfig:
    """config.json -> EncoderConfig, with transformers' defaults for fields the file leaves out."""
    path = _check_folder(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(folder, "has no config.json; expected a Hugging Face model folder "
                                      "(config.json plus model.safetensors or pytorch_model.bin)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(folder, f"config.json is not valid JSON ({e})") from None
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(folder, f"config.json has model_type {model_type!r}; vasa-jax reads "
                                      f"{' and '.join(SUPPORTED_MODEL_TYPES)} checkpoints")
    if raw.get("add_adapter") or raw.get("adapter_attn_dim") is not None:
        raise CheckpointError(folder, "adapter layers (add_adapter / adapter_attn_dim) are not supported")
    fields = {f.name for f in dataclasses.fields(EncoderConfig)}
    if model_type == "wav2vec2":  # HuBERT-only switches; Wav2Vec2Config has neither
        fields -= {"feat_proj_layer_norm", "conv_pos_batch_norm"}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in fields}
    try:
        return EncoderConfig(**values)
    except (TypeError, ValueError) as e:
        raise CheckpointError(folder, f"config.json describes an unsupported architecture: {e}") from None


def expects_normalized_input(folder: str | os.PathLike) -> bool:
    """Whether the checkpoint's feature extractor normalises each utterance (do_normalize; default True).

    Reads preprocessor_config.json where the folder has one; Wav2Vec2FeatureExtractor's default otherwise.
    """
    path = _check_folder(folder) / "preprocessor_config.json"
    if not path.is_file():
        return True
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(folder, f"preprocessor_config.json is not valid JSON ({e})") from None
    if raw.get("sampling_rate", 16000) != 16000:
        raise CheckpointError(folder, f"the feature extractor expects {raw['sampling_rate']} Hz audio; "
                                      "vasa-jax feeds 16000 Hz")
    return bool(raw.get("do_normalize", True))


def load_state_dict(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as float32 numpy arrays, keyed as in the file."""
    root = _check_folder(folder)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (root / name).is_file():
            return read_state_dict(root / name)
        index = root / f"{name}.index.json"
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, AttributeError) as e:
                raise CheckpointError(folder, f"{index.name} is not a valid shard index ({e})") from None
            state = {}
            for shard in shards:
                if not (root / shard).is_file():
                    raise CheckpointError(folder, f"{index.name} names {shard}, which is missing")
                state.update(read_state_dict(root / shard))
            return state
    raise CheckpointError(folder, "has no weights: expected model.safetensors or pytorch_model.bin "
                                  "(or their sharded *.index.json form)")


def convert_state_dict(state: dict[str, np.ndarray], config: EncoderConfig,
                       folder: str | os.PathLike = "checkpoint") -> dict:
    """transformers' state dict -> Wav2Vec2Model variables ({'params': ...} and maybe {'batch_stats': ...}).

    Takes keys with or without the 'wav2vec2.' / 'hubert.' prefix (with it, keys outside the prefix are task or
    pretraining heads and are dropped), either spelling of the positional conv's weight norm, and drops
    SpecAugment's masked_spec_embed. Raises CheckpointError listing missing, unexpected or misshapen keys.
    """
    encoder = _encoder_keys(state)
    _fuse_weight_norm(encoder, folder)
    model = Wav2Vec2Model(config)
    abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, config.receptive_field), jnp.float32))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    values, missing, misshapen = [], [], []
    for path, leaf in leaves:
        key = _torch_key(path)
        if key not in encoder:
            missing.append(key)
            values.append(None)
            continue
        value = encoder.pop(key)
        # torch stores Linear (out, in) and Conv1d (out, in, k); Flax wants (in, out) and (k, in, out).
        is_kernel = path[-1].key == "kernel"
        wanted = leaf.shape[::-1] if is_kernel else leaf.shape
        if value.shape != wanted:
            misshapen.append(f"{key} {tuple(value.shape)} (config.json implies {tuple(wanted)})")
        values.append(value.T if is_kernel else value)
    unexpected = sorted(encoder)
    if missing or unexpected or misshapen:
        parts = [f"{len(keys)} {kind}: {', '.join(keys[:_SHOWN_KEYS])}{', ...' if len(keys) > _SHOWN_KEYS else ''}"
                 for kind, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("keys with the wrong shape", misshapen)) if keys]
        raise CheckpointError(folder, "the weights do not fit config.json: " + "; ".join(parts))
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v, jnp.float32) for v in values])


def _check_folder(folder) -> Path:
    return checkpoint_folder(folder, "expected a checkpoint folder (config.json plus weights)")


def _encoder_keys(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    prefixed = any(k.startswith(_PREFIXES) for k in state)
    encoder = {}
    for key, value in state.items():
        if prefixed:
            if not key.startswith(_PREFIXES):
                continue  # a head of a model built on the encoder (lm_head, quantizer, project_q, ...)
            key = key.split(".", 1)[1]
        if not key.endswith(_UNUSED_SUFFIXES):
            encoder[key] = value
    return encoder


def _fuse_weight_norm(encoder: dict[str, np.ndarray], folder) -> None:
    """Replaces the positional conv's (g, v) pair by the kernel g * v / ||v|| (norm over all but the last axis)."""
    for g_name, v_name in _WEIGHT_NORM_SPELLINGS:
        g_key, v_key = _POS_CONV + g_name, _POS_CONV + v_name
        if g_key in encoder or v_key in encoder:
            if g_key not in encoder or v_key not in encoder:
                raise CheckpointError(folder, f"the positional conv's weight norm needs both {g_key} and {v_key}")
            g, v = encoder.pop(g_key).astype(np.float64), encoder.pop(v_key).astype(np.float64)
            norm = np.sqrt(np.square(v).sum(axis=(0, 1), keepdims=True))
            encoder[_POS_CONV + "weight"] = (v * (g / norm)).astype(np.float32)


def _torch_key(path) -> str:
    collection, *modules, leaf = [p.key for p in path]
    names = [re.sub(r"^(layers|conv_layers)_(\d+)$", r"\1.\2", m) for m in modules]
    if collection == "batch_stats":
        return ".".join(names + ["running_" + leaf])
    return ".".join(names + ["weight" if leaf in ("kernel", "scale") else leaf])
