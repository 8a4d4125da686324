"""The stage-1 face model on the tiny config: shapes, the warps' geometry, gradients, dtypes, input checks."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa_jax.config import load_config
from vasa_jax.face import POSE_DIM, FaceConfig, WarpingFaceModel
from vasa_jax.face.networks import Enhancer
from vasa_jax.face.warping import canonical_points, pose_points, to_canonical, unpose_points, volume_rotation
from vasa_jax.ops import grid_sample

CONFIG = FaceConfig.from_config(load_config("configs/tiny.py").face)


@pytest.fixture(scope="module")
def face():
    model = WarpingFaceModel(CONFIG)
    return model, model.init(jax.random.key(0))


def images(n, seed=0):
    return jnp.asarray(np.random.default_rng(seed).random((n, CONFIG.image_size, CONFIG.image_size, 3)), jnp.float32)


def random_poses(n, seed=0):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-1, 1, (n, 3)) * [30, 20, 15]
    return jnp.asarray(np.concatenate([angles, rng.uniform(-0.2, 0.2, (n, 2)), rng.uniform(0.8, 1.2, (n, 1))], 1),
                       jnp.float32)


def test_interface_shapes(face):
    model, params = face
    x = images(2)
    v_app, z_id = jax.jit(model.encode_source)(params, x)
    c = CONFIG
    assert v_app.shape == (2, c.volume_depth, c.volume_size, c.volume_size, c.volume_channels)
    assert z_id.shape == (2, c.id_dim)
    motion = jax.jit(model.encode_motion)(params, x)
    assert motion.shape == (2, c.motion_dim) == (2, POSE_DIM + c.dyn_dim)
    out = jax.jit(model.decode)(params, v_app, z_id, motion)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    # Untrained, the pose head says: frontal, centred, scale 1.
    np.testing.assert_allclose(motion[:, :POSE_DIM], [[0, 0, 0, 0, 0, 1]] * 2, atol=1e-6)


def test_rigid_transforms_invert_and_rotate():
    poses = random_poses(4)
    r = volume_rotation(poses)
    np.testing.assert_allclose(jnp.einsum("bij,bkj->bik", r, r), np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-6)
    points = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (4, 2, 3, 3, 3)), jnp.float32)
    np.testing.assert_allclose(unpose_points(poses, pose_points(poses, points)), points, atol=1e-5)


def test_identity_warps_change_nothing():
    v = jnp.asarray(np.random.default_rng(2).random((2, 4, 8, 8, 3)), jnp.float32)
    pose = jnp.asarray([[0, 0, 0, 0, 0, 1.0]] * 2)
    zero = jnp.zeros(v.shape[:-1] + (3,))
    np.testing.assert_allclose(to_canonical(v, pose, zero), v, atol=1e-6)
    np.testing.assert_allclose(from_canonical(v, pose, zero), v, atol=1e-6)


def from_canonical(volume, pose, flow):
    """V_app resampled into a driver's pose and expression, as the decoder reads it."""
    return grid_sample(volume, canonical_points(pose, flow))


def bright_spot_volume(x, y, z, size=16):
    """A volume [1, size, size, size, 1] with a blob at normalised (x, y, z)."""
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    zz, yy, xx = np.meshgrid(coords, coords, coords, indexing="ij")
    blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) / 0.02)
    return jnp.asarray(blob[None, ..., None], jnp.float32)


def spot_position(volume):
    """Centre of mass (x, y, z) of a [1, D, H, W, 1] volume in normalised coordinates."""
    v = np.asarray(volume)[0, ..., 0]
    size = v.shape[0]
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    zz, yy, xx = np.meshgrid(coords, coords, coords, indexing="ij")
    return np.array([(xx * v).sum(), (yy * v).sum(), (zz * v).sum()]) / v.sum()


