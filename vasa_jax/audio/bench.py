"""Throughput of the Wav2Vec2 feature path at base size (wav2vec2-base: 7 conv layers, 12 layers, 768 wide).

    python -m vasa_jax.audio.bench [--seconds 600] [--clip-seconds 10] [--json out.json]
    python -m vasa_jax.audio.bench --checkpoint DIR --audio speech.wav --seconds 0   # window errors, real model

Random weights (nothing is downloaded), random audio, on whatever device JAX picks. Prints, as seconds of
audio encoded per second of wall time: a one-shot clip of --clip-seconds (compile time reported apart), and
the chunked offline path on --seconds of audio, with the process's peak resident memory (getrusage) around it.
With --checkpoint the model is that checkpoint's; with --audio (speech longer than chunk + 2 x context
seconds, yet short enough to encode in one piece: 40-90 s) it also prints how far windowed features
(offline chunks; default streams with the clip's statistics and with running ones) are from one-shot
features, which the tests can only bound for random weights.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.audio.checkpoint import from_pretrained
from vasa_jax.audio.encoders import Wav2Vec2Features
from vasa_jax.audio.features import FPS, as_waveform
from vasa_jax.audio.wav2vec2 import EncoderConfig, Wav2Vec2Model


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 30 if sys.platform == "darwin" else 2 ** 20)


def run(seconds: float, clip_seconds: float, chunk_seconds: float, context_seconds: float,
        config: EncoderConfig | None = None, checkpoint: str | None = None, repeats: int = 3) -> dict:
    """Throughput figures; the model is `checkpoint`'s, or random with `config` (default: wav2vec2-base)."""
    if checkpoint is not None:
        model, variables = from_pretrained(checkpoint)
    else:
        model = Wav2Vec2Model(config or EncoderConfig())  # transformers' defaults: the wav2vec2-base architecture
        key = jax.random.key(0, impl="rbg")  # quicker to compile than the default threefry
        variables = jax.jit(model.init)(key, jnp.zeros((1, model.config.receptive_field)))
    rng = np.random.default_rng(0)
    result = {"device": str(jax.devices()[0]), "parameters": int(sum(x.size for x in jax.tree.leaves(variables)))}

    one_shot = Wav2Vec2Features(model, variables, chunk_seconds=None)
    clip = (0.1 * rng.standard_normal(int(clip_seconds * 16000))).astype(np.float32)
    start = time.perf_counter()
    one_shot.features(clip)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_shot.features(clip)
        times.append(time.perf_counter() - start)
    steady = float(np.median(times))
    result.update(clip_seconds=clip_seconds, one_shot_seconds_per_second=clip_seconds / steady,
                  one_shot_compile_seconds=first - steady)

    if seconds > 0:
        chunked = Wav2Vec2Features(model, variables, chunk_seconds=chunk_seconds, context_seconds=context_seconds)
        # Three chunks compile every window shape (first, middle, last): time them apart from the long run.
        warmup = (0.1 * rng.standard_normal(int(16000 * (3 * chunk_seconds + 2 * context_seconds)))).astype(np.float32)
        start = time.perf_counter()
        chunked.features(warmup)
        warmup_wall = time.perf_counter() - start
        audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
        rss_before = peak_rss_gib()
        start = time.perf_counter()
        feats = chunked.features(audio)
        elapsed = time.perf_counter() - start
        result.update(long_seconds=seconds, chunk_seconds=chunk_seconds, context_seconds=context_seconds,
                      chunked_seconds_per_second=seconds / elapsed, chunked_wall_seconds=elapsed,
                      chunked_compile_seconds=max(0.0, warmup_wall - warmup.size / 16000 * elapsed / seconds),
                      frames=int(feats.shape[0]), peak_rss_gib_before_long=rss_before, peak_rss_gib=peak_rss_gib())
    return result


def window_errors(encoder: Wav2Vec2Features, audio, chunk_seconds: float, context_seconds: float) -> dict:
    """Max and mean absolute difference to one-shot features of: offline windows of chunk_seconds with
    context_seconds each side, and default streams with the clip's statistics and with running ones
    (the stream's first second left out, as in the tests). Also the features' RMS, for scale."""
    audio = as_waveform(audio)
    one_shot = Wav2Vec2Features(encoder.model, encoder.variables, layer=encoder.layer, normalize=encoder.normalize,
                                chunk_seconds=None)
    expected = one_shot.features(audio)
    chunked = Wav2Vec2Features(encoder.model, encoder.variables, layer=encoder.layer, normalize=encoder.normalize,
                               chunk_seconds=chunk_seconds, context_seconds=context_seconds).features(audio)
    result = {"feature_rms": float(np.sqrt(np.mean(expected ** 2)))}
    candidates = {"chunked": (chunked, 0)}
    for name, stats in (("stream_clip_stats", one_shot.stats(audio)), ("stream_running_stats", None)):
        stream = one_shot.stream(stats=stats)
        step = 16000 // 25 * stream.step
        pieces = [stream.push(audio[i: i + step]) for i in range(0, audio.size, step)] + [stream.flush()]
        candidates[name] = (np.concatenate(pieces), FPS)
    for name, (feats, skip) in candidates.items():
        error = np.abs(feats - expected)[skip:]
        result[f"{name}_max_abs"], result[f"{name}_mean_abs"] = float(error.max()), float(error.mean())
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="long audio for the chunked path (0: skip)")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="clip for the one-shot timing")
    parser.add_argument("--chunk-seconds", type=float, default=20.0)
    parser.add_argument("--context-seconds", type=float, default=4.0)
    parser.add_argument("--checkpoint", help="a Wav2Vec2 / HuBERT checkpoint folder instead of random weights")
    parser.add_argument("--audio", help="with --checkpoint: measure windowed vs one-shot features on this clip")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    result = run(args.seconds, args.clip_seconds, args.chunk_seconds, args.context_seconds, checkpoint=args.checkpoint)
    if args.audio:
        if not args.checkpoint:
            parser.error("--audio needs --checkpoint (window errors of random weights say little)")
        encoder = Wav2Vec2Features.from_pretrained(args.checkpoint)
        result.update(window_errors(encoder, args.audio, args.chunk_seconds, args.context_seconds))
    for key, value in result.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
