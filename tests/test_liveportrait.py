"""LivePortrait in JAX against upstream (recorded reference at reduced widths), its loaders and converter, and
the face interface and pipeline over it.

tests/data/liveportrait_small was recorded by tests/reference/liveportrait_parity.py --small --record from
upstream's own networks (random weights as float16 values, kept as a numpy archive that the tests lay out as
upstream's checkpoint files: tests/upstream_layout.py).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from liveportrait_models import tiny_liveportrait
from pipeline_models import speech, toy_portrait
from upstream_layout import unpack
from vasa_jax.face.liveportrait import LivePortrait, LivePortraitFaceModel, load_liveportrait
from vasa_jax.face.liveportrait.config import LivePortraitConfig, small, tiny
from vasa_jax.face.liveportrait.convert import convert
from vasa_jax.face.liveportrait.convert import main as convert_main
from vasa_jax.face.liveportrait.face_model import rotation_angles
from vasa_jax.face.liveportrait.framing import paste_size
from vasa_jax.face.registry import face_model
from vasa_jax.errors import ConfigError
from vasa_jax.io import CheckpointError, read_video

RECORDED = Path(__file__).parent / "data" / "liveportrait_small"
sys.path.insert(0, str(Path(__file__).parent / "reference"))
from liveportrait_parity import ours, strided  # noqa: E402


@pytest.fixture(scope="module")
def reference():
    with np.load(RECORDED / "reference.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def upstream_files(tmp_path_factory):
    """The recorded weights laid out as upstream's checkpoints (torch.save files), made here."""
    return unpack(RECORDED, tmp_path_factory.mktemp("liveportrait_small"))


@pytest.fixture(scope="module")
def loaded(upstream_files):
    return load_liveportrait(upstream_files, config=small())


def test_every_public_function_matches_upstream(loaded, reference):
    model, params = loaded
    inputs = {k[len("input_"):]: v.astype(np.float32) for k, v in reference.items() if k.startswith("input_")}
    got = ours(model, params, inputs)
    names = [k[len("output_"):] for k in reference if k.startswith("output_")]
    assert len(names) == 16
    for name in names:
        want = reference[f"output_{name}"]
        mine, stride = strided(name, got[name])
        assert stride == int(reference[f"stride_{name}"]) and mine.shape == want.shape, name
        scale = max(np.abs(want).max(), 1e-6)
        assert np.abs(mine - want).max() / scale < 1e-4, name
    assert np.abs(got["generate"][:, ::4, ::4] - reference["output_generate"]).max() < 1e-3


def test_bfloat16_image_stays_close(loaded, reference):
    """spade.py's precision policy (bfloat16 only in the SPADE modulation convs): 2.9e-3 from upstream measured at
    these widths; all of G in bfloat16 gave 1.5e-2."""
    model, params = loaded
    warped = reference["input_warped"].astype(np.float32)
    image = jax.jit(LivePortrait(model.config, dtype=jnp.bfloat16).generate)(params, warped)
    assert image.dtype == jnp.float32
    assert np.abs(np.asarray(image)[:, ::4, ::4] - reference["output_generate"]).max() < 6e-3


