"""Stage-1 evaluation on held-out toy-world people, where every answer is known exactly.

  python -m vasa_jax.face.evaluate --workdir runs/face_toy [--pairs 256] [--json metrics.json] [--grid grid.png]

Self-reenactment: the source frame's face driven by the motion of another frame of the same clip, against that
frame (PSNR, SSIM). Cross-identity reenactment: the source face driven by another held-out person's frame,
against the toy world's exact rendering of the source person in that pose and expression (PSNR, SSIM), and
the pose the motion encoder reads back from the output against the driver's true pose (the pose transfer
error). Also the motion encoder's pose error on real held-out frames, and how well the motion carries the
mouth, which stage 2 needs for lip sync: PSNR over the driver's mouth region, the correlation with the toy
world's true lip opening of a linear read-out of it from the dynamics latent (ridge regression, two-fold), and
whether the render opens a mouth the source shows shut (the mouth response: of the toy world's change in the mouth
region between shut and open, the fraction the render reproduces; 1: all of it, 0: the mouth does not move).
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
from vasa_jax.data.face_pairs import FacePairSource, mouth_box, mouth_mean, toy_lip_points
from vasa_jax.eval.signals import ANGLES
from vasa_jax.face import POSE_DIM
from vasa_jax.face.model import FaceModel
from vasa_jax.face.perceptual import ssim
from vasa_jax.io import save_image


def heldout_examples(image_size: int, pairs: int, clip_seconds: float = 4.0) -> dict:
    """The first `pairs` held-out items as arrays, plus the exact cross-identity target of each."""
    source = FacePairSource(image_size, split="heldout", clip_seconds=clip_seconds)
    items, targets, mouth_open = [], [], []
    for index in range(pairs):
        items.append(source[index])
        plan = source.plan(index)
        _, truth = toyworld.perform(plan.other_clip, identity=plan.other_identity, seconds=clip_seconds, audio=False)
        state = {k: np.asarray(truth[k])[[plan.other_frame]] for k in toyworld.STATE_KEYS}
        targets.append(toyworld.render(toyworld.sample_identity(plan.identity), state, image_size)[0])
        _, truth = toyworld.perform(plan.clip, identity=plan.identity, seconds=clip_seconds, audio=False)
        mouth_open.append(np.float32(truth["mouth_open"][plan.driver_frame]))
    batch = {k: np.stack([item[k] for item in items]) for k in items[0]}
    batch["transfer_target"] = np.stack(targets)
    batch["driver_mouth_open"] = np.stack(mouth_open)
    return batch


MOUTH_RESPONSE_OPENINGS = (0.5, 1.0)  # toy mouth_open of the driving frames; the source's is 0


def mouth_response(face: FaceModel, params, identities: int = 8) -> dict:
    """How far the render opens a mouth the source shows shut, on the first `identities` held-out people, frontal
    and neutral: from the shut frame, driven by the motion of frames whose only change is the mouth opening
    (MOUTH_RESPONSE_OPENINGS). Per opening, the render's change from the shut frame's render projected on the toy
    world's change, over the open mouth's region: <d_render, d_truth> / <d_truth, d_truth>, averaged over people
    ("mouth_response_<opening>"; 1: the truth's change, 0: none or an unrelated one)."""
    openings = (0.0,) + MOUTH_RESPONSE_OPENINGS
    frames, boxes = [], []
    for identity in toyworld.HELDOUT_IDENTITIES[:identities]:
        person = toyworld.sample_identity(identity)
        state = toyworld.neutral_state(len(openings), mouth_open=np.asarray(openings))
        frames.append(toyworld.render(person, state, face.image_size))
        boxes.append(mouth_box(toy_lip_points(person, state)[-1]))  # the widest open mouth's region
    truth = jnp.asarray(np.stack(frames), jnp.float32) / 255.0  # [P, O, S, S, 3]

    @jax.jit
    def render(params, truth):
        people, count = truth.shape[:2]
        appearance, z_id = face.encode_source(params, truth[:, 0])  # each person's shut frame
        repeat = lambda x: jnp.repeat(x, count, axis=0)  # noqa: E731
        motion = face.encode_motion(params, truth.reshape(people * count, *truth.shape[2:]))
        return face.decode(params, jax.tree.map(repeat, appearance), repeat(z_id), motion).reshape(truth.shape)

    rendered = render(params, truth)
    box = jnp.asarray(np.stack(boxes))
    out = {}
    for k, opening in enumerate(MOUTH_RESPONSE_OPENINGS, start=1):
        d_render, d_truth = rendered[:, k] - rendered[:, 0], truth[:, k] - truth[:, 0]
        ratio = mouth_mean(d_render * d_truth, box) / jnp.maximum(mouth_mean(d_truth * d_truth, box), 1e-12)
        out[f"mouth_response_{opening:g}"] = float(ratio.mean())
    return out


def _psnr(a, b):
    return -10 * np.log10(np.maximum(np.mean((a - b) ** 2, axis=(1, 2, 3)), 1e-10))


def _mouth_psnr(a, b, boxes):
    return -10 * np.log10(np.maximum(np.asarray(mouth_mean((a - b) ** 2, boxes)), 1e-10))


def readout_correlation(features: np.ndarray, target: np.ndarray, ridge: float = 1e-2) -> float:
    """Two-fold correlation of a ridge-regression read-out of target [N] from features [N, D] (fit on one half,
    correlate its prediction with the other half's target, both ways, averaged): how linearly the features carry
    the target. 0 where a prediction or target is constant."""
    n = len(target) // 2 * 2
    x = np.asarray(features[:n], np.float64)
    x = np.concatenate([(x - x.mean(0)) / (x.std(0) + 1e-8), np.ones((n, 1))], axis=1)
    y = np.asarray(target[:n], np.float64)
    halves = (slice(0, n // 2), slice(n // 2, n))
    scores = []
    for fit, test in (halves, halves[::-1]):
        gram = x[fit].T @ x[fit] + ridge * len(x[fit]) * np.eye(x.shape[1])
        predicted = x[test] @ np.linalg.solve(gram, x[fit].T @ y[fit])
        constant = predicted.std() < 1e-12 or y[test].std() < 1e-12
        scores.append(0.0 if constant else float(np.corrcoef(predicted, y[test])[0, 1]))
    return float(np.mean(scores))


def evaluate_face(face: FaceModel, params, examples: dict, batch_size: int = 16):
    """Metrics (dict of floats) and the outputs (dict of float [N, S, S, 3]) over held-out examples."""

    @jax.jit
    def run(params, source, driver, other):
        v_app, z_id = face.encode_source(params, source)
        motion = face.encode_motion(params, jnp.concatenate([driver, other]))
        recon, transfer = jnp.split(face.decode(params, jax.tree.map(lambda v: jnp.concatenate([v, v]), v_app),
                                                jnp.concatenate([z_id, z_id]), motion), 2)
        readback = face.encode_motion(params, transfer)
        return recon, transfer, motion[: driver.shape[0]], readback[:, :3]

    n = len(examples["source"]) // batch_size * batch_size
    if n == 0:
        raise ValueError(f"need at least batch_size={batch_size} examples; got {len(examples['source'])}")
    to_float = lambda k, s: jnp.asarray(examples[k][s], jnp.float32) / 255.0  # noqa: E731
    outs = {"recon": [], "transfer": [], "driver_motion": [], "readback_angles": []}
    for start in range(0, n, batch_size):
        s = slice(start, start + batch_size)
        results = run(params, to_float("source", s), to_float("driver", s), to_float("other", s))
        for key, value in zip(outs, results):
            outs[key].append(np.asarray(value))
    outs = {k: np.concatenate(v) for k, v in outs.items()}
    driver = examples["driver"][:n] / 255.0
    target = examples["transfer_target"][:n] / 255.0
    true_driver, true_other = examples["driver_pose"][:n, :3], examples["other_pose"][:n, :3]
    encoder_error = np.abs(outs["driver_motion"][:, :3] - true_driver)
    transfer_error = np.abs(outs["readback_angles"] - true_other)
    metrics = {
        "pairs": n,
        "self_psnr": float(_psnr(outs["recon"], driver).mean()),
        "self_ssim": float(ssim(outs["recon"], driver).mean()),
        "cross_psnr": float(_psnr(outs["transfer"], target).mean()),
        "cross_ssim": float(ssim(outs["transfer"], target).mean()),
        "cross_pose_error_deg": float(transfer_error.mean()),
        "self_mouth_psnr": float(_mouth_psnr(outs["recon"], driver, examples["driver_mouth"][:n]).mean()),
        "mouth_readout_r": readout_correlation(outs["driver_motion"][:, POSE_DIM:],
                                               examples["driver_mouth_open"][:n]),
        "encoder_pose_error_deg": float(encoder_error.mean()),
        **{f"cross_{a}_error_deg": float(transfer_error[:, i].mean()) for i, a in enumerate(ANGLES)},
        **{f"encoder_{a}_error_deg": float(encoder_error[:, i].mean()) for i, a in enumerate(ANGLES)},
    }
    return metrics, {"recon": outs["recon"], "transfer": outs["transfer"]}


def _load(folder: str, *, live: bool):
    """(face model, params, clip seconds) of a stage-1 workdir or of a pipeline checkpoint's warping face
    (the clip length face pairs are drawn from: the run's own, else the data default)."""
    import os

    from vasa_jax.errors import ConfigError
    from vasa_jax.face import WarpingFaceModel
    from vasa_jax.train.face import load_face_checkpoint

    if os.path.isfile(os.path.join(folder, "config.json")):
        config, face, params = load_face_checkpoint(folder, ema=not live)
        return face, params, config.data.clip_seconds
    from vasa_jax.data.motion_data import load_face_folder

    if live:
        raise ConfigError(f"{folder}: --live needs a stage-1 workdir (a checkpoint holds one set of weights)")
    face, params = load_face_folder(folder)
    if not isinstance(face, WarpingFaceModel):
        raise ConfigError(f"{folder}: holds a {type(face).__name__}; this evaluation is of the warping face model "
                          "on the toy world")
    from vasa_jax.config import default_config

    return face, params, default_config().data.clip_seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vasa_jax.face.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True,
                        help="a stage-1 training workdir, or a pipeline checkpoint (its warping face model)")
    parser.add_argument("--pairs", type=int, default=256, help="held-out examples (at most 512)")
    parser.add_argument("--live", action="store_true", help="evaluate the live params instead of the EMA")
    parser.add_argument("--json", help="also write the metrics here")
    parser.add_argument("--grid", help="a PNG of the first examples: source | driver | recon | other | transfer | "
                                       "exact transfer")
    args = parser.parse_args(argv)
    from vasa_jax.errors import ConfigError
    from vasa_jax.io import CheckpointError

    if not 1 <= args.pairs <= 512:
        parser.error("--pairs must be in [1, 512]")
    try:
        face, params, clip_seconds = _load(args.workdir, live=args.live)
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    examples = heldout_examples(face.image_size, args.pairs, clip_seconds)
    metrics, outputs = evaluate_face(face, params, examples, batch_size=min(16, args.pairs))
    metrics.update(mouth_response(face, params))
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
