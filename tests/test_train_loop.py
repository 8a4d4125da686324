"""The shared training loop on a toy regression (a 2-layer MLP fitting a fixed random function) fed by grain."""

import functools
import json
import os

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from PIL import Image

from vasa_jax.config import train_defaults
from vasa_jax.train import (
    Checkpointer, ConfigMismatchError, TrainingDiverged, TrainState, check_or_store_config, image_grid,
    make_optimizer, make_schedule, train,
)

IN_DIM = 4


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):  # [B, IN_DIM] -> [B]
        x = nn.relu(nn.Dense(32)(x))
        return nn.Dense(1)(x)[:, 0]


def toy_config(**overrides):
    cfg = train_defaults()
    cfg.update(dict(
        batch_size=8, steps=6, learning_rate=1e-2, end_learning_rate=1e-3, warmup_steps=1, weight_decay=1e-4,
        adam_b1=0.9, ema_decay=0.9, seed=0, log_every=1, image_every=1000, checkpoint_every=2,
        keep_checkpoints=10,
    ))
    cfg.update(overrides)
    return cfg


def make_iterator(cfg, n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, IN_DIM)).astype(np.float32)
    y = np.sin(x @ rng.normal(size=IN_DIM)).astype(np.float32)
    records = [{"x": x[i], "y": y[i]} for i in range(n)]
    dataset = grain.MapDataset.source(records).shuffle(seed=cfg.seed).repeat().batch(cfg.batch_size)
    return lambda: iter(dataset.to_iter_dataset())


@functools.cache
def _toy(cfg_json, nan_at):
    """(init_state, step_fn) for a config; cached so that runs with one config share the compiled step."""
    cfg = ml_collections.ConfigDict(json.loads(cfg_json))
    optimizer = make_optimizer(cfg)

    def init_state(key):
        params = MLP().init(key, jnp.zeros((1, IN_DIM)))["params"]
        return TrainState.create(params, optimizer, ema=cfg.ema_decay > 0)

    def step_fn(state, batch, key):
        # Target noise from the key: resumed runs only match if the per-step keys do.
        target = batch["y"] + 0.01 * jax.random.normal(key, batch["y"].shape)

        def loss_fn(params):
            return jnp.mean((MLP().apply({"params": params}, batch["x"]) - target) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        if nan_at is not None:  # poison update `nan_at` (0-based) and everything after it
            poison = jnp.where(state.step >= nan_at, jnp.nan, 0.0)
            loss, grads = loss + poison, jax.tree.map(lambda g: g + poison, grads)
        state = state.apply_gradients(grads, cfg.ema_decay)
        return state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    return init_state, step_fn


def toy(cfg, nan_at=None):
    return _toy(cfg.to_json(), nan_at)


def run(workdir, cfg, model_cfg=None, nan_at=None, **kwargs):
    """train() on the toy problem; the model (optimiser included) is built from model_cfg (default cfg)."""
    init_state, step_fn = toy(cfg if model_cfg is None else model_cfg, nan_at)
    return train(str(workdir), cfg, init_state, step_fn, make_iterator(cfg), quiet=True, **kwargs)


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def losses(workdir):
    return {r["step"]: r["loss"] for r in read_metrics(workdir) if "loss" in r}


def test_loss_falls_and_logs(tmp_path):
    cfg = toy_config(steps=120, log_every=20, image_every=60, checkpoint_every=60, learning_rate=3e-2)
    drawn = []

    def on_images(state, batch):
        drawn.append(int(state.step))
        x = np.asarray(batch["x"])[:, :3]  # [B, 3] in pseudo-colour
        tiles = np.broadcast_to(((np.tanh(x) + 1) / 2)[:, None, None, :], (x.shape[0], 5, 7, 3))
        return {"inputs": image_grid([tiles, 1 - tiles])}

    logged = []
    state = run(tmp_path, cfg, on_images=on_images, on_log=lambda step, scalars: logged.append(step))
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == logged == [20, 40, 60, 80, 100, 120]
    assert records[-1]["loss"] < 0.5 * records[0]["loss"], [r["loss"] for r in records]
    assert int(state.step) == 120
    schedule = make_schedule(cfg)
    for r in records:
        assert r["learning_rate"] == pytest.approx(float(schedule(r["step"] - 1)), rel=1e-6)
        assert r["steps_per_sec"] > 0 and np.isfinite(r["grad_norm"])
    # EMA trails the params but follows them.
    ema_gap = optax.tree.norm(jax.tree.map(jnp.subtract, state.ema_params, state.params))
    assert 0 < float(ema_gap) < float(optax.tree.norm(state.params))
    assert drawn == [60, 120]
    for step in drawn:
        with Image.open(tmp_path / "images" / f"inputs_{step:07d}.png") as im:
            assert (im.height, im.width) == (8 * 5, 2 * 7)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "logs"))
    assert Checkpointer(str(tmp_path)).all_steps() == [60, 120]


