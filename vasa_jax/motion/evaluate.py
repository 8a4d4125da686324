"""Stage-2 evaluation on held-out toy-world clips and identities, where the true motion is known exactly.

  python -m vasa_jax.motion.evaluate --workdir runs/motion_toy [--clips 64] [--steps 50] [--sampler ddim]
                                     [--cfg audio=0.5,gaze=0] [--seam-frames 8] [--json metrics.json]
                                     [--online [--hop 3 --lookahead 1]]

--online samples as the online mode does (vasa_jax.motion.sampling.sample_online: every hop frames a window with
the audio known lookahead frames past the hop); its boundaries are then the hop boundaries.

Motion is generated from each held-out clip's audio features (whole clips, several windows each) and compared
with the clip's true motion:
  mouth       Pearson correlation of generated and true mouth opening, per clip (mean over clips; pooled too)
  delta_p     mean absolute change of the pose angles (yaw, pitch, roll) between adjacent frames, generated
              against real (VASA-1's Delta-P); the target is a ratio within 30 %
  pose_std    how far the head moves within a clip (each pose angle's std over the clip's frames, mean over
              clips and angles), generated against real: Delta-P alone is also met by small fast wiggles
  gaze        the gaze condition followed: each window's main generated gaze (median over its frames) against
              the condition, in degrees; once with the clip's own gaze as the condition, once with random
              targets (theta in [-15, 15], phi in [-10, 10]) the clip never had
  boundaries  frame-to-frame jumps (L2 over all motion features in units of their dataset std) across window
              boundaries against the 95th percentile of jumps inside windows. Read jump by jump, the target (no
              boundary jump above it) is strict: blinks and glances make jumps of that size anywhere, so boundary
              jumps distributed like the others exceed it at ~5 % of boundaries (the real clips' jumps at the same
              positions are reported as the reference). Read as a seam test ("seam"), jumps are averaged by
              their offset in the window (over every clip and window): the boundary offset's mean jump against
              the 95th percentile of the W - 1 within-window offsets' mean jumps. Random events average out, a
              seam (a jump at every boundary) stands out, and motion without seams fails it 5 % of the time
Controls: gaze, distance and emotion from each clip's truth (gaze: its median direction). Mouth opening and gaze
are read from the motion vector directly for the toy_truth source, and through a linear probe fitted on the
training cache for the face_model source.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.data.motion_data import MotionCache, build_cache
from vasa_jax.eval.signals import correlation, delta_p
from vasa_jax.motion.config import MotionConfig
from vasa_jax.motion.sampling import Controls, online_settings, sample_online, sample_windows

GAZE_SWEEP = (15.0, 10.0)  # random gaze targets: |theta| <= 15, |phi| <= 10 degrees
TARGETS = {"mouth_correlation": 0.7, "delta_p_ratio_tolerance": 0.3, "gaze_error_degrees": 5.0}


class Readout:
    """Motion vectors [..., M] -> (mouth_open [...], gaze [..., 2]): by layout for toy_truth, else a ridge probe
    fitted on a training cache (motion -> the cache's labels)."""

    def __init__(self, layout, train_cache: MotionCache | None = None, ridge: float = 1e-3):
        self.layout = layout
        if layout is None:
            if train_cache is None:
                raise ValueError("a motion source without a known layout needs a training cache for the probe")
            x = train_cache.frames("motion").astype(np.float64)
            self.mean, self.std = x.mean(0), x.std(0) + 1e-6
            z = np.concatenate([(x - self.mean) / self.std, np.ones((len(x), 1))], 1)
            y = np.concatenate([train_cache.frames("mouth_open")[:, None], train_cache.frames("gaze")], 1)
            # One probe per read-out quantity, fitted on the frames that have its label (real video may have
            # mouth opening from landmarks but no gaze labels: that probe gives NaN).
            self.weights = np.full((z.shape[1], y.shape[1]), np.nan)
            for j in range(y.shape[1]):
                known = np.isfinite(y[:, j])
                if known.any():
                    zk = z[known]
                    self.weights[:, j] = np.linalg.solve(zk.T @ zk + ridge * len(zk) * np.eye(z.shape[1]),
                                                         zk.T @ y[known, j])

    def __call__(self, motion):
        motion = np.asarray(motion, np.float64)
        if self.layout is not None:
            index = {name: i for i, name in enumerate(self.layout)}
            return motion[..., index["mouth_open"]], motion[..., [index["gaze_theta"], index["gaze_phi"]]]
        z = np.concatenate([(motion - self.mean) / self.std, np.ones(motion.shape[:-1] + (1,))], -1)
        y = z @ self.weights
        return y[..., 0], y[..., 1:]


def pose_spread(motion) -> float:
    """Mean over clips and the three pose angles (the first three motion features, as delta_p reads them) of
    each angle's std over a clip's frames, in degrees."""
    return float(np.asarray(motion)[..., :3].std(axis=1).mean())


def boundary_jumps(motion, std, window: int) -> dict:
    """Jumps between adjacent frames, ||(m_{i+1} - m_i) / std||, inside windows and across window boundaries:
    each jump ("inside", "across"), and the mean jump by offset in the window ("by_offset" [window]: offset j
    is the pair (i, i + 1) with i + 1 = j mod window, so offset 0 is the boundary)."""
    jumps = np.linalg.norm(np.diff(np.asarray(motion), axis=1) / np.asarray(std), axis=-1)  # [C, T - 1]
    offset = (np.arange(jumps.shape[1]) + 1) % window
    crossing = offset == 0
    by_offset = np.array([jumps[:, offset == j].mean() if np.any(offset == j) else np.nan for j in range(window)])
    return {"inside": jumps[:, ~crossing].ravel(), "across": jumps[:, crossing].ravel(), "by_offset": by_offset}


def seam_metrics(jumps: dict, prefix: str = "") -> dict:
    """The seam reading of the boundary target (module docstring) from boundary_jumps' output."""
    inside = jumps["by_offset"][1:]
    return {f"{prefix}seam_inside_p95": float(np.nanpercentile(inside, 95)) if np.any(np.isfinite(inside)) else 0.0,
            f"{prefix}seam_boundary": float(np.nan_to_num(jumps["by_offset"][0])),
            f"{prefix}seam_inside_mean": float(np.nanmean(inside)) if np.any(np.isfinite(inside)) else 0.0}


@functools.partial(jax.jit, static_argnames=("config", "steps", "sampler", "cfg", "online"))
def _generate_batch(params, features, controls, keys, *, config, steps, sampler, cfg, online):
    if online is None:
        one = functools.partial(sample_windows, config=config, steps=steps, sampler=sampler, cfg=dict(cfg))
    else:
        one = functools.partial(sample_online, config=config, steps=steps, sampler=sampler, cfg=dict(cfg),
                                hop=online[0], lookahead=online[1])
    return jax.vmap(one, in_axes=(None, 0, 0, 0))(params, features, controls, keys)


def generate(params, config: MotionConfig, features, controls: Controls, key, *, steps, sampler, cfg=None,
             batch: int = 16, online: tuple[int, int] | None = None):
    """Motion [C, T, M] for clips [C, T, Da] (one length) in batches of `batch` clips; clip c samples with key
    fold_in(key, c). The last batch is padded (one compiled shape). online: (hop, lookahead) of the online mode."""
    c = len(features)
    batch = min(batch, c)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(c))
    out = []
    for start in range(0, c, batch):
        index = np.minimum(np.arange(start, start + batch), c - 1)
        motion = _generate_batch(params, jnp.asarray(features[index]), jax.tree.map(lambda x: x[index], controls),
                                 keys[index], config=config, steps=steps, sampler=sampler,
                                 cfg=tuple(sorted((cfg or {}).items())), online=online)
        out.append(np.asarray(motion)[: c - start])
    return np.concatenate(out)


