"""Stage-2 training: the motion diffusion transformer, as one pure step function.

Per example: a window of W motion frames with its audio features, the K frames before it (X_pre, A_pre) and
the window's controls (gaze, distance, emotion; masks where the data lacks a label). The step normalises
everything with the dataset statistics (kept in the state, so they travel with the checkpoint), drops
conditions as VASA-1 does (vasa_jax.motion.conditions.drop_conditions), noises X0 to a uniform random diffusion
step and regresses X0 (plus the optional velocity / smoothness terms).
"""

from __future__ import annotations

import copy
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vasa_jax.data.motion_data import MotionCache, build_cache, motion_window_batches
from vasa_jax.errors import ConfigError
from vasa_jax.face.config import POSE_DIM
from vasa_jax.motion.conditions import (DropoutRates, compute_stats, drop_conditions, make_conditions, normalize,
                                       velocity_stats)
from vasa_jax.motion.config import MotionConfig
from vasa_jax.motion.denoiser import MotionDenoiser, init_denoiser
from vasa_jax.motion.diffusion import cosine_alphas_cumprod, motion_losses, q_sample, sample_t
from vasa_jax.train.checkpoint import Checkpointer
from vasa_jax.train.loop import train as run_training
from vasa_jax.train.optim import make_optimizer
from vasa_jax.train.parallel import make_mesh, process_batch_size
from vasa_jax.train.state import TrainState

LOSS_TERMS = ("x0", "velocity", "smoothness")


def placeholder_stats(motion: MotionConfig) -> dict:
    """Statistics of the right shapes (zero mean, unit std): for building abstract states before a restore."""
    dims = {"motion": motion.motion_dim, "audio": motion.audio_dim, "gaze": 2, "distance": 1,
            "emotion": motion.emotion_dim, "velocity": motion.motion_dim}
    return {name: {"mean": np.zeros(d, np.float32), "std": np.ones(d, np.float32)} for name, d in dims.items()}


def cache_stats(cache: MotionCache) -> dict:
    """Normalisation statistics of a cache's frames (distance as [N, 1]), and the motion's velocity scale."""
    stats = compute_stats({name: cache.frames(name) for name in ("motion", "audio", "gaze", "emotion")}
                          | {"distance": cache.frames("distance")[:, None]})
    stats["velocity"] = velocity_stats(cache.frames("motion"), cache.clip_start, stats["motion"])
    return stats


class MotionTrainer:
    """Builds the stage-2 state and step from a config whose motion sizes are filled in (resolve_config)."""

    def __init__(self, config, stats: dict | None = None):
        self.config = config
        self.motion = MotionConfig.from_config(config.motion)
        self.motion.require_sizes()
        self.denoiser = MotionDenoiser(self.motion)
        train = config.motion_train
        self.rates = DropoutRates.from_config(train.dropout)
        self.weights = dict(train.loss)
        unknown = set(self.weights) - set(LOSS_TERMS)
        if unknown:
            raise ConfigError(f"unknown motion_train.loss terms {sorted(unknown)}; known: {LOSS_TERMS}")
        self.optimizer = make_optimizer(train)
        self.stats = placeholder_stats(self.motion) if stats is None else stats
        self.alphas_cumprod = cosine_alphas_cumprod(self.motion.diffusion_steps)
        which = train.get("velocity_features", "all")
        if which not in ("all", "pose"):
            raise ConfigError(f"motion_train.velocity_features must be 'all' or 'pose'; got {which!r}")
        self.velocity_features = np.ones(self.motion.motion_dim, np.float32)
        if which == "pose":  # z_pose leads every motion vector (toy truth, stage-1 models)
            self.velocity_features[POSE_DIM:] = 0.0

    def init_state(self, key) -> TrainState:
        params = init_denoiser(self.motion, key)
        stats = jax.tree.map(jnp.asarray, self.stats)
        return TrainState.create(params, self.optimizer, ema=self.config.motion_train.ema_decay > 0,
                                 extra={"stats": stats})

    def conditions(self, stats, batch):
        """Normalised conditions of a batch, with the data's own masks (before dropout)."""
        return make_conditions(
            stats, audio=batch["audio"], audio_mask=batch["audio_mask"], context_motion=batch["context_motion"],
            context_audio=batch["context_audio"], context_mask=batch["has_context"], gaze=batch["gaze"],
            gaze_mask=batch["has_gaze"], distance=batch["distance"], distance_mask=batch["has_distance"],
            emotion=batch["emotion"], emotion_mask=batch["has_emotion"])

    def loss(self, params, stats, batch, key):
        """(total, (terms, conditions after dropout)) for one batch."""
        k_drop, k_t, k_noise = jax.random.split(key, 3)
        cond = drop_conditions(self.conditions(stats, batch), k_drop, self.rates)
        x0 = normalize(stats, "motion", batch["motion"])
        b = x0.shape[0]
        t = sample_t(k_t, b, self.motion.diffusion_steps)
        x_t = q_sample(self.alphas_cumprod, x0, t, jax.random.normal(k_noise, x0.shape))
        pred = self.denoiser.apply({"params": params}, x_t, t, cond)
        if self.motion.context:
            last, has_last = cond.context_motion[:, -1], cond.context_mask
        else:
            last, has_last = jnp.zeros_like(x0[:, 0]), jnp.zeros((b,), bool)
        weight = jnp.asarray(self.alphas_cumprod)[t] if self.config.motion_train.velocity_snr_weighted else None
        terms = motion_losses(pred, x0, last, has_last, stats["velocity"]["std"], self.velocity_features, weight)
        total = sum(self.weights.get(name, 0.0) * value for name, value in terms.items())
        return total, (terms, cond)

    def step(self, state: TrainState, batch, key):
        """One update: pure (state, batch, key) -> (state, metrics)."""
        stats = state.extra["stats"]
        (loss, (terms, cond)), grads = jax.value_and_grad(self.loss, has_aux=True)(state.params, stats, batch, key)
        new_state = state.apply_gradients(grads, self.config.motion_train.ema_decay)
        kept = {"audio": cond.audio_mask.mean(), "context": cond.context_mask.mean(), "gaze": cond.gaze_mask.mean(),
                "distance": cond.distance_mask.mean(), "emotion": cond.emotion_mask.mean()}
        metrics = {"loss": loss, **{f"loss/{k}": v for k, v in terms.items()},
                   **{f"kept/{k}": v.astype(jnp.float32) for k, v in kept.items()}}
        return new_state, metrics


