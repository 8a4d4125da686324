"""LivePortrait's F, M and S networks and camera maths (vasa_jax.face.liveportrait): known answers of the camera
maths, upstream's state-dict key names and layouts through params_from_torch, the stitching semantics, and the
loader's errors. Parity with upstream's PyTorch networks is the recorded-reference test's job."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from vasa_jax.face.liveportrait import appearance, camera, motion_extractor, stitching
from vasa_jax.face.liveportrait.config import small
from vasa_jax.io.weights import CheckpointError, read_state_dict

CFG = small()


def _random_state(shapes: dict, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    state = {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in shapes.items()}
    for k in state:
        if k.endswith("running_var"):
            state[k] = np.abs(state[k]) + 0.5
    return state


def _norm2d(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _appearance_keys(cfg) -> dict:
    """Upstream's appearance_feature_extractor state dict: key -> torch shape."""
    e, cin = cfg.block_expansion, cfg.image_channel
    shapes = {"first.conv.weight": (e, cin, 3, 3), "first.conv.bias": (e,), **_norm2d("first.norm", e)}
    for i in range(cfg.num_down_blocks):
        a, b = min(cfg.max_features, e * 2 ** i), min(cfg.max_features, e * 2 ** (i + 1))
        shapes |= {f"down_blocks.{i}.conv.weight": (b, a, 3, 3), f"down_blocks.{i}.conv.bias": (b,),
                   **_norm2d(f"down_blocks.{i}.norm", b)}
    shapes |= {"second.weight": (cfg.max_features, b, 1, 1), "second.bias": (cfg.max_features,)}
    c = cfg.reshape_channel
    for i in range(cfg.num_resblocks):
        for n in (1, 2):
            p = f"resblocks_3d.3dr{i}"
            shapes |= {f"{p}.conv{n}.weight": (c, c, 3, 3, 3), f"{p}.conv{n}.bias": (c,), **_norm2d(f"{p}.norm{n}", c)}
    return shapes


def _motion_keys(cfg) -> dict:
    """Upstream's motion_extractor state dict (ConvNeXtV2 under `detector.`): key -> torch shape."""
    d = cfg.dims
    shapes = {"detector.downsample_layers.0.0.weight": (d[0], 3, 4, 4), "detector.downsample_layers.0.0.bias": (d[0],),
              "detector.downsample_layers.0.1.weight": (d[0],), "detector.downsample_layers.0.1.bias": (d[0],)}
    for i in range(1, len(d)):
        p = f"detector.downsample_layers.{i}"
        shapes |= {f"{p}.0.weight": (d[i - 1],), f"{p}.0.bias": (d[i - 1],), f"{p}.1.weight": (d[i], d[i - 1], 2, 2),
                   f"{p}.1.bias": (d[i],)}
    for i, depth in enumerate(cfg.depths):
        for j in range(depth):
            p, c = f"detector.stages.{i}.{j}", d[i]
            shapes |= {f"{p}.dwconv.weight": (c, 1, 7, 7), f"{p}.dwconv.bias": (c,), f"{p}.norm.weight": (c,),
                       f"{p}.norm.bias": (c,), f"{p}.pwconv1.weight": (4 * c, c), f"{p}.pwconv1.bias": (4 * c,),
                       f"{p}.grn.gamma": (1, 1, 1, 4 * c), f"{p}.grn.beta": (1, 1, 1, 4 * c),
                       f"{p}.pwconv2.weight": (c, 4 * c), f"{p}.pwconv2.bias": (c,)}
    shapes |= {"detector.norm.weight": (d[-1],), "detector.norm.bias": (d[-1],)}
    k, bins = cfg.num_kp, cfg.num_bins
    for head, size in (("kp", 3 * k), ("pitch", bins), ("yaw", bins), ("roll", bins), ("t", 3), ("exp", 3 * k),
                       ("scale", 1)):
        shapes |= {f"detector.fc_{head}.weight": (size, d[-1]), f"detector.fc_{head}.bias": (size,)}
    return shapes


def _mlp_state(mlp_cfg, rng, zero_weights=False) -> dict:
    sizes = (mlp_cfg.input_size, *mlp_cfg.hidden_sizes, mlp_cfg.output_size)
    state = {}
    for n, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = np.zeros((b, a), np.float32) if zero_weights else rng.normal(0, 0.1, (b, a)).astype(np.float32)
        state[f"module.mlp.{2 * n}.weight"] = torch.from_numpy(w)
        state[f"module.mlp.{2 * n}.bias"] = torch.from_numpy(rng.normal(0, 0.1, b).astype(np.float32))
    return state


# --- camera maths -----------------------------------------------------------------------------------------------

def _rotate(point, pitch=0.0, yaw=0.0, roll=0.0):
    r = camera.rotation_matrix(jnp.array([pitch]), jnp.array([yaw]), jnp.array([roll]))
    return np.asarray(jnp.asarray(point, jnp.float32) @ r[0])


