"""vasa_jax.audio.mel: the light log-mel encoder at 25 fps."""

import librosa
import numpy as np

from vasa_jax.audio import MelFeatures, make_audio_encoder, num_frames
from vasa_jax.io import load_audio, save_audio


def _noise(seconds, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(np.float32)


def test_frames_are_centred_80ms_windows():
    audio = _noise(3.013)
    feats = MelFeatures().features(audio)
    assert feats.shape == (num_frames(audio.size), 80) == (75, 80)
    # Frame i: Hann window over samples [640 i - 320, 640 i + 960), silence outside the clip.
    padded = np.concatenate([np.zeros(320, np.float32), audio, np.zeros(1280, np.float32)])
    power = librosa.feature.melspectrogram(y=padded, sr=16000, n_fft=1280, hop_length=640, center=False, n_mels=80)
    np.testing.assert_allclose(feats, np.log(power[:, :75].T + 1e-6), atol=1e-4)


def test_a_tone_shows_in_the_frames_that_hold_it():
    audio = np.zeros(16000, np.float32)
    t = np.arange(640 * 3) / 16000
    audio[640 * 10: 640 * 13] = np.sin(2 * np.pi * 1000 * t)  # frames 10, 11, 12
    energy = MelFeatures().features(audio).max(axis=1)
    loud = np.flatnonzero(energy > energy.min() + 10)
    assert loud.min() in (9, 10) and loud.max() in (12, 13)  # the 80 ms windows reach half a frame each side
    assert energy[11] == energy.max() or energy[11] > energy.max() - 1


def test_streaming_equals_offline_exactly():
    audio = _noise(4.5, seed=1)
    encoder = MelFeatures(n_mels=40)
    offline = encoder.features(audio)
    stream = encoder.stream(step_frames=3)
    sizes = np.random.default_rng(2).integers(1, 2000, 200)
    pieces, start = [], 0
    for n in sizes:
        pieces.append(stream.push(audio[start: start + n]))
        start += n
    pieces.append(stream.push(audio[start:]))
    pieces.append(stream.flush())
    np.testing.assert_allclose(np.concatenate(pieces), offline, atol=1e-5)
    assert abs(stream.latency_seconds - (2 * 0.04 + 0.02)) < 1e-9  # rest of the group + half a window


def test_any_audio_source(tmp_path):
    audio = _noise(2.0, seed=3)
    save_audio(tmp_path / "a.wav", audio)
    encoder = make_audio_encoder("mel")
    from_file = encoder.features(tmp_path / "a.wav")  # 16-bit WAV: compare with the samples as read back
    np.testing.assert_allclose(from_file, encoder.features(load_audio(tmp_path / "a.wav")), atol=1e-6)
    stereo_44k = librosa.resample(audio, orig_sr=16000, target_sr=44100)[:, None].repeat(2, axis=1)
    assert encoder.features(stereo_44k, source_rate=44100).shape == (50, 80)
