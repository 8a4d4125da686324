"""The Wav2Vec2 / HuBERT speech encoder in Flax Linen, equal to transformers' Wav2Vec2Model / HubertModel.

One module covers the public checkpoints' layouts: feat_extract_norm "group" with the post-LN transformer
(wav2vec2-base, -base-960h, hubert-base) and "layer" with the pre-LN ("stable layer norm") transformer
(wav2vec2-large-lv60, XLS-R, hubert-large). HuBERT differs only in details its config names
(feat_proj_layer_norm, conv_pos_batch_norm). The module computes; checkpoint.py reads files and converts
weights, features.py / encoders.py turn hidden states into 25 fps features.

Parameter names follow transformers' module tree ("encoder/layers_3/attention/q_proj/kernel" for
"encoder.layers.3.attention.q_proj.weight"), which keeps the weight conversion mechanical. Not covered:
Wav2Vec2's adapter heads (add_adapter, adapter_attn_dim) and LayerDrop (training only).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

# transformers' names for the activations these checkpoints use ("gelu" is the exact, erf form).
ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}

_CONV_NORM_EPS = 1e-5  # torch's default eps for the feature encoder's GroupNorm / LayerNorm (not in the config)


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """The architecture, as config.json (transformers' Wav2Vec2Config / HubertConfig) states it.

    Defaults are transformers' defaults (the wav2vec2-base layout); checkpoint.load_config fills them in.
    """

    model_type: str = "wav2vec2"  # "wav2vec2" or "hubert": names the weights' key prefix
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)  # feature encoder channels per layer
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)  # product 320: 50 frames per second at 16 kHz
    conv_bias: bool = False
    feat_extract_norm: str = "group"  # "group": GroupNorm on conv layer 0 only; "layer": LayerNorm on every one
    feat_extract_activation: str = "gelu"
    feat_proj_layer_norm: bool = True  # HuBERT may switch off the LayerNorm before the projection
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    num_conv_pos_embeddings: int = 128  # kernel of the convolutional positional embedding
    num_conv_pos_embedding_groups: int = 16
    conv_pos_batch_norm: bool = False  # HuBERT only: BatchNorm (and no weight norm) in the positional conv
    do_stable_layer_norm: bool = False  # True: pre-LN layers, LayerNorm after the stack
    layer_norm_eps: float = 1e-5
    # Dropout rates, used only when the model is called with deterministic=False.
    feat_proj_dropout: float = 0.0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.1

    def __post_init__(self):
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm must be 'group' or 'layer'; got {self.feat_extract_norm!r}")
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
            raise ValueError("conv_dim, conv_kernel and conv_stride must have one entry per conv layer")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        for act in (self.feat_extract_activation, self.hidden_act):
            if act not in ACTIVATIONS:
                raise ValueError(f"activation {act!r} is not supported; known: {sorted(ACTIVATIONS)}")

    @property
    def frame_stride(self) -> int:
        """Samples between consecutive output frames (320 for every public checkpoint)."""
        return int(np.prod(self.conv_stride))

    @property
    def receptive_field(self) -> int:
        """Samples one output frame sees: frame j covers [j * frame_stride, j * frame_stride + receptive_field)."""
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    def output_length(self, num_samples):
        """Output frames for `num_samples` input samples (transformers' _get_feat_extract_output_lengths).

        Works on ints and integer arrays (numpy or jax); not positive when the input is shorter than the
        receptive field.
        """
        length = num_samples
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            length = (length - kernel) // stride + 1
        return length


@flax.struct.dataclass
class EncoderOutput:
    last_hidden_state: jax.Array  # [B, T, D]
    # None unless asked for. Else num_hidden_layers + 1 arrays [B, T, D], transformers' `hidden_states`: the
    # input of the first layer, then each layer's output. With do_stable_layer_norm the last entry is the
    # output of the last layer before the final LayerNorm (transformers 5; version 4 returned it after).
    hidden_states: tuple[jax.Array, ...] | None = None


class _ChannelNorm(nn.Module):
    """GroupNorm with one group per channel: normalises each channel over time ([B, T, C]).

    `stats` = (mean [C], var [C]) replaces the statistics of this input, so a window of a long signal can be
    normalised exactly as the whole signal would be (features.py computes them from the waveform).
    """

    eps: float = _CONV_NORM_EPS

    @nn.compact
    def __call__(self, x, stats=None):
        channels = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (channels,))
        bias = self.param("bias", nn.initializers.zeros, (channels,))
        if stats is None:
            mean = x.mean(axis=1, keepdims=True)
            var = jnp.square(x - mean).mean(axis=1, keepdims=True)
        else:
            mean, var = (jnp.asarray(s, x.dtype)[..., None, :] for s in stats)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + bias


class ConvLayer(nn.Module):
    """One layer of the convolutional feature encoder: conv (no padding), optional norm, activation."""

    features: int
    kernel: int
    stride: int
    use_bias: bool
    norm: str | None  # "group", "layer" or None
    activation: str

    @nn.compact
    def __call__(self, x, group_norm_stats=None):  # [B, T, C_in] -> [B, T', C_out]
        x = nn.Conv(self.features, (self.kernel,), strides=(self.stride,), padding="VALID",
                    use_bias=self.use_bias, name="conv")(x)
        if self.norm == "group":
            x = _ChannelNorm(name="layer_norm")(x, group_norm_stats)
        elif self.norm == "layer":
            x = nn.LayerNorm(epsilon=_CONV_NORM_EPS, use_fast_variance=False, name="layer_norm")(x)
        return ACTIVATIONS[self.activation](x)


class PositionalConvEmbedding(nn.Module):
    """Grouped convolution over time, 'same' length (an even kernel drops the last frame), then activation."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, x):  # [B, T, D] -> [B, T, D]
        c = self.config
        if c.conv_pos_batch_norm:
            x = nn.BatchNorm(use_running_average=True, epsilon=1e-5, name="batch_norm")(x)
        k = c.num_conv_pos_embeddings
        y = nn.Conv(c.hidden_size, (k,), padding=[(k // 2, k // 2)],
                    feature_group_count=c.num_conv_pos_embedding_groups, name="conv")(x)
        if k % 2 == 0:
            y = y[:, :-1]
        return ACTIVATIONS[c.feat_extract_activation](y)


class Attention(nn.Module):
    config: EncoderConfig

    @nn.compact
    def __call__(self, x, mask, deterministic):  # x [B, T, D], mask [B, T] bool (True: attend) or None
        c = self.config
        head_dim = c.hidden_size // c.num_attention_heads
        heads = (*x.shape[:-1], c.num_attention_heads, head_dim)  # [B, T, H, D / H]
        q = nn.Dense(c.hidden_size, name="q_proj")(x).reshape(heads)
        k = nn.Dense(c.hidden_size, name="k_proj")(x).reshape(heads)
        v = nn.Dense(c.hidden_size, name="v_proj")(x).reshape(heads)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * head_dim ** -0.5
        if mask is not None:
            # The smallest float rather than -inf: a row with no valid key then averages instead of giving NaN.
            logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = nn.Dropout(c.attention_dropout)(weights, deterministic=deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(x.shape)
        return nn.Dense(c.hidden_size, name="out_proj")(out)


class FeedForward(nn.Module):
    config: EncoderConfig

    @nn.compact
    def __call__(self, x, deterministic):
        c = self.config
        x = ACTIVATIONS[c.hidden_act](nn.Dense(c.intermediate_size, name="intermediate_dense")(x))
        x = nn.Dropout(c.activation_dropout)(x, deterministic=deterministic)
        x = nn.Dense(c.hidden_size, name="output_dense")(x)
        return nn.Dropout(c.hidden_dropout)(x, deterministic=deterministic)


class EncoderLayer(nn.Module):
    """A transformer layer: post-LN (base layout) or pre-LN (do_stable_layer_norm)."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, x, mask, deterministic):
        c = self.config
        norm = functools.partial(nn.LayerNorm, epsilon=c.layer_norm_eps, use_fast_variance=False)
        attention, feed_forward = Attention(c, name="attention"), FeedForward(c, name="feed_forward")
        dropout = nn.Dropout(c.hidden_dropout)
        if c.do_stable_layer_norm:
            x = x + dropout(attention(norm(name="layer_norm")(x), mask, deterministic), deterministic=deterministic)
            return x + feed_forward(norm(name="final_layer_norm")(x), deterministic)
        x = norm(name="layer_norm")(x + dropout(attention(x, mask, deterministic), deterministic=deterministic))
        return norm(name="final_layer_norm")(x + feed_forward(x, deterministic))


class Encoder(nn.Module):
    """Positional conv embedding + the transformer stack. Returns (last hidden state, hidden states)."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, x, mask, deterministic):
        c = self.config
        if mask is not None:
            x = jnp.where(mask[..., None], x, 0.0)  # padded frames must not leak through the positional conv
        x = x + PositionalConvEmbedding(c, name="pos_conv_embed")(x)
        final_norm = nn.LayerNorm(epsilon=c.layer_norm_eps, use_fast_variance=False, name="layer_norm")
        if not c.do_stable_layer_norm:
            x = final_norm(x)
        x = nn.Dropout(c.hidden_dropout)(x, deterministic=deterministic)
        hidden_states = [x]
        for i in range(c.num_hidden_layers):
            x = EncoderLayer(c, name=f"layers_{i}")(x, mask, deterministic)
            hidden_states.append(x)
        if c.do_stable_layer_norm:
            x = final_norm(x)
        return x, tuple(hidden_states)


class FeatureEncoder(nn.Module):
    """The convolutional feature encoder: waveform [B, N] -> [B, T, conv_dim[-1]] (valid convolutions)."""

    config: EncoderConfig

    @nn.compact
    def __call__(self, waveform, group_norm_stats=None):
        c = self.config
        x = waveform[..., None]
        for i, (dim, kernel, stride) in enumerate(zip(c.conv_dim, c.conv_kernel, c.conv_stride)):
            norm = "layer" if c.feat_extract_norm == "layer" else ("group" if i == 0 else None)
            x = ConvLayer(dim, kernel, stride, c.conv_bias, norm, c.feat_extract_activation,
                          name=f"conv_layers_{i}")(x, group_norm_stats if i == 0 else None)
        return x


class FeatureProjection(nn.Module):
    config: EncoderConfig

    @nn.compact
    def __call__(self, x, deterministic):
        c = self.config
        if c.feat_proj_layer_norm:
            x = nn.LayerNorm(epsilon=c.layer_norm_eps, use_fast_variance=False, name="layer_norm")(x)
        x = nn.Dense(c.hidden_size, name="projection")(x)
        return nn.Dropout(c.feat_proj_dropout)(x, deterministic=deterministic)


class Wav2Vec2Model(nn.Module):
    """Waveform [B, N] (16 kHz, normalised as the checkpoint's feature extractor expects) -> EncoderOutput.

    attention_mask: [B, N], 1 for real samples, 0 for right padding (as transformers takes it).
    group_norm_stats: (mean [C], var [C]) for the first conv layer's GroupNorm ("group" layout only), taken
      from a longer signal than this input; None: from this input, as transformers does.
    deterministic: False turns dropout on (needs a 'dropout' rng); inference leaves it True.
    """

    config: EncoderConfig

    @nn.compact
    def __call__(self, waveform, attention_mask=None, output_hidden_states: bool = False,
                 deterministic: bool = True, group_norm_stats: Sequence[jax.Array] | None = None):
        c = self.config
        if group_norm_stats is not None and c.feat_extract_norm != "group":
            raise ValueError("group_norm_stats applies only to feat_extract_norm='group' models")
        x = FeatureEncoder(c, name="feature_extractor")(jnp.asarray(waveform, jnp.float32), group_norm_stats)
        x = FeatureProjection(c, name="feature_projection")(x, deterministic)
        mask = None
        if attention_mask is not None:
            lengths = c.output_length(jnp.asarray(attention_mask).astype(jnp.int32).sum(-1))
            mask = jnp.arange(x.shape[1])[None, :] < lengths[:, None]
        last, hidden_states = Encoder(c, name="encoder")(x, mask, deterministic)
        return EncoderOutput(last, hidden_states if output_hidden_states else None)
