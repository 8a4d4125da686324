"""Speed of LivePortrait's five networks in vasa-jax, and beside upstream's PyTorch networks on the same machine.

    python -m vasa_jax.bench --liveportrait [--upstream LivePortrait-checkout] [--batches 1,2,4] [--json out.json]

Full size, random weights (speed does not depend on the values). For each network (F, M, W, G, S) and each
batch: milliseconds per frame (median and best of --repeats after a warm-up), compile seconds, and GFLOP per
frame from XLA's cost analysis, in float32 and bfloat16 computation. --upstream DIR times upstream's own W and
G modules (imported from that checkout; torch with every CPU thread, float32, eval mode, no_grad) at the same
batches, and reports vasa-jax's W+G time per frame against PyTorch's.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

NETWORKS = ("F", "M", "W", "G", "S")


def _inputs(model, batch: int, rng) -> dict:
    """Random inputs of each network at one batch size."""
    c = model.config
    a = c.appearance_feature_extractor_params
    w = c.warping_module_params
    k = c.num_kp
    image = jnp.asarray(rng.uniform(0, 1, (batch, 256, 256, 3)), jnp.float32)
    kp = lambda: jnp.asarray(rng.uniform(-0.5, 0.5, (batch, k, 3)), jnp.float32)  # noqa: E731
    return {"F": (image,), "M": (image,),
            "W": (jnp.asarray(rng.normal(0, 1, (batch, a.reshape_depth, 64, 64, a.reshape_channel)), jnp.float32),
                  kp(), kp()),
            "G": (jnp.asarray(rng.normal(0, 1, (batch, 64, 64, w.block_expansion * 2 ** w.num_down_blocks)),
                              jnp.float32),),
            "S": (kp(), kp())}


def _functions(model) -> dict:
    return {"F": model.appearance, "M": model.motion_info, "W": model.warp, "G": model.generate, "S": model.stitch}


def bench_ours(params, batches, dtypes, repeats: int, log) -> dict:
    """{dtype: {network: {batch: figures}}} for vasa-jax's networks."""
    from vasa_jax.bench import _compile, _times, compiled_flops
    from vasa_jax.face.liveportrait.model import LivePortrait

    out = {}
    for dtype in dtypes:
        model = LivePortrait(dtype=jnp.dtype(dtype))
        functions = _functions(model)
        out[dtype] = {name: {} for name in NETWORKS}
        for batch in batches:
            inputs = _inputs(model, batch, np.random.default_rng(batch))
            for name in NETWORKS:
                compiled, compile_seconds = _compile(jax.jit(functions[name]), params, *inputs[name])
                jax.block_until_ready(compiled(params, *inputs[name]))
                times = _times(lambda: compiled(params, *inputs[name]), repeats)
                figures = {"ms_per_frame": 1e3 * times["seconds"] / batch,
                           "best_ms_per_frame": 1e3 * times["best_seconds"] / batch,
                           "compile_seconds": compile_seconds,
                           "gflop_per_frame": compiled_flops(compiled) / batch / 1e9}
                out[dtype][name][str(batch)] = figures
                log(f"vasa-jax {dtype} {name} batch {batch}: {figures['ms_per_frame']:.1f} ms/frame")
    return out


