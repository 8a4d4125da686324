"""Preprocessed talking-face clips in ArrayRecord shards: the record format, the manifest, and reading clips.

`python -m vasa_jax.data.preprocess` writes an output folder:

    manifest.json                          what is there (see below) and the settings that made it
    train-00000-of-00003.array_record      one record per clip, clips of held-out identities in heldout-*
    heldout-00000-of-00001.array_record

Both training stages read it through grain: stage 1 through vasa_jax.data.face_pairs (data.source =
"shards", data.shards = the folder), stage 2 through ClipShardSource here.

One record is one clip (a segment of at most --segment-seconds of one video) at FPS frames per second:

    frames      JPEG bytes per frame (the square face crop, size x size), stored as one uint8 array "jpeg"
                with int64 offsets "jpeg_offsets" [T + 1]
    audio       float32 [T * sample_rate / FPS], mono 16 kHz; sample 0 plays with frame 0
    landmarks   float32 [T, 68, 2]: iBUG 68-point landmarks (x, y) in the crop's pixels
    crop_boxes  float32 [T, 4]: the crop (x0, y0, x1, y1) in the source video's pixels (square, smoothed over
                time); a landmark in source pixels is x0 + x * (x1 - x0) / size
    face_boxes  float32 [T, 4]: the tracked face box in source pixels (detections, interpolated between them)
    detected    bool [T]: a detector ran on this frame and found the face
    labels/...  float32 [T, ...] per-frame labels: labels/head_distance always (see preprocess), and whatever
                the labelers given to preprocess return
    meta        identity (name), identity_id, source (path relative to the input folder), segment,
                start_frame (in the video resampled to FPS), num_frames, fps, sample_rate, size,
                source_fps, source_size [width, height]

Records are serialised without pickle: b"VASACLIP" + version byte + a little-endian uint32 header length + a
JSON header ({"meta": ..., "arrays": [[name, dtype, shape, offset, nbytes], ...]}) + the raw array bytes. The
same clip always serialises to the same bytes.

manifest.json: "format", "input" (the folder preprocessed), "settings", "videos" (every video found, relative
paths), "counts" (videos, accepted_videos, clips, rejected, rejects by reason, frames, seconds), "identities"
(names of every video's identity; an identity's id is its index), "heldout_identities", "splits" ({split:
{"shards", "clips", "identities", "frames", "seconds"}}), "clips" (one entry per record, in record order:
split, shard, identity, identity_id, source, segment, num_frames, seconds), "rejects" (source, reason,
detail).
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from vasa_jax.errors import ConfigError

FPS = 25
MANIFEST = "manifest.json"
SPLITS = ("train", "heldout")
_MAGIC = b"VASACLIP"
_VERSION = 1
_ALIGN = 16


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.array_record"


def encode_record(arrays: dict, meta: dict) -> bytes:
    """One record's bytes: named numpy arrays plus JSON-serialisable metadata."""
    entries, chunks, offset = [], [], 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object; records hold plain numeric arrays only")
        pad = -offset % _ALIGN
        chunks.append(b"\0" * pad)
        offset += pad
        entries.append([name, a.dtype.str, list(a.shape), offset, a.nbytes])
        chunks.append(a.tobytes())
        offset += a.nbytes
    header = json.dumps({"meta": meta, "arrays": entries}, sort_keys=True, separators=(",", ":")).encode()
    return b"".join([_MAGIC, bytes([_VERSION]), struct.pack("<I", len(header)), header, *chunks])


def decode_record(data: bytes) -> tuple[dict, dict]:
    """(arrays, meta) of one record; arrays are read-only views of `data` (no copy)."""
    data = memoryview(data)
    if bytes(data[: len(_MAGIC)]) != _MAGIC:
        raise ValueError("not a vasa-jax clip record (bad magic bytes)")
    version = data[len(_MAGIC)]
    if version != _VERSION:
        raise ValueError(f"clip record version {version}; this vasa-jax reads version {_VERSION}")
    start = len(_MAGIC) + 1
    (length,) = struct.unpack("<I", data[start : start + 4])
    header = json.loads(bytes(data[start + 4 : start + 4 + length]))
    body = start + 4 + length
    arrays = {}
    for name, dtype, shape, offset, nbytes in header["arrays"]:
        arrays[name] = np.frombuffer(data, dtype=np.dtype(dtype), count=int(np.prod(shape, dtype=np.int64)),
                                     offset=body + offset).reshape(shape)
    return arrays, header["meta"]


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(frame, np.uint8)).save(out, format="JPEG", quality=int(quality), subsampling=0)
    return out.getvalue()


