"""LivePortrait's warping module W and SPADE decoder G: the channel orders and weight mappings that parity with
upstream depends on, checked against hand-built answers (no upstream needed; the recorded-reference parity
test is tests/test_liveportrait.py)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa_jax.face.liveportrait import config as lp_config
from vasa_jax.face.liveportrait import spade, warping
from vasa_jax.io.weights import CheckpointError
from vasa_jax.ops import grid_sample

# Upstream's module paths that hold a list index (nn.Sequential / ModuleList); others keep '_<n>' in the name.
_INDEXED = re.compile(r"(mlp_shared|down_blocks|up_blocks|conv_img)_(\d+)")
_SPECTRAL = re.compile(r"^(G_middle_\d|up_\d)\.conv_[01s]$")


def torch_style_state(template, rng) -> dict[str, np.ndarray]:
    """A random state dict laid out as upstream saves it, for a params template: conv weights [O, I, k...],
    BatchNorm running stats, spectral-norm weight_orig / weight_u / weight_v on the SPADE blocks' convs."""
    state = {}
    for keys, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
        names = [str(k.key) for k in keys]
        module, leaf_name = _INDEXED.sub(r"\1.\2", ".".join(names[:-1])), names[-1]
        shape = tuple(leaf.shape)
        if leaf_name == "kernel":
            weight = rng.normal(size=shape[-1:] + shape[-2:-1] + shape[:-2]).astype(np.float32)
            if _SPECTRAL.match(module):
                state[f"{module}.weight_orig"] = weight
                state[f"{module}.weight_u"] = rng.normal(size=weight.shape[0]).astype(np.float32)
                state[f"{module}.weight_v"] = rng.normal(size=weight[0].size).astype(np.float32)
            else:
                state[f"{module}.weight"] = weight
        else:
            name = {"scale": "weight", "mean": "running_mean", "var": "running_var"}.get(leaf_name, leaf_name)
            state[f"{module}.{name}"] = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
            if leaf_name == "mean":
                state[f"{module}.num_batches_tracked"] = np.zeros((), np.float32)
    return state


def test_pixel_shuffle_matches_torch_channel_order():
    x = np.arange(2 * 3 * 8, dtype=np.float32).reshape(1, 2, 3, 8)  # C = 2 output channels, factor 2
    out = np.asarray(spade.pixel_shuffle(jnp.asarray(x), 2))
    assert out.shape == (1, 4, 6, 2)
    for h in range(2):
        for w in range(3):
            for c in range(2):
                for i in range(2):
                    for j in range(2):
                        assert out[0, 2 * h + i, 2 * w + j, c] == x[0, h, w, c * 4 + i * 2 + j]


@pytest.mark.parametrize("factor", [2, 4])
def test_conv_of_upsampled_segmap_equals_conv_after_upsampling(factor):
    rng = np.random.default_rng(factor)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 3, 3, 4)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
    up = jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
    np.testing.assert_allclose(spade.conv3x3_of_upsampled(x, kernel, bias, factor), spade.conv3x3(up, kernel, bias),
                               atol=1e-5)


def test_sparse_motions_heatmaps_and_their_channel_order():
    rng = np.random.default_rng(0)
    b, num_kp, spatial, c = 2, 3, (4, 6, 8), 2  # (D, H, W)
    kp_source = rng.uniform(-0.8, 0.8, (b, num_kp, 3)).astype(np.float32)
    kp_driving = (kp_source + rng.uniform(-0.6, 0.6, kp_source.shape)).astype(np.float32)  # some points fall outside
    kp_driving[0, 1] = [warping.identity_coords(8)[5], warping.identity_coords(6)[2], warping.identity_coords(4)[1]]
    feature = jnp.asarray(rng.normal(size=(b, *spatial, c)), jnp.float32)

    coords = warping.sparse_motion_coords(jnp.asarray(kp_driving), jnp.asarray(kp_source), spatial)
    for axis, n in enumerate(spatial[::-1]):
        base = np.asarray(warping.identity_coords(n))
        np.testing.assert_allclose(base, 2 * np.arange(n) / (n - 1) - 1, atol=1e-7)
        np.testing.assert_array_equal(coords[axis][:, 0], np.broadcast_to(base, (b, n)))
        np.testing.assert_allclose(coords[axis][:, 1:], base - kp_driving[..., axis, None] + kp_source[..., axis, None],
                                   atol=1e-6)

    # Each motion's warp is upstream's trilinear grid_sample (align_corners=False, zeros) on the full 3-D grid.
    deformed = jax.jit(warping.deform_by_sparse_motions)(feature, coords)  # [B, D, H, W, K, C]
    cx, cy, cz = coords
    grid = jnp.stack(jnp.broadcast_arrays(cx[:, :, None, None, :], cy[:, :, None, :, None], cz[:, :, :, None, None]),
                     axis=-1)  # [B, K, D, H, W, 3]
    repeated = jnp.repeat(feature, num_kp + 1, axis=0)
    expected = grid_sample(repeated, grid.reshape(-1, *spatial, 3), align_corners=False, padding_mode="zeros")
    expected = jnp.moveaxis(expected.reshape(b, num_kp + 1, *spatial, c), 1, -2)
    np.testing.assert_allclose(deformed, expected, atol=2e-5)

    heat = np.asarray(warping.keypoint_heatmaps(jnp.asarray(kp_driving), jnp.asarray(kp_source), spatial, jnp.float32))
    assert heat.shape == (b, *spatial, num_kp + 1)
    assert not heat[..., 0].any()  # the background channel
    d, h, w = 1, 2, 5  # driving keypoint 1 of example 0 sits on this voxel
    point = np.array([warping.identity_coords(8)[w], warping.identity_coords(6)[h], warping.identity_coords(4)[d]])
    source_peak = np.exp(-0.5 * np.sum((point - kp_source[0, 1]) ** 2) / 0.01)
    np.testing.assert_allclose(heat[0, d, h, w, 2], 1 - source_peak, atol=1e-6)

    stacked = warping.motion_channels(jnp.asarray(heat), deformed)
    assert stacked.shape == (b, *spatial, (num_kp + 1) * (c + 1))
    for k in range(num_kp + 1):
        np.testing.assert_array_equal(stacked[..., k * (c + 1)], heat[..., k])
        for j in range(c):
            np.testing.assert_array_equal(stacked[..., k * (c + 1) + 1 + j], deformed[..., k, j])


