"""Toy speech: random syllable scripts with prosody, and a source-filter synthesiser for them at 16 kHz.

Voiced phones are a glottal harmonic series shaped by formant resonances (additive synthesis, so formants
glide smoothly between phones); consonants are band-limited noise bursts; pauses are near-silence. Each
phone carries the lip target (viseme) that the face performs, which makes audio -> lips learnable.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SAMPLE_RATE = 16000
CONTROL_RATE = 1000  # Hz: phone-level signals (formants, amplitudes, lip targets) live at this rate

VISEMES = ("rest", "closed", "open", "spread", "round", "teeth", "lip_bite")

# Noise bands (Hz) for fricatives and plosive bursts.
NOISE_BANDS = {"low": (300, 2000), "mid": (1500, 4500), "high": (3800, 7600), "broad": (900, 7600)}
_BAND_NAMES = tuple(NOISE_BANDS)


@dataclasses.dataclass(frozen=True)
class Phone:
    name: str
    kind: str  # vowel | nasal | approximant | plosive | fricative | pause
    viseme: str
    mouth_open: float  # lip-opening target in [0, 1]
    mouth_width: float  # -1 rounded ... +1 spread
    voicing: float  # amplitude of the harmonic source
    formants: tuple = (500.0, 1500.0, 2500.0)  # F1, F2, F3 (Hz) for an average adult tract
    noise: str | None = None  # band of the frication or burst noise
    noise_level: float = 0.0
    duration: tuple = (0.06, 0.10)  # seconds, before the speaker's rate


PHONES = (
    Phone("_", "pause", "rest", 0.06, 0.0, 0.0, duration=(0.2, 0.6)),
    Phone("a", "vowel", "open", 1.00, 0.10, 1.0, (730, 1090, 2440), duration=(0.10, 0.20)),
    Phone("e", "vowel", "spread", 0.42, 0.85, 0.9, (530, 1840, 2480), duration=(0.09, 0.17)),
    Phone("i", "vowel", "spread", 0.22, 1.00, 0.8, (290, 2290, 3010), duration=(0.08, 0.15)),
    Phone("o", "vowel", "round", 0.60, -0.85, 0.95, (570, 840, 2410), duration=(0.10, 0.19)),
    Phone("u", "vowel", "round", 0.30, -1.00, 0.8, (310, 870, 2240), duration=(0.09, 0.16)),
    Phone("m", "nasal", "closed", 0.00, 0.00, 0.35, (260, 1000, 2200), duration=(0.06, 0.10)),
    Phone("n", "nasal", "teeth", 0.14, 0.25, 0.35, (260, 1700, 2600), duration=(0.05, 0.09)),
    Phone("l", "approximant", "teeth", 0.22, 0.20, 0.6, (360, 1300, 2700), duration=(0.05, 0.09)),
    Phone("b", "plosive", "closed", 0.00, 0.00, 0.08, (250, 900, 2300), "low", 0.5, (0.06, 0.09)),
    Phone("p", "plosive", "closed", 0.00, 0.00, 0.0, noise="low", noise_level=0.8, duration=(0.07, 0.10)),
    Phone("t", "plosive", "teeth", 0.12, 0.30, 0.0, noise="high", noise_level=0.8, duration=(0.06, 0.09)),
    Phone("k", "plosive", "teeth", 0.18, 0.10, 0.0, noise="mid", noise_level=0.8, duration=(0.06, 0.10)),
    Phone("s", "fricative", "teeth", 0.10, 0.45, 0.0, noise="high", noise_level=0.55, duration=(0.08, 0.13)),
    Phone("sh", "fricative", "round", 0.16, -0.55, 0.0, noise="mid", noise_level=0.55, duration=(0.08, 0.13)),
    Phone("f", "fricative", "lip_bite", 0.08, 0.10, 0.0, noise="broad", noise_level=0.3, duration=(0.07, 0.12)),
    Phone("v", "fricative", "lip_bite", 0.08, 0.10, 0.3, (300, 1200, 2300), "broad", 0.2, (0.06, 0.10)),
)
PHONE_INDEX = {p.name: i for i, p in enumerate(PHONES)}
_VOWELS = [PHONE_INDEX[c] for c in "aeiou"]
_ONSETS = [PHONE_INDEX[c] for c in ("m", "n", "l", "b", "p", "t", "k", "s", "sh", "f", "v")]
_CODAS = [PHONE_INDEX[c] for c in ("m", "n", "l", "s", "t", "k")]

# Per-phone tables for vectorised lookups.
PHONE_VISEME = np.array([VISEMES.index(p.viseme) for p in PHONES])
PHONE_OPEN = np.array([p.mouth_open for p in PHONES], np.float32)
PHONE_WIDTH = np.array([p.mouth_width for p in PHONES], np.float32)
_PHONE_VOICING = np.array([p.voicing for p in PHONES], np.float32)
_PHONE_FORMANTS = np.array([p.formants for p in PHONES], np.float32)
_PHONE_NOISE = np.zeros((len(PHONES), len(_BAND_NAMES)), np.float32)
for _i, _p in enumerate(PHONES):
    if _p.noise:
        _PHONE_NOISE[_i, _BAND_NAMES.index(_p.noise)] = _p.noise_level
_IS_PLOSIVE = np.array([p.kind == "plosive" for p in PHONES])
_IS_VOWEL = np.array([p.kind == "vowel" for p in PHONES])


@dataclasses.dataclass
class Script:
    """What is said: a sequence of phone segments with prosody. Arrays are [S] for S segments."""

    phones: np.ndarray  # int phone index
    starts: np.ndarray  # seconds
    ends: np.ndarray  # seconds
    stress: np.ndarray  # 1 on stressed syllables, else 0
    pitch: np.ndarray  # F0 multiplier at the segment's centre (phrase declination and accents)
    loudness: np.ndarray  # linear gain

    def phone_at(self, times: np.ndarray) -> np.ndarray:
        """Segment index at each time (seconds)."""
        return np.clip(np.searchsorted(self.ends, times, side="right"), 0, len(self.ends) - 1)


def sample_script(rng: np.random.Generator, seconds: float, speech_rate: float = 1.0) -> Script:
    """Phrases of words of (C)V(C) syllables separated by pauses, until `seconds` are filled."""
    segs = []  # (phone, duration, stress, pitch, loudness)
    total = 0.0

    def add(phone, stress, pitch, loud, duration=None):
        nonlocal total
        if duration is None:
            lo, hi = PHONES[phone].duration
            duration = rng.uniform(lo, hi) / speech_rate * (1.35 if stress and _IS_VOWEL[phone] else 1.0)
        segs.append((phone, duration, stress, pitch, loud))
        total += duration

    add(0, 0, 1.0, 0.0, rng.uniform(0.05, 0.4))
    while total < seconds:
        words = int(rng.integers(2, 8))
        phrase_loud = rng.uniform(0.55, 1.0)
        question = rng.uniform() < 0.2
        n_syll = [int(rng.choice([1, 1, 2, 2, 3])) for _ in range(words)]
        count = sum(n_syll)
        k = 0
        for w, syllables in enumerate(n_syll):
            stressed = int(rng.integers(syllables))
            for s in range(syllables):
                # phrase declination from 1.12 to 0.86, a rise at the end of questions
                pos = k / max(count - 1, 1)
                pitch = 1.12 - 0.26 * pos + (0.35 * max(pos - 0.7, 0) / 0.3 if question else 0.0)
                stress = int(s == stressed and rng.uniform() < 0.8)
                pitch *= 1.0 + stress * rng.uniform(0.08, 0.25)
                loud = phrase_loud * (1.3 if stress else 1.0) * rng.uniform(0.85, 1.15)
                if rng.uniform() < 0.75:
                    add(int(rng.choice(_ONSETS)), stress, pitch, loud)
                add(int(rng.choice(_VOWELS)), stress, pitch, loud)
                if rng.uniform() < 0.25:
                    add(int(rng.choice(_CODAS)), stress, pitch * 0.97, loud * 0.9)
                k += 1
            if w < words - 1 and rng.uniform() < 0.4:
                add(0, 0, pitch, 0.0, rng.uniform(0.03, 0.09))
        add(0, 0, 0.9, 0.0, rng.uniform(0.2, 0.7) / speech_rate)

    phones, durations, stress, pitch, loud = (np.asarray(c) for c in zip(*segs))
    ends = np.cumsum(durations)
    return Script(phones.astype(np.int64), ends - durations, ends, stress.astype(np.float32),
                  pitch.astype(np.float32), loud.astype(np.float32))


def gaussian_smooth(x: np.ndarray, sigma: float, axis: int = -1) -> np.ndarray:
    """Gaussian smoothing with `sigma` in samples, edges held (the one smoother the toy world uses)."""
    if sigma <= 0:
        return x
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    x = np.moveaxis(np.asarray(x, np.float32), axis, -1)
    padded = np.concatenate([np.repeat(x[..., :1], radius, -1), x, np.repeat(x[..., -1:], radius, -1)], -1)
    flat = padded.reshape(-1, padded.shape[-1])
    out = np.stack([np.convolve(row, kernel, mode="valid") for row in flat]).reshape(x.shape)
    return np.moveaxis(out.astype(np.float32), -1, axis)


@dataclasses.dataclass
class SourceControls:
    """The speech as source-filter controls at CONTROL_RATE ([M] or [M, k]): everything but the waveform."""

    f0: np.ndarray  # fundamental frequency (Hz) of the voiced source
    voicing: np.ndarray  # amplitude of the voiced source
    noise: np.ndarray  # [M, len(NOISE_BANDS)] amplitudes of the noise bands
    formants: np.ndarray  # [M, 3] F1..F3 (Hz)

    @property
    def loudness(self) -> np.ndarray:
        """[M] amplitude of all sources together: the speech's loudness envelope."""
        return self.voicing + self.noise.sum(axis=1)

    @property
    def pitch(self) -> np.ndarray:
        """[M] F0 where the voice sounds, 0 elsewhere."""
        return np.where(self.voicing > 0.05, self.f0, 0.0).astype(np.float32)


