"""End-to-end generation (vasa_jax.pipeline) on a tiny random pipeline: lengths, the mp4 it writes, streaming,
pose control, motion files, bounded memory, and the bad inputs of issue 6."""

import av
import numpy as np
import pytest
from PIL import Image

import vasa_jax
from pipeline_models import speech, tiny_checkpoint, toy_portrait
from vasa_jax.audio.features import FPS
from vasa_jax.data import toyworld
from vasa_jax.errors import ConfigError
from vasa_jax.face.config import POSE_DIM
from vasa_jax.io import MediaError, probe_video, read_video, save_audio, save_image, write_video
from vasa_jax.pipeline import NoFaceError, Portrait, check_output, load_motion_file
from vasa_jax.pipeline import pipeline as pipeline_module
from vasa_jax.pipeline.pose import pose_indices

SECONDS = 1.3  # 33 frames: two full windows of 16 and a partial one


@pytest.fixture(scope="module")
def pipeline():
    return vasa_jax.load_pipeline(tiny_checkpoint())


@pytest.fixture(scope="module")
def portrait(pipeline):
    return pipeline.portrait(toy_portrait())


@pytest.fixture(scope="module")
def audio():
    return speech(SECONDS)


@pytest.fixture(scope="module")
def video(pipeline, portrait, audio):
    return pipeline.generate(portrait, audio, seed=0)


def test_generate_lasts_as_long_as_the_audio(pipeline, portrait, audio, video):
    t = video.frames.shape[0]
    assert video.frames.shape == (t, 32, 32, 3) and video.frames.dtype == np.uint8
    assert abs(t / FPS - audio.size / 16000) <= 1 / FPS
    assert video.fps == 25 and video.motion.shape == (t, pipeline.face.motion_dim)
    assert np.all(np.isfinite(video.motion)) and video.frames.std() > 1
    again = pipeline.generate(portrait, audio, seed=0)
    np.testing.assert_array_equal(again.frames, video.frames)
    other = pipeline.generate(portrait, audio, seed=1)
    assert np.abs(other.motion - video.motion).max() > 1e-3
    # Other lengths, down to one frame's worth of audio (40 ms).
    for n in (640, 16000 + 333):
        assert pipeline.generate(portrait, audio[:n]).frames.shape[0] == (n + 320) // 640


def test_portrait_is_cropped_like_training_frames(portrait):
    # A toy face at the toy world's own framing crops to about the whole frame (faces.CROP_SCALE's calibration).
    cx, cy, side = portrait.box
    assert portrait.faces == 1 and portrait.image.shape == (32, 32, 3)
    assert abs(cx - 64) < 8 and abs(cy - 64) < 8 and 0.85 < side / 128 < 1.2


def test_written_mp4_is_h264_aac_with_provenance_and_the_audio_length(pipeline, portrait, audio, video, tmp_path):
    out = tmp_path / "new" / "folder" / "talk.mp4"  # a folder that does not exist is created
    report = pipeline.write(out, portrait, audio, seed=0)
    assert report.path == out and report.num_frames == video.frames.shape[0]
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
    info = probe_video(out)
    assert "AI-generated" in info.metadata["comment"] and vasa_jax.__version__ in info.metadata["comment"]
    assert vasa_jax.__version__ in info.metadata["title"]
    back = read_video(out)
    assert back.frames.shape[0] == video.frames.shape[0] and info.fps == 25
    assert abs(back.audio.size / 16000 - back.frames.shape[0] / FPS) <= 1 / FPS
    assert np.abs(back.frames.astype(float) - video.frames).mean() < 12  # H.264 at 32x32: lossy, but the same video
    with pytest.raises(MediaError, match="already exists"):
        pipeline.write(out, portrait, audio)
    pipeline.write(out, portrait, audio[:6400], overwrite=True)
    assert probe_video(out).num_frames == 10
    video.write(tmp_path / "video.mp4")
    assert probe_video(tmp_path / "video.mp4").metadata["comment"] == info.metadata["comment"]


def test_stream_gives_the_frames_of_generate(pipeline, portrait, audio, video):
    rng = np.random.default_rng(0)
    cuts = np.cumsum(rng.integers(200, 1500, 40))
    chunks = [c for c in np.split(audio, cuts[cuts < audio.size]) if c.size]
    generation = pipeline.stream(portrait, iter(chunks), seed=0)
    batches = list(generation)
    assert all(b.shape[0] <= pipeline.decode_batch for b in batches)
    # The mel encoder's streaming features equal its offline ones up to float rounding (its FFTs run over other
    # spans of frames) and each window runs the same program, so the motion agrees to float precision and a
    # few pixels round the other way (by one level; measured: 0.05 % of them).
    np.testing.assert_allclose(generation.motion, video.motion, atol=1e-5)
    diff = np.abs(np.concatenate(batches).astype(int) - video.frames)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.005


