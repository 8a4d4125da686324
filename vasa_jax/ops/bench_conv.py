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

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vasa_jax.ops import conv
from vasa_jax.ops.microbench import parse_args, print_table, time_forward_and_gradients

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
    return time_forward_and_gradients(VARIANTS[variant], x, kernel, cotangent, repeats)


def main(argv=None):
    args = parse_args(__doc__, VARIANTS, CASES, {"variants": "direct,planar,autodiff",
                                                 "cases": "warp16,warp32to16,volume32", "batches": "3,8",
                                                 "dtypes": "float32"}, argv)
    print_table(args, bench)


if __name__ == "__main__":
    main()
