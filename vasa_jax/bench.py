"""The speed benchmark: every stage of generation, end to end offline and streaming, memory and FLOPs.

    python -m vasa_jax.bench --config configs/base.py [--steps 10] [--json out.json]   # random weights at a
                                                                                       # config's sizes
    python -m vasa_jax.bench --checkpoint DIR                                           # a pipeline checkpoint
    python -m vasa_jax.bench                                                            # the bundled demo model
    python -m vasa_jax.bench --realtime [--hop 3 --lookahead 1]                         # live-source latency only

On whatever device JAX picks (CPU or GPU). Every program is compiled before it is timed and its compile time is
reported apart; timed figures are the median (and the best) of --repeats runs. Random weights time like trained
ones; a config's audio encoder without its checkpoint on disk is a random Wav2Vec2 of the standard base size.

Parts (the programs generation runs, timed alone): encoding the portrait (once per video); audio features
(offline, per second of audio); sampling one motion window of W frames at 10 and 50 denoising steps (and
--steps) with the model's default guidance, whose extra passes are batched with the conditional one; decoding
frames at each batch size in --decode-batches (a batch whose one call is predicted to take over a minute, or
whose buffers would not fit in the free memory, is skipped and said so).
End to end (Pipeline.start / Pipeline.stream, at the best decode batch, frames to host memory, no mp4 encoding):
offline frames/s on --seconds of toy-world speech; streaming frames/s with the audio given in 40 ms chunks as
fast as it is taken, and the first-frame latency from the first chunk in to the first frame ready (compute:
the window's audio features, its motion, the first decoded batch; the portrait is encoded before the first
chunk). A live source adds W / 25 s for the window's speech to arrive plus the audio stream's look-ahead,
reported beside it. Beside these, the steady state put together from the parts (W / (audio + motion + W
decoded frames) offline; audio + motion + one decode batch for the first frame), for runs too short to show it.
Online (the realtime key; --realtime runs only this): the online mode (--hop, --lookahead, --online-steps) with
--realtime-seconds of speech delivered at its wall-clock pace (vasa_jax.pipeline.live): every frame's latency from
its speech arriving to the frame being ready (first, median, 95th percentile), the frames per second the compute
managed and whether the latencies grew, and a hop's FLOPs with the time they would take at each GPU's peak.
Memory: the peak over the whole run (GPU: the device's peak_bytes_in_use; CPU: the process's peak resident set
from getrusage, XLA compilation included), and the peak during offline generation of --seconds and of
--memory-seconds of audio (sampled every 5 ms: device bytes in use, or the resident set on CPU), to show that
memory does not grow with the audio's length.
FLOPs: XLA's cost analysis of the compiled programs (per portrait, per decoded frame, per motion frame; the
cost analysis counts a loop body once, so a window's count adds the steps it leaves out) and the achieved
fraction of the device's peak: a table of GPU peaks, or for a CPU an estimate from its cores, clock and vector
width read from /proc/cpuinfo.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.audio.bench import peak_rss_gib
from vasa_jax.audio.features import FPS
from vasa_jax.io import SAMPLE_RATE

STREAM_CHUNK_SECONDS = 0.04
MAX_CALL_SECONDS = 60.0  # a decode batch predicted to take longer per call is not tried
MEMORY_HEADROOM = 0.8  # a decode batch needing more than this fraction of the free memory is not tried
SAMPLE_INTERVAL = 0.005  # seconds between memory samples

# Dense peak TFLOP/s by device name (vendor datasheets): bf16 tensor cores, TF32 tensor cores (what XLA's
# default precision uses for float32 matmuls and convolutions on these GPUs), float32 without tensor cores.
GPU_PEAKS = (  # (name in device_kind, bf16, tf32, fp32); the first match wins
    ("H100 PCIe", 756.0, 378.0, 51.2),
    ("H100", 989.4, 494.7, 66.9),  # SXM
    ("H200", 989.4, 494.7, 66.9),  # the H100 SXM's compute with more memory
    ("A100", 312.0, 156.0, 19.5),
    ("RTX 4090", 165.2, 82.6, 82.6),
)

ANCHORS = ("VASA-1 (paper, one RTX 4090, 512x512): 45 frames/s offline, 40 frames/s online, 170 ms latency",)
TARGETS = ("one H100 at 512x512 (base): >= 150 frames/s offline, >= 100 frames/s streaming, first frame <= 80 ms",
           "this 2-core CPU: the toy model streaming in real time, >= 25 frames/s",
           "memory flat in audio length")


# ---- random models ---------------------------------------------------------------------------------------------

def random_params(shapes, seed: int = 0):
    """Random float32 params of the given shapes (a tree of arrays or jax.ShapeDtypeStruct), scaled like a fresh
    init: kernels ~ N(0, 1 / fan_in), norm scales near 1, the rest small. Unlike Flax's init, nothing is
    compiled (the face model's init takes minutes to compile on a CPU at base size), and no layer is zero (a fresh
    denoiser's adaLN-Zero layers would make it ignore its inputs)."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1])) or 1
            return rng.normal(0, 1 / np.sqrt(fan_in), leaf.shape).astype(np.float32)
        if name == "scale":
            return (1 + 0.1 * rng.normal(size=leaf.shape)).astype(np.float32)
        return (0.05 * rng.normal(size=leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def random_pipeline(config, *, decode_batch: int = 16):
    """A Pipeline with random weights at a config's sizes (face, motion and audio sections)."""
    from vasa_jax.audio import EncoderConfig, Wav2Vec2Features, Wav2Vec2Model, make_audio_encoder
    from vasa_jax.face import FaceConfig, WarpingFaceModel
    from vasa_jax.motion.config import MotionConfig
    from vasa_jax.motion.denoiser import init_denoiser
    from vasa_jax.motion.dit_generator import DiTGenerator
    from vasa_jax.pipeline.pipeline import Pipeline
    from vasa_jax.train.motion import placeholder_stats

    face = WarpingFaceModel(FaceConfig.from_config(config.face))
    face_params = random_params(jax.eval_shape(face.init, jax.random.key(0)))
    audio = config.audio
    if audio.encoder == "mel":
        encoder = make_audio_encoder("mel")
    elif audio.checkpoint and Path(audio.checkpoint).is_dir():
        encoder = make_audio_encoder(audio.encoder, checkpoint=audio.checkpoint, layer=audio.get("layer", "last"))
    else:
        model = Wav2Vec2Model(EncoderConfig())  # transformers' defaults: the wav2vec2-base architecture
        shapes = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, model.config.receptive_field), np.float32))
        encoder = Wav2Vec2Features(model, random_params(shapes))
    motion = dataclasses.replace(MotionConfig.from_config(config.motion), motion_dim=face.motion_dim,
                                 audio_dim=encoder.dim, emotion_dim=1)
    denoiser = random_params(jax.eval_shape(lambda k: init_denoiser(motion, k), jax.random.key(0)), seed=1)
    generator = DiTGenerator(motion, {"denoiser": denoiser, "stats": placeholder_stats(motion)}, encoder)
    return Pipeline(face, face_params, generator, decode_batch=decode_batch, name="random")


