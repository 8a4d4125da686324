"""Stage-2 (motion generation) data: per-frame motion, audio features and labels of whole clips, cached to disk
once, and a grain pipeline of training windows with their previous-window context.

Motion sources (config.motion_data.source):
  "toy_truth"   the toy world's exact state as the motion vector (TOY_TRUTH_LAYOUT): z_pose = yaw, pitch, roll,
                tx, ty, scale; z_dyn = mouth_open, mouth_width, blink, gaze theta, gaze phi, emotion. Exact and
                independent of stage 1's quality.
  "face_model"  a trained stage-1 model's encode_motion over rendered toy-world clips (config.motion_data.
                face_workdir): the motion the face decoder will be driven with.
  "shards"      preprocessed real video (config.data.shards, the folder stage 1 reads too, written by
                python -m vasa_jax.data.preprocess; its train / held-out split by identity): a trained stage-1
                model's encode_motion over the clips' frames (motion_data.face_workdir), the audio features of
                their audio, labels/head_distance as the distance, labels/gaze and labels/emotion where a labeler
                wrote them (else missing), and the lip opening from the 68 landmarks as mouth_open.
Every clip gives a ClipRecord: motion [T, M], audio features [T, Da] (config.audio's encoder), and the labels
the controls come from, gaze (theta, phi) degrees [T, 2], distance = 1 / scale [T], emotion [T, E], plus the
evaluation's truth (mouth_open [T]). A label the data lacks is NaN: the window pipeline turns it into a False
mask (a dropped condition), never a value.

Cache: <cache_dir>/<source>-<encoder>-<split>-<hash of everything that defines the data>/ with one .npy per
array (frames of all clips concatenated, clip_start offsets) and meta.json; written to a temporary folder and
renamed when complete, memory-mapped when read.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import time

import grain
import jax
import numpy as np

from vasa_jax.data import toyworld
from vasa_jax.errors import ConfigError

SOURCES = ("toy_truth", "face_model", "shards")
SPLITS = ("train", "heldout")
TOY_TRUTH_LAYOUT = ("yaw", "pitch", "roll", "tx", "ty", "scale", "mouth_open", "mouth_width", "blink", "gaze_theta",
                    "gaze_phi", "emotion")
TRAIN_EXAMPLES = 10**8  # windows: effectively endless, the trainer stops by step count
CACHE_VERSION = 1
_ARRAYS = ("motion", "audio", "gaze", "distance", "emotion", "mouth_open", "clip_start", "identity", "seed")
_PLAN_STREAM = 0x2071  # separates clip plans from other toy-world randomness
_WINDOW_STREAM = 0x2072
_SPLIT_CODE = {"train": 0, "heldout": 1}


@dataclasses.dataclass
class ClipRecord:
    """One clip as stage 2 sees it (T frames at 25 fps). What a new motion source (real-video shards) yields."""

    motion: np.ndarray  # [T, M] float32, z_pose then z_dyn
    audio: np.ndarray  # [T, Da] float32 audio features
    gaze: np.ndarray  # [T, 2] float32 (theta, phi) degrees; NaN where unknown
    distance: np.ndarray  # [T] float32 head distance 1 / scale; NaN where unknown
    emotion: np.ndarray  # [T, E] float32; NaN where unknown
    mouth_open: np.ndarray  # [T] float32 lip opening (evaluation truth); NaN where unknown
    identity: int
    seed: int


def make_config_audio_encoder(audio_cfg):
    """The audio encoder a config's `audio` section names (mel: no checkpoint)."""
    from vasa_jax.audio import make_audio_encoder

    if audio_cfg.encoder == "mel":
        return make_audio_encoder("mel")
    layer = audio_cfg.get("layer", "last")
    return make_audio_encoder(audio_cfg.encoder, checkpoint=audio_cfg.checkpoint or None, layer=layer)


