"""Data parallelism: the step sharded over 2 simulated CPU devices equals the one-device step."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from vasa_jax.config import train_defaults
from vasa_jax.train import (
    TrainState, compile_step, make_mesh, make_optimizer, maybe_initialize_distributed, process_batch_size,
    replicate, shard_batch,
)

BATCH, STEPS = 8, 4


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):  # [B, 5] -> [B, 2]
        return nn.Dense(2)(nn.LayerNorm()(nn.tanh(nn.Dense(16)(x))))


def _cfg():
    cfg = train_defaults()
    cfg.update(dict(steps=10, warmup_steps=2, learning_rate=1e-2, grad_clip_norm=0.5))
    return cfg


OPTIMIZER = make_optimizer(_cfg())


def step_fn(state, batch, key):
    # A per-example term from the key checks that sharding does not change the random numbers either.
    noise = 0.1 * jax.random.normal(key, batch["y"].shape)

    def loss_fn(params):
        return jnp.mean((Net().apply({"params": params}, batch["x"]) - batch["y"] - noise) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads, ema_decay=0.9), {"loss": loss}


def batches():
    rng = np.random.default_rng(1)
    return [{"x": rng.normal(size=(BATCH, 5)).astype(np.float32), "y": rng.normal(size=(BATCH, 2)).astype(np.float32)}
            for _ in range(STEPS)]


def train_on(mesh):
    params = Net().init(jax.random.key(0), jnp.zeros((1, 5)))["params"]
    state = replicate(TrainState.create(params, OPTIMIZER), mesh)
    step = compile_step(step_fn, mesh)
    key = replicate(jax.random.key(3), mesh)
    losses = []
    for i, batch in enumerate(batches()):
        state, metrics = step(state, shard_batch(batch, mesh), jax.random.fold_in(key, i))
        losses.append(float(metrics["loss"]))
    return state, losses


def test_two_devices_equal_one():
    assert jax.device_count() == 2, "tests/conftest.py should give the CPU two devices"
    two, two_losses = train_on(make_mesh())
    one, one_losses = train_on(make_mesh(jax.devices()[:1]))
    assert int(two.step) == int(one.step) == STEPS
    np.testing.assert_allclose(two_losses, one_losses, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), two.params, one.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), two.ema_params, one.ema_params)
    # The state really lives on both devices, whole.
    for leaf in jax.tree.leaves(two.params):
        assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 2
    # ...and moved far more than the tolerance, so the equality above is not trivial.
    init = Net().init(jax.random.key(0), jnp.zeros((1, 5)))["params"]
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), two.params, init)
    assert min(jax.tree.leaves(moved)) > 1e-3, moved


def test_batch_is_split_over_the_data_axis():
    mesh = make_mesh()
    batch = shard_batch(batches()[0], mesh)
    x = batch["x"]
    assert x.shape == (BATCH, 5) and x.sharding.spec == P("data")
    shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start)
    assert [s.data.shape for s in shards] == [(BATCH // 2, 5)] * 2
    assert {s.device for s in shards} == set(jax.devices())
    np.testing.assert_array_equal(np.asarray(x), batches()[0]["x"])


def test_state_is_donated():
    mesh = make_mesh()
    params = Net().init(jax.random.key(0), jnp.zeros((1, 5)))["params"]
    state = replicate(TrainState.create(params, OPTIMIZER), mesh)
    step = compile_step(step_fn, mesh)
    new, _ = step(state, shard_batch(batches()[0], mesh), replicate(jax.random.key(0), mesh))
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(state.params))
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(new.params))


def test_batch_must_split_over_devices():
    mesh = make_mesh()
    with pytest.raises(ValueError, match="batch_size 3 does not split over 2 devices"):
        process_batch_size(3, mesh)
    assert process_batch_size(4, mesh) == 4  # one process holds the whole global batch
    with pytest.raises(ValueError, match=r"batch\['x'\] has shape \(3, 5\)"):
        shard_batch({"x": np.zeros((3, 5), np.float32)}, mesh)


def test_distributed_is_a_no_op_on_one_process(monkeypatch):
    for var in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "1")  # a one-task SLURM job is still one process
    assert maybe_initialize_distributed() is False
    assert not jax.distributed.is_initialized()
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES, JAX_PROCESS_ID"):
        maybe_initialize_distributed()
    assert not jax.distributed.is_initialized()
