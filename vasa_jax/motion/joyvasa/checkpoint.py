"""Loading JoyVASA's published files without running code from them, and a converted form that needs no torch.

    model, params = load_joyvasa("JoyVASA")       # the hub folder: motion_generator/*.pt, motion_template/*.pkl
    model, params = load_joyvasa("JoyVASA/motion_generator/iter_0020000.pt", hubert="chinese-hubert-base")
    save_joyvasa("joyvasa-converted", model, params); load_joyvasa("joyvasa-converted")   # joyvasa.json + .safetensors

The checkpoint .pt (a dict: `model`, the state dict of upstream's whole DitTalkingHead, and `args`, its
argparse.Namespace) is read by torch.load(weights_only=True) admitting argparse.Namespace and, as plain strings,
the pathlib paths training stored in the namespace. The motion template .pkl is read by an unpickler that admits
numpy arrays, dtypes and scalars only. HuBERT's weights come from the checkpoint (upstream saves the encoder it
fine-tuned with the rest) with HuBERT base's architecture, or the `hubert` folder's config.json where given;
from that folder's weights only when the checkpoint has none. Every problem raises CheckpointError naming the file.
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import json
import os
import pathlib
import pickle
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.audio.checkpoint import convert_state_dict, from_pretrained, load_config
from vasa_jax.audio.wav2vec2 import EncoderConfig, Wav2Vec2Model
from vasa_jax.errors import ConfigError
from vasa_jax.io.weights import CheckpointError, check_tree, flatten, read_weights_tree
from vasa_jax.motion.joyvasa.config import FPS, JoyVasaConfig
from vasa_jax.motion.joyvasa.model import JoyVasa
from vasa_jax.motion.joyvasa.network import DenoisingNetwork

MODEL_FOLDER, TEMPLATE_FILE = "motion_generator", Path("motion_template") / "motion_template.pkl"
PREFERRED_MODEL_FILES = ("motion_generator_hubert_chinese.pt", "iter_0020000.pt")  # upstream's config, its README
CONVERTED_MANIFEST, CONVERTED_WEIGHTS = "joyvasa.json", "joyvasa.safetensors"
CONVERTED_FORMAT, CONVERTED_VERSION = "vasa-jax-joyvasa", 1
AUDIO_MODELS = {"hubert": "hubert", "hubert_zh": "hubert", "hubert_zh_ori": "hubert", "wav2vec2": "wav2vec2"}
_AUDIO_PREFIX = "audio_encoder."
# Buffers upstream keeps in its state dict that this port recomputes (tables, the mask) or does not use.
_IGNORED = {"denoising_net.TE.pe", "denoising_net.PE.pe", "denoising_net.alignment_mask", "diffusion_sched.betas",
            "diffusion_sched.sigmas_flex"}
_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "in_proj_kernel": "in_proj_weight", "sigmas": "sigmas_inflex"}
_TEMPLATE_SIZES = {"exp": 63, "scale": 1, "t": 3, "pitch": 1, "yaw": 1, "roll": 1}  # the motion vector, in order
_SHOWN_KEYS = 8


def load_joyvasa(path: str | os.PathLike, hubert: str | os.PathLike | None = None, *,
                 template: str | os.PathLike | None = None,
                 positional_encoding: str | None = None) -> tuple[JoyVasa, dict]:
    """A JoyVASA motion generator -> (JoyVasa model, params).

    path: the JoyVASA folder (motion_generator/*.pt and motion_template/motion_template.pkl), a checkpoint .pt
    (its template then at ../motion_template/motion_template.pkl, or `template`), or a folder save_joyvasa wrote.
    hubert: the chinese-hubert-base folder (config.json, weights), for a .pt checkpoint only.
    positional_encoding: "single_row" (default: the form the released weights were made with) or "per_token".
    """
    root = Path(path)
    if not root.exists():
        raise CheckpointError(path, "not found: expected the JoyVASA folder or its motion generator .pt file")
    if root.is_dir() and (root / CONVERTED_MANIFEST).is_file():
        return _load_converted(root, positional_encoding)
    model_file = _model_file(root) if root.is_dir() else root
    if template is None:
        template = (root if root.is_dir() else model_file.parent.parent) / TEMPLATE_FILE
    state, args = read_checkpoint(model_file)
    config = _config(model_file, args, state, hubert, positional_encoding)
    audio_encoder = _audio_variables(model_file, state, config.audio, hubert)
    params = convert_state(model_file, state, config)
    params["audio_encoder"] = audio_encoder
    params["template"] = read_template(template, config)
    return JoyVasa(config), params


def save_joyvasa(folder: str | os.PathLike, model: JoyVasa, params: dict) -> Path:
    """Writes the converted form: joyvasa.json (format, config) and joyvasa.safetensors (params, float32)."""
    from safetensors.numpy import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": CONVERTED_FORMAT, "version": CONVERTED_VERSION, "config": dataclasses.asdict(model.config)}
    (out / CONVERTED_MANIFEST).write_text(json.dumps(manifest, indent=1))
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in flatten(jax.device_get(params)).items()},
              out / CONVERTED_WEIGHTS)
    return out


def read_checkpoint(file: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The .pt's state dict (float tensors as float32 numpy; others, such as the bool mask, dropped) and its args."""
    try:
        import torch
    except ImportError:
        raise CheckpointError(file, "reading a .pt checkpoint needs torch, which is not installed; install torch, "
                                    "or convert it once where torch is (save_joyvasa)") from None
    # Training stored pathlib paths (e.g. data_root) in the namespace; they come back as strings.
    admitted = [argparse.Namespace, (_posix_path, "pathlib.PosixPath"), (_windows_path, "pathlib.WindowsPath")]
    try:
        with torch.serialization.safe_globals(admitted):
            data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types here (UnpicklingError, RuntimeError, EOFError, ...)
        raise CheckpointError(file, f"cannot be read by torch.load(weights_only=True) ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or "args" not in data:
        raise CheckpointError(file, "is not a JoyVASA motion generator checkpoint (a dict with 'model' and 'args')")
    args = data["args"]
    args = vars(args) if isinstance(args, argparse.Namespace) else args
    if not isinstance(args, dict):
        raise CheckpointError(file, f"its 'args' is a {type(args).__name__}, not an argparse namespace")
    state = {k: v.detach().to(torch.float32).numpy() for k, v in data["model"].items()
             if isinstance(v, torch.Tensor) and v.is_floating_point()}
    return state, args


def _posix_path(*parts) -> str:
    return str(pathlib.PurePosixPath(*parts))


def _windows_path(*parts) -> str:
    return str(pathlib.PureWindowsPath(*parts))


def _model_file(root: Path) -> Path:
    folder = root / MODEL_FOLDER if (root / MODEL_FOLDER).is_dir() else root
    files = sorted(folder.glob("*.pt"))
    for name in PREFERRED_MODEL_FILES:
        if folder / name in files:
            return folder / name
    if len(files) == 1:
        return files[0]
    if not files:
        raise CheckpointError(root, f"holds no motion generator: expected {MODEL_FOLDER}/*.pt (from the hub's "
                                    "jdh-algo/JoyVASA) or a converted joyvasa.json")
    raise CheckpointError(folder, f"holds several checkpoints ({', '.join(f.name for f in files)}); pass one file")


def _base_encoder(model_type: str, state: dict) -> EncoderConfig:
    """HuBERT / Wav2Vec2 base, with HuBERT's two optional parts as the checkpoint's keys show them."""
    if model_type == "wav2vec2":
        return EncoderConfig(model_type="wav2vec2")
    return EncoderConfig(
        model_type="hubert",
        feat_proj_layer_norm=f"{_AUDIO_PREFIX}feature_projection.layer_norm.weight" in state,
        conv_pos_batch_norm=f"{_AUDIO_PREFIX}encoder.pos_conv_embed.batch_norm.weight" in state)


def _config(file: Path, args: dict, state: dict, hubert, positional_encoding: str | None) -> JoyVasaConfig:
    names = ("motion_feat_dim", "n_motions", "n_prev_motions", "feature_dim", "n_diff_steps", "audio_model")
    missing = [n for n in names if n not in args]
    if missing:
        raise CheckpointError(file, f"its args lack {missing}")
    audio_model = AUDIO_MODELS.get(str(args["audio_model"]))
    if audio_model is None:
        raise CheckpointError(file, f"its audio_model is {args['audio_model']!r}; JoyVASA's loader knows "
                                    f"{sorted(AUDIO_MODELS)}")
    if args.get("fps", FPS) != FPS:
        raise CheckpointError(file, f"its args say fps {args['fps']}; upstream's model runs at {FPS} fps only")
    audio = load_config(hubert) if hubert is not None else _base_encoder(audio_model, state)
    try:
        return JoyVasaConfig(motion_dim=int(args["motion_feat_dim"]), n_motions=int(args["n_motions"]),
                             n_prev_motions=int(args["n_prev_motions"]), feature_dim=int(args["feature_dim"]),
                             n_diff_steps=int(args["n_diff_steps"]), pad_mode=str(args.get("pad_mode", "zero")),
                             positional_encoding=positional_encoding or JoyVasaConfig.positional_encoding,
                             audio=audio)
    except ConfigError as e:
        raise CheckpointError(file, f"its args describe a model this port cannot build: {e}") from None


def _abstract_params(config: JoyVasaConfig) -> dict:
    """Shapes of every param but the audio encoder's and the template (jax.ShapeDtypeStruct leaves)."""
    c = config
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)  # noqa: E731
    network = jax.eval_shape(
        DenoisingNetwork(c).init, jax.random.key(0), zeros(1, c.n_motions, c.motion_dim),
        zeros(1, c.n_motions, c.feature_dim), zeros(1, c.n_prev_motions, c.motion_dim),
        zeros(1, c.n_prev_motions, c.feature_dim), jnp.ones((1,), jnp.int32))["params"]
    shape = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)  # noqa: E731
    schedule = shape(c.n_diff_steps + 1)
    return {"denoising_net": network,
            "audio_feature_map": {"kernel": shape(c.audio_dim, c.feature_dim), "bias": shape(c.feature_dim)},
            "start_motion_feat": shape(1, c.n_prev_motions, c.motion_dim),
            "start_audio_feat": shape(1, c.n_prev_motions, c.feature_dim),
            "null_audio_feat": shape(1, 1, c.feature_dim),
            "diffusion_sched": {"alphas": schedule, "alpha_bars": schedule, "sigmas": schedule}}


def _torch_key(path) -> tuple[str, bool]:
    """A Flax param path -> (upstream's state-dict key, whether the value is transposed on the way)."""
    *modules, leaf = [p.key for p in path]
    names = [re.sub(r"_(\d+)$", r".\1", m) for m in modules]
    return ".".join(names + [_TORCH_LEAF.get(leaf, leaf)]), leaf.endswith("kernel")


def convert_state(file: Path, state: dict[str, np.ndarray], config: JoyVasaConfig) -> dict:
    """Upstream's state dict -> params (all but audio_encoder and template); CheckpointError listing missing,
    unexpected and misshapen keys."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(_abstract_params(config))
    values, missing, misshapen = [], [], []
    used = set()
    for path, leaf in leaves:
        key, transposed = _torch_key(path)
        if key not in state:
            missing.append(key)
            values.append(None)
            continue
        used.add(key)
        value = state[key].T if transposed else state[key]
        if value.shape != leaf.shape:
            misshapen.append(f"{key} {tuple(state[key].shape)} (the args imply "
                             f"{tuple(leaf.shape[::-1] if transposed else leaf.shape)})")
        values.append(value)
    unexpected = sorted(k for k in state if k not in used and k not in _IGNORED and not k.startswith(_AUDIO_PREFIX))
    problems = [f"{len(keys)} {kind}: {', '.join(keys[:_SHOWN_KEYS])}{', ...' if len(keys) > _SHOWN_KEYS else ''}"
                for kind, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("keys with the wrong shape", misshapen)) if keys]
    if problems:
        raise CheckpointError(file, "the weights do not fit JoyVASA's DitTalkingHead: " + "; ".join(problems))
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v, jnp.float32) for v in values])


def _audio_variables(file: Path, state: dict, config: EncoderConfig, hubert) -> dict:
    encoder = {k[len(_AUDIO_PREFIX):]: v for k, v in state.items() if k.startswith(_AUDIO_PREFIX)}
    if not encoder:
        if hubert is None:
            raise CheckpointError(file, "holds no audio encoder weights (audio_encoder.*); pass the "
                                        "chinese-hubert-base folder as `hubert`")
        return from_pretrained(hubert)[1]
    try:
        return convert_state_dict(encoder, config, file)
    except CheckpointError as e:
        hint = "" if hubert is not None else " (read as the base architecture; pass the encoder's folder as `hubert`)"
        raise CheckpointError(file, f"its audio_encoder.* weights do not fit{hint}: {e.problem}") from None


class _TemplateUnpickler(pickle.Unpickler):
    """Admits what numpy arrays, dtypes and scalars are pickled with; plain containers need no class. Anything
    else stops the load before it is called."""

    def find_class(self, module, name):
        admitted = _TEMPLATE_GLOBALS.get((module, name))
        if admitted is None:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, and a motion template holds only numpy "
                                         "arrays (refused; nothing was run)")
        return admitted


def _template_globals() -> dict:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray, numeric

    # Protocol 2 spells bytes as _codecs.encode(text, "latin1"); protocol 5 rebuilds arrays with _frombuffer.
    admitted = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}
    for package in ("numpy.core", "numpy._core"):  # files pickled under numpy 1 and 2
        admitted[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        admitted[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        admitted[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return admitted


_TEMPLATE_GLOBALS = _template_globals()


def read_template(path: str | os.PathLike, config: JoyVasaConfig) -> dict:
    """motion_template.pkl -> {"scale": [70], "offset": [70]}: exp = x * std + mean, the rest x * (max - min) + min."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(file, "motion template not found (JoyVASA's motion_template/motion_template.pkl); "
                                    "pass it as `template`")
    try:
        with open(file, "rb") as f:
            raw = _TemplateUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as e:
        raise CheckpointError(file, f"cannot be read as a motion template: {e}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(file, f"holds a {type(raw).__name__}, not the motion template's dict of arrays")
    if config.motion_dim != sum(_TEMPLATE_SIZES.values()):
        raise CheckpointError(file, f"the template covers {sum(_TEMPLATE_SIZES.values())}-d motion; the checkpoint's "
                                    f"motion_feat_dim is {config.motion_dim}")

    def entry(key: str, size: int) -> np.ndarray:
        if key not in raw:
            raise CheckpointError(file, f"the motion template lacks {key!r}")
        try:
            value = np.asarray(raw[key], np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise CheckpointError(file, f"the motion template's {key!r} is not an array of numbers") from None
        if value.size != size:
            raise CheckpointError(file, f"the motion template's {key!r} has {value.size} values; expected {size}")
        return value

    scale, offset = [], []
    for part, size in _TEMPLATE_SIZES.items():
        if part == "exp":
            scale.append(entry("std_exp", size))
            offset.append(entry("mean_exp", size))
        else:
            low = entry(f"min_{part}", size)
            scale.append(entry(f"max_{part}", size) - low)
            offset.append(low)
    return {"scale": jnp.asarray(np.concatenate(scale), jnp.float32),
            "offset": jnp.asarray(np.concatenate(offset), jnp.float32)}


def _load_converted(root: Path, positional_encoding: str | None) -> tuple[JoyVasa, dict]:
    manifest_file = root / CONVERTED_MANIFEST
    try:
        manifest = json.loads(manifest_file.read_text())
        if manifest.get("format") != CONVERTED_FORMAT or manifest.get("version") != CONVERTED_VERSION:
            raise ValueError(f"format {manifest.get('format')!r} version {manifest.get('version')!r}; expected "
                             f"{CONVERTED_FORMAT!r} version {CONVERTED_VERSION}")
        fields = dict(manifest["config"])
        audio = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.pop("audio").items()}
        if positional_encoding is not None:
            fields["positional_encoding"] = positional_encoding
        config = JoyVasaConfig(**fields, audio=EncoderConfig(**audio))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(manifest_file, f"is not a converted JoyVASA manifest ({e})") from None
    weights = root / CONVERTED_WEIGHTS
    params = read_weights_tree(weights)
    c = config
    audio_shapes = jax.eval_shape(Wav2Vec2Model(c.audio).init, jax.random.key(0),
                                  jnp.zeros((1, c.audio.receptive_field), jnp.float32))
    template = {"scale": jax.ShapeDtypeStruct((c.motion_dim,), jnp.float32),
                "offset": jax.ShapeDtypeStruct((c.motion_dim,), jnp.float32)}
    check_tree(weights, params, {**_abstract_params(c), "audio_encoder": audio_shapes, "template": template},
               "JoyVASA model")
    return JoyVasa(config), jax.tree.map(jnp.asarray, params)