def clip_plan(split: str, index: int) -> tuple[int, int]:
    """(identity, clip seed) of clip `index` of a split: train clips draw identities from TRAIN_IDENTITIES,
    held-out clips cycle through HELDOUT_IDENTITIES (never seen in training)."""
    rng = np.random.default_rng([_PLAN_STREAM, _SPLIT_CODE[split], int(index)])
    if split == "train":
        identity = int(toyworld.TRAIN_IDENTITIES[int(rng.integers(len(toyworld.TRAIN_IDENTITIES)))])
    else:
        identity = int(toyworld.HELDOUT_IDENTITIES[index % len(toyworld.HELDOUT_IDENTITIES)])
    return identity, int(rng.integers(2**31 - 1))


def toy_truth_motion(truth: dict) -> np.ndarray:
    """[T, 12] float32 motion vectors in TOY_TRUTH_LAYOUT from a toy-world truth mapping."""
    gaze = np.asarray(truth["gaze"], np.float32)
    cols = [truth[k] for k in TOY_TRUTH_LAYOUT[:9]] + [gaze[:, 0], gaze[:, 1], truth["emotion"]]
    return np.stack([np.asarray(c, np.float32) for c in cols], axis=-1)


def _toy_labels(truth: dict) -> dict:
    return {"gaze": np.asarray(truth["gaze"], np.float32),
            "distance": (1.0 / np.asarray(truth["scale"], np.float64)).astype(np.float32),
            "emotion": np.asarray(truth["emotion"], np.float32)[:, None],
            "mouth_open": np.asarray(truth["mouth_open"], np.float32)}


def _toy_clip(args) -> tuple[dict, dict]:
    """(truth, {"audio": features}) of one planned toy clip; module level so worker processes can run it."""
    identity, seed, seconds, audio_cfg = args
    audio, truth = toyworld.perform(seed, identity=identity, seconds=seconds)
    features = make_config_audio_encoder(audio_cfg).features(audio)
    if features.shape[0] != len(truth["yaw"]):
        raise AssertionError(f"{features.shape[0]} audio frames for {len(truth['yaw'])} motion frames")
    return truth, {"audio": features.astype(np.float32)}