def with_decode_batch(pipeline, decode_batch: int):
    """The same model and weights with another decode batch."""
    from vasa_jax.pipeline.pipeline import Pipeline

    return Pipeline(pipeline.face, pipeline.face_params, pipeline.generator, decode_batch=decode_batch,
                    name=pipeline.name)


# ---- measuring -------------------------------------------------------------------------------------------------

def _times(fn, repeats: int) -> dict:
    """Median and best wall seconds of fn() (its result waited for) over `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return {"seconds": float(np.median(times)), "best_seconds": float(min(times))}


def _compile(jitted, *args, **static):
    """(compiled program, seconds to lower and compile it). Later calls of `jitted` with the same arguments reuse
    the program."""
    start = time.perf_counter()
    compiled = jitted.lower(*args, **static).compile()
    return compiled, time.perf_counter() - start


def compiled_flops(compiled) -> float:
    """FLOPs of one run of a compiled (or lowered) program, from XLA's cost analysis (a loop body counts once)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", math.nan)) if cost else math.nan


def _device():
    return jax.devices()[0]


def _on_gpu() -> bool:
    return _device().platform == "gpu"


def memory_in_use() -> int | None:
    """Bytes in use now: the device's on a GPU; on a CPU the process's resident set (Linux /proc), else None."""
    stats = _device().memory_stats()
    if stats:
        return int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def memory_free() -> int | None:
    """Bytes a new buffer could still take: the device's limit less its use, or the host's MemAvailable."""
    stats = _device().memory_stats()
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_memory() -> dict:
    """The whole run's peak: the device's peak_bytes_in_use on a GPU, the process's peak resident set elsewhere."""
    stats = _device().memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return {"bytes": int(stats["peak_bytes_in_use"]), "what": "device peak_bytes_in_use (jax memory_stats)"}
    return {"bytes": int(peak_rss_gib() * 2 ** 30),
            "what": "host peak resident set of this process (getrusage ru_maxrss; XLA compilation included), "
                    "as the CPU device's memory is the host's"}


class MemorySampler:
    """The largest memory_in_use() seen while the block runs (a thread samples it every SAMPLE_INTERVAL s), and
    the memory in use when it began."""

    def __enter__(self):
        self.start = self.peak = memory_in_use() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.peak = max(self.peak, memory_in_use() or 0)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, memory_in_use() or 0)


