"""The training loop both stages share: everything around a pure step function.

A stage supplies init_state(key) -> state, step_fn(state, batch, key) -> (state, metrics) and a data
iterator; train() replicates the state over the devices, compiles the step once, resumes from the workdir's
latest checkpoint, and logs, draws and checkpoints on the config's schedule. Rerunning an interrupted command
continues it: state, data position and per-step keys are restored, so the losses match an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh

from vasa_jax.train.checkpoint import Checkpointer
from vasa_jax.train.logging import MetricWriter, Progress
from vasa_jax.train.optim import make_schedule
from vasa_jax.train.parallel import compile_step, make_mesh, process_batch_size, replicated, shard_batch

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A step produced a non-finite metric; the workdir's latest checkpoint is from before it."""

    def __init__(self, step: int, bad: Mapping[str, float]):
        self.step = step
        self.bad = dict(bad)
        names = ", ".join(f"{k}={v}" for k, v in self.bad.items())
        super().__init__(
            f"training diverged at step {step}: non-finite {names}. Nothing from this step on was saved; "
            "rerunning resumes from the latest checkpoint (lower the learning rate or fix the step first)."
        )


def train(
    workdir: str,
    train_cfg,
    init_state: Callable,
    step_fn: Callable,
    make_iterator: Callable,
    *,
    mesh: Mesh | None = None,
    config=None,
    config_sections=None,
    on_log: Callable[[int, dict], None] | None = None,
    on_images: Callable[[object, dict], Mapping[str, np.ndarray]] | None = None,
    quiet: bool = False,
):
    """Train to train_cfg.steps in `workdir`, resuming from its latest checkpoint; returns the final state.

    init_state(key) -> state: traceable (it runs under jit, straight onto the replicated layout; on resume
        only its shapes are used). The state is a pytree, normally a TrainState; a `step` field, if present,
        must count the updates (step_fn adds 1), else the loop counts.
    step_fn(state, batch, key) -> (state, metrics): pure, written for the global batch (no pmean); metrics a
        dict of scalars, "loss" shown on the progress bar. key = fold_in(run key, step before the update).
    make_iterator() -> iterator of process-local batches (dicts of numpy arrays, leading axis
        batch_size // process_count) with get_state/set_state, e.g. a grain DatasetIterator.
    mesh: default make_mesh() over every device. config: the run's whole config, recorded in and checked
        against workdir/config.json (default: train_cfg alone); config_sections: the top-level sections the
        stage reads, the only ones a resume compares (default: all).
    on_log(step, scalars): after each scalar log. on_images(state, batch) -> {name: uint8 [H, W, 3] grid}:
        every image_every steps, with the global batch just trained on; runs on every process.
    Raises TrainingDiverged when any metric is not finite; the last good checkpoint stays the latest.
    """
    mesh = make_mesh() if mesh is None else mesh
    local_batch = process_batch_size(train_cfg.batch_size, mesh)
    total = int(train_cfg.steps)
    schedule = make_schedule(train_cfg)
    rep = replicated(mesh)
    # Made under jit straight onto the mesh, so that every process holds the same replicated keys.
    init_key, run_key = jax.jit(lambda: tuple(jax.random.split(jax.random.key(train_cfg.seed))), out_shardings=rep)()

    with contextlib.ExitStack() as cleanup:  # on any exit: finish async saves, close files
        checkpointer = Checkpointer(workdir, train_cfg.keep_checkpoints, config=train_cfg if config is None else config,
                                  sections=config_sections)
        cleanup.callback(checkpointer.close)
        cleanup.callback(checkpointer.wait)  # callbacks run last-in first-out: this one before close
        iterator = make_iterator()
        start = checkpointer.latest_step()
        if start is None:
            state = jax.jit(init_state, out_shardings=rep)(init_key)
        else:
            abstract = jax.tree.map(
                lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), jax.eval_shape(init_state, init_key)
            )
            state = checkpointer.restore(start, abstract, iterator)
            log.info("resumed %s from step %d", workdir, start)
        step = int(state.step) if hasattr(state, "step") else (start or 0)
        if start is not None and step != start:
            raise ValueError(f"checkpoint {start} in {workdir} holds a state with step {step}")

        compiled = compile_step(step_fn, mesh)
        writer = MetricWriter(workdir, resume_step=step)
        cleanup.callback(writer.close)
        progress = Progress(total, initial=step, quiet=quiet)
        cleanup.callback(progress.close)
        history: list[dict[str, np.ndarray]] = []  # host metrics since the last log
        last_log_time, last_log_step = time.perf_counter(), step

        def record(at_step: int, metrics) -> None:
            """Fetch one step's metrics; stop the run if any is not finite."""
            values = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
            bad = {k: float(v[~np.isfinite(v)].flat[0]) for k, v in values.items() if not np.all(np.isfinite(v))}
            if bad:
                writer.write_event(at_step, "diverged", metrics=sorted(bad))
                log.error("training diverged at step %d: non-finite %s", at_step, sorted(bad))
                raise TrainingDiverged(at_step, bad)
            history.append(values)
            progress.update()

        pending = None  # (step, metrics on device): checked one step late, so the host does not wait on each step
        while step < total:
            batch = shard_batch(next(iterator), mesh)
            first = jax.tree.leaves(batch)[0]
            if first.shape[0] != local_batch * jax.process_count():
                raise ValueError(
                    f"the data iterator yields batches of {first.shape[0] // jax.process_count()} per process; "
                    f"batch_size {train_cfg.batch_size} over {jax.process_count()} processes wants {local_batch}."
                )
            state, metrics = compiled(state, batch, jax.random.fold_in(run_key, step))
            step += 1
            if pending is not None:
                record(*pending)
            pending = (step, metrics)

            do_log = step % train_cfg.log_every == 0 or step == total
            do_images = on_images is not None and step % train_cfg.image_every == 0
            do_save = step % train_cfg.checkpoint_every == 0 or step == total
            if not (do_log or do_images or do_save):
                continue
            record(*pending)  # never log, draw or save a state whose metrics were not checked
            pending = None
            if do_log:
                now = time.perf_counter()
                scalars = {k: float(np.mean([h[k] for h in history])) for k in history[-1]}
                scalars["learning_rate"] = float(schedule(step - 1))
                scalars["steps_per_sec"] = (step - last_log_step) / max(now - last_log_time, 1e-9)
                writer.write_scalars(step, scalars)
                if "loss" in scalars:
                    progress.set_loss(scalars["loss"])
                if on_log is not None:
                    on_log(step, scalars)
                history.clear()
                last_log_time, last_log_step = now, step
            if do_images:
                for name, grid in on_images(state, batch).items():
                    writer.write_images(step, name, np.asarray(grid))
            if do_save:
                if hasattr(state, "step") and int(state.step) != step:
                    raise ValueError(f"state.step is {int(state.step)} after {step} steps: step_fn must add 1 to it")
                checkpointer.save(step, state, iterator, force=True)
    return state
