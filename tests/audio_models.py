"""Random small Wav2Vec2 / HuBERT checkpoints made on the spot with transformers (no downloads), for the
audio tests: built in PyTorch, saved as Hugging Face folders."""

import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Model

# Narrow versions of the public layouts, with the real conv geometry (stride 320, receptive field 400).
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_dim=(16,) * 7,
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
LAYOUTS = {
    # wav2vec2-base(-960h): GroupNorm on conv 0, post-LN layers; saved with its CTC head ("wav2vec2." keys)
    "group-postln": (Wav2Vec2ForCTC, Wav2Vec2Config, dict(vocab_size=12)),
    # wav2vec2-large-lv60 / XLS-R: LayerNorm on every conv, conv bias, pre-LN layers
    "layer-stable": (Wav2Vec2Model, Wav2Vec2Config, dict(feat_extract_norm="layer", do_stable_layer_norm=True,
                                                         conv_bias=True)),
    "hubert": (HubertModel, HubertConfig, {}),
    # HuBERT's variant with BatchNorm in the positional conv and no LayerNorm before the projection
    "hubert-batchnorm": (HubertModel, HubertConfig, dict(conv_pos_batch_norm=True, feat_proj_layer_norm=False)),
}


def save_tiny_checkpoint(folder, layout="group-postln", seed=0, bin_file=False, perturb=True, **overrides):
    """Saves a random small model of `layout` as a Hugging Face folder; returns the eval-mode torch model.

    perturb: add noise to every parameter (norms and BatchNorm statistics included) on top of transformers'
    initialisation, so a weight mapped to the wrong place shows. bin_file: pytorch_model.bin with the older
    weight_g / weight_v spelling instead of save_pretrained's model.safetensors.
    """
    model_cls, config_cls, extra = LAYOUTS[layout]
    torch.manual_seed(seed)
    model = model_cls(config_cls(**{**TINY, **extra, **overrides})).eval()
    with torch.no_grad():
        for p in model.parameters() if perturb else ():
            p.add_(0.1 * torch.randn_like(p))
        for name, b in model.named_buffers() if perturb else ():
            if name.endswith("running_mean"):
                b.normal_()
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    model.save_pretrained(folder)
    if bin_file:
        (folder / "model.safetensors").unlink()
        state = {k.replace("parametrizations.weight.original0", "weight_g")
                 .replace("parametrizations.weight.original1", "weight_v"): v for k, v in model.state_dict().items()}
        torch.save(state, folder / "pytorch_model.bin")
    return model
