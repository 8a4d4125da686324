"""The pipeline checkpoint (vasa_jax.pipeline.checkpoint): export from two workdirs, the loader's checks, the
export command and the bundled demo."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

import vasa_jax
from pipeline_models import tiny_checkpoint
from vasa_jax.errors import ConfigError
from vasa_jax.io import CheckpointError, load_audio, load_image
from vasa_jax.io.weights import flatten
from vasa_jax.pipeline import bundled_demo_dir, export_pipeline, read_pipeline_checkpoint
from vasa_jax.pipeline import pipeline as pipeline_module
from vasa_jax.pipeline.checkpoint import DEMO_SIZE_LIMIT, folder_size
from vasa_jax.pipeline.export import main as export_main
from vasa_jax.train.face import load_face_checkpoint
from vasa_jax.train.motion import load_motion_checkpoint


@pytest.fixture(scope="module")
def checkpoint():
    return tiny_checkpoint()


@pytest.fixture(scope="module")
def workdirs(checkpoint):
    return checkpoint.parent / "face", checkpoint.parent / "motion"


def _equal_trees(a, b, **tolerance):
    fa, fb = flatten(jax.tree.map(np.asarray, a)), flatten(jax.tree.map(np.asarray, b))
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_allclose(fa[k], fb[k], err_msg=k, **tolerance)


def test_export_carries_the_ema_params_and_configs(checkpoint, workdirs):
    ckpt = read_pipeline_checkpoint(checkpoint)
    _, face, face_params = load_face_checkpoint(str(workdirs[0]))
    _, motion, motion_params = load_motion_checkpoint(str(workdirs[1]))
    assert ckpt.face == face and ckpt.generator.config == motion and ckpt.manifest["audio"] == {"encoder": "mel"}
    _equal_trees(ckpt.face_params, face_params, rtol=0, atol=0)
    _equal_trees(ckpt.generator.params, motion_params, rtol=0, atol=0)
    manifest = json.loads((checkpoint / "pipeline.json").read_text())
    assert manifest["vasa_jax_version"] == vasa_jax.__version__ and manifest["sources"]["face_step"] == 0
    assert manifest["weights_dtype"] == "float32"


def test_float16_storage_halves_the_size(checkpoint, workdirs, tmp_path):
    small = export_pipeline(*workdirs, tmp_path / "half", dtype="float16")
    assert folder_size(small) < 0.6 * folder_size(checkpoint)
    a, b = read_pipeline_checkpoint(checkpoint), read_pipeline_checkpoint(small)
    assert all(v.dtype == np.float32 for v in flatten(b.face_params).values())  # upcast on load
    _equal_trees(b.face_params, a.face_params, rtol=1e-3, atol=1e-4)
    _equal_trees(b.generator.params["stats"], a.generator.params["stats"], rtol=0, atol=0)  # statistics stay float32
    with pytest.raises(ConfigError, match="already exists"):
        export_pipeline(*workdirs, small)


def test_export_refuses_a_motion_model_of_other_motion(workdirs, tmp_path):
    face, motion = workdirs
    for source, face_workdir, message in (("toy_truth", str(face), "toy_truth"),
                                          ("face_model", str(tmp_path / "other_face"), "trained on the motion of")):
        copy = tmp_path / f"motion_{source}"
        shutil.copytree(motion, copy)
        config = json.loads((copy / "config.json").read_text())
        config["motion_data"].update(source=source, face_workdir=face_workdir)
        (copy / "config.json").write_text(json.dumps(config))
        with pytest.raises(ConfigError, match=message):
            export_pipeline(face, copy, tmp_path / f"out_{source}")
    with pytest.raises(ConfigError, match="not a training workdir"):
        export_pipeline(face, tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(ConfigError, match="no checkpoint of step 7"):
        export_pipeline(face, motion, tmp_path / "out", face_step=7)
    # By default the face step the stage-2 run recorded is exported (not the face workdir's latest).
    copy = tmp_path / "motion_step"
    shutil.copytree(motion, copy)
    config = json.loads((copy / "config.json").read_text())
    config["motion_data"]["face_step"] = 5
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="no checkpoint of step 5"):
        export_pipeline(face, copy, tmp_path / "out")


def test_unknown_or_corrupt_checkpoints_are_named(checkpoint, workdirs, tmp_path):
    with pytest.raises(CheckpointError, match="nowhere: checkpoint folder not found"):
        vasa_jax.load_pipeline(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty: not a vasa-jax pipeline checkpoint"):
        vasa_jax.load_pipeline(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="a training workdir: export it first"):
        vasa_jax.load_pipeline(workdirs[0])

    def broken(name, edit):
        copy = tmp_path / name
        shutil.copytree(checkpoint, copy)
        edit(copy)
        return copy

    def truncate(folder):
        data = (folder / "face.safetensors").read_bytes()
        (folder / "face.safetensors").write_bytes(data[: len(data) // 2])

    def manifest(change):
        def edit(folder):
            m = json.loads((folder / "pipeline.json").read_text())
            change(m)
            (folder / "pipeline.json").write_text(json.dumps(m))
        return edit

    cases = [
        (broken("truncated", truncate), "face.safetensors: cannot be read as safetensors"),
        (broken("no_motion", lambda f: (f / "motion.safetensors").unlink()), "motion.safetensors: not found"),
        (broken("bad_json", lambda f: (f / "pipeline.json").write_text("{")), "pipeline.json: is not valid JSON"),
        (broken("future", manifest(lambda m: m.update(format_version=99))), "format version 99"),
        (broken("resized", manifest(lambda m: m["face"]["config"].update(dyn_dim=9))), "face.safetensors: .* needs"),
        (broken("no_face", manifest(lambda m: m.pop("face"))), "pipeline.json: describes no usable model"),
        (broken("wav2vec2", manifest(lambda m: m.update(audio={"encoder": "wav2vec2", "checkpoint": "w2v"}))),
         "w2v: the audio encoder checkpoint"),
    ]
    for folder, message in cases:
        with pytest.raises(CheckpointError, match=message):
            vasa_jax.load_pipeline(folder)


def test_a_missing_bundle_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(pipeline_module, "bundled_demo_dir", lambda: tmp_path)
    with pytest.raises(CheckpointError, match="bundled demo model is not in this installation"):
        vasa_jax.load_pipeline()


@pytest.mark.skipif(not (bundled_demo_dir() / "pipeline.json").is_file(), reason="the demo model is not bundled yet")
def test_the_bundled_demo_fits_and_loads():
    folder = bundled_demo_dir()
    assert folder_size(folder) <= DEMO_SIZE_LIMIT
    pipeline = vasa_jax.load_pipeline()
    assert pipeline.portrait(folder / "portrait.png").faces == 1
    assert load_audio(folder / "speech.wav").size > 16000 and load_image(folder / "portrait.png").shape[0] >= 64


def test_export_command(workdirs, tmp_path, capsys):
    out = tmp_path / "demo"
    assert export_main(["--face", str(workdirs[0]), "--motion", str(workdirs[1]), "--out", str(out), "--demo"]) == 0
    assert "wrote" in capsys.readouterr().out
    pipeline = vasa_jax.load_pipeline(out)
    portrait = pipeline.portrait(out / "portrait.png")  # the detector finds the demo face
    assert portrait.faces == 1 and load_audio(out / "speech.wav").size == 8 * 16000
    assert folder_size(out) < DEMO_SIZE_LIMIT
    umask = os.umask(0)
    os.umask(umask)
    assert {f.stat().st_mode & 0o777 for f in out.iterdir()} == {0o666 & ~umask}  # it ships to other users
    assert export_main(["--face", str(workdirs[0]), "--motion", str(workdirs[1]), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_pipeline_checkpoints_face_can_drive_stage_two(checkpoint, tmp_path):
    """motion_data.face_workdir may be a pipeline folder (e.g. retraining the bundled demo's motion model)."""
    from vasa_jax.config import load_config
    from vasa_jax.data.motion_data import PUBLIC_FACE_STEP, load_face_source
    from vasa_jax.data.motion_data import MotionSource as Source
    from vasa_jax.face.registry import is_public_face

    ckpt = read_pipeline_checkpoint(checkpoint)
    assert is_public_face(checkpoint) and not is_public_face(tmp_path)
    face, params = load_face_source(str(checkpoint), PUBLIC_FACE_STEP)
    assert face == ckpt.face
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(ckpt.face_params)):
        np.testing.assert_array_equal(got, want)
    config = load_config("configs/tiny.py")
    config.motion_data.source, config.motion_data.face_workdir = "face_model", str(checkpoint)
    assert Source(config, "train").face_step == PUBLIC_FACE_STEP


