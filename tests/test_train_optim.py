"""Optimiser: the learning-rate schedule, the weight-decay mask, global-norm clipping, EMA, TrainState."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa_jax.config import train_defaults
from vasa_jax.train import TrainState, ema_update, make_optimizer, make_schedule


def config(**overrides):
    cfg = train_defaults()
    cfg.update(dict(steps=100, warmup_steps=10, learning_rate=1e-3, end_learning_rate=1e-5, weight_decay=0.1,
                    grad_clip_norm=0.0))
    cfg.update(overrides)
    return cfg


def test_schedule_warmup_then_cosine():
    cfg = config()
    schedule = make_schedule(cfg)
    lr, end, warm, steps = cfg.learning_rate, cfg.end_learning_rate, cfg.warmup_steps, cfg.steps

    def formula(n):
        if n < warm:
            return lr * n / warm
        t = min(n - warm, steps - warm) / (steps - warm)
        return end + (lr - end) * 0.5 * (1 + math.cos(math.pi * t))

    for n in (0, 5, warm, 40, (warm + steps) // 2, 99, steps, steps + 10):
        assert float(schedule(n)) == pytest.approx(formula(n), rel=1e-5, abs=1e-12), n
    assert float(schedule(0)) == 0.0
    assert float(schedule(warm)) == pytest.approx(lr, rel=1e-6)
    assert float(schedule(steps)) == pytest.approx(end, rel=1e-5)


def test_schedule_needs_steps_after_warmup():
    with pytest.raises(ValueError, match="steps .10. must be larger than warmup_steps .10."):
        make_schedule(config(steps=10, warmup_steps=10))


PARAMS = {
    "dense": {"kernel": jnp.full((3, 4), 2.0), "bias": jnp.full((4,), 2.0)},
    "norm": {"scale": jnp.full((4,), 2.0)},
    "conv": {"kernel": jnp.full((3, 3, 2, 4), 2.0)},
}


@pytest.mark.parametrize("clip", [0.0, 1.0])
def test_weight_decay_only_on_rank_2_and_up(clip):
    cfg = config(warmup_steps=0, grad_clip_norm=clip)  # full learning rate on the first update
    optimizer = make_optimizer(cfg)
    zero_grads = jax.tree.map(jnp.zeros_like, PARAMS)  # Adam's own step is 0: only the decay moves params
    updates, _ = jax.jit(optimizer.update)(zero_grads, optimizer.init(PARAMS), PARAMS)
    decayed = -cfg.learning_rate * cfg.weight_decay * 2.0
    np.testing.assert_allclose(updates["dense"]["kernel"], decayed, rtol=1e-6)
    np.testing.assert_allclose(updates["conv"]["kernel"], decayed, rtol=1e-6)
    np.testing.assert_array_equal(updates["dense"]["bias"], 0.0)
    np.testing.assert_array_equal(updates["norm"]["scale"], 0.0)


def test_global_norm_clipping():
    params = {"a": jnp.zeros((2, 2)), "b": jnp.zeros((3,))}
    unit = {"a": jnp.array([[0.6, 0.0], [0.0, 0.0]]), "b": jnp.array([0.0, 0.8, 0.0])}  # global norm 1
    big = jax.tree.map(lambda g: 10 * g, unit)

    def two_updates(optimizer, grads_seq):
        @jax.jit
        def run():
            state, p = optimizer.init(params), params
            for grads in grads_seq:
                updates, state = optimizer.update(grads, state, p)
                p = jax.tree.map(jnp.add, p, updates)
            return p

        return run()

    clipped = two_updates(make_optimizer(config(warmup_steps=0, grad_clip_norm=1.0)), [big, unit])
    by_hand = two_updates(make_optimizer(config(warmup_steps=0)), [unit, unit])  # big clipped to norm 1
    unclipped = two_updates(make_optimizer(config(warmup_steps=0)), [big, unit])
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), clipped, by_hand)
    assert not np.allclose(clipped["b"], unclipped["b"], rtol=1e-3)


def test_ema_update():
    ema = {"w": jnp.array([1.0, 2.0])}
    params = {"w": jnp.array([3.0, 6.0])}
    np.testing.assert_allclose(ema_update(ema, params, 0.9)["w"], [1.2, 2.4], rtol=1e-6)
    np.testing.assert_allclose(ema_update(ema, params, 0.0)["w"], [3.0, 6.0])


def test_train_state_apply_gradients():
    cfg = config(warmup_steps=0)
    optimizer = make_optimizer(cfg)
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    grads = jax.tree.map(jnp.ones_like, params)

    @jax.jit
    def create_and_step(params, grads):
        state = TrainState.create(params, optimizer, ema=True, extra={"disc": {"w": jnp.zeros(3)}})
        no_ema = TrainState.create(params, optimizer, ema=False)
        return state.apply_gradients(grads, ema_decay=0.5), no_ema.apply_gradients(grads)

    new, new_no_ema = create_and_step(params, grads)
    assert int(new.step) == 1
    assert float(new.params["b"][0]) == pytest.approx(1.0 - cfg.learning_rate, rel=1e-4)  # Adam: lr * sign
    jax.tree.map(lambda e, p0, p1: np.testing.assert_allclose(e, 0.5 * p0 + 0.5 * p1, rtol=1e-6),
                 new.ema_params, params, new.params)
    assert new.extra["disc"]["w"].shape == (3,)
    assert new_no_ema.ema_params is None
    jax.tree.map(np.testing.assert_array_equal, new_no_ema.params, new.params)