def cpu_peak() -> dict:
    """An estimate of this CPU's float32 peak: cores x clock x FLOPs per cycle per core, where FLOPs per cycle
    assumes two FMA pipes of the widest vector unit the flags name (2 x 2 x lanes); {"reason": ...} if unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"reason": "no /proc/cpuinfo: cores, clock and vector width unknown"}
    mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
    flags = next((line.split(":")[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    lanes = 16 if "avx512f" in flags else 8 if "fma" in flags and "avx2" in flags else 4 if "sse2" in flags else 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not mhz or not lanes or not cores:
        return {"reason": "/proc/cpuinfo lacks the clock or the vector flags"}
    flops_per_cycle = 2 * 2 * lanes
    return {"fp32_tflops": cores * max(mhz) * 1e6 * flops_per_cycle / 1e12,
            "how": f"estimate: {cores} cores x {max(mhz):.0f} MHz (/proc/cpuinfo) x {flops_per_cycle} float32 "
                   f"FLOPs/cycle (2 FMA pipes x {lanes} lanes x 2; half that on cores with one FMA pipe or "
                   "double-pumped AVX-512)"}


def device_peak() -> dict:
    """Peak TFLOP/s of the device JAX computes on: {"bf16"/"tf32"/"fp32_tflops", "how"}, or {"reason"}."""
    device = _device()
    if device.platform == "cpu":
        return cpu_peak()
    for name, bf16, tf32, fp32 in GPU_PEAKS:
        if name.lower() in device.device_kind.lower():
            return {"bf16_tflops": bf16, "tf32_tflops": tf32, "fp32_tflops": fp32,
                    "how": f"datasheet, dense, {name}"}
    return {"reason": f"no peak known for {device.device_kind}"}


def _achieved(flops: float, seconds: float, peak: dict) -> dict:
    """Achieved GFLOP/s and the fractions of each known peak."""
    out = {"gflops_per_second": flops / seconds / 1e9}
    for key in ("bf16_tflops", "tf32_tflops", "fp32_tflops"):
        if key in peak:
            out[f"fraction_of_{key.split('_')[0]}_peak"] = flops / seconds / (peak[key] * 1e12)
    return out


# ---- the parts -------------------------------------------------------------------------------------------------

def bench_encode(pipeline, repeats: int, peak: dict) -> dict:
    """Encoding the portrait (V_app, z_id), once per video."""
    from vasa_jax.pipeline.pipeline import _encode_source  # the program Pipeline runs

    side = pipeline.face.image_size
    image = np.random.default_rng(0).integers(0, 256, (1, side, side, 3), np.uint8)
    image = jnp.asarray(image, jnp.float32) / 255.0
    compiled, compile_seconds = _compile(_encode_source, pipeline.face_params, image, face=pipeline.face)
    jax.block_until_ready(compiled(pipeline.face_params, image))  # the first run may do one-time work
    out = {"compile_seconds": compile_seconds, **_times(lambda: compiled(pipeline.face_params, image), repeats)}
    out["gflops"] = compiled_flops(compiled) / 1e9
    out.update(_achieved(out["gflops"] * 1e9, out["seconds"], peak))
    return out


def bench_audio(pipeline, seconds: float, repeats: int) -> dict:
    """Offline audio features of `seconds` of random noise (the first call compiles for that length)."""
    audio = (0.1 * np.random.default_rng(1).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    start = time.perf_counter()
    pipeline.audio_encoder.features(audio)
    first = time.perf_counter() - start
    out = _times(lambda: pipeline.audio_encoder.features(audio), repeats)
    out.update(encoder=pipeline.audio_encoder.name, audio_seconds=seconds,
               compile_seconds=max(0.0, first - out["seconds"]),
               seconds_per_audio_second=out["seconds"] / seconds, realtime_factor=seconds / out["seconds"])
    return out


def sampled_window_flops(program, params, config, controls, scales, steps: int, window) -> tuple[float, float]:
    """(FLOPs of a compiled or lowered program that samples one window in `steps` steps, FLOPs of one guided
    step). XLA's cost analysis counts the denoising loop's body once: the guided denoiser calls it leaves out are
    added (the analysis of one call before optimisation agrees with the compiled one's to 0.1% and needs no
    compilation). window: (audio [W, Da], audio mask [W], carry) the program was traced with."""
    from vasa_jax.motion.sampling import guided_x0, window_conditions

    audio, mask, carry = window
    cond = window_conditions(params["stats"], config, controls, audio, mask, *carry)
    step = jax.jit(lambda p, x, t, c: guided_x0(p, config, x, t, c, dict(scales)))
    step_flops = compiled_flops(step.lower(params["denoiser"], jnp.zeros((1, config.window, config.motion_dim)),
                                           jnp.zeros((1,), jnp.int32), cond))
    flops = compiled_flops(program)
    if flops < 0.9 * steps * step_flops:  # the loop counted once (an XLA that counts trips needs nothing)
        flops += (steps - 1) * step_flops
    return flops, step_flops


def bench_motion(pipeline, steps: int, repeats: int, peak: dict) -> dict:
    """One motion window (W frames, `steps` denoising steps, the default guidance passes batched)."""
    from vasa_jax.motion.sampling import _initial_carry, _options, _window_jit

    config = pipeline.motion_config
    settings = pipeline.settings(steps=steps)
    options = settings.motion
    steps, sampler, scales = _options(config, options.controls, steps, options.sampler, options.cfg)
    params, controls, w = pipeline.motion_params, options.controls, config.window
    audio = jnp.asarray(0.1 * np.random.default_rng(2).standard_normal((w, config.audio_dim)), jnp.float32)
    mask, key, carry = jnp.ones((w,), bool), jax.random.key(0), _initial_carry(config)
    args = (params, controls, carry, audio, mask, 0, key)
    compiled, compile_seconds = _compile(_window_jit, *args, config=config, steps=steps, sampler=sampler,
                                         scales=scales)
    run = lambda: compiled(*args)  # noqa: E731
    jax.block_until_ready(run())
    out = {"steps": steps, "passes": 1 + len(scales), "guidance": dict(scales), "window_frames": w,
           "compile_seconds": compile_seconds, **_times(run, repeats)}
    out["frames_per_second"] = w / out["seconds"]

    window_flops, step_flops = sampled_window_flops(compiled, params, config, controls, scales, steps,
                                                    (audio, mask, carry))
    out["gflops_per_step"] = step_flops / 1e9
    out["gflops_per_frame"] = window_flops / w / 1e9
    out.update(_achieved(window_flops, out["seconds"], peak))
    return out


def bench_decode(pipeline, batches, repeats: int, peak: dict) -> dict:
    """Decoding frames at each batch size (uint8 frames at the model's resolution, on the device)."""
    from vasa_jax.pipeline.pipeline import _render  # the program Pipeline runs

    face, params = pipeline.face, pipeline.face_params
    image = jnp.zeros((1, pipeline.face.image_size, pipeline.face.image_size, 3), jnp.float32)
    latents = jax.block_until_ready(face.encode_source(params, image))
    rng = np.random.default_rng(3)
    measured, skipped = {}, {}
    per_frame = None
    for b in sorted(set(batches)):
        if per_frame is not None and per_frame * b > MAX_CALL_SECONDS:
            skipped[str(b)] = f"one call would take about {per_frame * b:.0f} s (over {MAX_CALL_SECONDS:.0f} s)"
            continue
        motion = jnp.asarray(rng.normal(0, 0.3, (b, face.motion_dim)), jnp.float32)
        compiled, compile_seconds = _compile(_render, params, *latents, motion, face=face,
                                             size=pipeline.image_size)
        memory = compiled.memory_analysis()
        need = None if memory is None else memory.temp_size_in_bytes + memory.output_size_in_bytes
        free = memory_free()
        if need is not None and free is not None and need > MEMORY_HEADROOM * free:
            skipped[str(b)] = f"needs {need / 2**30:.1f} GiB of buffers, {free / 2**30:.1f} GiB free"
            continue
        run = lambda: compiled(params, *latents, motion)  # noqa: E731
        jax.block_until_ready(run())
        timing = _times(run, repeats)
        per_frame = timing["seconds"] / b
        flops = compiled_flops(compiled)
        measured[str(b)] = {"compile_seconds": compile_seconds, **timing, "seconds_per_frame": per_frame,
                            "frames_per_second": 1 / per_frame, "gflops_per_frame": flops / b / 1e9,
                            **_achieved(flops, timing["seconds"], peak)}
    if not measured:
        raise MemoryError(f"no decode batch of {sorted(set(batches))} fits in this device's memory: {skipped}")
    best = max(measured, key=lambda k: measured[k]["frames_per_second"])
    return {"batches": measured, "skipped": skipped, "best_batch": int(best)}


# ---- end to end ------------------------------------------------------------------------------------------------

def _speech(seconds: float) -> np.ndarray:
    from vasa_jax.data import toyworld

    audio, _ = toyworld.perform(7, identity=toyworld.HELDOUT_IDENTITIES[0], seconds=seconds)
    return audio


def _portrait(pipeline):
    side = max(256, pipeline.image_size)  # framed to the model's size as a user's photo would be
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)
    return pipeline.portrait(image, crop=False)


