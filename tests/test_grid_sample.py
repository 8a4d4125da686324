"""vasa_jax.ops.grid_sample against torch.nn.functional.grid_sample (float64), and the grid helpers."""

import functools

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from vasa_jax.ops import affine_grid, grid_sample, make_base_grid

# Powers of two: the border-clamp points 1 - 1/size (align_corners=False) are then exact in float32.
SPATIAL = {2: (8, 4), 3: (4, 8, 4)}  # (H, W), (D, H, W)
CHANNELS = 3


def _grid(nd, rng, batch=2):
    """[B, *out, nd] float32: random points in [-1.3, 1.3], and points exactly on -1, +1 (the corner samples'
    centres or outer edges, depending on align_corners), on the corner samples' centres for
    align_corners=False (+-(1 - 1/size): where "border" starts clamping), at 0, and well outside."""
    out_shape = (5, 6) if nd == 2 else (3, 5, 6)
    grid = rng.uniform(-1.3, 1.3, size=(batch, *out_shape, nd))
    sizes = SPATIAL[nd][::-1]  # x, y, z
    special = np.stack([np.array([-1.0, 1.0, 1 - 1 / s, -(1 - 1 / s), 0.0, -3.0, 2.5, 40.0]) for s in sizes], -1)
    flat = grid.reshape(batch, -1, nd)
    flat[0, : len(special)] = special  # each axis on its own special value
    flat[1, : len(special)] = np.roll(special, 3, axis=0)[:, :1]  # all axes on one, for the corner cases
    flat[1, len(special): 2 * len(special), 0] = special[:, 0]  # one axis special, the others random
    return flat.reshape(grid.shape).astype(np.float32)


