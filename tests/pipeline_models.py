"""A tiny random pipeline for the generation tests: stage-1 and stage-2 workdirs of the tiny config holding
initial (random) states, exported through the real export path. Built once per test session."""

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np

from motion_models import random_stats
from vasa_jax.config import load_config
from vasa_jax.data import toyworld
from vasa_jax.pipeline import export_pipeline
from vasa_jax.bench import random_params
from vasa_jax.train.checkpoint import Checkpointer
from vasa_jax.train.face import FaceTrainer
from vasa_jax.train.motion import MotionTrainer

# A toy identity whose neutral render dlib finds (tests/test_faces.py lists detected ones).
IDENTITY = 1000
PORTRAIT_SIZE = 128


def _save(workdir: Path, config, state) -> None:
    checkpointer = Checkpointer(str(workdir), config=config)
    checkpointer.save(0, state, force=True)
    checkpointer.wait()
    checkpointer.close()


def random_face_workdir(workdir: Path, config) -> FaceTrainer:
    """A stage-1 workdir of `config` holding one checkpoint of random params (no training, nothing compiled)."""
    trainer = FaceTrainer(config)
    key = jax.random.key(0)
    # Only the params matter for sampling; the rest of the state (discriminator, optimiser) keeps its shapes.
    state = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), jax.eval_shape(trainer.init_state, key))
    params = random_params(jax.eval_shape(trainer.face.init, key))
    _save(workdir, config, state.replace(params=params, ema_params=params))
    return trainer


def make_workdirs(root: Path, config_file: str = "configs/tiny.py") -> tuple[Path, Path]:
    """(stage-1 workdir, stage-2 workdir trained "on its motion"), both with one checkpoint of random params."""
    config = load_config(config_file)
    face_dir, motion_dir = root / "face", root / "motion"
    trainer = random_face_workdir(face_dir, config)
    key = jax.random.key(0)

    config.motion.motion_dim = trainer.face.motion_dim
    config.motion.audio_dim, config.motion.emotion_dim = 80, 1
    config.motion_data.source, config.motion_data.face_workdir = "face_model", str(face_dir)
    config.motion_data.cache_dir = str(root / "motion_cache")
    stats = random_stats(0)
    m = trainer.face.motion_dim
    rng = np.random.default_rng(1)
    stats["motion"] = {"mean": rng.normal(0, 0.2, m).astype(np.float32), "std": np.full(m, 0.3, np.float32)}
    stats["velocity"] = {"mean": np.zeros(m, np.float32), "std": np.ones(m, np.float32)}
    motion_trainer = MotionTrainer(config, stats)
    state = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), jax.eval_shape(motion_trainer.init_state, key))
    # Not init_denoiser's params: a fresh denoiser ignores its inputs (adaLN-Zero, zero output layer), and these
    # make the motion depend on the audio and the seed.
    denoiser = random_params(state.params, seed=1)
    _save(motion_dir, config, state.replace(params=denoiser, ema_params=denoiser, extra={"stats": stats}))
    return face_dir, motion_dir


@functools.cache
def tiny_checkpoint() -> Path:
    """A pipeline checkpoint folder of the tiny config (random weights), with its two workdirs beside it."""
    root = Path(tempfile.mkdtemp(prefix="vasa-jax-test-pipeline-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    face_dir, motion_dir = make_workdirs(root)
    return export_pipeline(face_dir, motion_dir, root / "pipeline")


def toy_portrait(size: int = PORTRAIT_SIZE, identity: int = IDENTITY) -> np.ndarray:
    """A neutral toy-world face, uint8 [size, size, 3], framed as the toy world frames its faces."""
    return toyworld.render(toyworld.sample_identity(identity), toyworld.neutral_state(1), size)[0]


def speech(seconds: float, identity: int = IDENTITY, seed: int = 3) -> np.ndarray:
    """Toy-world speech, float32 [N] at 16 kHz."""
    audio, _ = toyworld.perform(seed, identity=identity, seconds=seconds)
    return audio