def test_rotation_matrix_known_answers():
    np.testing.assert_allclose(camera.rotation_matrix(*jnp.zeros((3, 2)))[1], np.eye(3), atol=1e-7)
    # Row-vector keypoints in the right-down-in frame: yaw turns x onto -z, pitch y onto +z, roll x onto +y.
    np.testing.assert_allclose(_rotate([1, 0, 0], yaw=90), [0, 0, -1], atol=1e-6)
    np.testing.assert_allclose(_rotate([0, 1, 0], pitch=90), [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(_rotate([1, 0, 0], roll=90), [0, 1, 0], atol=1e-6)
    # Pitch acts first on the point (R = (Rz Ry Rx)^T): x is untouched by pitch, then yaw takes it to -z
    # (the other order would give +y).
    np.testing.assert_allclose(_rotate([1, 0, 0], pitch=90, yaw=90), [0, 0, -1], atol=1e-6)


def test_headpose_degrees_of_bins():
    bins = np.full((4, 66), -1e4, np.float32)
    for row, k in enumerate((0, 33, 65)):
        bins[row, k] = 1e4
    bins[3] = 0.0  # uniform: the mean bin 32.5
    np.testing.assert_allclose(camera.headpose_degrees(bins), [-97.5, 1.5, 97.5, 0.0], atol=1e-4)


def test_motion_info_and_transform_keypoints():
    b, k = 2, 21
    raw = {"kp": jnp.arange(b * 3 * k, dtype=jnp.float32).reshape(b, 3 * k) / 100,
           "exp": jnp.full((b, 3 * k), 0.5), "pitch": jnp.zeros((b, 66)), "yaw": jnp.zeros((b, 66)),
           "roll": jnp.zeros((b, 66)), "t": jnp.array([[1.0, 2.0, 3.0]] * b), "scale": jnp.full((b, 1), 2.0)}
    info = camera.motion_info(raw)
    assert info["kp"].shape == info["exp"].shape == (b, k, 3) and info["pitch"].shape == (b,)
    np.testing.assert_allclose(info["kp"][0, 1], [0.03, 0.04, 0.05], atol=1e-7)  # row-major: keypoint-major
    info["pitch"] = info["yaw"] = info["roll"] = jnp.zeros(b)  # identity rotation
    expected = 2.0 * (np.asarray(info["kp"]) + 0.5) + np.array([1.0, 2.0, 0.0])  # tz is not applied
    np.testing.assert_allclose(camera.transform_keypoints(info), expected, atol=1e-6)


# --- F and M: upstream's keys and layouts -----------------------------------------------------------------------

def test_appearance_params_from_torch_and_volume_channel_order():
    cfg = CFG.appearance_feature_extractor_params
    state = _random_state(_appearance_keys(cfg))
    params = appearance.params_from_torch(state, cfg, "F.pth")
    np.testing.assert_array_equal(params["down_blocks_1"]["conv"]["kernel"],
                                  state["down_blocks.1.conv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["resblocks_3d"]["3dr1"]["norm2"]["var"],
                                  state["resblocks_3d.3dr1.norm2.running_var"])
    # `second` made to output its channel index, residual blocks made the identity: f_s[..., d, :, :, c] must be
    # channel c * D + d of upstream's [C*D, H, W] view.
    params["second"] = {"kernel": np.zeros_like(params["second"]["kernel"]),
                        "bias": np.arange(cfg.max_features, dtype=np.float32)}
    params["resblocks_3d"] = jax.tree.map(np.zeros_like, params["resblocks_3d"])
    # jit: compiling the small network costs less than running it op by op.
    f_s = jax.jit(appearance.AppearanceFeatureExtractor(cfg).apply)({"params": params},
                                                                    np.zeros((1, 16, 16, 3), np.float32))
    d, c = cfg.reshape_depth, cfg.reshape_channel
    assert f_s.shape == (1, d, 4, 4, c) and f_s.dtype == jnp.float32
    expected = np.arange(c)[None, :] * d + np.arange(d)[:, None]  # [D, C]
    np.testing.assert_array_equal(f_s[0, :, 2, 3, :], expected)


def test_motion_params_from_torch_and_heads():
    cfg = CFG.motion_extractor_params
    state = _random_state(_motion_keys(cfg))
    params = motion_extractor.params_from_torch(state, cfg, "M.pth")["detector"]
    np.testing.assert_array_equal(params["stages_2_1"]["pwconv1"]["kernel"],
                                  state["detector.stages.2.1.pwconv1.weight"].T)
    np.testing.assert_array_equal(params["stages_0_0"]["dwconv"]["kernel"],
                                  state["detector.stages.0.0.dwconv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["stages_3_0"]["grn"]["gamma"], state["detector.stages.3.0.grn.gamma"])
    np.testing.assert_array_equal(params["downsample_layers_2_0"]["scale"],
                                  state["detector.downsample_layers.2.0.weight"])
    raw = jax.jit(motion_extractor.MotionExtractor(cfg).apply)({"params": {"detector": params}},
                                                               np.full((2, 32, 32, 3), 0.5, np.float32))
    assert {k: v.shape for k, v in raw.items()} == {"kp": (2, 63), "pitch": (2, 66), "yaw": (2, 66), "roll": (2, 66),
                                                    "t": (2, 3), "exp": (2, 63), "scale": (2, 1)}


def test_grn_normalises_by_spatial_norm_over_its_channel_mean():
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 4)).astype(np.float32)
    gamma = np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 1, 1, 4)
    beta = np.full((1, 1, 1, 4), 0.25, np.float32)
    got = motion_extractor.GRN().apply({"params": {"gamma": gamma, "beta": beta}}, x)
    norm = np.sqrt((x ** 2).sum(axis=(1, 2), keepdims=True))
    expected = gamma * x * norm / (norm.mean(axis=-1, keepdims=True) + 1e-6) + beta + x
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# --- S ----------------------------------------------------------------------------------------------------------

def _stitching_file(tmp_path, zero_weights=False):
    rng = np.random.default_rng(2)
    s_cfg = CFG.stitching_retargeting_module_params
    nested = {"retarget_shoulder": _mlp_state(s_cfg.stitching, rng, zero_weights),
              "retarget_mouth": _mlp_state(s_cfg.lip, rng, zero_weights),
              "retarget_eye": _mlp_state(s_cfg.eye, rng, zero_weights)}
    path = tmp_path / "stitching_retargeting_module.pth"
    torch.save(nested, path)
    return path, nested


def test_stitching_file_round_trip_and_semantics(tmp_path):
    path, nested = _stitching_file(tmp_path, zero_weights=True)
    params = stitching.params_from_torch(read_state_dict(path), CFG.stitching_retargeting_module_params, path)
    np.testing.assert_array_equal(params["lip"]["mlp_2"]["bias"], nested["retarget_mouth"]["module.mlp.2.bias"].numpy())
    # With every weight zero each MLP outputs its last bias: stitching adds the first 63 to the keypoints and the
    # last two (tx, ty) to x and y of every keypoint; eye and lip return theirs as [B, 21, 3] deltas.
    rng = np.random.default_rng(3)
    kp_s, kp_d = rng.normal(size=(2, 2, 21, 3)).astype(np.float32)
    delta = nested["retarget_shoulder"]["module.mlp.4.bias"].numpy()
    expected = kp_d + delta[:63].reshape(21, 3)
    expected[..., :2] += delta[63:]
    np.testing.assert_allclose(stitching.stitch(params, kp_s, kp_d), expected, atol=1e-6)
    eye = stitching.retarget_eye(params, kp_s, np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(eye[1], nested["retarget_eye"]["module.mlp.4.bias"].numpy().reshape(21, 3), atol=1e-7)
    lip = stitching.retarget_lip(params, kp_s, np.zeros((2, 2), np.float32))
    np.testing.assert_allclose(lip[0], nested["retarget_mouth"]["module.mlp.4.bias"].numpy().reshape(21, 3), atol=1e-7)


def test_retargeting_mlp_is_linear_relu_stack(tmp_path):
    path, nested = _stitching_file(tmp_path)
    params = stitching.params_from_torch(read_state_dict(path), CFG.stitching_retargeting_module_params, path)
    kp_s = np.random.default_rng(4).normal(size=(1, 21, 3)).astype(np.float32)
    ratio = np.array([[0.2, 0.3, 0.1]], np.float32)
    h = np.concatenate([kp_s.reshape(1, -1), ratio], axis=1)
    eye = {k: v.numpy() for k, v in nested["retarget_eye"].items()}
    for n in (0, 2, 4):
        h = h @ eye[f"module.mlp.{n}.weight"].T + eye[f"module.mlp.{n}.bias"]
        h = np.maximum(h, 0) if n < 4 else h
    np.testing.assert_allclose(stitching.retarget_eye(params, kp_s, ratio), h.reshape(1, 21, 3), rtol=1e-5, atol=1e-6)


# --- loader errors ----------------------------------------------------------------------------------------------

def test_checkpoint_errors_name_file_and_key(tmp_path):
    cfg = CFG.appearance_feature_extractor_params
    state = _random_state(_appearance_keys(cfg))
    missing = {k: v for k, v in state.items() if k != "second.bias"}
    with pytest.raises(CheckpointError, match=r"F\.pth: missing key for second/bias"):
        appearance.params_from_torch(missing, cfg, "F.pth")
    wrong = dict(state, **{"first.conv.weight": np.zeros((8, 3, 5, 5), np.float32)})
    with pytest.raises(CheckpointError, match=r"F\.pth: first\.conv\.weight has shape"):
        appearance.params_from_torch(wrong, cfg, "F.pth")
    motion_state = _random_state(_motion_keys(CFG.motion_extractor_params))
    unprefixed = {k.removeprefix("detector."): v for k, v in motion_state.items()}
    with pytest.raises(CheckpointError, match=r"M\.pth: missing key for detector/"):
        motion_extractor.params_from_torch(unprefixed, CFG.motion_extractor_params, "M.pth")
    path, nested = _stitching_file(tmp_path)
    del nested["retarget_eye"]
    torch.save(nested, path)
    with pytest.raises(CheckpointError, match=r"stitching_retargeting_module\.pth: missing key for eye/mlp_0"):
        stitching.params_from_torch(read_state_dict(path), CFG.stitching_retargeting_module_params, path)
