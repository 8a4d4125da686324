"""3-D convolutions that are fast on XLA's CPU backend: a drop-in for lax.conv_general_dilated (and so for
flax.linen.Conv's conv_general_dilated argument), one helper for every 3-D block of both face models.

XLA:CPU runs a direct 3-D convolution 3-5x slower than the same arithmetic as 2-D convolutions
(/work/shared/reference/jax-notes.md; the VASA face model's 3x3x3 16 -> 16 conv at [3, 8, 16, 16]: 7.7 ms direct,
1.9 ms as below). So on the CPU a stride-1 3-D convolution is computed from 2-D convolutions of the depth
slices (folded into the batch), in one of two exact forms:
- depth split: one 2-D conv per depth tap of the slices shifted by the tap, summed (the faster one unless the
  output has fewer channels than the input);
- taps folded: one 2-D conv with the depth taps folded into output channels [kh, kw, Cin, kd * Cout], then
  out[d] = sum_t y[d + t - pad, ..., t] (LivePortrait's 7x7x7 142 -> 22 mask head: 9-12x faster than direct).
Their kernel gradient is taken per depth tap over chunks of at most KERNEL_GRAD_ROWS rows: XLA:CPU's 2-D kernel
gradient over one large batch has a slow case (0.74 s against 0.06 s chunked at [8, 16, 32, 32] x 16 channels).
Everywhere else (other backends, strides, dilation, groups) it is lax.conv_general_dilated: cuDNN is fast in
3-D. Same parameters and, up to float rounding, the same values either way.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

KERNEL_GRAD_ROWS = 8192  # rows (slices x H x W) per chunk of the kernel gradient
_SPEC_3D = ("NDHWC", "DHWIO", "NDHWC")
_SPEC_2D = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
    """lax.conv_general_dilated, with the channels-last stride-1 3-D case computed by 2-D convs on the CPU."""
    if _planar(lhs, rhs, window_strides, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
               batch_group_count, preferred_element_type):
        if isinstance(padding, str):
            padding = lax.padtype_to_pads(lhs.shape[1:4], rhs.shape[:3], (1, 1, 1), padding)
        return conv3d_planar(lhs, rhs, tuple((int(a), int(b)) for a, b in padding), precision)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                                    feature_group_count, batch_group_count, precision, preferred_element_type)


def _planar(lhs, rhs, strides, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
            batch_group_count, preferred_element_type) -> bool:
    if lhs.ndim != 5 or jax.default_backend() != "cpu" or preferred_element_type is not None:
        return False
    if feature_group_count != 1 or batch_group_count != 1 or tuple(strides) != (1, 1, 1):
        return False
    if any(d is not None and tuple(d) != (1, 1, 1) for d in (lhs_dilation, rhs_dilation)):
        return False
    wanted = lax.conv_dimension_numbers(lhs.shape, rhs.shape, _SPEC_3D)
    return dimension_numbers is not None and lax.conv_dimension_numbers(lhs.shape, rhs.shape,
                                                                         dimension_numbers) == wanted


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv3d_planar(x, kernel, padding, precision=None, form: str | None = None):
    """A stride-1 3-D convolution x [B, D, H, W, Cin] * kernel [kd, kh, kw, Cin, Cout] with explicit padding
    ((d0, d1), (h0, h1), (w0, w1)) -> [B, D', H', W', Cout], computed as 2-D convolutions (module docstring).
    form: "split" or "folded" (None: folded where Cout < Cin, else split)."""
    return _forward(x, kernel, padding, precision, form)


def _forward(x, kernel, padding, precision, form=None):
    form = form or ("folded" if kernel.shape[-1] < kernel.shape[-2] else "split")
    return FORMS[form](x, kernel, padding, precision)


def _depth_slices(x, kd: int, depth_pad):
    """[kd] arrays [B * D', H, W, C]: the depth slices tap t reads (zero-padded in depth), batch-folded."""
    x = jnp.pad(x, ((0, 0), depth_pad, (0, 0), (0, 0), (0, 0)))
    b, d, h, w, c = x.shape
    out = d - kd + 1
    return [x[:, t:t + out].reshape(b * out, h, w, c) for t in range(kd)], out


def _conv2d(x, kernel, padding, precision):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_SPEC_2D, precision=precision)


def _depth_split(x, kernel, padding, precision):
    slices, out = _depth_slices(x, kernel.shape[0], padding[0])
    y = sum(_conv2d(s, kernel[t], padding[1:], precision) for t, s in enumerate(slices))
    return y.reshape(x.shape[0], out, *y.shape[1:])


def _taps_folded(x, kernel, padding, precision):
    b, d, h, w, cin = x.shape
    kd, kh, kw, _, cout = kernel.shape
    folded = jnp.transpose(kernel, (1, 2, 3, 0, 4)).reshape(kh, kw, cin, kd * cout)
    y = _conv2d(x.reshape(b * d, h, w, cin), folded, padding[1:], precision)
    y = y.reshape(b, d, *y.shape[1:3], kd, cout)
    (d0, d1) = padding[0]
    out = d + d0 + d1 - kd + 1
    # Tap t of output slice o reads input slice o + t - d0: pad depth so that every read exists (zeros outside).
    y = jnp.pad(y, ((0, 0), (d0, d1), (0, 0), (0, 0), (0, 0), (0, 0)))
    return sum(y[:, t:t + out, :, :, t] for t in range(kd))


FORMS = {"split": _depth_split, "folded": _taps_folded}


def _forward_fwd(x, kernel, padding, precision, form):
    return _forward(x, kernel, padding, precision, form), (x, kernel)


def _forward_bwd(padding, precision, form, residuals, grad):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda v: _forward(v, kernel, padding, precision, form), x)
    return input_vjp(grad)[0], _kernel_grad(x, kernel, grad, padding, precision)


def _kernel_grad(x, kernel, grad, padding, precision):
    """d/d kernel: per depth tap, the 2-D kernel gradient of its slices, summed over chunks of rows."""
    slices, _ = _depth_slices(x, kernel.shape[0], padding[0])
    grad = grad.reshape(-1, *grad.shape[2:])
    rows = max(1, KERNEL_GRAD_ROWS // (grad.shape[1] * grad.shape[2]))
    taps = []
    for t, s in enumerate(slices):
        total = jnp.zeros(kernel.shape[1:], jnp.float32)
        for a in range(0, s.shape[0], rows):
            _, kernel_vjp = jax.vjp(lambda k, a=a, s=s: _conv2d(s[a:a + rows], k, padding[1:], precision), kernel[t])
            total = total + kernel_vjp(grad[a:a + rows])[0].astype(jnp.float32)
        taps.append(total.astype(kernel.dtype))
    return jnp.stack(taps)


conv3d_planar.defvjp(_forward_fwd, _forward_bwd)
