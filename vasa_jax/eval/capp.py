"""CAPP, VASA-1's contrastive audio-pose score: how well a head-pose sequence goes with its speech.

Two towers embed a 3 s window (75 frames at 25 fps) into one space: an audio tower over a vasa_jax.audio
encoder's features (the "mel" encoder for the toy world; VASA-1 uses Wav2Vec2: "wav2vec2" with a local
checkpoint) and a pose tower, a 6-layer transformer over the window's yaw / pitch / roll. They are trained
CLIP-style (symmetric InfoNCE over a batch, learned temperature) on matched (audio, pose) windows. The score of
a clip is the mean cosine similarity of its windows' audio and pose embeddings: high for a head that moves
with the voice, near the shuffled-pair level for one that does not. VASA-1 reports 0.588 for real VoxCeleb2
video with its own CAPP; scores of different CAPP models are not comparable.

Train one on the toy world (clips with exact pose; held-out identities for the report):

  python -m vasa_jax.eval.capp --out runs/capp_toy                 # ~15 min on 2 CPU cores
  python -m vasa_jax.eval.capp --out runs/capp_tiny --preset tiny --steps 200 --train-clips 32

It prints, on held-out identities, the mean score of matched and of shuffled pairs, the audio -> pose
retrieval accuracy, and the score with the pose shifted by 0..4 frames (VASA-1's sensitivity check), and
saves capp.safetensors + capp.json in --out. Score with it: Capp.load(dir).score(audio, angles), or
`python -m vasa_jax.eval --capp DIR ...`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vasa_jax.errors import ConfigError
from vasa_jax.io import CheckpointError
from vasa_jax.pose import POSE_SCALE

WEIGHTS_FILE = "capp.safetensors"
CONFIG_FILE = "capp.json"
VELOCITY_SCALE = 1.0  # degrees per frame: the pose tower sees frame-to-frame changes in this unit
_STREAM = 0xCA99  # separates CAPP's toy clip plans from other toy-world randomness


@dataclasses.dataclass(frozen=True)
class CappConfig:
    """The CAPP model."""

    window: int = 75  # frames per window (3 s at 25 fps, VASA-1's)
    audio_encoder: str = "mel"  # the vasa_jax.audio encoder under the audio tower: mel, wav2vec2, hubert
    audio_checkpoint: str = ""  # its local Hugging Face folder (wav2vec2 / hubert); "" for mel
    patch: int = 3  # frames per token (75 frames -> 25 tokens): a third of the cost, frame detail kept in the token
    width: int = 128  # transformer width of both towers
    heads: int = 4
    pose_layers: int = 6  # VASA-1: a 6-layer transformer from scratch
    audio_layers: int = 2  # on top of the (frozen) audio encoder's features
    mlp_ratio: int = 4
    embed_dim: int = 128  # the shared embedding space

    def __post_init__(self):
        if self.window % self.patch or self.width % self.heads:
            raise ConfigError(f"CAPP: window ({self.window}) must be a multiple of patch ({self.patch}) and width "
                              f"({self.width}) of heads ({self.heads})")


@dataclasses.dataclass(frozen=True)
class CappTraining:
    """Training on toy-world clips; field names follow vasa_jax.config.train_defaults (make_optimizer)."""

    steps: int = 1500  # ~0.5 s each on 2 busy CPU cores
    batch_size: int = 64  # windows per step (each the others' negatives)
    windows_per_clip: int = 4  # a batch holds batch_size / this clips, this many windows of each at different
    #                            times: negatives from the same voice and head force alignment in time
    learning_rate: float = 5e-4
    end_learning_rate: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.01
    adam_b1: float = 0.9
    adam_b2: float = 0.98
    grad_clip_norm: float = 1.0
    train_clips: int = 1024  # toy clips of training identities (fewer are memorised: held-out scores collapse)
    heldout_clips: int = 64  # one clip per held-out identity (toyworld.HELDOUT_IDENTITIES)
    clip_seconds: float = 9.0
    seed: int = 0
    log_every: int = 100


PRESETS = {
    "toy": (CappConfig(), CappTraining()),
    "tiny": (CappConfig(width=32, heads=2, pose_layers=2, audio_layers=1, embed_dim=32),
             CappTraining(steps=200, batch_size=32, learning_rate=2e-3, warmup_steps=20, train_clips=32,
                          heldout_clips=16, clip_seconds=6.0, log_every=50)),
}


class _Block(nn.Module):
    """Pre-LN transformer block."""

    width: int
    heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(self.heads)(h, h)
        h = nn.Dense(self.mlp_ratio * self.width)(nn.LayerNorm()(x))
        return x + nn.Dense(self.width)(nn.gelu(h))


class _Tower(nn.Module):
    """[B, W, C] -> [B, E]: per-frame projection + learned positions, transformer blocks, mean over frames."""

    config: CappConfig
    layers: int

    @nn.compact
    def __call__(self, x):
        c = self.config
        b, w, d = x.shape
        if w != c.window:
            raise ValueError(f"CAPP windows are {c.window} frames; got {w}")
        positions = self.param("positions", nn.initializers.normal(0.02), (w // c.patch, c.width))
        h = nn.Dense(c.width)(x.reshape(b, w // c.patch, c.patch * d)) + positions
        for i in range(self.layers):
            h = _Block(c.width, c.heads, c.mlp_ratio, name=f"block_{i}")(h)
        return nn.Dense(c.embed_dim)(nn.LayerNorm()(h).mean(1))


class CappNetwork(nn.Module):
    config: CappConfig

    def setup(self):
        self.audio = _Tower(self.config, self.config.audio_layers)
        self.pose = _Tower(self.config, self.config.pose_layers)
        self.log_scale = self.param("log_scale", nn.initializers.constant(np.log(1 / 0.07)), ())

    def embed_audio(self, features):
        return _unit(self.audio(features))

    def embed_pose(self, inputs):
        return _unit(self.pose(inputs))

    def __call__(self, features, inputs):
        return self.embed_audio(features), self.embed_pose(inputs), jnp.exp(jnp.minimum(self.log_scale, np.log(100)))


def _unit(x):
    return x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)


def pose_inputs(angles):
    """Pose-tower inputs [..., W, 6] from angles [..., W, 3] (yaw, pitch, roll, degrees): each angle less its
    window mean, in POSE_SCALE units (where the head points on average says nothing about the speech), and its
    change from the previous frame (0 at the first) in VELOCITY_SCALE units."""
    angles = jnp.asarray(angles, jnp.float32)
    centred = (angles - angles.mean(-2, keepdims=True)) / jnp.asarray(POSE_SCALE[:3], jnp.float32)
    velocity = jnp.diff(angles, axis=-2, prepend=angles[..., :1, :]) / VELOCITY_SCALE
    return jnp.concatenate([centred, velocity], -1)


def clip_loss(audio, pose, scale):
    """Symmetric InfoNCE over a batch of unit embeddings [B, E] (CLIP's loss) and the audio -> pose accuracy."""
    logits = scale * audio @ pose.T
    labels = jnp.arange(audio.shape[0])
    loss = 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
                  + optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean())
    return loss, jnp.mean(jnp.argmax(logits, -1) == labels)


