"""LivePortrait's warping module W: source and driving keypoints -> a dense 3-D deformation and an occlusion
map (the dense motion network), then the source appearance volume warped by them and folded into the 2-D
feature map that the SPADE decoder renders.

Volumes are channels-last [B, D, H, W, C]. Where upstream reshapes channels-first tensors (the keypoint
channel stacks, depth folded into channels), the channel orders are upstream's, so its weights apply as they
are. Grid coordinates, the mask softmax and the deformation stay float32 whatever the compute dtype.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa_jax.face.liveportrait import weights
from vasa_jax.face.liveportrait.config import DenseMotionConfig, WarpingConfig
from vasa_jax.face.liveportrait.layers import BatchNorm, Conv, avg_pool, leaky_relu, upsample_nearest
from vasa_jax.ops import grid_sample

KP_VARIANCE = 0.01  # of the Gaussian keypoint heatmaps, in grid units


def identity_coords(n: int) -> jax.Array:
    """[n] float32: upstream's identity grid along one axis, 2 * (i / (n - 1)) - 1 (the align_corners=True
    formula, in upstream's operation order). The grids built from it are sampled with align_corners=False, as
    upstream does: the identity grid is then not quite the identity (a stretch by n / (n - 1)); the trained
    weights expect exactly that."""
    return 2 * (jnp.arange(n, dtype=jnp.float32) / (n - 1)) - 1


def sparse_motion_coords(kp_driving, kp_source, spatial):
    """Per axis (x, y, z), the coordinates of the num_kp + 1 sparse motions: [B, num_kp + 1, W], [.., H], [.., D].

    Motion 0 is the identity grid (the background), motion k the identity grid shifted by
    kp_source[k - 1] - kp_driving[k - 1]. Each motion moves every point by the same vector, so its 3-D grid
    is the product of these three axes (upstream materialises [B, num_kp + 1, D, H, W, 3]).
    """
    sizes = spatial[::-1]  # x over W, y over H, z over D
    coords = []
    for axis, n in enumerate(sizes):
        base = identity_coords(n)
        shifted = (base - kp_driving[:, :, axis, None]) + kp_source[:, :, axis, None]  # upstream's order
        background = jnp.broadcast_to(base, (kp_driving.shape[0], 1, n))
        coords.append(jnp.concatenate([background, shifted], axis=1))
    return coords


def _interpolation_matrix(coords, size: int):
    """[..., n] grid coordinates -> [..., n, size]: the linear-interpolation weights grid_sample
    (align_corners=False, zeros padding) gives each input sample along one axis. A corner outside the axis
    matches no column, so it reads zero."""
    u = ((coords + 1) * size - 1) / 2
    lower = jnp.floor(u)
    w_lower, w_upper = (lower + 1) - u, u - lower
    columns = jnp.arange(size, dtype=coords.dtype)
    return (w_lower[..., None] * (columns == lower[..., None])
            + w_upper[..., None] * (columns == lower[..., None] + 1))


def deform_by_sparse_motions(feature, coords):
    """Trilinear grid_sample (align_corners=False, zeros padding) of feature [B, D, H, W, C] by each sparse
    motion -> [B, D, H, W, num_kp + 1, C].

    A trilinear weight is the product of one weight per axis, and each sparse motion's grid is a product of
    axes, so each warp is three small matrix products, one per axis. CPU time at full size (B=1, 22 motions,
    C=4, 2 cores): 39 ms, already in the layout the hourglass reads, against 72 ms for the corner gathers of
    vasa_jax.ops.grid_sample plus that transpose, and 72 ms for torch's grid_sample alone. Same values up to
    float rounding.
    """
    d, h, w = feature.shape[1:4]
    cx, cy, cz = coords
    dtype = feature.dtype
    az = _interpolation_matrix(cz, d).astype(dtype)
    ay = _interpolation_matrix(cy, h).astype(dtype)
    ax = _interpolation_matrix(cx, w).astype(dtype)
    out = jnp.einsum("bkzd,bdhwc->bkzhwc", az, feature)
    out = jnp.einsum("bkyh,bkzhwc->bkzywc", ay, out)
    return jnp.einsum("bkxw,bkzywc->bzyxkc", ax, out)


def keypoint_heatmaps(kp_driving, kp_source, spatial, dtype):
    """[B, D, H, W, num_kp + 1]: Gaussian heatmaps of the driving keypoints minus those of the source ones,
    after a zero background channel (upstream's kp2gaussian on the same identity grid)."""
    def gaussians(kp):
        # One squared distance per axis, [B, n, num_kp], summed over x, y, z as upstream sums them.
        dx, dy, dz = [jnp.square(identity_coords(n)[None, :, None] - kp[:, None, :, axis])
                      for axis, n in enumerate(spatial[::-1])]
        squared = dx[:, None, None, :, :] + dy[:, None, :, None, :] + dz[:, :, None, None, :]
        return jnp.exp(-0.5 * squared / KP_VARIANCE)

    heat = gaussians(kp_driving) - gaussians(kp_source)
    background = jnp.zeros(heat.shape[:-1] + (1,), heat.dtype)
    return jnp.concatenate([background, heat], axis=-1).astype(dtype)


def motion_channels(heatmap, deformed):
    """heatmap [B, D, H, W, K], deformed [B, D, H, W, K, C] -> [B, D, H, W, K * (C + 1)]: per motion its heatmap
    then its C features, motion-major (upstream's cat on dim 2 of [B, K, C + 1, D, H, W], then view)."""
    stacked = jnp.concatenate([heatmap[..., None], deformed], axis=-1)
    return stacked.reshape(*stacked.shape[:4], -1)


class DownBlock3d(nn.Module):
    """conv 3^3, BatchNorm, ReLU, average pool over (H, W) by 2."""

    features: int

    @nn.compact
    def __call__(self, x):
        x = Conv(self.features, 3, padding=1, name="conv")(x)
        return avg_pool(nn.relu(BatchNorm(name="norm")(x)), (1, 2, 2))


class UpBlock3d(nn.Module):
    """Nearest upsample of (H, W) by 2, conv 3^3, BatchNorm, ReLU."""

    features: int

    @nn.compact
    def __call__(self, x):
        x = Conv(self.features, 3, padding=1, name="conv")(upsample_nearest(x, (1, 2, 2)))
        return nn.relu(BatchNorm(name="norm")(x))


class Encoder(nn.Module):
    block_expansion: int
    num_blocks: int
    max_features: int

    @nn.compact
    def __call__(self, x):
        outs = [x]
        for i in range(self.num_blocks):
            width = min(self.max_features, self.block_expansion * 2 ** (i + 1))
            outs.append(DownBlock3d(width, name=f"down_blocks_{i}")(outs[-1]))
        return outs


class Decoder(nn.Module):
    block_expansion: int
    num_blocks: int
    max_features: int

    @nn.compact
    def __call__(self, skips):
        skips = list(skips)
        out = skips.pop()
        for j, i in enumerate(reversed(range(self.num_blocks))):
            width = min(self.max_features, self.block_expansion * 2 ** i)
            out = UpBlock3d(width, name=f"up_blocks_{j}")(out)
            out = jnp.concatenate([out, skips.pop()], axis=-1)
        out = Conv(out.shape[-1], 3, padding=1, name="conv")(out)
        return nn.relu(BatchNorm(name="norm")(out))


class Hourglass(nn.Module):
    """3-D U-Net over (H, W) at full depth: in C channels -> block_expansion + C channels."""

    block_expansion: int
    num_blocks: int
    max_features: int

    @nn.compact
    def __call__(self, x):
        sizes = (self.block_expansion, self.num_blocks, self.max_features)
        return Decoder(*sizes, name="decoder")(Encoder(*sizes, name="encoder")(x))


class DenseMotionNetwork(nn.Module):
    """f_s and keypoints -> deformation [B, D, H, W, 3] (float32) and occlusion map [B, H, W, 1] (or None)."""

    config: DenseMotionConfig
    num_kp: int
    estimate_occlusion_map: bool = True

    @nn.compact
    def __call__(self, feature, kp_driving, kp_source):
        cfg = self.config
        d, h, w = feature.shape[1:4]
        feature = Conv(cfg.compress, 1, name="compress")(feature)
        feature = nn.relu(BatchNorm(name="norm")(feature))

        coords = sparse_motion_coords(kp_driving, kp_source, (d, h, w))
        deformed = deform_by_sparse_motions(feature, coords)  # [B, D, H, W, K, compress]
        heatmap = keypoint_heatmaps(kp_driving, kp_source, (d, h, w), feature.dtype)
        stacked = motion_channels(heatmap, deformed)
        prediction = Hourglass(cfg.block_expansion, cfg.num_blocks, cfg.max_features, name="hourglass")(stacked)
        logits = Conv(self.num_kp + 1, 7, padding=3, name="mask")(prediction)
        mask = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)  # [B, D, H, W, K]
        cx, cy, cz = coords
        deformation = jnp.stack([jnp.einsum("bdhwk,bkw->bdhw", mask, cx),
                                 jnp.einsum("bdhwk,bkh->bdhw", mask, cy),
                                 jnp.einsum("bdhwk,bkd->bdhw", mask, cz)], axis=-1)

        occlusion = None
        if self.estimate_occlusion_map:
            occlusion = Conv(1, 7, padding=3, name="occlusion")(fold_depth(prediction))
            occlusion = jax.nn.sigmoid(occlusion.astype(jnp.float32))
        return deformation, occlusion


