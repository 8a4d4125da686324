"""Preprocess talking-face videos (VoxCeleb2 / HDTF style, or any folder of videos with audio) into shards.

    python -m vasa_jax.data.preprocess --input VIDEOS --output SHARDS [--size 512] [--workers N]
    python -m vasa_jax.data.preprocess --input VIDEOS --output SHARDS --runner DirectRunner [Beam options]

Per video: decode (PyAV, through vasa_jax.io); resample to 25 fps by nearest frame timestamp (no blending:
every output frame is a real frame); take the audio at 16 kHz mono, sample 0 at frame 0; detect the face on
every --detect-every-th frame (faces.FaceDetector: HOG, CNN where HOG finds nothing; both on every 5th of
those frames, where faces are counted) and track it in between by linear interpolation of the largest face's
box; 68 landmarks on every frame; the project's crop
(faces.crop_box) per frame, smoothed over time (faces.smooth_crop_boxes: running median over 0.4 s, then a
Gaussian of --smooth-seconds); crop and resize to --size; JPEG. Long videos are cut into clips of about
--segment-seconds (between 0.67x and 1.5x of it). The shard format is described in vasa_jax.data.shards.

Rejected, and listed in the manifest with the reason:
    undecodable     FFmpeg cannot read the file or its streams (the message says what failed)
    no_audio        the video has no audio track
    too_short       shorter than --min-seconds after resampling
    no_face         the face was found on fewer than --min-face-fraction of the frames the detector ran on
    several_faces   a second face at least --multi-face-ratio as wide as the largest, on more than
                    --multi-face-fraction of the frames where faces were counted (and a face was found)
    face_too_small  the face box's median width is under --min-face pixels of the source video (the crop is
                    ~2 face-box widths)

Identity, from the folder layout (paths relative to --input): <id>/.../<file> (VoxCeleb2's id/video/clip.mp4,
or id/clip.mp4) -> the first folder's name; a file directly in --input (HDTF's flat folder) -> its stem up to
the last --id-separator ("WDA_BarackObama_000.mp4" -> "WDA_BarackObama"; no separator in the stem, or an
empty --id-separator: the whole stem). Identity ids are the indices of the sorted names over every video found.
Held-out split, over the identities with accepted clips: an identity is held out when the first 8 bytes of
sha1(name), as a fraction of 2^64, fall below --heldout-fraction (stable as a dataset grows); if that holds out
none of two or more identities, the one with the smallest hash is held out.

Labels computed here: labels/head_distance [T] = (the source frame's shorter side) / (faces.CROP_SCALE x the
frame's face scale, median- and lightly Gaussian-smoothed): the head's distance from the camera in units where
the face's crop would fill the frame's shorter side. On toy-world video (calibrated framing) it is the true
distance 1 / scale; on real video it is proportional to the true distance for a fixed camera and lens. The
crop itself follows the face, so the face's size in the crops does not carry distance; this label does.
Labels that need a model (gaze, emotion) come from labelers you supply: --labeler package.module:function,
called once per clip in the worker processes as

    function(frames, *, landmarks, fps) -> {name: array with T rows}

with frames uint8 [T, size, size, 3] (the crops), landmarks float32 [T, 68, 2] (crop pixels), fps = 25; each
returned array is stored as labels/<name> (float32). The module must be importable by the worker processes.

Resuming: each video's result (its clips' records, or its reject reason) is written to <output>/work/ as it
finishes; rerunning the same command skips finished videos, and the shards and manifest are assembled from
those results in sorted-path order only when every video is done, so an interrupted-then-resumed run ends
with byte-identical shards and manifest to an uninterrupted one (whatever --workers or runner). work/ is
removed after assembly. The input folder is only read; an --output inside --input is refused. One run at a time
holds an output folder (vasa_jax.data.folder_lock): a second is refused with exit code 2, naming the holder; a
run that died (even by kill -9) holds nothing, and rerunning its command resumes it.

Runners: without --runner, a local pool of --workers processes. With --runner (DirectRunner, DataflowRunner,
FlinkRunner, SparkRunner, ...; needs `pip install -e ".[beam]"`), Apache Beam maps the same per-video function
(run_task) over the videos and writes the same shards (vasa_jax.data.beam_pipeline); the arguments this command
does not know are Beam pipeline options. The output is byte-identical whichever runner made it.

Throughput: every run reports videos/s and output frames/s (25 fps crops) overall and per worker (per second of
a worker's busy time, so it holds for any runner); --report-throughput adds what that means in worker-hours.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from vasa_jax.cli import OneLineParser, load_function
from vasa_jax.data import faces
from vasa_jax.data.folder_lock import LOCK_NAME, folder_lock
from vasa_jax.data.shards import (FPS, MANIFEST, SPLITS, encode_jpeg, encode_record, jpeg_arrays, load_manifest,
                                  shard_name)
from vasa_jax.errors import ConfigError
from vasa_jax.io import MediaError, SAMPLE_RATE, iter_video_frames, probe_video, read_video_audio

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".ts")
WORK = "work"  # subfolder of the output holding each video's result until the shards are assembled
REJECT_REASONS = ("undecodable", "no_audio", "too_short", "no_face", "several_faces", "face_too_small")
MEDIAN_SECONDS = 0.4  # running-median window of the crop smoother (outliers up to half of it are removed)
LABEL_SIGMA_SECONDS = 0.08  # Gaussian smoothing of the face scale behind labels/head_distance (after the median)
CENSUS_EVERY = 5  # every 5th detector frame runs both detectors (FaceDetector.detect(both=True)) to count faces
_SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that decides the output; stored in the manifest. A resumed run must use the same."""

    size: int = 512  # side of the square face crops (pixels)
    detect_size: int = faces.DETECT_SIZE  # frames are resized to this shorter side for detection
    detect_every: int = 5  # the detector runs on every k-th output frame; the face is tracked in between
    min_seconds: float = 2.0  # shorter videos are rejected
    segment_seconds: float = 10.0  # longer videos are cut into clips of about this length
    min_face: float = 64.0  # median face-box width (source pixels) below this: rejected
    min_face_fraction: float = 0.5  # the face must be found on at least this fraction of detector frames
    multi_face_ratio: float = 0.5  # a second face at least this fraction of the largest's width counts
    multi_face_fraction: float = 0.2  # ... on more than this fraction of the frames with a face: rejected
    smooth_seconds: float = 1.0  # Gaussian sigma of the crop track (0: median only)
    jpeg_quality: int = 95
    heldout_fraction: float = 0.05  # fraction of identities held out (by name hash)
    id_separator: str = "_"  # flat folders: identity = file stem up to the last separator
    clips_per_shard: int = 100  # records per ArrayRecord file
    labelers: tuple = ()  # "module:function" labelers run on every clip

    def validate(self) -> None:
        checks = [
            (16 <= self.size <= 4096, f"--size must be in [16, 4096], got {self.size}"),
            (self.detect_size >= 64, f"--detect-size must be >= 64, got {self.detect_size}"),
            (self.detect_every >= 1, f"--detect-every must be >= 1, got {self.detect_every}"),
            (self.min_seconds > 0, f"--min-seconds must be positive, got {self.min_seconds}"),
            (self.segment_seconds >= 2 * self.min_seconds,
             f"--segment-seconds ({self.segment_seconds}) must be at least twice --min-seconds ({self.min_seconds})"),
            (self.min_face >= 0, f"--min-face must be >= 0, got {self.min_face}"),
            (0 <= self.min_face_fraction <= 1, f"--min-face-fraction must be in [0, 1], got {self.min_face_fraction}"),
            (0 < self.multi_face_ratio <= 1, f"--multi-face-ratio must be in (0, 1], got {self.multi_face_ratio}"),
            (0 <= self.multi_face_fraction <= 1,
             f"--multi-face-fraction must be in [0, 1], got {self.multi_face_fraction}"),
            (self.smooth_seconds >= 0, f"--smooth-seconds must be >= 0, got {self.smooth_seconds}"),
            (1 <= self.jpeg_quality <= 100, f"--jpeg-quality must be in [1, 100], got {self.jpeg_quality}"),
            (0 <= self.heldout_fraction < 1, f"--heldout-fraction must be in [0, 1), got {self.heldout_fraction}"),
            (self.clips_per_shard >= 1, f"--clips-per-shard must be >= 1, got {self.clips_per_shard}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for spec in self.labelers:
            load_labeler(spec)

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "labelers": list(self.labelers)}


class Reject(Exception):
    """A video that cannot become training data; reason is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str):
        assert reason in REJECT_REASONS, reason
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


# ---- the input tree: videos, identities, split --------------------------------------------------------------


def find_videos(root: Path) -> list[str]:
    """Video files under root (by extension, hidden files and folders skipped), as sorted posix relative paths."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES:
                found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def identity_of(relpath: str, separator: str = "_") -> str:
    """The identity name a video's path (relative to the input folder) implies; see the module docstring."""
    path = PurePosixPath(relpath)
    if len(path.parts) > 1:
        return path.parts[0]
    stem = path.stem
    if separator and separator in stem:
        head = stem.rsplit(separator, 1)[0]
        return head or stem
    return stem


def _name_hash(name: str) -> float:
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2.0**64


def heldout_identities(names, fraction: float) -> list[str]:
    """The held-out identity names (sorted); see the module docstring for the rule."""
    names = sorted(set(names))
    if fraction <= 0 or len(names) < 2:
        return []
    held = [n for n in names if _name_hash(n) < fraction]
    if not held:
        held = [min(names, key=_name_hash)]
    return sorted(held)


# ---- one video -> clips ---------------------------------------------------------------------------------------


def resample_frames(frames, src_fps: float, fps: float = FPS):
    """(output index, source index, frame) at `fps` from (time, frame) pairs, by nearest timestamp.

    Output frame n shows the instant n / fps; the output covers the source's duration (last frame time plus
    one source frame interval) to the nearest frame, so a 25 fps source maps frame for frame.
    """
    n, previous = 0, None
    for k, (t, frame) in enumerate(frames):
        if previous is not None:
            midpoint = (previous[0] + t) / 2
            while n / fps < midpoint:
                yield n, k - 1, previous[1]
                n += 1
        previous = (t, frame)
    if previous is None:
        return
    total = int(round((previous[0] + 1.0 / src_fps) * fps))
    while n < total:
        yield n, k, previous[1]
        n += 1


def _frames_at(path, src_index: np.ndarray):
    """(output index, frame) for output frames whose source frames are src_index (non-decreasing)."""
    n = 0
    for k, (_, frame) in enumerate(iter_video_frames(path)):
        while n < src_index.size and src_index[n] == k:
            yield n, frame
            n += 1
        if n == src_index.size:
            return
    if n < src_index.size:
        raise MediaError(path, f"decoded {k + 1} frames on a second pass, fewer than the first pass found")


def track_face(detections: dict, census: set, num_frames: int, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """The largest face's box on every frame from detections {frame: boxes [K, 4] largest first}.

    census: the frames where both detectors ran (FaceDetector.detect(both=True)); faces are counted there.

    Returns face boxes float32 [T, 4] (linear interpolation between frames with a face, held at the ends)
    and detected bool [T]. Raises Reject for no_face, several_faces and face_too_small.
    """
    ran = sorted(detections)
    hits = [n for n in ran if len(detections[n])]
    if len(hits) < max(1, settings.min_face_fraction * len(ran)):
        raise Reject("no_face", f"a face was found on {len(hits)} of {len(ran)} frames the detector ran on "
                                f"(at least {settings.min_face_fraction:g} needed)")
    widths = np.array([detections[n][0, 2] - detections[n][0, 0] for n in hits])
    counted = [detections[n] for n in sorted(census) if len(detections[n])]
    ratio = settings.multi_face_ratio
    crowded = sum(1 for b in counted if len(b) > 1 and b[1, 2] - b[1, 0] >= ratio * (b[0, 2] - b[0, 0]))
    if crowded > settings.multi_face_fraction * len(counted):
        raise Reject("several_faces", f"{crowded} of {len(counted)} frames where faces were counted show another "
                                      f"face at least {ratio:g}x as wide as the largest")
    if np.median(widths) < settings.min_face:
        raise Reject("face_too_small", f"the face is {np.median(widths):.0f} px wide (median); at least "
                                       f"{settings.min_face:g} px needed")
    known = np.stack([detections[n][0] for n in hits])
    frames = np.arange(num_frames)
    boxes = np.stack([np.interp(frames, hits, known[:, c]) for c in range(4)], -1).astype(np.float32)
    detected = np.zeros(num_frames, bool)
    detected[hits] = True
    return boxes, detected


def segment_bounds(num_frames: int, segment_frames: float) -> list[tuple[int, int]]:
    """Clips [start, stop) of nearly equal length, about segment_frames each (0.67x to 1.5x)."""
    count = max(1, int(round(num_frames / segment_frames)))
    edges = np.round(np.linspace(0, num_frames, count + 1)).astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class VideoProcessor:
    """Turns one video into clip records; holds the face models and labelers (one per worker process)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.detector = faces.FaceDetector(detect_size=settings.detect_size)
        self.labelers = [(spec, load_labeler(spec)) for spec in settings.labelers]

    def clips(self, path: Path, info: dict) -> list[tuple[bytes, int]]:
        """(record, frame count) of each of one video's clips; raises Reject, or MediaError for what FFmpeg
        cannot read.

        info: identity, identity_id and source (the relative path), stored in every record.
        """
        s = self.settings
        probe = probe_video(path)
        if not probe.has_audio:
            raise Reject("no_audio", "the video has no audio track")
        min_frames = int(math.ceil(s.min_seconds * FPS - 1e-6))
        if 0 < probe.duration < s.min_seconds - 1.0 / FPS:
            raise Reject("too_short", f"{probe.duration:.2f} s long; at least {s.min_seconds:g} s needed")

        # Pass 1: which source frame each output frame shows, and detections on every detect_every-th one.
        src_index, detections, census = [], {}, set()
        for n, k, frame in resample_frames(iter_video_frames(path), probe.fps):
            src_index.append(k)
            if n % s.detect_every == 0:
                thorough = n % (s.detect_every * CENSUS_EVERY) == 0
                detections[n] = self.detector.detect(frame, both=thorough)
                if thorough:
                    census.add(n)
        src_index = np.asarray(src_index, np.int64)
        count = src_index.size
        if count < min_frames:
            raise Reject("too_short", f"{count / FPS:.2f} s long; at least {s.min_seconds:g} s needed")
        face_boxes, detected = track_face(detections, census, count, s)

        # Pass 2: landmarks on every frame, in the tracked box.
        landmarks = np.zeros((count, 68, 2), np.float32)
        for n, frame in _frames_at(path, src_index):
            landmarks[n] = self.detector.landmarks(frame, face_boxes[n])
        raw = faces.crop_box(landmarks)
        median = 2 * int(round(MEDIAN_SECONDS * FPS / 2)) + 1
        crops = faces.smooth_crop_boxes(raw, median=median, sigma=s.smooth_seconds * FPS)
        face_scale = faces.smooth_track(faces.face_measures(landmarks)[2][:, None], median=median,
                                        sigma=LABEL_SIGMA_SECONDS * FPS)[:, 0]
        head_distance = (min(probe.width, probe.height) / (faces.CROP_SCALE * face_scale)).astype(np.float32)
        corners = np.concatenate([crops[:, :2] - crops[:, 2:] / 2, crops[:, :2] + crops[:, 2:] / 2], -1)
        in_crop = (landmarks - corners[:, None, :2]) * (s.size / crops[:, 2])[:, None, None]

        audio = read_video_audio(path)
        want = count * _SAMPLES_PER_FRAME
        audio = np.pad(audio[:want], (0, max(0, want - audio.size))).astype(np.float32)

        # Pass 3: crop, encode, and close a record at the end of each segment.
        records, jpegs, crops_kept = [], [], []
        bounds = segment_bounds(count, s.segment_seconds * FPS)
        segment = 0
        for n, frame in _frames_at(path, src_index):
            crop = faces.crop_image(frame, crops[n], s.size)
            jpegs.append(encode_jpeg(crop, s.jpeg_quality))
            if self.labelers:
                crops_kept.append(crop)
            start, stop = bounds[segment]
            if n + 1 == stop:
                sl = slice(start, stop)
                arrays = {
                    **jpeg_arrays(jpegs),
                    "audio": audio[start * _SAMPLES_PER_FRAME : stop * _SAMPLES_PER_FRAME],
                    "landmarks": in_crop[sl].astype(np.float32),
                    "crop_boxes": corners[sl].astype(np.float32),
                    "face_boxes": face_boxes[sl],
                    "detected": detected[sl],
                    "labels/head_distance": head_distance[sl],
                }
                if self.labelers:
                    arrays.update(self._labels(np.stack(crops_kept), arrays["landmarks"]))
                meta = {**info, "segment": segment, "start_frame": start, "num_frames": stop - start, "fps": FPS,
                        "sample_rate": SAMPLE_RATE, "size": s.size, "source_fps": round(float(probe.fps), 6),
                        "source_size": [probe.width, probe.height]}
                records.append((encode_record(arrays, meta), stop - start))
                jpegs, crops_kept = [], []
                segment += 1
        return records

    def _labels(self, frames: np.ndarray, landmarks: np.ndarray) -> dict:
        out = {}
        for spec, labeler in self.labelers:
            result = labeler(frames, landmarks=landmarks, fps=FPS)
            if not isinstance(result, dict):
                raise TypeError(f"labeler {spec} returned {type(result).__name__}, not a dict of arrays")
            for name, value in result.items():
                value = np.asarray(value, np.float32)
                if not re.fullmatch(r"[A-Za-z0-9_]+", str(name)) or name == "head_distance":
                    raise ValueError(f"labeler {spec}: label name {name!r} must be letters, digits and _ and not "
                                     "head_distance")
                if value.ndim == 0 or value.shape[0] != frames.shape[0]:
                    raise ValueError(f"labeler {spec}: label {name!r} has shape {value.shape}; it needs one row "
                                     f"per frame ({frames.shape[0]})")
                out[f"labels/{name}"] = value
        return out


def load_labeler(spec: str):
    """The labeler named by "package.module:function"; ConfigError if it cannot be imported."""
    return load_function(spec, "--labeler", "mypackage.gaze:label")


# ---- per-video results in work/ (the resume journal) ----------------------------------------------------------


def _part_stem(relpath: str) -> str:
    return hashlib.sha1(relpath.encode()).hexdigest()[:20]


def _temporary(path: Path) -> Path:
    """A fresh name beside `path` for writing it: two writers of one file (a Beam runner may run an element
    twice) never share a temporary file, and the last complete one to land wins (they are the same bytes)."""
    return path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.partial")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _temporary(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_part(work: Path, relpath: str) -> dict | None:
    """A finished video's result, or None if it is not (completely) there."""
    stem = _part_stem(relpath)
    try:
        with open(work / f"{stem}.json") as f:
            part = json.load(f)
    except (OSError, ValueError):
        return None
    if part.get("source") != relpath:
        return None
    data = work / f"{stem}.bin"
    if part["status"] == "ok" and (not data.is_file() or data.stat().st_size != sum(part["record_bytes"])):
        return None
    return part


_PROCESSOR: VideoProcessor | None = None  # one per worker process, made by _init_worker


def _init_worker(settings: Settings) -> None:
    global _PROCESSOR
    _PROCESSOR = VideoProcessor(settings)


def process_video(task: dict) -> dict:
    """run_task with this worker process's VideoProcessor (top level: the local pool's entry point)."""
    return run_task(_PROCESSOR, task)


def run_task(processor: VideoProcessor, task: dict) -> dict:
    """Processes one video and writes its result to work/: the per-video work every runner maps.

    task: root, work, source (relative path), identity, identity_id. Returns a summary: source,
    status ("ok", "rejected" or "error": an unexpected failure, not recorded, so that a rerun retries it),
    clips, frame_count, seconds (this call's wall time), and the result's fields (frames, reason, detail).
    """
    work, relpath = Path(task["work"]), task["source"]
    info = {k: task[k] for k in ("identity", "identity_id", "source")}
    start = time.perf_counter()
    try:
        clips = processor.clips(Path(task["root"]) / relpath, info)
        part = {"source": relpath, "status": "ok", "record_bytes": [len(r) for r, _ in clips],
                "frames": [n for _, n in clips]}
        _write_atomic(work / f"{_part_stem(relpath)}.bin", b"".join(r for r, _ in clips))
    except Reject as r:
        part = {"source": relpath, "status": "rejected", "reason": r.reason, "detail": r.detail}
    except MediaError as e:
        part = {"source": relpath, "status": "rejected", "reason": "undecodable", "detail": e.problem}
    except Exception as e:  # a bug or a labeler's failure: reported, not recorded, so a rerun retries it
        return {"source": relpath, "status": "error", "detail": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - start}
    _write_atomic(work / f"{_part_stem(relpath)}.json", json.dumps(part, sort_keys=True).encode())
    return {"clips": len(part.get("record_bytes", [])), "frame_count": sum(part.get("frames", [])),
            "seconds": time.perf_counter() - start, **part}


# ---- the whole run --------------------------------------------------------------------------------------------

SIZING_HOURS = 2400  # VoxCeleb2 (about a million clips): the scale --report-throughput sizes a cluster for


def check_folders(input_dir, output_dir) -> tuple[Path, Path]:
    """Resolved (input, output); ConfigError for a missing input or an output inside the input."""
    root = Path(input_dir).resolve()
    out = Path(output_dir).resolve()
    if not root.is_dir():
        raise ConfigError(f"{input_dir}: input folder not found" if not root.exists()
                          else f"{input_dir}: is not a folder")
    if out == root or root in out.parents:
        raise ConfigError(f"{output_dir}: the output folder is inside the input folder {input_dir}; the input "
                          "is never written to, choose an output elsewhere")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{output_dir}: exists and is not a folder")
    if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()) and not (out / WORK).is_dir() and \
            not (out / MANIFEST).is_file():
        raise ConfigError(f"{output_dir}: exists, is not empty, and is not a preprocess output; choose a new or "
                          "empty folder")
    return root, out


def preprocess(input_dir, output_dir, settings: Settings = Settings(), *, workers: int = 1, quiet: bool = False,
               stop_after: int | None = None, runner: str | None = None, beam_options: Sequence[str] = (),
               report_throughput: bool = False) -> dict | None:
    """Preprocesses every video under input_dir into shards in output_dir; returns the manifest.

    runner: None for the local pool of `workers` processes, or an Apache Beam runner's name (DirectRunner,
    DataflowRunner, ...) with `beam_options`, Beam pipeline options as on a command line. Resumes from
    output_dir/work/ when a previous run was interrupted (by either runner). stop_after: process at most this
    many videos in this call, then return None without assembling (what an interrupted run leaves behind; for
    tests). report_throughput: print the throughput report even when quiet, with its worker-hours. User
    mistakes raise ConfigError (FolderBusy when another live run holds output_dir); unexpected per-video
    failures raise RuntimeError after the other videos are done.
    """
    settings.validate()
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if runner is not None and workers != 1:
        raise ConfigError("--workers sizes the local pool; with --runner give Beam its own options (such as "
                          "--direct_num_workers N --direct_running_mode multi_processing, or --num_workers N)")
    beam = _beam_runner(runner, beam_options) if runner is not None else None
    root, out = check_folders(input_dir, output_dir)
    videos = find_videos(root)
    if not videos:
        raise ConfigError(f"{input_dir}: holds no video files ({', '.join(VIDEO_SUFFIXES)})")
    with folder_lock(out, "preprocess run"):
        return _preprocess_held(root, out, output_dir, videos, settings, workers, quiet, stop_after, beam,
                                report_throughput)


def _beam_runner(runner: str, options: Sequence[str]):
    try:
        from vasa_jax.data.beam_pipeline import BeamRunner
    except ImportError as e:
        if (e.name or "").split(".")[0] != "apache_beam":
            raise
        raise ConfigError(f"--runner {runner} needs Apache Beam, which is not installed: "
                          'pip install -e ".[beam]"') from None
    return BeamRunner(runner, options)


def _preprocess_held(root: Path, out: Path, output_dir, videos: list[str], settings: Settings, workers: int,
                     quiet: bool, stop_after: int | None, beam, report_throughput: bool) -> dict | None:
    """preprocess() once the output folder is held."""
    identities = sorted({identity_of(v, settings.id_separator) for v in videos})
    run = {"input": str(root), "videos": videos, "settings": settings.to_json()}

    work = out / WORK
    if (out / MANIFEST).is_file() and not work.is_dir():
        manifest = load_manifest(out)
        if {k: manifest[k] for k in ("input", "settings")} == {k: run[k] for k in ("input", "settings")} and \
                manifest["videos"] == videos:
            if not quiet:
                print(f"{output_dir}: already complete ({manifest['counts']['clips']} clips); nothing to do")
            return manifest
        raise ConfigError(f"{output_dir}: holds a finished run over other videos or settings; choose a new "
                          "--output folder")
    work.mkdir(parents=True, exist_ok=True)
    run_file = work / "run.json"
    if run_file.is_file():
        if json.loads(run_file.read_text()) != run:
            raise ConfigError(f"{output_dir}: holds an unfinished run with other settings or another input; "
                              "rerun that command to finish it, or choose a new --output folder")
    else:
        _write_atomic(run_file, json.dumps(run, sort_keys=True, indent=1).encode())

    ids = {name: i for i, name in enumerate(identities)}
    pending = []
    for v in videos:
        if read_part(work, v) is None:
            name = identity_of(v, settings.id_separator)
            pending.append({"root": str(root), "work": str(work), "source": v, "identity": name,
                            "identity_id": ids[name]})
    done_before = len(videos) - len(pending)
    if stop_after is not None:
        pending = pending[:stop_after]

    start = time.perf_counter()
    if beam is None:
        summaries = _run_tasks(pending, settings, workers, quiet, done_before, len(videos))
        where = f"{workers} worker{'s' if workers > 1 else ''}"
    else:
        if not quiet:
            print(f"{len(pending)} of {len(videos)} videos to process on Apache Beam's {beam.name}")
        summaries = beam.process_videos(pending, settings, work) if pending else []
        where = f"Apache Beam's {beam.name}"
    elapsed = time.perf_counter() - start
    errors = [s for s in summaries if s["status"] == "error"]
    processed = [s for s in summaries if s["status"] != "error"]
    if processed and (report_throughput or not quiet):
        print(throughput_report(throughput(processed, elapsed), where, sizing=report_throughput))
    if errors:
        print(errors[0]["traceback"], file=sys.stderr)
        for e in errors:
            print(f"{e['source']}: failed: {e['detail']}", file=sys.stderr)
        raise RuntimeError(f"{len(errors)} video(s) failed unexpectedly (listed above, the first with its "
                           f"traceback); the other results are kept in {work}: rerun the command to retry them")
    if stop_after is not None and done_before + len(pending) < len(videos):
        return None
    manifest = assemble(out, videos, identities, run, write_shards=None if beam is None else beam.write_shards)
    shutil.rmtree(work)
    if not quiet:
        c = manifest["counts"]
        print(f"{c['videos']} videos -> {c['clips']} clips ({c['seconds']:.1f} s) in {out}; "
              f"{c['rejected']} rejected" + (f" ({', '.join(f'{k}: {v}' for k, v in c['rejects'].items())})"
                                             if c["rejected"] else ""))
    return manifest


def throughput(summaries: list[dict], seconds: float) -> dict:
    """Rates of processed videos' summaries (run_task) over a run's wall time `seconds`, and per worker: over
    the summed per-video times, i.e. per second of a busy worker, whatever the runner and its worker count."""
    busy = sum(s["seconds"] for s in summaries)
    videos, clips = len(summaries), sum(s["clips"] for s in summaries)
    frames = sum(s["frame_count"] for s in summaries)
    return {"videos": videos, "clips": clips, "frames": frames, "seconds": seconds, "worker_seconds": busy,
            "videos_per_second": videos / seconds, "frames_per_second": frames / seconds,
            "worker_videos_per_second": videos / busy, "worker_frames_per_second": frames / busy}


def throughput_report(rates: dict, where: str, sizing: bool = False) -> str:
    """The throughput line a run prints; with sizing, what the per-worker rate means at SIZING_HOURS."""
    r = rates
    lines = [f"processed {r['videos']} videos ({r['clips']} clips, {r['frames']} output frames at {FPS} fps) in "
             f"{r['seconds']:.1f} s on {where}: {r['videos_per_second']:.3g} videos/s, "
             f"{r['frames_per_second']:.1f} frames/s; per worker: {r['worker_videos_per_second']:.3g} videos/s, "
             f"{r['worker_frames_per_second']:.1f} frames/s ({r['worker_seconds']:.1f} worker-seconds)"]
    if sizing:
        video_hours_per_worker_hour = r["worker_frames_per_second"] / FPS
        worker_hours = SIZING_HOURS / video_hours_per_worker_hour if video_hours_per_worker_hour else math.inf
        lines.append(f"a worker makes {video_hours_per_worker_hour:.3g} hours of {FPS} fps clips per hour, rejects' "
                     f"time included: {SIZING_HOURS:,} hours of video (VoxCeleb2's scale) take {worker_hours:,.0f} "
                     f"worker-hours ({worker_hours / 100:,.1f} hours on 100 workers), at this sample's resolution, "
                     "clip lengths and reject rate")
    return "\n".join(lines)


def _run_tasks(tasks: list[dict], settings: Settings, workers: int, quiet: bool, done: int, total: int) -> list:
    from tqdm import tqdm

    summaries = []
    bar = tqdm(total=total, initial=done, unit="video", disable=quiet, dynamic_ncols=True)
    if workers == 1 or len(tasks) <= 1:
        _init_worker(settings)
        results = map(process_video, tasks)
        pool = None
    else:
        # spawn: workers start clean (no forked dlib / JAX state); process_video and _init_worker are top level.
        pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)), initializer=_init_worker,
                                                         initargs=(settings,))
        results = pool.imap_unordered(process_video, tasks, chunksize=1)
    try:
        for summary in results:
            summaries.append(summary)
            bar.update(1)
            bar.set_postfix(rejected=sum(s["status"] == "rejected" for s in summaries), refresh=False)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return summaries


