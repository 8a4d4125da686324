"""Upstream LivePortrait's warping module (W) and SPADE decoder (G) built from an upstream checkout, with every
weight, bias, BatchNorm statistic and spectral-norm vector randomised, for the parity script.

Holds none of upstream's code: the classes are imported from `upstream_dir` (a LivePortrait checkout) when
build_upstream runs, so this file needs torch but upstream only at call time.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys

import torch

from vasa_jax.face.liveportrait.config import LivePortraitConfig

FILES = {"warping_module": "base_models/warping_module.pth", "spade_generator": "base_models/spade_generator.pth"}


def build_upstream(upstream_dir, config: LivePortraitConfig, seed: int) -> dict[str, torch.nn.Module]:
    """{"warping_module": WarpingNetwork, "spade_generator": SPADEDecoder} at `config`'s sizes, randomised, eval."""
    if str(upstream_dir) not in sys.path:
        sys.path.insert(0, str(upstream_dir))
    warping = importlib.import_module("src.modules.warping_network").WarpingNetwork
    spade = importlib.import_module("src.modules.spade_generator").SPADEDecoder
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    modules = {
        "warping_module": warping(**dataclasses.asdict(config.warping_module_params)),
        "spade_generator": spade(**config.spade_generator_params.upstream_kwargs()),
    }
    for module in modules.values():
        randomise(module, generator)
        module.eval()
    return modules


def randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Random values where defaults would hide a mistake: biases, BatchNorm affine and running statistics
    (variances positive), and the spectral-norm vectors. u and v are random unit vectors, then one power
    step turns u towards W v as training would: with u and v both independent, sigma = u . W v is near zero
    and of either sign, which divides the weights into noise."""
    def normal(shape, std):
        return torch.randn(shape, generator=generator) * std

    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, torch.nn.modules.batchnorm._BatchNorm):
                c = sub.num_features
                sub.weight.copy_(1 + normal(c, 0.2))
                sub.bias.copy_(normal(c, 0.2))
                sub.running_mean.copy_(normal(c, 0.2))
                sub.running_var.copy_(0.5 + torch.rand(c, generator=generator))
            elif isinstance(sub, (torch.nn.Conv2d, torch.nn.Conv3d)) and sub.bias is not None:
                sub.bias.copy_(normal(sub.bias.shape, 0.1))
            if hasattr(sub, "weight_orig"):
                w = sub.weight_orig.reshape(sub.weight_orig.shape[0], -1)
                v = normal(w.shape[1], 1.0)
                v /= v.norm()
                u = w @ v + normal(w.shape[0], 0.1 * float((w @ v).norm()) / w.shape[0] ** 0.5)
                sub.weight_v.copy_(v)
                sub.weight_u.copy_(u / u.norm())


def upstream_state_dicts(modules: dict[str, torch.nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
    """What upstream saves for these networks: {relative file name: state_dict}."""
    return {FILES[name]: module.state_dict() for name, module in modules.items()}
