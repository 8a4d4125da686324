"""Stage-1 training on the tiny config: the losses, gradients, data parallelism and resuming, end to end."""

import json

import jax
import numpy as np
import optax
import pytest

from vasa_jax.config import load_config
from vasa_jax.data.face_pairs import FacePairSource
from vasa_jax.errors import ConfigError
from vasa_jax.face import POSE_DIM
from vasa_jax.train.face import FaceTrainer, load_face_checkpoint, train_face
from vasa_jax.train.parallel import compile_step, make_mesh, replicate, shard_batch

CONFIG = load_config("configs/tiny.py")


@pytest.fixture(scope="module")
def trainer():
    return FaceTrainer(CONFIG)


@pytest.fixture(scope="module")
def state(trainer):
    return jax.jit(trainer.init_state)(jax.random.key(0))


@pytest.fixture(scope="module")
def batch():
    source = FacePairSource(CONFIG.face.image_size, clip_seconds=CONFIG.data.clip_seconds)
    items = [source[i] for i in range(2)]
    return {k: np.stack([item[k] for item in items]) for k in items[0]}


def test_pairwise_loss_is_zero_when_both_frames_are_the_same(trainer, state, batch):
    same = dict(batch, driver=batch["source"], driver_pose=batch["source_pose"])
    _, (terms, _) = jax.jit(trainer.generator_loss)(state.params, state.extra["disc_params"], same)
    assert float(terms["pairwise_transfer"]) == 0.0
    _, (terms, _) = jax.jit(trainer.generator_loss)(state.params, state.extra["disc_params"], batch)
    assert float(terms["pairwise_transfer"]) > 0.0


def test_mouth_loss_is_the_l1_over_the_mouth_region_where_the_data_has_one(trainer, state, batch):
    loss = jax.jit(trainer.generator_loss)
    _, (terms, out) = loss(state.params, state.extra["disc_params"], batch)
    recon, driver = np.asarray(out["recon"]), np.asarray(out["driver"])
    size = recon.shape[1]
    expected = []
    for b, (x0, y0, x1, y1) in enumerate(batch["driver_mouth"]):
        centres = (np.arange(size) + 0.5) / size
        rows = (centres >= y0) & (centres <= y1)
        cols = (centres >= x0) & (centres <= x1)
        assert 0 < rows.sum() < size and 0 < cols.sum() < size  # a region, not the whole image
        expected.append(np.abs(recon[b] - driver[b])[rows][:, cols].mean())
    np.testing.assert_allclose(float(terms["mouth"]), np.mean(expected), rtol=1e-5)
    # Without lip landmarks (real video where dlib found no face) the term is skipped.
    _, (none, _) = loss(state.params, state.extra["disc_params"], dict(batch, has_mouth=np.zeros(2, bool)))
    assert float(none["mouth"]) == 0.0
    one = dict(batch, has_mouth=np.array([True, False]))
    _, (first, _) = loss(state.params, state.extra["disc_params"], one)
    np.testing.assert_allclose(float(first["mouth"]), expected[0], rtol=1e-5)


def test_lip_opening_loss_is_the_l1_of_the_first_dynamics_entry_where_the_data_has_lips(trainer, state, batch):
    loss = jax.jit(trainer.generator_loss)
    _, (terms, out) = loss(state.params, state.extra["disc_params"], batch)
    first = np.asarray(out["motion_j"])[:, POSE_DIM]
    errors = np.abs(first - batch["driver_lip_opening"])
    np.testing.assert_allclose(float(terms["lip_opening"]), errors.mean(), rtol=1e-5)
    _, (one, _) = loss(state.params, state.extra["disc_params"], dict(batch, has_mouth=np.array([False, True])))
    np.testing.assert_allclose(float(one["lip_opening"]), errors[1], rtol=1e-5)
    _, (none, _) = loss(state.params, state.extra["disc_params"], dict(batch, has_mouth=np.zeros(2, bool)))
    assert float(none["lip_opening"]) == 0.0


