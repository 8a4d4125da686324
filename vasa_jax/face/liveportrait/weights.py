"""LivePortrait's PyTorch state dicts <-> our params trees, by one naming rule for every network.

A torch key is a module path and a tensor name: `down_blocks.0.conv.weight`. The module path maps onto the
Flax tree by merging each list index into the name before it (`down_blocks_0`, Flax's own name for element 0
of a list attribute), so `down_blocks.0.conv` is params["down_blocks_0"]["conv"]; a network whose Flax names
differ in some other way passes `rename` (torch path -> Flax path). Tensor names and layouts:

    conv weight [O, I, k...]        -> kernel [k..., I, O]
    linear weight [O, I]            -> kernel [I, O]
    norm weight [C]                 -> scale
    running_mean / running_var      -> mean / var (BatchNorm in eval mode: layers.BatchNorm)
    weight_orig, weight_u, weight_v -> kernel = weight_orig / (u^T W v), spectral norm as torch evaluates it
    num_batches_tracked             -> dropped (training bookkeeping)
    anything else (GRN's gamma...)  -> kept under its own name and shape

Every problem raises CheckpointError naming the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import jax
import numpy as np

from vasa_jax.io.weights import CheckpointError

_INDEX = re.compile(r"\.(\d+)(?=\.|$)")
_DROPPED = ("num_batches_tracked",)


def flax_path(module_path: str) -> tuple[str, ...]:
    """`down_blocks.0.conv` -> ('down_blocks_0', 'conv'); `mlp.0` -> ('mlp_0',)."""
    return tuple(part for part in _INDEX.sub(r"_\1", module_path).split(".") if part)


def _spectral(weight_orig: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """torch.nn.utils.spectral_norm in eval mode: weight_orig / sigma with sigma = u . (W_mat v), no iteration."""
    w = weight_orig.astype(np.float64)
    sigma = float(u.astype(np.float64) @ (w.reshape(w.shape[0], -1) @ v.astype(np.float64)))
    return (w / sigma).astype(np.float32)


def _layout(name: str, value: np.ndarray, has_stats: bool) -> tuple[str, np.ndarray]:
    if name == "weight":
        if value.ndim >= 3:  # conv: [O, I, k...] -> [k..., I, O]
            return "kernel", np.transpose(value, tuple(range(2, value.ndim)) + (1, 0))
        if value.ndim == 2:
            return "kernel", value.T
        return "scale", value
    if has_stats and name == "running_mean":
        return "mean", value
    if has_stats and name == "running_var":
        return "var", value
    return name, value


def convert(state: dict[str, np.ndarray], template, path, *,
            rename: Callable[[str], tuple[str, ...]] = flax_path) -> dict:
    """A torch state dict -> a params tree with exactly the names and shapes of `template` (a tree of arrays or
    ShapeDtypeStructs, e.g. jax.eval_shape of the network's init). `path` names the file in errors."""
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        module, _, name = key.rpartition(".")
        if name not in _DROPPED:
            modules.setdefault(module, {})[name] = np.asarray(value, np.float32)
    flat: dict[tuple[str, ...], tuple[str, np.ndarray]] = {}  # flax path -> (torch key, array)
    for module, tensors in modules.items():
        prefix = rename(module)
        if "weight_orig" in tensors:
            if "weight_u" not in tensors or "weight_v" not in tensors:
                raise CheckpointError(path, f"{module}.weight_orig has no weight_u / weight_v (spectral norm)")
            tensors["weight"] = _spectral(tensors.pop("weight_orig"), tensors.pop("weight_u"),
                                          tensors.pop("weight_v"))
        has_stats = "running_mean" in tensors
        for name, value in tensors.items():
            leaf, array = _layout(name, value, has_stats)
            flat[prefix + (leaf,)] = (f"{module}.{name}" if module else name, array)

    want = {tuple(str(k.key) for k in keys): tuple(leaf.shape)
            for keys, leaf in jax.tree_util.tree_flatten_with_path(template)[0]}
    missing = sorted(set(want) - set(flat))
    if missing:
        raise CheckpointError(path, f"missing key for {'/'.join(missing[0])} ({len(missing)} missing in all); "
                                    "not a checkpoint of this network, or of other sizes")
    unexpected = sorted(set(flat) - set(want))
    if unexpected:
        raise CheckpointError(path, f"unexpected key {flat[unexpected[0]][0]} ({len(unexpected)} unexpected in all)")
    params: dict = {}
    for leaf_path, (key, array) in flat.items():
        if array.shape != want[leaf_path]:
            raise CheckpointError(path, f"{key} has shape {tuple(array.shape)} in our layout; this network needs "
                                        f"{want[leaf_path]} (a checkpoint of other sizes?)")
        node = params
        for part in leaf_path[:-1]:
            node = node.setdefault(part, {})
        node[leaf_path[-1]] = array
    return params