def bench_offline(pipeline, seconds: float, steps: int) -> dict:
    """Pipeline.start over `seconds` of speech, frames to host memory, with the memory in use sampled meanwhile."""
    portrait, audio = _portrait(pipeline), _speech(seconds)
    frames = 0
    with MemorySampler() as memory:
        start = time.perf_counter()
        for batch in pipeline.start(portrait, audio, steps=steps):
            frames += len(batch)
        wall = time.perf_counter() - start
    return {"audio_seconds": seconds, "frames": frames, "seconds": wall, "frames_per_second": frames / wall,
            "memory_start_bytes": memory.start, "peak_memory_bytes": memory.peak}


def bench_stream(pipeline, seconds: float, steps: int) -> dict:
    """Pipeline.stream over `seconds` of speech in 40 ms chunks, given as fast as they are taken."""
    portrait, audio = _portrait(pipeline), _speech(seconds)
    step = int(round(STREAM_CHUNK_SECONDS * SAMPLE_RATE))
    first_chunk = []

    def chunks():
        for i in range(0, audio.size, step):
            if not first_chunk:
                first_chunk.append(time.perf_counter())
            yield audio[i:i + step]

    frames, latency = 0, None
    generation = pipeline.stream(portrait, chunks(), steps=steps)  # encodes the portrait
    for batch in generation:
        if latency is None:
            latency = time.perf_counter() - first_chunk[0]
        frames += len(batch)
    wall = time.perf_counter() - first_chunk[0]
    w = pipeline.motion_config.window
    arrival = w / FPS + pipeline.audio_encoder.stream().latency_seconds
    return {"audio_seconds": seconds, "frames": frames, "seconds": wall, "frames_per_second": frames / wall,
            "first_frame_compute_seconds": latency, "window_audio_arrival_seconds": arrival,
            "first_frame_live_seconds": latency + arrival,
            "includes": "first_frame_compute: from the first 40 ms chunk in to the first frame on the host: the "
                        "first window's audio features (all of them, none overlapped with arrival), its motion, "
                        "the first decoded batch; portrait encoding is before the first chunk. first_frame_live "
                        f"adds the window's audio arriving in real time ({w} frames / 25 fps) and the audio "
                        "stream's look-ahead."}


