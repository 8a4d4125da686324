"""Reading network weights that others publish: safetensors files, and torch.save state dicts.

A .pth / .pt / .bin file is read through torch.load(weights_only=True), so a checkpoint can never run code,
and only when torch is installed; .safetensors needs no torch. Every problem raises CheckpointError, whose
message names the file or folder and says what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

TORCH_SUFFIXES = (".pth", ".pt", ".bin")


class CheckpointError(ValueError):
    """A weights file or checkpoint folder cannot be used. The message names it and says what is wrong."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def checkpoint_folder(path: str | os.PathLike, expected: str) -> Path:
    """path as a Path if it is an existing folder, else CheckpointError; `expected` says what folder belongs there."""
    root = Path(path)
    if not root.exists():
        raise CheckpointError(path, "checkpoint folder not found")
    if not root.is_dir():
        raise CheckpointError(path, f"is a file; {expected}")
    return root


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a weights file as float32 numpy arrays, keyed as in the file (a file holding several
    state dicts under names gives keys 'name.key')."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(path, "is a directory, not a weights file" if file.is_dir() else "weights file not found")
    if file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            return {k: v.astype(np.float32, copy=False) for k, v in load_file(file).items()}
        except (SafetensorError, OSError, TypeError, ValueError) as e:
            raise CheckpointError(path, f"cannot be read as safetensors ({e})") from None
    if file.suffix not in TORCH_SUFFIXES:
        raise CheckpointError(path, "has an unknown extension; expected .safetensors or a torch.save state dict "
                                    f"({' / '.join(TORCH_SUFFIXES)})")
    try:
        import torch
    except ImportError:
        raise CheckpointError(path, "reading it needs torch, which is not installed; install torch or convert "
                                    "the file to .safetensors") from None
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types here (UnpicklingError, RuntimeError, EOFError, ...)
        raise CheckpointError(path, f"cannot be read by torch.load(weights_only=True) ({e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a state dict")
    return {k: v.detach().to(torch.float32).numpy() for k, v in flat_dict(state, ".").items()
            if isinstance(v, torch.Tensor)}


def flat_dict(tree: dict, sep: str, prefix: str = "") -> dict:
    """Nested dicts -> one dict whose keys join the path with `sep` ('outer.inner.key'), leaves as they are."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_dict(value, sep, f"{prefix}{key}{sep}"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def flatten(tree: dict) -> dict[str, np.ndarray]:
    """Nested dict of arrays -> {"a/b/c": array} (Flax names hold no '/')."""
    return {k: np.asarray(v) for k, v in flat_dict(tree, "/").items()}


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def read_weights_tree(path: Path) -> dict:
    """A safetensors file of 'a/b/c' keys -> a nested float32 tree; CheckpointError if unreadable."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise CheckpointError(path, "not found: the checkpoint is incomplete")
    try:
        flat = load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise CheckpointError(path, f"cannot be read as safetensors (corrupt or truncated?): {e}") from None
    return unflatten({k: v.astype(np.float32) for k, v in flat.items()})


def check_tree(path: Path, params: dict, expected, what: str) -> None:
    """Raise CheckpointError unless `params` has exactly the names and shapes of `expected` (a shape tree)."""
    import jax

    have = {k: v.shape for k, v in flatten(params).items()}
    want = {"/".join(str(k.key) for k in keys): tuple(leaf.shape)
            for keys, leaf in jax.tree_util.tree_flatten_with_path(expected)[0]}
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or extra:
        raise CheckpointError(path, f"does not hold the {what} its manifest describes (missing {missing[:3]}, "
                                    f"unexpected {extra[:3]})")
    wrong = [k for k in want if have[k] != want[k]]
    if wrong:
        raise CheckpointError(path, f"{wrong[0]} is {have[wrong[0]]}; the {what} its manifest describes needs "
                                    f"{want[wrong[0]]}")
