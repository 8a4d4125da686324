"""Parity of vasa-jax's LivePortrait port with upstream, the maxdiffusion way, and the CI reference it records.

    python tests/reference/liveportrait_parity.py --upstream DIR                # full size: prints the figures
    python tests/reference/liveportrait_parity.py --upstream DIR --small --record tests/data/liveportrait_small

DIR is a checkout of KwaiVGI/LivePortrait (its code is imported from there at run time; nothing of it is
kept). Upstream's networks are built with random weights (BatchNorm statistics, norms, GRN, spectral-norm
vectors randomised: lp_upstream_fms.py, lp_upstream_wg.py), saved with torch.save exactly as upstream's
checkpoints are laid out, loaded through vasa_jax's load_liveportrait, and every public function is compared
with its upstream counterpart (LivePortraitWrapper's methods) on the same random inputs. --record writes the
saved weights (packed into a numpy archive: tests/upstream_layout.py) and the inputs and upstream's outputs
(reference.npz) into a folder, which tests/test_liveportrait.py compares against in CI without upstream.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: upstream_layout
import lp_upstream_fms  # noqa: E402
import lp_upstream_wg  # noqa: E402
from upstream_layout import pack  # noqa: E402


def build(upstream_dir: str, config, seed: int) -> tuple[dict, dict]:
    """(upstream's five networks with random weights, {file: state dict} laid out as upstream releases them)."""
    modules, files = {}, {}
    for offset, helper in enumerate((lp_upstream_fms, lp_upstream_wg)):
        built = helper.build_upstream(upstream_dir, config, seed + offset)
        modules.update(built)
        files.update(helper.upstream_state_dicts(built))
    return modules, files


def round_to_half(modules) -> None:
    """Every parameter and buffer rounded to a float16 value, so that a float16 copy of the weights (the
    recorded CI reference, small enough to commit) holds exactly the weights the reference outputs came from."""
    with torch.no_grad():
        for module in modules.values():
            for tensor in list(module.parameters()) + list(module.buffers()):
                if tensor.is_floating_point():
                    tensor.copy_(tensor.half().float())


def half_files(files: dict) -> dict:
    """The state dicts with float16 tensors (upstream's keys and nesting; a quarter of a float32 copy's size)."""
    def convert(value):
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value.half() if torch.is_tensor(value) and value.is_floating_point() else value
    return convert(files)


def strided(name: str, array: np.ndarray) -> tuple[np.ndarray, int]:
    """(a spatial subsample of a large output, its stride): the CI reference keeps every stride-th pixel of
    the images and volumes (still a function of every weight) to stay small."""
    stride = RECORD_STRIDES.get(name, 1)
    if stride == 1:
        return array, 1
    index = (slice(None),) * (array.ndim - 3) + (slice(None, None, stride), slice(None, None, stride), slice(None))
    return array[index], stride


RECORD_STRIDES = {"generate": 4, "warp_out": 2, "warp_deformation": 2, "appearance": 2}


def save_upstream_layout(files: dict, folder: Path) -> None:
    """State dicts saved with torch.save at upstream's paths (base_models/*.pth, retargeting_models/*.pth)."""
    for relative, state in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)


def upstream_outputs(upstream_dir: str, modules, inputs: dict) -> dict[str, np.ndarray]:
    """Every public function computed by upstream's own code (its wrapper's methods on the random modules)."""
    sys.path.insert(0, upstream_dir)
    from src.live_portrait_wrapper import LivePortraitWrapper

    wrapper = types.SimpleNamespace(
        appearance_feature_extractor=modules["appearance_feature_extractor"],
        motion_extractor=modules["motion_extractor"], warping_module=modules["warping_module"],
        spade_generator=modules["spade_generator"],
        stitching_retargeting_module=dict(modules["stitching_retargeting_module"].items()),
        inference_cfg=types.SimpleNamespace(flag_use_half_precision=False), device="cpu", compile=False)
    for name in ("inference_ctx", "get_kp_info", "transform_keypoint", "stitch", "stitching", "retarget_eye",
                 "retarget_lip", "extract_feature_3d", "warp_decode"):
        setattr(wrapper, name, types.MethodType(getattr(LivePortraitWrapper, name), wrapper))

    def t(x):
        return torch.from_numpy(np.asarray(x))

    def nchw(x):
        return t(x).permute(0, 3, 1, 2).contiguous()

    out = {}
    with torch.no_grad():
        source = nchw(inputs["source"])
        out["appearance"] = wrapper.extract_feature_3d(source).permute(0, 2, 3, 4, 1).numpy()
        info = wrapper.get_kp_info(source)
        for key in ("kp", "exp", "t", "scale"):
            out[f"info_{key}"] = info[key].numpy()
        for key in ("pitch", "yaw", "roll"):
            out[f"info_{key}"] = info[key][:, 0].numpy()
        out["keypoints"] = wrapper.transform_keypoint(info).numpy()
        kp_s, kp_d = t(inputs["kp_source"]), t(inputs["kp_driving"])
        f_s = t(inputs["f_s"]).permute(0, 4, 1, 2, 3).contiguous()
        warped = modules["warping_module"](f_s, kp_driving=kp_d, kp_source=kp_s)
        out["warp_out"] = warped["out"].permute(0, 2, 3, 1).numpy()
        out["warp_occlusion_map"] = warped["occlusion_map"].permute(0, 2, 3, 1).numpy()
        out["warp_deformation"] = warped["deformation"].numpy()
        out["generate"] = modules["spade_generator"](feature=nchw(inputs["warped"])).permute(0, 2, 3, 1).numpy()
        out["stitch"] = wrapper.stitching(kp_s, kp_d).numpy()
        out["retarget_eye"] = wrapper.retarget_eye(kp_s, t(inputs["eye_ratio"])).numpy()
        out["retarget_lip"] = wrapper.retarget_lip(kp_s, t(inputs["lip_ratio"])).numpy()
    return out