def source_controls(script: Script, rng: np.random.Generator, seconds: float, *, voice_pitch: float = 140.0,
                    formant_scale: float = 1.0) -> SourceControls:
    """The control signals of a script over `seconds` (cheap: no audio-rate work)."""
    m = int(np.ceil(seconds * CONTROL_RATE)) + 2
    tc = np.arange(m) / CONTROL_RATE
    seg = script.phone_at(tc)
    phone = script.phones[seg]
    within = np.clip((tc - script.starts[seg]) / (script.ends[seg] - script.starts[seg]), 0, 1)

    # Plosives: silent (or voice-bar) closure, then a burst in the last quarter.
    burst = _IS_PLOSIVE[phone] & (within > 0.72)
    voicing = _PHONE_VOICING[phone] * script.loudness[seg] * np.where(burst, 0.0, 1.0)
    voicing = gaussian_smooth(voicing, 0.012 * CONTROL_RATE)
    # Frication sits 10-20 dB under the vowels, as in real speech.
    noise_amp = 0.3 * _PHONE_NOISE[phone] * script.loudness[seg, None]
    noise_amp = np.where((_IS_PLOSIVE[phone] & ~burst)[:, None], 0.0, noise_amp)
    noise_amp = gaussian_smooth(noise_amp, 0.006 * CONTROL_RATE, axis=0)

    # Formants glide between voiced phones (coarticulation); unvoiced stretches take their neighbours' values.
    formants = _PHONE_FORMANTS[phone].copy()
    voiced_phone = _PHONE_VOICING[phone] > 0
    for j in range(3):
        formants[:, j] = np.interp(tc, tc[voiced_phone], formants[voiced_phone, j]) if voiced_phone.any() else formants[:, j]
    formants = gaussian_smooth(formants * formant_scale, 0.02 * CONTROL_RATE, axis=0)

    # F0: segment targets joined smoothly, with slow wander and a little jitter.
    centres = 0.5 * (script.starts + script.ends)
    f0 = voice_pitch * np.interp(tc, centres, script.pitch)
    f0 *= 1.0 + 0.03 * gaussian_smooth(rng.standard_normal(m), 0.08 * CONTROL_RATE) * 4
    f0 = gaussian_smooth(f0, 0.03 * CONTROL_RATE) * (1.0 + 0.004 * rng.standard_normal(m))
    return SourceControls(f0.astype(np.float32), voicing.astype(np.float32), noise_amp.astype(np.float32),
                          formants.astype(np.float32))


