"""Diffusion over normalised motion windows: the cosine schedule, noising, the x0 loss, and one sampler update.

The denoiser predicts the clean signal X0 (VASA-1), so the loss is ||X0 - H(X_t, t, C)||^2, with optional
terms on top (weights in motion_train.loss): `velocity` matches the frame-to-frame differences of the
prediction to the data's, each feature in units of its typical frame-to-frame change in the data
(conditions.velocity_stats), `smoothness` matches the second differences (in normalised motion units). Both
include the seam with the previous window (its last context frame) where the window has one. (What closes the
seam at sampling time is continue_context in vasa_jax.motion.sampling.)

Why the velocity term is scaled per feature: head pose moves slowly (yaw changes by ~2 % of its spread per
frame) while the lips and lids move fast, so in normalised units a per-frame error that is negligible in the
x0 loss (and in an unscaled velocity loss, which the fast features dominate) is several times the pose's
whole frame-to-frame motion: visible jitter, and a Delta-P several times the data's. Measured on the toy
world: an unscaled velocity term left the generated Delta-P 5x the real one.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal's cosine schedule
_MAX_BETA = 0.999


def cosine_alphas_cumprod(steps: int) -> np.ndarray:
    """alpha_bar_t for t = 0 .. steps - 1 (Nichol & Dhariwal 2021): [steps] float32, decreasing from ~1 to ~0.

    alpha_bar(u) = cos^2((u + s) / (1 + s) * pi / 2) / alpha_bar(0), u = t / steps; the betas
    1 - alpha_bar(t + 1) / alpha_bar(t) are clipped at 0.999 as in the paper, and step t holds the product
    up to and including beta_t.
    """
    u = np.arange(steps + 1, dtype=np.float64) / steps
    f = np.cos((u + _COSINE_OFFSET) / (1 + _COSINE_OFFSET) * math.pi / 2) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], _MAX_BETA)
    return np.cumprod(1.0 - betas).astype(np.float32)


def sampling_timesteps(diffusion_steps: int, steps: int) -> np.ndarray:
    """The `steps` training timesteps a sampler visits, descending from diffusion_steps - 1 to 0, evenly spaced
    (int32 [steps])."""
    if not 1 <= steps <= diffusion_steps:
        raise ValueError(f"sampling steps must be in [1, {diffusion_steps}]; got {steps}")
    return np.round(np.linspace(diffusion_steps - 1, 0, steps)).astype(np.int32)


def q_sample(alphas_cumprod, x0, t, noise):
    """X_t = sqrt(alpha_bar_t) X0 + sqrt(1 - alpha_bar_t) noise, for x0 [B, ...] and integer t [B]."""
    ab = jnp.asarray(alphas_cumprod)[t].reshape((-1,) + (1,) * (x0.ndim - 1))
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1.0 - ab) * noise


def sampler_update(x_t, x0_hat, ab_t, ab_s, eta, noise):
    """One step from timestep t to an earlier s given the predicted X0 (DDIM's generalised update).

    eps_hat = (X_t - sqrt(ab_t) X0_hat) / sqrt(1 - ab_t);
    X_s = sqrt(ab_s) X0_hat + sqrt(1 - ab_s - sigma^2) eps_hat + sigma noise,
    sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s).
    eta = 0 is DDIM (deterministic), eta = 1 the DDPM ancestral step over the (strided) schedule: its mean and
    variance are exactly those of the posterior q(X_s | X_t, X0_hat). ab_s = 1 (past the last step) gives X0_hat.
    """
    eps_hat = (x_t - jnp.sqrt(ab_t) * x0_hat) / jnp.sqrt(1.0 - ab_t)
    sigma = eta * jnp.sqrt((1.0 - ab_s) / (1.0 - ab_t)) * jnp.sqrt(1.0 - ab_t / ab_s)
    return jnp.sqrt(ab_s) * x0_hat + jnp.sqrt(jnp.maximum(1.0 - ab_s - sigma**2, 0.0)) * eps_hat + sigma * noise


def _with_seam(x, last_context):
    """[B, W, M] with the previous window's last frame in front: [B, W + 1, M]."""
    return jnp.concatenate([last_context[:, None], x], axis=1)


def motion_losses(pred, x0, last_context, has_context, velocity_std, velocity_features=None, velocity_weight=None):
    """The loss terms between predicted and true normalised X0 [B, W, M] (means over everything).

    last_context [B, M]: the previous window's last frame (normalised), has_context [B] bool: whether the
    window saw it; the seam difference counts only where it did. velocity_std [M]: the data's typical
    frame-to-frame change per feature (normalised units), the unit of the velocity term. velocity_features [M]
    (0 / 1, default all): the features the velocity term covers; velocity_weight [B] (default 1): its weight per
    example (e.g. alpha_bar_t, so that it acts where the noisy input determines the motion's fine structure).
    """
    x0_term = jnp.mean((pred - x0) ** 2)
    b, w, m = pred.shape
    features = jnp.ones((m,)) if velocity_features is None else jnp.asarray(velocity_features, jnp.float32)
    example = jnp.ones((b,)) if velocity_weight is None else jnp.asarray(velocity_weight, jnp.float32)
    pred_s, true_s = _with_seam(pred, last_context), _with_seam(x0, last_context)
    seam = jnp.concatenate([has_context[:, None], jnp.ones((b, w), bool)], 1).astype(jnp.float32)  # [B, W + 1]
    d_pred, d_true = jnp.diff(pred_s, axis=1), jnp.diff(true_s, axis=1)  # [B, W, M]; difference j ends at frame j
    vel_w = seam[:, 1:] * seam[:, :-1]
    velocity = jnp.sum(example[:, None, None] * vel_w[..., None] * features * ((d_pred - d_true) / velocity_std) ** 2
                       ) / jnp.maximum(vel_w.sum() * features.sum(), 1.0)
    dd_pred, dd_true = jnp.diff(d_pred, axis=1), jnp.diff(d_true, axis=1)
    acc_w = seam[:, 2:] * seam[:, 1:-1] * seam[:, :-2]
    smoothness = jnp.sum(acc_w[..., None] * (dd_pred - dd_true) ** 2) / jnp.maximum(acc_w.sum() * pred.shape[-1], 1.0)
    return {"x0": x0_term, "velocity": velocity, "smoothness": smoothness}


def sample_t(key, batch: int, diffusion_steps: int):
    """Training timesteps, uniform over 0 .. diffusion_steps - 1 (int32 [batch])."""
    return jax.random.randint(key, (batch,), 0, diffusion_steps)