def test_every_module_gets_finite_nonzero_gradients(trainer, state, batch):
    def losses(params, disc_params):
        g, (_, out) = trainer.generator_loss(params, disc_params, batch)
        return g + trainer.discriminator_loss(disc_params, out)

    g_grads, d_grads = jax.jit(jax.grad(losses, argnums=(0, 1)))(state.params, state.extra["disc_params"])
    for tree in (g_grads, d_grads):
        for path, g in jax.tree_util.tree_leaves_with_path(tree):
            name = jax.tree_util.keystr(path)
            assert np.all(np.isfinite(g)), name
            assert np.any(np.asarray(g) != 0), name


def test_two_devices_give_the_single_device_step(batch):
    # Plain SGD: Adam's first update, lr * g / (|g| + eps), turns the last-bit differences of a sum taken in
    # another order into whole learning-rate steps wherever a gradient is ~0, which says nothing about sharding.
    # One step from the same state: the forward pass must agree, and so must the gradients summed over the
    # two halves of the batch.
    sgd = FaceTrainer(CONFIG)
    sgd.optimizer = sgd.disc_optimizer = optax.sgd(1e-3)
    state = jax.jit(sgd.init_state)(jax.random.key(0))

    def run(devices):
        mesh = make_mesh(devices)
        step = compile_step(sgd.step, mesh, donate_state=False)
        return step(replicate(state, mesh), shard_batch(batch, mesh), jax.random.key(0))

    assert len(jax.devices()) == 2
    one, m1 = run(jax.devices()[:1])
    two, m2 = run(jax.devices())
    np.testing.assert_allclose(float(m1["loss"]), float(m2["loss"]), rtol=1e-6)
    for tree in ("params", "extra"):
        for a, b, before in zip(jax.tree.leaves(getattr(one, tree)), jax.tree.leaves(getattr(two, tree)),
                                jax.tree.leaves(getattr(state, tree))):
            # The updates themselves (not just the params, which barely move at this learning rate) agree.
            # atol: one float32 ulp of a parameter near 0.1 (the updates are differences of rounded values)
            np.testing.assert_allclose(np.asarray(a) - before, np.asarray(b) - before, rtol=1e-3, atol=2e-8)
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(state.params)))
    assert moved > 1e-6  # the comparison is not between two untouched copies


