"""The stage-1 networks: appearance, identity and motion encoders, warp generators, the image decoder and the
optional enhancer.

Images are float [B, S, S, 3] in [0, 1]; volumes are [B, D, H, W, C] (channels-last, depth first).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa_jax.face.config import POSE_DIM, FaceConfig
from vasa_jax.face.layers import AdaptiveResBlock, Head, ResBlock, num_groups, upsample
from vasa_jax.ops import grid_sample
from vasa_jax.pose import POSE_SCALE


def _dtype(config: FaceConfig):
    return jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32


class AppearanceEncoder(nn.Module):
    """Image -> posed 3-D feature volume [B, D, H, W, C]: 2-D stages down to the volume size, a 1x1 conv
    lifting channels to D x C, then 3-D residual blocks."""

    config: FaceConfig

    @nn.compact
    def __call__(self, image):
        c, dt = self.config, _dtype(self.config)
        x = nn.Conv(c.appearance_stem, (3, 3), dtype=dt)(image * 2 - 1)
        for width in c.appearance_widths:
            x = ResBlock(width, c.groups, stride=2, dtype=dt)(x)
        x = Head(c.volume_depth * c.volume_channels, c.groups, kernel=1, dtype=dt)(x)
        b, h, w, _ = x.shape
        volume = x.reshape(b, h, w, c.volume_depth, c.volume_channels).transpose(0, 3, 1, 2, 4)
        for _ in range(c.appearance_blocks):
            volume = ResBlock(c.volume_channels, c.groups, dtype=dt)(volume)
        return volume


class GlobalEncoder(nn.Module):
    """Image -> features [B, encoder_widths[-1]]: stride-2 residual stages, then a dense layer over the whole
    final map. Flattening rather than average pooling keeps where things are, which is what pose is."""

    config: FaceConfig

    @nn.compact
    def __call__(self, image):
        c, dt = self.config, _dtype(self.config)
        x = nn.Conv(c.encoder_widths[0], (3, 3), dtype=dt)(image * 2 - 1)
        for width in c.encoder_widths:
            x = ResBlock(width, c.groups, stride=2, dtype=dt)(x)
        x = nn.silu(nn.GroupNorm(num_groups(x.shape[-1], c.groups), dtype=dt)(x)).astype(jnp.float32)
        return nn.silu(nn.Dense(c.encoder_widths[-1])(x.reshape(x.shape[0], -1)))


class IdentityEncoder(nn.Module):
    """Image -> z_id [B, id_dim], the global identity descriptor."""

    config: FaceConfig

    @nn.compact
    def __call__(self, image):
        return nn.Dense(self.config.id_dim)(GlobalEncoder(self.config)(image))


class MotionEncoder(nn.Module):
    """Image -> motion [B, POSE_DIM + dyn_dim]: z_pose (yaw, pitch, roll in degrees, tx, ty, scale) then z_dyn,
    from one trunk with two heads."""

    config: FaceConfig

    @nn.compact
    def __call__(self, image):
        features = GlobalEncoder(self.config)(image)
        # Zero-initialised pose head: training starts from a frontal, centred head of scale 1.
        raw = nn.Dense(POSE_DIM, kernel_init=nn.initializers.zeros, name="pose")(features)
        scale = jnp.asarray(POSE_SCALE, jnp.float32)
        pose = jnp.concatenate([raw[:, :5] * scale[:5], jnp.exp(raw[:, 5:] * scale[5])], axis=-1)
        dyn = nn.Dense(self.config.dyn_dim, name="dynamics")(features)
        return jnp.concatenate([pose, dyn], axis=-1)


class WarpGenerator(nn.Module):
    """(z_dyn, z_id) -> a non-rigid 3-D flow field [B, D, H, W, 3] in normalised volume coordinates.

    A dense seed volume, then 3-D residual stages with adaptive GroupNorm conditioned on (z_dyn, z_id), each
    doubling H and W (and D while it is below volume_depth). The output is bounded by warp_max_offset and
    starts near zero (the warp starts rigid).
    """

    config: FaceConfig

    @nn.compact
    def __call__(self, z_dyn, z_id):
        c, dt = self.config, _dtype(self.config)
        cond = jnp.concatenate([z_dyn, z_id], axis=-1)
        ups = len(c.warp_widths) - 1
        size = c.volume_size // 2**ups
        depth = max(1, c.volume_depth // 2**ups)
        x = nn.Dense(depth * size * size * c.warp_widths[0], dtype=dt)(cond)
        x = x.reshape(-1, depth, size, size, c.warp_widths[0])
        x = AdaptiveResBlock(c.warp_widths[0], c.groups, dt)(x, cond)
        for width in c.warp_widths[1:]:
            grow = 2 if x.shape[1] < c.volume_depth else 1
            x = AdaptiveResBlock(width, c.groups, dt)(upsample(x, (grow, 2, 2)), cond)
        flow = Head(3, c.groups, init_scale=1e-4, dtype=dt)(x).astype(jnp.float32)
        return c.warp_max_offset * jnp.tanh(flow)


class Decoder(nn.Module):
    """Driven volume [B, D, H, W, C] -> (logits [B, S, S, 3], features [B, S, S, decoder_up_widths[-1]]) at the
    base render's size: 3-D residual blocks, depth folded into channels with a 1x1 conv, 2-D residual blocks, then
    upsampling stages. The image is sigmoid(logits); the features are what an enhancer builds on."""

    config: FaceConfig

    @nn.compact
    def __call__(self, volume):
        c, dt = self.config, _dtype(self.config)
        x = volume
        for _ in range(c.decoder_3d_blocks):
            x = ResBlock(c.volume_channels, c.groups, dtype=dt)(x)
        b, d, h, w, ch = x.shape
        x = x.transpose(0, 2, 3, 1, 4).reshape(b, h, w, d * ch)
        x = nn.Conv(c.decoder_2d_channels, (1, 1), dtype=dt)(x)
        for _ in range(c.decoder_2d_blocks):
            x = ResBlock(c.decoder_2d_channels, c.groups, dtype=dt)(x)
        for width in c.decoder_up_widths:
            x = ResBlock(width, c.groups, dtype=dt)(upsample(x, (2, 2)))
        return Head(3, c.groups, dtype=dt)(x).astype(jnp.float32), x


class Enhancer(nn.Module):
    """The base render (logits and the decoder's last features, base_size) and the source image (at image_size and
    at base_size) warped to the driver -> image [B, S, S, 3] in [0, 1] at image_size.

    The source skip: the warps' composite map from the driver's posed volume to the source image (`points`,
    [B, D, H, W, 3]), reduced over depth by a learned attention on the driven volume, corrected at the base size
    and upsampled, samples the source image at full size. Where the source shows what the driver needs, that
    copies its detail (eyes, freckles, lip line), which a 16^3 volume cannot carry; a predicted mask blends it
    with the generated image, which draws what the source does not show (an opened mouth). The generated image is
    the base logits upsampled plus detail from adaptive residual blocks conditioned on (z_dyn, z_id), one at the
    base size and one per 2x stage (enhancer_widths), each also reading the warped source at its size (FOMM's
    occlusion-aware generator over MegaPortraits' high-resolution stage).

    Detail, correction and mask start near zero, so a new enhancer on a trained base starts as that base's render
    upscaled.
    """

    config: FaceConfig
    mask_offset: float = -6.0  # the mask starts at sigmoid(-6), 0.25 %
    max_refinement: float = 0.2  # largest correction of the skip's map, in normalised image coordinates

    @nn.compact
    def __call__(self, logits, features, cond, driven_volume, points, source_image, source_small):
        c, dt = self.config, _dtype(self.config)
        b, size, base_size = logits.shape[0], c.image_size, c.base_size
        # Zero-initialised depth attention: a new enhancer averages the map over depth.
        depth_logits = nn.Dense(1, kernel_init=nn.initializers.zeros, name="depth_attention")(
            driven_volume.astype(jnp.float32))
        xy = (jax.nn.softmax(depth_logits, axis=1) * points[..., :2]).sum(axis=1)  # [B, H, W, 2]
        xy = jax.image.resize(xy, (b, base_size, base_size, 2), "linear")
        warped_small = grid_sample(source_small, xy, padding_mode="border")
        x = jnp.concatenate([features.astype(dt), logits.astype(dt), warped_small.astype(dt) * 2 - 1], axis=-1)
        x = AdaptiveResBlock(c.enhancer_widths[0], c.groups, dt)(x, cond)
        # The map corrected at the base size, conditioned on the motion: the volume's warps are a few cells
        # across a face, too coarse for a jaw that drops a few pixels.
        refinement = Head(2, c.groups, init_scale=1e-4, dtype=dt, name="refinement")(x).astype(jnp.float32)
        xy = xy + self.max_refinement * jnp.tanh(refinement)
        warped = grid_sample(source_image, jax.image.resize(xy, (b, size, size, 2), "linear"), padding_mode="border")
        for width in c.enhancer_widths:
            x = upsample(x, (2, 2))
            view = jax.image.resize(warped, (b,) + x.shape[1:3] + (3,), "linear", antialias=True)
            x = AdaptiveResBlock(width, c.groups, dt)(jnp.concatenate([x, view.astype(dt) * 2 - 1], axis=-1), cond)
        base = jax.image.resize(logits, (b, size, size, 3), "linear")
        out = Head(4, c.groups, init_scale=1e-4, dtype=dt, name="output")(x).astype(jnp.float32)
        generated = nn.sigmoid(base + out[..., :3])
        mask = nn.sigmoid(out[..., 3:] + self.mask_offset)
        return mask * warped + (1 - mask) * generated
