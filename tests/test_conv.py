"""vasa_jax.ops.conv_general_dilated: the CPU's planar 3-D convolution against XLA's direct one, values and
gradients, and flax.linen.Conv with it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vasa_jax.ops import conv
from vasa_jax.ops.conv import conv_general_dilated, conv3d_planar

SPEC = ("NDHWC", "DHWIO", "NDHWC")


def _direct(x, k, padding):
    return lax.conv_general_dilated(x, k, (1, 1, 1), padding, dimension_numbers=SPEC,
                                    precision=lax.Precision.HIGHEST)


def _ours(form):
    def conv3d(x, k, padding):
        if isinstance(padding, str):
            padding = tuple(lax.padtype_to_pads(x.shape[1:4], k.shape[:3], (1, 1, 1), padding))
        return conv3d_planar(x, k, padding, lax.Precision.HIGHEST, form)
    return conv3d


CASES = [  # (x shape, kernel shape, padding): more and fewer output channels than input ones, odd paddings
    ((2, 4, 5, 6, 3), (3, 3, 3, 3, 5), "SAME"),
    ((2, 5, 4, 6, 6), (3, 3, 3, 6, 2), "SAME"),
    ((1, 6, 5, 5, 4), (5, 3, 1, 4, 4), ((2, 2), (1, 1), (0, 0))),
    ((1, 6, 5, 5, 4), (3, 3, 3, 4, 2), ((0, 2), (1, 0), (2, 1))),  # asymmetric, output depth != input depth
    ((2, 3, 4, 4, 4), (1, 1, 1, 4, 6), "VALID"),
    ((1, 4, 4, 4, 8), (3, 3, 3, 8, 3), "VALID"),
]


@pytest.mark.parametrize("form", ["split", "folded"])
@pytest.mark.parametrize("x_shape, k_shape, padding", CASES)
def test_the_planar_3d_conv_equals_the_direct_one_with_its_gradients(x_shape, k_shape, padding, form, monkeypatch):
    monkeypatch.setattr(conv, "KERNEL_GRAD_ROWS", 40)  # several chunks per tap in the kernel gradient
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
    k = jnp.asarray(rng.standard_normal(k_shape), jnp.float32)
    want = _direct(x, k, padding)
    got = _ours(form)(x, k, padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    weights = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)  # a loss that weighs every output

    def loss(f):
        return lambda x, k: jnp.sum(f(x, k, padding) * weights)

    for ours, direct in zip(jax.grad(loss(_ours(form)), (0, 1))(x, k), jax.grad(loss(_direct), (0, 1))(x, k)):
        np.testing.assert_allclose(ours, direct, rtol=1e-4, atol=1e-4)


def test_the_planar_path_is_taken_on_the_cpu_and_not_where_it_does_not_apply():
    x, k = jnp.ones((1, 4, 4, 4, 2)), jnp.ones((3, 3, 3, 2, 2))

    def calls(**kw):
        jaxpr = jax.make_jaxpr(lambda x, k: conv_general_dilated(x, k, dimension_numbers=SPEC, **kw))(x, k)
        return [str(e.primitive) for e in jaxpr.eqns]

    assert jax.default_backend() == "cpu"
    assert "custom_vjp_call" in " ".join(calls(window_strides=(1, 1, 1), padding="SAME"))
    strided = calls(window_strides=(2, 2, 2), padding="SAME")
    assert strided == ["conv_general_dilated"]
    np.testing.assert_allclose(  # the fallback is lax's own
        conv_general_dilated(x, k, (2, 2, 2), "SAME", dimension_numbers=SPEC),
        lax.conv_general_dilated(x, k, (2, 2, 2), "SAME", dimension_numbers=SPEC))
    two_d = jax.make_jaxpr(lambda x, k: conv_general_dilated(x, k, (1, 1), "SAME",
                                                             dimension_numbers=("NHWC", "HWIO", "NHWC")))
    assert [str(e.primitive) for e in two_d(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2))).eqns] == \
        ["conv_general_dilated"]


def test_flax_conv_with_it_keeps_its_params_and_values():
    x = jax.random.normal(jax.random.key(0), (2, 4, 6, 6, 3))
    plain, planar = nn.Conv(5, (3, 3, 3)), nn.Conv(5, (3, 3, 3), conv_general_dilated=conv_general_dilated)
    params = plain.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, planar.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(planar.apply(params, x), plain.apply(params, x), rtol=1e-4, atol=1e-4)
    eqns = jax.make_jaxpr(lambda p, x: planar.apply(p, x))(params, x).eqns  # flax's call takes the planar path
    assert "custom_vjp_call" in [str(e.primitive) for e in eqns]


def test_bfloat16_inputs_give_bfloat16_values_and_gradients():
    x = jax.random.normal(jax.random.key(0), (1, 4, 4, 4, 4), jnp.bfloat16)
    k = jax.random.normal(jax.random.key(1), (3, 3, 3, 4, 4), jnp.bfloat16)
    pads = ((1, 1),) * 3
    y = conv3d_planar(x, k, pads)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.float32(y), np.float32(_direct(x.astype(jnp.float32), k.astype(jnp.float32), pads)),
                               rtol=0.05, atol=0.1)
    grads = jax.grad(lambda x, k: jnp.sum(conv3d_planar(x, k, pads).astype(jnp.float32)), (0, 1))(x, k)
    assert [g.dtype for g in grads] == [jnp.bfloat16, jnp.bfloat16]


def test_the_micro_benchmark_runs_and_finds_the_variants_equal(capsys):
    from vasa_jax.ops import bench_conv

    bench_conv.main(["--cases", "warp16", "--batches", "1", "--repeats", "1", "--variants", "direct,planar"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("warp16")]
    assert [row[3] for row in rows] == ["direct", "planar"]
    assert float(rows[1][-1]) < 1e-5  # output and both gradients against XLA's direct convolution
    with pytest.raises(SystemExit):
        bench_conv.main(["--cases", "nope"])