def evaluate_motion(params, config: MotionConfig, clips: dict, readout: Readout, *, steps: int, sampler: str,
                    cfg: dict | None = None, seed: int = 0, online: tuple[int, int] | None = None) -> dict:
    """The metrics (module docstring) over held-out clips: dict of arrays [C, T, ...] with motion, audio, gaze,
    distance, emotion and mouth_open (all clips one length). online: (hop, lookahead) of the online mode."""
    c, t = clips["motion"].shape[:2]
    w = config.window
    seam_period = w if online is None else online[0]  # where generated pieces meet
    own_gaze = np.median(clips["gaze"], axis=1).astype(np.float32)
    distance = clips["distance"].mean(axis=1).astype(np.float32)
    emotion = clips["emotion"].mean(axis=1).astype(np.float32)
    rng = np.random.default_rng(seed)
    targets = (rng.uniform(-1, 1, (c, 2)) * np.asarray(GAZE_SWEEP)).astype(np.float32)
    key = jax.random.key(seed)
    run = functools.partial(generate, params, config, clips["audio"], steps=steps, sampler=sampler, cfg=cfg,
                            online=online)
    own = run(Controls(gaze=own_gaze, distance=distance[:, None], emotion=emotion), jax.random.fold_in(key, 0))
    started = time.perf_counter()  # the second run is compiled already: its time is sampling alone
    swept = run(Controls(gaze=targets, distance=distance[:, None], emotion=emotion), jax.random.fold_in(key, 1))
    seconds = time.perf_counter() - started

    mouth, gaze = readout(own)
    per_clip = [correlation(mouth[i], clips["mouth_open"][i]) for i in range(c)]
    n = -(-t // w)

    def window_gaze_error(gaze, target):
        errors = []
        for j in range(n):
            main = np.median(gaze[:, j * w:(j + 1) * w], axis=1)  # [C, 2]
            errors.append(np.linalg.norm(main - target, axis=-1))
        return float(np.mean(errors))

    _, swept_gaze = readout(swept)
    std = np.asarray(params["stats"]["motion"]["std"])
    gen, real = boundary_jumps(own, std, seam_period), boundary_jumps(clips["motion"], std, seam_period)
    p95 = float(np.percentile(gen["inside"], 95))
    real_p95 = float(np.percentile(real["inside"], 95))
    top = lambda x: float(x.max()) if x.size else 0.0  # noqa: E731
    over = lambda x, limit: float((x > limit).mean()) if x.size else 0.0  # noqa: E731
    dp_gen, dp_real = delta_p(own), delta_p(clips["motion"])
    metrics = {
        "clips": c, "frames_per_clip": t, "windows_per_clip": n, "steps": steps, "sampler": sampler,
        "seam_frames": config.seam_frames, "seam_period": seam_period,
        "mode": "offline" if online is None else {"online": {"hop": online[0], "lookahead": online[1]}},
        "cfg": {**config.cfg_scales, **(cfg or {})},
        "sampling_seconds": seconds, "frames_per_second": c * t / seconds,
        "mouth_correlation": float(np.mean(per_clip)),
        "mouth_correlation_pooled": correlation(mouth.ravel(), clips["mouth_open"].ravel()),
        "delta_p_generated": dp_gen, "delta_p_real": dp_real, "delta_p_ratio": dp_gen / dp_real,
        "pose_std_generated": pose_spread(own), "pose_std_real": pose_spread(clips["motion"]),
        "gaze_error_own_degrees": window_gaze_error(gaze, own_gaze),
        "gaze_error_sweep_degrees": window_gaze_error(swept_gaze, targets),
        "boundary_jumps": int(gen["across"].size),
        "jump_inside_p95": p95, "jump_boundary_max": top(gen["across"]),
        "boundary_jumps_over_p95": over(gen["across"], p95),
        "jump_inside_mean": float(gen["inside"].mean()),
        "jump_boundary_mean": float(gen["across"].mean()) if gen["across"].size else 0.0,
        "real_jump_inside_p95": real_p95, "real_jump_boundary_max": top(real["across"]),
        "real_boundary_jumps_over_p95": over(real["across"], real_p95),
        **seam_metrics(gen), **seam_metrics(real, "real_"),
    }
    metrics["pass"] = {
        "mouth_correlation": metrics["mouth_correlation"] >= TARGETS["mouth_correlation"],
        "delta_p": abs(metrics["delta_p_ratio"] - 1.0) <= TARGETS["delta_p_ratio_tolerance"],
        "gaze": metrics["gaze_error_sweep_degrees"] <= TARGETS["gaze_error_degrees"]
        and metrics["gaze_error_own_degrees"] <= TARGETS["gaze_error_degrees"],
        "boundaries": metrics["jump_boundary_max"] <= p95,
        "seams": metrics["seam_boundary"] <= metrics["seam_inside_p95"],
    }
    return metrics


def heldout_clips(cache: MotionCache, count: int | None = None) -> dict:
    """The first `count` clips of a held-out cache, stacked [C, T, ...] (trimmed to the shortest)."""
    count = cache.num_clips if count is None else min(count, cache.num_clips)
    items = [cache.clip(i) for i in range(count)]
    t = min(len(item["motion"]) for item in items)
    names = ("motion", "audio", "gaze", "distance", "emotion", "mouth_open")
    return {name: np.stack([item[name][:t] for item in items]) for name in names}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a stage-2 training workdir")
    parser.add_argument("--clips", type=int, default=None, help="held-out clips to use (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the config's; online: "
                        "its online steps)")
    parser.add_argument("--sampler", choices=("ddim", "ddpm"), default=None)
    parser.add_argument("--cfg", default="", help="guidance scales over the config's, e.g. audio=0.5,gaze=1.0")
    parser.add_argument("--seam-frames", type=int, default=None,
                        help="frames over which windows continue their context (default: the config's; 0 = off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the metrics here")
    parser.add_argument("--online", action="store_true", help="sample in the online mode (hops)")
    parser.add_argument("--hop", type=int, default=None, help="online hop in frames (default: the sampler's)")
    parser.add_argument("--lookahead", type=int, default=None, help="online look-ahead in frames")
    args = parser.parse_args(argv)

    from vasa_jax.errors import ConfigError
    from vasa_jax.train.motion import load_motion_checkpoint

    try:
        config, motion, params = load_motion_checkpoint(args.workdir)
        if args.seam_frames is not None:
            motion = dataclasses.replace(motion, seam_frames=args.seam_frames)
        heldout = MotionCache(build_cache(config, "heldout"))
        layout = heldout.meta["layout"]
        readout = Readout(layout, None if layout else MotionCache(build_cache(config, "train")))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    steps = (motion.online_sample_steps if args.online else motion.sample_steps) if args.steps is None else args.steps
    sampler = motion.sampler if args.sampler is None else args.sampler
    cfg = {name: float(value) for name, value in (item.split("=") for item in args.cfg.split(",") if item)}
    online = None
    if args.online:
        try:
            online = online_settings(motion, args.hop, args.lookahead)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    elif args.hop is not None or args.lookahead is not None:
        print("error: --hop and --lookahead set the online mode; add --online", file=sys.stderr)
        return 2
    metrics = evaluate_motion(params, motion, heldout_clips(heldout, args.clips), readout, steps=steps,
                              sampler=sampler, cfg=cfg, seed=args.seed, online=online)
    metrics["workdir"] = args.workdir
    metrics["motion_source"] = config.motion_data.source
    print(json.dumps(metrics, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
