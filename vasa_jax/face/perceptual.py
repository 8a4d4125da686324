"""Perceptual losses of stage 1: VGG19 feature L1 (MegaPortraits / pix2pixHD) and SSIM / MS-SSIM.

Images are float32 [B, H, W, 3] in [0, 1]. VGG19 is frozen and never trained here: its weights are torchvision's
ImageNet VGG19 converted once on a machine with torchvision,
    torch.save(torchvision.models.vgg19(weights="IMAGENET1K_V1").state_dict(), "vgg19.pth")
and read by load_vgg19 (.pth / .pt through torch, or a .safetensors file with the same keys). Without such a file
the perceptual loss falls back to 1 - MS-SSIM. The discriminator's feature matching lives in discriminator.py.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.io.weights import CheckpointError, read_state_dict

# torchvision's vgg19().features: (index in the Sequential, input channels, output channels) of each 3x3 conv;
# every conv is followed by a ReLU, and a 2x2 max-pool sits before each block but the first.
VGG19_CONVS = (
    (0, 3, 64), (2, 64, 64),
    (5, 64, 128), (7, 128, 128),
    (10, 128, 256), (12, 256, 256), (14, 256, 256), (16, 256, 256),
    (19, 256, 512), (21, 512, 512), (23, 512, 512), (25, 512, 512),
    (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512),
)
# The first conv of each block: its ReLU is relu1_1, relu2_1, ..., relu5_1 (each block's first conv follows a pool).
VGG19_TAPS = (0, 5, 10, 19, 28)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
PERCEPTUAL_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # pix2pixHD's VGGLoss, relu1_1 -> relu5_1
_SHOWN_KEYS = 12  # keys listed per kind in an error message

# Wang et al. (2004, 2003): an 11-tap Gaussian window (sigma 1.5), K1, K2, for data range 1.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_C1 = 0.01**2
_C2 = 0.03**2
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Floor for the per-scale terms before the fractional powers: keeps MS-SSIM real and its gradient finite where
# structure is anti-correlated (pytorch_msssim clamps at 0, whose x^w has an infinite slope there).
_MS_SSIM_FLOOR = 1e-6


class VGG19Features(nn.Module):
    """The conv part of torchvision's VGG19 up to relu5_1, on [0, 1] images (ImageNet-normalised inside).

    Returns the activations after relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1: [B, H / 2^k, W / 2^k, C_k] for
    k = 0..4, C = 64, 128, 256, 512, 512. Params are named after torchvision's indices (features_0, features_2,
    ...); the three convs after relu5_1 feed no output and are left out. Only used through apply.
    """

    @nn.compact
    def __call__(self, images):  # [B, H, W, 3] in [0, 1]
        h = (images - jnp.asarray(_IMAGENET_MEAN)) / jnp.asarray(_IMAGENET_STD)
        outputs = []
        for index, _, channels in VGG19_CONVS:
            if index in VGG19_TAPS[1:]:
                h = nn.max_pool(h, (2, 2), strides=(2, 2))
            h = nn.relu(nn.Conv(channels, (3, 3), padding=1, name=f"features_{index}")(h))
            if index in VGG19_TAPS:
                outputs.append(h)
                if index == VGG19_TAPS[-1]:
                    break
        return tuple(outputs)


def load_vgg19(path: str | os.PathLike) -> dict:
    """Converted torchvision VGG19 weights -> VGG19Features params (float32, kernels HWIO).

    Reads a state dict saved with torch.save (.pth / .pt, through torch.load(weights_only=True), so the file cannot
    run code; needs torch) or a .safetensors file with the same keys. Needs every `features.{i}.weight` / `.bias` of
    torchvision's vgg19 with its shape; `classifier.*` is ignored. Raises CheckpointError naming the file.
    """
    return convert_vgg19_state_dict(read_state_dict(path), path)


def convert_vgg19_state_dict(state: dict[str, np.ndarray], path: str | os.PathLike = "state dict") -> dict:
    """torchvision vgg19 state dict (numpy, OIHW) -> VGG19Features params. Raises CheckpointError on a mismatch."""
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    params, missing, misshapen = {}, [], []
    for index, cin, cout in VGG19_CONVS:
        for leaf, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"features.{index}.{leaf}"
            if key not in state:
                missing.append(key)
                continue
            value = np.asarray(state.pop(key), np.float32)
            if value.shape != shape:
                misshapen.append(f"{key} {tuple(value.shape)} (VGG19 has {shape})")
            elif index <= VGG19_TAPS[-1]:  # the convs after relu5_1 are checked (it is VGG19) but not computed
                module = params.setdefault(f"features_{index}", {})
                if leaf == "weight":
                    module["kernel"] = value.transpose(2, 3, 1, 0)  # torch's OIHW -> Flax's HWIO
                else:
                    module["bias"] = value
    unexpected = sorted(state)
    if missing or unexpected or misshapen:
        parts = [f"{len(keys)} {kind}: {', '.join(keys[:_SHOWN_KEYS])}{', ...' if len(keys) > _SHOWN_KEYS else ''}"
                 for kind, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("keys with the wrong shape", misshapen)) if keys]
        raise CheckpointError(path, "not torchvision's vgg19 state dict: " + "; ".join(parts) + ". Save one with "
                              'torch.save(torchvision.models.vgg19(weights="IMAGENET1K_V1").state_dict(), "vgg19.pth")')
    return jax.tree.map(jnp.asarray, params)


def vgg_perceptual_loss(vgg_params: dict, x, y, weights=PERCEPTUAL_LAYER_WEIGHTS):
    """Weighted mean L1 between VGG19 activations of x (generated) and y (target; no gradient): a scalar.

    x, y: [B, H, W, 3] in [0, 1]. weights: one per layer, relu1_1 -> relu5_1 (pix2pixHD's by default).
    """
    if len(weights) != len(VGG19_TAPS):
        raise ValueError(f"weights needs one entry per VGG19 layer ({len(VGG19_TAPS)}); got {len(weights)}")
    features = VGG19Features().apply({"params": jax.lax.stop_gradient(vgg_params)}, jnp.concatenate([x, y]))
    n = x.shape[0]
    return sum(w * jnp.mean(jnp.abs(f[:n] - jax.lax.stop_gradient(f[n:]))) for w, f in zip(weights, features))


def ssim(x, y):
    """Mean SSIM per image: [B, H, W, C] x2 -> [B].

    Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 1, population
    (co)variances, averaged over the valid window positions and then the channels: scikit-image's
    structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
    channel_axis=-1). Needs H, W >= 11.
    """
    _check_ssim_shapes(x, y)
    luminance, contrast_structure = _ssim_maps(x, y)
    return jnp.mean(luminance * contrast_structure, axis=(1, 2, 3))


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales an image admits: up to 5, while the coarsest side still holds the 11-tap window."""
    n = 0
    while n < len(MS_SSIM_WEIGHTS) and min(height, width) // 2**n >= SSIM_WINDOW:
        n += 1
    return n


