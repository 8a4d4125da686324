"""Checkpoints of a training run: the state pytree and the data iterator's position, saved together by Orbax.

Layout of a workdir: checkpoints/<step>/{state,data}/ (Orbax CheckpointManager, async saves, the newest
`keep` kept) and config.json (the run's config from its first run). A workdir is one run: reusing it with a
different config is refused, except for the fields in RESUMABLE_FIELDS (training length and bookkeeping),
which a resumed run may change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection

import grain
import jax
import orbax.checkpoint as ocp

from vasa_jax.io.weights import flat_dict

# Fields (matched by their last name, in any config section) that may differ when a run is resumed.
RESUMABLE_FIELDS = frozenset({"steps", "log_every", "image_every", "checkpoint_every", "keep_checkpoints"})


class ConfigMismatchError(ValueError):
    """The workdir holds a run with another config."""


def _plain(config) -> dict:
    """ConfigDict / dataclass-like / dict -> JSON-shaped dict (tuples become lists), for storing and comparing."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def check_or_store_config(workdir: str, config, may_change: Collection[str] = RESUMABLE_FIELDS,
                          sections: Collection[str] | None = None) -> None:
    """Write workdir/config.json on a first run; on a later run raise ConfigMismatchError if any field outside
    `may_change` differs from it. `sections`: compare only these top-level sections (the ones the run's stage
    reads; a section added to the config since, for another stage, does not block a resume); None: all."""
    path = os.path.join(workdir, "config.json")
    current = _plain(config)
    if not os.path.exists(path):
        if jax.process_index() == 0:
            os.makedirs(workdir, exist_ok=True)
            with open(path + ".tmp", "w") as f:
                json.dump(current, f, indent=2, sort_keys=True)
            os.replace(path + ".tmp", path)
        return
    with open(path) as f:
        stored = flat_dict(json.load(f), ".")
    new = flat_dict(current, ".")
    if sections is not None:
        keep = lambda flat: {k: v for k, v in flat.items() if k.split(".", 1)[0] in sections}  # noqa: E731
        stored, new = keep(stored), keep(new)

    def show(flat, key):
        return repr(flat[key]) if key in flat else "absent"

    diffs = [
        f"  {key}: {show(stored, key)} in the workdir, {show(new, key)} now"
        for key in sorted(set(stored) | set(new))
        if key.rsplit(".", 1)[-1] not in may_change and (key not in stored or key not in new or stored[key] != new[key])
    ]
    if diffs:
        raise ConfigMismatchError(
            f"{workdir} holds a run with another config ({path}); refusing to resume it with:\n"
            + "\n".join(diffs)
            + f"\nUse a new workdir, or go back to the stored values. Only {sorted(may_change)} may change "
            "on resume."
        )


class _StatefulIterator(grain.DatasetIterator):
    """Lends grain's Orbax handler (JSON state, one file per process) to any iterator with get_state/set_state."""

    def __init__(self, iterator):
        super().__init__()
        self._iterator = iterator

    def __next__(self):
        return next(self._iterator)

    def get_state(self):
        return self._iterator.get_state()

    def set_state(self, state):
        self._iterator.set_state(state)


def _grain_item(iterator):
    if isinstance(iterator, (grain.DatasetIterator, grain.DataLoaderIterator)):
        return iterator
    if not (hasattr(iterator, "get_state") and hasattr(iterator, "set_state")):
        raise TypeError(
            f"{type(iterator).__name__} has no get_state/set_state, so its position cannot be checkpointed; "
            "use a grain DatasetIterator (iter(dataset.to_iter_dataset())) or add both methods."
        )
    return _StatefulIterator(iterator)


class Checkpointer:
    """Orbax CheckpointManager over workdir/checkpoints: async saves of (state, data iterator), the newest `keep` kept.

    `config`, when given, is recorded in / checked against workdir/config.json (check_or_store_config, over
    `sections`).
    """

    def __init__(self, workdir: str, keep: int = 3, config=None, may_change: Collection[str] = RESUMABLE_FIELDS,
                 sections: Collection[str] | None = None):
        self.workdir = os.path.abspath(workdir)
        if config is not None:
            check_or_store_config(self.workdir, config, may_change, sections)
        self._manager = ocp.CheckpointManager(
            os.path.join(self.workdir, "checkpoints"),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        )

    def save(self, step: int, state, data_iterator=None, force: bool = False) -> bool:
        """Start saving `state` (and the iterator's position) as `step`; returns once the arrays are copied to
        the host, so the caller may donate or overwrite them. Returns whether a save was started."""
        items = dict(state=ocp.args.StandardSave(state))
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(_grain_item(data_iterator))
        return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def restore(self, step: int | None, abstract_state, data_iterator=None):
        """The state saved at `step` (None: the latest), laid out like `abstract_state` (jax.ShapeDtypeStruct
        leaves with the target shardings); `data_iterator`, if given, is moved in place to where it was."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self._manager.directory}")
        items = dict(state=ocp.args.StandardRestore(abstract_state))
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(_grain_item(data_iterator))
        return self._manager.restore(step, args=ocp.args.Composite(**items)).state

    def wait(self) -> None:
        """Block until every async save has been written."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