def plan_shards(out: Path, videos: list[str], identities: list[str], run: dict) -> tuple[dict, list[dict]]:
    """The manifest and the shard-writing jobs, from every video's result in work/ (sorted-path order).

    The split is decided here, over the identities that have clips (so the held-out set is never only
    identities whose videos were all rejected). A job is {"path": the shard file, "records": [[result file,
    offset, length], ...]}: everything write_shard needs, whichever process runs it."""
    work = out / WORK
    ids = {name: i for i, name in enumerate(identities)}
    parts = {v: read_part(work, v) for v in videos}
    separator = run["settings"]["id_separator"]
    accepted = [v for v in videos if parts[v]["status"] == "ok"]
    heldout = set(heldout_identities([identity_of(v, separator) for v in accepted],
                                     run["settings"]["heldout_fraction"]))
    clips = {split: [] for split in SPLITS}  # (source, index of the clip in the video)
    for v in accepted:
        split = "heldout" if identity_of(v, separator) in heldout else "train"
        clips[split].extend((v, i) for i in range(len(parts[v]["record_bytes"])))
    rejects = [{"source": v, "reason": parts[v]["reason"], "detail": parts[v]["detail"]}
               for v in videos if parts[v]["status"] != "ok"]
    per_shard = run["settings"]["clips_per_shard"]
    entries, splits, jobs = [], {}, []
    for split in SPLITS:
        items = clips[split]
        count = math.ceil(len(items) / per_shard)
        names = [shard_name(split, i, count) for i in range(count)]
        split_ids, frames = set(), 0
        for i, name in enumerate(names):
            records = []
            for v, k in items[i * per_shard : (i + 1) * per_shard]:
                sizes = parts[v]["record_bytes"]
                records.append([str(work / f"{_part_stem(v)}.bin"), sum(sizes[:k]), sizes[k]])
                name_id = identity_of(v, separator)
                n = parts[v]["frames"][k]
                entries.append({"split": split, "shard": name, "identity": name_id, "identity_id": ids[name_id],
                                "source": v, "segment": k, "num_frames": n, "seconds": n / FPS})
                split_ids.add(name_id)
                frames += n
            jobs.append({"path": str(out / name), "records": records})
        splits[split] = {"shards": names, "clips": len(items), "identities": sorted(split_ids), "frames": frames,
                         "seconds": frames / FPS}
    reasons = {}
    for r in rejects:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    total_frames = sum(e["num_frames"] for e in entries)
    manifest = {
        "format": "vasa-jax clip shards v1 (vasa_jax.data.shards)",
        "input": run["input"],
        "settings": run["settings"],
        "counts": {"videos": len(videos), "accepted_videos": len(videos) - len(rejects), "clips": len(entries),
                   "rejected": len(rejects), "rejects": dict(sorted(reasons.items())), "frames": total_frames,
                   "seconds": total_frames / FPS},
        "identities": identities,
        "heldout_identities": sorted(heldout),
        "splits": splits,
        "clips": entries,
        "rejects": rejects,
        "videos": videos,
    }
    return manifest, jobs


