"""TrainState: the pytree the training loop carries, checkpoints and replicates.

The loop only needs a `step` field; this class is the generic one both stages can use. A stage with more
than one network (stage 1's discriminator) keeps the others' params and optimiser states in `extra`.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from vasa_jax.train.optim import ema_update


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: updates applied so far
    params: Any
    opt_state: Any
    ema_params: Any  # EMA of params (what sampling uses), or None when EMA is off
    extra: dict[str, Any]  # other networks' params / optimiser states, e.g. {"disc": ..., "disc_opt": ...}
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, params, optimizer: optax.GradientTransformation, ema: bool = True, extra=None) -> TrainState:
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            # A copy, not the same arrays: the loop donates the state, and one buffer cannot be donated twice.
            ema_params=jax.tree.map(jnp.copy, params) if ema else None,
            extra=dict(extra or {}),
            tx=optimizer,
        )

    def apply_gradients(self, grads, ema_decay: float = 0.0) -> TrainState:
        """One optimiser update of params (step + 1), then the EMA update when EMA is on."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        ema_params = None if self.ema_params is None else ema_update(self.ema_params, params, ema_decay)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state, ema_params=ema_params)
