"""LivePortrait's five networks as one model of pure functions, and loading its public weights.

    model, params = load_liveportrait("pretrained_weights")   # upstream's folder, or a converted one
    f_s = model.appearance(params, source)                      # [B, 256, 256, 3] in [0, 1] -> [B, 16, 64, 64, 32]
    info = model.motion_info(params, source)                    # kp, pitch, yaw, roll, t, exp, scale
    x_s = model.keypoints(info)                                 # [B, 21, 3]
    x_d = model.stitch(params, x_s, x_d)                        # stitched driving keypoints
    warped = model.warp(params, f_s, x_s, x_d)                  # out [B, 64, 64, 256], occlusion_map, deformation
    image = model.generate(params, warped["out"])               # [B, 512, 512, 3] in [0, 1]

params is one tree with a subtree per network, keyed by upstream's checkpoint names (NETWORKS). The names and
semantics mirror upstream's LivePortraitWrapper so each function can be compared with its counterpart. The
project's face interface over this model is face_model.LivePortraitFaceModel.

Weights: upstream's layout (base_models/*.pth and retargeting_models/stitching_retargeting_module.pth, read
with torch.load(weights_only=True)) or a converted folder (CONVERTED_WEIGHTS + CONVERTED_CONFIG, no torch
needed; `python -m vasa_jax.face.liveportrait.convert` writes one).

Precision (LivePortrait(config, dtype=jnp.bfloat16)): params stay float32 and every output is float32. F and W
compute in bfloat16 (statistics, grid coordinates, the mask softmax and the deformation in float32); G only its
SPADE modulation convs, with float32 accumulation, its residual path float32 (spade.py says why). M stays float32:
it is 2 % of a frame's FLOPs, and in bfloat16 its scale head was off by 7 % of its (random-weight) scale and the
keypoints by 1.6 %. At full size against upstream with random weights (tests/reference/liveportrait_parity.py
--bf16): the image within 8.4e-3 max abs (float32: 4e-6); F's volume and W's output within 1.3e-2 of their scale.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.face.liveportrait import appearance, camera, motion_extractor, spade, stitching, warping
from vasa_jax.face.liveportrait.config import LivePortraitConfig
from vasa_jax.io.weights import (CheckpointError, check_tree, checkpoint_folder, flatten, read_state_dict,
                                 read_weights_tree)

NETWORKS = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator",
            "stitching_retargeting_module")
UPSTREAM_FILES = {name: f"base_models/{name}.pth" for name in NETWORKS[:4]}
UPSTREAM_FILES["stitching_retargeting_module"] = "retargeting_models/stitching_retargeting_module.pth"
UPSTREAM_SUBFOLDER = "liveportrait"  # where `huggingface-cli download KwaiVGI/LivePortrait` puts the human model
CONVERTED_WEIGHTS = "liveportrait.safetensors"
CONVERTED_CONFIG = "liveportrait.json"
FORMAT = "vasa-jax-liveportrait"
SOURCE_SIZE = 256  # F and M read 256x256 crops
OUTPUT_SIZE = 512  # G writes 512x512


class LivePortrait:
    """The five networks of one config; every method is a pure function of (params, inputs), jit-compatible.

    dtype: computation dtype of the convolutional networks (float32, or bfloat16 where measured safe: the
    module docstring's Precision); params stay float32 and every output is float32.
    """

    def __init__(self, config: LivePortraitConfig = LivePortraitConfig(), *, dtype=jnp.float32):
        self.config, self.dtype = config, jnp.dtype(dtype)
        c = config
        self.networks = {
            "appearance_feature_extractor": appearance.AppearanceFeatureExtractor(
                c.appearance_feature_extractor_params, dtype=self.dtype),
            "motion_extractor": motion_extractor.MotionExtractor(c.motion_extractor_params),  # float32: Precision
            "warping_module": warping.WarpingNetwork(c.warping_module_params, dtype=self.dtype),
            "spade_generator": spade.SPADEDecoder(c.spade_generator_params, dtype=self.dtype),
        }

    # Equal models compile to the same programs: jitted functions take a model as a static argument.
    def __eq__(self, other):
        return type(other) is type(self) and (other.config, other.dtype) == (self.config, self.dtype)

    def __hash__(self):
        return hash((type(self), self.config, self.dtype))

    def example_inputs(self) -> dict[str, tuple]:
        """Zero inputs of each network, for init and shape checks."""
        c, k = self.config, self.config.num_kp
        depth = c.appearance_feature_extractor_params.reshape_depth
        channels = c.appearance_feature_extractor_params.reshape_channel
        side = SOURCE_SIZE // 2 ** c.appearance_feature_extractor_params.num_down_blocks
        warped = c.warping_module_params.block_expansion * 2 ** c.warping_module_params.num_down_blocks
        image = jnp.zeros((1, SOURCE_SIZE, SOURCE_SIZE, 3), jnp.float32)
        kp = jnp.zeros((1, k, 3), jnp.float32)
        return {"appearance_feature_extractor": (image,),
                "motion_extractor": (image,),
                "warping_module": (jnp.zeros((1, depth, side, side, channels), jnp.float32), kp, kp),
                "spade_generator": (jnp.zeros((1, side, side, warped), jnp.float32),)}

    def init(self, key: jax.Array) -> dict:
        """Random params of every network (for tests and benchmarks; real ones come from load_liveportrait)."""
        keys = jax.random.split(key, len(NETWORKS))
        inputs = self.example_inputs()
        params = {name: jax.jit(self.networks[name].init)(k, *inputs[name])["params"]
                  for name, k in zip(NETWORKS[:4], keys)}
        mlps = self.config.stitching_retargeting_module_params
        params["stitching_retargeting_module"] = {
            name: stitching.RetargetingMLP(mlp).init(k, jnp.zeros((1, mlp.input_size), jnp.float32))["params"]
            for (name, mlp), k in zip((("stitching", mlps.stitching), ("lip", mlps.lip), ("eye", mlps.eye)),
                                      jax.random.split(keys[4], 3))}
        return params

    def shapes(self) -> dict:
        """The params tree as ShapeDtypeStructs (what a checkpoint must hold)."""
        return jax.eval_shape(self.init, jax.random.key(0))

    # ---- the public functions (upstream's LivePortraitWrapper names in the comments) -----------------------

    def appearance(self, params, image):
        """extract_feature_3d: image [B, 256, 256, 3] in [0, 1] -> f_s [B, 16, 64, 64, 32]."""
        net = self.networks["appearance_feature_extractor"]
        return net.apply({"params": params["appearance_feature_extractor"]}, image).astype(jnp.float32)

    def motion_info(self, params, image) -> dict:
        """get_kp_info: image [B, 256, 256, 3] -> kp [B, 21, 3], pitch / yaw / roll [B] (degrees), t [B, 3],
        exp [B, 21, 3], scale [B, 1]."""
        net = self.networks["motion_extractor"]
        raw = net.apply({"params": params["motion_extractor"]}, image)
        return camera.motion_info({k: v.astype(jnp.float32) for k, v in raw.items()})

    @staticmethod
    def keypoints(info: dict):
        """transform_keypoint: s * (kp @ R + exp) + (tx, ty, 0) -> [B, 21, 3]."""
        return camera.transform_keypoints(info)

    def warp(self, params, f_s, kp_source, kp_driving) -> dict:
        """warp_decode's first half: out [B, 64, 64, 256], occlusion_map [B, 64, 64, 1], deformation
        [B, 16, 64, 64, 3]."""
        net = self.networks["warping_module"]
        out = net.apply({"params": params["warping_module"]}, f_s, kp_driving, kp_source)
        return {k: v.astype(jnp.float32) for k, v in out.items()}

    def generate(self, params, warped_out):
        """warp_decode's second half: warped features [B, 64, 64, 256] (or warp's dict) -> image [B, 512, 512, 3]
        in [0, 1]."""
        if isinstance(warped_out, dict):
            warped_out = warped_out["out"]
        net = self.networks["spade_generator"]
        return net.apply({"params": params["spade_generator"]}, warped_out).astype(jnp.float32)

    def stitch(self, params, kp_source, kp_driving):
        """stitching: driving keypoints [B, 21, 3] corrected so the face fits back into the source frame."""
        return stitching.stitch(params["stitching_retargeting_module"], kp_source, kp_driving)

    def retarget_eye(self, params, kp_source, eye_ratio):
        """retarget_eye: keypoint deltas [B, 21, 3] for eye-open ratios [B, 3]."""
        return stitching.retarget_eye(params["stitching_retargeting_module"], kp_source, eye_ratio)

    def retarget_lip(self, params, kp_source, lip_ratio):
        """retarget_lip: keypoint deltas [B, 21, 3] for lip-open ratios [B, 2]."""
        return stitching.retarget_lip(params["stitching_retargeting_module"], kp_source, lip_ratio)


# ---- loading ---------------------------------------------------------------------------------------------------

_CONVERTERS = {
    "appearance_feature_extractor": lambda s, c, p: appearance.params_from_torch(
        s, c.appearance_feature_extractor_params, p),
    "motion_extractor": lambda s, c, p: motion_extractor.params_from_torch(s, c.motion_extractor_params, p),
    "warping_module": lambda s, c, p: warping.params_from_torch(s, c.warping_module_params, p),
    "spade_generator": lambda s, c, p: spade.params_from_torch(s, c.spade_generator_params, p),
    "stitching_retargeting_module": lambda s, c, p: stitching.params_from_torch(
        s, c.stitching_retargeting_module_params, p),
}


def upstream_root(folder: Path) -> Path | None:
    """The folder holding base_models/ and retargeting_models/: `folder` itself or its liveportrait/ subfolder
    (the hub download's layout); None if neither has base_models/."""
    for root in (folder, folder / UPSTREAM_SUBFOLDER):
        if (root / "base_models").is_dir():
            return root
    return None


def load_upstream_params(root: Path, config: LivePortraitConfig) -> dict:
    """Params from upstream's .pth files under root; CheckpointError naming the file for anything wrong."""
    params = {}
    for name, relative in UPSTREAM_FILES.items():
        file = root / relative
        if not file.is_file():
            raise CheckpointError(file, "not found: a LivePortrait weights folder holds "
                                        f"{', '.join(UPSTREAM_FILES.values())}")
        params[name] = _CONVERTERS[name](read_state_dict(file), config, file)
    return params


def save_converted(params: dict, config: LivePortraitConfig, out: Path) -> None:
    """Writes CONVERTED_WEIGHTS (keys 'network/a/b/leaf') and CONVERTED_CONFIG into the folder `out`."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v, np.float32) for k, v in flatten(params).items()}
    save_file(tensors, out / CONVERTED_WEIGHTS, metadata={"format": FORMAT})
    (out / CONVERTED_CONFIG).write_text(json.dumps({"format": FORMAT, "config": config.to_dict()}, indent=2) + "\n")


def load_converted(folder: Path) -> tuple[LivePortraitConfig, dict]:
    """(config, params) of a converted folder, checked against the config's shapes; no torch needed."""
    manifest_path = folder / CONVERTED_CONFIG
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        config = LivePortraitConfig.from_dict(manifest["config"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(manifest_path, f"is not a converted LivePortrait config ({e})") from None
    params = read_weights_tree(folder / CONVERTED_WEIGHTS)
    check_tree(folder / CONVERTED_WEIGHTS, params, LivePortrait(config).shapes(), "LivePortrait model")
    return config, params


def load_liveportrait(folder, *, config: LivePortraitConfig | None = None,
                      dtype=jnp.float32) -> tuple[LivePortrait, dict]:
    """(model, params) from upstream's weights folder (or its parent, as the hub download lays it out) or a
    converted folder. config: the networks' sizes for upstream files (default: the released full size); a
    converted folder carries its own. CheckpointError naming the file and the problem otherwise."""
    folder = checkpoint_folder(folder, "LivePortrait's weights are a folder (with base_models/ and "
                                       "retargeting_models/, or a converted one)")
    if (folder / CONVERTED_CONFIG).is_file():
        stored, params = load_converted(folder)
        if config is not None and config != stored:
            raise CheckpointError(folder / CONVERTED_CONFIG, "holds networks of other sizes than the config asked for")
        return LivePortrait(stored, dtype=dtype), params
    root = upstream_root(folder)
    if root is None:
        raise CheckpointError(folder, "holds no LivePortrait weights: expected base_models/ and retargeting_models/ "
                                      f"(upstream's layout, e.g. huggingface-cli download KwaiVGI/LivePortrait) or "
                                      f"{CONVERTED_CONFIG} (python -m vasa_jax.face.liveportrait.convert)")
    config = config or LivePortraitConfig()
    return LivePortrait(config, dtype=dtype), load_upstream_params(root, config)