def test_equal_keypoints_give_the_identity_deformation():
    """All sparse motions coincide when driving == source, so any softmax mask gives upstream's identity grid."""
    cfg = lp_config.small().warping_module_params
    rng = np.random.default_rng(1)
    f_s = jnp.asarray(rng.normal(size=(1, 2, 8, 8, cfg.reshape_channel)), jnp.float32)
    kp = jnp.asarray(rng.uniform(-0.5, 0.5, (1, cfg.num_kp, 3)), jnp.float32)
    net = warping.WarpingNetwork(cfg)
    params = jax.jit(net.init)(jax.random.PRNGKey(0), f_s, kp, kp)
    out = jax.jit(net.apply)(params, f_s, kp, kp)
    width = cfg.block_expansion * 2 ** cfg.num_down_blocks
    assert out["out"].shape == (1, 8, 8, width) and out["occlusion_map"].shape == (1, 8, 8, 1)
    identity = jnp.stack(jnp.meshgrid(warping.identity_coords(2), warping.identity_coords(8),
                                      warping.identity_coords(8), indexing="ij")[::-1], axis=-1)
    np.testing.assert_allclose(out["deformation"][0], identity, atol=1e-6)


def _spade_width(cfg):
    return min(cfg.max_features, cfg.block_expansion * 2 ** cfg.num_down_blocks)


def _spade_template(cfg):
    feature = jax.ShapeDtypeStruct((1, 4, 4, _spade_width(cfg)), jnp.float32)
    return jax.eval_shape(spade.SPADEDecoder(cfg).init, jax.random.PRNGKey(0), feature)["params"]


def test_spade_params_from_torch_bakes_spectral_norm():
    cfg = lp_config.small().spade_generator_params
    state = torch_style_state(_spade_template(cfg), np.random.default_rng(2))
    for key in ("G_middle_5.conv_1.weight_orig", "up_1.conv_s.weight_orig", "up_0.norm_s.mlp_shared.0.weight",
                "G_middle_0.norm_0.mlp_gamma.bias", "conv_img.0.weight", "fc.bias"):
        assert key in state  # upstream's names, reached by weights.convert's one naming rule
    params = spade.params_from_torch(state, cfg, "spade_generator.pth")

    w, u, v = (state[f"up_1.conv_s.weight_{n}"].astype(np.float64) for n in ("orig", "u", "v"))
    sigma = u @ w.reshape(w.shape[0], -1) @ v
    np.testing.assert_allclose(params["up_1"]["conv_s"]["kernel"], np.transpose(w / sigma, (2, 3, 1, 0)), rtol=1e-5)

    image = jax.jit(spade.SPADEDecoder(cfg).apply)({"params": params}, jnp.ones((1, 4, 4, _spade_width(cfg))))
    assert image.shape == (1, 32, 32, 3) and bool(jnp.all((image >= 0) & (image <= 1)))


def test_warping_params_from_torch_names_and_errors():
    cfg = lp_config.small().warping_module_params
    f_s = jax.ShapeDtypeStruct((1, 16, 64, 64, cfg.reshape_channel), jnp.float32)
    kp = jax.ShapeDtypeStruct((1, cfg.num_kp, 3), jnp.float32)
    template = jax.eval_shape(warping.WarpingNetwork(cfg).init, jax.random.PRNGKey(0), f_s, kp, kp)["params"]
    state = torch_style_state(template, np.random.default_rng(3))
    for key in ("dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight",
                "dense_motion_network.hourglass.decoder.up_blocks.2.norm.running_var",
                "dense_motion_network.hourglass.decoder.conv.weight", "dense_motion_network.mask.weight",
                "dense_motion_network.compress.bias", "dense_motion_network.norm.running_mean",
                "dense_motion_network.occlusion.weight", "third.conv.weight", "third.norm.weight", "fourth.bias"):
        assert key in state
    params = warping.params_from_torch(state, cfg, "warping_module.pth")
    np.testing.assert_array_equal(params["third"]["norm"]["var"], state["third.norm.running_var"])

    missing = dict(state)
    del missing["dense_motion_network.mask.bias"]
    with pytest.raises(CheckpointError, match=r"warping_module\.pth: missing key for dense_motion_network/mask/bias"):
        warping.params_from_torch(missing, cfg, "warping_module.pth")
    wrong = dict(state, **{"fourth.weight": state["fourth.weight"][:, :-1]})
    with pytest.raises(CheckpointError, match=r"warping_module\.pth: fourth\.weight has shape"):
        warping.params_from_torch(wrong, cfg, "warping_module.pth")
