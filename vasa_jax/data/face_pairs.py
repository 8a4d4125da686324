"""Stage-1 (face latent space) training data: two frames of one clip, plus a frame of another person.

The face model learns to disentangle appearance, identity, head pose and facial dynamics by reconstructing a
driver frame from a source frame of the same clip (same person, other pose and expression), and by transferring
motion across identities (the `other` frame). Examples come from the toy world, rendered on the fly
(FacePairSource, data.source = "toyworld"), or from preprocessed video (ShardPairSource, data.source = "shards",
data.shards = a folder written by python -m vasa_jax.data.preprocess). Either way each example is a pure function
of (seed, split, index), so a grain pipeline over the source resumes bit-identically from its iterator state.

    python -m vasa_jax.data.face_pairs --bench   # examples per second, in-process and with worker processes
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from PIL import Image

from vasa_jax.data import toyworld
from vasa_jax.data.faces import mouth_opening
from vasa_jax.data.shards import ClipShardSource, read_clip
from vasa_jax.errors import ConfigError

SPLITS = ("train", "heldout")
TRAIN_EXAMPLES = 10**8  # effectively endless: the trainer stops by step count
HELDOUT_EXAMPLES = 512  # a fixed evaluation set: 8 items per held-out identity
MIN_GAP_SECONDS = 0.4  # source and driver at least this far apart (capped at a quarter of the clip)

_PAIR_STREAM = 0xFA1  # separates pair sampling from the toy world's identity and clip randomness
_SPLIT_CODE = {"train": 0, "heldout": 1}
_MAX_CLIP_SEED = 2**31 - 1

# One example: images uint8 [S, S, 3]; poses float32 [6] in toyworld.POSE_KEYS order (yaw, pitch, roll in
# degrees, tx, ty, scale); has_pose bool (False where the data has no pose labels: the pose loss skips it);
# driver_mouth float32 [4]: the driver's mouth region (x0, y0, x1, y1) as fractions of the image, has_mouth bool
# (False where the data has no landmarks: the mouth loss skips it); driver_lip_opening float32: how open the
# driver's mouth is (the toy world's true mouth_open; in video faces.mouth_opening of its landmarks; 0 where
# has_mouth is False), the label of face_train.loss.lip_opening; identity, other_identity int32. A batch adds a
# leading axis [B, ...] to every entry.
EXAMPLE_KEYS = ("source", "driver", "other", "source_pose", "driver_pose", "other_pose", "has_pose", "driver_mouth",
                "has_mouth", "driver_lip_opening", "identity", "other_identity")
MOUTH_BOX_SCALE = 1.4  # the mouth region's side over the lips' larger extent: lips, teeth and the chin's top
_TOY_LIP_POINTS = ("mouth_l", "mouth_r", "upper_lip", "lower_lip")
_DLIB_OUTER_LIPS = slice(48, 60)  # iBUG 68-point order


def mouth_box(lip_points: np.ndarray) -> np.ndarray:
    """The square mouth region float32 [4] (x0, y0, x1, y1), fractions of the image, around lip points [K, 2]
    given as fractions too (LivePortrait's lip-region loss term: the mouth is a few pixels of a small face, so a
    loss over the whole image barely sees it)."""
    lo, hi = lip_points.min(axis=0), lip_points.max(axis=0)
    centre, half = (lo + hi) / 2, MOUTH_BOX_SCALE * float((hi - lo).max()) / 2
    return np.clip(np.concatenate([centre - half, centre + half]), 0.0, 1.0).astype(np.float32)


def toy_lip_points(person, state) -> np.ndarray:
    """The lip corners and the middle of each lip of a toy-world person in `state`: float [F, 4, 2], fractions of
    the image (mouth_box's input)."""
    lips = toyworld.landmarks(person, state)[:, [toyworld.LANDMARKS.index(name) for name in _TOY_LIP_POINTS]]
    return (lips + 1.0) / 2.0  # image coordinates [-1, 1] -> fractions


def mouth_mean(values, boxes):
    """Per-image mean [B] of per-pixel values [B, S, S, C] over each mouth region boxes [B, 4] (see mouth_box);
    jnp, traceable: the stage-1 mouth loss (of |error|) and the stage-1 evaluation's mouth PSNR (of error^2)."""
    size = values.shape[1]
    centres = (jnp.arange(size) + 0.5) / size
    boxes = jnp.asarray(boxes, jnp.float32)
    inside_x = (centres >= boxes[:, 0:1]) & (centres <= boxes[:, 2:3])  # [B, S]
    inside_y = (centres >= boxes[:, 1:2]) & (centres <= boxes[:, 3:4])
    mask = (inside_y[:, :, None] & inside_x[:, None, :]).astype(jnp.float32)[..., None]
    total = (values * mask).sum((1, 2, 3))
    return total / jnp.maximum(mask.sum((1, 2, 3)) * values.shape[-1], 1.0)


@dataclasses.dataclass(frozen=True)
class PairPlan:
    """What one example shows, before rendering: who, which clips, which frames."""

    identity: int
    clip: int  # clip seed of the source/driver performance
    source_frame: int
    driver_frame: int
    other_identity: int
    other_clip: int  # a different clip seed: the other person moves differently
    other_frame: int


class FacePairSource:
    """A grain random-access source of toy-world face pairs (see EXAMPLE_KEYS).

    Item i is a pure function of (seed, split, i). Train items draw identities uniformly from
    toyworld.TRAIN_IDENTITIES; held-out items cycle through toyworld.HELDOUT_IDENTITIES (balanced), and their
    `other` person is held out as well, so evaluation never shows a training identity. Keep seed=0 for the
    held-out split so that evaluation numbers compare across runs.
    """

    def __init__(self, image_size: int, *, split: str = "train", clip_seconds: float = 4.0, supersample: int = 1,
                 seed: int = 0, num_examples: int | None = None):
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if not 16 <= image_size <= 1024:
            raise ConfigError(f"image_size must be in [16, 1024] (the toy renderer's range), got {image_size}")
        if supersample < 1:
            raise ConfigError(f"supersample must be >= 1, got {supersample}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        if num_examples is not None and num_examples < 1:
            raise ConfigError(f"num_examples must be >= 1, got {num_examples}")
        self.image_size = int(image_size)
        self.split = split
        self.clip_seconds = float(clip_seconds)
        self.supersample = int(supersample)
        self.seed = int(seed)
        default = TRAIN_EXAMPLES if split == "train" else HELDOUT_EXAMPLES
        self.num_examples = int(default if num_examples is None else num_examples)
        # The clip length as perform makes it (one cheap call), so plans need no performance.
        self.num_frames = len(toyworld.perform(0, identity=0, seconds=self.clip_seconds, audio=False)[1]["yaw"])
        if self.num_frames < 2:
            raise ConfigError(f"clip_seconds={clip_seconds} gives {self.num_frames} frame at {toyworld.FPS} fps; "
                             f"a pair needs at least 2 (clip_seconds >= {1.5 / toyworld.FPS:g})")
        self.min_gap = max(1, min(round(MIN_GAP_SECONDS * toyworld.FPS), self.num_frames // 4))

    def __len__(self) -> int:
        return self.num_examples

    def __repr__(self) -> str:
        return (f"FacePairSource(image_size={self.image_size}, split={self.split!r}, clip_seconds={self.clip_seconds},"
                f" supersample={self.supersample}, seed={self.seed}, num_examples={self.num_examples})")

    def plan(self, index: int) -> PairPlan:
        """The draws behind item `index`, without rendering (cheap: for tests and inspection)."""
        index = int(index)
        if not 0 <= index < self.num_examples:
            raise IndexError(f"index {index} out of range for {self!r}")
        rng = np.random.default_rng([_PAIR_STREAM, self.seed, _SPLIT_CODE[self.split], index])
        if self.split == "train":
            pool = toyworld.TRAIN_IDENTITIES
            first = int(rng.integers(len(pool)))
        else:
            pool = toyworld.HELDOUT_IDENTITIES
            first = index % len(pool)
        # Any other member of the same pool, uniformly.
        second = (first + 1 + int(rng.integers(len(pool) - 1))) % len(pool)
        # Uniform over ordered frame pairs at least min_gap apart (rejection accepts ~80 % for 4 s clips).
        while True:
            source_frame, driver_frame = (int(f) for f in rng.choice(self.num_frames, 2, replace=False))
            if abs(source_frame - driver_frame) >= self.min_gap:
                break
        clip = int(rng.integers(_MAX_CLIP_SEED))
        other_clip = int(rng.integers(_MAX_CLIP_SEED - 1))
        if other_clip >= clip:  # skip `clip`: uniform over the other seeds
            other_clip += 1
        return PairPlan(identity=int(pool[first]), clip=clip, source_frame=source_frame, driver_frame=driver_frame,
                        other_identity=int(pool[second]), other_clip=other_clip,
                        other_frame=int(rng.integers(self.num_frames)))

    def __getitem__(self, index: int) -> dict:
        p = self.plan(index)
        frames, poses, lips, mouth_open = self._render(p.identity, p.clip, [p.source_frame, p.driver_frame])
        other, other_pose, _, _ = self._render(p.other_identity, p.other_clip, [p.other_frame])
        return {
            "source": frames[0], "driver": frames[1], "other": other[0],
            "source_pose": poses[0], "driver_pose": poses[1], "other_pose": other_pose[0],
            "has_pose": np.bool_(True), "driver_mouth": mouth_box(lips[1]), "has_mouth": np.bool_(True),
            "driver_lip_opening": mouth_open[1],
            "identity": np.int32(p.identity), "other_identity": np.int32(p.other_identity),
        }

    def _render(self, identity: int, clip: int, frames: list[int]):
        """Frames uint8 [F, S, S, 3], their poses float32 [F, 6], lip points [F, 4, 2] (fractions of the image)
        and true mouth openings float32 [F] of one clip's performance."""
        _, truth = toyworld.perform(clip, identity=identity, seconds=self.clip_seconds, audio=False)
        state = {key: np.asarray(truth[key])[frames] for key in toyworld.STATE_KEYS}
        person = toyworld.sample_identity(identity)
        images = toyworld.render(person, state, self.image_size, supersample=self.supersample)
        lips = toy_lip_points(person, state)
        return images, toyworld.pose_vectors(state), lips, state["mouth_open"].astype(np.float32)


class ShardPairSource:
    """A grain random-access source of face pairs (see EXAMPLE_KEYS) from preprocessed video shards.

    folder: an output folder of python -m vasa_jax.data.preprocess; its manifest names the shards of each split
    (held-out identities never appear in the train split). Item i is a pure function of (seed, split, i): train
    items draw a clip uniformly, held-out items cycle through the clips; source and driver are two frames of that
    clip at least MIN_GAP_SECONDS apart (capped at a quarter of the clip), `other` a frame of a clip of another
    identity of the same split. Only those three JPEG frames are decoded, then resized to image_size. Real video
    has no pose labels: poses are zeros and has_pose is False (the pose loss skips them).
    """

    def __init__(self, folder, image_size: int, *, split: str = "train", seed: int = 0,
                 num_examples: int | None = None):
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if not 16 <= image_size <= 1024:
            raise ConfigError(f"image_size must be in [16, 1024], got {image_size}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        if num_examples is not None and num_examples < 1:
            raise ConfigError(f"num_examples must be >= 1, got {num_examples}")
        if not folder:
            raise ConfigError("data.source='shards' needs data.shards: a folder written by "
                              "python -m vasa_jax.data.preprocess")
        self.clips = ClipShardSource(folder, split=split)
        identities = np.array([c["identity_id"] for c in self.clips.clips], np.int64)
        if len(set(identities.tolist())) < 2:
            raise ConfigError(f"{folder}: the {split} split holds {identities.size} clips of "
                              f"{len(set(identities.tolist()))} identity; face pairs need at least 2 identities "
                              "(the `other` person)")
        self.folder = str(folder)
        self.image_size = int(image_size)
        self.split = split
        self.seed = int(seed)
        default = TRAIN_EXAMPLES if split == "train" else HELDOUT_EXAMPLES
        self.num_examples = int(default if num_examples is None else num_examples)
        self.identities = identities  # [C] identity id of each clip, in record order
        self.num_frames = np.array([c["num_frames"] for c in self.clips.clips], np.int64)
        if self.num_frames.min() < 2:
            raise ConfigError(f"{folder}: a {split} clip has fewer than 2 frames")

    def __len__(self) -> int:
        return self.num_examples

    def __repr__(self) -> str:
        return (f"ShardPairSource({self.folder!r}, image_size={self.image_size}, split={self.split!r}, "
                f"seed={self.seed}, num_examples={self.num_examples}, clips={self.identities.size})")

    def plan(self, index: int) -> PairPlan:
        """The draws behind item `index` (clip = record index in the split, other_clip likewise)."""
        index = int(index)
        if not 0 <= index < self.num_examples:
            raise IndexError(f"index {index} out of range for {self!r}")
        rng = np.random.default_rng([_PAIR_STREAM, self.seed, _SPLIT_CODE[self.split], index])
        count = self.identities.size
        clip = int(rng.integers(count)) if self.split == "train" else index % count
        others = np.flatnonzero(self.identities != self.identities[clip])
        other_clip = int(others[rng.integers(others.size)])
        frames = int(self.num_frames[clip])
        gap = max(1, min(round(MIN_GAP_SECONDS * toyworld.FPS), frames // 4))
        while True:
            source_frame, driver_frame = (int(f) for f in rng.choice(frames, 2, replace=False))
            if abs(source_frame - driver_frame) >= gap:
                break
        return PairPlan(identity=int(self.identities[clip]), clip=clip, source_frame=source_frame,
                        driver_frame=driver_frame, other_identity=int(self.identities[other_clip]),
                        other_clip=other_clip, other_frame=int(rng.integers(self.num_frames[other_clip])))

    def __getitem__(self, index: int) -> dict:
        p = self.plan(index)
        clip = read_clip(self.clips.record(p.clip), frames=[p.source_frame, p.driver_frame])
        pair = clip["frames"]
        other = read_clip(self.clips.record(p.other_clip), frames=[p.other_frame])["frames"]
        zero = np.zeros(len(toyworld.POSE_KEYS), np.float32)
        landmarks = np.asarray(clip["landmarks"][p.driver_frame], np.float32)
        lips = landmarks[_DLIB_OUTER_LIPS] / pair.shape[1]
        found = bool(np.isfinite(lips).all())  # landmarks exist for every frame (tracked between detections)
        return {
            "source": self._resize(pair[0]), "driver": self._resize(pair[1]), "other": self._resize(other[0]),
            "source_pose": zero, "driver_pose": zero, "other_pose": zero,
            "has_pose": np.bool_(False),
            "driver_mouth": mouth_box(lips) if found else np.zeros(4, np.float32), "has_mouth": np.bool_(found),
            "driver_lip_opening": mouth_opening(landmarks) if found else np.float32(0),
            "identity": np.int32(p.identity), "other_identity": np.int32(p.other_identity),
        }

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape[0] == self.image_size:
            return frame
        return np.asarray(Image.fromarray(frame).resize((self.image_size, self.image_size), Image.BICUBIC))


def face_pair_batches(data_cfg, *, image_size: int, batch_size: int, split: str = "train", seed: int = 0,
                      shard_index: int | None = None, shard_count: int | None = None,
                      num_workers: int | None = None, num_examples: int | None = None) -> grain.DatasetIterator:
    """A grain iterator of face-pair batches for this process: dicts of numpy arrays [batch_size, ...].

    data_cfg: the config's `data` section (source, shards, clip_seconds, supersample, num_workers).
    seed: seeds the items and the train shuffle; keep 0 for the held-out split (a fixed evaluation set).
    num_examples: the source's length before sharding (default: TRAIN_EXAMPLES or HELDOUT_EXAMPLES).
    Train: shuffled and repeated forever. Held-out: one pass in index order; a last partial batch is dropped
    (HELDOUT_EXAMPLES = 512 divides by power-of-two batch and shard counts). Each process reads its own shard
    (default jax.process_index() of jax.process_count()), every shard_count-th batch; the trainer assembles the
    global batch.
    The iterator's get_state()/set_state() resume it bit-identically, with or without worker processes.
    """
    if data_cfg.source not in ("toyworld", "shards"):
        raise ConfigError(f"data.source must be 'toyworld' or 'shards', got {data_cfg.source!r}")
    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise ConfigError(f"shard_index must be in [0, {shard_count}), got {shard_index}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    num_workers = data_cfg.num_workers if num_workers is None else num_workers

    if data_cfg.source == "shards":
        source = ShardPairSource(data_cfg.shards, image_size, split=split, seed=seed, num_examples=num_examples)
    else:
        source = FacePairSource(image_size, split=split, clip_seconds=data_cfg.clip_seconds,
                                supersample=data_cfg.supersample, seed=seed, num_examples=num_examples)
    ds = grain.MapDataset.source(source)
    if split == "train":
        ds = ds.seed(seed).shuffle().repeat(None)
    # Every shard_count-th batch: the processes' batches, side by side, are the batch one process would read,
    # row for row, so a run's batches (and a step's per-row randomness) do not depend on the process count.
    ds = ds.batch(batch_size, drop_remainder=True)[shard_index::shard_count]
    if len(ds) == 0:
        raise ConfigError(f"{split} shard {shard_index} of {shard_count} holds {len(source) // shard_count} examples,"
                         f" fewer than one batch of {batch_size}")
    # Rendering is small-array numpy that holds the GIL most of the time, so more threads do not render faster;
    # one thread overlaps it with the consumer, and a small buffer bounds memory (grain's default: 16 threads,
    # 500 batches). Worker processes are what scale.
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=2))
    if num_workers > 0:
        _mark_flags_parsed()
        # Workers hand batches over in shared memory; copying them out (a few MB) gives the trainer plain arrays
        # whose lifetime needs no care (a kept shared-memory batch leaks its segment at exit).
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers)).map(_to_plain_arrays)
    return iter(it)


def _to_plain_arrays(batch: dict) -> dict:
    return {key: np.array(value) for key, value in batch.items()}


def _mark_flags_parsed() -> None:
    """Lets grain's worker processes read absl flags outside absl.app.run (else UnparsedFlagAccessError).

    Flags keep their defaults; a later FLAGS(argv) still parses normally.
    """
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def benchmark(image_sizes=(64, 128), workers=(0, 2), *, batch_size: int = 16, num_batches: int = 12) -> list[dict]:
    """Examples per second of face_pair_batches (train split, default data config), timed after the first batch
    (worker start-up). Wall-clock figures fall when other processes share the cores; in-process rows also give
    CPU milliseconds per example, which do not."""
    from vasa_jax.config import default_config

    data_cfg = default_config().data
    rows = []
    for size in image_sizes:
        for n in workers:
            it = face_pair_batches(data_cfg, image_size=size, batch_size=batch_size, shard_index=0, shard_count=1,
                                   num_workers=n)
            next(it)
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(num_batches):
                next(it)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            it.close()
            count = num_batches * batch_size
            rows.append({"image_size": size, "num_workers": n, "examples_per_second": count / seconds,
                         "cpu_ms_per_example": 1000 * cpu_seconds / count if n == 0 else None})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", action="store_true", help="print examples per second")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_batches", type=int, default=12)
    args = parser.parse_args(argv)
    if not args.bench:
        parser.error("nothing to do: pass --bench")
    print(f"face_pairs (train split, batch {args.batch_size}, {args.num_batches} batches after the first) on "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    for row in benchmark(args.sizes, args.workers, batch_size=args.batch_size, num_batches=args.num_batches):
        cpu = row["cpu_ms_per_example"]
        print(f"  image_size {row['image_size']:4d}  num_workers {row['num_workers']}:"
              f"  {row['examples_per_second']:7.1f} examples/s" + (f"  ({cpu:.1f} CPU ms/example)" if cpu else ""))
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