def test_online_stream_renders_each_hop_and_equals_online_generate(pipeline, portrait, audio):
    chunks = [audio[i:i + 320] for i in range(0, audio.size, 320)]
    generation = pipeline.stream(portrait, iter(chunks), seed=0, online=True, hop=3, lookahead=2)
    batches = list(generation)
    assert [len(b) for b in batches[:-1]] == [3] * (len(batches) - 1)  # a hop rendered as soon as it is sampled
    offline = pipeline.generate(portrait, audio, seed=0, online=True, hop=3, lookahead=2)
    assert offline.frames.shape == np.concatenate(batches).shape
    np.testing.assert_allclose(generation.motion, offline.motion, atol=1e-4)
    with pytest.raises(ConfigError, match="hop and lookahead set the online mode"):
        pipeline.settings(hop=3)
    with pytest.raises(ConfigError, match="hop \\+ lookahead <= the window"):
        pipeline.settings(online=True, hop=10, lookahead=10)


def test_pose_indices_play_back_and_forth():
    assert pose_indices(0, 12, 5).tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3]
    assert pose_indices(7, 3, 5).tolist() == [1, 0, 1]
    assert pose_indices(0, 4, 1).tolist() == [0, 0, 0, 0]


def test_pose_from_a_motion_file_replaces_the_pose_and_keeps_the_dynamics(pipeline, portrait, audio, video, tmp_path):
    pose = np.random.default_rng(0).normal(size=(5, POSE_DIM)).astype(np.float32)
    np.save(tmp_path / "pose.npy", pose)
    posed = pipeline.generate(portrait, audio, seed=0, pose_from=tmp_path / "pose.npy")
    t = video.motion.shape[0]
    np.testing.assert_array_equal(posed.motion[:, :POSE_DIM], pose[pose_indices(0, t, 5)])
    np.testing.assert_allclose(posed.motion[:, POSE_DIM:], video.motion[:, POSE_DIM:], atol=1e-5)
    assert np.abs(posed.frames.astype(int) - video.frames).max() > 0


def test_pose_offset_turns_the_head_and_keeps_the_rest(pipeline, portrait, audio, video):
    turned = pipeline.generate(portrait, audio, seed=0, pose_offset=(10.0, -5.0, 2.0))
    offset = np.tile([10.0, -5.0, 2.0], (len(turned.motion), 1))
    np.testing.assert_allclose(turned.motion[:, :3] - video.motion[:, :3], offset, atol=1e-4)
    np.testing.assert_allclose(turned.motion[:, 3:], video.motion[:, 3:], atol=1e-5)
    with pytest.raises(ConfigError, match="pose_offset must be 3 finite numbers"):
        pipeline.settings(pose_offset=(1.0, 2.0))
    # Eye / lip retargeting is LivePortrait's (tests/test_liveportrait.py); this face model says it lacks it.
    with pytest.raises(ConfigError, match="eye_ratio is an edit the vasa face model does not have"):
        pipeline.settings(eye_ratio=0.3)


