"""Preprocessing talking-face videos into shards (vasa_jax.data.preprocess), and reading them back (shards,
face_pairs' shards source), on a small VoxCeleb2-like tree of toy-world mp4s with one file of each reject kind."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fast_xla import COMPILER_OPTIONS
from vasa_jax.data import faces, preprocess
from vasa_jax.data.preprocess import Settings, heldout_identities, identity_of, resample_frames
from vasa_jax.data.shards import MANIFEST, ClipShardSource, decode_record, encode_record, read_clip
from vasa_jax.data.toyworld import make_clip, perform
from vasa_jax.errors import ConfigError
from vasa_jax.io import read_video, write_video

# Small and quick: 128 px sources, 64 px crops, detection at 192 px. min_face 48: the toy face box is ~60-73 px
# wide at 128 px and ~36 px at 64 px.
SETTINGS = Settings(size=64, detect_size=192, min_seconds=1.0, segment_seconds=10.0, min_face=48,
                    labelers=("test_preprocess:mean_brightness",))
ACCEPTED = {  # path -> (identity, toy clip seed, toy identity)
    "id_a/vid1/00001.mp4": ("id_a", 0, 10),
    "id_a/vid2/00001.mp4": ("id_a", 1, 10),
    "id_b/vid1/00001.mp4": ("id_b", 2, 12),
    "id_c/vid1/00001.mp4": ("id_c", 3, 13),
}
REJECTED = {
    "id_d/vid1/00001.mp4": "undecodable",  # random bytes
    "id_e/vid1/00001.mp4": "too_short",  # 0.6 s
    "id_f/vid1/00001.mp4": "several_faces",  # two people side by side
    "id_g/vid1/00001.mp4": "no_face",  # a background
    "id_h/vid1/00001.mp4": "face_too_small",  # a 64 px video
    "id_i/vid1/00001.mp4": "no_audio",
}
SECONDS = 1.6
FRAMES = round(SECONDS * 25)
JITTER_BOUND = 0.005  # frame-to-frame change of the crop centre (and side), as a fraction of the side


def mean_brightness(frames, *, landmarks, fps):
    """A trivial labeler (the --labeler interface): mean brightness of each crop, and the landmarks' count."""
    assert fps == 25 and landmarks.shape == (frames.shape[0], 68, 2)
    return {"brightness": frames.mean(axis=(1, 2, 3)), "points": np.full((frames.shape[0], 1), 68.0)}


def _path(root: Path, relpath: str) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for relpath, (_, seed, person) in ACCEPTED.items():
        make_clip(seed, identity=person, seconds=SECONDS, size=128).write(_path(root, relpath))
        (root / relpath).with_suffix(".truth.npz").unlink()  # keep the tree a plain video tree
    bad = _path(root, "id_d/vid1/00001.mp4")
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    make_clip(5, identity=15, seconds=0.6, size=128).write(_path(root, "id_e/vid1/00001.mp4"))
    a, b = (make_clip(s, identity=s + 10, seconds=SECONDS, size=96) for s in (6, 7))
    write_video(_path(root, "id_f/vid1/00001.mp4"), np.concatenate([a.frames, b.frames], 2), fps=25, audio=a.audio)
    ramp = np.linspace(40, 200, 128)[None, :, None] * np.ones((FRAMES, 128, 128, 3))
    ramp += np.random.default_rng(1).normal(0, 3, ramp.shape)
    write_video(_path(root, "id_g/vid1/00001.mp4"), ramp.clip(0, 255).astype(np.uint8), fps=25, audio=a.audio)
    make_clip(8, identity=18, seconds=SECONDS, size=64).write(_path(root, "id_h/vid1/00001.mp4"))
    write_video(_path(root, "id_i/vid1/00001.mp4"), a.frames[:, 16:-16, 16:-16], fps=25)
    for npz in root.rglob("*.truth.npz"):
        npz.unlink()
    return root


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def straight(videos, tmp_path_factory):
    """An uninterrupted run with two worker processes: (output folder, manifest, input digest before)."""
    before = tree_digest(videos)
    out = tmp_path_factory.mktemp("straight") / "shards"
    manifest = preprocess.preprocess(videos, out, SETTINGS, workers=2, quiet=True)
    return out, manifest, before


