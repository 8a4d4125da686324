"""Stage-1 evaluation on held-out toy-world people, where every answer is known exactly.

  python -m vasa_jax.face.evaluate --workdir runs/face_toy [--pairs 256] [--json metrics.json] [--grid grid.png]

Self-reenactment: the source frame's face driven by the motion of another frame of the same clip, against that
frame (PSNR, SSIM). Cross-identity reenactment: the source face driven by another held-out person's frame,
against the toy world's exact rendering of the source person in that pose and expression (PSNR, SSIM), and
the pose the motion encoder reads back from the output against the driver's true pose (the pose transfer
error). Also the motion encoder's pose error on real held-out frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.data import toyworld
from vasa_jax.data.face_pairs import FacePairSource
from vasa_jax.eval.signals import ANGLES
from vasa_jax.face.model import FaceModel
from vasa_jax.face.perceptual import ssim
from vasa_jax.io import save_image


def heldout_examples(image_size: int, pairs: int, clip_seconds: float = 4.0) -> dict:
    """The first `pairs` held-out items as arrays, plus the exact cross-identity target of each."""
    source = FacePairSource(image_size, split="heldout", clip_seconds=clip_seconds)
    items, targets = [], []
    for index in range(pairs):
        items.append(source[index])
        plan = source.plan(index)
        _, truth = toyworld.perform(plan.other_clip, identity=plan.other_identity, seconds=clip_seconds, audio=False)
        state = {k: np.asarray(truth[k])[[plan.other_frame]] for k in toyworld.STATE_KEYS}
        targets.append(toyworld.render(toyworld.sample_identity(plan.identity), state, image_size)[0])
    batch = {k: np.stack([item[k] for item in items]) for k in items[0]}
    batch["transfer_target"] = np.stack(targets)
    return batch


def _psnr(a, b):
    return -10 * np.log10(np.maximum(np.mean((a - b) ** 2, axis=(1, 2, 3)), 1e-10))


def evaluate_face(face: FaceModel, params, examples: dict, batch_size: int = 16):
    """Metrics (dict of floats) and the outputs (dict of float [N, S, S, 3]) over held-out examples."""

    @jax.jit
    def run(params, source, driver, other):
        v_app, z_id = face.encode_source(params, source)
        motion = face.encode_motion(params, jnp.concatenate([driver, other]))
        recon, transfer = jnp.split(face.decode(params, jnp.concatenate([v_app, v_app]),
                                                jnp.concatenate([z_id, z_id]), motion), 2)
        readback = face.encode_motion(params, transfer)
        return recon, transfer, motion[: driver.shape[0], :3], readback[:, :3]

    n = len(examples["source"]) // batch_size * batch_size
    if n == 0:
        raise ValueError(f"need at least batch_size={batch_size} examples; got {len(examples['source'])}")
    to_float = lambda k, s: jnp.asarray(examples[k][s], jnp.float32) / 255.0  # noqa: E731
    outs = {"recon": [], "transfer": [], "driver_angles": [], "readback_angles": []}
    for start in range(0, n, batch_size):
        s = slice(start, start + batch_size)
        results = run(params, to_float("source", s), to_float("driver", s), to_float("other", s))
        for key, value in zip(outs, results):
            outs[key].append(np.asarray(value))
    outs = {k: np.concatenate(v) for k, v in outs.items()}
    driver = examples["driver"][:n] / 255.0
    target = examples["transfer_target"][:n] / 255.0
    true_driver, true_other = examples["driver_pose"][:n, :3], examples["other_pose"][:n, :3]
    encoder_error = np.abs(outs["driver_angles"] - true_driver)
    transfer_error = np.abs(outs["readback_angles"] - true_other)
    metrics = {
        "pairs": n,
        "self_psnr": float(_psnr(outs["recon"], driver).mean()),
        "self_ssim": float(ssim(outs["recon"], driver).mean()),
        "cross_psnr": float(_psnr(outs["transfer"], target).mean()),
        "cross_ssim": float(ssim(outs["transfer"], target).mean()),
        "cross_pose_error_deg": float(transfer_error.mean()),
        "encoder_pose_error_deg": float(encoder_error.mean()),
        **{f"cross_{a}_error_deg": float(transfer_error[:, i].mean()) for i, a in enumerate(ANGLES)},
        **{f"encoder_{a}_error_deg": float(encoder_error[:, i].mean()) for i, a in enumerate(ANGLES)},
    }
    return metrics, {"recon": outs["recon"], "transfer": outs["transfer"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vasa_jax.face.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a stage-1 training workdir")
    parser.add_argument("--pairs", type=int, default=256, help="held-out examples (at most 512)")
    parser.add_argument("--live", action="store_true", help="evaluate the live params instead of the EMA")
    parser.add_argument("--json", help="also write the metrics here")
    parser.add_argument("--grid", help="a PNG of the first examples: source | driver | recon | other | transfer | "
                                       "exact transfer")
    args = parser.parse_args(argv)
    from vasa_jax.errors import ConfigError
    from vasa_jax.train.face import load_face_checkpoint

    if not 1 <= args.pairs <= 512:
        parser.error("--pairs must be in [1, 512]")
    try:
        config, face, params = load_face_checkpoint(args.workdir, ema=not args.live)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    examples = heldout_examples(face.image_size, args.pairs, config.data.clip_seconds)
    metrics, outputs = evaluate_face(face, params, examples, batch_size=min(16, args.pairs))
    metrics["seconds"] = time.perf_counter() - start
    for key, value in metrics.items():
        print(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=2)
    if args.grid:
        k = min(8, metrics["pairs"])
        columns = [examples["source"][:k] / 255, examples["driver"][:k] / 255, outputs["recon"][:k],
                   examples["other"][:k] / 255, outputs["transfer"][:k], examples["transfer_target"][:k] / 255]
        grid = np.concatenate([np.concatenate(list(c), axis=0) for c in columns], axis=1)
        save_image(args.grid, (np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