def windows(series, starts, length: int):
    """series [T, ...] -> [len(starts), length, ...] windows starting at `starts`."""
    starts = np.asarray(starts)
    return np.asarray(series)[starts[:, None] + np.arange(length)]


def window_starts(frames: int, window: int) -> np.ndarray:
    """Non-overlapping windows over `frames`, plus one ending at the last frame where they leave a remainder."""
    if frames < window:
        raise ValueError(f"CAPP scores windows of {window} frames ({window / 25:g} s); the clip has {frames}")
    starts = list(range(0, frames - window + 1, window))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return np.asarray(starts)


class Capp:
    """A CAPP model ready to score: config, params and the audio-feature normalisation it was trained with."""

    def __init__(self, config: CappConfig, params, audio_mean, audio_std):
        self.config = config
        self.params = params
        self.audio_mean = np.asarray(audio_mean, np.float32)
        self.audio_std = np.asarray(audio_std, np.float32)
        self.network = CappNetwork(config)
        self._encoder = None
        self._embed_audio = jax.jit(lambda p, f: self.network.apply({"params": p}, f, method=CappNetwork.embed_audio))
        self._embed_pose = jax.jit(lambda p, x: self.network.apply({"params": p}, x, method=CappNetwork.embed_pose))

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = make_encoder(self.config)
        return self._encoder

    def embed_audio(self, features) -> np.ndarray:
        """Unit audio embeddings [N, E] of encoder-feature windows [N, W, Da]."""
        features = (np.asarray(features, np.float32) - self.audio_mean) / self.audio_std
        return self._batched(self._embed_audio, features)

    def embed_pose(self, angles) -> np.ndarray:
        """Unit pose embeddings [N, E] of angle windows [N, W, 3] (degrees)."""
        return self._batched(self._embed_pose, np.asarray(pose_inputs(angles)))

    def _batched(self, fn, x, batch: int = 64):
        out = []
        for start in range(0, len(x), batch):  # a fixed batch shape: one compilation
            part = x[start:start + batch]
            padded = np.concatenate([part, np.zeros((batch - len(part),) + part.shape[1:], part.dtype)])
            out.append(np.asarray(fn(self.params, padded))[: len(part)])
        return np.concatenate(out)

    def score(self, audio, angles) -> dict:
        """CAPP of speech and a head-pose sequence: audio as vasa_jax.audio encoders take it (a path or 16 kHz
        samples), angles [T, >=3] degrees (yaw, pitch, roll first) at 25 fps from the audio's first frame.
        Over the frames both cover, in 3 s windows (window_starts): {"capp": mean, "capp_windows": [...]}."""
        features = self.encoder.features(audio)
        return self.score_features(features, angles)

    def score_features(self, features, angles) -> dict:
        """score() from precomputed encoder features [T, Da]."""
        angles = np.asarray(angles, np.float32)[:, :3]
        t = min(len(features), len(angles))
        starts = window_starts(t, self.config.window)
        w = self.config.window
        sims = (self.embed_audio(windows(features, starts, w)) * self.embed_pose(windows(angles, starts, w))).sum(-1)
        return {"capp": float(sims.mean()), "capp_windows": [float(s) for s in sims]}

    def save(self, directory, extra: dict | None = None) -> None:
        """directory/capp.safetensors (params and feature statistics) and capp.json (config and `extra`)."""
        from flax.traverse_util import flatten_dict
        from safetensors.numpy import save_file

        os.makedirs(directory, exist_ok=True)
        tensors = {"params/" + "/".join(k): np.asarray(v) for k, v in flatten_dict(self.params).items()}
        tensors["stats/audio_mean"], tensors["stats/audio_std"] = self.audio_mean, self.audio_std
        save_file(tensors, os.path.join(directory, WEIGHTS_FILE))
        with open(os.path.join(directory, CONFIG_FILE), "w") as f:
            json.dump({"config": dataclasses.asdict(self.config), **(extra or {})}, f, indent=2)

    @classmethod
    def load(cls, directory) -> "Capp":
        """A model saved by save() (or the training command); ConfigError naming the folder when it is not one."""
        from flax.traverse_util import unflatten_dict

        from vasa_jax.io import read_state_dict

        weights, meta = os.path.join(directory, WEIGHTS_FILE), os.path.join(directory, CONFIG_FILE)
        if not (os.path.isfile(weights) and os.path.isfile(meta)):
            raise ConfigError(f"{directory}: not a CAPP model folder (needs {WEIGHTS_FILE} and {CONFIG_FILE}; "
                              "train one with python -m vasa_jax.eval.capp --out DIR)")
        try:
            with open(meta) as f:
                config = CappConfig(**json.load(f)["config"])
        except (ValueError, TypeError, KeyError) as e:
            raise ConfigError(f"{meta}: not a CAPP config ({e})") from None
        tensors = read_state_dict(weights)
        params = unflatten_dict({tuple(k.split("/")[1:]): jnp.asarray(v) for k, v in tensors.items()
                                 if k.startswith("params/")})
        if "stats/audio_mean" not in tensors or "stats/audio_std" not in tensors:
            raise ConfigError(f"{weights}: lacks the audio feature statistics (stats/audio_mean, stats/audio_std)")
        audio_dim = len(tensors["stats/audio_mean"])
        expected = jax.eval_shape(lambda: init_params(config, jax.random.key(0), audio_dim))
        if jax.tree.structure(expected) != jax.tree.structure(params) or any(
                a.shape != b.shape for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(params))):
            raise ConfigError(f"{weights}: its tensors do not match the model {meta} describes")
        return cls(config, params, tensors["stats/audio_mean"], tensors["stats/audio_std"])


