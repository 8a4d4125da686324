"""Data parallelism: one jit-compiled step over a 1-D 'data' mesh, state replicated, batch split.

This is pmap's data parallelism in its current form. The step function is written as if for one device on
the global batch; with the state replicated (P()) and the batch split (P('data')), the compiler partitions it
and inserts the gradient all-reduce itself, so a step function must NOT pmean its gradients.

Multi-host: call maybe_initialize_distributed() before anything else touches jax (train.py does it before
loading the config, whose imports do); every process then runs the same program, loads its own
1/process_count of each global batch (process_batch_size; the data iterators give process p every
process_count-th batch, which is rows [p * n, (p + 1) * n) of the batch one process would read) and
shard_batch assembles the global array from the process-local pieces. On CPUs the processes' collectives go
through Gloo over TCP (jax_cpu_collectives_implementation, "gloo" by default); tests/test_train_multiprocess.py
runs two processes on one machine this way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
from vasa_jax.errors import ConfigError

DATA_AXIS = "data"


def _launched_multiprocess() -> bool:
    """Whether the usual launcher variables describe more than one process."""
    env = os.environ
    if env.get("JAX_COORDINATOR_ADDRESS"):
        return True
    for count in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        if int(env.get(count, "1")) > 1:
            return True
    return "," in env.get("TPU_WORKER_HOSTNAMES", "")  # a multi-host Cloud TPU slice


def maybe_initialize_distributed(force: bool = False) -> bool:
    """Start jax.distributed when launched as several processes (or when forced); a no-op for one process.

    Recognises an explicit coordinator (JAX_COORDINATOR_ADDRESS with JAX_NUM_PROCESSES and JAX_PROCESS_ID),
    SLURM (SLURM_NTASKS > 1), Open MPI (OMPI_COMM_WORLD_SIZE > 1) and multi-host Cloud TPU; for the latter
    three jax.distributed.initialize() reads the rest from the environment itself. Must run before any other
    jax call. Returns whether jax.distributed is initialised.
    """
    if jax.distributed.is_initialized():
        return True
    if not (force or _launched_multiprocess()):
        return False
    kwargs = {}
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        missing = [v for v in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if v not in os.environ]
        if missing:
            raise ConfigError(
                f"JAX_COORDINATOR_ADDRESS is set but {', '.join(missing)} is not: set all three "
                "(address host:port, the number of processes, and this process's index from 0)."
            )
        kwargs = dict(num_processes=int(os.environ["JAX_NUM_PROCESSES"]), process_id=int(os.environ["JAX_PROCESS_ID"]))
    jax.distributed.initialize(**kwargs)
    return True


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis 'data' over `devices` (default: every device of every process).

    Auto axis types: with Explicit ones (jax.make_mesh's default now) mixing mesh-sharded and unsharded
    arrays raises, and nothing here needs sharding in types.
    """
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over 'data', the rest whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree, mesh: Mesh):
    """Every leaf copied whole onto every device of the mesh.

    With several processes each leaf must be a numeric array holding the same values on every process (it is
    read back to the host); make PRNG keys and initial states under jit with out_shardings=replicated(mesh)
    instead, as the loop does.
    """
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def process_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """This process's share of a global batch; raises unless the batch splits evenly over the mesh's devices."""
    if global_batch_size % mesh.size:
        raise ConfigError(
            f"batch_size {global_batch_size} does not split over {mesh.size} devices: data parallelism puts "
            f"an equal part of the batch on each device, so use a multiple of {mesh.size}."
        )
    return global_batch_size // jax.process_count()


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Process-local numpy batch (leading axis = this process's examples) -> global jax.Arrays split on 'data'."""
    sharding = data_sharded(mesh)
    local_devices = len(mesh.local_devices)

    def put(path, x):
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] % local_devices:
            raise ConfigError(
                f"batch{jax.tree_util.keystr(path)} has shape {x.shape}: its leading (batch) axis must split "
                f"evenly over this process's {local_devices} devices. Make batch_size a multiple of the "
                "device count."
            )
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree_util.tree_map_with_path(put, batch)


def to_host(tree):
    """numpy copies of a pytree of global jax.Arrays, whole on every process: with several processes the rows
    other processes hold are gathered, so every process must call this at the same point."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def compile_step(step_fn: Callable, mesh: Mesh, donate_state: bool = True) -> Callable:
    """jit `step_fn(state, batch, key) -> (state, metrics)` for data parallelism over `mesh`.

    state and key replicated, batch split on 'data'; the new state and the metrics (scalars) come back
    replicated. With donate_state the input state's buffers are reused for the output: do not touch the
    state passed in after the call.
    """
    rep = replicated(mesh)
    return jax.jit(
        step_fn,
        in_shardings=(rep, data_sharded(mesh), rep),
        out_shardings=(rep, rep),
        donate_argnums=(0,) if donate_state else (),
    )