def _torch_reference(inputs, grid, cotangent, align_corners, padding_mode):
    """Output and gradients of sum(out * cotangent) from torch in float64, converted to channels-last."""
    nd = inputs.ndim - 2
    to_first, to_last = (0, nd + 1, *range(1, nd + 1)), (0, *range(2, nd + 2), 1)
    x = torch.tensor(inputs, dtype=torch.float64).permute(to_first).contiguous().requires_grad_(True)
    g = torch.tensor(grid, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.grid_sample(x, g, mode="bilinear", padding_mode=padding_mode,
                                          align_corners=align_corners).permute(to_last)
    (out * torch.tensor(cotangent, dtype=torch.float64)).sum().backward()
    return out.detach().numpy(), x.grad.permute(to_last).numpy(), g.grad.numpy()


def _value_and_grads(inputs, grid, cotangent, **kwargs):
    def loss(x, g):
        out = grid_sample(x, g, **kwargs)
        return jnp.sum(out.astype(jnp.float32) * cotangent), out

    (_, out), (d_inputs, d_grid) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(inputs, grid)
    return out, d_inputs, d_grid


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("nd", [2, 3])
def test_matches_torch(nd, align_corners, padding_mode):
    rng = np.random.default_rng(nd * 10 + align_corners * 2 + (padding_mode == "border"))
    inputs = rng.normal(size=(2, *SPATIAL[nd], CHANNELS)).astype(np.float32)
    grid = _grid(nd, rng)
    cotangent = rng.normal(size=(*grid.shape[:-1], CHANNELS)).astype(np.float32)

    out, d_inputs, d_grid = _value_and_grads(inputs, grid, cotangent, align_corners=align_corners,
                                             padding_mode=padding_mode)
    ref_out, ref_d_inputs, ref_d_grid = _torch_reference(inputs, grid, cotangent, align_corners, padding_mode)

    assert out.shape == ref_out.shape and out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-5)
    np.testing.assert_allclose(d_inputs, ref_d_inputs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(d_grid, ref_d_grid, rtol=0, atol=1e-5)
    # The cases are not vacuous: points outside read zeros / the border, and some grid gradients vanish.
    assert np.abs(ref_out).max() > 0.5 and np.abs(ref_d_grid).max() > 0.5
    assert (ref_d_grid == 0).any() and (ref_d_grid != 0).mean() > 0.3


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("nd", [2, 3])
def test_identity_grid_reproduces_input(nd, align_corners):
    rng = np.random.default_rng(0)
    spatial = (5, 7) if nd == 2 else (3, 5, 7)
    inputs = rng.normal(size=(2, *spatial, CHANNELS)).astype(np.float32)
    grid = jnp.broadcast_to(make_base_grid(spatial, align_corners), (2, *spatial, nd))
    for padding_mode in ("zeros", "border"):
        out = jax.jit(functools.partial(grid_sample, align_corners=align_corners, padding_mode=padding_mode))(
            inputs, grid)
        np.testing.assert_allclose(out, inputs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("nd", [2, 3])
def test_grid_helpers_match_torch_affine_grid(nd, align_corners):
    spatial = (5, 7) if nd == 2 else (3, 5, 7)
    theta = np.random.default_rng(1).normal(size=(2, nd, nd + 1)).astype(np.float32)
    ref = torch.nn.functional.affine_grid(torch.tensor(theta, dtype=torch.float64), (2, 1, *spatial),
                                          align_corners=align_corners).numpy()
    np.testing.assert_allclose(affine_grid(theta, spatial, align_corners), ref, rtol=0, atol=1e-5)

    identity = np.concatenate([np.eye(nd), np.zeros((nd, 1))], axis=1)[None]
    ref_base = torch.nn.functional.affine_grid(torch.tensor(identity), (1, 1, *spatial),
                                               align_corners=align_corners).numpy()[0]
    base = make_base_grid(spatial, align_corners)
    assert base.shape == (*spatial, nd) and base.dtype == jnp.float32
    np.testing.assert_allclose(base, ref_base, rtol=0, atol=1e-6)


def test_jit_and_vmap():
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(3, 2, *SPATIAL[3], CHANNELS)).astype(np.float32)  # [V, B, D, H, W, C]
    grids = np.stack([_grid(3, rng) for _ in range(3)])
    sample = functools.partial(grid_sample, align_corners=True, padding_mode="border")

    one_by_one = jax.jit(sample)
    vmapped = jax.jit(jax.vmap(sample))(inputs, grids)
    for v in range(3):
        np.testing.assert_allclose(vmapped[v], one_by_one(inputs[v], grids[v]), rtol=0, atol=1e-6)

    def loss(x, g):
        return jnp.sum(sample(x, g) ** 2)

    grad_one = jax.jit(jax.grad(loss, argnums=(0, 1)))
    grad_vmapped = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1))))(inputs, grids)
    for v in range(3):
        d_inputs, d_grid = grad_one(inputs[v], grids[v])
        np.testing.assert_allclose(grad_vmapped[0][v], d_inputs, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(grad_vmapped[1][v], d_grid, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("nd", [2, 3])
def test_bfloat16_inputs(nd):
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(2, *SPATIAL[nd], CHANNELS)).astype(np.float32)
    grid = _grid(nd, rng)
    cotangent = rng.normal(size=(*grid.shape[:-1], CHANNELS)).astype(np.float32)
    out32, d_in32, d_grid32 = _value_and_grads(inputs, grid, cotangent)
    out16, d_in16, d_grid16 = _value_and_grads(jnp.asarray(inputs, jnp.bfloat16), grid, cotangent)

    assert out16.dtype == jnp.bfloat16 and d_in16.dtype == jnp.bfloat16 and d_grid16.dtype == jnp.float32
    # bf16 keeps 8 significant bits: the rounding of the inputs and of the result, nothing worse.
    scale = np.abs(out32).max()
    np.testing.assert_allclose(np.asarray(out16, np.float32), out32, rtol=0, atol=2 ** -7 * scale)
    np.testing.assert_allclose(np.asarray(d_in16, np.float32), d_in32, rtol=0, atol=2 ** -7 * np.abs(d_in32).max())
    np.testing.assert_allclose(d_grid16, d_grid32, rtol=0, atol=2 ** -6 * np.abs(d_grid32).max())


def test_backward_is_one_float32_scatter_add():
    """d/d inputs of bf16 inputs: a single scatter-add of float32 updates, none in bf16."""
    inputs = jnp.zeros((2, *SPATIAL[3], CHANNELS), jnp.bfloat16)
    grid = jnp.zeros((2, 3, 5, 6, 3), jnp.float32)

    def loss(x, g):
        return jnp.sum(grid_sample(x, g).astype(jnp.float32))

    jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(inputs, grid)
    scatters = [e for e in _equations(jaxpr.jaxpr) if "scatter" in e.primitive.name]
    assert [e.primitive.name for e in scatters] == ["scatter-add"]
    assert scatters[0].outvars[0].aval.dtype == jnp.float32
    assert scatters[0].outvars[0].aval.shape == (2, 4 * 8 * 4, CHANNELS)


def _equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    yield from _equations(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    yield from _equations(sub)


def test_batch_sharded_over_devices_stays_local():
    """Data parallelism: a batch split over devices is sampled and differentiated without collectives."""
    mesh = jax.make_mesh((2,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    batch_sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    rng = np.random.default_rng(5)
    inputs = jax.device_put(rng.normal(size=(4, *SPATIAL[3], CHANNELS)).astype(np.float32), batch_sharded)
    grid = jax.device_put(np.concatenate([_grid(3, rng) for _ in range(2)]), batch_sharded)

    def loss(x, g):
        return jnp.sum(grid_sample(x, g) ** 2)

    for fn in (grid_sample, jax.grad(loss, argnums=(0, 1))):
        compiled = jax.jit(fn).lower(inputs, grid).compile()
        hlo = compiled.as_text()
        assert not [op for op in ("all-gather", "all-reduce", "all-to-all", "collective-permute") if op in hlo]
        for result in jax.tree.leaves(compiled(inputs, grid)):
            assert result.sharding.spec == jax.sharding.PartitionSpec("data")


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_gradients_finite_far_outside(padding_mode):
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(1, *SPATIAL[3], CHANNELS)).astype(np.float32)
    grid = np.array([1e9, -1e9, 1e30, -1.0, 1.0, 0.0], np.float32)[:, None].repeat(3, 1).reshape(1, 1, 2, 3, 3)
    out, d_inputs, d_grid = _value_and_grads(inputs, grid, np.ones((1, 1, 2, 3, CHANNELS), np.float32),
                                             padding_mode=padding_mode)
    assert np.isfinite(out).all() and np.isfinite(d_inputs).all() and np.isfinite(d_grid).all()
    assert (np.asarray(d_grid)[0, 0, 0] == 0).all()  # the three far-out points: no corner inside / clamped
    if padding_mode == "zeros":
        assert (np.asarray(out)[0, 0, 0] == 0).all()


def test_rejects_bad_arguments():
    x = jnp.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match="padding_mode"):
        grid_sample(x, jnp.zeros((1, 3, 3, 2)), padding_mode="reflection")
    with pytest.raises(ValueError, match=r"\[B, H', W', 2\]"):
        grid_sample(x, jnp.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="same B"):
        grid_sample(x, jnp.zeros((2, 3, 3, 2)))
    with pytest.raises(ValueError, match="theta"):
        affine_grid(jnp.zeros((1, 2, 3)), (2, 4, 4), align_corners=False)