def test_resumed_training_equals_uninterrupted(tmp_path):
    def losses(workdir):
        return [json.loads(line)["loss"] for line in open(workdir / "metrics.jsonl")]

    def config(steps):
        c = load_config("configs/tiny.py")
        c.face_train.steps, c.face_train.checkpoint_every, c.face_train.image_every = steps, 1, 100
        return c

    train_face(config(3), str(tmp_path / "straight"), quiet=True)
    train_face(config(2), str(tmp_path / "resumed"), quiet=True)
    train_face(config(3), str(tmp_path / "resumed"), quiet=True)
    assert len(losses(tmp_path / "straight")) == 3
    np.testing.assert_allclose(losses(tmp_path / "resumed"), losses(tmp_path / "straight"), rtol=1e-6)
    # The checkpoint loads back as a face model, EMA params by default.
    _, face, params = load_face_checkpoint(str(tmp_path / "resumed"))
    _, _, live = load_face_checkpoint(str(tmp_path / "resumed"), ema=False)
    assert face.image_size == CONFIG.face.image_size
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(live)))

    # Fine-tuning starts from a trained run's EMA weights (its discriminator and optimiser start fresh) ...
    tuned = config(3)
    tuned.face_train.init_from = str(tmp_path / "resumed")
    start = jax.jit(FaceTrainer(tuned).init_state)(jax.random.key(1))
    for a, b in zip(jax.tree.leaves(start.params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    # ... and refuses weights of another architecture or a folder without any.
    wider = config(3)
    wider.face_train.init_from, wider.face.id_dim = tuned.face_train.init_from, CONFIG.face.id_dim * 2
    with pytest.raises(ConfigError, match="differs from this config"):
        FaceTrainer(wider)
    tuned.face_train.init_from = str(tmp_path)
    with pytest.raises(ConfigError, match="neither a stage-1 workdir"):
        FaceTrainer(tuned)


def double_resolution(config):
    """configs/tiny.py's face at twice the size, its encoders reading the original size (configs/toy128.py's
    relation to configs/toy.py)."""
    config.face.image_size, config.face.encoder_size = 2 * config.face.image_size, config.face.image_size
    config.face.appearance_widths = (*config.face.appearance_widths, config.face.appearance_widths[-1])
    config.face.decoder_up_widths = (*config.face.decoder_up_widths, config.face.decoder_up_widths[-1])
    return config


def test_a_larger_renderer_starts_from_a_smaller_model_and_keeps_its_motion_space(tmp_path):
    """init_partial takes the weights whose names and shapes agree; freeze keeps parts exactly as loaded, so
    the new model reads the same motion from an image as the old one did from it at the old size."""
    from pipeline_models import random_face_workdir
    from vasa_jax.data.motion_data import load_face_folder
    from vasa_jax.face.model import FACE_PARTS

    small = tmp_path / "small"
    random_face_workdir(small, load_config("configs/tiny.py"))  # random weights show what is kept as well
    big = double_resolution(load_config("configs/tiny.py"))
    big.face_train.init_from = str(small)
    with pytest.raises(ConfigError, match="init_partial"):
        FaceTrainer(big)
    big.face_train.init_partial = True
    big.face_train.freeze = ("mouth",)
    with pytest.raises(ConfigError, match="unknown part"):
        FaceTrainer(big)
    big.face_train.freeze = ("identity", "motion")
    grown = FaceTrainer(big)
    old_face, old_params = load_face_folder(str(small))
    start = jax.jit(grown.init_state)(jax.random.key(1))
    assert set(start.params) == set(FACE_PARTS) - {"enhancer"}  # what freeze may name (no enhancer here)
    assert "parts with fresh weights: appearance, decoder" in grown.init_report
    for part in ("identity", "motion", "warp_to_canonical", "warp_from_canonical"):
        for a, b in zip(jax.tree.leaves(start.params[part]), jax.tree.leaves(old_params[part])):
            np.testing.assert_array_equal(a, b)
    # Where the shapes differ (the appearance encoder's added stride stage shifts its blocks): a fresh init.
    fresh = grown.face.init(jax.random.key(big.face_train.seed))
    for a, b in zip(jax.tree.leaves(start.params["appearance"]["ResBlock_2"]),
                    jax.tree.leaves(fresh["appearance"]["ResBlock_2"])):
        np.testing.assert_array_equal(a, b)

    images = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    low = jax.image.resize(images, (2, 32, 32, 3), "linear", antialias=True)
    np.testing.assert_allclose(grown.face.encode_motion(start.params, images),
                               old_face.encode_motion(old_params, low), rtol=1e-5, atol=1e-5)

    source = FacePairSource(64, clip_seconds=big.data.clip_seconds)
    items = [source[i] for i in range(2)]
    batch = {k: np.stack([item[k] for item in items]) for k in items[0]}
    step = jax.jit(grown.step)
    after, _ = step(step(start, batch, jax.random.key(0))[0], batch, jax.random.key(0))  # update 0 has rate 0
    for tree in ("params", "ema_params"):  # the EMA too: export --motion-from needs the encoder bit-exact
        for part, group in getattr(after, tree).items():
            before = jax.tree.leaves(start.params[part])
            same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(group), before))
            assert same == (part in big.face_train.freeze), (tree, part)  # no update, no weight decay either

    # Freezing needs weights to keep.
    lone = load_config("configs/tiny.py")
    lone.face_train.freeze = ("motion",)
    with pytest.raises(ConfigError, match="init_from is empty"):
        train_face(lone, str(tmp_path / "lone"), quiet=True)