def test_a_new_renderer_takes_over_a_pipelines_motion_model(checkpoint, tmp_path, capsys):
    """export --motion-from: a face run that kept the pipeline's motion encoder frozen (configs/toy128.py) gets
    that pipeline's motion model; one whose motion encoder moved is refused."""
    from pipeline_models import _save
    from vasa_jax.config import load_config
    from vasa_jax.train.face import FaceTrainer

    ckpt = read_pipeline_checkpoint(checkpoint)
    config = load_config("configs/tiny.py")
    trainer = FaceTrainer(config)
    blank = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), jax.eval_shape(trainer.init_state, jax.random.key(0)))

    def face_run(name, moved_parts):
        params = {part: jax.tree.map(lambda x: np.asarray(x) + (0.01 if part in moved_parts else 0.0), group)
                  for part, group in ckpt.face_params.items()}
        _save(tmp_path / name, config, blank.replace(params=params, ema_params=params))
        return tmp_path / name, params

    renderer, params = face_run("renderer", ("appearance", "decoder"))
    out = tmp_path / "new"
    assert export_main(["--face", str(renderer), "--motion-from", str(checkpoint), "--out", str(out)]) == 0
    new = read_pipeline_checkpoint(out)
    _equal_trees(new.face_params, params)
    assert (out / "motion.safetensors").read_bytes() == (checkpoint / "motion.safetensors").read_bytes()
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest["motion"] == ckpt.manifest["motion"]
    assert manifest["sources"]["motion_from"] == str(checkpoint.resolve())
    assert manifest["sources"]["face_workdir"] == str(renderer.resolve())

    drifted, _ = face_run("drifted", ("motion",))
    capsys.readouterr()
    assert export_main(["--face", str(drifted), "--motion-from", str(checkpoint), "--out", str(tmp_path / "x")]) == 2
    assert "motion encoder differs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert export_main(["--face", str(renderer), "--motion-from", str(checkpoint), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