# A flat cosine (end = peak) makes the schedule independent of `steps`, so a 4-step run extended to 6 steps
# must reproduce the 6-step run exactly.
FLAT = dict(end_learning_rate=1e-2)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 6-step run: (workdir, final state)."""
    workdir = tmp_path_factory.mktemp("straight")
    return workdir, run(workdir, toy_config(**FLAT))


def test_resume_equals_uninterrupted(tmp_path, straight):
    straight_dir, straight_state = straight
    cfg = toy_config(**FLAT)
    first = run(tmp_path, toy_config(**FLAT, steps=4), model_cfg=cfg)
    assert int(first.step) == 4
    assert Checkpointer(str(tmp_path)).latest_step() == 4
    second_logs = []
    resumed = run(tmp_path, cfg, on_log=lambda step, scalars: second_logs.append(step))
    assert second_logs == [5, 6]  # continued, not restarted

    expected = losses(straight_dir)
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]
    assert losses(tmp_path) == expected
    for part in ("params", "opt_state", "ema_params"):
        jax.tree.map(np.testing.assert_array_equal, getattr(resumed, part), getattr(straight_state, part))


def test_resume_after_a_crash_between_checkpoints(tmp_path, straight):
    straight_dir, straight_state = straight
    cfg = toy_config(**FLAT)

    class Crash(Exception):
        pass

    def crash_at_3(step, scalars):
        if step == 3:
            raise Crash

    with pytest.raises(Crash):
        run(tmp_path, cfg, on_log=crash_at_3)
    assert Checkpointer(str(tmp_path)).latest_step() == 2
    resumed = run(tmp_path, cfg)
    steps = [r["step"] for r in read_metrics(tmp_path)]
    assert steps == [1, 2, 3, 4, 5, 6]  # step 3's record from the crashed run was dropped, then rewritten
    assert losses(tmp_path) == losses(straight_dir)
    jax.tree.map(np.testing.assert_array_equal, resumed.params, straight_state.params)


def test_nan_guard_keeps_the_last_good_checkpoint(tmp_path):
    cfg = toy_config(steps=10)
    with pytest.raises(TrainingDiverged, match="step 5") as info:
        run(tmp_path, cfg, nan_at=4)  # update 4 (0-based) is step 5
    assert info.value.step == 5
    assert set(info.value.bad) == {"loss", "grad_norm"}

    checkpointer = Checkpointer(str(tmp_path))
    assert checkpointer.all_steps() == [2, 4]
    abstract = jax.eval_shape(toy(cfg, 4)[0], jax.random.key(0))
    restored = checkpointer.restore(None, abstract)
    assert int(restored.step) == 4
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(restored))

    records = read_metrics(tmp_path)
    event = [r for r in records if r.get("event") == "diverged"]
    assert len(event) == 1 and event[0]["step"] == 5 and event[0]["time"] > 0
    assert event[0]["metrics"] == ["grad_norm", "loss"]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]


def test_resume_with_another_model_config_is_refused(tmp_path):
    cfg = toy_config()
    check_or_store_config(str(tmp_path), {"face": {"width": 8}, "face_train": cfg.to_dict()})
    with pytest.raises(ConfigMismatchError, match=r"face\.width: 8 in the workdir, 16 now"):
        run(tmp_path, cfg, config={"face": {"width": 16}, "face_train": cfg.to_dict()})
    assert not (tmp_path / "checkpoints").exists() or not os.listdir(tmp_path / "checkpoints")


def test_batch_size_must_split_over_the_devices(tmp_path):
    with pytest.raises(ValueError, match="batch_size 3 does not split over 2 devices"):
        run(tmp_path, toy_config(batch_size=3))
