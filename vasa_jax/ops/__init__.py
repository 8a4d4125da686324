"""Array operations the networks share that neither JAX nor Flax provides (grid sampling for the warps)."""

from vasa_jax.ops.grid import affine_grid, grid_sample, make_base_grid

__all__ = ["affine_grid", "grid_sample", "make_base_grid"]
