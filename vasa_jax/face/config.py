"""The face model's architecture (stage 1) as a frozen dataclass: hashable, so Flax modules can hold it."""

from __future__ import annotations

import dataclasses
import math
from vasa_jax.errors import ConfigError, dataclass_from_section

POSE_DIM = 6  # z_pose: yaw, pitch, roll (degrees), tx, ty (image coordinates), scale; the toy world's POSE_KEYS


@dataclasses.dataclass(frozen=True)
class FaceConfig:
    image_size: int = 512  # square input and output resolution
    volume_channels: int = 96  # C of the appearance volume V_app (MegaPortraits: 96 x 16 x 64 x 64 at 512^2)
    volume_depth: int = 16  # D
    volume_size: int = 64  # H = W; image_size / volume_size must be a power of two
    id_dim: int = 512  # identity code z_id (the global descriptor)
    dyn_dim: int = 256  # holistic facial dynamics z_dyn: lips, expression, gaze and blinks in one vector
    # Appearance encoder: a stem at image_size, then one stride-2 stage per width down to volume_size
    # (so len(appearance_widths) == log2(image_size / volume_size)); lifted to the volume by a 1x1 conv.
    appearance_stem: int = 64
    appearance_widths: tuple = (128, 256, 512)
    appearance_blocks: int = 2  # 3D residual blocks on the lifted volume
    # Identity and motion encoders: stride-2 residual stages, then dense heads over the whole flattened map.
    encoder_widths: tuple = (64, 128, 256, 512, 512, 512)
    # Side of the image the identity and motion encoders read (0: base_size, image_size without an enhancer).
    # Lower renders sharper than the encoders read (LivePortrait's motion extractor reads 256 px for a 512 px
    # render), at the encoders' cost.
    encoder_size: int = 0
    # Warp generators (one to the canonical volume, one from it): a dense seed volume, then one 3D stage per
    # width, each doubling H and W (and D until volume_depth), conditioned on (z_dyn, z_id) by adaptive GroupNorm.
    warp_widths: tuple = (256, 128, 64, 32)
    warp_max_offset: float = 0.3  # largest non-rigid displacement, in normalised volume coordinates
    decoder_3d_blocks: int = 2  # 3D residual blocks on the driven volume
    decoder_2d_channels: int = 512  # after folding depth into channels
    decoder_2d_blocks: int = 4  # 2D residual blocks at volume_size
    decoder_up_widths: tuple = (256, 128, 64)  # one upsampling stage per width, volume_size -> image_size
    # Enhancer (MegaPortraits' high-resolution stage, here trained on a frozen base model): the networks above
    # read and render image_size / 2^len(enhancer_widths) (base_size), and the enhancer takes the base render up
    # to image_size, one 2x stage per width, conditioned on (z_dyn, z_id) so that detail the base's warps cannot
    # draw (a toy mouth is a pixel or two at 64 px) can follow the motion, and blended with the source image
    # warped by the base's warps (a source skip: the detail a 16^3 volume cannot carry). (): no enhancer.
    enhancer_widths: tuple = ()
    groups: int = 32  # GroupNorm groups (fewer where a layer has fewer channels)
    dtype: str = "float32"  # compute dtype ("bfloat16" for speed); params are always float32

    def __post_init__(self):
        if self.image_size % 2 ** len(self.enhancer_widths):
            raise ConfigError(f"image_size {self.image_size} must be divisible by 2^len(enhancer_widths) "
                              f"({2 ** len(self.enhancer_widths)})")
        ratio = self.base_size / self.volume_size
        steps = round(math.log2(ratio)) if ratio >= 1 else -1
        if steps < 0 or 2**steps != ratio:
            raise ConfigError(f"the base render's size / volume_size must be a power of two; got {self.base_size} / "
                              f"{self.volume_size}")
        for name in ("appearance_widths", "decoder_up_widths"):
            if len(getattr(self, name)) != steps:
                raise ConfigError(f"{name} needs one width per 2x step from {self.volume_size} to {self.base_size}"
                                 f" ({steps}); got {len(getattr(self, name))}")
        warp_seed = self.volume_size // 2 ** (len(self.warp_widths) - 1)
        if warp_seed < 1 or warp_seed * 2 ** (len(self.warp_widths) - 1) != self.volume_size:
            raise ConfigError(f"volume_size {self.volume_size} must be divisible by 2^(len(warp_widths) - 1)")
        if self.volume_depth & (self.volume_depth - 1):
            raise ConfigError(f"volume_depth must be a power of two (the warp generators double it); got {self.volume_depth}")
        if not 0 <= self.encoder_size <= self.base_size:
            raise ConfigError(f"encoder_size must be in [1, {self.base_size}] or 0 for the base render's size; got "
                              f"{self.encoder_size}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"dtype must be 'float32' or 'bfloat16'; got {self.dtype!r}")

    @property
    def base_size(self) -> int:
        """Side of the image the encoders read and the warping model renders, before the enhancer."""
        return self.image_size // 2 ** len(self.enhancer_widths)

    @property
    def motion_dim(self) -> int:
        """Length of a motion vector: z_pose then z_dyn."""
        return POSE_DIM + self.dyn_dim

    @classmethod
    def from_config(cls, section) -> "FaceConfig":
        """From a ConfigDict section (lists become tuples; unknown keys are an error)."""
        return dataclass_from_section(cls, section, "face config")
