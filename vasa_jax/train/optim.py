"""The optimiser both training stages use: AdamW with warm-up + cosine decay, global-norm clipping, and EMA.

Everything here is built from optax's own pieces; this module only fixes how a config section
(vasa_jax.config.train_defaults) maps onto them.
"""

from __future__ import annotations

import jax
import optax
from vasa_jax.errors import ConfigError


def make_schedule(train_cfg) -> optax.Schedule:
    """Learning rate per update: linear 0 -> learning_rate over warmup_steps, then cosine to end_learning_rate at steps.

    Update n (0-based, optax's count) uses schedule(n); schedule(steps) == end_learning_rate.
    """
    if train_cfg.steps <= train_cfg.warmup_steps:
        raise ConfigError(
            f"steps ({train_cfg.steps}) must be larger than warmup_steps ({train_cfg.warmup_steps}): the cosine "
            "decay runs over the steps after the warm-up. Lower warmup_steps or raise steps."
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=train_cfg.learning_rate,
        warmup_steps=train_cfg.warmup_steps,
        decay_steps=train_cfg.steps,  # optax counts the warm-up inside decay_steps
        end_value=train_cfg.end_learning_rate,
    )


def decay_mask(params):
    """True for weights of rank >= 2 (kernels, embeddings); biases, norm scales and other vectors get no decay."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    """AdamW (adam_b1, adam_b2; weight_decay on rank >= 2 only) on make_schedule, after global-norm clipping to
    grad_clip_norm when that is > 0."""
    adamw = optax.adamw(
        make_schedule(train_cfg),
        b1=train_cfg.adam_b1,
        b2=train_cfg.adam_b2,
        weight_decay=train_cfg.weight_decay,
        mask=decay_mask,
    )
    if train_cfg.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(train_cfg.grad_clip_norm), adamw)
    return adamw


def ema_update(ema_params, params, decay):
    """decay * ema_params + (1 - decay) * params, leaf by leaf, written as ema + (1 - decay) * (params - ema) so
    that a leaf that does not move (a frozen part: freeze_groups) keeps its EMA bit-exact; optax's
    incremental_update drifts an ulp a step there in float32."""
    return jax.tree.map(lambda e, p: e + (1.0 - decay) * (p - e), ema_params, params)


def freeze_groups(optimizer: optax.GradientTransformation, frozen) -> optax.GradientTransformation:
    """optimizer for every top-level group of the params but those named in frozen, which get no update at
    all (no weight decay either); clipping inside optimizer sees only the trained groups."""
    frozen = frozenset(frozen)
    if not frozen:
        return optimizer

    def labels(params):
        return {name: jax.tree.map(lambda _, n=name: "frozen" if n in frozen else "train", group)
                for name, group in params.items()}

    return optax.multi_transform({"train": optimizer, "frozen": optax.set_to_zero()}, labels)
