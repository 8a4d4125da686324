"""The stage-1 evaluation's metrics on a model whose answers are known (no training needed)."""

import jax.numpy as jnp
import numpy as np
import pytest

from vasa_jax.data import toyworld
from vasa_jax.data.face_pairs import FacePairSource
from vasa_jax.face.evaluate import (MOUTH_RESPONSE_OPENINGS, evaluate_face, heldout_examples, mouth_response,
                                    readout_correlation)


class CopySource:
    """A FaceModel that ignores motion: it returns the source image, and reads every pose as frontal."""

    image_size = 32
    motion_dim = 8

    def encode_source(self, params, image):
        return image, jnp.zeros((image.shape[0], 1))

    def encode_motion(self, params, image):
        return jnp.zeros((image.shape[0], self.motion_dim)) + params

    def decode(self, params, v_app, z_id, motion):
        return v_app


@pytest.fixture(scope="module")
def examples():
    return heldout_examples(32, 4, clip_seconds=1.0)


def psnr(a, b):
    return float(np.mean([-10 * np.log10(np.mean((x - y) ** 2)) for x, y in zip(a, b)]))


def test_heldout_examples_and_exact_transfer_targets(examples):
    source = FacePairSource(32, split="heldout", clip_seconds=1.0)
    assert examples["transfer_target"].shape == (4, 32, 32, 3)
    plan = source.plan(2)
    assert plan.identity in toyworld.HELDOUT_IDENTITIES and plan.other_identity in toyworld.HELDOUT_IDENTITIES
    # The target is the source person in the other person's pose: its pose is the other's.
    _, truth = toyworld.perform(plan.other_clip, identity=plan.other_identity, seconds=1.0, audio=False)
    np.testing.assert_allclose(examples["other_pose"][2], toyworld.pose_vectors(truth)[plan.other_frame], rtol=1e-6)


def test_metrics_have_the_known_values(examples):
    metrics, outputs = evaluate_face(CopySource(), 0.0, examples, batch_size=2)
    source, driver, target = (examples[k] / 255.0 for k in ("source", "driver", "transfer_target"))
    assert metrics["pairs"] == 4
    np.testing.assert_allclose(outputs["recon"], source, atol=1e-6)
    assert metrics["self_psnr"] == pytest.approx(psnr(source, driver), rel=1e-4)
    assert metrics["cross_psnr"] == pytest.approx(psnr(source, target), rel=1e-4)
    # Every pose read as frontal: the errors are the true angles' magnitudes.
    true_driver, true_other = examples["driver_pose"][:, :3], examples["other_pose"][:, :3]
    assert metrics["encoder_pose_error_deg"] == pytest.approx(np.abs(true_driver).mean(), rel=1e-5)
    assert metrics["cross_yaw_error_deg"] == pytest.approx(np.abs(true_other[:, 0]).mean(), rel=1e-5)
    # A model that reads a 10 degree offset into every angle is scored by it.
    shifted, _ = evaluate_face(CopySource(), 10.0, examples, batch_size=2)
    assert shifted["encoder_pose_error_deg"] == pytest.approx(np.abs(true_driver - 10).mean(), rel=1e-5)
    assert 0 < metrics["self_ssim"] <= 1
    # The mouth PSNR is the PSNR over each driver's mouth region; motion that carries nothing reads out nothing.
    size = source.shape[1]
    centres = (np.arange(size) + 0.5) / size
    regions = []
    for b, (x0, y0, x1, y1) in enumerate(examples["driver_mouth"]):
        rows, cols = (centres >= y0) & (centres <= y1), (centres >= x0) & (centres <= x1)
        regions.append((source[b][rows][:, cols], driver[b][rows][:, cols]))
    assert metrics["self_mouth_psnr"] == pytest.approx(psnr(*zip(*regions)), rel=1e-4)
    assert metrics["mouth_readout_r"] == 0.0


def test_the_mouth_readout_finds_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    target = rng.uniform(size=400)
    noise = rng.normal(size=(400, 16))
    carried = noise + np.outer(target, 4 * rng.normal(size=16))  # about 0.98 at best with this noise
    assert readout_correlation(carried, target) > 0.95
    assert abs(readout_correlation(noise, target)) < 0.2


def test_too_few_examples_is_an_error(examples):
    with pytest.raises(ValueError, match="at least batch_size"):
        evaluate_face(CopySource(), 0.0, {k: v[:1] for k, v in examples.items()}, batch_size=2)


class ShowDriver(CopySource):
    """A FaceModel whose motion is the driving image itself, and whose render mixes it with the source:
    `params` of the driver, the rest of the source (1: the driver exactly)."""

    motion_dim = 32 * 32 * 3

    def encode_motion(self, params, image):
        return image.reshape(image.shape[0], -1)

    def decode(self, params, v_app, z_id, motion):
        return params * motion.reshape(v_app.shape) + (1 - params) * v_app


def test_the_mouth_response_is_the_fraction_of_the_true_mouth_change_the_render_shows():
    keys = {f"mouth_response_{opening:g}" for opening in MOUTH_RESPONSE_OPENINGS}
    for weight in (0.0, 0.5, 1.0):  # the source only (the mouth never moves), half way, the driver exactly
        response = mouth_response(ShowDriver(), weight, identities=2)
        assert set(response) == keys
        for value in response.values():
            assert value == pytest.approx(weight, abs=1e-5)
    # The true change drawn in the wrong place (a sixth of the image lower) counts for about nothing.
    misplaced = ShowDriver()
    misplaced.decode = lambda params, v_app, z_id, motion: v_app + jnp.roll(motion.reshape(v_app.shape) - v_app, 6, 1)
    for value in mouth_response(misplaced, 0.0, identities=2).values():
        assert abs(value) < 0.2