def test_counts_and_rejects(straight):
    out, manifest, _ = straight
    assert manifest == json.loads((out / MANIFEST).read_text())
    counts = manifest["counts"]
    assert counts["videos"] == len(ACCEPTED) + len(REJECTED)
    assert counts["clips"] == counts["accepted_videos"] == len(ACCEPTED)
    assert counts["rejected"] == len(REJECTED)
    assert counts["frames"] == FRAMES * len(ACCEPTED) and counts["seconds"] == pytest.approx(SECONDS * len(ACCEPTED))
    assert {r["source"]: r["reason"] for r in manifest["rejects"]} == REJECTED
    assert all(r["detail"] for r in manifest["rejects"])
    assert counts["rejects"] == {reason: 1 for reason in REJECTED.values()}
    # Identities from the folder layout; ids are the sorted names' indices, over every video found.
    assert manifest["identities"] == sorted({relpath.split("/")[0] for relpath in [*ACCEPTED, *REJECTED]})
    clips = {c["source"]: c for c in manifest["clips"]}
    assert set(clips) == set(ACCEPTED)
    for relpath, (identity, _, _) in ACCEPTED.items():
        assert clips[relpath]["identity"] == identity
        assert manifest["identities"][clips[relpath]["identity_id"]] == identity
        assert clips[relpath]["num_frames"] == FRAMES
    # Split by identity: disjoint, both non-empty, and every shard the manifest lists exists.
    train, held = (set(manifest["splits"][s]["identities"]) for s in ("train", "heldout"))
    assert train and held and not train & held
    assert held == set(manifest["heldout_identities"])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MANIFEST, *manifest["splits"]["train"]["shards"], *manifest["splits"]["heldout"]["shards"]])


