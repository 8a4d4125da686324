"""PNG plots of an evaluation: mouth opening against the audio, and head-pose trajectories.

Matplotlib's object API with the Agg canvas: no display, no global backend state.
"""

from __future__ import annotations

import os

import numpy as np

from vasa_jax.eval.signals import ANGLES


def _figure(rows: int, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, height * rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]


_STYLES = ("-", "--", ":", "-.")  # later lines dashed: identical series stay visible on top of each other


def _standard(x):
    x = np.asarray(x, np.float64)
    return (x - x.mean()) / (x.std() + 1e-12)


def plot_mouth(path, mouths: dict, *, envelope=None, fps: float = 25.0, title: str = "") -> str:
    """Mouth opening over time, one line per entry of `mouths` (name -> [T]), each standardised (zero mean,
    unit deviation: landmark openings and toy-world values share no unit), with the audio's RMS envelope
    [T] underneath when given."""
    figure, (axis, *rest) = _figure(2 if envelope is not None else 1, 3.0)
    for k, (name, values) in enumerate(mouths.items()):
        axis.plot(np.arange(len(values)) / fps, _standard(values), _STYLES[k % 4], label=name, linewidth=1.4)
    axis.set_ylabel("mouth opening (standardised)")
    axis.legend(loc="upper right")
    axis.set_title(title or "mouth opening")
    if envelope is not None:
        rest[0].fill_between(np.arange(len(envelope)) / fps, np.asarray(envelope), color="0.6", linewidth=0)
        rest[0].set_ylabel("audio RMS")
    figure.axes[-1].set_xlabel("seconds")
    figure.savefig(path, dpi=100)
    return os.fspath(path)


def plot_pose(path, poses: dict, *, fps: float = 25.0, title: str = "") -> str:
    """Yaw, pitch and roll (degrees) over time, one line per entry of `poses` (name -> [T, >=3])."""
    figure, axes = _figure(3, 2.2)
    for k, (name, angles) in enumerate(poses.items()):
        angles = np.asarray(angles)
        for i, axis in enumerate(axes):
            axis.plot(np.arange(len(angles)) / fps, angles[:, i], _STYLES[k % 4], label=name, linewidth=1.4)
    for axis, angle in zip(axes, ANGLES):
        axis.set_ylabel(f"{angle} (deg)")
    axes[0].legend(loc="upper right")
    axes[0].set_title(title or "head pose")
    axes[-1].set_xlabel("seconds")
    figure.savefig(path, dpi=100)
    return os.fspath(path)
