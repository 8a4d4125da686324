"""What a training run writes for people to read: scalars (TensorBoard + metrics.jsonl), image grids, a progress bar.

Only process 0 writes (MetricWriter's `enabled` default). Layout in a workdir: logs/ (TensorBoard event
files), metrics.jsonl (one JSON object per log step or event), images/{name}_{step:07d}.png.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import tensorboardX
import tqdm

from vasa_jax.io import load_image, save_image


def image_grid(columns: Sequence, max_items: int = 8) -> np.ndarray:
    """Kinds side by side, batch items top to bottom: one grid row per item reads e.g.
    source | driver | reconstruction | transfer.

    columns: list of [B, H, W, 3] arrays (float in [0, 1] or uint8), all of one shape; the first
    max_items items are shown. Returns uint8 [min(B, max_items) * H, len(columns) * W, 3].
    """
    columns = [np.stack([load_image(item) for item in np.asarray(c)[:max_items]]) for c in columns]
    if len({c.shape for c in columns}) != 1:
        raise ValueError(f"image_grid wants [B, H, W, 3] arrays of one shape, got shapes {[c.shape for c in columns]}")
    return np.concatenate([np.concatenate(list(c), axis=0) for c in columns], axis=1)


class MetricWriter:
    """Scalars to TensorBoard (workdir/logs) and workdir/metrics.jsonl; image grids to workdir/images and TensorBoard.

    resume_step: a run resumed from the checkpoint at this step drops the jsonl records after it, which the
    resumed run writes again (TensorBoard keeps both; it shows the later one).
    """

    def __init__(self, workdir: str, enabled: bool | None = None, resume_step: int | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.workdir = workdir
        self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
        self.images_dir = os.path.join(workdir, "images")
        if not self.enabled:
            return
        os.makedirs(self.images_dir, exist_ok=True)
        if resume_step is not None and os.path.exists(self.jsonl_path):
            with open(self.jsonl_path) as f:
                kept = [line for line in f if line.strip() and json.loads(line)["step"] <= resume_step]
            with open(self.jsonl_path, "w") as f:
                f.writelines(kept)
        self._tb = tensorboardX.SummaryWriter(logdir=os.path.join(workdir, "logs"))
        self._jsonl = open(self.jsonl_path, "a")

    def _append(self, record: dict) -> None:
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        now = time.time()
        values = {k: float(v) for k, v in scalars.items()}
        for key, value in values.items():
            self._tb.add_scalar(key, value, step, walltime=now)
        self._append({"step": step, "time": now, **values})

    def write_event(self, step: int, event: str, **info) -> None:
        """A one-off occurrence (e.g. divergence) with its wall time, in metrics.jsonl and as TensorBoard text."""
        if not self.enabled:
            return
        now = time.time()
        record = {"step": step, "time": now, "event": event, **info}
        self._append(record)
        self._tb.add_text("events", json.dumps(record), step, walltime=now)
        self._tb.flush()

    def write_images(self, step: int, name: str, grid) -> str | None:
        """grid: [H, W, 3] uint8 (image_grid's output) or float in [0, 1]. Returns the PNG's path (None if disabled)."""
        if not self.enabled:
            return None
        grid = load_image(grid)
        path = os.path.join(self.images_dir, f"{name}_{step:07d}.png")
        save_image(path, grid)
        self._tb.add_image(name, grid, step, dataformats="HWC")
        return path

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()
            self._jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()


class Progress:
    """A tqdm bar over the training steps: step rate and latest loss. Silent when quiet or not process 0."""

    def __init__(self, total: int, initial: int = 0, quiet: bool = False):
        self._bar = tqdm.tqdm(
            total=total, initial=initial, unit="step", dynamic_ncols=True,
            disable=quiet or jax.process_index() != 0,
        )

    def update(self, steps: int = 1) -> None:
        self._bar.update(steps)

    def set_loss(self, loss: float) -> None:
        self._bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def close(self) -> None:
        self._bar.close()