def resolve_config(config, cache: MotionCache):
    """A copy of `config` with motion.motion_dim / audio_dim / emotion_dim filled in from the cache (a value
    already set must agree with it), and motion_data.face_step with the stage-1 step the motion came from."""
    config = copy.deepcopy(config)
    if "face_step" in cache.meta["key"]:
        config.motion_data.face_step = int(cache.meta["key"]["face_step"])
    for name in ("motion_dim", "audio_dim", "emotion_dim"):
        have, want = int(config.motion[name]), int(cache.meta[name])
        if have not in (0, want):
            raise ConfigError(f"motion.{name} is {have} but the motion data ({cache.path}) has {want}; leave "
                              f"motion.{name} at 0 to take it from the data")
        config.motion[name] = want
    return config


STAGE_SECTIONS = ("motion", "motion_train", "motion_data", "audio")  # what stage 2 reads; compared on resume


def train_motion(config, workdir: str, *, quiet: bool = False) -> TrainState:
    """Stage-2 training to config.motion_train.steps in workdir (resuming there if it holds a checkpoint).

    Builds the motion cache of the training split first if it is not on disk (config.motion_data).
    """
    cache = MotionCache(build_cache(config, "train", quiet=quiet))
    config = resolve_config(config, cache)
    trainer = MotionTrainer(config, cache_stats(cache))
    train = config.motion_train
    mesh = make_mesh()

    def make_iterator():
        return motion_window_batches(cache.path, window=trainer.motion.window, context=trainer.motion.context,
                                     batch_size=process_batch_size(train.batch_size, mesh), seed=train.seed,
                                     num_workers=config.motion_data.num_workers)

    return run_training(workdir, train, trainer.init_state, trainer.step, make_iterator, mesh=mesh, config=config,
                        config_sections=STAGE_SECTIONS, quiet=quiet)


def load_motion_checkpoint(workdir: str, *, ema: bool = True, step: int | None = None):
    """A trained motion generator from a stage-2 workdir: (config, MotionConfig, params).

    params = {"denoiser": ..., "stats": ...}, what vasa_jax.motion.sampling takes; ema=True gives the EMA
    denoiser params sampling should use. The config is the run's own (workdir/config.json), sizes resolved.
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{workdir}: not a training workdir (no config.json); train with train.py motion first")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if "motion" not in config:
        raise ConfigError(f"{workdir}: holds no motion run (its config has no motion section)")
    trainer = MotionTrainer(config)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            jax.eval_shape(trainer.init_state, jax.random.key(0)))
    checkpointer = Checkpointer(workdir)
    try:
        if checkpointer.latest_step() is None:
            raise ConfigError(f"{workdir}: holds no checkpoint yet")
        state = checkpointer.restore(step, abstract)
    finally:
        checkpointer.close()
    denoiser = state.ema_params if ema and state.ema_params is not None else state.params
    return config, trainer.motion, {"denoiser": denoiser, "stats": state.extra["stats"]}