def test_motion_labels_only_trains_the_motion_encoder_alone_and_keeps_the_rest_of_its_dynamics(tmp_path, batch):
    """face_train.motion_labels_only: the lip label is taught to init_from's motion encoder with no decode; every
    other part stays bit-exact, and z_dyn's other entries are held to the starting encoder's (motion_kept)."""
    from pipeline_models import random_face_workdir

    start_from = tmp_path / "start"
    random_face_workdir(start_from, load_config("configs/tiny.py"))
    config = load_config("configs/tiny.py")
    config.face_train.init_from = str(start_from)
    config.face_train.motion_labels_only = True
    config.face_train.loss.lip_opening = 10.0
    config.face_train.warmup_steps = 0
    trainer = FaceTrainer(config)
    start = jax.jit(trainer.init_state)(jax.random.key(0))
    assert set(start.extra) == {"teacher_motion"}  # no discriminator in this mode
    total, terms = jax.jit(trainer.labels_loss)(start.params, start.extra["teacher_motion"], batch)
    assert float(terms["motion_kept"]) == 0.0 and float(terms["lip_opening"]) > 0.0
    step = jax.jit(trainer.step)
    after = start
    for _ in range(3):
        after, metrics = step(after, batch, jax.random.key(0))
    assert set(metrics) == {"loss", "loss/pose", "loss/lip_opening", "loss/motion_kept"}
    for part, group in after.params.items():
        same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(group), jax.tree.leaves(start.params[part])))
        assert same == (part != "motion"), part
    for a, b in zip(jax.tree.leaves(after.extra["teacher_motion"]), jax.tree.leaves(start.params["motion"])):
        np.testing.assert_array_equal(a, b)  # the reference stays the starting encoder
    _, moved = jax.jit(trainer.labels_loss)(after.params, after.extra["teacher_motion"], batch)
    assert float(moved["lip_opening"]) < float(terms["lip_opening"])

    config.face_train.init_from = ""
    with pytest.raises(ConfigError, match="motion_labels_only"):
        train_face(config, str(tmp_path / "none"), quiet=True)


def trained_enhancer(trainer, start, batch, adversarial=False):
    """Four enhancer_only steps; checks their metrics and that nothing but the enhancer moved."""
    step = jax.jit(trainer.step)
    after = start
    for _ in range(4):
        after, metrics = step(after, batch, jax.random.key(0))
    expected = {"loss", "psnr", "loss/reconstruction", "loss/perceptual", "loss/mouth"}
    if adversarial:
        expected |= {"discriminator", "loss/adversarial", "loss/feature_matching"}
    assert set(metrics) == expected
    assert all(np.isfinite(float(v)) for v in metrics.values())
    for tree in ("params", "ema_params"):
        for part, group in getattr(after, tree).items():
            old = jax.tree.leaves(start.params[part])
            same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(group), old))
            assert same == (part != "enhancer"), (tree, part)
    return after


def test_enhancer_only_trains_the_enhancer_alone_on_the_reconstruction(tmp_path):
    """face_train.enhancer_only (configs/toy128_enhancer.py): a new enhancer on init_from's warping model; only
    it changes, its reconstruction loss falls, and without an adversarial weight the step carries no
    discriminator; with one, the discriminator trains beside it on the reconstruction."""
    from pipeline_models import random_face_workdir

    start_from = tmp_path / "start"
    random_face_workdir(start_from, load_config("configs/tiny.py"))
    config = load_config("configs/tiny.py")
    config.face.image_size, config.face.enhancer_widths = 64, (8,)
    config.face_train.update(init_from=str(start_from), init_partial=True, enhancer_only=True, warmup_steps=0)
    config.face_train.loss.adversarial = 0.0
    trainer = FaceTrainer(config)
    assert "parts with fresh weights: enhancer" in trainer.init_report
    start = jax.jit(trainer.init_state)(jax.random.key(0))
    assert start.extra == {}
    source = FacePairSource(64, clip_seconds=config.data.clip_seconds)
    items = [source[i] for i in range(2)]
    batch = {k: np.stack([item[k] for item in items]) for k in items[0]}
    before, _ = jax.jit(trainer.enhancer_loss)(start.params, None, batch)
    after = trained_enhancer(trainer, start, batch)
    moved, _ = jax.jit(trainer.enhancer_loss)(after.params, None, batch)
    assert float(moved) < float(before)

    config.face_train.loss.adversarial = 0.5
    trainer = FaceTrainer(config)
    start = jax.jit(trainer.init_state)(jax.random.key(0))
    after = trained_enhancer(trainer, start, batch, adversarial=True)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(after.extra["disc_params"]),
                                                         jax.tree.leaves(start.extra["disc_params"])))

    config.face_train.motion_labels_only = True
    with pytest.raises(ConfigError, match="set one of them"):
        FaceTrainer(config)
    plain = load_config("configs/tiny.py")
    plain.face_train.update(init_from=str(start_from), enhancer_only=True)
    with pytest.raises(ConfigError, match="has no enhancer"):
        FaceTrainer(plain)
    plain.face_train.init_from = ""
    with pytest.raises(ConfigError, match="enhancer_only trains an enhancer"):
        train_face(plain, str(tmp_path / "none"), quiet=True)
