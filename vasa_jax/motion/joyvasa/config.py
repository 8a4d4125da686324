"""JoyVASA's motion generator (DitTalkingHead) as a frozen dataclass: hashable, so jit holds it as a static value.

The sizes come from the checkpoint's `args`; the transformer's depth, heads and MLP ratio are fixed in upstream's
code (its DenoisingNetwork is built with its defaults whatever the args say), so they are fixed here too.
"""

from __future__ import annotations

import dataclasses

from vasa_jax.audio.wav2vec2 import EncoderConfig
from vasa_jax.errors import ConfigError

SAMPLE_RATE = 16000
FPS = 25  # upstream's model fixes 25 fps: a window of n frames is exactly n * 640 samples
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
# How the sinusoidal positions reach the tokens. "single_row": the row pe[P + L] added to every token, as
# upstream's code read until 2025-12-09 (the code the released weights were trained and published with);
# "per_token": pe[:P + L], one row per token (upstream's code since then).
POSITIONAL_ENCODINGS = ("single_row", "per_token")
PAD_MODES = ("zero", "replicate")  # how the last window's missing audio is filled


@dataclasses.dataclass(frozen=True)
class JoyVasaConfig:
    motion_dim: int = 70  # [exp 63 | scale 1 | t 3 | pitch, yaw, roll], normalised by the motion template
    n_motions: int = 100  # L: frames generated per window
    n_prev_motions: int = 25  # P: frames of the previous window the next one sees (motion and audio)
    feature_dim: int = 512  # d: transformer width and audio feature size
    n_diff_steps: int = 50  # T: diffusion steps (ancestral sampling runs all of them)
    n_layers: int = 8
    n_heads: int = 8
    mlp_ratio: int = 4
    max_positions: int = 600  # rows of the positional table (upstream's PositionalEncoding max_len)
    positional_encoding: str = "single_row"
    pad_mode: str = "zero"
    audio: EncoderConfig = EncoderConfig(model_type="hubert")  # HuBERT base: chinese-hubert-base's layout

    def __post_init__(self):
        if self.positional_encoding not in POSITIONAL_ENCODINGS:
            raise ConfigError(f"positional_encoding must be one of {POSITIONAL_ENCODINGS}; "
                              f"got {self.positional_encoding!r}")
        if self.pad_mode not in PAD_MODES:
            raise ConfigError(f"pad_mode must be one of {PAD_MODES}; got {self.pad_mode!r}")
        if self.feature_dim % (2 * self.n_heads):
            raise ConfigError(f"feature_dim {self.feature_dim} must be a multiple of 2 * n_heads ({2 * self.n_heads}) "
                              "(even for the sinusoidal table, whole heads for attention)")
        if not 0 < self.n_prev_motions <= self.n_motions:
            raise ConfigError(f"n_prev_motions must be in [1, n_motions = {self.n_motions}]; got {self.n_prev_motions}")
        # "single_row" reads row P + L, so the table needs one row more than the tokens.
        if self.tokens >= self.max_positions:
            raise ConfigError(f"n_prev_motions + n_motions = {self.tokens} must be below max_positions "
                              f"{self.max_positions}")
        if self.n_diff_steps < 1:
            raise ConfigError(f"n_diff_steps must be positive; got {self.n_diff_steps}")

    @property
    def tokens(self) -> int:
        """P + L: the transformer's sequence length."""
        return self.n_prev_motions + self.n_motions

    @property
    def audio_dim(self) -> int:
        """Width of the audio encoder's hidden states (768 for HuBERT base)."""
        return self.audio.hidden_size

    @property
    def window_samples(self) -> int:
        """Audio samples per window (64000 for 100 frames)."""
        return self.n_motions * SAMPLES_PER_FRAME
