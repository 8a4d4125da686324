"""Video reading and mp4 writing: round trips keep frames, rate, audio length and alignment, and metadata."""

import os

import numpy as np
import pytest

from media import smooth_frames, tone, write_with_codecs
from vasa_jax.io import MediaError, VideoWriter, probe_video, read_video, write_video


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("fps, seconds", [(25, 2.0), (30, 1.3), (24, 0.5)])
def test_mp4_round_trip(tmp_path, fps, seconds):
    frames = smooth_frames(int(round(fps * seconds)), 48, 80)
    audio = tone(len(frames) / fps, 16000)
    path = tmp_path / "out.mp4"
    write_video(path, frames, fps=fps, audio=audio, metadata={"title": "t", "comment": "made by vasa-jax"})
    video = read_video(path)
    assert video.frames.shape == frames.shape
    assert video.fps == pytest.approx(fps)
    assert abs(video.audio.size - audio.size) <= 16000 / fps  # within one frame
    assert psnr(video.frames, frames) > 30
    np.testing.assert_allclose(video.times, np.arange(len(frames)) / fps, atol=1e-3)
    info = probe_video(path)
    assert (info.width, info.height, info.num_frames, info.has_audio) == (80, 48, len(frames), True)
    assert info.metadata["comment"] == "made by vasa-jax" and info.metadata["title"] == "t"
    assert info.duration == pytest.approx(len(frames) / fps, abs=1 / fps)


def test_audio_stays_aligned_to_frame_zero(tmp_path):
    audio = np.zeros(32000, np.float32)
    audio[12000:12160] = 0.8  # a click at 0.75 s
    write_video(tmp_path / "a.mp4", smooth_frames(50), fps=25, audio=audio)
    out = read_video(tmp_path / "a.mp4").audio
    onset = np.argmax(np.abs(out) > 0.3)
    assert abs(onset - 12000) <= 16  # 1 ms


def test_audio_is_trimmed_or_padded_to_the_frames(tmp_path):
    for samples in (10000, 50000):  # shorter and longer than 50 frames at 25 fps (32000 samples)
        write_video(tmp_path / "a.mp4", smooth_frames(50), fps=25, audio=tone(samples / 16000, 16000))
        assert abs(read_video(tmp_path / "a.mp4").audio.size - 32000) <= 640


def test_streaming_writer_with_audio_chunks(tmp_path):
    frames = smooth_frames(40)
    audio = tone(40 / 25, 16000)
    with VideoWriter(tmp_path / "s.mp4", fps=25) as writer:
        for i in range(0, 40, 8):
            writer.write_audio(audio[i * 640 : (i + 8) * 640])
            writer.write(frames[i : i + 8])
    video = read_video(tmp_path / "s.mp4")
    assert video.frames.shape[0] == 40 and abs(video.audio.size - audio.size) <= 640


def test_writer_never_leaves_partial_files_or_clobbers(tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"precious")
    with pytest.raises(RuntimeError):
        with VideoWriter(target, fps=25) as writer:
            writer.write(smooth_frames(3))
            raise RuntimeError("generation failed")
    assert target.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["keep.mp4"]


def test_writer_refuses_odd_sizes_and_unknown_formats(tmp_path):
    with pytest.raises(MediaError, match="even width and height"):
        write_video(tmp_path / "odd.mp4", smooth_frames(2, 33, 64), fps=25)
    with pytest.raises(MediaError, match="cannot write this format"):
        VideoWriter(tmp_path / "x.gif", fps=25)
    with pytest.raises(MediaError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "x.mp4", fps=25)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name, vcodec, acodec", [("a.mkv", "libx264", "aac"), ("a.webm", "libvpx-vp9", "libopus"),
                                                  ("a.avi", "mpeg4", "mp3")])
def test_reads_other_containers(tmp_path, name, vcodec, acodec):
    rate = 48000 if acodec == "libopus" else 16000
    frames = smooth_frames(25)
    write_with_codecs(tmp_path / name, frames=frames, audio=tone(1.0, rate, 500.0), rate=rate,
                      vcodec=vcodec, acodec=acodec)
    video = read_video(tmp_path / name)
    assert video.frames.shape == frames.shape and video.fps == pytest.approx(25)
    assert psnr(video.frames, frames) > 25
    # AVI and WebM cannot state an encoder's priming or padding (mp4's edit lists can): allow 0.1 s.
    assert abs(video.audio.size - 16000) <= 1600


def test_video_without_audio(tmp_path):
    write_video(tmp_path / "silent.mp4", smooth_frames(10), fps=25)
    video = read_video(tmp_path / "silent.mp4")
    assert video.audio is None and video.frames.shape[0] == 10


def test_bad_videos(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video at all")
    write_with_codecs(tmp_path / "audio_only.m4a", audio=tone(0.5, 16000), container_format="mp4")
    good = tmp_path / "good.mp4"
    write_video(good, smooth_frames(10), fps=25)
    (tmp_path / "cut.mp4").write_bytes(good.read_bytes()[:200])
    cases = {"missing.mp4": "file not found", "empty.mp4": "empty", "text.mp4": "not a video",
             "audio_only.m4a": "no video stream", "cut.mp4": "no readable video stream"}
    for name, problem in cases.items():
        with pytest.raises(MediaError, match=problem) as info:
            read_video(tmp_path / name)
        assert name in str(info.value)
