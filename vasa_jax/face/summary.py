"""Parameter counts and FLOPs per decoded frame of face model configs.

  python -m vasa_jax.face.summary [configs/tiny.py configs/toy.py configs/base.py]

FLOPs come from XLA's cost analysis of the compiled functions for one frame (batch 1) on this machine's
backend; encode_source runs once per portrait, encode_motion once per driving frame (training, --pose-from),
decode once per generated frame.
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp

from vasa_jax.config import load_config
from vasa_jax.face import FaceConfig, WarpingFaceModel


def count(tree) -> int:
    return sum(x.size for x in jax.tree.leaves(tree))


def flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def summarize(config: FaceConfig) -> dict:
    face = WarpingFaceModel(config)
    params = jax.eval_shape(face.init, jax.random.key(0))
    image = jax.ShapeDtypeStruct((1, config.image_size, config.image_size, 3), jnp.float32)
    v_app, z_id = jax.eval_shape(face.encode_source, params, image)
    motion = jax.ShapeDtypeStruct((1, config.motion_dim), jnp.float32)
    return {
        "params": {name: count(sub) for name, sub in params.items()} | {"total": count(params)},
        "v_app": (v_app["volume"] if isinstance(v_app, dict) else v_app).shape[1:],
        "gflops_decode": flops(face.decode, params, v_app, z_id, motion) / 1e9,
        "gflops_encode_source": flops(face.encode_source, params, image) / 1e9,
        "gflops_encode_motion": flops(face.encode_motion, params, image) / 1e9,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vasa_jax.face.summary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=["configs/tiny.py", "configs/toy.py", "configs/base.py"])
    args = parser.parse_args(argv)
    for path in args.configs:
        try:
            config = FaceConfig.from_config(load_config(path).face)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        s = summarize(config)
        print(f"{path}: {config.image_size}x{config.image_size}, V_app {s['v_app']} (D, H, W, C), "
              f"motion {config.motion_dim}")
        print("  parameters: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in s["params"].items()))
        print(f"  GFLOPs per frame: decode {s['gflops_decode']:.2f}, encode_source {s['gflops_encode_source']:.2f},"
              f" encode_motion {s['gflops_encode_motion']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
