"""The provenance marks measured: python -m vasa_jax.provenance bench [--sizes 256,512] [--seconds 3] [--json F].

For each size, the bundled demo model generates the demo portrait speaking the demo speech (frames resized to
that size) and writes it through Video.write, so both marks go in as in any use. Then:
- cost: the watermark's embedding per frame, against the generation's own time per frame (after compiling);
  the demo model is the fastest generator there is at any size (a 64x64 model, frames resized), so the share
  is an upper bound for real models;
- invisibility: PSNR of the marked frames against the unmarked ones (before encoding);
- robustness: the checker on the written file and on copies re-encoded with H.264 at CRF 23 and 28, scaled to
  half size, cropped by 10 % on each side, converted to 15 fps, and stripped of the manifest (remuxed), each
  from the written file's decoded frames as a re-upload would be;
- false positives: the checker on the same video written without marks, and on toy-world clips (never marked)
  at 64 to 512 px.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from vasa_jax.io.video import VideoWriter, read_video, write_video
from vasa_jax.provenance.check import check_video
from vasa_jax.provenance.watermark import embed

CRF_ATTACK = 23  # the re-encode after a rescale, crop or frame-rate change, as a platform would
TOY_SIZES = (64, 128, 256, 512)
TOY_CLIPS = ((1, 7), (2, 1234))  # (seed, identity)


def run_bench(*, sizes, seconds: float = 3.0, json_path=None) -> int:
    from vasa_jax.pipeline import bundled_demo_dir, load_pipeline, load_speech
    from vasa_jax.pipeline.checkpoint import DEMO_PORTRAIT, DEMO_SPEECH

    pipeline = load_pipeline()
    demo = bundled_demo_dir()
    speech = load_speech(demo / DEMO_SPEECH)[:int(seconds * pipeline.sample_rate)]
    figures = {"generated": {}, "toy_world_unmarked": []}
    with tempfile.TemporaryDirectory(prefix="vasa-jax-provenance-bench-") as tmp:
        tmp = Path(tmp)
        for size in sizes:
            pipeline.warm_up(size=size)
            started = time.perf_counter()
            video = pipeline.generate(demo / DEMO_PORTRAIT, speech, size=size)
            generation = (time.perf_counter() - started) / len(video.frames)
            cost = _embedding_seconds(video.frames)
            marked = embed(video.frames)
            row = {"frames": len(video.frames), "generation_ms_per_frame": 1000 * generation,
                   "embedding_ms_per_frame": 1000 * cost, "embedding_share": cost / generation,
                   "psnr_db": _psnr(marked, video.frames), "attacks": {}}
            written = video.write(tmp / f"marked{size}.mp4")
            unmarked = video.write(tmp / f"unmarked{size}.mp4", watermark=False)
            for name, path in [("as written (CRF 18, signed)", written)] + _attacks(written, tmp / str(size)):
                row["attacks"][name] = _summary(check_video(path))
            row["unmarked"] = _summary(check_video(unmarked))
            figures["generated"][size] = row
            _print_size(size, row)
        from vasa_jax.data.toyworld import make_clip

        print("\nfalse positives: toy-world clips (never marked), written at CRF 18")
        for size in TOY_SIZES:
            for seed, identity in TOY_CLIPS:
                clip = make_clip(seed, identity=identity, seconds=min(seconds, 2.0), size=size)
                path = tmp / f"toy{size}_{seed}.mp4"
                write_video(path, clip.frames, fps=clip.fps)
                result = {"size": size, "seed": seed, "identity": identity, **_summary(check_video(path))}
                figures["toy_world_unmarked"].append(result)
                print(f"  {size:4d} px, identity {identity:5d}: {_line(result)}")
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2))
    return 0


def _embedding_seconds(frames: np.ndarray, repeats: int = 3) -> float:
    """Best of `repeats` per-frame times, marking in the pipeline's decode batches of 16."""
    embed(frames[:1])  # the pattern for this size is made once, outside the timing
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, len(frames), 16):
            embed(frames[i:i + 16])
        best = min(best, (time.perf_counter() - started) / len(frames))
    return best


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def _attacks(path: Path, stem: Path) -> list[tuple[str, Path]]:
    frames = read_video(path, with_audio=False).frames
    h, w = frames.shape[1:3]
    dy, dx = round(0.1 * h), round(0.1 * w)
    cropped = frames[:, dy:dy + (h - 2 * dy) // 2 * 2, dx:dx + (w - 2 * dx) // 2 * 2]
    half = np.stack([np.asarray(Image.fromarray(f).resize((w // 4 * 2, h // 4 * 2), Image.BICUBIC)) for f in frames])
    made = [("H.264 CRF 23", _encode(frames, stem.with_suffix(".crf23.mp4"), crf=23)),
            ("H.264 CRF 28", _encode(frames, stem.with_suffix(".crf28.mp4"), crf=28)),
            (f"half size, CRF {CRF_ATTACK}", _encode(half, stem.with_suffix(".half.mp4"))),
            (f"10 % cropped off each side, CRF {CRF_ATTACK}", _encode(cropped, stem.with_suffix(".crop.mp4"))),
            (f"15 fps, CRF {CRF_ATTACK}", _encode(frames[::2], stem.with_suffix(".fps15.mp4"), fps=15)),
            ("manifest stripped (remuxed)", _remux(path, stem.with_suffix(".stripped.mp4")))]
    return made


def _encode(frames: np.ndarray, path: Path, *, crf: int = CRF_ATTACK, fps: int = 25) -> Path:
    with VideoWriter(path, fps=fps, with_audio=False, crf=crf) as writer:
        writer.write(frames)
    return path


def _remux(source: Path, path: Path) -> Path:
    """The same H.264 and AAC packets in a new mp4: what a tool that keeps the streams but not the boxes does."""
    with av.open(str(source)) as src, av.open(str(path), "w", format="mp4") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        for packet in src.demux():
            if packet.dts is not None and packet.stream.index in streams:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    return path


def _summary(report: dict) -> dict:
    w, c = report["watermark"], report["c2pa"]
    return {"detected": w["detected"], "bit_accuracy": w["bit_accuracy"],
            "false_positive_probability": w["false_positive_probability"], "period": w["period"],
            "testable": w["testable"], "c2pa_present": c["present"], "c2pa_valid": c["valid"]}


def _line(s: dict) -> str:
    if s["bit_accuracy"] is None:
        return "watermark untestable"
    manifest = "manifest valid" if s["c2pa_valid"] else "manifest INVALID" if s["c2pa_present"] else "no manifest"
    return (f"watermark {'DETECTED' if s['detected'] else 'not detected'}, bit accuracy {s['bit_accuracy']:.3f}, "
            f"false-positive probability {s['false_positive_probability']:.2g}"
            + ("" if s["testable"] else " (too small to test reliably)") + f"; {manifest}")


def _print_size(size: int, row: dict) -> None:
    print(f"\n{size}x{size}, {row['frames']} frames: generation {row['generation_ms_per_frame']:.1f} ms/frame "
          f"(bundled demo model), watermark embedding {row['embedding_ms_per_frame']:.2f} ms/frame "
          f"({100 * row['embedding_share']:.1f} %), PSNR marked vs unmarked {row['psnr_db']:.1f} dB")
    for name, s in row["attacks"].items():
        print(f"  {name:40s} {_line(s)}")
    print(f"  {'unmarked (watermark=False)':40s} {_line(row['unmarked'])}")
