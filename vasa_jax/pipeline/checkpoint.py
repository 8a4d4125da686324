"""The pipeline checkpoint: one folder with everything generation needs, made from two training runs.

    DIR/pipeline.json        format, vasa-jax version, face and motion configs, audio encoder, where it came from
    DIR/face.safetensors     the face model's (EMA) params, keys "a/b/c" for params["a"]["b"]["c"]
    DIR/motion.safetensors   the motion denoiser's (EMA) params under "denoiser/...", its normalisation
                             statistics under "stats/..." (always float32); a public motion model (JoyVASA)
                             keeps its converted weights in a folder its section names instead
    DIR/audio/               (optional) a copy of the audio encoder's checkpoint folder
    DIR/portrait.png, DIR/speech.wav   (the bundled demo only) what `python sample.py` animates

Weights may be stored as float16 to halve the size (export --dtype float16); they are float32 once loaded.
A training workdir holds an optimiser, a discriminator and several steps; this holds only what sampling reads,
so it is what ships (the bundled demo lives in vasa_jax/assets/demo/).

    python -m vasa_jax.pipeline.export --face runs/face_toy --motion runs/motion_face --out DIR
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np

from vasa_jax import __version__
from vasa_jax.errors import ConfigError
from vasa_jax.face.registry import face_model, is_public_face, load_public_face
from vasa_jax.io.folders import folder_written_whole
from vasa_jax.io.weights import CheckpointError, check_tree, checkpoint_folder, flatten, read_weights_tree
from vasa_jax.motion.config import MotionConfig

FORMAT = "vasa-jax-pipeline"
FORMAT_VERSION = 1
MANIFEST = "pipeline.json"
FACE_WEIGHTS = "face.safetensors"
MOTION_WEIGHTS = "motion.safetensors"
AUDIO_FOLDER = "audio"
DEMO_PORTRAIT = "portrait.png"
DEMO_SPEECH = "speech.wav"
DTYPES = ("float32", "float16")
DEMO_SIZE_LIMIT = 30 * 2**20  # bytes: the bundled demo (checkpoint, portrait and speech) ships inside the package


def bundled_demo_dir() -> Path:
    """Where the bundled demo checkpoint lives (whether or not this installation has it)."""
    return Path(__file__).resolve().parent.parent / "assets" / "demo"


@dataclasses.dataclass
class PipelineCheckpoint:
    """A pipeline checkpoint read into memory (face params as a float32 numpy tree)."""

    path: Path
    face: object  # a FaceModel (vasa_jax.face.registry)
    face_params: dict
    generator: object  # a MotionGenerator with its weights (vasa_jax.motion.generator)
    manifest: dict


def _plain(tree) -> dict:
    """Params restored by Orbax (dicts, maybe FrozenDicts, jax arrays) -> dicts of numpy arrays."""
    if hasattr(tree, "items"):
        return {str(k): _plain(v) for k, v in tree.items()}
    return np.asarray(tree)


def _store(params: dict, dtype: str) -> dict[str, np.ndarray]:
    flat = {k: v.astype(np.float32) for k, v in flatten(params).items()}
    if dtype == "float16":
        stored = {k: v.astype(np.float16) for k, v in flat.items()}
        bad = [k for k, v in stored.items() if not np.all(np.isfinite(v))]
        if bad:
            raise ConfigError(f"params {bad[:3]} overflow float16; export with --dtype float32")
        return stored
    return flat


def _workdir_steps(workdir) -> list[int]:
    """The checkpoint steps a training workdir holds (ConfigError if it is not a workdir)."""
    from vasa_jax.train.checkpoint import Checkpointer

    if not os.path.isfile(os.path.join(workdir, "config.json")):
        raise ConfigError(f"{workdir}: not a training workdir (no config.json)")
    checkpointer = Checkpointer(os.fspath(workdir))
    try:
        return sorted(checkpointer.all_steps())
    finally:
        checkpointer.close()


def export_pipeline(face_workdir, motion_workdir, out, *, dtype: str = "float32", face_step: int | None = None,
                    motion_step: int | None = None, copy_audio: bool = False, overwrite: bool = False) -> Path:
    """Writes a pipeline checkpoint to `out` from a stage-1 and a stage-2 workdir (EMA params of both).

    The stage-2 run must have been trained on this face model's motion (motion_data.source = "face_model" or
    "shards" with motion_data.face_workdir = face_workdir): the motion it generates is what this decoder reads.
    face_workdir may also be a public face model's weights folder (LivePortrait's; vasa_jax.face.registry). face_step
    defaults to the step whose motion stage 2 was trained on (its config.json's motion_data.face_step), else the
    latest.
    copy_audio copies a Wav2Vec2 / HuBERT checkpoint folder into the pipeline folder (it is otherwise referred
    to by its absolute path). The folder is written under a temporary name and renamed when complete.
    """
    from vasa_jax.train.face import load_face_checkpoint
    from vasa_jax.train.motion import load_motion_checkpoint

    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}; got {dtype!r}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; choose a new folder or pass --overwrite")
    motion_config, motion, motion_params = load_motion_checkpoint(os.fspath(motion_workdir), step=motion_step)
    data = motion_config.get("motion_data", {})
    if data.get("source") not in ("face_model", "shards"):
        raise ConfigError(f"{motion_workdir}: its motion model was trained on motion_data.source="
                          f"{data.get('source')!r}; a pipeline needs one trained on the face model's own motion "
                          f"(train.py motion --config.motion_data.source=face_model "
                          f"--config.motion_data.face_workdir={face_workdir})")
    if os.path.realpath(data.get("face_workdir", "")) != os.path.realpath(face_workdir):
        raise ConfigError(f"{motion_workdir} was trained on the motion of {data.get('face_workdir')!r}, not of "
                          f"{face_workdir}; export it with that face model")
    if is_public_face(face_workdir):  # a public face model's weights (LivePortrait): no training steps
        face, face_params = load_public_face(face_workdir)
        face_step = None
    else:
        face_steps = _workdir_steps(face_workdir)
        if face_step is None:
            face_step = int(data.get("face_step", -1))  # recorded by the stage-2 run
            if face_step < 0 and face_steps:
                face_step = face_steps[-1]
        if face_step not in face_steps:
            raise ConfigError(f"{face_workdir}: holds no checkpoint of step {face_step} (it has {face_steps}); "
                              "stage 2 must be trained on the motion of the face step exported (--face-step)")
        _, face, face_params = load_face_checkpoint(os.fspath(face_workdir), step=face_step)
    motion_step = _workdir_steps(motion_workdir)[-1] if motion_step is None else motion_step
    if motion.motion_dim != face.motion_dim:
        raise ConfigError(f"the motion model makes {motion.motion_dim}-d motion; the face model reads "
                          f"{face.motion_dim}-d")

    audio = {"encoder": motion_config.audio.encoder}
    if audio["encoder"] != "mel":
        audio["layer"] = motion_config.audio.get("layer", "last")
        audio["checkpoint"] = os.path.abspath(motion_config.audio.checkpoint)
        if copy_audio:
            audio["checkpoint"] = AUDIO_FOLDER
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "vasa_jax_version": __version__,
        "weights_dtype": dtype,
        "face": face.manifest(),
        "motion": {"implementation": "vasa-dit", **dataclasses.asdict(motion)},
        "audio": audio,
        "sources": {"face_workdir": os.path.abspath(face_workdir), "face_step": face_step,
                    "motion_workdir": os.path.abspath(motion_workdir), "motion_step": motion_step},
    }
    from safetensors.numpy import save_file

    with folder_written_whole(out) as tmp:
        save_file(_store(_plain(face_params), dtype), tmp / FACE_WEIGHTS, metadata={"format": FORMAT})
        motion_tensors = {f"denoiser/{k}": v for k, v in _store(_plain(motion_params["denoiser"]), dtype).items()}
        motion_tensors.update({f"stats/{k}": v.astype(np.float32)
                               for k, v in flatten(_plain(motion_params["stats"])).items()})
        save_file(motion_tensors, tmp / MOTION_WEIGHTS, metadata={"format": FORMAT})
        if copy_audio and audio["encoder"] != "mel":
            shutil.copytree(os.path.abspath(motion_config.audio.checkpoint), tmp / AUDIO_FOLDER)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def replace_face(pipeline, face_workdir, out, *, dtype: str | None = None, face_step: int | None = None,
                 overwrite: bool = False) -> Path:
    """Writes to `out` a copy of the pipeline checkpoint `pipeline` whose face model is face_workdir's (its EMA
    params at face_step, default the latest): a new renderer for the same motion model.

    Valid only when the new face reads motion exactly as the old one did, which is what training it with
    face_train.init_from=<pipeline> and face_train.freeze containing "motion" gives (configs/toy128.py): the two
    motion encoders must hold the same weights, or ConfigError. Everything else in the folder (the motion
    model, audio, the demo's portrait and speech) is copied as it is.
    """
    from vasa_jax.train.face import load_face_checkpoint

    path, manifest, old_face, old_params = _read_face(pipeline)
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; choose a new folder or pass --overwrite")
    if os.path.realpath(out) == os.path.realpath(path):
        raise ConfigError(f"{out}: is the pipeline the motion model comes from; write the new one elsewhere")
    steps = _workdir_steps(face_workdir)
    face_step = steps[-1] if face_step is None and steps else face_step
    if steps and face_step not in steps:
        raise ConfigError(f"{face_workdir}: holds no checkpoint of step {face_step} (it has {steps})")
    _, face, params = load_face_checkpoint(os.fspath(face_workdir), step=face_step)
    params = _plain(params)
    if face.name != old_face.name or face.motion_dim != old_face.motion_dim:
        raise ConfigError(f"{face_workdir}: a {face.name} face model reading {face.motion_dim}-d motion cannot stand "
                          f"in for {path}'s {old_face.name} model of {old_face.motion_dim}-d motion")
    old_encoder, new_encoder = flatten(_plain(old_params.get("motion", {}))), flatten(params.get("motion", {}))
    same = old_encoder.keys() == new_encoder.keys() and all(
        old_encoder[k].shape == new_encoder[k].shape and np.array_equal(old_encoder[k], new_encoder[k])
        for k in old_encoder)
    if not same:
        raise ConfigError(f"{face_workdir}: its motion encoder differs from {path}'s, so {path}'s motion model does "
                          f"not drive it; train it with face_train.init_from={path} and face_train.freeze=motion")
    dtype = dtype or manifest.get("weights_dtype", "float32")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}; got {dtype!r}")
    sources = dict(manifest.get("sources", {}))
    sources.update({"face_workdir": os.path.abspath(face_workdir), "face_step": face_step,
                    "motion_from": os.path.abspath(path)})
    manifest = {**manifest, "vasa_jax_version": __version__, "weights_dtype": dtype, "face": face.manifest(),
                "sources": sources}
    from safetensors.numpy import save_file

    with folder_written_whole(out) as tmp:
        for item in path.iterdir():
            if item.name in (MANIFEST, FACE_WEIGHTS):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        save_file(_store(params, dtype), tmp / FACE_WEIGHTS, metadata={"format": FORMAT})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def folder_size(path) -> int:
    """Bytes of all files under a folder."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def read_pipeline_checkpoint(path) -> PipelineCheckpoint:
    """Reads and checks a pipeline checkpoint folder; CheckpointError naming the file for anything wrong."""
    from vasa_jax.motion.generator import load_generator

    path, manifest, face, face_params = _read_face(path)
    manifest_path = path / MANIFEST
    try:
        generator = load_generator(manifest, path)
    except ConfigError as e:
        raise CheckpointError(manifest_path, f"describes no usable model (ConfigError: {e})") from None
    if generator.motion_dim != face.motion_dim or generator.face_model not in (None, face.name):
        raise CheckpointError(manifest_path, f"pairs a {generator.name} motion model making {generator.motion_dim}-d "
                                             f"motion with a {face.name} face model reading {face.motion_dim}-d")
    return PipelineCheckpoint(path, face, face_params, generator, manifest)


def holds_weights(folder) -> bool:
    """Whether `folder` is a pipeline checkpoint (its face model can drive stage-2 training: registry)."""
    return Path(folder, MANIFEST).is_file()


def load_face_weights(folder):
    """(face model, params) of a pipeline checkpoint's face model, e.g. to train a new motion model on its
    motion (motion_data.face_workdir = the pipeline folder)."""
    _, _, face, face_params = _read_face(folder)
    return face, face_params


def _read_face(path):
    """(folder, manifest, face model, face params) of a pipeline checkpoint, checked."""
    import jax

    path = checkpoint_folder(path, "a pipeline checkpoint is a folder (python -m vasa_jax.pipeline.export)")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        hint = " (a training workdir: export it first)" if (path / "config.json").is_file() else ""
        raise CheckpointError(path, f"not a vasa-jax pipeline checkpoint: no {MANIFEST}{hint}; make one with "
                                    "python -m vasa_jax.pipeline.export --face WORKDIR --motion WORKDIR --out DIR")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(manifest_path, f"is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(manifest_path, f"is not a vasa-jax pipeline manifest (format != {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(manifest_path, f"has format version {manifest.get('format_version')}; this vasa-jax "
                                             f"({__version__}) reads version {FORMAT_VERSION}")
    try:
        face = face_model(manifest["face"])
        if not isinstance(manifest["motion"], dict):
            raise TypeError("the motion section is not a mapping")
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(manifest_path, f"describes no usable model ({type(e).__name__}: {e})") from None
    face_params = read_weights_tree(path / FACE_WEIGHTS)
    check_tree(path / FACE_WEIGHTS, face_params, jax.eval_shape(face.init, jax.random.key(0)), "face model")
    return path, manifest, face, face_params


def read_dit(manifest: dict, path: Path):
    """(MotionConfig, params {"denoiser", "stats"}, audio section) of the motion DiT a pipeline checkpoint holds;
    CheckpointError naming the file for anything wrong."""
    import jax
    import ml_collections

    from vasa_jax.motion.denoiser import init_denoiser
    from vasa_jax.train.motion import placeholder_stats

    manifest_path = path / MANIFEST
    try:
        section = {k: v for k, v in manifest["motion"].items() if k != "implementation"}
        motion = MotionConfig.from_config(section)
        motion.require_sizes()
        audio = dict(manifest["audio"])
        if "encoder" not in audio:
            raise KeyError("audio.encoder")
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(manifest_path, f"describes no usable model ({type(e).__name__}: {e})") from None
    if audio["encoder"] != "mel":
        checkpoint = Path(audio.get("checkpoint", ""))
        audio["checkpoint"] = str(checkpoint if checkpoint.is_absolute() else path / checkpoint)
        if not Path(audio["checkpoint"]).is_dir():
            raise CheckpointError(audio["checkpoint"], f"the audio encoder checkpoint that {path} uses is not there "
                                                       "(export with --copy-audio to carry it along)")
    motion_flat = read_weights_tree(path / MOTION_WEIGHTS)
    motion_params = {"denoiser": motion_flat.get("denoiser", {}), "stats": motion_flat.get("stats", {})}
    expected = {"denoiser": jax.eval_shape(lambda k: init_denoiser(motion, k), jax.random.key(0)),
                "stats": placeholder_stats(motion)}
    check_tree(path / MOTION_WEIGHTS, motion_params, expected, "motion model")
    return motion, motion_params, ml_collections.ConfigDict({"checkpoint": "", "layer": "last", **audio})
