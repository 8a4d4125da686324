"""The frozen identity network behind VASA's cross-identity loss: an interface, not an architecture.

VASA keeps a face-recognition network's (ArcFace) features of the source and of a cross-identity transfer close.
Any frozen embedder fits: a callable from images [B, H, W, 3] in [0, 1] to embeddings [B, E]. None is converted
yet, so the trainer turns the identity loss off (weight 0) when face_train.identity_net is empty.
"""

from __future__ import annotations

import os
from typing import Callable

import jax.numpy as jnp

IdentityNet = Callable[[jnp.ndarray], jnp.ndarray]  # images [B, H, W, 3] in [0, 1] -> embeddings [B, E]


def identity_similarity_loss(embed: IdentityNet, a, b, eps: float = 1e-8):
    """mean over the batch of 1 - cos(embed(a), embed(b)): 0 for the same direction, 1 orthogonal, 2 opposite.

    a, b: [B, H, W, 3] in [0, 1]. Gradients flow through both sides; stop them on a side that is only a target.
    Embeddings shorter than eps count as length eps (as torch's cosine_similarity), so zero vectors give no NaN.
    """
    ea, eb = embed(a), embed(b)
    norm = lambda e: jnp.sqrt(jnp.maximum(jnp.sum(e * e, axis=-1), eps**2))  # noqa: E731
    cos = jnp.sum(ea * eb, axis=-1) / (norm(ea) * norm(eb))
    return jnp.mean(1.0 - cos)


def load_identity_net(path: str | os.PathLike) -> IdentityNet:
    """Would read a converted identity network from `path`; none exists yet."""
    raise NotImplementedError(f"{path}: no public identity network is converted yet; the identity loss weight is 0 "
                              "without one (leave face_train.identity_net empty)")