def test_save_motion_round_trip(pipeline, portrait, audio, video, tmp_path):
    first = pipeline.generate(portrait, audio, seed=0, save_motion=tmp_path / "m.npz")
    np.testing.assert_array_equal(load_motion_file(tmp_path / "m.npz"), first.motion)
    assert int(np.load(tmp_path / "m.npz")["fps"]) == 25
    short = pipeline.generate(portrait, audio[:8000], seed=5, save_motion=tmp_path / "sub" / "m.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "sub" / "m.npy"), short.motion)
    # Driving a new generation with a saved motion's pose reproduces that pose (played back and forth).
    posed = pipeline.generate(portrait, audio, seed=0, pose_from=tmp_path / "sub" / "m.npy")
    t, length = first.motion.shape[0], short.motion.shape[0]
    np.testing.assert_array_equal(posed.motion[:, :POSE_DIM], short.motion[pose_indices(0, t, length), :POSE_DIM])
    with pytest.raises(ConfigError, match=".npz"):
        pipeline.generate(portrait, audio, save_motion=tmp_path / "m.txt")
    (tmp_path / "bad.npy").write_text("not numpy")
    with pytest.raises(MediaError, match="bad.npy"):
        pipeline.generate(portrait, audio, pose_from=tmp_path / "bad.npy")


def test_pose_from_a_video(pipeline, portrait, audio, video, tmp_path):
    person = toyworld.sample_identity(1000)
    yaw = np.concatenate([[0.0], np.linspace(-20, 20, 19)])  # the first frame frontal: the face is found there
    frames = toyworld.render(person, toyworld.neutral_state(20, yaw=yaw), 128)
    write_video(tmp_path / "head.mp4", frames, fps=25)
    posed = pipeline.generate(portrait, audio, seed=0, pose_from=tmp_path / "head.mp4")
    # The video's frames, cropped with the box found on its first frame, through the face model's encoder.
    decoded = read_video(tmp_path / "head.mp4", with_audio=False).frames
    box, _ = pipeline.framer.face_box(decoded[0], None)
    crops = np.stack([pipeline.framer.crop(f, box) for f in decoded]).astype(np.float32) / 255
    crops = np.concatenate([crops, crops[-12:]])  # two batches of decode_batch (16): the compiled shape
    expected = np.concatenate([pipeline_module._encode_poses(pipeline.face_params, crops[i:i + 16],
                                                             face=pipeline.face) for i in (0, 16)])
    t = video.motion.shape[0]
    np.testing.assert_allclose(posed.motion[:, :POSE_DIM], expected[pose_indices(0, t, 20)], atol=1e-4)
    np.testing.assert_allclose(posed.motion[:, POSE_DIM:], video.motion[:, POSE_DIM:], atol=1e-5)
    with pytest.raises(MediaError, match="missing.mp4"):
        pipeline.generate(portrait, audio, pose_from=tmp_path / "missing.mp4")


def test_ten_minutes_of_audio_are_written_as_they_are_made(pipeline, portrait, monkeypatch, tmp_path):
    ten_minutes = np.tile(speech(2.0), 300)
    assert ten_minutes.size == 600 * 16000
    # Offline: the frames come window by window; nothing [T, ...] is built before the first frames are out.
    generation = pipeline.start(portrait, ten_minutes)
    assert generation.num_frames == 15000 and generation.windows_sampled == 0
    first = next(generation)
    assert first.shape[0] <= pipeline.decode_batch and generation.windows_sampled == 1
    # Writing: each frame batch goes to the writer while the rest of the motion is still to be sampled.
    streams, writes = [], []
    make_stream = pipeline._motion_stream

    def spy_stream(*args, **kwargs):
        streams.append(make_stream(*args, **kwargs))
        return streams[-1]

    class Enough(Exception):
        pass

    class RecordingWriter:
        def __init__(self, path, **kwargs):
            self.num_frames = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write_audio(self, samples):
            pass

        def write(self, frames):
            writes.append((len(frames), streams[0].windows_done))
            if len(writes) == 5:
                raise Enough

    monkeypatch.setattr(pipeline, "_motion_stream", spy_stream)
    monkeypatch.setattr(pipeline_module, "VideoWriter", RecordingWriter)
    with pytest.raises(Enough):
        pipeline.write(tmp_path / "long.mp4", portrait, ten_minutes)
    assert [n for n, _ in writes] == [16] * 5 and max(w for _, w in writes) <= 5  # of 938 windows


def _canvas_with_two_faces():
    big = toy_portrait(192, 1000)
    small = toy_portrait(112, 1002)
    canvas = np.empty((192, 320, 3), np.uint8)
    canvas[:] = big[:1, :1]
    canvas[:, 192:] = np.pad(small, ((40, 40), (8, 8), (0, 0)), mode="edge")
    canvas[:, :192] = big
    return canvas


def test_several_faces_animate_the_largest_and_say_so(pipeline, audio):
    canvas = _canvas_with_two_faces()
    found = pipeline.portrait(canvas)
    assert found.faces == 2 and found.box[0] < 192  # the big face, on the left
    with pytest.warns(UserWarning, match="2 faces found; animating the largest"):
        pipeline.start(canvas, audio)


def test_image_formats_and_sizes(pipeline, tmp_path):
    face = toy_portrait()
    Image.fromarray(face).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(face).convert("L").save(tmp_path / "grey.png")
    grey16 = np.asarray(Image.fromarray(face).convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    for name in ("rgba.png", "grey.png", "grey16.png"):
        portrait = pipeline.portrait(tmp_path / name)
        assert portrait.image.shape == (32, 32, 3) and portrait.faces == 1, name
    save_image(tmp_path / "small.png", face[:50, :60])
    with pytest.raises(MediaError, match="small.png.*60x50 pixels.*at least 64"):
        pipeline.portrait(tmp_path / "small.png")
    with pytest.raises(MediaError, match="at least 64"):
        pipeline.portrait(face[:50, :60], crop=False)
    # A huge photo: detection runs on a downscaled copy, the crop is taken from the full image.
    huge = np.asarray(Image.fromarray(face).resize((4096, 4096), Image.BICUBIC))
    big = pipeline.portrait(huge)
    assert big.faces == 1 and abs(big.box[2] / 4096 - pipeline.portrait(face).box[2] / 128) < 0.05
    assert np.abs(big.image.astype(int) - pipeline.portrait(face).image).mean() < 12
    # A file whose header promises more pixels than Pillow will decode is refused, not a traceback.
    (tmp_path / "bomb.ppm").write_bytes(b"P6\n20000 20000\n255\n" + bytes(100))
    with pytest.raises(MediaError, match="bomb.ppm: image is too large"):
        pipeline.portrait(tmp_path / "bomb.ppm")
    framed = pipeline.portrait(face[:, 10:], crop=False)  # the centred square, resized
    assert framed.faces == 0 and framed.box is None and framed.image.shape == (32, 32, 3)


def test_bad_images(pipeline, tmp_path):
    with pytest.raises(MediaError, match="nothing.png: file not found"):
        pipeline.portrait(tmp_path / "nothing.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(MediaError, match="corrupt.png"):
        pipeline.portrait(tmp_path / "corrupt.png")
    y, x = np.mgrid[:128, :128]
    save_image(tmp_path / "wall.png", np.stack([x * 2, y * 2, x + y], -1).astype(np.uint8))
    with pytest.raises(NoFaceError, match="wall.png: no face found"):
        pipeline.portrait(tmp_path / "wall.png")


def test_bad_and_odd_audio(pipeline, portrait, tmp_path):
    with pytest.raises(MediaError, match="gone.wav: file not found"):
        pipeline.generate(portrait, tmp_path / "gone.wav")
    (tmp_path / "words.wav").write_text("this is a text file, not audio\n" * 20)
    with pytest.raises(MediaError, match="words.wav"):
        pipeline.generate(portrait, tmp_path / "words.wav")
    save_audio(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.raises(MediaError, match="empty.wav"):
        pipeline.generate(portrait, tmp_path / "empty.wav")
    save_audio(tmp_path / "blip.wav", np.zeros(300, np.float32))
    with pytest.raises(MediaError, match="blip.wav: audio is 19 ms long.*one frame"):
        pipeline.generate(portrait, tmp_path / "blip.wav")
    with pytest.raises(MediaError, match="one frame"):
        list(pipeline.stream(portrait, iter([np.zeros(100, np.float32)])))
    # Silence is not an error: a quiet face (what it looks like is the trained model's business).
    silent = pipeline.generate(portrait, np.zeros(16000, np.float32))
    assert silent.frames.shape[0] == 25 and np.all(np.isfinite(silent.motion))


def test_output_paths(tmp_path):
    assert check_output(tmp_path / "a" / "b" / "out.mp4").parent.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(MediaError, match="cannot be written"):
        check_output(tmp_path / "file" / "out.mp4")
    with pytest.raises(MediaError, match="must be a video file"):
        check_output(tmp_path / "out.gif")
    (tmp_path / "there.mp4").write_bytes(b"mine")
    with pytest.raises(MediaError, match="already exists"):
        check_output(tmp_path / "there.mp4")
    assert check_output(tmp_path / "there.mp4", overwrite=True) == tmp_path / "there.mp4"
    assert (tmp_path / "there.mp4").read_bytes() == b"mine"


@pytest.mark.parametrize("options, message", [
    (dict(gaze=(1.0,)), "gaze"), (dict(distance=-1.0), "distance must be positive"), (dict(emotion=(1, 2)), "emotion"),
    (dict(sampler="euler"), "sampler"), (dict(steps=0), "steps"), (dict(size=33), "even"),
    (dict(cfg={"lips": 1.0}), "unknown conditions"), (dict(distance="far"), "distance"),
])
def test_bad_options(pipeline, options, message):
    with pytest.raises(ConfigError, match=message):
        pipeline.settings(**options)


def test_a_portrait_of_another_size_is_refused(pipeline, portrait):
    wrong = Portrait(np.zeros((64, 64, 3), np.uint8), None, 0, None)
    with pytest.raises(ValueError, match="model takes"):
        pipeline.portrait(wrong)
    assert pipeline.portrait(portrait) is portrait
