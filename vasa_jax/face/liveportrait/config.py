"""Sizes of LivePortrait's networks (upstream's models.yaml at full size; `small()` for tests).

A config is frozen and hashable, so jitted functions can take it as a static argument. Every field keeps
upstream's name where upstream has one, so a converted folder's json reads like models.yaml.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class AppearanceConfig:
    """F: image -> 3-D appearance feature volume."""

    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


@dataclasses.dataclass(frozen=True)
class MotionExtractorConfig:
    """M: ConvNeXtV2 backbone and its keypoint / pose / expression heads (convnextv2_tiny at full size)."""

    num_kp: int = 21
    num_bins: int = 66
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)


@dataclasses.dataclass(frozen=True)
class DenseMotionConfig:
    """The dense motion network inside W (hourglass, mask and occlusion heads)."""

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4


@dataclasses.dataclass(frozen=True)
class WarpingConfig:
    """W: warps the appearance volume from the source keypoints to the driving ones."""

    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    estimate_occlusion_map: bool = True
    dense_motion_params: DenseMotionConfig = DenseMotionConfig()


@dataclasses.dataclass(frozen=True)
class SpadeConfig:
    """G: SPADE decoder, warped features -> image (upscale 2: 256 -> 512)."""

    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64  # width of the last block (upstream's constructor default)
    hidden: int = 128  # width of each SPADE's shared conv: fixed in upstream's code, so always 128 for its weights

    def upstream_kwargs(self) -> dict:
        """The arguments of upstream's SPADEDecoder (hidden is not one of them)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "hidden"}


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """One stitching / retargeting MLP (Linear + ReLU stacks)."""

    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


@dataclasses.dataclass(frozen=True)
class StitchingConfig:
    """S: the stitching MLP and the eye and lip retargeting MLPs."""

    stitching: MLPConfig = MLPConfig(126, (128, 128, 64), 65)
    lip: MLPConfig = MLPConfig(65, (128, 128, 64), 63)
    eye: MLPConfig = MLPConfig(66, (256, 256, 128, 128, 64), 63)


@dataclasses.dataclass(frozen=True)
class LivePortraitConfig:
    """All five networks (upstream's model_params)."""

    appearance_feature_extractor_params: AppearanceConfig = AppearanceConfig()
    motion_extractor_params: MotionExtractorConfig = MotionExtractorConfig()
    warping_module_params: WarpingConfig = WarpingConfig()
    spade_generator_params: SpadeConfig = SpadeConfig()
    stitching_retargeting_module_params: StitchingConfig = StitchingConfig()

    @property
    def num_kp(self) -> int:
        return self.motion_extractor_params.num_kp

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LivePortraitConfig":
        """The inverse of to_dict (lists become tuples; missing sections take the full-size defaults)."""
        return _build(cls, d)


def _build(cls, d):
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in d:
            continue
        value = d[field.name]
        sub = field.type if isinstance(field.type, type) else globals().get(str(field.type))
        if sub is not None and dataclasses.is_dataclass(sub) and isinstance(value, dict):
            value = _build(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def small() -> LivePortraitConfig:
    """Reduced widths with upstream's structure (every block kind present), for tests: 21 keypoints, the same
    volume depth and spatial sizes, a fraction of the channels."""
    return LivePortraitConfig(
        AppearanceConfig(block_expansion=8, max_features=64, reshape_channel=4, num_resblocks=2),
        MotionExtractorConfig(depths=(1, 1, 2, 1), dims=(8, 16, 24, 32)),
        WarpingConfig(block_expansion=4, max_features=64, reshape_channel=4,
                      dense_motion_params=DenseMotionConfig(block_expansion=4, max_features=32, num_blocks=3,
                                                            compress=2)),
        SpadeConfig(block_expansion=4, max_features=64),
        StitchingConfig(MLPConfig(126, (16, 8), 65), MLPConfig(65, (16, 8), 63), MLPConfig(66, (16, 8), 63)),
    )


def tiny() -> LivePortraitConfig:
    """The smallest networks of upstream's structure, for fast pipeline and training tests (no upstream weights
    have these sizes: SPADE's fixed width of 128 is reduced too, which upstream's code does not allow)."""
    base = small()
    # A volume of depth 4 (not 16) and one compressed channel: the dense motion network's cost is set by the
    # volume and its 22 x (compress + 1) input channels, not by the widths small() reduces.
    return dataclasses.replace(
        base,
        appearance_feature_extractor_params=dataclasses.replace(base.appearance_feature_extractor_params,
                                                                reshape_channel=16, reshape_depth=4),
        warping_module_params=dataclasses.replace(
            base.warping_module_params, reshape_channel=16,
            dense_motion_params=dataclasses.replace(base.warping_module_params.dense_motion_params, reshape_depth=4,
                                                    compress=1)),
        spade_generator_params=dataclasses.replace(base.spade_generator_params, out_channels=8, hidden=8))