def fold_depth(volume):
    """[B, D, H, W, C] -> [B, H, W, C * D] with channel c * D + d: upstream's view(B, C * D, H, W) of its
    channels-first volume."""
    b, d, h, w, c = volume.shape
    return jnp.transpose(volume, (0, 2, 3, 4, 1)).reshape(b, h, w, c * d)


class SameBlock2d(nn.Module):
    """conv 3x3, BatchNorm, LeakyReLU (torch's default slope 0.01)."""

    features: int

    @nn.compact
    def __call__(self, x):
        x = Conv(self.features, 3, padding=1, name="conv")(x)
        return leaky_relu(BatchNorm(name="norm")(x))


class WarpingNetwork(nn.Module):
    """W: f_s [B, D, H, W, C], kp_driving and kp_source [B, num_kp, 3] -> dict of
    out [B, H, W, F] (float32; F = block_expansion * 2 ** num_down_blocks), occlusion_map [B, H, W, 1] (absent
    without an occlusion head) and deformation [B, D, H, W, 3] (grid coordinates, float32)."""

    config: WarpingConfig = WarpingConfig()
    dtype: Any = None  # computation dtype of the convolutions and features (None: float32)

    @nn.compact
    def __call__(self, f_s, kp_driving, kp_source):
        cfg = self.config
        dtype = self.dtype or jnp.float32
        f_s = f_s.astype(dtype)
        kp_driving, kp_source = kp_driving.astype(jnp.float32), kp_source.astype(jnp.float32)
        deformation, occlusion = DenseMotionNetwork(cfg.dense_motion_params, cfg.num_kp,
                                                    cfg.estimate_occlusion_map,
                                                    name="dense_motion_network")(f_s, kp_driving, kp_source)
        warped = fold_depth(grid_sample(f_s, deformation, align_corners=False))
        width = cfg.block_expansion * 2 ** cfg.num_down_blocks
        out = SameBlock2d(width, name="third")(warped)
        out = Conv(width, 1, name="fourth")(out)
        result = {"deformation": deformation}
        if occlusion is not None:
            out = out * occlusion.astype(out.dtype)
            result["occlusion_map"] = occlusion
        result["out"] = out.astype(jnp.float32)
        return result


def params_from_torch(state: dict[str, np.ndarray], config: WarpingConfig, path) -> dict:
    """Upstream's warping_module state dict -> params of WarpingNetwork(config); `path` names the file in errors."""
    d = config.dense_motion_params.reshape_depth
    f_s = jax.ShapeDtypeStruct((1, d, 64, 64, config.reshape_channel), jnp.float32)
    kp = jax.ShapeDtypeStruct((1, config.num_kp, 3), jnp.float32)
    template = jax.eval_shape(WarpingNetwork(config).init, jax.random.PRNGKey(0), f_s, kp, kp)["params"]
    return weights.convert(state, template, path)
