"""Bilinear / trilinear grid sampling with torch.nn.functional.grid_sample semantics, channels-last, and the
identity / affine grids that go with it.

grid_sample is the warp of the stage-1 decoder (a [B, 16, 64, 64, 96] volume resampled every frame), so the
form of the computation matters as much as its values:
- forward: the 4 (2-D) or 8 (3-D) corners of each point are gathered from the input flattened to
  [B, D * H * W, C] and summed with their weights in one elementwise fusion;
- backward (a jax.custom_vjp, reverse mode only): d/d inputs is one scatter-add of [B, N * corners, C]
  float32 rows into a float32 buffer; d/d grid gathers the corners again. Nothing but the inputs and the grid
  is kept between forward and backward (plain autodiff keeps every gathered corner: 8x the output in 3-D,
  and takes 2-6x as long on CPU; see bench_grid_sample).
Corners outside the input get an index one past the end, which the gathers read as 0 and the scatter drops;
they are not clamped onto voxel 0, where they would all pile up on one address (the slow case of float32
scatter-add on GPU with jaxlib 0.10.2 / 0.11.0).

Not here: nearest / bicubic modes and "reflection" padding (the decoder needs none of them).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

PADDING_MODES = ("zeros", "border")


def grid_sample(inputs: jax.Array, grid: jax.Array, *, align_corners: bool = False,
                padding_mode: str = "zeros") -> jax.Array:
    """Samples `inputs` at the points of `grid`: torch.nn.functional.grid_sample(mode="bilinear"), channels-last.

    inputs: [B, H, W, C] (bilinear) or [B, D, H, W, C] (trilinear).
    grid: [B, H', W', 2] or [B, D', H', W', 3]; the last axis is (x, y) or (x, y, z) as in torch: x indexes
        W, y indexes H, z indexes D, each normalised to [-1, 1]. Points outside [-1, 1] are allowed.
    align_corners: how [-1, 1] maps onto an axis of `size` samples, the same as torch:
        True: -1 and +1 are the centres of the first and last samples, u = (g + 1) / 2 * (size - 1);
        False: -1 and +1 are the outer edges of the first and last samples, u = ((g + 1) * size - 1) / 2.
        (u is the sample coordinate: 0 is the centre of the first sample.)
    padding_mode: what is read outside the input: "zeros" (0; corners outside count as 0) or "border" (the
        coordinate is clamped to [0, size - 1] first; the gradient w.r.t. the grid is 0 where it is clamped,
        including exactly on the border, as torch does).
    Returns [B, H', W', C] or [B, D', H', W', C] in the dtype of `inputs`.

    Differentiable (reverse mode: grad / vjp, not jvp) w.r.t. `inputs` and `grid`. Weights, interpolation
    and the gradient accumulation run in float32 (float64 for float64 inputs) whatever the input dtype:
    bfloat16 inputs give a bfloat16 output and a bfloat16 gradient accumulated in float32.
    """
    inputs, grid = jnp.asarray(inputs), jnp.asarray(grid)
    _check(inputs, grid, padding_mode)
    return _grid_sample(inputs, grid, bool(align_corners), padding_mode)


def make_base_grid(shape, align_corners: bool, dtype=jnp.float32) -> jax.Array:
    """The identity grid for a spatial `shape` (H, W) -> [H, W, 2] or (D, H, W) -> [D, H, W, 3].

    Coordinates are in grid_sample's (x, y[, z]) order, and grid_sample(x, grid, align_corners=same value)
    returns x unchanged. align_corners=True gives 2 * i / (n - 1) - 1 (the corner sample centres at -1, +1;
    the formula LivePortrait's warping module uses); False gives (2 * i + 1) / n - 1 (sample centres with the
    outer edges at -1, +1). This is torch.nn.functional.affine_grid with the identity transform.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"make_base_grid takes a spatial shape (H, W) or (D, H, W) of sizes >= 1; got {shape}")
    axes = [_base_coords(n, align_corners, dtype) for n in reversed(shape)]  # x over W first
    return jnp.stack(jnp.meshgrid(*axes[::-1], indexing="ij")[::-1], axis=-1)


def affine_grid(theta: jax.Array, shape, align_corners: bool) -> jax.Array:
    """Applies per-batch affine maps to the identity grid: torch.nn.functional.affine_grid, channels-last.

    theta: [B, 2, 3] for a 2-D `shape` (H, W), or [B, 3, 4] for a 3-D `shape` (D, H, W); it maps output
        coordinates (x, y[, z], 1) to the input coordinates grid_sample reads.
    Returns [B, H, W, 2] or [B, D, H, W, 3] (the dtype of theta).
    """
    theta = jnp.asarray(theta)
    nd = len(tuple(shape))
    if theta.ndim != 3 or theta.shape[1:] != (nd, nd + 1):
        raise ValueError(f"affine_grid for a {nd}-D shape {tuple(shape)} needs theta [B, {nd}, {nd + 1}]; "
                         f"got {theta.shape}")
    base = make_base_grid(shape, align_corners, theta.dtype)
    grid = jnp.einsum("...j,bij->b...i", base, theta[:, :, :nd])
    return grid + theta[:, :, nd].reshape(theta.shape[0], *([1] * nd), nd)


def _base_coords(n: int, align_corners: bool, dtype) -> jax.Array:
    i = jnp.arange(n, dtype=jnp.float32)
    if align_corners:
        coords = 2 * i / (n - 1) - 1 if n > 1 else jnp.zeros((1,), jnp.float32)
    else:
        coords = (2 * i + 1) / n - 1
    return coords.astype(dtype)


def _check(inputs, grid, padding_mode):
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"grid_sample padding_mode must be one of {PADDING_MODES}; got {padding_mode!r}")
    if inputs.ndim not in (4, 5):
        raise ValueError(f"grid_sample inputs must be [B, H, W, C] or [B, D, H, W, C]; got {inputs.shape}")
    nd = inputs.ndim - 2
    if grid.ndim != inputs.ndim or grid.shape[-1] != nd or grid.shape[0] != inputs.shape[0]:
        want = "[B, H', W', 2]" if nd == 2 else "[B, D', H', W', 3]"
        raise ValueError(f"grid_sample of inputs {inputs.shape} needs a grid {want} with the same B; got {grid.shape}")
    if not jnp.issubdtype(inputs.dtype, jnp.floating) or not jnp.issubdtype(grid.dtype, jnp.floating):
        raise TypeError(f"grid_sample needs floating inputs and grid; got {inputs.dtype} and {grid.dtype}")
    if math.prod(inputs.shape[1:-1]) >= 2 ** 31 - 1:
        raise ValueError(f"grid_sample indexes samples with int32; inputs {inputs.shape} have too many per example")


