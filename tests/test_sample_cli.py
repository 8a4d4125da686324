"""sample.py, the main-job command, in process on a tiny random pipeline: the video it writes, its flags, the
demo, streaming, and one-line errors with exit code 2 for bad input."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline_models import speech, tiny_checkpoint, toy_portrait
from vasa_jax import pipeline as pipeline_package
from vasa_jax.io import probe_video, save_audio, save_image
from vasa_jax.pipeline import load_motion_file
from vasa_jax.pipeline import pipeline as pipeline_module

_spec = importlib.util.spec_from_file_location("sample", Path(__file__).resolve().parent.parent / "sample.py")
sample = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sample)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    save_image(folder / "portrait.png", toy_portrait())
    save_audio(folder / "speech.wav", speech(1.0))
    return {"checkpoint": str(tiny_checkpoint()), "image": str(folder / "portrait.png"),
            "audio": str(folder / "speech.wav"), "folder": folder}


def run(files, *extra, **flags):
    argv = ["--checkpoint", files["checkpoint"], "--quiet"]
    for name in ("image", "audio"):
        if flags.get(name, files[name]) is not None:
            argv += [f"--{name}", str(flags.get(name, files[name]))]
    return sample.main(argv + [str(e) for e in extra])


def test_writes_the_video_and_never_overwrites(files, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert run(files, "--out", out) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    info = probe_video(out)
    assert (info.width, info.fps, info.num_frames, info.has_audio) == (32, 25.0, 25, True)
    assert "AI-generated" in info.metadata["comment"]
    before = out.read_bytes()
    assert run(files, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out}: already exists" in err and "Traceback" not in err
    assert out.read_bytes() == before
    assert run(files, "--out", out, "--overwrite", "--seed", 1) == 0


def test_controls_and_motion_files(files, tmp_path):
    out, motion = tmp_path / "sub" / "controls.mp4", tmp_path / "motion.npz"
    assert run(files, "--out", out, "--gaze", "none", "--distance", "1.1", "--emotion", "0.5", "--cfg-audio", "0",
               "--cfg-gaze", "2", "--steps", "2", "--sampler", "ddpm", "--seed", "3", "--no-crop", "--size", "48",
               "--save-motion", motion) == 0
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames) == (48, 48, 25)
    saved = load_motion_file(motion)
    assert saved.shape[0] == 25
    assert run(files, "--out", tmp_path / "posed.mp4", "--pose-from", motion, "--save-motion",
               tmp_path / "posed.npy") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "posed.npy")[:, :6], saved[:, :6])


def test_stream_prints_latency_and_speed(files, tmp_path, capsys):
    assert run(files, "--out", tmp_path / "live.mp4", "--stream") == 0
    err = capsys.readouterr().err
    assert "first frame" in err and "ms after the first audio chunk" in err and "frames/s" in err
    assert probe_video(tmp_path / "live.mp4").num_frames == 25
    # Online: the speech at its real pace, every frame's latency from its speech arriving.
    assert run(files, "--out", tmp_path / "online.mp4", "--stream", "--online", "--hop", "2", "--lookahead", "1") == 0
    err = capsys.readouterr().err
    assert "online (hop 2, lookahead 1)" in err and "95th percentile" in err
    assert probe_video(tmp_path / "online.mp4").num_frames == 25


def test_the_demo_writes_a_fresh_file(files, tmp_path, monkeypatch, capsys):
    bundle = tmp_path / "demo"
    shutil.copytree(files["checkpoint"], bundle)
    shutil.copy(files["image"], bundle / "portrait.png")
    shutil.copy(files["audio"], bundle / "speech.wav")
    monkeypatch.setattr(pipeline_package, "bundled_demo_dir", lambda: bundle)
    monkeypatch.setattr(pipeline_module, "bundled_demo_dir", lambda: bundle)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vasa_jax_demo.mp4").write_bytes(b"somebody's video")
    assert sample.main([]) == 0
    out = capsys.readouterr().out
    assert "wrote vasa_jax_demo-1.mp4" in out and "demo" in out
    assert probe_video(tmp_path / "vasa_jax_demo-1.mp4").num_frames == 25
    assert (tmp_path / "vasa_jax_demo.mp4").read_bytes() == b"somebody's video"
    monkeypatch.setattr(pipeline_package, "bundled_demo_dir", lambda: tmp_path / "missing")
    assert sample.main([]) == 2
    assert "bundled demo is not in this installation" in capsys.readouterr().err


def test_bad_input_is_one_line_and_exit_code_2(files, tmp_path, capsys):
    folder = tmp_path
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (folder / "notes.wav").write_text("not audio at all\n" * 10)
    save_audio(folder / "empty.wav", np.zeros(0, np.float32))
    y, x = np.mgrid[:96, :96]
    save_image(folder / "wall.png", np.stack([x * 2, y * 2, x + y], -1).astype(np.uint8))
    save_image(folder / "tiny.png", toy_portrait()[:40, :40])
    (folder / "afile").write_text("x")
    out = ["--out", folder / "o.mp4"]
    cases = [
        (dict(image=folder / "missing.png"), out, "missing.png: file not found"),
        (dict(image=folder / "corrupt.png"), out, "corrupt.png"),
        (dict(image=folder / "wall.png"), out, "wall.png: no face found"),
        (dict(image=folder / "tiny.png"), out, "tiny.png: image is 40x40 pixels"),
        (dict(audio=folder / "notes.wav"), out, "notes.wav"),
        (dict(audio=folder / "empty.wav"), out, "empty.wav"),
        (dict(audio=None), out, "give both --image and --audio"),
        ({}, ["--out", folder / "afile" / "o.mp4"], "cannot be written"),
        ({}, ["--out", folder / "o.gif"], "must be a video file"),
        ({}, out + ["--gaze", "10"], "--gaze: expected 2 comma-separated numbers"),
        ({}, out + ["--size", "33"], "size must be an even number"),
        ({}, out + ["--steps", "0"], "steps must be a whole number"),
        ({}, out + ["--pose-from", folder / "nopose.mp4"], "nopose.mp4: file not found"),
        ({}, out + ["--pose-from", folder / "notes.wav"], "notes.wav"),
        ({}, out + ["--save-motion", folder / "m.csv"], "m.csv: a motion file must end in .npz"),
        ({}, out + ["--checkpoint", folder / "nockpt"], "nockpt: checkpoint folder not found"),
    ]
    for flags, extra, message in cases:
        assert run(files, *extra, **flags) == 2, message
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, (message, err)
    assert not (folder / "o.mp4").exists()


def test_several_faces_are_noted(files, tmp_path, capsys):
    big, small = toy_portrait(192, 1000), toy_portrait(112, 1002)
    canvas = np.empty((192, 320, 3), np.uint8)
    canvas[:] = big[:1, :1]
    canvas[:, 192:] = np.pad(small, ((40, 40), (8, 8), (0, 0)), mode="edge")
    canvas[:, :192] = big
    save_image(tmp_path / "two.png", canvas)
    assert run(files, "--out", tmp_path / "two.mp4", image=tmp_path / "two.png") == 0
    assert "2 faces found; animating the largest" in capsys.readouterr().err
