"""Stage-2 model pieces on the tiny config: the denoiser's shapes and masks, condition dropout, the schedule and
the diffusion loss."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from motion_models import MOTION, A, K, M, W, full_conditions, perturbed_params, random_stats

from vasa_jax.config import load_config
from vasa_jax.errors import ConfigError
from vasa_jax.motion.conditions import DropoutRates, drop_conditions
from vasa_jax.motion.denoiser import MotionDenoiser, dummy_conditions
from vasa_jax.motion.diffusion import cosine_alphas_cumprod, motion_losses, sampler_update, sampling_timesteps
from vasa_jax.train.motion import MotionTrainer

B = 3


@pytest.fixture(scope="module")
def params():
    return perturbed_params(0)


apply = jax.jit(MotionDenoiser(MOTION).apply)


def run(params, cond, x=None, t=None):
    x = jnp.ones((cond.batch_size, W, M)) if x is None else x
    t = jnp.full((cond.batch_size,), 7) if t is None else t
    return np.asarray(apply({"params": params}, x, t, cond))


def test_denoiser_shapes_and_every_condition_matters(params):
    cond = full_conditions(jax.random.key(1), B)
    out = run(params, cond)
    assert out.shape == (B, W, M) and np.all(np.isfinite(out))
    for name in ("audio", "gaze", "distance", "emotion", "context"):
        assert not np.allclose(run(params, cond.drop(name)), out, atol=1e-5), name
    assert not np.allclose(run(params, cond, t=jnp.full((B,), 40)), out, atol=1e-5)
    with pytest.raises(ValueError, match="windows of"):
        run(params, dummy_conditions(dataclasses.replace(MOTION, window=W + 1)), x=jnp.zeros((1, W + 1, M)))


def test_frame_conditions_and_the_skip_readout():
    """frame_conditions adds a second path from each control (own params); x0_skip reads X0 out as
    sqrt(ab_t) X_t + sqrt(1 - ab_t) F: at t = 0 the output is X_t up to sqrt(1 - ab_0) F, at the last step F."""
    cond = full_conditions(jax.random.key(6), B)
    x = jax.random.normal(jax.random.key(7), (B, W, M))
    for frame_conditions in (False, True):
        config = dataclasses.replace(MOTION, frame_conditions=frame_conditions)
        params = perturbed_params(0, config)
        assert ("frame_gaze" in params) == frame_conditions
        assert not frame_conditions or set(params["frame_gaze"]) == set(params["gaze"])
    direct = dataclasses.replace(MOTION, x0_skip=False)
    skip = dataclasses.replace(MOTION, x0_skip=True)
    params = perturbed_params(0, skip)
    ab = cosine_alphas_cumprod(MOTION.diffusion_steps)
    for t in (0, 3, MOTION.diffusion_steps - 1):
        ts = jnp.full((B,), t)
        f = MotionDenoiser(direct).apply({"params": params}, x, ts, cond)
        out = MotionDenoiser(skip).apply({"params": params}, x, ts, cond)
        np.testing.assert_allclose(out, np.sqrt(ab[t]) * x + np.sqrt(1 - ab[t]) * f, rtol=1e-4, atol=1e-5)
    t0 = MotionDenoiser(skip).apply({"params": params}, x, jnp.zeros((B,), jnp.int32), cond)
    assert np.abs(t0 - x).max() < 0.1 * np.abs(x).max()


def test_a_missing_condition_ignores_its_value(params):
    """Under a False mask the value is never read: a missing label is a dropped condition, not a zero."""
    cond = full_conditions(jax.random.key(2), B)
    other = full_conditions(jax.random.key(3), B)
    for name in ("gaze", "distance", "emotion", "context"):
        a, b = cond.drop(name), other.drop(name)
        # b: cond's values everywhere except the dropped condition's, which come from `other`
        fields = {"context": ("context_motion", "context_audio")}.get(name, (name,))
        b = a.replace(**{f: getattr(b, f) for f in fields})
        np.testing.assert_allclose(run(params, a), run(params, b), atol=1e-6, err_msg=name)
    # Audio per frame: changing the audio of frames whose mask is False changes nothing.
    mask = jnp.arange(W) < W // 2
    a = cond.replace(audio_mask=jnp.broadcast_to(mask, (B, W)))
    b = a.replace(audio=jnp.where(mask[None, :, None], a.audio, other.audio))
    np.testing.assert_allclose(run(params, a), run(params, b), atol=1e-6)


def test_condition_dropout_rates_match_the_config():
    rates = DropoutRates(audio=0.1, gaze=0.2, distance=0.3, emotion=0.05, context=0.5, truncate=0.25, truncate_max=5)
    n = 20_000
    cond = full_conditions(jax.random.key(4), batch=1)
    cond = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape[1:]), cond)
    # Half the windows lack a gaze label: those must stay dropped.
    cond = cond.replace(gaze_mask=jnp.arange(n) % 2 == 0)
    out = jax.jit(drop_conditions, static_argnums=2)(cond, jax.random.key(5), rates)
    tol = 0.015
    kept_audio = np.asarray(out.audio_mask[:, 0])  # the first frame is never truncated
    assert abs(kept_audio.mean() - 0.9) < tol
    for name, rate in (("distance", 0.3), ("emotion", 0.05), ("context", 0.5)):
        assert abs(float(np.asarray(getattr(out, f"{name}_mask")).mean()) - (1 - rate)) < tol, name
    gaze = np.asarray(out.gaze_mask)
    assert not gaze[1::2].any()
    assert abs(gaze[::2].mean() - 0.8) < tol
    # Truncation: among windows that kept their audio, 25 % lose their last 1..5 frames, never more.
    mask = np.asarray(out.audio_mask)[kept_audio]
    lost = W - mask.sum(axis=1)
    assert abs((lost > 0).mean() - 0.25) < tol
    assert lost.max() == 5 and np.all(mask[:, : W - 5])
    assert np.all(np.diff(mask.astype(int), axis=1) <= 0)  # the hidden frames are the last ones
    assert np.bincount(lost[lost > 0], minlength=6)[1:].min() > 0.8 * (lost > 0).sum() / 5  # uniform lengths
    with pytest.raises(ConfigError):
        DropoutRates(audio=1.5)


def test_cosine_schedule_and_sampler_update():
    ab = cosine_alphas_cumprod(50)
    assert ab.shape == (50,) and np.all(np.diff(ab) < 0) and ab[0] > 0.99 and ab[-1] < 1e-3
    ts = sampling_timesteps(50, 4)
    np.testing.assert_array_equal(ts, [49, 33, 16, 0])
    x0, noise = np.random.default_rng(0).normal(size=(2, 3, 4))
    # A perfect X0 prediction: DDIM lands exactly on the noising trajectory; the last step returns X0.
    x_t = np.sqrt(ab[30]) * x0 + np.sqrt(1 - ab[30]) * noise
    x_s = sampler_update(x_t, x0, ab[30], ab[10], 0.0, np.zeros_like(x0))
    np.testing.assert_allclose(x_s, np.sqrt(ab[10]) * x0 + np.sqrt(1 - ab[10]) * noise, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sampler_update(x_t, x0, ab[30], 1.0, 1.0, noise), x0, atol=1e-6)
    # DDPM (eta = 1): the posterior variance beta~ = (1 - ab_s) / (1 - ab_t) (1 - ab_t / ab_s).
    z = np.ones_like(x0)
    spread = sampler_update(x_t, x0, ab[30], ab[10], 1.0, z) - sampler_update(x_t, x0, ab[30], ab[10], 1.0, 0 * z)
    var = (1 - ab[10]) / (1 - ab[30]) * (1 - ab[30] / ab[10])
    np.testing.assert_allclose(spread, np.sqrt(var) * z, rtol=1e-5)


def test_loss_falls_on_a_fixed_batch():
    rng = np.random.default_rng(0)
    stats = random_stats()
    config = load_config("configs/tiny.py")
    config.motion.motion_dim, config.motion.audio_dim, config.motion.emotion_dim = M, A, 1
    trainer = MotionTrainer(config, stats)
    trainer.optimizer = optax.adam(3e-3)
    state = jax.jit(trainer.init_state)(jax.random.key(0))
    t = np.linspace(0, 6, W + K)
    motion = np.stack([np.sin(t * (1 + i / 4) + i) for i in range(M)], -1).astype(np.float32)  # [K + W, M]
    batch = {"motion": np.stack([motion[K:]] * 4), "audio": rng.normal(size=(4, W, A)).astype(np.float32),
             "audio_mask": np.ones((4, W), bool), "context_motion": np.stack([motion[:K]] * 4),
             "context_audio": rng.normal(size=(4, K, A)).astype(np.float32), "has_context": np.ones(4, bool),
             "gaze": np.zeros((4, 2), np.float32), "has_gaze": np.zeros(4, bool),
             "distance": np.ones((4, 1), np.float32),
             "has_distance": np.ones(4, bool), "emotion": np.zeros((4, 1), np.float32), "has_emotion": np.ones(4, bool)}
    step = jax.jit(trainer.step)
    losses = []
    for _ in range(40):  # one key throughout: the same noise, steps and dropout, so the objective is fixed
        state, metrics = step(state, batch, jax.random.key(1))
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.3 * losses[0], losses
    assert int(state.step) == 40


def test_velocity_and_smoothness_terms_on_known_cases():
    b, w, m = 2, 5, 4
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(b, w, m)).astype(np.float32)
    last, has = rng.normal(size=(b, m)).astype(np.float32), np.array([True, False])
    std = np.full(m, 0.5, np.float32)
    exact = motion_losses(x0, x0, last, has, std)
    assert all(float(v) == 0.0 for v in exact.values())
    offset = motion_losses(x0 + 1.0, x0, last, has, std)  # a constant offset moves only the seam difference
    assert float(offset["x0"]) == pytest.approx(1.0)
    # The seam difference counts where the window has a context (9 differences count, 5 + 4): one of them is off
    # by 1 in every feature, (1 / 0.5)^2 in units of the velocity std.
    assert float(offset["velocity"]) == pytest.approx(4.0 / 9.0, rel=1e-5)
    pred = x0.copy()
    pred[..., 2:] += rng.normal(size=(b, w, m - 2))  # errors only outside the first two features
    pose_only = motion_losses(pred, x0, last, has, std, velocity_features=np.array([1, 1, 0, 0]))
    assert float(pose_only["velocity"]) == 0.0 and float(motion_losses(pred, x0, last, has, std)["velocity"]) > 0
    weighted = motion_losses(x0 + 1.0, x0, last, has, std, velocity_weight=np.array([0.25, 1.0]))
    assert float(weighted["velocity"]) == pytest.approx(0.25 * float(offset["velocity"]), rel=1e-5)