def write_shard(job: dict) -> None:
    """Writes one shard file of plan_shards' jobs, through a temporary file moved into place when complete."""
    from array_record.python.array_record_module import ArrayRecordWriter

    path = Path(job["path"])
    tmp = _temporary(path)
    writer = ArrayRecordWriter(str(tmp), "group_size:1")
    for source, offset, length in job["records"]:
        with open(source, "rb") as f:
            f.seek(offset)
            writer.write(f.read(length))
    writer.close()
    os.replace(tmp, path)


def assemble(out: Path, videos: list[str], identities: list[str], run: dict,
             write_shards: Callable[[list[dict], Path], None] | None = None) -> dict:
    """Writes the shards and manifest.json from every video's result in work/; returns the manifest.

    write_shards(jobs, work) runs write_shard on every job (default: one after another, here); the manifest
    is written last."""
    manifest, jobs = plan_shards(out, videos, identities, run)
    for stale in out.glob("*.array_record*"):
        stale.unlink()
    if write_shards is None:
        for job in jobs:
            write_shard(job)
    else:
        write_shards(jobs, out / WORK)
    _write_atomic(out / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


# ---- command line ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    d = Settings()
    p = OneLineParser(prog="python -m vasa_jax.data.preprocess", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="folder of videos (read only)")
    p.add_argument("--output", required=True, help="folder for the shards and manifest.json (resumes there)")
    p.add_argument("--size", type=int, default=d.size, help="side of the square face crops")
    p.add_argument("--workers", type=int, default=1, help="worker processes of the local pool")
    p.add_argument("--runner", help="an Apache Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, "
                                    "...) instead of the local pool; arguments not listed here go to Beam")
    p.add_argument("--report-throughput", action="store_true",
                   help=f"print videos/s and frames/s per worker and the worker-hours for {SIZING_HOURS:,} hours "
                        "of video, even with --quiet")
    p.add_argument("--detect-size", type=int, default=d.detect_size, help="shorter side for face detection")
    p.add_argument("--detect-every", type=int, default=d.detect_every, help="detect on every k-th frame")
    p.add_argument("--min-seconds", type=float, default=d.min_seconds)
    p.add_argument("--segment-seconds", type=float, default=d.segment_seconds)
    p.add_argument("--min-face", type=float, default=d.min_face, help="minimum face-box width (source pixels)")
    p.add_argument("--min-face-fraction", type=float, default=d.min_face_fraction)
    p.add_argument("--multi-face-ratio", type=float, default=d.multi_face_ratio)
    p.add_argument("--multi-face-fraction", type=float, default=d.multi_face_fraction)
    p.add_argument("--smooth-seconds", type=float, default=d.smooth_seconds)
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    p.add_argument("--heldout-fraction", type=float, default=d.heldout_fraction)
    p.add_argument("--id-separator", default=d.id_separator)
    p.add_argument("--clips-per-shard", type=int, default=d.clips_per_shard)
    p.add_argument("--labeler", action="append", default=[], help="module:function (repeatable)")
    p.add_argument("--quiet", action="store_true")
    args, beam_options = p.parse_known_args(argv)
    if beam_options and args.runner is None:
        p.error(f"unrecognized arguments: {' '.join(beam_options)} (Beam pipeline options need --runner)")
    settings = Settings(size=args.size, detect_size=args.detect_size, detect_every=args.detect_every,
                        min_seconds=args.min_seconds, segment_seconds=args.segment_seconds, min_face=args.min_face,
                        min_face_fraction=args.min_face_fraction, multi_face_ratio=args.multi_face_ratio,
                        multi_face_fraction=args.multi_face_fraction, smooth_seconds=args.smooth_seconds,
                        jpeg_quality=args.jpeg_quality, heldout_fraction=args.heldout_fraction,
                        id_separator=args.id_separator, clips_per_shard=args.clips_per_shard,
                        labelers=tuple(args.labeler))
    try:
        preprocess(args.input, args.output, settings, workers=args.workers, quiet=args.quiet, runner=args.runner,
                   beam_options=beam_options, report_throughput=args.report_throughput)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
