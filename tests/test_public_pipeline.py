"""The public-weights pipeline: LivePortrait's face model and JoyVASA's motion generator imported into one
pipeline checkpoint (reduced widths: JoyVASA's recorded upstream-layout files of tests/data, LivePortrait's tiny
networks with random weights), generating and
streaming through the same Pipeline as VASA's models, the controls JoyVASA lacks refused, and the hub fetch
offline."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from liveportrait_models import tiny_liveportrait
from pipeline_models import speech, toy_portrait
from upstream_layout import unpack
from vasa_jax.audio.features import num_frames
from vasa_jax.errors import ConfigError
from vasa_jax.motion.joyvasa.generator import LEAD_FRAMES, to_face_layout
from vasa_jax.pipeline import load_pipeline
from vasa_jax.pipeline.import_public import HUB, fetch_from_hub, import_public
from vasa_jax.pipeline.import_public import main as import_main

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("public")
    face = tiny_liveportrait(root / "liveportrait")
    joyvasa = unpack(DATA / "joyvasa_small", root / "joyvasa")
    return import_public(face, joyvasa, joyvasa / "hubert", root / "pipeline")


def test_import_writes_one_pipeline_checkpoint(checkpoint, tmp_path):
    manifest = json.loads((checkpoint / "pipeline.json").read_text())
    assert manifest["face"]["implementation"] == "liveportrait"
    assert manifest["motion"] == {"implementation": "joyvasa", "folder": "joyvasa"}
    assert sorted(p.name for p in checkpoint.iterdir()) == ["face.safetensors", "joyvasa", "pipeline.json"]
    assert import_main(["--liveportrait", str(checkpoint), "--joyvasa", str(checkpoint.parent / "joyvasa"),
                        "--out", str(tmp_path / "x")]) == 2  # a pipeline folder holds no LivePortrait weights
    assert not (tmp_path / "x").exists()


def test_generate_and_stream_with_joyvasa_and_liveportrait(checkpoint):
    pipeline = load_pipeline(checkpoint, decode_batch=4)
    assert (pipeline.generator.name, pipeline.face.name) == ("joyvasa", "liveportrait")
    audio = speech(0.5)
    video = pipeline.generate(toy_portrait(256), audio, crop=False, seed=3)
    assert video.frames.shape == (num_frames(audio.size), 512, 512, 3) and video.motion.shape == (12, 69)
    chunks = [audio[i:i + 640] for i in range(0, audio.size, 640)]
    streamed = pipeline.stream(toy_portrait(256), chunks, crop=False, seed=3)
    frames = np.concatenate(list(streamed))
    assert frames.shape == video.frames.shape
    np.testing.assert_allclose(streamed.motion, video.motion, atol=1e-4)
    for options, control in ((dict(gaze=(1.0, 2.0)), "gaze"), (dict(distance=1.0), "distance"),
                             (dict(emotion=0.5), "emotion"), (dict(cfg={"gaze": 1.0}), "gaze guidance")):
        with pytest.raises(ConfigError, match=f"joyvasa motion model has no {control} control"):
            pipeline.settings(**options)
    pipeline.settings(cfg={"audio": 2.0}, sampler="ddim", steps=2)
    with pytest.raises(ConfigError, match="joyvasa motion model has no online mode"):
        pipeline.settings(online=True)


def test_motion_is_put_in_the_face_models_layout():
    joy = np.arange(70, dtype=np.float32)[None]  # exp 0..62, scale 63, t 64..66, pitch 67, yaw 68, roll 69
    np.testing.assert_array_equal(to_face_layout(joy)[0], [68, 67, 69, 64, 65, 63, *range(63)])
    assert LEAD_FRAMES == 2


def test_sample_cli_refuses_a_control_joyvasa_lacks(checkpoint, tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import sample

    image, audio = tmp_path / "face.png", tmp_path / "speech.wav"
    from PIL import Image
    import soundfile

    Image.fromarray(toy_portrait(256)).save(image)
    soundfile.write(audio, speech(0.3), 16000)
    code = sample.main(["--image", str(image), "--audio", str(audio), "--checkpoint", str(checkpoint),
                        "--gaze", "5,0", "--out", str(tmp_path / "out.mp4"), "--quiet", "--no-crop"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no gaze control" in err[0]
    assert not (tmp_path / "out.mp4").exists()


def test_hub_fetch_offline(tmp_path, monkeypatch, capsys):
    """Offline, with nothing cached: one line saying what to download. With the hub cache filled (as
    huggingface_hub lays it out: models--org--name/refs/main and snapshots/<commit>/...), the cached files."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    assert import_main(["--from-hub", "--cache-dir", str(cache), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "huggingface-cli download KwaiVGI/LivePortrait" in err[0]
    commit = "0123456789abcdef0123456789abcdef01234567"
    layout = {"liveportrait": "liveportrait/base_models/motion_extractor.pth", "joyvasa": "motion_template/t.pkl",
              "hubert": "config.json"}
    for part, (repo, _) in HUB.items():
        folder = cache / ("models--" + repo.replace("/", "--"))
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(commit)
        file = folder / "snapshots" / commit / layout[part]
        file.parent.mkdir(parents=True)
        file.write_bytes(b"weights")
    folders = fetch_from_hub(cache)
    for part, relative in layout.items():
        assert (folders[part] / relative).read_bytes() == b"weights"
