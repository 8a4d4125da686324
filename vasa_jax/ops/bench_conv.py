"""Micro-benchmark of the face models' 3-D convolutions: `python -m vasa_jax.ops.bench_conv [--help]`.

Times forward and forward+backward (gradients w.r.t. input and kernel) of a stride-1 3-D convolution at the
sizes the face models run it, on whatever device JAX picks, in the same form as bench_grid_sample (compile and
first call apart, median / best of --repeats, XLA's temporary memory, each variant checked against the first):
  direct    lax.conv_general_dilated, XLA's own 3-D convolution;
  planar    vasa_jax.ops.conv_general_dilated, the one in use (on the CPU: 2-D convolutions, conv.py);
  autodiff  the planar forward with JAX's own derivative (one 2-D kernel gradient over all rows per tap):
            what the chunked kernel gradient of `planar` is measured against;
  split, folded  planar with its forward forced to one form (the depth split or the taps folded into output
            channels), so that conv.py's choice between them can be re-measured.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vasa_jax.ops import conv
from vasa_jax.ops.bench_grid_sample import relative_difference, time_compiled

CASES = {  # name: (input [D, H, W, Cin] without batch, kernel side, Cout)
    "warp16": ((8, 16, 16, 16), 3, 16),  # the toy face model's last warp / decoder 3-D block (volume 16)
    "warp32to16": ((8, 16, 16, 32), 3, 16),  # its warp generator's last stage (taps folded: Cout < Cin)
    "volume32": ((16, 32, 32, 16), 3, 16),  # a volume_size 32 model's 3-D blocks
    "liveportrait": ((16, 64, 64, 32), 3, 32),  # a LivePortrait-size 3-D residual block
}
_PADDING = "SAME"


def direct(x, kernel):
    return lax.conv_general_dilated(x, kernel, (1, 1, 1), _PADDING, dimension_numbers=conv._SPEC_3D)


def planar(x, kernel):
    return conv.conv_general_dilated(x, kernel, (1, 1, 1), _PADDING, dimension_numbers=conv._SPEC_3D)


def _pads(x, kernel):
    return tuple(lax.padtype_to_pads(x.shape[1:4], kernel.shape[:3], (1, 1, 1), _PADDING))


def autodiff(x, kernel):
    return conv._forward(x, kernel, _pads(x, kernel), None)


def _forced(form):
    return lambda x, kernel: conv.conv3d_planar(x, kernel, _pads(x, kernel), None, form)


VARIANTS = {"direct": direct, "planar": planar, "autodiff": autodiff,
            "split": _forced("split"), "folded": _forced("folded")}


def bench(variant: str, case: str, batch: int, dtype, repeats: int):
    """Timings of forward and forward+backward, and (output, (d x, d kernel)) of the latter."""
    shape, side, cout = CASES[case]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, *shape)), dtype)
    kernel = jnp.asarray(rng.normal(size=(side,) * 3 + (shape[-1], cout)) / np.sqrt(side ** 3 * shape[-1]), dtype)
    cotangent = jnp.asarray(rng.normal(size=(batch, *shape[:3], cout)), jnp.float32)
    fn = VARIANTS[variant]

    def loss(x, kernel):
        out = fn(x, kernel)
        return jnp.vdot(out.astype(jnp.float32), cotangent), out

    fwd_timing, _ = time_compiled(fn, (x, kernel), repeats)
    fwd_bwd_timing, ((_, out), grads) = time_compiled(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True),
                                                      (x, kernel), repeats)
    return fwd_timing, fwd_bwd_timing, (out, grads)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="direct,planar,autodiff",
                        help=f"comma-separated, from {sorted(VARIANTS)}")
    parser.add_argument("--cases", default="warp16,warp32to16,volume32", help=f"comma-separated, from {sorted(CASES)}")
    parser.add_argument("--batches", default="3,8", help="comma-separated batch sizes (3: an online hop; 8: training)")
    parser.add_argument("--dtypes", default="float32", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up call")
    args = parser.parse_args(argv)
    variants, cases = args.variants.split(","), args.cases.split(",")
    for name, known in [(v, VARIANTS) for v in variants] + [(c, CASES) for c in cases]:
        if name not in known:
            parser.error(f"unknown {name!r}; choose from {sorted(known)}")

    device = jax.devices()[0]
    print(f"jax {jax.__version__}, {device.platform} ({device.device_kind}); times in ms; steady state = median / "
          f"best of {args.repeats}")
    header = (f"{'case':<12} {'B':>2} {'dtype':<8} {'variant':<9} | {'fwd compile':>11} {'median':>8} {'best':>8} "
              f"{'temp MiB':>8} | {'f+b compile':>11} {'median':>8} {'best':>8} {'temp MiB':>8} | {'rel diff':>8}")
    print(header)
    print("-" * len(header))
    for case in cases:
        for batch in (int(b) for b in args.batches.split(",")):
            for dtype in args.dtypes.split(","):
                reference = None
                for name in variants:
                    *timings, result = bench(name, case, batch, jnp.dtype(dtype), args.repeats)
                    reference = result if reference is None else reference
                    cells = [f"{1e3 * compile_s:11.0f} {1e3 * median_s:8.2f} {1e3 * best_s:8.2f} {temp / 2 ** 20:8.1f}"
                             for compile_s, _, median_s, best_s, temp in timings]
                    print(f"{case:<12} {batch:>2} {dtype:<8} {name:<9} | {cells[0]} | {cells[1]} | "
                          f"{relative_difference(result, reference):8.1e}", flush=True)


if __name__ == "__main__":
    main()