def _compute_dtype(inputs, grid):
    return jnp.promote_types(jnp.promote_types(inputs.dtype, grid.dtype), jnp.float32)


# Everything below works on one example (inputs [*S, C], grid [*S', nd]) and is vmapped over the batch: the
# gathers and the scatter then carry the batch as a batching dimension, so a batch sharded over devices stays
# local (with indices into a flattened [B * D * H * W, C] input, XLA all-gathers the whole volume instead).


def _sample(inputs, grid, align_corners, padding_mode):
    forward = functools.partial(_forward, align_corners=align_corners, padding_mode=padding_mode)
    return jax.vmap(forward)(inputs, grid)


_grid_sample = jax.custom_vjp(_sample, nondiff_argnums=(2, 3))


def _grid_sample_fwd(inputs, grid, align_corners, padding_mode):
    return _sample(inputs, grid, align_corners, padding_mode), (inputs, grid)


def _grid_sample_bwd(align_corners, padding_mode, residuals, cotangent):
    backward = functools.partial(_backward, align_corners=align_corners, padding_mode=padding_mode)
    return jax.vmap(backward)(*residuals, cotangent)


def _axis(coord, size, align_corners, padding_mode):
    """One axis: sample coordinate -> lower corner, the two corner weights and validities, du/dcoord.

    coord: [N] normalised coordinates. The formulas (and their operation order) are torch's.
    """
    if align_corners:
        u = (coord + 1) / 2 * (size - 1)
        du = jnp.full_like(coord, (size - 1) / 2)
    else:
        u = ((coord + 1) * size - 1) / 2
        du = jnp.full_like(coord, size / 2)
    if padding_mode == "border":
        inside = (u > 0) & (u < size - 1)
        u = jnp.where(u <= 0, 0, jnp.where(u >= size - 1, size - 1, u)).astype(coord.dtype)
        du = jnp.where(inside, du, 0)
    lower = jnp.floor(u)
    w1 = u - lower
    w0 = 1 - w1
    valid0 = (lower >= 0) & (lower <= size - 1)
    valid1 = (lower >= -1) & (lower <= size - 2)
    # Clipped while still a float: a far-out coordinate (1e10) must not overflow the integer cast.
    lower = jnp.clip(lower, -1, size).astype(jnp.int32)
    return lower, (w0, w1), (valid0, valid1), du