class MotionSource:
    """Clips of one split as ClipRecords: from the toy world (toy_truth / face_model) or shards."""

    def __init__(self, config, split: str):
        data = config.motion_data
        if data.source not in SOURCES:
            raise ConfigError(f"motion_data.source must be one of {SOURCES}; got {data.source!r}")
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}; got {split!r}")
        self.config, self.split, self.source = config, split, data.source
        self.shards = None
        if self.source == "shards":
            from vasa_jax.data.shards import ClipShardSource

            if not config.data.shards:
                raise ConfigError("motion_data.source='shards' reads data.shards: set it to a folder written by "
                                  "python -m vasa_jax.data.preprocess")
            self.shards = ClipShardSource(config.data.shards, split=split)
            self.num_clips = len(self.shards)
            self.seconds = float(sum(c["seconds"] for c in self.shards.clips))
        else:
            self.seconds = float(data.clip_seconds if split == "train" else data.heldout_seconds)
            self.num_clips = int(data.train_clips if split == "train" else data.heldout_clips)
        if self.num_clips < 1 or self.seconds <= 0:
            raise ConfigError(f"motion_data: the {split} split needs clips > 0 and seconds > 0; got "
                              f"{self.num_clips} clips of {self.seconds} s")
        self.face_step = None
        if self.source in ("face_model", "shards"):
            if not data.face_workdir:
                raise ConfigError(f"motion_data.source={self.source!r} needs motion_data.face_workdir (a trained "
                                  "stage-1 workdir, e.g. runs/face_toy, or a public face model's weights folder)")
            if not os.path.isfile(os.path.join(data.face_workdir, "config.json")):
                from vasa_jax.face.registry import is_public_face

                if not is_public_face(data.face_workdir):
                    raise ConfigError(f"motion_data.face_workdir={data.face_workdir!r} is neither a stage-1 workdir "
                                      "(no config.json) nor face weights (LivePortrait's, or a pipeline checkpoint)")
                self.face_step = PUBLIC_FACE_STEP
                return
            from vasa_jax.train.checkpoint import Checkpointer

            checkpointer = Checkpointer(data.face_workdir)
            steps = sorted(checkpointer.all_steps())
            checkpointer.close()
            if not steps:
                raise ConfigError(f"motion_data.face_workdir={data.face_workdir!r} holds no checkpoint yet")
            wanted = int(data.get("face_step", -1))
            if wanted >= 0 and wanted not in steps:
                raise ConfigError(f"motion_data.face_step={wanted}: {data.face_workdir!r} holds steps {steps}")
            self.face_step = wanted if wanted >= 0 else steps[-1]

    def key(self) -> dict:
        """Everything that defines the split's data (the cache's identity)."""
        audio = self.config.audio
        key = {"version": CACHE_VERSION, "source": self.source, "split": self.split, "seconds": self.seconds,
               "clips": self.num_clips, "encoder": audio.encoder,
               "audio_checkpoint": "" if audio.encoder == "mel" else os.path.abspath(audio.checkpoint),
               "audio_layer": "" if audio.encoder == "mel" else str(audio.get("layer", "last"))}
        if self.face_step is not None:
            key["face_workdir"] = os.path.abspath(self.config.motion_data.face_workdir)
            key["face_step"] = self.face_step
        if self.shards is not None:
            from vasa_jax.data.shards import MANIFEST

            with open(os.path.join(self.config.data.shards, MANIFEST), "rb") as f:
                key["shards"] = {"folder": os.path.abspath(self.config.data.shards),
                                 "manifest_sha1": hashlib.sha1(f.read()).hexdigest()}
            del key["seconds"], key["clips"]  # the manifest defines them
        return key

    def records(self, workers: int = 0):
        """ClipRecords of the split, in clip order; workers > 0 synthesises toy clips in that many processes."""
        if self.shards is not None:
            yield from self._shard_records()
            return
        plans = [clip_plan(self.split, i) for i in range(self.num_clips)]
        jobs = [(identity, seed, self.seconds, self.config.audio) for identity, seed in plans]
        face = None
        if self.source == "face_model":
            face = _FaceMotion(self.config.motion_data.face_workdir, self.face_step)
        if workers > 0:
            context = multiprocessing.get_context("spawn")  # never fork a process that has started JAX
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                results = pool.map(_toy_clip, jobs, chunksize=4)
                for (identity, seed), result in zip(plans, results):
                    yield self._record(identity, seed, *result, face)
        else:
            for (identity, seed), job in zip(plans, jobs):
                yield self._record(identity, seed, *_toy_clip(job), face)

    def _shard_records(self):
        """ClipRecords of the shard clips of this split, in record order (seed = the record's index)."""
        from vasa_jax.data.faces import mouth_opening

        face = _FaceMotion(self.config.motion_data.face_workdir, self.face_step)
        encoder = make_config_audio_encoder(self.config.audio)
        for index in range(self.num_clips):
            clip = self.shards[index]
            features = encoder.features(clip["audio"]).astype(np.float32)
            t = min(len(clip["frames"]), len(features))  # the audio may end a fraction of a frame early
            labels = clip["labels"]

            def label(name, width):
                if name not in labels:
                    return np.full((t, width), np.nan, np.float32)
                return np.asarray(labels[name], np.float32).reshape(len(labels[name]), -1)[:t]

            yield ClipRecord(motion=face.encode_frames(clip["frames"][:t]), audio=features[:t],
                             gaze=label("gaze", 2), distance=label("head_distance", 1)[:, 0],
                             emotion=label("emotion", 1), mouth_open=mouth_opening(clip["landmarks"][:t]),
                             identity=int(clip["identity_id"]), seed=index)

    def _record(self, identity, seed, truth, audio, face) -> ClipRecord:
        if face is None:
            motion = toy_truth_motion(truth)
        else:
            motion = face.encode(identity, truth)
        return ClipRecord(motion=motion, audio=audio["audio"], identity=identity, seed=seed, **_toy_labels(truth))