def test_interrupted_then_resumed_run_equals_straight_run(videos, straight, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    # The interruption: a run that stops after 3 videos (as a killed run would: results of finished videos in
    # work/, no shards, no manifest), plus a half-written result file as a kill during a write leaves it.
    assert preprocess.preprocess(videos, out, SETTINGS, workers=1, quiet=True, stop_after=3) is None
    assert not (out / MANIFEST).exists() and not list(out.glob("*.array_record"))
    assert len(list((out / "work").glob("*.json"))) == 1 + 3  # run.json + three videos
    (out / "work" / "0123.json.partial").write_bytes(b"{\"source\": ")
    with pytest.raises(ConfigError, match="other settings"):
        preprocess.preprocess(videos, out, Settings(**{**vars(SETTINGS), "size": 32}), quiet=True)

    calls = []
    real = preprocess.process_video
    monkeypatch.setattr(preprocess, "process_video", lambda task: calls.append(task["source"]) or real(task))
    manifest = preprocess.preprocess(videos, out, SETTINGS, workers=1, quiet=True)
    assert len(calls) == len(ACCEPTED) + len(REJECTED) - 3  # only the unfinished videos
    straight_out, straight_manifest, _ = straight
    assert manifest == straight_manifest
    names = sorted(p.name for p in straight_out.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names  # work/ is gone
    for name in names:  # byte-identical shards and manifest
        assert (out / name).read_bytes() == (straight_out / name).read_bytes(), name
    # A finished output with the same command is left alone.
    assert preprocess.preprocess(videos, out, SETTINGS, quiet=True) == manifest


def _clip(out: Path, source: str) -> dict:
    manifest = json.loads((out / MANIFEST).read_text())
    split = next(c["split"] for c in manifest["clips"] if c["source"] == source)
    clips = ClipShardSource(out, split=split)
    return next(clips[i] for i in range(len(clips)) if clips[i]["meta"]["source"] == source)


def test_crop_box_jitter_is_below_the_bound(videos, straight):
    out = straight[0]
    source = "id_b/vid1/00001.mp4"
    clip = _clip(out, source)
    boxes = clip["crop_boxes"].astype(np.float64)
    side = boxes[:, 2] - boxes[:, 0]
    np.testing.assert_allclose(boxes[:, 3] - boxes[:, 1], side, rtol=1e-5)  # square
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.abs(np.diff(centre, axis=0)).max() / side.mean() < JITTER_BOUND
    assert np.abs(np.diff(np.log(side))).max() < JITTER_BOUND
    # The bound means something: the per-frame crops before smoothing jump by more than it.
    detector = faces.FaceDetector(detect_size=SETTINGS.detect_size)
    frames = read_video(videos / source).frames
    raw = faces.crop_box(np.stack([detector.landmarks(f, b) for f, b in zip(frames, clip["face_boxes"])]))
    assert np.abs(np.diff(raw[:, :2], axis=0)).max() / raw[:, 2].mean() > JITTER_BOUND
    assert np.abs(np.diff(np.log(raw[:, 2]))).max() > 4 * JITTER_BOUND


def test_clip_reader_round_trips_frames_audio_and_labels(videos, straight):
    out = straight[0]
    source = "id_a/vid2/00001.mp4"
    clip = _clip(out, source)
    video = read_video(videos / source)
    assert clip["frames"].shape == (FRAMES, SETTINGS.size, SETTINGS.size, 3) and clip["frames"].dtype == np.uint8
    assert clip["identity"] == "id_a" and clip["meta"]["num_frames"] == FRAMES
    # Frames: the crop of each source frame, within JPEG error.
    for n in (0, FRAMES // 2, FRAMES - 1):
        x0, y0, x1, y1 = clip["crop_boxes"][n]
        expected = faces.crop_image(video.frames[n], ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0), SETTINGS.size)
        assert np.abs(clip["frames"][n].astype(float) - expected).mean() < 3.0
    # Audio: 640 samples per frame at 16 kHz, the video's own track from frame 0.
    assert clip["audio"].shape == (FRAMES * 640,) and clip["audio"].dtype == np.float32
    np.testing.assert_array_equal(clip["audio"], video.audio[: FRAMES * 640])
    assert clip["landmarks"].shape == (FRAMES, 68, 2)
    assert clip["landmarks"].min() > 0 and clip["landmarks"].max() < SETTINGS.size
    # Labels: head distance (toy video at the calibrated framing: the toy world's distance, 1 / scale, within
    # the identities' spread of face proportions) and the user labeler's.
    _, truth = perform(1, identity=10, seconds=SECONDS, audio=False)  # id_a/vid2's performance
    distance = clip["labels"]["head_distance"]
    assert distance.shape == (FRAMES,)
    assert 0.8 < np.median(distance) / np.median(1 / truth["scale"]) < 1.25
    brightness = clip["labels"]["brightness"]
    np.testing.assert_allclose(brightness, clip["frames"].mean(axis=(1, 2, 3)), atol=1.5)
    assert clip["labels"]["points"].shape == (FRAMES, 1)
    # Only the frames asked for are decoded.
    some = read_clip(ClipShardSource(out, split="train").record(0), frames=[3, -1])
    assert some["frames"].shape == (2, SETTINGS.size, SETTINGS.size, 3)
    assert some["frame_indices"].tolist() == [3, some["meta"]["num_frames"] - 1]


def test_record_format_round_trip():
    arrays = {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "b": np.array([True, False]), "c": np.zeros(0)}
    data = encode_record(arrays, {"name": "x", "n": 2})
    assert data == encode_record(dict(reversed(arrays.items())), {"n": 2, "name": "x"})  # deterministic bytes
    back, meta = decode_record(data)
    assert meta == {"name": "x", "n": 2}
    for key, value in arrays.items():
        assert back[key].dtype == value.dtype
        np.testing.assert_array_equal(back[key], value)
    with pytest.raises(ValueError, match="magic"):
        decode_record(b"not a record at all")


def test_one_stage1_training_step_on_shards(straight):
    import jax

    from vasa_jax.config import load_config
    from vasa_jax.data.face_pairs import face_pair_batches
    from vasa_jax.train.face import FaceTrainer

    config = load_config("configs/tiny.py")
    config.data.source, config.data.shards = "shards", str(straight[0])
    trainer = FaceTrainer(config)
    it = face_pair_batches(config.data, image_size=trainer.face.image_size, batch_size=2, shard_index=0,
                           shard_count=1)
    batch = next(it)
    again = next(face_pair_batches(config.data, image_size=trainer.face.image_size, batch_size=2, shard_index=0,
                                   shard_count=1))
    for key in batch:  # examples are a pure function of (seed, split, index)
        np.testing.assert_array_equal(batch[key], again[key])
    with pytest.raises(ConfigError, match="at least 2 identities"):  # the held-out split has one person here
        face_pair_batches(config.data, image_size=trainer.face.image_size, batch_size=1, split="heldout")
    size = config.face.image_size
    assert batch["source"].shape == (2, size, size, 3) and batch["source"].dtype == np.uint8
    assert not batch["has_pose"].any() and not batch["source_pose"].any()
    # The mouth region comes from the driver frame's dlib landmarks (outer lips), in fractions of the image.
    assert batch["has_mouth"].all()
    x0, y0, x1, y1 = batch["driver_mouth"].T
    assert ((0 <= x0) & (x0 < x1) & (x1 <= 1) & (0 <= y0) & (y0 < y1) & (y1 <= 1)).all()
    assert ((y0 + y1) / 2 > 0.5).all()  # the mouth sits in the lower half of the project's crop
    # The lip-opening label is the evaluation's landmark measure of the driver frame (faces.mouth_opening).
    from vasa_jax.data.face_pairs import ShardPairSource
    from vasa_jax.data.shards import read_clip

    source = ShardPairSource(straight[0], trainer.face.image_size)
    plan = source.plan(0)
    landmarks = read_clip(source.clips.record(plan.clip), frames=[plan.driver_frame])["landmarks"]
    assert source[0]["driver_lip_opening"] == faces.mouth_opening(landmarks[plan.driver_frame])
    assert (batch["identity"] != batch["other_identity"]).all()
    train_ids = {straight[1]["identities"].index(n) for n in straight[1]["splits"]["train"]["identities"]}
    assert set(batch["identity"].tolist()) | set(batch["other_identity"].tolist()) <= train_ids
    # Compiled cheaply (fast_xla.py): XLA's CPU backend spends most of a minute optimising this step otherwise.
    key = jax.random.key(0)
    state = jax.jit(trainer.init_state).lower(key).compile(compiler_options=COMPILER_OPTIONS)(key)
    step = jax.jit(trainer.step).lower(state, batch, key).compile(compiler_options=COMPILER_OPTIONS)
    _, metrics = step(state, batch, key)
    for name, value in metrics.items():
        assert np.isfinite(float(value)), name
    assert float(metrics["loss/pose"]) == 0.0  # no pose labels in real video
    assert float(metrics["loss/reconstruction"]) > 0.0


def test_input_is_untouched_and_output_inside_input_is_refused(videos, straight, tmp_path):
    assert tree_digest(videos) == straight[2]
    for inside in (videos, videos / "id_a" / "shards"):
        with pytest.raises(ConfigError, match="inside the input"):
            preprocess.preprocess(videos, inside, SETTINGS, quiet=True)
    assert tree_digest(videos) == straight[2]
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a preprocess output"):
        preprocess.preprocess(videos, tmp_path / "busy", SETTINGS, quiet=True)


def test_command_line_user_mistakes(videos, tmp_path, capsys):
    for argv, message in (
        (["--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o")], "input folder not found"),
        (["--input", str(videos), "--output", str(tmp_path / "o"), "--size", "8"], "--size must be"),
        (["--input", str(videos), "--output", str(tmp_path / "o"), "--labeler", "no_such_module:f"], "cannot import"),
    ):
        assert preprocess.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    # Through the module's command line: one line on stderr, exit code 2, no traceback.
    result = subprocess.run([sys.executable, "-m", "vasa_jax.data.preprocess", "--input", str(videos), "--output",
                             str(videos / "out")], capture_output=True, text=True, cwd=os.getcwd())
    assert result.returncode == 2
    assert "inside the input folder" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (videos / "out").exists()


def test_identity_rule_and_split():
    assert identity_of("id00017/5MkXgwdrmJw/00001.mp4") == "id00017"  # VoxCeleb2
    assert identity_of("id00017/00001.mp4") == "id00017"
    assert identity_of("WDA_BarackObama_000.mp4") == "WDA_BarackObama"  # HDTF
    assert identity_of("RD_Radio1_000.mp4", "") == "RD_Radio1_000"
    assert identity_of("interview.mp4") == "interview"
    names = [f"person{i}" for i in range(200)]
    held = heldout_identities(names, 0.1)
    assert held == heldout_identities(list(reversed(names)), 0.1)  # order-free
    assert 5 < len(held) < 40
    assert set(held) <= set(heldout_identities(names + ["newcomer"], 0.1))  # stable as the data grows
    assert heldout_identities(names, 0.0) == [] and heldout_identities(["solo"], 0.5) == []
    assert len(heldout_identities(["a", "b"], 1e-9)) == 1  # at least one when asked for any


def test_resampling_to_25_fps_by_nearest_timestamp():
    def indices(times, fps):
        return [(n, k) for n, k, _ in resample_frames(((t, None) for t in times), fps)]

    assert indices(np.arange(10) / 25, 25) == [(n, n) for n in range(10)]
    thirty = indices(np.arange(30) / 30, 30)  # 1 s at 30 fps -> 25 frames
    assert len(thirty) == 25
    assert [k for _, k in thirty] == [int(np.round(n / 25 * 30)) for n in range(25)]
    assert len(indices(np.arange(50) / 50, 50)) == 25 and indices(np.arange(50) / 50, 50)[3] == (3, 6)
    jittery = np.arange(25) / 25 + np.random.default_rng(0).uniform(-0.005, 0.005, 25)  # variable frame rate
    assert [k for _, k in indices(jittery - jittery[0], 25)] == list(range(25))


def test_one_stage2_training_step_on_shards(straight, tmp_path):
    """Stage 2 reads the shards too: motion from a stage-1 model's encode_motion of the crops, audio features
    of the clips' audio, head distance from the preprocess label, missing gaze / emotion as missing conditions."""
    import jax

    from vasa_jax.config import load_config
    from vasa_jax.data.motion_data import MotionCache, build_cache, motion_window_batches
    from pipeline_models import random_face_workdir
    from vasa_jax.train.motion import MotionTrainer, cache_stats, resolve_config

    out, manifest, _ = straight
    config = load_config("configs/tiny.py")
    config.data.source, config.data.shards = "shards", str(out)
    config.motion_data.source, config.motion_data.face_workdir = "shards", str(tmp_path / "face")
    config.motion_data.cache_dir = str(tmp_path / "cache")
    face = random_face_workdir(tmp_path / "face", config)  # an untrained stage-1 model gives motion vectors too

    cache = MotionCache(build_cache(config, "train"))
    clips = [c for c in manifest["clips"] if c["split"] == "train"]
    assert cache.num_clips == len(clips)
    assert cache.clip_lengths().tolist() == [c["num_frames"] for c in clips]
    assert cache.meta["motion_dim"] == face.face.config.motion_dim
    first = cache.clip(0)
    record = ClipShardSource(out, split="train")[0]
    np.testing.assert_allclose(first["distance"], record["labels"]["head_distance"], rtol=1e-6)
    np.testing.assert_allclose(first["mouth_open"], faces.mouth_opening(record["landmarks"]), rtol=1e-6)
    assert np.isnan(first["gaze"]).all() and np.isnan(first["emotion"]).all()  # no labeler wrote them
    assert np.isfinite(first["motion"]).all() and first["motion"].std(0).max() > 0

    assert config.motion_data.face_step == -1  # the latest, resolved and recorded in the run's config
    config = resolve_config(config, cache)
    assert config.motion_data.face_step == 0
    trainer = MotionTrainer(config, cache_stats(cache))
    batch = next(motion_window_batches(cache.path, window=trainer.motion.window, context=trainer.motion.context,
                                       batch_size=2, shard_index=0, shard_count=1))
    assert batch["has_distance"].all() and not batch["has_gaze"].any() and not batch["has_emotion"].any()
    key = jax.random.key(1)
    state = jax.jit(trainer.init_state)(key)
    new_state, metrics = jax.jit(trainer.step)(state, batch, key)
    for name, value in metrics.items():
        assert np.isfinite(float(value)), name
    assert float(metrics["kept/gaze"]) == 0.0 and float(metrics["kept/emotion"]) == 0.0
    assert int(new_state.step) == 1 and float(metrics["loss/x0"]) > 0