def hop_flops(pipeline, steps: int, hop: int) -> float:
    """FLOPs of one online hop: the window sampled at `steps` (the loop body counted `steps` times) plus `hop`
    decoded frames."""
    from vasa_jax.motion.sampling import _initial_carry, _online_hop, _options
    from vasa_jax.pipeline.pipeline import _render

    config = pipeline.motion_config
    options = pipeline.settings(steps=steps).motion
    steps, sampler, scales = _options(config, options.controls, steps, options.sampler, options.cfg)
    params, w = pipeline.motion_params, config.window
    audio, mask, carry = jnp.zeros((w, config.audio_dim)), jnp.ones((w,), bool), _initial_carry(config)
    lowered = _online_hop.lower(params, options.controls, carry, audio, mask, 0, jax.random.key(0), config=config,
                                steps=steps, sampler=sampler, scales=scales, hop=hop)
    window_flops, _ = sampled_window_flops(lowered, params, config, options.controls, scales, steps,
                                           (audio, mask, carry))
    face, face_params = pipeline.face, pipeline.face_params
    image = jnp.zeros((1, face.image_size, face.image_size, 3), jnp.float32)
    latents = jax.eval_shape(face.encode_source, face_params, image)
    latents = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), latents)
    decode = compiled_flops(_render.lower(face_params, *latents, jnp.zeros((hop, face.motion_dim)), face=face,
                                          size=pipeline.image_size))
    return window_flops + decode


def bench_realtime(pipeline, seconds: float, steps: int, hop: int | None, lookahead: int | None) -> dict:
    """The online mode with speech delivered at its wall-clock pace (vasa_jax.pipeline.live): every frame's latency
    from its speech arriving to the frame being ready; whether the stream keeps up; the FLOPs of a hop and the
    time they would take at the peak of each GPU in GPU_PEAKS (a lower bound: real programs reach a fraction)."""
    from vasa_jax.pipeline.live import live_latency

    settings = pipeline.settings(steps=steps, online=True, hop=hop, lookahead=lookahead)
    hop, lookahead = settings.online
    steps = settings.motion.steps  # None: the model's online steps
    warm = pipeline.warm_up(stream=True, steps=steps, online=True, hop=hop, lookahead=lookahead)
    portrait, audio = _portrait(pipeline), _speech(seconds)
    report = live_latency(pipeline, portrait, audio, steps=steps, online=True, hop=hop, lookahead=lookahead)
    flops = hop_flops(pipeline, steps, hop)
    out = {"hop": hop, "lookahead": lookahead, "steps": steps, "audio_seconds": seconds, "warm_up_seconds": warm,
           **report.summary(), "audio_stream_latency_seconds": pipeline.audio_encoder.stream(step_frames=1)
           .latency_seconds, "gflops_per_hop": flops / 1e9,
           "gpu_seconds_per_hop_at_peak": {name: {"tf32": flops / (tf32 * 1e12), "bf16": flops / (bf16 * 1e12)}
                                           for name, bf16, tf32, _ in GPU_PEAKS},
           "wait_for_speech_seconds": (hop + lookahead - 1) / FPS,
           "how": "speech in 20 ms chunks at its wall-clock pace; latency of frame t from (t + 1) * 40 ms after "
                  "the start to the frame on the host; frames_per_second: frames per second of time not spent "
                  "waiting for speech (>= 25 keeps up); backlog_seconds_per_second: the latencies' trend"}
    return out


def from_parts(result: dict, steps: int, batch: int) -> dict:
    """Steady-state figures put together from the part timings, for runs too short to reach a steady state
    (a model that decodes slowly on a CPU)."""
    w = result["model"]["window"]
    audio = result["audio"]["seconds_per_audio_second"] * w / FPS
    motion = result["motion"][str(steps)]["seconds"]
    decode = result["decode"]["batches"][str(batch)]
    return {"offline_frames_per_second": w / (audio + motion + w * decode["seconds_per_frame"]),
            "first_frame_compute_seconds": audio + motion + decode["seconds"],
            "how": f"offline: W / (audio features of W frames + one motion window at {steps} steps + W frames "
                   f"decoded at batch {batch}), W = {w}; first frame: audio features of W frames + one motion "
                   f"window + one decode batch of {batch}. Offline audio features: a Wav2Vec2 stream computes "
                   "more (it re-encodes its left context), so streaming costs more than this."}


