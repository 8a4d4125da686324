"""Array operations the networks share that neither JAX nor Flax provides (grid sampling for the warps, 3-D
convolutions that are fast on the CPU)."""

from vasa_jax.ops.conv import conv_general_dilated
from vasa_jax.ops.grid import affine_grid, grid_sample, make_base_grid

__all__ = ["affine_grid", "conv_general_dilated", "grid_sample", "make_base_grid"]