def ms_ssim(x, y, *, normalize: bool = False):
    """Multi-scale SSIM per image (Wang et al. 2003): [B, H, W, C] x2 -> [B] in [0, 1].

    Contrast-structure at every scale but the coarsest, full SSIM at the coarsest, combined as a product of powers
    with the standard weights and averaged over channels. Scales are 2x2 average-pooled (odd edges dropped). An
    image too small for 5 scales (coarsest side < 11: below 176 pixels) uses the finest ms_ssim_scales(H, W)
    scales with their weights renormalised to sum to 1, so 64x64 takes 3 scales and 32x32 two; the window is never
    shrunk, so every term stays the standard SSIM. Each term is floored at 1e-6 before its power (anti-correlated
    structure gives negative terms) so the value is real and the gradient finite everywhere. Needs H, W >= 11.

    normalize=True maps every term from [-1, 1] to [0, 1] by (t + 1) / 2 before its power. Use it for a loss:
    near t = 0 (flat or unrelated images, as early in training) t^w with w < 1 has a slope that grows without
    bound, so the plain form's gradient there is dominated by rounding; measured on the tiny model, it moved
    by 2 % between one and two devices summing the same batch.
    """
    _check_ssim_shapes(x, y)
    n = ms_ssim_scales(x.shape[1], x.shape[2])
    weights = [w / sum(MS_SSIM_WEIGHTS[:n]) for w in MS_SSIM_WEIGHTS[:n]]
    value = 1.0
    for scale, weight in enumerate(weights):
        if scale:
            x, y = _halve(x), _halve(y)
        luminance, contrast_structure = _ssim_maps(x, y)
        term = jnp.mean(contrast_structure if scale < n - 1 else luminance * contrast_structure, axis=(1, 2))
        if normalize:
            term = (term + 1) / 2
        value = value * jnp.maximum(term, _MS_SSIM_FLOOR) ** weight  # [B, C]
    return jnp.mean(value, axis=-1)


def make_perceptual_loss(vgg19_weights: str) -> Callable:
    """The stage-1 perceptual loss (x, y) -> scalar: VGG19 L1 with weights from `vgg19_weights`, or 1 - MS-SSIM.

    The VGG19 params are read here, once; the returned function closes over them (jit passes them as arguments).
    """
    if vgg19_weights:
        return functools.partial(vgg_perceptual_loss, load_vgg19(vgg19_weights))
    return ms_ssim_loss


def ms_ssim_loss(x, y):
    """1 - MS-SSIM (normalised terms: see ms_ssim), averaged over the batch: a scalar."""
    return 1.0 - jnp.mean(ms_ssim(x, y, normalize=True))


def _check_ssim_shapes(x, y):
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"SSIM compares two [B, H, W, C] batches of one shape; got {x.shape} and {y.shape}")
    if min(x.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} (its window); got {x.shape}")


def _ssim_maps(x, y):
    """Luminance and contrast-structure maps at the valid window positions: 2 x [B, H - 10, W - 10, C]."""
    b = x.shape[0]
    moments = _gaussian_blur(jnp.concatenate([x, y, x * x, y * y, x * y]))
    mu_x, mu_y, xx, yy, xy = (moments[i * b:(i + 1) * b] for i in range(5))
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + _C1) / (mu_x**2 + mu_y**2 + _C1)
    contrast_structure = (2 * cov + _C2) / (var_x + var_y + _C2)
    return luminance, contrast_structure


def _gaussian_blur(images):
    """Separable 11-tap Gaussian, valid positions only, each channel on its own: [N, H, W, C] -> [N, H-10, W-10, C]."""
    channels = images.shape[-1]
    taps = np.exp(-0.5 * (np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2) ** 2 / SSIM_SIGMA**2)
    taps = jnp.asarray(taps / taps.sum(), images.dtype)
    for kernel_shape in ((SSIM_WINDOW, 1, 1, 1), (1, SSIM_WINDOW, 1, 1)):
        kernel = jnp.tile(taps.reshape(kernel_shape), (1, 1, 1, channels))
        # HIGHEST: the variances are differences of close moments, which TF32 / bf16 passes would swamp.
        images = jax.lax.conv_general_dilated(images, kernel, (1, 1), "VALID",
                                              dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                              feature_group_count=channels, precision=jax.lax.Precision.HIGHEST)
    return images


def _halve(images):
    """2x2 average pooling; an odd last row or column is dropped."""
    b, h, w, c = images.shape
    images = images[:, : h // 2 * 2, : w // 2 * 2]
    return images.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