# ---- the benchmark ---------------------------------------------------------------------------------------------

def run(pipeline, *, steps: int | None, motion_steps=(10, 50), decode_batches=(1, 4, 8, 16, 32),
        seconds: float = 10.0, memory_seconds: float = 40.0, audio_seconds: float = 10.0, repeats: int = 3,
        realtime_seconds: float = 30.0, hop: int | None = None, lookahead: int | None = None,
        online_steps: int | None = None, log=print) -> dict:
    """Every figure of the module docstring for `pipeline`, as a JSON-able dict. seconds / memory_seconds: the
    audio of the end-to-end runs; audio_seconds: the audio the feature timing encodes."""
    device = _device()
    peak = device_peak()
    config = pipeline.motion_config
    steps = pipeline.settings(steps=steps).motion.steps
    result = {"device": {"platform": device.platform, "kind": device.device_kind, "count": jax.device_count(),
                         "peak": peak, "jax": jax.__version__},
              "load_average_start": list(os.getloadavg()), "cpu_count": os.cpu_count(),
              "model": {"image_size": pipeline.image_size, "window": config.window, "context": config.context,
                        "motion_dim": config.motion_dim, "audio_encoder": pipeline.audio_encoder.name,
                        "face_parameters": sum(x.size for x in jax.tree.leaves(pipeline.face_params)),
                        "motion_parameters": sum(x.size for x in jax.tree.leaves(pipeline.motion_params)),
                        "steps": steps}}
    log(f"{device.platform} ({device.device_kind}); load average {result['load_average_start'][0]:.2f}")

    result["encode"] = bench_encode(pipeline, repeats, peak)
    log(f"encode portrait: {result['encode']['seconds'] * 1e3:.1f} ms")
    result["audio"] = bench_audio(pipeline, audio_seconds, repeats)
    log(f"audio features: {result['audio']['seconds_per_audio_second'] * 1e3:.1f} ms per second of audio")
    result["motion"] = {}
    for s in sorted({*motion_steps, steps}):
        if s <= config.diffusion_steps:
            result["motion"][str(s)] = m = bench_motion(pipeline, s, repeats, peak)
            log(f"motion window, {s} steps: {m['seconds'] * 1e3:.0f} ms")
    result["decode"] = bench_decode(pipeline, decode_batches, repeats, peak)
    best = result["decode"]["best_batch"]
    log(f"decode: best batch {best}, {result['decode']['batches'][str(best)]['frames_per_second']:.3g} frames/s")

    pipeline = with_decode_batch(pipeline, best)
    result["warm_up_seconds"] = pipeline.warm_up(stream=True, steps=steps)
    result["offline"] = bench_offline(pipeline, seconds, steps)
    result["offline"]["decode_batch"] = pipeline.decode_batch
    log(f"offline: {result['offline']['frames_per_second']:.3g} frames/s")
    lengths = [result["offline"]]
    if memory_seconds > 0:
        lengths.append(bench_offline(pipeline, memory_seconds, steps))
        log(f"offline, {memory_seconds:g} s: {lengths[-1]['frames_per_second']:.3g} frames/s")
    result["stream"] = bench_stream(pipeline, seconds, steps)
    log(f"stream: {result['stream']['frames_per_second']:.3g} frames/s")
    if realtime_seconds > 0:
        result["realtime"] = r = bench_realtime(pipeline, realtime_seconds, online_steps, hop, lookahead)
        log(realtime_line(r))

    result["memory"] = {"peak": peak_memory(),
                        "by_audio_length": [{"audio_seconds": r["audio_seconds"], "frames": r["frames"],
                                             "start_bytes": r["memory_start_bytes"],
                                             "peak_bytes": r["peak_memory_bytes"]} for r in lengths],
                        "sampled": "device bytes_in_use" if _on_gpu() else "host resident set (/proc/self/statm)"}
    if len(lengths) == 2:
        result["memory"]["growth_ratio"] = lengths[1]["peak_memory_bytes"] / lengths[0]["peak_memory_bytes"]
    decode_best = result["decode"]["batches"][str(best)]
    result["from_parts"] = from_parts(result, steps, best)
    result["flops"] = {"encode_gflops_per_portrait": result["encode"]["gflops"],
                       "decode_gflops_per_frame": decode_best["gflops_per_frame"],
                       "motion_gflops_per_frame": {k: v["gflops_per_frame"] for k, v in result["motion"].items()}}
    result["load_average_end"] = list(os.getloadavg())
    result["anchors"], result["targets"] = list(ANCHORS), list(TARGETS)
    return result