PUBLIC_FACE_STEP = -1  # the "step" of a public face model's weights (they have no training steps)


def load_face_source(folder: str, step: int | None):
    """(face model, params) of a stage-1 workdir at `step` or of a public face model's weights folder."""
    if step == PUBLIC_FACE_STEP:
        from vasa_jax.face.registry import load_public_face

        return load_public_face(folder)
    from vasa_jax.train.face import load_face_checkpoint

    _, face, params = load_face_checkpoint(folder, step=step)
    return face, params


def load_face_folder(folder: str):
    """(face model, params) of a stage-1 workdir (its latest step) or of face weights without steps (a public
    face model's, or a pipeline checkpoint's: vasa_jax.face.registry); ConfigError naming the folder otherwise."""
    from vasa_jax.face.registry import is_public_face

    if os.path.isfile(os.path.join(folder, "config.json")):
        return load_face_source(folder, None)
    if is_public_face(folder):
        return load_face_source(folder, PUBLIC_FACE_STEP)
    raise ConfigError(f"{folder}: neither a stage-1 workdir (no config.json) nor face weights (LivePortrait's, or a "
                      "pipeline checkpoint)")


class _FaceMotion:
    """A face model's motion vectors of rendered toy-world frames or of shard frames."""

    def __init__(self, workdir: str, step: int, batch: int = 50):
        self.face, self.params = load_face_source(workdir, step)
        self.batch = batch
        self._encode = jax.jit(self.face.encode_motion)

    def encode(self, identity: int, truth: dict) -> np.ndarray:
        """Motion [T, M] of a toy clip, rendered from its truth at the face model's resolution."""
        person = toyworld.sample_identity(identity)
        n = len(truth["yaw"])
        out = []
        for start in range(0, n, self.batch):
            state = {k: np.asarray(truth[k])[start: start + self.batch] for k in toyworld.STATE_KEYS}
            out.append(self._encode_batch(toyworld.render(person, state, self.face.image_size)))
        return np.concatenate(out).astype(np.float32)

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """Motion [T, M] of uint8 frames [T, S, S, 3] (resized to the face model's resolution)."""
        size = self.face.image_size
        out = []
        for start in range(0, len(frames), self.batch):
            batch = frames[start: start + self.batch]
            if batch.shape[1:3] != (size, size):
                from PIL import Image

                batch = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS))
                                  for f in batch])
            out.append(self._encode_batch(batch))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.face.motion_dim))

    def _encode_batch(self, frames: np.ndarray) -> np.ndarray:
        pad = self.batch - frames.shape[0]  # one compiled shape
        images = np.concatenate([frames, np.zeros((pad,) + frames.shape[1:], frames.dtype)]) / np.float32(255)
        return np.asarray(self._encode(self.params, images))[: frames.shape[0]]


def cache_dir(config, split: str) -> str:
    """Where the split's cache lives (whether or not it is built yet)."""
    source = MotionSource(config, split)
    key = source.key()
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return os.path.join(config.motion_data.cache_dir, f"{source.source}-{config.audio.encoder}-{split}-{digest}")


