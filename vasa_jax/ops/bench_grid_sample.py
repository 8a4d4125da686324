"""Micro-benchmark of grid_sample at decoder sizes: `python -m vasa_jax.ops.bench_grid_sample [--help]`.

Times forward and forward+backward (gradients w.r.t. inputs and grid) of
  3-D: inputs [B, 16, 64, 64, 96] warped by a grid [B, 16, 64, 64, 3] (the stage-1 decoder's warp),
  2-D: inputs [B, 256, 256, 32] warped by a grid [B, 256, 256, 2],
for B = 1 and 4, on whatever device JAX picks. Compile time and the first (warm-up) call are reported apart
from the steady state (median and best of --repeats calls), with XLA's temporary memory; each variant's
output and gradients are checked against the first variant's (column "rel diff": max |difference| / max
|first variant's|, the worst of output, d inputs and d grid).

Variants, so that the choice in grid.py can be re-measured on another device or jaxlib:
  custom_vjp  vasa_jax.ops.grid_sample, the one in use: one scatter-add for d/d inputs, nothing saved
              between forward and backward but the inputs and the grid;
  autodiff    JAX's own derivative of the same forward, inputs cast to float32 first so that the
              scatter-adds it makes (one per corner) are float32; it saves the gathered corners;
  per_corner  custom_vjp with one scatter-add per corner instead of one for all corners (fewer updates hit
              each address in each scatter: the slow case of float32 scatter-add on GPU, jaxlib < 0.11.1).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.ops.grid import (_forward, _grid_cotangent, _grid_sample_fwd, _sample, _setup, grid_sample,
                               make_base_grid)
from vasa_jax.ops.microbench import parse_args, print_table, time_forward_and_gradients

CASES = {  # name: (input shape without batch, grid spatial shape)
    "3d": ((16, 64, 64, 96), (16, 64, 64)),
    "2d": ((256, 256, 32), (256, 256)),
}


def autodiff(inputs, grid, *, align_corners=False, padding_mode="zeros"):
    forward = functools.partial(_forward, align_corners=align_corners, padding_mode=padding_mode)
    return jax.vmap(forward)(inputs.astype(jnp.promote_types(inputs.dtype, jnp.float32)), grid).astype(inputs.dtype)


def _per_corner_backward(inputs, grid, cotangent, align_corners, padding_mode):
    flat, index, weight, per_axis = _setup(inputs, grid, align_corners, padding_mode)
    g = cotangent.reshape(-1, inputs.shape[-1]).astype(weight.dtype)
    d_flat = jnp.zeros(flat.shape, weight.dtype)
    for k in range(index.shape[-1]):
        d_flat = d_flat.at[index[:, k]].add(weight[:, k, None] * g, mode="drop")
    d_grid = _grid_cotangent(flat, index, per_axis, g).reshape(grid.shape).astype(grid.dtype)
    return d_flat.reshape(inputs.shape).astype(inputs.dtype), d_grid


_per_corner = jax.custom_vjp(_sample, nondiff_argnums=(2, 3))


def _per_corner_bwd(align_corners, padding_mode, residuals, cotangent):
    backward = functools.partial(_per_corner_backward, align_corners=align_corners, padding_mode=padding_mode)
    return jax.vmap(backward)(*residuals, cotangent)


_per_corner.defvjp(_grid_sample_fwd, _per_corner_bwd)


def per_corner(inputs, grid, *, align_corners=False, padding_mode="zeros"):
    return _per_corner(inputs, grid, align_corners, padding_mode)


VARIANTS = {"custom_vjp": grid_sample, "autodiff": autodiff, "per_corner": per_corner}


def make_case(case: str, batch: int, dtype, seed: int = 0):
    """Inputs, a warp grid (identity plus a random displacement of ~1.5 samples; 4-5% of the points fall
    outside [-1, 1]) and an output cotangent."""
    in_shape, grid_shape = CASES[case]
    rng = np.random.default_rng(seed)
    inputs = jnp.asarray(rng.normal(size=(batch, *in_shape)), dtype)
    base = np.asarray(make_base_grid(grid_shape, align_corners=False))
    grid = jnp.asarray(base + 0.05 * rng.normal(size=(batch, *grid_shape, len(grid_shape))), jnp.float32)
    cotangent = jnp.asarray(rng.normal(size=(batch, *grid_shape, in_shape[-1])), jnp.float32)
    return inputs, grid, cotangent


def bench(variant: str, case: str, batch: int, dtype, repeats: int):
    """Timings of forward and of forward+backward, and (output, (d inputs, d grid)) of the latter."""
    inputs, grid, cotangent = make_case(case, batch, dtype)
    return time_forward_and_gradients(VARIANTS[variant], inputs, grid, cotangent, repeats)


def main(argv=None):
    args = parse_args(__doc__, VARIANTS, CASES, {"variants": "custom_vjp,autodiff,per_corner", "cases": "3d,2d",
                                                 "batches": "1,4", "dtypes": "float32,bfloat16"}, argv)
    print_table(args, bench)


if __name__ == "__main__":
    main()