def bench_upstream(upstream_dir: str, config, batches, repeats: int, log) -> dict:
    """{network: {batch: figures}} for upstream's PyTorch W and G (float32)."""
    import torch

    sys.path.insert(0, upstream_dir)
    from src.modules.spade_generator import SPADEDecoder
    from src.modules.warping_network import WarpingNetwork

    torch.set_num_threads(os.cpu_count() or 1)
    w = dataclasses.asdict(config.warping_module_params)
    modules = {"W": WarpingNetwork(**w).eval(),
               "G": SPADEDecoder(**config.spade_generator_params.upstream_kwargs()).eval()}
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__, "W": {}, "G": {}}
    for batch in batches:
        rng = torch.Generator().manual_seed(batch)
        a = config.appearance_feature_extractor_params
        args = {"W": (torch.randn(batch, a.reshape_channel, a.reshape_depth, 64, 64, generator=rng),
                      torch.rand(batch, config.num_kp, 3, generator=rng) - 0.5,
                      torch.rand(batch, config.num_kp, 3, generator=rng) - 0.5),
                "G": (torch.randn(batch, 256, 64, 64, generator=rng),)}
        for name, module in modules.items():
            with torch.no_grad():
                module(*args[name])
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    module(*args[name])
                    times.append(time.perf_counter() - start)
            out[name][str(batch)] = {"ms_per_frame": 1e3 * float(np.median(times)) / batch,
                                     "best_ms_per_frame": 1e3 * min(times) / batch}
            log(f"torch float32 {name} batch {batch}: {out[name][str(batch)]['ms_per_frame']:.1f} ms/frame")
    return out


def run(*, batches=(1, 2, 4), dtypes=("float32", "bfloat16"), repeats: int = 3, upstream: str | None = None,
        log=lambda line: None) -> dict:
    from vasa_jax.bench import random_params
    from vasa_jax.face.liveportrait.model import LivePortrait

    model = LivePortrait()
    params = jax.device_put(random_params(model.shapes()))
    result = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__, "batches": list(batches),
              "parameters_millions": {name: sum(x.size for x in jax.tree.leaves(params[key])) / 1e6
                                      for name, key in zip(NETWORKS, ("appearance_feature_extractor",
                                                                      "motion_extractor", "warping_module",
                                                                      "spade_generator",
                                                                      "stitching_retargeting_module"))},
              "vasa_jax": bench_ours(params, batches, dtypes, repeats, log)}
    if upstream:
        result["pytorch"] = bench_upstream(upstream, model.config, batches, repeats, log)
        ours = result["vasa_jax"]["float32"]
        result["w_plus_g"] = {
            b: {"vasa_jax_ms_per_frame": ours["W"][b]["ms_per_frame"] + ours["G"][b]["ms_per_frame"],
                "pytorch_ms_per_frame": result["pytorch"]["W"][b]["ms_per_frame"]
                + result["pytorch"]["G"][b]["ms_per_frame"]} for b in map(str, batches)}
        for x in result["w_plus_g"].values():
            x["pytorch_over_vasa_jax"] = x["pytorch_ms_per_frame"] / x["vasa_jax_ms_per_frame"]
    return result


def report(result: dict) -> str:
    lines = [f"LivePortrait networks, full size, random weights, on {result['device']} (jax {result['jax']}); "
             "ms per frame (median of the repeats), GFLOP per frame from XLA's cost analysis",
             "params (M): " + ", ".join(f"{k} {v:.2f}" for k, v in result["parameters_millions"].items()), ""]
    for dtype, networks in result["vasa_jax"].items():
        for name, by_batch in networks.items():
            cells = "  ".join(f"b{b}: {x['ms_per_frame']:8.1f} ms ({x['gflop_per_frame']:.1f} GFLOP, "
                              f"compile {x['compile_seconds']:.0f} s)" for b, x in by_batch.items())
            best = min(by_batch.items(), key=lambda item: item[1]["ms_per_frame"])[0]
            lines.append(f"{dtype:9s} {name}  {cells}  best batch {best}")
    if "pytorch" in result:
        p = result["pytorch"]
        lines += ["", f"PyTorch {p['torch']} float32, {p['threads']} threads, upstream's modules:"]
        for name in ("W", "G"):
            lines.append(f"          {name}  " + "  ".join(f"b{b}: {x['ms_per_frame']:8.1f} ms"
                                                          for b, x in p[name].items()))
        lines.append("W+G per frame, float32: " + "; ".join(
            f"batch {b}: vasa-jax {x['vasa_jax_ms_per_frame']:.0f} ms, PyTorch {x['pytorch_ms_per_frame']:.0f} ms "
            f"(PyTorch / vasa-jax {x['pytorch_over_vasa_jax']:.2f})" for b, x in result["w_plus_g"].items()))
    return "\n".join(lines)
