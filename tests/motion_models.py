"""Random tiny motion denoisers for the stage-2 tests: the tiny config's sizes with toy-world data sizes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.config import load_config
from vasa_jax.motion.conditions import Conditions, compute_stats
from vasa_jax.motion.config import MotionConfig
from vasa_jax.motion.denoiser import init_denoiser

CONFIG = load_config("configs/tiny.py")
MOTION = dataclasses.replace(MotionConfig.from_config(CONFIG.motion), motion_dim=12, audio_dim=80, emotion_dim=1)
W, K, M, A = MOTION.window, MOTION.context, MOTION.motion_dim, MOTION.audio_dim


def perturbed_params(seed=0, config=MOTION):
    """Fresh params with every leaf moved: adaLN-Zero and the zero output layer make a fresh denoiser ignore its
    inputs, which would make the tests vacuous."""
    params = init_denoiser(config, jax.random.key(seed))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(p + 0.2 * rng.normal(size=p.shape), jnp.float32), params)


def random_stats(seed=0):
    """Normalisation statistics of random data of the right sizes."""
    rng = np.random.default_rng(seed)
    stats = compute_stats({"motion": rng.normal(2.0, 3.0, (100, M)), "audio": rng.normal(-5.0, 2.0, (100, A)),
                           "gaze": rng.normal(0, 5, (100, 2)), "distance": rng.normal(1, 0.1, (100, 1)),
                           "emotion": rng.normal(size=(100, 1))})
    stats["velocity"] = {"mean": np.zeros(M, np.float32), "std": rng.uniform(0.05, 0.5, M).astype(np.float32)}
    return stats


def full_conditions(key, batch):
    """Conditions with every mask True and random (normalised) values."""
    ks = jax.random.split(key, 6)
    yes = jnp.ones((batch,), bool)
    return Conditions(
        audio=jax.random.normal(ks[0], (batch, W, A)), audio_mask=jnp.ones((batch, W), bool),
        context_motion=jax.random.normal(ks[1], (batch, K, M)), context_audio=jax.random.normal(ks[2], (batch, K, A)),
        context_mask=yes, gaze=jax.random.normal(ks[3], (batch, 2)), gaze_mask=yes,
        distance=jax.random.normal(ks[4], (batch, 1)), distance_mask=yes,
        emotion=jax.random.normal(ks[5], (batch, 1)), emotion_mask=yes)
