"""Audio loading: any format and rate -> mono float32 at 16 kHz, and clear errors."""

import numpy as np
import pytest
import soundfile

from media import smooth_frames, tone, write_with_codecs
from vasa_jax.io import MediaError, load_audio


def dominant_frequency(wave, rate=16000):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return np.fft.rfftfreq(wave.size, 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize("ext, rate, channels", [("wav", 44100, 2), ("flac", 48000, 1), ("ogg", 22050, 2),
                                                  ("mp3", 44100, 1), ("wav", 8000, 1), ("wav", 16000, 1)])
def test_formats_rates_and_channels(tmp_path, ext, rate, channels):
    path = tmp_path / f"a.{ext}"
    soundfile.write(path, tone(1.0, rate, 440.0, channels), rate)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(out.size - 16000) <= (1200 if ext == "mp3" else 2)  # mp3 frames pad the ends
    assert dominant_frequency(out) == pytest.approx(440, abs=3)
    assert 0.3 < np.abs(out).max() < 0.5


def test_containers_through_ffmpeg(tmp_path):
    path = tmp_path / "a.m4a"
    write_with_codecs(path, audio=tone(1.0, 24000), rate=24000, container_format="mp4")
    out = load_audio(path)
    assert abs(out.size - 16000) <= 2
    assert dominant_frequency(out) == pytest.approx(440, abs=3)
    video = tmp_path / "v.mp4"
    write_with_codecs(video, frames=smooth_frames(25), audio=tone(1.0, 16000, 300.0))
    assert dominant_frequency(load_audio(video)) == pytest.approx(300, abs=3)


def test_arrays_need_their_rate():
    out = load_audio(tone(0.5, 8000, 200.0, channels=2), source_rate=8000)
    assert out.shape == (8000,)
    with pytest.raises(MediaError, match="sample rate"):
        load_audio(np.zeros(100, np.float32))
    with pytest.raises(MediaError, match="NaN"):
        load_audio(np.full(100, np.nan, np.float32), source_rate=16000)


def test_bad_audio_files(tmp_path):
    cases = {
        tmp_path / "missing.wav": "file not found",
        tmp_path / "empty.wav": "empty",
        tmp_path / "text.wav": "not audio",
        tmp_path / "silent.wav": "zero length",
        tmp_path / "video_only.mp4": "no audio stream",
    }
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("hello, this is not a wave file")
    soundfile.write(tmp_path / "silent.wav", np.zeros(0, np.float32), 16000)
    write_with_codecs(tmp_path / "video_only.mp4", frames=smooth_frames(5))
    for path, problem in cases.items():
        with pytest.raises(MediaError, match=problem) as info:
            load_audio(path)
        assert str(path) in str(info.value)
