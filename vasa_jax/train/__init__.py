"""Training infrastructure shared by both stages: optimiser, data parallelism, checkpoints, logging, the loop.

The stage-specific parts (losses, step functions) live with their models; this package knows nothing of faces
or motion.
"""

from vasa_jax.train.checkpoint import RESUMABLE_FIELDS, Checkpointer, ConfigMismatchError, check_or_store_config
from vasa_jax.train.logging import MetricWriter, Progress, image_grid
from vasa_jax.train.loop import TrainingDiverged, train
from vasa_jax.train.optim import decay_mask, ema_update, make_optimizer, make_schedule
from vasa_jax.train.parallel import (
    DATA_AXIS, compile_step, data_sharded, make_mesh, maybe_initialize_distributed, process_batch_size, replicate,
    replicated, shard_batch, to_host,
)
from vasa_jax.train.state import TrainState

__all__ = [
    "DATA_AXIS", "RESUMABLE_FIELDS", "Checkpointer", "ConfigMismatchError", "MetricWriter", "Progress",
    "TrainState", "TrainingDiverged", "check_or_store_config", "compile_step", "data_sharded", "decay_mask",
    "ema_update", "image_grid", "make_mesh", "make_optimizer", "make_schedule", "maybe_initialize_distributed",
    "process_batch_size", "replicate", "replicated", "shard_batch", "to_host", "train",
]
