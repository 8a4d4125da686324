"""The stage-1 adversary: a multi-scale patch discriminator (pix2pixHD / MegaPortraits) and its hinge losses.

A discriminator's output is a list over scales of (logits [B, h, w, 1], features: list of [B, h_i, w_i, C_i]).
GroupNorm rather than BatchNorm: no batch statistics, so a data-parallel step needs no cross-device reduction and
a discriminator's output for one image does not depend on the rest of the batch.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa_jax.face.layers import num_groups


class PatchDiscriminator(nn.Module):
    """One scale: a 4x4 stride-2 conv per width with LeakyReLU(0.2) (GroupNorm on all but the first), then a 4x4
    conv to 1 channel. [B, H, W, 3] in [0, 1] -> (logits [B, H / 2^n, W / 2^n, 1], the n stages' activations)
    for n = len(widths) (sizes round up: "SAME" padding, so any image of at least 1 pixel passes)."""

    widths: tuple = (64, 128, 256, 512)
    groups: int = 32  # GroupNorm groups (fewer where a layer has fewer channels)

    @nn.compact
    def __call__(self, images):
        h = images * 2.0 - 1.0  # centred input, as the generator's convs see it
        features = []
        for i, width in enumerate(self.widths):
            h = nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME", name=f"conv_{i}")(h)
            if i:  # pix2pixHD leaves the first layer unnormalised
                h = nn.GroupNorm(num_groups(width, self.groups), name=f"norm_{i}")(h)
            h = nn.leaky_relu(h, 0.2)
            features.append(h)
        logits = nn.Conv(1, (4, 4), padding="SAME", name="logits")(h)
        return logits, features


class MultiScaleDiscriminator(nn.Module):
    """`scales` PatchDiscriminators with separate params; scale k sees the image 2^k x 2^k average-pooled.

    [B, H, W, 3] in [0, 1] -> [(logits, features) for each scale, finest first].
    """

    scales: int = 3
    widths: tuple = (64, 128, 256, 512)
    groups: int = 32

    @nn.compact
    def __call__(self, images):
        outputs = []
        for k in range(self.scales):
            if k:
                images = nn.avg_pool(images, (2, 2), strides=(2, 2))
            outputs.append(PatchDiscriminator(tuple(self.widths), self.groups, name=f"scale_{k}")(images))
        return outputs


def hinge_discriminator_loss(real_outputs, fake_outputs):
    """mean(relu(1 - D(real))) + mean(relu(1 + D(fake))), averaged over scales: a scalar."""
    return _mean([jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
                  for (real, _), (fake, _) in zip(real_outputs, fake_outputs, strict=True)])


def hinge_generator_loss(fake_outputs):
    """-mean(D(fake)), averaged over scales: a scalar."""
    return _mean([-jnp.mean(fake) for fake, _ in fake_outputs])


def feature_matching_loss(real_outputs, fake_outputs):
    """Mean L1 between the discriminator's features of fake and real images, averaged over layers and scales.

    The real features are targets (no gradient); the gradient reaches the generator through the fake ones.
    """
    return _mean([jnp.mean(jnp.abs(f - jax.lax.stop_gradient(r)))
                  for (_, real), (_, fake) in zip(real_outputs, fake_outputs, strict=True)
                  for r, f in zip(real, fake, strict=True)])


def _mean(values):
    return sum(values) / len(values)
