"""Checkpoints: state + data position round trip with target shardings, retention, and the workdir's config guard."""

import json

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa_jax.config import train_defaults
from vasa_jax.train import (
    Checkpointer, ConfigMismatchError, TrainState, check_or_store_config, make_mesh, make_optimizer, replicate,
    replicated,
)


def make_state(mesh, ema):
    cfg = train_defaults()
    params = {"dense": {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.ones(3)}}

    @jax.jit
    def create():
        state = TrainState.create(params, make_optimizer(cfg), ema=ema, extra={"disc": {"w": jnp.full((4,), 7.0)}})
        return state.apply_gradients(jax.tree.map(jnp.ones_like, params), ema_decay=0.5)

    return replicate(create(), mesh)


def dataset_iterator():
    records = [{"i": np.int32(i)} for i in range(20)]
    return iter(grain.MapDataset.source(records).shuffle(seed=3).repeat().batch(4).to_iter_dataset())


@pytest.mark.parametrize("ema", [True, False])
def test_round_trip_restores_state_shardings_and_data_position(tmp_path, ema):
    mesh = make_mesh()
    state = make_state(mesh, ema)
    data = dataset_iterator()
    for _ in range(3):
        next(data)
    checkpointer = Checkpointer(str(tmp_path), keep=2)
    assert checkpointer.latest_step() is None
    assert checkpointer.save(3, state, data)
    checkpointer.wait()
    upcoming = [next(data)["i"] for _ in range(2)]

    fresh = dataset_iterator()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated(mesh)), state)
    restored = Checkpointer(str(tmp_path), keep=2).restore(3, abstract, fresh)
    assert type(restored) is TrainState and (restored.ema_params is None) == (not ema)
    jax.tree.map(np.testing.assert_array_equal, restored, state)
    for leaf in jax.tree.leaves(restored):
        assert leaf.sharding == replicated(mesh)
    np.testing.assert_array_equal([next(fresh)["i"] for _ in range(2)], upcoming)  # moved in place
    checkpointer.close()


class Counter:
    """Not a grain iterator: any iterator with get_state/set_state."""

    def __init__(self):
        self.i = 0

    def __next__(self):
        self.i += 1
        return self.i

    def get_state(self):
        return {"i": self.i}

    def set_state(self, state):
        self.i = state["i"]


def test_any_iterator_with_get_state(tmp_path):
    counter = Counter()
    for _ in range(5):
        next(counter)
    state = {"w": jnp.ones(2)}
    checkpointer = Checkpointer(str(tmp_path))
    checkpointer.save(5, state, counter)
    checkpointer.wait()
    fresh = Counter()
    checkpointer.restore(5, jax.eval_shape(lambda: state), fresh)
    assert next(fresh) == 6
    with pytest.raises(TypeError, match="has no get_state/set_state"):
        checkpointer.save(6, state, iter([1, 2]))
    checkpointer.close()


def test_keeps_the_newest(tmp_path):
    checkpointer = Checkpointer(str(tmp_path), keep=2)
    for step in range(1, 5):
        checkpointer.save(step, {"w": jnp.full((2,), float(step))})
    checkpointer.wait()
    assert checkpointer.all_steps() == [3, 4] and checkpointer.latest_step() == 4
    restored = checkpointer.restore(None, {"w": jax.ShapeDtypeStruct((2,), jnp.float32)})
    np.testing.assert_array_equal(restored["w"], [4.0, 4.0])
    checkpointer.close()


def test_config_is_stored_then_guarded(tmp_path):
    config = {"face": {"width": 8, "widths": (8, 16)}, "face_train": train_defaults().to_dict()}
    check_or_store_config(str(tmp_path), config)
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["face"] == {"width": 8, "widths": [8, 16]}

    longer = {**config, "face_train": {**config["face_train"], "steps": 10, "log_every": 1}}
    check_or_store_config(str(tmp_path), longer)  # training length and bookkeeping may change

    other_model = {**config, "face": {"width": 8, "widths": (8, 32)}}
    with pytest.raises(ConfigMismatchError, match=r"face\.widths: \[8, 16\] in the workdir, \[8, 32\] now"):
        check_or_store_config(str(tmp_path), other_model)
    other_lr = {**config, "face_train": {**config["face_train"], "learning_rate": 1.0}}
    with pytest.raises(ConfigMismatchError, match=r"face_train\.learning_rate"):
        Checkpointer(str(tmp_path), config=other_lr)
    added = {**config, "motion": {"layers": 2}}
    with pytest.raises(ConfigMismatchError, match=r"motion\.layers: absent in the workdir, 2 now"):
        check_or_store_config(str(tmp_path), added)
    # A stage compares only the sections it reads: another stage's section added since does not block it.
    check_or_store_config(str(tmp_path), added, sections=("face", "face_train"))
    with pytest.raises(ConfigMismatchError, match=r"face\.widths"):
        check_or_store_config(str(tmp_path), {**other_model, "motion": {"layers": 2}}, sections=("face",))
    with open(tmp_path / "config.json") as f:
        assert json.load(f)["face_train"]["steps"] == train_defaults().steps  # the first run's record stays
