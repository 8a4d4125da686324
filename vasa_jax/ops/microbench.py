"""What the ops' micro-benchmarks (bench_grid_sample, bench_conv) share: timing a compiled function, timing a
two-input op forward and with both gradients, comparing variants, and the command line and table of results."""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp


def time_compiled(fn, args, repeats: int):
    """(compile s, first call s, median s, best s, temporary bytes), result of jax.jit(fn)(*args)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    t1 = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - start)
    memory = compiled.memory_analysis()
    temp = getattr(memory, "temp_size_in_bytes", float("nan")) if memory is not None else float("nan")
    return (t1 - t0, t2 - t1, statistics.median(runs), min(runs), temp), result


def time_forward_and_gradients(op, a, b, cotangent, repeats: int):
    """Timings of op(a, b) and of its value with the gradients w.r.t. a and b (the output weighed by the
    cotangent), and (output, (d a, d b)) of the latter."""

    def loss(a, b, cotangent):
        out = op(a, b)
        return jnp.vdot(out.astype(jnp.float32), cotangent), out

    fwd_timing, _ = time_compiled(op, (a, b), repeats)
    fwd_bwd_timing, ((_, out), grads) = time_compiled(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True),
                                                      (a, b, cotangent), repeats)
    return fwd_timing, fwd_bwd_timing, (out, grads)


def relative_difference(result, reference) -> float:
    """max |result - reference| / max |reference| over every array of the two pytrees: the worst of them."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(result), jax.tree.leaves(reference)):
        x, y = x.astype(jnp.float32), y.astype(jnp.float32)
        worst = max(worst, float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))))
    return worst


def parse_args(doc: str, variants: dict, cases: dict, defaults: dict, argv=None):
    """The benchmarks' shared command line; defaults: {"variants", "cases", "batches", "dtypes"} as
    comma-separated strings. Unknown variant or case names are a usage error."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=defaults["variants"], help=f"comma-separated, from {sorted(variants)}")
    parser.add_argument("--cases", default=defaults["cases"], help=f"comma-separated, from {sorted(cases)}")
    parser.add_argument("--batches", default=defaults["batches"], help="comma-separated batch sizes")
    parser.add_argument("--dtypes", default=defaults["dtypes"], help="input dtypes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up call")
    args = parser.parse_args(argv)
    args.variants, args.cases = args.variants.split(","), args.cases.split(",")
    args.batches, args.dtypes = [int(b) for b in args.batches.split(",")], args.dtypes.split(",")
    for name, known in [(v, variants) for v in args.variants] + [(c, cases) for c in args.cases]:
        if name not in known:
            parser.error(f"unknown {name!r}; choose from {sorted(known)}")
    return args


def print_table(args, bench) -> None:
    """Every case x batch x dtype x variant: bench(variant, case, batch, dtype, repeats) -> (forward timing,
    forward+backward timing, result); each variant's result is compared with the first variant's."""
    device = jax.devices()[0]
    print(f"jax {jax.__version__}, {device.platform} ({device.device_kind}), {jax.device_count()} device(s); "
          f"times in ms; compile and first call reported apart; steady state = median / best of {args.repeats}")
    width = max(len(name) for name in args.variants + args.cases)
    header = (f"{'case':<{width}} {'B':>2} {'dtype':<8} {'variant':<{width}} | {'fwd compile':>11} {'first':>7} "
              f"{'median':>8} {'best':>8} {'temp MiB':>8} | {'f+b compile':>11} {'first':>7} {'median':>8} "
              f"{'best':>8} {'temp MiB':>8} | {'rel diff':>8}")
    print(header)
    print("-" * len(header))
    for case in args.cases:
        for batch in args.batches:
            for dtype in args.dtypes:
                reference = None
                for name in args.variants:
                    *timings, result = bench(name, case, batch, jnp.dtype(dtype), args.repeats)
                    reference = result if reference is None else reference
                    cells = [f"{1e3 * compile_s:11.0f} {1e3 * first_s:7.1f} {1e3 * median_s:8.2f} "
                             f"{1e3 * best_s:8.2f} {temp / 2 ** 20:8.1f}"
                             for compile_s, first_s, median_s, best_s, temp in timings]
                    print(f"{case:<{width}} {batch:>2} {dtype:<8} {name:<{width}} | {cells[0]} | {cells[1]} | "
                          f"{relative_difference(result, reference):8.1e}", flush=True)