@pytest.mark.parametrize("pose, expected_move", [
    ((30, 0, 0), (+1, 0)),  # yaw: the face (front, +z) turns to the image's right (+x)
    ((0, 20, 0), (0, -1)),  # pitch: the chin rises, so the front moves up (image y points down)
])
def test_driving_pose_moves_the_face_like_the_toy_world(pose, expected_move):
    nose = bright_spot_volume(0.0, 0.0, 0.6)  # a feature on the front of the canonical face
    full = jnp.asarray([[*pose, 0, 0, 1.0]], jnp.float32)
    driven = from_canonical(nose, full, jnp.zeros(nose.shape[:-1] + (3,)))
    moved = spot_position(driven)
    for axis, sign in enumerate(expected_move):
        if sign:
            assert np.sign(moved[axis]) == sign and abs(moved[axis]) > 0.15
    # and to_canonical undoes it
    back = to_canonical(driven, full, jnp.zeros(nose.shape[:-1] + (3,)))
    np.testing.assert_allclose(spot_position(back), spot_position(nose), atol=0.03)


@pytest.mark.parametrize("enhancer", [False, True])
def test_every_parameter_gets_a_finite_nonzero_gradient(face, enhancer):
    model, params = face
    if enhancer:
        model = WarpingFaceModel(ENHANCED)
        params = model.init(jax.random.key(6))
    source, driver = images(2, 1), images(2, 2)
    if enhancer:
        source, driver = (jax.image.resize(x, (2, model.image_size, model.image_size, 3), "linear")
                          for x in (source, driver))

    def loss(p):
        v_app, z_id = model.encode_source(p, source)
        return jnp.abs(model.decode(p, v_app, z_id, model.encode_motion(p, driver)) - driver).mean()

    grads = jax.jit(jax.grad(loss))(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        name = jax.tree_util.keystr(path)
        assert np.all(np.isfinite(g)), name
        assert np.any(np.asarray(g) != 0), name


ENHANCED = dataclasses.replace(CONFIG, image_size=2 * CONFIG.image_size, enhancer_widths=(8,))


def test_an_enhancer_reads_and_renders_through_its_base_model():
    """With an enhancer the warping model is the base: the encoders read the image at base_size, and a new
    enhancer (its output layer near zero) renders the base's image upscaled; its conditioning on the motion gets
    gradients from the start (test_every_parameter_gets_a_finite_nonzero_gradient covers the rest)."""
    base, enhanced = WarpingFaceModel(CONFIG), WarpingFaceModel(ENHANCED)
    params = enhanced.init(jax.random.key(4))
    assert set(params) - {"enhancer"} == set(base.init(jax.random.key(4)))  # same names: a base's weights fit
    base_params = {k: v for k, v in params.items() if k != "enhancer"}
    big = jnp.asarray(np.random.default_rng(5).random((2, ENHANCED.image_size, ENHANCED.image_size, 3)), jnp.float32)
    small = jax.image.resize(big, (2, CONFIG.image_size, CONFIG.image_size, 3), "linear", antialias=True)
    motion = enhanced.encode_motion(params, big)
    np.testing.assert_allclose(motion, base.encode_motion(base_params, small), rtol=1e-5, atol=1e-5)
    (appearance, z_id), (v_app, base_id) = enhanced.encode_source(params, big), base.encode_source(base_params, small)
    np.testing.assert_allclose(appearance["volume"], v_app, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z_id, base_id, rtol=1e-5, atol=1e-5)
    flipped = motion[::-1]
    out = enhanced.decode(params, appearance, z_id, flipped)
    assert out.shape == big.shape
    rendered = base.decode(base_params, v_app, base_id, flipped)
    logits = jax.scipy.special.logit(rendered)
    upscaled = jax.nn.sigmoid(jax.image.resize(logits, out.shape, "linear"))
    assert 0 < float(jnp.abs(out - upscaled).max()) < 0.02  # the enhancer's own part starts small
    head = params["enhancer"]["output"]["Conv_0"]
    silent_head = dict(params["enhancer"]["output"], Conv_0=jax.tree.map(jnp.zeros_like, head))
    silent = dict(params, enhancer=dict(params["enhancer"], output=silent_head))
    out = enhanced.decode(silent, appearance, z_id, flipped)
    # without its output layer, the base's logits upscaled, blended with the warped source by the starting mask
    assert float(jnp.abs(out - upscaled).max()) <= float(jax.nn.sigmoid(Enhancer.mask_offset)) + 1e-6


def test_the_enhancers_source_skip_copies_the_source_where_the_driver_is_the_source():
    """The source skip's geometry: with the mask fully open, the source's own motion (a new model: frontal, scale
    1), no non-rigid warps and no correction, the composite map is the identity and the output is the source
    image itself."""
    enhanced = WarpingFaceModel(ENHANCED)
    params = enhanced.init(jax.random.key(4))
    for part, head in (("warp_to_canonical", "Head_0"), ("warp_from_canonical", "Head_0"), ("enhancer", "refinement")):
        still = dict(params[part][head], Conv_0=jax.tree.map(jnp.zeros_like, params[part][head]["Conv_0"]))
        params = dict(params, **{part: dict(params[part], **{head: still})})
    head = params["enhancer"]["output"]["Conv_0"]
    bias = jnp.zeros_like(head["bias"]).at[3].set(30.0)  # the mask's channel
    open_head = dict(params["enhancer"]["output"], Conv_0=dict(head, bias=bias))
    params = dict(params, enhancer=dict(params["enhancer"], output=open_head))
    image = jnp.asarray(np.random.default_rng(5).random((2, ENHANCED.image_size, ENHANCED.image_size, 3)), jnp.float32)
    out = enhanced.decode(params, *enhanced.encode_source(params, image), enhanced.encode_motion(params, image))
    # Inside: upsampling the map from the volume's grid is exact there, not within one volume cell of the edge.
    edge = ENHANCED.image_size // ENHANCED.volume_size
    np.testing.assert_allclose(out[:, edge:-edge, edge:-edge], image[:, edge:-edge, edge:-edge], atol=1e-5)


def test_bfloat16_compute_stays_close(face):
    model, params = face
    x = images(1, 3)
    fast = WarpingFaceModel(dataclasses.replace(CONFIG, dtype="bfloat16"))

    def run(m):
        v_app, z_id = m.encode_source(params, x)
        return m.decode(params, v_app, z_id, m.encode_motion(params, x))

    full, half = jax.jit(lambda: run(model))(), jax.jit(lambda: run(fast))()
    assert half.dtype == jnp.float32
    assert float(jnp.abs(full - half).max()) < 0.03


def test_bad_inputs_and_configs(face):
    model, params = face
    with pytest.raises(ValueError, match="takes images"):
        model.encode_motion(params, jnp.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="motion must be"):
        model.decode(params, None, None, jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="power of two"):
        dataclasses.replace(CONFIG, image_size=48)
    with pytest.raises(ValueError, match="one width per 2x step from 8 to 16"):  # the enhancer halves the base
        dataclasses.replace(CONFIG, enhancer_widths=(8,))
    with pytest.raises(ValueError, match="divisible by 2"):
        dataclasses.replace(CONFIG, image_size=33, enhancer_widths=(8,))
    with pytest.raises(ValueError, match="unknown face config"):
        FaceConfig.from_config({"image_sise": 64})


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.py")))
def test_every_shipped_config_builds_a_face_model_of_its_size(name):
    config = load_config(Path(__file__).parents[1] / "configs" / name)
    model = WarpingFaceModel(FaceConfig.from_config(config.face))
    params = jax.eval_shape(model.init, jax.random.key(0))
    image = jax.ShapeDtypeStruct((1, model.image_size, model.image_size, 3), jnp.float32)
    out = jax.eval_shape(lambda p, x: model.decode(p, *model.analyze(p, x)), params, image)
    assert out.shape == (1, config.face.image_size, config.face.image_size, 3)