def test_converted_folder_loads_and_renders_without_torch(loaded, upstream_files, tmp_path):
    model, params = loaded
    out = convert(upstream_files, tmp_path / "converted", config=small())
    assert sorted(p.name for p in out.iterdir()) == ["liveportrait.json", "liveportrait.safetensors"]
    assert convert_main(["--weights", str(upstream_files), "--out", str(out)]) == 2  # never replaces without --overwrite
    script = ("import sys; sys.modules['torch'] = None\n"
              "import numpy as np, jax.numpy as jnp\n"
              "from vasa_jax.face.liveportrait import load_liveportrait\n"
              f"model, params = load_liveportrait({str(out)!r})\n"
              "w = jnp.asarray(np.linspace(-1, 1, 64 * 64 * 16).reshape(1, 64, 64, 16), jnp.float32)\n"
              "np.save(sys.argv[1], np.asarray(model.generate(params, w)))\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "image.npy")], capture_output=True,
                            text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr[-2000:]
    w = jnp.asarray(np.linspace(-1, 1, 64 * 64 * 16).reshape(1, 64, 64, 16), jnp.float32)
    np.testing.assert_allclose(np.load(tmp_path / "image.npy"), np.asarray(model.generate(params, w)), atol=1e-6)


def test_bad_weights_are_named(upstream_files, tmp_path):
    with pytest.raises(CheckpointError, match="holds no LivePortrait weights"):
        load_liveportrait(tmp_path)
    with pytest.raises(CheckpointError, match=r"appearance_feature_extractor.pth: missing key for resblocks_3d"):
        load_liveportrait(upstream_files)  # full-size networks, small files
    broken = tmp_path / "broken"
    for file in upstream_files.rglob("*.pth"):
        (broken / file.relative_to(upstream_files)).parent.mkdir(parents=True, exist_ok=True)
        (broken / file.relative_to(upstream_files)).write_bytes(file.read_bytes())
    state = torch.load(broken / "base_models/motion_extractor.pth", weights_only=True)
    state["detector.fc_kp.weight"] = state["detector.fc_kp.weight"][:-3]
    torch.save(state, broken / "base_models/motion_extractor.pth")
    with pytest.raises(CheckpointError, match=r"motion_extractor.pth: detector.fc_kp.weight has shape"):
        load_liveportrait(broken, config=small())
    (broken / "base_models/motion_extractor.pth").write_bytes((upstream_files / "base_models/motion_extractor.pth").read_bytes())
    (broken / "base_models/warping_module.pth").unlink()
    with pytest.raises(CheckpointError, match=r"warping_module.pth: not found"):
        load_liveportrait(broken, config=small())
    (broken / "base_models/spade_generator.pth").write_bytes(b"not a pickle")
    assert convert_main(["--weights", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_face_interface():
    face = LivePortraitFaceModel(tiny())
    params = face.init(jax.random.key(0))
    assert face_model(json.loads(json.dumps(face.manifest()))) == face
    assert (face.image_size, face.output_size, face.motion_dim, face.pose_dim) == (256, 512, 69, 6)
    image = jnp.asarray(toy_portrait(256)[None], jnp.float32) / 255.0
    f_s, source = jax.jit(face.encode_source)(params, image)
    motion = jax.jit(face.encode_motion)(params, image)
    assert f_s.shape == (1, 4, 64, 64, 16) and motion.shape == (1, 69)
    frames = jax.jit(face.decode)(params, f_s, source, motion)
    assert frames.shape == (1, 512, 512, 3) and 0 <= float(frames.min()) and float(frames.max()) <= 1
    # Driving with the source's own motion: upstream's relative motion gives the source back.
    rng = np.random.default_rng(0)
    driving = motion + jnp.asarray(rng.normal(0, [5, 5, 5, 0.02, 0.02, 0.02] + [0.01] * 63, (3, 69)), jnp.float32)
    relative = jax.jit(face.relative_motion)
    np.testing.assert_allclose(relative(motion, driving[:1], driving[:1]), motion, atol=1e-4)
    moved = relative(motion, driving[:1], driving)
    assert moved.shape == (3, 69) and np.abs(np.asarray(moved[1:] - moved[:1])).max() > 1e-3


def test_open_ratios_measure_eyes_and_lips():
    from vasa_jax.face.liveportrait.face_model import open_ratios

    points = np.zeros((68, 2))
    # Image-left eye 40 px wide with lids 10 px apart, the other 20 wide and 2 apart; mouth 50 wide, 15 open.
    points[[36, 39]] = [[0, 0], [40, 0]]
    points[[37, 38, 41, 40]] = [[13, -6], [27, -4], [13, 4], [27, 6]]
    points[[42, 45]] = [[60, 0], [80, 0]]
    points[[43, 44, 47, 46]] = [[66, -1], [74, -1], [66, 1], [74, 1]]
    points[[48, 54, 62, 66]] = [[15, 50], [65, 50], [40, 43], [40, 58]]
    eyes, lip = open_ratios(points * 3 + 7)  # where and how large the face is does not matter
    np.testing.assert_allclose(eyes, [0.25, 0.1], rtol=1e-5)
    np.testing.assert_allclose(lip, [0.3], rtol=1e-5)
    with pytest.raises(ValueError, match="68 landmarks"):
        open_ratios(points[:5])


def test_eye_and_lip_edits_are_the_retargeting_deltas():
    face = LivePortraitFaceModel(tiny())
    params = face.init(jax.random.key(0))
    image = jnp.asarray(toy_portrait(256)[None], jnp.float32) / 255.0
    f_s, source = face.encode_source(params, image)
    np.testing.assert_array_equal(source["edit"], 0)
    points = np.random.default_rng(2).uniform(0, 256, (68, 2))
    from vasa_jax.face.liveportrait.face_model import open_ratios

    eyes, lip = open_ratios(points)
    edited = face.edit_source(params, source, points, eye_ratio=0.6, lip_ratio=0.1)
    want = (face.model.retarget_eye(params, source["x_s"], jnp.asarray([[*eyes, 0.6]]))
            + face.model.retarget_lip(params, source["x_s"], jnp.asarray([[*lip, 0.1]])))
    np.testing.assert_allclose(edited["edit"], want, atol=1e-6)
    assert float(jnp.abs(want).max()) > 1e-3
    eye_only = face.edit_source(params, edited, points, eye_ratio=0.6)  # replaces the earlier edit
    np.testing.assert_allclose(eye_only["edit"], face.model.retarget_eye(params, source["x_s"],
                                                                         jnp.asarray([[*eyes, 0.6]])), atol=1e-6)
    # The delta is added to every frame's driving keypoints before stitching.
    motion = face.encode_motion(params, image)
    x_d = face.keypoints(source, motion) + edited["edit"]
    want_frames = face.model.generate(params, face.model.warp(
        params, f_s, source["x_s"], face.model.stitch(params, source["x_s"], x_d))["out"])
    np.testing.assert_allclose(face.decode(params, f_s, edited, motion), want_frames, atol=1e-5)


def test_rotation_angles_invert_the_rotation():
    from vasa_jax.face.liveportrait.camera import rotation_matrix

    rng = np.random.default_rng(1)
    pitch, yaw, roll = (jnp.asarray(rng.uniform(-60, 60, 8), jnp.float32) for _ in range(3))
    for got, want in zip(rotation_angles(rotation_matrix(pitch, yaw, roll)), (pitch, yaw, roll)):
        np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Stage 2 trained (2 steps) on LivePortrait's motion and exported with it: the face_model motion source
    with LivePortrait's weights (a converted folder, tiny networks) in place of a stage-1 workdir."""
    from vasa_jax.config import load_config
    from vasa_jax.pipeline import export_pipeline
    from vasa_jax.train.motion import train_motion

    root = tmp_path_factory.mktemp("lp_stage2")
    weights = tiny_liveportrait(root / "lp")
    config = load_config("configs/tiny.py")
    config.motion_data.cache_dir = str(root / "cache")
    config.motion_data.source, config.motion_data.face_workdir = "face_model", str(weights)
    config.motion_data.train_clips = 2
    config.motion_train.steps, config.motion_train.checkpoint_every = 2, 2
    train_motion(config, str(root / "motion"), quiet=True)
    return root, export_pipeline(weights, root / "motion", root / "pipeline")


def test_stage_two_trains_on_liveportrait_motion_and_exports_a_pipeline(trained):
    from vasa_jax.pipeline import load_pipeline
    from vasa_jax.train.motion import load_motion_checkpoint

    root, out = trained
    _, motion, _ = load_motion_checkpoint(str(root / "motion"))
    assert motion.motion_dim == 69
    assert json.loads((out / "pipeline.json").read_text())["face"]["implementation"] == "liveportrait"
    assert load_pipeline(out).face == LivePortraitFaceModel(tiny())


def test_pipeline_pastes_back_and_drives(trained, tmp_path):
    from vasa_jax.io import write_video
    from vasa_jax.pipeline import load_pipeline

    pipeline = load_pipeline(trained[1], decode_batch=4)  # few frames: no rendering of padding
    photo = np.zeros((400, 300, 3), np.uint8) + 90
    photo[136:264, 86:214] = toy_portrait(128)
    audio = speech(0.32)
    report = pipeline.write(tmp_path / "talk.mp4", photo, audio)
    frames = read_video(report.path).frames
    assert frames.shape == (8, *paste_size(400, 300), 3) == (8, 400, 300, 3)
    assert report.motion.shape == (8, 69)
    assert np.abs(frames[:, :12, :12].astype(float) - 90).mean() < 3  # outside the crop the photo stays
    square = pipeline.write(tmp_path / "crop.mp4", photo, audio, pasteback=False)
    assert read_video(square.path).frames.shape[1:] == (512, 512, 3)
    write_video(tmp_path / "drive.mp4", np.repeat(toy_portrait(128)[None], 5, 0), fps=25)
    driven = pipeline.write(tmp_path / "driven.mp4", photo, None, drive=tmp_path / "drive.mp4")
    assert driven.num_frames == 5
    # A still driving video (up to its H.264 noise) holds the portrait still.
    np.testing.assert_allclose(driven.motion, np.repeat(driven.motion[:1], 5, 0), atol=0.05)
    posed = pipeline.generate(photo, audio, pose_from=driven.motion, pasteback=False)
    np.testing.assert_allclose(posed.motion[:, :6], driven.motion[[0, 1, 2, 3, 4, 3, 2, 1], :6], atol=1e-5)
    # Eye / lip edits: the same motion, other frames; a bad ratio is a ConfigError before any work.
    plain = pipeline.generate(photo, audio, pasteback=False)
    edited = pipeline.generate(photo, audio, pasteback=False, eye_ratio=0.1, lip_ratio=0.7)
    np.testing.assert_array_equal(edited.motion, plain.motion)
    assert np.abs(edited.frames.astype(float) - plain.frames).mean() > 0.1
    with pytest.raises(ConfigError, match="lip_ratio must be a number in"):
        pipeline.settings(lip_ratio=1.5)


def test_sample_cli_drives_a_photo(trained, tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import sample
    from vasa_jax.io import save_image, write_video

    photo = np.zeros((400, 300, 3), np.uint8) + 90
    photo[136:264, 86:214] = toy_portrait(128)
    save_image(tmp_path / "photo.png", photo)
    write_video(tmp_path / "drive.mp4", np.repeat(toy_portrait(128)[None], 3, 0), fps=25, audio=speech(0.12))
    out = tmp_path / "out.mp4"
    assert sample.main(["--image", str(tmp_path / "photo.png"), "--drive", str(tmp_path / "drive.mp4"),
                        "--checkpoint", str(trained[1]), "--out", str(out), "--quiet"]) == 0
    assert read_video(out).frames.shape == (3, 400, 300, 3)
    assert sample.main(["--drive", str(tmp_path / "drive.mp4"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "give --image too" in capsys.readouterr().err


def test_full_size_config_round_trips():
    config = LivePortraitConfig()
    assert LivePortraitConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