def make_encoder(config: CappConfig):
    from vasa_jax.audio import make_audio_encoder

    return make_audio_encoder(config.audio_encoder, checkpoint=config.audio_checkpoint or None)


def init_params(config: CappConfig, key, audio_dim: int):
    w = config.window
    # Jitted: op by op, initialising takes many times longer.
    return jax.jit(CappNetwork(config).init)(key, jnp.zeros((1, w, audio_dim)), jnp.zeros((1, w, 6)))["params"]


# ---- training on the toy world -------------------------------------------------------------------------------


def toy_pairs(count: int, *, split: str, seconds: float, config: CappConfig, seed: int = 0,
              workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Audio features [C, T, Da] and true head angles [C, T, 3] of `count` toy clips: training identities
    drawn at random (split="train"), or the held-out identities in turn (split="heldout"); `workers` processes."""
    from vasa_jax.data import toyworld

    rng = np.random.default_rng([_STREAM, seed, 0 if split == "train" else 1])
    plans = []
    for i in range(count):
        if split == "train":
            identity = int(rng.integers(len(toyworld.TRAIN_IDENTITIES)))
        else:
            identity = toyworld.HELDOUT_IDENTITIES[i % len(toyworld.HELDOUT_IDENTITIES)]
        plans.append((config, int(rng.integers(2**31)), identity, seconds))
    if workers > 1:
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # jax is not fork-safe
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            pairs = list(pool.map(_toy_pair, plans, chunksize=8))
    else:
        pairs = [_toy_pair(plan) for plan in plans]
    t = min(len(f) for f, _ in pairs)
    return np.stack([f[:t] for f, _ in pairs]), np.stack([a[:t] for _, a in pairs])


_ENCODERS = {}  # one audio encoder per config in each process


def _toy_pair(plan):
    from vasa_jax.data import toyworld

    config, seed, identity, seconds = plan
    if config not in _ENCODERS:
        _ENCODERS[config] = make_encoder(config)
    audio, truth = toyworld.perform(seed, identity=identity, seconds=seconds)
    features = _ENCODERS[config].features(audio)
    t = min(len(features), len(truth["yaw"]))
    return features[:t], toyworld.pose_vectors(truth)[:t, :3]


def sample_starts(rng, frames: int, window: int, count: int, gap: int) -> np.ndarray:
    """`count` window starts in [0, frames - window], at least `gap` frames apart where the clip allows."""
    span = frames - window
    gap = min(gap, span // max(1, count - 1)) if count > 1 else 0
    # Spread: sorted uniform draws over the span less the gaps, then the gaps added back in order.
    draws = np.sort(rng.integers(0, span - gap * (count - 1) + 1, count))
    return draws + gap * np.arange(count)


def heldout_report(model: Capp, features, angles, max_shift: int = 4, seed: int = 0) -> dict:
    """On held-out clips [C, T, ...]: mean score of matched windows and of pose windows from other clips, audio ->
    pose retrieval top-1 accuracy among all windows (and chance), and the score with the pose shifted later by
    0..max_shift frames."""
    c, t = angles.shape[:2]
    w = model.config.window
    starts = np.arange(0, t - w - max_shift + 1, w)
    if not len(starts):
        raise ValueError(f"held-out clips of {t} frames are too short for {w}-frame windows")
    clip = np.repeat(np.arange(c), len(starts))
    start = np.tile(starts, c)
    gather = lambda x, shift: np.stack([x[i, s + shift:s + shift + w] for i, s in zip(clip, start)])  # noqa: E731
    audio = model.embed_audio(gather(features, 0))
    sims = audio @ model.embed_pose(gather(angles, 0)).T  # [N, N]
    other = clip[:, None] != clip[None, :]
    rng = np.random.default_rng(seed)
    shuffled = np.array([rng.choice(np.flatnonzero(row)) for row in other])
    shifts = [float((audio * model.embed_pose(gather(angles, k))).sum(-1).mean()) for k in range(max_shift + 1)]
    return {
        "windows": int(len(clip)),
        "matched_score": float(np.diag(sims).mean()),
        "shuffled_score": float(sims[np.arange(len(clip)), shuffled].mean()),
        "other_clips_mean_score": float(sims[other].mean()),
        "retrieval_top1": float(np.mean(np.argmax(sims, 1) == np.arange(len(clip)))),
        "retrieval_chance": 1.0 / len(clip),
        "shift_scores": shifts,
    }


def train_capp(config: CappConfig, training: CappTraining, *, log=print, data=None,
               workers: int = 1) -> tuple[Capp, dict]:
    """A CAPP model trained on toy-world clips (made by `workers` processes), and its held-out report
    (heldout_report). data: (train_features, train_angles, heldout_features, heldout_angles) instead of toy clips."""
    from vasa_jax.train.optim import make_optimizer

    started = time.perf_counter()
    if data is None:
        make = functools.partial(toy_pairs, seconds=training.clip_seconds, config=config, seed=training.seed,
                                 workers=workers)
        data = (*make(training.train_clips, split="train"), *make(training.heldout_clips, split="heldout"))
    train_f, train_a, held_f, held_a = data
    if train_f.ndim != 3:
        raise ConfigError(f"CAPP needs per-frame feature vectors [T, D]; the {config.audio_encoder} encoder gives "
                          f"frames of shape {train_f.shape[2:]} (use a single layer)")
    w = config.window
    if train_f.shape[1] < w:
        raise ConfigError(f"clip_seconds={training.clip_seconds} gives {train_f.shape[1]}-frame clips, shorter "
                          f"than the {w}-frame window")
    log(f"data: {len(train_f)} train and {len(held_f)} held-out clips of {train_f.shape[1]} frames "
        f"({time.perf_counter() - started:.0f} s)")
    flat = train_f.reshape(-1, train_f.shape[-1])
    mean, std = flat.mean(0), flat.std(0) + 1e-5
    train_f = (train_f - mean) / std

    key = jax.random.key(training.seed)
    params = init_params(config, key, train_f.shape[-1])
    optimizer = make_optimizer(training)
    opt_state = jax.jit(optimizer.init)(params)
    network = CappNetwork(config)

    @jax.jit
    def step(params, opt_state, features, angles):
        def loss_fn(p):
            a, q, scale = network.apply({"params": p}, features, pose_inputs(angles))
            return clip_loss(a, q, scale)

        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, accuracy

    rng = np.random.default_rng([_STREAM, training.seed, 2])
    c, t = train_f.shape[:2]
    history = []
    per_clip = min(training.windows_per_clip, training.batch_size)
    groups = training.batch_size // per_clip  # the batch: `groups` clips, per_clip windows of each
    for n in range(training.steps):
        clips = np.repeat(rng.choice(c, groups, replace=c < groups), per_clip)
        starts = np.concatenate([sample_starts(rng, t, w, per_clip, config.window // 5)
                                 for _ in range(groups)])
        index = starts[:, None] + np.arange(w)
        params, opt_state, loss, accuracy = step(params, opt_state, train_f[clips[:, None], index],
                                                 train_a[clips[:, None], index])
        history.append((float(loss), float(accuracy)))
        if (n + 1) % training.log_every == 0 or n + 1 == training.steps:
            recent = np.mean(history[-training.log_every:], axis=0)
            log(f"step {n + 1}/{training.steps}  loss {recent[0]:.3f}  in-batch accuracy {recent[1]:.3f}  "
                f"({time.perf_counter() - started:.0f} s)")
    model = Capp(config, params, mean, std)
    report = heldout_report(model, held_f, held_a, seed=training.seed)
    report["train_seconds"] = time.perf_counter() - started
    report["final_loss"], report["final_batch_accuracy"] = (float(v) for v in np.mean(history[-20:], axis=0))
    return model, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vasa_jax.eval.capp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for capp.safetensors and capp.json (must be new)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="toy")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--train-clips", type=int)
    parser.add_argument("--heldout-clips", type=int)
    parser.add_argument("--clip-seconds", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes making the toy clips")
    parser.add_argument("--audio-encoder", choices=("mel", "wav2vec2", "hubert"))
    parser.add_argument("--audio-checkpoint", help="local Hugging Face folder for wav2vec2 / hubert")
    args = parser.parse_args(argv)
    config, training = PRESETS[args.preset]
    overrides = {k: getattr(args, k) for k in ("steps", "batch_size", "warmup_steps", "train_clips", "heldout_clips",
                                                 "clip_seconds", "seed") if getattr(args, k) is not None}
    training = dataclasses.replace(training, **overrides)
    if args.audio_encoder:
        config = dataclasses.replace(config, audio_encoder=args.audio_encoder,
                                     audio_checkpoint=args.audio_checkpoint or "")
    try:
        if os.path.exists(os.path.join(args.out, WEIGHTS_FILE)):
            raise ConfigError(f"{args.out}: already holds a CAPP model; choose a new --out")
        if training.steps < 1 or training.batch_size < 2 or training.train_clips < 1 or training.heldout_clips < 2:
            raise ConfigError("need --steps >= 1, --batch-size >= 2, --train-clips >= 1 and --heldout-clips >= 2")
        if config.audio_encoder != "mel" and not config.audio_checkpoint:
            raise ConfigError(f"--audio-encoder {config.audio_encoder} needs --audio-checkpoint (a local folder)")
        model, report = train_capp(config, training, log=lambda s: print(s, flush=True), workers=args.workers)
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model.save(args.out, {"training": dataclasses.asdict(training), "heldout": report})
    print("held-out identities: " + json.dumps(report, indent=2))
    print(f"matched {report['matched_score']:.3f} vs shuffled {report['shuffled_score']:.3f}; retrieval top-1 "
          f"{report['retrieval_top1']:.3f} (chance {report['retrieval_chance']:.3f}); saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