def decode_jpeg(data) -> np.ndarray:
    with Image.open(io.BytesIO(bytes(data))) as img:
        return np.asarray(img.convert("RGB"))


def jpeg_arrays(jpegs: list[bytes]) -> dict:
    """The "jpeg" / "jpeg_offsets" arrays of a record from per-frame JPEG bytes."""
    offsets = np.zeros(len(jpegs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(j) for j in jpegs])
    return {"jpeg": np.frombuffer(b"".join(jpegs), np.uint8), "jpeg_offsets": offsets}


def read_clip(record: bytes, *, frames=None) -> dict:
    """A clip record as arrays.

    frames: which frame indices to decode (default: all); decoding only the frames one needs is what makes
    frame-pair sampling cheap. Returns frames uint8 [F, S, S, 3], frame_indices int64 [F], audio float32 [N],
    landmarks float32 [T, 68, 2], crop_boxes / face_boxes float32 [T, 4], detected bool [T], labels {name:
    float32 [T, ...]}, identity (str), identity_id (int) and meta (the record's whole metadata).
    """
    arrays, meta = decode_record(record)
    offsets = arrays["jpeg_offsets"]
    count = offsets.size - 1
    indices = np.arange(count) if frames is None else np.asarray(frames, np.int64).reshape(-1)
    if indices.size and (indices.min() < -count or indices.max() >= count):
        raise IndexError(f"frame indices {indices.tolist()} out of range for a clip of {count} frames")
    indices = indices % max(count, 1)
    jpeg = arrays["jpeg"]
    decoded = [decode_jpeg(jpeg[offsets[i] : offsets[i + 1]]) for i in indices]
    size = int(meta["size"])
    return {
        "frames": np.stack(decoded) if decoded else np.zeros((0, size, size, 3), np.uint8),
        "frame_indices": indices,
        "audio": arrays["audio"],
        "landmarks": arrays["landmarks"],
        "crop_boxes": arrays["crop_boxes"],
        "face_boxes": arrays["face_boxes"],
        "detected": arrays["detected"],
        "labels": {name[len("labels/"):]: a for name, a in arrays.items() if name.startswith("labels/")},
        "identity": meta["identity"],
        "identity_id": int(meta["identity_id"]),
        "meta": meta,
    }


def load_manifest(folder) -> dict:
    """The manifest of a preprocess output folder; ConfigError naming the folder if there is none."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ConfigError(f"{folder}: shards folder not found (write one with python -m vasa_jax.data.preprocess)")
    if not path.is_file():
        raise ConfigError(f"{folder}: not a finished preprocess output (no {MANIFEST}); run python -m "
                          "vasa_jax.data.preprocess --input VIDEOS --output that folder (it resumes)")
    with open(path) as f:
        return json.load(f)


class ClipShardSource:
    """A grain random-access source of whole clips (read_clip dicts) of one split of a preprocess output.

    The clip reader stage 2 (motion diffusion) will train from: frames, audio, landmarks and labels of one
    clip per item. `frames` (an index array or None) limits which frames are decoded.
    """

    def __init__(self, folder, *, split: str = "train", frames=None):
        import grain

        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        self.folder = Path(folder)
        manifest = load_manifest(folder)
        self.clips = [c for c in manifest["clips"] if c["split"] == split]
        if not self.clips:
            raise ConfigError(f"{folder}: holds no {split} clips ({manifest['counts']['clips']} clips in all)")
        self.paths = [str(self.folder / name) for name in manifest["splits"][split]["shards"]]
        missing = [p for p in self.paths if not Path(p).is_file()]
        if missing:
            raise ConfigError(f"{missing[0]}: shard listed in {self.folder / MANIFEST} is missing")
        self.split = split
        self.frames = frames
        self._records = grain.sources.ArrayRecordDataSource(self.paths)
        if len(self._records) != len(self.clips):
            raise ConfigError(f"{self.folder}: the {split} shards hold {len(self._records)} records but the "
                              f"manifest lists {len(self.clips)}; the folder is damaged, preprocess it again")

    def __len__(self) -> int:
        return len(self.clips)

    def __repr__(self) -> str:
        return f"ClipShardSource({str(self.folder)!r}, split={self.split!r}, clips={len(self)})"

    def record(self, index: int) -> bytes:
        """The raw bytes of record `index`."""
        return self._records[int(index)]

    def __getitem__(self, index: int) -> dict:
        return read_clip(self.record(index), frames=self.frames)
