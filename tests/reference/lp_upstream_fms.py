"""Upstream LivePortrait's F, M and S networks with random weights, for parity checks of vasa_jax's port.

Upstream's classes are imported from a checkout given at call time (this file holds none of its code). Every
tensor a default initialisation would leave trivial is randomised: BatchNorm running statistics and affine
parameters, LayerNorm scales and biases, GRN gamma and beta; convolution and linear layers keep torch's random
initialisation, biases included.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys

import torch

from vasa_jax.face.liveportrait.config import LivePortraitConfig

FILES = {
    "appearance_feature_extractor": "base_models/appearance_feature_extractor.pth",
    "motion_extractor": "base_models/motion_extractor.pth",
    "stitching_retargeting_module": "retargeting_models/stitching_retargeting_module.pth",
}
# The file's name for each MLP (upstream's helper.load_model reads them so).
STITCHING_SECTIONS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}


def _upstream(upstream_dir: str, module: str):
    if str(upstream_dir) not in sys.path:
        sys.path.insert(0, str(upstream_dir))
    return importlib.import_module(f"src.modules.{module}")


def randomise_norms(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Non-trivial values for every normalisation tensor (defaults of ones and zeros would hide bugs)."""
    def normal(t, std, mean=0.0):
        t.copy_(mean + std * torch.randn(t.shape, generator=generator))

    def uniform(t, low, high):
        t.copy_(low + (high - low) * torch.rand(t.shape, generator=generator))

    with torch.no_grad():
        for m in model.modules():
            kind = type(m).__name__
            if kind.startswith("BatchNorm"):
                normal(m.running_mean, 0.2)
                uniform(m.running_var, 0.5, 2.0)
            if kind.startswith("BatchNorm") or kind == "LayerNorm":
                uniform(m.weight, 0.5, 1.5)
                normal(m.bias, 0.1)
            if kind == "GRN":
                normal(m.gamma, 0.5)
                normal(m.beta, 0.1)


def build_upstream(upstream_dir: str, config: LivePortraitConfig, seed: int) -> dict[str, torch.nn.Module]:
    """{"appearance_feature_extractor", "motion_extractor", "stitching_retargeting_module"} -> upstream's modules
    at config's sizes, random weights, eval mode. The last is an nn.ModuleDict of the three MLPs, keyed as
    upstream's loader returns them (stitching, lip, eye)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    appearance = _upstream(upstream_dir, "appearance_feature_extractor").AppearanceFeatureExtractor(
        **dataclasses.asdict(config.appearance_feature_extractor_params))

    m_cfg = config.motion_extractor_params
    motion = _upstream(upstream_dir, "motion_extractor").MotionExtractor(num_kp=m_cfg.num_kp, num_bins=m_cfg.num_bins)
    if (tuple(m_cfg.depths), tuple(m_cfg.dims)) != ((3, 3, 9, 3), (96, 192, 384, 768)):
        # Upstream's wrapper only builds convnextv2_tiny; other sizes replace its backbone with the same class.
        motion.detector = _upstream(upstream_dir, "convnextv2").ConvNeXtV2(
            depths=list(m_cfg.depths), dims=list(m_cfg.dims), num_kp=m_cfg.num_kp, num_bins=m_cfg.num_bins)

    network = _upstream(upstream_dir, "stitching_retargeting_network").StitchingRetargetingNetwork
    s_cfg = config.stitching_retargeting_module_params
    stitching = torch.nn.ModuleDict({
        name: network(mlp.input_size, list(mlp.hidden_sizes), mlp.output_size)
        for name, mlp in (("stitching", s_cfg.stitching), ("lip", s_cfg.lip), ("eye", s_cfg.eye))})

    modules = {"appearance_feature_extractor": appearance, "motion_extractor": motion,
               "stitching_retargeting_module": stitching}
    for model in modules.values():
        randomise_norms(model, generator)
        model.eval()
    return modules


def upstream_state_dicts(modules: dict[str, torch.nn.Module]) -> dict[str, dict]:
    """{relative file path: what upstream saves there}: plain state dicts for base_models/*.pth; for the
    stitching file, the three MLPs' state dicts under upstream's section names with the `module.` prefix of the
    released file."""
    out = {}
    for name, model in modules.items():
        if name == "stitching_retargeting_module":
            out[FILES[name]] = {STITCHING_SECTIONS[k]: {f"module.{key}": v for key, v in mlp.state_dict().items()}
                                for k, mlp in model.items()}
        else:
            out[FILES[name]] = model.state_dict()
    return out