def synthesize(controls: SourceControls, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Renders source controls to a waveform: float32 [round(seconds * SAMPLE_RATE)]."""
    n = int(round(seconds * SAMPLE_RATE))
    voiced = _harmonic_source(controls.f0, controls.formants, n, rng)
    noise = _band_noise(rng, n)
    up = lambda x: _upsample(x, n)  # noqa: E731
    wave = up(controls.voicing) * voiced + np.einsum("bn,nb->n", noise, up(controls.noise.T).T)
    wave += 0.002 * rng.standard_normal(n).astype(np.float32)  # room noise floor
    wave *= rng.uniform(0.35, 0.9) / max(np.abs(wave).max(), 1e-6)
    return wave.astype(np.float32)


def _harmonic_source(f0: np.ndarray, formants: np.ndarray, n: int, rng) -> np.ndarray:
    """Sum of harmonics of f0 (at CONTROL_RATE) weighted by the formant envelope, rendered at SAMPLE_RATE."""
    k = np.arange(1, 41, dtype=np.float32)[:, None]  # harmonics
    freq = k * f0[None]  # [K, M]
    env = np.ones_like(freq)
    bandwidths = (90.0, 110.0, 170.0)
    for j, bw in enumerate(bandwidths):
        fj = formants[None, :, j]
        env *= fj**2 / np.sqrt((fj**2 - freq**2) ** 2 + (bw * freq) ** 2)
    amp = env / k  # glottal roll-off with lip radiation: about -6 dB per octave
    amp *= freq < 5000.0  # the formant envelope carries nothing audible above
    amp /= np.maximum(amp.sum(axis=0, keepdims=True), 1e-6) / 3.0
    # Accumulate phase in float64 and wrap it: float32 would drift audibly over seconds at 40x the f0.
    phase = np.cumsum(_upsample(f0, n), dtype=np.float64) / SAMPLE_RATE + rng.uniform()
    phase = (2 * np.pi * (phase % 1.0)).astype(np.float32)
    amp_up = _upsample(amp, n)  # [K, N]
    return np.einsum("kn,kn->n", amp_up, np.sin(k * phase[None]).astype(np.float32)).astype(np.float32)


def _band_noise(rng, n: int) -> np.ndarray:
    """White noise split into NOISE_BANDS with soft (raised-cosine) band edges: [bands, N]."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    out = []
    for lo, hi in NOISE_BANDS.values():
        edge = 150.0
        rise = np.clip((freqs - (lo - edge)) / (2 * edge), 0, 1)
        fall = np.clip(((hi + edge) - freqs) / (2 * edge), 0, 1)
        mask = np.sin(0.5 * np.pi * rise) ** 2 * np.sin(0.5 * np.pi * fall) ** 2
        band = np.fft.irfft(spectrum * mask, n)
        out.append(band / (band.std() + 1e-9))
    return np.asarray(out, np.float32)


def _upsample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of [..., M] control-rate signals to [..., n] audio samples (M >= n / 16 + 2)."""
    factor = SAMPLE_RATE // CONTROL_RATE
    w = (np.arange(factor, dtype=np.float32) / factor)
    m = -(-n // factor)
    lo, hi = x[..., :m, None], x[..., 1 : m + 1, None]
    out = lo + (hi - lo) * w  # [..., m, factor]: no gather, just broadcasting
    return out.reshape(*x.shape[:-1], m * factor)[..., :n]