def random_inputs(config, seed: int, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = config.num_kp
    # float16 values (in float32 arrays): the recorded reference stores its inputs as float16, exactly.
    a = config.appearance_feature_extractor_params
    w = config.warping_module_params
    inputs = {
        "source": rng.uniform(0, 1, (batch, 256, 256, 3)).astype(np.float32),
        "f_s": rng.normal(0, 1, (batch, a.reshape_depth, 64, 64, a.reshape_channel)).astype(np.float32),
        "kp_source": rng.uniform(-0.6, 0.6, (batch, k, 3)).astype(np.float32),
        "kp_driving": rng.uniform(-0.6, 0.6, (batch, k, 3)).astype(np.float32),
        "warped": rng.normal(0, 1, (batch, 64, 64, w.block_expansion * 2 ** w.num_down_blocks)).astype(np.float32),
        "eye_ratio": rng.uniform(0, 0.5, (batch, 3)).astype(np.float32),
        "lip_ratio": rng.uniform(0, 0.8, (batch, 2)).astype(np.float32),
    }
    return {name: value.astype(np.float16).astype(np.float32) for name, value in inputs.items()}


def ours(model, params, inputs: dict, dtype=None) -> dict[str, np.ndarray]:
    """The same functions through vasa-jax (jitted, as the pipeline runs them)."""
    import jax

    out = {}
    source = inputs["source"]
    out["appearance"] = jax.jit(model.appearance)(params, source)
    info = jax.jit(model.motion_info)(params, source)
    out.update({f"info_{k}": v for k, v in info.items()})
    out["keypoints"] = jax.jit(model.keypoints)(info)
    warped = jax.jit(model.warp)(params, inputs["f_s"], inputs["kp_source"], inputs["kp_driving"])
    out.update({f"warp_{k}": v for k, v in warped.items()})
    out["generate"] = jax.jit(model.generate)(params, inputs["warped"])
    out["stitch"] = jax.jit(model.stitch)(params, inputs["kp_source"], inputs["kp_driving"])
    out["retarget_eye"] = jax.jit(model.retarget_eye)(params, inputs["kp_source"], inputs["eye_ratio"])
    out["retarget_lip"] = jax.jit(model.retarget_lip)(params, inputs["kp_source"], inputs["lip_ratio"])
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def compare(reference: dict, got: dict) -> dict[str, tuple[float, float]]:
    """{name: (max abs difference / max abs of the reference, max abs difference)}."""
    return {k: (float(np.abs(got[k] - v).max() / max(np.abs(v).max(), 1e-12)), float(np.abs(got[k] - v).max()))
            for k, v in reference.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="a checkout of KwaiVGI/LivePortrait")
    p.add_argument("--small", action="store_true", help="the reduced widths of config.small() (CI's reference)")
    p.add_argument("--record", help="write the weights (upstream layout) and reference.npz into this folder")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true", help="also compare bfloat16 computation")
    args = p.parse_args(argv)

    import jax.numpy as jnp

    from vasa_jax.face.liveportrait import config as lp_config
    from vasa_jax.face.liveportrait.model import load_liveportrait

    config = lp_config.small() if args.small else lp_config.LivePortraitConfig()
    torch.set_num_threads(os.cpu_count() or 1)
    modules, files = build(args.upstream, config, args.seed)
    if args.record:
        round_to_half(modules)
        files = half_files(files)
    inputs = random_inputs(config, args.seed, args.batch)
    reference = upstream_outputs(args.upstream, modules, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.record) if args.record else Path(tmp)
        save_upstream_layout(files, folder)
        model, params = load_liveportrait(folder, config=config)
        if args.record:
            recorded = {f"input_{k}": v.astype(np.float16) for k, v in inputs.items()}
            for name, value in reference.items():
                recorded[f"output_{name}"], recorded[f"stride_{name}"] = strided(name, value)
            np.savez_compressed(folder / "reference.npz", **recorded)
        results = {"float32": compare(reference, ours(model, params, inputs))}
        if args.bf16:
            model16, _ = load_liveportrait(folder, config=config, dtype=jnp.bfloat16)
            results["bfloat16"] = compare(reference, ours(model16, params, inputs))
    if args.record:
        pack(args.record)  # committed as numpy archives; the tests lay out upstream's files themselves
    print(f"LivePortrait parity, {'small' if args.small else 'full'} size, batch {args.batch}: "
          "max |ours - upstream| / max |upstream|, and max abs difference")
    for dtype, table in results.items():
        for name, (relative, absolute) in table.items():
            print(f"  {dtype:8s} {name:22s} {relative:.2e}  {absolute:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
