"""Toy-world identities: a seed -> the look (head shape, colours, feature placement) and voice of one person.

Units are head-local: the skull is an ellipsoid of roughly unit radius; x points to the image's right when
the face looks at the camera, y up, z out of the face.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Identities used for training are drawn from TRAIN_IDENTITIES; evaluation uses the disjoint held-out set.
TRAIN_IDENTITIES = range(0, 100_000)
HELDOUT_IDENTITIES = tuple(range(1_000_000, 1_000_064))

_IDENTITY_STREAM = 0x1D  # separates identity randomness from clip randomness for the same integer seed

_SKIN_TONES = np.array([  # light to deep, linear-ish RGB in [0, 1]
    [0.96, 0.80, 0.69], [0.93, 0.74, 0.60], [0.87, 0.66, 0.52], [0.78, 0.57, 0.43],
    [0.66, 0.46, 0.33], [0.55, 0.37, 0.26], [0.43, 0.28, 0.19], [0.32, 0.21, 0.15],
])
_HAIR_COLOURS = np.array([
    [0.06, 0.05, 0.05], [0.18, 0.11, 0.07], [0.33, 0.20, 0.11], [0.55, 0.30, 0.13],  # black, browns, auburn
    [0.80, 0.66, 0.40], [0.93, 0.85, 0.62], [0.62, 0.62, 0.62], [0.90, 0.90, 0.90],  # blonds, grey, white
    [0.15, 0.30, 0.75], [0.80, 0.25, 0.55], [0.20, 0.60, 0.35],  # dyed: blue, pink, green
])
_HAIR_WEIGHTS = np.array([5, 5, 4, 2, 2, 1.5, 1, 0.5, 0.3, 0.3, 0.3])
_IRIS_COLOURS = np.array([
    [0.30, 0.18, 0.08], [0.45, 0.28, 0.12], [0.25, 0.45, 0.70], [0.30, 0.50, 0.30], [0.50, 0.52, 0.55],
])


@dataclasses.dataclass(frozen=True)
class Identity:
    seed: int
    # head: upper half-ellipsoid (head_width, head_top, head_depth); the lower half shares width and depth
    head_width: float
    head_top: float
    jaw_length: float  # y semi-axis of the lower half at rest; the jaw drop adds to it
    head_depth: float
    skin: tuple  # RGB in [0, 1]
    blush: float  # cheek redness
    spots: tuple  # freckles / moles: ((x, y, radius), ...) in face coordinates
    # hair
    hair: tuple  # RGB
    hairline: float  # y where the hair starts on the forehead (unit-sphere coordinates of the hair shell)
    hair_volume: float  # hair shell scale relative to the skull
    hair_back: float  # how far down the back the hair reaches (unit-sphere y)
    long_hair: bool  # a hanging curtain of hair behind the head and neck
    fringe: float  # 0 = none; > 0 lowers the hairline in the middle (bangs)
    bald: bool
    beard: float  # 0 = none, else density in (0, 1]
    # eyes and brows
    eye_sep: float  # half-distance between eye centres
    eye_y: float
    eye_width: float  # half-width of the eye opening
    eye_height: float  # half-height of the eye opening
    iris: tuple  # RGB
    brow_gap: float  # brow height above the eye centre
    brow_thickness: float
    brow_arch: float
    brow: tuple  # RGB
    # nose and ears
    nose_y: float
    nose_length: float  # y semi-axis
    nose_width: float  # x semi-axis
    nose_depth: float  # z semi-axis (protrusion)
    ear_size: float
    # mouth
    mouth_y: float
    mouth_width: float  # half-width at rest
    lip_thickness: float
    lips: tuple  # RGB
    # surroundings
    clothes: tuple  # RGB
    background_top: tuple  # RGB
    background_bottom: tuple  # RGB
    # voice
    voice_pitch: float  # mean F0 in Hz
    formant_scale: float  # vocal-tract length: > 1 raises all formants
    speech_rate: float  # > 1 speaks faster

    def vector(self) -> np.ndarray:
        """All appearance parameters as one float vector (for identity-error metrics)."""
        out = []
        for f in dataclasses.fields(self):
            if f.name in ("seed", "spots"):
                continue
            out.extend(np.atleast_1d(np.asarray(getattr(self, f.name), np.float64)).tolist())
        return np.asarray(out)


def is_heldout(identity: int) -> bool:
    return identity in HELDOUT_IDENTITIES


def sample_identity(identity: int) -> Identity:
    """The person behind an identity seed (any int; deterministic)."""
    rng = np.random.default_rng([_IDENTITY_STREAM, int(identity)])
    u = rng.uniform

    skin = _jitter(rng, _SKIN_TONES[rng.integers(len(_SKIN_TONES))], 0.03)
    hair = _jitter(rng, _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_WEIGHTS / _HAIR_WEIGHTS.sum())], 0.04)
    bald = bool(u() < 0.06)
    head_width = u(0.72, 0.86)
    head_top = u(0.95, 1.08)
    eye_y = u(0.10, 0.22)
    eye_sep = u(0.25, 0.34)
    eye_width = u(0.11, 0.15)
    mouth_y = u(-0.52, -0.40)
    spots = tuple(
        (float(u(-0.5, 0.5)), float(u(-0.6, 0.45)), float(u(0.008, 0.022)))
        for _ in range(int(rng.choice([0, 0, 2, 5, 10, 16])))
    )
    lip_tint = np.array([0.72, 0.30, 0.32])
    ident = Identity(
        seed=int(identity),
        head_width=head_width,
        head_top=head_top,
        jaw_length=u(1.0, 1.22),
        head_depth=u(0.86, 0.98),
        skin=tuple(skin),
        blush=u(0.0, 0.35),
        spots=spots,
        hair=tuple(hair),
        hairline=u(0.25, 0.55),
        hair_volume=u(1.04, 1.14),
        hair_back=u(-0.55, 0.05),
        long_hair=bool(u() < 0.35) and not bald,
        fringe=float(u(0.1, 0.35)) if u() < 0.3 else 0.0,
        bald=bald,
        beard=float(u(0.5, 1.0)) if u() < 0.15 else 0.0,
        eye_sep=eye_sep,
        eye_y=eye_y,
        eye_width=eye_width,
        eye_height=eye_width * u(0.42, 0.6),
        iris=tuple(_jitter(rng, _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))], 0.04)),
        brow_gap=u(0.10, 0.16),
        brow_thickness=u(0.018, 0.04),
        brow_arch=u(0.0, 0.035),
        brow=tuple(np.clip(hair * u(0.55, 0.9), 0, 1)),
        nose_y=u(-0.12, -0.02),
        nose_length=u(0.16, 0.26),
        nose_width=u(0.08, 0.13),
        nose_depth=u(0.12, 0.22),
        ear_size=u(0.17, 0.26),
        mouth_y=mouth_y,
        mouth_width=u(0.17, 0.24),
        lip_thickness=u(0.03, 0.05),
        lips=tuple(np.clip(skin * 0.55 + lip_tint * 0.45 + rng.normal(0, 0.03, 3), 0, 1)),
        clothes=tuple(u(0.05, 0.9, 3)),
        background_top=tuple(u(0.15, 0.9, 3)),
        background_bottom=tuple(u(0.1, 0.8, 3)),
        voice_pitch=float(np.exp(u(np.log(90.0), np.log(240.0)))),
        formant_scale=u(0.92, 1.14),
        speech_rate=u(0.85, 1.2),
    )
    # A fringe ends above the brows (in the hair shell's unit coordinates, whose centre sits 0.04 up).
    brow_top = ident.eye_y + ident.brow_gap + ident.brow_arch + ident.brow_thickness + 0.03
    lowest = (brow_top - 0.04) / (ident.head_top * ident.hair_volume)
    return dataclasses.replace(ident, fringe=float(np.clip(ident.fringe, 0.0, max(ident.hairline - lowest, 0.0))))


def _jitter(rng, colour, sigma):
    return np.clip(np.asarray(colour) + rng.normal(0.0, sigma, 3), 0.0, 1.0)
