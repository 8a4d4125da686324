"""`python -m vasa_jax.eval` (vasa_jax.eval.evaluate) on toy-world clips whose answers are known."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa_jax.data.motion_data import toy_truth_motion
from vasa_jax.data.toyworld import make_clip, pose_vectors
from vasa_jax.eval import capp as capp_lib
from vasa_jax.eval.evaluate import evaluate_video, main, pose_reader
from vasa_jax.eval.signals import delta_p
from vasa_jax.io import save_audio

SECONDS, SIZE = 3.2, 128  # 80 frames: one CAPP window and a bit


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    clip = make_clip(3, identity=1_000_005, seconds=SECONDS, size=SIZE)
    clip.write(root / "clip.mp4")
    np.save(root / "motion.npy", toy_truth_motion(clip.truth))
    frozen = toy_truth_motion(clip.truth)
    frozen[:, :6] = frozen[0, :6]  # the head never moves; lips and gaze as in the clip
    np.save(root / "frozen.npy", frozen)
    save_audio(root / "early.wav", clip.audio[2 * 640:])  # the speech 2 frames early: the video trails it
    config = capp_lib.PRESETS["tiny"][0]  # untrained: scores are arbitrary, the plumbing is what is tested
    capp_lib.Capp(config, capp_lib.init_params(config, jax.random.key(0), 80), np.zeros(80), np.ones(80)).save(
        root / "capp")
    (root / "junk.npz").write_bytes(b"junk")
    return root, clip


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out


def test_video_against_itself(files, capsys):
    root, clip = files
    code, out = run(capsys, "--video", root / "clip.mp4", "--reference", root / "clip.mp4", "--truth",
                    root / "clip.truth.npz", "--motion", root / "motion.npy", "--capp", root / "capp",
                    "--json", root / "self.json", "--plots", root / "plots", "--detect-every", "10")
    assert code == 0, out.err
    m = json.loads((root / "self.json").read_text())
    assert m == json.loads(out.out)
    assert m["frames"] == 80 and m["face_found_fraction"] >= 0.8
    assert m["landmarks"]["lmd_face"] == 0.0 and m["landmarks"]["lmd_mouth"] == 0.0
    assert m["identity"]["csim"] == pytest.approx(1.0, abs=1e-6) and m["identity"]["against"] == "reference frames"
    truth_dp = delta_p(pose_vectors(clip.truth))
    assert m["pose"]["source"] == "motion" and m["pose"]["delta_p"] == pytest.approx(truth_dp, rel=1e-6)
    assert m["pose_truth"]["delta_p"] == pytest.approx(truth_dp, rel=1e-6)
    toy = m["toy"]
    assert toy["toy_pose_error_deg"] == 0.0 and toy["toy_gaze_error_deg"] == 0.0
    assert toy["toy_mouth_correlation"] == pytest.approx(1.0)
    assert m["sync"]["mouth_source"] == "landmarks" and m["sync"]["sync_lag_frames"] == 0
    assert m["sync"]["sync_correlation"] > 0.3 and m["sync_truth"]["sync_lag_frames"] == 0
    assert m["sync_reference"] == {k: v for k, v in m["sync"].items() if k != "mouth_source"}
    assert set(m["capp"]) == {"generated", "truth"} and m["capp"]["generated"] == pytest.approx(m["capp"]["truth"])
    assert set(m["not_computed"]) == {"syncnet", "fid", "fvd"}
    for name in ("mouth.png", "pose.png"):
        assert (root / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shifted_audio_and_frozen_pose(files, capsys):
    root, clip = files
    code, out = run(capsys, "--video", root / "clip.mp4", "--audio", root / "early.wav", "--motion",
                    root / "frozen.npy", "--truth", root / "clip.truth.npz", "--no-faces")
    assert code == 0, out.err
    m = json.loads(out.out)
    assert m["sync"]["mouth_source"] == "motion" and m["sync"]["sync_lag_frames"] == 2
    assert m["pose"]["delta_p"] == 0.0 and m["pose"]["yaw_std"] == 0.0
    first = pose_vectors(clip.truth)[0, :3]
    assert m["toy"]["toy_pose_error_deg"] == pytest.approx(np.abs(pose_vectors(clip.truth)[:, :3] - first).mean(),
                                                           rel=1e-5)
    assert "landmarks" in m["not_computed"] and "identity" in m["not_computed"]


@pytest.mark.parametrize("args, message", [
    (["--video", "{root}/missing.mp4"], "missing.mp4: not found (--video)"),
    (["--video", "{root}/clip.truth.npz", "--no-faces"], "clip.truth.npz"),
    (["--video", "{root}/clip.mp4", "--truth", "{root}/junk.npz"], "junk.npz: cannot be read"),
    (["--video", "{root}/clip.mp4", "--capp", "{root}/plots0"], "plots0: not a folder (--capp)"),
    (["--video", "{root}/clip.mp4", "--capp", "{root}"], "not a CAPP model folder"),
    (["--video", "{root}/clip.mp4", "--motion", "{root}/clip.truth.npz"], "clip.truth.npz: not usable as toy"),
    (["--video", "{root}/clip.mp4", "--syncnet", "nomodule_xyz:embed"], "cannot import nomodule_xyz"),
    (["--video", "{root}/clip.mp4", "--max-lag", "-1"], "--max-lag >= 0"),
])
def test_user_errors_are_one_line(files, capsys, args, message):
    root, _ = files
    code, out = run(capsys, *[a.format(root=root) for a in args])
    assert code == 2
    assert message in out.err and len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err


class BrightnessFace:
    """A FaceModel whose motion encoder reads yaw as 100 x the image's mean brightness, pitch as its size."""

    image_size = 16
    motion_dim = 8

    def encode_motion(self, params, image):
        yaw = 100 * image.mean(axis=(1, 2, 3))
        return jnp.stack([yaw, jnp.full_like(yaw, image.shape[1]), jnp.zeros_like(yaw)], 1) @ jnp.eye(3, 8) + params


def test_pose_reader_and_syncnet_hook():
    levels = np.linspace(0, 255, 20).round().astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (20, 32, 32, 3)).copy()  # 20 frames: two batches
    angles = pose_reader(BrightnessFace(), 0.0)(frames)
    np.testing.assert_allclose(angles[:, 0], 100 * levels.astype(np.float64) / 255, atol=1e-3)
    np.testing.assert_allclose(angles[:, 1], 16)
    features = np.random.default_rng(0).normal(size=(20, 4))
    syncnet = lambda f, a: (features[: len(f)], np.roll(features, 2, axis=0)[: len(f)])  # noqa: E731 - audio late
    m, series = evaluate_video(frames, np.zeros(20 * 640, np.float32), read_pose=pose_reader(BrightnessFace(), 0.0),
                               syncnet=syncnet)
    assert m["pose"]["source"] == "face_model" and m["pose"]["yaw_delta"] == pytest.approx(100 / 19, rel=0.02)
    assert m["syncnet"]["syncnet_offset_frames"] == -2
    np.testing.assert_allclose(series["pose"]["generated"], angles)