def report(result: dict, source: str) -> str:
    """The figures as text a person reads, with the anchors and targets beside them."""
    d, m, enc, aud = result["device"], result["model"], result["encode"], result["audio"]
    dec, off, st, mem = result["decode"], result["offline"], result["stream"], result["memory"]
    peak, parts = d["peak"], result["from_parts"]
    load = [" ".join(f"{x:.2f}" for x in result[k]) for k in ("load_average_start", "load_average_end")]
    lines = [f"{source} on {d['platform']} ({d['kind']}, jax {d['jax']}): {m['image_size']}x{m['image_size']}, "
             f"window {m['window']} frames, audio {m['audio_encoder']}, parameters: face "
             f"{m['face_parameters'] / 1e6:.1f} M, motion {m['motion_parameters'] / 1e6:.1f} M",
             f"load average (1, 5, 15 min): {load[0]} at the start, {load[1]} at the end ({result['cpu_count']} CPUs)",
             "device peak: " + (peak["how"] if "how" in peak else peak["reason"] + "; achieved GFLOP/s only"),
             "",
             f"{'part':30s} {'median':>10s} {'best':>10s} {'compile':>8s} {'GFLOP':>9s} {'GFLOP/s':>9s}  of peak"]

    def row(name, seconds, best, x, gflop, note=""):
        fractions = " ".join(f"{x[k] * 100:.2g}% {k.split('_')[2]}" for k in
                             ("fraction_of_bf16_peak", "fraction_of_tf32_peak", "fraction_of_fp32_peak") if k in x)
        achieved = f"{x['gflops_per_second']:.1f}" if "gflops_per_second" in x else "-"
        gflop = "-" if math.isnan(gflop) else f"{gflop:.3f}"
        lines.append(f"{name:30s} {seconds * 1e3:7.1f} ms {best * 1e3:7.1f} ms {x['compile_seconds']:6.1f} s "
                     f"{gflop:>9s} {achieved:>9s}  {fractions or '-'}  {note}".rstrip())

    row("encode portrait", enc["seconds"], enc["best_seconds"], enc, enc["gflops"])
    row("audio features, 1 s of audio", aud["seconds_per_audio_second"], aud["best_seconds"] / aud["audio_seconds"],
        aud, math.nan, f"({aud['realtime_factor']:.0f}x real time)")
    for steps, x in result["motion"].items():
        row(f"motion window, {steps} steps", x["seconds"], x["best_seconds"], x, x["gflops_per_frame"] * m["window"],
            f"({x['passes']} passes, {x['frames_per_second']:.0f} frames/s)")
    for b, x in dec["batches"].items():
        row(f"decode, batch {b}, per frame", x["seconds_per_frame"], x["best_seconds"] / int(b), x,
            x["gflops_per_frame"], f"({x['frames_per_second']:.3g} frames/s)")
    lines += [f"  decode batch {b} not run: {why}" for b, why in dec["skipped"].items()]
    lines += ["",
              f"end to end, {m['steps']} steps, decode batch {off['decode_batch']} (its programs compiled "
              f"beforehand, {result['warm_up_seconds']:.1f} s):",
              f"  offline    {off['frames_per_second']:.3g} frames/s ({off['frames']} frames from "
              f"{off['audio_seconds']:g} s of audio, to host memory, no mp4 encoding)",
              f"  streaming  {st['frames_per_second']:.3g} frames/s; first frame "
              f"{st['first_frame_compute_seconds'] * 1e3:.0f} ms of compute after the first 40 ms chunk; with a live "
              f"source {st['first_frame_live_seconds']:.2f} s (+ {st['window_audio_arrival_seconds']:.2f} s for the "
              "window's audio to arrive)",
              f"  from the parts: offline {parts['offline_frames_per_second']:.3g} frames/s, first frame "
              f"{parts['first_frame_compute_seconds'] * 1e3:.0f} ms of compute (steady state; see from_parts.how)",
              f"memory: peak {mem['peak']['bytes'] / 2**30:.2f} GiB, {mem['peak']['what']}"]
    lines += [f"  offline generation of {x['audio_seconds']:g} s ({x['frames']} frames): "
              f"{x['peak_bytes'] / 2**30:.3f} GiB at most, {x['start_bytes'] / 2**30:.3f} GiB before "
              f"({mem['sampled']}, sampled)" for x in mem["by_audio_length"]]
    if "growth_ratio" in mem:
        lines.append(f"  longer / shorter: {mem['growth_ratio']:.3f}")
    else:
        lines.append("  (one audio length only: --memory-seconds 0)")
    if "realtime" in result:
        lines.append(realtime_line(result["realtime"]))
    lines += ["", "anchor: " + "; ".join(result["anchors"]), "targets: " + "; ".join(result["targets"])]
    return "\n".join(lines)