def build_cache(config, split: str, *, quiet: bool = True) -> str:
    """The split's cache folder, built first if it is not on disk yet (once; later calls only look)."""
    path = cache_dir(config, split)
    if os.path.isfile(os.path.join(path, "meta.json")):
        return path
    source = MotionSource(config, split)
    started = time.perf_counter()
    columns = {name: [] for name in ("motion", "audio", "gaze", "distance", "emotion", "mouth_open")}
    starts, identities, seeds = [0], [], []
    for i, record in enumerate(source.records(int(config.motion_data.build_workers))):
        for name in columns:
            columns[name].append(np.asarray(getattr(record, name), np.float32))
        starts.append(starts[-1] + record.motion.shape[0])
        identities.append(record.identity)
        seeds.append(record.seed)
        if not quiet and (i + 1) % 100 == 0:
            print(f"motion cache {split}: {i + 1}/{source.num_clips} clips, {time.perf_counter() - started:.0f} s",
                  flush=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    arrays = {name: np.concatenate(values) for name, values in columns.items()}
    arrays.update(clip_start=np.asarray(starts, np.int64), identity=np.asarray(identities, np.int64),
                  seed=np.asarray(seeds, np.int64))
    for name, value in arrays.items():
        np.save(os.path.join(tmp, f"{name}.npy"), value)
    meta = {"key": source.key(), "clips": len(identities), "frames": int(starts[-1]),
            "motion_dim": int(arrays["motion"].shape[1]), "audio_dim": int(arrays["audio"].shape[1]),
            "emotion_dim": int(arrays["emotion"].shape[1]),
            "layout": list(TOY_TRUTH_LAYOUT) if source.source == "toy_truth" else None,
            "seconds_to_build": time.perf_counter() - started}
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    try:
        os.replace(tmp, path)
    except OSError:
        if not os.path.isfile(os.path.join(path, "meta.json")):
            raise
        shutil.rmtree(tmp)  # another process (host) finished the same cache first: keep theirs
    return path


class MotionCache:
    """A built cache, memory-mapped: arrays of all frames, clip_start offsets and meta.json."""

    def __init__(self, path: str):
        meta_path = os.path.join(path, "meta.json")
        if not os.path.isfile(meta_path):
            raise ConfigError(f"{path}: not a motion cache (no meta.json); build_cache makes one")
        self.path = path
        with open(meta_path) as f:
            self.meta = json.load(f)
        self.arrays = {name: np.load(os.path.join(path, f"{name}.npy"), mmap_mode="r") for name in _ARRAYS}
        self.clip_start = np.asarray(self.arrays["clip_start"])

    @property
    def num_clips(self) -> int:
        return len(self.clip_start) - 1

    def clip_lengths(self) -> np.ndarray:
        return np.diff(self.clip_start)

    def clip(self, index: int) -> dict:
        """All per-frame arrays of one clip (numpy copies), plus identity and seed."""
        a, b = self.clip_start[index], self.clip_start[index + 1]
        out = {name: np.array(self.arrays[name][a:b]) for name in _ARRAYS[:6]}
        out.update(identity=int(self.arrays["identity"][index]), seed=int(self.arrays["seed"][index]))
        return out

    def frames(self, name: str) -> np.ndarray:
        """Every frame's values of one array (for statistics)."""
        return np.asarray(self.arrays[name])


def window_conditions_from_labels(gaze, distance, emotion):
    """Per-window control values from per-frame labels [W, ...] -> (gaze [2], has_gaze, distance [1],
    has_distance, emotion [E], has_emotion). Gaze is the window's main direction, the median (robust to brief
    glances); distance and emotion are means. A label unknown on every frame of the window is missing (value 0,
    has False); frames where it is unknown are left out."""

    def summary(x, reduce):
        x = np.asarray(x, np.float32).reshape(len(x), -1)
        known = np.all(np.isfinite(x), axis=1)
        if not known.any():
            return np.zeros(x.shape[1], np.float32), np.bool_(False)
        return reduce(x[known], axis=0).astype(np.float32), np.bool_(True)

    g, has_g = summary(gaze, np.median)
    d, has_d = summary(distance, np.mean)
    e, has_e = summary(emotion, np.mean)
    return g, has_g, d, has_d, e, has_e


class MotionWindowSource:
    """A grain random-access source of training windows: item i is a pure function of (seed, i).

    A window is `window` consecutive frames of one clip, uniform over all such windows in the cache; its
    context is the `context` frames before it (has_context False when the window starts earlier than that).
    Item: motion [W, M], audio [W, Da], audio_mask [W] bool, context_motion [K, M], context_audio [K, Da],
    has_context, gaze [2], has_gaze, distance [1], has_distance, emotion [E], has_emotion.
    """

    def __init__(self, path: str, window: int, context: int, *, seed: int = 0, num_examples: int = TRAIN_EXAMPLES):
        self.path, self.window, self.context, self.seed = path, int(window), int(context), int(seed)
        self.num_examples = int(num_examples)
        self._cache = None
        starts = self._open().clip_start
        lengths = np.diff(starts)
        self._valid = np.nonzero(lengths >= self.window)[0]
        if self._valid.size == 0:
            raise ConfigError(f"{path}: no clip is as long as a window ({self.window} frames); make clips longer "
                              "(motion_data.clip_seconds) or the window shorter")
        per_clip = lengths[self._valid] - self.window + 1
        self._cum = np.concatenate([[0], np.cumsum(per_clip)])

    def _open(self) -> MotionCache:
        if self._cache is None:
            self._cache = MotionCache(self.path)
        return self._cache

    def __getstate__(self):  # worker processes memory-map the cache themselves
        return {**self.__dict__, "_cache": None}

    def __len__(self) -> int:
        return self.num_examples

    def __repr__(self) -> str:
        return f"MotionWindowSource({self.path!r}, window={self.window}, context={self.context}, seed={self.seed})"

    def locate(self, index: int) -> tuple[int, int]:
        """(clip, first frame) of item `index`."""
        rng = np.random.default_rng([_WINDOW_STREAM, self.seed, int(index)])
        u = int(rng.integers(self._cum[-1]))
        j = int(np.searchsorted(self._cum, u, side="right")) - 1
        return int(self._valid[j]), u - int(self._cum[j])

    def __getitem__(self, index: int) -> dict:
        cache = self._open()
        clip, start = self.locate(index)
        a = int(cache.clip_start[clip]) + start
        w, k = self.window, self.context
        arr = cache.arrays
        has_context = start >= k
        motion_dim, audio_dim = arr["motion"].shape[1], arr["audio"].shape[1]
        if has_context:
            context_motion, context_audio = np.array(arr["motion"][a - k:a]), np.array(arr["audio"][a - k:a])
        else:
            context_motion, context_audio = np.zeros((k, motion_dim), np.float32), np.zeros((k, audio_dim), np.float32)
        g, has_g, d, has_d, e, has_e = window_conditions_from_labels(arr["gaze"][a:a + w], arr["distance"][a:a + w],
                                                                     arr["emotion"][a:a + w])
        return {"motion": np.array(arr["motion"][a:a + w]), "audio": np.array(arr["audio"][a:a + w]),
                "audio_mask": np.ones(w, bool), "context_motion": context_motion, "context_audio": context_audio,
                "has_context": np.bool_(has_context), "gaze": g, "has_gaze": has_g, "distance": d,
                "has_distance": has_d, "emotion": e, "has_emotion": has_e}


def motion_window_batches(path: str, *, window: int, context: int, batch_size: int, seed: int = 0,
                          shard_index: int | None = None, shard_count: int | None = None,
                          num_workers: int = 0) -> grain.DatasetIterator:
    """A grain iterator of training-window batches for this process (dicts of numpy arrays [batch_size, ...]),
    shuffled and endless; get_state()/set_state() resume it exactly. Each process reads its own shard."""
    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    ds = grain.MapDataset.source(MotionWindowSource(path, window, context, seed=seed))
    # Every shard_count-th batch, as face_pairs does: the global batch does not depend on the process count.
    ds = ds.seed(seed).shuffle().repeat(None).batch(batch_size, drop_remainder=True)[shard_index::shard_count]
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=4))
    if num_workers > 0:
        from vasa_jax.data.face_pairs import _mark_flags_parsed, _to_plain_arrays

        _mark_flags_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers)).map(_to_plain_arrays)
    return iter(it)
