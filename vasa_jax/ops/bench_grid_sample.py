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

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.ops.grid import (_forward, _grid_cotangent, _grid_sample_fwd, _sample, _setup, grid_sample,
                               make_base_grid)

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


def time_compiled(fn, args, repeats: int):
    """(compile s, first call s, median s, best s, temporary bytes), result of jax.jit(fn)(*args)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - start)
    memory = compiled.memory_analysis()
    temp = getattr(memory, "temp_size_in_bytes", float("nan")) if memory is not None else float("nan")
    return (t1 - t0, t2 - t1, statistics.median(runs), min(runs), temp), result


def bench(variant: str, case: str, batch: int, dtype, repeats: int):
    """Timings of forward and of forward+backward, and (output, (d inputs, d grid)) of the latter."""
    sample = VARIANTS[variant]
    inputs, grid, cotangent = make_case(case, batch, dtype)

    def loss(x, g, ct):
        out = sample(x, g)
        return jnp.vdot(out.astype(jnp.float32), ct), out

    fwd_timing, _ = time_compiled(sample, (inputs, grid), repeats)
    fwd_bwd_timing, (( _, out), grads) = time_compiled(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True),
                                                       (inputs, grid, cotangent), repeats)
    return fwd_timing, fwd_bwd_timing, (out, grads)


def relative_difference(result, reference) -> float:
    """max |result - reference| / max |reference| over output, d inputs and d grid: the worst of the three."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(result), jax.tree.leaves(reference)):
        x, y = x.astype(jnp.float32), y.astype(jnp.float32)
        worst = max(worst, float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="custom_vjp,autodiff,per_corner",
                        help=f"comma-separated, from {sorted(VARIANTS)}")
    parser.add_argument("--cases", default="3d,2d", help=f"comma-separated, from {sorted(CASES)}")
    parser.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="input dtypes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up call")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    for name in variants:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; choose from {sorted(VARIANTS)}")

    device = jax.devices()[0]
    print(f"jax {jax.__version__}, {device.platform} ({device.device_kind}), {jax.device_count()} device(s); "
          f"times in ms; compile and first call reported apart; steady state = median / best of {args.repeats}")
    header = (f"{'case':<4} {'B':>2} {'dtype':<8} {'variant':<11} | {'fwd compile':>11} {'first':>7} "
              f"{'median':>8} {'best':>8} {'temp MiB':>8} | {'f+b compile':>11} {'first':>7} {'median':>8} "
              f"{'best':>8} {'temp MiB':>8} | {'rel diff':>8}")
    print(header)
    print("-" * len(header))
    for case in args.cases.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            for dtype in args.dtypes.split(","):
                reference = None
                for name in variants:
                    *timings, result = bench(name, case, batch, jnp.dtype(dtype), args.repeats)
                    reference = result if reference is None else reference
                    cells = [f"{1e3 * compile_s:11.0f} {1e3 * first_s:7.1f} {1e3 * median_s:8.2f} "
                             f"{1e3 * best_s:8.2f} {temp / 2 ** 20:8.0f}"
                             for compile_s, first_s, median_s, best_s, temp in timings]
                    print(f"{case:<4} {batch:>2} {dtype:<8} {name:<11} | {cells[0]} | {cells[1]} | "
                          f"{relative_difference(result, reference):8.1e}", flush=True)


if __name__ == "__main__":
    main()