def realtime_line(r: dict) -> str:
    gpus = ", ".join(f"{name} {x['tf32'] * 1e3:.2g} ms" for name, x in r["gpu_seconds_per_hop_at_peak"].items())
    return (f"online (hop {r['hop']}, lookahead {r['lookahead']}, {r['steps']} steps), live source over "
            f"{r['audio_seconds']:g} s: first frame {r['first_frame_seconds'] * 1e3:.0f} ms, p50 "
            f"{r['p50_seconds'] * 1e3:.0f} ms, p95 {r['p95_seconds'] * 1e3:.0f} ms after its speech arrived; "
            f"{r['frames_per_second']:.1f} frames/s of compute, "
            f"{'keeps up' if r['keeps_up'] else 'falls behind'} ({r['backlog_seconds_per_second'] * 1e3:+.1f} ms "
            f"per s); {r['gflops_per_hop']:.3g} GFLOP a hop, at TF32 peak: {gpus}")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def main(argv=None) -> int:
    from vasa_jax.cli import OneLineParser

    p = OneLineParser(prog="python -m vasa_jax.bench", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", help="random weights at this config's sizes (configs/tiny.py, toy.py, base.py)")
    source.add_argument("--checkpoint", help="a pipeline checkpoint folder (default: the bundled demo)")
    p.add_argument("--steps", type=int, help="denoising steps end to end (default: the model's); also timed alone")
    p.add_argument("--motion-steps", type=_ints, default=(10, 50), help="steps of the motion window timings")
    p.add_argument("--decode-batches", type=_ints, default=(1, 4, 8, 16, 32), help="decode batch sizes to time")
    p.add_argument("--seconds", type=float, default=10.0, help="audio for the end-to-end runs")
    p.add_argument("--memory-seconds", type=float, default=40.0,
                   help="a second, longer offline run for memory against audio length (0: skip)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per part, after a warm-up run")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 1 repeat, 2 s and 6 s of audio, decode batches up to 4, motion at --steps only")
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--realtime", action="store_true", help="only the online mode with a live source (the realtime "
                   "key): speech at its wall-clock pace, every frame's latency")
    p.add_argument("--realtime-seconds", type=float, default=30.0, help="speech for the live-source run (0: skip)")
    p.add_argument("--hop", type=int, help="online hop in frames (default: the model's measured default)")
    p.add_argument("--lookahead", type=int, help="online look-ahead in frames (default: the model's)")
    p.add_argument("--online-steps", type=int, help="denoising steps of the online run (default: the model's "
                   "online steps)")
    p.add_argument("--liveportrait", action="store_true", help="instead: LivePortrait's five networks at full size "
                   "(random weights), float32 and bfloat16 (vasa_jax.face.liveportrait.bench)")
    p.add_argument("--upstream", help="with --liveportrait: a LivePortrait checkout whose PyTorch W and G are timed "
                   "beside ours")
    p.add_argument("--batches", type=_ints, default=(1, 2, 4), help="with --liveportrait: batch sizes to time")
    args = p.parse_args(argv)
    if args.liveportrait:
        return _liveportrait(args)
    audio_seconds = 10.0
    if args.quick:  # fewer programs to compile: the motion window at --steps only
        args.repeats, args.seconds, args.memory_seconds, audio_seconds = 1, 2.0, 6.0, 2.0
        args.realtime_seconds = min(args.realtime_seconds, 2.0)
        args.decode_batches = tuple(b for b in args.decode_batches if b <= 4) or (1,)
        args.motion_steps = ()
    if args.seconds <= 0 or args.memory_seconds < 0 or args.repeats < 1:
        p.error("--seconds and --repeats must be positive, --memory-seconds not negative")

    from vasa_jax.errors import ConfigError
    from vasa_jax.io import CheckpointError, MediaError

    try:
        if args.config:
            from vasa_jax.config import load_config

            pipeline = random_pipeline(load_config(args.config))
        else:
            from vasa_jax.pipeline import load_pipeline

            pipeline = load_pipeline(args.checkpoint)
        pipeline.settings(steps=args.steps)
        if args.realtime or args.realtime_seconds > 0:
            pipeline.settings(steps=args.online_steps, online=True, hop=args.hop, lookahead=args.lookahead)
    except (ConfigError, CheckpointError, MediaError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.realtime:
        result = {"source": args.config or pipeline.name, "load_average_start": list(os.getloadavg()),
                  "realtime": bench_realtime(pipeline, args.realtime_seconds or 30.0, args.online_steps, args.hop,
                                             args.lookahead),
                  "load_average_end": list(os.getloadavg())}
        print(realtime_line(result["realtime"]))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    result = run(pipeline, steps=args.steps, motion_steps=args.motion_steps, decode_batches=args.decode_batches,
                 seconds=args.seconds, memory_seconds=args.memory_seconds, audio_seconds=audio_seconds,
                 repeats=args.repeats, realtime_seconds=args.realtime_seconds, hop=args.hop,
                 lookahead=args.lookahead, online_steps=args.online_steps,
                 log=lambda line: print(line, file=sys.stderr, flush=True))
    source_name = args.config or pipeline.name
    result["source"] = source_name
    print(report(result, source_name))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _liveportrait(args) -> int:
    from vasa_jax.face.liveportrait import bench as lp_bench

    if args.upstream and not Path(args.upstream, "src", "modules", "warping_network.py").is_file():
        print(f"error: {args.upstream}: not a LivePortrait checkout (no src/modules/warping_network.py)",
              file=sys.stderr)
        return 2
    result = lp_bench.run(batches=args.batches, repeats=args.repeats, upstream=args.upstream,
                          log=lambda line: print(line, file=sys.stderr, flush=True))
    print(lp_bench.report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