def _corners(spatial, points, align_corners, padding_mode):
    """Row indices and weights of every corner of every point.

    spatial: the input's (H, W) or (D, H, W); points: [N, nd] in the compute dtype.
    Returns index [N, K] int32 into the input flattened to [prod(spatial), C] (corners outside the input get
    prod(spatial), one past the end), weight [N, K], and per axis (x, y, z order) its two corner weights
    and du/dcoord, for the grid gradient. K = 2 ** nd; corner k takes the upper sample on axis a when bit a of
    k is set.
    """
    nd = len(spatial)
    sizes = spatial[::-1]  # x, y, z -> W, H, D
    axes = [_axis(points[:, a], sizes[a], align_corners, padding_mode) for a in range(nd)]
    strides = [math.prod(sizes[:a]) for a in range(nd)]
    indices, weights = [], []
    for k in range(2 ** nd):
        index, weight, valid = 0, 1, True
        for a, (lower, w, v, _) in enumerate(axes):
            bit = (k >> a) & 1
            index = index + (lower + bit) * strides[a]
            weight = weight * w[bit]
            valid = valid & v[bit]
        indices.append(jnp.where(valid, index, math.prod(sizes)))
        weights.append(weight)
    per_axis = [(w, du) for _, w, _, du in axes]
    return jnp.stack(indices, -1), jnp.stack(weights, -1), per_axis


def _setup(inputs, grid, align_corners, padding_mode):
    """inputs [*S, C] -> flat [prod(S), C]; grid [*S', nd] -> its corners (see _corners)."""
    points = grid.reshape(-1, grid.shape[-1]).astype(_compute_dtype(inputs, grid))
    index, weight, per_axis = _corners(inputs.shape[:-1], points, align_corners, padding_mode)
    return inputs.reshape(-1, inputs.shape[-1]), index, weight, per_axis


def _corner_values(flat, index, dtype):
    """The rows of flat [M, C] at each corner of index [N, K] -> K arrays [N, C]; index M reads 0.

    One gather per corner rather than one of all corners: each is consumed elementwise, so XLA fuses the
    gathers into their consumer instead of materialising [N, K, C] (CPU: 5 ms against 1 s at B=1).
    """
    return [flat.at[index[:, k]].get(mode="fill", fill_value=0).astype(dtype) for k in range(index.shape[-1])]


def _forward(inputs, grid, align_corners, padding_mode):
    flat, index, weight, _ = _setup(inputs, grid, align_corners, padding_mode)
    values = _corner_values(flat, index, weight.dtype)
    out = sum(v * weight[:, k, None] for k, v in enumerate(values))
    return out.reshape(*grid.shape[:-1], inputs.shape[-1]).astype(inputs.dtype)


def _backward(inputs, grid, cotangent, align_corners, padding_mode):
    flat, index, weight, per_axis = _setup(inputs, grid, align_corners, padding_mode)
    g = cotangent.reshape(-1, inputs.shape[-1]).astype(weight.dtype)  # [N, C]
    d_inputs = _inputs_cotangent(flat.shape, index, weight, g).reshape(inputs.shape).astype(inputs.dtype)
    d_grid = _grid_cotangent(flat, index, per_axis, g).reshape(grid.shape).astype(grid.dtype)
    return d_inputs, d_grid


def _inputs_cotangent(flat_shape, index, weight, g):
    """d/d flat inputs [M, C]: one scatter-add of every corner's weight * g, in the compute dtype."""
    updates = (weight[:, :, None] * g[:, None, :]).reshape(-1, g.shape[-1])  # [N * K, C]
    return jnp.zeros(flat_shape, weight.dtype).at[index.reshape(-1)].add(updates, mode="drop")


def _grid_cotangent(flat, index, per_axis, g):
    """d/d points [N, nd]: d out / d u_a = <g, sum over corners of +-(the other axes' weights) * value>."""
    nd = len(per_axis)
    ones = jnp.ones((g.shape[-1],), g.dtype)
    # Each axis gathers its corners anew, from its own copy of the indices: XLA would otherwise share the
    # gathers between the axes (and with the forward) and write them all to memory first, which on CPU takes
    # 3x as long (B=1, 3-D: 61 against 254 ms). And the sum over C is a dot with ones, not jnp.sum: XLA:CPU
    # runs the gathers ~20x slower when they are fused into a reduction.
    d_u = []
    for a, axis_index in enumerate(jax.lax.optimization_barrier((index,) * nd)):
        d_out = 0
        for k, value in enumerate(_corner_values(flat, axis_index, g.dtype)):
            others = math.prod(w[(k >> b) & 1] for b, (w, _) in enumerate(per_axis) if b != a)
            d_out = d_out + (others if (k >> a) & 1 else -others)[:, None] * value
        d_u.append((d_out * g) @ ones)
    return jnp.stack(d_u, axis=-1) * jnp.stack([du for _, du in per_axis], axis=-1)


_grid_sample.defvjp(_grid_sample_fwd, _grid_sample_bwd)
